//! Flow monitoring (`monitor SWITCH watch:...`): the request in the three forms Open vSwitch
//! speaks (NXST_FLOW_MONITOR for OpenFlow 1.0, ONFST_FLOW_MONITOR for 1.3, OFPMP_FLOW_MONITOR
//! for 1.4+), and the flow updates decoded and printed (`event=ADDED table=6 cookie=0 ...`).
//! The codec keeps these bodies verbatim, so they are laid out and parsed here.
//!
//! [`crate::print`] calls [`format_requests`] and [`format_updates`] for these bodies.

use openflow::{Message, NX_VENDOR_ID, ONF_VENDOR_ID};

use crate::actions::{decode_instructions, format_actions, Act, KeyValues};
use crate::conn::Received;
use crate::field::Mf;
use crate::flow::protocol_shorthand;
use crate::flowmatch::FlowMatch;
use crate::print::{message_to_string, Names};
use crate::value::{mf_parse, parse_u64_full, port_to_ofp11, ports, FieldValue};

/// Builds the flow-monitor request for `watch:` text; the closure encodes it with an xid.
pub type RequestFn = Box<dyn Fn(u32) -> Vec<u8>>;

/// Parses `watch:[!initial][,!add][,!delete][,!modify][,!actions][,!own][,!abbrev]
/// [,table=N][,out_port=P][,out_group=G][,FIELD=VALUE...]` and encodes it for `version`.
pub fn flow_monitor_request(text: &str, version: u8) -> Result<RequestFn, String> {
    // OFPFMF_*: INITIAL, ADD, REMOVED, MODIFY, INSTRUCTIONS, NO_ABBREV, ONLY_OWN.
    let mut flags: u16 = 1 | 2 | 4 | 8 | 16 | 64;
    let mut out_port = ports::NONE;
    let mut out_group = u32::MAX;
    let mut table_id = 0xffu8;
    let mut m = FlowMatch::new();
    for (name, value) in KeyValues::new(text) {
        match name {
            "!initial" => flags &= !1,
            "!add" => flags &= !2,
            "!delete" => flags &= !4,
            "!modify" => flags &= !8,
            "!actions" => flags &= !16,
            "!abbrev" => flags &= !32,
            "!own" => flags &= !64,
            _ => {
                if let Some((dl, nw)) = protocol_shorthand(name) {
                    m.set_field(Mf::EthType, &FieldValue::exact(dl.to_be_bytes().to_vec()))?;
                    if nw != 0 {
                        m.set_field(Mf::IpProto, &FieldValue::exact(vec![nw]))?;
                    }
                } else if let Some(mf) = Mf::from_name(name) {
                    let v = if value.is_empty() { "0/0" } else { value };
                    let fv = mf_parse(mf, v, None)?;
                    m.set_field(mf, &fv)?;
                } else if value.is_empty() {
                    return Err(format!("{text}: field {name} missing value"));
                } else {
                    match name {
                        "table" => {
                            table_id = parse_u64_full(value)
                                .and_then(|v| u8::try_from(v).ok())
                                .ok_or_else(|| format!("unknown table \"{value}\""))?
                        }
                        "out_port" => out_port = value.parse().unwrap_or(0),
                        "out_group" => out_group = value.parse().unwrap_or(0),
                        _ => return Err(format!("{text}: unknown keyword {name}")),
                    }
                }
            }
        }
    }
    let id = 1u32;
    // NX flags: INITIAL 1, ADD 2, DELETE 4, MODIFY 8, ACTIONS 16, OWN 32.
    let nx_flags = (flags & 0x1f) | if flags & 64 != 0 { 32 } else { 0 };
    let body: Vec<u8> = match version {
        1..=3 => {
            let nxm = m.to_codec(0, 0, 0)?;
            let tlvs = match_tlv_bytes(&nxm);
            let mut b = Vec::new();
            b.extend(id.to_be_bytes());
            b.extend(nx_flags.to_be_bytes());
            b.extend(out_port.to_be_bytes());
            b.extend((tlvs.len() as u16).to_be_bytes());
            b.push(table_id);
            b.extend([0u8; 5]);
            b.extend(&tlvs);
            pad8(&mut b);
            b
        }
        4 => {
            let oxm = m.to_codec(4, 0, 0)?;
            let (mb, mlen) = ofp_match_bytes(&oxm);
            let mut b = Vec::new();
            b.extend(id.to_be_bytes());
            b.extend(nx_flags.to_be_bytes());
            b.extend((mlen as u16).to_be_bytes());
            b.extend(port_to_ofp11(out_port).to_be_bytes());
            b.push(table_id);
            b.extend([0u8; 3]);
            b.extend(mb);
            b
        }
        _ => {
            let oxm = m.to_codec(version, 0, 0)?;
            let (mb, _) = ofp_match_bytes(&oxm);
            let mut b = Vec::new();
            b.extend(id.to_be_bytes());
            b.extend(port_to_ofp11(out_port).to_be_bytes());
            b.extend(out_group.to_be_bytes());
            b.extend(flags.to_be_bytes());
            b.push(table_id);
            b.push(0); // OFPFMC_ADD
            b.extend(mb);
            b
        }
    };
    Ok(Box::new(move |xid| {
        let mut msg = vec![version, if version == 1 { 16 } else { 18 }, 0, 0];
        msg.extend(xid.to_be_bytes());
        match version {
            1..=3 => {
                msg.extend(0xffffu16.to_be_bytes());
                msg.extend(0u16.to_be_bytes());
                if version > 1 {
                    msg.extend([0u8; 4]);
                }
                msg.extend(NX_VENDOR_ID.to_be_bytes());
                msg.extend(2u32.to_be_bytes());
                if version == 1 {
                    msg.extend([0u8; 4]);
                }
            }
            4 => {
                msg.extend(0xffffu16.to_be_bytes());
                msg.extend(0u16.to_be_bytes());
                msg.extend([0u8; 4]);
                msg.extend(ONF_VENDOR_ID.to_be_bytes());
                msg.extend(1870u32.to_be_bytes());
            }
            _ => {
                msg.extend(16u16.to_be_bytes());
                msg.extend(0u16.to_be_bytes());
                msg.extend([0u8; 4]);
            }
        }
        msg.extend(&body);
        let n = msg.len() as u16;
        msg[2..4].copy_from_slice(&n.to_be_bytes());
        msg
    }))
}

