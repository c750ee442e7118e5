//! `sealer serve`: the trail API and the item ID-card page, for consumers, brands
//! and customs. Reads ClickHouse as the read-only `api` user (limits it cannot
//! raise) and the ledger without a key. Every answer carries the evidence
//! (payload, proof, roots) so the page, and any client, can check it rather than
//! trust the verdict given here.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use alloy::sol_types::SolCall;
use anyhow::Context;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use clap::Args;
use prometheus::{Encoder, HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::ledger::{LedgerArgs, SealRegistry};
use crate::store::epochs::ANCHORED;
use crate::trail::{self, StepRow, Verifier};
use sealer::verify::Verdict;

const INDEX_HTML: &str = include_str!("page/index.html");
const ITEM_HTML: &str = include_str!("page/item.html");

#[derive(Args, Debug, Clone)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "SEALTRAIL_API_LISTEN", default_value = "127.0.0.1:8081")]
    pub listen: SocketAddr,
    /// ClickHouse user the API reads as (readonly=1, with limits it cannot raise).
    #[arg(long, env = "SEALTRAIL_API_CLICKHOUSE_USER", default_value = "api")]
    pub api_clickhouse_user: String,
    /// Password of that user (default: the file `deploy/local/up` writes for it,
    /// $SEALTRAIL_STATE_DIR/clickhouse/users/USER.password, if there is one).
    /// Prefer the file option or the environment: a flag shows in `ps`.
    #[arg(
        long,
        env = "SEALTRAIL_API_CLICKHOUSE_PASSWORD",
        hide_env_values = true
    )]
    pub api_clickhouse_password: Option<String>,
    /// File holding that password, e.g. a mounted secret (one trailing newline
    /// is dropped).
    #[arg(
        long,
        env = "SEALTRAIL_API_CLICKHOUSE_PASSWORD_FILE",
        value_name = "FILE",
        value_parser = crate::store::config::PasswordFile::read,
        conflicts_with = "api_clickhouse_password"
    )]
    pub api_clickhouse_password_file: Option<crate::store::config::PasswordFile>,
    /// Ledger JSON-RPC URL the page's browser reads roots from itself. Without
    /// it the page says it could not check the ledger: the private --ledger-rpc
    /// is never published.
    #[arg(long, env = "SEALTRAIL_PUBLIC_LEDGER_RPC")]
    pub public_ledger_rpc: Option<String>,
    /// Longest a request may take, in milliseconds.
    #[arg(long, env = "SEALTRAIL_API_TIMEOUT_MS", default_value_t = 10_000)]
    pub timeout_ms: u64,
    /// How long a tile read for a proof is kept for the next requests (an
    /// epoch's tiles do not change once written); 0 reads every proof's tiles
    /// from ClickHouse.
    #[arg(long, env = "SEALTRAIL_API_TILE_CACHE_SECONDS", default_value_t = 300)]
    pub tile_cache_seconds: u64,
    #[command(flatten)]
    pub http: web::Limits,
}

pub(crate) struct Api {
    pub(crate) client: clickhouse::Client,
    /// The tiles proofs are read from, shared by every request (None: off).
    pub(crate) tiles: Option<trail::TileCache>,
    pub(crate) verifier: Verifier,
    chain_id: u64,
    contract: String,
    public_rpc: Option<String>,
    pub(crate) timeout: Duration,
    registry: Registry,
    requests: IntCounterVec,
    latency: HistogramVec,
}

