//! Example-based tests of the documented behaviour: staging and wildcards,
//! priority early termination, ties, rule management, and conjunctive
//! matches on the examples of ovs-fields(7) and of a real OVN ACL table.

use classifier::{Classifier, ConjClause, ConjError, Outcome};

/// Test layout: word 0 metadata, word 1 conj_id, word 2 ip_src<<32|ip_dst,
/// word 3 tp_src<<16|tp_dst. Stages: [metadata, conj_id], [L3], [L4].
const W: usize = 4;
type Key = classifier::Key<W>;
const STAGES: [std::ops::Range<usize>; 3] = [0..2, 2..3, 3..4];

const META: Key = [u64::MAX, 0, 0, 0];
const CONJ_ID: Key = [0, u64::MAX, 0, 0];
const SRC: Key = [0, 0, 0xffff_ffff << 32, 0];
const DST: Key = [0, 0, 0xffff_ffff, 0];
const TP_DST: Key = [0, 0, 0, 0xffff];

fn or(a: Key, b: Key) -> Key {
    std::array::from_fn(|w| a[w] | b[w])
}

fn ip(a: u8, b: u8, c: u8, d: u8) -> u64 {
    u64::from(u32::from_be_bytes([a, b, c, d]))
}

fn pkt(meta: u64, src: u64, dst: u64, tp_dst: u64) -> Key {
    [meta, 0, src << 32 | dst, tp_dst]
}

fn set_conj_id(k: &mut Key, id: u32) {
    k[1] = u64::from(id);
}

fn cls() -> Classifier<&'static str, W> {
    Classifier::new(&STAGES)
}

#[test]
fn staged_miss_unwildcards_only_the_stage_prefix() {
    let mut c = cls();
    // metadata=1, tcp dst port 80.
    c.insert([1, 0, 0, 80], or(META, TP_DST), 10, "m1-http");
    let mut wc = [0; W];
    // Another datapath (metadata=2): rejected at stage 0, L4 stays wild.
    assert_eq!(c.lookup(&pkt(2, 1, 2, 80), &mut wc), None);
    assert_eq!(wc, META);
    // Same datapath, other port: the final table was probed.
    let mut wc = [0; W];
    assert_eq!(c.lookup(&pkt(1, 1, 2, 81), &mut wc), None);
    assert_eq!(wc, or(META, TP_DST));
    // A hit examines the whole mask.
    let mut wc = [0; W];
    assert!(c.lookup(&pkt(1, 1, 2, 80), &mut wc).is_some());
    assert_eq!(wc, or(META, TP_DST));
}

#[test]
fn priority_early_termination_examines_nothing_below() {
    let mut c = cls();
    let hi = c.insert([1, 0, 0, 0], META, 100, "meta1");
    c.insert([0, 0, 0, 80], TP_DST, 50, "port80");
    c.insert([0, 0, ip(10, 0, 0, 1) << 32, 0], SRC, 40, "src");
    let mut wc = [0; W];
    assert_eq!(c.lookup(&pkt(1, ip(10, 0, 0, 1), 0, 80), &mut wc), Some(hi));
    assert_eq!(wc, META, "lower-priority subtables add nothing");
    let mut wc = [0; W];
    let got = c.lookup(&pkt(2, ip(10, 0, 0, 1), 0, 80), &mut wc);
    assert_eq!(c.get(got.unwrap()), Some(&"port80"));
    assert_eq!(wc, or(META, TP_DST));
}

#[test]
fn equal_priority_overlap_oldest_wins() {
    let mut c = cls();
    let a = c.insert([1, 0, 0, 0], META, 7, "a");
    let b = c.insert([0, 0, 0, 80], TP_DST, 7, "b");
    let d = c.insert([1, 0, 0, 0], META, 7, "dup of a");
    let k = pkt(1, 0, 0, 80);
    assert_eq!(c.lookup(&k, &mut [0; W]), Some(a));
    assert_eq!(c.find_exact(&[1, 0, 0, 0], &META, 7), Some(a));
    c.remove(a);
    // b is older than the duplicate d.
    assert_eq!(c.lookup(&k, &mut [0; W]), Some(b));
    c.remove(b);
    assert_eq!(c.lookup(&k, &mut [0; W]), Some(d));
}

