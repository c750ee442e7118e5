//! Stage 4: commits epoch roots to the ledger in epoch order, records each
//! anchored epoch in ClickHouse and only then commits its Kafka offsets. A
//! ledger outage leaves epochs pending (sealing goes on) and they are
//! committed, oldest first, once it answers again. Epochs another sealer left
//! pending are adopted after `ORPHANED_AFTER`.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::{Offset, TopicPartitionList};
use tokio::sync::mpsc;

use super::consume::Rebalancing;
use super::{fault, now_ms, Context};
use crate::lease::{self, Settled};
use crate::ledger::{Ledger, LedgerError};
use crate::retry;
use crate::store::epochs::{self as store, EpochRow};

/// Commits roots in epoch order; a ledger outage leaves epochs pending (sealing
/// goes on) and they are committed, oldest first, once it answers again.
pub async fn run<L: Ledger>(
    ctx: Arc<Context>,
    ledger: Arc<L>,
    consumer: Arc<BaseConsumer<Rebalancing>>,
    mut incoming: mpsc::UnboundedReceiver<EpochRow>,
) {
    if ctx.settings.unsealed_into().is_some() {
        // Nothing is sealed, so nothing is anchored.
        while incoming.recv().await.is_some() {}
        return;
    }
    let (clickhouse, metrics, shared) = (&ctx.clickhouse, &ctx.metrics, &ctx.shared);
    let mut pending: BTreeMap<u64, EpochRow> = BTreeMap::new();
    // Epochs a previous run (or a sealer that died) left pending.
    match retry::until_done(&ctx.cancel, "reading pending epochs", || {
        store::pending_epochs(clickhouse)
    })
    .await
    {
        Ok(rows) => pending.extend(rows.into_iter().map(|r| (r.epoch_id, r))),
        Err(retry::Stopped) => return,
    }
    let mut open = true;
    let mut delays = retry::Delays::new();
    let mut give_up_at: Option<Instant> = None;
    let mut refused: HashSet<u64> = HashSet::new();
    let mut next_scan = Instant::now() + ORPHANED_AFTER;
    loop {
        if open && Instant::now() >= next_scan {
            next_scan = Instant::now() + ORPHANED_AFTER;
            adopt_orphans(clickhouse, &mut pending, &refused).await;
        }
        metrics.pending_epochs.set(pending.len() as i64);
        if pending.is_empty() {
            if !open {
                return;
            }
            let until = tokio::time::Instant::from_std(next_scan);
            match tokio::time::timeout_at(until, incoming.recv()).await {
                Ok(Some(row)) => {
                    pending.insert(row.epoch_id, row);
                }
                Ok(None) => open = false,
                Err(_) => {} // time to look for orphaned epochs
            }
            continue;
        }
        while let Ok(row) = incoming.try_recv() {
            pending.insert(row.epoch_id, row);
        }
        if open && incoming.is_closed() && incoming.is_empty() {
            open = false;
        }
        if !open {
            // Shutting down: a little while to anchor what is left, then it stays
            // pending in ClickHouse for the next run.
            let deadline =
                *give_up_at.get_or_insert_with(|| Instant::now() + Duration::from_secs(10));
            if Instant::now() >= deadline {
                tracing::info!(
                    pending = pending.len(),
                    "stopping with epochs pending; the next run anchors them"
                );
                return;
            }
        }
        let (&id, row) = pending.first_key_value().expect("not empty");
        fault!("before-ledger");
        match lease::settle(&*ledger, &ctx, row).await {
            Ok(Settled::Anchored) => {
                commit_offsets(&consumer, &ctx.settings.topic, row);
                pending.remove(&id);
                delays.reset();
            }
            // settle() records a fenced epoch as void and returns Ok(Void).
            Ok(Settled::Void) | Err(LedgerError::Fenced(_)) => {
                if row.lease == *shared.lease.lock().expect("lock") {
                    // Our own claim was replaced while the group still gives us
                    // the partitions (a sealer that claimed with a stale
                    // assignment). Every epoch of ours would be fenced from now
                    // on: take the partitions over again, from the anchored
                    // offsets, so the void epochs' records are sealed again.
                    tracing::warn!(
                        epoch = id,
                        "our claim on the ledger was replaced; taking our partitions over again"
                    );
                    *shared.retake.lock().expect("lock") = Some(row.lease);
                }
                pending.remove(&id);
                delays.reset();
            }
            Err(LedgerError::Refused(why)) => {
                metrics.ledger_refused.inc();
                tracing::error!(epoch = id, %why, "the ledger refused this epoch's root; leaving it pending for audit");
                pending.remove(&id);
                refused.insert(id);
            }
            Err(LedgerError::Unavailable(why)) => {
                tracing::warn!(epoch = id, pending = pending.len(), %why, "ledger unavailable; epochs wait as pending");
                if ctx.cancel.is_cancelled() {
                    // One attempt after shutdown, no waiting: the next run
                    // anchors what is left.
                    tracing::info!(
                        pending = pending.len(),
                        "stopping with epochs pending while the ledger or the store is away; the next run anchors them"
                    );
                    return;
                }
                tokio::select! {
                    _ = delays.wait(&ctx.cancel) => {}
                    row = incoming.recv(), if open => match row {
                        Some(row) => { pending.insert(row.epoch_id, row); }
                        None => open = false,
                    },
                }
            }
        }
    }
}

