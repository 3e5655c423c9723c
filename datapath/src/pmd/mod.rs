//! Poll-mode threads.
//!
//! Each PMD owns a set of AF_XDP sockets (one per (port, queue) it serves) and the UMEM pools they
//! share. Sockets in one pool exchange frames without copying: a frame received on one port is
//! put straight on another port's TX ring. A round is: RX bursts from every owned queue → flow-key
//! extraction of the whole burst (exact-match entries prefetched) → cache lookup (translation
//! only on a miss) → actions, with TX staged per output socket; a `ct(table=N)` ending a pass is
//! deferred and run for the burst at once (`Pmd::flush_ct`), then the burst recirculates →
//! one flush (and one wake-up syscall) per socket → completions back to the free list → fill
//! rings topped up. Nothing on that path allocates or logs; the tracker takes one lock per shard
//! per batch.
//!
//! When a PMD must transmit on a port whose socket another PMD owns (fewer queues than PMDs), the
//! packet crosses over a bounded handoff ring ([`handoff`]) and the owner transmits it.

pub mod handoff;

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;

use afxdp::{socket::BindMode, Umem, XdpDesc, XskSocket};
use arc_swap::ArcSwap;

use crate::cache;
use crate::cache::FlowCache;
use crate::config::IdlePolicy;
use crate::packet::edit;
use crate::packet::key::{self, FlowKey, Layout};
use crate::packet::Malformed;
use crate::pipeline::learn::Learned;
use crate::pipeline::tables::Pipeline;
use crate::pipeline::xlate::{self, XlateDrop, XlateIn, XlateOut};
use crate::pipeline::{mac::MacTable, DpAction, DpConfig, DpPort, PacketInSpec, MAX_PORTS};
use crate::port::{PortError, XdpPort};
use crate::stats::{clock, Cov, CovCounters, PmdCounters, PmdStat, PortCounters, PortStat};

/// State shared by the control thread and every PMD.
pub struct Shared {
    /// Bumped whenever something a cached decision may depend on changes.
    pub generation: AtomicU64,
    pub config: ArcSwap<DpConfig>,
    /// The OpenFlow tables of every bridge.
    pub pipeline: ArcSwap<Pipeline>,
    pub macs: MacTable,
    pub quit: AtomicBool,
    /// Seconds since start, maintained by the control thread (MAC aging, flow ages).
    pub now_sec: AtomicU32,
    /// The connection tracker every PMD's `ct()` actions use.
    pub conntrack: crate::conntrack::Conntrack,
    /// Frozen states of `ct(table=N)` recirculations.
    pub recirc: crate::pipeline::recirc::RecircTable,
    /// Whether PMDs put an exact-match cache in front of their megaflow caches (`--emc`,
    /// `dpif-netdev/emc on|off`); applied at the next invalidation.
    pub emc: AtomicBool,
    /// What the latest generation bumps invalidated, oldest first, so that a PMD drops only
    /// the cached flows a flow mod can affect. Read by PMDs only when the generation moved
    /// (a control-path event), never per packet.
    scopes: std::sync::Mutex<std::collections::VecDeque<(u64, Scope)>>,
    /// Bumped by the control thread when the set of ports with an armed live-migration gate
    /// changes: each PMD then re-orders its RX sockets (gated ports first), no cache flush.
    pub rx_order: AtomicU64,
}

/// What one invalidation covers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// Every cached flow (ports, groups, meters, MACs, tunnels, gates... changed).
    All,
    /// The cached flows whose translation looked up one of these tables
    /// (`xlate::table_tag` bits): only flow tables changed.
    Tables([u64; 4]),
}

impl Scope {
    /// Both changes together.
    pub fn union(self, other: Scope) -> Scope {
        match (self, other) {
            (Scope::Tables(a), Scope::Tables(b)) => {
                Scope::Tables(std::array::from_fn(|i| a[i] | b[i]))
            }
            _ => Scope::All,
        }
    }
}

/// The coverage counter of a frame dropped as malformed.
fn malformed_cov(m: Malformed) -> Cov {
    match m {
        Malformed::Truncated => Cov::DropMalformedTruncated,
        Malformed::BadLength => Cov::DropMalformedLength,
        Malformed::BadHeader => Cov::DropMalformedHeader,
    }
}

/// Invalidations remembered for PMDs that have not caught up; one further behind flushes all.
const SCOPE_LOG: usize = 256;

impl Shared {
    pub fn new(config: DpConfig) -> Self {
        Shared {
            generation: AtomicU64::new(1),
            config: ArcSwap::from_pointee(config),
            pipeline: ArcSwap::from_pointee(Pipeline::default()),
            macs: MacTable::new(32768),
            quit: AtomicBool::new(false),
            now_sec: AtomicU32::new(0),
            conntrack: crate::conntrack::Conntrack::new(crate::conntrack::DEFAULT_MAX_CONNS),
            recirc: Default::default(),
            emc: AtomicBool::new(true),
            scopes: Default::default(),
            rx_order: AtomicU64::new(0),
        }
    }

    /// Invalidates every cached flow in every PMD (they clear before their next packet).
    pub fn invalidate(&self) {
        self.invalidate_scope(Scope::All);
    }

    /// Invalidates the cached flows `scope` covers (before each PMD's next packet).
    pub fn invalidate_scope(&self, scope: Scope) {
        let mut log = self.scopes.lock().unwrap_or_else(|e| e.into_inner());
        // bumped under the lock: the log holds an entry for every generation it covers
        let g = self.generation.fetch_add(1, Ordering::SeqCst) + 1;
        log.push_back((g, scope));
        if log.len() > SCOPE_LOG {
            log.pop_front();
        }
    }

    /// Everything invalidated after generation `seen`: (the generation it brings a PMD to,
    /// the union of the scopes). All when the log no longer reaches back to `seen`.
    pub fn invalidated_since(&self, seen: u64) -> (u64, Scope) {
        let log = self.scopes.lock().unwrap_or_else(|e| e.into_inner());
        let now = self.generation.load(Ordering::SeqCst);
        if now <= seen {
            return (now, Scope::Tables([0; 4]));
        }
        if log.front().is_none_or(|&(g, _)| g > seen + 1) {
            return (now, Scope::All);
        }
        let scope = log
            .iter()
            .filter(|&&(g, _)| g > seen)
            .fold(Scope::Tables([0; 4]), |acc, &(_, s)| acc.union(s));
        (now, scope)
    }
}

/// What the control thread sees of one PMD: counters and identity.
pub struct PmdHandle {
    pub id: usize,
    pub core: Option<usize>,
    pub idle: IdlePolicy,
    pub stats: PmdCounters,
    pub cov: CovCounters,
    pub ports: Box<[PortCounters]>,
    pub waker: Arc<handoff::Waker>,
    pub clear_request: AtomicBool,
    /// `dpctl/dump-flows`: the control thread bumps `dump_req`; the PMD formats its megaflows
    /// into `dump` (lock taken only then, never per packet) and copies it to `dump_done`.
    pub dump_req: AtomicU64,
    pub dump_done: AtomicU64,
    pub dump: std::sync::Mutex<Vec<String>>,
    /// The generation this PMD had seen at the start of its latest round: everything
    /// published before it is in effect for the packets it forwards now (barriers wait on it).
    pub seen_gen: AtomicU64,
    /// Set while the PMD naps or blocks between rounds: it reads the generation again before
    /// it forwards anything, so a barrier need not wait for it (SeqCst on both sides: the
    /// control thread stores the generation then reads this; the PMD clears this then reads
    /// the generation).
    pub quiescent: AtomicBool,
    /// Counter folding: the control thread bumps `fold_req`; the PMD credits its megaflows'
    /// hits to their OpenFlow rules and copies it to `fold_done`.
    pub fold_req: AtomicU64,
    pub fold_done: AtomicU64,
    /// (port name, queue, zero-copy) served by this PMD, for display.
    pub rxqs: std::sync::Mutex<Vec<(String, u32, bool)>>,
    /// Runtime port changes: the control thread queues [`Reconf`]s in `reconf` and bumps
    /// `reconf_req`; the PMD applies them between rounds (the mutex is taken only then, never
    /// per packet) and copies `reconf_req` to `reconf_done`. Sockets and UMEMs travel inside
    /// the requests and are dropped by the PMD itself, so nothing it polls can be freed under
    /// it; the acknowledgement tells the control thread the PMD no longer uses the port.
    pub reconf: std::sync::Mutex<Vec<Reconf>>,
    pub reconf_req: AtomicU64,
    pub reconf_done: AtomicU64,
}

/// A change to the ports a PMD serves, applied by the PMD between rounds.
pub enum Reconf {
    /// Start transmitting on (and, with `part`, receiving from) port `dp`. `owner` is the PMD
    /// that holds the port's queue 0: PMDs without a socket on the port hand packets to it.
    AddPort {
        dp: DpPort,
        part: Option<PortPart>,
        owner: Option<usize>,
    },
    /// Stop using port `dp`: its sockets are closed and the pools only they used are freed.
    DelPort { dp: DpPort },
}

/// The sockets (and the pools they own) a PMD gets for a port added at runtime. Such a port's
/// pools are its own, so removing it later frees them without touching other ports' frames.
pub struct PortPart {
    pools: Vec<Pool>,
    socks: Vec<Sock>,
}

impl PmdHandle {
    pub fn new(id: usize, core: Option<usize>, idle: IdlePolicy) -> std::io::Result<Self> {
        Ok(PmdHandle {
            id,
            core,
            idle,
            stats: PmdCounters::default(),
            cov: CovCounters::default(),
            ports: (0..MAX_PORTS).map(|_| PortCounters::default()).collect(),
            waker: Arc::new(handoff::Waker::new()?),
            clear_request: AtomicBool::new(false),
            dump_req: AtomicU64::new(0),
            dump_done: AtomicU64::new(0),
            dump: std::sync::Mutex::new(Vec::new()),
            seen_gen: AtomicU64::new(0),
            quiescent: AtomicBool::new(false),
            fold_req: AtomicU64::new(0),
            fold_done: AtomicU64::new(0),
            rxqs: std::sync::Mutex::new(Vec::new()),
            reconf: std::sync::Mutex::new(Vec::new()),
            reconf_req: AtomicU64::new(0),
            reconf_done: AtomicU64::new(0),
        })
    }
}

/// Frames kept back from fill rings for TX copies (floods, cross-pool outputs, handoffs).
const RESERVE: usize = 512;
/// Staged TX descriptors per socket before a forced flush.
const STAGE: usize = 256;
pub const MAX_BATCH: usize = 256;

struct Pool {
    umem: Umem,
    free: Vec<u64>,
    total: u32,
    owner: usize,
    zerocopy: bool,
}

