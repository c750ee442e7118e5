//! The device registry (the table `devices`, read by the store crate): which scanners exist and which
//! Ed25519 key each held when. Rows are only ever appended (added, rotated,
//! revoked, each with its time), so the key a device held at any moment stays
//! known: an event verifies against the key valid when it was sealed, and a later
//! rotation or revocation never makes an earlier sealed event fail.

use std::collections::HashMap;

use ed25519_dalek::VerifyingKey;
use serde::{Deserialize, Serialize};

pub const ACTIVE: i8 = 1;
pub const REVOKED: i8 = 2;

/// A row of the registry table `devices` (the store crate reads and appends them).
#[derive(Serialize, Deserialize, Debug, Clone)]
pub struct DeviceRow {
    pub device_id: String,
    pub public_key: [u8; 32],
    pub status: i8,
    pub changed_at: u32,
    /// Microseconds since the Unix epoch when the row was written: from this
    /// moment on, the row is the device's state.
    pub version: u64,
}

/// A device's current state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Device {
    pub device_id: String,
    pub public_key: [u8; 32],
    pub revoked: bool,
    /// Unix seconds of the last change.
    pub changed_at: u32,
    /// How many keys the device has held.
    pub keys: usize,
}

/// One change of a device's state: from `since_us` on, `key` (or nothing, once
/// revoked) is what its events are checked against.
#[derive(Debug, Clone)]
struct Change {
    since_us: u64,
    public_key: [u8; 32],
    /// None when revoked, or when the registered bytes are not a usable key.
    key: Option<VerifyingKey>,
    revoked: bool,
}

impl Change {
    fn new(since_us: u64, public_key: [u8; 32], status: i8) -> Change {
        let revoked = status != ACTIVE;
        Change {
            since_us,
            public_key,
            key: if revoked {
                None
            } else {
                VerifyingKey::from_bytes(&public_key).ok()
            },
            revoked,
        }
    }
}

/// The key a device held at one moment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyAt {
    Valid(VerifyingKey),
    /// Revoked before that moment (at this time, ms).
    Revoked {
        at_ms: i64,
    },
    /// Registered, but only after that moment.
    NotYetRegistered,
    /// Never registered.
    Unknown,
}

/// Every device's whole key history, as read from the registry.
#[derive(Debug, Clone, Default)]
pub struct KeyHistory {
    devices: HashMap<String, Vec<Change>>,
    /// The highest row version read: what a refresh reads on from.
    latest_version: u64,
}

impl KeyHistory {
    pub fn from_rows(rows: Vec<DeviceRow>) -> Self {
        let mut h = KeyHistory::default();
        h.extend(rows);
        h
    }

    pub fn extend(&mut self, rows: Vec<DeviceRow>) {
        for r in rows {
            self.latest_version = self.latest_version.max(r.version);
            self.devices
                .entry(r.device_id)
                .or_default()
                .push(Change::new(r.version, r.public_key, r.status));
        }
        for changes in self.devices.values_mut() {
            // On a tie the revocation wins, then the lower key, whatever order
            // the rows came in: every reader of the same rows keeps the same one.
            changes.sort_by_key(|c| (c.since_us, !c.revoked, c.public_key));
            changes.dedup_by_key(|c| c.since_us);
        }
    }

    /// The key `device_id` held at `at_ms` (ms since the Unix epoch).
    pub fn key_at(&self, device_id: &str, at_ms: i64) -> KeyAt {
        let Some(changes) = self.devices.get(device_id) else {
            return KeyAt::Unknown;
        };
        let at_us = u64::try_from(at_ms).unwrap_or(0).saturating_mul(1000);
        // Revocation is final: a row appended after it re-activates nothing.
        if let Some(r) = changes.iter().find(|c| c.revoked && c.since_us <= at_us) {
            return KeyAt::Revoked {
                at_ms: (r.since_us / 1000) as i64,
            };
        }
        let Some(c) = changes.iter().rev().find(|c| c.since_us <= at_us) else {
            return KeyAt::NotYetRegistered;
        };
        match (&c.key, c.revoked) {
            (Some(key), false) => KeyAt::Valid(*key),
            _ => KeyAt::Revoked {
                at_ms: (c.since_us / 1000) as i64,
            },
        }
    }

