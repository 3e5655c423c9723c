//! The control socket with real clients: Open vSwitch's own `ovs-appctl` (unchanged upstream
//! tool) and the project's `xvs-appctl`.

use std::path::Path;
use std::process::Output;

use xvs_tests::daemon::{ovs_appctl, xvs_appctl};
use xvs_tests::{pkt, Daemon, Lab, Rng};

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

/// Proves: hostile input on the control socket does not take the switch down. Every command
/// the daemon lists (except `exit` and `dpif/del-port`, which do what they are asked) is called
/// with 0 to 4 arguments drawn from bridge, port, zone, address, flow and option strings, out-
/// of-range numbers, control characters and a 10,000-character string; and raw bytes that are
/// not a JSON-RPC request (garbage, a truncated object, deep nesting, wrong member types, a
/// non-UTF-8 stream) go to the socket. Each call is answered (a result or an error text) on a
/// connection that stays usable, `version` answers after each raw case, the log holds no panic,
/// and the hosts still ping each other through the switch at the end.
#[test]
fn hostile_control_requests_get_answers_not_crashes() {
    use std::io::{Read, Write};
    use std::os::unix::net::UnixStream;
    use std::time::Duration;

    let lab = Lab::new(2);
    let (a, b) = (&lab.hosts[0], &lab.hosts[1]);
    let mut d = Daemon::start(&lab.sw, &lab.daemon_args());
    a.ns.assert_ping(b.ip, 1);
    let commands: Vec<String> = d
        .appctl("list-commands", &[])
        .lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .filter(|c| c != "exit" && c != "dpif/del-port")
        .collect();
    assert!(
        commands.iter().any(|c| c == "ofproto/trace") && commands.len() > 30,
        "{commands:?}"
    );
    let long = "x".repeat(10_000);
    let pool: Vec<&str> = vec![
        "",
        "br0",
        "br1",
        &a.port,
        &b.port,
        "-m",
        "-s",
        "-v",
        "--json",
        "--cleanup",
        "zone=1",
        "zone=-1",
        "zone=99999999999",
        "system@ovs-system",
        "netdev@ovs-netdev",
        "on",
        "off",
        "0",
        "-1",
        "4294967296",
        "18446744073709551616",
        "1.2.3.4",
        "300.1.1.1",
        "fe80::1",
        "aa:bb:cc:dd:ee:ff",
        "zz:zz",
        "in_port=1,dl_src=00:00:00:00:00:01",
        "in_port=99,tcp,tp_dst=80",
        "ip,nw_src=1.2.3.4/33",
        "table=all",
        "a=b=c",
        ",,,",
        "\u{0}\u{7}\n",
        "ñ",
        "{}",
        &long,
    ];
    let mut rng = Rng(0x1234_5678_9abc_def1);
    let mut answered = (0usize, 0usize);
    for round in 0..6 {
        for c in &commands {
            let n = if round == 0 { 0 } else { rng.below(5) };
            let args: Vec<&str> = (0..n).map(|_| pool[rng.below(pool.len())]).collect();
            match d.call(c, &args) {
                Ok(_) => answered.0 += 1,
                Err(control::client::ClientError::Remote(_)) => answered.1 += 1,
                Err(e) => panic!(
                    "{c} {:?}: {e}; log:\n{}",
                    args.iter()
                        .map(|a| &a[..a.len().min(40)])
                        .collect::<Vec<_>>(),
                    d.log()
                ),
            }
        }
    }
    let raw: Vec<Vec<u8>> = vec![
        b"garbage\n".to_vec(),
        b"{\"method\":\"version\",\"params\":[],\"id\":".to_vec(),
        b"{\"method\":7,\"params\":{},\"id\":null}".to_vec(),
        b"{\"method\":\"version\",\"params\":[1,[2],{\"x\":3}],\"id\":[]}".to_vec(),
        b"{\"method\":\"fdb/show\",\"params\":\"br0\",\"id\":1}".to_vec(),
        b"[1,2,3]".to_vec(),
        "[".repeat(100_000).into_bytes(),
        vec![0xff, 0xfe, 0x00, 0x80, 0xc3, 0x28],
        b"}}}}".to_vec(),
    ];
    for r in &raw {
        let mut s = UnixStream::connect(&d.ctl).expect("connect to the control socket");
        s.set_read_timeout(Some(Duration::from_millis(300)))
            .unwrap();
        // the daemon may close the connection on a framing error before reading everything
        let _ = s.write_all(r);
        let _ = s.read(&mut [0u8; 4096]);
        drop(s);
        let v = d.call("version", &[]).unwrap_or_else(|e| {
            panic!(
                "version after raw {:?}: {e}; log:\n{}",
                String::from_utf8_lossy(&r[..r.len().min(40)]),
                d.log()
            )
        });
        assert!(!v.is_empty());
    }
    assert!(d.alive(), "the daemon exited; log:\n{}", d.log());
    let log = d.log();
    assert!(!log.contains("panicked"), "a thread panicked:\n{log}");
    a.ns.assert_ping(b.ip, 1);
    eprintln!(
        "{} commands: {} results, {} error replies",
        commands.len(),
        answered.0,
        answered.1
    );
}
