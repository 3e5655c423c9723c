//! Property tests: the classifier against a naive reference evaluator (a
//! linear scan implementing the documented semantics literally), and the
//! wildcard guarantee — for a key `k` and the `wc` a lookup returns, every key
//! `k'` with `k' & wc == k & wc` gets the same result.
//!
//! Rules are drawn from a handful of mask shapes per case and values from
//! small domains, so that keys (also from small domains) do match, overlap,
//! tie and complete conjunctions. Perturbed keys use both small and full-width
//! random words outside `wc`.

use std::cmp::Reverse;
use std::collections::{BTreeSet, HashMap};

use classifier::{Classifier, ConjClause, Outcome, RuleId};
use proptest::prelude::*;

const W: usize = 5;
type Key = classifier::Key<W>;
/// Word 0 is `conj_id` (only `conj_id=` flows match on it); word 1 is
/// "metadata"; 2 is "L3"; 3..5 are "L4".
const STAGES: [std::ops::Range<usize>; 3] = [0..2, 2..3, 3..5];
const WORD_MASKS: [u64; 7] = [0, 0x1, 0x3, 0xc, 0xf, 0xf0, u64::MAX];

#[derive(Clone, Debug)]
enum Kind {
    Hard,
    Soft(Vec<(u32, u8, u8)>),
    ConjId(u32),
}

#[derive(Clone, Debug)]
struct Spec {
    shape: usize,
    value: [u64; 4],
    priority: u32,
    kind: Kind,
}

#[derive(Clone, Debug)]
enum Op {
    Insert(Spec),
    Remove(usize),
    /// `set_conjunctions` on a live rule (empty: make it ordinary).
    SetClauses(usize, Vec<(u32, u8, u8)>),
}

#[derive(Clone, Debug)]
struct TRule {
    value: Key,
    mask: Key,
    priority: u32,
    clauses: Vec<ConjClause>,
    seq: u64,
    id: RuleId,
}

fn matches(r: &TRule, k: &Key) -> bool {
    (0..W).all(|w| k[w] & r.mask[w] == r.value[w])
}

fn best<'a>(it: impl Iterator<Item = &'a TRule>) -> Option<&'a TRule> {
    it.min_by_key(|r| (Reverse(r.priority), r.seq))
}

/// Reference: best ordinary rule, oldest first among equal priorities.
fn ref_hard(rules: &[TRule], k: &Key) -> Option<RuleId> {
    best(
        rules
            .iter()
            .filter(|r| r.clauses.is_empty() && matches(r, k)),
    )
    .map(|r| r.id)
}

/// Reference: the crate documentation's conjunction semantics, literally.
fn ref_conj(rules: &[TRule], k: &Key, ceiling: Option<u32>) -> Outcome {
    let m: Vec<&TRule> = rules
        .iter()
        .filter(|r| matches(r, k) && ceiling.is_none_or(|c| r.priority < c))
        .collect();
    let hard = best(m.iter().copied().filter(|r| r.clauses.is_empty()));
    let hp = hard.map(|h| h.priority);
    let mut prios: Vec<u32> = m
        .iter()
        .filter(|r| !r.clauses.is_empty() && hp.is_none_or(|h| r.priority > h))
        .map(|r| r.priority)
        .collect();
    prios.sort_unstable_by(|a, b| b.cmp(a));
    prios.dedup();
    for p in prios {
        let s: Vec<&TRule> = m
            .iter()
            .copied()
            .filter(|r| r.priority == p && !r.clauses.is_empty())
            .collect();
        let mut fired = BTreeSet::new();
        for c in s.iter().flat_map(|r| r.clauses.iter()) {
            let (id, n) = (c.id, c.n_clauses);
            let all = s.len() >= usize::from(n)
                && (1..=n).all(|k| {
                    s.iter().any(|r| {
                        r.clauses.contains(&ConjClause {
                            id,
                            clause: k,
                            n_clauses: n,
                        })
                    })
                });
            if all {
                fired.insert(id);
            }
        }
        if !fired.is_empty() {
            return Outcome::Conjunction {
                priority: p,
                ids: fired.into_iter().collect(),
            };
        }
    }
    match hard {
        Some(h) => Outcome::Rule(h.id),
        None => Outcome::Miss,
    }
}

fn set_conj_id(k: &mut Key, id: u32) {
    k[0] = u64::from(id);
}

fn ref_resolved(rules: &[TRule], k: &Key) -> Option<RuleId> {
    let mut ceiling = None;
    loop {
        match ref_conj(rules, k, ceiling) {
            Outcome::Rule(r) => return Some(r),
            Outcome::Miss => return None,
            Outcome::Conjunction { priority, ids } => {
                for id in ids {
                    let mut k2 = *k;
                    set_conj_id(&mut k2, id);
                    if let Some(r) = ref_hard(rules, &k2) {
                        return Some(r);
                    }
                }
                ceiling = Some(priority);
            }
        }
    }
}

