//! Tracker tests: byte-built frames through `execute`, checksums checked against a full
//! recomputation, a reference-model property test, random-bytes fuzzing, dump format.

use super::parse::tcpf::*;
use super::*;
use crate::packet::checksum;
use crate::packet::key::{extract, FlowKey, Layout};

const A: [u8; 4] = [10, 0, 0, 1];
const B: [u8; 4] = [10, 0, 0, 2];
const C: [u8; 4] = [10, 0, 0, 3];
const NAT4: [u8; 4] = [192, 168, 1, 100];

fn v6(last: u8) -> [u8; 16] {
    let mut a = [0u8; 16];
    a[0] = 0xfd;
    a[1] = 0x00;
    a[15] = last;
    a
}

fn tcp_seg(sport: u16, dport: u16, flags: u16) -> Vec<u8> {
    let mut t = vec![0u8; 20];
    t[0..2].copy_from_slice(&sport.to_be_bytes());
    t[2..4].copy_from_slice(&dport.to_be_bytes());
    t[4..8].copy_from_slice(&1000u32.to_be_bytes());
    t[12] = 5 << 4;
    t[13] = flags as u8;
    t[14..16].copy_from_slice(&64240u16.to_be_bytes());
    t.extend_from_slice(b"payload");
    t
}

fn udp_seg(sport: u16, dport: u16) -> Vec<u8> {
    let mut u = vec![0u8; 8];
    u[0..2].copy_from_slice(&sport.to_be_bytes());
    u[2..4].copy_from_slice(&dport.to_be_bytes());
    u[4..6].copy_from_slice(&13u16.to_be_bytes());
    u.extend_from_slice(b"hello");
    u
}

fn icmp_echo(ty: u8, id: u16) -> Vec<u8> {
    let mut i = vec![ty, 0, 0, 0];
    i.extend_from_slice(&id.to_be_bytes());
    i.extend_from_slice(&[0, 1]);
    i.extend_from_slice(b"ping");
    i
}

/// An Ethernet + IPv4 frame around `l4` with all checksums filled.
fn ip4(src: [u8; 4], dst: [u8; 4], proto: u8, l4: &[u8]) -> Vec<u8> {
    let mut f = vec![2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x08, 0x00];
    let total = 20 + l4.len();
    f.extend_from_slice(&[
        0x45,
        0,
        (total >> 8) as u8,
        total as u8,
        0,
        1,
        0x40,
        0,
        64,
        proto,
    ]);
    f.extend_from_slice(&[0, 0]);
    f.extend_from_slice(&src);
    f.extend_from_slice(&dst);
    f.extend_from_slice(l4);
    fill_checksums(&mut f, true);
    f
}

/// An Ethernet + IPv6 frame around `l4` with all checksums filled.
fn ip6(src: [u8; 16], dst: [u8; 16], proto: u8, l4: &[u8]) -> Vec<u8> {
    let mut f = vec![2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x86, 0xdd];
    let pl = l4.len();
    f.extend_from_slice(&[0x60, 0, 0, 0, (pl >> 8) as u8, pl as u8, proto, 64]);
    f.extend_from_slice(&src);
    f.extend_from_slice(&dst);
    f.extend_from_slice(l4);
    fill_checksums(&mut f, true);
    f
}

fn rd16(f: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([f[at], f[at + 1]])
}

/// Recomputes every checksum of a (test-built, untruncated) frame from scratch. ICMP errors:
/// the quoted IPv4 header's checksum too (the quoted L4 checksum cannot be recomputed from a
/// truncated quote). A zero UDP/IPv4 checksum stays zero unless `udp_zero_compute`.
fn fill_checksums(f: &mut [u8], udp_zero_compute: bool) {
    let l3 = 14;
    let v6 = rd16(f, 12) == 0x86dd;
    let (proto, l4, end) = if v6 {
        (f[l3 + 6], l3 + 40, l3 + 40 + rd16(f, l3 + 4) as usize)
    } else {
        let hl = (f[l3] & 0xf) as usize * 4;
        f[l3 + 10] = 0;
        f[l3 + 11] = 0;
        let c = checksum::checksum(&f[l3..l3 + hl]);
        f[l3 + 10..l3 + 12].copy_from_slice(&c.to_be_bytes());
        (f[l3 + 9], l3 + hl, l3 + rd16(f, l3 + 2) as usize)
    };
    let pseudo = |f: &[u8], p: u8, len: usize| {
        if v6 {
            let mut s = [0u8; 16];
            let mut d = [0u8; 16];
            s.copy_from_slice(&f[l3 + 8..l3 + 24]);
            d.copy_from_slice(&f[l3 + 24..l3 + 40]);
            checksum::pseudo_v6(&s, &d, p, len as u32)
        } else {
            let s = [f[l3 + 12], f[l3 + 13], f[l3 + 14], f[l3 + 15]];
            let d = [f[l3 + 16], f[l3 + 17], f[l3 + 18], f[l3 + 19]];
            checksum::pseudo_v4(s, d, p, len as u16)
        }
    };
    let len = end - l4;
    match proto {
        6 | 17 => {
            let at = l4 + if proto == 6 { 16 } else { 6 };
            if proto == 17 && !v6 && !udp_zero_compute && rd16(f, at) == 0 {
                return;
            }
            f[at] = 0;
            f[at + 1] = 0;
            let ps = pseudo(f, proto, len);
            let mut c = !checksum::fold(checksum::sum(ps, &f[l4..end]));
            if proto == 17 && c == 0 {
                c = 0xffff;
            }
            f[at..at + 2].copy_from_slice(&c.to_be_bytes());
        }
        1 | 58 => {
            let t = f[l4];
            let is_err = if v6 {
                t < 128
            } else {
                matches!(t, 3 | 4 | 5 | 11 | 12)
            };
            if is_err && !v6 {
                let il3 = l4 + 8;
                let hl = (f[il3] & 0xf) as usize * 4;
                f[il3 + 10] = 0;
                f[il3 + 11] = 0;
                let c = checksum::checksum(&f[il3..il3 + hl]);
                f[il3 + 10..il3 + 12].copy_from_slice(&c.to_be_bytes());
            }
            f[l4 + 2] = 0;
            f[l4 + 3] = 0;
            let c = if v6 {
                let ps = pseudo(f, 58, len);
                !checksum::fold(checksum::sum(ps, &f[l4..end]))
            } else {
                checksum::checksum(&f[l4..end])
            };
            f[l4 + 2..l4 + 4].copy_from_slice(&c.to_be_bytes());
        }
        _ => {}
    }
}

/// The incremental updates must equal a full recomputation.
fn assert_checksums(f: &[u8]) {
    let mut g = f.to_vec();
    fill_checksums(&mut g, false);
    assert_eq!(f, &g[..], "checksums differ from a full recomputation");
}

fn lay(f: &[u8]) -> Layout {
    let mut k = FlowKey::default();
    let mut l = Layout::default();
    let _ = extract(f, 1, &mut k, &mut l);
    l
}

fn run(ct: &Conntrack, f: &mut [u8], act: &CtAction, now: u64) -> CtResult {
    let l = lay(f);
    ct.execute(f, &l, act, now)
}

fn commit(zone: u16) -> CtAction {
    CtAction {
        zone,
        commit: true,
        ..Default::default()
    }
}

fn track(zone: u16) -> CtAction {
    CtAction {
        zone,
        ..Default::default()
    }
}

fn nat(kind: NatKind, addr: Option<IpAddr>, ports: Option<(u16, u16)>) -> NatSpec {
    NatSpec {
        kind,
        addr_min: addr,
        addr_max: addr,
        port_min: ports.map(|p| p.0),
        port_max: ports.map(|p| p.1),
        persistent: false,
        hash: false,
        random: false,
    }
}

fn with_nat(zone: u16, commit: bool, n: NatSpec) -> CtAction {
    CtAction {
        zone,
        commit,
        nat: Some(n),
        ..Default::default()
    }
}

const NEW_T: u32 = cs::NEW | cs::TRACKED;
const EST_T: u32 = cs::ESTABLISHED | cs::TRACKED;
const RPL_T: u32 = cs::ESTABLISHED | cs::REPLY_DIR | cs::TRACKED;
const INV_T: u32 = cs::INVALID | cs::TRACKED;

fn ip4a(a: [u8; 4]) -> IpAddr {
    IpAddr::V4(Ipv4Addr::from(a))
}

fn ip6a(a: [u8; 16]) -> IpAddr {
    IpAddr::V6(Ipv6Addr::from(a))
}

#[test]
fn udp_new_then_established_on_reply() {
    let ct = Conntrack::new(1000);
    let mut p = ip4(A, B, 17, &udp_seg(1234, 53));
    // uncommitted: NEW, nothing stored
    assert_eq!(run(&ct, &mut p, &track(0), 0).state, NEW_T);
    assert_eq!(ct.count(), 0);
    let r = run(&ct, &mut p, &commit(0), 0);
    assert_eq!(r.state, NEW_T);
    assert_eq!(
        r.orig,
        Some(OrigTuple {
            proto: 17,
            src: ip4a(A),
            dst: ip4a(B),
            sport: 1234,
            dport: 53
        })
    );
    assert_eq!(ct.count(), 1);
    // more packets the same way: still NEW until a reply
    assert_eq!(run(&ct, &mut p, &track(0), 1).state, NEW_T);
    let mut rp = ip4(B, A, 17, &udp_seg(53, 1234));
    let r = run(&ct, &mut rp, &track(0), 2);
    assert_eq!(r.state, RPL_T);
    assert_eq!(r.orig.unwrap().src, ip4a(A), "orig tuple of the connection");
    assert_eq!(run(&ct, &mut p, &track(0), 3).state, EST_T);
    assert_eq!(
        ct.dump(None),
        vec!["udp,orig=(src=10.0.0.1,dst=10.0.0.2,sport=1234,dport=53),reply=(src=10.0.0.2,dst=10.0.0.1,sport=53,dport=1234)"]
    );
}

