//! `ingest simulate`: a fleet of scanners moving items through their journeys
//! (see `journey`), every event signed by its device, sent straight to Kafka or
//! through the gateway (`--via`), or written to a pre-signed corpus for benchmarks.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use clap::Args;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::ClientContext;
use schemas::{avro, json, ScanEvent};

use crate::corpus::{CorpusReader, CorpusWriter};
use crate::journey::{Corpus, Fleet};
use crate::producer::KafkaArgs;

#[derive(Args, Debug, Clone)]
pub struct SimulateArgs {
    /// Events per second to send; unlimited when not given.
    #[arg(long)]
    pub rate: Option<u64>,
    /// Send this many events, then stop.
    #[arg(long, conflicts_with = "duration")]
    pub events: Option<u64>,
    /// Send for this many seconds, then stop.
    #[arg(long)]
    pub duration: Option<f64>,
    /// Items travelling at once; each event advances one of them.
    #[arg(long, default_value_t = 10_000)]
    pub items: usize,
    /// Same seed, same corpus: same items, journeys, device keys and event ids.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Send through the gateway at this base URL (e.g. http://127.0.0.1:8080)
    /// instead of straight to Kafka.
    #[arg(long)]
    pub via: Option<String>,
    /// Events per POST when sending through the gateway.
    #[arg(long, default_value_t = 200)]
    pub batch: usize,
    /// Concurrent POSTs when sending through the gateway.
    #[arg(long, default_value_t = 8)]
    pub connections: usize,
    /// Write the signed events to this corpus file instead of sending them.
    #[arg(long, conflicts_with_all = ["via", "corpus"])]
    pub write_corpus: Option<PathBuf>,
    /// Replay this pre-signed corpus (all of it unless --events or --duration).
    #[arg(long)]
    pub corpus: Option<PathBuf>,
    #[command(flatten)]
    pub kafka: KafkaArgs,
}

/// What happened to the events: shared by the senders and the progress line.
#[derive(Default)]
struct Tally {
    sent: AtomicU64,
    acked: AtomicU64,
    failed: AtomicU64,
    first_error: std::sync::Mutex<Option<String>>,
}

impl Tally {
    fn fail(&self, n: u64, error: String) {
        self.failed.fetch_add(n, Ordering::Relaxed);
        self.first_error.lock().expect("lock").get_or_insert(error);
    }
}

/// Where the next events come from: generated now, or read from a corpus.
enum Source {
    Generated(Box<Corpus>),
    File(CorpusReader),
}

impl Source {
    /// Up to `n` records as (key, single-object value, event for JSON if needed).
    fn next_chunk(&mut self, n: usize) -> anyhow::Result<Vec<(Vec<u8>, Vec<u8>)>> {
        match self {
            Source::Generated(c) => Ok(c
                .next_batch(n)
                .iter()
                .map(|e| (e.key().as_bytes().to_vec(), avro::encode_single_object(e)))
                .collect()),
            Source::File(r) => {
                let mut out = Vec::with_capacity(n);
                while out.len() < n {
                    match r.next_record()? {
                        Some(rec) => out.push(rec),
                        None => break,
                    }
                }
                Ok(out)
            }
        }
    }
}

struct Limits {
    events: Option<u64>,
    deadline: Option<Instant>,
    rate: Option<u64>,
    started: Instant,
}

impl Limits {
    /// How many more events may go now: 0 to wait, None when done.
    fn allowance(&self, sent: u64, want: u64) -> Option<u64> {
        if self.deadline.is_some_and(|d| Instant::now() >= d) {
            return None;
        }
        let left = self
            .events
            .map_or(want, |e| e.saturating_sub(sent).min(want));
        if left == 0 {
            return None;
        }
        Some(match self.rate {
            None => left,
            Some(r) => {
                let due = (self.started.elapsed().as_secs_f64() * r as f64) as u64;
                due.saturating_sub(sent).min(left)
            }
        })
    }
}

