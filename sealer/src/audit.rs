//! `sealer audit`: checks that what is on the topic, what is sealed in ClickHouse
//! and what is on the ledger agree. Prints a summary and exits non-zero on any gap
//! or overlap in the sealed offsets, any record, event id or GS1 event hash sealed twice, any epoch whose rows,
//! proofs or root disagree with its epoch row, any root that differs from the ledger,
//! and any device registry state pinned on the ledger that the store's registry no
//! longer gives.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::ClientConfig;

use crate::ledger::Ledger;
use crate::proof::{leaf_hash, verify, EpochTree, Hash};
use crate::store::audit;
use crate::store::epochs::{EpochRow, ANCHORED, VOID};
use crate::store::tiles;
use crate::tile::{tiles_of, Tile, TileId};
use schemas::devices::KeyAt;
use sealer::keyset::{self, Snapshot};
use sealer::verify::altered_columns;

#[derive(Args, Debug, Clone)]
pub struct AuditArgs {
    /// Kafka bootstrap servers.
    #[arg(
        long,
        env = "SEALTRAIL_KAFKA_BROKERS",
        default_value = "127.0.0.1:9092"
    )]
    pub kafka_brokers: String,
    /// Topic of scan events.
    #[arg(long, env = "SEALTRAIL_KAFKA_TOPIC", default_value = "scan-events")]
    pub topic: String,
    /// Also fail when records on the topic are not sealed yet or epochs not anchored.
    #[arg(long)]
    pub complete: bool,
    #[command(flatten)]
    pub kafka_auth: schemas::kafka::KafkaAuth,
}

/// Column mismatches listed one by one before the rest are only counted.
const LISTED_MISMATCHES: u64 = 100;

