//! xvswitchd in ovs-vswitchd's place under a real `ovsdb-server`: bridges and ports made with
//! the real `ovs-vsctl` (which returns only once the switch has applied them, through
//! `cur_cfg`), what the switch writes back, server restarts under traffic, and the
//! `ovs_vswitchd` lock.

use xvs_tests::ofctl::Ofctl;
use xvs_tests::traffic::udp_stream;
use xvs_tests::vsdb::VsDb;
use xvs_tests::{wait_for, wait_until, Daemon, Lab, WAIT};

fn start(lab: &Lab, db: &VsDb) -> Daemon {
    Daemon::start_ovsdb(&lab.sw, &db.remote, &["--pmd-idle", "sleep"])
}

/// `ovs-vsctl add-br br0 -- set bridge br0 datapath_type=netdev` (without --no-wait).
fn add_br(db: &VsDb, br: &str) {
    db.vsctl_ok(&[
        "add-br",
        br,
        "--",
        "set",
        "bridge",
        br,
        "datapath_type=netdev",
    ]);
}

/// xvswitchd on `db` with bridge `br0` holding the first two hosts' ports (made with ovs-vsctl).
fn bridge_of_two(lab: &Lab, db: &VsDb) -> Daemon {
    let d = start(lab, db);
    add_br(db, "br0");
    db.vsctl_ok(&["add-port", "br0", &lab.hosts[0].port]);
    db.vsctl_ok(&["add-port", "br0", &lab.hosts[1].port]);
    d
}

