//! A partner's EPCIS 2.0 event of any type, kept whole (`epcis_event.avsc`): what a
//! scan event cannot hold (aggregations, transactions, transformations,
//! associations, quantities, user extensions, certification info, any sensor
//! data) is sealed as the event's own JSON in RFC 8785 (JCS) canonical form, so
//! what was signed and sealed is given back as the same EPCIS event.
//!
//! The device signs `SIGNING_PREFIX` followed by that canonical text: a partner
//! system in any language signs with a JCS library and Ed25519, and the prefix
//! keeps such a signature from ever standing for a scan event's bytes.
//!
//! `Facts` are what the sealer files the event under (its columns) and what the
//! trail follows; they are always read off the JSON again, never trusted from
//! beside it. Extension fields keep their meaning through an `@context` of the
//! event's own that names each prefix it uses (taken from the capture
//! document's context); nothing else may be defined there.

use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use serde_json::{Map, Value};

use crate::avro::{put_bytes, DecodeError, Reader, MAGIC};
use crate::event::{is_offset, is_uuid, Action, FieldError, MAX_EVENT_TIME, MIN_EVENT_TIME};
use crate::signature::SignatureError;

/// The schema file, as shipped.
pub const SCHEMA_JSON: &str = include_str!("../epcis_event.avsc");

/// CRC-64-AVRO fingerprint of the schema's Parsing Canonical Form (a test
/// recomputes it from `epcis_event.avsc`).
pub const FINGERPRINT: u64 = 0x9e5a_fe54_6e13_6290;

/// What a device signs: these bytes, then the event's canonical JSON.
pub const SIGNING_PREFIX: &[u8] = b"sealtrail-epcis-event-v1\n";

/// The largest canonical event accepted, in bytes.
pub const MAX_EVENT_BYTES: usize = 64 * 1024;
/// The most identifiers (EPCs, classes, the parent) one event names.
pub const MAX_IDS: usize = 1000;
/// The longest identifier or vocabulary value.
pub const MAX_ID: usize = 256;

/// The five EPCIS 2.0 event types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum EventType {
    #[default]
    Object,
    Aggregation,
    Transaction,
    Transformation,
    Association,
}

impl EventType {
    pub const ALL: [EventType; 5] = [
        EventType::Object,
        EventType::Aggregation,
        EventType::Transaction,
        EventType::Transformation,
        EventType::Association,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Object => "ObjectEvent",
            EventType::Aggregation => "AggregationEvent",
            EventType::Transaction => "TransactionEvent",
            EventType::Transformation => "TransformationEvent",
            EventType::Association => "AssociationEvent",
        }
    }

    pub fn parse(s: &str) -> Option<EventType> {
        Self::ALL.into_iter().find(|t| t.as_str() == s)
    }

    /// The fields of this type beside the common ones.
    fn fields(self) -> &'static [&'static str] {
        match self {
            EventType::Object => &["epcList", "quantityList", "action", "ilmd"],
            EventType::Aggregation | EventType::Association => {
                &["parentID", "childEPCs", "childQuantityList", "action"]
            }
            EventType::Transaction => &["parentID", "epcList", "quantityList", "action"],
            EventType::Transformation => &[
                "inputEPCList",
                "inputQuantityList",
                "outputEPCList",
                "outputQuantityList",
                "transformationID",
                "ilmd",
            ],
        }
    }
}

/// Fields every event type may have.
const COMMON: &[&str] = &[
    "type",
    "eventID",
    "eventTime",
    "eventTimeZoneOffset",
    "recordTime",
    "errorDeclaration",
    "certificationInfo",
    "readPoint",
    "bizLocation",
    "bizStep",
    "disposition",
    "persistentDisposition",
    "bizTransactionList",
    "sourceList",
    "destinationList",
    "sensorElementList",
    "@context",
];

/// A quantity of a class of objects (quantityList entries).
#[derive(Debug, Clone, PartialEq)]
pub struct Quantity {
    pub epc_class: String,
    pub quantity: Option<f64>,
    pub uom: String,
}

/// What the event says, read off its JSON: the columns it is filed under and
/// what trails follow.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Facts {
    pub kind: EventType,
    /// Milliseconds since the Unix epoch, UTC.
    pub event_time: i64,
    pub event_timezone_offset: String,
    pub action: Option<Action>,
    pub biz_step: String,
    pub disposition: String,
    pub read_point: String,
    pub biz_location: String,
    pub parent_id: String,
    /// epcList, or for a transformation its input and output EPCs.
    pub epcs: Vec<String>,
    pub child_epcs: Vec<String>,
    /// quantityList, childQuantityList, or input and output quantities.
    pub quantities: Vec<Quantity>,
    /// (type, id) of each bizTransactionList entry; the type may be empty.
    pub biz_transactions: Vec<(String, String)>,
    /// (type, value) of each sensor report with a numeric value.
    pub sensors: Vec<(String, f64)>,
    pub country: String,
    /// `st:deviceID`: the device whose key signs the event.
    pub device_id: String,
    /// The eventID as written, if the event has one.
    pub event_id_uri: Option<String>,
}

impl Facts {
    /// The item the event is filed and keyed under: its parent, else its first
    /// EPC, else its first child, else its first class.
    pub fn key(&self) -> &str {
        if !self.parent_id.is_empty() {
            return &self.parent_id;
        }
        self.epcs
            .first()
            .or(self.child_epcs.first())
            .map(String::as_str)
            .or(self.quantities.first().map(|q| q.epc_class.as_str()))
            .unwrap_or("")
    }

    /// Every identifier of an object the event names: parent, EPCs, children.
    pub fn item_ids(&self) -> Vec<String> {
        let mut ids = Vec::with_capacity(1 + self.epcs.len() + self.child_epcs.len());
        if !self.parent_id.is_empty() {
            ids.push(self.parent_id.clone());
        }
        ids.extend(self.epcs.iter().cloned());
        ids.extend(self.child_epcs.iter().cloned());
        ids
    }
}

