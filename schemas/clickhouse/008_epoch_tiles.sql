-- Each epoch's tree, stored once (verifier/src/tile.rs): tiles of 8 levels and
-- 256 nodes at their lowest level, as C2SP tlog-tiles lays them out, each
-- keeping all 8 of its rows. A proof is read from one tile per 8 levels
-- (schemas/clickhouse/queries/event_proofs.sql), so event rows written from
-- now on leave `proof` empty; rows sealed before keep theirs, and readers use
-- a row's own proof when it has one.
--
-- rows[r + 1] holds the tile's nodes of tree level 8 * tile_level + r, 32
-- bytes each, left to right. Partitioned as scan_events is, by the month the
-- epoch was sealed (its id's high bits are the sealing time in ms).
CREATE TABLE IF NOT EXISTS sealtrail.epoch_tiles
(
    epoch_id UInt64,
    tile_level UInt8,
    tile_index UInt32,
    rows Array(String)
)
ENGINE = MergeTree
PARTITION BY toYYYYMM(toDateTime(intDiv(bitShiftRight(epoch_id, 16), 1000)))
ORDER BY (epoch_id, tile_level, tile_index);
