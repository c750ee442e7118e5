//! Realistic journeys of imported goods for the simulator: an item is made in one
//! of ~50 origin countries, leaves through an export warehouse and a port, ships,
//! and in the destination market clears customs, is inspected, stored in a bonded
//! warehouse and delivered. A few fail inspection; cold-chain items carry sensor
//! readings and a few see a temperature excursion. Fully determined by the seed.

use ed25519_dalek::SigningKey;
use schemas::{Action, BizStep, BizTransaction, BizTransactionType, Disposition, ScanEvent};
use sha2::{Digest, Sha256};

/// SplitMix64: small, fast and stable across releases, so a seed means the same
/// corpus forever (an external RNG crate could change its streams).
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed ^ 0x5EA1_7EA1_5EA1_7EA1)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in 0..n.
    pub fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }
    /// True with probability p.
    pub fn chance(&mut self, p: f64) -> bool {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64 * 1.0 < p
    }
    pub fn uuid(&mut self) -> String {
        let mut b = [0u8; 16];
        b[..8].copy_from_slice(&self.next_u64().to_le_bytes());
        b[8..].copy_from_slice(&self.next_u64().to_le_bytes());
        b[6] = (b[6] & 0x0f) | 0x40;
        b[8] = (b[8] & 0x3f) | 0x80;
        schemas::event::uuid_text(b)
    }
}

/// Origin countries with their time-zone offset and a GS1 company prefix root.
pub(crate) const ORIGINS: &[(&str, &str)] = &[
    ("AU", "+10:00"),
    ("NZ", "+12:00"),
    ("JP", "+09:00"),
    ("KR", "+09:00"),
    ("TW", "+08:00"),
    ("TH", "+07:00"),
    ("VN", "+07:00"),
    ("MY", "+08:00"),
    ("SG", "+08:00"),
    ("ID", "+07:00"),
    ("PH", "+08:00"),
    ("IN", "+05:30"),
    ("LK", "+05:30"),
    ("AE", "+04:00"),
    ("TR", "+03:00"),
    ("IL", "+02:00"),
    ("ZA", "+02:00"),
    ("KE", "+03:00"),
    ("EG", "+02:00"),
    ("MA", "+01:00"),
    ("FR", "+01:00"),
    ("DE", "+01:00"),
    ("IT", "+01:00"),
    ("ES", "+01:00"),
    ("PT", "+00:00"),
    ("NL", "+01:00"),
    ("BE", "+01:00"),
    ("CH", "+01:00"),
    ("AT", "+01:00"),
    ("PL", "+01:00"),
    ("CZ", "+01:00"),
    ("DK", "+01:00"),
    ("SE", "+01:00"),
    ("NO", "+01:00"),
    ("FI", "+02:00"),
    ("IE", "+00:00"),
    ("GB", "+00:00"),
    ("GR", "+02:00"),
    ("HU", "+01:00"),
    ("RO", "+02:00"),
    ("US", "-05:00"),
    ("CA", "-05:00"),
    ("MX", "-06:00"),
    ("BR", "-03:00"),
    ("AR", "-03:00"),
    ("CL", "-04:00"),
    ("PE", "-05:00"),
    ("CO", "-05:00"),
    ("UY", "-03:00"),
    ("CR", "-06:00"),
];

/// The import market every journey ends in.
pub const DESTINATION: (&str, &str) = ("CN", "+08:00");

/// Factories per origin country; every other origin site is one device.
const FACTORIES: u64 = 3;
/// Last-mile stations in the destination.
pub(crate) const LAST_MILE_STATIONS: u64 = 8;

/// The simulated fleet: device ids and their keys, derived from the seed so the
/// same seed signs the same corpus. Not for real devices: their keys are guessable.
pub struct Fleet {
    pub seed: u64,
}

impl Fleet {
    pub fn device_id(&self, site: &str) -> String {
        format!("sim{}-{site}", self.seed)
    }

    pub fn key(&self, device_id: &str) -> SigningKey {
        let seed: [u8; 32] = Sha256::new()
            .chain_update(b"sealtrail simulated device\0")
            .chain_update(device_id)
            .finalize()
            .into();
        SigningKey::from_bytes(&seed)
    }

    /// Every device's signing key, by device id.
    pub fn keys(&self) -> std::collections::HashMap<String, SigningKey> {
        self.devices()
            .into_iter()
            .map(|d| {
                let k = self.key(&d);
                (d, k)
            })
            .collect()
    }