#[test]
fn empty_subtables_are_dropped_and_ids_go_stale() {
    let mut c = cls();
    let a = c.insert([1, 0, 0, 0], META, 1, "a");
    let b = c.insert([0, 0, 0, 80], TP_DST, 2, "b");
    assert_eq!(c.n_subtables(), 2);
    assert_eq!(c.remove(b), Some("b"));
    assert_eq!(c.n_subtables(), 1);
    assert_eq!(c.remove(b), None);
    assert_eq!(c.get(b), None);
    assert!(c.get_mut(b).is_none());
    assert!(c.rule(b).is_none());
    // The slot is reused with a new generation.
    let e = c.insert([0, 0, 0, 81], TP_DST, 2, "e");
    assert_eq!(e.index(), b.index());
    assert_ne!(e, b);
    assert_eq!(c.get(b), None);
    *c.get_mut(e).unwrap() = "e2";
    assert_eq!(c.get(e), Some(&"e2"));
    c.remove(a);
    c.remove(e);
    assert!(c.is_empty());
    assert_eq!(c.n_subtables(), 0);
    assert_eq!(c.lookup(&pkt(1, 0, 0, 81), &mut [0; W]), None);
}

#[test]
fn value_is_masked_on_insert() {
    let mut c = cls();
    let r = c.insert([1, 99, 99, 99], META, 1, "a");
    assert_eq!(c.rule(r).unwrap().value, [1, 0, 0, 0]);
    assert_eq!(c.lookup(&pkt(1, 5, 5, 5), &mut [0; W]), Some(r));
    assert_eq!(c.find_exact(&[1, 7, 7, 7], &META, 1), Some(r));
}

#[test]
fn catch_all_rule_and_unstaged_words() {
    // Only word 0 is staged; words 1..4 form the implicit last stage.
    let only_metadata = std::iter::once(0..1).collect::<Vec<_>>();
    let mut c: Classifier<u8, W> = Classifier::new(&only_metadata);
    assert_eq!(c.stages().count(), 2);
    let all = c.insert([0; W], [0; W], 0, 0);
    let mut wc = [0; W];
    assert_eq!(c.lookup(&pkt(3, 3, 3, 3), &mut wc), Some(all));
    assert_eq!(wc, [0; W]);
}

#[test]
#[should_panic(expected = "two stages")]
fn overlapping_stages_are_refused() {
    let _c: Classifier<u8, W> = Classifier::new(&[0..2, 1..3]);
}

#[test]
fn loose_strict_and_overlap_queries() {
    let mut c = cls();
    let a = c.insert([1, 0, 0, 80], or(META, TP_DST), 10, "m1 p80");
    let b = c.insert([1, 0, 0, 0], META, 10, "m1");
    let d = c.insert([2, 0, 0, 80], or(META, TP_DST), 10, "m2 p80");
    let mut loose: Vec<_> = c
        .iter_covered_by(&[1, 0, 0, 0], &META)
        .map(|r| r.id)
        .collect();
    loose.sort();
    let mut want = vec![a, b];
    want.sort();
    assert_eq!(loose, want);
    let mut all: Vec<_> = c.iter_covered_by(&[0; W], &[0; W]).map(|r| r.id).collect();
    all.sort();
    let mut want = vec![a, b, d];
    want.sort();
    assert_eq!(all, want);
    assert_eq!(c.find_exact(&[1, 0, 0, 80], &or(META, TP_DST), 10), Some(a));
    assert_eq!(c.find_exact(&[1, 0, 0, 80], &or(META, TP_DST), 11), None);
    // port 80 in any datapath overlaps a and d at priority 10, nothing at 11.
    assert!(c.has_overlap(&[0, 0, 0, 80], &TP_DST, 10));
    assert!(!c.has_overlap(&[0, 0, 0, 80], &TP_DST, 11));
    // metadata=3 overlaps nothing.
    assert!(!c.has_overlap(&[3, 0, 0, 0], &META, 10));
    // metadata=2,port 81 does not overlap d (port differs) nor b (metadata).
    assert!(!c.has_overlap(&[2, 0, 0, 81], &or(META, TP_DST), 10));
    assert_eq!(c.iter().count(), 3);
}

