//! The per-PMD megaflow cache: tuple-space search, one open-addressing hash table per distinct
//! mask. A hit costs one masked hash and compare per mask tried; translation runs only on a miss.
//!
//! An exact-match cache ([`emc`]) sits in front: a packet whose whole key was seen lately
//! finds its megaflow with one hash and one compare.
//!
//! Invalidation is by generation today: any change to configuration or to state a translation
//! read (the MAC table) bumps a global generation and each PMD clears its cache at the start of
//! its next poll round, before it forwards another packet. Selective revalidation comes with the
//! OpenFlow caching work.

pub mod emc;

use crate::packet::key::{FlowKey, KEY_WORDS};
use std::sync::Arc;

use crate::pipeline::tables::RuleStats;
use crate::pipeline::{DpAction, LearnRef};

const EMPTY: u32 = u32::MAX;

/// EMC lookups between two decisions whether to bypass it.
const EMC_WINDOW: u32 = 1024;
/// Below this hit rate (%) the EMC is bypassed when the megaflow lookup is cheap.
const EMC_MIN_HIT_PCT: u32 = 50;
/// At most this many masks make a megaflow lookup cheap enough to bypass the EMC for.
const EMC_BYPASS_MASKS: usize = 8;
/// While bypassed, one lookup in this many still goes through the EMC.
const EMC_BYPASS_SAMPLE: u32 = 32;

/// One cached datapath flow.
#[derive(Clone, Debug)]
pub struct Megaflow {
    /// The masked key.
    pub key: FlowKey,
    pub mask: u16,
    pub actions: Vec<DpAction>,
    /// Index of the last `Output` in `actions` (the packet's frame is moved there instead of
    /// copied); `usize::MAX` when there is none.
    pub last_output: usize,
    pub learn: Option<LearnRef>,
    /// OpenFlow rules (and group buckets) this flow went through, credited with its hits.
    pub rules: Vec<Arc<RuleStats>>,
    pub packets: u64,
    pub bytes: u64,
    /// Hits already credited to `rules`.
    pub folded_packets: u64,
    pub folded_bytes: u64,
    pub created: u32,
    pub used: u32,
    /// The OpenFlow tables its translation looked up (`xlate::table_tag` bits).
    pub tables: [u64; 4],
}

impl Megaflow {
    /// Whether a change of the tables in `changed` may alter this flow's translation.
    pub fn depends_on(&self, changed: &[u64; 4]) -> bool {
        self.tables.iter().zip(changed).any(|(a, b)| a & b != 0)
    }

    /// Credits the hits since the last fold to the OpenFlow rules.
    pub fn fold(&mut self, now_ms: u64) {
        let (p, b) = (
            self.packets - self.folded_packets,
            self.bytes - self.folded_bytes,
        );
        if p == 0 {
            return;
        }
        for r in &self.rules {
            r.add(p, b, now_ms);
        }
        self.folded_packets = self.packets;
        self.folded_bytes = self.bytes;
    }
}

/// Index of the last output in an action list.
pub fn last_output(actions: &[DpAction]) -> usize {
    actions
        .iter()
        .rposition(|a| match a {
            DpAction::Output(_) | DpAction::TunnelPop(_) => true,
            DpAction::Ct(c) => c.recirc != 0,
            _ => false,
        })
        .unwrap_or(usize::MAX)
}

struct Subtable {
    mask: FlowKey,
    /// Indices of the words the mask does not wildcard entirely.
    words: [u8; KEY_WORDS],
    nwords: usize,
    slots: Vec<u32>,
    hashes: Vec<u32>,
    count: usize,
    hits: u64,
}

#[inline(always)]
fn hash_words(key: &FlowKey, mask: &FlowKey, words: &[u8]) -> u32 {
    let mut h: u64 = 0x243f_6a88_85a3_08d3;
    for &i in words {
        let i = i as usize;
        h = (h ^ (key.w[i] & mask.w[i])).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        h ^= h >> 29;
    }
    (h ^ (h >> 32)) as u32
}

