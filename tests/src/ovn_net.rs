//! Logical topologies for [`OvnLab`], built through the real `ovn-nbctl`:
//! logical switches with addressed ports, port groups and ACLs, load balancers, routers joining
//! switches, and a gateway to an "external" network reached through a localnet port on a
//! provider bridge. Shared by the OVN conntrack tests and (later) the perf scenarios, so each
//! builder does one NB-level thing and says what it names.
//!
//! Logical names live in the lab's private NB database, so they need not be unique across
//! tests; the namespaces and interfaces a builder creates are ([`crate::unique`]).

use std::net::{Ipv4Addr, SocketAddrV4};

use crate::netns::{Netns, Veth};
use crate::ovn::{Central, Chassis, OvnLab, Vif};
use crate::pkt::{mac_str, Mac};
use crate::{unique, wait_for, WAIT};

/// The MAC of workload `i` on subnet `net` (10.0.`net`.`i`): `0a:00:00:00:<net>:<i>`.
pub fn vm_mac(net: u8, i: u8) -> Mac {
    [0x0a, 0, 0, 0, net, i]
}

/// Workload `i` on subnet `net`: 10.0.`net`.`i`.
pub fn vm_ip(net: u8, i: u8) -> Ipv4Addr {
    Ipv4Addr::new(10, 0, net, i)
}

/// The router's address on subnet `net`: 10.0.`net`.254 (the workloads' default gateway).
pub fn gw_ip(net: u8) -> Ipv4Addr {
    vm_ip(net, 254)
}

/// The router port's MAC on subnet `net`.
pub fn gw_mac(net: u8) -> Mac {
    [0x02, 0, 0, 0, net, 0xfe]
}

/// Adds logical switch `ls` (subnet 10.0.`net`.0/24 recorded for IPAM-free use).
pub fn ls_add(nb: &Central, ls: &str, net: u8) {
    nb.nbctl(&["ls-add", ls]);
    nb.nbctl(&[
        "set",
        "Logical_Switch",
        ls,
        &format!("other_config:subnet=10.0.{net}.0/24"),
    ]);
}

/// Adds logical port `lsp` to `ls` with address and port security `mac ip`.
pub fn lsp_add(nb: &Central, ls: &str, lsp: &str, mac: Mac, ip: Ipv4Addr) {
    let addr = format!("{} {ip}", mac_str(&mac));
    nb.nbctl(&[
        "lsp-add",
        ls,
        lsp,
        "--",
        "lsp-set-addresses",
        lsp,
        &addr,
        "--",
        "lsp-set-port-security",
        lsp,
        &addr,
    ]);
}

/// Binds logical port `lsp` (10.0.`net`.`i`) to a new VIF on `ch`, waits until it is installed
/// and, when `gateway` is set, gives it a default route via 10.0.`net`.254.
pub fn vif(ch: &Chassis, lsp: &str, net: u8, i: u8, gateway: bool) -> Vif {
    let v = ch.add_vif(lsp, vm_mac(net, i), vm_ip(net, i));
    ch.wait_installed(&v);
    if gateway {
        v.ns.ip(&format!("route add default via {}", gw_ip(net)));
    }
    v
}

/// A port group holding `ports` (ACLs on it apply to each).
pub fn pg_add(nb: &Central, pg: &str, ports: &[&str]) {
    let mut args = vec!["pg-add", pg];
    args.extend_from_slice(ports);
    nb.nbctl(&args);
}

/// An ACL: `dir` is `to-lport` or `from-lport`, `verdict` one of OVN's (`allow-related`,
/// `allow`, `drop`, `reject`, ...); `on` a switch or a port group.
pub fn acl_add(nb: &Central, on: &str, dir: &str, priority: u16, m: &str, verdict: &str) {
    nb.nbctl(&["acl-add", on, dir, &priority.to_string(), m, verdict]);
}

/// A load balancer `name` for `proto` (`tcp`/`udp`) from `vip` to `backends`, applied to each
/// switch of `switches`.
pub fn lb_add(
    nb: &Central,
    name: &str,
    vip: SocketAddrV4,
    backends: &[SocketAddrV4],
    proto: &str,
    switches: &[&str],
) {
    let b: Vec<String> = backends.iter().map(|b| b.to_string()).collect();
    nb.nbctl(&["lb-add", name, &vip.to_string(), &b.join(","), proto]);
    for ls in switches {
        nb.nbctl(&["ls-lb-add", ls, name]);
    }
}

/// Adds router `lr` if missing and joins it to switch `ls` (subnet `net`): router port
/// `lr-ls` at 10.0.`net`.254/24 and its peer, the router-type switch port `ls-lr`.
pub fn lr_join(nb: &Central, lr: &str, ls: &str, net: u8) {
    nb.nbctl(&["--may-exist", "lr-add", lr]);
    let lrp = format!("{lr}-{ls}");
    let lsp = format!("{ls}-{lr}");
    nb.nbctl(&[
        "lrp-add",
        lr,
        &lrp,
        &mac_str(&gw_mac(net)),
        &format!("{}/24", gw_ip(net)),
    ]);
    let peer = format!("router-port={lrp}");
    nb.nbctl(&[
        "lsp-add",
        ls,
        &lsp,
        "--",
        "lsp-set-type",
        &lsp,
        "router",
        "--",
        "lsp-set-addresses",
        &lsp,
        "router",
        "--",
        "lsp-set-options",
        &lsp,
        &peer,
    ]);
}

