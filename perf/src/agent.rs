//! Agents: short helper processes the scenario starts inside a namespace (`ip netns exec NS
//! xvs-perf agent KIND ...`). Each sets up its XDP program / sockets, prints `READY {json}`,
//! then answers every `s` line on stdin with `STATS {json}` and exits when stdin closes (so an
//! agent never outlives the scenario; it also gets SIGKILL if the scenario dies). Setup failures
//! print `ERROR message` and exit 1.
//!
//! * `gen`    live-frame generator: BPF_PROG_RUN with BPF_F_TEST_XDP_LIVE_FRAMES running
//!   `bpf_redirect(IF)` on a 60-byte IPv4/UDP frame (64 B on the wire), batch 64, pinned;
//!   `--count N` sends N frames and exits (used to announce a MAC to the switch); `--flows N`
//!   round-robins over N flows (distinct source address and port, rewritten per frame by the
//!   XDP program), or with `--pps R` sends each of them once, paced; `--reply` with `--pps`
//!   sends the reply of each flow instead (addresses and ports swapped: the conntrack scenario
//!   answers every connection once from the sink side so it becomes established).
//! * `sink`   XDP program counting (per-CPU) and dropping everything arriving on IF.
//! * `kfwd`   kernel-only forwarder: `bpf_redirect_map(devmap)` IN -> OUT, with a per-CPU counter.
//! * `minfwd` the minimal AF_XDP forwarder (see `minfwd.rs`).
//! * `tcps`   TCP server: accepts on `--listen ADDR`, writes one byte, closes (the server closes
//!   first, so the TIME_WAIT sockets stay on its side); STATS count the connections accepted.
//! * `tcpc`   TCP client: `--threads T` loops of connect to `--dst ADDR`, read to EOF, close, for
//!   `--secs S`; prints `DONE ok failed seconds` (connection setup rate through a switch).