impl Subtable {
    fn new(mask: FlowKey) -> Self {
        let mut words = [0u8; KEY_WORDS];
        let mut n = 0;
        for (i, m) in mask.w.iter().enumerate() {
            if *m != 0 {
                words[n] = i as u8;
                n += 1;
            }
        }
        Subtable {
            mask,
            words,
            nwords: n,
            slots: vec![EMPTY; 256],
            hashes: vec![0; 256],
            count: 0,
            hits: 0,
        }
    }

    #[inline(always)]
    fn matches(&self, key: &FlowKey, stored: &FlowKey) -> bool {
        self.words[..self.nwords]
            .iter()
            .all(|&i| key.w[i as usize] & self.mask.w[i as usize] == stored.w[i as usize])
    }

    #[inline]
    fn find(&self, key: &FlowKey, flows: &[Megaflow]) -> Option<u32> {
        let h = hash_words(key, &self.mask, &self.words[..self.nwords]);
        let m = self.slots.len() - 1;
        let mut i = h as usize & m;
        loop {
            let f = self.slots[i];
            if f == EMPTY {
                return None;
            }
            if self.hashes[i] == h && self.matches(key, &flows[f as usize].key) {
                return Some(f);
            }
            i = (i + 1) & m;
        }
    }

    fn insert(&mut self, h: u32, idx: u32, flows: &[Megaflow]) {
        if (self.count + 1) * 2 > self.slots.len() {
            let n = self.slots.len() * 2;
            let old: Vec<(u32, u32)> = self
                .slots
                .iter()
                .zip(&self.hashes)
                .filter(|(s, _)| **s != EMPTY)
                .map(|(s, h)| (*s, *h))
                .collect();
            self.slots = vec![EMPTY; n];
            self.hashes = vec![0; n];
            self.count = 0;
            for (s, h) in old {
                self.place(h, s);
            }
        }
        let _ = flows;
        self.place(h, idx);
    }

    fn place(&mut self, h: u32, idx: u32) {
        let m = self.slots.len() - 1;
        let mut i = h as usize & m;
        while self.slots[i] != EMPTY {
            i = (i + 1) & m;
        }
        self.slots[i] = idx;
        self.hashes[i] = h;
        self.count += 1;
    }
}

/// Per-PMD cache statistics.
#[derive(Default, Clone, Copy, Debug)]
pub struct CacheStats {
    /// Hits in the exact-match cache.
    pub emc_hits: u64,
    /// Hits in the megaflow cache (after an EMC miss).
    pub hits: u64,
    pub misses: u64,
    pub inserts: u64,
    pub flushes: u64,
}

pub struct FlowCache {
    emc: Option<emc::Emc>,
    /// Bumped whenever the flows are forgotten: EMC entries of an older epoch are stale.
    epoch: u32,
    subtables: Vec<Subtable>,
    flows: Vec<Megaflow>,
    capacity: usize,
    lookups_since_sort: u32,
    /// State of the pseudo-random choice of EMC insertions that may evict.
    evict_rng: u32,
    /// The EMC is skipped (but for a sample of lookups): over the last [`EMC_WINDOW`] EMC
    /// lookups fewer than [`EMC_MIN_HIT_PCT`] % hit while the megaflow cache has at most
    /// [`EMC_BYPASS_MASKS`] masks (10,000 connections through a stateful ACL: 20,000 keys for
    /// 8,192 entries).
    emc_bypass: bool,
    /// (EMC lookups, hits) since the last decision.
    emc_window: (u32, u32),
    emc_sample: u32,
    pub stats: CacheStats,
}

impl FlowCache {
    pub fn new(capacity: usize) -> Self {
        FlowCache {
            emc: None,
            epoch: 1,
            subtables: Vec::new(),
            flows: Vec::with_capacity(capacity.min(4096)),
            capacity: capacity.max(16),
            lookups_since_sort: 0,
            evict_rng: 0x9e37_79b9,
            emc_bypass: false,
            emc_window: (0, 0),
            emc_sample: 0,
            stats: CacheStats::default(),
        }
    }

    pub fn len(&self) -> usize {
        self.flows.len()
    }
    pub fn is_empty(&self) -> bool {
        self.flows.is_empty()
    }
    pub fn masks(&self) -> usize {
        self.subtables.len()
    }

