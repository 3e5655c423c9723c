//! One subtable: every rule that has one particular mask.
//!
//! Within a subtable a key selects at most one rule *value* (`key & mask`), so
//! a lookup is one hash probe. The probe is staged: the words of the mask are
//! split by the classifier's stages (metadata, L2, L3, L4 ...), and for every
//! stage but the last the subtable keeps the multiset of hashes of its rules'
//! values restricted to stages `0..=i`. A key whose stage-`i` prefix hash is
//! absent cannot match any rule here, and the lookup has examined only the
//! mask bits of stages `0..=i` — so only those get un-wildcarded. That is what
//! keeps datapath flows wide: a packet of another logical datapath (metadata)
//! is rejected by a subtable without un-wildcarding its L3/L4 fields.
//!
//! The final table maps the full hash to the first rule of a chain threaded
//! through the rules themselves ([`crate::Classifier`] keeps the links): the
//! rules of that value at every priority, plus any rules of hash-colliding
//! values, sorted by (priority descending, insertion sequence ascending), so
//! that the first matching rule of the chain is the subtable's best.

use std::collections::BTreeMap;

use crate::flat::{CountMap, Filter, IndexMap};
use crate::hash::{mix, Hashing};
use crate::Key;

/// One stage of a subtable: the mask words of that stage that are not zero.
#[derive(Clone, Debug)]
pub(crate) struct Stage {
    /// Word indices (ascending) whose mask word is non-zero.
    pub words: Box<[usize]>,
    /// Reference counts of the prefix hashes (stages `0..=this`) of the
    /// subtable's rules. Unused (empty) for the last stage, whose role is
    /// played by [`Subtable::buckets`].
    pub prefixes: CountMap,
    /// What lookups consult before `prefixes`: small enough to stay in the
    /// cache, it turns most absent prefixes away without touching `prefixes`
    /// (see [`Filter`]).
    pub filter: Filter,
}

/// Rules of one mask.
#[derive(Clone, Debug)]
pub(crate) struct Subtable<const W: usize> {
    pub mask: Key<W>,
    /// The words whose mask is not zero, ascending: a rule stores its value only at these
    /// (see [`Subtable::compress`]). A key is 35 words and an OpenFlow match uses a handful,
    /// so a full value per rule was ~250 of the ~550 bytes a rule cost here.
    pub words: Box<[usize]>,
    /// Non-empty stages of the mask, at least one (possibly with no words,
    /// for the all-wildcard mask).
    pub stages: Box<[Stage]>,
    /// Final-stage hash → first rule (slot index) of the chain.
    pub buckets: IndexMap,
    pub n_rules: usize,
    /// Priority → number of rules (all rules).
    pub prios: BTreeMap<u32, u32>,
    /// Priority → number of non-conjunctive rules.
    pub hard_prios: BTreeMap<u32, u32>,
    /// Lower bound of the insertion sequence of the non-conjunctive rules
    /// (exact after insertions, possibly stale-low after removals). Lets a
    /// lookup skip a subtable whose best possible rule would lose an
    /// equal-priority tie anyway.
    pub hard_min_seq: u64,
    /// Creation sequence, the tie-break of the subtable order.
    pub created: u64,
}

impl<const W: usize> Subtable<W> {
    /// `layout` is the classifier's full stage layout (word lists covering
    /// every word exactly once).
    pub fn new(mask: Key<W>, layout: &[Box<[usize]>], created: u64) -> Self {
        let mut stages: Vec<Stage> = layout
            .iter()
            .map(|ws| Stage {
                words: ws.iter().copied().filter(|&w| mask[w] != 0).collect(),
                prefixes: CountMap::default(),
                filter: Filter::default(),
            })
            .filter(|s| !s.words.is_empty())
            .collect();
        if stages.is_empty() {
            stages.push(Stage {
                words: Box::new([]),
                prefixes: CountMap::default(),
                filter: Filter::default(),
            });
        }
        Subtable {
            mask,
            words: (0..W).filter(|&w| mask[w] != 0).collect(),
            stages: stages.into_boxed_slice(),
            buckets: IndexMap::default(),
            n_rules: 0,
            prios: BTreeMap::new(),
            hard_prios: BTreeMap::new(),
            hard_min_seq: u64::MAX,
            created,
        }
    }

    /// The stage hashes (stages `0..=i` for each `i`) of `value`, which must be
    /// masked already. The last one is the bucket hash.
    pub fn stage_hashes(&self, hs: Hashing, value: &Key<W>) -> Vec<u64> {
        let mut h = hs.seed;
        self.stages
            .iter()
            .map(|st| {
                for &w in st.words.iter() {
                    h = mix(h, value[w]);
                }
                hs.finish(h)
            })
            .collect()
    }

