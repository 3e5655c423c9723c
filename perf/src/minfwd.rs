//! The minimal AF_XDP forwarder, the lower bound for what a userspace switch can cost on the same
//! path: a port of the lab probe's `afxdp` forwarder onto our afxdp crate. One thread pinned to
//! the switch core; one UMEM (8192 x 2 KiB frames) shared by an RX socket on IN (queue 0, copy
//! mode unless `--zc`, need_wakeup) and a TX socket on OUT bound with XDP_SHARED_UMEM, so a
//! received frame is transmitted without a copy; rings of 2048; batch 64; a MAC learn (source)
//! and lookup (destination) per packet in a small open-addressing table, as the probe does.
//!
//! Accounting, as xvswitchd's `pmd/stats` does it: TSC cycles of loop iterations that received
//! packets or kicked TX ("busy"), divided by the packets received in them; iterations longer
//! than 500 µs were preempted and are left out (cycles and packets), as xvswitchd leaves out its
//! preempted rounds. Iterations that only reaped completions count as idle, as xvswitchd's rounds
//! without received packets do. Also reported: the same with preempted iterations included, and
//! the lab probe's accounting (any work, completions included, per packet sent).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use afxdp::{asm, bpf, netdev, BindMode, Umem, XdpDesc, XskConfig, XskSocket};
use serde_json::json;

use crate::agent::{attach, Args};
use crate::util::rdtsc;

/// Tiny open-addressing MAC table: the per-packet work of an L2 learning switch.
struct MacTable {
    keys: Vec<u64>,
    ports: Vec<u32>,
}

impl MacTable {
    fn new() -> Self {
        MacTable {
            keys: vec![0; 1024],
            ports: vec![0; 1024],
        }
    }
    #[inline]
    fn slot(k: u64) -> usize {
        ((k.wrapping_mul(0x9E37_79B9_7F4A_7C15)) >> 54) as usize
    }
    #[inline]
    fn learn(&mut self, k: u64, port: u32) {
        let mut i = Self::slot(k);
        for _ in 0..1024 {
            if self.keys[i] == k || self.keys[i] == 0 {
                self.keys[i] = k;
                self.ports[i] = port;
                return;
            }
            i = (i + 1) & 1023;
        }
    }
    #[inline]
    fn lookup(&self, k: u64) -> Option<u32> {
        let mut i = Self::slot(k);
        for _ in 0..1024 {
            if self.keys[i] == k {
                return Some(self.ports[i]);
            }
            if self.keys[i] == 0 {
                return None;
            }
            i = (i + 1) & 1023;
        }
        None
    }
}

#[inline]
fn mac_key(b: &[u8]) -> u64 {
    let mut k = [0u8; 8];
    k[..6].copy_from_slice(&b[..6]);
    u64::from_le_bytes(k) | (1 << 63)
}

/// Counters the forwarder publishes on request.
#[derive(Clone, Copy)]
#[repr(usize)]
enum V {
    Rx,
    Tx,
    RingDrops,
    BusyCycles,
    IdleCycles,
    WorkCycles,
    StolenCycles,
    StolenBusyCycles,
    StolenWorkCycles,
    RxStolen,
    Iters,
    BusyIters,
    Kicks,
    KickErrors,
    Tsc,
    N,
}

const NAMES: [&str; V::N as usize] = [
    "rx",
    "tx",
    "ring_drops",
    "busy_cycles",
    "idle_cycles",
    "work_cycles",
    "stolen_cycles",
    "stolen_busy_cycles",
    "stolen_work_cycles",
    "rx_stolen",
    "iters",
    "busy_iters",
    "kicks",
    "kick_errors",
    "tsc",
];

#[repr(align(64))]
struct Control {
    quit: AtomicBool,
    req: AtomicU64,
}

#[repr(align(64))]
struct Published {
    ack: AtomicU64,
    vals: [AtomicU64; V::N as usize],
}

struct Shared {
    ctl: Control,
    pubd: Published,
}

