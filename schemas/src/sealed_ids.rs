//! Which event ids ClickHouse holds as sealed, for the `SeenIds` filters of the
//! sealer and the gateway: every sealed id at start, the ids sealed since a
//! moment on refresh, and the exact answer for the few ids a filter says "maybe"
//! to. A row counts as sealed only when its epoch has a row in `sealtrail.epochs`.

use std::collections::HashSet;

use crate::seen::SeenIds;

/// Adds every sealed event id (all of `events_by_id`) to `seen`; their count.
/// Orphan rows of an interrupted epoch count too: the filter may only say
/// "maybe", and `sealed_among` decides.
pub async fn load_seen(
    client: &clickhouse::Client,
    seen: &SeenIds,
) -> clickhouse::error::Result<u64> {
    load_ids(
        client,
        "SELECT event_id FROM sealtrail.events_by_id",
        None,
        seen,
    )
    .await
}

/// Adds the ids sealed from `since` (Unix seconds) on, by any sealer.
pub async fn load_seen_since(
    client: &clickhouse::Client,
    since: u32,
    seen: &SeenIds,
) -> clickhouse::error::Result<u64> {
    load_ids(
        client,
        "SELECT event_id FROM sealtrail.scan_events WHERE sealed_at >= toDateTime(?)",
        Some(since),
        seen,
    )
    .await
}

async fn load_ids(
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
    while let Some(id) = cursor.next().await? {
        seen.insert(&id);
        n += 1;
    }
    Ok(n)
}

/// Which of `ids` are sealed: in an event row whose epoch has its row. Ids are
/// looked up by the id index first, so this reads a few granules per id.
pub async fn sealed_among(
    client: &clickhouse::Client,
    ids: &[&str],
) -> clickhouse::error::Result<HashSet<String>> {
    // Only ids that passed the gate get here, and those are UUIDs; anything else
    // is left out rather than spliced into SQL.
    let list: Vec<String> = ids
        .iter()
        .filter(|id| crate::event::is_uuid(id))
        .map(|id| format!("'{id}'"))
        .collect();
    if list.is_empty() {
        return Ok(Default::default());
    }
    let list = list.join(",");
    let rows: Vec<String> = client
        .query(&format!(
            "SELECT DISTINCT event_id FROM sealtrail.scan_events \
             PREWHERE item_id IN (SELECT item_id FROM sealtrail.events_by_id WHERE event_id IN ({list})) \
             WHERE event_id IN ({list}) AND epoch_id IN (SELECT epoch_id FROM sealtrail.epochs)"
        ))
        .fetch_all()
        .await?;
    Ok(rows.into_iter().collect())
}
