-- Partitions follow the sealing time, which the sealer sets, not the event time,
-- which a device claims: one epoch of events claiming 101 different months made
-- one insert touch 101 partitions, which current ClickHouse refuses
-- (max_partitions_per_insert_block = 100), and the sealer retried it forever.
-- An epoch's rows share one sealing second, so every insert touches one partition.
CREATE TABLE IF NOT EXISTS sealtrail.scan_events_by_sealing
(
    event_id String,
    item_id String,
    item_ids Array(String),
    event_time DateTime,
    event_time_ms Int64,
    event_timezone_offset String,
    action String,
    biz_step String,
    disposition String,
    read_point String,
    biz_location String,
    country String,
    biz_transaction_types Array(String),
    biz_transaction_ids Array(String),
    temperature_c Nullable(Float32),
    relative_humidity_pct Nullable(Float32),
    device_id String,
    payload String,
    leaf_hash FixedString(32),
    epoch_id UInt64,
    leaf_index UInt32,
    proof Array(FixedString(32)),
    kafka_partition UInt16,
    kafka_offset UInt64,
    sealed_at DateTime,
    kafka_timestamp_ms Int64
)
ENGINE = MergeTree
PARTITION BY toYYYYMM(sealed_at)
ORDER BY (item_id, event_time_ms, event_id);

INSERT INTO sealtrail.scan_events_by_sealing SELECT * FROM sealtrail.scan_events;

RENAME TABLE sealtrail.scan_events TO sealtrail.scan_events_by_event_month, sealtrail.scan_events_by_sealing TO sealtrail.scan_events;

-- The id index is a view of inserts into scan_events: attach it to the new table.
DROP TABLE sealtrail.events_by_id;

CREATE MATERIALIZED VIEW IF NOT EXISTS sealtrail.events_by_id
ENGINE = MergeTree
ORDER BY event_id
POPULATE
AS SELECT event_id, item_id FROM sealtrail.scan_events;

DROP TABLE sealtrail.scan_events_by_event_month;
