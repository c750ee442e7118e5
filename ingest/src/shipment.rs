//! Packed journeys for the simulator: real shipments travel packed. Items are
//! made and packed into cases of dozens at the factory, cases onto pallets,
//! pallets into one container per shipment at the export warehouse; the
//! container, not each item, is scanned at the ports, at customs and at
//! inspection; the bonded warehouse unpacks it down to the items, which then
//! go their own ways to the last mile. Items' own scans are scan events; the
//! packings and the container's scans are EPCIS events kept whole
//! (`schemas::epcis_event`), as a partner's system would send them. Fully
//! determined by the seed, like `journey`.

use std::collections::HashMap;

use ed25519_dalek::SigningKey;
use schemas::epcis_event::{self, EpcisEvent};
use schemas::leaf::LeafEvent;
use schemas::time::format_rfc3339;
use schemas::{epcis, Action, BizStep, Disposition, ScanEvent};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::journey::{Fleet, Rng, DESTINATION, LAST_MILE_STATIONS, ORIGINS};

const HOUR_MS: i64 = 3_600_000;

/// One event of a shipment, before it is signed.
enum Planned {
    Scan(ScanEvent),
    Epcis { event: Value, device_id: String },
}

impl Planned {
    fn time(&self) -> i64 {
        match self {
            Planned::Scan(e) => e.event_time,
            Planned::Epcis { event, .. } => event["eventTime"]
                .as_str()
                .and_then(|t| schemas::time::parse_rfc3339(t).ok())
                .unwrap_or(0),
        }
    }
}

/// A place that scans: its device, read point, business location and country.
struct Site {
    name: String,
    country: &'static str,
    offset: &'static str,
}

impl Site {
    fn gln(&self) -> (String, String) {
        let code = self.name.rsplit('-').next().unwrap_or("0");
        let gln = format!(
            "{:07}",
            u64::from_str_radix(&hex::encode(&Sha256::digest(self.name.as_bytes())[..3]), 16)
                .unwrap_or(0)
                % 10_000_000
        );
        (
            format!("urn:epc:id:sgln:{gln}.{code}.0"),
            format!("urn:epc:id:sgln:{gln}.{code}.1"),
        )
    }
}

/// Moves a clock on by `hours` and up to `spread` more, plus up to an hour.
fn later(rng: &mut Rng, t: &mut i64, hours: u64, spread: u64) -> i64 {
    *t += (hours + rng.below(spread.max(1))) as i64 * HOUR_MS + rng.below(3_600_000) as i64;
    *t
}

/// One shipment on its way: its events in time order.
pub struct Shipment {
    events: std::vec::IntoIter<Planned>,
}

/// Shipments start within this many days of the corpus's start and have
/// arrived within `journey::JOURNEY_SPAN_DAYS` of it (a test checks).
const START_SPREAD_DAYS: u64 = 15;

