//! The audit's reads (`sealer audit`): every epoch row, every event row in
//! epoch order (streamed), and the records and ids sealed more than once.

use clickhouse::Row;
use serde::Deserialize;
use verifier::proof::Hash;
use verifier::verify::Columns;

use crate::epochs::EpochRow;

/// Every epoch, its newest row.
pub async fn epochs(client: &clickhouse::Client) -> clickhouse::error::Result<Vec<EpochRow>> {
    client
        .query("SELECT ?fields FROM epochs FINAL ORDER BY epoch_id")
        .fetch_all()
        .await
}

/// One event row as the audit checks it.
#[derive(Row, Deserialize)]
pub struct Leaf {
    pub epoch_id: u64,
    pub leaf_index: u32,
    #[serde(with = "serde_bytes")]
    pub payload: Vec<u8>,
    pub leaf_hash: Hash,
    pub proof: Vec<Hash>,
    pub event_id: String,
    pub item_id: String,
    pub item_ids: Vec<String>,
    pub event_time: u32,
    pub event_time_ms: i64,
    pub event_timezone_offset: String,
    pub action: String,
    pub biz_step: String,
    pub disposition: String,
    pub read_point: String,
    pub biz_location: String,
    pub country: String,
    pub biz_transaction_types: Vec<String>,
    pub biz_transaction_ids: Vec<String>,
    pub temperature_c: Option<f32>,
    pub relative_humidity_pct: Option<f32>,
    pub device_id: String,
    pub event_type: String,
    pub parent_id: String,
    pub child_epcs: Vec<String>,
    pub quantity_classes: Vec<String>,
    pub quantities: Vec<f64>,
    pub quantity_uoms: Vec<String>,
    pub sensor_types: Vec<String>,
    pub sensor_values: Vec<f64>,
    pub event_hash: String,
}

impl Leaf {
    pub fn columns(&self) -> Columns<'_> {
        verifier::columns_of!(self)
    }
}

/// Every event row, in epoch and leaf order, streamed.
pub fn leaves(
    client: &clickhouse::Client,
) -> clickhouse::error::Result<clickhouse::query::RowCursor<Leaf>> {
    client
        .query(
            "SELECT epoch_id, leaf_index, payload, leaf_hash, proof, event_id, item_id, item_ids, \
             event_time, event_time_ms, event_timezone_offset, toString(action) AS action, \
             toString(biz_step) AS biz_step, toString(disposition) AS disposition, read_point, \
             biz_location, country, arrayMap(t -> toString(t), biz_transaction_types) AS biz_transaction_types, \
             biz_transaction_ids, temperature_c, relative_humidity_pct, device_id, \
             event_type, parent_id, child_epcs, quantity_classes, quantities, quantity_uoms, sensor_types, sensor_values, event_hash \
             FROM scan_events ORDER BY epoch_id, leaf_index",
        )
        // The table is sorted for trails, not by epoch: let the sort spill to disk.
        .with_setting("max_bytes_before_external_sort", "500000000")
        .fetch::<Leaf>()
}

/// Up to 10 Kafka records (partition, offset, times) in more than one row of
/// epochs not void.
pub async fn records_sealed_twice(
    client: &clickhouse::Client,
) -> clickhouse::error::Result<Vec<(u16, u64, u64)>> {
    client
        .query(
            "SELECT kafka_partition, kafka_offset, count() AS c FROM scan_events \
             WHERE epoch_id IN (SELECT epoch_id FROM epochs GROUP BY epoch_id \
                                HAVING argMax(status, version) != 'void') \
             GROUP BY kafka_partition, kafka_offset HAVING c > 1 LIMIT 10",
        )
        .fetch_all()
        .await
}

/// Up to 10 event ids (id, times) sealed more than once in epochs not void.
pub async fn ids_sealed_twice(
    client: &clickhouse::Client,
) -> clickhouse::error::Result<Vec<(String, u64)>> {
    client
        .query(
            "SELECT event_id, count() AS c FROM scan_events \
             WHERE epoch_id IN (SELECT epoch_id FROM epochs GROUP BY epoch_id \
                                HAVING argMax(status, version) != 'void') \
             GROUP BY event_id HAVING c > 1 LIMIT 10",
        )
        .fetch_all()
        .await
}

/// Up to 10 GS1 event hashes (hash, ids) sealed under more than one event id
/// in epochs not void: one event sealed twice, under two ids (a copy whose
/// first item fell in another sealer's partition can pass the gate).
pub async fn hashes_sealed_twice(
    client: &clickhouse::Client,
) -> clickhouse::error::Result<Vec<(String, u64)>> {
    client
        .query(
            "SELECT event_hash, uniqExact(event_id) AS c FROM events_by_hash \
             WHERE epoch_id IN (SELECT epoch_id FROM epochs GROUP BY epoch_id \
                                HAVING argMax(status, version) != 'void') \
             GROUP BY event_hash HAVING c > 1 LIMIT 10",
        )
        .fetch_all()
        .await
}

/// The devices that signed in an epoch.
#[derive(Row, Deserialize)]
pub struct Signers {
    pub epoch_id: u64,
    pub devices: Vec<String>,
}

pub async fn signers(client: &clickhouse::Client) -> clickhouse::error::Result<Vec<Signers>> {
    client
        .query("SELECT epoch_id, groupUniqArray(device_id) AS devices FROM scan_events GROUP BY epoch_id")
        .fetch_all()
        .await
}
