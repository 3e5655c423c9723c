//! Recognition on OVN-shaped flows (v23.03's destination chassis, §2.4 of the OVN notes),
//! built with the same flow parser `xvs-ofctl` uses.

use super::*;
use crate::ofproto::mods;
use crate::pipeline::tables::OfPort;
use openflow::message::Message;
use xvs_ofctl::field::proto;
use xvs_ofctl::flow::{encode_flow_mod, parse_flow, Command, ParseFor};

const C: u64 = 0x8f1c2a3b;

fn bridge() -> BridgeTables {
    let mut bt = BridgeTables::new("br-int", 0, 1);
    for (of, name) in [(5u32, "client"), (7, "vm"), (10, "tun")] {
        bt.ports.insert(
            of,
            OfPort {
                ofport: of,
                dp: of as u16,
                name: name.into(),
                config: 0,
                up: true,
            },
        );
    }
    bt
}

fn add(bt: &mut BridgeTables, text: &str) {
    let spec = parse_flow(text, ParseFor::Mod(Command::Add), None).unwrap();
    let Message::FlowMod(fm) = encode_flow_mod(&spec, proto::OF15_OXM).unwrap() else {
        panic!("not a flow mod");
    };
    mods::flow_mod(bt, &fm, 6, false, 0, &mut mods::Changes::default()).unwrap();
}

fn del_strict(bt: &mut BridgeTables, text: &str) {
    let spec = parse_flow(text, ParseFor::Mod(Command::DeleteStrict), None).unwrap();
    let Message::FlowMod(fm) = encode_flow_mod(&spec, proto::OF15_OXM).unwrap() else {
        panic!("not a flow mod");
    };
    mods::flow_mod(bt, &fm, 6, false, 0, &mut mods::Changes::default()).unwrap();
}

/// The normal flows of VIF 7 (port key 2 on datapath 1) and of a client VIF 5, plus the
/// multi-chassis copy to the main chassis over tunnel port 10. `t0`, `t_out` and `t_phy`
/// stand for PHY_TO_LOG, REMOTE_OUTPUT and LOG_TO_PHY.
fn normal(bt: &mut BridgeTables, t0: u8, t_out: u8, t_phy: u8) {
    add(bt, &format!("table={t0},priority=100,in_port=7,cookie={C:#x},actions=set_field:0x5->reg13,set_field:0x1->metadata,set_field:0x2->reg14,resubmit(,8)"));
    add(bt, &format!("table={t0},priority=100,in_port=5,cookie=0x1234,actions=set_field:0x1->metadata,set_field:0x1->reg14,resubmit(,8)"));
    add(bt, &format!("table={t_out},priority=100,reg15=0x2,metadata=0x1,cookie={C:#x},actions=set_field:0x1->tun_id,output:10,resubmit(,{})", t_out + 1));
    add(
        bt,
        &format!(
            "table={t_phy},priority=100,reg15=0x2,metadata=0x1,cookie={C:#x},actions=output:7"
        ),
    );
    add(
        bt,
        &format!(
            "table={t_phy},priority=100,reg15=0x1,metadata=0x1,cookie=0x1234,actions=output:5"
        ),
    );
}

fn trio(bt: &mut BridgeTables, t0: u8, t_phy: u8, cookie: u64) {
    add(bt, &format!("table={t0},priority=1010,rarp,in_port=7,cookie={cookie:#x},actions=set_field:0x5->reg13,set_field:0x1->metadata,set_field:0x2->reg14,controller(userdata=00.00.00.1a.00.00.00.00),resubmit(,8)"));
    add(
        bt,
        &format!("table={t0},priority=1000,in_port=7,cookie={cookie:#x},actions=drop"),
    );
    add(
        bt,
        &format!(
            "table={t_phy},priority=1000,reg15=0x2,metadata=0x1,cookie={cookie:#x},actions=drop"
        ),
    );
}

