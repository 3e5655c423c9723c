//! OpenFlow interoperability: the real `ovs-ofctl` (OpenFlow 1.0, 1.3 and 1.5) programs and
//! inspects xvswitchd through `RUNDIR/br0.mgmt` (and a `ptcp:` listener), and packets crossing
//! the switch between namespaces show that what it was told is what it does: flow tables,
//! barriers, bundles, errors, timeouts and FLOW_REMOVED, packet-in and packet-out, port and flow
//! counters, a multi-table pipeline with registers, resubmit and groups. A raw OpenFlow client
//! covers what ovs-ofctl cannot express. Where xvswitchd and Open vSwitch differ, the test
//! asserts what Open vSwitch 3.1 does (checked against a private ovs-vswitchd).

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, TcpListener};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use xvs_tests::ofctl::{self, hex, write_lines, Flow, Of, Ofctl};
use xvs_tests::ofraw::{self, oxm, oxm_field, OfConn, OF13};
use xvs_tests::pkt::{self, UdpCsum, BROADCAST};
use xvs_tests::{wait_for, Daemon, Host, Lab, Netns, RawSock, TempDir, WAIT};

/// A lab of `n` hosts, xvswitchd on its ports (OpenFlow ports 1..n in host order), and the real
/// ovs-ofctl pointed at its run directory.
pub(crate) struct OfLab {
    // dropped first: the daemon, then the namespaces
    pub d: Daemon,
    pub lab: Lab,
    pub ofctl: Ofctl,
    pub dir: TempDir,
}

impl OfLab {
    /// xvswitchd with `--fail-mode secure` (an empty flow table) and `extra` arguments.
    pub fn secure(n: usize, extra: &[&str]) -> OfLab {
        let lab = Lab::new(n);
        OfLab::secure_on(lab, extra)
    }

    pub fn secure_on(lab: Lab, extra: &[&str]) -> OfLab {
        let mut args = lab.daemon_args();
        args.extend(["--fail-mode".to_string(), "secure".to_string()]);
        args.extend(extra.iter().map(|s| s.to_string()));
        let d = Daemon::start(&lab.sw, &args);
        let ofctl = Ofctl::ovs(&d.rundir);
        OfLab {
            d,
            lab,
            ofctl,
            dir: TempDir::new(),
        }
    }

    pub fn host(&self, i: usize) -> &Host {
        &self.lab.hosts[i]
    }

    /// A raw socket on host `i`'s interface.
    pub fn sock(&self, i: usize) -> RawSock {
        let h = self.host(i);
        RawSock::open(&h.ns, &h.ifname)
    }
}

/// The IPv4 address test frames carry for host `h`: 198.18.0.N for 10.200.0.N, not the host's
/// own, so that the receiving kernel drops them silently instead of answering (an ICMP port
/// unreachable, after an ARP request), which would add packets to the counters the tests read.
pub(crate) fn frame_ip(h: &Host) -> Ipv4Addr {
    Ipv4Addr::new(198, 18, 0, h.ip.octets()[3])
}

/// A UDP frame from host `a` to host `b` (their MACs, addresses from [`frame_ip`]).
pub(crate) fn udp(a: &Host, b: &Host, sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    pkt::udp_frame(
        b.mac,
        a.mac,
        frame_ip(a),
        frame_ip(b),
        sport,
        dport,
        payload,
        UdpCsum::Full,
    )
}

/// Whether `f` is a UDP frame carrying exactly `payload`.
pub(crate) fn carries(f: &[u8], payload: &[u8]) -> bool {
    matches!(pkt::udp_of(f), Some((_, _, p)) if p == payload)
}

/// Sends a UDP frame from host `from.0` on `from.1` to host `to.0` and expects it, unchanged,
/// on `to.1` (`what` is its payload and names it in a failure).
pub(crate) fn crosses(from: (&Host, &RawSock), to: (&Host, &RawSock), what: &str) {
    let f = udp(from.0, to.0, 100, 5000, what.as_bytes());
    from.1.send(&f);
    expect_frame(to.1, what, |x| x == f.as_slice());
}

/// Waits for a received frame satisfying `pred` on `r`; panics naming `what` otherwise.
pub(crate) fn expect_frame(r: &RawSock, what: &str, pred: impl Fn(&[u8]) -> bool) -> Vec<u8> {
    let (frames, seen) = r.collect_until(WAIT, &pred);
    assert!(
        seen,
        "{what}: never arrived on {} ({} other frames did)",
        r.ifname,
        frames.len()
    );
    frames.last().expect("the matching frame").clone()
}

/// Polls several sockets until one of them receives a frame satisfying `pred`; returns the
/// index of that socket and the frame.
pub(crate) fn first_arrival(
    socks: &[&RawSock],
    what: &str,
    pred: impl Fn(&[u8]) -> bool,
) -> (usize, Vec<u8>) {
    let deadline = Instant::now() + WAIT;
    while Instant::now() < deadline {
        for (i, s) in socks.iter().enumerate() {
            while let Some(f) = s.recv(Duration::from_millis(1)) {
                if f.incoming() && pred(&f.data) {
                    return (i, f.data);
                }
            }
        }
    }
    panic!("{what}: arrived nowhere within {WAIT:?}");
}

/// Sends `marker` with `send` and collects what `r` receives until it arrives; returns the
/// frames received before it. The marker takes the same way as the frames under test (same
/// ingress port, same PMD, same egress port), so anything those frames caused on `r` came
/// first: "nothing arrived" is proven without waiting for time to pass.
pub(crate) fn before_marker(r: &RawSock, send: impl FnOnce(), marker: &[u8]) -> Vec<Vec<u8>> {
    send();
    let (mut frames, seen) = r.collect_until(WAIT, |f| f.starts_with(marker));
    assert!(seen, "the marker frame never arrived on {}", r.ifname);
    frames.pop();
    frames
}

/// The flow with cookie `c` of a dump, panicking with the dump if absent.
pub(crate) fn by_cookie(flows: &[Flow], c: u64) -> &Flow {
    flows
        .iter()
        .find(|f| f.cookie == c)
        .unwrap_or_else(|| panic!("no flow with cookie {c:#x} in {flows:#?}"))
}

/// (table, priority, sorted match, actions) of each flow, sorted: a table's content as
/// ovs-ofctl prints it, without counters.
pub(crate) fn table_content(flows: &[Flow]) -> Vec<(u8, u16, String, String)> {
    let mut v: Vec<_> = flows
        .iter()
        .map(|f| (f.table, f.priority, f.match_sorted(), f.actions.clone()))
        .collect();
    v.sort();
    v
}

/// A switch under test as the checks shared by the xvswitchd tests and their Open vSwitch
/// counterparts (`ovs_interop`) see it: `ovs-ofctl` bound to it, the hosts behind its ports
/// 1..n, a raw socket on each host, the namespace holding its ports, its control socket.
pub(crate) struct Sut<'a> {
    pub ofctl: Ofctl,
    pub hosts: &'a [Host],
    pub socks: Vec<RawSock>,
    pub sw: &'a Netns,
    pub ctl: PathBuf,
    pub dir: TempDir,
}

impl<'a> Sut<'a> {
    pub fn new(ofctl: Ofctl, lab: &'a Lab, ctl: PathBuf) -> Sut<'a> {
        Sut {
            ofctl,
            hosts: &lab.hosts,
            socks: lab
                .hosts
                .iter()
                .map(|h| RawSock::open(&h.ns, &h.ifname))
                .collect(),
            sw: &lab.sw,
            ctl,
            dir: TempDir::new(),
        }
    }

    /// Empties the flow and group tables.
    pub fn reset(&self) {
        self.ofctl.ok(&["del-flows", "br0"]);
        self.ofctl.v(Of::V15).ok(&["del-groups", "br0"]);
    }
}

impl OfLab {
    pub fn sut(&self) -> Sut<'_> {
        Sut::new(self.ofctl.clone(), &self.lab, self.d.ctl.clone())
    }
}

/// Panics listing `problems` (behaviour that differs from Open vSwitch) if there are any.
pub(crate) fn assert_no_problems(what: &str, problems: Vec<String>) {
    assert!(
        problems.is_empty(),
        "{what}: {} difference(s) from Open vSwitch:\n{}",
        problems.len(),
        problems.join("\n")
    );
}

/// Proves: with `--fail-mode secure` the switch starts with an empty flow table (as
/// `ovs-ofctl dump-flows` shows) and forwards nothing, neither unicast nor broadcast: frames
/// sent before any flow exists are dropped (the switch counted them as dropped by the
/// pipeline), and once `ovs-ofctl add-flow` installs flows, a later frame crosses while none of
/// the earlier ones ever arrive; with flows both ways, ping works.
#[test]
fn secure_fail_mode_forwards_nothing_until_ovs_ofctl_adds_flows() {
    let l = OfLab::secure(2, &[]);
    let (a, b) = (l.host(0), l.host(1));
    let flows = l.ofctl.flows("br0", "");
    assert!(flows.is_empty(), "secure mode starts empty: {flows:#?}");
    for v in [Of::V13, Of::V15] {
        assert!(l.ofctl.v(v).flows("br0", "").is_empty());
    }
    let (ra, rb) = (l.sock(0), l.sock(1));
    let dropped = l.d.coverage().get("drop_by_flow");
    for i in 0..5u16 {
        ra.send(&udp(a, b, 1000 + i, 7000, b"sent before any flow"));
    }
    ra.send(&pkt::arp_frame(BROADCAST, 1, a.mac, a.ip, [0; 6], b.ip));
    wait_for("the switch to drop the 6 frames", WAIT, || {
        let c = l.d.coverage();
        if c.get("drop_by_flow") >= dropped + 6 {
            Ok(())
        } else {
            Err(format!("{c:?}"))
        }
    });
    l.ofctl
        .ok(&["add-flow", "br0", "in_port=1,actions=output:2"]);
    let marker = udp(a, b, 1, 7001, b"sent after add-flow");
    let before = before_marker(&rb, || ra.send(&marker), &marker);
    assert!(
        before
            .iter()
            .all(|f| pkt::arp_of(f).is_none() && !carries(f, b"sent before any flow")),
        "frames sent before any flow existed were forwarded: {before:02x?}"
    );
    l.ofctl
        .ok(&["add-flow", "br0", "in_port=2,actions=output:1"]);
    a.ns.assert_ping(b.ip, 2);
}

