//! OVN's stateful features, all built on the switch's connection tracker (issue 8): ACLs with
//! `allow-related` (ct commit, replies admitted as `ct.est && ct.rpl`), `reject` (a TCP RST
//! or ICMP unreachable made by ovn-controller), load balancers (`ct(nat(dst))` in select
//! groups, hairpin SNAT with `ct` and `learn`), and router SNAT to an external network.
//!
//! Every test drives real OVN and asserts on real TCP/UDP exchanges between kernel sockets in
//! the workload namespaces ([`xvs_tests::service`]): who answered, what source address the
//! server saw (NAT is visible there), and whether a connection was refused or went
//! unanswered. They pass on stock ovs-vswitchd (`XVS_OVN_SWITCH=ovs`) and are xvswitchd's
//! acceptance tests for conntrack.

use std::io::ErrorKind;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::Duration;

use xvs_tests::ovn::{Central, OvnLab, SwitchKind};
use xvs_tests::ovn_net::{
    acl_add, external_gateway, lb_add, lr_join, ls_add, lsp_add, pg_add, snat_add, vif, vm_ip,
    vm_mac,
};
use xvs_tests::service::{tcp_exchange, tcp_server, udp_exchange, udp_server, Answer};

/// Connecting where the answer must come: generous, it only bounds a failing test.
const CONNECT: Duration = Duration::from_secs(10);
/// Connecting where the switch must drop: a SYN and two retransmissions.
const DROPPED: Duration = Duration::from_secs(4);
/// A TCP payload of several segments each way (the VIFs' MTU is 1400).
const BULK: usize = 64 * 1024;

fn sa(ip: Ipv4Addr, port: u16) -> SocketAddrV4 {
    SocketAddrV4::new(ip, port)
}

fn expect_answer(r: std::io::Result<Answer>, what: &str) -> Answer {
    r.unwrap_or_else(|e| panic!("{what}: no complete exchange: {e} ({:?})", e.kind()))
}

fn expect_error(r: std::io::Result<Answer>, kind: ErrorKind, what: &str) {
    match r {
        Ok(a) => panic!(
            "{what}: expected {kind:?}, but {} answered: {a:?}",
            a.server
        ),
        Err(e) => assert_eq!(e.kind(), kind, "{what}: {e}"),
    }
}

/// Logical switch `ls0` (10.0.0.0/24) with a client (`client`, .1) and a VM (`vm`, .2) in
/// port group `pg_vm`.
fn client_and_vm(lab: &OvnLab) {
    let nb = &lab.central;
    ls_add(nb, "ls0", 0);
    lsp_add(nb, "ls0", "client", vm_mac(0, 1), vm_ip(0, 1));
    lsp_add(nb, "ls0", "vm", vm_mac(0, 2), vm_ip(0, 2));
    pg_add(nb, "pg_vm", &["vm"]);
}

/// The VM's stateful policy: IPv4 traffic to it matching `allowed` is allow-related, all other
/// IP to it is dropped.
fn allow_related_else_drop(nb: &Central, allowed: &str) {
    acl_add(
        nb,
        "pg_vm",
        "to-lport",
        1001,
        &format!("outport == @pg_vm && ip4 && {allowed}"),
        "allow-related",
    );
    acl_add(
        nb,
        "pg_vm",
        "to-lport",
        1000,
        "outport == @pg_vm && ip",
        "drop",
    );
}

