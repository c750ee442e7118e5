//! Our scan events as GS1 EPCIS 2.0 JSON-LD: the form partners and GS1's own tools
//! read (an `EPCISDocument` of `ObjectEvent`s), and the form `event_hash` computes the
//! CBV 2.0 event hash ID of.
//!
//! Values the CBV 2.0 standard defines are written by their bare CBV names (`shipping`,
//! `in_transit`, `po`), as EPCIS 2.0 JSON-LD writes them. Ours are not CBV values, and
//! EPCIS requires a non-CBV value to be a URI, so they are written as full URIs under
//! sealtrail's namespace, named the way CBV names its own (`BizStep-`, `Disp-`, `BTT-`):
//!
//! | field | sealtrail extensions (everything else is CBV 2.0) |
//! |---|---|
//! | bizStep | `customs_clearance` |
//! | disposition | `customs_hold`, `customs_released`, `other` (CBV 2.0 has no `Disp-other`) |
//! | bizTransaction type | `customs_declaration`, `other` (CBV 2.0 has no `BTT-other`) |
//!
//! The fields EPCIS has no place for (country, device id) are user extension fields
//! under the same namespace (prefix `st`). The device's signature is not in the event:
//! it is detached (`st:signatures` beside a capture document's `eventList`, a header
//! for one event), so signing never changes the event or its hash.
//!
//! The other way, `parse_event` takes a partner's ObjectEvent as a scan event, each
//! field exactly or not at all (below).

use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{json, Map, Value};

use crate::event::{BizStep, BizTransactionType, Disposition, FieldError, ScanEvent};
use crate::time::format_rfc3339;

/// The EPCIS 2.0 context at the URL GS1 publishes it; the reference hash
/// implementation carries a copy of it, so it hashes our documents offline.
pub const EPCIS_CONTEXT: &str = "https://ref.gs1.org/standards/epcis/2.0.0/epcis-context.jsonld";
/// sealtrail's namespace: extension fields and extension vocabulary values.
pub const NAMESPACE: &str = "https://sealtrail.dev/epcis/";
/// GS1 Web Vocabulary: sensor measurement types (`gs1:Temperature`).
pub const GS1_VOC: &str = "https://gs1.org/voc/";

/// A full URI under our namespace, as a `&'static str`.
macro_rules! ext {
    ($local:literal) => {
        concat!("https://sealtrail.dev/epcis/", $local)
    };
}

/// The bizStep value: the CBV name, or our URI for an extension.
pub fn biz_step(s: BizStep) -> &'static str {
    match s {
        BizStep::CustomsClearance => ext!("BizStep-customs_clearance"),
        cbv => cbv.as_str(),
    }
}

/// The disposition value: the CBV name, or our URI for an extension.
pub fn disposition(d: Disposition) -> &'static str {
    match d {
        Disposition::CustomsHold => ext!("Disp-customs_hold"),
        Disposition::CustomsReleased => ext!("Disp-customs_released"),
        Disposition::Other => ext!("Disp-other"),
        cbv => cbv.as_str(),
    }
}

/// The bizTransaction type: the CBV name, or our URI for an extension.
pub fn biz_transaction_type(t: BizTransactionType) -> &'static str {
    match t {
        BizTransactionType::CustomsDeclaration => ext!("BTT-customs_declaration"),
        BizTransactionType::Other => ext!("BTT-other"),
        cbv => cbv.as_str(),
    }
}

/// The event's sensor reports: (measurement type, value, UN/CEFACT unit).
/// A reading that is not a finite number has no JSON form and is left out.
pub fn sensor_reports(e: &ScanEvent) -> Vec<(&'static str, f64, &'static str)> {
    [
        ("gs1:Temperature", e.temperature_c, "CEL"),
        ("gs1:RelativeHumidity", e.relative_humidity_pct, "P1"),
    ]
    .into_iter()
    .filter_map(|(kind, v, uom)| Some((kind, reading(v?)?, uom)))
    .collect()
}

/// The f32 a device sent, as the decimal it stands for: 4.1f32 is written 4.1,
/// not 4.099999904632568 (its exact value as an f64).
fn reading(v: f32) -> Option<f64> {
    v.is_finite().then(|| v.to_string().parse().ok()).flatten()
}

/// The `@context` of our documents.
pub fn context() -> Value {
    json!([EPCIS_CONTEXT, {"gs1": GS1_VOC, "st": NAMESPACE}])
}

/// One event as an EPCIS 2.0 JSON-LD ObjectEvent.
pub fn object_event(e: &ScanEvent) -> Value {
    object_event_with_id(e, &event_id_uri(e))
}