#[test]
fn ovn_23_03_trio_is_recognised_with_its_keys_and_copies() {
    let mut bt = bridge();
    normal(&mut bt, 0, 37, 65);
    trio(&mut bt, 0, 65, C);
    let r = recognize(&bt);
    assert_eq!(r.len(), 1, "{r:?}");
    let g = &r[0];
    assert_eq!((g.ofport, g.cookie, g.dp_key, g.port_key), (7, C, 1, 2));
    assert_eq!(g.activators.len(), 1);
    let a = &g.activators[0];
    assert_eq!((a.table, a.priority, a.trigger), (0, 1010, Trigger::Rarp));
    assert!(a.metadata.contains(&(Field::Metadata, 1)));
    assert!(a.metadata.contains(&(Field::Reg(14), 2)));
    assert!(a.metadata.contains(&(Field::Reg(13), 5)));
    assert!(a.metadata.contains(&(Field::InPortOxm, 7)));
    assert_eq!(&a.spec.userdata[..4], &OVN_ACTIVATION_OPCODE);
    assert_eq!(
        g.ingress.iter().map(|x| (x.0, x.2)).collect::<Vec<_>>(),
        [(0, 1000)]
    );
    assert_eq!(
        g.egress.iter().map(|x| (x.0, x.2)).collect::<Vec<_>>(),
        [(65, 1000)]
    );
    assert_eq!(g.copies_to, [10]);
}

#[test]
fn table_numbers_do_not_matter() {
    // main's numbering: LOG_TO_PHY is 89, the output stage 54
    let mut bt = bridge();
    normal(&mut bt, 0, 54, 89);
    trio(&mut bt, 0, 89, C);
    let r = recognize(&bt);
    assert_eq!(r.len(), 1);
    assert_eq!(r[0].egress[0].0, 89);
    // and a PHY_TO_LOG that is not 0
    let mut bt = bridge();
    normal(&mut bt, 3, 40, 70);
    trio(&mut bt, 3, 70, C);
    let r = recognize(&bt);
    assert_eq!(r.len(), 1);
    assert_eq!((r[0].ingress[0].0, r[0].egress[0].0), (3, 70));
}

#[test]
fn garp_and_na_activators_of_newer_ovn_are_accepted() {
    let mut bt = bridge();
    normal(&mut bt, 0, 43, 65);
    add(&mut bt, &format!("table=0,priority=1010,arp,in_port=7,dl_src=00:00:00:00:00:07,arp_sha=00:00:00:00:00:07,arp_spa=10.0.0.7,arp_tpa=10.0.0.7,cookie={C:#x},actions=set_field:0x1->metadata,set_field:0x2->reg14,controller(userdata=00.00.00.1a.00.00.00.00),resubmit(,8)"));
    add(&mut bt, &format!("table=0,priority=1010,icmp6,in_port=7,icmp_type=136,icmp_code=0,ipv6_src=fe80::7,nd_target=fe80::7,nd_tll=00:00:00:00:00:07,cookie={C:#x},actions=set_field:0x1->metadata,set_field:0x2->reg14,controller(userdata=00.00.00.1a.00.00.00.00),resubmit(,8)"));
    add(
        &mut bt,
        &format!("table=0,priority=1000,in_port=7,cookie={C:#x},actions=drop"),
    );
    add(
        &mut bt,
        &format!("table=65,priority=1000,reg15=0x2,metadata=0x1,cookie={C:#x},actions=drop"),
    );
    let r = recognize(&bt);
    assert_eq!(r.len(), 1);
    let mut t: Vec<Trigger> = r[0].activators.iter().map(|a| a.trigger).collect();
    t.sort_by_key(|t| *t as u8);
    assert_eq!(t, [Trigger::Garp, Trigger::Na]);
}

