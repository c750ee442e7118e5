//! `ingest serve`: the HTTP gateway scanners post signed events to. It validates
//! every field, checks the device and its signature, produces Avro to Kafka and
//! answers 202 only after Kafka acknowledged every event, so nothing it accepted
//! can be lost. Under a slow or absent Kafka it sheds load with 503 + Retry-After
//! instead of queueing without bound. An event id it can see is sealed already
//! gets 409: a Bloom filter of sealed ids, kept fresh from ClickHouse, lets it ask
//! ClickHouse only about the few ids the filter may hold.

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::task::Poll;
use std::time::{Duration, Instant};

use anyhow::Context;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use clap::Args;
use prometheus::{
    Encoder, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, Opts, Registry,
};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord, Producer};
use schemas::devices::KeyHistory;
use schemas::gate::{self, Refusal, TimeBounds};
use schemas::leaf::LeafEvent;
use schemas::seen::SeenIds;
use schemas::{json, ScanEvent};
use serde_json::{json, Value};
use store::{devices, sealed_ids};
use tokio::sync::Semaphore;

use crate::producer::KafkaArgs;

#[derive(Args, Debug, Clone)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(
        long,
        env = "SEALTRAIL_INGEST_LISTEN",
        default_value = "127.0.0.1:8080"
    )]
    pub listen: SocketAddr,
    /// Largest request body accepted, in bytes.
    #[arg(long, env = "SEALTRAIL_INGEST_MAX_BODY_BYTES", default_value_t = 2 * 1024 * 1024)]
    pub max_body_bytes: usize,
    /// Most events accepted in one POST.
    #[arg(long, env = "SEALTRAIL_INGEST_MAX_BATCH", default_value_t = 1000)]
    pub max_batch: usize,
    /// Events being produced at once; beyond this, requests get 503 + Retry-After.
    #[arg(long, env = "SEALTRAIL_INGEST_MAX_IN_FLIGHT", default_value_t = 50_000)]
    pub max_in_flight: usize,
    /// Longest a request may take, reading to answer, in milliseconds.
    #[arg(
        long,
        env = "SEALTRAIL_INGEST_REQUEST_TIMEOUT_MS",
        default_value_t = 10_000
    )]
    pub request_timeout_ms: u64,
    /// How often the device registry is re-read; a revocation applies within this.
    #[arg(
        long,
        env = "SEALTRAIL_INGEST_DEVICE_REFRESH_MS",
        default_value_t = 2000
    )]
    pub device_refresh_ms: u64,
    /// Keys the in-memory filter of sealed events holds at about 0.25 % false
    /// maybes (14.4 bits each; two per event: its id and its GS1 event hash,
    /// so the default covers 25 M events in 90 MB, which the sealer's 1 GiB
    /// bound under overload leaves room for); past it, more are looked up in
    /// ClickHouse, a batch per epoch.
    #[arg(long, env = "SEALTRAIL_SEEN_CAPACITY", default_value_t = 50_000_000)]
    pub seen_capacity: u64,
    /// How often the ids sealed since the last read are added to the filter (each
    /// read scans the sealing times of the month's rows: not too often; a replay
    /// the gateway misses is still refused by the sealer).
    #[arg(
        long,
        env = "SEALTRAIL_INGEST_SEEN_REFRESH_MS",
        default_value_t = 10_000
    )]
    pub seen_refresh_ms: u64,
    /// Events per second each device may send on average (its bucket refills
    /// at this rate); beyond it, 429 with Retry-After.
    #[arg(
        long,
        env = "SEALTRAIL_INGEST_DEVICE_EVENTS_PER_SECOND",
        default_value_t = 100.0
    )]
    pub device_events_per_second: f64,
    /// Events a device may send at once after a quiet spell (its bucket's size).
    #[arg(long, env = "SEALTRAIL_INGEST_DEVICE_BURST", default_value_t = 2000.0)]
    pub device_burst: f64,
    #[command(flatten)]
    pub bounds: TimeBounds,
    #[command(flatten)]
    pub kafka: KafkaArgs,
    #[command(flatten)]
    pub http: web::Limits,
}

