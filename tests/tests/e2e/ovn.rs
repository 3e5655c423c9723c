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
