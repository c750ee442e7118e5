//! The read side: an event's or an item's sealed rows with their epoch, checked
//! against the device registry and the ledger. `sealer verify`, `sealer trail`
//! and the trail API (serve.rs) all go through `Verifier`.
//!
//! Only rows whose epoch has a row in `epochs`, not void, are read:
//! rows of an interrupted epoch, or of one the ledger fenced, were sealed again
//! under another epoch (ARCHITECTURE.md).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;

use sealer::bundle::{self, Bundle};
use sealer::keyset::{self, KeyProof, Snapshot};
use sealer::proof::Hash;
use sealer::verify::{self, Check, Evidence, Failure, KeyRetired, LedgerSeal, Verdict};

use crate::ledger::{EvmLedger, Ledger, LedgerArgs, OnLedger};
use crate::store::epochs::ANCHORED;
pub use crate::store::tiles::TileCache;
pub use crate::store::trail::{Cursor, StepRow, PAGE_MAX};

/// One event by id, if sealed in an epoch not void.
pub async fn event_row(
    client: &clickhouse::Client,
    cache: Option<&TileCache>,
    event_id: &str,
) -> anyhow::Result<Option<StepRow>> {
    crate::store::trail::event_row(client, cache, event_id)
        .await
        .context("reading the event from scan_events")
}

/// One page of an item's steps (`store::trail::item_page`). An event filed
/// under another object is kept only if its signed payload lists the item: a
/// row added to `events_by_epc` cannot put a stranger's event in a trail. One
/// filed under the item that does not list it stays, and fails its columns
/// check. A page may so hold fewer than `limit` steps and still have a next.
pub async fn item_page(
    client: &clickhouse::Client,
    cache: Option<&TileCache>,
    item_id: &str,
    after: Option<&Cursor>,
    limit: usize,
) -> anyhow::Result<(Vec<StepRow>, Option<Cursor>)> {
    let (mut rows, next) = crate::store::trail::item_page(client, cache, item_id, after, limit)
        .await
        .context("reading the item's events from scan_events")?;
    rows.retain(|r| {
        r.item_id == item_id
            || schemas::leaf::decode_leaf(&r.payload).is_ok_and(|e| e.lists(item_id))
    });
    Ok((rows, next))
}

use sealer::epoch::sealed_at_ms;

/// A registry state the ledger pins, as the store rebuilds it, or why not.
type PinnedState = Result<Arc<Snapshot>, String>;

/// How many pinned registry states a `Verifier` keeps rebuilt: each holds the
/// whole registry, and a new one is pinned at each registry change.
const PINNED_CACHE: usize = 16;

/// Checks rows against the registry and the ledger. Roots on the ledger never
/// change once committed, so they are cached; absences and the head are not
/// (an epoch may be anchored a second later). Shared by every request of the
/// API: no lock is held across a ClickHouse or ledger call, except the registry's
/// while it is re-read (every few seconds).
pub struct Verifier {
    client: clickhouse::Client,
    pub ledger: EvmLedger,
    devices: tokio::sync::RwLock<(schemas::devices::KeyHistory, Option<Instant>)>,
    anchored: std::sync::RwLock<HashMap<u64, OnLedger>>,
    /// Registry states pinned on the ledger, rebuilt from the store (or why
    /// not), by root, with when: a bounded cache (`PINNED_CACHE`).
    pinned: std::sync::RwLock<HashMap<Hash, (Instant, PinnedState)>>,
    head: std::sync::Mutex<Option<(u64, Instant)>>,
    chain_id: std::sync::OnceLock<u64>,
}

/// Whether the registry read at `read` is too old to answer for a device
/// (`known`: the registry has heard of it).
fn stale(read: Option<Instant>, known: bool) -> bool {
    read.map(|t| t.elapsed())
        .is_none_or(|a| a > Duration::from_secs(5) || !known && a > Duration::from_millis(250))
}

