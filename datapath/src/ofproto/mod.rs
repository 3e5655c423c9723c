//! The OpenFlow server: per bridge a unix socket `RUNDIR/BRIDGE.mgmt` (what ovs-ofctl and
//! ovn-controller connect to), optional `--listen ptcp:PORT` and `--controller tcp:IP:PORT`;
//! any number of connections, each in its own negotiated version.
//!
//! Semantics that matter to ovn-controller (../shared/ovn-needs.md §3b):
//! - flow, group and meter mods apply to the master copy of the tables; a snapshot is
//!   published to the PMDs before a barrier or a bundle commit is answered, and the barrier
//!   reply waits until every PMD has started a poll round with that snapshot (nothing
//!   forwarded after the reply can use an older decision);
//! - bundles are atomic and ordered: applied to a scratch copy, swapped in only if every
//!   message succeeds; one failure aborts the whole bundle;
//! - a service connection (the mgmt socket) gets no asynchronous messages (packet-in,
//!   port-status, flow-removed) until it sets a non-zero miss_send_len;
//! - packet-ins go out as each connection asked (standard, NXT_PACKET_IN, NXT_PACKET_IN2 with
//!   metadata, userdata and continuations resumable by NXT_RESUME), rate-limited by the
//!   controller action's meter.

pub mod conn;
pub mod ctflush;
pub mod mods;
pub mod monitor;
pub(crate) mod pio;
mod stats;

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use mio::net::{TcpListener, UnixListener};
use openflow::message::{BundleControl, ErrorMsg, Experimenter, Message, SwitchConfig, TlvMap};
use openflow::{Header, OfpErr};
use tracing::{debug, info, warn};

use crate::daemon::State;
use crate::pipeline::learn::{self, Learned};
use crate::pipeline::Frozen;
use crate::pmd::{handoff, ExecJob, LearnMsg, PinMeta};
use conn::Conn;
use mods::{Changes, ModError};

pub enum ListenerKind {
    Unix(UnixListener),
    Tcp(TcpListener),
    /// The bridge was deleted; the slot stays so other listeners keep their tokens.
    Closed,
}

pub struct Listener {
    pub bridge: usize,
    pub kind: ListenerKind,
    pub path: Option<PathBuf>,
}

/// Per-bridge OpenFlow state that is not part of the pipeline snapshot.
#[derive(Default)]
pub struct BridgeExtra {
    pub tlv: Vec<TlvMap>,
}

/// Counters shown by `ofproto/show`-style commands and coverage.
#[derive(Default, Debug)]
pub struct OfStats {
    pub flow_mods: u64,
    pub errors_sent: u64,
    pub packet_ins_sent: u64,
    pub packet_ins_metered: u64,
    pub packet_outs: u64,
    pub barriers: u64,
    pub bundles_committed: u64,
    pub bundles_failed: u64,
    /// Flows added (or changed) by learn actions.
    pub learned_flows_added: u64,
    /// Learn requests for a flow already there as learned: its hard timeout restarts.
    pub learned_flows_refreshed: u64,
    /// Learn requests the tables refused (bad table, unsupported field...).
    pub learn_errors: u64,
    /// Flows removed because the last flow with their `learn(delete_learned)` went away.
    pub learned_flows_deleted: u64,
}

pub struct Ofproto {
    pub listeners: Vec<Listener>,
    pub conns: HashMap<usize, Conn>,
    pub next_token: usize,
    next_conn_id: u64,
    pub extra: Vec<BridgeExtra>,
    /// The master tables changed since the last publish.
    pub dirty: bool,
    pub last_publish: Instant,
    continuations: HashMap<u64, Arc<Frozen>>,
    cont_order: VecDeque<u64>,
    next_cont: u64,
    /// Packet-ins from each PMD.
    pub pin_rx: Vec<handoff::Consumer<PinMeta>>,
    /// Learn requests from each PMD.
    pub learn_rx: Vec<handoff::Consumer<LearnMsg, 0>>,
    /// Packets to send through PMD 0 (packet-out, resume).
    pub exec_tx: Option<handoff::Producer<Option<Arc<ExecJob>>>>,
    pub started: Instant,
    pub stats: OfStats,
}

/// First token of OpenFlow connections in the control loop.
pub const CONN_TOKEN_BASE: usize = 1 << 20;
const MAX_CONTINUATIONS: usize = 65536;

impl Ofproto {
    pub fn new(n_bridges: usize) -> Self {
        Ofproto {
            listeners: Vec::new(),
            conns: HashMap::new(),
            next_token: CONN_TOKEN_BASE,
            next_conn_id: 1,
            extra: (0..n_bridges).map(|_| BridgeExtra::default()).collect(),
            dirty: false,
            last_publish: Instant::now(),
            continuations: HashMap::new(),
            cont_order: VecDeque::new(),
            next_cont: 1,
            pin_rx: Vec::new(),
            learn_rx: Vec::new(),
            exec_tx: None,
            started: Instant::now(),
            stats: OfStats::default(),
        }
    }

