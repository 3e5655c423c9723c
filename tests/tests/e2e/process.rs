//! The ovs-vswitchd command line: `--detach`, pid files, `--unixctl`, `--log-file`, `-v`
//! settings, OVS_RUNDIR defaults and the drop-in (OVSDB) mode, as init scripts, `ovs-ctl` and
//! the OVN lab start the switch daemon.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use xvs_tests::daemon::{ovs_appctl, xvs_appctl};
use xvs_tests::{bin, process_alive, run_timeout, signal, stats, wait_for, wait_until};
use xvs_tests::{Lab, Netns, TempDir, WAIT};

/// A daemon started with `--detach`: not our child, so found through its pid file, and on drop
/// stopped (SIGTERM, then SIGKILL) by pid; its log file is printed when the test fails.
struct Detached {
    pid: i32,
    log: PathBuf,
}

impl Detached {
    /// Reads the pid file of a daemon whose `--detach` command has returned 0.
    fn from_pidfile(pidfile: &Path, log: &Path) -> Detached {
        let text = std::fs::read_to_string(pidfile)
            .unwrap_or_else(|e| panic!("{} after --detach returned: {e}", pidfile.display()));
        let pid: i32 = text
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("pid file {} holds {text:?}", pidfile.display()));
        Detached {
            pid,
            log: log.to_path_buf(),
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGTERM, then waits until the process is gone.
    fn terminate(&self) {
        signal(self.pid, libc::SIGTERM);
        wait_until("the detached daemon to exit on SIGTERM", WAIT, || {
            !process_alive(self.pid)
        });
    }
}

impl Drop for Detached {
    fn drop(&mut self) {
        if process_alive(self.pid) {
            signal(self.pid, libc::SIGTERM);
            for _ in 0..200 {
                if !process_alive(self.pid) {
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            if process_alive(self.pid) {
                signal(self.pid, libc::SIGKILL);
            }
        }
        if std::thread::panicking() {
            eprintln!(
                "----- xvswitchd log file {} -----\n{}----- end -----",
                self.log.display(),
                self.log()
            );
        }
    }
}

/// Runs `xvswitchd ARGS` in `ns` with OVS_RUNDIR and OVS_LOGDIR set to `dir`, to completion
/// (with `--detach`: until the parent returns).
fn run_detach(ns: &Netns, dir: &Path, args: &[&str]) -> Output {
    let exe = bin("xvswitchd");
    let mut c = ns.cmd(exe.to_str().expect("utf-8 path"));
    c.env("OVS_RUNDIR", dir).env("OVS_LOGDIR", dir).args(args);
    run_timeout(&mut c, Duration::from_secs(30))
}

fn expect_success(o: &Output, what: &str) {
    assert_eq!(
        o.status.code(),
        Some(0),
        "{what}: exit status {}; stdout {}; stderr {}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
}

fn ok_text(o: &Output, what: &str) -> String {
    expect_success(o, what);
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Proves: `xvswitchd --bridge ... --detach --no-chdir -vconsole:off -vsyslog:off --pidfile=P
/// --log-file=L --unixctl=S` returns 0 once the switch is up (the shape init scripts need),
/// leaving a daemon whose pid file holds its live pid; `ovs-appctl -t S` and `xvs-appctl -t S`
/// answer; traffic crosses the bridge; the log went to the file; SIGTERM removes the pid file
/// and the socket.
#[test]
fn detach_with_ovs_style_options() {
    let lab = Lab::new(2);
    let (a, b) = (&lab.hosts[0], &lab.hosts[1]);
    let dir = TempDir::new();
    let d = dir.path();
    let (pidfile, log, ctl) = (d.join("sw.pid"), d.join("sw.log"), d.join("sw.ctl"));
    let (p, l, s) = (
        format!("--pidfile={}", pidfile.display()),
        format!("--log-file={}", log.display()),
        format!("--unixctl={}", ctl.display()),
    );
    let r = d.to_str().expect("utf-8");
    let out = run_detach(
        &lab.sw,
        d,
        &[
            "--rundir",
            r,
            "--bridge",
            "br0",
            "--port",
            &a.port,
            "--port",
            &b.port,
            "--pmd-idle",
            "sleep",
            "--detach",
            "--no-chdir",
            "-vconsole:off",
            "-vsyslog:off",
            &p,
            &l,
            &s,
        ],
    );
    expect_success(&out, "xvswitchd --detach");
    let daemon = Detached::from_pidfile(&pidfile, &log);
    assert!(
        process_alive(daemon.pid),
        "pid {} from the pid file is not running",
        daemon.pid
    );
    assert!(ctl.exists(), "--detach returned before the control socket");
    let v = ok_text(&ovs_appctl(&ctl, &["version"]), "ovs-appctl version");
    assert!(v.contains("xvswitchd"), "{v}");
    ok_text(&xvs_appctl(&ctl, &["version"]), "xvs-appctl version");
    wait_for("every PMD to fill its fill rings", WAIT, || {
        let text = ok_text(&xvs_appctl(&ctl, &["pmd/stats"]), "pmd/stats");
        let u = stats::parse_umem(&text);
        if !u.is_empty() && u.iter().all(|u| u.fill > 0) {
            Ok(())
        } else {
            Err(text)
        }
    });
    a.ns.assert_ping(b.ip, 3);
    b.ns.assert_ping(a.ip, 3);
    let text = daemon.log();
    assert!(
        text.contains("xvswitchd ready"),
        "the log file should have the start-up log: {text:?}"
    );
    assert!(
        out.stderr.is_empty(),
        "-vconsole:off: nothing on stderr, got {}",
        String::from_utf8_lossy(&out.stderr)
    );
    daemon.terminate();
    assert!(!pidfile.exists(), "SIGTERM should remove the pid file");
    assert!(!ctl.exists(), "SIGTERM should remove the control socket");
    assert!(daemon.log().contains("xvswitchd stopped"));
}

/// Proves: in drop-in mode with OVS's default names (no --unixctl, bare --pidfile and
/// --log-file under OVS_RUNDIR/OVS_LOGDIR), plain `ovs-appctl -t ovs-vswitchd` (and
/// `xvs-appctl -t ovs-vswitchd`) finds the daemon through its (locked) pid file; a database nobody serves does not stop it: it warns,
/// runs with no bridges, answers (`vlog/set`, `vlog/list`, `vlog/reopen` included), refuses a
/// second daemon on its pid file, and stops cleanly.
#[test]
fn ovsdb_mode_default_names_found_by_ovs_appctl() {
    let ns = Netns::new("d");
    let dir = TempDir::new();
    let d = dir.path();
    let db = format!("unix:{}", d.join("nosuch-db.sock").display());
    let out = run_detach(
        &ns,
        d,
        &[
            &db,
            "--pidfile",
            "--log-file",
            "--detach",
            "--no-chdir",
            "-vconsole:off",
            "--pmd-idle",
            "sleep",
        ],
    );
    expect_success(&out, "xvswitchd unix:... --detach");
    let pidfile = d.join("ovs-vswitchd.pid");
    let daemon = Detached::from_pidfile(&pidfile, &d.join("ovs-vswitchd.log"));
    let ctl = d.join(format!("ovs-vswitchd.{}.ctl", daemon.pid));
    assert!(ctl.exists(), "no control socket {}", ctl.display());
    let appctl = |args: &[&str]| {
        run_timeout(
            Command::new("ovs-appctl")
                .env("OVS_RUNDIR", d)
                .args(["-t", "ovs-vswitchd"])
                .args(args),
            WAIT,
        )
    };
    let v = ok_text(&appctl(&["version"]), "ovs-appctl -t ovs-vswitchd version");
    assert!(v.contains("xvswitchd"), "{v}");
    // the project's own client resolves the daemon name the same way
    let x = run_timeout(
        Command::new(bin("xvs-appctl")).env("OVS_RUNDIR", d).args([
            "-t",
            "ovs-vswitchd",
            "version",
        ]),
        WAIT,
    );
    ok_text(&x, "xvs-appctl -t ovs-vswitchd version");
    let show = ok_text(&appctl(&["dpif/show"]), "dpif/show");
    assert_eq!(show.lines().count(), 1, "no bridges expected: {show}");
    // the log levels are live: vlog/set changes what vlog/list shows
    ok_text(&appctl(&["vlog/set", "pmd:file:dbg"]), "vlog/set");
    let list = ok_text(&appctl(&["vlog/list"]), "vlog/list");
    assert!(
        list.lines()
            .any(|l| l.starts_with("pmd ") && l.trim_end().ends_with("DBG")),
        "{list}"
    );
    let log = daemon.log();
    assert!(
        log.contains("cannot connect to the database") && log.contains("nosuch-db.sock"),
        "the log should warn about the database: {log}"
    );
    assert!(process_alive(daemon.pid), "the daemon should keep running");
    // a second daemon on the same pid file is refused while the first runs
    let second = run_detach(
        &ns,
        d,
        &[&db, "--pidfile", "--detach", "--pmd-idle", "sleep"],
    );
    let err = String::from_utf8_lossy(&second.stderr);
    assert!(
        matches!(second.status.code(), Some(c) if c != 0) && err.contains("already running"),
        "a second daemon should be refused: {} {err}",
        second.status
    );
    assert_eq!(
        std::fs::read_to_string(&pidfile).expect("pid file").trim(),
        daemon.pid.to_string(),
        "the refused daemon must not touch the pid file"
    );
    // logrotate's way: move the file, `vlog/reopen`; later lines go to a new file
    let rotated = d.join("ovs-vswitchd.log.1");
    std::fs::rename(&daemon.log, &rotated).expect("rotate the log");
    ok_text(&appctl(&["vlog/reopen"]), "vlog/reopen");
    ok_text(
        &appctl(&["vlog/disable-rate-limit"]),
        "vlog/disable-rate-limit",
    );
    daemon.terminate();
    assert!(!pidfile.exists() && !ctl.exists());
    let new = daemon.log();
    assert!(
        new.contains("xvswitchd stopped")
            && !new.contains("bridges and ports come from the database"),
        "after vlog/reopen the new file should have the later lines only: {new}"
    );
}

/// Proves: with `--detach`, a start-up failure (a port that does not exist) makes the command
/// exit non-zero with the port's error on stderr, and leaves no pid file, socket or process.
#[test]
fn detach_failure_reports_the_error() {
    let lab = Lab::new(1);
    let dir = TempDir::new();
    let d = dir.path();
    let run = d.join("run");
    std::fs::create_dir_all(&run).expect("mkdir");
    let pidfile = run.join("sw.pid");
    let missing = xvs_tests::unique("nx");
    let p = format!("--pidfile={}", pidfile.display());
    let l = format!("--log-file={}", d.join("sw.log").display());
    let out = run_detach(
        &lab.sw,
        &run,
        &[
            "--rundir",
            run.to_str().expect("utf-8"),
            "--bridge",
            "br0",
            "--port",
            &lab.hosts[0].port,
            "--port",
            &missing,
            "--pmd-idle",
            "sleep",
            "--detach",
            "-vconsole:off",
            &p,
            &l,
        ],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        matches!(out.status.code(), Some(c) if c != 0),
        "should fail with an exit status, got {}; stderr {err}",
        out.status
    );
    assert!(err.contains(&missing), "stderr should name the port: {err}");
    let left: Vec<_> = std::fs::read_dir(&run)
        .expect("read run dir")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name())
        .collect();
    assert!(left.is_empty(), "the failed start left {left:?}");
    let pattern = format!("--port {missing}");
    wait_until("the failed detached process to be gone", WAIT, || {
        let o = run_timeout(Command::new("pgrep").args(["-f", "--", &pattern]), WAIT);
        o.stdout.is_empty()
    });
}

/// Proves: ovs-vswitchd options xvswitchd does not implement (`--disable-system`,
/// `--monitor`, `--user`, SSL files, `--dpdk`) are accepted: the daemon starts and says in its
/// log that it ignores each of them.
#[test]
fn unknown_ovs_options_are_accepted_with_warnings() {
    let ns = Netns::new("d");
    let dir = TempDir::new();
    let d = dir.path();
    let pidfile = d.join("ovs-vswitchd.pid");
    let log = d.join("ovs-vswitchd.log");
    let db = format!("unix:{}", d.join("db.sock").display());
    let u = format!("--unixctl={}", d.join("x.ctl").display());
    let out = run_detach(
        &ns,
        d,
        &[
            &db,
            "--disable-system",
            "--monitor",
            "--user",
            "root",
            "--private-key=db:Open_vSwitch,SSL,private_key",
            "--dpdk",
            "--pidfile",
            "--log-file",
            &u,
            "--detach",
            "--no-chdir",
            "-vconsole:off",
            "-vsyslog:off",
            "--pmd-idle",
            "sleep",
        ],
    );
    expect_success(&out, "xvswitchd with unimplemented OVS options");
    let daemon = Detached::from_pidfile(&pidfile, &log);
    let text = daemon.log();
    for opt in [
        "--disable-system",
        "--monitor",
        "--user",
        "--private-key",
        "--dpdk",
    ] {
        assert!(
            text.lines()
                .any(|l| l.contains("WARN") && l.contains(opt) && l.contains("ignored")),
            "no warning about {opt} in the log:\n{text}"
        );
    }
    ok_text(
        &ovs_appctl(&d.join("x.ctl"), &["version"]),
        "ovs-appctl version",
    );
    daemon.terminate();
}