#[test]
fn invalid_clauses_are_refused() {
    let mut c = cls();
    for bad in [(1, 1, 1), (1, 0, 2), (1, 3, 2), (1, 1, 65)] {
        let bad: ConjClause = bad.into();
        assert_eq!(
            c.try_insert_conjunctive([0; W], [0; W], 1, [bad], "x"),
            Err(ConjError::InvalidClause(bad))
        );
    }
    assert!(c.is_empty());
    let ok = c.try_insert_conjunctive([0; W], [0; W], 1, vec![(1, 64, 64).into()], "x");
    assert!(ok.is_ok());
}

/// ovs-fields(7), "Conjunctive Match Fields": ip_src ∈ {10.0.0.1, .4, .6, .7}
/// and ip_dst ∈ {10.0.0.2, .5, .7, .8}, evaluated without the 16-flow cross
/// product.
#[test]
fn ovs_fields_example() {
    let mut c = cls();
    let flow = c.insert([0, 1234, 0, 0], CONJ_ID, 100, "conj_id=1234");
    for s in [1, 4, 6, 7] {
        c.insert_conjunctive(
            [0, 0, ip(10, 0, 0, s) << 32, 0],
            SRC,
            100,
            [(1234, 1, 2).into()],
            "src",
        );
    }
    for d in [2, 5, 7, 8] {
        c.insert_conjunctive(
            [0, 0, ip(10, 0, 0, d), 0],
            DST,
            100,
            [(1234, 2, 2).into()],
            "dst",
        );
    }
    let low = c.insert([0; W], [0; W], 0, "default");
    assert_eq!(c.len(), 10);
    assert_eq!(c.n_conjunctive(), 8);

    let hit = pkt(0, ip(10, 0, 0, 4), ip(10, 0, 0, 8), 0);
    assert_eq!(
        c.lookup_conj(&hit, &mut [0; W]),
        Outcome::Conjunction {
            priority: 100,
            ids: vec![1234]
        }
    );
    assert_eq!(
        c.lookup_resolved(&hit, &mut [0; W], set_conj_id),
        Some(flow)
    );
    // 10.0.0.7 is in both sets; still one conjunction.
    let both = pkt(0, ip(10, 0, 0, 7), ip(10, 0, 0, 7), 0);
    assert_eq!(
        c.lookup_resolved(&both, &mut [0; W], set_conj_id),
        Some(flow)
    );
    // Only one dimension matches: as if the clause flows were not there.
    let half = pkt(0, ip(10, 0, 0, 4), ip(10, 0, 0, 9), 0);
    assert_eq!(c.lookup_conj(&half, &mut [0; W]), Outcome::Rule(low));
    assert_eq!(
        c.lookup_resolved(&half, &mut [0; W], set_conj_id),
        Some(low)
    );
    // `lookup` ignores the clause flows altogether.
    assert_eq!(c.lookup(&hit, &mut [0; W]), Some(low));
}

#[test]
fn ordinary_rules_versus_conjunctions() {
    let mut c = cls();
    c.insert_conjunctive([0, 0, 1 << 32, 0], SRC, 50, [(7, 1, 2).into()], "c1");
    c.insert_conjunctive([0, 0, 2, 0], DST, 50, [(7, 2, 2).into()], "c2");
    let flow = c.insert([0, 7, 0, 0], CONJ_ID, 50, "conj_id=7");
    let k = pkt(0, 1, 2, 80);
    assert_eq!(c.lookup_resolved(&k, &mut [0; W], set_conj_id), Some(flow));

    // An ordinary rule at the same priority wins over the conjunction.
    let same = c.insert([0, 0, 0, 80], TP_DST, 50, "port80@50");
    assert_eq!(c.lookup_conj(&k, &mut [0; W]), Outcome::Rule(same));
    c.remove(same);
    // ... and one at a higher priority, of course.
    let high = c.insert([0, 0, 0, 80], TP_DST, 60, "port80@60");
    assert_eq!(c.lookup_resolved(&k, &mut [0; W], set_conj_id), Some(high));
    c.remove(high);
    // A lower one loses to the conjunction.
    let low = c.insert([0, 0, 0, 80], TP_DST, 40, "port80@40");
    assert_eq!(c.lookup_resolved(&k, &mut [0; W], set_conj_id), Some(flow));

    // Without a conj_id=7 flow the re-lookup still sees the whole table and
    // finds the ordinary rule below (OVS behaves the same way).
    c.remove(flow);
    assert_eq!(c.lookup_resolved(&k, &mut [0; W], set_conj_id), Some(low));
}

