//! Sealing one epoch: the records a sealer consumed in one window, in (partition,
//! offset) order, decoded, hashed into leaves, built into an RFC 6962 tree, and
//! turned into the rows ClickHouse stores with each event's inclusion proof.
//! Pure and synchronous: this is the hot path the criterion bench measures.

use clickhouse::Row;
use schemas::avro::{self, DecodeError};
use serde::Serialize;

use crate::proof::{leaf_hash, EpochTree, Hash};

/// A record as consumed from Kafka.
#[derive(Debug, Clone)]
pub struct Record {
    pub partition: i32,
    pub offset: i64,
    /// Kafka's timestamp of the record (when it was produced), in ms.
    pub timestamp_ms: i64,
    pub value: Vec<u8>,
}

/// A record that is not a scan event: it goes to the dead-letter topic.
#[derive(Debug)]
pub struct Rejected {
    pub record: Record,
    pub error: DecodeError,
}

/// The offsets of one partition an epoch covers, first and last inclusive,
/// rejected records included: a restart resumes after `last`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Range {
    pub partition: i32,
    pub first: i64,
    pub last: i64,
}

/// One row of `sealtrail.scan_events`, in column order.
#[derive(Row, Serialize, Debug, Clone)]
pub struct EventRow {
    pub event_id: String,
    pub item_id: String,
    pub item_ids: Vec<String>,
    pub event_time: u32,
    pub event_time_ms: i64,
    pub event_timezone_offset: String,
    pub action: &'static str,
    pub biz_step: &'static str,
    pub disposition: &'static str,
    pub read_point: String,
    pub biz_location: String,
    pub country: String,
    pub biz_transaction_types: Vec<&'static str>,
    pub biz_transaction_ids: Vec<String>,
    pub temperature_c: Option<f32>,
    pub relative_humidity_pct: Option<f32>,
    pub device_id: String,
    #[serde(with = "serde_bytes")]
    pub payload: Vec<u8>,
    pub leaf_hash: Hash,
    pub epoch_id: u64,
    pub leaf_index: u32,
    pub proof: Vec<Hash>,
    pub kafka_partition: u16,
    pub kafka_offset: u64,
    pub sealed_at: u32,
    pub kafka_timestamp_ms: i64,
}

/// A sealed epoch, ready to be written.
#[derive(Debug)]
pub struct SealedEpoch {
    pub epoch_id: u64,
    pub window_start_ms: i64,
    pub window_end_ms: i64,
    pub root: Hash,
    pub rows: Vec<EventRow>,
    pub ranges: Vec<Range>,
    pub rejected: Vec<Rejected>,
}

/// The root of an epoch with no leaves (every record rejected): RFC 6962's hash
/// of the empty tree, SHA-256 of nothing.
pub fn empty_root() -> Hash {
    use sha2::{Digest, Sha256};
    Sha256::digest([]).into()
}

/// Epoch ids are unique across sealers and grow with time: the closing time in
/// milliseconds, and below it the lowest partition sealed, which only one sealer
/// owns at a time.
pub fn epoch_id(close_ms: i64, lowest_partition: i32) -> u64 {
    ((close_ms as u64) << 16) | (lowest_partition as u64 & 0xffff)
}

/// Seals the records of one window. `records` may arrive in any order.
pub fn seal(
    epoch_id: u64,
    window_start_ms: i64,
    window_end_ms: i64,
    records: Vec<Record>,
    sealed_at: u32,
) -> SealedEpoch {
    build(
        epoch_id,
        window_start_ms,
        window_end_ms,
        records,
        sealed_at,
        true,
    )
}

/// The same rows without sealing them: no leaf hashes, no tree, no proofs (zero
/// hashes, empty proofs). Only for `sealer run --bench-unsealed`, which measures
/// what sealing costs; such rows prove nothing.
pub fn unsealed(
    window_start_ms: i64,
    window_end_ms: i64,
    records: Vec<Record>,
    sealed_at: u32,
) -> SealedEpoch {
    build(0, window_start_ms, window_end_ms, records, sealed_at, false)
}