    /// Accepts a new connection: registers it under a fresh token and says hello.
    pub fn add_conn(
        &mut self,
        stream: conn::Stream,
        bridge: usize,
        service: bool,
        peer: String,
    ) -> usize {
        let tok = self.next_token;
        self.next_token += 1;
        let id = self.next_conn_id;
        self.next_conn_id += 1;
        let mut c = Conn::new(id, stream, bridge, service, peer);
        c.send_hello();
        self.conns.insert(tok, c);
        tok
    }

    fn store_continuation(&mut self, f: Arc<Frozen>) -> u64 {
        let id = self.next_cont;
        self.next_cont += 1;
        self.continuations.insert(id, f);
        self.cont_order.push_back(id);
        while self.cont_order.len() > MAX_CONTINUATIONS {
            if let Some(old) = self.cont_order.pop_front() {
                self.continuations.remove(&old);
            }
        }
        id
    }

    fn take_continuation(&mut self, id: u64) -> Option<Arc<Frozen>> {
        self.continuations.get(&id).cloned()
    }
}

fn now_ms(st: &State) -> u64 {
    st.started.elapsed().as_millis() as u64
}

/// Sends an error reply echoing the whole request, as OVS 3.1 does (the spec asks for at
/// least 64 bytes; ovs-ofctl decodes the rejected message only when all of it is there).
/// The echo is capped so the reply still fits the 16-bit length with an experimenter
/// error header.
pub fn send_error(st: &mut State, c: &mut Conn, req: &[u8], err: OfpErr, why: &str) {
    let v = if c.version == 0 { 1 } else { c.version };
    let xid = Header::parse(req).map(|h| h.xid).unwrap_or(0);
    let data = req[..req.len().min(usize::from(u16::MAX) - 16)].to_vec();
    let m = Message::Error(ErrorMsg {
        code: err.code(v),
        data,
    });
    debug!(peer = %c.peer, ?err, why, "OpenFlow error reply");
    st.ofproto.stats.errors_sent += 1;
    c.send(xid, &m);
}

/// Handles the messages read from connection `tok`.
pub fn handle(st: &mut State, tok: usize, msgs: Vec<Vec<u8>>) {
    let Some(mut c) = st.ofproto.conns.remove(&tok) else {
        return;
    };
    for raw in msgs {
        if c.closed {
            break;
        }
        handle_one(st, &mut c, &raw);
    }
    st.ofproto.conns.insert(tok, c);
}

