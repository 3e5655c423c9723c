//! A private OVS instance (Debian's openvswitch-switch binaries): its own ovsdb-server and
//! ovs-vswitchd with OVS_RUNDIR/OVS_DBDIR/OVS_LOGDIR/OVS_SYSCONFDIR under a scratch directory, so
//! it never touches a system OVS. Both daemons run in the foreground as our children with a
//! parent-death signal (a killed scenario leaves no busy-polling PMD behind); ovs-vswitchd runs
//! inside the switch's namespace with a private bpffs mount for libxdp. The bridge is
//! `datapath_type=netdev` with `type=afxdp` ports and one OpenFlow rule
//! `in_port=1,actions=output:2`; PMDs are placed with `other_config:pmd-cpu-mask`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::bail;
use crate::util::{self, Result};

pub struct OvsOpts<'a> {
    /// Namespace to run ovs-vswitchd in (`None`: the current one).
    pub ns: Option<&'a str>,
    pub pmd_cpus: &'a [usize],
    /// (interface, OpenFlow port number)
    pub ports: Vec<(String, u32)>,
    /// `options:xdp-mode` to ask for first.
    pub xdp_mode: String,
    /// If the first mode fails, retry the port with xdp-mode=best-effort.
    pub fallback_best_effort: bool,
    /// `options:n_rxq` (None: OVS's default of 1).
    pub n_rxq: Option<u32>,
    pub flows: Vec<String>,
    /// `fail_mode=secure` on the bridge (no NORMAL flow at start, none when flows are deleted).
    pub fail_secure: bool,
    /// Extra `Open_vSwitch . other_config:KEY=VALUE` settings, applied before ovs-vswitchd starts.
    pub other_config: Vec<String>,
}

pub struct Ovs {
    dir: PathBuf,
    ovsdb: Option<Child>,
    vswitchd: Option<Child>,
    pub bridge: String,
    /// What happened on the way (mode fallbacks etc.), for the record.
    pub notes: Vec<String>,
    /// The xdp-mode each port ended up with.
    pub modes: Vec<(String, String)>,
}

pub const BRIDGE: &str = "xpbr";

impl Ovs {
    fn envs(&self, c: &mut Command) {
        envs(&self.dir, c)
    }

    fn db(&self) -> String {
        format!("unix:{}/run/db.sock", self.dir.display())
    }

    pub fn ctl(&self) -> PathBuf {
        self.dir.join("run/ovs-vswitchd.ctl")
    }

    /// The bridge's OpenFlow management socket, as an ovs-ofctl target.
    pub fn mgmt(&self) -> String {
        format!("unix:{}/run/{}.mgmt", self.dir.display(), self.bridge)
    }

    pub fn vsctl(&self, args: &[&str]) -> Result<String> {
        let mut c = Command::new("ovs-vsctl");
        self.envs(&mut c);
        c.arg(format!("--db={}", self.db()))
            .arg("--timeout=30")
            .args(args);
        util::run(&mut c)
    }

    pub fn appctl(&self, args: &[&str]) -> Result<String> {
        let mut c = Command::new("ovs-appctl");
        self.envs(&mut c);
        c.arg("--timeout=10").arg("-t").arg(self.ctl()).args(args);
        util::run(&mut c)
    }

    pub fn ofctl(&self, cmd: &str, args: &[&str]) -> Result<String> {
        let mut c = Command::new("ovs-ofctl");
        self.envs(&mut c);
        c.arg(cmd).arg(self.mgmt()).args(args);
        util::run(&mut c)
    }

