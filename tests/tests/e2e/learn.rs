//! The `learn` action (NXAST_LEARN), as ovn-controller uses it (the load-balancer hairpin
//! flows) and as a classic flow-based MAC learner: flows installed with the real `ovs-ofctl`,
//! the learned flows read back with `ovs-ofctl dump-flows`, and packets crossing the switch
//! show the learned flows forward, expire, and go away with `delete_learned`.

use xvs_tests::ofctl::Flow;
use xvs_tests::pkt;
use xvs_tests::{wait_for, WAIT};

use crate::openflow::{before_marker, carries, expect_frame, frame_ip, udp, OfLab};

/// The flows of table 1 whose match names `needle`.
fn learned(l: &OfLab, needle: &str) -> Vec<Flow> {
    l.ofctl
        .flows("br0", "table=1")
        .into_iter()
        .filter(|f| f.match_.contains(needle))
        .collect()
}

fn mac(m: &[u8; 6]) -> String {
    pkt::mac_str(m)
}

/// Proves: a flow-based MAC learner works. With table 0 `learn(table=1,priority=10,
/// idle_timeout=30,NXM_OF_ETH_DST[]=NXM_OF_ETH_SRC[],output:NXM_OF_IN_PORT[]),resubmit(,1)`
/// and a flood fallback in table 1, a frame from A makes `ovs-ofctl dump-flows` show the
/// learned `priority=10,dl_dst=A actions=output:1` with its idle timeout; frames from B to A
/// then reach only A (C, whose port the flood would reach, gets none of them before a marker),
/// and the learned flow's n_packets counts them. The PMDs' learn requests and the control
/// thread's additions show in coverage/show.
#[test]
fn learned_flow_is_dumped_and_carries_the_return_traffic() {
    let l = OfLab::secure(3, &[]);
    let (a, b, c) = (l.host(0), l.host(1), l.host(2));
    l.ofctl.ok(&[
        "add-flow",
        "br0",
        "table=0,priority=10,actions=learn(table=1,priority=10,idle_timeout=30,\
         NXM_OF_ETH_DST[]=NXM_OF_ETH_SRC[],output:NXM_OF_IN_PORT[]),resubmit(,1)",
    ]);
    l.ofctl
        .ok(&["add-flow", "br0", "table=1,priority=0,actions=flood"]);
    let (ra, rb, rc) = (l.sock(0), l.sock(1), l.sock(2));
    ra.send(&udp(a, b, 1000, 7000, b"a to b"));
    expect_frame(&rb, "A's frame, flooded", |f| carries(f, b"a to b"));
    let dst_a = format!("dl_dst={}", mac(&a.mac));
    let f = wait_for("the flow learned from A", WAIT, || {
        learned(&l, &dst_a)
            .pop()
            .ok_or_else(|| format!("{:#?}", l.ofctl.flows("br0", "")))
    });
    assert_eq!(f.priority, 10, "{}", f.line);
    assert_eq!(f.idle_timeout, 30, "{}", f.line);
    assert_eq!(f.match_sorted(), dst_a, "{}", f.line);
    assert_eq!(f.actions, "output:1", "{}", f.line);
    let before = f.n_packets;
    let frames: Vec<Vec<u8>> = (0..3u16)
        .map(|i| udp(b, a, 2000 + i, 7000, b"b to a"))
        .collect();
    for fr in &frames {
        rb.send(fr);
    }
    for _ in &frames {
        expect_frame(&ra, "B's frame to A", |f| carries(f, b"b to a"));
    }
    let marker = udp(b, c, 1, 7001, b"marker to c");
    let leaked = before_marker(&rc, || rb.send(&marker), &marker);
    assert!(
        leaked.iter().all(|f| !carries(f, b"b to a")),
        "frames to the learned MAC were flooded to C: {leaked:02x?}"
    );
    wait_for("the learned flow to count B's frames", WAIT, || {
        let f = learned(&l, &dst_a).pop().ok_or("gone".to_string())?;
        if f.n_packets >= before + 3 {
            Ok(())
        } else {
            Err(f.line)
        }
    });
    // B was learned too, from its frames
    assert_eq!(
        learned(&l, &format!("dl_dst={}", mac(&b.mac)))[0].actions,
        "output:2"
    );
    let cov = l.d.coverage();
    assert!(cov.get("learn_requests") >= 2, "{cov:?}");
    assert!(cov.get("learned_flows_added") >= 2, "{cov:?}");
    assert_eq!(cov.get("learn_ring_full"), 0, "{cov:?}");
}

/// Proves: a learned flow's idle timeout is a flow timeout like any other: learned from one
/// frame with `idle_timeout=1` and then left without traffic to its MAC, it leaves the table
/// by itself, while the learning flow and the fallback stay.
#[test]
fn learned_flow_expires_after_its_idle_timeout() {
    let l = OfLab::secure(2, &[]);
    let (a, b) = (l.host(0), l.host(1));
    l.ofctl.ok(&[
        "add-flow",
        "br0",
        "table=0,priority=10,actions=learn(table=1,priority=10,idle_timeout=1,\
         NXM_OF_ETH_DST[]=NXM_OF_ETH_SRC[],output:NXM_OF_IN_PORT[]),resubmit(,1)",
    ]);
    l.ofctl
        .ok(&["add-flow", "br0", "table=1,priority=0,actions=flood"]);
    let (ra, rb) = (l.sock(0), l.sock(1));
    ra.send(&udp(a, b, 1000, 7000, b"teach"));
    expect_frame(&rb, "A's frame", |f| carries(f, b"teach"));
    let dst_a = format!("dl_dst={}", mac(&a.mac));
    wait_for("the flow learned from A", WAIT, || {
        learned(&l, &dst_a).pop().ok_or("not yet".to_string())
    });
    wait_for("the learned flow to idle out", WAIT, || {
        match learned(&l, &dst_a).pop() {
            None => Ok(()),
            Some(f) => Err(f.line),
        }
    });
    assert_eq!(l.ofctl.flows("br0", "table=0").len(), 1);
    let t1 = l.ofctl.flows("br0", "table=1");
    assert!(
        t1.len() == 1 && t1[0].priority == 0,
        "only the fallback is left: {t1:#?}"
    );
}