/// Proves: in each of OpenFlow 1.0 (ovs-ofctl's default), 1.3 and 1.5, `ovs-ofctl add-flows`
/// installs flows in tables 0 and 1 that `dump-flows` reads back with their cookies, priorities
/// and actions and that forward packets; `mod-flows` changes only the flow it matches, keeps its
/// counters and redirects traffic; a loose `del-flows` removes only the flows it covers (the
/// traffic then hits the lower-priority drop flow, whose counter shows it); `--strict del-flows`
/// removes exactly one flow; `del-flows` removes the rest.
#[test]
fn ovs_ofctl_add_dump_mod_del_in_openflow_10_13_15() {
    let l = OfLab::secure(3, &[]);
    let (a, b, c) = (l.host(0), l.host(1), l.host(2));
    let (ra, rb, rc) = (l.sock(0), l.sock(1), l.sock(2));
    for (n, v) in Of::ALL.into_iter().enumerate() {
        let o = l.ofctl.v(v);
        let file = write_lines(
            &l.dir,
            &format!("flows{n}.txt"),
            &[
                "cookie=0x1,priority=10,in_port=1,udp,actions=output:2",
                "cookie=0x2,priority=10,in_port=2,udp,actions=output:1",
                "cookie=0x3,table=1,priority=5,ip,nw_dst=10.200.0.3,actions=output:3",
                "cookie=0x4,priority=1,actions=drop",
            ],
        );
        o.ok(&["add-flows", "br0", &file]);
        let flows = o.flows("br0", "");
        assert_eq!(flows.len(), 4, "{v:?}: {flows:#?}");
        for (cookie, table, prio, actions) in [
            (1, 0, 10, "output:2"),
            (2, 0, 10, "output:1"),
            (3, 1, 5, "output:3"),
            (4, 0, 1, "drop"),
        ] {
            let f = by_cookie(&flows, cookie);
            assert_eq!(
                (f.table, f.priority, f.actions.as_str()),
                (table, prio, actions),
                "{v:?}: {}",
                f.line
            );
        }
        let tag = format!("v{n}");
        let ab = udp(a, b, 100, 5000, format!("{tag} a to b").as_bytes());
        ra.send(&ab);
        expect_frame(&rb, &format!("{v:?} a->b"), |f| f == ab.as_slice());
        let ba = udp(b, a, 100, 5000, format!("{tag} b to a").as_bytes());
        rb.send(&ba);
        expect_frame(&ra, &format!("{v:?} b->a"), |f| f == ba.as_slice());

        // the cookie is given because an OpenFlow 1.0 modify also sets it (to 0 if absent)
        o.ok(&[
            "mod-flows",
            "br0",
            "cookie=0x1,in_port=1,udp,actions=output:3",
        ]);
        let flows = o.flows("br0", "");
        assert_eq!(by_cookie(&flows, 1).actions, "output:3", "{v:?}");
        assert_eq!(by_cookie(&flows, 2).actions, "output:1", "{v:?}");
        assert_eq!(by_cookie(&flows, 4).actions, "drop", "{v:?}");
        let ac = udp(a, c, 100, 5000, format!("{tag} a to c").as_bytes());
        ra.send(&ac);
        expect_frame(&rc, &format!("{v:?} a->c after mod-flows"), |f| {
            f == ac.as_slice()
        });
        wait_for(&format!("{v:?}: the modified flow's counter"), WAIT, || {
            let f = by_cookie(&o.flows("br0", ""), 1).clone();
            if f.n_packets == 2 {
                Ok(())
            } else {
                Err(f.line)
            }
        });

        o.ok(&["del-flows", "br0", "in_port=1"]);
        let flows = o.flows("br0", "");
        let mut cookies: Vec<u64> = flows.iter().map(|f| f.cookie).collect();
        cookies.sort();
        assert_eq!(cookies, vec![2, 3, 4], "{v:?}: {flows:#?}");
        let dropped = udp(a, b, 100, 5000, format!("{tag} dropped").as_bytes());
        ra.send(&dropped);
        wait_for(&format!("{v:?}: the drop flow's counter"), WAIT, || {
            let f = by_cookie(&o.flows("br0", ""), 4).clone();
            if f.n_packets == 1 {
                Ok(())
            } else {
                Err(f.line)
            }
        });
        for r in [&rb, &rc] {
            let got: Vec<_> = r.drain().into_iter().filter(|f| f.incoming()).collect();
            assert!(
                !got.iter().any(|f| f.data == dropped),
                "{v:?}: a frame the drop flow counted reached {}",
                r.ifname
            );
        }

        o.with(&["--strict"])
            .ok(&["del-flows", "br0", "priority=1"]);
        let mut cookies: Vec<u64> = o.flows("br0", "").iter().map(|f| f.cookie).collect();
        cookies.sort();
        assert_eq!(cookies, vec![2, 3], "{v:?}: --strict del-flows priority=1");
        o.ok(&["del-flows", "br0"]);
        assert!(o.flows("br0", "").is_empty(), "{v:?}: del-flows left flows");
    }
}

/// Proves the barrier guarantee: once `ovs-ofctl` has its reply (add-flow and mod-flows send a
/// barrier and wait for it; `--bundle` waits for the commit reply), every packet sent afterwards
/// is forwarded by the new flow, never by the old one still in the fast path's cache. 24 flips
/// between two output ports, alternating OpenFlow 1.0 add-flow, 1.3 `--strict mod-flows` and 1.5
/// `--bundle add-flow`, each followed at once by one packet that must come out of the new port.
#[test]
fn packets_sent_after_the_barrier_reply_see_the_new_flow() {
    let l = OfLab::secure(3, &[]);
    let (a, b) = (l.host(0), l.host(1));
    let (ra, rb, rc) = (l.sock(0), l.sock(1), l.sock(2));
    l.ofctl.ok(&[
        "add-flow",
        "br0",
        "priority=10,in_port=1,udp,actions=output:2",
    ]);
    for i in 0..3u16 {
        let f = udp(a, b, 100, 5000, format!("warm {i}").as_bytes());
        ra.send(&f);
        expect_frame(&rb, "warm-up", |x| x == f.as_slice());
    }
    for i in 0..24u32 {
        let target: usize = if i % 2 == 0 { 3 } else { 2 };
        let flow = format!("priority=10,in_port=1,udp,actions=output:{target}");
        let how = match i % 3 {
            0 => {
                l.ofctl.ok(&["add-flow", "br0", &flow]);
                "OpenFlow 1.0 add-flow"
            }
            1 => {
                l.ofctl
                    .v(Of::V13)
                    .with(&["--strict"])
                    .ok(&["mod-flows", "br0", &flow]);
                "OpenFlow 1.3 --strict mod-flows"
            }
            _ => {
                l.ofctl
                    .v(Of::V15)
                    .with(&["--bundle"])
                    .ok(&["add-flow", "br0", &flow]);
                "OpenFlow 1.5 --bundle add-flow"
            }
        };
        let payload = format!("after flip {i}");
        ra.send(&udp(a, b, 100, 5000, payload.as_bytes()));
        let (at, _) = first_arrival(&[&rb, &rc], &format!("packet {i}"), |f| {
            carries(f, payload.as_bytes())
        });
        assert_eq!(
            at + 2,
            target,
            "flip {i} ({how}): the packet sent after the reply left by port {} (the old flow), \
             not {target}",
            at + 2
        );
    }
}

/// The datapath flow of `dpctl/dump-flows` that enters from `port` (its interface name), and
/// its packet count.
fn megaflow_from(dump: &str, port: &str) -> Option<(String, u64)> {
    let line = dump
        .lines()
        .find(|l| l.contains(&format!("in_port({port})")))?;
    let packets = line
        .split("packets:")
        .nth(1)?
        .split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()?;
    Some((line.to_string(), packets))
}

/// Proves revalidation is selective and still exact: two streams cross different tables
/// (port 1 → table 1 → port 2, port 3 → table 2 → port 4); a flow mod in table 2 drops the
/// cached flow of the second stream only — the first one's datapath flow stays, its packet
/// count goes on from where it was — and a flow mod in table 1 that redirects the first
/// stream takes effect for the very next packet after the reply.
#[test]
fn a_flow_mod_drops_only_the_cached_flows_that_looked_up_its_table() {
    let l = OfLab::secure(4, &[]);
    let (a, b, c, d) = (l.host(0), l.host(1), l.host(2), l.host(3));
    let socks: Vec<RawSock> = (0..4).map(|i| l.sock(i)).collect();
    for f in [
        "table=0,priority=10,in_port=1,actions=resubmit(,1)",
        "table=0,priority=10,in_port=3,actions=resubmit(,2)",
        "table=1,priority=10,udp,actions=output:2",
        "table=2,priority=10,udp,actions=output:4",
    ] {
        l.ofctl.ok(&["add-flow", "br0", f]);
    }
    let stream = |i: u32| {
        let f1 = udp(a, b, 100, 5000, format!("one {i}").as_bytes());
        socks[0].send(&f1);
        expect_frame(&socks[1], "stream one", |x| x == f1.as_slice());
        let f2 = udp(c, d, 100, 5000, format!("two {i}").as_bytes());
        socks[2].send(&f2);
        expect_frame(&socks[3], "stream two", |x| x == f2.as_slice());
    };
    for i in 0..3 {
        stream(i);
    }
    let dump = l.d.appctl("dpctl/dump-flows", &[]);
    let (one, n1) = megaflow_from(&dump, &a.port).unwrap_or_else(|| panic!("{dump}"));
    assert_eq!(n1, 3, "{one}");
    assert!(megaflow_from(&dump, &c.port).is_some(), "{dump}");

    // a flow mod in table 2 (it changes nothing for these packets, but it is table 2's)
    l.ofctl.ok(&[
        "add-flow",
        "br0",
        "table=2,priority=20,udp,tp_dst=9,actions=drop",
    ]);
    let dump = l.d.appctl("dpctl/dump-flows", &[]);
    let (kept, n1) = megaflow_from(&dump, &a.port)
        .unwrap_or_else(|| panic!("table 1's cached flow was dropped:\n{dump}"));
    assert_eq!(n1, 3, "kept with its count: {kept}");
    assert!(
        megaflow_from(&dump, &c.port).is_none(),
        "the flow that looked up table 2 must go:\n{dump}"
    );
    stream(3);
    let dump = l.d.appctl("dpctl/dump-flows", &[]);
    assert_eq!(
        megaflow_from(&dump, &a.port).map(|x| x.1),
        Some(4),
        "{dump}"
    );
    assert_eq!(
        megaflow_from(&dump, &c.port).map(|x| x.1),
        Some(1),
        "{dump}"
    );

    // and a change in table 1 redirects stream one from the next packet on
    l.ofctl.ok(&[
        "add-flow",
        "br0",
        "table=1,priority=10,udp,actions=output:3",
    ]);
    let f = udp(a, b, 100, 5000, b"after the change");
    socks[0].send(&f);
    let (at, _) = first_arrival(&[&socks[1], &socks[2]], "redirected", |x| {
        carries(x, b"after the change")
    });
    assert_eq!(at, 1, "left by port {} instead of 3", at + 2);
}

/// Proves bundles are atomic: `ovs-ofctl --bundle add-flows` of a file that replaces a flow,
/// adds one, deletes one and then has a flow the switch rejects (a check_overlap flow that
/// overlaps the replaced one) fails with OFPFMFC_OVERLAP printed, exit status non-zero, and the
/// table is exactly as before: same dump, and traffic still takes the old flow. The same bundle
/// without the bad flow applies everything at once: the dump shows all three changes and traffic
/// takes the new flows.
#[test]
fn bundle_with_one_rejected_flow_applies_nothing_and_a_good_one_applies_all() {
    let l = OfLab::secure(3, &[]);
    let (a, b, c) = (l.host(0), l.host(1), l.host(2));
    let (ra, rb, rc) = (l.sock(0), l.sock(1), l.sock(2));
    let o = l.ofctl.v(Of::V15);
    o.ok(&[
        "add-flow",
        "br0",
        "priority=10,in_port=1,udp,actions=output:2",
    ]);
    o.ok(&[
        "add-flow",
        "br0",
        "priority=10,in_port=2,udp,actions=output:1",
    ]);
    let before = table_content(&o.flows("br0", ""));
    let good = [
        "priority=10,in_port=1,udp,actions=output:3",
        "priority=20,in_port=3,udp,actions=output:1",
        "delete in_port=2",
    ];
    let mut bad = good.to_vec();
    bad.push("check_overlap,priority=10,in_port=1,udp,tp_dst=9,actions=drop");
    let bad_file = write_lines(&l.dir, "bad.txt", &bad);
    let r = o.with(&["--bundle"]).run(&["add-flows", "br0", &bad_file]);
    let text = r.expect_failure();
    assert!(
        text.contains("OFPFMFC_OVERLAP"),
        "ovs-ofctl should print the switch's OFPFMFC_OVERLAP: {text}"
    );
    assert_eq!(
        table_content(&o.flows("br0", "")),
        before,
        "a failed bundle changed the table"
    );
    crosses((a, &ra), (b, &rb), "a->b after the failed bundle");

    let good_file = write_lines(&l.dir, "good.txt", &good);
    o.with(&["--bundle"]).ok(&["add-flows", "br0", &good_file]);
    let after = table_content(&o.flows("br0", ""));
    assert_eq!(
        after,
        vec![
            (0, 10, "in_port=1,udp".to_string(), "output:3".to_string()),
            (0, 20, "in_port=3,udp".to_string(), "output:1".to_string()),
        ],
        "the good bundle"
    );
    crosses((a, &ra), (c, &rc), "a->c after the good bundle");
    crosses((c, &rc), (a, &ra), "c->a after the good bundle");
}