pub async fn run(args: SimulateArgs, clickhouse: clickhouse::Client) -> anyhow::Result<()> {
    if args.events.is_none() && args.duration.is_none() && args.corpus.is_none() {
        bail!("say how much to send: --events N or --duration SECONDS (or --corpus FILE to replay one)");
    }
    if args.items == 0 {
        bail!("--items must be at least 1");
    }
    let (source, seed) = match &args.corpus {
        Some(path) => {
            let r = CorpusReader::open(path)?;
            let seed = r.seed;
            (Source::File(r), seed)
        }
        None => (
            Source::Generated(Box::new(Corpus::new(args.seed, args.items))),
            args.seed,
        ),
    };
    let limits = Limits {
        events: args.events,
        deadline: args
            .duration
            .map(|d| Instant::now() + Duration::from_secs_f64(d)),
        rate: args.rate,
        started: Instant::now(),
    };

    if let Some(path) = &args.write_corpus {
        return write_corpus(path, seed, source, limits);
    }

    // Events from unregistered devices would be refused (gateway) or fail
    // verification later (sealer): register the simulated fleet first.
    let fleet = Fleet { seed };
    let devices: Vec<_> = fleet
        .devices()
        .into_iter()
        .map(|d| {
            let k = fleet.key(&d).verifying_key();
            (d, k)
        })
        .collect();
    let added = schemas::devices::ensure_registered(&clickhouse, &devices)
        .await
        .context("registering the simulated fleet in sealtrail.devices")?;
    tracing::info!(
        devices = devices.len(),
        newly_registered = added,
        "simulated fleet registered"
    );

    let tally = Arc::new(Tally::default());
    let done = Arc::new(AtomicBool::new(false));
    let progress = tokio::spawn(report_progress(tally.clone(), done.clone()));
    let started = Instant::now();
    let result = match &args.via {
        None => {
            let (kafka, tally) = (args.kafka.clone(), tally.clone());
            tokio::task::spawn_blocking(move || to_kafka(&kafka, source, limits, &tally)).await?
        }
        Some(url) => via_gateway(&args, url, source, limits, tally.clone()).await,
    };
    done.store(true, Ordering::Relaxed);
    progress.await?;
    result?;
    let elapsed = started.elapsed().as_secs_f64();
    let (sent, acked, failed) = (
        tally.sent.load(Ordering::Relaxed),
        tally.acked.load(Ordering::Relaxed),
        tally.failed.load(Ordering::Relaxed),
    );
    println!(
        "sent={sent} acknowledged={acked} failed={failed} seconds={elapsed:.2} events_per_s={:.0}",
        acked as f64 / elapsed
    );
    if failed > 0 {
        let why = tally
            .first_error
            .lock()
            .expect("lock")
            .clone()
            .unwrap_or_default();
        bail!("{failed} events were not acknowledged; first error: {why}");
    }
    Ok(())
}

fn write_corpus(
    path: &std::path::Path,
    seed: u64,
    mut source: Source,
    limits: Limits,
) -> anyhow::Result<()> {
    let mut w = CorpusWriter::create(path, seed)?;
    let mut written = 0u64;
    let started = Instant::now();
    while let Some(n) = limits.allowance(written, 8192) {
        let chunk = source.next_chunk(n as usize)?;
        if chunk.is_empty() {
            break;
        }
        for (k, v) in &chunk {
            w.write(k, v)?;
        }
        written += chunk.len() as u64;
    }
    w.finish()?;
    let bytes = std::fs::metadata(path)?.len();
    println!(
        "written={written} bytes={bytes} seconds={:.2} file={}",
        started.elapsed().as_secs_f64(),
        path.display()
    );
    Ok(())
}

struct Acks(Arc<Tally>);

impl ClientContext for Acks {}

impl ProducerContext for Acks {
    type DeliveryOpaque = ();
    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        match result {
            Ok(_) => {
                self.0.acked.fetch_add(1, Ordering::Relaxed);
            }
            Err((e, _)) => self.0.fail(1, e.to_string()),
        }
    }
}

fn to_kafka(
    kafka: &KafkaArgs,
    mut source: Source,
    limits: Limits,
    tally: &Arc<Tally>,
) -> anyhow::Result<()> {
    let producer: ThreadedProducer<Acks> = kafka
        .producer_config()
        .create_with_context(Acks(tally.clone()))
        .context("creating the Kafka producer")?;
    loop {
        let sent = tally.sent.load(Ordering::Relaxed);
        let Some(n) = limits.allowance(sent, 4096) else {
            break;
        };
        if n == 0 {
            std::thread::sleep(Duration::from_millis(2));
            continue;
        }
        let chunk = source.next_chunk(n as usize)?;
        if chunk.is_empty() {
            break;
        }
        for (key, value) in &chunk {
            let mut record = BaseRecord::to(&kafka.topic).key(key).payload(value);
            loop {
                match producer.send(record) {
                    Ok(()) => break,
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                        record = r;
                        std::thread::sleep(Duration::from_millis(1));
                    }
                    Err((e, _)) => bail!("producing to {}: {e}", kafka.topic),
                }
            }
            tally.sent.fetch_add(1, Ordering::Relaxed);
        }
    }
    producer
        .flush(Duration::from_millis(kafka.kafka_timeout_ms + 5000))
        .context("waiting for Kafka to acknowledge the last events")?;
    Ok(())
}

