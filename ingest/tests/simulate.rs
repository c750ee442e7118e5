//! The simulator against the real stack: it puts exactly the events it was asked
//! for on its topic (counted by Kafka's own offsets, not by the simulator), each
//! one readable with the `.avsc` alone; the same seed writes the same corpus.

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
    let reader = apache_avro::GenericSingleObjectReader::new(schema).unwrap();
    let mut tpl = TopicPartitionList::new();
    for p in 0..lab::PARTITIONS {
        tpl.add_partition_offset(&lab.topic, p, Offset::Offset(0))
            .unwrap();
    }
    consumer.assign(&tpl).unwrap();
    let mut ids = HashSet::new();
    let mut decoded = 0;
    while decoded < 100_000 {
        let m = consumer
            .poll(Duration::from_secs(10))
            .expect("records keep coming")
            .unwrap();
        if m.offset() >= after[m.partition() as usize] {
            continue;
        }
        let value = reader
            .read_value(&mut m.payload().unwrap())
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
        decoded += 1;
    }
    assert_eq!(ids.len(), 100_000, "every event id is distinct");
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
