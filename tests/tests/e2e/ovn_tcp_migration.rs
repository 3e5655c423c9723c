//! A TCP connection survives a live migration under real OVN with a stateful ACL. The VM's
//! kernel is stood in for by two namespaces whose TCP socket moves from the source to the
//! destination with TCP_REPAIR (as CRIU does: sequence numbers, queues, options, window,
//! timestamps; tests/scripts/tcpmig.py), so the destination chassis sees the connection
//! mid-stream: its tracker never saw the handshake, and OVN's allow-related ACLs must still
//! pass the connection (a mid-stream segment may start a connection, as in OVS's userspace
//! tracker) while everything else stays dropped.

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::time::Duration;

use xvs_tests::ovn::{OvnLab, SwitchKind, Vif};
use xvs_tests::raw::RawSock;
use xvs_tests::{wait_for, wait_until, ChildGuard, WAIT};

use crate::ovn_migration::rarp;

const VM_MAC: [u8; 6] = [0x0a, 0, 0, 0, 0, 0x21];
const VM_IP: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 21);
const CLIENT_MAC: [u8; 6] = [0x0a, 0, 0, 0, 0, 0x11];
const CLIENT_IP: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 11);
const PORT: u16 = 7000;

fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scripts/tcpmig.py")
}

/// Runs the script in `vif`'s namespace, its output into `log`.
fn py(vif: &Vif, args: &[&str], what: &str, log: &std::path::Path) -> ChildGuard {
    let mut c = vif.ns.cmd("python3");
    let f = std::fs::File::create(log).expect("log file");
    c.arg(script())
        .args(args)
        .stdout(f.try_clone().expect("log"))
        .stderr(f);
    ChildGuard::spawn(&mut c, what)
}

