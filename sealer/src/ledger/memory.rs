//! A ledger in memory with the SealRegistry's rules (claims, fencing, pinned
//! registry states, roots committed once), for testing the stages and the
//! fencing logic without a chain. It can be taken away and brought back, as a
//! chain that stops answering. `conformance` runs the same calls against any
//! ledger: the suite runs it against the contract on anvil and against this,
//! and they must agree.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

use super::{Anchor, Lease, Ledger, LedgerError, OnLedger};
use crate::proof::Hash;

#[derive(Default)]
struct State {
    block: u64,
    lease_of: HashMap<u16, Lease>,
    claimed: HashSet<Lease>,
    /// cutoff, devices, block
    key_sets: HashMap<Hash, (u64, u64, u64)>,
    seals: HashMap<u64, OnLedger>,
    away: bool,
}

#[derive(Default)]
pub struct MemoryLedger {
    state: Mutex<State>,
}

impl MemoryLedger {
    pub fn new() -> Self {
        MemoryLedger::default()
    }

    /// Takes the ledger away (every call is `Unavailable`) or brings it back.
    pub fn set_away(&self, away: bool) {
        self.lock().away = away;
    }

    /// The epochs committed so far, in epoch order.
    pub fn seals(&self) -> Vec<(u64, OnLedger)> {
        let mut all: Vec<_> = self
            .lock()
            .seals
            .iter()
            .map(|(id, s)| (*id, s.clone()))
            .collect();
        all.sort_by_key(|(id, _)| *id);
        all
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The state for one call: Unavailable while away; a call that changes
    /// something lands in a block of its own.
    fn answering(&self) -> Result<std::sync::MutexGuard<'_, State>, LedgerError> {
        let s = self.lock();
        if s.away {
            return Err(LedgerError::Unavailable(
                "the in-memory ledger is away".into(),
            ));
        }
        Ok(s)
    }
}

fn mined(s: &mut State) -> Anchor {
    s.block += 1;
    Anchor {
        tx: format!("0x{:064x}", s.block),
        block: s.block,
    }
}

fn hex16(l: &Lease) -> String {
    hex::encode(l)
}

impl Ledger for MemoryLedger {
    async fn claim(&self, partitions: &[u16], lease: Lease) -> Result<Anchor, LedgerError> {
        let mut s = self.answering()?;
        if lease == [0; 16] {
            return Err(LedgerError::Refused("a claim of zero".into()));
        }
        if s.claimed.contains(&lease) {
            if partitions.iter().any(|p| s.lease_of.get(p) != Some(&lease)) {
                return Err(LedgerError::Refused(format!(
                    "claim {} was used before",
                    hex16(&lease)
                )));
            }
            return Ok(mined(&mut s));
        }
        s.claimed.insert(lease);
        for p in partitions {
            s.lease_of.insert(*p, lease);
        }
        Ok(mined(&mut s))
    }

    async fn commit_keys(
        &self,
        keys: Hash,
        cutoff: u64,
        devices: u64,
    ) -> Result<Anchor, LedgerError> {
        let mut s = self.answering()?;
        let anchor = mined(&mut s);
        s.key_sets
            .entry(keys)
            .or_insert((cutoff, devices, anchor.block));
        Ok(anchor)
    }