/// The same, with its eventID worked out already (`event_id_uri_of`): a
/// reader that shows the hash too hashes the event once.
pub fn object_event_with_id(e: &ScanEvent, event_id: &str) -> Value {
    let mut ev = Map::new();
    let mut put = |k: &str, v: Value| ev.insert(k.to_string(), v);
    put("type", json!("ObjectEvent"));
    put("eventID", json!(event_id));
    put(
        "eventTime",
        json!(format_rfc3339(e.event_time, &e.event_timezone_offset)),
    );
    put("eventTimeZoneOffset", json!(e.event_timezone_offset));
    put("epcList", json!(e.item_ids));
    put("action", json!(e.action.as_str()));
    put("bizStep", json!(biz_step(e.biz_step)));
    put("disposition", json!(disposition(e.disposition)));
    put("readPoint", json!({"id": e.read_point}));
    put("bizLocation", json!({"id": e.biz_location}));
    if !e.biz_transactions.is_empty() {
        let list: Vec<Value> = e
            .biz_transactions
            .iter()
            .map(|t| json!({"bizTransaction": t.id, "type": biz_transaction_type(t.kind)}))
            .collect();
        put("bizTransactionList", json!(list));
    }
    let reports: Vec<Value> = sensor_reports(e)
        .into_iter()
        .map(|(kind, value, uom)| json!({"type": kind, "value": value, "uom": uom}))
        .collect();
    if !reports.is_empty() {
        put("sensorElementList", json!([{"sensorReport": reports}]));
    }
    put("st:country", json!(e.country));
    put("st:deviceID", json!(e.device_id));
    Value::Object(ev)
}

/// Events wrapped in an EPCISDocument created now.
pub fn document(events: &[ScanEvent]) -> Value {
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
    document_at(events, now_ms)
}

/// Events wrapped in an EPCISDocument with the given creation time (Unix ms).
pub fn document_at(events: &[ScanEvent], creation_ms: i64) -> Value {
    json!({
        "@context": context(),
        "type": "EPCISDocument",
        "schemaVersion": "2.0",
        "creationDate": format_rfc3339(creation_ms, ""),
        "epcisBody": {"eventList": events.iter().map(object_event).collect::<Vec<_>>()},
    })
}

// ---- reading partners' events ----

/// The EPCIS 2.0 event types.
pub const EVENT_TYPES: [&str; 5] = [
    "ObjectEvent",
    "AggregationEvent",
    "TransactionEvent",
    "TransformationEvent",
    "AssociationEvent",
];

/// Where a query document lists each event's hash, proof and verdict,
/// beside its `eventList` and in its order.
pub const PROOFS: &str = "st:proofs";

/// Where a query document lists the rows it chose that did not verify, apart
/// from its `eventList`, with why.
pub const REFUSED: &str = "st:refused";

/// Where a capture document carries its events' detached signatures.
pub const SIGNATURES: &str = "st:signatures";

/// The eventID we give an event: its device's UUID, or for an event whose id
/// is the one its hash names (`id_of_hash`), the hash itself.
pub fn event_id_uri(e: &ScanEvent) -> String {
    event_id_uri_of(e, &crate::event_hash::event_hash(e))
}

/// `event_id_uri` given the event's hash.
pub fn event_id_uri_of(e: &ScanEvent, hash: &str) -> String {
    if e.event_id == id_of_hash(hash) {
        hash.to_string()
    } else {
        format!("urn:uuid:{}", e.event_id)
    }
}

/// The event id an eventID names: the UUID of `urn:uuid:…`, or the id a hash
/// gives (`id_of_hash`).
pub fn event_id_from_uri(uri: &str) -> Option<String> {
    if let Some(u) = uri.strip_prefix("urn:uuid:") {
        return crate::event::is_uuid(u).then(|| u.to_string());
    }
    (uri.starts_with("ni:///sha-256;") && uri.ends_with("?ver=CBV2.0") && uri.len() == 89)
        .then(|| id_of_hash(uri))
}

/// The UUID (version 8, RFC 9562) an event without an id of its own gets: the
/// first 16 bytes of the SHA-256 of its hash ID. The same event captured twice
/// gets the same id, so the second is a duplicate.
pub fn id_of_hash(hash: &str) -> String {
    use sha2::{Digest, Sha256};
    let d = Sha256::digest(hash.as_bytes());
    let mut b = [0u8; 16];
    b.copy_from_slice(&d[..16]);
    b[6] = (b[6] & 0x0f) | 0x80;
    b[8] = (b[8] & 0x3f) | 0x80;
    crate::event::uuid_text(b)
}

