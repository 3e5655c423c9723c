//! Scenario `ct`: what connection tracking costs in the fast path (issue 8's target: 64-byte UDP
//! through a stateful ACL with 10,000 established connections, switch-core cost ≤ 0.7× OVS
//! afxdp's).
//!
//! Topology of `p2p` (namespaces xpgen/xpsw/xpsink, fresh veths per run, switch core 1,
//! generator and sink on core 0). Both switches get the same stateful-ACL flow table through the
//! real `ovs-ofctl --bundle add-flows` ([`acl_flows`]): table 0 sends untracked IP through
//! `ct(table=1,zone=Z)`; table 1 commits new connections from port 1 and forwards established
//! traffic both ways; everything else is dropped.
//!
//! Per run (one fresh daemon per switch per round, rounds interleave the switches):
//! 1. *Priming*: the generator sends the first packet of each of the N connections once, paced
//!    (+trk+new → `ct(commit)`, output 2); the tracker's connection count is read; then the
//!    sink side answers each connection once (the reply: addresses and ports swapped, port 2 →
//!    port 1; +trk+est in the reply direction, output 1), counted on the generator's side. From
//!    then on each connection is ESTABLISHED (OVS's userspace tracker: a UDP connection that saw a
//!    reply).
//! 2. *Window*: the generator round-robins over the N connections packet by packet (live frames,
//!    `agent --flows N`), every packet +trk+est: warm-up, statistics cleared, a steady window.
//!    Figures: the PMD's "avg processing cycles per packet" (as `p2p`; both switches count a
//!    packet once however often it recirculates), the on-CPU figure of `ovn`, delivered and
//!    offered rate, the datapath flows.
//! 3. *Proof*: `ovs-ofctl dump-flows` packet counts of the +new / +est rules over the traffic
//!    (the share of the stream the switch saw as established), `dpctl/ct-get-nconns` and the
//!    lines of `dpctl/dump-conntrack zone=Z` at the end.
//!
//! `--no-reply` skips the replies: the window then measures +new traffic (every packet looked
//! up and committed again), said so in the output and the JSON.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::agent::Agent;
use crate::miss::sum_key;
use crate::ovn::{count_masks, parse_xvs_megaflows, parse_xvs_split};
use crate::ovs::{Ovs, OvsOpts};
use crate::p2p::{self, parse_pmd_stats, End, Topo};
use crate::util::{self, env_or, fmt3, tri, Error, Result};
use crate::xvs::{Xvs, XvsOpts};
use crate::{bail, ovs, say, xvs};

pub const USAGE: &str = "\
usage: xvs-perf ct [OPTIONS]

64-byte UDP frames port 1 -> port 2 through a stateful ACL (ct(table=1,zone=5), commit of new
connections, established traffic forwarded) with N established connections, in xvswitchd and in
OVS 3.1 afxdp (p2p veth topology, flows installed with ovs-ofctl, rounds interleaved).
Connections are primed first (one packet each way). Prints the switch core's ns/packet, the
delivered rate, the share of traffic seen as established and the tracker's connection count,
and writes JSON to perf/results/ct-<UTC time>.json. Needs root.

  --cases LIST        xvs,ovs (default both; env CASES)
  --runs N            rounds (default 3; env RUNS)
  --window S          measured seconds (default 4)
  --warmup S          seconds of traffic before the window (default 2)
  --conns N           connections (default 10000, at most 60000)
  --prime-pps R       rate of the priming packets, each way (default 20000 frames/s)
  --zone Z            conntrack zone (default 5)
  --no-reply          do not answer the connections: measure +new (commit) traffic instead
  --lb-secs S         load-balancer part: seconds of new TCP connections to a VIP DNATed by a
                      select group to two backends (default 5; 0 skips it)
  --lb-threads T      client threads opening connections (default 4)
  --pmd-cpus N        switch core (default 1)
  --gen-cpu N         generator core (default 0)
  --sink-cpu N        sink core (default 0)
  --xvswitchd PATH    binary under test (default: next to xvs-perf)
  --xvs-arg ARG       extra xvswitchd argument (repeatable)
  --ovs-xdp-mode M    OVS options:xdp-mode (default native; falls back to best-effort)
  --write-flows F     write the flow file to F and exit
  --json PATH         write the results here instead of perf/results/ct-<time>.json
  --keep-logs         keep the scratch directory (flows, logs)
  --wait-quiet SECS   before each run wait up to SECS for a quiet second (env WAIT_QUIET)
  --quiet-pct P       quiet = all CPUs together less than P % busy (default 25)
";

/// Cookies of the ACL's rules, to read their packet counts back.
const CK_TRACK: u64 = 0x10;
const CK_NEW: u64 = 0x1;
const CK_EST_FWD: u64 = 0x2;
const CK_EST_RPL: u64 = 0x3;
const CK_DROP: u64 = 0x4;

/// The stateful ACL, identical for both switches. ARP is forwarded statically (the generated
/// traffic has none; a real ACL would let it through).
pub fn acl_flows(zone: u16) -> String {
    [
        format!("cookie={CK_TRACK:#x},table=0,priority=100,ip,ct_state=-trk,actions=ct(table=1,zone={zone})"),
        "table=0,priority=50,arp,in_port=1,actions=output:2".to_string(),
        "table=0,priority=50,arp,in_port=2,actions=output:1".to_string(),
        "table=0,priority=0,actions=drop".to_string(),
        format!("cookie={CK_NEW:#x},table=1,priority=100,ip,ct_state=+trk+new,in_port=1,actions=ct(commit,zone={zone}),output:2"),
        format!("cookie={CK_EST_FWD:#x},table=1,priority=100,ip,ct_state=+trk+est,in_port=1,actions=output:2"),
        format!("cookie={CK_EST_RPL:#x},table=1,priority=100,ip,ct_state=+trk+est,in_port=2,actions=output:1"),
        format!("cookie={CK_DROP:#x},table=1,priority=0,actions=drop"),
    ]
    .join("\n")
        + "\n"
}

/// Packet counts per cookie of an `ovs-ofctl dump-flows` listing (summed over rules).
fn rule_packets(dump: &str) -> BTreeMap<u64, u64> {
    let mut m = BTreeMap::new();
    for l in dump.lines() {
        let field = |k: &str| -> Option<&str> {
            l.split([',', ' '])
                .map(str::trim)
                .find_map(|f| f.strip_prefix(k))
        };
        let (Some(c), Some(n)) = (field("cookie="), field("n_packets=")) else {
            continue;
        };
        let c = u64::from_str_radix(c.trim_start_matches("0x"), 16).ok();
        if let (Some(c), Ok(n)) = (c, n.parse::<u64>()) {
            *m.entry(c).or_insert(0) += n;
        }
    }
    m
}