impl Verifier {
    pub fn new(client: clickhouse::Client, ledger: EvmLedger) -> Verifier {
        Verifier {
            client,
            ledger,
            devices: Default::default(),
            anchored: Default::default(),
            pinned: Default::default(),
            head: Default::default(),
            chain_id: Default::default(),
        }
    }

    /// The key the device held when `epoch_id` was sealed: a key rotated or
    /// revoked since still verifies what was sealed before.
    async fn device_key(&self, device_id: &str, epoch_id: u64) -> anyhow::Result<Option<[u8; 32]>> {
        // Re-read every few seconds, and sooner for a device not seen yet; rows
        // are only appended, so only the new ones are read.
        let needs_read = {
            let d = self.devices.read().await;
            stale(d.1, d.0.knows(device_id))
        };
        if needs_read {
            let mut d = self.devices.write().await;
            // Another request may have read it while this one waited.
            if stale(d.1, d.0.knows(device_id)) {
                crate::store::devices::refresh(&self.client, &mut d.0)
                    .await
                    .context("reading the device registry")?;
                d.1 = Some(Instant::now());
            }
        }
        let d = self.devices.read().await;
        Ok(match d.0.key_at(device_id, sealed_at_ms(epoch_id)) {
            schemas::devices::KeyAt::Valid(key) => Some(key.to_bytes()),
            _ => None,
        })
    }

    async fn head(&self) -> anyhow::Result<u64> {
        let cached = *self.head.lock().expect("lock");
        match cached {
            Some((h, at)) if at.elapsed() < Duration::from_secs(1) => Ok(h),
            _ => {
                let h = self
                    .ledger
                    .head()
                    .await
                    .context("reading the ledger's head")?;
                *self.head.lock().expect("lock") = Some((h, Instant::now()));
                Ok(h)
            }
        }
    }

    /// What the ledger holds for an epoch (root, leaf count, block), if anything.
    pub async fn ledger_seal(&self, epoch_id: u64) -> anyhow::Result<Option<LedgerSeal>> {
        let cached = self.anchored.read().expect("lock").get(&epoch_id).cloned();
        let found = match cached {
            Some(s) => Some(s),
            None => {
                let s = self.ledger.seal_of(epoch_id).await.with_context(|| {
                    format!("reading the root of epoch {epoch_id} on the ledger")
                })?;
                if let Some(s) = &s {
                    self.anchored
                        .write()
                        .expect("lock")
                        .insert(epoch_id, s.clone());
                }
                s
            }
        };
        let Some(s) = found else {
            return Ok(None);
        };
        let head = self.head().await?;
        Ok(Some(LedgerSeal {
            root: s.root,
            leaf_count: s.leaf_count,
            block: s.block,
            confirmations: head.saturating_sub(s.block) + 1,
            keys: s.keys,
        }))
    }

    /// The key `device_id` held when `epoch_id` was sealed, as the registry
    /// state the ledger pins under `keys` gives it, with the check that says so.
    async fn pinned_key(
        &self,
        keys: Hash,
        device_id: &str,
        epoch_id: u64,
    ) -> anyhow::Result<(Option<[u8; 32]>, Check)> {
        Ok(match self.pinned_state(keys).await? {
            Ok(state) => key_check(
                state.proof(device_id).as_ref(),
                &keys,
                device_id,
                epoch_id,
                PINNED,
            ),
            Err(why) => (None, failed_key_check(why)),
        })
    }