pub(crate) struct Metrics {
    registry: Registry,
    pub(crate) accepted: IntCounter,
    pub(crate) rejected: IntCounterVec,
    produce_latency: Histogram,
    in_flight: IntGauge,
}

impl Metrics {
    fn new() -> Self {
        let registry = Registry::new();
        let accepted = IntCounter::new(
            "sealtrail_ingest_accepted_events_total",
            "Events acknowledged by Kafka and answered 202",
        )
        .expect("metric");
        let rejected = IntCounterVec::new(
            Opts::new(
                "sealtrail_ingest_rejected_requests_total",
                "Requests refused, by reason",
            ),
            &["reason"],
        )
        .expect("metric");
        let produce_latency = Histogram::with_opts(
            HistogramOpts::new(
                "sealtrail_ingest_produce_latency_seconds",
                "From producing a request's events to Kafka acknowledging the last of them",
            )
            .buckets(vec![
                0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
            ]),
        )
        .expect("metric");
        let in_flight = IntGauge::new(
            "sealtrail_ingest_in_flight_events",
            "Events produced, not yet acknowledged",
        )
        .expect("metric");
        registry
            .register(Box::new(accepted.clone()))
            .expect("register");
        registry
            .register(Box::new(rejected.clone()))
            .expect("register");
        registry
            .register(Box::new(produce_latency.clone()))
            .expect("register");
        registry
            .register(Box::new(in_flight.clone()))
            .expect("register");
        Metrics {
            registry,
            accepted,
            rejected,
            produce_latency,
            in_flight,
        }
    }
}

pub(crate) struct Gateway {
    pub(crate) args: ServeArgs,
    producer: FutureProducer,
    clickhouse: clickhouse::Client,
    devices: RwLock<Arc<KeyHistory>>,
    /// Every sealed id, once the first read of them is done; until then no
    /// request is refused as a duplicate (the sealer refuses them anyway).
    seen: OnceLock<SeenIds>,
    /// When an unknown device last made us re-read the registry out of turn.
    last_forced_refresh: tokio::sync::Mutex<Instant>,
    in_flight: Semaphore,
    quota: crate::quota::Quota,
    pub(crate) metrics: Metrics,
    /// EPCIS capture jobs this gateway took (`capture.rs`).
    pub(crate) jobs: crate::capture::Jobs,
}

/// A refusal: the status, a machine-readable reason, and a sentence for people.
pub(crate) struct Rejection {
    pub(crate) status: StatusCode,
    pub(crate) reason: &'static str,
    pub(crate) field: Option<String>,
    pub(crate) problem: String,
    pub(crate) retry_after: Option<u32>,
    pub(crate) accepted_ids: Vec<String>,
}

impl Rejection {
    pub(crate) fn new(
        status: StatusCode,
        reason: &'static str,
        problem: impl Into<String>,
    ) -> Self {
        Rejection {
            status,
            reason,
            field: None,
            problem: problem.into(),
            retry_after: None,
            accepted_ids: Vec::new(),
        }
    }
    pub(crate) fn field(mut self, field: impl Into<String>) -> Self {
        self.field = Some(field.into());
        self
    }
    fn retry_after(mut self, seconds: u32) -> Self {
        self.retry_after = Some(seconds);
        self
    }
}

impl IntoResponse for Rejection {
    fn into_response(self) -> Response {
        let mut body = json!({"error": self.reason, "problem": self.problem});
        if let Some(f) = self.field {
            body["field"] = json!(f);
        }
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            body["accepted"] = json!(self.accepted_ids.len());
            body["accepted_event_ids"] = json!(self.accepted_ids);
        }
        let mut response = (self.status, Json(body)).into_response();
        if let Some(s) = self.retry_after {
            response.headers_mut().insert(header::RETRY_AFTER, s.into());
        }
        response
    }
}

