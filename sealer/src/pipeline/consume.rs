//! Stage 1, a thread of its own (librdkafka's poll blocks): reads the topic in
//! the sealers' consumer group and cuts it into windows. Before sealing newly
//! assigned partitions it takes them over on the ledger (lease.rs) and resumes
//! after their sealed offsets in ClickHouse, so records at or below them are
//! never sealed twice.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, Rebalance};
use rdkafka::message::Message;
use rdkafka::{ClientConfig, ClientContext};
use tokio::sync::mpsc;

use super::{fault, now_ms, Context, Shared, Window};
use crate::epoch::Record;
use crate::ledger::{Lease, Ledger};
use crate::store::epochs as store;
use crate::{lease, retry};

/// The rebalance callbacks.
pub struct Rebalancing {
    shared: Arc<Shared>,
    cancel: tokio_util::sync::CancellationToken,
}

impl ClientContext for Rebalancing {}

impl ConsumerContext for Rebalancing {
    fn pre_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(tpl) = rebalance {
            // Let epochs already handed over land in ClickHouse before another
            // sealer reads the sealed offsets of these partitions (at shutdown
            // only while the stages still write).
            let mut n = self.shared.in_flight.lock().expect("lock");
            let mut deadline = Instant::now() + Duration::from_secs(120);
            let mut stopping = false;
            while *n > 0 && Instant::now() < deadline {
                if !stopping && self.cancel.is_cancelled() {
                    // Shutting down: the writing stage gets its grace, no more.
                    stopping = true;
                    deadline = deadline.min(Instant::now() + retry::GRACE * 2);
                }
                n = self
                    .shared
                    .drained
                    .wait_timeout(n, Duration::from_millis(100))
                    .expect("lock")
                    .0;
            }
            let partitions: Vec<i32> = tpl.elements().iter().map(|e| e.partition()).collect();
            tracing::info!(?partitions, "partitions revoked");
            self.shared.revoked.lock().expect("lock").extend(partitions);
        }
    }

    fn post_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(tpl) = rebalance {
            let partitions: Vec<i32> = tpl.elements().iter().map(|e| e.partition()).collect();
            tracing::info!(?partitions, "partitions assigned");
            *self.shared.assigned.lock().expect("lock") = partitions;
            self.shared.reassigned.store(true, Ordering::SeqCst);
            self.shared.assignments.fetch_add(1, Ordering::SeqCst);
        }
    }
}

/// The group's consumer, subscribed to the topic. `config` carries the
/// credentials and the brokers.
pub fn subscribe(
    mut config: ClientConfig,
    ctx: &Context,
) -> anyhow::Result<BaseConsumer<Rebalancing>> {
    let consumer: BaseConsumer<Rebalancing> = config
        .set("group.id", &ctx.settings.group)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("isolation.level", "read_committed")
        // A ClickHouse outage blocks polling (backpressure); stay in the group.
        .set("max.poll.interval.ms", "600000")
        .set("session.timeout.ms", "10000")
        .set("fetch.max.bytes", "52428800")
        // librdkafka prefetches up to this much per partition: bound it, or
        // twelve partitions' prefetch alone approaches the 1 GiB budget.
        .set("queued.max.messages.kbytes", "8192")
        .create_with_context(Rebalancing {
            shared: ctx.shared.clone(),
            cancel: ctx.cancel.clone(),
        })
        .context("creating the Kafka consumer")?;
    consumer
        .subscribe(&[&ctx.settings.topic])
        .context("subscribing")?;
    Ok(consumer)
}

/// The open window and the rule that closes it; no I/O, so it is tested alone.
pub struct Windowing {
    open: Vec<Record>,
    start_ms: i64,
    epoch_ms: i64,
    max_records: usize,
    /// Last sealed offset per partition: records at or below it are skipped.
    sealed: HashMap<i32, i64>,
}

impl Windowing {
    pub fn new(now_ms: i64, epoch_ms: u64, max_records: usize) -> Self {
        Windowing {
            open: Vec::new(),
            start_ms: now_ms,
            epoch_ms: epoch_ms as i64,
            max_records: max_records.max(1),
            sealed: HashMap::new(),
        }
    }

    /// Resume after these sealed offsets (read from ClickHouse after an assignment).
    pub fn resume_after(&mut self, sealed: HashMap<i32, i64>) {
        self.sealed = sealed;
    }

    /// Adds a record unless it was sealed already; true if added.
    pub fn push(&mut self, record: Record) -> bool {
        let sealed = self.sealed.get(&record.partition).copied().unwrap_or(-1);
        if record.offset <= sealed {
            return false;
        }
        self.open.push(record);
        true
    }

