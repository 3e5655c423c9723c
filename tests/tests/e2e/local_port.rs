//! The bridge's LOCAL port (OpenFlow port LOCAL), Open vSwitch's internal port: an interface
//! named like the bridge that the daemon creates in its namespace, through which the host's own
//! stack is a station on the bridge. Each lab runs the daemon in its own switch namespace, so
//! every test's `br0` is a different interface.

use std::net::Ipv4Addr;
use std::time::Duration;

use xvs_tests::daemon::run_xvswitchd;
use xvs_tests::ofctl::{Of, Ofctl};
use xvs_tests::ovs::OvsSwitch;
use xvs_tests::{pkt, wait_until, Daemon, Host, Lab, Netns, RawSock, TempDir, WAIT};

use crate::openflow::OfLab;

/// The address the tests give the switch namespace's `br0`.
const LOCAL_IP: Ipv4Addr = Ipv4Addr::new(10, 200, 0, 254);

fn link_exists(ns: &Netns, ifname: &str) -> bool {
    ns.exec(&format!("ip link show dev {ifname}"))
        .status
        .success()
}

fn link_mac(ns: &Netns, ifname: &str) -> String {
    let out = ns.ip(&format!("-o link show dev {ifname}"));
    out.split_whitespace()
        .skip_while(|w| *w != "link/ether")
        .nth(1)
        .unwrap_or_else(|| panic!("no MAC in {out:?}"))
        .to_string()
}

/// The LOCAL-port expectations checked on xvswitchd and on a real Open vSwitch alike (`who`
/// names the switch in failures), for a switch whose bridge `br0` (empty flow table) runs in
/// `sw` with `host` on port 1: `br0` is brought up (Open vSwitch leaves it down) and given
/// [`LOCAL_IP`]; `show` in OpenFlow 1.0 and 1.3 lists ` LOCAL(br0): addr:MAC` with `br0`'s MAC;
/// with only `in_port=LOCAL,actions=output:1` and `in_port=1,actions=LOCAL`, the switch
/// namespace pings the host and the host pings it; `dump-ports` counts that on port LOCAL.
fn local_port_checks(who: &str, sw: &Netns, host: &Host, ofctl: &Ofctl) {
    sw.ip("link set br0 up");
    sw.ip(&format!("addr add {LOCAL_IP}/24 dev br0"));
    let want = format!(" LOCAL(br0): addr:{}", link_mac(sw, "br0"));
    for v in [Of::V10, Of::V13] {
        let text = ofctl.v(v).ok(&["show", "br0"]);
        assert!(
            text.lines().any(|l| l == want),
            "{who} {v:?} show lacks {want:?}:\n{text}"
        );
    }
    ofctl.ok(&["add-flow", "br0", "in_port=LOCAL,actions=output:1"]);
    ofctl.ok(&["add-flow", "br0", "in_port=1,actions=LOCAL"]);
    sw.assert_ping(host.ip, 3);
    host.ns.assert_ping(LOCAL_IP, 3);
    for v in [Of::V10, Of::V13] {
        let ports = ofctl.v(v).ports("br0");
        let local = ports
            .iter()
            .find(|p| p.port == "LOCAL")
            .unwrap_or_else(|| panic!("{who}: no port LOCAL in dump-ports ({v:?}): {ports:?}"));
        assert!(
            local.rx_packets >= 6 && local.tx_packets >= 6,
            "{who} LOCAL counters: {local:?}"
        );
    }
}

/// Proves the host reaches a namespace host through the LOCAL port and back, with the flows
/// `in_port=LOCAL,actions=output:1` and `in_port=1,actions=LOCAL` only, and that `show` and
/// `dump-ports` describe LOCAL: see [`local_port_checks`].
#[test]
fn host_stack_reaches_a_host_through_local_port_flows() {
    let l = OfLab::secure(1, &[]);
    local_port_checks("xvswitchd", &l.lab.sw, l.host(0), &l.ofctl);
}

