//! What a Kafka record carries and a leaf holds: a scanner's scan event
//! (`scan_event.avsc`) or a partner's EPCIS event kept whole
//! (`epcis_event.avsc`). The record's fingerprint says which schema wrote it.
//! A scan event's leaf is its bare datum, which starts with its id's length
//! (0x48); an EPCIS event's leaf is its whole single-object encoding, which
//! starts with C3 01: so every leaf says what it is, and leaves sealed before
//! EPCIS events existed keep their meaning.

use std::borrow::Cow;

use ed25519_dalek::VerifyingKey;
use serde_json::{json, Map, Value};

use crate::avro::{self, DecodeError, MAGIC};
use crate::epcis_event::{self, EpcisEvent, Facts};
use crate::event::{FieldError, ScanEvent};
use crate::signature::{self, SignatureError};
use crate::time::format_rfc3339;

/// An EPCIS event with what its JSON says, or why it says nothing valid.
#[derive(Debug, Clone, PartialEq)]
pub struct Kept {
    pub record: EpcisEvent,
    pub facts: Result<Facts, FieldError>,
    /// Its GS1 event hash ID, once its facts are read: computed once, it is
    /// stored, shown and what duplicates are found by.
    pub hash: Option<String>,
}

impl Kept {
    pub fn new(record: EpcisEvent) -> Kept {
        let (facts, hash) = match record.check_hashed() {
            Ok((f, h)) => (Ok(f), h),
            Err(e) => (Err(e), None),
        };
        Kept {
            record,
            facts,
            hash,
        }
    }
}

/// A sealed (or to be sealed) event of either kind.
// Scan events are the hot path (a million a second): kept inline, not boxed.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum LeafEvent {
    Scan(ScanEvent),
    Epcis(Box<Kept>),
}

impl From<ScanEvent> for LeafEvent {
    fn from(e: ScanEvent) -> Self {
        LeafEvent::Scan(e)
    }
}

impl From<EpcisEvent> for LeafEvent {
    fn from(e: EpcisEvent) -> Self {
        LeafEvent::Epcis(Box::new(Kept::new(e)))
    }
}

impl LeafEvent {
    pub fn event_id(&self) -> &str {
        match self {
            LeafEvent::Scan(e) => &e.event_id,
            LeafEvent::Epcis(k) => &k.record.event_id,
        }
    }

    pub fn device_id(&self) -> &str {
        match self {
            LeafEvent::Scan(e) => &e.device_id,
            LeafEvent::Epcis(k) => &k.record.device_id,
        }
    }

    /// Milliseconds since the Unix epoch; 0 for an event whose JSON is not valid.
    pub fn event_time(&self) -> i64 {
        match self {
            LeafEvent::Scan(e) => e.event_time,
            LeafEvent::Epcis(k) => k.facts.as_ref().map_or(0, |f| f.event_time),
        }
    }

    /// The Kafka key, and the item the row is filed under.
    pub fn key(&self) -> &str {
        match self {
            LeafEvent::Scan(e) => e.key(),
            LeafEvent::Epcis(k) => k.facts.as_ref().map_or("", |f| f.key()),
        }
    }

    pub fn signature(&self) -> &[u8] {
        match self {
            LeafEvent::Scan(e) => &e.signature,
            LeafEvent::Epcis(k) => &k.record.signature,
        }
    }

    /// The bytes the device signed.
    pub fn signed_message(&self) -> Cow<'_, [u8]> {
        match self {
            LeafEvent::Scan(e) => Cow::Owned(avro::canonical_bytes(e)),
            LeafEvent::Epcis(k) => Cow::Owned(epcis_event::signed_message(&k.record.event)),
        }
    }

    /// Every rule an accepted event obeys.
    pub fn validate(&self) -> Result<(), FieldError> {
        match self {
            LeafEvent::Scan(e) => e.validate(),
            LeafEvent::Epcis(k) => k.facts.as_ref().map(|_| ()).map_err(Clone::clone),
        }
    }

    pub fn verify(&self, key: &VerifyingKey) -> Result<(), SignatureError> {
        match self {
            LeafEvent::Scan(e) => signature::verify(e, key),
            LeafEvent::Epcis(k) => k.record.verify(key),
        }
    }

    /// The Kafka record value.
    pub fn encode_record(&self) -> Vec<u8> {
        match self {
            LeafEvent::Scan(e) => avro::encode_single_object(e),
            LeafEvent::Epcis(k) => k.record.encode(),
        }
    }

    /// The leaf bytes.
    pub fn encode_leaf(&self) -> Vec<u8> {
        match self {
            LeafEvent::Scan(e) => avro::encode_datum(e),
            LeafEvent::Epcis(k) => k.record.encode(),
        }
    }

    pub fn as_scan(&self) -> Option<&ScanEvent> {
        match self {
            LeafEvent::Scan(e) => Some(e),
            LeafEvent::Epcis(_) => None,
        }
    }

    /// The EPCIS event and its facts, when it is one and its JSON is valid.
    pub fn as_epcis(&self) -> Option<(&EpcisEvent, &Facts)> {
        match self {
            LeafEvent::Epcis(k) => k.facts.as_ref().ok().map(|f| (&k.record, f)),
            LeafEvent::Scan(_) => None,
        }
    }
}