pub async fn serve(args: ServeArgs, clickhouse: clickhouse::Client) -> anyhow::Result<()> {
    // NaN, 0 or less would refuse every request (or none): a configuration error.
    if !(args.device_events_per_second > 0.0 && args.device_burst >= 1.0) {
        anyhow::bail!(
            "--device-events-per-second must be above 0 and --device-burst at least 1 (got {} and {})",
            args.device_events_per_second,
            args.device_burst
        );
    }
    let producer: FutureProducer = args
        .kafka
        .producer_config("gateway")?
        .create()
        .context("creating the Kafka producer")?;
    let known = devices::history(&clickhouse)
        .await
        .context("reading the device registry from ClickHouse (is it up, and migrated?)")?;
    tracing::info!(devices = known.len(), "device registry loaded");
    let gateway = Arc::new(Gateway {
        in_flight: Semaphore::new(args.max_in_flight),
        quota: crate::quota::Quota::new(args.device_events_per_second, args.device_burst),
        devices: RwLock::new(Arc::new(known)),
        seen: OnceLock::new(),
        metrics: Metrics::new(),
        jobs: crate::capture::Jobs::new(crate::capture::JOBS_KEPT),
        producer,
        clickhouse,
        last_forced_refresh: tokio::sync::Mutex::new(
            Instant::now()
                .checked_sub(Duration::from_secs(1))
                .unwrap_or_else(Instant::now),
        ),
        args: args.clone(),
    });
    // The capture limits the binding's 413 answers state.
    let _ = crate::capture::LIMITS.set((args.max_batch, args.max_body_bytes));
    tokio::spawn(refresh_devices(gateway.clone()));
    // Reading every sealed id takes a while on a big store: serve meanwhile.
    tokio::spawn(keep_seen_ids(gateway.clone()));

    let app = Router::new()
        .route("/v1/events", post(post_events))
        .merge(crate::capture::routes())
        .route("/healthz", get(|| async { Json(json!({"status": "ok"})) }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .layer(DefaultBodyLimit::max(args.max_body_bytes))
        .with_state(gateway.clone());
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("binding {}", args.listen))?;
    tracing::info!(listen = %args.listen, topic = %args.kafka.topic, "gateway serving");
    web::serve(listener, app, args.http, crate::shutdown_signal()).await;
    tracing::info!("draining: waiting for Kafka to acknowledge what is in flight");
    gateway
        .producer
        .flush(Duration::from_secs(10))
        .context("flushing the producer")?;
    Ok(())
}

async fn refresh_devices(gateway: Arc<Gateway>) {
    let mut tick = tokio::time::interval(Duration::from_millis(gateway.args.device_refresh_ms));
    loop {
        tick.tick().await;
        gateway.reload_devices().await;
    }
}

/// Ids sealed shortly before the last read may be written after it (an epoch's
/// rows land a moment after its sealing second): each refresh reads this far back.
const SEEN_MARGIN_S: u32 = 10;

/// Loads every sealed id into the filter, then adds those sealed since, for ever.
async fn keep_seen_ids(g: Arc<Gateway>) {
    let started = Instant::now();
    let seen = SeenIds::new(g.args.seen_capacity);
    let mut read_at = loop {
        let at = now_s();
        // A retry re-adds ids a failed read added: the filter does not mind.
        match sealed_ids::load_seen(&g.clickhouse, &seen).await {
            Ok(n) => {
                tracing::info!(
                    sealed_keys = n,
                    seconds = started.elapsed().as_secs_f64(),
                    "sealed ids and hashes loaded: events sealed before are refused"
                );
                break at;
            }
            Err(e) => {
                tracing::warn!(error = %e, "reading the sealed event ids; retrying");
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
        }
    };
    let seen = g.seen.get_or_init(|| seen);
    let mut told_full = false;
    let mut tick = tokio::time::interval(Duration::from_millis(g.args.seen_refresh_ms.max(100)));
    loop {
        tick.tick().await;
        let at = now_s();
        let since = read_at.saturating_sub(SEEN_MARGIN_S);
        match sealed_ids::load_seen_since(&g.clickhouse, since, seen).await {
            Ok(_) => read_at = at,
            // The next refresh reads from the same moment, so nothing is skipped.
            Err(e) => tracing::debug!(error = %e, "reading ids sealed since the last read"),
        }
        if seen.is_full() && !told_full {
            told_full = true;
            tracing::warn!(
                capacity = g.args.seen_capacity,
                "the sealed-id filter is full; lookups grow, raise --seen-capacity"
            );
        }
    }
}

impl Gateway {
    async fn reload_devices(&self) {
        // Rows are only appended: read those after the last one we have.
        let mut keys = (**self.devices.read().unwrap_or_else(|e| e.into_inner())).clone();
        match devices::refresh(&self.clickhouse, &mut keys).await {
            Ok(0) => {}
            Ok(_) => *self.devices.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(keys),
            Err(e) => {
                tracing::warn!(error = %e, "device registry refresh failed; keeping the last one")
            }
        }
    }

    /// A device registered a moment ago should not wait for the next refresh:
    /// an unknown device re-reads the registry, at most four times a second.
    async fn reload_for_unknown(&self, events: &[LeafEvent]) {
        self.reload_for_devices(events.iter().map(|e| e.device_id()))
            .await
    }

    /// The registry as it is now.
    pub(crate) fn registry(&self) -> Arc<KeyHistory> {
        self.devices
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// `reload_for_unknown` for these devices.
    pub(crate) async fn reload_for_devices<'a>(&self, mut devices: impl Iterator<Item = &'a str>) {
        let unknown = {
            let registry = self.devices.read().unwrap_or_else(|e| e.into_inner());
            devices.any(|d| !registry.knows(d))
        };
        if !unknown {
            return;
        }
        let mut last = self.last_forced_refresh.lock().await;
        if last.elapsed() >= Duration::from_millis(250) {
            self.reload_devices().await;
            *last = Instant::now();
        }
    }
}

async fn post_events(
    State(g): State<Arc<Gateway>>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let limit = Duration::from_millis(g.args.request_timeout_ms);
    // The ids Kafka acknowledged so far, as they come: a timeout drops `accept`
    // midway, and its answer must still name what landed.
    let acked = Mutex::new(Vec::new());
    let result = match tokio::time::timeout(limit, accept(&g, body, &acked)).await {
        Ok(r) => r,
        Err(_) => {
            let acked = acked.into_inner().unwrap_or_else(|e| e.into_inner());
            g.metrics.accepted.inc_by(acked.len() as u64);
            Err(timed_out(g.args.request_timeout_ms, acked))
        }
    };
    match result {
        Ok(n) => {
            g.metrics.accepted.inc_by(n as u64);
            (StatusCode::ACCEPTED, Json(json!({"accepted": n}))).into_response()
        }
        Err(r) => {
            g.metrics.rejected.with_label_values(&[r.reason]).inc();
            r.into_response()
        }
    }
}

/// The answer to a request that ran out of time. What Kafka acknowledged by then
/// must not be resent; the rest may still land (it stays queued in the
/// producer), and a second copy of it is refused when sealed.
pub(crate) fn timed_out(timeout_ms: u64, acked: Vec<String>) -> Rejection {
    let mut r = Rejection::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "timeout",
        format!(
            "not every event was acknowledged within {timeout_ms} ms; the {} in accepted_event_ids were accepted and must not be resent",
            acked.len()
        ),
    )
    .retry_after(2);
    r.accepted_ids = acked;
    r
}

/// Everything between the body and Kafka's acknowledgement; the count accepted.
/// Each id Kafka acknowledges goes into `acked` as soon as it is.
async fn accept(
    g: &Gateway,
    body: Result<Bytes, BytesRejection>,
    acked: &Mutex<Vec<String>>,
) -> Result<usize, Rejection> {
    let body = body.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            Rejection::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "body_too_large",
                format!(
                    "request body is larger than {} bytes; split the batch",
                    g.args.max_body_bytes
                ),
            )
        } else {
            Rejection::new(StatusCode::BAD_REQUEST, "unreadable_body", e.body_text())
        }
    })?;
    let value: Value = serde_json::from_slice(&body).map_err(|e| {
        Rejection::new(
            StatusCode::BAD_REQUEST,
            "malformed_json",
            format!("body is not JSON: {e}"),
        )
    })?;
    let events: Vec<LeafEvent> = parse_batch(&value, g.args.max_batch)?
        .into_iter()
        .map(LeafEvent::Scan)
        .collect();
    admit(g, &events, acked).await
}