use std::io::{BufRead, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use afxdp::{asm, bpf, netdev, sys};
use serde_json::{json, Value};

use crate::util::{self, LineChild, Result};

/// Simple `--key value` / `--flag` argument reader for the agents.
pub struct Args(Vec<String>);

impl Args {
    pub fn new(v: &[String]) -> Self {
        Args(v.to_vec())
    }
    pub fn get(&self, k: &str) -> Option<String> {
        let key = format!("--{k}");
        self.0
            .iter()
            .position(|a| *a == key)
            .and_then(|i| self.0.get(i + 1).cloned())
    }
    pub fn flag(&self, k: &str) -> bool {
        let key = format!("--{k}");
        self.0.contains(&key)
    }
    pub fn req(&self, k: &str) -> std::result::Result<String, String> {
        self.get(k).ok_or_else(|| format!("--{k} is required"))
    }
    pub fn num<T: std::str::FromStr>(&self, k: &str, d: T) -> std::result::Result<T, String> {
        match self.get(k) {
            None => Ok(d),
            Some(v) => v.parse().map_err(|_| format!("--{k}: bad number {v:?}")),
        }
    }
}

fn out(line: &str) {
    let mut o = std::io::stdout().lock();
    let _ = writeln!(o, "{line}");
    let _ = o.flush();
}

fn fail(msg: &str) -> ! {
    out(&format!("ERROR {msg}"));
    eprintln!("xvs-perf agent: {msg}");
    std::process::exit(1)
}

/// Prints the READY line.
pub fn ready_line(v: Value) {
    out(&format!("READY {v}"));
}

/// Serves `s` requests on stdin until EOF or `q`.
pub fn serve_stats(mut stats: impl FnMut() -> Value) {
    let stdin = std::io::stdin();
    for line in stdin.lock().lines() {
        match line.as_deref().map(str::trim) {
            Ok("s") => out(&format!("STATS {}", stats())),
            Ok("q") | Err(_) => break,
            Ok(_) => {}
        }
    }
}

/// Entry point for `xvs-perf agent KIND ARGS...`.
pub fn main(kind: &str, args: &[String]) -> ! {
    let a = Args::new(args);
    let r = match kind {
        "gen" => gen(&a),
        "sink" => sink(&a),
        "kfwd" => kfwd(&a),
        "minfwd" => crate::minfwd::agent(&a),
        "tcps" => tcp_server(&a),
        "tcpc" => tcp_client(&a),
        _ => Err(format!("unknown agent {kind:?}")),
    };
    match r {
        Ok(()) => std::process::exit(0),
        Err(e) => fail(&e),
    }
}

/// Attaches `prog` to `ifindex` through a bpf_link: native, or generic if `allow_generic` and
/// native fails. Returns the link and the mode used.
pub fn attach(
    prog: &OwnedFd,
    ifname: &str,
    allow_generic: bool,
) -> std::result::Result<(OwnedFd, &'static str), String> {
    let idx = netdev::ifindex(ifname).map_err(|e| e.to_string())?;
    match bpf::link_create_xdp(prog.as_raw_fd(), idx, sys::XDP_FLAGS_DRV_MODE) {
        Ok(l) => Ok((l, "native")),
        Err(e) if allow_generic => {
            bpf::link_create_xdp(prog.as_raw_fd(), idx, sys::XDP_FLAGS_SKB_MODE)
                .map(|l| (l, "generic"))
                .map_err(|e2| format!("attach XDP to {ifname}: native: {e}; generic: {e2}"))
        }
        Err(e) => Err(format!("attach XDP (native) to {ifname}: {e}")),
    }
}

/// 60-byte IPv4/UDP frame (64 bytes on the wire with the FCS) between addresses of the RFC 2544
/// benchmarking range 198.18.0.0/15, UDP port 9 (discard), checksum 0.
pub fn build_frame(size: usize, dst: [u8; 6], src: [u8; 6]) -> Vec<u8> {
    build_frame_ports(size, dst, src, 9, 9)
}

/// [`build_frame`] with the given UDP source and destination ports.
pub fn build_frame_ports(
    size: usize,
    dst: [u8; 6],
    src: [u8; 6],
    sport: u16,
    dport: u16,
) -> Vec<u8> {
    let size = size.max(60);
    let mut p = vec![0u8; size];
    p[0..6].copy_from_slice(&dst);
    p[6..12].copy_from_slice(&src);
    p[12] = 0x08;
    p[13] = 0x00;
    let ip_len = (size - 14) as u16;
    {
        let ip = &mut p[14..34];
        ip[0] = 0x45;
        ip[2..4].copy_from_slice(&ip_len.to_be_bytes());
        ip[6] = 0x40; // DF
        ip[8] = 64;
        ip[9] = 17;
        ip[12..16].copy_from_slice(&[198, 18, 0, 1]);
        ip[16..20].copy_from_slice(&[198, 19, 0, 1]);
        let mut sum: u32 = 0;
        for i in (0..20).step_by(2) {
            sum += u16::from_be_bytes([ip[i], ip[i + 1]]) as u32;
        }
        while sum > 0xffff {
            sum = (sum & 0xffff) + (sum >> 16);
        }
        ip[10..12].copy_from_slice(&(!(sum as u16)).to_be_bytes());
    }
    let udp_len = ip_len - 20;
    p[34..36].copy_from_slice(&sport.to_be_bytes());
    p[36..38].copy_from_slice(&dport.to_be_bytes());
    p[38..40].copy_from_slice(&udp_len.to_be_bytes());
    p
}

fn mac_arg(a: &Args, k: &str, d: &str) -> std::result::Result<[u8; 6], String> {
    let s = a.get(k).unwrap_or_else(|| d.to_string());
    util::parse_mac(&s).ok_or_else(|| format!("--{k}: bad MAC {s:?}"))
}

fn gen(a: &Args) -> std::result::Result<(), String> {
    let ifname = a.req("if")?;
    let idx = netdev::ifindex(&ifname).map_err(|e| e.to_string())?;
    let size: usize = a.num("size", 60)?;
    let batch: u32 = a.num("batch", 64)?;
    let dst = mac_arg(a, "dst", "02:00:00:00:00:02")?;
    let src = mac_arg(a, "src", "02:00:00:00:00:01")?;
    let frame = build_frame(size, dst, src);
    let prog = bpf::prog_load_xdp(&asm::ifindex_redirect(idx), "xvsperf_gen")
        .map_err(|e| format!("load generator program: {e}"))?;
    if let Some(n) = a.get("dports") {
        // one frame per UDP destination port, each sent once, paced
        let n: u32 = n.parse().map_err(|_| "--dports: bad number".to_string())?;
        let first: u16 = a.num("dport-first", 1000)?;
        let pps: f64 = a.num("pps", 5000.0)?;
        if let Some(c) = a.get("cpu").and_then(|c| c.parse::<usize>().ok()) {
            util::set_affinity(0, &[c]).map_err(|e| e.to_string())?;
        }
        let frames: Vec<Vec<u8>> = (0..n)
            .map(|i| build_frame_ports(size, dst, src, 9, first.wrapping_add(i as u16)))
            .collect();
        let gap = std::time::Duration::from_secs_f64(1.0 / pps.max(1.0));
        let t0 = std::time::Instant::now();
        for (i, f) in frames.iter().enumerate() {
            let due = t0 + gap * i as u32;
            let now = std::time::Instant::now();
            if due > now {
                std::thread::sleep(due - now);
            }
            bpf::prog_test_run_live(prog.as_raw_fd(), f, 1, 1)
                .map_err(|e| format!("BPF_PROG_RUN (live frames) on {ifname}: {e}"))?;
        }
        out(&format!("DONE {n} {:.6}", t0.elapsed().as_secs_f64()));
        return Ok(());
    }
    if let Some(n) = a.get("flows") {
        return gen_flows(a, &ifname, idx, n, size, dst, src);
    }
    if let Some(n) = a.get("count") {
        let n: u32 = n.parse().map_err(|_| "--count: bad number".to_string())?;
        bpf::prog_test_run_live(prog.as_raw_fd(), &frame, n.max(1), batch.min(n.max(1)))
            .map_err(|e| format!("BPF_PROG_RUN (live frames) on {ifname}: {e}"))?;
        out(&format!("DONE {n}"));
        return Ok(());
    }
    let cpu: Option<usize> = a.get("cpu").and_then(|c| c.parse().ok());
    let repeat: u32 = a.num("repeat", 1 << 16)?;
    // one frame first, so a kernel without live frames fails here, not silently later
    bpf::prog_test_run_live(prog.as_raw_fd(), &frame, 1, 1)
        .map_err(|e| format!("BPF_PROG_RUN (live frames) on {ifname}: {e}"))?;
    let sent = Arc::new(AtomicU64::new(1));
    let quit = Arc::new(AtomicBool::new(false));
    let err: Arc<Mutex<Option<String>>> = Arc::new(Mutex::new(None));
    let worker = {
        let (sent, quit, err) = (sent.clone(), quit.clone(), err.clone());
        std::thread::spawn(move || {
            if let Some(c) = cpu {
                if let Err(e) = util::set_affinity(0, &[c]) {
                    *err.lock().unwrap() = Some(e.to_string());
                    return;
                }
            }
            while !quit.load(Ordering::Relaxed) {
                match bpf::prog_test_run_live(prog.as_raw_fd(), &frame, repeat, batch) {
                    Ok(_) => {
                        sent.fetch_add(repeat as u64, Ordering::Relaxed);
                    }
                    Err(e) => {
                        *err.lock().unwrap() = Some(format!("BPF_PROG_RUN: {e}"));
                        return;
                    }
                }
            }
        })
    };
    out(&format!(
        "READY {}",
        json!({"if": ifname, "ifindex": idx, "frame_len": size, "batch": batch, "cpu": cpu,
               "src": util::fmt_mac(&src), "dst": util::fmt_mac(&dst)})
    ));
    serve_stats(
        || json!({"pkts": sent.load(Ordering::Relaxed), "error": err.lock().unwrap().clone()}),
    );
    quit.store(true, Ordering::Relaxed);
    let _ = worker.join();
    Ok(())
}

/// Frame of flow `i` of a multi-flow stream: the base frame of [`build_frame_ports`] with
/// source address 198.18.0.0 + 1 + i, IPv4 identification 0xffff - i (so the header checksum
/// stays the base frame's: one 16-bit word goes up by i, another down by i) and UDP source port
/// 1024 + i. What [`flows_program`] writes into each live frame, computed here for the paced
/// one-shot mode and the tests.
pub fn flow_frame(base: &[u8], i: u16) -> Vec<u8> {
    let mut f = base.to_vec();
    f[28..30].copy_from_slice(&(FLOW_SRC_LO + i).to_be_bytes());
    f[18..20].copy_from_slice(&(FLOW_ID_BASE - i).to_be_bytes());
    f[34..36].copy_from_slice(&(FLOW_SPORT + i).to_be_bytes());
    f
}

/// The reply to a frame of [`flow_frame`]: IPv4 addresses and UDP ports swapped (the MACs are
/// the caller's: build the stream with the reply's source and destination MACs). Swapping
/// 16-bit words inside the header keeps the IPv4 checksum valid; the UDP checksum is 0.
pub fn reply_frame(f: &[u8]) -> Vec<u8> {
    let mut r = f.to_vec();
    if r.len() >= 38 {
        r[26..30].copy_from_slice(&f[30..34]);
        r[30..34].copy_from_slice(&f[26..30]);
        r[34..36].copy_from_slice(&f[36..38]);
        r[36..38].copy_from_slice(&f[34..36]);
    }
    r
}

/// Low 16 bits of flow 0's source address (198.18.0.1), its IPv4 id and UDP source port.
const FLOW_SRC_LO: u16 = 1;
const FLOW_ID_BASE: u16 = 0xffff;
const FLOW_SPORT: u16 = 1024;
/// Most flows a stream can have (the source address stays inside 198.18.0.0/16).
pub const MAX_FLOWS: u32 = 60000;

/// The base frame of a multi-flow stream: flow 0, with the IPv4 checksum over it.
pub fn flows_base_frame(size: usize, dst: [u8; 6], src: [u8; 6]) -> Vec<u8> {
    let mut f = build_frame_ports(size, dst, src, FLOW_SPORT, 9);
    f[28..30].copy_from_slice(&FLOW_SRC_LO.to_be_bytes());
    f[18..20].copy_from_slice(&FLOW_ID_BASE.to_be_bytes());
    f[24..26].copy_from_slice(&[0, 0]);
    let mut sum: u32 = 0;
    for i in (14..34).step_by(2) {
        sum += u16::from_be_bytes([f[i], f[i + 1]]) as u32;
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    f[24..26].copy_from_slice(&(!(sum as u16)).to_be_bytes());
    f
}

/// Generator program for a stream of `n` flows: a counter in `map_fd` (array, one u64) picks
/// flow `i = counter++ % n` for each live frame and rewrites the frame into [`flow_frame`]`(i)`
/// (round robin over the flows, packet by packet), then `bpf_redirect(ifindex, 0)`.
pub fn flows_program(ifindex: u32, map_fd: i32, n: u32) -> Vec<u64> {
    use afxdp::asm::insn;
    let (r0, r1, r2, r3, r4, r5, r6, r7, r10) = (0, 1, 2, 3, 4, 5, 6, 7, 10);
    vec![
        insn(0xbf, r6, r1, 0, 0),                  // r6 = ctx
        insn(0x62, r10, 0, -4, 0),                 // *(u32 *)(r10 - 4) = 0
        insn(0xbf, r2, r10, 0, 0),                 // r2 = r10
        insn(0x07, r2, 0, 0, -4),                  // r2 += -4
        insn(0x18, r1, 1, 0, map_fd),              // r1 = map (lddw, BPF_PSEUDO_MAP_FD)
        insn(0, 0, 0, 0, 0),                       //
        insn(0x85, 0, 0, 0, 1),                    // call map_lookup_elem
        insn(0xb7, r7, 0, 0, 0),                   // r7 = 0
        insn(0x15, r0, 0, 4, 0),                   // if r0 == 0 goto +4
        insn(0x79, r7, r0, 0, 0),                  // r7 = *(u64 *)r0
        insn(0xbf, r1, r7, 0, 0),                  // r1 = r7
        insn(0x07, r1, 0, 0, 1),                   // r1 += 1
        insn(0x7b, r0, r1, 0, 0),                  // *(u64 *)r0 = r1
        insn(0x97, r7, 0, 0, n as i32),            // r7 %= n
        insn(0x61, r2, r6, 0, 0),                  // r2 = ctx->data
        insn(0x61, r3, r6, 4, 0),                  // r3 = ctx->data_end
        insn(0xbf, r4, r2, 0, 0),                  // r4 = r2
        insn(0x07, r4, 0, 0, 42),                  // r4 += 42
        insn(0x2d, r4, r3, 12, 0),                 // if r4 > r3 goto +12 (redirect as is)
        insn(0xbf, r5, r7, 0, 0),                  // r5 = i
        insn(0x07, r5, 0, 0, FLOW_SRC_LO as i32),  // r5 += src low base
        insn(0xdc, r5, 0, 0, 16),                  // r5 = htobe16(r5)
        insn(0x6b, r2, r5, 28, 0),                 // *(u16 *)(data + 28) = r5 (ip saddr, low half)
        insn(0xb7, r5, 0, 0, FLOW_ID_BASE as i32), // r5 = id base
        insn(0x1f, r5, r7, 0, 0),                  // r5 -= i
        insn(0xdc, r5, 0, 0, 16),                  // r5 = htobe16(r5)
        insn(0x6b, r2, r5, 18, 0),                 // *(u16 *)(data + 18) = r5 (ip id)
        insn(0xbf, r5, r7, 0, 0),                  // r5 = i
        insn(0x07, r5, 0, 0, FLOW_SPORT as i32),   // r5 += sport base
        insn(0xdc, r5, 0, 0, 16),                  // r5 = htobe16(r5)
        insn(0x6b, r2, r5, 34, 0),                 // *(u16 *)(data + 34) = r5 (udp sport)
        insn(0xb7, r1, 0, 0, ifindex as i32),      // r1 = ifindex
        insn(0xb7, r2, 0, 0, 0),                   // r2 = 0
        insn(0x85, 0, 0, 0, 23),                   // call redirect
        insn(0x95, 0, 0, 0, 0),                    // exit
    ]
}

/// `gen --flows N`: a stream over N flows ([`flow_frame`]). With `--pps R` each flow
/// `--flow-first F` .. F+N-1 is sent once, paced (first packets: megaflow misses); without,
/// live frames round-robin over flows 0..N-1 as fast as the generator goes (served like the
/// one-flow stream: READY, `s` -> STATS).
fn gen_flows(
    a: &Args,
    ifname: &str,
    idx: u32,
    n: String,
    size: usize,
    dst: [u8; 6],
    src: [u8; 6],
) -> std::result::Result<(), String> {
    let n: u32 = n.parse().map_err(|_| "--flows: bad number".to_string())?;
    let first: u32 = a.num("flow-first", 0)?;
    if n == 0 || first + n > MAX_FLOWS {
        return Err(format!("--flows/--flow-first: at most {MAX_FLOWS} flows"));
    }
    let base = flows_base_frame(size, dst, src);
    let cpu: Option<usize> = a.get("cpu").and_then(|c| c.parse().ok());
    if let Some(pps) = a.get("pps") {
        let pps: f64 = pps.parse().map_err(|_| "--pps: bad number".to_string())?;
        if let Some(c) = cpu {
            util::set_affinity(0, &[c]).map_err(|e| e.to_string())?;
        }
        let prog = bpf::prog_load_xdp(&asm::ifindex_redirect(idx), "xvsperf_gen")
            .map_err(|e| format!("load generator program: {e}"))?;
        let reply = a.flag("reply");
        let frames: Vec<Vec<u8>> = (first..first + n)
            .map(|i| flow_frame(&base, i as u16))
            .map(|f| if reply { reply_frame(&f) } else { f })
            .collect();
        let gap = std::time::Duration::from_secs_f64(1.0 / pps.max(1.0));
        let t0 = std::time::Instant::now();
        for (i, f) in frames.iter().enumerate() {
            let due = t0 + gap * i as u32;
            let now = std::time::Instant::now();
            if due > now {
                std::thread::sleep(due - now);
            }
            bpf::prog_test_run_live(prog.as_raw_fd(), f, 1, 1)
                .map_err(|e| format!("BPF_PROG_RUN (live frames) on {ifname}: {e}"))?;
        }
        out(&format!("DONE {n} {:.6}", t0.elapsed().as_secs_f64()));
        return Ok(());
    }
    let batch: u32 = a.num("batch", 64)?;
    let repeat: u32 = a.num("repeat", 1 << 16)?;
    let ctr = bpf::map_create(bpf::BPF_MAP_TYPE_ARRAY, 4, 8, 1, "xvsperf_flows")
        .map_err(|e| format!("counter map: {e}"))?;
    let prog = bpf::prog_load_xdp(&flows_program(idx, ctr.as_raw_fd(), n), "xvsperf_genf")
        .map_err(|e| format!("load multi-flow generator program: {e}"))?;
    bpf::prog_test_run_live(prog.as_raw_fd(), &base, 1, 1)
        .map_err(|e| format!("BPF_PROG_RUN (live frames) on {ifname}: {e}"))?;
    let sent = Arc::new(AtomicU64::new(1));
    let quit = Arc::new(AtomicBool::new(false));
    let err: Arc<Mutex<Option<String>>> = Arc::new(Mutex::new(None));
    let worker = {
        let (sent, quit, err) = (sent.clone(), quit.clone(), err.clone());
        std::thread::spawn(move || {
            if let Some(c) = cpu {
                if let Err(e) = util::set_affinity(0, &[c]) {
                    *err.lock().unwrap() = Some(e.to_string());
                    return;
                }
            }
            while !quit.load(Ordering::Relaxed) {
                match bpf::prog_test_run_live(prog.as_raw_fd(), &base, repeat, batch) {
                    Ok(_) => {
                        sent.fetch_add(repeat as u64, Ordering::Relaxed);
                    }
                    Err(e) => {
                        *err.lock().unwrap() = Some(format!("BPF_PROG_RUN: {e}"));
                        return;
                    }
                }
            }
        })
    };
    out(&format!(
        "READY {}",
        json!({"if": ifname, "ifindex": idx, "frame_len": size, "batch": batch, "cpu": cpu,
               "flows": n, "src": util::fmt_mac(&src), "dst": util::fmt_mac(&dst)})
    ));
    serve_stats(
        || json!({"pkts": sent.load(Ordering::Relaxed), "error": err.lock().unwrap().clone()}),
    );
    quit.store(true, Ordering::Relaxed);
    let _ = worker.join();
    let mut v = [0u8; 8];
    let _ = bpf::map_lookup(ctr.as_raw_fd(), &0u32.to_ne_bytes(), &mut v);
    eprintln!(
        "multi-flow generator: {} frames rewritten",
        u64::from_ne_bytes(v)
    );
    Ok(())
}

fn sink(a: &Args) -> std::result::Result<(), String> {
    let ifname = a.req("if")?;
    let cnt = bpf::PerCpuCounters::new("xvsperf_sink", 1).map_err(|e| e.to_string())?;
    let prog = bpf::prog_load_xdp(&asm::count_drop(cnt.fd()), "xvsperf_sink")
        .map_err(|e| format!("load sink program: {e}"))?;
    let (_link, mode) = attach(&prog, &ifname, true)?;
    out(&format!("READY {}", json!({"if": ifname, "xdp": mode})));
    serve_stats(|| json!({"pkts": cnt.total(0)}));
    Ok(())
}

fn kfwd(a: &Args) -> std::result::Result<(), String> {
    let inif = a.req("in")?;
    let outif = a.req("out")?;
    let out_idx = netdev::ifindex(&outif).map_err(|e| e.to_string())?;
    let cnt = bpf::PerCpuCounters::new("xvsperf_kfwd", 1).map_err(|e| e.to_string())?;
    let dm = bpf::map_create(bpf::BPF_MAP_TYPE_DEVMAP, 4, 4, 1, "xvsperf_devmap")
        .map_err(|e| format!("devmap: {e}"))?;
    bpf::map_update(dm.as_raw_fd(), &0u32.to_ne_bytes(), &out_idx.to_ne_bytes())
        .map_err(|e| format!("devmap[0] = {outif}: {e}"))?;
    let prog = bpf::prog_load_xdp(
        &asm::devmap_redirect(dm.as_raw_fd(), Some(cnt.fd())),
        "xvsperf_kfwd",
    )
    .map_err(|e| format!("load forwarder program: {e}"))?;
    let (_link, mode) = attach(&prog, &inif, false)?;
    out(&format!(
        "READY {}",
        json!({"in": inif, "out": outif, "xdp": mode, "program": "bpf_redirect_map(devmap) + per-CPU counter"})
    ));
    serve_stats(|| json!({"pkts": cnt.total(0)}));
    Ok(())
}

fn tcp_server(a: &Args) -> std::result::Result<(), String> {
    let addr = a.req("listen")?;
    let l = std::net::TcpListener::bind(&addr).map_err(|e| format!("listen on {addr}: {e}"))?;
    let accepted = Arc::new(AtomicU64::new(0));
    {
        let accepted = accepted.clone();
        std::thread::spawn(move || {
            loop {
                match l.accept() {
                    Ok((mut c, _)) => {
                        let _ = c.write_all(b"x");
                        accepted.fetch_add(1, Ordering::Relaxed);
                    }
                    // e.g. out of descriptors: let the TIME_WAIT sockets drain
                    Err(_) => std::thread::sleep(Duration::from_millis(1)),
                }
            }
        });
    }
    out(&format!("READY {}", json!({"listen": addr})));
    serve_stats(|| json!({"accepted": accepted.load(Ordering::Relaxed)}));
    Ok(())
}

fn tcp_client(a: &Args) -> std::result::Result<(), String> {
    use std::io::Read;
    let dst: std::net::SocketAddr = a
        .req("dst")?
        .parse()
        .map_err(|_| "--dst: IP:PORT".to_string())?;
    let secs: f64 = a.num("secs", 5.0)?;
    let threads: usize = a.num("threads", 4)?;
    if let Some(c) = a.get("cpu").and_then(|c| c.parse::<usize>().ok()) {
        util::set_affinity(0, &[c]).map_err(|e| e.to_string())?;
    }
    let ok = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let t0 = std::time::Instant::now();
    let end = t0 + Duration::from_secs_f64(secs);
    let workers: Vec<_> = (0..threads.max(1))
        .map(|_| {
            let (ok, failed) = (ok.clone(), failed.clone());
            std::thread::spawn(move || {
                let mut buf = [0u8; 16];
                while std::time::Instant::now() < end {
                    let r = std::net::TcpStream::connect_timeout(&dst, Duration::from_secs(1))
                        .and_then(|mut s| {
                            s.set_read_timeout(Some(Duration::from_secs(1)))?;
                            let mut n = 0;
                            loop {
                                match s.read(&mut buf)? {
                                    0 => break,
                                    k => n += k,
                                }
                            }
                            Ok(n)
                        });
                    match r {
                        Ok(n) if n > 0 => ok.fetch_add(1, Ordering::Relaxed),
                        _ => failed.fetch_add(1, Ordering::Relaxed),
                    };
                }
            })
        })
        .collect();
    for w in workers {
        let _ = w.join();
    }
    out(&format!(
        "DONE {} {} {:.6}",
        ok.load(Ordering::Relaxed),
        failed.load(Ordering::Relaxed),
        t0.elapsed().as_secs_f64()
    ));
    Ok(())
}

// ------------------------------------------------------------------ scenario side

/// A running agent seen from the scenario.
pub struct Agent {
    lc: LineChild,
    pub ready: Value,
}

impl Agent {
    /// Starts `xvs-perf agent KIND ARGS` in namespace `ns` and waits for READY.
    pub fn start(
        exe: &Path,
        ns: Option<&str>,
        kind: &str,
        args: &[String],
        log: std::path::PathBuf,
    ) -> Result<Agent> {
        let mut cmd = util::ns_cmd(ns, exe);
        cmd.arg("agent").arg(kind).args(args);
        let name = format!(
            "agent {kind}{}",
            ns.map(|n| format!(" (netns {n})")).unwrap_or_default()
        );
        let mut lc = LineChild::spawn(&name, cmd, log, libc::SIGKILL)?;
        let l = lc.expect(&["READY ", "ERROR "], Duration::from_secs(20))?;
        if let Some(e) = l.strip_prefix("ERROR ") {
            crate::bail!("{name}: {e}");
        }
        let ready = serde_json::from_str(&l["READY ".len()..]).unwrap_or(Value::Null);
        Ok(Agent { lc, ready })
    }

    pub fn stats(&mut self) -> Result<Value> {
        self.lc.send("s")?;
        let l = self
            .lc
            .expect(&["STATS ", "ERROR "], Duration::from_secs(5))?;
        if let Some(e) = l.strip_prefix("ERROR ") {
            crate::bail!("{}: {e}", self.lc.name);
        }
        serde_json::from_str(&l["STATS ".len()..])
            .map_err(|e| util::Error::Msg(format!("{}: bad stats line: {e}", self.lc.name)))
    }

    /// Stats field `k` as u64 (0 when absent).
    pub fn stat_u64(&mut self, k: &str) -> Result<u64> {
        Ok(self.stats()?.get(k).and_then(Value::as_u64).unwrap_or(0))
    }

    pub fn pid(&self) -> i32 {
        self.lc.child.id() as i32
    }

    pub fn stop(&mut self) {
        self.lc.stop(Duration::from_secs(3));
    }
}

/// Sends `count` frames from `ifname` in `ns` (src/dst MACs given) and waits for it.
pub fn announce(
    exe: &Path,
    ns: Option<&str>,
    ifname: &str,
    src: &str,
    dst: &str,
    count: u32,
) -> Result<()> {
    let mut cmd: Command = util::ns_cmd(ns, exe);
    cmd.args(["agent", "gen", "--if", ifname, "--src", src, "--dst", dst])
        .args(["--count", &count.to_string()]);
    let o = util::run(&mut cmd)?;
    if !o.contains("DONE") {
        crate::bail!("announce from {ifname}: {}", o.trim());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_is_64_bytes_on_the_wire_with_a_valid_ip_checksum() {
        let f = build_frame(60, [2, 0, 0, 0, 0, 2], [2, 0, 0, 0, 0, 1]);
        assert_eq!(f.len(), 60);
        assert_eq!(&f[12..14], &[0x08, 0x00]);
        let mut sum: u32 = 0;
        for i in (14..34).step_by(2) {
            sum += u16::from_be_bytes([f[i], f[i + 1]]) as u32;
        }
        while sum > 0xffff {
            sum = (sum & 0xffff) + (sum >> 16);
        }
        assert_eq!(sum, 0xffff, "IPv4 header checksum verifies");
        assert_eq!(u16::from_be_bytes([f[16], f[17]]), 46);
        assert_eq!(u16::from_be_bytes([f[38], f[39]]), 26);
    }

    #[test]
    fn flow_frames_keep_a_valid_ip_checksum_and_differ() {
        let base = flows_base_frame(60, [2, 0, 0, 0, 0, 2], [2, 0, 0, 0, 0, 1]);
        let ck = |f: &[u8]| {
            let mut sum: u32 = 0;
            for i in (14..34).step_by(2) {
                sum += u16::from_be_bytes([f[i], f[i + 1]]) as u32;
            }
            while sum > 0xffff {
                sum = (sum & 0xffff) + (sum >> 16);
            }
            sum
        };
        assert_eq!(ck(&base), 0xffff);
        assert_eq!(flow_frame(&base, 0), base);
        for i in [1u16, 2, 255, 256, 999, 59_999] {
            let f = flow_frame(&base, i);
            assert_eq!(ck(&f), 0xffff, "flow {i}: checksum still verifies");
            let want = crate::flows::ovn_src_ip(i as usize).octets();
            assert_eq!(&f[26..30], &want, "flow {i}: source address");
            assert_eq!(u16::from_be_bytes([f[34], f[35]]), 1024 + i);
        }
        let f = flow_frame(&base, 7);
        let r = reply_frame(&f);
        assert_eq!(ck(&r), 0xffff, "reply: checksum still verifies");
        assert_eq!(&r[26..30], &[198, 19, 0, 1], "reply: from the destination");
        assert_eq!(&r[30..34], &f[26..30], "reply: to flow 7's source");
        assert_eq!(u16::from_be_bytes([r[34], r[35]]), 9);
        assert_eq!(u16::from_be_bytes([r[36], r[37]]), 1024 + 7);
        assert_eq!(reply_frame(&r), f, "the reply of the reply is the frame");
        let p = flows_program(7, 3, 1000);
        assert_eq!(*p.last().unwrap(), 0x95, "ends with exit");
    }

    #[test]
    fn args_read_keys_and_flags() {
        let v: Vec<String> = ["--if", "x0", "--zc", "--cpu", "1"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let a = Args::new(&v);
        assert_eq!(a.get("if").as_deref(), Some("x0"));
        assert!(a.flag("zc"));
        assert_eq!(a.num("cpu", 0usize), Ok(1));
        assert_eq!(a.num("batch", 64u32), Ok(64));
        assert!(a.req("out").is_err());
    }
}
