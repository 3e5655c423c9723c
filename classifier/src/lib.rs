//! The flow classifier of one OpenFlow table.
//!
//! # Model
//!
//! A key is a fixed array of `W` 64-bit words ([`Key`]); the caller decides
//! which field lives in which bits. A rule matches on `(value, mask)` — a key
//! `k` matches when `k & mask == value` word by word — and has a `u32`
//! priority and a payload `T` (typically the flow's actions, cookie and
//! counters). Rules may instead carry *conjunction clauses*
//! (`conjunction(id, k/n)` actions), see [Conjunctive matches](#conjunctive-matches).
//!
//! # Why tuple-space search
//!
//! OVN tables hold tens of thousands of flows but only a handful of distinct
//! masks per table (many flows differ only in `metadata`, a register or an
//! address). The classifier therefore keeps one hash table — a *subtable* —
//! per distinct mask. A lookup probes each subtable once (hash `key & mask`,
//! one table probe), so its cost grows with the number of masks and not with
//! the number of rules.
//!
//! * **Priority order and early termination.** Subtables are kept sorted by
//!   the highest priority they hold. Once a rule of priority `p` is found, no
//!   subtable whose maximum is below `p` can do better and the lookup stops;
//!   those subtables examine no bits and contribute nothing to the wildcards.
//! * **Staged lookup.** The caller gives the stage boundaries once
//!   ([`Classifier::new`]), e.g. `[metadata words, L2 words, L3 words, L4
//!   words]`. Each subtable keeps, for every stage `i` but the last, the set
//!   of hashes of its rules' values restricted to stages `0..=i`. A probe
//!   hashes stage by stage and gives up at the first stage whose prefix is not
//!   in the set; it has then examined — and un-wildcards — only the mask words
//!   of stages `0..=i`. Packets of another logical datapath are thus rejected
//!   on `metadata` alone, and the datapath flow installed for them stays wild
//!   in L3/L4. (This is Open vSwitch's `lib/classifier.c` design; the code here
//!   is independent.)
//! * **Cache-sized stage checks.** With 100k rules the prefix sets no longer
//!   fit in the cache and each stage check would be a cache miss, mostly to
//!   learn that the prefix is absent. Lookups therefore consult a blocked
//!   Bloom filter per stage first (16-32 bits per prefix, ~1% false
//!   "present") and the exact, reference-counted set only when the filter
//!   says "present", so the staging semantics stay exact. Tables are flat
//!   open-addressing arrays keyed by the 64-bit hash, keys apart from values,
//!   so that a probe costs one cache line (`flat.rs` says why not
//!   `std::collections::HashMap`).
//! * **Empty subtables are dropped**, so removed masks cost nothing.
//!
//! Per rule the classifier holds its slot (value, priority, chain link,
//! sequence, clauses pointer, payload), a 12-byte bucket-table slot at load
//! 1/4..1/2, and per stage but the last a 12-byte reference-count slot at
//! load up to 3/4 plus 2-4 bytes of filter — fewer when rules share a stage
//! prefix, as OVN flows sharing `metadata` do. [`Classifier::memory_usage`]
//! estimates the total.
//!
//! # Wildcard tracking
//!
//! Every lookup ORs into a caller-provided `wc` key each mask bit it had to
//! examine: the whole mask of each subtable whose final table was probed, the
//! stage prefix of each subtable rejected by staging, nothing for subtables
//! skipped because of priorities (that decision depends only on the table,
//! not on the key). The guarantee, checked by property tests: for any key `k`
//! and the `wc` returned, every key `k'` with `k' & wc == k & wc` gets the same
//! result. `(k & wc, wc)` is therefore a datapath flow (megaflow) that any
//! later packet matching it can use without walking the pipeline.
//!
//! # Ties
//!
//! OpenFlow leaves the choice between overlapping rules of equal priority
//! undefined; here it is deterministic: **the rule inserted first wins**
//! (lowest insertion sequence; [`Classifier::set_conjunctions`] and
//! [`Classifier::get_mut`] keep a rule's place, remove + insert gives it a
//! new one). Adding a new overlapping flow thus never changes the treatment of
//! traffic already handled by an existing one. The price is that a subtable
//! whose maximum priority *equals* the best priority found so far must still
//! be probed if it holds a rule old enough to win the tie (a per-subtable
//! lower bound of its rules' sequence numbers avoids most of those probes).
//!
//! # Conjunctive matches
//!
//! Semantics of Open vSwitch (ovs-fields(7) "Conjunctive Match Fields"),
//! stated literally — the property tests compare against a linear scan that
//! implements exactly this text:
//!
//! * A rule is *conjunctive* (a "soft" match) if it carries at least one
//!   clause [`ConjClause`] `{id, clause: k, n_clauses: n}`, `2 <= n <= 64`,
//!   `1 <= k <= n`; otherwise it is ordinary ("hard").
//! * [`Classifier::lookup_conj`] on key `K`: let `H` be the best matching
//!   ordinary rule (highest priority, ties as above) and `hp` its priority.
//!   For each priority `p > hp` at which conjunctive rules match `K`, in
//!   descending order: let `S` be those matching conjunctive rules at `p`.
//!   Conjunction `id` *fires* at `p` if for some `n` every clause `k` in
//!   `1..=n` is carried, as `(id, k, n)`, by at least one rule of `S`, and `S`
//!   has at least `n` rules (OVS's rule; it matters only for a degenerate rule
//!   carrying several clauses of one conjunction). If any
//!   fires, the result is [`Outcome::Conjunction`] with `p` and all fired ids
//!   ascending; otherwise priority `p` is ignored as if its conjunctive rules
//!   did not exist and the next lower priority is tried. If nothing fires the
//!   result is `H` ([`Outcome::Rule`]) or [`Outcome::Miss`]. An ordinary rule
//!   at the same priority as conjunctive ones wins. Clauses of the same `id`
//!   with different `n` are treated as different conjunctions (OVS's result
//!   is order-dependent there; OVS documents ids as unique per table and
//!   priority, which is what OVN produces).
//! * The caller then sets `conj_id = id` in its key and looks up again with
//!   [`Classifier::lookup`], which ignores conjunctive rules (as OVS does, to
//!   avoid recursion). If that finds nothing for any fired id, OVS continues
//!   "as if the conjunctive flow had not matched at all":
//!   [`Classifier::lookup_conj_below`] with `ceiling = p` does that.
//!   [`Classifier::lookup_resolved`] runs the whole procedure. Note that the
//!   re-lookup sees the whole table, so an ordinary rule below `p` that does
//!   not match on `conj_id` (e.g. `H`) is found by it — exactly as in OVS.
//! * Nothing is expanded: each probed subtable yields the matching rules of
//!   one bucket, and at one priority the clauses of the matching conjunctive
//!   rules are sorted and counted (`O(m log m)` in the clauses seen).
//!   Priorities are settled lazily: once every subtable whose maximum is `>=
//!   p` has been probed, the set at `p` is complete and can fire, and the
//!   lookup stops there if it does.
//!
//! # Concurrency
//!
//! Lookups take `&self` and use no interior mutability: the classifier is
//! `Send + Sync` (for `T: Send + Sync`) and `Clone` (for `T: Clone`), ready to
//! be published as an immutable snapshot to forwarding threads.
//!
//! # Limits
//!
//! No prefix tries (OVS's per-field longest-prefix tries that un-wildcard
//! fewer address bits when prefixes of several lengths coexist), no
//! port-range tries, and no versioning (the caller publishes snapshots).

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod flat;
mod hash;
mod subtable;