impl Pool {
    #[inline(always)]
    fn put(&mut self, addr: u64) {
        if self.free.len() < self.free.capacity() {
            let b = self.umem.frame_base(addr);
            self.free.push(b);
        }
    }
    #[inline(always)]
    fn take(&mut self) -> Option<u64> {
        self.free.pop()
    }
}

struct Sock {
    xsk: XskSocket,
    pool: usize,
    port: DpPort,
    queue: u32,
    rx: bool,
    csum: bool,
    fill_out: u32,
    tx_out: u32,
    stage: Vec<XdpDesc>,
}

#[derive(Clone, Copy)]
enum TxRoute {
    None,
    Local(usize),
    Remote(usize),
}

/// Builds one PMD's pools and sockets in the control thread before the PMD thread starts.
pub struct PmdBuilder {
    pub handle: Arc<PmdHandle>,
    shared: Arc<Shared>,
    pools: Vec<Pool>,
    socks: Vec<Sock>,
    spare: Option<Umem>,
    frames: u32,
    frame_size: u32,
    ring: u32,
    batch: u32,
    out: Vec<(usize, handoff::Producer)>,
    inbox: Vec<handoff::Consumer>,
    pin: Option<handoff::Producer<PinMeta>>,
    exec_in: Option<handoff::Consumer<Option<Arc<ExecJob>>>>,
    learn: Option<handoff::Producer<LearnMsg, 0>>,
}

/// Headroom left in front of received packets, room for tunnel headers later.
pub const HEADROOM: u32 = 256;

impl PmdBuilder {
    pub fn new(
        handle: Arc<PmdHandle>,
        shared: Arc<Shared>,
        frames: u32,
        frame_size: u32,
        ring: u32,
        batch: u32,
    ) -> Self {
        PmdBuilder {
            handle,
            shared,
            pools: Vec::new(),
            socks: Vec::new(),
            spare: None,
            frames,
            frame_size,
            ring,
            batch,
            out: Vec::new(),
            inbox: Vec::new(),
            pin: None,
            exec_in: None,
            learn: None,
        }
    }

    /// Where this PMD's learn requests go.
    pub fn set_learn(&mut self, p: handoff::Producer<LearnMsg, 0>) {
        self.learn = Some(p);
    }

    /// Where packet-outs for this PMD come from.
    pub fn set_exec_in(&mut self, c: handoff::Consumer<Option<Arc<ExecJob>>>) {
        self.exec_in = Some(c);
    }

    /// Where this PMD's packet-ins go.
    pub fn set_packet_in(&mut self, p: handoff::Producer<PinMeta>) {
        self.pin = Some(p);
    }

    fn new_umem(&mut self, port: &str) -> Result<Umem, PortError> {
        if let Some(u) = self.spare.take() {
            return Ok(u);
        }
        Umem::new(self.frames, self.frame_size, HEADROOM, false).map_err(|source| PortError::Xdp {
            port: port.to_string(),
            source,
        })
    }

    /// Makes a pool of `umem` whose owner is the socket the caller pushes next.
    fn add_pool(&mut self, umem: Umem, zerocopy: bool) -> usize {
        let total = umem.frames();
        let mut free = Vec::with_capacity(total as usize);
        for i in (0..total).rev() {
            free.push(i as u64 * umem.frame_size() as u64);
        }
        self.pools.push(Pool {
            umem,
            free,
            total,
            owner: self.socks.len(),
            zerocopy,
        });
        self.pools.len() - 1
    }

    /// Opens the socket for `port`'s queue `queue` in this PMD, zero-copy when the port wants and
    /// the driver allows it, else copy mode; registers it in the port's XSKMAP.
    pub fn add_queue(
        &mut self,
        port: &mut XdpPort,
        dp: DpPort,
        queue: u32,
        rx: bool,
    ) -> Result<(), PortError> {
        let mut errors = Vec::new();
        let mut placed: Option<(XskSocket, usize)> = None;
        let cfg_zc =
            crate::port::afxdp::xsk_config(port.ifindex, queue, self.ring, BindMode::ZeroCopy);
        let cfg_copy =
            crate::port::afxdp::xsk_config(port.ifindex, queue, self.ring, BindMode::Copy);
        if port.wants_zerocopy() {
            if let Some(pi) = self.pools.iter().position(|p| p.zerocopy) {
                let owner = &self.socks[self.pools[pi].owner].xsk;
                match XskSocket::new_shared(owner, &cfg_zc) {
                    Ok(s) => placed = Some((s, pi)),
                    Err(e) => errors.push(format!("zero-copy (shared UMEM): {e}")),
                }
            } else {
                let umem = self.new_umem(&port.name)?;
                match XskSocket::new_owner(&umem, &cfg_zc) {
                    Ok(s) if s.is_zerocopy() => {
                        let pi = self.add_pool(umem, true);
                        placed = Some((s, pi));
                    }
                    Ok(_) => {
                        errors.push("zero-copy bind fell back to copy".into());
                        self.spare = Some(umem);
                    }
                    Err(e) => {
                        errors.push(format!("zero-copy: {e}"));
                        self.spare = Some(umem);
                    }
                }
            }
            if placed.is_none() && port.requires_zerocopy() {
                return Err(PortError::Other {
                    port: port.name.clone(),
                    msg: format!("xdp-mode=native-with-zerocopy but {}", errors.join("; ")),
                });
            }
        }
        if placed.is_none() {
            if let Some(pi) = self.pools.iter().position(|p| !p.zerocopy) {
                let owner = &self.socks[self.pools[pi].owner].xsk;
                let s =
                    XskSocket::new_shared(owner, &cfg_copy).map_err(|source| PortError::Xdp {
                        port: port.name.clone(),
                        source,
                    })?;
                placed = Some((s, pi));
            } else {
                let umem = self.new_umem(&port.name)?;
                let s =
                    XskSocket::new_owner(&umem, &cfg_copy).map_err(|source| PortError::Xdp {
                        port: port.name.clone(),
                        source,
                    })?;
                let pi = self.add_pool(umem, false);
                placed = Some((s, pi));
            }
        }
        let (xsk, pool) = placed.expect("a socket was placed or an error returned");
        let zc = xsk.is_zerocopy();
        port.register(queue, xsk.fd(), zc)?;
        if let Ok(mut v) = self.handle.rxqs.lock() {
            v.push((port.name.clone(), queue, zc));
        }
        self.socks.push(Sock {
            xsk,
            pool,
            port: dp,
            queue,
            rx,
            csum: port.csum_complete,
            fill_out: 0,
            tx_out: 0,
            stage: Vec::with_capacity(STAGE),
        });
        Ok(())
    }

    /// The sockets and pools built so far, for a PMD that already runs (see [`Reconf`]).
    pub fn into_part(self) -> PortPart {
        PortPart {
            pools: self.pools,
            socks: self.socks,
        }
    }

    /// Ports this PMD has a socket on, with the lowest queue for each.
    pub fn local_ports(&self) -> Vec<(DpPort, u32)> {
        let mut v: Vec<(DpPort, u32)> = Vec::new();
        for s in &self.socks {
            match v.iter_mut().find(|(p, _)| *p == s.port) {
                Some(e) => e.1 = e.1.min(s.queue),
                None => v.push((s.port, s.queue)),
            }
        }
        v
    }

    pub fn waker(&self) -> Arc<handoff::Waker> {
        self.handle.waker.clone()
    }

    /// Adds a handoff ring towards PMD `to` (whose consumer end goes to that PMD's builder).
    pub fn add_output(&mut self, to: usize, p: handoff::Producer) {
        self.out.push((to, p));
    }

    pub fn add_inbox(&mut self, c: handoff::Consumer) {
        self.inbox.push(c);
    }

    /// Finishes the PMD. `remote_owner(port)` names the PMD that transmits on ports this PMD has
    /// no socket on.
    pub fn build(self, remote_owner: impl Fn(DpPort) -> Option<usize>) -> Pmd {
        let remote: Vec<Option<usize>> = (0..MAX_PORTS as DpPort).map(remote_owner).collect();
        let out_to = self.out.iter().map(|(to, _)| *to).collect();
        let mut pmd = Pmd {
            h: self.handle,
            shared: self.shared,
            pools: self.pools,
            socks: self.socks,
            rx_socks: Vec::new(),
            rx_order_seen: 0,
            routes: vec![TxRoute::None; MAX_PORTS],
            remote,
            out_to,
            out: self.out.into_iter().map(|(_, p)| p).collect(),
            out_pending: Vec::new(),
            inbox: self.inbox,
            pin: self.pin,
            exec_in: self.exec_in,
            learn: LearnTx::new(self.learn),
            fold_seen: 0,
            last_fold_sec: 0,
            cache: FlowCache::new(65536),
            gen: 0,
            batch: self.batch.min(MAX_BATCH as u32),
            rx_descs: Box::new([XdpDesc::default(); MAX_BATCH]),
            rx_keys: Box::new(
                [RxKey {
                    key: FlowKey::default(),
                    lay: Layout::default(),
                    emc_hash: None,
                    ok: false,
                }; MAX_BATCH],
            ),
            ip_id: 0,
            passes: 0,
            ct_pend: Vec::with_capacity(crate::conntrack::BATCH_MAX),
            ct_spare: Vec::with_capacity(crate::conntrack::BATCH_MAX),
            ct_batch: Some(Default::default()),
        };
        pmd.reindex();
        pmd
    }
}

/// A poll-mode thread's state. Created by [`PmdBuilder::build`], consumed by [`Pmd::run`].
pub struct Pmd {
    h: Arc<PmdHandle>,
    shared: Arc<Shared>,
    pools: Vec<Pool>,
    socks: Vec<Sock>,
    rx_socks: Vec<usize>,
    /// The `Shared::rx_order` this PMD's `rx_socks` order reflects.
    rx_order_seen: u64,
    routes: Vec<TxRoute>,
    /// Per port, the PMD that transmits on it when this one has no socket on it.
    remote: Vec<Option<usize>>,
    /// The PMD each `out` ring leads to.
    out_to: Vec<usize>,
    out: Vec<handoff::Producer>,
    out_pending: Vec<bool>,
    inbox: Vec<handoff::Consumer>,
    /// Packet-ins to the control thread.
    pin: Option<handoff::Producer<PinMeta>>,
    /// Packets the control thread asks this PMD to send.
    exec_in: Option<handoff::Consumer<Option<Arc<ExecJob>>>>,
    /// Learned flows to the control thread.
    learn: LearnTx,
    cache: FlowCache,
    fold_seen: u64,
    last_fold_sec: u32,
    gen: u64,
    batch: u32,
    rx_descs: Box<[XdpDesc; MAX_BATCH]>,
    /// The keys of the burst being processed (extracted before any is looked up).
    rx_keys: Box<[RxKey; MAX_BATCH]>,
    /// IPv4 ID of the next packet this PMD encapsulates.
    ip_id: u16,
    /// Passes through the datapath of the packet being processed (see [`MAX_PASSES`]).
    passes: u32,
    /// Packets waiting for their deferred `ct(table=)` ([`Pmd::flush_ct`]), the emptied vector
    /// of the previous round (kept for its capacity) and the tracker's batch.
    ct_pend: Vec<CtPending>,
    ct_spare: Vec<CtPending>,
    ct_batch: Option<crate::conntrack::CtBatch>,
}