#[test]
fn failed_conjunction_falls_back_to_lower_priorities() {
    let mut c = cls();
    // Conjunction 1 at priority 100 has no conj_id flow; conjunction 2 at
    // priority 80 has one.
    for (id, p) in [(1, 100), (2, 80)] {
        c.insert_conjunctive([0, 0, 1 << 32, 0], SRC, p, [(id, 1, 2).into()], "x");
        c.insert_conjunctive([0, 0, 0, 80], TP_DST, p, [(id, 2, 2).into()], "y");
    }
    let two = c.insert([0, 2, 0, 0], CONJ_ID, 80, "conj_id=2");
    let k = pkt(0, 1, 9, 80);
    let mut wc = [0; W];
    assert_eq!(
        c.lookup_conj(&k, &mut wc),
        Outcome::Conjunction {
            priority: 100,
            ids: vec![1]
        }
    );
    assert_eq!(c.lookup(&[0, 1, 1 << 32 | 9, 80], &mut wc), None);
    assert_eq!(
        c.lookup_conj_below(&k, &mut wc, 100),
        Outcome::Conjunction {
            priority: 80,
            ids: vec![2]
        }
    );
    assert_eq!(c.lookup_resolved(&k, &mut [0; W], set_conj_id), Some(two));
}

#[test]
fn one_rule_in_several_conjunctions_and_multiple_firing() {
    let mut c = cls();
    // src 1 is in both conjunction 5 and 6 (ovs-fields: "A flow may have
    // multiple conjunction actions").
    c.insert_conjunctive(
        [0, 0, 1 << 32, 0],
        SRC,
        10,
        [(5, 1, 2).into(), (6, 1, 2).into()],
        "s",
    );
    c.insert_conjunctive([0, 0, 2, 0], DST, 10, [(5, 2, 2).into()], "d5");
    c.insert_conjunctive([0, 0, 0, 80], TP_DST, 10, [(6, 2, 2).into()], "p6");
    assert_eq!(
        c.lookup_conj(&pkt(0, 1, 2, 81), &mut [0; W]),
        Outcome::Conjunction {
            priority: 10,
            ids: vec![5]
        }
    );
    assert_eq!(
        c.lookup_conj(&pkt(0, 1, 3, 80), &mut [0; W]),
        Outcome::Conjunction {
            priority: 10,
            ids: vec![6]
        }
    );
    assert_eq!(
        c.lookup_conj(&pkt(0, 1, 2, 80), &mut [0; W]),
        Outcome::Conjunction {
            priority: 10,
            ids: vec![5, 6]
        }
    );
    // Smallest id first: with only conj_id=6 present, 5 fails and 6 wins.
    let six = c.insert([0, 6, 0, 0], CONJ_ID, 10, "conj_id=6");
    assert_eq!(
        c.lookup_resolved(&pkt(0, 1, 2, 80), &mut [0; W], set_conj_id),
        Some(six)
    );
}

