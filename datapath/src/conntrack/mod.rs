//! The userspace connection tracker: what `ct()` does to a packet.
//!
//! Semantics follow OVS's userspace conntrack (lib/conntrack*.c): connections keyed by zone,
//! addresses, protocol and ports (ICMP: id, type, code), found by their original or reply tuple
//! (the reply tuple carries NAT's choices), pseudo-connections for UDP, ICMP and other
//! protocols, a loose TCP state machine (see [`tcp`]), ICMP errors related to the connection
//! they quote, source and destination NAT with address and port ranges, per-protocol timeouts,
//! a global and per-zone connection limit.
//!
//! Concurrency: PMD threads call [`Conntrack::execute`] for every packet with a `ct()` action.
//! The table is split into [`SHARDS`] mutex-protected hash maps selected by the key's hash, one
//! entry per direction, both pointing at the same `Arc<Conn>`; a packet of an existing
//! connection takes one shard lock and the connection's own lock and allocates nothing. PMDs
//! run a batch's recirculating `ct()`s together (`batch.rs`, [`CtBatch`]): one lock per shard per batch, and
//! packets of steady connections (UDP both ways, ICMP answered) answered without the
//! connection's lock.
//! Creating and deleting connections (commit, expiry, flush) additionally serialise on one
//! `slow` lock so the two entries, the counters and the zone counts stay consistent.
//!
//! Not done (differences from OVS, on purpose or for later): IP fragments are INVALID (OVS
//! reassembles them first); TCP/UDP checksums are not verified (OVS marks a bad one invalid;
//! the IPv4 header checksum is verified); TCP sequence windows are not checked (see [`tcp`]);
//! no ALG helpers (FTP/TFTP), no timeout policies beyond OVS's defaults, no default zone limit.

mod batch;
pub mod fmt;
pub mod nat;
pub mod parse;
pub mod tcp;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hash, Hasher};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::packet::ipproto;

pub use batch::{CtBatch, BATCH_MAX};

/// ct_state bits (OVS CS_*).
pub mod cs {
    pub const NEW: u32 = 0x01;
    pub const ESTABLISHED: u32 = 0x02;
    pub const RELATED: u32 = 0x04;
    pub const REPLY_DIR: u32 = 0x08;
    pub const INVALID: u32 = 0x10;
    pub const TRACKED: u32 = 0x20;
    pub const SRC_NAT: u32 = 0x40;
    pub const DST_NAT: u32 = 0x80;
}

/// Timeouts in milliseconds: OVS's default timeout policy (conntrack-tp.c).
pub mod timeouts {
    pub const TCP_FIRST_PACKET: u64 = 30_000; // syn_sent
    pub const TCP_OPENING: u64 = 30_000; // syn_recv
    pub const TCP_ESTABLISHED: u64 = 24 * 3600 * 1000;
    pub const TCP_CLOSING: u64 = 15 * 60 * 1000; // fin_wait
    pub const TCP_FIN_WAIT: u64 = 45_000; // time_wait
    pub const TCP_CLOSED: u64 = 30_000; // close
    pub const OTHER_FIRST: u64 = 60_000; // udp_first
    pub const OTHER_MULTIPLE: u64 = 60_000; // udp_single
    pub const OTHER_BIDIR: u64 = 30_000; // udp_multiple
    pub const ICMP_FIRST: u64 = 60_000;
    pub const ICMP_REPLY: u64 = 30_000;
}

/// Number of table shards (a power of two).
pub const SHARDS: usize = 64;

/// Which NAT a `ct(nat(...))` asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NatKind {
    Src,
    Dst,
    /// Bare `nat`: apply the connection's existing NAT, never create a binding.
    Reapply,
}

/// A decoded `nat(...)` argument of `ct()`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NatSpec {
    pub kind: NatKind,
    pub addr_min: Option<IpAddr>,
    pub addr_max: Option<IpAddr>,
    pub port_min: Option<u16>,
    pub port_max: Option<u16>,
    pub persistent: bool,
    pub hash: bool,
    pub random: bool,
}

/// One `ct()` as translation resolved it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CtAction {
    pub zone: u16,
    pub commit: bool,
    pub force: bool,
    pub nat: Option<NatSpec>,
    /// (value, mask), applied to the connection (OVS allows it only with commit).
    pub set_mark: Option<(u32, u32)>,
    /// (value, mask).
    pub set_label: Option<(u128, u128)>,
}

/// A connection's original-direction tuple, for the `ct_nw_*`/`ct_tp_*` match fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OrigTuple {
    pub proto: u8,
    pub src: IpAddr,
    pub dst: IpAddr,
    /// TCP/UDP source port; for ICMP the type (as OVS reports ct_tp_src).
    pub sport: u16,
    /// TCP/UDP destination port; for ICMP the code.
    pub dport: u16,
}

/// What `ct()` tells the pipeline about a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CtResult {
    /// [`cs`] bits; always includes TRACKED.
    pub state: u32,
    pub zone: u16,
    pub mark: u32,
    pub label: u128,
    pub orig: Option<OrigTuple>,
}

impl CtResult {
    fn invalid(zone: u16) -> Self {
        CtResult {
            state: cs::INVALID | cs::TRACKED,
            zone,
            mark: 0,
            label: 0,
            orig: None,
        }
    }
}

/// Optional tuple fields for `flush_tuple` (NXT_CT_FLUSH); `None` matches anything.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TupleFilter {
    pub proto: Option<u8>,
    pub src: Option<IpAddr>,
    pub dst: Option<IpAddr>,
    /// TCP/UDP ports.
    pub sport: Option<u16>,
    pub dport: Option<u16>,
    pub icmp_id: Option<u16>,
    pub icmp_type: Option<u8>,
    pub icmp_code: Option<u8>,
}

