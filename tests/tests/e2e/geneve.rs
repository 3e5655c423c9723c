//! Geneve tunnels between two xvswitchd "chassis", the way OVN wires them: each chassis
//! namespace runs its own daemon with bridge `br-int` (a VM's veth, whose other end sits in a
//! VM namespace, and a geneve port) and bridge `br-phy` (the underlay veth; its LOCAL port
//! `br-phy` carries the encap IP). The two chassis are joined by a veth underlay. Flows are
//! installed with the real `ovs-ofctl`, OVN style: VNI in tun_id and OVN's option
//! (class 0x0102, type 0x80, 4 bytes) mapped to tun_metadata0 with `add-tlv-map`.

use std::net::{Ipv4Addr, UdpSocket};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use xvs_tests::netns::Veth;
use xvs_tests::ofctl::Ofctl;
use xvs_tests::{pkt, wait_for, wait_until, ChildGuard, Daemon, Netns, WAIT};

const ENCAP_A: Ipv4Addr = Ipv4Addr::new(172, 31, 0, 1);
const ENCAP_B: Ipv4Addr = Ipv4Addr::new(172, 31, 0, 2);
const VM_A: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 1);
const VM_B: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 2);

/// One chassis: its namespace, daemon and VM.
struct Chassis {
    // dropped in field order: the daemon first (its LOCAL ports go with it), then links
    d: Daemon,
    ofctl: Ofctl,
    _vm_link: Veth,
    vm: Netns,
    ns: Netns,
}

