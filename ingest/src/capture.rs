//! EPCIS 2.0 capture on the gateway, as the standard's REST binding has it:
//! `POST /capture` takes an EPCISDocument and answers 202 with the capture job's
//! `Location`, `GET /capture/{id}` tells the job's state (there is no list of
//! jobs: with no client identities it would show everyone every job),
//! `POST /events` captures one event (201), `OPTIONS` states the limits. Errors
//! are RFC 7807 problems with the binding's `epcisException:` types.
//!
//! The events go through the same gate as `/v1/events`: each must map onto a
//! scan event (`schemas::epcis`) and carry its device's detached signature over
//! that event's canonical bytes: in `st:signatures`, beside the document's
//! `eventList` and in its order, or for `POST /events` in the `Sealtrail-Signature`
//! header. Outside the event, so signing never changes its hash.
//!
//! Every check runs before anything is produced: with the default
//! `GS1-Capture-Error-Behaviour: rollback` one bad event refuses the request
//! and nothing of it reaches Kafka; with `proceed`, the good events are
//! captured and the job lists the others. Jobs are finished when the answer is
//! sent (Kafka acknowledged every event), kept in memory, the last `JOBS_KEPT`,
//! each with at most `ERRORS_KEPT` errors of bounded length.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use schemas::devices::{KeyAt, KeyHistory};
use schemas::epcis_event::{self, EpcisEvent};
use schemas::leaf::LeafEvent;
use schemas::{epcis, ScanEvent};
use serde_json::{json, Map, Value};

use crate::gateway::{admit, screen_each, Gateway, Rejection};

/// Capture jobs kept for `GET /capture/{id}`; the oldest go first.
pub const JOBS_KEPT: usize = 1_000;

/// Errors a job keeps (the rest are counted in one more), and the longest
/// detail: a job's memory stays small whatever a document holds.
const ERRORS_KEPT: usize = 50;
const DETAIL_MAX: usize = 300;

/// The binding's version this gateway speaks, and the CBV's.
const EPCIS_VERSION: &str = "2.0.1";
const CBV_VERSION: &str = "2.0.1";

/// Where the detached signatures travel in a document, and for one event.
pub use epcis::SIGNATURES;
pub const SIGNATURE_HEADER: &str = "sealtrail-signature";

pub fn routes() -> Router<Arc<Gateway>> {
    Router::new()
        // No `GET /capture`: with no client identities, a list of every job
        // would show each partner the others' events and errors.
        .route(
            "/capture",
            axum::routing::post(capture).options(capture_options),
        )
        .route("/capture/{id}", get(job).options(job_options))
        .route(
            "/events",
            axum::routing::post(capture_one).options(events_options),
        )
}

/// An RFC 7807 problem with the binding's exception type.
#[derive(Debug, Clone)]
pub struct Problem {
    pub status: StatusCode,
    pub kind: &'static str,
    pub title: &'static str,
    pub detail: String,
    /// The field at fault, as a path into the request body.
    pub instance: Option<String>,
    pub retry_after: Option<u32>,
}

impl Problem {
    fn new(status: StatusCode, kind: &'static str, title: &'static str, detail: String) -> Self {
        Problem {
            status,
            kind,
            title,
            detail,
            instance: None,
            retry_after: None,
        }
    }

    fn validation(detail: impl Into<String>, field: impl Into<String>) -> Self {
        Problem {
            instance: Some(field.into()),
            ..Problem::new(
                StatusCode::BAD_REQUEST,
                "epcisException:ValidationException",
                "Invalid EPCIS document or event",
                detail.into(),
            )
        }
    }

    /// The problem as RFC 7807 has it: `instance` a URI reference (a JSON
    /// Pointer into the request body, as a fragment), and `field` the same
    /// place as a path, for people.
    pub fn body(&self) -> Value {
        let mut b = json!({
            "type": self.kind,
            "title": self.title,
            "status": self.status.as_u16(),
            "detail": cut(&self.detail, DETAIL_MAX),
        });
        if let Some(f) = &self.instance {
            b["instance"] = json!(pointer(f));
            b["field"] = json!(cut(f, DETAIL_MAX));
        }
        b
    }

