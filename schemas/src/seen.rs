//! Which event ids are sealed already, so that each id seals once, ever, however
//! often its event is replayed; and which GS1 event hashes, so that the same
//! event under a new id is refused too. Asking ClickHouse about every id of every
//! epoch (or of every gateway request) would read the index each time, so the
//! sealer and the gateway keep a Bloom filter of every sealed id and hash (one
//! filter: a hash `ni:///…` is never an id; loaded at start, fed by what is
//! sealed since) and the sealer exact sets of its last epochs (not yet
//! queryable). Only a key the filter may hold is looked up in ClickHouse
//! (`sealed_ids::sealed_among`, `sealed_hashes`): the filter never forgets, so
//! it can only cost a lookup, never let a duplicate through.
//!
//! The bits are atomic so that one task can add what was sealed while others
//! ask (the gateway's requests), without a lock and without copying the filter.

use std::collections::hash_map::RandomState;
use std::collections::{HashSet, VecDeque};
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use crate::event_hash::HashId;

/// Epochs whose ids are kept exactly: those sealed and maybe not yet written.
const RECENT_EPOCHS: usize = 4;

pub struct SeenIds {
    /// The bits, in blocks of one cache line: all of a key's bits are in one
    /// block, so a look or an insert touches one line of a filter hundreds
    /// of MB large, not ten (each a miss).
    blocks: Vec<Block>,
    /// Bits per id.
    k: u32,
    /// Keyed per process, so ids chosen to collide in the filter cannot be made.
    h1: RandomState,
    h2: RandomState,
    /// Ids that set a bit: an id added again (a refresh re-reads a margin) or
    /// one the filter already imagined is not counted twice.
    count: AtomicU64,
    capacity: u64,
    recent: VecDeque<HashSet<u128>>,
}

/// 512 bits, aligned to a cache line.
#[repr(align(64))]
struct Block([AtomicU64; 8]);

const BLOCK_BITS: u64 = 512;

impl SeenIds {
    /// A filter for `capacity` ids at about a quarter of a percent of false
    /// "maybe"s when full (14.4 bits and 8 hashes per id, in one block: a
    /// plain filter's 0.1 % took ten cache misses per look; ~18 MB per 10 M ids).
    pub fn new(capacity: u64) -> Self {
        let capacity = capacity.max(1024);
        let m = (capacity * 144 / 10).next_multiple_of(BLOCK_BITS);
        SeenIds {
            blocks: (0..m / BLOCK_BITS)
                .map(|_| Block(Default::default()))
                .collect(),
            k: 8,
            h1: RandomState::new(),
            h2: RandomState::new(),
            count: AtomicU64::new(0),
            capacity,
            recent: VecDeque::new(),
        }
    }

    /// The key's block, and its bits in it (all different: the step is odd).
    fn positions(&self, id: &str) -> (&Block, impl Iterator<Item = u64>) {
        let a = self.h1.hash_one(id);
        let b = self.h2.hash_one(id);
        let block = &self.blocks[(a % self.blocks.len() as u64) as usize];
        let step = (b >> 32) | 1;
        let bits =
            (0..u64::from(self.k)).map(move |i| b.wrapping_add(i.wrapping_mul(step)) % BLOCK_BITS);
        (block, bits)
    }

    /// Adds an id. True when this one filled the filter to its capacity: past
    /// it, false maybes (and so lookups) grow, which the owner should say once.
    /// Concurrent askers see the id once all its bits are set; before that it
    /// is "not sealed", as it was a moment earlier.
    pub fn insert(&self, id: &str) -> bool {
        let (block, bits) = self.positions(id);
        let mut new = false;
        for p in bits {
            let bit = 1 << (p % 64);
            new |= block.0[(p / 64) as usize].fetch_or(bit, Relaxed) & bit == 0;
        }
        new && self.count.fetch_add(1, Relaxed) + 1 == self.capacity
    }

    /// Whether as many ids as it was sized for are in; see `insert`.
    pub fn is_full(&self) -> bool {
        self.len() >= self.capacity
    }

    /// False: certainly not sealed by anyone this filter heard of.
    pub fn may_contain(&self, id: &str) -> bool {
        let (block, mut bits) = self.positions(id);
        bits.all(|p| block.0[(p / 64) as usize].load(Relaxed) & (1 << (p % 64)) != 0)
    }

    /// Whether one of the last epochs this sealer sealed holds the id.
    pub fn sealed_recently(&self, id: &str) -> bool {
        let f = self.fingerprint(id);
        self.recent.iter().any(|s| s.contains(&f))
    }

    /// A key's 128 keyed bits: what the exact sets hold instead of the key
    /// (16 bytes, where an id or a hash as text took 100 to 150 with its
    /// allocation, twice a key per event). Two keys meet by chance once in
    /// 2^128, and being keyed per process they cannot be made to.
    fn fingerprint(&self, key: &str) -> u128 {
        (u128::from(self.h1.hash_one(key)) << 64) | u128::from(self.h2.hash_one(key))
    }

    /// Records the ids and GS1 event hashes of an epoch just sealed (a hash
    /// as its text, the key `sealed_ids` loads it by).
    pub fn remember_epoch<'a>(
        &mut self,
        ids: impl Iterator<Item = &'a str>,
        hashes: impl Iterator<Item = HashId>,
    ) {
        let mut set: HashSet<u128> = HashSet::new();
        let mut add = |key: &str| {
            self.insert(key);
            set.insert(self.fingerprint(key));
        };
        ids.for_each(&mut add);
        hashes.for_each(|h| add(h.text().as_str()));
        self.recent.push_back(set);
        if self.recent.len() > RECENT_EPOCHS {
            self.recent.pop_front();
        }
    }

    /// Forgets the exact sets: after an assignment, an epoch of this sealer's
    /// may have been fenced (void) and its ids must be sealable again; the
    /// filter still says "maybe" and ClickHouse decides.
    pub fn forget_recent(&mut self) {
        self.recent.clear();
    }

    pub fn len(&self) -> u64 {
        self.count.load(Relaxed)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
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
        let seen = SeenIds::new(100_000);
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
            seen.remember_epoch(ids.iter().map(String::as_str), std::iter::empty());
        }
        assert!(seen.sealed_recently(&id(59)));
        assert!(seen.sealed_recently(&id(20)));
        assert!(!seen.sealed_recently(&id(19)), "only the last four epochs");
        assert!(seen.may_contain(&id(0)), "the filter keeps them all");
    }

    #[test]
    fn an_id_added_again_counts_once_and_a_full_filter_says_so_once() {
        let seen = SeenIds::new(1024);
        assert!(!seen.insert(&id(1)));
        assert!(!seen.insert(&id(1)));
        assert_eq!(seen.len(), 1);
        let filled: Vec<u64> = (2..3000).filter(|n| seen.insert(&id(*n))).collect();
        assert_eq!(filled.len(), 1, "told once, when it fills: {filled:?}");
        assert!(seen.is_full());
    }

    #[test]
    fn ids_added_while_others_ask_are_all_kept() {
        let seen = std::sync::Arc::new(SeenIds::new(10_000));
        let writer = {
            let seen = seen.clone();
            std::thread::spawn(move || {
                for n in 0..10_000 {
                    seen.insert(&id(n));
                }
            })
        };
        while !writer.is_finished() {
            let _ = seen.may_contain(&id(5_000));
        }
        writer.join().unwrap();
        assert!((0..10_000).all(|n| seen.may_contain(&id(n))));
    }
}
