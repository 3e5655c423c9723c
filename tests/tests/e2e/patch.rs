//! Patch ports (`type=patch`, `options:peer=`): two bridges joined inside the switch, as
//! ovn-controller joins br-int to a provider bridge for a localnet port. Made with the real
//! `ovs-vsctl` under a real `ovsdb-server`, checked with `ovs-ofctl`, `ovs-appctl` and traffic
//! between hosts on the two bridges.

use xvs_tests::ofctl::Ofctl;
use xvs_tests::pkt::mac_str;
use xvs_tests::traffic::udp_stream;
use xvs_tests::vsdb::VsDb;
use xvs_tests::{wait_until, Daemon, Lab, WAIT};

fn start(lab: &Lab, db: &VsDb) -> Daemon {
    Daemon::start_ovsdb(&lab.sw, &db.remote, &["--pmd-idle", "sleep"])
}

fn add_br(db: &VsDb, br: &str, fail_mode: &str) {
    db.vsctl_ok(&[
        "add-br",
        br,
        "--",
        "set",
        "bridge",
        br,
        "datapath_type=netdev",
        &format!("fail_mode={fail_mode}"),
    ]);
}

/// `ovs-vsctl add-port BR NAME -- set interface NAME type=patch options:peer=PEER`.
fn add_patch(db: &VsDb, br: &str, name: &str, peer: &str) -> std::process::Output {
    db.vsctl(&[
        "add-port",
        br,
        name,
        "--",
        "set",
        "interface",
        name,
        "type=patch",
        &format!("options:peer={peer}"),
    ])
}

/// The lines `ovs-ofctl show` prints for port `name` (its header and the indented lines
/// after it).
fn port_block(show: &str, name: &str) -> String {
    let mut out = Vec::new();
    let mut inside = false;
    for l in show.lines() {
        if l.starts_with(' ') && !l.starts_with("     ") {
            inside = l.contains(&format!("({name})"));
        }
        if inside {
            out.push(l);
        }
    }
    assert!(!out.is_empty(), "no port {name} in:\n{show}");
    out.join("\n")
}

/// Two standalone bridges, br-a with host 0's port and br-b with host 1's, and the patch pair
/// patch-a (br-a) <-> patch-b (br-b).
fn two_bridges(db: &VsDb, lab: &Lab, fail_mode_a: &str) {
    let (a, b) = (&lab.hosts[0], &lab.hosts[1]);
    add_br(db, "br-a", fail_mode_a);
    add_br(db, "br-b", "standalone");
    db.vsctl_ok(&["add-port", "br-a", &a.port]);
    db.vsctl_ok(&["add-port", "br-b", &b.port]);
    let o = add_patch(db, "br-a", "patch-a", "patch-b");
    assert!(o.status.success(), "{o:?}");
    let o = add_patch(db, "br-b", "patch-b", "patch-a");
    assert!(o.status.success(), "{o:?}");
}