/// Proves: with a stateful ACL set on the VM's port group (TCP and UDP to port 5201 from
/// anywhere allow-related, all other IP to the VM dropped):
/// - the client's TCP connections to the VM's port 5201 complete and carry 64 KiB both ways,
///   and a UDP exchange on 5201 is answered (the replies leave through the pipeline's ct
///   stage), and `dpctl/dump-conntrack` lists both connections;
/// - unsolicited TCP and UDP to port 5202, where the VM listens too, go unanswered (dropped,
///   not refused: the listener never sees them), and so do pings to the VM;
/// - a connection the VM itself starts, towards a port of the client no ACL mentions, works:
///   OVN's from-lport default is allow, and the client's replies, which the to-lport drop
///   rule matches, are admitted because conntrack knows them as replies (`ct.est && ct.rpl`).
///   The same holds for the VM's pings.
#[test]
fn ovn_ct_acl_allow_related() {
    let lab = OvnLab::start(1, SwitchKind::from_env());
    let nb = &lab.central;
    client_and_vm(&lab);
    allow_related_else_drop(nb, "(tcp.dst == 5201 || udp.dst == 5201)");
    let ch = &lab.chassis[0];
    let client = vif(ch, "client", 0, 1, false);
    let vm = vif(ch, "vm", 0, 2, false);
    lab.sync();

    let allowed = tcp_server(&vm.ns, sa(vm.ip, 5201), "vm-5201");
    let allowed_udp = udp_server(&vm.ns, sa(vm.ip, 5201), "vm-udp-5201");
    let blocked = tcp_server(&vm.ns, sa(vm.ip, 5202), "vm-5202");
    let blocked_udp = udp_server(&vm.ns, sa(vm.ip, 5202), "vm-udp-5202");
    let on_client = tcp_server(&client.ns, sa(client.ip, 7000), "client-7000");

    for i in 0..3 {
        let a = expect_answer(
            tcp_exchange(&client.ns, sa(vm.ip, 5201), BULK, CONNECT),
            &format!("client -> vm tcp/5201 (connection {i})"),
        );
        assert_eq!(a.server, "vm-5201");
        assert_eq!(a.seen_as.ip(), client.ip, "no NAT on a logical switch");
    }
    let a = expect_answer(
        udp_exchange(&client.ns, sa(vm.ip, 5201), 512, 5, Duration::from_secs(2)),
        "client -> vm udp/5201",
    );
    assert_eq!(a.server, "vm-udp-5201");
    assert_eq!(allowed.peers().len(), 3);
    assert!(!allowed_udp.peers().is_empty());
    // allow-related committed the connections: the tracker holds them
    let ct = ch.conntrack();
    for proto in ["tcp", "udp"] {
        assert!(
            ct.iter().any(|e| e.proto == proto
                && e.orig.src == client.ip
                && e.orig.dst == vm.ip
                && e.orig.dport == Some(5201)),
            "no {proto} conntrack entry client -> vm:5201 in:\n{ct:#?}"
        );
    }

    expect_error(
        tcp_exchange(&client.ns, sa(vm.ip, 5202), 100, DROPPED),
        ErrorKind::TimedOut,
        "client -> vm tcp/5202 (not allowed)",
    );
    expect_error(
        udp_exchange(&client.ns, sa(vm.ip, 5202), 100, 2, Duration::from_secs(1)),
        ErrorKind::TimedOut,
        "client -> vm udp/5202 (not allowed)",
    );
    assert!(blocked.peers().is_empty(), "{:?}", blocked.peers());
    assert!(blocked_udp.peers().is_empty(), "{:?}", blocked_udp.peers());
    assert_eq!(
        client.ns.ping(vm.ip, 2).1,
        0,
        "a ping to the vm got through"
    );

    for i in 0..3 {
        let a = expect_answer(
            tcp_exchange(&vm.ns, sa(client.ip, 7000), BULK, CONNECT),
            &format!("vm -> client tcp/7000 (connection {i}, replies as ct.est+rpl)"),
        );
        assert_eq!(a.server, "client-7000");
        assert_eq!(a.seen_as.ip(), vm.ip);
    }
    assert_eq!(on_client.peers().len(), 3);
    vm.ns.assert_ping(client.ip, 3);
    // the allowed direction still works after all this, and the blocked one stays blocked
    expect_answer(
        tcp_exchange(&client.ns, sa(vm.ip, 5201), BULK, CONNECT),
        "client -> vm tcp/5201 again",
    );
    assert_eq!(
        client.ns.ping(vm.ip, 1).1,
        0,
        "a ping to the vm got through"
    );
    lab.assert_clean();
}

/// The service VIPs of [`ovn_ct_load_balancer`], outside every logical subnet as Kubernetes
/// service addresses are: reached through the default gateway.
const VIP: Ipv4Addr = Ipv4Addr::new(172, 30, 0, 10);
const VIP_ONE: Ipv4Addr = Ipv4Addr::new(172, 30, 0, 11);

