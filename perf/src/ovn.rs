//! Scenario `ovn`: flow caching at OVN scale. An OVN-shaped pipeline of ~25,000 flows over 44
//! tables (`flows::OvnPipeline`: logical switches replicated over OVN 23.03's table layout) is
//! installed with the real `ovs-ofctl --bundle add-flows` into xvswitchd and into OVS 3.1 afxdp
//! (same veth topology as `p2p`); 64-byte UDP frames from the generator cross it port 1 -> port 2
//! through ~45 tables (port security, a stateless address-set ACL with one exact `nw_src` flow
//! per address, L2 lookup, a conjunctive egress ACL, loopback check, output), never a `ct()`.
//!
//! Per run (one fresh daemon per switch per round, rounds interleave the switches):
//! 1. RSS of the daemon before and after the install; `dump-flows` must list every flow.
//! 2. For each `--conc` (1 and 1000 traffic flows by default: distinct source addresses and UDP
//!    source ports, round robin packet by packet, so each is its own megaflow): warm up, then a
//!    steady window measuring the cache-hit cost (the PMD's "avg processing cycles per packet",
//!    as `p2p`), the delivered rate, the megaflow and mask counts.
//! 3. A miss pass (as `miss`): `--miss-packets` new flows, each sent once, paced: µs per upcall
//!    from xvswitchd's `pmd/stats` and OVS's `pmd-perf-show` (pmd-perf-metrics switched on for
//!    that pass only, so it does not tax OVS's hit windows).
//! 4. RSS after the traffic. With `--profile`, `perf record` of the switch core during an extra
//!    window of the largest `--conc`, not counted in the figures.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::agent::Agent;
use crate::flows::{OvnFlows, OvnPipeline};
use crate::miss::{parse_ovs_perf_upcalls, parse_xvs_upcalls, sum_key, trace_tables};
use crate::ovs::{Ovs, OvsOpts};
use crate::p2p::{self, parse_pmd_stats, Topo};
use crate::util::{self, env_or, fmt3, tri, Error, Result};
use crate::xvs::{Xvs, XvsOpts};
use crate::{bail, ovs, say, xvs};

pub const USAGE: &str = "\
usage: xvs-perf ovn [OPTIONS]

An OVN-shaped pipeline (~25,000 flows, 44 tables; ovs-ofctl --bundle add-flows) in xvswitchd and
in OVS 3.1 afxdp, p2p veth topology, rounds interleaved: cache-hit switch-core ns/packet and
delivered rate with 1 and with 1000 concurrent traffic flows, megaflows and masks, the first
packet's upcall cost, and the daemons' resident memory. JSON goes to
perf/results/ovn-<UTC time>.json. Needs root.

  --cases LIST        xvs,ovs (default both; env CASES)
  --runs N            rounds (default 3; env RUNS)
  --window S          measured seconds per traffic window (default 4)
  --warmup S          seconds of traffic before each window (default 2)
  --conc LIST         concurrent traffic flows per window (default 1,1000)
  --dps N             logical switches besides the test one (default 80)
  --ports N           logical ports per logical switch (default 16)
  --miss-packets N    new flows in the miss pass (default 1000)
  --miss-pps R        their rate (default 2000 frames/s)
  --pmd-cpus N        switch core (default 1)
  --gen-cpu N         generator core (default 0)
  --sink-cpu N        sink core (default 0)
  --profile           perf record the PMD thread during an extra window (not measured)
  --xvswitchd PATH    binary under test (default: next to xvs-perf)
  --xvs-arg ARG       extra xvswitchd argument (repeatable)
  --ovs-xdp-mode M    OVS options:xdp-mode (default native; falls back to best-effort)
  --write-flows F     write the flow file to F and exit
  --json PATH         write the results here instead of perf/results/ovn-<time>.json
  --keep-logs         keep the scratch directory (flows, logs)
  --wait-quiet SECS   before each run wait up to SECS for a quiet second (env WAIT_QUIET)
  --quiet-pct P       quiet = all CPUs together less than P % busy (default 25)
