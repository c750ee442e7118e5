//! Inputs for the benchmarks: a corpus of scan events as the sealer receives them.

use ed25519_dalek::SigningKey;
use schemas::devices::KeyHistory;
use schemas::gate::TimeBounds;
use schemas::{avro, Action, BizStep, BizTransaction, BizTransactionType, Disposition, ScanEvent};
use sealer::epoch::{Gate, Record};

/// When the benchmark's events are sealed: their times are just before it.
pub const NOW_MS: i64 = 1_795_600_800_000 + 86_400_000;
const DEVICES: u64 = 16;

fn device_key(d: u64) -> SigningKey {
    SigningKey::from_bytes(&[d as u8 + 1; 32])
}

/// The registry the benchmark's devices are in.
pub fn keys() -> KeyHistory {
    let mut h = KeyHistory::default();
    for d in 0..DEVICES {
        h.record(
            &format!("sim1-cn-customs-{d}"),
            &device_key(d).verifying_key(),
            false,
            NOW_MS - 10 * 86_400_000,
        );
    }
    h
}

/// The gate as `sealer run` sets it, over `threads` threads.
pub fn gate(keys: &KeyHistory, threads: usize) -> Gate<'_> {
    Gate {
        keys,
        now_ms: NOW_MS,
        bounds: TimeBounds::default(),
        threads,
        partitions: Some(12),
        check_signatures: true,
    }
}

/// `n` Kafka records of realistic events, ~290 bytes each, each signed by its
/// device as a scanner would (signing happens on devices and is not measured).
pub fn records(n: usize) -> Vec<Record> {
    let keys: Vec<SigningKey> = (0..DEVICES).map(device_key).collect();
    (0..n as u64)
        .map(|i| {
            let e = ScanEvent {
                event_id: format!("{:08x}-1d2c-4b3a-8f00-{:012x}", (i * 7919) as u32, i),
                event_time: 1_795_600_800_000 + i as i64 * 37,
                event_timezone_offset: "+08:00".into(),
                action: Action::Observe,
                biz_step: BizStep::CustomsClearance,
                disposition: Disposition::CustomsReleased,
                item_ids: vec![format!("urn:epc:id:sgtin:614141.{:07}.{i}", i % 9_000_000)],
                read_point: "urn:epc:id:sgln:0614141.00777.0".into(),
                biz_location: "urn:epc:id:sgln:0614141.00888.1".into(),
                country: "CN".into(),
                biz_transactions: vec![BizTransaction {
                    kind: BizTransactionType::CustomsDeclaration,
                    id: format!("2026{:014}", i),
                }],
                temperature_c: (i % 5 == 0).then_some(4.5),
                relative_humidity_pct: None,
                device_id: format!("sim1-cn-customs-{}", i % DEVICES),
                signature: Vec::new(),
            };
            let mut e = e;
            schemas::signature::sign(&mut e, &keys[(i % DEVICES) as usize]);
            Record {
                partition: schemas::partition::partition_for(e.key().as_bytes(), 12) as i32,
                offset: (i / 12) as i64,
                timestamp_ms: 0,
                value: avro::encode_single_object(&e),
            }
        })
        .collect()
}