/// Proves: with nothing but ovs-vsctl (no --no-wait: each call returns only after the switch
/// applied it), a bridge with two ports forwards between two hosts; OpenFlow numbers honour
/// ofport_request and are written back, with link state, MAC and status; `cur_cfg` catches
/// up with `next_cfg`; `iface_types` lists what is implemented; unknown columns and keys are
/// ignored; `set-fail-mode` applies at runtime; a missing interface gets ofport -1 and an error text that ovs-vsctl reports.
#[test]
fn ovs_vsctl_builds_a_forwarding_bridge() {
    let lab = Lab::new(2);
    let (a, b) = (&lab.hosts[0], &lab.hosts[1]);
    let db = VsDb::start();
    let d = start(&lab, &db);
    add_br(&db, "br0");
    db.vsctl_ok(&[
        "add-port",
        "br0",
        &a.port,
        "--",
        "set",
        "interface",
        &a.port,
        "external_ids:iface-id=vm-a",
        "other_config:frobnicate=yes",
    ]);
    db.vsctl_ok(&[
        "add-port",
        "br0",
        &b.port,
        "--",
        "set",
        "interface",
        &b.port,
        "ofport_request=7",
    ]);
    assert_eq!(db.get("interface", &a.port, "ofport"), "1");
    assert_eq!(db.get("interface", &b.port, "ofport"), "7");
    assert_eq!(db.get("interface", "br0", "ofport"), "65534");
    assert_eq!(db.get("interface", &a.port, "link_state"), "up");
    assert_eq!(db.get("interface", &a.port, "admin_state"), "up");
    assert!(db.get("interface", &a.port, "mac_in_use").contains(':'));
    assert!(db
        .get("interface", &a.port, "status")
        .contains("driver_name=veth"));
    assert_eq!(
        db.get("open_vswitch", ".", "cur_cfg"),
        db.get("open_vswitch", ".", "next_cfg")
    );
    let types = db.get("open_vswitch", ".", "iface_types");
    for t in ["internal", "system", "tap"] {
        assert!(types.contains(t), "iface_types {types}");
    }
    assert_eq!(db.get("open_vswitch", ".", "datapath_types"), "[netdev]");
    // the switch side agrees, through OpenFlow
    let show = Ofctl::ovs(&d.rundir).ok(&["show", "br0"]);
    assert!(show.contains(&format!(" 1({})", a.port)), "{show}");
    assert!(show.contains(&format!(" 7({})", b.port)), "{show}");
    assert!(show.contains("LOCAL(br0)"), "{show}");
    // a standalone bridge is a learning switch
    a.ns.assert_ping(b.ip, 3);
    b.ns.assert_ping(a.ip, 1);
    // fail mode at runtime: secure forwards nothing without flows, standalone switches again
    db.vsctl_ok(&["set-fail-mode", "br0", "secure"]);
    assert_eq!(
        a.ns.ping(b.ip, 2).1,
        0,
        "a secure bridge with no flows forwarded"
    );
    db.vsctl_ok(&["set-fail-mode", "br0", "standalone"]);
    a.ns.assert_ping(b.ip, 2);
    // an interface that does not exist
    let o = db.vsctl(&["add-port", "br0", "xtnosuch0"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("Error detected while setting up 'xtnosuch0'"),
        "ovs-vsctl stderr: {err}"
    );
    assert_eq!(db.get("interface", "xtnosuch0", "ofport"), "-1");
    assert!(db
        .get("interface", "xtnosuch0", "error")
        .contains("xtnosuch0"));
    // the others carry on
    a.ns.assert_ping(b.ip, 1);
}

/// Proves: ports added and removed through the database while a numbered UDP stream crosses
/// two other ports leave that stream intact (no loss, duplicate or corruption); the removed
/// port stops forwarding and leaves the OpenFlow port list.
#[test]
fn database_changes_do_not_disturb_other_ports() {
    let lab = Lab::new(3);
    let (a, b, c) = (&lab.hosts[0], &lab.hosts[1], &lab.hosts[2]);
    let db = VsDb::start();
    let d = bridge_of_two(&lab, &db);
    a.ns.assert_ping(b.ip, 1);
    let report = std::thread::scope(|s| {
        let stream = s.spawn(|| udp_stream(a, b, 9000, 40_000, 64));
        db.vsctl_ok(&["add-port", "br0", &c.port]);
        a.ns.assert_ping(c.ip, 2);
        db.vsctl_ok(&["set", "interface", &c.port, "external_ids:x=1"]);
        db.vsctl_ok(&["add-br", "brx"]);
        db.vsctl_ok(&["del-br", "brx"]);
        db.vsctl_ok(&["del-port", "br0", &c.port]);
        stream.join().expect("stream thread")
    });
    report.assert_all_once();
    let show = Ofctl::ovs(&d.rundir).ok(&["show", "br0"]);
    assert!(!show.contains(&c.port), "{show}");
    assert_eq!(c.ns.ping(a.ip, 1).1, 0, "a removed port still forwards");
    a.ns.assert_ping(b.ip, 1);
}

/// Proves: ovsdb-server stopped and restarted under a numbered UDP stream interrupts no
/// forwarding; the switch reconnects by itself, keeps its ports (same OpenFlow numbers) and
/// applies changes made after the restart (ovs-vsctl without --no-wait returns).
#[test]
fn ovsdb_server_restart_under_traffic() {
    let lab = Lab::new(3);
    let (a, b, c) = (&lab.hosts[0], &lab.hosts[1], &lab.hosts[2]);
    let mut db = VsDb::start();
    let d = bridge_of_two(&lab, &db);
    a.ns.assert_ping(b.ip, 1);
    let report = std::thread::scope(|s| {
        let stream = s.spawn(|| udp_stream(a, b, 9001, 40_000, 64));
        db.restart();
        stream.join().expect("stream thread")
    });
    report.assert_all_once();
    wait_until("the switch to reconnect", WAIT, || {
        let s = d.appctl("ovsdb/show", &[]);
        s.contains("connects: 2") && s.contains("state: active")
    });
    db.vsctl_ok(&["add-port", "br0", &c.port]);
    assert_eq!(db.get("interface", &a.port, "ofport"), "1");
    assert_eq!(db.get("interface", &c.port, "ofport"), "3");
    c.ns.assert_ping(a.ip, 2);
}

/// Proves: `type=internal` and `type=tap` interfaces are created by the switch (they appear
/// in its namespace, with OpenFlow numbers), an address on the bridge's LOCAL port makes the
/// host reachable from a port of the bridge, and `del-br` removes the bridge's interfaces,
/// its management socket and its ports.
#[test]
fn internal_and_tap_interfaces_and_del_br() {
    let lab = Lab::new(1);
    let a = &lab.hosts[0];
    let db = VsDb::start();
    let d = start(&lab, &db);
    add_br(&db, "br1");
    db.vsctl_ok(&["add-port", "br1", &a.port]);
    db.vsctl_ok(&[
        "add-port",
        "br1",
        "xtint1",
        "--",
        "set",
        "interface",
        "xtint1",
        "type=internal",
    ]);
    db.vsctl_ok(&[
        "add-port",
        "br1",
        "xttap1",
        "--",
        "set",
        "interface",
        "xttap1",
        "type=tap",
    ]);
    for i in ["br1", "xtint1", "xttap1"] {
        lab.sw.ip(&format!("link show {i}"));
    }
    assert_eq!(db.get("interface", "xtint1", "ofport"), "2");
    assert_eq!(db.get("interface", "xttap1", "ofport"), "3");
    assert_eq!(db.get("interface", "xttap1", "error"), "[]");
    lab.sw.ip("addr add 10.200.0.200/24 dev br1");
    lab.sw.ip("link set br1 up");
    a.ns.assert_ping("10.200.0.200".parse().unwrap(), 3);
    // the internal port is a host interface on the bridge too
    lab.sw.ip("addr del 10.200.0.200/24 dev br1");
    lab.sw.ip("addr add 10.200.0.201/24 dev xtint1");
    a.ns.assert_ping("10.200.0.201".parse().unwrap(), 3);
    let mgmt = d.mgmt("br1");
    assert!(mgmt.exists());
    db.vsctl_ok(&["del-br", "br1"]);
    for i in ["br1", "xtint1", "xttap1"] {
        assert!(
            lab.sw.try_run(&format!("ip link show {i}")).is_err(),
            "{i} still exists after del-br"
        );
    }
    assert!(!mgmt.exists(), "br1.mgmt left behind");
    assert!(d.dpif().is_empty(), "ports left: {:?}", d.dpif());
    assert_eq!(a.ns.ping("10.200.0.201".parse().unwrap(), 1).1, 0);
}

/// Proves: a second switch daemon on the same database waits for the `ovs_vswitchd` lock and
/// changes nothing (no bridge, no port) while the first one holds it; when the first one
/// stops, the second takes over and the bridge forwards again.
#[test]
fn the_database_lock_keeps_a_second_daemon_out() {
    let lab = Lab::new(2);
    let (a, b) = (&lab.hosts[0], &lab.hosts[1]);
    let db = VsDb::start();
    let mut first = bridge_of_two(&lab, &db);
    a.ns.assert_ping(b.ip, 1);
    let second = start(&lab, &db);
    wait_until("the second daemon to wait for the lock", WAIT, || {
        second
            .appctl("ovsdb/show", &[])
            .contains("waiting for the ovs_vswitchd lock")
    });
    assert!(second.dpif().is_empty(), "{:?}", second.dpif());
    assert!(!second.mgmt("br0").exists());
    first.stop();
    wait_for("the second daemon to take over", WAIT, || {
        let ports = second.dpif();
        if ports.len() == 3 {
            Ok(())
        } else {
            Err(format!("{ports:?}"))
        }
    });
    a.ns.assert_ping(b.ip, 3);
}

/// Proves: configuration the switch cannot apply, written with the real ovs-vsctl (which
/// waits for the switch each time), is reported and does not stop the rest: every ovs-vsctl
/// call returns (the switch catches `cur_cfg` up with `next_cfg` each time), interfaces it cannot
/// create get ofport -1 and an `error` text (an unknown type, a Geneve port with a bad
/// remote_ip or key, a patch port without a peer, an AF_XDP port with an unknown xdp-mode);
/// bad controller targets and other_config values change nothing else; an ofport_request
/// another port holds leaves the port working under a free number, as in OVS (logged); the log
/// holds no panic, and the two good ports keep forwarding.
#[test]
fn bad_database_values_are_reported_and_the_rest_keeps_working() {
    let lab = Lab::new(2);
    let (a, b) = (&lab.hosts[0], &lab.hosts[1]);
    let db = VsDb::start();
    let mut d = bridge_of_two(&lab, &db);
    a.ns.assert_ping(b.ip, 1);
    // (interface, its settings, what its error names)
    let bad_ifaces: [(&str, &[&str], &str); 5] = [
        (
            "xtbadvx",
            &["type=vxlan", "options:remote_ip=10.0.0.1"],
            "Unsupported interface type",
        ),
        (
            "xtbadgnv",
            &["type=geneve", "options:remote_ip=not-an-ip"],
            "bad tunnel options: remote_ip",
        ),
        (
            "xtbadgnk",
            &[
                "type=geneve",
                "options:remote_ip=10.9.9.9",
                "options:key=xyz",
            ],
            "bad tunnel options: key",
        ),
        ("xtbadpatch", &["type=patch"], "requires valid 'peer'"),
        ("xtbadmode", &["options:xdp-mode=warp"], "xdp-mode must be"),
    ];
    for (name, sets, why) in bad_ifaces {
        let mut args = vec!["add-port", "br0", name, "--", "set", "interface", name];
        args.extend_from_slice(sets);
        let o = db.vsctl(&args);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            err.contains(&format!("Error detected while setting up '{name}'")),
            "{name}: ovs-vsctl {:?}: {err}",
            o.status
        );
        assert_eq!(db.get("interface", name, "ofport"), "-1", "{name}");
        let error = db.get("interface", name, "error");
        assert!(error.contains(why), "{name}: error {error}, want {why:?}");
    }
    // accepted by the database, applied as far as they go, reported in the log
    for set in [
        vec!["set-controller", "br0", "tcp:garbage:xx"],
        vec!["set-controller", "br0", "ptcp:99999"],
        vec!["set-controller", "br0", "unix:/nonexistent/x.sock", "tcp:"],
        vec!["set", "bridge", "br0", "other_config:datapath-id=nothex"],
        vec!["set", "bridge", "br0", "other_config:hwaddr=zz"],
        vec!["set", "open_vswitch", ".", "other_config:pmd-cpu-mask=qq"],
        vec!["set", "interface", &a.port, "mtu_request=100000"],
    ] {
        db.vsctl_ok(&set);
    }
    db.vsctl_ok(&["clear", "bridge", "br0", "controller"]);
    // a number another port holds: this port keeps working under a free one (as in OVS)
    db.vsctl_ok(&["set", "interface", &b.port, "ofport_request=1"]);
    assert_eq!(db.get("interface", &a.port, "ofport"), "1");
    let ofb = db.get("interface", &b.port, "ofport");
    assert!(ofb != "1" && ofb != "-1", "b's ofport {ofb}");
    assert_eq!(db.get("interface", &b.port, "error"), "[]");
    assert!(d.alive(), "the daemon exited; log:\n{}", d.log());
    let log = d.log();
    assert!(!log.contains("panicked"), "a thread panicked:\n{log}");
    assert!(
        log.contains("ofport_request is taken by another port"),
        "{log}"
    );
    a.ns.assert_ping(b.ip, 1);
    b.ns.assert_ping(a.ip, 1);
}