    /// Every site that scans, as its device id.
    pub fn devices(&self) -> Vec<String> {
        let mut sites = Vec::new();
        for (c, _) in ORIGINS {
            let c = c.to_ascii_lowercase();
            for f in 1..=FACTORIES {
                sites.push(format!("{c}-factory-{f}"));
            }
            sites.push(format!("{c}-export-wh"));
            sites.push(format!("{c}-port"));
        }
        for s in [
            "cn-port-sha",
            "cn-customs-sha",
            "cn-inspection-sha",
            "cn-bonded-wh-sha",
        ] {
            sites.push(s.to_string());
        }
        for n in 1..=LAST_MILE_STATIONS {
            sites.push(format!("cn-last-mile-{n}"));
            sites.push(format!("cn-courier-{n}"));
        }
        sites.iter().map(|s| self.device_id(s)).collect()
    }
}

/// One step still to come in an item's journey.
struct Step {
    site: String,
    country: &'static str,
    offset: &'static str,
    action: Action,
    biz_step: BizStep,
    disposition: Disposition,
    transactions: Vec<BizTransaction>,
    /// Hours after the previous step.
    after_hours: u64,
}

/// An item on its way: the steps left, and its clock.
pub struct Journey {
    item_id: String,
    steps: std::vec::IntoIter<Step>,
    time_ms: i64,
    cold_chain: bool,
    excursion_at: Option<usize>,
    done: usize,
}

/// 2025-11-01T00:00:00Z: where the unit tests' simulated time starts.
#[cfg(test)]
const EPOCH_MS: i64 = 1_761_955_200_000;

/// Simulated journeys start within this many days of the corpus's start, and
/// every one has arrived within `JOURNEY_SPAN_DAYS` of it (a test checks).
const START_SPREAD_DAYS: u64 = 30;
pub const JOURNEY_SPAN_DAYS: i64 = 75;

impl Journey {
    /// Plans the journey of the `n`th simulated item.
    pub fn plan(rng: &mut Rng, n: u64, start_ms: i64) -> Journey {
        let (origin, origin_tz) = ORIGINS[rng.below(ORIGINS.len() as u64) as usize];
        let oc = origin.to_ascii_lowercase();
        let (dest, dest_tz) = DESTINATION;
        let factory = 1 + rng.below(FACTORIES);
        let station = 1 + rng.below(LAST_MILE_STATIONS);
        let company = 100_000 + rng.below(900_000); // 6-digit company prefix
        let item_ref = 1_000_000 + rng.below(9_000_000); // 7 digits: 13 in all
        let item_id = format!("urn:epc:id:sgtin:{company}.{item_ref}.{n}");
        let po = BizTransaction {
            kind: BizTransactionType::Po,
            id: format!("PO-{}", 100_000 + rng.below(900_000)),
        };
        let bol = BizTransaction {
            kind: BizTransactionType::Bol,
            id: format!("BOL-{origin}-{}", rng.below(1_000_000)),
        };
        let declaration = BizTransaction {
            kind: BizTransactionType::CustomsDeclaration,
            id: format!(
                "{}{:012}",
                2026_0000 + rng.below(10_000),
                rng.below(1_000_000_000_000)
            ),
        };
        let step = |site: String,
                    country,
                    offset,
                    action,
                    biz_step,
                    disposition,
                    transactions,
                    after_hours| Step {
            site,
            country,
            offset,
            action,
            biz_step,
            disposition,
            transactions,
            after_hours,
        };
        let mut steps = vec![
            step(
                format!("{oc}-factory-{factory}"),
                origin,
                origin_tz,
                Action::Add,
                BizStep::Commissioning,
                Disposition::Active,
                vec![],
                0,
            ),
            step(
                format!("{oc}-factory-{factory}"),
                origin,
                origin_tz,
                Action::Observe,
                BizStep::Packing,
                Disposition::InProgress,
                vec![po.clone()],
                2 + rng.below(20),
            ),
            step(
                format!("{oc}-export-wh"),
                origin,
                origin_tz,
                Action::Observe,
                BizStep::Receiving,
                Disposition::InProgress,
                vec![po.clone()],
                12 + rng.below(48),
            ),
            step(
                format!("{oc}-port"),
                origin,
                origin_tz,
                Action::Observe,
                BizStep::Departing,
                Disposition::InTransit,
                vec![bol.clone()],
                24 + rng.below(72),
            ),
            step(
                "cn-port-sha".into(),
                dest,
                dest_tz,
                Action::Observe,
                BizStep::Arriving,
                Disposition::InTransit,
                vec![bol],
                72 + rng.below(480),
            ),
            step(
                "cn-customs-sha".into(),
                dest,
                dest_tz,
                Action::Observe,
                BizStep::CustomsClearance,
                Disposition::CustomsHold,
                vec![declaration.clone()],
                1 + rng.below(12),
            ),
        ];
        if rng.chance(0.03) {
            // Fails third-party inspection: held, then destroyed.
            steps.push(step(
                "cn-inspection-sha".into(),
                dest,
                dest_tz,
                Action::Observe,
                BizStep::Inspecting,
                Disposition::NonConformant,
                vec![declaration.clone()],
                4 + rng.below(48),
            ));
            steps.push(step(
                "cn-inspection-sha".into(),
                dest,
                dest_tz,
                Action::Delete,
                BizStep::Other,
                Disposition::Destroyed,
                vec![declaration],
                24 + rng.below(72),
            ));
        } else {
            steps.push(step(
                "cn-inspection-sha".into(),
                dest,
                dest_tz,
                Action::Observe,
                BizStep::Inspecting,
                Disposition::Conformant,
                vec![declaration.clone()],
                4 + rng.below(48),
            ));
            steps.push(step(
                "cn-customs-sha".into(),
                dest,
                dest_tz,
                Action::Observe,
                BizStep::CustomsClearance,
                Disposition::CustomsReleased,
                vec![declaration],
                1 + rng.below(24),
            ));
            steps.push(step(
                "cn-bonded-wh-sha".into(),
                dest,
                dest_tz,
                Action::Observe,
                BizStep::Storing,
                Disposition::SellableAccessible,
                vec![],
                2 + rng.below(24),
            ));
            steps.push(step(
                format!("cn-last-mile-{station}"),
                dest,
                dest_tz,
                Action::Observe,
                BizStep::Shipping,
                Disposition::InTransit,
                vec![po.clone()],
                24 + rng.below(240),
            ));
            steps.push(step(
                format!("cn-courier-{station}"),
                dest,
                dest_tz,
                Action::Observe,
                BizStep::Accepting,
                Disposition::Active,
                vec![po],
                4 + rng.below(44),
            ));
        }
        let cold_chain = rng.chance(0.2);
        let excursion_at = (cold_chain && rng.chance(0.05))
            .then(|| 3 + rng.below(steps.len() as u64 - 3) as usize);
        let time_ms = start_ms + (rng.below(START_SPREAD_DAYS * 24 * 3600) as i64) * 1000;
        Journey {
            item_id,
            steps: steps.into_iter(),
            time_ms,
            cold_chain,
            excursion_at,
            done: 0,
        }
    }