pub struct Cfg {
    pub batch: u32,
    pub ring: u32,
    pub frames: u32,
    pub frame_size: u32,
    /// Iterations longer than this many TSC cycles are counted as preempted.
    pub steal_cycles: u64,
}

struct Fwd {
    umem: Umem,
    rxs: XskSocket,
    txs: XskSocket,
    free: Vec<u64>,
    macs: MacTable,
    c: [u64; V::N as usize],
}

impl Fwd {
    fn run(&mut self, sh: &Shared, cfg: &Cfg) {
        let batch = cfg.batch;
        let mut seen = 0u64;
        let mut tprev = rdtsc();
        loop {
            if sh.ctl.quit.load(Ordering::Relaxed) {
                break;
            }
            let r = sh.ctl.req.load(Ordering::Relaxed);
            if r != seen {
                self.c[V::Tsc as usize] = rdtsc();
                for (i, v) in self.c.iter().enumerate() {
                    sh.pubd.vals[i].store(*v, Ordering::Relaxed);
                }
                sh.pubd.ack.store(r, Ordering::Release);
                seen = r;
            }
            let mut received = false;
            let mut kicked = false;
            let mut reaped = false;
            // RX -> TX, same UMEM: hand the descriptor over
            let n = self.rxs.rx.peek(batch);
            if n > 0 {
                let k = self.txs.tx.free(n).min(n);
                for i in 0..n {
                    let d = self.rxs.rx.read(i);
                    if let Some(h) = self.umem.data(d.addr, 12) {
                        let src = mac_key(&h[6..12]);
                        self.macs.learn(src, 0);
                        std::hint::black_box(self.macs.lookup(mac_key(&h[0..6])).unwrap_or(1));
                    }
                    if i < k {
                        self.txs.tx.write(
                            i,
                            XdpDesc {
                                addr: d.addr,
                                len: d.len,
                                options: 0,
                            },
                        );
                    } else {
                        self.free.push(d.addr);
                    }
                }
                self.rxs.rx.release(n);
                self.txs.tx.submit(k);
                self.c[V::Rx as usize] += n as u64;
                self.c[V::Tx as usize] += k as u64;
                self.c[V::RingDrops as usize] += (n - k) as u64;
                received = true;
            }
            // copy mode transmits only from sendto(); it takes 32 descriptors per call
            if self.txs.tx.outstanding() > 0 {
                self.c[V::Kicks as usize] += 1;
                kicked = true;
                if let Err(e) = self.txs.kick_tx() {
                    if e != libc::EAGAIN && e != libc::EBUSY && e != libc::ENOBUFS {
                        self.c[V::KickErrors as usize] += 1;
                    }
                }
            }
            // completions -> free list
            let c = self.txs.comp.peek(4096);
            if c > 0 {
                for i in 0..c {
                    self.free.push(self.txs.comp.read(i));
                }
                self.txs.comp.release(c);
                reaped = true;
            }
            // refill
            let want = self.free.len() as u32;
            if want > 0 {
                let f = self.rxs.fill.free(want).min(want);
                for i in 0..f {
                    let a = self.free.pop().unwrap_or(0);
                    self.rxs.fill.write(i, a);
                }
                self.rxs.fill.submit(f);
            }
            if self.rxs.fill.needs_wakeup() {
                self.rxs.kick_rx();
            }
            let t = rdtsc();
            let d = t.wrapping_sub(tprev);
            tprev = t;
            let c = &mut self.c;
            c[V::Iters as usize] += 1;
            let busy = received || kicked;
            let work = busy || reaped;
            let stolen = d > cfg.steal_cycles;
            if busy {
                c[V::BusyCycles as usize] += d;
                c[V::BusyIters as usize] += 1;
            } else {
                c[V::IdleCycles as usize] += d;
            }
            if work {
                c[V::WorkCycles as usize] += d;
            }
            if stolen {
                c[V::StolenCycles as usize] += d;
                if busy {
                    c[V::StolenBusyCycles as usize] += d;
                    c[V::RxStolen as usize] += n as u64;
                }
                if work {
                    c[V::StolenWorkCycles as usize] += d;
                }
            }
        }
    }
}