/// Commits an anchored epoch's offsets to Kafka. Only a hint that spares a new
/// owner some re-reading (the anchored offsets in ClickHouse decide), committed
/// only once anchored so that it never runs past records a fenced epoch held:
/// a new assignment then fetches them again.
fn commit_offsets(consumer: &BaseConsumer<Rebalancing>, topic: &str, row: &EpochRow) {
    let mut tpl = TopicPartitionList::new();
    for (p, last) in row.range_partitions.iter().zip(&row.range_last_offsets) {
        let _ = tpl.add_partition_offset(topic, i32::from(*p), Offset::Offset(*last as i64 + 1));
    }
    if let Err(e) = consumer.commit(&tpl, CommitMode::Async) {
        tracing::debug!(error = %e, "committing offsets to Kafka");
    }
}

/// A sealer killed between writing an epoch row and committing its root leaves
/// the epoch pending; the group's survivors commit it once it is this old (a live
/// owner commits its own within seconds, and a second commit of the same root is
/// a no-op on the ledger).
const ORPHANED_AFTER: Duration = Duration::from_secs(15);

/// Adds to `pending` the epochs pending in ClickHouse for longer than
/// `ORPHANED_AFTER`, whichever sealer wrote them.
async fn adopt_orphans(
    clickhouse: &clickhouse::Client,
    pending: &mut BTreeMap<u64, EpochRow>,
    refused: &HashSet<u64>,
) {
    let rows = match store::pending_epochs(clickhouse).await {
        Ok(rows) => rows,
        Err(e) => {
            tracing::debug!(error = %e, "looking for orphaned pending epochs");
            return;
        }
    };
    let before = now_ms() - ORPHANED_AFTER.as_millis() as i64;
    for row in orphans(rows, before, pending, refused) {
        tracing::info!(epoch = row.epoch_id, instance = %row.instance, "committing an epoch another sealer left pending");
        pending.insert(row.epoch_id, row);
    }
}

/// The rows written before `before_ms` that are neither pending here nor
/// refused by the ledger.
fn orphans(
    rows: Vec<EpochRow>,
    before_ms: i64,
    pending: &BTreeMap<u64, EpochRow>,
    refused: &HashSet<u64>,
) -> Vec<EpochRow> {
    rows.into_iter()
        .filter(|row| {
            row.written_ms < before_ms
                && !refused.contains(&row.epoch_id)
                && !pending.contains_key(&row.epoch_id)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(epoch_id: u64, written_ms: i64) -> EpochRow {
        EpochRow {
            epoch_id,
            instance: "other".into(),
            window_start: 0,
            window_end: 0,
            window_start_ms: 0,
            window_end_ms: 0,
            leaf_count: 1,
            dlq_count: 0,
            root: [0; 32],
            range_partitions: vec![0],
            range_first_offsets: vec![0],
            range_last_offsets: vec![0],
            lease: [1; 16],
            ledger_tx: String::new(),
            ledger_block: 0,
            status: store::PENDING,
            version: written_ms as u64,
            written_ms,
            anchored_ms: 0,
        }
    }

    #[test]
    fn only_old_epochs_neither_pending_here_nor_refused_are_adopted() {
        let pending = BTreeMap::from([(3, row(3, 0))]);
        let refused = HashSet::from([4]);
        let rows = vec![
            row(1, 100),
            row(2, 1_000),
            row(3, 100),
            row(4, 100),
            row(5, 999),
        ];
        let adopted: Vec<u64> = orphans(rows, 1_000, &pending, &refused)
            .iter()
            .map(|r| r.epoch_id)
            .collect();
        assert_eq!(adopted, [1, 5], "2 is too young, 3 pending here, 4 refused");
    }
}
