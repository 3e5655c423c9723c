//! Live migration: OVN's RARP activation gates, recognised in the flow tables and opened in the
//! fast path.
//!
//! During a live migration OVN binds the VM's port to two chassis. On the destination it installs
//! three flows with the port binding's cookie (ovn-controller's `setup_rarp_activation_strategy`):
//!
//! - (a) an *activator*: `in_port=P, dl_type=0x8035` (or, since OVN 25.09, a GARP `arp` or an
//!   NA `icmp6 type 136` flow) whose actions load `metadata=D, reg14=K`, send the packet to the
//!   controller with userdata `00 00 00 1a ...` (opcode 26, activation strategy) and resubmit;
//! - (b) an *ingress block*: `in_port=P actions=drop`, above the port's normal flow;
//! - (c) an *egress block*: `metadata=D, reg15=K actions=drop` in the table that outputs to P.
//!
//! Stock OVS keeps the port blocked until ovn-controller has seen the packet-in and deleted (b)
//! and (c). Here the first activation packet opens the gate in the PMD that receives it: the
//! [`GateState`] flag flips, cached flows are invalidated, and translation from then on looks
//! past (b) and (c) (see `pipeline::xlate`). The packet-in still goes to ovn-controller, whose
//! DELETE_STRICTs then remove flows that no longer block anything.
//!
//! Recognition is generic (never by table number: they change in every OVN release) and runs
//! in the control thread before each publish, on small per-table indexes
//! ([`crate::pipeline::tables::GateIndex`]) rather than on every rule. Gate state is keyed by
//! (bridge, ofport, cookie) and outlives the gate flows while the port exists: OVN 23.03 can
//! reinstall the trio after activation (the finalize race) and a restarted ovn-controller
//! reinstalls it until the Southbound database says "activated"; both are bypassed at once,
//! and the second gets the activation packet-in replayed so that ovn-controller records it.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;

use classifier::RuleId;
use openflow::Field;

use crate::pipeline::flow::{self, PKey, PKEY_WORDS};
use crate::pipeline::ofpact::{ControllerSpec, Ofpact};
use crate::pipeline::tables::{BridgeTables, Rule};
use crate::pipeline::PacketInSpec;

/// OVN's `ACTION_OPCODE_ACTIVATION_STRATEGY(_RARP)` as the first 4 userdata bytes (big endian).
pub const OVN_ACTIVATION_OPCODE: [u8; 4] = [0, 0, 0, 26];

/// Whether an action list sends to the controller with OVN's activation opcode.
pub fn is_activator(ofpacts: &[Ofpact]) -> bool {
    activation_controller(ofpacts).is_some()
}

fn activation_controller(ofpacts: &[Ofpact]) -> Option<&Arc<ControllerSpec>> {
    ofpacts.iter().find_map(|a| match a {
        Ofpact::Controller(c) if c.userdata.starts_with(&OVN_ACTIVATION_OPCODE) && !c.pause => {
            Some(c)
        }
        _ => None,
    })
}

/// What kind of packet an activator flow matches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Trigger {
    Rarp = 1,
    Garp = 2,
    Na = 3,
    /// `port/activate` from an operator.
    Operator = 4,
}

impl Trigger {
    fn from_u8(v: u8) -> Option<Trigger> {
        Some(match v {
            1 => Trigger::Rarp,
            2 => Trigger::Garp,
            3 => Trigger::Na,
            4 => Trigger::Operator,
            _ => return None,
        })
    }
    pub fn name(self) -> &'static str {
        match self {
            Trigger::Rarp => "RARP",
            Trigger::Garp => "GARP",
            Trigger::Na => "NA",
            Trigger::Operator => "operator",
        }
    }
}

/// Which way a blocking flow blocks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GateDir {
    /// (b): everything the VIF sends.
    Ingress,
    /// (c): everything the pipeline delivers to the VIF.
    Egress,
}

/// One gate as the PMDs see it: written by the PMD that activates it, read by everyone.
/// Everything is an atomic so the fast path neither locks nor allocates.
#[derive(Debug, Default)]
pub struct GateState {
    activated: AtomicBool,
    /// Wall-clock nanoseconds (Unix epoch) of the activation.
    activated_ns: AtomicU64,
    /// Source MAC of the activating packet (48 bits; 0 for an operator).
    mac: AtomicU64,
    trigger: AtomicU8,
    /// Packets dropped by (b) and (c) while armed.
    pub drops_in: AtomicU64,
    pub drops_out: AtomicU64,
    /// Activation packets seen (the RARP burst is five).
    pub triggers_seen: AtomicU64,
    /// Wall-clock ns at which the PMD handed the first packet to the port (egress) and took
    /// the first non-activation packet from it (ingress) after the activation; 0 while
    /// awaited. The switch-owned activation latency is `first_out_ns - activated_ns`.
    first_out_ns: AtomicU64,
    first_in_ns: AtomicU64,
}