#[test]
fn tcp_handshake_states() {
    let ct = Conntrack::new(1000);
    let mut syn = ip4(A, B, 6, &tcp_seg(40000, 80, SYN));
    assert_eq!(run(&ct, &mut syn, &commit(5), 0).state, NEW_T);
    assert_eq!(
        run(&ct, &mut syn, &track(5), 1).state,
        NEW_T,
        "SYN retransmit"
    );
    let mut synack = ip4(B, A, 6, &tcp_seg(80, 40000, SYN | ACK));
    assert_eq!(run(&ct, &mut synack, &track(5), 2).state, RPL_T);
    let mut ack = ip4(A, B, 6, &tcp_seg(40000, 80, ACK));
    assert_eq!(run(&ct, &mut ack, &track(5), 3).state, EST_T);
    assert_eq!(
        ct.dump(Some(5)),
        vec!["tcp,orig=(src=10.0.0.1,dst=10.0.0.2,sport=40000,dport=80),reply=(src=10.0.0.2,dst=10.0.0.1,sport=80,dport=40000),zone=5,protoinfo=(state=ESTABLISHED)"]
    );
    assert!(ct.dump(Some(6)).is_empty());
    // an uncommitted SYN+ACK with no connection is invalid; bad flag combinations too
    let mut stray = ip4(A, C, 6, &tcp_seg(1, 2, SYN | ACK));
    assert_eq!(run(&ct, &mut stray, &commit(5), 4).state, INV_T);
    let mut bad = ip4(A, B, 6, &tcp_seg(40000, 80, SYN | FIN));
    assert_eq!(run(&ct, &mut bad, &track(5), 4).state, INV_T);
    assert_eq!(ct.stats().invalid.load(Ordering::Relaxed), 2);
}

#[test]
fn midstream_ack_committed_is_accepted() {
    // a live-migrated VM's connection shows up mid-stream at the destination
    let ct = Conntrack::new(1000);
    let mut ack = ip4(A, B, 6, &tcp_seg(40000, 22, ACK | PSH));
    let r = run(&ct, &mut ack, &commit(0), 0);
    assert_eq!(r.state, NEW_T);
    assert_eq!(ct.count(), 1);
    let mut back = ip4(B, A, 6, &tcp_seg(22, 40000, ACK));
    assert_eq!(run(&ct, &mut back, &track(0), 1).state, RPL_T);
    assert_eq!(run(&ct, &mut ack, &track(0), 2).state, EST_T);
    assert_eq!(ct.stats().invalid.load(Ordering::Relaxed), 0);
}

#[test]
fn rst_closes_and_syn_reopens() {
    let ct = Conntrack::new(1000);
    let mut syn = ip4(A, B, 6, &tcp_seg(40000, 80, SYN));
    let mut synack = ip4(B, A, 6, &tcp_seg(80, 40000, SYN | ACK));
    let mut ack = ip4(A, B, 6, &tcp_seg(40000, 80, ACK));
    run(&ct, &mut syn, &commit(0), 0);
    run(&ct, &mut synack, &track(0), 0);
    run(&ct, &mut ack, &track(0), 0);
    let mut rst = ip4(B, A, 6, &tcp_seg(80, 40000, RST));
    assert_eq!(run(&ct, &mut rst, &track(0), 10).state, RPL_T);
    assert!(ct.dump(None)[0].ends_with("protoinfo=(state=TIME_WAIT)"));
    // short timeout: gone after the close timeout, not after the established one
    assert_eq!(ct.sweep(10 + timeouts::TCP_CLOSED - 1), 0);
    // a new SYN on the closed connection re-opens it (a new connection, NEW)
    let r = run(&ct, &mut syn, &commit(0), 20);
    assert_eq!(r.state, NEW_T);
    assert_eq!(ct.count(), 1);
    assert!(ct.dump(None)[0].ends_with("protoinfo=(state=SYN_SENT)"));
    assert_eq!(run(&ct, &mut synack, &track(0), 21).state, RPL_T);
    // and RST expiry
    run(&ct, &mut rst, &track(0), 30);
    assert_eq!(ct.sweep(30 + timeouts::TCP_CLOSED), 1);
    assert_eq!(ct.count(), 0);
}

#[test]
fn zones_isolate() {
    let ct = Conntrack::new(1000);
    let mut p = ip4(A, B, 17, &udp_seg(1000, 2000));
    run(&ct, &mut p, &commit(1), 0);
    let mut r = ip4(B, A, 17, &udp_seg(2000, 1000));
    assert_eq!(run(&ct, &mut r, &track(2), 0).state, NEW_T, "other zone");
    assert_eq!(run(&ct, &mut r, &track(1), 0).state, RPL_T);
}

#[test]
fn mark_and_label_set_on_commit_visible_later() {
    let ct = Conntrack::new(1000);
    let mut p = ip4(A, B, 17, &udp_seg(1000, 2000));
    let act = CtAction {
        zone: 3,
        commit: true,
        set_mark: Some((0x12, 0xff)),
        set_label: Some((1u128 << 100 | 0xab, u128::MAX)),
        ..Default::default()
    };
    let r = run(&ct, &mut p, &act, 0);
    assert_eq!((r.mark, r.label), (0x12, 1u128 << 100 | 0xab));
    let mut rp = ip4(B, A, 17, &udp_seg(2000, 1000));
    let r = run(&ct, &mut rp, &track(3), 0);
    assert_eq!((r.mark, r.label), (0x12, 1u128 << 100 | 0xab));
    // masked update keeps the other bits
    let act2 = CtAction {
        zone: 3,
        commit: true,
        set_mark: Some((0x300, 0xf00)),
        ..Default::default()
    };
    assert_eq!(run(&ct, &mut p, &act2, 1).mark, 0x312);
    assert_eq!(
        ct.dump(None),
        vec!["udp,orig=(src=10.0.0.1,dst=10.0.0.2,sport=1000,dport=2000),reply=(src=10.0.0.2,dst=10.0.0.1,sport=2000,dport=1000),zone=3,mark=786,labels=0x100000000000000000000000ab"]
    );
    // an uncommitted packet of no connection reports zero mark
    let mut q = ip4(C, B, 17, &udp_seg(1, 2));
    assert_eq!(run(&ct, &mut q, &track(3), 1).mark, 0);
}

#[test]
fn limits_global_and_per_zone() {
    let ct = Conntrack::new(3);
    for i in 0..5u16 {
        let mut p = ip4(A, B, 17, &udp_seg(1000 + i, 53));
        assert_eq!(run(&ct, &mut p, &commit(0), 0).state, NEW_T);
    }
    assert_eq!(ct.count(), 3);
    assert_eq!(ct.stats().full.load(Ordering::Relaxed), 2);
    // the refused one is not tracked: its reply is NEW
    let mut r = ip4(B, A, 17, &udp_seg(53, 1004));
    assert_eq!(run(&ct, &mut r, &track(0), 0).state, NEW_T);
    ct.set_maxconns(100);
    assert_eq!(ct.maxconns(), 100);
    ct.set_zone_limit(7, Some(2));
    for i in 0..4u16 {
        let mut p = ip4(A, C, 17, &udp_seg(1000 + i, 53));
        run(&ct, &mut p, &commit(7), 0);
    }
    assert_eq!(ct.zone_limit(7), Some((2, 2)));
    assert_eq!(ct.stats().zone_full.load(Ordering::Relaxed), 2);
    assert_eq!(ct.count(), 5);
    // flushing the zone frees its quota
    assert_eq!(ct.flush(Some(7)), 2);
    assert_eq!(ct.zone_limit(7), Some((2, 0)));
    let mut p = ip4(A, C, 17, &udp_seg(999, 53));
    run(&ct, &mut p, &commit(7), 0);
    assert_eq!(ct.zone_limit(7), Some((2, 1)));
    assert_eq!(ct.zone_limits(), vec![(7, 2, 1)]);
    ct.set_zone_limit(7, None);
    assert_eq!(ct.zone_limit(7), None);
}

#[test]
fn flush_zone_and_tuple() {
    let ct = Conntrack::new(1000);
    for (zone, sport) in [(1u16, 1u16), (1, 2), (2, 3), (0, 4)] {
        let mut p = ip4(A, B, 17, &udp_seg(sport, 53));
        run(&ct, &mut p, &commit(zone), 0);
    }
    let mut t = ip4(A, C, 6, &tcp_seg(5, 80, SYN));
    run(&ct, &mut t, &commit(1), 0);
    assert_eq!(ct.count(), 5);
    let f = TupleFilter {
        proto: Some(17),
        sport: Some(2),
        ..Default::default()
    };
    assert_eq!(ct.flush_tuple(1, &f, &TupleFilter::default()), 1);
    let rf = TupleFilter {
        src: Some(ip4a(C)),
        ..Default::default()
    };
    assert_eq!(
        ct.flush_tuple(1, &TupleFilter::default(), &rf),
        1,
        "by reply"
    );
    assert_eq!(ct.flush(Some(1)), 1);
    assert_eq!(ct.count(), 2);
    assert_eq!(ct.flush(None), 2);
    assert_eq!(ct.count(), 0);
    assert!(ct.dump(None).is_empty());
}

