//! Translation: runs a packet's key through a bridge's OpenFlow tables and produces a datapath
//! flow: the mask of every key bit a decision depended on, and the list of datapath actions
//! ([`DpAction`]) that any packet matching it can execute without walking the tables again.
//!
//! How it stays correct while caching:
//! - every classifier lookup ORs the bits it examined into `wc`;
//! - every action that reads a packet field (move, output_reg, push, hashing for groups,
//!   bundle, multipath, dec_ttl's test, NORMAL's MAC lookups) un-wildcards that field;
//! - actions that depend on things outside the key (packet length: check_pkt_larger) make the
//!   result uncacheable: the packet is handled and the next one translated again.
//! - modified packet fields are written to the packet by datapath `Set` actions emitted just
//!   before each output ("commit"), so outputs see the packet as the pipeline had it then.
//!
//! Registers, metadata and the other pipeline-only words start at fixed values and change only
//! by actions that read key fields, so the datapath mask never needs them.

use std::sync::Arc;

use openflow::action::ports;
use openflow::Field;

use super::flow::{self, loc, Loc, PKey, DP, PIPE_PORT_CONJ, PKEY_WORDS};
use super::mac::{Learned, MacTable};
use super::ofpact::{ControllerSpec, CtOfpact, CtZone, Ofpact, SubField};
use super::recirc::{RecircState, RecircTable};
use super::tables::{group_type, BridgeTables, Pipeline, RuleStats};
use super::{CtExec, DpAction, DpConfig, DpField, DpPort, Frozen, LearnRef, PacketInSpec};
use crate::packet::geneve::GeneveOpt;
use crate::packet::key::{w, FlowKey};
use crate::packet::{ethertype, ipproto};
use crate::port::tunnel::{TunnelIp, TunnelKey};
use crate::tunnel::{ip_str, EncapParams, LocalIf, TnlPort, TnlRecv, TnlSnapshot, TunnelHeader};

/// Nested resubmits allowed (OVS: MAX_DEPTH 64). As in OVS, only a resubmit to the same or
/// an earlier table deepens: OVN's pipelines walk forward through ~50 tables per logical
/// datapath, several datapaths per packet.
pub const MAX_DEPTH: u32 = 64;
/// Native nesting allowed (every resubmit, forward or not): bounds the translation's stack
/// (PMD threads get [`XLATE_STACK`]).
pub const MAX_NEST: u32 = 1024;
/// Stack size of threads that translate (PMDs): MAX_NEST levels of a few hundred bytes each
/// with a wide margin (virtual memory, committed only as used).
pub const XLATE_STACK: usize = 32 << 20;
/// Resubmits allowed in one translation (OVS: MAX_RESUBMITS = 64 * 64).
pub const MAX_RESUBMITS: u32 = 4096;

/// What a patch port crossing clears of the datapath key (word, bits kept): the tunnel
/// (id, endpoints, tun_metadata0, flags, presence) and the conntrack state (zone, state,
/// mark, label, original tuple), as OVS's patch_port_output does; pkt_mark, dp_hash, the
/// recirculation id and the packet itself stay.
const PATCH_CLEARED: [(usize, u64); 11] = [
    (w::TUN_ID, 0),
    (w::TUN_ADDR, 0),
    (w::TUN_META0, 0),
    (w::TUN_CT, 0),
    (w::MARKS, 0xffff_ffff),
    (w::CT_LABEL_HI, 0),
    (w::CT_LABEL_LO, 0),
    (w::HASH, 0xffff_ffff),
    (w::CT_NW, 0),
    (w::CT_TP, 0),
    (w::TUN_PRESENT, 0),
];

/// Inputs that stay the same during one translation.
pub struct XlateIn<'a> {
    pub pipe: &'a Pipeline,
    pub cfg: &'a DpConfig,
    pub macs: &'a MacTable,
    /// Seconds since start (MAC learning).
    pub now: u32,
    /// Milliseconds since start (rule `used` times).
    pub now_ms: u64,
    /// Length of the packet being translated (check_pkt_larger).
    pub pkt_len: u32,
    /// Whether to record a human-readable trace (ofproto/trace).
    pub trace: bool,
    /// Frozen states of `ct(table=N)` recirculations.
    pub recirc: &'a RecircTable,
}

/// Why a translation dropped the packet (beyond "no output"), counted by the caller.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum XlateDrop {
    /// The input port belongs to no bridge.
    NoBridge,
    /// Too many nested or total resubmits (a loop in the tables).
    ResubmitLimit,
    /// A recirculated packet whose recirc_id names no frozen state, or no id was left.
    RecircLost,
    /// dec_ttl on a packet whose TTL ran out.
    TtlExpired,
    /// Output to a tunnel port whose remote end has no route out of one of our bridges'
    /// LOCAL ports (or no source address, or no remote address with remote_ip=flow).
    TunnelNoRoute,
    /// Output to a tunnel port whose next hop's MAC is not known yet (an ARP request is sent).
    TunnelNeighMiss,
}

/// `skip_to` of a [`DpAction::Meter`] outside any clone: a dropped packet skips past the
/// end of the list (every index is below it), i.e. is dropped.
pub const METER_SKIP_UNSET: u32 = u32::MAX;

/// The result of a translation.
#[derive(Debug, Default)]
pub struct XlateOut {
    pub actions: Vec<DpAction>,
    /// Datapath key bits the result depends on.
    pub mask: FlowKey,
    /// Rules (and group buckets) the packet went through, to credit their counters.
    pub rules: Vec<Arc<RuleStats>>,
    /// A MAC entry to keep alive while the flow is used (NORMAL).
    pub learn: Option<LearnRef>,
    /// The translation learnt or moved a MAC: cached flooding decisions are stale.
    pub invalidates: bool,
    /// False when the result depends on something the key does not capture.
    pub cacheable: bool,
    pub drop: Option<XlateDrop>,
    pub flooded: bool,
    pub trace: Vec<String>,
    /// The OpenFlow tables the translation looked up ([`table_tag`] bits): a cached flow
    /// depends on these and on nothing else in the flow tables, so a flow mod elsewhere
    /// leaves it cached (see `Shared::invalidate_tables`).
    pub tables: [u64; 4],
}

/// The bit of (bridge `bridge`, table `table`) in a 256-bit set of looked-up tables. Tables of
/// different bridges may share a bit: a change then drops a few more cached flows than it
/// must, never fewer.
#[inline]
pub fn table_tag(bridge: u8, table: u8) -> (usize, u64) {
    let i = (table as usize + 61 * bridge as usize) & 255;
    (i / 64, 1u64 << (i % 64))
}

/// A pausing controller action: its spec, the pipeline fields then, table and cookie.
type PausePin = (Arc<ControllerSpec>, Vec<(Field, u128)>, u8, u64);

struct Xlate<'a> {
    inp: &'a XlateIn<'a>,
    br: &'a BridgeTables,
    flow: PKey,
    /// The packet as the datapath actions emitted so far leave it.
    base: PKey,
    /// Bits changed by actions and not yet written to the packet.
    dirty: PKey,
    wc: PKey,
    out: XlateOut,
    depth: u32,
    /// Native nesting (trace indentation, stack bound).
    nest: u32,
    resubmits: u32,
    stack: Vec<u128>,
    action_set: Vec<Ofpact>,
    exit: bool,
    table_id: u8,
    cookie: u64,
    in_dp: DpPort,
    /// Set once a packet-in with `pause` froze the translation.
    paused: bool,
    /// The remaining actions of each level, recorded while unwinding after a pause.
    frozen_frames: Vec<(u8, u64, Vec<Ofpact>)>,
    /// The pausing controller action's packet-in, completed with the frozen state at the end.
    pause_pin: Option<PausePin>,
}

fn lf(f: Field) -> Loc {
    loc(f).expect("built-in field has a location")
}

impl<'a> Xlate<'a> {
    fn new(inp: &'a XlateIn<'a>, br: &'a BridgeTables, flow: PKey, in_dp: DpPort) -> Self {
        Xlate {
            inp,
            br,
            base: flow,
            flow,
            dirty: [0; PKEY_WORDS],
            wc: [0; PKEY_WORDS],
            out: XlateOut {
                cacheable: true,
                ..Default::default()
            },
            depth: 0,
            nest: 0,
            resubmits: 0,
            stack: Vec::new(),
            action_set: Vec::new(),
            exit: false,
            table_id: 0,
            cookie: 0,
            in_dp,
            paused: false,
            frozen_frames: Vec::new(),
            pause_pin: None,
        }
    }

    fn trace(&mut self, s: impl FnOnce() -> String) {
        if self.inp.trace {
            let indent = "    ".repeat(self.nest as usize);
            let line = s();
            self.out.trace.push(format!("{indent}{line}"));
        }
    }

    /// Marks bits of field `f` as examined.
    fn read(&mut self, f: Field, mask: u128) {
        lf(f).or_mask(&mut self.wc, mask);
    }

    fn get(&self, f: Field) -> u128 {
        lf(f).get(&self.flow)
    }

    fn in_port(&self) -> u32 {
        lf(Field::InPortOxm).get(&self.flow) as u32
    }

    fn dl_type(&mut self) -> u16 {
        self.read(Field::EthType, 0xffff);
        self.get(Field::EthType) as u16
    }

    fn nw_proto(&mut self) -> u8 {
        self.read(Field::IpProto, 0xff);
        self.get(Field::IpProto) as u8
    }

    // ---------------------------------------------------------------- tables

    /// Looks `table` up and runs the matching rule's actions; a miss does nothing (as a
    /// resubmit to an empty table does in OVS).
    fn run_table(&mut self, table: u8) {
        self.run_table_as(table, false)
    }

    /// [`Self::run_table`]; with `ct_orig` (`resubmit(,T,ct)`) the lookup sees the packet's
    /// 5-tuple replaced by its connection's original-direction tuple (ct_nw_src/dst,
    /// ct_nw_proto, ct_tp_src/dst), and the wildcards of what it examined land on those fields;
    /// the actions then run on the packet's own fields (OVS xlate_table_action, tuple_swap).
    /// Without a tuple (untracked, or not IP) the resubmit does nothing, as in OVS. IPv6
    /// tuples are not kept by this switch's key, so an IPv6 packet does nothing either.
    fn run_table_as(&mut self, table: u8, ct_orig: bool) {
        let (w, bit) = table_tag(self.br.index, table);
        self.out.tables[w] |= bit;
        let Some(t) = self.br.table(table) else {
            return;
        };
        if ct_orig {
            self.read(Field::CtNwProto, 0xff);
            let dl_type = self.dl_type();
            if self.get(Field::CtNwProto) == 0 || dl_type != 0x0800 {
                self.trace(|| {
                    if dl_type == 0x86dd {
                        "resubmit(ct) of an IPv6 packet: not supported (no IPv6 conntrack tuple)"
                            .into()
                    } else {
                        "resubmit(ct) with non-tracked or non-IP packet!".into()
                    }
                });
                return;
            }
            self.tuple_swap();
        }
        t.stats
            .lookups
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let found = t
            .lookup_id(&self.flow, &mut self.wc)
            .map(|(id, r)| (id, r.clone()));
        if ct_orig {
            self.tuple_swap();
        }
        let Some((mut id, mut rule)) = found else {
            self.trace(|| format!("{table}. No match."));
            return;
        };
        // live-migration gates: an activated gate's blocking rules are looked past (their
        // wildcards stay in the mask, the megaflow is invalidated when the gate changes)
        while let Some(g) = self.br.gates.get(&(table, id)) {
            use crate::migration::Role;
            match g.role {
                Role::Block(dir) if g.state.is_activated() => {
                    self.trace(|| {
                        format!(
                            "{table}. priority {} gate drop ({dir:?}) bypassed: port activated",
                            rule.priority
                        )
                    });
                    match t.lookup_below(&self.flow, &mut self.wc, rule.priority) {
                        Some((i, r)) => (id, rule) = (i, r.clone()),
                        None => {
                            self.trace(|| format!("{table}. No match."));
                            return;
                        }
                    }
                }
                Role::Block(dir) => {
                    self.out
                        .actions
                        .push(DpAction::GateDrop(g.state.clone(), dir));
                    break;
                }
                Role::Activator(trigger) => {
                    self.out
                        .actions
                        .push(DpAction::Activate(g.state.clone(), trigger));
                    break;
                }
            }
        }
        t.stats
            .matched
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.out.rules.push(rule.stats.clone());
        self.trace(|| {
            format!(
                "{table}. {}, priority {}, cookie {:#x}",
                describe_match(&rule.match_()),
                rule.priority,
                rule.cookie
            )
        });
        let (saved_table, saved_cookie) = (self.table_id, self.cookie);
        self.table_id = table;
        self.cookie = rule.cookie;
        self.run(&rule.ofpacts);
        self.table_id = saved_table;
        self.cookie = saved_cookie;
    }

    /// Swaps the IPv4 5-tuple with the conntrack original tuple, in the packet and in the
    /// wildcards (what a lookup examines while swapped is a ct_* field).
    fn tuple_swap(&mut self) {
        for (a, b) in [
            (Field::IpSrc, Field::CtNwSrc),
            (Field::IpDst, Field::CtNwDst),
            (Field::IpProto, Field::CtNwProto),
            (Field::TcpSrc, Field::CtTpSrc),
            (Field::TcpDst, Field::CtTpDst),
        ] {
            let (la, lb) = (lf(a), lf(b));
            for k in [&mut self.flow, &mut self.wc] {
                let (va, vb) = (la.get(k), lb.get(k));
                la.set(k, vb);
                lb.set(k, va);
            }
        }
    }

    fn resubmit(&mut self, in_port: Option<u32>, table: Option<u8>) {
        self.resubmit_as(in_port, table, false)
    }

    fn resubmit_as(&mut self, in_port: Option<u32>, table: Option<u8>, ct_orig: bool) {
        if self.depth >= MAX_DEPTH || self.resubmits >= MAX_RESUBMITS || self.nest >= MAX_NEST {
            self.trace(|| "resubmit limit reached: dropping".into());
            self.out.drop = Some(XlateDrop::ResubmitLimit);
            self.out.actions.clear();
            self.exit = true;
            return;
        }
        self.resubmits += 1;
        let table = table.unwrap_or(self.table_id);
        let saved_port = self.in_port();
        if let Some(p) = in_port {
            lf(Field::InPortOxm).set(&mut self.flow, p as u128);
        }
        let deepens = (table <= self.table_id) as u32;
        self.depth += deepens;
        self.nest += 1;
        self.run_table_as(table, ct_orig);
        self.nest -= 1;
        self.depth -= deepens;
        if in_port.is_some() {
            lf(Field::InPortOxm).set(&mut self.flow, saved_port as u128);
        }
    }