pub async fn serve(
    args: ServeArgs,
    client: clickhouse::Client,
    ledger: &LedgerArgs,
) -> anyhow::Result<()> {
    let password = crate::store::config::resolve_password(
        args.api_clickhouse_password.as_deref(),
        args.api_clickhouse_password_file.as_ref(),
        &args.api_clickhouse_user,
    )
    .map_err(anyhow::Error::msg)?;
    let client = client
        .with_user(&args.api_clickhouse_user)
        .with_password(&password);
    let reader = ledger.reader()?;
    let chain_id = reader
        .chain_id()
        .await
        .with_context(|| format!("reading the chain id at {}", ledger.ledger_rpc))?;
    let contract = reader.address().to_string();
    let registry = Registry::new();
    let requests = IntCounterVec::new(
        Opts::new(
            "sealtrail_api_requests_total",
            "Trail API requests by route and status",
        ),
        &["route", "status"],
    )?;
    let latency = HistogramVec::new(
        HistogramOpts::new(
            "sealtrail_api_request_seconds",
            "Trail API request latency by route",
        )
        .buckets(vec![
            0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
        ]),
        &["route"],
    )?;
    registry.register(Box::new(requests.clone()))?;
    registry.register(Box::new(latency.clone()))?;
    let public_rpc = args
        .public_ledger_rpc
        .clone()
        .filter(|url| !url.trim().is_empty());
    if public_rpc.is_none() {
        tracing::warn!(
            "no --public-ledger-rpc: item pages cannot check the ledger themselves and say so"
        );
    }
    let api = Arc::new(Api {
        verifier: Verifier::new(client.clone(), reader),
        // 65,536 tiles at most (up to 64 KiB each, 16 KiB in practice): a few
        // hundred MB at worst, the proofs of many thousands of epochs.
        tiles: (args.tile_cache_seconds > 0)
            .then(|| trail::TileCache::new(65_536, Duration::from_secs(args.tile_cache_seconds))),
        client,
        chain_id,
        contract,
        public_rpc: public_rpc.clone(),
        timeout: Duration::from_millis(args.timeout_ms),
        registry,
        requests,
        latency,
    });
    let app = Router::new()
        .route("/", get(index))
        .route("/items/{id}", get(item_page))
        // The page decodes each step's record itself, with the published schema.
        .route("/scan_event.avsc", get(schema))
        .route("/v1/items/{id}/trail", get(item_trail))
        .route("/v1/events/{id}/proof", get(event_proof))
        // EPCIS 2.0 queries (query.rs).
        .route("/events", get(crate::query::events))
        .route("/events/{id}", get(crate::query::event))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/metrics", get(metrics))
        .fallback(|| async {
            error(
                StatusCode::NOT_FOUND,
                "not_found",
                "no such route; see / and /v1/items/{id}/trail".into(),
            )
        })
        .layer(axum::middleware::map_response_with_state(
            Arc::new(security_headers(public_rpc.as_deref())),
            add_security_headers,
        ))
        .with_state(api);
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("listening on {}", args.listen))?;
    tracing::info!(listen = %args.listen, chain_id, "trail API and item pages serving");
    web::serve(listener, app, args.http, crate::shutdown_signal()).await;
    Ok(())
}

/// Headers every answer carries. The pages' only script and style are their own
/// inline blocks, allowed by hash; the page may talk to this server and to the
/// chain's public RPC, nothing else; no framing, no referrer, no sniffing.
fn security_headers(public_rpc: Option<&str>) -> Vec<(header::HeaderName, HeaderValue)> {
    use base64::Engine;
    let hashes = |tag: &str| -> String {
        [INDEX_HTML, ITEM_HTML]
            .iter()
            .filter_map(|page| {
                let open = format!("<{tag}>");
                let start = page.find(&open)? + open.len();
                let end = start + page[start..].find(&format!("</{tag}>"))?;
                let digest = Sha256::digest(&page.as_bytes()[start..end]);
                Some(format!(
                    "'sha256-{}'",
                    base64::engine::general_purpose::STANDARD.encode(digest)
                ))
            })
            .collect::<Vec<_>>()
            .join(" ")
    };
    let rpc_origin = public_rpc
        .and_then(|rpc| rpc.parse::<axum::http::Uri>().ok())
        .and_then(|u| Some(format!("{}://{}", u.scheme_str()?, u.authority()?)))
        .unwrap_or_default();
    let csp = format!(
        "default-src 'none'; script-src {}; style-src {}; connect-src 'self' {rpc_origin}; \
         img-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
        hashes("script"),
        hashes("style")
    );
    [
        (header::CONTENT_SECURITY_POLICY, csp),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff".to_string()),
        (header::X_FRAME_OPTIONS, "DENY".to_string()),
        (header::REFERRER_POLICY, "no-referrer".to_string()),
    ]
    .into_iter()
    .filter_map(|(name, value)| Some((name, HeaderValue::from_str(&value).ok()?)))
    .collect()
}