    pub async fn check(&self, row: &StepRow) -> anyhow::Result<Verdict> {
        // The signer is the device the payload names, not the column's.
        let device_id = row.signer();
        let ledger = self.ledger_seal(row.epoch_id).await?;
        // Anchored: the key comes from the registry state the ledger pins for
        // the epoch, so a registry row added since cannot change it. Not yet
        // anchored: from the registry (the step fails as not anchored anyway).
        // The registry is read either way: it tells whether the key was retired since.
        let registered = self.device_key(&device_id, row.epoch_id).await?;
        let (device_key, key_check) = match &ledger {
            Some(seal) => {
                let (key, check) = self.pinned_key(seal.keys, &device_id, row.epoch_id).await?;
                (key, Some(check))
            }
            None => (registered, None),
        };
        let key_retired = match device_key {
            Some(_) => KeyRetired::after(
                &self.devices.read().await.0,
                &device_id,
                sealed_at_ms(row.epoch_id),
            ),
            None => None,
        };
        let mut verdict = verify::check(&Evidence {
            event_id: &row.event_id,
            payload: &row.payload,
            stored_leaf_hash: Some(row.leaf_hash),
            leaf_index: row.leaf_index as u64,
            tree_size: row.epoch_size as u64,
            proof: &row.proof,
            epoch_id: row.epoch_id,
            epoch_root: row.epoch_root,
            device_key,
            ledger,
            columns: Some(row.columns()),
        });
        verdict.key_retired = key_retired;
        if let Some(c) = key_check {
            put_key_check(&mut verdict, c);
        }
        Ok(verdict)
    }

    /// The registry state the ledger pins under `keys`, rebuilt from the
    /// store's registry (rows up to its cutoff). Err(why) when the store no
    /// longer gives that state (rows were added or changed under it): a
    /// verdict, not a failure to check.
    async fn pinned_state(&self, keys: Hash) -> anyhow::Result<Result<Arc<Snapshot>, String>> {
        if let Some((at, s)) = self.pinned.read().expect("lock").get(&keys) {
            // A state that does not rebuild is asked again now and then (the
            // store may be mended); one that does never changes.
            if s.is_ok() || at.elapsed() < Duration::from_secs(5) {
                return Ok(s.clone());
            }
        }
        let (cutoff, _, _) = self
            .ledger
            .key_set_of(keys)
            .await
            .context("reading a device registry state on the ledger")?
            .with_context(|| {
                format!(
                    "the ledger has no device registry state {}",
                    hex::encode(keys)
                )
            })?;
        if self.devices.read().await.0.cutoff() < cutoff {
            let mut d = self.devices.write().await;
            crate::store::devices::refresh(&self.client, &mut d.0)
                .await
                .context("reading the device registry")?;
            d.1 = Some(Instant::now());
        }
        let s = Snapshot::of(&self.devices.read().await.0, cutoff);
        let state = if s.root() == keys {
            Ok(Arc::new(s))
        } else {
            Err(format!(
                "the store's device registry no longer gives the state pinned on the ledger: its rows up to version {cutoff} give root {}, the ledger pins {} (rows were added or changed under it)",
                hex::encode(s.root()),
                hex::encode(keys)
            ))
        };
        let mut cache = self.pinned.write().expect("lock");
        if cache.len() >= PINNED_CACHE {
            // The registry changes seldom; the oldest state read is the least
            // likely to be asked for again.
            if let Some(oldest) = cache.iter().min_by_key(|(_, (at, _))| *at).map(|(k, _)| *k) {
                cache.remove(&oldest);
            }
        }
        cache.insert(keys, (Instant::now(), state.clone()));
        Ok(state)
    }

    /// The leaf and proof of `device_id` in the registry state `keys` the
    /// ledger pins: what a browser folds to the `keys` it reads from the chain.
    /// None if the state does not rebuild or lacks the device.
    pub async fn key_proof(&self, keys: Hash, device_id: &str) -> anyhow::Result<Option<KeyProof>> {
        Ok(self
            .pinned_state(keys)
            .await?
            .ok()
            .and_then(|s| s.proof(device_id)))
    }