    /// The gateway's own refusals in the binding's terms; `events` name the
    /// ones Kafka took by their eventIDs.
    fn of(r: Rejection, path: impl Fn(&str) -> String, events: &[LeafEvent]) -> Self {
        let (status, kind, title) = match r.status {
            StatusCode::UNAUTHORIZED => (
                StatusCode::UNAUTHORIZED,
                "epcisException:SecurityException",
                "Unauthorised request",
            ),
            StatusCode::CONFLICT => (
                StatusCode::CONFLICT,
                "epcisException:ResourceAlreadyExistsException",
                "Event already captured",
            ),
            StatusCode::PAYLOAD_TOO_LARGE => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "epcisException:CaptureLimitExceededException",
                "Capture payload too large",
            ),
            StatusCode::TOO_MANY_REQUESTS => (
                StatusCode::TOO_MANY_REQUESTS,
                "epcisException:SecurityException",
                "Too many events from one device",
            ),
            StatusCode::SERVICE_UNAVAILABLE => (
                StatusCode::SERVICE_UNAVAILABLE,
                "epcisException:ImplementationException",
                "Events could not be stored now",
            ),
            _ => (
                StatusCode::BAD_REQUEST,
                "epcisException:ValidationException",
                "Invalid EPCIS document or event",
            ),
        };
        let mut detail = r.problem;
        if !r.accepted_ids.is_empty() {
            detail = format!(
                "{detail}; captured: {}",
                events
                    .iter()
                    .filter(|e| r.accepted_ids.iter().any(|id| id == e.event_id()))
                    .map(|e| e.epcis_event_id(e.event_hash().as_deref()))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
        Problem {
            instance: r.field.as_deref().map(&path),
            retry_after: r.retry_after,
            ..Problem::new(status, kind, title, detail)
        }
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let mut r = (
            self.status,
            [(header::CONTENT_TYPE, "application/problem+json")],
            self.body().to_string(),
        )
            .into_response();
        versions(r.headers_mut(), false);
        if let Some(s) = self.retry_after {
            r.headers_mut().insert(header::RETRY_AFTER, s.into());
        }
        if self.status == StatusCode::UNAUTHORIZED {
            // HTTP requires a challenge with a 401: here, a device signature
            // over each event (the README's "Signing").
            r.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Sealtrail-Ed25519 realm=\"devices\""),
            );
        }
        if self.status == StatusCode::PAYLOAD_TOO_LARGE {
            // The limits, so the client can split the document.
            if let Some(g) = LIMITS.get() {
                limits(r.headers_mut(), g.0, g.1);
            }
        }
        r
    }
}

fn cut(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        format!("{}…", s.chars().take(n).collect::<String>())
    }
}

/// `epcisBody.eventList[3].st:country` as the fragment
/// `#/epcisBody/eventList/3/st:country`, percent-encoded where a URI needs it.
fn pointer(path: &str) -> String {
    let mut out = String::from("#");
    for part in path.split('.') {
        let (name, mut tail) = part.split_at(part.find('[').unwrap_or(part.len()));
        out.push('/');
        out.push_str(&segment(name));
        while let Some(inner) = tail.strip_prefix('[') {
            let close = inner.find(']').unwrap_or(inner.len());
            out.push('/');
            out.push_str(&segment(&inner[..close]));
            tail = inner.get(close + 1..).unwrap_or("");
        }
    }
    cut(&out, DETAIL_MAX)
}

fn segment(s: &str) -> String {
    web::percent_encode(&s.replace('~', "~0").replace('/', "~1"))
}

/// The capture limits, for the 413's headers (set when the gateway starts).
pub static LIMITS: std::sync::OnceLock<(usize, usize)> = std::sync::OnceLock::new();

fn versions(h: &mut HeaderMap, cbv: bool) {
    h.insert("gs1-epcis-version", HeaderValue::from_static(EPCIS_VERSION));
    if cbv {
        h.insert("gs1-cbv-version", HeaderValue::from_static(CBV_VERSION));
    }
    h.insert("gs1-extensions", HeaderValue::from_static(""));
}

fn limits(h: &mut HeaderMap, events: usize, bytes: usize) {
    h.insert("gs1-epcis-capture-limit", events.into());
    h.insert("gs1-epcis-capture-file-size-limit", bytes.into());
}

/// What to do with the good events of a document that has bad ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Behaviour {
    Rollback,
    Proceed,
}

impl Behaviour {
    fn as_str(self) -> &'static str {
        match self {
            Behaviour::Rollback => "rollback",
            Behaviour::Proceed => "proceed",
        }
    }
}

/// One capture job, finished when it is recorded.
#[derive(Debug, Clone)]
struct Job {
    id: String,
    created_at_ms: i64,
    finished_at_ms: i64,
    behaviour: Behaviour,
    errors: Vec<Value>,
}

impl Job {
    fn json(&self) -> Value {
        json!({
            "captureID": self.id,
            "createdAt": schemas::time::format_rfc3339(self.created_at_ms, "Z"),
            "finishedAt": schemas::time::format_rfc3339(self.finished_at_ms, "Z"),
            "running": false,
            "success": self.errors.is_empty(),
            "captureErrorBehaviour": self.behaviour.as_str(),
            "errors": self.errors,
        })
    }
}

