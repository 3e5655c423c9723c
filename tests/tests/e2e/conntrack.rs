//! Connection tracking programmed with the real `ovs-ofctl`: the classic stateful firewall
//! (`ct(table=)` recirculation, `ct(commit)`, `ct_state` matches, `exec(set_field ct_mark)`),
//! destination and source NAT, and the dpctl conntrack commands read back with the real
//! `ovs-appctl`. Traffic is real TCP between the lab's namespaces (Python sockets), so the
//! kernels at both ends judge what crossed the switch.

use xvs_tests::{wait_for, ChildGuard, Host, Netns, WAIT};

use crate::openflow::OfLab;

/// A TCP server on `port` in `ns`: per connection, reads a line and answers
/// `<name> peer=<address the connection came from> got=<line>`.
fn server(ns: &Netns, name: &str, port: u16) -> ChildGuard {
    let code = format!(
        "import socket\n\
         s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n\
         s.bind(('0.0.0.0', {port})); s.listen(64)\n\
         while True:\n\
         \x20 c,a=s.accept(); c.settimeout(5)\n\
         \x20 try:\n\
         \x20\x20 d=c.recv(100).decode().strip(); c.sendall(('{name} peer=%s got=%s\\n' % (a[0], d)).encode())\n\
         \x20 except Exception: pass\n\
         \x20 c.close()\n"
    );
    let g = ChildGuard::spawn(ns.cmd("python3").args(["-c", &code]), "tcp server");
    // listening once a local connection succeeds
    wait_for("the TCP server to listen", WAIT, || {
        let out = client(ns, "127.0.0.1", port, "probe");
        if out.contains("got=probe") {
            Ok(())
        } else {
            Err(out)
        }
    });
    g
}

