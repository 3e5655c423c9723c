//! The exact-match cache in front of the megaflow cache (OVS's EMC): a direct-mapped,
//! two-way table from a packet's whole key to the megaflow it hit. A hit costs one hash of the
//! key and one compare, whatever the number of masks the megaflow cache would have to try; a
//! miss falls through to the megaflow lookup, whose hit then fills the entry.
//!
//! Entries name megaflows by index and by the cache's epoch: the megaflow cache only ever
//! forgets flows all at once (invalidation, capacity), and bumps its epoch when it does, so a
//! stale entry can never point at a reused slot. Fixed size, allocated once per PMD.

use crate::packet::key::{FlowKey, KEY_WORDS};

/// Entries (as OVS's EM_FLOW_HASH_ENTRIES, 8192); 200 bytes each.
pub const EMC_ENTRIES: usize = 8192;
const MASK: usize = EMC_ENTRIES - 1;
/// One in this many insertions may replace a live entry (see [`Emc::insert`]).
pub const EVICT_INV_PROB: u32 = 100;
/// Bits of the hash selecting the second way.
const SHIFT: u32 = 13;

#[derive(Clone, Copy)]
struct Entry {
    /// The megaflow cache's epoch when the entry was filled; 0 = empty.
    epoch: u32,
    /// The key's hash: most probes that miss are told apart by it without comparing keys.
    hash: u32,
    flow: u32,
    key: FlowKey,
}

pub struct Emc {
    entries: Box<[Entry]>,
}

/// Hash of a whole key: four independent multiply-xor lanes (the key is 24 words, most of
/// them zero for a given packet; independent lanes keep the multiply latency off the chain).
#[inline(always)]
pub fn hash(key: &FlowKey) -> u32 {
    const K: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut l = [
        0x243f_6a88_85a3_08d3u64,
        0x1319_8a2e_0370_7344,
        0xa409_3822_299f_31d0,
        0x082e_fa98_ec4e_6c89,
    ];
    let mut i = 0;
    while i < KEY_WORDS {
        for (j, lane) in l.iter_mut().enumerate() {
            *lane = (*lane ^ key.w[i + j]).wrapping_mul(K);
        }
        i += 4;
    }
    let h = l[0] ^ l[1].rotate_left(17) ^ l[2].rotate_left(31) ^ l[3].rotate_left(47);
    (h ^ (h >> 29) ^ (h >> 41)) as u32
}

impl Default for Emc {
    fn default() -> Self {
        Self::new()
    }
}

impl Emc {
    pub fn new() -> Self {
        Emc {
            entries: vec![
                Entry {
                    epoch: 0,
                    hash: 0,
                    flow: 0,
                    key: FlowKey::default(),
                };
                EMC_ENTRIES
            ]
            .into_boxed_slice(),
        }
    }

    #[inline(always)]
    fn ways(h: u32) -> [usize; 2] {
        [h as usize & MASK, (h >> SHIFT) as usize & MASK]
    }

    /// The megaflow `key` hit last time, if still valid in `epoch`.
    #[inline]
    pub fn lookup(&self, key: &FlowKey, h: u32, epoch: u32) -> Option<u32> {
        for i in Self::ways(h) {
            let e = &self.entries[i];
            if e.epoch == epoch && e.hash == h && e.key.w == key.w {
                return Some(e.flow);
            }
        }
        None
    }

    /// Starts loading the two entries `h` may sit in (a batch prefetches its packets' entries
    /// before looking them up).
    #[inline]
    pub fn prefetch(&self, h: u32) {
        for i in Self::ways(h) {
            crate::sys::prefetch(&self.entries[i]);
        }
    }

    /// Remembers that `key` belongs to megaflow `flow`: into an empty or stale way if there
    /// is one, else over the first way, but only when `evict` says so. The caller passes
    /// `evict` about once per [`EVICT_INV_PROB`] insertions: when more keys are active than
    /// the cache holds (10,000 connections, both passes: 20,000 keys cycling through 8,192
    /// entries) replacing on every miss evicts each entry before its key comes back, so every
    /// lookup misses and every miss writes a 200-byte entry; rare replacement keeps a stable
    /// part of the keys resident instead (OVS's emc-insert-inv-prob, default 100, applies to
    /// every insertion; here free entries are always filled, so a few flows are cached at
    /// once).
    #[inline]
    pub fn insert(&mut self, key: &FlowKey, h: u32, flow: u32, epoch: u32, evict: bool) {
        let [a, b] = Self::ways(h);
        let i = if self.entries[a].epoch != epoch {
            a
        } else if self.entries[b].epoch != epoch {
            b
        } else if evict {
            a
        } else {
            return;
        };
        self.entries[i] = Entry {
            epoch,
            hash: h,
            flow,
            key: *key,
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(i: u64) -> FlowKey {
        let mut k = FlowKey::default();
        k.w[0] = 7;
        k.w[23] = i;
        k
    }

    #[test]
    fn hits_only_the_same_key_in_the_same_epoch() {
        let mut e = Emc::new();
        let k = key(1);
        let h = hash(&k);
        assert_eq!(e.lookup(&k, h, 1), None);
        e.insert(&k, h, 42, 1, true);
        assert_eq!(e.lookup(&k, h, 1), Some(42));
        assert_eq!(
            e.lookup(&k, h, 2),
            None,
            "a cleared cache invalidates entries"
        );
        let k2 = key(2);
        assert_eq!(e.lookup(&k2, hash(&k2), 1), None);
    }

    #[test]
    fn two_ways_keep_colliding_keys_and_hashes_spread() {
        let mut e = Emc::new();
        // thousands of keys differing in one word: few collisions on 8192 x 2 entries
        let n = 4000u64;
        for i in 0..n {
            let k = key(i);
            e.insert(&k, hash(&k), i as u32, 1, true);
        }
        let found = (0..n)
            .filter(|&i| {
                let k = key(i);
                e.lookup(&k, hash(&k), 1) == Some(i as u32)
            })
            .count();
        assert!(found as u64 > n * 9 / 10, "{found} of {n} kept");
        // never a wrong flow
        for i in 0..n {
            let k = key(i);
            if let Some(f) = e.lookup(&k, hash(&k), 1) {
                assert_eq!(f, i as u32);
            }
        }
    }
}
