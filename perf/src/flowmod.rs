//! Scenario `flowmod`: the OpenFlow control plane under a full OVN-sized table. The real
//! `ovs-ofctl` installs N distinct OVN-shaped flows (`flows::ovn_like`, 100,000 by default) into
//! xvswitchd and into a private ovs-vswitchd (bridge `datapath_type=netdev`, `fail_mode=secure`),
//! then dumps and deletes them, and does it again with `--bundle`; both switches interleaved per
//! round (the order alternating), each in a fresh daemon per round:
//!
//! ```text
//! start -> add-flows FILE -> [RSS] -> dump-flows (count) -> del-flows -> (check: 0 flows)
//!       -> add-flows --bundle FILE -> [RSS] -> dump-flows (count) -> del-flows -> stop
//! ```
//!
//! Every step is timed wall-clock (spawn to exit of ovs-ofctl, which waits for the switch's
//! barrier / bundle-commit reply, so the switch has applied everything) and by CPU: ovs-ofctl's
//! own (wait4 rusage: the client's share, the same work for both switches) and the daemon's
//! (utime+stime of all its threads from /proc over the step: the server's share). Resident
//! memory (VmRSS) of the daemon is read after each install.
//!
//! Neither switch has ports: the measurement is the control plane alone. xvswitchd runs with
//! `--pmd-idle sleep` so that its (portless) PMD does not spin on the second core that OVS,
//! with no PMD at all, leaves to the control thread and ovs-ofctl.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::{json, Value};

use crate::ovs::{Ovs, OvsOpts};
use crate::util::{self, env_or, fmt3, tri, Error, Result};
use crate::xvs::{Xvs, XvsOpts};
use crate::{bail, flows, ofnull, ovs, p2p, say, xvs};

pub const USAGE: &str = "\
usage: xvs-perf flowmod [OPTIONS]

Installs N OVN-shaped flows with the real `ovs-ofctl add-flows` (then with --bundle), dumps and
deletes them, into xvswitchd and into OVS 3.1 (private ovs-vswitchd, netdev bridge,
fail_mode=secure), interleaved per round. Prints seconds per step (median (min..max)), the
ratios, the daemons' CPU seconds and resident memory, and writes JSON to
perf/results/flowmod-<UTC time>.json. Needs root.

  --flows N           flows to install (default 100000)
  --flows-file PATH   install this add-flows file instead of the generated one
  --write-flows PATH  write the generated file there and exit
  --exclude KINDS     leave these kinds of flow out of the generated file (their share goes to
                      the others): in_port, port_sec_l2, port_sec_ip, nd, arp_responder,
                      l2_lookup, acl, acl_conjunction, route, lb_dnat, output, ipv6_src, default
  --cases LIST        xvs,ovs,null (default xvs,ovs; env CASES). null: a server that answers
                      barriers and keeps nothing (perf/src/ofnull.rs), the floor of add-flows
                      with this client; its dump and del steps are skipped
  --runs N            rounds (default 3; env RUNS)
  --no-bundle         skip the --bundle install (and its dump and delete)
  --protocols P       ovs-ofctl -O (default OpenFlow15, what ovn-controller speaks;
                      `default` leaves -O out: ovs-ofctl then sends OpenFlow 1.0 + NXM)
  --op-timeout SECS   give up on one ovs-ofctl step after this long (default 600)
  --xvswitchd PATH    binary under test (default: next to xvs-perf)
  --xvs-arg ARG       extra xvswitchd argument (repeatable)
  --xvs-idle P        xvswitchd --pmd-idle (default sleep)
  --pmd-cpus LIST     xvswitchd --pmd-cpus and OVS pmd-cpu-mask (default 1)
  --json PATH         write the results here instead of perf/results/flowmod-<time>.json
  --keep-logs         keep the scratch directory (flow file, daemon logs)
  --wait-quiet SECS   before each run wait up to SECS for a quiet second (env WAIT_QUIET)
  --quiet-pct P       quiet = all CPUs together less than P % busy (default 25)
";

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Case {
    Xvs,
    Ovs,
    /// `ofnull::NullServer`: answers barriers, keeps nothing (the client's floor).
    Null,
}

impl Case {
    fn name(self) -> &'static str {
        match self {
            Case::Xvs => "xvs",
            Case::Ovs => "ovs",
            Case::Null => "null",
        }
    }
}

/// The steps of a run, in order: (key, ovs-ofctl command, bundle?, counts lines?)
const STEPS: &[(&str, &str, bool, bool)] = &[
    ("add", "add-flows", false, false),
    ("dump", "dump-flows", false, true),
    ("del", "del-flows", false, false),
    ("add_bundle", "add-flows", true, false),
    ("dump_bundle", "dump-flows", false, true),
    ("del_bundle", "del-flows", false, false),
];

