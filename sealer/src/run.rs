//! `sealer run`: consumes `scan-events` in a consumer group and seals one epoch a
//! second. Four stages; the first three are joined by channels of capacity one
//! so a slow stage stops the one before it (backpressure, not memory growth):
//!
//! 1. the consumer thread polls Kafka and closes an epoch every `--epoch-ms`;
//! 2. the sealing task seals it (epoch.rs) and dead-letters what is not an event;
//! 3. the writing task writes the event rows then the epoch row to ClickHouse and
//!    hands the epoch row on;
//! 4. the anchoring task (fed by an unbounded channel: a ledger outage must not
//!    stop sealing, and what waits is one small row per epoch) commits roots to
//!    the ledger in epoch order, retrying while the ledger is away, records each
//!    anchored epoch and only then commits its Kafka offsets.
//!
//! Restarts resume from the sealed offsets in `sealtrail.epochs`, not from Kafka's
//! committed offsets: records at or below them are skipped (see ARCHITECTURE.md).
//! Before that, the consumer thread takes newly assigned partitions over on the
//! ledger (lease.rs), so an epoch of a sealer that lost them can never commit.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use clap::Args;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::message::{Header, Message, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{ClientConfig, ClientContext, Offset, TopicPartitionList};
use tokio::sync::mpsc;

use schemas::gate::TimeBounds;

use crate::epoch::{self, Record, SealedEpoch};
use crate::gatekeeper::Gatekeeper;
use crate::lease::{self, Settled};
use crate::ledger::{Lease, Ledger, LedgerError};
use crate::metrics::Metrics;
use crate::store::{self, EpochRow};

#[derive(Args, Debug, Clone)]
pub struct RunArgs {
    /// Kafka bootstrap servers.
    #[arg(
        long,
        env = "SEALTRAIL_KAFKA_BROKERS",
        default_value = "127.0.0.1:9092"
    )]
    pub kafka_brokers: String,
    /// Topic of scan events.
    #[arg(long, env = "SEALTRAIL_KAFKA_TOPIC", default_value = "scan-events")]
    pub topic: String,
    /// Dead-letter topic for records that are not scan events.
    #[arg(
        long,
        env = "SEALTRAIL_KAFKA_DLQ_TOPIC",
        default_value = "scan-events-dlq"
    )]
    pub dlq_topic: String,
    /// Consumer group shared by all sealers.
    #[arg(
        long,
        env = "SEALTRAIL_SEALER_GROUP",
        default_value = "sealtrail-sealer"
    )]
    pub group: String,
    /// Length of an epoch in milliseconds.
    #[arg(long, env = "SEALTRAIL_EPOCH_MS", default_value_t = 1000)]
    pub epoch_ms: u64,
    /// Close an epoch early at this many records (bounds memory and tree size).
    #[arg(long, env = "SEALTRAIL_MAX_EPOCH_RECORDS", default_value_t = 100_000)]
    pub max_epoch_records: usize,
    /// Name of this sealer in `sealtrail.epochs` (default: host and pid).
    #[arg(long, env = "SEALTRAIL_SEALER_INSTANCE")]
    pub instance: Option<String>,
    /// Address of the Prometheus metrics endpoint.
    #[arg(
        long,
        env = "SEALTRAIL_SEALER_METRICS",
        default_value = "127.0.0.1:9464"
    )]
    pub metrics_listen: SocketAddr,
    /// Threads that decode records and check their signatures.
    #[arg(long, env = "SEALTRAIL_VERIFY_THREADS", default_value_t = default_threads())]
    pub verify_threads: usize,
    /// Sealed event ids the in-memory filter holds at about 0.1 % false maybes
    /// (14.4 bits each); past it, more ids are looked up in ClickHouse.
    #[arg(long, env = "SEALTRAIL_SEEN_CAPACITY", default_value_t = 50_000_000)]
    pub seen_capacity: u64,
    #[command(flatten)]
    pub bounds: TimeBounds,
    #[command(flatten)]
    pub kafka_auth: schemas::kafka::KafkaAuth,
    /// Benchmark only: decode and write rows to <--bench-database>.scan_events
    /// without sealing (no tree, proofs, epochs or ledger).
    #[arg(long, hide = true)]
    pub bench_unsealed: bool,
    /// Benchmark only: where --bench-unsealed writes.
    #[arg(long, hide = true, default_value = "sealtrail_bench")]
    pub bench_database: String,
}

