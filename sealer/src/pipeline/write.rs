//! Stage 3: an epoch into ClickHouse, in the order recovery relies on (see
//! ARCHITECTURE.md): dead letters, event rows, the tree's tiles, then the epoch
//! row, which makes the events count; then on to the anchoring stage. Kafka's offsets move only
//! once the epoch is anchored.

use std::time::Instant;

use rdkafka::consumer::BaseConsumer;
use rdkafka::producer::FutureProducer;
use tokio::sync::mpsc;

use super::consume::Rebalancing;
use super::{dead_letter, fault, now_ms, Context};
use crate::epoch::SealedEpoch;
use crate::ledger::Lease;
use crate::retry::{self, Stopped};
use crate::store::epochs::{self as store, EpochRow, PENDING};
use crate::store::tiles;

/// Writes epochs until the sealing stage closes the channel, or shutdown comes
/// while ClickHouse or Kafka is away.
pub async fn run(
    ctx: &Context,
    // Only the unsealed benchmark commits offsets here.
    #[cfg_attr(not(feature = "bench"), allow(unused_variables))] consumer: &BaseConsumer<
        Rebalancing,
    >,
    dlq: &FutureProducer,
    mut sealed: mpsc::Receiver<(SealedEpoch, Lease)>,
    anchor: mpsc::UnboundedSender<EpochRow>,
) {
    while let Some((epoch, lease)) = sealed.recv().await {
        #[cfg(feature = "bench")]
        if let Some(database) = ctx.settings.unsealed_into() {
            if super::unsealed::write(ctx, consumer, database, epoch)
                .await
                .is_err()
            {
                return;
            }
            continue;
        }
        let written = write(ctx, dlq, &epoch, lease).await;
        ctx.shared.finished_one();
        match written {
            Ok(row) => {
                let _ = anchor.send(row);
            }
            Err(Stopped) => {
                tracing::info!(
                    epoch = epoch.epoch_id,
                    "stopping before the epoch was written; the next run seals its records"
                );
                // Whatever is left in the channel is dropped the same way.
                while sealed.recv().await.is_some() {
                    ctx.shared.finished_one();
                }
                return;
            }
        }
    }
}

/// Dead letters, event rows, tiles, epoch row; the epoch row to anchor.
async fn write(
    ctx: &Context,
    dlq: &FutureProducer,
    epoch: &SealedEpoch,
    lease: Lease,
) -> Result<EpochRow, Stopped> {
    dead_letter::send(ctx, dlq, epoch).await?;
    let started = Instant::now();
    write_events(ctx, epoch).await?;
    fault!("events-written");
    write_tiles(ctx, epoch).await?;
    fault!("tiles-written");
    let row = pending_row(epoch, &ctx.settings.instance, lease, now_ms() as u64);
    retry::until_done(&ctx.cancel, "writing the epoch row", || {
        store::insert_epoch(&ctx.clickhouse, &row)
    })
    .await?;
    ctx.metrics
        .clickhouse_write
        .observe(started.elapsed().as_secs_f64());
    fault!("epoch-written");

    ctx.shared.sealed_through(&epoch.ranges);
    ctx.metrics.sealed.inc_by(epoch.rows.len() as u64);
    ctx.metrics.epochs_sealed.inc();
    ctx.metrics.epoch_size.observe(epoch.rows.len() as f64);
    tracing::debug!(
        epoch = epoch.epoch_id,
        events = epoch.rows.len(),
        "epoch sealed"
    );
    Ok(row)
}

async fn write_events(ctx: &Context, epoch: &SealedEpoch) -> Result<(), Stopped> {
    if epoch.rows.is_empty() {
        return Ok(());
    }
    retry::until_done(&ctx.cancel, "writing events to ClickHouse", || async {
        match store::insert_events(&ctx.clickhouse, &epoch.rows).await {
            Ok(()) => Ok(()),
            Err(e) => {
                // One insert is one block: it landed whole or not at all.
                let landed = store::events_in_epoch(&ctx.clickhouse, epoch.epoch_id)
                    .await
                    .ok()
                    == Some(epoch.rows.len() as u64);
                if landed {
                    Ok(())
                } else {
                    Err(e)
                }
            }
        }
    })
    .await
}

async fn write_tiles(ctx: &Context, epoch: &SealedEpoch) -> Result<(), Stopped> {
    if epoch.tiles.is_empty() {
        return Ok(());
    }
    retry::until_done(&ctx.cancel, "writing the tree to ClickHouse", || async {
        match tiles::insert(&ctx.clickhouse, epoch.epoch_id, &epoch.tiles).await {
            Ok(()) => Ok(()),
            Err(e) => {
                // More than ours: an earlier attempt landed too, or copies of
                // another sealer's (readers keep the copy that folds).
                let landed = tiles::count(&ctx.clickhouse, epoch.epoch_id)
                    .await
                    .is_ok_and(|n| n >= epoch.tiles.len() as u64);
                if landed {
                    Ok(())
                } else {
                    Err(e)
                }
            }
        }
    })
    .await
}

/// The epoch's row as written before its root is on the ledger.
fn pending_row(sealed: &SealedEpoch, instance: &str, lease: [u8; 16], version: u64) -> EpochRow {
    EpochRow {
        epoch_id: sealed.epoch_id,
        instance: instance.to_string(),
        window_start: (sealed.window_start_ms / 1000) as u32,
        window_end: (sealed.window_end_ms / 1000) as u32,
        window_start_ms: sealed.window_start_ms,
        window_end_ms: sealed.window_end_ms,
        leaf_count: sealed.rows.len() as u32,
        dlq_count: sealed.rejected.len() as u32,
        root: sealed.root,
        range_partitions: sealed.ranges.iter().map(|r| r.partition as u16).collect(),
        range_first_offsets: sealed.ranges.iter().map(|r| r.first as u64).collect(),
        range_last_offsets: sealed.ranges.iter().map(|r| r.last as u64).collect(),
        lease,
        ledger_tx: String::new(),
        ledger_block: 0,
        status: PENDING,
        version,
        written_ms: version as i64,
        anchored_ms: 0,
    }
}
