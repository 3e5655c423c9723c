//! Ports added and removed while the switch runs (`dpif/add-port`, `dpif/del-port`): traffic
//! to the new port, no loss between the others, OpenFlow PORT_STATUS, errors, and nothing
//! left behind after many cycles.

use xvs_tests::ofctl::Ofctl;
use xvs_tests::traffic::udp_stream;
use xvs_tests::{wait_until, Daemon, Lab, WAIT};

/// A daemon on bridge br0 with the lab's first two hosts' ports only: the third host's port
/// exists in the switch namespace but is not a port yet.
fn start_two(lab: &Lab) -> Daemon {
    let args = [
        "--bridge",
        "br0",
        "--port",
        &lab.hosts[0].port,
        "--port",
        &lab.hosts[1].port,
        "--pmd-idle",
        "sleep",
    ];
    Daemon::start(&lab.sw, &args)
}

/// The names of the bridge's ports in `dpif/show`, the LOCAL port (named after the bridge)
/// left out.
fn dpif_names(d: &Daemon) -> Vec<String> {
    d.dpif()
        .into_iter()
        .map(|p| p.name)
        .filter(|n| n != "br0")
        .collect()
}

/// Proves: while hosts 1 and 2 exchange a numbered UDP stream, host 3's port is added (it gets
/// OpenFlow port 3 and shows in `dpif/show` and `ovs-ofctl show`), host 1 pings host 3 through
/// it, and it is removed again (gone from both); the stream lost, duplicated or corrupted no
/// datagram.
#[test]
fn add_and_remove_a_port_while_traffic_flows() {
    let lab = Lab::new(3);
    let (a, b, c) = (&lab.hosts[0], &lab.hosts[1], &lab.hosts[2]);
    let d = start_two(&lab);
    a.ns.assert_ping(b.ip, 1);
    let ofctl = Ofctl::ovs(&d.rundir);
    let report = std::thread::scope(|s| {
        let stream = s.spawn(|| udp_stream(a, b, 9000, 60_000, 64));
        let of = d.appctl("dpif/add-port", &["br0", &c.port]);
        assert_eq!(of.trim(), "3", "OpenFlow port of the added port");
        assert!(
            dpif_names(&d).contains(&c.port),
            "dpif/show lacks {}",
            c.port
        );
        let show = ofctl.ok(&["show", "br0"]);
        assert!(
            show.contains(&format!("3({})", c.port)),
            "ovs-ofctl show: {show}"
        );
        a.ns.assert_ping(c.ip, 3);
        c.ns.assert_ping(b.ip, 3);
        d.appctl("dpif/del-port", &["br0", &c.port]);
        assert!(
            !dpif_names(&d).contains(&c.port),
            "dpif/show still has {}",
            c.port
        );
        let show = ofctl.ok(&["show", "br0"]);
        assert!(
            !show.contains(&c.port),
            "ovs-ofctl show still lists it: {show}"
        );
        stream.join().expect("stream thread")
    });
    report.assert_all_once();
    // the remaining ports still work
    a.ns.assert_ping(b.ip, 1);
    assert_eq!(c.ns.ping(a.ip, 1).1, 0, "host 3 still reaches host 1");
}

/// Proves: `ovs-ofctl monitor br0` gets OFPT_PORT_STATUS ADD for a port added at runtime
/// (named, at the requested OpenFlow port 7) and DEL when it is removed.
#[test]
fn port_status_add_and_delete() {
    let lab = Lab::new(3);
    let c = &lab.hosts[2];
    let d = start_two(&lab);
    let ofctl = Ofctl::ovs(&d.rundir);
    // a service connection gets asynchronous messages only with a miss_send_len (as in OVS)
    let mut mon = ofctl.monitor(&["br0", "65535"]);
    mon.sync(&ofctl, "br0");
    let of = d.appctl("dpif/add-port", &["br0", &c.port, "7"]);
    assert_eq!(of.trim(), "7");
    let want = format!("7({})", c.port);
    mon.wait_message("PORT_STATUS ADD", |m| {
        m.starts_with("OFPT_PORT_STATUS") && m.contains("ADD") && m.contains(&want)
    });
    d.appctl("dpif/del-port", &["br0", &c.port]);
    mon.wait_message("PORT_STATUS DEL", |m| {
        m.starts_with("OFPT_PORT_STATUS") && m.contains("DEL") && m.contains(&want)
    });
}

