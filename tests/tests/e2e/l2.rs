//! L2 behaviour of the NORMAL pipeline, observed on the wire with raw AF_PACKET sockets in the
//! host namespaces: flooding, learning, link state, malformed frames.

use std::net::Ipv4Addr;

use xvs_tests::pkt::{self, UdpCsum, BROADCAST};
use xvs_tests::{wait_for, Daemon, Lab, RawSock, WAIT};

fn is(f: &[u8], want: &[u8]) -> bool {
    f.starts_with(want) // tolerate Ethernet padding
}

/// Proves: a broadcast (an ARP request from A) is flooded to B and C, and is not sent back out
/// of A's own port. "Not sent back" is shown deterministically: once B and C have the
/// broadcast, B sends A a unicast marker; everything A received before the marker was sent by
/// the switch after the broadcast was processed, and the broadcast is not among it.
#[test]
fn broadcast_floods_to_all_other_ports_and_never_back() {
    let lab = Lab::new(3);
    let (a, b, c) = (&lab.hosts[0], &lab.hosts[1], &lab.hosts[2]);
    let d = Daemon::start(&lab.sw, &lab.daemon_args());
    let (ra, rb, rc) = (
        RawSock::open(&a.ns, &a.ifname),
        RawSock::open(&b.ns, &b.ifname),
        RawSock::open(&c.ns, &c.ifname),
    );
    let x = pkt::arp_frame(
        BROADCAST,
        1,
        a.mac,
        a.ip,
        [0; 6],
        Ipv4Addr::new(10, 200, 0, 99),
    );
    ra.send(&x);
    for (h, r) in [(b, &rb), (c, &rc)] {
        let (_, seen) = r.collect_until(WAIT, |f| is(f, &x));
        assert!(seen, "{} never received A's broadcast", h.ifname);
    }
    let marker = pkt::udp_frame(
        a.mac,
        b.mac,
        b.ip,
        a.ip,
        4000,
        4001,
        b"marker from B to A",
        UdpCsum::Full,
    );
    rb.send(&marker);
    let (before, seen) = ra.collect_until(WAIT, |f| is(f, &marker));
    assert!(seen, "A never received B's unicast marker");
    let mut all = before;
    all.extend(
        ra.drain()
            .into_iter()
            .filter(|f| f.incoming())
            .map(|f| f.data),
    );
    assert!(
        !all.iter().any(|f| is(f, &x)),
        "the broadcast came back out of A's own port"
    );
    let cov = d.coverage();
    assert!(cov.get("normal_flood") >= 1, "{cov:?}");
}

/// Proves: once A and B have exchanged packets, unicast A→B goes only to B's port: C (counting
/// every frame on its side until a later broadcast marker from A reaches it) sees none of 100
/// datagrams B received. And `fdb/show br0` lists each MAC on its OpenFlow port, numbered in
/// `--port` order (given here as C, A, B, so C=1, A=2, B=3).
#[test]
fn learned_unicast_reaches_only_its_port_and_fdb_lists_ports() {
    const N: usize = 100;
    let lab = Lab::new(3);
    let (a, b, c) = (&lab.hosts[0], &lab.hosts[1], &lab.hosts[2]);
    let args = [
        "--bridge",
        "br0",
        "--port",
        &c.port,
        "--port",
        &a.port,
        "--port",
        &b.port,
        "--pmd-idle",
        "sleep",
    ];
    let d = Daemon::start(&lab.sw, &args);
    let (rb, rc) = (
        RawSock::open(&b.ns, &b.ifname),
        RawSock::open(&c.ns, &c.ifname),
    );
    a.ns.assert_ping(b.ip, 1); // A and B learn each other (ARP both ways, ICMP both ways)
    let before: Vec<_> = rc.drain();
    // unicast A -> B, from the kernel's UDP socket in A (the ARP entry is there now)
    let sock =
        a.ns.in_ns(|| std::net::UdpSocket::bind((a.ip, 0)).expect("bind"));
    for i in 0..N {
        sock.send_to(format!("unicast {i}").as_bytes(), (b.ip, 5555))
            .expect("send");
    }
    let mut got = 0;
    let (_, all_there) = rb.collect_until(WAIT, |f| {
        if matches!(pkt::udp_of(f), Some((_, 5555, p)) if p.starts_with(b"unicast ")) {
            got += 1;
        }
        got == N
    });
    assert!(all_there, "B received only {got} of {N} unicast datagrams");
    let marker = pkt::arp_frame(
        BROADCAST,
        1,
        a.mac,
        a.ip,
        [0; 6],
        Ipv4Addr::new(10, 200, 0, 98),
    );
    RawSock::open(&a.ns, &a.ifname).send(&marker);
    let (mut on_c, seen) = rc.collect_until(WAIT, |f| is(f, &marker));
    assert!(seen, "C never received A's broadcast marker");
    on_c.extend(
        rc.drain()
            .into_iter()
            .filter(|f| f.incoming())
            .map(|f| f.data),
    );
    let leaked: Vec<_> = on_c
        .iter()
        .filter(|f| pkt::dst_mac(f) == Some(b.mac))
        .collect();
    assert!(
        leaked.is_empty(),
        "{} of A's unicast frames to B were also sent to C (frames on C before: {})",
        leaked.len(),
        before.len()
    );
    // C talks too, then the table holds all three on their OpenFlow ports
    c.ns.assert_ping(a.ip, 1);
    let want = [(a.mac, "2"), (b.mac, "3"), (c.mac, "1")];
    wait_for("fdb/show br0 to list A, B and C", WAIT, || {
        let fdb = d.fdb("br0");
        let ok = want.iter().all(|(mac, port)| {
            fdb.iter()
                .any(|e| e.mac == pkt::mac_str(mac) && e.port == *port && e.vlan == 0)
        });
        if ok {
            Ok(())
        } else {
            Err(format!("{fdb:?}"))
        }
    });
    let fdb = d.fdb("br0");
    for (mac, _) in want {
        let n = fdb.iter().filter(|e| e.mac == pkt::mac_str(&mac)).count();
        assert_eq!(n, 1, "{} listed {n} times: {fdb:?}", pkt::mac_str(&mac));
    }
}

