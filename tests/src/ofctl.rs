//! OpenFlow command-line clients: the real `ovs-ofctl` from Open vSwitch and the project's
//! `xvs-ofctl`, pointed at a switch's run directory (`OVS_RUNDIR`, so `br0` means
//! `RUNDIR/br0.mgmt`, as for any Open vSwitch), optionally run inside a namespace (for `tcp:`
//! targets), and parsers for what they print: flow dumps, port counters, monitor output.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::netns::Netns;
use crate::pkt::{self, Mac};
use crate::{run_timeout, wait_for, ChildGuard, TempDir, WAIT};

/// An OpenFlow protocol version as `ovs-ofctl -O` names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Of {
    /// No `-O`: ovs-ofctl's default, OpenFlow 1.0 (with Nicira extensions).
    V10,
    V13,
    V14,
    V15,
}

impl Of {
    /// The three versions the tests cover everywhere.
    pub const ALL: [Of; 3] = [Of::V10, Of::V13, Of::V15];

    pub fn args(self) -> &'static [&'static str] {
        match self {
            Of::V10 => &[],
            Of::V13 => &["-O", "OpenFlow13"],
            Of::V14 => &["-O", "OpenFlow14"],
            Of::V15 => &["-O", "OpenFlow15"],
        }
    }

    /// Explicit `-O` arguments, also for 1.0 (`-O OpenFlow10`).
    pub fn explicit(self) -> &'static str {
        match self {
            Of::V10 => "OpenFlow10",
            Of::V13 => "OpenFlow13",
            Of::V14 => "OpenFlow14",
            Of::V15 => "OpenFlow15",
        }
    }
}

/// What one command printed.
#[derive(Clone, Debug)]
pub struct Run {
    pub what: String,
    pub stdout: String,
    pub stderr: String,
    /// Exit status (None: killed by a signal, e.g. the deadline).
    pub code: Option<i32>,
}

impl Run {
    pub fn ok(&self) -> bool {
        self.code == Some(0)
    }

    /// stdout then stderr.
    pub fn text(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }

    /// Panics with everything printed unless the command succeeded; returns stdout.
    pub fn expect_ok(&self) -> &str {
        assert!(
            self.ok(),
            "`{}` failed (exit {:?}):\n{}{}",
            self.what,
            self.code,
            self.stdout,
            self.stderr
        );
        &self.stdout
    }

    /// Panics unless the command failed with an exit status; returns stdout+stderr.
    pub fn expect_failure(&self) -> String {
        assert!(
            matches!(self.code, Some(c) if c != 0),
            "`{}` should have failed, got exit {:?}:\n{}{}",
            self.what,
            self.code,
            self.stdout,
            self.stderr
        );
        self.text()
    }
}

/// One of the two OpenFlow command-line clients, bound to a switch.
#[derive(Clone, Debug)]
pub struct Ofctl {
    prog: PathBuf,
    rundir: PathBuf,
    ns: Option<String>,
    version: Of,
    extra: Vec<String>,
}

impl Ofctl {
    /// The real `ovs-ofctl`, for the switch whose run directory is `rundir`.
    pub fn ovs(rundir: &Path) -> Ofctl {
        Ofctl {
            prog: PathBuf::from("ovs-ofctl"),
            rundir: rundir.to_path_buf(),
            ns: None,
            version: Of::V10,
            extra: Vec::new(),
        }
    }

    /// The project's `xvs-ofctl` (from the binary directory, see [`crate::bin`]).
    pub fn xvs(rundir: &Path) -> Ofctl {
        Ofctl {
            prog: crate::bin("xvs-ofctl"),
            ..Ofctl::ovs(rundir)
        }
    }

    /// The same client speaking `v`.
    pub fn v(&self, v: Of) -> Ofctl {
        Ofctl {
            version: v,
            ..self.clone()
        }
    }

    /// The same client with extra options before the command (e.g. `--bundle`, `--strict`).
    pub fn with(&self, opts: &[&str]) -> Ofctl {
        let mut o = self.clone();
        o.extra.extend(opts.iter().map(|s| s.to_string()));
        o
    }

