//! Sealing one epoch: the records a sealer consumed in one window, in (partition,
//! offset) order, decoded, hashed into leaves, built into an RFC 6962 tree, and
//! turned into the rows ClickHouse stores: one per event (its leaf hash and
//! index, no proof) and the tree once, in tiles (`verifier::tile`).
//! Pure and synchronous: this is the hot path the criterion bench measures.

use std::borrow::Cow;
use std::collections::HashSet;
use std::panic::{catch_unwind, AssertUnwindSafe};

use clickhouse::Row;
use ed25519_dalek::{Signature, VerifyingKey};
use schemas::devices::KeyHistory;
use schemas::event_hash::HashId;
use schemas::gate::{self, Refusal, TimeBounds};
use schemas::leaf::{self, Kept, LeafEvent};
use schemas::signature;
use schemas::ScanEvent;
use serde::Serialize;

// An epoch with no leaves (every record rejected) has RFC 6962's empty root.
pub use crate::proof::empty_root;
use crate::proof::{leaf_hash, EpochTree, Hash};
use crate::tile::{tiles_of, Tile};

/// A record as consumed from Kafka.
#[derive(Debug, Clone)]
pub struct Record {
    pub partition: i32,
    pub offset: i64,
    /// Kafka's timestamp of the record (when it was produced), in ms.
    pub timestamp_ms: i64,
    pub value: Vec<u8>,
}

/// A record that is not sealed as an event: it goes to the dead-letter topic
/// with the reason, and its offset counts as sealed.
#[derive(Debug, Clone)]
pub struct Rejected {
    pub record: Record,
    pub refusal: Refusal,
}

/// The offsets of one partition an epoch covers, first and last inclusive,
/// rejected records included: a restart resumes after `last`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Range {
    pub partition: i32,
    pub first: i64,
    pub last: i64,
}

/// What every record of an epoch is checked against.
#[derive(Debug, Clone, Copy)]
pub struct Gate<'a> {
    /// Every device's key history; a record verifies with the key valid at `now_ms`.
    pub keys: &'a KeyHistory,
    /// The sealing moment: time bounds and key validity are judged at it.
    pub now_ms: i64,
    pub bounds: TimeBounds,
    /// Threads the decoding and signature checks are spread over.
    pub threads: usize,
    /// Partitions of the topic, when known: a record must sit in the partition
    /// its key (first item id) maps to, so every replay of it meets the one
    /// sealer that owns that partition (`schemas::partition`).
    pub partitions: Option<u32>,
    /// Whether signatures are verified: always, but in the benchmark that
    /// measures what verifying costs (`sealer run --bench-unchecked-signatures`,
    /// only in builds with the `bench` feature).
    pub check_signatures: bool,
}

/// An admitted record: its event, where its datum (the leaf bytes) starts,
/// and its GS1 event hash ID (what duplicates are found by; stored).
#[derive(Debug, Clone)]
pub struct Admitted {
    pub record: Record,
    pub event: LeafEvent,
    datum_at: usize,
    /// None only for a kept event whose hash the reference gives none of.
    pub hash: Option<HashId>,
}

/// The records of one window after the gate, in (partition, offset) order.
#[derive(Debug, Default, Clone)]
pub struct Admission {
    pub admitted: Vec<Admitted>,
    pub rejected: Vec<Rejected>,
    pub ranges: Vec<Range>,
}

impl Admission {
    /// Sends to the dead letters every admitted event whose id `sealed` says is
    /// sealed already: the cross-epoch half of "each event id seals once".
    pub fn refuse_sealed(&mut self, sealed: &HashSet<String>) {
        if sealed.is_empty() {
            return;
        }
        let (dup, keep): (Vec<Admitted>, Vec<Admitted>) = std::mem::take(&mut self.admitted)
            .into_iter()
            .partition(|a| sealed.contains(a.event.event_id()));
        self.admitted = keep;
        self.rejected.extend(dup.into_iter().map(|a| Rejected {
            refusal: Refusal::Duplicate(a.event.event_id().to_string()),
            record: a.record,
        }));
    }
}