    /// When the device was revoked, or its key at `at_ms` replaced, after `at_ms`:
    /// what a reader says of a step signed by a key that is no longer trusted.
    pub fn key_retired_after(&self, device_id: &str, at_ms: i64) -> Option<i64> {
        let at_us = u64::try_from(at_ms).unwrap_or(0).saturating_mul(1000);
        let changes = self.devices.get(device_id)?;
        let current = changes.iter().rev().find(|c| c.since_us <= at_us)?;
        changes
            .iter()
            .find(|c| c.since_us > at_us && (c.revoked || c.public_key != current.public_key))
            .map(|c| (c.since_us / 1000) as i64)
    }

    /// Every device's latest state, sorted by id.
    pub fn current(&self) -> Vec<Device> {
        let mut out: Vec<Device> = self
            .devices
            .iter()
            .filter_map(|(id, changes)| {
                let last = changes.last()?;
                let mut keys: Vec<[u8; 32]> = changes.iter().map(|c| c.public_key).collect();
                keys.sort();
                keys.dedup();
                Some(Device {
                    device_id: id.clone(),
                    public_key: last.public_key,
                    revoked: last.revoked,
                    changed_at: (last.since_us / 1_000_000) as u32,
                    keys: keys.len(),
                })
            })
            .collect();
        out.sort_by(|a, b| a.device_id.cmp(&b.device_id));
        out
    }

    pub fn change_count(&self) -> usize {
        self.devices.values().map(Vec::len).sum()
    }

    pub fn knows(&self, device_id: &str) -> bool {
        self.devices.contains_key(device_id)
    }

    pub fn len(&self) -> usize {
        self.devices.len()
    }

    pub fn is_empty(&self) -> bool {
        self.devices.is_empty()
    }

    /// The newest registry row read (its version, µs): where a snapshot of
    /// this history ends.
    pub fn cutoff(&self) -> u64 {
        self.latest_version
    }

    /// The registry as it stood at `cutoff` (rows up to that version), as the
    /// leaves the ledger pins: one per device, sorted by device id, each the
    /// device's whole key history (`snapshot_leaf`).
    pub fn snapshot_leaves(&self, cutoff: u64) -> Vec<(&str, Vec<u8>)> {
        let mut out: Vec<(&str, Vec<u8>)> = self
            .devices
            .iter()
            .filter_map(|(id, changes)| {
                let upto: Vec<&Change> = changes.iter().filter(|c| c.since_us <= cutoff).collect();
                (!upto.is_empty()).then(|| (id.as_str(), snapshot_leaf(id, &upto)))
            })
            .collect();
        out.sort_by(|a, b| a.0.cmp(b.0));
        out
    }

    /// One device's key history from its snapshot leaf, refusing any encoding
    /// but the one `snapshot_leaves` writes (so one history has one leaf).
    pub fn from_snapshot_leaf(leaf: &[u8]) -> Result<(String, KeyHistory), LeafError> {
        let bad = |why: &str| LeafError(why.to_string());
        let rest = leaf
            .strip_prefix(SNAPSHOT_TAG)
            .ok_or_else(|| bad("not a device-key leaf (wrong tag)"))?;
        let (len, rest) = rest
            .split_first_chunk::<2>()
            .ok_or_else(|| bad("truncated before the device id"))?;
        let len = u16::from_be_bytes(*len) as usize;
        if rest.len() < len {
            return Err(bad("truncated in the device id"));
        }
        let (id, rest) = rest.split_at(len);
        let id = std::str::from_utf8(id).map_err(|_| bad("the device id is not UTF-8"))?;
        let (count, mut rest) = rest
            .split_first_chunk::<4>()
            .ok_or_else(|| bad("truncated before the change count"))?;
        let count = u32::from_be_bytes(*count) as usize;
        if count == 0 || count.checked_mul(CHANGE_BYTES) != Some(rest.len()) {
            return Err(bad("the change count does not match the leaf's length"));
        }
        let mut changes = Vec::with_capacity(count);
        let mut last: Option<u64> = None;
        while let Some((c, more)) = rest.split_first_chunk::<CHANGE_BYTES>() {
            rest = more;
            let version = u64::from_be_bytes(c[..8].try_into().expect("8 bytes"));
            let status = c[8] as i8;
            if status != ACTIVE && status != REVOKED {
                return Err(bad("a change's status is neither active nor revoked"));
            }
            if last.is_some_and(|l| version <= l) {
                return Err(bad("changes are not in strictly increasing order"));
            }
            last = Some(version);
            changes.push(Change::new(
                version,
                c[9..].try_into().expect("32 bytes"),
                status,
            ));
        }
        let mut history = KeyHistory {
            latest_version: last.unwrap_or(0),
            ..KeyHistory::default()
        };
        history.devices.insert(id.to_string(), changes);
        Ok((id.to_string(), history))
    }

