//! The simulator against the real stack: it puts exactly the events it was asked
//! for on its topic (counted by Kafka's own offsets, not by the simulator), each
//! one readable with the `.avsc` alone, by other people's Avro implementations
//! too (apache-avro, fastavro, the Java reference); the same seed writes the same
//! corpus.

use std::collections::HashSet;
use std::process::Command;
use std::time::Duration;

use apache_avro::types::Value;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};

const INGEST: &str = env!("CARGO_BIN_EXE_ingest");

#[test]
#[ignore = "needs the local stack (deploy/local/up); deploy/local/test runs it"]
fn simulate_puts_exactly_100000_decodable_records_on_the_topic() {
    // A topic of its own: every record on it is the simulator's.
    let lab = lab::Lab::open(*lab::slots::SIMULATE.start());
    let consumer: BaseConsumer = lab::kafka("admin")
        .set("group.id", format!("simulate-test-{}", std::process::id()))
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let out = lab
        .env(&mut Command::new(INGEST))
        .args([
            "simulate", "--events", "100000", "--seed", "1", "--items", "2000",
        ])
        .output()
        .expect("run simulate");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "simulate failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("sent=100000 acknowledged=100000 failed=0"),
        "{stdout}"
    );
    let after = lab.end_offsets();
    let added: i64 = after.iter().sum();
    assert_eq!(
        added, 100_000,
        "Kafka's offsets grew by exactly the events sent"
    );

    // Decode every one with nothing but the schema file.
    let schema = apache_avro::Schema::parse_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../schemas/scan_event.avsc"
        ))
        .unwrap(),
    )
    .unwrap();
    let mut tpl = TopicPartitionList::new();
    for p in 0..lab::PARTITIONS {
        tpl.add_partition_offset(&lab.topic, p, Offset::Offset(0))
            .unwrap();
    }
    consumer.assign(&tpl).unwrap();
    let mut ids = HashSet::new();
    let mut values = Vec::with_capacity(100_000);
    while values.len() < 100_000 {
        let m = consumer
            .poll(Duration::from_secs(10))
            .expect("records keep coming")
            .unwrap();
        if m.offset() >= after[m.partition() as usize] {
            continue;
        }
        let payload = m.payload().unwrap();
        // apache-avro's single-object reader expects its own fingerprint, not the
        // specification's (see schemas::avro::LEGACY_FINGERPRINT): read the datum.
        assert_eq!(&payload[..2], &[0xC3, 0x01]);
        assert_eq!(&payload[2..10], &schemas::avro::FINGERPRINT.to_le_bytes());
        let value = apache_avro::from_avro_datum(&schema, &mut &payload[10..], None)
            .expect("decodes with the .avsc alone");
        let Value::Record(fields) = value else {
            panic!("not a record")
        };
        let Value::Uuid(id) = &fields[0].1 else {
            panic!("event_id is not a uuid: {:?}", fields[0])
        };
        let Value::Array(items) = &fields[6].1 else {
            panic!("item_ids")
        };
        let Value::String(first) = &items[0] else {
            panic!("item id")
        };
        assert_eq!(
            m.key(),
            Some(first.as_bytes()),
            "keyed by the first item id"
        );
        ids.insert(*id);
        values.push(payload.to_vec());
    }
    assert_eq!(ids.len(), 100_000, "every event id is distinct");
    decoded_alike_by_fastavro_and_the_java_reference(&values);
}

