//! A stack test's own corner of the local stack (test builds only): a topic
//! and its dead-letter topic, a consumer group and a database, new each run,
//! so no test sees another's records, epochs, devices or leftovers, and tests
//! of one file may run side by side.
//!
//! `deploy/local/up` lets the services use the databases `sealtrail_lab_01`
//! to `sealtrail_lab_32` and gives them prefixed ACLs on `lab-` topics; each
//! test picks a slot of its own (see `SLOTS`), and a slot's database is
//! emptied when a test opens it.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::ClientConfig;

/// Who owns which slots, so two test files never open the same one.
pub mod slots {
    /// sealer/tests/pipeline.rs
    pub const PIPELINE: std::ops::RangeInclusive<u8> = 1..=9;
    /// sealer/tests/trail.rs
    pub const TRAIL: std::ops::RangeInclusive<u8> = 10..=12;
    /// ingest/tests/gateway.rs
    pub const GATEWAY: std::ops::RangeInclusive<u8> = 13..=21;
    /// ingest/tests/simulate.rs
    pub const SIMULATE: std::ops::RangeInclusive<u8> = 22..=22;
    /// sealer/tests/stack_plumbing.rs (its database only)
    pub const PLUMBING: std::ops::RangeInclusive<u8> = 23..=23;
    /// ingest/tests/epcis.rs
    pub const EPCIS: std::ops::RangeInclusive<u8> = 24..=24;
    /// ingest/tests/simulate.rs, packed shipments
    pub const SIMULATE_PACKED: std::ops::RangeInclusive<u8> = 25..=25;
}

/// A service a test started: sent SIGTERM and waited for when dropped, also
/// when the test fails.
pub struct Killed(pub std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status();
        let _ = self.0.wait();
    }
}

/// Partitions of a lab topic, as of `scan-events`.
pub const PARTITIONS: i32 = 12;

const KAFKA: &str = "127.0.0.1:9092";
const CLICKHOUSE: &str = "http://127.0.0.1:8123";

/// One test's topics, consumer group and database; the topics are deleted
/// when it is dropped, and the database too when the test passed (a failed
/// test's is kept to look at, and emptied by the next run).
#[derive(Debug)]
pub struct Lab {
    pub topic: String,
    pub dlq: String,
    pub group: String,
    pub database: String,
}

/// The local stack's state folder (credentials, ledger files).
pub fn state() -> PathBuf {
    schemas::kafka::checkout_state_dir()
}

/// A Kafka client of the local stack, authenticated as `user`.
pub fn kafka(user: &str) -> ClientConfig {
    let mut c = ClientConfig::new();
    for (k, v) in schemas::kafka::local(&state(), user).expect("local Kafka credentials") {
        c.set(k, v);
    }
    c.set("bootstrap.servers", KAFKA);
    c
}

impl Lab {
    /// Opens slot `slot`: new topics, a new group name, its database emptied
    /// and migrated.
    pub fn open(slot: u8) -> Lab {
        assert!((1..=32).contains(&slot), "lab slot {slot} is not in 1..=32");
        let stamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis();
        let lab = Lab {
            topic: format!("lab-{slot:02}-{stamp}-scan-events"),
            dlq: format!("lab-{slot:02}-{stamp}-scan-events-dlq"),
            group: format!("sealtrail-lab-{slot:02}-{stamp}"),
            database: format!("sealtrail_lab_{slot:02}"),
        };
        blocking(lab.migrate());
        let admin: AdminClient<DefaultClientContext> = kafka("admin").create().unwrap();
        let made = blocking(admin.create_topics(
            &[
                NewTopic::new(&lab.topic, PARTITIONS, TopicReplication::Fixed(1)),
                NewTopic::new(&lab.dlq, 1, TopicReplication::Fixed(1)),
            ],
            &AdminOptions::new().operation_timeout(Some(Duration::from_secs(30))),
        ))
        .unwrap();
        for r in made {
            assert!(r.is_ok(), "creating a lab topic: {r:?}");
        }
        // The topics are there once every partition has a leader.
        let probe: BaseConsumer = kafka("admin").create().unwrap();
        wait_until("the lab's topics", Duration::from_secs(30), || {
            probe
                .fetch_metadata(Some(&lab.topic), Duration::from_secs(2))
                .is_ok_and(|m| {
                    m.topics().first().is_some_and(|t| {
                        t.error().is_none()
                            && t.partitions().len() == PARTITIONS as usize
                            && t.partitions().iter().all(|p| p.leader() >= 0)
                    })
                })
        });
        lab
    }