/// Proves: bad requests are refused with a clear error and change nothing: unknown bridge,
/// interface that does not exist, port already present, OpenFlow port taken or out of range,
/// removing a port the bridge does not have, bad port options.
#[test]
fn bad_port_requests_are_refused() {
    let lab = Lab::new(3);
    let (a, b, c) = (&lab.hosts[0], &lab.hosts[1], &lab.hosts[2]);
    let d = start_two(&lab);
    let err = |cmd: &str, args: &[&str], want: &str| match d.call(cmd, args) {
        Ok(out) => panic!("{cmd} {args:?} succeeded: {out}"),
        Err(e) => {
            let e = e.to_string();
            assert!(
                e.contains(want),
                "{cmd} {args:?}: expected {want:?} in {e:?}"
            );
        }
    };
    err("dpif/add-port", &["br9", &c.port], "no bridge named br9");
    err(
        "dpif/add-port",
        &["br0", "nosuchif0"],
        "interface does not exist",
    );
    err(
        "dpif/add-port",
        &["br0", &a.port],
        "already a port of bridge br0",
    );
    err(
        "dpif/add-port",
        &["br0", &c.port, "2"],
        "OpenFlow port 2 is already taken",
    );
    err("dpif/add-port", &["br0", &c.port, "0"], "out of range");
    err(
        "dpif/add-port",
        &["br0", &c.port, "x"],
        "not an OpenFlow port number",
    );
    err(
        "dpif/add-port",
        &["br0", &format!("{},bogus=1", c.port)],
        "unknown port option",
    );
    err(
        "dpif/del-port",
        &["br0", &c.port],
        "not a port of bridge br0",
    );
    err("dpif/del-port", &["br9", &a.port], "no bridge named br9");
    assert_eq!(dpif_names(&d).len(), 2, "{:?}", dpif_names(&d));
    a.ns.assert_ping(b.ip, 1);
    assert!(
        !lab.sw.ip(&format!("link show {}", c.port)).contains("xdp"),
        "a refused add left a program attached"
    );
}

/// Proves: adding and removing the same port 20 times leaves the UMEM frame accounting exact
/// (`unaccounted 0` in `pmd/stats`), no XDP program on the interface, and the switch
/// forwarding between the other ports and, once added again, to it.
#[test]
fn repeated_add_remove_leaves_nothing_behind() {
    let lab = Lab::new(3);
    let (a, b, c) = (&lab.hosts[0], &lab.hosts[1], &lab.hosts[2]);
    let d = start_two(&lab);
    a.ns.assert_ping(b.ip, 1);
    for i in 0..20 {
        let of = d.appctl("dpif/add-port", &["br0", &c.port]);
        assert_eq!(of.trim(), "3", "cycle {i}");
        if i % 5 == 0 {
            a.ns.assert_ping(c.ip, 1);
        }
        d.appctl("dpif/del-port", &["br0", &c.port]);
    }
    let link = lab.sw.ip(&format!("link show {}", c.port));
    assert!(!link.contains("xdp"), "XDP left on {}: {link}", c.port);
    a.ns.assert_ping(b.ip, 1);
    wait_until("exact UMEM accounting", WAIT, || {
        d.umem().iter().all(|u| u.unaccounted == 0)
    });
    assert!(
        d.fdb("br0").iter().all(|e| e.port != "3"),
        "MAC entries on the removed port"
    );
    d.appctl("dpif/add-port", &["br0", &c.port]);
    a.ns.assert_ping(c.ip, 1);
}