fn step_label(k: &str) -> &'static str {
    match k {
        "add" => "add-flows",
        "dump" => "dump-flows",
        "del" => "del-flows",
        "add_bundle" => "add-flows --bundle",
        "dump_bundle" => "dump-flows (after bundle)",
        "del_bundle" => "del-flows (after bundle)",
        _ => "?",
    }
}

#[derive(Clone, Debug)]
struct Opts {
    flows: usize,
    flows_file: Option<PathBuf>,
    write_flows: Option<PathBuf>,
    exclude: Vec<String>,
    cases: Vec<Case>,
    runs: usize,
    bundle: bool,
    protocols: Option<String>,
    op_timeout: f64,
    xvswitchd: PathBuf,
    xvs_args: Vec<String>,
    xvs_idle: String,
    pmd_cpus: Vec<usize>,
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
        let mut o = Opts {
            flows: 100_000,
            flows_file: None,
            write_flows: None,
            exclude: Vec::new(),
            cases: vec![Case::Xvs, Case::Ovs],
            runs: 3,
            bundle: true,
            protocols: Some("OpenFlow15".into()),
            op_timeout: 600.0,
            xvswitchd: exe_dir.join("xvswitchd"),
            xvs_args: Vec::new(),
            xvs_idle: "sleep".into(),
            pmd_cpus: vec![1],
            json: None,
            keep_logs: false,
            wait_quiet: 0.0,
            quiet_pct: 25.0,
        };
        let mut cases = env_or("CASES", "xvs,ovs");
        let mut runs = env_or("RUNS", "3");
        let mut wait_quiet = env_or("WAIT_QUIET", "0");
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
                "--flows" => o.flows = num(&val()?, "--flows")? as usize,
                "--flows-file" => o.flows_file = Some(PathBuf::from(val()?)),
                "--write-flows" => o.write_flows = Some(PathBuf::from(val()?)),
                "--exclude" => {
                    for k in val()?.split(',').map(str::trim).filter(|k| !k.is_empty()) {
                        if !flows::kind_names().contains(&k) {
                            return Err(format!(
                                "--exclude: unknown kind {k:?} (kinds: {})",
                                flows::kind_names().join(", ")
                            ));
                        }
                        o.exclude.push(k.to_string());
                    }
                }
                "--cases" => cases = val()?,
                "--runs" => runs = val()?,
                "--no-bundle" => o.bundle = false,
                "--protocols" => {
                    let v = val()?;
                    o.protocols = (v != "default").then_some(v);
                }
                "--op-timeout" => o.op_timeout = num(&val()?, "--op-timeout")?,
                "--xvswitchd" => o.xvswitchd = PathBuf::from(val()?),
                "--xvs-arg" => o.xvs_args.push(val()?),
                "--xvs-idle" => o.xvs_idle = val()?,
                "--pmd-cpus" => o.pmd_cpus = util::parse_cpu_list(&val()?)?,
                "--json" => o.json = Some(PathBuf::from(val()?)),
                "--keep-logs" => o.keep_logs = true,
                "--wait-quiet" => wait_quiet = val()?,
                "--quiet-pct" => o.quiet_pct = num(&val()?, "--quiet-pct")?,
                "-h" | "--help" => return Err(String::new()),
                other => return Err(format!("unknown option {other:?}")),
            }
        }
        o.cases.clear();
        for c in cases.split(',').map(str::trim).filter(|c| !c.is_empty()) {
            let c = match c {
                "xvs" => Case::Xvs,
                "ovs" => Case::Ovs,
                "null" => Case::Null,
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
        if o.flows == 0 || o.flows > 1_000_000 {
            return Err("--flows must be between 1 and 1000000".into());
        }
        if o.xvs_idle != "busy" && o.xvs_idle != "sleep" {
            return Err("--xvs-idle must be busy or sleep".into());
        }
        o.wait_quiet = num(&wait_quiet, "--wait-quiet/WAIT_QUIET")?;
        Ok(o)
    }
}

/// A switch under test, started for one run.
struct Daemon {
    xvs: Option<Xvs>,
    ovs: Option<Ovs>,
    null: Option<ofnull::NullServer>,
    pid: i32,
    target: String,
}

impl Daemon {
    fn stop(&mut self) {
        if let Some(mut x) = self.xvs.take() {
            x.stop();
        }
        if let Some(mut o) = self.ovs.take() {
            o.stop();
        }
        self.null = None;
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.stop();
    }
}