/// Counters the control plane shows (coverage/show style).
#[derive(Debug, Default)]
pub struct CtStats {
    /// Packets that could not be tracked or failed the protocol checks.
    pub invalid: AtomicU64,
    /// Commits refused by the global limit.
    pub full: AtomicU64,
    /// Commits refused by a zone limit.
    pub zone_full: AtomicU64,
    /// Commits refused because no NAT tuple was free.
    pub nat_exhausted: AtomicU64,
    /// Connections created.
    pub created: AtomicU64,
    /// Connections removed by expiry.
    pub expired: AtomicU64,
}

/// A connection key (one direction). IPv4 addresses use the first 4 bytes.
#[derive(Debug, Clone, Copy, Eq, PartialOrd, Ord)]
pub(crate) struct Key {
    pub src: [u8; 16],
    pub dst: [u8; 16],
    /// TCP/UDP ports; ICMP queries: the id in both.
    pub sport: u16,
    pub dport: u16,
    pub zone: u16,
    pub proto: u8,
    pub v6: bool,
    /// ICMP query type, and its reverse (the type expected from the other end).
    pub icmp_type: u8,
    pub icmp_rtype: u8,
    pub icmp_code: u8,
}

impl PartialEq for Key {
    /// Whole words instead of the derive's `bcmp` calls on the address arrays: every table
    /// probe compares keys.
    #[inline]
    fn eq(&self, o: &Key) -> bool {
        u128::from_ne_bytes(self.src) == u128::from_ne_bytes(o.src)
            && u128::from_ne_bytes(self.dst) == u128::from_ne_bytes(o.dst)
            && self.sport == o.sport
            && self.dport == o.dport
            && self.zone == o.zone
            && self.proto == o.proto
            && self.v6 == o.v6
            && self.icmp_type == o.icmp_type
            && self.icmp_rtype == o.icmp_rtype
            && self.icmp_code == o.icmp_code
    }
}

impl Hash for Key {
    /// Six words instead of the derive's byte-wise walk: this runs twice per packet.
    #[inline]
    fn hash<H: Hasher>(&self, h: &mut H) {
        let w = |b: &[u8; 16], i: usize| {
            u64::from_le_bytes([
                b[i],
                b[i + 1],
                b[i + 2],
                b[i + 3],
                b[i + 4],
                b[i + 5],
                b[i + 6],
                b[i + 7],
            ])
        };
        h.write_u64(w(&self.src, 0));
        h.write_u64(w(&self.dst, 0));
        if self.v6 {
            h.write_u64(w(&self.src, 8));
            h.write_u64(w(&self.dst, 8));
        }
        h.write_u64(
            self.sport as u64
                | (self.dport as u64) << 16
                | (self.zone as u64) << 32
                | (self.proto as u64) << 48
                | (self.v6 as u64) << 56,
        );
        h.write_u64(
            self.icmp_type as u64 | (self.icmp_rtype as u64) << 8 | (self.icmp_code as u64) << 16,
        );
    }
}

impl Key {
    pub(crate) fn reversed(&self) -> Key {
        Key {
            src: self.dst,
            dst: self.src,
            sport: self.dport,
            dport: self.sport,
            icmp_type: self.icmp_rtype,
            icmp_rtype: self.icmp_type,
            ..*self
        }
    }

    fn is_icmp(&self) -> bool {
        (self.proto == ipproto::ICMP && !self.v6) || (self.proto == ipproto::ICMPV6 && self.v6)
    }

    pub(crate) fn addr(&self, b: &[u8; 16]) -> IpAddr {
        if self.v6 {
            IpAddr::V6(Ipv6Addr::from(*b))
        } else {
            IpAddr::V4(Ipv4Addr::new(b[0], b[1], b[2], b[3]))
        }
    }

    fn orig_tuple(&self) -> OrigTuple {
        let (sport, dport) = if self.is_icmp() {
            (self.icmp_type as u16, self.icmp_code as u16)
        } else {
            (self.sport, self.dport)
        };
        OrigTuple {
            proto: self.proto,
            src: self.addr(&self.src),
            dst: self.addr(&self.dst),
            sport,
            dport,
        }
    }

    /// A hash of the key for shard selection (and NAT's choices: deterministic).
    fn hash64(&self, seed: u64) -> u64 {
        let mut h = KeyHasher(seed);
        self.hash(&mut h);
        h.finish()
    }
}

/// A small multiply-rotate hasher: keys are fixed-size and SipHash's cost shows per packet.
#[derive(Default)]
pub(crate) struct KeyHasher(u64);

const K: u64 = 0x9e37_79b9_7f4a_7c15;

impl Hasher for KeyHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut c = bytes.chunks_exact(8);
        for w in &mut c {
            let v = u64::from_le_bytes([w[0], w[1], w[2], w[3], w[4], w[5], w[6], w[7]]);
            self.0 = (self.0.rotate_left(5) ^ v).wrapping_mul(K);
        }
        for &b in c.remainder() {
            self.0 = (self.0.rotate_left(5) ^ b as u64).wrapping_mul(K);
        }
    }
    #[inline]
    fn write_u8(&mut self, i: u8) {
        self.0 = (self.0.rotate_left(5) ^ i as u64).wrapping_mul(K);
    }
    #[inline]
    fn write_u16(&mut self, i: u16) {
        self.0 = (self.0.rotate_left(5) ^ i as u64).wrapping_mul(K);
    }
    #[inline]
    fn write_u64(&mut self, i: u64) {
        self.0 = (self.0.rotate_left(5) ^ i).wrapping_mul(K);
    }
    #[inline]
    fn write_usize(&mut self, i: usize) {
        self.0 = (self.0.rotate_left(5) ^ i as u64).wrapping_mul(K);
    }
    #[inline]
    fn finish(&self) -> u64 {
        // final avalanche so the low bits (shard index) depend on every input bit
        let mut x = self.0;
        x ^= x >> 33;
        x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
        x ^= x >> 33;
        x
    }
}

