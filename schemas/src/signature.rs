//! Device signatures: each scanner signs the canonical bytes of its events (the Avro
//! datum with an empty signature) with its Ed25519 key, so the signature, stored in
//! the leaf, proves which device recorded each step.

use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};

use crate::avro::canonical_bytes;
use crate::event::ScanEvent;

/// Signs the event in place, replacing any previous signature.
pub fn sign(event: &mut ScanEvent, key: &SigningKey) {
    event.signature.clear();
    event.signature = key.sign(&canonical_bytes(event)).to_bytes().to_vec();
}

/// Why a signature does not check out.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("event has no signature")]
    Missing,
    #[error("signature is {0} bytes, Ed25519 signatures are 64")]
    Malformed(usize),
    #[error("signature does not match the event and the device's public key")]
    Mismatch,
}

/// Checks the event's signature against the device's public key.
pub fn verify(event: &ScanEvent, key: &VerifyingKey) -> Result<(), SignatureError> {
    if event.signature.is_empty() {
        return Err(SignatureError::Missing);
    }
    let sig = Signature::from_slice(&event.signature)
        .map_err(|_| SignatureError::Malformed(event.signature.len()))?;
    key.verify(&canonical_bytes(event), &sig)
        .map_err(|_| SignatureError::Mismatch)
}

/// How many signatures one batch equation checks.
pub const BATCH: usize = 64;

/// Checks many (message, signature, key) triples, `BATCH` at a time in one
/// equation (about twice the rate of one by one); a batch that fails is checked
/// one by one to tell which fail. Returns per triple whether it verified.
///
/// The batch equation is cofactored: a signature whose R was built with a
/// small-order component by the holder of the signing key itself can pass the
/// batch and fail the one-by-one check readers run. That needs the device's own
/// key, so it is no forgery by anyone else; the reader's verdict stands.
pub fn verify_each(
    messages: &[&[u8]],
    signatures: &[Signature],
    keys: &[VerifyingKey],
) -> Vec<bool> {
    let mut ok = vec![false; messages.len()];
    let mut start = 0;
    while start < messages.len() {
        let range = start..(start + BATCH).min(messages.len());
        let batched = ed25519_dalek::verify_batch(
            &messages[range.clone()],
            &signatures[range.clone()],
            &keys[range.clone()],
        )
        .is_ok();
        for i in range.clone() {
            ok[i] = batched || keys[i].verify(messages[i], &signatures[i]).is_ok();
        }
        start = range.end;
    }
    ok
}

/// A public key from its 32 bytes.
pub fn public_key_from_bytes(bytes: &[u8; 32]) -> Option<VerifyingKey> {
    VerifyingKey::from_bytes(bytes).ok()
}

/// A public key from its 64 hex digits.
pub fn public_key_from_hex(hex_key: &str) -> Option<VerifyingKey> {
    let bytes: [u8; 32] = hex::decode(hex_key.trim()).ok()?.try_into().ok()?;
    VerifyingKey::from_bytes(&bytes).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::tests::sample;

    #[test]
    fn signed_events_verify_and_any_change_breaks_them() {
        let key = SigningKey::from_bytes(&[42; 32]);
        let mut e = sample();
        sign(&mut e, &key);
        assert_eq!(e.signature.len(), 64);
        verify(&e, &key.verifying_key()).unwrap();

        let other = SigningKey::from_bytes(&[43; 32]);
        assert_eq!(
            verify(&e, &other.verifying_key()),
            Err(SignatureError::Mismatch)
        );
        let mut moved = e.clone();
        moved.country = "DE".into();
        assert_eq!(
            verify(&moved, &key.verifying_key()),
            Err(SignatureError::Mismatch)
        );
        let mut unsigned = e.clone();
        unsigned.signature.clear();
        assert_eq!(
            verify(&unsigned, &key.verifying_key()),
            Err(SignatureError::Missing)
        );
    }

    #[test]
    fn batches_find_the_one_bad_signature() {
        let key = SigningKey::from_bytes(&[42; 32]);
        let events: Vec<ScanEvent> = (0..150)
            .map(|n| {
                let mut e = sample();
                e.event_id = format!("00000000-0000-4000-8000-{n:012x}");
                sign(&mut e, &key);
                e
            })
            .collect();
        let messages: Vec<Vec<u8>> = events.iter().map(canonical_bytes).collect();
        let mut signatures: Vec<Signature> = events
            .iter()
            .map(|e| Signature::from_slice(&e.signature).unwrap())
            .collect();
        signatures[70] = signatures[71];
        let refs: Vec<&[u8]> = messages.iter().map(Vec::as_slice).collect();
        let keys = vec![key.verifying_key(); events.len()];
        let ok = verify_each(&refs, &signatures, &keys);
        assert_eq!(ok.iter().filter(|v| !**v).count(), 1);
        assert!(!ok[70]);
    }

    #[test]
    fn public_keys_parse_from_hex() {
        let key = SigningKey::from_bytes(&[1; 32]).verifying_key();
        assert_eq!(public_key_from_hex(&hex::encode(key.as_bytes())), Some(key));
        assert_eq!(public_key_from_hex("zz"), None);
    }
}