#[derive(Clone, Debug)]
struct Step {
    wall_s: f64,
    client_cpu_s: f64,
    daemon_cpu_s: f64,
    lines: u64,
    /// Bytes of ovs-ofctl's output (dumps).
    bytes: u64,
    /// Other processes' CPU during the step, % of one CPU.
    others_pct: f64,
    others: Vec<util::Load>,
    /// Why the step failed (ovs-ofctl's exit status and first lines of stderr, or a wrong
    /// flow count); failed steps are left out of the medians.
    error: Option<String>,
}

struct Run {
    case: Case,
    round: usize,
    steps: BTreeMap<&'static str, Step>,
    rss_start_kib: u64,
    rss_kib: BTreeMap<&'static str, (u64, u64)>,
    notes: Vec<String>,
}

struct Session {
    o: Opts,
    tmp: PathBuf,
    flow_file: PathBuf,
    n_flows: usize,
    _lock: std::fs::File,
}

impl Drop for Session {
    fn drop(&mut self) {
        if !self.o.keep_logs {
            let _ = std::fs::remove_dir_all(&self.tmp);
        }
    }
}

impl Session {
    fn start(&self, case: Case, round: usize) -> Result<Daemon> {
        let dir = self.tmp.join(format!("{}.{round}", case.name()));
        match case {
            Case::Xvs => {
                let mut extra = vec!["--fail-mode".to_string(), "secure".to_string()];
                extra.extend(self.o.xvs_args.iter().cloned());
                let x = Xvs::start(&XvsOpts {
                    bin: &self.o.xvswitchd,
                    ns: None,
                    rundir: &dir,
                    ports: &[],
                    pmd_cpus: &self.o.pmd_cpus,
                    idle: &self.o.xvs_idle,
                    extra: &extra,
                })?;
                let ok = util::wait_for(Duration::from_secs(10), || x.mgmt.exists().then_some(()))?;
                if ok.is_none() {
                    bail!("xvswitchd has no {} after 10 s", x.mgmt.display());
                }
                let pid = util::read_pidfile(&dir.join("xvswitchd.pid"))
                    .or(x.pid())
                    .ok_or("xvswitchd pid unknown")?;
                Ok(Daemon {
                    target: format!("unix:{}", x.mgmt.display()),
                    xvs: Some(x),
                    ovs: None,
                    null: None,
                    pid,
                })
            }
            Case::Ovs => {
                let ovs = Ovs::start(
                    &dir,
                    &OvsOpts {
                        ns: None,
                        pmd_cpus: &self.o.pmd_cpus,
                        ports: Vec::new(),
                        xdp_mode: "native".into(),
                        fallback_best_effort: false,
                        n_rxq: None,
                        flows: Vec::new(),
                        fail_secure: true,
                        other_config: Vec::new(),
                    },
                )?;
                let pid = ovs.daemon_pid().ok_or("ovs-vswitchd pid unknown")?;
                Ok(Daemon {
                    target: ovs.mgmt(),
                    xvs: None,
                    ovs: Some(ovs),
                    null: None,
                    pid,
                })
            }
            Case::Null => {
                std::fs::create_dir_all(&dir)
                    .map_err(|e| format!("mkdir {}: {e}", dir.display()))?;
                let n = ofnull::NullServer::start(&dir.join("null.mgmt"))
                    .map_err(|e| format!("null server: {e}"))?;
                Ok(Daemon {
                    target: format!("unix:{}", n.path.display()),
                    xvs: None,
                    ovs: None,
                    null: Some(n),
                    // its CPU is this process's (the scenario's main thread waits meanwhile)
                    pid: std::process::id() as i32,
                })
            }
        }
    }

    fn ofctl(&self, d: &Daemon, cmd: &str, bundle: bool) -> Command {
        let mut c = Command::new("ovs-ofctl");
        if let Some(p) = &self.o.protocols {
            c.args(["-O", p]);
        }
        if bundle {
            c.arg("--bundle");
        }
        c.arg(cmd).arg(&d.target);
        if cmd == "add-flows" {
            c.arg(&self.flow_file);
        }
        c
    }

