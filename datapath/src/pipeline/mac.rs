//! The MAC learning table behind NORMAL, shared by all PMDs.
//!
//! Set-associative: a key hashes to one 64-byte-aligned bucket of four entries, so a lookup
//! touches one bucket and deletion is a plain store (no probe chains). Each bucket has a sequence
//! counter: writers (learning on a cache miss, the once-a-second refresh of a cached flow's
//! source, aging) make it odd while they change the bucket, readers retry if it changed under
//! them. Nothing here runs per packet: lookups and learning happen during translation, on misses.

use std::sync::atomic::{fence, AtomicU32, AtomicU64, Ordering};

const WAYS: usize = 4;
const VALID: u64 = 1 << 63;

#[repr(C, align(64))]
struct Bucket {
    seq: AtomicU32,
    key: [AtomicU64; WAYS],
    val: [AtomicU64; WAYS],
}

impl Bucket {
    /// Runs `f` with the bucket write-locked (sequence odd).
    #[inline]
    fn write<R>(&self, f: impl FnOnce(&Bucket) -> R) -> R {
        let mut spins = 0u32;
        let s = loop {
            let s = self.seq.load(Ordering::Relaxed);
            if s & 1 == 0
                && self
                    .seq
                    .compare_exchange_weak(s, s + 1, Ordering::Acquire, Ordering::Relaxed)
                    .is_ok()
            {
                break s;
            }
            spins += 1;
            if spins > 64 {
                std::thread::yield_now();
            } else {
                std::hint::spin_loop();
            }
        };
        fence(Ordering::Release);
        let r = f(self);
        self.seq.store(s + 2, Ordering::Release);
        r
    }

    /// Runs `f` on a consistent view of the bucket.
    #[inline]
    fn read<R>(&self, f: impl Fn(&Bucket) -> R) -> R {
        loop {
            let s1 = self.seq.load(Ordering::Acquire);
            if s1 & 1 != 0 {
                std::hint::spin_loop();
                continue;
            }
            let r = f(self);
            fence(Ordering::Acquire);
            if self.seq.load(Ordering::Relaxed) == s1 {
                return r;
            }
        }
    }
}

/// What learning did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Learned {
    /// A new entry: forwarding decisions that flooded may now be wrong.
    New,
    /// The MAC moved to another port: decisions to the old port are wrong.
    Moved,
    /// Already known on this port.
    Same,
}

/// One entry, for `fdb/show`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    pub bridge: u8,
    pub vlan: u16,
    pub mac: u64,
    pub port: u16,
    pub last_seen: u32,
}

pub struct MacTable {
    buckets: Box<[Bucket]>,
    mask: usize,
    /// Entries evicted because their bucket was full (a sign the table is too small).
    pub evictions: AtomicU64,
    pub learned: AtomicU64,
    pub moved: AtomicU64,
    pub aged: AtomicU32,
}

#[inline]
fn make_key(bridge: u8, vlan: u16, mac: u64) -> u64 {
    VALID | ((bridge as u64 & 0x7) << 60) | ((vlan as u64 & 0xfff) << 48) | (mac & 0xffff_ffff_ffff)
}

#[inline]
fn hash(k: u64) -> usize {
    // a multiplicative hash; the high bits are the well-mixed ones
    (k.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32) as usize
}

#[inline]
fn make_val(port: u16, now: u32) -> u64 {
    ((now as u64) << 32) | port as u64
}

impl MacTable {
    /// A table of at least `capacity` entries (rounded up to a power of two of buckets).
    pub fn new(capacity: usize) -> Self {
        let n = (capacity / WAYS).max(1).next_power_of_two();
        let buckets = (0..n)
            .map(|_| Bucket {
                seq: AtomicU32::new(0),
                key: Default::default(),
                val: Default::default(),
            })
            .collect::<Vec<_>>()
            .into_boxed_slice();
        MacTable {
            buckets,
            mask: n - 1,
            evictions: AtomicU64::new(0),
            learned: AtomicU64::new(0),
            moved: AtomicU64::new(0),
            aged: AtomicU32::new(0),
        }
    }

