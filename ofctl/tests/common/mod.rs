//! A private Open vSwitch for interop tests: `ovsdb-server` + `ovs-vswitchd` (from the
//! distribution) with their own run/db/log directories, vswitchd inside its own network
//! namespace (so its netdev bridge's tap devices cannot collide with anything), and one
//! bridge `br0` (netdev datapath, fail_mode=secure, dpid 1) with internal ports `p1` and
//! `p2` (OpenFlow ports 1 and 2) — the setup the `openflow` crate's capture script uses.
//! Everything is torn down on drop, also when a test panics.
//!
//! Pointing the tests at another switch (xvswitchd): set `XVS_OFCTL_LAB_RUNDIR` to the
//! run directory of an already running daemon that serves bridge `br0` (with `p1`=1 and
//! `p2`=2) on `RUNDIR/br0.mgmt` and its control socket as `RUNDIR/xvswitchd.ctl` (or
//! `ovs-vswitchd.PID.ctl` plus pidfile).  Then nothing is started, the tests take turns on
//! that one switch, and every comparison still runs ovs-ofctl and xvs-ofctl side by side
//! against it — the commands under test only see OVS_RUNDIR and a bridge name.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

static SEQ: AtomicU32 = AtomicU32::new(0);

/// Serialises tests that share an external switch.
static EXTERNAL: Mutex<()> = Mutex::new(());

pub struct Lab {
    /// Scratch directory (files the tests write; the daemons' directories when private).
    pub dir: PathBuf,
    /// The switch's run directory (OVS_RUNDIR).
    pub rundir: PathBuf,
    /// Network namespace of the private ovs-vswitchd; None for an external switch.
    ns: Option<String>,
    _turn: Option<MutexGuard<'static, ()>>,
}

fn external_rundir() -> Option<PathBuf> {
    std::env::var_os("XVS_OFCTL_LAB_RUNDIR").map(PathBuf::from)
}

