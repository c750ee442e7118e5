-- The sealtrail schema for a ClickHouse cluster (deploy/prod): the same tables and
-- columns as the single-node migrations 001-006, as replicated `*_local` tables on
-- every node of cluster `sealtrail` (ReplicatedMergeTree, coordinated by ClickHouse
-- Keeper) behind Distributed tables with the single-node names, so the sealer, the
-- API and analysts use the names they know. Applied once with
--   clickhouse-client --multiquery < sealtrail_cluster.sql
-- instead of `sealer migrate`. Column names are a contract; the test suite checks
-- they match the single-node migrations.
--
-- Sharding: events by item (cityHash64(item_id)), so an item's trail is on one
-- shard; epochs and devices are small and go to every shard's first replica set by
-- epoch id / device id. The sealer writes with insert_distributed_sync=1 (profile
-- `sealer`), so an epoch's rows are stored before its epoch row, as on one node.

CREATE DATABASE IF NOT EXISTS sealtrail ON CLUSTER sealtrail;

CREATE TABLE IF NOT EXISTS sealtrail.devices_local ON CLUSTER sealtrail
(
    device_id String,
    public_key FixedString(32),
    status Enum8('active' = 1, 'revoked' = 2),
    changed_at DateTime,
    version UInt64
)
ENGINE = ReplicatedMergeTree('/clickhouse/tables/{shard}/sealtrail/devices', '{replica}')
ORDER BY (device_id, version);

CREATE TABLE IF NOT EXISTS sealtrail.devices ON CLUSTER sealtrail AS sealtrail.devices_local
ENGINE = Distributed(sealtrail, sealtrail, devices_local, cityHash64(device_id));

CREATE TABLE IF NOT EXISTS sealtrail.scan_events_local ON CLUSTER sealtrail
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
    kafka_timestamp_ms Int64,
    event_type String DEFAULT 'ObjectEvent',
    parent_id String DEFAULT '',
    child_epcs Array(String),
    quantity_classes Array(String),
    quantities Array(Float64),
    quantity_uoms Array(String),
    sensor_types Array(String),
    sensor_values Array(Float64),
    event_hash String DEFAULT ''
)
ENGINE = ReplicatedMergeTree('/clickhouse/tables/{shard}/sealtrail/scan_events', '{replica}')
PARTITION BY toYYYYMM(sealed_at)
ORDER BY (item_id, event_time_ms, event_id);

CREATE TABLE IF NOT EXISTS sealtrail.scan_events ON CLUSTER sealtrail AS sealtrail.scan_events_local
ENGINE = Distributed(sealtrail, sealtrail, scan_events_local, cityHash64(item_id));

CREATE TABLE IF NOT EXISTS sealtrail.epochs_local ON CLUSTER sealtrail
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
    lease FixedString(16),
    ledger_tx String,
    ledger_block UInt64,
    status Enum8('pending' = 1, 'anchored' = 2, 'void' = 3),
    version UInt64,
    written_ms Int64,
    anchored_ms Int64
)
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/sealtrail/epochs', '{replica}', version)
ORDER BY epoch_id;

-- An epoch's pending and anchored rows share a shard (same epoch id), so FINAL and
-- argMax(…, version) see both.
CREATE TABLE IF NOT EXISTS sealtrail.epochs ON CLUSTER sealtrail AS sealtrail.epochs_local
ENGINE = Distributed(sealtrail, sealtrail, epochs_local, intHash64(epoch_id));

-- Each epoch's tree once, in tiles (migrations 008, 009: granules of 64 rows,
-- as a row holds up to 16 KB); an epoch's tiles share a shard, so one proof's
-- reads go to one shard.
CREATE TABLE IF NOT EXISTS sealtrail.epoch_tiles_local ON CLUSTER sealtrail
(
    epoch_id UInt64,
    tile_level UInt8,
    tile_index UInt32,
    rows Array(String)
)
ENGINE = ReplicatedMergeTree('/clickhouse/tables/{shard}/sealtrail/epoch_tiles', '{replica}')
PARTITION BY toYYYYMM(toDateTime(intDiv(bitShiftRight(epoch_id, 16), 1000)))
ORDER BY (epoch_id, tile_level, tile_index)
SETTINGS index_granularity = 64;

