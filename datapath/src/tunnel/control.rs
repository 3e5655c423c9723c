//! The control thread's side of tunnelling: tunnel ports added and removed at runtime, the
//! routing table and LOCAL port addresses read from the kernel, the neighbour cache (snooped
//! entries, static ones from `tnl/neigh/set`, aging), ARP requests on a miss, the snapshot
//! translation reads, and the `tnl/...` and `ovs/route/show` commands.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tracing::{debug, info, warn};

use super::{ip_str, Event, LocalIf, Mailbox, Route, Tlv0, TnlPort, TnlSnapshot};
use crate::daemon::{PortState, State};
use crate::packet::{ethertype, Mac};
use crate::pipeline::{DpPort, MAX_PORTS};
use crate::port::{TunnelConfig, TunnelKind};
use crate::reconf::ReconfError;

/// How long a snooped neighbour lives without being seen again (OVS: 15 minutes).
pub const NEIGH_AGING: Duration = Duration::from_secs(15 * 60);
/// At most one ARP request per next hop per this long (OVS: retrans_time 1000 ms).
const ARP_RETRANS: Duration = Duration::from_millis(1000);

#[derive(Clone, Debug)]
pub struct NeighEntry {
    pub mac: Mac,
    pub bridge: String,
    /// Set by `tnl/neigh/set`: never ages.
    pub static_: bool,
    pub seen: Instant,
}

/// Tunnel state owned by the control thread.
#[derive(Default)]
pub struct TnlState {
    pub routes: Vec<Route>,
    /// (ifindex, address) of every IPv4 address in the namespace.
    pub addrs: Vec<(u32, u32)>,
    pub neigh: BTreeMap<u32, NeighEntry>,
    pub mail: Arc<Mailbox>,
    arp_sent: HashMap<u32, Instant>,
    pub arp_requests: u64,
}

impl State {
    /// Adds tunnel port `name` of kind `kind` to bridge `bridge` while the switch runs and
    /// returns its OpenFlow port number. A tunnel port has no interface and no socket: no PMD
    /// needs to hear of it, only the published configuration changes.
    pub fn add_tunnel_port(
        &mut self,
        bridge: &str,
        name: &str,
        kind: TunnelKind,
        cfg: TunnelConfig,
        ofport_request: Option<u32>,
    ) -> Result<u32, ReconfError> {
        let bi = self
            .bridges
            .iter()
            .position(|b| b.name == bridge)
            .ok_or_else(|| ReconfError::NoBridge(bridge.to_string()))?;
        if let Some(p) = self.ports.iter().find(|p| p.name == name) {
            return Err(ReconfError::PortExists {
                port: name.to_string(),
                bridge: self.bridges[p.bridge as usize].name.clone(),
            });
        }
        let ofport = self.pick_ofport(bi, name, ofport_request)?;
        let dp = (0..MAX_PORTS as DpPort)
            .find(|&d| !self.ports.iter().any(|p| p.dp == d))
            .ok_or_else(|| ReconfError::TooManyPorts(name.to_string()))?;
        if !cfg.ignored.is_empty() {
            warn!(port = name, options = ?cfg.ignored, "tunnel options not supported; ignored");
        }
        info!(port = name, bridge, ofport, dp, options = %cfg.describe(), "tunnel port added");
        self.ports.push(PortState {
            name: name.to_string(),
            dp,
            ofport,
            bridge: bi as u8,
            mac: None,
            xdp: None,
            tunnel: Some((kind, cfg)),
            patch: None,
            admin_up: true,
            carrier: true,
            of_config: 0,
            dev: None,
        });
        self.bridges[bi].ports.push(self.ports.len() - 1);
        self.publish();
        crate::ofproto::port_status(self, bi, ofport, 0); // OFPPR_ADD
        Ok(ofport)
    }