/// A request's parsed events from the registry's check to Kafka's
/// acknowledgement: every check passes for all of them before any is produced.
/// The count accepted.
pub(crate) async fn admit(
    g: &Gateway,
    events: &[LeafEvent],
    acked: &Mutex<Vec<String>>,
) -> Result<usize, Rejection> {
    g.reload_for_unknown(events).await;
    check_devices(g, events)?;
    // Sealed ids before the quota: a replay of a device's sealed events
    // (public in their proof bundles) must not spend its quota.
    refuse_sealed(g, events).await?;
    take_quota(g, events)?;

    let n = events.len();
    let permits = g.in_flight.try_acquire_many(n as u32).map_err(|_| {
        Rejection::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "overloaded",
            "too many events in flight to Kafka",
        )
        .retry_after(1)
    })?;
    // A guard, not a pair of calls: a timeout drops this future midway.
    let _in_flight = InFlight::new(&g.metrics.in_flight, n as i64, permits);
    produce(g, events, acked).await.map(|_| n)
}

/// Events of one request counted in flight, with their permits, until dropped.
struct InFlight<'a> {
    gauge: &'a IntGauge,
    n: i64,
    _permits: tokio::sync::SemaphorePermit<'a>,
}

impl<'a> InFlight<'a> {
    fn new(gauge: &'a IntGauge, n: i64, permits: tokio::sync::SemaphorePermit<'a>) -> Self {
        gauge.add(n);
        InFlight {
            gauge,
            n,
            _permits: permits,
        }
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.gauge.sub(self.n);
    }
}