    /// Forgets the records of partitions no longer ours: their new owner reads
    /// them again from the sealed offsets.
    pub fn drop_partitions(&mut self, revoked: &[i32]) {
        self.open.retain(|r| !revoked.contains(&r.partition));
    }

    /// Forgets every open record (a new claim: they are read again after it).
    pub fn clear(&mut self) {
        self.open.clear();
    }

    pub fn len(&self) -> usize {
        self.open.len()
    }

    pub fn is_empty(&self) -> bool {
        self.open.is_empty()
    }

    /// The window to seal, when it is due at `now_ms` (or `closing` at
    /// shutdown) and holds records. A due window starts the next one.
    pub fn close(&mut self, now_ms: i64, closing: bool, lease: Lease) -> Option<Window> {
        let due = closing
            || now_ms - self.start_ms >= self.epoch_ms
            || self.open.len() >= self.max_records;
        if !due {
            return None;
        }
        let start_ms = std::mem::replace(&mut self.start_ms, now_ms);
        if self.open.is_empty() {
            return None;
        }
        Some(Window {
            records: std::mem::take(&mut self.open),
            start_ms,
            end_ms: now_ms,
            lease,
        })
    }
}

/// The consumer thread: polls until shutdown, then hands over the open window
/// and returns.
pub fn run<L: Ledger>(
    ctx: &Context,
    consumer: &BaseConsumer<Rebalancing>,
    ledger: &L,
    rt: &tokio::runtime::Handle,
    windows: mpsc::Sender<Window>,
) -> anyhow::Result<()> {
    let (settings, shared) = (&ctx.settings, &ctx.shared);
    let mut window = Windowing::new(now_ms(), settings.epoch_ms, settings.max_epoch_records);
    let mut lease: Lease = [0; 16];
    loop {
        let stopping = ctx.cancel.is_cancelled();
        let message = if stopping {
            None
        } else {
            consumer.poll(Duration::from_millis(20))
        };

        let replaced = shared.retake.lock().expect("lock").take();
        if replaced == Some(lease) {
            // Leaving and joining revokes and assigns again: the assignment
            // claims anew, and Kafka fetches from the offsets committed for
            // anchored epochs, at or before the fenced records.
            consumer.unsubscribe();
            consumer
                .subscribe(&[&settings.topic])
                .context("subscribing again")?;
            window.clear();
            // No claim until the group assigns again (and no second rejoin
            // for the same replaced claim meanwhile).
            lease = [0; 16];
        }
        let revoked: Vec<i32> = std::mem::take(&mut *shared.revoked.lock().expect("lock"));
        if !revoked.is_empty() {
            window.drop_partitions(&revoked);
        }
        if shared.reassigned.swap(false, Ordering::SeqCst) && settings.unsealed_into().is_none() {
            match take_over(ctx, consumer, ledger, rt)? {
                Some((l, sealed)) => {
                    if let Some(l) = l {
                        lease = l;
                        // Records read before the claim are read again after
                        // the sealed offsets; none may be sealed under the new
                        // claim without them (the eager protocol revoked them anyway).
                        window.clear();
                    }
                    window.resume_after(sealed);
                }
                None => return Ok(()), // stopped while a service was away
            }
        }
        match message {
            Some(Ok(m)) => {
                let (partition, offset) = (m.partition(), m.offset());
                let added = window.push(Record {
                    partition,
                    offset,
                    timestamp_ms: m.timestamp().to_millis().unwrap_or(0),
                    value: m.payload().unwrap_or_default().to_vec(),
                });
                if added {
                    ctx.metrics.consumed.inc();
                    fault!("consumed");
                }
                shared
                    .positions
                    .lock()
                    .expect("lock")
                    .insert(partition, offset);
            }
            Some(Err(e)) => tracing::warn!(error = %e, "Kafka consumer error"),
            None => {}
        }

        if let Some(w) = window.close(now_ms(), stopping, lease) {
            shared.started_one();
            if windows.blocking_send(w).is_err() {
                shared.finished_one();
                if ctx.cancel.is_cancelled() {
                    return Ok(());
                }
                anyhow::bail!("the sealing stage stopped");
            }
        }
        if stopping {
            return Ok(());
        }
    }
}