    async fn migrate(&self) {
        // ClickHouse 18.16 has no RowBinaryWithNamesAndTypes to validate against.
        let server = clickhouse::Client::default()
            .with_url(CLICKHOUSE)
            .with_validation(false);
        server
            .query(&format!("DROP DATABASE IF EXISTS {}", self.database))
            .execute()
            .await
            .unwrap_or_else(|e| panic!("dropping {}: {e}", self.database));
        store::migrate::run(
            &server,
            &self.database,
            &store::migrate::MigrateArgs::quiet(),
        )
        .await
        .unwrap_or_else(|e| panic!("migrating {}: {e}", self.database));
    }

    /// Points a sealtrail command (sealer or ingest) at this lab: its topics,
    /// group and database, and the stack's state folder.
    pub fn env<'c>(&self, c: &'c mut Command) -> &'c mut Command {
        c.env("SEALTRAIL_KAFKA_TOPIC", &self.topic)
            .env("SEALTRAIL_KAFKA_DLQ_TOPIC", &self.dlq)
            .env("SEALTRAIL_SEALER_GROUP", &self.group)
            .env("SEALTRAIL_CLICKHOUSE_DATABASE", &self.database)
            .env("SEALTRAIL_STATE_DIR", state())
    }

    /// Waits until every one of these event ids is in an anchored epoch.
    pub fn wait_anchored(&self, event_ids: &[&str], within: Duration) {
        let ids: Vec<String> = event_ids.iter().map(|id| format!("'{id}'")).collect();
        let query = format!(
            "SELECT count() FROM sealtrail.scan_events ANY INNER JOIN \
             (SELECT epoch_id, argMax(status, version) AS s FROM sealtrail.epochs GROUP BY epoch_id) USING epoch_id \
             WHERE event_id IN ({}) AND s = 'anchored'",
            ids.join(",")
        );
        let deadline = Instant::now() + within;
        loop {
            let anchored = self.sql(&query);
            if anchored == event_ids.len().to_string() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{anchored} of {} events anchored in {within:?}",
                event_ids.len()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// A query as ClickHouse's admin, written against `sealtrail.` and run in
    /// the lab's database; its output, trimmed. Panics naming the query when
    /// ClickHouse refuses it.
    pub fn sql(&self, query: &str) -> String {
        let query = self.qualify(query);
        let out = Command::new("curl")
            .args([
                "-sS",
                "--fail-with-body",
                CLICKHOUSE,
                "--data-binary",
                &query,
            ])
            .output()
            .expect("running curl");
        let text = String::from_utf8_lossy(&out.stdout).trim().to_string();
        assert!(out.status.success(), "ClickHouse refused {query}: {text}");
        text
    }

    /// `query` with its `sealtrail.` tables (and `database = 'sealtrail'`
    /// filters) moved to the lab's database.
    pub fn qualify(&self, query: &str) -> String {
        query
            .replace("sealtrail.", &format!("{}.", self.database))
            .replace("'sealtrail'", &format!("'{}'", self.database))
    }

    /// The end offset of each partition of the lab's topic.
    pub fn end_offsets(&self) -> Vec<i64> {
        let c: BaseConsumer = kafka("admin").create().unwrap();
        (0..PARTITIONS)
            .map(|p| {
                c.fetch_watermarks(&self.topic, p, Duration::from_secs(5))
                    .unwrap()
                    .1
            })
            .collect()
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        if let Ok(admin) = kafka("admin").create::<AdminClient<DefaultClientContext>>() {
            let _ = blocking(admin.delete_topics(
                &[self.topic.as_str(), self.dlq.as_str()],
                &AdminOptions::new(),
            ));
        }
        if !std::thread::panicking() {
            let _ = Command::new("curl")
                .args(["-sf", CLICKHOUSE, "--data-binary"])
                .arg(format!("DROP DATABASE IF EXISTS {}", self.database))
                .status();
        }
    }
}

/// Runs `work` to its end on a runtime and a thread of its own, so a lab can
/// be opened and closed by plain tests and inside tokio's alike.
fn blocking<F>(work: F) -> F::Output
where
    F: std::future::Future + Send,
    F::Output: Send,
{
    std::thread::scope(|s| {
        s.spawn(|| {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime for the lab")
                .block_on(work)
        })
        .join()
        .expect("the lab's work panicked")
    })
}

/// Waits until `ready` holds, polling every 200 ms; fails naming `what` after `within`.
pub fn wait_until(what: &str, within: Duration, mut ready: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !ready() {
        assert!(Instant::now() < deadline, "{what}: not within {within:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
}