/// The record on Kafka and in the leaf.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EpcisEvent {
    pub event_id: String,
    /// The event's canonical JSON (RFC 8785).
    pub event: String,
    pub device_id: String,
    pub signature: Vec<u8>,
}

/// The RFC 8785 text of a JSON value.
pub fn canonical(v: &Value) -> String {
    serde_jcs::to_string(v).unwrap_or_default()
}

/// The bytes a device signs for an event whose canonical JSON is `event`.
pub fn signed_message(event: &str) -> Vec<u8> {
    let mut m = Vec::with_capacity(SIGNING_PREFIX.len() + event.len());
    m.extend_from_slice(SIGNING_PREFIX);
    m.extend_from_slice(event.as_bytes());
    m
}

impl EpcisEvent {
    /// The single-object encoding: the Kafka record value, and the leaf.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(16 + self.event.len() + 200);
        out.extend_from_slice(&MAGIC);
        out.extend_from_slice(&FINGERPRINT.to_le_bytes());
        put_bytes(&mut out, self.event_id.as_bytes());
        put_bytes(&mut out, self.event.as_bytes());
        put_bytes(&mut out, self.device_id.as_bytes());
        put_bytes(&mut out, &self.signature);
        out
    }

    /// Reads a record written by `encode`, and only that encoding of it (Avro
    /// admits over-long varints): the leaf is these bytes.
    pub fn decode(record: &[u8]) -> Result<EpcisEvent, DecodeError> {
        let datum = record
            .strip_prefix(&MAGIC)
            .ok_or(DecodeError::NotSingleObject)?;
        let (fp, datum) = datum
            .split_first_chunk::<8>()
            .ok_or(DecodeError::NotSingleObject)?;
        let fp = u64::from_le_bytes(*fp);
        if fp != FINGERPRINT {
            return Err(DecodeError::UnknownSchema(fp));
        }
        let mut r = Reader { buf: datum, pos: 0 };
        let e = EpcisEvent {
            event_id: r.string("event_id")?,
            event: r.string("event")?,
            device_id: r.string("device_id")?,
            signature: r.bytes("signature")?.to_vec(),
        };
        if r.pos != datum.len() {
            return Err(DecodeError::TrailingBytes(datum.len() - r.pos));
        }
        if e.encode() != record {
            return Err(DecodeError::NonCanonical);
        }
        Ok(e)
    }

    /// Signs in place.
    pub fn sign(&mut self, key: &SigningKey) {
        self.signature = key.sign(&signed_message(&self.event)).to_bytes().to_vec();
    }

    pub fn verify(&self, key: &VerifyingKey) -> Result<(), SignatureError> {
        if self.signature.is_empty() {
            return Err(SignatureError::Missing);
        }
        let sig = Signature::from_slice(&self.signature)
            .map_err(|_| SignatureError::Malformed(self.signature.len()))?;
        key.verify(&signed_message(&self.event), &sig)
            .map_err(|_| SignatureError::Mismatch)
    }

    /// The event's facts, once the record is checked: its JSON is canonical
    /// and a valid event, its id is the one the eventID gives, its device id
    /// is a sane name.
    pub fn check(&self) -> Result<Facts, FieldError> {
        self.check_hashed().map(|(f, _)| f)
    }

    /// `check`, with the event's GS1 hash ID worked out on the way (None where
    /// GS1's reference gives none).
    pub fn check_hashed(&self) -> Result<(Facts, Option<String>), FieldError> {
        if self.event.len() > MAX_EVENT_BYTES {
            return Err(FieldError::new(
                "event",
                format!("{} bytes, at most {MAX_EVENT_BYTES}", self.event.len()),
            ));
        }
        let v: Value = serde_json::from_str(&self.event)
            .map_err(|e| FieldError::new("event", format!("not JSON: {e}")))?;
        if canonical(&v) != self.event {
            return Err(FieldError::new(
                "event",
                "not in RFC 8785 canonical form (the signed text must be the one kept)",
            ));
        }
        let facts = facts(&v, "")?;
        let hash = crate::event_hash::json_event_hash(&self.event);
        let id = id_of(&facts, hash.as_deref())?;
        if id != self.event_id {
            return Err(FieldError::new(
                "event_id",
                format!("is {}, the event's eventID gives {id}", self.event_id),
            ));
        }
        if facts.device_id != self.device_id {
            return Err(FieldError::new(
                "device_id",
                format!(
                    "is {}, the event's st:deviceID is {}",
                    cut(&self.device_id),
                    facts.device_id
                ),
            ));
        }
        Ok((facts, hash))
    }
}

/// The id an event is sealed under: the UUID of its `urn:uuid:` eventID, or
/// for an event without one, or whose eventID is its GS1 hash ID, the version 8
/// UUID that hash gives (`epcis::id_of_hash`), so the same event captured
/// twice is one. An event of its own may not take a version 8 id.
pub fn id_of(f: &Facts, hash: Option<&str>) -> Result<String, FieldError> {
    let from_hash = || {
        hash.map(crate::epcis::id_of_hash).ok_or_else(|| {
            FieldError::new(
                "eventID",
                "missing, and GS1's reference gives this event no hash ID to take its place: give an eventID urn:uuid:<lowercase UUID>",
            )
        })
    };
    let Some(uri) = f.event_id_uri.as_deref() else {
        return from_hash();
    };
    if uri.starts_with("ni:") {
        return match hash {
            Some(h) if h == uri => from_hash(),
            _ => Err(FieldError::new(
                "eventID",
                format!(
                    "the event's hash ID is {}, not {}",
                    hash.unwrap_or("(none)"),
                    cut(uri)
                ),
            )),
        };
    }
    match uri.strip_prefix("urn:uuid:") {
        Some(u) if is_uuid(u) && !crate::epcis::is_hash_id(u) => Ok(u.to_string()),
        _ => Err(FieldError::new(
            "eventID",
            format!(
                "'{}' is neither urn:uuid: with a lowercase UUID (version 8 is reserved for ids derived from event hashes) nor the event's hash ID",
                cut(uri)
            ),
        )),
    }
}

fn cut(s: &str) -> String {
    s.chars().take(80).collect()
}