fn cbv_uri(kind: &str, name: &str) -> [String; 2] {
    [
        format!("https://ref.gs1.org/cbv/{kind}-{name}"),
        format!("urn:epcglobal:cbv:{}:{name}", kind.to_ascii_lowercase()),
    ]
}

/// A bizStep value as written in EPCIS (bare CBV name, CBV URI or URN, or ours).
pub fn biz_step_from(v: &str) -> Option<BizStep> {
    BizStep::ALL.iter().copied().find(|s| {
        biz_step(*s) == v
            || (biz_step(*s) == s.as_str()
                && cbv_uri("BizStep", s.as_str()).contains(&v.to_string()))
    })
}

/// A disposition value as written in EPCIS.
pub fn disposition_from(v: &str) -> Option<Disposition> {
    Disposition::ALL.iter().copied().find(|d| {
        disposition(*d) == v
            || (disposition(*d) == d.as_str()
                && cbv_uri("Disp", d.as_str()).contains(&v.to_string()))
    })
}

/// A bizTransaction type as written in EPCIS.
pub fn biz_transaction_type_from(v: &str) -> Option<BizTransactionType> {
    BizTransactionType::ALL.iter().copied().find(|t| {
        biz_transaction_type(*t) == v
            || (biz_transaction_type(*t) == t.as_str()
                && cbv_uri("BTT", t.as_str()).contains(&v.to_string()))
    })
}

/// Whether a document's (or a lone event's) `@context` is one our events can
/// be read in: GS1's EPCIS context, `st` bound to our namespace and, for
/// sensor readings, `gs1` to GS1's vocabulary. Other prefixes would give the
/// same keys other meanings, and the event another hash than ours.
pub fn check_context(context: Option<&Value>, sensors: bool) -> Result<(), FieldError> {
    let field = "@context";
    let context = context.ok_or_else(|| {
        FieldError::new(
            field,
            format!(
                "missing: JSON-LD needs an @context, e.g. {}",
                context_text()
            ),
        )
    })?;
    let parts: Vec<&Value> = match context {
        Value::Array(a) => a.iter().collect(),
        other => vec![other],
    };
    // Nothing but GS1's context and our two prefixes: any other term, remote
    // context or @vocab would give the keys other meanings than the ones sealed.
    let mut epcis = false;
    let (mut st, mut gs1) = (None, None);
    let mut ok = true;
    for p in parts {
        match p {
            Value::String(u) => {
                epcis |= u.starts_with("https://ref.gs1.org/standards/epcis/")
                    && u.ends_with("/epcis-context.jsonld");
                ok &= u.starts_with("https://ref.gs1.org/standards/epcis/");
            }
            Value::Object(o) => {
                for (k, v) in o {
                    match k.as_str() {
                        "st" => st = v.as_str(),
                        "gs1" => gs1 = v.as_str(),
                        _ => ok = false,
                    }
                }
            }
            _ => ok = false,
        }
    }
    let ok = ok
        && epcis
        && st == Some(NAMESPACE)
        && gs1.is_none_or(|g| g == GS1_VOC)
        && (!sensors || gs1 == Some(GS1_VOC));
    if ok {
        Ok(())
    } else {
        Err(FieldError::new(
            field,
            format!(
                "must be GS1's EPCIS 2.0 context and st bound to {NAMESPACE} (gs1 to {GS1_VOC} for sensor readings), nothing else, e.g. {}",
                context_text()
            ),
        ))
    }
}

fn context_text() -> String {
    context().to_string()
}

/// The fields of an ObjectEvent this server keeps; any other is refused, not
/// dropped: what is captured must be given back whole.
const KEPT: &[&str] = &[
    "type",
    "eventID",
    "eventTime",
    "eventTimeZoneOffset",
    "epcList",
    "action",
    "bizStep",
    "disposition",
    "readPoint",
    "bizLocation",
    "bizTransactionList",
    "sensorElementList",
    "st:country",
    "st:deviceID",
];

/// A partner's EPCIS 2.0 event as a scan event, unsigned (its signature is
/// detached: the caller adds it), validated; errors name the field by its
/// path under `path` (e.g. `epcisBody.eventList[3].bizStep`).
///
/// Only ObjectEvents that fit a scan event are taken, each field exactly: a
/// value the scan event cannot hold as sent (an unknown step, a reading with
/// more digits than a sensor keeps) is refused, so what is given back and its
/// hash are what was sent. The eventID, when there is one, is a lowercase
/// `urn:uuid:` or the event's own hash ID; without one the event gets the id
/// its hash gives.
pub fn parse_event(v: &Value, path: &str) -> Result<ScanEvent, FieldError> {
    parse_event_hashed(v, path).map(|(e, _)| e)
}

