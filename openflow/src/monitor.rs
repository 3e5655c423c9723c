//! Flow monitors: the requests and the flow updates of NXST_FLOW_MONITOR (Nicira, OpenFlow
//! 1.0: `nx_flow_monitor_request`, `nx_flow_update_full`/`_abbrev` with NXM matches and
//! actions), ONFST_FLOW_MONITOR (ONF extension 1870 for OpenFlow 1.3: the same with an
//! `ofp_match` and instructions) and OFPMP_FLOW_MONITOR (OpenFlow 1.4+).

use crate::action::{
    emit_actions, emit_instructions, parse_actions, parse_instructions, port_from_of10,
    port_to_of10, Instruction,
};
use crate::buf::{Reader, Writer};
use crate::error::{fail, OfpErr, Result};
use crate::oxm::{emit_ofp_match, parse_nx_match, parse_ofp_match, Match};
use crate::types::{actions_to_instructions, instructions_to_actions};

const BRC: OfpErr = OfpErr::OFPBRC_BAD_LEN;

/// Which of the three wire forms a flow-monitor request or reply uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FlowMonitorForm {
    /// NXST_FLOW_MONITOR (Nicira experimenter multipart 2): NXM match, actions.
    Nicira,
    /// ONFST_FLOW_MONITOR (ONF experimenter multipart 1870): `ofp_match`, instructions,
    /// Nicira flags and events.
    Onf,
    /// OFPMP_FLOW_MONITOR (16, OpenFlow 1.4+).
    OpenFlow,
}

/// Request flag bits of the Nicira and ONF forms (NXFMF_*).
pub mod nxfmf {
    pub const INITIAL: u16 = 1;
    pub const ADD: u16 = 2;
    pub const DELETE: u16 = 4;
    pub const MODIFY: u16 = 8;
    pub const ACTIONS: u16 = 16;
    pub const OWN: u16 = 32;
}

/// Request flag bits of OpenFlow 1.4+ (OFPFMF_*).
pub mod ofpfmf {
    pub const INITIAL: u16 = 1;
    pub const ADD: u16 = 2;
    pub const REMOVED: u16 = 4;
    pub const MODIFY: u16 = 8;
    pub const INSTRUCTIONS: u16 = 16;
    pub const NO_ABBREV: u16 = 32;
    pub const ONLY_OWN: u16 = 64;
}

/// Update events of the Nicira and ONF forms (NXFME_*).
pub mod nxfme {
    pub const ADDED: u16 = 0;
    pub const DELETED: u16 = 1;
    pub const MODIFIED: u16 = 2;
    pub const ABBREV: u16 = 3;
}

/// Update events of OpenFlow 1.4+ (OFPFME_*).
pub mod ofpfme {
    pub const INITIAL: u16 = 0;
    pub const ADDED: u16 = 1;
    pub const REMOVED: u16 = 2;
    pub const MODIFIED: u16 = 3;
    pub const ABBREV: u16 = 4;
    pub const PAUSED: u16 = 5;
    pub const RESUMED: u16 = 6;
}

/// One monitor of a flow-monitor request.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FlowMonitorRequest {
    pub id: u32,
    /// NXFMF_* bits (Nicira, ONF) or OFPFMF_* bits (OpenFlow 1.4+), as on the wire.
    pub flags: u16,
    /// Required output port (OFPP_ANY/OFPP_NONE for any); 16 bits on the wire in the Nicira
    /// form, converted like other OpenFlow 1.0 ports.
    pub out_port: u32,
    /// OpenFlow 1.4+ only (OFPG_ANY otherwise; not encoded).
    pub out_group: u32,
    /// One table or 0xff for all.
    pub table_id: u8,
    /// OpenFlow 1.4+ OFPFMC_* (add 0, modify 1, delete 2); 0 and not encoded otherwise.
    pub command: u8,
    pub match_: Match,
}

/// A full flow update: a flow added, deleted or modified (or, in 1.4+, initially present).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FlowUpdateFull {
    /// NXFME_* (Nicira, ONF) or OFPFME_* (1.4+), as on the wire.
    pub event: u16,
    /// OFPRR_* for a deletion, else 0 (8 bits on the wire in 1.4+).
    pub reason: u16,
    pub priority: u16,
    pub idle_timeout: u16,
    pub hard_timeout: u16,
    pub table_id: u8,
    pub cookie: u64,
    pub match_: Match,
    /// The flow's instructions (empty when not requested or for deletions).  The Nicira
    /// form carries bare actions: one `ApplyActions` (like Nicira flow stats).
    pub instructions: Vec<Instruction>,
}

