//! The device registry state a sealer names in its epochs' commits: the gate's
//! key history (only ever appended to), built into a `keyset::Snapshot` and
//! committed on the ledger once per state, before the first epoch that names it.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, RwLock};

use schemas::devices::KeyHistory;
use sealer::keyset::Snapshot;
use sealer::proof::Hash;

use crate::ledger::{Ledger, LedgerError};

/// The registry state this sealer commits its epochs against: the gate's key
/// history (only ever appended to), committed on the ledger once per state.
#[derive(Default)]
pub struct Pins {
    history: RwLock<Arc<KeyHistory>>,
    /// The last state built, for the history it was built from.
    built: Mutex<Option<(Arc<KeyHistory>, Arc<Snapshot>)>>,
    committed: Mutex<HashSet<Hash>>,
}

impl Pins {
    /// The gate checks with `history` from now on.
    pub fn set(&self, history: Arc<KeyHistory>) {
        *self.history.write().expect("lock") = history;
    }

    fn snapshot(&self) -> Arc<Snapshot> {
        let history = self.history.read().expect("lock").clone();
        let mut built = self.built.lock().expect("lock");
        match &*built {
            Some((h, s)) if Arc::ptr_eq(h, &history) => s.clone(),
            _ => {
                let s = Arc::new(Snapshot::of(&history, history.cutoff()));
                *built = Some((history, s.clone()));
                s
            }
        }
    }

    /// The root of the current state, committed on the ledger first if it is new.
    /// Every row the gate checked an epoch with is in it: rows are only appended.
    pub async fn current<L: Ledger>(&self, ledger: &L) -> Result<Hash, LedgerError> {
        let s = self.snapshot();
        let root = s.root();
        if self.committed.lock().expect("lock").contains(&root) {
            return Ok(root);
        }
        let anchor = ledger.commit_keys(root, s.cutoff(), s.devices()).await?;
        tracing::info!(
            keys = %hex::encode(root),
            devices = s.devices(),
            cutoff = s.cutoff(),
            block = anchor.block,
            "device registry state committed on the ledger"
        );
        self.committed.lock().expect("lock").insert(root);
        Ok(root)
    }

    /// Commits the state again before the next epoch: the ledger was away, and
    /// a chain that comes back may have lost its last blocks.
    pub fn forget_committed(&self) {
        self.committed.lock().expect("lock").clear();
    }
}