/// The jobs this gateway took, newest last, at most `capacity`.
pub struct Jobs {
    capacity: usize,
    inner: Mutex<(HashMap<String, Job>, VecDeque<String>)>,
}

impl Jobs {
    pub fn new(capacity: usize) -> Self {
        Jobs {
            capacity: capacity.max(1),
            inner: Mutex::new((HashMap::new(), VecDeque::new())),
        }
    }

    fn record(&self, job: Job) {
        let mut guard = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let (by_id, order) = &mut *guard;
        while order.len() >= self.capacity {
            if let Some(old) = order.pop_front() {
                by_id.remove(&old);
            }
        }
        order.push_back(job.id.clone());
        by_id.insert(job.id.clone(), job);
    }

    fn get(&self, id: &str) -> Option<Job> {
        let guard = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        guard.0.get(id).cloned()
    }
}

/// A capture id no one can guess: a job's errors name the events it held.
fn new_job_id() -> String {
    let mut b = [0u8; 16];
    getrandom::fill(&mut b).expect("the system's random source");
    format!("id{}", hex::encode(b))
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// The request's media type must be JSON (plain or JSON-LD).
fn json_body(headers: &HeaderMap) -> Result<(), Problem> {
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let essence = ct
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    if essence == "application/json" || essence == "application/ld+json" {
        Ok(())
    } else {
        Err(Problem::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "epcisException:UnsupportedMediaTypeException",
            "Unsupported Media Type",
            format!(
                "Content-Type '{}' is not accepted; send application/ld+json or application/json",
                ct.chars().take(80).collect::<String>()
            ),
        ))
    }
}

/// A client that asks for another EPCIS version than this one's.
fn version_asked(headers: &HeaderMap) -> Result<(), Problem> {
    for name in ["gs1-epcis-version", "gs1-cbv-version"] {
        if let Some(v) = headers.get(name) {
            let v = v.to_str().unwrap_or("");
            if !(v == "2" || v == "2.0" || v.starts_with("2.0.")) {
                return Err(Problem::new(
                    StatusCode::NOT_ACCEPTABLE,
                    "epcisException:NotAcceptableException",
                    "Conflicting request and response headers",
                    format!(
                        "{name} '{}' is not served here: this server speaks 2.0 ({EPCIS_VERSION})",
                        v.chars().take(40).collect::<String>()
                    ),
                ));
            }
        }
    }
    Ok(())
}

fn behaviour(headers: &HeaderMap) -> Result<Behaviour, Problem> {
    match headers
        .get("gs1-capture-error-behaviour")
        .map(|v| v.to_str().unwrap_or(""))
    {
        None | Some("rollback") => Ok(Behaviour::Rollback),
        Some("proceed") => Ok(Behaviour::Proceed),
        Some(other) => Err(Problem::validation(
            format!(
                "GS1-Capture-Error-Behaviour '{}' is neither rollback nor proceed",
                other.chars().take(40).collect::<String>()
            ),
            "GS1-Capture-Error-Behaviour",
        )),
    }
}

fn body_of(g: &Gateway, body: Result<Bytes, BytesRejection>) -> Result<Value, Problem> {
    let body = body.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            Problem::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "epcisException:CaptureLimitExceededException",
                "Capture payload too large",
                format!(
                    "the document is larger than {} bytes; split it",
                    g.args.max_body_bytes
                ),
            )
        } else {
            Problem::validation(e.body_text(), "(body)")
        }
    })?;
    let value = serde_json::from_slice(&body)
        .map_err(|e| Problem::validation(format!("the body is not JSON: {e}"), "(body)"))?;
    // Before the parsed numbers are all there is: a literal no double holds
    // would be kept, and given back, as another number.
    if let Some(n) = schemas::epcis_event::inexact_number(&body) {
        return Err(Problem::validation(
            format!("the number {n} has no exact double: send it as a string"),
            "(body)",
        ));
    }
    Ok(value)
}

/// A signature as 128 hex digits.
fn signature(text: Option<&str>, field: &str) -> Result<Vec<u8>, Problem> {
    let text = text.ok_or_else(|| {
        Problem::validation(
            "each event needs its device's Ed25519 signature (128 hex digits)",
            field,
        )
    })?;
    hex::decode(text)
        .ok()
        .filter(|s| s.len() == 64)
        .ok_or_else(|| {
            Problem::validation(
                "must be 128 hex digits (an Ed25519 signature over the event's canonical bytes)",
                field,
            )
        })
}