/// Packed shipments put both record types on the topic: scan events for the
/// items' own scans, EPCIS events for the packings and the containers' scans,
/// each keyed by the item it is filed under, and other people's readers
/// decode both with the two `.avsc` files.
#[test]
#[ignore = "needs the local stack (deploy/local/up); deploy/local/test runs it"]
fn packed_shipments_put_both_schemas_on_the_topic_and_other_readers_decode_them() {
    let lab = lab::Lab::open(*lab::slots::SIMULATE_PACKED.start());
    let consumer: BaseConsumer = lab::kafka("admin")
        .set(
            "group.id",
            format!("simulate-packed-{}", std::process::id()),
        )
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let out = lab
        .env(&mut Command::new(INGEST))
        .args([
            "simulate",
            "--events",
            "6000",
            "--seed",
            "3",
            "--shipments",
            "4",
        ])
        .output()
        .expect("run simulate");
    assert!(
        out.status.success(),
        "simulate failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let after = lab.end_offsets();
    assert_eq!(after.iter().sum::<i64>(), 6_000);
    let mut tpl = TopicPartitionList::new();
    for p in 0..lab::PARTITIONS {
        tpl.add_partition_offset(&lab.topic, p, Offset::Offset(0))
            .unwrap();
    }
    consumer.assign(&tpl).unwrap();
    let mut values = Vec::with_capacity(6_000);
    let (mut scans, mut packings, mut containers) = (0, 0, 0);
    while values.len() < 6_000 {
        let m = consumer
            .poll(Duration::from_secs(10))
            .expect("records keep coming")
            .unwrap();
        let payload = m.payload().unwrap();
        let (event, _) = schemas::leaf::decode_record(payload).expect("decodes");
        assert_eq!(m.key(), Some(event.key().as_bytes()), "keyed by its item");
        match event.as_epcis() {
            None => scans += 1,
            Some((_, f)) if f.kind == schemas::epcis_event::EventType::Aggregation => packings += 1,
            Some(_) => containers += 1,
        }
        values.push(payload.to_vec());
    }
    assert!(
        scans > 0 && packings > 0 && containers > 0,
        "{scans} scans, {packings} packings, {containers} container scans"
    );
    decoded_alike_by_fastavro_and_the_java_reference(&values);
}

/// The records' values, each as a 4-byte big-endian length and its bytes: what
/// the decoders in `tests/interop` read.
fn write_records(values: &[Vec<u8>]) -> std::path::PathBuf {
    let path = std::env::temp_dir().join(format!("interop-{}.records", std::process::id()));
    let mut file = Vec::new();
    for v in values {
        file.extend_from_slice(&(v.len() as u32).to_be_bytes());
        file.extend_from_slice(v);
    }
    std::fs::write(&path, file).unwrap();
    path
}

/// One line per record as the interop decoders print it: the fields in schema
/// order, floats as the hex of their little-endian bytes.
fn line_of(e: &schemas::ScanEvent) -> String {
    let float = |v: Option<f32>| v.map_or("null".to_string(), |f| hex::encode(f.to_le_bytes()));
    [
        e.event_id.clone(),
        e.event_time.to_string(),
        e.event_timezone_offset.clone(),
        e.action.as_str().to_string(),
        e.biz_step.as_str().to_string(),
        e.disposition.as_str().to_string(),
        e.item_ids.join(","),
        e.read_point.clone(),
        e.biz_location.clone(),
        e.country.clone(),
        e.biz_transactions
            .iter()
            .map(|t| format!("{}:{}", t.kind.as_str(), t.id))
            .collect::<Vec<_>>()
            .join(";"),
        float(e.temperature_c),
        float(e.relative_humidity_pct),
        e.device_id.clone(),
        hex::encode(&e.signature),
    ]
    .join("|")
}

fn run(what: &str, c: &mut Command) -> Vec<String> {
    let out = c
        .output()
        .unwrap_or_else(|e| panic!("could not run {what}: {e}"));
    assert!(
        out.status.success(),
        "{what} could not decode our records: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

/// Other people's readers see every field of every record as we wrote it.
fn decoded_alike_by_fastavro_and_the_java_reference(values: &[Vec<u8>]) {
    let interop = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/interop");
    let avsc = concat!(env!("CARGO_MANIFEST_DIR"), "/../schemas/scan_event.avsc");
    let epcis_avsc = concat!(env!("CARGO_MANIFEST_DIR"), "/../schemas/epcis_event.avsc");
    let ours: Vec<String> = values
        .iter()
        .map(|v| match schemas::leaf::decode_record(v).unwrap().0 {
            schemas::leaf::LeafEvent::Scan(e) => line_of(&e),
            schemas::leaf::LeafEvent::Epcis(k) => [
                "epcis".to_string(),
                k.record.event_id.clone(),
                hex::encode(k.record.event.as_bytes()),
                k.record.device_id.clone(),
                hex::encode(&k.record.signature),
            ]
            .join("|"),
        })
        .collect();
    let records = write_records(values);

    let fastavro = run(
        "fastavro (python3 -m pip install fastavro)",
        Command::new("python3")
            .arg(format!("{interop}/decode_records.py"))
            .arg(avsc)
            .arg(epcis_avsc)
            .arg(&records),
    );
    let libs = std::env::var_os("SEALTRAIL_AVRO_LIBS")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| lab::state().join("avro/libs"));
    assert!(
        libs.join("avro-1.12.2.jar").exists(),
        "the Java Avro reference is not in {} (deploy/local/test copies it there from Maven Central)",
        libs.display()
    );
    let java = run(
        "java with the Avro reference",
        Command::new("java")
            .arg("-cp")
            .arg(format!("{}/*", libs.display()))
            .arg(format!("{interop}/DecodeRecords.java"))
            .arg(avsc)
            .arg(epcis_avsc)
            .arg(&records),
    );
    std::fs::remove_file(&records).unwrap();
    for (name, theirs) in [("fastavro", &fastavro), ("the Java reference", &java)] {
        assert_eq!(theirs.len(), ours.len(), "{name} decoded every record");
        for (i, (a, b)) in theirs.iter().zip(&ours).enumerate() {
            assert_eq!(a, b, "{name} reads record {i} otherwise");
        }
    }
}

#[test]
fn the_same_seed_writes_the_same_corpus() {
    let dir = std::env::temp_dir();
    let write = |seed: &str, name: &str| {
        let path = dir.join(format!("{name}-{}.corpus", std::process::id()));
        let out = Command::new(INGEST)
            .env("SEALTRAIL_STATE_DIR", schemas::kafka::checkout_state_dir())
            .args([
                "simulate",
                "--events",
                "5000",
                "--seed",
                seed,
                "--write-corpus",
                path.to_str().unwrap(),
            ])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let bytes = std::fs::read(&path).unwrap();
        std::fs::remove_file(path).unwrap();
        bytes
    };
    let (a, b, c) = (write("9", "a"), write("9", "b"), write("10", "c"));
    assert!(a.len() > 5000 * 200);
    assert_eq!(a, b);
    assert_ne!(a, c);
}

#[test]
fn simulate_refuses_to_run_without_a_limit() {
    let out = Command::new(INGEST)
        .env("SEALTRAIL_STATE_DIR", schemas::kafka::checkout_state_dir())
        .args(["simulate"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--events N or --duration SECONDS"));
}
