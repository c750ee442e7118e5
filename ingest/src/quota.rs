//! How many events each device may send: a token bucket per device, so one
//! scanner gone wrong (or one stolen key) cannot flood the topic and the sealer
//! for every other device. Buckets are only made for devices whose signatures
//! checked out, so their number is bounded by the registry; that, and a lock
//! held for a few hash lookups, is why this is a map and not a crate.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

pub struct Quota {
    per_second: f64,
    burst: f64,
    buckets: Mutex<HashMap<String, (f64, Instant)>>,
}

impl Quota {
    pub fn new(per_second: f64, burst: f64) -> Quota {
        Quota {
            per_second,
            burst,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes `wanted[device]` events from each device's bucket, all or none.
    /// On refusal: the device short of events and the whole seconds until its
    /// bucket holds enough.
    pub fn take(&self, wanted: &HashMap<&str, u64>, now: Instant) -> Result<(), (String, u32)> {
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        let level =
            |buckets: &HashMap<String, (f64, Instant)>, device: &str| match buckets.get(device) {
                Some(&(tokens, at)) => (tokens
                    + now.saturating_duration_since(at).as_secs_f64() * self.per_second)
                    .min(self.burst),
                None => self.burst,
            };
        for (&device, &n) in wanted {
            let have = level(&buckets, device);
            if (n as f64) > have {
                let wait = ((n as f64).min(self.burst) - have) / self.per_second;
                return Err((device.to_string(), wait.ceil().clamp(1.0, 3600.0) as u32));
            }
        }
        for (&device, &n) in wanted {
            let have = level(&buckets, device);
            buckets.insert(device.to_string(), (have - n as f64, now));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_device_gets_its_burst_then_its_rate_and_others_are_not_affected() {
        let q = Quota::new(2.0, 5.0);
        let t0 = Instant::now();
        let ask = |device: &'static str, n: u64| HashMap::from([(device, n)]);
        assert_eq!(q.take(&ask("a", 5), t0), Ok(()));
        assert_eq!(q.take(&ask("a", 1), t0), Err(("a".into(), 1)));
        assert_eq!(
            q.take(&ask("b", 5), t0),
            Ok(()),
            "another device has its own bucket"
        );
        // 1.5 s later: 3 events back, not 4.
        let later = t0 + Duration::from_millis(1500);
        assert_eq!(q.take(&ask("a", 4), later), Err(("a".into(), 1)));
        assert_eq!(q.take(&ask("a", 3), later), Ok(()));
        // A batch over two devices takes from neither when one is short.
        let both = HashMap::from([("a", 1), ("c", 1)]);
        assert!(q.take(&both, later).is_err());
        assert_eq!(q.take(&ask("c", 5), later), Ok(()), "c lost nothing");
        // More than the burst waits for a full bucket, no longer.
        assert_eq!(q.take(&ask("d", 50), t0), Err(("d".into(), 1)));
    }
}