/// Orders a window's records, notes the offsets they cover, and passes each
/// through the gate: canonical Avro, field rules, time bounds, the device's key
/// at the sealing moment, and its signature (in batches, over `gate.threads`).
/// An event met twice in the window, by its id or by its GS1 event hash, is
/// admitted once. Nothing in a record can panic this: a panic while checking
/// one record refuses that record.
pub fn admit(mut records: Vec<Record>, gate: &Gate<'_>) -> Admission {
    records.sort_unstable_by_key(|r| (r.partition, r.offset));
    let ranges = ranges_of(&records);
    let threads = gate.threads.max(1);
    let per_thread = records.len().div_ceil(threads).max(1);
    let outcomes: Vec<Outcome> = if threads == 1 || records.len() < 2 * signature::BATCH {
        check_chunk(&records, gate)
    } else {
        std::thread::scope(|s| {
            let handles: Vec<_> = records
                .chunks(per_thread)
                .map(|chunk| (chunk.len(), s.spawn(move || check_chunk(chunk, gate))))
                .collect();
            // A thread that died refuses its whole chunk: outcomes stay aligned
            // with their records, and nothing unchecked passes.
            handles
                .into_iter()
                .flat_map(|(n, h)| {
                    h.join()
                        .unwrap_or_else(|_| (0..n).map(|_| Err(Refusal::Internal)).collect())
                })
                .collect()
        })
    };

    let mut admission = Admission {
        ranges,
        ..Admission::default()
    };
    // One event once: the first record of an id, and of a hash (the same
    // event under another id, signed again by its device), read off the
    // outcomes in place.
    let first: Vec<bool> = {
        let mut ids: HashSet<&str> = HashSet::with_capacity(outcomes.len());
        let mut hashes: HashSet<HashId> = HashSet::with_capacity(outcomes.len());
        outcomes
            .iter()
            .map(|o| {
                let Ok(c) = o else { return false };
                let new =
                    c.hash.is_none_or(|h| !hashes.contains(&h)) && ids.insert(c.event.event_id());
                if let (true, Some(h)) = (new, c.hash) {
                    hashes.insert(h);
                }
                new
            })
            .collect()
    };
    let mut outcomes = outcomes.into_iter();
    for (i, record) in records.into_iter().enumerate() {
        // A chunk whose thread died yields no outcomes: its records are refused.
        let outcome = outcomes.next().unwrap_or(Err(Refusal::Internal));
        match outcome {
            Ok(Checked {
                event,
                datum_at,
                hash,
            }) if first.get(i).copied().unwrap_or(false) => admission.admitted.push(Admitted {
                record,
                event,
                datum_at,
                hash,
            }),
            Ok(Checked { event, .. }) => admission.rejected.push(Rejected {
                refusal: Refusal::Duplicate(event.event_id().to_string()),
                record,
            }),
            Err(refusal) => admission.rejected.push(Rejected { record, refusal }),
        }
    }
    admission
}

/// A record through the gate: its event, where its datum starts, its hash.
struct Checked {
    event: LeafEvent,
    datum_at: usize,
    hash: Option<HashId>,
}

type Outcome = Result<Checked, Refusal>;

fn check_chunk(records: &[Record], gate: &Gate<'_>) -> Vec<Outcome> {
    let mut outcomes: Vec<Outcome> = records
        .iter()
        .map(|r| {
            catch_unwind(AssertUnwindSafe(|| check_one(r, gate))).unwrap_or(Err(Refusal::Internal))
        })
        .collect();
    if gate.check_signatures {
        check_signatures(&mut outcomes, gate);
    }
    // The GS1 event hash of each scan event that passed (a kept event's was
    // computed with its facts). A tenth of what its signature costs, here on
    // the gate's threads rather than on the sealing path.
    for o in &mut outcomes {
        if let Ok(Checked {
            event: LeafEvent::Scan(e),
            hash,
            ..
        }) = o
        {
            match catch_unwind(AssertUnwindSafe(|| HashId::of(e))) {
                Ok(h) => *hash = Some(h),
                Err(_) => *o = Err(Refusal::Internal),
            }
        }
    }
    outcomes
}

/// Signatures of those that passed everything else, in batches.
fn check_signatures(outcomes: &mut [Outcome], gate: &Gate<'_>) {
    let mut at = Vec::new();
    let mut messages = Vec::new();
    let mut signatures = Vec::new();
    let mut keys: Vec<VerifyingKey> = Vec::new();
    for (i, o) in outcomes.iter().enumerate() {
        // Kept EPCIS events had theirs checked before their JSON was read.
        if let Ok(Checked {
            event: event @ LeafEvent::Scan(_),
            ..
        }) = o
        {
            let key = match gate::key_for(event, gate.keys, gate.now_ms) {
                Ok(k) => k,
                Err(_) => continue, // checked in check_one; the registry cannot change here
            };
            let Ok(sig) = Signature::from_slice(event.signature()) else {
                continue;
            };
            at.push(i);
            messages.push(event.signed_message().into_owned());
            signatures.push(sig);
            keys.push(key);
        }
    }
    let refs: Vec<&[u8]> = messages.iter().map(Vec::as_slice).collect();
    let verified = catch_unwind(AssertUnwindSafe(|| {
        signature::verify_each(&refs, &signatures, &keys)
    }))
    .unwrap_or_else(|_| vec![false; refs.len()]);
    for (i, ok) in at.into_iter().zip(verified) {
        if !ok {
            outcomes[i] = Err(Refusal::BadSignature(signature::SignatureError::Mismatch));
        }
    }
}