    async fn commit(
        &self,
        epoch_id: u64,
        root: Hash,
        leaf_count: u64,
        keys: Hash,
        partitions: &[u16],
        lease: Lease,
    ) -> Result<Anchor, LedgerError> {
        let mut s = self.answering()?;
        if root == [0; 32] {
            return Err(LedgerError::Refused("an empty root".into()));
        }
        let committed = s.seals.get(&epoch_id).cloned();
        // The contract's order: a same-root retry stands before any lease check.
        if let Some(c) = &committed {
            if c.root == root && c.leaf_count == leaf_count {
                return Ok(mined(&mut s));
            }
        }
        if lease == [0; 16] {
            return Err(LedgerError::Refused("a claim of zero".into()));
        }
        if partitions.is_empty() {
            return Err(LedgerError::Refused(format!(
                "epoch {epoch_id} names no partition"
            )));
        }
        for p in partitions {
            let leased = s.lease_of.get(p).copied().unwrap_or([0; 16]);
            if leased != lease {
                return Err(LedgerError::Fenced(format!(
                    "epoch {epoch_id} covers partition {p}, leased to claim {} since, not to {}",
                    hex16(&leased),
                    hex16(&lease)
                )));
            }
        }
        if let Some(c) = committed {
            return Err(LedgerError::Refused(format!(
                "epoch {epoch_id} has root {} committed, not {}",
                hex::encode(c.root),
                hex::encode(root)
            )));
        }
        if !s.key_sets.contains_key(&keys) {
            return Err(LedgerError::Unavailable(format!(
                "epoch {epoch_id} names device registry state {}, which the ledger does not have",
                hex::encode(keys)
            )));
        }
        let anchor = mined(&mut s);
        s.seals.insert(
            epoch_id,
            OnLedger {
                root,
                leaf_count,
                block: anchor.block,
                keys,
            },
        );
        Ok(anchor)
    }

    async fn seal_of(&self, epoch_id: u64) -> Result<Option<OnLedger>, LedgerError> {
        Ok(self.answering()?.seals.get(&epoch_id).cloned())
    }

    async fn key_set_of(&self, keys: Hash) -> Result<Option<(u64, u64, u64)>, LedgerError> {
        Ok(self.answering()?.key_sets.get(&keys).copied())
    }
}

/// The same calls against any ledger, each outcome as a word (`ok`, `fenced`,
/// `refused`, `unavailable`) or, for reads, what was read without blocks.
pub mod conformance {
    use super::*;