    // ---------------------------------------------------------------- actions

    fn run(&mut self, acts: &[Ofpact]) {
        for (i, a) in acts.iter().enumerate() {
            if self.exit || self.paused {
                return;
            }
            self.run_one(a);
            if self.paused {
                self.frozen_frames
                    .push((self.table_id, self.cookie, acts[i + 1..].to_vec()));
                return;
            }
        }
    }

    fn run_one(&mut self, a: &Ofpact) {
        match a {
            Ofpact::Output { port, max_len } => self.output(*port, *max_len),
            Ofpact::OutputReg { src, max_len } => {
                self.read_sub(src);
                let p = src.get(&self.flow) as u32;
                self.output(p, *max_len);
            }
            Ofpact::Controller(spec) => self.controller(spec.clone(), None),
            Ofpact::SetField {
                field,
                loc,
                value,
                mask,
            } => {
                loc.set_masked(&mut self.flow, *value, *mask);
                loc.or_mask(&mut self.dirty, *mask);
                if *field == Field::TunMetadata(0) {
                    self.flow[DP + w::TUN_PRESENT] |= 1;
                }
                self.trace(|| {
                    let name = match field {
                        Field::Reg(n) => format!("reg{n}"),
                        Field::Xreg(n) => format!("xreg{n}"),
                        Field::Xxreg(n) => format!("xxreg{n}"),
                        Field::TunMetadata(n) => format!("tun_metadata{n}"),
                        f => f.info().name.to_string(),
                    };
                    if *mask == loc.full() {
                        format!("set_field:{value:#x}->{name}")
                    } else {
                        format!("set_field:{value:#x}/{mask:#x}->{name}")
                    }
                });
            }
            Ofpact::Move { src, dst } => {
                self.read_sub(src);
                let v = src.get(&self.flow);
                dst.set(&mut self.flow, v);
                dst.loc.or_mask(&mut self.dirty, dst.mask());
                self.mark_present(dst.loc);
            }
            Ofpact::StackPush(sf) => {
                self.read_sub(sf);
                let v = sf.get(&self.flow);
                if self.stack.len() < 1024 {
                    self.stack.push(v);
                }
            }
            Ofpact::StackPop(sf) => {
                let v = self.stack.pop().unwrap_or(0);
                sf.set(&mut self.flow, v);
                sf.loc.or_mask(&mut self.dirty, sf.mask());
                self.mark_present(sf.loc);
            }
            Ofpact::PushVlan(_) => {
                let l = lf(Field::VlanTci);
                self.read(Field::VlanTci, 0xffff);
                // OpenFlow: push_vlan copies the existing tag's fields, else VID 0 / PCP 0
                let cur = l.get(&self.flow) as u16;
                l.set(&mut self.flow, (cur | 0x1000) as u128);
                l.or_mask(&mut self.dirty, 0xffff);
            }
            Ofpact::PopVlan => {
                let l = lf(Field::VlanTci);
                self.read(Field::VlanTci, 0xffff);
                l.set(&mut self.flow, 0);
                l.or_mask(&mut self.dirty, 0xffff);
            }
            Ofpact::DecTtl(_) => self.dec_ttl(),
            Ofpact::Resubmit { in_port, table, ct } => self.resubmit_as(*in_port, *table, *ct),
            Ofpact::GotoTable(t) => {
                let t = *t;
                // goto_table only goes forward: it never deepens (OVS)
                self.nest += 1;
                if self.nest < MAX_NEST {
                    self.run_table(t);
                } else {
                    self.out.drop = Some(XlateDrop::ResubmitLimit);
                    self.exit = true;
                }
                self.nest -= 1;
            }
            Ofpact::Group(g) => self.group(*g),
            Ofpact::Meter(id) => self.meter(*id),
            Ofpact::Clone(inner) => self.clone_actions(inner),
            Ofpact::Conjunction { .. } => {}
            Ofpact::Ct(ct) => self.conntrack(ct),
            Ofpact::CtClear => {
                self.clear_conntrack();
                if self
                    .out
                    .actions
                    .iter()
                    .any(|a| matches!(a, DpAction::Ct(_)))
                    || self.flow[DP + w::META] >> 32 != 0
                {
                    // only a packet through ct() (here or before its recirculation, whose id
                    // every mask matches) has conntrack metadata to forget
                    self.out.actions.push(DpAction::CtClear);
                }
                self.trace(|| "ct_clear".into());
            }
            Ofpact::Learn(l) => self.learn(l),
            Ofpact::CheckPktLarger { len, dst } => {
                // depends on the packet's length, which no key captures: not cacheable
                self.out.cacheable = false;
                let v = (self.inp.pkt_len > *len as u32) as u128;
                dst.set(&mut self.flow, v);
            }
            Ofpact::Bundle(b) => self.bundle(b),
            Ofpact::Multipath(m, dst) => {
                let h = self.hash_l4(m.basis as u32);
                let n = (m.max_link as u64) + 1;
                let link = if n > 0 { (h as u64 % n) as u128 } else { 0 };
                dst.set(&mut self.flow, link);
            }
            Ofpact::SetQueue(_) | Ofpact::PopQueue => {}
            Ofpact::Exit => self.exit = true,
            Ofpact::Nop(_) => {}
            Ofpact::ClearActions => self.action_set.clear(),
            Ofpact::WriteActions(acts) => self.action_set.extend(acts.iter().cloned()),
        }
    }

    /// `learn`: the learned flow depends on the source fields only (un-wildcarded here), so
    /// it is computed once and every packet of the datapath flow asks for the same flow.
    fn learn(&mut self, l: &super::learn::LearnAction) {
        l.mask(&mut self.wc);
        let learned = l.execute(&self.flow, self.br.index);
        self.trace(|| {
            format!(
                "learn: table={} priority={} cookie={:#x} match {} actions {:?}",
                learned.fm.table_id,
                learned.fm.priority,
                learned.fm.cookie,
                describe_match(&learned.fm.match_.to_match()),
                learned.fm.instructions
            )
        });
        if let Some(dst) = &l.result_dst {
            // learn2 write_result: the flow is asked for; the limit is not enforced here
            dst.set(&mut self.flow, 1);
        }
        self.out.actions.push(DpAction::Learn(Arc::new(learned)));
    }

    /// A write to tun_metadata0 makes the option present (encap emits it).
    fn mark_present(&mut self, l: Loc) {
        if l == lf(Field::TunMetadata(0)) {
            self.flow[DP + w::TUN_PRESENT] |= 1;
        }
    }

    /// The ct_* fields as an untracked packet has them (after `ct_clear`, and after a `ct()`
    /// whose results only its recirculation sees: OVS's flow_clear_conntrack).
    fn clear_conntrack(&mut self) {
        for f in [
            Field::CtState,
            Field::CtZone,
            Field::CtMark,
            Field::CtLabel,
            Field::CtNwProto,
            Field::CtNwSrc,
            Field::CtNwDst,
            Field::CtTpSrc,
            Field::CtTpDst,
        ] {
            lf(f).set(&mut self.flow, 0);
        }
    }

    /// `ct(...)`: the packet as the pipeline has modified it so far goes through the tracker
    /// (a datapath action run per packet); with `table=`, a copy continues in that table with
    /// the ct_* fields set, through a recirculation. Zone, mark and label are resolved here from
    /// the pipeline's registers, so the datapath action carries plain numbers.
    fn conntrack(&mut self, ct: &CtOfpact) {
        let zone = match ct.zone {
            CtZone::Imm(z) => z,
            CtZone::Field(sf) => {
                self.read_sub(&sf);
                sf.get(&self.flow) as u16
            }
        };
        // the tracker must see the packet as modified so far
        self.commit();
        // exec(): set ct_mark / ct_label bits (values may come from registers)
        let (mut mark_mask, mut label_mask) = (0u32, 0u128);
        for a in &ct.exec {
            match a {
                Ofpact::SetField {
                    field,
                    loc,
                    value,
                    mask,
                } => {
                    loc.set_masked(&mut self.flow, *value, *mask);
                    match field {
                        Field::CtMark => mark_mask |= *mask as u32,
                        _ => label_mask |= *mask,
                    }
                }
                Ofpact::Move { src, dst } => {
                    self.read_sub(src);
                    let v = src.get(&self.flow);
                    dst.set(&mut self.flow, v);
                    match dst.field {
                        Field::CtMark => mark_mask |= dst.mask() as u32,
                        _ => label_mask |= dst.mask(),
                    }
                }
                _ => {}
            }
        }
        let mark = self.get(Field::CtMark) as u32;
        let label = self.get(Field::CtLabel);
        let nat = ct.nat.as_ref().map(nat_spec);
        let recirc = match ct.table {
            None => 0,
            Some(table) => {
                let mut pipe = [0u64; flow::PIPE_WORDS];
                pipe.copy_from_slice(&self.flow[..flow::PIPE_WORDS]);
                // conj_id is a per-lookup result, not state to carry
                pipe[PIPE_PORT_CONJ] &= 0xffff_ffff;
                let st = RecircState {
                    bridge: self.br.index,
                    table,
                    pipe,
                    stack: self.stack.clone(),
                };
                match self.inp.recirc.intern(st) {
                    Some(id) => id,
                    None => {
                        self.trace(|| "ct: no recirculation id left: dropping".into());
                        self.out.drop = Some(XlateDrop::RecircLost);
                        self.exit = true;
                        return;
                    }
                }
            }
        };
        let act = crate::conntrack::CtAction {
            zone,
            commit: ct.commit,
            force: ct.force,
            nat,
            set_mark: (ct.commit && mark_mask != 0).then_some((mark & mark_mask, mark_mask)),
            set_label: (ct.commit && label_mask != 0).then_some((label & label_mask, label_mask)),
        };
        self.trace(|| {
            let mut t = format!("ct(zone={zone}");
            if ct.commit {
                t.push_str(",commit");
            }
            if let Some(n) = &act.nat {
                t.push_str(&format!(",nat({:?})", n.kind));
            }
            if let Some((v, m)) = act.set_mark {
                t.push_str(&format!(",mark={v:#x}/{m:#x}"));
            }
            if let Some((v, m)) = act.set_label {
                t.push_str(&format!(",label={v:#x}/{m:#x}"));
            }
            if let Some(tb) = ct.table {
                t.push_str(&format!(",table={tb}) -> recirc({recirc:#x})"));
            } else {
                t.push(')');
            }
            t
        });
        self.out
            .actions
            .push(DpAction::Ct(Arc::new(CtExec { act, recirc })));
        self.clear_conntrack();
    }

    fn read_sub(&mut self, sf: &SubField) {
        sf.loc.or_mask(&mut self.wc, sf.mask());
    }

    fn dec_ttl(&mut self) {
        let t = self.dl_type();
        if t != ethertype::IPV4 && t != ethertype::IPV6 {
            return;
        }
        self.read(Field::IpTtl, 0xff);
        let ttl = self.get(Field::IpTtl) as u8;
        if ttl <= 1 {
            // OVS sends invalid-TTL packets to controllers asking for them; we drop and count
            self.out.drop = Some(XlateDrop::TtlExpired);
            self.exit = true;
            return;
        }
        lf(Field::IpTtl).set(&mut self.flow, (ttl - 1) as u128);
        lf(Field::IpTtl).or_mask(&mut self.dirty, 0xff);
    }

    /// A hash over the L2-L4 addresses, for select groups, bundle and multipath. Reads (and so
    /// un-wildcards) the fields it hashes.
    fn hash_l4(&mut self, basis: u32) -> u32 {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325 ^ basis as u64;
        let mut mix = |v: u128| {
            h ^= v as u64 ^ (v >> 64) as u64;
            h = h.wrapping_mul(0x100_0000_01b3);
            h ^= h >> 31;
        };
        let t = self.dl_type();
        mix(t as u128);
        if t == ethertype::IPV4 || t == ethertype::IPV6 {
            let (s, d) = if t == ethertype::IPV4 {
                (Field::IpSrc, Field::IpDst)
            } else {
                (Field::Ipv6Src, Field::Ipv6Dst)
            };
            self.read(s, u128::MAX);
            self.read(d, u128::MAX);
            mix(self.get(s));
            mix(self.get(d));
            let p = self.nw_proto();
            mix(p as u128);
            if p == ipproto::TCP || p == ipproto::UDP || p == ipproto::SCTP {
                self.read(Field::TcpSrc, 0xffff);
                self.read(Field::TcpDst, 0xffff);
                mix(self.get(Field::TcpSrc));
                mix(self.get(Field::TcpDst));
            }
        } else {
            self.read(Field::EthSrc, u128::MAX);
            self.read(Field::EthDst, u128::MAX);
            mix(self.get(Field::EthSrc));
            mix(self.get(Field::EthDst));
        }
        (h ^ (h >> 32)) as u32
    }

    /// Runs `acts` on a copy of the pipeline state: afterwards the packet and the pipeline are
    /// as before (the datapath undoes any header change the clone made).
    /// The `meter` instruction / `meter:N` action: a per-packet [`DpAction::Meter`] holding
    /// the meter itself. Where a dropped packet resumes is settled by the enclosing clone (see
    /// [`Xlate::clone_actions`]); at the top level it is the end: dropped. A meter that does
    /// not exist (deleted with its flows, so only during a race) lets packets pass, as
    /// dp_netdev_run_meter does for an unknown meter id.
    fn meter(&mut self, id: u32) {
        match self.br.meters.get(&id) {
            Some(m) => {
                self.trace(|| format!("meter:{id}"));
                self.out.actions.push(DpAction::Meter {
                    meter: m.clone(),
                    id,
                    skip_to: METER_SKIP_UNSET,
                });
            }
            None => self.trace(|| format!("meter:{id}: no such meter")),
        }
    }

    fn clone_actions(&mut self, acts: &[Ofpact]) {
        let saved_flow = self.flow;
        let saved_dirty = self.dirty;
        let saved_stack = self.stack.len();
        let saved_exit = self.exit;
        self.commit();
        let base_before = self.base;
        let first = self.out.actions.len();
        self.run(acts);
        let body_end = self.out.actions.len();
        self.exit = saved_exit;
        self.stack.truncate(saved_stack);
        // put the packet back as it was before the clone
        self.flow = base_before;
        self.dirty = [0; PKEY_WORDS];
        for (i, b) in base_before.iter().enumerate().skip(DP) {
            self.dirty[i] = self.base[i] ^ b;
        }
        self.commit();
        self.scope_meters(first, body_end);
        self.flow = saved_flow;
        self.dirty = saved_dirty;
    }