/// Sends a bundle control message on `conn` and returns the reply's control type (an error
/// fails the test).
fn bundle_control(conn: &mut OfConn, id: u32, ctrl_type: u16) -> u16 {
    let xid = conn.send(
        ofraw::t::BUNDLE_CONTROL,
        &ofraw::bundle_control(id, ctrl_type),
    );
    let m = conn
        .recv_matching(WAIT, |m| m.xid == xid)
        .unwrap_or_else(|| panic!("no reply to bundle control {ctrl_type}"));
    assert_eq!(m.error(), None, "bundle control {ctrl_type}: {m:?}");
    assert_eq!(m.msg_type, ofraw::t::BUNDLE_CONTROL, "{m:?}");
    u16::from_be_bytes([m.body[4], m.body[5]])
}

/// Proves: a bundle's flow mods take effect only at the commit, and a commit keeps what
/// another connection changed between the bundle's messages and its commit.
#[test]
fn a_bundle_takes_effect_at_commit_and_keeps_changes_made_meanwhile() {
    let l = OfLab::secure(3, &[]);
    let (a, b, c) = (l.host(0), l.host(1), l.host(2));
    let (ra, rb, rc) = (l.sock(0), l.sock(1), l.sock(2));
    let o = l.ofctl.v(Of::V15);
    let mut conn = OfConn::unix(&l.d.mgmt("br0"), 6);
    let fm = |in_port: u32, out: u32| {
        let m = oxm(oxm_field::IN_PORT, &in_port.to_be_bytes());
        ofraw::message(
            6,
            ofraw::t::FLOW_MOD,
            100 + in_port,
            &ofraw::flow_mod_add(0, 10, &[m], &ofraw::apply_output(out)),
        )
    };
    let add = |conn: &mut OfConn, id: u32, inner: &[u8]| {
        conn.send(ofraw::t::BUNDLE_ADD_MESSAGE, &ofraw::bundle_add(id, inner));
    };

    // bundle 1: listed and forwarding only after the commit
    assert_eq!(bundle_control(&mut conn, 1, 0), 1, "open reply");
    add(&mut conn, 1, &fm(1, 2));
    add(&mut conn, 1, &fm(2, 1));
    let errors = conn.barrier();
    assert!(errors.iter().all(|m| m.error().is_none()), "{errors:?}");
    assert_eq!(
        o.flows("br0", ""),
        vec![],
        "a bundle's flows before its commit"
    );
    assert_eq!(bundle_control(&mut conn, 1, 4), 5, "commit reply");
    assert_eq!(
        table_content(&o.flows("br0", "")),
        vec![
            (0, 10, "in_port=1".to_string(), "output:2".to_string()),
            (0, 10, "in_port=2".to_string(), "output:1".to_string()),
        ]
    );
    crosses((a, &ra), (b, &rb), "a->b after bundle 1");

    // bundle 2 replaces in_port=1's flow; meanwhile ovs-ofctl adds in_port=3's
    assert_eq!(bundle_control(&mut conn, 2, 0), 1, "open reply");
    add(&mut conn, 2, &fm(1, 3));
    conn.barrier();
    o.ok(&["add-flow", "br0", "priority=10,in_port=3,actions=output:1"]);
    assert_eq!(bundle_control(&mut conn, 2, 4), 5, "commit reply");
    assert_eq!(
        table_content(&o.flows("br0", "")),
        vec![
            (0, 10, "in_port=1".to_string(), "output:3".to_string()),
            (0, 10, "in_port=2".to_string(), "output:1".to_string()),
            (0, 10, "in_port=3".to_string(), "output:1".to_string()),
        ],
        "both the bundle's and the other connection's flow"
    );
    crosses((a, &ra), (c, &rc), "a->c after bundle 2");
    crosses((c, &rc), (a, &ra), "c->a");
}

/// Runs a raw OpenFlow 1.3 flow mod and returns the error it produced (None: accepted).
fn raw_flow_mod_error(conn: &mut OfConn, body: &[u8]) -> Option<(u16, u16)> {
    conn.send(ofraw::t::FLOW_MOD, body);
    let msgs = conn.barrier();
    msgs.iter().find_map(|m| m.error())
}

/// Proves: flow and group mods the switch must refuse come back as OpenFlow errors with the
/// codes Open vSwitch uses, which `ovs-ofctl` prints before exiting non-zero: a check_overlap
/// flow that overlaps (OFPFMFC_OVERLAP), a group added twice (OFPGMFC_GROUP_EXISTS), a missing
/// group modified (OFPGMFC_UNKNOWN_GROUP), in OpenFlow 1.3 and 1.5. Messages ovs-ofctl refuses to
/// build are sent raw: a goto_table to an earlier table (OFPBIC_BAD_TABLE_ID), an unknown OXM
/// field (OFPBMC_BAD_FIELD), an ADD to table 255 (OFPFMFC_BAD_TABLE_ID). None of them leaves a
/// flow behind.
#[test]
fn invalid_flow_and_group_mods_get_openflow_errors() {
    let l = OfLab::secure(2, &[]);
    for v in [Of::V13, Of::V15] {
        let o = l.ofctl.v(v);
        o.ok(&[
            "add-flow",
            "br0",
            "priority=10,in_port=1,udp,actions=output:2",
        ]);
        let text = o
            .run(&[
                "add-flow",
                "br0",
                "check_overlap,priority=10,in_port=1,udp,tp_dst=9,actions=drop",
            ])
            .expect_failure();
        assert!(text.contains("OFPFMFC_OVERLAP"), "{v:?}: {text}");
        o.ok(&["add-group", "br0", "group_id=5,type=all,bucket=output:1"]);
        let text = o
            .run(&["add-group", "br0", "group_id=5,type=all,bucket=output:2"])
            .expect_failure();
        assert!(text.contains("OFPGMFC_GROUP_EXISTS"), "{v:?}: {text}");
        let text = o
            .run(&["mod-group", "br0", "group_id=6,type=all,bucket=output:2"])
            .expect_failure();
        assert!(text.contains("OFPGMFC_UNKNOWN_GROUP"), "{v:?}: {text}");
        let groups = o.ok(&["dump-groups", "br0"]);
        assert!(
            groups.contains("group_id=5,type=all,bucket=")
                && groups.contains("actions=output:1")
                && !groups.contains("group_id=6"),
            "{v:?}: {groups}"
        );
        let flows = o.flows("br0", "");
        assert_eq!(flows.len(), 1, "{v:?}: {flows:#?}");
        o.ok(&["del-flows", "br0"]);
        o.ok(&["del-groups", "br0"]);
    }
    let mut conn = OfConn::unix(&l.d.mgmt("br0"), OF13);
    let in_port = oxm(oxm_field::IN_PORT, &1u32.to_be_bytes());
    let cases: Vec<(&str, Vec<u8>, (u16, u16))> = vec![
        (
            "goto_table:3 from table 5",
            ofraw::flow_mod_add(5, 10, std::slice::from_ref(&in_port), &ofraw::goto_table(3)),
            (ofraw::err::BAD_INSTRUCTION, ofraw::err::BAD_TABLE_ID),
        ),
        (
            "goto_table:5 from table 5",
            ofraw::flow_mod_add(5, 10, std::slice::from_ref(&in_port), &ofraw::goto_table(5)),
            (ofraw::err::BAD_INSTRUCTION, ofraw::err::BAD_TABLE_ID),
        ),
        (
            "unknown OXM field 120",
            ofraw::flow_mod_add(0, 10, &[oxm(120, &[0, 0, 0, 1])], &ofraw::apply_output(2)),
            (ofraw::err::BAD_MATCH, ofraw::err::BAD_FIELD),
        ),
        (
            "ADD to table 255",
            ofraw::flow_mod_add(
                255,
                10,
                std::slice::from_ref(&in_port),
                &ofraw::apply_output(2),
            ),
            (ofraw::err::FLOW_MOD_FAILED, ofraw::err::FM_BAD_TABLE_ID),
        ),
    ];
    for (what, body, want) in cases {
        assert_eq!(
            raw_flow_mod_error(&mut conn, &body),
            Some(want),
            "{what}: expected OpenFlow error (type, code) {want:?}"
        );
    }
    // the connection is still usable and a valid raw flow mod is accepted
    let ok = ofraw::flow_mod_add(0, 10, &[in_port], &ofraw::apply_output(2));
    assert_eq!(raw_flow_mod_error(&mut conn, &ok), None, "a valid flow mod");
    let flows = l.ofctl.v(Of::V13).flows("br0", "");
    assert_eq!(flows.len(), 1, "only the valid flow: {flows:#?}");
    assert_eq!(
        (
            flows[0].table,
            flows[0].match_.as_str(),
            flows[0].actions.as_str()
        ),
        (0, "in_port=1", "output:2")
    );
}

/// Proves the switch validates what a flow refers to as Open vSwitch does, see
/// [`missing_references`].
#[test]
fn flows_referring_to_missing_groups_meters_or_table_254_are_refused() {
    let l = OfLab::secure(2, &[]);
    assert_no_problems("missing references", missing_references(&l.sut()));
}

/// A flow whose action is `group:99` when group 99 does not exist is refused with
/// OFPBAC_BAD_OUT_GROUP, one with `meter:7` when meter 7 does not exist with
/// OFPMMFC_INVALID_METER, and table 254 (OVS's hidden internal table; n_tables is 254, so tables
/// are 0..253) with OFPBRC_EPERM; none of them is installed.
pub(crate) fn missing_references(s: &Sut) -> Vec<String> {
    s.reset();
    let mut problems = Vec::new();
    let mut cases: Vec<(Of, &str, &str)> = Vec::new();
    for v in Of::ALL {
        cases.push((v, "actions=group:99", "OFPBAC_BAD_OUT_GROUP"));
        cases.push((v, "table=254,actions=drop", "OFPBRC_EPERM"));
    }
    for v in [Of::V13, Of::V15] {
        cases.push((v, "actions=meter:7,output:1", "OFPMMFC_INVALID_METER"));
    }
    for (v, flow, want) in cases {
        let r = s.ofctl.v(v).run(&["add-flow", "br0", flow]);
        if r.ok() || !r.text().contains(want) {
            problems.push(format!(
                "{v:?} add-flow {flow:?}: expected {want} and a non-zero exit, got exit {:?}: {}",
                r.code,
                r.text().trim()
            ));
        }
    }
    let left = s.ofctl.v(Of::V15).flows("br0", "");
    if !left.is_empty() {
        problems.push(format!(
            "flows left installed: {:?}",
            left.iter().map(|f| f.line.trim()).collect::<Vec<_>>()
        ));
    }
    s.reset();
    problems
}

/// Proves OpenFlow 1.0 group mods, error echoes and modify cookies work as in Open vSwitch, see
/// [`openflow_10_specifics`].
#[test]
fn openflow_10_groups_error_echo_and_modify_cookie_work_as_in_ovs() {
    let l = OfLab::secure(2, &[]);
    assert_no_problems("OpenFlow 1.0 specifics", openflow_10_specifics(&l.sut()));
}