/// One entry of a flow-monitor reply.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum FlowUpdate {
    Full(FlowUpdateFull),
    /// The receiver's own flow mod with this xid (NXFME_ABBREV / OFPFME_ABBREV).
    Abbrev {
        xid: u32,
    },
    /// OpenFlow 1.4+ OFPFME_PAUSED.
    Paused,
    /// OpenFlow 1.4+ OFPFME_RESUMED.
    Resumed,
}

pub(crate) fn parse_requests(
    r: &mut Reader,
    form: FlowMonitorForm,
) -> Result<Vec<FlowMonitorRequest>> {
    let mut out = Vec::new();
    while !r.is_empty() {
        let m = match form {
            FlowMonitorForm::Nicira => {
                let id = r.u32("id")?;
                let flags = r.u16("flags")?;
                let out_port = port_from_of10(r.u16("out_port")?);
                let match_len = r.u16("match_len")? as usize;
                let table_id = r.u8("table_id")?;
                r.pad(5, "zeros")?;
                FlowMonitorRequest {
                    id,
                    flags,
                    out_port,
                    out_group: 0xffff_ffff,
                    table_id,
                    command: 0,
                    match_: parse_nx_match(r, match_len)?,
                }
            }
            FlowMonitorForm::Onf => {
                let id = r.u32("id")?;
                let flags = r.u16("flags")?;
                r.skip(2, "match_len")?;
                let out_port = r.u32("out_port")?;
                let table_id = r.u8("table_id")?;
                r.pad(3, "zeros")?;
                FlowMonitorRequest {
                    id,
                    flags,
                    out_port,
                    out_group: 0xffff_ffff,
                    table_id,
                    command: 0,
                    match_: parse_ofp_match(r)?,
                }
            }
            FlowMonitorForm::OpenFlow => FlowMonitorRequest {
                id: r.u32("monitor_id")?,
                out_port: r.u32("out_port")?,
                out_group: r.u32("out_group")?,
                flags: r.u16("flags")?,
                table_id: r.u8("table_id")?,
                command: r.u8("command")?,
                match_: parse_ofp_match(r)?,
            },
        };
        out.push(m);
    }
    Ok(out)
}

/// Length of an `ofp_match` without its padding.
fn ofp_match_len(m: &Match) -> usize {
    4 + m.tlv_len()
}

pub(crate) fn emit_requests(list: &[FlowMonitorRequest], form: FlowMonitorForm, w: &mut Writer) {
    for m in list {
        match form {
            FlowMonitorForm::Nicira => {
                w.u32(m.id);
                w.u16(m.flags);
                w.u16(port_to_of10(m.out_port));
                w.u16(m.match_.tlv_len().min(0xffff) as u16);
                w.u8(m.table_id);
                w.zeros(5);
                let s = w.len();
                m.match_.emit_tlvs(w);
                w.pad8_from(s);
            }
            FlowMonitorForm::Onf => {
                w.u32(m.id);
                w.u16(m.flags);
                w.u16(ofp_match_len(&m.match_).min(0xffff) as u16);
                w.u32(m.out_port);
                w.u8(m.table_id);
                w.zeros(3);
                emit_ofp_match(&m.match_, w);
            }
            FlowMonitorForm::OpenFlow => {
                w.u32(m.id);
                w.u32(m.out_port);
                w.u32(m.out_group);
                w.u16(m.flags);
                w.u8(m.table_id);
                w.u8(m.command);
                emit_ofp_match(&m.match_, w);
            }
        }
    }
}