    /// The same client run inside `ns` (`ip netns exec`), e.g. for `tcp:127.0.0.1:PORT`.
    pub fn in_ns(&self, ns: &Netns) -> Ofctl {
        Ofctl {
            ns: Some(ns.name().to_string()),
            ..self.clone()
        }
    }

    pub fn version(&self) -> Of {
        self.version
    }

    pub fn name(&self) -> String {
        self.prog
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    }

    fn command(&self) -> Command {
        let mut c = match &self.ns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns]).arg(&self.prog);
                c
            }
            None => Command::new(&self.prog),
        };
        c.env("OVS_RUNDIR", &self.rundir)
            .env_remove("XVS_RUNDIR")
            .args(self.version.args())
            .args(&self.extra);
        c
    }

    fn describe(&self, args: &[&str]) -> String {
        let mut v = vec![self.name()];
        v.extend(self.version.args().iter().map(|s| s.to_string()));
        v.extend(self.extra.iter().cloned());
        v.extend(args.iter().map(|s| s.to_string()));
        v.join(" ")
    }

    /// Runs `args` (e.g. `["dump-flows", "br0"]`) with a deadline.
    pub fn run(&self, args: &[&str]) -> Run {
        let out = run_timeout(self.command().args(args), WAIT);
        Run {
            what: self.describe(args),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            code: out.status.code(),
        }
    }

    /// Runs `args`, panicking unless it succeeds; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        self.run(args).expect_ok().to_string()
    }

    /// `dump-flows BRIDGE [FILTER]`, parsed. Panics on failure or on anything the client could
    /// not decode (ovs-ofctl prints `***decode error` or logs a warning and exits non-zero).
    pub fn flows(&self, bridge: &str, filter: &str) -> Vec<Flow> {
        let mut args = vec!["dump-flows", bridge];
        if !filter.is_empty() {
            args.push(filter);
        }
        let r = self.run(&args);
        let out = r.expect_ok();
        assert!(
            !out.contains("decode error") && !r.stderr.contains("WARN"),
            "`{}` could not decode the reply:\n{out}{}",
            r.what,
            r.stderr
        );
        parse_flows(out)
    }

    /// `dump-ports BRIDGE`, parsed (ports in the order printed).
    pub fn ports(&self, bridge: &str) -> Vec<PortCounters> {
        let r = self.run(&["dump-ports", bridge]);
        parse_ports(r.expect_ok())
    }

    /// Starts `ovs-ofctl [-O V] monitor ARGS...` in the background (see [`Monitor`]).
    pub fn monitor(&self, args: &[&str]) -> Monitor {
        let dir = TempDir::new();
        let path = dir.path().join("monitor.out");
        let f = std::fs::File::create(&path).expect("monitor output file");
        let f2 = f.try_clone().expect("dup");
        let mut full = vec!["monitor"];
        full.extend_from_slice(args);
        let what = self.describe(&full);
        let child = ChildGuard::spawn(
            self.command()
                .args(&full)
                .stdin(Stdio::null())
                .stdout(f)
                .stderr(f2),
            &what,
        );
        Monitor {
            child,
            path,
            what,
            _dir: dir,
        }
    }
}

/// A background `ovs-ofctl monitor`, killed on drop. Its output goes to a file the test reads.
pub struct Monitor {
    child: ChildGuard,
    path: PathBuf,
    pub what: String,
    _dir: TempDir,
}

/// The source MAC of probe packets ([`Monitor::sync`]).
pub const PROBE_SRC: Mac = [0x02, 0x99, 0x99, 0x99, 0x99, 0x99];

impl Monitor {
    /// Everything printed so far.
    pub fn output(&self) -> String {
        std::fs::read_to_string(&self.path).unwrap_or_default()
    }

    /// The messages printed so far, one string per message (a header line and its
    /// continuation lines), without Open vSwitch log lines.
    pub fn messages(&self) -> Vec<String> {
        split_messages(&self.output())
    }