use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::fmt;
use std::hash::BuildHasher;
use std::ops::Range;

use hash::Hashing;
use subtable::Subtable;

/// A key (or mask, or value): `W` 64-bit words laid out by the caller.
pub type Key<const W: usize> = [u64; W];

/// Handle of an inserted rule. Stale handles (of removed rules) are detected:
/// the slot's generation changes when a rule is removed.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct RuleId {
    index: u32,
    generation: u32,
}

impl RuleId {
    /// The smallest id in `Ord` order (a range bound for ordered sets of ids; names no rule).
    pub const MIN: RuleId = RuleId {
        index: 0,
        generation: 0,
    };

    /// Dense slot index (`< Classifier::slot_capacity()`), reused after the
    /// rule is removed: usable to index side tables such as counters.
    pub fn index(self) -> u32 {
        self.index
    }
}

/// One `conjunction(id, clause/n_clauses)` action. `clause` is 1-based, as in
/// the OpenFlow syntax.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct ConjClause {
    /// Conjunction id (matched by `conj_id` in the follow-up lookup).
    pub id: u32,
    /// Dimension of this rule, `1..=n_clauses`.
    pub clause: u8,
    /// Number of dimensions, `2..=64`.
    pub n_clauses: u8,
}

impl From<(u32, u8, u8)> for ConjClause {
    fn from((id, clause, n_clauses): (u32, u8, u8)) -> Self {
        ConjClause {
            id,
            clause,
            n_clauses,
        }
    }
}

impl ConjClause {
    /// Checks `2 <= n_clauses <= 64` and `1 <= clause <= n_clauses`, as OVS
    /// does when decoding the action (`NXBAC_BAD_CONJUNCTION`): the OpenFlow
    /// layer should call this to refuse a flow-mod before inserting it.
    pub fn validate(self) -> Result<(), ConjError> {
        if (2..=64).contains(&self.n_clauses) && (1..=self.n_clauses).contains(&self.clause) {
            Ok(())
        } else {
            Err(ConjError::InvalidClause(self))
        }
    }
}

/// A rejected conjunction clause.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum ConjError {
    /// `n_clauses` not in `2..=64` or `clause` not in `1..=n_clauses` (OVS
    /// rejects these too: `NXBAC_BAD_CONJUNCTION`).
    InvalidClause(ConjClause),
}

impl fmt::Display for ConjError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConjError::InvalidClause(c) => write!(
                f,
                "invalid conjunction({}, {}/{}): need 2 <= n <= 64 and 1 <= k <= n",
                c.id, c.clause, c.n_clauses
            ),
        }
    }
}

impl std::error::Error for ConjError {}

/// Result of a lookup that honours conjunctive rules.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Outcome {
    /// An ordinary (non-conjunctive) rule is the answer.
    Rule(RuleId),
    /// Conjunctions fired at `priority`: look up again with `conj_id` set to
    /// one of `ids` (ascending, at least one).
    Conjunction {
        /// Priority of the clauses that completed.
        priority: u32,
        /// Every conjunction id that fired at that priority, ascending.
        ids: Vec<u32>,
    },
    /// Nothing matches.
    Miss,
}