#[test]
fn sweep_expires_with_a_fake_clock() {
    let ct = Conntrack::new(1000);
    let mut p = ip4(A, B, 17, &udp_seg(1, 2));
    run(&ct, &mut p, &commit(0), 1000);
    let mut e = ip4(A, B, 1, &icmp_echo(8, 77));
    run(&ct, &mut e, &commit(0), 1000);
    assert_eq!(ct.sweep(1000 + timeouts::OTHER_FIRST - 1), 0);
    // an expired (unswept) connection is not found
    let mut r = ip4(B, A, 17, &udp_seg(2, 1));
    assert_eq!(
        run(&ct, &mut r, &track(0), 1000 + timeouts::OTHER_FIRST).state,
        NEW_T
    );
    assert_eq!(ct.sweep(1000 + timeouts::OTHER_FIRST), 2);
    assert_eq!(ct.count(), 0);
    assert_eq!(ct.stats().expired.load(Ordering::Relaxed), 2);
    // traffic refreshes: bidirectional UDP gets the shorter multiple timeout
    run(&ct, &mut p, &commit(0), 0);
    run(&ct, &mut r, &track(0), 50_000);
    assert_eq!(ct.sweep(50_000 + timeouts::OTHER_BIDIR - 1), 0);
    assert_eq!(ct.sweep(50_000 + timeouts::OTHER_BIDIR), 1);
}

#[test]
fn icmp_echo_tracking() {
    let ct = Conntrack::new(1000);
    let mut req = ip4(A, B, 1, &icmp_echo(8, 77));
    assert_eq!(run(&ct, &mut req, &commit(0), 0).state, NEW_T);
    let mut rep = ip4(B, A, 1, &icmp_echo(0, 77));
    let r = run(&ct, &mut rep, &track(0), 0);
    assert_eq!(r.state, RPL_T);
    assert_eq!((r.orig.unwrap().sport, r.orig.unwrap().dport), (8, 0));
    let mut other_id = ip4(B, A, 1, &icmp_echo(0, 78));
    assert_eq!(
        run(&ct, &mut other_id, &commit(0), 0).state,
        INV_T,
        "reply opens nothing"
    );
    assert_eq!(
        ct.dump(None),
        vec!["icmp,orig=(src=10.0.0.1,dst=10.0.0.2,id=77,type=8,code=0),reply=(src=10.0.0.2,dst=10.0.0.1,id=77,type=0,code=0)"]
    );
    let mut req6 = ip6(v6(1), v6(2), 58, &icmp_echo(128, 5));
    run(&ct, &mut req6, &commit(0), 0);
    let mut rep6 = ip6(v6(2), v6(1), 58, &icmp_echo(129, 5));
    assert_eq!(run(&ct, &mut rep6, &track(0), 0).state, RPL_T);
    assert_eq!(
        ct.stats_show(),
        "Connections Stats:\n    Total: 2\n  ICMP: 1\n"
    );
}

#[test]
fn snat_udp_v4_both_directions() {
    let ct = Conntrack::new(1000);
    let act = with_nat(0, true, nat(NatKind::Src, Some(ip4a(NAT4)), None));
    let mut p = ip4(A, B, 17, &udp_seg(5000, 53));
    let r = run(&ct, &mut p, &act, 0);
    assert_eq!(r.state, NEW_T | cs::SRC_NAT);
    assert_eq!(p, ip4(NAT4, B, 17, &udp_seg(5000, 53)), "source translated");
    assert_checksums(&p);
    let mut rp = ip4(B, NAT4, 17, &udp_seg(53, 5000));
    let r = run(
        &ct,
        &mut rp,
        &with_nat(0, false, nat(NatKind::Reapply, None, None)),
        1,
    );
    assert_eq!(r.state, RPL_T | cs::DST_NAT);
    assert_eq!(rp, ip4(B, A, 17, &udp_seg(53, 5000)));
    // without nat in the action the packet is tracked but not translated
    let mut p2 = ip4(A, B, 17, &udp_seg(5000, 53));
    assert_eq!(run(&ct, &mut p2, &track(0), 2).state, EST_T);
    assert_eq!(p2, ip4(A, B, 17, &udp_seg(5000, 53)));
    // bare nat re-applies
    let mut p3 = ip4(A, B, 17, &udp_seg(5000, 53));
    let r = run(
        &ct,
        &mut p3,
        &with_nat(0, false, nat(NatKind::Reapply, None, None)),
        3,
    );
    assert_eq!(r.state, EST_T | cs::SRC_NAT);
    assert_eq!(p3, ip4(NAT4, B, 17, &udp_seg(5000, 53)));
    assert_eq!(
        ct.dump(None),
        vec!["udp,orig=(src=10.0.0.1,dst=10.0.0.2,sport=5000,dport=53),reply=(src=10.0.0.2,dst=192.168.1.100,sport=53,dport=5000)"]
    );
}

#[test]
fn bare_nat_on_a_new_connection_does_nothing() {
    let ct = Conntrack::new(1000);
    let mut p = ip4(A, B, 17, &udp_seg(5000, 53));
    let before = p.clone();
    let r = run(
        &ct,
        &mut p,
        &with_nat(0, true, nat(NatKind::Reapply, None, None)),
        0,
    );
    assert_eq!(r.state, NEW_T);
    assert_eq!(p, before);
    assert_eq!(ct.count(), 1);
}

#[test]
fn zero_udp_checksum_stays_zero() {
    let ct = Conntrack::new(1000);
    let mut p = ip4(A, B, 17, &udp_seg(5000, 53));
    p[14 + 20 + 6] = 0;
    p[14 + 20 + 7] = 0;
    run(
        &ct,
        &mut p,
        &with_nat(
            0,
            true,
            nat(NatKind::Src, Some(ip4a(NAT4)), Some((7000, 7000))),
        ),
        0,
    );
    assert_eq!(&p[26..30], &NAT4);
    assert_eq!(rd16(&p, 34), 7000);
    assert_eq!(rd16(&p, 40), 0);
    assert_checksums(&p);
}

#[test]
fn dnat_tcp_v4_with_port() {
    let ct = Conntrack::new(1000);
    let vip = [172, 16, 0, 1];
    let act = with_nat(
        1,
        true,
        nat(NatKind::Dst, Some(ip4a(C)), Some((8080, 8080))),
    );
    let mut syn = ip4(A, vip, 6, &tcp_seg(40000, 80, SYN));
    let r = run(&ct, &mut syn, &act, 0);
    assert_eq!(r.state, NEW_T | cs::DST_NAT);
    assert_eq!(syn, ip4(A, C, 6, &tcp_seg(40000, 8080, SYN)));
    assert_checksums(&syn);
    let mut synack = ip4(C, A, 6, &tcp_seg(8080, 40000, SYN | ACK));
    let r = run(&ct, &mut synack, &act, 1);
    assert_eq!(r.state, RPL_T | cs::SRC_NAT);
    assert_eq!(synack, ip4(vip, A, 6, &tcp_seg(80, 40000, SYN | ACK)));
    assert_checksums(&synack);
    let mut ack = ip4(A, vip, 6, &tcp_seg(40000, 80, ACK));
    let r = run(&ct, &mut ack, &act, 2);
    assert_eq!(r.state, EST_T | cs::DST_NAT);
    assert_eq!(ack, ip4(A, C, 6, &tcp_seg(40000, 8080, ACK)));
    assert_eq!(
        r.orig,
        Some(OrigTuple {
            proto: 6,
            src: ip4a(A),
            dst: ip4a(vip),
            sport: 40000,
            dport: 80
        })
    );
}

#[test]
fn nat_address_range_hash_stays_in_range() {
    let ct = Conntrack::new(1000);
    let n = NatSpec {
        addr_max: Some(ip4a([192, 168, 1, 110])),
        ..nat(NatKind::Src, Some(ip4a(NAT4)), Some((10000, 10100)))
    };
    for i in 0..50u16 {
        let mut p = ip4(A, B, 17, &udp_seg(2000 + i, 53));
        run(&ct, &mut p, &with_nat(0, true, n), 0);
        assert!((100..=110).contains(&p[29]), "address in range");
        assert!((10000..=10100).contains(&rd16(&p, 34)), "port in range");
        assert_checksums(&p);
    }
    assert_eq!(ct.count(), 50);
}

