//! Scenario `miss`: what a megaflow-cache miss costs when the packet goes through a 10-table
//! OpenFlow resubmit chain (the first packet of every new connection on an OVN node).
//!
//! Topology of `p2p` (namespaces xpgen/xpsw/xpsink, fresh veths per run). The switch (xvswitchd
//! `--fail-mode secure --pmd-idle busy`, or OVS 3.1 with afxdp ports, `fail_mode=secure` and
//! `pmd-perf-metrics=true`) gets the flows of `flows::miss_pipeline` through the real
//! `ovs-ofctl --bundle add-flows`: table 0 has one `udp,in_port=1,tp_dst=P` flow per port P, tables
//! 1..8 match OVN-like fields (metadata, reg14/reg15, MACs, IPv4 prefixes, reg0 bits) and
//! resubmit, table 9 outputs to port 2; every table also holds decoy flows of other datapaths.
//! The generator then sends one 64-byte UDP frame per destination port P (each port once,
//! paced), so every frame is a new megaflow: an upcall. A second pass sends the same frames
//! again: all should now hit the megaflow cache (a check that the first pass did cache them,
//! and the hit cost to compare with).
//!
//! Figures:
//! * xvswitchd: `pmd/stats` "upcalls: N (avg X us each)" — TSC cycles around translation +
//!   cache insert, per upcall; X/tables = cost per table visited.
//! * OVS: `dpif-netdev/pmd-perf-show` "Upcalls: N (.. %, X us/upcall)" — cycles around
//!   `handle_packet_upcall()` (xlate, ukey and megaflow install, and executing the packet's
//!   actions), counted only with `other_config:pmd-perf-metrics=true`; plus
//!   `dpif-netdev/pmd-stats-show` "miss with success upcall" / "miss with failed upcall".
//! * both: the PMD's "avg processing cycles per packet" of the miss pass minus that of the hit
//!   pass: the same method for both switches.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::agent::Agent;
use crate::ovs::{Ovs, OvsOpts};
use crate::p2p::{self, parse_pmd_stats, Topo};
use crate::util::{self, env_or, fmt3, tri, Error, Result};
use crate::xvs::{Xvs, XvsOpts};
use crate::{bail, flows, ovs, say, xvs};

pub const USAGE: &str = "\
usage: xvs-perf miss [OPTIONS]

