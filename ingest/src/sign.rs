//! `ingest sign`: how a partner system (or a scanner) signs an EPCIS 2.0
//! document for `POST /capture`. Each event is read as the gateway reads it
//! (so a bad one is named here, not at the gateway), the form it is sealed in
//! is signed with the device's key (`sign_document`), and the
//! signatures are added beside the event list (`st:signatures`), in its order:
//! detached, so the events and their hashes stay as they were.

use std::io::{Read, Write};
use std::path::PathBuf;

use anyhow::{bail, Context};
use clap::Args;
use ed25519_dalek::{Signer, SigningKey};
use schemas::{epcis, epcis_event, signature};
use serde_json::Value;

#[derive(Args, Debug)]
pub struct SignArgs {
    /// The device's private key file (NAME.key, as `ingest device add` writes it).
    #[arg(long, env = "SEALTRAIL_DEVICE_KEY_FILE")]
    pub key: PathBuf,
    /// The EPCISDocument to sign ('-' for standard input); the signed document
    /// goes to standard output.
    #[arg(default_value = "-")]
    pub document: PathBuf,
}

pub fn run(args: &SignArgs) -> anyhow::Result<()> {
    let seed = std::fs::read_to_string(&args.key)
        .with_context(|| format!("reading the key file {}", args.key.display()))?;
    let seed: [u8; 32] = hex::decode(seed.trim())
        .ok()
        .and_then(|s| s.try_into().ok())
        .with_context(|| {
            format!(
                "{} does not hold a key: 64 hex digits (an Ed25519 seed)",
                args.key.display()
            )
        })?;
    let key = SigningKey::from_bytes(&seed);
    let mut text = String::new();
    if args.document.as_os_str() == "-" {
        std::io::stdin()
            .read_to_string(&mut text)
            .context("reading the document from standard input")?;
    } else {
        text = std::fs::read_to_string(&args.document)
            .with_context(|| format!("reading {}", args.document.display()))?;
    }
    let mut doc: Value = serde_json::from_str(&text).context("the document is not JSON")?;
    let signed = sign_document(&mut doc, &key)?;
    let mut out = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, &doc)?;
    writeln!(out)?;
    eprintln!("signed {signed} events");
    Ok(())
}

/// Adds `st:signatures` to an EPCISDocument; the number of events signed.
/// An ObjectEvent a scan event holds exactly is signed as one (its canonical
/// Avro bytes, what scanners sign); every other event over its canonical JSON
/// (`schemas::epcis_event::signed_message`), which is what a partner's own
/// code signs. The gateway takes either.
pub fn sign_document(doc: &mut Value, key: &SigningKey) -> anyhow::Result<usize> {
    let events = doc
        .get("epcisBody")
        .and_then(|b| b.get("eventList"))
        .and_then(Value::as_array)
        .context("not an EPCISDocument: no epcisBody.eventList")?;
    let context = doc.get("@context");
    let declared = epcis_event::namespaces(context)
        .map_err(|f| anyhow::anyhow!("{}: {}", f.field, f.problem))?;
    let sensors = doc.to_string().contains("\"sensorElementList\"");
    let scan_context = epcis::check_context(context, sensors).is_ok();
    let mut signatures = Vec::with_capacity(events.len());
    for (i, v) in events.iter().enumerate() {
        let path = format!("epcisBody.eventList[{i}]");
        let scan = scan_context
            .then(|| epcis::parse_event(v, &path).ok())
            .flatten();
        let sig = match scan {
            Some(mut e) => {
                signature::sign(&mut e, key);
                e.signature
            }
            None => {
                let (text, _) = epcis_event::keep(v, &declared, &path)
                    .map_err(|f| anyhow::anyhow!("{}: {}", f.field, f.problem))?;
                key.sign(&epcis_event::signed_message(&text))
                    .to_bytes()
                    .to_vec()
            }
        };
        signatures.push(Value::String(hex::encode(sig)));
    }
    let Some(obj) = doc.as_object_mut() else {
        bail!("not an EPCISDocument object");
    };
    let n = signatures.len();
    obj.insert(epcis::SIGNATURES.to_string(), Value::Array(signatures));
    Ok(n)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use schemas::{Action, BizStep, Disposition, ScanEvent};

    /// An ordinary unsigned event of a partner device, numbered `i`.
    pub(crate) fn event(i: u32) -> ScanEvent {
        ScanEvent {
            event_id: format!("00000000-0000-4000-8000-{i:012x}"),
            event_time: 1_764_064_800_123,
            event_timezone_offset: "+08:00".into(),
            action: Action::Observe,
            biz_step: BizStep::Shipping,
            disposition: Disposition::InTransit,
            item_ids: vec!["urn:epc:id:sgtin:0614141.812345.6789".into()],
            read_point: "urn:epc:id:sgln:0614141.00777.0".into(),
            biz_location: "urn:epc:id:sgln:0614141.00888.0".into(),
            country: "CN".into(),
            biz_transactions: vec![],
            temperature_c: None,
            relative_humidity_pct: None,
            device_id: "partner-1".into(),
            signature: vec![],
        }
    }

    #[test]
    fn signatures_verify_and_leave_the_events_as_they_were() {
        let key = SigningKey::from_bytes(&[5; 32]);
        let events = [event(1), event(2)];
        let mut doc = epcis::document_at(&events, 0);
        let before = doc["epcisBody"].clone();
        assert_eq!(sign_document(&mut doc, &key).unwrap(), 2);
        assert_eq!(doc["epcisBody"], before, "the events are untouched");
        for (i, e) in events.iter().enumerate() {
            let mut e = e.clone();
            e.signature = hex::decode(doc[epcis::SIGNATURES][i].as_str().unwrap()).unwrap();
            signature::verify(&e, &key.verifying_key()).unwrap();
        }
    }

    #[test]
    fn a_bad_event_is_named() {
        let mut doc = epcis::document_at(&[event(1)], 0);
        doc["epcisBody"]["eventList"][0]["eventTime"] = "yesterday".into();
        let err = sign_document(&mut doc, &SigningKey::from_bytes(&[5; 32])).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("epcisBody.eventList[0].eventTime"),
            "{err}"
        );
    }

    #[test]
    fn a_file_that_holds_no_key_or_no_document_is_named() {
        let dir = std::env::temp_dir().join(format!("sign-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let key = dir.join("bad.key");
        let doc = dir.join("doc.jsonld");
        std::fs::write(&doc, epcis::document_at(&[event(1)], 0).to_string()).unwrap();
        for bad in ["", "zz", &"ab".repeat(31), &"ab".repeat(33)] {
            std::fs::write(&key, bad).unwrap();
            let err = run(&SignArgs {
                key: key.clone(),
                document: doc.clone(),
            })
            .unwrap_err();
            assert!(err.to_string().contains("does not hold a key"), "{err}");
        }
        std::fs::write(&key, "ab".repeat(32)).unwrap();
        std::fs::write(&doc, "{not json").unwrap();
        let err = run(&SignArgs {
            key: key.clone(),
            document: doc.clone(),
        })
        .unwrap_err();
        assert!(err.to_string().contains("not JSON"), "{err}");
        std::fs::write(&doc, "[1]").unwrap();
        let err = run(&SignArgs { key, document: doc }).unwrap_err();
        assert!(err.to_string().contains("not an EPCISDocument"), "{err}");
        std::fs::remove_dir_all(dir).unwrap();
    }
}
