//! Runtime reconfiguration: adding and removing ports while the switch forwards.
//!
//! This is the API the OVSDB reconciler will drive; today the control socket exposes it
//! (`dpif/add-port`, `dpif/del-port`).
//!
//! PMD handshake: the control thread builds a new port's sockets (and the UMEM they own) the
//! same way as at start ([`PmdBuilder::add_queue`]: zero-copy or copy, native or generic), then
//! hands them to the chosen PMDs in a [`Reconf`] request (a mutex-guarded queue the PMD checks
//! with one atomic load per round, next to the other control requests) and waits for each PMD
//! to acknowledge. Removal goes the other way: the port leaves the published configuration
//! (no new translation outputs to it, cached flows are invalidated), its XDP program is
//! detached, and each PMD closes the port's sockets itself and acknowledges; the PMD owns what
//! it polls, so nothing can be freed under it, and the control thread only reports success,
//! flushes MAC entries and reuses the port number once every PMD has let go. Other ports'
//! sockets and frames are not touched, so their traffic goes on.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tracing::{info, warn};

use crate::config::{FailMode, PortConfig};
use crate::daemon::{BridgeState, PortState, State};
use crate::packet::Mac;
use crate::pipeline::tables::BridgeTables;
use crate::pipeline::{DpPort, MAX_PORTS};
use crate::pmd::{PmdBuilder, PortPart, Reconf};
use crate::port::{LocalPort, OwnedDev, TapPort, XdpPort};

/// What to add: the interface, its options, and optionally the OpenFlow port number wanted.
#[derive(Clone, Debug)]
pub struct PortSpec {
    pub config: PortConfig,
    pub ofport_request: Option<u32>,
}

/// Why a port could not be added or removed.
#[derive(Debug, thiserror::Error)]
pub enum ReconfError {
    #[error("no bridge named {0}")]
    NoBridge(String),
    #[error("{0}: interface does not exist")]
    NoInterface(String),
    #[error("{port}: already a port of bridge {bridge}")]
    PortExists { port: String, bridge: String },
    #[error("{port}: not a port of bridge {bridge}")]
    NoPort { port: String, bridge: String },
    #[error("{port}: OpenFlow port {ofport} is already taken by {by} on bridge {bridge}")]
    OfportTaken {
        port: String,
        ofport: u32,
        by: String,
        bridge: String,
    },
    #[error("{port}: OpenFlow port number {ofport} is out of range (1-65279)")]
    OfportRange { port: String, ofport: u32 },
    #[error("{0}: at most {MAX_PORTS} ports")]
    TooManyPorts(String),
    #[error(transparent)]
    Port(#[from] crate::port::PortError),
    #[error("{0}")]
    Patch(String),
    #[error("bridge {0} already exists")]
    BridgeExists(String),
    #[error("{0:?} is not a valid bridge name (1 to 15 bytes, no '/')")]
    BadBridgeName(String),
    #[error("{0}: at most {MAX_BRIDGES} bridges")]
    TooManyBridges(String),
    #[error("bridge {bridge}: {msg}")]
    Bridge { bridge: String, msg: String },
}

/// Highest OpenFlow port number a physical port may have (OFPP_MAX).
const OFPP_MAX: u32 = 0xff00;
/// How long to wait for PMDs to apply a change before going on without their word.
const ACK_TIMEOUT: Duration = Duration::from_secs(2);

impl State {
    /// Adds interface `spec` to bridge `bridge` while the switch runs, returning its OpenFlow
    /// port number.
    pub fn add_port(&mut self, bridge: &str, spec: PortSpec) -> Result<u32, ReconfError> {
        let name = spec.config.name.clone();
        if let Some((kind, cfg)) = spec.config.tunnel.clone() {
            return self.add_tunnel_port(bridge, &name, kind, cfg, spec.ofport_request);
        }
        if let Some(peer) = spec.config.patch.clone() {
            return self.add_patch_port(bridge, &name, &peer, spec.ofport_request);
        }
        let bi = self.bridge_index(bridge)?;
        self.check_free_name(&name)?;
        let ofport = self.pick_ofport(bi, &name, spec.ofport_request)?;
        self.attach_port(bi, name, spec.config, ofport, None)
    }

