//! Scenario `p2p`: 64-byte UDP frames from a generator through the switch, port 1 -> port 2, to a
//! sink that counts them; the same topology and window for four switches, interleaved per round:
//!
//! * `kernel`  XDP_REDIRECT (devmap) in the switch-side veth, its threaded NAPI kthread pinned to
//!   the switch core: the ceiling. Cost = the kthread's schedstat runtime / packets redirected.
//! * `minfwd`  the minimal AF_XDP forwarder (`minfwd.rs`) on the switch core. Cost = TSC cycles of
//!   busy iterations / packets received.
//! * `xvs`     xvswitchd `--pmd-cpus 1 --pmd-idle busy`. Cost = busy cycles / packets received
//!   from `pmd/stats` ("avg processing cycles per packet").
//! * `ovs`     OVS 3.1 userspace datapath, afxdp ports, one PMD on the switch core, one flow
//!   `in_port=1,actions=output:2`. Cost = processing cycles / packets received from
//!   `dpif-netdev/pmd-stats-show` ("avg processing cycles per packet").
//!
//! Topology on veth (built here, deleted on exit, Ctrl-C included):
//! ```text
//! [xpgen] xpgen ==veth== xpsw0 [xpsw] xpsw1 ==veth== xpsink [xpsink]
//!  generator (CPU 0)       switch (CPU 1)                  sink (NAPI on CPU 0)
//! ```
//! Layout "l2" of the lab: the generator and the sink's NAPI kthread (SCHED_FIFO) on CPU 0;
//! xpsw0's NAPI (where veth AF_XDP copies frames into the UMEM) runs in softirq on CPU 0 too, as
//! it naturally does, except in the kernel case where it *is* the switch and is pinned to CPU 1.
//!
//! With `--in/--out` the scenario uses existing interfaces instead (no namespaces): real NICs with
//! an external generator, or veths whose peers are given with `--gen-if/--sink-if`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::agent::Agent;
use crate::ovs::{Ovs, OvsOpts};
use crate::util::{self, env_or, fmt3, tri, Error, Result};
use crate::xvs::{Xvs, XvsOpts};
use crate::{bail, ovs, say, xvs};

pub const USAGE: &str = "\
usage: xvs-perf p2p [OPTIONS]

Generator -> switch port 1 -> port 2 -> sink, 64-byte UDP frames, for the kernel's XDP_REDIRECT
(ceiling), a minimal AF_XDP forwarder, xvswitchd and OVS 3.1 afxdp, interleaved per round.
Prints delivered Mpps and the switch core's ns/packet (median (min..max) of the runs) and their
ratios, and writes JSON to perf/results/p2p-<UTC time>.json. Needs root.

  --cases LIST        kernel,minfwd,xvs,ovs (default all; env CASES)
  --runs N            runs per case, interleaved by round (default 3; env RUNS)
  --window SECS       measured steady window per run (default 6; env WINDOW)
  --warmup SECS       traffic before the window (default 2; env WARMUP)
  --pmd-cpus LIST     switch cores (default 1): xvswitchd --pmd-cpus, OVS pmd-cpu-mask, the
                      forwarder's core, the kernel case's NAPI kthreads
  --gen-cpu N         generator core (default 0)
  --sink-cpu N        sink NAPI core (default: the generator's)
  --frame-len N       frame length without FCS (default 60 = 64 bytes on the wire)
  --xvswitchd PATH    binary under test (default: next to xvs-perf)
  --xvs-arg ARG       extra xvswitchd argument (repeatable)
  --ovs-xdp-mode M    OVS options:xdp-mode (default native on veth, best-effort on NICs);
                      falls back to best-effort if the port does not come up
  --json PATH         write the results here instead of perf/results/p2p-<time>.json
  --keep-logs         keep the scratch directory (logs of every daemon and agent)
  --wait-quiet SECS   before each run wait up to SECS for a quiet second (env WAIT_QUIET)
  --quiet-pct P       quiet = all CPUs together less than P % busy (default 25)

Existing interfaces instead of veths (no namespaces are built; run it where they live):
  --in IF1 --out IF2  switch ports 1 and 2 (e.g. two NIC ports; zero-copy is tried)
  --gen-if IF         generate on IF (e.g. the peer of a veth IF1); default: external traffic,
                      offered = IF1 rx_packets
  --sink-if IF        count on IF (the peer of IF2); default: delivered = IF2 tx_packets
  --queues N          OVS options:n_rxq (match the NIC's channels, `ethtool -L IF combined N`);
                      xvswitchd always polls every RX queue of a port
";

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Case {
    Kernel,
    Minfwd,
    Xvs,
    Ovs,
}

impl Case {
    pub const ALL: [Case; 4] = [Case::Kernel, Case::Minfwd, Case::Xvs, Case::Ovs];
    pub fn name(self) -> &'static str {
        match self {
            Case::Kernel => "kernel",
            Case::Minfwd => "minfwd",
            Case::Xvs => "xvs",
            Case::Ovs => "ovs",
        }
    }
    fn parse(s: &str) -> std::result::Result<Case, String> {
        Case::ALL
            .into_iter()
            .find(|c| c.name() == s)
            .ok_or_else(|| format!("unknown case {s:?} (kernel, minfwd, xvs, ovs)"))
    }
    fn method(self) -> &'static str {
        match self {
            Case::Kernel => "XDP_REDIRECT via devmap in the ingress port's NAPI (threaded, pinned to the switch core); ns/pkt = NAPI kthread schedstat runtime / packets redirected (per-CPU counter in the program)",
            Case::Minfwd => "minimal AF_XDP forwarder, one thread, shared UMEM, copy mode (zero-copy tried on NICs), need_wakeup, batch 64, MAC learn+lookup per packet; ns/pkt = TSC cycles of iterations that received or kicked TX / packets received",
            Case::Xvs => "xvswitchd NORMAL bridge, --pmd-idle busy; ns/pkt = pmd/stats busy cycles / packets received (avg processing cycles per packet)",
            Case::Ovs => "OVS userspace datapath, type=afxdp ports, flow in_port=1,actions=output:2; ns/pkt = dpif-netdev/pmd-stats-show processing cycles / packets received (avg processing cycles per packet), after pmd-stats-clear at the window start",
        }
    }
}

#[derive(Clone, Debug)]
pub struct Opts {
    pub cases: Vec<Case>,
    pub runs: usize,
    pub window: f64,
    pub warmup: f64,
    pub pmd_cpus: Vec<usize>,
    pub gen_cpu: usize,
    pub sink_cpu: usize,
    pub frame_len: usize,
    pub xvswitchd: PathBuf,
    pub xvs_args: Vec<String>,
    pub ovs_xdp_mode: Option<String>,
    pub json: Option<PathBuf>,
    pub keep_logs: bool,
    /// Before each run, wait up to this long for the machine to be quiet.
    pub wait_quiet: f64,
    /// "Quiet": all CPUs together busy below this percentage over one second.
    pub quiet_pct: f64,
    pub nic: Option<NicOpts>,
}

#[derive(Clone, Debug)]
pub struct NicOpts {
    pub in_if: String,
    pub out_if: String,
    pub gen_if: Option<String>,
    pub sink_if: Option<String>,
    pub queues: Option<u32>,
}

