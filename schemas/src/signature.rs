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
    fn public_keys_parse_from_hex() {
        let key = SigningKey::from_bytes(&[1; 32]).verifying_key();
        assert_eq!(public_key_from_hex(&hex::encode(key.as_bytes())), Some(key));
        assert_eq!(public_key_from_hex("zz"), None);
    }
}