    /// The tunnel snapshot translation reads (built with every configuration publish).
    pub(crate) fn tnl_snapshot(&self) -> Arc<TnlSnapshot> {
        let t = &self.tnl;
        let ports = self
            .ports
            .iter()
            .filter_map(|p| {
                let (kind, cfg) = p.tunnel.clone()?;
                Some(TnlPort {
                    dp: p.dp,
                    ofport: p.ofport,
                    bridge: p.bridge,
                    name: p.name.clone(),
                    kind,
                    cfg,
                })
            })
            .collect();
        let locals = self
            .ports
            .iter()
            .filter(|p| p.ofport == openflow::action::ports::LOCAL && p.xdp.is_some())
            .filter_map(|p| {
                let ifindex = afxdp::netdev::ifindex(&p.name).ok()?;
                Some(LocalIf {
                    bridge: p.bridge,
                    dp: p.dp,
                    name: p.name.clone(),
                    ifindex,
                    mac: p.mac.unwrap_or_default(),
                    addrs: t
                        .addrs
                        .iter()
                        .filter(|(i, _)| *i == ifindex)
                        .map(|(_, a)| *a)
                        .collect(),
                    mtu: afxdp::netdev::mtu(&p.name).unwrap_or(1500),
                })
            })
            .collect();
        let tlv0 = (0..self.bridges.len())
            .map(|b| {
                self.ofproto
                    .extra
                    .get(b)
                    .and_then(|e| e.tlv.iter().find(|m| m.index == 0))
                    .map(|m| Tlv0 {
                        class: m.option_class,
                        typ: m.option_type,
                        len: m.option_len,
                    })
            })
            .collect();
        Arc::new(TnlSnapshot {
            ports,
            routes: t.routes.clone(),
            locals,
            neigh: t.neigh.iter().map(|(ip, e)| (*ip, e.mac)).collect(),
            tlv0,
            mail: t.mail.clone(),
        })
    }

    /// Re-reads routes and addresses (every second) and ages neighbours; republishes when
    /// anything translation depends on changed.
    pub fn refresh_tunnels(&mut self) {
        let mut changed = false;
        match afxdp::netlink::ipv4_routes() {
            Ok(rs) => {
                let routes: Vec<Route> = rs
                    .into_iter()
                    .map(|r| Route {
                        dst: u32::from(Ipv4Addr::from(r.dst)),
                        plen: r.prefix_len,
                        gw: r.gateway.map(|g| u32::from(Ipv4Addr::from(g))),
                        ifindex: r.oif,
                        dev: ifname(r.oif),
                        prefsrc: r.prefsrc.map(|g| u32::from(Ipv4Addr::from(g))),
                        priority: r.priority,
                    })
                    .collect();
                if routes != self.tnl.routes {
                    debug!(routes = routes.len(), "routing table changed");
                    self.tnl.routes = routes;
                    changed = true;
                }
            }
            Err(e) => warn!(error = %e, "cannot read the routing table"),
        }
        match afxdp::netlink::ipv4_addrs() {
            Ok(a) => {
                let addrs: Vec<(u32, u32)> = a
                    .into_iter()
                    .map(|a| (a.ifindex, u32::from(Ipv4Addr::from(a.addr))))
                    .collect();
                if addrs != self.tnl.addrs {
                    self.tnl.addrs = addrs;
                    changed = true;
                }
            }
            Err(e) => warn!(error = %e, "cannot read interface addresses"),
        }
        let before = self.tnl.neigh.len();
        self.tnl
            .neigh
            .retain(|_, e| e.static_ || e.seen.elapsed() < NEIGH_AGING);
        if self.tnl.neigh.len() != before {
            changed = true;
        }
        self.tnl
            .arp_sent
            .retain(|_, t| t.elapsed() < Duration::from_secs(10));
        if changed {
            self.publish();
        }
    }

