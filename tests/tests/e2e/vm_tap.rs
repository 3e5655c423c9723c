//! Tap ports: the test holds the tap's fd and plays the VM, writing the frames the guest sends
//! and reading what the switch delivers to it.

use std::net::{Ipv4Addr, UdpSocket};
use std::time::Duration;

use xvs_tests::pkt::{self, UdpCsum, VirtioNetHdr, BROADCAST, VIRTIO_NET_HDR_F_NEEDS_CSUM};
use xvs_tests::tap::Vm;
use xvs_tests::{unique, wait_for, Daemon, Lab, Tap, WAIT};

const VM_MAC: pkt::Mac = [2, 0, 0, 0, 0, 0x99];
const VM_IP: Ipv4Addr = Ipv4Addr::new(10, 200, 0, 99);

fn recv_udp(sock: &UdpSocket) -> (Vec<u8>, std::net::SocketAddr) {
    sock.set_read_timeout(Some(WAIT)).expect("timeout");
    let mut buf = vec![0u8; 65536];
    let (n, from) = sock
        .recv_from(&mut buf)
        .expect("the datagram never arrived");
    buf.truncate(n);
    (buf, from)
}

/// A VM on a tap port talks to a host behind a veth port: ARP both ways, ICMP echo and reply,
/// UDP both ways (the host's reply, sent with a partial checksum, reaches the VM with a valid
/// one). Returns the tap port's dpif/show entry.
fn vm_talks_to_host(xdp_mode: Option<&str>) -> xvs_tests::stats::DpifPort {
    let lab = Lab::new(1);
    let a = &lab.hosts[0];
    let tap_name = unique("t");
    let tap = Tap::create(&lab.sw, &tap_name, false);
    let tap_port = match xdp_mode {
        Some(m) => format!("{tap_name},xdp-mode={m}"),
        None => tap_name.clone(),
    };
    let args = [
        "--bridge",
        "br0",
        "--port",
        &a.port,
        "--port",
        &tap_port,
        "--pmd-idle",
        "sleep",
    ];
    let d = Daemon::start(&lab.sw, &args);
    let vm = Vm {
        tap: &tap,
        mac: VM_MAC,
        ip: VM_IP,
    };
    // the guest resolves the host: its broadcast crosses the switch, the reply comes back
    tap.send(&pkt::arp_frame(BROADCAST, 1, VM_MAC, VM_IP, [0; 6], a.ip));
    let r = vm.recv_until(WAIT, |f| {
        pkt::arp_of(f).is_some_and(|x| x.op == 2 && x.spa == a.ip && x.tpa == VM_IP)
    });
    assert_eq!(pkt::arp_of(&r).map(|x| x.sha), Some(a.mac));
    // ICMP echo request from the guest, reply from the host's kernel
    let payload = b"xvswitch tap ping payload";
    tap.send(&pkt::icmp_echo_frame(
        a.mac, VM_MAC, VM_IP, a.ip, 0x4242, 1, payload, false,
    ));
    let r = vm.recv_until(WAIT, |f| {
        pkt::icmp_echo_of(f) == Some((0, 0x4242, 1, &payload[..]))
    });
    assert_eq!(pkt::dst_mac(&r), Some(VM_MAC));
    // UDP both ways
    let sock = a.ns.in_ns(|| UdpSocket::bind((a.ip, 6000)).expect("bind"));
    tap.send(&pkt::udp_frame(
        a.mac,
        VM_MAC,
        VM_IP,
        a.ip,
        6001,
        6000,
        b"hello from the vm",
        UdpCsum::Full,
    ));
    let (p, from) = recv_udp(&sock);
    assert_eq!(p, b"hello from the vm");
    assert_eq!(from, (VM_IP, 6001).into());
    sock.send_to(b"hello vm", (VM_IP, 6001)).expect("send");
    let r = vm.recv_until(
        WAIT,
        |f| matches!(pkt::udp_of(f), Some((6000, 6001, p)) if p == b"hello vm"),
    );
    assert_eq!(
        pkt::udp_checksum_ok(&r),
        Some(true),
        "the host's partial checksum should have been completed before the VM got it"
    );
    d.port(&tap_name)
}

/// Proves: a tap port (default xdp-mode) carries a VM's traffic both ways.
#[test]
fn tap_port_vm_exchanges_frames_with_a_veth_host() {
    let p = vm_talks_to_host(None);
    assert_eq!(p.opt("driver"), "tun", "{p:?}");
    assert_eq!(p.opt("link"), "up", "{p:?}");
}

/// Proves: the same with `xdp-mode=generic` forced on the tap port, which dpif/show reports as
/// `xdp=skb`.
#[test]
fn tap_port_in_generic_xdp_mode_exchanges_frames() {
    let p = vm_talks_to_host(Some("generic"));
    assert_eq!(p.opt("xdp"), "skb", "{p:?}");
}

