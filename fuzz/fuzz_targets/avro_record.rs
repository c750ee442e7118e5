//! Kafka record values: `schemas::avro::decode_single_object` on arbitrary bytes.
//!
//! Checks: no panic; whatever decodes re-encodes to a record that decodes to the same
//! event (floats compared bit for bit, so a NaN reading is not a false alarm); a
//! record that is its own re-encoding decodes again to the same event; and, when
//! `decode_canonical` exists, it accepts exactly the records that are their own
//! re-encoding. `validate` and `signature::verify` run on every decoded event.

#![no_main]

use std::sync::LazyLock;

use ed25519_dalek::{SigningKey, VerifyingKey};
use libfuzzer_sys::fuzz_target;
use schemas::avro::{decode_single_object, encode_single_object};
use schemas::signature::verify;
use schemas::ScanEvent;

/// The key the seeds are signed with (`seeds.rs`), so valid signatures occur.
static KEY: LazyLock<VerifyingKey> =
    LazyLock::new(|| SigningKey::from_bytes(&[42; 32]).verifying_key());

/// Equality with floats compared by their bits (`PartialEq` says NaN != NaN).
fn same(a: &ScanEvent, b: &ScanEvent) -> bool {
    let bits = |e: &ScanEvent| {
        (
            e.temperature_c.map(f32::to_bits),
            e.relative_humidity_pct.map(f32::to_bits),
        )
    };
    let strip = |e: &ScanEvent| ScanEvent {
        temperature_c: None,
        relative_humidity_pct: None,
        ..e.clone()
    };
    bits(a) == bits(b) && strip(a) == strip(b)
}

fuzz_target!(|data: &[u8]| {
    let decoded = decode_single_object(data);

    check_canonical(data, &decoded);

    let Ok(event) = decoded else { return };
    let _ = event.validate();
    let _ = verify(&event, &KEY);
    let _ = event.key();

    let record = encode_single_object(&event);
    let again = decode_single_object(&record)
        .unwrap_or_else(|e| panic!("re-encoded record does not decode: {e}"));
    assert!(same(&again, &event), "re-encoding changed the event");
    assert_eq!(
        encode_single_object(&again),
        record,
        "encoding is not stable"
    );
    if record == data {
        let twice = decode_single_object(data).expect("decoded once, not twice");
        assert!(same(&twice, &event), "decoding the same bytes twice differs");
    }
});

/// `decode_canonical` accepts a record iff it decodes and is its own re-encoding.
fn check_canonical(data: &[u8], decoded: &Result<ScanEvent, schemas::avro::DecodeError>) {
    use schemas::avro::{decode_canonical, DecodeError};
    match (decode_canonical(data), decoded) {
        (Ok((event, datum)), Ok(plain)) => {
            assert!(same(&event, plain), "decode_canonical and decode differ");
            assert_eq!(encode_single_object(&event), data, "accepted a non-canonical record");
            assert_eq!(datum, &data[10..], "datum is not the record minus its header");
        }
        (Ok(_), Err(e)) => panic!("decode_canonical accepts what decode refuses ({e})"),
        (Err(DecodeError::NonCanonical), Ok(plain)) => assert_ne!(
            encode_single_object(plain),
            data,
            "refused a canonical record as non-canonical"
        ),
        (Err(c), Ok(_)) => panic!("decode_canonical refuses a decodable record: {c}"),
        (Err(c), Err(p)) => assert_eq!(&c, p, "the two decoders refuse for different reasons"),
    }
}