    /// Takes the PMDs' neighbour events: learns snooped entries, sends ARP requests for
    /// misses. Called on every pass of the control loop (cheap when nothing was posted).
    pub fn tunnel_events(&mut self) {
        let mut events = Vec::new();
        self.tnl.mail.drain(|e| events.push(e));
        let mut changed = false;
        for e in events {
            match e {
                Event::Snoop { bridge, ip, mac } => {
                    let br = self
                        .bridges
                        .get(bridge as usize)
                        .map(|b| b.name.clone())
                        .unwrap_or_default();
                    match self.tnl.neigh.get_mut(&ip) {
                        Some(n) if n.mac == mac && n.bridge == br => n.seen = Instant::now(),
                        Some(n) if n.static_ => {}
                        _ => {
                            info!(ip = %ip_str(ip), %mac, bridge = %br, "tunnel neighbour learnt");
                            self.tnl.neigh.insert(
                                ip,
                                NeighEntry {
                                    mac,
                                    bridge: br,
                                    static_: false,
                                    seen: Instant::now(),
                                },
                            );
                            changed = true;
                        }
                    }
                }
                Event::Miss { bridge, ip, src } => {
                    if self.tnl.neigh.contains_key(&ip) {
                        continue;
                    }
                    let due = self
                        .tnl
                        .arp_sent
                        .get(&ip)
                        .is_none_or(|t| t.elapsed() >= ARP_RETRANS);
                    if due {
                        self.tnl.arp_sent.insert(ip, Instant::now());
                        self.send_arp_request(bridge, ip, src);
                    }
                }
            }
        }
        if changed {
            self.publish();
        }
    }

    /// Sends "who has `ip`, tell `src`" from bridge `bridge`'s LOCAL port through that
    /// bridge's pipeline (as OVS's tnl_send_arp_request: output to TABLE, in_port LOCAL).
    fn send_arp_request(&mut self, bridge: u8, ip: u32, src: u32) {
        let Some(lp) = self.ports.iter().find(|p| {
            p.bridge == bridge && p.ofport == openflow::action::ports::LOCAL && p.xdp.is_some()
        }) else {
            return;
        };
        let Some(mac) = lp.mac else {
            return;
        };
        let mut f = Vec::with_capacity(42);
        f.extend_from_slice(&[0xff; 6]);
        f.extend_from_slice(&mac.0);
        f.extend_from_slice(&ethertype::ARP.to_be_bytes());
        f.extend_from_slice(&[0, 1, 8, 0, 6, 4, 0, 1]);
        f.extend_from_slice(&mac.0);
        f.extend_from_slice(&src.to_be_bytes());
        f.extend_from_slice(&[0; 6]);
        f.extend_from_slice(&ip.to_be_bytes());
        debug!(ip = %ip_str(ip), bridge, "ARP request for a tunnel next hop");
        self.tnl.arp_requests += 1;
        crate::ofproto::pio::inject(self, bridge as usize, &f, openflow::action::ports::LOCAL);
    }

    /// `Interface.status` of a tunnel port: the interface and carrier of the route to its
    /// fixed remote end (as OVS's tunnel_egress_iface and tunnel_egress_iface_carrier).
    pub fn tunnel_status(&self, port_name: &str) -> Vec<(String, String)> {
        let Some(p) = self.ports.iter().find(|p| p.name == port_name) else {
            return Vec::new();
        };
        let Some((_, cfg)) = &p.tunnel else {
            return Vec::new();
        };
        let crate::port::tunnel::TunnelIp::Fixed(ip) = cfg.remote_ip else {
            return Vec::new();
        };
        let Some(r) = super::route_lookup(&self.tnl.routes, u32::from(ip)) else {
            return Vec::new();
        };
        let (_, carrier) = afxdp::netdev::link_state(&r.dev);
        vec![
            ("tunnel_egress_iface".into(), r.dev.clone()),
            (
                "tunnel_egress_iface_carrier".into(),
                if carrier { "up" } else { "down" }.into(),
            ),
        ]
    }

    // ------------------------------------------------------------------- commands