/// The namespaces a capture document's `@context` declares beside GS1's
/// EPCIS context: `prefix → IRI`. Only prefixes are allowed (an IRI ending in
/// `/` or `#`); `st`, `gs1` and `cbv` only with their own IRIs.
pub fn namespaces(context: Option<&Value>) -> Result<Map<String, Value>, FieldError> {
    let field = "@context";
    let bad = |p: String| FieldError::new(field, p);
    let context = context.ok_or_else(|| bad("missing: JSON-LD needs an @context".into()))?;
    let parts: Vec<&Value> = match context {
        Value::Array(a) => a.iter().collect(),
        other => vec![other],
    };
    let mut epcis = false;
    let mut out = Map::new();
    for p in parts {
        match p {
            Value::String(u)
                if u.starts_with("https://ref.gs1.org/standards/epcis/")
                    && u.ends_with("/epcis-context.jsonld") =>
            {
                epcis = true
            }
            Value::Object(o) => {
                prefixes_ok(o).map_err(|e| bad(e.problem))?;
                out.extend(o.iter().map(|(k, v)| (k.clone(), v.clone())));
            }
            _ => {
                return Err(bad(
                    "only GS1's EPCIS 2.0 context and namespace prefixes are allowed".into(),
                ))
            }
        }
    }
    if !epcis {
        return Err(bad(format!(
            "must include GS1's EPCIS 2.0 context, {}",
            crate::epcis::EPCIS_CONTEXT
        )));
    }
    Ok(out)
}

/// Each entry a namespace prefix: a name of lower-case letters and digits
/// that is no term of GS1's context, bound to an http(s) IRI ending in `/` or
/// `#`; `st`, `gs1` and `cbv` only to their own IRIs. The error names the entry.
fn prefixes_ok(o: &Map<String, Value>) -> Result<(), FieldError> {
    for (k, v) in o {
        let iri = v.as_str().unwrap_or("");
        let fixed = match k.as_str() {
            "st" => Some(crate::epcis::NAMESPACE),
            "gs1" => Some(crate::epcis::GS1_VOC),
            "cbv" => Some("https://ref.gs1.org/cbv/"),
            _ => None,
        };
        let ok = is_prefix(k)
            && (fixed.is_some() || !crate::event_hash::json::is_gs1_term(k))
            && (iri.starts_with("https://") || iri.starts_with("http://"))
            && (iri.ends_with('/') || iri.ends_with('#'))
            && iri.len() <= MAX_ID
            && !iri.chars().any(|c| c.is_whitespace() || c.is_control())
            && fixed.is_none_or(|f| f == iri);
        if !ok {
            return Err(FieldError::new(
                cut(k),
                format!(
                    "'{}': only namespace prefixes may be defined (a name of lower-case letters and digits that is no term of GS1's EPCIS context, bound to an http(s) IRI ending in / or #; st, gs1 and cbv to their own IRIs)",
                    cut(k)
                ),
            ));
        }
    }
    Ok(())
}

fn is_prefix(k: &str) -> bool {
    let mut c = k.chars();
    k.len() <= 32
        && c.next().is_some_and(|c| c.is_ascii_lowercase())
        && c.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
}

/// A captured event as it is kept: the event with an `@context` of its own
/// naming the namespaces (of `declared`) its extension fields use, in
/// canonical form, and its facts. Errors name the field under `path`.
pub fn keep(
    v: &Value,
    declared: &Map<String, Value>,
    path: &str,
) -> Result<(String, Facts), FieldError> {
    let at = |f: &str| join(path, f);
    let obj = v
        .as_object()
        .ok_or_else(|| FieldError::new(at("(event)"), "must be a JSON object"))?;
    if obj.contains_key("@context") {
        return Err(FieldError::new(
            at("@context"),
            "an event's own @context is not taken: declare namespaces in the document's",
        ));
    }
    let mut used = Map::new();
    let mut missing = None;
    // A compact IRI in a value (`acme:repairing`) keeps its namespace too.
    walk_strings(v, &mut |text| {
        if let Some((prefix, _)) = text.split_once(':') {
            if let Some(iri) = declared.get(prefix) {
                used.insert(prefix.to_string(), iri.clone());
            }
        }
    });
    walk_keys(v, &mut |k| {
        if let Some((prefix, _)) = k.split_once(':') {
            match declared.get(prefix) {
                Some(iri) => {
                    used.insert(prefix.to_string(), iri.clone());
                }
                None if prefix == "st" => {
                    used.insert("st".into(), Value::String(crate::epcis::NAMESPACE.into()));
                }
                None => {
                    missing.get_or_insert_with(|| k.to_string());
                }
            }
        }
    });
    if let Some(k) = missing {
        return Err(FieldError::new(
            at(&k),
            "its prefix is not declared in the document's @context",
        ));
    }
    let mut kept = obj.clone();
    if !used.is_empty() {
        kept.insert("@context".into(), Value::Object(used));
    }
    let kept = Value::Object(kept);
    let facts = facts(&kept, path)?;
    let text = canonical(&kept);
    if text.len() > MAX_EVENT_BYTES {
        return Err(FieldError::new(
            at("(event)"),
            format!(
                "{} bytes as canonical JSON, at most {MAX_EVENT_BYTES}",
                text.len()
            ),
        ));
    }
    Ok((text, facts))
}

/// The event as it was captured: without the `@context` of its own that `keep`
/// gave it, and that context.
pub fn given_back(event: &str) -> Option<(Value, Option<Value>)> {
    let mut v: Value = serde_json::from_str(event).ok()?;
    let context = v.as_object_mut()?.remove("@context");
    Some((v, context))
}

fn walk_strings(v: &Value, f: &mut impl FnMut(&str)) {
    match v {
        Value::String(t) => f(t),
        Value::Object(o) => o.values().for_each(|v| walk_strings(v, f)),
        Value::Array(a) => a.iter().for_each(|v| walk_strings(v, f)),
        _ => {}
    }
}