/// One TCP connection from `ns` to `ip:port` sending `msg`: the server's answer, or
/// `ERR <reason>` (connection refused, timed out...).
fn client(ns: &Netns, ip: &str, port: u16, msg: &str) -> String {
    let code = format!(
        "import socket\n\
         try:\n\
         \x20 c=socket.create_connection(('{ip}', {port}), timeout=2); c.sendall(b'{msg}\\n')\n\
         \x20 print(c.recv(200).decode().strip())\n\
         except Exception as e: print('ERR', e)\n"
    );
    let out = xvs_tests::run_timeout(ns.cmd("python3").args(["-c", &code]), WAIT);
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn flows(l: &OfLab, lines: &[&str]) {
    for f in lines {
        l.ofctl.ok(&["add-flow", "br0", f]);
    }
}

fn dump(l: &OfLab, args: &[&str]) -> String {
    l.d.appctl("dpctl/dump-conntrack", args)
}

/// `ip neigh replace IP lladdr MAC` on `h`: addresses nobody answers ARP for (a VIP, a NAT
/// address) reach the right MAC.
fn neigh(h: &Host, ip: &str, mac: &str) {
    h.ns.run(&format!(
        "ip neigh replace {ip} lladdr {mac} dev {}",
        h.ifname
    ));
}

/// Proves: the stateful firewall works: with table 0 sending untracked IP through
/// `ct(table=1,zone=5)` and table 1 committing new connections from port 1 only (with
/// ct_mark 1) and passing established ones, a TCP connection from host A to B completes both
/// ways (B's answers are +est), while B's own connection attempt to A (+new from port 2) is
/// dropped. `dpctl/dump-conntrack zone=5` lists A's connections with mark=0x1, and
/// `dpctl/flush-conntrack zone=5` empties it; the coverage counters count the tracker's work.
#[test]
fn stateful_firewall_admits_replies_and_drops_unsolicited() {
    let l = OfLab::secure(2, &[]);
    let (a, b) = (l.host(0), l.host(1));
    flows(
        &l,
        &[
            "table=0,priority=100,arp,actions=NORMAL",
            "table=0,priority=10,ip,ct_state=-trk,actions=ct(table=1,zone=5)",
            "table=1,priority=20,ip,in_port=1,ct_state=+trk+new,\
             actions=ct(commit,zone=5,exec(set_field:0x1->ct_mark)),NORMAL",
            "table=1,priority=20,ip,ct_state=+trk+est,ct_mark=0x1,actions=NORMAL",
            "table=1,priority=10,ip,ct_state=+trk,actions=drop",
        ],
    );
    let _sb = server(&b.ns, "B", 8080);
    let _sa = server(&a.ns, "A", 8081);
    for i in 0..5 {
        let got = client(&a.ns, &b.ip.to_string(), 8080, &format!("hello{i}"));
        assert_eq!(
            got,
            format!("B peer={} got=hello{i}", a.ip),
            "A -> B connection {i}; flows:\n{:#?}",
            l.ofctl.flows("br0", "")
        );
    }
    let refused = client(&b.ns, &a.ip.to_string(), 8081, "unsolicited");
    assert!(
        refused.starts_with("ERR"),
        "B's connection to A must be dropped: {refused}"
    );
    let d = dump(&l, &["zone=5"]);
    let conns: Vec<&str> = d.lines().filter(|s| s.contains("dport=8080")).collect();
    assert!(conns.len() >= 5, "{d}");
    assert!(
        conns
            .iter()
            .all(|c| c.contains("zone=5") && c.contains("mark=1")),
        "{d}"
    );
    assert!(
        !d.contains("dport=8081"),
        "B's attempt was never committed: {d}"
    );
    let cov = l.d.coverage();
    assert!(cov.get("conntrack_executed") > 0, "{cov:?}");
    assert!(cov.get("recirc") > 0, "{cov:?}");
    // ofproto/trace follows the recirculation, with the ct_state asked for
    let t = l.d.appctl(
        "ofproto/trace",
        &[
            "br0",
            "in_port=2,tcp,nw_src=10.200.0.2,nw_dst=10.200.0.1,tp_dst=8081",
            "--ct-next",
            "trk,new",
        ],
    );
    assert!(
        t.contains("resuming from conntrack with ct_state=new|trk, ct_zone=5"),
        "{t}"
    );
    assert!(t.trim_end().ends_with("Datapath actions: drop"), "{t}");
    l.d.appctl("dpctl/flush-conntrack", &["zone=5"]);
    assert_eq!(dump(&l, &["zone=5"]).trim(), "");
    // the firewall still admits new connections after the flush
    let got = client(&a.ns, &b.ip.to_string(), 8080, "again");
    assert!(got.contains("got=again"), "{got}");
}

/// Proves: DNAT and SNAT in the fast path: A connects to a virtual address 10.200.0.100:80
/// that `ct(commit,nat(dst=B:8080))` maps to B's server, which sees A's address; B's answer is
/// translated back, so A's kernel accepts it as coming from the VIP. Then with
/// `nat(src=10.200.0.200)` on A's connections to B's port 8081, B sees the connection from
/// 10.200.0.200 and the answer is translated back to A. Both connections show in
/// dpctl/dump-conntrack with their reply tuples NATed.
#[test]
fn dnat_and_snat_rewrite_both_directions() {
    let l = OfLab::secure(2, &[]);
    let (a, b) = (l.host(0), l.host(1));
    flows(
        &l,
        &[
            "table=0,priority=100,arp,actions=NORMAL",
            "table=0,priority=10,ip,ct_state=-trk,actions=ct(table=1,zone=7,nat)",
            &format!(
                "table=1,priority=30,tcp,in_port=1,nw_dst=10.200.0.100,tp_dst=80,\
                 ct_state=+trk+new,actions=ct(commit,zone=7,nat(dst={}:8080)),NORMAL",
                b.ip
            ),
            "table=1,priority=30,tcp,in_port=1,tp_dst=8081,ct_state=+trk+new,\
             actions=ct(commit,zone=7,nat(src=10.200.0.200)),NORMAL",
            "table=1,priority=20,ip,ct_state=+trk+est,actions=NORMAL",
            "table=1,priority=10,ip,actions=drop",
        ],
    );
    // nobody answers ARP for the VIP and the SNAT address
    neigh(a, "10.200.0.100", &xvs_tests::pkt::mac_str(&b.mac));
    neigh(b, "10.200.0.200", &xvs_tests::pkt::mac_str(&a.mac));
    let _s1 = server(&b.ns, "B", 8080);
    let _s2 = server(&b.ns, "B2", 8081);
    for i in 0..3 {
        let got = client(&a.ns, "10.200.0.100", 80, &format!("vip{i}"));
        assert_eq!(
            got,
            format!("B peer={} got=vip{i}", a.ip),
            "DNAT connection {i}"
        );
    }
    let got = client(&a.ns, &b.ip.to_string(), 8081, "snat");
    assert_eq!(got, "B2 peer=10.200.0.200 got=snat", "SNAT connection");
    let d = dump(&l, &["zone=7"]);
    assert!(
        d.lines()
            .any(|c| c.contains("dst=10.200.0.100") && c.contains("sport=8080")),
        "DNAT entry: {d}"
    );
    assert!(
        d.lines()
            .any(|c| c.contains("dport=8081") && c.contains("dst=10.200.0.200")),
        "SNAT entry: {d}"
    );
}

/// UDP frames from `from` to `to` (sport, dport) with the datagram's index as payload.
fn udp_burst(from: &Host, to: &Host, ports: &[(u16, u16)]) -> Vec<Vec<u8>> {
    use xvs_tests::pkt;
    ports
        .iter()
        .enumerate()
        .map(|(i, &(sp, dp))| {
            pkt::udp_frame(
                to.mac,
                from.mac,
                from.ip,
                to.ip,
                sp,
                dp,
                &(i as u32).to_be_bytes(),
                pkt::UdpCsum::Full,
            )
        })
        .collect()
}

/// Sends `frames` back to back from `tx` and returns the (sport, dport) of every UDP datagram
/// `rx` receives from `src`: until `expect` have come (at most [`WAIT`]), then whatever else
/// arrives within half a second (a datagram that should have been dropped shows up there).
fn burst_and_collect(
    tx: &xvs_tests::raw::RawSock,
    rx: &xvs_tests::raw::RawSock,
    src: std::net::Ipv4Addr,
    frames: &[Vec<u8>],
    expect: usize,
) -> Vec<(u16, u16)> {
    use xvs_tests::pkt;
    let ports_of = |f: &[u8]| {
        let ip = pkt::ipv4_of(f)?;
        (ip.src == src).then_some(())?;
        pkt::udp_of(f).map(|(s, d, _)| (s, d))
    };
    rx.drain();
    for f in frames {
        tx.send(f);
    }
    let mut got = Vec::new();
    let deadline = std::time::Instant::now() + WAIT;
    while got.len() < expect && std::time::Instant::now() < deadline {
        if let Some(f) = rx.recv_incoming(std::time::Duration::from_millis(200)) {
            got.extend(ports_of(&f));
        }
    }
    std::thread::sleep(std::time::Duration::from_millis(500));
    got.extend(
        rx.drain()
            .into_iter()
            .filter(|f| f.incoming())
            .filter_map(|f| ports_of(&f.data)),
    );
    got.sort_unstable();
    got
}

/// Proves: the batched conntrack path gives every datagram the verdict of its own
/// connection: bursts sent back to back (the PMD takes them in batches, runs the batch's
/// `ct(table=)` through the tracker at once and recirculates it as a batch) mix 120
/// connections in two zones (chosen by port parity) and so across the tracker's shards, first
/// packets and established ones, both directions, and unsolicited datagrams. A's first
/// packets are committed and all reach B; of B's burst only the replies to A's connections
/// cross, not its 40 unsolicited datagrams (+new from port 2); then interleaved bursts of
/// three datagrams per connection plus 30 new connections cross both ways complete. The
/// tracker lists exactly the committed connections per zone.
#[test]
fn ct_batches_give_each_packet_its_connection_state() {
    let l = OfLab::secure(2, &[]);
    let (a, b) = (l.host(0), l.host(1));
    flows(
        &l,
        &[
            "table=0,priority=10,udp,in_port=1,tp_dst=0x0/0x1,actions=ct(table=1,zone=5)",
            "table=0,priority=10,udp,in_port=1,tp_dst=0x1/0x1,actions=ct(table=1,zone=6)",
            "table=0,priority=10,udp,in_port=2,tp_src=0x0/0x1,actions=ct(table=1,zone=5)",
            "table=0,priority=10,udp,in_port=2,tp_src=0x1/0x1,actions=ct(table=1,zone=6)",
            "table=1,priority=20,udp,in_port=1,ct_zone=5,ct_state=+trk+new,\
             actions=ct(commit,zone=5),output:2",
            "table=1,priority=20,udp,in_port=1,ct_zone=6,ct_state=+trk+new,\
             actions=ct(commit,zone=6),output:2",
            "table=1,priority=20,udp,in_port=1,ct_state=+trk+est,actions=output:2",
            "table=1,priority=20,udp,in_port=2,ct_state=+trk+est,actions=output:1",
            "table=1,priority=10,actions=drop",
        ],
    );
    let (sa, sb) = (l.sock(0), l.sock(1));
    let n = 120u16;
    let conns: Vec<(u16, u16)> = (0..n).map(|i| (2000 + i, 3000 + i)).collect();
    let rev = |v: &[(u16, u16)]| -> Vec<(u16, u16)> { v.iter().map(|&(s, d)| (d, s)).collect() };
    let sorted = |mut v: Vec<(u16, u16)>| {
        v.sort_unstable();
        v
    };
    // 1. A's first packets: +new, committed, all cross
    let got = burst_and_collect(&sa, &sb, a.ip, &udp_burst(a, b, &conns), conns.len());
    assert_eq!(got, sorted(conns.clone()), "A's first packets at B");
    // 2. B answers the even connections, interleaved with 40 unsolicited datagrams
    let mut mixed = Vec::new();
    let mut want = Vec::new();
    for (i, &(s, d)) in conns.iter().enumerate() {
        if i % 2 == 0 {
            mixed.push((d, s));
            want.push((d, s));
        }
        if i % 3 == 0 && mixed.len() < 200 {
            mixed.push((6000 + i as u16, 7000 + i as u16));
        }
    }
    let got = burst_and_collect(&sb, &sa, b.ip, &udp_burst(b, a, &mixed), want.len());
    assert_eq!(got, sorted(want), "B's burst at A: replies only");
    // 3. A: three rounds over every connection (established or still new-but-committed)
    //    interleaved with 30 new connections
    let mut mixed = Vec::new();
    for r in 0..3 {
        mixed.extend(conns.iter().copied());
        mixed.extend((0..10).map(|k| (4000 + r * 10 + k, 5000 + r * 10 + k)));
    }
    let got = burst_and_collect(&sa, &sb, a.ip, &udp_burst(a, b, &mixed), mixed.len());
    assert_eq!(got, sorted(mixed.clone()), "A's mixed burst at B");
    // 4. B: replies on every connection, twice each, all cross
    let mut replies = rev(&conns);
    replies.extend(rev(&mixed[..conns.len() + 10]));
    let got = burst_and_collect(&sb, &sa, b.ip, &udp_burst(b, a, &replies), replies.len());
    assert_eq!(got, sorted(replies), "B's replies at A");
    // the tracker holds A's 150 connections, split by zone as the flows chose
    for (zone, parity) in [("zone=5", 0), ("zone=6", 1)] {
        let d = dump(&l, &[zone]);
        let want = conns
            .iter()
            .chain(mixed.iter())
            .filter(|(_, dp)| dp % 2 == parity)
            .collect::<std::collections::BTreeSet<_>>()
            .len();
        assert_eq!(d.lines().count(), want, "{zone}:\n{d}");
        assert!(!d.contains("sport=6"), "unsolicited never committed: {d}");
    }
    let cov = l.d.coverage();
    assert!(cov.get("conntrack_executed") > 0, "{cov:?}");
    eprintln!("pmd/stats:\n{}", l.d.appctl("pmd/stats", &[]));
}