    /// `tnl/neigh/show` (and `tnl/arp/show`), OVS's format.
    pub fn tnl_neigh_show(&self) -> String {
        let mut s = String::from(
            "IP                                            MAC                 Bridge\n\
             ==========================================================================\n",
        );
        for (ip, e) in &self.tnl.neigh {
            let _ = write!(s, "{:<46}{}   {}", ip_str(*ip), e.mac, e.bridge);
            if !e.static_ && e.seen.elapsed() >= NEIGH_AGING {
                s.push_str(" STALE");
            }
            s.push('\n');
        }
        s
    }

    /// `tnl/neigh/flush`: forgets every entry (static ones too, as OVS does).
    pub fn tnl_neigh_flush(&mut self) -> String {
        self.tnl.neigh.clear();
        self.publish();
        "OK\n".into()
    }

    /// `tnl/neigh/set BRIDGE IP MAC`.
    pub fn tnl_neigh_set(&mut self, bridge: &str, ip: &str, mac: &str) -> Result<String, String> {
        if !self.bridges.iter().any(|b| b.name == bridge) {
            return Err(format!("no such bridge {bridge}"));
        }
        let ip: Ipv4Addr = ip.parse().map_err(|_| "bad IP address".to_string())?;
        let mac: Mac = mac.parse().map_err(|_| "bad MAC address".to_string())?;
        self.tnl.neigh.insert(
            u32::from(ip),
            NeighEntry {
                mac,
                bridge: bridge.to_string(),
                static_: true,
                seen: Instant::now(),
            },
        );
        self.publish();
        Ok("OK\n".into())
    }

    /// `tnl/ports/show`: the UDP ports tunnel packets are taken on, OVS's format.
    pub fn tnl_ports_show(&self) -> String {
        let mut by_port: BTreeMap<u16, usize> = BTreeMap::new();
        for p in &self.ports {
            if let Some((_, c)) = &p.tunnel {
                *by_port.entry(c.dst_port).or_default() += 1;
            }
        }
        let mut s = String::from("Listening ports:\n");
        for (port, n) in by_port {
            let _ = writeln!(s, "genev_sys_{port} ({port}) ref_cnt={n}");
        }
        s
    }

    /// `ovs/route/show`: the routes tunnels use, OVS's format.
    pub fn route_show(&self) -> String {
        let mut s = String::from("Route Table:\n");
        for (ifindex, a) in &self.tnl.addrs {
            let _ = writeln!(
                s,
                "Cached: {}/32 dev {} SRC {} local",
                ip_str(*a),
                ifname(*ifindex),
                ip_str(*a)
            );
        }
        let mut routes = self.tnl.routes.clone();
        routes.sort_by_key(|r| (std::cmp::Reverse(r.plen), r.priority));
        for r in &routes {
            let src = r
                .prefsrc
                .or_else(|| {
                    self.tnl
                        .addrs
                        .iter()
                        .find(|(i, _)| *i == r.ifindex)
                        .map(|(_, a)| *a)
                })
                .unwrap_or(0);
            let _ = write!(s, "Cached: {}/{} dev {}", ip_str(r.dst), r.plen, r.dev);
            if let Some(g) = r.gw {
                let _ = write!(s, " GW {}", ip_str(g));
            }
            let _ = writeln!(s, " SRC {}", ip_str(src));
        }
        s
    }
}

/// The name of interface `ifindex` (from sysfs), or `ifN` when it is gone.
fn ifname(ifindex: u32) -> String {
    if let Ok(rd) = std::fs::read_dir("/sys/class/net") {
        for e in rd.flatten() {
            let idx = std::fs::read_to_string(e.path().join("ifindex")).ok();
            if idx.and_then(|s| s.trim().parse::<u32>().ok()) == Some(ifindex) {
                return e.file_name().to_string_lossy().into_owned();
            }
        }
    }
    format!("if{ifindex}")
}