fn walk_keys(v: &Value, f: &mut impl FnMut(&str)) {
    match v {
        Value::Object(o) => {
            for (k, v) in o {
                f(k);
                walk_keys(v, f);
            }
        }
        Value::Array(a) => a.iter().for_each(|v| walk_keys(v, f)),
        _ => {}
    }
}

fn join(path: &str, f: &str) -> String {
    if path.is_empty() {
        f.to_string()
    } else {
        format!("{path}.{f}")
    }
}

/// Reads and checks an event (the kept form: its own `@context` allowed, only
/// naming the prefixes it uses). Errors name the field under `path`.
pub fn facts(v: &Value, path: &str) -> Result<Facts, FieldError> {
    let at = |f: &str| join(path, f);
    let err = |f: &str, p: String| FieldError::new(at(f), p);
    let obj = v
        .as_object()
        .ok_or_else(|| FieldError::new(at("(event)"), "must be a JSON object"))?;
    let kind_text = obj.get("type").and_then(Value::as_str).unwrap_or("");
    let kind = EventType::parse(kind_text).ok_or_else(|| {
        err(
            "type",
            format!(
                "'{}' is not an EPCIS 2.0 event type ({})",
                cut(kind_text),
                crate::epcis::EVENT_TYPES.join(", ")
            ),
        )
    })?;
    let own = match obj.get("@context") {
        None => Map::new(),
        Some(Value::Object(o)) => o.clone(),
        Some(_) => {
            return Err(err(
                "@context",
                "must be an object of namespace prefixes".into(),
            ))
        }
    };
    if let Err(e) = prefixes_ok(&own) {
        return Err(err(&format!("@context.{}", e.field), e.problem));
    }
    // Numbers as JCS writes them: doubles. An integer past 2^53 would be given
    // back as another number.
    let mut inexact = None;
    walk_numbers(v, &mut |n| {
        let exact = n.as_f64().is_some()
            && (n.is_f64()
                || n.as_i64().is_some_and(|i| i.unsigned_abs() <= 1 << 53)
                || n.as_u64().is_some_and(|u| u <= 1 << 53));
        if !exact {
            inexact.get_or_insert_with(|| n.to_string());
        }
    });
    if let Some(n) = inexact {
        return Err(err(
            "(event)",
            format!(
                "the number {} has no exact double: send it as a string",
                cut(&n)
            ),
        ));
    }
    for k in obj.keys() {
        let extension = k
            .split_once(':')
            .is_some_and(|(p, local)| own.contains_key(p) && !local.is_empty());
        if !extension && !COMMON.contains(&k.as_str()) && !kind.fields().contains(&k.as_str()) {
            return Err(err(
                k,
                format!(
                    "not a field of a {} (an extension field needs a prefix declared in @context)",
                    kind.as_str()
                ),
            ));
        }
    }
    let text = |f: &str| -> Result<Option<String>, FieldError> {
        match obj.get(f) {
            None => Ok(None),
            Some(Value::String(s)) if s.len() <= MAX_ID && !s.chars().any(char::is_control) => {
                Ok(Some(s.clone()))
            }
            Some(Value::String(_)) => Err(err(
                f,
                format!("longer than {MAX_ID} bytes or with control characters"),
            )),
            Some(_) => Err(err(f, "must be a string".into())),
        }
    };
    let required = |f: &str| -> Result<String, FieldError> {
        text(f)?.ok_or_else(|| err(f, "missing required field".into()))
    };
    let time_text = required("eventTime")?;
    let event_time = crate::time::parse_rfc3339(&time_text).map_err(|p| err("eventTime", p))?;
    if !(MIN_EVENT_TIME..MAX_EVENT_TIME).contains(&event_time) {
        return Err(err(
            "eventTime",
            "must be between 2000-01-01 and 2100-01-01".into(),
        ));
    }
    let offset = required("eventTimeZoneOffset")?;
    if !is_offset(&offset) {
        return Err(err(
            "eventTimeZoneOffset",
            "must be +HH:MM or -HH:MM within ±14:00".into(),
        ));
    }
    if let Some(t) = text("recordTime")? {
        crate::time::parse_rfc3339(&t).map_err(|p| err("recordTime", p))?;
    }
    let action = match (kind, text("action")?) {
        (EventType::Transformation, None) => None,
        (EventType::Transformation, Some(_)) => {
            return Err(err("action", "a TransformationEvent has no action".into()))
        }
        (_, None) => return Err(err("action", "missing required field".into())),
        (_, Some(a)) => Some(Action::parse(&a).ok_or_else(|| {
            err(
                "action",
                format!("'{}' is not ADD, OBSERVE or DELETE", cut(&a)),
            )
        })?),
    };
    let mut count = 0usize;
    let mut id = |f: &str, v: &Value, class: bool| -> Result<String, FieldError> {
        count += 1;
        if count > MAX_IDS {
            return Err(err(
                f,
                format!("an event names at most {MAX_IDS} identifiers"),
            ));
        }
        let s = v.as_str().ok_or_else(|| {
            err(
                f,
                "must be a string (an EPC URI or GS1 Digital Link)".into(),
            )
        })?;
        check_id(s, class).map_err(|p| err(f, p))?;
        Ok(s.to_string())
    };
    let mut list = |f: &str,
                    class_field: Option<&str>|
     -> Result<(Vec<String>, Vec<Quantity>), FieldError> {
        let mut ids = Vec::new();
        if let Some(v) = obj.get(f) {
            let a = v
                .as_array()
                .ok_or_else(|| err(f, "must be an array".into()))?;
            for (i, v) in a.iter().enumerate() {
                ids.push(id(&format!("{f}[{i}]"), v, false)?);
            }
        }
        let mut qs = Vec::new();
        if let Some(qf) = class_field {
            if let Some(v) = obj.get(qf) {
                let a = v
                    .as_array()
                    .ok_or_else(|| err(qf, "must be an array".into()))?;
                for (i, q) in a.iter().enumerate() {
                    let p = format!("{qf}[{i}]");
                    let o = q.as_object().ok_or_else(|| {
                        err(
                            &p,
                            "must be an object {\"epcClass\", \"quantity\", \"uom\"}".into(),
                        )
                    })?;
                    let class = o.get("epcClass").ok_or_else(|| {
                        err(&format!("{p}.epcClass"), "missing required field".into())
                    })?;
                    let epc_class = id(&format!("{p}.epcClass"), class, true)?;
                    let quantity = match o.get("quantity") {
                        None => None,
                        Some(Value::Number(n)) => n.as_f64(),
                        Some(_) => {
                            return Err(err(&format!("{p}.quantity"), "must be a number".into()))
                        }
                    };
                    let uom = match o.get("uom") {
                        None => String::new(),
                        Some(Value::String(u)) if u.len() <= 8 => u.clone(),
                        Some(_) => {
                            return Err(err(
                                &format!("{p}.uom"),
                                "must be a UN/CEFACT unit code (a short string)".into(),
                            ))
                        }
                    };
                    qs.push(Quantity {
                        epc_class,
                        quantity,
                        uom,
                    });
                }
            }
        }
        Ok((ids, qs))
    };
    let (mut epcs, mut child_epcs) = (Vec::new(), Vec::new());
    let mut quantities;
    match kind {
        EventType::Object | EventType::Transaction => {
            (epcs, quantities) = list("epcList", Some("quantityList"))?;
        }
        EventType::Aggregation | EventType::Association => {
            (child_epcs, quantities) = list("childEPCs", Some("childQuantityList"))?;
        }
        EventType::Transformation => {
            let (inputs, in_q) = list("inputEPCList", Some("inputQuantityList"))?;
            let (outputs, out_q) = list("outputEPCList", Some("outputQuantityList"))?;
            epcs = inputs;
            epcs.extend(outputs);
            quantities = in_q;
            quantities.extend(out_q);
        }
    }
    let parent_id = match obj.get("parentID") {
        None => String::new(),
        Some(v) => id("parentID", v, false)?,
    };
    let needs_parent = match kind {
        EventType::Aggregation => action != Some(Action::Observe),
        EventType::Association => true,
        _ => false,
    };
    if needs_parent && parent_id.is_empty() {
        return Err(err(
            "parentID",
            format!(
                "missing required field (a {} {} names its parent)",
                kind.as_str(),
                action.map_or("", |a| a.as_str())
            ),
        ));
    }
    if parent_id.is_empty() && epcs.is_empty() && child_epcs.is_empty() && quantities.is_empty() {
        return Err(err(
            "(event)",
            "names no object: give EPCs, a parent or quantities".into(),
        ));
    }
    let place = |f: &str| -> Result<String, FieldError> {
        match obj.get(f) {
            None => Ok(String::new()),
            Some(Value::Object(o)) => match o.get("id") {
                Some(v) => {
                    let s = v
                        .as_str()
                        .ok_or_else(|| err(&format!("{f}.id"), "must be a string".into()))?;
                    check_id(s, false).map_err(|p| err(&format!("{f}.id"), p))?;
                    Ok(s.to_string())
                }
                None => Err(err(&format!("{f}.id"), "missing required field".into())),
            },
            Some(_) => Err(err(f, "must be an object {\"id\": URI}".into())),
        }
    };
    let mut biz_transactions = Vec::new();
    if let Some(v) = obj.get("bizTransactionList") {
        let a = v
            .as_array()
            .ok_or_else(|| err("bizTransactionList", "must be an array".into()))?;
        for (i, t) in a.iter().enumerate() {
            let p = format!("bizTransactionList[{i}]");
            let o = t
                .as_object()
                .ok_or_else(|| err(&p, "must be an object".into()))?;
            let s = |k: &str| -> Result<String, FieldError> {
                match o.get(k) {
                    None => Ok(String::new()),
                    Some(Value::String(s)) if s.len() <= MAX_ID => Ok(s.clone()),
                    Some(_) => Err(err(
                        &format!("{p}.{k}"),
                        format!("must be a string of at most {MAX_ID} bytes"),
                    )),
                }
            };
            let id = s("bizTransaction")?;
            if id.is_empty() {
                return Err(err(
                    &format!("{p}.bizTransaction"),
                    "missing required field".into(),
                ));
            }
            biz_transactions.push((s("type")?, id));
        }
    }
    if kind == EventType::Transaction && biz_transactions.is_empty() {
        return Err(err(
            "bizTransactionList",
            "missing required field (a TransactionEvent names its transactions)".into(),
        ));
    }
    for f in ["sourceList", "destinationList", "sensorElementList"] {
        if obj.get(f).is_some_and(|v| !v.is_array()) {
            return Err(err(f, "must be an array".into()));
        }
    }
    let mut sensors = Vec::new();
    for element in obj
        .get("sensorElementList")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        for r in element
            .get("sensorReport")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if let Some(x) = r.get("value").and_then(Value::as_f64) {
                let kind = r.get("type").and_then(Value::as_str).unwrap_or("");
                sensors.push((kind.chars().take(MAX_ID).collect(), x));
            }
        }
    }
    Ok(Facts {
        kind,
        event_time,
        event_timezone_offset: offset,
        action,
        biz_step: vocabulary_name("BizStep", &text("bizStep")?.unwrap_or_default()),
        disposition: vocabulary_name("Disp", &text("disposition")?.unwrap_or_default()),
        read_point: place("readPoint")?,
        biz_location: place("bizLocation")?,
        parent_id,
        epcs,
        child_epcs,
        quantities,
        biz_transactions,
        sensors,
        country: match obj.get("st:country") {
            Some(Value::String(c)) if crate::country::is_alpha2(c) => c.clone(),
            None => String::new(),
            Some(_) => {
                return Err(err(
                    "st:country",
                    "must be an ISO 3166-1 alpha-2 code (upper case)".into(),
                ))
            }
        },
        device_id: match obj.get("st:deviceID") {
            Some(Value::String(d)) if crate::event::is_device_id(d) => d.clone(),
            None => {
                return Err(err(
                    "st:deviceID",
                    "missing required field (the id of the device whose key signs the event)"
                        .into(),
                ))
            }
            Some(_) => {
                return Err(err(
                    "st:deviceID",
                    "must be 1 to 64 characters of a-z, 0-9, '-', '_' or '.'".into(),
                ))
            }
        },
        event_id_uri: text("eventID")?,
    })
}

