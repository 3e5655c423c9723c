//! A flat open-addressing table keyed by precomputed hashes.
//!
//! Why not `std::collections::HashMap`: a probe there reads a control-byte
//! group and then the entry, two cache misses when the table is out of cache,
//! and most probes of the staged lookup are *misses* (the stage prefix is not
//! there). Here the keys — full 64-bit hashes, never 0 (the empty marker), so
//! no other comparison is needed — sit in their own array, eight to a cache
//! line, and linear probing at load <= 1/2 ends a miss after ~1.8 slots on
//! average: one cache line. Values live in a parallel array that is read
//! only on a hit. Deletion shifts entries back instead of leaving tombstones,
//! so probe sequences stay short under churn, and the table shrinks as it
//! empties.

/// Empty-slot marker; [`FlatMap`] keys must be non-zero (see [`nonzero`]).
const EMPTY: u64 = 0;
const MIN_SLOTS: usize = 8;

/// Makes a hash usable as a [`FlatMap`] key.
#[inline(always)]
pub(crate) fn nonzero(h: u64) -> u64 {
    if h == EMPTY {
        1
    } else {
        h
    }
}

/// Map from non-zero `u64` hash to `u32`, linear probing. Load <= 1/2 for
/// tables that every lookup probes; `DENSE` tables (load <= 3/4) are for
/// those consulted mostly by insertion and removal, where memory matters more
/// than probe length.
#[derive(Clone, Debug, Default)]
pub(crate) struct FlatMap<const DENSE: bool> {
    keys: Vec<u64>,
    vals: Vec<u32>,
    len: usize,
}

impl<const DENSE: bool> FlatMap<DENSE> {
    #[inline]
    fn home(&self, h: u64) -> usize {
        // `slots.len()` is a power of two; hashes are finalised (fmix64), so
        // their low bits are as good as any.
        h as usize & (self.keys.len() - 1)
    }

    #[inline]
    fn find(&self, h: u64) -> Option<usize> {
        debug_assert_ne!(h, EMPTY);
        if self.keys.is_empty() {
            return None;
        }
        let m = self.keys.len() - 1;
        let mut i = self.home(h);
        loop {
            let k = self.keys[i];
            if k == h {
                return Some(i);
            }
            if k == EMPTY {
                return None;
            }
            i = (i + 1) & m;
        }
    }

    #[inline]
    pub fn get(&self, h: u64) -> Option<u32> {
        self.find(h).map(|i| self.vals[i])
    }

    pub fn get_mut(&mut self, h: u64) -> Option<&mut u32> {
        let i = self.find(h)?;
        Some(&mut self.vals[i])
    }

    /// Inserts or replaces; returns the previous value.
    pub fn insert(&mut self, h: u64, v: u32) -> Option<u32> {
        debug_assert_ne!(h, EMPTY);
        if let Some(i) = self.find(h) {
            return Some(std::mem::replace(&mut self.vals[i], v));
        }
        let full = if DENSE {
            (self.len + 1) * 4 > self.keys.len() * 3
        } else {
            (self.len + 1) * 2 > self.keys.len()
        };
        if full {
            self.resize((self.keys.len() * 2).max(MIN_SLOTS));
        }
        self.place(h, v);
        self.len += 1;
        None
    }

    fn place(&mut self, h: u64, v: u32) {
        let m = self.keys.len() - 1;
        let mut i = self.home(h);
        while self.keys[i] != EMPTY {
            i = (i + 1) & m;
        }
        self.keys[i] = h;
        self.vals[i] = v;
    }

    /// Removes `h`; returns its value.
    pub fn remove(&mut self, h: u64) -> Option<u32> {
        let i = self.find(h)?;
        let v = self.vals[i];
        // Backward-shift deletion: pull later entries of the probe run into
        // the hole when the hole lies between their home and their slot.
        let m = self.keys.len() - 1;
        let mut hole = i;
        let mut j = (i + 1) & m;
        loop {
            let k = self.keys[j];
            if k == EMPTY {
                break;
            }
            let home = self.home(k);
            if (j.wrapping_sub(home) & m) >= (j.wrapping_sub(hole) & m) {
                self.keys[hole] = k;
                self.vals[hole] = self.vals[j];
                hole = j;
            }
            j = (j + 1) & m;
        }
        self.keys[hole] = EMPTY;
        self.len -= 1;
        if self.len == 0 {
            self.keys = Vec::new();
            self.vals = Vec::new();
        } else if self.keys.len() > MIN_SLOTS && self.len * 8 < self.keys.len() {
            self.resize(self.keys.len() / 2);
        }
        Some(v)
    }

    fn resize(&mut self, n: usize) {
        let keys = std::mem::replace(&mut self.keys, vec![EMPTY; n]);
        let vals = std::mem::replace(&mut self.vals, vec![0; n]);
        for (k, v) in keys.into_iter().zip(vals) {
            if k != EMPTY {
                self.place(k, v);
            }
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    /// The keys, in table order.
    pub fn keys(&self) -> impl Iterator<Item = u64> + '_ {
        self.keys.iter().copied().filter(|&k| k != EMPTY)
    }

    /// The values, in table order.
    pub fn values(&self) -> impl Iterator<Item = u32> + '_ {
        self.keys
            .iter()
            .zip(&self.vals)
            .filter(|(k, _)| **k != EMPTY)
            .map(|(_, &v)| v)
    }