    /// Settles where a packet dropped by a meter inside a clone (or group bucket) resumes:
    /// after the clone, so only the clone's copy is dropped (OpenFlow: a bucket or clone is
    /// an independent copy of the packet). Actions `first..body_end` are the clone's body and
    /// those after `body_end` put the packet back as it was before the clone. If the body did
    /// not change the packet before the meter, the dropped copy resumes after that
    /// restoration (nothing to undo); otherwise at the restoration, whose field writes are
    /// absolute and so also right for a copy that stopped at the meter. Known limit: a VLAN
    /// push or pop *after* the meter in the same clone body is then undone by the
    /// restoration although it did not run.
    fn scope_meters(&mut self, first: usize, body_end: usize) {
        let end = self.out.actions.len();
        let Some(body) = self.out.actions.get_mut(first..body_end) else {
            return; // the list was cleared (resubmit limit): nothing to settle
        };
        let mut changed = false;
        for a in body.iter_mut() {
            match a {
                DpAction::Meter { skip_to, .. } if *skip_to == METER_SKIP_UNSET => {
                    let to = if changed { body_end } else { end };
                    *skip_to = u32::try_from(to).unwrap_or(METER_SKIP_UNSET);
                }
                DpAction::Set { .. } | DpAction::PushVlan { .. } | DpAction::PopVlan => {
                    changed = true
                }
                _ => {}
            }
        }
    }

    fn group(&mut self, id: u32) {
        let Some(g) = self.br.groups.get(&id).cloned() else {
            self.trace(|| format!("group:{id}: no such group"));
            return;
        };
        self.out.rules.push(g.stats.clone());
        match g.group_type {
            group_type::ALL => {
                for b in &g.buckets {
                    self.out.rules.push(b.stats.clone());
                    self.clone_actions(&b.ofpacts);
                }
            }
            group_type::INDIRECT => {
                if let Some(b) = g.buckets.first() {
                    self.out.rules.push(b.stats.clone());
                    self.clone_actions(&b.ofpacts);
                }
            }
            group_type::FAST_FAILOVER => {
                let live = g.buckets.iter().find(|b| self.port_live(b.watch_port));
                if let Some(b) = live {
                    self.out.rules.push(b.stats.clone());
                    self.clone_actions(&b.ofpacts);
                }
            }
            group_type::SELECT => {
                let total: u64 = g.buckets.iter().map(|b| b.weight as u64).sum();
                if total == 0 {
                    return;
                }
                let h = self.hash_l4(0) as u64;
                let mut pick = h % total;
                for b in &g.buckets {
                    if pick < b.weight as u64 {
                        self.out.rules.push(b.stats.clone());
                        self.clone_actions(&b.ofpacts);
                        break;
                    }
                    pick -= b.weight as u64;
                }
            }
            _ => {}
        }
    }

    fn port_live(&self, ofport: u32) -> bool {
        if ofport == ports::ANY {
            return true;
        }
        self.br.ports.get(&ofport).is_some_and(|p| p.up)
    }

    fn bundle(&mut self, b: &openflow::action::Bundle) {
        // algorithm 0 = active_backup (first live member), 1 = hrw (hash)
        let members: Vec<u32> = b
            .members
            .iter()
            .map(|m| openflow::action::port_from_of10(*m))
            .filter(|m| self.port_live(*m))
            .collect();
        let chosen = if members.is_empty() {
            ports::ANY
        } else if b.algorithm == 0 {
            members[0]
        } else {
            let h = self.hash_l4(b.basis as u32);
            members[h as usize % members.len()]
        };
        if b.dst == 0 {
            if chosen != ports::ANY {
                self.output(chosen, 0);
            }
        } else {
            let h = openflow::OxmHeader {
                class: (b.dst >> 16) as u16,
                field: ((b.dst >> 9) & 0x7f) as u8,
                hasmask: false,
                length: (b.dst & 0xff) as u8,
                experimenter: 0,
            };
            if let Some(f) = Field::from_header(&h) {
                if let Some(l) = loc(f) {
                    let ofs = (b.ofs_nbits >> 6) as u32;
                    let n = (b.ofs_nbits & 0x3f) as u32 + 1;
                    let m = super::ofpact::bits_mask(n) << ofs;
                    let v = if chosen == ports::ANY {
                        0
                    } else {
                        chosen as u128
                    };
                    l.set_masked(&mut self.flow, v << ofs, m);
                }
            }
        }
    }

    // ---------------------------------------------------------------- outputs

    fn output(&mut self, port: u32, max_len: u16) {
        match port {
            ports::IN_PORT => {
                let p = self.in_port();
                self.output_port(p, true);
            }
            ports::NORMAL => self.normal(),
            ports::FLOOD | ports::ALL => self.flood(port == ports::FLOOD),
            ports::CONTROLLER => self.controller(
                Arc::new(ControllerSpec {
                    max_len,
                    controller_id: 0,
                    reason: 1,
                    userdata: Vec::new(),
                    pause: false,
                    meter_id: None,
                }),
                None,
            ),
            ports::TABLE => {
                // only meaningful in packet-out: run the pipeline from table 0
                self.resubmit(None, Some(0));
            }
            // the LOCAL port is in the bridge's port map under its OpenFlow number
            ports::LOCAL => self.output_port(port, false),
            ports::ANY | ports::UNSET => {
                self.trace(|| format!("output:{port:#x}: no such port here"));
            }
            p => self.output_port(p, false),
        }
    }

    /// Output to an OpenFlow port number. Never back out of the input port unless asked with
    /// IN_PORT (OpenFlow semantics).
    fn output_port(&mut self, ofport: u32, allow_in_port: bool) {
        self.read(Field::InPortOxm, 0xffff_ffff);
        if !allow_in_port && ofport == self.in_port() {
            self.trace(|| format!("output:{ofport}: skipped (is the input port)"));
            return;
        }
        let Some(p) = self.br.ports.get(&ofport) else {
            self.trace(|| format!("output:{ofport}: no such port"));
            return;
        };
        if !p.up || p.config & 0x20 != 0 {
            self.trace(|| format!("output:{ofport}: port down or no_fwd"));
            return;
        }
        let dp = p.dp;
        self.commit();
        self.gate_first(ofport);
        self.output_dp(ofport, dp);
    }

    /// Marks an output to `ofport` when a live-migration gate awaits its first packet since
    /// its activation: to that port, or from the input port (activation packets aside). Only
    /// flows translated between an activation and that packet carry the marker.
    fn gate_first(&mut self, ofport: u32) {
        use crate::migration::GateDir;
        if self.br.gates.is_empty() {
            return;
        }
        if let Some(g) = self.br.gates.awaiting(ofport, GateDir::Egress) {
            let g = g.clone();
            self.out
                .actions
                .push(DpAction::GateFirst(g, GateDir::Egress));
        }
        let inp = self.in_port();
        if let Some(g) = self.br.gates.awaiting(inp, GateDir::Ingress) {
            let g = g.clone();
            let announce = self.dl_type() == 0x8035
                || self
                    .out
                    .actions
                    .iter()
                    .any(|a| matches!(a, DpAction::Activate(..)));
            if !announce {
                self.out
                    .actions
                    .push(DpAction::GateFirst(g, GateDir::Ingress));
            }
        }
    }

    /// The datapath output to port `dp` (OpenFlow `ofport`), after the checks: a tunnel port
    /// encapsulates, a LOCAL port may decapsulate (or snoop a neighbour) instead.
    fn output_dp(&mut self, ofport: u32, dp: DpPort) {
        if let Some(patch) = self.inp.cfg.port(dp).and_then(|p| p.patch) {
            match patch {
                Some(peer) => self.patch_output(ofport, peer),
                None => self.trace(|| format!("output:{ofport}: patch port without a peer")),
            }
            return;
        }
        let tnl = &*self.inp.cfg.tnl;
        if let Some(tp) = tnl.port_of_dp(dp) {
            self.tunnel_output(tp);
            return;
        }
        if let Some(li) = tnl.local_of_dp(dp) {
            if self.local_output(li) {
                return;
            }
        }
        self.trace(|| format!("output:{ofport}"));
        self.out.actions.push(DpAction::Output(dp));
    }

    fn flood(&mut self, skip_no_flood: bool) {
        self.out.flooded = true;
        let inp = self.in_port();
        self.read(Field::InPortOxm, 0xffff_ffff);
        let mut targets: Vec<(u32, DpPort)> = self
            .br
            .ports
            .values()
            .filter(|p| p.ofport != inp && p.up && p.config & 0x20 == 0)
            .filter(|p| !skip_no_flood || p.config & 0x10 == 0)
            .map(|p| (p.ofport, p.dp))
            .collect();
        targets.sort();
        if targets.is_empty() {
            return;
        }
        self.commit();
        for (of, dp) in targets {
            self.output_dp(of, dp);
        }
    }

    /// OVS's NORMAL: a MAC-learning switch on the bridge's ports.
    fn normal(&mut self) {
        self.read(Field::EthSrc, u128::MAX);
        self.read(Field::EthDst, u128::MAX);
        self.read(Field::VlanTci, 0xffff);
        self.read(Field::InPortOxm, 0xffff_ffff);
        let src = self.get(Field::EthSrc) as u64;
        let dst = self.get(Field::EthDst) as u64;
        let vlan = (self.get(Field::VlanTci) as u16) & 0x0fff;
        let src_mac = crate::packet::Mac::from_u64(src);
        let dst_mac = crate::packet::Mac::from_u64(dst);
        if src_mac.is_multicast() {
            self.trace(|| "NORMAL: multicast source, dropping".into());
            return;
        }
        if dst_mac.0[..5] == [0x01, 0x80, 0xc2, 0x00, 0x00] && dst_mac.0[5] & 0xf0 == 0 {
            self.trace(|| "NORMAL: IEEE 802.1D link-local multicast, not forwarded".into());
            return;
        }
        let in_of = self.in_port();
        let bridge = self.br.index;
        // learn where the source lives: on the datapath port the packet came in on (or the
        // port the pipeline says it came in on)
        let in_dp = self
            .br
            .ports
            .get(&in_of)
            .map(|p| p.dp)
            .unwrap_or(self.in_dp);
        if self.br.ports.contains_key(&in_of) {
            let (learned, slot) = self.inp.macs.learn(bridge, vlan, src, in_dp, self.inp.now);
            if learned != Learned::Same {
                self.out.invalidates = true;
            }
            if slot != u32::MAX {
                self.out.learn = Some(LearnRef {
                    slot,
                    bridge,
                    vlan,
                    mac: src,
                    port: in_dp,
                });
            }
        }
        let known = if dst_mac.is_multicast() {
            None
        } else {
            self.inp.macs.lookup(bridge, vlan, dst)
        };
        match known {
            Some(p) if p == in_dp => {
                self.trace(|| "NORMAL: destination is behind the input port, dropping".into())
            }
            Some(p) => match self.br.of_of_dp.get(&p).copied() {
                Some(of) => {
                    self.trace(|| format!("NORMAL: learnt destination on port {of}"));
                    self.output_port(of, false);
                }
                None => self.flood(true),
            },
            None => {
                self.trace(|| "NORMAL: unknown destination, flooding".into());
                self.flood(true);
            }
        }
    }

    // ---------------------------------------------------------------- patch ports

    /// Output to a patch port (OVS's patch_port_output): the translation goes on in the peer's
    /// bridge, from table 0, with in_port the peer's OpenFlow port, within this datapath flow
    /// (no datapath action of its own). The packet (committed or not) carries over; what is
    /// the pipeline's (metadata, registers, actset_output, the stack and action set), the
    /// tunnel fields and the conntrack state start afresh, as OVS clears them. Everything but
    /// the packet, and the wildcards of the zeroed tunnel and conntrack fields (they are not
    /// the packet's), is restored afterwards. Each crossing counts as a resubmit, so patch
    /// loops between bridges stop at the resubmit limits.
    fn patch_output(&mut self, ofport: u32, peer: DpPort) {
        let inp = self.inp;
        let Some(pi) = inp.cfg.port(peer) else {
            return;
        };
        let Some(pbr) = inp.pipe.bridges.get(pi.bridge as usize) else {
            return;
        };
        let peer_of = pi.ofport;
        // the peer must be in its bridge's tables and may receive (OFPPC_NO_RECV)
        match pbr.ports.get(&peer_of) {
            Some(p) if p.config & 0x04 == 0 => {}
            _ => {
                self.trace(|| format!("output:{ofport}: patch peer {} may not receive", pi.name));
                return;
            }
        }
        if self.depth >= MAX_DEPTH || self.resubmits >= MAX_RESUBMITS || self.nest >= MAX_NEST {
            self.trace(|| "patch port: resubmit limit reached: dropping".into());
            self.out.drop = Some(XlateDrop::ResubmitLimit);
            self.out.actions.clear();
            self.exit = true;
            return;
        }
        self.resubmits += 1;
        self.trace(|| {
            format!(
                "output:{ofport}: patch to bridge(\"{}\"), in_port {peer_of}",
                pbr.name
            )
        });
        let saved_br = self.br;
        let saved_flow = self.flow;
        let saved_wc = self.wc;
        let saved_stack = std::mem::take(&mut self.stack);
        let saved_set = std::mem::take(&mut self.action_set);
        let (saved_table, saved_cookie, saved_in_dp) = (self.table_id, self.cookie, self.in_dp);
        // fresh pipeline state: metadata, registers, conj_id, actset_output, in_port
        for word in &mut self.flow[..DP] {
            *word = 0;
        }
        lf(Field::InPortOxm).set(&mut self.flow, peer_of as u128);
        for (word, keep) in PATCH_CLEARED {
            self.flow[DP + word] &= keep;
        }
        self.br = pbr;
        self.in_dp = peer;
        self.depth += 1;
        self.nest += 1;
        self.run_table(0);
        if !self.exit && !self.paused && !self.action_set.is_empty() {
            let set = std::mem::take(&mut self.action_set);
            self.run(&set);
        }
        self.nest -= 1;
        self.depth -= 1;
        if self.paused {
            // a pause in the peer's bridge: not resumable from here (the frozen state names
            // one bridge); its packet-in goes out without a continuation
            self.paused = false;
            self.frozen_frames.clear();
            if let Some((spec, metadata, table_id, cookie)) = self.pause_pin.take() {
                self.out
                    .actions
                    .push(DpAction::Userspace(Arc::new(PacketInSpec {
                        bridge: pbr.index,
                        table_id,
                        cookie,
                        spec,
                        metadata,
                        frozen: None,
                    })));
            }
        }
        // back in this bridge, with the packet as the peer's actions left it
        self.br = saved_br;
        self.in_dp = saved_in_dp;
        self.table_id = saved_table;
        self.cookie = saved_cookie;
        self.stack = saved_stack;
        self.action_set = saved_set;
        // the peer bridge exiting does not end this one (a resubmit limit still drops all)
        self.exit = self.out.drop == Some(XlateDrop::ResubmitLimit);
        for (word, keep) in PATCH_CLEARED {
            let i = DP + word;
            self.wc[i] = (self.wc[i] & keep) | (saved_wc[i] & !keep);
        }
        self.flow = saved_flow;
        for ((d, b), f) in self
            .dirty
            .iter_mut()
            .zip(&self.base)
            .zip(&saved_flow)
            .skip(DP)
        {
            *d |= b ^ f;
        }
    }