impl PartialEq for GateState {
    fn eq(&self, o: &Self) -> bool {
        std::ptr::eq(self, o)
    }
}

/// Wall-clock nanoseconds since the Unix epoch (a vDSO call, no syscall).
pub fn now_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

impl GateState {
    pub fn is_activated(&self) -> bool {
        self.activated.load(Ordering::Acquire)
    }

    /// Opens the gate; true when this call did it (the caller then invalidates cached flows).
    /// Called per activation packet by the PMD: one atomic load when already open.
    #[inline]
    pub fn activate(&self, mac: u64, trigger: Trigger) -> bool {
        self.triggers_seen.fetch_add(1, Ordering::Relaxed);
        if self.activated.load(Ordering::Relaxed) || self.activated.swap(true, Ordering::AcqRel) {
            return false;
        }
        self.mac.store(mac, Ordering::Relaxed);
        self.trigger.store(trigger as u8, Ordering::Relaxed);
        self.activated_ns.store(now_ns(), Ordering::Release);
        true
    }

    /// Whether translation should mark the flows it builds through this gate's bypassed
    /// blocking flow in direction `dir` with [`crate::pipeline::DpAction::GateFirst`]: only
    /// between the activation and the first packet that way, so steady-state flows carry no
    /// marker (the first marked packet invalidates the cached flows once).
    #[inline]
    pub fn awaiting_first(&self, dir: GateDir) -> bool {
        self.is_activated() && self.first_slot(dir).load(Ordering::Relaxed) == 0
    }

    fn first_slot(&self, dir: GateDir) -> &AtomicU64 {
        match dir {
            GateDir::Ingress => &self.first_in_ns,
            GateDir::Egress => &self.first_out_ns,
        }
    }

    /// Records the first packet through the opened gate in direction `dir`; true when this
    /// call recorded it (the caller then drops its cached flows, which carry the marker).
    /// Runs only for flows translated while the first packet was awaited.
    #[inline]
    pub fn first(&self, dir: GateDir) -> bool {
        let slot = self.first_slot(dir);
        slot.load(Ordering::Relaxed) == 0
            && self.is_activated()
            && slot
                .compare_exchange(0, now_ns().max(1), Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
    }

    /// Wall-clock ns of the first packet handed to the port after the activation.
    pub fn first_out(&self) -> Option<u64> {
        Some(self.first_out_ns.load(Ordering::Acquire)).filter(|&t| t != 0)
    }

    /// Wall-clock ns of the first packet taken from the port after the activation.
    pub fn first_in(&self) -> Option<u64> {
        Some(self.first_in_ns.load(Ordering::Acquire)).filter(|&t| t != 0)
    }

    #[inline]
    pub fn count_drop(&self, dir: GateDir) {
        match dir {
            GateDir::Ingress => self.drops_in.fetch_add(1, Ordering::Relaxed),
            GateDir::Egress => self.drops_out.fetch_add(1, Ordering::Relaxed),
        };
    }

    /// Closes the gate again (operator re-arm).
    fn rearm(&self) {
        self.activated.store(false, Ordering::Release);
        self.activated_ns.store(0, Ordering::Relaxed);
        self.first_out_ns.store(0, Ordering::Relaxed);
        self.first_in_ns.store(0, Ordering::Relaxed);
        self.mac.store(0, Ordering::Relaxed);
        self.trigger.store(0, Ordering::Relaxed);
    }

    /// (time, MAC, trigger) of the activation, if activated.
    pub fn activation(&self) -> Option<(u64, u64, Trigger)> {
        if !self.is_activated() {
            return None;
        }
        let t = self.activated_ns.load(Ordering::Acquire);
        let trig = Trigger::from_u8(self.trigger.load(Ordering::Relaxed))?;
        Some((t, self.mac.load(Ordering::Relaxed), trig))
    }
}

/// The role of a rule in a gate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Activator(Trigger),
    Block(GateDir),
}

/// A gated rule, as the snapshot carries it.
#[derive(Clone, Debug)]
pub struct GateRule {
    pub state: Arc<GateState>,
    pub role: Role,
}

/// What translation needs to know about one bridge's gates.
#[derive(Clone, Debug, Default)]
pub struct GateMap {
    /// Gated rules by (table, rule).
    rules: HashMap<(u8, RuleId), GateRule>,
    /// Every gate by port, with its flows installed or not (ovn-controller may delete them
    /// before the first packet reaches the port): an output to (or from) a port whose gate
    /// awaits its first packet after the activation carries the
    /// [`crate::pipeline::DpAction::GateFirst`] marker.
    ports: HashMap<u32, Arc<GateState>>,
}

impl GateMap {
    /// The gate role of rule `id` of table `t`.
    #[inline]
    pub fn get(&self, k: &(u8, RuleId)) -> Option<&GateRule> {
        if self.rules.is_empty() {
            return None;
        }
        self.rules.get(k)
    }