A stream of UDP frames that each miss the megaflow cache and go through a 10-table resubmit
chain (flows installed with ovs-ofctl), through xvswitchd and OVS 3.1 afxdp in the p2p veth
topology, interleaved per round; then the same frames again (all hits). Prints the upcall
count and microseconds per upcall, ns per table, and miss-minus-hit processing cost, and writes
JSON to perf/results/miss-<UTC time>.json. Needs root.

  --cases LIST        xvs,ovs (default both; env CASES)
  --runs N            rounds (default 3; env RUNS)
  --packets N         distinct frames (UDP destination ports) per pass (default 4000; keep it
                      below OVS's datapath flow limit, which starts at 10000)
  --pps R             send rate (default 4000 frames/s)
  --tables T          tables in the chain (default 10)
  --decoys D          decoy flows of each of two shapes per table (default 20)
  --first-port P      first UDP destination port (default 1000)
  --pmd-cpus N        switch core (default 1)
  --gen-cpu N         generator core (default 0)
  --xvswitchd PATH    binary under test (default: next to xvs-perf)
  --xvs-arg ARG       extra xvswitchd argument (repeatable)
  --ovs-xdp-mode M    OVS options:xdp-mode (default native; falls back to best-effort)
  --json PATH         write the results here instead of perf/results/miss-<time>.json
  --keep-logs         keep the scratch directory (flows, logs)
  --wait-quiet SECS   before each run wait up to SECS for a quiet second (env WAIT_QUIET)
  --quiet-pct P       quiet = all CPUs together less than P % busy (default 25)
";

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
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
    packets: u32,
    pps: f64,
    tables: u8,
    decoys: usize,
    first_port: u16,
    pmd_cpu: usize,
    gen_cpu: usize,
    xvswitchd: PathBuf,
    xvs_args: Vec<String>,
    ovs_xdp_mode: String,
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
            packets: 4000,
            pps: 4000.0,
            tables: 10,
            decoys: 20,
            first_port: 1000,
            pmd_cpu: 1,
            gen_cpu: 0,
            xvswitchd: exe_dir.join("xvswitchd"),
            xvs_args: Vec::new(),
            ovs_xdp_mode: "native".into(),
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
                "--packets" => o.packets = num(&val()?, "--packets")? as u32,
                "--pps" => o.pps = num(&val()?, "--pps")?,
                "--tables" => o.tables = num(&val()?, "--tables")? as u8,
                "--decoys" => o.decoys = num(&val()?, "--decoys")? as usize,
                "--first-port" => o.first_port = num(&val()?, "--first-port")? as u16,
                "--pmd-cpus" | "--pmd-cpu" => o.pmd_cpu = num(&val()?, "--pmd-cpus")? as usize,
                "--gen-cpu" => o.gen_cpu = num(&val()?, "--gen-cpu")? as usize,
                "--xvswitchd" => o.xvswitchd = PathBuf::from(val()?),
                "--xvs-arg" => o.xvs_args.push(val()?),
                "--ovs-xdp-mode" => o.ovs_xdp_mode = val()?,
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
        o.runs = num(&runs, "--runs/RUNS")? as usize;
        if o.runs == 0 {
            return Err("--runs must be at least 1".into());
        }
        if o.packets == 0 || o.first_port as u32 + o.packets > 65536 {
            return Err("--packets: 1 .. 65536 - --first-port".into());
        }
        if !(2..=64).contains(&o.tables) {
            return Err("--tables must be between 2 and 64".into());
        }
        if !(10.0..=1e6).contains(&o.pps) {
            return Err("--pps must be between 10 and 1000000".into());
        }
        o.wait_quiet = num(&wait_quiet, "--wait-quiet/WAIT_QUIET")?;
        Ok(o)
    }
}

/// What the switch said about one pass.
#[derive(Clone, Debug, Default)]
struct Pass {
    sent: u64,
    send_s: f64,
    delivered: u64,
    received: u64,
    upcalls: u64,
    upcall_us: Option<f64>,
    failed_upcalls: Option<u64>,
    megaflow_hits: Option<u64>,
    /// PMD "avg processing cycles per packet", in ns.
    proc_ns: Option<f64>,
    preempted: Option<f64>,
    stats: String,
    perf: String,
}

struct Run {
    case: Case,
    round: usize,
    miss: Pass,
    hit: Pass,
    install_s: f64,
    trace: String,
    trace_ok: bool,
    upcall_show: Option<String>,
    notes: Vec<String>,
    others_pct: f64,
}

/// Everything one run starts, stopped in field order.
#[derive(Default)]
struct RunRes {
    xvs: Option<Xvs>,
    ovs: Option<Ovs>,
    sink: Option<Agent>,
}

impl Drop for RunRes {
    fn drop(&mut self) {
        if let Some(mut x) = self.xvs.take() {
            x.stop();
        }
        if let Some(mut o) = self.ovs.take() {
            o.stop();
        }
        if let Some(mut s) = self.sink.take() {
            s.stop();
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
        if !self.o.keep_logs {
            let _ = std::fs::remove_dir_all(&self.tmp);
        }
    }
}

/// "upcalls: N (avg X us each)" of xvswitchd's pmd/stats.
pub(crate) fn parse_xvs_upcalls(s: &str) -> Option<(u64, f64)> {
    let l = s
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with("upcalls:"))?;
    let rest = l.strip_prefix("upcalls:")?.trim();
    let n = rest.split_whitespace().next()?.parse().ok()?;
    let avg = rest
        .split("avg")
        .nth(1)?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    Some((n, avg))
}