    pub fn capacity(&self) -> usize {
        self.buckets.len() * WAYS
    }

    /// The port `mac` was last seen on, in `bridge` / `vlan`.
    pub fn lookup(&self, bridge: u8, vlan: u16, mac: u64) -> Option<u16> {
        let k = make_key(bridge, vlan, mac);
        self.buckets[hash(k) & self.mask].read(|b| {
            (0..WAYS)
                .find(|&i| b.key[i].load(Ordering::Relaxed) == k)
                .map(|i| b.val[i].load(Ordering::Relaxed) as u16)
        })
    }

    /// Records that `mac` was seen on `port` at second `now`. Returns what changed and a slot
    /// handle for cheap refreshes later.
    pub fn learn(&self, bridge: u8, vlan: u16, mac: u64, port: u16, now: u32) -> (Learned, u32) {
        let k = make_key(bridge, vlan, mac);
        let bi = hash(k) & self.mask;
        let (learned, way, evicted) = self.buckets[bi].write(|b| {
            if let Some(i) = (0..WAYS).find(|&i| b.key[i].load(Ordering::Relaxed) == k) {
                let old = b.val[i].load(Ordering::Relaxed);
                if old != make_val(port, now) {
                    b.val[i].store(make_val(port, now), Ordering::Relaxed);
                }
                let l = if old as u16 != port {
                    Learned::Moved
                } else {
                    Learned::Same
                };
                return (l, i, false);
            }
            // an empty way, else the least recently seen one
            let i = (0..WAYS)
                .find(|&i| b.key[i].load(Ordering::Relaxed) == 0)
                .unwrap_or_else(|| {
                    (0..WAYS)
                        .min_by_key(|&i| b.val[i].load(Ordering::Relaxed) >> 32)
                        .unwrap_or(0)
                });
            let evicted = b.key[i].load(Ordering::Relaxed) != 0;
            b.key[i].store(k, Ordering::Relaxed);
            b.val[i].store(make_val(port, now), Ordering::Relaxed);
            (Learned::New, i, evicted)
        });
        match learned {
            Learned::New => {
                self.learned.fetch_add(1, Ordering::Relaxed);
                if evicted {
                    self.evictions.fetch_add(1, Ordering::Relaxed);
                }
            }
            Learned::Moved => {
                self.moved.fetch_add(1, Ordering::Relaxed);
            }
            Learned::Same => {}
        }
        (learned, (bi * WAYS + way) as u32)
    }

    /// Marks the entry in `slot` seen at `now`, if it still holds `mac` on `port`. Used by cached
    /// flows (once a second each) so that a MAC whose traffic never misses the cache does not
    /// age out.
    pub fn refresh(&self, slot: u32, bridge: u8, vlan: u16, mac: u64, port: u16, now: u32) {
        let s = slot as usize;
        if s >= self.capacity() {
            return;
        }
        let k = make_key(bridge, vlan, mac);
        let i = s % WAYS;
        self.buckets[s / WAYS].write(|b| {
            if b.key[i].load(Ordering::Relaxed) == k
                && b.val[i].load(Ordering::Relaxed) as u16 == port
            {
                b.val[i].store(make_val(port, now), Ordering::Relaxed);
            }
        });
    }

    /// Forgets entries not seen for `aging(bridge)` seconds. Returns how many.
    pub fn age(&self, now: u32, aging: impl Fn(u8) -> u32) -> usize {
        let n = self.flush(|e| now.saturating_sub(e.last_seen) >= aging(e.bridge));
        self.aged.fetch_add(n as u32, Ordering::Relaxed);
        n
    }

    /// Forgets entries matching `pred` (a bridge flush, a port going away).
    pub fn flush(&self, pred: impl Fn(&Entry) -> bool) -> usize {
        let mut n = 0;
        for b in self.buckets.iter() {
            let any = b.read(|b| (0..WAYS).any(|i| b.key[i].load(Ordering::Relaxed) != 0));
            if !any {
                continue;
            }
            n += b.write(|b| {
                let mut n = 0;
                for i in 0..WAYS {
                    let k = b.key[i].load(Ordering::Relaxed);
                    if k != 0 && pred(&Self::entry(k, b.val[i].load(Ordering::Relaxed))) {
                        b.key[i].store(0, Ordering::Relaxed);
                        n += 1;
                    }
                }
                n
            });
        }
        n
    }