/// `parse_event`, with the event's GS1 hash it works out on the way.
pub fn parse_event_hashed(v: &Value, path: &str) -> Result<(ScanEvent, String), FieldError> {
    let at = |f: &str| {
        if path.is_empty() {
            f.to_string()
        } else {
            format!("{path}.{f}")
        }
    };
    let err = |f: &str, p: String| FieldError::new(at(f), p);
    let obj = v.as_object().ok_or_else(|| {
        FieldError::new(
            if path.is_empty() { "(event)" } else { path },
            "must be a JSON object",
        )
    })?;
    let kind = obj.get("type").and_then(Value::as_str).unwrap_or("");
    if kind != "ObjectEvent" {
        return Err(err(
            "type",
            if EVENT_TYPES.contains(&kind) {
                format!("{kind} is not captured by this server yet; it captures ObjectEvent")
            } else {
                format!(
                    "'{}' is not an EPCIS 2.0 event type ({})",
                    cut(kind),
                    EVENT_TYPES.join(", ")
                )
            },
        ));
    }
    if let Some(k) = obj.keys().find(|k| !KEPT.contains(&k.as_str())) {
        return Err(err(
            k,
            "not kept by this server; refused rather than dropped (it keeps: type, eventID, eventTime, eventTimeZoneOffset, epcList, action, bizStep, disposition, readPoint, bizLocation, bizTransactionList, sensorElementList with gs1:Temperature and gs1:RelativeHumidity, st:country, st:deviceID)".into(),
        ));
    }
    let text = |f: &str| -> Result<String, FieldError> {
        match obj.get(f) {
            None | Some(Value::Null) => Err(err(f, "missing required field".into())),
            Some(Value::String(s)) => Ok(s.clone()),
            Some(_) => Err(err(f, "must be a string".into())),
        }
    };
    let place = |f: &str| -> Result<String, FieldError> {
        let o = obj
            .get(f)
            .ok_or_else(|| err(f, "missing required field".into()))?
            .as_object()
            .ok_or_else(|| err(f, "must be an object {\"id\": URI}".into()))?;
        if let Some(k) = o.keys().find(|k| *k != "id") {
            return Err(err(
                &format!("{f}.{k}"),
                "not kept by this server; refused rather than dropped".into(),
            ));
        }
        o.get("id")
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| err(&format!("{f}.id"), "missing required field".into()))
    };
    let time_text = text("eventTime")?;
    let event_time = crate::time::parse_rfc3339(&time_text).map_err(|p| err("eventTime", p))?;
    let items = obj
        .get("epcList")
        .ok_or_else(|| {
            err(
                "epcList",
                "missing required field (this server takes events that list their items)".into(),
            )
        })?
        .as_array()
        .ok_or_else(|| err("epcList", "must be an array of EPC URIs".into()))?
        .iter()
        .enumerate()
        .map(|(i, v)| {
            v.as_str()
                .map(str::to_string)
                .ok_or_else(|| err(&format!("epcList[{i}]"), "must be a string".into()))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let action_text = text("action")?;
    let action = crate::event::Action::parse(&action_text).ok_or_else(|| {
        err(
            "action",
            format!("'{}' is not ADD, OBSERVE or DELETE", cut(&action_text)),
        )
    })?;
    let step_text = text("bizStep")?;
    let biz_step = biz_step_from(&step_text).ok_or_else(|| {
        err(
            "bizStep",
            format!(
                "'{}' is not a business step this server keeps: {}",
                cut(&step_text),
                BizStep::expected()
            ),
        )
    })?;
    let disp_text = text("disposition")?;
    let disposition = disposition_from(&disp_text).ok_or_else(|| {
        err(
            "disposition",
            format!(
                "'{}' is not a disposition this server keeps: {}",
                cut(&disp_text),
                Disposition::expected()
            ),
        )
    })?;
    let biz_transactions = match obj.get("bizTransactionList") {
        None => Vec::new(),
        Some(list) => list
            .as_array()
            .ok_or_else(|| err("bizTransactionList", "must be an array".into()))?
            .iter()
            .enumerate()
            .map(|(i, t)| transaction(t, &at(&format!("bizTransactionList[{i}]"))))
            .collect::<Result<Vec<_>, _>>()?,
    };
    let (temperature_c, relative_humidity_pct) = match obj.get("sensorElementList") {
        None => (None, None),
        Some(s) => sensors(s, &at("sensorElementList"))?,
    };
    let mut e = ScanEvent {
        event_id: String::new(),
        event_time,
        event_timezone_offset: text("eventTimeZoneOffset")?,
        action,
        biz_step,
        disposition,
        item_ids: items,
        read_point: place("readPoint")?,
        biz_location: place("bizLocation")?,
        country: text("st:country")?,
        biz_transactions,
        temperature_c,
        relative_humidity_pct,
        device_id: text("st:deviceID")?,
        signature: Vec::new(),
    };
    // Every size checked before anything is hashed: hashing is the costly part.
    e.event_id = PLACEHOLDER_ID.to_string();
    e.validate().map_err(|f| renamed(f, &at))?;
    let hash = crate::event_hash::event_hash(&e);
    e.event_id = match obj.get("eventID") {
        None => id_of_hash(&hash),
        Some(Value::String(id)) if id.starts_with("ni:") => {
            if *id != hash {
                return Err(err(
                    "eventID",
                    format!("the event's hash ID is {hash}, not {}", cut(id)),
                ));
            }
            id_of_hash(&hash)
        }
        Some(Value::String(id)) => id
            .strip_prefix("urn:uuid:")
            .filter(|u| crate::event::is_uuid(u))
            .map(str::to_string)
            .ok_or_else(|| {
                err(
                    "eventID",
                    format!(
                        "'{}' is neither urn:uuid: with a lowercase UUID nor the event's hash ID",
                        cut(id)
                    ),
                )
            })?,
        Some(_) => return Err(err("eventID", "must be a string".into())),
    };
    e.validate().map_err(|f| renamed(f, &at))?;
    Ok((e, hash))
}

/// A random-looking (version 4) id that stands in while the sizes are checked.
const PLACEHOLDER_ID: &str = "00000000-0000-4000-8000-000000000000";

/// A scan event's field error named by the EPCIS field it came from.
fn renamed(f: FieldError, at: &impl Fn(&str) -> String) -> FieldError {
    let name = match f.field.as_str() {
        "event_id" => "eventID".to_string(),
        "event_time" => "eventTime".to_string(),
        "event_timezone_offset" => "eventTimeZoneOffset".to_string(),
        "read_point" => "readPoint.id".to_string(),
        "biz_location" => "bizLocation.id".to_string(),
        "country" => "st:country".to_string(),
        "device_id" => "st:deviceID".to_string(),
        "temperature_c" | "relative_humidity_pct" => "sensorElementList".to_string(),
        other => other
            .replace("item_ids", "epcList")
            .replace("biz_transactions", "bizTransactionList")
            .replace("].id", "].bizTransaction"),
    };
    FieldError::new(at(&name), f.problem)
}

/// Whether an id is a version 8 UUID, the kind `id_of_hash` makes.
pub fn is_hash_id(id: &str) -> bool {
    let b = id.as_bytes();
    b.len() == 36 && b[14] == b'8' && matches!(b[19], b'8' | b'9' | b'a' | b'b')
}

fn cut(s: &str) -> String {
    s.chars().take(80).collect()
}

fn transaction(v: &Value, path: &str) -> Result<crate::event::BizTransaction, FieldError> {
    let o = v
        .as_object()
        .ok_or_else(|| FieldError::new(path, "must be an object {\"type\", \"bizTransaction\"}"))?;
    if let Some(k) = o.keys().find(|k| *k != "type" && *k != "bizTransaction") {
        return Err(FieldError::new(
            format!("{path}.{k}"),
            "not kept by this server; refused rather than dropped",
        ));
    }
    let kind_text = o.get("type").and_then(Value::as_str).ok_or_else(|| {
        FieldError::new(
            format!("{path}.type"),
            "missing required field (this server keeps typed transactions)",
        )
    })?;
    let kind = biz_transaction_type_from(kind_text).ok_or_else(|| {
        FieldError::new(
            format!("{path}.type"),
            format!(
                "'{}' is not a transaction type this server keeps: {}",
                cut(kind_text),
                BizTransactionType::expected()
            ),
        )
    })?;
    let id = o
        .get("bizTransaction")
        .and_then(Value::as_str)
        .ok_or_else(|| {
            FieldError::new(format!("{path}.bizTransaction"), "missing required field")
        })?;
    Ok(crate::event::BizTransaction {
        kind,
        id: id.to_string(),
    })
}

/// A sensorElementList as `object_event` writes it: one element whose
/// reports are a temperature in CEL and a relative humidity in P1, each once.
fn sensors(v: &Value, path: &str) -> Result<(Option<f32>, Option<f32>), FieldError> {
    let shape = "this server keeps one sensorElement whose sensorReport holds gs1:Temperature (uom CEL) and gs1:RelativeHumidity (uom P1), each at most once, with type, value and uom only";
    let reports = v
        .as_array()
        .filter(|l| l.len() == 1)
        .and_then(|l| l[0].as_object())
        .filter(|o| o.len() == 1)
        .and_then(|o| o.get("sensorReport"))
        .and_then(Value::as_array)
        .filter(|r| !r.is_empty() && r.len() <= 2)
        .ok_or_else(|| FieldError::new(path, shape))?;
    let (mut t, mut h) = (None, None);
    for (i, r) in reports.iter().enumerate() {
        let at = format!("{path}[0].sensorReport[{i}]");
        let o = r
            .as_object()
            .filter(|o| o.len() == 3)
            .ok_or_else(|| FieldError::new(&at, shape))?;
        let value = o
            .get("value")
            .and_then(Value::as_f64)
            .ok_or_else(|| FieldError::new(format!("{at}.value"), "must be a number"))?;
        // The reading is kept as a sensor's f32: refuse digits it would lose,
        // or the event given back (and its hash) would differ from the sent one.
        let kept = value as f32;
        if reading(kept) != Some(value) {
            return Err(FieldError::new(
                format!("{at}.value"),
                format!("{value} has more precision than a sensor reading keeps (it would read back as {kept})"),
            ));
        }
        let slot = match (
            o.get("type").and_then(Value::as_str),
            o.get("uom").and_then(Value::as_str),
        ) {
            (Some("gs1:Temperature"), Some("CEL")) => &mut t,
            (Some("gs1:RelativeHumidity"), Some("P1")) => &mut h,
            _ => return Err(FieldError::new(&at, shape)),
        };
        if slot.replace(kept).is_some() {
            return Err(FieldError::new(&at, shape));
        }
    }
    Ok((t, h))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::tests::sample;

    #[test]
    fn writes_cbv_names_bare_and_extensions_as_our_uris() {
        let mut e = sample();
        e.temperature_c = Some(4.1);
        e.signature = vec![0xab; 64];
        let ev = object_event(&e);
        assert_eq!(
            ev["eventID"],
            "urn:uuid:0f8fad5b-d9cb-469f-a165-70867728950e"
        );
        assert_eq!(ev["eventTime"], "2025-11-25T18:00:00.123+08:00");
        assert_eq!(ev["eventTimeZoneOffset"], "+08:00");
        assert_eq!(
            ev["bizStep"],
            "https://sealtrail.dev/epcis/BizStep-customs_clearance"
        );
        assert_eq!(
            ev["disposition"],
            "https://sealtrail.dev/epcis/Disp-customs_released"
        );
        assert_eq!(
            ev["bizTransactionList"],
            json!([{"bizTransaction": "CD-2026-000123",
                    "type": "https://sealtrail.dev/epcis/BTT-customs_declaration"}])
        );
        assert_eq!(
            ev["sensorElementList"],
            json!([{"sensorReport": [{"type": "gs1:Temperature", "value": 4.1, "uom": "CEL"}]}])
        );
        assert!(
            ev.get("st:signature").is_none(),
            "the signature is detached"
        );
        assert_eq!(biz_step(BizStep::Shipping), "shipping");
        assert_eq!(disposition(Disposition::InTransit), "in_transit");
        assert_eq!(biz_transaction_type(BizTransactionType::Po), "po");
    }

    #[test]
    fn a_document_holds_its_events() {
        let doc = document_at(&[sample(), sample()], 0);
        assert_eq!(doc["type"], "EPCISDocument");
        assert_eq!(doc["schemaVersion"], "2.0");
        assert_eq!(doc["creationDate"], "1970-01-01T00:00:00.000Z");
        assert_eq!(doc["@context"][0], EPCIS_CONTEXT);
        assert_eq!(
            doc["epcisBody"]["eventList"].as_array().map(Vec::len),
            Some(2)
        );
    }

    #[test]
    fn readings_without_a_number_are_left_out() {
        let mut e = sample();
        e.temperature_c = Some(f32::NAN);
        e.relative_humidity_pct = Some(f32::INFINITY);
        assert!(sensor_reports(&e).is_empty());
        assert!(object_event(&e).get("sensorElementList").is_none());
    }

    fn signed_sample() -> ScanEvent {
        let mut e = sample();
        e.signature = vec![7; 64];
        e
    }

    #[test]
    fn what_object_event_writes_parses_back_to_the_same_event() {
        let mut e = signed_sample();
        e.relative_humidity_pct = Some(55.5);
        e.item_ids
            .push("https://id.gs1.org/01/09506000134352/21/ABC123".into());
        let mut back = parse_event(&object_event(&e), "").unwrap();
        back.signature = e.signature.clone();
        assert_eq!(back, e);
        // Every step, disposition and transaction type, CBV or ours.
        for s in BizStep::ALL {
            let mut e = sample();
            e.biz_step = *s;
            assert_eq!(parse_event(&object_event(&e), "").unwrap().biz_step, *s);
        }
        for d in Disposition::ALL {
            let mut e = sample();
            e.disposition = *d;
            assert_eq!(parse_event(&object_event(&e), "").unwrap().disposition, *d);
        }
        for t in BizTransactionType::ALL {
            let mut e = sample();
            e.biz_transactions[0].kind = *t;
            assert_eq!(
                parse_event(&object_event(&e), "").unwrap().biz_transactions[0].kind,
                *t
            );
        }
    }

    #[test]
    fn cbv_values_are_taken_as_uris_and_urns_too() {
        let mut v = object_event(&sample());
        v["bizStep"] = json!("https://ref.gs1.org/cbv/BizStep-shipping");
        v["disposition"] = json!("urn:epcglobal:cbv:disp:in_transit");
        let e = parse_event(&v, "").unwrap();
        assert_eq!(
            (e.biz_step, e.disposition),
            (BizStep::Shipping, Disposition::InTransit)
        );
        // Ours only as our URIs: a bare extension name is no EPCIS value.
        v["bizStep"] = json!("customs_clearance");
        assert_eq!(parse_event(&v, "").unwrap_err().field, "bizStep");
    }

    #[test]
    fn an_event_without_an_id_gets_the_one_its_hash_gives_and_shows_the_hash() {
        let mut v = object_event(&sample());
        v.as_object_mut().unwrap().remove("eventID");
        let e = parse_event(&v, "").unwrap();
        let hash = crate::event_hash::event_hash(&e);
        assert_eq!(e.event_id, id_of_hash(&hash));
        e.validate().unwrap();
        assert_eq!(object_event(&e)["eventID"], json!(hash));
        assert_eq!(event_id_from_uri(&hash), Some(e.event_id.clone()));
        // The same event again: the same id, so a duplicate.
        assert_eq!(parse_event(&v, "").unwrap().event_id, e.event_id);
        // Given as its hash: the same; a wrong hash is refused.
        v["eventID"] = json!(hash);
        assert_eq!(parse_event(&v, "").unwrap().event_id, e.event_id);
        v["eventID"] = json!(format!("ni:///sha-256;{}?ver=CBV2.0", "0".repeat(64)));
        assert_eq!(parse_event(&v, "").unwrap_err().field, "eventID");
        let mut sample_id = sample();
        sample_id.event_id = "0f8fad5b-d9cb-469f-a165-70867728950e".into();
        assert_eq!(
            event_id_from_uri("urn:uuid:0f8fad5b-d9cb-469f-a165-70867728950e"),
            Some(sample_id.event_id)
        );
        assert_eq!(
            event_id_from_uri("urn:uuid:0F8FAD5B-D9CB-469F-A165-70867728950E"),
            None
        );
        assert_eq!(event_id_from_uri("ni:///sha-256;x?ver=CBV2.0"), None);
    }

    #[test]
    fn each_bad_field_is_named_by_its_path() {
        type Breaker = Box<dyn Fn(&mut Value)>;
        let base = object_event(&sample());
        let cases: Vec<(&str, Breaker)> = vec![
            ("type", Box::new(|v| v["type"] = json!("AggregationEvent"))),
            ("type", Box::new(|v| v["type"] = json!("PartyEvent"))),
            (
                "eventTime",
                Box::new(|v| v["eventTime"] = json!("30/11/2026 12:00")),
            ),
            (
                "eventTime",
                Box::new(|v| {
                    v.as_object_mut().unwrap().remove("eventTime");
                }),
            ),
            (
                "eventTimeZoneOffset",
                Box::new(|v| v["eventTimeZoneOffset"] = json!("+25:00")),
            ),
            ("epcList", Box::new(|v| v["epcList"] = json!([]))),
            (
                "epcList[0]",
                Box::new(|v| v["epcList"] = json!(["urn:epc:id:sgtin:1.2.3"])),
            ),
            ("action", Box::new(|v| v["action"] = json!("MOVE"))),
            ("bizStep", Box::new(|v| v["bizStep"] = json!("dancing"))),
            (
                "disposition",
                Box::new(|v| {
                    v.as_object_mut().unwrap().remove("disposition");
                }),
            ),
            (
                "readPoint.id",
                Box::new(|v| v["readPoint"] = json!({"id": "warehouse 7"})),
            ),
            (
                "bizLocation",
                Box::new(|v| v["bizLocation"] = json!("urn:epc:id:sgln:0614141.00888.0")),
            ),
            (
                "readPoint.extra",
                Box::new(|v| v["readPoint"]["extra"] = json!(1)),
            ),
            (
                "bizTransactionList[0].type",
                Box::new(|v| v["bizTransactionList"][0]["type"] = json!("invoice?")),
            ),
            (
                "sensorElementList[0].sensorReport[0].value",
                Box::new(|v| {
                    v["sensorElementList"][0]["sensorReport"][0]["value"] = json!(4.123456789)
                }),
            ),
            (
                "sensorElementList[0].sensorReport[0]",
                Box::new(|v| v["sensorElementList"][0]["sensorReport"][0]["uom"] = json!("FAH")),
            ),
            ("st:country", Box::new(|v| v["st:country"] = json!("XX"))),
            (
                "st:deviceID",
                Box::new(|v| {
                    v.as_object_mut().unwrap().remove("st:deviceID");
                }),
            ),
            (
                "eventID",
                Box::new(|v| v["eventID"] = json!("urn:uuid:0F8FAD5B-D9CB-469F-A165-70867728950E")),
            ),
            ("quantityList", Box::new(|v| v["quantityList"] = json!([]))),
            (
                "certificationInfo",
                Box::new(|v| v["certificationInfo"] = json!("x")),
            ),
        ];
        for (field, break_it) in cases {
            let mut v = base.clone();
            break_it(&mut v);
            let err = parse_event(&v, "epcisBody.eventList[2]").unwrap_err();
            assert_eq!(
                err.field,
                format!("epcisBody.eventList[2].{field}"),
                "{}",
                err.problem
            );
        }
        assert_eq!(parse_event(&json!([1]), "").unwrap_err().field, "(event)");
    }

    #[test]
    fn only_our_context_reads_our_keys() {
        check_context(Some(&context()), true).unwrap();
        check_context(Some(&json!([EPCIS_CONTEXT, {"st": NAMESPACE}])), false).unwrap();
        for bad in [
            json!(EPCIS_CONTEXT),
            json!([EPCIS_CONTEXT, {"st": "https://evil.example/"}]),
            json!([{"st": NAMESPACE}]),
            json!([EPCIS_CONTEXT, {"st": NAMESPACE, "gs1": "https://evil.example/"}]),
        ] {
            assert_eq!(
                check_context(Some(&bad), false).unwrap_err().field,
                "@context",
                "{bad}"
            );
        }
        assert!(check_context(Some(&json!([EPCIS_CONTEXT, {"st": NAMESPACE}])), true).is_err());
        assert!(check_context(None, false).is_err());
    }

    /// Taking the id a partner's event will get: refused, by every path
    /// (`validate` is the gate's), unless it is this event's own.
    #[test]
    fn a_version_8_id_belongs_to_the_event_whose_hash_gives_it() {
        let partner = sample();
        let squatted = id_of_hash(&crate::event_hash::event_hash(&partner));
        assert!(is_hash_id(&squatted));
        let mut squatter = sample();
        squatter.device_id = "someone-else".into();
        squatter.event_id = squatted.clone();
        assert_eq!(squatter.validate().unwrap_err().field, "event_id");
        let mut v = object_event(&squatter);
        v["eventID"] = json!(format!("urn:uuid:{squatted}"));
        assert_eq!(parse_event(&v, "").unwrap_err().field, "eventID");
        let mut own = partner.clone();
        own.event_id = squatted;
        own.validate().unwrap();
        assert!(!is_hash_id(&sample().event_id));
    }

    #[test]
    fn sizes_are_checked_before_anything_is_hashed() {
        let mut v = object_event(&sample());
        v["epcList"] = json!(vec!["cbv:x"; 20_000]);
        let started = std::time::Instant::now();
        assert_eq!(parse_event(&v, "").unwrap_err().field, "epcList");
        assert!(started.elapsed() < std::time::Duration::from_secs(1));
        v["epcList"] = json!([format!(
            "https://id.gs1.org/8010/80110{}",
            "/8011".repeat(40_000)
        )]);
        assert_eq!(parse_event(&v, "").unwrap_err().field, "epcList[0]");
    }

    #[test]
    fn contexts_with_other_terms_are_refused() {
        for bad in [
            json!([EPCIS_CONTEXT, "https://evil.example/ctx.jsonld", {"st": NAMESPACE}]),
            json!([EPCIS_CONTEXT, {"st": NAMESPACE, "epcList": "https://evil.example/x"}]),
            json!([EPCIS_CONTEXT, {"st": NAMESPACE, "@vocab": "https://evil.example/"}]),
            json!([EPCIS_CONTEXT, {"st": NAMESPACE}, 5]),
        ] {
            assert!(check_context(Some(&bad), false).is_err(), "{bad}");
        }
        let mut v = object_event(&sample());
        v["@context"] = context();
        assert_eq!(parse_event(&v, "").unwrap_err().field, "@context");
    }
}