#[test]
fn incomplete_or_mismatched_trios_are_not_gates() {
    // blocking flows under another cookie
    let mut bt = bridge();
    normal(&mut bt, 0, 37, 65);
    add(&mut bt, &format!("table=0,priority=1010,rarp,in_port=7,cookie={C:#x},actions=set_field:0x1->metadata,set_field:0x2->reg14,controller(userdata=00.00.00.1a.00.00.00.00),resubmit(,8)"));
    add(
        &mut bt,
        "table=0,priority=1000,in_port=7,cookie=0x99,actions=drop",
    );
    add(
        &mut bt,
        "table=65,priority=1000,reg15=0x2,metadata=0x1,cookie=0x99,actions=drop",
    );
    assert!(recognize(&bt).is_empty());

    // "blocking" flows that do something
    let mut bt = bridge();
    normal(&mut bt, 0, 37, 65);
    add(&mut bt, &format!("table=0,priority=1010,rarp,in_port=7,cookie={C:#x},actions=set_field:0x1->metadata,set_field:0x2->reg14,controller(userdata=00.00.00.1a.00.00.00.00),resubmit(,8)"));
    add(
        &mut bt,
        &format!("table=0,priority=1000,in_port=7,cookie={C:#x},actions=output:5"),
    );
    add(
        &mut bt,
        &format!("table=65,priority=1000,reg15=0x2,metadata=0x1,cookie={C:#x},actions=drop"),
    );
    assert!(recognize(&bt).is_empty());

    // no egress block (c)
    let mut bt = bridge();
    normal(&mut bt, 0, 37, 65);
    add(&mut bt, &format!("table=0,priority=1010,rarp,in_port=7,cookie={C:#x},actions=set_field:0x1->metadata,set_field:0x2->reg14,controller(userdata=00.00.00.1a.00.00.00.00),resubmit(,8)"));
    add(
        &mut bt,
        &format!("table=0,priority=1000,in_port=7,cookie={C:#x},actions=drop"),
    );
    assert!(recognize(&bt).is_empty());

    // (c) in a table that does not deliver to the port
    let mut bt = bridge();
    normal(&mut bt, 0, 37, 65);
    trio(&mut bt, 0, 50, C);
    assert!(recognize(&bt).is_empty());

    // another opcode (26 is activation; 0 is arp())
    let mut bt = bridge();
    normal(&mut bt, 0, 37, 65);
    add(&mut bt, &format!("table=0,priority=1010,rarp,in_port=7,cookie={C:#x},actions=set_field:0x1->metadata,set_field:0x2->reg14,controller(userdata=00.00.00.00.00.00.00.00),resubmit(,8)"));
    add(
        &mut bt,
        &format!("table=0,priority=1000,in_port=7,cookie={C:#x},actions=drop"),
    );
    add(
        &mut bt,
        &format!("table=65,priority=1000,reg15=0x2,metadata=0x1,cookie={C:#x},actions=drop"),
    );
    assert!(recognize(&bt).is_empty());
}

#[test]
fn gate_state_survives_flow_deletion_and_dies_with_the_port() {
    let mut bt = bridge();
    normal(&mut bt, 0, 37, 65);
    trio(&mut bt, 0, 65, C);
    let mut bridges = vec![Arc::new(bt)];
    let mut m = Migration::default();
    assert!(m.refresh(&mut bridges).is_empty());
    assert_eq!(bridges[0].gates.len(), 3);
    let state = m.gates.values().next().unwrap().state.clone();
    assert!(state.activate(0x0000_0000_0007, Trigger::Rarp));
    assert!(!state.activate(0x0000_0000_0007, Trigger::Rarp));

    // ovn-controller's DELETE_STRICTs: the state stays, the map empties
    let bt = Arc::make_mut(&mut bridges[0]);
    del_strict(bt, "table=0,priority=1010,rarp,in_port=7");
    del_strict(bt, "table=0,priority=1000,in_port=7");
    del_strict(bt, "table=65,priority=1000,reg15=0x2,metadata=0x1");
    assert!(m.refresh(&mut bridges).is_empty());
    assert_eq!(bridges[0].gates.len(), 0);
    assert_eq!(m.gates.len(), 1);

    // the same trio again (finalize race / restart): bypassed at once, packet-in replayed
    trio(Arc::make_mut(&mut bridges[0]), 0, 65, C);
    let replays = m.refresh(&mut bridges);
    assert_eq!(replays.len(), 1);
    let p = &replays[0].spec;
    assert_eq!((p.table_id, p.cookie), (0, C));
    assert!(p.metadata.contains(&(Field::Reg(14), 2)));
    assert_eq!(&replays[0].frame[12..14], &[0x80, 0x35]);
    assert!(m.gates.values().next().unwrap().state.is_activated());
    assert_eq!(bridges[0].gates.len(), 3);
    // nothing new on the next publish
    assert!(m.refresh(&mut bridges).is_empty());

    // the operator re-arms it
    m.rearm("vm").unwrap();
    assert!(!state.is_activated());

    // the port goes away: so does the state
    Arc::make_mut(&mut bridges[0]).ports.remove(&7);
    m.refresh(&mut bridges);
    assert!(m.gates.is_empty());
}

