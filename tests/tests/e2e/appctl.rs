//! The control socket with real clients: Open vSwitch's own `ovs-appctl` (unchanged upstream
//! tool) and the project's `xvs-appctl`.

use std::path::Path;
use std::process::Output;

use xvs_tests::daemon::{ovs_appctl, xvs_appctl};
use xvs_tests::{pkt, Daemon, Lab};

/// A control client: runs it with `-t SOCKET ARGS...`.
type Client = fn(&Path, &[&str]) -> Output;

fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// Runs `args` through `client`, expecting success; returns stdout.
fn ok(client: Client, name: &str, ctl: &Path, args: &[&str]) -> String {
    let o = client(ctl, args);
    let (out, err) = text(&o);
    assert!(
        o.status.success(),
        "{name} {args:?} failed ({}): {out}{err}",
        o.status
    );
    out
}

/// Runs `args` through `client`, expecting the server's refusal: exit status 2 and `want` in
/// the error text.
fn refused(client: Client, name: &str, ctl: &Path, args: &[&str], want: &str) {
    let o = client(ctl, args);
    let (out, err) = text(&o);
    assert_eq!(
        o.status.code(),
        Some(2),
        "{name} {args:?} should exit 2: stdout {out:?} stderr {err:?}"
    );
    assert!(
        err.contains(want) || out.contains(want),
        "{name} {args:?}: expected {want:?} in stdout {out:?} / stderr {err:?}"
    );
}

/// Proves: the unchanged `ovs-appctl -t SOCKET` and `xvs-appctl -t SOCKET` both run version,
/// list-commands, dpif/show, fdb/show br0, coverage/show and pmd/stats against xvswitchd with
/// the expected content, and both report an unknown command (or bad arguments) with exit
/// status 2 and the server's error text. Both clients print the same text for the same
/// (stable) command.
#[test]
fn ovs_appctl_and_xvs_appctl_run_the_commands() {
    let lab = Lab::new(2);
    let (a, b) = (&lab.hosts[0], &lab.hosts[1]);
    let d = Daemon::start(&lab.sw, &lab.daemon_args());
    a.ns.assert_ping(b.ip, 1);
    let ctl = d.ctl.clone();
    let clients: [(&str, Client); 2] = [("ovs-appctl", ovs_appctl), ("xvs-appctl", xvs_appctl)];
    let mut versions = Vec::new();
    let mut lists = Vec::new();
    for (name, c) in clients {
        let v = ok(c, name, &ctl, &["version"]);
        assert!(v.contains("xvswitchd"), "{name} version: {v}");
        versions.push(v);
        let l = ok(c, name, &ctl, &["list-commands"]);
        for cmd in [
            "version",
            "exit",
            "dpif/show",
            "fdb/show",
            "fdb/flush",
            "coverage/show",
            "pmd/stats",
            "pmd/stats-clear",
        ] {
            assert!(
                l.lines().any(|x| x.split_whitespace().next() == Some(cmd)),
                "{name} list-commands lacks {cmd}: {l}"
            );
        }
        lists.push(l);
        let s = ok(c, name, &ctl, &["dpif/show"]);
        assert!(
            s.contains("br0") && s.contains(&a.port) && s.contains(&b.port),
            "{name} dpif/show: {s}"
        );
        let f = ok(c, name, &ctl, &["fdb/show", "br0"]);
        for h in [a, b] {
            assert!(
                f.contains(&pkt::mac_str(&h.mac)),
                "{name} fdb/show br0 lacks {}: {f}",
                pkt::mac_str(&h.mac)
            );
        }
        let cov = ok(c, name, &ctl, &["coverage/show"]);
        assert!(
            cov.contains("upcall") && cov.contains("total:"),
            "{name} coverage/show: {cov}"
        );
        // the standalone bridge's one flow (NORMAL), its two ports, the ping's datapath flows
        let m = ok(c, name, &ctl, &["memory/show"]);
        let field = |k: &str| -> Option<u64> {
            m.split_whitespace()
                .find_map(|w| w.strip_prefix(k))
                .and_then(|v| v.parse().ok())
        };
        assert_eq!(field("rules:"), Some(1), "{name} memory/show: {m}");
        assert!(
            field("ports:").is_some_and(|p| p >= 2),
            "{name} memory/show: {m}"
        );
        assert!(
            field("resident:").is_some_and(|r| r > 0),
            "{name} memory/show: {m}"
        );
        let p = ok(c, name, &ctl, &["pmd/stats"]);
        assert!(
            p.contains("packets received") && p.contains("umem frames"),
            "{name} pmd/stats: {p}"
        );
        refused(
            c,
            name,
            &ctl,
            &["no-such/command"],
            "\"no-such/command\" is not a valid command",
        );
        refused(c, name, &ctl, &["fdb/show"], "requires at least 1 argument");
        refused(c, name, &ctl, &["fdb/show", "br-nope"], "no such bridge");
    }
    assert_eq!(
        versions[0], versions[1],
        "version differs between the clients"
    );
    assert_eq!(
        lists[0], lists[1],
        "list-commands differs between the clients"
    );
    // the daemon is still fine after all that
    a.ns.assert_ping(b.ip, 1);
}