    // ---------------------------------------------------------------- tunnels

    /// Output to tunnel port `tp`: resolve the outer addresses (route, next-hop MAC), push the
    /// header, translate the outer packet through the underlay bridge from its LOCAL port,
    /// strip the header again. What the encap reads of the flow (tun_id, tun_dst, tun_src,
    /// tun_metadata0) is un-wildcarded; the underlay translation's own wildcards are not (it
    /// depends only on those and on state whose changes flush the cache: routes, neighbours,
    /// MAC learning), as in OVS's native tunnel output.
    fn tunnel_output(&mut self, tp: &'a TnlPort) {
        let tnl: &'a TnlSnapshot = &self.inp.cfg.tnl;
        let dst = match tp.cfg.remote_ip {
            TunnelIp::Fixed(ip) => u32::from(ip),
            TunnelIp::Flow => {
                self.read(Field::TunDst, 0xffff_ffff);
                self.get(Field::TunDst) as u32
            }
        };
        let vni = match tp.cfg.key {
            TunnelKey::Fixed(k) => k,
            TunnelKey::Flow => {
                self.read(Field::TunId, u128::MAX);
                self.get(Field::TunId) as u32 & 0xff_ffff
            }
        };
        let route = if dst == 0 { None } else { tnl.route(dst) };
        let Some(rt) = route else {
            self.trace(|| {
                format!(
                    "output:{}: no route to tunnel destination {}",
                    tp.name,
                    ip_str(dst)
                )
            });
            self.out.drop = Some(XlateDrop::TunnelNoRoute);
            return;
        };
        let Some(li) = tnl.locals.iter().find(|l| l.ifindex == rt.ifindex) else {
            self.trace(|| {
                format!(
                    "output:{}: route to {} leaves by {}, not a bridge's LOCAL port",
                    tp.name,
                    ip_str(dst),
                    rt.dev
                )
            });
            self.out.drop = Some(XlateDrop::TunnelNoRoute);
            return;
        };
        let src = match tp.cfg.local_ip {
            Some(TunnelIp::Fixed(ip)) => u32::from(ip),
            Some(TunnelIp::Flow) => {
                self.read(Field::TunSrc, 0xffff_ffff);
                self.get(Field::TunSrc) as u32
            }
            None => rt.prefsrc.or(li.addrs.first().copied()).unwrap_or(0),
        };
        if src == 0 {
            self.trace(|| format!("output:{}: no source address for the tunnel", tp.name));
            self.out.drop = Some(XlateDrop::TunnelNoRoute);
            return;
        }
        let nh = rt.gw.unwrap_or(dst);
        let Some(&dmac) = tnl.neigh.get(&nh) else {
            self.trace(|| {
                format!(
                    "output:{}: next hop {} unresolved: ARP request sent, packet dropped",
                    tp.name,
                    ip_str(nh)
                )
            });
            tnl.mail.post(crate::tunnel::Event::Miss {
                bridge: li.bridge,
                ip: nh,
                src,
            });
            // retried packet by packet until the neighbour is learnt
            self.out.cacheable = false;
            self.out.drop = Some(XlateDrop::TunnelNeighMiss);
            return;
        };
        // the option mapped to tun_metadata0, when the packet has it
        let mut data = [0u8; 8];
        let mut opts: [GeneveOpt; 1] = [GeneveOpt {
            class: 0,
            typ: 0,
            data: &[],
        }];
        let mut nopts = 0;
        let tlv = tnl.tlv0.get(self.br.index as usize).copied().flatten();
        if let Some(t) = tlv.filter(|t| t.len as usize <= 8) {
            self.wc[DP + w::TUN_PRESENT] |= 1;
            if self.flow[DP + w::TUN_PRESENT] & 1 != 0 {
                self.read(Field::TunMetadata(0), u128::MAX);
                let v = (self.get(Field::TunMetadata(0)) as u64).to_be_bytes();
                let n = t.len as usize;
                data[..n].copy_from_slice(&v[8 - n..]);
                opts[0] = GeneveOpt {
                    class: t.class,
                    typ: t.typ,
                    data: &data[..n],
                };
                nopts = 1;
            }
        }
        let params = EncapParams {
            src_mac: li.mac,
            dst_mac: dmac,
            src_ip: src,
            dst_ip: dst,
            tos: 0,
            dst_port: tp.cfg.dst_port,
            vni,
            csum: tp.cfg.csum,
            opts: &opts[..nopts],
            mtu: li.mtu,
            port: tp.dp,
        };
        let Some(hdr) = TunnelHeader::build(&params) else {
            self.out.drop = Some(XlateDrop::TunnelNoRoute);
            return;
        };
        let Some(ubr) = self.inp.pipe.bridges.get(li.bridge as usize) else {
            return;
        };
        if self.depth >= MAX_DEPTH {
            self.out.drop = Some(XlateDrop::ResubmitLimit);
            return;
        }
        self.trace(|| {
            format!(
                "output:{}: tunnel_push(vni={vni:#x}, {}->{}, next hop {} at {dmac}, options={}), then bridge {} from LOCAL",
                tp.name,
                ip_str(src),
                ip_str(dst),
                ip_str(nh),
                nopts,
                ubr.name
            )
        });
        // the outer packet's key, for the underlay bridge
        let mut okey = crate::packet::key::FlowKey::default();
        okey.w[w::META] = li.dp as u64;
        okey.w[w::ETH_DST] = dmac.to_u64();
        okey.w[w::ETH_SRC] = li.mac.to_u64() | ((ethertype::IPV4 as u64) << 48);
        okey.w[w::L3] = ipproto::UDP as u64 | ((crate::tunnel::TTL as u64) << 16);
        okey.w[w::NW_SRC_LO] = src as u64;
        okey.w[w::NW_DST_LO] = dst as u64;
        okey.w[w::L4] = (tp.cfg.dst_port as u64) << 16;
        let oflow = flow::pkey_of(&okey, ports::LOCAL);
        self.out.actions.push(DpAction::TunnelPush(Arc::new(hdr)));
        let body_start = self.out.actions.len();
        let mut sub = Xlate::new(self.inp, ubr, oflow, li.dp);
        sub.out.actions = std::mem::take(&mut self.out.actions);
        sub.depth = self.depth + 1;
        sub.nest = self.nest + 1;
        sub.resubmits = self.resubmits;
        sub.out.trace = std::mem::take(&mut self.out.trace);
        sub.run_table(0);
        // put the outer headers back as pushed, so the strip removes exactly them
        sub.flow = oflow;
        sub.dirty = [0; PKEY_WORDS];
        for (i, o) in oflow.iter().enumerate().skip(DP) {
            sub.dirty[i] = sub.base[i] ^ o;
        }
        sub.commit();
        let body_end = sub.out.actions.len();
        // a meter in the underlay drops only the encapsulated copy
        for a in sub.out.actions.iter_mut().skip(body_start) {
            if let DpAction::Meter { skip_to, .. } = a {
                if *skip_to == METER_SKIP_UNSET {
                    *skip_to = u32::try_from(body_end).unwrap_or(METER_SKIP_UNSET);
                }
            }
        }
        self.out.actions = std::mem::take(&mut sub.out.actions);
        self.out.actions.push(DpAction::TunnelStrip);
        self.out.trace = std::mem::take(&mut sub.out.trace);
        self.resubmits = sub.resubmits;
        let so = sub.out;
        self.out.rules.extend(so.rules);
        for (t, u) in self.out.tables.iter_mut().zip(so.tables) {
            *t |= u;
        }
        self.out.invalidates |= so.invalidates;
        self.out.flooded |= so.flooded;
        self.out.cacheable &= so.cacheable;
        if self.out.learn.is_none() {
            self.out.learn = so.learn;
        }
        if so.drop.is_some() {
            self.out.drop = so.drop;
        }
    }

    /// Output to a bridge's LOCAL port `li`: a Geneve packet for one of its addresses is
    /// decapsulated instead (returns true); an ARP reply to one of them, or a gratuitous ARP,
    /// teaches the tunnel neighbour cache (and still goes to the host).
    fn local_output(&mut self, li: &'a LocalIf) -> bool {
        let tnl: &'a TnlSnapshot = &self.inp.cfg.tnl;
        if li.addrs.is_empty() {
            return false;
        }
        let t = self.dl_type();
        if t == ethertype::ARP {
            let op = self.nw_proto();
            self.read(Field::ArpSpa, 0xffff_ffff);
            self.read(Field::ArpTpa, 0xffff_ffff);
            self.read(Field::ArpSha, u128::MAX);
            let spa = self.get(Field::ArpSpa) as u32;
            let tpa = self.get(Field::ArpTpa) as u32;
            let sha = crate::packet::Mac::from_u64(self.get(Field::ArpSha) as u64);
            let reply_to_us = op == 2 && li.addrs.contains(&tpa);
            let garp = spa == tpa && spa != 0 && !li.addrs.contains(&spa);
            if (reply_to_us || garp) && sha != crate::packet::Mac::default() {
                self.trace(|| format!("tunnel neighbour snooped: {} is at {sha}", ip_str(spa)));
                tnl.mail.post(crate::tunnel::Event::Snoop {
                    bridge: li.bridge,
                    ip: spa,
                    mac: sha,
                });
                // every such packet must reach translation to refresh the entry
                self.out.cacheable = false;
            }
            return false;
        }
        if t != ethertype::IPV4 || tnl.ports.is_empty() || self.nw_proto() != ipproto::UDP {
            return false;
        }
        self.read(Field::IpDst, 0xffff_ffff);
        if !li.addrs.contains(&(self.get(Field::IpDst) as u32)) {
            return false;
        }
        self.read(Field::EthDst, u128::MAX);
        if self.get(Field::EthDst) as u64 != li.mac.to_u64() {
            return false;
        }
        self.read(Field::UdpDst, 0xffff);
        let dport = self.get(Field::UdpDst) as u16;
        if !tnl.ports.iter().any(|p| p.cfg.dst_port == dport) {
            return false;
        }
        self.trace(|| {
            format!(
                "tunnel_pop(udp_dst={dport}) instead of output to {}",
                li.name
            )
        });
        self.out
            .actions
            .push(DpAction::TunnelPop(Arc::new(TnlRecv::from_snapshot(
                tnl, dport,
            ))));
        true
    }

    fn controller(&mut self, spec: Arc<ControllerSpec>, _reason_override: Option<u8>) {
        self.commit();
        let meta = packet_in_metadata(&self.flow);
        let pause = spec.pause;
        self.trace(|| {
            format!(
                "controller(reason={}, userdata={} bytes{})",
                spec.reason,
                spec.userdata.len(),
                if pause { ", pause" } else { "" }
            )
        });
        if pause {
            // the rest of the translation happens when the controller resumes it; the
            // packet-in is completed with the frozen state once the levels have unwound
            self.pause_pin = Some((spec, meta, self.table_id, self.cookie));
            self.paused = true;
            return;
        }
        self.out
            .actions
            .push(DpAction::Userspace(Arc::new(PacketInSpec {
                bridge: self.br.index,
                table_id: self.table_id,
                cookie: self.cookie,
                spec,
                metadata: meta,
                frozen: None,
            })));
    }

    // ---------------------------------------------------------------- commit

    /// Writes the fields actions changed into the packet (datapath Set/Push/Pop actions),
    /// choosing the header by protocol. Fields that make no sense for the packet's protocol are
    /// not written (OpenFlow prerequisites would have refused such flows).
    fn commit(&mut self) {
        if self.dirty[DP..].iter().all(|&d| d == 0) {
            return;
        }
        let d = self.dirty;
        let f = self.flow;
        let ww = |i: usize| DP + i;
        // VLAN first: pushing or popping moves the headers after it
        let vmask = 0xffffu64 << 48;
        if d[ww(w::ETH_DST)] & vmask != 0 {
            let before = (self.base[ww(w::ETH_DST)] >> 48) as u16;
            let after = (f[ww(w::ETH_DST)] >> 48) as u16;
            let (had, has) = (before & 0x1000 != 0, after & 0x1000 != 0);
            if had && !has {
                self.out.actions.push(DpAction::PopVlan);
            } else if !had && has {
                self.out.actions.push(DpAction::PushVlan {
                    tpid: 0x8100,
                    tci: after & !0x1000,
                });
            } else if had && has && before != after {
                self.out.actions.push(DpAction::Set {
                    field: DpField::VlanTci,
                    value: (after & !0x1000) as u128,
                    mask: 0xefff,
                });
            }
        }
        let mac_bits = (1u64 << 48) - 1;
        if d[ww(w::ETH_DST)] & mac_bits != 0 {
            self.set(
                DpField::EthDst,
                f[ww(w::ETH_DST)] & mac_bits,
                d[ww(w::ETH_DST)] & mac_bits,
            );
        }
        if d[ww(w::ETH_SRC)] & mac_bits != 0 {
            self.set(
                DpField::EthSrc,
                f[ww(w::ETH_SRC)] & mac_bits,
                d[ww(w::ETH_SRC)] & mac_bits,
            );
        }
        let l3_dirty = d[ww(w::L3)] != 0 || (w::NW_SRC_HI..=w::L4).any(|i| d[ww(i)] != 0);
        if l3_dirty {
            let t = self.dl_type();
            match t {
                ethertype::IPV4 => self.commit_ipv4(&f, &d),
                ethertype::IPV6 => self.commit_ipv6(&f, &d),
                ethertype::ARP | ethertype::RARP => self.commit_arp(&f, &d),
                _ => {}
            }
        }
        for i in DP..PKEY_WORDS {
            self.base[i] = (self.base[i] & !d[i]) | (f[i] & d[i]);
        }
        self.dirty = [0; PKEY_WORDS];
    }