#[test]
fn deleting_an_unactivated_gate_forgets_it() {
    let mut bt = bridge();
    normal(&mut bt, 0, 37, 65);
    trio(&mut bt, 0, 65, C);
    let mut bridges = vec![Arc::new(bt)];
    let mut m = Migration::default();
    m.refresh(&mut bridges);
    let bt = Arc::make_mut(&mut bridges[0]);
    del_strict(bt, "table=0,priority=1000,in_port=7");
    m.refresh(&mut bridges);
    assert!(m.gates.is_empty());
    assert!(bridges[0].gates.is_empty());
}

const MS: u64 = 1_000_000;

/// ovn-controller's DELETE_STRICTs after the activation packet-in.
fn delete_trio(bt: &mut BridgeTables) {
    del_strict(bt, "table=0,priority=1010,rarp,in_port=7");
    del_strict(bt, "table=0,priority=1000,in_port=7");
    del_strict(bt, "table=65,priority=1000,reg15=0x2,metadata=0x1");
}

/// The binding leaves the chassis (requested-chassis elsewhere): its flows go.
fn release(bt: &mut BridgeTables) {
    del_strict(bt, "table=0,priority=100,in_port=7");
    del_strict(bt, "table=37,priority=100,reg15=0x2,metadata=0x1");
    del_strict(bt, "table=65,priority=100,reg15=0x2,metadata=0x1");
}

/// An activated gate whose trio ovn-controller deleted (t = 0..2 ms).
fn activated_gate() -> (Vec<Arc<BridgeTables>>, Migration, Arc<GateState>) {
    let mut bt = bridge();
    normal(&mut bt, 0, 37, 65);
    trio(&mut bt, 0, 65, C);
    let mut bridges = vec![Arc::new(bt)];
    let mut m = Migration::default();
    m.note_installed_at("vm", true, 0);
    m.refresh_at(&mut bridges, 0);
    let state = m.gates.values().next().unwrap().state.clone();
    assert!(state.activate(7, Trigger::Rarp));
    delete_trio(Arc::make_mut(&mut bridges[0]));
    assert!(m.refresh_at(&mut bridges, MS).is_empty());
    (bridges, m, state)
}

#[test]
fn a_binding_back_after_the_grace_period_rearms_even_if_the_gate_comes_a_publish_later() {
    // perf/migration.sh's failed run: after the binding had been released for 1.3 s,
    // ovn-controller installed the port's normal flows and set ovn-installed, and only 4 ms
    // later (another flow batch) the gate trio; that trio must block (a new migration), not
    // be taken for a re-installation on the activated port
    let (mut bridges, mut m, state) = activated_gate();
    release(Arc::make_mut(&mut bridges[0]));
    m.note_installed_at("vm", false, 10 * MS);
    m.refresh_at(&mut bridges, 10 * MS);
    // back 1.3 s later: normal flows first, ovn-installed, then the trio
    normal(Arc::make_mut(&mut bridges[0]), 0, 37, 65);
    m.refresh_at(&mut bridges, 1310 * MS);
    m.note_installed_at("vm", true, 1311 * MS);
    trio(Arc::make_mut(&mut bridges[0]), 0, 65, C);
    let replays = m.refresh_at(&mut bridges, 1314 * MS);
    assert!(
        replays.is_empty(),
        "the new gate's activation must not be replayed"
    );
    assert!(!state.is_activated(), "the gate must be armed again");
    assert_eq!(bridges[0].gates.len(), 3);
    let tl = m.timeline("vm").unwrap();
    assert!(tl.contains("new migration"), "{tl}");
    // and this one opens with its own RARP, then stays open through a finalize re-install
    assert!(state.activate(7, Trigger::Rarp));
    delete_trio(Arc::make_mut(&mut bridges[0]));
    m.refresh_at(&mut bridges, 1400 * MS);
    trio(Arc::make_mut(&mut bridges[0]), 0, 65, C);
    assert_eq!(m.refresh_at(&mut bridges, 1402 * MS).len(), 1);
    assert!(state.is_activated());
}

