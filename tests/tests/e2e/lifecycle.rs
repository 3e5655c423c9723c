//! The daemon's life cycle: start over leftovers (stale XDP programs, a killed predecessor),
//! clean shutdown, start-up errors.

use std::os::fd::AsRawFd;
use std::time::Duration;

use afxdp::netlink::{self, XdpAttached};
use afxdp::{asm, bpf, sys};
use xvs_tests::daemon::{run_xvswitchd, xvs_appctl};
use xvs_tests::{wait_for, Daemon, Lab, Netns, TempDir, WAIT};

/// The XDP programs attached to `ifname` in `ns`: (id, name).
fn xdp_programs(ns: &Netns, ifname: &str) -> Vec<(u32, String)> {
    let idx = ns.ifindex(ifname);
    let info = ns
        .in_ns(|| netlink::xdp_info(idx))
        .unwrap_or_else(|e| panic!("xdp_info {ifname}: {e}"));
    info.programs()
        .into_iter()
        .map(|(id, _)| {
            let name = bpf::prog_get_fd_by_id(id)
                .and_then(|fd| bpf::prog_name(fd.as_raw_fd()))
                .unwrap_or_else(|e| format!("? ({e})"));
            (id, name)
        })
        .collect()
}

fn assert_no_xdp(ns: &Netns, ifname: &str) {
    let idx = ns.ifindex(ifname);
    let info = ns.in_ns(|| netlink::xdp_info(idx)).expect("xdp_info");
    assert_eq!(
        info.attached,
        XdpAttached::None,
        "an XDP program is still attached to {ifname}: {info:?}"
    );
}

/// Proves: programs left attached the legacy way (as `ip link set xdp` or a crashed libxdp user
/// would leave them), one in SKB mode and one in driver mode, do not stop the daemon: it
/// replaces them with its own, forwards, and leaves nothing behind when it stops.
#[test]
fn stale_legacy_xdp_programs_are_replaced() {
    let lab = Lab::new(2);
    let (a, b) = (&lab.hosts[0], &lab.hosts[1]);
    let (ia, ib) = (lab.sw.ifindex(&a.port), lab.sw.ifindex(&b.port));
    lab.sw.in_ns(|| {
        let prog = bpf::prog_load_xdp(&asm::pass(), "xt_stale").expect("load pass program");
        netlink::attach_legacy(ia, prog.as_raw_fd(), sys::XDP_FLAGS_SKB_MODE)
            .expect("legacy attach (skb)");
        netlink::attach_legacy(ib, prog.as_raw_fd(), sys::XDP_FLAGS_DRV_MODE)
            .expect("legacy attach (drv)");
        // the fd closes here: the attachments alone keep the program alive, as a stale one
    });
    for p in [&a.port, &b.port] {
        let progs = xdp_programs(&lab.sw, p);
        assert!(
            progs.len() == 1 && progs[0].1 == "xt_stale",
            "setup: {p} should carry the stale program: {progs:?}"
        );
    }
    let mut d = Daemon::start(&lab.sw, &lab.daemon_args());
    for p in [&a.port, &b.port] {
        let progs = xdp_programs(&lab.sw, p);
        assert!(
            progs.len() == 1 && progs[0].1 == "xvs_redirect",
            "{p} should carry only the daemon's program now: {progs:?}"
        );
    }
    a.ns.assert_ping(b.ip, 3);
    b.ns.assert_ping(a.ip, 3);
    assert!(
        d.log().contains("replacing XDP program"),
        "the daemon should say it replaced a program:\n{}",
        d.log()
    );
    let st = d.stop().expect("exit status");
    assert!(st.success(), "xvswitchd exited with {st}");
    assert_no_xdp(&lab.sw, &a.port);
    assert_no_xdp(&lab.sw, &b.port);
}

/// Proves: after a daemon is SIGKILLed (no cleanup at all: its control socket file stays), a
/// new daemon on the same ports and run directory starts, takes over the socket path and the
/// ports, and forwards.
#[test]
fn restart_after_sigkill_on_same_ports_and_rundir() {
    let lab = Lab::new(2);
    let (a, b) = (&lab.hosts[0], &lab.hosts[1]);
    let dir = TempDir::new();
    let mut first = Daemon::start_in(&lab.sw, dir.path(), &lab.daemon_args());
    a.ns.assert_ping(b.ip, 1);
    first.kill9();
    assert!(
        dir.path().join("xvswitchd.ctl").exists(),
        "a SIGKILLed daemon cannot have removed its socket"
    );
    let second = Daemon::start_in(&lab.sw, dir.path(), &lab.daemon_args());
    a.ns.assert_ping(b.ip, 3);
    b.ns.assert_ping(a.ip, 3);
    assert!(second.port(&a.port).rx_packets > 0);
    for p in [&a.port, &b.port] {
        let progs = xdp_programs(&lab.sw, p);
        assert!(
            progs.len() == 1 && progs[0].1 == "xvs_redirect",
            "{p}: {progs:?}"
        );
    }
}

enum Stop {
    Sigterm,
    AppctlExit,
}

