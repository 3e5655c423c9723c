//! The daemon under test: started inside a namespace with `ip netns exec` (so it sees that
//! namespace's /sys), stopped on drop, its log kept and printed when the test fails.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, ExitStatus, Output, Stdio};
use std::time::Duration;

use control::client::ClientError;

use crate::netns::Netns;
use crate::stats::{self, Coverage, DpifPort, FdbEntry, Umem};
use crate::{bin, process_alive, run_timeout, signal, wait_child, wait_for, TempDir, WAIT};

/// A running `xvswitchd`. Dropping it sends SIGTERM, waits up to 10 s, then SIGKILLs; if the
/// test is panicking the daemon's log is printed to stderr.
pub struct Daemon {
    child: Option<Child>,
    /// The run directory (`--rundir`).
    pub rundir: PathBuf,
    /// `rundir/xvswitchd.ctl`.
    pub ctl: PathBuf,
    log: PathBuf,
    /// Set when the daemon made its own temp dir (removed after the daemon is stopped).
    own_dir: Option<TempDir>,
    pub ns: String,
    pub args: Vec<String>,
}

impl Daemon {
    /// Starts `xvswitchd --rundir <fresh temp dir> ARGS` in `ns` and waits until it is ready
    /// (see [`wait_ready`](Self::wait_ready)).
    pub fn start<S: AsRef<str>>(ns: &Netns, args: &[S]) -> Daemon {
        let dir = TempDir::new();
        let mut d = Daemon::spawn_in(ns, dir.path(), args);
        d.own_dir = Some(dir);
        d.wait_ready();
        d
    }

    /// Starts `xvswitchd --rundir <fresh temp dir> --ovsdb REMOTE ARGS` in `ns` and waits
    /// until its control socket answers: its bridges and ports come from the database later.
    pub fn start_ovsdb<S: AsRef<str>>(ns: &Netns, remote: &str, args: &[S]) -> Daemon {
        let dir = TempDir::new();
        // drop-in mode names its socket ovs-vswitchd.PID.ctl unless told otherwise
        let mut all: Vec<String> = vec![
            "--ovsdb".into(),
            remote.to_string(),
            format!("--unixctl={}", dir.path().join("xvswitchd.ctl").display()),
        ];
        all.extend(args.iter().map(|a| a.as_ref().to_string()));
        let mut d = Daemon::spawn_in(ns, dir.path(), &all);
        d.own_dir = Some(dir);
        d.wait_control();
        d
    }

    /// Waits until the control socket answers.
    pub fn wait_control(&mut self) {
        wait_for("xvswitchd's control socket to answer", WAIT, || {
            self.check_alive("starting");
            self.call("version", &[]).map_err(|e| e.to_string())
        });
    }

    /// Starts the daemon with an existing run directory and waits until it is ready.
    pub fn start_in<S: AsRef<str>>(ns: &Netns, rundir: &Path, args: &[S]) -> Daemon {
        let mut d = Daemon::spawn_in(ns, rundir, args);
        d.wait_ready();
        d
    }

    /// Spawns the daemon without waiting for anything. Its stdout and stderr go to
    /// `rundir/xvswitchd.log.<n>`.
    pub fn spawn_in<S: AsRef<str>>(ns: &Netns, rundir: &Path, args: &[S]) -> Daemon {
        let exe = bin("xvswitchd");
        let log = rundir.join(format!("xvswitchd.log.{}", crate::unique("")));
        let f = File::create(&log).unwrap_or_else(|e| panic!("{}: {e}", log.display()));
        let f2 = f.try_clone().expect("dup log fd");
        let args: Vec<String> = args.iter().map(|a| a.as_ref().to_string()).collect();
        let child = ns
            .cmd(exe.to_str().expect("utf-8 path"))
            .arg("--rundir")
            .arg(rundir)
            .args(&args)
            .stdin(Stdio::null())
            .stdout(f)
            .stderr(f2)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", exe.display()));
        Daemon {
            child: Some(child),
            rundir: rundir.to_path_buf(),
            ctl: rundir.join("xvswitchd.ctl"),
            log,
            own_dir: None,
            ns: ns.name().to_string(),
            args,
        }
    }

    /// The OpenFlow management socket of `bridge` (`RUNDIR/BRIDGE.mgmt`).
    pub fn mgmt(&self, bridge: &str) -> PathBuf {
        self.rundir.join(format!("{bridge}.mgmt"))
    }

    /// The process id (the same process `ip netns exec` became).
    pub fn pid(&self) -> i32 {
        self.child.as_ref().map(|c| c.id() as i32).unwrap_or(-1)
    }

    /// The daemon's output so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Panics with the log if the daemon has exited.
    fn check_alive(&mut self, doing: &str) {
        if let Some(c) = self.child.as_mut() {
            if let Ok(Some(st)) = c.try_wait() {
                panic!(
                    "xvswitchd exited ({st}) while {doing}; args {:?}; log:\n{}",
                    self.args,
                    self.log()
                );
            }
        }
    }

