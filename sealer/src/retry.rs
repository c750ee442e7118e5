//! Waiting out a service that is away (ClickHouse, Kafka, the ledger): one
//! backoff policy for every stage, and every wait ends at shutdown. A sealer
//! told to stop during an outage exits instead of retrying forever; what it had
//! not written yet is read again from Kafka by the next run (offsets move only
//! once an epoch is anchored).

use std::future::Future;
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};
use tokio_util::sync::CancellationToken;

/// Shutdown came while waiting for a service to answer.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("stopped while waiting for a service to come back")]
pub struct Stopped;

/// 200 ms doubling to 5 s, with jitter so that sealers restarted together do
/// not retry in step; never gives up by itself (only shutdown ends it).
pub fn policy() -> ExponentialBuilder {
    ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(200))
        .with_max_delay(Duration::from_secs(5))
        .with_jitter()
        .without_max_times()
}

/// The delays of `policy`, for loops that do more than call one operation
/// between waits (the dead letters, the anchoring stage).
pub struct Delays(Box<dyn Iterator<Item = Duration> + Send>);

impl Delays {
    pub fn new() -> Self {
        Delays(Box::new(policy().build()))
    }

    /// Waits the next delay; `Stopped` if shutdown comes first.
    pub async fn wait(&mut self, cancel: &CancellationToken) -> Result<(), Stopped> {
        let delay = self.0.next().unwrap_or(Duration::from_secs(5));
        tokio::select! {
            _ = tokio::time::sleep(delay) => Ok(()),
            _ = cancel.cancelled() => Err(Stopped),
        }
    }

    /// Back to the shortest delay, after a success.
    pub fn reset(&mut self) {
        *self = Delays::new();
    }
}

impl Default for Delays {
    fn default() -> Self {
        Delays::new()
    }
}

/// How long an attempt under way at shutdown, or the one attempt made after
/// it, may take: enough for an insert to land, not enough to hang the exit.
pub const GRACE: Duration = Duration::from_secs(5);

/// Runs `op` until it succeeds, logging each failure with `what`, waiting
/// `policy`'s delays between attempts. Shutdown ends the waiting: an attempt
/// under way then gets `GRACE` to finish, and after shutdown one attempt is
/// still made (so a stage finishes what it holds when the service is there),
/// but none is retried: `Stopped`.
pub async fn until_done<T, E, F, Fut>(
    cancel: &CancellationToken,
    what: &str,
    mut op: F,
) -> Result<T, Stopped>
where
    E: std::fmt::Display,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let mut delays = Delays::new();
    loop {
        let mut attempt = std::pin::pin!(op());
        let outcome = tokio::select! {
            biased;
            done = &mut attempt => Some(done),
            _ = cancel.cancelled() => tokio::time::timeout(GRACE, attempt).await.ok(),
        };
        match outcome {
            Some(Ok(v)) => return Ok(v),
            Some(Err(e)) if cancel.is_cancelled() => {
                tracing::warn!(error = %e, "{what}; stopping, not retrying");
                return Err(Stopped);
            }
            Some(Err(e)) => tracing::warn!(error = %e, "{what}; retrying"),
            None => {
                tracing::warn!("{what}; stopping, the attempt did not finish in time");
                return Err(Stopped);
            }
        }
        delays.wait(cancel).await?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::sync::Arc;

    #[tokio::test(start_paused = true)]
    async fn retries_until_the_operation_succeeds() {
        let calls = Arc::new(AtomicU32::new(0));
        let cancel = CancellationToken::new();
        let c = calls.clone();
        let got = until_done(&cancel, "test", || {
            let c = c.clone();
            async move {
                if c.fetch_add(1, Ordering::SeqCst) < 4 {
                    Err("away")
                } else {
                    Ok(7)
                }
            }
        })
        .await;
        assert_eq!(got, Ok(7));
        assert_eq!(calls.load(Ordering::SeqCst), 5);
    }

    #[tokio::test(start_paused = true)]
    async fn shutdown_ends_a_retry_that_would_never_succeed() {
        let cancel = CancellationToken::new();
        let stopper = cancel.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(60)).await;
            stopper.cancel();
        });
        let started = tokio::time::Instant::now();
        let got: Result<(), Stopped> =
            until_done(&cancel, "test", || async { Err::<(), _>("away") }).await;
        assert_eq!(got, Err(Stopped));
        let waited = started.elapsed();
        assert!(
            waited >= Duration::from_secs(60) && waited < Duration::from_secs(61),
            "{waited:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn an_attempt_that_hangs_gets_the_grace_then_stops() {
        let cancel = CancellationToken::new();
        let stopper = cancel.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(3)).await;
            stopper.cancel();
        });
        let started = tokio::time::Instant::now();
        let got: Result<(), Stopped> =
            until_done(&cancel, "test", std::future::pending::<Result<(), &str>>).await;
        assert_eq!(got, Err(Stopped));
        assert_eq!(started.elapsed(), Duration::from_secs(3) + GRACE);
    }

    #[tokio::test(start_paused = true)]
    async fn an_attempt_under_way_at_shutdown_may_finish() {
        let cancel = CancellationToken::new();
        let stopper = cancel.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(1)).await;
            stopper.cancel();
        });
        let got = until_done(&cancel, "test", || async {
            tokio::time::sleep(Duration::from_secs(2)).await;
            Ok::<_, &str>(1)
        })
        .await;
        assert_eq!(got, Ok(1));
    }

    #[tokio::test(start_paused = true)]
    async fn after_shutdown_one_attempt_is_made_and_none_retried() {
        let cancel = CancellationToken::new();
        cancel.cancel();
        assert_eq!(
            until_done(&cancel, "test", || async { Ok::<_, &str>(2) }).await,
            Ok(2)
        );
        let calls = Arc::new(AtomicU32::new(0));
        let c = calls.clone();
        let got: Result<(), Stopped> = until_done(&cancel, "test", || {
            c.fetch_add(1, Ordering::SeqCst);
            async { Err::<(), _>("away") }
        })
        .await;
        assert_eq!(got, Err(Stopped));
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn delays_grow_to_five_seconds_and_reset() {
        let cancel = CancellationToken::new();
        let mut delays = Delays::new();
        let mut waits = Vec::new();
        for _ in 0..10 {
            let t = tokio::time::Instant::now();
            delays.wait(&cancel).await.unwrap();
            waits.push(t.elapsed());
        }
        assert!(waits[0] < Duration::from_millis(500), "{waits:?}");
        assert!(
            waits.iter().all(|w| *w <= Duration::from_secs(10)),
            "{waits:?}"
        );
        assert!(waits[9] >= Duration::from_secs(5), "{waits:?}");
        delays.reset();
        let t = tokio::time::Instant::now();
        delays.wait(&cancel).await.unwrap();
        assert!(t.elapsed() < Duration::from_millis(500));
        cancel.cancel();
        assert_eq!(delays.wait(&cancel).await, Err(Stopped));
    }
}