#[test]
fn a_binding_back_within_the_grace_period_keeps_the_activation() {
    // ovn-controller re-writing the binding (finalize: additional -> main chassis) drops
    // the flows and ovn-installed for milliseconds: the re-installed trio is bypassed
    let (mut bridges, mut m, state) = activated_gate();
    release(Arc::make_mut(&mut bridges[0]));
    m.note_installed_at("vm", false, 10 * MS);
    m.refresh_at(&mut bridges, 10 * MS);
    normal(Arc::make_mut(&mut bridges[0]), 0, 37, 65);
    m.refresh_at(&mut bridges, 14 * MS);
    m.note_installed_at("vm", true, 15 * MS);
    trio(Arc::make_mut(&mut bridges[0]), 0, 65, C);
    assert_eq!(m.refresh_at(&mut bridges, 16 * MS).len(), 1);
    assert!(state.is_activated());
    // the same trio arriving together with the normal flows, after a long release, blocks
    let bt = Arc::make_mut(&mut bridges[0]);
    delete_trio(bt);
    release(bt);
    m.refresh_at(&mut bridges, 20 * MS);
    let bt = Arc::make_mut(&mut bridges[0]);
    normal(bt, 0, 37, 65);
    trio(bt, 0, 65, C);
    assert!(m.refresh_at(&mut bridges, 2000 * MS).is_empty());
    assert!(!state.is_activated());
}

#[test]
fn only_ovn_installed_tells_a_release_when_the_flows_stay() {
    // the port's flows stay (a publish never saw them gone) but ovn-controller released
    // and re-claimed the binding: ovn-installed gone for over the grace period
    let (mut bridges, mut m, state) = activated_gate();
    m.note_installed_at("vm", false, 10 * MS);
    m.note_installed_at("vm", true, 900 * MS);
    trio(Arc::make_mut(&mut bridges[0]), 0, 65, C);
    assert!(m.refresh_at(&mut bridges, 905 * MS).is_empty());
    assert!(!state.is_activated());
}

#[test]
fn first_packets_after_the_activation_are_recorded_once() {
    let s = GateState::default();
    assert!(!s.awaiting_first(GateDir::Egress));
    assert!(
        !s.first(GateDir::Egress),
        "nothing is recorded before the activation"
    );
    assert!(s.activate(7, Trigger::Rarp));
    assert!(s.awaiting_first(GateDir::Egress) && s.awaiting_first(GateDir::Ingress));
    assert!(s.first(GateDir::Egress));
    assert!(!s.first(GateDir::Egress));
    assert!(!s.awaiting_first(GateDir::Egress) && s.awaiting_first(GateDir::Ingress));
    let (act, ..) = s.activation().unwrap();
    assert!(s.first_out().unwrap() >= act);
    assert_eq!(s.first_in(), None);
    s.rearm();
    assert_eq!(s.first_out(), None);
    assert!(!s.awaiting_first(GateDir::Egress));
}

/// The PMD polls the sockets of ports with an armed gate first: a RARP waiting on the VM's
/// socket is handled before stream packets that reached the tunnel socket after it (polled
/// first, they would meet the closed gate and be lost although the VM had announced itself).
#[test]
fn armed_gate_ports_are_polled_first_until_activation() {
    use crate::pipeline::tables::Pipeline;
    let mut bt = bridge();
    for of in [5u32, 7, 10] {
        bt.of_of_dp.insert(of as u16, of);
    }
    normal(&mut bt, 0, 37, 65);
    trio(&mut bt, 0, 65, C);
    let mut bridges = vec![Arc::new(bt)];
    let mut m = Migration::default();
    m.refresh_at(&mut bridges, 0);
    let pipe = Pipeline {
        bridge_of_dp: [(5u16, 0u8), (7, 0), (10, 0)].into_iter().collect(),
        bridges,
    };
    assert_eq!(pipe.armed_gates(), [(0, 7)]);
    assert!(pipe.gate_armed(7));
    assert!(!pipe.gate_armed(10) && !pipe.gate_armed(5) && !pipe.gate_armed(99));
    // sockets in bring-up order: tunnel, client VIF, VM VIF (the order of the lab's ch2)
    let ports = [10u16, 5, 7];
    let mut rx = vec![0usize, 1, 2];
    rx_order_gated_first(&mut rx, |si| pipe.gate_armed(ports[si]));
    assert_eq!(
        rx,
        [2, 0, 1],
        "the gated VIF first, the others in their order"
    );
    // activated: nothing is armed any more, the control thread's signature changes
    let state = m.gates.values().next().unwrap().state.clone();
    assert!(state.activate(7, Trigger::Rarp));
    assert!(pipe.armed_gates().is_empty());
    let mut rx = vec![0usize, 1, 2];
    rx_order_gated_first(&mut rx, |si| pipe.gate_armed(ports[si]));
    assert_eq!(rx, [0, 1, 2]);
}