/// Proves a real Open vSwitch (userspace datapath) meets the same [`local_port_checks`], so
/// that what the xvswitchd test expects is Open vSwitch's behaviour.
#[test]
fn open_vswitch_meets_the_local_port_expectations() {
    let lab = Lab::new(1);
    let ovs = OvsSwitch::start(&lab.sw, &lab.ports());
    local_port_checks(
        "ovs-vswitchd",
        &lab.sw,
        &lab.hosts[0],
        &Ofctl::ovs(&ovs.rundir),
    );
}

/// Proves `ovs-ofctl show` (OpenFlow 1.0 and 1.3) lists ` LOCAL(br0): addr:MAC` with the MAC
/// of the `br0` interface, after the numbered ports, as Open vSwitch does; and that
/// `dump-ports-desc` has it too.
#[test]
fn show_lists_local_port_with_its_mac() {
    let l = OfLab::secure(2, &[]);
    let mac = link_mac(&l.lab.sw, "br0");
    for v in [Of::V10, Of::V13] {
        let text = l.ofctl.v(v).ok(&["show", "br0"]);
        let want = format!(" LOCAL(br0): addr:{mac}");
        let lines: Vec<&str> = text.lines().filter(|l| l.contains("): addr:")).collect();
        assert_eq!(lines.len(), 3, "{v:?} show:\n{text}");
        assert_eq!(lines[2], want, "{v:?} show:\n{text}");
        let desc = l.ofctl.v(v).ok(&["dump-ports-desc", "br0"]);
        assert!(desc.contains(&want), "{v:?} dump-ports-desc:\n{desc}");
    }
}

/// Proves FLOOD and ALL include the LOCAL port but never the input port, in both directions:
/// a frame from host 1 under `in_port=1,actions=ALL` reaches host 2 and `br0`, not host 1; a
/// frame sent on `br0` under `in_port=LOCAL,actions=FLOOD` reaches hosts 1 and 2 and does not
/// come back to `br0`.
#[test]
fn flood_and_all_include_local_but_not_the_input_port() {
    let l = OfLab::secure(2, &[]);
    l.ofctl.ok(&["add-flow", "br0", "in_port=1,actions=ALL"]);
    l.ofctl
        .ok(&["add-flow", "br0", "in_port=LOCAL,actions=FLOOD"]);
    let (h1, h2) = (l.host(0), l.host(1));
    let (s1, s2) = (l.sock(0), l.sock(1));
    let sbr = RawSock::open(&l.lab.sw, "br0");
    let is = |port: u16| move |f: &[u8]| pkt::udp_of(f).is_some_and(|(_, d, _)| d == port);

    let f = crate::openflow::udp(h1, h2, 1000, 4001, b"to-all");
    s1.send(&f);
    assert!(
        s2.collect_until(WAIT, is(4001)).1,
        "ALL: host 2 got nothing"
    );
    assert!(sbr.collect_until(WAIT, is(4001)).1, "ALL: br0 got nothing");

    let mac = pkt::parse_mac(&link_mac(&l.lab.sw, "br0")).expect("br0 MAC");
    let f = pkt::udp_frame(
        [0xff; 6],
        mac,
        Ipv4Addr::new(198, 18, 0, 254),
        Ipv4Addr::new(198, 18, 0, 1),
        1000,
        4002,
        b"flood",
        pkt::UdpCsum::Full,
    );
    sbr.send(&f);
    assert!(
        s1.collect_until(WAIT, is(4002)).1,
        "FLOOD: host 1 got nothing"
    );
    assert!(
        s2.collect_until(WAIT, is(4002)).1,
        "FLOOD: host 2 got nothing"
    );
    // both floods have been delivered: anything that was to come back is queued by now
    let back = |s: &RawSock, port: u16| {
        s.drain()
            .iter()
            .filter(|fr| fr.incoming() && is(port)(&fr.data))
            .count()
    };
    assert_eq!(
        back(&s1, 4001),
        0,
        "ALL sent the frame back to its input port"
    );
    assert_eq!(back(&sbr, 4002), 0, "FLOOD sent the frame back to LOCAL");
}