/// "- Upcalls: N ( p %, X us/upcall)" of OVS's dpif-netdev/pmd-perf-show (summed / weighted
/// over PMDs).
pub(crate) fn parse_ovs_perf_upcalls(s: &str) -> Option<(u64, f64)> {
    let mut n_tot = 0u64;
    let mut us_w = 0.0;
    let mut found = false;
    for l in s.lines().map(str::trim) {
        let Some(rest) = l.strip_prefix("- Upcalls:") else {
            continue;
        };
        let n: u64 = rest.split_whitespace().next()?.parse().ok()?;
        let us: f64 = rest
            .split(',')
            .nth(1)
            .and_then(|x| x.split_whitespace().next())
            .and_then(|x| x.parse().ok())
            .unwrap_or(0.0);
        n_tot += n;
        us_w += us * n as f64;
        found = true;
    }
    found.then(|| (n_tot, if n_tot > 0 { us_w / n_tot as f64 } else { 0.0 }))
}

/// Sum of a "key: N" line over the PMD sections of a statistics text.
pub(crate) fn sum_key(s: &str, key: &str) -> Option<u64> {
    let mut tot = 0u64;
    let mut found = false;
    for l in s.lines().map(str::trim) {
        if let Some(v) = l.strip_prefix(key).and_then(|r| r.strip_prefix(':')) {
            if let Some(n) = v
                .split_whitespace()
                .next()
                .and_then(|x| x.parse::<u64>().ok())
            {
                tot += n;
                found = true;
            }
        }
    }
    found.then_some(tot)
}

/// Table visits in a trace: OVS numbers each rule it matched ` N. match, priority P`.
pub(crate) fn trace_tables(s: &str) -> usize {
    s.lines()
        .filter(|l| {
            let t = l.trim_start();
            let d: String = t.chars().take_while(|c| c.is_ascii_digit()).collect();
            !d.is_empty() && t[d.len()..].starts_with(". ")
        })
        .count()
}

impl Session {
    /// `ovs-ofctl -O OpenFlow15 [--bundle] CMD TARGET [FILE]`: flows go in as one bundle (plain
    /// add-flows is one flow_mod + barrier round trip per flow, slow on xvswitchd with big
    /// tables and not what this scenario measures).
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

    fn pmd_text(&self, case: Case, rr: &RunRes) -> Result<(String, String)> {
        match case {
            Case::Xvs => {
                let x = rr.xvs.as_ref().expect("xvs");
                Ok((x.call("pmd/stats", &[])?, String::new()))
            }
            Case::Ovs => {
                let o = rr.ovs.as_ref().expect("ovs");
                Ok((
                    o.appctl(&["dpif-netdev/pmd-stats-show"])?,
                    o.appctl(&["dpif-netdev/pmd-perf-show"])?,
                ))
            }
        }
    }

    fn clear(&self, case: Case, rr: &RunRes) -> Result<()> {
        match case {
            Case::Xvs => {
                rr.xvs.as_ref().expect("xvs").call("pmd/stats-clear", &[])?;
            }
            Case::Ovs => {
                rr.ovs
                    .as_ref()
                    .expect("ovs")
                    .appctl(&["dpif-netdev/pmd-stats-clear"])?;
            }
        }
        Ok(())
    }

