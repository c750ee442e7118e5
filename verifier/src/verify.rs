//! Checking one sealed event: the same checks, in the same order, for `sealer
//! verify`, `sealer trail`, the trail API and proof bundles, so every reader gives
//! the same verdict for the same evidence. Pure: the caller fetches the row, the
//! device key and the ledger's seal; this decides.
//!
//! Order: the payload is the leaf (its hash is the stored one and it decodes to
//! the event asked for), the device signed it, the proof leads from the leaf to
//! the epoch's root, that root is the one on the ledger, and the columns the store
//! keeps beside the payload (for analysts' SQL) say what the payload says.
//!
//! Readers show the decoded payload, never the columns: only the payload is
//! covered by the signature and the proof. A column altered in the store, or a
//! row copied under another item, is flagged (`ColumnsAltered`), not shown.
//!
//! A key revoked or replaced after the epoch was sealed still verifies what it
//! signed before; the verdict says so beside the step (`KeyRetired`).

use schemas::devices::{KeyAt, KeyHistory};
use schemas::epcis_event::{EpcisEvent, Facts};
use schemas::leaf::{self, LeafEvent};
use schemas::ScanEvent;

use crate::proof::{self, Hash};

/// Why an event does not verify; each has its own exit code and reason string.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    UnknownEvent,
    PayloadAltered,
    BadSignature,
    BadProof,
    RootDiffersFromLedger,
    NotAnchored,
    ColumnsAltered,
    /// A bundle names a chain or contract this verifier was not configured to trust.
    UntrustedAnchor,
    /// A bundle's device key is not the one the registry state pinned on the
    /// ledger for the epoch gives the device when the epoch was sealed.
    KeyNotPinned,
}

impl Failure {
    /// Every failure, for what lists or checks them all.
    pub const ALL: [Failure; 9] = [
        Failure::UnknownEvent,
        Failure::PayloadAltered,
        Failure::BadSignature,
        Failure::BadProof,
        Failure::RootDiffersFromLedger,
        Failure::NotAnchored,
        Failure::ColumnsAltered,
        Failure::UntrustedAnchor,
        Failure::KeyNotPinned,
    ];

    /// Exit codes of `sealer verify` and `sealer trail` (1 is "could not check",
    /// 2 is a usage error).
    pub fn exit_code(self) -> i32 {
        match self {
            Failure::UnknownEvent => 3,
            Failure::PayloadAltered => 4,
            Failure::BadSignature => 5,
            Failure::BadProof => 6,
            Failure::RootDiffersFromLedger => 7,
            Failure::NotAnchored => 8,
            Failure::ColumnsAltered => 9,
            Failure::UntrustedAnchor => 10,
            Failure::KeyNotPinned => 11,
        }
    }

    /// The machine-readable reason, as the API reports it.
    pub fn reason(self) -> &'static str {
        match self {
            Failure::UnknownEvent => "unknown_event",
            Failure::PayloadAltered => "payload_altered",
            Failure::BadSignature => "bad_signature",
            Failure::BadProof => "bad_proof",
            Failure::RootDiffersFromLedger => "root_differs_from_ledger",
            Failure::NotAnchored => "not_anchored",
            Failure::ColumnsAltered => "columns_altered",
            Failure::UntrustedAnchor => "untrusted_anchor",
            Failure::KeyNotPinned => "device_key_not_pinned",
        }
    }

    pub fn message(self) -> &'static str {
        match self {
            Failure::UnknownEvent => "unknown event",
            Failure::PayloadAltered => "payload altered",
            Failure::BadSignature => "bad signature",
            Failure::BadProof => "bad proof",
            Failure::RootDiffersFromLedger => "root differs from the ledger",
            Failure::NotAnchored => "not yet anchored",
            Failure::ColumnsAltered => "the store's columns differ from the signed payload",
            Failure::UntrustedAnchor => "the bundle names a ledger this verifier does not trust",
            Failure::KeyNotPinned => "the device key is not the one the ledger pins for the epoch",
        }
    }
}

/// What the ledger holds for the event's epoch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerSeal {
    pub root: Hash,
    pub leaf_count: u64,
    pub block: u64,
    /// Blocks on top of (and including) the one holding the commit.
    pub confirmations: u64,
    /// The device registry state the epoch was checked against (`keyset`).
    pub keys: Hash,
}

/// Everything the checks look at.
#[derive(Debug, Clone)]
pub struct Evidence<'a> {
    pub event_id: &'a str,
    /// The leaf bytes: the Avro datum of the signed event.
    pub payload: &'a [u8],
    /// The leaf hash stored beside the payload, when there is one.
    pub stored_leaf_hash: Option<Hash>,
    pub leaf_index: u64,
    pub tree_size: u64,
    pub proof: &'a [Hash],
    pub epoch_id: u64,
    /// The epoch's root as the store (or the bundle) gives it.
    pub epoch_root: Hash,
    /// The signing device's Ed25519 public key, if the registry knows the device.
    pub device_key: Option<[u8; 32]>,
    /// None when the ledger has no root for the epoch.
    pub ledger: Option<LedgerSeal>,
    /// The store's columns beside the payload; None for a bundle (it has none).
    pub columns: Option<Columns<'a>>,
}