    fn set(&mut self, field: DpField, value: u64, mask: u64) {
        self.out.actions.push(DpAction::Set {
            field,
            value: value as u128,
            mask: mask as u128,
        });
    }

    fn commit_l4(&mut self, f: &PKey, d: &PKey) {
        let l4 = DP + w::L4;
        if d[l4] & 0xffff_ffff == 0 {
            return;
        }
        let p = self.nw_proto();
        let (src, dst) = match p {
            ipproto::TCP | ipproto::UDP | ipproto::SCTP => (DpField::TpSrc, DpField::TpDst),
            ipproto::ICMP | ipproto::ICMPV6 => (DpField::IcmpType, DpField::IcmpCode),
            _ => return,
        };
        if d[l4] & 0xffff != 0 {
            self.set(src, f[l4] & 0xffff, d[l4] & 0xffff);
        }
        if d[l4] & 0xffff_0000 != 0 {
            self.set(dst, (f[l4] >> 16) & 0xffff, (d[l4] >> 16) & 0xffff);
        }
    }

    fn commit_ipv4(&mut self, f: &PKey, d: &PKey) {
        let (s, dd, l3) = (DP + w::NW_SRC_LO, DP + w::NW_DST_LO, DP + w::L3);
        if d[s] & 0xffff_ffff != 0 {
            self.set(DpField::Ipv4Src, f[s] & 0xffff_ffff, d[s] & 0xffff_ffff);
        }
        if d[dd] & 0xffff_ffff != 0 {
            self.set(DpField::Ipv4Dst, f[dd] & 0xffff_ffff, d[dd] & 0xffff_ffff);
        }
        if d[l3] & 0xff00 != 0 {
            self.set(DpField::IpTos, (f[l3] >> 8) & 0xff, (d[l3] >> 8) & 0xff);
        }
        if d[l3] & 0xff_0000 != 0 {
            self.set(DpField::IpTtl, (f[l3] >> 16) & 0xff, 0xff);
        }
        self.commit_l4(f, d);
    }

    fn commit_ipv6(&mut self, f: &PKey, d: &PKey) {
        let l3 = DP + w::L3;
        for (hi, field) in [
            (DP + w::NW_SRC_HI, DpField::Ipv6Src),
            (DP + w::NW_DST_HI, DpField::Ipv6Dst),
        ] {
            if d[hi] != 0 || d[hi + 1] != 0 {
                self.out.actions.push(DpAction::Set {
                    field,
                    value: ((f[hi] as u128) << 64) | f[hi + 1] as u128,
                    mask: ((d[hi] as u128) << 64) | d[hi + 1] as u128,
                });
            }
        }
        if d[l3] & 0xff00 != 0 {
            self.set(DpField::IpTos, (f[l3] >> 8) & 0xff, (d[l3] >> 8) & 0xff);
        }
        if d[l3] & 0xff_0000 != 0 {
            self.set(DpField::IpTtl, (f[l3] >> 16) & 0xff, 0xff);
        }
        if d[l3] >> 32 != 0 {
            self.set(
                DpField::Ipv6Label,
                (f[l3] >> 32) & 0xfffff,
                (d[l3] >> 32) & 0xfffff,
            );
        }
        let (t0, t1) = (DP + w::ND_TARGET_HI, DP + w::ND_TARGET_LO);
        if d[t0] != 0 || d[t1] != 0 {
            self.out.actions.push(DpAction::Set {
                field: DpField::NdTarget,
                value: ((f[t0] as u128) << 64) | f[t1] as u128,
                mask: ((d[t0] as u128) << 64) | d[t1] as u128,
            });
        }
        let (sha, tha) = (DP + w::ARP_SHA, DP + w::ARP_THA);
        if d[sha] != 0 {
            self.set(DpField::NdSll, f[sha], d[sha]);
        }
        if d[tha] != 0 {
            self.set(DpField::NdTll, f[tha], d[tha]);
        }
        self.commit_l4(f, d);
    }

    fn commit_arp(&mut self, f: &PKey, d: &PKey) {
        let (s, dd, l3, sha, tha) = (
            DP + w::NW_SRC_LO,
            DP + w::NW_DST_LO,
            DP + w::L3,
            DP + w::ARP_SHA,
            DP + w::ARP_THA,
        );
        if d[l3] & 0xff != 0 {
            self.set(DpField::ArpOp, f[l3] & 0xff, 0xff);
        }
        if d[s] & 0xffff_ffff != 0 {
            self.set(DpField::ArpSpa, f[s] & 0xffff_ffff, d[s] & 0xffff_ffff);
        }
        if d[dd] & 0xffff_ffff != 0 {
            self.set(DpField::ArpTpa, f[dd] & 0xffff_ffff, d[dd] & 0xffff_ffff);
        }
        if d[sha] != 0 {
            self.set(DpField::ArpSha, f[sha], d[sha]);
        }
        if d[tha] != 0 {
            self.set(DpField::ArpTha, f[tha], d[tha]);
        }
    }

    fn finish(mut self) -> XlateOut {
        if let Some((spec, meta, table_id, cookie)) = self.pause_pin.take() {
            let frozen = Frozen {
                bridge: self.br.index,
                frames: std::mem::take(&mut self.frozen_frames),
                stack: self.stack.clone(),
            };
            self.out
                .actions
                .push(DpAction::Userspace(Arc::new(PacketInSpec {
                    bridge: self.br.index,
                    table_id,
                    cookie,
                    spec,
                    metadata: meta,
                    frozen: Some(Arc::new(frozen)),
                })));
        }
        if !self.exit && !self.paused && !self.action_set.is_empty() {
            let set = std::mem::take(&mut self.action_set);
            self.run(&set);
        }
        // the datapath flow always matches the input port and the recirculation id exactly
        self.wc[DP + w::META] = u64::MAX;
        if self.out.drop == Some(XlateDrop::ResubmitLimit) {
            self.out.actions.clear();
        }
        self.out.mask = flow::dp_mask(&self.wc);
        self.out
    }
}

/// The pipeline fields a packet-in carries as its metadata (NXT_PACKET_IN2): every register,
/// metadata, in_port and tunnel/ct/mark field that is not zero, as OVS sends them.
pub fn packet_in_metadata(flow: &PKey) -> Vec<(Field, u128)> {
    let mut v = Vec::new();
    v.push((Field::InPortOxm, lf(Field::InPortOxm).get(flow)));
    for f in [
        Field::Metadata,
        Field::TunId,
        Field::TunSrc,
        Field::TunDst,
        Field::TunMetadata(0),
        Field::PktMark,
        Field::CtState,
        Field::CtZone,
        Field::CtMark,
        Field::CtLabel,
    ] {
        let x = lf(f).get(flow);
        if x != 0 {
            v.push((f, x));
        }
    }
    for r in 0..16u8 {
        let x = lf(Field::Reg(r)).get(flow);
        if x != 0 {
            v.push((Field::Reg(r), x));
        }
    }
    v
}

fn describe_match(m: &openflow::Match) -> String {
    // ovs-ofctl's own syntax, as ofproto/trace prints rules
    match xvs_ofctl::flowmatch::FlowMatch::from_codec(m) {
        Ok((fm, _)) => {
            let t = fm.format(None, None);
            if t.is_empty() {
                "(catch-all)".into()
            } else {
                t
            }
        }
        Err(_) => format!("{m:?}"),
    }
}

/// Translates a packet received on datapath port `in_dp` with key `key`.
pub fn translate(inp: &XlateIn, key: &FlowKey, in_dp: DpPort) -> XlateOut {
    // a packet back from the tracker resumes in its frozen bridge, whatever its input port
    // (a packet-out's is CONTROLLER, in no bridge)
    let rid = key.recirc_id();
    if rid != 0 {
        return translate_recirc(inp, key, in_dp, rid);
    }
    let Some(br) = inp.pipe.bridge_of(in_dp) else {
        let mut out = XlateOut {
            drop: Some(XlateDrop::NoBridge),
            cacheable: true,
            ..Default::default()
        };
        out.mask.w[w::META] = u64::MAX;
        return out;
    };
    let of = br.of_of_dp.get(&in_dp).copied().unwrap_or(ports::ANY);
    let flow = flow::pkey_of(key, of);
    let mut x = Xlate::new(inp, br, flow, in_dp);
    x.trace(|| format!("bridge {}: in_port {of}", br.name));
    x.run_table(0);
    x.finish()
}

/// Translates a packet back from the connection tracker: the pipeline state frozen at its
/// `ct(table=N)` (metadata, registers, in_port, stack) and the key the datapath rebuilt
/// (ct_* fields set, NAT applied), starting in table N.
fn translate_recirc(inp: &XlateIn, key: &FlowKey, in_dp: DpPort, rid: u32) -> XlateOut {
    let st = inp.recirc.get(rid);
    let br = st
        .as_ref()
        .and_then(|st| inp.pipe.bridges.get(st.bridge as usize));
    let (Some(st), Some(br)) = (st, br) else {
        let mut out = XlateOut {
            drop: Some(XlateDrop::RecircLost),
            cacheable: true,
            ..Default::default()
        };
        out.mask.w[w::META] = u64::MAX;
        return out;
    };
    let mut flow = flow::pkey_of(key, 0);
    flow[..flow::PIPE_WORDS].copy_from_slice(&st.pipe);
    let mut x = Xlate::new(inp, br, flow, in_dp);
    x.stack = st.stack.clone();
    x.table_id = st.table;
    x.trace(|| {
        format!(
            "bridge {}: recirc({rid:#x}) resume in table {}",
            br.name, st.table
        )
    });
    x.run_table(st.table);
    x.finish()
}

/// The tracker's NAT request from the wire `nat(...)`.
fn nat_spec(n: &openflow::action::Nat) -> crate::conntrack::NatSpec {
    use crate::conntrack::{NatKind, NatSpec};
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
    let kind = if n.flags & 1 != 0 {
        NatKind::Src
    } else if n.flags & 2 != 0 {
        NatKind::Dst
    } else {
        NatKind::Reapply
    };
    let addr = |v4: Option<u32>, v6: Option<u128>| {
        v4.map(|a| IpAddr::V4(Ipv4Addr::from(a)))
            .or(v6.map(|a| IpAddr::V6(Ipv6Addr::from(a))))
    };
    NatSpec {
        kind,
        addr_min: addr(n.ipv4_min, n.ipv6_min),
        addr_max: addr(n.ipv4_max, n.ipv6_max),
        port_min: n.proto_min,
        port_max: n.proto_max,
        persistent: n.flags & 4 != 0,
        hash: n.flags & 8 != 0,
        random: n.flags & 16 != 0,
    }
}

/// Translates a pipeline key as given (ofproto/trace): `flow` already holds the OpenFlow input
/// port and any pipeline fields the user set.
pub fn translate_pkey(inp: &XlateIn, bridge: &BridgeTables, flow: PKey) -> XlateOut {
    let in_of = lf(Field::InPortOxm).get(&flow) as u32;
    let in_dp = bridge
        .ports
        .get(&in_of)
        .map(|p| p.dp)
        .unwrap_or(DpPort::MAX);
    let mut flow = flow;
    flow[DP + w::META] = (flow[DP + w::META] & !0xffff_ffff) | in_dp as u64;
    let mut x = Xlate::new(inp, bridge, flow, in_dp);
    x.trace(|| format!("bridge(\"{}\")", bridge.name));
    x.run_table(0);
    x.finish()
}

/// Translates a packet-out: `acts` applied to a packet with key `key` entering bridge `bridge`
/// from OpenFlow port `in_port` (possibly CONTROLLER or LOCAL).
pub fn translate_actions(
    inp: &XlateIn,
    bridge: &BridgeTables,
    key: &FlowKey,
    in_port: u32,
    acts: &[Ofpact],
) -> XlateOut {
    let in_dp = bridge
        .ports
        .get(&in_port)
        .map(|p| p.dp)
        .unwrap_or(DpPort::MAX);
    let mut flow = flow::pkey_of(key, in_port);
    flow[DP + w::META] = (flow[DP + w::META] & !0xffff_ffff) | in_dp as u64;
    let _ = PIPE_PORT_CONJ;
    let mut x = Xlate::new(inp, bridge, flow, in_dp);
    x.run(acts);
    x.finish()
}