/// A CBV value by its bare name (`shipping`) however it is written (the CBV
/// URI or URN), and ours by theirs (`…/BizStep-customs_clearance` is
/// `customs_clearance`, as scan events keep it); any other value as it is.
pub fn vocabulary_name(kind: &str, v: &str) -> String {
    let web = format!("https://ref.gs1.org/cbv/{kind}-");
    let urn = format!("urn:epcglobal:cbv:{}:", kind.to_ascii_lowercase());
    let ours = format!("{}{kind}-", crate::epcis::NAMESPACE);
    v.strip_prefix(&web)
        .or_else(|| v.strip_prefix(&urn))
        .or_else(|| v.strip_prefix(&ours))
        .filter(|n| !n.is_empty())
        .unwrap_or(v)
        .to_string()
}

/// The first number literal in a JSON text that no double holds exactly (a
/// 20-digit integer, `1.00000000000000000001`, `1e400`), if any: kept as
/// canonical JSON it would come back as another number, so it is refused
/// where the text is still at hand, before parsing rounds it.
pub fn inexact_number(text: &[u8]) -> Option<String> {
    let mut i = 0;
    let mut in_string = false;
    while let Some(&c) = text.get(i) {
        if in_string {
            match c {
                b'\\' => i += 2,
                b'"' => {
                    in_string = false;
                    i += 1
                }
                _ => i += 1,
            }
            continue;
        }
        match c {
            b'"' => {
                in_string = true;
                i += 1
            }
            b'-' | b'0'..=b'9' => {
                let start = i;
                i += 1;
                while text
                    .get(i)
                    .is_some_and(|b| matches!(b, b'0'..=b'9' | b'.' | b'e' | b'E' | b'+' | b'-'))
                {
                    i += 1;
                }
                let token = String::from_utf8_lossy(&text[start..i]);
                if !exact(&token) {
                    return Some(cut(&token));
                }
            }
            _ => i += 1,
        }
    }
    None
}