/// A captured event in the forms it can be sealed in: as a scan event, if it
/// is an ObjectEvent a scan event holds exactly (what a scanner's own
/// documents are), and kept whole (every event). Which one is sealed is the
/// one its signature is over (`choose`).
#[derive(Debug, Clone)]
pub(crate) struct Candidate {
    scan: Option<ScanEvent>,
    kept: Result<EpcisEvent, Problem>,
    /// Its GS1 event hash ID, when it has one.
    hash: Option<String>,
}

impl Candidate {
    /// One event of a document (or alone), at `path`, with its signature.
    fn of(
        v: &Value,
        declared: &Map<String, Value>,
        scan_context: bool,
        path: &str,
        signature: Vec<u8>,
    ) -> Result<Candidate, Problem> {
        let scan = scan_context
            .then(|| epcis::parse_event_hashed(v, path).ok())
            .flatten()
            .map(|(mut e, hash)| {
                e.signature = signature.clone();
                (e, hash)
            });
        let mut kept_hash = None;
        let kept = epcis_event::keep(v, declared, path)
            .and_then(|(text, facts)| {
                kept_hash = schemas::event_hash::json_event_hash(&text);
                Ok(EpcisEvent {
                    event_id: epcis_event::id_of(&facts, kept_hash.as_deref())
                        .map_err(|f| rename(f, path))?,
                    event: text,
                    device_id: facts.device_id,
                    signature: signature.clone(),
                })
            })
            .map_err(|f| Problem::validation(f.problem, f.field));
        let hash = match (&scan, &kept) {
            (Some((_, h)), _) => Some(h.clone()),
            (None, Ok(_)) => kept_hash,
            (None, Err(_)) => None,
        };
        match (scan, kept) {
            (None, Err(p)) => Err(p),
            (scan, kept) => Ok(Candidate {
                scan: scan.map(|(e, _)| e),
                kept,
                hash,
            }),
        }
    }

    /// The id it is sealed under in the form it is likely sealed in (both
    /// forms give the same id to an event with an eventID).
    fn event_id(&self) -> &str {
        match (&self.kept, &self.scan) {
            (Ok(k), _) => &k.event_id,
            (Err(_), Some(s)) => &s.event_id,
            (Err(_), None) => "",
        }
    }
}

/// A field error of the kept form, named under the event's path.
fn rename(f: schemas::FieldError, path: &str) -> schemas::FieldError {
    if path.is_empty() {
        f
    } else {
        schemas::FieldError::new(format!("{path}.{}", f.field), f.problem)
    }
}

/// The form to seal: the scan event if its signature is over the scan event's
/// bytes (by the device's key now), else the event kept whole, whose
/// signature is over its canonical JSON: a partner signs that, in any
/// language; a scanner's own documents carry the other.
pub(crate) fn choose(keys: &KeyHistory, c: Candidate) -> Result<LeafEvent, Problem> {
    let signed_as_scan =
        c.scan
            .as_ref()
            .is_some_and(|scan| match keys.key_at(&scan.device_id, now_ms()) {
                KeyAt::Valid(key) => schemas::signature::verify(scan, &key).is_ok(),
                _ => false,
            });
    match (c.kept, c.scan) {
        (_, Some(s)) if signed_as_scan => Ok(LeafEvent::Scan(s)),
        (Ok(k), _) => Ok(LeafEvent::from(k)),
        // Not kept whole (its JSON breaks a rule the scan form does not
        // have): the scan form, whose signature the gate then refuses.
        (Err(_), Some(s)) => Ok(LeafEvent::Scan(s)),
        (Err(p), None) => Err(p),
    }
}

/// A document's events that parse (with their place in it), and the problems
/// of those that do not.
type Parsed = (Vec<(usize, Candidate)>, Vec<Problem>);