fn build(
    epoch_id: u64,
    window_start_ms: i64,
    window_end_ms: i64,
    mut records: Vec<Record>,
    sealed_at: u32,
    sealing: bool,
) -> SealedEpoch {
    records.sort_unstable_by_key(|r| (r.partition, r.offset));
    let mut ranges: Vec<Range> = Vec::new();
    for r in &records {
        match ranges.last_mut() {
            Some(range) if range.partition == r.partition => range.last = r.offset,
            _ => ranges.push(Range {
                partition: r.partition,
                first: r.offset,
                last: r.offset,
            }),
        }
    }

    let mut accepted = Vec::with_capacity(records.len());
    let mut rejected = Vec::new();
    for record in records {
        match avro::datum_of(&record.value)
            .and_then(|d| avro::decode_datum(d).map(|e| (e, d.len())))
        {
            Ok((event, datum_len)) => accepted.push((record, event, datum_len)),
            Err(error) => rejected.push(Rejected { record, error }),
        }
    }

    let leaves: Vec<Hash> = if sealing {
        accepted
            .iter()
            .map(|(r, _, len)| leaf_hash(&r.value[r.value.len() - len..]))
            .collect()
    } else {
        vec![[0; 32]; accepted.len()]
    };
    let (root, tree) = if !sealing {
        ([0; 32], None)
    } else if leaves.is_empty() {
        (empty_root(), None)
    } else {
        let tree = EpochTree::build(&leaves);
        (tree.root(), Some(tree))
    };

    let rows = accepted
        .into_iter()
        .zip(leaves)
        .enumerate()
        .map(|(i, ((record, e, len), leaf))| {
            let proof = tree.as_ref().map(|t| t.proof(i)).unwrap_or_default();
            let mut payload = record.value;
            payload.drain(..payload.len() - len);
            EventRow {
                item_id: e.item_ids[0].clone(),
                event_time: (e.event_time.div_euclid(1000)).clamp(0, u32::MAX as i64) as u32,
                event_time_ms: e.event_time,
                action: e.action.as_str(),
                biz_step: e.biz_step.as_str(),
                disposition: e.disposition.as_str(),
                biz_transaction_types: e.biz_transactions.iter().map(|t| t.kind.as_str()).collect(),
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
                payload,
                leaf_hash: leaf,
                epoch_id,
                leaf_index: i as u32,
                proof,
                kafka_partition: record.partition as u16,
                kafka_offset: record.offset as u64,
                sealed_at,
                kafka_timestamp_ms: record.timestamp_ms,
            }
        })
        .collect();
    SealedEpoch {
        epoch_id,
        window_start_ms,
        window_end_ms,
        root,
        rows,
        ranges,
        rejected,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proof::verify;
    use schemas::{Action, BizStep, Disposition, ScanEvent};

    fn event(n: u64) -> ScanEvent {
        ScanEvent {
            event_id: format!("00000000-0000-4000-8000-{n:012x}"),
            event_time: 1_795_600_800_000 + n as i64,
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
            signature: vec![n as u8; 64],
        }
    }

    fn record(partition: i32, offset: i64, value: Vec<u8>) -> Record {
        Record {
            partition,
            offset,
            timestamp_ms: 0,
            value,
        }
    }

    #[test]
    fn seals_in_partition_offset_order_with_verifiable_proofs_and_dlq() {
        let records = vec![
            record(3, 11, avro::encode_single_object(&event(4))),
            record(1, 7, avro::encode_single_object(&event(1))),
            record(3, 10, b"not avro".to_vec()),
            record(1, 8, avro::encode_single_object(&event(2))),
            record(2, 5, avro::encode_single_object(&event(3))),
        ];
        let sealed = seal(42, 0, 1000, records, 0);
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
        assert_eq!(sealed.rejected.len(), 1);
        assert_eq!(sealed.rejected[0].record.offset, 10);
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
            assert!(verify(
                &row.leaf_hash,
                row.leaf_index.into(),
                4,
                &row.proof,
                &sealed.root
            ));
            assert_eq!(row.epoch_id, 42);
        }
        assert_eq!(sealed.rows[3].event_id, event(4).event_id);
    }

    #[test]
    fn an_epoch_of_only_bad_records_still_covers_their_offsets() {
        let sealed = seal(1, 0, 1000, vec![record(0, 3, vec![0xC3, 0x01, 1, 2])], 0);
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
}