fn shape_mask(shape: &[usize; 4]) -> Key {
    let mut m = [0u64; W];
    for (i, &s) in shape.iter().enumerate() {
        m[i + 1] = WORD_MASKS[s];
    }
    m
}

/// Applies `ops` to a classifier and to the reference list. With
/// `degraded`, the classifier keeps only 3 bits of its hashes, so stage
/// prefixes and buckets collide constantly.
fn build(shapes: &[[usize; 4]], ops: &[Op], degraded: bool) -> (Classifier<u32, W>, Vec<TRule>) {
    let mut cls = Classifier::<u32, W>::new(&STAGES);
    if degraded {
        cls.degrade_hash_for_tests(0x7);
    }
    let mut refs: Vec<TRule> = Vec::new();
    let mut seq = 0;
    for op in ops {
        match op {
            Op::Insert(s) => {
                let mut mask = shape_mask(&shapes[s.shape % shapes.len()]);
                let mut value = [0u64; W];
                value[1..].copy_from_slice(&s.value);
                let clauses: Vec<ConjClause> = match &s.kind {
                    Kind::Soft(c) => c.iter().map(|&c| c.into()).collect(),
                    _ => Vec::new(),
                };
                if let Kind::ConjId(id) = s.kind {
                    mask[0] = u64::MAX;
                    value[0] = u64::from(id);
                }
                for w in 0..W {
                    value[w] &= mask[w];
                }
                let id = cls.insert_conjunctive(value, mask, s.priority, &clauses, seq as u32);
                refs.push(TRule {
                    value,
                    mask,
                    priority: s.priority,
                    clauses,
                    seq,
                    id,
                });
                seq += 1;
            }
            Op::Remove(i) => {
                if !refs.is_empty() {
                    let r = refs.remove(i % refs.len());
                    assert_eq!(cls.remove(r.id), Some(r.seq as u32));
                    assert_eq!(cls.remove(r.id), None, "stale id must not remove twice");
                }
            }
            Op::SetClauses(i, c) => {
                if !refs.is_empty() {
                    let n = refs.len();
                    let r = &mut refs[i % n];
                    r.clauses = c.iter().map(|&c| c.into()).collect();
                    assert_eq!(cls.set_conjunctions(r.id, &r.clauses), Ok(true));
                }
            }
        }
    }
    (cls, refs)
}

fn splitmix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Keys agreeing with `k` on `wc`: noise outside `wc`, small or full-width.
fn perturbations(k: &Key, wc: &Key, seed: u64, n: usize) -> Vec<Key> {
    let mut st = seed;
    (0..n)
        .map(|i| {
            std::array::from_fn(|w| {
                let r = splitmix(&mut st);
                let noise = if i % 2 == 0 { r & 0x1f } else { r };
                (k[w] & wc[w]) | (noise & !wc[w])
            })
        })
        .collect()
}

fn arb_shapes() -> impl Strategy<Value = Vec<[usize; 4]>> {
    prop::collection::vec(prop::array::uniform4(arb_word_mask()), 1..6)
}

/// Index into `WORD_MASKS`, biased to "wildcarded" so that rules overlap.
fn arb_word_mask() -> impl Strategy<Value = usize> {
    prop_oneof![2 => Just(0usize), 3 => 0..WORD_MASKS.len()]
}

/// A word value from a small domain, so that rules and keys meet.
fn arb_word() -> impl Strategy<Value = u64> {
    prop_oneof![4 => 0u64..4, 1 => 0u64..16]
}

fn arb_words() -> impl Strategy<Value = [u64; 4]> {
    prop::array::uniform4(arb_word())
}

fn arb_priority() -> impl Strategy<Value = u32> {
    prop_oneof![4 => 0u32..3, 1 => 0u32..1000]
}

fn arb_soft() -> impl Strategy<Value = Kind> {
    prop::collection::vec(
        (1u32..4, prop_oneof![3 => Just(2u8), 1 => Just(3u8)], 0u8..8),
        1..4,
    )
    .prop_map(|v| Kind::Soft(v.into_iter().map(|(id, n, k)| (id, k % n + 1, n)).collect()))
}

fn arb_spec(conj: bool) -> impl Strategy<Value = Spec> {
    let kind = if conj {
        prop_oneof![
            3 => Just(Kind::Hard),
            4 => arb_soft(),
            2 => (1u32..4).prop_map(Kind::ConjId),
        ]
        .boxed()
    } else {
        Just(Kind::Hard).boxed()
    };
    (0usize..8, arb_words(), arb_priority(), kind).prop_map(|(shape, value, priority, kind)| Spec {
        shape,
        value,
        priority,
        kind,
    })
}