/// A received packet's key, extracted ahead of its lookup ([`Pmd::rx_burst`]).
#[derive(Clone, Copy)]
struct RxKey {
    key: FlowKey,
    lay: Layout,
    emc_hash: Option<u32>,
    /// Extracted (else the frame was dropped and released).
    ok: bool,
}

/// How [`Pmd::process_one`] gets the packet's key.
#[derive(Clone, Copy)]
enum KeyIn {
    /// Extracted from the frame.
    Extract,
    /// The caller's key is the packet's (metadata words included); with its exact-match hash
    /// when the cache has an EMC (see [`FlowCache::prefetch`]).
    Ready(Option<u32>),
}

/// A `ct(table=N)` left to [`Pmd::flush_ct`] by [`Exec::run`].
#[derive(Clone, Copy)]
struct Deferred {
    act: crate::conntrack::CtAction,
    recirc: u32,
    addr: u64,
    len: usize,
}

/// A packet whose pass ended in a deferred `ct(table=N)`: its frame, the key and layout of
/// that pass, its metadata words and the `ct()` to run.
#[derive(Clone, Copy)]
struct CtPending {
    pool: usize,
    addr: u64,
    len: usize,
    lay: Layout,
    key: FlowKey,
    /// Nothing changed the packet's bytes since `key` was extracted.
    key_ok: bool,
    /// The exact-match hash of the next pass's key, its entries prefetched.
    emc_hash: Option<u32>,
    meta: [u64; key::w::L2_START],
    act: crate::conntrack::CtAction,
    recirc: u32,
    passes: u32,
}

#[inline(always)]
fn cov(h: &PmdHandle, c: Cov) {
    h.cov.bump(c as usize, 1);
}

#[inline(always)]
fn port_stat(h: &PmdHandle, port: DpPort, s: PortStat, n: u64) {
    h.ports[port as usize].bump(s as usize, n);
}

/// Moves staged descriptors of socket `si` onto its TX ring and kicks the kernel.
fn flush_sock(pools: &mut [Pool], sock: &mut Sock, h: &PmdHandle) {
    let n = sock.stage.len() as u32;
    if n == 0 {
        return;
    }
    let free = sock.xsk.tx.free(n);
    let k = n.min(free);
    let mut bytes = 0u64;
    for i in 0..k {
        let d = sock.stage[i as usize];
        bytes += d.len as u64;
        sock.xsk.tx.write(i, d);
    }
    sock.xsk.tx.submit(k);
    sock.tx_out += k;
    if k < n {
        let pool = &mut pools[sock.pool];
        for d in &sock.stage[k as usize..] {
            pool.put(d.addr);
        }
        h.cov.bump(Cov::DropTxRingFull as usize, (n - k) as u64);
        port_stat(h, sock.port, PortStat::TxDropped, (n - k) as u64);
    }
    sock.stage.clear();
    port_stat(h, sock.port, PortStat::TxPackets, k as u64);
    port_stat(h, sock.port, PortStat::TxBytes, bytes);
    h.stats.bump(PmdStat::TxPackets as usize, k as u64);
    kick_tx(sock, h);
}

#[inline]
fn kick_tx(sock: &mut Sock, h: &PmdHandle) {
    if sock.xsk.uses_need_wakeup() && !sock.xsk.tx.needs_wakeup() {
        return;
    }
    // copy mode sends at most 32 descriptors per call and says EAGAIN when more remain; it also
    // says EAGAIN when it can't make progress (completion ring or socket buffer full): stop then,
    // the next round retries
    let mut before = u32::MAX;
    for _ in 0..16 {
        h.stats.bump(PmdStat::TxKicks as usize, 1);
        match sock.xsk.kick_tx() {
            Ok(()) => return,
            Err(libc::EAGAIN) | Err(libc::EBUSY) => {
                let left = sock.xsk.tx.outstanding();
                if left == 0 || left >= before {
                    return;
                }
                before = left;
            }
            Err(libc::ENOBUFS) => return,
            Err(_) => {
                cov(h, Cov::TxKickError);
                return;
            }
        }
    }
}

/// Sends one packet held in `src_pool` at `addr` out of `port`. `last` says this is the packet's
/// final output: its frame can be moved instead of copied, and must be released if not used.
#[allow(clippy::too_many_arguments)]
#[inline]
fn output(
    pools: &mut [Pool],
    socks: &mut [Sock],
    routes: &[TxRoute],
    out: &mut [handoff::Producer],
    out_pending: &mut [bool],
    h: &PmdHandle,
    src_pool: usize,
    addr: u64,
    len: usize,
    port: DpPort,
    last: bool,
) {
    match routes.get(port as usize).copied().unwrap_or(TxRoute::None) {
        TxRoute::Local(ti) => {
            if socks[ti].stage.len() >= STAGE {
                flush_sock(pools, &mut socks[ti], h);
            }
            let tpool = socks[ti].pool;
            if tpool == src_pool && last {
                socks[ti].stage.push(XdpDesc {
                    addr,
                    len: len as u32,
                    options: 0,
                });
                return;
            }
            let Some(base) = pools[tpool].take() else {
                cov(h, Cov::DropNoFrames);
                port_stat(h, port, PortStat::TxDropped, 1);
                if last {
                    pools[src_pool].put(addr);
                }
                return;
            };
            let dst = base + HEADROOM as u64;
            let copied = if tpool == src_pool {
                pools[tpool].umem.copy_frame(addr, dst, len)
            } else {
                let (a, b) = if src_pool < tpool {
                    let (x, y) = pools.split_at_mut(tpool);
                    (&x[src_pool], &mut y[0])
                } else {
                    let (x, y) = pools.split_at_mut(src_pool);
                    (&y[0], &mut x[tpool])
                };
                match (a.umem.data(addr, len), b.umem.data_mut(dst, len)) {
                    (Some(s), Some(d)) => {
                        d.copy_from_slice(s);
                        true
                    }
                    _ => false,
                }
            };
            if copied {
                socks[ti].stage.push(XdpDesc {
                    addr: dst,
                    len: len as u32,
                    options: 0,
                });
            } else {
                pools[tpool].put(base);
                cov(h, Cov::DropInvalidDesc);
            }
            if last {
                pools[src_pool].put(addr);
            }
        }
        TxRoute::Remote(o) => {
            let ok = match pools[src_pool].umem.data(addr, len) {
                Some(d) => out[o].push(port, d),
                None => false,
            };
            if ok {
                out_pending[o] = true;
                cov(h, Cov::HandoffSent);
            } else {
                cov(h, Cov::DropHandoffFull);
                port_stat(h, port, PortStat::TxDropped, 1);
            }
            if last {
                pools[src_pool].put(addr);
            }
        }
        TxRoute::None => {
            cov(h, Cov::DropNoRoute);
            if last {
                pools[src_pool].put(addr);
            }
        }
    }
}

/// The parts of a PMD that executing actions touches, borrowed apart from the flow cache so a
/// cached flow's action list can be executed in place.
struct Exec<'a> {
    pools: &'a mut [Pool],
    socks: &'a mut [Sock],
    routes: &'a [TxRoute],
    out: &'a mut [handoff::Producer],
    out_pending: &'a mut [bool],
    pin: &'a mut Option<handoff::Producer<PinMeta>>,
    learn: &'a mut LearnTx,
    h: &'a PmdHandle,
    /// IPv4 ID of the next encapsulated packet.
    ip_id: &'a mut u16,
    /// A packet to run through the datapath again (decapsulated, or back from the
    /// connection tracker): (frame address in the same pool, length, how).
    recirc: Option<(u64, usize, Recirc)>,
    /// The packet's datapath metadata words (input port, tunnel, marks): what a conntrack
    /// recirculation carries on.
    meta: [u64; key::w::L2_START],
    /// Connection tracker and clock (ms) for `ct()`.
    ct: &'a crate::conntrack::Conntrack,
    now_ms: u64,
    /// This packet opened a live-migration gate: the caller drops the cached flows.
    activated: bool,
    /// A final `ct(table=N)` may be left to the caller, which runs the tracker for the whole
    /// batch at once (see [`Pmd::flush_ct`]); set when the caller has room for it.
    defer_ct: bool,
    /// The deferred `ct()`, its recirculation id and the frame (address and length after
    /// the actions before it), which the caller now owns.
    deferred: Option<Deferred>,
    /// The actions changed the packet's bytes (set_field, VLAN, tunnel, NAT): a pass after
    /// this one must extract its key again.
    modified: bool,
}

#[inline]
fn key_meta(k: &FlowKey) -> [u64; key::w::L2_START] {
    let mut m = [0u64; key::w::L2_START];
    m.copy_from_slice(&k.w[..key::w::L2_START]);
    m
}

/// Why a packet runs through the datapath again.
#[derive(Clone, Copy, Debug)]
pub enum Recirc {
    /// Decapsulated: from its tunnel port, with the tunnel fields set.
    Tunnel(crate::tunnel::TunMeta),
    /// Back from `ct(table=N)`: these metadata words (recirc_id and ct_* set) replace the
    /// re-extracted key's.
    Ct([u64; key::w::L2_START]),
}

/// ct_state bits saying the tracker translated the packet (its bytes changed).
const NAT_BITS: u32 = crate::conntrack::cs::SRC_NAT | crate::conntrack::cs::DST_NAT;

/// Seconds a megaflow may go unused before it expires (OVS's default max-idle, 10 s).
const MEGAFLOW_MAX_IDLE: u32 = 10;

/// Most times one received packet may run through the datapath (decap and conntrack
/// recirculations together; OVS's dpif-netdev allows 6 recirculations).
const MAX_PASSES: u32 = 8;

/// The index after the [`DpAction::TunnelStrip`] closing the tunnel body that starts at `i`.
#[cold]
fn skip_tunnel_body(actions: &[DpAction], mut i: usize) -> usize {
    let mut depth = 1;
    while let Some(a) = actions.get(i) {
        i += 1;
        match a {
            DpAction::TunnelPush(_) => depth += 1,
            DpAction::TunnelStrip => {
                depth -= 1;
                if depth == 0 {
                    break;
                }
            }
            _ => {}
        }
    }
    i
}