#[test]
fn three_dimensions_and_clause_conversion() {
    let mut c = cls();
    let a = c.insert_conjunctive([0, 0, 1 << 32, 0], SRC, 10, [(9, 1, 3).into()], "a");
    c.insert_conjunctive([0, 0, 2, 0], DST, 10, [(9, 2, 3).into()], "b");
    let k = pkt(0, 1, 2, 80);
    assert_eq!(c.lookup_conj(&k, &mut [0; W]), Outcome::Miss);
    let p = c.insert_conjunctive([0, 0, 0, 80], TP_DST, 10, [(9, 3, 3).into()], "c");
    assert_eq!(
        c.lookup_conj(&k, &mut [0; W]),
        Outcome::Conjunction {
            priority: 10,
            ids: vec![9]
        }
    );
    // MODIFY turns dimension 3 into an ordinary flow: it now wins outright.
    assert_eq!(c.set_conjunctions(p, []), Ok(true));
    assert_eq!(c.n_conjunctive(), 2);
    assert_eq!(c.lookup_conj(&k, &mut [0; W]), Outcome::Rule(p));
    assert_eq!(c.lookup(&k, &mut [0; W]), Some(p));
    // ... and back.
    assert_eq!(c.set_conjunctions(p, [(9, 3, 3).into()]), Ok(true));
    assert_eq!(c.lookup(&k, &mut [0; W]), None);
    assert_eq!(
        c.rule(a).unwrap().clauses,
        &[ConjClause {
            id: 9,
            clause: 1,
            n_clauses: 3
        }]
    );
    c.remove(a);
    assert_eq!(c.set_conjunctions(a, []), Ok(false));
    assert_eq!(c.lookup_conj(&k, &mut [0; W]), Outcome::Miss);
}

/// Table 46 of the OVN reference dump (ovn-flows-full-ch1.txt): two ACLs
/// with address-set x port-set conjunctions sharing reg0/reg15/metadata.
#[test]
fn ovn_acl_table_46() {
    const REGS: Key = [u64::MAX, 0, 0, 0]; // metadata|reg0-bit|reg15 folded into word 0
    let w0 = |reg0: u64| 1 | reg0 << 8 | 2 << 32; // metadata=1, reg0 bit, reg15=2
    let mut c = cls();
    for (id, reg0) in [(674_618_291u32, 0x80u64), (3_243_727_988, 0x100)] {
        for port in [8080, 9000, 9001] {
            c.insert_conjunctive(
                [w0(reg0), 0, 0, port],
                or(REGS, TP_DST),
                2001,
                [(id, 2, 2).into()],
                "port",
            );
        }
        for host in [10, 11, 12, 100] {
            c.insert_conjunctive(
                [w0(reg0), 0, ip(10, 0, 0, host) << 32, 0],
                or(REGS, SRC),
                2001,
                [(id, 1, 2).into()],
                "addr",
            );
        }
    }
    let allow_a = c.insert(
        [w0(0x80), 674_618_291, 0, 0],
        or(REGS, CONJ_ID),
        2001,
        "allow a",
    );
    let allow_b = c.insert(
        [w0(0x100), 3_243_727_988, 0, 0],
        or(REGS, CONJ_ID),
        2001,
        "allow b",
    );
    let dflt = c.insert([0; W], [0; W], 0, "next table");
    assert_eq!(c.n_subtables(), 4);

    let k = [w0(0x80), 0, ip(10, 0, 0, 11) << 32 | ip(10, 0, 0, 2), 9000];
    let mut wc = [0; W];
    assert_eq!(c.lookup_resolved(&k, &mut wc, set_conj_id), Some(allow_a));
    let k = [w0(0x100), 0, ip(10, 0, 0, 100) << 32, 8080];
    assert_eq!(
        c.lookup_resolved(&k, &mut [0; W], set_conj_id),
        Some(allow_b)
    );
    let k = [w0(0x100), 0, ip(10, 0, 0, 99) << 32, 8080];
    assert_eq!(c.lookup_resolved(&k, &mut [0; W], set_conj_id), Some(dflt));
    // Another logical switch: rejected on the first stage by every subtable
    // (the conj_id flows' first stage includes conj_id, which shares it).
    let mut wc = [0; W];
    assert_eq!(
        c.lookup_resolved(&[7, 0, 0, 8080], &mut wc, set_conj_id),
        Some(dflt)
    );
    assert_eq!(wc, or(REGS, CONJ_ID));
}

