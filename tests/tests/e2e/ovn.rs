//! Real OVN (Debian's ovn-central and ovn-host, unmodified) drives the switch: ovn-controller
//! creates br-int through the database, installs its flow set over OpenFlow and marks ports
//! installed; logical networks then carry traffic. `XVS_OVN_SWITCH=ovs` runs the same tests on
//! stock ovs-vswitchd.

use std::net::Ipv4Addr;

use xvs_tests::ovn::{OvnLab, SwitchKind, Vif};

fn mac(i: u8) -> [u8; 6] {
    [0x0a, 0, 0, 0, 0, i]
}

fn ip(i: u8) -> Ipv4Addr {
    Ipv4Addr::new(10, 0, 0, i)
}

/// Logical switch `ls0` with ports `lsp1..=lspN`, each with addresses and port security.
fn logical_switch(lab: &OvnLab, n: u8) {
    let nb = &lab.central;
    nb.nbctl(&["ls-add", "ls0"]);
    for i in 1..=n {
        let lsp = format!("lsp{i}");
        let addr = format!("{} {}", xvs_tests::pkt::mac_str(&mac(i)), ip(i));
        nb.nbctl(&["lsp-add", "ls0", &lsp]);
        nb.nbctl(&["lsp-set-addresses", &lsp, &addr]);
        nb.nbctl(&["lsp-set-port-security", &lsp, &addr]);
    }
}

fn vif(lab: &OvnLab, ch: usize, i: u8) -> Vif {
    let c = &lab.chassis[ch];
    let v = c.add_vif(&format!("lsp{i}"), mac(i), ip(i));
    c.wait_installed(&v);
    v
}

/// The switch answered no OpenFlow message with an error, and ovn-controller logged no
/// warning, error, "unsupported" or "failed" line.
fn assert_clean(lab: &OvnLab) {
    for c in &lab.chassis {
        let problems = c.controller_problems();
        assert!(
            problems.is_empty(),
            "{}: ovn-controller complained:\n{}",
            c.name,
            problems.join("\n")
        );
        if c.kind == SwitchKind::Xvs {
            let cov = c.appctl(&["coverage/show"]);
            assert!(
                !cov.contains("ofproto_errors_sent"),
                "{}: the switch sent OpenFlow errors:\n{cov}",
                c.name
            );
        }
    }
}

/// Proves: on one chassis, ovn-controller creates br-int on the switch through the database,
/// installs its flows (hundreds) and marks both VIFs installed; the two ports of a logical
/// switch ping each other both ways; a frame with a spoofed source MAC is dropped by port
/// security; ovn-controller and the switch report no error.
#[test]
fn logical_switch_on_one_chassis() {
    let lab = OvnLab::start(1, SwitchKind::from_env());
    logical_switch(&lab, 2);
    let a = vif(&lab, 0, 1);
    let b = vif(&lab, 0, 2);
    lab.sync();
    a.ns.assert_ping(b.ip, 3);
    b.ns.assert_ping(a.ip, 3);
    let flows = lab.chassis[0].flow_count();
    assert!(flows > 100, "only {flows} flows on br-int");
    // port security: a's traffic with another source MAC never reaches b
    a.ns.ip(&format!("link set {} address 0a:00:00:00:00:99", a.ifname));
    assert_eq!(a.ns.ping(b.ip, 3).1, 0, "a spoofed MAC got through");
    a.ns.ip(&format!(
        "link set {} address {}",
        a.ifname,
        xvs_tests::pkt::mac_str(&a.mac)
    ));
    a.ns.assert_ping(b.ip, 3);
    assert_clean(&lab);
}