    /// The proof bundle of a row; None while its epoch is not anchored.
    pub async fn bundle(&self, row: &StepRow) -> anyhow::Result<Option<Bundle>> {
        if row.epoch_status != ANCHORED || row.ledger_tx.is_empty() {
            return Ok(None);
        }
        let Some(seal) = self.ledger_seal(row.epoch_id).await? else {
            return Ok(None);
        };
        let signer = row.signer();
        let keys = self
            .pinned_state(seal.keys)
            .await?
            .map_err(|why| anyhow::anyhow!(why))?
            .proof(&signer)
            .with_context(|| {
                format!(
                    "device {signer} is not in the registry state the ledger pins for epoch {}",
                    row.epoch_id
                )
            })?;
        let chain_id = match self.chain_id.get() {
            Some(&id) => id,
            None => {
                let id = self
                    .ledger
                    .chain_id()
                    .await
                    .context("reading the chain id")?;
                *self.chain_id.get_or_init(|| id)
            }
        };
        Ok(Some(Bundle {
            format: bundle::FORMAT.into(),
            event_id: row.event_id.clone(),
            payload: hex::encode(&row.payload),
            leaf_hash: hex::encode(row.leaf_hash),
            leaf_index: row.leaf_index as u64,
            tree_size: row.epoch_size as u64,
            proof: row.proof.iter().map(hex::encode).collect(),
            root: hex::encode(row.epoch_root),
            epoch_id: row.epoch_id,
            device_id: signer,
            device_keys_root: hex::encode(seal.keys),
            device_keys_leaf: hex::encode(&keys.leaf),
            device_keys_index: keys.index,
            device_keys_size: keys.size,
            device_keys_proof: keys.proof.iter().map(hex::encode).collect(),
            chain_id,
            contract: self.ledger.address().to_string(),
            tx_hash: row.ledger_tx.clone(),
            block: row.ledger_block,
        }))
    }
}

#[derive(Args, Debug)]
#[command(after_help = "\
Exit codes: 0 every check passed; 1 could not check (store or ledger unreachable,
unreadable bundle); 2 usage; 3 unknown event; 4 payload altered; 5 bad signature;
6 bad proof; 7 root differs from the ledger; 8 not yet anchored; 9 the store's
columns differ from the signed payload; 10 the bundle names an untrusted ledger;
11 the bundle's device key is not the one the ledger pins for the epoch.")]
pub struct VerifyArgs {
    /// The event to verify (its event id).
    #[arg(long)]
    pub event: Option<String>,
    /// With --event: write the event's proof bundle to FILE. Alone: verify the
    /// bundle in FILE with the ledger only (no ClickHouse).
    #[arg(long, value_name = "FILE")]
    pub bundle: Option<PathBuf>,
}

fn print_checks(checks: &[Check]) {
    for c in checks {
        println!(
            "{} {:<10} {}",
            if c.ok { "✓" } else { "✗" },
            c.name,
            c.detail
        );
    }
}

fn outcome(v: &Verdict) -> i32 {
    if let Some(k) = v.key_retired {
        println!(
            "  note       {}: the key was valid when the epoch was sealed",
            k.note()
        );
    }
    match v.failure {
        None => {
            println!("verified");
            0
        }
        Some(f) => {
            println!("FAILED: {}", f.message());
            f.exit_code()
        }
    }
}