/// An error reply carries the whole failed request (Open vSwitch 3.1 echoes it all, so
/// `ovs-ofctl` prints the rejected flow mod decoded); OpenFlow 1.0 group mods and group dumps
/// (Nicira NXT_GROUP_MOD / NXST_GROUP_DESC, what `ovs-ofctl add-group` and `dump-groups` send
/// without `-O`) work; an OpenFlow 1.0 modify sets the flows' cookie to the one it carries (1.0
/// has no cookie mask: its cookie is the new cookie), while a 1.3 modify leaves it.
pub(crate) fn openflow_10_specifics(s: &Sut) -> Vec<String> {
    s.reset();
    let mut problems = Vec::new();
    s.ofctl.ok(&[
        "add-flow",
        "br0",
        "priority=10,in_port=1,udp,actions=output:2",
    ]);
    let text = s
        .ofctl
        .run(&[
            "add-flow",
            "br0",
            "check_overlap,priority=10,in_port=1,udp,tp_dst=9,actions=drop",
        ])
        .expect_failure();
    if !text.contains("OFPFMFC_OVERLAP") || !text.contains("check_overlap actions=drop") {
        problems.push(format!(
            "the OFPFMFC_OVERLAP reply should echo the whole 72-byte flow mod so that ovs-ofctl \
             decodes it (`ADD priority=10,udp,in_port=1,tp_dst=9 check_overlap actions=drop`), \
             got:\n{text}"
        ));
    }
    let r = s
        .ofctl
        .run(&["add-group", "br0", "group_id=5,type=all,bucket=output:1"]);
    if !r.ok() {
        problems.push(format!(
            "OpenFlow 1.0 add-group (NXT_GROUP_MOD) failed: {}",
            r.text()
        ));
    }
    let r = s.ofctl.run(&["dump-groups", "br0"]);
    if !r.ok() || !r.stdout.contains("group_id=5,type=all") {
        problems.push(format!(
            "OpenFlow 1.0 dump-groups (NXST_GROUP_DESC) should list group 5: {}",
            r.text()
        ));
    }
    s.reset();
    s.ofctl.ok(&[
        "add-flow",
        "br0",
        "cookie=0x1,priority=10,in_port=1,udp,actions=output:2",
    ]);
    s.ofctl.v(Of::V13).ok(&[
        "mod-flows",
        "br0",
        "cookie=0x7,in_port=1,udp,actions=output:3",
    ]);
    let after13 = s.ofctl.v(Of::V15).flows("br0", "");
    assert_eq!(after13.len(), 1, "{after13:#?}");
    assert_eq!(
        (after13[0].cookie, after13[0].actions.as_str()),
        (1, "output:3"),
        "an OpenFlow 1.3 modify changes the actions, not the cookie"
    );
    s.ofctl.ok(&[
        "mod-flows",
        "br0",
        "cookie=0x7,in_port=1,udp,actions=output:4",
    ]);
    let after10 = s.ofctl.v(Of::V15).flows("br0", "");
    if after10.len() != 1 || after10[0].cookie != 7 || after10[0].actions != "output:4" {
        problems.push(format!(
            "an OpenFlow 1.0 mod-flows with cookie=0x7 should set the flow's cookie to 0x7 (as \
             Open vSwitch does): {:?}",
            after10.iter().map(|f| f.line.trim()).collect::<Vec<_>>()
        ));
    }
    s.reset();
    problems
}

/// Proves flow monitors (`ovs-ofctl monitor br0 watch:`) report the table and its changes in
/// every version, see [`flow_monitor`].
#[test]
fn flow_monitors_report_flow_changes_in_every_version() {
    let l = OfLab::secure(2, &[]);
    assert_no_problems("flow monitor", flow_monitor(&l.sut()));
}

/// `ovs-ofctl monitor br0 watch:` in OpenFlow 1.0 (NXST_FLOW_MONITOR), 1.3 (ONFST_FLOW_MONITOR)
/// and 1.5 (OFPST_FLOW_MONITOR) first lists the existing flow, then reports a flow added,
/// modified and deleted (reason delete) by other connections, each with table, cookie, match
/// and actions, as Open vSwitch prints them.
pub(crate) fn flow_monitor(s: &Sut) -> Vec<String> {
    let mut problems = Vec::new();
    for v in Of::ALL {
        s.reset();
        s.ofctl.ok(&[
            "add-flow",
            "br0",
            "cookie=0x5,table=1,priority=3,ip,actions=drop",
        ]);
        let mut m = s.ofctl.v(v).monitor(&["br0", "watch:"]);
        let first = m.wait_message(&format!("{v:?} flow monitor reply or error"), |x| {
            x.contains("FLOW_MONITOR reply") || x.starts_with("OFPT_ERROR")
        });
        if first.starts_with("OFPT_ERROR") {
            problems.push(format!("{v:?} monitor watch: is refused: {first}"));
            continue;
        }
        let initial = if v == Of::V15 { "INITIAL" } else { "ADDED" };
        if !first.contains(&format!("event={initial} table=1 cookie=0x5 ip")) {
            problems.push(format!(
                "{v:?}: the first reply should list the existing flow as event={initial}: {first}"
            ));
        }
        s.ofctl.ok(&[
            "add-flow",
            "br0",
            "cookie=0x9,table=2,priority=5,udp,actions=output:2",
        ]);
        s.ofctl.ok(&[
            "mod-flows",
            "br0",
            "cookie=0x9,table=2,udp,actions=output:1",
        ]);
        s.ofctl.ok(&["del-flows", "br0", "table=2"]);
        m.wait_message(&format!("{v:?} the DELETED event"), |x| {
            x.contains("event=DELETED")
        });
        let events: Vec<String> = m
            .messages()
            .iter()
            .flat_map(|x| x.lines().skip(1).map(|l| l.trim().to_string()))
            .collect();
        for want in [
            "event=ADDED table=2 cookie=0x9 udp actions=output:2",
            "event=MODIFIED table=2 cookie=0x9 udp actions=output:1",
            "event=DELETED reason=delete table=2 cookie=0x9 udp actions=output:1",
        ] {
            if !events.iter().any(|e| e == want) {
                problems.push(format!("{v:?}: no `{want}` among {events:#?}"));
            }
        }
    }
    s.reset();
    problems
}

/// Proves paused packet-ins can be resumed by `ovs-ofctl monitor ... resume`, see
/// [`pause_and_resume`].
#[test]
fn paused_packet_ins_are_resumed_by_ovs_ofctl_monitor() {
    let l = OfLab::secure(2, &[]);
    assert_no_problems("controller(pause)", pause_and_resume(&l.sut()));
}

/// A flow `set_field:0x5->reg3,controller(pause),output:2` sends a packet-in with a
/// continuation that `ovs-ofctl monitor br0 65535 resume` decodes (it prints the packet-in with
/// reg3=0x5) and sends back in NXT_RESUME; the switch then finishes the actions: the packet
/// arrives at host 2.
pub(crate) fn pause_and_resume(s: &Sut) -> Vec<String> {
    s.reset();
    let (a, b) = (&s.hosts[0], &s.hosts[1]);
    let (ra, rb) = (&s.socks[0], &s.socks[1]);
    s.ofctl.ok(&[
        "add-flow",
        "br0",
        "in_port=1,udp,tp_dst=7777,actions=set_field:0x5->reg3,controller(pause),output:2",
    ]);
    let mut m = s.ofctl.monitor(&["br0", "65535", "resume"]);
    m.sync(&s.ofctl, "br0");
    let f = udp(a, b, 100, 7777, b"paused then resumed");
    ra.send(&f);
    let pin = m.wait_message("the paused packet-in", |x| {
        x.starts_with("NXT_PACKET_IN2") && (x.contains("tp_dst=7777") || x.contains("decode error"))
    });
    let mut problems = Vec::new();
    if pin.contains("decode error") || !pin.contains("reg3=0x5") {
        problems.push(format!(
            "ovs-ofctl cannot decode the paused packet-in (so it cannot resume it); Open vSwitch's \
             continuation is a list of NXCPT_* properties:\n{pin}"
        ));
    } else {
        expect_frame(rb, "the resumed packet at host 2", |x| x == f.as_slice());
    }
    s.reset();
    problems
}

/// Proves idle and hard timeouts and FLOW_REMOVED, see [`timeouts_and_flow_removed`].
#[test]
fn timeouts_remove_flows_and_send_flow_removed_to_monitors() {
    let l = OfLab::secure(2, &[]);
    assert_no_problems("timeouts", timeouts_and_flow_removed(&l.sut()));
}

/// Flows with `idle_timeout=1` and `hard_timeout=1` disappear from dump-flows, and those flagged
/// `send_flow_rem` produce a FLOW_REMOVED (reason idle, hard, and delete for one removed by
/// del-flows) printed by `ovs-ofctl monitor br0 65535` in OpenFlow 1.0 and 1.5 with the flow's
/// cookie; a flow without the flag produces none. A flow with `idle_timeout=3` that sees a
/// packet every 200 ms stays through 4 s of traffic (every packet forwarded and counted), then
/// expires once the traffic stops, reported with its packet count. Last (a problem, not a
/// panic), as in Open vSwitch: the OpenFlow 1.0 monitor gets the standard OFPT_FLOW_REMOVED (it
/// never asked for NXM), not NXT_FLOW_REMOVED.
pub(crate) fn timeouts_and_flow_removed(s: &Sut) -> Vec<String> {
    s.reset();
    let (a, b) = (&s.hosts[0], &s.hosts[1]);
    let (ra, rb) = (&s.socks[0], &s.socks[1]);
    let mut m10 = s.ofctl.monitor(&["br0", "65535"]);
    let mut m15 = s.ofctl.v(Of::V15).monitor(&["br0", "65535"]);
    m10.sync(&s.ofctl, "br0");
    m15.sync(&s.ofctl, "br0");
    let file = write_lines(
        &s.dir,
        "timeouts.txt",
        &[
            "cookie=0x11,priority=5,idle_timeout=1,send_flow_rem,udp,tp_dst=1,actions=drop",
            "cookie=0x12,priority=5,hard_timeout=1,send_flow_rem,udp,tp_dst=2,actions=drop",
            "cookie=0x13,priority=5,send_flow_rem,udp,tp_dst=3,actions=drop",
            "cookie=0x14,priority=5,idle_timeout=1,udp,tp_dst=4,actions=drop",
            "cookie=0x15,priority=5,idle_timeout=3,send_flow_rem,in_port=1,udp,tp_dst=5,\
             actions=output:2",
        ],
    );
    s.ofctl.ok(&["add-flows", "br0", &file]);
    s.ofctl.ok(&["del-flows", "br0", "udp,tp_dst=3"]);
    const N: u64 = 20;
    for i in 0..N {
        let f = udp(a, b, 100, 5, format!("keepalive {i}").as_bytes());
        ra.send(&f);
        expect_frame(rb, "a packet of the idle_timeout=3 flow", |x| {
            x == f.as_slice()
        });
        std::thread::sleep(Duration::from_millis(200));
    }
    wait_for("the idle_timeout=3 flow to count 20 packets", WAIT, || {
        let flows = s.ofctl.flows("br0", "");
        match flows.iter().find(|f| f.cookie == 0x15) {
            None => panic!(
                "the idle_timeout=3 flow expired while a packet hit it every 200 ms: {flows:#?}"
            ),
            Some(f) if f.n_packets == N => Ok(()),
            Some(f) => Err(f.line.clone()),
        }
    });
    for (m, name) in [(&mut m10, "OpenFlow 1.0"), (&mut m15, "OpenFlow 1.5")] {
        for (cookie, reason) in [
            ("0x11", "reason=idle"),
            ("0x12", "reason=hard"),
            ("0x13", "reason=delete"),
            ("0x15", "reason=idle"),
        ] {
            let msg = m.wait_message(&format!("{name} FLOW_REMOVED of cookie {cookie}"), |s| {
                s.contains("FLOW_REMOVED") && s.contains(&format!("cookie:{cookie} "))
            });
            assert!(msg.contains(reason), "{name}: {msg}");
            if cookie == "0x15" {
                assert!(msg.contains(&format!("pkts{N} ")), "{name}: {msg}");
            }
        }
    }
    wait_for("every timed-out flow to leave the table", WAIT, || {
        let flows = s.ofctl.flows("br0", "");
        if flows.is_empty() {
            Ok(())
        } else {
            Err(format!("{flows:#?}"))
        }
    });
    // everything queued for the monitors before this point is printed before the probe
    m10.sync(&s.ofctl, "br0");
    m15.sync(&s.ofctl, "br0");
    for m in [&m10, &m15] {
        let msgs = m.messages_without_probes();
        let removed: Vec<&String> = msgs.iter().filter(|s| s.contains("FLOW_REMOVED")).collect();
        assert!(
            !removed.iter().any(|s| s.contains("cookie:0x14")),
            "a flow without send_flow_rem produced FLOW_REMOVED: {removed:#?}"
        );
        assert_eq!(removed.len(), 4, "{removed:#?}");
    }
    let mut problems = Vec::new();
    let msgs: Vec<String> = m10
        .messages_without_probes()
        .into_iter()
        .filter(|s| s.contains("FLOW_REMOVED"))
        .collect();
    if !msgs
        .iter()
        .all(|s| s.starts_with("OFPT_FLOW_REMOVED (xid="))
    {
        problems.push(format!(
            "an OpenFlow 1.0 connection that did not ask for NXM should get OFPT_FLOW_REMOVED \
             (as from Open vSwitch), got: {msgs:#?}"
        ));
    }
    problems
}