/// Proves: OVN's native DHCPv4 (dhcp_options on the logical port) hands a real DHCP client
/// (busybox udhcpc) its address, through the switch's packet-in with continuation
/// (`controller(pause)`) and NXT_RESUME; the address then works for ping.
#[test]
fn ovn_native_dhcp_through_continuations() {
    let lab = OvnLab::start(1, SwitchKind::from_env());
    logical_switch(&lab, 2);
    let nb = &lab.central;
    let uuid = nb.nbctl(&["create", "DHCP_Options", "cidr=10.0.0.0/24"]);
    nb.nbctl(&[
        "dhcp-options-set-options",
        &uuid,
        "lease_time=3600",
        "router=10.0.0.254",
        "server_id=10.0.0.254",
        "server_mac=0a:00:00:00:00:fe",
    ]);
    nb.nbctl(&["lsp-set-dhcpv4-options", "lsp1", &uuid]);
    let a = vif(&lab, 0, 1);
    let b = vif(&lab, 0, 2);
    lab.sync();
    a.ns.ip(&format!("addr flush dev {}", a.ifname));
    let o = a.ns.exec(&format!(
        "busybox udhcpc -i {} -n -q -f -t 5 -T 2 -s /bin/true",
        a.ifname
    ));
    let out = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(
        o.status.success() && out.contains("lease of 10.0.0.1 obtained"),
        "udhcpc did not get 10.0.0.1: {out}"
    );
    a.ns.ip(&format!("addr add 10.0.0.1/24 dev {}", a.ifname));
    a.ns.assert_ping(b.ip, 2);
    if lab.chassis[0].kind == SwitchKind::Xvs {
        let cov = lab.chassis[0].appctl(&["coverage/show"]);
        assert!(cov.contains("ofproto_packet_ins"), "{cov}");
    }
    assert_clean(&lab);
}

/// Proves: restarting ovn-controller keeps forwarding while it is down (flows stay), and
/// after it resynchronises the flow table has the same number of flows (no duplicates);
/// restarting the switch daemon makes it rebuild br-int from the database, ovn-controller
/// reinstalls its flows and traffic resumes; restarting the chassis' ovsdb-server disturbs
/// nothing.
#[test]
fn restarts_of_controller_switch_and_database() {
    let mut lab = OvnLab::start(1, SwitchKind::from_env());
    logical_switch(&lab, 2);
    let a = vif(&lab, 0, 1);
    let b = vif(&lab, 0, 2);
    lab.sync();
    a.ns.assert_ping(b.ip, 2);
    let before = lab.chassis[0].flow_count();
    // ovn-controller: stop, traffic goes on, start, same flows
    lab.chassis[0].stop_controller();
    a.ns.assert_ping(b.ip, 2);
    assert_eq!(
        lab.chassis[0].flow_count(),
        before,
        "flows changed while the controller was down"
    );
    lab.chassis[0].start_controller_again();
    lab.sync();
    a.ns.assert_ping(b.ip, 2);
    assert_eq!(
        lab.chassis[0].flow_count(),
        before,
        "flows after the controller's resync"
    );
    // the switch daemon
    lab.chassis[0].restart_switch();
    lab.chassis[0].wait_installed(&a);
    xvs_tests::wait_until("the flows to be reinstalled", xvs_tests::WAIT, || {
        lab.chassis[0].flow_count() == before
    });
    a.ns.assert_ping(b.ip, 5);
    b.ns.assert_ping(a.ip, 2);
    // the database
    lab.chassis[0].restart_db();
    a.ns.assert_ping(b.ip, 2);
    lab.sync();
    b.ns.assert_ping(a.ip, 2);
    assert_clean(&lab);
}