    /// The gate of `ofport` if it awaits its first packet in direction `dir`.
    #[inline]
    pub fn awaiting(&self, ofport: u32, dir: GateDir) -> Option<&Arc<GateState>> {
        if self.ports.is_empty() {
            return None;
        }
        self.ports.get(&ofport).filter(|g| g.awaiting_first(dir))
    }

    /// Whether `ofport` has a gate that is armed (recognised, not activated yet): its RARP
    /// must be handled before packets received after it on other ports (see
    /// [`rx_order_gated_first`]).
    pub fn armed(&self, ofport: u32) -> bool {
        self.ports.get(&ofport).is_some_and(|g| !g.is_activated())
    }

    /// The ports whose gate is armed.
    pub fn armed_ports(&self) -> impl Iterator<Item = u32> + '_ {
        self.ports
            .iter()
            .filter(|(_, g)| !g.is_activated())
            .map(|(&p, _)| p)
    }

    /// Gated rules.
    pub fn len(&self) -> usize {
        self.rules.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty() && self.ports.is_empty()
    }

    fn same(&self, o: &GateMap) -> bool {
        self.rules.len() == o.rules.len()
            && self.ports.len() == o.ports.len()
            && self.rules.iter().all(|(k, v)| {
                o.rules
                    .get(k)
                    .is_some_and(|x| x.role == v.role && Arc::ptr_eq(&x.state, &v.state))
            })
            && self
                .ports
                .iter()
                .all(|(k, v)| o.ports.get(k).is_some_and(|x| Arc::ptr_eq(x, v)))
    }
}

/// Orders a PMD's RX sockets so that those of ports with an armed gate come first, the others
/// keeping their order. Why: a PMD round polls each socket in turn, up to a batch each. When
/// the PMD runs late (preempted on a shared core), the tunnel socket can already hold stream
/// packets sent *after* the RARP that is waiting on the VM's socket; polled first, they would
/// meet the still-closed gate and be dropped although the VM had announced itself before they
/// were sent. Polling the gated port first opens the gate before any packet that arrived after
/// the RARP is looked at. Runs when the sockets or the flow tables change, never per packet.
pub fn rx_order_gated_first(rx: &mut [usize], armed: impl Fn(usize) -> bool) {
    // stable: sort_by_key keeps the relative order of equal keys
    rx.sort_by_key(|&si| !armed(si));
}

/// One activator flow of a recognised gate.
#[derive(Clone, Debug)]
pub struct Activator {
    pub table: u8,
    pub id: RuleId,
    pub priority: u16,
    pub trigger: Trigger,
    pub spec: Arc<ControllerSpec>,
    /// The pipeline fields at its controller action (the packet-in metadata).
    pub metadata: Vec<(Field, u128)>,
}

/// A gate found in a bridge's tables.
#[derive(Clone, Debug)]
pub struct Recognized {
    pub ofport: u32,
    pub cookie: u64,
    /// Logical datapath (metadata) and port (reg14) keys the activators load.
    pub dp_key: u64,
    pub port_key: u32,
    pub activators: Vec<Activator>,
    /// (table, rule, priority) of the blocking flows (b) and (c).
    pub ingress: Vec<(u8, RuleId, u16)>,
    pub egress: Vec<(u8, RuleId, u16)>,
    /// Other ports that same-cookie flows for this logical port also output to (tunnels to
    /// the port's other chassis: multi-chassis copies).
    pub copies_to: Vec<u32>,
}

fn lf(f: Field) -> flow::Loc {
    flow::loc(f).expect("built-in field has a location")
}

fn mask_of(fields: &[Field]) -> PKey {
    let mut m = [0u64; PKEY_WORDS];
    for &f in fields {
        let l = lf(f);
        l.or_mask(&mut m, l.full());
    }
    m
}

/// Whether any flow with `cookie` matches `in_port=ofport` exactly: the port binding's
/// ingress flows are installed on this chassis.
fn port_bound(bt: &BridgeTables, cookie: u64, ofport: u32) -> bool {
    bt.tables.iter().any(|table| {
        table.gate_index().with_cookie(cookie).any(|id| {
            table.key_of(id).is_some_and(|(value, mask)| {
                lf(Field::InPortOxm).get(&mask) != 0
                    && lf(Field::InPortOxm).get(&value) == ofport as u128
            })
        })
    })
}

/// Full-mask value of `f` in a rule's match (value, mask), if matched exactly.
fn exact(r: &(PKey, PKey), f: Field) -> Option<u128> {
    let l = lf(f);
    (l.get(&r.1) == l.full()).then(|| l.get(&r.0))
}

fn trigger_of(r: &(PKey, PKey)) -> Option<Trigger> {
    match exact(r, Field::EthType)? {
        0x8035 => Some(Trigger::Rarp),
        0x0806 => Some(Trigger::Garp),
        0x86dd
            if exact(r, Field::IpProto) == Some(58) && exact(r, Field::Icmpv6Type) == Some(136) =>
        {
            Some(Trigger::Na)
        }
        _ => None,
    }
}