    /// Runs one ovs-ofctl step against `d`, timed.
    fn step(&self, d: &Daemon, tag: &str, cmd: &str, bundle: bool, count: bool) -> Result<Step> {
        let p0 = util::ProcSnap::take();
        let c0 = util::proc_cpu_s(d.pid).unwrap_or(0.0);
        let t = util::run_timed(
            &mut self.ofctl(d, cmd, bundle),
            Duration::from_secs_f64(self.o.op_timeout),
            count.then_some(" actions="),
            &self.tmp.join(format!("{tag}.stderr")),
        )?;
        let c1 = util::proc_cpu_s(d.pid).unwrap_or(0.0);
        let p1 = util::ProcSnap::take();
        let error = (!t.success).then(|| {
            format!(
                "ovs-ofctl {}{cmd} failed ({}) after {:.2} s{}: {}",
                if bundle { "--bundle " } else { "" },
                t.status,
                t.wall_s,
                if count {
                    format!(" having listed {} flows", t.lines)
                } else {
                    String::new()
                },
                t.stderr
            )
        });
        let others = p0.busy_since(&p1, 3.0, &[std::process::id() as i32, d.pid]);
        Ok(Step {
            wall_s: t.wall_s,
            client_cpu_s: t.cpu_s,
            daemon_cpu_s: c1 - c0,
            lines: t.lines,
            bytes: t.bytes,
            others_pct: others.iter().map(|l| l.cpu_pct).fold(0.0, |a, b| a + b),
            others,
            error,
        })
    }

    fn count_flows(&self, d: &Daemon, tag: &str) -> Result<u64> {
        let t = util::run_timed(
            &mut self.ofctl(d, "dump-flows", false),
            Duration::from_secs_f64(self.o.op_timeout),
            Some(" actions="),
            &self.tmp.join(format!("{tag}.stderr")),
        )?;
        if !t.success {
            bail!("ovs-ofctl dump-flows failed ({}): {}", t.status, t.stderr);
        }
        Ok(t.lines)
    }

    fn run_case(&self, case: Case, round: usize) -> Result<Run> {
        let mut d = self.start(case, round)?;
        let mut run = Run {
            case,
            round,
            steps: BTreeMap::new(),
            rss_start_kib: util::rss_kib(d.pid).map(|r| r.0).unwrap_or(0),
            rss_kib: BTreeMap::new(),
            notes: Vec::new(),
        };
        for &(key, cmd, bundle, count) in STEPS {
            if key.ends_with("_bundle") && !self.o.bundle {
                continue;
            }
            if case == Case::Null && (count || key.starts_with("del")) {
                // it keeps no flows: nothing to list or delete
                continue;
            }
            let tag = format!("{}.{round}.{key}", case.name());
            let mut s = self.step(&d, &tag, cmd, bundle, count)?;
            if count && s.error.is_none() && s.lines != self.n_flows as u64 {
                s.error = Some(format!(
                    "dump-flows listed {} flows, not {}",
                    s.lines, self.n_flows
                ));
            }
            if let Some(e) = &s.error {
                say!(
                    "  round {round} {:<4} {}: {}",
                    case.name(),
                    step_label(key),
                    e.lines()
                        .take(2)
                        .map(strip_vlog_prefix)
                        .collect::<Vec<_>>()
                        .join(" / ")
                );
                if !count {
                    // nothing sensible follows a failed install or delete
                    bail!("{}: {e}", step_label(key));
                }
            }
            run.steps.insert(key, s);
            if cmd == "add-flows" && case != Case::Null {
                if let Some(r) = util::rss_kib(d.pid) {
                    run.rss_kib.insert(key, r);
                }
            }
            if cmd == "del-flows" {
                let left = self.count_flows(&d, &format!("{tag}.check"))?;
                if left != 0 {
                    bail!("{}: {left} flows left after del-flows", case.name());
                }
                if let Some(r) = util::rss_kib(d.pid) {
                    run.rss_kib.insert(key, r);
                }
            }
        }
        if let Some(x) = d.xvs.as_mut() {
            if !x.alive() {
                bail!("xvswitchd exited during the run");
            }
        }
        d.stop();
        Ok(run)
    }
}

/// `2026-01-01T00:00:00Z|00001|ofp_flow|WARN|text` -> `ofp_flow|WARN|text`.
fn strip_vlog_prefix(l: &str) -> &str {
    let mut it = l.splitn(3, '|');
    match (it.next(), it.next(), it.next()) {
        (Some(t), Some(n), Some(rest))
            if t.ends_with('Z') && n.chars().all(|c| c.is_ascii_digit()) =>
        {
            rest
        }
        _ => l,
    }
}

/// Step `key` of run `r` if it succeeded.
fn ok<'a>(r: &'a Run, key: &str) -> Option<&'a Step> {
    r.steps.get(key).filter(|s| s.error.is_none())
}

/// "failed in N of M runs" for a step, or nothing.
fn failures(runs: &[Run], case: Case, key: &str) -> String {
    let all: Vec<&Step> = runs
        .iter()
        .filter(|r| r.case == case)
        .filter_map(|r| r.steps.get(key))
        .collect();
    let bad = all.iter().filter(|s| s.error.is_some()).count();
    if bad == 0 {
        String::new()
    } else {
        format!("FAILED {bad}/{} ", all.len())
    }
}

