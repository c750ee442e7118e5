-- When each event entered Kafka, and when its epoch became queryable and was
-- anchored: the seal latency ops watch and the benchmarks report, per event.
-- (ClickHouse 18.16 has no ADD COLUMN IF NOT EXISTS.)
ALTER TABLE sealtrail.scan_events ADD COLUMN kafka_timestamp_ms Int64;
ALTER TABLE sealtrail.epochs ADD COLUMN written_ms Int64;
ALTER TABLE sealtrail.epochs ADD COLUMN anchored_ms Int64;