/// The metadata words of a packet back from the tracker: its own (input port, tunnel,
/// pkt_mark, dp_hash) with the recirculation id and the ct_* fields the tracker set.
fn ct_meta(
    meta: &[u64; key::w::L2_START],
    recirc: u32,
    r: &crate::conntrack::CtResult,
) -> [u64; key::w::L2_START] {
    use key::w;
    let mut m = *meta;
    m[w::META] = (m[w::META] & 0xffff_ffff) | (recirc as u64) << 32;
    m[w::TUN_CT] = (m[w::TUN_CT] & 0xffff) | (r.zone as u64) << 16 | (r.state as u64) << 32;
    m[w::MARKS] = (m[w::MARKS] & 0xffff_ffff) | (r.mark as u64) << 32;
    m[w::CT_LABEL_HI] = (r.label >> 64) as u64;
    m[w::CT_LABEL_LO] = r.label as u64;
    m[w::HASH] &= 0xffff_ffff;
    m[w::CT_NW] = 0;
    m[w::CT_TP] = 0;
    if let Some(o) = &r.orig {
        // the original tuple: IPv4 only in this key (ct_ipv6_* are not implemented)
        if let (std::net::IpAddr::V4(s), std::net::IpAddr::V4(d)) = (o.src, o.dst) {
            m[w::CT_NW] = u32::from(s) as u64 | (u32::from(d) as u64) << 32;
        }
        m[w::HASH] |= (o.proto as u64) << 32;
        m[w::CT_TP] = o.sport as u64 | (o.dport as u64) << 16;
    }
    m
}

/// The ct metadata a recirculated packet carries (see [`ct_meta`]), if it was tracked.
#[inline]
fn prev_ct(m: &[u64; key::w::L2_START]) -> Option<crate::conntrack::CtResult> {
    use key::w;
    let state = (m[w::TUN_CT] >> 32) as u32;
    if state & crate::conntrack::cs::TRACKED == 0 {
        return None;
    }
    let (nw, tp) = (m[w::CT_NW], m[w::CT_TP]);
    let proto = (m[w::HASH] >> 32) as u8;
    let orig = (proto != 0).then(|| crate::conntrack::OrigTuple {
        proto,
        src: std::net::IpAddr::V4((nw as u32).into()),
        dst: std::net::IpAddr::V4(((nw >> 32) as u32).into()),
        sport: tp as u16,
        dport: (tp >> 16) as u16,
    });
    Some(crate::conntrack::CtResult {
        state,
        zone: (m[w::TUN_CT] >> 16) as u16,
        mark: (m[w::MARKS] >> 32) as u32,
        label: ((m[w::CT_LABEL_HI] as u128) << 64) | m[w::CT_LABEL_LO] as u128,
        orig,
    })
}

/// A packet the control thread wants sent with given actions (packet-out, resumed
/// continuation): the actions travel with the bytes.
#[derive(Debug)]
pub struct ExecJob {
    pub actions: Vec<DpAction>,
    pub lay: Layout,
    /// The packet's datapath metadata words (see [`Recirc::Ct`]).
    pub meta: [u64; key::w::L2_START],
}

/// What travels with a learn request from a PMD to the control thread.
pub type LearnMsg = Option<Arc<Learned>>;

/// Slots of the per-PMD table that suppresses repeated learn requests.
const LEARN_DEDUP: usize = 256;

/// Learn requests: the ring to the control thread and a small direct-mapped table of the
/// flows sent lately (hash, cycle stamp), so that a busy megaflow asks for its learned flow
/// about every [`LearnTx::window`] rather than once per packet. Fixed size, no allocation.
struct LearnTx {
    tx: Option<handoff::Producer<LearnMsg, 0>>,
    seen: Box<[(u64, u64); LEARN_DEDUP]>,
    /// Cycles between two requests for the same flow (~100 ms).
    window: u64,
}

impl LearnTx {
    fn new(tx: Option<handoff::Producer<LearnMsg, 0>>) -> Self {
        LearnTx {
            tx,
            seen: Box::new([(0, 0); LEARN_DEDUP]),
            window: (clock::hz() * 0.1) as u64,
        }
    }

    /// Hands `l` to the control thread unless it was sent within the window.
    #[inline]
    fn send(&mut self, l: &Arc<Learned>, h: &PmdHandle) {
        let now = clock::cycles();
        let slot = &mut self.seen[(l.hash as usize) % LEARN_DEDUP];
        if slot.0 == l.hash && now.wrapping_sub(slot.1) < self.window {
            cov(h, Cov::LearnDeduplicated);
            return;
        }
        let Some(tx) = self.tx.as_mut() else {
            return;
        };
        if tx.push_with(0, &[], Some(l.clone())) {
            *slot = (l.hash, now);
            cov(h, Cov::LearnRequest);
            tx.notify();
        } else {
            cov(h, Cov::DropLearnRingFull);
        }
    }
}

/// What travels with a packet-in from a PMD to the control thread.
#[derive(Default)]
pub struct PinMeta {
    pub spec: Option<Arc<PacketInSpec>>,
    pub total_len: u32,
}

impl Exec<'_> {
    /// Executes `actions` on the packet at `addr` (`len` bytes) of pool `pool`; the frame is
    /// released or handed to a TX ring by the end.
    fn run(
        &mut self,
        pool: usize,
        mut addr: u64,
        mut len: usize,
        lay: &mut Layout,
        actions: &[DpAction],
        last_output: usize,
    ) {
        let h = self.h;
        if last_output == usize::MAX
            && !actions.iter().any(|a| {
                matches!(
                    a,
                    DpAction::Userspace(_)
                        | DpAction::Meter { .. }
                        | DpAction::Activate(..)
                        | DpAction::GateDrop(..)
                        | DpAction::Learn(_)
                        | DpAction::Ct(_)
                )
            })
        {
            cov(h, Cov::DropAction);
            self.pools[pool].put(addr);
            return;
        }
        let mut consumed = false;
        // the inner packet's layout and header length while a tunnel header is pushed
        let mut inner: Option<(Layout, usize)> = None;
        let mut i = 0;
        while let Some(a) = actions.get(i) {
            let at = i;
            i += 1;
            match a {
                DpAction::TunnelPush(hdr) => {
                    let n = hdr.len as usize;
                    let umem = &mut self.pools[pool].umem;
                    let fits = len + n - 14 <= hdr.mtu as usize;
                    let room = addr >= n as u64
                        && umem.frame_base(addr - n as u64) == umem.frame_base(addr);
                    if !fits || !room || inner.is_some() {
                        cov(
                            h,
                            if inner.is_some() {
                                Cov::DropTunnelNested
                            } else if !fits {
                                Cov::DropTunnelOversize
                            } else {
                                Cov::DropNoHeadroom
                            },
                        );
                        port_stat(h, hdr.port, PortStat::TxDropped, 1);
                        i = skip_tunnel_body(actions, i);
                        continue;
                    }
                    let sport = match umem.data(addr, len) {
                        Some(f) => crate::tunnel::src_port(f, lay),
                        None => crate::tunnel::SRC_PORT_MIN,
                    };
                    let Some(f) = umem.data_mut(addr - n as u64, len + n) else {
                        i = skip_tunnel_body(actions, i);
                        continue;
                    };
                    hdr.push(f, *self.ip_id, sport);
                    self.modified = true;
                    *self.ip_id = self.ip_id.wrapping_add(1);
                    addr -= n as u64;
                    len += n;
                    inner = Some((*lay, n));
                    *lay = Layout {
                        l3: 14,
                        l4: 34,
                        l4_len: (len - 34) as u16,
                        ip_version: 4,
                    };
                    cov(h, Cov::TunnelPush);
                    port_stat(h, hdr.port, PortStat::TxPackets, 1);
                    port_stat(h, hdr.port, PortStat::TxBytes, len as u64);
                }
                DpAction::TunnelStrip => {
                    if let Some((l, n)) = inner.take() {
                        addr += n as u64;
                        len -= n;
                        *lay = l;
                    }
                }
                DpAction::TunnelPop(recv) => {
                    let last = at == last_output;
                    let res = match self.pools[pool].umem.data(addr, len) {
                        Some(f) => crate::tunnel::pop(f, lay, recv),
                        None => Err(crate::tunnel::PopError::Malformed),
                    };
                    match res {
                        Ok((off, meta)) if self.recirc.is_none() => {
                            cov(h, Cov::TunnelPop);
                            port_stat(h, meta.dp, PortStat::RxPackets, 1);
                            port_stat(h, meta.dp, PortStat::RxBytes, (len - off) as u64);
                            let meta = Recirc::Tunnel(meta);
                            if last {
                                self.recirc = Some((addr + off as u64, len - off, meta));
                                consumed = true;
                                break;
                            }
                            // more actions follow: decapsulate a copy
                            let umem_pool = &mut self.pools[pool];
                            let Some(base) = umem_pool.take() else {
                                cov(h, Cov::DropNoFrames);
                                continue;
                            };
                            let dst = base + HEADROOM as u64;
                            if umem_pool.umem.copy_frame(addr + off as u64, dst, len - off) {
                                self.recirc = Some((dst, len - off, meta));
                            } else {
                                umem_pool.put(base);
                            }
                        }
                        Ok(_) => cov(h, Cov::DropTunnelNested),
                        Err(crate::tunnel::PopError::Malformed) => cov(h, Cov::DropTunnelMalformed),
                        Err(crate::tunnel::PopError::NoPort) => cov(h, Cov::DropTunnelNoPort),
                    }
                    if last {
                        break;
                    }
                }
                DpAction::Meter { meter, skip_to, .. } => {
                    // per packet, shared lock-free bucket (see pipeline::meter)
                    if !meter.admit(len) {
                        cov(h, Cov::DropMeter);
                        i = *skip_to as usize;
                    }
                }
                DpAction::Output(p) => {
                    let last = at == last_output;
                    self.output(pool, addr, len, *p, last);
                    if last {
                        consumed = true;
                        break;
                    }
                }
                DpAction::Set { field, value, mask } => {
                    self.modified = true;
                    if let Some(frame) = self.pools[pool].umem.data_mut(addr, len) {
                        edit::set_field(frame, lay, *field, *value, *mask);
                    }
                }
                DpAction::PushVlan { tpid, tci } => {
                    let umem = &mut self.pools[pool].umem;
                    if addr < 4 || umem.frame_base(addr - 4) != umem.frame_base(addr) {
                        cov(h, Cov::DropNoHeadroom);
                        continue;
                    }
                    if let Some(f) = umem.data_mut(addr - 4, len + 4) {
                        self.modified = true;
                        f.copy_within(4..16, 0);
                        f[12..14].copy_from_slice(&tpid.to_be_bytes());
                        f[14..16].copy_from_slice(&tci.to_be_bytes());
                        addr -= 4;
                        len += 4;
                        lay.l3 += 4;
                        if lay.l4 != 0 {
                            lay.l4 += 4;
                        }
                    }
                }
                DpAction::PopVlan => {
                    let umem = &mut self.pools[pool].umem;
                    if let Some(f) = umem.data_mut(addr, len) {
                        if len >= 18
                            && matches!(u16::from_be_bytes([f[12], f[13]]), 0x8100 | 0x88a8)
                        {
                            self.modified = true;
                            f.copy_within(0..12, 4);
                            addr += 4;
                            len -= 4;
                            lay.l3 = lay.l3.saturating_sub(4);
                            if lay.l4 != 0 {
                                lay.l4 -= 4;
                            }
                        }
                    }
                }
                DpAction::Activate(gate, trigger) => {
                    // one atomic load per activation packet once open; the first one flips
                    // it (and reads the source MAC for port/state)
                    let mac = match self.pools[pool].umem.data(addr, len) {
                        Some(f) if f.len() >= 12 => {
                            f[6..12].iter().fold(0u64, |m, &b| (m << 8) | b as u64)
                        }
                        _ => 0,
                    };
                    if gate.activate(mac, *trigger) {
                        cov(h, Cov::GateActivated);
                        self.activated = true;
                    }
                }
                DpAction::GateDrop(gate, dir) => {
                    gate.count_drop(*dir);
                    cov(h, Cov::DropGate);
                }
                // only in flows translated while the gate awaited this: the first records
                // its time, and the cache flush that follows removes the marker
                DpAction::GateFirst(gate, dir) => self.activated |= gate.first(*dir),
                DpAction::Learn(l) => self.learn.send(l, h),
                DpAction::CtClear => {
                    let rid = (self.meta[key::w::META] >> 32) as u32;
                    self.meta = ct_meta(&self.meta, rid, &crate::conntrack::CtResult::default());
                }
                DpAction::Ct(c) => {
                    if self.defer_ct && c.recirc != 0 && at == last_output && self.recirc.is_none()
                    {
                        // the caller runs it with the rest of the batch, then recirculates
                        self.deferred = Some(Deferred {
                            act: c.act,
                            recirc: c.recirc,
                            addr,
                            len,
                        });
                        consumed = true;
                        break;
                    }
                    let Some(f) = self.pools[pool].umem.data_mut(addr, len) else {
                        continue;
                    };
                    // the packet's result of an earlier ct() (after a recirculation): same-zone
                    // NAT is not applied twice and is found by its original tuple
                    let prev = prev_ct(&self.meta);
                    let r = self
                        .ct
                        .execute_md(f, lay, &c.act, self.now_ms, prev.as_ref());
                    // the packet carries the result on (OVS sets the packet's ct metadata on
                    // every ct(), recirculated or not): a later ct() in another zone then
                    // looks up afresh, one in this zone finds this connection
                    let rid = (self.meta[key::w::META] >> 32) as u32;
                    self.meta = ct_meta(&self.meta, rid, &r);
                    if r.state & NAT_BITS != 0 {
                        self.modified = true;
                    }
                    cov(h, Cov::CtExecuted);
                    if r.state & crate::conntrack::cs::INVALID != 0 {
                        cov(h, Cov::CtInvalid);
                    }
                    if c.recirc == 0 {
                        continue;
                    }
                    let last = at == last_output;
                    if self.recirc.is_some() {
                        // a second recirculation from one pass (ct(table=) twice): dropped
                        cov(h, Cov::DropRecircDepth);
                        if last {
                            break;
                        }
                        continue;
                    }
                    let meta = Recirc::Ct(ct_meta(&self.meta, c.recirc, &r));
                    cov(h, Cov::CtRecirc);
                    if last {
                        self.recirc = Some((addr, len, meta));
                        consumed = true;
                        break;
                    }
                    // more actions follow (OVS's fork): the tracked copy recirculates
                    let umem_pool = &mut self.pools[pool];
                    let Some(base) = umem_pool.take() else {
                        cov(h, Cov::DropNoFrames);
                        continue;
                    };
                    let dst = base + HEADROOM as u64;
                    if umem_pool.umem.copy_frame(addr, dst, len) {
                        self.recirc = Some((dst, len, meta));
                    } else {
                        umem_pool.put(base);
                    }
                }
                DpAction::Userspace(spec) => {
                    let in_dp = 0;
                    let ok = match (self.pin.as_mut(), self.pools[pool].umem.data(addr, len)) {
                        (Some(p), Some(d)) => p.push_with(
                            in_dp,
                            d,
                            PinMeta {
                                spec: Some(spec.clone()),
                                total_len: len as u32,
                            },
                        ),
                        _ => false,
                    };
                    if ok {
                        cov(h, Cov::PacketIn);
                        if let Some(p) = self.pin.as_ref() {
                            p.notify();
                        }
                    } else {
                        cov(h, Cov::DropPacketInQueueFull);
                    }
                }
            }
        }
        if !consumed {
            self.pools[pool].put(addr);
        }
        // blocking flows reached by copies after the final output still count
        for a in actions.get(i..).unwrap_or(&[]) {
            if let DpAction::GateDrop(gate, dir) = a {
                gate.count_drop(*dir);
                cov(h, Cov::DropGate);
            }
        }
    }

    /// Sends one packet held in `src_pool` at `addr` out of `port`. `last` says this is the
    /// packet's final output: its frame can be moved instead of copied, and must be released if
    /// not used.
    #[inline]
    fn output(&mut self, src_pool: usize, addr: u64, len: usize, port: DpPort, last: bool) {
        output(
            self.pools,
            self.socks,
            self.routes,
            self.out,
            self.out_pending,
            self.h,
            src_pool,
            addr,
            len,
            port,
            last,
        )
    }
}