    /// The next scan of this item, unsigned, or None when it has arrived.
    pub fn next_event(&mut self, rng: &mut Rng, fleet: &Fleet) -> Option<ScanEvent> {
        let s = self.steps.next()?;
        self.time_ms +=
            (s.after_hours * 3600 + rng.below(3600)) as i64 * 1000 + rng.below(1000) as i64;
        let (temperature_c, relative_humidity_pct) = if self.cold_chain {
            let t = if self.excursion_at == Some(self.done) {
                9.0 + rng.below(60) as f32 / 10.0
            } else {
                2.0 + rng.below(60) as f32 / 10.0
            };
            (Some(t), Some(40.0 + rng.below(400) as f32 / 10.0))
        } else {
            (None, None)
        };
        self.done += 1;
        let site_code = s.site.rsplit('-').next().unwrap_or("0").to_string();
        let gln = format!(
            "{:07}",
            u64::from_str_radix(&hex::encode(&Sha256::digest(s.site.as_bytes())[..3]), 16)
                .unwrap_or(0)
                % 10_000_000
        );
        Some(ScanEvent {
            event_id: rng.uuid(),
            event_time: self.time_ms,
            event_timezone_offset: s.offset.to_string(),
            action: s.action,
            biz_step: s.biz_step,
            disposition: s.disposition,
            item_ids: vec![self.item_id.clone()],
            read_point: format!("urn:epc:id:sgln:{gln}.{site_code}.0"),
            biz_location: format!("urn:epc:id:sgln:{gln}.{site_code}.1"),
            country: s.country.to_string(),
            biz_transactions: s.transactions,
            temperature_c,
            relative_humidity_pct,
            device_id: fleet.device_id(&s.site),
            signature: Vec::new(),
        })
    }
}

/// An endless, deterministic stream of signed events from `items` items in flight
/// at once: each new event advances a random item, and an arrived item is
/// replaced by a new one.
pub struct Corpus {
    rng: Rng,
    fleet: Fleet,
    keys: std::collections::HashMap<String, SigningKey>,
    in_flight: Vec<Journey>,
    next_item: u64,
    start_ms: i64,
}