/// `sealer verify`: returns the process exit code.
pub async fn verify_command(
    args: &VerifyArgs,
    client: &clickhouse::Client,
    ledger: &LedgerArgs,
) -> anyhow::Result<i32> {
    match (&args.event, &args.bundle) {
        (Some(id), out) => {
            let v = Verifier::new(client.clone(), ledger.reader()?);
            let Some(row) = event_row(client, None, id).await? else {
                println!("✗ event      no sealed event with id {id}");
                println!("FAILED: {}", Failure::UnknownEvent.message());
                return Ok(Failure::UnknownEvent.exit_code());
            };
            println!(
                "✓ event      {} found: leaf {} of {} in epoch {}{}",
                row.event_id,
                row.leaf_index,
                row.epoch_size,
                row.epoch_id,
                if row.ledger_tx.is_empty() {
                    String::new()
                } else {
                    format!(", anchored by tx {}", row.ledger_tx)
                }
            );
            let verdict = v.check(&row).await?;
            print_checks(&verdict.checks);
            if let Some(path) = out {
                match v.bundle(&row).await? {
                    Some(b) => {
                        std::fs::write(path, serde_json::to_string_pretty(&b)? + "\n")
                            .with_context(|| format!("writing {}", path.display()))?;
                        println!("  bundle     written to {}", path.display());
                    }
                    None => println!("  bundle     not written: the epoch is not anchored yet"),
                }
            }
            Ok(outcome(&verdict))
        }
        (None, Some(path)) => verify_bundle(path, ledger).await,
        (None, None) => {
            anyhow::bail!("give --event ID (with --bundle FILE to write its bundle) or --bundle FILE to check one")
        }
    }
}

async fn verify_bundle(path: &PathBuf, ledger: &LedgerArgs) -> anyhow::Result<i32> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let b: Bundle = serde_json::from_str(&text)
        .with_context(|| format!("{} is not a proof bundle", path.display()))?;
    let decoded = b.decode()?;
    let named: alloy::primitives::Address =
        b.contract.parse().map_err(|_| bundle::BundleError {
            field: "contract".into(),
            problem: format!("'{}' is not an address", b.contract),
        })?;
    // The anchors come from this verifier's configuration, never from the
    // bundle: anyone can deploy a SealRegistry and commit their own roots.
    let trusted = ledger.contract_address().context(
        "which SealRegistry to trust: give --ledger-contract (or SEALTRAIL_LEDGER_CONTRACT, or the contract file)",
    )?;
    let chain = ledger.reader_at(trusted)?;
    let chain_id = chain.chain_id().await.context("reading the chain id")?;
    if let Some(want) = ledger.ledger_chain_id {
        if chain_id != want {
            anyhow::bail!(
                "--ledger-rpc {} is chain {chain_id}, not the trusted chain {want}",
                ledger.ledger_rpc
            );
        }
    }
    if named != trusted || b.chain_id != chain_id {
        println!(
            "✗ anchor     the bundle names SealRegistry {} on chain {}; this verifier trusts {trusted} on chain {chain_id}",
            b.contract, b.chain_id
        );
        println!("FAILED: {}", Failure::UntrustedAnchor.message());
        return Ok(Failure::UntrustedAnchor.exit_code());
    }
    println!(
        "  bundle     event {} in epoch {}, chain {chain_id}, SealRegistry {}",
        b.event_id, b.epoch_id, b.contract
    );
    let v = Verifier::new(clickhouse::Client::default(), chain);
    let seal = v.ledger_seal(b.epoch_id).await?;
    // The key comes from the registry state the ledger pins for the epoch; the
    // bundle only carries the device's leaf and the path to that state's root.
    let signer = schemas::leaf::signer(&decoded.payload).unwrap_or_else(|| b.device_id.clone());
    // Not anchored: no state is pinned, and a leaf under a root of the
    // bundle's own choosing proves nothing, so it is not even decoded.
    let mut verdict = match &seal {
        Some(s) => {
            let (device_key, check) =
                key_check(Some(&decoded.keys), &s.keys, &signer, b.epoch_id, PINNED);
            let mut verdict = verify::check(&b.evidence(&decoded, seal.clone(), device_key));
            put_key_check(&mut verdict, check);
            verdict
        }
        None => {
            let mut verdict = verify::check(&b.evidence(&decoded, None, None));
            verdict.checks.insert(
                0,
                failed_key_check(
                    "not checked: the ledger has no commit of this epoch, so no device registry state is pinned for it".into(),
                ),
            );
            verdict.failure = Some(Failure::NotAnchored);
            verdict
        }
    };
    // The transaction the bundle names must be the one that committed the root.
    if let Some(s) = &seal {
        let tx = v.ledger.transaction(&b.tx_hash).await;
        let check = match tx {
            Ok(Some((block, true))) if block == s.block => Check {
                name: "tx",
                ok: true,
                detail: format!(
                    "{} mined in block {block}, which committed the root",
                    b.tx_hash
                ),
            },
            Ok(Some((block, ok))) => Check {
                name: "tx",
                ok: false,
                detail: format!(
                    "{} is in block {block} ({}), the root was committed in block {}",
                    b.tx_hash,
                    if ok { "succeeded" } else { "reverted" },
                    s.block
                ),
            },
            Ok(None) => Check {
                name: "tx",
                ok: false,
                detail: format!("the chain does not know transaction {}", b.tx_hash),
            },
            Err(e) => Check {
                name: "tx",
                ok: false,
                detail: format!("{}: {e}", b.tx_hash),
            },
        };
        if !check.ok {
            verdict
                .failure
                .get_or_insert(Failure::RootDiffersFromLedger);
        }
        verdict.checks.push(check);
    }
    print_checks(&verdict.checks);
    Ok(outcome(&verdict))
}