impl Pmd {
    /// The thread body. Returns when `shared.quit` is set.
    pub fn run(mut self) {
        if let Some(c) = self.h.core {
            if let Err(e) = crate::sys::pin_current_thread(&[c]) {
                tracing::error!(pmd = self.h.id, core = c, error = %e, "cannot pin PMD thread");
            }
        }
        crate::sys::set_timer_slack_ns(1000);
        self.out_pending = vec![false; self.out.len()];
        for si in 0..self.socks.len() {
            self.refill(si);
        }
        let mut pollfds = self.pollfds();
        let idle = self.h.idle;
        // a busy round longer than this was preempted (a 32-packet round takes tens of µs):
        // it is counted apart so that the per-packet cost measures our work, not the scheduler
        let preempted = (clock::hz() * 500e-6) as u64;
        let mut idle_rounds: u32 = 0;
        let mut round: u64 = 0;
        tracing::info!(pmd = self.h.id, core = ?self.h.core, sockets = self.socks.len(), ?idle, "PMD started");
        while !self.shared.quit.load(Ordering::Relaxed) {
            let t0 = clock::cycles();
            round += 1;
            // SeqCst: pairs with `quiescent` (see PmdHandle::quiescent)
            let gen = self.shared.generation.load(Ordering::SeqCst);
            let now = self.shared.now_sec.load(Ordering::Relaxed);
            if gen != self.gen {
                let (upto, scope) = self.shared.invalidated_since(self.gen);
                match scope {
                    Scope::Tables(changed) => {
                        // a flow mod: only the flows that looked up a changed table go
                        if self.cache.invalidate_tables(&changed, now as u64 * 1000) > 0 {
                            cov(&self.h, Cov::CacheFlush);
                        }
                    }
                    Scope::All => {
                        if !self.cache.is_empty() {
                            cov(&self.h, Cov::CacheFlush);
                            self.cache.fold_all(now as u64 * 1000);
                        }
                        self.cache.clear();
                    }
                }
                let emc = self.shared.emc.load(Ordering::Relaxed);
                if emc != self.cache.emc_enabled() {
                    self.cache.set_emc(emc);
                }
                self.gen = upto.max(gen);
                self.h.seen_gen.store(self.gen, Ordering::Release);
            }
            let ro = self.shared.rx_order.load(Ordering::Acquire);
            if ro != self.rx_order_seen {
                self.rx_order_seen = ro;
                self.order_rx();
            }
            let rreq = self.h.reconf_req.load(Ordering::Acquire);
            if rreq != self.h.reconf_done.load(Ordering::Relaxed) {
                self.apply_reconf();
                pollfds = self.pollfds();
                self.publish();
                self.h.reconf_done.store(rreq, Ordering::Release);
            }
            let dreq = self.h.dump_req.load(Ordering::Acquire);
            if dreq != self.h.dump_done.load(Ordering::Relaxed) {
                self.serve_dump(now);
                self.h.dump_done.store(dreq, Ordering::Release);
            }
            let req = self.h.fold_req.load(Ordering::Acquire);
            if req != self.fold_seen || now != self.last_fold_sec {
                self.cache.fold_all(now as u64 * 1000);
                if now != self.last_fold_sec {
                    let n = self.cache.expire_idle(now, MEGAFLOW_MAX_IDLE);
                    if n > 0 {
                        self.h.cov.bump(Cov::MegaflowExpired as usize, n as u64);
                    }
                }
                self.fold_seen = req;
                self.last_fold_sec = now;
                self.h.fold_done.store(req, Ordering::Release);
            }
            let mut work = 0u32;
            for k in 0..self.rx_socks.len() {
                work += self.rx_burst(self.rx_socks[k], now);
            }
            work += self.drain_inbox();
            work += self.drain_exec();
            let ta = clock::cycles();
            if work > 0 {
                for si in 0..self.socks.len() {
                    if !self.socks[si].stage.is_empty() {
                        flush_sock(&mut self.pools, &mut self.socks[si], &self.h);
                    }
                }
                for (o, pending) in self.out_pending.iter_mut().enumerate() {
                    if *pending {
                        self.out[o].notify();
                        *pending = false;
                    }
                }
            }
            let tb = clock::cycles();
            for si in 0..self.socks.len() {
                self.reap(si);
                self.refill(si);
                // descriptors a failed or partial wake-up left on the TX ring: kick again
                let s = &mut self.socks[si];
                if work == 0 && s.tx_out > 0 && s.xsk.tx.outstanding() > 0 {
                    kick_tx(s, &self.h);
                }
            }
            let t1 = clock::cycles();
            if work > 0 {
                let st = &self.h.stats;
                let d = t1.wrapping_sub(t0);
                if d < preempted {
                    st.bump(PmdStat::BusyCycles as usize, d);
                    st.bump(PmdStat::BusyPackets as usize, work as u64);
                    st.bump(PmdStat::RxCycles as usize, ta.wrapping_sub(t0));
                    st.bump(PmdStat::TxCycles as usize, tb.wrapping_sub(ta));
                } else {
                    st.bump(PmdStat::PreemptedRounds as usize, 1);
                }
                st.bump(PmdStat::BusyRounds as usize, 1);
                idle_rounds = 0;
            } else {
                self.h.stats.bump(PmdStat::IdleRounds as usize, 1);
                idle_rounds = idle_rounds.saturating_add(1);
                if idle_rounds == 1 || round.is_multiple_of(1024) {
                    self.publish();
                }
                // a PMD with no socket to poll (a database-driven switch before its first
                // port) has nothing to spin for, whatever the policy
                if idle == IdlePolicy::Sleep || self.socks.is_empty() {
                    self.idle_wait(idle_rounds, &mut pollfds);
                }
                self.h.stats.bump(
                    PmdStat::IdleCycles as usize,
                    clock::cycles().wrapping_sub(t0),
                );
            }
            if round.is_multiple_of(4096) {
                self.publish();
            }
            if self.h.clear_request.load(Ordering::Relaxed)
                && self.h.clear_request.swap(false, Ordering::AcqRel)
            {
                self.h.stats.clear();
                self.h.cov.clear();
                for p in self.h.ports.iter() {
                    p.clear();
                }
                self.cache.stats.hits = 0;
                self.cache.stats.emc_hits = 0;
                self.cache.stats.misses = 0;
                // gauges (frames, flows) are not counters: put them back at once
                self.publish();
            }
        }
        self.publish();
        tracing::info!(pmd = self.h.id, "PMD stopped");
    }