    /// The messages other than the packet-ins of probes.
    pub fn messages_without_probes(&self) -> Vec<String> {
        let probe = format!("dl_src={}", pkt::mac_str(&PROBE_SRC));
        self.messages()
            .into_iter()
            .filter(|m| !m.contains(&probe))
            .collect()
    }

    /// Waits until a message satisfying `pred` has been printed; returns it.
    pub fn wait_message(&mut self, what: &str, pred: impl Fn(&str) -> bool) -> String {
        wait_for(&format!("{what} in `{}`", self.what), WAIT, || {
            if let Ok(Some(st)) = self.child.child.try_wait() {
                return Err(format!(
                    "the monitor exited ({st}); output:\n{}",
                    self.output()
                ));
            }
            match self.messages().into_iter().find(|m| pred(m)) {
                Some(m) => Ok(m),
                None => Err(self.output()),
            }
        })
    }

    /// Makes sure the monitor is connected and configured, and that every asynchronous message
    /// the switch queued for it before this call has been printed: sends packet-outs of a probe
    /// frame (source [`PROBE_SRC`], `actions=controller`) through `ofctl` until this monitor
    /// prints a packet-in of the latest one. Needs a monitor that asked for packet-ins
    /// (`monitor BRIDGE MISS_LEN`).
    pub fn sync(&mut self, ofctl: &Ofctl, bridge: &str) {
        let mut n: u32 = 0;
        wait_for(
            &format!("a probe packet-in in `{}`", self.what),
            WAIT,
            || {
                n += 1;
                let frame = probe_frame(n);
                let hex: String = frame.iter().map(|b| format!("{b:02x}")).collect();
                ofctl
                    .v(Of::V10)
                    .run(&["packet-out", bridge, "CONTROLLER", "controller", &hex])
                    .expect_ok();
                let want = format!("tp_src={}", 40000 + (n % 20000));
                let deadline = std::time::Instant::now() + Duration::from_millis(300);
                loop {
                    let out = self.output();
                    if out.contains(&want) && out.contains(&pkt::mac_str(&PROBE_SRC)) {
                        return Ok(());
                    }
                    if std::time::Instant::now() > deadline {
                        return Err(out);
                    }
                    std::thread::sleep(Duration::from_millis(10));
                }
            },
        );
    }
}

/// Probe frame `n`: UDP from [`PROBE_SRC`], source port 40000 + n.
pub fn probe_frame(n: u32) -> Vec<u8> {
    pkt::udp_frame(
        pkt::BROADCAST,
        PROBE_SRC,
        std::net::Ipv4Addr::new(192, 0, 2, 99),
        std::net::Ipv4Addr::new(192, 0, 2, 98),
        40000 + (n % 20000) as u16,
        9,
        b"probe",
        pkt::UdpCsum::Full,
    )
}

/// Whether a line is an Open vSwitch log line (`2024-01-01T00:00:00Z|00001|module|LEVEL|...`).
pub fn is_vlog_line(l: &str) -> bool {
    let b = l.as_bytes();
    b.len() > 21
        && b[..4].iter().all(u8::is_ascii_digit)
        && b[4] == b'-'
        && b[10] == b'T'
        && b[19] == b'Z'
        && b[20] == b'|'
}

/// Splits monitor (or any ovs-ofctl) output into messages: a line starting with `OFPT_`,
/// `NXT_`, `OFPST_`, `NXST_` or `ONFT_` starts a message; other lines continue it.
pub fn split_messages(s: &str) -> Vec<String> {
    let mut v: Vec<String> = Vec::new();
    for l in s.lines() {
        if is_vlog_line(l) {
            continue;
        }
        let starts = ["OFPT_", "NXT_", "OFPST_", "NXST_", "ONFT_"]
            .iter()
            .any(|p| l.starts_with(p));
        match v.last_mut() {
            Some(m) if !starts => {
                m.push('\n');
                m.push_str(l);
            }
            _ => v.push(l.to_string()),
        }
    }
    v
}

