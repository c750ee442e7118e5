//! Which events ClickHouse holds as sealed, for the `SeenIds` filters of the
//! sealer and the gateway: every sealed event id and GS1 event hash at start,
//! those sealed since a moment on refresh, and the exact answer for the few
//! keys a filter says "maybe" to. A row counts as sealed only when its epoch
//! has a row in `epochs`.

use std::collections::HashSet;

use schemas::seen::SeenIds;

/// Adds every sealed event id (all of `events_by_id`) and event hash (all of
/// `events_by_hash`) to `seen`; how many keys. Orphan rows of an interrupted
/// epoch count too: the filter may only say "maybe", and the lookups decide.
pub async fn load_seen(
    client: &clickhouse::Client,
    seen: &SeenIds,
) -> clickhouse::error::Result<u64> {
    let ids = load_keys(client, "SELECT event_id FROM events_by_id", None, seen).await?;
    let hashes = load_keys(client, "SELECT event_hash FROM events_by_hash", None, seen).await?;
    Ok(ids + hashes)
}

/// Adds the ids and hashes sealed from `since` (Unix seconds) on, by any sealer.
pub async fn load_seen_since(
    client: &clickhouse::Client,
    since: u32,
    seen: &SeenIds,
) -> clickhouse::error::Result<u64> {
    // Rows sealed before scan events' hashes were stored have none.
    load_keys(
        client,
        "SELECT arrayJoin(arrayFilter(k -> k != '', [event_id, event_hash])) \
         FROM scan_events WHERE sealed_at >= toDateTime(?)",
        Some(since),
        seen,
    )
    .await
}

async fn load_keys(
    client: &clickhouse::Client,
    sql: &str,
    bind: Option<u32>,
    seen: &SeenIds,
) -> clickhouse::error::Result<u64> {
    let mut query = client.query(sql);
    if let Some(b) = bind {
        query = query.bind(b);
    }
    let mut cursor = query.fetch::<String>()?;
    let mut n = 0;
    while let Some(key) = cursor.next().await? {
        seen.insert(&key);
        n += 1;
    }
    Ok(n)
}

/// Ids per lookup query: bounded so a query stays far under ClickHouse's
/// max_query_size (256 KiB) whatever a flood of replays brings.
const LOOKUP_CHUNK: usize = 400;

/// Which epochs count as sealing an id (see ARCHITECTURE.md, zombie fencing).
#[derive(Debug, Clone, Copy)]
pub enum Counting<'a> {
    /// Every epoch not void: a reader's or the gateway's view.
    NotVoid,
    /// Anchored epochs, and pending ones sealed under this claim: the sealer
    /// owning the partitions under it. A pending epoch under another claim was
    /// written by a sealer that lost its partitions; it can only become void,
    /// and its records are this sealer's to seal.
    AnchoredOr(&'a [u8; 16]),
}

pub async fn sealed_among(
    client: &clickhouse::Client,
    events: &[(&str, &str)],
    counting: Counting<'_>,
) -> clickhouse::error::Result<HashSet<String>> {
    let mut sealed = HashSet::new();
    for chunk in events.chunks(LOOKUP_CHUNK) {
        let ids: Vec<&str> = chunk.iter().map(|(id, _)| *id).collect();
        let items: Vec<&str> = chunk.iter().map(|(_, item)| *item).collect();
        let mut rows: Vec<(String, u64)> = client
            .query(
                "SELECT DISTINCT event_id, epoch_id FROM scan_events \
                 PREWHERE item_id IN (SELECT arrayJoin(?)) \
                 WHERE event_id IN (SELECT arrayJoin(?))",
            )
            .bind(&items)
            .bind(&ids)
            .fetch_all()
            .await?;
        let found: HashSet<&str> = rows.iter().map(|(id, _)| id.as_str()).collect();
        let rest: Vec<&str> = ids.into_iter().filter(|id| !found.contains(id)).collect();
        if !rest.is_empty() {
            let more: Vec<(String, u64)> = client
                .query(
                    "SELECT DISTINCT event_id, epoch_id FROM scan_events \
                     PREWHERE item_id IN (SELECT item_id FROM events_by_id \
                                          WHERE event_id IN (SELECT arrayJoin(?))) \
                     WHERE event_id IN (SELECT arrayJoin(?))",
                )
                .bind(&rest)
                .bind(&rest)
                .fetch_all()
                .await?;
            rows.extend(more);
        }
        if rows.is_empty() {
            continue;
        }
        // A row counts only when its epoch has its row, and the epoch counts
        // as `counting` says: looked up by key, not by reading every epoch.
        sealed.extend(counted(client, rows, counting).await?);
    }
    Ok(sealed)
}

/// Of these GS1 event hashes, the ones sealed already (`events_by_hash`),
/// with the id each was sealed under: the same event under another id is a
/// duplicate. Counted as `sealed_among` counts ids.
pub async fn sealed_hashes(
    client: &clickhouse::Client,
    hashes: &[&str],
    counting: Counting<'_>,
) -> clickhouse::error::Result<HashSet<(String, String)>> {
    let mut sealed = HashSet::new();
    for chunk in hashes.chunks(LOOKUP_CHUNK) {
        let rows: Vec<(String, String, u64)> = client
            .query(
                "SELECT DISTINCT event_hash, event_id, epoch_id FROM events_by_hash \
                 WHERE event_hash IN (SELECT arrayJoin(?))",
            )
            .bind(chunk)
            .fetch_all()
            .await?;
        if rows.is_empty() {
            continue;
        }
        let rows = rows.into_iter().map(|(h, id, e)| ((h, id), e)).collect();
        sealed.extend(counted(client, rows, counting).await?);
    }
    Ok(sealed)
}

/// The keys (ids, or hashes with their ids) of the rows whose epoch counts as
/// sealing them. Epochs are asked a chunk at a time: rows written in the
/// store may name any number of them, and one query must stay under
/// ClickHouse's max_query_size, or the gate would retry it for ever.
async fn counted<K>(
    client: &clickhouse::Client,
    rows: Vec<(K, u64)>,
    counting: Counting<'_>,
) -> clickhouse::error::Result<Vec<K>> {
    let (status, lease) = match counting {
        Counting::NotVoid => ("status != 'void'", String::new()),
        Counting::AnchoredOr(lease) => (
            "(status = 'anchored' OR (status = 'pending' AND hex(lease) = ?))",
            hex::encode_upper(lease),
        ),
    };
    let mut epochs: Vec<u64> = rows.iter().map(|(_, e)| *e).collect();
    epochs.sort_unstable();
    epochs.dedup();
    let mut written: HashSet<u64> = HashSet::new();
    for chunk in epochs.chunks(LOOKUP_CHUNK) {
        let mut query = client
            .query(&format!(
                "SELECT epoch_id FROM (SELECT epoch_id, argMax(status, version) AS status, \
                 argMax(lease, version) AS lease FROM epochs \
                 WHERE epoch_id IN (SELECT toUInt64(arrayJoin(?))) GROUP BY epoch_id) WHERE {status}"
            ))
            .bind(chunk);
        if matches!(counting, Counting::AnchoredOr(_)) {
            query = query.bind(&lease);
        }
        written.extend(query.fetch_all::<u64>().await?);
    }
    Ok(rows
        .into_iter()
        .filter(|(_, e)| written.contains(e))
        .map(|(key, _)| key)
        .collect())
}
