//! The sealing pipeline: four stages around one `Context`, each in its module.
//!
//! 1. `consume` (a thread) polls Kafka and closes a window every `epoch_ms`
//!    (or at `max_epoch_records`);
//! 2. `seal` admits a window's records through the gate and builds the epoch;
//! 3. `write` dead-letters what was refused, writes the event rows then the
//!    epoch row to ClickHouse and hands the epoch row on;
//! 4. `anchor` commits roots to the ledger in epoch order, records each
//!    anchored epoch and only then commits its Kafka offsets.
//!
//! 1→2 and 2→3 are channels of capacity one, so a slow stage stops the one
//! before it (backpressure, not memory growth); 3→4 is unbounded: a ledger
//! outage must not stop sealing, and what waits is one small row per epoch.
//!
//! One cancellation token reaches every stage: on shutdown the consumer closes
//! its open window, the stages finish what they hold unless a service is away
//! (then they stop waiting for it), and the anchoring stage gets a few seconds
//! for what is pending. Restarts resume from the sealed offsets in
//! `epochs`, not from Kafka's committed offsets (see ARCHITECTURE.md).

pub mod anchor;
pub mod consume;
pub mod dead_letter;
pub mod lag;
pub mod seal;
#[cfg(feature = "bench")]
pub mod unsealed;
pub mod write;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use rdkafka::consumer::BaseConsumer;
use rdkafka::producer::FutureProducer;
use rdkafka::ClientConfig;
use schemas::gate::TimeBounds;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::epoch::{self, Record};
use crate::ledger::{Lease, Ledger};
use crate::metrics::Metrics;
use crate::store::epochs::EpochRow;

/// What the stages are told (the binary maps its flags to this).
#[derive(Debug, Clone)]
pub struct Settings {
    /// Name of this sealer in `epochs`.
    pub instance: String,
    pub topic: String,
    /// The consumer group all sealers share.
    pub group: String,
    pub dlq_topic: String,
    pub epoch_ms: u64,
    pub max_epoch_records: usize,
    pub verify_threads: usize,
    pub seen_capacity: u64,
    pub bounds: TimeBounds,
    /// Benchmark only: write rows unsealed into this database (no tree, epoch
    /// or ledger). Only builds with the `bench` feature have the mode.
    #[cfg(feature = "bench")]
    pub unsealed_into: Option<String>,
    /// Benchmark only: seal without verifying signatures, to measure what
    /// verifying costs. Only builds with the `bench` feature have the mode.
    #[cfg(feature = "bench")]
    pub unchecked_signatures: bool,
}

impl Settings {
    /// Whether the gate verifies signatures: always in production builds.
    pub fn check_signatures(&self) -> bool {
        #[cfg(feature = "bench")]
        return !self.unchecked_signatures;
        #[cfg(not(feature = "bench"))]
        true
    }

    /// Where the unsealed benchmark writes; always None in production builds.
    pub fn unsealed_into(&self) -> Option<&str> {
        #[cfg(feature = "bench")]
        return self.unsealed_into.as_deref();
        #[cfg(not(feature = "bench"))]
        None
    }
}

/// What every stage shares.
pub struct Context {
    pub settings: Settings,
    pub clickhouse: clickhouse::Client,
    pub metrics: Arc<Metrics>,
    pub shared: Arc<Shared>,
    /// Cancelled on shutdown; every wait for a service ends with it.
    pub cancel: CancellationToken,
}

/// State the consumer thread shares with the rebalance callbacks and the other stages.
#[derive(Default)]
pub struct Shared {
    /// Epochs handed to the sealing stage and not yet written.
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
    /// Bumped on every assignment: the sealing stage then reads the ids other
    /// sealers sealed meanwhile.
    pub assignments: AtomicU64,
    /// Partitions of the topic (0 until read): the gate refuses a record outside
    /// the partition its key maps to.
    pub partitions: AtomicU32,
    /// Last offset consumed per partition: which partitions this sealer reads.
    positions: Mutex<HashMap<i32, i64>>,
    /// Last offset sealed (written) per partition, for the lag gauge.
    sealed_to: Mutex<HashMap<i32, i64>>,
    /// The device registry state commits name.
    pub keys: crate::pin::Pins,
}

impl Shared {
    fn sealed_through(&self, ranges: &[epoch::Range]) {
        let mut to = self.sealed_to.lock().expect("lock");
        for r in ranges {
            let e = to.entry(r.partition).or_insert(r.last);
            *e = (*e).max(r.last);
        }
    }

    fn started_one(&self) {
        *self.in_flight.lock().expect("lock") += 1;
    }

    /// A window handed over is done with: written, or dropped at shutdown.
    fn finished_one(&self) {
        let mut n = self.in_flight.lock().expect("lock");
        *n = n.saturating_sub(1);
        self.drained.notify_all();
    }
}

/// Records of one closed window, on their way to be sealed.
pub struct Window {
    pub records: Vec<Record>,
    pub start_ms: i64,
    pub end_ms: i64,
    /// The ledger claim its records were read under.
    pub lease: Lease,
}

pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
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
pub(crate) use fault;

/// Runs the four stages until `ctx.cancel` is cancelled and they have wound
/// down. `consumer_config` and `dlq` carry the sealer's Kafka credentials.
pub async fn run<L: Ledger>(
    ctx: Arc<Context>,
    consumer_config: ClientConfig,
    dlq: FutureProducer,
    ledger: L,
) -> anyhow::Result<()> {
    let consumer: Arc<BaseConsumer<consume::Rebalancing>> =
        Arc::new(consume::subscribe(consumer_config.clone(), &ctx)?);
    let (window_tx, window_rx) = mpsc::channel::<Window>(1);
    let (sealed_tx, sealed_rx) = mpsc::channel(1);
    let (anchor_tx, anchor_rx) = mpsc::unbounded_channel::<EpochRow>();
    let ledger = Arc::new(ledger);

    let consuming = {
        let (ctx, consumer, ledger) = (ctx.clone(), consumer.clone(), ledger.clone());
        let rt = tokio::runtime::Handle::current();
        std::thread::Builder::new()
            .name("consume".into())
            .spawn(move || consume::run(&ctx, &consumer, &*ledger, &rt, window_tx))?
    };
    let lag = {
        let ctx = ctx.clone();
        std::thread::Builder::new()
            .name("lag".into())
            .spawn(move || lag::run(&ctx, consumer_config))?
    };
    let anchoring = tokio::spawn(anchor::run(
        ctx.clone(),
        ledger.clone(),
        consumer.clone(),
        anchor_rx,
    ));
    tracing::info!(instance = %ctx.settings.instance, topic = %ctx.settings.topic, epoch_ms = ctx.settings.epoch_ms, "sealer running");

    tokio::join!(
        seal::run(&ctx, window_rx, sealed_tx),
        write::run(&ctx, &consumer, &dlq, sealed_rx, anchor_tx),
    );
    // The consumer thread may wait in a rebalance callback for windows in
    // flight: none will be written now.
    ctx.cancel.cancel();
    consuming
        .join()
        .map_err(|_| anyhow::anyhow!("consumer thread panicked"))??;
    anchoring.await?;
    let _ = lag.join();
    Ok(())
}