impl Corpus {
    /// The corpus of `seed` for the unit tests, starting at a fixed time.
    #[cfg(test)]
    pub fn new(seed: u64, items: usize) -> Self {
        Self::starting(seed, items, EPOCH_MS)
    }

    /// The corpus of `seed` whose simulated time starts at `start_ms`: the same
    /// seed and start give the same events, signatures included.
    pub fn starting(seed: u64, items: usize, start_ms: i64) -> Self {
        let mut rng = Rng::new(seed);
        let fleet = Fleet { seed };
        let keys = fleet.keys();
        let in_flight = (0..items as u64)
            .map(|n| Journey::plan(&mut rng, n, start_ms))
            .collect();
        Corpus {
            rng,
            fleet,
            keys,
            in_flight,
            next_item: items as u64,
            start_ms,
        }
    }
}

impl Corpus {
    /// The next unsigned event.
    fn next_unsigned(&mut self) -> ScanEvent {
        loop {
            let i = self.rng.below(self.in_flight.len() as u64) as usize;
            if let Some(e) = self.in_flight[i].next_event(&mut self.rng, &self.fleet) {
                return e;
            }
            self.in_flight[i] = Journey::plan(&mut self.rng, self.next_item, self.start_ms);
            self.next_item += 1;
        }
    }

    /// The next `n` events, signed. Generation is sequential (it is the seed's
    /// stream); signing, the costly part, is spread over every core.
    pub fn next_batch(&mut self, n: usize) -> Vec<ScanEvent> {
        let mut events: Vec<ScanEvent> = (0..n).map(|_| self.next_unsigned()).collect();
        let threads = std::thread::available_parallelism().map_or(1, |t| t.get());
        let chunk = n.div_ceil(threads).max(1);
        let keys = &self.keys;
        std::thread::scope(|s| {
            for part in events.chunks_mut(chunk) {
                s.spawn(move || {
                    for e in part {
                        let key = &keys[&e.device_id];
                        schemas::signature::sign(e, key);
                    }
                });
            }
        });
        events
    }
}

impl Iterator for Corpus {
    type Item = ScanEvent;

    fn next(&mut self) -> Option<ScanEvent> {
        let mut e = self.next_unsigned();
        let key = &self.keys[&e.device_id];
        schemas::signature::sign(&mut e, key);
        Some(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn same_seed_same_corpus_other_seed_other_corpus() {
        let a: Vec<_> = Corpus::new(1, 50).take(500).collect();
        let b: Vec<_> = Corpus::new(1, 50).next_batch(500);
        let c: Vec<_> = Corpus::new(2, 50).take(500).collect();
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn every_event_is_valid_and_signed_by_a_fleet_device() {
        let corpus = Corpus::new(7, 100);
        let fleet = Fleet { seed: 7 };
        let devices: Vec<String> = fleet.devices();
        for e in corpus.take(3000) {
            e.validate().unwrap_or_else(|err| panic!("{err}: {e:?}"));
            assert!(devices.contains(&e.device_id), "{}", e.device_id);
            schemas::signature::verify(&e, &fleet.key(&e.device_id).verifying_key()).unwrap();
        }
    }

    #[test]
    fn journeys_run_in_order_from_commissioning_with_rare_failures() {
        let mut by_item: HashMap<String, Vec<ScanEvent>> = HashMap::new();
        for e in Corpus::new(3, 200).take(60_000) {
            assert!(
                e.event_time < EPOCH_MS + JOURNEY_SPAN_DAYS * 86_400_000,
                "every journey ends within JOURNEY_SPAN_DAYS of the start"
            );
            by_item.entry(e.item_ids[0].clone()).or_default().push(e);
        }
        let origins: std::collections::HashSet<&str> =
            by_item.values().map(|es| es[0].country.as_str()).collect();
        assert!(origins.len() >= 45, "{} origin countries", origins.len());
        let mut failed = 0;
        let mut complete = 0;
        for events in by_item.values() {
            assert!(events.windows(2).all(|w| w[0].event_time < w[1].event_time));
            if events[0].biz_step == BizStep::Commissioning {
                if events
                    .iter()
                    .any(|e| e.disposition == Disposition::NonConformant)
                {
                    failed += 1;
                }
                if events.last().unwrap().biz_step == BizStep::Accepting {
                    complete += 1;
                    assert_eq!(events.len(), 11);
                }
            }
        }
        assert!(complete > 1000, "{complete} complete journeys");
        assert!(
            failed > 0 && failed * 10 < complete,
            "{failed} failed of {complete}"
        );
    }
}