/// Proves: a load balancer on logical switch `ls0` (VIP 172.30.0.10:80 → two backends'
/// port 8080), reached as a Kubernetes pod reaches a service (through its default gateway,
/// a logical router on the switch):
/// - 24 TCP connections from a client to the VIP all complete with 4 KiB each way, both
///   backends answer some of them, and the backends see the client's own address (DNAT only);
///   `dpctl/dump-conntrack` lists connections to the VIP answered by each backend;
/// - hairpin: a backend connecting to a VIP whose only backend is itself
///   (172.30.0.11:80 → b1:8080) is answered by itself, and sees the connection come from
///   the VIP (OVN's hairpin SNAT, `ct` + `learn` into the hairpin tables);
/// - a backend connecting to the two-backend VIP is always answered, whichever backend the
///   group picked: by itself (then the peer is the VIP) or by the other one (then the peer
///   is its own address).
#[test]
fn ovn_ct_load_balancer() {
    let lab = OvnLab::start(1, SwitchKind::from_env());
    let nb = &lab.central;
    ls_add(nb, "ls0", 0);
    lsp_add(nb, "ls0", "client", vm_mac(0, 1), vm_ip(0, 1));
    lsp_add(nb, "ls0", "b1", vm_mac(0, 11), vm_ip(0, 11));
    lsp_add(nb, "ls0", "b2", vm_mac(0, 12), vm_ip(0, 12));
    lr_join(nb, "lr0", "ls0", 0);
    let (b1_ip, b2_ip) = (vm_ip(0, 11), vm_ip(0, 12));
    lb_add(
        nb,
        "lb0",
        sa(VIP, 80),
        &[sa(b1_ip, 8080), sa(b2_ip, 8080)],
        "tcp",
        &["ls0"],
    );
    lb_add(
        nb,
        "lb1",
        sa(VIP_ONE, 80),
        &[sa(b1_ip, 8080)],
        "tcp",
        &["ls0"],
    );
    let ch = &lab.chassis[0];
    let client = vif(ch, "client", 0, 1, true);
    let b1 = vif(ch, "b1", 0, 11, true);
    let b2 = vif(ch, "b2", 0, 12, true);
    lab.sync();
    let s1 = tcp_server(&b1.ns, sa(b1_ip, 8080), "b1");
    let s2 = tcp_server(&b2.ns, sa(b2_ip, 8080), "b2");

    let mut per_backend = std::collections::BTreeMap::<String, usize>::new();
    for i in 0..24 {
        let a = expect_answer(
            tcp_exchange(&client.ns, sa(VIP, 80), 4096, CONNECT),
            &format!("client -> VIP {VIP}:80 (connection {i})"),
        );
        assert_eq!(a.seen_as.ip(), client.ip, "the backend saw {a:?}");
        *per_backend.entry(a.server).or_default() += 1;
    }
    eprintln!("client -> VIP: connections per backend {per_backend:?}");
    assert_eq!(
        per_backend.keys().cloned().collect::<Vec<_>>(),
        ["b1", "b2"],
        "24 connections did not reach both backends"
    );
    assert_eq!(s1.peers().len() + s2.peers().len(), 24);
    // the tracker shows the DNAT: the client's connections to the VIP, answered by each backend
    let ct = ch.conntrack();
    for b in [b1_ip, b2_ip] {
        assert!(
            ct.iter().any(|e| e.proto == "tcp"
                && e.orig.src == client.ip
                && e.orig.dst == VIP
                && e.orig.dport == Some(80)
                && e.reply.src == b
                && e.reply.sport == Some(8080)),
            "no conntrack entry client -> {VIP}:80 answered by {b}:8080 in:\n{ct:#?}"
        );
    }

    for i in 0..3 {
        let a = expect_answer(
            tcp_exchange(&b1.ns, sa(VIP_ONE, 80), 4096, CONNECT),
            &format!("hairpin b1 -> {VIP_ONE}:80 (connection {i})"),
        );
        assert_eq!(a.server, "b1");
        assert_eq!(a.seen_as.ip(), VIP_ONE, "hairpin SNAT to the VIP");
    }
    for i in 0..8 {
        let a = expect_answer(
            tcp_exchange(&b1.ns, sa(VIP, 80), 4096, CONNECT),
            &format!("b1 -> {VIP}:80 (connection {i})"),
        );
        let expected = if a.server == "b1" { VIP } else { b1_ip };
        assert_eq!(a.seen_as.ip(), expected, "{a:?}");
    }
    lab.assert_clean();
}