#[test]
fn snat_v6_tcp_and_dnat_v6_udp() {
    let ct = Conntrack::new(1000);
    let a = v6(1);
    let b = v6(2);
    let n = v6(0x99);
    let act = with_nat(0, true, nat(NatKind::Src, Some(ip6a(n)), None));
    let mut syn = ip6(a, b, 6, &tcp_seg(33000, 443, SYN));
    assert_eq!(run(&ct, &mut syn, &act, 0).state, NEW_T | cs::SRC_NAT);
    assert_eq!(syn, ip6(n, b, 6, &tcp_seg(33000, 443, SYN)));
    assert_checksums(&syn);
    let mut synack = ip6(b, n, 6, &tcp_seg(443, 33000, SYN | ACK));
    assert_eq!(run(&ct, &mut synack, &act, 0).state, RPL_T | cs::DST_NAT);
    assert_eq!(synack, ip6(b, a, 6, &tcp_seg(443, 33000, SYN | ACK)));
    assert_checksums(&synack);

    let vip = v6(0x50);
    let be = v6(0x51);
    let act = with_nat(
        2,
        true,
        nat(NatKind::Dst, Some(ip6a(be)), Some((5353, 5353))),
    );
    let mut q = ip6(a, vip, 17, &udp_seg(1111, 53));
    run(&ct, &mut q, &act, 0);
    assert_eq!(q, ip6(a, be, 17, &udp_seg(1111, 5353)));
    assert_checksums(&q);
    let mut ans = ip6(be, a, 17, &udp_seg(5353, 1111));
    assert_eq!(run(&ct, &mut ans, &act, 0).state, RPL_T | cs::SRC_NAT);
    assert_eq!(ans, ip6(vip, a, 17, &udp_seg(53, 1111)));
    assert!(ct.dump(Some(2))[0].starts_with("udp,orig=(src=fd00::1,dst=fd00::50,sport=1111,dport=53),reply=(src=fd00::51,dst=fd00::1,sport=5353,dport=1111),zone=2"));
}

#[test]
fn snat_icmp_echo_v4_and_v6() {
    let ct = Conntrack::new(1000);
    let act = with_nat(0, true, nat(NatKind::Src, Some(ip4a(NAT4)), None));
    let mut req = ip4(A, B, 1, &icmp_echo(8, 700));
    assert_eq!(run(&ct, &mut req, &act, 0).state, NEW_T | cs::SRC_NAT);
    assert_eq!(req, ip4(NAT4, B, 1, &icmp_echo(8, 700)));
    // a second pinger with the same id from another host: the id must change
    let mut req2 = ip4(C, B, 1, &icmp_echo(8, 700));
    run(&ct, &mut req2, &act, 0);
    assert_eq!(&req2[26..30], &NAT4);
    let id2 = rd16(&req2, 34 + 4);
    assert_ne!(id2, 700);
    assert_checksums(&req2);
    let mut rep2 = ip4(B, NAT4, 1, &icmp_echo(0, id2));
    assert_eq!(run(&ct, &mut rep2, &act, 0).state, RPL_T | cs::DST_NAT);
    assert_eq!(rep2, ip4(B, C, 1, &icmp_echo(0, 700)));

    let n6 = v6(0x77);
    let act6 = with_nat(0, true, nat(NatKind::Src, Some(ip6a(n6)), None));
    let mut r6 = ip6(v6(1), v6(2), 58, &icmp_echo(128, 9));
    run(&ct, &mut r6, &act6, 0);
    assert_eq!(r6, ip6(n6, v6(2), 58, &icmp_echo(128, 9)));
    assert_checksums(&r6);
    let mut p6 = ip6(v6(2), n6, 58, &icmp_echo(129, 9));
    assert_eq!(run(&ct, &mut p6, &act6, 0).state, RPL_T | cs::DST_NAT);
    assert_eq!(p6, ip6(v6(2), v6(1), 58, &icmp_echo(129, 9)));
}

#[test]
fn snat_port_collision_picks_another_port() {
    let ct = Conntrack::new(1000);
    let act = with_nat(
        0,
        true,
        nat(NatKind::Src, Some(ip4a(NAT4)), Some((6000, 6001))),
    );
    let mut p1 = ip4(A, B, 6, &tcp_seg(40000, 80, SYN));
    let mut p2 = ip4(C, B, 6, &tcp_seg(40000, 80, SYN));
    let mut p3 = ip4([10, 0, 0, 4], B, 6, &tcp_seg(40000, 80, SYN));
    run(&ct, &mut p1, &act, 0);
    run(&ct, &mut p2, &act, 0);
    let (s1, s2) = (rd16(&p1, 34), rd16(&p2, 34));
    assert_ne!(s1, s2);
    assert!([6000, 6001].contains(&s1) && [6000, 6001].contains(&s2));
    // the range is exhausted: the third is refused (NEW, not committed)
    assert_eq!(run(&ct, &mut p3, &act, 0).state, NEW_T);
    assert_eq!(ct.stats().nat_exhausted.load(Ordering::Relaxed), 1);
    assert_eq!(ct.count(), 2);
    // without a port range the sender's port is kept, and moved only on collision
    let act = with_nat(0, true, nat(NatKind::Src, Some(ip4a(NAT4)), None));
    let mut q1 = ip4(A, B, 17, &udp_seg(3000, 53));
    let mut q2 = ip4(C, B, 17, &udp_seg(3000, 53));
    run(&ct, &mut q1, &act, 0);
    run(&ct, &mut q2, &act, 0);
    assert_eq!(rd16(&q1, 34), 3000);
    let p = rd16(&q2, 34);
    assert!(p != 3000 && p >= 1024);
    assert_checksums(&q2);
    let mut back = ip4(B, NAT4, 17, &udp_seg(53, p));
    run(&ct, &mut back, &act, 0);
    assert_eq!(back, ip4(B, C, 17, &udp_seg(53, 3000)));
}

/// An ICMP error as a router would send it: `outer_src` → `outer_dst`, quoting `quoted`'s IP
/// header and first 8 bytes.
fn icmp_err4(outer_src: [u8; 4], outer_dst: [u8; 4], quoted: &[u8]) -> Vec<u8> {
    let mut m = vec![3, 3, 0, 0, 0, 0, 0, 0];
    m.extend_from_slice(&quoted[14..14 + 28]);
    ip4(outer_src, outer_dst, 1, &m)
}

#[test]
fn icmp_error_related_to_a_snat_connection_is_reversed() {
    let ct = Conntrack::new(1000);
    let act = with_nat(
        0,
        true,
        nat(NatKind::Src, Some(ip4a(NAT4)), Some((9000, 9000))),
    );
    let orig = ip4(A, B, 17, &udp_seg(5000, 53));
    let mut p = orig.clone();
    run(&ct, &mut p, &act, 0);
    // the server answers port unreachable about what it received (the translated packet)
    let mut err = icmp_err4(B, NAT4, &p);
    let r = run(&ct, &mut err, &act, 1);
    assert_eq!(
        r.state,
        cs::RELATED | cs::REPLY_DIR | cs::TRACKED | cs::DST_NAT
    );
    // the client gets an error about the packet it sent
    assert_eq!(err, icmp_err4(B, A, &orig));
    assert_checksums(&err);
    // without nat in the action: related, untouched
    let mut err2 = icmp_err4(B, NAT4, &p);
    let before = err2.clone();
    assert_eq!(
        run(&ct, &mut err2, &track(0), 1).state,
        cs::RELATED | cs::REPLY_DIR | cs::TRACKED
    );
    assert_eq!(err2, before);
    // an error about nothing tracked is invalid
    let other = ip4(A, C, 17, &udp_seg(1, 2));
    let mut err3 = icmp_err4(C, A, &other);
    assert_eq!(run(&ct, &mut err3, &commit(0), 1).state, INV_T);
}

#[test]
fn icmp_error_related_to_a_dnat_connection_from_a_router() {
    let ct = Conntrack::new(1000);
    let vip = [172, 16, 0, 1];
    let router = [10, 9, 9, 9];
    let act = with_nat(
        0,
        true,
        nat(NatKind::Dst, Some(ip4a(C)), Some((8080, 8080))),
    );
    let orig = ip4(A, vip, 6, &tcp_seg(40000, 80, SYN));
    let mut p = orig.clone();
    run(&ct, &mut p, &act, 0);
    // a router on the way to the backend reports time exceeded to the client
    let mut err = icmp_err4(router, A, &p);
    err[34] = 11;
    err[35] = 0;
    fill_checksums(&mut err, false);
    let r = run(&ct, &mut err, &act, 1);
    assert_eq!(
        r.state & (cs::RELATED | cs::REPLY_DIR),
        cs::RELATED | cs::REPLY_DIR
    );
    // as OVS does, the outer source becomes the VIP (the client knows no backend)
    let mut want = icmp_err4(vip, A, &orig);
    want[34] = 11;
    want[35] = 0;
    fill_checksums(&mut want, false);
    assert_eq!(err, want, "quoted packet back to the VIP");
}

#[test]
fn icmpv6_error_related_is_reversed() {
    let ct = Conntrack::new(1000);
    let n = v6(0x99);
    let act = with_nat(0, true, nat(NatKind::Src, Some(ip6a(n)), None));
    let orig = ip6(v6(1), v6(2), 17, &udp_seg(5000, 53));
    let mut p = orig.clone();
    run(&ct, &mut p, &act, 0);
    let mk = |src: [u8; 16], dst: [u8; 16], q: &[u8]| {
        let mut m = vec![1, 4, 0, 0, 0, 0, 0, 0];
        m.extend_from_slice(&q[14..14 + 48]);
        ip6(src, dst, 58, &m)
    };
    let mut err = mk(v6(2), n, &p);
    let r = run(&ct, &mut err, &act, 1);
    assert_eq!(r.state & cs::RELATED, cs::RELATED);
    assert_eq!(err, mk(v6(2), v6(1), &orig));
}