impl Opts {
    pub fn parse(args: &[String]) -> std::result::Result<Opts, String> {
        let exe_dir = std::env::current_exe()
            .ok()
            .and_then(|p| p.parent().map(Path::to_path_buf))
            .unwrap_or_else(|| PathBuf::from("."));
        let mut cases = env_or("CASES", "kernel,minfwd,xvs,ovs");
        let mut runs = env_or("RUNS", "3");
        let mut window = env_or("WINDOW", "6");
        let mut warmup = env_or("WARMUP", "2");
        let mut pmd_cpus = "1".to_string();
        let mut gen_cpu = "0".to_string();
        let mut sink_cpu: Option<String> = None;
        let mut frame_len = "60".to_string();
        let mut xvswitchd = exe_dir.join("xvswitchd");
        let mut xvs_args = Vec::new();
        let mut ovs_xdp_mode = None;
        let mut json = None;
        let mut keep_logs = false;
        let mut wait_quiet = env_or("WAIT_QUIET", "0");
        let mut quiet_pct = "25".to_string();
        let (mut in_if, mut out_if, mut gen_if, mut sink_if, mut queues) =
            (None, None, None, None, None);
        let mut flags = util::Flags::new(args);
        while let Some(flag) = flags.next_flag() {
            let mut val = || flags.value();
            match flag.as_str() {
                "--cases" => cases = val()?,
                "--runs" => runs = val()?,
                "--window" | "--secs" => window = val()?,
                "--warmup" => warmup = val()?,
                "--pmd-cpus" => pmd_cpus = val()?,
                "--gen-cpu" => gen_cpu = val()?,
                "--sink-cpu" => sink_cpu = Some(val()?),
                "--frame-len" => frame_len = val()?,
                "--xvswitchd" => xvswitchd = PathBuf::from(val()?),
                "--xvs-arg" => xvs_args.push(val()?),
                "--ovs-xdp-mode" => ovs_xdp_mode = Some(val()?),
                "--json" => json = Some(PathBuf::from(val()?)),
                "--keep-logs" => keep_logs = true,
                "--wait-quiet" => wait_quiet = val()?,
                "--quiet-pct" => quiet_pct = val()?,
                "--in" => in_if = Some(val()?),
                "--out" => out_if = Some(val()?),
                "--gen-if" => gen_if = Some(val()?),
                "--sink-if" => sink_if = Some(val()?),
                "--queues" => queues = Some(val()?),
                "-h" | "--help" => return Err(String::new()),
                other => return Err(format!("unknown option {other:?}")),
            }
        }
        let mut cs = Vec::new();
        for c in cases.split(',').map(str::trim).filter(|c| !c.is_empty()) {
            let c = Case::parse(c)?;
            if !cs.contains(&c) {
                cs.push(c);
            }
        }
        if cs.is_empty() {
            return Err("--cases: nothing to run".into());
        }
        let num = |s: &str, what: &str| -> std::result::Result<f64, String> {
            s.parse::<f64>()
                .ok()
                .filter(|x| x.is_finite() && *x >= 0.0)
                .ok_or_else(|| format!("{what}: bad number {s:?}"))
        };
        let runs = num(&runs, "--runs/RUNS")? as usize;
        if runs == 0 {
            return Err("--runs must be at least 1".into());
        }
        let window = num(&window, "--window/WINDOW")?;
        if window < 1.0 {
            return Err("--window must be at least 1 second".into());
        }
        let warmup = num(&warmup, "--warmup/WARMUP")?;
        let pmd_cpus = util::parse_cpu_list(&pmd_cpus)?;
        let gen_cpu = num(&gen_cpu, "--gen-cpu")? as usize;
        let sink_cpu = match sink_cpu {
            Some(s) => num(&s, "--sink-cpu")? as usize,
            None => gen_cpu,
        };
        let frame_len = num(&frame_len, "--frame-len")? as usize;
        if !(60..=1514).contains(&frame_len) {
            return Err("--frame-len must be between 60 and 1514".into());
        }
        let nic = match (in_if, out_if) {
            (Some(i), Some(o)) => Some(NicOpts {
                in_if: i,
                out_if: o,
                gen_if,
                sink_if,
                queues: match queues {
                    Some(q) => Some(num(&q, "--queues")? as u32),
                    None => None,
                },
            }),
            (None, None) => {
                if gen_if.is_some() || sink_if.is_some() || queues.is_some() {
                    return Err("--gen-if/--sink-if/--queues need --in and --out".into());
                }
                None
            }
            _ => return Err("--in and --out go together".into()),
        };
        Ok(Opts {
            cases: cs,
            runs,
            window,
            warmup,
            pmd_cpus,
            gen_cpu,
            sink_cpu,
            frame_len,
            xvswitchd,
            xvs_args,
            ovs_xdp_mode,
            json,
            keep_logs,
            wait_quiet: num(&wait_quiet, "--wait-quiet/WAIT_QUIET")?,
            quiet_pct: num(&quiet_pct, "--quiet-pct")?,
            nic,
        })
    }
}

// ------------------------------------------------------------------ topology

#[derive(Clone, Debug)]
pub(crate) struct End {
    pub ns: Option<String>,
    pub name: String,
}

impl End {
    pub fn ns(&self) -> Option<&str> {
        self.ns.as_deref()
    }
}

pub(crate) struct Topo {
    pub veth: bool,
    pub gen: Option<End>,
    pub inp: End,
    pub out: End,
    pub sink: Option<End>,
    pub gen_mac: String,
    pub sink_mac: String,
}

const NS_GEN: &str = "xpgen";
const NS_SW: &str = "xpsw";
const NS_SINK: &str = "xpsink";
const GEN_MAC: &str = "02:00:00:00:00:01";
const SINK_MAC: &str = "02:00:00:00:00:02";

impl Topo {
    pub fn veth() -> Topo {
        let e = |ns: &str, n: &str| End {
            ns: Some(ns.into()),
            name: n.into(),
        };
        Topo {
            veth: true,
            gen: Some(e(NS_GEN, "xpgen")),
            inp: e(NS_SW, "xpsw0"),
            out: e(NS_SW, "xpsw1"),
            sink: Some(e(NS_SINK, "xpsink")),
            gen_mac: GEN_MAC.into(),
            sink_mac: SINK_MAC.into(),
        }
    }

    fn nic(n: &NicOpts) -> Topo {
        let e = |x: &str| End {
            ns: None,
            name: x.to_string(),
        };
        let mac = |x: &Option<String>, d: &str| {
            x.as_deref()
                .and_then(afxdp::netdev::mac)
                .map(|m| util::fmt_mac(&m))
                .unwrap_or_else(|| d.to_string())
        };
        Topo {
            veth: false,
            gen: n.gen_if.as_deref().map(e),
            inp: e(&n.in_if),
            out: e(&n.out_if),
            sink: n.sink_if.as_deref().map(e),
            gen_mac: mac(&n.gen_if, GEN_MAC),
            sink_mac: mac(&n.sink_if, SINK_MAC),
        }
    }

    fn namespaces() -> [&'static str; 3] {
        [NS_GEN, NS_SW, NS_SINK]
    }

    /// Deletes leftovers of an earlier (killed) run and creates the namespaces.
    pub fn create_namespaces() -> Result<()> {
        Self::delete_namespaces();
        for n in Self::namespaces() {
            util::ip(&["netns", "add", n])?;
            util::ip(&["-n", n, "link", "set", "lo", "up"])?;
            // no IPv6 autoconfiguration chatter on the links
            let _ = util::sh(
                Some(n),
                "sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1",
            );
        }
        Ok(())
    }

    pub fn delete_namespaces() {
        let list = util::run_always(std::process::Command::new("ip").args(["netns", "list"]))
            .unwrap_or_default();
        for n in Self::namespaces() {
            if list.lines().any(|l| l.split_whitespace().next() == Some(n)) {
                let _ = std::process::Command::new("ip")
                    .args(["netns", "del", n])
                    .status();
            }
        }
    }

    /// Fresh veths for every run: nothing (XDP programs, threaded NAPI, stats) carries over.
    pub fn reset_veths(&self) -> Result<()> {
        let _ = std::process::Command::new("ip")
            .args(["-n", NS_GEN, "link", "del", "xpgen"])
            .stderr(std::process::Stdio::null())
            .status();
        let _ = std::process::Command::new("ip")
            .args(["-n", NS_SW, "link", "del", "xpsw1"])
            .stderr(std::process::Stdio::null())
            .status();
        util::ip(&[
            "link", "add", "xpgen", "netns", NS_GEN, "type", "veth", "peer", "name", "xpsw0",
            "netns", NS_SW,
        ])?;
        util::ip(&[
            "link", "add", "xpsw1", "netns", NS_SW, "type", "veth", "peer", "name", "xpsink",
            "netns", NS_SINK,
        ])?;
        util::ip(&[
            "-n", NS_GEN, "link", "set", "xpgen", "address", GEN_MAC, "up",
        ])?;
        util::ip(&[
            "-n", NS_SINK, "link", "set", "xpsink", "address", SINK_MAC, "up",
        ])?;
        util::ip(&["-n", NS_SW, "link", "set", "xpsw0", "up"])?;
        util::ip(&["-n", NS_SW, "link", "set", "xpsw1", "up"])?;
        Ok(())
    }
}

/// Reads /sys/class/net/IF/ATTR in `ns`.
pub(crate) fn sysfs_read(ns: Option<&str>, ifname: &str, attr: &str) -> Option<String> {
    match ns {
        None => std::fs::read_to_string(format!("/sys/class/net/{ifname}/{attr}"))
            .ok()
            .map(|s| s.trim().to_string()),
        Some(_) => util::sh(ns, &format!("cat /sys/class/net/{ifname}/{attr}"))
            .ok()
            .map(|s| s.trim().to_string()),
    }
}