/// OVS's "avg. datapath passes per packet: X" (packet-weighted over PMDs is not needed: one PMD).
fn parse_passes(s: &str) -> Option<f64> {
    s.lines()
        .map(str::trim)
        .find_map(|l| l.strip_prefix("avg. datapath passes per packet:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
}

/// Conntrack entries listed by `dpctl/dump-conntrack` (one per line, OVS's format).
fn conntrack_lines(s: &str) -> u64 {
    s.lines().filter(|l| l.contains("src=")).count() as u64
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Case {
    Xvs,
    Ovs,
}

impl Case {
    fn name(self) -> &'static str {
        match self {
            Case::Xvs => "xvs",
            Case::Ovs => "ovs",
        }
    }
}

#[derive(Clone, Debug)]
struct Opts {
    cases: Vec<Case>,
    runs: usize,
    window: f64,
    warmup: f64,
    conns: u32,
    prime_pps: f64,
    zone: u16,
    reply: bool,
    lb_secs: f64,
    lb_threads: usize,
    pmd_cpu: usize,
    gen_cpu: usize,
    sink_cpu: usize,
    xvswitchd: PathBuf,
    xvs_args: Vec<String>,
    ovs_xdp_mode: String,
    write_flows: Option<PathBuf>,
    json: Option<PathBuf>,
    keep_logs: bool,
    wait_quiet: f64,
    quiet_pct: f64,
}

impl Opts {
    fn parse(args: &[String]) -> std::result::Result<Opts, String> {
        let exe_dir = std::env::current_exe()
            .ok()
            .and_then(|p| p.parent().map(Path::to_path_buf))
            .unwrap_or_else(|| PathBuf::from("."));
        let mut cases = env_or("CASES", "xvs,ovs");
        let mut runs = env_or("RUNS", "3");
        let mut wait_quiet = env_or("WAIT_QUIET", "0");
        let mut o = Opts {
            cases: Vec::new(),
            runs: 3,
            window: 4.0,
            warmup: 2.0,
            conns: 10_000,
            prime_pps: 20_000.0,
            zone: 5,
            reply: true,
            lb_secs: 5.0,
            lb_threads: 4,
            pmd_cpu: 1,
            gen_cpu: 0,
            sink_cpu: 0,
            xvswitchd: exe_dir.join("xvswitchd"),
            xvs_args: Vec::new(),
            ovs_xdp_mode: "native".into(),
            write_flows: None,
            json: None,
            keep_logs: false,
            wait_quiet: 0.0,
            quiet_pct: 25.0,
        };
        let num = |s: &str, what: &str| -> std::result::Result<f64, String> {
            s.parse::<f64>()
                .ok()
                .filter(|x| x.is_finite() && *x >= 0.0)
                .ok_or_else(|| format!("{what}: bad number {s:?}"))
        };
        let mut flags = util::Flags::new(args);
        while let Some(flag) = flags.next_flag() {
            let mut val = || flags.value();
            match flag.as_str() {
                "--cases" => cases = val()?,
                "--runs" => runs = val()?,
                "--window" => o.window = num(&val()?, "--window")?,
                "--warmup" => o.warmup = num(&val()?, "--warmup")?,
                "--conns" => o.conns = num(&val()?, "--conns")? as u32,
                "--prime-pps" => o.prime_pps = num(&val()?, "--prime-pps")?,
                "--zone" => {
                    let z = num(&val()?, "--zone")?;
                    if z > 65535.0 {
                        return Err("--zone: 0..65535".into());
                    }
                    o.zone = z as u16;
                }
                "--no-reply" => o.reply = false,
                "--lb-secs" => o.lb_secs = num(&val()?, "--lb-secs")?,
                "--lb-threads" => o.lb_threads = (num(&val()?, "--lb-threads")? as usize).max(1),
                "--pmd-cpus" | "--pmd-cpu" => o.pmd_cpu = num(&val()?, "--pmd-cpus")? as usize,
                "--gen-cpu" => o.gen_cpu = num(&val()?, "--gen-cpu")? as usize,
                "--sink-cpu" => o.sink_cpu = num(&val()?, "--sink-cpu")? as usize,
                "--xvswitchd" => o.xvswitchd = PathBuf::from(val()?),
                "--xvs-arg" => o.xvs_args.push(val()?),
                "--ovs-xdp-mode" => o.ovs_xdp_mode = val()?,
                "--write-flows" => o.write_flows = Some(PathBuf::from(val()?)),
                "--json" => o.json = Some(PathBuf::from(val()?)),
                "--keep-logs" => o.keep_logs = true,
                "--wait-quiet" => wait_quiet = val()?,
                "--quiet-pct" => o.quiet_pct = num(&val()?, "--quiet-pct")?,
                "-h" | "--help" => return Err(String::new()),
                other => return Err(format!("unknown option {other:?}")),
            }
        }
        for c in cases.split(',').map(str::trim).filter(|c| !c.is_empty()) {
            let c = match c {
                "xvs" => Case::Xvs,
                "ovs" => Case::Ovs,
                _ => return Err(format!("unknown case {c:?} (xvs, ovs)")),
            };
            if !o.cases.contains(&c) {
                o.cases.push(c);
            }
        }
        if o.cases.is_empty() {
            return Err("--cases: nothing to run".into());
        }
        if o.conns == 0 || o.conns > crate::agent::MAX_FLOWS {
            return Err(format!(
                "--conns: 1 .. {} connections",
                crate::agent::MAX_FLOWS
            ));
        }
        o.runs = num(&runs, "--runs/RUNS")? as usize;
        if o.runs == 0 {
            return Err("--runs must be at least 1".into());
        }
        if o.window < 0.5 {
            return Err("--window must be at least 0.5 s".into());
        }
        if !(10.0..=1e6).contains(&o.prime_pps) {
            return Err("--prime-pps must be between 10 and 1000000".into());
        }
        o.wait_quiet = num(&wait_quiet, "--wait-quiet/WAIT_QUIET")?;
        Ok(o)
    }
}

/// One paced priming pass (first packets, or the replies).
#[derive(Clone, Debug, Default)]
struct Pass {
    sent: u64,
    send_s: f64,
    /// Packets the switch took in (PMD statistics, cleared before the pass).
    received: u64,
    /// Frames that came out on the far side (sink, or the generator's side for replies).
    delivered: u64,
}

/// The steady window.
#[derive(Clone, Debug, Default)]
struct Window {
    delivered_pps: f64,
    offered_pps: Option<f64>,
    /// PMD "avg processing cycles per packet", in ns.
    ns_per_pkt: Option<f64>,
    /// PMD on-CPU time (schedstat) × busy share / packets, robust to preemption.
    oncpu_ns: Option<f64>,
    /// xvswitchd's split: (rx + processing, tx) ns.
    split_ns: Option<(f64, f64)>,
    received: u64,
    preempted: Option<f64>,
    /// OVS "avg. datapath passes per packet".
    passes: Option<f64>,
    megaflows: Option<u64>,
    masks: Option<u64>,
    emc_hits: Option<u64>,
    upcalls: Option<u64>,
    stats: String,
    dp_flows: String,
    others_pct: f64,
    /// The switch's non-PMD threads busy in the window: (name, % of a CPU, last CPU).
    daemon_threads: Vec<(String, f64, Option<i64>)>,
}

struct Run {
    case: Case,
    round: usize,
    fwd: Pass,
    conns_after_fwd: Option<u64>,
    rpl: Option<Pass>,
    conns_after_rpl: Option<u64>,
    w: Window,
    /// Rule packet counts (by cookie) over warm-up + window.
    rules: BTreeMap<u64, u64>,
    conns_end: Option<u64>,
    dump_lines_end: Option<u64>,
    dump_sample: String,
    trace: String,
    notes: Vec<String>,
}

impl Run {
    /// Share of the stream the switch classified +est (rule counters).
    fn est_share(&self) -> Option<f64> {
        let e = *self.rules.get(&CK_EST_FWD).unwrap_or(&0) as f64;
        let n = *self.rules.get(&CK_NEW).unwrap_or(&0) as f64;
        (e + n > 0.0).then(|| e / (e + n))
    }
}

/// Everything one run starts, stopped in field order.
#[derive(Default)]
struct RunRes {
    gen: Option<Agent>,
    xvs: Option<Xvs>,
    ovs: Option<Ovs>,
    sink: Option<Agent>,
    /// Counts the replies arriving on the generator's side.
    gsink: Option<Agent>,
    restore: Vec<(Option<String>, String, String, String)>,
}

impl Drop for RunRes {
    fn drop(&mut self) {
        if let Some(mut g) = self.gen.take() {
            g.stop();
        }
        if let Some(mut x) = self.xvs.take() {
            x.stop();
        }
        if let Some(mut o) = self.ovs.take() {
            o.stop();
        }
        for a in [self.sink.take(), self.gsink.take()].into_iter().flatten() {
            let mut a = a;
            a.stop();
        }
        for (ns, ifname, attr, v) in self.restore.drain(..).rev() {
            let _ = p2p::sysfs_write(ns.as_deref(), &ifname, &attr, &v);
        }
    }
}

struct Session {
    o: Opts,
    exe: PathBuf,
    tmp: PathBuf,
    topo: Topo,
    hz: f64,
    flow_file: PathBuf,
    n_flows: usize,
    _lock: std::fs::File,
}

impl Drop for Session {
    fn drop(&mut self) {
        Topo::delete_namespaces();
        if self.o.lb_secs > 0.0 {
            lb_delete_namespaces();
        }
        if !self.o.keep_logs {
            let _ = std::fs::remove_dir_all(&self.tmp);
        }
    }
}

/// Each thread of `pid`: tid -> (name, ns on CPU so far, CPU it last ran on).
fn thread_times(pid: i32) -> BTreeMap<i32, (String, u64, Option<i64>)> {
    let mut m = BTreeMap::new();
    for (_, tid) in util::threads_named(pid, "") {
        let base = format!("/proc/{pid}/task/{tid}");
        let comm = std::fs::read_to_string(format!("{base}/comm")).unwrap_or_default();
        let run = std::fs::read_to_string(format!("{base}/schedstat"))
            .ok()
            .and_then(|s| s.split_whitespace().next()?.parse().ok())
            .unwrap_or(0);
        // field 39 of stat ("processor"), counted after the parenthesised name
        let cpu = std::fs::read_to_string(format!("{base}/stat"))
            .ok()
            .and_then(|s| {
                s.rsplit_once(')')?
                    .1
                    .split_whitespace()
                    .nth(36)?
                    .parse()
                    .ok()
            });
        m.insert(tid, (comm.trim().to_string(), run, cpu));
    }
    m
}

/// The switch's own threads other than its PMDs that used at least 3 % of a CPU between two
/// [`thread_times`] snapshots `secs` apart: (name, % of a CPU, CPU it last ran on). They compete
/// with the PMD when the scheduler puts them on its core (the preempted figure counts that).
fn busy_threads(
    a: &BTreeMap<i32, (String, u64, Option<i64>)>,
    b: &BTreeMap<i32, (String, u64, Option<i64>)>,
    secs: f64,
) -> Vec<(String, f64, Option<i64>)> {
    let mut v: Vec<(String, f64, Option<i64>)> = b
        .iter()
        .filter(|(_, (name, _, _))| !name.starts_with("pmd"))
        .filter_map(|(tid, (name, run, cpu))| {
            let r0 = a.get(tid).map(|x| x.1).unwrap_or(0);
            let pct = run.saturating_sub(r0) as f64 / 1e9 / secs.max(1e-3) * 100.0;
            (pct >= 3.0).then(|| (name.clone(), pct, *cpu))
        })
        .collect();
    v.sort_by(|x, y| y.1.total_cmp(&x.1));
    v
}

/// Weighted "avg processing cycles per packet" over the PMD sections, in cycles.
fn cycles_per_pkt(stats: &str) -> (u64, Option<f64>, u64, u64) {
    let secs = parse_pmd_stats(stats);
    let pk: u64 = secs.iter().map(|s| s.packets).sum();
    let cpp = (pk > 0 && secs.iter().all(|s| s.avg_cycles_per_pkt.is_some())).then(|| {
        secs.iter()
            .map(|s| s.avg_cycles_per_pkt.unwrap_or(0.0) * s.packets as f64)
            .sum::<f64>()
            / pk as f64
    });
    let busy = secs.iter().map(|s| s.busy_cycles).sum();
    let idle = secs.iter().map(|s| s.idle_cycles).sum();
    (pk, cpp, busy, idle)
}

impl Session {
    fn ofctl(&self, target: &str, cmd: &str, file: Option<&Path>) -> Command {
        let mut c = Command::new("ovs-ofctl");
        c.args(["-O", "OpenFlow15"]);
        if cmd == "add-flows" {
            c.arg("--bundle");
        }
        c.args([cmd, target]);
        if let Some(f) = file {
            c.arg(f);
        }
        c
    }

    /// A unixctl command on the switch under test (same command names on both).
    fn appctl(&self, case: Case, rr: &RunRes, cmd: &str, params: &[&str]) -> Result<String> {
        match case {
            Case::Xvs => rr.xvs.as_ref().expect("xvs").call(cmd, params),
            Case::Ovs => {
                let mut a = vec![cmd];
                a.extend_from_slice(params);
                rr.ovs.as_ref().expect("ovs").appctl(&a)
            }
        }
    }

    fn pmd_text(&self, case: Case, rr: &RunRes) -> Result<String> {
        match case {
            Case::Xvs => self.appctl(case, rr, "pmd/stats", &[]),
            Case::Ovs => self.appctl(case, rr, "dpif-netdev/pmd-stats-show", &[]),
        }
    }

    fn clear(&self, case: Case, rr: &RunRes) -> Result<()> {
        match case {
            Case::Xvs => self.appctl(case, rr, "pmd/stats-clear", &[])?,
            Case::Ovs => self.appctl(case, rr, "dpif-netdev/pmd-stats-clear", &[])?,
        };
        Ok(())
    }

    fn nconns(&self, case: Case, rr: &RunRes) -> Option<u64> {
        self.appctl(case, rr, "dpctl/ct-get-nconns", &[])
            .ok()?
            .trim()
            .parse()
            .ok()
    }

    fn rules(&self, target: &str) -> Result<BTreeMap<u64, u64>> {
        Ok(rule_packets(&util::run(&mut self.ofctl(
            target,
            "dump-flows",
            None,
        ))?))
    }

    /// Sends each connection's first packet (or, with `reply`, its answer from the sink side)
    /// once, paced; waits until the switch has taken them in; returns what crossed.
    fn prime(&self, case: Case, rr: &mut RunRes, reply: bool) -> Result<Pass> {
        let o = &self.o;
        self.clear(case, rr)?;
        let (from, src, dst): (End, &str, &str) = if reply {
            (
                self.topo.sink.clone().expect("veth topology has a sink"),
                &self.topo.sink_mac,
                &self.topo.gen_mac,
            )
        } else {
            (
                self.topo
                    .gen
                    .clone()
                    .expect("veth topology has a generator"),
                &self.topo.gen_mac,
                &self.topo.sink_mac,
            )
        };
        let counter = |rr: &mut RunRes| -> Result<u64> {
            match if reply {
                rr.gsink.as_mut()
            } else {
                rr.sink.as_mut()
            } {
                Some(a) => a.stat_u64("pkts"),
                None => Ok(0),
            }
        };
        let c0 = counter(rr)?;
        let mut cmd = util::ns_cmd(from.ns(), &self.exe);
        cmd.args(["agent", "gen", "--if", &from.name])
            .args(["--src", src, "--dst", dst])
            .args(["--flows", &o.conns.to_string()])
            .args(["--pps", &o.prime_pps.to_string()])
            .args(["--cpu", &o.gen_cpu.to_string()]);
        if reply {
            cmd.arg("--reply");
        }
        let out = util::run(&mut cmd)?;
        let done = out
            .lines()
            .find_map(|l| l.strip_prefix("DONE "))
            .ok_or_else(|| format!("priming generator: {}", out.trim()))?;
        let mut w = done.split_whitespace();
        let sent: u64 = w.next().and_then(|x| x.parse().ok()).unwrap_or(0);
        let send_s: f64 = w.next().and_then(|x| x.parse().ok()).unwrap_or(0.0);
        // until the switch has taken in everything, or stopped taking anything in
        let mut last = (u64::MAX, Instant::now());
        let end = Instant::now() + Duration::from_secs(20);
        let mut received;
        loop {
            received = sum_key(&self.pmd_text(case, rr)?, "packets received").unwrap_or(0);
            if received >= sent || Instant::now() > end {
                break;
            }
            if received != last.0 {
                last = (received, Instant::now());
            } else if last.1.elapsed() > Duration::from_millis(1000) {
                break;
            }
            util::sleep(Duration::from_millis(100))?;
        }
        util::sleep(Duration::from_millis(300))?;
        Ok(Pass {
            sent,
            send_s,
            received,
            delivered: counter(rr)?.saturating_sub(c0),
        })
    }

    /// Traffic over the connections: warm-up, then one measured window.
    fn window(
        &self,
        case: Case,
        rr: &mut RunRes,
        pid: i32,
        pmd_threads: &[(i32, i32)],
        tag: &str,
    ) -> Result<Window> {
        let g = self
            .topo
            .gen
            .clone()
            .expect("veth topology has a generator");
        rr.gen = Some(Agent::start(
            &self.exe,
            g.ns(),
            "gen",
            &[
                "--if".into(),
                g.name.clone(),
                "--cpu".into(),
                self.o.gen_cpu.to_string(),
                "--src".into(),
                self.topo.gen_mac.clone(),
                "--dst".into(),
                self.topo.sink_mac.clone(),
                "--flows".into(),
                self.o.conns.to_string(),
            ],
            self.tmp.join(format!("{tag}.gen.log")),
        )?);
        util::sleep(Duration::from_secs_f64(self.o.warmup))?;
        let procs0 = util::ProcSnap::take();
        self.clear(case, rr)?;
        let sched0 = util::sched_run_wait_ns(pmd_threads);
        let threads0 = thread_times(pid);
        let sink0 = rr.sink.as_mut().expect("sink").stat_u64("pkts")?;
        let t0 = Instant::now();
        let gen0 = rr.gen.as_mut().expect("gen").stat_u64("pkts")?;
        util::sleep(Duration::from_secs_f64(self.o.window))?;
        let stats = self.pmd_text(case, rr)?;
        let sink1 = rr.sink.as_mut().expect("sink").stat_u64("pkts")?;
        let dt = t0.elapsed().as_secs_f64();
        let gen1 = rr.gen.as_mut().expect("gen").stat_u64("pkts")?;
        let sched1 = util::sched_run_wait_ns(pmd_threads);
        let threads1 = thread_times(pid);
        let procs1 = util::ProcSnap::take();
        // the cache as the traffic left it, before the generator stops
        let dump = match case {
            Case::Xvs => self.appctl(case, rr, "dpctl/dump-flows", &[]),
            Case::Ovs => self.appctl(case, rr, "dpctl/dump-flows", &["-m"]),
        }
        .unwrap_or_default();
        if let Some(mut g) = rr.gen.take() {
            g.stop();
        }
        let (pk, cpp, busy, idle) = cycles_per_pkt(&stats);
        let run_ns = sched1.0.saturating_sub(sched0.0);
        let wait_ns = sched1.1.saturating_sub(sched0.1);
        let mut w = Window {
            delivered_pps: sink1.saturating_sub(sink0) as f64 / dt,
            offered_pps: Some(gen1.saturating_sub(gen0) as f64 / dt),
            ns_per_pkt: cpp.map(|c| c / self.hz * 1e9),
            oncpu_ns: (pk > 0 && busy + idle > 0 && run_ns > 0)
                .then(|| run_ns as f64 * busy as f64 / (busy + idle) as f64 / pk as f64),
            received: pk,
            preempted: (!pmd_threads.is_empty() && run_ns + wait_ns > 0)
                .then(|| wait_ns as f64 / (run_ns + wait_ns) as f64),
            daemon_threads: busy_threads(&threads0, &threads1, dt),
            ..Default::default()
        };
        match case {
            Case::Xvs => {
                if let Some((n, m)) = parse_xvs_megaflows(&stats) {
                    w.megaflows = Some(n);
                    w.masks = Some(m);
                }
                w.upcalls = crate::miss::parse_xvs_upcalls(&stats).map(|u| u.0);
                w.split_ns = parse_xvs_split(&stats);
            }
            Case::Ovs => {
                w.emc_hits = sum_key(&stats, "emc hits");
                w.upcalls = sum_key(&stats, "miss with success upcall");
                w.passes = parse_passes(&stats);
                w.megaflows = Some(dump.lines().filter(|l| l.contains("actions:")).count() as u64);
                w.masks = Some(count_masks(&dump) as u64);
            }
        }
        let mut ours: Vec<i32> = vec![std::process::id() as i32];
        ours.extend(rr.sink.as_ref().map(|a| a.pid()));
        ours.extend(rr.gsink.as_ref().map(|a| a.pid()));
        ours.extend(rr.xvs.as_ref().and_then(|x| x.pid()));
        ours.extend(rr.ovs.as_ref().and_then(|x| x.daemon_pid()));
        for e in [
            Some(&self.topo.inp),
            self.topo.gen.as_ref(),
            self.topo.sink.as_ref(),
        ]
        .into_iter()
        .flatten()
        {
            ours.extend(util::napi_pids(&e.name));
        }
        w.others_pct = procs0
            .busy_since(&procs1, 3.0, &ours)
            .iter()
            .map(|l| l.cpu_pct)
            .sum();
        w.stats = stats;
        w.dp_flows = dump.lines().take(12).collect::<Vec<_>>().join("\n");
        if sink1 <= sink0 + 1000 {
            bail!(
                "only {} frames reached the sink in {dt:.1} s (the switch received {pk}): the ACL does not forward port 1 -> port 2",
                sink1.saturating_sub(sink0)
            );
        }
        Ok(w)
    }

    fn run_case(&self, case: Case, round: usize) -> Result<Run> {
        let o = &self.o;
        let tag = format!("{}.{round}", case.name());
        self.topo.reset_veths()?;
        let inp = self.topo.inp.clone();
        let out = self.topo.out.clone();
        let mut rr = RunRes::default();
        let mut notes = Vec::new();
        let s = self.topo.sink.clone().expect("veth topology has a sink");
        rr.sink = Some(Agent::start(
            &self.exe,
            s.ns(),
            "sink",
            &["--if".into(), s.name.clone()],
            self.tmp.join(format!("{tag}.sink.log")),
        )?);
        let prev = p2p::sysfs_read(s.ns(), &s.name, "threaded").unwrap_or_else(|| "0".into());
        rr.restore
            .push((s.ns.clone(), s.name.clone(), "threaded".into(), prev));
        p2p::thread_napi(&s, &[o.sink_cpu], Some(50))?;
        if o.reply {
            let g = self
                .topo
                .gen
                .clone()
                .expect("veth topology has a generator");
            rr.gsink = Some(Agent::start(
                &self.exe,
                g.ns(),
                "sink",
                &["--if".into(), g.name.clone()],
                self.tmp.join(format!("{tag}.gsink.log")),
            )?);
        }
        let target;
        let pid;
        match case {
            Case::Xvs => {
                let mut extra = vec!["--fail-mode".to_string(), "secure".to_string()];
                extra.extend(o.xvs_args.iter().cloned());
                let rundir = self.tmp.join(format!("{tag}.xvs"));
                let x = Xvs::start(&XvsOpts {
                    bin: &o.xvswitchd,
                    ns: inp.ns(),
                    rundir: &rundir,
                    ports: &[inp.name.clone(), out.name.clone()],
                    pmd_cpus: &[o.pmd_cpu],
                    idle: "busy",
                    extra: &extra,
                })?;
                util::wait_for(Duration::from_secs(10), || x.mgmt.exists().then_some(()))?
                    .ok_or("xvswitchd: no OpenFlow management socket")?;
                target = format!("unix:{}", x.mgmt.display());
                pid = util::read_pidfile(&rundir.join("xvswitchd.pid"))
                    .or(x.pid())
                    .ok_or("xvswitchd pid unknown")?;
                rr.xvs = Some(x);
            }
            Case::Ovs => {
                let ovs = Ovs::start(
                    &self.tmp.join(format!("{tag}.ovs")),
                    &OvsOpts {
                        ns: inp.ns(),
                        pmd_cpus: &[o.pmd_cpu],
                        ports: vec![(inp.name.clone(), 1), (out.name.clone(), 2)],
                        xdp_mode: o.ovs_xdp_mode.clone(),
                        fallback_best_effort: true,
                        n_rxq: None,
                        flows: Vec::new(),
                        fail_secure: true,
                        other_config: Vec::new(),
                    },
                )?;
                notes.extend(ovs.notes.iter().cloned());
                target = ovs.mgmt();
                pid = ovs.daemon_pid().ok_or("ovs-vswitchd pid unknown")?;
                rr.ovs = Some(ovs);
            }
        }
        let pmd_threads = util::threads_named(pid, "pmd");
        if pmd_threads.is_empty() {
            notes.push("PMD thread not found: no preemption figure".into());
        }
        let t = util::run_timed(
            &mut self.ofctl(&target, "add-flows", Some(&self.flow_file)),
            Duration::from_secs(60),
            None,
            &self.tmp.join(format!("{tag}.add-flows.stderr")),
        )?;
        if !t.success {
            bail!("ovs-ofctl add-flows {target}: {} {}", t.status, t.stderr);
        }
        let listed = util::run(&mut self.ofctl(&target, "dump-flows", None))?;
        let n = listed.lines().filter(|l| l.contains(" actions=")).count();
        if n != self.n_flows {
            bail!(
                "{target}: dump-flows lists {n} flows, not the {} installed:\n{listed}",
                self.n_flows
            );
        }
        // the path of connection 0, as each switch explains it
        let l4 = match case {
            Case::Xvs => "tp",
            Case::Ovs => "udp",
        };
        let flow = format!(
            "in_port=1,udp,dl_src={},dl_dst={},nw_src={},nw_dst={},nw_ttl=64,{l4}_src=1024,{l4}_dst=9",
            self.topo.gen_mac,
            self.topo.sink_mac,
            crate::flows::ovn_src_ip(0),
            crate::flows::OVN_DST_IP
        );
        let bridge = match case {
            Case::Xvs => xvs::BRIDGE,
            Case::Ovs => ovs::BRIDGE,
        };
        let trace = self
            .appctl(case, &rr, "ofproto/trace", &[bridge, &flow])
            .unwrap_or_else(|e| format!("trace failed: {e}"));

        // 1. priming
        let fwd = self.prime(case, &mut rr, false)?;
        let conns_after_fwd = self.nconns(case, &rr);
        if fwd.delivered < fwd.sent {
            notes.push(format!(
                "priming: {} of {} first packets delivered",
                fwd.delivered, fwd.sent
            ));
        }
        let (rpl, conns_after_rpl) = if o.reply {
            let p = self.prime(case, &mut rr, true)?;
            if p.delivered < p.sent {
                notes.push(format!(
                    "priming: {} of {} replies crossed the switch (a reply is forwarded only as +est: connections the tracker does not hold stay +new)",
                    p.delivered, p.sent
                ));
            }
            (Some(p), self.nconns(case, &rr))
        } else {
            notes.push("--no-reply: the window measures +new traffic (lookup + commit per packet), not established connections".into());
            (None, None)
        };

        // 2. the window
        let rules0 = self.rules(&target)?;
        let w = self.window(case, &mut rr, pid, &pmd_threads, &tag)?;
        // OVS folds datapath flow statistics into the rules every ~0.5 s (revalidators)
        util::sleep(Duration::from_millis(1500))?;
        let rules1 = self.rules(&target)?;
        let rules: BTreeMap<u64, u64> = rules1
            .iter()
            .map(|(k, v)| (*k, v.saturating_sub(*rules0.get(k).unwrap_or(&0))))
            .collect();

        // 3. what the tracker holds
        let conns_end = self.nconns(case, &rr);
        let zone = format!("zone={}", o.zone);
        // a failed dump is no figure (not 0 lines): say why
        let (dump, dump_lines_end) = match self.appctl(case, &rr, "dpctl/dump-conntrack", &[&zone])
        {
            Ok(d) => {
                let n = conntrack_lines(&d);
                (d, Some(n))
            }
            Err(e) => {
                notes.push(format!("dpctl/dump-conntrack failed: {e}"));
                (format!("dump-conntrack failed: {e}"), None)
            }
        };
        let dump_sample = dump.lines().take(3).collect::<Vec<_>>().join("\n");
        if let Some(x) = rr.xvs.as_mut() {
            if !x.alive() {
                bail!("xvswitchd exited during the run");
            }
        }
        let want = o.conns as u64;
        if conns_end.unwrap_or(0) < want * 99 / 100 {
            notes.push(format!(
                "the tracker holds {} connections at the end, not ~{want}",
                conns_end
                    .map(|n| n.to_string())
                    .unwrap_or_else(|| "?".into())
            ));
        }
        let r = Run {
            case,
            round,
            fwd,
            conns_after_fwd,
            rpl,
            conns_after_rpl,
            w,
            rules,
            conns_end,
            dump_lines_end,
            dump_sample,
            trace: format!("{flow}\n{trace}"),
            notes,
        };
        let mut r = r;
        if o.reply {
            match r.est_share() {
                Some(e) if e < 0.99 => r.notes.push(format!(
                    "only {:.1} % of the stream matched the +est rule (rule counters)",
                    e * 100.0
                )),
                None => r
                    .notes
                    .push("no packet counts on the +new/+est rules after the window".into()),
                _ => {}
            }
        }
        Ok(r)
    }
}

// ------------------------------------------------------------------ part 2: load-balancer VIP

/// Namespaces of the load-balancer part: client, backend 1, backend 2 (the switch runs in the
/// p2p switch namespace).
const LB_NS: [&str; 3] = ["xplbc", "xplb1", "xplb2"];
/// Interface in each of them; its peer in the switch namespace is `xpsl0..2` (ports 1..3).
const LB_IF: [&str; 3] = ["xplc", "xplb", "xplb"];
const LB_SW_IF: [&str; 3] = ["xpsl0", "xpsl1", "xpsl2"];
const LB_MAC: [&str; 3] = [
    "02:00:00:00:01:01",
    "02:00:00:00:01:11",
    "02:00:00:00:01:12",
];
const LB_IP: [&str; 3] = ["10.213.0.1", "10.213.0.11", "10.213.0.12"];
const LB_VIP: &str = "10.213.0.100";
/// The MAC the client resolves the VIP to (statically: no ARP in the measurement).
const LB_VIP_MAC: &str = "02:00:00:00:01:64";
const LB_PORT: u16 = 80;
const LB_BACKEND_PORT: u16 = 8080;
const LB_ZONE: u16 = 7;

/// The load balancer as OVN builds one: every IP packet goes through `ct(nat)` (bare `nat`
/// re-applies a known connection's translation, both ways); a new connection to the VIP goes to
/// a select group whose buckets commit it with `nat(dst=backend)` and recirculate; table 2
/// delivers by (translated) destination address.
pub fn lb_flows() -> String {
    let z = LB_ZONE;
    [
        format!("table=0,priority=100,ip,ct_state=-trk,actions=ct(table=1,zone={z},nat)"),
        "table=0,priority=0,actions=drop".to_string(),
        format!("table=1,priority=100,ct_state=+trk+new,tcp,nw_dst={LB_VIP},tp_dst={LB_PORT},actions=group:1"),
        "table=1,priority=90,ct_state=+trk+est,ip,actions=resubmit(,2)".to_string(),
        "table=1,priority=0,actions=drop".to_string(),
        format!("table=2,priority=100,ip,nw_dst={},actions=mod_dl_dst:{},output:2", LB_IP[1], LB_MAC[1]),
        format!("table=2,priority=100,ip,nw_dst={},actions=mod_dl_dst:{},output:3", LB_IP[2], LB_MAC[2]),
        format!("table=2,priority=100,ip,nw_dst={},actions=output:1", LB_IP[0]),
        "table=2,priority=0,actions=drop".to_string(),
    ]
    .join("\n")
        + "\n"
}

/// The VIP's select group (dp_hash, as OVN emits for load balancers).
pub fn lb_group() -> String {
    let b = |i: usize, ip: &str| {
        format!(
            "bucket=bucket_id:{i},weight:100,actions=ct(commit,table=2,zone={LB_ZONE},nat(dst={ip}:{LB_BACKEND_PORT}))"
        )
    };
    format!(
        "group_id=1,type=select,selection_method=dp_hash,{},{}\n",
        b(0, LB_IP[1]),
        b(1, LB_IP[2])
    )
}

fn lb_create_namespaces() -> Result<()> {
    lb_delete_namespaces();
    for n in LB_NS {
        util::ip(&["netns", "add", n])?;
        util::ip(&["-n", n, "link", "set", "lo", "up"])?;
        let _ = util::sh(
            Some(n),
            "sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1",
        );
    }
    Ok(())
}

fn lb_delete_namespaces() {
    let list = util::run_always(Command::new("ip").args(["netns", "list"])).unwrap_or_default();
    for n in LB_NS {
        if list.lines().any(|l| l.split_whitespace().next() == Some(n)) {
            let _ = Command::new("ip").args(["netns", "del", n]).status();
        }
    }
}

/// Fresh veths client/backends <-> switch namespace, addresses, static neighbours, and no
/// checksum offload (a partial checksum would make the trackers call the segment invalid).
fn lb_reset_links(sw_ns: &str) -> Result<()> {
    for i in 0..3 {
        let _ = Command::new("ip")
            .args(["-n", sw_ns, "link", "del", LB_SW_IF[i]])
            .stderr(std::process::Stdio::null())
            .status();
        util::ip(&[
            "link",
            "add",
            LB_IF[i],
            "netns",
            LB_NS[i],
            "type",
            "veth",
            "peer",
            "name",
            LB_SW_IF[i],
            "netns",
            sw_ns,
        ])?;
        let (n, d) = (LB_NS[i], LB_IF[i]);
        let peer = if i == 0 {
            format!("{LB_VIP} lladdr {LB_VIP_MAC}")
        } else {
            format!("{} lladdr {}", LB_IP[0], LB_MAC[0])
        };
        util::sh(
            Some(n),
            &format!(
                "ip link set {d} address {mac} up && ip addr add {ip}/24 dev {d} && \
                 ethtool -K {d} tx off tso off gso off gro off >/dev/null 2>&1; \
                 ip neigh replace {peer} dev {d} nud permanent && \
                 sysctl -qw net.ipv4.ip_local_port_range='1024 65000'",
                mac = LB_MAC[i],
                ip = LB_IP[i]
            ),
        )?;
        util::sh(
            Some(sw_ns),
            &format!(
                "ip link set {} up && ethtool -K {} tx off tso off gso off gro off >/dev/null 2>&1; true",
                LB_SW_IF[i], LB_SW_IF[i]
            ),
        )?;
    }
    Ok(())
}

/// One load-balancer run.
#[derive(Clone, Debug, Default)]
struct Lb {
    case: Option<Case>,
    round: usize,
    ok: u64,
    failed: u64,
    secs: f64,
    /// Connections accepted per backend.
    accepted: [u64; 2],
    /// Switch-core busy cycles (xvswitchd "busy cycles", OVS "processing cycles") per
    /// completed connection, in µs.
    us_per_conn: Option<f64>,
    pkts_per_conn: Option<f64>,
    upcalls: Option<u64>,
    preempted: Option<f64>,
    conns_end: Option<u64>,
    dump_lines_end: Option<u64>,
    dump_sample: String,
    groups: String,
    stats: String,
    notes: Vec<String>,
}

impl Lb {
    fn rate(&self) -> f64 {
        if self.secs > 0.0 {
            self.ok as f64 / self.secs
        } else {
            0.0
        }
    }
}

/// What one load-balancer run starts, stopped in field order.
#[derive(Default)]
struct LbRes {
    xvs: Option<Xvs>,
    ovs: Option<Ovs>,
    backends: Vec<Agent>,
}

impl Drop for LbRes {
    fn drop(&mut self) {
        if let Some(mut x) = self.xvs.take() {
            x.stop();
        }
        if let Some(mut o) = self.ovs.take() {
            o.stop();
        }
        for mut b in self.backends.drain(..) {
            b.stop();
        }
    }
}

impl Session {
    fn lb_appctl(&self, case: Case, r: &LbRes, cmd: &str, params: &[&str]) -> Result<String> {
        match case {
            Case::Xvs => r.xvs.as_ref().expect("xvs").call(cmd, params),
            Case::Ovs => {
                let mut a = vec![cmd];
                a.extend_from_slice(params);
                r.ovs.as_ref().expect("ovs").appctl(&a)
            }
        }
    }

    fn run_lb(&self, case: Case, round: usize) -> Result<Lb> {
        let o = &self.o;
        let tag = format!("{}.{round}.lb", case.name());
        let sw_ns = self.topo.inp.ns.clone().unwrap_or_else(|| "xpsw".into());
        // fresh client and backend namespaces: no TIME_WAIT / LAST_ACK sockets of an earlier
        // run holding 4-tuples the client is about to reuse
        lb_create_namespaces()?;
        lb_reset_links(&sw_ns)?;
        let mut rr = LbRes::default();
        let mut notes = Vec::new();
        for i in 1..3 {
            rr.backends.push(Agent::start(
                &self.exe,
                Some(LB_NS[i]),
                "tcps",
                &["--listen".into(), format!("{}:{LB_BACKEND_PORT}", LB_IP[i])],
                self.tmp.join(format!("{tag}.backend{i}.log")),
            )?);
        }
        let ports: Vec<String> = LB_SW_IF.iter().map(|s| s.to_string()).collect();
        let (target, pid) = match case {
            Case::Xvs => {
                let mut extra = vec!["--fail-mode".to_string(), "secure".to_string()];
                extra.extend(o.xvs_args.iter().cloned());
                let rundir = self.tmp.join(format!("{tag}.xvs"));
                let x = Xvs::start(&XvsOpts {
                    bin: &o.xvswitchd,
                    ns: Some(&sw_ns),
                    rundir: &rundir,
                    ports: &ports,
                    pmd_cpus: &[o.pmd_cpu],
                    idle: "busy",
                    extra: &extra,
                })?;
                util::wait_for(Duration::from_secs(10), || x.mgmt.exists().then_some(()))?
                    .ok_or("xvswitchd: no OpenFlow management socket")?;
                let t = format!("unix:{}", x.mgmt.display());
                let pid = util::read_pidfile(&rundir.join("xvswitchd.pid"))
                    .or(x.pid())
                    .ok_or("xvswitchd pid unknown")?;
                rr.xvs = Some(x);
                (t, pid)
            }
            Case::Ovs => {
                let ovs = Ovs::start(
                    &self.tmp.join(format!("{tag}.ovs")),
                    &OvsOpts {
                        ns: Some(&sw_ns),
                        pmd_cpus: &[o.pmd_cpu],
                        ports: ports
                            .iter()
                            .enumerate()
                            .map(|(i, p)| (p.clone(), i as u32 + 1))
                            .collect(),
                        xdp_mode: o.ovs_xdp_mode.clone(),
                        fallback_best_effort: true,
                        n_rxq: None,
                        flows: Vec::new(),
                        fail_secure: true,
                        other_config: Vec::new(),
                    },
                )?;
                notes.extend(ovs.notes.iter().cloned());
                let t = ovs.mgmt();
                let pid = ovs.daemon_pid().ok_or("ovs-vswitchd pid unknown")?;
                rr.ovs = Some(ovs);
                (t, pid)
            }
        };
        let pmd_threads = util::threads_named(pid, "pmd");
        let gfile = self.tmp.join("lb-groups.txt");
        let ffile = self.tmp.join("lb-flows.txt");
        std::fs::write(&gfile, lb_group()).map_err(|e| format!("{}: {e}", gfile.display()))?;
        std::fs::write(&ffile, lb_flows()).map_err(|e| format!("{}: {e}", ffile.display()))?;
        util::run(&mut self.ofctl(&target, "add-groups", Some(&gfile)))?;
        util::run(&mut self.ofctl(&target, "add-flows", Some(&ffile)))?;
        let groups = util::run(&mut self.ofctl(&target, "dump-groups", None))?;
        let listed = util::run(&mut self.ofctl(&target, "dump-flows", None))?;
        let n = listed.lines().filter(|l| l.contains(" actions=")).count();
        if n != lb_flows().lines().count() || !groups.contains("group_id=1") {
            bail!("{target}: dump-flows lists {n} flows, groups:\n{groups}");
        }
        // one connection first: the cache warm, the path proven (or not) before the window
        let probe = self.lb_client(1.0, 1)?;
        if probe.0 == 0 {
            notes.push(format!(
                "no connection through the VIP in a 1 s probe ({} failed)",
                probe.1
            ));
        }
        let acc0: Vec<u64> = rr
            .backends
            .iter_mut()
            .map(|b| b.stat_u64("accepted").unwrap_or(0))
            .collect();
        match case {
            Case::Xvs => self.lb_appctl(case, &rr, "pmd/stats-clear", &[])?,
            Case::Ovs => self.lb_appctl(case, &rr, "dpif-netdev/pmd-stats-clear", &[])?,
        };
        let sched0 = util::sched_run_wait_ns(&pmd_threads);
        let (ok, failed, secs) = self.lb_client(o.lb_secs, o.lb_threads)?;
        let stats = match case {
            Case::Xvs => self.lb_appctl(case, &rr, "pmd/stats", &[])?,
            Case::Ovs => self.lb_appctl(case, &rr, "dpif-netdev/pmd-stats-show", &[])?,
        };
        let sched1 = util::sched_run_wait_ns(&pmd_threads);
        let accepted: Vec<u64> = rr
            .backends
            .iter_mut()
            .zip(acc0)
            .map(|(b, a0)| b.stat_u64("accepted").unwrap_or(0).saturating_sub(a0))
            .collect();
        let secs_pmd = parse_pmd_stats(&stats);
        let busy: u64 = secs_pmd.iter().map(|s| s.busy_cycles).sum();
        let pk: u64 = secs_pmd.iter().map(|s| s.packets).sum();
        let run_ns = sched1.0.saturating_sub(sched0.0);
        let wait_ns = sched1.1.saturating_sub(sched0.1);
        let conns_end = match self.lb_appctl(case, &rr, "dpctl/ct-get-nconns", &[]) {
            Ok(t) => t.trim().parse().ok(),
            Err(_) => None,
        };
        let zone = format!("zone={LB_ZONE}");
        let (dump, dump_lines_end) =
            match self.lb_appctl(case, &rr, "dpctl/dump-conntrack", &[&zone]) {
                Ok(d) => {
                    let n = conntrack_lines(&d);
                    (d, Some(n))
                }
                Err(e) => {
                    notes.push(format!("dpctl/dump-conntrack failed: {e}"));
                    (format!("dump-conntrack failed: {e}"), None)
                }
            };
        if let Some(x) = rr.xvs.as_mut() {
            if !x.alive() {
                bail!("xvswitchd exited during the load-balancer run");
            }
        }
        if ok > 0 && accepted.contains(&0) {
            notes.push(format!(
                "one backend got no connection (accepted {accepted:?}): the select group did not spread them"
            ));
        }
        Ok(Lb {
            case: Some(case),
            round,
            ok,
            failed,
            secs,
            accepted: [accepted[0], accepted[1]],
            us_per_conn: (ok > 0).then(|| busy as f64 / self.hz * 1e6 / ok as f64),
            pkts_per_conn: (ok > 0).then(|| pk as f64 / ok as f64),
            upcalls: match case {
                Case::Xvs => crate::miss::parse_xvs_upcalls(&stats).map(|u| u.0),
                Case::Ovs => sum_key(&stats, "miss with success upcall"),
            },
            preempted: (!pmd_threads.is_empty() && run_ns + wait_ns > 0)
                .then(|| wait_ns as f64 / (run_ns + wait_ns) as f64),
            conns_end,
            dump_lines_end,
            dump_sample: dump.lines().take(3).collect::<Vec<_>>().join("\n"),
            groups,
            stats,
            notes,
        })
    }

    /// Runs the TCP client in the client namespace: (completed, failed, seconds).
    fn lb_client(&self, secs: f64, threads: usize) -> Result<(u64, u64, f64)> {
        let mut cmd = util::ns_cmd(Some(LB_NS[0]), &self.exe);
        cmd.args(["agent", "tcpc", "--dst", &format!("{LB_VIP}:{LB_PORT}")])
            .args(["--secs", &secs.to_string()])
            .args(["--threads", &threads.to_string()])
            .args(["--cpu", &self.o.gen_cpu.to_string()]);
        let out = util::run(&mut cmd)?;
        let done = out
            .lines()
            .find_map(|l| l.strip_prefix("DONE "))
            .ok_or_else(|| format!("TCP client: {}", out.trim()))?;
        let v: Vec<&str> = done.split_whitespace().collect();
        let num = |i: usize| v.get(i).and_then(|x| x.parse::<f64>().ok()).unwrap_or(0.0);
        Ok((num(0) as u64, num(1) as u64, num(2)))
    }
}

fn lb_json(l: &Lb) -> Value {
    json!({
        "connections_ok": l.ok,
        "connections_failed": l.failed,
        "seconds": l.secs,
        "connections_per_s": l.rate(),
        "accepted_per_backend": l.accepted,
        "switch_us_per_connection": l.us_per_conn,
        "switch_packets_per_connection": l.pkts_per_conn,
        "upcalls": l.upcalls,
        "pmd_preempted_fraction": l.preempted,
        "conns_end": l.conns_end,
        "dump_conntrack_lines_end": l.dump_lines_end,
        "dump_conntrack_sample": l.dump_sample,
        "groups": l.groups,
        "pmd_stats": l.stats,
        "notes": l.notes,
    })
}

fn pass_json(p: &Pass) -> Value {
    json!({"sent": p.sent, "send_s": p.send_s, "switch_received": p.received, "delivered": p.delivered})
}

fn window_json(w: &Window) -> Value {
    json!({
        "delivered_pps": w.delivered_pps,
        "offered_pps": w.offered_pps,
        "ns_per_pkt": w.ns_per_pkt,
        "oncpu_busy_ns_per_pkt": w.oncpu_ns,
        "xvs_rx_processing_ns": w.split_ns.map(|x| x.0),
        "xvs_tx_ns": w.split_ns.map(|x| x.1),
        "pmd_packets": w.received,
        "pmd_preempted_fraction": w.preempted,
        "ovs_datapath_passes_per_packet": w.passes,
        "megaflows": w.megaflows,
        "masks": w.masks,
        "emc_hits": w.emc_hits,
        "upcalls": w.upcalls,
        "others_cpu_pct": w.others_pct,
        "switch_non_pmd_threads_busy": w.daemon_threads.iter().map(|(n, p, c)| json!({"thread": n, "cpu_pct": p, "last_cpu": c})).collect::<Vec<_>>(),
        "pmd_stats": w.stats,
        "dp_flows_sample": w.dp_flows,
    })
}

/// A figure of a run (None when the run did not produce it).
type Metric = (&'static str, &'static str, usize, fn(&Run) -> Option<f64>);

const METRICS: [Metric; 14] = [
    ("switch ns/pkt", "ns_per_pkt", 0, |r| r.w.ns_per_pkt),
    ("  on-CPU busy ns/pkt", "oncpu_ns_per_pkt", 0, |r| {
        r.w.oncpu_ns
    }),
    ("  of which rx+ct+lookup ns", "rx_processing_ns", 0, |r| {
        r.w.split_ns.map(|x| x.0)
    }),
    ("  of which tx ns", "tx_ns", 0, |r| {
        r.w.split_ns.map(|x| x.1)
    }),
    ("delivered Mpps", "delivered_mpps", 3, |r| {
        Some(r.w.delivered_pps / 1e6)
    }),
    ("offered Mpps", "offered_mpps", 3, |r| {
        Some(r.w.offered_pps? / 1e6)
    }),
    ("stream seen +est %", "est_pct", 1, |r| {
        r.est_share().map(|e| e * 100.0)
    }),
    ("datapath passes per packet", "passes", 2, |r| r.w.passes),
    ("megaflows", "megaflows", 0, |r| {
        r.w.megaflows.map(|x| x as f64)
    }),
    ("conns after first packets", "conns_after_fwd", 0, |r| {
        r.conns_after_fwd.map(|x| x as f64)
    }),
    ("replies delivered", "replies_delivered", 0, |r| {
        r.rpl.as_ref().map(|p| p.delivered as f64)
    }),
    ("ct-get-nconns at the end", "conns_end", 0, |r| {
        r.conns_end.map(|x| x as f64)
    }),
    (
        "dump-conntrack lines at the end",
        "dump_lines_end",
        0,
        |r| r.dump_lines_end.map(|x| x as f64),
    ),
    ("PMD preempted %", "preempted_pct", 1, |r| {
        r.w.preempted.map(|p| p * 100.0)
    }),
];

pub fn main(args: &[String]) -> i32 {
    let o = match util::parse_or_usage("ct", USAGE, Opts::parse(args)) {
        Ok(o) => o,
        Err(code) => return code,
    };
    util::run_scenario("ct", || run(o))
}

fn run(o: Opts) -> Result<i32> {
    let text = acl_flows(o.zone);
    if let Some(f) = &o.write_flows {
        std::fs::write(f, &text).map_err(|e| format!("{}: {e}", f.display()))?;
        say!("{}: {} flows", f.display(), text.lines().count());
        return Ok(0);
    }
    if !util::is_root() {
        bail!("needs root (namespaces, XDP, AF_XDP)");
    }
    let allowed = util::allowed_cpus();
    for c in [o.pmd_cpu, o.gen_cpu, o.sink_cpu] {
        if !allowed.contains(&c) {
            bail!("CPU {c} is not available (allowed: {allowed:?})");
        }
    }
    if o.cases.contains(&Case::Xvs) && !o.xvswitchd.exists() {
        bail!(
            "{} not found: build it (cargo build --release --workspace) or pass --xvswitchd",
            o.xvswitchd.display()
        );
    }
    if o.cases.contains(&Case::Ovs) && ovs::version().is_none() {
        bail!("ovs-vswitchd not found (apt install openvswitch-switch)");
    }
    let lock = p2p::lock()?;
    let exe = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
    let tmp = std::env::temp_dir().join(format!("xvs-perf-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).map_err(|e| format!("mkdir {}: {e}", tmp.display()))?;
    let hz = util::tsc_hz(Duration::from_millis(250));
    let flow_file = tmp.join("ct-flows.txt");
    std::fs::write(&flow_file, &text).map_err(|e| format!("{}: {e}", flow_file.display()))?;
    let s = Session {
        o: o.clone(),
        exe,
        tmp,
        topo: Topo::veth(),
        hz,
        flow_file,
        n_flows: text.lines().count(),
        _lock: lock,
    };
    Topo::create_namespaces()?;
    let (started, stamp) = util::utc_now();
    let load_start = util::loadavg();
    say!(
        "ct: stateful ACL (zone {}), {} UDP connections {}, primed at {} frames/s; {} s windows; switch CPU {}, generator CPU {}, sink CPU {}; TSC {:.3} GHz; load {load_start}",
        o.zone,
        o.conns,
        if o.reply {
            "established (one packet each way)"
        } else {
            "NOT answered (+new traffic)"
        },
        o.prime_pps,
        o.window,
        o.pmd_cpu,
        o.gen_cpu,
        o.sink_cpu,
        hz / 1e9
    );
    let mut runs: Vec<Run> = Vec::new();
    let mut lbs: Vec<Lb> = Vec::new();
    let mut failed: Vec<Value> = Vec::new();
    let mut interrupted = false;
    let mut quiet_log = Vec::new();
    'rounds: for round in 1..=o.runs {
        for c in util::round_order(&o.cases, round as u64) {
            if util::quiet_before(
                o.wait_quiet,
                o.quiet_pct,
                c.name(),
                round as u64,
                &mut quiet_log,
            )
            .is_err()
            {
                interrupted = true;
                break 'rounds;
            }
            match s.run_case(c, round) {
                Ok(r) => {
                    let opt = |v: Option<u64>| v.map(|n| n.to_string()).unwrap_or("-".into());
                    say!(
                        "  round {round} {:<4} priming: {}/{} first packets delivered, {} conns, {} replies delivered, {} conns; window: {} ns/pkt, {:.3} Mpps, {} +est, {} megaflows, preempted {}; end: {} conns, {} dump lines",
                        c.name(),
                        r.fwd.delivered,
                        r.fwd.sent,
                        opt(r.conns_after_fwd),
                        r.rpl.as_ref().map(|p| format!("{}/{}", p.delivered, p.sent)).unwrap_or("-".into()),
                        opt(r.conns_after_rpl),
                        r.w.ns_per_pkt.map(|n| format!("{n:.0}")).unwrap_or("-".into()),
                        r.w.delivered_pps / 1e6,
                        r.est_share().map(|e| format!("{:.1}%", e * 100.0)).unwrap_or("-".into()),
                        opt(r.w.megaflows),
                        r.w.preempted.map(|p| format!("{:.0}%", p * 100.0)).unwrap_or("-".into()),
                        opt(r.conns_end),
                        opt(r.dump_lines_end),
                    );
                    if !r.w.daemon_threads.is_empty() {
                        let t: Vec<String> =
                            r.w.daemon_threads
                                .iter()
                                .map(|(n, p, c)| {
                                    format!(
                                        "{n} {p:.0}% (CPU {})",
                                        c.map(|c| c.to_string()).unwrap_or("?".into())
                                    )
                                })
                                .collect();
                        say!(
                            "      switch threads besides the PMD busy in the window: {}",
                            t.join(", ")
                        );
                    }
                    for n in &r.notes {
                        say!("      note: {n}");
                    }
                    runs.push(r);
                }
                Err(Error::Interrupted) => {
                    interrupted = true;
                    break 'rounds;
                }
                Err(Error::Msg(e)) => {
                    say!("  round {round} {:<4} FAILED: {e}", c.name());
                    failed.push(json!({"case": c.name(), "round": round, "error": e}));
                }
            }
            if o.lb_secs <= 0.0 {
                continue;
            }
            match s.run_lb(c, round) {
                Ok(l) => {
                    say!(
                        "  round {round} {:<4} LB VIP: {} connections in {:.1} s = {:.0}/s ({} failed; backends {}/{}), switch {} us/conn, {} pkts/conn, {} upcalls, preempted {}; end: {} conns",
                        c.name(),
                        l.ok,
                        l.secs,
                        l.rate(),
                        l.failed,
                        l.accepted[0],
                        l.accepted[1],
                        l.us_per_conn.map(|u| format!("{u:.2}")).unwrap_or("-".into()),
                        l.pkts_per_conn.map(|u| format!("{u:.1}")).unwrap_or("-".into()),
                        l.upcalls.map(|u| u.to_string()).unwrap_or("-".into()),
                        l.preempted.map(|p| format!("{:.0}%", p * 100.0)).unwrap_or("-".into()),
                        l.conns_end.map(|u| u.to_string()).unwrap_or("-".into()),
                    );
                    for n in &l.notes {
                        say!("      note: {n}");
                    }
                    lbs.push(l);
                }
                Err(Error::Interrupted) => {
                    interrupted = true;
                    break 'rounds;
                }
                Err(Error::Msg(e)) => {
                    say!("  round {round} {:<4} LB FAILED: {e}", c.name());
                    failed
                        .push(json!({"case": c.name(), "round": round, "part": "lb", "error": e}));
                }
            }
        }
    }

    if runs.is_empty() && lbs.is_empty() {
        say!("no run completed: no results written");
        if o.keep_logs {
            say!("logs: {}", s.tmp.display());
        }
        drop(s);
        return if interrupted {
            Err(Error::Interrupted)
        } else {
            Ok(1)
        };
    }

    // ---- table
    say!();
    say!(
        "stateful ACL, {} {} UDP connections, 64-byte frames port 1 -> port 2",
        o.conns,
        if o.reply {
            "established"
        } else {
            "new (not answered)"
        }
    );
    say!(
        "{:<34} {:>24} {:>24} {:>22}",
        "median (min..max) over rounds",
        "xvs",
        "ovs",
        "xvs/ovs (per round)"
    );
    let mut summary = serde_json::Map::new();
    let mut ratios = serde_json::Map::new();
    let summ = |case: Case, f: fn(&Run) -> Option<f64>| {
        util::summary(
            &runs
                .iter()
                .filter(|r| r.case == case)
                .filter_map(f)
                .collect::<Vec<_>>(),
        )
    };
    for (label, key, prec, f) in METRICS {
        let xs = summ(Case::Xvs, f);
        let os = summ(Case::Ovs, f);
        let mut rs = String::new();
        if let (Some(a), Some(b)) = (xs, os) {
            if b.0 > 0.0 {
                let per: Vec<f64> = runs
                    .iter()
                    .filter(|r| r.case == Case::Xvs)
                    .filter_map(|ra| {
                        let rb = runs
                            .iter()
                            .find(|r| r.case == Case::Ovs && r.round == ra.round)?;
                        let (x, y) = (f(ra)?, f(rb)?);
                        (y > 0.0).then_some(x / y)
                    })
                    .collect();
                let pr = util::summary(&per);
                rs = format!(
                    "{:.2} ({})",
                    a.0 / b.0,
                    pr.map(|p| format!("{:.2}..{:.2}", p.1, p.2))
                        .unwrap_or_else(|| "-".into())
                );
                ratios.insert(
                    key.into(),
                    json!({"of_medians": a.0 / b.0, "per_round": tri(pr)}),
                );
            }
        }
        say!(
            "{:<34} {:>24} {:>24} {:>22}",
            label,
            fmt3(xs, prec),
            fmt3(os, prec),
            rs
        );
        summary.insert(key.into(), json!({"xvs": tri(xs), "ovs": tri(os)}));
    }

    // ---- target (issue 8), not asserted
    let mut targets = Vec::new();
    if let Some(r) = ratios
        .get("ns_per_pkt")
        .and_then(|r| r["of_medians"].as_f64())
    {
        // a figure counts only if both switches really tracked the connections
        let tracked = |c: Case| {
            let n = summ(c, |r| r.conns_end.map(|x| x as f64)).map(|t| t.0);
            let est = summ(c, |r| r.est_share()).map(|t| t.0);
            n.unwrap_or(0.0) >= o.conns as f64 * 0.99 && (!o.reply || est.unwrap_or(0.0) >= 0.99)
        };
        let invalid: Vec<&str> = o
            .cases
            .iter()
            .filter(|c| !tracked(**c))
            .map(|c| c.name())
            .collect();
        targets.push(json!({
            "target": format!("switch-core cost, 64-byte UDP through a stateful ACL, {} {} connections: xvs <= 0.7 x ovs",
                o.conns, if o.reply { "established" } else { "new (not answered)" }),
            "ratio": r,
            "met": r <= 0.7,
            "valid": invalid.is_empty(),
            "invalid_because": if invalid.is_empty() { Value::Null } else {
                json!(format!("{} did not hold the connections / see the stream as established", invalid.join(", ")))
            },
        }));
    }
    say!();
    for t in &targets {
        say!(
            "target {}: {:.2} -> {}{}",
            t["target"].as_str().unwrap_or(""),
            t["ratio"].as_f64().unwrap_or(f64::NAN),
            if t["met"].as_bool() == Some(true) {
                "met"
            } else {
                "NOT met"
            },
            t["invalid_because"]
                .as_str()
                .map(|w| format!(" (NOT VALID: {w})"))
                .unwrap_or_default()
        );
    }
    // ---- part 2: load-balancer VIP
    type LbMetric = (&'static str, &'static str, usize, fn(&Lb) -> Option<f64>);
    let lb_metrics: [LbMetric; 7] = [
        ("LB new connections/s", "lb_conns_per_s", 0, |l| {
            Some(l.rate())
        }),
        ("  switch us per connection", "lb_us_per_conn", 2, |l| {
            l.us_per_conn
        }),
        (
            "  switch packets per connection",
            "lb_pkts_per_conn",
            1,
            |l| l.pkts_per_conn,
        ),
        ("  failed connections", "lb_failed", 0, |l| {
            Some(l.failed as f64)
        }),
        ("  backend 1 share %", "lb_backend1_pct", 1, |l| {
            let t = l.accepted[0] + l.accepted[1];
            (t > 0).then(|| l.accepted[0] as f64 * 100.0 / t as f64)
        }),
        ("  ct-get-nconns at the end", "lb_conns_end", 0, |l| {
            l.conns_end.map(|x| x as f64)
        }),
        ("  PMD preempted %", "lb_preempted_pct", 1, |l| {
            l.preempted.map(|p| p * 100.0)
        }),
    ];
    if !lbs.is_empty() {
        say!();
        say!(
            "load-balancer VIP {LB_VIP}:{LB_PORT} -> 2 backends (select group, ct(commit,nat(dst))), {} client threads, {} s",
            o.lb_threads,
            o.lb_secs
        );
        let lsumm = |case: Case, f: fn(&Lb) -> Option<f64>| {
            util::summary(
                &lbs.iter()
                    .filter(|l| l.case == Some(case))
                    .filter_map(f)
                    .collect::<Vec<_>>(),
            )
        };
        for (label, key, prec, f) in lb_metrics {
            let xs = lsumm(Case::Xvs, f);
            let os = lsumm(Case::Ovs, f);
            let mut rs = String::new();
            if let (Some(a), Some(b)) = (xs, os) {
                if b.0 > 0.0 {
                    let per: Vec<f64> = lbs
                        .iter()
                        .filter(|l| l.case == Some(Case::Xvs))
                        .filter_map(|la| {
                            let lb = lbs
                                .iter()
                                .find(|l| l.case == Some(Case::Ovs) && l.round == la.round)?;
                            let (x, y) = (f(la)?, f(lb)?);
                            (y > 0.0).then_some(x / y)
                        })
                        .collect();
                    let pr = util::summary(&per);
                    rs = format!(
                        "{:.2} ({})",
                        a.0 / b.0,
                        pr.map(|p| format!("{:.2}..{:.2}", p.1, p.2))
                            .unwrap_or_else(|| "-".into())
                    );
                    ratios.insert(
                        key.into(),
                        json!({"of_medians": a.0 / b.0, "per_round": tri(pr)}),
                    );
                }
            }
            say!(
                "{:<34} {:>24} {:>24} {:>22}",
                label,
                fmt3(xs, prec),
                fmt3(os, prec),
                rs
            );
            summary.insert(key.into(), json!({"xvs": tri(xs), "ovs": tri(os)}));
        }
        if let Some(r) = ratios
            .get("lb_conns_per_s")
            .and_then(|r| r["of_medians"].as_f64())
        {
            let t = json!({
                "target": "connection setup rate through a load-balancer VIP: xvs >= ovs",
                "ratio": r,
                "met": r >= 1.0,
            });
            say!(
                "target {}: {r:.2} -> {}",
                t["target"].as_str().unwrap_or(""),
                if r >= 1.0 { "met" } else { "NOT met" }
            );
            targets.push(t);
        }
    }
    let mut warnings = Vec::new();
    for c in &o.cases {
        let tracked = summ(*c, |r| r.conns_end.map(|x| x as f64));
        if tracked.map(|t| t.0).unwrap_or(0.0) < o.conns as f64 * 0.99 {
            warnings.push(format!(
                "{}: the tracker does not hold the {} connections at the end (median {}): its figures are not those of connection tracking",
                c.name(),
                o.conns,
                tracked.map(|t| format!("{:.0}", t.0)).unwrap_or("-".into())
            ));
        }
        if o.reply {
            let est = summ(*c, |r| r.est_share());
            if est.map(|e| e.0).unwrap_or(0.0) < 0.99 {
                warnings.push(format!(
                    "{}: the stream was not seen as established (median {} on the +est rule)",
                    c.name(),
                    est.map(|e| format!("{:.1}%", e.0 * 100.0))
                        .unwrap_or("-".into())
                ));
            }
        }
    }
    let pre = runs
        .iter()
        .filter_map(|r| r.w.preempted)
        .fold(0.0, f64::max);
    let max_other = runs.iter().map(|r| r.w.others_pct).fold(0.0, f64::max);
    let load_end = util::loadavg();
    if pre > 0.05 {
        warnings.push(format!(
            "the switch core was taken by other tasks (PMD preempted up to {:.0}% of a window): OVS counts that time in its cycles, xvswitchd leaves long rounds out",
            pre * 100.0
        ));
    }
    say!(
        "other CPU load during the windows: up to {max_other:.0}% of a CPU; PMD preempted up to {:.0}%; loadavg {load_start} -> {load_end}",
        pre * 100.0
    );
    for w in &warnings {
        say!("warning: {w}");
    }

    let doc = json!({
        "scenario": "ct",
        "format": 1,
        "started": started,
        "finished": util::utc_now().0,
        "interrupted": interrupted,
        "host": p2p::host_info(hz),
        "source": p2p::git_rev(),
        "versions": {
            "xvswitchd": xvs::version(&o.xvswitchd),
            "ovs": ovs::version(),
        },
        "config": {
            "flows": text.lines().collect::<Vec<_>>(),
            "conns": o.conns, "zone": o.zone, "established": o.reply,
            "prime_pps": o.prime_pps, "window_s": o.window, "warmup_s": o.warmup,
            "runs": o.runs,
            "cases": o.cases.iter().map(|c| c.name()).collect::<Vec<_>>(),
            "switch_cpu": o.pmd_cpu, "gen_cpu": o.gen_cpu, "sink_cpu": o.sink_cpu,
            "xvswitchd": o.xvswitchd, "xvs_args": o.xvs_args, "ovs_xdp_mode": o.ovs_xdp_mode,
            "traffic": "64-byte UDP, connection i = 198.18.0.0+1+i:1024+i -> 198.19.0.1:9, round robin packet by packet (agent gen --flows N)",
            "priming": "each connection's first packet once (port 1 -> 2, paced), then its reply once (port 2 -> 1, addresses and ports swapped, paced); replies counted by an XDP sink on the generator's veth",
            "cost_method": "PMD 'avg processing cycles per packet' over the window (xvswitchd pmd/stats, OVS dpif-netdev/pmd-stats-show), statistics cleared at the window start; a recirculated packet counts once in both",
            "est_method": "ovs-ofctl dump-flows n_packets of the +trk+est (cookie 0x2) and +trk+new (cookie 0x1) rules, difference over warm-up + window",
            "conns_method": "dpctl/ct-get-nconns and the lines of dpctl/dump-conntrack zone=Z after the window",
            "lb_secs": o.lb_secs, "lb_threads": o.lb_threads,
            "lb_flows": lb_flows().lines().collect::<Vec<_>>(), "lb_group": lb_group().trim(),
            "lb_method": "client namespace (port 1): T threads loop connect(VIP:80) / read to EOF / close for S seconds (agent tcpc, on the generator core); backends (ports 2, 3): accept, write one byte, close (agent tcps); connections/s = completed / seconds; switch us per connection = PMD busy cycles (xvswitchd 'busy cycles', OVS 'processing cycles') over the run / completed connections",
        },
        "summary": summary,
        "ratios_xvs_over_ovs": ratios,
        "targets": targets,
        "lb_runs": lbs.iter().map(|l| {
            let mut v = lb_json(l);
            v["case"] = json!(l.case.map(Case::name));
            v["round"] = json!(l.round);
            v
        }).collect::<Vec<_>>(),
        "runs": runs.iter().map(|r| json!({
            "case": r.case.name(),
            "round": r.round,
            "prime_first_packets": pass_json(&r.fwd),
            "conns_after_first_packets": r.conns_after_fwd,
            "prime_replies": r.rpl.as_ref().map(pass_json),
            "conns_after_replies": r.conns_after_rpl,
            "window": window_json(&r.w),
            "rule_packets_by_cookie": r.rules.iter().map(|(k, v)| (format!("{k:#x}"), json!(v))).collect::<serde_json::Map<_, _>>(),
            "est_share": r.est_share(),
            "conns_end": r.conns_end,
            "dump_conntrack_lines_end": r.dump_lines_end,
            "dump_conntrack_sample": r.dump_sample,
            "trace": r.trace,
            "notes": r.notes,
        })).collect::<Vec<_>>(),
        "load": {
            "loadavg_start": load_start, "loadavg_end": load_end,
            "max_other_cpu_pct": max_other, "max_pmd_preempted": pre,
            "wait_quiet": quiet_log,
        },
        "failed_runs": failed,
        "warnings": warnings,
    });
    util::write_results("ct", &stamp, o.json.as_deref(), &doc);
    if o.keep_logs {
        say!("logs: {}", s.tmp.display());
    }
    drop(s);
    if interrupted {
        return Err(Error::Interrupted);
    }
    Ok(if failed.is_empty() { 0 } else { 1 })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_parse() {
        let o = Opts::parse(&[]).unwrap();
        assert_eq!(o.conns, 10_000);
        assert!(o.reply);
        assert_eq!(o.zone, 5);
        let o = Opts::parse(&["--conns=100".into(), "--no-reply".into()]).unwrap();
        assert_eq!(o.conns, 100);
        assert!(!o.reply);
        assert!(Opts::parse(&["--conns".into(), "0".into()]).is_err());
        assert!(Opts::parse(&["--conns".into(), "70000".into()]).is_err());
        assert!(Opts::parse(&["--zone".into(), "70000".into()]).is_err());
    }

    #[test]
    fn acl_has_the_stateful_rules() {
        let f = acl_flows(5);
        assert_eq!(f.lines().count(), 8);
        assert!(f.contains("ct_state=-trk,actions=ct(table=1,zone=5)"));
        assert!(f.contains("ct_state=+trk+new,in_port=1,actions=ct(commit,zone=5),output:2"));
        assert!(f.contains("ct_state=+trk+est,in_port=2,actions=output:1"));
    }

    #[test]
    fn lb_is_a_select_group_with_dnat_buckets() {
        let g = lb_group();
        assert!(g.starts_with("group_id=1,type=select,selection_method=dp_hash,"));
        assert!(g.contains("ct(commit,table=2,zone=7,nat(dst=10.213.0.11:8080))"));
        assert!(g.contains("ct(commit,table=2,zone=7,nat(dst=10.213.0.12:8080))"));
        let f = lb_flows();
        assert!(f.contains("ct_state=-trk,actions=ct(table=1,zone=7,nat)"));
        assert!(f.contains("tcp,nw_dst=10.213.0.100,tp_dst=80,actions=group:1"));
        assert_eq!(f.lines().filter(|l| l.contains("output:")).count(), 3);
    }

    #[test]
    fn reads_rule_counters_and_ct_figures() {
        let d = "OFPST_FLOW reply (OF1.5) (xid=0x4):\n cookie=0x10, duration=3.1s, table=0, n_packets=30010, n_bytes=1800600, priority=100,ct_state=-trk,ip actions=ct(table=1,zone=5)\n cookie=0x1, duration=3.1s, table=1, n_packets=10000, n_bytes=600000, priority=100,ct_state=+new+trk,ip,in_port=1 actions=ct(commit,zone=5),output:2\n cookie=0x2, duration=3.1s, table=1, n_packets=20000, n_bytes=1200000, priority=100,ct_state=+est+trk,ip,in_port=1 actions=output:2\n duration=3.1s, table=0, n_packets=0, n_bytes=0, priority=0 actions=drop\n";
        let m = rule_packets(d);
        assert_eq!(m.get(&CK_TRACK), Some(&30010));
        assert_eq!(m.get(&CK_NEW), Some(&10000));
        assert_eq!(m.get(&CK_EST_FWD), Some(&20000));
        assert_eq!(m.len(), 3);
        let s = "pmd thread numa_id 0 core_id 1:\n  packets received: 1000\n  packet recirculations: 1000\n  avg. datapath passes per packet: 2.00\n";
        assert_eq!(parse_passes(s), Some(2.0));
        let c = "udp,orig=(src=198.18.0.1,dst=198.19.0.1,sport=1024,dport=9),reply=(src=198.19.0.1,dst=198.18.0.1,sport=9,dport=1024),zone=5\nudp,orig=(src=198.18.0.2,dst=198.19.0.1,sport=1025,dport=9),reply=(src=198.19.0.1,dst=198.18.0.2,sport=9,dport=1025),zone=5\n";
        assert_eq!(conntrack_lines(c), 2);
        assert_eq!(conntrack_lines(""), 0);
    }
}
