//! Zombie fencing: a sealer given partitions claims them on the ledger before it
//! seals any of their records, and an epoch commits only under the claim still
//! current for every partition it covers (the `SealRegistry` checks it). A sealer
//! paused past its session that wakes with an epoch in hand finds it refused:
//! the epoch is void and its records belong to the new owner.
//!
//! Taking partitions over, in this order (the argument is in ARCHITECTURE.md):
//! 1. commit what earlier owners left pending, under their claims (the claim is
//!    still theirs, so a pending epoch of a sealer that died is not lost);
//! 2. claim the partitions;
//! 3. settle what was written between 1 and 2: committed just before the claim
//!    (anchored) or refused since (void);
//! 4. resume after the offsets of anchored epochs only.

use crate::ledger::{Lease, Ledger, LedgerError};
use crate::pipeline::{now_ms, Context};
use crate::retry::{self, Delays, Stopped};
use crate::store::epochs::{self as store, EpochRow, ANCHORED, VOID};

/// A claim id for one assignment: random, so no two claims are equal.
pub fn fresh() -> Lease {
    let mut lease = [0u8; 16];
    // The OS's generator failing leaves no safe way to go on.
    getrandom::fill(&mut lease).expect("the OS random number generator");
    lease
}

/// How a pending epoch ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Settled {
    Anchored,
    /// Fenced: sealed under a claim its partitions no longer have.
    Void,
}

/// Commits a pending epoch, naming the registry state its events were checked
/// against (`pins`), and records how it ended. `Refused` (another root committed
/// for the epoch) and `Unavailable` are the caller's to handle.
pub async fn settle<L: Ledger>(
    ledger: &L,
    ctx: &Context,
    row: &EpochRow,
) -> Result<Settled, LedgerError> {
    let (clickhouse, metrics, pins) = (&ctx.clickhouse, &ctx.metrics, &ctx.shared.keys);
    let started = std::time::Instant::now();
    let keys = pins.current(ledger, clickhouse).await?;
    let committed = ledger
        .commit(
            row.epoch_id,
            row.root,
            u64::from(row.leaf_count),
            keys,
            &row.range_partitions,
            row.lease,
        )
        .await;
    if let Err(LedgerError::Unavailable(_)) = committed {
        pins.forget_committed();
    }
    let mut done = row.clone();
    // Above the row it settles whatever the clocks of the sealers that wrote
    // them say: a lower version would leave the epoch pending in FINAL.
    done.version = (now_ms() as u64).max(row.version.saturating_add(1));
    let settled = match committed {
        Ok(anchor) => {
            metrics
                .ledger_commit
                .observe(started.elapsed().as_secs_f64());
            done.status = ANCHORED;
            done.ledger_tx = anchor.tx;
            done.ledger_block = anchor.block;
            done.anchored_ms = done.version as i64;
            metrics.epochs_anchored.inc();
            Settled::Anchored
        }
        Err(LedgerError::Fenced(why)) => {
            tracing::warn!(
                epoch = row.epoch_id,
                instance = %row.instance,
                %why,
                "epoch fenced: its partitions were claimed by another sealer; void, its records are sealed again by their owner"
            );
            done.status = VOID;
            metrics.epochs_void.inc();
            Settled::Void
        }
        Err(e) => return Err(e),
    };
    retry::until_done(&ctx.cancel, "recording how an epoch was settled", || {
        store::insert_epoch(clickhouse, &done)
    })
    .await
    // Settled on the ledger, not yet recorded: it stays pending, and the next
    // run's commit of the same root is a no-op that records it.
    .map_err(|Stopped| LedgerError::Unavailable("stopped before recording the outcome".into()))?;
    Ok(settled)
}

/// Takes `partitions` over (steps 1 to 3 above) and returns the claim to seal
/// them under; `Stopped` if shutdown came while the ledger or the store was away.
pub async fn take_over<L: Ledger>(
    ledger: &L,
    ctx: &Context,
    partitions: &[u16],
) -> Result<Lease, Stopped> {
    settle_pending(ledger, ctx, partitions, None).await?;
    let lease = fresh();
    let anchor = retry::until_done(
        &ctx.cancel,
        "claiming partitions on the ledger; sealing them waits",
        || ledger.claim(partitions, lease),
    )
    .await?;
    ctx.metrics.ledger_claims.inc();
    tracing::info!(lease = %hex::encode(lease), ?partitions, block = anchor.block, "partitions claimed on the ledger");
    settle_pending(ledger, ctx, partitions, Some(&lease)).await?;
    Ok(lease)
}

/// Settles every epoch pending on `partitions` except those under `ours`.
async fn settle_pending<L: Ledger>(
    ledger: &L,
    ctx: &Context,
    partitions: &[u16],
    ours: Option<&Lease>,
) -> Result<(), Stopped> {
    let rows = retry::until_done(&ctx.cancel, "reading pending epochs", || {
        store::pending_epochs_of(&ctx.clickhouse, partitions)
    })
    .await?;
    for row in rows.iter().filter(|r| Some(&r.lease) != ours) {
        let mut delays = Delays::new();
        loop {
            match settle(ledger, ctx, row).await {
                Ok(_) => break,
                Err(LedgerError::Refused(why)) => {
                    ctx.metrics.ledger_refused.inc();
                    tracing::error!(epoch = row.epoch_id, %why, "the ledger refused this epoch's root; leaving it pending for audit");
                    break;
                }
                Err(e) => {
                    tracing::warn!(epoch = row.epoch_id, error = %e, "settling an epoch left pending; retrying");
                    delays.wait(&ctx.cancel).await?;
                }
            }
        }
    }
    Ok(())
}