/// Proves packet-ins from the `controller` action reach `ovs-ofctl monitor br0 65535` in each
/// format: OpenFlow 1.0 (NXT_PACKET_IN2 with userdata), 1.3 standard OFPT_PACKET_IN and 1.5,
/// with in_port, reason, total length and the frame's fields; `controller(max_len=20)` cuts the
/// data to 20 bytes but reports the full length; the packet goes nowhere else. The mgmt-socket
/// rule: a plain connection that never set miss_send_len gets no packet-in at all (checked with
/// an echo after the monitors printed theirs); once it sets miss_send_len it gets the next one,
/// with the whole frame.
#[test]
fn controller_action_packet_ins_reach_monitors_but_not_plain_connections() {
    let l = OfLab::secure(2, &[]);
    let (a, b) = (l.host(0), l.host(1));
    let (ra, rb) = (l.sock(0), l.sock(1));
    let mut plain = OfConn::unix(&l.d.mgmt("br0"), OF13);
    let mut mons = [
        ("OpenFlow 1.0", l.ofctl.monitor(&["br0", "65535"])),
        (
            "OpenFlow 1.3",
            l.ofctl
                .v(Of::V13)
                .monitor(&["br0", "65535", "--packet-in-format=standard"]),
        ),
        (
            "OpenFlow 1.5",
            l.ofctl.v(Of::V15).monitor(&["br0", "65535"]),
        ),
    ];
    for (_, m) in mons.iter_mut() {
        m.sync(&l.ofctl, "br0");
    }
    l.ofctl.ok(&[
        "add-flow",
        "br0",
        "priority=10,in_port=1,udp,tp_dst=7777,actions=controller(userdata=01.02.03)",
    ]);
    l.ofctl.ok(&[
        "add-flow",
        "br0",
        "priority=10,in_port=1,udp,tp_dst=7778,actions=controller(max_len=20)",
    ]);
    let f1 = udp(a, b, 4321, 7777, b"to the controller");
    let f2 = udp(a, b, 4321, 7778, &[0x5a; 60]);
    ra.send(&f1);
    ra.send(&f2);
    for (name, m) in mons.iter_mut() {
        let p1 = m.wait_message(&format!("{name} packet-in of tp_dst=7777"), |s| {
            s.contains("PACKET_IN") && s.contains("tp_dst=7777")
        });
        for want in [
            "in_port=1".to_string(),
            "(via action)".to_string(),
            format!("total_len={}", f1.len()),
            format!("data_len={}", f1.len()),
            format!("dl_src={}", pkt::mac_str(&a.mac)),
            format!("nw_dst={}", frame_ip(b)),
        ] {
            assert!(p1.contains(&want), "{name}: no {want:?} in\n{p1}");
        }
        if *name != "OpenFlow 1.3" {
            assert!(p1.contains("userdata=01.02.03"), "{name}: {p1}");
        }
        let p2 = m.wait_message(&format!("{name} packet-in of tp_dst=7778"), |s| {
            s.contains("PACKET_IN") && s.contains(&format!("total_len={}", f2.len()))
        });
        assert!(p2.contains("data_len=20 "), "{name}: max_len=20:\n{p2}");
    }
    let got: Vec<_> = rb.drain().into_iter().filter(|f| f.incoming()).collect();
    assert!(
        !got.iter().any(|f| f.data == f1 || f.data == f2),
        "a packet sent to the controller was also forwarded to port 2"
    );
    let queued = plain.echo();
    assert!(
        queued.is_empty(),
        "a service connection without miss_send_len got asynchronous messages: {queued:?}"
    );
    plain.set_miss_send_len(0xffff);
    assert!(plain.barrier().is_empty());
    let f3 = udp(a, b, 4321, 7777, b"now the plain connection asked");
    ra.send(&f3);
    let m = plain
        .recv_matching(WAIT, |m| m.msg_type == ofraw::t::PACKET_IN)
        .expect("a packet-in on the connection that set miss_send_len");
    assert_eq!(m.packet_in_data(), Some(f3.as_slice()));
}

/// Proves packet-out to a port and through the tables, see [`packet_out`].
#[test]
fn packet_out_delivers_to_a_port_and_through_the_pipeline() {
    let l = OfLab::secure(3, &[]);
    assert_no_problems("packet-out", packet_out(&l.sut()));
}