pub(crate) fn sysfs_write(ns: Option<&str>, ifname: &str, attr: &str, v: &str) -> Result<()> {
    match ns {
        None => std::fs::write(format!("/sys/class/net/{ifname}/{attr}"), v)
            .map_err(|e| Error::Msg(format!("write {v} to /sys/class/net/{ifname}/{attr}: {e}"))),
        Some(_) => util::run_always(
            util::ns_cmd(ns, "sh")
                .args(["-c", &format!("echo {v} > /sys/class/net/{ifname}/{attr}")]),
        )
        .map(|_| ()),
    }
}

fn if_counter(ns: Option<&str>, ifname: &str, which: &str) -> Option<u64> {
    sysfs_read(ns, ifname, &format!("statistics/{which}"))?
        .parse()
        .ok()
}

/// Puts an interface's NAPI into a threaded kthread and pins it (round-robin over `cpus`),
/// optionally SCHED_FIFO. Returns the kthreads' pids.
pub(crate) fn thread_napi(end: &End, cpus: &[usize], fifo: Option<i32>) -> Result<Vec<i32>> {
    sysfs_write(end.ns(), &end.name, "threaded", "1")?;
    let pids = util::wait_for(Duration::from_secs(2), || {
        let p = util::napi_pids(&end.name);
        (!p.is_empty()).then_some(p)
    })?
    .ok_or_else(|| {
        format!(
            "no napi/{}-* kthread after enabling threaded NAPI",
            end.name
        )
    })?;
    for (i, p) in pids.iter().enumerate() {
        util::set_affinity(*p, &[cpus[i % cpus.len()]])?;
        if let Some(prio) = fifo {
            util::set_fifo(*p, prio)?;
        }
    }
    Ok(pids)
}

// ------------------------------------------------------------------ PMD statistics text

/// One PMD section of `pmd/stats` (xvswitchd) or `dpif-netdev/pmd-stats-show` (OVS).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PmdSection {
    pub title: String,
    pub packets: u64,
    pub busy_cycles: u64,
    pub idle_cycles: u64,
    pub sent: Option<u64>,
    pub avg_cycles_per_pkt: Option<f64>,
    pub avg_ns: Option<f64>,
    pub preempted_rounds: Option<u64>,
}

fn first_num(s: &str) -> Option<f64> {
    s.split_whitespace().next()?.parse().ok()
}

/// Parses the PMD sections; OVS's "main thread:" section is skipped.
pub fn parse_pmd_stats(s: &str) -> Vec<PmdSection> {
    let mut v: Vec<PmdSection> = Vec::new();
    let mut cur: Option<PmdSection> = None;
    for line in s.lines() {
        let t = line.trim();
        if t.starts_with("pmd thread") || t.starts_with("main thread") {
            if let Some(c) = cur.take() {
                v.push(c);
            }
            if t.starts_with("pmd thread") {
                cur = Some(PmdSection {
                    title: t.trim_end_matches(':').to_string(),
                    ..Default::default()
                });
            }
            continue;
        }
        let Some(c) = cur.as_mut() else { continue };
        let Some((k, val)) = t.split_once(':') else {
            continue;
        };
        let val = val.trim();
        match k.trim() {
            "packets received" => c.packets = first_num(val).unwrap_or(0.0) as u64,
            "packets sent" => c.sent = first_num(val).map(|x| x as u64),
            "processing cycles" | "busy cycles" => {
                c.busy_cycles = first_num(val).unwrap_or(0.0) as u64
            }
            "idle cycles" => c.idle_cycles = first_num(val).unwrap_or(0.0) as u64,
            "avg processing cycles per packet" => {
                c.avg_cycles_per_pkt = first_num(val);
                // xvswitchd: "C (N ns)" or "C (N ns; ...)"
                if let Some((_, r)) = val.split_once('(') {
                    let mut w = r.split_whitespace();
                    if let (Some(n), Some(u)) = (w.next(), w.next()) {
                        if u.starts_with("ns") {
                            c.avg_ns = n.parse().ok();
                        }
                    }
                }
            }
            "preempted rounds" => c.preempted_rounds = first_num(val).map(|x| x as u64),
            _ => {}
        }
    }
    if let Some(c) = cur.take() {
        v.push(c);
    }
    v
}

// ------------------------------------------------------------------ one run

/// Everything a run starts, stopped in field order (generator first, sink last) on drop; then
/// the sysfs settings we changed are restored.
#[derive(Default)]
struct RunRes {
    gen: Option<Agent>,
    sw: Option<Agent>,
    xvs: Option<Xvs>,
    ovs: Option<Ovs>,
    sink: Option<Agent>,
    restore: Vec<(Option<String>, String, String, String)>,
}

impl Drop for RunRes {
    fn drop(&mut self) {
        if let Some(mut g) = self.gen.take() {
            g.stop();
        }
        if let Some(mut s) = self.sw.take() {
            s.stop();
        }
        if let Some(mut x) = self.xvs.take() {
            x.stop();
        }
        if let Some(mut o) = self.ovs.take() {
            o.stop();
        }
        if let Some(mut s) = self.sink.take() {
            s.stop();
        }
        for (ns, ifname, attr, v) in self.restore.drain(..).rev() {
            let _ = sysfs_write(ns.as_deref(), &ifname, &attr, &v);
        }
    }
}

enum Fail {
    Setup(String),
    Measure(String),
    Interrupted,
}

fn setup<T>(r: Result<T>) -> std::result::Result<T, Fail> {
    r.map_err(|e| match e {
        Error::Interrupted => Fail::Interrupted,
        Error::Msg(m) => Fail::Setup(m),
    })
}

fn measure<T>(r: Result<T>) -> std::result::Result<T, Fail> {
    r.map_err(|e| match e {
        Error::Interrupted => Fail::Interrupted,
        Error::Msg(m) => Fail::Measure(m),
    })
}

/// Per-run result.
#[derive(Clone, Debug)]
struct Run {
    case: Case,
    round: usize,
    delivered_pps: f64,
    offered_pps: Option<f64>,
    ns_per_pkt: Option<f64>,
    others_cpu_pct: f64,
    detail: Value,
}

struct Session {
    o: Opts,
    exe: PathBuf,
    tmp: PathBuf,
    topo: Topo,
    hz: f64,
    made_namespaces: bool,
    _lock: std::fs::File,
}

impl Drop for Session {
    fn drop(&mut self) {
        if self.made_namespaces {
            Topo::delete_namespaces();
        }
        if !self.o.keep_logs {
            let _ = std::fs::remove_dir_all(&self.tmp);
        }
    }
}

/// One instance at a time: runs would fight over the same cores and namespace names.
pub(crate) fn lock() -> Result<std::fs::File> {
    use std::os::fd::AsRawFd;
    let p = if Path::new("/run/lock").exists() {
        PathBuf::from("/run/lock/xvs-perf.lock")
    } else {
        PathBuf::from("/tmp/xvs-perf.lock")
    };
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&p)
        .map_err(|e| format!("{}: {e}", p.display()))?;
    // SAFETY: flock on an fd we own.
    if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        bail!("another xvs-perf is running (lock {} is held)", p.display());
    }
    Ok(f)
}

impl Session {
    fn log(&self, name: &str) -> PathBuf {
        self.tmp.join(name)
    }

    /// Waits (at most `--wait-quiet` seconds) for a second in which the CPUs, all together, are
    /// busy less than `--quiet-pct` %: between runs nothing of ours runs, so that is other load.
    /// Returns (seconds waited, busy % of the last sample).
    fn wait_quiet(&self) -> Result<(f64, f64)> {
        let t = Instant::now();
        loop {
            let a = util::cpu_ticks();
            util::sleep(Duration::from_secs(1))?;
            let b = util::cpu_ticks();
            let v = util::cpu_busy_pct(&a, &b);
            let busy = v.iter().map(|x| x.1).sum::<f64>() / v.len().max(1) as f64;
            let waited = t.elapsed().as_secs_f64();
            if busy < self.o.quiet_pct || waited >= self.o.wait_quiet {
                return Ok((waited, busy));
            }
        }
    }