/// Refuses the request if one of its events is sealed already, as far as this
/// gateway can tell (by its id, or by its GS1 event hash under another id), or
/// comes twice in it under two ids: keys the filter has never heard of pass at
/// once, and only the filter's maybes are looked up. Best effort: the sealer
/// refuses any duplicate this misses, so a ClickHouse that does not answer
/// lets the request through rather than failing it.
async fn refuse_sealed(g: &Gateway, events: &[LeafEvent]) -> Result<(), Rejection> {
    let hashes = hashes_of(events);
    let field = |i: usize| {
        if events.len() == 1 {
            "event_id".to_string()
        } else {
            format!("events[{i}].event_id")
        }
    };
    let mut firsts: HashMap<&str, usize> = HashMap::with_capacity(events.len());
    for (i, h) in hashes.iter().enumerate() {
        if let Some(first) = h.as_deref().and_then(|h| firsts.insert(h, i)) {
            return Err(same_as(&events[i], &events[first]).field(field(i)));
        }
    }
    let sealed = sealed_among(g, events, &hashes).await;
    match events
        .iter()
        .enumerate()
        .find(|(_, e)| sealed.contains(e.event_id()))
    {
        None => Ok(()),
        Some((i, e)) => Err(sealed_already(e).field(field(i))),
    }
}

/// Each event's GS1 event hash ID (a scan event's costs about 2 µs, a tenth
/// of its signature check).
pub(crate) fn hashes_of(events: &[LeafEvent]) -> Vec<Option<String>> {
    events.iter().map(LeafEvent::event_hash).collect()
}