fn pad8(b: &mut Vec<u8>) {
    while !b.len().is_multiple_of(8) {
        b.push(0);
    }
}

/// The TLV bytes of a match (via the codec's encoder on a throwaway message).
fn match_tlv_bytes(m: &openflow::Match) -> Vec<u8> {
    let (b, len) = ofp_match_bytes(m);
    b[4..len].to_vec()
}

/// An OpenFlow 1.1+ `ofp_match` (type 1, length, TLVs, padding) and its unpadded length.
fn ofp_match_bytes(m: &openflow::Match) -> (Vec<u8>, usize) {
    // Encode a packet-out in OF1.5 (whose only variable part is the match) and cut it out.
    let po = Message::PacketOut(openflow::message::PacketOut {
        buffer_id: u32::MAX,
        in_port: 0,
        match_: Some(m.clone()),
        actions: vec![],
        data: vec![],
    });
    let bytes = openflow::encode(6, 0, &po);
    let mlen = u16::from_be_bytes([bytes[18], bytes[19]]) as usize;
    let padded = mlen.div_ceil(8) * 8;
    (bytes[16..16 + padded].to_vec(), mlen)
}

/// Decodes a match and instructions/actions laid out as in a flow mod of `version` (NXM
/// when `nxm`), by wrapping them in one and using the codec.
fn decode_match_actions(
    version: u8,
    nxm: bool,
    match_bytes: &[u8],
    match_len: usize,
    rest: &[u8],
) -> Result<(FlowMatch, Vec<Act>), String> {
    let mut msg: Vec<u8> = vec![version, if nxm { 4 } else { 14 }, 0, 0, 0, 0, 0, 0];
    if nxm {
        msg.extend(NX_VENDOR_ID.to_be_bytes());
        msg.extend(13u32.to_be_bytes());
        msg.extend([0u8; 8]); // cookie
        msg.extend([0u8; 2]); // command ADD
        msg.extend([0u8; 6]); // idle, hard, priority
        msg.extend(u32::MAX.to_be_bytes());
        msg.extend(0xffffu16.to_be_bytes());
        msg.extend([0u8; 2]);
        msg.extend((match_len as u16).to_be_bytes());
        msg.extend([0u8; 6]);
    } else {
        msg.extend([0u8; 16]); // cookie, cookie_mask
        msg.extend([0u8; 2]); // table, command
        msg.extend([0u8; 6]);
        msg.extend(u32::MAX.to_be_bytes());
        msg.extend(u32::MAX.to_be_bytes());
        msg.extend(u32::MAX.to_be_bytes());
        msg.extend([0u8; 4]);
    }
    msg.extend(match_bytes);
    msg.extend(rest);
    let n = msg.len() as u16;
    msg[2..4].copy_from_slice(&n.to_be_bytes());
    let (_, m) = openflow::decode(&msg).map_err(|e| format!("flow update: {e}"))?;
    let Message::FlowMod(fm) = m else {
        return Err("flow update: not a flow".into());
    };
    let (fmatch, _) = match &fm.match_ {
        openflow::MatchRepr::Nxm(x) | openflow::MatchRepr::Oxm(x) => FlowMatch::from_codec(x)?,
        openflow::MatchRepr::Of10(o) => crate::flow::of10_to_flowmatch(o)?,
    };
    let acts = decode_instructions(&fm.instructions, version)?;
    Ok((fmatch, acts))
}