/// Whether a number literal means exactly the double it reads as.
fn exact(token: &str) -> bool {
    match token.parse::<f64>() {
        // Not JSON's number grammar: the parser refuses it anyway.
        Err(_) => true,
        Ok(x) if !x.is_finite() => false,
        // `{:e}` writes the shortest digits that read back as `x`.
        Ok(x) => decimal(token).is_some() && decimal(token) == decimal(&format!("{x:e}")),
    }
}

/// A decimal literal as (sign, significant digits, exponent of the first
/// digit): equal for literals of equal value. Zero is one value, signed or not.
fn decimal(t: &str) -> Option<(bool, String, i64)> {
    let (negative, t) = t.strip_prefix('-').map_or((false, t), |r| (true, r));
    let (mantissa, exponent) = match t.find(['e', 'E']) {
        Some(at) => (&t[..at], t[at + 1..].parse::<i64>().ok()?),
        None => (t, 0),
    };
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let digits = format!("{int}{frac}");
    let leading = digits.len() - digits.trim_start_matches('0').len();
    let significant = digits.trim_start_matches('0').trim_end_matches('0');
    if significant.is_empty() {
        return Some((false, String::new(), 0));
    }
    let point = (int.len() as i64)
        .saturating_sub(leading as i64)
        .saturating_add(exponent);
    Some((negative, significant.to_string(), point))
}

fn walk_numbers(v: &Value, f: &mut impl FnMut(&serde_json::Number)) {
    match v {
        Value::Number(n) => f(n),
        Value::Object(o) => o.values().for_each(|v| walk_numbers(v, f)),
        Value::Array(a) => a.iter().for_each(|v| walk_numbers(v, f)),
        _ => {}
    }
}