    /// Starts ovsdb-server and ovs-vswitchd under `dir`, builds the bridge, its ports and flows.
    pub fn start(dir: &Path, o: &OvsOpts) -> Result<Ovs> {
        for d in ["run", "db", "log", "etc"] {
            std::fs::create_dir_all(dir.join(d))
                .map_err(|e| format!("mkdir {}/{d}: {e}", dir.display()))?;
        }
        let mut ovs = Ovs {
            dir: dir.to_path_buf(),
            ovsdb: None,
            vswitchd: None,
            bridge: BRIDGE.to_string(),
            notes: Vec::new(),
            modes: Vec::new(),
        };
        let d = dir.display().to_string();
        let _ = std::fs::remove_file(dir.join("db/conf.db"));
        let schema = ["/usr/share/openvswitch/vswitch.ovsschema"]
            .into_iter()
            .find(|p| Path::new(p).exists())
            .ok_or("OVS schema /usr/share/openvswitch/vswitch.ovsschema not found (is openvswitch-switch installed?)")?;
        util::run(Command::new("ovsdb-tool").args(["create", &format!("{d}/db/conf.db"), schema]))?;

        // ovsdb-server, foreground, dies with us
        let log = std::fs::File::create(dir.join("log/ovsdb-server.out"))
            .map_err(|e| format!("log file: {e}"))?;
        let mut c = Command::new("ovsdb-server");
        ovs.envs(&mut c);
        c.arg(format!("{d}/db/conf.db"))
            .arg(format!("--remote=punix:{d}/run/db.sock"))
            .arg(format!("--pidfile={d}/run/ovsdb-server.pid"))
            .arg(format!("--unixctl={d}/run/ovsdb-server.ctl"))
            .arg(format!("--log-file={d}/log/ovsdb-server.log"))
            .args(["--no-chdir", "-vconsole:off"])
            .stdin(Stdio::null())
            .stdout(Stdio::from(
                log.try_clone().map_err(|e| format!("log file: {e}"))?,
            ))
            .stderr(Stdio::from(log));
        util::guard_child(&mut c, libc::SIGTERM);
        ovs.ovsdb = Some(
            c.spawn()
                .map_err(|e| format!("cannot start ovsdb-server: {e}"))?,
        );
        let sock = dir.join("run/db.sock");
        let ok = util::wait_for(Duration::from_secs(10), || {
            (sock.exists() && ovs.vsctl(&["--no-wait", "init"]).is_ok()).then_some(())
        })?;
        if ok.is_none() {
            bail!(
                "ovsdb-server did not come up; log:\n{}",
                util::tail(&dir.join("log/ovsdb-server.log"), 10)
            );
        }
        let mask: u64 = o.pmd_cpus.iter().fold(0, |m, c| m | (1u64 << c));
        ovs.vsctl(&[
            "--no-wait",
            "set",
            "Open_vSwitch",
            ".",
            &format!("other_config:pmd-cpu-mask=0x{mask:x}"),
        ])?;
        for kv in &o.other_config {
            ovs.vsctl(&[
                "--no-wait",
                "set",
                "Open_vSwitch",
                ".",
                &format!("other_config:{kv}"),
            ])?;
        }

        // ovs-vswitchd in the switch namespace with a private bpffs (libxdp wants one)
        let script = format!(
            "grep -qs ' /sys/fs/bpf bpf ' /proc/mounts || mount -t bpf bpf /sys/fs/bpf 2>/dev/null; \
             exec ovs-vswitchd unix:{d}/run/db.sock --pidfile={d}/run/ovs-vswitchd.pid \
             --unixctl={d}/run/ovs-vswitchd.ctl --log-file={d}/log/ovs-vswitchd.log \
             --no-chdir -vconsole:off"
        );
        let mut c = match o.ns {
            Some(ns) => {
                let mut c = util::ns_cmd(Some(ns), "sh");
                c.args(["-c", &script]);
                c
            }
            None => {
                let mut c = Command::new("unshare");
                c.args(["-m", "--propagation", "private", "sh", "-c", &script]);
                c
            }
        };
        let log = std::fs::File::create(dir.join("log/ovs-vswitchd.out"))
            .map_err(|e| format!("log file: {e}"))?;
        ovs.envs(&mut c);
        c.stdin(Stdio::null())
            .stdout(Stdio::from(
                log.try_clone().map_err(|e| format!("log file: {e}"))?,
            ))
            .stderr(Stdio::from(log));
        util::guard_child(&mut c, libc::SIGTERM);
        ovs.vswitchd = Some(
            c.spawn()
                .map_err(|e| format!("cannot start ovs-vswitchd: {e}"))?,
        );
        let up = util::wait_for(Duration::from_secs(15), || {
            if let Some(ch) = ovs.vswitchd.as_mut() {
                if let Ok(Some(_)) = ch.try_wait() {
                    return Some(false);
                }
            }
            ovs.appctl(&["version"]).is_ok().then_some(true)
        })?;
        if up != Some(true) {
            bail!(
                "ovs-vswitchd did not come up; log:\n{}\n{}",
                util::tail(&dir.join("log/ovs-vswitchd.log"), 15),
                util::tail(&dir.join("log/ovs-vswitchd.out"), 5)
            );
        }

        let br = ovs.bridge.clone();
        let fail = if o.fail_secure {
            "fail_mode=secure"
        } else {
            "fail_mode=standalone"
        };
        ovs.vsctl(&[
            "add-br",
            &br,
            "--",
            "set",
            "bridge",
            &br,
            "datapath_type=netdev",
            fail,
        ])?;
        for (name, ofport) in &o.ports {
            let mut args: Vec<String> = [
                "add-port",
                &br,
                name,
                "--",
                "set",
                "interface",
                name,
                "type=afxdp",
            ]
            .iter()
            .map(|s| s.to_string())
            .collect();
            args.push(format!("options:xdp-mode={}", o.xdp_mode));
            args.push(format!("ofport_request={ofport}"));
            if let Some(q) = o.n_rxq {
                args.push(format!("options:n_rxq={q}"));
            }
            let a: Vec<&str> = args.iter().map(String::as_str).collect();
            ovs.vsctl(&a)?;
            let mut mode = o.xdp_mode.clone();
            if let Err(e) = ovs.port_ok(name) {
                if o.fallback_best_effort && o.xdp_mode != "best-effort" {
                    ovs.notes.push(format!(
                        "{name}: xdp-mode={} failed ({e}); retried with best-effort",
                        o.xdp_mode
                    ));
                    ovs.vsctl(&["set", "interface", name, "options:xdp-mode=best-effort"])?;
                    mode = "best-effort".into();
                    ovs.port_ok(name).map_err(|e| {
                        format!(
                            "OVS afxdp port {name} does not work: {e}; log:\n{}",
                            util::tail(&dir.join("log/ovs-vswitchd.log"), 15)
                        )
                    })?;
                } else {
                    bail!(
                        "OVS afxdp port {name} (xdp-mode={}) does not work: {e}; log:\n{}",
                        o.xdp_mode,
                        util::tail(&dir.join("log/ovs-vswitchd.log"), 15)
                    );
                }
            }
            ovs.modes.push((name.clone(), mode));
        }
        // the PMD must poll every port before we measure
        let names: Vec<String> = o.ports.iter().map(|p| p.0.clone()).collect();
        let polled = util::wait_for(Duration::from_secs(15), || {
            if names.is_empty() {
                return Some(String::new());
            }
            let s = ovs.appctl(&["dpif-netdev/pmd-rxq-show"]).ok()?;
            names
                .iter()
                .all(|n| s.contains(&format!("port: {n} ")))
                .then_some(s)
        })?;
        if polled.is_none() {
            bail!(
                "OVS PMD does not poll {names:?}: {}",
                ovs.appctl(&["dpif-netdev/pmd-rxq-show"])
                    .unwrap_or_else(|e| e.to_string())
            );
        }
        ovs.ofctl("del-flows", &[])?;
        for f in &o.flows {
            ovs.ofctl("add-flow", &[f])?;
        }
        Ok(ovs)
    }

