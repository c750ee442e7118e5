//! The sealer's side of the gate: what `epoch::admit` needs that lives outside
//! the epoch. It keeps the device key history current (re-read before every
//! epoch, only the rows added since) and the ids sealed so far (`seen`), and
//! turns a window's records into an admission with duplicates refused.

use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use schemas::devices::{self, KeyHistory};
use schemas::sealed_ids;
use schemas::seen::SeenIds;

use crate::epoch::{self, Admission, Gate, Record};
use crate::ledger::Lease;
use crate::metrics::Metrics;
use crate::run::{RunArgs, Shared};

pub struct Gatekeeper {
    clickhouse: clickhouse::Client,
    keys: Arc<KeyHistory>,
    seen: SeenIds,
    args: RunArgs,
    shared: Arc<Shared>,
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
    /// Reads the key history and every sealed id, retrying while ClickHouse is away.
    pub async fn load(
        clickhouse: &clickhouse::Client,
        args: &RunArgs,
        shared: Arc<Shared>,
    ) -> Self {
        let keys = retry("reading the device registry", || {
            devices::history(clickhouse)
        })
        .await;
        let started = Instant::now();
        let read_at = now_s();
        let (seen, n) = loop {
            let seen = SeenIds::new(args.seen_capacity);
            match sealed_ids::load_seen(clickhouse, &seen).await {
                Ok(n) => break (seen, n),
                Err(e) => {
                    tracing::warn!(error = %e, "reading the sealed event ids; retrying");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        };
        tracing::info!(
            devices = keys.len(),
            sealed_ids = n,
            seconds = started.elapsed().as_secs_f64(),
            "gate ready: device keys and sealed ids loaded"
        );
        Gatekeeper {
            clickhouse: clickhouse.clone(),
            keys: Arc::new(keys),
            seen,
            args: args.clone(),
            assignments_seen: shared.assignments.load(Ordering::SeqCst),
            shared,
            ids_read_at: read_at,
            lease: None,
        }
    }

    /// The gate for one window closed at `now_ms`.
    pub async fn admit(
        &mut self,
        records: Vec<Record>,
        now_ms: i64,
        lease: Lease,
        metrics: &Metrics,
    ) -> Admission {
        let started = Instant::now();
        self.refresh().await;
        if self.lease != Some(lease) {
            // A new claim: an epoch of ours under the last one may be fenced
            // (void), and its ids must be sealable again. The filter still
            // says "maybe" for them and ClickHouse decides.
            self.seen.forget_recent();
            self.lease = Some(lease);
        }
        let keys = self.keys.clone();
        let (bounds, threads) = (self.args.bounds, self.args.verify_threads);
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
        let sealed = self.sealed_already(&admission, &lease, metrics).await;
        if !sealed.is_empty() {
            tracing::warn!(
                duplicates = sealed.len(),
                "event ids already sealed; dead-lettered"
            );
        }
        admission.refuse_sealed(&sealed);
        self.seen
            .remember_epoch(admission.admitted.iter().map(|a| a.event.event_id.as_str()));
        metrics
            .gate_duration
            .observe(started.elapsed().as_secs_f64());
        admission
    }

    /// Ids of the admission sealed in an earlier epoch, by anyone.
    async fn sealed_already(
        &mut self,
        admission: &Admission,
        lease: &Lease,
        metrics: &Metrics,
    ) -> HashSet<String> {
        let mut sealed = HashSet::new();
        let mut ask: Vec<(&str, &str)> = Vec::new();
        for a in &admission.admitted {
            let id = a.event.event_id.as_str();
            if self.seen.sealed_recently(id) {
                sealed.insert(id.to_string());
            } else if self.seen.may_contain(id) {
                ask.push((id, a.event.key()));
            }
        }
        if !ask.is_empty() {
            metrics.seen_lookups.inc_by(ask.len() as u64);
            let clickhouse = self.clickhouse.clone();
            let found = retry("looking up event ids already sealed", || {
                sealed_ids::sealed_among(&clickhouse, &ask, sealed_ids::Counting::AnchoredOr(lease))
            })
            .await;
            sealed.extend(found);
        }
        sealed
    }

    /// New device rows, and after an assignment the ids other sealers sealed.
    async fn refresh(&mut self) {
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
            let fresh = loop {
                match sealed_ids::load_seen_since(&self.clickhouse, since, &self.seen).await {
                    Ok(n) => break n,
                    Err(e) => {
                        tracing::warn!(error = %e, "reading ids sealed by other sealers; retrying");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                }
            };
            tracing::info!(ids = fresh, "ids sealed since the last assignment read");
            self.assignments_seen = assignments;
            self.ids_read_at = read_at;
        }
    }
}

fn now_s() -> u32 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as u32)
}

async fn retry<T, E: std::fmt::Display, F, Fut>(what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, E>>,
{
    let mut backoff = Duration::from_millis(200);
    loop {
        match f().await {
            Ok(v) => return v,
            Err(e) => {
                tracing::warn!(error = %e, "{what}; retrying");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        }
    }
}
