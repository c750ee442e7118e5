-- epoch_tiles with granules of 64 rows instead of 8192: a tile row holds up to
-- 16 KB, and ClickHouse reads whole granules, so with 8192 a proof's one tile
-- cost reading up to 128 MB of its neighbours; with 64, about 1 MB. Rebuilt
-- (18.16 cannot change a table's granularity) and refilled.
CREATE TABLE IF NOT EXISTS sealtrail.epoch_tiles_small_granules
(
    epoch_id UInt64,
    tile_level UInt8,
    tile_index UInt32,
    rows Array(String)
)
ENGINE = MergeTree
PARTITION BY toYYYYMM(toDateTime(intDiv(bitShiftRight(epoch_id, 16), 1000)))
ORDER BY (epoch_id, tile_level, tile_index)
SETTINGS index_granularity = 64;

INSERT INTO sealtrail.epoch_tiles_small_granules SELECT * FROM sealtrail.epoch_tiles;

RENAME TABLE sealtrail.epoch_tiles TO sealtrail.epoch_tiles_large_granules, sealtrail.epoch_tiles_small_granules TO sealtrail.epoch_tiles;

DROP TABLE sealtrail.epoch_tiles_large_granules;