/// The columns `sealtrail.scan_events` keeps beside the payload, for analysts'
/// SQL. Anyone who can write to the store can change them; the proof covers
/// only the payload, so they are compared with it and never shown.
#[derive(Debug, Clone, Default)]
pub struct Columns<'a> {
    /// The item the row is filed under: the payload must list it.
    pub item_id: &'a str,
    pub item_ids: &'a [String],
    /// Seconds since the Unix epoch.
    pub event_time: u32,
    pub event_time_ms: i64,
    pub event_timezone_offset: &'a str,
    pub action: &'a str,
    pub biz_step: &'a str,
    pub disposition: &'a str,
    pub read_point: &'a str,
    pub biz_location: &'a str,
    pub country: &'a str,
    pub biz_transaction_types: &'a [String],
    pub biz_transaction_ids: &'a [String],
    pub temperature_c: Option<f32>,
    pub relative_humidity_pct: Option<f32>,
    pub device_id: &'a str,
    pub event_type: &'a str,
    pub parent_id: &'a str,
    pub child_epcs: &'a [String],
    pub quantity_classes: &'a [String],
    pub quantities: &'a [f64],
    pub quantity_uoms: &'a [String],
    pub sensor_types: &'a [String],
    pub sensor_values: &'a [f64],
    pub event_hash: &'a str,
}

/// The `Columns` of a row read with the table's column names as field names
/// (readers and the audit read different rows of the same columns).
#[macro_export]
macro_rules! columns_of {
    ($row:expr) => {
        $crate::verify::Columns {
            item_id: &$row.item_id,
            item_ids: &$row.item_ids,
            event_time: $row.event_time,
            event_time_ms: $row.event_time_ms,
            event_timezone_offset: &$row.event_timezone_offset,
            action: &$row.action,
            biz_step: &$row.biz_step,
            disposition: &$row.disposition,
            read_point: &$row.read_point,
            biz_location: &$row.biz_location,
            country: &$row.country,
            biz_transaction_types: &$row.biz_transaction_types,
            biz_transaction_ids: &$row.biz_transaction_ids,
            temperature_c: $row.temperature_c,
            relative_humidity_pct: $row.relative_humidity_pct,
            device_id: &$row.device_id,
            event_type: &$row.event_type,
            parent_id: &$row.parent_id,
            child_epcs: &$row.child_epcs,
            quantity_classes: &$row.quantity_classes,
            quantities: &$row.quantities,
            quantity_uoms: &$row.quantity_uoms,
            sensor_types: &$row.sensor_types,
            sensor_values: &$row.sensor_values,
            event_hash: &$row.event_hash,
        }
    };
}

/// The columns that do not say what the payload says, by name.
pub fn altered_columns(c: &Columns, e: &LeafEvent) -> Vec<&'static str> {
    match e {
        LeafEvent::Scan(s) => scan_altered(c, s),
        LeafEvent::Epcis(k) => match &k.facts {
            Ok(f) => epcis_altered(c, &k.record, f, k.hash.as_deref().unwrap_or("")),
            // Not sealable: the payload check has failed already.
            Err(_) => Vec::new(),
        },
    }
}

fn strs_eq<S: AsRef<str>>(a: &[String], b: impl IntoIterator<Item = S>) -> bool {
    let mut b = b.into_iter();
    a.iter().all(|x| b.next().is_some_and(|y| x == y.as_ref())) && b.next().is_none()
}

fn f64s_eq(a: &[f64], b: impl IntoIterator<Item = f64>) -> bool {
    a.iter()
        .map(|x| x.to_bits())
        .eq(b.into_iter().map(f64::to_bits))
}