    /// Sends the stream once and reads what the switch made of it.
    fn pass(&self, case: Case, rr: &mut RunRes, pmd_threads: &[(i32, i32)]) -> Result<Pass> {
        self.clear(case, rr)?;
        let sink0 = rr.sink.as_mut().expect("sink").stat_u64("pkts")?;
        let sched0 = util::sched_run_wait_ns(pmd_threads);
        let g = self
            .topo
            .gen
            .clone()
            .expect("veth topology has a generator");
        let mut cmd = util::ns_cmd(g.ns(), &self.exe);
        cmd.args(["agent", "gen", "--if", &g.name])
            .args(["--src", &self.topo.gen_mac, "--dst", &self.topo.sink_mac])
            .args(["--dports", &self.o.packets.to_string()])
            .args(["--dport-first", &self.o.first_port.to_string()])
            .args(["--pps", &self.o.pps.to_string()])
            .args(["--cpu", &self.o.gen_cpu.to_string()]);
        let out = util::run(&mut cmd)?;
        let done = out
            .lines()
            .find_map(|l| l.strip_prefix("DONE "))
            .ok_or_else(|| format!("generator: {}", out.trim()))?;
        let mut w = done.split_whitespace();
        let sent: u64 = w.next().and_then(|x| x.parse().ok()).unwrap_or(0);
        let send_s: f64 = w.next().and_then(|x| x.parse().ok()).unwrap_or(0.0);
        // wait until the switch has taken in everything (or stopped taking anything in)
        let mut last = (u64::MAX, Instant::now());
        let end = Instant::now() + Duration::from_secs(20);
        loop {
            let (t, _) = self.pmd_text(case, rr)?;
            let rx = sum_key(&t, "packets received").unwrap_or(0);
            if rx >= sent {
                break;
            }
            if rx != last.0 {
                last = (rx, Instant::now());
            } else if last.1.elapsed() > Duration::from_millis(1000) {
                break;
            }
            if Instant::now() > end {
                break;
            }
            util::sleep(Duration::from_millis(100))?;
        }
        util::sleep(Duration::from_millis(200))?;
        let (stats, perf) = self.pmd_text(case, rr)?;
        let sched1 = util::sched_run_wait_ns(pmd_threads);
        let sink1 = rr.sink.as_mut().expect("sink").stat_u64("pkts")?;
        let run_ns = sched1.0.saturating_sub(sched0.0);
        let wait_ns = sched1.1.saturating_sub(sched0.1);
        let secs = parse_pmd_stats(&stats);
        let pk: u64 = secs.iter().map(|s| s.packets).sum();
        let cpp = (pk > 0 && secs.iter().all(|s| s.avg_cycles_per_pkt.is_some())).then(|| {
            secs.iter()
                .map(|s| s.avg_cycles_per_pkt.unwrap_or(0.0) * s.packets as f64)
                .sum::<f64>()
                / pk as f64
        });
        let mut p = Pass {
            sent,
            send_s,
            delivered: sink1.saturating_sub(sink0),
            received: pk,
            proc_ns: cpp.map(|c| c / self.hz * 1e9),
            preempted: (!pmd_threads.is_empty() && run_ns + wait_ns > 0)
                .then(|| wait_ns as f64 / (run_ns + wait_ns) as f64),
            ..Default::default()
        };
        match case {
            Case::Xvs => {
                let (n, us) = parse_xvs_upcalls(&stats)
                    .ok_or_else(|| format!("no upcalls line in pmd/stats:\n{stats}"))?;
                p.upcalls = n;
                p.upcall_us = (n > 0).then_some(us);
                p.megaflow_hits = sum_key(&stats, "megaflow hits");
            }
            Case::Ovs => {
                let ok = sum_key(&stats, "miss with success upcall").unwrap_or(0);
                p.failed_upcalls = sum_key(&stats, "miss with failed upcall");
                p.megaflow_hits = sum_key(&stats, "megaflow hits");
                match parse_ovs_perf_upcalls(&perf) {
                    Some((n, us)) => {
                        p.upcalls = n;
                        p.upcall_us = (n > 0).then_some(us);
                    }
                    None => {
                        p.upcalls = ok + p.failed_upcalls.unwrap_or(0);
                    }
                }
            }
        }
        p.stats = stats;
        p.perf = perf;
        Ok(p)
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
        let target;
        let pmd_threads;
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
                pmd_threads = x
                    .pid()
                    .map(|p| util::threads_named(p, "pmd"))
                    .unwrap_or_default();
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
                        other_config: vec!["pmd-perf-metrics=true".into()],
                    },
                )?;
                notes.extend(ovs.notes.iter().cloned());
                target = ovs.mgmt();
                pmd_threads = ovs
                    .daemon_pid()
                    .map(|p| util::threads_named(p, "pmd"))
                    .unwrap_or_default();
                rr.ovs = Some(ovs);
            }
        }
        if pmd_threads.is_empty() {
            notes.push("PMD thread not found: no preemption figure".into());
        }
        // the pipeline, with the real ovs-ofctl
        let t = util::run_timed(
            &mut self.ofctl(&target, "add-flows", Some(&self.flow_file)),
            Duration::from_secs(300),
            None,
            &self.tmp.join(format!("{tag}.add-flows.stderr")),
        )?;
        if !t.success {
            bail!("ovs-ofctl add-flows {target}: {} {}", t.status, t.stderr);
        }
        let install_s = t.wall_s;
        let t = util::run_timed(
            &mut self.ofctl(&target, "dump-flows", None),
            Duration::from_secs(120),
            Some(" actions="),
            &self.tmp.join(format!("{tag}.dump-flows.stderr")),
        )?;
        if t.lines != self.n_flows as u64 {
            bail!(
                "{target}: {} flows installed, not {}",
                t.lines,
                self.n_flows
            );
        }
        // where the first frame goes, as each switch explains it
        // (OVS 3.1's ofproto/trace refuses tp_src/tp_dst here: "prerequisites not met")
        let l4 = match case {
            Case::Xvs => "tp",
            Case::Ovs => "udp",
        };
        let flow = format!(
            "in_port=1,udp,dl_src={},dl_dst={},nw_src=198.18.0.1,nw_dst=198.19.0.1,nw_ttl=64,{l4}_src=9,{l4}_dst={}",
            self.topo.gen_mac, self.topo.sink_mac, o.first_port
        );
        let trace = match case {
            Case::Xvs => rr
                .xvs
                .as_ref()
                .expect("xvs")
                .call("ofproto/trace", &[xvs::BRIDGE, &flow]),
            Case::Ovs => {
                rr.ovs
                    .as_ref()
                    .expect("ovs")
                    .appctl(&["ofproto/trace", ovs::BRIDGE, &flow])
            }
        }
        .unwrap_or_else(|e| format!("trace failed: {e}"));
        let dp_actions = trace
            .lines()
            .find(|l| l.starts_with("Datapath actions:"))
            .unwrap_or("")
            .to_string();
        let trace_ok = !dp_actions.is_empty() && !dp_actions.contains("drop");
        if !trace_ok {
            notes.push(format!("ofproto/trace: {dp_actions:?}"));
        }
        let procs0 = util::ProcSnap::take();
        let miss = self.pass(case, &mut rr, &pmd_threads)?;
        // OVS's view of the datapath flows it now has (flow count, limit, dump duration)
        let upcall_show = rr
            .ovs
            .as_ref()
            .and_then(|ov| ov.appctl(&["upcall/show"]).ok());
        let hit = self.pass(case, &mut rr, &pmd_threads)?;
        let procs1 = util::ProcSnap::take();
        let mut ours: Vec<i32> = vec![std::process::id() as i32];
        ours.extend(rr.sink.as_ref().map(|a| a.pid()));
        ours.extend(rr.xvs.as_ref().and_then(|x| x.pid()));
        ours.extend(rr.ovs.as_ref().and_then(|x| x.daemon_pid()));
        let others = procs0.busy_since(&procs1, 3.0, &ours);
        if let Some(x) = rr.xvs.as_mut() {
            if !x.alive() {
                bail!("xvswitchd exited during the run");
            }
        }
        if miss.received < miss.sent {
            notes.push(format!(
                "the switch received {} of {} frames in the miss pass (the rest dropped before it: rx ring full?)",
                miss.received, miss.sent
            ));
        }
        if miss.delivered < miss.received {
            notes.push(format!(
                "{} of {} frames delivered in the miss pass",
                miss.delivered, miss.received
            ));
        }
        if hit.upcalls > 0 {
            notes.push(format!(
                "{} upcalls in the second pass (all {} frames should have hit the cache)",
                hit.upcalls, hit.sent
            ));
        }
        Ok(Run {
            case,
            round,
            miss,
            hit,
            install_s,
            trace: format!("{flow}\n{trace}"),
            trace_ok,
            upcall_show,
            notes,
            others_pct: others.iter().map(|l| l.cpu_pct).fold(0.0, |a, b| a + b),
        })
    }
}