const PINNED: &str = "pinned on the ledger";

fn failed_key_check(detail: String) -> Check {
    Check {
        name: "key",
        ok: false,
        detail,
    }
}

/// The key `signer` held when epoch `epoch_id` was sealed, from its leaf proven
/// (`proof`) under the registry state `root`, with the check that says so.
fn key_check(
    proof: Option<&keyset::KeyProof>,
    root: &Hash,
    signer: &str,
    epoch_id: u64,
    pinned: &str,
) -> (Option<[u8; 32]>, Check) {
    use schemas::devices::KeyAt;
    let fail = |detail: String| (None, failed_key_check(detail));
    let Some(proof) = proof else {
        return fail(format!(
            "device {signer} is not in the registry state {} {pinned}",
            hex::encode(root)
        ));
    };
    match keyset::key_at(proof, root, signer, sealed_at_ms(epoch_id)) {
        Ok(KeyAt::Valid(key)) => (
            Some(key.to_bytes()),
            Check {
                name: "key",
                ok: true,
                detail: format!(
                    "device {signer}'s key {} from registry state {} {pinned}",
                    hex::encode(key.to_bytes()),
                    hex::encode(root)
                ),
            },
        ),
        Ok(KeyAt::Revoked { at_ms }) => fail(format!(
            "device {signer} was revoked ({}) before the epoch was sealed",
            schemas::time::format_rfc3339(at_ms, "")
        )),
        Ok(KeyAt::NotYetRegistered) => fail(format!(
            "device {signer} was registered only after the epoch was sealed"
        )),
        Ok(KeyAt::Unknown) => fail(format!("device {signer} is not in the registry state")),
        Err(why) => fail(why),
    }
}

/// Puts the key's check first. A key the ledger does not pin is the failure:
/// the signature check then fails for want of a key, and the cause comes first.
fn put_key_check(verdict: &mut Verdict, check: Check) {
    if !check.ok {
        verdict.failure = Some(Failure::KeyNotPinned);
    }
    verdict.checks.insert(0, check);
}

#[derive(Args, Debug)]
#[command(after_help = "\
Exit codes: 0 every step verified; 1 could not check; 2 usage; 3 unknown item;
otherwise the code of the first step that failed (see `sealer verify --help`).")]
pub struct TrailArgs {
    /// The item's id (SGTIN URN or GS1 Digital Link URI), as its first item id.
    pub item: String,
}

