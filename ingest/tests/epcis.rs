//! A partner that speaks only EPCIS 2.0, against the real stack: it signs a
//! document with `ingest sign`, captures it through the gateway's `/capture`
//! and `/events`, a real sealer seals and anchors it, and the trail API's
//! `GET /events` gives every event back equal to what was sent, with hashes
//! equal to GS1's reference implementation's and proofs that verify. Bad
//! documents are refused with the binding's problem types and put nothing on
//! Kafka.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use lab::Lab;
use schemas::{epcis, Action, BizStep, BizTransaction, BizTransactionType, Disposition, ScanEvent};
use serde_json::{json, Value};
use web::probe::{free_port, wait_ready};

const INGEST: &str = env!("CARGO_BIN_EXE_ingest");

/// The sealer binary of the same build (`cargo test --workspace` builds it).
fn sealer_bin() -> PathBuf {
    let path = Path::new(INGEST).with_file_name("sealer");
    assert!(
        path.exists(),
        "{} is missing: build the workspace's binaries (cargo test --workspace builds them)",
        path.display()
    );
    path
}

use lab::Killed;

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// The partner's events: every kind of field, several items, sensors, documents.
fn events(run: u64, device: &str) -> Vec<ScanEvent> {
    let t = now_ms() - 600_000;
    let item = |i: u64| format!("urn:epc:id:sgtin:4012345.{:06}.{i}", run % 1_000_000);
    let steps = [
        (BizStep::Commissioning, Disposition::Active, Action::Add),
        (BizStep::Packing, Disposition::InProgress, Action::Observe),
        (BizStep::Shipping, Disposition::InTransit, Action::Observe),
        (
            BizStep::CustomsClearance,
            Disposition::CustomsHold,
            Action::Observe,
        ),
        (
            BizStep::Inspecting,
            Disposition::CustomsReleased,
            Action::Observe,
        ),
        (
            BizStep::Receiving,
            Disposition::SellableAccessible,
            Action::Observe,
        ),
    ];
    steps
        .iter()
        .enumerate()
        .map(|(i, (step, disposition, action))| ScanEvent {
            event_id: format!("{:08x}-0000-4000-8000-{i:012x}", run as u32),
            event_time: t + i as i64 * 1_001,
            event_timezone_offset: ["+08:00", "+05:30", "-03:00"][i % 3].into(),
            action: *action,
            biz_step: *step,
            disposition: *disposition,
            item_ids: if i == 2 {
                vec![
                    item(1),
                    item(2),
                    format!(
                        "https://id.gs1.org/01/04012345{:06}/21/X{run}",
                        run % 1_000_000
                    ),
                ]
            } else {
                vec![item(1)]
            },
            read_point: "urn:epc:id:sgln:4012345.00001.0".into(),
            biz_location: format!("urn:epc:id:sgln:4012345.0000{i}.0"),
            country: if i < 3 { "VN" } else { "DE" }.into(),
            biz_transactions: if i == 3 {
                vec![
                    BizTransaction {
                        kind: BizTransactionType::CustomsDeclaration,
                        id: format!("CD-{run}"),
                    },
                    BizTransaction {
                        kind: BizTransactionType::Po,
                        id: "PO-77".into(),
                    },
                ]
            } else {
                vec![]
            },
            temperature_c: (i % 2 == 0).then_some(4.5 + i as f32),
            relative_humidity_pct: (i == 4).then_some(61.5),
            device_id: device.into(),
            signature: vec![],
        })
        .collect()
}