async fn via_gateway(
    args: &SimulateArgs,
    url: &str,
    mut source: Source,
    limits: Limits,
    tally: Arc<Tally>,
) -> anyhow::Result<()> {
    let endpoint = format!("{}/v1/events", url.trim_end_matches('/'));
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()?;
    let (tx, rx) = async_channel(args.connections * 2);
    let mut workers = Vec::new();
    for _ in 0..args.connections.max(1) {
        let (rx, client, endpoint, tally) =
            (rx.clone(), client.clone(), endpoint.clone(), tally.clone());
        workers.push(tokio::spawn(async move {
            while let Some(batch) = rx.recv().await {
                post_batch(&client, &endpoint, batch, &tally).await;
            }
        }));
    }
    drop(rx);
    loop {
        let sent = tally.sent.load(Ordering::Relaxed);
        let Some(n) = limits.allowance(sent, args.batch as u64) else {
            break;
        };
        if n == 0 {
            tokio::time::sleep(Duration::from_millis(2)).await;
            continue;
        }
        let chunk = tokio::task::block_in_place(|| source.next_chunk(n as usize))?;
        if chunk.is_empty() {
            break;
        }
        let events: Vec<serde_json::Value> = chunk
            .iter()
            .map(|(_, v)| avro::decode_single_object(v).map(|e: ScanEvent| json::to_json(&e)))
            .collect::<Result<_, _>>()
            .context("corpus holds a record that is not a scan event")?;
        tally.sent.fetch_add(events.len() as u64, Ordering::Relaxed);
        if tx.send(events).await.is_err() {
            break;
        }
    }
    drop(tx);
    for w in workers {
        w.await?;
    }
    Ok(())
}

/// POSTs one batch; on 503 waits as told and resends only what was not accepted.
async fn post_batch(
    client: &reqwest::Client,
    endpoint: &str,
    mut batch: Vec<serde_json::Value>,
    tally: &Tally,
) {
    for _attempt in 0..5 {
        let response = match client.post(endpoint).json(&batch).send().await {
            Ok(r) => r,
            Err(e) => {
                tally.fail(batch.len() as u64, format!("POST {endpoint}: {e}"));
                return;
            }
        };
        let status = response.status();
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok()?.parse::<u64>().ok())
            .unwrap_or(1);
        let body: serde_json::Value = response.json().await.unwrap_or_default();
        if status == reqwest::StatusCode::ACCEPTED {
            tally.acked.fetch_add(batch.len() as u64, Ordering::Relaxed);
            return;
        }
        if status != reqwest::StatusCode::SERVICE_UNAVAILABLE {
            tally.fail(batch.len() as u64, format!("{status}: {body}"));
            return;
        }
        let accepted: Vec<&str> = body["accepted_event_ids"]
            .as_array()
            .map(|a| a.iter().filter_map(|v| v.as_str()).collect())
            .unwrap_or_default();
        tally
            .acked
            .fetch_add(accepted.len() as u64, Ordering::Relaxed);
        let accepted: std::collections::HashSet<String> =
            accepted.into_iter().map(String::from).collect();
        batch.retain(|e| !accepted.contains(e["event_id"].as_str().unwrap_or("")));
        tokio::time::sleep(Duration::from_secs(retry_after)).await;
    }
    tally.fail(batch.len() as u64, "gateway kept answering 503".into());
}

/// A bounded multi-consumer channel built from a tokio mpsc and a shared receiver.
fn async_channel<T: Send + 'static>(
    bound: usize,
) -> (tokio::sync::mpsc::Sender<T>, SharedReceiver<T>) {
    let (tx, rx) = tokio::sync::mpsc::channel(bound);
    (tx, SharedReceiver(Arc::new(tokio::sync::Mutex::new(rx))))
}

struct SharedReceiver<T>(Arc<tokio::sync::Mutex<tokio::sync::mpsc::Receiver<T>>>);

impl<T> Clone for SharedReceiver<T> {
    fn clone(&self) -> Self {
        SharedReceiver(self.0.clone())
    }
}

impl<T> SharedReceiver<T> {
    async fn recv(&self) -> Option<T> {
        self.0.lock().await.recv().await
    }
}

/// One line a second: sent, acknowledged, failed, and the rate of the last second.
/// Redrawn in place on a terminal; a line every 5 s otherwise (logs, CI).
async fn report_progress(tally: Arc<Tally>, done: Arc<AtomicBool>) {
    use std::io::IsTerminal;
    let terminal = std::io::stderr().is_terminal();
    let mut last = (Instant::now(), 0u64);
    let mut ticks = 0u64;
    while !done.load(Ordering::Relaxed) {
        tokio::time::sleep(Duration::from_millis(200)).await;
        ticks += 1;
        if !ticks.is_multiple_of(5) || (!terminal && !ticks.is_multiple_of(25)) {
            continue;
        }
        let acked = tally.acked.load(Ordering::Relaxed);
        let rate = (acked - last.1) as f64 / last.0.elapsed().as_secs_f64();
        last = (Instant::now(), acked);
        let line = format!(
            "sent {:>10}  acknowledged {:>10}  failed {:>6}  {:>9.0} events/s",
            tally.sent.load(Ordering::Relaxed),
            acked,
            tally.failed.load(Ordering::Relaxed),
            rate
        );
        if terminal {
            eprint!("\r{line}");
        } else {
            eprintln!("{line}");
        }
    }
    if terminal {
        eprintln!();
    }
}