/// `sealer trail`: returns the process exit code.
pub async fn trail_command(
    args: &TrailArgs,
    client: &clickhouse::Client,
    ledger: &LedgerArgs,
) -> anyhow::Result<i32> {
    let (mut rows, mut next) = item_page(client, None, &args.item, None, PAGE_MAX).await?;
    if rows.is_empty() {
        println!("no sealed events for item {}", args.item);
        return Ok(Failure::UnknownEvent.exit_code());
    }
    let v = Verifier::new(client.clone(), ledger.reader()?);
    println!("trail of {}", args.item);
    let (mut verified, mut first_failure, mut steps) = (0, None, 0);
    let mut epochs = std::collections::BTreeSet::new();
    // Page by page, so a trail of any length is read in bounded memory.
    loop {
        for row in &rows {
            steps += 1;
            let verdict = v.check(row).await?;
            let mark = match verdict.failure {
                None => {
                    verified += 1;
                    match verdict.key_retired {
                        Some(k) => format!("✓ {}", k.note()),
                        None => "✓".to_string(),
                    }
                }
                Some(f) => {
                    first_failure.get_or_insert(f);
                    format!("✗ {}", f.message())
                }
            };
            epochs.insert(row.epoch_id);
            // What the device signed, never the store's columns.
            match verdict.event.as_ref().map(|e| e.summary()) {
                Some(m) => {
                    let f = |k: &str| m.get(k).and_then(|v| v.as_str()).unwrap_or("").to_string();
                    println!(
                        "{}  {:<18} {:<34} {:<2}  {:<28} {mark}",
                        f("event_time"),
                        f("biz_step"),
                        f("biz_location"),
                        f("country"),
                        f("device_id"),
                    )
                }
                None => println!(
                    "{:<29}  event {} (its payload does not decode) {mark}",
                    "-", row.event_id
                ),
            }
        }
        let Some(after) = next else { break };
        (rows, next) = item_page(client, None, &args.item, Some(&after), PAGE_MAX).await?;
    }
    // The containers it was packed into, while it was inside.
    for c in crate::packing::container_steps(client, None, &v, &args.item).await? {
        steps += 1;
        let verdict = v.check(&c.row).await?;
        let mark = match verdict.failure {
            None => {
                verified += 1;
                "✓".to_string()
            }
            Some(f) => {
                first_failure.get_or_insert(f);
                format!("✗ {}", f.message())
            }
        };
        epochs.insert(c.row.epoch_id);
        let m = verdict
            .event
            .as_ref()
            .map(|e| e.summary())
            .unwrap_or_default();
        let f = |k: &str| m.get(k).and_then(|v| v.as_str()).unwrap_or("").to_string();
        let what = if c.packing {
            format!("{} {} {}", f("event_type"), f("action"), c.container)
        } else {
            format!("in container {}", c.container)
        };
        println!(
            "{}  {:<18} {:<34} {what}  {mark}",
            f("event_time"),
            f("biz_step"),
            f("biz_location"),
        );
    }
    println!(
        "{verified} of {steps} steps verified against the ledger ({} epochs, contract {})",
        epochs.len(),
        v.ledger.address()
    );
    Ok(first_failure.map_or(0, |f| f.exit_code()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cursor_reads_back_what_it_writes_and_names_what_is_wrong() {
        let c = Cursor {
            time_ms: -5,
            epoch_id: u64::MAX,
            leaf_index: 7,
            event_id: "an,id,with,commas".into(),
        };
        assert_eq!(Cursor::parse(&c.to_string()), Ok(c));
        for (text, says) in [
            ("", "no time"),
            ("1", "no epoch"),
            ("1,2", "no leaf"),
            ("1,2,3", "event id is empty"),
            ("x,2,3,e", "the time 'x'"),
            ("1,-2,3,e", "the epoch '-2'"),
            ("1,2,99999999999999999999999,e", "the leaf index"),
        ] {
            let e = Cursor::parse(text).unwrap_err();
            assert!(e.contains(says), "{text}: {e}");
        }
        let long = format!("1,2,3,{}", "e".repeat(1025));
        assert!(Cursor::parse(&long).is_err());
        let echoed = Cursor::parse(&format!("{},2,3,e", "9".repeat(10_000))).unwrap_err();
        assert!(echoed.len() < 200, "{echoed}");
    }
}