/// The document's events, each with its signature, or the first problem; with
/// `proceed`, the events that parse and the problems of the others.
fn document_events(
    doc: &Value,
    max_events: usize,
    behaviour: Behaviour,
) -> Result<Parsed, Problem> {
    let obj = doc
        .as_object()
        .ok_or_else(|| Problem::validation("the body must be an EPCISDocument object", "(body)"))?;
    let declared = epcis_event::namespaces(obj.get("@context"))
        .map_err(|f| Problem::validation(f.problem, f.field))?;
    // A scan event is read in our context only: other prefixes would give
    // its hash other meanings.
    let sensors = doc.to_string().contains("\"sensorElementList\"");
    let scan_context = epcis::check_context(obj.get("@context"), sensors).is_ok();
    let kind = obj.get("type").and_then(Value::as_str).unwrap_or("");
    let list = match kind {
        "EPCISDocument" => obj
            .get("epcisBody")
            .and_then(|b| b.get("eventList"))
            .map(|l| (l, "epcisBody.eventList")),
        "EPCISQueryDocument" => obj
            .get("epcisBody")
            .and_then(|b| b.get("queryResults"))
            .and_then(|q| q.get("resultsBody"))
            .and_then(|r| r.get("eventList"))
            .map(|l| (l, "epcisBody.queryResults.resultsBody.eventList")),
        _ => {
            return Err(Problem::validation(
                format!(
                    "type '{}' is not EPCISDocument or EPCISQueryDocument",
                    kind.chars().take(40).collect::<String>()
                ),
                "type",
            ))
        }
    };
    let Some((list, at)) = list else {
        return Err(Problem::validation(
            "missing required field",
            "epcisBody.eventList",
        ));
    };
    let events = list
        .as_array()
        .ok_or_else(|| Problem::validation("must be an array of events", at))?;
    if events.is_empty() {
        return Err(Problem::validation("the document holds no events", at));
    }
    if events.len() > max_events {
        return Err(Problem::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "epcisException:CaptureLimitExceededException",
            "Capture payload too large",
            format!(
                "{} events in one document; at most {max_events} (GS1-EPCIS-Capture-Limit)",
                events.len()
            ),
        ));
    }
    let signatures = obj
        .get(SIGNATURES)
        .ok_or_else(|| {
            Problem::validation(
                format!("missing: one device signature per event, in {at}'s order"),
                SIGNATURES,
            )
        })?
        .as_array()
        .filter(|s| s.len() == events.len())
        .ok_or_else(|| {
            Problem::validation(
                format!(
                    "must be an array of {} signatures, one per event",
                    events.len()
                ),
                SIGNATURES,
            )
        })?;
    let mut good = Vec::with_capacity(events.len());
    let mut bad = Vec::new();
    for (i, e) in events.iter().enumerate() {
        let parsed = signature(signatures[i].as_str(), &format!("{SIGNATURES}[{i}]"))
            .and_then(|sig| Candidate::of(e, &declared, scan_context, &format!("{at}[{i}]"), sig));
        match (parsed, behaviour) {
            (Ok(c), _) => good.push((i, c)),
            (Err(p), Behaviour::Rollback) => return Err(p),
            (Err(p), Behaviour::Proceed) => bad.push(p),
        }
    }
    // One event once: by its id, and by its GS1 hash (the same event sent
    // under two ids is still one event).
    let mut first_id: HashMap<String, usize> = HashMap::new();
    let mut first_hash: HashMap<String, usize> = HashMap::new();
    let mut dupes = Vec::new();
    for (n, (i, c)) in good.iter().enumerate() {
        // Only accepted events count: a refused one blocks nothing after it.
        let same = first_id
            .get(c.event_id())
            .map(|j| (*j, format!("event id {}", c.event_id())))
            .or_else(|| {
                c.hash
                    .as_ref()
                    .and_then(|h| first_hash.get(h).map(|j| (*j, format!("hash {h}"))))
            });
        if same.is_none() {
            first_id.insert(c.event_id().to_string(), *i);
            if let Some(h) = &c.hash {
                first_hash.insert(h.clone(), *i);
            }
        }
        if let Some((j, what)) = same {
            let p = Problem::validation(
                format!("the same event as {at}[{j}] ({what})"),
                format!("{at}[{i}]"),
            );
            if behaviour == Behaviour::Rollback {
                return Err(p);
            }
            bad.push(p);
            dupes.push(n);
        }
    }
    for n in dupes.into_iter().rev() {
        good.remove(n);
    }
    Ok((good, bad))
}

/// Each candidate in the form its signature is for; with `proceed`, the
/// problems of those that have none.
async fn chosen(
    g: &Gateway,
    events: Vec<(usize, Candidate)>,
    behaviour: Behaviour,
    errors: &mut Vec<Problem>,
) -> Result<Vec<(usize, LeafEvent)>, Problem> {
    g.reload_for_devices(events.iter().filter_map(|(_, c)| {
        c.scan.as_ref().map(|s| s.device_id.as_str()).or(c
            .kept
            .as_ref()
            .ok()
            .map(|k| k.device_id.as_str()))
    }))
    .await;
    let keys = g.registry();
    let mut out = Vec::with_capacity(events.len());
    for (i, c) in events {
        match (choose(&keys, c), behaviour) {
            (Ok(e), _) => out.push((i, e)),
            (Err(p), Behaviour::Rollback) => return Err(p),
            (Err(p), Behaviour::Proceed) => errors.push(p),
        }
    }
    Ok(out)
}

