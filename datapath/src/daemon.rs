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
use tracing::{error, info, warn};

use crate::config::Config;
use crate::control::{self, commands, Conn};
use crate::packet::Mac;
use crate::pipeline::tables::{BridgeTables, OfPort, Pipeline};
use crate::pipeline::{BridgeInfo, DpConfig, DpPort, PortInfo, MAX_PORTS};
use crate::pmd::{handoff, PmdBuilder, PmdHandle, Shared};
use crate::port::{PortError, XdpPort};
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
    pub ofport: u32,
    pub bridge: u8,
    pub xdp: XdpPort,
    pub admin_up: bool,
    pub carrier: bool,
    pub mac: Option<Mac>,
}

pub struct BridgeState {
    pub name: String,
    pub ports: Vec<usize>,
    pub mac_aging: u32,
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
    /// The master copy of the OpenFlow tables (snapshots go to `shared.pipeline`).
    pub pipeline: Pipeline,
}

impl State {
    fn dp_config(&self) -> DpConfig {
        let mut ports: Vec<Option<PortInfo>> = vec![None; self.ports.len()];
        for p in &self.ports {
            ports[p.dp as usize] = Some(PortInfo {
                name: p.xdp.name.clone(),
                ofport: p.ofport,
                bridge: p.bridge,
                up: p.admin_up && p.carrier,
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
        }
    }

    /// Publishes a new configuration snapshot and invalidates cached flows.
    fn publish(&mut self) {
        self.shared.config.store(Arc::new(self.dp_config()));
        self.sync_pipeline_ports();
        self.shared.pipeline.store(Arc::new(self.pipeline.clone()));
        self.shared.invalidate();
    }

    /// Brings the pipeline's port maps in line with the ports.
    fn sync_pipeline_ports(&mut self) {
        let mut bridge_of_dp = HashMap::new();
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
                        name: p.xdp.name.clone(),
                        config: 0,
                        up: p.admin_up && p.carrier,
                    },
                );
                bt.of_of_dp.insert(p.dp, p.ofport);
                bridge_of_dp.insert(p.dp, bi as u8);
            }
        }
        self.pipeline.bridge_of_dp = bridge_of_dp;
    }

    /// Re-reads link state; a change republishes (floods skip down ports).
    fn watch_links(&mut self) {
        let mut changed = false;
        for p in &mut self.ports {
            let (up, carrier) = afxdp::netdev::link_state(&p.xdp.name);
            if (up, carrier) != (p.admin_up, p.carrier) {
                info!(port = %p.xdp.name, admin_up = up, carrier, "link state changed");
                p.admin_up = up;
                p.carrier = carrier;
                changed = true;
            }
        }
        if changed {
            self.publish();
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

const LISTENER: Token = Token(0);
const SIGNALS: Token = Token(1);
const FIRST_CONN: usize = 16;

/// Runs the daemon until SIGINT/SIGTERM or `exit`.
pub fn run(cfg: Config) -> Result<(), DaemonError> {
    let sigfd = crate::sys::termination_signalfd()
        .map_err(|e| DaemonError::Setup(format!("signalfd: {e}")))?;
    crate::sys::ignore_sigpipe();
    std::fs::create_dir_all(&cfg.rundir)
        .map_err(|e| DaemonError::Setup(format!("cannot create {}: {e}", cfg.rundir.display())))?;
    let ctl_path = cfg.rundir.join("xvswitchd.ctl");
    control::check_free(&ctl_path)?;
    if let Some(p) = &cfg.pidfile {
        std::fs::write(p, format!("{}\n", std::process::id()))
            .map_err(|e| DaemonError::Setup(format!("pidfile {}: {e}", p.display())))?;
    }
    let hz = clock::hz();

    // ports
    let mut ports = Vec::new();
    let mut bridges = Vec::new();
    for (bi, b) in cfg.bridges.iter().enumerate() {
        if bi >= 8 {
            return Err(DaemonError::Setup("at most 8 bridges".into()));
        }
        let mut members = Vec::new();
        for (i, pc) in b.ports.iter().enumerate() {
            if ports.len() >= MAX_PORTS {
                return Err(DaemonError::Setup(format!("at most {MAX_PORTS} ports")));
            }
            let mut xdp = XdpPort::open(pc)?;
            xdp.attach()?;
            let (admin_up, carrier) = afxdp::netdev::link_state(&pc.name);
            members.push(ports.len());
            ports.push(PortState {
                dp: ports.len() as DpPort,
                ofport: i as u32 + 1,
                bridge: bi as u8,
                mac: afxdp::netdev::mac(&pc.name).map(Mac),
                xdp,
                admin_up,
                carrier,
            });
        }
        bridges.push(BridgeState {
            name: b.name.clone(),
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
        for q in 0..p.xdp.queues {
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
            b.add_queue(&mut ports[pi].xdp, dp, q, true)?;
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
    let mut rings_needed = Vec::new();
    for (i, b) in builders.iter().enumerate() {
        let local: Vec<DpPort> = b.local_ports().iter().map(|x| x.0).collect();
        for p in &ports {
            if !local.contains(&p.dp) {
                if let Some(&j) = owner_of.get(&p.dp) {
                    if !rings_needed.contains(&(i, j)) {
                        rings_needed.push((i, j));
                    }
                }
            }
        }
    }
    for (i, j) in rings_needed {
        let (prod, cons) = handoff::channel(256, builders[j].waker());
        builders[i].add_output(j, prod);
        builders[j].add_inbox(cons);
    }
    let mut pipeline = Pipeline::default();
    for (bi, b) in bridges.iter().enumerate() {
        let mut bt = BridgeTables::new(&b.name, bi as u8, datapath_id(&b.name));
        bt.add_normal_flow(0);
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
    };
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
    info!(
        ports = st.ports.len(),
        pmds = n,
        control = %ctl_path.display(),
        "xvswitchd ready"
    );

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
    for p in &mut st.ports {
        p.xdp.detach();
    }
    let _ = std::fs::remove_file(&ctl_path);
    if let Some(p) = &cfg.pidfile {
        let _ = std::fs::remove_file(p);
    }
    info!("xvswitchd stopped");
    res
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
    reg.register(listener, LISTENER, Interest::READABLE)
        .map_err(|e| DaemonError::Setup(e.to_string()))?;
    reg.register(&mut SourceFd(&sigfd), SIGNALS, Interest::READABLE)
        .map_err(|e| DaemonError::Setup(e.to_string()))?;
    let registry = commands::registry();
    let mut conns: HashMap<usize, Conn> = HashMap::new();
    let mut next_tok = FIRST_CONN;
    let mut events = Events::with_capacity(64);
    let mut last_tick = Instant::now();
    loop {
        if let Err(e) = poll.poll(&mut events, Some(Duration::from_millis(100))) {
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
                            next_tok += 1;
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
        let now = st.started.elapsed().as_secs() as u32;
        st.shared.now_sec.store(now, Ordering::Relaxed);
        if last_tick.elapsed() >= Duration::from_secs(1) {
            last_tick = Instant::now();
            st.watch_links();
            st.age_macs();
        }
        if st.exit_requested {
            // give replies (to `exit`) a chance to leave
            for c in conns.values_mut() {
                c.flush();
            }
            return Ok(());
        }
    }
}

/// A stable datapath id from the bridge name (OVS derives it from the bridge's MAC).
fn datapath_id(name: &str) -> u64 {
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
