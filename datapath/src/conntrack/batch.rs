//! Batched `ct()`: the tracker's side of a PMD running a whole batch of packets through one
//! recirculating `ct()` at once (OVS's dpif-netdev does the same: a batch goes through
//! conntrack, then recirculates as a batch).
//!
//! Three steps, so that the packet frames need not all be borrowed at once:
//!
//! 1. [`Conntrack::batch_add`] per packet: parse the tuple and pick its shard.
//! 2. [`Conntrack::batch_lookup`] once: the packets sorted by shard, each shard locked once
//!    for all of its packets. A packet of a *steady* connection (see [`Conn::steady_ms`]) is
//!    answered right there: established, the expiry pushed out with one atomic store, mark and
//!    label read from their published copies; no connection lock, no reference count. Every
//!    other hit keeps a reference to its connection for step 3.
//! 3. [`Conntrack::batch_finish`] per packet, in batch order: everything else `execute_md`
//!    does (state machines, NAT, commit), starting from the connection step 2 found.
//!
//! Verdicts are those of one-by-one execution in batch order: a connection that died in step 3
//! (an earlier packet of the batch removed it) is looked up again; a miss is looked up again
//! when the batch commits anything (an earlier packet may have created the connection); the
//! lock-free answer is not used when a packet of the batch could change what it reports
//! (`force`, `exec(set_field)` of mark or label).

use std::sync::atomic::Ordering;
use std::sync::Arc;

use super::{cs, lock, parse, Conn, Conntrack, CtAction, CtResult, Pre};

/// Most packets one batch holds (a PMD batch is at most 256 packets).
pub const BATCH_MAX: usize = 256;

enum Found {
    /// Not looked up yet (or already finished).
    Pending,
    /// The tuple could not be parsed: INVALID.
    Unparsed,
    Miss,
    Hit(Arc<Conn>, bool),
    Done(CtResult),
}

struct Item {
    p: Option<parse::Parsed>,
    shard: u16,
    act: CtAction,
    prev: Option<CtResult>,
    found: Found,
}

/// One batch of `ct()` executions. Allocated once (per PMD) and reused: nothing on the
/// per-batch path allocates once it has held a full batch.
pub struct CtBatch {
    items: Vec<Item>,
    /// (shard << 16 | index), sorted: the lookup order.
    order: Vec<u32>,
    /// Some packet of the batch commits, forces, or sets mark or label.
    commits: bool,
    writes: bool,
}

impl Default for CtBatch {
    fn default() -> Self {
        CtBatch {
            items: Vec::with_capacity(BATCH_MAX),
            order: Vec::with_capacity(BATCH_MAX),
            commits: false,
            writes: false,
        }
    }
}

impl CtBatch {
    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Packets that [`Conntrack::batch_lookup`] answered without their connection's lock.
    pub fn steady_answers(&self) -> usize {
        self.items
            .iter()
            .filter(|i| matches!(i.found, Found::Done(_)))
            .count()
    }

    pub fn is_full(&self) -> bool {
        self.items.len() >= BATCH_MAX
    }

    /// Forgets the batch (and the connections it still references).
    pub fn clear(&mut self) {
        self.items.clear();
        self.order.clear();
        self.commits = false;
        self.writes = false;
    }
}

impl Conntrack {
    /// Adds a packet's `ct()` to the batch and returns its index there (None when the batch
    /// is full: execute it alone). The frame is only read here; `batch_finish` gets it again.
    pub fn batch_add(
        &self,
        b: &mut CtBatch,
        frame: &[u8],
        lay: &crate::packet::key::Layout,
        act: &CtAction,
        prev: Option<&CtResult>,
    ) -> Option<usize> {
        if b.is_full() {
            return None;
        }
        let p = parse::parse(frame, lay.l3 as usize, lay.ip_version, act.zone).ok();
        let shard = p.as_ref().map_or(0, |p| self.shard_index(&p.key)) as u16;
        b.commits |= act.commit;
        b.writes |= act.force || act.set_mark.is_some() || act.set_label.is_some();
        b.items.push(Item {
            found: if p.is_some() {
                Found::Pending
            } else {
                Found::Unparsed
            },
            p,
            shard,
            act: *act,
            prev: prev.copied(),
        });
        Some(b.items.len() - 1)
    }