/// The pipeline key an activator's actions build up to its controller action, starting from
/// `in_port=P` (the registers and metadata OVN loads there).
fn activator_key(r: &Rule, ofport: u32) -> PKey {
    let mut k = [0u64; PKEY_WORDS];
    lf(Field::InPortOxm).set(&mut k, ofport as u128);
    for a in &r.ofpacts {
        match a {
            Ofpact::SetField {
                loc, value, mask, ..
            } => loc.set_masked(&mut k, *value, *mask),
            Ofpact::Controller(_) => break,
            _ => {}
        }
    }
    k
}

fn outputs(acts: &[Ofpact], out: &mut Vec<u32>) {
    for a in acts {
        match a {
            Ofpact::Output { port, .. } if *port < openflow::action::ports::MAX => out.push(*port),
            Ofpact::Clone(v) | Ofpact::WriteActions(v) => outputs(v, out),
            _ => {}
        }
    }
}

/// Finds the gates in one bridge's tables: for every activator, the same-cookie blocking
/// flows that complete the trio. Touches only the indexed activators and same-cookie rules.
pub fn recognize(bt: &BridgeTables) -> Vec<Recognized> {
    let in_port_only = mask_of(&[Field::InPortOxm]);
    let dp_port_only = mask_of(&[Field::Metadata, Field::Reg(15)]);
    let mut found: BTreeMap<(u32, u64), Recognized> = BTreeMap::new();
    for (t, table) in bt.tables.iter().enumerate() {
        for &aid in &table.gate_index().activators {
            let (Some(a), Some(akey)) = (table.cls().get(aid), table.key_of(aid)) else {
                continue;
            };
            let (Some(p), Some(trigger)) = (exact(&akey, Field::InPortOxm), trigger_of(&akey))
            else {
                continue;
            };
            let Some(spec) = activation_controller(&a.ofpacts) else {
                continue;
            };
            let ofport = p as u32;
            let k = activator_key(a, ofport);
            let dp_key = lf(Field::Metadata).get(&k) as u64;
            let port_key = lf(Field::Reg(14)).get(&k) as u32;
            let act = Activator {
                table: t as u8,
                id: aid,
                priority: a.priority,
                trigger,
                spec: spec.clone(),
                metadata: crate::pipeline::xlate::packet_in_metadata(&k),
            };
            let e = found
                .entry((ofport, a.cookie))
                .or_insert_with(|| Recognized {
                    ofport,
                    cookie: a.cookie,
                    dp_key,
                    port_key,
                    activators: Vec::new(),
                    ingress: Vec::new(),
                    egress: Vec::new(),
                    copies_to: Vec::new(),
                });
            if e.activators.is_empty() || (e.dp_key, e.port_key) == (dp_key, port_key) {
                e.activators.push(act);
            }
        }
    }
    let mut out = Vec::new();
    for ((ofport, cookie), mut g) in found {
        for (t, table) in bt.tables.iter().enumerate() {
            for id in table.gate_index().with_cookie(cookie) {
                let (Some(r), Some((value, mask))) = (table.cls().get(id), table.key_of(id)) else {
                    continue;
                };
                let is_drop = r.ofpacts.is_empty();
                if is_drop
                    && mask == in_port_only
                    && lf(Field::InPortOxm).get(&value) == ofport as u128
                    && g.activators.iter().any(|a| a.table as usize == t)
                {
                    g.ingress.push((t as u8, id, r.priority));
                    continue;
                }
                let covers_dp_port = (0..PKEY_WORDS)
                    .all(|i| mask[i] & dp_port_only[i] == dp_port_only[i])
                    && lf(Field::Metadata).get(&value) == g.dp_key as u128
                    && lf(Field::Reg(15)).get(&value) == g.port_key as u128;
                if !covers_dp_port {
                    continue;
                }
                if is_drop && mask == dp_port_only {
                    // (c) must sit in the table that delivers to P: what the table yields
                    // below it for this logical port is an output to P
                    let mut key = [0u64; PKEY_WORDS];
                    lf(Field::Metadata).set(&mut key, g.dp_key as u128);
                    lf(Field::Reg(15)).set(&mut key, g.port_key as u128);
                    let below = table.lookup_below(&key, &mut [0; PKEY_WORDS], r.priority);
                    let mut o = Vec::new();
                    if let Some((_, b)) = below {
                        outputs(&b.ofpacts, &mut o);
                    }
                    if o.contains(&ofport) {
                        g.egress.push((t as u8, id, r.priority));
                    }
                    continue;
                }
                let mut o = Vec::new();
                outputs(&r.ofpacts, &mut o);
                g.copies_to.extend(o.into_iter().filter(|&x| x != ofport));
            }
        }
        if !g.ingress.is_empty() && !g.egress.is_empty() {
            g.copies_to.sort_unstable();
            g.copies_to.dedup();
            out.push(g);
        }
    }
    out
}