    /// The bucket hash of a masked `value`.
    pub fn final_hash(&self, hs: Hashing, value: &Key<W>) -> u64 {
        let mut h = hs.seed;
        for st in self.stages.iter() {
            for &w in st.words.iter() {
                h = mix(h, value[w]);
            }
        }
        hs.finish(h)
    }

    /// Adds one rule's stage prefixes; returns its bucket hash.
    pub fn add_prefixes(&mut self, hs: Hashing, value: &Key<W>) -> u64 {
        let hashes = self.stage_hashes(hs, value);
        let (last, prefix) = hashes.split_last().expect("a subtable has a stage");
        for (stage, &h) in self.stages.iter_mut().zip(prefix) {
            match stage.prefixes.get_mut(h) {
                Some(c) => *c += 1,
                None => {
                    stage.prefixes.insert(h, 1);
                    stage.filter.added(&stage.prefixes, h);
                }
            }
        }
        *last
    }

    /// Drops one rule's stage prefixes; returns its bucket hash.
    pub fn remove_prefixes(&mut self, hs: Hashing, value: &Key<W>) -> u64 {
        let hashes = self.stage_hashes(hs, value);
        let (last, prefix) = hashes.split_last().expect("a subtable has a stage");
        for (stage, &h) in self.stages.iter_mut().zip(prefix) {
            if let Some(c) = stage.prefixes.get_mut(h) {
                *c -= 1;
                if *c == 0 {
                    stage.prefixes.remove(h);
                    stage.filter.removed(&stage.prefixes);
                }
            }
        }
        *last
    }

    /// A masked value as stored in a rule: its words at [`Subtable::words`].
    pub fn compress(&self, value: &Key<W>) -> Box<[u64]> {
        self.words.iter().map(|&w| value[w]).collect()
    }

    /// A stored value as a whole (masked) key.
    pub fn expand(&self, value: &[u64]) -> Key<W> {
        let mut k = [0; W];
        for (&w, &v) in self.words.iter().zip(value) {
            k[w] = v;
        }
        k
    }

    /// Whether the stored `value` equals the masked key `full`.
    #[inline]
    pub fn same_value(&self, value: &[u64], full: &Key<W>) -> bool {
        self.words.iter().zip(value).all(|(&w, &v)| full[w] == v)
    }

    /// Whether `key` matches the stored `value` under this subtable's mask.
    #[inline]
    pub fn matches(&self, value: &[u64], key: &Key<W>) -> bool {
        self.words
            .iter()
            .zip(value)
            .all(|(&w, &v)| key[w] & self.mask[w] == v)
    }

    /// Staged probe. Returns the head of the candidate chain (whose rules must
    /// still be compared with [`Self::matches`]) or `None`, and ORs into `wc`
    /// the mask bits it examined: the words of the stages up to the one that
    /// rejected the key, or the whole mask if the final table was probed.
    #[inline]
    pub fn probe(&self, hs: Hashing, key: &Key<W>, wc: &mut Key<W>) -> Option<u32> {
        let last = self.stages.len() - 1;
        let mut h = hs.seed;
        for (i, st) in self.stages.iter().enumerate() {
            for &w in st.words.iter() {
                h = mix(h, key[w] & self.mask[w]);
            }
            let f = hs.finish(h);
            if i < last {
                if !st.filter.may_contain(f) || st.prefixes.get(f).is_none() {
                    for s in &self.stages[..=i] {
                        for &w in s.words.iter() {
                            wc[w] |= self.mask[w];
                        }
                    }
                    return None;
                }
            } else {
                for (c, m) in wc.iter_mut().zip(self.mask.iter()) {
                    *c |= *m;
                }
                return self.buckets.get(f);
            }
        }
        None
    }

    /// Approximate heap bytes held by this subtable (see
    /// [`crate::Classifier::memory_usage`]).
    pub fn heap_bytes(&self) -> usize {
        let mut n = self.stages.len() * std::mem::size_of::<Stage>();
        // the rules' stored values
        n += (self.n_rules + 1) * self.words.len() * 8;
        for st in self.stages.iter() {
            n += st.words.len() * std::mem::size_of::<usize>();
            n += st.prefixes.heap_bytes() + st.filter.heap_bytes();
        }
        n += self.buckets.heap_bytes();
        // BTreeMap nodes: roughly 2x the payload.
        n += (self.prios.len() + self.hard_prios.len()) * 2 * std::mem::size_of::<(u32, u32)>();
        n
    }
}
