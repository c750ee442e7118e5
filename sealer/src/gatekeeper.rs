//! The sealer's side of the gate: what `epoch::admit` needs that lives outside
//! the epoch. It keeps the device key history current (re-read before every
//! epoch, only the rows added since) and the ids and GS1 event hashes sealed
//! so far (`seen`), and turns a window's records into an admission with
//! duplicates refused.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use crate::store::{devices, sealed_ids};
use schemas::devices::KeyHistory;
use schemas::event_hash::HashId;
use schemas::seen::SeenIds;

use crate::epoch::{self, Admission, Gate, Record};
use crate::ledger::Lease;
use crate::metrics::Metrics;
use crate::pipeline::{Context, Settings, Shared};
use crate::retry::{self, Stopped};

pub struct Gatekeeper {
    clickhouse: clickhouse::Client,
    keys: Arc<KeyHistory>,
    seen: SeenIds,
    settings: Settings,
    shared: Arc<Shared>,
    cancel: CancellationToken,
    /// The assignment generation whose sealed ids `seen` holds.
    assignments_seen: u64,
    /// When ids sealed by others were last read (Unix seconds).
    ids_read_at: u32,
    /// The claim of the last window admitted.
    lease: Option<Lease>,
}

/// How long a registry refresh may hold up an epoch before the last one is used.
const REFRESH_WAIT: Duration = Duration::from_secs(2);

impl Gatekeeper {
    /// Reads the key history and every sealed id, retrying while ClickHouse is
    /// away; `Stopped` if shutdown comes first.
    pub async fn load(ctx: &Context) -> Result<Self, Stopped> {
        let clickhouse = &ctx.clickhouse;
        let keys = retry::until_done(&ctx.cancel, "reading the device registry", || {
            devices::history(clickhouse)
        })
        .await?;
        let started = Instant::now();
        let read_at = now_s();
        let capacity = ctx.settings.seen_capacity;
        let (seen, n) =
            retry::until_done(&ctx.cancel, "reading the sealed event ids", || async move {
                let seen = SeenIds::new(capacity);
                sealed_ids::load_seen(clickhouse, &seen)
                    .await
                    .map(|n| (seen, n))
            })
            .await?;
        tracing::info!(
            devices = keys.len(),
            sealed_keys = n,
            seconds = started.elapsed().as_secs_f64(),
            "gate ready: device keys and sealed ids and hashes loaded"
        );
        Ok(Gatekeeper {
            clickhouse: clickhouse.clone(),
            keys: Arc::new(keys),
            seen,
            settings: ctx.settings.clone(),
            assignments_seen: ctx.shared.assignments.load(Ordering::SeqCst),
            shared: ctx.shared.clone(),
            cancel: ctx.cancel.clone(),
            ids_read_at: read_at,
            lease: None,
        })
    }

    /// The gate for one window closed at `now_ms`; `Stopped` if shutdown
    /// comes while ClickHouse is away.
    pub async fn admit(
        &mut self,
        records: Vec<Record>,
        now_ms: i64,
        lease: Lease,
        metrics: &Metrics,
    ) -> Result<Admission, Stopped> {
        let started = Instant::now();
        self.refresh().await?;
        if self.lease != Some(lease) {
            // A new claim: an epoch of ours under the last one may be fenced
            // (void), and its ids must be sealable again. The filter still
            // says "maybe" for them and ClickHouse decides.
            self.seen.forget_recent();
            self.lease = Some(lease);
        }
        let keys = self.keys.clone();
        let (bounds, threads) = (self.settings.bounds, self.settings.verify_threads);
        let check_signatures = self.settings.check_signatures();
        let partitions = match self.shared.partitions.load(Ordering::SeqCst) {
            0 => None,
            n => Some(n),
        };
        let admission = tokio::task::spawn_blocking(move || {
            let gate = Gate {
                keys: &keys,
                now_ms,
                bounds,
                threads,
                partitions,
                check_signatures,
            };
            epoch::admit(records, &gate)
        })
        .await;
        let mut admission = match admission {
            Ok(a) => a,
            Err(e) => {
                // Each record is checked under catch_unwind; only a bug gets here.
                tracing::error!(error = %e, "the gate failed as a whole");
                std::process::abort();
            }
        };
        let sealed = self.sealed_already(&admission, &lease, metrics).await?;
        if !sealed.is_empty() {
            tracing::warn!(
                duplicates = sealed.len(),
                "event ids already sealed; dead-lettered"
            );
        }
        admission.refuse_sealed(&sealed);
        // Its ids and hashes, kept exactly until the store has them (the next
        // epoch's gate runs while this one is written).
        self.seen.remember_epoch(
            admission.admitted.iter().map(|a| a.event.event_id()),
            admission.admitted.iter().filter_map(|a| a.hash),
        );
        metrics
            .gate_duration
            .observe(started.elapsed().as_secs_f64());
        Ok(admission)
    }