#[test]
fn classifier_is_send_sync_clone() {
    fn check<T: Send + Sync + Clone>(_: &T) {}
    let c = cls();
    check(&c);
    let mut d = c.clone();
    d.insert([0; W], [0; W], 0, "x");
    assert!(c.is_empty() && d.len() == 1);
    assert!(d.memory_usage() > 0);
}

/// OVS needs n matching clause flows for an n-clause conjunction: one flow
/// carrying both clauses of a conjunction does not fire it alone.
#[test]
fn lone_rule_with_all_clauses_needs_company() {
    let mut c = cls();
    c.insert_conjunctive(
        [0, 0, 1 << 32, 0],
        SRC,
        10,
        [(3, 1, 2).into(), (3, 2, 2).into()],
        "both",
    );
    let k = pkt(0, 1, 2, 80);
    assert_eq!(c.lookup_conj(&k, &mut [0; W]), Outcome::Miss);
    // Any second clause flow matching at that priority completes the count.
    c.insert_conjunctive([0, 0, 0, 80], TP_DST, 10, [(4, 1, 2).into()], "other");
    assert_eq!(
        c.lookup_conj(&k, &mut [0; W]),
        Outcome::Conjunction {
            priority: 10,
            ids: vec![3]
        }
    );
    // Three clauses over two flows: never enough flows.
    c.insert_conjunctive(
        [0, 0, 2, 0],
        DST,
        20,
        [(5, 1, 3).into(), (5, 2, 3).into()],
        "1+2",
    );
    c.insert_conjunctive([0, 0, 0, 80], TP_DST, 20, [(5, 3, 3).into()], "3");
    assert_eq!(
        c.lookup_conj(&k, &mut [0; W]),
        Outcome::Conjunction {
            priority: 10,
            ids: vec![3]
        }
    );
}

#[test]
#[should_panic(expected = "invalid conjunction")]
fn insert_conjunctive_panics_on_invalid_clause() {
    let mut c = cls();
    c.insert_conjunctive([0; W], [0; W], 1, [(1, 3, 2).into()], "x");
}

#[test]
fn lookup_below_a_ceiling_sets_higher_rules_aside() {
    let mut c = cls();
    // A blocking rule above the ordinary one, as a live-migration gate has.
    let block = c.insert([1, 0, 0, 0], META, 1000, "metadata=1 drop");
    let normal = c.insert([1, 0, 0, 0], META, 100, "metadata=1 normal");
    let k = pkt(1, 1, 2, 80);
    assert_eq!(c.lookup_resolved(&k, &mut [0; W], set_conj_id), Some(block));
    let mut wc = [0; W];
    assert_eq!(
        c.lookup_resolved_below(&k, &mut wc, set_conj_id, 1000),
        Some(normal)
    );
    assert_eq!(wc, META);
    // Nothing below: a miss, not the rule at the ceiling.
    assert_eq!(
        c.lookup_resolved_below(&k, &mut [0; W], set_conj_id, 100),
        None
    );
    // Conjunctions below the ceiling are resolved; a conj_id rule at or above the ceiling
    // is not taken.
    c.insert_conjunctive([0, 0, 1 << 32, 0], SRC, 50, [(7, 1, 2).into()], "c1");
    c.insert_conjunctive([0, 0, 0, 80], TP_DST, 50, [(7, 2, 2).into()], "c2");
    let flow = c.insert([0, 7, 0, 0], CONJ_ID, 50, "conj_id=7");
    assert_eq!(
        c.lookup_resolved_below(&k, &mut [0; W], set_conj_id, 100),
        Some(flow)
    );
    c.remove(flow);
    let high = c.insert([0, 7, 0, 0], CONJ_ID, 500, "conj_id=7@500");
    let low = c.insert([1, 0, 0, 0], META, 10, "metadata=1 low");
    assert_eq!(
        c.lookup_resolved_below(&k, &mut [0; W], set_conj_id, 100),
        Some(low)
    );
    assert_eq!(
        c.lookup_resolved_below(&k, &mut [0; W], set_conj_id, 1000),
        Some(normal)
    );
    c.remove(normal);
    assert_eq!(
        c.lookup_resolved_below(&k, &mut [0; W], set_conj_id, 1000),
        Some(high)
    );
}