/// Proves the default NORMAL switching (fail mode standalone) treats LOCAL as a port: the
/// switch namespace and a host ping each other through `br0` (ARP flooded, replies learnt).
#[test]
fn normal_switching_includes_the_local_port() {
    let lab = Lab::new(2);
    let d = Daemon::start(&lab.sw, &lab.daemon_args());
    lab.sw.ip(&format!("addr add {LOCAL_IP}/24 dev br0"));
    lab.sw.assert_ping(lab.hosts[1].ip, 2);
    lab.hosts[0].ns.assert_ping(LOCAL_IP, 2);
    let fdb = d.appctl("fdb/show", &["br0"]);
    assert!(fdb.contains("LOCAL"), "fdb/show has no LOCAL entry:\n{fdb}");
}

/// Proves the LOCAL port's lifecycle: the daemon creates `br0` up; after SIGKILL the pair is
/// left behind and the next start replaces it (saying so in its log); after SIGTERM `br0` is
/// gone.
#[test]
fn local_port_is_replaced_after_a_kill_and_removed_on_exit() {
    let lab = Lab::new(1);
    let dir = TempDir::new();
    let mut d = Daemon::start_in(&lab.sw, dir.path(), &lab.daemon_args());
    assert!(link_exists(&lab.sw, "br0"), "no br0 while the daemon runs");
    d.kill9();
    assert!(
        link_exists(&lab.sw, "br0"),
        "a killed daemon's br0 is expected to stay"
    );
    let mut d = Daemon::start_in(&lab.sw, dir.path(), &lab.daemon_args());
    assert!(
        d.log().contains("replacing the LOCAL port"),
        "log:\n{}",
        d.log()
    );
    lab.sw.ip(&format!("addr add {LOCAL_IP}/24 dev br0"));
    lab.hosts[0].ns.assert_ping(LOCAL_IP, 2);
    d.signal(libc::SIGTERM);
    assert!(d.wait_exit(WAIT).success());
    wait_until("br0 to disappear", WAIT, || !link_exists(&lab.sw, "br0"));
}

/// Proves an existing interface holding the bridge's name is not taken over (the start fails
/// naming it and `--no-local-port`), that `--no-local-port` starts without a LOCAL port, and
/// that a bridge name too long for an interface is refused clearly.
#[test]
fn bridge_name_conflicts_and_long_names_fail_clearly() {
    let lab = Lab::new(1);
    // a veth, as the LOCAL port itself is, but not one the daemon made
    lab.sw.ip(&format!(
        "link add br0 type veth peer name {}",
        xvs_tests::unique("x")
    ));
    let out = run_xvswitchd(
        &lab.sw,
        &[
            "--rundir",
            TempDir::new().path().to_str().expect("utf-8"),
            "--bridge",
            "br0",
            "--port",
            &lab.hosts[0].port,
            "--pmd-idle",
            "sleep",
        ],
        WAIT,
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "started over an existing br0: {err}");
    assert!(
        err.contains("br0 already exists") && err.contains("--no-local-port"),
        "{err}"
    );
    assert!(link_exists(&lab.sw, "br0"), "the existing br0 was removed");

    let mut args = lab.daemon_args();
    args.push("--no-local-port".into());
    let d = Daemon::start(&lab.sw, &args);
    let show = Ofctl::ovs(&d.rundir).ok(&["show", "br0"]);
    assert!(!show.contains("LOCAL("), "{show}");
    drop(d);

    let out = run_xvswitchd(
        &lab.sw,
        &["--bridge", "a-sixteen-bytes!", "--pmd-idle", "sleep"],
        Duration::from_secs(10),
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("1 to 15 bytes"), "{err}");
}