/// Checks, through a tap port in `xdp_mode`: N partial-checksum datagrams from a vnet-header
/// guest arrive intact in the host's socket; through a second tap port with
/// `csum-complete=false` the same datagrams are refused by the host as checksum errors.
fn vnet_partial_checksums(xdp_mode: &str) {
    const N: usize = 20;
    let lab = Lab::new(1);
    let a = &lab.hosts[0];
    let (t1, t2) = (unique("t"), unique("t"));
    let tap = Tap::create(&lab.sw, &t1, true);
    let raw_tap = Tap::create(&lab.sw, &t2, true);
    let p1 = format!("{t1},xdp-mode={xdp_mode}");
    let p2 = format!("{t2},xdp-mode={xdp_mode},csum-complete=false");
    let args = [
        "--bridge",
        "br0",
        "--port",
        &a.port,
        "--port",
        &p1,
        "--port",
        &p2,
        "--pmd-idle",
        "sleep",
    ];
    let d = Daemon::start(&lab.sw, &args);
    assert_eq!(d.port(&t1).opt("csum-complete"), "true");
    assert_eq!(d.port(&t2).opt("csum-complete"), "false");
    if xdp_mode == "generic" {
        assert_eq!(d.port(&t1).opt("xdp"), "skb");
    }
    let sock = a.ns.in_ns(|| UdpSocket::bind((a.ip, 7000)).expect("bind"));
    let hdr = VirtioNetHdr {
        flags: VIRTIO_NET_HDR_F_NEEDS_CSUM,
        csum_start: 14 + 20,
        csum_offset: 6,
        ..Default::default()
    };
    let datagram = |i: usize, mac: pkt::Mac| {
        pkt::udp_frame(
            a.mac,
            mac,
            VM_IP,
            a.ip,
            7001,
            7000,
            &pkt::pattern_payload(i as u32, 16 + i * 67),
            UdpCsum::Partial,
        )
    };
    let csum0 = a.ns.snmp("Udp", "InCsumErrors");
    let done0 = d.coverage().get("csum_partial_completed");
    for i in 0..N {
        tap.send_vnet(hdr, &datagram(i, VM_MAC));
    }
    sock.set_read_timeout(Some(WAIT)).expect("timeout");
    let mut buf = vec![0u8; 65536];
    let mut got = vec![0u32; N];
    for _ in 0..N {
        let n = sock
            .recv(&mut buf)
            .unwrap_or_else(|e| panic!("datagrams missing ({got:?}): {e}"));
        let seq = pkt::check_payload(&buf[..n]).expect("intact payload") as usize;
        got[seq] += 1;
    }
    assert!(
        got.iter().all(|&c| c == 1),
        "arrivals per datagram: {got:?}"
    );
    assert_eq!(a.ns.snmp("Udp", "InCsumErrors"), csum0);
    assert!(d.coverage().get("csum_partial_completed") - done0 >= N as u64);

    // control: the same through the port that leaves checksums alone
    let other_mac: pkt::Mac = [2, 0, 0, 0, 0, 0x98];
    for i in 0..5 {
        raw_tap.send_vnet(hdr, &datagram(i, other_mac));
    }
    // the receiving kernel verifies (and counts errors) when the socket is read
    sock.set_read_timeout(Some(Duration::from_millis(10)))
        .expect("timeout");
    wait_for(
        "the receiver to count the 5 unfinished checksums",
        WAIT,
        || {
            if let Ok(n) = sock.recv(&mut buf) {
                panic!(
                    "a datagram with an unfinished checksum was delivered: {:02x?}",
                    &buf[..n.min(16)]
                );
            }
            let e = a.ns.snmp("Udp", "InCsumErrors") - csum0;
            if e >= 5 {
                Ok(())
            } else {
                Err(format!("UdpInCsumErrors +{e}"))
            }
        },
    );
}

/// Proves: a guest with checksum offload (a vnet header with VIRTIO_NET_HDR_F_NEEDS_CSUM, the
/// UDP checksum field holding only the pseudo-header sum) gets its datagrams delivered into the
/// host's UDP socket, i.e. with a valid checksum, through a tap port that completes checksums.
/// And, as a control, that the partial bytes really reach the switch as such: through a second
/// tap port with `csum-complete=false` the same datagrams are dropped by the receiving kernel
/// as checksum errors.
#[test]
fn partial_checksum_from_vnet_hdr_tap_is_completed() {
    vnet_partial_checksums("best-effort");
}

/// Proves: the same with the tap ports in generic (SKB) XDP mode, where the kernel builds an
/// skb (CHECKSUM_PARTIAL) before the XDP program sees the frame.
#[test]
fn partial_checksum_from_vnet_hdr_tap_in_generic_mode_is_completed() {
    vnet_partial_checksums("generic");
}