    /// Puts an exact-match cache in front (or removes it).
    pub fn set_emc(&mut self, on: bool) {
        self.emc = on.then(emc::Emc::new);
        self.epoch = self.epoch.wrapping_add(1).max(1);
        self.emc_bypass = false;
        self.emc_window = (0, 0);
    }

    pub fn emc_enabled(&self) -> bool {
        self.emc.is_some()
    }

    /// The exact-match hash of `key` with its entries being loaded, for a
    /// [`lookup_hashed`](Self::lookup_hashed) a little later (None without an EMC).
    #[inline]
    pub fn prefetch(&self, key: &FlowKey) -> Option<u32> {
        let e = self.emc.as_ref()?;
        if self.emc_bypass {
            return None;
        }
        let h = emc::hash(key);
        e.prefetch(h);
        Some(h)
    }

    /// Finds the flow `key` belongs to: the exact-match cache first, then the masks, most-hit
    /// first (a megaflow hit fills the exact-match entry).
    #[inline]
    pub fn lookup(&mut self, key: &FlowKey) -> Option<u32> {
        self.lookup_hashed(key, None)
    }

    /// [`lookup`](Self::lookup) with the exact-match hash [`prefetch`](Self::prefetch) gave.
    #[inline]
    pub fn lookup_hashed(&mut self, key: &FlowKey, h: Option<u32>) -> Option<u32> {
        let h = match (&self.emc, h) {
            (None, _) => None,
            (Some(_), Some(h)) => Some(h),
            (Some(_), None) if self.emc_bypass => {
                // bypassed: a sample still goes through it, to notice when it would pay again
                self.emc_sample = self.emc_sample.wrapping_add(1);
                self.emc_sample
                    .is_multiple_of(EMC_BYPASS_SAMPLE)
                    .then(|| emc::hash(key))
            }
            (Some(_), None) => Some(emc::hash(key)),
        };
        if let (Some(e), Some(h)) = (&self.emc, h) {
            let hit = e.lookup(key, h, self.epoch);
            self.emc_window.0 += 1;
            self.emc_window.1 += hit.is_some() as u32;
            if self.emc_window.0 >= EMC_WINDOW {
                // most lookups miss and a megaflow lookup is a few probes of hot memory:
                // the EMC's probe (two entries of a 1.7 MB table, cache misses) costs more
                // than it saves
                let (n, hits) = self.emc_window;
                self.emc_bypass =
                    hits * 100 < n * EMC_MIN_HIT_PCT && self.subtables.len() <= EMC_BYPASS_MASKS;
                self.emc_window = (0, 0);
            }
            if let Some(f) = hit {
                self.stats.emc_hits += 1;
                return Some(f);
            }
        }
        for st in self.subtables.iter_mut() {
            if let Some(f) = st.find(key, &self.flows) {
                st.hits += 1;
                self.stats.hits += 1;
                if let (Some(e), Some(h)) = (self.emc.as_mut(), h) {
                    // xorshift32: which insertions may evict (see emc::Emc::insert)
                    let mut x = self.evict_rng;
                    x ^= x << 13;
                    x ^= x >> 17;
                    x ^= x << 5;
                    self.evict_rng = x;
                    e.insert(key, h, f, self.epoch, x.is_multiple_of(emc::EVICT_INV_PROB));
                }
                return Some(f);
            }
        }
        self.stats.misses += 1;
        self.lookups_since_sort += 1;
        if self.lookups_since_sort >= 1024 && self.subtables.len() > 1 {
            self.lookups_since_sort = 0;
            self.subtables.sort_by_key(|s| std::cmp::Reverse(s.hits));
        }
        None
    }

    #[inline]
    pub fn flow_mut(&mut self, idx: u32) -> &mut Megaflow {
        &mut self.flows[idx as usize]
    }

    pub fn flow(&self, idx: u32) -> &Megaflow {
        &self.flows[idx as usize]
    }