/// Runs iperf3 (TCP, `secs` seconds) from `from` to `to`; returns the bytes received.
fn iperf(from: &Vif, to: &Vif, port: u16, secs: u32) -> u64 {
    use std::process::Stdio;
    use xvs_tests::{run_timeout, wait_for, ChildGuard, WAIT};
    let _server = ChildGuard::spawn(
        to.ns
            .cmd("iperf3")
            .args([
                "-s",
                "-1",
                "-p",
                &port.to_string(),
                "-B",
                &to.ip.to_string(),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
        "iperf3 server",
    );
    wait_for("the iperf3 server to listen", WAIT, || {
        let s = to.ns.run("ss -Hltn");
        if s.contains(&format!(":{port}")) {
            Ok(())
        } else {
            Err(s)
        }
    });
    let out = run_timeout(
        from.ns.cmd("iperf3").args([
            "-c",
            &to.ip.to_string(),
            "-p",
            &port.to_string(),
            "-t",
            &secs.to_string(),
            "-J",
            "--connect-timeout",
            "10000",
        ]),
        std::time::Duration::from_secs(secs as u64 + 60),
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "iperf3 -c failed ({}): {text}{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let j: serde_json::Value = serde_json::from_str(&text).expect("iperf3 -J output is JSON");
    assert!(j.get("error").is_none(), "iperf3: {}", j["error"]);
    j["end"]["sum_received"]["bytes"].as_u64().unwrap_or(0)
}

/// Proves: two chassis joined by a Geneve underlay (br-phy with the encap IP on its internal
/// port, as OVS's userspace tunnelling wants): ovn-controller on each creates the tunnel to
/// the other, the ports of one logical switch on both chassis reach each other (ARP, ping,
/// TCP with iperf3 for 5 s both ways), port security drops a spoofed MAC across the tunnel,
/// and nothing complains. The flow counts of both chassis are printed.
#[test]
fn logical_switch_across_two_chassis() {
    let lab = OvnLab::start(2, SwitchKind::from_env());
    logical_switch(&lab, 2);
    let a = vif(&lab, 0, 1);
    let b = vif(&lab, 1, 2);
    lab.sync();
    for c in &lab.chassis {
        xvs_tests::wait_until(
            &format!("{}: a tunnel port on br-int", c.name),
            xvs_tests::WAIT,
            || {
                c.vsctl(&["--no-wait", "list-ports", "br-int"])
                    .lines()
                    .any(|p| p.starts_with("ovn-"))
            },
        );
    }
    a.ns.assert_ping(b.ip, 3);
    b.ns.assert_ping(a.ip, 3);
    assert!(iperf(&a, &b, 5201, 5) > 0, "no TCP data a -> b");
    assert!(iperf(&b, &a, 5202, 5) > 0, "no TCP data b -> a");
    a.ns.ip(&format!("link set {} address 0a:00:00:00:00:99", a.ifname));
    assert_eq!(a.ns.ping(b.ip, 3).1, 0, "a spoofed MAC got through");
    a.ns.ip(&format!(
        "link set {} address {}",
        a.ifname,
        xvs_tests::pkt::mac_str(&a.mac)
    ));
    a.ns.assert_ping(b.ip, 2);
    for c in &lab.chassis {
        eprintln!(
            "{} ({:?}): {} flows on br-int, ovn-controller crashes: {}",
            c.name,
            c.kind,
            c.flow_count(),
            c.controller_crashes.get()
        );
    }
    assert_clean(&lab);
}

/// Proves: a logical port unbound on one chassis (its VIF removed) and bound on the other (a
/// VIF with the same iface-id) carries traffic again from its new place.
#[test]
fn a_port_moves_between_chassis() {
    let lab = OvnLab::start(2, SwitchKind::from_env());
    logical_switch(&lab, 2);
    let a = vif(&lab, 0, 1);
    let b = vif(&lab, 1, 2);
    lab.sync();
    a.ns.assert_ping(b.ip, 2);
    // b leaves ch2 ...
    lab.chassis[1].vsctl(&["del-port", "br-int", &b.port]);
    drop(b);
    assert_eq!(a.ns.ping(ip(2), 1).1, 0, "the unbound port still answers");
    // ... and comes back on ch1
    let b2 = vif(&lab, 0, 2);
    lab.sync();
    a.ns.assert_ping(b2.ip, 3);
    b2.ns.assert_ping(a.ip, 2);
    // and back to ch2
    lab.chassis[0].vsctl(&["del-port", "br-int", &b2.port]);
    drop(b2);
    let b3 = vif(&lab, 1, 2);
    lab.sync();
    a.ns.assert_ping(b3.ip, 3);
    assert_clean(&lab);
}