/// The ids of `events` this gateway can tell are sealed, by their ids or
/// their `hashes`, in two queries at most (best effort: none when ClickHouse
/// does not answer in time).
pub(crate) async fn sealed_among(
    g: &Gateway,
    events: &[LeafEvent],
    hashes: &[Option<String>],
) -> std::collections::HashSet<String> {
    let mut sealed = sealed_by_hash(g, events, hashes).await;
    let Some(seen) = g.seen.get() else {
        return sealed;
    };
    let maybe: Vec<(&str, &str)> = events
        .iter()
        .filter(|e| seen.may_contain(e.event_id()))
        .map(|e| (e.event_id(), e.key()))
        .collect();
    if maybe.is_empty() {
        return sealed;
    }
    match tokio::time::timeout(
        SEALED_LOOKUP_WAIT,
        sealed_ids::sealed_among(&g.clickhouse, &maybe, sealed_ids::Counting::NotVoid),
    )
    .await
    {
        Ok(Ok(found)) => {
            sealed.extend(found);
            sealed
        }
        Ok(Err(e)) => {
            tracing::debug!(error = %e, "looking up sealed ids failed; accepting");
            sealed
        }
        Err(_) => {
            tracing::debug!("looking up sealed ids timed out; accepting");
            sealed
        }
    }
}

/// The ids of events whose GS1 hash is sealed already (the same event under
/// another id): those the filter may hold, and every kept EPCIS event's (rare,
/// and sealed a moment ago is still found), in one query; best effort, as
/// `sealed_among`.
async fn sealed_by_hash(
    g: &Gateway,
    events: &[LeafEvent],
    hashes: &[Option<String>],
) -> std::collections::HashSet<String> {
    let seen = g.seen.get();
    let ask: Vec<&str> = events
        .iter()
        .zip(hashes)
        .filter_map(|(e, h)| {
            let h = h.as_deref()?;
            // Until the filter is loaded, only kept events' (as ids then).
            let maybe = e.kept_hash().is_some() || seen.is_some_and(|s| s.may_contain(h));
            maybe.then_some(h)
        })
        .collect();
    if ask.is_empty() {
        return Default::default();
    }
    match tokio::time::timeout(
        SEALED_LOOKUP_WAIT,
        sealed_ids::sealed_hashes(&g.clickhouse, &ask, sealed_ids::Counting::NotVoid),
    )
    .await
    {
        Ok(Ok(found)) => {
            // Under this id or another: sealed either way.
            let found: std::collections::HashSet<&str> =
                found.iter().map(|(h, _)| h.as_str()).collect();
            events
                .iter()
                .zip(hashes)
                .filter(|(_, h)| h.as_deref().is_some_and(|h| found.contains(h)))
                .map(|(e, _)| e.event_id().to_string())
                .collect()
        }
        _ => {
            tracing::debug!("looking up sealed event hashes failed; accepting");
            Default::default()
        }
    }
}

/// Each event checked on its own (registry, signature, sealed id), for a
/// capture that keeps the good events of a request with bad ones: the
/// refusal of each that fails, in order.
pub(crate) async fn screen_each(g: &Gateway, events: &[LeafEvent]) -> Vec<Option<Rejection>> {
    g.reload_for_unknown(events).await;
    let mut out: Vec<Option<Rejection>> = events
        .iter()
        .map(|e| check_devices(g, std::slice::from_ref(e)).err())
        .collect();
    let hashes = hashes_of(events);
    let sealed = sealed_among(g, events, &hashes).await;
    let mut firsts: HashMap<&str, usize> = HashMap::with_capacity(events.len());
    for (i, (e, verdict)) in events.iter().zip(out.iter_mut()).enumerate() {
        if verdict.is_some() {
            continue;
        }
        if sealed.contains(e.event_id()) {
            *verdict = Some(sealed_already(e).field("event_id"));
        } else if let Some(h) = hashes[i].as_deref() {
            // Named after the first copy, which goes on.
            let first = *firsts.entry(h).or_insert(i);
            if first != i {
                *verdict = Some(same_as(e, &events[first]).field("event_id"));
            }
        }
    }
    out
}

/// `again` is the request's event `first` again, under another id.
fn same_as(again: &LeafEvent, first: &LeafEvent) -> Rejection {
    Rejection::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        "duplicate_event",
        format!(
            "event {} is event {} of this request again (the same GS1 event hash) under another event_id",
            again.event_id(),
            first.event_id()
        ),
    )
}

