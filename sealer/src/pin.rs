//! The device registry state a sealer names in its epochs' commits: the
//! registry as read from the store just before the commit, built into a
//! `keyset::Snapshot` and committed on the ledger once per state, before the
//! first epoch that names it.
//!
//! Read at commit time, not taken from the gate: rows are only appended, and a
//! row the gate (this sealer's or a dead one's, whose epoch is adopted) checked
//! an epoch with was visible then, so it is visible now and in the state. A
//! sealer that just started, or adopts another's epoch, pins no less than what
//! that epoch was checked with.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use crate::keyset::Snapshot;
use crate::proof::Hash;
use crate::store::devices;
use schemas::devices::KeyHistory;

use crate::ledger::{Ledger, LedgerError};

#[derive(Default)]
pub struct Pins {
    /// The registry as last read and its state; None until the first read.
    read: tokio::sync::Mutex<Option<(KeyHistory, Arc<Snapshot>)>>,
    committed: Mutex<HashSet<Hash>>,
}

impl Pins {
    /// The registry state now: the rows added since the last read are read
    /// (all of them the first time). Unavailable while the store is: an epoch
    /// is never pinned to a state older than the one it was checked with.
    async fn snapshot(
        &self,
        clickhouse: &clickhouse::Client,
    ) -> Result<Arc<Snapshot>, LedgerError> {
        let unavailable = |e: devices::RegistryError| {
            LedgerError::Unavailable(format!("reading the device registry: {e}"))
        };
        let mut read = self.read.lock().await;
        match read.as_mut() {
            None => {
                let history = devices::history(clickhouse).await.map_err(unavailable)?;
                let s = Arc::new(Snapshot::of(&history, history.cutoff()));
                *read = Some((history, s.clone()));
                Ok(s)
            }
            Some((history, s)) => {
                if devices::refresh(clickhouse, history)
                    .await
                    .map_err(unavailable)?
                    > 0
                {
                    *s = Arc::new(Snapshot::of(history, history.cutoff()));
                }
                Ok(s.clone())
            }
        }
    }

    /// The root of the registry state now, committed on the ledger first if it
    /// is new.
    pub async fn current<L: Ledger>(
        &self,
        ledger: &L,
        clickhouse: &clickhouse::Client,
    ) -> Result<Hash, LedgerError> {
        let s = self.snapshot(clickhouse).await?;
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
