//! Stage 2: a closed window becomes an epoch. The gate (gatekeeper.rs) admits
//! the records that are genuine, new and in bounds; the epoch (epoch.rs) gets
//! its id, its tree and its rows. CPU work runs on the blocking pool, one
//! epoch ahead of the writing stage.

use std::time::Instant;

use tokio::sync::mpsc;

use super::{Context, Window};
use crate::epoch::{self, SealedEpoch};
use crate::gatekeeper::Gatekeeper;
use crate::ledger::Lease;

/// Epoch ids: the window's close time and lowest partition (epoch.rs), and
/// always above the last one this sealer gave, whatever the clock does.
pub struct EpochIds {
    last: u64,
}

impl EpochIds {
    pub fn new() -> Self {
        EpochIds { last: 0 }
    }

    pub fn next(&mut self, window: &Window) -> u64 {
        let lowest = window
            .records
            .iter()
            .map(|r| r.partition)
            .min()
            .unwrap_or(0);
        let id = epoch::epoch_id(window.end_ms, lowest).max(self.last + 1);
        self.last = id;
        id
    }
}

impl Default for EpochIds {
    fn default() -> Self {
        EpochIds::new()
    }
}

/// Seals windows until the consumer closes the channel, or shutdown comes
/// while ClickHouse is away.
pub async fn run(
    ctx: &Context,
    mut windows: mpsc::Receiver<Window>,
    sealed: mpsc::Sender<(SealedEpoch, Lease)>,
) {
    let unsealed = ctx.settings.unsealed_into().is_some();
    let mut gatekeeper = if unsealed {
        None
    } else {
        match Gatekeeper::load(ctx).await {
            Ok(g) => Some(g),
            Err(_) => return,
        }
    };
    let mut ids = EpochIds::new();
    while let Some(window) = windows.recv().await {
        let started = Instant::now();
        let id = ids.next(&window);
        let sealed_at = (window.end_ms / 1000) as u32;
        let (lease, start, end) = (window.lease, window.start_ms, window.end_ms);
        let epoch = match gatekeeper.as_mut() {
            None => {
                tokio::task::spawn_blocking(move || {
                    epoch::unsealed(start, end, window.records, sealed_at)
                })
                .await
            }
            Some(g) => {
                let Ok(admission) = g.admit(window.records, end, lease, &ctx.metrics).await else {
                    // Shutdown while ClickHouse was away: the window is read
                    // again from Kafka by the next run.
                    ctx.shared.finished_one();
                    return;
                };
                tokio::task::spawn_blocking(move || {
                    epoch::seal_admitted(id, start, end, admission, sealed_at)
                })
                .await
            }
        };
        let epoch = match epoch {
            Ok(s) => s,
            Err(e) => {
                // Records cannot panic the gate (each is checked under
                // catch_unwind); this is a bug in the tree or the rows.
                tracing::error!(error = %e, epoch = id, "sealing failed; stopping so a restart retries the window");
                ctx.shared.finished_one();
                return;
            }
        };
        ctx.metrics
            .seal_duration
            .observe(started.elapsed().as_secs_f64());
        if sealed.send((epoch, lease)).await.is_err() {
            ctx.shared.finished_one();
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::epoch::Record;

    fn window(end_ms: i64, partitions: &[i32]) -> Window {
        Window {
            records: partitions
                .iter()
                .map(|&partition| Record {
                    partition,
                    offset: 0,
                    timestamp_ms: 0,
                    value: vec![],
                })
                .collect(),
            start_ms: end_ms - 1000,
            end_ms,
            lease: [0; 16],
        }
    }

    #[test]
    fn epoch_ids_name_the_close_time_and_lowest_partition() {
        let mut ids = EpochIds::new();
        assert_eq!(ids.next(&window(5_000, &[3, 2, 7])), (5_000 << 16) | 2);
    }

    #[test]
    fn epoch_ids_only_grow_even_when_the_clock_goes_back() {
        let mut ids = EpochIds::new();
        let first = ids.next(&window(5_000, &[0]));
        let back = ids.next(&window(4_000, &[0]));
        assert_eq!(back, first + 1);
        let same = ids.next(&window(5_000, &[0]));
        assert_eq!(same, first + 2);
        assert!(ids.next(&window(6_000, &[0])) > same);
    }
}
