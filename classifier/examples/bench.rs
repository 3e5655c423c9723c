//! Lookup cost versus number of rules and masks.
//!
//! `cargo run --release -p classifier --example bench [masks...|conj]`
//!
//! Builds tables of 1k/10k/100k random rules spread over N masks (an
//! OVN-like 8-word key: metadata+registers, L2, L3, L4 stages), then times
//! `lookup` on keys derived from rules (hits, wildcarded bits randomised) and
//! on random keys (mostly misses, pruned by the metadata stage or not), and
//! prints ns/lookup (best of 5 runs, on-CPU time of the thread, so that a shared machine
//! does not inflate it; wall time where /proc is unavailable), the average number of un-wildcarded bits, and the
//! classifier's own estimate of its memory per rule. Prints, asserts nothing.

use std::hint::black_box;
use std::time::Instant;

use classifier::Classifier;

const W: usize = 8;
type Key = classifier::Key<W>;
/// 0: metadata | 1: reg14/reg15 | 2: regs | 3: eth dst | 4: eth src | 5: eth type+vlan
/// | 6: ip src<<32 | ip dst | 7: proto<<32 | tp_src<<16 | tp_dst
const STAGES: [std::ops::Range<usize>; 4] = [0..3, 3..6, 6..7, 7..8];

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Field-shaped word masks an OVN table would use, per word.
fn word_options(w: usize) -> &'static [u64] {
    match w {
        0 => &[u64::MAX],
        1 => &[0, 0xffff, 0xffff_0000, 0xffff_ffff],
        2 => &[0, 0x80, 0x100, 0x1_0000_0000],
        3 | 4 => &[0, 0xffff_ffff_ffff, 0x0100_0000_0000],
        5 => &[0, 0xffff, 0x1000_0000],
        6 => &[
            0,
            0xffff_ffff_0000_0000,
            0xffff_ffff,
            0xffff_ff00_0000_0000,
            u64::MAX,
        ],
        _ => &[0, 0xff_0000_0000, 0xff_0000_ffff, 0xff_ffff_0000],
    }
}

fn random_masks(rng: &mut Rng, n: usize) -> Vec<Key> {
    let mut masks: Vec<Key> = Vec::new();
    while masks.len() < n {
        let m: Key = std::array::from_fn(|w| {
            let o = word_options(w);
            o[rng.below(o.len() as u64) as usize]
        });
        if !masks.contains(&m) {
            masks.push(m);
        }
    }
    masks
}

struct Table {
    cls: Classifier<u32, W>,
    rules: Vec<(Key, Key)>,
}

fn build(rng: &mut Rng, masks: &[Key], n_rules: usize) -> (Table, f64) {
    let mut cls = Classifier::<u32, W>::new(&STAGES);
    // Each mask gets a priority band, as OVN stages do.
    let bands: Vec<u32> = masks.iter().map(|_| rng.below(60_000) as u32).collect();
    let mut rules = Vec::with_capacity(n_rules);
    let t = Instant::now();
    for i in 0..n_rules {
        let m = rng.below(masks.len() as u64) as usize;
        let mask = masks[m];
        // Values: metadata from 64 datapaths, the rest random.
        let mut value: Key = std::array::from_fn(|_| rng.next());
        value[0] = rng.below(64);
        let value: Key = std::array::from_fn(|w| value[w] & mask[w]);
        let prio = bands[m] + rng.below(100) as u32;
        cls.insert(value, mask, prio, i as u32);
        rules.push((value, mask));
    }
    let ins = t.elapsed().as_nanos() as f64 / n_rules as f64;
    (Table { cls, rules }, ins)
}