/// After an assignment: the topic's partition count, the claim on the assigned
/// partitions (None when none are assigned) and their sealed offsets; None if
/// shutdown came while a service was away.
#[allow(clippy::type_complexity)]
fn take_over<L: Ledger>(
    ctx: &Context,
    consumer: &BaseConsumer<Rebalancing>,
    ledger: &L,
    rt: &tokio::runtime::Handle,
) -> anyhow::Result<Option<(Option<Lease>, HashMap<i32, i64>)>> {
    let shared = &ctx.shared;
    match consumer.fetch_metadata(Some(&ctx.settings.topic), Duration::from_secs(10)) {
        Ok(m) => {
            let n = m.topics().first().map_or(0, |t| t.partitions().len());
            shared.partitions.store(n as u32, Ordering::SeqCst);
        }
        Err(e) => tracing::warn!(error = %e, "reading the topic's partition count"),
    }
    let assigned: Vec<u16> = shared
        .assigned
        .lock()
        .expect("lock")
        .iter()
        .filter_map(|p| u16::try_from(*p).ok())
        .collect();
    let mut claimed = None;
    if !assigned.is_empty() {
        match rt.block_on(lease::take_over(ledger, ctx, &assigned)) {
            Ok(l) => {
                *shared.lease.lock().expect("lock") = l;
                claimed = Some(l);
            }
            Err(retry::Stopped) => return Ok(None),
        }
    }
    let sealed = match rt.block_on(retry::until_done(
        &ctx.cancel,
        "reading sealed offsets",
        || store::sealed_offsets(&ctx.clickhouse),
    )) {
        Ok(s) => s,
        Err(retry::Stopped) => return Ok(None),
    };
    tracing::info!(
        partitions = sealed.len(),
        "resuming after the sealed offsets in ClickHouse"
    );
    shared
        .sealed_to
        .lock()
        .expect("lock")
        .extend(sealed.iter().map(|(p, o)| (*p, *o)));
    Ok(Some((claimed, sealed)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(partition: i32, offset: i64) -> Record {
        Record {
            partition,
            offset,
            timestamp_ms: 0,
            value: vec![],
        }
    }

    #[test]
    fn a_window_closes_after_epoch_ms_and_starts_the_next() {
        let mut w = Windowing::new(1_000, 300, 100);
        assert!(w.push(record(0, 1)));
        assert!(w.close(1_299, false, [1; 16]).is_none());
        let closed = w.close(1_300, false, [1; 16]).expect("due");
        assert_eq!((closed.start_ms, closed.end_ms), (1_000, 1_300));
        assert_eq!(closed.records.len(), 1);
        assert_eq!(closed.lease, [1; 16]);
        assert!(w.is_empty());
        w.push(record(0, 2));
        assert!(w.close(1_599, false, [1; 16]).is_none());
        assert_eq!(w.close(1_600, false, [1; 16]).expect("due").start_ms, 1_300);
    }

    #[test]
    fn an_empty_window_is_not_sealed_but_the_next_starts() {
        let mut w = Windowing::new(0, 300, 100);
        assert!(w.close(300, false, [0; 16]).is_none());
        w.push(record(0, 1));
        assert_eq!(w.close(600, false, [0; 16]).expect("due").start_ms, 300);
    }

    #[test]
    fn a_full_window_closes_early() {
        let mut w = Windowing::new(0, 1_000, 3);
        for o in 0..3 {
            w.push(record(0, o));
        }
        assert_eq!(w.close(1, false, [0; 16]).expect("full").records.len(), 3);
    }

    #[test]
    fn shutdown_closes_the_open_window_at_once() {
        let mut w = Windowing::new(0, 1_000, 100);
        w.push(record(0, 1));
        assert!(w.close(10, false, [0; 16]).is_none());
        assert_eq!(w.close(10, true, [0; 16]).expect("closing").end_ms, 10);
    }

    #[test]
    fn records_at_or_below_the_sealed_offsets_are_skipped() {
        let mut w = Windowing::new(0, 1_000, 100);
        w.resume_after(HashMap::from([(0, 10), (1, 3)]));
        assert!(!w.push(record(0, 9)));
        assert!(!w.push(record(0, 10)));
        assert!(w.push(record(0, 11)));
        assert!(!w.push(record(1, 3)));
        assert!(w.push(record(1, 4)));
        assert!(w.push(record(2, 0)), "no sealed offset: everything is new");
        assert_eq!(w.len(), 3);
    }

    #[test]
    fn revoked_partitions_leave_the_window() {
        let mut w = Windowing::new(0, 1_000, 100);
        for p in 0..4 {
            w.push(record(p, 1));
        }
        w.drop_partitions(&[1, 3]);
        let left: Vec<i32> = w
            .close(1_000, false, [0; 16])
            .expect("due")
            .records
            .iter()
            .map(|r| r.partition)
            .collect();
        assert_eq!(left, [0, 2]);
    }
}