    /// Inserts a flow for `key` under `mask`. When full, the cache is emptied first (bounded
    /// memory; the working set refills on the next misses).
    #[allow(clippy::too_many_arguments)]
    pub fn insert(
        &mut self,
        key: &FlowKey,
        mask: &FlowKey,
        actions: Vec<DpAction>,
        learn: Option<LearnRef>,
        rules: Vec<Arc<RuleStats>>,
        tables: [u64; 4],
        now: u32,
    ) -> u32 {
        if self.flows.len() >= self.capacity {
            self.fold_all(now as u64 * 1000);
            self.clear();
        }
        let si = match self.subtables.iter().position(|s| s.mask == *mask) {
            Some(i) => i,
            None => {
                self.subtables.push(Subtable::new(*mask));
                self.subtables.len() - 1
            }
        };
        let st = &mut self.subtables[si];
        let masked = crate::pipeline::masked(key, mask);
        let h = hash_words(key, mask, &st.words[..st.nwords]);
        let idx = self.flows.len() as u32;
        let last_output = last_output(&actions);
        self.flows.push(Megaflow {
            key: masked,
            mask: si as u16,
            actions,
            last_output,
            learn,
            rules,
            packets: 0,
            bytes: 0,
            folded_packets: 0,
            folded_bytes: 0,
            created: now,
            used: now,
            tables,
        });
        st.insert(h, idx, &self.flows);
        self.stats.inserts += 1;
        idx
    }

    /// Credits every flow's new hits to its OpenFlow rules.
    pub fn fold_all(&mut self, now_ms: u64) {
        for f in &mut self.flows {
            f.fold(now_ms);
        }
    }

    /// Drops the flows unused for `max_idle` seconds (OVS's max-idle), rebuilding the tables
    /// from the live ones, and returns how many went. Counters must be folded first. To keep
    /// the pause short on a big cache it waits until a quarter of the flows are idle (any
    /// number below 1024 flows), so an idle flow lives at most until then.
    pub fn expire_idle(&mut self, now: u32, max_idle: u32) -> usize {
        let idle = self
            .flows
            .iter()
            .filter(|f| now.saturating_sub(f.used) >= max_idle)
            .count();
        if idle == 0 || (self.flows.len() > 1024 && idle * 4 < self.flows.len()) {
            return 0;
        }
        self.retain(|f| now.saturating_sub(f.used) < max_idle)
    }

    /// Drops the flows whose translation looked up a table in `changed` (a flow mod there
    /// may change their result) and keeps the others, which no change touched. Counters of
    /// the dropped flows are credited first. Returns how many went.
    pub fn invalidate_tables(&mut self, changed: &[u64; 4], now_ms: u64) -> usize {
        for f in self.flows.iter_mut().filter(|f| f.depends_on(changed)) {
            f.fold(now_ms);
        }
        let n = self.retain(|f| !f.depends_on(changed));
        if n > 0 {
            self.stats.flushes += 1;
        }
        n
    }

    /// Keeps the flows `keep` accepts, rebuilding the hash tables (and forgetting every
    /// exact-match entry); returns how many went. Counters of the others must be folded
    /// first.
    fn retain(&mut self, keep: impl Fn(&Megaflow) -> bool) -> usize {
        let before = self.flows.len();
        if self.flows.iter().all(&keep) {
            return 0;
        }
        let old = std::mem::take(&mut self.flows);
        let masks: Vec<FlowKey> = self.subtables.iter().map(|s| s.mask).collect();
        let hits: Vec<u64> = self.subtables.iter().map(|s| s.hits).collect();
        self.subtables.clear();
        self.epoch = self.epoch.wrapping_add(1).max(1);
        for f in old {
            if !keep(&f) {
                continue;
            }
            let mask = masks[f.mask as usize];
            let si = match self.subtables.iter().position(|s| s.mask == mask) {
                Some(i) => i,
                None => {
                    let mut st = Subtable::new(mask);
                    st.hits = hits[f.mask as usize];
                    self.subtables.push(st);
                    self.subtables.len() - 1
                }
            };
            let st = &mut self.subtables[si];
            let h = hash_words(&f.key, &mask, &st.words[..st.nwords]);
            let idx = self.flows.len() as u32;
            self.flows.push(Megaflow {
                mask: si as u16,
                ..f
            });
            st.insert(h, idx, &self.flows);
        }
        before - self.flows.len()
    }

