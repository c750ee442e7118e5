//! The gate every event passes before it is sealed: the field rules, the time
//! bounds, and the device's key at that moment. The gateway applies it to what
//! it is posted and the sealer to every Kafka record, since anyone who can reach
//! the broker can write a record: one function, so the two can never disagree.

use ed25519_dalek::VerifyingKey;

use crate::avro::DecodeError;
use crate::devices::{KeyAt, KeyHistory};
use crate::event::FieldError;
use crate::leaf::LeafEvent;
use crate::signature::SignatureError;

/// How far an event's time may stray from the moment it is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "cli", derive(clap::Args))]
pub struct TimeBounds {
    /// Latest accepted event time, in seconds after now (clock skew allowance).
    #[cfg_attr(feature = "cli", arg(
        long = "max-event-future-secs",
        env = "SEALTRAIL_MAX_EVENT_FUTURE_SECS",
        default_value_t = 300,
        value_parser = clap::value_parser!(u32).range(0..=86_400),
    ))]
    pub max_future_secs: u32,
    /// Oldest accepted event time, in days before now: a scanner out of reach
    /// (a ship at sea) uploads late, but a replay of an old event is refused.
    #[cfg_attr(feature = "cli", arg(
        long = "max-event-age-days",
        env = "SEALTRAIL_MAX_EVENT_AGE_DAYS",
        default_value_t = 90,
        value_parser = clap::value_parser!(u32).range(1..=3650),
    ))]
    pub max_age_days: u32,
}

impl Default for TimeBounds {
    fn default() -> Self {
        TimeBounds {
            max_future_secs: 300,
            max_age_days: 90,
        }
    }
}

/// Why an event is not sealed. `reason()` names it in the dead-letter header,
/// the metrics and the gateway's answers.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("{0}")]
    Undecodable(#[from] DecodeError),
    #[error("{0}")]
    Invalid(FieldError),
    #[error(
        "event_time is {ahead_ms} ms ahead of the sealer's clock; at most {limit_secs} s allowed"
    )]
    InFuture { ahead_ms: i64, limit_secs: u32 },
    #[error("event_time is older than {limit_days} days")]
    TooOld { limit_days: u32 },
    #[error("device '{0}' is not registered")]
    UnknownDevice(String),
    #[error("device '{device}' has no valid key now (revoked, or not registered yet)")]
    NoValidKey { device: String },
    #[error("{0}")]
    BadSignature(SignatureError),
    #[error("event {0} is sealed already: this event_id, or the same event (GS1 event hash) under another")]
    Duplicate(String),
    #[error(
        "the record is in partition {found}; its key (the first item id) belongs in {expected}"
    )]
    WrongPartition { expected: u32, found: i32 },
    #[error("checking this record failed inside the sealer (a bug, logged); refused rather than sealed unchecked")]
    Internal,
}

impl Refusal {
    pub fn reason(&self) -> &'static str {
        match self {
            Refusal::Undecodable(e) => e.reason(),
            Refusal::Invalid(_) => "invalid_field",
            Refusal::InFuture { .. } => "event_time_in_future",
            Refusal::TooOld { .. } => "event_time_too_old",
            Refusal::UnknownDevice(_) => "unknown_device",
            Refusal::NoValidKey { .. } => "revoked_device",
            Refusal::BadSignature(_) => "bad_signature",
            Refusal::Duplicate(_) => "duplicate",
            Refusal::WrongPartition { .. } => "wrong_partition",
            Refusal::Internal => "internal_error",
        }
    }

    /// The field the refusal is about, for answers that name it.
    pub fn field(&self) -> Option<&str> {
        match self {
            Refusal::Invalid(e) => Some(&e.field),
            Refusal::InFuture { .. } | Refusal::TooOld { .. } => Some("event_time"),
            Refusal::UnknownDevice(_) | Refusal::NoValidKey { .. } => Some("device_id"),
            Refusal::BadSignature(_) => Some("signature"),
            Refusal::Duplicate(_) => Some("event_id"),
            Refusal::WrongPartition { .. } => Some("item_ids"),
            Refusal::Undecodable(_) | Refusal::Internal => None,
        }
    }
}

const DAY_MS: i64 = 86_400_000;

/// Field rules and time bounds: everything but the signature.
pub fn check_fields(e: &LeafEvent, now_ms: i64, bounds: TimeBounds) -> Result<(), Refusal> {
    e.validate().map_err(Refusal::Invalid)?;
    let event_time = e.event_time();
    let ahead_ms = event_time.saturating_sub(now_ms);
    if ahead_ms > i64::from(bounds.max_future_secs) * 1000 {
        return Err(Refusal::InFuture {
            ahead_ms,
            limit_secs: bounds.max_future_secs,
        });
    }
    if now_ms.saturating_sub(event_time) > i64::from(bounds.max_age_days) * DAY_MS {
        return Err(Refusal::TooOld {
            limit_days: bounds.max_age_days,
        });
    }
    Ok(())
}