#[test]
fn force_ends_a_connection_seen_in_the_reply_direction() {
    let ct = Conntrack::new(1000);
    let mut p = ip4(A, B, 17, &udp_seg(1, 2));
    run(&ct, &mut p, &commit(0), 0);
    let mut r = ip4(B, A, 17, &udp_seg(2, 1));
    let act = CtAction {
        force: true,
        ..commit(0)
    };
    assert_eq!(run(&ct, &mut r, &act, 1).state, NEW_T);
    assert_eq!(ct.count(), 1);
    assert!(ct.dump(None)[0].starts_with("udp,orig=(src=10.0.0.2,dst=10.0.0.1"));
}

#[test]
fn unparsable_frames_are_invalid() {
    let ct = Conntrack::new(1000);
    let good = ip4(A, B, 17, &udp_seg(1, 2));
    for cut in 0..good.len() {
        let mut f = good[..cut].to_vec();
        let l = Layout {
            l3: 14,
            l4: 34,
            l4_len: 13,
            ip_version: 4,
        };
        assert_eq!(
            ct.execute(&mut f, &l, &commit(0), 0).state,
            INV_T,
            "cut {cut}"
        );
    }
    // a bad IPv4 header checksum, a fragment, a non-IP layout
    let mut f = good.clone();
    f[24] ^= 1;
    assert_eq!(run(&ct, &mut f, &commit(0), 0).state, INV_T);
    let mut f = good.clone();
    f[20] = 0x20; // MF
    fill_checksums(&mut f, false);
    assert_eq!(run(&ct, &mut f, &commit(0), 0).state, INV_T);
    let mut f = good.clone();
    let l = Layout::default();
    assert_eq!(ct.execute(&mut f, &l, &commit(0), 0).state, INV_T);
    assert_eq!(ct.count(), 0);
}

/// xorshift64*: deterministic randomness without a crate.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

#[test]
fn random_bytes_never_panic() {
    let ct = Conntrack::new(1 << 20);
    let mut rng = Rng(0x1234_5678_9abc_def1);
    // the flow the ICMP error template quotes, so that related and NAT paths run
    let mut base = ip4(A, B, 17, &udp_seg(1, 2));
    run(&ct, &mut base, &commit(0), 0);
    let mut natted = ip4(C, B, 17, &udp_seg(7, 8));
    let snat = nat(NatKind::Src, Some(ip4a(NAT4)), Some((9000, 9000)));
    run(&ct, &mut natted, &with_nat(0, true, snat), 0);
    let templates = [
        icmp_err4(B, NAT4, &natted),
        ip4(A, B, 17, &udp_seg(1, 2)),
        ip4(A, B, 6, &tcp_seg(1, 2, SYN)),
        icmp_err4(B, A, &ip4(A, B, 17, &udp_seg(1, 2))),
        ip6(v6(1), v6(2), 6, &tcp_seg(1, 2, ACK)),
        ip6(v6(1), v6(2), 58, &icmp_echo(128, 1)),
    ];
    let nat_act = with_nat(0, true, nat(NatKind::Src, Some(ip4a(NAT4)), Some((1, 3))));
    let (mut tracked, mut related, mut related_nat) = (0, 0, 0);
    for i in 0..200_000u32 {
        let mut f = if i % 4 == 0 {
            let n = rng.below(120) as usize;
            (0..n).map(|_| rng.next() as u8).collect::<Vec<u8>>()
        } else {
            let mut f = templates[rng.below(templates.len() as u64) as usize].clone();
            for _ in 0..1 + rng.below(4) {
                let at = rng.below(f.len() as u64) as usize;
                f[at] = rng.next() as u8;
            }
            if rng.below(4) == 0 {
                let cut = rng.below(f.len() as u64 + 8) as usize;
                f.truncate(cut);
            }
            // half the time make the IPv4 header checksum right again, so that mutated
            // packets get past it into the L4, ICMP-error and NAT code
            if i % 2 == 1 && f.len() >= 34 && f[12..14] == [8, 0] {
                let hl = (f[14] & 0xf) as usize * 4;
                if hl >= 20 && 14 + hl <= f.len() {
                    f[24] = 0;
                    f[25] = 0;
                    let c = checksum::checksum(&f[14..14 + hl]);
                    f[24..26].copy_from_slice(&c.to_be_bytes());
                }
            }
            f
        };
        // a layout from the extractor, or a made-up one
        let l = if i % 3 == 0 {
            Layout {
                l3: rng.below(80) as u16,
                l4: rng.below(120) as u16,
                l4_len: rng.below(200) as u16,
                ip_version: [4, 6, 0, 5][rng.below(4) as usize],
            }
        } else {
            lay(&f)
        };
        let act = if (i / 2) % 2 == 0 { nat_act } else { commit(0) };
        let r = ct.execute(&mut f, &l, &act, i as u64 / 10);
        assert!(r.state & cs::TRACKED != 0);
        if r.state & cs::RELATED != 0 && r.state & cs::DST_NAT != 0 {
            related_nat += 1;
        }
        if r.state & cs::INVALID == 0 {
            tracked += 1;
        }
        if r.state & cs::RELATED != 0 {
            related += 1;
        }
    }
    assert!(
        tracked > 20_000 && related > 100 && related_nat > 100,
        "{tracked} tracked, {related} related, {related_nat} related and NATed"
    );
}

/// (zone, proto, src, dst, sport, dport) as originally committed.
type MKey = (u16, u8, [u8; 4], [u8; 4], u16, u16);

/// The reference model: committed connections by original tuple, with what was seen.
#[derive(Clone, Copy, Debug)]
struct MConn {
    tcp: bool,
    peers: [u8; 2],
    replied: bool,
}

fn model_tcp(m: &mut MConn, reply: bool, f: u16) -> Option<u32> {
    // the same rules as the OVS state machine, written as a table of facts
    use super::tcp::state::*;
    let syn_only = f & (SYN | ACK) == SYN;
    let (s, d) = if reply { (1, 0) } else { (0, 1) };
    if syn_only && m.peers[0] >= FIN_WAIT_2 && m.peers[1] >= FIN_WAIT_2 {
        return None; // closed: re-open
    }
    if syn_only && m.peers[s] <= SYN_SENT {
        m.peers[s] = SYN_SENT;
        return Some(cs::NEW);
    }
    m.peers[s] = m.peers[s].max(SYN_SENT);
    if f & FIN != 0 {
        m.peers[s] = m.peers[s].max(CLOSING);
    }
    if f & ACK != 0 {
        m.peers[d] = match m.peers[d] {
            SYN_SENT => ESTABLISHED,
            CLOSING => FIN_WAIT_2,
            x => x,
        };
    }
    if f & RST != 0 {
        m.peers = [TIME_WAIT, TIME_WAIT];
    }
    Some(cs::ESTABLISHED | if reply { cs::REPLY_DIR } else { 0 })
}

#[test]
fn verdicts_match_a_reference_model() {
    use std::collections::HashMap as Map;
    let hosts = [A, B, C];
    let flag_set = [
        SYN,
        SYN | ACK,
        ACK,
        ACK | PSH,
        FIN | ACK,
        RST,
        RST | ACK,
        SYN | FIN,
        0,
        FIN,
    ];
    for seed in 1..=40u64 {
        let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
        let ct = Conntrack::new(1_000_000);
        // key: (zone, proto, src, dst, sport, dport) as originally committed
        let mut model: Map<MKey, MConn> = Map::new();
        for step in 0..500 {
            let zone = rng.below(2) as u16;
            let kind = rng.below(3); // tcp, udp, icmp echo
            let tcp = kind == 0;
            let icmp = kind == 2;
            let icmp_t = [8u8, 0][rng.below(2) as usize];
            let s = hosts[rng.below(3) as usize];
            let mut d = hosts[rng.below(3) as usize];
            if d == s {
                d = [10, 0, 0, 9];
            }
            let sp = 1000 + rng.below(2) as u16;
            let dp = 80 + rng.below(2) as u16;
            let flags = flag_set[rng.below(flag_set.len() as u64) as usize];
            let do_commit = rng.below(3) != 0;
            let proto = [6, 17, 1][kind as usize];
            let mut f = if tcp {
                ip4(s, d, 6, &tcp_seg(sp, dp, flags))
            } else if icmp {
                ip4(s, d, 1, &icmp_echo(icmp_t, sp))
            } else {
                ip4(s, d, 17, &udp_seg(sp, dp))
            };
            let act = CtAction {
                zone,
                commit: do_commit,
                ..Default::default()
            };
            let l = lay(&f);
            let got = ct.execute(&mut f, &l, &act, step).state;

            // the model's verdict
            // ICMP: (type, id) in place of the ports; a reply type answers a request
            let (fk, rk) = if icmp {
                (
                    (zone, proto, s, d, icmp_t as u16, sp),
                    (zone, proto, d, s, 8 - icmp_t as u16, sp),
                )
            } else {
                ((zone, proto, s, d, sp, dp), (zone, proto, d, s, dp, sp))
            };
            let invalid_flags = tcp && super::tcp::invalid_flags(flags);
            let found = if model.contains_key(&fk) {
                Some((fk, false))
            } else if model.contains_key(&rk) {
                Some((rk, true))
            } else {
                None
            };
            let mut create = false;
            let mut want = 0;
            if let Some((k, reply)) = found {
                let m = model.get_mut(&k).unwrap();
                if invalid_flags {
                    want = cs::INVALID;
                } else if m.tcp {
                    match model_tcp(m, reply, flags) {
                        Some(v) => want = v,
                        None => {
                            model.remove(&k);
                            create = true;
                        }
                    }
                } else {
                    if reply {
                        m.replied = true;
                    }
                    want = if m.replied {
                        cs::ESTABLISHED | if reply { cs::REPLY_DIR } else { 0 }
                    } else {
                        cs::NEW
                    };
                }
            } else {
                create = true;
            }
            if create {
                let valid_new = if tcp {
                    super::tcp::valid_new(flags)
                } else {
                    !icmp || icmp_t == 8
                };
                if !valid_new {
                    want = cs::INVALID;
                } else {
                    want = cs::NEW;
                    if do_commit {
                        use super::tcp::state::*;
                        model.insert(
                            fk,
                            MConn {
                                tcp,
                                peers: [SYN_SENT, CLOSED],
                                replied: false,
                            },
                        );
                    }
                }
            }
            assert_eq!(
                got,
                want | cs::TRACKED,
                "seed {seed} step {step}: {:?} {s:?}:{sp} -> {d:?}:{dp} flags {flags:#x} commit {do_commit} zone {zone}",
                ["tcp", "udp", "icmp"][kind as usize]
            );
            assert_eq!(ct.count() as usize, model.len(), "seed {seed} step {step}");
        }
    }
}