    /// Forgets every cached flow (fold first if their counters matter).
    pub fn clear(&mut self) {
        if self.flows.is_empty() {
            return;
        }
        self.flows.clear();
        self.subtables.clear();
        self.stats.flushes += 1;
        // forgets every exact-match entry at once (0 is never a live epoch)
        self.epoch = self.epoch.wrapping_add(1).max(1);
    }

    pub fn flows(&self) -> &[Megaflow] {
        &self.flows
    }
}

/// Formats a megaflow the way `ovs-appctl dpctl/dump-flows` prints datapath flows: the fields
/// the mask covers (value/mask where partially masked), counters, age and actions.
pub fn format_megaflow(
    f: &Megaflow,
    mask: &FlowKey,
    now: u32,
    port_name: &dyn Fn(u16) -> String,
) -> String {
    use crate::packet::key::w;
    use crate::packet::Mac;
    use std::fmt::Write as _;
    let k = &f.key;
    let mut s = String::new();
    let _ = write!(s, "recirc_id({:#x}),", (k.w[w::META] >> 32) as u32);
    let _ = write!(s, "in_port({}),", port_name(k.in_port() as u16));
    let ct = |word: usize, shift: u32, bits: u32| {
        let m = (mask.w[word] >> shift) & ((1u64 << bits) - 1);
        let v = (k.w[word] >> shift) & ((1u64 << bits) - 1);
        (m != 0).then_some((v, m))
    };
    if let Some((v, m)) = ct(w::TUN_CT, 32, 32) {
        let _ = write!(s, "ct_state({v:#x}/{m:#x}),");
    }
    if let Some((v, _)) = ct(w::TUN_CT, 16, 16) {
        let _ = write!(s, "ct_zone({v:#x}),");
    }
    if let Some((v, m)) = ct(w::MARKS, 32, 32) {
        let _ = write!(s, "ct_mark({v:#x}/{m:#x}),");
    }
    let mac_m = (1u64 << 48) - 1;
    let (sm, dm) = (mask.w[w::ETH_SRC] & mac_m, mask.w[w::ETH_DST] & mac_m);
    if sm != 0 || dm != 0 {
        let fmt = |v: u64, m: u64| {
            if m == mac_m {
                Mac::from_u64(v).to_string()
            } else {
                format!("{}/{}", Mac::from_u64(v), Mac::from_u64(m))
            }
        };
        let mut parts = Vec::new();
        if sm != 0 {
            parts.push(format!("src={}", fmt(k.dl_src_u64(), sm)));
        }
        if dm != 0 {
            parts.push(format!("dst={}", fmt(k.dl_dst_u64(), dm)));
        }
        let _ = write!(s, "eth({}),", parts.join(","));
    }
    let vm = (mask.w[w::ETH_DST] >> 48) as u16;
    if vm != 0 {
        if k.vlan_tci() & 0x1000 != 0 {
            let _ = write!(s, "vlan(vid={},pcp={}),", k.vlan_vid(), k.vlan_tci() >> 13);
        } else {
            s.push_str("vlan(none),");
        }
    }
    let tm = (mask.w[w::ETH_SRC] >> 48) as u16;
    if tm != 0 {
        let _ = write!(s, "eth_type({:#06x}),", k.dl_type());
    }
    let l3m = mask.w[w::L3];
    let ipm =
        mask.w[w::NW_SRC_LO] | mask.w[w::NW_DST_LO] | mask.w[w::NW_SRC_HI] | mask.w[w::NW_DST_HI];
    if l3m != 0 || ipm != 0 {
        let mut parts = Vec::new();
        let t = k.dl_type();
        if t == 0x0800 {
            if mask.w[w::NW_SRC_LO] != 0 {
                parts.push(format!("src={}", k.nw_src_v4()));
            }
            if mask.w[w::NW_DST_LO] != 0 {
                parts.push(format!("dst={}", k.nw_dst_v4()));
            }
        } else if t == 0x86dd {
            if mask.w[w::NW_SRC_LO] | mask.w[w::NW_SRC_HI] != 0 {
                parts.push(format!("src={}", k.nw_src_v6()));
            }
            if mask.w[w::NW_DST_LO] | mask.w[w::NW_DST_HI] != 0 {
                parts.push(format!("dst={}", k.nw_dst_v6()));
            }
        }
        if l3m & 0xff != 0 {
            parts.push(format!("proto={}", k.nw_proto()));
        }
        if l3m & 0xff00 != 0 {
            parts.push(format!("tos={:#x}", k.nw_tos()));
        }
        if l3m & 0xff_0000 != 0 {
            parts.push(format!("ttl={}", k.nw_ttl()));
        }
        if l3m & 0xff00_0000 != 0 {
            parts.push(format!(
                "frag={}",
                match k.nw_frag() {
                    0 => "no",
                    1 => "first",
                    _ => "later",
                }
            ));
        }
        let name = match t {
            0x0800 => "ipv4",
            0x86dd => "ipv6",
            0x0806 | 0x8035 => "arp",
            _ => "l3",
        };
        let _ = write!(s, "{name}({}),", parts.join(","));
    }
    let l4m = mask.w[w::L4];
    if l4m != 0 {
        let name = match k.nw_proto() {
            6 => "tcp",
            17 => "udp",
            132 => "sctp",
            1 => "icmp",
            58 => "icmpv6",
            _ => "l4",
        };
        let mut parts = Vec::new();
        if l4m & 0xffff != 0 {
            parts.push(format!("src={}", k.tp_src()));
        }
        if l4m & 0xffff_0000 != 0 {
            parts.push(format!("dst={}", k.tp_dst()));
        }
        let _ = write!(s, "{name}({}),", parts.join(","));
    }
    if s.ends_with(',') {
        s.pop();
    }
    let used = if f.packets == 0 {
        "never".to_string()
    } else {
        format!("{}s", now.saturating_sub(f.used))
    };
    let acts: Vec<String> = f
        .actions
        .iter()
        .map(|a| match a {
            DpAction::Output(p) => port_name(*p),
            DpAction::Set { field, value, .. } => format!("set({field:?}={value:#x})"),
            DpAction::PushVlan { tci, .. } => format!("push_vlan(tci={tci:#x})"),
            DpAction::PopVlan => "pop_vlan".into(),
            DpAction::Userspace(_) => "userspace(controller)".into(),
            DpAction::Meter { id, .. } => format!("meter({id})"),
            DpAction::TunnelPush(h) => format!(
                "tnl_push(tnl_port({}),header({} bytes),csum={})",
                port_name(h.port),
                h.len,
                h.csum
            ),
            DpAction::TunnelStrip => "tnl_strip".into(),
            DpAction::TunnelPop(r) => format!("tnl_pop(udp_dst={})", r.dst_port),
            DpAction::Activate(_, t) => format!("activate_gate({})", t.name()),
            DpAction::GateDrop(_, d) => format!("gate_drop({d:?})"),
            DpAction::GateFirst(_, d) => format!("gate_first({d:?})"),
            DpAction::Learn(l) => format!("learn(table={})", l.fm.table_id),
            DpAction::CtClear => "ct_clear".into(),
            DpAction::Ct(c) => {
                let a = &c.act;
                let mut t = format!("ct(zone={}", a.zone);
                if a.commit {
                    t.push_str(",commit");
                }
                if let Some((v, m)) = a.set_mark {
                    t.push_str(&format!(",mark={v:#x}/{m:#x}"));
                }
                if let Some((v, m)) = a.set_label {
                    t.push_str(&format!(",label={v:#x}/{m:#x}"));
                }
                if let Some(n) = &a.nat {
                    t.push_str(&format!(",nat({:?})", n.kind).to_lowercase());
                }
                t.push(')');
                if c.recirc != 0 {
                    t.push_str(&format!(",recirc({:#x})", c.recirc));
                }
                t
            }
        })
        .collect();
    let _ = write!(
        s,
        ", packets:{}, bytes:{}, used:{}, actions:{}",
        f.packets,
        f.bytes,
        used,
        if acts.is_empty() {
            "drop".into()
        } else {
            acts.join(",")
        }
    );
    s
}