    pub fn heap_bytes(&self) -> usize {
        self.keys.capacity() * 8 + self.vals.capacity() * 4
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn matches_std_hashmap_under_churn() {
        check::<false>();
        check::<true>();
    }

    fn check<const DENSE: bool>() {
        let mut f = FlatMap::<DENSE>::default();
        let mut s: HashMap<u64, u32> = HashMap::new();
        let mut x = 0x1234_5678_u64;
        for step in 0..200_000u32 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            // Few distinct keys, clustered low bits: long probe runs.
            let k = nonzero((x % 512) << 3 | (x >> 60));
            if x & 3 == 0 {
                assert_eq!(f.remove(k), s.remove(&k));
            } else {
                assert_eq!(f.insert(k, step), s.insert(k, step));
            }
            assert_eq!(f.len(), s.len());
        }
        for (&k, &v) in &s {
            assert_eq!(f.get(k), Some(v));
        }
        let mut keys: Vec<u64> = f.keys().collect();
        let mut want_keys: Vec<u64> = s.keys().copied().collect();
        keys.sort_unstable();
        want_keys.sort_unstable();
        assert_eq!(keys, want_keys);
        let mut vals: Vec<u32> = f.values().collect();
        let mut want: Vec<u32> = s.values().copied().collect();
        vals.sort_unstable();
        want.sort_unstable();
        assert_eq!(vals, want);
        for k in s.keys().copied().collect::<Vec<_>>() {
            assert_eq!(f.remove(k), s.remove(&k));
        }
        assert_eq!(f.len(), 0);
        assert_eq!(f.heap_bytes(), 0);
        assert_eq!(f.get(5), None);
    }
}

/// Reference counts of stage prefixes: maintained by insert and remove, read
/// by lookups only behind a positive [`Filter`] answer.
pub(crate) type CountMap = FlatMap<true>;

/// Rule index by hash, probed by lookups.
pub(crate) type IndexMap = FlatMap<false>;

/// A Bloom filter over a [`FlatMap`]'s keys, for the lookup side of the stage
/// prefix sets: blocked (each key sets two bits of one 64-bit word, so a
/// query reads one word), 16 to 32 bits per key.
///
/// The prefix sets of a large subtable do not fit in the cache (5k rules of
/// random L2 addresses make a 96 KiB table per stage), and a staged lookup
/// probes one per stage and subtable, mostly to learn that the prefix is
/// absent. The filter is 4-8 times smaller than the map and answers "absent"
/// for all but about 1% of absent prefixes; only a "present" answer goes on
/// to the exact set. (Trusting a false "present" would be sound — the lookup
/// would just examine the next stage too — but it would make datapath flows
/// needlessly specific, and un-wildcarding depend on the random hash seed.)
///
/// Bits cannot be cleared on removal (another key may share them), so
/// removals are counted as stale and the filter is rebuilt from the map once
/// they amount to half of the keys, or when the size is off by 4x.
#[derive(Clone, Debug, Default)]
pub(crate) struct Filter {
    bits: Vec<u64>,
    stale: usize,
}

impl Filter {
    /// Word index and bit pattern of `h`: the word from the high half of the
    /// hash (the map's slot index comes from the low bits), two bit positions
    /// from bits 16..28.
    #[inline]
    fn slot(&self, h: u64) -> (usize, u64) {
        let word = (h >> 32) as usize & (self.bits.len() - 1);
        let pattern = 1u64 << (h >> 16 & 63) | 1u64 << (h >> 22 & 63);
        (word, pattern)
    }

    /// Whether `h` may be in the map (false: certainly not).
    #[inline]
    pub fn may_contain(&self, h: u64) -> bool {
        if self.bits.is_empty() {
            return false;
        }
        let (w, p) = self.slot(h);
        self.bits[w] & p == p
    }

    fn set(&mut self, h: u64) {
        let (w, p) = self.slot(h);
        self.bits[w] |= p;
    }

    /// `map` just gained the key `h`.
    pub fn added(&mut self, map: &CountMap, h: u64) {
        if map.len() * 16 > self.bits.len() * 64 {
            self.rebuild(map);
        } else {
            self.set(h);
        }
    }

    /// `map` just lost a key.
    pub fn removed(&mut self, map: &CountMap) {
        self.stale += 1;
        if self.stale * 2 > map.len() || map.len() * 128 < self.bits.len() * 64 {
            self.rebuild(map);
        }
    }

    fn rebuild(&mut self, map: &CountMap) {
        self.stale = 0;
        if map.len() == 0 {
            self.bits = Vec::new();
            return;
        }
        let n_bits = (map.len() * 16).next_power_of_two().max(64);
        self.bits = vec![0; n_bits / 64];
        for h in map.keys() {
            self.set(h);
        }
    }

    pub fn heap_bytes(&self) -> usize {
        self.bits.capacity() * 8
    }
}

#[cfg(test)]
mod filter_tests {
    use super::*;

    #[test]
    fn no_false_negatives_under_churn_and_few_false_positives() {
        let mut map = CountMap::default();
        let mut f = Filter::default();
        let mut x = 0x9876_5432_u64;
        let mut live: Vec<u64> = Vec::new();
        for _ in 0..100_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let h = crate::hash::Hashing {
                seed: 0,
                keep: u64::MAX,
            }
            .finish(x);
            if x % 3 == 0 && !live.is_empty() {
                let k = live.swap_remove((x >> 8) as usize % live.len());
                map.remove(k);
                f.removed(&map);
            } else if map.insert(h, 1).is_none() {
                live.push(h);
                f.added(&map, h);
            }
            if x % 97 == 0 {
                assert!(live.iter().all(|&k| f.may_contain(k)));
            }
        }
        assert!(live.iter().all(|&k| f.may_contain(k)));
        let fp = (0..10_000u64)
            .map(|i| {
                crate::hash::Hashing {
                    seed: 1,
                    keep: u64::MAX,
                }
                .finish(i)
            })
            .filter(|&h| f.may_contain(h))
            .count();
        assert!(fp < 10_000 / 25, "false positive rate {fp}/10000");
    }
}