fn sealed_already(e: &LeafEvent) -> Rejection {
    Rejection::new(
        StatusCode::CONFLICT,
        "duplicate_event_id",
        format!(
            "event {} is sealed already (this event_id, or the same event under another: the same GS1 event hash); it was accepted before and must not be resent",
            e.event_id()
        ),
    )
}

/// Longest a request waits on ClickHouse to tell whether its ids are sealed.
const SEALED_LOOKUP_WAIT: Duration = Duration::from_secs(1);

fn parse_batch(value: &Value, max_batch: usize) -> Result<Vec<ScanEvent>, Rejection> {
    let invalid = |e: schemas::FieldError| {
        Rejection::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_field", e.problem).field(e.field)
    };
    let events = match value {
        Value::Object(_) => vec![json::parse_event(value, "").map_err(invalid)?],
        Value::Array(items) => {
            if items.is_empty() {
                return Err(Rejection::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "empty_batch",
                    "the array holds no events; send at least one",
                ));
            }
            if items.len() > max_batch {
                return Err(Rejection::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "batch_too_large",
                    format!("{} events in one request; at most {max_batch}", items.len()),
                ));
            }
            items
                .iter()
                .enumerate()
                .map(|(i, v)| json::parse_event(v, &format!("events[{i}]")).map_err(invalid))
                .collect::<Result<Vec<_>, _>>()?
        }
        _ => {
            return Err(Rejection::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_body",
                "body must be one event object or an array of events",
            ))
        }
    };
    let mut seen: HashMap<&str, usize> = HashMap::with_capacity(events.len());
    for (i, e) in events.iter().enumerate() {
        if let Some(first) = seen.insert(&e.event_id, i) {
            return Err(Rejection::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "duplicate_event_id",
                format!("event_id {} also appears at events[{first}]", e.event_id),
            )
            .field(format!("events[{i}].event_id")));
        }
    }
    Ok(events)
}

/// Every event through the gate, each signature checked on its own: the same
/// rules the sealer applies to every Kafka record.
/// Each device's events count against its own bucket (after their signatures
/// checked out: a forged device id cannot spend another's quota).
fn take_quota(g: &Gateway, events: &[LeafEvent]) -> Result<(), Rejection> {
    let mut wanted: std::collections::HashMap<&str, u64> = std::collections::HashMap::new();
    for e in events {
        *wanted.entry(e.device_id()).or_default() += 1;
    }
    g.quota
        .take(&wanted, Instant::now())
        .map_err(|(device, wait)| {
            Rejection::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                format!(
                    "device '{device}' sent more than {} events/s (bursts up to {})",
                    g.args.device_events_per_second, g.args.device_burst
                ),
            )
            .retry_after(wait)
        })
}

fn check_devices(g: &Gateway, events: &[LeafEvent]) -> Result<(), Rejection> {
    let registry = g.devices.read().unwrap_or_else(|e| e.into_inner()).clone();
    let now = now_ms();
    let single = events.len() == 1;
    for (i, e) in events.iter().enumerate() {
        if let Err(refusal) = gate::check(e, &registry, now, g.args.bounds) {
            let status = match refusal {
                Refusal::UnknownDevice(_)
                | Refusal::NoValidKey { .. }
                | Refusal::BadSignature(_) => StatusCode::UNAUTHORIZED,
                Refusal::Duplicate(_) => StatusCode::CONFLICT,
                _ => StatusCode::UNPROCESSABLE_ENTITY,
            };
            let field = refusal.field().unwrap_or("(event)");
            let path = if single {
                field.to_string()
            } else {
                format!("events[{i}].{field}")
            };
            let problem = match &refusal {
                Refusal::BadSignature(err) => format!("{err} (device '{}')", e.device_id()),
                other => other.to_string(),
            };
            return Err(Rejection::new(status, refusal.reason(), problem).field(path));
        }
    }
    Ok(())
}