async fn capture(
    State(g): State<Arc<Gateway>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let created = now_ms();
    let outcome = async {
        json_body(&headers)?;
        version_asked(&headers)?;
        let behaviour = behaviour(&headers)?;
        let doc = body_of(&g, body)?;
        let (events, mut errors) = document_events(&doc, g.args.max_batch, behaviour)?;
        let events = chosen(&g, events, behaviour, &mut errors).await?;
        let path = |i: usize| move |field: &str| format!("eventList[{i}].{field}");
        let captured = match behaviour {
            Behaviour::Rollback => {
                let only: Vec<LeafEvent> = events.into_iter().map(|(_, e)| e).collect();
                produce(&g, &only)
                    .await
                    .map_err(|r| Problem::of(r, |f| f.replace("events[", "eventList["), &only))?
            }
            Behaviour::Proceed => {
                // Each event checked alone, then the good ones produced
                // together under one deadline.
                let only: Vec<LeafEvent> = events.iter().map(|(_, e)| e.clone()).collect();
                let verdicts = screen_each(&g, &only).await;
                let mut good = Vec::with_capacity(only.len());
                for ((i, e), verdict) in events.into_iter().zip(verdicts) {
                    match verdict {
                        None => good.push(e),
                        Some(r) => errors.push(Problem::of(r, path(i), std::slice::from_ref(&e))),
                    }
                }
                if good.is_empty() {
                    0
                } else {
                    produce(&g, &good).await.map_err(|r| {
                        Problem::of(r, |f| f.replace("events[", "eventList["), &good)
                    })?
                }
            }
        };
        Ok::<_, Problem>((behaviour, captured, errors))
    }
    .await;
    match outcome {
        Err(p) => {
            g.metrics
                .rejected
                .with_label_values(&["epcis_capture"])
                .inc();
            p.into_response()
        }
        Ok((behaviour, captured, errors)) => {
            let mut kept: Vec<Value> = errors.iter().take(ERRORS_KEPT).map(Problem::body).collect();
            if errors.len() > ERRORS_KEPT {
                kept.push(
                    Problem::validation(
                        format!("and {} more events refused", errors.len() - ERRORS_KEPT),
                        "epcisBody.eventList",
                    )
                    .body(),
                );
            }
            let job = Job {
                id: new_job_id(),
                created_at_ms: created,
                finished_at_ms: now_ms(),
                behaviour,
                errors: kept,
            };
            tracing::info!(job = %job.id, captured, refused = errors.len(), "EPCIS capture");
            let location = format!("/capture/{}", job.id);
            g.jobs.record(job);
            let mut r = StatusCode::ACCEPTED.into_response();
            versions(r.headers_mut(), true);
            r.headers_mut().insert(
                header::LOCATION,
                HeaderValue::from_str(&location).expect("hex id"),
            );
            r
        }
    }
}

/// The gate and Kafka for events already parsed, within the request timeout.
async fn produce(g: &Gateway, events: &[LeafEvent]) -> Result<usize, Rejection> {
    let acked = Mutex::new(Vec::new());
    let limit = Duration::from_millis(g.args.request_timeout_ms);
    let r = match tokio::time::timeout(limit, admit(g, events, &acked)).await {
        Ok(r) => r,
        Err(_) => {
            let acked = acked.into_inner().unwrap_or_else(|e| e.into_inner());
            g.metrics.accepted.inc_by(acked.len() as u64);
            Err(crate::gateway::timed_out(g.args.request_timeout_ms, acked))
        }
    };
    if let Ok(n) = r {
        g.metrics.accepted.inc_by(n as u64);
    }
    r
}

