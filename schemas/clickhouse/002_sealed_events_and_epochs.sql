-- What the sealer writes. Column names are a contract: tools outside the project
-- read them. Types run on ClickHouse 18.16 (no DateTime64: times are DateTime plus
-- a millisecond column) and on current releases.

-- One row per sealed event: its fields for analysts, the exact leaf bytes, and the
-- inclusion proof in its epoch's tree. A row counts only when its epoch has a row
-- in sealtrail.epochs (that row is written after the events; see ARCHITECTURE.md).
CREATE TABLE IF NOT EXISTS sealtrail.scan_events
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
    sealed_at DateTime
)
ENGINE = MergeTree
PARTITION BY toYYYYMM(event_time)
ORDER BY (item_id, event_time_ms, event_id);

-- One row per epoch and state: a pending row when its events are in ClickHouse,
-- an anchored row (higher version) once the root is on the ledger. The row with
-- the highest version is the epoch's state. The per-partition offset ranges are
-- what a restart resumes from.
CREATE TABLE IF NOT EXISTS sealtrail.epochs
(
    epoch_id UInt64,
    instance String,
    window_start DateTime,
    window_end DateTime,
    window_start_ms Int64,
    window_end_ms Int64,
    leaf_count UInt32,
    dlq_count UInt32,
    root FixedString(32),
    range_partitions Array(UInt16),
    range_first_offsets Array(UInt64),
    range_last_offsets Array(UInt64),
    ledger_tx String,
    ledger_block UInt64,
    status Enum8('pending' = 1, 'anchored' = 2),
    version UInt64
)
ENGINE = ReplacingMergeTree(version)
ORDER BY epoch_id;