fn logs(dir: &std::path::Path) -> String {
    ["server", "client", "restore"]
        .iter()
        .map(|n| {
            format!(
                "--- {n}:\n{}",
                std::fs::read_to_string(dir.join(format!("{n}.log"))).unwrap_or_default()
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Proves: with ACLs on both ports (allow-related to-lport TCP to the VM's port 7000, drop
/// every other IPv4 packet to either port), a client's TCP echo session with the VM keeps
/// going, without a reset and with every echo right, while the VM migrates from ch1 to ch2
/// (requested-chassis=ch1,ch2, activation-strategy=rarp; the source stops; the socket is
/// restored at the destination; QEMU's RARPs; requested-chassis=ch2). Unsolicited traffic
/// stays dropped at the destination afterwards: a connection to another port times out.
#[test]
fn tcp_connection_survives_live_migration_through_stateful_acls() {
    let lab = OvnLab::start(2, SwitchKind::from_env());
    let nb = &lab.central;
    nb.nbctl(&["ls-add", "ls0"]);
    for (lsp, mac, ip) in [("client", CLIENT_MAC, CLIENT_IP), ("vm", VM_MAC, VM_IP)] {
        nb.nbctl(&["lsp-add", "ls0", lsp]);
        nb.nbctl(&[
            "lsp-set-addresses",
            lsp,
            &format!("{} {ip}", xvs_tests::pkt::mac_str(&mac)),
        ]);
    }
    nb.nbctl(&["lsp-set-options", "vm", "requested-chassis=ch1"]);
    nb.nbctl(&["pg-add", "pg_all", "client", "vm"]);
    nb.nbctl(&[
        "acl-add",
        "pg_all",
        "to-lport",
        "1002",
        &format!("outport == \"vm\" && ip4 && tcp.dst == {PORT}"),
        "allow-related",
    ]);
    nb.nbctl(&["acl-add", "pg_all", "to-lport", "1001", "ip4", "drop"]);
    let (ch1, ch2) = (&lab.chassis[0], &lab.chassis[1]);
    let client = ch1.add_vif("client", CLIENT_MAC, CLIENT_IP);
    let src = ch1.add_vif("vm", VM_MAC, VM_IP);
    ch1.wait_installed(&client);
    ch1.wait_installed(&src);
    lab.sync();
    // the destination pod's interface exists before the migration, gated once bound
    let dst = ch2.add_vif("vm", VM_MAC, VM_IP);
    let dir = xvs_tests::TempDir::new();
    let ck = dir.path().join("conn.json");
    let out = dir.path().join("client.txt");
    let _server = py(
        &src,
        &["serve", &VM_IP.to_string(), "7000", ck.to_str().unwrap()],
        "tcp server",
        &dir.path().join("server.log"),
    );
    wait_until("the VM's server to listen", WAIT, || {
        src.ns
            .try_run("ss -ltn")
            .map(|s| s.contains(":7000"))
            .unwrap_or(false)
    });
    let mut client_run = py(
        &client,
        &[
            "client",
            &VM_IP.to_string(),
            "7000",
            "12",
            out.to_str().unwrap(),
        ],
        "tcp client",
        &dir.path().join("client.log"),
    );
    std::thread::sleep(Duration::from_millis(1500));
    assert!(
        !out.exists(),
        "the session ended before the migration: {:?}",
        std::fs::read_to_string(&out)
    );
    // the migration starts: both chassis bound, the destination gated
    nb.nbctl(&[
        "lsp-set-options",
        "vm",
        "requested-chassis=ch1,ch2",
        "activation-strategy=rarp",
    ]);
    wait_until("ch2 to claim vm as additional chassis", WAIT, || {
        !lab.central
            .sbctl(&[
                "--bare",
                "--columns=additional_chassis",
                "find",
                "Port_Binding",
                "logical_port=vm",
            ])
            .is_empty()
    });
    lab.sync();
    std::thread::sleep(Duration::from_millis(500));
    // the source pauses for good: its link goes down, its socket is checkpointed (no FIN, no
    // RST), restored at the destination, which then announces itself
    src.ns.ip(&format!("link set {} down", src.ifname));
    xvs_tests::signal(_server.pid(), libc::SIGUSR1);
    let _restored = py(
        &dst,
        &["restore", ck.to_str().unwrap()],
        "tcp restore",
        &dir.path().join("restore.log"),
    );
    wait_for("the socket to be restored at the destination", WAIT, || {
        let ss = dst.ns.try_run("ss -tn").unwrap_or_default();
        if ss.contains(&format!("{VM_IP}:7000")) {
            Ok(())
        } else {
            Err(format!("{ss}\n{}", logs(dir.path())))
        }
    });
    let dst_raw = RawSock::open(&dst.ns, &dst.ifname);
    let mut last = 0;
    for at in [0u64, 50, 200, 450, 800] {
        std::thread::sleep(Duration::from_millis(at - last));
        last = at;
        dst_raw.send(&rarp(VM_MAC));
    }
    nb.nbctl(&["lsp-set-options", "vm", "requested-chassis=ch2"]);
    lab.sync();
    let status = xvs_tests::wait_child(&mut client_run.child, Duration::from_secs(40));
    let result = std::fs::read_to_string(&out).unwrap_or_default();
    assert!(status.is_some(), "the client did not finish");
    let mut it = result.split_whitespace();
    let lines: u64 = it.next().and_then(|n| n.parse().ok()).unwrap_or(0);
    let verdict: Vec<&str> = it.collect();
    assert_eq!(
        verdict.join(" "),
        "ok",
        "the TCP session broke after {lines} echoes ({})\n{}",
        if ch2.kind == SwitchKind::Xvs {
            ch2.appctl(&["dpctl/dump-conntrack"])
        } else {
            String::new()
        },
        logs(dir.path())
    );
    assert!(lines > 200, "only {lines} echoes in 12 s");
    // the destination's ACLs still drop what was not allowed
    let code = format!(
        "import socket\ntry:\n socket.create_connection(('{VM_IP}', 7001), timeout=2); print('connected')\nexcept Exception as e: print('ERR', e)\n"
    );
    let o = xvs_tests::run_timeout(client.ns.cmd("python3").args(["-c", &code]), WAIT);
    let o = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.contains("timed out"),
        "unsolicited connection to the VM: {o}"
    );
}