/// Proves: a logical router joining two logical switches (10.0.0.0/24 and 10.0.1.0/24), with
/// a distributed gateway port to an external network (a localnet port on provider bridge
/// br-ex, the next hop a namespace at 172.16.0.254 with no route back to the logical
/// subnets) and SNAT of 10.0.0.0/24 to 172.16.0.100:
/// - routing baseline: pings to the router's ports and across the two switches;
/// - east-west traffic is not NATed (the server on the other switch sees the client's own
///   address);
/// - from 10.0.0.0/24, TCP (64 KiB each way) and UDP exchanges and pings reach the external
///   namespace, whose servers see 172.16.0.100, and the replies come back (un-SNAT by
///   conntrack); `dpctl/dump-conntrack` lists the TCP and UDP connections with replies
///   expected at 172.16.0.100;
/// - from 10.0.1.0/24, which has no SNAT, nothing external is answered.
#[test]
fn ovn_ct_router_snat() {
    let lab = OvnLab::start(1, SwitchKind::from_env());
    let nb = &lab.central;
    ls_add(nb, "ls0", 0);
    ls_add(nb, "ls1", 1);
    lsp_add(nb, "ls0", "in0", vm_mac(0, 1), vm_ip(0, 1));
    lsp_add(nb, "ls1", "in1", vm_mac(1, 1), vm_ip(1, 1));
    lr_join(nb, "lr0", "ls0", 0);
    lr_join(nb, "lr0", "ls1", 1);
    let ext = external_gateway(&lab, "lr0", 0);
    let snat_ip = Ipv4Addr::new(172, 16, 0, 100);
    snat_add(nb, "lr0", snat_ip, "10.0.0.0/24");
    let ch = &lab.chassis[0];
    let in0 = vif(ch, "in0", 0, 1, true);
    let in1 = vif(ch, "in1", 1, 1, true);
    lab.sync();

    in0.ns.assert_ping(vm_ip(0, 254), 2);
    in0.ns.assert_ping(in1.ip, 3);
    in1.ns.assert_ping(in0.ip, 2);
    let east_west = tcp_server(&in1.ns, sa(in1.ip, 8080), "in1");
    let a = expect_answer(
        tcp_exchange(&in0.ns, sa(in1.ip, 8080), BULK, CONNECT),
        "in0 -> in1 across the router",
    );
    assert_eq!(a.seen_as.ip(), in0.ip, "east-west traffic was NATed");
    drop(east_west);

    let ext_tcp = tcp_server(&ext.ns, sa(ext.ip, 8080), "ext");
    let ext_udp = udp_server(&ext.ns, sa(ext.ip, 8081), "ext-udp");
    in0.ns.assert_ping(ext.router_ip, 2);
    in0.ns.assert_ping(ext.ip, 3);
    for i in 0..3 {
        let a = expect_answer(
            tcp_exchange(&in0.ns, sa(ext.ip, 8080), BULK, CONNECT),
            &format!("in0 -> external tcp (connection {i})"),
        );
        assert_eq!(a.server, "ext");
        assert_eq!(a.seen_as.ip(), snat_ip, "not SNATed: {a:?}");
    }
    let a = expect_answer(
        udp_exchange(&in0.ns, sa(ext.ip, 8081), 512, 5, Duration::from_secs(2)),
        "in0 -> external udp",
    );
    assert_eq!(a.seen_as.ip(), snat_ip, "not SNATed: {a:?}");
    assert!(ext_tcp.peers().iter().all(|p| p.ip() == snat_ip));
    assert!(ext_udp.peers().iter().all(|p| p.ip() == snat_ip));
    // the tracker shows the SNAT: replies are expected at the external address
    let ct = ch.conntrack();
    for (proto, port) in [("tcp", 8080), ("udp", 8081)] {
        assert!(
            ct.iter().any(|e| e.proto == proto
                && e.orig.src == in0.ip
                && e.orig.dst == ext.ip
                && e.orig.dport == Some(port)
                && e.reply.src == ext.ip
                && e.reply.dst == snat_ip),
            "no {proto} conntrack entry {} -> {}:{port} SNATed to {snat_ip} in:\n{ct:#?}",
            in0.ip,
            ext.ip
        );
    }

    // 10.0.1.0/24 has no SNAT: its packets leave with their own address, which the external
    // network cannot answer
    let r = tcp_exchange(&in1.ns, sa(ext.ip, 8080), 100, DROPPED);
    assert!(r.is_err(), "in1 got an answer without SNAT: {r:?}");
    assert!(
        ext_tcp.peers().iter().all(|p| p.ip() != in1.ip),
        "{:?}",
        ext_tcp.peers()
    );
    lab.assert_clean();
}

