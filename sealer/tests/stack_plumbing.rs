//! Proves the wiring to the real local stack (deploy/local/up), not the product:
//! Kafka takes a record on `scan-events` and gives it back, ClickHouse stores and
//! returns a row through the `clickhouse` crate, anvil answers JSON-RPC, and
//! `sealer migrate` is applied and idempotent.
//!
//! The Kafka tests use the deployed topics themselves (their partitions and
//! ACLs are what they check), each with a consumer group of its own; the
//! ClickHouse ones a table or a lab database of their own.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use clickhouse::Row;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use serde::{Deserialize, Serialize};

const KAFKA: &str = "127.0.0.1:9092";
const CLICKHOUSE: &str = "http://127.0.0.1:8123";
const ANVIL: &str = "http://127.0.0.1:8545";

/// A Kafka client of the local stack, authenticated as `user` (deploy/local/up
/// writes the credentials).
fn kafka(user: &str) -> ClientConfig {
    let mut c = ClientConfig::new();
    for (k, v) in schemas::kafka::local(&schemas::kafka::checkout_state_dir(), user)
        .expect("local Kafka credentials")
    {
        c.set(k, v);
    }
    c
}

fn unique() -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{}-{nanos}", std::process::id())
}

#[tokio::test]
#[ignore = "needs the local stack (deploy/local/up); deploy/local/test runs it"]
async fn kafka_takes_a_record_on_scan_events_and_gives_it_back() {
    let producer: FutureProducer = kafka("scanner")
        .set("bootstrap.servers", KAFKA)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .create()
        .expect("producer");
    let key = format!("plumbing-{}", unique());
    let payload = format!("plumbing check {key}");
    let delivery = producer
        .send(
            FutureRecord::to("scan-events").key(&key).payload(&payload),
            Duration::from_secs(10),
        )
        .await
        .expect("Kafka acknowledged the record");

    let consumer: BaseConsumer = kafka("admin")
        .set("bootstrap.servers", KAFKA)
        .set("group.id", format!("plumbing-{}", unique()))
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(
        "scan-events",
        delivery.partition,
        Offset::Offset(delivery.offset),
    )
    .unwrap();
    consumer.assign(&tpl).expect("assign");
    let message = match consumer.poll(Duration::from_secs(10)) {
        Some(Ok(m)) => m,
        Some(Err(e)) => panic!("consume failed: {e}"),
        None => panic!("no record came back within 10 s"),
    };
    assert_eq!(message.partition(), delivery.partition);
    assert_eq!(message.offset(), delivery.offset);
    assert_eq!(message.key(), Some(key.as_bytes()));
    assert_eq!(message.payload(), Some(payload.as_bytes()));

    let metadata = consumer
        .fetch_metadata(Some("scan-events"), Duration::from_secs(5))
        .expect("metadata");
    assert_eq!(
        metadata.topics()[0].partitions().len(),
        12,
        "scan-events has 12 partitions"
    );
}

async fn try_produce(config: &mut ClientConfig, topic: &str) -> Result<(), String> {
    let producer: FutureProducer = config
        .set("bootstrap.servers", KAFKA)
        .set("message.timeout.ms", "5000")
        .create()
        .expect("producer");
    producer
        .send(
            FutureRecord::to(topic).key("intruder").payload("forged"),
            Duration::from_secs(10),
        )
        .await
        .map(|_| ())
        .map_err(|(e, _)| e.to_string())
}

/// Anyone who can reach the broker is not thereby a producer: an anonymous
/// client is refused, and each principal may do only its part.
#[tokio::test]
#[ignore = "needs the local stack (deploy/local/up); deploy/local/test runs it"]
async fn kafka_refuses_anonymous_clients_and_principals_outside_their_acls() {
    let anonymous = try_produce(&mut ClientConfig::new(), "scan-events").await;
    assert!(anonymous.is_err(), "an anonymous producer was accepted");

    let mut wrong = kafka("scanner");
    wrong.set("sasl.password", "not-the-password");
    assert!(
        try_produce(&mut wrong, "scan-events").await.is_err(),
        "a wrong password was accepted"
    );

    let dlq = try_produce(&mut kafka("gateway"), "scan-events-dlq").await;
    assert!(
        dlq.as_ref().is_err_and(|e| e.contains("uthoriz")),
        "the gateway may not write dead letters: {dlq:?}"
    );
    assert_eq!(
        try_produce(&mut kafka("gateway"), "scan-events").await,
        Ok(())
    );

    // A scanner may not read the topic.
    let consumer: BaseConsumer = kafka("scanner")
        .set("bootstrap.servers", KAFKA)
        .set("group.id", "sealtrail-sealer")
        .create()
        .expect("consumer");
    consumer.subscribe(&["scan-events"]).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    let refused = loop {
        match consumer.poll(Duration::from_millis(500)) {
            Some(Err(e)) => break e.to_string(),
            Some(Ok(_)) => panic!("a scanner read scan-events"),
            None => assert!(
                std::time::Instant::now() < deadline,
                "no refusal within 15 s"
            ),
        }
    };
    assert!(refused.contains("uthoriz"), "{refused}");
}