/// The "external" network of [`external_gateway`]: a namespace standing for the physical
/// network's next hop, attached to the chassis' provider bridge.
pub struct External {
    _veth: Veth,
    pub ns: Netns,
    /// The interface in `ns`.
    pub ifname: String,
    /// The next hop's address (in `ns`).
    pub ip: Ipv4Addr,
    /// The router's address on the external network.
    pub router_ip: Ipv4Addr,
}

/// The external network: 172.16.0.0/24, router at .1, next hop (the namespace) at .254.
pub const EXT_ROUTER_IP: Ipv4Addr = Ipv4Addr::new(172, 16, 0, 1);
pub const EXT_HOP_IP: Ipv4Addr = Ipv4Addr::new(172, 16, 0, 254);

/// Gives router `lr` a distributed gateway port `lr-ext` (172.16.0.1/24, gateway chassis
/// `lab.chassis[ch]`) on switch `ext`, whose localnet port (network `physnet1`) reaches the
/// provider bridge `br-ex` of every chassis (`ovn-bridge-mappings=physnet1:br-ex`); a default
/// route via 172.16.0.254; and on chassis `ch` a namespace at 172.16.0.254 plugged into br-ex.
/// The namespace has no route back to the logical subnets: only NAT makes their traffic
/// answerable, as on a real provider network.
pub fn external_gateway(lab: &OvnLab, lr: &str, ch: usize) -> External {
    let nb = &lab.central;
    let gw = &lab.chassis[ch];
    let lrp = format!("{lr}-ext");
    nb.nbctl(&[
        "lrp-add",
        lr,
        &lrp,
        "02:00:00:00:ff:01",
        &format!("{EXT_ROUTER_IP}/24"),
    ]);
    nb.nbctl(&["lrp-set-gateway-chassis", &lrp, &gw.name, "10"]);
    // one transaction each, so ovn-controller never sees a localnet port without its network
    // (it logs an error) or a router port without its peer
    let lsp = format!("ext-{lr}");
    let peer = format!("router-port={lrp}");
    nb.nbctl(&[
        "ls-add",
        "ext",
        "--",
        "lsp-add",
        "ext",
        &lsp,
        "--",
        "lsp-set-type",
        &lsp,
        "router",
        "--",
        "lsp-set-addresses",
        &lsp,
        "router",
        "--",
        "lsp-set-options",
        &lsp,
        &peer,
    ]);
    nb.nbctl(&[
        "lsp-add",
        "ext",
        "ext-ln",
        "--",
        "lsp-set-type",
        "ext-ln",
        "localnet",
        "--",
        "lsp-set-addresses",
        "ext-ln",
        "unknown",
        "--",
        "lsp-set-options",
        "ext-ln",
        "network_name=physnet1",
    ]);
    nb.nbctl(&["lr-route-add", lr, "0.0.0.0/0", &EXT_HOP_IP.to_string()]);
    for c in &lab.chassis {
        c.vsctl(&[
            "--may-exist",
            "add-br",
            "br-ex",
            "--",
            "set",
            "bridge",
            "br-ex",
            "datapath_type=netdev",
        ]);
        c.vsctl(&[
            "set",
            "Open_vSwitch",
            ".",
            "external_ids:ovn-bridge-mappings=physnet1:br-ex",
        ]);
    }
    let ns = Netns::new("x");
    let base = unique("");
    let (ifname, port) = (format!("{base}i"), format!("{base}o"));
    let veth = Veth::new(&ifname, &ns, &port, &gw.ns);
    ns.ip(&format!(
        "link set {ifname} address 0a:00:00:00:ff:fe mtu 1400"
    ));
    ns.ip(&format!("addr add {EXT_HOP_IP}/24 dev {ifname}"));
    ns.ip(&format!("link set {ifname} up"));
    let _ = ns.try_run(&format!("ethtool -K {ifname} tx off"));
    gw.ns.ip(&format!("link set {port} mtu 1400 up"));
    gw.vsctl(&["add-port", "br-ex", &port]);
    // ovn-controller patches br-int to br-ex once it sees the mapping
    wait_for(
        &format!("{}: the localnet patch port to br-ex", gw.name),
        WAIT,
        || {
            gw.revive_controller();
            let ports = gw.vsctl(&["--no-wait", "list-ports", "br-ex"]);
            if ports.lines().any(|p| p.starts_with("patch-")) {
                Ok(())
            } else {
                Err(ports)
            }
        },
    );
    External {
        _veth: veth,
        ns,
        ifname,
        ip: EXT_HOP_IP,
        router_ip: EXT_ROUTER_IP,
    }
}

/// SNAT of `internal` (a CIDR) to `external_ip` on router `lr`.
pub fn snat_add(nb: &Central, lr: &str, external_ip: Ipv4Addr, internal: &str) {
    nb.nbctl(&["lr-nat-add", lr, "snat", &external_ip.to_string(), internal]);
}
