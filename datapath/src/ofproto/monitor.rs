//! Nicira flow monitors (NXST_FLOW_MONITOR): a connection asks to be told about flow table
//! changes matching some criteria; it gets the current flows (NXFMF_INITIAL) and then one
//! update per added, modified or deleted flow, as `ovs-ofctl monitor BRIDGE watch:` prints them.
//! Its own changes are abbreviated to the xid of the flow mod unless it asked for NXFMF_OWN.
//! (Formats: OVS include/openflow/nicira-ext.h, `nx_flow_monitor_request`,
//! `nx_flow_update_full`, `nx_flow_update_abbrev`.)

use std::sync::Arc;

use openflow::message::Message;
use openflow::multipart::{MpReply, MultipartReply};
use openflow::{Match, OfpErr, NX_VENDOR_ID};

use super::conn::Conn;
use super::mods::{match_to_key, Changes};
use crate::pipeline::flow::{PKey, PKEY_WORDS};
use crate::pipeline::ofpact;
use crate::pipeline::tables::Rule;

pub const NXST_FLOW_MONITOR: u32 = 2;

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
    pub const ABBREV: u16 = 3;
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

/// Parses an NXST_FLOW_MONITOR request body (one or more monitors).
pub fn parse_request(body: &[u8]) -> Result<Vec<Monitor>, OfpErr> {
    let mut out = Vec::new();
    let mut b = body;
    while !b.is_empty() {
        if b.len() < 16 {
            return Err(OfpErr::OFPBRC_BAD_LEN);
        }
        let id = u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
        let fl = u16::from_be_bytes([b[4], b[5]]);
        let out_port = openflow::action::port_from_of10(u16::from_be_bytes([b[6], b[7]]));
        let match_len = u16::from_be_bytes([b[8], b[9]]) as usize;
        let table_id = b[10];
        let padded = match_len.div_ceil(8) * 8;
        if b.len() < 16 + padded {
            return Err(OfpErr::OFPBRC_BAD_LEN);
        }
        let m = Match::from_tlv_bytes(&b[16..16 + match_len]).map_err(|e| e.kind)?;
        let (value, mask, _) = match_to_key(&m).map_err(|e| e.err)?;
        out.push(Monitor {
            id,
            flags: fl,
            out_port,
            table_id,
            value,
            mask,
        });
        b = &b[16 + padded..];
    }
    Ok(out)
}

fn pad8(v: &mut Vec<u8>, start: usize) {
    while !(v.len() - start).is_multiple_of(8) {
        v.push(0);
    }
}

/// One `nx_flow_update_full`.
fn update_full(r: &Rule, ev: u16, reason: u16, with_actions: bool) -> Vec<u8> {
    let mut v = Vec::new();
    let m = r.match_.tlv_bytes();
    v.extend_from_slice(&0u16.to_be_bytes()); // length, patched below
    v.extend_from_slice(&ev.to_be_bytes());
    v.extend_from_slice(&reason.to_be_bytes());
    v.extend_from_slice(&r.priority.to_be_bytes());
    v.extend_from_slice(&r.idle_timeout.to_be_bytes());
    v.extend_from_slice(&r.hard_timeout.to_be_bytes());
    v.extend_from_slice(&(m.len() as u16).to_be_bytes());
    v.push(r.table);
    v.push(0);
    v.extend_from_slice(&r.cookie.to_be_bytes());
    v.extend_from_slice(&m);
    pad8(&mut v, 0);
    if with_actions && ev != event::DELETED {
        let insts = super::stats::instructions_for(&r.instructions, 1);
        let acts: Vec<openflow::Action> = insts
            .into_iter()
            .flat_map(|i| match i {
                openflow::Instruction::ApplyActions(a) => a,
                _ => Vec::new(),
            })
            .collect();
        v.extend_from_slice(&openflow::action::encode_actions(&acts, 1));
        pad8(&mut v, 0);
    }
    let len = v.len() as u16;
    v[0..2].copy_from_slice(&len.to_be_bytes());
    v
}

fn abbrev(xid: u32) -> Vec<u8> {
    let mut v = Vec::with_capacity(8);
    v.extend_from_slice(&8u16.to_be_bytes());
    v.extend_from_slice(&event::ABBREV.to_be_bytes());
    v.extend_from_slice(&xid.to_be_bytes());
    v
}

fn reply(body: Vec<u8>) -> Message {
    Message::MultipartReply(MultipartReply {
        flags: 0,
        body: MpReply::Experimenter {
            experimenter: NX_VENDOR_ID,
            exp_type: NXST_FLOW_MONITOR,
            body,
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
            body.extend(update_full(
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
    let mut emit = |c: &Conn, r: &Rule, ev: u16, want: u16, reason: u16, body: &mut Vec<u8>| {
        let Some(m) = c
            .monitors
            .iter()
            .find(|m| m.flags & want != 0 && m.covers(r))
        else {
            return;
        };
        if own && m.flags & flags::OWN == 0 {
            if !abbreviated {
                body.extend(abbrev(xid));
                abbreviated = true;
            }
            return;
        }
        body.extend(update_full(r, ev, reason, m.flags & flags::ACTIONS != 0));
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