impl LeafEvent {
    /// The GS1 CBV 2.0 event hash ID.
    pub fn event_hash(&self) -> Option<String> {
        match self {
            LeafEvent::Scan(e) => Some(crate::event_hash::event_hash(e)),
            LeafEvent::Epcis(k) => k.hash.clone(),
        }
    }

    /// A kept event's hash, computed when it was decoded (a scan event's is
    /// computed where it is needed: `event_hash`, about 2 µs).
    pub fn kept_hash(&self) -> Option<&str> {
        match self {
            LeafEvent::Epcis(k) => k.hash.as_deref(),
            LeafEvent::Scan(_) => None,
        }
    }

    /// The EPCIS eventID: the one written in an EPCIS event; for a scan event
    /// its `urn:uuid:`, or its hash if its id is the one the hash gives.
    pub fn epcis_event_id(&self, hash: Option<&str>) -> String {
        match (self, hash) {
            (LeafEvent::Scan(e), Some(h)) => crate::epcis::event_id_uri_of(e, h),
            (LeafEvent::Epcis(k), _) => match (&k.facts, &k.hash) {
                (
                    Ok(Facts {
                        event_id_uri: Some(uri),
                        ..
                    }),
                    _,
                ) => uri.clone(),
                // Without an eventID its id is the one its hash gives: shown as the hash.
                (Ok(_), Some(h)) => h.clone(),
                _ => format!("urn:uuid:{}", k.record.event_id),
            },
            (LeafEvent::Scan(e), None) => format!("urn:uuid:{}", e.event_id),
        }
    }

    /// The event as EPCIS 2.0 JSON-LD, and the namespaces its extension fields
    /// need beside GS1's context (for the document it goes in).
    pub fn to_epcis(&self, event_id_uri: &str) -> (Value, Option<Value>) {
        match self {
            LeafEvent::Scan(e) => (crate::epcis::object_event_with_id(e, event_id_uri), None),
            LeafEvent::Epcis(k) => {
                epcis_event::given_back(&k.record.event).unwrap_or((Value::Null, None))
            }
        }
    }

    /// Whether the event names `epc`: among a scan event's items, or an EPCIS
    /// event's parent, EPCs (a transformation's inputs and outputs) and
    /// children. What a reader checks before it counts an event as an item's.
    pub fn lists(&self, epc: &str) -> bool {
        match self {
            LeafEvent::Scan(e) => e.item_ids.iter().any(|i| i == epc),
            LeafEvent::Epcis(k) => k.facts.as_ref().is_ok_and(|f| {
                f.parent_id == epc
                    || f.epcs.iter().any(|i| i == epc)
                    || f.child_epcs.iter().any(|i| i == epc)
            }),
        }
    }

    /// What a reader shows of a step, read off the signed event alone.
    pub fn summary(&self) -> Map<String, Value> {
        let mut m = Map::new();
        let mut put = |k: &str, v: Value| {
            m.insert(k.to_string(), v);
        };
        match self {
            LeafEvent::Scan(e) => {
                put("event_type", json!("ObjectEvent"));
                put(
                    "event_time",
                    json!(format_rfc3339(e.event_time, &e.event_timezone_offset)),
                );
                put("event_time_ms", json!(e.event_time));
                put("action", json!(e.action.as_str()));
                put("biz_step", json!(e.biz_step.as_str()));
                put("disposition", json!(e.disposition.as_str()));
                put("read_point", json!(e.read_point));
                put("biz_location", json!(e.biz_location));
                put("country", json!(e.country));
                put("device_id", json!(e.device_id));
                put("temperature_c", json!(e.temperature_c));
                put("epcs", json!(e.item_ids));
                put("parent_id", Value::Null);
                put("child_epcs", json!([]));
            }
            LeafEvent::Epcis(k) => {
                let Ok(f) = &k.facts else {
                    return m;
                };
                let text = |s: &str| if s.is_empty() { Value::Null } else { json!(s) };
                put("event_type", json!(f.kind.as_str()));
                put(
                    "event_time",
                    json!(format_rfc3339(f.event_time, &f.event_timezone_offset)),
                );
                put("event_time_ms", json!(f.event_time));
                put("action", json!(f.action.map(|a| a.as_str())));
                put("biz_step", text(&f.biz_step));
                put("disposition", text(&f.disposition));
                put("read_point", text(&f.read_point));
                put("biz_location", text(&f.biz_location));
                put("country", text(&f.country));
                put("device_id", json!(k.record.device_id));
                put("temperature_c", Value::Null);
                put("epcs", json!(f.epcs));
                put("parent_id", text(&f.parent_id));
                put("child_epcs", json!(f.child_epcs));
                put(
                    "quantities",
                    f.quantities
                        .iter()
                        .map(|q| json!({"epc_class": q.epc_class, "quantity": q.quantity, "uom": q.uom}))
                        .collect(),
                );
            }
        }
        m
    }
}