fn summ(runs: &[Run], case: Case, f: impl Fn(&Run) -> Option<f64>) -> Option<(f64, f64, f64)> {
    util::summary(
        &runs
            .iter()
            .filter(|r| r.case == case)
            .filter_map(f)
            .collect::<Vec<_>>(),
    )
}

fn pass_json(p: &Pass) -> Value {
    json!({
        "sent": p.sent,
        "send_s": p.send_s,
        "received": p.received,
        "delivered": p.delivered,
        "upcalls": p.upcalls,
        "upcall_us": p.upcall_us,
        "failed_upcalls": p.failed_upcalls,
        "megaflow_hits": p.megaflow_hits,
        "processing_ns_per_pkt": p.proc_ns,
        "pmd_preempted_fraction": p.preempted,
        "pmd_stats": p.stats,
        "pmd_perf_show": if p.perf.is_empty() { Value::Null } else { json!(p.perf) },
    })
}

pub fn main(args: &[String]) -> i32 {
    let o = match util::parse_or_usage("miss", USAGE, Opts::parse(args)) {
        Ok(o) => o,
        Err(code) => return code,
    };
    util::run_scenario("miss", || run(o))
}

fn run(o: Opts) -> Result<i32> {
    if !util::is_root() {
        bail!("needs root (namespaces, XDP, AF_XDP)");
    }
    let allowed = util::allowed_cpus();
    for c in [o.pmd_cpu, o.gen_cpu] {
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
    let topo = Topo::veth();
    let text = flows::miss_pipeline(
        o.first_port as u32..o.first_port as u32 + o.packets,
        o.tables,
        o.decoys,
        &topo.gen_mac,
        &topo.sink_mac,
    );
    let n_flows = text.lines().count();
    let flow_file = tmp.join("miss-flows.txt");
    std::fs::write(&flow_file, &text).map_err(|e| format!("{}: {e}", flow_file.display()))?;
    let s = Session {
        o: o.clone(),
        exe,
        tmp,
        topo,
        hz,
        flow_file,
        n_flows,
        _lock: lock,
    };
    Topo::create_namespaces()?;
    let (started, stamp) = util::utc_now();
    let load_start = util::loadavg();
    say!(
        "miss: {} distinct UDP ports per pass at {} frames/s, {}-table chain ({n_flows} flows), switch CPU {}, generator CPU {}; TSC {:.3} GHz; load {load_start}",
        o.packets,
        o.pps,
        o.tables,
        o.pmd_cpu,
        o.gen_cpu,
        hz / 1e9
    );
    let util::Rounds {
        runs,
        failed,
        interrupted,
        quiet_log,
    } = util::rounds(
        o.runs,
        &o.cases,
        |c| c.name(),
        o.wait_quiet,
        o.quiet_pct,
        |c, round| s.run_case(c, round),
        |round, c, r| {
            say!(
                "  round {round} {:<4} miss pass: sent {} received {} delivered {} upcalls {} ({}) {}; hit pass: upcalls {}, {}; preempted {}; other load {:.0}%",
                c.name(),
                r.miss.sent,
                r.miss.received,
                r.miss.delivered,
                r.miss.upcalls,
                r.miss
                    .upcall_us
                    .map(|u| format!("{u:.2} us each"))
                    .unwrap_or_else(|| "-".into()),
                r.miss
                    .proc_ns
                    .map(|n| format!("{n:.0} ns/pkt"))
                    .unwrap_or_default(),
                r.hit.upcalls,
                r.hit
                    .proc_ns
                    .map(|n| format!("{n:.0} ns/pkt"))
                    .unwrap_or_default(),
                r.miss
                    .preempted
                    .map(|p| format!("{:.0}%", p * 100.0))
                    .unwrap_or_else(|| "-".into()),
                r.others_pct
            );
            for n in &r.notes {
                say!("      note: {n}");
            }
        },
    );
    let logs = o.keep_logs.then_some(s.tmp.as_path());
    if let Some(exit) = util::none_completed(runs.len(), interrupted, logs) {
        drop(s);
        return exit;
    }

    // ---- table
    let t = o.tables as f64;
    say!();
    say!(
        "{:<40} {:>24} {:>24}",
        "median (min..max) over rounds",
        "xvs",
        "ovs"
    );
    type Metric = (
        &'static str,
        &'static str,
        usize,
        fn(&Run, f64) -> Option<f64>,
    );
    let metrics: [Metric; 7] = [
        ("upcalls (miss pass)", "upcalls", 0, |r, _| {
            Some(r.miss.upcalls as f64)
        }),
        ("us per upcall", "upcall_us", 2, |r, _| r.miss.upcall_us),
        (
            "ns per table (upcall / tables)",
            "upcall_ns_per_table",
            0,
            |r, t| r.miss.upcall_us.map(|u| u * 1000.0 / t),
        ),
        (
            "PMD ns/pkt, miss pass",
            "miss_pass_ns_per_pkt",
            0,
            |r, _| r.miss.proc_ns,
        ),
        ("PMD ns/pkt, hit pass", "hit_pass_ns_per_pkt", 0, |r, _| {
            r.hit.proc_ns
        }),
        ("miss - hit ns/pkt", "miss_minus_hit_ns", 0, |r, _| {
            Some(r.miss.proc_ns? - r.hit.proc_ns?)
        }),
        (
            "upcalls (hit pass, expect 0)",
            "hit_pass_upcalls",
            0,
            |r, _| Some(r.hit.upcalls as f64),
        ),
    ];
    let mut summary = serde_json::Map::new();
    let mut ratios = serde_json::Map::new();
    for (label, key, prec, f) in metrics {
        let xs = summ(&runs, Case::Xvs, |r| f(r, t));
        let os = summ(&runs, Case::Ovs, |r| f(r, t));
        say!(
            "{:<40} {:>24} {:>24}",
            label,
            fmt3(xs, prec),
            fmt3(os, prec)
        );
        summary.insert(key.into(), json!({"xvs": tri(xs), "ovs": tri(os)}));
        if let (Some(a), Some(b)) = (xs, os) {
            if b.0 > 0.0 && key != "upcalls" && key != "hit_pass_upcalls" {
                let mut per = Vec::new();
                for ra in runs.iter().filter(|r| r.case == Case::Xvs) {
                    if let Some(rb) = runs
                        .iter()
                        .find(|r| r.case == Case::Ovs && r.round == ra.round)
                    {
                        if let (Some(x), Some(y)) = (f(ra, t), f(rb, t)) {
                            if y > 0.0 {
                                per.push(x / y);
                            }
                        }
                    }
                }
                ratios.insert(
                    key.into(),
                    json!({"of_medians": a.0 / b.0, "per_round": tri(util::summary(&per))}),
                );
            }
        }
    }
    if let Some(r) = ratios.get("upcall_us") {
        say!(
            "xvs/ovs upcall cost: {:.2} (per round {})",
            r["of_medians"].as_f64().unwrap_or(f64::NAN),
            match (
                r["per_round"]["min"].as_f64(),
                r["per_round"]["max"].as_f64()
            ) {
                (Some(a), Some(b)) => format!("{a:.2}..{b:.2}"),
                _ => "-".into(),
            }
        );
    }
    let pre = runs
        .iter()
        .filter_map(|r| r.miss.preempted)
        .fold(0.0, f64::max);
    let max_other = runs.iter().map(|r| r.others_pct).fold(0.0, f64::max);
    let load_end = util::loadavg();
    let mut warnings = Vec::new();
    if pre > 0.05 {
        warnings.push(format!(
            "the switch core was taken by other tasks (up to {:.0}% of a miss pass): upcall times include that",
            pre * 100.0
        ));
    }
    say!(
        "other CPU load during the passes: up to {max_other:.0}% of a CPU; PMD preempted up to {:.0}%; loadavg {load_start} -> {load_end}",
        pre * 100.0
    );
    for w in &warnings {
        say!("warning: {w}");
    }

    let doc = json!({
        "scenario": "miss",
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
            "packets_per_pass": o.packets, "pps": o.pps, "tables": o.tables,
            "decoys_per_shape_per_table": o.decoys, "first_port": o.first_port,
            "flows": n_flows, "runs": o.runs,
            "cases": o.cases.iter().map(|c| c.name()).collect::<Vec<_>>(),
            "switch_cpu": o.pmd_cpu, "gen_cpu": o.gen_cpu,
            "xvswitchd": o.xvswitchd, "xvs_args": o.xvs_args, "ovs_xdp_mode": o.ovs_xdp_mode,
            "xvs_method": "pmd/stats 'upcalls: N (avg X us each)': TSC cycles of translation + megaflow insert per upcall",
            "ovs_method": "dpif-netdev/pmd-perf-show '- Upcalls: N (p %, X us/upcall)' with other_config:pmd-perf-metrics=true: cycles of handle_packet_upcall (xlate, ukey + megaflow install, executing the packet); 'miss with success/failed upcall' from pmd-stats-show",
            "common_method": "PMD 'avg processing cycles per packet' of the miss pass minus the hit pass",
        },
        "summary": summary,
        "ratios_xvs_over_ovs": ratios,
        "runs": runs.iter().map(|r| json!({
            "case": r.case.name(),
            "round": r.round,
            "install_s": r.install_s,
            "miss": pass_json(&r.miss),
            "hit": pass_json(&r.hit),
            "trace": r.trace,
            "trace_tables": trace_tables(&r.trace),
            "trace_ok": r.trace_ok,
            "ovs_upcall_show_after_miss_pass": r.upcall_show,
            "others_cpu_pct": r.others_pct,
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
    if !runs.is_empty() {
        util::write_results("miss", &stamp, o.json.as_deref(), &doc);
    } else {
        say!("no run completed: no results written");
    }
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
    fn parses_upcall_lines() {
        let x = "pmd thread numa_id 0 core_id 1 (idle policy Busy):\n  packets received: 4000\n  megaflow hits: 0\n  upcalls: 4000 (avg 12.34 us each)\n";
        assert_eq!(parse_xvs_upcalls(x), Some((4000, 12.34)));
        assert_eq!(sum_key(x, "packets received"), Some(4000));
        let o = "  - EMC hits:                 0  (  0.0 %)\n  - Upcalls:             4000  (100.0 %,     31.2 us/upcall)\n  - Lost upcalls:           0  (  0.0 %)\n";
        assert_eq!(parse_ovs_perf_upcalls(o), Some((4000, 31.2)));
        assert_eq!(parse_ovs_perf_upcalls("nothing"), None);
        let s = "pmd thread numa_id 0 core_id 1:\n  miss with success upcall: 3999\n  miss with failed upcall: 1\n";
        assert_eq!(sum_key(s, "miss with success upcall"), Some(3999));
        assert_eq!(sum_key(s, "miss with failed upcall"), Some(1));
    }

    #[test]
    fn counts_trace_tables() {
        let t = "Flow: x\n\nbridge(\"xpbr\")\n--------------\n 0. udp,in_port=1,tp_dst=1000, priority 100\n    resubmit(,1)\n 1. reg14=0x1, priority 50\n    resubmit(,2)\n10. x\n";
        assert_eq!(trace_tables(t), 3);
    }

    #[test]
    fn options_parse() {
        let o = Opts::parse(&["--packets".into(), "100".into()]).unwrap();
        assert_eq!(o.packets, 100);
        assert_eq!(o.tables, 10);
        assert!(Opts::parse(&["--tables".into(), "1".into()]).is_err());
        assert!(Opts::parse(&["--packets".into(), "70000".into()]).is_err());
    }
}