/// Conjunction-heavy tables: two priorities, two ids, mostly clause rules.
fn arb_ops_conj_heavy() -> impl Strategy<Value = Vec<Op>> {
    let kind = prop_oneof![
        1 => Just(Kind::Hard),
        6 => prop::collection::vec((1u32..3, 0u8..2), 1..3)
            .prop_map(|v| Kind::Soft(v.into_iter().map(|(id, k)| (id, k + 1, 2)).collect())),
        2 => (1u32..3).prop_map(Kind::ConjId),
    ];
    let spec =
        (0usize..8, arb_words(), 1u32..3, kind).prop_map(|(shape, value, priority, kind)| Spec {
            shape,
            value,
            priority,
            kind,
        });
    prop::collection::vec(
        prop_oneof![
            6 => spec.prop_map(Op::Insert),
            1 => any::<usize>().prop_map(Op::Remove),
            1 => (any::<usize>(), arb_clauses()).prop_map(|(i, c)| Op::SetClauses(i, c)),
        ],
        1..40,
    )
}

fn arb_ops(conj: bool) -> impl Strategy<Value = Vec<Op>> {
    let modify = if conj { 1 } else { 0 };
    prop::collection::vec(
        prop_oneof![
            5 => arb_spec(conj).prop_map(Op::Insert),
            1 => any::<usize>().prop_map(Op::Remove),
            modify => (any::<usize>(), arb_clauses()).prop_map(|(i, c)| Op::SetClauses(i, c)),
        ],
        1..60,
    )
}

/// Clauses for `set_conjunctions`: none (ordinary) or a few.
fn arb_clauses() -> impl Strategy<Value = Vec<(u32, u8, u8)>> {
    prop_oneof![
        1 => Just(Vec::new()),
        2 => arb_soft().prop_map(|k| match k {
            Kind::Soft(c) => c,
            _ => unreachable!(),
        }),
    ]
}

fn arb_keys() -> impl Strategy<Value = Vec<Key>> {
    prop::collection::vec(
        (prop_oneof![3 => Just(0u64), 1 => 0u64..4], arb_words()).prop_map(|(c, v)| {
            let mut k = [0u64; W];
            k[0] = c;
            k[1..].copy_from_slice(&v);
            k
        }),
        1..24,
    )
}

fn check_structure(cls: &Classifier<u32, W>, refs: &[TRule], queries: &[(Key, Key, u32)]) {
    assert_eq!(cls.len(), refs.len());
    assert_eq!(cls.iter().count(), refs.len());
    let masks: BTreeSet<Key> = refs.iter().map(|r| r.mask).collect();
    assert_eq!(cls.n_subtables(), masks.len(), "one subtable per live mask");
    let by_id: HashMap<RuleId, &TRule> = refs.iter().map(|r| (r.id, r)).collect();
    for r in cls.iter() {
        let t = by_id[&r.id];
        assert_eq!(
            (r.value, *r.mask, r.priority),
            (t.value, t.mask, t.priority)
        );
        assert_eq!(r.clauses, &t.clauses[..]);
        assert_eq!(*r.payload, t.seq as u32);
        assert_eq!(cls.get(r.id), Some(&(t.seq as u32)));
    }
    for t in refs {
        let oldest = best(
            refs.iter()
                .filter(|o| o.value == t.value && o.mask == t.mask && o.priority == t.priority),
        )
        .map(|o| o.id);
        assert_eq!(cls.find_exact(&t.value, &t.mask, t.priority), oldest);
    }
    for (value, mask, prio) in queries {
        let value: Key = std::array::from_fn(|w| value[w] & mask[w]);
        assert_eq!(
            cls.find_exact(&value, mask, *prio),
            best(
                refs.iter()
                    .filter(|o| o.value == value && o.mask == *mask && o.priority == *prio)
            )
            .map(|o| o.id)
        );
        let mut got: Vec<RuleId> = cls.iter_covered_by(&value, mask).map(|r| r.id).collect();
        let mut want: Vec<RuleId> = refs
            .iter()
            .filter(|o| {
                (0..W).all(|w| o.mask[w] & mask[w] == mask[w] && o.value[w] & mask[w] == value[w])
            })
            .map(|o| o.id)
            .collect();
        got.sort();
        want.sort();
        assert_eq!(got, want, "iter_covered_by {value:x?}/{mask:x?}");
        let overlap = refs.iter().any(|o| {
            o.priority == *prio
                && (0..W).all(|w| (o.value[w] ^ value[w]) & o.mask[w] & mask[w] == 0)
        });
        assert_eq!(
            cls.has_overlap(&value, mask, *prio),
            overlap,
            "has_overlap {value:x?}/{mask:x?}@{prio}"
        );
    }
}

