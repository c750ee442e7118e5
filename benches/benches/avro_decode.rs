//! Whether the hand-written Avro codec (`schemas::avro`) earns its keep: decoding
//! the benchmark's 100k signed scan-event records (Avro single-object encoding:
//! `C3 01`, the schema's 8-byte fingerprint, the datum) into a typed event, with
//! it and with `apache-avro` reading the `.avsc`. Both sides check the header
//! (marker and fingerprint) of every record and end with a `schemas::ScanEvent`.
//!
//! - `ours`: `avro::decode_single_object`.
//! - `ours_canonical`: `avro::decode_canonical`, what the sealer's gate runs (the
//!   decode, then a check that the datum is the one encoding of the event).
//! - `apache_avro_serde`: `SpecificSingleObjectReader::read` into a serde mirror
//!   of the event (the crate's typed reader: header, `Value`, `from_value`), then
//!   moved into a `ScanEvent`.
//! - `apache_avro_value`: `GenericSingleObjectReader::read_value` alone, to an
//!   `apache_avro::types::Value`: the crate's floor, with no typed event at the end.
//!
//! The schema is parsed and resolved once, outside the measurement, on both sides.
//! `apache-avro` computes the fingerprint over its own canonical form, not the
//! specification's (`avro::LEGACY_FINGERPRINT`), so it reads the same records
//! with that fingerprint in their header.

use apache_avro::{AvroSchema, GenericSingleObjectReader, Schema, SpecificSingleObjectReader};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use schemas::{avro, Action, BizStep, BizTransaction, BizTransactionType, Disposition, ScanEvent};
use serde::Deserialize;
use std::hint::black_box;

/// The event as serde sees it, field for field and symbol for symbol the `.avsc`.
#[derive(Deserialize)]
struct Event {
    event_id: String,
    event_time: i64,
    event_timezone_offset: String,
    action: ActionSym,
    biz_step: BizStepSym,
    disposition: DispositionSym,
    item_ids: Vec<String>,
    read_point: String,
    biz_location: String,
    country: String,
    biz_transactions: Vec<Transaction>,
    temperature_c: Option<f32>,
    relative_humidity_pct: Option<f32>,
    device_id: String,
    #[serde(with = "serde_bytes")]
    signature: Vec<u8>,
}

#[derive(Deserialize)]
struct Transaction {
    #[serde(rename = "type")]
    kind: TransactionTypeSym,
    id: String,
}

// The symbols in schema order, so the discriminant is the wire index.
#[derive(Deserialize, Clone, Copy)]
#[serde(rename_all = "UPPERCASE")]
enum ActionSym {
    Add,
    Observe,
    Delete,
}

#[derive(Deserialize, Clone, Copy)]
#[serde(rename_all = "snake_case")]
enum BizStepSym {
    Commissioning,
    Packing,
    Loading,
    Shipping,
    Departing,
    Arriving,
    Receiving,
    Inspecting,
    Storing,
    CustomsClearance,
    Accepting,
    Other,
}

#[derive(Deserialize, Clone, Copy)]
#[serde(rename_all = "snake_case")]
enum DispositionSym {
    Active,
    InProgress,
    InTransit,
    ContainerClosed,
    Conformant,
    NonConformant,
    Damaged,
    CustomsHold,
    CustomsReleased,
    SellableAccessible,
    Returned,
    Destroyed,
    Other,
}

#[derive(Deserialize, Clone, Copy)]
#[serde(rename_all = "snake_case")]
enum TransactionTypeSym {
    Po,
    Desadv,
    Inv,
    Bol,
    CustomsDeclaration,
    Other,
}

impl AvroSchema for Event {
    fn get_schema() -> Schema {
        Schema::parse_str(avro::SCHEMA_JSON).expect("the .avsc parses")
    }
}

impl From<Event> for ScanEvent {
    fn from(e: Event) -> Self {
        ScanEvent {
            event_id: e.event_id,
            event_time: e.event_time,
            event_timezone_offset: e.event_timezone_offset,
            action: Action::ALL[e.action as usize],
            biz_step: BizStep::ALL[e.biz_step as usize],
            disposition: Disposition::ALL[e.disposition as usize],
            item_ids: e.item_ids,
            read_point: e.read_point,
            biz_location: e.biz_location,
            country: e.country,
            biz_transactions: e
                .biz_transactions
                .into_iter()
                .map(|t| BizTransaction {
                    kind: BizTransactionType::ALL[t.kind as usize],
                    id: t.id,
                })
                .collect(),
            temperature_c: e.temperature_c,
            relative_humidity_pct: e.relative_humidity_pct,
            device_id: e.device_id,
            signature: e.signature,
        }
    }
}

fn decode(c: &mut Criterion) {
    let n = 100_000;
    let records: Vec<Vec<u8>> = benches::records(n).into_iter().map(|r| r.value).collect();
    let bytes: usize = records.iter().map(Vec::len).sum();
    println!("{n} records, {} bytes each on average", bytes / n);

    let typed = SpecificSingleObjectReader::<Event>::new().expect("apache-avro reads the .avsc");
    let generic = GenericSingleObjectReader::new(Event::get_schema()).unwrap();
    let theirs_records: Vec<Vec<u8>> = records
        .iter()
        .map(|r| {
            let mut r = r.clone();
            r[2..10].copy_from_slice(&avro::LEGACY_FINGERPRINT.to_le_bytes());
            r
        })
        .collect();
    // Same input, same output, before anything is timed.
    for (r, t) in records.iter().zip(&theirs_records) {
        let ours = avro::decode_single_object(r).unwrap();
        let theirs: ScanEvent = typed.read(&mut t.as_slice()).unwrap().into();
        assert_eq!(ours, theirs, "apache-avro and ours disagree");
    }

    let mut g = c.benchmark_group("avro_decode_100k");
    g.sample_size(10);
    g.throughput(Throughput::Elements(n as u64));
    g.bench_function("ours", |b| {
        b.iter(|| {
            for r in &records {
                black_box(avro::decode_single_object(r).unwrap());
            }
        })
    });
    g.bench_function("ours_canonical", |b| {
        b.iter(|| {
            for r in &records {
                black_box(avro::decode_canonical(r).unwrap());
            }
        })
    });
    g.bench_function("apache_avro_serde", |b| {
        b.iter(|| {
            for r in &theirs_records {
                let e: ScanEvent = typed.read(&mut r.as_slice()).unwrap().into();
                black_box(e);
            }
        })
    });
    g.bench_function("apache_avro_value", |b| {
        b.iter(|| {
            for r in &theirs_records {
                black_box(generic.read_value(&mut r.as_slice()).unwrap());
            }
        })
    });
    g.finish();
}

criterion_group!(avro_decode, decode);
criterion_main!(avro_decode);
