//! Nicira flow monitors (NXST_FLOW_MONITOR): a connection asks to be told about flow table
//! changes matching some criteria; it gets the current flows (NXFMF_INITIAL) and then one
//! update per added, modified or deleted flow, as `ovs-ofctl monitor BRIDGE watch:` prints them.
//! Its own changes are abbreviated to the xid of the flow mod unless it asked for NXFMF_OWN.
//! (Formats: OVS include/openflow/nicira-ext.h, `nx_flow_monitor_request`,
//! `nx_flow_update_full`, `nx_flow_update_abbrev`; encoded by the codec's
//! [`openflow::monitor`].)

use std::sync::Arc;

use openflow::message::Message;
use openflow::monitor::{FlowMonitorForm, FlowMonitorRequest, FlowUpdate, FlowUpdateFull};
use openflow::multipart::{MpReply, MultipartReply};
use openflow::OfpErr;

use super::conn::Conn;
use super::mods::{match_to_key, Changes};
use crate::pipeline::flow::PKey;
use crate::pipeline::flow::PKEY_WORDS;
use crate::pipeline::ofpact;
use crate::pipeline::tables::Rule;

pub mod flags {
    pub const INITIAL: u16 = 1;
    pub const ADD: u16 = 2;
    pub const DELETE: u16 = 4;
    pub const MODIFY: u16 = 8;
    pub const ACTIONS: u16 = 16;
    pub const OWN: u16 = 32;
}

mod event {
    /// Not on the wire in the Nicira form (reported as ADDED there).
    pub const INITIAL: u16 = 0xffff;
    pub const ADDED: u16 = 0;
    pub const DELETED: u16 = 1;
    pub const MODIFIED: u16 = 2;
}

#[derive(Clone, Debug)]
pub struct Monitor {
    pub id: u32,
    pub flags: u16,
    pub out_port: u32,
    pub table_id: u8,
    pub value: PKey,
    pub mask: PKey,
}

impl Monitor {
    fn covers(&self, r: &Rule) -> bool {
        if self.table_id != 0xff && self.table_id != r.table {
            return false;
        }
        if self.out_port != openflow::action::ports::ANY
            && !ofpact::outputs_to(&r.ofpacts, self.out_port)
        {
            return false;
        }
        // loose: the flow is at least as specific as the criteria and agrees with them (the
        // rule keeps its match encoded; monitors are rare enough to decode it here)
        let Ok((v, m, _)) = match_to_key(&r.match_()) else {
            return false;
        };
        (0..PKEY_WORDS)
            .all(|i| m[i] & self.mask[i] == self.mask[i] && v[i] & self.mask[i] == self.value[i])
    }
}

/// Applies the monitors of a flow-monitor request (any of the three forms, on any version, as
/// OVS accepts them) to connection `c`'s list, all or nothing: NXST/ONFST requests add
/// monitors; OpenFlow 1.4+ ones add, modify or delete by id (OFPFMC_*). Flags are kept as
/// NXFMF_* bits whatever the form (OVS `ofp_to_nx_flow_monitor_flags`, lib/ofp-monitor.c).
/// Returns the monitors added, whose initial flows the caller reports.
pub fn apply_request(
    current: &mut Vec<Monitor>,
    form: FlowMonitorForm,
    monitors: &[FlowMonitorRequest],
) -> Result<Vec<Monitor>, OfpErr> {
    use openflow::monitor::{nxfmf, ofpfmf};
    let mut next = current.clone();
    let mut added = Vec::new();
    for m in monitors {
        let flags = if form == FlowMonitorForm::OpenFlow {
            if m.command == 2 {
                // OFPFMC_DELETE: only the id matters
                let before = next.len();
                next.retain(|x| x.id != m.id);
                if next.len() == before {
                    return Err(OfpErr::OFPMOFC_UNKNOWN_MONITOR);
                }
                added.retain(|x: &Monitor| x.id != m.id);
                continue;
            }
            let known = ofpfmf::INITIAL
                | ofpfmf::ADD
                | ofpfmf::REMOVED
                | ofpfmf::MODIFY
                | ofpfmf::INSTRUCTIONS
                | ofpfmf::ONLY_OWN;
            if m.flags & (ofpfmf::ADD | ofpfmf::REMOVED | ofpfmf::MODIFY) == 0
                || m.flags & !known != 0
            {
                return Err(OfpErr::OFPMOFC_BAD_FLAGS);
            }
            let map = [
                (ofpfmf::INITIAL, nxfmf::INITIAL),
                (ofpfmf::ADD, nxfmf::ADD),
                (ofpfmf::REMOVED, nxfmf::DELETE),
                (ofpfmf::MODIFY, nxfmf::MODIFY),
                (ofpfmf::INSTRUCTIONS, nxfmf::ACTIONS),
                (ofpfmf::ONLY_OWN, nxfmf::OWN),
            ];
            map.iter()
                .filter(|(o, _)| m.flags & o != 0)
                .fold(0, |a, (_, n)| a | n)
        } else {
            let known = nxfmf::INITIAL
                | nxfmf::ADD
                | nxfmf::DELETE
                | nxfmf::MODIFY
                | nxfmf::ACTIONS
                | nxfmf::OWN;
            if m.flags & (nxfmf::ADD | nxfmf::DELETE | nxfmf::MODIFY) == 0 || m.flags & !known != 0
            {
                return Err(OfpErr::OFPMOFC_BAD_FLAGS);
            }
            m.flags
        };
        if m.table_id != 0xff && m.table_id >= crate::pipeline::tables::N_TABLES as u8 {
            return Err(OfpErr::OFPBRC_BAD_TABLE_ID);
        }
        let modify = form == FlowMonitorForm::OpenFlow && m.command == 1;
        let exists = next.iter().any(|x| x.id == m.id);
        if modify {
            if !exists {
                return Err(OfpErr::OFPMOFC_UNKNOWN_MONITOR);
            }
            next.retain(|x| x.id != m.id);
            added.retain(|x: &Monitor| x.id != m.id);
        } else if exists {
            return Err(OfpErr::OFPMOFC_MONITOR_EXISTS);
        }
        let (value, mask, _) = match_to_key(&m.match_).map_err(|e| e.err)?;
        let mon = Monitor {
            id: m.id,
            flags,
            out_port: m.out_port,
            table_id: m.table_id,
            value,
            mask,
        };
        next.push(mon.clone());
        added.push(mon);
    }
    *current = next;
    Ok(added)
}