/// Everything but the signature itself; a malformed signature is refused here.
/// A kept EPCIS event's signature is checked here, before its JSON is read.
fn check_one(r: &Record, gate: &Gate<'_>) -> Outcome {
    let (event, datum_at) = match leaf::epcis_record(&r.value) {
        Some(raw) => {
            // Its signature over the raw text first: nobody without a device
            // key can make the sealer parse JSON (milliseconds for a large
            // event, where a signature check takes microseconds).
            let raw = raw?;
            // Bounded before it is hashed for the signature, too.
            if raw.event.len() > schemas::epcis_event::MAX_EVENT_BYTES {
                return Err(Refusal::Invalid(schemas::FieldError::new(
                    "event",
                    format!(
                        "{} bytes, at most {}",
                        raw.event.len(),
                        schemas::epcis_event::MAX_EVENT_BYTES
                    ),
                )));
            }
            let key = gate::device_key(&raw.device_id, gate.keys, gate.now_ms)?;
            if gate.check_signatures {
                raw.verify(&key).map_err(Refusal::BadSignature)?;
            }
            (LeafEvent::from(raw), 0)
        }
        None => leaf::decode_record(&r.value)?,
    };
    gate::check_fields(&event, gate.now_ms, gate.bounds)?;
    if let Some(n) = gate.partitions {
        let expected = schemas::partition::partition_for(event.key().as_bytes(), n);
        if i64::from(expected) != i64::from(r.partition) {
            return Err(Refusal::WrongPartition {
                expected,
                found: r.partition,
            });
        }
    }
    gate::key_for(&event, gate.keys, gate.now_ms)?;
    if event.signature().is_empty() {
        return Err(Refusal::BadSignature(signature::SignatureError::Missing));
    }
    if Signature::from_slice(event.signature()).is_err() {
        return Err(Refusal::BadSignature(signature::SignatureError::Malformed(
            event.signature().len(),
        )));
    }
    let hash = event.kept_hash().and_then(HashId::parse);
    Ok(Checked {
        event,
        datum_at,
        hash,
    })
}

fn ranges_of(records: &[Record]) -> Vec<Range> {
    let mut ranges: Vec<Range> = Vec::new();
    for r in records {
        match ranges.last_mut() {
            Some(range) if range.partition == r.partition => range.last = r.offset,
            _ => ranges.push(Range {
                partition: r.partition,
                first: r.offset,
                last: r.offset,
            }),
        }
    }
    ranges
}

/// One row of `scan_events`, in column order; `proof`, which rows sealed before
/// the tree was stored in tiles carry, is left empty.
#[derive(Row, Serialize, Debug, Clone)]
pub struct EventRow {
    pub event_id: String,
    pub item_id: String,
    pub item_ids: Vec<String>,
    pub event_time: u32,
    pub event_time_ms: i64,
    pub event_timezone_offset: String,
    pub action: &'static str,
    pub biz_step: Cow<'static, str>,
    pub disposition: Cow<'static, str>,
    pub read_point: String,
    pub biz_location: String,
    pub country: String,
    pub biz_transaction_types: Vec<Cow<'static, str>>,
    pub biz_transaction_ids: Vec<String>,
    pub temperature_c: Option<f32>,
    pub relative_humidity_pct: Option<f32>,
    pub device_id: String,
    #[serde(with = "serde_bytes")]
    pub payload: Vec<u8>,
    pub leaf_hash: Hash,
    pub epoch_id: u64,
    pub leaf_index: u32,
    pub kafka_partition: u16,
    pub kafka_offset: u64,
    pub sealed_at: u32,
    pub kafka_timestamp_ms: i64,
    pub event_type: &'static str,
    pub parent_id: String,
    pub child_epcs: Vec<String>,
    pub quantity_classes: Vec<String>,
    /// NaN where a quantity has no amount.
    pub quantities: Vec<f64>,
    pub quantity_uoms: Vec<String>,
    pub sensor_types: Vec<String>,
    pub sensor_values: Vec<f64>,
    /// The GS1 CBV 2.0 event hash ID, written as its text (empty for none;
    /// empty too in rows sealed before scan events' hashes were stored:
    /// readers derive it from the payload).
    #[serde(serialize_with = "hash_text")]
    pub event_hash: Option<HashId>,
}

/// The `event_hash` column: a hash ID's text, or empty.
fn hash_text<S: serde::Serializer>(h: &Option<HashId>, s: S) -> Result<S::Ok, S::Error> {
    match h {
        Some(h) => s.serialize_str(h.text().as_str()),
        None => s.serialize_str(""),
    }
}

/// A sealed epoch, ready to be written.
#[derive(Debug)]
pub struct SealedEpoch {
    pub epoch_id: u64,
    pub window_start_ms: i64,
    pub window_end_ms: i64,
    pub root: Hash,
    pub rows: Vec<EventRow>,
    /// The tree below the root (empty for fewer than two leaves).
    pub tiles: Vec<Tile>,
    pub ranges: Vec<Range>,
    pub rejected: Vec<Rejected>,
}

/// Epoch ids are unique across sealers and grow with time: the closing time in
/// milliseconds, and below it the lowest partition sealed, which only one sealer
/// owns at a time.
pub fn epoch_id(close_ms: i64, lowest_partition: i32) -> u64 {
    ((close_ms as u64) << 16) | (lowest_partition as u64 & 0xffff)
}

/// When an epoch was sealed (ms since the Unix epoch): the time its id holds,
/// the moment its events' device keys are judged at.
pub fn sealed_at_ms(epoch_id: u64) -> i64 {
    (epoch_id >> 16) as i64
}

/// Seals the records of one window: the gate, then the tree over what passed.
/// `records` may arrive in any order. Event ids sealed in earlier epochs are the
/// caller's to refuse (`Admission::refuse_sealed`) between `admit` and `seal_admitted`.
pub fn seal(
    epoch_id: u64,
    window_start_ms: i64,
    window_end_ms: i64,
    records: Vec<Record>,
    sealed_at: u32,
    gate: &Gate<'_>,
) -> SealedEpoch {
    let admission = admit(records, gate);
    seal_admitted(
        epoch_id,
        window_start_ms,
        window_end_ms,
        admission,
        sealed_at,
    )
}