/// An identifier: an EPC (or, for a class, an EPC class or pattern) URI or a
/// GS1 Digital Link, printable, without spaces.
fn check_id(s: &str, class: bool) -> Result<(), String> {
    let scheme_ok = s.starts_with("urn:epc:id:")
        || s.starts_with("https://")
        || s.starts_with("http://")
        || (class && (s.starts_with("urn:epc:class:") || s.starts_with("urn:epc:idpat:")))
        || (!class && s.starts_with("urn:epc:"));
    if s.len() > MAX_ID {
        return Err(format!("longer than {MAX_ID} bytes"));
    }
    if !scheme_ok || !s.bytes().all(|b| b.is_ascii_graphic()) || s.len() < 12 {
        return Err(format!(
            "'{}' is not an EPC URI (urn:epc:…) or GS1 Digital Link (https://…) without spaces",
            cut(s)
        ));
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use serde_json::json;

    pub(crate) fn pallet_add() -> Value {
        json!({
            "type": "AggregationEvent",
            "eventID": "urn:uuid:6c1f2e4a-1b2c-4d3e-8f40-5a6b7c8d9e0f",
            "eventTime": "2026-11-20T08:00:00.000+01:00",
            "eventTimeZoneOffset": "+01:00",
            "parentID": "urn:epc:id:sscc:4012345.0000000001",
            "childEPCs": ["urn:epc:id:sgtin:4012345.011111.1", "urn:epc:id:sgtin:4012345.011111.2"],
            "action": "ADD",
            "bizStep": "packing",
            "disposition": "in_progress",
            "readPoint": {"id": "urn:epc:id:sgln:4012345.00001.0"},
            "ex:lot": {"ex:line": 7, "ex:shift": "night"},
            "certificationInfo": "https://cert.example.com/c/1",
            "st:deviceID": "partner-1"
        })
    }

    fn declared() -> Map<String, Value> {
        let ctx = json!(["https://ref.gs1.org/standards/epcis/2.0.0/epcis-context.jsonld", {"ex": "https://ns.example.com/epcis/"}]);
        namespaces(Some(&ctx)).unwrap()
    }

    #[test]
    fn the_fingerprint_is_the_one_of_the_schemas_canonical_form() {
        // The Parsing Canonical Form by the specification's rules: full name,
        // only name/type/fields, logical types reduced to their primitive.
        let pcf = r#"{"name":"dev.sealtrail.EpcisEvent","type":"record","fields":[{"name":"event_id","type":"string"},{"name":"event","type":"string"},{"name":"device_id","type":"string"},{"name":"signature","type":"bytes"}]}"#;
        let schema: Value = serde_json::from_str(SCHEMA_JSON).unwrap();
        let fields: Vec<(&str, &Value)> = schema["fields"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| (f["name"].as_str().unwrap(), &f["type"]))
            .collect();
        let names: Vec<&str> = fields.iter().map(|f| f.0).collect();
        assert_eq!(names, ["event_id", "event", "device_id", "signature"]);
        assert_eq!(crate::avro::fingerprint(pcf.as_bytes()), FINGERPRINT);
    }

    #[test]
    fn a_kept_event_round_trips_signed_and_checked() {
        let (text, f) = keep(&pallet_add(), &declared(), "").unwrap();
        assert_eq!(f.kind, EventType::Aggregation);
        assert_eq!(f.parent_id, "urn:epc:id:sscc:4012345.0000000001");
        assert_eq!(f.child_epcs.len(), 2);
        assert_eq!(f.key(), f.parent_id);
        // The extension keeps its namespace: the kept event names it.
        let (back, ctx) = given_back(&text).unwrap();
        assert_eq!(back, pallet_add());
        assert_eq!(
            ctx,
            Some(json!({"ex": "https://ns.example.com/epcis/", "st": crate::epcis::NAMESPACE}))
        );
        let key = SigningKey::from_bytes(&[3; 32]);
        let mut e = EpcisEvent {
            event_id: id_of(&f, None).unwrap(),
            event: text,
            device_id: "partner-1".into(),
            signature: Vec::new(),
        };
        e.sign(&key);
        let record = e.encode();
        let back = EpcisEvent::decode(&record).unwrap();
        assert_eq!(back, e);
        assert_eq!(back.check().unwrap(), f);
        back.verify(&key.verifying_key()).unwrap();
        let mut forged = back.clone();
        forged.event = forged.event.replace("night", "day  ");
        assert!(forged.verify(&key.verifying_key()).is_err());
    }

    #[test]
    fn hostile_records_are_refused() {
        let (text, f) = keep(&pallet_add(), &declared(), "").unwrap();
        let good = EpcisEvent {
            event_id: id_of(&f, None).unwrap(),
            event: text.clone(),
            device_id: "partner-1".into(),
            signature: vec![0; 64],
        };
        // Not canonical: same JSON, other text.
        let mut spaced = good.clone();
        spaced.event = text.replacen(':', ": ", 1);
        assert_eq!(spaced.check().unwrap_err().field, "event");
        // Filed under another id.
        let mut other = good.clone();
        other.event_id = "0f8fad5b-d9cb-469f-a165-70867728950e".into();
        assert_eq!(other.check().unwrap_err().field, "event_id");
        // An over-long varint: another encoding of the same record.
        let mut record = good.encode();
        let at = 10;
        record[at] |= 0x80;
        record.insert(at + 1, 0);
        assert!(EpcisEvent::decode(&record).is_err());
        // Trailing bytes, a wrong fingerprint, truncation: no panic, refused.
        let mut trailing = good.encode();
        trailing.push(0);
        assert!(EpcisEvent::decode(&trailing).is_err());
        let mut wrong = good.encode();
        wrong[2] ^= 1;
        assert!(matches!(
            EpcisEvent::decode(&wrong),
            Err(DecodeError::UnknownSchema(_))
        ));
        let whole = good.encode();
        for n in 0..whole.len() {
            assert!(EpcisEvent::decode(&whole[..n]).is_err());
        }
    }

    #[test]
    fn each_rule_names_its_field() {
        let d = declared();
        let refused = |f: &dyn Fn(&mut Map<String, Value>)| {
            let mut v = pallet_add();
            f(v.as_object_mut().unwrap());
            keep(&v, &d, "epcisBody.eventList[0]").unwrap_err().field
        };
        assert_eq!(
            refused(&|o| {
                o.remove("parentID");
            }),
            "epcisBody.eventList[0].parentID"
        );
        assert_eq!(
            refused(&|o| {
                o.insert("type".into(), json!("Nope"));
            }),
            "epcisBody.eventList[0].type"
        );
        assert_eq!(
            refused(&|o| {
                o.remove("action");
            }),
            "epcisBody.eventList[0].action"
        );
        assert_eq!(
            refused(&|o| {
                o.insert("eventTime".into(), json!("yesterday"));
            }),
            "epcisBody.eventList[0].eventTime"
        );
        assert_eq!(
            refused(&|o| {
                o.insert("epcList".into(), json!([]));
            }),
            "epcisBody.eventList[0].epcList"
        );
        assert_eq!(
            refused(&|o| {
                o.insert("other:x".into(), json!(1));
            }),
            "epcisBody.eventList[0].other:x"
        );
        assert_eq!(
            refused(&|o| {
                o.insert("@context".into(), json!({}));
            }),
            "epcisBody.eventList[0].@context"
        );
        assert_eq!(
            refused(&|o| {
                o.insert("childEPCs".into(), json!(["not an epc"]));
            }),
            "epcisBody.eventList[0].childEPCs[0]"
        );
        assert_eq!(
            refused(&|o| {
                o.insert("ex:big".into(), json!(12345678901234567890u64));
            }),
            "epcisBody.eventList[0].(event)"
        );
        let many: Vec<String> = (0..=MAX_IDS)
            .map(|i| format!("urn:epc:id:sgtin:4012345.011111.{i}"))
            .collect();
        assert_eq!(
            refused(&|o| {
                o.insert("childEPCs".into(), json!(many));
            }),
            "epcisBody.eventList[0].childEPCs[1000]"
        );
        // A transformation has no action; a transaction names its transactions.
        let mut t = pallet_add();
        let o = t.as_object_mut().unwrap();
        o.insert("type".into(), json!("TransactionEvent"));
        o.remove("childEPCs");
        o.insert(
            "epcList".into(),
            json!(["urn:epc:id:sgtin:4012345.011111.1"]),
        );
        assert_eq!(keep(&t, &d, "").unwrap_err().field, "bizTransactionList");
        // A context may only define prefixes: no term that would change a key.
        for ctx in [
            json!(["https://ref.gs1.org/standards/epcis/2.0.0/epcis-context.jsonld", {"epcList": "https://evil.example/"}]),
            json!(["https://ref.gs1.org/standards/epcis/2.0.0/epcis-context.jsonld", {"st": "https://evil.example/"}]),
            json!(["https://ref.gs1.org/standards/epcis/2.0.0/epcis-context.jsonld", {"ex": {"@id": "https://x/"}}]),
            json!([{"ex": "https://ns.example.com/"}]),
            // GS1's own terms and keywords are not prefixes of ours.
            json!(["https://ref.gs1.org/standards/epcis/2.0.0/epcis-context.jsonld", {"action": "https://evil.example/"}]),
            json!(["https://ref.gs1.org/standards/epcis/2.0.0/epcis-context.jsonld", {"shipping": "https://evil.example/"}]),
            json!(["https://ref.gs1.org/standards/epcis/2.0.0/epcis-context.jsonld", {"epcis": "https://evil.example/"}]),
            json!(["https://ref.gs1.org/standards/epcis/2.0.0/epcis-context.jsonld", {"gs1": "https://evil.example/"}]),
            json!(["https://evil.example/context.jsonld"]),
        ] {
            assert!(namespaces(Some(&ctx)).is_err(), "{ctx}");
        }
    }

    #[test]
    fn every_type_is_read_with_its_fields() {
        let d = declared();
        let base = |kind: &str| {
            json!({"type": kind, "eventID": "urn:uuid:6c1f2e4a-1b2c-4d3e-8f40-5a6b7c8d9e01", "st:deviceID": "partner-1",
                   "eventTime": "2026-11-20T08:00:00Z", "eventTimeZoneOffset": "+00:00"})
        };
        let mut t = base("TransformationEvent");
        t["inputEPCList"] = json!(["urn:epc:id:sgtin:4012345.011111.1"]);
        t["outputQuantityList"] = json!([{"epcClass": "urn:epc:class:lgtin:4012345.011111.L1", "quantity": 2.5, "uom": "KGM"}]);
        let f = keep(&t, &d, "").unwrap().1;
        assert_eq!(
            (f.action, f.epcs.len(), f.quantities[0].quantity),
            (None, 1, Some(2.5))
        );
        let mut a = base("AssociationEvent");
        a["action"] = json!("ADD");
        a["parentID"] = json!("urn:epc:id:grai:4012345.55555.1");
        a["childEPCs"] = json!(["urn:epc:id:giai:4012345.1"]);
        a["sensorElementList"] =
            json!([{"sensorReport": [{"type": "gs1:Temperature", "value": 4.5, "uom": "CEL"}]}]);
        let f = keep(&a, &d, "").unwrap().1;
        assert_eq!(f.sensors, vec![("gs1:Temperature".to_string(), 4.5)]);
        let mut o = base("ObjectEvent");
        o["action"] = json!("OBSERVE");
        o["quantityList"] = json!([{"epcClass": "urn:epc:class:lgtin:4012345.011111.L1"}]);
        assert_eq!(
            keep(&o, &d, "").unwrap().1.key(),
            "urn:epc:class:lgtin:4012345.011111.L1"
        );
    }

    #[test]
    fn an_event_without_an_id_takes_the_one_its_hash_gives() {
        let d = declared();
        let mut v = pallet_add();
        v.as_object_mut().unwrap().remove("eventID");
        let (text, f) = keep(&v, &d, "").unwrap();
        let hash = crate::event_hash::json_event_hash(&text).unwrap();
        let id = id_of(&f, Some(&hash)).unwrap();
        assert_eq!(id, crate::epcis::id_of_hash(&hash));
        assert!(crate::epcis::is_hash_id(&id));
        assert_eq!(id_of(&f, None).unwrap_err().field, "eventID");
        // Its hash as its eventID: the same id; another hash: refused.
        v["eventID"] = json!(hash);
        let (text2, f2) = keep(&v, &d, "").unwrap();
        assert_eq!(
            crate::event_hash::json_event_hash(&text2).as_deref(),
            Some(hash.as_str())
        );
        assert_eq!(id_of(&f2, Some(&hash)).unwrap(), id);
        assert!(id_of(&f2, Some("ni:///sha-256;00?ver=CBV2.0")).is_err());
        // A version 8 UUID of its own: refused (reserved for hash ids).
        v["eventID"] = json!(format!("urn:uuid:{id}"));
        let (_, f3) = keep(&v, &d, "").unwrap();
        assert!(id_of(&f3, Some(&hash)).is_err());
        // A record filed under the derived id checks out.
        let r = EpcisEvent {
            event_id: id,
            event: text,
            device_id: "partner-1".into(),
            signature: vec![],
        };
        let (_, h) = r.check_hashed().unwrap();
        assert_eq!(h, Some(hash));
    }

    #[test]
    fn numbers_no_double_holds_are_found_in_the_text() {
        for exact in [
            r#"{"a": 1, "b": -2.5, "c": 0.1, "d": 1.50, "e": 1e3, "f": 9007199254740992, "g": -0, "h": 5e-324, "s": "12345678901234567890123"}"#,
            "[]",
            "{}",
        ] {
            assert_eq!(inexact_number(exact.as_bytes()), None, "{exact}");
        }
        for (text, first) in [
            (
                r#"{"a": 123456789012345678901234567890}"#,
                "123456789012345678901234567890",
            ),
            (r#"{"a": 9007199254740993}"#, "9007199254740993"),
            (
                r#"{"s": "a \" 1", "a": 1.00000000000000000001}"#,
                "1.00000000000000000001",
            ),
            (r#"[1e400]"#, "1e400"),
        ] {
            assert_eq!(
                inexact_number(text.as_bytes()).as_deref(),
                Some(first),
                "{text}"
            );
        }
    }
}