    /// Adds a change by hand: for tests of what reads the history.
    pub fn record(&mut self, device_id: &str, key: &VerifyingKey, revoked: bool, at_ms: i64) {
        self.extend(vec![DeviceRow {
            device_id: device_id.into(),
            public_key: key.to_bytes(),
            status: if revoked { REVOKED } else { ACTIVE },
            changed_at: (at_ms / 1000) as u32,
            version: (at_ms as u64) * 1000,
        }]);
    }
}

/// What starts every snapshot leaf: a leaf of the device-key tree can never be
/// taken for an event's (an Avro datum) or another format's.
const SNAPSHOT_TAG: &[u8] = b"sealtrail/device-keys/1\n";
/// version (u64 BE), status (1 active, 2 revoked), public key.
const CHANGE_BYTES: usize = 8 + 1 + 32;

/// One device's history as a snapshot leaf: the tag, the id's length (u16 BE)
/// and bytes, the number of changes (u32 BE), then each change in order.
fn snapshot_leaf(device_id: &str, changes: &[&Change]) -> Vec<u8> {
    let id = &device_id.as_bytes()[..device_id.len().min(u16::MAX as usize)];
    let mut out =
        Vec::with_capacity(SNAPSHOT_TAG.len() + 6 + id.len() + changes.len() * CHANGE_BYTES);
    out.extend_from_slice(SNAPSHOT_TAG);
    out.extend_from_slice(&(id.len() as u16).to_be_bytes());
    out.extend_from_slice(id);
    out.extend_from_slice(&(changes.len() as u32).to_be_bytes());
    for c in changes {
        out.extend_from_slice(&c.since_us.to_be_bytes());
        out.push(if c.revoked {
            REVOKED as u8
        } else {
            ACTIVE as u8
        });
        out.extend_from_slice(&c.public_key);
    }
    out
}