/// Proves: a `reject` ACL answers for the VM: the client's TCP connect to the rejected port is
/// refused (a TCP RST made by ovn-controller and sent through the switch), and a UDP datagram
/// gets an ICMP port unreachable (ECONNREFUSED on a connected socket), although the VM
/// listens on that port and never sees either; on the same switch, with stateful ACLs in
/// place, an allowed port works and a merely dropped port goes unanswered (so the refusal is
/// the reject ACL's doing).
#[test]
fn ovn_ct_reject_acl() {
    let lab = OvnLab::start(1, SwitchKind::from_env());
    let nb = &lab.central;
    client_and_vm(&lab);
    acl_add(
        nb,
        "pg_vm",
        "to-lport",
        1002,
        "outport == @pg_vm && (tcp.dst == 7777 || udp.dst == 7777)",
        "reject",
    );
    allow_related_else_drop(nb, "tcp.dst == 5201");
    let ch = &lab.chassis[0];
    let client = vif(ch, "client", 0, 1, false);
    let vm = vif(ch, "vm", 0, 2, false);
    lab.sync();
    let rejected = tcp_server(&vm.ns, sa(vm.ip, 7777), "vm-7777");
    let rejected_udp = udp_server(&vm.ns, sa(vm.ip, 7777), "vm-udp-7777");
    let dropped = tcp_server(&vm.ns, sa(vm.ip, 5202), "vm-5202");
    let _allowed = tcp_server(&vm.ns, sa(vm.ip, 5201), "vm-5201");

    // the first exchange also resolves the VM's MAC
    expect_answer(
        tcp_exchange(&client.ns, sa(vm.ip, 5201), BULK, CONNECT),
        "client -> vm tcp/5201 (allowed)",
    );
    for i in 0..3 {
        expect_error(
            tcp_exchange(&client.ns, sa(vm.ip, 7777), 100, CONNECT),
            ErrorKind::ConnectionRefused,
            &format!("client -> vm tcp/7777 (reject, attempt {i})"),
        );
    }
    expect_error(
        udp_exchange(&client.ns, sa(vm.ip, 7777), 100, 3, Duration::from_secs(2)),
        ErrorKind::ConnectionRefused,
        "client -> vm udp/7777 (reject)",
    );
    expect_error(
        tcp_exchange(&client.ns, sa(vm.ip, 5202), 100, DROPPED),
        ErrorKind::TimedOut,
        "client -> vm tcp/5202 (drop)",
    );
    assert!(rejected.peers().is_empty(), "{:?}", rejected.peers());
    assert!(
        rejected_udp.peers().is_empty(),
        "{:?}",
        rejected_udp.peers()
    );
    assert!(dropped.peers().is_empty(), "{:?}", dropped.peers());
    lab.assert_clean();
}

