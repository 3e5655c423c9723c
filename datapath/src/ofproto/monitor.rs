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
use crate::pipeline::flow::{PKey, PKEY_WORDS};
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
        // loose: the flow is at least as specific as the criteria and agrees with them
        (0..PKEY_WORDS).all(|i| {
            r.mask[i] & self.mask[i] == self.mask[i] && r.value[i] & self.mask[i] == self.value[i]
        })
    }
}

/// The monitors of an NXST_FLOW_MONITOR request, as flow-table keys.
pub fn parse_request(monitors: &[FlowMonitorRequest]) -> Result<Vec<Monitor>, OfpErr> {
    let mut out = Vec::new();
    for m in monitors {
        let (value, mask, _) = match_to_key(&m.match_).map_err(|e| e.err)?;
        out.push(Monitor {
            id: m.id,
            flags: m.flags,
            out_port: m.out_port,
            table_id: m.table_id,
            value,
            mask,
        });
    }
    Ok(out)
}

/// One `nx_flow_update_full` (actions as OpenFlow 1.0 / Nicira actions).
fn update_full(r: &Rule, ev: u16, reason: u16, with_actions: bool) -> FlowUpdate {
    FlowUpdate::Full(FlowUpdateFull {
        event: ev,
        reason,
        priority: r.priority,
        idle_timeout: r.idle_timeout,
        hard_timeout: r.hard_timeout,
        table_id: r.table,
        cookie: r.cookie,
        match_: r.match_.clone(),
        instructions: if with_actions && ev != event::DELETED {
            super::stats::instructions_for(&r.instructions, 1)
        } else {
            Vec::new()
        },
    })
}

fn reply(updates: Vec<FlowUpdate>) -> Message {
    Message::MultipartReply(MultipartReply {
        flags: 0,
        body: MpReply::FlowMonitor {
            form: FlowMonitorForm::Nicira,
            updates,
        },
    })
}

/// The reply to a monitor request: the current flows for monitors with NXFMF_INITIAL.
pub fn initial_reply(c: &Conn, monitors: &[Monitor], rules: &[Arc<Rule>]) -> Message {
    let mut body = Vec::new();
    for r in rules {
        if let Some(m) = monitors
            .iter()
            .find(|m| m.flags & flags::INITIAL != 0 && m.covers(r))
        {
            body.push(update_full(
                r,
                event::ADDED,
                0,
                m.flags & flags::ACTIONS != 0,
            ));
        }
    }
    let _ = c;
    reply(body)
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
            body.push(update_full(r, ev, reason, m.flags & flags::ACTIONS != 0));
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
        c.send(0, &reply(body));
    }
}