/// Proves: setting the switch-side veth down is noticed (dpif/show says link=down), and after
/// setting it up again (link=up) traffic flows both ways again through the same AF_XDP sockets.
#[test]
fn traffic_resumes_after_port_link_down_and_up() {
    let lab = Lab::new(2);
    let (a, b) = (&lab.hosts[0], &lab.hosts[1]);
    let d = Daemon::start(&lab.sw, &lab.daemon_args());
    a.ns.assert_ping(b.ip, 1);
    let link_is = |want: &str| {
        wait_for(&format!("dpif/show to say link={want}"), WAIT, || {
            let p = d.port(&a.port);
            if p.opt("link") == want {
                Ok(())
            } else {
                Err(format!("{p:?}"))
            }
        })
    };
    lab.sw.ip(&format!("link set {} down", a.port));
    link_is("down");
    assert_eq!(
        a.ns.ping(b.ip, 1).1,
        0,
        "a ping got through a port that is down"
    );
    lab.sw.ip(&format!("link set {} up", a.port));
    link_is("up");
    a.ns.assert_ping(b.ip, 3);
    b.ns.assert_ping(a.ip, 3);
}

fn fix_ip_csum(f: &mut [u8]) {
    f[24] = 0;
    f[25] = 0;
    let ihl = ((f[14] & 0x0f) as usize) * 4;
    let c = pkt::checksum(&f[14..14 + ihl]);
    f[24..26].copy_from_slice(&c.to_be_bytes());
}

/// Proves: frames with (a) a truncated IPv4 header, (b) an IPv4 total length larger than the
/// frame, (c) a UDP length larger than the datagram are dropped (B never sees them) and counted
/// (drop_malformed_truncated, drop_malformed_bad_length, the port's RX dropped), and the switch
/// keeps forwarding afterwards.
#[test]
fn malformed_frames_are_counted_dropped_and_forwarding_continues() {
    let lab = Lab::new(2);
    let (a, b) = (&lab.hosts[0], &lab.hosts[1]);
    let d = Daemon::start(&lab.sw, &lab.daemon_args());
    a.ns.assert_ping(b.ip, 1);
    let (ra, rb) = (
        RawSock::open(&a.ns, &a.ifname),
        RawSock::open(&b.ns, &b.ifname),
    );
    let cov0 = d.coverage();
    let drop0 = d.port(&a.port).rx_dropped;
    let good = pkt::udp_frame(
        b.mac,
        a.mac,
        a.ip,
        b.ip,
        4000,
        4001,
        &[0x5a; 40],
        UdpCsum::Full,
    );
    // (a) Ethernet + the first 10 bytes of an IPv4 header
    let truncated = good[..24].to_vec();
    // (b) total length 40 bytes more than what follows the Ethernet header
    let mut too_long = good.clone();
    let tl = (good.len() - 14 + 40) as u16;
    too_long[16..18].copy_from_slice(&tl.to_be_bytes());
    fix_ip_csum(&mut too_long);
    // (c) UDP length 100 for a 48-byte datagram (IPv4 header consistent)
    let mut udp_lies = good.clone();
    udp_lies[38..40].copy_from_slice(&100u16.to_be_bytes());
    let bad = [truncated, too_long, udp_lies];
    for f in &bad {
        ra.send(f);
    }
    let cov = wait_for("the malformed frames to be counted", WAIT, || {
        let c = d.coverage();
        let t = c.get("drop_malformed_truncated") - cov0.get("drop_malformed_truncated");
        let l = c.get("drop_malformed_bad_length") - cov0.get("drop_malformed_bad_length");
        if t >= 1 && l >= 2 {
            Ok(c)
        } else {
            Err(format!("{c:?}"))
        }
    });
    assert_eq!(
        cov.get("drop_malformed_truncated") - cov0.get("drop_malformed_truncated"),
        1,
        "{cov:?}"
    );
    assert_eq!(
        cov.get("drop_malformed_bad_length") - cov0.get("drop_malformed_bad_length"),
        2,
        "{cov:?}"
    );
    let dropped = wait_for("the port's RX dropped count", WAIT, || {
        let n = d.port(&a.port).rx_dropped - drop0;
        if n >= 3 {
            Ok(n)
        } else {
            Err(format!("+{n}"))
        }
    });
    assert_eq!(dropped, 3, "RX dropped on {}", a.port);
    // the switch goes on: a good frame after the bad ones arrives, and none of the bad ones did
    ra.send(&good);
    let (on_b, seen) = rb.collect_until(WAIT, |f| is(f, &good));
    assert!(
        seen,
        "a valid frame sent after the malformed ones never reached B"
    );
    for (i, f) in bad.iter().enumerate() {
        assert!(
            !on_b.iter().any(|g| g == f),
            "malformed frame {i} was forwarded"
        );
    }
    a.ns.assert_ping(b.ip, 3);
}