/// Proves: the stateful features across two chassis joined by Geneve, where the two halves
/// of a connection are tracked on different machines (OVN runs a port's to-lport stage on the
/// chassis that hosts it, and a distributed gateway port's NAT on its gateway chassis). On
/// `ls0` the client is on ch1; the ACL-protected VM, one load-balancer backend and the
/// gateway (with the external network) are on ch2, the other backend on ch1:
/// - allow-related: the client's connections to the VM's port 5201 work, its connections to
///   port 5202 go unanswered, and the VM's own connection to the client is answered;
/// - the load balancer: 20 connections from the client to the VIP reach both backends, one
///   per chassis;
/// - SNAT: the client's connection to the external namespace arrives from 172.16.0.100 (NAT
///   on ch2, the client on ch1) and is answered.
#[test]
fn ovn_ct_across_chassis() {
    let lab = OvnLab::start(2, SwitchKind::from_env());
    let nb = &lab.central;
    client_and_vm(&lab);
    lsp_add(nb, "ls0", "b1", vm_mac(0, 11), vm_ip(0, 11));
    lsp_add(nb, "ls0", "b2", vm_mac(0, 12), vm_ip(0, 12));
    allow_related_else_drop(nb, "tcp.dst == 5201");
    lr_join(nb, "lr0", "ls0", 0);
    let (b1_ip, b2_ip) = (vm_ip(0, 11), vm_ip(0, 12));
    lb_add(
        nb,
        "lb0",
        sa(VIP, 80),
        &[sa(b1_ip, 8080), sa(b2_ip, 8080)],
        "tcp",
        &["ls0"],
    );
    let ext = external_gateway(&lab, "lr0", 1);
    let snat_ip = Ipv4Addr::new(172, 16, 0, 100);
    snat_add(nb, "lr0", snat_ip, "10.0.0.0/24");
    let (ch1, ch2) = (&lab.chassis[0], &lab.chassis[1]);
    let client = vif(ch1, "client", 0, 1, true);
    let b1 = vif(ch1, "b1", 0, 11, true);
    let vm = vif(ch2, "vm", 0, 2, true);
    let b2 = vif(ch2, "b2", 0, 12, true);
    lab.sync();

    let _allowed = tcp_server(&vm.ns, sa(vm.ip, 5201), "vm-5201");
    let blocked = tcp_server(&vm.ns, sa(vm.ip, 5202), "vm-5202");
    let _on_client = tcp_server(&client.ns, sa(client.ip, 7000), "client-7000");
    for i in 0..3 {
        let a = expect_answer(
            tcp_exchange(&client.ns, sa(vm.ip, 5201), BULK, CONNECT),
            &format!("client (ch1) -> vm (ch2) tcp/5201 (connection {i})"),
        );
        assert_eq!(a.seen_as.ip(), client.ip);
    }
    expect_error(
        tcp_exchange(&client.ns, sa(vm.ip, 5202), 100, DROPPED),
        ErrorKind::TimedOut,
        "client (ch1) -> vm (ch2) tcp/5202 (not allowed)",
    );
    assert!(blocked.peers().is_empty(), "{:?}", blocked.peers());
    expect_answer(
        tcp_exchange(&vm.ns, sa(client.ip, 7000), BULK, CONNECT),
        "vm (ch2) -> client (ch1) tcp/7000 (replies as ct.est+rpl)",
    );

    let _s1 = tcp_server(&b1.ns, sa(b1_ip, 8080), "b1");
    let _s2 = tcp_server(&b2.ns, sa(b2_ip, 8080), "b2");
    let mut per_backend = std::collections::BTreeMap::<String, usize>::new();
    for i in 0..20 {
        let a = expect_answer(
            tcp_exchange(&client.ns, sa(VIP, 80), 4096, CONNECT),
            &format!("client -> VIP {VIP}:80 (connection {i})"),
        );
        assert_eq!(a.seen_as.ip(), client.ip, "the backend saw {a:?}");
        *per_backend.entry(a.server).or_default() += 1;
    }
    eprintln!("client -> VIP: connections per backend {per_backend:?}");
    assert_eq!(
        per_backend.keys().cloned().collect::<Vec<_>>(),
        ["b1", "b2"],
        "20 connections did not reach both backends"
    );

    let _ext_tcp = tcp_server(&ext.ns, sa(ext.ip, 8080), "ext");
    for i in 0..3 {
        let a = expect_answer(
            tcp_exchange(&client.ns, sa(ext.ip, 8080), BULK, CONNECT),
            &format!("client (ch1) -> external via ch2 (connection {i})"),
        );
        assert_eq!(a.seen_as.ip(), snat_ip, "not SNATed: {a:?}");
    }
    client.ns.assert_ping(ext.ip, 2);
    lab.assert_clean();
}