/// Ports that same-cookie flows matching `metadata=dp,reg15=port` output to, other than
/// `ofport` (multi-chassis copies), for a gate whose trio is gone.
fn copies(bt: &BridgeTables, cookie: u64, dp: u64, port: u32, ofport: u32) -> Vec<u32> {
    let dp_port_only = mask_of(&[Field::Metadata, Field::Reg(15)]);
    let mut v = Vec::new();
    for table in &bt.tables {
        for id in table.gate_index().with_cookie(cookie) {
            let (Some(r), Some((value, mask))) = (table.cls().get(id), table.key_of(id)) else {
                continue;
            };
            if (0..PKEY_WORDS).all(|i| mask[i] & dp_port_only[i] == dp_port_only[i])
                && lf(Field::Metadata).get(&value) == dp as u128
                && lf(Field::Reg(15)).get(&value) == port as u128
            {
                outputs(&r.ofpacts, &mut v);
            }
        }
    }
    v.retain(|&x| x != ofport);
    v.sort_unstable();
    v.dedup();
    v
}

/// Gate key: (bridge index, ofport, cookie).
pub type GateKey = (u8, u32, u64);

const TIMELINE_MAX: usize = 64;

/// A gate as the control thread tracks it.
#[derive(Debug)]
pub struct Gate {
    pub state: Arc<GateState>,
    pub bridge: String,
    pub port: String,
    /// The flows, while installed.
    pub recog: Option<Recognized>,
    /// The last recognition (kept after the flows go, for the packet-in replay and display).
    pub last: Recognized,
    pub armed_ns: u64,
    pub copies_to: Vec<u32>,
    timeline: VecDeque<(u64, String)>,
    activation_logged: bool,
    /// The first packets after the activation, out to and in from the port, are in the
    /// timeline.
    first_out_logged: bool,
    first_in_logged: bool,
    /// The binding came back to this chassis after being gone longer than the grace period:
    /// the next gate recognised for it is a new migration, whatever arrives in between
    /// (ovn-controller installs the port's normal flows and sets ovn-installed a few ms
    /// before the gate flows, in a separate flow batch).
    rebound: bool,
    /// Since when no flow of the binding takes the port's packets (the binding may have left
    /// this chassis), if so.
    unbound_ns: Option<u64>,
}

/// How long (250 ms) a binding must have been gone from the chassis before a re-installed gate counts
/// as a new migration rather than ovn-controller re-writing the same binding (its finalize
/// step, a restart): those re-add the flows within milliseconds.
const UNBOUND_GRACE_NS: u64 = 250_000_000;

impl Gate {
    fn event(&mut self, t: u64, s: String) {
        if self.timeline.len() == TIMELINE_MAX {
            self.timeline.pop_front();
        }
        self.timeline.push_back((t, s));
    }

    /// Closes the gate again (a new migration, or the operator), so that the next
    /// activation and first packets are logged again.
    fn rearm(&mut self) {
        self.state.rearm();
        self.activation_logged = false;
        self.first_out_logged = false;
        self.first_in_logged = false;
        self.rebound = false;
    }

    /// Records the PMD's activation in the timeline once.
    fn sync(&mut self) {
        match self.state.activation() {
            Some((t, mac, trig)) if !self.activation_logged => {
                self.activation_logged = true;
                let what = if trig == Trigger::Operator {
                    "activated by the operator (port/activate)".to_string()
                } else {
                    format!(
                        "first {} from {}: activated in the fast path",
                        trig.name(),
                        crate::packet::Mac::from_u64(mac)
                    )
                };
                self.event(t, what);
            }
            None => {
                self.activation_logged = false;
                self.first_out_logged = false;
                self.first_in_logged = false;
            }
            _ => {}
        }
        let act = self.state.activated_ns.load(Ordering::Acquire);
        if let (Some(t), false) = (self.state.first_out(), self.first_out_logged) {
            self.first_out_logged = true;
            self.event(
                t,
                format!(
                    "first packet delivered to the port after the activation (+{} us)",
                    t.saturating_sub(act) / 1000
                ),
            );
        }
        if let (Some(t), false) = (self.state.first_in(), self.first_in_logged) {
            self.first_in_logged = true;
            self.event(
                t,
                format!(
                    "first packet forwarded from the port after the activation (+{} us)",
                    t.saturating_sub(act) / 1000
                ),
            );
        }
    }
}

/// A packet-in to send again: the activation of a gate whose flows were re-installed.
pub struct Replay {
    pub frame: Vec<u8>,
    pub spec: Arc<PacketInSpec>,
}

/// Every bridge's gates (control thread).
#[derive(Default)]
pub struct Migration {
    pub gates: BTreeMap<GateKey, Gate>,
    /// Ports whose binding ovn-controller released (`external_ids:ovn-installed` gone from
    /// the Interface row), with since when: fed by the OVSDB session.
    pub released: std::collections::HashMap<String, u64>,
}

impl Migration {
    /// The OVSDB session's view of a port: whether ovn-controller marks it installed.
    pub fn note_installed(&mut self, port: &str, installed: bool) {
        self.note_installed_at(port, installed, now_ns());
    }

