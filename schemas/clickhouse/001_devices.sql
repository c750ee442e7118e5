-- Scanner devices and their Ed25519 public keys: the gateway accepts an event only
-- from a device whose latest row here is active. Rows are never updated in place:
-- adding or revoking a device inserts a new row with a higher version, and readers
-- take the row with the highest version (argMax), so the history stays queryable.
CREATE TABLE IF NOT EXISTS sealtrail.devices
(
    device_id String,
    public_key FixedString(32),
    status Enum8('active' = 1, 'revoked' = 2),
    changed_at DateTime,
    version UInt64
)
ENGINE = ReplacingMergeTree(version)
ORDER BY device_id;