async fn capture_one(
    State(g): State<Arc<Gateway>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let outcome = async {
        json_body(&headers)?;
        version_asked(&headers)?;
        let mut value = body_of(&g, body)?;
        let declared = epcis_event::namespaces(value.get("@context"))
            .map_err(|f| Problem::validation(f.problem, f.field))?;
        let scan_context = epcis::check_context(
            value.get("@context"),
            value.get("sensorElementList").is_some(),
        )
        .is_ok();
        // The context read, the event is what is left.
        if let Some(o) = value.as_object_mut() {
            o.remove("@context");
        }
        let sig = signature(
            headers.get(SIGNATURE_HEADER).and_then(|v| v.to_str().ok()),
            "Sealtrail-Signature",
        )?;
        let c = Candidate::of(&value, &declared, scan_context, "", sig)?;
        let mut no_errors = Vec::new();
        let event = chosen(&g, vec![(0, c)], Behaviour::Rollback, &mut no_errors)
            .await?
            .pop()
            .map(|(_, e)| e)
            .ok_or_else(|| Problem::validation("no event", "(body)"))?;
        let one = std::slice::from_ref(&event);
        produce(&g, one)
            .await
            .map_err(|r| Problem::of(r, |f| f.to_string(), one))?;
        Ok::<_, Problem>(event)
    }
    .await;
    match outcome {
        Err(p) => {
            g.metrics.rejected.with_label_values(&["epcis_event"]).inc();
            p.into_response()
        }
        Ok(event) => {
            let id = event.epcis_event_id(event.event_hash().as_deref());
            let (mut stored, namespaces) = event.to_epcis(&id);
            let mut context = epcis::context();
            if let (Some(ns), Some(prefixes)) = (
                namespaces.as_ref().and_then(Value::as_object),
                context.get_mut(1).and_then(Value::as_object_mut),
            ) {
                prefixes.extend(ns.iter().map(|(k, v)| (k.clone(), v.clone())));
            }
            stored["@context"] = context;
            let mut r = (
                StatusCode::CREATED,
                [(header::CONTENT_TYPE, "application/ld+json")],
                stored.to_string(),
            )
                .into_response();
            versions(r.headers_mut(), true);
            r.headers_mut().insert(
                header::LOCATION,
                HeaderValue::from_str(&format!("/events/{}", web::percent_encode(&id)))
                    .expect("an encoded path is a header value"),
            );
            r
        }
    }
}

async fn job(State(g): State<Arc<Gateway>>, Path(id): Path<String>) -> Response {
    match g.jobs.get(&id) {
        Some(job) => {
            let mut r = (
                [(header::CONTENT_TYPE, "application/json")],
                job.json().to_string(),
            )
                .into_response();
            versions(r.headers_mut(), false);
            r
        }
        None => Problem::new(
            StatusCode::NOT_FOUND,
            "epcisException:NoSuchResourceException",
            "Resource not found",
            format!(
                "no capture job '{}' on this gateway (jobs are kept in memory, the last {JOBS_KEPT})",
                id.chars().take(80).collect::<String>()
            ),
        )
        .into_response(),
    }
}

fn discovery(allow: &'static str, g: Option<&Gateway>) -> Response {
    let mut r = StatusCode::NO_CONTENT.into_response();
    let h = r.headers_mut();
    h.insert(header::ALLOW, HeaderValue::from_static(allow));
    versions(h, true);
    for (name, value) in [
        ("gs1-epcis-min", "2.0.0"),
        ("gs1-epcis-max", EPCIS_VERSION),
        ("gs1-cbv-min", "2.0.0"),
        ("gs1-cbv-max", CBV_VERSION),
        ("gs1-epc-format", "Never_Translates"),
        (
            "gs1-vendor-version",
            concat!("sealtrail-", env!("CARGO_PKG_VERSION")),
        ),
    ] {
        h.insert(name, HeaderValue::from_static(value));
    }
    if let Some(g) = g {
        limits(h, g.args.max_batch, g.args.max_body_bytes);
        h.insert(
            "gs1-capture-error-behaviour",
            HeaderValue::from_static("all"),
        );
    }
    r
}

async fn capture_options(State(g): State<Arc<Gateway>>) -> Response {
    discovery("OPTIONS, POST", Some(&g))
}

async fn job_options(State(g): State<Arc<Gateway>>, Path(id): Path<String>) -> Response {
    if g.jobs.get(&id).is_none() {
        return StatusCode::NOT_FOUND.into_response();
    }
    discovery("OPTIONS, GET", None)
}