    /// [`Self::note_installed`] at time `now`. A binding back after the grace period marks
    /// the port's gates: the next gate recognised is a new migration, even when the gate
    /// flows arrive in a later publish than ovn-installed (they do).
    pub fn note_installed_at(&mut self, port: &str, installed: bool, now: u64) {
        if installed {
            if let Some(t) = self.released.remove(port) {
                if now.saturating_sub(t) > UNBOUND_GRACE_NS {
                    for g in self.gates.values_mut().filter(|g| g.port == port) {
                        if !g.rebound && g.state.is_activated() {
                            g.rebound = true;
                            g.event(
                                now,
                                format!(
                                    "ovn-installed back after {} ms: the next gate is a new migration",
                                    now.saturating_sub(t) / 1_000_000
                                ),
                            );
                        }
                    }
                }
            }
        } else if !self.released.contains_key(port) {
            self.released.insert(port.to_string(), now);
        }
    }
}

/// A 60-byte RARP "reverse request" from `mac`, as QEMU announces a migrated guest.
pub fn rarp_frame(mac: u64) -> Vec<u8> {
    let m = &mac.to_be_bytes()[2..];
    let mut f = vec![0u8; 60];
    f[0..6].fill(0xff);
    f[6..12].copy_from_slice(m);
    f[12..14].copy_from_slice(&0x8035u16.to_be_bytes());
    f[14..22].copy_from_slice(&[0, 1, 8, 0, 6, 4, 0, 3]);
    f[22..28].copy_from_slice(m);
    f[32..38].copy_from_slice(m);
    f
}

impl Migration {
    /// Re-recognises the gates of every bridge of the master tables before a publish, updates
    /// the gate states and puts each bridge's [`GateMap`] into it when it changed. Returns the
    /// packet-ins to replay.
    pub fn refresh(&mut self, bridges: &mut [Arc<BridgeTables>]) -> Vec<Replay> {
        self.refresh_at(bridges, now_ns())
    }