    /// Adds a `type=internal` interface: the bridge's LOCAL port when it is named like the
    /// bridge, else another host interface on the bridge (a veth pair as for LOCAL, see
    /// [`crate::port::local`]). The switch creates the interface and removes it with the port.
    pub fn add_internal_port(
        &mut self,
        bridge: &str,
        name: &str,
        ofport_request: Option<u32>,
    ) -> Result<u32, ReconfError> {
        let bi = self.bridge_index(bridge)?;
        self.check_free_name(name)?;
        let ofport = if name == bridge {
            openflow::action::ports::LOCAL
        } else {
            self.pick_ofport(bi, name, ofport_request)?
        };
        let lp = LocalPort::create(name)?;
        let pc = lp.peer_config();
        self.attach_port(
            bi,
            name.to_string(),
            pc,
            ofport,
            Some(OwnedDev::Internal(lp)),
        )
    }

    /// Adds a `type=tap` interface: the switch creates the tap (see [`crate::port::tap`]).
    pub fn add_tap_port(
        &mut self,
        bridge: &str,
        name: &str,
        ofport_request: Option<u32>,
    ) -> Result<u32, ReconfError> {
        let bi = self.bridge_index(bridge)?;
        self.check_free_name(name)?;
        let ofport = self.pick_ofport(bi, name, ofport_request)?;
        let tap = TapPort::create(name)?;
        let pc = PortConfig {
            name: name.to_string(),
            xdp_mode: crate::config::XdpMode::BestEffort,
            csum_complete: None,
            tunnel: None,
            patch: None,
        };
        self.attach_port(bi, name.to_string(), pc, ofport, Some(OwnedDev::Tap(tap)))
    }

    /// Adds a `type=patch` interface whose peer is interface `peer` (OVS's patch ports): no
    /// device, no socket. Output to it continues translation in the peer's bridge, from the
    /// peer's OpenFlow port, within the same datapath flow (see the pipeline's patch output).
    /// It is down until the peer exists and names this port back.
    pub fn add_patch_port(
        &mut self,
        bridge: &str,
        name: &str,
        peer: &str,
        ofport_request: Option<u32>,
    ) -> Result<u32, ReconfError> {
        let bi = self.bridge_index(bridge)?;
        self.check_free_name(name)?;
        let peer = crate::config::check_patch_peer(name, Some(peer)).map_err(ReconfError::Patch)?;
        let ofport = self.pick_ofport(bi, name, ofport_request)?;
        let dp = (0..MAX_PORTS as DpPort)
            .find(|&d| !self.ports.iter().any(|p| p.dp == d))
            .ok_or_else(|| ReconfError::TooManyPorts(name.to_string()))?;
        let mut port = PortState {
            name: name.to_string(),
            dp,
            ofport,
            bridge: bi as u8,
            mac: None,
            xdp: None,
            tunnel: None,
            patch: Some(peer.clone()),
            admin_up: true,
            carrier: false,
            of_config: 0,
            dev: None,
        };
        // announced up at once when the pair is complete (the peer's change goes out as a
        // PORT_STATUS modify from the publish)
        port.carrier = self.patch_peer(&port).is_some();
        info!(port = name, bridge, ofport, dp, peer = %peer, linked = port.carrier, "patch port added");
        self.ports.push(port);
        self.bridges[bi].ports.push(self.ports.len() - 1);
        self.publish();
        crate::ofproto::port_status(self, bi, ofport, 0); // OFPPR_ADD
        Ok(ofport)
    }

    pub(crate) fn bridge_index(&self, bridge: &str) -> Result<usize, ReconfError> {
        self.bridges
            .iter()
            .position(|b| b.name == bridge && !b.name.is_empty())
            .ok_or_else(|| ReconfError::NoBridge(bridge.to_string()))
    }

    fn check_free_name(&self, name: &str) -> Result<(), ReconfError> {
        match self
            .ports
            .iter()
            .find(|p| p.iface() == name || p.name == name)
        {
            Some(p) => Err(ReconfError::PortExists {
                port: name.to_string(),
                bridge: self.bridges[p.bridge as usize].name.clone(),
            }),
            None => Ok(()),
        }
    }