/// One flow of a `dump-flows` reply.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Flow {
    pub table: u8,
    pub priority: u16,
    pub cookie: u64,
    pub n_packets: u64,
    pub n_bytes: u64,
    pub idle_timeout: u32,
    pub hard_timeout: u32,
    /// Flags printed as words (`send_flow_rem`, `reset_counts`, ...).
    pub flags: Vec<String>,
    /// The match as printed, without priority (e.g. `udp,in_port=1,tp_dst=7`; empty: all).
    pub match_: String,
    pub actions: String,
    /// The whole line as printed.
    pub line: String,
}

impl Flow {
    /// The match with its fields sorted (so `udp,in_port=1` equals `in_port=1,udp`).
    pub fn match_sorted(&self) -> String {
        let mut v: Vec<&str> = self.match_.split(',').filter(|s| !s.is_empty()).collect();
        v.sort();
        v.join(",")
    }
}

const STAT_KEYS: &[&str] = &[
    "cookie",
    "duration",
    "table",
    "n_packets",
    "n_bytes",
    "idle_timeout",
    "hard_timeout",
    "idle_age",
    "hard_age",
    "importance",
];

const FLAG_WORDS: &[&str] = &[
    "send_flow_rem",
    "check_overlap",
    "reset_counts",
    "no_packet_counts",
    "no_byte_counts",
];

fn num(s: &str) -> u64 {
    let s = s.trim_end_matches('s');
    if let Some(h) = s.strip_prefix("0x") {
        u64::from_str_radix(h, 16).unwrap_or(0)
    } else {
        s.parse().unwrap_or(0)
    }
}

/// Parses the flow lines of a `dump-flows` reply (lines starting with a space and holding
/// `actions=`).
pub fn parse_flows(text: &str) -> Vec<Flow> {
    text.lines()
        .filter(|l| l.starts_with(' ') && l.contains("actions="))
        .map(parse_flow)
        .collect()
}

/// Parses one `dump-flows` line.
pub fn parse_flow(line: &str) -> Flow {
    let (left, actions) = line
        .split_once("actions=")
        .expect("a flow line has actions=");
    let mut f = Flow {
        priority: 32768,
        actions: actions.trim().to_string(),
        line: line.to_string(),
        ..Default::default()
    };
    let mut m = Vec::new();
    for atom in left.split([',', ' ']).filter(|a| !a.is_empty()) {
        match atom.split_once('=') {
            Some((k, v)) if STAT_KEYS.contains(&k) => match k {
                "cookie" => f.cookie = num(v),
                "table" => f.table = num(v) as u8,
                "n_packets" => f.n_packets = num(v),
                "n_bytes" => f.n_bytes = num(v),
                "idle_timeout" => f.idle_timeout = num(v) as u32,
                "hard_timeout" => f.hard_timeout = num(v) as u32,
                _ => {}
            },
            Some(("priority", v)) => f.priority = num(v) as u16,
            None if FLAG_WORDS.contains(&atom) => f.flags.push(atom.to_string()),
            _ => m.push(atom),
        }
    }
    f.match_ = m.join(",");
    f
}

/// One port of a `dump-ports` reply.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PortCounters {
    /// The port as printed: a number, or `LOCAL`.
    pub port: String,
    pub rx_packets: u64,
    pub rx_bytes: u64,
    pub rx_dropped: u64,
    pub tx_packets: u64,
    pub tx_bytes: u64,
    pub tx_dropped: u64,
}

/// Parses a `dump-ports` reply:
/// `  port  1: rx pkts=5, bytes=426, drop=0, ...` then `           tx pkts=6, ...`.
pub fn parse_ports(text: &str) -> Vec<PortCounters> {
    let mut v: Vec<PortCounters> = Vec::new();
    for l in text.lines() {
        let t = l.trim();
        let kv = |s: &str, k: &str| -> u64 {
            s.split([',', ' '])
                .filter_map(|a| a.split_once('='))
                .find(|(key, _)| *key == k)
                .map(|(_, x)| num(x))
                .unwrap_or(0)
        };
        if let Some(rest) = t.strip_prefix("port ") {
            let Some((port, counters)) = rest.split_once(':') else {
                continue;
            };
            v.push(PortCounters {
                port: port.trim().trim_matches('"').to_string(),
                rx_packets: kv(counters, "pkts"),
                rx_bytes: kv(counters, "bytes"),
                rx_dropped: kv(counters, "drop"),
                ..Default::default()
            });
        } else if let (Some(p), Some(rest)) = (v.last_mut(), t.strip_prefix("tx ")) {
            p.tx_packets = kv(rest, "pkts");
            p.tx_bytes = kv(rest, "bytes");
            p.tx_dropped = kv(rest, "drop");
        }
    }
    v
}