/// Result of a protocol's update for one packet (OVS's ct_update_res).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Update {
    /// Established: a reply was seen.
    Valid,
    /// Still new (no reply yet).
    ValidNew,
    Invalid,
    /// The old connection is over; this packet opens a new one.
    New,
}

/// Per-protocol connection state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum L4State {
    Tcp([u8; 2]),
    /// 0 first, 1 multiple, 2 both directions seen.
    Other(u8),
    /// Whether a reply was seen.
    Icmp(bool),
}

#[derive(Debug)]
pub(crate) struct ConnState {
    pub mark: u32,
    pub label: u128,
    pub l4: L4State,
}

/// One connection; its two keys are immutable, the rest sits behind its own lock.
#[derive(Debug)]
pub(crate) struct Conn {
    pub fwd: Key,
    pub rev: Key,
    /// [`nat::NAT_SRC`] / [`nat::NAT_DST`] bits.
    pub nat: u8,
    /// Whether the connection is counted against its zone's limit.
    pub zone_counted: bool,
    /// Expiry time (ms); atomic so that lookups and sweeps need not take the lock.
    pub expires: AtomicU64,
    /// Removed from the table (a packet that still holds the Arc must not revive it).
    pub dead: AtomicBool,
    /// Non-zero once the protocol state can no longer change (UDP and other pseudo-connections
    /// that saw both directions, ICMP that saw a reply): every further packet is established
    /// and only pushes the expiry this many ms out, so the batched path answers it without
    /// the connection's lock (see [`Conntrack::batch_lookup`]).
    pub steady_ms: AtomicU32,
    /// Mark and label as last published under the lock, for lock-free readers; `ml_seq` is a
    /// sequence lock (odd while a writer changes them) so a reader never sees half a label.
    pub ml_seq: AtomicU32,
    pub mark_pub: AtomicU32,
    pub label_hi: AtomicU64,
    pub label_lo: AtomicU64,
    pub st: Mutex<ConnState>,
}

impl Conn {
    fn lock(&self) -> MutexGuard<'_, ConnState> {
        self.st.lock().unwrap_or_else(|e| e.into_inner())
    }

    #[inline]
    fn live(&self, now: u64) -> bool {
        !self.dead.load(Ordering::Acquire) && now < self.expires.load(Ordering::Relaxed)
    }

    fn new(fwd: Key, rev: Key, nat: u8, zone_counted: bool, expires: u64, l4: L4State) -> Self {
        Conn {
            fwd,
            rev,
            nat,
            zone_counted,
            expires: AtomicU64::new(expires),
            dead: AtomicBool::new(false),
            steady_ms: AtomicU32::new(0),
            ml_seq: AtomicU32::new(0),
            mark_pub: AtomicU32::new(0),
            label_hi: AtomicU64::new(0),
            label_lo: AtomicU64::new(0),
            st: Mutex::new(ConnState {
                mark: 0,
                label: 0,
                l4,
            }),
        }
    }

    /// Publishes mark and label for [`read_ml`](Self::read_ml); called with the lock held
    /// (writers are serialised by it), after they changed.
    fn publish_ml(&self, st: &ConnState) {
        let s = self.ml_seq.load(Ordering::Relaxed);
        self.ml_seq.store(s.wrapping_add(1), Ordering::Relaxed);
        std::sync::atomic::fence(Ordering::Release);
        self.mark_pub.store(st.mark, Ordering::Relaxed);
        self.label_hi
            .store((st.label >> 64) as u64, Ordering::Relaxed);
        self.label_lo.store(st.label as u64, Ordering::Relaxed);
        self.ml_seq.store(s.wrapping_add(2), Ordering::Release);
    }

    /// Mark and label without the lock (a consistent pair: retried while a writer is busy).
    #[inline]
    fn read_ml(&self) -> (u32, u128) {
        loop {
            let s1 = self.ml_seq.load(Ordering::Acquire);
            if s1 & 1 != 0 {
                std::hint::spin_loop();
                continue;
            }
            let m = self.mark_pub.load(Ordering::Relaxed);
            let hi = self.label_hi.load(Ordering::Relaxed);
            let lo = self.label_lo.load(Ordering::Relaxed);
            std::sync::atomic::fence(Ordering::Acquire);
            if self.ml_seq.load(Ordering::Relaxed) == s1 {
                return (m, (hi as u128) << 64 | lo as u128);
            }
        }
    }
}

type Map = HashMap<Key, (Arc<Conn>, bool), BuildHasherDefault<KeyHasher>>;

/// What [`Conntrack::execute_parsed`] knows of the packet's connection before it starts.
pub(crate) enum Pre {
    /// Nothing: look the key up.
    Lookup,
    /// A batch lookup found this live connection (and whether the key is its reply tuple).
    Found(Arc<Conn>, bool),
    /// A batch lookup found nothing and nothing in the batch could have created it since.
    Missed,
}

