//! Writes the seed corpora: a few valid events as Avro records (corpus/avro_record)
//! and as JSON bodies, single and batched (corpus/json_event).
//! Run from fuzz/: `cargo run --example seeds`.

use std::fs;
use std::path::Path;

use ed25519_dalek::SigningKey;
use schemas::avro::encode_single_object;
use schemas::json::to_json;
use schemas::signature::sign;
use schemas::{Action, BizStep, BizTransaction, BizTransactionType, Disposition, ScanEvent};

/// schemas' own test sample (event.rs `tests::sample`).
fn sample() -> ScanEvent {
    ScanEvent {
        event_id: "0f8fad5b-d9cb-469f-a165-70867728950e".into(),
        event_time: 1_764_064_800_123,
        event_timezone_offset: "+08:00".into(),
        action: Action::Observe,
        biz_step: BizStep::CustomsClearance,
        disposition: Disposition::CustomsReleased,
        item_ids: vec!["urn:epc:id:sgtin:0614141.812345.6789".into()],
        read_point: "urn:epc:id:sgln:0614141.00777.0".into(),
        biz_location: "urn:epc:id:sgln:0614141.00888.0".into(),
        country: "CN".into(),
        biz_transactions: vec![BizTransaction {
            kind: BizTransactionType::CustomsDeclaration,
            id: "CD-2026-000123".into(),
        }],
        temperature_c: Some(4.5),
        relative_humidity_pct: None,
        device_id: "scanner-sh-01".into(),
        signature: Vec::new(),
    }
}

fn events() -> Vec<(&'static str, ScanEvent)> {
    let key = SigningKey::from_bytes(&[42; 32]);
    let signed = |mut e: ScanEvent| {
        sign(&mut e, &key);
        e
    };
    let mut many = sample();
    many.event_id = "7c9e6679-7425-40de-944b-e07fc1f90ae7".into();
    many.event_timezone_offset = "-05:30".into();
    many.action = Action::Add;
    many.biz_step = BizStep::Packing;
    many.disposition = Disposition::InProgress;
    many.item_ids = (0..5)
        .map(|i| format!("urn:epc:id:sgtin:0614141.812345.{}", 6789 + i))
        .collect();
    many.biz_transactions.push(BizTransaction {
        kind: BizTransactionType::Po,
        id: "PO-4711".into(),
    });
    many.relative_humidity_pct = Some(61.3);

    let mut link = sample();
    link.event_id = "16fd2706-8baf-433b-82eb-8c7fada847da".into();
    link.event_timezone_offset = "+00:00".into();
    link.action = Action::Delete;
    link.biz_step = BizStep::Other;
    link.disposition = Disposition::Destroyed;
    link.item_ids = vec!["https://id.gs1.org/01/09506000134352/21/ABC123".into()];
    link.read_point = "https://id.gs1.org/414/0614141007770".into();
    link.biz_location = "https://id.gs1.org/414/0614141008880".into();
    link.country = "DE".into();
    link.biz_transactions.clear();
    link.temperature_c = None;
    link.device_id = "dock.door_3".into();

    vec![
        ("sample_unsigned", sample()),
        ("sample_signed", signed(sample())),
        ("many_items_signed", signed(many)),
        ("digital_link_signed", signed(link)),
    ]
}

fn write(dir: &Path, name: &str, bytes: &[u8]) {
    fs::create_dir_all(dir).unwrap();
    fs::write(dir.join(name), bytes).unwrap();
}

fn main() {
    let avro = Path::new("corpus/avro_record");
    let json = Path::new("corpus/json_event");
    let all = events();
    for (name, e) in &all {
        e.validate().unwrap_or_else(|err| panic!("seed {name} is invalid: {err}"));
        write(avro, &format!("seed_{name}"), &encode_single_object(e));
        write(
            json,
            &format!("seed_{name}.json"),
            serde_json::to_string_pretty(&to_json(e)).unwrap().as_bytes(),
        );
    }
    // The same event with item_ids as one block with a negative count and a byte size:
    // valid Avro, not the canonical encoding.
    let e = &all[2].1;
    let record = encode_single_object(e);
    let mut items = Vec::new();
    for id in &e.item_ids {
        put_long(&mut items, id.len() as i64);
        items.extend_from_slice(id.as_bytes());
    }
    let mut canonical_items = Vec::new();
    put_long(&mut canonical_items, e.item_ids.len() as i64);
    canonical_items.extend_from_slice(&items);
    let at = record
        .windows(canonical_items.len())
        .position(|w| w == canonical_items)
        .expect("item_ids block in the record");
    let mut sized = record[..at].to_vec();
    put_long(&mut sized, -(e.item_ids.len() as i64));
    put_long(&mut sized, items.len() as i64);
    sized.extend_from_slice(&items);
    sized.extend_from_slice(&record[at + canonical_items.len()..]);
    assert_eq!(
        schemas::avro::decode_single_object(&sized).as_ref().ok(),
        Some(e),
        "sized-block seed decodes to the same event"
    );
    write(avro, "seed_sized_block", &sized);

    // A batch body, as POSTed to /v1/events.
    let batch: Vec<_> = all.iter().map(|(_, e)| to_json(e)).collect();
    write(
        json,
        "seed_batch.json",
        serde_json::to_string(&batch).unwrap().as_bytes(),
    );
    println!("wrote {} seeds per target", all.len() + 1);
}

fn put_long(out: &mut Vec<u8>, v: i64) {
    let mut z = ((v << 1) ^ (v >> 63)) as u64;
    while z >= 0x80 {
        out.push((z as u8) | 0x80);
        z >>= 7;
    }
    out.push(z as u8);
}