/// Borrowed view of one rule.
#[derive(Debug)]
pub struct RuleRef<'a, T, const W: usize> {
    /// Its handle.
    pub id: RuleId,
    /// Masked value (rules store only the words their mask examines; this is the whole key).
    pub value: Key<W>,
    /// Mask.
    pub mask: &'a Key<W>,
    /// Priority.
    pub priority: u32,
    /// Conjunction clauses; empty for an ordinary rule.
    pub clauses: &'a [ConjClause],
    /// Payload.
    pub payload: &'a T,
}

impl<T, const W: usize> Clone for RuleRef<'_, T, W> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T, const W: usize> Copy for RuleRef<'_, T, W> {}

/// End of a bucket chain.
const NONE: u32 = u32::MAX;

#[derive(Clone, Debug)]
struct Rule<T, const W: usize> {
    /// The masked value at the subtable's [`Subtable::words`].
    value: Box<[u64]>,
    priority: u32,
    /// Next rule (slot index) in this rule's bucket chain, or [`NONE`].
    next: u32,
    seq: u64,
    subtable: u32,
    clauses: Option<Box<[ConjClause]>>,
    payload: T,
}

#[derive(Clone, Debug)]
struct Slot<T, const W: usize> {
    generation: u32,
    rule: Option<Rule<T, W>>,
}

/// Per-subtable summary kept in priority order, so that the lookup loop
/// decides skips without touching the subtables themselves.
#[derive(Clone, Copy, Debug)]
struct OrderEntry {
    max: u32,
    min: u32,
    hard_max: Option<u32>,
    hard_min_seq: u64,
    created: u64,
    idx: u32,
}

/// Best ordinary match so far: (priority, sequence, rule slot).
type Best = Option<(u32, u64, u32)>;

/// The classifier of one flow table. See the [crate documentation](crate).
#[derive(Clone, Debug)]
pub struct Classifier<T, const W: usize> {
    /// Full stage layout: the caller's stages, then the words no stage
    /// names, each list ascending.
    layout: Box<[Box<[usize]>]>,
    hashing: Hashing,
    slots: Vec<Slot<T, W>>,
    free_slots: Vec<u32>,
    len: usize,
    n_conj: usize,
    next_seq: u64,
    subtables: Vec<Option<Subtable<W>>>,
    free_subtables: Vec<u32>,
    by_mask: HashMap<Key<W>, u32>,
    order: Vec<OrderEntry>,
}

fn masked<const W: usize>(v: &Key<W>, m: &Key<W>) -> Key<W> {
    std::array::from_fn(|w| v[w] & m[w])
}

impl<T, const W: usize> Classifier<T, W> {
    /// Creates an empty classifier. `stages` are word-index ranges, in lookup
    /// order (most selective-and-cheap first, typically metadata, L2, L3, L4);
    /// words named by no stage form an implicit last stage. Empty ranges are
    /// ignored.
    ///
    /// # Panics
    ///
    /// If a range reaches beyond `W` or two ranges overlap (a programming
    /// error of the caller's key layout).
    pub fn new(stages: &[Range<usize>]) -> Self {
        let mut seen = [false; W];
        let mut layout: Vec<Box<[usize]>> = Vec::new();
        for r in stages {
            assert!(
                r.end <= W,
                "stage {r:?} out of range for a key of {W} words"
            );
            let mut ws = Vec::new();
            for w in r.clone() {
                assert!(!seen[w], "word {w} is in two stages");
                seen[w] = true;
                ws.push(w);
            }
            if !ws.is_empty() {
                layout.push(ws.into_boxed_slice());
            }
        }
        let rest: Vec<usize> = (0..W).filter(|&w| !seen[w]).collect();
        if !rest.is_empty() {
            layout.push(rest.into_boxed_slice());
        }
        Classifier {
            layout: layout.into_boxed_slice(),
            hashing: Hashing {
                seed: RandomState::new().hash_one(0x5eed_u64),
                keep: u64::MAX,
            },
            slots: Vec::new(),
            free_slots: Vec::new(),
            len: 0,
            n_conj: 0,
            next_seq: 0,
            subtables: Vec::new(),
            free_subtables: Vec::new(),
            by_mask: HashMap::new(),
            order: Vec::new(),
        }
    }

    /// Testing hook, not part of the API: keeps only the `keep` bits of every
    /// hash (e.g. `0x7`), so that stage prefixes and buckets collide all the
    /// time and the collision paths get exercised. Only on an empty
    /// classifier.
    #[doc(hidden)]
    pub fn degrade_hash_for_tests(&mut self, keep: u64) {
        assert!(
            self.is_empty(),
            "the hash cannot change under existing rules"
        );
        self.hashing.keep = keep;
    }

    /// Number of rules.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether there are no rules.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Number of subtables (distinct masks), the main driver of lookup cost.
    pub fn n_subtables(&self) -> usize {
        self.order.len()
    }

    /// Number of conjunctive rules.
    pub fn n_conjunctive(&self) -> usize {
        self.n_conj
    }