/// Creation-side state, under the `slow` lock.
#[derive(Default)]
struct Slow {
    zone_limits: HashMap<u16, u32>,
    zone_counts: HashMap<u16, u32>,
}

/// The connection tracker.
pub struct Conntrack {
    shards: Box<[Mutex<Map>]>,
    slow: Mutex<Slow>,
    n_conns: AtomicU32,
    max_conns: AtomicU32,
    seed: u64,
    stats: CtStats,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn ip16(a: IpAddr) -> ([u8; 16], bool) {
    match a {
        IpAddr::V4(v) => {
            let mut b = [0u8; 16];
            b[..4].copy_from_slice(&v.octets());
            (b, false)
        }
        IpAddr::V6(v) => (v.octets(), true),
    }
}

/// OVS userspace's default connection limit.
pub const DEFAULT_MAX_CONNS: u32 = 3_000_000;

impl Default for Conntrack {
    fn default() -> Self {
        Conntrack::new(DEFAULT_MAX_CONNS)
    }
}

impl Conntrack {
    /// A tracker holding at most `max_conns` connections (OVS userspace default: 3,000,000).
    pub fn new(max_conns: u32) -> Self {
        let shards = (0..SHARDS).map(|_| Mutex::new(Map::default())).collect();
        Conntrack {
            shards,
            slow: Mutex::new(Slow::default()),
            n_conns: AtomicU32::new(0),
            max_conns: AtomicU32::new(max_conns),
            seed: 0x5851_f42d_4c95_7f2d,
            stats: CtStats::default(),
        }
    }

    pub fn stats(&self) -> &CtStats {
        &self.stats
    }

    #[inline]
    fn shard(&self, k: &Key) -> &Mutex<Map> {
        &self.shards[self.shard_index(k)]
    }

    #[inline]
    fn shard_index(&self, k: &Key) -> usize {
        (k.hash64(self.seed) as usize) & (SHARDS - 1)
    }

    /// Finds the live connection `k` belongs to, and whether `k` is its reply tuple.
    #[inline]
    fn lookup(&self, k: &Key, now: u64) -> Option<(Arc<Conn>, bool)> {
        let m = lock(self.shard(k));
        let (c, r) = m.get(k)?;
        c.live(now).then(|| (Arc::clone(c), *r))
    }

    /// Executes one ct() on an Ethernet frame whose L3/L4 offsets are in `lay`.
    ///
    /// NAT rewrites the frame in place. Never panics on any bytes: what cannot be parsed is
    /// INVALID (and counted).
    pub fn execute(
        &self,
        frame: &mut [u8],
        lay: &crate::packet::key::Layout,
        act: &CtAction,
        now_ms: u64,
    ) -> CtResult {
        self.execute_md(frame, lay, act, now_ms, None)
    }

    /// [`execute`](Self::execute) for a packet that already went through a `ct()` (after
    /// recirculation): `prev` is the packet's ct metadata from it (ct_state, ct_zone and the
    /// ct_nw_*/ct_tp_* original tuple). In the same zone a packet NATed already is not NATed
    /// again, keeps its SRC_NAT/DST_NAT bits, and when its (translated) tuple no longer finds
    /// the connection it is found by the original tuple (OVS's check_orig_tuple). This is
    /// what OVN's `ct_commit` after `ct_lb`/`ct_dnat` in the same zone relies on: without it
    /// the commit would create a second connection for the translated tuple.
    pub fn execute_md(
        &self,
        frame: &mut [u8],
        lay: &crate::packet::key::Layout,
        act: &CtAction,
        now_ms: u64,
        prev: Option<&CtResult>,
    ) -> CtResult {
        let p = match parse::parse(frame, lay.l3 as usize, lay.ip_version, act.zone) {
            Ok(p) => p,
            Err(_) => {
                self.stats.invalid.fetch_add(1, Ordering::Relaxed);
                return CtResult::invalid(act.zone);
            }
        };
        self.execute_parsed(frame, &p, act, now_ms, prev, Pre::Lookup)
    }