    fn entry(k: u64, v: u64) -> Entry {
        Entry {
            bridge: ((k >> 60) & 0x7) as u8,
            vlan: ((k >> 48) & 0xfff) as u16,
            mac: k & 0xffff_ffff_ffff,
            port: v as u16,
            last_seen: (v >> 32) as u32,
        }
    }

    /// All entries.
    pub fn entries(&self) -> Vec<Entry> {
        let mut v = Vec::new();
        for b in self.buckets.iter() {
            let e = b.read(|b| {
                let mut e = [None; WAYS];
                for (i, slot) in e.iter_mut().enumerate() {
                    let k = b.key[i].load(Ordering::Relaxed);
                    if k != 0 {
                        *slot = Some(Self::entry(k, b.val[i].load(Ordering::Relaxed)));
                    }
                }
                e
            });
            v.extend(e.into_iter().flatten());
        }
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn learn_lookup_move_age() {
        let t = MacTable::new(64);
        assert_eq!(t.lookup(0, 0, 0x0a0000000001), None);
        let (l, slot) = t.learn(0, 0, 0x0a0000000001, 3, 100);
        assert_eq!(l, Learned::New);
        assert_eq!(t.lookup(0, 0, 0x0a0000000001), Some(3));
        assert_eq!(t.lookup(0, 5, 0x0a0000000001), None, "other VLAN");
        assert_eq!(t.lookup(1, 0, 0x0a0000000001), None, "other bridge");
        assert_eq!(t.learn(0, 0, 0x0a0000000001, 3, 101).0, Learned::Same);
        assert_eq!(t.learn(0, 0, 0x0a0000000001, 4, 102).0, Learned::Moved);
        assert_eq!(t.lookup(0, 0, 0x0a0000000001), Some(4));
        // refresh keeps it alive past the aging time
        t.refresh(slot, 0, 0, 0x0a0000000001, 4, 350);
        assert_eq!(t.age(400, |_| 300), 0);
        assert_eq!(t.age(700, |_| 300), 1);
        assert_eq!(t.lookup(0, 0, 0x0a0000000001), None);
    }

    #[test]
    fn full_buckets_evict_the_oldest() {
        let t = MacTable::new(4); // one bucket
        for i in 0..4u64 {
            t.learn(0, 0, 0x100 + i, i as u16, 10 + i as u32);
        }
        assert_eq!(t.entries().len(), 4);
        t.learn(0, 0, 0x200, 9, 50);
        assert_eq!(t.lookup(0, 0, 0x100), None, "oldest evicted");
        assert_eq!(t.lookup(0, 0, 0x200), Some(9));
        assert_eq!(t.evictions.load(Ordering::Relaxed), 1);
        assert_eq!(t.flush(|e| e.port == 9), 1);
        assert_eq!(t.entries().len(), 3);
    }

    #[test]
    fn concurrent_learners_never_pair_a_key_with_a_wrong_port() {
        // each thread owns a disjoint set of MACs and always learns them on its own port number;
        // lookups from any thread must never report another thread's port for a MAC
        let t = Arc::new(MacTable::new(256));
        let threads: Vec<_> = (0..4u16)
            .map(|id| {
                let t = t.clone();
                std::thread::spawn(move || {
                    for round in 0..20_000u32 {
                        let mac = 0x1000 * (id as u64 + 1) + (round % 300) as u64;
                        t.learn(0, 0, mac, id, round);
                        if let Some(p) = t.lookup(0, 0, mac) {
                            assert_eq!(p, id);
                        }
                    }
                })
            })
            .collect();
        for h in threads {
            h.join().unwrap();
        }
        for e in t.entries() {
            assert_eq!(e.mac / 0x1000 - 1, e.port as u64);
        }
    }
}