    /// [`Self::refresh`] at time `now` (wall-clock ns).
    pub fn refresh_at(&mut self, bridges: &mut [Arc<BridgeTables>], now: u64) -> Vec<Replay> {
        let mut replays = Vec::new();
        for (bi, bt_arc) in bridges.iter_mut().enumerate() {
            let bi8 = bi as u8;
            let has_gates = self.gates.keys().any(|k| k.0 == bi8);
            let any_activator = bt_arc
                .tables
                .iter()
                .any(|t| !t.gate_index().activators.is_empty());
            if !has_gates && !any_activator && bt_arc.gates.is_empty() {
                continue;
            }
            let bt: &BridgeTables = bt_arc;
            let rec = recognize(bt);
            let mut seen: HashSet<GateKey> = HashSet::new();
            // flows that name a port the bridge does not have gate nothing (yet)
            for r in rec.into_iter().filter(|r| bt.ports.contains_key(&r.ofport)) {
                let key = (bi8, r.ofport, r.cookie);
                seen.insert(key);
                let port = bt
                    .ports
                    .get(&r.ofport)
                    .map(|p| p.name.clone())
                    .unwrap_or_else(|| format!("ofport {}", r.ofport));
                let describe = |r: &Recognized| {
                    let acts: Vec<String> = r
                        .activators
                        .iter()
                        .map(|a| {
                            format!("{} table {} prio {}", a.trigger.name(), a.table, a.priority)
                        })
                        .collect();
                    let f = |v: &[(u8, RuleId, u16)]| {
                        v.iter()
                            .map(|(t, _, p)| format!("table {t} prio {p}"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    };
                    format!(
                        "activator {}; ingress drop {}; egress drop {}",
                        acts.join(", "),
                        f(&r.ingress),
                        f(&r.egress)
                    )
                };
                match self.gates.get_mut(&key) {
                    None => {
                        let mut g = Gate {
                            state: Arc::new(GateState::default()),
                            bridge: bt.name.clone(),
                            port,
                            recog: Some(r.clone()),
                            last: r.clone(),
                            armed_ns: now,
                            copies_to: r.copies_to.clone(),
                            timeline: VecDeque::new(),
                            activation_logged: false,
                            first_out_logged: false,
                            first_in_logged: false,
                            rebound: false,
                            unbound_ns: None,
                        };
                        g.event(
                            now,
                            format!("gate armed (cookie {:#x}: {})", r.cookie, describe(&r)),
                        );
                        tracing::info!(bridge = %bt.name, port = %g.port, cookie = r.cookie, "live-migration gate armed");
                        self.gates.insert(key, g);
                    }
                    Some(g) => {
                        g.sync();
                        // a binding released for a while and claimed again is a new migration;
                        // ovn-controller re-writing the same binding (the finalize step, a
                        // restart) keeps ovn-installed, or drops it for milliseconds
                        let new_migration = std::mem::take(&mut g.rebound)
                            || g.unbound_ns
                                .is_some_and(|t| now.saturating_sub(t) > UNBOUND_GRACE_NS)
                            || self
                                .released
                                .get(&g.port)
                                .is_some_and(|&t| now.saturating_sub(t) > UNBOUND_GRACE_NS);
                        g.unbound_ns = None;
                        if g.recog.is_none() && new_migration && g.state.is_activated() {
                            g.rearm();
                            g.event(
                                now,
                                "the binding left and came back: gate armed again (new migration)"
                                    .into(),
                            );
                        }
                        if g.recog.is_none() {
                            if g.state.is_activated() {
                                g.event(
                                    now,
                                    "gate flows re-installed on an activated port: bypassed; activation packet-in replayed"
                                        .into(),
                                );
                                tracing::info!(bridge = %bt.name, port = %g.port, "gate re-installed on an activated port: bypassed, packet-in replayed");
                                if let Some(a) = r.activators.first() {
                                    let mac = g.state.mac.load(Ordering::Relaxed);
                                    replays.push(Replay {
                                        frame: rarp_frame(mac),
                                        spec: Arc::new(PacketInSpec {
                                            bridge: bi8,
                                            table_id: a.table,
                                            cookie: r.cookie,
                                            spec: a.spec.clone(),
                                            metadata: a.metadata.clone(),
                                            frozen: None,
                                        }),
                                    });
                                }
                            } else {
                                g.armed_ns = now;
                                g.event(
                                    now,
                                    format!(
                                        "gate armed (cookie {:#x}: {})",
                                        r.cookie,
                                        describe(&r)
                                    ),
                                );
                            }
                        } else if g.recog.as_ref().map(describe) != Some(describe(&r)) {
                            g.event(now, format!("gate flows changed: {}", describe(&r)));
                        }
                        if g.copies_to != r.copies_to {
                            note_copies(g, &r.copies_to, now);
                        }
                        g.last = r.clone();
                        g.recog = Some(r);
                    }
                }
            }
            // gates whose flows went away, and gates of ports that went away
            let keys: Vec<GateKey> = self
                .gates
                .range((bi8, 0, 0)..=(bi8, u32::MAX, u64::MAX))
                .map(|(k, _)| *k)
                .collect();
            for key in keys {
                let Some(g) = self.gates.get_mut(&key) else {
                    continue;
                };
                if !bt.ports.contains_key(&key.1) {
                    tracing::info!(bridge = %bt.name, port = %g.port, "port deleted: gate state dropped");
                    self.gates.remove(&key);
                    continue;
                }
                g.sync();
                if seen.contains(&key) {
                    continue;
                }
                if g.recog.take().is_some() {
                    g.event(now, "gate flows deleted (DELETE_STRICT received)".into());
                    if !g.state.is_activated() {
                        tracing::info!(bridge = %bt.name, port = %g.port, "gate flows deleted before activation");
                        self.gates.remove(&key);
                        continue;
                    }
                }
                // The binding left this chassis (no flow of its cookie takes the port's
                // packets any more): if the gate comes back after a grace period, it is a new
                // migration and must block again; ovn-controller re-writing the same binding
                // (its finalize step, a restart) re-adds the flows within milliseconds, and
                // the activation stays.
                if port_bound(bt, key.2, key.1) {
                    // back: after the grace period, the next gate is a new migration (the
                    // port's normal flows come a publish or two before the gate's)
                    if let Some(t) = g.unbound_ns.take() {
                        if now.saturating_sub(t) > UNBOUND_GRACE_NS && g.state.is_activated() {
                            g.rebound = true;
                            g.event(
                                now,
                                format!(
                                    "the binding's flows are back after {} ms: the next gate is a new migration",
                                    now.saturating_sub(t) / 1_000_000
                                ),
                            );
                        }
                    }
                } else if g.unbound_ns.is_none() {
                    g.unbound_ns = Some(now);
                    g.event(now, "the binding's flows left the port".into());
                }
                let c = copies(bt, key.2, g.last.dp_key, g.last.port_key, key.1);
                if c != g.copies_to {
                    note_copies(g, &c, now);
                }
            }
            // the map the snapshot carries
            let mut map = GateMap::default();
            for (key, g) in self.gates.range((bi8, 0, 0)..=(bi8, u32::MAX, u64::MAX)) {
                map.ports.insert(key.1, g.state.clone());
                let Some(r) = &g.recog else {
                    continue;
                };
                for a in &r.activators {
                    map.rules.insert(
                        (a.table, a.id),
                        GateRule {
                            state: g.state.clone(),
                            role: Role::Activator(a.trigger),
                        },
                    );
                }
                for &(t, id, _) in &r.ingress {
                    map.rules.insert(
                        (t, id),
                        GateRule {
                            state: g.state.clone(),
                            role: Role::Block(GateDir::Ingress),
                        },
                    );
                }
                for &(t, id, _) in &r.egress {
                    map.rules.insert(
                        (t, id),
                        GateRule {
                            state: g.state.clone(),
                            role: Role::Block(GateDir::Egress),
                        },
                    );
                }
            }
            if !map.same(&bt_arc.gates) {
                Arc::make_mut(bt_arc).gates = Arc::new(map);
            }
        }
        replays
    }

    /// Notes a packet-in that the control thread sent for an activation flow.
    pub fn note_packet_in(&mut self, spec: &PacketInSpec, sent: u64) {
        if !spec.spec.userdata.starts_with(&OVN_ACTIVATION_OPCODE) {
            return;
        }
        let in_port = spec
            .metadata
            .iter()
            .find(|(f, _)| *f == Field::InPortOxm)
            .map(|(_, v)| *v as u32)
            .unwrap_or(0);
        if let Some(g) = self.gates.get_mut(&(spec.bridge, in_port, spec.cookie)) {
            g.sync();
            g.event(
                now_ns(),
                format!(
                    "packet-in sent to {sent} controller connection(s) (table {}, cookie {:#x})",
                    spec.table_id, spec.cookie
                ),
            );
        }
    }

    /// Gates of a port (by name, or all when `None`).
    pub fn of_port<'a>(
        &'a mut self,
        port: Option<&'a str>,
    ) -> impl Iterator<Item = (&'a GateKey, &'a mut Gate)> + 'a {
        self.gates
            .iter_mut()
            .filter(move |(_, g)| port.is_none_or(|p| g.port == p))
    }