/// The form of flow-monitor replies and updates a connection of `version` gets: OVS picks it
/// by version, not by the request's form (`ofputil_start_flow_update`).
fn reply_form(version: u8) -> FlowMonitorForm {
    match version {
        0..=3 => FlowMonitorForm::Nicira,
        4 => FlowMonitorForm::Onf,
        _ => FlowMonitorForm::OpenFlow,
    }
}

/// One full update, with the event numbered for the reply form (NXFME_* or OFPFME_*) and the
/// actions encoded as OVS encodes them for the reader's version.
fn update_full(r: &Rule, ev: u16, reason: u16, with_actions: bool, version: u8) -> FlowUpdate {
    use openflow::monitor::ofpfme;
    let event = if reply_form(version) == FlowMonitorForm::OpenFlow {
        match ev {
            event::INITIAL => ofpfme::INITIAL,
            event::ADDED => ofpfme::ADDED,
            event::DELETED => ofpfme::REMOVED,
            _ => ofpfme::MODIFIED,
        }
    } else {
        match ev {
            event::INITIAL | event::ADDED => event::ADDED,
            e => e,
        }
    };
    let m = r.match_();
    FlowUpdate::Full(FlowUpdateFull {
        event,
        reason,
        priority: r.priority,
        idle_timeout: r.idle_timeout,
        hard_timeout: r.hard_timeout,
        table_id: r.table,
        cookie: r.cookie,
        match_: m.clone(),
        instructions: if with_actions {
            openflow::compat::instructions_for(
                &r.instructions(),
                openflow::compat::Added::flow(r.of_version, &m),
                version,
            )
        } else {
            Vec::new()
        },
    })
}

fn reply(version: u8, updates: Vec<FlowUpdate>) -> Message {
    Message::MultipartReply(MultipartReply {
        flags: 0,
        body: MpReply::FlowMonitor {
            form: reply_form(version),
            updates,
        },
    })
}

/// The reply to a monitor request: the current flows for the new monitors with NXFMF_INITIAL.
pub fn initial_reply(c: &Conn, monitors: &[Monitor], rules: &[Arc<Rule>]) -> Message {
    let mut body = Vec::new();
    for r in rules {
        if let Some(m) = monitors
            .iter()
            .find(|m| m.flags & flags::INITIAL != 0 && m.covers(r))
        {
            body.push(update_full(
                r,
                event::INITIAL,
                0,
                m.flags & flags::ACTIONS != 0,
                c.version,
            ));
        }
    }
    reply(c.version, body)
}

/// Sends `c` the updates for `changes` (made by connection `origin` with flow mod `xid`).
pub fn notify(c: &mut Conn, bridge: usize, changes: &Changes, origin: u64, xid: u32) {
    if c.monitors.is_empty() || c.bridge != bridge {
        return;
    }
    let own = c.id == origin;
    let mut body = Vec::new();
    let mut abbreviated = false;
    let mut emit =
        |c: &Conn, r: &Rule, ev: u16, want: u16, reason: u16, body: &mut Vec<FlowUpdate>| {
            let Some(m) = c
                .monitors
                .iter()
                .find(|m| m.flags & want != 0 && m.covers(r))
            else {
                return;
            };
            if own && m.flags & flags::OWN == 0 {
                if !abbreviated {
                    body.push(FlowUpdate::Abbrev { xid });
                    abbreviated = true;
                }
                return;
            }
            body.push(update_full(
                r,
                ev,
                reason,
                m.flags & flags::ACTIONS != 0,
                c.version,
            ));
        };
    for r in &changes.added {
        emit(c, r, event::ADDED, flags::ADD, 0, &mut body);
    }
    for r in &changes.modified {
        emit(c, r, event::MODIFIED, flags::MODIFY, 0, &mut body);
    }
    for r in &changes.removed {
        emit(
            c,
            &r.rule,
            event::DELETED,
            flags::DELETE,
            r.reason as u16,
            &mut body,
        );
    }
    if !body.is_empty() {
        c.send(0, &reply(c.version, body));
    }
}
