//! The daemon: opens ports, builds and starts PMDs, then runs the control loop (control socket,
//! signals, link-state watch, MAC aging) until told to stop, and tears everything down.

use std::collections::HashMap;
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mio::net::UnixListener;
use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token};
use tracing::{debug, error, info, warn};

use crate::config::Config;
use crate::control::{self, commands, Conn};
use crate::ofproto::{self, conn::Stream, Listener, ListenerKind, Ofproto};
use crate::packet::Mac;
use crate::pipeline::tables::{BridgeTables, OfPort, Pipeline};
use crate::pipeline::{BridgeInfo, DpConfig, DpPort, PortInfo, MAX_PORTS};
use crate::pmd::{handoff, ExecJob, PinMeta, PmdBuilder, PmdHandle, Shared};
use crate::port::{LocalPort, OwnedDev, PortError, XdpPort};
use crate::stats::clock;

#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error(transparent)]
    Port(#[from] PortError),
    #[error(transparent)]
    Control(#[from] control::ControlError),
    #[error("{0}")]
    Setup(String),
}

pub struct PortState {
    pub dp: DpPort,
    /// The port's name for OpenFlow and the control socket, and the interface whose link state
    /// and address it shows: the AF_XDP interface, except for the LOCAL port, where it is the
    /// host's end of the pair (the bridge's name) while `xdp` is the daemon's end.
    pub name: String,
    pub ofport: u32,
    pub bridge: u8,
    /// The AF_XDP port; `None` for a tunnel or patch port, which have neither interface nor
    /// socket.
    pub xdp: Option<XdpPort>,
    /// The tunnel vport's kind and options.
    pub tunnel: Option<(crate::port::TunnelKind, crate::port::TunnelConfig)>,
    /// A patch port's peer interface. Its carrier is whether that peer exists and is a patch
    /// port naming this one back (see [`State::link_patches`]).
    pub patch: Option<String>,
    pub admin_up: bool,
    pub carrier: bool,
    pub mac: Option<Mac>,
    /// OpenFlow port config bits set by PORT_MOD (no_flood, no_fwd...).
    pub of_config: u32,
    /// The device the switch created for this port (internal port pair, tap), removed with
    /// the port.
    pub dev: Option<OwnedDev>,
}

impl PortState {
    /// A tunnel or patch port from its configuration (`pc.tunnel` or `pc.patch` is set): no
    /// socket; a tunnel is always up, a patch port once its peer is there.
    pub(crate) fn vport(
        dp: DpPort,
        name: String,
        ofport: u32,
        bridge: u8,
        pc: crate::config::PortConfig,
    ) -> PortState {
        if let Some((_, c)) = &pc.tunnel {
            if !c.ignored.is_empty() {
                warn!(port = %name, options = ?c.ignored, "tunnel options not supported; ignored");
            }
        }
        PortState {
            dp,
            name,
            ofport,
            bridge,
            xdp: None,
            carrier: pc.patch.is_none(),
            tunnel: pc.tunnel,
            patch: pc.patch,
            admin_up: true,
            mac: None,
            of_config: 0,
            dev: None,
        }
    }

    /// The interface name the port was added under (the daemon's end for the LOCAL port).
    pub fn iface(&self) -> &str {
        self.xdp.as_ref().map_or(&self.name, |x| &x.name)
    }
}

pub struct BridgeState {
    /// Empty for the slot of a deleted bridge (indices into `bridges` name bridges everywhere:
    /// pipeline, MAC table, OpenFlow connections), reused by the next new bridge.
    pub name: String,
    pub ports: Vec<usize>,
    pub mac_aging: u32,
    /// Active controller targets (`tcp:IP:PORT`), connected and reconnected by the control loop.
    pub controllers: Vec<String>,
}

/// Everything the control thread owns.
pub struct State {
    pub cfg: Config,
    pub shared: Arc<Shared>,
    pub ports: Vec<PortState>,
    pub bridges: Vec<BridgeState>,
    pub pmds: Vec<Arc<PmdHandle>>,
    pub started: Instant,
    pub exit_requested: bool,
    pub hz: f64,
    /// The master copy of the OpenFlow tables (snapshots go to `shared.pipeline`). Change it
    /// through [`State::pipeline_mut`].
    pub pipeline: Pipeline,
    /// The snapshot the last publish retired, and the changes made since it was published:
    /// once no PMD reads it, it becomes the next master copy (see `Pipeline::reclaim`).
    pub retired: Option<(Arc<Pipeline>, crate::pipeline::tables::Journal)>,
    /// Ports with an armed live-migration gate in the published tables (PMDs poll them first).
    pub armed_gates: Vec<(u8, u32)>,
    /// The OpenFlow server.
    pub ofproto: Ofproto,
    /// Wakes the control thread when PMDs queue packet-ins.
    pub control_waker: Arc<handoff::Waker>,
    /// The control loop's poller, for sockets opened at runtime (a new bridge's listeners).
    pub registry: Option<mio::Registry>,
    /// The OVSDB session, when configured through a database (`--ovsdb`).
    pub db: Option<crate::vswitchdb::DbSession>,
    /// Routes, local addresses and neighbours for tunnels.
    pub tnl: crate::tunnel::control::TnlState,
    /// Live-migration gates recognised in the tables (see [`crate::migration`]).
    pub migration: crate::migration::Migration,
}

impl State {
    fn dp_config(&self) -> DpConfig {
        // port numbers have gaps once ports come and go at runtime
        let len = self
            .ports
            .iter()
            .map(|p| p.dp as usize + 1)
            .max()
            .unwrap_or(0);
        let mut ports: Vec<Option<PortInfo>> = vec![None; len];
        for p in &self.ports {
            ports[p.dp as usize] = Some(PortInfo {
                name: p.name.clone(),
                ofport: p.ofport,
                bridge: p.bridge,
                up: p.admin_up && p.carrier,
                patch: p.patch.as_ref().map(|_| {
                    self.patch_peer(p)
                        .filter(|_| p.carrier)
                        .map(|q| self.ports[q].dp)
                }),
            });
        }
        DpConfig {
            ports,
            bridges: self
                .bridges
                .iter()
                .map(|b| BridgeInfo {
                    name: b.name.clone(),
                    ports: b.ports.iter().map(|&i| self.ports[i].dp).collect(),
                    mac_aging: b.mac_aging,
                })
                .collect(),
            tnl: self.tnl_snapshot(),
        }
    }

    /// Publishes a new configuration snapshot and invalidates cached flows.
    pub(crate) fn publish(&mut self) {
        let toggled = self.link_patches();
        self.shared.config.store(Arc::new(self.dp_config()));
        self.sync_pipeline_ports();
        self.publish_pipeline();
        self.shared.invalidate();
        for (b, of) in toggled {
            ofproto::port_status(self, b, of, 2); // OFPPR_MODIFY
        }
    }

    /// The index of patch port `p`'s usable peer: the port named by its `peer` option, itself
    /// a patch port whose `peer` names `p` back (as OVS pairs them, in any bridge).
    pub(crate) fn patch_peer(&self, p: &PortState) -> Option<usize> {
        let want = p.patch.as_deref()?;
        self.ports
            .iter()
            .position(|q| q.name == want && q.patch.as_deref() == Some(p.name.as_str()))
    }

    /// Brings every patch port's carrier in line with its peer's presence (a port added or
    /// removed completes or breaks a pair) and returns the (bridge, OpenFlow port) of those
    /// that went up or down, for PORT_STATUS.
    fn link_patches(&mut self) -> Vec<(usize, u32)> {
        let want: Vec<Option<bool>> = self
            .ports
            .iter()
            .map(|p| p.patch.as_ref().map(|_| self.patch_peer(p).is_some()))
            .collect();
        let mut toggled = Vec::new();
        for (p, w) in self.ports.iter_mut().zip(want) {
            if let Some(up) = w.filter(|&up| up != p.carrier) {
                info!(port = %p.name, peer = p.patch.as_deref().unwrap_or(""), up, "patch port {}", if up { "linked to its peer" } else { "has no usable peer" });
                p.carrier = up;
                toggled.push((p.bridge as usize, p.ofport));
                if !up {
                    // what was learnt behind it is unreachable now: flood instead
                    let (b, dp) = (p.bridge, p.dp);
                    self.shared.macs.flush(|e| e.bridge == b && e.port == dp);
                }
            }
        }
        toggled
    }

    /// Hands the master tables to the PMDs. The master is moved, not copied; the control
    /// thread keeps a shallow copy (shared tables) until [`State::pipeline_mut`] reclaims the
    /// retired snapshot. So a flow mod followed by a barrier costs the change twice, not a
    /// copy of the table (ovs-ofctl add-flows sends a barrier after every flow).
    pub(crate) fn publish_pipeline(&mut self) {
        // gates are recognised on the master before it goes out, so the snapshot that holds
        // a gate's flows also holds the gate
        let replays = self.migration.refresh(&mut self.pipeline.bridges);
        let journal = self.pipeline.take_journal();
        let front = Arc::new(std::mem::take(&mut self.pipeline));
        let old = self.shared.pipeline.swap(front.clone());
        let armed = front.armed_gates();
        if armed != self.armed_gates {
            // after the swap: a PMD re-ordering its sockets must see the new gates
            self.armed_gates = armed;
            self.shared.rx_order.fetch_add(1, Ordering::AcqRel);
        }
        self.pipeline = (*front).clone();
        self.retired = Some((old, journal));
        for r in replays {
            let total_len = r.frame.len() as u32;
            crate::ofproto::pio::packet_in(
                self,
                &r.frame,
                crate::pmd::PinMeta {
                    spec: Some(r.spec),
                    total_len,
                },
            );
        }
    }

    /// The master tables, ready to change: the retired snapshot brought up to date when no
    /// PMD holds it any more (they let go within an upcall), else the shallow copy, whose
    /// tables are then copied on write.
    pub(crate) fn pipeline_mut(&mut self) -> &mut Pipeline {
        if let Some((old, journal)) = self.retired.take() {
            match Arc::try_unwrap(old) {
                Ok(p) => {
                    let current = std::mem::take(&mut self.pipeline);
                    self.pipeline = p.reclaim(&current, &journal);
                }
                Err(_) => debug!("retired tables still in use; copying on write"),
            }
        }
        &mut self.pipeline
    }

    /// Whether a retired snapshot waits to be reclaimed and no PMD holds it any more (so
    /// that [`State::pipeline_mut`] replays its journal instead of copying on write).
    pub(crate) fn retired_is_free(&self) -> bool {
        self.retired
            .as_ref()
            .is_some_and(|(old, _)| Arc::strong_count(old) == 1)
    }

    /// Brings the pipeline's port maps in line with the ports.
    fn sync_pipeline_ports(&mut self) {
        let mut bridge_of_dp = HashMap::new();
        self.pipeline_mut();
        for (bi, b) in self.bridges.iter().enumerate() {
            let Some(bt) = self.pipeline.bridges.get_mut(bi) else {
                continue;
            };
            let bt = Arc::make_mut(bt);
            bt.ports.clear();
            bt.of_of_dp.clear();
            for &pi in &b.ports {
                let p = &self.ports[pi];
                bt.ports.insert(
                    p.ofport,
                    OfPort {
                        ofport: p.ofport,
                        dp: p.dp,
                        name: p.name.clone(),
                        config: p.of_config,
                        up: p.admin_up && p.carrier,
                    },
                );
                bt.of_of_dp.insert(p.dp, p.ofport);
                bridge_of_dp.insert(p.dp, bi as u8);
            }
        }
        self.pipeline.bridge_of_dp = bridge_of_dp;
    }

    /// Re-reads link state; a change republishes (floods skip down ports) and tells
    /// controllers (PORT_STATUS).
    fn watch_links(&mut self) {
        let mut changed = Vec::new();
        for p in self.ports.iter_mut().filter(|p| p.xdp.is_some()) {
            let (up, carrier) = afxdp::netdev::link_state(&p.name);
            if (up, carrier) != (p.admin_up, p.carrier) {
                info!(port = %p.name, admin_up = up, carrier, "link state changed");
                p.admin_up = up;
                p.carrier = carrier;
                changed.push((p.bridge as usize, p.ofport));
            }
        }
        if !changed.is_empty() {
            self.publish();
            for (b, of) in changed {
                ofproto::port_status(self, b, of, 2);
            }
        }
    }

    fn age_macs(&self) {
        let now = self.shared.now_sec.load(Ordering::Relaxed);
        let aging: Vec<u32> = self.bridges.iter().map(|b| b.mac_aging).collect();
        let n = self
            .shared
            .macs
            .age(now, |b| aging.get(b as usize).copied().unwrap_or(300));
        if n > 0 {
            tracing::debug!(entries = n, "MAC entries aged out");
            self.shared.invalidate();
        }
    }
}

/// How long the control loop keeps polling without blocking after OpenFlow input.
const OF_SPIN: Duration = Duration::from_micros(200);

/// How long after the last OpenFlow input the heap is trimmed (once per burst).
const TRIM_AFTER_QUIET: Duration = Duration::from_secs(10);
const LISTENER: Token = Token(0);
const SIGNALS: Token = Token(1);
const PACKET_INS: Token = Token(2);
const OF_LISTENER_BASE: usize = 100;
const FIRST_CONN: usize = 1000;

/// Opens each configured bridge's OpenFlow listeners (see [`open_bridge_listeners`]).
fn open_of_listeners(st: &mut State) -> Result<(), DaemonError> {
    for (bi, b) in st.cfg.bridges.clone().iter().enumerate() {
        open_bridge_listeners(st, bi, &b.name, &b.listen)?;
    }
    Ok(())
}

/// Opens a bridge's OpenFlow listeners: RUNDIR/BRIDGE.mgmt always (replacing a stale socket
/// file but refusing one a live process answers on), plus `ptcp:` ones. Once the control loop
/// runs, they are registered with it at once.
pub(crate) fn open_bridge_listeners(
    st: &mut State,
    bi: usize,
    name: &str,
    listen: &[String],
) -> Result<(), DaemonError> {
    let path = st.cfg.rundir.join(format!("{name}.mgmt"));
    if path.exists() {
        if std::os::unix::net::UnixStream::connect(&path).is_ok() {
            return Err(DaemonError::Setup(format!(
                "{}: another switch is already serving bridge {name}",
                path.display(),
            )));
        }
        let _ = std::fs::remove_file(&path);
    }
    let l = UnixListener::bind(&path)
        .map_err(|e| DaemonError::Setup(format!("{}: {e}", path.display())))?;
    ofproto::log_listener(name, &format!("punix:{}", path.display()));
    add_listener(st, bi, ListenerKind::Unix(l), Some(path));
    for t in listen {
        let rest = t.trim_start_matches("ptcp:");
        let (port, ip) = match rest.split_once(':') {
            Some((p, ip)) => (p, ip),
            None => (rest, "0.0.0.0"),
        };
        let addr: std::net::SocketAddr = format!("{ip}:{port}")
            .parse()
            .map_err(|_| DaemonError::Setup(format!("bad listener {t:?}")))?;
        let l = mio::net::TcpListener::bind(addr)
            .map_err(|e| DaemonError::Setup(format!("{t}: {e}")))?;
        ofproto::log_listener(name, t);
        add_listener(st, bi, ListenerKind::Tcp(l), None);
    }
    Ok(())
}

fn add_listener(st: &mut State, bridge: usize, mut kind: ListenerKind, path: Option<PathBuf>) {
    let slot = st
        .ofproto
        .listeners
        .iter()
        .position(|l| matches!(l.kind, ListenerKind::Closed))
        .unwrap_or(st.ofproto.listeners.len());
    if slot >= FIRST_CONN - OF_LISTENER_BASE {
        warn!(bridge, "too many OpenFlow listeners; not listening");
        return;
    }
    if let Some(reg) = &st.registry {
        let t = Token(OF_LISTENER_BASE + slot);
        let r = match &mut kind {
            ListenerKind::Unix(u) => reg.register(u, t, Interest::READABLE),
            ListenerKind::Tcp(u) => reg.register(u, t, Interest::READABLE),
            ListenerKind::Closed => Ok(()),
        };
        if let Err(e) = r {
            warn!(bridge, error = %e, "cannot watch an OpenFlow listener");
        }
    }
    let l = Listener { bridge, kind, path };
    if slot == st.ofproto.listeners.len() {
        st.ofproto.listeners.push(l);
    } else {
        st.ofproto.listeners[slot] = l;
    }
}

/// Closes a deleted bridge's listeners (removing their socket files) and its connections.
pub(crate) fn close_bridge_listeners(st: &mut State, bi: usize) {
    for l in st.ofproto.listeners.iter_mut().filter(|l| l.bridge == bi) {
        if let Some(reg) = &st.registry {
            let _ = match &mut l.kind {
                ListenerKind::Unix(u) => reg.deregister(u),
                ListenerKind::Tcp(u) => reg.deregister(u),
                ListenerKind::Closed => Ok(()),
            };
        }
        l.kind = ListenerKind::Closed;
        if let Some(p) = l.path.take() {
            let _ = std::fs::remove_file(p);
        }
    }
    let dead: Vec<usize> = st
        .ofproto
        .conns
        .iter()
        .filter(|(_, c)| c.bridge == bi)
        .map(|(t, _)| *t)
        .collect();
    for t in dead {
        if let Some(mut c) = st.ofproto.conns.remove(&t) {
            if let Some(reg) = &st.registry {
                let _ = reg.deregister(c.stream.source());
            }
        }
    }
}

/// Connects `--controller tcp:IP:PORT` targets that are not connected (retried every few
/// seconds, as OVS's rconn does).
fn connect_controllers(st: &mut State, reg: &mio::Registry) {
    let targets: Vec<(usize, Vec<String>)> = st
        .bridges
        .iter()
        .enumerate()
        .map(|(bi, b)| (bi, b.controllers.clone()))
        .collect();
    for (bi, controllers) in targets {
        for t in &controllers {
            let peer = t.clone();
            if st
                .ofproto
                .conns
                .values()
                .any(|c| c.peer == peer && !c.closed)
            {
                continue;
            }
            let Ok(addr) = t.trim_start_matches("tcp:").parse::<std::net::SocketAddr>() else {
                warn!(target = %t, "bad controller address");
                continue;
            };
            match mio::net::TcpStream::connect(addr) {
                Ok(s) => {
                    let tok = st.ofproto.add_conn(Stream::Tcp(s), bi, false, peer);
                    if let Some(c) = st.ofproto.conns.get_mut(&tok) {
                        let _ = reg.register(
                            c.stream.source(),
                            Token(tok),
                            Interest::READABLE | Interest::WRITABLE,
                        );
                        c.registered_writable = true;
                    }
                }
                Err(e) => tracing::debug!(target = %t, error = %e, "controller connect failed"),
            }
        }
    }
}

fn control_loop(
    st: &mut State,
    listener: &mut UnixListener,
    sigfd: i32,
) -> Result<(), DaemonError> {
    let mut poll = Poll::new().map_err(|e| DaemonError::Setup(format!("epoll: {e}")))?;
    let reg = poll
        .registry()
        .try_clone()
        .map_err(|e| DaemonError::Setup(e.to_string()))?;
    let setup = |e: std::io::Error| DaemonError::Setup(e.to_string());
    reg.register(listener, LISTENER, Interest::READABLE)
        .map_err(setup)?;
    reg.register(&mut SourceFd(&sigfd), SIGNALS, Interest::READABLE)
        .map_err(setup)?;
    let pin_fd = st.control_waker.fd();
    reg.register(&mut SourceFd(&pin_fd), PACKET_INS, Interest::READABLE)
        .map_err(setup)?;
    for (i, l) in st.ofproto.listeners.iter_mut().enumerate() {
        let t = Token(OF_LISTENER_BASE + i);
        match &mut l.kind {
            ListenerKind::Unix(u) => reg.register(u, t, Interest::READABLE).map_err(setup)?,
            ListenerKind::Tcp(u) => reg.register(u, t, Interest::READABLE).map_err(setup)?,
            ListenerKind::Closed => {}
        }
    }
    st.registry = Some(reg.try_clone().map_err(setup)?);
    let registry = commands::registry();
    let mut conns: HashMap<usize, Conn> = HashMap::new();
    let mut next_tok = FIRST_CONN;
    let mut events = Events::with_capacity(256);
    let mut last_tick = Instant::now();
    let mut last_connect = Instant::now() - Duration::from_secs(60);
    let mut last_of_input = Instant::now() - OF_SPIN;
    let mut trimmed = true;
    loop {
        if last_connect.elapsed() >= Duration::from_secs(5) {
            last_connect = Instant::now();
            connect_controllers(st, &reg);
        }
        // Adaptive polling: right after OpenFlow input, look again without blocking for a
        // short while. A controller that waits for each reply (ovs-ofctl add-flows sends a
        // barrier after every flow mod and waits for it) answers within tens of µs, and a
        // blocking wait plus wake-up costs about as much as the whole exchange (a sleep/wake
        // round trip is ~50 µs on a small VM: `perf bench sched pipe`). Bounded, so an idle
        // daemon still sleeps.
        let timeout = if last_of_input.elapsed() < OF_SPIN {
            Duration::ZERO
        } else if ofproto::barriers_pending(st) || st.ofproto.dirty {
            Duration::from_millis(1)
        } else {
            Duration::from_millis(100)
        };
        if let Err(e) = poll.poll(&mut events, Some(timeout)) {
            if e.kind() != std::io::ErrorKind::Interrupted {
                return Err(DaemonError::Setup(format!("epoll_wait: {e}")));
            }
        }
        for ev in events.iter() {
            match ev.token() {
                LISTENER => loop {
                    match listener.accept() {
                        Ok((s, _)) => {
                            let mut c = Conn::new(s);
                            let tok = Token(next_tok);
                            next_tok = if next_tok + 1 >= ofproto::CONN_TOKEN_BASE {
                                FIRST_CONN
                            } else {
                                next_tok + 1
                            };
                            if reg.register(&mut c.stream, tok, Interest::READABLE).is_ok() {
                                conns.insert(tok.0, c);
                            }
                        }
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                        Err(e) => {
                            warn!(error = %e, "accept on control socket");
                            break;
                        }
                    }
                },
                SIGNALS => {
                    while let Some(sig) = crate::sys::read_signal(sigfd) {
                        info!(signal = sig, "terminating on signal");
                        st.exit_requested = true;
                    }
                }
                crate::vswitchdb::TOKEN => {
                    crate::vswitchdb::on_event(st, ev.is_readable() || ev.is_read_closed());
                }
                PACKET_INS => {
                    st.control_waker.drain();
                    ofproto::deliver_packet_ins(st);
                    ofproto::deliver_learns(st);
                }
                Token(t) if (OF_LISTENER_BASE..FIRST_CONN).contains(&t) => {
                    accept_openflow(st, &reg, t - OF_LISTENER_BASE);
                }
                Token(t) if t >= ofproto::CONN_TOKEN_BASE => {
                    if ev.is_readable() {
                        let msgs = match st.ofproto.conns.get_mut(&t) {
                            Some(c) => c.read_messages(),
                            None => continue,
                        };
                        if !msgs.is_empty() {
                            last_of_input = Instant::now();
                            trimmed = false;
                        }
                        ofproto::handle(st, t, msgs);
                    }
                }
                Token(t) => {
                    if let Some(c) = conns.get_mut(&t) {
                        if ev.is_readable() {
                            for req in c.read_requests() {
                                let reply = match registry.validate(&req) {
                                    Ok(()) => commands::dispatch(st, &registry, &req),
                                    Err(e) => Err(e),
                                };
                                c.queue_reply(&req, &reply);
                            }
                        }
                        let more = c.flush();
                        c.reregister(&reg, Token(t), more);
                        if c.closed {
                            let _ = reg.deregister(&mut c.stream);
                            conns.remove(&t);
                        }
                    }
                }
            }
        }
        crate::vswitchdb::tick(st);
        // packet-ins (and learn requests) that arrived while the waker was not armed
        ofproto::deliver_packet_ins(st);
        ofproto::deliver_learns(st);
        st.tunnel_events();
        // OpenFlow housekeeping: publish pending table changes (at least every 20 ms, at once
        // for barriers), answer barriers the PMDs have caught up with, flush output
        if st.ofproto.dirty && st.ofproto.last_publish.elapsed() >= Duration::from_millis(20) {
            ofproto::publish(st);
        }
        ofproto::wait_barriers(st, Duration::from_micros(200));
        ofproto::answer_barriers(st);
        let mut dead = Vec::new();
        for (t, c) in st.ofproto.conns.iter_mut() {
            let more = c.flush();
            // epoll_ctl only when the interest changes or unread input must raise a new event
            if more != c.registered_writable || c.rx_more {
                let i = if more {
                    Interest::READABLE | Interest::WRITABLE
                } else {
                    Interest::READABLE
                };
                let _ = reg.reregister(c.stream.source(), Token(*t), i);
                c.registered_writable = more;
                c.rx_more = false;
            }
            if c.closed {
                dead.push(*t);
            }
        }
        for t in dead {
            if let Some(mut c) = st.ofproto.conns.remove(&t) {
                let _ = reg.deregister(c.stream.source());
                tracing::debug!(peer = %c.peer, "OpenFlow connection closed");
            }
        }
        // The replies are out: bring the retired snapshot up to date now, while the
        // controller prepares its next message, rather than on the next flow mod's path
        // (ovs-ofctl add-flows waits for a barrier reply per flow).
        if st.retired_is_free() {
            st.pipeline_mut();
        }
        let now = st.started.elapsed().as_secs() as u32;
        st.shared.now_sec.store(now, Ordering::Relaxed);
        if last_tick.elapsed() >= Duration::from_secs(1) {
            last_tick = Instant::now();
            st.watch_links();
            st.refresh_tunnels();
            st.age_macs();
            if let Some(db) = &mut st.db {
                // link state, carrier, MTU and controller connections may have changed
                db.writeback = true;
            }
            ofproto::expire_flows(st);
            ofproto::probe_connections(st);
            // after a burst of OpenFlow changes, once things are quiet: give the memory that
            // burst freed (deleted rules, messages, journals) back to the kernel, as
            // ovn-controller does after 30 s of inactivity
            if !trimmed && last_of_input.elapsed() >= TRIM_AFTER_QUIET {
                crate::sys::trim_heap();
                trimmed = true;
            }
            st.shared.conntrack.sweep(now as u64 * 1000);
            if st.shared.recirc.take_cleared() {
                // recirculation ids were forgotten: drop the megaflows that name them
                st.shared.invalidate();
            }
        }
        if st.exit_requested {
            // give replies (to `exit`) a chance to leave
            for c in conns.values_mut() {
                c.flush();
            }
            for c in st.ofproto.conns.values_mut() {
                c.flush();
            }
            return Ok(());
        }
    }
}

fn accept_openflow(st: &mut State, reg: &mio::Registry, li: usize) {
    loop {
        let Some(l) = st.ofproto.listeners.get_mut(li) else {
            return;
        };
        let bridge = l.bridge;
        let accepted = match &mut l.kind {
            ListenerKind::Unix(u) => u
                .accept()
                .map(|(s, _)| (Stream::Unix(s), "unix".to_string())),
            ListenerKind::Tcp(u) => u.accept().map(|(s, a)| (Stream::Tcp(s), a.to_string())),
            ListenerKind::Closed => return,
        };
        match accepted {
            Ok((s, peer)) => {
                let tok = st.ofproto.add_conn(s, bridge, true, peer);
                if let Some(c) = st.ofproto.conns.get_mut(&tok) {
                    let _ = reg.register(
                        c.stream.source(),
                        Token(tok),
                        Interest::READABLE | Interest::WRITABLE,
                    );
                    c.registered_writable = true;
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return,
            Err(e) => {
                warn!(error = %e, "accept on OpenFlow listener");
                return;
            }
        }
    }
}

/// Runs the daemon until SIGINT/SIGTERM or `exit`.
pub fn run(cfg: Config) -> Result<(), DaemonError> {
    let sigfd = crate::sys::termination_signalfd()
        .map_err(|e| DaemonError::Setup(format!("signalfd: {e}")))?;
    crate::sys::ignore_sigpipe();
    std::fs::create_dir_all(&cfg.rundir)
        .map_err(|e| DaemonError::Setup(format!("cannot create {}: {e}", cfg.rundir.display())))?;
    let ctl_path = cfg.ctl_path();
    control::check_free(&ctl_path)?;
    if let Some(db) = &cfg.ovsdb {
        info!(database = %db, "bridges and ports come from the database");
    }
    let hz = clock::hz();

    // ports; the LOCAL port pairs are deleted when their port drops, on every return path
    let mut ports: Vec<PortState> = Vec::new();
    let mut bridges = Vec::new();
    for (bi, b) in cfg.bridges.iter().enumerate() {
        if bi >= 8 {
            return Err(DaemonError::Setup("at most 8 bridges".into()));
        }
        let mut members = Vec::new();
        let mut specs: Vec<(String, u32, crate::config::PortConfig, Option<OwnedDev>)> = b
            .ports
            .iter()
            .enumerate()
            .map(|(i, pc)| (pc.name.clone(), i as u32 + 1, pc.clone(), None))
            .collect();
        if cfg.local_port {
            let lp = LocalPort::create(&b.name)?;
            specs.push((
                lp.name.clone(),
                openflow::action::ports::LOCAL,
                lp.peer_config(),
                Some(OwnedDev::Internal(lp)),
            ));
        }
        for (name, ofport, pc, dev) in specs {
            if ports.len() >= MAX_PORTS {
                return Err(DaemonError::Setup(format!("at most {MAX_PORTS} ports")));
            }
            if pc.tunnel.is_some() || pc.patch.is_some() {
                members.push(ports.len());
                ports.push(PortState::vport(
                    ports.len() as DpPort,
                    name,
                    ofport,
                    bi as u8,
                    pc,
                ));
                continue;
            }
            let mut xdp = XdpPort::open(&pc)?;
            xdp.attach()?;
            let (admin_up, carrier) = afxdp::netdev::link_state(&name);
            members.push(ports.len());
            ports.push(PortState {
                dp: ports.len() as DpPort,
                mac: afxdp::netdev::mac(&name).map(Mac),
                name,
                ofport,
                bridge: bi as u8,
                xdp: Some(xdp),
                tunnel: None,
                patch: None,
                admin_up,
                carrier,
                of_config: 0,
                dev,
            });
        }
        bridges.push(BridgeState {
            name: b.name.clone(),
            controllers: b.controllers.clone(),
            ports: members,
            mac_aging: b.mac_aging,
        });
    }

    // PMDs
    let allowed = crate::sys::allowed_cpus();
    let cores: Vec<Option<usize>> = if cfg.pmd_cpus.is_empty() {
        vec![None]
    } else {
        for c in &cfg.pmd_cpus {
            if !allowed.contains(c) {
                return Err(DaemonError::Setup(format!(
                    "--pmd-cpus: CPU {c} is not available to this process (allowed: {allowed:?})"
                )));
            }
        }
        cfg.pmd_cpus.iter().map(|&c| Some(c)).collect()
    };
    let n = cores.len();
    let shared = Arc::new(Shared::new(DpConfig::default()));
    shared.emc.store(cfg.emc, Ordering::Relaxed);
    let mut handles = Vec::new();
    for (i, c) in cores.iter().enumerate() {
        handles.push(Arc::new(
            PmdHandle::new(i, *c, cfg.pmd_idle)
                .map_err(|e| DaemonError::Setup(format!("eventfd: {e}")))?,
        ));
    }
    // spread (port, queue) over PMDs round-robin
    let mut assign: Vec<Vec<(usize, u32)>> = vec![Vec::new(); n];
    let mut rr = 0;
    for (pi, p) in ports.iter().enumerate() {
        for q in 0..p.xdp.as_ref().map_or(0, |x| x.queues) {
            assign[rr % n].push((pi, q));
            rr += 1;
        }
    }
    let mut builders: Vec<PmdBuilder> = Vec::new();
    for (i, h) in handles.iter().enumerate() {
        let socks = assign[i].len() as u32;
        let frames = (socks * cfg.ring_size * 3)
            .clamp(4096, 262_144)
            .next_power_of_two();
        let mut b = PmdBuilder::new(
            h.clone(),
            shared.clone(),
            frames,
            cfg.frame_size,
            cfg.ring_size,
            cfg.batch,
        );
        for &(pi, q) in &assign[i] {
            let dp = ports[pi].dp;
            if let Some(x) = ports[pi].xdp.as_mut() {
                b.add_queue(x, dp, q, true)?;
            }
        }
        builders.push(b);
    }
    // who transmits on a port for PMDs without a socket on it: the owner of its queue 0
    let owner_of: HashMap<DpPort, usize> = (0..n)
        .flat_map(|i| {
            builders[i]
                .local_ports()
                .into_iter()
                .filter(|(_, q)| *q == 0)
                .map(move |(p, _)| (p, i))
        })
        .collect();
    // a ring between every two PMDs: ports added at runtime may need any of them
    let mut rings_needed = Vec::new();
    for i in 0..n {
        for j in 0..n {
            if i != j {
                rings_needed.push((i, j));
            }
        }
    }
    for (i, j) in rings_needed {
        let (prod, cons) = handoff::channel(256, builders[j].waker());
        builders[i].add_output(j, prod);
        builders[j].add_inbox(cons);
    }
    // packet-ins: each PMD to the control thread; packet-outs: control thread to PMD 0
    let control_waker =
        Arc::new(handoff::Waker::new().map_err(|e| DaemonError::Setup(format!("eventfd: {e}")))?);
    control_waker.sleeping.store(true, Ordering::SeqCst);
    let mut ofp = Ofproto::new(bridges.len());
    for b in builders.iter_mut() {
        let (prod, cons) = handoff::channel::<PinMeta>(1024, control_waker.clone());
        b.set_packet_in(prod);
        ofp.pin_rx.push(cons);
        let (prod, cons) =
            handoff::meta_channel::<crate::pmd::LearnMsg>(1024, control_waker.clone());
        b.set_learn(prod);
        ofp.learn_rx.push(cons);
    }
    if let Some(b0) = builders.first_mut() {
        let (prod, cons) = handoff::channel::<Option<Arc<ExecJob>>>(256, b0.waker());
        b0.set_exec_in(cons);
        ofp.exec_tx = Some(prod);
    }
    let mut pipeline = Pipeline::default();
    for (bi, b) in bridges.iter().enumerate() {
        let mut bt = BridgeTables::new(&b.name, bi as u8, datapath_id(&b.name));
        if cfg.bridges[bi].fail_mode == crate::config::FailMode::Standalone {
            bt.add_normal_flow(0);
        }
        pipeline.bridges.push(Arc::new(bt));
    }
    let mut st = State {
        cfg: cfg.clone(),
        shared: shared.clone(),
        ports,
        bridges,
        pmds: handles,
        started: Instant::now(),
        exit_requested: false,
        hz,
        pipeline,
        retired: None,
        armed_gates: Vec::new(),
        ofproto: ofp,
        control_waker,
        registry: None,
        db: cfg.ovsdb.as_deref().map(crate::vswitchdb::DbSession::new),
        tnl: Default::default(),
        migration: Default::default(),
    };
    st.refresh_tunnels();
    st.publish();
    let mut threads = Vec::new();
    for (i, b) in builders.into_iter().enumerate() {
        let pmd = b.build(|p| owner_of.get(&p).copied());
        let name = format!(
            "pmd-c{}",
            cores[i]
                .map(|c| c.to_string())
                .unwrap_or_else(|| "x".into())
        );
        let t = std::thread::Builder::new()
            .name(name)
            .stack_size(crate::pipeline::xlate::XLATE_STACK)
            .spawn(move || pmd.run())
            .map_err(|e| DaemonError::Setup(format!("spawn PMD: {e}")))?;
        threads.push(t);
    }
    // keep the control thread off PMD cores when there are others
    let pmd_cores: Vec<usize> = cores.iter().flatten().copied().collect();
    let rest: Vec<usize> = allowed
        .iter()
        .copied()
        .filter(|c| !pmd_cores.contains(c))
        .collect();
    if !pmd_cores.is_empty() && !rest.is_empty() {
        let _ = crate::sys::pin_current_thread(&rest);
    }
    if let Err(e) = open_of_listeners(&mut st) {
        shared.quit.store(true, Ordering::SeqCst);
        for h in &st.pmds {
            h.waker.wake();
        }
        for t in threads {
            let _ = t.join();
        }
        return Err(e);
    }
    let mut listener = match control::bind(&ctl_path) {
        Ok(l) => l,
        Err(e) => {
            shared.quit.store(true, Ordering::SeqCst);
            for h in &st.pmds {
                h.waker.wake();
            }
            for t in threads {
                let _ = t.join();
            }
            return Err(e.into());
        }
    };
    // the pid file appears with the control socket, once the switch forwards: a failed start
    // leaves neither behind
    // (locked while the daemon runs, as ovs-appctl expects; removed when dropped)
    let _pidfile = match &cfg.pidfile {
        Some(p) => crate::process::Pidfile::create(p)
            .map_err(|e| warn!(pidfile = %p.display(), error = %e, "cannot write the pid file"))
            .ok(),
        None => None,
    };
    info!(
        ports = st.ports.len(),
        pmds = n,
        control = %ctl_path.display(),
        "xvswitchd ready"
    );
    // a `--detach`ed daemon's parent exits now
    crate::process::notify_ready();

    let res = control_loop(&mut st, &mut listener, sigfd.as_raw_fd());

    // teardown: stop PMDs first (they own the sockets), then detach programs
    shared.quit.store(true, Ordering::SeqCst);
    for h in &st.pmds {
        h.waker.wake();
    }
    for t in threads {
        if t.join().is_err() {
            error!("a PMD thread panicked");
        }
    }
    for x in st.ports.iter_mut().filter_map(|p| p.xdp.as_mut()) {
        x.detach();
    }
    for l in &st.ofproto.listeners {
        if let Some(p) = &l.path {
            let _ = std::fs::remove_file(p);
        }
    }
    let _ = std::fs::remove_file(&ctl_path);
    if let Some(p) = &cfg.pidfile {
        let _ = std::fs::remove_file(p);
    }
    st.ports.clear();
    info!("xvswitchd stopped");
    res
}

/// A stable datapath id from the bridge name (OVS derives it from the bridge's MAC).
pub(crate) fn datapath_id(name: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in name.bytes() {
        h = (h ^ b as u64).wrapping_mul(0x100_0000_01b3);
    }
    h & 0x0000_ffff_ffff_ffff
}

/// Where the control socket of a daemon with this run directory lives.
pub fn ctl_path(rundir: &std::path::Path) -> PathBuf {
    rundir.join("xvswitchd.ctl")
}