#[test]
fn concurrent_execute_from_two_threads() {
    let ct = std::sync::Arc::new(Conntrack::new(100_000));
    let hs: Vec<_> = (0..2u16)
        .map(|t| {
            let ct = ct.clone();
            std::thread::spawn(move || {
                for i in 0..2000u16 {
                    let mut p = ip4(A, B, 17, &udp_seg(i, 53 + t));
                    let l = lay(&p);
                    ct.execute(&mut p, &l, &commit(0), 0);
                    let mut r = ip4(B, A, 17, &udp_seg(53 + t, i));
                    let l = lay(&r);
                    assert_eq!(ct.execute(&mut r, &l, &track(0), 0).state, RPL_T);
                }
            })
        })
        .collect();
    for h in hs {
        h.join().unwrap();
    }
    assert_eq!(ct.count(), 4000);
}

/// Prints ns per `execute` for an established connection among 10,000 (no timing assert).
/// `cargo test --release -p datapath conntrack::tests::bench -- --ignored --nocapture`
#[test]
#[ignore]
fn bench_execute_established_among_10000() {
    let ct = Conntrack::new(3_000_000);
    let mut pkts = Vec::new();
    for i in 0..10_000u32 {
        let src = [10, 1, (i >> 8) as u8, i as u8];
        let mut p = ip4(src, B, 17, &udp_seg(1000 + (i % 50) as u16, 53));
        let l = lay(&p);
        ct.execute(&mut p, &l, &commit(0), 0);
        let mut r = ip4(B, src, 17, &udp_seg(53, 1000 + (i % 50) as u16));
        let l2 = lay(&r);
        ct.execute(&mut r, &l2, &track(0), 0);
        pkts.push((p, l));
    }
    let rounds = 100;
    let t = std::time::Instant::now();
    let mut est = 0u64;
    for _ in 0..rounds {
        for (p, l) in pkts.iter_mut() {
            est += (ct.execute(p, l, &commit(0), 1).state & cs::ESTABLISHED != 0) as u64;
        }
    }
    let ns = t.elapsed().as_nanos() as f64 / (rounds * pkts.len()) as f64;
    assert_eq!(est, (rounds * pkts.len()) as u64);
    // the same packets in batches of 32 (the PMD's path for ct(table=))
    let mut b = CtBatch::default();
    let t = std::time::Instant::now();
    let mut est = 0u64;
    for _ in 0..rounds {
        for chunk in pkts.chunks_mut(32) {
            b.clear();
            for (p, l) in chunk.iter() {
                ct.batch_add(&mut b, p, l, &track(0), None);
            }
            ct.batch_lookup(&mut b, 1);
            for (i, (p, _)) in chunk.iter_mut().enumerate() {
                est += (ct.batch_finish(&mut b, i, p, 1).state & cs::ESTABLISHED != 0) as u64;
            }
        }
    }
    let ns_batch = t.elapsed().as_nanos() as f64 / (rounds * pkts.len()) as f64;
    assert_eq!(est, (rounds * pkts.len()) as u64);
    // with SNAT on every packet
    let ct2 = Conntrack::new(3_000_000);
    let act = with_nat(
        0,
        true,
        nat(NatKind::Src, Some(ip4a(NAT4)), Some((1024, 65535))),
    );
    let mut pk2 = Vec::new();
    for i in 0..10_000u32 {
        let src = [10, 1, (i >> 8) as u8, i as u8];
        let p = ip4(src, B, 17, &udp_seg(1000, 53));
        let mut q = p.clone();
        let l = lay(&q);
        ct2.execute(&mut q, &l, &act, 0);
        pk2.push((p, l));
    }
    let t = std::time::Instant::now();
    let mut buf = pk2[0].0.clone();
    for _ in 0..rounds {
        for (p, l) in pk2.iter() {
            buf.copy_from_slice(p);
            ct2.execute(&mut buf, l, &act, 1);
        }
    }
    let ns_nat = t.elapsed().as_nanos() as f64 / (rounds * pk2.len()) as f64;
    println!("conntrack execute, established UDP among 10000: {ns:.1} ns/packet (commit), {ns_batch:.1} ns/packet batched (32, track); with SNAT rewrite: {ns_nat:.1} ns/packet");
}

#[test]
fn commit_after_dnat_in_the_same_zone_finds_the_connection() {
    // OVN: ct_lb (ct(commit,nat(dst=backend))) then, after recirculation, ct_commit in the
    // same zone on the translated packet must update the same connection
    let ct = Conntrack::new(1000);
    let vip = [172, 16, 0, 1];
    let lb = with_nat(
        4,
        true,
        nat(NatKind::Dst, Some(ip4a(C)), Some((8080, 8080))),
    );
    let mut syn = ip4(A, vip, 6, &tcp_seg(40000, 80, SYN));
    let first = run(&ct, &mut syn, &lb, 0);
    assert_eq!(first.state, NEW_T | cs::DST_NAT);
    let l = lay(&syn);
    let act = CtAction {
        set_mark: Some((1, 1)),
        ..commit(4)
    };
    let r = ct.execute_md(&mut syn, &l, &act, 0, Some(&first));
    assert_eq!(r.state, NEW_T | cs::DST_NAT);
    assert_eq!(r.mark, 1);
    assert_eq!(
        ct.count(),
        1,
        "no second connection for the translated tuple"
    );
    assert_eq!(
        syn,
        ip4(A, C, 6, &tcp_seg(40000, 8080, SYN)),
        "not translated twice"
    );
    // in another zone the earlier metadata does not apply
    let r = ct.execute_md(&mut syn, &l, &commit(5), 0, Some(&first));
    assert_eq!(r.state, NEW_T);
    assert_eq!(ct.count(), 2);
    // a second (bare) nat in the same zone is not applied again
    let mut syn2 = ip4(A, vip, 6, &tcp_seg(40000, 80, SYN));
    let r1 = run(&ct, &mut syn2, &lb, 1);
    let l = lay(&syn2);
    let again = with_nat(4, false, nat(NatKind::Reapply, None, None));
    let r2 = ct.execute_md(&mut syn2, &l, &again, 1, Some(&r1));
    assert_eq!(syn2, ip4(A, C, 6, &tcp_seg(40000, 8080, SYN)));
    // the connection is found by the packet's original tuple, as OVS reuses the packet's
    // cached connection in the same zone: still NEW, DST_NAT kept, no second connection
    assert_eq!(r2.state, NEW_T | cs::DST_NAT);
    assert_eq!(ct.count(), 2, "syn2 is syn's connection again");
}

#[test]
fn dump_matches_lines_from_ovs() {
    // The same packets and ct() actions were sent through a stock OVS userspace datapath
    // (ovs-vswitchd --enable-dummy, netdev-dummy/receive); these are its dpctl/dump-conntrack
    // output, verbatim (ct-stats-show was taken before the mid-stream connection was added:
    // Total 4, TCP 1; the expected text here counts it).
    let ovs = [
        "icmp,orig=(src=10.0.0.1,dst=10.0.0.2,id=0,type=8,code=0),reply=(src=10.0.0.2,dst=10.0.0.1,id=0,type=0,code=0)",
        "tcp,orig=(src=10.0.0.1,dst=10.0.0.2,sport=3333,dport=80),reply=(src=10.0.0.2,dst=10.0.0.1,sport=80,dport=3333),zone=5,mark=1,labels=0xab000000000000000000000000000001,protoinfo=(state=ESTABLISHED)",
        "tcp,orig=(src=10.0.0.1,dst=10.0.0.2,sport=4444,dport=22),reply=(src=10.0.0.2,dst=10.0.0.1,sport=22,dport=4444),zone=9,protoinfo=(state=SYN_SENT)",
        "udp,orig=(src=10.0.0.1,dst=10.0.0.2,sport=5000,dport=53),reply=(src=10.0.0.2,dst=192.168.1.100,sport=53,dport=5000)",
        "udp,orig=(src=fd00::1,dst=fd00::2,sport=1111,dport=53),reply=(src=fd00::2,dst=fd00::1,sport=53,dport=1111),zone=7",
    ];
    let ovs_stats = "Connections Stats:\n    Total: 5\n  TCP: 2\n  UDP: 2\n  ICMP: 1\n";
    let ct = Conntrack::new(1000);
    let tcp_act = CtAction {
        set_mark: Some((1, u32::MAX)),
        set_label: Some((0xab00_0000_0000_0000_0000_0000_0000_0001, u128::MAX)),
        ..commit(5)
    };
    let mut syn = ip4(A, B, 6, &tcp_seg(3333, 80, SYN));
    run(&ct, &mut syn, &tcp_act, 0);
    let mut synack = ip4(B, A, 6, &tcp_seg(80, 3333, SYN | ACK));
    run(&ct, &mut synack, &track(5), 0);
    let mut u = ip4(A, B, 17, &udp_seg(5000, 53));
    run(
        &ct,
        &mut u,
        &with_nat(0, true, nat(NatKind::Src, Some(ip4a(NAT4)), None)),
        0,
    );
    let mut e = ip4(A, B, 1, &icmp_echo(8, 0));
    run(&ct, &mut e, &commit(0), 0);
    let mut u6 = ip6(v6(1), v6(2), 17, &udp_seg(1111, 53));
    run(&ct, &mut u6, &commit(7), 0);
    let mut mid = ip4(A, B, 6, &tcp_seg(4444, 22, ACK));
    run(&ct, &mut mid, &commit(9), 0);
    assert_eq!(ct.dump(None), ovs);
    assert_eq!(ct.dump(Some(5)), [ovs[1]]);
    assert_eq!(ct.stats_show(), ovs_stats);
}