#[derive(Row, Serialize, Deserialize, Debug, PartialEq)]
struct Probe {
    id: u64,
    note: String,
    digest: [u8; 32],
}

#[tokio::test]
#[ignore = "needs the local stack (deploy/local/up); deploy/local/test runs it"]
async fn clickhouse_stores_and_returns_a_row() {
    let client = clickhouse::Client::default()
        .with_url(CLICKHOUSE)
        .with_database("default")
        .with_validation(false);
    let table = format!("plumbing_{}", unique().replace('-', "_"));
    client
        .query(&format!(
            "CREATE TABLE {table} (id UInt64, note String, digest FixedString(32)) ENGINE = Memory"
        ))
        .execute()
        .await
        .expect("create table");
    let row = Probe {
        id: 42,
        note: "sealtrail plumbing".into(),
        digest: [7u8; 32],
    };
    let mut insert = client.insert::<Probe>(&table).await.expect("insert");
    insert.write(&row).await.expect("write row");
    insert.end().await.expect("end insert");
    let back: Vec<Probe> = client
        .query(&format!("SELECT ?fields FROM {table}"))
        .fetch_all()
        .await
        .expect("select");
    client
        .query(&format!("DROP TABLE {table}"))
        .execute()
        .await
        .expect("drop");
    assert_eq!(back, vec![row]);
}

#[tokio::test]
#[ignore = "needs the local stack (deploy/local/up); deploy/local/test runs it"]
async fn anvil_answers_with_its_chain_id() {
    let response: serde_json::Value = reqwest::Client::new()
        .post(ANVIL)
        .json(
            &serde_json::json!({"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []}),
        )
        .send()
        .await
        .expect("anvil reachable")
        .json()
        .await
        .expect("JSON-RPC answer");
    assert_eq!(response["result"], "0x7a69", "chain id 31337: {response}");
}

#[tokio::test]
#[ignore = "needs the local stack (deploy/local/up); deploy/local/test runs it"]
async fn migrate_is_applied_once_and_idempotent() {
    let sealer = env!("CARGO_BIN_EXE_sealer");
    // From nothing: a database of its own, dropped first.
    let database = format!("sealtrail_lab_{:02}", lab::slots::PLUMBING.start());
    let client = clickhouse::Client::default()
        .with_url(CLICKHOUSE)
        .with_validation(false);
    client
        .query(&format!("DROP DATABASE IF EXISTS {database}"))
        .execute()
        .await
        .expect("drop the database");
    let run = |args: &[&str]| {
        let out = std::process::Command::new(sealer)
            .args(args)
            .env("SEALTRAIL_CLICKHOUSE_DATABASE", &database)
            .output()
            .expect("run sealer");
        assert!(
            out.status.success(),
            "sealer {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let first = run(&["migrate"]);
    let again = run(&["migrate"]);
    assert!(
        again.starts_with("schema is current"),
        "second migrate applied something: {again}"
    );
    let list = run(&["migrate", "--list"]);
    let known = list.lines().count() as u64;
    assert!(list.lines().all(|l| l.ends_with("applied")), "{list}");
    assert_eq!(
        first.lines().filter(|l| l.starts_with("applied ")).count() as u64,
        known,
        "the first run applied every migration: {first}"
    );

    let (rows, versions): (u64, u64) = client
        .query(&format!(
            "SELECT count(), uniqExact(version) FROM {database}.schema_migrations"
        ))
        .fetch_one()
        .await
        .expect("version table");
    assert_eq!(
        (rows, versions),
        (known, known),
        "each migration recorded exactly once"
    );
    let devices: u64 = client
        .query(&format!(
            "SELECT count() FROM system.tables WHERE database = '{database}' AND name = 'devices'"
        ))
        .fetch_one::<u64>()
        .await
        .expect("system.tables");
    assert_eq!(devices, 1, "migration 001 created {database}.devices");
    client
        .query(&format!("DROP DATABASE {database}"))
        .execute()
        .await
        .expect("drop the database");
}