/// Signs a document with the CLI a partner uses.
fn sign(doc: &Value, key_file: &Path) -> Value {
    let path = std::env::temp_dir().join(format!("epcis-doc-{}.jsonld", std::process::id()));
    std::fs::write(&path, doc.to_string()).unwrap();
    let out = Command::new(INGEST)
        .args([
            "sign",
            "--key",
            key_file.to_str().unwrap(),
            path.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    std::fs::remove_file(&path).unwrap();
    assert!(
        out.status.success(),
        "ingest sign: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

struct Answer {
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: Value,
}

impl Answer {
    fn header(&self, name: &str) -> String {
        self.headers
            .get(name)
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default()
    }
    fn problem(&self) -> (u16, &str, &str) {
        (
            self.status,
            self.body["type"].as_str().unwrap_or(""),
            self.body["field"].as_str().unwrap_or(""),
        )
    }
}

async fn send(r: reqwest::RequestBuilder) -> Answer {
    let r = r.send().await.expect("the server answers");
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    let body = r.json().await.unwrap_or(Value::Null);
    Answer {
        status,
        headers,
        body,
    }
}

async fn capture(url: &str, doc: &Value, extra: &[(&str, &str)]) -> Answer {
    let mut r = reqwest::Client::new()
        .post(format!("{url}/capture"))
        .header("content-type", "application/ld+json")
        .body(doc.to_string());
    for (k, v) in extra {
        r = r.header(*k, *v);
    }
    send(r).await
}

async fn get(url: &str) -> Answer {
    send(reqwest::Client::new().get(url)).await
}

use web::percent_encode as path_segment;

/// GS1's reference hashes of a document's events, by eventID.
fn reference_hashes(doc: &Value) -> Value {
    let path = std::env::temp_dir().join(format!("epcis-ref-{}.jsonld", std::process::id()));
    std::fs::write(&path, doc.to_string()).unwrap();
    let out = Command::new("python3")
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../schemas/tests/epcis_reference_hashes.py"
        ))
        .arg(&path)
        .output()
        .expect("python3 runs");
    std::fs::remove_file(&path).unwrap();
    assert!(
        out.status.success(),
        "GS1's reference (python3 -m pip install epcis-event-hash-generator): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice::<Value>(&out.stdout).unwrap()["events"].clone()
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs the local stack (deploy/local/up); deploy/local/test runs it"]
async fn an_epcis_partner_captures_documents_and_reads_them_back_sealed_with_proofs() {
    let lab = Lab::open(*lab::slots::EPCIS.start());
    let run = now_ms() as u64;
    let device = format!("partner-{}", run % 1_000_000_000);
    let keys = std::env::temp_dir().join(format!("epcis-keys-{run}"));
    let out = lab
        .env(&mut Command::new(INGEST))
        .args([
            "device",
            "add",
            &device,
            "--keys-dir",
            keys.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let key_file = keys.join(format!("{device}.key"));

    let gw_port = free_port();
    let mut gateway = Killed(
        lab.env(&mut Command::new(INGEST))
            .env("SEALTRAIL_CLICKHOUSE_USER", "gateway")
            .env(
                "SEALTRAIL_CLICKHOUSE_PASSWORD_FILE",
                lab::state().join("clickhouse/users/gateway.password"),
            )
            .env("SEALTRAIL_LOG", "warn")
            .args(["serve", "--listen", &format!("127.0.0.1:{gw_port}")])
            .args(["--max-batch", "20", "--seen-refresh-ms", "200"])
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_ready("the gateway", &mut gateway.0, gw_port, "/readyz", None);
    let gw = format!("http://127.0.0.1:{gw_port}");

    let sealer = |args: &[&str]| {
        let mut c = Command::new(sealer_bin());
        lab.env(&mut c)
            .args(args)
            .env("SEALTRAIL_LEDGER_KEY_FILE", lab::state().join("ledger/key"))
            .env(
                "SEALTRAIL_LEDGER_CONTRACT_FILE",
                lab::state().join("ledger/contract"),
            )
            .env("SEALTRAIL_LOG", "warn")
            .stdout(Stdio::null());
        c
    };
    let _sealing = Killed(
        sealer(&[
            "run",
            "--instance",
            "epcis-test",
            "--metrics-listen",
            &format!("127.0.0.1:{}", free_port()),
        ])
        .env("SEALTRAIL_EPOCH_MS", "300")
        .env("SEALTRAIL_CLICKHOUSE_USER", "sealer")
        .env(
            "SEALTRAIL_CLICKHOUSE_PASSWORD_FILE",
            lab::state().join("clickhouse/users/sealer.password"),
        )
        .spawn()
        .unwrap(),
    );

    // ---- the partner's document: signed, captured, its job finished ----
    let sent_events = events(run, &device);
    let mut doc = epcis::document(&sent_events);
    // Two events without an eventID: they get the id their hash gives.
    for i in [1, 4] {
        doc["epcisBody"]["eventList"][i]
            .as_object_mut()
            .unwrap()
            .remove("eventID");
    }
    let signed = sign(&doc, &key_file);
    assert_eq!(
        signed["epcisBody"], doc["epcisBody"],
        "signing leaves the events as they were"
    );
    let offsets_before = lab.end_offsets();
    let a = capture(&gw, &signed, &[]).await;
    assert_eq!(a.status, 202, "{}", a.body);
    let location = a.header("location");
    assert!(location.starts_with("/capture/id"), "{location}");
    assert_eq!(a.header("gs1-epcis-version"), "2.0.1");
    let job = get(&format!("{gw}{location}")).await;
    assert_eq!(job.status, 200);
    assert_eq!(job.body["success"], true, "{}", job.body);
    assert_eq!(job.body["running"], false);
    assert_eq!(job.body["captureErrorBehaviour"], "rollback");
    assert_eq!(job.body["errors"], json!([]));
    let captured: i64 = lab
        .end_offsets()
        .iter()
        .zip(&offsets_before)
        .map(|(a, b)| a - b)
        .sum();
    assert_eq!(
        captured,
        sent_events.len() as i64,
        "every event on Kafka once"
    );

    // One event alone, with its signature in the header: 201 and the event.
    let mut single = sent_events[0].clone();
    single.event_id = format!("{:08x}-0000-4000-9000-000000000001", run as u32);
    single.event_time += 500;
    let mut one = epcis::object_event(&single);
    one["@context"] = epcis::context();
    let mut to_sign = single.clone();
    schemas::signature::sign(&mut to_sign, &{
        let seed: [u8; 32] = hex::decode(std::fs::read_to_string(&key_file).unwrap().trim())
            .unwrap()
            .try_into()
            .unwrap();
        ed25519_dalek::SigningKey::from_bytes(&seed)
    });
    let posted = send(
        reqwest::Client::new()
            .post(format!("{gw}/events"))
            .header("content-type", "application/json")
            .header("sealtrail-signature", hex::encode(&to_sign.signature))
            .body(one.to_string()),
    )
    .await;
    assert_eq!(posted.status, 201, "{}", posted.body);
    assert_eq!(
        posted.header("location"),
        format!(
            "/events/{}",
            path_segment(&format!("urn:uuid:{}", single.event_id))
        )
    );
    let mut stored = epcis::object_event(&single);
    stored["@context"] = epcis::context();
    assert_eq!(posted.body, stored);

    // ---- bad documents: the binding's problems, nothing on Kafka ----
    let before_bad = lab.end_offsets();
    let broken = |f: &dyn Fn(&mut Value)| {
        let mut d = signed.clone();
        f(&mut d);
        d
    };
    let cases: Vec<(&str, Value, (u16, &str, &str))> = vec![
        (
            "not JSON-LD",
            broken(&|d| {
                d.as_object_mut().unwrap().remove("@context");
            }),
            (400, "epcisException:ValidationException", "@context"),
        ),
        (
            "unknown event type",
            broken(&|d| d["epcisBody"]["eventList"][5]["type"] = json!("PartyEvent")),
            (
                400,
                "epcisException:ValidationException",
                "epcisBody.eventList[5].type",
            ),
        ),
        (
            "missing required field",
            broken(&|d| {
                d["epcisBody"]["eventList"][2]
                    .as_object_mut()
                    .unwrap()
                    .remove("action");
            }),
            (
                400,
                "epcisException:ValidationException",
                "epcisBody.eventList[2].action",
            ),
        ),
        (
            "wrong date format",
            broken(&|d| d["epcisBody"]["eventList"][0]["eventTime"] = json!("30.11.2026 12:00")),
            (
                400,
                "epcisException:ValidationException",
                "epcisBody.eventList[0].eventTime",
            ),
        ),
        (
            "altered after signing",
            broken(&|d| d["epcisBody"]["eventList"][3]["st:country"] = json!("FR")),
            (
                401,
                "epcisException:SecurityException",
                "eventList[3].signature",
            ),
        ),
        (
            "a signature missing",
            broken(&|d| {
                d[epcis::SIGNATURES].as_array_mut().unwrap().pop();
            }),
            (400, "epcisException:ValidationException", "st:signatures"),
        ),
        (
            "over the capture limit",
            broken(&|d| {
                let list = d["epcisBody"]["eventList"].as_array().unwrap().clone();
                d["epcisBody"]["eventList"] =
                    json!(list.iter().cycle().take(21).collect::<Vec<_>>());
            }),
            (413, "epcisException:CaptureLimitExceededException", ""),
        ),
        (
            "a context that redefines a GS1 term",
            broken(&|d| d["@context"][1]["action"] = json!("https://evil.example/")),
            (400, "epcisException:ValidationException", "@context"),
        ),
    ];
    for (what, bad, expected) in &cases {
        let a = capture(&gw, bad, &[]).await;
        assert_eq!(a.problem(), *expected, "{what}: {}", a.body);
        assert_eq!(
            a.header("content-type"),
            "application/problem+json",
            "{what}"
        );
        assert!(
            a.body["detail"].as_str().is_some_and(|d| !d.is_empty()),
            "{what}"
        );
    }
    // A number no double holds, as sent (a parsed value would already be rounded).
    let text = signed.to_string().replacen(
        "\"@context\"",
        "\"st:big\": 123456789012345678901234567890, \"@context\"",
        1,
    );
    let big = send(
        reqwest::Client::new()
            .post(format!("{gw}/capture"))
            .header("content-type", "application/ld+json")
            .body(text),
    )
    .await;
    assert_eq!(
        big.problem(),
        (400, "epcisException:ValidationException", "(body)"),
        "{}",
        big.body
    );
    let forged = capture(&gw, &cases[4].1, &[]).await;
    assert_eq!(
        forged.header("www-authenticate"),
        "Sealtrail-Ed25519 realm=\"devices\""
    );
    let xml = send(
        reqwest::Client::new()
            .post(format!("{gw}/capture"))
            .header("content-type", "application/xml")
            .body("<epcis:EPCISDocument/>"),
    )
    .await;
    assert_eq!(xml.problem().0, 415);
    assert_eq!(
        xml.problem().1,
        "epcisException:UnsupportedMediaTypeException"
    );
    let over = capture(&gw, &cases[6].1, &[]).await;
    assert_eq!(over.header("gs1-epcis-capture-limit"), "20");
    let options =
        send(reqwest::Client::new().request(reqwest::Method::OPTIONS, format!("{gw}/capture")))
            .await;
    assert_eq!(options.status, 204);
    assert_eq!(options.header("allow"), "OPTIONS, POST");
    assert_eq!(options.header("gs1-epcis-capture-limit"), "20");
    assert_eq!(
        lab.end_offsets(),
        before_bad,
        "nothing of the bad documents on Kafka"
    );
    let unknown_job = get(&format!("{gw}/capture/id0000")).await;
    assert_eq!(
        unknown_job.problem().1,
        "epcisException:NoSuchResourceException"
    );

    // With `proceed`, the good events of a document with a bad one are captured.
    let mut extra = sent_events[5].clone();
    extra.event_id = format!("{:08x}-0000-4000-9000-000000000002", run as u32);
    extra.event_time += 700;
    let mut mixed = epcis::document(&[extra.clone(), extra.clone()]);
    mixed["epcisBody"]["eventList"][1]["action"] = json!("MOVE");
    mixed["epcisBody"]["eventList"][1]["eventID"] = json!(format!(
        "urn:uuid:{:08x}-0000-4000-9000-000000000003",
        run as u32
    ));
    let mut signed_mixed = sign(&epcis::document(&[extra.clone()]), &key_file);
    let sig = signed_mixed[epcis::SIGNATURES][0].clone();
    signed_mixed = mixed;
    signed_mixed[epcis::SIGNATURES] = json!([sig, sig]);
    let before_mixed = lab.end_offsets();
    let a = capture(
        &gw,
        &signed_mixed,
        &[("GS1-Capture-Error-Behaviour", "proceed")],
    )
    .await;
    assert_eq!(a.status, 202, "{}", a.body);
    let job = get(&format!("{gw}{}", a.header("location"))).await;
    assert_eq!(job.body["success"], false);
    assert_eq!(job.body["captureErrorBehaviour"], "proceed");
    assert_eq!(
        job.body["errors"].as_array().unwrap().len(),
        1,
        "{}",
        job.body
    );
    assert_eq!(
        job.body["errors"][0]["field"],
        "epcisBody.eventList[1].action"
    );
    assert_eq!(
        job.body["errors"][0]["instance"],
        "#/epcisBody/eventList/1/action"
    );
    let added: i64 = lab
        .end_offsets()
        .iter()
        .zip(&before_mixed)
        .map(|(a, b)| a - b)
        .sum();
    assert_eq!(added, 1, "only the good event of the mixed document");

    // ---- sealed and anchored ----
    let mut all: Vec<ScanEvent> = sent_events.clone();
    // The two without an id carry the one their hash gives.
    for i in [1, 4] {
        all[i].event_id = epcis::id_of_hash(&schemas::event_hash::event_hash(&all[i]));
    }
    all.push(single.clone());
    all.push(extra.clone());
    let ids: Vec<&str> = all.iter().map(|e| e.event_id.as_str()).collect();
    lab.wait_anchored(&ids, Duration::from_secs(120));

    // A second capture of the same events: each is a duplicate.
    let again_deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let a = capture(&gw, &signed, &[]).await;
        if a.status == 409 {
            assert_eq!(
                a.body["type"],
                "epcisException:ResourceAlreadyExistsException"
            );
            break;
        }
        assert!(
            Instant::now() < again_deadline,
            "a second capture was not refused: {} {}",
            a.status,
            a.body
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }

    // ---- read back through the trail API's EPCIS query ----
    let api_port = free_port();
    let mut api = Killed(
        sealer(&[
            "serve",
            "--listen",
            &format!("127.0.0.1:{api_port}"),
            "--public-ledger-rpc",
            "http://127.0.0.1:8545",
        ])
        .spawn()
        .unwrap(),
    );
    wait_ready("sealer serve", &mut api.0, api_port, "/healthz", None);
    let api_url = format!("http://127.0.0.1:{api_port}");
    let item = &sent_events[0].item_ids[0];
    let mut listed: Vec<Value> = Vec::new();
    let mut proofs: Vec<Value> = Vec::new();
    let mut next = format!("/events?MATCH_anyEPC={}&perPage=3", path_segment(item));
    let mut pages = 0;
    loop {
        let page = get(&format!("{api_url}{next}")).await;
        assert_eq!(page.status, 200, "{}", page.body);
        assert_eq!(page.body["type"], "EPCISQueryDocument");
        assert_eq!(
            page.body["epcisBody"]["queryResults"]["queryName"],
            "SimpleEventQuery"
        );
        listed.extend(
            page.body["epcisBody"]["queryResults"]["resultsBody"]["eventList"]
                .as_array()
                .unwrap()
                .iter()
                .cloned(),
        );
        proofs.extend(page.body[epcis::PROOFS].as_array().unwrap().iter().cloned());
        assert_eq!(page.body[epcis::REFUSED], json!([]), "every event verifies");
        pages += 1;
        let link = page.header("link");
        match link
            .strip_prefix('<')
            .and_then(|l| l.split_once(">; rel=\"next\""))
        {
            Some((n, _)) => next = n.to_string(),
            None => break,
        }
    }
    assert_eq!(pages, 3, "8 events at 3 a page");
    // What was sent, with the id each event got, in time order.
    let mut sent_json: Vec<Value> = signed["epcisBody"]["eventList"].as_array().unwrap().clone();
    for i in [1, 4] {
        sent_json[i]["eventID"] = json!(schemas::event_hash::event_hash(&all[i]));
    }
    sent_json.push(epcis::object_event(&single));
    sent_json.push(epcis::object_event(&extra));
    sent_json.sort_by_key(|v| {
        let e = epcis::parse_event(v, "").unwrap();
        (e.event_time, e.event_id)
    });
    assert_eq!(listed.len(), sent_json.len());
    for (got, sent) in listed.iter().zip(&sent_json) {
        assert_eq!(got, sent, "read back equal to what was sent");
    }
    // Hashes: GS1's reference on the document as sent (with the ids the
    // id-less events got: an eventID is no part of the hash), ours beside what
    // was sealed.
    let mut as_sent = signed.clone();
    for i in [1, 4] {
        as_sent["epcisBody"]["eventList"][i]["eventID"] =
            json!(schemas::event_hash::event_hash(&all[i]));
    }
    let reference = reference_hashes(&as_sent);
    let mut compared = 0;
    for (p, got) in proofs.iter().zip(&listed) {
        assert_eq!(p["verified"], true, "{p}");
        assert_eq!(p["eventID"], got["eventID"]);
        if let Some(r) = reference.get(got["eventID"].as_str().unwrap()) {
            assert_eq!(
                p["eventHash"], r["hash"],
                "the reference's hash of {}",
                got["eventID"]
            );
            compared += 1;
        }
        if got["eventID"].as_str().unwrap().starts_with("ni:") {
            assert_eq!(
                p["eventHash"], got["eventID"],
                "an id-less event's id is its hash"
            );
        }
    }
    assert_eq!(compared, sent_events.len(), "every event of the document");

    // The item's trail shows the same hashes and eventIDs.
    let trail = get(&format!("{api_url}/v1/items/{}/trail", path_segment(item))).await;
    assert_eq!(trail.status, 200, "{}", trail.body);
    let steps = trail.body["steps"].as_array().unwrap();
    assert_eq!(steps.len(), proofs.len());
    for (step, p) in steps.iter().zip(&proofs) {
        assert_eq!(step["event_hash"], p["eventHash"]);
        assert_eq!(step["epcis_event_id"], p["eventID"]);
    }

    // One event by its eventID (a UUID and a hash), with its proof.
    assert!(listed[2]["eventID"].as_str().unwrap().starts_with("ni:"));
    for got in [&listed[0], &listed[2]] {
        let id = got["eventID"].as_str().unwrap();
        let one = get(&format!("{api_url}/events/{}", path_segment(id))).await;
        assert_eq!(one.status, 200, "{id}: {}", one.body);
        assert_eq!(
            one.body["epcisBody"]["queryResults"]["resultsBody"]["eventList"],
            json!([got])
        );
        let link = one.header("link");
        let proof = link
            .strip_prefix('<')
            .and_then(|l| l.split_once(">; rel=\"sealtrail-proof\""))
            .map(|(p, _)| p.to_string())
            .unwrap_or_else(|| panic!("no proof link: {link}"));
        let bundle = get(&format!("{api_url}{proof}")).await;
        assert_eq!(bundle.status, 200, "{}", bundle.body);
    }
    // Filters, other types, bad parameters, unknown events.
    let shipping = get(&format!(
        "{api_url}/events?MATCH_anyEPC={}&EQ_bizStep=shipping%7Chttps%3A%2F%2Fsealtrail.dev%2Fepcis%2FBizStep-customs_clearance",
        path_segment(item)
    ))
    .await;
    let steps: Vec<&str> = shipping.body["epcisBody"]["queryResults"]["resultsBody"]["eventList"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["bizStep"].as_str().unwrap())
        .collect();
    assert_eq!(
        steps,
        [
            "shipping",
            "https://sealtrail.dev/epcis/BizStep-customs_clearance"
        ]
    );
    let from = schemas::time::format_rfc3339(sent_events[3].event_time, "Z");
    let later = get(&format!(
        "{api_url}/events?MATCH_anyEPC={}&GE_eventTime={}",
        path_segment(item),
        path_segment(&from)
    ))
    .await;
    assert_eq!(
        later.body["epcisBody"]["queryResults"]["resultsBody"]["eventList"]
            .as_array()
            .unwrap()
            .len(),
        listed
            .iter()
            .filter(|e| epcis::parse_event(e, "").unwrap().event_time >= sent_events[3].event_time)
            .count()
    );
    let listed_ids = |a: &Answer| -> Vec<String> {
        a.body["epcisBody"]["queryResults"]["resultsBody"]["eventList"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["eventID"].as_str().unwrap().to_string())
            .collect()
    };
    let added = get(&format!(
        "{api_url}/events?MATCH_anyEPC={}&EQ_action=ADD",
        path_segment(item)
    ))
    .await;
    assert_eq!(
        listed_ids(&added),
        [
            format!("urn:uuid:{}", sent_events[0].event_id),
            format!("urn:uuid:{}", single.event_id)
        ]
    );
    let held = get(&format!(
        "{api_url}/events?MATCH_anyEPC={}&EQ_disposition={}",
        path_segment(item),
        path_segment("https://sealtrail.dev/epcis/Disp-customs_hold")
    ))
    .await;
    assert_eq!(
        listed_ids(&held),
        [format!("urn:uuid:{}", sent_events[3].event_id)]
    );
    let aggregations = get(&format!(
        "{api_url}/events?MATCH_anyEPC={}&eventType=AggregationEvent",
        path_segment(item)
    ))
    .await;
    assert_eq!(
        aggregations.body["epcisBody"]["queryResults"]["resultsBody"]["eventList"],
        json!([]),
        "the item's own events are ObjectEvents"
    );
    let everything = get(&format!("{api_url}/events?perPage=200")).await;
    assert_eq!(everything.problem().0, 400, "a query names its items");
    assert!(everything.body["detail"]
        .as_str()
        .unwrap()
        .contains("MATCH_anyEPC"));
    let bad = get(&format!(
        "{api_url}/events?MATCH_anyEPC=x&GE_eventTime=yesterday"
    ))
    .await;
    assert_eq!(bad.problem().0, 400);
    assert_eq!(bad.problem().1, "epcisException:QueryParameterException");
    let missing = get(&format!(
        "{api_url}/events/{}",
        path_segment("urn:uuid:00000000-0000-4000-8000-00000000dead")
    ))
    .await;
    assert_eq!(
        missing.problem().1,
        "epcisException:NoSuchResourceException"
    );

    packed(
        &lab,
        &gw,
        &api_url,
        &key_file,
        &device,
        run,
        &sent_events[2].item_ids[..2],
    )
    .await;

    // A payload altered in ClickHouse: out of the event list, in `st:refused`.
    let victim = &all[0];
    lab.sql(&format!(
        "ALTER TABLE sealtrail.scan_events UPDATE payload = concat(substring(payload, 1, length(payload) - 1), 'X') WHERE event_id = '{}'",
        victim.event_id
    ));
    let altered = format!(
        "SELECT count() FROM sealtrail.scan_events WHERE event_id = '{}' AND endsWith(payload, 'X')",
        victim.event_id
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    while lab.sql(&altered) != "1" {
        assert!(Instant::now() < deadline, "the mutation did not apply");
        std::thread::sleep(Duration::from_millis(100));
    }
    let after = get(&format!(
        "{api_url}/events?MATCH_anyEPC={}&perPage=200",
        path_segment(item)
    ))
    .await;
    // Less the packings captured since (`packed`), which list it as a child.
    let ids: Vec<&str> = after.body["epcisBody"]["queryResults"]["resultsBody"]["eventList"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["eventID"].as_str().unwrap())
        .filter(|id| !id.contains("-a000-"))
        .collect();
    let victim_id = format!("urn:uuid:{}", victim.event_id);
    assert_eq!(ids.len(), listed.len() - 1);
    assert!(!ids.contains(&victim_id.as_str()));
    assert_eq!(after.body[epcis::REFUSED].as_array().unwrap().len(), 1);
    assert_eq!(after.body[epcis::REFUSED][0]["eventID"], victim_id);
    assert_eq!(after.body[epcis::REFUSED][0]["verified"], false);
    let one = get(&format!("{api_url}/events/{}", path_segment(&victim_id))).await;
    assert_eq!(one.status, 200);
    assert_eq!(
        one.body["epcisBody"]["queryResults"]["resultsBody"]["eventList"],
        json!([])
    );
    assert_eq!(one.body[epcis::REFUSED][0]["eventID"], victim_id);
    let _ = std::fs::remove_dir_all(&keys);
}

/// The events of a trail page, by their ids, with what each says of containers.
fn container_steps(trail: &Answer) -> Vec<(String, String, bool, bool)> {
    trail.body["container_steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["epcis_event_id"].as_str().unwrap_or("").to_string(),
                s["in_container"].as_str().unwrap_or("").to_string(),
                s["packing"].as_bool().unwrap(),
                s["verified"].as_bool().unwrap(),
            )
        })
        .collect()
}

/// Every other event type, kept whole with extensions, sensors and
/// certification info: items packed into a case, the case onto a pallet, the
/// pallet shipped and received, one item unpacked on the way. Read back equal
/// to what was sent; each item's trail goes through its containers for the
/// time it was inside, and only through packings that verify.
async fn packed(
    lab: &Lab,
    gw: &str,
    api_url: &str,
    key_file: &Path,
    device: &str,
    run: u64,
    items: &[String],
) {
    let (item1, item2) = (&items[0], &items[1]);
    let t0 = now_ms() - 300_000;
    let at = |s: i64| schemas::time::format_rfc3339(t0 + s * 1000, "+01:00");
    let id = |n: u32| format!("urn:uuid:{:08x}-0000-4000-a000-{n:012x}", run as u32);
    let case = format!("urn:epc:id:sscc:4012345.{:010}", run % 10_000_000_000);
    let pallet = format!("urn:epc:id:sscc:4012345.{:010}", (run + 1) % 10_000_000_000);
    let tag = "urn:epc:id:grai:4012345.55555.1";
    let read_point = json!({"id": "urn:epc:id:sgln:4012345.00001.0"});
    let sent = vec![
        json!({"type": "AggregationEvent", "eventID": id(1), "eventTime": at(0), "eventTimeZoneOffset": "+01:00",
               "parentID": case, "childEPCs": [item1, item2], "action": "ADD", "bizStep": "packing",
               "disposition": "in_progress", "readPoint": read_point, "st:deviceID": device,
               "ex:line": {"ex:shift": "night", "ex:station": 7},
               "certificationInfo": "https://cert.example.com/c/1"}),
        json!({"type": "AggregationEvent", "eventID": id(2), "eventTime": at(1), "eventTimeZoneOffset": "+01:00",
               "parentID": pallet, "childEPCs": [case], "action": "ADD", "bizStep": "packing",
               "readPoint": read_point, "st:deviceID": device}),
        json!({"type": "ObjectEvent", "eventID": id(3), "eventTime": at(2), "eventTimeZoneOffset": "+01:00",
               "epcList": [pallet], "action": "OBSERVE", "bizStep": "shipping", "disposition": "in_transit",
               "readPoint": read_point, "bizLocation": {"id": "urn:epc:id:sgln:4012345.00002.0"},
               "sensorElementList": [{"sensorMetadata": {"time": at(2)},
                   "sensorReport": [{"type": "gs1:AbsoluteHumidity", "value": 12.5, "uom": "A93"}]}],
               "st:deviceID": device}),
        json!({"type": "TransactionEvent", "eventID": id(4), "eventTime": at(3), "eventTimeZoneOffset": "+01:00",
               "parentID": pallet, "epcList": [case], "action": "ADD", "bizStep": "shipping",
               "bizTransactionList": [{"type": "bol", "bizTransaction": "urn:epcglobal:cbv:bt:4012345000009:BOL-1"}],
               "st:deviceID": device}),
        json!({"type": "AggregationEvent", "eventID": id(5), "eventTime": at(4), "eventTimeZoneOffset": "+01:00",
               "parentID": case, "childEPCs": [item2], "action": "DELETE", "bizStep": "unpacking",
               "st:deviceID": device}),
        json!({"type": "ObjectEvent", "eventID": id(6), "eventTime": at(5), "eventTimeZoneOffset": "+01:00",
               "epcList": [pallet], "action": "OBSERVE", "bizStep": "receiving", "disposition": "in_progress",
               "st:deviceID": device, "ex:dock": "D4"}),
        json!({"type": "AssociationEvent", "eventID": id(7), "eventTime": at(6), "eventTimeZoneOffset": "+01:00",
               "parentID": tag, "childEPCs": [pallet], "action": "ADD", "bizStep": "assembling",
               "st:deviceID": device}),
        json!({"type": "TransformationEvent", "eventID": id(8), "eventTime": at(7), "eventTimeZoneOffset": "+01:00",
               "inputEPCList": [item2], "transformationID": "urn:epc:id:gdti:4012345.00001.1",
               "outputQuantityList": [{"epcClass": "urn:epc:class:lgtin:4012345.011111.L1", "quantity": 2.5, "uom": "KGM"}],
               "bizStep": "commissioning", "st:deviceID": device}),
    ];
    let context = json!([epcis::EPCIS_CONTEXT,
        {"ex": "https://ns.example.com/epcis/", "st": epcis::NAMESPACE, "gs1": epcis::GS1_VOC}]);
    let doc = json!({"@context": context, "type": "EPCISDocument", "schemaVersion": "2.0",
                     "creationDate": at(8), "epcisBody": {"eventList": sent}});
    let signed = sign(&doc, key_file);
    let before = lab.end_offsets();
    let a = capture(gw, &signed, &[]).await;
    assert_eq!(a.status, 202, "{}", a.body);
    let job = get(&format!("{gw}{}", a.header("location"))).await;
    assert_eq!(job.body["success"], true, "{}", job.body);
    let added: i64 = lab
        .end_offsets()
        .iter()
        .zip(&before)
        .map(|(a, b)| a - b)
        .sum();
    assert_eq!(added, sent.len() as i64);
    let uuids: Vec<String> = (1..=8)
        .map(|n| id(n)["urn:uuid:".len()..].to_string())
        .collect();
    lab.wait_anchored(
        &uuids.iter().map(String::as_str).collect::<Vec<_>>(),
        Duration::from_secs(120),
    );

    // The same event again under another eventID: one hash, one event (409).
    let mut again = doc.clone();
    again["epcisBody"]["eventList"] = json!([sent[0].clone()]);
    again["epcisBody"]["eventList"][0]["eventID"] = json!(id(99));
    let a = capture(gw, &sign(&again, key_file), &[]).await;
    assert_eq!(a.status, 409, "{}", a.body);
    assert_eq!(
        a.body["type"],
        "epcisException:ResourceAlreadyExistsException"
    );

    // Read back: each event as sent, its extensions' namespace in the context.
    let keys = [case.as_str(), pallet.as_str(), tag, item2.as_str()].join("|");
    let page = get(&format!(
        "{api_url}/events?MATCH_anyEPC={}&eventType=AggregationEvent%7CObjectEvent%7CTransactionEvent%7CTransformationEvent%7CAssociationEvent&perPage=200",
        path_segment(&keys)
    ))
    .await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert_eq!(page.body[epcis::REFUSED], json!([]), "every event verifies");

    let listed = page.body["epcisBody"]["queryResults"]["resultsBody"]["eventList"]
        .as_array()
        .unwrap()
        .clone();
    let ours: Vec<&Value> = listed
        .iter()
        .filter(|e| e["eventID"].as_str().is_some_and(|i| i.contains("-a000-")))
        .collect();
    assert_eq!(ours.len(), sent.len(), "{listed:?}");
    for e in &ours {
        let sent_one = sent.iter().find(|s| s["eventID"] == e["eventID"]).unwrap();
        // Each carries the namespaces its extensions use, as the document bound them.
        let mut got = (*e).clone();
        let context = got.as_object_mut().unwrap().remove("@context").unwrap();
        assert_eq!(&got, sent_one, "read back equal to what was sent");
        assert_eq!(context["st"], epcis::NAMESPACE);
        if sent_one
            .as_object()
            .unwrap()
            .keys()
            .any(|k| k.starts_with("ex:"))
        {
            assert_eq!(context["ex"], "https://ns.example.com/epcis/");
        }
    }
    let by_parent = get(&format!(
        "{api_url}/events?MATCH_parentID={}",
        path_segment(&pallet)
    ))
    .await;
    let parented: Vec<&str> = by_parent.body["epcisBody"]["queryResults"]["resultsBody"]
        ["eventList"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["eventID"].as_str().unwrap())
        .collect();
    assert_eq!(
        parented,
        [id(2), id(4)],
        "the pallet's aggregation and transaction"
    );
    let columns = lab.sql(&format!(
        "SELECT event_type, parent_id, length(child_epcs), quantity_uoms FROM sealtrail.scan_events WHERE event_id IN ('{}', '{}') ORDER BY event_time_ms FORMAT TSV",
        uuids[0], uuids[7]
    ));
    assert_eq!(
        columns,
        format!("AggregationEvent\t{case}\t2\t[]\nTransformationEvent\t\t0\t['KGM']"),
        "the analysts' columns"
    );

    // Trails through containers: item 1 stays in the case on the pallet,
    // item 2 leaves the case before the pallet is received.
    let trail = |item: &str| {
        let url = format!("{api_url}/v1/items/{}/trail", path_segment(item));
        async move { get(&url).await }
    };
    let t1 = trail(item1).await;
    assert_eq!(t1.status, 200, "{}", t1.body);
    let steps1 = container_steps(&t1);
    let want1 = vec![
        (id(1), case.clone(), true, true),
        (id(5), case.clone(), false, true),
        (id(2), pallet.clone(), true, true),
        (id(3), pallet.clone(), false, true),
        (id(4), pallet.clone(), false, true),
        (id(6), pallet.clone(), false, true),
    ];
    assert_eq!(steps1, want1, "{}", t1.body["container_steps"]);
    let steps2 = container_steps(&trail(item2).await);
    let mut want2 = want1[..5].to_vec();
    want2[1].2 = true; // the DELETE that unpacked item 2 is its own packing
    assert_eq!(
        steps2, want2,
        "not the pallet's receiving after item 2 left"
    );
    let shipping = t1.body["container_steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["epcis_event_id"] == id(3))
        .unwrap()
        .clone();
    assert_eq!(shipping["biz_step"], "shipping");
    assert_eq!(shipping["event_type"], "ObjectEvent");

    // The item's page checks every step in the browser, the containers' too,
    // and says which container each was in.
    let out = Command::new("node")
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../sealer/tests/page/check.js"
        ))
        .arg(format!("{api_url}/items/{}", path_segment(item1)))
        .env("NODE_PATH", lab::state().join("npm/node_modules"))
        .output()
        .expect("node (deploy/local/test installs playwright-core and chromium)");
    assert!(
        out.status.success(),
        "page check: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let shown: Value = serde_json::from_slice(&out.stdout).unwrap();
    let page_steps = shown["steps"].as_array().unwrap();
    assert_eq!(shown["errors"], json!([]), "no script errors");
    assert_eq!(shown["overflows"], false, "readable at phone width");
    assert_eq!(
        page_steps.len(),
        t1.body["steps"].as_array().unwrap().len() + want1.len(),
        "{shown}"
    );
    assert!(page_steps.iter().all(|s| s["state"] == "ok"), "{shown}");
    for (n, _, _, _) in &want1 {
        let uuid = &n["urn:uuid:".len()..];
        assert!(
            page_steps.iter().any(|s| s["event_id"] == uuid),
            "{uuid} on the page"
        );
    }

    // A kept event's proof bundle verifies offline, with no store.
    let bundle = get(&format!("{api_url}/v1/events/{}/proof", uuids[2])).await;
    assert_eq!(bundle.status, 200, "{}", bundle.body);
    let bundle_file = std::env::temp_dir().join(format!("epcis-bundle-{run}.json"));
    std::fs::write(&bundle_file, bundle.body.to_string()).unwrap();
    let mut verify = Command::new(sealer_bin());
    let out = lab
        .env(&mut verify)
        .env(
            "SEALTRAIL_LEDGER_CONTRACT_FILE",
            lab::state().join("ledger/contract"),
        )
        .args([
            "--clickhouse-url",
            "http://127.0.0.1:1",
            "verify",
            "--bundle",
        ])
        .arg(&bundle_file)
        .output()
        .unwrap();
    std::fs::remove_file(&bundle_file).unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    // A pointer added in the store moves nothing: the payload does not list it.
    let stranger = format!("urn:epc:id:sgtin:4012345.999999.{run}");
    lab.sql(&format!(
        "INSERT INTO sealtrail.memberships (child, item_id, event_id, event_time_ms) VALUES ('{stranger}', '{pallet}', '{}', {})",
        uuids[1], t0 + 1000
    ));
    assert_eq!(
        trail(&stranger).await.status,
        404,
        "no trail from a pointer alone"
    );

    // A packing altered in the store is shown failed and not followed.
    lab.sql(&format!(
        "ALTER TABLE sealtrail.scan_events UPDATE payload = replaceOne(payload, 'packing', 'packinG') WHERE event_id = '{}'",
        uuids[1]
    ));
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let steps = container_steps(&trail(item1).await);
        if steps.iter().any(|s| s.0 == id(2) && !s.3) {
            assert_eq!(
                steps,
                vec![
                    (id(1), case.clone(), true, true),
                    (id(5), case.clone(), false, true),
                    (id(2), pallet.clone(), true, false),
                ],
                "nothing of the pallet's"
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the mutation did not apply: {steps:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Their hashes are the reference's.
    let reference = reference_hashes(&doc);
    for p in page.body[epcis::PROOFS].as_array().unwrap() {
        if let Some(r) = reference.get(p["eventID"].as_str().unwrap()) {
            assert_eq!(
                p["eventHash"], r["hash"],
                "the reference's hash of {}",
                p["eventID"]
            );
        }
    }

    // An event that lists an item beside the one it is filed under is in
    // both trails, and MATCH_anyEPC finds an event by any object it lists.
    let other = format!("urn:epc:id:sgtin:4012345.011111.{run}");
    let listing = json!({"type": "ObjectEvent", "eventID": id(9), "eventTime": at(9),
        "eventTimeZoneOffset": "+01:00", "epcList": [other, item2], "action": "OBSERVE",
        "bizStep": "inspecting", "readPoint": read_point, "st:deviceID": device});
    let mut one = doc.clone();
    one["epcisBody"]["eventList"] = json!([listing]);
    let a = capture(gw, &sign(&one, key_file), &[]).await;
    assert_eq!(a.status, 202, "{}", a.body);
    let uuid9 = id(9)["urn:uuid:".len()..].to_string();
    lab.wait_anchored(&[&uuid9], Duration::from_secs(120));
    for item in [&other, item2] {
        let t = trail(item).await;
        assert_eq!(t.status, 200, "{}", t.body);
        let step = t.body["steps"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["event_id"] == uuid9.as_str())
            .unwrap_or_else(|| panic!("{item}'s trail lists the event: {}", t.body));
        assert_eq!(step["verified"], true, "{step}");
    }
    let found = |epc: String| {
        let url = format!("{api_url}/events?MATCH_anyEPC={}", path_segment(&epc));
        async move {
            let a = get(&url).await;
            assert_eq!(a.status, 200, "{}", a.body);
            a.body["epcisBody"]["queryResults"]["resultsBody"]["eventList"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["eventID"].as_str().unwrap().to_string())
                .collect::<Vec<_>>()
        }
    };
    assert!(
        found(item2.clone()).await.contains(&id(9)),
        "in its epcList"
    );
    assert!(
        found(item1.clone()).await.contains(&id(1)),
        "in its childEPCs"
    );
    assert!(
        found(case.clone()).await.contains(&id(4)),
        "in a transaction's epcList"
    );
    // A pointer added to the index gives a stranger neither a trail nor events.
    let stranger = format!("urn:epc:id:sgtin:4012345.888888.{run}");
    lab.sql(&format!(
        "INSERT INTO sealtrail.events_by_epc (epc, item_id, event_id, event_time_ms) VALUES ('{stranger}', '{other}', '{uuid9}', {})",
        t0 + 9000
    ));
    assert_eq!(
        trail(&stranger).await.status,
        404,
        "no trail from a pointer"
    );
    assert_eq!(
        found(stranger).await,
        Vec::<String>::new(),
        "no event from a pointer"
    );
}