    /// Upper bound (exclusive) of [`RuleId::index`] values handed out so far.
    pub fn slot_capacity(&self) -> usize {
        self.slots.len()
    }

    /// The stage layout in use: the caller's non-empty stages plus, if some
    /// words were named by no stage, a last stage with those.
    pub fn stages(&self) -> impl Iterator<Item = &[usize]> + '_ {
        self.layout.iter().map(|s| &s[..])
    }

    // ----------------------------------------------------------------------
    // Rule management
    // ----------------------------------------------------------------------

    /// Inserts an ordinary rule. `value` is masked with `mask` here, so stray
    /// bits are harmless. Rules identical in match and priority may coexist
    /// (the older wins lookups); an OpenFlow `ADD` should first replace via
    /// [`Self::find_exact`].
    pub fn insert(&mut self, value: Key<W>, mask: Key<W>, priority: u32, payload: T) -> RuleId {
        self.insert_inner(value, mask, priority, None, payload)
    }

    /// Inserts a rule whose actions are `conjunction(id, k/n)` clauses. An
    /// empty `clauses` list inserts an ordinary rule.
    ///
    /// # Panics
    ///
    /// If a clause is invalid ([`ConjClause::validate`]); the OpenFlow layer
    /// refuses those when decoding, or use [`Self::try_insert_conjunctive`].
    pub fn insert_conjunctive(
        &mut self,
        value: Key<W>,
        mask: Key<W>,
        priority: u32,
        clauses: impl AsRef<[ConjClause]>,
        payload: T,
    ) -> RuleId {
        match self.try_insert_conjunctive(value, mask, priority, clauses, payload) {
            Ok(id) => id,
            Err(e) => panic!("{e}"),
        }
    }

    /// [`Self::insert_conjunctive`] that refuses invalid clauses (and inserts
    /// nothing) instead of panicking.
    pub fn try_insert_conjunctive(
        &mut self,
        value: Key<W>,
        mask: Key<W>,
        priority: u32,
        clauses: impl AsRef<[ConjClause]>,
        payload: T,
    ) -> Result<RuleId, ConjError> {
        let clauses = Self::check_clauses(clauses.as_ref())?;
        Ok(self.insert_inner(value, mask, priority, clauses, payload))
    }

    fn check_clauses(clauses: &[ConjClause]) -> Result<Option<Box<[ConjClause]>>, ConjError> {
        for c in clauses {
            c.validate()?;
        }
        Ok((!clauses.is_empty()).then(|| clauses.into()))
    }

    fn insert_inner(
        &mut self,
        value: Key<W>,
        mask: Key<W>,
        priority: u32,
        clauses: Option<Box<[ConjClause]>>,
        payload: T,
    ) -> RuleId {
        let value = masked(&value, &mask);
        let st_idx = match self.by_mask.get(&mask) {
            Some(&i) => i,
            None => self.new_subtable(mask),
        };
        let seq = self.next_seq;
        self.next_seq += 1;
        let hard = clauses.is_none();
        let slot_idx = match self.free_slots.pop() {
            Some(i) => i,
            None => {
                self.slots.push(Slot {
                    generation: 0,
                    rule: None,
                });
                u32::try_from(self.slots.len() - 1)
                    .ok()
                    .filter(|&i| i != NONE)
                    .expect("fewer than 2^32 - 1 rules")
            }
        };
        let st = self.subtables[st_idx as usize]
            .as_mut()
            .expect("subtable of a mask in by_mask");
        let h = st.add_prefixes(self.hashing, &value);
        // Link into the chain: the new rule has the highest sequence, so it
        // goes after every rule of priority >= its own.
        let next = match st.buckets.get(h) {
            Some(head) if rule_at(&self.slots, head).priority >= priority => {
                let mut prev = head;
                loop {
                    let n = rule_at(&self.slots, prev).next;
                    if n == NONE || rule_at(&self.slots, n).priority < priority {
                        break;
                    }
                    prev = n;
                }
                let prev = rule_at_mut(&mut self.slots, prev);
                std::mem::replace(&mut prev.next, slot_idx)
            }
            head => {
                st.buckets.insert(h, slot_idx);
                head.unwrap_or(NONE)
            }
        };
        let slot = &mut self.slots[slot_idx as usize];
        slot.rule = Some(Rule {
            value: st.compress(&value),
            priority,
            next,
            seq,
            subtable: st_idx,
            clauses,
            payload,
        });
        let id = RuleId {
            index: slot_idx,
            generation: slot.generation,
        };
        st.n_rules += 1;
        *st.prios.entry(priority).or_insert(0) += 1;
        if hard {
            *st.hard_prios.entry(priority).or_insert(0) += 1;
            st.hard_min_seq = st.hard_min_seq.min(seq);
        } else {
            self.n_conj += 1;
        }
        self.len += 1;
        self.refresh_order(st_idx);
        id
    }

    fn new_subtable(&mut self, mask: Key<W>) -> u32 {
        let created = self.next_seq;
        let st = Subtable::new(mask, &self.layout, created);
        let idx = match self.free_subtables.pop() {
            Some(i) => {
                self.subtables[i as usize] = Some(st);
                i
            }
            None => {
                self.subtables.push(Some(st));
                u32::try_from(self.subtables.len() - 1).expect("too many subtables")
            }
        };
        self.by_mask.insert(mask, idx);
        idx
    }

    /// Recomputes the order entry of a subtable (creating or dropping it) and
    /// re-sorts the order if its maximum priority changed.
    fn refresh_order(&mut self, st_idx: u32) {
        let pos = self.order.iter().position(|e| e.idx == st_idx);
        let Some(st) = self.subtables[st_idx as usize].as_ref() else {
            if let Some(p) = pos {
                self.order.remove(p);
            }
            return;
        };
        let (Some((&max, _)), Some((&min, _))) =
            (st.prios.last_key_value(), st.prios.first_key_value())
        else {
            return;
        };
        let entry = OrderEntry {
            max,
            min,
            hard_max: st.hard_prios.last_key_value().map(|(&p, _)| p),
            hard_min_seq: st.hard_min_seq,
            created: st.created,
            idx: st_idx,
        };
        let resort = match pos {
            Some(p) => {
                let old = std::mem::replace(&mut self.order[p], entry);
                old.max != max
            }
            None => {
                self.order.push(entry);
                true
            }
        };
        if resort {
            self.order
                .sort_by(|a, b| b.max.cmp(&a.max).then(a.created.cmp(&b.created)));
        }
    }

    fn live(&self, id: RuleId) -> Option<&Rule<T, W>> {
        let slot = self.slots.get(id.index as usize)?;
        if slot.generation != id.generation {
            return None;
        }
        slot.rule.as_ref()
    }

    /// Removes a rule; `None` if `id` is stale.
    pub fn remove(&mut self, id: RuleId) -> Option<T> {
        self.live(id)?;
        let slot = &mut self.slots[id.index as usize];
        let rule = slot.rule.take()?;
        slot.generation = slot.generation.wrapping_add(1);
        self.free_slots.push(id.index);

        let st_idx = rule.subtable;
        let st = self.subtables[st_idx as usize]
            .as_mut()
            .expect("subtable of a live rule");
        let full = st.expand(&rule.value);
        let h = st.remove_prefixes(self.hashing, &full);
        match st.buckets.get(h) {
            Some(head) if head == id.index => {
                if rule.next == NONE {
                    st.buckets.remove(h);
                } else {
                    st.buckets.insert(h, rule.next);
                }
            }
            Some(head) => {
                let mut prev = head;
                while rule_at(&self.slots, prev).next != id.index {
                    prev = rule_at(&self.slots, prev).next;
                }
                rule_at_mut(&mut self.slots, prev).next = rule.next;
            }
            None => unreachable!("a live rule is in its bucket"),
        }
        st.n_rules -= 1;
        dec(&mut st.prios, rule.priority);
        if rule.clauses.is_none() {
            dec(&mut st.hard_prios, rule.priority);
            if st.hard_prios.is_empty() {
                st.hard_min_seq = u64::MAX;
            }
        } else {
            self.n_conj -= 1;
        }
        if st.n_rules == 0 {
            let mask = st.mask;
            self.by_mask.remove(&mask);
            self.subtables[st_idx as usize] = None;
            self.free_subtables.push(st_idx);
        }
        self.len -= 1;
        self.refresh_order(st_idx);
        Some(rule.payload)
    }

    /// Replaces a rule's conjunction clauses (an OpenFlow MODIFY that changes
    /// `conjunction` actions): empty makes it ordinary. The rule keeps its
    /// handle and its place in tie-breaking. Returns `Ok(false)` if `id` is
    /// stale.
    pub fn set_conjunctions(
        &mut self,
        id: RuleId,
        clauses: impl AsRef<[ConjClause]>,
    ) -> Result<bool, ConjError> {
        let clauses = Self::check_clauses(clauses.as_ref())?;
        if self.live(id).is_none() {
            return Ok(false);
        }
        let rule = self.slots[id.index as usize]
            .rule
            .as_mut()
            .expect("live rule");
        let was_hard = rule.clauses.is_none();
        let is_hard = clauses.is_none();
        rule.clauses = clauses;
        let (st_idx, priority, seq) = (rule.subtable, rule.priority, rule.seq);
        if was_hard != is_hard {
            let st = self.subtables[st_idx as usize]
                .as_mut()
                .expect("subtable of a live rule");
            if is_hard {
                *st.hard_prios.entry(priority).or_insert(0) += 1;
                st.hard_min_seq = st.hard_min_seq.min(seq);
                self.n_conj -= 1;
            } else {
                dec(&mut st.hard_prios, priority);
                if st.hard_prios.is_empty() {
                    st.hard_min_seq = u64::MAX;
                }
                self.n_conj += 1;
            }
            self.refresh_order(st_idx);
        }
        Ok(true)
    }

    /// The payload of a rule; `None` if `id` is stale.
    pub fn get(&self, id: RuleId) -> Option<&T> {
        self.live(id).map(|r| &r.payload)
    }

    /// The payload of a rule, mutably (its match cannot change).
    pub fn get_mut(&mut self, id: RuleId) -> Option<&mut T> {
        self.live(id)?;
        self.slots[id.index as usize]
            .rule
            .as_mut()
            .map(|r| &mut r.payload)
    }

    /// Everything about a rule.
    pub fn rule(&self, id: RuleId) -> Option<RuleRef<'_, T, W>> {
        let r = self.live(id)?;
        Some(self.view(id, r))
    }

    fn view<'a>(&'a self, id: RuleId, r: &'a Rule<T, W>) -> RuleRef<'a, T, W> {
        let st = self.subtables[r.subtable as usize]
            .as_ref()
            .expect("subtable of a live rule");
        RuleRef {
            id,
            value: st.expand(&r.value),
            mask: &st.mask,
            priority: r.priority,
            clauses: r.clauses.as_deref().unwrap_or(&[]),
            payload: &r.payload,
        }
    }

    #[inline]
    fn id_of(&self, index: u32) -> RuleId {
        RuleId {
            index,
            generation: self.slots[index as usize].generation,
        }
    }

    fn view_slot(&self, index: u32) -> RuleRef<'_, T, W> {
        let slot = &self.slots[index as usize];
        let r = slot.rule.as_ref().expect("indexed rule is live");
        self.view(
            RuleId {
                index,
                generation: slot.generation,
            },
            r,
        )
    }

    /// All rules, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = RuleRef<'_, T, W>> + '_ {
        self.slots.iter().enumerate().filter_map(move |(i, s)| {
            let r = s.rule.as_ref()?;
            Some(self.view(
                RuleId {
                    index: i as u32,
                    generation: s.generation,
                },
                r,
            ))
        })
    }

    /// Strict match (OpenFlow `*_STRICT`): the rule with exactly this match
    /// and priority (the oldest one if there are duplicates).
    pub fn find_exact(&self, value: &Key<W>, mask: &Key<W>, priority: u32) -> Option<RuleId> {
        let st = self.subtables[*self.by_mask.get(mask)? as usize].as_ref()?;
        let value = masked(value, mask);
        let head = st.buckets.get(st.final_hash(self.hashing, &value));
        chain(&self.slots, head)
            .find(|&(_, r)| r.priority == priority && st.same_value(&r.value, &value))
            .map(|(i, _)| self.id_of(i))
    }

    /// Loose match (OpenFlow non-strict MODIFY/DELETE and flow stats): rules
    /// at least as specific as `(value, mask)` that agree with it, i.e. whose
    /// mask includes every bit of `mask` and whose value equals `value` on
    /// those bits. Priority is not considered. Cost: the rules of the
    /// subtables whose mask covers `mask`.
    pub fn iter_covered_by<'a>(
        &'a self,
        value: &Key<W>,
        mask: &Key<W>,
    ) -> impl Iterator<Item = RuleRef<'a, T, W>> + 'a {
        let mask = *mask;
        let value = masked(value, &mask);
        self.subtables
            .iter()
            .flatten()
            .filter(move |st| (0..W).all(|w| st.mask[w] & mask[w] == mask[w]))
            .flat_map(move |st| {
                // every word `mask` examines is one of the subtable's words
                st.buckets
                    .values()
                    .flat_map(|h| chain(&self.slots, Some(h)))
                    .filter(move |(_, r)| {
                        st.words
                            .iter()
                            .zip(r.value.iter())
                            .all(|(&w, &v)| v & mask[w] == value[w])
                    })
            })
            .map(move |(i, _)| self.view_slot(i))
    }

    /// OpenFlow `OFPFF_CHECK_OVERLAP`: whether some rule of the same priority
    /// could match a packet together with `(value, mask)` (their matches
    /// agree on the bits both examine). A rule with an identical match counts.
    pub fn has_overlap(&self, value: &Key<W>, mask: &Key<W>, priority: u32) -> bool {
        let value = masked(value, mask);
        self.order
            .iter()
            .filter(|e| e.min <= priority && priority <= e.max)
            .filter_map(|e| self.subtables[e.idx as usize].as_ref())
            .filter(|st| st.prios.contains_key(&priority))
            .any(|st| {
                if (0..W).all(|w| st.mask[w] & !mask[w] == 0) {
                    // Every bit the subtable examines is fixed by `mask`:
                    // only rules of value `value & st.mask` can overlap.
                    let v = masked(&value, &st.mask);
                    let head = st.buckets.get(st.final_hash(self.hashing, &v));
                    chain(&self.slots, head)
                        .any(|(_, r)| r.priority == priority && st.same_value(&r.value, &v))
                } else {
                    st.buckets.values().any(|h| {
                        chain(&self.slots, Some(h)).any(|(_, r)| {
                            r.priority == priority
                                && st
                                    .words
                                    .iter()
                                    .zip(r.value.iter())
                                    .all(|(&w, &v)| (v ^ value[w]) & st.mask[w] & mask[w] == 0)
                        })
                    })
                }
            })
    }

    // ----------------------------------------------------------------------
    // Lookup
    // ----------------------------------------------------------------------

    /// The highest-priority matching **ordinary** rule (conjunctive rules are
    /// ignored, as in OVS's `conj_id` re-lookup; use [`Self::lookup_conj`] or
    /// [`Self::lookup_resolved`] on tables with conjunctions). Equal
    /// priorities: the oldest rule wins. ORs into `wc` the mask bits examined.
    pub fn lookup(&self, key: &Key<W>, wc: &mut Key<W>) -> Option<RuleId> {
        self.lookup_ordinary(key, wc, u32::MAX)
    }

    /// [`Self::lookup`] among the ordinary rules of priority `< ceiling` (`u32::MAX`: all).
    fn lookup_ordinary(&self, key: &Key<W>, wc: &mut Key<W>, ceiling: u32) -> Option<RuleId> {
        let mut best: Best = None;
        for e in &self.order {
            let Some(hard_max) = e.hard_max else {
                continue;
            };
            if let Some((bp, bseq, _)) = best {
                if e.max < bp {
                    break;
                }
                if hard_max < bp || (hard_max == bp && e.hard_min_seq > bseq) {
                    continue;
                }
            }
            let Some(st) = self.subtables[e.idx as usize].as_ref() else {
                continue;
            };
            let mut ri = st.probe(self.hashing, key, wc).unwrap_or(NONE);
            while ri != NONE {
                let r = rule_at(&self.slots, ri);
                if r.clauses.is_none()
                    && (ceiling == u32::MAX || r.priority < ceiling)
                    && st.matches(&r.value, key)
                {
                    if better(r, best) {
                        best = Some((r.priority, r.seq, ri));
                    }
                    // Later rules of the chain have lower priority or are younger.
                    break;
                }
                ri = r.next;
            }
        }
        best.map(|(_, _, i)| self.id_of(i))
    }

    /// Lookup honouring conjunctive rules; see the crate documentation for
    /// the exact semantics. ORs into `wc` the mask bits examined.
    pub fn lookup_conj(&self, key: &Key<W>, wc: &mut Key<W>) -> Outcome {
        self.search(key, wc, None)
    }

    /// [`Self::lookup_conj`] restricted to rules of priority `< ceiling`: how
    /// the search continues after a conjunction fired at `ceiling` but no
    /// rule matched its `conj_id`.
    pub fn lookup_conj_below(&self, key: &Key<W>, wc: &mut Key<W>, ceiling: u32) -> Outcome {
        self.search(key, wc, Some(ceiling))
    }

    /// The complete OVS procedure: [`Self::lookup_conj`]; on a conjunction,
    /// for each fired id ascending, a [`Self::lookup`] of the key with
    /// `set_conj_id(&mut key, id)` applied, the first hit winning; if none
    /// hits, continue below the conjunction's priority.
    ///
    /// `set_conj_id` must overwrite the whole `conj_id` field, and `conj_id`
    /// must not be a packet field: the bits that the re-lookup examines there
    /// are ORed into `wc` too (they describe the rewritten key, so a datapath
    /// flow built from `wc` should drop them).
    pub fn lookup_resolved(
        &self,
        key: &Key<W>,
        wc: &mut Key<W>,
        set_conj_id: impl FnMut(&mut Key<W>, u32),
    ) -> Option<RuleId> {
        if self.n_conj == 0 {
            return self.lookup(key, wc);
        }
        self.lookup_resolved_below(key, wc, set_conj_id, u32::MAX)
    }

    /// [`Self::lookup_resolved`] among the rules of priority `< ceiling` only (the
    /// `conj_id` re-lookup included): what a table yields once its rules at `ceiling` and
    /// above are set aside, e.g. a blocking rule the caller knows to be bypassed. With
    /// `ceiling = u32::MAX` every priority but `u32::MAX` itself is searched. ORs into `wc`
    /// the mask bits examined.
    pub fn lookup_resolved_below(
        &self,
        key: &Key<W>,
        wc: &mut Key<W>,
        mut set_conj_id: impl FnMut(&mut Key<W>, u32),
        ceiling: u32,
    ) -> Option<RuleId> {
        let limit = ceiling;
        let mut ceiling = (ceiling != u32::MAX).then_some(ceiling);
        loop {
            match self.search(key, wc, ceiling) {
                Outcome::Rule(r) => return Some(r),
                Outcome::Miss => return None,
                Outcome::Conjunction { priority, ids } => {
                    for id in ids {
                        let mut k = *key;
                        set_conj_id(&mut k, id);
                        let hit = self.lookup_ordinary(&k, wc, limit);
                        if let Some(r) = hit {
                            return Some(r);
                        }
                    }
                    ceiling = Some(priority);
                }
            }
        }
    }

    fn search(&self, key: &Key<W>, wc: &mut Key<W>, ceiling: Option<u32>) -> Outcome {
        let allowed = |p: u32| ceiling.is_none_or(|c| p < c);
        let mut hard: Best = None;
        // Matching conjunctive rules of priority above `hard`: (priority, slot).
        let mut soft: Vec<(u32, u32)> = Vec::new();
        let mut scratch: Vec<(u32, u8, u8)> = Vec::new();
        for e in &self.order {
            if !soft.is_empty() {
                // Every subtable holding a priority > e.max has been probed:
                // those priorities are complete and may be settled now.
                if let Some(o) =
                    self.settle(&mut soft, &mut scratch, hard.map(|h| h.0), Some(e.max))
                {
                    return o;
                }
            }
            if let Some((hp, hseq, _)) = hard {
                if e.max < hp {
                    break;
                }
                // At equal maximum, only an older ordinary rule could matter
                // (an ordinary rule beats conjunctive ones at its priority).
                if e.max == hp && (e.hard_max != Some(hp) || e.hard_min_seq > hseq) {
                    continue;
                }
            }
            if !allowed(e.min) {
                continue;
            }
            let Some(st) = self.subtables[e.idx as usize].as_ref() else {
                continue;
            };
            let head = st.probe(self.hashing, key, wc);
            for (ri, r) in chain(&self.slots, head) {
                if !allowed(r.priority) || !st.matches(&r.value, key) {
                    continue;
                }
                if let Some((hp, hseq, _)) = hard {
                    if r.priority < hp {
                        break;
                    }
                    if r.priority == hp {
                        if r.clauses.is_some() {
                            continue;
                        }
                        if r.seq > hseq {
                            break;
                        }
                    }
                }
                if r.clauses.is_none() {
                    hard = Some((r.priority, r.seq, ri));
                    break;
                }
                soft.push((r.priority, ri));
            }
        }
        if let Some(o) = self.settle(&mut soft, &mut scratch, hard.map(|h| h.0), None) {
            return o;
        }
        match hard {
            Some((_, _, i)) => Outcome::Rule(self.id_of(i)),
            None => Outcome::Miss,
        }
    }

    /// Evaluates the pending conjunctive matches of priority above both
    /// `hard_pri` and `bound`, highest first; returns the first priority at
    /// which a conjunction fires. Settled priorities are dropped from `soft`.
    fn settle(
        &self,
        soft: &mut Vec<(u32, u32)>,
        scratch: &mut Vec<(u32, u8, u8)>,
        hard_pri: Option<u32>,
        bound: Option<u32>,
    ) -> Option<Outcome> {
        if let Some(hp) = hard_pri {
            soft.retain(|&(p, _)| p > hp);
        }
        loop {
            let top = soft.iter().map(|&(p, _)| p).max()?;
            if bound.is_some_and(|b| top <= b) {
                return None;
            }
            // A conjunction of n clauses needs n matching clause rules at
            // this priority (OVS's rule too), so a lone one never fires.
            let n_top = soft.iter().filter(|&&(p, _)| p == top).count();
            if n_top >= 2 {
                scratch.clear();
                for &(_, ri) in soft.iter().filter(|&&(p, _)| p == top) {
                    let clauses = rule_at(&self.slots, ri).clauses.as_deref();
                    scratch.extend(
                        clauses
                            .unwrap_or(&[])
                            .iter()
                            .filter(|c| usize::from(c.n_clauses) <= n_top)
                            .map(|c| (c.id, c.n_clauses, c.clause)),
                    );
                }
                scratch.sort_unstable();
                scratch.dedup();
                let mut ids: Vec<u32> = scratch
                    .chunk_by(|a, b| a.0 == b.0 && a.1 == b.1)
                    .filter(|g| g.len() == usize::from(g[0].1))
                    .map(|g| g[0].0)
                    .collect();
                if !ids.is_empty() {
                    ids.dedup();
                    return Some(Outcome::Conjunction { priority: top, ids });
                }
            }
            soft.retain(|&(p, _)| p != top);
        }
    }

    /// Approximate heap bytes held by the classifier (tables, rule slots,
    /// clause lists; not the payloads' own heap data nor allocator overhead).
    pub fn memory_usage(&self) -> usize {
        let mut n = self.slots.capacity() * std::mem::size_of::<Slot<T, W>>();
        n += self.free_slots.capacity() * 4 + self.free_subtables.capacity() * 4;
        n += self.order.capacity() * std::mem::size_of::<OrderEntry>();
        n += self.subtables.capacity() * std::mem::size_of::<Option<Subtable<W>>>();
        n += self.by_mask.capacity() * 8 / 7 * (std::mem::size_of::<(Key<W>, u32)>() + 1);
        n += self
            .slots
            .iter()
            .filter_map(|s| s.rule.as_ref()?.clauses.as_ref())
            .map(|c| c.len() * std::mem::size_of::<ConjClause>())
            .sum::<usize>();
        n += self
            .subtables
            .iter()
            .flatten()
            .map(Subtable::heap_bytes)
            .sum::<usize>();
        n
    }
}