fn be16(b: &[u8], i: usize) -> u16 {
    b.get(i..i + 2)
        .map(|x| u16::from_be_bytes([x[0], x[1]]))
        .unwrap_or(0)
}
fn be32(b: &[u8], i: usize) -> u32 {
    b.get(i..i + 4)
        .map(|x| u32::from_be_bytes([x[0], x[1], x[2], x[3]]))
        .unwrap_or(0)
}
fn be64(b: &[u8], i: usize) -> u64 {
    b.get(i..i + 8)
        .map(|x| u64::from_be_bytes(x.try_into().unwrap_or([0; 8])))
        .unwrap_or(0)
}

fn reason_text(r: u16) -> String {
    match r {
        0 => "idle".into(),
        1 => "hard".into(),
        2 => "delete".into(),
        3 => "group_delete".into(),
        4 => "meter_delete".into(),
        5 => "eviction".into(),
        n => n.to_string(),
    }
}

/// Formats flow updates (`ofputil_flow_update_format` for each).  `nx` selects the
/// NXST/ONFST layout; `oxm_match` the 1.3 ONF form whose match is an `ofp_match`.
pub fn format_updates(
    body: &[u8],
    version: u8,
    nx: bool,
    oxm_match: bool,
    map: Names,
) -> Result<String, String> {
    let mut s = String::new();
    let mut p = body;
    while !p.is_empty() {
        let len = be16(p, 0) as usize;
        let event = be16(p, 2);
        if len < 8 || len > p.len() || !len.is_multiple_of(8) {
            return Err("flow update: bad length".into());
        }
        let e = &p[..len];
        // Normalise to OFPFME_*.
        let ev = if nx { event + 1 } else { event };
        s.push_str("\n event=");
        let (reason, prio, idle, hard, table, cookie, match_and_rest) = match ev {
            4 => {
                s.push_str(&format!("ABBREV xid=0x{:x}", be32(e, 4)));
                p = &p[len..];
                continue;
            }
            5 | 6 => {
                s.push_str(if ev == 5 { "PAUSED" } else { "RESUMED" });
                p = &p[len..];
                continue;
            }
            0..=3 if nx => (
                be16(e, 4),
                be16(e, 6),
                be16(e, 8),
                be16(e, 10),
                e.get(14).copied().unwrap_or(0),
                be64(e, 16),
                (be16(e, 12) as usize, e.get(24..).unwrap_or(&[])),
            ),
            0..=3 => (
                e.get(5).copied().unwrap_or(0) as u16,
                be16(e, 10),
                be16(e, 6),
                be16(e, 8),
                e.get(4).copied().unwrap_or(0),
                be64(e, 16),
                (0, e.get(24..).unwrap_or(&[])),
            ),
            _ => return Err(format!("flow update: bad event {event}")),
        };
        match ev {
            0 => s.push_str("INITIAL"),
            1 => s.push_str("ADDED"),
            2 => s.push_str(&format!("DELETED reason={}", reason_text(reason))),
            _ => s.push_str("MODIFIED"),
        }
        s.push_str(&format!(" table={table}"));
        if idle != 0 {
            s.push_str(&format!(" idle_timeout={idle}"));
        }
        if hard != 0 {
            s.push_str(&format!(" hard_timeout={hard}"));
        }
        s.push_str(&format!(" cookie={}", crate::value::c_hex(cookie as u128)));
        let (nx_match_len, rest) = match_and_rest;
        let (m, acts) = if nx && !oxm_match {
            let padded = nx_match_len.div_ceil(8) * 8;
            let mb = rest.get(..padded).ok_or("flow update: bad match length")?;
            decode_match_actions(1, true, mb, nx_match_len, &rest[padded..])?
        } else {
            let mlen = be16(rest, 2) as usize;
            let padded = mlen.div_ceil(8) * 8;
            let mb = rest.get(..padded).ok_or("flow update: bad match length")?;
            decode_match_actions(version.max(4), false, mb, mlen, &rest[padded..])?
        };
        s.push(' ');
        // ovs-ofctl formats the match with the default priority, i.e. it never shows
        // the flow's priority in an update; keep the output identical.
        let _ = prio;
        s.push_str(&m.format(map, Some(32768)));
        if !acts.is_empty() {
            if !s.ends_with(' ') {
                s.push(' ');
            }
            s.push_str("actions=");
            s.push_str(&format_actions(&acts, map));
        }
        p = &p[len..];
    }
    Ok(s)
}