fn kib_mib(k: u64) -> f64 {
    k as f64 / 1024.0
}

/// Median (min..max) of `f` over the runs of `case`.
fn summ(runs: &[Run], case: Case, f: impl Fn(&Run) -> Option<f64>) -> Option<(f64, f64, f64)> {
    util::summary(
        &runs
            .iter()
            .filter(|r| r.case == case)
            .filter_map(f)
            .collect::<Vec<_>>(),
    )
}

/// xvs/ovs: ratio of medians and the per-round ratios.
fn ratio(runs: &[Run], f: impl Fn(&Run) -> Option<f64>) -> Option<Value> {
    let a = summ(runs, Case::Xvs, &f)?.0;
    let b = summ(runs, Case::Ovs, &f)?.0;
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
    (b > 0.0).then(|| json!({"of_medians": a / b, "per_round": tri(util::summary(&per))}))
}

fn ratio_str(v: &Option<Value>) -> String {
    match v {
        None => "-".into(),
        Some(v) => {
            let m = v["of_medians"].as_f64().unwrap_or(f64::NAN);
            let speed = if m > 0.0 {
                format!(" = {:.1}x", 1.0 / m)
            } else {
                String::new()
            };
            match (
                v["per_round"]["min"].as_f64(),
                v["per_round"]["max"].as_f64(),
            ) {
                (Some(lo), Some(hi)) => format!("{m:.3} (per round {lo:.3}..{hi:.3}){speed}"),
                _ => format!("{m:.3}{speed}"),
            }
        }
    }
}