/// A frame as the hex string `ovs-ofctl packet-out` takes.
pub fn hex(frame: &[u8]) -> String {
    frame.iter().map(|b| format!("{b:02x}")).collect()
}

/// Writes `lines` (one flow or group per line) to a file in `dir` and returns its path.
pub fn write_lines(dir: &TempDir, name: &str, lines: &[&str]) -> String {
    let p = dir.path().join(name);
    let mut s = lines.join("\n");
    s.push('\n');
    std::fs::write(&p, s).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    p.display().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flow_lines() {
        let f = parse_flow(
            " cookie=0x12, duration=2.769s, table=3, n_packets=11, n_bytes=926, idle_timeout=30, \
             hard_timeout=60, send_flow_rem priority=7,ip,nw_dst=10.0.0.0/8 actions=output:1",
        );
        assert_eq!(
            (f.cookie, f.table, f.n_packets, f.n_bytes, f.priority),
            (0x12, 3, 11, 926, 7)
        );
        assert_eq!((f.idle_timeout, f.hard_timeout), (30, 60));
        assert_eq!(f.flags, vec!["send_flow_rem".to_string()]);
        assert_eq!(f.match_, "ip,nw_dst=10.0.0.0/8");
        assert_eq!(f.actions, "output:1");
        let g = parse_flow(
            " cookie=0x0, duration=2.7s, table=0, n_packets=0, n_bytes=0, idle_age=0, \
             actions=NORMAL",
        );
        assert_eq!((g.priority, g.match_.as_str()), (32768, ""));
        let h = parse_flow(
            " table=1, priority=5,reg1=0x1234/0xffff actions=load:0x3->NXM_NX_REG3[0..1],output:2",
        );
        assert_eq!((h.table, h.priority), (1, 5));
        assert_eq!(h.match_, "reg1=0x1234/0xffff");
        assert_eq!(h.actions, "load:0x3->NXM_NX_REG3[0..1],output:2");
    }

    #[test]
    fn port_lines() {
        let p = parse_ports(
            "OFPST_PORT reply (OF1.3) (xid=0x2): 2 ports\n  port  1: rx pkts=5, bytes=426, \
             drop=0, errs=0, frame=0, over=0, crc=0\n           tx pkts=6, bytes=500, drop=1, \
             errs=0, coll=0\n           duration=2.775s\n  port LOCAL: rx pkts=1, bytes=2, \
             drop=3, errs=0, frame=0, over=0, crc=0\n           tx pkts=4, bytes=5, drop=6, \
             errs=0, coll=0\n",
        );
        assert_eq!(p.len(), 2);
        assert_eq!(
            (
                p[0].port.as_str(),
                p[0].rx_packets,
                p[0].rx_bytes,
                p[0].tx_packets
            ),
            ("1", 5, 426, 6)
        );
        assert_eq!((p[0].tx_bytes, p[0].tx_dropped), (500, 1));
        assert_eq!(
            (p[1].port.as_str(), p[1].rx_dropped, p[1].tx_bytes),
            ("LOCAL", 3, 5)
        );
    }

    #[test]
    fn monitor_messages() {
        let m = split_messages(
            "NXT_PACKET_IN2 (xid=0x0): total_len=46 in_port=1\nudp,dl_src=02:00:00:00:00:01\n\
             2024-01-01T00:00:00Z|00001|fatal_signal|WARN|terminating\n\
             OFPT_FLOW_REMOVED (xid=0x0): priority=5 reason=idle\n",
        );
        assert_eq!(m.len(), 2);
        assert!(m[0].contains("dl_src") && m[1].starts_with("OFPT_FLOW_REMOVED"));
    }
}