/// The columns of an EPCIS event kept whole, against its facts.
fn epcis_altered(c: &Columns, r: &EpcisEvent, f: &Facts, hash: &str) -> Vec<&'static str> {
    let seconds = f.event_time.div_euclid(1000).clamp(0, i64::from(u32::MAX)) as u32;
    [
        ("item_id", c.item_id == f.key()),
        ("item_ids", strs_eq(c.item_ids, f.item_ids())),
        ("event_time", c.event_time == seconds),
        ("event_time_ms", c.event_time_ms == f.event_time),
        (
            "event_timezone_offset",
            c.event_timezone_offset == f.event_timezone_offset,
        ),
        ("action", c.action == f.action.map_or("", |a| a.as_str())),
        ("biz_step", c.biz_step == f.biz_step),
        ("disposition", c.disposition == f.disposition),
        ("read_point", c.read_point == f.read_point),
        ("biz_location", c.biz_location == f.biz_location),
        ("country", c.country == f.country),
        (
            "biz_transaction_types",
            strs_eq(
                c.biz_transaction_types,
                f.biz_transactions.iter().map(|t| &t.0),
            ),
        ),
        (
            "biz_transaction_ids",
            strs_eq(
                c.biz_transaction_ids,
                f.biz_transactions.iter().map(|t| &t.1),
            ),
        ),
        ("temperature_c", c.temperature_c.is_none()),
        ("relative_humidity_pct", c.relative_humidity_pct.is_none()),
        ("device_id", c.device_id == r.device_id),
        ("event_type", c.event_type == f.kind.as_str()),
        ("parent_id", c.parent_id == f.parent_id),
        ("child_epcs", c.child_epcs == f.child_epcs.as_slice()),
        (
            "quantity_classes",
            strs_eq(
                c.quantity_classes,
                f.quantities.iter().map(|q| &q.epc_class),
            ),
        ),
        (
            "quantities",
            f64s_eq(
                c.quantities,
                f.quantities.iter().map(|q| q.quantity.unwrap_or(f64::NAN)),
            ),
        ),
        (
            "quantity_uoms",
            strs_eq(c.quantity_uoms, f.quantities.iter().map(|q| &q.uom)),
        ),
        (
            "sensor_types",
            strs_eq(c.sensor_types, f.sensors.iter().map(|s| &s.0)),
        ),
        (
            "sensor_values",
            f64s_eq(c.sensor_values, f.sensors.iter().map(|s| s.1)),
        ),
        ("event_hash", c.event_hash == hash),
    ]
    .into_iter()
    .filter(|(_, same)| !same)
    .map(|(name, _)| name)
    .collect()
}

fn scan_altered(c: &Columns, e: &ScanEvent) -> Vec<&'static str> {
    let same_f32 = |a: Option<f32>, b: Option<f32>| a.map(f32::to_bits) == b.map(f32::to_bits);
    let seconds = e.event_time.div_euclid(1000).clamp(0, i64::from(u32::MAX)) as u32;
    let types: Vec<&str> = e.biz_transactions.iter().map(|t| t.kind.as_str()).collect();
    let ids: Vec<&str> = e.biz_transactions.iter().map(|t| t.id.as_str()).collect();
    [
        ("item_id", e.item_ids.iter().any(|i| i == c.item_id)),
        ("item_ids", c.item_ids == e.item_ids.as_slice()),
        ("event_time", c.event_time == seconds),
        ("event_time_ms", c.event_time_ms == e.event_time),
        (
            "event_timezone_offset",
            c.event_timezone_offset == e.event_timezone_offset,
        ),
        ("action", c.action == e.action.as_str()),
        ("biz_step", c.biz_step == e.biz_step.as_str()),
        ("disposition", c.disposition == e.disposition.as_str()),
        ("read_point", c.read_point == e.read_point),
        ("biz_location", c.biz_location == e.biz_location),
        ("country", c.country == e.country),
        (
            "biz_transaction_types",
            c.biz_transaction_types
                .iter()
                .map(String::as_str)
                .eq(types.iter().copied()),
        ),
        (
            "biz_transaction_ids",
            c.biz_transaction_ids
                .iter()
                .map(String::as_str)
                .eq(ids.iter().copied()),
        ),
        ("temperature_c", same_f32(c.temperature_c, e.temperature_c)),
        (
            "relative_humidity_pct",
            same_f32(c.relative_humidity_pct, e.relative_humidity_pct),
        ),
        ("device_id", c.device_id == e.device_id),
        // A scan event is an ObjectEvent with none of the EPCIS columns: a
        // parent or children added in the store would pack it into a container.
        ("event_type", c.event_type == "ObjectEvent"),
        ("parent_id", c.parent_id.is_empty()),
        ("child_epcs", c.child_epcs.is_empty()),
        ("quantity_classes", c.quantity_classes.is_empty()),
        ("quantities", c.quantities.is_empty()),
        ("quantity_uoms", c.quantity_uoms.is_empty()),
        ("sensor_types", c.sensor_types.is_empty()),
        ("sensor_values", c.sensor_values.is_empty()),
        // Empty in rows sealed before scan events' hashes were stored.
        (
            "event_hash",
            c.event_hash.is_empty() || c.event_hash == schemas::event_hash::event_hash(e),
        ),
    ]
    .into_iter()
    .filter(|(_, same)| !same)
    .map(|(name, _)| name)
    .collect()
}

/// The device key a step was checked with, valid when its epoch was sealed,
/// no longer trusted now: not a failure (the step was signed while the key was
/// good), but a reader shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyRetired {
    /// The device was revoked at this time (ms since the Unix epoch).
    Revoked { since_ms: i64 },
    /// The device was given another key at this time.
    Rotated { since_ms: i64 },
}