    /// Waits until the control socket answers (the daemon answers only once its ports and PMDs
    /// are set up) and every PMD has posted frames to its fill rings (so the first frames sent
    /// are not dropped for want of buffers).
    pub fn wait_ready(&mut self) {
        wait_for("xvswitchd's control socket to answer", WAIT, || {
            self.check_alive("starting");
            self.call("version", &[]).map_err(|e| e.to_string())
        });
        wait_for("every PMD to fill its fill rings", WAIT, || {
            self.check_alive("starting");
            let text = self.call("pmd/stats", &[]).map_err(|e| e.to_string())?;
            let u = stats::parse_umem(&text);
            if !u.is_empty() && u.iter().all(|u| u.fill > 0) {
                Ok(())
            } else {
                Err(text)
            }
        });
    }

    /// One control-socket command through `control::client::call`.
    pub fn call(&self, cmd: &str, args: &[&str]) -> Result<String, ClientError> {
        let params: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        control::client::call(&self.ctl, cmd, &params, Some(Duration::from_secs(10)))
    }

    /// [`call`](Self::call), panicking (with the log) on any error.
    pub fn appctl(&self, cmd: &str, args: &[&str]) -> String {
        self.call(cmd, args)
            .unwrap_or_else(|e| panic!("control command {cmd} {args:?}: {e}; log:\n{}", self.log()))
    }

    pub fn coverage(&self) -> Coverage {
        Coverage::parse(&self.appctl("coverage/show", &[]))
    }

    pub fn umem(&self) -> Vec<Umem> {
        stats::parse_umem(&self.appctl("pmd/stats", &[]))
    }

    pub fn dpif(&self) -> Vec<DpifPort> {
        stats::parse_dpif(&self.appctl("dpif/show", &[]))
    }

    /// The `dpif/show` entry of port `name`.
    pub fn port(&self, name: &str) -> DpifPort {
        let text = self.appctl("dpif/show", &[]);
        stats::parse_dpif(&text)
            .into_iter()
            .find(|p| p.name == name)
            .unwrap_or_else(|| panic!("no port {name} in dpif/show:\n{text}"))
    }

    pub fn fdb(&self, bridge: &str) -> Vec<FdbEntry> {
        stats::parse_fdb(&self.appctl("fdb/show", &[bridge]))
    }

    /// Sends `sig` to the daemon.
    pub fn signal(&self, sig: i32) {
        signal(self.pid(), sig);
    }

    /// Waits for the daemon to exit (after a signal or `exit`) and returns its status; panics
    /// with the log if it is still running after `timeout`.
    pub fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let c = self.child.as_mut().expect("daemon already reaped");
        match wait_child(c, timeout) {
            Some(st) => {
                self.child = None;
                st
            }
            None => panic!(
                "xvswitchd (pid {}) still running {timeout:?} after being told to stop; log:\n{}",
                self.pid(),
                self.log()
            ),
        }
    }

    /// SIGKILLs the daemon and reaps it (what a crash looks like to the next daemon).
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Stops the daemon (SIGTERM, then SIGKILL after 10 s); returns the exit status if it
    /// exited on SIGTERM.
    pub fn stop(&mut self) -> Option<ExitStatus> {
        let mut c = self.child.take()?;
        if let Ok(Some(st)) = c.try_wait() {
            return Some(st);
        }
        signal(c.id() as i32, libc::SIGTERM);
        match wait_child(&mut c, Duration::from_secs(10)) {
            Some(st) => Some(st),
            None => {
                eprintln!(
                    "xvswitchd (pid {}) ignored SIGTERM for 10 s: SIGKILL",
                    c.id()
                );
                let _ = c.kill();
                let _ = c.wait();
                None
            }
        }
    }

    /// Whether the daemon process is still running.
    pub fn alive(&mut self) -> bool {
        match self.child.as_mut() {
            Some(c) => matches!(c.try_wait(), Ok(None)) && process_alive(c.id() as i32),
            None => false,
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.stop();
        if std::thread::panicking() {
            eprintln!(
                "----- xvswitchd log ({}; args {:?}) -----\n{}----- end of xvswitchd log -----",
                self.log.display(),
                self.args,
                self.log()
            );
        }
        let _ = std::fs::remove_file(&self.log);
        // own_dir (if any) is removed when it drops, after this
    }
}

/// Runs `xvswitchd ARGS` in `ns` to completion (for start-up errors), killing it after `timeout`.
pub fn run_xvswitchd<S: AsRef<str>>(ns: &Netns, args: &[S], timeout: Duration) -> Output {
    let exe = bin("xvswitchd");
    let mut c = ns.cmd(exe.to_str().expect("utf-8 path"));
    for a in args {
        c.arg(a.as_ref());
    }
    run_timeout(&mut c, timeout)
}

/// Runs `xvs-appctl -t CTL ARGS` (the project's own client binary).
pub fn xvs_appctl(ctl: &Path, args: &[&str]) -> Output {
    let exe = bin("xvs-appctl");
    run_timeout(
        std::process::Command::new(exe)
            .arg("-t")
            .arg(ctl)
            .args(args),
        WAIT,
    )
}

/// Runs the real `ovs-appctl -t CTL ARGS` from Open vSwitch.
pub fn ovs_appctl(ctl: &Path, args: &[&str]) -> Output {
    run_timeout(
        std::process::Command::new("ovs-appctl")
            .arg("-t")
            .arg(ctl)
            .args(args),
        WAIT,
    )
}
