//! The fuzzers' corpora (fuzz/corpus, kept by `cargo fuzz`) replayed in the test
//! suite with a fixed budget: every input, and a fixed number of byte-level
//! mutations of each, goes through the two parsers that take hostile input (Kafka
//! record values and the gateway's JSON). Nothing may panic, and what decodes
//! must re-encode to itself when it is canonical. The long runs are
//! `cargo +nightly fuzz run` in fuzz/ (see fuzz/README.md).

use std::path::PathBuf;

use schemas::{avro, json};

mod common;
use common::Rng;

/// Mutations tried per corpus file.
const MUTATIONS: usize = 400;

fn corpus(target: &str) -> Vec<Vec<u8>> {
    let dir = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../fuzz/corpus")).join(target);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    files.iter().map(|p| std::fs::read(p).unwrap()).collect()
}

fn mutate(input: &[u8], rng: &mut Rng) -> Vec<u8> {
    let mut v = input.to_vec();
    for _ in 0..1 + rng.below(4) {
        match rng.below(5) {
            0 if !v.is_empty() => {
                let i = rng.below(v.len());
                v[i] ^= 1 << rng.below(8);
            }
            1 if !v.is_empty() => {
                let i = rng.below(v.len());
                v[i] = [0x00, 0x7f, 0x80, 0xff, 0xc3, 0xa9][rng.below(6)];
            }
            2 => {
                let i = rng.below(v.len() + 1);
                v.insert(i, rng.next() as u8);
            }
            3 if !v.is_empty() => {
                let i = rng.below(v.len());
                v.remove(i);
            }
            _ => {
                let cut = rng.below(v.len() + 1);
                v.truncate(cut);
            }
        }
    }
    v
}

fn check_record(data: &[u8]) {
    if let Ok((event, datum)) = avro::decode_canonical(data) {
        assert_eq!(
            avro::encode_datum(&event),
            datum,
            "canonical means re-encodes to itself"
        );
        let _ = event.validate();
    }
    if let Ok(event) = avro::decode_single_object(data) {
        let again = avro::encode_single_object(&event);
        assert_eq!(
            avro::decode_canonical(&again).map(|(e, _)| avro::encode_datum(&e)),
            Ok(avro::encode_datum(&event)),
            "anything that decodes has a canonical encoding"
        );
    }
}

fn check_json(data: &[u8]) {
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    let parsed = match &value {
        serde_json::Value::Array(items) => items
            .iter()
            .enumerate()
            .map(|(i, v)| json::parse_event(v, &format!("events[{i}]")))
            .collect(),
        v => vec![json::parse_event(v, "")],
    };
    for e in parsed.into_iter().flatten() {
        let _ = e.validate();
        let record = avro::encode_single_object(&e);
        assert!(avro::decode_canonical(&record).is_ok());
    }
}

#[test]
fn the_avro_corpus_and_its_mutations_decode_or_fail_without_a_panic() {
    let inputs = corpus("avro_record");
    assert!(inputs.len() > 100, "the corpus is there");
    let mut rng = Rng(0x5ea1_7a11);
    for input in &inputs {
        check_record(input);
        for _ in 0..MUTATIONS {
            check_record(&mutate(input, &mut rng));
        }
    }
}

#[test]
fn the_json_corpus_and_its_mutations_parse_or_fail_without_a_panic() {
    let inputs = corpus("json_event");
    assert!(inputs.len() > 100, "the corpus is there");
    let mut rng = Rng(0x0e1c_0de5);
    for input in &inputs {
        check_json(input);
        for _ in 0..MUTATIONS {
            check_json(&mutate(input, &mut rng));
        }
    }
}

