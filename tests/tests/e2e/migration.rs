//! Live migration in the fast path: OVN's RARP activation gate (v23.03's flow shapes, §2.4 of
//! the OVN notes) installed with the real `ovs-ofctl -O OpenFlow15`, opened by the first RARP in
//! the PMD, before and without any flow change, with the packet-in still sent to the
//! controller, and kept open through ovn-controller's DELETE_STRICTs and re-installs.

use serde_json::Value;
use xvs_tests::ofctl::{write_lines, Of};
use xvs_tests::pkt;
use xvs_tests::{daemon::ovs_appctl, wait_for, RawSock, WAIT};

use crate::openflow::{carries, expect_frame, udp, OfLab};

const COOKIE: &str = "0x8f1c2a3b";

/// The gate trio on the VM's port (ofport 2), as ovn-controller 23.03 installs it.
fn trio() -> Vec<String> {
    vec![
        format!("cookie={COOKIE},table=0,priority=1010,rarp,in_port=2,actions=set_field:0x5->reg13,set_field:0x1->metadata,set_field:0x2->reg14,controller(userdata=00.00.00.1a.00.00.00.00),resubmit(,8)"),
        format!("cookie={COOKIE},table=0,priority=1000,in_port=2,actions=drop"),
        format!("cookie={COOKIE},table=65,priority=1000,reg15=0x2,metadata=0x1,actions=drop"),
    ]
}

/// A QEMU announce: 60-byte broadcast RARP "reverse request" from `mac`.
fn rarp(mac: [u8; 6]) -> Vec<u8> {
    let mut f = vec![0u8; 60];
    f[0..6].fill(0xff);
    f[6..12].copy_from_slice(&mac);
    f[12..14].copy_from_slice(&[0x80, 0x35]);
    f[14..22].copy_from_slice(&[0, 1, 8, 0, 6, 4, 0, 3]);
    f[22..28].copy_from_slice(&mac);
    f[32..38].copy_from_slice(&mac);
    f
}

fn state(l: &OfLab, port: &str) -> Value {
    let s = l.d.appctl("port/state", &[port, "--json"]);
    let v: Value = serde_json::from_str(&s).unwrap_or_else(|e| panic!("{e}: {s}"));
    v[0].clone()
}

fn counter(l: &OfLab, port: &str, name: &str) -> u64 {
    state(l, port)["gates"][0][name].as_u64().unwrap_or(0)
}

/// Sends `f` on `from` and waits until the gate counter `name` of `port` went up: the PMD
/// processed it and a blocking flow dropped it. Then nothing of it can still arrive at `to`.
fn assert_blocked(
    l: &OfLab,
    port: &str,
    name: &str,
    from: &RawSock,
    to: &RawSock,
    f: &[u8],
    payload: &[u8],
) {
    let before = counter(l, port, name);
    to.drain();
    from.send(f);
    wait_for(&format!("{name} to count the frame"), WAIT, || {
        let n = counter(l, port, name);
        if n > before {
            Ok(())
        } else {
            Err(format!("{name} still {n}"))
        }
    });
    let got: Vec<_> = to
        .drain()
        .into_iter()
        .filter(|x| x.incoming() && carries(&x.data, payload))
        .collect();
    assert!(got.is_empty(), "a blocked frame crossed the gate");
}

