//! `sealer run`: the flags, and the wiring of the pipeline (pipeline/) to
//! Kafka, ClickHouse, the ledger, the metrics endpoint and the signals.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context as _;
use clap::Args;
use rdkafka::producer::FutureProducer;
use rdkafka::ClientConfig;
use tokio_util::sync::CancellationToken;

use schemas::gate::TimeBounds;

use sealer::ledger::Ledger;
use sealer::metrics::Metrics;
use sealer::pipeline::{self, Context, Settings, Shared};

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
    /// Name of this sealer in `epochs` (default: host and pid).
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
    /// Keys the in-memory filter of sealed events holds at about 0.25 % false
    /// maybes (14.4 bits each; two per event: its id and its GS1 event hash,
    /// so the default covers 25 M events in 90 MB, which the sealer's 1 GiB
    /// bound under overload leaves room for); past it, more are looked up in
    /// ClickHouse, a batch per epoch.
    #[arg(long, env = "SEALTRAIL_SEEN_CAPACITY", default_value_t = 50_000_000)]
    pub seen_capacity: u64,
    #[command(flatten)]
    pub bounds: TimeBounds,
    #[command(flatten)]
    pub kafka_auth: schemas::kafka::KafkaAuth,
    /// Benchmark only (builds with the `bench` feature): decode and write rows
    /// to <--bench-database>.scan_events without sealing (no tree, proofs,
    /// epochs or ledger).
    #[arg(long, hide = true)]
    pub bench_unsealed: bool,
    /// Benchmark only (builds with the `bench` feature): seal as usual but
    /// without verifying signatures, to measure what verifying costs.
    #[arg(long, hide = true)]
    pub bench_unchecked_signatures: bool,
    /// Benchmark only: where --bench-unsealed writes.
    #[arg(long, hide = true, default_value = "sealtrail_bench")]
    pub bench_database: String,
}

impl RunArgs {
    fn settings(&self) -> anyhow::Result<Settings> {
        let instance = self.instance.clone().unwrap_or_else(|| {
            format!(
                "{}-{}",
                std::env::var("HOSTNAME").unwrap_or_else(|_| "sealer".into()),
                std::process::id()
            )
        });
        #[cfg(not(feature = "bench"))]
        for (set, flag) in [
            (self.bench_unsealed, "--bench-unsealed"),
            (
                self.bench_unchecked_signatures,
                "--bench-unchecked-signatures",
            ),
        ] {
            if set {
                anyhow::bail!(
                    "{flag}: this sealer was built without the benchmark modes \
                     (cargo build --release -p sealer --features bench)"
                );
            }
        }
        Ok(Settings {
            instance,
            topic: self.topic.clone(),
            group: self.group.clone(),
            dlq_topic: self.dlq_topic.clone(),
            epoch_ms: self.epoch_ms,
            max_epoch_records: self.max_epoch_records,
            verify_threads: self.verify_threads,
            seen_capacity: self.seen_capacity,
            bounds: self.bounds,
            #[cfg(feature = "bench")]
            unsealed_into: self.bench_unsealed.then(|| self.bench_database.clone()),
            #[cfg(feature = "bench")]
            unchecked_signatures: self.bench_unchecked_signatures,
        })
    }
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
    c.set("bootstrap.servers", &args.kafka_brokers);
    Ok(c)
}

fn default_threads() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}

pub async fn run<L: Ledger>(
    args: RunArgs,
    clickhouse: clickhouse::Client,
    ledger: L,
) -> anyhow::Result<()> {
    let ctx = Arc::new(Context {
        settings: args.settings()?,
        clickhouse,
        metrics: Arc::new(Metrics::new()),
        shared: Arc::new(Shared::default()),
        cancel: CancellationToken::new(),
    });
    let dlq: FutureProducer = kafka_config(&args)?
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .create()
        .context("creating the dead-letter producer")?;
    tokio::spawn(serve_metrics(args.metrics_listen, ctx.metrics.clone()));
    {
        let cancel = ctx.cancel.clone();
        tokio::spawn(async move {
            crate::shutdown_signal().await;
            cancel.cancel();
        });
    }
    pipeline::run(ctx, kafka_config(&args)?, dlq, ledger).await?;
    tracing::info!("sealer stopped");
    Ok(())
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