CREATE TABLE IF NOT EXISTS sealtrail.epoch_tiles ON CLUSTER sealtrail AS sealtrail.epoch_tiles_local
ENGINE = Distributed(sealtrail, sealtrail, epoch_tiles_local, intHash64(epoch_id));

CREATE TABLE IF NOT EXISTS sealtrail.events_by_id_local ON CLUSTER sealtrail
(
    event_id String,
    item_id String
)
ENGINE = ReplicatedMergeTree('/clickhouse/tables/{shard}/sealtrail/events_by_id', '{replica}')
ORDER BY event_id;

CREATE MATERIALIZED VIEW IF NOT EXISTS sealtrail.events_by_id_mv ON CLUSTER sealtrail
TO sealtrail.events_by_id_local
AS SELECT event_id, item_id FROM sealtrail.scan_events_local;

CREATE TABLE IF NOT EXISTS sealtrail.events_by_id ON CLUSTER sealtrail AS sealtrail.events_by_id_local
ENGINE = Distributed(sealtrail, sealtrail, events_by_id_local, rand());

CREATE TABLE IF NOT EXISTS sealtrail.memberships_local ON CLUSTER sealtrail
(
    child String,
    item_id String,
    event_id String,
    event_time_ms Int64
)
ENGINE = ReplicatedMergeTree('/clickhouse/tables/{shard}/sealtrail/memberships', '{replica}')
ORDER BY (child, event_time_ms, event_id);

CREATE MATERIALIZED VIEW IF NOT EXISTS sealtrail.memberships_mv ON CLUSTER sealtrail
TO sealtrail.memberships_local
AS SELECT arrayJoin(child_epcs) AS child, item_id, event_id, event_time_ms
FROM sealtrail.scan_events_local
WHERE event_type = 'AggregationEvent';

CREATE TABLE IF NOT EXISTS sealtrail.memberships ON CLUSTER sealtrail AS sealtrail.memberships_local
ENGINE = Distributed(sealtrail, sealtrail, memberships_local, rand());

CREATE TABLE IF NOT EXISTS sealtrail.events_by_hash_local ON CLUSTER sealtrail
(
    event_hash String,
    event_id String,
    epoch_id UInt64
)
ENGINE = ReplicatedMergeTree('/clickhouse/tables/{shard}/sealtrail/events_by_hash', '{replica}')
ORDER BY event_hash;

CREATE MATERIALIZED VIEW IF NOT EXISTS sealtrail.events_by_hash_mv ON CLUSTER sealtrail
TO sealtrail.events_by_hash_local
AS SELECT event_hash, event_id, epoch_id FROM sealtrail.scan_events_local
WHERE event_hash != '';

CREATE TABLE IF NOT EXISTS sealtrail.events_by_hash ON CLUSTER sealtrail AS sealtrail.events_by_hash_local
ENGINE = Distributed(sealtrail, sealtrail, events_by_hash_local, rand());

CREATE TABLE IF NOT EXISTS sealtrail.events_by_epc_local ON CLUSTER sealtrail
(
    epc String,
    item_id String,
    event_id String,
    event_time_ms Int64
)
ENGINE = ReplicatedMergeTree('/clickhouse/tables/{shard}/sealtrail/events_by_epc', '{replica}')
ORDER BY (epc, event_time_ms, event_id);

CREATE MATERIALIZED VIEW IF NOT EXISTS sealtrail.events_by_epc_mv ON CLUSTER sealtrail
TO sealtrail.events_by_epc_local
AS SELECT arrayJoin(arrayFilter(x -> x != item_id, item_ids)) AS epc, item_id, event_id, event_time_ms
FROM sealtrail.scan_events_local
WHERE length(item_ids) > 1 AND event_type != 'AggregationEvent';

CREATE TABLE IF NOT EXISTS sealtrail.events_by_epc ON CLUSTER sealtrail AS sealtrail.events_by_epc_local
ENGINE = Distributed(sealtrail, sealtrail, events_by_epc_local, rand());