/// Client (port 1) and VM (port 2) on logical datapath 1 (port keys 1 and 2), port 3 stands
/// for the tunnel to the VM's other chassis (it gets the multi-chassis copy and floods). Before
/// the RARP the VM can neither send nor receive (the drop counters of `port/state` show it);
/// the RARP is flooded and reaches ovn-controller's connection as an NXT_PACKET_IN2 with
/// userdata 00 00 00 1a, metadata 0x1 and reg14 0x2; the next packets pass both ways with no
/// flow change; `port/state` shows the activation, the RARP's MAC and a latency. The
/// controller's DELETE_STRICTs of the trio apply and traffic keeps passing; re-adding the trio
/// (finalize race, ovn-controller restart) leaves the port open and replays the packet-in;
/// `port/rearm` closes it again; deleting the port drops its state.
#[test]
fn first_rarp_opens_the_gate_in_the_fast_path_and_the_controller_is_told() {
    let l = OfLab::secure(3, &[]);
    let (client, vm) = (l.host(0), l.host(1));
    let (rc, rv, rt) = (l.sock(0), l.sock(1), l.sock(2));
    let vm_port = vm.port.clone();
    let m = |x: [u8; 6]| pkt::mac_str(&x);
    let o = l.ofctl.v(Of::V15);
    let mut flows = vec![
        format!("table=0,priority=100,in_port=1,actions=set_field:0x1->metadata,set_field:0x1->reg14,resubmit(,8)"),
        format!("cookie={COOKIE},table=0,priority=100,in_port=2,actions=set_field:0x5->reg13,set_field:0x1->metadata,set_field:0x2->reg14,resubmit(,8)"),
        format!("table=8,priority=50,metadata=0x1,dl_dst={},actions=set_field:0x1->reg15,resubmit(,37)", m(client.mac)),
        format!("table=8,priority=50,metadata=0x1,dl_dst={},actions=set_field:0x2->reg15,resubmit(,37)", m(vm.mac)),
        "table=8,priority=50,metadata=0x1,dl_dst=ff:ff:ff:ff:ff:ff,actions=set_field:0x8000->reg15,resubmit(,37)".into(),
        format!("cookie={COOKIE},table=37,priority=100,reg15=0x2,metadata=0x1,actions=output:3,resubmit(,38)"),
        "table=37,priority=0,actions=resubmit(,38)".into(),
        "table=38,priority=100,reg15=0x8000,metadata=0x1,actions=output:3,set_field:0x1->reg15,resubmit(,65),set_field:0x2->reg15,resubmit(,65)".into(),
        "table=38,priority=0,actions=resubmit(,65)".into(),
        "table=65,priority=100,reg15=0x1,metadata=0x1,actions=output:1".into(),
        format!("cookie={COOKIE},table=65,priority=100,reg15=0x2,metadata=0x1,actions=output:2"),
    ];
    flows.extend(trio());
    let lines: Vec<&str> = flows.iter().map(String::as_str).collect();
    let file = write_lines(&l.dir, "ovn.txt", &lines);
    o.ok(&["add-flows", "br0", &file]);

    let st = state(&l, &vm_port);
    assert_eq!(st["gates"][0]["state"], "armed", "{st}");
    assert_eq!(st["multi_chassis"], true, "{st}");
    assert_eq!(st["copies_to"][0], l.host(2).port.as_str(), "{st}");
    // ovs-appctl speaks to it too
    let out = ovs_appctl(&l.d.ctl, &["port/state", &vm_port]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("gate: armed since"), "{text}");

    // blocked both ways; the multi-chassis copy still goes to the tunnel
    let to_vm = udp(client, vm, 100, 200, b"client to vm, armed");
    assert_blocked(
        &l,
        &vm_port,
        "dropped_egress",
        &rc,
        &rv,
        &to_vm,
        b"client to vm, armed",
    );
    expect_frame(&rt, "the copy to the other chassis", |x| {
        carries(x, b"client to vm, armed")
    });
    let from_vm = udp(vm, client, 200, 100, b"vm to client, armed");
    assert_blocked(
        &l,
        &vm_port,
        "dropped_ingress",
        &rv,
        &rc,
        &from_vm,
        b"vm to client, armed",
    );

    // ovn-controller's pinctrl connection
    let mut mon = o.with(&["-P", "nxt_packet_in2"]).monitor(&["br0", "65534"]);
    mon.sync(&l.ofctl, "br0");

    // the RARP: forwarded as the flow says, packet-in sent, gate open
    let r = rarp(vm.mac);
    rv.send(&r);
    expect_frame(&rc, "the flooded RARP at the client", |x| {
        x.len() >= 60 && x[12..14] == [0x80, 0x35]
    });
    expect_frame(&rt, "the flooded RARP on the tunnel", |x| {
        x.len() >= 60 && x[12..14] == [0x80, 0x35]
    });
    let pin = mon.wait_message("the activation packet-in", |x| {
        x.contains("userdata=00.00.00.1a")
    });
    for want in [
        "NXT_PACKET_IN2",
        "metadata=0x1",
        "reg14=0x2",
        "cookie=0x8f1c2a3b",
    ] {
        assert!(pin.contains(want), "{want} missing in {pin}");
    }
    // no flow changed, and traffic passes at once, both ways
    let to_vm = udp(client, vm, 100, 200, b"client to vm, open");
    rc.send(&to_vm);
    expect_frame(&rv, "client to vm after the RARP", |x| {
        carries(x, b"client to vm, open")
    });
    let from_vm = udp(vm, client, 200, 100, b"vm to client, open");
    rv.send(&from_vm);
    expect_frame(&rc, "vm to client after the RARP", |x| {
        carries(x, b"vm to client, open")
    });
    let st = state(&l, &vm_port);
    let g = &st["gates"][0];
    assert_eq!(g["state"], "activated", "{st}");
    assert_eq!(g["activation"]["mac"], m(vm.mac).as_str(), "{st}");
    assert_eq!(g["activation"]["trigger"], "RARP", "{st}");
    assert!(g["activation"]["after_us"].as_u64().is_some(), "{st}");
    assert_eq!(g["bypassed"], true, "{st}");
    assert_eq!(
        o.ok(&["dump-flows", "br0", "table=0,in_port=2"])
            .lines()
            .filter(|x| x.contains("priority=1010") || x.contains("priority=1000"))
            .count(),
        2,
        "the gate flows stay visible until the controller deletes them"
    );
    let tl = l.d.appctl("migration/timeline", &[&vm_port]);
    for want in ["gate armed", "first RARP from", "packet-in sent"] {
        assert!(tl.contains(want), "{want} missing in timeline:\n{tl}");
    }

    // ovn-controller's DELETE_STRICTs apply cleanly
    for f in [
        "table=0,priority=1010,rarp,in_port=2",
        "table=0,priority=1000,in_port=2",
        "table=65,priority=1000,reg15=0x2,metadata=0x1",
    ] {
        o.ok(&["--strict", "del-flows", "br0", f]);
    }
    assert!(!o.ok(&["dump-flows", "br0"]).contains("priority=1000"));
    let f = udp(client, vm, 100, 200, b"after delete");
    rc.send(&f);
    expect_frame(&rv, "client to vm after the DELETE_STRICTs", |x| {
        carries(x, b"after delete")
    });
    let tl = l.d.appctl("migration/timeline", &[&vm_port]);
    assert!(tl.contains("DELETE_STRICT received"), "{tl}");

    // the trio again with the same cookie: still open, packet-in replayed
    let n_pins = |mon: &xvs_tests::ofctl::Monitor| {
        mon.messages()
            .iter()
            .filter(|x| x.contains("userdata=00.00.00.1a"))
            .count()
    };
    assert_eq!(n_pins(&mon), 1);
    let t = trio();
    let lines: Vec<&str> = t.iter().map(String::as_str).collect();
    let file = write_lines(&l.dir, "trio.txt", &lines);
    o.ok(&["add-flows", "br0", &file]);
    wait_for("the replayed activation packet-in", WAIT, || {
        if n_pins(&mon) >= 2 {
            Ok(())
        } else {
            Err(mon.output())
        }
    });
    let f = udp(vm, client, 200, 100, b"after reinstall");
    rv.send(&f);
    expect_frame(&rc, "vm to client with the trio re-installed", |x| {
        carries(x, b"after reinstall")
    });
    assert_eq!(state(&l, &vm_port)["gates"][0]["state"], "activated");

    // the operator re-arms it: blocked again
    l.d.appctl("port/rearm", &[&vm_port]);
    assert_eq!(state(&l, &vm_port)["gates"][0]["state"], "armed");
    let f = udp(vm, client, 200, 100, b"re-armed");
    assert_blocked(&l, &vm_port, "dropped_ingress", &rv, &rc, &f, b"re-armed");
    // and port/activate opens it without a RARP
    l.d.appctl("port/activate", &[&vm_port]);
    let f = udp(vm, client, 200, 100, b"operator");
    rv.send(&f);
    expect_frame(&rc, "vm to client after port/activate", |x| {
        carries(x, b"operator")
    });

    // the port goes away, and so does its state
    l.d.appctl("dpif/del-port", &["br0", &vm_port]);
    wait_for("the gate state to go", WAIT, || {
        let all = l.d.appctl("port/state", &["--json"]);
        if all.contains("\"cookie\"") {
            Err(all)
        } else {
            Ok(())
        }
    });
}