/// Proves, in the shape of OVN's load-balancer hairpin flows (`learn(table=..,delete_learned,
/// cookie=..,OXM_OF_METADATA[],eth_type=0x800,NXM_OF_IP_SRC[],ip_dst=..,nw_proto=..,
/// NXM_OF_TCP_SRC[]=NXM_OF_TCP_DST[],load:0x1->NXM_NX_REG10[7])`): the learned flow carries the
/// metadata the pipeline set, the immediates and the field copies as its match and the bit load
/// as its action, with the learn's cookie. `delete_learned` follows OVS: while another flow
/// with a learn(delete_learned) for the same table and cookie exists, deleting one learning
/// flow keeps the learned flows; deleting the last removes them (and only them).
#[test]
fn deleting_the_last_learning_flow_deletes_the_learned_flows() {
    let l = OfLab::secure(2, &[]);
    let (a, b) = (l.host(0), l.host(1));
    let spec = |ip: std::net::Ipv4Addr| {
        format!(
            "learn(table=1,delete_learned,cookie=0x77,OXM_OF_METADATA[],eth_type=0x800,\
             NXM_OF_IP_SRC[],ip_dst={ip},nw_proto=17,NXM_OF_UDP_SRC[]=NXM_OF_UDP_DST[],\
             load:0x1->NXM_NX_REG10[7])"
        )
    };
    let fb = frame_ip(b);
    l.ofctl.ok(&[
        "add-flow",
        "br0",
        &format!(
            "table=0,priority=20,udp,in_port=1,tp_dst=7000,\
             actions=set_field:0x5->metadata,{},resubmit(,1)",
            spec(fb)
        ),
    ]);
    l.ofctl.ok(&[
        "add-flow",
        "br0",
        &format!(
            "table=0,priority=20,udp,in_port=1,tp_dst=7001,\
             actions=set_field:0x5->metadata,{},resubmit(,1)",
            spec(fb)
        ),
    ]);
    l.ofctl
        .ok(&["add-flow", "br0", "table=1,priority=0,actions=flood"]);
    let (ra, rb) = (l.sock(0), l.sock(1));
    ra.send(&udp(a, b, 1234, 7000, b"hairpin 1"));
    ra.send(&udp(a, b, 1235, 7001, b"hairpin 2"));
    expect_frame(&rb, "the first frame", |f| carries(f, b"hairpin 1"));
    expect_frame(&rb, "the second frame", |f| carries(f, b"hairpin 2"));
    let got = wait_for("two learned flows", WAIT, || {
        let v: Vec<Flow> = l
            .ofctl
            .flows("br0", "table=1")
            .into_iter()
            .filter(|f| f.cookie == 0x77)
            .collect();
        if v.len() == 2 {
            Ok(v)
        } else {
            Err(format!("{v:#?}"))
        }
    });
    let fa = frame_ip(a);
    for port in [7000, 7001] {
        let f = got
            .iter()
            .find(|g| g.match_.contains(&format!("tp_src={port}")))
            .unwrap_or_else(|| panic!("no learned flow for {port}: {got:#?}"));
        let mut want = [
            "metadata=0x5".to_string(),
            format!("nw_dst={fb}"),
            format!("nw_src={fa}"),
            format!("tp_src={port}"),
            "udp".to_string(),
        ];
        want.sort();
        assert_eq!(f.match_sorted(), want.join(","), "{}", f.line);
        assert_eq!(f.actions, "load:0x1->NXM_NX_REG10[7]", "{}", f.line);
        assert_eq!(f.priority, 32768, "{}", f.line);
    }
    // one of the two learning flows goes: another learn(delete_learned) of (1, 0x77) is left
    l.ofctl.ok(&[
        "--strict",
        "del-flows",
        "br0",
        "table=0,priority=20,udp,in_port=1,tp_dst=7001",
    ]);
    let left: Vec<Flow> = l.ofctl.flows("br0", "table=1");
    assert_eq!(
        left.iter().filter(|f| f.cookie == 0x77).count(),
        2,
        "{left:#?}"
    );
    // the last one goes: its learned flows follow, the fallback stays
    l.ofctl.ok(&[
        "--strict",
        "del-flows",
        "br0",
        "table=0,priority=20,udp,in_port=1,tp_dst=7000",
    ]);
    let left: Vec<Flow> = l.ofctl.flows("br0", "table=1");
    assert_eq!(left.len(), 1, "{left:#?}");
    assert_eq!(left[0].priority, 0);
    assert!(l.d.coverage().get("learned_flows_deleted") >= 2);
}