/// Proves: a patch pair joins two standalone (NORMAL) bridges: ping and 1000 numbered UDP
/// datagrams of all sizes cross it intact, each exactly once; `ovs-ofctl show` lists the patch
/// ports (up) on both bridges; each bridge learns the other side's host behind its patch port
/// (fdb/show); dpif/show shows them as OVS does; removing one side brings the other down
/// (LINK_DOWN, Interface.error as ovs-vswitchd words it) and stops traffic, adding it back
/// restores both; a patch port whose peer does not exist gets an OpenFlow number and that
/// error.
#[test]
fn a_patch_pair_joins_two_standalone_bridges() {
    let lab = Lab::new(2);
    let (a, b) = (&lab.hosts[0], &lab.hosts[1]);
    let db = VsDb::start();
    let d = start(&lab, &db);
    two_bridges(&db, &lab, "standalone");
    assert_eq!(db.get("interface", "patch-a", "ofport"), "2");
    assert_eq!(db.get("interface", "patch-b", "ofport"), "2");
    assert!(db.get("open_vswitch", ".", "iface_types").contains("patch"));
    a.ns.assert_ping(b.ip, 3);
    udp_stream(a, b, 9300, 1000, 64).assert_all_once();
    b.ns.assert_ping(a.ip, 1);
    for (br, port) in [("br-a", "patch-a"), ("br-b", "patch-b")] {
        assert_eq!(db.get("interface", port, "error"), "[]");
        assert_eq!(db.get("interface", port, "link_state"), "up");
        let show = Ofctl::ovs(&d.rundir).ok(&["show", br]);
        let blk = port_block(&show, port);
        assert!(blk.contains(&format!(" 2({port})")), "{show}");
        assert!(!blk.contains("LINK_DOWN"), "{blk}");
    }
    // learning through the pair: each host is behind the patch port in the other bridge
    let far = |br: &str, mac: String| {
        d.fdb(br)
            .into_iter()
            .find(|e| e.mac == mac)
            .unwrap_or_else(|| panic!("{mac} not learnt on {br}: {:?}", d.fdb(br)))
            .port
    };
    assert_eq!(far("br-b", mac_str(&a.mac)), "2");
    assert_eq!(far("br-a", mac_str(&b.mac)), "2");
    assert_eq!(far("br-a", mac_str(&a.mac)), "1");
    let show = d.appctl("dpif/show", &[]);
    assert!(
        show.contains("patch-a 2/none: (patch: peer=patch-b)"),
        "{show}"
    );
    assert!(
        show.contains("patch-b 2/none: (patch: peer=patch-a)"),
        "{show}"
    );

    // one side goes: the other is down, with ovs-vswitchd's error, and nothing crosses
    db.vsctl_ok(&["del-port", "br-b", "patch-b"]);
    wait_until("patch-a's error", WAIT, || {
        db.get("interface", "patch-a", "error")
            .contains("No usable peer 'patch-b' exists in 'netdev' datapath.")
    });
    assert_eq!(db.get("interface", "patch-a", "link_state"), "down");
    let show = Ofctl::ovs(&d.rundir).ok(&["show", "br-a"]);
    assert!(port_block(&show, "patch-a").contains("LINK_DOWN"), "{show}");
    assert_eq!(a.ns.ping(b.ip, 2).1, 0, "traffic crossed a broken pair");

    // and comes back
    let o = add_patch(&db, "br-b", "patch-b", "patch-a");
    assert!(o.status.success(), "{o:?}");
    wait_until("patch-a's error to clear", WAIT, || {
        db.get("interface", "patch-a", "error") == "[]"
    });
    a.ns.assert_ping(b.ip, 3);
    udp_stream(a, b, 9301, 1000, 64).assert_all_once();
    let show = Ofctl::ovs(&d.rundir).ok(&["show", "br-a"]);
    assert!(
        !port_block(&show, "patch-a").contains("LINK_DOWN"),
        "{show}"
    );

    // a peer that does not exist
    let _ = add_patch(&db, "br-a", "patch-x", "xtnopeer");
    wait_until("patch-x's error", WAIT, || {
        db.get("interface", "patch-x", "error")
            .contains("No usable peer 'xtnopeer' exists in 'netdev' datapath.")
    });
    assert_eq!(db.get("interface", "patch-x", "ofport"), "3");
    // a patch port without a peer option is refused as OVS refuses it
    let _ = db.vsctl(&[
        "add-port",
        "br-a",
        "patch-y",
        "--",
        "set",
        "interface",
        "patch-y",
        "type=patch",
    ]);
    wait_until("patch-y's error", WAIT, || {
        db.get("interface", "patch-y", "error")
            .contains("patch type requires valid 'peer' argument")
    });
    assert_eq!(db.get("interface", "patch-y", "ofport"), "-1");
    // the pair carries on
    a.ns.assert_ping(b.ip, 1);
}