impl Shipment {
    /// Plans the `n`th shipment: 1 or 2 pallets of 2 to 4 cases of 12 to 24 items.
    pub fn plan(rng: &mut Rng, n: u64, start_ms: i64, fleet: &Fleet) -> Shipment {
        let (origin, origin_tz) = ORIGINS[rng.below(ORIGINS.len() as u64) as usize];
        let oc = origin.to_ascii_lowercase();
        let (dest, dest_tz) = DESTINATION;
        let site = |name: String, country, offset| Site {
            name,
            country,
            offset,
        };
        let factory = site(
            format!("{oc}-factory-{}", 1 + rng.below(3)),
            origin,
            origin_tz,
        );
        let export = site(format!("{oc}-export-wh"), origin, origin_tz);
        let port = site(format!("{oc}-port"), origin, origin_tz);
        let cn = |name: &str| site(name.to_string(), dest, dest_tz);
        let company = 100_000 + rng.below(900_000);
        let item_ref = 1_000_000 + rng.below(9_000_000);
        let sscc = |k: u64| format!("urn:epc:id:sscc:{company}.{:011}", n * 1_000 + k);
        let container = sscc(0);
        let po = format!("PO-{}", 100_000 + rng.below(900_000));
        let bol = format!("BOL-{origin}-{}", rng.below(1_000_000));
        let declaration = format!(
            "{}{:012}",
            2026_0000 + rng.below(10_000),
            rng.below(1_000_000_000_000)
        );
        let mut out = Vec::new();
        let mut t = start_ms + (rng.below(START_SPREAD_DAYS * 24 * 3600) as i64) * 1000;
        let scan = |rng: &mut Rng,
                    item: &str,
                    at: &Site,
                    time: i64,
                    step: (Action, BizStep, Disposition),
                    po: Option<&str>| {
            let (read_point, biz_location) = at.gln();
            Planned::Scan(ScanEvent {
                event_id: rng.uuid(),
                event_time: time,
                event_timezone_offset: at.offset.to_string(),
                action: step.0,
                biz_step: step.1,
                disposition: step.2,
                item_ids: vec![item.to_string()],
                read_point,
                biz_location,
                country: at.country.to_string(),
                biz_transactions: po
                    .map(|id| schemas::BizTransaction {
                        kind: schemas::BizTransactionType::Po,
                        id: id.to_string(),
                    })
                    .into_iter()
                    .collect(),
                temperature_c: None,
                relative_humidity_pct: None,
                device_id: fleet.device_id(&at.name),
                signature: Vec::new(),
            })
        };
        let epcis = |rng: &mut Rng, at: &Site, time: i64, mut fields: Value| {
            let (read_point, biz_location) = at.gln();
            let device_id = fleet.device_id(&at.name);
            let o = fields.as_object_mut().expect("an object");
            o.insert("eventID".into(), json!(format!("urn:uuid:{}", rng.uuid())));
            o.insert("eventTime".into(), json!(format_rfc3339(time, at.offset)));
            o.insert("eventTimeZoneOffset".into(), json!(at.offset));
            o.insert("readPoint".into(), json!({"id": read_point}));
            o.insert("bizLocation".into(), json!({"id": biz_location}));
            o.insert("st:country".into(), json!(at.country));
            o.insert("st:deviceID".into(), json!(device_id));
            Planned::Epcis {
                event: fields,
                device_id,
            }
        };
        let aggregate =
            |parent: &str, children: &[String], action: &str, step: &str, disposition: &str| {
                json!({"type": "AggregationEvent", "parentID": parent, "childEPCs": children,
                   "action": action, "bizStep": step, "disposition": disposition})
            };

        // At the factory: each item made, then packed into its case; cases onto pallets.
        let pallets = 1 + rng.below(2);
        let mut cases: Vec<(String, Vec<String>)> = Vec::new();
        let mut on_pallet: Vec<(String, Vec<String>)> = Vec::new();
        let mut serial = n * 10_000;
        for p in 0..pallets {
            let pallet = sscc(1 + p);
            let mut its_cases = Vec::new();
            for c in 0..2 + rng.below(3) {
                let case = sscc(100 + p * 10 + c);
                let mut items = Vec::new();
                for _ in 0..12 + rng.below(13) {
                    serial += 1;
                    let item = format!("urn:epc:id:sgtin:{company}.{item_ref}.{serial}");
                    // Made on a line: a minute or so apart.
                    t += 1_000 + rng.below(60_000) as i64;
                    let at = t;
                    out.push(scan(
                        rng,
                        &item,
                        &factory,
                        at,
                        (Action::Add, BizStep::Commissioning, Disposition::Active),
                        None,
                    ));
                    items.push(item);
                }
                let at = later(rng, &mut t, 1, 4);
                out.push(epcis(
                    rng,
                    &factory,
                    at,
                    aggregate(&case, &items, "ADD", "packing", "in_progress"),
                ));
                its_cases.push(case.clone());
                cases.push((case, items));
            }
            let at = later(rng, &mut t, 1, 4);
            out.push(epcis(
                rng,
                &factory,
                at,
                aggregate(&pallet, &its_cases, "ADD", "packing", "in_progress"),
            ));
            on_pallet.push((pallet, its_cases));
        }
        let pallet_ids: Vec<String> = on_pallet.iter().map(|(p, _)| p.clone()).collect();
        // Into the container at the export warehouse; the container travels.
        let at = later(rng, &mut t, 12, 48);
        out.push(epcis(
            rng,
            &export,
            at,
            aggregate(
                &container,
                &pallet_ids,
                "ADD",
                "loading",
                "container_closed",
            ),
        ));
        let container_scan = |step: BizStep,
                              disposition: Disposition,
                              transaction: (&str, &str)| {
            json!({"type": "ObjectEvent", "epcList": [container], "action": "OBSERVE",
                   "bizStep": epcis::biz_step(step), "disposition": epcis::disposition(disposition),
                   "bizTransactionList": [{"type": transaction.0, "bizTransaction": transaction.1}]})
        };
        let customs = epcis::biz_transaction_type(schemas::BizTransactionType::CustomsDeclaration);
        let legs = [
            (
                &port,
                24,
                72,
                BizStep::Departing,
                Disposition::InTransit,
                ("bol", bol.as_str()),
            ),
            (
                &cn("cn-port-sha"),
                72,
                480,
                BizStep::Arriving,
                Disposition::InTransit,
                ("bol", bol.as_str()),
            ),
            (
                &cn("cn-customs-sha"),
                1,
                12,
                BizStep::CustomsClearance,
                Disposition::CustomsHold,
                (customs, declaration.as_str()),
            ),
            (
                &cn("cn-inspection-sha"),
                4,
                48,
                BizStep::Inspecting,
                Disposition::Conformant,
                (customs, declaration.as_str()),
            ),
            (
                &cn("cn-customs-sha"),
                1,
                24,
                BizStep::CustomsClearance,
                Disposition::CustomsReleased,
                (customs, declaration.as_str()),
            ),
        ];
        for (at_site, hours, spread, step, disposition, tx) in legs {
            let at = later(rng, &mut t, hours, spread);
            out.push(epcis(
                rng,
                at_site,
                at,
                container_scan(step, disposition, tx),
            ));
        }
        // Unpacked at the bonded warehouse, down to the items.
        let bonded = cn("cn-bonded-wh-sha");
        let at = later(rng, &mut t, 2, 24);
        out.push(epcis(
            rng,
            &bonded,
            at,
            aggregate(
                &container,
                &pallet_ids,
                "DELETE",
                "unpacking",
                "in_progress",
            ),
        ));
        for (pallet, its_cases) in &on_pallet {
            let at = later(rng, &mut t, 0, 2);
            out.push(epcis(
                rng,
                &bonded,
                at,
                aggregate(pallet, its_cases, "DELETE", "unpacking", "in_progress"),
            ));
        }
        for (case, items) in &cases {
            let at = later(rng, &mut t, 0, 2);
            out.push(epcis(
                rng,
                &bonded,
                at,
                aggregate(case, items, "DELETE", "unpacking", "in_progress"),
            ));
        }
        // Then each item on its own: stored, sent out, delivered.
        let unpacked = t;
        for (_, items) in &cases {
            for item in items {
                let station = 1 + rng.below(LAST_MILE_STATIONS);
                let mut it = unpacked;
                let at = later(rng, &mut it, 1, 24);
                out.push(scan(
                    rng,
                    item,
                    &bonded,
                    at,
                    (
                        Action::Observe,
                        BizStep::Storing,
                        Disposition::SellableAccessible,
                    ),
                    None,
                ));
                let at = later(rng, &mut it, 24, 240);
                out.push(scan(
                    rng,
                    item,
                    &cn(&format!("cn-last-mile-{station}")),
                    at,
                    (Action::Observe, BizStep::Shipping, Disposition::InTransit),
                    Some(&po),
                ));
                let at = later(rng, &mut it, 4, 44);
                out.push(scan(
                    rng,
                    item,
                    &cn(&format!("cn-courier-{station}")),
                    at,
                    (Action::Observe, BizStep::Accepting, Disposition::Active),
                    Some(&po),
                ));
            }
        }
        out.sort_by_key(Planned::time);
        Shipment {
            events: out.into_iter(),
        }
    }
}