impl FlowCache {
    /// Every flow with its mask, for dumps.
    pub fn flows_with_masks(&self) -> impl Iterator<Item = (&Megaflow, &FlowKey)> {
        self.flows
            .iter()
            .map(move |f| (f, &self.subtables[f.mask as usize].mask))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packet::key::w;
    use crate::pipeline::tables::RuleStats;

    fn key(in_port: u32, src: u64, dst: u64, tp: u64) -> FlowKey {
        let mut k = FlowKey::default();
        k.w[w::META] = in_port as u64;
        k.w[w::ETH_SRC] = src | (0x0800 << 48);
        k.w[w::ETH_DST] = dst;
        k.w[w::L4] = tp;
        k
    }

    fn l2mask() -> FlowKey {
        let mut m = FlowKey::default();
        m.w[w::META] = 0xffff_ffff;
        m.w[w::ETH_SRC] = (1 << 48) - 1;
        m.w[w::ETH_DST] = u64::MAX;
        m
    }

    #[test]
    fn a_table_change_drops_only_the_flows_that_looked_it_up() {
        use crate::pipeline::xlate::table_tag;
        let tags = |ts: &[u8]| {
            let mut t = [0u64; 4];
            for &x in ts {
                let (w, b) = table_tag(0, x);
                t[w] |= b;
            }
            t
        };
        let stats = Arc::new(RuleStats::default());
        let mut c = FlowCache::new(1000);
        c.set_emc(true);
        let a = c.insert(
            &key(1, 0xa, 0xb, 5),
            &l2mask(),
            vec![DpAction::Output(2)],
            None,
            vec![stats.clone()],
            tags(&[0, 8, 10]),
            0,
        );
        c.insert(
            &key(2, 0xa, 0xb, 5),
            &l2mask(),
            vec![DpAction::Output(3)],
            None,
            vec![],
            tags(&[0, 9]),
            0,
        );
        for _ in 0..3 {
            let f = c.lookup(&key(1, 0xa, 0xb, 5)).unwrap();
            c.flow_mut(f).packets += 1;
        }
        assert_eq!(c.lookup(&key(1, 0xa, 0xb, 5)), Some(a));
        // table 10 changed: the first flow goes (its hits credited first), the second stays
        assert_eq!(c.invalidate_tables(&tags(&[10]), 1000), 1);
        assert_eq!(stats.packets.load(std::sync::atomic::Ordering::Relaxed), 3);
        assert_eq!(
            c.lookup(&key(1, 0xa, 0xb, 5)),
            None,
            "not even from the EMC"
        );
        let kept = c
            .lookup(&key(2, 0xa, 0xb, 5))
            .expect("untouched flow still cached");
        assert_eq!(c.flow(kept).actions, vec![DpAction::Output(3)]);
        // a table neither looked up: nothing goes
        assert_eq!(c.invalidate_tables(&tags(&[40]), 1000), 0);
        assert_eq!(c.len(), 1);
    }

    #[test]
    fn wildcarded_fields_share_a_flow() {
        let mut c = FlowCache::new(1000);
        assert_eq!(c.lookup(&key(1, 0xa, 0xb, 5)), None);
        let f = c.insert(
            &key(1, 0xa, 0xb, 5),
            &l2mask(),
            vec![DpAction::Output(2)],
            None,
            vec![],
            [0; 4],
            0,
        );
        assert_eq!(c.lookup(&key(1, 0xa, 0xb, 5)), Some(f));
        assert_eq!(c.lookup(&key(1, 0xa, 0xb, 99)), Some(f), "L4 is wildcarded");
        assert_eq!(c.lookup(&key(2, 0xa, 0xb, 5)), None, "in_port is not");
        assert_eq!(c.flow(f).actions, vec![DpAction::Output(2)]);
    }

    #[test]
    fn many_flows_and_masks_and_overflow() {
        let mut c = FlowCache::new(5000);
        let mut exact = l2mask();
        exact.w[w::L4] = u64::MAX;
        for i in 0..3000u64 {
            let m = if i % 2 == 0 { l2mask() } else { exact };
            let k = key(1, i, i + 1, i);
            c.insert(
                &k,
                &m,
                vec![DpAction::Output(i as u16)],
                None,
                vec![],
                [0; 4],
                0,
            );
        }
        assert_eq!(c.masks(), 2);
        for i in 0..3000u64 {
            let f = c.lookup(&key(1, i, i + 1, i)).expect("hit");
            assert_eq!(c.flow(f).actions, vec![DpAction::Output(i as u16)]);
        }
        for i in 3000..6000u64 {
            c.insert(&key(1, i, i, i), &l2mask(), vec![], None, vec![], [0; 4], 0);
        }
        assert!(c.len() <= 5000);
        assert_eq!(c.stats.flushes, 1);
    }

    #[test]
    fn idle_flows_expire_and_live_ones_keep_their_counters_with_the_emc_on() {
        let mut c = FlowCache::new(1000);
        c.set_emc(true);
        let mut exact = l2mask();
        exact.w[w::L4] = u64::MAX;
        for i in 0..100u64 {
            let m = if i % 2 == 0 { l2mask() } else { exact };
            let f = c.insert(
                &key(1, i, i + 1, i),
                &m,
                vec![DpAction::Output(i as u16)],
                None,
                vec![],
                [0; 4],
                0,
            );
            c.flow_mut(f).packets = i;
        }
        // twice: the second lookup is an exact-match hit
        for _ in 0..2 {
            assert!(c.lookup(&key(1, 7, 8, 7)).is_some());
        }
        assert_eq!(c.stats.emc_hits, 1);
        // flows 0..50 used at second 20, the rest last at 0
        for i in 0..50u64 {
            let f = c.lookup(&key(1, i, i + 1, i)).unwrap();
            c.flow_mut(f).used = 20;
        }
        assert_eq!(c.expire_idle(5, 10), 0, "nothing idle yet");
        assert_eq!(c.expire_idle(25, 10), 50);
        assert_eq!(c.len(), 50);
        for i in 0..100u64 {
            match c.lookup(&key(1, i, i + 1, i)) {
                Some(f) => {
                    assert!(i < 50, "flow {i} expired");
                    assert_eq!(c.flow(f).actions, vec![DpAction::Output(i as u16)]);
                    assert_eq!(c.flow(f).packets, i, "counters survive");
                }
                None => assert!(i >= 50, "live flow {i} lost"),
            }
        }
        // the EMC entry of an expired flow does not point at a reused slot
        assert_eq!(c.lookup(&key(1, 77, 78, 77)), None);
    }

    /// With more active keys than the EMC holds, all under one mask, the EMC is bypassed
    /// (its hit rate stays low) and every lookup still finds the right flow; when the keys
    /// become few again, the sampled lookups bring it back.
    #[test]
    fn emc_is_bypassed_while_it_thrashes_and_comes_back() {
        let mut c = FlowCache::new(1000);
        c.set_emc(true);
        // one megaflow matching on L2 only; 20,000 keys differing in L4
        let f = c.insert(
            &key(1, 0xa, 0xb, 0),
            &l2mask(),
            vec![DpAction::Output(2)],
            None,
            vec![],
            [0; 4],
            0,
        );
        for round in 0..4 {
            for i in 0..20_000u64 {
                let k = key(1, 0xa, 0xb, i);
                let h = c.prefetch(&k);
                assert_eq!(c.lookup_hashed(&k, h), Some(f), "round {round} key {i}");
            }
        }
        assert!(c.emc_bypass, "20,000 keys cycling through 8,192 entries");
        let hits = c.stats.emc_hits;
        for _ in 0..200_000 {
            let k = key(1, 0xa, 0xb, 7);
            let h = c.prefetch(&k);
            assert_eq!(c.lookup_hashed(&k, h), Some(f));
        }
        assert!(!c.emc_bypass, "one repeated key: the EMC pays again");
        assert!(c.stats.emc_hits > hits + 100_000);
    }
}