    /// Ids of the admission sealed in an earlier epoch, by anyone.
    async fn sealed_already(
        &mut self,
        admission: &Admission,
        lease: &Lease,
        metrics: &Metrics,
    ) -> Result<HashSet<String>, Stopped> {
        let mut sealed = HashSet::new();
        // The same event under another id, by its GS1 event hash: a kept
        // event's always asked (rare), a scan event's when the filter may
        // hold it.
        let mut hashes: Vec<String> = Vec::new();
        for a in &admission.admitted {
            let Some(h) = a.hash else { continue };
            let text = h.text();
            if self.seen.sealed_recently(text.as_str()) {
                sealed.insert(a.event.event_id().to_string());
            } else if a.event.kept_hash().is_some() || self.seen.may_contain(text.as_str()) {
                hashes.push(text.as_str().to_string());
            }
        }
        if !hashes.is_empty() {
            metrics.seen_lookups.inc_by(hashes.len() as u64);
            let clickhouse = self.clickhouse.clone();
            let hashes: Vec<&str> = hashes.iter().map(String::as_str).collect();
            // Under another id, any epoch not void counts, another sealer's
            // pending one too: the copy may sit in another partition (its
            // first item differs), and if that epoch is voided its records
            // are sealed again by their partition's owner. The same id is
            // the id check's, which counts pending epochs under this claim
            // only (zombie fencing).
            let found = retry::until_done(
                &self.cancel,
                "looking up event hashes already sealed",
                || sealed_ids::sealed_hashes(&clickhouse, &hashes, sealed_ids::Counting::NotVoid),
            )
            .await?;
            let mut sealed_as: HashMap<HashId, Vec<&str>> = HashMap::new();
            for (h, id) in &found {
                if let Some(h) = HashId::parse(h) {
                    sealed_as.entry(h).or_default().push(id);
                }
            }
            for a in &admission.admitted {
                let id = a.event.event_id();
                if a.hash
                    .and_then(|h| sealed_as.get(&h))
                    .is_some_and(|ids| ids.iter().any(|other| *other != id))
                {
                    sealed.insert(id.to_string());
                }
            }
        }
        let mut ask: Vec<(&str, &str)> = Vec::new();
        for a in &admission.admitted {
            let id = a.event.event_id();
            if self.seen.sealed_recently(id) {
                sealed.insert(id.to_string());
            } else if self.seen.may_contain(id) {
                ask.push((id, a.event.key()));
            }
        }
        if !ask.is_empty() {
            metrics.seen_lookups.inc_by(ask.len() as u64);
            let clickhouse = self.clickhouse.clone();
            let found =
                retry::until_done(&self.cancel, "looking up event ids already sealed", || {
                    sealed_ids::sealed_among(
                        &clickhouse,
                        &ask,
                        sealed_ids::Counting::AnchoredOr(lease),
                    )
                })
                .await?;
            sealed.extend(found);
        }
        Ok(sealed)
    }

    /// New device rows, and after an assignment the ids other sealers sealed.
    async fn refresh(&mut self) -> Result<(), Stopped> {
        let mut keys = (*self.keys).clone();
        match tokio::time::timeout(REFRESH_WAIT, devices::refresh(&self.clickhouse, &mut keys))
            .await
        {
            Ok(Ok(0)) => {}
            Ok(Ok(n)) => {
                tracing::info!(rows = n, "device registry changed");
                self.keys = Arc::new(keys);
            }
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "refreshing the device registry; using the last one")
            }
            Err(_) => {
                tracing::warn!("refreshing the device registry timed out; using the last one")
            }
        }
        let assignments = self.shared.assignments.load(Ordering::SeqCst);
        if assignments != self.assignments_seen {
            // Partitions may come from another sealer: its recent ids, with a
            // margin for rows written just before the last read.
            let since = self.ids_read_at.saturating_sub(120);
            let read_at = now_s();
            // A retry re-adds ids already added: the filter does not mind.
            let (clickhouse, seen) = (&self.clickhouse, &self.seen);
            let fresh =
                retry::until_done(&self.cancel, "reading ids sealed by other sealers", || {
                    sealed_ids::load_seen_since(clickhouse, since, seen)
                })
                .await?;
            tracing::info!(ids = fresh, "ids sealed since the last assignment read");
            self.assignments_seen = assignments;
            self.ids_read_at = read_at;
        }
        Ok(())
    }
}

fn now_s() -> u32 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as u32)
}