    /// The part of [`execute_md`](Self::execute_md) after parsing. `pre` is what a lookup of
    /// `p.key` earlier in the same batch found ([`batch_lookup`](Self::batch_lookup)); a hit
    /// whose connection died since is looked up again.
    fn execute_parsed(
        &self,
        frame: &mut [u8],
        p: &parse::Parsed,
        act: &CtAction,
        now_ms: u64,
        prev: Option<&CtResult>,
        pre: Pre,
    ) -> CtResult {
        let zone = act.zone;
        let nat_bits = cs::SRC_NAT | cs::DST_NAT;
        let prev_nat = prev
            .filter(|r| r.zone == zone && r.state & cs::TRACKED != 0 && r.state & nat_bits != 0);
        let mut state: u32 = prev_nat.map_or(0, |r| r.state & nat_bits);
        let mut conn = match pre {
            Pre::Found(c, r) if !c.dead.load(Ordering::Acquire) => Some((c, r)),
            Pre::Missed => None,
            _ => self.lookup(&p.key, now_ms),
        };
        // also when this ct() carries a nat(): OVN commits with `nat(src)` (zero SNAT) after
        // `ct_lb`'s DNAT in the same zone, and OVS then reuses the packet's cached connection
        // (conntrack_execute's md.conn) rather than creating one for the translated tuple
        if conn.is_none() && !p.related {
            if let Some(o) = prev_nat.and_then(|r| r.orig) {
                conn = self.lookup_orig(p, &o, now_ms);
            }
        }
        if act.force {
            if let Some((c, true)) = &conn {
                // force: a connection found in the wrong direction is ended first
                self.remove_conn(c);
                conn = None;
            }
        }
        let mut create = false;
        let mut created = false;
        let mut seen: Option<(u32, u128)> = None;
        if let Some((c, reply)) = &conn {
            if p.related {
                state |= cs::RELATED;
                if *reply {
                    state |= cs::REPLY_DIR;
                }
            } else {
                let (res, mark, label) = self.update(c, p, *reply, now_ms, act);
                seen = Some((mark, label));
                match res {
                    Update::Valid => {
                        state |= cs::ESTABLISHED;
                        if *reply {
                            state |= cs::REPLY_DIR;
                        }
                    }
                    Update::ValidNew => state |= cs::NEW,
                    Update::Invalid => state = cs::INVALID,
                    Update::New => {
                        self.remove_conn(c);
                        create = true;
                    }
                }
            }
            if state & cs::INVALID == 0
                && !create
                && act.nat.is_some()
                && c.nat != 0
                && prev_nat.is_none()
            {
                state |= self.apply_nat(frame, p, c, *reply);
            }
        } else if p.related {
            state = cs::INVALID; // an error about nothing we track
        } else {
            create = true;
        }
        if create {
            conn = None;
            if !self.valid_new(p) {
                state = cs::INVALID;
            } else {
                state = cs::NEW;
                if act.commit {
                    if let Some((c, s)) = self.create(frame, p, act, now_ms) {
                        state |= s;
                        conn = Some((c, false));
                        created = true;
                    }
                }
            }
        }
        if state & cs::INVALID != 0 {
            self.stats.invalid.fetch_add(1, Ordering::Relaxed);
            return CtResult::invalid(zone);
        }
        let mut r = CtResult {
            state: state | cs::TRACKED,
            zone,
            mark: 0,
            label: 0,
            orig: Some(p.key.orig_tuple()),
        };
        if let Some((c, _)) = &conn {
            (r.mark, r.label) = match seen {
                // `update` applied and read them under its lock (the common case)
                Some(ml) if !created => ml,
                _ => {
                    let mut st = c.lock();
                    if let Some((v, m)) = act.set_mark {
                        st.mark = v | (st.mark & !m);
                    }
                    if let Some((v, m)) = act.set_label {
                        st.label = v | (st.label & !m);
                    }
                    if act.set_mark.is_some() || act.set_label.is_some() {
                        c.publish_ml(&st);
                    }
                    (st.mark, st.label)
                }
            };
            r.orig = Some(c.fwd.orig_tuple());
        }
        r
    }

    /// Finds a connection by a packet's earlier original tuple (see `execute_md`); the match is
    /// always in the original direction.
    fn lookup_orig(&self, p: &parse::Parsed, o: &OrigTuple, now: u64) -> Option<(Arc<Conn>, bool)> {
        let (src, v6a) = ip16(o.src);
        let (dst, v6b) = ip16(o.dst);
        if v6a != p.v6 || v6b != p.v6 || o.proto != p.key.proto {
            return None;
        }
        let mut k = Key {
            src,
            dst,
            sport: o.sport,
            dport: o.dport,
            zone: p.key.zone,
            proto: o.proto,
            v6: p.v6,
            icmp_type: 0,
            icmp_rtype: 0,
            icmp_code: 0,
        };
        if k.is_icmp() {
            k.sport = p.key.sport;
            k.dport = p.key.dport;
            k.icmp_type = o.sport as u8;
            k.icmp_rtype = parse::reverse_icmp_type(p.v6, k.icmp_type);
            k.icmp_code = o.dport as u8;
        }
        self.lookup(&k, now).map(|(c, _)| (c, false))
    }

    fn valid_new(&self, p: &parse::Parsed) -> bool {
        match p.key.proto {
            ipproto::TCP => tcp::valid_new(p.tcp_flags),
            _ if p.key.is_icmp() => parse::icmp_valid_new(p.v6, p.icmp_type),
            _ => true,
        }
    }

    /// Runs the protocol state machine of `c` for a packet, refreshes the expiry, and applies
    /// the action's mark and label (all under one lock).
    fn update(
        &self,
        c: &Conn,
        p: &parse::Parsed,
        reply: bool,
        now: u64,
        act: &CtAction,
    ) -> (Update, u32, u128) {
        let mut st = c.lock();
        if let Some((v, m)) = act.set_mark {
            st.mark = v | (st.mark & !m);
        }
        if let Some((v, m)) = act.set_label {
            st.label = v | (st.label & !m);
        }
        if act.set_mark.is_some() || act.set_label.is_some() {
            c.publish_ml(&st);
        }
        let (res, t) = match &mut st.l4 {
            L4State::Tcp(peers) => tcp::update(peers, reply, p.tcp_flags),
            L4State::Other(s) => {
                if reply && *s != 2 {
                    *s = 2;
                } else if *s == 0 {
                    *s = 1;
                }
                let t = [
                    timeouts::OTHER_FIRST,
                    timeouts::OTHER_MULTIPLE,
                    timeouts::OTHER_BIDIR,
                ][*s as usize];
                (
                    if *s == 2 {
                        Update::Valid
                    } else {
                        Update::ValidNew
                    },
                    t,
                )
            }
            L4State::Icmp(replied) => {
                if reply {
                    *replied = true;
                }
                if *replied {
                    (Update::Valid, timeouts::ICMP_REPLY)
                } else {
                    (Update::ValidNew, timeouts::ICMP_FIRST)
                }
            }
        };
        if res == Update::Valid || res == Update::ValidNew {
            c.expires.store(now.saturating_add(t), Ordering::Relaxed);
        }
        if res == Update::Valid && matches!(st.l4, L4State::Other(2) | L4State::Icmp(true)) {
            // from here on every packet is established with this timeout
            c.steady_ms.store(t as u32, Ordering::Relaxed);
        }
        (res, st.mark, st.label)
    }

