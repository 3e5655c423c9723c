//! A KubeVirt-style live migration under real OVN on two chassis: the VM's logical port bound
//! to both (`requested-chassis=ch1,ch2`, `activation-strategy=rarp`) while a client streams
//! numbered UDP datagrams to it; the source stops, the destination announces the VM with
//! QEMU's RARPs, and the stream must continue at the destination.

use std::net::{Ipv4Addr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use xvs_tests::ovn::{OvnLab, SwitchKind, Vif};
use xvs_tests::raw::RawSock;
use xvs_tests::{wait_for, wait_until, WAIT};

const VM_MAC: [u8; 6] = [0x0a, 0, 0, 0, 0, 0x20];
const VM_IP: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 20);
const CLIENT_MAC: [u8; 6] = [0x0a, 0, 0, 0, 0, 0x10];
const CLIENT_IP: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 10);
const PORT: u16 = 9999;

/// QEMU's self-announcement (net/announce.c): 60 bytes, broadcast, ethertype 0x8035 (RARP),
/// opcode 3 (reverse request), sender and target the VM's MAC, addresses zero.
pub(crate) fn rarp(mac: [u8; 6]) -> Vec<u8> {
    let mut f = Vec::with_capacity(60);
    f.extend_from_slice(&[0xff; 6]);
    f.extend_from_slice(&mac);
    f.extend_from_slice(&[0x80, 0x35, 0, 1, 8, 0, 6, 4, 0, 3]);
    f.extend_from_slice(&mac);
    f.extend_from_slice(&[0; 4]);
    f.extend_from_slice(&mac);
    f.extend_from_slice(&[0; 4]);
    f.resize(60, 0);
    f
}

/// Datagrams a receiver got: (sequence number, when).
type Log = Arc<Mutex<Vec<(u64, Instant)>>>;

/// Receives numbered datagrams on VM_IP:PORT in `vif`'s namespace until `stop`.
fn receiver(vif: &Vif, stop: Arc<AtomicBool>) -> (Log, std::thread::JoinHandle<()>) {
    let sock = vif
        .ns
        .in_ns(|| UdpSocket::bind((VM_IP, PORT)).expect("bind the VM's port"));
    sock.set_read_timeout(Some(Duration::from_millis(20)))
        .expect("timeout");
    let log: Log = Arc::default();
    let l = log.clone();
    let h = std::thread::spawn(move || {
        let mut buf = [0u8; 64];
        while !stop.load(Ordering::Relaxed) {
            if let Ok((n, _)) = sock.recv_from(&mut buf) {
                if n >= 8 {
                    let seq = u64::from_be_bytes(buf[..8].try_into().expect("8 bytes"));
                    l.lock().expect("log").push((seq, Instant::now()));
                }
            }
        }
    });
    (log, h)
}

fn lsp_options(lab: &OvnLab, opts: &[&str]) {
    let mut args = vec!["lsp-set-options", "vm"];
    args.extend_from_slice(opts);
    lab.central.nbctl(&args);
    lab.sync();
}

fn pb_options(lab: &OvnLab) -> String {
    lab.central.sbctl(&[
        "--bare",
        "--columns=options",
        "find",
        "Port_Binding",
        "logical_port=vm",
    ])
}