/// The tree and the rows of what the gate admitted.
pub fn seal_admitted(
    epoch_id: u64,
    window_start_ms: i64,
    window_end_ms: i64,
    admission: Admission,
    sealed_at: u32,
) -> SealedEpoch {
    build(
        epoch_id,
        window_start_ms,
        window_end_ms,
        admission,
        sealed_at,
        true,
    )
}

/// The same rows without sealing them: no gate beyond decoding, no leaf hashes,
/// no tree (zero hashes, no tiles). Only for `sealer run
/// --bench-unsealed`, which measures what sealing costs; such rows prove nothing.
pub fn unsealed(
    window_start_ms: i64,
    window_end_ms: i64,
    mut records: Vec<Record>,
    sealed_at: u32,
) -> SealedEpoch {
    records.sort_unstable_by_key(|r| (r.partition, r.offset));
    let mut admission = Admission {
        ranges: ranges_of(&records),
        ..Admission::default()
    };
    for record in records {
        match leaf::decode_record(&record.value) {
            Ok((event, datum_at)) => admission.admitted.push(Admitted {
                record,
                event,
                datum_at,
                hash: None,
            }),
            Err(e) => admission.rejected.push(Rejected {
                record,
                refusal: e.into(),
            }),
        }
    }
    build(
        0,
        window_start_ms,
        window_end_ms,
        admission,
        sealed_at,
        false,
    )
}

fn build(
    epoch_id: u64,
    window_start_ms: i64,
    window_end_ms: i64,
    admission: Admission,
    sealed_at: u32,
    sealing: bool,
) -> SealedEpoch {
    let Admission {
        admitted,
        rejected,
        ranges,
    } = admission;
    let leaves: Vec<Hash> = if sealing {
        admitted
            .iter()
            .map(|a| leaf_hash(a.record.value.get(a.datum_at..).unwrap_or_default()))
            .collect()
    } else {
        vec![[0; 32]; admitted.len()]
    };
    let (root, tiles) = if !sealing {
        ([0; 32], Vec::new())
    } else if leaves.is_empty() {
        (empty_root(), Vec::new())
    } else {
        let tree = EpochTree::build(&leaves);
        (tree.root(), tiles_of(&tree))
    };

    let rows = admitted
        .into_iter()
        .zip(leaves)
        .enumerate()
        .map(|(i, (a, leaf))| {
            let Admitted {
                record,
                event: e,
                datum_at,
                hash,
            } = a;
            let mut payload = record.value;
            payload.drain(..datum_at.min(payload.len()));
            let place = Place {
                payload,
                leaf_hash: leaf,
                epoch_id,
                leaf_index: i as u32,
                kafka_partition: record.partition as u16,
                kafka_offset: record.offset as u64,
                sealed_at,
                kafka_timestamp_ms: record.timestamp_ms,
            };
            match e {
                LeafEvent::Scan(e) => scan_row(e, hash, place),
                LeafEvent::Epcis(k) => epcis_row(*k, hash, place),
            }
        })
        .collect();
    SealedEpoch {
        epoch_id,
        window_start_ms,
        window_end_ms,
        root,
        rows,
        tiles,
        ranges,
        rejected,
    }
}

/// Where a row's event sits: what every row has beside the event's fields.
struct Place {
    payload: Vec<u8>,
    leaf_hash: Hash,
    epoch_id: u64,
    leaf_index: u32,
    kafka_partition: u16,
    kafka_offset: u64,
    sealed_at: u32,
    kafka_timestamp_ms: i64,
}

fn seconds(ms: i64) -> u32 {
    ms.div_euclid(1000).clamp(0, u32::MAX as i64) as u32
}

fn scan_row(e: ScanEvent, event_hash: Option<HashId>, p: Place) -> EventRow {
    EventRow {
        // The gate admits no event without items.
        item_id: e.item_ids.first().cloned().unwrap_or_default(),
        event_time: seconds(e.event_time),
        event_time_ms: e.event_time,
        action: e.action.as_str(),
        biz_step: Cow::Borrowed(e.biz_step.as_str()),
        disposition: Cow::Borrowed(e.disposition.as_str()),
        biz_transaction_types: e
            .biz_transactions
            .iter()
            .map(|t| Cow::Borrowed(t.kind.as_str()))
            .collect(),
        biz_transaction_ids: e.biz_transactions.into_iter().map(|t| t.id).collect(),
        event_id: e.event_id,
        item_ids: e.item_ids,
        event_timezone_offset: e.event_timezone_offset,
        read_point: e.read_point,
        biz_location: e.biz_location,
        country: e.country,
        temperature_c: e.temperature_c,
        relative_humidity_pct: e.relative_humidity_pct,
        device_id: e.device_id,
        payload: p.payload,
        leaf_hash: p.leaf_hash,
        epoch_id: p.epoch_id,
        leaf_index: p.leaf_index,
        kafka_partition: p.kafka_partition,
        kafka_offset: p.kafka_offset,
        sealed_at: p.sealed_at,
        kafka_timestamp_ms: p.kafka_timestamp_ms,
        event_type: "ObjectEvent",
        parent_id: String::new(),
        child_epcs: Vec::new(),
        quantity_classes: Vec::new(),
        quantities: Vec::new(),
        quantity_uoms: Vec::new(),
        sensor_types: Vec::new(),
        sensor_values: Vec::new(),
        event_hash,
    }
}