impl Chassis {
    /// Starts the chassis' daemon: br-int with the VM port (OpenFlow 1) and geneve port
    /// `geneve0` (OpenFlow 2, options `tun`), br-phy with the underlay port `ul`; addresses
    /// br-phy with `encap`/24 and waits until the daemon sees the route through it.
    fn start(ns: Netns, ul: &str, vm_ip: Ipv4Addr, tun: &str, encap: Ipv4Addr) -> Chassis {
        let vm = Netns::new("vm");
        let base = xvs_tests::unique("");
        let (vif, port) = (format!("{base}v"), format!("{base}p"));
        let vm_link = Veth::new(&vif, &vm, &port, &ns);
        vm.ip(&format!("addr add {vm_ip}/24 dev {vif}"));
        vm.ip(&format!("link set {vif} up"));
        ns.ip(&format!("link set {port} up"));
        ns.ip(&format!("link set {ul} up"));
        let args: Vec<String> = [
            "--bridge",
            "br-int",
            "--port",
            &port,
            "--port",
            &format!("geneve0,type=geneve,{tun}"),
            "--bridge",
            "br-phy",
            "--port",
            ul,
            "--pmd-idle",
            "sleep",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let d = Daemon::start(&ns, &args);
        ns.ip("link set br-phy up");
        ns.ip(&format!("addr add {encap}/24 dev br-phy"));
        let ofctl = Ofctl::ovs(&d.rundir);
        wait_until("the daemon reads the route through br-phy", WAIT, || {
            d.appctl("ovs/route/show", &[]).contains("dev br-phy")
        });
        Chassis {
            d,
            ofctl,
            _vm_link: vm_link,
            vm,
            ns,
        }
    }

    /// OVN-style flows on br-int: only these (the standalone NORMAL flow goes).
    fn flows(&self, flows: &[&str]) {
        self.ofctl.ok(&["del-flows", "br-int"]);
        self.ofctl.ok(&[
            "add-tlv-map",
            "br-int",
            "{class=0x0102,type=0x80,len=4}->tun_metadata0",
        ]);
        for f in flows {
            self.ofctl.ok(&["add-flow", "br-int", f]);
        }
    }

    fn cov(&self, name: &str) -> u64 {
        self.d.coverage().get(name)
    }
}

/// A UDP socket bound in `ns`.
fn udp_socket(ns: &Netns, ip: Ipv4Addr, port: u16) -> UdpSocket {
    ns.in_ns(|| UdpSocket::bind((ip, port)).expect("bind"))
}

/// Proves Geneve in both directions between two xvswitchd chassis: ping across both ways
/// (first packets resolve the next hop with the switch's own ARP, `tnl/neigh/show` then lists
/// it); 1000 UDP datagrams of sizes 16..1400 arrive exactly once and intact; `tshark` decodes
/// the underlay capture as Geneve with VNI 5 and OVN's option 0x0102/0x80 = 0x1234 and finds
/// no malformed packet; a datagram sent with another tun_metadata0 is dropped by B's flow
/// table; a datagram too big for the underlay after encap is dropped and counted, never sent.
/// Chassis A's tunnel has a fixed remote_ip and csum=true (plus a second tunnel port to
/// another remote added at runtime); chassis B's has remote_ip=flow and no checksum.
#[test]
fn geneve_between_two_chassis() {
    let na = Netns::new("ca");
    let nb = Netns::new("cb");
    // the underlay: each chassis' NIC is a veth whose other end is in a Linux bridge in a
    // third namespace, where tcpdump sees the wire (on the chassis' own ends, XDP takes the
    // packets before any capture point)
    let wire = Netns::new("ul");
    let base = xvs_tests::unique("");
    let (ula, ulb) = (format!("{base}a"), format!("{base}b"));
    let (wa, wb) = (format!("{base}A"), format!("{base}B"));
    let _ua = Veth::new(&ula, &na, &wa, &wire);
    let _ub = Veth::new(&ulb, &nb, &wb, &wire);
    wire.ip("link add wire type bridge");
    for dev in [wa.as_str(), wb.as_str()] {
        wire.ip(&format!("link set {dev} master wire"));
        wire.ip(&format!("link set {dev} up"));
    }
    wire.ip("link set wire up");
    let a = Chassis::start(
        na,
        &ula,
        VM_A,
        &format!("remote_ip={ENCAP_B},key=flow,csum=true"),
        ENCAP_A,
    );
    let b = Chassis::start(nb, &ulb, VM_B, "remote_ip=flow,key=flow", ENCAP_B);

    // a second tunnel port on A towards another chassis: demux must still pick geneve0
    let of = a.d.appctl(
        "dpif/add-port",
        &[
            "br-int",
            "geneve1,type=geneve,remote_ip=172.31.0.3,key=flow",
        ],
    );
    assert_eq!(of.trim(), "3", "dpif/add-port answered {of:?}");
    let show = a.d.appctl("dpif/show", &[]);
    assert!(
        show.contains("geneve0 2/")
            && show.contains("(geneve: csum=true, key=flow, remote_ip=172.31.0.2)")
            && show.contains("(geneve: key=flow, remote_ip=172.31.0.3)"),
        "dpif/show:\n{show}"
    );
    let ports = a.d.appctl("tnl/ports/show", &[]);
    assert!(
        ports.contains("genev_sys_6081 (6081) ref_cnt=2"),
        "tnl/ports/show:\n{ports}"
    );

    a.flows(&[
        "priority=100,in_port=1,actions=set_field:5->tun_id,set_field:0x1234->tun_metadata0,output:2",
        "priority=200,in_port=1,udp,tp_dst=9999,actions=set_field:5->tun_id,set_field:0x9999->tun_metadata0,output:2",
        "priority=100,in_port=2,tun_id=5,tun_metadata0=0x1234,actions=output:1",
    ]);
    b.flows(&[
        &format!("priority=100,in_port=1,actions=set_field:{ENCAP_A}->tun_dst,set_field:5->tun_id,set_field:0x1234->tun_metadata0,output:2"),
        "priority=100,in_port=2,tun_id=5,tun_metadata0=0x1234,actions=output:1",
    ]);

    // capture the underlay from here on
    let pcap = a.d.rundir.join("underlay.pcap");
    let mut tcpdump = ChildGuard::spawn(
        wire.cmd("tcpdump")
            .args(["-i", &wa, "-U", "-n", "-w"])
            .arg(&pcap)
            .arg("udp port 6081")
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
        "tcpdump",
    );
    wait_until("tcpdump writes its capture file", WAIT, || pcap.exists());

    a.vm.assert_ping(VM_B, 3);
    b.vm.assert_ping(VM_A, 3);
    for (c, peer) in [(&a, ENCAP_B), (&b, ENCAP_A)] {
        let neigh = c.d.appctl("tnl/neigh/show", &[]);
        let line = neigh
            .lines()
            .find(|l| l.starts_with(&peer.to_string()))
            .unwrap_or_else(|| panic!("tnl/neigh/show lacks {peer}:\n{neigh}"));
        let mac = pkt::mac_str(
            &pkt::parse_mac(
                xvs_tests::must(&[
                    "ip",
                    "netns",
                    "exec",
                    if peer == ENCAP_B {
                        b.ns.name()
                    } else {
                        a.ns.name()
                    },
                    "cat",
                    "/sys/class/net/br-phy/address",
                ])
                .trim(),
            )
            .expect("br-phy MAC"),
        );
        assert!(
            line.contains(&mac) && line.ends_with("br-phy"),
            "{line:?} vs {mac}"
        );
    }
    assert!(a.cov("tunnel_push") > 0 && a.cov("tunnel_pop") > 0);

    // 1000 datagrams of various sizes, A -> B, each once and intact, through one cached
    // datapath flow (not a translation per packet)
    let upcalls = a.cov("upcall");
    let rx = udp_socket(&b.vm, VM_B, 7000);
    rx.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let tx = udp_socket(&a.vm, VM_A, 0);
    let n = 1000u32;
    let mut seen = vec![0u32; n as usize];
    let mut got = 0;
    let mut buf = vec![0u8; 2048];
    for seq in 0..n {
        let len = 16 + (seq as usize * 37) % 1385;
        tx.send_to(&pkt::pattern_payload(seq, len), (VM_B, 7000))
            .unwrap();
        // pace: never more than a few dozen in flight
        if seq % 16 == 15 {
            while let Ok(k) = rx.recv(&mut buf) {
                let s = pkt::check_payload(&buf[..k]).expect("a corrupted datagram");
                seen[s as usize] += 1;
                got += 1;
                if got + 4 > seq {
                    break;
                }
            }
        }
    }
    let deadline = Instant::now() + WAIT;
    while got < n && Instant::now() < deadline {
        if let Ok(k) = rx.recv(&mut buf) {
            let s = pkt::check_payload(&buf[..k]).expect("a corrupted datagram");
            seen[s as usize] += 1;
            got += 1;
        }
    }
    let missing: Vec<usize> = (0..n as usize).filter(|&i| seen[i] == 0).collect();
    let dup: Vec<usize> = (0..n as usize).filter(|&i| seen[i] > 1).collect();
    assert!(
        missing.is_empty() && dup.is_empty(),
        "missing {} (first {:?}), duplicated {:?}\n{}",
        missing.len(),
        missing.iter().take(10).collect::<Vec<_>>(),
        dup,
        a.d.appctl("coverage/show", &[])
    );

    let upcalls = a.cov("upcall") - upcalls;
    assert!(
        upcalls < 100,
        "{upcalls} upcalls for 1000 datagrams on chassis A"
    );
    let flows = a.d.appctl("dpctl/dump-flows", &[]);
    assert!(
        flows.contains("tnl_push(tnl_port(geneve0)"),
        "dump-flows:\n{flows}"
    );
    let flows = b.d.appctl("dpctl/dump-flows", &[]);
    assert!(
        flows.contains("tnl_pop(udp_dst=6081)"),
        "dump-flows:\n{flows}"
    );

    // the wrong tun_metadata0 does not reach B's VM; a good datagram sent after it does
    let rx9 = udp_socket(&b.vm, VM_B, 9999);
    rx9.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    tx.send_to(b"wrong-metadata", (VM_B, 9999)).unwrap();
    tx.send_to(&pkt::pattern_payload(n, 64), (VM_B, 7000))
        .unwrap();
    wait_for("the datagram sent after the wrong one", WAIT, || {
        match rx.recv(&mut buf) {
            Ok(k) if pkt::check_payload(&buf[..k]) == Some(n) => Ok(()),
            r => Err(format!("{r:?}")),
        }
    });
    assert!(
        rx9.recv(&mut buf).is_err(),
        "a datagram with tun_metadata0=0x9999 reached the VM"
    );

    // too big for the underlay once encapsulated: dropped and counted on A, not sent
    let before = a.cov("tunnel_drop_oversize");
    tx.send_to(&pkt::pattern_payload(n + 1, 1460), (VM_B, 7000))
        .unwrap();
    wait_until("the oversize drop is counted", WAIT, || {
        a.cov("tunnel_drop_oversize") > before
    });

    // the capture: Geneve with VNI 5 and OVN's option, nothing malformed, nothing oversize
    std::thread::sleep(Duration::from_millis(300)); // tcpdump -U flushes per packet
    xvs_tests::signal(tcpdump.pid(), libc::SIGINT);
    let _ = xvs_tests::wait_child(&mut tcpdump.child, WAIT);
    let out = xvs_tests::run_timeout(
        // the inner datagrams are test payloads, not whatever tshark guesses from their ports
        Command::new("tshark").arg("-r").arg(&pcap).args([
            "-V",
            "-d",
            "udp.port==7000,data",
            "-d",
            "udp.port==9999,data",
        ]),
        Duration::from_secs(120),
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "tshark: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let frames = text
        .matches("Generic Network Virtualization Encapsulation")
        .count();
    assert!(
        frames >= 1000,
        "tshark decoded {frames} Geneve packets:\n{}",
        &text[..text.len().min(6000)]
    );
    if let Some(at) = text.find("Malformed") {
        let from = text[..at].rfind("\nFrame ").unwrap_or(0);
        panic!(
            "tshark found a malformed packet:\n{}",
            &text[from..(at + 200).min(text.len())]
        );
    }
    assert!(
        text.contains("Virtual Network Identifier (VNI): 0x000005"),
        "no VNI 5"
    );
    for want in [
        "Class: Open Virtual Networking (OVN) (0x0102)",
        "Type: 0x80 (Critical)",
        "Option Data: 00001234",
    ] {
        assert!(text.contains(want), "the capture lacks {want:?}");
    }
    let lens = xvs_tests::run_timeout(
        Command::new("tshark")
            .arg("-r")
            .arg(&pcap)
            .args(["-T", "fields", "-e", "ip.len"]),
        WAIT,
    );
    let max = String::from_utf8_lossy(&lens.stdout)
        .lines()
        .filter_map(|l| l.split(',').next()?.trim().parse::<u32>().ok())
        .max()
        .unwrap_or(0);
    assert!(max <= 1500, "an outer packet of {max} bytes was sent");

    // removing a tunnel port at runtime
    a.d.appctl("dpif/del-port", &["br-int", "geneve1"]);
    let ports = a.d.appctl("tnl/ports/show", &[]);
    assert!(
        ports.contains("genev_sys_6081 (6081) ref_cnt=1"),
        "tnl/ports/show:\n{ports}"
    );
    a.vm.assert_ping(VM_B, 2);
}