    /// What the PMD blocks on when idle: its RX sockets and its waker.
    fn pollfds(&self) -> Vec<libc::pollfd> {
        self.rx_socks
            .iter()
            .map(|&i| libc::pollfd {
                fd: self.socks[i].xsk.fd(),
                events: libc::POLLIN,
                revents: 0,
            })
            .chain(std::iter::once(libc::pollfd {
                fd: self.h.waker.fd(),
                events: libc::POLLIN,
                revents: 0,
            }))
            .collect()
    }

    /// Polls the sockets of ports with an armed live-migration gate first in each round (see
    /// [`crate::migration::rx_order_gated_first`]). After socket and flow-table changes.
    fn order_rx(&mut self) {
        let pipe = self.shared.pipeline.load();
        let socks = &self.socks;
        crate::migration::rx_order_gated_first(&mut self.rx_socks, |si| {
            pipe.gate_armed(socks[si].port)
        });
    }

    /// Recomputes the RX list and the TX route of every port from the sockets and the remote
    /// owners (after start and after each port change).
    fn reindex(&mut self) {
        self.rx_socks = (0..self.socks.len())
            .filter(|&i| self.socks[i].rx)
            .collect();
        self.order_rx();
        for port in 0..MAX_PORTS {
            let local = self
                .socks
                .iter()
                .enumerate()
                .filter(|(_, s)| s.port as usize == port)
                .min_by_key(|(_, s)| s.queue)
                .map(|(i, _)| i);
            self.routes[port] = match local {
                Some(i) => TxRoute::Local(i),
                None => match self.remote[port]
                    .and_then(|pmd| self.out_to.iter().position(|&to| to == pmd))
                {
                    Some(o) => TxRoute::Remote(o),
                    None => TxRoute::None,
                },
            };
        }
    }

    /// Applies the port changes the control thread queued (cold: once per change).
    #[cold]
    fn apply_reconf(&mut self) {
        let ops = match self.h.reconf.lock() {
            Ok(mut v) => std::mem::take(&mut *v),
            Err(_) => return,
        };
        for op in ops {
            match op {
                Reconf::AddPort { dp, part, owner } => {
                    if let Some(part) = part {
                        let pbase = self.pools.len();
                        let sbase = self.socks.len();
                        for mut p in part.pools {
                            p.owner += sbase;
                            self.pools.push(p);
                        }
                        for mut s in part.socks {
                            s.pool += pbase;
                            self.socks.push(s);
                        }
                    }
                    if let Some(r) = self.remote.get_mut(dp as usize) {
                        *r = owner;
                    }
                }
                Reconf::DelPort { dp } => self.remove_port(dp),
            }
        }
        self.reindex();
    }

    /// Closes the sockets of port `dp` and frees the pools only they used. Frames staged or
    /// completed go back to their pool first. A pool shared with other ports' sockets (ports
    /// opened at start share one) keeps going; the frames the closed socket's fill and TX
    /// rings still held are unknowable once it is closed, so they leave the pool's total
    /// (bounded by two rings per removal) instead of showing up as unaccounted.
    fn remove_port(&mut self, dp: DpPort) {
        for si in 0..self.socks.len() {
            if self.socks[si].port != dp {
                continue;
            }
            self.reap(si);
            let s = &mut self.socks[si];
            let pool = &mut self.pools[s.pool];
            for d in s.stage.drain(..) {
                pool.put(d.addr);
            }
            pool.total = pool.total.saturating_sub(s.fill_out + s.tx_out);
            s.fill_out = 0;
            s.tx_out = 0;
        }
        let (gone, kept): (Vec<Sock>, Vec<Sock>) = std::mem::take(&mut self.socks)
            .into_iter()
            .partition(|s| s.port == dp);
        let mut used = vec![false; self.pools.len()];
        for s in &kept {
            used[s.pool] = true;
        }
        let mut map = vec![usize::MAX; self.pools.len()];
        let mut pools = Vec::new();
        let mut freed = Vec::new();
        for (i, p) in std::mem::take(&mut self.pools).into_iter().enumerate() {
            if used[i] {
                map[i] = pools.len();
                pools.push(p);
            } else {
                freed.push(p);
            }
        }
        self.socks = kept;
        for s in &mut self.socks {
            s.pool = map[s.pool];
        }
        for (pi, p) in pools.iter_mut().enumerate() {
            p.owner = self.socks.iter().position(|s| s.pool == pi).unwrap_or(0);
        }
        self.pools = pools;
        if let Some(r) = self.remote.get_mut(dp as usize) {
            *r = None;
        }
        // sockets first, then the memory they were bound to
        drop(gone);
        drop(freed);
    }

    /// Sleep policy: spin a little, nap with back-off, then block in poll() on the RX sockets
    /// and the waker (handoffs, control) with a timeout for housekeeping.
    fn idle_wait(&mut self, idle_rounds: u32, pollfds: &mut [libc::pollfd]) {
        const SPIN: u32 = 64;
        const NAPS: u32 = 40;
        if idle_rounds < SPIN {
            std::hint::spin_loop();
        } else if idle_rounds < SPIN + NAPS {
            let k = (idle_rounds - SPIN).min(6);
            self.h.stats.bump(PmdStat::Naps as usize, 1);
            self.h.quiescent.store(true, Ordering::SeqCst);
            crate::sys::nap_us(1 << k);
            self.h.quiescent.store(false, Ordering::SeqCst);
        } else {
            // gauges must be current while we block (completions may have come in since the
            // last idle round published them)
            self.publish();
            let w = &self.h.waker;
            self.h.quiescent.store(true, Ordering::SeqCst);
            w.sleeping.store(true, Ordering::SeqCst);
            let pending = self.inbox.iter_mut().any(|c| !c.is_empty())
                || self.exec_in.as_mut().is_some_and(|c| !c.is_empty())
                || self.shared.quit.load(Ordering::SeqCst)
                || self.shared.generation.load(Ordering::SeqCst) != self.gen
                || self.h.fold_req.load(Ordering::SeqCst) != self.fold_seen
                || self.h.reconf_req.load(Ordering::SeqCst)
                    != self.h.reconf_done.load(Ordering::SeqCst)
                || self.h.dump_req.load(Ordering::SeqCst)
                    != self.h.dump_done.load(Ordering::SeqCst);
            if !pending {
                self.h.stats.bump(PmdStat::Blocks as usize, 1);
                crate::sys::poll_readable(pollfds, 100);
            }
            w.sleeping.store(false, Ordering::SeqCst);
            self.h.quiescent.store(false, Ordering::SeqCst);
            w.drain();
        }
    }

    /// Publishes gauges: cache size and the UMEM frame accounting. Every frame is in exactly one
    /// place: the free list, a fill ring (or the kernel's RX path), a TX ring (until its
    /// completion), or staged for TX; anything else is a leak and shows up as unaccounted.
    fn publish(&self) {
        let st = &self.h.stats;
        st.set(PmdStat::Flows as usize, self.cache.len() as u64);
        st.set(PmdStat::Masks as usize, self.cache.masks() as u64);
        st.set(PmdStat::CacheHits as usize, self.cache.stats.hits);
        st.set(PmdStat::EmcHits as usize, self.cache.stats.emc_hits);
        st.set(PmdStat::CacheMisses as usize, self.cache.stats.misses);
        let total: u64 = self.pools.iter().map(|p| p.total as u64).sum();
        let free: u64 = self.pools.iter().map(|p| p.free.len() as u64).sum();
        let fill: u64 = self.socks.iter().map(|s| s.fill_out as u64).sum();
        let tx: u64 = self
            .socks
            .iter()
            .map(|s| s.tx_out as u64 + s.stage.len() as u64)
            .sum();
        st.set(PmdStat::FramesTotal as usize, total);
        st.set(PmdStat::FramesFree as usize, free);
        st.set(PmdStat::FramesFill as usize, fill);
        st.set(PmdStat::FramesTx as usize, tx);
        st.set(
            PmdStat::FramesLeaked as usize,
            total.wrapping_sub(free + fill + tx),
        );
    }

    /// Returns completed TX frames to their pool.
    #[inline]
    fn reap(&mut self, si: usize) {
        let s = &mut self.socks[si];
        if s.tx_out == 0 {
            return;
        }
        let n = s.xsk.comp.peek(s.tx_out.min(1024));
        if n == 0 {
            return;
        }
        let pool = &mut self.pools[s.pool];
        for i in 0..n {
            pool.put(s.xsk.comp.read(i));
        }
        s.xsk.comp.release(n);
        s.tx_out -= n;
    }

    /// Tops up a socket's fill ring, keeping a reserve of frames for TX copies.
    #[inline]
    fn refill(&mut self, si: usize) {
        let s = &mut self.socks[si];
        let pool = &mut self.pools[s.pool];
        let room = s.xsk.fill.free(self.batch);
        if room < self.batch && s.fill_out > 0 {
            return; // refill in batches
        }
        let n = room.min(pool.free.len().saturating_sub(RESERVE) as u32);
        if n == 0 {
            return;
        }
        for i in 0..n {
            let a = pool.free.pop().unwrap_or(0);
            s.xsk.fill.write(i, a);
        }
        s.xsk.fill.submit(n);
        s.fill_out += n;
        if s.xsk.uses_need_wakeup() && s.xsk.fill.needs_wakeup() {
            self.h.cov.bump(Cov::FillWakeup as usize, 1);
            s.xsk.kick_rx();
        }
    }

