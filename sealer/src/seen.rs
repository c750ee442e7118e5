//! Which event ids are sealed already, so that each id seals once, ever, however
//! often its event is replayed. Asking ClickHouse about every id of every epoch
//! would read the whole id index each second, so the sealer keeps a Bloom filter
//! of every sealed id (loaded at start, fed by each epoch it seals and, on a
//! partition assignment, by what other sealers sealed) and exact sets of its
//! last epochs (not yet queryable). Only an id the filter may hold is looked up
//! in ClickHouse: the filter never forgets, so it can only cost a lookup, never
//! let a duplicate through.

use std::collections::hash_map::RandomState;
use std::collections::{HashSet, VecDeque};
use std::hash::BuildHasher;

/// Epochs whose ids are kept exactly: those sealed and maybe not yet written.
const RECENT_EPOCHS: usize = 4;

pub struct SeenIds {
    bits: Vec<u64>,
    /// Number of bits.
    m: u64,
    /// Hashes per id.
    k: u32,
    /// Keyed per process, so ids chosen to collide in the filter cannot be made.
    h1: RandomState,
    h2: RandomState,
    count: u64,
    capacity: u64,
    recent: VecDeque<HashSet<String>>,
}

impl SeenIds {
    /// A filter for `capacity` ids at about one false "maybe" in a thousand
    /// (14.4 bits and 10 hashes per id; ~18 MB per 10 M ids).
    pub fn new(capacity: u64) -> Self {
        let capacity = capacity.max(1024);
        let m = (capacity * 144 / 10).next_multiple_of(64);
        SeenIds {
            bits: vec![0; (m / 64) as usize],
            m,
            k: 10,
            h1: RandomState::new(),
            h2: RandomState::new(),
            count: 0,
            capacity,
            recent: VecDeque::new(),
        }
    }

    fn positions(&self, id: &str) -> impl Iterator<Item = u64> + '_ {
        let a = self.h1.hash_one(id);
        let b = self.h2.hash_one(id) | 1;
        (0..u64::from(self.k)).map(move |i| a.wrapping_add(i.wrapping_mul(b)) % self.m)
    }

    pub fn insert(&mut self, id: &str) {
        let positions: Vec<u64> = self.positions(id).collect();
        for p in positions {
            self.bits[(p / 64) as usize] |= 1 << (p % 64);
        }
        self.count += 1;
        if self.count == self.capacity {
            tracing::warn!(
                capacity = self.capacity,
                "the sealed-id filter is full; lookups grow, raise --seen-capacity"
            );
        }
    }

    /// False: certainly not sealed by anyone this filter heard of.
    pub fn may_contain(&self, id: &str) -> bool {
        self.positions(id)
            .all(|p| self.bits[(p / 64) as usize] & (1 << (p % 64)) != 0)
    }

    /// Whether one of the last epochs this sealer sealed holds the id.
    pub fn sealed_recently(&self, id: &str) -> bool {
        self.recent.iter().any(|s| s.contains(id))
    }

    /// Records the ids of an epoch just sealed.
    pub fn remember_epoch<'a>(&mut self, ids: impl Iterator<Item = &'a str>) {
        let set: HashSet<String> = ids.map(str::to_owned).collect();
        for id in &set {
            self.insert(id);
        }
        self.recent.push_back(set);
        if self.recent.len() > RECENT_EPOCHS {
            self.recent.pop_front();
        }
    }

    pub fn len(&self) -> u64 {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u64) -> String {
        format!("00000000-0000-4000-8000-{n:012x}")
    }

    #[test]
    fn never_forgets_and_rarely_imagines() {
        let mut seen = SeenIds::new(100_000);
        for n in 0..100_000 {
            seen.insert(&id(n));
        }
        assert!((0..100_000).all(|n| seen.may_contain(&id(n))));
        let false_maybes = (100_000..200_000)
            .filter(|n| seen.may_contain(&id(*n)))
            .count();
        assert!(false_maybes < 500, "{false_maybes} false maybes in 100000");
    }

    #[test]
    fn the_last_epochs_are_known_exactly() {
        let mut seen = SeenIds::new(1000);
        for e in 0..6u64 {
            let ids: Vec<String> = (e * 10..e * 10 + 10).map(id).collect();
            seen.remember_epoch(ids.iter().map(String::as_str));
        }
        assert!(seen.sealed_recently(&id(59)));
        assert!(seen.sealed_recently(&id(20)));
        assert!(!seen.sealed_recently(&id(19)), "only the last four epochs");
        assert!(seen.may_contain(&id(0)), "the filter keeps them all");
    }
}