";

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
    conc: Vec<u32>,
    dps: usize,
    ports: usize,
    miss_packets: u32,
    miss_pps: f64,
    pmd_cpu: usize,
    gen_cpu: usize,
    sink_cpu: usize,
    profile: bool,
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
        let mut conc = "1,1000".to_string();
        let mut o = Opts {
            cases: Vec::new(),
            runs: 3,
            window: 4.0,
            warmup: 2.0,
            conc: Vec::new(),
            dps: 80,
            ports: 16,
            miss_packets: 1000,
            miss_pps: 2000.0,
            pmd_cpu: 1,
            gen_cpu: 0,
            sink_cpu: 0,
            profile: false,
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
                "--conc" => conc = val()?,
                "--dps" => o.dps = num(&val()?, "--dps")? as usize,
                "--ports" => o.ports = num(&val()?, "--ports")? as usize,
                "--miss-packets" => o.miss_packets = num(&val()?, "--miss-packets")? as u32,
                "--miss-pps" => o.miss_pps = num(&val()?, "--miss-pps")?,
                "--pmd-cpus" | "--pmd-cpu" => o.pmd_cpu = num(&val()?, "--pmd-cpus")? as usize,
                "--gen-cpu" => o.gen_cpu = num(&val()?, "--gen-cpu")? as usize,
                "--sink-cpu" => o.sink_cpu = num(&val()?, "--sink-cpu")? as usize,
                "--profile" => o.profile = true,
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
        for c in conc.split(',').map(str::trim).filter(|c| !c.is_empty()) {
            let n = num(c, "--conc")? as u32;
            if n == 0 || !o.conc.contains(&n) {
                o.conc.push(n);
            }
        }
        if o.conc.is_empty() || o.conc.contains(&0) {
            return Err("--conc: a list of flow counts, each at least 1".into());
        }
        let max_conc = o.conc.iter().copied().max().unwrap_or(1);
        if max_conc + o.miss_packets > crate::agent::MAX_FLOWS {
            return Err(format!(
                "--conc + --miss-packets: at most {} flows",
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
        if o.ports < 2 || o.ports > 250 || o.dps > 4000 {
            return Err("--ports 2..250, --dps at most 4000".into());
        }
        if !(10.0..=1e6).contains(&o.miss_pps) {
            return Err("--miss-pps must be between 10 and 1000000".into());
        }
        o.wait_quiet = num(&wait_quiet, "--wait-quiet/WAIT_QUIET")?;
        Ok(o)
    }

    /// Addresses in the test ACL: the traffic flows, then the miss pass's new ones.
    fn addrs(&self) -> usize {
        (self.conc.iter().copied().max().unwrap_or(1) + self.miss_packets) as usize
    }

    fn pipeline(&self, topo: &Topo) -> OvnPipeline {
        OvnPipeline {
            dps: self.dps,
            ports: self.ports,
            addrs: self.addrs(),
            gen_mac: topo.gen_mac.clone(),
            sink_mac: topo.sink_mac.clone(),
        }
    }
}

/// One steady traffic window.
#[derive(Clone, Debug, Default)]
struct Window {
    conc: u32,
    delivered_pps: f64,
    offered_pps: Option<f64>,
    /// PMD "avg processing cycles per packet", in ns.
    ns_per_pkt: Option<f64>,
    received: u64,
    preempted: Option<f64>,
    megaflows: Option<u64>,
    masks: Option<u64>,
    emc_hits: Option<u64>,
    megaflow_hits: Option<u64>,
    upcalls: Option<u64>,
    /// The same method for both switches, robust to preemption: the PMD's on-CPU time
    /// (schedstat) x its busy share (busy / (busy + idle) cycles) / packets.
    oncpu_ns: Option<f64>,
    /// xvswitchd's split of the per-packet cost: (rx + processing, tx) ns.
    split_ns: Option<(f64, f64)>,
    stats: String,
    others_pct: f64,
}

/// The miss pass.
#[derive(Clone, Debug, Default)]
struct Miss {
    sent: u64,
    received: u64,
    delivered: u64,
    upcalls: u64,
    upcall_us: Option<f64>,
    proc_ns: Option<f64>,
    preempted: Option<f64>,
    stats: String,
    perf: String,
}

struct Run {
    case: Case,
    round: usize,
    install_s: f64,
    flows: usize,
    rss_start_kib: u64,
    rss_loaded_kib: u64,
    rss_after_kib: u64,
    hwm_kib: u64,
    windows: Vec<Window>,
    miss: Miss,
    trace: String,
    trace_tables: usize,
    profile: Option<String>,
    dp_flows_sample: String,
    notes: Vec<String>,
}

impl Run {
    fn window(&self, conc: u32) -> Option<&Window> {
        self.windows.iter().find(|w| w.conc == conc)
    }
}

/// Everything one run starts, stopped in field order.
#[derive(Default)]
struct RunRes {
    gen: Option<Agent>,
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
    flows: OvnFlows,
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

/// xvswitchd's "megaflows: N (masks: M)".
pub(crate) fn parse_xvs_megaflows(s: &str) -> Option<(u64, u64)> {
    let l = s
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with("megaflows:"))?;
    let n = l["megaflows:".len()..]
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    let m = l
        .split("masks:")
        .nth(1)?
        .trim()
        .trim_end_matches(')')
        .trim()
        .parse()
        .ok()?;
    Some((n, m))
}

/// "(... ns; rx+processing X ns, tx Y ns)" of xvswitchd's "avg processing cycles per packet".
pub(crate) fn parse_xvs_split(s: &str) -> Option<(f64, f64)> {
    let l = s
        .lines()
        .find(|l| l.trim().starts_with("avg processing cycles per packet"))?;
    let num_after =
        |k: &str| -> Option<f64> { l.split(k).nth(1)?.split_whitespace().next()?.parse().ok() };
    Some((num_after("rx+processing")?, num_after("tx")?))
}

/// Distinct masks among datapath flow lines (`ufid:...  recirc_id(0),in_port(2),...`): the
/// match with every value dropped and only the masks kept.
pub(crate) fn count_masks(dump: &str) -> usize {
    let mut set = std::collections::HashSet::new();
    for l in dump.lines().filter(|l| l.contains("actions:")) {
        let m = l.split(" packets:").next().unwrap_or(l);
        let m = m.split(", packets:").next().unwrap_or(m);
        // keep field names and the part after '/' of each value (the mask)
        let key: String = m
            .split([',', '(', ')'])
            .map(|f| match f.split_once('=') {
                Some((k, v)) => format!("{k}={}", v.split_once('/').map(|x| x.1).unwrap_or("*")),
                None => f.trim().to_string(),
            })
            .filter(|f| !f.starts_with("ufid:"))
            .collect::<Vec<_>>()
            .join(",");
        set.insert(key);
    }
    set.len()
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

    fn pmd_text(&self, case: Case, rr: &RunRes, perf: bool) -> Result<(String, String)> {
        match case {
            Case::Xvs => {
                let x = rr.xvs.as_ref().expect("xvs");
                Ok((x.call("pmd/stats", &[])?, String::new()))
            }
            Case::Ovs => {
                let o = rr.ovs.as_ref().expect("ovs");
                let p = if perf {
                    o.appctl(&["dpif-netdev/pmd-perf-show"])?
                } else {
                    String::new()
                };
                Ok((o.appctl(&["dpif-netdev/pmd-stats-show"])?, p))
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

    /// The datapath flows the switch holds now (xvswitchd `dpctl/dump-flows`, OVS
    /// `dpctl/dump-flows`).
    fn dp_flows(&self, case: Case, rr: &RunRes) -> Result<String> {
        match case {
            Case::Xvs => rr.xvs.as_ref().expect("xvs").call("dpctl/dump-flows", &[]),
            Case::Ovs => rr
                .ovs
                .as_ref()
                .expect("ovs")
                .appctl(&["dpctl/dump-flows", "-m"]),
        }
    }

    fn start_gen(&self, rr: &mut RunRes, conc: u32, tag: &str) -> Result<()> {
        let g = self
            .topo
            .gen
            .clone()
            .expect("veth topology has a generator");
        let a = Agent::start(
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
                conc.to_string(),
            ],
            self.tmp.join(format!("{tag}.gen{conc}.log")),
        )?;
        rr.gen = Some(a);
        Ok(())
    }

    /// Traffic over `conc` flows: warm-up, then one measured window.
    fn window(
        &self,
        case: Case,
        rr: &mut RunRes,
        conc: u32,
        pmd_threads: &[(i32, i32)],
        tag: &str,
    ) -> Result<Window> {
        self.start_gen(rr, conc, tag)?;
        util::sleep(Duration::from_secs_f64(self.o.warmup))?;
        let procs0 = util::ProcSnap::take();
        self.clear(case, rr)?;
        let sched0 = util::sched_run_wait_ns(pmd_threads);
        let sink0 = rr.sink.as_mut().expect("sink").stat_u64("pkts")?;
        let t0 = Instant::now();
        let gen0 = rr.gen.as_mut().expect("gen").stat_u64("pkts")?;
        util::sleep(Duration::from_secs_f64(self.o.window))?;
        let (stats, _) = self.pmd_text(case, rr, false)?;
        let sink1 = rr.sink.as_mut().expect("sink").stat_u64("pkts")?;
        let dt = t0.elapsed().as_secs_f64();
        let gen1 = rr.gen.as_mut().expect("gen").stat_u64("pkts")?;
        let sched1 = util::sched_run_wait_ns(pmd_threads);
        let procs1 = util::ProcSnap::take();
        // the cache as the traffic left it, before the generator stops
        let dump = self.dp_flows(case, rr).unwrap_or_default();
        if let Some(mut g) = rr.gen.take() {
            g.stop();
        }
        let secs = parse_pmd_stats(&stats);
        let pk: u64 = secs.iter().map(|s| s.packets).sum();
        let cpp = (pk > 0 && secs.iter().all(|s| s.avg_cycles_per_pkt.is_some())).then(|| {
            secs.iter()
                .map(|s| s.avg_cycles_per_pkt.unwrap_or(0.0) * s.packets as f64)
                .sum::<f64>()
                / pk as f64
        });
        let run_ns = sched1.0.saturating_sub(sched0.0);
        let wait_ns = sched1.1.saturating_sub(sched0.1);
        let busy: u64 = secs.iter().map(|s| s.busy_cycles).sum();
        let idle: u64 = secs.iter().map(|s| s.idle_cycles).sum();
        let mut w = Window {
            oncpu_ns: (pk > 0 && busy + idle > 0 && run_ns > 0)
                .then(|| run_ns as f64 * busy as f64 / (busy + idle) as f64 / pk as f64),
            conc,
            delivered_pps: sink1.saturating_sub(sink0) as f64 / dt,
            offered_pps: Some(gen1.saturating_sub(gen0) as f64 / dt),
            ns_per_pkt: cpp.map(|c| c / self.hz * 1e9),
            received: pk,
            preempted: (!pmd_threads.is_empty() && run_ns + wait_ns > 0)
                .then(|| wait_ns as f64 / (run_ns + wait_ns) as f64),
            megaflow_hits: sum_key(&stats, "megaflow hits"),
            ..Default::default()
        };
        match case {
            Case::Xvs => {
                if let Some((n, m)) = parse_xvs_megaflows(&stats) {
                    w.megaflows = Some(n);
                    w.masks = Some(m);
                }
                w.upcalls = parse_xvs_upcalls(&stats).map(|u| u.0);
                w.split_ns = parse_xvs_split(&stats);
            }
            Case::Ovs => {
                w.emc_hits = sum_key(&stats, "emc hits");
                w.upcalls = sum_key(&stats, "miss with success upcall");
                let n = dump.lines().filter(|l| l.contains("actions:")).count();
                w.megaflows = Some(n as u64);
                w.masks = Some(count_masks(&dump) as u64);
            }
        }
        let mut ours: Vec<i32> = vec![std::process::id() as i32];
        ours.extend(rr.sink.as_ref().map(|a| a.pid()));
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
        if sink1 <= sink0 + 1000 {
            bail!(
                "{} flows: only {} frames reached the sink in {dt:.1} s (the switch received {pk}): the pipeline does not forward port 1 -> port 2",
                conc,
                sink1.saturating_sub(sink0)
            );
        }
        Ok(w)
    }

    /// `perf record` of the PMD thread(s) during an extra window of `conc` flows: the share of
    /// each (dso, symbol), kernel included (the veth TX runs in the PMD's syscalls).
    fn profile(
        &self,
        rr: &mut RunRes,
        conc: u32,
        pmd_threads: &[(i32, i32)],
        tag: &str,
    ) -> Result<String> {
        if pmd_threads.is_empty() {
            bail!("no PMD thread to profile");
        }
        let tids: Vec<String> = pmd_threads.iter().map(|t| t.1.to_string()).collect();
        self.start_gen(rr, conc, tag)?;
        util::sleep(Duration::from_secs_f64(self.o.warmup))?;
        let data = self.tmp.join(format!("{tag}.perf.data"));
        let rec = util::run(
            Command::new("perf")
                .args(["record", "-q", "-t", &tids.join(","), "-o"])
                .arg(&data)
                .args(["--", "sleep", "3"]),
        );
        if let Some(mut g) = rr.gen.take() {
            g.stop();
        }
        rec?;
        let rep = util::run(
            Command::new("perf")
                .args([
                    "report",
                    "--stdio",
                    "--sort",
                    "dso,sym",
                    "--percent-limit",
                    "0.5",
                    "-i",
                ])
                .arg(&data),
        )?;
        Ok(rep
            .lines()
            .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
            .take(50)
            .collect::<Vec<_>>()
            .join("\n"))
    }

    /// First packets of `--miss-packets` new flows, paced; what each upcall cost.
    fn miss(&self, case: Case, rr: &mut RunRes, pmd_threads: &[(i32, i32)]) -> Result<Miss> {
        let o = &self.o;
        if let Some(ov) = rr.ovs.as_ref() {
            ov.vsctl(&[
                "set",
                "Open_vSwitch",
                ".",
                "other_config:pmd-perf-metrics=true",
            ])?;
        }
        self.clear(case, rr)?;
        let sink0 = rr.sink.as_mut().expect("sink").stat_u64("pkts")?;
        let sched0 = util::sched_run_wait_ns(pmd_threads);
        let g = self
            .topo
            .gen
            .clone()
            .expect("veth topology has a generator");
        let first = o.conc.iter().copied().max().unwrap_or(1);
        let mut cmd = util::ns_cmd(g.ns(), &self.exe);
        cmd.args(["agent", "gen", "--if", &g.name])
            .args(["--src", &self.topo.gen_mac, "--dst", &self.topo.sink_mac])
            .args(["--flows", &o.miss_packets.to_string()])
            .args(["--flow-first", &first.to_string()])
            .args(["--pps", &o.miss_pps.to_string()])
            .args(["--cpu", &o.gen_cpu.to_string()]);
        let out = util::run(&mut cmd)?;
        let done = out
            .lines()
            .find_map(|l| l.strip_prefix("DONE "))
            .ok_or_else(|| format!("generator: {}", out.trim()))?;
        let sent: u64 = done
            .split_whitespace()
            .next()
            .and_then(|x| x.parse().ok())
            .unwrap_or(0);
        let mut last = (u64::MAX, Instant::now());
        let end = Instant::now() + Duration::from_secs(20);
        loop {
            let (t, _) = self.pmd_text(case, rr, false)?;
            let rx = sum_key(&t, "packets received").unwrap_or(0);
            if rx >= sent || Instant::now() > end {
                break;
            }
            if rx != last.0 {
                last = (rx, Instant::now());
            } else if last.1.elapsed() > Duration::from_millis(1000) {
                break;
            }
            util::sleep(Duration::from_millis(100))?;
        }
        util::sleep(Duration::from_millis(200))?;
        let (stats, perf) = self.pmd_text(case, rr, true)?;
        let sched1 = util::sched_run_wait_ns(pmd_threads);
        let sink1 = rr.sink.as_mut().expect("sink").stat_u64("pkts")?;
        if let Some(ov) = rr.ovs.as_ref() {
            ov.vsctl(&[
                "set",
                "Open_vSwitch",
                ".",
                "other_config:pmd-perf-metrics=false",
            ])?;
        }
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
        let mut m = Miss {
            sent,
            received: pk,
            delivered: sink1.saturating_sub(sink0),
            proc_ns: cpp.map(|c| c / self.hz * 1e9),
            preempted: (!pmd_threads.is_empty() && run_ns + wait_ns > 0)
                .then(|| wait_ns as f64 / (run_ns + wait_ns) as f64),
            ..Default::default()
        };
        match case {
            Case::Xvs => {
                let (n, us) = parse_xvs_upcalls(&stats)
                    .ok_or_else(|| format!("no upcalls line in pmd/stats:\n{stats}"))?;
                m.upcalls = n;
                m.upcall_us = (n > 0).then_some(us);
            }
            Case::Ovs => match parse_ovs_perf_upcalls(&perf) {
                Some((n, us)) => {
                    m.upcalls = n;
                    m.upcall_us = (n > 0).then_some(us);
                }
                None => {
                    m.upcalls = sum_key(&stats, "miss with success upcall").unwrap_or(0)
                        + sum_key(&stats, "miss with failed upcall").unwrap_or(0);
                }
            },
        }
        m.stats = stats;
        m.perf = perf;
        Ok(m)
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
        let target;
        let pid;
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
                pid = util::read_pidfile(&rundir.join("xvswitchd.pid"))
                    .or(x.pid())
                    .ok_or("xvswitchd pid unknown")?;
                pmd_threads = util::threads_named(pid, "pmd");
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
                pmd_threads = util::threads_named(pid, "pmd");
                rr.ovs = Some(ovs);
            }
        }
        if pmd_threads.is_empty() {
            notes.push("PMD thread not found: no preemption figure".into());
        }
        let rss = |what: &str| -> Result<(u64, u64)> {
            util::rss_kib(pid).ok_or_else(|| Error::Msg(format!("no RSS of pid {pid} ({what})")))
        };
        let rss_start = rss("start")?.0;
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
        if t.lines != self.flows.n as u64 {
            bail!(
                "{target}: dump-flows lists {} flows, not the {} installed",
                t.lines,
                self.flows.n
            );
        }
        util::sleep(Duration::from_millis(500))?;
        let rss_loaded = rss("loaded")?.0;
        // the path of flow 0, as each switch explains it
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
        let trace_tables = trace_tables(&trace);
        let dp_actions = trace
            .lines()
            .find(|l| l.starts_with("Datapath actions:"))
            .unwrap_or("")
            .to_string();
        if dp_actions.is_empty() || dp_actions.contains("drop") {
            notes.push(format!("ofproto/trace of flow 0: {dp_actions:?}"));
        }

        let mut windows = Vec::new();
        let mut dp_flows_sample = String::new();
        for &c in &o.conc {
            let w = self.window(case, &mut rr, c, &pmd_threads, &tag)?;
            if c == o.conc.iter().copied().max().unwrap_or(1) {
                dp_flows_sample = self
                    .dp_flows(case, &rr)
                    .unwrap_or_default()
                    .lines()
                    .take(3)
                    .collect::<Vec<_>>()
                    .join("\n");
            }
            windows.push(w);
        }
        let miss = self.miss(case, &mut rr, &pmd_threads)?;
        if miss.received < miss.sent {
            notes.push(format!(
                "the switch received {} of {} frames in the miss pass",
                miss.received, miss.sent
            ));
        }
        if miss.delivered < miss.received {
            notes.push(format!(
                "{} of {} frames delivered in the miss pass",
                miss.delivered, miss.received
            ));
        }
        let (rss_after, hwm) = rss("after traffic")?;
        let profile = if o.profile {
            let c = o.conc.iter().copied().max().unwrap_or(1);
            Some(
                self.profile(&mut rr, c, &pmd_threads, &tag)
                    .unwrap_or_else(|e| format!("perf failed: {e}")),
            )
        } else {
            None
        };
        if let Some(x) = rr.xvs.as_mut() {
            if !x.alive() {
                bail!("xvswitchd exited during the run");
            }
        }
        Ok(Run {
            case,
            round,
            install_s,
            flows: self.flows.n,
            rss_start_kib: rss_start,
            rss_loaded_kib: rss_loaded,
            rss_after_kib: rss_after,
            hwm_kib: hwm,
            windows,
            miss,
            trace: format!("{flow}\n{trace}"),
            trace_tables,
            profile,
            dp_flows_sample,
            notes,
        })
    }
}

fn window_json(w: &Window) -> Value {
    json!({
        "conc": w.conc,
        "delivered_pps": w.delivered_pps,
        "offered_pps": w.offered_pps,
        "ns_per_pkt": w.ns_per_pkt,
        "oncpu_busy_ns_per_pkt": w.oncpu_ns,
        "pmd_packets": w.received,
        "pmd_preempted_fraction": w.preempted,
        "megaflows": w.megaflows,
        "masks": w.masks,
        "emc_hits": w.emc_hits,
        "megaflow_hits": w.megaflow_hits,
        "upcalls": w.upcalls,
        "xvs_rx_processing_ns": w.split_ns.map(|x| x.0),
        "xvs_tx_ns": w.split_ns.map(|x| x.1),
        "others_cpu_pct": w.others_pct,
        "pmd_stats": w.stats,
    })
}

/// A figure of a run (None when the run did not produce it).
type Metric = (String, String, usize, Box<dyn Fn(&Run) -> Option<f64>>);

fn metrics(conc: &[u32]) -> Vec<Metric> {
    let mut v: Vec<Metric> = Vec::new();
    for &c in conc {
        v.push((
            format!("hit ns/pkt, {c} flow(s)"),
            format!("hit_ns_per_pkt_{c}"),
            0,
            Box::new(move |r: &Run| r.window(c)?.ns_per_pkt),
        ));
        v.push((
            format!("delivered Mpps, {c} flow(s)"),
            format!("delivered_mpps_{c}"),
            3,
            Box::new(move |r: &Run| Some(r.window(c)?.delivered_pps / 1e6)),
        ));
        v.push((
            format!("offered Mpps, {c} flow(s)"),
            format!("offered_mpps_{c}"),
            3,
            Box::new(move |r: &Run| Some(r.window(c)?.offered_pps? / 1e6)),
        ));
        v.push((
            format!("  on-CPU busy ns/pkt, {c}"),
            format!("oncpu_ns_per_pkt_{c}"),
            0,
            Box::new(move |r: &Run| r.window(c)?.oncpu_ns),
        ));
        v.push((
            format!("  of which rx+lookup ns, {c}"),
            format!("rx_processing_ns_{c}"),
            0,
            Box::new(move |r: &Run| r.window(c)?.split_ns.map(|x| x.0)),
        ));
        v.push((
            format!("  of which tx ns, {c}"),
            format!("tx_ns_{c}"),
            0,
            Box::new(move |r: &Run| r.window(c)?.split_ns.map(|x| x.1)),
        ));
        v.push((
            format!("EMC hits %, {c} flow(s)"),
            format!("emc_hit_pct_{c}"),
            1,
            Box::new(move |r: &Run| {
                let w = r.window(c)?;
                Some(w.emc_hits? as f64 * 100.0 / w.received.max(1) as f64)
            }),
        ));
        v.push((
            format!("megaflows, {c} flow(s)"),
            format!("megaflows_{c}"),
            0,
            Box::new(move |r: &Run| r.window(c)?.megaflows.map(|x| x as f64)),
        ));
        v.push((
            format!("masks, {c} flow(s)"),
            format!("masks_{c}"),
            0,
            Box::new(move |r: &Run| r.window(c)?.masks.map(|x| x as f64)),
        ));
        v.push((
            format!("PMD preempted %, {c} flow(s)"),
            format!("preempted_pct_{c}"),
            1,
            Box::new(move |r: &Run| r.window(c)?.preempted.map(|p| p * 100.0)),
        ));
    }
    v.push((
        "upcalls (miss pass)".into(),
        "miss_upcalls".into(),
        0,
        Box::new(|r: &Run| Some(r.miss.upcalls as f64)),
    ));
    v.push((
        "us per upcall".into(),
        "upcall_us".into(),
        2,
        Box::new(|r: &Run| r.miss.upcall_us),
    ));
    v.push((
        "PMD ns/pkt, miss pass".into(),
        "miss_pass_ns_per_pkt".into(),
        0,
        Box::new(|r: &Run| r.miss.proc_ns),
    ));
    v.push((
        "RSS MiB at start".into(),
        "rss_start_mib".into(),
        1,
        Box::new(|r: &Run| Some(r.rss_start_kib as f64 / 1024.0)),
    ));
    v.push((
        "RSS MiB, flows loaded".into(),
        "rss_loaded_mib".into(),
        1,
        Box::new(|r: &Run| Some(r.rss_loaded_kib as f64 / 1024.0)),
    ));
    v.push((
        "RSS MiB, after traffic".into(),
        "rss_after_mib".into(),
        1,
        Box::new(|r: &Run| Some(r.rss_after_kib as f64 / 1024.0)),
    ));
    v.push((
        "bytes per flow (loaded - start)".into(),
        "bytes_per_flow".into(),
        0,
        Box::new(|r: &Run| {
            Some((r.rss_loaded_kib as f64 - r.rss_start_kib as f64) * 1024.0 / r.flows as f64)
        }),
    ));
    v.push((
        "install seconds (--bundle)".into(),
        "install_s".into(),
        2,
        Box::new(|r: &Run| Some(r.install_s)),
    ));
    v
}

pub fn main(args: &[String]) -> i32 {
    let o = match util::parse_or_usage("ovn", USAGE, Opts::parse(args)) {
        Ok(o) => o,
        Err(code) => return code,
    };
    util::run_scenario("ovn", || run(o))
}

fn run(o: Opts) -> Result<i32> {
    let topo = Topo::veth();
    let flows = o.pipeline(&topo).text();
    if let Some(f) = &o.write_flows {
        std::fs::write(f, &flows.text).map_err(|e| format!("{}: {e}", f.display()))?;
        say!(
            "{}: {} flows over {} tables ({} with ct, {} conjunction)",
            f.display(),
            flows.n,
            flows.tables.len(),
            flows.ct_flows,
            flows.conjunction_flows
        );
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
    let flow_file = tmp.join("ovn-flows.txt");
    std::fs::write(&flow_file, &flows.text).map_err(|e| format!("{}: {e}", flow_file.display()))?;
    let s = Session {
        o: o.clone(),
        exe,
        tmp,
        topo,
        hz,
        flow_file,
        flows,
        _lock: lock,
    };
    Topo::create_namespaces()?;
    let (started, stamp) = util::utc_now();
    let load_start = util::loadavg();
    say!(
        "ovn: {} flows over {} tables ({} logical switches x {} ports + the test switch with a {}-address ACL); traffic flows {:?}, {} s windows; switch CPU {}, generator CPU {}; TSC {:.3} GHz; load {load_start}",
        s.flows.n,
        s.flows.tables.len(),
        o.dps,
        o.ports,
        o.addrs(),
        o.conc,
        o.window,
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
            let ws: Vec<String> = r
                .windows
                .iter()
                .map(|w| {
                    format!(
                        "{} flows: {} ns/pkt {:.3} Mpps ({} megaflows, {} masks, preempted {})",
                        w.conc,
                        w.ns_per_pkt
                            .map(|n| format!("{n:.0}"))
                            .unwrap_or("-".into()),
                        w.delivered_pps / 1e6,
                        w.megaflows.map(|n| n.to_string()).unwrap_or("-".into()),
                        w.masks.map(|n| n.to_string()).unwrap_or("-".into()),
                        w.preempted
                            .map(|p| format!("{:.0}%", p * 100.0))
                            .unwrap_or("-".into()),
                    )
                })
                .collect();
            say!(
                "  round {round} {:<4} {}; miss: {} upcalls {}; RSS {:.1} -> {:.1} -> {:.1} MiB; trace {} tables",
                c.name(),
                ws.join("; "),
                r.miss.upcalls,
                r.miss
                    .upcall_us
                    .map(|u| format!("{u:.2} us each"))
                    .unwrap_or_else(|| "-".into()),
                r.rss_start_kib as f64 / 1024.0,
                r.rss_loaded_kib as f64 / 1024.0,
                r.rss_after_kib as f64 / 1024.0,
                r.trace_tables
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
    say!();
    say!(
        "{:<34} {:>24} {:>24} {:>22}",
        "median (min..max) over rounds",
        "xvs",
        "ovs",
        "xvs/ovs (per round)"
    );
    let mut summary = serde_json::Map::new();
    let mut ratios = serde_json::Map::new();
    let summ = |case: Case, f: &dyn Fn(&Run) -> Option<f64>| {
        util::summary(
            &runs
                .iter()
                .filter(|r| r.case == case)
                .filter_map(f)
                .collect::<Vec<_>>(),
        )
    };
    for (label, key, prec, f) in metrics(&o.conc) {
        let xs = summ(Case::Xvs, &*f);
        let os = summ(Case::Ovs, &*f);
        let mut rs = String::new();
        if let (Some(a), Some(b)) = (xs, os) {
            if b.0 > 0.0 {
                let mut per = Vec::new();
                for ra in runs.iter().filter(|r| r.case == Case::Xvs) {
                    if let Some(rb) = runs
                        .iter()
                        .find(|r| r.case == Case::Ovs && r.round == ra.round)
                    {
                        if let (Some(x), Some(y)) = (f(ra), f(rb)) {
                            if y > 0.0 {
                                per.push(x / y);
                            }
                        }
                    }
                }
                let pr = util::summary(&per);
                rs = format!(
                    "{:.2} ({})",
                    a.0 / b.0,
                    pr.map(|p| format!("{:.2}..{:.2}", p.1, p.2))
                        .unwrap_or_else(|| "-".into())
                );
                ratios.insert(
                    key.clone(),
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
        summary.insert(key, json!({"xvs": tri(xs), "ovs": tri(os)}));
    }

    // ---- targets (issue 4), not asserted
    let ratio_of = |k: &str| ratios.get(k).and_then(|r| r["of_medians"].as_f64());
    let mut targets = Vec::new();
    for &c in &o.conc {
        if let Some(r) = ratio_of(&format!("hit_ns_per_pkt_{c}")) {
            targets.push(json!({"target": format!("cache-hit cost, {c} flow(s): xvs <= 0.7 x ovs"), "ratio": r, "met": r <= 0.7}));
        }
        if let Some(r) = ratio_of(&format!("delivered_mpps_{c}")) {
            targets.push(json!({"target": format!("delivered rate, {c} flow(s): xvs >= ovs"), "ratio": r, "met": r >= 1.0}));
        }
    }
    if let Some(r) = ratio_of("rss_loaded_mib") {
        targets.push(
            json!({"target": "RSS with the flows loaded: xvs <= ovs", "ratio": r, "met": r <= 1.0}),
        );
    }
    if let Some(r) = ratio_of("rss_after_mib") {
        targets
            .push(json!({"target": "RSS after traffic: xvs <= ovs", "ratio": r, "met": r <= 1.0}));
    }
    say!();
    for t in &targets {
        say!(
            "target {}: {:.2} -> {}",
            t["target"].as_str().unwrap_or(""),
            t["ratio"].as_f64().unwrap_or(f64::NAN),
            if t["met"].as_bool() == Some(true) {
                "met"
            } else {
                "NOT met"
            }
        );
    }
    let pre = runs
        .iter()
        .flat_map(|r| r.windows.iter().filter_map(|w| w.preempted))
        .fold(0.0, f64::max);
    let max_other = runs
        .iter()
        .flat_map(|r| r.windows.iter().map(|w| w.others_pct))
        .fold(0.0, f64::max);
    let load_end = util::loadavg();
    let mut warnings = Vec::new();
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
    for r in runs.iter().filter(|r| r.profile.is_some()) {
        say!();
        say!(
            "perf profile of the switch core, {} round {}:",
            r.case.name(),
            r.round
        );
        for l in r.profile.as_deref().unwrap_or("").lines().take(25) {
            say!("  {l}");
        }
    }

    let doc = json!({
        "scenario": "ovn",
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
            "flows": s.flows.n, "tables": s.flows.tables, "ct_flows": s.flows.ct_flows,
            "conjunction_flows": s.flows.conjunction_flows,
            "logical_switches": o.dps + 1, "ports_per_switch": o.ports,
            "test_acl_addresses": o.addrs(),
            "conc": o.conc, "window_s": o.window, "warmup_s": o.warmup,
            "miss_packets": o.miss_packets, "miss_pps": o.miss_pps,
            "runs": o.runs,
            "cases": o.cases.iter().map(|c| c.name()).collect::<Vec<_>>(),
            "switch_cpu": o.pmd_cpu, "gen_cpu": o.gen_cpu, "sink_cpu": o.sink_cpu,
            "xvswitchd": o.xvswitchd, "xvs_args": o.xvs_args, "ovs_xdp_mode": o.ovs_xdp_mode,
            "hit_method": "PMD 'avg processing cycles per packet' over the window (xvswitchd pmd/stats, OVS dpif-netdev/pmd-stats-show), after clearing the statistics at the window start",
            "miss_method": "xvswitchd pmd/stats 'upcalls: N (avg X us each)'; OVS dpif-netdev/pmd-perf-show '- Upcalls: N (p %, X us/upcall)' with pmd-perf-metrics=true during the miss pass only",
            "rss_method": "VmRSS of the daemon process (/proc/PID/status): at start, 0.5 s after the install and dump, after the traffic",
        },
        "summary": summary,
        "ratios_xvs_over_ovs": ratios,
        "targets": targets,
        "runs": runs.iter().map(|r| json!({
            "case": r.case.name(),
            "round": r.round,
            "install_s": r.install_s,
            "rss_kib": {"start": r.rss_start_kib, "loaded": r.rss_loaded_kib, "after_traffic": r.rss_after_kib, "hwm": r.hwm_kib},
            "windows": r.windows.iter().map(window_json).collect::<Vec<_>>(),
            "miss": {
                "sent": r.miss.sent, "received": r.miss.received, "delivered": r.miss.delivered,
                "upcalls": r.miss.upcalls, "upcall_us": r.miss.upcall_us,
                "processing_ns_per_pkt": r.miss.proc_ns,
                "pmd_preempted_fraction": r.miss.preempted,
                "pmd_stats": r.miss.stats,
                "pmd_perf_show": if r.miss.perf.is_empty() { Value::Null } else { json!(r.miss.perf) },
            },
            "trace": r.trace,
            "trace_tables": r.trace_tables,
            "dp_flows_sample": r.dp_flows_sample,
            "profile": r.profile,
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
    util::write_results("ovn", &stamp, o.json.as_deref(), &doc);
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
        assert_eq!(o.conc, vec![1, 1000]);
        assert_eq!(o.addrs(), 2000);
        let o = Opts::parse(&["--conc".into(), "10,100".into(), "--runs=1".into()]).unwrap();
        assert_eq!(o.conc, vec![10, 100]);
        assert_eq!(o.runs, 1);
        assert!(Opts::parse(&["--conc".into(), "0".into()]).is_err());
        assert!(Opts::parse(&["--conc".into(), "70000".into()]).is_err());
        assert!(Opts::parse(&["--ports".into(), "1".into()]).is_err());
    }

    #[test]
    fn parses_megaflow_lines_and_counts_masks() {
        let x = "pmd thread numa_id 0 core_id 1 (idle policy Busy):\n  packets received: 10\n  megaflow hits: 9\n  upcalls: 1 (avg 3.50 us each)\n  megaflows: 1000 (masks: 2)\n";
        assert_eq!(parse_xvs_megaflows(x), Some((1000, 2)));
        assert_eq!(parse_xvs_upcalls(x), Some((1, 3.5)));
        let c = "  avg processing cycles per packet: 1781.7 (686.4 ns; rx+processing 105.7 ns, tx 577.1 ns)\n";
        assert_eq!(parse_xvs_split(c), Some((105.7, 577.1)));
        assert_eq!(sum_key(x, "megaflow hits"), Some(9));
        let d = "ufid:1, recirc_id(0),in_port(2),eth_type(0x0800),ipv4(src=198.18.0.1,dst=198.19.0.1/255.255.255.0), packets:1, bytes:60, used:0.1s, actions:3\n\
                 ufid:2, recirc_id(0),in_port(2),eth_type(0x0800),ipv4(src=198.18.0.2,dst=198.19.0.1/255.255.255.0), packets:1, bytes:60, used:0.1s, actions:3\n\
                 ufid:3, recirc_id(0),in_port(2),eth_type(0x86dd), packets:1, bytes:60, used:0.1s, actions:drop\n";
        assert_eq!(count_masks(d), 2);
        let o = "  - Upcalls:             1000  (100.0 %,     31.2 us/upcall)\n";
        assert_eq!(parse_ovs_perf_upcalls(o), Some((1000, 31.2)));
    }

    #[test]
    fn pipeline_is_ovn_sized_and_the_test_path_has_no_ct() {
        let p = OvnPipeline {
            dps: 80,
            ports: 16,
            addrs: 2000,
            gen_mac: "02:00:00:00:00:01".into(),
            sink_mac: "02:00:00:00:00:02".into(),
        };
        let f = p.text();
        assert!(f.n >= 20_000, "{} flows", f.n);
        assert!(f.tables.len() >= 40, "{} tables", f.tables.len());
        assert!(f.ct_flows > 0 && f.conjunction_flows > 0);
        // flows of the test switch never use conntrack
        for l in f
            .text
            .lines()
            .filter(|l| l.contains("metadata=0x1,") || l.contains("metadata=0x1 "))
        {
            assert!(!l.contains("ct(") && !l.contains("ct_state"), "{l}");
        }
        // every (table, priority, match) is distinct
        let mut seen = std::collections::HashSet::new();
        for l in f.text.lines() {
            let m = l.split(" actions=").next().unwrap();
            assert!(seen.insert(m.to_string()), "duplicate flow {l}");
        }
        assert_eq!(f.text.lines().count(), f.n);
    }
}