    /// `port/activate`: opens the port's gates as an activation packet would.
    pub fn activate(&mut self, port: &str) -> Result<usize, String> {
        let mut n = 0;
        for (_, g) in self.of_port(Some(port)) {
            if g.state.activate(0, Trigger::Operator) {
                n += 1;
            }
            g.sync();
        }
        if n == 0 && !self.gates.values().any(|g| g.port == port) {
            return Err(format!("{port}: no live-migration gate"));
        }
        Ok(n)
    }

    /// `port/rearm`: closes the port's gates again; a gate whose flows are gone is forgotten.
    pub fn rearm(&mut self, port: &str) -> Result<usize, String> {
        let now = now_ns();
        let mut n = 0;
        let mut forget = Vec::new();
        for (k, g) in self.of_port(Some(port)) {
            g.rearm();
            n += 1;
            if g.recog.is_some() {
                g.armed_ns = now;
                g.event(now, "re-armed by the operator (port/rearm)".into());
            } else {
                forget.push(*k);
            }
        }
        for k in forget {
            self.gates.remove(&k);
        }
        if n == 0 {
            return Err(format!("{port}: no live-migration gate"));
        }
        Ok(n)
    }

    /// `port/state` for gates (text or JSON lines are built by the caller).
    pub fn sync_all(&mut self) {
        for g in self.gates.values_mut() {
            g.sync();
        }
    }

    /// The gates of a port with their events, oldest first.
    #[allow(clippy::type_complexity)]
    pub fn timeline_events(
        &mut self,
        port: &str,
    ) -> Result<Vec<(GateKey, &Gate, Vec<(u64, String)>)>, String> {
        for (_, g) in self.of_port(Some(port)) {
            g.sync();
        }
        let v: Vec<_> = self
            .gates
            .iter()
            .filter(|(_, g)| g.port == port)
            .map(|(k, g)| {
                let mut ev: Vec<(u64, String)> = g.timeline.iter().cloned().collect();
                ev.sort_by_key(|e| e.0);
                (*k, g, ev)
            })
            .collect();
        if v.is_empty() {
            return Err(format!("{port}: no live-migration gate"));
        }
        Ok(v)
    }

    /// The events of a port's gates, oldest first.
    pub fn timeline(&mut self, port: &str) -> Result<String, String> {
        let mut s = String::new();
        let mut any = false;
        for (k, g) in self.of_port(Some(port)) {
            any = true;
            g.sync();
            let _ = writeln!(s, "{} ofport {} cookie {:#x}:", g.port, k.1, k.2);
            let mut ev: Vec<&(u64, String)> = g.timeline.iter().collect();
            ev.sort_by_key(|e| e.0);
            for (t, e) in ev {
                let _ = writeln!(s, "  {} {e}", fmt_time(*t));
            }
        }
        if !any {
            return Err(format!("{port}: no live-migration gate"));
        }
        Ok(s)
    }
}

fn note_copies(g: &mut Gate, c: &[u32], now: u64) {
    if c.is_empty() && !g.copies_to.is_empty() {
        g.event(
            now,
            "duplication stopped (no more copies to other chassis)".into(),
        );
    } else if !c.is_empty() {
        g.event(now, format!("copies to ofports {c:?}"));
    }
    g.copies_to = c.to_vec();
}

/// `seconds.microseconds` since the epoch, UTC wall clock.
pub fn fmt_time(ns: u64) -> String {
    format!("{}.{:06}", ns / 1_000_000_000, (ns / 1000) % 1_000_000)
}

#[cfg(test)]
mod tests;