/// The row of an EPCIS event: its facts (the gate admits only events whose
/// JSON gives them) as columns.
fn epcis_row(k: Kept, event_hash: Option<HashId>, p: Place) -> EventRow {
    let Kept { record, facts, .. } = k;
    // The gate admitted it, so its facts are there.
    let f = facts.unwrap_or_default();
    EventRow {
        item_id: f.key().to_string(),
        item_ids: f.item_ids(),
        event_time: seconds(f.event_time),
        event_time_ms: f.event_time,
        event_timezone_offset: f.event_timezone_offset,
        action: f.action.map_or("", |a| a.as_str()),
        biz_step: Cow::Owned(f.biz_step),
        disposition: Cow::Owned(f.disposition),
        read_point: f.read_point,
        biz_location: f.biz_location,
        country: f.country,
        biz_transaction_types: f
            .biz_transactions
            .iter()
            .map(|(t, _)| Cow::Owned(t.clone()))
            .collect(),
        biz_transaction_ids: f.biz_transactions.into_iter().map(|(_, id)| id).collect(),
        temperature_c: None,
        relative_humidity_pct: None,
        event_id: record.event_id,
        device_id: record.device_id,
        payload: p.payload,
        leaf_hash: p.leaf_hash,
        epoch_id: p.epoch_id,
        leaf_index: p.leaf_index,
        kafka_partition: p.kafka_partition,
        kafka_offset: p.kafka_offset,
        sealed_at: p.sealed_at,
        kafka_timestamp_ms: p.kafka_timestamp_ms,
        event_type: f.kind.as_str(),
        parent_id: f.parent_id,
        child_epcs: f.child_epcs,
        quantity_classes: f.quantities.iter().map(|q| q.epc_class.clone()).collect(),
        quantities: f
            .quantities
            .iter()
            .map(|q| q.quantity.unwrap_or(f64::NAN))
            .collect(),
        quantity_uoms: f.quantities.into_iter().map(|q| q.uom).collect(),
        sensor_types: f.sensors.iter().map(|(t, _)| t.clone()).collect(),
        sensor_values: f.sensors.into_iter().map(|(_, v)| v).collect(),
        event_hash,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proof::verify;
    use ed25519_dalek::SigningKey;
    use schemas::avro;
    use schemas::{Action, BizStep, Disposition, ScanEvent};

    const NOW: i64 = 1_795_600_800_000;

    fn key() -> SigningKey {
        SigningKey::from_bytes(&[11; 32])
    }

    fn keys() -> KeyHistory {
        let mut h = KeyHistory::default();
        h.record("scanner-1", &key().verifying_key(), false, NOW - 86_400_000);
        h
    }

    fn gate(keys: &KeyHistory) -> Gate<'_> {
        Gate {
            keys,
            now_ms: NOW,
            bounds: TimeBounds::default(),
            threads: 2,
            partitions: None,
            check_signatures: true,
        }
    }

    fn unsigned(n: u64) -> ScanEvent {
        ScanEvent {
            event_id: format!("00000000-0000-4000-8000-{n:012x}"),
            event_time: NOW - 60_000 + n as i64,
            event_timezone_offset: "+08:00".into(),
            action: Action::Observe,
            biz_step: BizStep::Storing,
            disposition: Disposition::SellableAccessible,
            item_ids: vec![format!("urn:epc:id:sgtin:0614141.812345.{n}")],
            read_point: "urn:epc:id:sgln:0614141.00777.0".into(),
            biz_location: "urn:epc:id:sgln:0614141.00777.0".into(),
            country: "CN".into(),
            biz_transactions: vec![],
            temperature_c: None,
            relative_humidity_pct: None,
            device_id: "scanner-1".into(),
            signature: vec![],
        }
    }

    fn event(n: u64) -> ScanEvent {
        let mut e = unsigned(n);
        signature::sign(&mut e, &key());
        e
    }

    fn record(partition: i32, offset: i64, value: Vec<u8>) -> Record {
        Record {
            partition,
            offset,
            timestamp_ms: 0,
            value,
        }
    }

    fn reasons(sealed: &SealedEpoch) -> Vec<(i64, &'static str)> {
        let mut r: Vec<_> = sealed
            .rejected
            .iter()
            .map(|r| (r.record.offset, r.refusal.reason()))
            .collect();
        r.sort();
        r
    }

    #[test]
    fn seals_in_partition_offset_order_with_verifiable_proofs_and_dlq() {
        let keys = keys();
        let records = vec![
            record(3, 11, avro::encode_single_object(&event(4))),
            record(1, 7, avro::encode_single_object(&event(1))),
            record(3, 10, b"not avro".to_vec()),
            record(1, 8, avro::encode_single_object(&event(2))),
            record(2, 5, avro::encode_single_object(&event(3))),
        ];
        let sealed = seal(42, 0, 1000, records, 0, &gate(&keys));
        let order: Vec<(u16, u64)> = sealed
            .rows
            .iter()
            .map(|r| (r.kafka_partition, r.kafka_offset))
            .collect();
        assert_eq!(order, vec![(1, 7), (1, 8), (2, 5), (3, 11)]);
        assert_eq!(
            sealed.ranges,
            vec![
                Range {
                    partition: 1,
                    first: 7,
                    last: 8
                },
                Range {
                    partition: 2,
                    first: 5,
                    last: 5
                },
                Range {
                    partition: 3,
                    first: 10,
                    last: 11
                }
            ]
        );
        assert_eq!(reasons(&sealed), vec![(10, "not_single_object")]);
        for row in &sealed.rows {
            assert_eq!(
                row.payload,
                avro::encode_datum(&avro::decode_datum(&row.payload).unwrap())
            );
            assert_eq!(
                row.leaf_hash,
                leaf_hash(&row.payload),
                "the leaf is the stored payload"
            );
            let proof = crate::tile::proof_from(row.leaf_index.into(), 4, |id| {
                sealed.tiles.iter().find(|t| t.id == id)
            })
            .unwrap();
            assert!(verify(
                &row.leaf_hash,
                row.leaf_index.into(),
                4,
                &proof,
                &sealed.root
            ));
            assert_eq!(row.epoch_id, 42);
        }
        assert_eq!(sealed.rows[3].event_id, event(4).event_id);
    }

    /// The benchmark's gate without signature checks admits a forged
    /// signature that the real gate refuses; nothing else changes.
    #[test]
    fn only_the_benchmark_gate_skips_signatures() {
        let keys = keys();
        let mut forged = event(1);
        forged.country = "DE".into();
        let mut unsigned_one = unsigned(2);
        unsigned_one.signature.clear();
        let records = || {
            vec![
                record(0, 0, avro::encode_single_object(&forged)),
                record(0, 1, avro::encode_single_object(&unsigned_one)),
            ]
        };
        let checked = seal(1, 0, 1000, records(), 0, &gate(&keys));
        assert_eq!(
            reasons(&checked),
            vec![(0, "bad_signature"), (1, "bad_signature")]
        );
        let unchecked = Gate {
            check_signatures: false,
            ..gate(&keys)
        };
        let sealed = seal(1, 0, 1000, records(), 0, &unchecked);
        assert_eq!(sealed.rows.len(), 1, "the forged one passes");
        assert_eq!(
            reasons(&sealed),
            vec![(1, "bad_signature")],
            "a missing one does not"
        );
    }

    #[test]
    fn an_epoch_of_only_bad_records_still_covers_their_offsets() {
        let keys = keys();
        let sealed = seal(
            1,
            0,
            1000,
            vec![record(0, 3, vec![0xC3, 0x01, 1, 2])],
            0,
            &gate(&keys),
        );
        assert!(sealed.rows.is_empty());
        assert_eq!(sealed.root, empty_root());
        assert_eq!(
            sealed.ranges,
            vec![Range {
                partition: 0,
                first: 3,
                last: 3
            }]
        );
    }

    #[test]
    fn epoch_ids_grow_with_time_and_differ_by_partition() {
        assert!(epoch_id(1001, 0) > epoch_id(1000, 11));
        assert_ne!(epoch_id(1000, 1), epoch_id(1000, 2));
    }

    /// The attacks a producer with broker access can make, in one window, among
    /// ordinary records: each is refused with its reason, the rest is sealed.
    #[test]
    fn hostile_records_are_refused_with_their_reasons_and_the_rest_sealed() {
        let keys = keys();
        let mut records = Vec::new();
        let mut offset = 0;
        let mut push = |value: Vec<u8>| {
            records.push(record(0, offset, value));
            offset += 1;
        };
        push(avro::encode_single_object(&event(1))); // 0: fine
        let mut empty = unsigned(2);
        empty.item_ids.clear();
        signature::sign(&mut empty, &key());
        push(avro::encode_single_object(&empty)); // 1: no items (panicked before)
        let mut forged = event(3);
        forged.country = "DE".into();
        push(avro::encode_single_object(&forged)); // 2: altered after signing
        let mut reused = unsigned(4);
        reused.signature = event(1).signature; // 3: someone else's signature
        push(avro::encode_single_object(&reused));
        let stranger = SigningKey::from_bytes(&[99; 32]);
        let mut unknown = unsigned(5);
        unknown.device_id = "not-registered".into();
        signature::sign(&mut unknown, &stranger);
        push(avro::encode_single_object(&unknown)); // 4: unknown device
        let mut sized = avro::encode_single_object(&event(6));
        // 5: the same datum with a padded (over-long) varint for event_time
        let at = 10 + 37;
        let mut long_len = 0;
        while sized[at + long_len] & 0x80 != 0 {
            long_len += 1;
        }
        sized[at + long_len] |= 0x80;
        sized.insert(at + long_len + 1, 0);
        push(sized);
        push(avro::encode_single_object(&event(1))); // 6: same id again
        let mut future = unsigned(7);
        future.event_time = NOW + 3_600_000;
        signature::sign(&mut future, &key());
        push(avro::encode_single_object(&future)); // 7: an hour ahead
        let mut old = unsigned(8);
        old.event_time = NOW - 200 * 86_400_000;
        signature::sign(&mut old, &key());
        push(avro::encode_single_object(&old)); // 8: 200 days old
        let mut unsigned_one = unsigned(9);
        unsigned_one.signature.clear();
        push(avro::encode_single_object(&unsigned_one)); // 9: no signature
        push(avro::encode_single_object(&event(10))); // 10: fine

        let sealed = seal(7, 0, 1000, records, 0, &gate(&keys));
        assert_eq!(
            reasons(&sealed),
            vec![
                (1, "invalid_field"),
                (2, "bad_signature"),
                (3, "bad_signature"),
                (4, "unknown_device"),
                (5, "non_canonical"),
                (6, "duplicate"),
                (7, "event_time_in_future"),
                (8, "event_time_too_old"),
                (9, "bad_signature"),
            ]
        );
        let sealed_offsets: Vec<u64> = sealed.rows.iter().map(|r| r.kafka_offset).collect();
        assert_eq!(sealed_offsets, vec![0, 10]);
        assert_eq!(
            sealed.ranges,
            vec![Range {
                partition: 0,
                first: 0,
                last: 10
            }]
        );
    }

    /// Records written before the fingerprint followed the specification carry
    /// the old one: still sealed, to the same leaf, and not a second time.
    #[test]
    fn records_with_the_legacy_fingerprint_are_sealed_once_to_the_same_leaf() {
        let legacy = |e: &ScanEvent| {
            let mut v = avro::encode_single_object(e);
            v[2..10].copy_from_slice(&avro::LEGACY_FINGERPRINT.to_le_bytes());
            v
        };
        let sealed = seal(
            1,
            0,
            1000,
            vec![
                record(0, 0, legacy(&event(1))),
                record(0, 1, avro::encode_single_object(&event(2))),
                record(0, 2, avro::encode_single_object(&event(1))),
            ],
            0,
            &gate(&keys()),
        );
        assert_eq!(reasons(&sealed), vec![(2, "duplicate")]);
        let offsets: Vec<u64> = sealed.rows.iter().map(|r| r.kafka_offset).collect();
        assert_eq!(offsets, vec![0, 1]);
        assert_eq!(
            sealed.rows[0].leaf_hash,
            leaf_hash(&avro::encode_datum(&event(1)))
        );
    }

    #[test]
    fn a_revoked_device_is_refused_from_its_revocation_on() {
        let mut keys = keys();
        keys.record("scanner-1", &key().verifying_key(), true, NOW - 10);
        let sealed = seal(
            1,
            0,
            1000,
            vec![record(0, 0, avro::encode_single_object(&event(1)))],
            0,
            &gate(&keys),
        );
        assert_eq!(reasons(&sealed), vec![(0, "revoked_device")]);
        let earlier = Gate {
            now_ms: NOW - 20,
            ..gate(&keys)
        };
        let mut e = unsigned(1);
        e.event_time = NOW - 30_000;
        signature::sign(&mut e, &key());
        let sealed = seal(
            1,
            0,
            1000,
            vec![record(0, 0, avro::encode_single_object(&e))],
            0,
            &earlier,
        );
        assert_eq!(sealed.rows.len(), 1, "sealed before the revocation");
    }

    #[test]
    fn many_records_over_threads_keep_their_order_and_verdicts() {
        let keys = keys();
        let mut records: Vec<Record> = (0..1000u64)
            .map(|n| {
                record(
                    (n % 3) as i32,
                    n as i64,
                    avro::encode_single_object(&event(n)),
                )
            })
            .collect();
        records[500].value[40] ^= 1; // breaks event 500's signature or its decoding
        let sealed = seal(1, 0, 1000, records, 0, &gate(&keys));
        assert_eq!(sealed.rows.len(), 999);
        assert_eq!(sealed.rejected.len(), 1);
        assert_eq!(sealed.rejected[0].record.offset, 500);
        for w in sealed.rows.windows(2) {
            assert!(
                (w[0].kafka_partition, w[0].kafka_offset)
                    < (w[1].kafka_partition, w[1].kafka_offset)
            );
        }
        let ids: HashSet<&str> = sealed.rows.iter().map(|r| r.event_id.as_str()).collect();
        assert_eq!(ids.len(), 999);
    }

    #[test]
    fn a_record_outside_its_keys_partition_is_refused() {
        let keys = keys();
        let e = event(1);
        let home = schemas::partition::partition_for(e.key().as_bytes(), 12) as i32;
        let elsewhere = (home + 1) % 12;
        let gate = Gate {
            partitions: Some(12),
            ..gate(&keys)
        };
        let value = avro::encode_single_object(&e);
        let sealed = seal(
            1,
            0,
            1000,
            vec![record(home, 0, value.clone()), record(elsewhere, 0, value)],
            0,
            &gate,
        );
        assert_eq!(sealed.rows.len(), 1);
        assert_eq!(sealed.rows[0].kafka_partition as i32, home);
        assert_eq!(reasons(&sealed), vec![(0, "wrong_partition")]);
    }

    #[test]
    fn ids_sealed_before_are_refused_as_duplicates() {
        let keys = keys();
        let records = (0..4u64)
            .map(|n| record(0, n as i64, avro::encode_single_object(&event(n))))
            .collect();
        let mut admission = admit(records, &gate(&keys));
        admission.refuse_sealed(&HashSet::from([event(2).event_id]));
        let sealed = seal_admitted(1, 0, 1000, admission, 0);
        assert_eq!(reasons(&sealed), vec![(2, "duplicate")]);
        assert_eq!(sealed.rows.len(), 3);
    }

    #[test]
    fn a_scan_event_under_another_id_is_a_duplicate_by_its_hash() {
        let keys = keys();
        // The same scan signed again by its device under a fresh id: the same
        // GS1 event hash (the id is not part of it).
        let mut again = unsigned(1);
        again.event_id = "00000000-0000-4000-8000-0000000000aa".into();
        signature::sign(&mut again, &key());
        assert_eq!(
            schemas::event_hash::event_hash(&again),
            schemas::event_hash::event_hash(&event(1))
        );
        let records = vec![
            record(0, 0, avro::encode_single_object(&event(1))),
            record(0, 1, avro::encode_single_object(&event(2))),
            record(0, 2, avro::encode_single_object(&again)),
        ];
        let sealed = seal(1, 0, 1000, records, 0, &gate(&keys));
        assert_eq!(reasons(&sealed), vec![(2, "duplicate")]);
        // Each row holds its hash, as readers derive it from the payload.
        for row in &sealed.rows {
            let e: ScanEvent = avro::decode_datum(&row.payload).unwrap();
            assert_eq!(row.event_hash, Some(HashId::of(&e)));
        }
        // Alone in a later epoch it is admitted with the hash the gatekeeper
        // looks up (`tests/pipeline.rs` replays it against the real stack).
        let admission = admit(
            vec![record(0, 3, avro::encode_single_object(&again))],
            &gate(&keys),
        );
        assert_eq!(admission.admitted[0].hash, Some(HashId::of(&event(1))));
    }

    /// A kept EPCIS event of device scanner-1, numbered `n`, signed unless told.
    fn kept(n: u64, id: u64, sign: bool) -> schemas::epcis_event::EpcisEvent {
        let event = serde_json::json!({
            "type": "AggregationEvent",
            "eventID": format!("urn:uuid:00000000-0000-4000-a000-{id:012x}"),
            "eventTime": schemas::time::format_rfc3339(NOW - 60_000 + n as i64, "+08:00"),
            "eventTimeZoneOffset": "+08:00",
            "parentID": format!("urn:epc:id:sscc:0614141.{n:010}"),
            "childEPCs": [format!("urn:epc:id:sgtin:0614141.812345.{n}")],
            "action": "ADD",
            "st:deviceID": "scanner-1",
        });
        let (text, facts) = schemas::epcis_event::keep(&event, &Default::default(), "").unwrap();
        let mut r = schemas::epcis_event::EpcisEvent {
            event_id: schemas::epcis_event::id_of(&facts, None).unwrap(),
            event: text,
            device_id: "scanner-1".into(),
            signature: vec![0; 64],
        };
        if sign {
            r.sign(&key());
        }
        r
    }

    #[test]
    fn kept_epcis_events_are_sealed_beside_scan_events_and_their_attacks_refused() {
        let keys = keys();
        let mut records = Vec::new();
        let mut push = |value: Vec<u8>| {
            let offset = records.len() as i64;
            records.push(record(0, offset, value));
        };
        push(avro::encode_single_object(&event(1))); // 0: a scan event
        push(kept(1, 1, true).encode()); // 1: a kept event
        push(kept(2, 2, false).encode()); // 2: not signed by its device
        let mut spaced = kept(3, 3, true);
        spaced.event = spaced.event.replacen(':', ": ", 1);
        spaced.sign(&key());
        push(spaced.encode()); // 3: signed, but not canonical JSON
        let mut other_id = kept(4, 4, true);
        other_id.event_id = "00000000-0000-4000-a000-0000000000ff".into();
        push(other_id.encode()); // 4: filed under another id than its eventID's
        let mut other_device = kept(5, 5, true);
        other_device.device_id = "scanner-2".into();
        push(other_device.encode()); // 5: another device than its st:deviceID (unknown here)
        push(kept(1, 6, true).encode()); // 6: event 1 again under another eventID
        let mut trailing = kept(7, 7, true).encode();
        trailing.push(0);
        push(trailing); // 7: bytes after the datum
        let mut huge = kept(8, 8, false);
        huge.event = format!("{} {}", huge.event, " ".repeat(70_000));
        push(huge.encode()); // 8: over 64 KiB, refused before its signature is hashed
        let sealed = seal(1, NOW - 1000, NOW, records, 0, &gate(&keys));
        assert_eq!(
            reasons(&sealed),
            vec![
                (2, "bad_signature"),
                (3, "invalid_field"),
                (4, "invalid_field"),
                (5, "unknown_device"),
                (6, "duplicate"),
                (7, "malformed"),
                (8, "invalid_field"),
            ]
        );
        assert_eq!(sealed.rows.len(), 2);
        let row = &sealed.rows[1];
        assert_eq!(row.event_type, "AggregationEvent");
        assert_eq!(row.item_id, "urn:epc:id:sscc:0614141.0000000001");
        assert_eq!(row.child_epcs, ["urn:epc:id:sgtin:0614141.812345.1"]);
        // The kept event's own hash, from its JSON.
        let k = match leaf::decode_leaf(&row.payload).unwrap() {
            LeafEvent::Epcis(k) => k,
            LeafEvent::Scan(_) => panic!("a scan leaf"),
        };
        assert_eq!(row.event_hash, k.hash.as_deref().and_then(HashId::parse));
        assert!(row.event_hash.is_some());
        // The leaf is the whole record, and it verifies as one.
        assert_eq!(row.payload, kept(1, 1, true).encode());
        assert_eq!(sealed.rows[0].event_type, "ObjectEvent");
        assert_eq!(sealed.rows[0].event_hash, Some(HashId::of(&event(1))));
    }
}