/// OpenFlow 1.0 `packet-out br0 CONTROLLER output:2 FRAME` delivers the frame unchanged to host
/// 2; OpenFlow 1.5 `in_port=CONTROLLER,packet=..,actions=resubmit(,3)` runs it through table 3,
/// which rewrites the destination MAC and outputs to port 3; OpenFlow 1.3 `in_port=1 ...
/// actions=table` runs it through table 0 as if received on port 1. Last (a problem, not a
/// panic), as in Open vSwitch: the flows that handled packet-outs count them in n_packets and
/// n_bytes.
pub(crate) fn packet_out(s: &Sut) -> Vec<String> {
    s.reset();
    let (a, b, c) = (&s.hosts[0], &s.hosts[1], &s.hosts[2]);
    let (rb, rc) = (&s.socks[1], &s.socks[2]);
    s.ofctl.v(Of::V15).ok(&[
        "add-flow",
        "br0",
        &format!(
            "cookie=0x3,table=3,priority=5,udp,tp_dst=5001,actions=set_field:{}->eth_dst,\
             output:3",
            pkt::mac_str(&c.mac)
        ),
    ]);
    s.ofctl.ok(&[
        "add-flow",
        "br0",
        "cookie=0x1,priority=5,in_port=1,udp,tp_dst=5002,actions=output:2",
    ]);
    let f1 = udp(a, b, 100, 5000, b"packet-out to port 2");
    s.ofctl
        .ok(&["packet-out", "br0", "CONTROLLER", "output:2", &hex(&f1)]);
    expect_frame(rb, "OpenFlow 1.0 packet-out output:2", |x| {
        x == f1.as_slice()
    });

    let f2 = pkt::udp_frame(
        BROADCAST,
        a.mac,
        frame_ip(a),
        frame_ip(c),
        100,
        5001,
        b"via table 3",
        UdpCsum::Full,
    );
    s.ofctl.v(Of::V15).ok(&[
        "packet-out",
        "br0",
        &format!(
            "in_port=CONTROLLER,packet={},actions=resubmit(,3)",
            hex(&f2)
        ),
    ]);
    let got = expect_frame(rc, "OpenFlow 1.5 packet-out resubmit(,3)", |x| {
        carries(x, b"via table 3")
    });
    let mut want = f2.clone();
    want[..6].copy_from_slice(&c.mac);
    assert_eq!(got, want, "table 3 rewrites only the destination MAC");

    let f3 = udp(a, b, 100, 5002, b"via table 0");
    s.ofctl.v(Of::V13).ok(&[
        "packet-out",
        "br0",
        &format!("in_port=1 packet={} actions=table", hex(&f3)),
    ]);
    expect_frame(rb, "OpenFlow 1.3 packet-out actions=table", |x| {
        x == f3.as_slice()
    });
    let mut problems = Vec::new();
    let want = vec![(1, f2.len() as u64), (1, f3.len() as u64)];
    let counted = (0..50).any(|_| {
        let flows = s.ofctl.flows("br0", "");
        let counts: Vec<(u64, u64)> = [0x3, 0x1]
            .iter()
            .map(|&c| {
                let f = by_cookie(&flows, c);
                (f.n_packets, f.n_bytes)
            })
            .collect();
        if counts == want {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
        false
    });
    if !counted {
        problems.push(format!(
            "the flows that handled the packet-outs should count them, as in Open vSwitch \
             ((n_packets, n_bytes) of the table 3 and table 0 flows, want {want:?}):\n{}",
            s.ofctl.ok(&["dump-flows", "br0"])
        ));
    }
    s.reset();
    problems
}

/// Proves the counters read through ovs-ofctl are exact: after 40 frames of 100 bytes from host
/// 1 to host 2 (all received), `dump-ports` in OpenFlow 1.0, 1.3 and 1.5 shows exactly +40
/// packets / +4000 bytes received on port 1 and sent on port 2 and nothing else moved,
/// `dump-ports br0 2` shows port 2 alone, and the flow's n_packets/n_bytes and `dump-aggregate`
/// agree. Port LOCAL is listed after them, as in Open vSwitch, but its counters are left out of
/// the exact comparison: the switch namespace's own stack may send on `br0` at any time (IPv6
/// duplicate address detection, MLD reports).
#[test]
fn dump_ports_and_flow_counters_match_the_packets_sent() {
    const N: u64 = 40;
    let l = OfLab::secure(3, &[]);
    let (a, b) = (l.host(0), l.host(1));
    let (ra, rb) = (l.sock(0), l.sock(1));
    l.ofctl
        .ok(&["add-flow", "br0", "cookie=0x7,in_port=1,actions=output:2"]);
    let base: Vec<_> = Of::ALL.iter().map(|v| l.ofctl.v(*v).ports("br0")).collect();
    for (v, p) in Of::ALL.iter().zip(&base) {
        let names: Vec<&str> = p.iter().map(|x| x.port.as_str()).collect();
        assert_eq!(names, vec!["1", "2", "3", "LOCAL"], "{v:?} dump-ports");
    }
    let base: Vec<Vec<_>> = base
        .into_iter()
        .map(|p| p.into_iter().filter(|x| x.port != "LOCAL").collect())
        .collect();
    let frames: Vec<Vec<u8>> = (0..N)
        .map(|i| {
            let mut payload = format!("counted {i:03}").into_bytes();
            payload.resize(100 - 42, b'.');
            udp(a, b, 100, 5000, &payload)
        })
        .collect();
    assert!(frames.iter().all(|f| f.len() == 100));
    for f in &frames {
        ra.send(f);
    }
    let mut got = 0;
    let (_, all) = rb.collect_until(WAIT, |f| {
        if frames.iter().any(|x| x.as_slice() == f) {
            got += 1;
        }
        got == N
    });
    assert!(all, "host 2 received {got} of {N}");
    for (v, base) in Of::ALL.iter().zip(&base) {
        let now = wait_for(&format!("{v:?} port counters"), WAIT, || {
            let mut p = l.ofctl.v(*v).ports("br0");
            p.retain(|x| x.port != "LOCAL");
            if p[0].rx_packets >= base[0].rx_packets + N {
                Ok(p)
            } else {
                Err(format!("{p:?}"))
            }
        });
        let delta: Vec<[u64; 4]> = now
            .iter()
            .zip(base)
            .map(|(n, b)| {
                [
                    n.rx_packets - b.rx_packets,
                    n.rx_bytes - b.rx_bytes,
                    n.tx_packets - b.tx_packets,
                    n.tx_bytes - b.tx_bytes,
                ]
            })
            .collect();
        assert_eq!(
            delta,
            vec![[N, N * 100, 0, 0], [0, 0, N, N * 100], [0, 0, 0, 0]],
            "{v:?}: (rx packets, rx bytes, tx packets, tx bytes) per port; now {now:#?}"
        );
        assert!(now.iter().all(|p| p.rx_dropped == 0 && p.tx_dropped == 0));
        let one = l.ofctl.v(*v).run(&["dump-ports", "br0", "2"]);
        let one = ofctl::parse_ports(one.expect_ok());
        assert_eq!(one.len(), 1, "{v:?} dump-ports br0 2: {one:?}");
        assert_eq!(
            (one[0].port.as_str(), one[0].tx_packets),
            ("2", now[1].tx_packets)
        );
    }
    let f = by_cookie(&l.ofctl.flows("br0", ""), 7).clone();
    assert_eq!((f.n_packets, f.n_bytes), (N, N * 100), "{}", f.line);
    for v in Of::ALL {
        let agg = l.ofctl.v(v).ok(&["dump-aggregate", "br0"]);
        assert!(
            agg.contains(&format!(
                "packet_count={N} byte_count={} flow_count=1",
                N * 100
            )),
            "{v:?}: {agg}"
        );
    }
}

/// Proves `--listen ptcp:PORT` serves OpenFlow on TCP: `ovs-ofctl show tcp:127.0.0.1:PORT`
/// (run in the switch's namespace) lists the ports with their numbers and names, flows added
/// over TCP (OpenFlow 1.0 and 1.5) are the bridge's flows (seen through the unix socket) and
/// forward ping both ways, and del-flows over TCP empties the table.
#[test]
fn ptcp_listener_serves_ovs_ofctl_over_tcp() {
    let l = OfLab::secure(2, &["--listen", "ptcp:6653"]);
    let (a, b) = (l.host(0), l.host(1));
    let tcp = l.ofctl.in_ns(&l.lab.sw);
    let target = "tcp:127.0.0.1:6653";
    let show = tcp.ok(&["show", target]);
    for (i, h) in [a, b].iter().enumerate() {
        assert!(
            show.contains(&format!(" {}({}): addr:", i + 1, h.port)),
            "show over TCP lacks port {} ({}):\n{show}",
            i + 1,
            h.port
        );
    }
    tcp.ok(&["add-flow", target, "in_port=1,actions=output:2"]);
    tcp.v(Of::V15)
        .ok(&["add-flow", target, "in_port=2,actions=output:1"]);
    let via_unix = table_content(&l.ofctl.flows("br0", ""));
    let via_tcp = table_content(&tcp.v(Of::V13).flows(target, ""));
    assert_eq!(via_unix.len(), 2, "{via_unix:?}");
    assert_eq!(via_unix, via_tcp);
    a.ns.assert_ping(b.ip, 2);
    tcp.ok(&["del-flows", target]);
    assert!(l.ofctl.flows("br0", "").is_empty());
}

/// Proves `--controller tcp:IP:PORT`: the switch connects to a controller listening in its
/// namespace, negotiates OpenFlow 1.3, answers FEATURES_REQUEST with the datapath id
/// `ovs-ofctl show` reports, and, being a primary connection, gets packet-ins without asking
/// (miss_send_len defaults to 128, as in Open vSwitch), with the frame that hit the flow.
#[test]
fn active_controller_connection_gets_packet_ins_by_default() {
    let lab = Lab::new(2);
    let listener = lab
        .sw
        .in_ns(|| TcpListener::bind("127.0.0.1:6633").expect("bind the controller port"));
    let l = OfLab::secure_on(lab, &["--controller", "tcp:127.0.0.1:6633"]);
    let (a, b) = (l.host(0), l.host(1));
    let mut conn = OfConn::accept(&listener, OF13);
    let dpid = conn.datapath_id();
    let show = l.ofctl.ok(&["show", "br0"]);
    assert!(
        show.contains(&format!("dpid:{dpid:016x}")),
        "FEATURES_REPLY says dpid {dpid:016x}; ovs-ofctl show:\n{show}"
    );
    l.ofctl
        .ok(&["add-flow", "br0", "in_port=1,udp,actions=controller"]);
    let ra = l.sock(0);
    let f = udp(a, b, 9, 9, b"to the active controller");
    ra.send(&f);
    let m = conn
        .recv_matching(WAIT, |m| m.msg_type == ofraw::t::PACKET_IN)
        .expect("a packet-in on the active controller connection");
    assert_eq!(m.packet_in_data(), Some(f.as_slice()));
}

/// The multi-table pipeline shared by the xvswitchd and Open vSwitch tests (OpenFlow 1.5 flows,
/// as OVN writes them): table 0 classifies by in_port into reg0 and copies the UDP destination
/// port into reg1; table 1 picks by registers: 5001 runs table 2 (rewrites the source MAC) then
/// sets reg2 and runs table 3 (outputs by reg2); 5002 sets reg3 and goes to the controller with
/// userdata; 6000 goes to a select group hashing on the UDP source port, 6001 to an all group;
/// everything else from port 1 goes to 2, from 2 and 3 to 1.
pub(crate) const PIPELINE_FLOWS: &[&str] = &[
    "table=0,priority=10,in_port=1,udp,\
     actions=set_field:0x1->reg0,move:NXM_OF_UDP_DST[]->NXM_NX_REG1[0..15],goto_table:1",
    "table=0,priority=10,in_port=2,udp,actions=set_field:0x2->reg0,goto_table:1",
    "table=0,priority=10,in_port=3,udp,actions=set_field:0x3->reg0,goto_table:1",
    "table=1,priority=30,reg0=0x1,reg1=5001,actions=resubmit(,2),set_field:0x3->reg2,resubmit(,3)",
    "table=1,priority=30,reg0=0x1,reg1=5002,\
     actions=set_field:0x2a->reg3,controller(userdata=0a.0b.0c)",
    "cookie=0x60,table=1,priority=20,reg0=0x1,udp,tp_dst=6000,actions=group:1",
    "cookie=0x61,table=1,priority=20,reg0=0x1,udp,tp_dst=6001,actions=group:2",
    "table=1,priority=10,reg0=0x1,actions=output:2",
    "table=1,priority=10,reg0=0x2,actions=output:1",
    "table=1,priority=10,reg0=0x3,actions=output:1",
    "table=2,priority=1,actions=set_field:02:00:00:00:aa:aa->eth_src",
    "table=3,priority=1,reg2=0x3,actions=output:3",
];

pub(crate) const PIPELINE_GROUPS: &[&str] = &[
    "group_id=1,type=select,selection_method=hash,fields(udp_src),\
     bucket=bucket_id:0,actions=output:2,bucket=bucket_id:1,actions=output:3",
    "group_id=2,type=all,bucket=bucket_id:0,actions=output:2,bucket=bucket_id:1,actions=output:3",
];

/// Installs [`PIPELINE_GROUPS`] and [`PIPELINE_FLOWS`] with `o` (OpenFlow 1.5).
pub(crate) fn program_pipeline(o: &Ofctl, dir: &TempDir) {
    let o = o.v(Of::V15);
    let g = write_lines(dir, "pipeline-groups.txt", PIPELINE_GROUPS);
    o.ok(&["add-groups", "br0", &g]);
    let f = write_lines(dir, "pipeline-flows.txt", PIPELINE_FLOWS);
    o.ok(&["add-flows", "br0", &f]);
    let flows = o.flows("br0", "");
    assert_eq!(flows.len(), PIPELINE_FLOWS.len(), "{flows:#?}");
}

/// Parses `dump-group-stats` lines into group id → (ref_count, packet_count, bucket packet
/// counts).
fn group_stats(text: &str) -> BTreeMap<u32, (u64, u64, Vec<u64>)> {
    let mut m = BTreeMap::new();
    for l in text
        .lines()
        .filter(|l| l.trim_start().starts_with("group_id="))
    {
        let mut id = 0;
        let (mut refs, mut packets) = (0, 0);
        let mut buckets = Vec::new();
        for part in l.trim().split(',') {
            let (k, v) = part.split_once('=').unwrap_or((part, ""));
            let v: u64 = v.trim_end_matches('s').parse().unwrap_or(0);
            match k {
                "group_id" => id = v as u32,
                "ref_count" => refs = v,
                "packet_count" => packets = v,
                k if k.starts_with("bucket") && k.ends_with(":packet_count") => buckets.push(v),
                _ => {}
            }
        }
        m.insert(id, (refs, packets, buckets));
    }
    m
}

/// Sends traffic through the pipeline of [`program_pipeline`] on a 3-host topology and checks
/// every decision on the wire, then the group and flow counters read back with `o`.
pub(crate) fn check_pipeline(hosts: &[Host], socks: &[RawSock], o: &Ofctl) {
    let (a, b, c) = (&hosts[0], &hosts[1], &hosts[2]);
    let (ra, rb, rc) = (&socks[0], &socks[1], &socks[2]);
    let mut mon = o.v(Of::V15).monitor(&["br0", "65535"]);
    mon.sync(o, "br0");
    // default path: port 1 -> 2, 2 -> 1, 3 -> 1, frames unchanged
    let f = udp(a, b, 100, 5000, b"a default");
    ra.send(&f);
    expect_frame(rb, "a->b (reg0=1, default)", |x| x == f.as_slice());
    let f = udp(b, a, 100, 5000, b"b default");
    rb.send(&f);
    expect_frame(ra, "b->a (reg0=2)", |x| x == f.as_slice());
    let f = udp(c, a, 100, 5000, b"c default");
    rc.send(&f);
    expect_frame(ra, "c->a (reg0=3)", |x| x == f.as_slice());
    // 5001: resubmit(,2) rewrites eth_src, reg2 selects port 3 in table 3, and not port 2
    let f = udp(a, b, 100, 5001, b"a to 5001");
    ra.send(&f);
    let got = expect_frame(rc, "a->5001 via tables 2 and 3", |x| {
        carries(x, b"a to 5001")
    });
    let mut want = f.clone();
    want[6..12].copy_from_slice(&[2, 0, 0, 0, 0xaa, 0xaa]);
    assert_eq!(got, want, "only the source MAC is rewritten (by table 2)");
    let marker = udp(a, b, 100, 5000, b"marker after 5001");
    let before = before_marker(rb, || ra.send(&marker), &marker);
    assert!(
        !before.iter().any(|x| carries(x, b"a to 5001")),
        "the priority-30 flow should win over the priority-10 output:2"
    );
    // 5002: a packet-in with the registers set so far, the table and the userdata
    let f = udp(a, b, 100, 5002, b"a to the controller");
    ra.send(&f);
    let pin = mon.wait_message("the packet-in of the tp_dst=5002 flow", |m| {
        m.contains("PACKET_IN") && m.contains("tp_dst=5002")
    });
    for want in [
        "table_id=1",
        "reg0=0x1",
        "reg1=0x138a",
        "reg3=0x2a",
        "in_port=1",
        "(via action)",
        "userdata=0a.0b.0c",
    ] {
        assert!(pin.contains(want), "no {want:?} in the packet-in:\n{pin}");
    }
    assert!(
        pin.contains(&format!("total_len={} ", f.len())),
        "total_len: {pin}"
    );
    let marker = udp(a, b, 100, 5000, b"marker after 5002");
    let before = before_marker(rb, || ra.send(&marker), &marker);
    assert!(
        !before.iter().any(|x| carries(x, b"a to the controller")),
        "the packet sent to the controller was also output to port 2"
    );
    // select group: each source port always to the same bucket, both buckets used
    const SOURCES: u16 = 64;
    for round in 0..2 {
        for s in 0..SOURCES {
            ra.send(&udp(
                a,
                b,
                20000 + s,
                6000,
                format!("sel {round}").as_bytes(),
            ));
        }
    }
    let mut seen: BTreeMap<u16, Vec<usize>> = BTreeMap::new();
    let deadline = Instant::now() + WAIT;
    let mut total = 0;
    while total < 2 * SOURCES as usize && Instant::now() < deadline {
        for (i, r) in [rb, rc].iter().enumerate() {
            while let Some(fr) = r.recv(Duration::from_millis(1)) {
                if let Some((sport, 6000, _)) = pkt::udp_of(&fr.data).filter(|_| fr.incoming()) {
                    seen.entry(sport).or_default().push(i);
                    total += 1;
                }
            }
        }
    }
    assert_eq!(
        total,
        2 * SOURCES as usize,
        "select group deliveries: {seen:?}"
    );
    assert!(
        seen.values().all(|v| v.len() == 2 && v[0] == v[1]),
        "every source port goes to one bucket, always the same: {seen:?}"
    );
    let to_b = seen.values().filter(|v| v[0] == 0).count() as u64 * 2;
    let to_c = 2 * SOURCES as u64 - to_b;
    assert!(
        to_b > 0 && to_c > 0,
        "64 source ports all hashed to one bucket: {seen:?}"
    );
    // all group: one copy to each of ports 2 and 3
    let f = udp(a, b, 100, 6001, b"to all");
    ra.send(&f);
    expect_frame(rb, "all group copy to port 2", |x| x == f.as_slice());
    expect_frame(rc, "all group copy to port 3", |x| x == f.as_slice());
    // counters (Open vSwitch credits its flows and groups from the datapath a little later:
    // poll until they are complete, then require them exact)
    let want_groups = vec![
        (1u32, 2 * SOURCES as u64, vec![to_b, to_c]),
        (2, 1, vec![1, 1]),
    ];
    let text = wait_for("the flow and group counters", WAIT, || {
        let flows = o.v(Of::V15).flows("br0", "");
        let counts = (
            by_cookie(&flows, 0x60).n_packets,
            by_cookie(&flows, 0x61).n_packets,
        );
        let text = o.v(Of::V15).ok(&["dump-group-stats", "br0"]);
        let got: Vec<(u32, u64, Vec<u64>)> = group_stats(&text)
            .into_iter()
            .map(|(id, (_, p, b))| (id, p, b))
            .collect();
        if counts == (2 * SOURCES as u64, 1) && got == want_groups {
            Ok(text)
        } else {
            Err(format!(
                "flow n_packets (select, all) {counts:?}, want (128, 1); groups (id, packets, \
                 per bucket) {got:?}, want {want_groups:?}\n{text}"
            ))
        }
    });
    let stats = group_stats(&text);
    assert_eq!(
        (stats[&1].0, stats[&2].0),
        (1, 1),
        "ref_count: each group is used by one flow (Open vSwitch counts them):\n{text}"
    );
}

/// Proves conjunctive matches (OVN's way of writing address-set x port-set ACLs) installed with
/// `ovs-ofctl add-flows`: a flow `conj_id=7` forwards exactly the packets matching one clause-1
/// flow (source address 198.18.0.1 or .3) and one clause-2 flow (UDP port 80 or 443); a packet
/// matching only one dimension falls to the priority-1 drop flow. Checked on the wire (what
/// host 2 received, and not before a later marker) and in the two flows' counters.
#[test]
fn conjunctive_flows_forward_only_packets_matching_every_dimension() {
    let l = OfLab::secure(3, &[]);
    let (a, b, c) = (l.host(0), l.host(1), l.host(2));
    let (ra, rb, rc) = (l.sock(0), l.sock(1), l.sock(2));
    let file = write_lines(
        &l.dir,
        "conj.txt",
        &[
            "priority=10,ip,nw_src=198.18.0.1,actions=conjunction(7,1/2)",
            "priority=10,ip,nw_src=198.18.0.3,actions=conjunction(7,1/2)",
            "priority=10,udp,tp_dst=80,actions=conjunction(7,2/2)",
            "priority=10,udp,tp_dst=443,actions=conjunction(7,2/2)",
            "cookie=0x7,priority=10,conj_id=7,ip,actions=output:2",
            "cookie=0x1,priority=1,actions=drop",
        ],
    );
    l.ofctl.ok(&["add-flows", "br0", &file]);
    assert_eq!(frame_ip(a), Ipv4Addr::new(198, 18, 0, 1));
    let pass = [
        (&ra, udp(a, b, 100, 80, b"a:80")),
        (&ra, udp(a, b, 100, 443, b"a:443")),
        (&rc, udp(c, b, 100, 443, b"c:443")),
    ];
    for (r, f) in &pass {
        r.send(f);
        expect_frame(&rb, "a packet matching both dimensions", |x| {
            x == f.as_slice()
        });
    }
    // from a (clause 1 matches) to port 8080 (clause 2 does not); from b's address (clause 1
    // does not) to port 80, sent from host 3
    let stop1 = udp(a, b, 100, 8080, b"a:8080");
    let mut stop2 = udp(b, b, 100, 80, b"b-addr:80");
    stop2[6..12].copy_from_slice(&c.mac);
    let marker = udp(a, b, 100, 80, b"marker");
    let before = before_marker(
        &rb,
        || {
            ra.send(&stop1);
            rc.send(&stop2);
            ra.send(&marker);
        },
        &marker,
    );
    // stop2 came in on another port than the marker: wait for its counter before checking
    wait_for("the drop flow to count both packets", WAIT, || {
        let f = by_cookie(&l.ofctl.flows("br0", ""), 1).clone();
        if f.n_packets == 2 {
            Ok(())
        } else {
            Err(f.line)
        }
    });
    let later: Vec<Vec<u8>> = rb
        .drain()
        .into_iter()
        .filter(|f| f.incoming())
        .map(|f| f.data)
        .collect();
    for f in before.iter().chain(&later) {
        assert!(
            !carries(f, b"a:8080") && !carries(f, b"b-addr:80"),
            "a packet matching one dimension only was forwarded: {f:02x?}"
        );
    }
    let conj = by_cookie(&l.ofctl.flows("br0", ""), 7).clone();
    assert_eq!(conj.n_packets, 4, "3 packets and the marker: {}", conj.line);
}

/// Proves a multi-table pipeline programmed with `ovs-ofctl -O OpenFlow15` (registers set and
/// matched, `move` of a header field into a register, goto_table, resubmit to tables that
/// modify the packet and return, a controller action whose packet-in carries the registers and
/// userdata, a select group hashing on fields and an all group) does on the wire what the flows
/// say, see [`check_pipeline`], with exact flow and group counters, and (last) each group's
/// ref_count as Open vSwitch reports it.
#[test]
fn multi_table_pipeline_with_registers_resubmit_and_groups() {
    let l = OfLab::secure(3, &[]);
    let socks: Vec<RawSock> = (0..3).map(|i| l.sock(i)).collect();
    program_pipeline(&l.ofctl, &l.dir);
    check_pipeline(&l.lab.hosts, &socks, &l.ofctl);
}

/// Proves `ovs-ofctl mod-port` takes effect and is announced, see [`mod_port`].
#[test]
fn mod_port_takes_effect_and_is_announced_as_in_ovs() {
    let l = OfLab::secure(2, &[]);
    assert_no_problems("mod-port", mod_port(&l.sut()));
}

/// `no-forward` stops output to the port and `forward` restores it; `down` shows PORT_DOWN and
/// LINK_DOWN (Open vSwitch sets the device down) and nothing is sent out of the port (the flow
/// counts the frames it handled, the host behind the port gets none); `up` restores traffic;
/// every change is reported to `ovs-ofctl monitor br0 65535` as an OFPT_PORT_STATUS (MOD)
/// carrying the new config.
pub(crate) fn mod_port(s: &Sut) -> Vec<String> {
    s.reset();
    let (a, b) = (&s.hosts[0], &s.hosts[1]);
    let (ra, rb) = (&s.socks[0], &s.socks[1]);
    s.ofctl
        .ok(&["add-flow", "br0", "cookie=0x1,in_port=1,actions=output:2"]);
    s.ofctl
        .ok(&["add-flow", "br0", "cookie=0x2,in_port=2,actions=output:1"]);
    let mut mon = s.ofctl.monitor(&["br0", "65535"]);
    mon.sync(&s.ofctl, "br0");
    let mut problems = Vec::new();
    let mut sent = 0;
    // sends a frame from a and waits until flow 0x1 counted it (the switch decided); true if b
    // received it (waiting long when it should, briefly when it should not)
    let mut through = |tag: &str, should: bool| -> bool {
        let f = udp(a, b, 100, 5000, tag.as_bytes());
        rb.drain();
        ra.send(&f);
        sent += 1;
        wait_for(&format!("flow 0x1 to count frame {tag:?}"), WAIT, || {
            let fl = by_cookie(&s.ofctl.flows("br0", ""), 1).clone();
            if fl.n_packets >= sent {
                Ok(())
            } else {
                Err(fl.line)
            }
        });
        let t = if should {
            WAIT
        } else {
            Duration::from_millis(200)
        };
        rb.collect_until(t, |x| x == f.as_slice()).1
    };
    assert!(through("baseline", true), "baseline: a->b does not cross");
    s.ofctl.ok(&["mod-port", "br0", "2", "no-forward"]);
    if through("no-forward", false) {
        problems.push("a frame was output to a port configured no-forward".to_string());
    }
    s.ofctl.ok(&["mod-port", "br0", "2", "forward"]);
    assert!(
        through("forward again", true),
        "after `forward`: a->b does not cross"
    );
    s.ofctl.ok(&["mod-port", "br0", "2", "down"]);
    let show = s.ofctl.ok(&["show", "br0"]);
    let port2: Vec<&str> = show
        .lines()
        .skip_while(|x| !x.starts_with(" 2("))
        .take(3)
        .collect();
    if !port2
        .iter()
        .any(|x| x.contains("config:") && x.contains("PORT_DOWN"))
        || !port2
            .iter()
            .any(|x| x.contains("state:") && x.contains("LINK_DOWN"))
    {
        problems.push(format!(
            "after `mod-port br0 2 down`, show should say config PORT_DOWN and state LINK_DOWN \
             (OVS sets the device down): {port2:?}"
        ));
    }
    if through("down", false) {
        problems.push("a frame was output to a port that is administratively down".to_string());
    }
    s.ofctl.ok(&["mod-port", "br0", "2", "up"]);
    a.ns.assert_ping(b.ip, 1);
    mon.sync(&s.ofctl, "br0");
    let status: Vec<String> = mon
        .messages()
        .into_iter()
        .filter(|m| m.starts_with("OFPT_PORT_STATUS") && m.contains(" 2("))
        .collect();
    for want in ["NO_FWD", "PORT_DOWN"] {
        if !status
            .iter()
            .any(|m| m.lines().any(|x| x.contains("config:") && x.contains(want)))
        {
            problems.push(format!(
                "no OFPT_PORT_STATUS for port 2 with config {want} (OVS sends one per change); \
                 port-status messages seen: {status:#?}"
            ));
        }
    }
    s.reset();
    problems
}

/// The `ovs-ofctl show` block of each port: number(name) → its property lines.
fn port_blocks(show: &str) -> BTreeMap<String, Vec<String>> {
    let mut m: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut cur = None;
    for l in show.lines() {
        if l.starts_with(' ') && !l.starts_with("  ") && l.contains("): addr:") {
            let key = l.trim().split(": addr:").next().unwrap_or("").to_string();
            m.insert(key.clone(), Vec::new());
            cur = Some(key);
        } else if l.starts_with("     ") {
            if let Some(k) = &cur {
                m.get_mut(k)
                    .expect("current port")
                    .push(l.trim().to_string());
            }
        } else {
            cur = None;
        }
    }
    m
}

/// Proves `ovs-ofctl show` describes ports as Open vSwitch does in OpenFlow 1.0 and 1.3, see
/// [`show_ports`].
#[test]
fn show_describes_ports_consistently_in_openflow_10_and_13() {
    let l = OfLab::secure(2, &[]);
    assert_no_problems("show", show_ports(&l.sut()));
}

/// `ovs-ofctl show` describes each port identically in OpenFlow 1.0 (FEATURES_REPLY ports) and
/// 1.3 (PORT_DESC): numbers and names in port order, config, state (1.3 adds LIVE for a port
/// that is up, as Open vSwitch does), current features ("10GB-FD COPPER" in both, as Open
/// vSwitch shows a veth) and speed; a port whose link goes down shows LINK_DOWN in both.
pub(crate) fn show_ports(s: &Sut) -> Vec<String> {
    let blocks = |v: Of| {
        let mut b = port_blocks(&s.ofctl.v(v).ok(&["show", "br0"]));
        b.retain(|k, _| !k.starts_with("LOCAL("));
        b
    };
    let (b10, b13) = (blocks(Of::V10), blocks(Of::V13));
    let names: Vec<String> = s
        .hosts
        .iter()
        .enumerate()
        .map(|(i, h)| format!("{}({})", i + 1, h.port))
        .collect();
    assert_eq!(b10.keys().cloned().collect::<Vec<_>>(), names, "{b10:#?}");
    assert_eq!(b13.keys().cloned().collect::<Vec<_>>(), names, "{b13:#?}");
    for n in &names {
        assert!(
            b13[n].iter().any(|l| l == "current:    10GB-FD COPPER"),
            "OpenFlow 1.3 {n}: {:?}",
            b13[n]
        );
    }
    let mut problems = Vec::new();
    // OpenFlow 1.1+ has OFPPS_LIVE, which Open vSwitch sets on a port that is up; 1.0 has not
    let mut b13_as_10 = b13.clone();
    for (n, lines) in b13_as_10.iter_mut() {
        for l in lines.iter_mut() {
            if let Some(st) = l.strip_prefix("state:") {
                let flags: Vec<&str> = st.split_whitespace().filter(|f| *f != "LIVE").collect();
                if !st.split_whitespace().any(|f| f == "LIVE") {
                    problems.push(format!(
                        "OpenFlow 1.3 {n}: a port that is up should be LIVE (OFPPS_LIVE, as \
                         Open vSwitch reports it): {l:?}"
                    ));
                }
                *l = format!(
                    "state:      {}",
                    if flags.is_empty() {
                        "0".to_string()
                    } else {
                        flags.join(" ")
                    }
                );
            }
        }
    }
    if b10 != b13_as_10 {
        problems.push(format!(
            "OpenFlow 1.0 and 1.3 describe the ports differently (besides LIVE):\n1.0: {b10:?}\n\
             1.3: {b13:?}"
        ));
    }
    let port = &s.hosts[1].port;
    s.sw.ip(&format!("link set {port} down"));
    wait_for("port 2 to show LINK_DOWN", WAIT, || {
        let (b10, b13) = (blocks(Of::V10), blocks(Of::V13));
        let down = |b: &BTreeMap<String, Vec<String>>| {
            b.get(&names[1])
                .is_some_and(|l| l.iter().any(|x| x.contains("LINK_DOWN")))
        };
        if down(&b10) && down(&b13) {
            Ok(())
        } else {
            Err(format!("{b10:#?}\n{b13:#?}"))
        }
    });
    s.sw.ip(&format!("link set {port} up"));
    problems
}

/// Proves the control socket prints error replies on their own line, see
/// [`appctl_error_lines`].
#[test]
fn ovs_appctl_prints_error_replies_on_their_own_line() {
    let l = OfLab::secure(2, &[]);
    assert_no_problems("ovs-appctl errors", appctl_error_lines(&l.sut()));
}

/// The control socket's error replies end with a newline, as Open vSwitch's unixctl server
/// guarantees (it appends one), so `ovs-appctl` prints the error on its own line before its
/// "server returned an error" line: `ofproto/trace` and `fdb/show` of an unknown bridge.
pub(crate) fn appctl_error_lines(s: &Sut) -> Vec<String> {
    let mut problems = Vec::new();
    for args in [
        &["ofproto/trace", "nosuchbr", "in_port=1"][..],
        &["fdb/show", "nosuchbr"],
    ] {
        let out = xvs_tests::daemon::ovs_appctl(&s.ctl, args);
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        let lines: Vec<&str> = err.lines().collect();
        if !(lines.len() == 2 && lines[1].starts_with("ovs-appctl: ")) {
            problems.push(format!(
                "ovs-appctl {args:?}: the error text should end with a newline, got {err:?}"
            ));
        }
    }
    problems
}

/// Proves OVN's ARP responder works as in Open vSwitch: the flow it installs for a logical
/// port's IP (`ls_in_arp_rsp`, written with OpenFlow 1.0 `load:` actions as `ovs-ofctl` sends
/// them) turns host 1's ARP request for 10.0.0.99 into a reply that comes back out of the port
/// it arrived on: op 2 (`load:0x2->NXM_OF_ARP_OP[]` writes the 16-bit field, whose low 8 bits
/// exist), the responder's MAC as sender and Ethernet source, the requester as target and
/// Ethernet destination. Host 2 sees nothing.
#[test]
fn ovn_arp_responder_answers_an_arp_request() {
    let l = OfLab::secure(2, &[]);
    let a = l.host(0);
    let (ra, rb) = (l.sock(0), l.sock(1));
    let vip = Ipv4Addr::new(10, 0, 0, 99);
    let mac = [0x0a, 0x00, 0x00, 0x00, 0x00, 0x99];
    l.ofctl.ok(&[
        "add-flow",
        "br0",
        "table=0,priority=50,arp,arp_tpa=10.0.0.99,arp_op=1,actions=\
         move:NXM_OF_ETH_SRC[]->NXM_OF_ETH_DST[],mod_dl_src:0a:00:00:00:00:99,\
         load:0x2->NXM_OF_ARP_OP[],move:NXM_NX_ARP_SHA[]->NXM_NX_ARP_THA[],\
         load:0x0a0000000099->NXM_NX_ARP_SHA[],move:NXM_OF_ARP_SPA[]->NXM_OF_ARP_TPA[],\
         load:0xa000063->NXM_OF_ARP_SPA[],load:0->NXM_OF_IN_PORT[],output:1",
    ]);
    let flows = l.ofctl.flows("br0", "");
    assert!(
        flows
            .iter()
            .any(|f| f.actions.contains("load:0x2->NXM_OF_ARP_OP[]")),
        "the responder flow reads back with its arp_op load: {flows:#?}"
    );
    let req = pkt::arp_frame(BROADCAST, 1, a.mac, a.ip, [0; 6], vip);
    ra.send(&req);
    let reply = expect_frame(&ra, "an ARP reply back at host 1", |f| {
        pkt::arp_of(f).is_some_and(|x| x.op != 1)
    });
    let arp = pkt::arp_of(&reply).expect("ARP");
    assert_eq!(arp.op, 2, "{arp:?}");
    assert_eq!((arp.sha, arp.spa), (mac, vip), "{arp:?}");
    assert_eq!((arp.tha, arp.tpa), (a.mac, a.ip), "{arp:?}");
    assert_eq!(&reply[0..6], &a.mac, "Ethernet destination: the requester");
    assert_eq!(&reply[6..12], &mac, "Ethernet source: the responder");
    let marker = udp(a, l.host(1), 1, 7002, b"marker");
    l.ofctl.ok(&[
        "add-flow",
        "br0",
        "table=0,priority=10,udp,actions=output:2",
    ]);
    let before = before_marker(&rb, || ra.send(&marker), &marker);
    assert!(
        before.iter().all(|f| pkt::arp_of(f).is_none()),
        "host 2 saw ARP: {before:02x?}"
    );
}

/// Proves data-plane meters are enforced per packet, see [`meters_enforced`].
#[test]
fn a_meter_passes_its_rate_and_drops_and_counts_the_rest() {
    let l = OfLab::secure(2, &[]);
    assert_no_problems("meters", meters_enforced(&l.sut()));
}

/// `packet_in_count:N` and band 0's `packet_count:N`/`byte_count:N` (and `byte_in_count`) of
/// meter `id` in `ovs-ofctl meter-stats` output.
fn meter_counts(text: &str, id: u32) -> Option<(u64, u64, u64, u64)> {
    let num = |s: &str, key: &str| -> Option<u64> {
        let at = s.find(key)? + key.len();
        let digits: String = s[at..].chars().take_while(|c| c.is_ascii_digit()).collect();
        digits.parse().ok()
    };
    let start = text.find(&format!("meter:{id} "))?;
    let block = &text[start..];
    let band = &block[block.find("\n0: ")?..];
    Some((
        num(block, "packet_in_count:")?,
        num(block, "byte_in_count:")?,
        num(band, "packet_count:")?,
        num(band, "byte_count:")?,
    ))
}

/// A pktps meter of rate 1, burst 1 on the flow `in_port=1,udp,tp_dst=7100` (OpenFlow 1.5
/// meter instruction, `meter:1,output:2`): of 200 frames sent back to back, at most what the
/// bucket can hold over the measured time (burst 1 + 1 packet/s × elapsed, +1 for rounding)
/// and at least the first reach host 2 — proven with a marker frame through an unmetered flow
/// on the same ports. `meter-stats` then counts all 200 in packet_in_count (and their bytes)
/// and exactly the others in band 0. After `mod-meter` to a rate of 1000 with burst 1000, 50
/// more all pass and the counters start again from zero (a modify installs a new datapath
/// meter in OVS, dpif_netdev_meter_set). `del-meters` deletes the metered flow.
pub(crate) fn meters_enforced(s: &Sut) -> Vec<String> {
    s.reset();
    let o = s.ofctl.v(Of::V15);
    let _ = o.run(&["del-meters", "br0"]);
    let mut problems = Vec::new();
    let (a, b) = (&s.hosts[0], &s.hosts[1]);
    let (ra, rb) = (&s.socks[0], &s.socks[1]);
    o.ok(&["add-flow", "br0", "priority=5,in_port=1,actions=output:2"]);
    let t0 = Instant::now();
    o.ok(&[
        "add-meter",
        "br0",
        "meter=1,pktps,burst,stats,bands=type=drop,rate=1,burst_size=1",
    ]);
    o.ok(&[
        "add-flow",
        "br0",
        "priority=10,in_port=1,udp,tp_dst=7100,actions=meter:1,output:2",
    ]);
    let frames: Vec<Vec<u8>> = (0..200u16)
        .map(|i| udp(a, b, 2000 + i, 7100, b"metered frame"))
        .collect();
    let len = frames[0].len() as u64;
    let marker = udp(a, b, 1, 7101, b"meter marker");
    let before = before_marker(
        rb,
        || {
            for f in &frames {
                ra.send(f);
            }
            ra.send(&marker);
        },
        &marker,
    );
    let elapsed = t0.elapsed().as_secs_f64();
    let passed = before
        .iter()
        .filter(|f| carries(f, b"metered frame"))
        .count() as u64;
    let bound = 1 + elapsed.ceil() as u64 + 1;
    if passed == 0 || passed > bound {
        problems.push(format!(
            "rate 1 burst 1: {passed} of 200 frames passed in {elapsed:.2} s (expected 1..={bound})"
        ));
    }
    let stats = o.ok(&["meter-stats", "br0"]);
    let want = (200, 200 * len, 200 - passed, (200 - passed) * len);
    match meter_counts(&stats, 1) {
        Some(got) if got == want => {}
        got => problems.push(format!(
            "meter-stats after 200 frames, {passed} passed: expected (packet_in, byte_in, band \
             packets, band bytes) {want:?}, got {got:?} from:\n{stats}"
        )),
    }

    o.ok(&[
        "mod-meter",
        "br0",
        "meter=1,pktps,burst,stats,bands=type=drop,rate=1000,burst_size=1000",
    ]);
    // the next barrier-acknowledged command is enough for the change to be in effect
    o.ok(&["dump-flows", "br0"]);
    let marker = udp(a, b, 2, 7101, b"meter marker 2");
    let before = before_marker(
        rb,
        || {
            for f in &frames[..50] {
                ra.send(f);
            }
            ra.send(&marker);
        },
        &marker,
    );
    let passed = before
        .iter()
        .filter(|f| carries(f, b"metered frame"))
        .count();
    if passed != 50 {
        problems.push(format!(
            "after mod-meter to rate 1000 burst 1000: {passed} of 50 frames passed"
        ));
    }
    let stats = o.ok(&["meter-stats", "br0"]);
    match meter_counts(&stats, 1) {
        Some(got) if got == (50, 50 * len, 0, 0) => {}
        got => problems.push(format!(
            "meter-stats after mod-meter and 50 frames: expected (50, {}, 0, 0), got {got:?} \
             from:\n{stats}",
            50 * len
        )),
    }

    o.ok(&["del-meters", "br0", "meter=1"]);
    let flows = o.flows("br0", "");
    if flows.iter().any(|f| f.actions.contains("meter")) || flows.len() != 1 {
        problems.push(format!(
            "after del-meters only the unmetered flow should be left: {:?}",
            flows.iter().map(|f| f.line.trim()).collect::<Vec<_>>()
        ));
    }
    let stats = o.run(&["meter-stats", "br0"]);
    if stats.text().contains("meter:1 ") {
        problems.push(format!(
            "meter 1 still listed after del-meters: {}",
            stats.text()
        ));
    }
    s.reset();
    problems
}

/// Proves: a packet-out whose actions edit the packet before a controller action sends the
/// edited packet in its packet-in (as a packet from a port would): OVN's `icmp4_error`
/// packet-out rewrites addresses and ICMP type, then pauses for ovn-controller to put the MTU in.
/// `packet-out ... actions=set_field:MAC->eth_dst,controller` reaches `ovs-ofctl monitor`
/// with dl_dst=MAC.
#[test]
fn packet_out_edits_reach_the_packet_in_it_sends() {
    let l = OfLab::secure(2, &[]);
    let (a, b) = (l.host(0), l.host(1));
    let mut m = l.ofctl.monitor(&["br0", "65535"]);
    m.sync(&l.ofctl, "br0");
    let f = udp(a, b, 100, 7300, b"edited before the packet-in");
    l.ofctl.v(Of::V15).ok(&[
        "packet-out",
        "br0",
        &format!(
            "in_port=CONTROLLER,packet={},actions=set_field:0a:0b:0c:0d:0e:0f->eth_dst,controller",
            hex(&f)
        ),
    ]);
    let pin = m.wait_message("the packet-out's packet-in", |x| {
        x.contains("PACKET_IN") && x.contains("tp_dst=7300")
    });
    assert!(pin.contains("dl_dst=0a:0b:0c:0d:0e:0f"), "{pin}");
}