async fn add_security_headers(
    State(headers): State<Arc<Vec<(header::HeaderName, HeaderValue)>>>,
    mut response: Response,
) -> Response {
    for (name, value) in headers.iter() {
        response.headers_mut().insert(name.clone(), value.clone());
    }
    response
}

fn error(status: StatusCode, reason: &str, message: String) -> Response {
    let mut r = (
        status,
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        // The gateway's shape: one error shape for both APIs.
        json!({"error": reason, "problem": message}).to_string(),
    )
        .into_response();
    if status == StatusCode::SERVICE_UNAVAILABLE || status == StatusCode::CONFLICT {
        r.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("2"));
    }
    r
}

/// A JSON answer with a strong ETag; 304 when the client already has it.
fn json_response(request: &HeaderMap, body: String, cache: &'static str) -> Response {
    let etag = format!(
        "\"{}\"",
        hex::encode(&Sha256::digest(body.as_bytes())[..16])
    );
    let headers = [
        (header::CONTENT_TYPE, "application/json".to_string()),
        (header::CACHE_CONTROL, cache.to_string()),
        (header::ETAG, etag.clone()),
    ];
    let matches = request
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"));
    if matches {
        (StatusCode::NOT_MODIFIED, headers).into_response()
    } else {
        (StatusCode::OK, headers, body).into_response()
    }
}

fn html(page: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        page,
    )
        .into_response()
}

async fn index() -> Response {
    html(INDEX_HTML)
}

async fn item_page() -> Response {
    html(ITEM_HTML)
}

async fn schema() -> Response {
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        schemas::avro::SCHEMA_JSON,
    )
        .into_response()
}

impl Api {
    pub(crate) fn observe(&self, route: &str, started: Instant, r: &Response) {
        self.requests
            .with_label_values(&[route, r.status().as_str()])
            .inc();
        self.latency
            .with_label_values(&[route])
            .observe(started.elapsed().as_secs_f64());
    }

    async fn step_json(&self, row: &StepRow) -> anyhow::Result<Value> {
        let verdict = self.verifier.check(row).await?;
        self.step_json_of(row, verdict).await
    }

    /// `step_json` for a row already checked.
    async fn step_json_of(&self, row: &StepRow, verdict: Verdict) -> anyhow::Result<Value> {
        let seal = self.verifier.ledger_seal(row.epoch_id).await?;
        // Every field shown is the signed payload's (null if it does not
        // decode), never the store's columns: only the payload is proven.
        let e = verdict.event.as_ref();
        // Its GS1 hash, once: the eventID shown is derived from it too.
        let hash = e.and_then(|e| e.event_hash());
        // The key the verdict used: for an anchored epoch, the one the
        // registry state pinned on the ledger gives.
        let device_public_key = verdict.device_key.map(hex::encode);
        // The device's leaf in the registry state the ledger pins for the
        // epoch: the page folds it to the `keys` it reads from the chain and
        // takes the key from it, not from `device_public_key`.
        let device_keys = match (&seal, e) {
            (Some(s), Some(e)) => self
                .verifier
                .key_proof(s.keys, e.device_id())
                .await?
                .map(|p| {
                    json!({
                        "leaf": hex::encode(&p.leaf),
                        "index": p.index,
                        "size": p.size,
                        "proof": p.proof.iter().map(hex::encode).collect::<Vec<_>>(),
                    })
                }),
            _ => None,
        };
        // The fields of the signed event (null where it does not decode).
        let mut step = e.map(|e| e.summary()).unwrap_or_default();
        for k in [
            "event_type",
            "event_time",
            "event_time_ms",
            "action",
            "biz_step",
            "disposition",
            "read_point",
            "biz_location",
            "country",
            "device_id",
            "temperature_c",
            "epcs",
            "parent_id",
            "child_epcs",
        ] {
            step.entry(k).or_insert(Value::Null);
        }
        let evidence = json!({
            "event_id": row.event_id,
            // GS1's CBV 2.0 event hash of the signed event, and its EPCIS eventID
            // (the hash itself for an event captured without an id).
            "event_hash": hash,
            "epcis_event_id": e.map(|e| e.epcis_event_id(hash.as_deref())),
            "device_public_key": device_public_key,
            "device_keys": device_keys,
            "payload": hex::encode(&row.payload),
            "leaf_hash": hex::encode(row.leaf_hash),
            "leaf_index": row.leaf_index,
            "tree_size": row.epoch_size,
            "proof": row.proof.iter().map(hex::encode).collect::<Vec<_>>(),
            // As a string: epoch ids exceed the integers a JavaScript number holds.
            "epoch_id": row.epoch_id.to_string(),
            "epoch_root": hex::encode(row.epoch_root),
            "anchored": row.epoch_status == ANCHORED,
            "ledger": seal.map(|s| json!({
                "root": hex::encode(s.root),
                "leaf_count": s.leaf_count,
                "block": s.block,
                "confirmations": s.confirmations,
                "tx": row.ledger_tx,
            })),
            "verified": verdict.verified(),
            "failure": verdict.failure.map(|f| f.reason()),
            "checks": verdict.checks,
            // Not a failure: the key was good when the epoch was sealed, not now.
            "note": verdict.key_retired.map(|k| k.note()),
            "key_retired": verdict.key_retired.map(|k| json!({
                "reason": k.reason(),
                "since": schemas::time::format_rfc3339(k.since_ms(), ""),
                "since_ms": k.since_ms(),
            })),
        });
        if let Value::Object(evidence) = evidence {
            step.extend(evidence);
        }
        Ok(Value::Object(step))
    }
}