/// A snapshot leaf that does not decode.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("device-key leaf: {0}")]
pub struct LeafError(pub String);

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::SigningKey;

    fn key(n: u8) -> VerifyingKey {
        SigningKey::from_bytes(&[n; 32]).verifying_key()
    }

    #[test]
    fn a_snapshot_leaf_gives_back_the_history_up_to_its_cutoff() {
        let mut h = KeyHistory::default();
        h.record("b", &key(1), false, 1_000);
        h.record("b", &key(2), false, 2_000);
        h.record("b", &key(2), true, 3_000);
        h.record("a", &key(3), false, 2_500);
        assert_eq!(h.cutoff(), 3_000_000);
        let leaves = h.snapshot_leaves(2_500_000);
        let ids: Vec<&str> = leaves.iter().map(|l| l.0).collect();
        assert_eq!(ids, ["a", "b"], "sorted by id");
        let (id, b) = KeyHistory::from_snapshot_leaf(&leaves[1].1).unwrap();
        assert_eq!(id, "b");
        assert_eq!(b.key_at("b", 2_999), KeyAt::Valid(key(2)));
        assert_eq!(
            b.key_at("b", 3_500),
            KeyAt::Valid(key(2)),
            "revoked after the cutoff"
        );
        let (_, b) = KeyHistory::from_snapshot_leaf(&h.snapshot_leaves(3_000_000)[1].1).unwrap();
        assert_eq!(b.key_at("b", 3_500), KeyAt::Revoked { at_ms: 3_000 });
        assert!(h.snapshot_leaves(999_999).is_empty());
    }

    #[test]
    fn a_snapshot_leaf_has_one_encoding() {
        let mut h = KeyHistory::default();
        h.record("d", &key(1), false, 1_000);
        h.record("d", &key(2), false, 2_000);
        let leaf = h.snapshot_leaves(u64::MAX).remove(0).1;
        let refuse = |l: &[u8]| KeyHistory::from_snapshot_leaf(l).unwrap_err();
        refuse(&leaf[1..]);
        refuse(&leaf[..leaf.len() - 1]);
        refuse(&[leaf.as_slice(), &[0]].concat());
        let tag = SNAPSHOT_TAG.len();
        let first = tag + 2 + 1 + 4;
        let mut status = leaf.clone();
        status[first + 8] = 3;
        assert!(refuse(&status).0.contains("status"));
        // The second change moved before the first: same rows, another order.
        let mut swapped = leaf.clone();
        let (a, b) = (first, first + CHANGE_BYTES);
        let second = swapped[b..b + CHANGE_BYTES].to_vec();
        swapped.copy_within(a..a + CHANGE_BYTES, b);
        swapped[a..a + CHANGE_BYTES].copy_from_slice(&second);
        assert!(refuse(&swapped).0.contains("order"));
        let mut zero = leaf[..first].to_vec();
        zero[first - 4..].copy_from_slice(&0u32.to_be_bytes());
        refuse(&zero);
        for cut in 0..leaf.len() {
            let _ = KeyHistory::from_snapshot_leaf(&leaf[..cut]);
        }
    }

    #[test]
    fn the_key_at_a_moment_survives_rotation_and_revocation() {
        let mut h = KeyHistory::default();
        h.record("d", &key(1), false, 1_000);
        h.record("d", &key(2), false, 2_000);
        h.record("d", &key(2), true, 3_000);
        assert_eq!(h.key_at("d", 999), KeyAt::NotYetRegistered);
        assert_eq!(h.key_at("d", 1_000), KeyAt::Valid(key(1)));
        assert_eq!(h.key_at("d", 1_999), KeyAt::Valid(key(1)));
        assert_eq!(h.key_at("d", 2_500), KeyAt::Valid(key(2)));
        assert_eq!(h.key_at("d", 3_000), KeyAt::Revoked { at_ms: 3_000 });
        assert_eq!(h.key_at("e", 2_000), KeyAt::Unknown);
        assert_eq!(h.key_retired_after("d", 1_500), Some(2_000));
        assert_eq!(h.key_retired_after("d", 2_500), Some(3_000));
        assert_eq!(h.key_retired_after("d", 3_500), None);
        let d = &h.current()[0];
        assert!(d.revoked);
        assert_eq!(d.keys, 2);
    }

    #[test]
    fn revocation_is_final_and_wins_a_tie() {
        let mut h = KeyHistory::default();
        h.record("d", &key(1), false, 1_000);
        h.record("d", &key(1), true, 2_000);
        h.record("d", &key(3), false, 3_000); // appended by someone with write access
        assert_eq!(h.key_at("d", 3_500), KeyAt::Revoked { at_ms: 2_000 });
        let mut tie = KeyHistory::default();
        tie.record("e", &key(1), false, 1_000);
        tie.record("e", &key(4), false, 2_000);
        tie.record("e", &key(1), true, 2_000);
        assert_eq!(tie.key_at("e", 2_500), KeyAt::Revoked { at_ms: 2_000 });
    }

    #[test]
    fn rows_read_twice_or_out_of_order_change_nothing() {
        let mut h = KeyHistory::default();
        h.record("d", &key(2), false, 2_000);
        h.record("d", &key(1), false, 1_000);
        h.record("d", &key(2), false, 2_000);
        assert_eq!(h.key_at("d", 1_500), KeyAt::Valid(key(1)));
        assert_eq!(h.key_at("d", 2_500), KeyAt::Valid(key(2)));
        assert_eq!(h.latest_version, 2_000_000);
    }
}