/// Resumes a translation paused by `controller(pause)` (NXT_RESUME): `flow` is the packet's key
/// with the pipeline fields the controller sent back.
pub fn resume(inp: &XlateIn, bridge: &BridgeTables, flow: PKey, frozen: &Frozen) -> XlateOut {
    let in_of = lf(Field::InPortOxm).get(&flow) as u32;
    let in_dp = bridge
        .ports
        .get(&in_of)
        .map(|p| p.dp)
        .unwrap_or(DpPort::MAX);
    let mut x = Xlate::new(inp, bridge, flow, in_dp);
    x.stack = frozen.stack.clone();
    for (i, (table, cookie, acts)) in frozen.frames.iter().enumerate() {
        x.table_id = *table;
        x.cookie = *cookie;
        x.run(acts);
        if x.paused {
            // paused again: what was left of the outer levels still has to run later
            x.frozen_frames
                .extend(frozen.frames[i + 1..].iter().cloned());
            break;
        }
        if x.exit {
            break;
        }
    }
    x.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ofproto::mods;
    use crate::packet::key::{extract, testpkt, Layout};
    use crate::pipeline::tables::OfPort;
    use openflow::action::Action;
    use openflow::message::FlowMod;
    use openflow::types::MatchRepr;
    use openflow::{Instruction, Match, MatchField};

    /// A bridge with ports 1..=3 on datapath ports 0..=2.
    fn bridge() -> BridgeTables {
        let mut bt = BridgeTables::new("br0", 0, 1);
        for i in 0..3u16 {
            bt.ports.insert(
                i as u32 + 1,
                OfPort {
                    ofport: i as u32 + 1,
                    dp: i,
                    name: format!("p{i}"),
                    config: 0,
                    up: true,
                },
            );
            bt.of_of_dp.insert(i, i as u32 + 1);
        }
        bt
    }

    fn add(
        bt: &mut BridgeTables,
        table: u8,
        prio: u16,
        fields: Vec<MatchField>,
        acts: Vec<Action>,
    ) {
        let fm = FlowMod {
            cookie: table as u64,
            cookie_mask: 0,
            table_id: table,
            command: mods::cmd::ADD,
            idle_timeout: 0,
            hard_timeout: 0,
            priority: prio,
            buffer_id: 0xffff_ffff,
            out_port: ports::ANY,
            out_group: 0xffff_ffff,
            flags: 0,
            importance: 0,
            match_: MatchRepr::Oxm(Match { fields }),
            instructions: vec![Instruction::ApplyActions(acts)],
        };
        mods::flow_mod(bt, &fm, 6, false, 0, &mut mods::Changes::default()).unwrap();
    }

    fn f(field: Field, v: u128) -> MatchField {
        let w = field.info().width as usize;
        let b = v.to_be_bytes();
        MatchField::new(field, 6, b[16 - w..].to_vec(), None).unwrap()
    }

    fn run(bt: BridgeTables, frame: &[u8], in_dp: DpPort) -> (XlateOut, FlowKey) {
        let mut pipe = Pipeline::default();
        pipe.bridges.push(Arc::new(bt));
        for d in 0..3 {
            pipe.bridge_of_dp.insert(d, 0);
        }
        let cfg = DpConfig::default();
        let macs = MacTable::new(64);
        let inp = XlateIn {
            pipe: &pipe,
            cfg: &cfg,
            macs: &macs,
            now: 1,
            now_ms: 1000,
            pkt_len: frame.len() as u32,
            trace: true,
            recirc: &RecircTable::default(),
        };
        let mut k = FlowKey::default();
        let mut l = Layout::default();
        extract(frame, in_dp as u32, &mut k, &mut l).unwrap();
        (translate(&inp, &k, in_dp), k)
    }

    fn udp() -> Vec<u8> {
        testpkt::udp4([10, 0, 0, 1], [10, 0, 0, 2], 1000, 53, b"q", false)
    }

    fn out(p: u32) -> Action {
        Action::Output {
            port: p,
            max_len: 0,
        }
    }

    fn with_meter(bt: &mut BridgeTables, id: u32) -> Arc<crate::pipeline::meter::Meter> {
        let m = Arc::new(crate::pipeline::meter::Meter::new(
            crate::pipeline::meter::MF_PKTPS,
            &[openflow::types::MeterBand {
                band_type: 1,
                rate: 1,
                burst_size: 1,
                extra: [0; 4],
            }],
            std::time::Instant::now(),
        ));
        bt.meters.insert(id, m.clone());
        m
    }

    #[test]
    fn a_meter_becomes_a_per_packet_action_that_drops_to_the_end_or_past_its_clone() {
        // top level: a dropped packet skips everything after the meter
        let mut bt = bridge();
        let m = with_meter(&mut bt, 1);
        add(&mut bt, 0, 1, vec![], vec![Action::Meter(1), out(2)]);
        let (x, _) = run(bt, &udp(), 0);
        assert!(x.cacheable);
        match &x.actions[..] {
            [DpAction::Meter {
                meter,
                id: 1,
                skip_to,
            }, DpAction::Output(1)] => {
                assert!(Arc::ptr_eq(meter, &m));
                assert_eq!(*skip_to, METER_SKIP_UNSET);
            }
            a => panic!("{a:?}"),
        }
        // in a clone that changed nothing before it: past the clone (and its restoration),
        // so the output after the clone still happens
        let mut bt = bridge();
        with_meter(&mut bt, 1);
        let set =
            Action::SetField(MatchField::new(Field::IpDst, 6, vec![9, 9, 9, 9], None).unwrap());
        add(
            &mut bt,
            0,
            1,
            vec![f(Field::EthType, 0x0800)],
            vec![
                Action::Clone(vec![Action::Meter(1), set.clone(), out(2)]),
                out(3),
            ],
        );
        let (x, _) = run(bt, &udp(), 0);
        let at = x
            .actions
            .iter()
            .position(|a| matches!(a, DpAction::Meter { .. }));
        let Some(DpAction::Meter { skip_to, .. }) = at.map(|i| &x.actions[i]) else {
            panic!("{:?}", x.actions);
        };
        assert_eq!(
            x.actions.get(*skip_to as usize),
            Some(&DpAction::Output(2)),
            "{:?}",
            x.actions
        );
        // in a clone that changed the packet first: at the restoration, which undoes it
        let mut bt = bridge();
        with_meter(&mut bt, 1);
        add(
            &mut bt,
            0,
            1,
            vec![f(Field::EthType, 0x0800)],
            vec![
                Action::Clone(vec![set, out(2), Action::Meter(1), out(1)]),
                out(3),
            ],
        );
        let (x, _) = run(bt, &udp(), 0);
        let i = x
            .actions
            .iter()
            .position(|a| matches!(a, DpAction::Meter { .. }))
            .unwrap();
        let DpAction::Meter { skip_to, .. } = &x.actions[i] else {
            unreachable!()
        };
        assert!(
            matches!(x.actions[*skip_to as usize], DpAction::Set { .. }),
            "{:?}",
            x.actions
        );
        assert_eq!(x.actions.last(), Some(&DpAction::Output(2)));
    }

    #[test]
    fn registers_and_resubmit_through_tables_and_wildcards_stay_minimal() {
        let mut bt = bridge();
        // table 0: load reg0=7, resubmit to 5; table 5 matches reg0=7 and udp dst 53
        add(
            &mut bt,
            0,
            10,
            vec![f(Field::InPortOxm, 1)],
            vec![
                Action::SetField(f(Field::Reg(0), 7)),
                Action::ResubmitTable {
                    in_port: 0xfff8,
                    table: 5,
                    ct: false,
                },
            ],
        );
        add(
            &mut bt,
            5,
            10,
            vec![
                f(Field::Reg(0), 7),
                f(Field::EthType, 0x0800),
                f(Field::IpProto, 17),
                f(Field::UdpDst, 53),
            ],
            vec![out(3)],
        );
        let (x, _) = run(bt, &udp(), 0);
        assert_eq!(x.actions, vec![DpAction::Output(2)], "{:?}", x.trace);
        assert!(x.cacheable);
        assert_eq!(x.rules.len(), 2);
        // the datapath mask: in_port, eth_type, ip_proto, udp dst — not the source address
        assert_eq!(x.mask.w[w::NW_SRC_LO], 0);
        assert_ne!(x.mask.w[w::L4] & 0xffff_0000, 0);
        assert_eq!(x.mask.w[w::L4] & 0xffff, 0, "udp source port stays wild");
    }

    #[test]
    fn learn_emits_the_learned_flow_and_unwildcards_its_sources() {
        use openflow::action::{Learn, LearnDst, LearnSpec, LearnSrc};
        let h = |f: Field| f.info().nxm.unwrap();
        let mut bt = bridge();
        // learn(table=1,priority=10,NXM_OF_ETH_DST[]=NXM_OF_ETH_SRC[],output:NXM_OF_IN_PORT[]),
        // output:3
        add(
            &mut bt,
            0,
            10,
            vec![],
            vec![
                Action::Learn(Learn {
                    idle_timeout: 30,
                    hard_timeout: 0,
                    priority: 10,
                    cookie: 0,
                    flags: 0,
                    table_id: 1,
                    fin_idle_timeout: 0,
                    fin_hard_timeout: 0,
                    learn2: None,
                    specs: vec![
                        LearnSpec {
                            n_bits: 48,
                            src: LearnSrc::Field {
                                header: h(Field::EthSrc),
                                ofs: 0,
                            },
                            dst: LearnDst::Match {
                                header: h(Field::EthDst),
                                ofs: 0,
                            },
                        },
                        LearnSpec {
                            n_bits: 16,
                            src: LearnSrc::Field {
                                header: h(Field::InPort),
                                ofs: 0,
                            },
                            dst: LearnDst::Output,
                        },
                    ],
                }),
                out(3),
            ],
        );
        let (x, k) = run(bt, &udp(), 1);
        assert!(x.cacheable);
        assert_eq!(x.actions.len(), 2, "{:?}", x.actions);
        let DpAction::Learn(l) = &x.actions[0] else {
            panic!("{:?}", x.actions);
        };
        assert_eq!(l.fm.table_id, 1);
        let m = l.fm.match_.to_match();
        assert_eq!(m.fields[0].field, Field::EthDst);
        assert_eq!(
            m.fields[0].value_u128(),
            lf(Field::EthSrc).get(&flow::pkey_of(&k, 2))
        );
        assert_eq!(
            l.fm.instructions,
            vec![Instruction::ApplyActions(vec![out(2)])],
            "output to the packet's in_port (ofport 2)"
        );
        assert_eq!(x.actions[1], DpAction::Output(2));
        // the megaflow matches the source MAC the learned flow was built from
        assert_eq!(x.mask.w[w::ETH_SRC] & 0xffff_ffff_ffff, 0xffff_ffff_ffff);
        assert_eq!(x.mask.w[w::ETH_DST] & 0xffff_ffff_ffff, 0);
    }

    #[test]
    fn set_field_is_committed_before_the_output_that_needs_it() {
        let mut bt = bridge();
        add(
            &mut bt,
            0,
            10,
            vec![],
            vec![
                out(2),
                Action::SetField(f(Field::EthDst, 0x0200_0000_0042)),
                Action::SetField(f(Field::UdpDst, 5353)),
                out(3),
            ],
        );
        let (x, _) = run(bt, &udp(), 0);
        assert_eq!(x.actions[0], DpAction::Output(1));
        assert!(matches!(
            x.actions[1],
            DpAction::Set {
                field: DpField::EthDst,
                ..
            }
        ));
        assert!(matches!(
            x.actions[2],
            DpAction::Set {
                field: DpField::TpDst,
                value: 5353,
                ..
            }
        ));
        assert_eq!(x.actions[3], DpAction::Output(2));
    }

    #[test]
    fn clone_leaves_the_packet_as_it_was() {
        let mut bt = bridge();
        add(
            &mut bt,
            0,
            10,
            vec![],
            vec![
                Action::Clone(vec![
                    Action::SetField(f(Field::EthSrc, 0x0200_0000_0099)),
                    out(2),
                ]),
                out(3),
            ],
        );
        let (x, _) = run(bt, &udp(), 0);
        // set, output 2, restore the original source, output 3
        assert!(matches!(
            x.actions[0],
            DpAction::Set {
                field: DpField::EthSrc,
                value: 0x0200_0000_0099,
                ..
            }
        ));
        assert_eq!(x.actions[1], DpAction::Output(1));
        assert!(matches!(
            x.actions[2],
            DpAction::Set {
                field: DpField::EthSrc,
                value: 0x0200_0000_0001,
                ..
            }
        ));
        assert_eq!(x.actions[3], DpAction::Output(2));
    }

    #[test]
    fn conjunctive_match_and_never_out_the_input_port() {
        let mut bt = bridge();
        let conj = |k: u8| Action::Conjunction {
            id: 9,
            clause: k,
            n_clauses: 2,
        };
        add(
            &mut bt,
            0,
            20,
            vec![f(Field::EthType, 0x0800), f(Field::IpSrc, 0x0a00_0001)],
            vec![conj(0)],
        );
        add(
            &mut bt,
            0,
            20,
            vec![
                f(Field::EthType, 0x0800),
                f(Field::IpProto, 17),
                f(Field::UdpDst, 53),
            ],
            vec![conj(1)],
        );
        add(
            &mut bt,
            0,
            20,
            vec![f(Field::ConjId, 9)],
            vec![out(2), out(1)],
        );
        add(&mut bt, 0, 1, vec![], vec![]);
        let (x, _) = run(bt.clone(), &udp(), 0);
        assert_eq!(
            x.actions,
            vec![DpAction::Output(1)],
            "output:1 is the input port: skipped"
        );
        // another source address: the conjunction does not fire, the catch-all drops
        let other = testpkt::udp4([10, 0, 0, 9], [10, 0, 0, 2], 1000, 53, b"q", false);
        let (x, _) = run(bt, &other, 0);
        assert!(x.actions.is_empty());
    }

    #[test]
    fn dec_ttl_goto_and_resubmit_loops_are_bounded() {
        let mut bt = bridge();
        add(
            &mut bt,
            0,
            10,
            vec![],
            vec![
                Action::DecNwTtl,
                Action::ResubmitTable {
                    in_port: 0xfff8,
                    table: 1,
                    ct: false,
                },
            ],
        );
        add(
            &mut bt,
            1,
            10,
            vec![],
            vec![Action::ResubmitTable {
                in_port: 0xfff8,
                table: 1,
                ct: false,
            }],
        );
        let (x, _) = run(bt, &udp(), 0);
        assert_eq!(x.drop, Some(XlateDrop::ResubmitLimit));
        assert!(x.actions.is_empty());
        let mut bt = bridge();
        add(&mut bt, 0, 10, vec![], vec![Action::DecNwTtl, out(2)]);
        let (x, _) = run(bt, &udp(), 0);
        assert!(matches!(
            x.actions[0],
            DpAction::Set {
                field: DpField::IpTtl,
                value: 63,
                ..
            }
        ));
    }

    #[test]
    fn select_groups_pick_by_hash_and_unwildcard_what_they_hash() {
        let mut bt = bridge();
        let gm = openflow::message::GroupMod {
            command: mods::gcmd::ADD,
            group_type: 1,
            group_id: 5,
            command_bucket_id: 0,
            buckets: (2..=3)
                .map(|p| openflow::types::Bucket {
                    bucket_id: p - 2,
                    weight: Some(100),
                    watch_port: None,
                    watch_group: None,
                    actions: vec![out(p)],
                })
                .collect(),
            props: Vec::new(),
        };
        mods::group_mod(&mut bt, &gm, 6, 0, &mut mods::Changes::default()).unwrap();
        add(&mut bt, 0, 10, vec![], vec![Action::Group(5)]);
        let mut seen = std::collections::HashSet::new();
        for sport in 1000..1040u16 {
            let p = testpkt::udp4([10, 0, 0, 1], [10, 0, 0, 2], sport, 53, b"q", false);
            let (x, _) = run(bt.clone(), &p, 0);
            assert_eq!(x.actions.len(), 1);
            seen.insert(format!("{:?}", x.actions[0]));
            assert_ne!(
                x.mask.w[w::L4] & 0xffff,
                0,
                "the hashed source port is in the mask"
            );
        }
        assert_eq!(seen.len(), 2, "both buckets get flows");
    }

    #[test]
    fn controller_pause_freezes_and_resume_continues() {
        let mut bt = bridge();
        add(
            &mut bt,
            0,
            10,
            vec![],
            vec![
                Action::SetField(f(Field::Reg(3), 0x33)),
                Action::ResubmitTable {
                    in_port: 0xfff8,
                    table: 2,
                    ct: false,
                },
                out(3),
            ],
        );
        add(
            &mut bt,
            2,
            10,
            vec![],
            vec![
                Action::Controller2(openflow::action::Controller2 {
                    userdata: Some(vec![0, 0, 0, 26]),
                    pause: true,
                    ..Default::default()
                }),
                Action::SetField(f(Field::Reg(4), 0x44)),
                out(2),
            ],
        );
        let bt2 = bt.clone();
        let (x, k) = run(bt, &udp(), 0);
        let [DpAction::Userspace(spec)] = &x.actions[..] else {
            panic!("{:?}", x.actions);
        };
        assert!(spec.metadata.contains(&(Field::Reg(3), 0x33)));
        assert_eq!(spec.table_id, 2);
        let frozen = spec.frozen.clone().unwrap();
        assert_eq!(
            frozen.frames.len(),
            2,
            "inner table 2 and outer table 0 levels"
        );
        // resume: the rest of table 2, then the rest of table 0
        let mut pipe = Pipeline::default();
        pipe.bridges.push(Arc::new(bt2.clone()));
        let cfg = DpConfig::default();
        let macs = MacTable::new(64);
        let inp = XlateIn {
            pipe: &pipe,
            cfg: &cfg,
            macs: &macs,
            now: 1,
            now_ms: 1,
            pkt_len: 60,
            trace: false,
            recirc: &RecircTable::default(),
        };
        let mut pk = flow::pkey_of(&k, 1);
        lf(Field::Reg(3)).set(&mut pk, 0x33);
        let r = resume(&inp, &bt2, pk, &frozen);
        assert_eq!(r.actions, vec![DpAction::Output(1), DpAction::Output(2)]);
    }

    /// Two bridges as OVN has them: br0 (ports 1, 2; port 3 is a Geneve port to 172.31.0.2)
    /// and br-phy (index 1: the underlay port 1 on dp 10, LOCAL on dp 11 carrying
    /// 172.31.0.1/24, NORMAL), with the neighbour 172.31.0.2 known.
    /// Bridge `name` (index `index`) with (OpenFlow port, datapath port) members.
    fn patch_bridge(name: &str, index: u8, members: &[(u32, DpPort)]) -> BridgeTables {
        let mut bt = BridgeTables::new(name, index, index as u64 + 1);
        for &(of, dp) in members {
            bt.ports.insert(
                of,
                OfPort {
                    ofport: of,
                    dp,
                    name: format!("{name}-{of}"),
                    config: 0,
                    up: true,
                },
            );
            bt.of_of_dp.insert(dp, of);
        }
        bt
    }

    /// The datapath configuration for `pairs` of patch ports (dp, peer dp), with `ports`
    /// (dp, bridge, ofport) listing every port.
    fn patch_cfg(ports: &[(DpPort, u8, u32)], pairs: &[(DpPort, Option<DpPort>)]) -> DpConfig {
        let mut cfg = DpConfig::default();
        for &(dp, bridge, ofport) in ports {
            let i = dp as usize;
            if cfg.ports.len() <= i {
                cfg.ports.resize(i + 1, None);
            }
            cfg.ports[i] = Some(crate::pipeline::PortInfo {
                name: format!("dp{dp}"),
                ofport,
                bridge,
                up: true,
                patch: pairs.iter().find(|(d, _)| *d == dp).map(|(_, p)| *p),
            });
        }
        cfg
    }

    /// A UDP frame from `src` to `dst`.
    fn frame(dst: [u8; 6], src: [u8; 6]) -> Vec<u8> {
        let mut f = udp();
        f[..6].copy_from_slice(&dst);
        f[6..12].copy_from_slice(&src);
        f
    }

    fn translate_in(
        pipe: &Pipeline,
        cfg: &DpConfig,
        macs: &MacTable,
        frame: &[u8],
        in_dp: DpPort,
    ) -> XlateOut {
        let inp = XlateIn {
            pipe,
            cfg,
            macs,
            now: 1,
            now_ms: 1000,
            pkt_len: frame.len() as u32,
            trace: true,
            recirc: &RecircTable::default(),
        };
        let mut k = FlowKey::default();
        let mut l = Layout::default();
        extract(frame, in_dp as u32, &mut k, &mut l).unwrap();
        translate(&inp, &k, in_dp)
    }

    #[test]
    fn patch_output_continues_in_the_peer_bridge_with_fresh_pipeline_fields() {
        // br-a: vm-a 1 (dp 0), patch-a 2 (dp 1); br-b: patch-b 5 (dp 2), vm-b 1 (dp 3)
        let mut a = patch_bridge("br-a", 0, &[(1, 0), (2, 1)]);
        let mut b = patch_bridge("br-b", 1, &[(5, 2), (1, 3)]);
        add(
            &mut a,
            0,
            100,
            vec![f(Field::InPortOxm, 1)],
            vec![
                Action::SetField(f(Field::Reg(0), 7)),
                Action::SetField(f(Field::Metadata, 9)),
                Action::SetField(f(Field::TunId, 0x55)),
                Action::SetField(f(Field::EthDst, 0x0200_0000_0042)),
                out(2),
                // back in br-a: its own registers again
                Action::SetField(f(Field::EthSrc, 0x0200_0000_0077)),
                Action::ResubmitTable {
                    in_port: 0xfff8,
                    table: 1,
                    ct: false,
                },
            ],
        );
        add(
            &mut a,
            1,
            100,
            vec![f(Field::Reg(0), 7)],
            vec![out(ports::IN_PORT)],
        );
        // br-b sees in_port = its patch port, zero registers, metadata and tunnel id
        add(
            &mut b,
            0,
            100,
            vec![
                f(Field::InPortOxm, 5),
                f(Field::Reg(0), 0),
                f(Field::Metadata, 0),
                f(Field::TunId, 0),
            ],
            vec![Action::SetField(f(Field::Reg(1), 3)), out(1)],
        );
        let mut pipe = Pipeline::default();
        pipe.bridges.push(Arc::new(a));
        pipe.bridges.push(Arc::new(b));
        for (d, br) in [(0, 0), (1, 0), (2, 1), (3, 1)] {
            pipe.bridge_of_dp.insert(d, br);
        }
        let cfg = patch_cfg(
            &[(0, 0, 1), (1, 0, 2), (2, 1, 5), (3, 1, 1)],
            &[(1, Some(2)), (2, Some(1))],
        );
        let macs = MacTable::new(64);
        let o = translate_in(&pipe, &cfg, &macs, &udp(), 0);
        assert_eq!(o.drop, None, "{:#?}", o.trace);
        assert_eq!(
            o.actions,
            vec![
                DpAction::Set {
                    field: DpField::EthDst,
                    value: 0x0200_0000_0042,
                    mask: 0xffff_ffff_ffff,
                },
                DpAction::Output(3),
                DpAction::Set {
                    field: DpField::EthSrc,
                    value: 0x0200_0000_0077,
                    mask: 0xffff_ffff_ffff,
                },
                DpAction::Output(0),
            ],
            "{:#?}",
            o.trace
        );
        // br-b's match on the (cleared) tunnel id does not reach the datapath mask
        assert_eq!(o.mask.w[w::TUN_ID], 0);
        assert_eq!(o.mask.w[w::META] & 0xffff_ffff, 0xffff_ffff);
        assert!(o
            .trace
            .iter()
            .any(|l| l.contains("patch to bridge(\"br-b\")")));
        assert_eq!(o.rules.len(), 3, "both bridges' rules are credited");
    }

    #[test]
    fn normal_learns_across_a_patch_pair_and_peerless_patch_ports_drop() {
        let mut pipe = Pipeline::default();
        let mut a = patch_bridge("br-a", 0, &[(1, 0), (2, 1)]);
        let mut b = patch_bridge("br-b", 1, &[(5, 2), (1, 3)]);
        a.add_normal_flow(0);
        b.add_normal_flow(0);
        pipe.bridges.push(Arc::new(a));
        pipe.bridges.push(Arc::new(b));
        for (d, br) in [(0, 0), (1, 0), (2, 1), (3, 1)] {
            pipe.bridge_of_dp.insert(d, br);
        }
        let ports = [(0, 0, 1), (1, 0, 2), (2, 1, 5), (3, 1, 1)];
        let cfg = patch_cfg(&ports, &[(1, Some(2)), (2, Some(1))]);
        let macs = MacTable::new(64);
        let a_mac = 0x0200_0000_000a_u64;
        let b_mac = 0x0200_0000_000b_u64;
        let bcast = frame([0xff; 6], crate::packet::Mac::from_u64(a_mac).0);
        let o = translate_in(&pipe, &cfg, &macs, &bcast, 0);
        assert_eq!(o.actions, vec![DpAction::Output(3)], "{:#?}", o.trace);
        // learnt in both bridges: behind vm-a in br-a, behind the patch port in br-b
        assert_eq!(macs.lookup(0, 0, a_mac), Some(0));
        assert_eq!(macs.lookup(1, 0, a_mac), Some(2));
        // the answer goes back through the pair as unicast
        let reply = frame(
            crate::packet::Mac::from_u64(a_mac).0,
            crate::packet::Mac::from_u64(b_mac).0,
        );
        let o = translate_in(&pipe, &cfg, &macs, &reply, 3);
        assert_eq!(o.actions, vec![DpAction::Output(0)], "{:#?}", o.trace);
        assert!(!o.flooded);
        assert_eq!(macs.lookup(0, 0, b_mac), Some(1));
        // a patch port without a usable peer: its output goes nowhere
        let cfg = patch_cfg(&ports, &[(1, None), (2, None)]);
        let o = translate_in(&pipe, &cfg, &macs, &reply, 3);
        assert_eq!(o.actions, Vec::<DpAction>::new(), "{:#?}", o.trace);
    }

    #[test]
    fn a_patch_loop_between_normal_bridges_is_bounded() {
        // two pairs between br-a and br-b: a broadcast goes round and round
        let mut a = patch_bridge("br-a", 0, &[(1, 0), (2, 1), (3, 4)]);
        let mut b = patch_bridge("br-b", 1, &[(5, 2), (1, 3), (6, 5)]);
        a.add_normal_flow(0);
        b.add_normal_flow(0);
        let mut pipe = Pipeline::default();
        pipe.bridges.push(Arc::new(a));
        pipe.bridges.push(Arc::new(b));
        for (d, br) in [(0, 0), (1, 0), (4, 0), (2, 1), (3, 1), (5, 1)] {
            pipe.bridge_of_dp.insert(d, br);
        }
        let cfg = patch_cfg(
            &[
                (0, 0, 1),
                (1, 0, 2),
                (4, 0, 3),
                (2, 1, 5),
                (3, 1, 1),
                (5, 1, 6),
            ],
            &[(1, Some(2)), (2, Some(1)), (4, Some(5)), (5, Some(4))],
        );
        let macs = MacTable::new(64);
        let bcast = frame([0xff; 6], [2, 0, 0, 0, 0, 0xa]);
        let inp = XlateIn {
            pipe: &pipe,
            cfg: &cfg,
            macs: &macs,
            now: 1,
            now_ms: 1000,
            pkt_len: bcast.len() as u32,
            trace: false,
            recirc: &RecircTable::default(),
        };
        let mut k = FlowKey::default();
        let mut l = Layout::default();
        extract(&bcast, 0, &mut k, &mut l).unwrap();
        let o = translate(&inp, &k, 0);
        assert_eq!(o.drop, Some(XlateDrop::ResubmitLimit));
        assert!(o.actions.is_empty());
    }

    fn tunnel_setup() -> (Pipeline, DpConfig) {
        use crate::port::tunnel::{TunnelConfig, TunnelIp, TunnelKey};
        use crate::tunnel::{LocalIf, Route, TnlPort, TnlSnapshot};
        let mut bt = bridge();
        add(
            &mut bt,
            0,
            100,
            vec![f(Field::InPortOxm, 1)],
            vec![Action::SetField(f(Field::TunId, 5)), out(3)],
        );
        add(&mut bt, 0, 100, vec![f(Field::InPortOxm, 3)], vec![out(1)]);
        let mut phy = BridgeTables::new("br-phy", 1, 2);
        for (of, dp) in [(1u32, 10u16), (ports::LOCAL, 11)] {
            phy.ports.insert(
                of,
                OfPort {
                    ofport: of,
                    dp,
                    name: format!("phy{dp}"),
                    config: 0,
                    up: true,
                },
            );
            phy.of_of_dp.insert(dp, of);
        }
        phy.add_normal_flow(0);
        let mut pipe = Pipeline::default();
        pipe.bridges.push(Arc::new(bt));
        pipe.bridges.push(Arc::new(phy));
        for d in 0..3 {
            pipe.bridge_of_dp.insert(d, 0);
        }
        pipe.bridge_of_dp.insert(10, 1);
        pipe.bridge_of_dp.insert(11, 1);
        let ip = |a: [u8; 4]| u32::from(std::net::Ipv4Addr::from(a));
        let tnl = TnlSnapshot {
            ports: vec![TnlPort {
                dp: 2,
                ofport: 3,
                bridge: 0,
                name: "geneve0".into(),
                kind: crate::port::TunnelKind::Geneve,
                cfg: TunnelConfig {
                    remote_ip: TunnelIp::Fixed([172, 31, 0, 2].into()),
                    local_ip: None,
                    key: TunnelKey::Flow,
                    dst_port: 6081,
                    csum: false,
                    ignored: Vec::new(),
                },
            }],
            routes: vec![Route {
                dst: ip([172, 31, 0, 0]),
                plen: 24,
                gw: None,
                ifindex: 77,
                dev: "br-phy".into(),
                prefsrc: Some(ip([172, 31, 0, 1])),
                priority: 0,
            }],
            locals: vec![LocalIf {
                bridge: 1,
                dp: 11,
                name: "br-phy".into(),
                ifindex: 77,
                mac: crate::packet::Mac([2, 0, 0, 0, 0, 0xaa]),
                addrs: vec![ip([172, 31, 0, 1])],
                mtu: 1500,
            }],
            neigh: [(
                ip([172, 31, 0, 2]),
                crate::packet::Mac([2, 0, 0, 0, 0, 0xbb]),
            )]
            .into_iter()
            .collect(),
            tlv0: vec![None, None],
            mail: Default::default(),
        };
        let cfg = DpConfig {
            tnl: Arc::new(tnl),
            ..Default::default()
        };
        (pipe, cfg)
    }

    #[test]
    fn tunnel_output_pushes_translates_the_underlay_and_strips() {
        let (pipe, cfg) = tunnel_setup();
        let macs = MacTable::new(64);
        let inp = XlateIn {
            pipe: &pipe,
            cfg: &cfg,
            macs: &macs,
            now: 1,
            now_ms: 1000,
            pkt_len: 60,
            trace: true,
            recirc: &RecircTable::default(),
        };
        let frame = udp();
        let mut k = FlowKey::default();
        let mut l = Layout::default();
        extract(&frame, 0, &mut k, &mut l).unwrap();
        let x = translate(&inp, &k, 0);
        assert!(x.cacheable, "{:?}", x.trace);
        let [DpAction::TunnelPush(h), DpAction::Output(10), DpAction::TunnelStrip] = &x.actions[..]
        else {
            panic!("{:?}\n{:#?}", x.actions, x.trace);
        };
        // outer Ethernet to the neighbour from br-phy's MAC, VNI 5 from tun_id
        assert_eq!(&h.bytes[0..12], &[2, 0, 0, 0, 0, 0xbb, 2, 0, 0, 0, 0, 0xaa]);
        assert_eq!(&h.bytes[26..34], &[172, 31, 0, 1, 172, 31, 0, 2]);
        assert_eq!(&h.bytes[46..49], &[0, 0, 5]);
        assert_eq!(h.port, 2);
        // the encap used tun_id, which the pipeline set: nothing of the inner key beyond
        // in_port (and the recirculation id, always exact) was needed
        assert_eq!(x.mask.w[w::META], u64::MAX);

        // decap: the encapsulated frame arriving on br-phy's underlay port for br-phy's MAC
        let mut f2 = vec![0u8; h.len as usize];
        f2.extend_from_slice(&frame);
        h.push(&mut f2, 1, 40000);
        // as the remote end (172.31.0.2, MAC ..:bb) would send it to us (172.31.0.1, ..:aa)
        f2[0..12].copy_from_slice(&[2, 0, 0, 0, 0, 0xaa, 2, 0, 0, 0, 0, 0xbb]);
        f2[26..34].copy_from_slice(&[172, 31, 0, 2, 172, 31, 0, 1]);
        extract(&f2, 10, &mut k, &mut l).unwrap();
        let x = translate(&inp, &k, 10);
        let [DpAction::TunnelPop(r)] = &x.actions[..] else {
            panic!("{:?}\n{:#?}", x.actions, x.trace);
        };
        let (off, meta) = crate::tunnel::pop(&f2, &l, r).unwrap();
        assert_eq!(&f2[off..], &frame[..]);
        assert_eq!((meta.dp, meta.id), (2, 5));
    }

    #[test]
    fn unresolved_next_hop_drops_uncached_and_asks_for_arp() {
        let (pipe, mut cfg) = tunnel_setup();
        let t = Arc::get_mut(&mut cfg.tnl).unwrap();
        t.neigh.clear();
        let macs = MacTable::new(64);
        let inp = XlateIn {
            pipe: &pipe,
            cfg: &cfg,
            macs: &macs,
            now: 1,
            now_ms: 1000,
            pkt_len: 60,
            trace: false,
            recirc: &RecircTable::default(),
        };
        let mut k = FlowKey::default();
        let mut l = Layout::default();
        extract(&udp(), 0, &mut k, &mut l).unwrap();
        let x = translate(&inp, &k, 0);
        assert!(x.actions.is_empty() && !x.cacheable);
        assert_eq!(x.drop, Some(XlateDrop::TunnelNeighMiss));
        let mut ev = Vec::new();
        cfg.tnl.mail.drain(|e| ev.push(e));
        assert_eq!(
            ev,
            vec![crate::tunnel::Event::Miss {
                bridge: 1,
                ip: 0xac1f_0002,
                src: 0xac1f_0001
            }]
        );
    }

    fn reg_sub(n: u8, ofs: u16, n_bits: u16) -> openflow::action::Subfield {
        openflow::action::Subfield {
            header: Field::Reg(n).header_for(6, false).unwrap(),
            ofs,
            n_bits,
        }
    }

    #[test]
    fn ct_with_table_emits_the_tracker_action_and_resumes_from_the_frozen_registers() {
        let mut bt = bridge();
        // table 0: zone in reg13, a register to carry, ct(commit,zone=reg13,table=5,
        // exec(set_field ct_mark, move reg1 -> ct_label[0..31]))
        add(
            &mut bt,
            0,
            1,
            vec![],
            vec![
                Action::SetField(f(Field::Reg(13), 7)),
                Action::SetField(f(Field::Reg(1), 0xabcd)),
                Action::Ct(openflow::action::Conntrack {
                    flags: 1,
                    zone_src: Some(reg_sub(13, 0, 16)),
                    zone_imm: 0,
                    recirc_table: 5,
                    alg: 0,
                    actions: vec![
                        Action::SetField(f(Field::CtMark, 0x2)),
                        Action::RegMove {
                            n_bits: 32,
                            src_ofs: 0,
                            dst_ofs: 0,
                            src: Field::Reg(1).header_for(6, false).unwrap(),
                            dst: Field::CtLabel.header_for(6, false).unwrap(),
                        },
                    ],
                }),
            ],
        );
        // table 5: established + reg1 intact -> port 2; anything else -> port 3
        add(
            &mut bt,
            5,
            10,
            vec![
                MatchField::new(
                    Field::CtState,
                    6,
                    vec![0, 0, 0, 0x22],
                    Some(vec![0, 0, 0, 0x22]),
                )
                .unwrap(),
                f(Field::Reg(1), 0xabcd),
            ],
            vec![out(2)],
        );
        add(&mut bt, 5, 1, vec![], vec![out(3)]);
        let rig = Rig::new(bt);
        let mut k = FlowKey::default();
        let mut l = Layout::default();
        extract(&udp(), 0, &mut k, &mut l).unwrap();
        let x = rig.xlate(&k);
        let [DpAction::Ct(c)] = &x.actions[..] else {
            panic!("{:?} {:?}", x.actions, x.trace);
        };
        assert_eq!(c.act.zone, 7);
        assert!(c.act.commit);
        assert_eq!(c.act.set_mark, Some((2, u32::MAX)));
        assert_eq!(c.act.set_label, Some((0xabcd, 0xffff_ffff)));
        assert_ne!(c.recirc, 0);
        assert_eq!(
            x.mask.w[w::META],
            u64::MAX,
            "recirc_id and in_port always exact"
        );
        // the same state again: the same id (no id per packet)
        let x2 = rig.xlate(&k);
        let [DpAction::Ct(c2)] = &x2.actions[..] else {
            panic!()
        };
        assert_eq!(c2.recirc, c.recirc);
        // back from the tracker: established, resumes in table 5 with reg1 restored
        let mut k2 = k;
        k2.w[w::META] |= (c.recirc as u64) << 32;
        k2.w[w::TUN_CT] |= 0x22u64 << 32;
        let y = rig.xlate(&k2);
        assert_eq!(y.actions, vec![DpAction::Output(1)], "{:?}", y.trace);
        assert_ne!(y.mask.w[w::TUN_CT] >> 32, 0, "ct_state is matched");
        // new (not established): the other flow
        let mut k3 = k;
        k3.w[w::META] |= (c.recirc as u64) << 32;
        k3.w[w::TUN_CT] |= 0x21u64 << 32;
        let z = rig.xlate(&k3);
        assert_eq!(z.actions, vec![DpAction::Output(2)]);
        // an unknown recirculation id drops, counted
        let mut k4 = k;
        k4.w[w::META] |= 999u64 << 32;
        let d = rig.xlate(&k4);
        assert!(d.actions.is_empty());
        assert_eq!(d.drop, Some(XlateDrop::RecircLost));
    }

    #[test]
    fn resubmit_ct_looks_up_with_the_original_tuple_and_acts_on_the_packet() {
        let mut bt = bridge();
        add(
            &mut bt,
            0,
            1,
            vec![],
            vec![Action::ResubmitTable {
                in_port: 0xfff8,
                table: 1,
                ct: true,
            }],
        );
        // table 1: the VIP the client dialled (the connection's original destination)
        add(
            &mut bt,
            1,
            10,
            vec![
                f(Field::EthType, 0x0800),
                f(Field::IpProto, 17),
                f(Field::IpDst, 0x0a00_0009),
                f(Field::UdpDst, 53),
            ],
            vec![out(2)],
        );
        add(&mut bt, 1, 1, vec![], vec![out(3)]);
        let rig = Rig::new(bt);
        // a DNATed packet 10.0.0.1:1000 -> 10.0.0.2:53 of the connection to 10.0.0.9:53
        let mut k = FlowKey::default();
        let mut l = Layout::default();
        extract(&udp(), 0, &mut k, &mut l).unwrap();
        let mut tracked = k;
        tracked.w[w::CT_NW] = 0x0a00_0001 | (0x0a00_0009u64 << 32);
        tracked.w[w::CT_TP] = 1000 | (53 << 16);
        tracked.w[w::HASH] |= 17u64 << 32;
        tracked.w[w::TUN_CT] |= 0x22u64 << 32;
        let x = rig.xlate(&tracked);
        assert_eq!(x.actions, vec![DpAction::Output(1)], "{:?}", x.trace);
        assert_eq!(
            x.mask.w[w::CT_NW] >> 32,
            0xffff_ffff,
            "the lookup examined ct_nw_dst"
        );
        assert_eq!(
            x.mask.w[w::NW_DST_LO] & 0xffff_ffff,
            0,
            "and not the packet's nw_dst"
        );
        // the packet's own tuple selects the other flow: the swap is undone after the lookup
        let mut plain = tracked;
        plain.w[w::CT_NW] = 0x0a00_0001 | (0x0a00_0002u64 << 32);
        let y = rig.xlate(&plain);
        assert_eq!(y.actions, vec![DpAction::Output(2)]);
        // untracked: the resubmit does nothing (OVS: "non-tracked or non-IP packet")
        let z = rig.xlate(&k);
        assert!(z.actions.is_empty(), "{:?}", z.actions);
        assert!(
            z.trace.iter().any(|t| t.contains("non-tracked")),
            "{:?}",
            z.trace
        );
    }

    /// A bridge's tables and what translation needs around them, kept between translations
    /// (recirculation ids stay valid), with tracing on.
    struct Rig {
        pipe: Pipeline,
        cfg: DpConfig,
        macs: MacTable,
        rt: RecircTable,
    }

    impl Rig {
        fn new(bt: BridgeTables) -> Rig {
            let mut pipe = Pipeline::default();
            pipe.bridges.push(Arc::new(bt));
            for d in 0..3 {
                pipe.bridge_of_dp.insert(d, 0);
            }
            Rig {
                pipe,
                cfg: DpConfig::default(),
                macs: MacTable::new(64),
                rt: RecircTable::default(),
            }
        }

        fn xlate(&self, k: &FlowKey) -> XlateOut {
            let inp = XlateIn {
                pipe: &self.pipe,
                cfg: &self.cfg,
                macs: &self.macs,
                now: 1,
                now_ms: 1000,
                pkt_len: 60,
                trace: true,
                recirc: &self.rt,
            };
            translate(&inp, k, 0)
        }
    }

    #[test]
    fn ct_without_table_hides_its_results_and_ct_exec_rejects_other_fields() {
        let mut bt = bridge();
        add(
            &mut bt,
            0,
            1,
            vec![],
            vec![
                Action::Ct(openflow::action::Conntrack {
                    flags: 1,
                    zone_src: None,
                    zone_imm: 9,
                    recirc_table: 255,
                    alg: 0,
                    actions: vec![Action::Nat(openflow::action::Nat {
                        flags: 1,
                        ipv4_min: Some(0x0a00_0064),
                        ..Default::default()
                    })],
                }),
                out(2),
            ],
        );
        let (x, _) = run(bt, &udp(), 0);
        match &x.actions[..] {
            [DpAction::Ct(c), DpAction::Output(1)] => {
                assert_eq!(c.recirc, 0);
                assert_eq!(c.act.zone, 9);
                let n = c.act.nat.as_ref().unwrap();
                assert_eq!(n.kind, crate::conntrack::NatKind::Src);
                assert_eq!(
                    n.addr_min,
                    Some(std::net::IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 100)))
                );
            }
            other => panic!("{other:?}"),
        }
        // exec may only write ct_mark / ct_label
        let bad = openflow::action::Conntrack {
            flags: 1,
            zone_src: None,
            zone_imm: 0,
            recirc_table: 255,
            alg: 0,
            actions: vec![Action::SetField(f(Field::Reg(0), 1))],
        };
        let e = crate::pipeline::ofpact::from_actions(&[Action::Ct(bad)], 0).unwrap_err();
        assert_eq!(e.err, openflow::OfpErr::OFPBAC_BAD_ARGUMENT);
    }

    #[test]
    fn forward_resubmits_do_not_deepen_but_loops_still_stop() {
        // a 200-table forward chain (deeper than MAX_DEPTH): translated to the end
        let mut bt = bridge();
        for t in 0..200u8 {
            add(
                &mut bt,
                t,
                1,
                vec![],
                vec![Action::ResubmitTable {
                    in_port: 0xfff8,
                    table: t + 1,
                    ct: false,
                }],
            );
        }
        add(&mut bt, 200, 1, vec![], vec![out(2)]);
        let (x, _) = run(bt, &udp(), 0);
        assert_eq!(x.drop, None);
        assert_eq!(x.actions, vec![DpAction::Output(1)]);
        // a loop in one table stops at the limit
        let mut bt = bridge();
        add(
            &mut bt,
            0,
            1,
            vec![],
            vec![Action::ResubmitTable {
                in_port: 0xfff8,
                table: 0,
                ct: false,
            }],
        );
        let (x, _) = run(bt, &udp(), 0);
        assert_eq!(x.drop, Some(XlateDrop::ResubmitLimit));
        assert!(x.actions.is_empty());
    }
}