    /// NAT for a packet of an existing connection; returns the SRC_NAT/DST_NAT bit to report
    /// (OVS reports the translation the packet underwent: a reply of an SNAT connection has its
    /// destination translated).
    fn apply_nat(&self, frame: &mut [u8], p: &parse::Parsed, c: &Conn, reply: bool) -> u32 {
        if p.related {
            nat::nat_related(frame, p, c, reply);
        } else {
            nat::nat_packet(frame, p, c, reply);
        }
        let (src, dst) = if reply {
            (c.nat & nat::NAT_DST != 0, c.nat & nat::NAT_SRC != 0)
        } else {
            (c.nat & nat::NAT_SRC != 0, c.nat & nat::NAT_DST != 0)
        };
        if src {
            cs::SRC_NAT
        } else if dst {
            cs::DST_NAT
        } else {
            0
        }
    }

    /// Commits a new connection for `p` (limits, NAT binding, both table entries). Returns the
    /// connection and extra state bits, or None when a limit or NAT exhaustion refused it.
    fn create(
        &self,
        frame: &mut [u8],
        p: &parse::Parsed,
        act: &CtAction,
        now: u64,
    ) -> Option<(Arc<Conn>, u32)> {
        let mut slow = lock(&self.slow);
        // another thread may have created it meanwhile
        if self.lookup(&p.key, now).is_some() {
            return None;
        }
        let limit = slow.zone_limits.get(&p.key.zone).copied();
        if let Some(l) = limit {
            if slow.zone_counts.get(&p.key.zone).copied().unwrap_or(0) >= l {
                self.stats.zone_full.fetch_add(1, Ordering::Relaxed);
                return None;
            }
        }
        if self.n_conns.load(Ordering::Relaxed) >= self.max_conns.load(Ordering::Relaxed) {
            self.stats.full.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        let fwd = p.key;
        let mut rev = fwd.reversed();
        let mut nat_bits = 0u8;
        if let Some(spec) = &act.nat {
            match spec.kind {
                NatKind::Src => nat_bits = nat::NAT_SRC,
                NatKind::Dst => nat_bits = nat::NAT_DST,
                NatKind::Reapply => {}
            }
            if nat_bits != 0 {
                match self.nat_choose(&fwd, spec, nat_bits, now) {
                    Some(r) => rev = r,
                    None => {
                        self.stats.nat_exhausted.fetch_add(1, Ordering::Relaxed);
                        return None;
                    }
                }
            }
        }
        // stale (expired or dead) entries under either key go first
        for k in [&fwd, &rev] {
            let old = lock(self.shard(k)).get(k).map(|(c, _)| Arc::clone(c));
            if let Some(old) = old {
                self.remove_locked(&mut slow, &old);
            }
        }
        let (l4, t) = if fwd.proto == ipproto::TCP {
            let (peers, t) = tcp::new_conn(p.tcp_flags);
            (L4State::Tcp(peers), t)
        } else if fwd.is_icmp() {
            (L4State::Icmp(false), timeouts::ICMP_FIRST)
        } else {
            (L4State::Other(0), timeouts::OTHER_FIRST)
        };
        let c = Arc::new(Conn::new(
            fwd,
            rev,
            nat_bits,
            limit.is_some(),
            now.saturating_add(t),
            l4,
        ));
        lock(self.shard(&fwd)).insert(fwd, (Arc::clone(&c), false));
        lock(self.shard(&rev)).insert(rev, (Arc::clone(&c), true));
        self.n_conns.fetch_add(1, Ordering::Relaxed);
        if limit.is_some() {
            *slow.zone_counts.entry(fwd.zone).or_insert(0) += 1;
        }
        self.stats.created.fetch_add(1, Ordering::Relaxed);
        drop(slow);
        let mut bits = 0;
        if nat_bits != 0 {
            nat::nat_packet(frame, p, &c, false);
            bits = if nat_bits == nat::NAT_SRC {
                cs::SRC_NAT
            } else {
                cs::DST_NAT
            };
        }
        Some((c, bits))
    }

    /// Whether a reply tuple is taken by a live connection (under the slow lock).
    fn taken(&self, k: &Key, now: u64) -> bool {
        self.lookup(k, now).is_some()
    }

    /// Chooses the reply tuple of a new NAT connection (OVS's nat_get_unique_tuple): an address
    /// in the range by hash, then a port: the requested range (DNAT: destination port range
    /// first), else the sender's port and on collision the rest of its ephemeral class.
    fn nat_choose(&self, fwd: &Key, spec: &NatSpec, kind: u8, now: u64) -> Option<Key> {
        let mut rev = fwd.reversed();
        let snat = kind == nat::NAT_SRC;
        // address
        let orig_addr = if snat { fwd.src } else { fwd.dst };
        let addr = match (spec.addr_min, spec.addr_max.or(spec.addr_min)) {
            (Some(lo), Some(hi)) => {
                let (lo, v6lo) = ip16(lo);
                let (hi, _) = ip16(hi);
                if v6lo != fwd.v6 {
                    orig_addr
                } else {
                    let h = {
                        let mut k = *fwd;
                        if spec.persistent {
                            k.sport = 0;
                        }
                        k.hash64(0x1234_5678)
                    };
                    addr_in_range(&lo, &hi, fwd.v6, h)
                }
            }
            _ => orig_addr,
        };
        if snat {
            rev.dst = addr;
        } else {
            rev.src = addr;
        }
        let pat = matches!(
            fwd.proto,
            ipproto::TCP | ipproto::UDP | ipproto::SCTP | ipproto::ICMP
        ) && (fwd.proto != ipproto::ICMP || !fwd.v6);
        if !pat {
            return (!self.taken(&rev, now)).then_some(rev);
        }
        let off = if spec.random {
            // not cryptographic: spreads ports like OVS's random_uint32 would
            fwd.hash64(now ^ 0x9e37)
        } else {
            fwd.hash64(0xabcd)
        } as u32;
        let prange = match (spec.port_min, spec.port_max.or(spec.port_min)) {
            (Some(lo), Some(hi)) if lo != 0 && hi >= lo => Some((lo, hi)),
            _ => None,
        };
        let icmp = fwd.proto == ipproto::ICMP;
        // DNAT with a port range: vary the destination (backend) port first (not for ICMP:
        // its id is one field for both ends, a "destination port" makes no sense)
        if !snat && !icmp {
            if let Some((lo, hi)) = prange {
                let cur = lo + (off % ((hi - lo) as u32 + 1)) as u16;
                if let Some(k) = self.unique_port(rev, cur, lo, hi, true, icmp, now) {
                    return Some(k);
                }
                rev.sport = cur;
            }
        }
        // the source port: the SNAT range, else the sender's port and its ephemeral class
        let (cur, lo, hi) = match prange {
            Some((lo, hi)) if snat => (lo + (off % ((hi - lo) as u32 + 1)) as u16, lo, hi),
            _ => {
                let cur = fwd.sport;
                let (lo, hi) = if cur < 512 {
                    (1, 511)
                } else if cur < 1024 {
                    (600, 1023)
                } else {
                    (1024, 65535)
                };
                (cur, lo, hi)
            }
        };
        self.unique_port(rev, cur, lo, hi, false, icmp, now)
    }

    /// Tries ports from `cur` to `hi`, then `lo` up, at most 128 (then fewer random) attempts,
    /// setting the reply tuple's source (`dst_side`: the backend port) or destination port.
    #[allow(clippy::too_many_arguments)]
    fn unique_port(
        &self,
        mut rev: Key,
        cur: u16,
        lo: u16,
        hi: u16,
        dst_side: bool,
        icmp: bool,
        now: u64,
    ) -> Option<Key> {
        let range = (hi - lo) as u32 + 1;
        let cur = if cur < lo || cur > hi { lo } else { cur };
        let attempts = range.min(128);
        for i in 0..attempts {
            let port = (lo as u32 + ((cur - lo) as u32 + i) % range) as u16;
            if dst_side {
                rev.sport = port;
            } else {
                rev.dport = port;
                if icmp {
                    rev.sport = port; // the ICMP id is both "ports"
                }
            }
            if !self.taken(&rev, now) {
                return Some(rev);
            }
        }
        // a large range: try a few pseudo-random places further away
        if range > 128 {
            let mut x = (cur as u32).wrapping_mul(2_654_435_761) ^ range;
            for _ in 0..64 {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                let port = (lo as u32 + x % range) as u16;
                if dst_side {
                    rev.sport = port;
                } else {
                    rev.dport = port;
                    if icmp {
                        rev.sport = port;
                    }
                }
                if !self.taken(&rev, now) {
                    return Some(rev);
                }
            }
        }
        None
    }

    /// Removes `c` (both entries) if it is still in the table.
    fn remove_conn(&self, c: &Arc<Conn>) {
        let mut slow = lock(&self.slow);
        self.remove_locked(&mut slow, c);
    }

    fn remove_locked(&self, slow: &mut Slow, c: &Arc<Conn>) -> bool {
        let mut removed = false;
        for k in [&c.fwd, &c.rev] {
            let mut m = lock(self.shard(k));
            if m.get(k).is_some_and(|(e, _)| Arc::ptr_eq(e, c)) {
                m.remove(k);
                removed = true;
            }
        }
        if removed {
            c.dead.store(true, Ordering::Release);
            self.n_conns.fetch_sub(1, Ordering::Relaxed);
            if c.zone_counted {
                if let Some(n) = slow.zone_counts.get_mut(&c.fwd.zone) {
                    *n = n.saturating_sub(1);
                }
            }
        }
        removed
    }

    /// The connections (one Arc each, from their original-direction entry) that `pred` selects.
    fn select(&self, mut pred: impl FnMut(&Conn) -> bool) -> Vec<Arc<Conn>> {
        let mut v = Vec::new();
        for s in self.shards.iter() {
            let m = lock(s);
            for (c, reply) in m.values() {
                if !*reply && pred(c) {
                    v.push(Arc::clone(c));
                }
            }
        }
        v
    }

    fn remove_all(&self, v: &[Arc<Conn>]) -> usize {
        let mut slow = lock(&self.slow);
        v.iter()
            .filter(|c| self.remove_locked(&mut slow, c))
            .count()
    }

    /// Drops expired connections (the control thread calls this about every second).
    pub fn sweep(&self, now_ms: u64) -> usize {
        let v = self.select(|c| now_ms >= c.expires.load(Ordering::Relaxed));
        let n = self.remove_all(&v);
        self.stats.expired.fetch_add(n as u64, Ordering::Relaxed);
        n
    }

    /// Removes every connection, or those of one zone (dpctl/flush-conntrack, NXT_CT_FLUSH_ZONE).
    pub fn flush(&self, zone: Option<u16>) -> usize {
        let v = self.select(|c| zone.is_none_or(|z| c.fwd.zone == z));
        self.remove_all(&v)
    }

    /// Removes the connections of `zone` whose original and reply tuples match the filters
    /// (NXT_CT_FLUSH).
    pub fn flush_tuple(&self, zone: u16, orig: &TupleFilter, reply: &TupleFilter) -> usize {
        let v = self.select(|c| {
            c.fwd.zone == zone && tuple_matches(&c.fwd, orig) && tuple_matches(&c.rev, reply)
        });
        self.remove_all(&v)
    }

    /// Snapshot of the live connections for dumps.
    pub(crate) fn snapshot(&self, zone: Option<u16>) -> Vec<fmt::Entry> {
        let mut out = Vec::new();
        for s in self.shards.iter() {
            let m = lock(s);
            for (c, reply) in m.values() {
                if *reply || zone.is_some_and(|z| c.fwd.zone != z) {
                    continue;
                }
                if c.dead.load(Ordering::Acquire) {
                    continue;
                }
                let st = c.lock();
                out.push(fmt::Entry {
                    fwd: c.fwd,
                    rev: c.rev,
                    mark: st.mark,
                    label: st.label,
                    l4: st.l4,
                    expires: c.expires.load(Ordering::Relaxed),
                });
            }
        }
        out
    }

    /// dpctl/dump-conntrack lines in ovs-appctl's format, sorted.
    pub fn dump(&self, zone: Option<u16>) -> Vec<String> {
        let mut v: Vec<String> = self.snapshot(zone).iter().map(fmt::entry_line).collect();
        v.sort();
        v
    }

    /// dpctl/ct-stats-show text.
    pub fn stats_show(&self) -> String {
        fmt::stats_show(&self.snapshot(None))
    }

    pub fn set_maxconns(&self, n: u32) {
        self.max_conns.store(n, Ordering::Relaxed);
    }

    pub fn maxconns(&self) -> u32 {
        self.max_conns.load(Ordering::Relaxed)
    }

    /// Connections in the table (including expired ones not swept yet).
    pub fn count(&self) -> u32 {
        self.n_conns.load(Ordering::Relaxed)
    }

    /// Sets (Some) or removes (None) a zone's connection limit (dpctl/ct-set-limits). The zone's
    /// current connections are counted from now on.
    pub fn set_zone_limit(&self, zone: u16, limit: Option<u32>) {
        let mut slow = lock(&self.slow);
        match limit {
            Some(l) => {
                if slow.zone_limits.insert(zone, l).is_none() {
                    // start counting: existing connections of the zone count too
                    let n = self.select(|c| c.fwd.zone == zone).len() as u32;
                    slow.zone_counts.insert(zone, n);
                }
            }
            None => {
                slow.zone_limits.remove(&zone);
                slow.zone_counts.remove(&zone);
            }
        }
    }

    /// All zone limits as (zone, limit, count), sorted by zone (dpctl/ct-get-limits).
    pub fn zone_limits(&self) -> Vec<(u16, u32, u32)> {
        let slow = lock(&self.slow);
        let mut v: Vec<_> = slow
            .zone_limits
            .iter()
            .map(|(z, l)| (*z, *l, slow.zone_counts.get(z).copied().unwrap_or(0)))
            .collect();
        v.sort_unstable();
        v
    }

    /// A zone's limit and its current count.
    pub fn zone_limit(&self, zone: u16) -> Option<(u32, u32)> {
        let slow = lock(&self.slow);
        let l = *slow.zone_limits.get(&zone)?;
        Some((l, slow.zone_counts.get(&zone).copied().unwrap_or(0)))
    }
}

/// The address `hash % size` into [lo, hi] (IPv6: the range must fit 64 bits for coverage).
fn addr_in_range(lo: &[u8; 16], hi: &[u8; 16], v6: bool, h: u64) -> [u8; 16] {
    let mut out = [0u8; 16];
    if v6 {
        let l = u128::from_be_bytes(*lo);
        let hv = u128::from_be_bytes(*hi).max(l);
        let size = (hv - l).saturating_add(1);
        out = (l + (h as u128) % size).to_be_bytes();
    } else {
        let l = u32::from_be_bytes([lo[0], lo[1], lo[2], lo[3]]);
        let hv = u32::from_be_bytes([hi[0], hi[1], hi[2], hi[3]]).max(l);
        let size = (hv - l) as u64 + 1;
        out[..4].copy_from_slice(&(l + (h % size) as u32).to_be_bytes());
    }
    out
}

fn tuple_matches(k: &Key, f: &TupleFilter) -> bool {
    let addr_ok = |want: Option<IpAddr>, have: &[u8; 16]| {
        want.is_none_or(|a| {
            let (b, v6) = ip16(a);
            v6 == k.v6 && &b == have
        })
    };
    if f.proto.is_some_and(|p| p != k.proto) || !addr_ok(f.src, &k.src) || !addr_ok(f.dst, &k.dst) {
        return false;
    }
    if k.is_icmp() {
        f.icmp_id.is_none_or(|i| i == k.sport)
            && f.icmp_type.is_none_or(|t| t == k.icmp_type)
            && f.icmp_code.is_none_or(|c| c == k.icmp_code)
    } else {
        f.sport.is_none_or(|p| p == k.sport) && f.dport.is_none_or(|p| p == k.dport)
    }
}