    /// Looks up every packet of the batch, one lock per shard, and answers the packets of
    /// steady connections (see the module).
    pub fn batch_lookup(&self, b: &mut CtBatch, now_ms: u64) {
        b.order.clear();
        for (i, it) in b.items.iter().enumerate() {
            if matches!(it.found, Found::Pending) {
                b.order.push((it.shard as u32) << 16 | i as u32);
            }
        }
        b.order.sort_unstable();
        let fast = !b.writes;
        let mut k = 0;
        while k < b.order.len() {
            let shard = (b.order[k] >> 16) as usize;
            let m = lock(&self.shards[shard]);
            while k < b.order.len() && (b.order[k] >> 16) as usize == shard {
                let it = &mut b.items[(b.order[k] & 0xffff) as usize];
                k += 1;
                let Some(p) = it.p.as_ref() else {
                    continue;
                };
                it.found = match m.get(&p.key) {
                    Some((c, reply)) if c.live(now_ms) => {
                        match fast
                            .then(|| steady(c, *reply, p, &it.act, it.prev.as_ref(), now_ms))
                            .flatten()
                        {
                            Some(r) => Found::Done(r),
                            None => Found::Hit(Arc::clone(c), *reply),
                        }
                    }
                    _ => Found::Miss,
                };
            }
        }
    }

    /// The verdict for packet `i` of the batch (NAT applied to `frame`, the packet added as
    /// `i`). Call in batch order, after [`batch_lookup`](Self::batch_lookup).
    pub fn batch_finish(
        &self,
        b: &mut CtBatch,
        i: usize,
        frame: &mut [u8],
        now_ms: u64,
    ) -> CtResult {
        let commits = b.commits;
        let Some(it) = b.items.get_mut(i) else {
            return CtResult::invalid(0);
        };
        let found = std::mem::replace(&mut it.found, Found::Pending);
        let Some(p) = it.p.as_ref() else {
            self.stats.invalid.fetch_add(1, Ordering::Relaxed);
            return CtResult::invalid(it.act.zone);
        };
        let pre = match found {
            Found::Done(r) => return r,
            Found::Hit(c, reply) => Pre::Found(c, reply),
            Found::Miss if !commits => Pre::Missed,
            _ => Pre::Lookup,
        };
        self.execute_parsed(frame, p, &it.act, now_ms, it.prev.as_ref(), pre)
    }
}

/// The verdict for a packet of a steady connection without its lock, when nothing but the
/// expiry would change: not related, no NAT to apply, no mark or label to set, no same-zone
/// NAT carried from an earlier `ct()` (those take the ordinary path).
#[inline]
fn steady(
    c: &Conn,
    reply: bool,
    p: &parse::Parsed,
    act: &CtAction,
    prev: Option<&CtResult>,
    now_ms: u64,
) -> Option<CtResult> {
    let t = c.steady_ms.load(Ordering::Relaxed);
    if t == 0 || p.related || (act.nat.is_some() && c.nat != 0) {
        return None;
    }
    if prev.is_some_and(|r| {
        r.zone == act.zone
            && r.state & cs::TRACKED != 0
            && r.state & (cs::SRC_NAT | cs::DST_NAT) != 0
    }) {
        return None;
    }
    let exp = now_ms.saturating_add(t as u64);
    if c.expires.load(Ordering::Relaxed) != exp {
        c.expires.store(exp, Ordering::Relaxed);
    }
    let (mark, label) = c.read_ml();
    Some(CtResult {
        state: cs::ESTABLISHED | cs::TRACKED | if reply { cs::REPLY_DIR } else { 0 },
        zone: act.zone,
        mark,
        label,
        orig: Some(c.fwd.orig_tuple()),
    })
}