fn handle_one(st: &mut State, c: &mut Conn, raw: &[u8]) {
    let Some(h) = Header::parse(raw) else {
        return;
    };
    let decoded = openflow::decode(raw);
    if c.version == 0 {
        // the first message must be HELLO (OVS tolerates others after a hello from us, but a
        // peer that skips it cannot have negotiated a version)
        match &decoded {
            Ok((_, Message::Hello(elems))) => {
                if !c.on_hello(&h, elems) {
                    warn!(peer = %c.peer, version = h.version, "no common OpenFlow version");
                    send_error(st, c, raw, OfpErr::OFPHFC_INCOMPATIBLE, "version");
                    c.closed = true;
                } else {
                    debug!(peer = %c.peer, version = c.version, "OpenFlow connection up");
                }
            }
            _ => {
                send_error(st, c, raw, OfpErr::OFPBRC_BAD_TYPE, "HELLO expected");
            }
        }
        return;
    }
    if h.version != c.version
        && h.msg_type != 0
        && h.msg_type != 1
        && h.msg_type != 2
        && h.msg_type != 3
    {
        send_error(
            st,
            c,
            raw,
            OfpErr::OFPBRC_BAD_VERSION,
            "version differs from negotiated",
        );
        return;
    }
    let msg = match decoded {
        Ok((_, m)) => m,
        Err(e) => {
            send_error(st, c, raw, e.kind, e.context);
            return;
        }
    };
    let xid = h.xid;
    match msg {
        Message::Hello(_) => {}
        Message::EchoRequest(d) => c.send(xid, &Message::EchoReply(d)),
        Message::EchoReply(_) => c.probe_sent = None,
        Message::Error(e) => debug!(peer = %c.peer, ?e, "error from controller"),
        Message::FeaturesRequest => {
            let f = stats::features(st, c);
            c.send(xid, &Message::FeaturesReply(f));
        }
        Message::GetConfigRequest => c.send(
            xid,
            &Message::GetConfigReply(SwitchConfig {
                flags: 0,
                miss_send_len: c.miss_send_len,
            }),
        ),
        Message::SetConfig(cfg) => c.miss_send_len = cfg.miss_send_len,
        Message::FlowMod(ref fm) => {
            let mut ch = Changes::default();
            let r = apply_flow_mod(st, c.bridge, fm, c.version, c.flow_mod_table_id, &mut ch);
            let b = c.bridge;
            after_changes(st, Some(&mut *c), b, xid, ch);
            if let Err(e) = r {
                send_error(st, c, raw, e.err, &e.why);
            }
        }
        Message::GroupMod(ref gm) => {
            let mut ch = Changes::default();
            let r = apply_group_mod(st, c.bridge, gm, c.version, &mut ch);
            let b = c.bridge;
            after_changes(st, Some(&mut *c), b, xid, ch);
            if let Err(e) = r {
                send_error(st, c, raw, e.err, &e.why);
            }
        }
        Message::MeterMod(ref mm) => {
            let b = c.bridge;
            let mut ch = Changes::default();
            st.pipeline_mut();
            let r = match st.pipeline.bridges.get_mut(b) {
                Some(bt) => {
                    let bt = Arc::make_mut(bt);
                    mods::meter_mod(&mut bt.meters, mm).map(|()| {
                        if mm.command == mods::METER_DELETE {
                            mods::delete_flows_using_meter(bt, mm.meter_id, &mut ch);
                        }
                    })
                }
                None => Err(ModError {
                    err: OfpErr::OFPBRC_EPERM,
                    why: "no such bridge".into(),
                }),
            };
            // a changed meter reaches the PMDs with the next publish, which also flushes the
            // megaflows that hold the meter it replaced
            st.ofproto.dirty |= r.is_ok();
            after_changes(st, Some(&mut *c), b, xid, ch);
            if let Err(e) = r {
                send_error(st, c, raw, e.err, &e.why);
            }
        }
        Message::PortMod(pm) => {
            if let Err(e) = port_mod(st, c.bridge, &pm) {
                send_error(st, c, raw, e.err, &e.why);
            }
        }
        Message::TableMod { .. } => {}
        Message::PacketOut(po) => {
            st.ofproto.stats.packet_outs += 1;
            if let Err(e) = pio::packet_out(st, c.bridge, &po) {
                send_error(st, c, raw, e.err, &e.why);
            }
        }
        Message::BarrierRequest => {
            st.ofproto.stats.barriers += 1;
            publish(st);
            let gen = st.shared.generation.load(Ordering::Acquire);
            c.barriers.push_back((xid, gen));
        }
        Message::RoleRequest(r) => {
            use conn::role;
            if r.role > role::SLAVE {
                send_error(st, c, raw, OfpErr::OFPRRFC_BAD_ROLE, "role");
                return;
            }
            if r.role != role::NOCHANGE {
                if r.role == role::MASTER {
                    // only one master: others of the bridge become slaves
                    let b = c.bridge;
                    for o in st.ofproto.conns.values_mut() {
                        if o.bridge == b && o.role == role::MASTER {
                            o.role = role::SLAVE;
                        }
                    }
                }
                c.role = r.role;
            }
            let mut reply = r;
            reply.role = c.role;
            c.send(xid, &Message::RoleReply(reply));
        }
        Message::MultipartRequest(openflow::MultipartRequest {
            body: openflow::MpRequest::FlowMonitor { form, monitors },
            ..
        }) => match monitor::apply_request(&mut c.monitors, form, &monitors) {
            Ok(ms) => {
                let rules: Vec<_> = st
                    .pipeline
                    .bridges
                    .get(c.bridge)
                    .map(|b| {
                        b.tables
                            .iter()
                            .flat_map(|t| {
                                t.cls()
                                    .iter()
                                    .map(|r| r.payload.clone())
                                    .collect::<Vec<_>>()
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                let m = monitor::initial_reply(c, &ms, &rules);
                c.send(xid, &m);
            }
            Err(e) => send_error(st, c, raw, e, "flow monitor request"),
        },
        Message::MultipartRequest(req) => stats::multipart(st, c, xid, raw, &req),
        Message::BundleControl(bc) => bundle_control(st, c, xid, raw, &bc),
        Message::BundleAdd(ba) => {
            let Some(b) = c.bundles.get_mut(&ba.bundle_id) else {
                // OVS opens a bundle implicitly on the first add
                c.bundles.insert(
                    ba.bundle_id,
                    conn::Bundle {
                        flags: ba.flags,
                        closed: false,
                        msgs: vec![(ba.header.xid, *ba.message)],
                    },
                );
                return;
            };
            if b.closed {
                send_error(st, c, raw, OfpErr::OFPBFC_BUNDLE_CLOSED, "bundle closed");
                return;
            }
            match &*ba.message {
                Message::FlowMod(_)
                | Message::GroupMod(_)
                | Message::PortMod(_)
                | Message::MeterMod(_) => {
                    b.msgs.push((ba.header.xid, *ba.message));
                }
                _ => send_error(
                    st,
                    c,
                    raw,
                    OfpErr::OFPBFC_MSG_UNSUP,
                    "message not bundleable",
                ),
            }
        }
        Message::GetAsyncRequest => c.send(xid, &Message::GetAsyncReply(stats::async_config(c))),
        Message::SetAsync(b) => c.set_async(&b),
        Message::Resume(p) => {
            if let Err(e) = pio::resume(st, c.bridge, &p) {
                send_error(st, c, raw, e.err, &e.why);
            }
        }
        Message::Experimenter(x) => match x {
            Experimenter::SetFlowFormat(f) => {
                if f != 0 && f != 2 {
                    send_error(st, c, raw, OfpErr::OFPBRC_EPERM, "flow format");
                } else {
                    c.flow_format = f;
                }
            }
            Experimenter::FlowModTableId(b) => c.flow_mod_table_id = b,
            Experimenter::SetPacketInFormat(f) => {
                if f > 2 {
                    send_error(st, c, raw, OfpErr::OFPBRC_EPERM, "packet-in format");
                } else {
                    c.pin_format = f;
                }
            }
            Experimenter::SetControllerId(id) => c.controller_id = id,
            Experimenter::TlvTableRequest => {
                let maps = st.ofproto.extra[c.bridge].tlv.clone();
                c.send(
                    xid,
                    &Message::Experimenter(Experimenter::TlvTableReply {
                        max_option_space: 256,
                        max_fields: 64,
                        maps,
                    }),
                );
            }
            Experimenter::TlvTableMod { command, maps } => {
                let b = c.bridge;
                if let Err(e) = mods::tlv_mod(&mut st.ofproto.extra[b].tlv, command, &maps) {
                    send_error(st, c, raw, e.err, &e.why);
                } else {
                    // tunnel encap and decap read the tun_metadata0 mapping from the snapshot
                    st.publish();
                }
            }
            Experimenter::CtFlushZone(z) => {
                let n = st.shared.conntrack.flush(Some(z));
                tracing::debug!(zone = z, flushed = n, "NXT_CT_FLUSH_ZONE");
            }
            Experimenter::CtFlush { ip_proto, props } => {
                if let Err(why) = ct_flush(st, ip_proto, &props) {
                    send_error(st, c, raw, OfpErr::OFPBRC_BAD_LEN, &why);
                }
            }
            Experimenter::FlowMonitorCancel(id) => {
                let before = c.monitors.len();
                c.monitors.retain(|m| m.id != id);
                if c.monitors.len() == before {
                    send_error(
                        st,
                        c,
                        raw,
                        OfpErr::OFPMOFC_UNKNOWN_MONITOR,
                        "no such monitor",
                    );
                }
            }
            _ => send_error(
                st,
                c,
                raw,
                OfpErr::OFPBRC_BAD_SUBTYPE,
                "experimenter message",
            ),
        },
        _ => send_error(
            st,
            c,
            raw,
            OfpErr::OFPBRC_BAD_TYPE,
            "message not for a switch",
        ),
    }
}

/// Applies a flow mod to the master tables; flow-removed messages go out for deletions.
pub fn apply_flow_mod(
    st: &mut State,
    bridge: usize,
    fm: &openflow::message::FlowMod,
    version: u8,
    table_ext: bool,
    changes: &mut Changes,
) -> Result<(), ModError> {
    st.ofproto.stats.flow_mods += 1;
    let now = now_ms(st);
    st.pipeline_mut();
    let Some(bt) = st.pipeline.bridges.get_mut(bridge) else {
        return Err(ModError {
            err: OfpErr::OFPBRC_EPERM,
            why: "no such bridge".into(),
        });
    };
    mods::check_references(bt, fm)?;
    let r = mods::flow_mod(Arc::make_mut(bt), fm, version, table_ext, now, changes);
    st.ofproto.dirty = true;
    r
}

fn apply_group_mod(
    st: &mut State,
    bridge: usize,
    gm: &openflow::message::GroupMod,
    version: u8,
    changes: &mut Changes,
) -> Result<(), ModError> {
    let now = now_ms(st);
    st.pipeline_mut();
    let Some(bt) = st.pipeline.bridges.get_mut(bridge) else {
        return Err(ModError {
            err: OfpErr::OFPBRC_EPERM,
            why: "no such bridge".into(),
        });
    };
    let r = mods::group_mod(Arc::make_mut(bt), gm, version, now, changes);
    st.ofproto.dirty = true;
    r
}

/// Tells connections about changes: FLOW_REMOVED for removed flows that asked for it, flow
/// monitor updates. `origin` is the connection that made them (it is not in the connection map
/// while its message is handled), `xid` its message's.
pub fn after_changes(
    st: &mut State,
    origin: Option<&mut Conn>,
    bridge: usize,
    xid: u32,
    mut changes: Changes,
) {
    flush_learned(st, bridge, &mut changes);
    if changes.added.is_empty() && changes.modified.is_empty() && changes.removed.is_empty() {
        return;
    }
    let origin_id = origin.as_ref().map(|c| c.id).unwrap_or(0);
    let now = now_ms(st);
    for c in st.ofproto.conns.values_mut().chain(origin) {
        monitor::notify(c, bridge, &changes, origin_id, xid);
        if c.bridge != bridge || !c.wants_async() {
            continue;
        }
        for r in &changes.removed {
            if r.rule.flags & mods::flags::SEND_FLOW_REM != 0
                && c.async_allows(conn::AsyncKind::FlowRemoved, r.reason)
            {
                let m = stats::flow_removed(c, &r.rule, r.reason, now);
                c.send(0, &m);
            }
        }
    }
}

fn port_mod(
    st: &mut State,
    bridge: usize,
    pm: &openflow::message::PortMod,
) -> Result<(), ModError> {
    let Some(bt) = st.pipeline.bridges.get(bridge) else {
        return Err(ModError {
            err: OfpErr::OFPPMFC_BAD_PORT,
            why: "no such bridge".into(),
        });
    };
    let Some(p) = bt.ports.get(&pm.port_no) else {
        return Err(ModError {
            err: OfpErr::OFPPMFC_BAD_PORT,
            why: format!("port {}", pm.port_no),
        });
    };
    const OFPPC_PORT_DOWN: u32 = 1;
    let (mac, admin_up) = st
        .ports
        .iter()
        .find(|x| x.ofport == pm.port_no && x.bridge as usize == bridge)
        .map(|x| (x.mac, x.admin_up))
        .unwrap_or((None, true));
    if mac.is_some_and(|m| m.0 != pm.hw_addr) {
        // OVS (handle_port_mod) refuses a mod aimed at another port's address
        return Err(ModError {
            err: OfpErr::OFPPMFC_BAD_HW_ADDR,
            why: format!("port {}: hardware address differs", pm.port_no),
        });
    }
    let old = p.config | if admin_up { 0 } else { OFPPC_PORT_DOWN };
    let new = (old & !pm.mask) | (pm.config & pm.mask);
    let Some(ps) = st
        .ports
        .iter_mut()
        .find(|x| x.ofport == pm.port_no && x.bridge as usize == bridge)
    else {
        return Ok(());
    };
    // PORT_DOWN is the interface's administrative state, as in OVS (update_port_config turns
    // NETDEV_UP off): the kernel link goes down and nothing is sent or received on it.
    let down = new & OFPPC_PORT_DOWN != 0;
    if pm.mask & OFPPC_PORT_DOWN != 0 && down == ps.admin_up {
        if let Err(e) = afxdp::netdev::set_admin_up(&ps.name, !down) {
            warn!(port = %ps.name, error = %e, "mod-port: cannot change link state");
            return Err(ModError {
                err: OfpErr::OFPPMFC_BAD_CONFIG,
                why: format!("{}: {e}", ps.name),
            });
        }
        let (up, carrier) = afxdp::netdev::link_state(&ps.name);
        ps.admin_up = up;
        ps.carrier = carrier;
    }
    // the port's own flags are kept apart from the link state
    ps.of_config = new & !OFPPC_PORT_DOWN;
    if let Some(p) = Arc::make_mut(&mut st.pipeline_mut().bridges[bridge])
        .ports
        .get_mut(&pm.port_no)
    {
        p.config = new & !OFPPC_PORT_DOWN;
    }
    st.publish();
    if old != new {
        // OVS tells controllers about any configuration change (OFPPR_MODIFY)
        port_status(st, bridge, pm.port_no, 2);
    }
    Ok(())
}

/// Publishes the master tables to the PMDs if they changed. Idle PMDs are not woken: they
/// read the generation before they forward again (see [`answer_barriers`]).
pub fn publish(st: &mut State) {
    if !st.ofproto.dirty {
        return;
    }
    st.ofproto.dirty = false;
    st.ofproto.last_publish = Instant::now();
    st.publish_pipeline();
    // flow mods invalidate only the cached flows that looked up a changed table
    let scope = match &st.retired {
        Some((old, _)) => crate::pipeline::tables::change_scope(old, &st.shared.pipeline.load()),
        None => crate::pmd::Scope::All,
    };
    st.shared.invalidate_scope(scope);
}

/// Answers barriers whose generation every PMD has seen (or that no PMD can hold back: a PMD
/// blocked in poll() reads the generation before it forwards again).
pub fn answer_barriers(st: &mut State) {
    let seen = st
        .pmds
        .iter()
        .map(|p| {
            if p.quiescent.load(Ordering::SeqCst) {
                u64::MAX
            } else {
                p.seen_gen.load(Ordering::Acquire)
            }
        })
        .min()
        .unwrap_or(u64::MAX);
    for c in st.ofproto.conns.values_mut() {
        while let Some(&(xid, gen)) = c.barriers.front() {
            if seen < gen {
                break;
            }
            c.barriers.pop_front();
            c.send(xid, &Message::BarrierReply);
        }
    }
}

/// Gives running PMDs up to `max` to finish their round and see the latest generation, so
/// that a barrier is answered without a trip through the event loop's timeout (a PMD round
/// takes microseconds; ovs-ofctl add-flows waits for a barrier after every flow mod).
pub fn wait_barriers(st: &mut State, max: std::time::Duration) {
    if !barriers_pending(st) {
        return;
    }
    let gen = st.shared.generation.load(Ordering::SeqCst);
    let t0 = Instant::now();
    while st
        .pmds
        .iter()
        .any(|p| !p.quiescent.load(Ordering::SeqCst) && p.seen_gen.load(Ordering::Acquire) < gen)
    {
        if t0.elapsed() >= max {
            break;
        }
        std::hint::spin_loop();
    }
}

/// Whether any barrier is waiting (the control loop then polls briefly instead of sleeping).
pub fn barriers_pending(st: &State) -> bool {
    st.ofproto.conns.values().any(|c| !c.barriers.is_empty())
}

fn bundle_control(st: &mut State, c: &mut Conn, xid: u32, raw: &[u8], bc: &BundleControl) {
    const OPEN: u16 = 0;
    const CLOSE: u16 = 2;
    const COMMIT: u16 = 4;
    const DISCARD: u16 = 6;
    let reply = |c: &mut Conn, t: u16| {
        c.send(
            xid,
            &Message::BundleControl(BundleControl {
                bundle_id: bc.bundle_id,
                ctrl_type: t,
                flags: bc.flags,
                props: Vec::new(),
            }),
        )
    };
    match bc.ctrl_type {
        OPEN => {
            if c.bundles.contains_key(&bc.bundle_id) {
                send_error(st, c, raw, OfpErr::OFPBFC_BUNDLE_EXIST, "bundle exists");
                return;
            }
            if c.bundles.len() >= 64 {
                send_error(
                    st,
                    c,
                    raw,
                    OfpErr::OFPBFC_OUT_OF_BUNDLES,
                    "too many bundles",
                );
                return;
            }
            c.bundles.insert(
                bc.bundle_id,
                conn::Bundle {
                    flags: bc.flags,
                    closed: false,
                    msgs: Vec::new(),
                },
            );
            reply(c, OPEN + 1);
        }
        CLOSE => match c.bundles.get_mut(&bc.bundle_id) {
            Some(b) if !b.closed => {
                b.closed = true;
                reply(c, CLOSE + 1);
            }
            Some(_) => send_error(st, c, raw, OfpErr::OFPBFC_BUNDLE_CLOSED, "already closed"),
            None => send_error(st, c, raw, OfpErr::OFPBFC_BAD_ID, "no such bundle"),
        },
        COMMIT => {
            let Some(b) = c.bundles.remove(&bc.bundle_id) else {
                send_error(st, c, raw, OfpErr::OFPBFC_BAD_ID, "no such bundle");
                return;
            };
            let big = b.msgs.len() >= TRIM_AFTER_MSGS;
            let r = commit_bundle(st, c, b);
            if big {
                // the bundle's decoded messages are gone now
                crate::sys::trim_heap();
            }
            match r {
                Ok(changes) => {
                    let b = c.bridge;
                    after_changes(st, Some(&mut *c), b, xid, changes);
                    st.ofproto.stats.bundles_committed += 1;
                    publish(st);
                    reply(c, COMMIT + 1);
                }
                Err(failed) => {
                    let (inner_xid, inner, e) = *failed;
                    st.ofproto.stats.bundles_failed += 1;
                    warn!(peer = %c.peer, error = %e.why, "bundle aborted");
                    // the failing message's error first, then the bundle's
                    let v = c.version;
                    let inner_raw = openflow::encode(v, inner_xid, &inner);
                    send_error(st, c, &inner_raw, e.err, &e.why);
                    send_error(st, c, raw, OfpErr::OFPBFC_MSG_FAILED, "bundle failed");
                }
            }
        }
        DISCARD => {
            if c.bundles.remove(&bc.bundle_id).is_some() {
                reply(c, DISCARD + 1);
            } else {
                send_error(st, c, raw, OfpErr::OFPBFC_BAD_ID, "no such bundle");
            }
        }
        _ => send_error(st, c, raw, OfpErr::OFPBFC_BAD_TYPE, "bundle control type"),
    }
}

/// Bundles at least this long give their memory back when committed or discarded
/// ([`crate::sys::trim_heap`]).
const TRIM_AFTER_MSGS: usize = 1000;

/// Applies a bundle all-or-nothing: on a scratch copy of the bridge's tables, swapped in only
/// when every message succeeded.
fn commit_bundle(
    st: &mut State,
    c: &Conn,
    b: conn::Bundle,
) -> Result<Changes, Box<(u32, Message, ModError)>> {
    let bridge = c.bridge;
    let now = now_ms(st);
    let Some(orig) = st.pipeline.bridges.get(bridge).cloned() else {
        return Ok(Changes::default());
    };
    let mut scratch = (*orig).clone();
    let mut changes = Changes::default();
    for (xid, m) in b.msgs {
        let r = match &m {
            Message::FlowMod(fm) => {
                st.ofproto.stats.flow_mods += 1;
                mods::check_references(&scratch, fm).and_then(|()| {
                    mods::flow_mod(
                        &mut scratch,
                        fm,
                        c.version,
                        c.flow_mod_table_id,
                        now,
                        &mut changes,
                    )
                })
            }
            Message::GroupMod(gm) => {
                mods::group_mod(&mut scratch, gm, c.version, now, &mut changes)
            }
            Message::MeterMod(mm) => mods::meter_mod(&mut scratch.meters, mm).map(|()| {
                if mm.command == mods::METER_DELETE {
                    mods::delete_flows_using_meter(&mut scratch, mm.meter_id, &mut changes);
                }
            }),
            Message::PortMod(_) => Ok(()),
            _ => Err(ModError {
                err: OfpErr::OFPBFC_MSG_UNSUP,
                why: "unsupported message in bundle".into(),
            }),
        };
        if let Err(e) = r {
            return Err(Box::new((xid, m, e)));
        }
    }
    st.pipeline_mut().bridges[bridge] = Arc::new(scratch);
    st.ofproto.dirty = true;
    Ok(changes)
}

/// Expires flows whose idle or hard timeout passed (checked once a second).
pub fn expire_flows(st: &mut State) {
    let now = now_ms(st);
    for bi in 0..st.pipeline.bridges.len() {
        let mut victims: Vec<(u8, classifier::RuleId, u8)> = Vec::new();
        for (t, tab) in st.pipeline.bridges[bi].tables.iter().enumerate() {
            if tab.is_empty() {
                continue;
            }
            for r in tab.cls().iter() {
                let rule = r.payload;
                if rule.idle_timeout == 0 && rule.hard_timeout == 0 {
                    continue;
                }
                let modified = rule
                    .stats
                    .refreshed_ms
                    .load(Ordering::Relaxed)
                    .max(rule.created_ms);
                if rule.hard_timeout > 0 && now >= modified + rule.hard_timeout as u64 * 1000 {
                    victims.push((t as u8, r.id, mods::reason::HARD_TIMEOUT));
                    continue;
                }
                if rule.idle_timeout > 0 {
                    let used = rule
                        .stats
                        .used_ms
                        .load(Ordering::Relaxed)
                        .max(rule.created_ms);
                    if now >= used + rule.idle_timeout as u64 * 1000 {
                        victims.push((t as u8, r.id, mods::reason::IDLE_TIMEOUT));
                    }
                }
            }
        }
        if victims.is_empty() {
            continue;
        }
        let bt = Arc::make_mut(&mut st.pipeline_mut().bridges[bi]);
        let mut removed = Vec::new();
        for (t, id, why) in victims {
            let tab = bt.table_mut(t as usize);
            if let Some(rule) = tab.remove(id) {
                removed.push(mods::Removed { rule, reason: why });
            }
        }
        st.ofproto.dirty = true;
        after_changes(
            st,
            None,
            bi,
            0,
            Changes {
                removed,
                ..Default::default()
            },
        );
    }
}

/// Tells interested connections that a port changed (OFPPR_ADD 0, DELETE 1, MODIFY 2).
pub fn port_status(st: &mut State, bridge: usize, ofport: u32, reason: u8) {
    let descs: Vec<Option<openflow::types::Port>> = (0..=6)
        .map(|v| stats::port_desc(st, bridge, ofport, v))
        .collect();
    if descs.iter().all(Option::is_none) {
        return;
    }
    for c in st.ofproto.conns.values_mut() {
        let Some(p) = descs.get(c.version as usize).cloned().flatten() else {
            continue;
        };
        if c.bridge == bridge
            && c.wants_async()
            && c.async_allows(conn::AsyncKind::PortStatus, reason)
        {
            c.send(
                0,
                &Message::PortStatus {
                    reason,
                    port: p.clone(),
                },
            );
        }
    }
}

/// Drains the PMDs' packet-in rings and sends packet-ins.
pub fn deliver_packet_ins(st: &mut State) {
    let mut rings = std::mem::take(&mut st.ofproto.pin_rx);
    let mut batch: Vec<(Vec<u8>, PinMeta)> = Vec::new();
    for r in rings.iter_mut() {
        r.drain_with(256, |_, data, meta| {
            batch.push((data.to_vec(), std::mem::take(meta)));
        });
    }
    st.ofproto.pin_rx = rings;
    for (data, meta) in batch {
        pio::packet_in(st, &data, meta);
    }
}

/// Drains the PMDs' learn rings and applies the learned flows.
pub fn deliver_learns(st: &mut State) {
    let mut rings = std::mem::take(&mut st.ofproto.learn_rx);
    let mut batch: Vec<Arc<Learned>> = Vec::new();
    for r in rings.iter_mut() {
        r.drain_with(1024, |_, _, meta| batch.extend(meta.take()));
    }
    st.ofproto.learn_rx = rings;
    if batch.is_empty() {
        return;
    }
    let added = st.ofproto.stats.learned_flows_added;
    for l in batch {
        apply_learned(st, &l);
    }
    // a learned flow takes effect at once (OVS installs it during the upcall), one publish
    // per batch; under a storm of new learned flows the 2 ms floor leaves the rest to the
    // control loop's periodic publish, so megaflows are not flushed on every wake-up
    if st.ofproto.stats.learned_flows_added != added
        && st.ofproto.last_publish.elapsed() >= std::time::Duration::from_millis(2)
    {
        publish(st);
    }
}

/// Applies one learned flow (OVS: ofproto_flow_mod_learn): an identical flow (same match,
/// priority, actions, cookie, timeouts and flags) is only refreshed, with no table change and
/// so no publish; anything else is an ADD, which replaces a flow with the same match and
/// priority and keeps its counters. The publish that follows invalidates the megaflows.
pub fn apply_learned(st: &mut State, l: &Learned) {
    let b = l.bridge as usize;
    let now = now_ms(st);
    let Some(bt) = st.pipeline.bridges.get(b) else {
        return;
    };
    let m = l.fm.match_.to_match();
    let Ok((value, mask, _)) = mods::match_to_key(&m) else {
        st.ofproto.stats.learn_errors += 1;
        return;
    };
    let same = bt.table(l.fm.table_id).and_then(|t| {
        let id = t.cls().find_exact(&value, &mask, l.fm.priority as u32)?;
        let r = t.cls().get(id)?;
        (r.instructions() == l.fm.instructions
            && r.cookie == l.fm.cookie
            && r.idle_timeout == l.fm.idle_timeout
            && r.hard_timeout == l.fm.hard_timeout
            && r.flags & mods::flags::SEND_FLOW_REM == l.fm.flags & mods::flags::SEND_FLOW_REM)
            .then(|| r.clone())
    });
    if let Some(r) = same {
        r.stats.refreshed_ms.fetch_max(now, Ordering::Relaxed);
        st.ofproto.stats.learned_flows_refreshed += 1;
        return;
    }
    let mut ch = Changes::default();
    match internal_flow_mod(st, b, &l.fm, &mut ch) {
        Ok(()) => st.ofproto.stats.learned_flows_added += 1,
        Err(e) => {
            st.ofproto.stats.learn_errors += 1;
            debug!(error = %e.why, "learned flow refused");
        }
    }
    after_changes(st, None, b, 0, ch);
}

/// A flow mod the switch makes itself (learned flows, delete_learned): OpenFlow 1.5 forms,
/// not counted as a controller's flow mod.
fn internal_flow_mod(
    st: &mut State,
    bridge: usize,
    fm: &openflow::message::FlowMod,
    changes: &mut Changes,
) -> Result<(), ModError> {
    let now = now_ms(st);
    let Some(bt) = st.pipeline_mut().bridges.get_mut(bridge) else {
        return Err(ModError {
            err: OfpErr::OFPBRC_EPERM,
            why: "no such bridge".into(),
        });
    };
    let r = mods::flow_mod(Arc::make_mut(bt), fm, 6, true, now, changes);
    st.ofproto.dirty = true;
    r
}

/// `delete_learned` (OVS: learned cookies): once no flow of the bridge has a
/// `learn(delete_learned)` for (table, cookie) any more — its last one was deleted, expired,
/// or modified or replaced into something without it — every flow of that table with that
/// cookie is deleted. The removals are added to `changes` (and may cascade, bounded).
fn flush_learned(st: &mut State, bridge: usize, changes: &mut Changes) {
    let mut checked = 0;
    for _round in 0..8 {
        let mut dead = Vec::new();
        for r in changes.removed[checked..].iter().map(|r| &r.rule) {
            learn::delete_learned_cookies(&r.ofpacts, &mut dead);
        }
        for r in changes.replaced.drain(..) {
            learn::delete_learned_cookies(&r.ofpacts, &mut dead);
        }
        checked = changes.removed.len();
        if dead.is_empty() {
            return;
        }
        dead.sort_unstable();
        dead.dedup();
        let Some(bt) = st.pipeline.bridges.get(bridge) else {
            return;
        };
        let mut live = Vec::new();
        for t in bt.tables.iter().filter(|t| !t.is_empty()) {
            for r in t.cls().iter() {
                learn::delete_learned_cookies(&r.payload.ofpacts, &mut live);
            }
        }
        dead.retain(|c| !live.contains(c));
        for (table, cookie) in dead {
            let fm = openflow::message::FlowMod {
                cookie,
                cookie_mask: u64::MAX,
                table_id: table,
                command: mods::cmd::DELETE,
                idle_timeout: 0,
                hard_timeout: 0,
                priority: 0,
                buffer_id: 0xffff_ffff,
                out_port: openflow::action::ports::ANY,
                out_group: 0xffff_ffff,
                flags: 0,
                importance: 0,
                match_: openflow::types::MatchRepr::Oxm(openflow::Match::default()),
                instructions: Vec::new(),
            };
            let before = changes.removed.len();
            if internal_flow_mod(st, bridge, &fm, changes).is_ok() {
                st.ofproto.stats.learned_flows_deleted += (changes.removed.len() - before) as u64;
            }
        }
    }
}

/// Logs a listener's creation.
pub fn log_listener(bridge: &str, what: &str) {
    info!(bridge, listener = what, "OpenFlow listener");
}

/// Inactivity probes on controller connections (OVS: 5 s): an idle connection gets an echo
/// request; one that stays silent for another interval is closed (and an active one is
/// reconnected by the control loop).
pub fn probe_connections(st: &mut State) {
    let interval = std::time::Duration::from_secs(5);
    for c in st.ofproto.conns.values_mut() {
        if c.service || c.version == 0 {
            continue;
        }
        match c.probe_sent {
            Some(t) if t.elapsed() >= interval => {
                warn!(peer = %c.peer, "no reply to the inactivity probe: disconnecting");
                c.closed = true;
            }
            Some(_) => {}
            None if c.last_rx.elapsed() >= interval => {
                c.probe_sent = Some(Instant::now());
                c.send(0, &Message::EchoRequest(Vec::new()));
            }
            None => {}
        }
    }
}

/// NXT_CT_FLUSH: the whole zone when no tuple field is given, else the matching connections.
fn ct_flush(st: &mut State, ip_proto: u8, props: &[u8]) -> Result<(), String> {
    let r = ctflush::parse(ip_proto, props)?;
    let empty = crate::conntrack::TupleFilter::default();
    let n = if r.orig == empty && r.reply == empty && ip_proto == 0 {
        st.shared.conntrack.flush(Some(r.zone))
    } else {
        st.shared.conntrack.flush_tuple(r.zone, &r.orig, &r.reply)
    };
    debug!(zone = r.zone, flushed = n, "NXT_CT_FLUSH");
    Ok(())
}