/// Proves, with real packets and real OVN on two chassis:
/// - while the VM's port is bound to both chassis and gated (activation-strategy=rarp), the
///   destination VIF receives none of the stream and what it sends reaches nobody;
/// - the source stops (link down); the destination sends QEMU's RARPs (0, 50, 200, 450, 800
///   ms); from then on the stream reaches the destination and the destination reaches the
///   client; Southbound records `additional-chassis-activated=ch2`;
/// - `requested-chassis=ch2` ends the migration: the source gets no more copies.
#[test]
fn live_migration_with_rarp_activation() {
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
    let (ch1, ch2) = (&lab.chassis[0], &lab.chassis[1]);
    let client = ch1.add_vif("client", CLIENT_MAC, CLIENT_IP);
    let src = ch1.add_vif("vm", VM_MAC, VM_IP);
    ch1.wait_installed(&client);
    ch1.wait_installed(&src);
    lab.sync();
    client.ns.assert_ping(VM_IP, 2);
    // the destination pod's interface exists (KubeVirt creates it before the migration)
    let dst = ch2.add_vif("vm", VM_MAC, VM_IP);
    let dst_raw = RawSock::open(&dst.ns, &dst.ifname);
    lsp_options(
        &lab,
        &["requested-chassis=ch1,ch2", "activation-strategy=rarp"],
    );
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

    let stop = Arc::new(AtomicBool::new(false));
    let (src_log, src_h) = receiver(&src, stop.clone());
    let (dst_log, dst_h) = receiver(&dst, stop.clone());
    let sender_sock = client
        .ns
        .in_ns(|| UdpSocket::bind((CLIENT_IP, 0)).expect("client socket"));
    let s2 = stop.clone();
    let sender = std::thread::spawn(move || {
        let mut seq: u64 = 0;
        while !s2.load(Ordering::Relaxed) {
            let _ = sender_sock.send_to(&seq.to_be_bytes(), (VM_IP, PORT));
            seq += 1;
            std::thread::sleep(Duration::from_micros(1000));
        }
        seq
    });
    // both copies flow for a while; the destination must see none (gated)
    wait_until("the source to receive the stream", WAIT, || {
        src_log.lock().expect("log").len() > 200
    });
    // the destination tries to talk before its activation: nobody may hear it
    let client_raw = RawSock::open(&client.ns, &client.ifname);
    client_raw.drain();
    let probe = {
        let mut f = vec![0xff; 6];
        f.extend_from_slice(&VM_MAC);
        f.extend_from_slice(&[0x08, 0x06, 0, 1, 8, 0, 6, 4, 0, 1]);
        f.extend_from_slice(&VM_MAC);
        f.extend_from_slice(&VM_IP.octets());
        f.extend_from_slice(&[0; 6]);
        f.extend_from_slice(&CLIENT_IP.octets());
        f.resize(60, 0);
        f
    };
    dst_raw.send(&probe);
    let (_, heard) = client_raw.collect_until(Duration::from_millis(300), |d| {
        d.get(6..12) == Some(&VM_MAC[..]) && d.get(12..14) == Some(&[0x08, 0x06][..])
    });
    assert!(!heard, "the gated destination's ARP reached the client");
    assert!(
        dst_log.lock().expect("log").is_empty(),
        "the gated destination received stream datagrams"
    );
    // the source stops; the destination announces itself
    src.ns.ip(&format!("link set {} down", src.ifname));
    let t_rarp = Instant::now();
    let announce = rarp(VM_MAC);
    let mut last = 0;
    for at in [0u64, 50, 200, 450, 800] {
        std::thread::sleep(Duration::from_millis(at - last));
        last = at;
        dst_raw.send(&announce);
    }
    wait_until("the destination to receive the stream", WAIT, || {
        dst_log.lock().expect("log").len() > 200
    });
    let first_dst = dst_log.lock().expect("log")[0].1;
    assert!(
        first_dst >= t_rarp,
        "the destination received a datagram before the RARP"
    );
    eprintln!(
        "first datagram at the destination {:?} after the first RARP",
        first_dst - t_rarp
    );
    if ch2.kind == SwitchKind::Xvs {
        // xvswitchd opened the gate itself, on the RARP (not after ovn-controller's flow deletes)
        let state = ch2.appctl(&["port/state", &dst.port]);
        eprintln!("ch2 port/state after the RARPs:\n{state}");
        assert!(
            state.contains("activated"),
            "xvswitchd did not activate the port itself: {state}"
        );
    }
    // the destination reaches the client
    dst.ns.assert_ping(CLIENT_IP, 3);
    if ch2.kind == SwitchKind::Xvs {
        // and xvswitchd timed the first packets both ways after the activation
        let js = ch2.appctl(&["port/state", &dst.port, "--json"]);
        let v: serde_json::Value = serde_json::from_str(&js).expect("port/state --json");
        let g = &v[0]["gates"][0];
        for k in ["first_delivered", "first_forwarded"] {
            assert!(
                g[k]["after_activation_us"].as_f64().is_some(),
                "no {k} timestamp: {js}"
            );
        }
    }
    wait_for("Southbound to record the activation", WAIT, || {
        let o = pb_options(&lab);
        if o.contains("additional-chassis-activated=ch2") {
            Ok(())
        } else {
            Err(o)
        }
    });
    // the migration ends: only ch2 gets the port
    lsp_options(&lab, &["requested-chassis=ch2"]);
    src.ns.ip(&format!("link set {} up", src.ifname));
    let n_src = src_log.lock().expect("log").len();
    let n_dst = dst_log.lock().expect("log").len();
    wait_until("more of the stream at the destination", WAIT, || {
        dst_log.lock().expect("log").len() > n_dst + 300
    });
    let src_after = src_log.lock().expect("log").len() - n_src;
    stop.store(true, Ordering::Relaxed);
    let sent = sender.join().expect("sender");
    src_h.join().expect("src receiver");
    dst_h.join().expect("dst receiver");
    assert_eq!(
        src_after, 0,
        "the source still got copies after requested-chassis=ch2"
    );
    eprintln!("{sent} datagrams sent");
}