pub async fn run<L: Ledger>(
    args: &AuditArgs,
    clickhouse: &clickhouse::Client,
    ledger: &L,
) -> anyhow::Result<bool> {
    let mut problems: Vec<String> = Vec::new();
    let all: Vec<EpochRow> = audit::epochs(clickhouse)
        .await
        .context("reading the epochs")?;
    // A void epoch was fenced by the ledger (its sealer had lost its partitions):
    // not sealed, so it takes no part in the offsets, the rows or the ids below,
    // and the one thing to check is that the ledger indeed has no root for it.
    let (void, epochs): (Vec<EpochRow>, Vec<EpochRow>) =
        all.into_iter().partition(|e| e.status == VOID);

    // 1. Sealed offsets: contiguous per partition, no overlaps, no gaps.
    let mut ranges: BTreeMap<u16, Vec<(u64, u64, u64)>> = BTreeMap::new();
    for e in &epochs {
        for ((p, first), last) in e
            .range_partitions
            .iter()
            .zip(&e.range_first_offsets)
            .zip(&e.range_last_offsets)
        {
            ranges
                .entry(*p)
                .or_default()
                .push((*first, *last, e.epoch_id));
        }
        let covered: u64 = e
            .range_first_offsets
            .iter()
            .zip(&e.range_last_offsets)
            .map(|(f, l)| l - f + 1)
            .sum();
        if covered != u64::from(e.leaf_count) + u64::from(e.dlq_count) {
            problems.push(format!(
                "epoch {}: covers {covered} offsets but holds {} events and {} dead letters",
                e.epoch_id, e.leaf_count, e.dlq_count
            ));
        }
    }
    let mut config = ClientConfig::new();
    for (k, v) in args.kafka_auth.settings("sealer")? {
        config.set(k, v);
    }
    let consumer: BaseConsumer = config
        .set("bootstrap.servers", &args.kafka_brokers)
        .create()?;
    let metadata = consumer.fetch_metadata(Some(&args.topic), Duration::from_secs(10))?;
    let partitions = metadata
        .topics()
        .first()
        .map(|t| t.partitions().len())
        .unwrap_or(0);
    let (mut on_topic, mut sealed_offsets, mut backlog) = (0i64, 0u64, 0i64);
    for p in 0..partitions as i32 {
        let (low, high) = consumer.fetch_watermarks(&args.topic, p, Duration::from_secs(10))?;
        on_topic += high - low;
        let mut list = ranges.remove(&(p as u16)).unwrap_or_default();
        list.sort();
        let mut next: Option<u64> = None;
        for (first, last, epoch) in &list {
            if let Some(n) = next {
                if *first > n {
                    problems.push(format!("partition {p}: offsets {n}..{} were never sealed (gap before epoch {epoch})", first - 1));
                } else if *first < n {
                    problems.push(format!(
                        "partition {p}: offsets {first}..{} sealed twice (epoch {epoch} overlaps)",
                        (n - 1).min(*last)
                    ));
                }
            } else if *first > low as u64 {
                problems.push(format!(
                    "partition {p}: offsets {low}..{} on the topic were never sealed",
                    first - 1
                ));
            }
            next = Some(next.map_or(last + 1, |n| n.max(last + 1)));
            sealed_offsets += last - first + 1;
        }
        let sealed_to = next.unwrap_or(low as u64) as i64;
        backlog += (high - sealed_to).max(0);
    }

    // 2. Every epoch's rows: the right count, each record once, leaves recomputed
    //    from the payload, the tree root equal to the epoch's root, and the
    //    stored tree (tiles) equal to the one the leaves build. Rows sealed
    //    before tiles carry their own proofs instead, each checked.
    let committed: HashMap<u64, &EpochRow> = epochs.iter().map(|e| (e.epoch_id, e)).collect();
    let mut cursor = audit::leaves(clickhouse).context("reading the event rows")?;
    let (mut events, mut orphans, mut void_rows) = (0u64, 0u64, 0u64);
    let mut mismatched = 0u64;
    let void_ids: std::collections::HashSet<u64> = void.iter().map(|e| e.epoch_id).collect();
    // Per epoch: its leaf hashes, and whether its rows carry their own proofs.
    let mut seen: HashMap<u64, (Vec<Hash>, bool)> = HashMap::new();
    let mut current: Option<(u64, Vec<Hash>, bool, Option<String>)> = None;
    let mut finish = |cur: Option<(u64, Vec<Hash>, bool, Option<String>)>,
                      problems: &mut Vec<String>| {
        if let Some((id, hashes, own_proofs, problem)) = cur {
            if let Some(p) = problem {
                problems.push(p);
            }
            seen.insert(id, (hashes, own_proofs));
        }
    };
    while let Some(l) = cursor.next().await.context("reading the event rows")? {
        let Some(e) = committed.get(&l.epoch_id) else {
            if void_ids.contains(&l.epoch_id) {
                void_rows += 1;
            } else {
                orphans += 1;
            }
            continue;
        };
        events += 1;
        // The columns beside the payload say what it says (readers show only
        // the payload; analysts' SQL reads the columns).
        if let Ok(event) = schemas::leaf::decode_leaf(&l.payload) {
            let altered = altered_columns(&l.columns(), &event);
            if !altered.is_empty() {
                mismatched += 1;
                if mismatched <= LISTED_MISMATCHES {
                    problems.push(format!(
                        "epoch {}: leaf {} (event {}): {} differ from its payload",
                        l.epoch_id,
                        l.leaf_index,
                        l.event_id,
                        altered.join(", ")
                    ));
                }
            }
        }
        if current.as_ref().is_none_or(|c| c.0 != l.epoch_id) {
            finish(current.take(), &mut problems);
            current = Some((
                l.epoch_id,
                // leaf_count is the store's word: no more than it holds so far.
                Vec::with_capacity((e.leaf_count as usize).min(1 << 20)),
                !l.proof.is_empty(),
                None,
            ));
        }
        let (_, hashes, own_proofs, problem) = current.as_mut().expect("set above");
        if problem.is_some() {
            continue;
        }
        if l.leaf_index as usize != hashes.len() {
            *problem = Some(format!(
                "epoch {}: leaf {} missing or duplicated",
                e.epoch_id,
                hashes.len()
            ));
        } else if leaf_hash(&l.payload) != l.leaf_hash {
            *problem = Some(format!(
                "epoch {}: leaf {} does not hash from its payload",
                e.epoch_id, l.leaf_index
            ));
        } else if *own_proofs == l.proof.is_empty() && e.leaf_count > 1 {
            *problem = Some(format!(
                "epoch {}: leaf {} {} a proof of its own and leaf 0 {}",
                e.epoch_id,
                l.leaf_index,
                if l.proof.is_empty() { "has no" } else { "has" },
                if *own_proofs { "has" } else { "has not" }
            ));
        } else if *own_proofs
            && !verify(
                &l.leaf_hash,
                l.leaf_index.into(),
                e.leaf_count.into(),
                &l.proof,
                &e.root,
            )
        {
            *problem = Some(format!(
                "epoch {}: the proof of leaf {} does not verify",
                e.epoch_id, l.leaf_index
            ));
        }
        hashes.push(l.leaf_hash);
    }
    finish(current.take(), &mut problems);
    if mismatched > LISTED_MISMATCHES {
        problems.push(format!(
            "{} more rows whose columns differ from their payload",
            mismatched - LISTED_MISMATCHES
        ));
    }
    // The stored trees, streamed in epoch order beside the epochs.
    let mut stored_tiles = tiles::all(clickhouse).context("reading the stored trees")?;
    let mut next_tile = stored_tiles
        .next()
        .await
        .context("reading the stored trees")?;
    let mut tiles_checked = 0u64;
    for e in &epochs {
        let mut stored: Vec<Tile> = Vec::new();
        while let Some(t) = next_tile.take() {
            if t.epoch_id > e.epoch_id {
                next_tile = Some(t);
                break;
            }
            if t.epoch_id == e.epoch_id {
                stored.push(t.tile());
            }
            next_tile = stored_tiles
                .next()
                .await
                .context("reading the stored trees")?;
        }
        // An insert retried after it had landed stores a tile twice.
        stored.dedup();
        let (hashes, own_proofs) = seen.remove(&e.epoch_id).unwrap_or_default();
        if hashes.len() != e.leaf_count as usize {
            problems.push(format!(
                "epoch {}: {} event rows for {} leaves",
                e.epoch_id,
                hashes.len(),
                e.leaf_count
            ));
            continue;
        }
        let tree = (!hashes.is_empty()).then(|| EpochTree::build(&hashes));
        let root = tree
            .as_ref()
            .map_or_else(crate::epoch::empty_root, EpochTree::root);
        if root != e.root {
            problems.push(format!(
                "epoch {}: its rows build root {} but the epoch row says {}",
                e.epoch_id,
                hex::encode(root),
                hex::encode(e.root)
            ));
            continue;
        }
        // Rows with their own proofs (sealed before tiles) have no tiles;
        // any stored for their epoch are checked all the same.
        if own_proofs && stored.is_empty() {
            continue;
        }
        let built = tree.as_ref().map(tiles_of).unwrap_or_default();
        tiles_checked += built.len() as u64;
        if stored != built {
            let by_id: HashMap<TileId, &Tile> = stored.iter().map(|t| (t.id, t)).collect();
            let built_ids: std::collections::HashSet<TileId> = built.iter().map(|b| b.id).collect();
            let differs = built
                .iter()
                .find(|b| by_id.get(&b.id) != Some(b))
                .map(|b| b.id)
                .or_else(|| {
                    stored
                        .iter()
                        .find(|s| !built_ids.contains(&s.id))
                        .map(|s| s.id)
                });
            problems.push(match differs {
                Some(id) => format!(
                    "epoch {}: stored tile {}/{} is not the tree its leaves build ({} tiles stored, {} built)",
                    e.epoch_id,
                    id.level,
                    id.index,
                    stored.len(),
                    built.len()
                ),
                None => format!("epoch {}: its stored tiles are not its tree", e.epoch_id),
            });
        }
    }
    let dup = audit::records_sealed_twice(clickhouse).await?;
    for (p, o, c) in dup {
        problems.push(format!("record {p}/{o} is sealed {c} times"));
    }
    // Each event id seals once, ever: a replay is a duplicate, not a new event.
    let twice = audit::ids_sealed_twice(clickhouse).await?;
    for (id, c) in twice {
        problems.push(format!("event id {id} is sealed {c} times"));
    }
    // And each event once, by its GS1 event hash, whatever its ids.
    let twice = audit::hashes_sealed_twice(clickhouse).await?;
    for (hash, c) in twice {
        problems.push(format!("event {hash} is sealed under {c} event ids"));
    }

    // 3. The ledger holds each anchored root, unchanged, and the registry
    // state each names still rebuilds from the store.
    let (mut anchored, mut pending) = (0, 0);
    let mut states: BTreeMap<Hash, u64> = BTreeMap::new();
    let mut pinned_of: HashMap<u64, Hash> = HashMap::new();
    for e in &epochs {
        if e.status != ANCHORED {
            pending += 1;
            continue;
        }
        anchored += 1;
        match ledger.seal_of(e.epoch_id).await {
            Ok(Some(on)) if on.root == e.root && on.leaf_count == u64::from(e.leaf_count) => {
                *states.entry(on.keys).or_default() += 1;
                pinned_of.insert(e.epoch_id, on.keys);
            }
            Ok(Some(on)) => problems.push(format!(
                "epoch {}: ledger holds root {} ({} leaves), ClickHouse {} ({} leaves)",
                e.epoch_id,
                hex::encode(on.root),
                on.leaf_count,
                hex::encode(e.root),
                e.leaf_count
            )),
            Ok(None) => problems.push(format!(
                "epoch {}: marked anchored but not on the ledger",
                e.epoch_id
            )),
            Err(err) => anyhow::bail!("reading the ledger: {err}"),
        }
    }
    let mut rebuilt_states: HashMap<Hash, Snapshot> = HashMap::new();
    if !states.is_empty() {
        let history = crate::store::devices::history(clickhouse)
            .await
            .context("reading the device registry")?;
        for (keys, n) in &states {
            let cutoff = match ledger.key_set_of(*keys).await {
                Ok(Some((cutoff, _, _))) => cutoff,
                Ok(None) => {
                    problems.push(format!(
                        "{n} epochs name device registry state {} the ledger has no commit of",
                        hex::encode(keys)
                    ));
                    continue;
                }
                Err(err) => anyhow::bail!("reading the ledger: {err}"),
            };
            let rebuilt = Snapshot::of(&history, cutoff);
            if rebuilt.root() != *keys {
                problems.push(format!(
                    "device registry state {} ({n} epochs name it) does not rebuild from the registry table devices: its rows up to version {cutoff} give {}; rows were added or changed under it",
                    hex::encode(keys),
                    hex::encode(rebuilt.root())
                ));
            } else {
                rebuilt_states.insert(*keys, rebuilt);
            }
        }
    }
    // Every device that signed in an anchored epoch held a valid key, in the
    // state the epoch names, when the epoch was sealed: else its events can
    // never verify (a sealer pinned the wrong state).
    let signers = audit::signers(clickhouse)
        .await
        .context("reading the devices of each epoch")?;
    let mut unpinned = 0u64;
    for audit::Signers { epoch_id, devices } in signers {
        let Some(keys) = pinned_of.get(&epoch_id) else {
            continue;
        };
        // A state that does not rebuild is reported above.
        let Some(state) = rebuilt_states.get(keys) else {
            continue;
        };
        for d in devices {
            let at = sealer::epoch::sealed_at_ms(epoch_id);
            let valid = state
                .proof(&d)
                .is_some_and(|p| matches!(keyset::key_at(&p, keys, &d, at), Ok(KeyAt::Valid(_))));
            if !valid {
                unpinned += 1;
                if unpinned <= 10 {
                    problems.push(format!(
                        "epoch {epoch_id}: device {d} had no valid key, when the epoch was sealed, in the registry state {} it names",
                        hex::encode(keys)
                    ));
                }
            }
        }
    }
    if unpinned > 10 {
        problems.push(format!(
            "{} more devices of anchored epochs without a valid key in the state their epoch names",
            unpinned - 10
        ));
    }
    for e in &void {
        match ledger.seal_of(e.epoch_id).await {
            Ok(None) => {}
            Ok(Some(_)) => problems.push(format!(
                "epoch {}: marked void but its root is on the ledger",
                e.epoch_id
            )),
            Err(err) => anyhow::bail!("reading the ledger: {err}"),
        }
    }
    if args.complete {
        if backlog > 0 {
            problems.push(format!("{backlog} records on the topic are not sealed yet"));
        }
        if pending > 0 {
            problems.push(format!("{pending} epochs are not anchored yet"));
        }
    }

    println!("topic      {on_topic} records in {partitions} partitions; {backlog} not sealed yet");
    println!(
        "sealed     {sealed_offsets} offsets in {} epochs: {events} events, {} dead letters",
        epochs.len(),
        epochs.iter().map(|e| u64::from(e.dlq_count)).sum::<u64>()
    );
    println!("trees      {tiles_checked} stored tiles equal to the trees the leaves build");
    println!(
        "ledger     {anchored} epochs anchored, {pending} pending; {} device registry states pinned",
        states.len()
    );
    if !void.is_empty() {
        println!(
            "void       {} epochs fenced by the ledger ({void_rows} rows): sealed by a sealer after it lost its partitions; not part of any trail",
            void.len()
        );
    }
    if orphans > 0 {
        println!("note       {orphans} event rows belong to no epoch (an epoch interrupted before its epoch row); they are not part of any trail");
    }
    for p in &problems {
        println!("PROBLEM    {p}");
    }
    println!(
        "{}",
        if problems.is_empty() {
            "audit clean"
        } else {
            "audit FAILED"
        }
    );
    Ok(problems.is_empty())
}