impl KeyRetired {
    /// Whether the key `device_id` held at `sealed_at_ms` was retired since.
    pub fn after(keys: &KeyHistory, device_id: &str, sealed_at_ms: i64) -> Option<KeyRetired> {
        if !matches!(keys.key_at(device_id, sealed_at_ms), KeyAt::Valid(_)) {
            return None;
        }
        let since_ms = keys.key_retired_after(device_id, sealed_at_ms)?;
        // The history keeps microseconds: ask just past the change, not before it.
        Some(match keys.key_at(device_id, since_ms.saturating_add(1)) {
            KeyAt::Valid(_) => KeyRetired::Rotated { since_ms },
            _ => KeyRetired::Revoked { since_ms },
        })
    }

    /// The machine-readable name of the note.
    pub fn reason(self) -> &'static str {
        match self {
            KeyRetired::Revoked { .. } => "key_revoked_since",
            KeyRetired::Rotated { .. } => "key_rotated_since",
        }
    }

    pub fn since_ms(self) -> i64 {
        match self {
            KeyRetired::Revoked { since_ms } | KeyRetired::Rotated { since_ms } => since_ms,
        }
    }

    /// `key_revoked_since: 2026-11-25T08:30:00.000Z`, as every reader shows it.
    pub fn note(self) -> String {
        format!(
            "{}: {}",
            self.reason(),
            schemas::time::format_rfc3339(self.since_ms(), "")
        )
    }
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Check {
    pub name: &'static str,
    pub ok: bool,
    pub detail: String,
}

#[derive(Debug, Clone)]
pub struct Verdict {
    pub checks: Vec<Check>,
    pub failure: Option<Failure>,
    /// The event decoded from the payload, when it decodes.
    pub event: Option<LeafEvent>,
    /// The device key the signature was checked with, if there was one.
    pub device_key: Option<[u8; 32]>,
    /// The device key was revoked or rotated after the epoch was sealed. The
    /// checks do not see the registry's history: the caller that chose the key
    /// fills this in (`trail::Verifier`), and it changes no failure.
    pub key_retired: Option<KeyRetired>,
}

impl Verdict {
    pub fn verified(&self) -> bool {
        self.failure.is_none()
    }
}

fn hex32(h: &Hash) -> String {
    format!("0x{}", hex::encode(h))
}