/// Decodes a Kafka record value, in the one encoding of what it decodes to;
/// returns the event and where its leaf bytes start in the record.
pub fn decode_record(record: &[u8]) -> Result<(LeafEvent, usize), DecodeError> {
    if is_epcis(record) {
        return Ok((EpcisEvent::decode(record)?.into(), 0));
    }
    let (event, datum) = avro::decode_canonical(record)?;
    Ok((LeafEvent::Scan(event), record.len() - datum.len()))
}

/// A record `epcis_event.avsc` wrote, decoded but not read (its JSON not
/// parsed): None for any other record. Reading a large event's JSON costs
/// milliseconds, so the sealer checks its signature first.
pub fn epcis_record(record: &[u8]) -> Option<Result<EpcisEvent, DecodeError>> {
    is_epcis(record).then(|| EpcisEvent::decode(record))
}

/// The device a leaf names, without reading a kept event's JSON: a reader
/// needs it to choose the key before it checks the leaf.
pub fn signer(leaf: &[u8]) -> Option<String> {
    if leaf.starts_with(&MAGIC) {
        return EpcisEvent::decode(leaf).ok().map(|e| e.device_id);
    }
    avro::decode_datum(leaf).ok().map(|e| e.device_id)
}

/// Decodes leaf bytes (a row's payload, a bundle's).
pub fn decode_leaf(leaf: &[u8]) -> Result<LeafEvent, DecodeError> {
    if leaf.starts_with(&MAGIC) {
        return Ok(EpcisEvent::decode(leaf)?.into());
    }
    avro::decode_datum(leaf).map(LeafEvent::Scan)
}

/// Whether a record is one `epcis_event.avsc` wrote.
fn is_epcis(record: &[u8]) -> bool {
    record.len() >= 10
        && record[..2] == MAGIC
        && record[2..10] == epcis_event::FINGERPRINT.to_le_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_kinds_decode_from_records_and_leaves() {
        let scan = crate::event::tests::sample();
        let (back, at) = decode_record(&avro::encode_single_object(&scan)).unwrap();
        assert_eq!((back.as_scan(), at), (Some(&scan), 10));
        assert_eq!(
            decode_leaf(&avro::encode_datum(&scan)).unwrap().as_scan(),
            Some(&scan)
        );
        // A scan event's leaf never opens like an EPCIS event's.
        assert_ne!(avro::encode_datum(&scan)[..2], MAGIC);

        let (text, facts) = epcis_event::keep(
            &epcis_event::tests::pallet_add(),
            &epcis_event::namespaces(Some(&serde_json::json!([
                crate::epcis::EPCIS_CONTEXT,
                {"ex": "https://ns.example.com/epcis/"}
            ])))
            .unwrap(),
            "",
        )
        .unwrap();
        let kept = EpcisEvent {
            event_id: epcis_event::id_of(&facts, None).unwrap(),
            event: text,
            device_id: "partner-1".into(),
            signature: vec![1; 64],
        };
        let record = kept.encode();
        let (back, at) = decode_record(&record).unwrap();
        assert_eq!(at, 0);
        assert_eq!(back.as_epcis(), Some((&kept, &facts)));
        assert_eq!(back.key(), facts.parent_id);
        assert_eq!(decode_leaf(&record).unwrap(), back);
        assert_eq!(signer(&record).as_deref(), Some("partner-1"));
        assert_eq!(
            signer(&avro::encode_datum(&scan)),
            Some(scan.device_id.clone())
        );
        assert_eq!(signer(&record[..record.len() - 1]), None);

        // What a reader checks before it counts an event as an object's.
        let scan = LeafEvent::Scan(scan);
        assert!(scan.lists(scan.key()));
        assert!(!scan.lists("urn:epc:id:sgtin:0614141.000000.0"));
        assert!(back.lists(&facts.parent_id));
        assert!(facts.child_epcs.iter().all(|c| back.lists(c)));
        assert!(!back.lists("urn:epc:id:sgtin:0614141.000000.0"));
        let mut broken = kept.clone();
        broken.event = "{}".into();
        assert!(!LeafEvent::from(broken).lists(&facts.parent_id));
    }
}