/// A frame of protocol `proto` (6, 17, or ICMP echo: 1) between `s` and `d` (v4 when the
/// addresses are 4 bytes long), for the NAT round-trip property.
fn frame(
    v6f: bool,
    s: &[u8; 16],
    d: &[u8; 16],
    proto: u8,
    sp: u16,
    dp: u16,
    reply: bool,
) -> Vec<u8> {
    let l4 = match proto {
        6 => tcp_seg(sp, dp, if reply { SYN | ACK } else { SYN }),
        17 => udp_seg(sp, dp),
        _ => icmp_echo(
            match (v6f, reply) {
                (false, false) => 8,
                (false, true) => 0,
                (true, false) => 128,
                (true, true) => 129,
            },
            sp,
        ),
    };
    let p = if proto == 1 && v6f { 58 } else { proto };
    if v6f {
        ip6(*s, *d, p, &l4)
    } else {
        ip4([s[0], s[1], s[2], s[3]], [d[0], d[1], d[2], d[3]], p, &l4)
    }
}

#[test]
fn nat_round_trips_with_valid_checksums() {
    // random flows through SNAT or DNAT with address and port ranges: the translated packet's
    // checksums equal a full recomputation, and the peer's answer to the translated packet
    // comes back as the exact reverse of the original
    let mut rng = Rng(0xdead_beef_1234_5678);
    let ct = Conntrack::new(1_000_000);
    let mut checked = 0;
    for i in 0..3000 {
        let v6f = rng.below(2) == 0;
        let proto = [6u8, 17, 1][rng.below(3) as usize];
        let host = |rng: &mut Rng| {
            let mut a = [0u8; 16];
            if v6f {
                a = v6(rng.below(6) as u8 + 1);
            } else {
                a[..4].copy_from_slice(&[10, 0, 0, rng.below(6) as u8 + 1]);
            }
            a
        };
        let s = host(&mut rng);
        let mut d = host(&mut rng);
        if d == s {
            d[if v6f { 14 } else { 2 }] = 1;
        }
        let sp = 1000 + rng.below(5000) as u16;
        let dp = 1 + rng.below(3) as u16;
        let snat = rng.below(2) == 0;
        let (lo, hi) = if v6f {
            (ip6a(v6(0xa0)), ip6a(v6(0xa1)))
        } else {
            (ip4a([192, 168, 9, 1]), ip4a([192, 168, 9, 2]))
        };
        let ports = match rng.below(3) {
            0 => None,
            1 => Some((20000, 20003)),
            _ => Some((30000, 40000)),
        };
        let spec = NatSpec {
            addr_max: Some(hi),
            ..nat(
                if snat { NatKind::Src } else { NatKind::Dst },
                Some(lo),
                ports,
            )
        };
        let zone = (i % 3) as u16;
        let act = with_nat(zone, true, spec);
        let orig = frame(v6f, &s, &d, proto, sp, dp, false);
        let mut out = orig.clone();
        let r = run(&ct, &mut out, &act, 0);
        if r.state & cs::NEW == 0 {
            continue; // the same flow drawn twice, or a range exhausted: nothing to check
        }
        if r.state & (cs::SRC_NAT | cs::DST_NAT) == 0 {
            continue; // refused (NAT exhaustion): not committed, not translated
        }
        assert_checksums(&out);
        // the peer answers what it received
        let l = lay(&out);
        let (ts, td) = if v6f {
            let mut a = [0u8; 16];
            let mut b = [0u8; 16];
            a.copy_from_slice(&out[22..38]);
            b.copy_from_slice(&out[38..54]);
            (a, b)
        } else {
            let mut a = [0u8; 16];
            let mut b = [0u8; 16];
            a[..4].copy_from_slice(&out[26..30]);
            b[..4].copy_from_slice(&out[30..34]);
            (a, b)
        };
        let l4 = l.l4 as usize;
        let (tsp, tdp) = if proto == 1 {
            (rd16(&out, l4 + 4), rd16(&out, l4 + 4))
        } else {
            (rd16(&out, l4), rd16(&out, l4 + 2))
        };
        let mut answer = frame(v6f, &td, &ts, proto, tdp, tsp, true);
        let r2 = run(&ct, &mut answer, &act, 1);
        assert_eq!(
            r2.state & (cs::ESTABLISHED | cs::REPLY_DIR),
            cs::ESTABLISHED | cs::REPLY_DIR,
            "case {i}"
        );
        let (esp, edp) = if proto == 1 { (sp, sp) } else { (dp, sp) };
        assert_eq!(
            answer,
            frame(v6f, &d, &s, proto, esp, edp, true),
            "case {i}"
        );
        assert_checksums(&answer);
        checked += 1;
    }
    assert!(checked > 1000, "{checked} round trips checked");
}

#[test]
fn packets_sweeps_and_flushes_race_without_deadlock() {
    let ct = std::sync::Arc::new(Conntrack::new(10_000));
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let workers: Vec<_> = (0..2u16)
        .map(|t| {
            let ct = ct.clone();
            std::thread::spawn(move || {
                let act = with_nat(
                    t,
                    true,
                    nat(NatKind::Src, Some(ip4a(NAT4)), Some((2000, 2100))),
                );
                for i in 0..20_000u32 {
                    let sp = 1000 + (i % 300) as u16;
                    let mut p = ip4(A, B, 17, &udp_seg(sp, 53));
                    let l = lay(&p);
                    let r = ct.execute(&mut p, &l, &act, i as u64);
                    assert!(r.state & cs::INVALID == 0);
                    let mut q = ip4(B, NAT4, 17, &udp_seg(53, rd16(&p, 34)));
                    let l = lay(&q);
                    ct.execute(&mut q, &l, &act, i as u64);
                }
            })
        })
        .collect();
    let ctl = {
        let ct = ct.clone();
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                ct.sweep(n * 50);
                if n % 7 == 3 {
                    ct.flush(Some((n % 2) as u16));
                }
                if n % 11 == 5 {
                    ct.set_zone_limit(1, Some(50));
                    ct.dump(None);
                    ct.set_zone_limit(1, None);
                }
                std::thread::yield_now();
            }
        })
    };
    for w in workers {
        w.join().unwrap();
    }
    stop.store(true, Ordering::Relaxed);
    ctl.join().unwrap();
    // the counters agree with the table
    assert_eq!(ct.count() as usize, ct.dump(None).len());
}

#[test]
fn ovn_lb_hairpin_through_three_zones() {
    // b1 (A) connects to the VIP, which DNATs to A:8080 in A's zone 6; the hairpin SNAT to the
    // VIP in zone 4; the egress commit (zero SNAT) in zone 6 again; A's answer must be +est
    let ct = Conntrack::new(1000);
    let vip = [172, 30, 0, 11];
    let mut syn = ip4(A, vip, 6, &tcp_seg(43938, 80, SYN));
    let r1 = run(
        &ct,
        &mut syn,
        &with_nat(
            6,
            true,
            nat(NatKind::Dst, Some(ip4a(A)), Some((8080, 8080))),
        ),
        0,
    );
    assert_eq!(syn, ip4(A, A, 6, &tcp_seg(43938, 8080, SYN)));
    let l = lay(&syn);
    let r2 = ct.execute_md(
        &mut syn,
        &l,
        &with_nat(4, true, nat(NatKind::Src, Some(ip4a(vip)), None)),
        0,
        Some(&r1),
    );
    assert_eq!(syn, ip4(vip, A, 6, &tcp_seg(43938, 8080, SYN)), "{r2:?}");
    let r3 = ct.execute_md(
        &mut syn,
        &l,
        &with_nat(6, true, nat(NatKind::Src, None, None)),
        0,
        Some(&r2),
    );
    assert_eq!(r3.state & cs::INVALID, 0, "{r3:?}");
    assert_eq!(syn, ip4(vip, A, 6, &tcp_seg(43938, 8080, SYN)), "{r3:?}");
    // the answer, in zone 6 first (ingress from A's port)
    let mut synack = ip4(A, vip, 6, &tcp_seg(8080, 43938, SYN | ACK));
    let a1 = run(
        &ct,
        &mut synack,
        &with_nat(6, false, nat(NatKind::Reapply, None, None)),
        0,
    );
    assert_eq!(
        a1.state & (cs::ESTABLISHED | cs::REPLY_DIR),
        cs::ESTABLISHED | cs::REPLY_DIR,
        "{a1:?} count {}",
        ct.count()
    );
}