    fn run_case(&mut self, case: Case, round: usize) -> std::result::Result<Run, Fail> {
        let o = self.o.clone();
        let quiet = if o.wait_quiet > 0.0 {
            Some(measure(self.wait_quiet())?)
        } else {
            None
        };
        let tag = format!("{}.{round}", case.name());
        let mut rr = RunRes::default();
        if self.topo.veth {
            setup(self.topo.reset_veths())?;
        } else {
            // an OVS that died on a signal leaves its (legacy-attached) XDP program behind
            for e in [&self.topo.inp, &self.topo.out] {
                let _ = std::process::Command::new("ip")
                    .args(["link", "set", "dev", &e.name, "xdp", "off"])
                    .stderr(std::process::Stdio::null())
                    .status();
            }
        }
        let inp = self.topo.inp.clone();
        let out = self.topo.out.clone();
        let mut notes: Vec<String> = Vec::new();
        let mut setup_info = serde_json::Map::new();

        // sink first: redirected frames need a NAPI on the receiving veth
        if let Some(s) = self.topo.sink.clone() {
            let a = setup(Agent::start(
                &self.exe,
                s.ns(),
                "sink",
                &["--if".into(), s.name.clone()],
                self.log(&format!("{tag}.sink.log")),
            ))?;
            rr.sink = Some(a);
            let prev = sysfs_read(s.ns(), &s.name, "threaded").unwrap_or_else(|| "0".into());
            rr.restore
                .push((s.ns.clone(), s.name.clone(), "threaded".into(), prev));
            setup(thread_napi(&s, &[o.sink_cpu], Some(50)))?;
        }

        // the switch
        let mut napi: Vec<i32> = Vec::new();
        let mut fdb_port: Option<String> = None;
        match case {
            Case::Kernel => {
                let a = setup(Agent::start(
                    &self.exe,
                    inp.ns(),
                    "kfwd",
                    &[
                        "--in".into(),
                        inp.name.clone(),
                        "--out".into(),
                        out.name.clone(),
                    ],
                    self.log(&format!("{tag}.kfwd.log")),
                ))?;
                rr.sw = Some(a);
                let prev =
                    sysfs_read(inp.ns(), &inp.name, "threaded").unwrap_or_else(|| "0".into());
                rr.restore
                    .push((inp.ns.clone(), inp.name.clone(), "threaded".into(), prev));
                napi = setup(thread_napi(&inp, &o.pmd_cpus, None))?;
            }
            Case::Minfwd => {
                let mut args: Vec<String> = vec![
                    "--in".into(),
                    inp.name.clone(),
                    "--out".into(),
                    out.name.clone(),
                    "--cpu".into(),
                    o.pmd_cpus[0].to_string(),
                    "--batch".into(),
                    "64".into(),
                ];
                if !self.topo.veth {
                    args.push("--zc".into());
                    if o.pmd_cpus.len() > 1 {
                        notes.push("minfwd is one thread on queue 0 only".into());
                    }
                }
                let a = setup(Agent::start(
                    &self.exe,
                    inp.ns(),
                    "minfwd",
                    &args,
                    self.log(&format!("{tag}.minfwd.log")),
                ))?;
                rr.sw = Some(a);
            }
            Case::Xvs => {
                let rundir = self.tmp.join(format!("{tag}.xvs"));
                let x = setup(Xvs::start(&XvsOpts {
                    bin: &o.xvswitchd,
                    ns: inp.ns(),
                    rundir: &rundir,
                    ports: &[inp.name.clone(), out.name.clone()],
                    pmd_cpus: &o.pmd_cpus,
                    idle: "busy",
                    extra: &o.xvs_args,
                }))?;
                rr.xvs = Some(x);
                // teach the switch where the sink's MAC lives so the test traffic is unicast
                if let Some(s) = self.topo.sink.clone() {
                    setup(crate::agent::announce(
                        &self.exe,
                        s.ns(),
                        &s.name,
                        &self.topo.sink_mac,
                        &self.topo.gen_mac,
                        4,
                    ))?;
                    let x = rr.xvs.as_ref().expect("started");
                    let mac = self.topo.sink_mac.to_ascii_lowercase();
                    fdb_port = setup(util::wait_for(Duration::from_secs(2), || {
                        let t = x.call("fdb/show", &[xvs::BRIDGE]).ok()?;
                        t.lines()
                            .find(|l| l.to_ascii_lowercase().contains(&mac))
                            .and_then(|l| l.split_whitespace().next().map(str::to_string))
                    }))?;
                    match &fdb_port {
                        Some(p) if p == "2" => {}
                        other => notes.push(format!(
                            "sink MAC {mac} not learned on port 2 (fdb: {other:?}): frames are flooded"
                        )),
                    }
                }
            }
            Case::Ovs => {
                let dir = self.tmp.join(format!("{tag}.ovs"));
                let mode = o.ovs_xdp_mode.clone().unwrap_or_else(|| {
                    if self.topo.veth {
                        "native".into()
                    } else {
                        "best-effort".into()
                    }
                });
                let ovs = setup(Ovs::start(
                    &dir,
                    &OvsOpts {
                        ns: inp.ns(),
                        pmd_cpus: &o.pmd_cpus,
                        ports: vec![(inp.name.clone(), 1), (out.name.clone(), 2)],
                        xdp_mode: mode,
                        fallback_best_effort: true,
                        n_rxq: o.nic.as_ref().and_then(|n| n.queues),
                        flows: vec!["in_port=1,actions=output:2".into()],
                        fail_secure: false,
                        other_config: Vec::new(),
                    },
                ))?;
                notes.extend(ovs.notes.iter().cloned());
                rr.ovs = Some(ovs);
            }
        }

        // the switch's own threads, to see how much of the window they were kept off the CPU
        let sw_threads: Vec<(i32, i32)> = match case {
            Case::Kernel => napi.iter().map(|p| (*p, *p)).collect(),
            Case::Minfwd => rr
                .sw
                .as_ref()
                .map(|a| util::threads_named(a.pid(), "minfwd"))
                .unwrap_or_default(),
            Case::Xvs => rr
                .xvs
                .as_ref()
                .and_then(|x| x.pid())
                .map(|p| util::threads_named(p, "pmd"))
                .unwrap_or_default(),
            Case::Ovs => rr
                .ovs
                .as_ref()
                .and_then(|x| x.vswitchd_pid())
                .map(|p| util::threads_named(p, "pmd"))
                .unwrap_or_default(),
        };
        if case != Case::Kernel && sw_threads.is_empty() {
            notes.push("switch thread not found: no preemption figure".into());
        }
        match case {
            Case::Xvs => {
                if let Ok(t) = rr.xvs.as_ref().expect("xvs").call("dpif/show", &[]) {
                    setup_info.insert("dpif_show".into(), json!(t));
                }
            }
            Case::Ovs => {
                if let Ok(t) = rr
                    .ovs
                    .as_ref()
                    .expect("ovs")
                    .appctl(&["dpif-netdev/pmd-rxq-show"])
                {
                    setup_info.insert("pmd_rxq_show".into(), json!(t));
                }
            }
            Case::Minfwd => {
                let r = rr.sw.as_ref().expect("minfwd").ready.clone();
                for n in r["notes"].as_array().into_iter().flatten() {
                    notes.push(format!("minfwd: {}", n.as_str().unwrap_or("?")));
                }
                setup_info.insert("ready".into(), r);
            }
            Case::Kernel => {}
        }

        // traffic
        if let Some(g) = self.topo.gen.clone() {
            let a = setup(Agent::start(
                &self.exe,
                g.ns(),
                "gen",
                &[
                    "--if".into(),
                    g.name.clone(),
                    "--cpu".into(),
                    o.gen_cpu.to_string(),
                    "--src".into(),
                    self.topo.gen_mac.clone(),
                    "--dst".into(),
                    self.topo.sink_mac.clone(),
                    "--size".into(),
                    o.frame_len.to_string(),
                ],
                self.log(&format!("{tag}.gen.log")),
            ))?;
            rr.gen = Some(a);
        }
        measure(util::sleep(Duration::from_secs_f64(o.warmup)))?;

        // ---- window start: switch, then sink and generator (the same order at the end)
        let cpu0 = util::cpu_ticks();
        let procs0 = util::ProcSnap::take();
        let sched0 = util::sched_run_wait_ns(&sw_threads);
        let mut sw0 = Value::Null;
        let mut ovs_tx0 = None;
        let mut napi_ns0 = 0u64;
        match case {
            Case::Kernel => {
                napi_ns0 = napi.iter().map(|p| util::sched_runtime_ns(*p)).sum();
                sw0 = measure(rr.sw.as_mut().expect("kfwd").stats())?;
            }
            Case::Minfwd => sw0 = measure(rr.sw.as_mut().expect("minfwd").stats())?,
            Case::Xvs => {
                measure(rr.xvs.as_ref().expect("xvs").call("pmd/stats-clear", &[]))?;
            }
            Case::Ovs => {
                let ovs = rr.ovs.as_ref().expect("ovs");
                measure(ovs.appctl(&["dpif-netdev/pmd-stats-clear"]))?;
                ovs_tx0 = ovs.port_tx(2);
            }
        }
        let (sink0, t0) = measure(self.delivered_count(&mut rr, &out))?;
        let gen0 = measure(self.offered_count(&mut rr, &inp))?;

        measure(util::sleep(Duration::from_secs_f64(o.window)))?;

        // ---- window end
        let mut sw1 = Value::Null;
        let mut napi_ns1 = 0u64;
        let mut pmd_text = String::new();
        let mut ovs_tx1 = None;
        match case {
            Case::Kernel => {
                napi_ns1 = napi.iter().map(|p| util::sched_runtime_ns(*p)).sum();
                sw1 = measure(rr.sw.as_mut().expect("kfwd").stats())?;
            }
            Case::Minfwd => sw1 = measure(rr.sw.as_mut().expect("minfwd").stats())?,
            Case::Xvs => {
                pmd_text = measure(rr.xvs.as_ref().expect("xvs").call("pmd/stats", &[]))?;
            }
            Case::Ovs => {
                let ovs = rr.ovs.as_ref().expect("ovs");
                pmd_text = measure(ovs.appctl(&["dpif-netdev/pmd-stats-show"]))?;
                ovs_tx1 = ovs.port_tx(2);
            }
        }
        let (sink1, t1) = measure(self.delivered_count(&mut rr, &out))?;
        let gen1 = measure(self.offered_count(&mut rr, &inp))?;
        let sched1 = util::sched_run_wait_ns(&sw_threads);
        let cpu1 = util::cpu_ticks();
        let procs1 = util::ProcSnap::take();
        let dt = t1.duration_since(t0).as_secs_f64();

        // ---- what it cost
        let delivered = sink1.saturating_sub(sink0) as f64 / dt;
        let offered = match (gen0, gen1) {
            (Some(a), Some(b)) => Some(b.saturating_sub(a) as f64 / dt),
            _ => None,
        };
        let d = |k: &str| -> u64 {
            let a = sw0.get(k).and_then(Value::as_u64).unwrap_or(0);
            let b = sw1.get(k).and_then(Value::as_u64).unwrap_or(0);
            b.saturating_sub(a)
        };
        let hz = self.hz;
        let mut detail = serde_json::Map::new();
        let (sw_pkts, ns_per_pkt, busy_frac): (u64, Option<f64>, Option<f64>) = match case {
            Case::Kernel => {
                let pk = d("pkts");
                let rt = napi_ns1.saturating_sub(napi_ns0);
                detail.insert("napi_kthreads".into(), json!(napi));
                detail.insert("napi_runtime_ns".into(), json!(rt));
                detail.insert("redirected".into(), json!(pk));
                (
                    pk,
                    (pk > 0).then(|| rt as f64 / pk as f64),
                    Some(rt as f64 / 1e9 / dt / o.pmd_cpus.len() as f64),
                )
            }
            Case::Minfwd => {
                let rx = d("rx");
                let busy = d("busy_cycles");
                let busy_kept = busy.saturating_sub(d("stolen_busy_cycles"));
                let rx_kept = rx.saturating_sub(d("rx_stolen"));
                let tsc = d("tsc");
                let to_ns = |cyc: u64, n: u64| (n > 0).then(|| cyc as f64 / hz * 1e9 / n as f64);
                for k in [
                    "rx",
                    "tx",
                    "ring_drops",
                    "busy_cycles",
                    "idle_cycles",
                    "work_cycles",
                    "stolen_cycles",
                    "stolen_busy_cycles",
                    "rx_stolen",
                    "iters",
                    "busy_iters",
                    "kicks",
                    "kick_errors",
                ] {
                    detail.insert(k.into(), json!(d(k)));
                }
                detail.insert("ns_per_pkt_incl_preempted".into(), json!(to_ns(busy, rx)));
                detail.insert(
                    "ns_per_pkt_probe_accounting".into(),
                    json!(to_ns(
                        d("work_cycles").saturating_sub(d("stolen_work_cycles")),
                        d("tx")
                    )),
                );
                detail.insert("xsk_rx_end".into(), sw1.get("xsk_rx").cloned().into());
                (
                    rx,
                    to_ns(busy_kept, rx_kept),
                    (tsc > 0).then(|| busy as f64 / tsc as f64),
                )
            }
            Case::Xvs | Case::Ovs => {
                let secs = parse_pmd_stats(&pmd_text);
                if secs.is_empty() {
                    return Err(Fail::Measure(format!(
                        "no PMD section in the {} statistics:\n{pmd_text}",
                        case.name()
                    )));
                }
                let pk: u64 = secs.iter().map(|s| s.packets).sum();
                let busy: u64 = secs.iter().map(|s| s.busy_cycles).sum();
                let idle: u64 = secs.iter().map(|s| s.idle_cycles).sum();
                // the daemon's own "avg processing cycles per packet" (xvswitchd leaves its
                // preempted rounds out of it), weighted by packets over PMDs
                let cpp = if secs.iter().all(|s| s.avg_cycles_per_pkt.is_some()) && pk > 0 {
                    Some(
                        secs.iter()
                            .map(|s| s.avg_cycles_per_pkt.unwrap_or(0.0) * s.packets as f64)
                            .sum::<f64>()
                            / pk as f64,
                    )
                } else {
                    (pk > 0).then(|| busy as f64 / pk as f64)
                };
                detail.insert(
                    "ns_per_pkt_busy_over_received".into(),
                    json!((pk > 0).then(|| busy as f64 / hz * 1e9 / pk as f64)),
                );
                detail.insert("pmd_packets".into(), json!(pk));
                detail.insert("pmd_busy_cycles".into(), json!(busy));
                detail.insert("pmd_idle_cycles".into(), json!(idle));
                detail.insert(
                    "pmd_avg_processing_cycles_per_pkt".into(),
                    json!(secs
                        .iter()
                        .map(|s| s.avg_cycles_per_pkt)
                        .collect::<Vec<_>>()),
                );
                if case == Case::Xvs {
                    detail.insert(
                        "xvs_reported_ns".into(),
                        json!(secs.iter().map(|s| s.avg_ns).collect::<Vec<_>>()),
                    );
                    detail.insert(
                        "pmd_sent".into(),
                        json!(secs.iter().filter_map(|s| s.sent).sum::<u64>()),
                    );
                    detail.insert("fdb_sink_mac_port".into(), json!(fdb_port));
                    detail.insert(
                        "preempted_rounds".into(),
                        json!(secs.iter().filter_map(|s| s.preempted_rounds).sum::<u64>()),
                    );
                } else {
                    let ovs = rr.ovs.as_ref().expect("ovs");
                    detail.insert(
                        "port2_tx".into(),
                        json!(match (ovs_tx0, ovs_tx1) {
                            (Some(a), Some(b)) => Some(b.saturating_sub(a)),
                            _ => None,
                        }),
                    );
                    detail.insert("xdp_modes".into(), json!(ovs.modes));
                }
                detail.insert("pmd_stats".into(), json!(pmd_text));
                (
                    pk,
                    cpp.map(|c| c / hz * 1e9),
                    (busy + idle > 0).then(|| busy as f64 / (busy + idle) as f64),
                )
            }
        };

        // ---- load on the machine besides us
        let mut ours: Vec<i32> = vec![std::process::id() as i32];
        for a in [&rr.gen, &rr.sw, &rr.sink].into_iter().flatten() {
            ours.push(a.pid());
        }
        if let Some(x) = &rr.xvs {
            ours.extend(x.pid());
        }
        if let Some(ov) = &rr.ovs {
            ours.extend(ov.vswitchd_pid());
            ours.extend(ov.ovsdb_pid());
        }
        for e in [
            Some(&inp),
            Some(&out),
            self.topo.gen.as_ref(),
            self.topo.sink.as_ref(),
        ]
        .into_iter()
        .flatten()
        {
            ours.extend(util::napi_pids(&e.name));
        }
        let others = procs0.busy_since(&procs1, 3.0, &ours);
        let others_pct: f64 = others.iter().fold(0.0, |a, l| a + l.cpu_pct);
        let cpu_busy = util::cpu_busy_pct(&cpu0, &cpu1);

        if sink1 <= sink0 + 1000 || delivered < 1000.0 {
            return Err(Fail::Measure(format!(
                "only {} frames reached the sink in {dt:.1} s (switch saw {sw_pkts}); {}",
                sink1.saturating_sub(sink0),
                if self.topo.sink.is_none() && self.topo.gen.is_none() {
                    "is the external traffic generator running?"
                } else {
                    "frames are not forwarded from port 1 to port 2"
                }
            )));
        }
        if sw_pkts == 0 {
            return Err(Fail::Measure(format!(
                "the {} switch counted no packets in the window",
                case.name()
            )));
        }
        if let Some(x) = rr.xvs.as_mut() {
            if !x.alive() {
                return Err(Fail::Measure("xvswitchd exited during the window".into()));
            }
        }

        let run_ns = sched1.0.saturating_sub(sched0.0);
        let wait_ns = sched1.1.saturating_sub(sched0.1);
        let preempted = (!sw_threads.is_empty() && run_ns + wait_ns > 0)
            .then(|| wait_ns as f64 / (run_ns + wait_ns) as f64);
        detail.insert("switch_threads".into(), json!(sw_threads));
        detail.insert("switch_thread_run_ns".into(), json!(run_ns));
        detail.insert("switch_thread_wait_ns".into(), json!(wait_ns));
        detail.insert("switch_preempted_fraction".into(), json!(preempted));
        for (k, v) in setup_info {
            detail.insert(k, v);
        }
        detail.insert("switch_pkts".into(), json!(sw_pkts));
        detail.insert("sink_pkts".into(), json!(sink1.saturating_sub(sink0)));
        detail.insert("window_s".into(), json!(dt));
        detail.insert("switch_busy_fraction".into(), json!(busy_frac));
        detail.insert(
            "cpu_busy_pct".into(),
            json!(cpu_busy
                .iter()
                .map(|(c, p)| (format!("cpu{c}"), (p * 10.0).round() / 10.0))
                .collect::<BTreeMap<_, _>>()),
        );
        detail.insert(
            "others".into(),
            json!(others
                .iter()
                .take(12)
                .map(|l| json!({"pid": l.pid, "comm": l.comm, "cpu_pct": (l.cpu_pct * 10.0).round() / 10.0}))
                .collect::<Vec<_>>()),
        );
        detail.insert("others_cpu_pct".into(), json!(others_pct));
        detail.insert("loadavg".into(), json!(util::loadavg()));
        if let Some((w, b)) = quiet {
            if b >= o.quiet_pct {
                notes.push(format!(
                    "the machine was not quiet: {b:.0}% busy after waiting {w:.0} s"
                ));
            }
            detail.insert(
                "wait_quiet".into(),
                json!({"waited_s": w, "cpu_busy_pct_before": b}),
            );
        }
        if !notes.is_empty() {
            detail.insert("notes".into(), json!(notes));
        }
        Ok(Run {
            case,
            round,
            delivered_pps: delivered,
            offered_pps: offered,
            ns_per_pkt,
            others_cpu_pct: others_pct,
            detail: Value::Object(detail),
        })
    }