/// Proves: an aborted migration (the destination is bound as additional chassis and gated,
/// no RARP ever comes, requested-chassis goes back to the source) never lets a datagram reach
/// the destination, keeps the source served, and leaves no gate state on the destination.
#[test]
fn aborted_migration_leaves_nothing_behind() {
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
    let (ch1, ch2) = (&lab.chassis[0], &lab.chassis[1]);
    let client = ch1.add_vif("client", CLIENT_MAC, CLIENT_IP);
    let src = ch1.add_vif("vm", VM_MAC, VM_IP);
    ch1.wait_installed(&client);
    ch1.wait_installed(&src);
    let dst = ch2.add_vif("vm", VM_MAC, VM_IP);
    lab.sync();
    let stop = Arc::new(AtomicBool::new(false));
    let (src_log, src_h) = receiver(&src, stop.clone());
    let (dst_log, dst_h) = receiver(&dst, stop.clone());
    let sock = client
        .ns
        .in_ns(|| UdpSocket::bind((CLIENT_IP, 0)).expect("client socket"));
    let send = |from: u64, n: u64| {
        for seq in from..from + n {
            let _ = sock.send_to(&seq.to_be_bytes(), (VM_IP, PORT));
            std::thread::sleep(Duration::from_micros(500));
        }
    };
    lsp_options(
        &lab,
        &["requested-chassis=ch1,ch2", "activation-strategy=rarp"],
    );
    send(0, 500);
    lsp_options(&lab, &["requested-chassis=ch1"]);
    send(500, 500);
    wait_until("the source to receive the last datagram", WAIT, || {
        src_log.lock().expect("log").iter().any(|(s, _)| *s == 999)
    });
    stop.store(true, Ordering::Relaxed);
    src_h.join().expect("src receiver");
    dst_h.join().expect("dst receiver");
    assert!(
        dst_log.lock().expect("log").is_empty(),
        "the destination received datagrams in an aborted migration"
    );
    assert!(
        src_log.lock().expect("log").len() >= 990,
        "the source lost the stream: {} of 1000",
        src_log.lock().expect("log").len()
    );
    if ch2.kind == SwitchKind::Xvs {
        let state = ch2.appctl(&["port/state", &dst.port]);
        assert!(
            state.contains("gate: none"),
            "gate state left behind: {state}"
        );
    }
}