    /// Receives and processes one burst from socket `si`.
    #[inline]
    fn rx_burst(&mut self, si: usize, now: u32) -> u32 {
        let n = self.socks[si].xsk.rx.peek(self.batch);
        if n == 0 {
            return 0;
        }
        {
            let s = &mut self.socks[si];
            let umem = &self.pools[s.pool].umem;
            for i in 0..n {
                let d = s.xsk.rx.read(i);
                umem.prefetch(d.addr);
                self.rx_descs[i as usize] = d;
            }
            s.xsk.rx.release(n);
            s.fill_out = s.fill_out.saturating_sub(n);
        }
        self.h.stats.bump(PmdStat::RxPackets as usize, n as u64);
        self.h.stats.bump(PmdStat::RxBatches as usize, 1);
        let (pool, port, csum) = {
            let s = &self.socks[si];
            (s.pool, s.port, s.csum)
        };
        // every key first, their exact-match entries loading while the next are extracted
        let mut bytes = 0u64;
        for i in 0..n as usize {
            let d = self.rx_descs[i];
            bytes += d.len as u64;
            let rx = &mut self.rx_keys[i];
            rx.ok = false;
            let h = &*self.h;
            let Some(frame) = self.pools[pool].umem.data_mut(d.addr, d.len as usize) else {
                cov(h, Cov::DropInvalidDesc);
                self.pools[pool].put(d.addr);
                continue;
            };
            if let Err(m) = key::extract(frame, port as u32, &mut rx.key, &mut rx.lay) {
                cov(h, malformed_cov(m));
                port_stat(h, port, PortStat::RxDropped, 1);
                self.pools[pool].put(d.addr);
                continue;
            }
            if csum && key::complete_partial_checksum(frame, &rx.key, &rx.lay) {
                cov(h, Cov::CsumCompleted);
            }
            rx.emc_hash = self.cache.prefetch(&rx.key);
            rx.ok = true;
        }
        for i in 0..n as usize {
            if !self.rx_keys[i].ok {
                continue;
            }
            let d = self.rx_descs[i];
            let RxKey {
                mut key,
                mut lay,
                emc_hash,
                ..
            } = self.rx_keys[i];
            self.passes = 1;
            let next = self.process_one(
                pool,
                port,
                false,
                d.addr,
                d.len as usize,
                now,
                &mut key,
                &mut lay,
                None,
                KeyIn::Ready(emc_hash),
            );
            self.recirculate(pool, next, now, &mut key, &mut lay);
        }
        self.flush_ct(now);
        port_stat(&self.h, port, PortStat::RxPackets, n as u64);
        port_stat(&self.h, port, PortStat::RxBytes, bytes);
        n
    }

    /// Runs a packet through the datapath again for as long as its actions recirculate it
    /// (decapsulation, a `ct(table=)` that was not deferred), at most [`MAX_PASSES`] times in
    /// all; `self.passes` counts the passes so far.
    #[inline]
    fn recirculate(
        &mut self,
        pool: usize,
        mut next: Option<(u64, usize, Recirc)>,
        now: u32,
        key: &mut FlowKey,
        lay: &mut Layout,
    ) {
        while let Some((a, l, how)) = next {
            self.passes += 1;
            if self.passes > MAX_PASSES {
                cov(
                    &self.h,
                    match how {
                        Recirc::Tunnel(_) => Cov::DropTunnelNested,
                        Recirc::Ct(_) => Cov::DropRecircDepth,
                    },
                );
                self.pools[pool].put(a);
                return;
            }
            let port = match &how {
                Recirc::Tunnel(t) => t.dp,
                Recirc::Ct(m) => m[key::w::META] as u32 as DpPort,
            };
            next = self.process_one(
                pool,
                port,
                false,
                a,
                l,
                now,
                key,
                lay,
                Some(how),
                KeyIn::Extract,
            );
        }
    }

    /// Runs the `ct(table=N)`s that ended the passes of this batch's packets (see
    /// [`Exec::deferred`]): the tracker for all of them at once ([`CtBatch`]: one lock per
    /// shard, steady connections answered without their locks), then each packet's next pass
    /// in batch order, its key reused when only the ct fields changed. Those passes may end
    /// in `ct(table=)` again: repeated until none is left (at most [`MAX_PASSES`] per packet).
    ///
    /// [`CtBatch`]: crate::conntrack::CtBatch
    fn flush_ct(&mut self, now: u32) {
        if self.ct_pend.is_empty() {
            return;
        }
        let Some(mut batch) = self.ct_batch.take() else {
            return;
        };
        let now_ms = now as u64 * 1000;
        while !self.ct_pend.is_empty() {
            // the packets of this round; their passes fill `ct_pend` for the next one
            let mut work = std::mem::replace(&mut self.ct_pend, std::mem::take(&mut self.ct_spare));
            let ct = &self.shared.conntrack;
            batch.clear();
            for p in work.iter() {
                let frame = self.pools[p.pool].umem.data(p.addr, p.len).unwrap_or(&[]);
                let prev = prev_ct(&p.meta);
                // never full: `ct_pend` holds at most BATCH_MAX packets
                let _ = ct.batch_add(&mut batch, frame, &p.lay, &p.act, prev.as_ref());
            }
            ct.batch_lookup(&mut batch, now_ms);
            // every verdict first (as OVS: the batch goes through the tracker, then
            // recirculates), the next pass's key and exact-match entries loading meanwhile
            for (i, p) in work.iter_mut().enumerate() {
                let ct = &self.shared.conntrack;
                let Some(frame) = self.pools[p.pool].umem.data_mut(p.addr, p.len) else {
                    cov(&self.h, Cov::DropInvalidDesc);
                    self.pools[p.pool].put(p.addr);
                    p.len = 0;
                    continue;
                };
                let r = if i < batch.len() {
                    ct.batch_finish(&mut batch, i, frame, now_ms)
                } else {
                    ct.execute_md(frame, &p.lay, &p.act, now_ms, prev_ct(&p.meta).as_ref())
                };
                cov(&self.h, Cov::CtExecuted);
                if r.state & crate::conntrack::cs::INVALID != 0 {
                    cov(&self.h, Cov::CtInvalid);
                }
                cov(&self.h, Cov::CtRecirc);
                p.meta = ct_meta(&p.meta, p.recirc, &r);
                p.passes += 1;
                if p.passes > MAX_PASSES {
                    cov(&self.h, Cov::DropRecircDepth);
                    self.pools[p.pool].put(p.addr);
                    p.len = 0;
                    continue;
                }
                p.key_ok &= r.state & NAT_BITS == 0;
                if p.key_ok {
                    p.key.w[..key::w::L2_START].copy_from_slice(&p.meta);
                    p.emc_hash = self.cache.prefetch(&p.key);
                }
            }
            for p in work.iter() {
                if p.len == 0 {
                    continue;
                }
                self.passes = p.passes;
                let mut key = p.key;
                let mut lay = p.lay;
                let port = p.meta[key::w::META] as u32 as DpPort;
                let next = self.process_one(
                    p.pool,
                    port,
                    false,
                    p.addr,
                    p.len,
                    now,
                    &mut key,
                    &mut lay,
                    Some(Recirc::Ct(p.meta)),
                    if p.key_ok {
                        KeyIn::Ready(p.emc_hash)
                    } else {
                        KeyIn::Extract
                    },
                );
                self.recirculate(p.pool, next, now, &mut key, &mut lay);
            }
            work.clear();
            self.ct_spare = work;
        }
        batch.clear();
        self.ct_batch = Some(batch);
    }

    /// Keeps a packet whose pass ended in a deferred `ct(table=)` for [`flush_ct`](Self::flush_ct).
    #[allow(clippy::too_many_arguments)]
    #[inline]
    fn defer_ct(
        &mut self,
        pool: usize,
        key: &FlowKey,
        lay: &Layout,
        meta: [u64; key::w::L2_START],
        d: Deferred,
        key_ok: bool,
    ) {
        self.ct_pend.push(CtPending {
            pool,
            addr: d.addr,
            len: d.len,
            lay: *lay,
            key: *key,
            key_ok,
            emc_hash: None,
            meta,
            act: d.act,
            recirc: d.recirc,
            passes: self.passes,
        });
    }

    #[allow(clippy::too_many_arguments)]
    #[inline]
    fn process_one(
        &mut self,
        pool: usize,
        port: DpPort,
        csum: bool,
        addr: u64,
        len: usize,
        now: u32,
        key: &mut FlowKey,
        lay: &mut Layout,
        from: Option<Recirc>,
        key_in: KeyIn,
    ) -> Option<(u64, usize, Recirc)> {
        let (key_ok, emc_hash) = match key_in {
            KeyIn::Extract => (false, None),
            KeyIn::Ready(h) => (true, h),
        };
        let h = &*self.h;
        let Some(frame) = self.pools[pool].umem.data_mut(addr, len) else {
            cov(h, Cov::DropInvalidDesc);
            self.pools[pool].put(addr);
            return None;
        };
        // a packet back from the tracker unchanged keeps the key of its previous pass (the
        // metadata words are replaced below): extraction is the same work again
        #[cfg(debug_assertions)]
        if key_ok {
            let (mut k2, mut l2) = (FlowKey::default(), Layout::default());
            let _ = key::extract(frame, port as u32, &mut k2, &mut l2);
            debug_assert!(
                k2.w[key::w::L2_START..] == key.w[key::w::L2_START..] && l2 == *lay,
                "reused key differs from the packet's"
            );
        }
        if key_ok {
        } else if let Err(m) = key::extract(frame, port as u32, key, lay) {
            cov(h, malformed_cov(m));
            port_stat(h, port, PortStat::RxDropped, 1);
            self.pools[pool].put(addr);
            return None;
        }
        if let Some(Recirc::Ct(m)) = from {
            key.w[..key::w::L2_START].copy_from_slice(&m);
        }
        if let Some(Recirc::Tunnel(t)) = from {
            key.w[key::w::TUN_ID] = t.id;
            key.w[key::w::TUN_ADDR] = t.dst as u64 | ((t.src as u64) << 32);
            if let Some(m) = t.meta0 {
                key.w[key::w::TUN_META0] = m;
                key.w[key::w::TUN_PRESENT] = 1;
            }
            key.w[key::w::TUN_CT] |= t.oam as u64;
        }
        if csum && key::complete_partial_checksum(frame, key, lay) {
            cov(h, Cov::CsumCompleted);
        }
        let fi = match if key_ok {
            self.cache.lookup_hashed(key, emc_hash)
        } else {
            self.cache.lookup(key)
        } {
            Some(f) => f,
            None => match self.upcall(key, now, len as u32) {
                Ok(f) => f,
                Err(x) => {
                    // not cacheable: run this packet's own translation
                    let meta = key_meta(key);
                    let mut ex = self.exec_parts(meta);
                    ex.run(
                        pool,
                        addr,
                        len,
                        lay,
                        &x.actions,
                        cache::last_output(&x.actions),
                    );
                    for r in &x.rules {
                        r.add(1, len as u64, now as u64 * 1000);
                    }
                    let (recirc, opened) = (ex.recirc, ex.activated);
                    let (deferred, modified, meta) = (ex.deferred, ex.modified, ex.meta);
                    if let Some(d) = deferred {
                        self.defer_ct(pool, key, lay, meta, d, !modified);
                    }
                    if opened {
                        self.gate_opened(now);
                    }
                    return recirc;
                }
            },
        };
        let Pmd {
            cache,
            pools,
            socks,
            routes,
            out,
            out_pending,
            pin,
            learn,
            h,
            shared,
            ip_id,
            ct_pend,
            ..
        } = self;
        let meta = key_meta(key);
        let flow = cache.flow_mut(fi);
        flow.packets += 1;
        flow.bytes += len as u64;
        if flow.used != now {
            flow.used = now;
            if let Some(l) = flow.learn {
                shared
                    .macs
                    .refresh(l.slot, l.bridge, l.vlan, l.mac, l.port, now);
            }
        }
        let mut ex = Exec {
            pools,
            socks,
            routes,
            out,
            out_pending,
            pin,
            learn,
            h,
            ip_id,
            recirc: None,
            activated: false,
            meta,
            ct: &shared.conntrack,
            now_ms: now as u64 * 1000,
            defer_ct: ct_pend.len() < crate::conntrack::BATCH_MAX,
            deferred: None,
            modified: false,
        };
        ex.run(pool, addr, len, lay, &flow.actions, flow.last_output);
        let (recirc, opened) = (ex.recirc, ex.activated);
        let (deferred, modified, meta) = (ex.deferred, ex.modified, ex.meta);
        if let Some(d) = deferred {
            self.defer_ct(pool, key, lay, meta, d, !modified);
        }
        if opened {
            self.gate_opened(now);
        }
        recirc
    }

