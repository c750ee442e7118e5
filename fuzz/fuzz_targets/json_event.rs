//! The gateway's JSON body: `serde_json::from_slice` then `schemas::json::parse_event`,
//! for one event (path "") and for a batch (each element with path `events[i]`).
//!
//! Checks: no panic; an accepted event passes `validate` and its Avro record decodes
//! back to it (what the gateway sends the sealer); a refusal names a field under the
//! path it was given. `signature::verify` runs on every accepted event.

#![no_main]

use std::sync::LazyLock;

use ed25519_dalek::{SigningKey, VerifyingKey};
use libfuzzer_sys::fuzz_target;
use schemas::avro::{decode_single_object, encode_single_object};
use schemas::json::parse_event;
use schemas::signature::verify;
use serde_json::Value;

/// The key the seeds are signed with (`seeds.rs`), so valid signatures occur.
static KEY: LazyLock<VerifyingKey> =
    LazyLock::new(|| SigningKey::from_bytes(&[42; 32]).verifying_key());

fn check(value: &Value, path: &str) {
    match parse_event(value, path) {
        Ok(event) => {
            if let Err(e) = event.validate() {
                panic!("parse_event accepted an event that validate refuses: {e}");
            }
            let _ = verify(&event, &KEY);
            let record = encode_single_object(&event);
            let back = decode_single_object(&record)
                .unwrap_or_else(|e| panic!("accepted event's record does not decode: {e}"));
            // validate admits finite floats only, so PartialEq is exact here.
            assert_eq!(back, event, "accepted event does not survive Avro");
        }
        Err(e) => assert!(
            e.field.starts_with(path),
            "error field {:?} is not under path {path:?}",
            e.field
        ),
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(value) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    check(&value, "");
    if let Value::Array(events) = &value {
        for (i, event) in events.iter().enumerate() {
            check(event, &format!("events[{i}]"));
        }
    }
});