    /// Frames counted at the far end: the sink agent, or the egress interface's tx counter.
    fn delivered_count(&self, rr: &mut RunRes, out: &End) -> Result<(u64, Instant)> {
        match rr.sink.as_mut() {
            Some(s) => {
                let v = s.stat_u64("pkts")?;
                Ok((v, Instant::now()))
            }
            None => Ok((
                if_counter(out.ns(), &out.name, "tx_packets").unwrap_or(0),
                Instant::now(),
            )),
        }
    }

    fn offered_count(&self, rr: &mut RunRes, inp: &End) -> Result<Option<u64>> {
        match rr.gen.as_mut() {
            Some(g) => Ok(Some(g.stat_u64("pkts")?)),
            None => Ok(if_counter(inp.ns(), &inp.name, "rx_packets")),
        }
    }
}

// ------------------------------------------------------------------ reporting

fn mpps(x: f64) -> f64 {
    x / 1e6
}

struct CaseSummary {
    delivered: Option<(f64, f64, f64)>,
    offered: Option<(f64, f64, f64)>,
    ns: Option<(f64, f64, f64)>,
    projected: Option<(f64, f64, f64)>,
    preempted: Option<(f64, f64, f64)>,
    n: usize,
}

fn summarize(runs: &[Run], c: Case) -> CaseSummary {
    let r: Vec<&Run> = runs.iter().filter(|r| r.case == c).collect();
    let del: Vec<f64> = r.iter().map(|r| mpps(r.delivered_pps)).collect();
    let off: Vec<f64> = r.iter().filter_map(|r| r.offered_pps.map(mpps)).collect();
    let ns: Vec<f64> = r.iter().filter_map(|r| r.ns_per_pkt).collect();
    let proj: Vec<f64> = ns.iter().map(|n| 1e3 / n).collect();
    CaseSummary {
        delivered: util::summary(&del),
        offered: util::summary(&off),
        ns: util::summary(&ns),
        projected: util::summary(&proj),
        preempted: util::summary(
            &r.iter()
                .filter_map(|r| r.detail["switch_preempted_fraction"].as_f64())
                .collect::<Vec<_>>(),
        ),
        n: r.len(),
    }
}