/// `xvs-perf agent minfwd --in IF --out IF [--cpu N] [--batch 64] [--ring 2048]
/// [--frames 8192] [--zc] [--queue 0]`
pub fn agent(a: &Args) -> Result<(), String> {
    let inif = a.req("in")?;
    let outif = a.req("out")?;
    let queue: u32 = a.num("queue", 0)?;
    let cpu: Option<usize> = a.get("cpu").and_then(|c| c.parse().ok());
    let cfg = Cfg {
        batch: a.num("batch", 64)?,
        ring: a.num("ring", 2048)?,
        frames: a.num("frames", 8192)?,
        frame_size: a.num("frame-size", 2048)?,
        steal_cycles: (crate::util::tsc_hz(Duration::from_millis(50)) * 500e-6) as u64,
    };
    let in_idx = netdev::ifindex(&inif).map_err(|e| e.to_string())?;
    let out_idx = netdev::ifindex(&outif).map_err(|e| e.to_string())?;
    let umem = Umem::new(cfg.frames, cfg.frame_size, 0, false).map_err(|e| e.to_string())?;
    let ring = cfg.ring;
    let rx_cfg = |mode| XskConfig {
        ifindex: in_idx,
        queue,
        rx_size: ring,
        tx_size: 64,
        fill_size: ring * 2,
        comp_size: 64,
        mode,
        need_wakeup: true,
        sndbuf: 64 << 20,
    };
    let mut notes = Vec::new();
    let rxs = if a.flag("zc") {
        match XskSocket::new_owner(&umem, &rx_cfg(BindMode::ZeroCopy)) {
            Ok(s) if s.is_zerocopy() => Some(s),
            Ok(_) => {
                notes.push("zero-copy bind fell back to copy".to_string());
                None
            }
            Err(e) => {
                notes.push(format!("zero-copy bind failed ({e}), using copy mode"));
                None
            }
        }
    } else {
        None
    };
    let rxs = match rxs {
        Some(s) => s,
        None => XskSocket::new_owner(&umem, &rx_cfg(BindMode::Copy))
            .map_err(|e| format!("AF_XDP socket on {inif} queue {queue}: {e}"))?,
    };
    let txs = XskSocket::new_shared(
        &rxs,
        &XskConfig {
            ifindex: out_idx,
            queue,
            rx_size: 64,
            tx_size: ring,
            fill_size: ring,
            comp_size: ring * 2,
            mode: BindMode::Copy,
            need_wakeup: true,
            sndbuf: 64 << 20,
        },
    )
    .map_err(|e| format!("shared-UMEM AF_XDP socket on {outif} queue {queue}: {e}"))?;
    let zc = rxs.is_zerocopy();
    let xskmap = bpf::map_create(
        bpf::BPF_MAP_TYPE_XSKMAP,
        4,
        4,
        afxdp::netdev::rx_queues(&inif).max(queue + 1),
        "xvsperf_xsks",
    )
    .map_err(|e| format!("xskmap: {e}"))?;
    {
        use std::os::fd::AsRawFd;
        bpf::map_update(
            xskmap.as_raw_fd(),
            &queue.to_ne_bytes(),
            &rxs.fd().to_ne_bytes(),
        )
        .map_err(|e| format!("xskmap[{queue}]: {e}"))?;
        let prog = bpf::prog_load_xdp(&asm::xsk_redirect(xskmap.as_raw_fd()), "xvsperf_xsk")
            .map_err(|e| format!("load xsk program: {e}"))?;
        let (link, mode) = attach(&prog, &inif, true)?;
        // the link must outlive the forwarder: keep it (and the map) until we return
        let rx_fd = rxs.fd();
        let tx_fd = txs.fd();
        let mut free = Vec::with_capacity(cfg.frames as usize);
        let mut rxs = rxs;
        {
            let n0 = (ring * 2).min(cfg.frames / 2);
            let f = rxs.fill.free(n0).min(n0);
            for i in 0..f {
                rxs.fill.write(i, i as u64 * cfg.frame_size as u64);
            }
            rxs.fill.submit(f);
            for i in f..cfg.frames {
                free.push(i as u64 * cfg.frame_size as u64);
            }
        }
        let shared = Arc::new(Shared {
            ctl: Control {
                quit: AtomicBool::new(false),
                req: AtomicU64::new(0),
            },
            pubd: Published {
                ack: AtomicU64::new(0),
                vals: Default::default(),
            },
        });
        let mut fwd = Fwd {
            umem,
            rxs,
            txs,
            free,
            macs: MacTable::new(),
            c: [0; V::N as usize],
        };
        let (started_tx, started_rx) = std::sync::mpsc::channel::<Option<String>>();
        let worker = {
            let sh = shared.clone();
            std::thread::Builder::new()
                .name("minfwd".into())
                .spawn(move || {
                    if let Some(c) = cpu {
                        if let Err(e) = crate::util::set_affinity(0, &[c]) {
                            let _ = started_tx.send(Some(e.to_string()));
                            return;
                        }
                    }
                    let _ = started_tx.send(None);
                    fwd.run(&sh, &cfg);
                })
                .map_err(|e| format!("spawn forwarder: {e}"))?
        };
        // READY only once the thread runs (named and pinned), so the scenario can find it
        match started_rx.recv_timeout(Duration::from_secs(5)) {
            Ok(None) => {}
            Ok(Some(e)) => return Err(format!("forwarder thread: {e}")),
            Err(_) => return Err("forwarder thread did not start".into()),
        }
        crate::agent::ready_line(json!({
            "in": inif, "out": outif, "queue": queue, "xdp": mode,
            "bind": if zc { "zero-copy" } else { "copy" }, "need_wakeup": true,
            "batch": a.num::<u32>("batch", 64)?, "ring": ring, "cpu": cpu, "notes": notes,
        }));
        let mut req = 0u64;
        crate::agent::serve_stats(|| {
            req += 1;
            shared.ctl.req.store(req, Ordering::Relaxed);
            let t = std::time::Instant::now();
            while shared.pubd.ack.load(Ordering::Acquire) < req {
                if t.elapsed() > Duration::from_secs(2) {
                    return json!({"error": "forwarder did not answer within 2 s"});
                }
                std::thread::sleep(Duration::from_micros(100));
            }
            let mut m = serde_json::Map::new();
            for (i, n) in NAMES.iter().enumerate() {
                m.insert(
                    n.to_string(),
                    json!(shared.pubd.vals[i].load(Ordering::Relaxed)),
                );
            }
            if let Ok(st) = afxdp::socket::statistics(rx_fd) {
                m.insert(
                    "xsk_rx".into(),
                    json!({"rx_dropped": st.rx_dropped, "rx_ring_full": st.rx_ring_full,
                           "fill_ring_empty": st.rx_fill_ring_empty_descs,
                           "rx_invalid_descs": st.rx_invalid_descs}),
                );
            }
            if let Ok(st) = afxdp::socket::statistics(tx_fd) {
                m.insert(
                    "xsk_tx".into(),
                    json!({"tx_invalid_descs": st.tx_invalid_descs,
                           "tx_ring_empty": st.tx_ring_empty_descs}),
                );
            }
            serde_json::Value::Object(m)
        });
        shared.ctl.quit.store(true, Ordering::Relaxed);
        let _ = worker.join();
        drop(link);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mac_table_learns_and_finds() {
        let mut t = MacTable::new();
        let a = mac_key(&[2, 0, 0, 0, 0, 1]);
        let b = mac_key(&[2, 0, 0, 0, 0, 2]);
        assert_eq!(t.lookup(a), None);
        t.learn(a, 3);
        t.learn(b, 4);
        assert_eq!(t.lookup(a), Some(3));
        assert_eq!(t.lookup(b), Some(4));
        t.learn(a, 5);
        assert_eq!(t.lookup(a), Some(5));
    }

    #[test]
    fn counter_names_cover_all_counters() {
        assert_eq!(NAMES.len(), V::N as usize);
        assert_eq!(NAMES[V::BusyCycles as usize], "busy_cycles");
        assert_eq!(NAMES[V::Tsc as usize], "tsc");
    }
}