#[test]
fn all_zero_snat_only_moves_the_port_on_a_collision() {
    // OVN's ct_zero_snat: nat(src) with no address keeps the address and resolves reply-tuple
    // collisions (here with a load-balanced connection that already answers as C:80 → A:1000)
    let ct = Conntrack::new(1000);
    let vip = [172, 16, 0, 1];
    let lb = with_nat(0, true, nat(NatKind::Dst, Some(ip4a(C)), Some((80, 80))));
    let mut via_vip = ip4(A, vip, 6, &tcp_seg(1000, 80, SYN));
    run(&ct, &mut via_vip, &lb, 0);
    assert_eq!(via_vip, ip4(A, C, 6, &tcp_seg(1000, 80, SYN)));
    let zero = with_nat(0, true, nat(NatKind::Src, None, None));
    let mut direct = ip4(A, C, 6, &tcp_seg(1000, 80, SYN));
    let r = run(&ct, &mut direct, &zero, 0);
    assert_eq!(r.state, NEW_T | cs::SRC_NAT);
    assert_eq!(&direct[26..30], &A, "address kept");
    let moved = rd16(&direct, 34);
    // OVS keeps a port in its class: below 1024 → 600..=1023
    assert!(
        moved != 1000 && (600..=1023).contains(&moved),
        "port moved: {moved}"
    );
    assert_checksums(&direct);
    // each answer goes back to its own connection
    let mut ans1 = ip4(C, A, 6, &tcp_seg(80, 1000, SYN | ACK));
    run(&ct, &mut ans1, &lb, 1);
    assert_eq!(ans1, ip4(vip, A, 6, &tcp_seg(80, 1000, SYN | ACK)));
    let mut ans2 = ip4(C, A, 6, &tcp_seg(80, moved, SYN | ACK));
    run(&ct, &mut ans2, &zero, 1);
    assert_eq!(ans2, ip4(C, A, 6, &tcp_seg(80, 1000, SYN | ACK)));
    // without a collision nothing changes
    let mut other = ip4(B, C, 6, &tcp_seg(1000, 80, SYN));
    let before = other.clone();
    run(&ct, &mut other, &zero, 2);
    assert_eq!(other, before);
}

/// One random packet for the batch tests: TCP, UDP or ICMP echo, IPv4 or IPv6, between three
/// hosts on two ports each, in one of three zones, with a random `ct()` (commit, SNAT/DNAT,
/// bare nat, mark and label, force).
fn random_ct_packet(rng: &mut Rng) -> (Vec<u8>, CtAction) {
    let hosts = [A, B, C];
    let flag_set = [SYN, SYN | ACK, ACK, ACK | PSH, FIN | ACK, RST, 0];
    let kind = rng.below(3);
    let s = rng.below(3) as usize;
    let d = (s + 1 + rng.below(2) as usize) % 3;
    let sp = 1000 + rng.below(2) as u16;
    let dp = 80 + rng.below(2) as u16;
    let flags = flag_set[rng.below(flag_set.len() as u64) as usize];
    let v6p = rng.below(4) == 0;
    let l4 = match kind {
        0 => tcp_seg(sp, dp, flags),
        1 => udp_seg(sp, dp),
        _ => icmp_echo(
            if v6p { [128u8, 129] } else { [8u8, 0] }[rng.below(2) as usize],
            sp,
        ),
    };
    let proto = match (kind, v6p) {
        (0, _) => 6,
        (1, _) => 17,
        (_, false) => 1,
        (_, true) => 58,
    };
    let mut f = if v6p {
        ip6(v6(s as u8 + 1), v6(d as u8 + 1), proto, &l4)
    } else {
        ip4(hosts[s], hosts[d], proto, &l4)
    };
    if proto == 58 {
        fill_checksums(&mut f, true);
    }
    let mut act = CtAction {
        zone: rng.below(3) as u16,
        commit: rng.below(3) == 0,
        ..Default::default()
    };
    match rng.below(12) {
        0 if !v6p => {
            act.nat = Some(nat(NatKind::Src, Some(ip4a(NAT4)), Some((2000, 2001))));
        }
        1 if !v6p => {
            act.nat = Some(nat(NatKind::Dst, Some(ip4a([10, 0, 0, 50])), None));
        }
        2 => act.nat = Some(nat(NatKind::Reapply, None, None)),
        3 if act.commit => act.set_mark = Some((rng.below(4) as u32, 0xff)),
        4 if act.commit => act.set_label = Some(((rng.below(4) as u128) << 70, u128::MAX)),
        5 => act.force = true,
        _ => {}
    }
    (f, act)
}

/// The batched path (`batch_add` / `batch_lookup` / `batch_finish`) gives every packet the
/// verdict, NAT rewrite and table effects of executing the batch's packets one by one, in
/// order: random batches mixing connections, directions, zones, shards, new and established
/// packets, NAT, commits, marks and `force`, including packets that carry an earlier ct()'s
/// result (a recirculated pass).
#[test]
fn batched_execution_matches_one_by_one() {
    let mut steady_answers = 0;
    for seed in 1..=60u64 {
        let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
        let serial = Conntrack::new(1_000_000);
        let batched = Conntrack::new(1_000_000);
        let mut b = CtBatch::default();
        let mut now = 0u64;
        for _ in 0..60 {
            now += rng.below(3) * 1000;
            // a batch of up to 40 packets; about half repeat an earlier packet of the batch
            // (established traffic, both directions of one connection in one batch)
            let n = 1 + rng.below(40) as usize;
            let mut pkts: Vec<(Vec<u8>, CtAction, Option<CtResult>)> = Vec::new();
            for _ in 0..n {
                if !pkts.is_empty() && rng.below(2) == 0 {
                    let i = rng.below(pkts.len() as u64) as usize;
                    let p = pkts[i].clone();
                    pkts.push(p);
                } else {
                    let (f, a) = random_ct_packet(&mut rng);
                    // sometimes the packet comes back from an earlier ct() of its zone
                    // (on both trackers: tracking refreshes state)
                    let prev = (rng.below(5) == 0).then(|| {
                        let mut g = f.clone();
                        let r = serial.execute(&mut g, &lay(&f), &track(a.zone), now);
                        let mut g2 = f.clone();
                        assert_eq!(batched.execute(&mut g2, &lay(&f), &track(a.zone), now), r);
                        r
                    });
                    pkts.push((f, a, prev));
                }
            }
            let want: Vec<(CtResult, Vec<u8>)> = pkts
                .iter()
                .map(|(f, a, prev)| {
                    let mut g = f.clone();
                    let r = serial.execute_md(&mut g, &lay(f), a, now, prev.as_ref());
                    (r, g)
                })
                .collect();
            let mut frames: Vec<Vec<u8>> = pkts.iter().map(|p| p.0.clone()).collect();
            b.clear();
            for (i, (f, a, prev)) in pkts.iter().enumerate() {
                assert_eq!(
                    batched.batch_add(&mut b, f, &lay(f), a, prev.as_ref()),
                    Some(i)
                );
            }
            batched.batch_lookup(&mut b, now);
            steady_answers += b.steady_answers();
            for (i, g) in frames.iter_mut().enumerate() {
                let r = batched.batch_finish(&mut b, i, g, now);
                assert_eq!(r, want[i].0, "seed {seed}: packet {i} of {n}: verdict");
                assert_eq!(g, &want[i].1, "seed {seed}: packet {i} of {n}: NAT rewrite");
            }
            assert_eq!(batched.count(), serial.count(), "seed {seed}: connections");
            assert_eq!(batched.dump(None), serial.dump(None), "seed {seed}: table");
        }
    }
    assert!(
        steady_answers > 100,
        "the lock-free answer was used {steady_answers} times"
    );
}

/// A batch larger than [`BATCH_MAX`] is refused packet by packet (the caller executes the
/// rest alone), and an unparsable frame in a batch is INVALID like alone.
#[test]
fn batch_limits_and_invalid_frames() {
    let ct = Conntrack::default();
    let mut b = CtBatch::default();
    let f = ip4(A, B, 17, &udp_seg(1, 2));
    let l = lay(&f);
    for i in 0..BATCH_MAX {
        assert_eq!(ct.batch_add(&mut b, &f, &l, &track(0), None), Some(i));
    }
    assert_eq!(ct.batch_add(&mut b, &f, &l, &track(0), None), None);
    b.clear();
    let mut junk = vec![0u8; 20];
    let jl = Layout {
        l3: 14,
        l4: 0,
        l4_len: 0,
        ip_version: 4,
    };
    assert_eq!(ct.batch_add(&mut b, &junk, &jl, &track(3), None), Some(0));
    ct.batch_lookup(&mut b, 0);
    assert_eq!(
        ct.batch_finish(&mut b, 0, &mut junk, 0),
        CtResult::invalid(3)
    );
    assert_eq!(ct.stats().invalid.load(Ordering::Relaxed), 1);
}
