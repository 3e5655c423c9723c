//! Flow monitoring (`monitor SWITCH watch:...`): the request in the three forms Open vSwitch
//! speaks (NXST_FLOW_MONITOR for OpenFlow 1.0, ONFST_FLOW_MONITOR for 1.3, OFPMP_FLOW_MONITOR
//! for 1.4+), and the flow updates decoded and printed (`event=ADDED table=6 cookie=0 ...`).
//! The codec's [`openflow::monitor`] encodes and decodes them.
//!
//! [`crate::print`] calls [`format_requests`] and [`format_updates`] for these bodies.

use openflow::monitor::{FlowMonitorForm, FlowMonitorRequest, FlowUpdate};
use openflow::multipart::{MpRequest, MultipartRequest};
use openflow::Message;

use crate::actions::{decode_instructions, format_actions, KeyValues};
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
    // NX flags: INITIAL 1, ADD 2, DELETE 4, MODIFY 8, ACTIONS 16, OWN 32.
    let nx_flags = (flags & 0x1f) | if flags & 64 != 0 { 32 } else { 0 };
    let (form, match_, flags) = match version {
        1..=3 => (FlowMonitorForm::Nicira, m.to_codec(0, 0, 0)?, nx_flags),
        4 => (FlowMonitorForm::Onf, m.to_codec(4, 0, 0)?, nx_flags),
        _ => (FlowMonitorForm::OpenFlow, m.to_codec(version, 0, 0)?, flags),
    };
    let req = FlowMonitorRequest {
        id: 1,
        flags,
        out_port: port_to_ofp11(out_port),
        out_group: if form == FlowMonitorForm::OpenFlow {
            out_group
        } else {
            u32::MAX
        },
        table_id,
        command: 0, // OFPFMC_ADD
        match_,
    };
    let msg = Message::MultipartRequest(MultipartRequest {
        flags: 0,
        body: MpRequest::FlowMonitor {
            form,
            monitors: vec![req],
        },
    });
    Ok(Box::new(move |xid| openflow::encode(version, xid, &msg)))
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

/// Formats flow updates (`ofputil_flow_update_format` for each) of a reply in `form`.
pub fn format_updates(
    updates: &[FlowUpdate],
    form: FlowMonitorForm,
    version: u8,
    map: Names,
) -> Result<String, String> {
    let mut s = String::new();
    for u in updates {
        s.push_str("\n event=");
        let f = match u {
            FlowUpdate::Abbrev { xid } => {
                s.push_str(&format!("ABBREV xid=0x{xid:x}"));
                continue;
            }
            FlowUpdate::Paused => {
                s.push_str("PAUSED");
                continue;
            }
            FlowUpdate::Resumed => {
                s.push_str("RESUMED");
                continue;
            }
            FlowUpdate::Full(f) => f,
        };
        // Normalise to OFPFME_* (the Nicira and ONF forms have no INITIAL).
        let ev = if form == FlowMonitorForm::OpenFlow {
            f.event
        } else {
            f.event + 1
        };
        match ev {
            0 => s.push_str("INITIAL"),
            1 => s.push_str("ADDED"),
            2 => s.push_str(&format!("DELETED reason={}", reason_text(f.reason))),
            _ => s.push_str("MODIFIED"),
        }
        s.push_str(&format!(" table={}", f.table_id));
        if f.idle_timeout != 0 {
            s.push_str(&format!(" idle_timeout={}", f.idle_timeout));
        }
        if f.hard_timeout != 0 {
            s.push_str(&format!(" hard_timeout={}", f.hard_timeout));
        }
        s.push_str(&format!(
            " cookie={}",
            crate::value::c_hex(f.cookie as u128)
        ));
        let (m, _) = FlowMatch::from_codec(&f.match_)?;
        // the Nicira form carries OpenFlow 1.0 (Nicira) actions, the others instructions
        let av = if form == FlowMonitorForm::Nicira {
            version
        } else {
            version.max(4)
        };
        let acts = decode_instructions(&f.instructions, av)?;
        s.push(' ');
        // ovs-ofctl formats the match with the default priority, i.e. it never shows
        // the flow's priority in an update; keep the output identical.
        s.push_str(&m.format(map, Some(32768)));
        if !acts.is_empty() {
            if !s.ends_with(' ') {
                s.push(' ');
            }
            s.push_str("actions=");
            s.push_str(&format_actions(&acts, map));
        }
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

/// Formats flow-monitor requests (`ofputil_flow_monitor_request_format` for each).
pub fn format_requests(
    monitors: &[FlowMonitorRequest],
    form: FlowMonitorForm,
    map: Names,
) -> Result<String, String> {
    let mut s = String::new();
    for r in monitors {
        // OFPFMF_* flags (the Nicira and ONF forms: OWN is 32 there)
        let flags = if form == FlowMonitorForm::OpenFlow {
            r.flags
        } else {
            (r.flags & 0x1f) | if r.flags & 32 != 0 { 64 } else { 0 }
        };
        let (m, _) = FlowMatch::from_codec(&r.match_)?;
        let out_port = crate::value::port_from_ofp11(r.out_port).unwrap_or(ports::NONE);
        if r.command == 2 {
            s.push_str(&format!("\n id={} command=delete", r.id));
            continue;
        }
        s.push_str(&format!("\n id={} flags=", r.id));
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
        if r.out_group != 0 && r.out_group != u32::MAX {
            s.push_str(&format!(" out_group={}", r.out_group as i32));
        }
        if r.table_id != 0xff {
            s.push_str(&format!(" table={}", r.table_id));
        }
        s.push(' ');
        s.push_str(&m.format(map, Some(32768)));
        while s.ends_with(' ') {
            s.pop();
        }
    }
    Ok(s)
}