pub fn main(args: &[String]) -> i32 {
    let o = match util::parse_or_usage("flowmod", USAGE, Opts::parse(args)) {
        Ok(o) => o,
        Err(code) => return code,
    };
    if let Some(p) = &o.write_flows {
        let f = flows::ovn_like(o.flows, &o.exclude);
        return match std::fs::write(p, &f.text) {
            Ok(()) => {
                say!(
                    "{}: {} flows in {} tables ({})",
                    p.display(),
                    f.n,
                    f.tables.len(),
                    f.kinds
                        .iter()
                        .map(|(k, n)| format!("{k} {n}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                );
                0
            }
            Err(e) => {
                eprintln!("xvs-perf flowmod: {}: {e}", p.display());
                1
            }
        };
    }
    util::run_scenario("flowmod", || run(o))
}

fn run(o: Opts) -> Result<i32> {
    if !util::is_root() {
        bail!("needs root (private OVS, xvswitchd)");
    }
    if o.cases.contains(&Case::Xvs) && !o.xvswitchd.exists() {
        bail!(
            "{} not found: build it (cargo build --release --workspace) or pass --xvswitchd",
            o.xvswitchd.display()
        );
    }
    if ovs::version().is_none() {
        bail!("ovs-vswitchd / ovs-ofctl not found (apt install openvswitch-switch)");
    }
    let lock = p2p::lock()?;
    let tmp = std::env::temp_dir().join(format!("xvs-perf-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).map_err(|e| format!("mkdir {}: {e}", tmp.display()))?;
    let (flow_file, n_flows, shape) = match &o.flows_file {
        Some(p) => {
            let t = std::fs::read_to_string(p).map_err(|e| format!("{}: {e}", p.display()))?;
            let n = t.lines().filter(|l| l.contains("actions=")).count();
            (p.clone(), n, json!({"file": p}))
        }
        None => {
            let f = flows::ovn_like(o.flows, &o.exclude);
            let p = tmp.join("flows.txt");
            std::fs::write(&p, &f.text).map_err(|e| format!("{}: {e}", p.display()))?;
            (
                p,
                f.n,
                json!({
                    "generator": "flows::ovn_like (OVN shapes from ../shared/ovn-reference/ovn-flows-full-ch1.txt)",
                    "tables": f.tables,
                    "excluded_kinds": o.exclude,
                    "kinds": f.kinds.iter().map(|(k, n)| json!({"kind": k, "flows": n})).collect::<Vec<_>>(),
                    "bytes": f.text.len(),
                }),
            )
        }
    };
    let s = Session {
        o: o.clone(),
        tmp,
        flow_file,
        n_flows,
        _lock: lock,
    };
    let (started, stamp) = util::utc_now();
    let load_start = util::loadavg();
    say!(
        "flowmod: {n_flows} flows, ovs-ofctl {}, {} round(s), cases {}; load {load_start}",
        o.protocols
            .as_ref()
            .map(|p| format!("-O {p}"))
            .unwrap_or_else(|| "(default protocols)".into()),
        o.runs,
        o.cases
            .iter()
            .map(|c| c.name())
            .collect::<Vec<_>>()
            .join(",")
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
            let g = |k: &str| match r.steps.get(k) {
                Some(x) if x.error.is_none() => format!("{:.2}", x.wall_s),
                Some(x) => format!("FAILED({:.2})", x.wall_s),
                None => "-".into(),
            };
            let rss = if *c == Case::Null {
                String::new()
            } else {
                format!(
                    "  RSS {:.0} MiB -> {:.0} MiB",
                    kib_mib(r.rss_start_kib),
                    kib_mib(r.rss_kib.get("add").map(|x| x.0).unwrap_or(0))
                )
            };
            say!(
                "  round {round} {:<4} add {} s  bundle {} s  dump {} s  del {} s{rss}  other load {:.0}%",
                c.name(),
                g("add"),
                g("add_bundle"),
                g("dump"),
                g("del"),
                r.steps.values().map(|x| x.others_pct).fold(0.0, f64::max)
            );
        },
    );
    let logs = o.keep_logs.then_some(s.tmp.as_path());
    if let Some(exit) = util::none_completed(runs.len(), interrupted, logs) {
        drop(s);
        return exit;
    }

    // ---- table
    say!();
    let with_null = o.cases.contains(&Case::Null);
    // the null server's column, when it ran
    let null_col = |f: &dyn Fn(&Run) -> Option<f64>, digits: usize| {
        if with_null {
            format!(" {:>24}", fmt3(summ(&runs, Case::Null, f), digits))
        } else {
            String::new()
        }
    };
    say!(
        "{:<28} {:>24} {:>24}{}   xvs/ovs (<1: xvswitchd faster)",
        "wall seconds",
        "xvs",
        "ovs",
        if with_null {
            format!(" {:>24}", "null (floor)")
        } else {
            String::new()
        }
    );
    let mut steps_json = serde_json::Map::new();
    let mut ratios = serde_json::Map::new();
    for &(key, _, _, _) in STEPS {
        let wall = |r: &Run| ok(r, key).map(|s| s.wall_s);
        if runs.iter().all(|r| wall(r).is_none()) {
            continue;
        }
        let rs = ratio(&runs, wall);
        say!(
            "{:<28} {:>24} {:>24}{}   {}",
            step_label(key),
            format!(
                "{}{}",
                failures(&runs, Case::Xvs, key),
                fmt3(summ(&runs, Case::Xvs, wall), 3)
            ),
            format!(
                "{}{}",
                failures(&runs, Case::Ovs, key),
                fmt3(summ(&runs, Case::Ovs, wall), 3)
            ),
            null_col(&wall, 3),
            ratio_str(&rs)
        );
        if let Some(v) = rs.clone() {
            ratios.insert(key.into(), v);
        }
        let mut per_case = serde_json::Map::new();
        for c in [Case::Xvs, Case::Ovs, Case::Null] {
            if !o.cases.contains(&c) {
                continue;
            }
            let f = |g: fn(&Step) -> f64| tri(summ(&runs, c, |r| ok(r, key).map(g)));
            per_case.insert(
                c.name().into(),
                json!({
                    "wall_s": f(|s| s.wall_s),
                    "daemon_cpu_s": f(|s| s.daemon_cpu_s),
                    "ovs_ofctl_cpu_s": f(|s| s.client_cpu_s),
                    "failed": runs.iter().filter(|r| r.case == c).filter_map(|r| r.steps.get(key)).filter_map(|s| s.error.clone()).collect::<Vec<_>>(),
                    "flows_per_s": if key.starts_with("add") || key.starts_with("dump") {
                        tri(summ(&runs, c, |r| {
                            ok(r, key).filter(|s| s.wall_s > 0.0).map(|s| n_flows as f64 / s.wall_s)
                        }))
                    } else { Value::Null },
                }),
            );
        }
        per_case.insert("xvs_over_ovs_wall".into(), rs.unwrap_or(Value::Null));
        steps_json.insert(key.into(), Value::Object(per_case));
    }
    say!();
    say!("{:<28} {:>24} {:>24}", "daemon CPU seconds", "xvs", "ovs");
    for &(key, _, _, _) in STEPS {
        let cpu = |r: &Run| ok(r, key).map(|s| s.daemon_cpu_s);
        if runs.iter().all(|r| cpu(r).is_none()) {
            continue;
        }
        say!(
            "{:<28} {:>24} {:>24}",
            step_label(key),
            fmt3(summ(&runs, Case::Xvs, cpu), 2),
            fmt3(summ(&runs, Case::Ovs, cpu), 2)
        );
    }
    let client = |r: &Run| ok(r, "add").map(|s| s.client_cpu_s);
    say!(
        "{:<28} {:>24} {:>24}",
        "ovs-ofctl CPU s (add-flows)",
        fmt3(summ(&runs, Case::Xvs, client), 2),
        fmt3(summ(&runs, Case::Ovs, client), 2)
    );
    say!();
    say!("{:<28} {:>24} {:>24}", "resident MiB (VmRSS)", "xvs", "ovs");
    let rss_start = |r: &Run| Some(kib_mib(r.rss_start_kib));
    say!(
        "{:<28} {:>24} {:>24}",
        "at start (no flows)",
        fmt3(summ(&runs, Case::Xvs, rss_start), 1),
        fmt3(summ(&runs, Case::Ovs, rss_start), 1)
    );
    let mut rss_json = serde_json::Map::new();
    for (key, label) in [
        ("add", "after add-flows"),
        ("del", "after del-flows"),
        ("add_bundle", "after add-flows --bundle"),
        ("del_bundle", "after del (bundle)"),
    ] {
        let rss = |r: &Run| r.rss_kib.get(key).map(|x| kib_mib(x.0));
        if runs.iter().all(|r| rss(r).is_none()) {
            continue;
        }
        say!(
            "{:<28} {:>24} {:>24}",
            label,
            fmt3(summ(&runs, Case::Xvs, rss), 1),
            fmt3(summ(&runs, Case::Ovs, rss), 1)
        );
        rss_json.insert(
            key.into(),
            json!({
                "xvs_mib": tri(summ(&runs, Case::Xvs, rss)),
                "ovs_mib": tri(summ(&runs, Case::Ovs, rss)),
                "xvs_over_ovs": ratio(&runs, rss),
            }),
        );
    }
    rss_json.insert(
        "start".into(),
        json!({
            "xvs_mib": tri(summ(&runs, Case::Xvs, rss_start)),
            "ovs_mib": tri(summ(&runs, Case::Ovs, rss_start)),
        }),
    );
    let per_flow = |r: &Run| {
        r.rss_kib
            .get("add")
            .map(|x| (x.0.saturating_sub(r.rss_start_kib)) as f64 * 1024.0 / n_flows as f64)
    };
    say!(
        "{:<28} {:>24} {:>24}",
        "bytes per flow (add - start)",
        fmt3(summ(&runs, Case::Xvs, per_flow), 0),
        fmt3(summ(&runs, Case::Ovs, per_flow), 0)
    );
    rss_json.insert(
        "bytes_per_flow".into(),
        json!({
            "xvs": tri(summ(&runs, Case::Xvs, per_flow)),
            "ovs": tri(summ(&runs, Case::Ovs, per_flow)),
        }),
    );

    // ---- targets and noise
    let mut warnings: Vec<String> = Vec::new();
    for key in ["add", "add_bundle", "dump"] {
        if let Some(r) = ratios.get(key).and_then(|v| v["of_medians"].as_f64()) {
            let sp = 1.0 / r;
            say!(
                "target xvswitchd >= 2x faster at {:<22} {:.2}x {}",
                step_label(key),
                sp,
                if sp >= 2.0 { "met" } else { "NOT MET" }
            );
        }
    }
    if o.cases.contains(&Case::Null) {
        // the same client against a server that does nothing: no switch can be faster
        for key in ["add", "add_bundle"] {
            let wall = |r: &Run| ok(r, key).map(|s| s.wall_s);
            let (Some(n), Some(v)) = (summ(&runs, Case::Null, wall), summ(&runs, Case::Ovs, wall))
            else {
                continue;
            };
            let client = summ(&runs, Case::Null, |r| ok(r, key).map(|s| s.client_cpu_s));
            say!(
                "floor at {:<22} null server {:.3} s (ovs-ofctl CPU {} s): the most any switch can be faster than OVS here is {:.2}x",
                step_label(key),
                n.0,
                client.map(|c| format!("{:.2}", c.0)).unwrap_or_else(|| "?".into()),
                v.0 / n.0
            );
        }
    }
    let max_other = runs
        .iter()
        .flat_map(|r| r.steps.values())
        .map(|s| s.others_pct)
        .fold(0.0, f64::max);
    let mut top: BTreeMap<String, f64> = BTreeMap::new();
    for st in runs.iter().flat_map(|r| r.steps.values()) {
        for l in &st.others {
            let e = top.entry(l.comm.clone()).or_insert(0.0);
            *e = e.max(l.cpu_pct);
        }
    }
    let mut top: Vec<(String, f64)> = top.into_iter().collect();
    top.sort_by(|a, b| b.1.total_cmp(&a.1));
    let load_end = util::loadavg();
    if max_other > 50.0 {
        warnings.push(format!(
            "other processes used up to {max_other:.0}% of a CPU during a step: on this machine that \
             slows whichever switch is measured then; compare per-round ratios"
        ));
    }
    say!(
        "other CPU load during the steps: up to {max_other:.0}% of a CPU{}; loadavg {load_start} -> {load_end}",
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
    for w in &warnings {
        say!("warning: {w}");
    }

    let hz = util::tsc_hz(Duration::from_millis(100));
    let doc = json!({
        "scenario": "flowmod",
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
            "flows": n_flows,
            "flow_set": shape,
            "runs": o.runs,
            "cases": o.cases.iter().map(|c| c.name()).collect::<Vec<_>>(),
            "ovs_ofctl_protocols": o.protocols,
            "bundle": o.bundle,
            "xvswitchd": o.xvswitchd, "xvs_args": o.xvs_args, "xvs_pmd_idle": o.xvs_idle,
            "pmd_cpus": o.pmd_cpus,
            "xvs_setup": "xvswitchd --bridge br0 --fail-mode secure (no ports) --pmd-cpus LIST --pmd-idle IDLE",
            "ovs_setup": "private ovsdb-server + ovs-vswitchd, bridge datapath_type=netdev fail_mode=secure, no ports",
            "sequence": STEPS.iter().map(|s| s.0).collect::<Vec<_>>(),
            "wall_time": "spawn to exit of ovs-ofctl (it waits for the barrier / bundle commit reply)",
            "daemon_cpu": "utime+stime of all the daemon's threads over the step (/proc/PID/stat, clock ticks)",
        },
        "steps": steps_json,
        "rss": rss_json,
        "runs": runs.iter().map(|r| json!({
            "case": r.case.name(),
            "round": r.round,
            "rss_start_kib": r.rss_start_kib,
            "rss_kib": r.rss_kib.iter().map(|(k, v)| (k.to_string(), json!({"rss": v.0, "hwm": v.1}))).collect::<BTreeMap<_, _>>(),
            "steps": r.steps.iter().map(|(k, s)| (k.to_string(), json!({
                "wall_s": s.wall_s,
                "daemon_cpu_s": s.daemon_cpu_s,
                "ovs_ofctl_cpu_s": s.client_cpu_s,
                "lines": s.lines,
                "output_bytes": s.bytes,
                "others_cpu_pct": s.others_pct,
                "error": s.error,
                "others": s.others.iter().take(8).map(|l| json!({"pid": l.pid, "comm": l.comm, "cpu_pct": (l.cpu_pct * 10.0).round() / 10.0})).collect::<Vec<_>>(),
            }))).collect::<BTreeMap<_, _>>(),
            "notes": r.notes,
        })).collect::<Vec<_>>(),
        "load": {
            "loadavg_start": load_start, "loadavg_end": load_end,
            "max_other_cpu_pct": max_other,
            "peak_other_processes": top.iter().take(12).map(|(n, p)| json!({"comm": n, "cpu_pct": p})).collect::<Vec<_>>(),
            "wait_quiet": quiet_log,
        },
        "failed_runs": failed,
        "warnings": warnings,
    });
    if !runs.is_empty() {
        util::write_results("flowmod", &stamp, o.json.as_deref(), &doc);
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
    fn options_parse() {
        let o = Opts::parse(&["--flows".into(), "5000".into(), "--no-bundle".into()]).unwrap();
        assert_eq!(o.flows, 5000);
        assert!(!o.bundle);
        assert_eq!(o.protocols.as_deref(), Some("OpenFlow15"));
        let o = Opts::parse(&["--protocols=default".into(), "--cases=ovs".into()]).unwrap();
        assert_eq!(o.protocols, None);
        assert_eq!(o.cases, vec![Case::Ovs]);
        assert!(Opts::parse(&["--flows".into(), "0".into()]).is_err());
        assert!(Opts::parse(&["--cases".into(), "kernel".into()]).is_err());
        assert!(Opts::parse(&["--exclude".into(), "route,bogus".into()]).is_err());
        let o = Opts::parse(&["--exclude".into(), "route,arp_responder".into()]).unwrap();
        assert_eq!(o.exclude, vec!["route", "arp_responder"]);
    }

    #[test]
    fn strips_ovs_log_prefixes() {
        assert_eq!(
            strip_vlog_prefix("2026-11-22T02:44:19Z|00001|ofp_flow|WARN|bad"),
            "ofp_flow|WARN|bad"
        );
        assert_eq!(strip_vlog_prefix("ovs-ofctl: x|y"), "ovs-ofctl: x|y");
    }
}