/// Prints a received message the way ovs-ofctl's `ofp_print` does (kept for callers that
/// hold a [`Received`]; everything, flow updates included, is in [`crate::print`]).
pub fn to_string(r: &Received, map: Names, verbosity: u8) -> String {
    match r.message {
        // Undecodable (or unmodelled) messages print from their bytes.
        Message::Unknown { .. } => crate::print::ofp_to_string(&r.bytes, map, verbosity),
        _ => message_to_string(&r.header, &r.message, map, verbosity),
    }
}

/// Which of the three flow-monitor layouts a body uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// NXST_FLOW_MONITOR (Nicira, OpenFlow 1.0): NXM matches.
    Nx,
    /// ONFST_FLOW_MONITOR (ONF extension for OpenFlow 1.3): `ofp_match`.
    Onf,
    /// OFPMP_FLOW_MONITOR (OpenFlow 1.4+).
    Of14,
}

/// Formats flow-monitor requests (`ofputil_flow_monitor_request_format` for each).
pub fn format_requests(body: &[u8], layout: Layout, map: Names) -> Result<String, String> {
    let bad = || "flow monitor request: bad length".to_string();
    let mut s = String::new();
    let mut p = body;
    while !p.is_empty() {
        // (id, OFPFMF flags, out_port, out_group, table, command, match, match bytes used)
        let (id, flags, out_port, out_group, table, command, m, used) = match layout {
            Layout::Nx => {
                let h = p.get(..16).ok_or_else(bad)?;
                let mlen = be16(h, 8) as usize;
                let padded = mlen.div_ceil(8) * 8;
                let mb = p.get(16..16 + padded).ok_or_else(bad)?;
                let (m, _) = decode_match_actions(1, true, mb, mlen, &[])?;
                let nf = be16(h, 4);
                let flags = (nf & 0x1f) | if nf & 32 != 0 { 64 } else { 0 };
                (
                    be32(h, 0),
                    flags,
                    be16(h, 6),
                    u32::MAX,
                    h[10],
                    0u8,
                    m,
                    16 + padded,
                )
            }
            Layout::Onf | Layout::Of14 => {
                let h = p.get(..16).ok_or_else(bad)?;
                let mlen = be16(p, 18) as usize;
                let padded = mlen.div_ceil(8) * 8;
                let mb = p.get(16..16 + padded).ok_or_else(bad)?;
                let (m, _) = decode_match_actions(4, false, mb, mlen, &[])?;
                let port = |w: u32| crate::value::port_from_ofp11(w).unwrap_or(ports::NONE);
                if layout == Layout::Onf {
                    let nf = be16(h, 4);
                    let flags = (nf & 0x1f) | if nf & 32 != 0 { 64 } else { 0 };
                    (
                        be32(h, 0),
                        flags,
                        port(be32(h, 8)),
                        u32::MAX,
                        h[12],
                        0,
                        m,
                        16 + padded,
                    )
                } else {
                    let (flags, table, cmd) = (be16(h, 12), h[14], h[15]);
                    (
                        be32(h, 0),
                        flags,
                        port(be32(h, 4)),
                        be32(h, 8),
                        table,
                        cmd,
                        m,
                        16 + padded,
                    )
                }
            }
        };
        p = &p[used.min(p.len())..];
        if command == 2 {
            s.push_str(&format!("\n id={id} command=delete"));
            continue;
        }
        s.push_str(&format!("\n id={id} flags="));
        let names = [
            (1, "initial"),
            (2, "add"),
            (4, "delete"),
            (8, "modify"),
            (16, "actions"),
            (32, "no-abbrev"),
            (64, "own"),
        ];
        let set: Vec<&str> = names
            .iter()
            .filter(|(b, _)| flags & b != 0)
            .map(|(_, n)| *n)
            .collect();
        s.push_str(&set.join(","));
        if out_port != ports::NONE {
            s.push_str(&format!(
                " out_port={}",
                crate::value::format_port(out_port, map)
            ));
        }
        if out_group != 0 && out_group != u32::MAX {
            s.push_str(&format!(" out_group={}", out_group as i32));
        }
        if table != 0xff {
            s.push_str(&format!(" table={table}"));
        }
        s.push(' ');
        s.push_str(&m.format(map, Some(32768)));
        while s.ends_with(' ') {
            s.pop();
        }
    }
    Ok(s)
}