/// Ratio of medians, plus the median/min/max of the per-round ratios (pairs from the same round
/// saw the same machine state).
fn ratio(runs: &[Run], a: Case, b: Case, f: impl Fn(&Run) -> Option<f64>) -> Option<Value> {
    let ma = util::summary(
        &runs
            .iter()
            .filter(|r| r.case == a)
            .filter_map(&f)
            .collect::<Vec<_>>(),
    )?
    .0;
    let mb = util::summary(
        &runs
            .iter()
            .filter(|r| r.case == b)
            .filter_map(&f)
            .collect::<Vec<_>>(),
    )?
    .0;
    let mut per = Vec::new();
    for ra in runs.iter().filter(|r| r.case == a) {
        if let Some(rb) = runs.iter().find(|r| r.case == b && r.round == ra.round) {
            if let (Some(x), Some(y)) = (f(ra), f(rb)) {
                if y > 0.0 {
                    per.push(x / y);
                }
            }
        }
    }
    (mb > 0.0).then(|| json!({"of_medians": ma / mb, "per_round": tri(util::summary(&per))}))
}

fn ratio_str(v: &Option<Value>) -> String {
    match v {
        None => "-".into(),
        Some(v) => {
            let m = v["of_medians"].as_f64().unwrap_or(f64::NAN);
            match (
                v["per_round"]["min"].as_f64(),
                v["per_round"]["max"].as_f64(),
            ) {
                (Some(lo), Some(hi)) => format!("{m:.2} (per round {lo:.2}..{hi:.2})"),
                _ => format!("{m:.2}"),
            }
        }
    }
}

pub(crate) fn host_info(hz: f64) -> Value {
    let rd = |p: &str| {
        std::fs::read_to_string(p)
            .map(|s| s.trim().to_string())
            .unwrap_or_default()
    };
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':').map(|x| x.1.trim().to_string()))
        .unwrap_or_default();
    json!({
        "hostname": rd("/proc/sys/kernel/hostname"),
        "kernel": rd("/proc/sys/kernel/osrelease"),
        "cpu_model": model,
        "cpus_online": util::allowed_cpus().len(),
        "tsc_hz": hz,
    })
}

