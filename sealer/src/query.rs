//! The EPCIS 2.0 query side of the trail API, as the standard's REST binding
//! has it: `GET /events` with the common parameters (pipe-separated values,
//! `perPage`, `nextPageToken` and a `Link` to the next page) and
//! `GET /events/{eventID}`, both answering an EPCISQueryDocument.
//!
//! Each event is rendered from its row's signed payload, never from the
//! columns, and an event whose payload does not match the query is left out:
//! the columns only choose rows. Only events that verify are in the event list,
//! so a client that reads nothing else sees nothing unproven; beside it,
//! `st:proofs` gives, in the same order, each event's hash, its proof bundle's
//! address and this server's verdict (the bundle lets anyone check it without
//! us), and `st:refused` the rows the query chose that did not verify (a
//! pending epoch, or tampering), with the reason.
//!
//! A query names its items (`MATCH_anyEPC`): the table is sorted by item, and
//! a query over all of it would read every row. At most `QUERIES` run at once.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use axum::extract::{Path, State};
use axum::http::{header, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use schemas::epcis;
use serde_json::{json, Value};

use crate::serve::Api;
use crate::store::query::{self as store_query, EventFilter};
use crate::trail::{self, Cursor, StepRow, PAGE_MAX};
use schemas::epcis_event::vocabulary_name;

const EPCIS_VERSION: &str = "2.0.1";
const CBV_VERSION: &str = "2.0.1";

/// Events per page when the client does not say (the binding's default).
const PER_PAGE_DEFAULT: usize = 30;

/// EPCIS queries answered at once; more get a 503 at once.
const QUERIES: usize = 4;
static RUNNING: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(QUERIES);

/// An RFC 7807 problem with the binding's exception type.
fn problem(status: StatusCode, kind: &str, title: &str, detail: String) -> Response {
    let mut r = (
        status,
        [
            (header::CONTENT_TYPE, "application/problem+json"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        json!({"type": kind, "title": title, "status": status.as_u16(), "detail": detail})
            .to_string(),
    )
        .into_response();
    r.headers_mut()
        .insert("gs1-epcis-version", HeaderValue::from_static(EPCIS_VERSION));
    r
}

fn bad_parameter(detail: String) -> Response {
    problem(
        StatusCode::BAD_REQUEST,
        "epcisException:QueryParameterException",
        "Invalid query parameter",
        detail,
    )
}

fn unavailable(e: anyhow::Error) -> Response {
    tracing::warn!(error = format!("{e:#}"), "answering 503");
    problem(
        StatusCode::SERVICE_UNAVAILABLE,
        "epcisException:ImplementationException",
        "The store or the ledger could not be read",
        "try again".into(),
    )
}

/// A query: what to select, and which page.
#[derive(Debug, Default, PartialEq)]
pub struct EventsQuery {
    pub filter: EventFilter,
    pub per_page: usize,
    pub after: Option<Cursor>,
    /// The parameters as given, for the next page's link.
    pub given: BTreeMap<String, String>,
}

/// Percent-decoding of one query-string component ('+' is a space).
fn decode(s: &str) -> Result<String, String> {
    let mut out = Vec::with_capacity(s.len());
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' => {
                let hex = b
                    .get(i + 1..i + 3)
                    .and_then(|h| std::str::from_utf8(h).ok())
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                    .ok_or_else(|| format!("bad percent-encoding in '{}'", cut(s)))?;
                out.push(hex);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8(out).map_err(|_| format!("'{}' is not UTF-8", cut(s)))
}

fn cut(s: &str) -> String {
    s.chars().take(60).collect()
}

/// The parameters this server answers; any other is refused by name, as the
/// standard asks of a parameter a server does not recognise.
pub fn parse_query(query: &str) -> Result<EventsQuery, String> {
    let mut q = EventsQuery {
        per_page: PER_PAGE_DEFAULT,
        ..EventsQuery::default()
    };
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let (k, v) = (decode(k)?, decode(v)?);
        if q.given.insert(k.clone(), v.clone()).is_some() {
            return Err(format!(
                "{k} is given twice; give several values once, separated by '|'"
            ));
        }
        let values = || -> Result<Vec<String>, String> {
            let vs: Vec<String> = v.split('|').map(str::to_string).collect();
            if vs.iter().any(String::is_empty) || vs.len() > 100 {
                return Err(format!("{k}: 1 to 100 values separated by '|', none empty"));
            }
            Ok(vs)
        };
        let time = |v: &str| {
            schemas::time::parse_rfc3339(v)
                .map_err(|why| format!("{k}: '{}' is not a date-time: {why}", cut(v)))
        };
        match k.as_str() {
            "eventType" => {
                for t in values()? {
                    if !epcis::EVENT_TYPES.contains(&t.as_str()) {
                        return Err(format!(
                            "eventType: '{}' is not one of {}",
                            cut(&t),
                            epcis::EVENT_TYPES.join(", ")
                        ));
                    }
                    q.filter.event_types.push(t);
                }
            }
            "MATCH_anyEPC" | "MATCH_epc" => q.filter.any_item.extend(values()?),
            "MATCH_parentID" => q.filter.parents.extend(values()?),
            // A step as scan events keep it (their symbol) and as EPCIS events
            // do (the CBV name, or the URI as written).
            "EQ_bizStep" => {
                for v in values()? {
                    let symbol = epcis::biz_step_from(&v).map(|s| s.as_str().to_string());
                    for s in symbol.into_iter().chain([vocabulary_name("BizStep", &v)]) {
                        if !q.filter.biz_steps.contains(&s) {
                            q.filter.biz_steps.push(s);
                        }
                    }
                }
            }
            "EQ_bizLocation" => q.filter.biz_locations.extend(values()?),
            "EQ_readPoint" => q.filter.read_points.extend(values()?),
            "EQ_action" => {
                for v in values()? {
                    let action = schemas::Action::parse(&v).ok_or_else(|| {
                        format!("EQ_action: '{}' is not ADD, OBSERVE or DELETE", cut(&v))
                    })?;
                    q.filter.actions.push(action.as_str().to_string());
                }
            }
            "EQ_disposition" => {
                for v in values()? {
                    let symbol = epcis::disposition_from(&v).map(|d| d.as_str().to_string());
                    for d in symbol.into_iter().chain([vocabulary_name("Disp", &v)]) {
                        if !q.filter.dispositions.contains(&d) {
                            q.filter.dispositions.push(d);
                        }
                    }
                }
            }
            "GE_eventTime" => q.filter.from_ms = Some(time(&v)?),
            "LT_eventTime" => q.filter.until_ms = Some(time(&v)?),
            "perPage" => {
                q.per_page = v
                    .parse::<usize>()
                    .ok()
                    .filter(|n| (1..=PAGE_MAX).contains(n))
                    .ok_or_else(|| format!("perPage: '{}' is not a number from 1 to {PAGE_MAX}", cut(&v)))?
            }
            "nextPageToken" => {
                q.after = Some(
                    Cursor::parse(&v).map_err(|why| format!("nextPageToken: {why}"))?,
                )
            }
            other => {
                return Err(format!(
                    "{} is not a query parameter this server answers (it answers eventType, MATCH_anyEPC, MATCH_epc, MATCH_parentID, EQ_bizStep, EQ_bizLocation, EQ_readPoint, EQ_action, EQ_disposition, GE_eventTime, LT_eventTime, perPage, nextPageToken)",
                    cut(other)
                ))
            }
        }
    }
    if q.filter.any_item.is_empty() && q.filter.parents.is_empty() {
        return Err(
            "give MATCH_anyEPC, MATCH_epc or MATCH_parentID: events are found by item, and a query over every event is not answered"
                .into(),
        );
    }
    Ok(q)
}

/// The EPCISQueryDocument of some events, with their proofs beside them and
/// the rows that did not verify apart.
async fn document(
    api: &Api,
    rows: &[StepRow],
    filter: Option<&EventFilter>,
) -> anyhow::Result<Value> {
    let mut events = Vec::with_capacity(rows.len());
    let mut proofs = Vec::with_capacity(rows.len());
    let mut refused = Vec::new();
    for row in rows {
        // What is shown is the signed payload's, and only if it matches.
        let event = schemas::leaf::decode_leaf(&row.payload).ok();
        if let (Some(e), Some(f)) = (&event, filter) {
            if !f.admits(e) {
                continue;
            }
        }
        let verdict = api.verifier.check(row).await?;
        // The hash once: the eventID and the listing both use it.
        let hash = event.as_ref().and_then(|e| e.event_hash());
        let event_id = match &event {
            Some(e) => e.epcis_event_id(hash.as_deref()),
            None => format!("urn:uuid:{}", row.event_id),
        };
        let proof = format!("/v1/events/{}/proof", row.event_id);
        match event {
            Some(e) if verdict.verified() => {
                let (mut shown, namespaces) = e.to_epcis(&event_id);
                // Its extensions' namespaces stay with it: in the document's
                // context one partner's prefix would name another's values.
                if let (Some(ns), Some(o)) = (namespaces, shown.as_object_mut()) {
                    o.insert("@context".into(), ns);
                }
                events.push(shown);
                proofs.push(json!({
                    "eventID": event_id,
                    "eventHash": hash,
                    "proof": proof,
                    "verified": true,
                    // Not a failure: the key was good when the epoch was sealed.
                    "note": verdict.key_retired.map(|k| k.note()),
                }));
            }
            _ => refused.push(json!({
                "eventID": event_id,
                "proof": proof,
                "verified": false,
                "failure": verdict.failure.map(|f| f.reason()),
            })),
        }
    }
    Ok(json!({
        "@context": epcis::context(),
        "type": "EPCISQueryDocument",
        "schemaVersion": "2.0",
        "creationDate": schemas::time::format_rfc3339(now_ms(), "Z"),
        "epcisBody": {
            "queryResults": {
                "queryName": "SimpleEventQuery",
                "resultsBody": {"eventList": events},
            }
        },
        epcis::PROOFS: proofs,
        epcis::REFUSED: refused,
    }))
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

fn answer(doc: &Value, link: Option<String>) -> Response {
    let mut r = (
        [
            (header::CONTENT_TYPE, "application/ld+json"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        doc.to_string(),
    )
        .into_response();
    let h = r.headers_mut();
    h.insert("gs1-epcis-version", HeaderValue::from_static(EPCIS_VERSION));
    h.insert("gs1-cbv-version", HeaderValue::from_static(CBV_VERSION));
    h.insert("gs1-extensions", HeaderValue::from_static(""));
    if let Some(l) = link.and_then(|l| HeaderValue::from_str(&l).ok()) {
        h.insert(header::LINK, l);
    }
    r
}

fn busy() -> Response {
    let mut r = problem(
        StatusCode::SERVICE_UNAVAILABLE,
        "epcisException:ImplementationException",
        "Too many queries at once",
        format!("{QUERIES} queries are being answered; try again"),
    );
    r.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    r
}

pub async fn events(State(api): State<Arc<Api>>, uri: Uri) -> Response {
    let started = Instant::now();
    let r = match parse_query(uri.query().unwrap_or("")) {
        Err(why) => bad_parameter(why),
        Ok(q) => match RUNNING.try_acquire() {
            Err(_) => busy(),
            Ok(_running) => match tokio::time::timeout(api.timeout, events_page(&api, &q)).await {
                Ok(Ok(r)) => r,
                Ok(Err(e)) => unavailable(e),
                Err(_) => unavailable(anyhow::anyhow!("timed out")),
            },
        },
    };
    api.observe("epcis_events", started, &r);
    r
}

async fn events_page(api: &Api, q: &EventsQuery) -> anyhow::Result<Response> {
    let (rows, next) = store_query::events(
        &api.client,
        api.tiles.as_ref(),
        &q.filter,
        q.after.as_ref(),
        q.per_page,
    )
    .await?;
    let doc = document(api, &rows, Some(&q.filter)).await?;
    let link = next.map(|c| {
        let mut given = q.given.clone();
        given.insert("nextPageToken".into(), c.to_string());
        let query: Vec<String> = given
            .iter()
            .map(|(k, v)| format!("{}={}", web::percent_encode(k), web::percent_encode(v)))
            .collect();
        format!("</events?{}>; rel=\"next\"", query.join("&"))
    });
    Ok(answer(&doc, link))
}

pub async fn event(State(api): State<Arc<Api>>, Path(id): Path<String>) -> Response {
    let started = Instant::now();
    let r = match epcis::event_id_from_uri(&id) {
        None => problem(
            StatusCode::NOT_FOUND,
            "epcisException:NoSuchResourceException",
            "Resource not found",
            format!(
                "'{}' is not an eventID this server gives (urn:uuid:… or ni:///sha-256;…?ver=CBV2.0)",
                cut(&id)
            ),
        ),
        Some(event_id) => {
            let work = async {
                let row = trail::event_row(&api.client, api.tiles.as_ref(), &event_id).await?;
                match row {
                    None => Ok(None),
                    Some(row) => {
                        let doc = document(&api, std::slice::from_ref(&row), None).await?;
                        // The event as its payload gives it, and the id asked
                        // for: listed, or apart with why it does not verify.
                        let named = |v: &Value| {
                            v.get("eventID").and_then(Value::as_str) == Some(id.as_str())
                        };
                        let listed = named(
                            &doc["epcisBody"]["queryResults"]["resultsBody"]["eventList"][0],
                        ) || named(&doc[epcis::REFUSED][0]);
                        anyhow::Ok(listed.then_some((doc, row.event_id)))
                    }
                }
            };
            match tokio::time::timeout(api.timeout, work).await {
                Ok(Ok(Some((doc, event_id)))) => {
                    let mut r = answer(&doc, None);
                    let proof = format!("</v1/events/{event_id}/proof>; rel=\"sealtrail-proof\"");
                    if let Ok(v) = HeaderValue::from_str(&proof) {
                        r.headers_mut().insert(header::LINK, v);
                    }
                    r
                }
                Ok(Ok(None)) => problem(
                    StatusCode::NOT_FOUND,
                    "epcisException:NoSuchResourceException",
                    "Resource not found",
                    format!("no sealed event with eventID {}", cut(&id)),
                ),
                Ok(Err(e)) => unavailable(e),
                Err(_) => unavailable(anyhow::anyhow!("timed out")),
            }
        }
    };
    api.observe("epcis_event", started, &r);
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_pipe_separated_and_decoded() {
        let q = parse_query(
            "EQ_bizStep=shipping%7Chttps%3A%2F%2Fref.gs1.org%2Fcbv%2FBizStep-receiving&MATCH_anyEPC=urn:epc:id:sgtin:0614141.107346.2017&GE_eventTime=2026-11-30T00%3A00%3A00.000%2B01%3A00&perPage=5",
        )
        .unwrap();
        assert_eq!(q.filter.biz_steps, ["shipping", "receiving"]);
        assert_eq!(q.filter.any_item, ["urn:epc:id:sgtin:0614141.107346.2017"]);
        assert_eq!(q.filter.from_ms, Some(1_795_993_200_000));
        assert_eq!(q.per_page, 5);
        let q = parse_query(
            "MATCH_epc=x&EQ_action=ADD%7COBSERVE&EQ_disposition=in_transit%7Chttps%3A%2F%2Fsealtrail.dev%2Fepcis%2FDisp-customs_hold&EQ_readPoint=urn:epc:id:sgln:0614141.00777.0",
        )
        .unwrap();
        assert_eq!(q.filter.actions, ["ADD", "OBSERVE"]);
        // Scan events and EPCIS events keep our values by their names.
        assert_eq!(q.filter.dispositions, ["in_transit", "customs_hold"]);
        assert_eq!(q.filter.read_points, ["urn:epc:id:sgln:0614141.00777.0"]);
    }

    #[test]
    fn bad_parameters_are_named() {
        for (query, names) in [
            ("GE_eventTime=yesterday", "GE_eventTime"),
            ("perPage=0", "perPage"),
            ("perPage=100000", "perPage"),
            ("eventType=PartyEvent", "eventType"),
            ("EQ_bizStep=shipping&EQ_bizStep=receiving", "EQ_bizStep"),
            ("MATCH_anyEPC=a||b", "MATCH_anyEPC"),
            ("EQ_quantity=3", "EQ_quantity"),
            ("nextPageToken=x", "nextPageToken"),
            ("MATCH_anyEPC=%ZZ", "bad percent-encoding"),
            ("perPage=5", "MATCH_anyEPC"),
            ("MATCH_anyEPC=x&EQ_action=MOVE", "EQ_action"),
            ("eventType=ObjectEvent", "MATCH_anyEPC"),
        ] {
            let why = parse_query(query).unwrap_err();
            assert!(why.contains(names), "{query}: {why}");
        }
    }

    #[test]
    fn every_type_and_parents_are_asked_for() {
        let q = parse_query("eventType=AggregationEvent|ObjectEvent&MATCH_anyEPC=x").unwrap();
        assert_eq!(q.filter.event_types, ["AggregationEvent", "ObjectEvent"]);
        // Events are filed under their parent: a parent alone finds them.
        let q = parse_query("MATCH_parentID=urn:epc:id:sscc:0614141.1234567890").unwrap();
        assert_eq!(q.filter.parents, ["urn:epc:id:sscc:0614141.1234567890"]);
        assert!(parse_query("eventType=AggregationEvent")
            .unwrap_err()
            .contains("MATCH_parentID"));
        // Steps outside CBV and ours are EPCIS events' to have.
        let q =
            parse_query("MATCH_anyEPC=x&EQ_bizStep=urn:epcglobal:cbv:bizstep:repairing").unwrap();
        assert_eq!(q.filter.biz_steps, ["repairing"]);
    }
}