/// Proves: in a secure bridge, packets arriving through a patch port match flows on
/// `in_port=<patch port>` (the OpenFlow port of the patch port in that bridge), and output to a
/// patch port hands the packet to the peer bridge: traffic follows the flows both ways (ping,
/// 1000 datagrams), the flows count it, and without the flows nothing crosses.
#[test]
fn flows_in_a_secure_bridge_see_the_patch_port_as_in_port() {
    let lab = Lab::new(2);
    let (a, b) = (&lab.hosts[0], &lab.hosts[1]);
    let db = VsDb::start();
    let d = start(&lab, &db);
    two_bridges(&db, &lab, "secure");
    let of = Ofctl::ovs(&d.rundir);
    // nothing yet: a secure bridge without flows drops
    assert_eq!(a.ns.ping(b.ip, 1).1, 0);
    // a register set on the way out must not be seen by the peer bridge's packets coming
    // back: only fresh ones match on the way in
    for f in [
        "priority=30,in_port=1,actions=load:7->NXM_NX_REG0[],output:2",
        "priority=10,in_port=2,reg0=0,actions=output:1",
        "priority=20,in_port=2,reg0=7,actions=drop",
    ] {
        of.ok(&["add-flow", "br-a", f]);
    }
    a.ns.assert_ping(b.ip, 3);
    udp_stream(a, b, 9302, 1000, 64).assert_all_once();
    let flows = of.ok(&["dump-flows", "br-a"]);
    let counted = |prio: &str| {
        flows
            .lines()
            .find(|l| l.contains(&format!("priority={prio},")))
            .and_then(|l| l.split("n_packets=").nth(1))
            .and_then(|s| s.split(',').next())
            .and_then(|n| n.parse::<u64>().ok())
            .unwrap_or_else(|| panic!("no flow of priority {prio} in:\n{flows}"))
    };
    assert!(counted("10") >= 3, "{flows}");
    assert!(counted("30") >= 1000, "{flows}");
    assert_eq!(counted("20"), 0, "{flows}");
    // the way back in is the patch port's flow: without it, nothing returns
    of.ok(&["del-flows", "br-a", "in_port=2"]);
    assert_eq!(a.ns.ping(b.ip, 2).1, 0, "replies crossed without a flow");
}

/// Proves: without a database, `--port NAME,type=patch,peer=PEER` joins two standalone bridges
/// given on the command line, and `dpif/add-port` / `dpif/del-port` add and remove a pair at
/// runtime (traffic crosses only while the pair is complete).
#[test]
fn patch_ports_from_the_command_line_and_dpif_add_port() {
    let lab = Lab::new(2);
    let (a, b) = (&lab.hosts[0], &lab.hosts[1]);
    let args: Vec<String> = [
        "--bridge",
        "br-a",
        "--port",
        &a.port,
        "--port",
        "patch-a,type=patch,peer=patch-b",
        "--bridge",
        "br-b",
        "--port",
        &b.port,
        "--port",
        "patch-b,type=patch,peer=patch-a",
        "--pmd-idle",
        "sleep",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let d = Daemon::start(&lab.sw, &args);
    a.ns.assert_ping(b.ip, 3);
    let show = d.appctl("dpif/show", &[]);
    assert!(
        show.contains("patch-b 2/none: (patch: peer=patch-a)"),
        "{show}"
    );
    // a second pair, made at runtime, carries traffic once the first one is gone
    d.appctl("dpif/del-port", &["br-b", "patch-b"]);
    assert_eq!(a.ns.ping(b.ip, 1).1, 0, "traffic crossed a broken pair");
    d.appctl(
        "dpif/add-port",
        &["br-a", "patch-a2,type=patch,peer=patch-b2"],
    );
    assert_eq!(a.ns.ping(b.ip, 1).1, 0, "traffic crossed half a pair");
    d.appctl(
        "dpif/add-port",
        &["br-b", "patch-b2,type=patch,peer=patch-a2"],
    );
    a.ns.assert_ping(b.ip, 3);
    let show = Ofctl::ovs(&d.rundir).ok(&["show", "br-a"]);
    assert!(show.contains("(patch-a2)"), "{show}");
    assert!(port_block(&show, "patch-a").contains("LINK_DOWN"), "{show}");
    assert!(
        !port_block(&show, "patch-a2").contains("LINK_DOWN"),
        "{show}"
    );
}