/// `?limit=N&after=CURSOR`: a page of a trail. Strings, so a bad value is
/// answered in the API's error shape, naming the parameter.
#[derive(serde::Deserialize, Default)]
struct PageQuery {
    limit: Option<String>,
    after: Option<String>,
}

/// Steps per page when the client does not say.
const PAGE_DEFAULT: usize = 100;

fn page_of(q: &PageQuery) -> Result<(usize, Option<trail::Cursor>), String> {
    let limit = match &q.limit {
        None => PAGE_DEFAULT,
        Some(l) => match l.parse::<usize>() {
            Ok(n) if (1..=trail::PAGE_MAX).contains(&n) => n,
            _ => {
                return Err(format!(
                    "limit: '{}' is not a number from 1 to {}",
                    l.chars().take(40).collect::<String>(),
                    trail::PAGE_MAX
                ))
            }
        },
    };
    let after = q
        .after
        .as_deref()
        .map(trail::Cursor::parse)
        .transpose()
        .map_err(|why| format!("after: {why}"))?;
    Ok((limit, after))
}

async fn item_trail(
    State(api): State<Arc<Api>>,
    Path(id): Path<String>,
    query: Result<Query<PageQuery>, axum::extract::rejection::QueryRejection>,
    headers: HeaderMap,
) -> Response {
    let started = Instant::now();
    let page = match &query {
        Ok(Query(q)) => page_of(q),
        Err(e) => Err(format!("the query string: {}", e.body_text())),
    };
    let r = match page {
        Err(why) => error(StatusCode::BAD_REQUEST, "bad_request", why),
        Ok((limit, after)) => {
            match tokio::time::timeout(api.timeout, trail_body(&api, &id, limit, after.as_ref()))
                .await
            {
                Ok(Ok(Some(body))) => json_response(&headers, body, "no-cache"),
                Ok(Ok(None)) => error(
                    StatusCode::NOT_FOUND,
                    "unknown_item",
                    format!("no sealed events for item {id}"),
                ),
                Ok(Err(e)) => unavailable(e),
                Err(_) => timed_out(),
            }
        }
    };
    api.observe("trail", started, &r);
    r
}

/// What failed inside goes to the log, not to the client: addresses, queries
/// and library messages tell an attacker about the inside.
fn unavailable(e: anyhow::Error) -> Response {
    tracing::warn!(error = format!("{e:#}"), "answering 503");
    error(
        StatusCode::SERVICE_UNAVAILABLE,
        "unavailable",
        "the store or the ledger could not be read; try again".into(),
    )
}

fn timed_out() -> Response {
    error(
        StatusCode::SERVICE_UNAVAILABLE,
        "timeout",
        "the store or the ledger did not answer in time".into(),
    )
}

/// Trails whose containers are walked at once; the others wait.
static CONTAINER_WALKS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(4);