pub(crate) fn parse_updates(
    r: &mut Reader,
    form: FlowMonitorForm,
    v: u8,
) -> Result<Vec<FlowUpdate>> {
    let mut out = Vec::new();
    let of = form == FlowMonitorForm::OpenFlow;
    while !r.is_empty() {
        let len = r.peek_u16(0).ok_or_else(|| r.short("flow update"))? as usize;
        if len < 8 || !len.is_multiple_of(8) || len > r.remaining() {
            return fail(BRC, "flow update length");
        }
        let mut e = r.sub(len, "flow update")?;
        e.skip(2, "length")?;
        let event = e.u16("event")?;
        let u = match (of, event) {
            (false, nxfme::ABBREV) | (true, ofpfme::ABBREV) => {
                if len != 8 {
                    return fail(BRC, "abbreviated flow update length");
                }
                FlowUpdate::Abbrev { xid: e.u32("xid")? }
            }
            (true, ofpfme::PAUSED | ofpfme::RESUMED) => {
                if len != 8 {
                    return fail(BRC, "paused/resumed flow update length");
                }
                if event == ofpfme::PAUSED {
                    FlowUpdate::Paused
                } else {
                    FlowUpdate::Resumed
                }
            }
            (false, 0..=2) | (true, 0..=3) => {
                if len < 24 {
                    return fail(BRC, "full flow update length");
                }
                let mut f = FlowUpdateFull {
                    event,
                    reason: 0,
                    priority: 0,
                    idle_timeout: 0,
                    hard_timeout: 0,
                    table_id: 0,
                    cookie: 0,
                    match_: Match::default(),
                    instructions: Vec::new(),
                };
                if of {
                    f.table_id = e.u8("table_id")?;
                    f.reason = e.u8("reason")? as u16;
                    f.idle_timeout = e.u16("idle_timeout")?;
                    f.hard_timeout = e.u16("hard_timeout")?;
                    f.priority = e.u16("priority")?;
                    e.pad(4, "zeros")?;
                    f.cookie = e.u64("cookie")?;
                    f.match_ = parse_ofp_match(&mut e)?;
                    f.instructions = parse_instructions(&mut e, v)?;
                } else {
                    f.reason = e.u16("reason")?;
                    f.priority = e.u16("priority")?;
                    f.idle_timeout = e.u16("idle_timeout")?;
                    f.hard_timeout = e.u16("hard_timeout")?;
                    let match_len = e.u16("match_len")? as usize;
                    f.table_id = e.u8("table_id")?;
                    e.pad(1, "pad")?;
                    f.cookie = e.u64("cookie")?;
                    if form == FlowMonitorForm::Onf {
                        f.match_ = parse_ofp_match(&mut e)?;
                        f.instructions = parse_instructions(&mut e, v)?;
                    } else {
                        f.match_ = parse_nx_match(&mut e, match_len)?;
                        f.instructions = actions_to_instructions(parse_actions(&mut e, v)?);
                    }
                }
                FlowUpdate::Full(f)
            }
            _ => return fail(BRC, "flow update event"),
        };
        out.push(u);
    }
    Ok(out)
}

pub(crate) fn emit_updates(list: &[FlowUpdate], form: FlowMonitorForm, v: u8, w: &mut Writer) {
    let of = form == FlowMonitorForm::OpenFlow;
    for u in list {
        let start = w.len();
        w.u16(0);
        match u {
            FlowUpdate::Abbrev { xid } => {
                w.u16(if of { ofpfme::ABBREV } else { nxfme::ABBREV });
                w.u32(*xid);
            }
            FlowUpdate::Paused | FlowUpdate::Resumed => {
                let paused = matches!(u, FlowUpdate::Paused);
                w.u16(if paused {
                    ofpfme::PAUSED
                } else {
                    ofpfme::RESUMED
                });
                w.zeros(4);
            }
            FlowUpdate::Full(f) => {
                w.u16(f.event);
                if of {
                    w.u8(f.table_id);
                    w.u8(f.reason as u8);
                    w.u16(f.idle_timeout);
                    w.u16(f.hard_timeout);
                    w.u16(f.priority);
                    w.zeros(4);
                    w.u64(f.cookie);
                    emit_ofp_match(&f.match_, w);
                    emit_instructions(&f.instructions, v, w);
                } else {
                    w.u16(f.reason);
                    w.u16(f.priority);
                    w.u16(f.idle_timeout);
                    w.u16(f.hard_timeout);
                    let onf = form == FlowMonitorForm::Onf;
                    let match_len = if onf {
                        ofp_match_len(&f.match_)
                    } else {
                        f.match_.tlv_len()
                    };
                    w.u16(match_len.min(0xffff) as u16);
                    w.u8(f.table_id);
                    w.u8(0);
                    w.u64(f.cookie);
                    if onf {
                        emit_ofp_match(&f.match_, w);
                        emit_instructions(&f.instructions, v, w);
                    } else {
                        let s = w.len();
                        f.match_.emit_tlvs(w);
                        w.pad8_from(s);
                        emit_actions(&instructions_to_actions(&f.instructions), v, w);
                    }
                }
            }
        }
        w.pad8_from(start);
        w.patch_len(start, start);
    }
}