    fn word<T>(r: &Result<T, LedgerError>) -> &'static str {
        match r {
            Ok(_) => "ok",
            Err(LedgerError::Fenced(_)) => "fenced",
            Err(LedgerError::Refused(_)) => "refused",
            Err(LedgerError::Unavailable(_)) => "unavailable",
        }
    }

    /// What each step of the script is expected to give on the SealRegistry.
    pub const EXPECTED: &[&str] = &[
        "commit_keys: ok",
        "claim a [0,1]: ok",
        "commit e1 r1 under a: ok",
        "commit e1 r1 again: ok",
        "commit e1 r2: refused",
        "commit e2 naming unknown keys: unavailable",
        "claim b [1]: ok",
        "commit e3 on [1] under a: fenced",
        "commit e3 on [0] under a: ok",
        "commit e1 r1 again after the fence: ok",
        "commit e3 r4 on [1] under b: refused",
        "claim a [0] again: ok",
        "claim a [1] again: refused",
        "claim zero: refused",
        "commit e4 empty root: refused",
        "commit e5 no partitions: refused",
        "commit e5 under zero: refused",
        "seal_of e1: root r1, 3 leaves, keys k",
        "seal_of e3: root r3, 1 leaves, keys k",
        "seal_of e9: none",
        "key_set_of k: cutoff 11, 2 devices",
        "key_set_of other: none",
        "commit_keys k again with other counts: ok",
        "key_set_of k: cutoff 11, 2 devices",
    ];

    /// Runs the script; `base` offsets the epoch ids and `salt` the claims, so
    /// a ledger that already holds other epochs and claims can run it.
    pub async fn script<L: Ledger>(l: &L, base: u64, salt: u8) -> Vec<String> {
        let mut out = Vec::new();
        let k: Hash = [0x4b ^ salt; 32];
        let other: Hash = [0x4c ^ salt; 32];
        let (a, b): (Lease, Lease) = ([0xa0 ^ salt; 16], [0xb0 ^ salt; 16]);
        let (r1, r2, r3, r4) = ([1; 32], [2; 32], [3; 32], [4; 32]);
        let (e1, e2, e3, e4, e5, e9) = (base + 1, base + 2, base + 3, base + 4, base + 5, base + 9);
        let mut step = |name: &str, w: &str| out.push(format!("{name}: {w}"));
        step("commit_keys", word(&l.commit_keys(k, 11, 2).await));
        step("claim a [0,1]", word(&l.claim(&[0, 1], a).await));
        step(
            "commit e1 r1 under a",
            word(&l.commit(e1, r1, 3, k, &[0, 1], a).await),
        );
        step(
            "commit e1 r1 again",
            word(&l.commit(e1, r1, 3, k, &[0, 1], a).await),
        );
        step(
            "commit e1 r2",
            word(&l.commit(e1, r2, 3, k, &[0, 1], a).await),
        );
        step(
            "commit e2 naming unknown keys",
            word(&l.commit(e2, r1, 1, other, &[0], a).await),
        );
        step("claim b [1]", word(&l.claim(&[1], b).await));
        step(
            "commit e3 on [1] under a",
            word(&l.commit(e3, r3, 1, k, &[1], a).await),
        );
        step(
            "commit e3 on [0] under a",
            word(&l.commit(e3, r3, 1, k, &[0], a).await),
        );
        step(
            "commit e1 r1 again after the fence",
            word(&l.commit(e1, r1, 3, k, &[0, 1], a).await),
        );
        step(
            "commit e3 r4 on [1] under b",
            word(&l.commit(e3, r4, 1, k, &[1], b).await),
        );
        step("claim a [0] again", word(&l.claim(&[0], a).await));
        step("claim a [1] again", word(&l.claim(&[1], a).await));
        step("claim zero", word(&l.claim(&[2], [0; 16]).await));
        step(
            "commit e4 empty root",
            word(&l.commit(e4, [0; 32], 1, k, &[0], a).await),
        );
        step(
            "commit e5 no partitions",
            word(&l.commit(e5, r1, 1, k, &[], a).await),
        );
        step(
            "commit e5 under zero",
            word(&l.commit(e5, r1, 1, k, &[0], [0; 16]).await),
        );
        let name = |h: &Hash| match h {
            h if *h == r1 => "r1".to_string(),
            h if *h == r3 => "r3".to_string(),
            h if *h == k => "k".to_string(),
            h => hex::encode(h),
        };
        for (label, e) in [("e1", e1), ("e3", e3), ("e9", e9)] {
            let read = match l.seal_of(e).await {
                Ok(Some(s)) => format!(
                    "root {}, {} leaves, keys {}",
                    name(&s.root),
                    s.leaf_count,
                    name(&s.keys)
                ),
                Ok(None) => "none".into(),
                Err(e) => format!("error {e}"),
            };
            step(&format!("seal_of {label}"), &read);
        }
        let key_set = |r: Result<Option<(u64, u64, u64)>, LedgerError>| match r {
            Ok(Some((cutoff, devices, _))) => format!("cutoff {cutoff}, {devices} devices"),
            Ok(None) => "none".into(),
            Err(e) => format!("error {e}"),
        };
        step("key_set_of k", &key_set(l.key_set_of(k).await));
        step("key_set_of other", &key_set(l.key_set_of(other).await));
        step(
            "commit_keys k again with other counts",
            word(&l.commit_keys(k, 99, 9).await),
        );
        step("key_set_of k", &key_set(l.key_set_of(k).await));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_in_memory_ledger_follows_the_registry_s_rules() {
        let l = MemoryLedger::new();
        assert_eq!(conformance::script(&l, 0, 0).await, conformance::EXPECTED);
        let epochs: Vec<u64> = l.seals().iter().map(|(id, _)| *id).collect();
        assert_eq!(epochs, [1, 3]);
    }

    #[tokio::test]
    async fn away_it_answers_nothing_and_back_it_has_lost_nothing() {
        let l = MemoryLedger::new();
        l.commit_keys([1; 32], 1, 1).await.unwrap();
        l.claim(&[0], [9; 16]).await.unwrap();
        l.commit(5, [7; 32], 2, [1; 32], &[0], [9; 16])
            .await
            .unwrap();
        l.set_away(true);
        assert!(matches!(
            l.seal_of(5).await,
            Err(LedgerError::Unavailable(_))
        ));
        assert!(matches!(
            l.commit(6, [7; 32], 2, [1; 32], &[0], [9; 16]).await,
            Err(LedgerError::Unavailable(_))
        ));
        l.set_away(false);
        assert_eq!(l.seal_of(5).await.unwrap().unwrap().root, [7; 32]);
        assert_eq!(l.seal_of(6).await.unwrap(), None);
    }
}