    /// A packet opened a live-migration gate: every PMD drops its cached flows (the shared
    /// generation), this one at once, so the packet after it — in this very batch — is
    /// translated past the blocking flows. Once per gate, never per packet.
    #[cold]
    fn gate_opened(&mut self, now: u32) {
        self.shared.invalidate();
        if !self.cache.is_empty() {
            cov(&self.h, Cov::CacheFlush);
            self.cache.fold_all(now as u64 * 1000);
        }
        self.cache.clear();
    }

    fn exec_parts(&mut self, meta: [u64; key::w::L2_START]) -> Exec<'_> {
        let now_ms = self.shared.now_sec.load(Ordering::Relaxed) as u64 * 1000;
        Exec {
            pools: &mut self.pools,
            socks: &mut self.socks,
            routes: &self.routes,
            out: &mut self.out,
            out_pending: &mut self.out_pending,
            pin: &mut self.pin,
            learn: &mut self.learn,
            h: &self.h,
            ip_id: &mut self.ip_id,
            recirc: None,
            activated: false,
            meta,
            ct: &self.shared.conntrack,
            now_ms,
            defer_ct: self.ct_pend.len() < crate::conntrack::BATCH_MAX,
            deferred: None,
            modified: false,
        }
    }

    /// A cache miss: translate through the pipeline and cache the result. An uncacheable
    /// translation is returned for this packet alone.
    #[cold]
    fn upcall(&mut self, key: &FlowKey, now: u32, pkt_len: u32) -> Result<u32, Box<XlateOut>> {
        let t0 = clock::cycles();
        let cfg = self.shared.config.load();
        let pipe = self.shared.pipeline.load();
        let inp = XlateIn {
            pipe: &pipe,
            cfg: &cfg,
            macs: &self.shared.macs,
            now,
            now_ms: now as u64 * 1000,
            pkt_len,
            trace: false,
            recirc: &self.shared.recirc,
        };
        let x = xlate::translate(&inp, key, key.in_port() as DpPort);
        cov(&self.h, Cov::Upcall);
        if self.shared.recirc.take_cleared() {
            // the recirculation table started afresh: megaflows naming old ids must go
            self.shared.invalidate();
        }
        if x.flooded {
            cov(&self.h, Cov::Flood);
        }
        if x.invalidates {
            cov(&self.h, Cov::MacLearned);
            self.shared.invalidate();
        }
        if let Some(d) = x.drop {
            cov(
                &self.h,
                match d {
                    XlateDrop::NoBridge => Cov::DropNoRoute,
                    XlateDrop::ResubmitLimit => Cov::DropResubmitLimit,
                    XlateDrop::RecircLost => Cov::DropRecircLost,
                    XlateDrop::TtlExpired => Cov::DropTtlExpired,
                    XlateDrop::TunnelNoRoute => Cov::DropTunnelNoRoute,
                    XlateDrop::TunnelNeighMiss => Cov::TunnelNeighMiss,
                },
            );
        }
        if x.drop == Some(XlateDrop::TunnelNeighMiss) || !x.cacheable {
            // a neighbour miss or snoop may have been posted: the control thread sends the
            // ARP request (or learns the entry) now rather than at its next timeout
            if let Some(p) = self.pin.as_ref() {
                p.notify();
            }
        }
        let r = if x.cacheable {
            Ok(self
                .cache
                .insert(key, &x.mask, x.actions, x.learn, x.rules, x.tables, now))
        } else {
            cov(&self.h, Cov::UncacheableFlow);
            Err(Box::new(x))
        };
        self.h.stats.bump(
            PmdStat::UpcallCycles as usize,
            clock::cycles().wrapping_sub(t0),
        );
        r
    }

    /// Formats the megaflow cache for `dpctl/dump-flows`.
    #[cold]
    fn serve_dump(&mut self, now: u32) {
        let cfg = self.shared.config.load();
        let name = |p: u16| {
            cfg.port(p)
                .map(|i| i.name.clone())
                .unwrap_or_else(|| p.to_string())
        };
        let lines: Vec<String> = self
            .cache
            .flows_with_masks()
            .map(|(f, m)| cache::format_megaflow(f, m, now, &name))
            .collect();
        if let Ok(mut d) = self.h.dump.lock() {
            *d = lines;
        }
    }

    /// Sends the packets the control thread handed over (packet-out, resume).
    fn drain_exec(&mut self) -> u32 {
        let Some(mut c) = self.exec_in.take() else {
            return 0;
        };
        let mut jobs: Vec<(Vec<u8>, Arc<ExecJob>)> = Vec::new();
        c.drain_with(32, |_, data, meta| {
            if let Some(j) = meta.take() {
                jobs.push((data.to_vec(), j));
            }
        });
        self.exec_in = Some(c);
        let n = jobs.len() as u32;
        for (data, job) in jobs {
            let Some(pool) = (0..self.pools.len()).find(|&p| !self.pools[p].free.is_empty()) else {
                cov(&self.h, Cov::DropNoFrames);
                continue;
            };
            let Some(base) = self.pools[pool].take() else {
                continue;
            };
            let addr = base + HEADROOM as u64;
            match self.pools[pool].umem.data_mut(addr, data.len()) {
                Some(d) => d.copy_from_slice(&data),
                None => {
                    self.pools[pool].put(base);
                    continue;
                }
            }
            let mut lay = job.lay;
            let mut ex = self.exec_parts(job.meta);
            ex.run(
                pool,
                addr,
                data.len(),
                &mut lay,
                &job.actions,
                cache::last_output(&job.actions),
            );
            let opened = ex.activated;
            let next = ex.recirc.take();
            let (deferred, meta) = (ex.deferred, ex.meta);
            let now = self.shared.now_sec.load(Ordering::Relaxed);
            if opened {
                self.gate_opened(now);
            }
            // a packet-out that reached ct(table=) (or a LOCAL port's decap) continues
            // through the datapath like a received packet
            let mut key = FlowKey::default();
            self.passes = 1;
            if let Some(d) = deferred {
                // no key was extracted for it: the next pass extracts one
                self.defer_ct(pool, &key, &lay, meta, d, false);
            }
            self.recirculate(pool, next, now, &mut key, &mut lay);
        }
        let now = self.shared.now_sec.load(Ordering::Relaxed);
        self.flush_ct(now);
        n
    }

    /// Transmits packets other PMDs handed over for ports this PMD owns.
    fn drain_inbox(&mut self) -> u32 {
        let Pmd {
            inbox,
            pools,
            socks,
            routes,
            h,
            batch,
            ..
        } = self;
        let mut total = 0u32;
        for c in inbox.iter_mut() {
            total += c.drain(*batch as usize * 2, |port, data| {
                cov(h, Cov::HandoffRecv);
                let ti = match routes.get(port as usize) {
                    Some(TxRoute::Local(ti)) => *ti,
                    _ => {
                        cov(h, Cov::DropNoRoute);
                        return;
                    }
                };
                if socks[ti].stage.len() >= STAGE {
                    flush_sock(pools, &mut socks[ti], h);
                }
                let pool = &mut pools[socks[ti].pool];
                let Some(base) = pool.take() else {
                    cov(h, Cov::DropNoFrames);
                    return;
                };
                let dst = base + HEADROOM as u64;
                match pool.umem.data_mut(dst, data.len()) {
                    Some(d) => {
                        d.copy_from_slice(data);
                        socks[ti].stage.push(XdpDesc {
                            addr: dst,
                            len: data.len() as u32,
                            options: 0,
                        });
                    }
                    None => {
                        pool.put(base);
                        cov(h, Cov::DropInvalidDesc);
                    }
                }
            }) as u32;
        }
        total
    }
}

#[cfg(test)]
mod scope_tests {
    use super::*;

    #[test]
    fn a_pmd_behind_gets_the_union_of_what_it_missed_or_everything() {
        let sh = Shared::new(DpConfig::default());
        let g0 = sh.generation.load(Ordering::SeqCst);
        sh.invalidate_scope(Scope::Tables([1, 0, 0, 0]));
        sh.invalidate_scope(Scope::Tables([4, 0, 0, 2]));
        let (g, s) = sh.invalidated_since(g0);
        assert_eq!(g, g0 + 2);
        assert_eq!(s, Scope::Tables([5, 0, 0, 2]));
        // caught up: nothing
        assert_eq!(sh.invalidated_since(g).1, Scope::Tables([0; 4]));
        // an All in between makes it all
        sh.invalidate_scope(Scope::Tables([8, 0, 0, 0]));
        sh.invalidate();
        assert_eq!(sh.invalidated_since(g).1, Scope::All);
        // further behind than the log remembers: all
        let g1 = sh.generation.load(Ordering::SeqCst);
        for _ in 0..SCOPE_LOG + 1 {
            sh.invalidate_scope(Scope::Tables([1, 0, 0, 0]));
        }
        assert_eq!(sh.invalidated_since(g1).1, Scope::All);
        let g2 = sh.generation.load(Ordering::SeqCst);
        sh.invalidate_scope(Scope::Tables([1, 0, 0, 0]));
        assert_eq!(sh.invalidated_since(g2).1, Scope::Tables([1, 0, 0, 0]));
    }
}