fn clean_shutdown(how: Stop) {
    let lab = Lab::new(2);
    let (a, b) = (&lab.hosts[0], &lab.hosts[1]);
    let mut d = Daemon::start(&lab.sw, &lab.daemon_args());
    a.ns.assert_ping(b.ip, 1);
    let ctl = d.ctl.clone();
    assert!(ctl.exists());
    match how {
        Stop::Sigterm => d.signal(libc::SIGTERM),
        Stop::AppctlExit => {
            let out = xvs_appctl(&ctl, &["exit"]);
            assert!(
                out.status.success(),
                "xvs-appctl exit: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
    let st = d.wait_exit(WAIT);
    assert_eq!(
        st.code(),
        Some(0),
        "xvswitchd exit status {st}; log:\n{}",
        d.log()
    );
    assert_no_xdp(&lab.sw, &a.port);
    assert_no_xdp(&lab.sw, &b.port);
    assert!(
        !ctl.exists(),
        "the control socket {} is left behind",
        ctl.display()
    );
}

/// Proves: on SIGTERM the daemon exits 0, detaches its XDP programs and removes its socket.
#[test]
fn sigterm_exits_zero_and_leaves_nothing() {
    clean_shutdown(Stop::Sigterm);
}

/// Proves: the same through the control socket's `exit` command (sent by xvs-appctl).
#[test]
fn appctl_exit_exits_zero_and_leaves_nothing() {
    clean_shutdown(Stop::AppctlExit);
}

/// Runs xvswitchd with `args` expecting a start-up failure: non-zero exit (not a signal),
/// stderr containing every string of `expect`; nothing left in `rundir`.
fn expect_failure(ns: &Netns, args: &[&str], expect: &[&str], rundir: &std::path::Path) {
    let out = run_xvswitchd(ns, args, Duration::from_secs(20));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        matches!(out.status.code(), Some(c) if c != 0),
        "xvswitchd {args:?} should fail with an exit status, got {}; stderr: {err}",
        out.status
    );
    for e in expect {
        assert!(
            err.contains(e),
            "xvswitchd {args:?}: stderr should mention {e:?}: {err}"
        );
    }
    let left: Vec<_> = std::fs::read_dir(rundir)
        .map(|d| d.filter_map(|e| e.ok()).map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(
        left.is_empty(),
        "xvswitchd {args:?} failed but left {left:?} in {}",
        rundir.display()
    );
}

/// A lab with one port for the start-up error tests, and a run directory `run` inside `dir`.
fn error_setup() -> (Lab, TempDir, std::path::PathBuf) {
    let lab = Lab::new(1);
    let dir = TempDir::new();
    let run = dir.path().join("run");
    std::fs::create_dir_all(&run).expect("mkdir");
    (lab, dir, run)
}

/// Proves: an unknown flag is refused (exit status != 0, the flag named on stderr), nothing is
/// left behind.
#[test]
fn unknown_flag_is_refused() {
    let (lab, _dir, run) = error_setup();
    let r = run.to_str().expect("utf-8");
    expect_failure(
        &lab.sw,
        &["--rundir", r, "--frobnicate"],
        &["--frobnicate"],
        &run,
    );
}

/// Proves: `--port` before any `--bridge` is refused with a message saying so.
#[test]
fn port_before_bridge_is_refused() {
    let (lab, _dir, run) = error_setup();
    let a = &lab.hosts[0];
    let r = run.to_str().expect("utf-8");
    expect_failure(
        &lab.sw,
        &["--rundir", r, "--port", &a.port, "--bridge", "br0"],
        &["--bridge", &a.port],
        &run,
    );
}

/// Proves: a nonexistent interface is refused naming it, after an existing port was already
/// opened, and the failed start leaves nothing behind: no control socket, no pidfile, no XDP
/// program on the port it had opened.
#[test]
fn nonexistent_interface_is_refused_and_leaves_nothing() {
    let (lab, _dir, run) = error_setup();
    let a = &lab.hosts[0];
    let r = run.to_str().expect("utf-8");
    let pidfile = run.join("xvswitchd.pid");
    expect_failure(
        &lab.sw,
        &[
            "--rundir",
            r,
            "--pidfile",
            pidfile.to_str().expect("utf-8"),
            "--bridge",
            "br0",
            "--port",
            &a.port,
            "--port",
            "xtnosuch0",
            "--pmd-idle",
            "sleep",
        ],
        &["xtnosuch0"],
        &run,
    );
    assert_no_xdp(&lab.sw, &a.port);
}

/// Proves: TOML configuration errors (an unknown key, a bad value) are refused with the file
/// name and line number on stderr, leaving nothing behind; the same file without the mistake
/// starts a daemon with the configured port.
#[test]
fn toml_config_errors_name_file_and_line() {
    let (lab, dir, run) = error_setup();
    let a = &lab.hosts[0];
    let r = run.to_str().expect("utf-8");
    let toml = |name: &str, idle: &str, ports_key: &str| {
        let path = dir.path().join(name);
        std::fs::write(
            &path,
            format!(
                "rundir = \"{r}\"\n[pmd]\nidle = \"{idle}\"\n[[bridge]]\nname = \"br0\"\n\
                 {ports_key} = [\"{}\"]\n",
                a.port
            ),
        )
        .expect("write toml");
        path.to_str().expect("utf-8").to_string()
    };
    let f = toml("unknown.toml", "sleep", "portz");
    expect_failure(
        &lab.sw,
        &["--config", &f],
        &[&format!("{f}:6"), "portz"],
        &run,
    );
    let f = toml("bad.toml", "lazy", "ports");
    expect_failure(
        &lab.sw,
        &["--config", &f],
        &[&format!("{f}:3"), "lazy"],
        &run,
    );
    assert_no_xdp(&lab.sw, &a.port);
    let f = toml("good.toml", "sleep", "ports");
    let d = Daemon::start_in(&lab.sw, &run, &["--config", &f]);
    wait_for("the port from the config file", WAIT, || {
        let ports = d.dpif();
        if ports.iter().any(|p| p.name == a.port && p.ofport == 1) {
            Ok(())
        } else {
            Err(format!("{ports:?}"))
        }
    });
}