fn arb_queries() -> impl Strategy<Value = Vec<([usize; 4], [u64; 4], u32)>> {
    prop::collection::vec(
        (
            prop::array::uniform4(0..WORD_MASKS.len()),
            arb_words(),
            arb_priority(),
        ),
        0..12,
    )
}

fn queries(shapes: &[[usize; 4]], q: &[([usize; 4], [u64; 4], u32)]) -> Vec<(Key, Key, u32)> {
    q.iter()
        .enumerate()
        .map(|(i, (shape, v, p))| {
            // Half the queries use the case's own shapes (so they hit rules).
            let m = if i % 2 == 0 {
                shape_mask(&shapes[i % shapes.len()])
            } else {
                shape_mask(shape)
            };
            let mut k = [0u64; W];
            k[1..].copy_from_slice(v);
            (k, m, *p)
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    /// Ordinary rules only: `lookup` equals the reference, and its `wc` is
    /// sound. Also the rule-management API against the reference.
    #[test]
    fn lookup_matches_reference_and_wc_is_sound(
        shapes in arb_shapes(),
        ops in arb_ops(false),
        keys in arb_keys(),
        q in arb_queries(),
        seed in any::<u64>(),
        degraded in prop::bool::weighted(0.3),
    ) {
        let (cls, refs) = build(&shapes, &ops, degraded);
        check_structure(&cls, &refs, &queries(&shapes, &q));
        for k in &keys {
            let mut wc = [0u64; W];
            let got = cls.lookup(k, &mut wc);
            prop_assert_eq!(got, ref_hard(&refs, k), "key {:x?}", k);
            // Without conjunctive rules every lookup flavour agrees.
            let mut wc2 = [0u64; W];
            prop_assert_eq!(cls.lookup_conj(k, &mut wc2), got.map_or(Outcome::Miss, Outcome::Rule));
            for k2 in perturbations(k, &wc, seed ^ k[1], 8) {
                let mut wc3 = [0u64; W];
                prop_assert_eq!(cls.lookup(&k2, &mut wc3), got,
                    "key {:x?} wc {:x?} perturbed {:x?}", k, wc, k2);
            }
        }
    }

    /// Conjunctive rules: `lookup_conj`, `lookup_conj_below` and
    /// `lookup_resolved` equal the literal reference, and their `wc` is sound.
    #[test]
    fn conjunctions_match_reference_and_wc_is_sound(
        shapes in arb_shapes(),
        ops in prop_oneof![arb_ops(true), arb_ops_conj_heavy()],
        keys in arb_keys(),
        q in arb_queries(),
        ceiling in 0u32..6,
        seed in any::<u64>(),
        degraded in prop::bool::weighted(0.3),
    ) {
        let (cls, refs) = build(&shapes, &ops, degraded);
        check_structure(&cls, &refs, &queries(&shapes, &q));
        for k in &keys {
            let mut wc = [0u64; W];
            let got = cls.lookup_conj(k, &mut wc);
            prop_assert_eq!(&got, &ref_conj(&refs, k, None), "key {:x?}", k);
            let mut wcb = [0u64; W];
            let below = cls.lookup_conj_below(k, &mut wcb, ceiling);
            prop_assert_eq!(&below, &ref_conj(&refs, k, Some(ceiling)), "key {:x?} below {}", k, ceiling);
            let mut wcr = [0u64; W];
            let resolved = cls.lookup_resolved(k, &mut wcr, set_conj_id);
            prop_assert_eq!(resolved, ref_resolved(&refs, k), "key {:x?}", k);
            let mut wch = [0u64; W];
            let hard = cls.lookup(k, &mut wch);
            prop_assert_eq!(hard, ref_hard(&refs, k));

            for k2 in perturbations(k, &wc, seed ^ k[1], 8) {
                let mut w2 = [0u64; W];
                prop_assert_eq!(&cls.lookup_conj(&k2, &mut w2), &got,
                    "lookup_conj: key {:x?} wc {:x?} perturbed {:x?}", k, wc, k2);
            }
            for k2 in perturbations(k, &wcb, seed ^ 1, 4) {
                let mut w2 = [0u64; W];
                prop_assert_eq!(&cls.lookup_conj_below(&k2, &mut w2, ceiling), &below);
            }
            for k2 in perturbations(k, &wcr, seed ^ 2, 8) {
                let mut w2 = [0u64; W];
                prop_assert_eq!(cls.lookup_resolved(&k2, &mut w2, set_conj_id), resolved,
                    "lookup_resolved: key {:x?} wc {:x?} perturbed {:x?}", k, wcr, k2);
            }
            for k2 in perturbations(k, &wch, seed ^ 3, 4) {
                let mut w2 = [0u64; W];
                prop_assert_eq!(cls.lookup(&k2, &mut w2), hard);
            }
        }
    }
}