async fn events_options(State(g): State<Arc<Gateway>>) -> Response {
    discovery("OPTIONS, POST", Some(&g))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jobs_keep_the_newest() {
        let jobs = Jobs::new(3);
        for i in 0..5 {
            jobs.record(Job {
                id: format!("j{i}"),
                created_at_ms: i,
                finished_at_ms: i,
                behaviour: Behaviour::Rollback,
                errors: vec![],
            });
        }
        assert!(jobs.get("j0").is_none() && jobs.get("j1").is_none());
        assert!(jobs.get("j2").is_some() && jobs.get("j4").is_some());
    }

    #[test]
    fn job_ids_are_not_guessable() {
        let (a, b) = (new_job_id(), new_job_id());
        assert_ne!(a, b);
        assert_eq!(a.len(), 34);
    }

    #[test]
    fn only_json_bodies_and_version_2_are_taken() {
        let mut h = HeaderMap::new();
        assert_eq!(
            json_body(&h).unwrap_err().status,
            StatusCode::UNSUPPORTED_MEDIA_TYPE
        );
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/ld+json; charset=utf-8"),
        );
        json_body(&h).unwrap();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/xml"),
        );
        assert!(json_body(&h).is_err());
        h.insert("gs1-epcis-version", HeaderValue::from_static("2.0.1"));
        version_asked(&h).unwrap();
        h.insert("gs1-epcis-version", HeaderValue::from_static("1.2"));
        assert_eq!(
            version_asked(&h).unwrap_err().status,
            StatusCode::NOT_ACCEPTABLE
        );
    }

    #[test]
    fn fields_are_named_by_a_json_pointer_too() {
        assert_eq!(
            pointer("epcisBody.eventList[3].st:country"),
            "#/epcisBody/eventList/3/st%3Acountry"
        );
        assert_eq!(
            pointer("sensorElementList[0].sensorReport[1].value"),
            "#/sensorElementList/0/sensorReport/1/value"
        );
        assert_eq!(pointer("a b/c"), "#/a%20b~1c");
        assert_eq!(pointer("x~y"), "#/x~0y");
        assert_eq!(pointer("x[unclosed"), "#/x/unclosed");
        let long = "é".repeat(10_000);
        let body = Problem::validation(long.clone(), long).body();
        assert!(body["detail"].as_str().unwrap().chars().count() <= DETAIL_MAX + 1);
        assert!(body["instance"].as_str().unwrap().chars().count() <= DETAIL_MAX + 1);
    }

    #[test]
    fn the_same_event_twice_in_a_document_is_refused_by_id_and_by_hash() {
        let e = crate::sign::tests::event(1);
        let mut other_id = e.clone();
        other_id.event_id = "00000000-0000-4000-8000-000000000002".into();
        let mut other_event = other_id.clone();
        other_event.country = "DE".into();
        let doc = |events: &[ScanEvent]| {
            let mut d = epcis::document(events);
            d[SIGNATURES] = json!(vec!["ab".repeat(64); events.len()]);
            d
        };
        let refused = |events: &[ScanEvent]| {
            document_events(&doc(events), 10, Behaviour::Rollback)
                .err()
                .map(|p| p.detail)
        };
        assert!(refused(&[e.clone(), e.clone()])
            .unwrap()
            .contains("event id"));
        assert!(refused(&[e.clone(), other_id.clone()])
            .unwrap()
            .contains("hash"));
        assert_eq!(refused(&[e.clone(), other_event.clone()]), None);
        let (good, bad) = document_events(
            &doc(&[e.clone(), other_id, other_event]),
            10,
            Behaviour::Proceed,
        )
        .unwrap();
        assert_eq!((good.len(), bad.len()), (2, 1));
        assert_eq!(bad[0].instance.as_deref(), Some("epcisBody.eventList[1]"));
    }

    #[test]
    fn an_event_is_sealed_in_the_form_its_signature_is_for() {
        use ed25519_dalek::{Signer, SigningKey};
        let key = SigningKey::from_bytes(&[5; 32]);
        let mut keys = KeyHistory::default();
        keys.record("partner-1", &key.verifying_key(), false, 0);
        let e = crate::sign::tests::event(1);
        let v = epcis::object_event(&e);
        let ns = epcis_event::namespaces(Some(&epcis::context())).unwrap();
        let candidate = |sig: Vec<u8>| Candidate::of(&v, &ns, true, "", sig).unwrap();
        // Over the scan event's bytes: a scan event.
        let mut scan = e.clone();
        schemas::signature::sign(&mut scan, &key);
        let chosen = choose(&keys, candidate(scan.signature.clone())).unwrap();
        assert_eq!(chosen, LeafEvent::Scan(scan));
        // Over its canonical JSON: kept whole, and that signature verifies.
        let (text, _) = epcis_event::keep(&v, &ns, "").unwrap();
        let jcs = key
            .sign(&epcis_event::signed_message(&text))
            .to_bytes()
            .to_vec();
        let chosen = choose(&keys, candidate(jcs)).unwrap();
        assert!(chosen.as_epcis().is_some(), "{chosen:?}");
        assert_eq!(chosen.event_id(), e.event_id);
        chosen.verify(&key.verifying_key()).unwrap();
        // By someone else: kept, and its signature then fails at the gate.
        let stranger = SigningKey::from_bytes(&[6; 32]);
        let forged = stranger
            .sign(&epcis_event::signed_message(&text))
            .to_bytes()
            .to_vec();
        let chosen = choose(&keys, candidate(forged)).unwrap();
        assert!(chosen.verify(&key.verifying_key()).is_err());
        // An extension field: only the kept form holds it.
        let mut extended = v.clone();
        extended["st:lot"] = serde_json::json!("L-7");
        let c = Candidate::of(&extended, &ns, true, "", vec![0; 64]).unwrap();
        assert!(c.scan.is_none() && c.kept.is_ok());
    }
}
