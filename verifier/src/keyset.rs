//! Device keys as the ledger pins them. Before an epoch is committed, the sealer
//! commits the state of its device registry: an RFC 6962 tree with one leaf per
//! device, sorted by id, each leaf the device's whole key history up to the
//! state's cutoff (`schemas::devices` owns the leaf format). The epoch's commit
//! names that state's root, and the contract refuses a root it was not given
//! first. A proof bundle carries the device's leaf and its inclusion proof, so a
//! verifier holding only the ledger learns the key the device held when the
//! epoch was sealed; a key registered after the commit cannot be in the state
//! the epoch names.

use schemas::devices::{KeyAt, KeyHistory};

use crate::proof::{self, EpochTree, Hash};

/// One state of the registry as a tree.
pub struct Snapshot {
    cutoff: u64,
    ids: Vec<String>,
    leaves: Vec<Vec<u8>>,
    tree: Option<EpochTree>,
}

/// A device's leaf in a state, and the path from it to the state's root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyProof {
    pub leaf: Vec<u8>,
    pub index: u64,
    pub size: u64,
    pub proof: Vec<Hash>,
}

impl Snapshot {
    /// The registry as `history` held it at `cutoff` (a registry row version).
    pub fn of(history: &KeyHistory, cutoff: u64) -> Snapshot {
        let (ids, leaves): (Vec<String>, Vec<Vec<u8>>) = history
            .snapshot_leaves(cutoff)
            .into_iter()
            .map(|(id, leaf)| (id.to_string(), leaf))
            .unzip();
        let hashes: Vec<Hash> = leaves.iter().map(|l| proof::leaf_hash(l)).collect();
        Snapshot {
            cutoff,
            ids,
            tree: (!hashes.is_empty()).then(|| EpochTree::build(&hashes)),
            leaves,
        }
    }

    /// The root the ledger pins; an empty registry has RFC 6962's empty root,
    /// SHA-256 of nothing (a sealer that checks no signatures commits that).
    pub fn root(&self) -> Hash {
        self.tree
            .as_ref()
            .map_or_else(proof::empty_root, EpochTree::root)
    }

    pub fn cutoff(&self) -> u64 {
        self.cutoff
    }

    pub fn devices(&self) -> u64 {
        self.ids.len() as u64
    }

    /// The proof of `device_id`'s leaf, if the state has the device.
    pub fn proof(&self, device_id: &str) -> Option<KeyProof> {
        let i = self
            .ids
            .binary_search_by(|id| id.as_str().cmp(device_id))
            .ok()?;
        let tree = self.tree.as_ref()?;
        Some(KeyProof {
            leaf: self.leaves[i].clone(),
            index: i as u64,
            size: tree.size() as u64,
            proof: tree.proof(i),
        })
    }
}

/// The key `device_id` held at `at_ms`, as the leaf proven under `root` (a
/// state the ledger pins) says; Err names what does not hold.
pub fn key_at(p: &KeyProof, root: &Hash, device_id: &str, at_ms: i64) -> Result<KeyAt, String> {
    match proof::fold(&proof::leaf_hash(&p.leaf), p.index, p.size, &p.proof) {
        None => return Err("the device-key proof has the wrong shape for its position".into()),
        Some(r) if r != *root => {
            return Err(format!(
                "the device-key proof leads to {}, not to the registry state {} the ledger pins for the epoch",
                hex::encode(r),
                hex::encode(root)
            ))
        }
        Some(_) => {}
    }
    let (id, history) = KeyHistory::from_snapshot_leaf(&p.leaf).map_err(|e| e.to_string())?;
    if id != device_id {
        return Err(format!(
            "the device-key leaf is device {id}'s, the event was signed by {device_id}"
        ));
    }
    Ok(history.key_at(device_id, at_ms))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::SigningKey;

    fn key(n: u8) -> ed25519_dalek::VerifyingKey {
        SigningKey::from_bytes(&[n; 32]).verifying_key()
    }

    fn registry() -> KeyHistory {
        let mut h = KeyHistory::default();
        for (i, id) in ["dock-1", "dock-2", "gate-7", "port-3", "van-9"]
            .iter()
            .enumerate()
        {
            h.record(id, &key(i as u8), false, 1_000);
        }
        h.record("gate-7", &key(20), false, 5_000);
        h.record("van-9", &key(4), true, 6_000);
        h
    }

    #[test]
    fn every_device_proves_the_key_it_held_under_the_state_root() {
        let h = registry();
        let s = Snapshot::of(&h, h.cutoff());
        assert_eq!(s.devices(), 5);
        for id in ["dock-1", "dock-2", "gate-7", "port-3", "van-9"] {
            let p = s.proof(id).unwrap();
            assert_eq!(key_at(&p, &s.root(), id, 7_000), Ok(h.key_at(id, 7_000)));
            assert_eq!(key_at(&p, &s.root(), id, 2_000), Ok(h.key_at(id, 2_000)));
        }
        assert_eq!(
            key_at(&s.proof("gate-7").unwrap(), &s.root(), "gate-7", 5_500),
            Ok(KeyAt::Valid(key(20)))
        );
        assert!(s.proof("nobody").is_none());
    }

    #[test]
    fn a_key_added_after_a_state_is_not_in_it() {
        let mut h = registry();
        let before = Snapshot::of(&h, h.cutoff());
        // An attacker adds a key of their own, dated back, after the commit.
        h.record("dock-1", &key(99), false, 1_500);
        let after = Snapshot::of(&h, h.cutoff());
        assert_ne!(before.root(), after.root());
        let forged = after.proof("dock-1").unwrap();
        let e = key_at(&forged, &before.root(), "dock-1", 2_000).unwrap_err();
        assert!(e.contains("not to the registry state"), "{e}");
    }

    #[test]
    fn another_devices_leaf_or_a_bent_proof_proves_nothing() {
        let h = registry();
        let s = Snapshot::of(&h, h.cutoff());
        let root = s.root();
        let other = s.proof("dock-2").unwrap();
        assert!(key_at(&other, &root, "dock-1", 2_000)
            .unwrap_err()
            .contains("device dock-2's"));
        let mut moved = s.proof("dock-1").unwrap();
        moved.index = 1;
        assert!(key_at(&moved, &root, "dock-1", 2_000).is_err());
        let mut short = s.proof("dock-1").unwrap();
        short.proof.pop();
        assert!(key_at(&short, &root, "dock-1", 2_000).is_err());
        let mut grown = s.proof("dock-1").unwrap();
        grown.size = 1 << 40;
        assert!(key_at(&grown, &root, "dock-1", 2_000).is_err());
    }

    #[test]
    fn an_empty_registry_has_the_rfc_empty_root_and_proves_no_key() {
        let s = Snapshot::of(&KeyHistory::default(), 0);
        assert_eq!(
            hex::encode(s.root()),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert!(s.proof("dock-1").is_none());
    }
}
