//! The gateway against the real stack: signed events are accepted only after Kafka
//! has them; every kind of bad input gets its status and a body naming the
//! problem, and the gateway keeps serving; revoked devices and overload are refused.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ed25519_dalek::SigningKey;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use schemas::{avro, json, signature, Action, BizStep, Disposition, ScanEvent};
use serde_json::{json, Value};

const INGEST: &str = env!("CARGO_BIN_EXE_ingest");

use lab::{kafka, Lab};

/// Opens the test's lab in `slot` (of `lab::slots::GATEWAY`): its own topic
/// and database, so the tests of this file run side by side.
fn open_lab(slot: u8) -> Lab {
    assert!(lab::slots::GATEWAY.contains(&slot));
    Lab::open(slot)
}

struct Gateway {
    child: Child,
    url: String,
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

use web::probe::{free_port, wait_ready};

fn start_gateway(lab: &Lab, port: u16, extra: &[&str]) -> Gateway {
    spawn_gateway(lab, port, extra, None)
}

/// A gateway whose stderr goes to `log`.
fn start_gateway_logging(lab: &Lab, port: u16, extra: &[&str], log: &Path) -> Gateway {
    spawn_gateway(lab, port, extra, Some(log))
}

fn spawn_gateway(lab: &Lab, port: u16, extra: &[&str], log: Option<&Path>) -> Gateway {
    let stderr = match log {
        Some(log) => Stdio::from(std::fs::File::create(log).unwrap()),
        None => Stdio::inherit(),
    };
    let child = lab
        .env(&mut Command::new(INGEST))
        // As the gateway's own, read-only ClickHouse user.
        .env("SEALTRAIL_CLICKHOUSE_USER", "gateway")
        .env(
            "SEALTRAIL_CLICKHOUSE_PASSWORD_FILE",
            lab::state().join("clickhouse/users/gateway.password"),
        )
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .args(if extra.contains(&"--device-refresh-ms") {
            &[][..]
        } else {
            &["--device-refresh-ms", "200"][..]
        })
        .args(extra)
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn()
        .expect("start ingest serve");
    let mut gateway = Gateway {
        child,
        url: format!("http://127.0.0.1:{port}"),
    };
    wait_ready("the gateway", &mut gateway.child, port, "/readyz", log);
    gateway
}

async fn metrics_of(url: &str) -> String {
    reqwest::get(format!("{url}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

fn unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{prefix}-{}-{nanos}", std::process::id())
}

/// Registers a fresh device with `ingest device add` and returns its signing key.
fn add_device(lab: &Lab, name: &str) -> SigningKey {
    let dir = std::env::temp_dir().join(unique("keys"));
    let out = lab
        .env(&mut Command::new(INGEST))
        .args(["device", "add", name, "--keys-dir", dir.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "device add: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let path = dir.join(format!("{name}.key"));
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
        0o600,
        "private key is 0600"
    );
    let seed: [u8; 32] = hex::decode(std::fs::read_to_string(&path).unwrap().trim())
        .unwrap()
        .try_into()
        .unwrap();
    SigningKey::from_bytes(&seed)
}

/// A minute before this test process started: within the gateway's time bounds,
/// and the same for every event rebuilt later.
fn test_time_ms() -> i64 {
    static T: std::sync::OnceLock<i64> = std::sync::OnceLock::new();
    *T.get_or_init(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64
            - 60_000
    })
}

fn event(device: &str, key: &SigningKey, serial: u64) -> ScanEvent {
    // Unique per run and device, the same for the same serial: tests rebuild an
    // event to look for it on Kafka.
    let salt = device.bytes().fold(0u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    });
    let id = format!(
        "{:08x}-{:04x}-4000-8000-{:012x}",
        std::process::id(),
        salt & 0xffff,
        serial
    );
    let mut e = ScanEvent {
        event_id: id,
        event_time: test_time_ms(),
        event_timezone_offset: "+08:00".into(),
        action: Action::Observe,
        biz_step: BizStep::CustomsClearance,
        disposition: Disposition::CustomsReleased,
        item_ids: vec![format!("urn:epc:id:sgtin:0614141.812345.{serial}")],
        read_point: "urn:epc:id:sgln:0614141.00777.0".into(),
        biz_location: "urn:epc:id:sgln:0614141.00888.0".into(),
        country: "CN".into(),
        biz_transactions: vec![],
        temperature_c: Some(5.5),
        relative_humidity_pct: None,
        device_id: device.into(),
        signature: vec![],
    };
    signature::sign(&mut e, key);
    e
}

async fn post(url: &str, body: impl Into<reqwest::Body>) -> (u16, Value, Option<String>) {
    let r = reqwest::Client::new()
        .post(format!("{url}/v1/events"))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .expect("gateway answers");
    let status = r.status().as_u16();
    let retry = r
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_string());
    let body = r.json().await.unwrap_or(Value::Null);
    (status, body, retry)
}

/// Every record on the lab's topic after the end offsets `from`, decoded.
fn records_since(lab: &Lab, from: &[i64]) -> Vec<ScanEvent> {
    let to = lab.end_offsets();
    let c: BaseConsumer = kafka("admin")
        .set("group.id", unique("gateway-test"))
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    // Read each partition exactly up to the end offset seen now: a count of
    // records would wait for ones that never come when the gateway lost some.
    let mut tpl = TopicPartitionList::new();
    let mut remaining: std::collections::HashMap<i32, i64> = Default::default();
    for (p, (start, end)) in (0..).zip(from.iter().zip(&to)) {
        if end > start {
            tpl.add_partition_offset(&lab.topic, p, Offset::Offset(*start))
                .unwrap();
            remaining.insert(p, *end);
        }
    }
    let mut out = Vec::new();
    if remaining.is_empty() {
        return out;
    }
    c.assign(&tpl).unwrap();
    while !remaining.is_empty() {
        let m = c
            .poll(Duration::from_secs(10))
            .expect("records arrive")
            .unwrap();
        let Some(&end) = remaining.get(&m.partition()) else {
            continue;
        };
        if m.offset() >= end {
            remaining.remove(&m.partition());
            continue;
        }
        if let Ok(e) = avro::decode_single_object(m.payload().unwrap_or_default()) {
            out.push(e);
        }
        if m.offset() + 1 >= end {
            remaining.remove(&m.partition());
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs the local stack (deploy/local/up); deploy/local/test runs it"]
async fn gateway_accepts_signed_events_refuses_bad_input_and_keeps_serving() {
    let lab = open_lab(13);
    let device = unique("gw").replace('-', "");
    let key = add_device(&lab, &device);
    let gw = start_gateway(&lab, free_port(), &[]);
    let url = gw.url.as_str();

    let before = lab.end_offsets();
    let good: Vec<Value> = (1..=3)
        .map(|i| json::to_json(&event(&device, &key, i)))
        .collect();
    let (status, body, _) = post(url, json!(good).to_string()).await;
    assert_eq!((status, &body), (202, &json!({"accepted": 3})));
    let (status, _, _) = post(url, good[0].to_string().replace("812345.1", "812345.9")).await;
    assert_eq!(status, 401, "editing a signed event breaks its signature");
    let single = json::to_json(&event(&device, &key, 4));
    assert_eq!(
        post(url, single.to_string()).await.0,
        202,
        "a single object is accepted too"
    );
    let landed = records_since(&lab, &before);
    for i in 1..=4u64 {
        let e = event(&device, &key, i);
        assert!(
            landed.contains(&e),
            "event {i} is on the topic, byte for byte"
        );
    }

    let ok = json::to_json(&event(&device, &key, 10));
    let with = |f: &dyn Fn(&mut Value)| {
        let mut v = ok.clone();
        f(&mut v);
        json!([v]).to_string()
    };
    let other_key = SigningKey::from_bytes(&[7; 32]);
    let mut forged = event(&device, &other_key, 11);
    forged.device_id = device.clone();
    let cases: Vec<(&str, String, u16, &str, Option<&str>)> = vec![
        (
            "malformed JSON",
            "[{\"event_id\": ".into(),
            400,
            "malformed_json",
            None,
        ),
        (
            "unknown field",
            with(&|v| v["colour"] = json!("red")),
            422,
            "invalid_field",
            Some("events[0].colour"),
        ),
        (
            "wrong type",
            with(&|v| v["country"] = json!(86)),
            422,
            "invalid_field",
            Some("events[0].country"),
        ),
        (
            "missing field",
            with(&|v| {
                v.as_object_mut().unwrap().remove("biz_step");
            }),
            422,
            "invalid_field",
            Some("events[0].biz_step"),
        ),
        (
            "oversized body",
            format!("[\"{}\"]", "x".repeat(3 * 1024 * 1024)),
            413,
            "body_too_large",
            None,
        ),
        (
            "unknown device",
            with(&|v| v["device_id"] = json!("nobody-here")),
            401,
            "unknown_device",
            Some("device_id"),
        ),
        (
            "bad signature",
            json!([json::to_json(&forged)]).to_string(),
            401,
            "bad_signature",
            Some("signature"),
        ),
        (
            "duplicate event id",
            json!([ok, ok]).to_string(),
            422,
            "duplicate_event_id",
            Some("events[1].event_id"),
        ),
        ("empty array", "[]".into(), 422, "empty_batch", None),
    ];
    for (name, body, status, reason, field) in cases {
        let (got, answer, _) = post(url, body).await;
        assert_eq!(got, status, "{name}: {answer}");
        assert_eq!(answer["error"], reason, "{name}: {answer}");
        assert!(
            answer["problem"].as_str().is_some_and(|p| p.len() > 5),
            "{name} explains itself: {answer}"
        );
        if let Some(field) = field {
            assert_eq!(answer["field"], field, "{name}: {answer}");
        }
    }
    let (status, _, _) = post(url, json!([ok]).to_string()).await;
    assert_eq!(status, 202, "still serving after every bad request");

    let metrics = metrics_of(url).await;
    assert!(
        metrics.contains("sealtrail_ingest_accepted_events_total 5"),
        "{metrics}"
    );
    for reason in [
        "malformed_json",
        "invalid_field",
        "body_too_large",
        "unknown_device",
        "bad_signature",
        "empty_batch",
    ] {
        assert!(
            metrics.contains(&format!(
                "sealtrail_ingest_rejected_requests_total{{reason=\"{reason}\"}}"
            )),
            "{reason}"
        );
    }
    assert!(metrics.contains("sealtrail_ingest_produce_latency_seconds_bucket"));
    let ready = reqwest::get(format!("{url}/readyz")).await.unwrap();
    assert_eq!(ready.status(), 200);
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs the local stack (deploy/local/up); deploy/local/test runs it"]
async fn a_device_added_while_serving_is_accepted_at_once_and_refused_once_revoked() {
    let lab = open_lab(14);
    let gw = start_gateway(&lab, free_port(), &["--device-refresh-ms", "3600000"]);
    let running = start_gateway(&lab, free_port(), &[]);
    let device = unique("rv").replace('-', "");
    let key = add_device(&lab, &device);
    assert_eq!(
        post(&gw.url, json::to_json(&event(&device, &key, 1)).to_string())
            .await
            .0,
        202
    );
    // The running gateway meets the device before it is revoked, so what it
    // learns below comes from its periodic refresh, not from the re-read an
    // unknown device triggers.
    assert_eq!(
        post(
            &running.url,
            json::to_json(&event(&device, &key, 3)).to_string()
        )
        .await
        .0,
        202,
        "the running gateway knows the device as active"
    );
    let out = lab
        .env(&mut Command::new(INGEST))
        .args(["device", "revoke", &device])
        .output()
        .unwrap();
    assert!(out.status.success());
    let list = lab
        .env(&mut Command::new(INGEST))
        .args(["device", "list"])
        .output()
        .unwrap();
    let listed = String::from_utf8(list.stdout).unwrap();
    assert!(
        listed
            .lines()
            .any(|l| l.starts_with(&device) && l.contains("revoked")),
        "{listed}"
    );
    // A gateway that was already running learns of it at its next refresh
    // (every 200 ms): accepted until then, refused from then on.
    let deadline = Instant::now() + Duration::from_secs(10);
    for serial in 4.. {
        let (status, body, _) = post(
            &running.url,
            json::to_json(&event(&device, &key, serial)).to_string(),
        )
        .await;
        if status == 401 {
            assert_eq!(body["error"], "revoked_device", "{body}");
            break;
        }
        assert_eq!(status, 202, "before the refresh: {body}");
        assert!(
            Instant::now() < deadline,
            "the running gateway still takes the revoked device's events"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs the local stack (deploy/local/up); deploy/local/test runs it"]
async fn overload_is_answered_503_with_retry_after() {
    let lab = open_lab(15);
    let device = unique("ov").replace('-', "");
    let key = add_device(&lab, &device);
    let gw = start_gateway(&lab, free_port(), &["--max-in-flight", "1"]);
    let batch = json!([
        json::to_json(&event(&device, &key, 1)),
        json::to_json(&event(&device, &key, 2))
    ]);
    let (status, body, retry) = post(&gw.url, batch.to_string()).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (503, Some("overloaded")),
        "{body}"
    );
    assert_eq!(retry.as_deref(), Some("1"));
    assert_eq!(body["accepted"], 0);
}

/// Signed events are public (the trail API hands out every payload): a forged
/// event carrying a genuine event's device and signature is refused, in the same
/// batch as the genuine one, and nothing of that batch reaches Kafka. So is an
/// event whose time the device pushed into the future.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs the local stack (deploy/local/up); deploy/local/test runs it"]
async fn a_signature_reused_in_a_batch_or_a_future_time_is_refused() {
    let lab = open_lab(16);
    let device = unique("reuse").replace('-', "");
    let key = add_device(&lab, &device);
    let gw = start_gateway(&lab, free_port(), &[]);
    let before = lab.end_offsets();

    let genuine = event(&device, &key, 1);
    let mut forged = event(&device, &key, 2);
    forged.country = "DE".into();
    forged.signature = genuine.signature.clone();
    let body = json!([json::to_json(&genuine), json::to_json(&forged)]).to_string();
    let (status, body, _) = post(&gw.url, body).await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["error"], "bad_signature");
    assert_eq!(body["field"], "events[1].signature");

    let mut future = event(&device, &key, 3);
    future.event_time += 3_600_000;
    signature::sign(&mut future, &key);
    let (status, body, _) = post(&gw.url, json::to_json(&future).to_string()).await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"], "event_time_in_future");
    assert_eq!(body["field"], "event_time");

    assert_eq!(
        records_since(&lab, &before).len(),
        0,
        "nothing of the refused requests is on the topic"
    );
}

/// Rows a test writes in its lab's database to make ids look sealed (the
/// database goes with the lab). Their epoch ids close in 1970: no sealer
/// makes such an id.
struct SealedRows {
    epoch_ids: [u64; 2],
    item_id: String,
}

impl SealedRows {
    fn new() -> Self {
        let epoch = 1_000 << 16;
        SealedRows {
            epoch_ids: [epoch, epoch + 1],
            item_id: format!("urn:test:gateway-sealed:{}", unique("item")),
        }
    }

    /// An event row for `e` in the first epoch, which gets its epoch row
    /// (`sealed`), or in the second, which does not (an interrupted epoch).
    fn add(&self, lab: &Lab, e: &ScanEvent, sealed: bool) {
        let epoch = self.epoch_ids[usize::from(!sealed)];
        lab.sql(&format!(
            "INSERT INTO sealtrail.scan_events (event_id, item_id, item_ids, device_id, epoch_id, sealed_at, event_hash) \
             VALUES ('{}', '{item}', ['{item}'], '{}', {epoch}, now(), '{}')",
            e.event_id,
            e.device_id,
            schemas::event_hash::event_hash(e),
            item = self.item_id
        ));
        if sealed {
            lab.sql(&format!(
                "INSERT INTO sealtrail.epochs (epoch_id, instance, status, version) \
                 VALUES ({epoch}, 'gateway-test', 'anchored', 1)"
            ));
        }
    }
}

/// An id the gateway can see is sealed gets 409 naming its field; so does the
/// same event under a new id (its GS1 event hash is sealed), and one request
/// holding an event twice under two ids is refused. An id that is not sealed
/// (never written, or only in an epoch that never got its row) passes.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs the local stack (deploy/local/up); deploy/local/test runs it"]
async fn an_event_id_sealed_before_is_refused_409_and_the_others_pass() {
    let lab = open_lab(17);
    let device = unique("dup").replace('-', "");
    let key = add_device(&lab, &device);
    let (sealed, fresh, orphan) = (
        event(&device, &key, 1),
        event(&device, &key, 2),
        event(&device, &key, 3),
    );
    let rows = SealedRows::new();
    rows.add(&lab, &sealed, true);
    rows.add(&lab, &orphan, false);
    // One event in flight at most: a batch of two passes the sealed-id check and
    // is then answered 503 "overloaded", so waiting for the filter lands nothing.
    let gw = start_gateway(
        &lab,
        free_port(),
        &["--max-in-flight", "1", "--seen-refresh-ms", "200"],
    );
    let batch = json!([json::to_json(&fresh), json::to_json(&sealed)]).to_string();
    let deadline = Instant::now() + Duration::from_secs(30);
    let body = loop {
        let (status, body, _) = post(&gw.url, batch.clone()).await;
        if status == 409 {
            break body;
        }
        assert_eq!(
            (status, body["error"].as_str()),
            (503, Some("overloaded")),
            "{body}"
        );
        assert!(Instant::now() < deadline, "the sealed id was never refused");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(body["error"], "duplicate_event_id", "{body}");
    assert_eq!(body["field"], "events[1].event_id", "{body}");
    assert!(
        body["problem"]
            .as_str()
            .is_some_and(|p| p.contains(&sealed.event_id)),
        "{body}"
    );
    let before = lab.end_offsets();
    let (status, body, _) = post(&gw.url, json::to_json(&sealed).to_string()).await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(
        body["field"], "event_id",
        "a single object names the bare field"
    );
    // Signed again by its device under a fresh id: refused by its hash.
    let under_new_id = |e: &ScanEvent, n: u64| {
        let mut again = e.clone();
        again.event_id = format!("{}-{n:012x}", &e.event_id[..23]).replace("-8000-", "-9000-");
        signature::sign(&mut again, &key);
        again
    };
    let resealed = under_new_id(&sealed, 1);
    let (status, body, _) = post(&gw.url, json::to_json(&resealed).to_string()).await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["field"], "event_id", "{body}");
    // Its id was never sealed: the 409 is its hash's.
    assert!(
        body["problem"]
            .as_str()
            .is_some_and(|p| p.contains(&resealed.event_id)),
        "{body}"
    );
    let twice = under_new_id(&fresh, 2);
    let (status, body, _) = post(
        &gw.url,
        json!([json::to_json(&fresh), json::to_json(&twice)]).to_string(),
    )
    .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"], "duplicate_event", "{body}");
    assert_eq!(body["field"], "events[1].event_id", "{body}");
    for e in [&fresh, &orphan] {
        let (status, body, _) = post(&gw.url, json::to_json(e).to_string()).await;
        assert_eq!(status, 202, "{}: {body}", e.event_id);
    }
    let landed = records_since(&lab, &before);
    assert!(landed.contains(&fresh) && landed.contains(&orphan));
    assert!(
        !landed.contains(&sealed) && !landed.contains(&resealed) && !landed.contains(&twice),
        "a refused event reaches no Kafka"
    );
}

/// A request that runs out of time names the events Kafka acknowledged before
/// it did, so a client resends only the others. The timeout is fixed and the
/// signature checks take a time that grows with the batch: the batch size is
/// bisected until the timeout falls while acknowledgements come in. The
/// producer sends one record per request, one request at a time, so the
/// acknowledgements of a batch are spread over a window far wider than the
/// jitter of a shared machine (with the defaults they arrive at nearly once).
#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs the local stack (deploy/local/up); deploy/local/test runs it"]
async fn a_timeout_names_the_events_kafka_acknowledged_before_it() {
    let lab = open_lab(18);
    let device = unique("to").replace('-', "");
    let key = add_device(&lab, &device);
    let gw = start_gateway(
        &lab,
        free_port(),
        &[
            "--request-timeout-ms",
            "250",
            "--max-batch",
            "16000",
            "--max-body-bytes",
            "67108864",
            "--kafka-option",
            "linger.ms=0,batch.num.messages=1,max.in.flight.requests.per.connection=1",
            // Batches of thousands from one device: no quota in the way.
            "--device-events-per-second",
            "1e9",
            "--device-burst",
            "1e9",
        ],
    );
    let mut serial = 0u64;
    let mut batch = |n: usize| -> (Vec<ScanEvent>, String) {
        let events: Vec<ScanEvent> = (0..n)
            .map(|_| {
                serial += 1;
                event(&device, &key, serial)
            })
            .collect();
        let body = json!(events.iter().map(json::to_json).collect::<Vec<_>>()).to_string();
        (events, body)
    };
    // The first produce waits for the connection and the topic's metadata,
    // which may take longer than the timeout: not part of the search. The
    // same after a stall of the broker (a batch of one timing out).
    reach_kafka(&gw.url, || batch(1).1).await;
    // What was tried is printed if nothing fits: (size, status, accepted, ms since the start).
    // lo: answered 202; hi: timed out before Kafka acknowledged anything. How
    // long a request takes varies a little, so near the boundary sizes on
    // either side of it are tried until the timeout falls inside the acks.
    let (mut lo, mut hi) = (1usize, 16_000usize);
    let mut tried = Vec::new();
    let t0 = Instant::now();
    for _ in 0..60 {
        let n = (lo + hi) / 2;
        let (events, body) = batch(n);
        let before = lab.end_offsets();
        let (status, answer, retry) = post(&gw.url, body).await;
        tried.push((
            n,
            status,
            answer["accepted"].clone(),
            t0.elapsed().as_millis(),
        ));
        if status == 202 {
            lo = n;
            hi = hi.max(lo + 32);
            continue;
        }
        assert_eq!(
            (status, answer["error"].as_str()),
            (503, Some("timeout")),
            "{answer}"
        );
        assert_eq!(retry.as_deref(), Some("2"));
        let ids: Vec<&str> = answer["accepted_event_ids"]
            .as_array()
            .expect("a timeout lists the ids accepted")
            .iter()
            .map(|v| v.as_str().expect("ids are strings"))
            .collect();
        assert_eq!(answer["accepted"], ids.len(), "{answer}");
        if ids.is_empty() {
            if n == 1 {
                // Not even one event within the timeout: the broker stalled
                // (a moment of I/O after a restart, say). Wait it out and
                // search again from the top; this try does not count.
                reach_kafka(&gw.url, || batch(1).1).await;
                (lo, hi) = (1, 16_000);
                continue;
            }
            hi = n;
            lo = lo.min(hi.saturating_sub(32)).max(1);
            continue;
        }
        let sent: std::collections::HashSet<&str> =
            events.iter().map(|e| e.event_id.as_str()).collect();
        let landed: std::collections::HashSet<String> = records_since(&lab, &before)
            .into_iter()
            .map(|e| e.event_id)
            .collect();
        assert!(
            ids.iter()
                .all(|id| sent.contains(id) && landed.contains(*id)),
            "every id listed is one of the request's, on the topic"
        );
        return;
    }
    panic!("no batch timed out while Kafka acknowledged it: {tried:?}");
}

/// Posts batches of one until the gateway answers 202 (30 s at most).
async fn reach_kafka(url: &str, mut one: impl FnMut() -> String) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while post(url, one()).await.0 != 202 {
        assert!(Instant::now() < deadline, "the gateway never got to Kafka");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// How long the server took to close a connection on which `sent` was written
/// and nothing more; None if it was still open after 10 s.
fn closed_after(port: u16, sent: &[u8]) -> Option<(Duration, String)> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let started = Instant::now();
    s.write_all(sent).unwrap();
    let mut answer = Vec::new();
    match s.read_to_end(&mut answer) {
        Ok(_) => Some((started.elapsed(), String::from_utf8_lossy(&answer).into())),
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {
            Some((started.elapsed(), String::new()))
        }
        Err(_) => None,
    }
}

/// A client that never finishes its headers, or trickles its body, is cut off
/// by the deadlines instead of holding a connection forever.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs the local stack (deploy/local/up); deploy/local/test runs it"]
async fn slow_clients_are_cut_off() {
    let lab = open_lab(19);
    let port = free_port();
    let gw = start_gateway(
        &lab,
        port,
        &[
            "--header-timeout-ms",
            "1000",
            "--http-request-timeout-ms",
            "2000",
        ],
    );
    let (took, _) = tokio::task::spawn_blocking(move || {
        closed_after(port, b"POST /v1/events HTTP/1.1\r\nHost: x\r\n")
    })
    .await
    .unwrap()
    .expect("a connection with unfinished headers stays open");
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(4),
        "closed after {took:?}"
    );
    let (took, answer) = tokio::task::spawn_blocking(move || {
        closed_after(
            port,
            b"POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n[",
        )
    })
    .await
    .unwrap()
    .expect("a connection whose body never arrives stays open");
    assert!(
        answer.starts_with("HTTP/1.1 408") && took < Duration::from_secs(5),
        "after {took:?}: {answer}"
    );
    drop(gw);
}

/// A device over its quota gets 429 with Retry-After, naming it, and nothing of
/// the request reaches Kafka; another device is not held back.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs the local stack (deploy/local/up); deploy/local/test runs it"]
async fn a_device_over_its_quota_is_answered_429() {
    let lab = open_lab(20);
    let device = unique("quota").replace('-', "");
    let other = unique("quota2").replace('-', "");
    let (key, other_key) = (add_device(&lab, &device), add_device(&lab, &other));
    let gw = start_gateway(
        &lab,
        free_port(),
        &["--device-events-per-second", "0.5", "--device-burst", "3"],
    );
    let body = |events: Vec<ScanEvent>| {
        json!(events.iter().map(json::to_json).collect::<Vec<_>>()).to_string()
    };
    // The first produce waits for Kafka's metadata and may time out: a third
    // device takes that, so the two under test start with full buckets.
    let warm = unique("quota3").replace('-', "");
    let warm_key = add_device(&lab, &warm);
    let deadline = Instant::now() + Duration::from_secs(20);
    for n in 1.. {
        let (status, answer, _) = post(&gw.url, body(vec![event(&warm, &warm_key, n)])).await;
        if status == 202 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the gateway never got to Kafka: {answer}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let first: Vec<ScanEvent> = (1..=3).map(|n| event(&device, &key, n)).collect();
    let (status, answer, _) = post(&gw.url, body(first)).await;
    assert_eq!(status, 202, "a burst of 3 passes: {answer}");
    let before = lab.end_offsets();
    let over = event(&device, &key, 4);
    let (status, answer, retry) = post(&gw.url, body(vec![over.clone()])).await;
    assert_eq!(
        (status, answer["error"].as_str()),
        (429, Some("rate_limited")),
        "{answer}"
    );
    assert!(
        answer["problem"].as_str().unwrap_or("").contains(&device),
        "{answer}"
    );
    assert!(
        retry
            .as_deref()
            .and_then(|r| r.parse::<u32>().ok())
            .is_some_and(|r| r >= 1),
        "{retry:?}"
    );
    let (status, answer, _) = post(&gw.url, body(vec![event(&other, &other_key, 1)])).await;
    assert_eq!(status, 202, "another device is not held back: {answer}");
    assert!(
        !records_since(&lab, &before)
            .iter()
            .any(|e| e.event_id == over.event_id),
        "the refused event reached Kafka"
    );
    let metrics = metrics_of(&gw.url).await;
    assert!(
        metrics.lines().any(|l| l
            .starts_with("sealtrail_ingest_rejected_requests_total{reason=\"rate_limited\"} ")
            && !l.ends_with(" 0")),
        "the refusal is counted: {metrics}"
    );
}

/// Mutated requests (request line, headers, JSON bodies of signed events), sent
/// raw: none gets a 500 or panics the gateway, which still serves afterwards.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs the local stack (deploy/local/up); deploy/local/test runs it"]
async fn hostile_requests_never_panic_the_gateway() {
    use web::hostile::{barrage, request, still_serving, Tally};
    let lab = open_lab(21);
    let device = unique("hostile").replace('-', "");
    let key = add_device(&lab, &device);
    let port = free_port();
    let log = std::env::temp_dir().join(format!(
        "sealtrail-gateway-hostile-{}.log",
        std::process::id()
    ));
    let _gw = start_gateway_logging(
        &lab,
        port,
        &[
            // A request cut short is closed at these deadlines: keep the run short.
            "--header-timeout-ms",
            "300",
            "--http-request-timeout-ms",
            "400",
        ],
        &log,
    );
    let one = json::to_json(&event(&device, &key, 1)).to_string();
    let batch = json!([
        json::to_json(&event(&device, &key, 2)),
        json::to_json(&event(&device, &key, 3))
    ])
    .to_string();
    let json_type = [("Content-Type", "application/json")];
    // EPCIS capture: a signed document, and one event with its header.
    let epcis_events = [event(&device, &key, 4), event(&device, &key, 5)];
    let mut doc = schemas::epcis::document(&epcis_events);
    doc[schemas::epcis::SIGNATURES] = json!(epcis_events
        .iter()
        .map(|e| hex::encode(&e.signature))
        .collect::<Vec<_>>());
    let doc = doc.to_string();
    let mut lone = schemas::epcis::object_event(&event(&device, &key, 6));
    lone["@context"] = schemas::epcis::context();
    let lone = lone.to_string();
    let signature = hex::encode(&event(&device, &key, 6).signature);
    let ld_type = [("Content-Type", "application/ld+json")];
    // An EPCIS event kept whole (an aggregation with an extension), signed.
    let context = json!([schemas::epcis::EPCIS_CONTEXT, {"ex": "https://ns.example.com/epcis/"}]);
    let aggregation = json!({
        "type": "AggregationEvent",
        "eventID": "urn:uuid:0b0e6d9c-5f6e-4a0b-9c1d-2e3f4a5b6c7d",
        "eventTime": schemas::time::format_rfc3339(event(&device, &key, 7).event_time, "+01:00"),
        "eventTimeZoneOffset": "+01:00",
        "parentID": "urn:epc:id:sscc:4012345.0000000077",
        "childEPCs": ["urn:epc:id:sgtin:4012345.011111.77"],
        "action": "ADD",
        "ex:lot": {"ex:line": 3},
        "st:deviceID": device,
    });
    let (kept_text, _) = schemas::epcis_event::keep(
        &aggregation,
        &schemas::epcis_event::namespaces(Some(&context)).unwrap(),
        "epcisBody.eventList[0]",
    )
    .unwrap();
    let kept_doc = json!({
        "@context": context, "type": "EPCISDocument", "schemaVersion": "2.0",
        "creationDate": "2026-11-30T00:00:00Z",
        "epcisBody": {"eventList": [aggregation]},
        "st:signatures": [hex::encode(
            ed25519_dalek::Signer::sign(&key, &schemas::epcis_event::signed_message(&kept_text)).to_bytes()
        )],
    })
    .to_string();
    let seeds = [
        request("POST", "/capture", &ld_type, doc.as_bytes()),
        request("POST", "/capture", &ld_type, kept_doc.as_bytes()),
        request(
            "POST",
            "/capture",
            &[
                ("Content-Type", "application/ld+json"),
                ("GS1-Capture-Error-Behaviour", "proceed"),
            ],
            doc.as_bytes(),
        ),
        request(
            "POST",
            "/events",
            &[
                ("Content-Type", "application/json"),
                ("Sealtrail-Signature", &signature),
            ],
            lone.as_bytes(),
        ),
        request("GET", "/capture/id00", &[], b""),
        request("OPTIONS", "/capture", &[], b""),
        request("POST", "/v1/events", &json_type, one.as_bytes()),
        request("POST", "/v1/events", &json_type, batch.as_bytes()),
        request(
            "POST",
            "/v1/events",
            &[("Content-Type", "text/plain")],
            one.as_bytes(),
        ),
        request("GET", "/v1/events", &[], b""),
        request("GET", "/healthz", &[], b""),
        request("GET", "/readyz", &[], b""),
    ];
    let answers = tokio::task::spawn_blocking(move || barrage(port, &seeds, 2_000, 0x9a7e_3a1e, 8))
        .await
        .unwrap();
    // 503 is backpressure (Kafka busy, too many requests in flight).
    let tally = Tally::of(&answers, |s| s < 500 || s == 503).unwrap();
    println!(
        "hostile requests to the gateway: {:?} by status, {} closed unanswered",
        tally.statuses, tally.closed
    );
    assert!(tally.answered() > 1_500, "most requests get an answer");
    still_serving(port, &log).unwrap();
}