    /// Waits until the interface has an OpenFlow port and no error.
    fn port_ok(&self, name: &str) -> std::result::Result<(), String> {
        let end = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let err = self
                .vsctl(&["get", "interface", name, "error"])
                .map(|s| s.trim().trim_matches('"').to_string())
                .unwrap_or_default();
            if !err.is_empty() && err != "[]" {
                return Err(err);
            }
            let ofport: i64 = self
                .vsctl(&["get", "interface", name, "ofport"])
                .ok()
                .and_then(|s| s.trim().parse().ok())
                .unwrap_or(-1);
            if ofport > 0 {
                return Ok(());
            }
            if std::time::Instant::now() > end || util::stopped() {
                return Err(format!("no OpenFlow port after 10 s (ofport {ofport})"));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// OpenFlow port counters: tx packets of `ofport`.
    pub fn port_tx(&self, ofport: u32) -> Option<u64> {
        let s = self.ofctl("dump-ports", &[&ofport.to_string()]).ok()?;
        let l = s.lines().find(|l| l.contains("tx pkts="))?;
        let v = l.split("tx pkts=").nth(1)?;
        v.split(|c: char| !c.is_ascii_digit()).next()?.parse().ok()
    }

    /// ovs-vswitchd's own pid, from its pid file (the child we spawned execs into it).
    pub fn daemon_pid(&self) -> Option<i32> {
        util::read_pidfile(&self.dir.join("run/ovs-vswitchd.pid")).or(self.vswitchd_pid())
    }

    pub fn vswitchd_pid(&self) -> Option<i32> {
        self.vswitchd.as_ref().map(|c| c.id() as i32)
    }

    pub fn ovsdb_pid(&self) -> Option<i32> {
        self.ovsdb.as_ref().map(|c| c.id() as i32)
    }

    /// `exit --cleanup` (removes the ports, so their XDP programs go), then SIGTERM/SIGKILL.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.vswitchd.take() {
            if let Ok(None) = c.try_wait() {
                let mut a = Command::new("ovs-appctl");
                self.envs(&mut a);
                let _ = a
                    .arg("--timeout=5")
                    .arg("-t")
                    .arg(self.ctl())
                    .args(["exit", "--cleanup"])
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status();
                if !util::wait_exit(&mut c, Duration::from_secs(5)) {
                    util::stop_child(&mut c, libc::SIGTERM, Duration::from_secs(3));
                }
            }
        }
        if let Some(mut c) = self.ovsdb.take() {
            util::stop_child(&mut c, libc::SIGTERM, Duration::from_secs(3));
        }
    }
}

impl Drop for Ovs {
    fn drop(&mut self) {
        self.stop();
    }
}

fn envs(dir: &Path, c: &mut Command) {
    c.env("OVS_RUNDIR", dir.join("run"))
        .env("OVS_DBDIR", dir.join("db"))
        .env("OVS_LOGDIR", dir.join("log"))
        .env("OVS_SYSCONFDIR", dir.join("etc"));
}

/// `ovs-vswitchd --version`, first line.
pub fn version() -> Option<String> {
    let o = Command::new("ovs-vswitchd")
        .arg("--version")
        .output()
        .ok()?;
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .next()
        .map(str::to_string)
}