fn now_s() -> u32 {
    (now_ms() / 1000) as u32
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

async fn produce(
    g: &Gateway,
    events: &[LeafEvent],
    acked: &Mutex<Vec<String>>,
) -> Result<(), Rejection> {
    let started = Instant::now();
    let mut pending = Vec::with_capacity(events.len());
    let mut failure: Option<KafkaError> = None;
    for e in events {
        let value = e.encode_record();
        let record = FutureRecord::to(&g.args.kafka.topic)
            .key(e.key())
            .payload(&value);
        match g.producer.send_result(record) {
            Ok(delivery) => pending.push((e, delivery)),
            Err((err, _)) => {
                failure = Some(err);
                break;
            }
        }
    }
    if let Some(err) = await_deliveries(pending, acked).await {
        failure = Some(err);
    }
    g.metrics
        .produce_latency
        .observe(started.elapsed().as_secs_f64());
    match failure {
        None => Ok(()),
        Some(err) => {
            let accepted_ids =
                std::mem::take(&mut *acked.lock().unwrap_or_else(|e| e.into_inner()));
            let overloaded = matches!(
                err,
                KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull)
            );
            // Kafka's own message stays in the log: it names brokers and internals.
            tracing::warn!(error = %err, "Kafka did not acknowledge a request's events");
            let mut r = Rejection::new(
                StatusCode::SERVICE_UNAVAILABLE,
                if overloaded { "overloaded" } else { "kafka_unavailable" },
                format!(
                    "Kafka did not acknowledge every event; {} of {} were accepted and must not be resent",
                    accepted_ids.len(),
                    events.len()
                ),
            )
            .retry_after(if overloaded { 1 } else { 5 });
            g.metrics.accepted.inc_by(accepted_ids.len() as u64);
            r.accepted_ids = accepted_ids;
            Err(r)
        }
    }
}

/// Waits for every delivery report, recording each acknowledged id as it
/// arrives rather than in send order: one stuck partition must not hide what
/// the others acknowledged if a timeout cuts this short. The last failure.
async fn await_deliveries(
    mut pending: Vec<(&LeafEvent, DeliveryFuture)>,
    acked: &Mutex<Vec<String>>,
) -> Option<KafkaError> {
    let mut failure = None;
    std::future::poll_fn(|cx| {
        pending.retain_mut(|(e, delivery)| match Pin::new(delivery).poll(cx) {
            Poll::Pending => true,
            Poll::Ready(outcome) => {
                match outcome {
                    Ok(Ok(_)) => acked
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .push(e.event_id().to_string()),
                    Ok(Err((err, _))) => failure = Some(err),
                    Err(_) => failure = Some(KafkaError::Canceled),
                }
                false
            }
        });
        if pending.is_empty() {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    })
    .await;
    failure
}

async fn readyz(State(g): State<Arc<Gateway>>) -> Response {
    let producer = g.producer.clone();
    let topic = g.args.kafka.topic.clone();
    let probe = tokio::task::spawn_blocking(move || {
        producer
            .client()
            .fetch_metadata(Some(&topic), Duration::from_secs(2))
            .map(|m| {
                m.topics()
                    .first()
                    .map(|t| (t.error().is_none(), t.partitions().len()))
                    .unwrap_or((false, 0))
            })
    })
    .await;
    match probe {
        Ok(Ok((true, partitions))) if partitions > 0 => {
            Json(json!({"status": "ready", "kafka": "ok", "partitions": partitions})).into_response()
        }
        Ok(Ok(_)) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "not ready", "kafka": format!("topic {} not found", g.args.kafka.topic)})),
        )
            .into_response(),
        Ok(Err(e)) => (StatusCode::SERVICE_UNAVAILABLE, Json(json!({"status": "not ready", "kafka": e.to_string()})))
            .into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, Json(json!({"status": "error", "problem": e.to_string()})))
            .into_response(),
    }
}

async fn metrics(State(g): State<Arc<Gateway>>) -> Response {
    let mut buf = Vec::new();
    let encoder = prometheus::TextEncoder::new();
    if let Err(e) = encoder.encode(&g.metrics.registry.gather(), &mut buf) {
        return (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response();
    }
    (
        [(header::CONTENT_TYPE, encoder.format_type().to_string())],
        buf,
    )
        .into_response()
}