    /// Opens interface `config` as port `ofport` of bridge `bi`, shown as `name`, and hands
    /// its sockets to the PMDs.
    fn attach_port(
        &mut self,
        bi: usize,
        name: String,
        config: PortConfig,
        ofport: u32,
        dev: Option<OwnedDev>,
    ) -> Result<u32, ReconfError> {
        let bridge = self.bridges[bi].name.clone();
        let spec = PortSpec {
            config,
            ofport_request: None,
        };
        let iface = spec.config.name.clone();
        let dp = (0..MAX_PORTS as DpPort)
            .find(|&d| !self.ports.iter().any(|p| p.dp == d))
            .ok_or_else(|| ReconfError::TooManyPorts(name.clone()))?;
        if afxdp::netdev::ifindex(&iface).is_err() {
            return Err(ReconfError::NoInterface(iface));
        }
        let mut xdp = XdpPort::open(&spec.config)?;
        xdp.attach()?;
        // a socket of this interface closed a moment ago (the port was just removed) releases
        // its queue in the kernel a little later: bind says EBUSY until then
        let mut tries = 0;
        let (builders, owner) = loop {
            match self.build_sockets(&mut xdp, dp) {
                Ok(b) => break b,
                Err(e) => {
                    self.forget_rxqs(&iface);
                    xdp.sockets.clear();
                    let busy = matches!(&e, crate::port::PortError::Xdp { source, .. }
                        if source.errno() == Some(libc::EBUSY));
                    tries += 1;
                    if !busy || tries >= 50 {
                        xdp.detach();
                        return Err(e.into());
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
        };
        let parts: Vec<Option<PortPart>> = builders
            .into_iter()
            .map(|b| b.map(PmdBuilder::into_part))
            .collect();
        self.reconf_pmds(
            parts
                .into_iter()
                .map(|part| Reconf::AddPort { dp, part, owner }),
        );
        let (admin_up, carrier) = afxdp::netdev::link_state(&name);
        let mode = xdp.attach_mode.map(|m| m.as_str()).unwrap_or("none");
        info!(port = %name, bridge = %bridge, ofport, dp, mode, "port added");
        self.ports.push(PortState {
            name: name.clone(),
            dp,
            ofport,
            bridge: bi as u8,
            mac: afxdp::netdev::mac(&name).map(Mac),
            xdp: Some(xdp),
            tunnel: None,
            patch: None,
            admin_up,
            carrier,
            of_config: 0,
            dev,
        });
        self.bridges[bi].ports.push(self.ports.len() - 1);
        self.publish();
        crate::ofproto::port_status(self, bi, ofport, 0); // OFPPR_ADD
        Ok(ofport)
    }

    /// Removes interface `name` from bridge `bridge`. Flows that name its port number stay
    /// (as in OVS); MAC entries learnt on it go.
    pub fn del_port(&mut self, bridge: &str, name: &str) -> Result<(), ReconfError> {
        let bi = self.bridge_index(bridge)?;
        let pi = self
            .ports
            .iter()
            .position(|p| p.bridge as usize == bi && (p.name == name || p.iface() == name))
            .ok_or_else(|| ReconfError::NoPort {
                port: name.to_string(),
                bridge: bridge.to_string(),
            })?;
        let ofport = self.ports[pi].ofport;
        // described while it still exists
        crate::ofproto::port_status(self, bi, ofport, 1); // OFPPR_DELETE
        let mut port = self.ports.remove(pi);
        for b in &mut self.bridges {
            b.ports.retain(|&i| i != pi);
            for i in &mut b.ports {
                if *i > pi {
                    *i -= 1;
                }
            }
        }
        // no translation outputs to it any more, cached flows go
        self.publish();
        let dp = port.dp;
        let Some(xdp) = port.xdp.as_mut() else {
            // a tunnel or patch port: no socket, no PMD holds anything of it
            self.shared
                .macs
                .flush(|e| e.bridge as usize == bi && e.port == dp);
            self.shared.invalidate();
            let kind = if port.patch.is_some() {
                "patch"
            } else {
                "tunnel"
            };
            info!(port = %name, bridge, ofport, dp, "{kind} port removed");
            return Ok(());
        };
        xdp.detach();
        let iface = xdp.name.clone();
        let n = self.pmds.len();
        self.reconf_pmds((0..n).map(|_| Reconf::DelPort { dp }));
        self.forget_rxqs(&iface);
        self.shared
            .macs
            .flush(|e| e.bridge as usize == bi && e.port == dp);
        for h in &self.pmds {
            h.ports[dp as usize].clear();
        }
        self.shared.invalidate();
        info!(port = %name, bridge, ofport, dp, "port removed");
        drop(port);
        Ok(())
    }

    /// Whether a port of bridge `bridge` holds OpenFlow port number `ofport`.
    pub(crate) fn ofport_taken(&self, bridge: &str, ofport: u32) -> bool {
        let Ok(bi) = self.bridge_index(bridge) else {
            return false;
        };
        self.ports
            .iter()
            .any(|p| p.bridge as usize == bi && p.ofport == ofport)
    }

    /// The OpenFlow port number for a new port `name` of bridge `bi`: the one requested (an
    /// error if it is out of range or taken), else the lowest free one.
    pub(crate) fn pick_ofport(
        &self,
        bi: usize,
        name: &str,
        ofport_request: Option<u32>,
    ) -> Result<u32, ReconfError> {
        let bridge = &self.bridges[bi].name;
        Ok(match ofport_request {
            Some(of) if of == 0 || of >= OFPP_MAX => {
                return Err(ReconfError::OfportRange {
                    port: name.to_string(),
                    ofport: of,
                })
            }
            Some(of) => {
                if let Some(p) = self
                    .ports
                    .iter()
                    .find(|p| p.bridge as usize == bi && p.ofport == of)
                {
                    return Err(ReconfError::OfportTaken {
                        port: name.to_string(),
                        ofport: of,
                        by: p.iface().to_string(),
                        bridge: bridge.to_string(),
                    });
                }
                of
            }
            None => (1..OFPP_MAX)
                .find(|&of| {
                    !self
                        .ports
                        .iter()
                        .any(|p| p.bridge as usize == bi && p.ofport == of)
                })
                .ok_or_else(|| ReconfError::TooManyPorts(name.to_string()))?,
        })
    }

    /// Opens `xdp`'s sockets, its queues spread over the least loaded PMDs, one builder per
    /// PMD that got any; also names the PMD holding queue 0. On error the sockets built so far
    /// close with their builders.
    #[allow(clippy::type_complexity)]
    fn build_sockets(
        &self,
        xdp: &mut XdpPort,
        dp: DpPort,
    ) -> Result<(Vec<Option<PmdBuilder>>, Option<usize>), crate::port::PortError> {
        let n = self.pmds.len();
        let mut load: Vec<usize> = self
            .pmds
            .iter()
            .map(|h| h.rxqs.lock().map(|v| v.len()).unwrap_or(0))
            .collect();
        let mut builders: Vec<Option<PmdBuilder>> = (0..n).map(|_| None).collect();
        let mut owner = None;
        for q in 0..xdp.queues {
            let i = (0..n).min_by_key(|&i| (load[i], i)).unwrap_or(0);
            load[i] += 1;
            if q == 0 {
                owner = Some(i);
            }
            let b = builders[i].get_or_insert_with(|| {
                let frames = (self.cfg.ring_size * 3)
                    .clamp(4096, 262_144)
                    .next_power_of_two();
                PmdBuilder::new(
                    self.pmds[i].clone(),
                    self.shared.clone(),
                    frames,
                    self.cfg.frame_size,
                    self.cfg.ring_size,
                    self.cfg.batch,
                )
            });
            b.add_queue(xdp, dp, q, true)?;
        }
        Ok((builders, owner))
    }

    /// Queues one request per PMD (in PMD order), wakes them and waits until each applied it.
    fn reconf_pmds(&mut self, ops: impl Iterator<Item = Reconf>) {
        let mut want = Vec::new();
        for (h, op) in self.pmds.iter().zip(ops) {
            if let Ok(mut v) = h.reconf.lock() {
                v.push(op);
            }
            let r = h.reconf_req.fetch_add(1, Ordering::AcqRel) + 1;
            want.push(r);
            h.waker.wake();
        }
        let t0 = Instant::now();
        for (h, r) in self.pmds.iter().zip(want) {
            while h.reconf_done.load(Ordering::Acquire) < r {
                if t0.elapsed() > ACK_TIMEOUT {
                    warn!(pmd = h.id, "PMD did not apply a port change in time");
                    break;
                }
                h.waker.wake();
                std::thread::sleep(Duration::from_micros(100));
            }
        }
    }

    /// Drops a port's queues from the PMDs' display lists.
    fn forget_rxqs(&self, name: &str) {
        for h in &self.pmds {
            if let Ok(mut v) = h.rxqs.lock() {
                v.retain(|(n, _, _)| n != name);
            }
        }
    }

    /// Creates bridge `spec` while the switch runs (its OpenFlow listener RUNDIR/NAME.mgmt,
    /// empty tables, `priority=0 actions=NORMAL` when standalone) and returns its index. Its
    /// LOCAL port is added separately ([`State::add_internal_port`] with the bridge's name), as
    /// in OVSDB, where it is an ordinary `type=internal` interface.
    pub fn add_bridge(&mut self, spec: BridgeSpec) -> Result<usize, ReconfError> {
        if self.bridges.iter().any(|b| b.name == spec.name) {
            return Err(ReconfError::BridgeExists(spec.name));
        }
        if spec.name.is_empty() || spec.name.len() > 15 || spec.name.contains('/') {
            return Err(ReconfError::BadBridgeName(spec.name));
        }
        let bi = match self.bridges.iter().position(|b| b.name.is_empty()) {
            Some(i) => i,
            None if self.bridges.len() < MAX_BRIDGES => {
                self.bridges.push(BridgeState {
                    name: String::new(),
                    ports: Vec::new(),
                    mac_aging: 300,
                    controllers: Vec::new(),
                });
                self.bridges.len() - 1
            }
            None => return Err(ReconfError::TooManyBridges(spec.name)),
        };
        self.bridges[bi] = BridgeState {
            name: spec.name.clone(),
            ports: Vec::new(),
            mac_aging: spec.mac_aging,
            controllers: spec.controllers.clone(),
        };
        let mut bt = BridgeTables::new(&spec.name, bi as u8, spec.datapath_id);
        if spec.fail_mode == FailMode::Standalone {
            bt.add_normal_flow(0);
        }
        let p = self.pipeline_mut();
        if bi < p.bridges.len() {
            p.bridges[bi] = Arc::new(bt);
        } else {
            while p.bridges.len() < bi {
                p.bridges
                    .push(Arc::new(BridgeTables::new("", p.bridges.len() as u8, 0)));
            }
            p.bridges.push(Arc::new(bt));
        }
        while self.ofproto.extra.len() <= bi {
            self.ofproto.extra.push(Default::default());
        }
        self.ofproto.extra[bi] = Default::default();
        if let Err(e) = crate::daemon::open_bridge_listeners(self, bi, &spec.name, &spec.listen) {
            crate::daemon::close_bridge_listeners(self, bi);
            self.bridges[bi].name.clear();
            return Err(ReconfError::Bridge {
                bridge: spec.name,
                msg: e.to_string(),
            });
        }
        self.publish();
        info!(bridge = %spec.name, index = bi, fail_mode = ?spec.fail_mode, "bridge added");
        Ok(bi)
    }

    /// Applies a changed `fail_mode` to a running bridge: standalone gets the
    /// `priority=0 actions=NORMAL` flow (unless table 0 already has a catch-all), secure loses
    /// it. Other flows are untouched.
    pub fn set_fail_mode(&mut self, name: &str, mode: FailMode) -> Result<(), ReconfError> {
        let bi = self.bridge_index(name)?;
        let p = self.pipeline_mut();
        let bt = Arc::make_mut(&mut p.bridges[bi]);
        let changed = match mode {
            FailMode::Standalone if !bt.has_catch_all() => {
                bt.add_normal_flow(0);
                true
            }
            FailMode::Secure => bt.remove_normal_flow(),
            _ => false,
        };
        if changed {
            self.publish();
            info!(bridge = name, fail_mode = ?mode, "fail mode changed");
        }
        Ok(())
    }

    /// Deletes bridge `name`: its ports (and the devices the switch made for them), tables,
    /// listeners and OpenFlow connections, MAC entries.
    pub fn del_bridge(&mut self, name: &str) -> Result<(), ReconfError> {
        let bi = self.bridge_index(name)?;
        let ports: Vec<String> = self.bridges[bi]
            .ports
            .iter()
            .map(|&pi| self.ports[pi].name.clone())
            .collect();
        for p in ports {
            if let Err(e) = self.del_port(name, &p) {
                warn!(bridge = name, port = %p, error = %e, "cannot remove port of deleted bridge");
            }
        }
        crate::daemon::close_bridge_listeners(self, bi);
        let p = self.pipeline_mut();
        p.bridges[bi] = Arc::new(BridgeTables::new("", bi as u8, 0));
        self.ofproto.extra[bi] = Default::default();
        self.bridges[bi] = BridgeState {
            name: String::new(),
            ports: Vec::new(),
            mac_aging: 300,
            controllers: Vec::new(),
        };
        self.shared.macs.flush(|e| e.bridge as usize == bi);
        self.publish();
        info!(bridge = name, "bridge deleted");
        Ok(())
    }
}

/// A bridge to create at runtime.
#[derive(Clone, Debug)]
pub struct BridgeSpec {
    pub name: String,
    pub fail_mode: FailMode,
    pub mac_aging: u32,
    pub datapath_id: u64,
    /// `ptcp:` listeners besides RUNDIR/NAME.mgmt.
    pub listen: Vec<String>,
    /// Active controller targets (`tcp:IP:PORT`).
    pub controllers: Vec<String>,
}

/// How many bridges one daemon serves (bridge indices are a byte in the fast path).
pub const MAX_BRIDGES: usize = 64;