#[inline]
fn rule_at<T, const W: usize>(slots: &[Slot<T, W>], i: u32) -> &Rule<T, W> {
    slots[i as usize]
        .rule
        .as_ref()
        .expect("indexed rule is live")
}

#[inline]
fn rule_at_mut<T, const W: usize>(slots: &mut [Slot<T, W>], i: u32) -> &mut Rule<T, W> {
    slots[i as usize]
        .rule
        .as_mut()
        .expect("indexed rule is live")
}

/// The rules of a bucket chain, with their slot indices.
fn chain<T, const W: usize>(
    slots: &[Slot<T, W>],
    head: Option<u32>,
) -> impl Iterator<Item = (u32, &Rule<T, W>)> + '_ {
    let mut i = head.unwrap_or(NONE);
    std::iter::from_fn(move || {
        if i == NONE {
            return None;
        }
        let r = rule_at(slots, i);
        let cur = i;
        i = r.next;
        Some((cur, r))
    })
}

#[inline]
fn better<T, const W: usize>(r: &Rule<T, W>, best: Best) -> bool {
    match best {
        None => true,
        Some((p, s, _)) => r.priority > p || (r.priority == p && r.seq < s),
    }
}

fn dec(m: &mut std::collections::BTreeMap<u32, u32>, k: u32) {
    if let Some(c) = m.get_mut(&k) {
        *c -= 1;
        if *c == 0 {
            m.remove(&k);
        }
    }
}