/// A Kafka client configuration authenticated as the sealer's principal.
fn kafka_config(args: &RunArgs) -> anyhow::Result<ClientConfig> {
    let mut c = ClientConfig::new();
    for (k, v) in args
        .kafka_auth
        .settings("sealer")
        .context("Kafka credentials")?
    {
        c.set(k, v);
    }
    Ok(c)
}

fn default_threads() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}

/// State the consumer thread shares with the rebalance callbacks and the sealing task.
#[derive(Default)]
pub(crate) struct Shared {
    /// Epochs handed to the sealing task and not yet written.
    in_flight: Mutex<usize>,
    drained: Condvar,
    revoked: Mutex<Vec<i32>>,
    reassigned: AtomicBool,
    /// The partitions of the last assignment.
    assigned: Mutex<Vec<i32>>,
    /// The ledger claim this sealer seals its partitions under.
    lease: Mutex<Lease>,
    /// The claim found replaced under us: leave the group and join it again,
    /// which takes the partitions over afresh (once per claim).
    retake: Mutex<Option<Lease>>,
    /// Bumped on every assignment: the sealing task then reads the ids other
    /// sealers sealed meanwhile.
    pub(crate) assignments: std::sync::atomic::AtomicU64,
    /// Partitions of the topic (0 until read): the gate refuses a record outside
    /// the partition its key maps to.
    pub(crate) partitions: std::sync::atomic::AtomicU32,
    stop: AtomicBool,
    /// Last offset consumed per partition: which partitions this sealer reads.
    positions: Mutex<HashMap<i32, i64>>,
    /// Last offset sealed (written, committed) per partition, for the lag gauge.
    sealed_to: Mutex<HashMap<i32, i64>>,
    /// The device registry state commits name.
    pub(crate) keys: crate::pin::Pins,
}

impl Shared {
    fn sealed_through(&self, ranges: &[epoch::Range]) {
        let mut to = self.sealed_to.lock().expect("lock");
        for r in ranges {
            let e = to.entry(r.partition).or_insert(r.last);
            *e = (*e).max(r.last);
        }
    }
}

impl Shared {
    fn finished_one(&self) {
        *self.in_flight.lock().expect("lock") -= 1;
        self.drained.notify_all();
    }
}

struct Rebalancing(Arc<Shared>);

impl ClientContext for Rebalancing {}

impl ConsumerContext for Rebalancing {
    fn pre_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(tpl) = rebalance {
            // Let epochs already handed over land in ClickHouse before another
            // sealer reads the sealed offsets of these partitions.
            let mut n = self.0.in_flight.lock().expect("lock");
            let deadline = Instant::now() + Duration::from_secs(120);
            while *n > 0 && Instant::now() < deadline {
                n = self
                    .0
                    .drained
                    .wait_timeout(n, Duration::from_millis(100))
                    .expect("lock")
                    .0;
            }
            let partitions: Vec<i32> = tpl.elements().iter().map(|e| e.partition()).collect();
            tracing::info!(?partitions, "partitions revoked");
            self.0.revoked.lock().expect("lock").extend(partitions);
        }
    }

    fn post_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(tpl) = rebalance {
            let partitions: Vec<i32> = tpl.elements().iter().map(|e| e.partition()).collect();
            tracing::info!(?partitions, "partitions assigned");
            *self.0.assigned.lock().expect("lock") = partitions;
            self.0.reassigned.store(true, Ordering::SeqCst);
            self.0.assignments.fetch_add(1, Ordering::SeqCst);
        }
    }
}

