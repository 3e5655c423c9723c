//! A private, real Open vSwitch (`ovsdb-server` + `ovs-vswitchd` from the distribution) to
//! compare xvswitchd with: its own database and run directory, `ovs-vswitchd` inside a test
//! namespace, one bridge `br0` (userspace `netdev` datapath, `fail_mode=secure`, datapath ID
//! one) whose ports are given interfaces of that namespace with OpenFlow numbers 1, 2, ...
//! in order, as xvswitchd numbers its `--port`s. Both daemons run as children of the test (not
//! detached) and are stopped on drop, also when the test panics.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::netns::Netns;
use crate::{run_timeout, wait_for, ChildGuard, TempDir, WAIT};

/// Why a real Open vSwitch cannot be started here, if so.
pub fn unavailable() -> Option<String> {
    for b in [
        "ovsdb-server",
        "ovsdb-tool",
        "ovs-vswitchd",
        "ovs-vsctl",
        "ovs-ofctl",
    ] {
        let found = Command::new("sh")
            .arg("-c")
            .arg(format!("command -v {b}"))
            .stdout(Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        if !found {
            return Some(format!("{b} is not installed (openvswitch-switch)"));
        }
    }
    if !Path::new(SCHEMA).exists() {
        return Some(format!("{SCHEMA} not found"));
    }
    None
}

const SCHEMA: &str = "/usr/share/openvswitch/vswitch.ovsschema";

/// A running private Open vSwitch.
pub struct OvsSwitch {
    // dropped in this order: the switch, then the database, then the directory
    vswitchd: ChildGuard,
    _ovsdb: ChildGuard,
    dir: TempDir,
    /// `OVS_RUNDIR` of this switch (holds `br0.mgmt`).
    pub rundir: PathBuf,
}

impl OvsSwitch {
    /// Starts the database and the switch (in `ns`) and creates `br0` with `ports`.
    pub fn start(ns: &Netns, ports: &[String]) -> OvsSwitch {
        if let Some(why) = unavailable() {
            panic!("cannot start a real Open vSwitch: {why}");
        }
        let dir = TempDir::new();
        let d = dir.path().to_path_buf();
        for sub in ["run", "db", "log", "etc"] {
            std::fs::create_dir_all(d.join(sub)).expect("mkdir");
        }
        let rundir = d.join("run");
        let db = d.join("db/conf.db");
        let env = envs(&d);
        let out = run_timeout(
            Command::new("ovsdb-tool")
                .arg("create")
                .arg(&db)
                .arg(SCHEMA),
            WAIT,
        );
        assert!(out.status.success(), "ovsdb-tool create: {out:?}");
        let sock = rundir.join("db.sock");
        let ovsdb = ChildGuard::spawn(
            Command::new("ovsdb-server")
                .envs(env.clone())
                .args(["--no-chdir", "-vconsole:off", "-vsyslog:off"])
                .arg(format!(
                    "--log-file={}",
                    d.join("log/ovsdb-server.log").display()
                ))
                .arg(format!(
                    "--unixctl={}",
                    rundir.join("ovsdb-server.ctl").display()
                ))
                .arg(format!("--remote=punix:{}", sock.display()))
                .arg(&db)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null()),
            "ovsdb-server",
        );
        let vsctl = |args: &[&str]| -> Result<(), String> {
            let out = run_timeout(
                Command::new("ovs-vsctl")
                    .envs(env.clone())
                    .arg(format!("--db=unix:{}", sock.display()))
                    .arg("--timeout=20")
                    .args(args),
                WAIT,
            );
            if out.status.success() {
                Ok(())
            } else {
                Err(format!(
                    "ovs-vsctl {args:?}: {}",
                    String::from_utf8_lossy(&out.stderr)
                ))
            }
        };
        wait_for("ovsdb-server to answer", WAIT, || {
            vsctl(&["--no-wait", "init"])
        });
        // `ip netns exec` execs the switch: the child's pid is ovs-vswitchd's
        let vswitchd = ChildGuard::spawn(
            ns.cmd("ovs-vswitchd")
                .envs(env.clone())
                .arg(format!("unix:{}", sock.display()))
                .args(["--no-chdir", "-vconsole:off", "-vsyslog:off"])
                .arg(format!(
                    "--log-file={}",
                    d.join("log/ovs-vswitchd.log").display()
                ))
                .arg(format!(
                    "--pidfile={}",
                    rundir.join("ovs-vswitchd.pid").display()
                ))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null()),
            "ovs-vswitchd",
        );
        let sw = OvsSwitch {
            vswitchd,
            _ovsdb: ovsdb,
            dir,
            rundir,
        };
        sw.vsctl(&[
            "add-br",
            "br0",
            "--",
            "set",
            "bridge",
            "br0",
            "datapath_type=netdev",
            "fail_mode=secure",
            "other_config:datapath-id=0000000000000001",
        ]);
        for (i, p) in ports.iter().enumerate() {
            sw.vsctl(&[
                "add-port",
                "br0",
                p,
                "--",
                "set",
                "interface",
                p,
                &format!("ofport_request={}", i + 1),
            ]);
        }
        let mgmt = sw.rundir.join("br0.mgmt");
        wait_for("br0.mgmt of the real ovs-vswitchd", WAIT, || {
            if mgmt.exists() {
                Ok(())
            } else {
                Err(sw.log())
            }
        });
        sw
    }

    /// Runs `ovs-vsctl ARGS` against this switch's database, panicking on failure.
    pub fn vsctl(&self, args: &[&str]) {
        let d = self.dir.path();
        let out = run_timeout(
            Command::new("ovs-vsctl")
                .envs(envs(d))
                .arg(format!(
                    "--db=unix:{}",
                    self.rundir.join("db.sock").display()
                ))
                .arg("--timeout=20")
                .args(args),
            WAIT,
        );
        assert!(
            out.status.success(),
            "ovs-vsctl {args:?}: {}{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            self.log()
        );
    }

    /// The switch's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("log/ovs-vswitchd.log")).unwrap_or_default()
    }

    /// The control socket (`RUNDIR/ovs-vswitchd.PID.ctl`).
    pub fn ctl(&self) -> PathBuf {
        self.rundir.join(format!("ovs-vswitchd.{}.ctl", self.pid()))
    }

    /// Process id of ovs-vswitchd.
    pub fn pid(&self) -> i32 {
        self.vswitchd.pid()
    }
}

impl Drop for OvsSwitch {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "----- ovs-vswitchd log -----\n{}----- end of ovs-vswitchd log -----",
                self.log()
            );
        }
    }
}

fn envs(d: &Path) -> Vec<(String, String)> {
    vec![
        ("OVS_RUNDIR".into(), d.join("run").display().to_string()),
        ("OVS_DBDIR".into(), d.join("db").display().to_string()),
        ("OVS_LOGDIR".into(), d.join("log").display().to_string()),
        ("OVS_SYSCONFDIR".into(), d.join("etc").display().to_string()),
    ]
}