/// One leg of a migration of "vm" from `from` (on chassis `from_ch`) to `to` (on `to_ch`):
/// multi-chassis with RARP activation while the client streams to the VM, the source stops,
/// the destination sends QEMU's RARPs, then requested-chassis=`to_ch`. Asserts that the
/// destination receives nothing before its first RARP (its gate is armed) and the stream
/// after it. Returns, for xvswitchd, its own activation latency (µs from the activation to
/// the first packet it delivered to the destination port, from `port/state --json`).
#[allow(clippy::too_many_arguments)]
fn migrate_leg(
    lab: &OvnLab,
    client: &Vif,
    from: &Vif,
    to: &Vif,
    from_ch: &str,
    to_ch: &str,
    to_chassis: &xvs_tests::ovn::Chassis,
    leg: usize,
) -> Option<f64> {
    to.ns.ip(&format!("link set {} up", to.ifname));
    let to_raw = RawSock::open(&to.ns, &to.ifname);
    lsp_options(
        lab,
        &[
            &format!("requested-chassis={from_ch},{to_ch}"),
            "activation-strategy=rarp",
        ],
    );
    wait_until(
        "the destination claimed as additional chassis",
        WAIT,
        || {
            !lab.central
                .sbctl(&[
                    "--bare",
                    "--columns=additional_chassis",
                    "find",
                    "Port_Binding",
                    "logical_port=vm",
                ])
                .is_empty()
        },
    );
    lab.sync();
    let stop = Arc::new(AtomicBool::new(false));
    let (src_log, src_h) = receiver(from, stop.clone());
    let (dst_log, dst_h) = receiver(to, stop.clone());
    let sender_sock = client
        .ns
        .in_ns(|| UdpSocket::bind((CLIENT_IP, 0)).expect("client socket"));
    let s2 = stop.clone();
    let sender = std::thread::spawn(move || {
        let mut seq: u64 = 0;
        while !s2.load(Ordering::Relaxed) {
            let _ = sender_sock.send_to(&seq.to_be_bytes(), (VM_IP, PORT));
            seq += 1;
            std::thread::sleep(Duration::from_micros(1000));
        }
    });
    wait_until("the source to receive the stream", WAIT, || {
        src_log.lock().expect("log").len() > 200
    });
    if to_chassis.kind == SwitchKind::Xvs {
        let state = to_chassis.appctl(&["port/state", &to.port]);
        assert!(
            state.contains("gate: armed"),
            "leg {leg}: the destination's gate is not armed before the RARP:\n{state}\n{}",
            to_chassis.appctl(&["migration/timeline", &to.port])
        );
    }
    from.ns.ip(&format!("link set {} down", from.ifname));
    let before = dst_log.lock().expect("log").len();
    let t_rarp = Instant::now();
    let announce = rarp(VM_MAC);
    let mut last = 0;
    for at in [0u64, 50, 200, 450, 800] {
        std::thread::sleep(Duration::from_millis(at - last));
        last = at;
        to_raw.send(&announce);
    }
    assert_eq!(
        before, 0,
        "leg {leg}: the destination received the stream before its RARP (gate not armed)"
    );
    wait_until("the destination to receive the stream", WAIT, || {
        dst_log.lock().expect("log").len() > 200
    });
    assert!(
        dst_log.lock().expect("log")[0].1 >= t_rarp,
        "leg {leg}: the destination received a datagram before the RARP"
    );
    wait_for("Southbound to record the activation", WAIT, || {
        let o = pb_options(lab);
        if o.contains(&format!("additional-chassis-activated={to_ch}")) {
            Ok(())
        } else {
            Err(o)
        }
    });
    lsp_options(lab, &[&format!("requested-chassis={to_ch}")]);
    let n_dst = dst_log.lock().expect("log").len();
    wait_until("more of the stream at the destination", WAIT, || {
        dst_log.lock().expect("log").len() > n_dst + 200
    });
    stop.store(true, Ordering::Relaxed);
    sender.join().expect("sender");
    src_h.join().expect("src receiver");
    dst_h.join().expect("dst receiver");
    if to_chassis.kind != SwitchKind::Xvs {
        return None;
    }
    let js = to_chassis.appctl(&["port/state", &to.port, "--json"]);
    let v: serde_json::Value = serde_json::from_str(&js).expect("port/state --json");
    let gate = &v[0]["gates"][0];
    assert_eq!(gate["state"], "activated", "leg {leg}: {js}");
    // the first-delivery marker lives only in flows translated before that delivery: the
    // stream's steady-state megaflows do not carry it
    let flows = to_chassis.appctl(&["dpctl/dump-flows"]);
    assert!(
        !flows.contains("gate_first"),
        "leg {leg}: steady-state flows still carry the marker:\n{flows}"
    );
    let tl = to_chassis.appctl(&["migration/timeline", &to.port]);
    let us = gate["first_delivered"]["after_activation_us"]
        .as_f64()
        .unwrap_or_else(|| panic!("leg {leg}: no first delivery recorded: {js}\n{tl}"));
    assert!(
        tl.contains("first packet delivered to the port after the activation"),
        "leg {leg}: {tl}"
    );
    eprintln!("leg {leg}: switch-owned activation latency {us:.1} us\n{tl}");
    Some(us)
}

/// Proves the gate is armed again for every migration to a chassis whose port was activated
/// before (perf run: 1 in 10 migrations found the destination already open): the VM goes
/// ch1 -> ch2 -> ch1 -> ch2; before each RARP the destination receives nothing, after it
/// the stream; xvswitchd records the first packet it delivered after each activation.
#[test]
fn repeated_migrations_rearm_the_gate_each_time() {
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
    let (ch1, ch2) = (&lab.chassis[0], &lab.chassis[1]);
    let client = ch1.add_vif("client", CLIENT_MAC, CLIENT_IP);
    let on1 = ch1.add_vif("vm", VM_MAC, VM_IP);
    ch1.wait_installed(&client);
    ch1.wait_installed(&on1);
    let on2 = ch2.add_vif("vm", VM_MAC, VM_IP);
    lab.sync();
    client.ns.assert_ping(VM_IP, 2);
    let lat = [
        migrate_leg(&lab, &client, &on1, &on2, "ch1", "ch2", ch2, 1),
        migrate_leg(&lab, &client, &on2, &on1, "ch2", "ch1", ch1, 2),
        migrate_leg(&lab, &client, &on1, &on2, "ch1", "ch2", ch2, 3),
    ];
    eprintln!("switch-owned activation latencies (us): {lat:?}");
}
