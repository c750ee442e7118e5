//! Inputs for the benchmarks: a corpus of scan events as the sealer receives them.

use schemas::{avro, Action, BizStep, BizTransaction, BizTransactionType, Disposition, ScanEvent};
use sealer::epoch::Record;

/// `n` Kafka records of realistic events, ~290 bytes each (signature included:
/// signing happens on devices, so a fixed signature does not change the work).
pub fn records(n: usize) -> Vec<Record> {
    (0..n as u64)
        .map(|i| {
            let e = ScanEvent {
                event_id: format!("{:08x}-1d2c-4b3a-8f00-{:012x}", i * 7919, i),
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
                device_id: format!("sim1-cn-customs-{}", i % 16),
                signature: vec![(i % 251) as u8; 64],
            };
            Record {
                partition: (i % 12) as i32,
                offset: (i / 12) as i64,
                timestamp_ms: 0,
                value: avro::encode_single_object(&e),
            }
        })
        .collect()
}