/// Records of one closed window, on their way to be sealed.
struct Window {
    records: Vec<Record>,
    start_ms: i64,
    end_ms: i64,
    /// The ledger claim its records were read under.
    lease: Lease,
}

pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_millis() as i64
}

/// A crash point for the exactly-once tests (the `fail` crate): with the
/// `failpoints` feature, `FAILPOINTS=point=return` aborts the process there (no
/// cleanup, like SIGKILL), and `point=3*off->return` the fourth time. Without
/// the feature (production builds) it is nothing at all.
macro_rules! fault {
    ($point:literal) => {{
        // A function of its own, so the point's `return` leaves only it.
        fn point() {
            fail::fail_point!($point, |_| {
                eprintln!(concat!("failpoint: aborting at ", $point));
                std::process::abort()
            });
        }
        point()
    }};
}

pub async fn run<L: Ledger>(
    args: RunArgs,
    clickhouse: clickhouse::Client,
    ledger: L,
) -> anyhow::Result<()> {
    let instance = args.instance.clone().unwrap_or_else(|| {
        format!(
            "{}-{}",
            std::env::var("HOSTNAME").unwrap_or_else(|_| "sealer".into()),
            std::process::id()
        )
    });
    let metrics = Arc::new(Metrics::new());
    let shared = Arc::new(Shared::default());

    let consumer: Arc<BaseConsumer<Rebalancing>> = Arc::new(
        kafka_config(&args)?
            .set("bootstrap.servers", &args.kafka_brokers)
            .set("group.id", &args.group)
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
            .create_with_context(Rebalancing(shared.clone()))
            .context("creating the Kafka consumer")?,
    );
    consumer.subscribe(&[&args.topic]).context("subscribing")?;
    let dlq: FutureProducer = kafka_config(&args)?
        .set("bootstrap.servers", &args.kafka_brokers)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .create()
        .context("creating the dead-letter producer")?;

    tokio::spawn(serve_metrics(args.metrics_listen, metrics.clone()));
    {
        let shared = shared.clone();
        tokio::spawn(async move {
            crate::shutdown_signal().await;
            shared.stop.store(true, Ordering::SeqCst);
        });
    }

    let (window_tx, window_rx) = mpsc::channel::<Window>(1);
    let (anchor_tx, anchor_rx) = mpsc::unbounded_channel::<EpochRow>();
    let ledger = Arc::new(ledger);
    let consume = {
        let (consumer, shared, metrics, args) = (
            consumer.clone(),
            shared.clone(),
            metrics.clone(),
            args.clone(),
        );
        let (clickhouse, rt) = (clickhouse.clone(), tokio::runtime::Handle::current());
        let ledger = ledger.clone();
        std::thread::Builder::new()
            .name("consume".into())
            .spawn(move || {
                consume_loop(
                    &consumer,
                    &shared,
                    &metrics,
                    &args,
                    &clickhouse,
                    &*ledger,
                    &rt,
                    window_tx,
                )
            })?
    };
    let lag = {
        let (shared, metrics, args) = (shared.clone(), metrics.clone(), args.clone());
        std::thread::Builder::new()
            .name("lag".into())
            .spawn(move || lag_loop(&shared, &metrics, &args))?
    };
    let anchoring = if args.bench_unsealed {
        // Nothing is sealed, so nothing is anchored.
        tokio::spawn(async move {
            let mut rx = anchor_rx;
            while rx.recv().await.is_some() {}
        })
    } else {
        tokio::spawn(anchor_loop(
            ledger.clone(),
            clickhouse.clone(),
            metrics.clone(),
            (consumer.clone(), args.topic.clone()),
            shared.clone(),
            anchor_rx,
        ))
    };
    tracing::info!(%instance, topic = %args.topic, epoch_ms = args.epoch_ms, "sealer running");

    seal_loop(
        &args,
        &instance,
        &clickhouse,
        &consumer,
        &dlq,
        &shared,
        &metrics,
        window_rx,
        anchor_tx,
    )
    .await;
    consume
        .join()
        .map_err(|_| anyhow::anyhow!("consumer thread panicked"))??;
    anchoring.await?;
    let _ = lag.join();
    tracing::info!("sealer stopped");
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn consume_loop<L: Ledger>(
    consumer: &BaseConsumer<Rebalancing>,
    shared: &Shared,
    metrics: &Metrics,
    args: &RunArgs,
    clickhouse: &clickhouse::Client,
    ledger: &L,
    rt: &tokio::runtime::Handle,
    windows: mpsc::Sender<Window>,
) -> anyhow::Result<()> {
    let mut open: Vec<Record> = Vec::new();
    let mut start_ms = now_ms();
    let mut sealed: HashMap<i32, i64> = HashMap::new();
    let mut lease: Lease = [0; 16];
    loop {
        let stopping = shared.stop.load(Ordering::SeqCst);
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
                .subscribe(&[&args.topic])
                .context("subscribing again")?;
            open.clear();
            // No claim until the group assigns again (and no second rejoin
            // for the same replaced claim meanwhile).
            lease = [0; 16];
        }
        let revoked: Vec<i32> = std::mem::take(&mut *shared.revoked.lock().expect("lock"));
        if !revoked.is_empty() {
            // Not sealed here: the new owner reads them again from the sealed offsets.
            open.retain(|r| !revoked.contains(&r.partition));
        }
        if shared.reassigned.swap(false, Ordering::SeqCst) && !args.bench_unsealed {
            match consumer.fetch_metadata(Some(&args.topic), Duration::from_secs(10)) {
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
            if !assigned.is_empty() {
                let stopping = || shared.stop.load(Ordering::SeqCst);
                match rt.block_on(lease::take_over(
                    ledger,
                    clickhouse,
                    metrics,
                    &shared.keys,
                    &assigned,
                    &stopping,
                )) {
                    Some(l) => {
                        lease = l;
                        *shared.lease.lock().expect("lock") = l;
                    }
                    None => return Ok(()),
                }
                // Records read before the claim are read again after the
                // sealed offsets below; none may be sealed under the new claim
                // without them (the eager protocol revoked them anyway).
                open.clear();
            }
            sealed = loop {
                match rt.block_on(store::sealed_offsets(clickhouse)) {
                    Ok(s) => break s,
                    Err(e) => {
                        tracing::warn!(error = %e, "reading sealed offsets; retrying");
                        std::thread::sleep(Duration::from_secs(1));
                    }
                }
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
        }
        match message {
            Some(Ok(m)) => {
                let (partition, offset) = (m.partition(), m.offset());
                if offset > sealed.get(&partition).copied().unwrap_or(-1) {
                    metrics.consumed.inc();
                    open.push(Record {
                        partition,
                        offset,
                        timestamp_ms: m.timestamp().to_millis().unwrap_or(0),
                        value: m.payload().unwrap_or_default().to_vec(),
                    });
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

        let now = now_ms();
        if stopping
            || now - start_ms >= args.epoch_ms as i64
            || open.len() >= args.max_epoch_records
        {
            if !open.is_empty() {
                *shared.in_flight.lock().expect("lock") += 1;
                let window = Window {
                    records: std::mem::take(&mut open),
                    start_ms,
                    end_ms: now,
                    lease,
                };
                if windows.blocking_send(window).is_err() {
                    anyhow::bail!("the sealing task stopped");
                }
            }
            start_ms = now;
        }
        if stopping {
            return Ok(());
        }
    }
}

#[allow(clippy::too_many_arguments)]
async fn seal_loop(
    args: &RunArgs,
    instance: &str,
    clickhouse: &clickhouse::Client,
    consumer: &BaseConsumer<Rebalancing>,
    dlq: &FutureProducer,
    shared: &Arc<Shared>,
    metrics: &Metrics,
    mut windows: mpsc::Receiver<Window>,
    anchor: mpsc::UnboundedSender<EpochRow>,
) {
    // Sealing (CPU) runs one epoch ahead of writing (ClickHouse), so the two overlap.
    let (sealed_tx, mut sealed_rx) = mpsc::channel::<(SealedEpoch, Lease)>(1);
    let sealing = async move {
        let mut gatekeeper = if args.bench_unsealed {
            None
        } else {
            Some(Gatekeeper::load(clickhouse, args, shared.clone()).await)
        };
        let mut last_epoch = 0u64;
        while let Some(window) = windows.recv().await {
            let started = Instant::now();
            let lowest = window
                .records
                .iter()
                .map(|r| r.partition)
                .min()
                .unwrap_or(0);
            let id = epoch::epoch_id(window.end_ms, lowest).max(last_epoch + 1);
            last_epoch = id;
            let sealed_at = (window.end_ms / 1000) as u32;
            let lease = window.lease;
            let sealed = match gatekeeper.as_mut() {
                None => {
                    let (start, end) = (window.start_ms, window.end_ms);
                    tokio::task::spawn_blocking(move || {
                        epoch::unsealed(start, end, window.records, sealed_at)
                    })
                    .await
                }
                Some(g) => {
                    let admission = g.admit(window.records, window.end_ms, lease, metrics).await;
                    let (start, end) = (window.start_ms, window.end_ms);
                    tokio::task::spawn_blocking(move || {
                        epoch::seal_admitted(id, start, end, admission, sealed_at)
                    })
                    .await
                }
            };
            let sealed = match sealed {
                Ok(s) => s,
                Err(e) => {
                    // Records cannot panic the gate (each is checked under
                    // catch_unwind); this is a bug in the tree or the rows.
                    tracing::error!(error = %e, epoch = id, "sealing failed; stopping so a restart retries the window");
                    return;
                }
            };
            metrics
                .seal_duration
                .observe(started.elapsed().as_secs_f64());
            if sealed_tx.send((sealed, lease)).await.is_err() {
                return;
            }
        }
    };
    let writing = async {
        while let Some((sealed, lease)) = sealed_rx.recv().await {
            write_sealed(
                args, instance, clickhouse, consumer, dlq, shared, metrics, &anchor, sealed, lease,
            )
            .await;
        }
    };
    tokio::join!(sealing, writing);
}

/// Dead letters, event rows, epoch row, Kafka offsets, then on to the ledger.
#[allow(clippy::too_many_arguments)]
async fn write_sealed(
    args: &RunArgs,
    instance: &str,
    clickhouse: &clickhouse::Client,
    consumer: &BaseConsumer<Rebalancing>,
    dlq: &FutureProducer,
    shared: &Shared,
    metrics: &Metrics,
    anchor: &mpsc::UnboundedSender<EpochRow>,
    sealed: SealedEpoch,
    lease: Lease,
) {
    let id = sealed.epoch_id;
    if args.bench_unsealed {
        return write_unsealed(args, clickhouse, consumer, shared, metrics, sealed).await;
    }
    dead_letter(dlq, &args.dlq_topic, &sealed, metrics).await;
    let write_started = Instant::now();
    write_events(clickhouse, &sealed).await;
    fault!("events-written");
    let row = EpochRow::pending(&sealed, instance, lease, now_ms() as u64);
    retry("writing the epoch row", || {
        store::insert_epoch(clickhouse, &row)
    })
    .await;
    metrics
        .clickhouse_write
        .observe(write_started.elapsed().as_secs_f64());
    fault!("epoch-written");

    // Kafka's offsets are committed once the epoch is anchored (anchor_loop).
    shared.sealed_through(&sealed.ranges);
    shared.finished_one();

    metrics.sealed.inc_by(sealed.rows.len() as u64);
    metrics.epochs_sealed.inc();
    metrics.epoch_size.observe(sealed.rows.len() as f64);
    tracing::debug!(epoch = id, events = sealed.rows.len(), "epoch sealed");
    let _ = anchor.send(row);
}

/// The unsealed benchmark's write: rows, then Kafka offsets; nothing else.
async fn write_unsealed(
    args: &RunArgs,
    clickhouse: &clickhouse::Client,
    consumer: &BaseConsumer<Rebalancing>,
    shared: &Shared,
    metrics: &Metrics,
    sealed: SealedEpoch,
) {
    let started = Instant::now();
    retry("writing unsealed rows", || {
        store::insert_events_into(clickhouse, &args.bench_database, &sealed.rows)
    })
    .await;
    metrics
        .clickhouse_write
        .observe(started.elapsed().as_secs_f64());
    let mut tpl = TopicPartitionList::new();
    for r in &sealed.ranges {
        let _ = tpl.add_partition_offset(&args.topic, r.partition, Offset::Offset(r.last + 1));
    }
    let _ = consumer.commit(&tpl, CommitMode::Async);
    shared.sealed_through(&sealed.ranges);
    shared.finished_one();
    metrics.sealed.inc_by(sealed.rows.len() as u64);
}

async fn write_events(clickhouse: &clickhouse::Client, sealed: &SealedEpoch) {
    if sealed.rows.is_empty() {
        return;
    }
    let mut backoff = Duration::from_millis(200);
    loop {
        match store::insert_events(clickhouse, &sealed.rows).await {
            Ok(()) => return,
            Err(e) => {
                // One insert is one block: it landed whole or not at all.
                if store::events_in_epoch(clickhouse, sealed.epoch_id)
                    .await
                    .ok()
                    == Some(sealed.rows.len() as u64)
                {
                    return;
                }
                tracing::warn!(error = %e, epoch = sealed.epoch_id, "writing events to ClickHouse; retrying");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        }
    }
}

pub(crate) async fn retry<F, Fut>(what: &str, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = clickhouse::error::Result<()>>,
{
    let mut backoff = Duration::from_millis(200);
    while let Err(e) = f().await {
        tracing::warn!(error = %e, "{what}; retrying");
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}

/// Longest error sentence put in a dead letter's header: refusals may quote the
/// bad value, which an attacker chooses.
const MAX_ERROR_HEADER: usize = 256;

/// One dead letter: the record as it came, or, when Kafka will not take it
/// (too large with its headers), only its length and SHA-256.
fn dead_letter_record<'a>(
    topic: &'a str,
    r: &'a epoch::Rejected,
    error: &'a str,
    position: &'a (String, String),
    digest: Option<&'a (String, String)>,
) -> FutureRecord<'a, (), [u8]> {
    let mut headers = OwnedHeaders::new()
        .insert(Header {
            key: "sealtrail-reason",
            value: Some(r.refusal.reason()),
        })
        .insert(Header {
            key: "sealtrail-error",
            value: Some(error),
        })
        .insert(Header {
            key: "sealtrail-source-partition",
            value: Some(&position.0),
        })
        .insert(Header {
            key: "sealtrail-source-offset",
            value: Some(&position.1),
        });
    let payload: &[u8] = match digest {
        None => &r.record.value,
        Some((bytes, sha256)) => {
            headers = headers
                .insert(Header {
                    key: "sealtrail-value-bytes",
                    value: Some(bytes),
                })
                .insert(Header {
                    key: "sealtrail-value-sha256",
                    value: Some(sha256),
                });
            &[]
        }
    };
    FutureRecord::to(topic).payload(payload).headers(headers)
}

/// Sends every rejected record of an epoch to the dead-letter topic, all in
/// flight at once, with the reason and its origin in headers, and waits until
/// Kafka has them all. Only what Kafka could not take yet is sent again; a record
/// Kafka refuses for its size goes as its digest, so no record can stop sealing.
async fn dead_letter(dlq: &FutureProducer, topic: &str, sealed: &SealedEpoch, metrics: &Metrics) {
    use rdkafka::error::{KafkaError, RDKafkaErrorCode};
    use sha2::{Digest, Sha256};

    let letters: Vec<(String, (String, String))> = sealed
        .rejected
        .iter()
        .map(|r| {
            let mut error = r.refusal.to_string();
            if error.len() > MAX_ERROR_HEADER {
                let mut cut = MAX_ERROR_HEADER;
                while !error.is_char_boundary(cut) {
                    cut -= 1;
                }
                error.truncate(cut);
                error.push('…');
            }
            let position = (r.record.partition.to_string(), r.record.offset.to_string());
            (error, position)
        })
        .collect();
    if !sealed.rejected.is_empty() {
        let mut by_reason: BTreeMap<&str, usize> = BTreeMap::new();
        for r in &sealed.rejected {
            *by_reason.entry(r.refusal.reason()).or_default() += 1;
        }
        tracing::warn!(
            epoch = sealed.epoch_id,
            ?by_reason,
            "records refused; sending them to the dead-letter topic"
        );
    }
    let mut digests: Vec<Option<(String, String)>> = vec![None; letters.len()];
    let mut todo: Vec<usize> = (0..letters.len()).collect();
    while !todo.is_empty() {
        let mut deliveries = Vec::with_capacity(todo.len());
        for &i in &todo {
            let r = &sealed.rejected[i];
            let record =
                dead_letter_record(topic, r, &letters[i].0, &letters[i].1, digests[i].as_ref());
            deliveries.push((i, dlq.send_result(record).map_err(|(e, _)| e)));
        }
        let mut again = Vec::new();
        let mut last_error = None;
        for (i, delivery) in deliveries {
            let outcome = match delivery {
                Ok(d) => match d.await {
                    Ok(Ok(_)) => Ok(()),
                    Ok(Err((e, _))) => Err(e),
                    Err(_) => Err(KafkaError::Canceled),
                },
                Err(e) => Err(e),
            };
            match outcome {
                Ok(()) => {
                    let r = &sealed.rejected[i];
                    metrics.dlq.with_label_values(&[r.refusal.reason()]).inc();
                    // One line per record only at debug: whoever can produce
                    // records could otherwise flood the log.
                    tracing::debug!(partition = %letters[i].1.0, offset = %letters[i].1.1, reason = r.refusal.reason(), error = %letters[i].0, "record sent to the dead-letter topic");
                }
                Err(KafkaError::MessageProduction(RDKafkaErrorCode::MessageSizeTooLarge))
                    if digests[i].is_none() =>
                {
                    let value = &sealed.rejected[i].record.value;
                    digests[i] =
                        Some((value.len().to_string(), hex::encode(Sha256::digest(value))));
                    again.push(i);
                }
                Err(e) => {
                    last_error = Some(e);
                    again.push(i);
                }
            }
        }
        if let Some(e) = last_error.take() {
            tracing::warn!(error = %e, waiting = again.len(), "dead-lettering records; retrying");
        }
        if !again.is_empty() {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        todo = again;
    }
}

/// Commits roots in epoch order; a ledger outage leaves epochs pending (sealing
/// goes on) and they are committed, oldest first, once it answers again.
async fn anchor_loop<L: Ledger>(
    ledger: Arc<L>,
    clickhouse: clickhouse::Client,
    metrics: Arc<Metrics>,
    kafka: (Arc<BaseConsumer<Rebalancing>>, String),
    shared: Arc<Shared>,
    mut incoming: mpsc::UnboundedReceiver<EpochRow>,
) {
    let mut pending: BTreeMap<u64, EpochRow> = BTreeMap::new();
    // Epochs a previous run (or a sealer that died) left pending.
    loop {
        match store::pending_epochs(&clickhouse).await {
            Ok(rows) => {
                pending.extend(rows.into_iter().map(|r| (r.epoch_id, r)));
                break;
            }
            Err(e) => {
                tracing::warn!(error = %e, "reading pending epochs; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
    let mut open = true;
    let mut backoff = Duration::from_millis(250);
    let mut give_up_at: Option<Instant> = None;
    let mut refused: HashSet<u64> = HashSet::new();
    let mut next_scan = Instant::now() + ORPHANED_AFTER;
    loop {
        if open && Instant::now() >= next_scan {
            next_scan = Instant::now() + ORPHANED_AFTER;
            adopt_orphans(&clickhouse, &mut pending, &refused).await;
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
        match lease::settle(&*ledger, &clickhouse, &metrics, &shared.keys, row).await {
            Ok(Settled::Anchored) => {
                commit_offsets(&kafka.0, &kafka.1, row);
                pending.remove(&id);
                backoff = Duration::from_millis(250);
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
                backoff = Duration::from_millis(250);
            }
            Err(LedgerError::Refused(why)) => {
                metrics.ledger_refused.inc();
                tracing::error!(epoch = id, %why, "the ledger refused this epoch's root; leaving it pending for audit");
                pending.remove(&id);
                refused.insert(id);
            }
            Err(LedgerError::Unavailable(why)) => {
                tracing::warn!(epoch = id, pending = pending.len(), %why, "ledger unavailable; epochs wait as pending");
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    row = incoming.recv(), if open => match row {
                        Some(row) => { pending.insert(row.epoch_id, row); }
                        None => open = false,
                    },
                }
                backoff = (backoff * 2).min(Duration::from_secs(5));
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
    for row in rows {
        if row.written_ms < before
            && !refused.contains(&row.epoch_id)
            && !pending.contains_key(&row.epoch_id)
        {
            tracing::info!(epoch = row.epoch_id, instance = %row.instance, "committing an epoch another sealer left pending");
            pending.insert(row.epoch_id, row);
        }
    }
}

/// Every second: records on the topic not yet sealed, per partition.
fn lag_loop(shared: &Shared, metrics: &Metrics, args: &RunArgs) {
    let Ok(mut probe) = kafka_config(args) else {
        return;
    };
    let Ok(probe) = probe
        .set("bootstrap.servers", &args.kafka_brokers)
        .create::<BaseConsumer>()
    else {
        return;
    };
    // Lag is what is on the topic and not sealed yet: what a restart would redo
    // and what the next epochs have to absorb.
    while !shared.stop.load(Ordering::SeqCst) {
        let partitions: Vec<i32> = shared
            .positions
            .lock()
            .expect("lock")
            .keys()
            .copied()
            .collect();
        for p in partitions {
            let sealed = shared.sealed_to.lock().expect("lock").get(&p).copied();
            if let Ok((low, high)) = probe.fetch_watermarks(&args.topic, p, Duration::from_secs(2))
            {
                let next = sealed.map_or(low, |s| (s + 1).max(low));
                metrics
                    .lag
                    .with_label_values(&[&p.to_string()])
                    .set((high - next).max(0));
            }
        }
        for _ in 0..10 {
            if shared.stop.load(Ordering::SeqCst) {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

async fn serve_metrics(listen: SocketAddr, metrics: Arc<Metrics>) {
    use axum::routing::get;
    let app = axum::Router::new().route(
        "/metrics",
        get(move || {
            let metrics = metrics.clone();
            async move {
                (
                    [(
                        axum::http::header::CONTENT_TYPE,
                        "text/plain; version=0.0.4",
                    )],
                    metrics.render(),
                )
            }
        }),
    );
    match tokio::net::TcpListener::bind(listen).await {
        Ok(listener) => {
            if let Err(e) = axum::serve(listener, app).await {
                tracing::error!(error = %e, "metrics endpoint failed");
            }
        }
        Err(e) => {
            tracing::error!(error = %e, %listen, "cannot bind the metrics endpoint; running without it")
        }
    }
}