fn have(bin: &str) -> bool {
    Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {bin}"))
        .stdout(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// Why the interop tests cannot run here (not root, no Open vSwitch), if so.
pub fn unavailable() -> Option<String> {
    if let Some(r) = external_rundir() {
        if !r.join("br0.mgmt").exists() {
            return Some(format!("{}/br0.mgmt does not exist", r.display()));
        }
        return (!have("ovs-ofctl")).then(|| "ovs-ofctl not installed".into());
    }
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Some("not root (needs network namespaces)".into());
    }
    for b in [
        "ovsdb-server",
        "ovs-vswitchd",
        "ovs-vsctl",
        "ovs-ofctl",
        "ovsdb-tool",
        "ip",
    ] {
        if !have(b) {
            return Some(format!("{b} not installed"));
        }
    }
    if !Path::new("/usr/share/openvswitch/vswitch.ovsschema").exists() {
        return Some("vswitch.ovsschema not found".into());
    }
    None
}

impl Lab {
    /// Starts the daemons and bridge `br0`.
    pub fn start() -> Lab {
        let n = SEQ.fetch_add(1, Ordering::Relaxed);
        let pid = std::process::id();
        let dir = std::env::temp_dir().join(format!("xvs-ofctl-lab-{pid}-{n}"));
        let _ = std::fs::remove_dir_all(&dir);
        for sub in ["run", "db", "log", "etc"] {
            std::fs::create_dir_all(dir.join(sub)).unwrap();
        }
        if let Some(rundir) = external_rundir() {
            let turn = EXTERNAL.lock().unwrap_or_else(|e| e.into_inner());
            let lab = Lab {
                dir,
                rundir,
                ns: None,
                _turn: Some(turn),
            };
            // Start from a clean switch, as a private one would.
            for reset in [
                &["del-flows", "br0"][..],
                &["-O", "OpenFlow15", "del-groups", "br0"],
                &["del-tlv-map", "br0"],
            ] {
                lab.ovs(reset);
            }
            return lab;
        }
        let ns = format!("xvsofct{pid}{n}");
        let lab = Lab {
            rundir: dir.join("run"),
            dir,
            ns: Some(ns.clone()),
            _turn: None,
        };
        lab.sh(&["ip", "netns", "add", &ns]);
        lab.sh(&["ip", "netns", "exec", &ns, "ip", "link", "set", "lo", "up"]);
        let d = lab.dir.display().to_string();
        lab.sh(&[
            "ovsdb-tool",
            "create",
            &format!("{d}/db/conf.db"),
            "/usr/share/openvswitch/vswitch.ovsschema",
        ]);
        lab.sh(&[
            "ovsdb-server",
            "--detach",
            "--no-chdir",
            "-vconsole:off",
            "-vsyslog:off",
            &format!("--pidfile={d}/run/ovsdb-server.pid"),
            &format!("--log-file={d}/log/ovsdb-server.log"),
            &format!("--unixctl={d}/run/ovsdb-server.ctl"),
            &format!("--remote=punix:{d}/run/db.sock"),
            &format!("{d}/db/conf.db"),
        ]);
        lab.vsctl(&["--no-wait", "init"]);
        let mut args: Vec<String> = vec!["ip".into(), "netns".into(), "exec".into(), ns];
        args.push("env".into());
        for (k, v) in lab.env() {
            args.push(format!("{k}={v}"));
        }
        // The control socket keeps OVS's default name (ovs-vswitchd.PID.ctl), so that
        // `trace` has to find it through the pidfile as ovs-appctl does.
        args.extend([
            "ovs-vswitchd".to_string(),
            format!("unix:{d}/run/db.sock"),
            "--detach".into(),
            "--no-chdir".into(),
            "-vconsole:off".into(),
            "-vsyslog:off".into(),
            format!("--pidfile={d}/run/ovs-vswitchd.pid"),
            format!("--log-file={d}/log/ovs-vswitchd.log"),
        ]);
        let a: Vec<&str> = args.iter().map(String::as_str).collect();
        lab.sh(&a);
        lab.vsctl(&[
            "add-br",
            "br0",
            "--",
            "set",
            "bridge",
            "br0",
            "datapath_type=netdev",
            "--",
            "set",
            "bridge",
            "br0",
            "fail_mode=secure",
            "other_config:datapath-id=0000000000000001",
        ]);
        for (name, ofport) in [("p1", "1"), ("p2", "2")] {
            lab.vsctl(&[
                "add-port",
                "br0",
                name,
                "--",
                "set",
                "interface",
                name,
                "type=internal",
                &format!("ofport_request={ofport}"),
            ]);
        }
        let mgmt = lab.dir.join("run/br0.mgmt");
        let t = Instant::now();
        while !mgmt.exists() {
            assert!(
                t.elapsed() < Duration::from_secs(10),
                "br0.mgmt never appeared"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        lab
    }

    /// Environment for commands that talk to this switch.
    pub fn env(&self) -> Vec<(String, String)> {
        let d = self.dir.display();
        vec![
            ("OVS_RUNDIR".into(), self.rundir.display().to_string()),
            ("OVS_DBDIR".into(), format!("{d}/db")),
            ("OVS_LOGDIR".into(), format!("{d}/log")),
            ("OVS_SYSCONFDIR".into(), format!("{d}/etc")),
        ]
    }

    fn sh(&self, argv: &[&str]) -> Output {
        let out = Command::new(argv[0])
            .args(&argv[1..])
            .envs(self.env())
            .output()
            .unwrap_or_else(|e| panic!("{}: {e}", argv[0]));
        assert!(
            out.status.success(),
            "{:?} failed: {}{}",
            argv,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    pub fn vsctl(&self, args: &[&str]) -> Output {
        let db = format!("--db=unix:{}/run/db.sock", self.dir.display());
        let mut a = vec!["ovs-vsctl", &db, "--timeout=20"];
        a.extend_from_slice(args);
        self.sh(&a)
    }

    /// Runs a program with this switch's environment (stdin from `input` when given).
    pub fn run(&self, prog: &str, args: &[&str], input: Option<&str>) -> Run {
        let mut c = Command::new(prog);
        c.args(args)
            .envs(self.env())
            .env_remove("XVS_RUNDIR")
            .stdin(if input.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = c.spawn().unwrap_or_else(|e| panic!("{prog}: {e}"));
        if let Some(i) = input {
            use std::io::Write;
            child.stdin.take().unwrap().write_all(i.as_bytes()).unwrap();
        }
        let out = child.wait_with_output().unwrap();
        Run {
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            code: out.status.code().unwrap_or(-1),
        }
    }

    pub fn ovs(&self, args: &[&str]) -> Run {
        self.run("ovs-ofctl", args, None)
    }

    pub fn xvs(&self, args: &[&str]) -> Run {
        self.run(env!("CARGO_BIN_EXE_xvs-ofctl"), args, None)
    }

    /// Starts a long-running program (e.g. `monitor`) whose stdout+stderr go to a file
    /// in the lab directory; the returned guard kills it.
    pub fn spawn(&self, prog: &str, args: &[&str], name: &str) -> Bg {
        let path = self.dir.join(name);
        let f = std::fs::File::create(&path).unwrap();
        let child = Command::new(prog)
            .args(args)
            .envs(self.env())
            .env_remove("XVS_RUNDIR")
            .stdin(Stdio::null())
            .stdout(f.try_clone().unwrap())
            .stderr(f)
            .spawn()
            .unwrap_or_else(|e| panic!("{prog}: {e}"));
        Bg { child, path }
    }

    /// Writes a file in the lab directory and returns its path.
    pub fn file(&self, name: &str, content: &str) -> String {
        let p = self.dir.join(name);
        std::fs::write(&p, content).unwrap();
        p.display().to_string()
    }
}

impl Lab {
    /// The switch daemon's control socket: `ovs-vswitchd.PID.ctl` through its pidfile, else
    /// `xvswitchd.ctl`.
    pub fn ctl(&self) -> PathBuf {
        match std::fs::read_to_string(self.rundir.join("ovs-vswitchd.pid")) {
            Ok(pid) => self.rundir.join(format!("ovs-vswitchd.{}.ctl", pid.trim())),
            Err(_) => self.rundir.join("xvswitchd.ctl"),
        }
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        let Some(ns) = &self.ns else {
            let _ = std::fs::remove_dir_all(&self.dir);
            return;
        };
        for name in ["ovs-vswitchd", "ovsdb-server"] {
            let pidfile = self.dir.join(format!("run/{name}.pid"));
            if let Ok(p) = std::fs::read_to_string(&pidfile) {
                if let Ok(pid) = p.trim().parse::<i32>() {
                    // SAFETY: signalling a pid we started.
                    unsafe {
                        libc::kill(pid, libc::SIGTERM);
                    }
                    let t = Instant::now();
                    while t.elapsed() < Duration::from_secs(3)
                        && Path::new(&format!("/proc/{pid}")).exists()
                    {
                        std::thread::sleep(Duration::from_millis(20));
                    }
                    if Path::new(&format!("/proc/{pid}")).exists() {
                        // SAFETY: as above.
                        unsafe {
                            libc::kill(pid, libc::SIGKILL);
                        }
                    }
                }
            }
        }
        let _ = Command::new("ip")
            .args(["netns", "del", ns])
            .stderr(Stdio::null())
            .status();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A background process; killed (by its own pid) when dropped.
pub struct Bg {
    child: std::process::Child,
    path: PathBuf,
}

impl Bg {
    /// Everything the process has printed so far.
    pub fn output(&self) -> String {
        std::fs::read_to_string(&self.path).unwrap_or_default()
    }

    /// Waits until the output contains `needle` (or the timeout passes); returns the output.
    pub fn wait_for(&self, needle: &str, timeout: Duration) -> String {
        let t = Instant::now();
        loop {
            let o = self.output();
            if o.contains(needle) || t.elapsed() > timeout {
                return o;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stops the process and returns its whole output.
    pub fn stop(mut self) -> String {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.output()
    }
}

impl Drop for Bg {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One command's result.
#[derive(Debug, Clone)]
pub struct Run {
    pub stdout: String,
    pub stderr: String,
    pub code: i32,
}

impl Run {
    /// stdout and stderr together, normalised for comparison.
    pub fn text(&self) -> String {
        normalize(&format!("{}{}", self.stdout, self.stderr))
    }
}

/// Removes what legitimately differs between two runs: durations, ages, transaction IDs,
/// recirculation IDs, the program name.
///
/// OVS's own log lines (`2024-01-01T00:00:00Z|00001|module|INFO|...`, e.g. the
/// deprecation notices ovs-ofctl logs while decoding old actions) are dropped too.
pub fn normalize(s: &str) -> String {
    let s: String = s
        .split_inclusive('\n')
        .filter(|l| !is_vlog_line(l))
        .collect();
    let s = s.replace("xvs-ofctl:", "ovs-ofctl:");
    let mut out = String::with_capacity(s.len());
    let b = s.as_bytes();
    let mut i = 0;
    let keys: &[(&str, &[u8])] = &[
        ("duration=", b"0123456789."),
        ("duration", b"0123456789."),
        ("idle_age=", b"0123456789"),
        ("hard_age=", b"0123456789"),
        ("xid=0x", b"0123456789abcdef"),
        // Recirculation IDs allocated by ofproto/trace.
        ("recirc(0x", b"0123456789abcdef"),
        ("recirc_id=0x", b"0123456789abcdef"),
    ];
    'outer: while i < b.len() {
        for (k, chars) in keys {
            if s[i..].starts_with(k) {
                let start = i + k.len();
                let mut j = start;
                while j < b.len() && chars.contains(&b[j]) {
                    j += 1;
                }
                if j > start {
                    out.push_str(k);
                    out.push('X');
                    i = j;
                    continue 'outer;
                }
            }
        }
        let ch = s[i..].chars().next().unwrap_or(' ');
        out.push(ch);
        i += ch.len_utf8();
    }
    out
}

fn is_vlog_line(l: &str) -> bool {
    let b = l.as_bytes();
    b.len() > 21
        && b[..4].iter().all(u8::is_ascii_digit)
        && b[4] == b'-'
        && b[10] == b'T'
        && b[19] == b'Z'
        && b[20] == b'|'
}

/// A readable diff of two texts (first differing lines).
pub fn diff(a: &str, b: &str) -> String {
    let al: Vec<&str> = a.lines().collect();
    let bl: Vec<&str> = b.lines().collect();
    let mut out = String::new();
    for i in 0..al.len().max(bl.len()) {
        let x = al.get(i).copied().unwrap_or("<none>");
        let y = bl.get(i).copied().unwrap_or("<none>");
        if x != y {
            out.push_str(&format!(
                "line {}:\n  ovs-ofctl: {x}\n  xvs-ofctl: {y}\n",
                i + 1
            ));
            if out.len() > 2000 {
                break;
            }
        }
    }
    out
}