pub fn check(e: &Evidence) -> Verdict {
    let mut checks = Vec::new();
    let mut failure = None;
    let fail = |f: Failure, failure: &mut Option<Failure>| {
        failure.get_or_insert(f);
    };

    // 1. The payload is the leaf, and the leaf is this event.
    let leaf = proof::leaf_hash(e.payload);
    let event = leaf::decode_leaf(e.payload).ok();
    let payload = match (&e.stored_leaf_hash, &event) {
        (Some(stored), _) if *stored != leaf => Check {
            name: "payload",
            ok: false,
            detail: format!(
                "SHA-256(0x00 ‖ payload) is {}, the stored leaf hash is {}: the payload was altered",
                hex32(&leaf),
                hex32(stored)
            ),
        },
        (_, None) => Check {
            name: "payload",
            ok: false,
            detail: "the payload is neither an Avro scan event nor an EPCIS event record".into(),
        },
        (_, Some(LeafEvent::Epcis(k))) if k.facts.is_err() => Check {
            name: "payload",
            ok: false,
            detail: format!(
                "the payload's EPCIS event is not valid: {}",
                k.facts.as_ref().err().map(ToString::to_string).unwrap_or_default()
            ),
        },
        (_, Some(ev)) if ev.event_id() != e.event_id => Check {
            name: "payload",
            ok: false,
            detail: format!("the payload is event {}, not {}", ev.event_id(), e.event_id),
        },
        _ => Check {
            name: "payload",
            ok: true,
            detail: format!("leaf hash {} recomputed from the payload", hex32(&leaf)),
        },
    };
    if !payload.ok {
        fail(Failure::PayloadAltered, &mut failure);
    }
    checks.push(payload);

    // 2. The device signed it.
    let signed = match (&event, e.device_key) {
        (None, _) => Check {
            name: "signature",
            ok: false,
            detail: "no event to check".into(),
        },
        (Some(ev), None) => Check {
            name: "signature",
            ok: false,
            detail: format!("device {} is not in the registry", ev.device_id()),
        },
        (Some(ev), Some(key)) => match schemas::signature::public_key_from_bytes(&key)
            .ok_or_else(|| "the registered key is not an Ed25519 public key".to_string())
            .and_then(|k| ev.verify(&k).map_err(|e| e.to_string()))
        {
            Ok(()) => Check {
                name: "signature",
                ok: true,
                detail: format!("Ed25519 signature of device {}", ev.device_id()),
            },
            Err(why) => Check {
                name: "signature",
                ok: false,
                detail: format!("device {}: {why}", ev.device_id()),
            },
        },
    };
    if !signed.ok {
        fail(Failure::BadSignature, &mut failure);
    }
    checks.push(signed);

    // 3. The proof leads from the leaf to the epoch's root; 4. that root is on the ledger.
    let folded = proof::fold(&leaf, e.leaf_index, e.tree_size, e.proof);
    let proof_ok = folded == Some(e.epoch_root);
    checks.push(Check {
        name: "proof",
        ok: proof_ok,
        detail: match folded {
            Some(r) if proof_ok => format!(
                "{} sibling hashes lead from leaf {} of {} to the epoch root {}",
                e.proof.len(),
                e.leaf_index,
                e.tree_size,
                hex32(&r)
            ),
            Some(r) => format!(
                "the proof leads to {}, the epoch root is {}",
                hex32(&r),
                hex32(&e.epoch_root)
            ),
            None => format!(
                "{} sibling hashes cannot place leaf {} in a tree of {}",
                e.proof.len(),
                e.leaf_index,
                e.tree_size
            ),
        },
    });
    let ledger_check = match &e.ledger {
        None => Check {
            name: "ledger",
            ok: false,
            detail: format!("no root on the ledger for epoch {} yet", e.epoch_id),
        },
        Some(s) if s.root == e.epoch_root && s.leaf_count == e.tree_size => Check {
            name: "ledger",
            ok: true,
            detail: format!(
                "root of epoch {} committed in block {} ({} confirmations)",
                e.epoch_id, s.block, s.confirmations
            ),
        },
        Some(s) => Check {
            name: "ledger",
            ok: false,
            detail: format!(
                "the ledger has root {} over {} leaves for epoch {}, the store says {} over {}",
                hex32(&s.root),
                s.leaf_count,
                e.epoch_id,
                hex32(&e.epoch_root),
                e.tree_size
            ),
        },
    };
    let ledger_ok = ledger_check.ok;
    checks.push(ledger_check);
    match &e.ledger {
        None if !proof_ok => fail(Failure::BadProof, &mut failure),
        None => fail(Failure::NotAnchored, &mut failure),
        // The proof is sound against the ledger: the store's copy of the root is wrong.
        Some(s) if !ledger_ok && folded == Some(s.root) => {
            fail(Failure::RootDiffersFromLedger, &mut failure)
        }
        Some(_) if !proof_ok => fail(Failure::BadProof, &mut failure),
        Some(_) if !ledger_ok => fail(Failure::RootDiffersFromLedger, &mut failure),
        Some(_) => {}
    }

    // 5. The store's columns say what the payload says.
    if let (Some(c), Some(ev)) = (&e.columns, &event) {
        let altered = altered_columns(c, ev);
        if !altered.is_empty() {
            fail(Failure::ColumnsAltered, &mut failure);
        }
        checks.push(Check {
            name: "columns",
            ok: altered.is_empty(),
            detail: if altered.is_empty() {
                "the store's columns match the signed payload".into()
            } else if altered == ["item_id"] {
                format!(
                    "item_id: filed under item {}, which the signed payload does not list",
                    c.item_id
                )
            } else {
                format!("differ from the signed payload: {}", altered.join(", "))
            },
        });
    }
    Verdict {
        checks,
        failure,
        event,
        key_retired: None,
        device_key: e.device_key,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proof::EpochTree;
    use schemas::{avro, signature, Action, BizStep, Disposition};

    const KEY: [u8; 32] = [9; 32];

    fn signed(n: u64) -> Vec<u8> {
        let mut e = ScanEvent {
            event_id: format!("00000000-0000-4000-8000-{n:012x}"),
            event_time: 1_795_600_800_000,
            event_timezone_offset: "+00:00".into(),
            action: Action::Observe,
            biz_step: BizStep::Receiving,
            disposition: Disposition::InProgress,
            item_ids: vec!["urn:epc:id:sgtin:0614141.107346.1".into()],
            read_point: "urn:epc:id:sgln:0614141.00777.0".into(),
            biz_location: "urn:epc:id:sgln:0614141.00777.0".into(),
            country: "DE".into(),
            biz_transactions: vec![],
            temperature_c: None,
            relative_humidity_pct: None,
            device_id: "dock-1".into(),
            signature: vec![],
        };
        signature::sign(&mut e, &ed25519_key());
        avro::encode_datum(&e)
    }

    fn ed25519_key() -> ed25519_dalek::SigningKey {
        ed25519_dalek::SigningKey::from_bytes(&KEY)
    }

    struct Fixture {
        payloads: Vec<Vec<u8>>,
        tree: EpochTree,
    }

    fn fixture() -> Fixture {
        let payloads: Vec<Vec<u8>> = (0..5).map(signed).collect();
        let leaves: Vec<Hash> = payloads.iter().map(|p| proof::leaf_hash(p)).collect();
        Fixture {
            tree: EpochTree::build(&leaves),
            payloads,
        }
    }

    fn evidence<'a>(f: &'a Fixture, i: usize, proof: &'a [Hash]) -> Evidence<'a> {
        Evidence {
            event_id: "",
            payload: &f.payloads[i],
            stored_leaf_hash: Some(proof::leaf_hash(&f.payloads[i])),
            leaf_index: i as u64,
            tree_size: 5,
            proof,
            epoch_id: 77,
            epoch_root: f.tree.root(),
            device_key: Some(ed25519_key().verifying_key().to_bytes()),
            ledger: Some(LedgerSeal {
                root: f.tree.root(),
                leaf_count: 5,
                block: 10,
                confirmations: 3,
                keys: [0; 32],
            }),
            columns: None,
        }
    }

    fn verdict<'a>(mut e: Evidence<'a>, edit: impl FnOnce(&mut Evidence<'a>)) -> Option<Failure> {
        let id = schemas::leaf::decode_leaf(e.payload)
            .unwrap()
            .event_id()
            .to_string();
        e.event_id = Box::leak(id.into_boxed_str());
        edit(&mut e);
        check(&e).failure
    }

    #[test]
    fn a_sound_event_passes_every_check() {
        let f = fixture();
        let p = f.tree.proof(3);
        let id = avro::decode_datum(&f.payloads[3]).unwrap().event_id;
        let mut e = evidence(&f, 3, &p);
        e.event_id = &id;
        let v = check(&e);
        assert!(v.verified(), "{:?}", v.checks);
        assert_eq!(v.checks.len(), 4);
        assert!(v.checks.iter().all(|c| c.ok));
    }

    #[test]
    fn each_kind_of_tampering_gets_its_own_failure() {
        let f = fixture();
        let p = f.tree.proof(2);
        let mut altered = f.payloads[2].clone();
        let last = altered.len() - 67; // in the device id, just before the signature
        altered[last] ^= 1;
        let mut bad_proof = p.clone();
        bad_proof[0][0] ^= 1;
        let other_root = [0xee; 32];

        assert_eq!(verdict(evidence(&f, 2, &p), |_| {}), None);
        assert_eq!(
            verdict(evidence(&f, 2, &p), |e| e.payload = &altered),
            Some(Failure::PayloadAltered)
        );
        // Payload and stored leaf hash altered together: the signature still catches it.
        let altered_hash = proof::leaf_hash(&altered);
        assert_eq!(
            verdict(evidence(&f, 2, &p), |e| {
                e.payload = &altered;
                e.stored_leaf_hash = Some(altered_hash);
            }),
            Some(Failure::BadSignature)
        );
        assert_eq!(
            verdict(evidence(&f, 2, &p), |e| e.device_key = Some([1; 32])),
            Some(Failure::BadSignature)
        );
        assert_eq!(
            verdict(evidence(&f, 2, &p), |e| e.device_key = None),
            Some(Failure::BadSignature)
        );
        assert_eq!(
            verdict(evidence(&f, 2, &bad_proof), |_| {}),
            Some(Failure::BadProof)
        );
        assert_eq!(
            verdict(evidence(&f, 2, &p), |e| e.leaf_index = 1),
            Some(Failure::BadProof)
        );
        // The store's root altered: the proof still leads to the ledger's root.
        assert_eq!(
            verdict(evidence(&f, 2, &p), |e| e.epoch_root = other_root),
            Some(Failure::RootDiffersFromLedger)
        );
        // The ledger holds another root than the store and the proof.
        assert_eq!(
            verdict(evidence(&f, 2, &p), |e| e.ledger.as_mut().unwrap().root =
                other_root),
            Some(Failure::RootDiffersFromLedger)
        );
        assert_eq!(
            verdict(evidence(&f, 2, &p), |e| e.ledger = None),
            Some(Failure::NotAnchored)
        );
        assert_eq!(
            verdict(evidence(&f, 2, &bad_proof), |e| e.ledger = None),
            Some(Failure::BadProof)
        );
        assert_eq!(
            verdict(evidence(&f, 2, &p), |e| e.event_id = "someone-else"),
            Some(Failure::PayloadAltered)
        );
    }

    #[test]
    fn a_key_retired_after_sealing_is_noted_and_one_retired_before_is_not() {
        let key = |n: u8| ed25519_dalek::SigningKey::from_bytes(&[n; 32]).verifying_key();
        let mut h = KeyHistory::default();
        h.record("rotated", &key(1), false, 1_000);
        h.record("rotated", &key(2), false, 5_000);
        h.record("revoked", &key(1), false, 1_000);
        h.record("revoked", &key(1), true, 5_000);
        h.record("kept", &key(1), false, 1_000);
        assert_eq!(
            KeyRetired::after(&h, "rotated", 2_000),
            Some(KeyRetired::Rotated { since_ms: 5_000 })
        );
        assert_eq!(
            KeyRetired::after(&h, "revoked", 2_000),
            Some(KeyRetired::Revoked { since_ms: 5_000 })
        );
        assert_eq!(KeyRetired::after(&h, "rotated", 6_000), None, "the new key");
        assert_eq!(KeyRetired::after(&h, "revoked", 6_000), None, "no key then");
        assert_eq!(KeyRetired::after(&h, "kept", 2_000), None);
        assert_eq!(KeyRetired::after(&h, "nobody", 2_000), None);
        assert_eq!(
            KeyRetired::Revoked {
                since_ms: 1_795_600_800_000
            }
            .note(),
            "key_revoked_since: 2026-11-25T10:00:00.000Z"
        );
        assert_eq!(
            KeyRetired::Rotated { since_ms: 0 }.note(),
            "key_rotated_since: 1970-01-01T00:00:00.000Z"
        );
    }

    #[test]
    fn the_checks_alone_note_no_retired_key() {
        let f = fixture();
        let p = f.tree.proof(1);
        let id = avro::decode_datum(&f.payloads[1]).unwrap().event_id;
        let mut e = evidence(&f, 1, &p);
        e.event_id = &id;
        let v = check(&e);
        assert!(v.verified());
        assert_eq!(v.key_retired, None);
    }

    #[test]
    fn exit_codes_and_reasons_are_distinct() {
        let all = Failure::ALL;
        let codes: std::collections::HashSet<_> = all.iter().map(|f| f.exit_code()).collect();
        let reasons: std::collections::HashSet<_> = all.iter().map(|f| f.reason()).collect();
        assert_eq!(codes.len(), all.len());
        assert_eq!(reasons.len(), all.len());
        assert!(all.iter().all(|f| f.exit_code() > 2));
    }

    /// The columns the sealer writes for an event, owned.
    struct Owned {
        item_ids: Vec<String>,
        types: Vec<String>,
        ids: Vec<String>,
        hash: String,
        e: ScanEvent,
    }

    impl Owned {
        fn of(payload: &[u8]) -> Owned {
            let e = avro::decode_datum(payload).unwrap();
            Owned {
                item_ids: e.item_ids.clone(),
                types: e
                    .biz_transactions
                    .iter()
                    .map(|t| t.kind.as_str().to_string())
                    .collect(),
                ids: e.biz_transactions.iter().map(|t| t.id.clone()).collect(),
                hash: schemas::event_hash::event_hash(&e),
                e,
            }
        }

        fn columns(&self) -> Columns<'_> {
            Columns {
                item_id: &self.e.item_ids[0],
                item_ids: &self.item_ids,
                event_time: (self.e.event_time / 1000) as u32,
                event_time_ms: self.e.event_time,
                event_timezone_offset: &self.e.event_timezone_offset,
                action: self.e.action.as_str(),
                biz_step: self.e.biz_step.as_str(),
                disposition: self.e.disposition.as_str(),
                read_point: &self.e.read_point,
                biz_location: &self.e.biz_location,
                country: &self.e.country,
                biz_transaction_types: &self.types,
                biz_transaction_ids: &self.ids,
                temperature_c: self.e.temperature_c,
                relative_humidity_pct: self.e.relative_humidity_pct,
                device_id: &self.e.device_id,
                event_type: "ObjectEvent",
                event_hash: &self.hash,
                ..Columns::default()
            }
        }
    }

    #[test]
    fn each_altered_column_is_named_and_fails_the_step() {
        let f = fixture();
        let owned = Owned::of(&f.payloads[2]);
        let proof = f.tree.proof(2);
        let mut ev = evidence(&f, 2, &proof);
        ev.event_id = "00000000-0000-4000-8000-000000000002";
        ev.columns = Some(owned.columns());
        let v = check(&ev);
        assert_eq!(v.failure, None, "{:?}", v.checks);
        assert!(v.checks.iter().any(|c| c.name == "columns" && c.ok));

        let other_items = vec!["urn:epc:id:sgtin:0614141.107346.9".to_string()];
        type Alter = Box<dyn Fn(&mut Columns)>;
        let alterations: Vec<(&str, Alter)> = vec![
            (
                "item_id",
                Box::new(|c| c.item_id = "urn:epc:id:sgtin:0614141.107346.9"),
            ),
            ("event_time_ms", Box::new(|c| c.event_time_ms += 1)),
            ("event_time", Box::new(|c| c.event_time += 1)),
            (
                "event_timezone_offset",
                Box::new(|c| c.event_timezone_offset = "+01:00"),
            ),
            ("biz_step", Box::new(|c| c.biz_step = "shipping")),
            ("disposition", Box::new(|c| c.disposition = "damaged")),
            (
                "read_point",
                Box::new(|c| c.read_point = "urn:epc:id:sgln:0.0.0"),
            ),
            (
                "biz_location",
                Box::new(|c| c.biz_location = "urn:epc:id:sgln:0.0.0"),
            ),
            ("country", Box::new(|c| c.country = "FR")),
            ("temperature_c", Box::new(|c| c.temperature_c = Some(4.0))),
            ("device_id", Box::new(|c| c.device_id = "dock-2")),
            // Packed into a container by the store alone.
            (
                "parent_id",
                Box::new(|c| c.parent_id = "urn:epc:id:sscc:0614141.1234567890"),
            ),
            (
                "event_type",
                Box::new(|c| c.event_type = "AggregationEvent"),
            ),
            (
                "event_hash",
                Box::new(|c| c.event_hash = "ni:///sha-256;00"),
            ),
        ];
        for (name, alter) in alterations {
            let mut c = owned.columns();
            alter(&mut c);
            assert_eq!(
                altered_columns(&c, &LeafEvent::Scan(owned.e.clone())),
                vec![name]
            );
            ev.columns = Some(c);
            let v = check(&ev);
            assert_eq!(v.failure, Some(Failure::ColumnsAltered), "{name}");
            let shown = v.checks.iter().find(|c| c.name == "columns").unwrap();
            assert!(
                !shown.ok && shown.detail.contains(name.trim_end_matches("_ms")),
                "{name}: {}",
                shown.detail
            );
        }
        let mut c = owned.columns();
        c.item_ids = &other_items;
        assert_eq!(
            altered_columns(&c, &LeafEvent::Scan(owned.e.clone())),
            vec!["item_ids"]
        );
        // Another event's hash (a real one) is altered too; none at all is a
        // row sealed before scan events' hashes were stored.
        let mut other = owned.e.clone();
        other.country = "FR".into();
        let other_hash = schemas::event_hash::event_hash(&other);
        let mut c = owned.columns();
        c.event_hash = &other_hash;
        assert_eq!(
            altered_columns(&c, &LeafEvent::Scan(owned.e.clone())),
            vec!["event_hash"]
        );
        c.event_hash = "";
        assert!(altered_columns(&c, &LeafEvent::Scan(owned.e.clone())).is_empty());
        let children = other_items.clone();
        let mut c = owned.columns();
        c.child_epcs = &children;
        assert_eq!(
            altered_columns(&c, &LeafEvent::Scan(owned.e.clone())),
            vec!["child_epcs"]
        );
        // A proof failure comes first: the columns only matter for a sound leaf.
        let mut c = owned.columns();
        c.country = "FR";
        ev.columns = Some(c);
        ev.leaf_index = 3;
        assert_eq!(check(&ev).failure, Some(Failure::BadProof));
    }

    #[test]
    fn an_epcis_event_leaf_verifies_and_its_tampering_is_caught() {
        let ctx = serde_json::json!([schemas::epcis::EPCIS_CONTEXT]);
        let event = serde_json::json!({
            "type": "AggregationEvent",
            "eventID": "urn:uuid:6c1f2e4a-1b2c-4d3e-8f40-5a6b7c8d9e0f",
            "eventTime": "2026-11-20T08:00:00Z", "eventTimeZoneOffset": "+00:00",
            "parentID": "urn:epc:id:sscc:4012345.0000000001",
            "childEPCs": ["urn:epc:id:sgtin:4012345.011111.1"], "action": "ADD",
            "st:deviceID": "dock-1"
        });
        let (text, facts) = schemas::epcis_event::keep(
            &event,
            &schemas::epcis_event::namespaces(Some(&ctx)).unwrap(),
            "",
        )
        .unwrap();
        let mut r = EpcisEvent {
            event_id: schemas::epcis_event::id_of(&facts, None).unwrap(),
            event: text,
            device_id: "dock-1".into(),
            signature: vec![],
        };
        r.sign(&ed25519_key());
        let mut f = fixture();
        f.payloads[4] = r.encode();
        let leaves: Vec<Hash> = f.payloads.iter().map(|p| proof::leaf_hash(p)).collect();
        f.tree = EpochTree::build(&leaves);
        let p = f.tree.proof(4);
        let kept = LeafEvent::from(r.clone());
        assert_eq!(verdict(evidence(&f, 4, &p), |_| {}), None);
        // A child added in the store's column: flagged.
        let children = vec![
            "urn:epc:id:sgtin:4012345.011111.1".to_string(),
            "urn:epc:id:sgtin:4012345.011111.2".to_string(),
        ];
        let item_ids = facts.item_ids();
        let c = Columns {
            item_id: &facts.parent_id,
            item_ids: &item_ids,
            event_time: (facts.event_time / 1000) as u32,
            event_time_ms: facts.event_time,
            event_timezone_offset: "+00:00",
            action: "ADD",
            device_id: "dock-1",
            event_type: "AggregationEvent",
            parent_id: &facts.parent_id,
            child_epcs: &facts.child_epcs,
            event_hash: "",
            ..Columns::default()
        };
        let hash = schemas::event_hash::json_event_hash(&r.event).unwrap_or_default();
        let c = Columns {
            event_hash: &hash,
            ..c
        };
        assert_eq!(altered_columns(&c, &kept), Vec::<&str>::new());
        let grown = Columns {
            child_epcs: &children,
            ..c.clone()
        };
        assert_eq!(altered_columns(&grown, &kept), vec!["child_epcs"]);
        // The JSON altered (the leaf hash with it): the signature catches it.
        let mut forged = r.clone();
        forged.event = forged.event.replace("011111.1", "011111.9");
        let forged = forged.encode();
        let forged_hash = proof::leaf_hash(&forged);
        assert_eq!(
            verdict(evidence(&f, 4, &p), |e| {
                e.payload = &forged;
                e.stored_leaf_hash = Some(forged_hash);
            }),
            Some(Failure::BadSignature)
        );
    }
}
