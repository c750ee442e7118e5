-- Devices keep their whole key history. A ReplacingMergeTree folds a device's
-- rows into the latest on merge, and so forgets the key an earlier event was
-- signed with: after a rotation or revocation that event would no longer verify.
-- A plain MergeTree keeps every row; readers pick the row valid at a moment.
CREATE TABLE IF NOT EXISTS sealtrail.device_keys
(
    device_id String,
    public_key FixedString(32),
    status Enum8('active' = 1, 'revoked' = 2),
    changed_at DateTime,
    version UInt64
)
ENGINE = MergeTree
ORDER BY (device_id, version);

INSERT INTO sealtrail.device_keys
SELECT device_id, public_key, status, changed_at, version FROM sealtrail.devices;

RENAME TABLE sealtrail.devices TO sealtrail.devices_folded, sealtrail.device_keys TO sealtrail.devices;

DROP TABLE sealtrail.devices_folded;