/// The key the event's device holds at `at_ms`, or why there is none.
pub fn key_for(e: &LeafEvent, keys: &KeyHistory, at_ms: i64) -> Result<VerifyingKey, Refusal> {
    device_key(e.device_id(), keys, at_ms)
}

/// The key `device` holds at `at_ms`, or why there is none.
pub fn device_key(device: &str, keys: &KeyHistory, at_ms: i64) -> Result<VerifyingKey, Refusal> {
    match keys.key_at(device, at_ms) {
        KeyAt::Valid(key) => Ok(key),
        KeyAt::Unknown => Err(Refusal::UnknownDevice(device.to_string())),
        KeyAt::Revoked { .. } | KeyAt::NotYetRegistered => Err(Refusal::NoValidKey {
            device: device.to_string(),
        }),
    }
}

/// The whole gate for one event, its signature checked on its own: what the
/// gateway runs. The sealer runs the same steps, with signatures in batches.
pub fn check(
    e: &LeafEvent,
    keys: &KeyHistory,
    now_ms: i64,
    bounds: TimeBounds,
) -> Result<(), Refusal> {
    check_fields(e, now_ms, bounds)?;
    let key = key_for(e, keys, now_ms)?;
    e.verify(&key).map_err(Refusal::BadSignature)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::tests::sample;
    use crate::event::ScanEvent;
    use ed25519_dalek::SigningKey;

    fn check(e: &ScanEvent, keys: &KeyHistory, now: i64, b: TimeBounds) -> Result<(), Refusal> {
        super::check(&LeafEvent::Scan(e.clone()), keys, now, b)
    }

    const NOW: i64 = 1_764_064_800_000;

    fn signed(key: &SigningKey) -> ScanEvent {
        let mut e = sample();
        e.event_time = NOW - 60_000;
        crate::signature::sign(&mut e, key);
        e
    }

    fn registry(key: &SigningKey) -> KeyHistory {
        let mut h = KeyHistory::default();
        h.record(
            &sample().device_id,
            &key.verifying_key(),
            false,
            NOW - DAY_MS,
        );
        h
    }

    #[test]
    fn a_signed_event_of_a_registered_device_passes() {
        let key = SigningKey::from_bytes(&[7; 32]);
        check(&signed(&key), &registry(&key), NOW, TimeBounds::default()).unwrap();
    }

    #[test]
    fn each_attack_is_refused_with_its_reason() {
        let key = SigningKey::from_bytes(&[7; 32]);
        let keys = registry(&key);
        let b = TimeBounds::default();
        let reason =
            |e: &ScanEvent, keys: &KeyHistory| check(e, keys, NOW, b).unwrap_err().reason();

        let mut future = signed(&key);
        future.event_time = NOW + 301_000;
        crate::signature::sign(&mut future, &key);
        assert_eq!(reason(&future, &keys), "event_time_in_future");

        let mut old = signed(&key);
        old.event_time = NOW - 91 * DAY_MS;
        crate::signature::sign(&mut old, &key);
        assert_eq!(reason(&old, &keys), "event_time_too_old");

        let mut forged = signed(&key);
        forged.country = "DE".into();
        assert_eq!(reason(&forged, &keys), "bad_signature");

        let mut empty = signed(&key);
        empty.item_ids.clear();
        assert_eq!(reason(&empty, &keys), "invalid_field");

        let stranger = SigningKey::from_bytes(&[8; 32]);
        let mut unknown = signed(&stranger);
        unknown.device_id = "someone-else".into();
        crate::signature::sign(&mut unknown, &stranger);
        assert_eq!(reason(&unknown, &keys), "unknown_device");

        let mut revoked = keys.clone();
        revoked.record(&sample().device_id, &key.verifying_key(), true, NOW - 1);
        assert_eq!(reason(&signed(&key), &revoked), "revoked_device");

        let mut unsigned = signed(&key);
        unsigned.signature.clear();
        assert_eq!(reason(&unsigned, &keys), "bad_signature");
    }

    #[test]
    fn a_rotated_key_signs_from_its_time_on() {
        let (old, new) = (
            SigningKey::from_bytes(&[7; 32]),
            SigningKey::from_bytes(&[9; 32]),
        );
        let mut keys = registry(&old);
        keys.record(&sample().device_id, &new.verifying_key(), false, NOW - 1000);
        let b = TimeBounds::default();
        check(&signed(&new), &keys, NOW, b).unwrap();
        assert_eq!(
            check(&signed(&old), &keys, NOW, b).unwrap_err().reason(),
            "bad_signature"
        );
        // Before the rotation, the old key was the one.
        let mut then = signed(&old);
        then.event_time = NOW - 5000;
        crate::signature::sign(&mut then, &old);
        check(&then, &keys, NOW - 2000, b).unwrap();
    }
}
