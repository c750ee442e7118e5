//! What the sealer reads and writes in ClickHouse: event rows, epoch rows, and the
//! sealed offsets a restart resumes from. `epochs` is the source of truth
//! for what is sealed; an event row counts only if its epoch has a row there.

use std::collections::HashMap;

use clickhouse::Row;
use serde::{Deserialize, Serialize};

pub const PENDING: i8 = 1;
pub const ANCHORED: i8 = 2;
/// Refused by the ledger because its partitions were claimed by another sealer
/// since: not sealed, its records are sealed again by the partition's owner.
pub const VOID: i8 = 3;

/// One row of `epochs`, in column order.
#[derive(Row, Serialize, Deserialize, Debug, Clone)]
pub struct EpochRow {
    pub epoch_id: u64,
    pub instance: String,
    pub window_start: u32,
    pub window_end: u32,
    pub window_start_ms: i64,
    pub window_end_ms: i64,
    pub leaf_count: u32,
    pub dlq_count: u32,
    pub root: [u8; 32],
    pub range_partitions: Vec<u16>,
    pub range_first_offsets: Vec<u64>,
    pub range_last_offsets: Vec<u64>,
    /// The ledger claim the epoch was sealed under (zeros before leases).
    pub lease: [u8; 16],
    pub ledger_tx: String,
    pub ledger_block: u64,
    pub status: i8,
    pub version: u64,
    /// When the epoch row was written: its events became queryable.
    pub written_ms: i64,
    /// When its root was committed to the ledger (0 while pending).
    pub anchored_ms: i64,
}

/// Event rows (the sealer's `EventRow`) into `scan_events`. Inserts go
/// uncompressed: the sealer sits next to ClickHouse, and LZ4 on both ends of
/// the request costs CPU the two cores need for the insert itself.
pub async fn insert_events<R>(
    client: &clickhouse::Client,
    rows: &[R],
) -> clickhouse::error::Result<()>
where
    R: clickhouse::RowWrite + for<'a> Row<Value<'a> = R>,
{
    let mut insert = client
        .clone()
        .with_compression(clickhouse::Compression::None)
        .insert::<R>("scan_events")
        .await?;
    for row in rows {
        insert.write(row).await?;
    }
    insert.end().await
}

/// Event rows already written for an epoch: after a failed insert, tells whether
/// it landed anyway (one insert of one block is all or nothing).
pub async fn events_in_epoch(
    client: &clickhouse::Client,
    epoch_id: u64,
) -> clickhouse::error::Result<u64> {
    client
        .query("SELECT count() FROM scan_events WHERE epoch_id = ?")
        .bind(epoch_id)
        .fetch_one()
        .await
}

pub async fn insert_epoch(
    client: &clickhouse::Client,
    row: &EpochRow,
) -> clickhouse::error::Result<()> {
    let mut insert = client.insert::<EpochRow>("epochs").await?;
    insert.write(row).await?;
    insert.end().await
}

/// The last offset of every partition that an anchored epoch covers. Only
/// anchored ones count: a new owner settles every pending epoch of its
/// partitions (anchored or void) before it reads this, and an epoch written
/// after its claim can only become void, so it must not move the resume point.
pub async fn sealed_offsets(
    client: &clickhouse::Client,
) -> clickhouse::error::Result<HashMap<i32, i64>> {
    let rows: Vec<(u16, u64)> = client
        .query(
            "SELECT p, max(o) FROM (SELECT argMax(range_partitions, version) AS ps, \
             argMax(range_last_offsets, version) AS os FROM epochs GROUP BY epoch_id \
             HAVING argMax(status, version) = 'anchored') \
             ARRAY JOIN ps AS p, os AS o GROUP BY p",
        )
        .fetch_all()
        .await?;
    Ok(rows
        .into_iter()
        .map(|(p, o)| (i32::from(p), o as i64))
        .collect())
}

// Reads of an epoch's state filter after FINAL: ClickHouse 18.16 moves WHERE
// conditions to PREWHERE, before FINAL, and would see superseded versions.

/// Epochs in ClickHouse whose root is not yet on the ledger, oldest first.
pub async fn pending_epochs(
    client: &clickhouse::Client,
) -> clickhouse::error::Result<Vec<EpochRow>> {
    client
        .query("SELECT ?fields FROM epochs FINAL WHERE status = 'pending' ORDER BY epoch_id")
        .with_setting("optimize_move_to_prewhere", "0")
        .fetch_all()
        .await
}

/// Epochs pending in ClickHouse with records of any of `partitions`, oldest first.
pub async fn pending_epochs_of(
    client: &clickhouse::Client,
    partitions: &[u16],
) -> clickhouse::error::Result<Vec<EpochRow>> {
    client
        .query(
            "SELECT ?fields FROM epochs FINAL \
             WHERE status = 'pending' AND hasAny(range_partitions, ?) ORDER BY epoch_id",
        )
        .with_setting("optimize_move_to_prewhere", "0")
        .bind(partitions)
        .fetch_all()
        .await
}