async fn trail_body(
    api: &Api,
    id: &str,
    limit: usize,
    after: Option<&trail::Cursor>,
) -> anyhow::Result<Option<String>> {
    let (rows, next) = trail::item_page(&api.client, api.tiles.as_ref(), id, after, limit).await?;
    // The containers' steps while the item was inside, with the first page:
    // a few walks at once, each bounded (packing.rs).
    let via = match after {
        // Most items were never packed: one look at the index, no walk.
        None if !crate::store::trail::packed(&api.client, id).await? => Vec::new(),
        None => {
            // The rest wait their turn, within the request's time limit.
            let _walking = CONTAINER_WALKS.acquire().await?;
            crate::packing::container_steps(&api.client, api.tiles.as_ref(), &api.verifier, id)
                .await?
        }
        Some(_) => Vec::new(),
    };
    if rows.is_empty() && via.is_empty() && after.is_none() {
        return Ok(None);
    }
    let mut steps = Vec::with_capacity(rows.len());
    for row in &rows {
        let mut step = api.step_json(row).await?;
        step["in_container"] = Value::Null;
        steps.push(step);
    }
    let mut container_steps = Vec::with_capacity(via.len());
    for c in via {
        let mut step = api.step_json_of(&c.row, c.verdict).await?;
        step["in_container"] = json!(c.container);
        step["packing"] = json!(c.packing);
        container_steps.push(step);
    }
    let verified = steps
        .iter()
        .chain(&container_steps)
        .filter(|s| s["verified"] == true)
        .count();
    Ok(Some(
        json!({
            "item_id": id,
            "steps": steps,
            // The AggregationEvents that packed and unpacked it, and the steps
            // of each container (any depth) while it was inside: first page only.
            "container_steps": container_steps,
            "summary": {
                "steps": rows.len() + container_steps.len(),
                "container_steps": container_steps.len(),
                "verified": verified,
            },
            // The cursor of the next page (`?after=`), null on the last.
            "next": next.map(|c| c.to_string()),
            "ledger": {
                "chain_id": api.chain_id,
                "contract": api.contract,
                "rpc": api.public_rpc,
                "root_of_selector": format!("0x{}", hex::encode(SealRegistry::rootOfCall::SELECTOR)),
                "seal_of_selector": format!("0x{}", hex::encode(SealRegistry::sealOfCall::SELECTOR)),
            },
        })
        .to_string(),
    ))
}

async fn event_proof(
    State(api): State<Arc<Api>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let started = Instant::now();
    let work = async {
        let Some(row) = trail::event_row(&api.client, api.tiles.as_ref(), &id).await? else {
            return Ok(None);
        };
        let bundle = api.verifier.bundle(&row).await?;
        // A proof the store could not give whole (a tile missing, or not yet
        // on this replica) must not be cached: the store may be repaired.
        let whole = sealer::proof::fold(
            &sealer::proof::leaf_hash(&row.payload),
            u64::from(row.leaf_index),
            u64::from(row.epoch_size),
            &row.proof,
        ) == Some(row.epoch_root);
        anyhow::Ok(Some(bundle.map(|b| (b, whole))))
    };
    let r = match tokio::time::timeout(api.timeout, work).await {
        // Anchored and whole: the bundle can never change.
        Ok(Ok(Some(Some((bundle, whole))))) => json_response(
            &headers,
            serde_json::to_string(&bundle).expect("bundle serializes"),
            if whole {
                "public, max-age=31536000, immutable"
            } else {
                "no-store"
            },
        ),
        Ok(Ok(Some(None))) => error(
            StatusCode::CONFLICT,
            "not_anchored",
            format!("event {id} is sealed but its epoch's root is not on the ledger yet"),
        ),
        Ok(Ok(None)) => error(
            StatusCode::NOT_FOUND,
            "unknown_event",
            format!("no sealed event with id {id}"),
        ),
        Ok(Err(e)) => unavailable(e),
        Err(_) => timed_out(),
    };
    api.observe("proof", started, &r);
    r
}

async fn metrics(State(api): State<Arc<Api>>) -> Response {
    let mut out = Vec::new();
    prometheus::TextEncoder::new()
        .encode(&api.registry.gather(), &mut out)
        .expect("text encoding");
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out).into_response()
}