/// An endless, deterministic stream of signed events of `shipments`
/// shipments in flight at once: each new event advances a random shipment,
/// and an arrived one is replaced by a new one.
pub struct Shipments {
    rng: Rng,
    fleet: Fleet,
    keys: HashMap<String, SigningKey>,
    in_flight: Vec<Shipment>,
    next: u64,
    start_ms: i64,
}

impl Shipments {
    pub fn starting(seed: u64, shipments: usize, start_ms: i64) -> Self {
        let mut rng = Rng::new(seed ^ 0x5417_5417);
        let fleet = Fleet { seed };
        let keys = fleet.keys();
        let in_flight = (0..shipments as u64)
            .map(|n| Shipment::plan(&mut rng, n, start_ms, &fleet))
            .collect();
        Shipments {
            rng,
            fleet,
            keys,
            in_flight,
            next: shipments as u64,
            start_ms,
        }
    }

    /// The next event, signed.
    pub fn next_event(&mut self) -> LeafEvent {
        let planned = loop {
            let i = self.rng.below(self.in_flight.len() as u64) as usize;
            if let Some(p) = self.in_flight[i].events.next() {
                break p;
            }
            self.in_flight[i] =
                Shipment::plan(&mut self.rng, self.next, self.start_ms, &self.fleet);
            self.next += 1;
        };
        match planned {
            Planned::Scan(mut e) => {
                let key = &self.keys[&e.device_id];
                schemas::signature::sign(&mut e, key);
                LeafEvent::Scan(e)
            }
            Planned::Epcis { event, device_id } => {
                // Our own events: a rule they break is a bug here, caught by the tests.
                let (text, facts) = epcis_event::keep(&event, &Default::default(), "")
                    .unwrap_or_else(|f| panic!("a simulated EPCIS event is invalid: {f}"));
                let mut record = EpcisEvent {
                    event_id: epcis_event::id_of(&facts, None)
                        .unwrap_or_else(|f| panic!("a simulated eventID is invalid: {f}")),
                    event: text,
                    device_id,
                    signature: Vec::new(),
                };
                let key = &self.keys[&record.device_id];
                record.sign(key);
                LeafEvent::from(record)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use schemas::devices::KeyHistory;
    use std::collections::HashSet;

    const START: i64 = 1_761_955_200_000;

    #[test]
    fn shipments_are_valid_signed_and_packed_then_unpacked() {
        let fleet = Fleet { seed: 5 };
        let mut keys = KeyHistory::default();
        for d in fleet.devices() {
            keys.record(&d, &fleet.key(&d).verifying_key(), false, 0);
        }
        let mut s = Shipments::starting(5, 1, START);
        let mut ids = HashSet::new();
        let (mut packed, mut unpacked, mut container_scans, mut item_scans) = (0, 0, 0, 0);
        for _ in 0..2_000 {
            let e = s.next_event();
            e.validate().unwrap();
            schemas::gate::check(&e, &keys, e.event_time() + 1, Default::default()).unwrap();
            assert!(ids.insert(e.event_id().to_string()), "ids are distinct");
            assert!(e.event_time() < START + crate::journey::JOURNEY_SPAN_DAYS * 86_400_000);
            match e.as_epcis() {
                Some((_, f)) if f.kind == epcis_event::EventType::Aggregation => {
                    assert!(!f.child_epcs.is_empty());
                    match f.action {
                        Some(Action::Add) => packed += 1,
                        _ => unpacked += 1,
                    }
                }
                Some((_, f)) => {
                    assert!(f.epcs[0].starts_with("urn:epc:id:sscc:"));
                    container_scans += 1;
                }
                None => item_scans += 1,
            }
        }
        assert!(
            packed > 3 && unpacked > 3 && container_scans >= 5,
            "{packed} {unpacked} {container_scans}"
        );
        assert!(item_scans > 10 * container_scans);
        // The same seed, the same events.
        let (mut a, mut b) = (
            Shipments::starting(9, 3, START),
            Shipments::starting(9, 3, START),
        );
        assert!((0..500).all(|_| a.next_event() == b.next_event()));
    }

    #[test]
    fn every_shipment_has_arrived_within_the_span() {
        let fleet = Fleet { seed: 1 };
        let mut rng = Rng::new(1);
        let span = crate::journey::JOURNEY_SPAN_DAYS * 86_400_000;
        for n in 0..200 {
            let last = Shipment::plan(&mut rng, n, START, &fleet)
                .events
                .map(|p| p.time())
                .max()
                .unwrap();
            assert!(
                last < START + span,
                "shipment {n} ends {} days in",
                (last - START) / 86_400_000
            );
        }
    }
}