/// On-CPU time of this thread (ns), from /proc: the machine may be shared,
/// and wall-clock time then counts other processes' slices.
fn cpu_ns() -> Option<u64> {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

fn time(cls: &Classifier<u32, W>, keys: &[Key], iters: usize) -> (f64, f64, f64) {
    let mut hits = 0usize;
    let mut bits = 0u64;
    for k in keys {
        let mut wc = [0; W];
        hits += usize::from(cls.lookup(k, &mut wc).is_some());
        bits += wc.iter().map(|w| u64::from(w.count_ones())).sum::<u64>();
    }
    // Best of 5 runs: the machine may be shared, and interference only adds.
    let mut ns = f64::INFINITY;
    for _ in 0..5 {
        let t = Instant::now();
        let c0 = cpu_ns();
        for i in 0..iters {
            let mut wc = [0; W];
            black_box(cls.lookup(black_box(&keys[i % keys.len()]), &mut wc));
            black_box(&wc);
        }
        let wall = t.elapsed().as_nanos() as u64;
        let spent = match (c0, cpu_ns()) {
            (Some(a), Some(b)) => b - a,
            _ => wall,
        };
        ns = ns.min(spent as f64 / iters as f64);
    }
    (
        ns,
        hits as f64 / keys.len() as f64,
        bits as f64 / keys.len() as f64,
    )
}

/// An OVN-like ACL table: `n_acls` ACLs, each "ip.src in {10 addresses} &&
/// tcp.dst in {5 ports}" as a 2-dimensional conjunction (15 clause flows and
/// one `conj_id` flow instead of 50 expanded flows), over 16 datapaths, 50
/// priorities, with address and port pools shared between ACLs. Times the
/// whole OVS procedure (`lookup_resolved`).
fn conj_table(n_acls: usize) {
    let mut rng = Rng(0x000A_CE0F_BA5E ^ n_acls as u64);
    let mut cls = Classifier::<u32, W>::new(&STAGES);
    let meta: Key = [u64::MAX, 0, 0, 0, 0, 0, 0, 0];
    let src: Key = [u64::MAX, 0, 0, 0, 0, 0, 0xffff_ffff_0000_0000, 0];
    let port: Key = [u64::MAX, 0, 0, 0, 0, 0, 0, 0xffff];
    let conj_id: Key = [u64::MAX, u64::MAX, 0, 0, 0, 0, 0, 0];
    let addr = |i: u64| (0x0a00_0000 + i) << 32;
    for acl in 0..n_acls {
        let id = acl as u32 + 1;
        let dp = rng.below(16);
        let prio = 1000 + (acl % 50) as u32;
        for _ in 0..10 {
            let v = [dp, 0, 0, 0, 0, 0, addr(rng.below(256)), 0];
            cls.insert_conjunctive(v, src, prio, [(id, 1, 2).into()], 0);
        }
        for _ in 0..5 {
            let v = [dp, 0, 0, 0, 0, 0, 0, 8000 + rng.below(64)];
            cls.insert_conjunctive(v, port, prio, [(id, 2, 2).into()], 0);
        }
        cls.insert([dp, u64::from(id), 0, 0, 0, 0, 0, 0], conj_id, prio, 1);
    }
    for dp in 0..16 {
        cls.insert([dp, 0, 0, 0, 0, 0, 0, 0], meta, 0, 2);
    }
    let keys: Vec<Key> = (0..8192)
        .map(|_| {
            [
                rng.below(16),
                0,
                0,
                0,
                0,
                0,
                addr(rng.below(256)) | rng.below(1 << 32),
                8000 + rng.below(64),
            ]
        })
        .collect();
    let set = |k: &mut Key, id: u32| k[1] = u64::from(id);
    let allowed = keys
        .iter()
        .filter(|k| {
            let r = cls.lookup_resolved(k, &mut [0; W], set);
            r.and_then(|r| cls.get(r)) == Some(&1)
        })
        .count();
    let iters = 200_000;
    let mut ns = f64::INFINITY;
    for _ in 0..5 {
        let c0 = cpu_ns();
        let t = Instant::now();
        for i in 0..iters {
            let mut wc = [0; W];
            black_box(cls.lookup_resolved(black_box(&keys[i % keys.len()]), &mut wc, set));
        }
        let spent = match (c0, cpu_ns()) {
            (Some(a), Some(b)) => b - a,
            _ => t.elapsed().as_nanos() as u64,
        };
        ns = ns.min(spent as f64 / iters as f64);
    }
    println!(
        "conjunctive ACLs {:>5}: {:>6} rules ({:>6} if expanded), {} subtables, {:.1} ns/lookup_resolved, {:.0}% via conj_id, {:.0} bytes/rule",
        n_acls,
        cls.len(),
        n_acls * 51 + 16,
        cls.n_subtables(),
        ns,
        100.0 * allowed as f64 / keys.len() as f64,
        cls.memory_usage() as f64 / cls.len() as f64,
    );
}

fn main() {
    if std::env::args().any(|a| a == "conj") {
        for n_acls in [100, 1000] {
            conj_table(n_acls);
        }
        return;
    }
    let mask_counts: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let mask_counts = if mask_counts.is_empty() {
        vec![5, 20, 50]
    } else {
        mask_counts
    };
    println!(
        "{:>6} {:>8} {:>10} {:>9} {:>11} {:>9} {:>11} {:>9} {:>10}",
        "masks",
        "rules",
        "subtables",
        "hit ns",
        "hit ratio",
        "wc bits",
        "random ns",
        "wc bits",
        "bytes/rule"
    );
    for &n_masks in &mask_counts {
        for n_rules in [1_000, 10_000, 100_000] {
            let mut rng = Rng(0x1234_5678_9abc_def1 ^ (n_masks as u64) << 32 ^ n_rules as u64);
            let masks = random_masks(&mut rng, n_masks);
            let (table, ins_ns) = build(&mut rng, &masks, n_rules);
            let hit_keys: Vec<Key> = (0..8192)
                .map(|_| {
                    let (v, m) = table.rules[rng.below(table.rules.len() as u64) as usize];
                    std::array::from_fn(|w| v[w] | (rng.next() & !m[w]))
                })
                .collect();
            let rnd_keys: Vec<Key> = (0..8192)
                .map(|_| {
                    let mut k: Key = std::array::from_fn(|_| rng.next());
                    k[0] = rng.below(64);
                    k
                })
                .collect();
            let iters = 500_000;
            let (hit_ns, hit_ratio, hit_bits) = time(&table.cls, &hit_keys, iters);
            let (rnd_ns, _, rnd_bits) = time(&table.cls, &rnd_keys, iters);
            println!(
                "{:>6} {:>8} {:>10} {:>9.1} {:>11.2} {:>9.1} {:>11.1} {:>9.1} {:>10.0} {:>10.0}",
                n_masks,
                n_rules,
                table.cls.n_subtables(),
                hit_ns,
                hit_ratio,
                hit_bits,
                rnd_ns,
                rnd_bits,
                table.cls.memory_usage() as f64 / n_rules as f64,
                ins_ns,
            );
        }
    }
    for n_acls in [100, 1000] {
        conj_table(n_acls);
    }
}