pub(crate) fn git_rev() -> Value {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let rev = std::process::Command::new("git")
        .arg("-C")
        .arg(&dir)
        .args(["rev-parse", "--short=12", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());
    let dirty = std::process::Command::new("git")
        .arg("-C")
        .arg(&dir)
        .args(["status", "--porcelain", "--untracked-files=no"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| !o.stdout.is_empty());
    json!({"rev": rev, "dirty": dirty})
}

// ------------------------------------------------------------------ entry point

/// `xvs-perf p2p ...`; returns the exit status.
pub fn main(args: &[String]) -> i32 {
    let o = match util::parse_or_usage("p2p", USAGE, Opts::parse(args)) {
        Ok(o) => o,
        Err(code) => return code,
    };
    util::run_scenario("p2p", || run(o))
}

fn preflight(o: &Opts) -> Result<()> {
    if !util::is_root() {
        bail!("needs root (namespaces, XDP, AF_XDP, SCHED_FIFO)");
    }
    let allowed = util::allowed_cpus();
    for c in o.pmd_cpus.iter().chain([&o.gen_cpu, &o.sink_cpu]) {
        if !allowed.contains(c) {
            bail!("CPU {c} is not available (allowed: {allowed:?})");
        }
    }
    if o.nic.is_none() && o.pmd_cpus.contains(&o.gen_cpu) {
        eprintln!(
            "xvs-perf p2p: warning: the generator's CPU {} is also a switch CPU",
            o.gen_cpu
        );
    }
    if o.cases.contains(&Case::Xvs) && !o.xvswitchd.exists() {
        bail!(
            "{} not found: build it (cargo build --release --workspace) or pass --xvswitchd, \
             or leave xvs out of --cases",
            o.xvswitchd.display()
        );
    }
    if o.cases.contains(&Case::Ovs) && ovs::version().is_none() {
        bail!(
            "ovs-vswitchd not found (apt install openvswitch-switch), or leave ovs out of --cases"
        );
    }
    if let Some(n) = &o.nic {
        for i in [
            Some(&n.in_if),
            Some(&n.out_if),
            n.gen_if.as_ref(),
            n.sink_if.as_ref(),
        ]
        .into_iter()
        .flatten()
        {
            afxdp::netdev::ifindex(i).map_err(|e| format!("{e} (in this network namespace)"))?;
        }
    }
    Ok(())
}

fn run(o: Opts) -> Result<i32> {
    preflight(&o)?;
    let lock = lock()?;
    let exe = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
    let tmp = std::env::temp_dir().join(format!("xvs-perf-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).map_err(|e| format!("mkdir {}: {e}", tmp.display()))?;
    let hz = util::tsc_hz(Duration::from_millis(250));
    let topo = match &o.nic {
        Some(n) => Topo::nic(n),
        None => Topo::veth(),
    };
    let mut s = Session {
        o: o.clone(),
        exe,
        tmp,
        topo,
        hz,
        made_namespaces: false,
        _lock: lock,
    };
    if s.topo.veth {
        s.made_namespaces = true;
        Topo::create_namespaces()?;
    }
    let (started, stamp) = util::utc_now();
    let load_start = util::loadavg();
    let where_ = if s.topo.veth {
        "veth (namespaces xpgen/xpsw/xpsink)".to_string()
    } else {
        format!("{} -> {}", s.topo.inp.name, s.topo.out.name)
    };
    say!(
        "p2p on {where_}: {}-byte frames, {} run(s) x {} s (warm-up {} s); switch CPU(s) {:?}, generator CPU {}, sink CPU {}; TSC {:.3} GHz; load {load_start}",
        o.frame_len + 4,
        o.runs,
        o.window,
        o.warmup,
        o.pmd_cpus,
        o.gen_cpu,
        o.sink_cpu,
        hz / 1e9
    );
    let mut runs: Vec<Run> = Vec::new();
    let mut failed_runs: Vec<Value> = Vec::new();
    let mut disabled: BTreeMap<Case, String> = BTreeMap::new();
    let mut interrupted = false;
    'rounds: for round in 1..=o.runs {
        for &c in &o.cases {
            if disabled.contains_key(&c) {
                continue;
            }
            match s.run_case(c, round) {
                Ok(r) => {
                    say!(
                        "  round {round} {:<6} delivered {:.3} Mpps  offered {}  switch {}  busy {}  preempted {}  other load {:.0}%",
                        c.name(),
                        mpps(r.delivered_pps),
                        r.offered_pps
                            .map(|x| format!("{:.3} Mpps", mpps(x)))
                            .unwrap_or_else(|| "-".into()),
                        r.ns_per_pkt
                            .map(|x| format!("{x:.0} ns/pkt"))
                            .unwrap_or_else(|| "-".into()),
                        r.detail["switch_busy_fraction"]
                            .as_f64()
                            .map(|b| format!("{:.0}%", b * 100.0))
                            .unwrap_or_else(|| "-".into()),
                        r.detail["switch_preempted_fraction"]
                            .as_f64()
                            .map(|b| format!("{:.0}%", b * 100.0))
                            .unwrap_or_else(|| "-".into()),
                        r.others_cpu_pct
                    );
                    if let Some(n) = r.detail.get("notes") {
                        say!("      notes: {n}");
                    }
                    runs.push(r);
                }
                Err(Fail::Interrupted) => {
                    interrupted = true;
                    break 'rounds;
                }
                Err(Fail::Setup(e)) => {
                    say!("  round {round} {:<6} SETUP FAILED: {e}", c.name());
                    disabled.insert(c, e);
                }
                Err(Fail::Measure(e)) => {
                    say!("  round {round} {:<6} RUN FAILED: {e}", c.name());
                    failed_runs.push(json!({"case": c.name(), "round": round, "error": e}));
                }
            }
        }
    }

    // ---- table
    say!();
    say!(
        "{:<8} {:>26} {:>24} {:>22} {:>8} {:>10}",
        "case",
        "delivered Mpps",
        "switch ns/pkt",
        "1-core Mpps (proj.)",
        "offered",
        "preempted"
    );
    let mut cases_json = serde_json::Map::new();
    for &c in &o.cases {
        let sm = summarize(&runs, c);
        if sm.n > 0 {
            say!(
                "{:<8} {:>26} {:>24} {:>22} {:>8} {:>10}",
                c.name(),
                fmt3(sm.delivered, 3),
                fmt3(sm.ns, 0),
                fmt3(sm.projected, 2),
                sm.offered
                    .map(|x| format!("{:.3}", x.0))
                    .unwrap_or_else(|| "-".into()),
                sm.preempted
                    .map(|x| format!("{:.0}%", x.0 * 100.0))
                    .unwrap_or_else(|| "-".into())
            );
        } else {
            say!(
                "{:<8} {:>26}",
                c.name(),
                disabled
                    .get(&c)
                    .map(|_| "setup failed")
                    .unwrap_or("no runs")
            );
        }
        cases_json.insert(
            c.name().into(),
            json!({
                "method": c.method(),
                "runs": runs.iter().filter(|r| r.case == c).map(|r| json!({
                    "round": r.round,
                    "delivered_pps": r.delivered_pps,
                    "offered_pps": r.offered_pps,
                    "switch_ns_per_pkt": r.ns_per_pkt,
                    "projected_core_pps": r.ns_per_pkt.map(|n| 1e9 / n),
                    "detail": r.detail,
                })).collect::<Vec<_>>(),
                "summary": {
                    "n": sm.n,
                    "delivered_mpps": tri(sm.delivered),
                    "offered_mpps": tri(sm.offered),
                    "switch_ns_per_pkt": tri(sm.ns),
                    "projected_core_mpps": tri(sm.projected),
                    "switch_preempted_fraction": tri(sm.preempted),
                },
                "setup_error": disabled.get(&c),
            }),
        );
    }
    let cost = |r: &Run| r.ns_per_pkt;
    let del = |r: &Run| Some(r.delivered_pps);
    let pairs = [
        ("xvs/ovs", Case::Xvs, Case::Ovs),
        ("xvs/minfwd", Case::Xvs, Case::Minfwd),
        ("xvs/kernel", Case::Xvs, Case::Kernel),
        ("ovs/kernel", Case::Ovs, Case::Kernel),
        ("minfwd/kernel", Case::Minfwd, Case::Kernel),
    ];
    let mut cost_r = serde_json::Map::new();
    let mut del_r = serde_json::Map::new();
    say!("\nratios (of medians; per-round pairs in parentheses):");
    for (name, a, b) in pairs {
        let rc = ratio(&runs, a, b, cost);
        let rd = ratio(&runs, a, b, del);
        if rc.is_some() || rd.is_some() {
            say!(
                "  {name:<14} switch cost {:<34} delivered {}",
                ratio_str(&rc),
                ratio_str(&rd)
            );
        }
        if let Some(v) = rc {
            cost_r.insert(name.into(), v);
        }
        if let Some(v) = rd {
            del_r.insert(name.into(), v);
        }
    }
    let mut warnings: Vec<String> = Vec::new();
    let worst = o
        .cases
        .iter()
        .filter_map(|&c| summarize(&runs, c).preempted.map(|p| (c, p.0)))
        .fold(None, |acc: Option<(Case, f64)>, x| match acc {
            Some(a) if a.1 >= x.1 => Some(a),
            _ => Some(x),
        });
    if let Some((c, p)) = worst.filter(|w| w.1 > 0.05) {
        warnings.push(format!(
            "the switch core was taken by other tasks ({} preempted {:.0}% of the window, median){}; \
             measure on a quiet machine",
            c.name(),
            p * 100.0,
            if o.cases.contains(&Case::Ovs) {
                ": OVS counts that time in its cost, xvswitchd and minfwd leave rounds over 500 us \
                 out, so cost ratios against OVS are biased"
            } else {
                ""
            }
        ));
    }
    for w in &warnings {
        say!("warning: {w}");
    }
    let max_other = runs.iter().map(|r| r.others_cpu_pct).fold(0.0, f64::max);
    let mut top: BTreeMap<String, f64> = BTreeMap::new();
    for r in &runs {
        for l in r.detail["others"].as_array().into_iter().flatten() {
            let n = l["comm"].as_str().unwrap_or("?").to_string();
            let p = l["cpu_pct"].as_f64().unwrap_or(0.0);
            let e = top.entry(n).or_insert(0.0);
            *e = e.max(p);
        }
    }
    let mut top: Vec<(String, f64)> = top.into_iter().collect();
    top.sort_by(|a, b| b.1.total_cmp(&a.1));
    let load_end = util::loadavg();
    say!(
        "other CPU load during the windows: up to {max_other:.0}% of a CPU{}; loadavg {load_start} -> {load_end}",
        if top.is_empty() {
            String::new()
        } else {
            format!(
                " (peaks: {})",
                top.iter()
                    .take(6)
                    .map(|(n, p)| format!("{n} {p:.0}%"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        }
    );

    // ---- JSON
    let doc = json!({
        "scenario": "p2p",
        "format": 1,
        "started": started,
        "finished": util::utc_now().0,
        "interrupted": interrupted,
        "host": host_info(hz),
        "source": git_rev(),
        "versions": {
            "xvswitchd": xvs::version(&o.xvswitchd),
            "ovs": ovs::version(),
        },
        "config": {
            "mode": if s.topo.veth { "veth" } else { "interfaces" },
            "in": s.topo.inp.name, "out": s.topo.out.name,
            "gen_if": s.topo.gen.as_ref().map(|e| e.name.clone()),
            "sink_if": s.topo.sink.as_ref().map(|e| e.name.clone()),
            "frame_len": o.frame_len, "wire_len": o.frame_len + 4,
            "runs": o.runs, "window_s": o.window, "warmup_s": o.warmup,
            "cases": o.cases.iter().map(|c| c.name()).collect::<Vec<_>>(),
            "switch_cpus": o.pmd_cpus, "gen_cpu": o.gen_cpu, "sink_cpu": o.sink_cpu,
            "xvswitchd": o.xvswitchd, "xvs_args": o.xvs_args,
            "ovs_xdp_mode": o.ovs_xdp_mode,
            "queues": o.nic.as_ref().and_then(|n| n.queues),
            "wait_quiet_s": o.wait_quiet, "quiet_pct": o.quiet_pct,
            "delivered_source": if s.topo.sink.is_some() { "sink XDP counter" } else { "egress interface tx_packets" },
            "offered_source": if s.topo.gen.is_some() { "generator" } else { "ingress interface rx_packets" },
        },
        "cases": cases_json,
        "ratios": {"switch_cost": cost_r, "delivered": del_r},
        "load": {
            "loadavg_start": load_start, "loadavg_end": load_end,
            "max_other_cpu_pct": max_other,
            "peak_other_processes": top.iter().take(12).map(|(n, p)| json!({"comm": n, "cpu_pct": p})).collect::<Vec<_>>(),
        },
        "failed_runs": failed_runs,
        "warnings": warnings,
    });
    if runs.is_empty() {
        say!("no run completed: no results written");
    }
    if !runs.is_empty() {
        util::write_results("p2p", &stamp, o.json.as_deref(), &doc);
    }
    if o.keep_logs {
        say!("logs: {}", s.tmp.display());
    }
    drop(s);
    if interrupted {
        return Err(Error::Interrupted);
    }
    if !disabled.is_empty() || !failed_runs.is_empty() {
        for (c, e) in &disabled {
            eprintln!(
                "xvs-perf p2p: case {} could not be set up: {e}\n  (leave it out with --cases)",
                c.name()
            );
        }
        for f in &failed_runs {
            eprintln!(
                "xvs-perf p2p: {} round {}: {}",
                f["case"].as_str().unwrap_or("?"),
                f["round"],
                f["error"].as_str().unwrap_or("?")
            );
        }
        return Ok(1);
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    const XVS: &str = "pmd thread numa_id 0 core_id 1 (idle policy Busy):
  rx queues: xpsw0:0(copy) xpsw1:0(copy)
  packets received: 6000000
  packets sent: 5999990
  rx batches: 200000 (avg 30.00 packets/batch)
  megaflow hits: 5999999
  busy cycles: 3000000000 (55.00%)
  idle cycles: 2454545454 (45.00%)
  avg processing cycles per packet: 500.0 (192.6 ns)
";

    const OVS: &str = "pmd thread numa_id 0 core_id 1:
  packets received: 4500000
  packet recirculations: 0
  avg. datapath passes per packet: 1.00
  emc hits: 4499999
  miss with success upcall: 1
  idle cycles: 1000 (0.00%)
  processing cycles: 9000000000 (100.00%)
  avg cycles per packet: 2000.00 (9000001000/4500000)
  avg processing cycles per packet: 2000.00 (9000000000/4500000)
main thread:
  packets received: 7
  processing cycles: 99
";

    #[test]
    fn parses_xvswitchd_pmd_stats() {
        let v = parse_pmd_stats(XVS);
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].packets, 6_000_000);
        assert_eq!(v[0].sent, Some(5_999_990));
        assert_eq!(v[0].busy_cycles, 3_000_000_000);
        assert_eq!(v[0].idle_cycles, 2_454_545_454);
        assert_eq!(v[0].avg_cycles_per_pkt, Some(500.0));
        assert_eq!(v[0].avg_ns, Some(192.6));
    }

    #[test]
    fn parses_the_newer_xvswitchd_cost_line() {
        let t = XVS.replace(
            "avg processing cycles per packet: 500.0 (192.6 ns)",
            "avg processing cycles per packet: 480.5 (185.1 ns; rx+processing 90.0 ns, tx 95.1 ns)\n  preempted rounds: 7 (busy rounds over 500 us, left out of the per-packet cost)",
        );
        let v = parse_pmd_stats(&t);
        assert_eq!(v[0].avg_cycles_per_pkt, Some(480.5));
        assert_eq!(v[0].avg_ns, Some(185.1));
        assert_eq!(v[0].preempted_rounds, Some(7));
    }

    #[test]
    fn parses_ovs_pmd_stats_and_skips_the_main_thread() {
        let v = parse_pmd_stats(OVS);
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].packets, 4_500_000);
        assert_eq!(v[0].busy_cycles, 9_000_000_000);
        assert_eq!(v[0].avg_cycles_per_pkt, Some(2000.0));
        assert_eq!(v[0].avg_ns, None);
        let two = format!("{OVS}{}", OVS.replace("core_id 1", "core_id 2"));
        assert_eq!(parse_pmd_stats(&two).len(), 2);
    }

    #[test]
    fn options_parse_with_defaults_and_nic_mode() {
        let o = Opts::parse(&["--cases".into(), "xvs,ovs".into(), "--runs=5".into()]).unwrap();
        assert_eq!(o.cases, vec![Case::Xvs, Case::Ovs]);
        assert_eq!(o.runs, 5);
        assert_eq!(o.pmd_cpus, vec![1]);
        assert!(o.nic.is_none());
        let o = Opts::parse(
            &[
                "--in",
                "eth1",
                "--out",
                "eth2",
                "--queues",
                "4",
                "--pmd-cpus",
                "2-5",
            ]
            .map(String::from),
        )
        .unwrap();
        let n = o.nic.unwrap();
        assert_eq!((n.in_if.as_str(), n.queues), ("eth1", Some(4)));
        assert_eq!(o.pmd_cpus, vec![2, 3, 4, 5]);
        assert!(Opts::parse(&["--in".into(), "eth1".into()]).is_err());
        assert!(Opts::parse(&["--cases".into(), "foo".into()]).is_err());
        assert!(Opts::parse(&["--gen-if".into(), "x".into()]).is_err());
    }

    #[test]
    fn ratios_use_medians_and_same_round_pairs() {
        let mk = |case, round, ns: f64| Run {
            case,
            round,
            delivered_pps: 1e6,
            offered_pps: None,
            ns_per_pkt: Some(ns),
            others_cpu_pct: 0.0,
            detail: Value::Null,
        };
        let runs = vec![
            mk(Case::Xvs, 1, 500.0),
            mk(Case::Ovs, 1, 1000.0),
            mk(Case::Xvs, 2, 600.0),
            mk(Case::Ovs, 2, 800.0),
        ];
        let r = ratio(&runs, Case::Xvs, Case::Ovs, |r| r.ns_per_pkt).unwrap();
        assert!((r["of_medians"].as_f64().unwrap() - 550.0 / 900.0).abs() < 1e-9);
        assert!((r["per_round"]["min"].as_f64().unwrap() - 0.5).abs() < 1e-9);
        assert!((r["per_round"]["max"].as_f64().unwrap() - 0.75).abs() < 1e-9);
        assert!(ratio(&runs, Case::Xvs, Case::Kernel, |r| r.ns_per_pkt).is_none());
    }
}