/// EPCIS events of every type, kept whole, as the seeds of their mutations.
fn kept_events() -> Vec<serde_json::Value> {
    use serde_json::json;
    let base = |kind: &str, n: u32| {
        json!({"type": kind, "eventID": format!("urn:uuid:00000000-0000-4000-a000-{n:012x}"),
               "eventTime": "2026-11-20T08:00:00.123+01:00", "eventTimeZoneOffset": "+01:00",
               "st:deviceID": "partner-1", "bizStep": "packing", "readPoint": {"id": "urn:epc:id:sgln:4012345.00001.0"}})
    };
    let mut agg = base("AggregationEvent", 1);
    agg["action"] = json!("ADD");
    agg["parentID"] = json!("urn:epc:id:sscc:4012345.0000000001");
    agg["childEPCs"] = json!([
        "urn:epc:id:sgtin:4012345.011111.1",
        "https://id.gs1.org/01/04012345111118/21/2"
    ]);
    agg["childQuantityList"] = json!([{"epcClass": "urn:epc:class:lgtin:4012345.011111.L1", "quantity": 2.5, "uom": "KGM"}]);
    let mut obj = base("ObjectEvent", 2);
    obj["action"] = json!("OBSERVE");
    obj["epcList"] = json!(["urn:epc:id:sgtin:4012345.011111.1"]);
    obj["sensorElementList"] =
        json!([{"sensorReport": [{"type": "gs1:Temperature", "value": 4.5, "uom": "CEL"}]}]);
    obj["certificationInfo"] = json!("https://cert.example.com/1");
    let mut tx = base("TransactionEvent", 3);
    tx["action"] = json!("ADD");
    tx["epcList"] = json!(["urn:epc:id:sgtin:4012345.011111.1"]);
    tx["bizTransactionList"] =
        json!([{"type": "po", "bizTransaction": "urn:epcglobal:cbv:bt:4012345000009:PO-1"}]);
    let mut tf = base("TransformationEvent", 4);
    tf["inputEPCList"] = json!(["urn:epc:id:sgtin:4012345.011111.1"]);
    tf["outputQuantityList"] =
        json!([{"epcClass": "urn:epc:class:lgtin:4012345.011111.L2", "quantity": 3}]);
    let mut asc = base("AssociationEvent", 5);
    asc["action"] = json!("ADD");
    asc["parentID"] = json!("urn:epc:id:grai:4012345.55555.1");
    asc["childEPCs"] = json!(["urn:epc:id:giai:4012345.1"]);
    vec![agg, obj, tx, tf, asc]
}

fn check_kept(data: &[u8]) {
    if let Ok((event, at)) = schemas::leaf::decode_record(data) {
        assert_eq!(
            event.encode_record(),
            data,
            "a kept record is its own encoding"
        );
        assert_eq!(at, 0, "its leaf is the whole record");
        let _ = event.validate();
        let _ = event.event_hash();
        let _ = event.summary();
        let _ = event.to_epcis("urn:uuid:x");
    }
    let _ = schemas::leaf::decode_leaf(data);
}

#[test]
fn kept_epcis_records_their_json_and_their_mutations_fail_without_a_panic() {
    use schemas::epcis_event::{self, EpcisEvent};
    let mut rng = Rng(0x0e9c_15e7);
    for v in kept_events() {
        let (text, facts) = epcis_event::keep(&v, &Default::default(), "").unwrap();
        let record = EpcisEvent {
            event_id: epcis_event::id_of(&facts, None).unwrap(),
            event: text.clone(),
            device_id: "partner-1".into(),
            signature: vec![7; 64],
        };
        let bytes = record.encode();
        assert!(schemas::leaf::decode_record(&bytes)
            .unwrap()
            .0
            .validate()
            .is_ok());
        check_kept(&bytes);
        for _ in 0..MUTATIONS {
            check_kept(&mutate(&bytes, &mut rng));
            // The JSON itself, as a partner sends it and as a record holds it.
            let json = mutate(text.as_bytes(), &mut rng);
            let Ok(json) = String::from_utf8(json) else {
                continue;
            };
            let _ = schemas::event_hash::json_event_hash(&json);
            let _ = EpcisEvent {
                event: json.clone(),
                ..record.clone()
            }
            .check();
            if let Ok(v) = serde_json::from_str::<serde_json::Value>(&json) {
                let _ = epcis_event::keep(&v, &Default::default(), "");
                let _ = epcis_event::facts(&v, "");
            }
        }
    }
}
