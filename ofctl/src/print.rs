//! `ofp-print`: OpenFlow messages as ovs-ofctl prints them (`OFPT_FEATURES_REPLY (xid=0x2):
//! dpid:...`, `NXST_FLOW reply (xid=0x4):` + one line per flow, errors with the offending
//! request decoded, packet-ins with the packet summarised as a flow, ...).
//!
//! The entry point is [`ofp_to_string`]; the per-body printers are public so the CLI can
//! print sorted or filtered views the way ovs-ofctl does.

use openflow::error::ErrorCode;
use openflow::message::{
    Experimenter, FlowMod, FlowRemoved, GroupMod, PacketIn, PacketIn2, PacketIn2Prop, PacketOut,
    Role, SwitchConfig, SwitchFeatures,
};
use openflow::monitor::FlowMonitorForm;
use openflow::multipart::{MpReply, MpRequest};
use openflow::stats::{GroupStats, PortStats, PortStatsEthernet, QueueStats, TableStats};
use openflow::types::{Bucket, Port};
use openflow::{Header, MatchRepr, Message};

use crate::actions::{decode_actions, format_actions, packet_in_reason_to_string, Act};
use crate::errnames::{Num, ERRORS};
use crate::flow::{decode_flow_stats, format_duration, format_flow_entry, of10_to_flowmatch};
use crate::flowmatch::FlowMatch;
use crate::packet::packet_to_string;
use crate::value::{format_mac, format_port, port_from_ofp11, ports, PortMap};

/// The message's name as Open vSwitch's `ofpraw` table spells it.
/// Nicira's experimenter ID.
const NX_VENDOR: u32 = 0x0000_2320;

pub fn msg_name(h: &Header, m: &Message) -> String {
    let v = h.version;
    let st = |base: &str, req: bool| format!("{base} {}", if req { "request" } else { "reply" });
    match m {
        Message::Hello(_) => "OFPT_HELLO".into(),
        Message::Error(_) => "OFPT_ERROR".into(),
        Message::EchoRequest(_) => "OFPT_ECHO_REQUEST".into(),
        Message::EchoReply(_) => "OFPT_ECHO_REPLY".into(),
        Message::FeaturesRequest => "OFPT_FEATURES_REQUEST".into(),
        Message::FeaturesReply(_) => "OFPT_FEATURES_REPLY".into(),
        Message::GetConfigRequest => "OFPT_GET_CONFIG_REQUEST".into(),
        Message::GetConfigReply(_) => "OFPT_GET_CONFIG_REPLY".into(),
        Message::SetConfig(_) => "OFPT_SET_CONFIG".into(),
        Message::PacketIn(p) => match p.match_ {
            Some(MatchRepr::Nxm(_)) => "NXT_PACKET_IN".into(),
            _ => "OFPT_PACKET_IN".into(),
        },
        Message::PacketIn2(_) => "NXT_PACKET_IN2".into(),
        Message::Resume(_) => "NXT_RESUME".into(),
        Message::FlowRemoved(f) => match f.match_ {
            MatchRepr::Nxm(_) => "NXT_FLOW_REMOVED".into(),
            _ => "OFPT_FLOW_REMOVED".into(),
        },
        Message::PortStatus { .. } => "OFPT_PORT_STATUS".into(),
        Message::PacketOut(_) => "OFPT_PACKET_OUT".into(),
        Message::FlowMod(f) => match f.match_ {
            MatchRepr::Nxm(_) => "NXT_FLOW_MOD".into(),
            _ => "OFPT_FLOW_MOD".into(),
        },
        Message::GroupMod(_) if v == 1 => "NXT_GROUP_MOD".into(),
        Message::GroupMod(_) => "OFPT_GROUP_MOD".into(),
        Message::PortMod(_) => "OFPT_PORT_MOD".into(),
        Message::TableMod { .. } => "OFPT_TABLE_MOD".into(),
        Message::MultipartRequest(r) => {
            let base = match &r.body {
                MpRequest::Desc => "OFPST_DESC".to_string(),
                MpRequest::Flow(f) => match f.match_ {
                    MatchRepr::Nxm(_) => "NXST_FLOW".into(),
                    _ => "OFPST_FLOW".into(),
                },
                MpRequest::Aggregate(f) => match f.match_ {
                    MatchRepr::Nxm(_) => "NXST_AGGREGATE".into(),
                    _ => "OFPST_AGGREGATE".into(),
                },
                MpRequest::Table => "OFPST_TABLE".into(),
                MpRequest::PortStats { .. } => "OFPST_PORT".into(),
                MpRequest::PortDesc { .. } => "OFPST_PORT_DESC".into(),
                MpRequest::GroupDesc { .. } if v == 1 => "NXST_GROUP_DESC".into(),
                MpRequest::GroupDesc { .. } => "OFPST_GROUP_DESC".into(),
                MpRequest::GroupFeatures if v == 1 => "NXST_GROUP_FEATURES".into(),
                MpRequest::GroupFeatures => "OFPST_GROUP_FEATURES".into(),
                MpRequest::MeterFeatures => "OFPST_METER_FEATURES".into(),
                MpRequest::TableDesc => "OFPST_TABLE_DESC".into(),
                MpRequest::QueueStats { .. } => "OFPST_QUEUE".into(),
                MpRequest::GroupStats { .. } if v == 1 => nxst_name(7),
                MpRequest::GroupStats { .. } => "OFPST_GROUP".into(),
                MpRequest::MeterStats { .. } => "OFPST_METER".into(),
                MpRequest::MeterConfig { .. } => "OFPST_METER_CONFIG".into(),
                MpRequest::TableFeatures(_) => "OFPST_TABLE_FEATURES".into(),
                MpRequest::FlowMonitor { form, .. } => monitor_name(*form),
                MpRequest::Raw { mp_type, .. } => mp_name(*mp_type).into(),
                MpRequest::Experimenter { exp_type, .. } => nxst_name(*exp_type),
            };
            st(&base, true)
        }
        Message::MultipartReply(r) => {
            let base = match &r.body {
                MpReply::Desc(_) => "OFPST_DESC".to_string(),
                MpReply::Flow { nx, .. } => {
                    if *nx {
                        "NXST_FLOW".into()
                    } else {
                        "OFPST_FLOW".into()
                    }
                }
                MpReply::Aggregate { nx, .. } => {
                    if *nx {
                        "NXST_AGGREGATE".into()
                    } else {
                        "OFPST_AGGREGATE".into()
                    }
                }
                MpReply::AggregateOxs(_) => "OFPST_AGGREGATE".into(),
                MpReply::PortDesc(_) => "OFPST_PORT_DESC".into(),
                MpReply::GroupDesc(_) if v == 1 => "NXST_GROUP_DESC".into(),
                MpReply::GroupDesc(_) => "OFPST_GROUP_DESC".into(),
                MpReply::GroupFeatures(_) if v == 1 => "NXST_GROUP_FEATURES".into(),
                MpReply::GroupFeatures(_) => "OFPST_GROUP_FEATURES".into(),
                MpReply::MeterConfig(_) => "OFPST_METER_CONFIG".into(),
                MpReply::MeterFeatures(_) => "OFPST_METER_FEATURES".into(),
                MpReply::TableStats(_) => "OFPST_TABLE".into(),
                MpReply::TableFeatures(_) => "OFPST_TABLE_FEATURES".into(),
                MpReply::PortStats(_) => "OFPST_PORT".into(),
                MpReply::QueueStats(_) => "OFPST_QUEUE".into(),
                MpReply::GroupStats(_) if v == 1 => nxst_name(7),
                MpReply::GroupStats(_) => "OFPST_GROUP".into(),
                MpReply::MeterStats(_) => "OFPST_METER".into(),
                MpReply::TableDesc(_) => "OFPST_TABLE_DESC".into(),
                MpReply::FlowMonitor { form, .. } => monitor_name(*form),
                MpReply::Raw { mp_type, .. } => mp_name(*mp_type).into(),
                MpReply::Experimenter { exp_type, .. } => nxst_name(*exp_type),
            };
            st(&base, false)
        }
        Message::BarrierRequest => "OFPT_BARRIER_REQUEST".into(),
        Message::BarrierReply => "OFPT_BARRIER_REPLY".into(),
        Message::RoleRequest(r) => {
            if r.nx {
                "NXT_ROLE_REQUEST".into()
            } else {
                "OFPT_ROLE_REQUEST".into()
            }
        }
        Message::RoleReply(r) => {
            if r.nx {
                "NXT_ROLE_REPLY".into()
            } else {
                "OFPT_ROLE_REPLY".into()
            }
        }
        Message::GetAsyncRequest => "OFPT_GET_ASYNC_REQUEST".into(),
        Message::GetAsyncReply(_) => "OFPT_GET_ASYNC_REPLY".into(),
        Message::SetAsync(_) => "OFPT_SET_ASYNC".into(),
        Message::MeterMod(_) => "OFPT_METER_MOD".into(),
        Message::BundleControl(_) => {
            if v == 4 {
                "ONFT_BUNDLE_CONTROL".into()
            } else {
                "OFPT_BUNDLE_CONTROL".into()
            }
        }
        Message::BundleAdd(_) => {
            if v == 4 {
                "ONFT_BUNDLE_ADD_MESSAGE".into()
            } else {
                "OFPT_BUNDLE_ADD_MESSAGE".into()
            }
        }
        Message::Experimenter(e) => match e {
            Experimenter::SetFlowFormat(_) => "NXT_SET_FLOW_FORMAT".into(),
            Experimenter::FlowModTableId(_) => "NXT_FLOW_MOD_TABLE_ID".into(),
            Experimenter::SetPacketInFormat(_) => "NXT_SET_PACKET_IN_FORMAT".into(),
            Experimenter::SetControllerId(_) => "NXT_SET_CONTROLLER_ID".into(),
            Experimenter::TlvTableMod { .. } => "NXT_TLV_TABLE_MOD".into(),
            Experimenter::TlvTableRequest => "NXT_TLV_TABLE_REQUEST".into(),
            Experimenter::TlvTableReply { .. } => "NXT_TLV_TABLE_REPLY".into(),
            Experimenter::CtFlushZone(_) => "NXT_CT_FLUSH_ZONE".into(),
            Experimenter::CtFlush { .. } => "NXT_CT_FLUSH".into(),
            Experimenter::FlowAge => "NXT_FLOW_AGE".into(),
            Experimenter::FlowMonitorCancel(_) => {
                if v == 4 {
                    "ONFT_FLOW_MONITOR_CANCEL".into()
                } else {
                    "NXT_FLOW_MONITOR_CANCEL".into()
                }
            }
            Experimenter::FlowMonitorPaused => "NXT_FLOW_MONITOR_PAUSED".into(),
            Experimenter::FlowMonitorResumed => "NXT_FLOW_MONITOR_RESUMED".into(),
            Experimenter::SetAsyncConfig(_) => "NXT_SET_ASYNC_CONFIG".into(),
            Experimenter::Other {
                experimenter: NX_VENDOR,
                exp_type: 31,
                ..
            } => "NXT_GROUP_MOD".into(),
            Experimenter::Other { exp_type, .. } => format!("NXT_{exp_type}"),
        },
        Message::Unknown { msg_type, .. } => format!("OFPT_{msg_type}"),
    }
}

fn mp_name(t: u16) -> &'static str {
    match t {
        0 => "OFPST_DESC",
        1 => "OFPST_FLOW",
        2 => "OFPST_AGGREGATE",
        3 => "OFPST_TABLE",
        4 => "OFPST_PORT",
        5 => "OFPST_QUEUE",
        6 => "OFPST_GROUP",
        7 => "OFPST_GROUP_DESC",
        8 => "OFPST_GROUP_FEATURES",
        9 => "OFPST_METER",
        10 => "OFPST_METER_CONFIG",
        11 => "OFPST_METER_FEATURES",
        12 => "OFPST_TABLE_FEATURES",
        13 => "OFPST_PORT_DESC",
        14 => "OFPST_TABLE_DESC",
        15 => "OFPST_QUEUE_DESC",
        16 => "OFPST_FLOW_MONITOR",
        _ => "OFPST_EXPERIMENTER",
    }
}

/// The message name from the raw header alone, for messages the codec cannot decode
/// (ovs-ofctl still names them: "NXT_FLOW_MOD (xid=0x6): ***decode error: ...***").
fn raw_msg_name(b: &[u8]) -> Option<String> {
    let v = *b.first()?;
    let t = *b.get(1)?;
    let be16 = |i: usize| b.get(i..i + 2).map(|x| u16::from_be_bytes([x[0], x[1]]));
    let be32 = |i: usize| {
        b.get(i..i + 4)
            .map(|x| u32::from_be_bytes([x[0], x[1], x[2], x[3]]))
    };
    let nx = |sub: u32| -> String {
        match sub {
            10 => "NXT_ROLE_REQUEST".into(),
            11 => "NXT_ROLE_REPLY".into(),
            12 => "NXT_SET_FLOW_FORMAT".into(),
            13 => "NXT_FLOW_MOD".into(),
            14 => "NXT_FLOW_REMOVED".into(),
            15 => "NXT_FLOW_MOD_TABLE_ID".into(),
            16 => "NXT_SET_PACKET_IN_FORMAT".into(),
            17 => "NXT_PACKET_IN".into(),
            24 => "NXT_TLV_TABLE_MOD".into(),
            28 => "NXT_PACKET_IN2".into(),
            30 => "NXT_RESUME".into(),
            31 => "NXT_GROUP_MOD".into(),
            _ => format!("NXT_{sub}"),
        }
    };
    let stats = |req: bool| -> Option<String> {
        let mt = be16(8)?;
        let base = if mt == 0xffff {
            nxst_name(be32(16)?)
        } else {
            mp_name(mt).to_string()
        };
        Some(format!("{base} {}", if req { "request" } else { "reply" }))
    };
    Some(match (v, t) {
        (_, 0) => "OFPT_HELLO".into(),
        (_, 1) => "OFPT_ERROR".into(),
        (_, 2) => "OFPT_ECHO_REQUEST".into(),
        (_, 3) => "OFPT_ECHO_REPLY".into(),
        (_, 4) if be32(8) == Some(NX_VENDOR) => nx(be32(12)?),
        (_, 5) => "OFPT_FEATURES_REQUEST".into(),
        (_, 6) => "OFPT_FEATURES_REPLY".into(),
        (_, 9) => "OFPT_SET_CONFIG".into(),
        (_, 10) => "OFPT_PACKET_IN".into(),
        (_, 11) => "OFPT_FLOW_REMOVED".into(),
        (_, 12) => "OFPT_PORT_STATUS".into(),
        (_, 13) => "OFPT_PACKET_OUT".into(),
        (_, 14) => "OFPT_FLOW_MOD".into(),
        (1, 15) => "OFPT_PORT_MOD".into(),
        (1, 16) => stats(true)?,
        (1, 17) => stats(false)?,
        (1, 18) => "OFPT_BARRIER_REQUEST".into(),
        (1, 19) => "OFPT_BARRIER_REPLY".into(),
        (_, 15) => "OFPT_GROUP_MOD".into(),
        (_, 16) => "OFPT_PORT_MOD".into(),
        (_, 17) => "OFPT_TABLE_MOD".into(),
        (_, 18) => stats(true)?,
        (_, 19) => stats(false)?,
        (_, 20) => "OFPT_BARRIER_REQUEST".into(),
        (_, 21) => "OFPT_BARRIER_REPLY".into(),
        (_, 29) => "OFPT_METER_MOD".into(),
        (_, 33) => "OFPT_BUNDLE_CONTROL".into(),
        (_, 34) => "OFPT_BUNDLE_ADD_MESSAGE".into(),
        _ => return None,
    })
}

fn monitor_name(form: FlowMonitorForm) -> String {
    match form {
        FlowMonitorForm::Nicira => nxst_name(2),
        FlowMonitorForm::Onf => nxst_name(1870),
        FlowMonitorForm::OpenFlow => mp_name(16).into(),
    }
}

fn nxst_name(sub: u32) -> String {
    match sub {
        2 => "NXST_FLOW_MONITOR".into(),
        7 => "NXST_GROUP".into(),
        8 => "NXST_GROUP_DESC".into(),
        1870 => "ONFST_FLOW_MONITOR".into(),
        _ => format!("NXST_{sub}"),
    }
}

/// `OFPT_X (OF1.3) (xid=0x2):`.
pub fn header_text(h: &Header, name: &str) -> String {
    let ver = match h.version {
        1 => String::new(),
        2 => " (OF1.1)".into(),
        3 => " (OF1.2)".into(),
        4 => " (OF1.3)".into(),
        5 => " (OF1.4)".into(),
        6 => " (OF1.5)".into(),
        v => format!(" (OF 0x{v:02x})"),
    };
    format!("{name}{ver} (xid=0x{:x}):", h.xid)
}

/// The switch's ports, for `--names` and for printing packet-ins.
pub type Names<'a> = Option<&'a PortMap>;

/// `ofp_to_string`: the whole message text, ending in a newline.
pub fn ofp_to_string(bytes: &[u8], map: Names, verbosity: u8) -> String {
    let (h, m) = match openflow::decode(bytes) {
        Ok(x) => x,
        Err(e) => {
            let mut s = match (Header::parse(bytes), raw_msg_name(bytes)) {
                (Some(h), Some(name)) => format!("{} ", header_text(&h, &name)),
                (Some(h), None) => format!(
                    "(version=0x{:02x} type={} xid=0x{:x}) ",
                    h.version, h.msg_type, h.xid
                ),
                (None, _) => String::new(),
            };
            s.push_str(&format!("***decode error: {:?}***\n", e.kind));
            s.push_str(&hex_dump(bytes));
            return s;
        }
    };
    message_to_string(&h, &m, map, verbosity)
}

/// Like [`ofp_to_string`] for an already decoded message.
pub fn message_to_string(h: &Header, m: &Message, map: Names, verbosity: u8) -> String {
    let mut s = header_text(h, &msg_name(h, m));
    let body = match body_to_string(h, m, map, verbosity) {
        Ok(b) => b,
        Err(e) => format!(" ***decode error: {e}***"),
    };
    s.push_str(&body);
    while s.ends_with(' ') {
        s.pop();
    }
    if !s.ends_with('\n') {
        s.push('\n');
    }
    s
}

fn mp_flags(flags: u16, request: bool, version: u8) -> String {
    if flags == 0 {
        return String::new();
    }
    let mut s = String::from(" flags=");
    let mut f = flags;
    if (!request || version >= 4) && f & 1 != 0 {
        s.push_str("[more]");
        f &= !1;
    }
    if f != 0 {
        s.push_str(&format!("[***unknown flags 0x{f:04x}***]"));
    }
    s
}

fn body_to_string(h: &Header, m: &Message, map: Names, verbosity: u8) -> Result<String, String> {
    let v = h.version;
    Ok(match m {
        Message::Hello(els) => {
            let mut bitmap = 0u32;
            for e in els {
                if let openflow::message::HelloElement::VersionBitmap(b) = e {
                    bitmap = b.first().copied().unwrap_or(0);
                }
            }
            if bitmap == 0 {
                bitmap = if v < 32 { (2u32 << v) - 2 } else { 0 };
            }
            let names: Vec<String> = (1..=6u8)
                .filter(|i| bitmap & (1 << i) != 0)
                .map(|i| format!("0x{i:02x}"))
                .collect();
            format!("\n version bitmap: {}\n", names.join(", "))
        }
        Message::Error(e) => format_error(e, v, map),
        Message::EchoRequest(d) | Message::EchoReply(d) => {
            let mut s = format!(" {} bytes of payload\n", d.len());
            if verbosity > 1 && !d.is_empty() {
                s.push_str(&hex_dump(d));
            }
            s
        }
        Message::FeaturesRequest
        | Message::GetConfigRequest
        | Message::BarrierRequest
        | Message::BarrierReply
        | Message::GetAsyncRequest => String::new(),
        Message::GetAsyncReply(b) | Message::SetAsync(b) => format_async(b, v, v < 5)?,
        Message::Experimenter(Experimenter::SetAsyncConfig(b)) => format_async(b, v, true)?,
        Message::FeaturesReply(f) => format_features(f, v),
        Message::GetConfigReply(c) | Message::SetConfig(c) => format_config(c, v),
        Message::PacketIn(p) => format_packet_in(p, v, map, verbosity)?,
        Message::PacketIn2(p) | Message::Resume(p) => format_packet_in2(p, v, map, verbosity)?,
        Message::FlowRemoved(f) => format_flow_removed(f, v, map)?,
        Message::PortStatus { reason, port } => {
            let r = match reason {
                0 => " ADD:",
                1 => " DEL:",
                2 => " MOD:",
                _ => "",
            };
            format!("{r}{}", format_port_desc(port, v))
        }
        Message::PacketOut(p) => format_packet_out(p, v, map, verbosity)?,
        Message::FlowMod(f) => format_flow_mod(f, v, map)?,
        Message::GroupMod(g) => format_group_mod(g, v, map)?,
        Message::PortMod(p) => {
            let all = if v == 1 { 0x7f } else { 0x65 };
            let advertise = if v >= 5 {
                p.props
                    .iter()
                    .find(|(t, val)| *t == 0 && val.len() >= 4)
                    .map_or(0, |(_, val)| u32_at(val, 0))
            } else {
                p.advertise
            };
            format!(
                " port: {}: addr:{}\n     config: {}\n     mask:   {}\n     advertise: {}\n",
                format_port(port_from_ofp11(p.port_no).unwrap_or(0), map),
                format_mac(&p.hw_addr),
                bit_names(p.config & all, port_config_name),
                bit_names(p.mask & all, port_config_name),
                if advertise == 0 {
                    "UNCHANGED".to_string()
                } else {
                    feature_names(netdev_features(advertise, v))
                }
            )
        }
        Message::MultipartRequest(r) => {
            let mut s = mp_flags(r.flags, true, v);
            s.push_str(&format_mp_request(&r.body, v, map)?);
            s
        }
        Message::MultipartReply(r) => {
            let mut s = mp_flags(r.flags, false, v);
            s.push_str(&format_mp_reply(&r.body, v, map, verbosity)?);
            s
        }
        Message::RoleRequest(r) | Message::RoleReply(r) => format_role(r, m),
        Message::Experimenter(Experimenter::Other {
            experimenter: NX_VENDOR,
            exp_type: 31,
            body,
        }) => format_group_mod(&crate::groups::parse_nx_group_mod(body)?, 1, map)?,
        Message::Experimenter(e) => format_experimenter(e),
        Message::BundleControl(b) => {
            let t = match b.ctrl_type {
                0 => "OPEN_REQUEST",
                1 => "OPEN_REPLY",
                2 => "CLOSE_REQUEST",
                3 => "CLOSE_REPLY",
                4 => "COMMIT_REQUEST",
                5 => "COMMIT_REPLY",
                6 => "DISCARD_REQUEST",
                7 => "DISCARD_REPLY",
                _ => "???",
            };
            let mut s = format!(
                "\n bundle_id={} type={t}",
                crate::value::c_hex(b.bundle_id as u128)
            );
            s.push_str(&bundle_flags(b.flags));
            s.push('\n');
            s
        }
        Message::BundleAdd(b) => {
            let mut s = format!("\n bundle_id={}", crate::value::c_hex(b.bundle_id as u128));
            s.push_str(&bundle_flags(b.flags));
            s.push('\n');
            s.push_str(&message_to_string(&b.header, &b.message, map, verbosity));
            s
        }
        _ => String::new(),
    })
}

fn bundle_flags(f: u16) -> String {
    let names = bit_names(f as u32, |b| match b {
        1 => Some("atomic"),
        2 => Some("ordered"),
        _ => None,
    });
    format!(" flags={names}")
}

fn format_role(r: &Role, m: &Message) -> String {
    let name = match (r.nx, r.role) {
        // OVS maps Nicira's "other" onto OpenFlow 1.2's "equal" before printing.
        (true, 0) => "equal",
        (true, 1) => "master",
        (true, 2) => "slave",
        (false, 0) => "nochange",
        (false, 1) => "equal",
        (false, 2) => "master",
        (false, 3) => "slave",
        _ => "unknown",
    };
    let mut s = format!(" role={name}");
    if !r.nx && matches!(m, Message::RoleRequest(_)) && r.role != 0 {
        s.push_str(&format!(" generation_id={}", r.generation_id));
    }
    s
}

fn format_experimenter(e: &Experimenter) -> String {
    match e {
        Experimenter::SetFlowFormat(f) => format!(
            " format={}",
            match f {
                0 => "openflow10",
                2 => "nxm",
                _ => "(unknown)",
            }
        ),
        Experimenter::FlowModTableId(b) => {
            format!(" {}", if *b { "enable" } else { "disable" })
        }
        Experimenter::SetPacketInFormat(f) => format!(
            " format={}",
            match f {
                0 => "standard",
                1 => "nxt_packet_in",
                2 => "nxt_packet_in2",
                _ => "(unknown)",
            }
        ),
        Experimenter::SetControllerId(id) => format!(" id={id}"),
        Experimenter::FlowMonitorCancel(id) => format!(" id={id}"),
        Experimenter::CtFlushZone(z) => format!(" zone_id={z}"),
        Experimenter::TlvTableMod { command, maps } => {
            let c = match *command {
                0 => "ADD",
                1 => "DEL",
                2 => "CLEAR",
                _ => "",
            };
            let mut s = format!("\n {c}");
            if *command != 2 {
                s.push_str(&crate::tlv::format_tlv_table(maps));
            }
            s
        }
        Experimenter::TlvTableReply {
            max_option_space,
            max_fields,
            maps,
        } => {
            let allocated: u32 = maps.iter().map(|m| m.option_len as u32).sum();
            format!(
                "\n max option space={max_option_space} max fields={max_fields}\n \
                 allocated option space={allocated}\n\n{}",
                crate::tlv::format_tlv_table(maps)
            )
        }
        _ => String::new(),
    }
}

/// Error name for a numbering in `version` ("OFPBAC_BAD_OUT_GROUP").
pub fn error_name(code: &ErrorCode, version: u8) -> Option<&'static str> {
    let want = match *code {
        ErrorCode::Standard { err_type, code } => Num::Std(err_type, code),
        ErrorCode::NxVendor { err_type, code } => Num::Nxv(err_type, code),
        ErrorCode::Experimenter {
            exp_code,
            experimenter,
        } => Num::Exp(experimenter, exp_code),
    };
    ERRORS
        .iter()
        .find(|(_, v, n)| *v == version && *n == want)
        .map(|(name, _, _)| *name)
}

fn format_error(e: &openflow::ErrorMsg, version: u8, map: Names) -> String {
    let name = match error_name(&e.code, version) {
        Some(n) => n.to_string(),
        None => match e.code {
            ErrorCode::Standard { err_type, code } => format!("OFPERR_{err_type}_{code}"),
            ErrorCode::NxVendor { err_type, code } => format!("NXERR_{err_type}_{code}"),
            ErrorCode::Experimenter {
                exp_code,
                experimenter,
            } => format!("EXPERR_{experimenter:#x}_{exp_code}"),
        },
    };
    let mut s = format!(" {name}\n");
    if name == "OFPHFC_INCOMPATIBLE" || name == "OFPHFC_EPERM" {
        s.push_str(&String::from_utf8_lossy(&e.data));
    } else if !e.data.is_empty() {
        s.push_str(&ofp_to_string(&e.data, map, 1));
    }
    s
}

/// `ofputil_switch_features_format` + ports.
fn format_features(f: &SwitchFeatures, v: u8) -> String {
    let mut s = format!(" dpid:{:016x}\n", f.datapath_id);
    s.push_str(&format!(
        "n_tables:{}, n_buffers:{}",
        f.n_tables, f.n_buffers
    ));
    if f.auxiliary_id != 0 {
        s.push_str(&format!(", auxiliary_id:{}", f.auxiliary_id));
    }
    s.push('\n');
    // Capabilities to OVS's internal bits, then names in bit order.
    let c = f.capabilities;
    let mut caps = c & (1 | 2 | 4 | 0x20 | 0x40);
    if v == 1 {
        caps |= c & 0x80;
        if c & 8 != 0 {
            caps |= 1 << 3;
        }
    } else {
        if c & 8 != 0 {
            caps |= 1 << 4;
        }
        if v == 2 {
            caps |= c & 0x80;
        }
        if v >= 3 {
            caps |= c & 0x100;
        }
        if v >= 5 {
            caps |= c & 0x600;
        }
    }
    s.push_str("capabilities: ");
    s.push_str(&bit_names(caps, |b| match b {
        0x1 => Some("FLOW_STATS"),
        0x2 => Some("TABLE_STATS"),
        0x4 => Some("PORT_STATS"),
        0x8 => Some("STP"),
        0x10 => Some("GROUP_STATS"),
        0x20 => Some("IP_REASM"),
        0x40 => Some("QUEUE_STATS"),
        0x80 => Some("ARP_MATCH_IP"),
        0x100 => Some("PORT_BLOCKED"),
        0x200 => Some("BUNDLES"),
        0x400 => Some("FLOW_MONITORING"),
        _ => None,
    }));
    s.push('\n');
    if v == 1 {
        // OpenFlow 1.0 action bits, in Open vSwitch's action-type order.
        const ORDER: &[(u32, &str)] = &[
            (0, "output"),
            (11, "enqueue"),
            (1, "set_vlan_vid"),
            (2, "set_vlan_pcp"),
            (3, "strip_vlan"),
            (4, "mod_dl_src"),
            (5, "mod_dl_dst"),
            (6, "mod_nw_src"),
            (7, "mod_nw_dst"),
            (8, "mod_nw_tos"),
            (9, "mod_tp_src"),
            (10, "mod_tp_dst"),
        ];
        let names: Vec<&str> = ORDER
            .iter()
            .filter(|(b, _)| f.actions & (1 << b) != 0)
            .map(|(_, n)| *n)
            .collect();
        s.push_str("actions: ");
        if names.is_empty() {
            s.push_str("<none>");
        } else {
            s.push_str(&names.join(" "));
        }
        s.push('\n');
    }
    s.push_str(&format_ports(&f.ports, v));
    s
}

/// `ofp_print_bit_names` with a space separator.
/// Asynchronous message configuration (`ofputil_format_set_async_config`), from the
/// OpenFlow 1.0-1.3 fixed layout (`legacy`) or OpenFlow 1.4+ properties.
fn format_async(b: &[u8], v: u8, legacy: bool) -> Result<String, String> {
    // [role][type]: role 0 primary, 1 secondary; types PACKET_IN, PORT_STATUS,
    // FLOW_REMOVED, ROLE_STATUS, TABLE_STATUS, REQUESTFORWARD.
    let mut cfg = [[0u32; 6]; 2];
    let allowed = |ty: usize| -> u32 {
        match ty {
            0 if v >= 5 => 0x3f,
            0 => 0x7,
            1 => 0x7,
            2 => 0x3f,
            3 => 0x7,
            4 => 0x18,
            _ => 0x3,
        }
    };
    if legacy {
        if b.len() < 24 {
            return Err("async config: bad length".into());
        }
        for (role, row) in cfg.iter_mut().enumerate() {
            for (ty, slot) in row.iter_mut().take(3).enumerate() {
                *slot = u32_at(b, ty * 8 + role * 4) & allowed(ty);
            }
        }
    } else {
        let mut p = b;
        while p.len() >= 8 {
            let (t, len) = (u16_at(p, 0) as usize, u16_at(p, 2) as usize);
            if len < 8 || len > p.len() {
                return Err("async config: bad property length".into());
            }
            if t < 12 {
                // Even types are the secondary role's, odd the primary's.
                let (ty, role) = (t / 2, if t % 2 == 1 { 0 } else { 1 });
                cfg[role][ty] = u32_at(p, 4) & allowed(ty);
            }
            p = p.get(len.div_ceil(8) * 8..).unwrap_or(&[]);
        }
    }
    let types = [
        "PACKET_IN",
        "PORT_STATUS",
        "FLOW_REMOVED",
        "ROLE_STATUS",
        "TABLE_STATUS",
        "REQUESTFORWARD",
    ];
    let reason = |ty: usize, bit: u32| -> String {
        let named = match ty {
            0 => match bit {
                // The explicit/implicit-miss refinements of no_match print as nothing.
                6 | 7 => Some(""),
                0..=5 => None,
                _ => Some("?"),
            },
            1 => ["add", "delete", "modify"].get(bit as usize).copied(),
            2 => [
                "idle",
                "hard",
                "delete",
                "group_delete",
                "meter_delete",
                "eviction",
            ]
            .get(bit as usize)
            .copied(),
            3 => [
                "primary_request",
                "configuration_changed",
                "experimenter_data_changed",
            ]
            .get(bit as usize)
            .copied(),
            4 => match bit {
                3 => Some("vacancy_down"),
                4 => Some("vacancy_up"),
                _ => None,
            },
            _ => ["group_mod_request", "meter_mod_request"]
                .get(bit as usize)
                .copied(),
        };
        match (ty, named) {
            (0, None) => crate::actions::packet_in_reason_to_string(bit as u8),
            (_, Some(n)) if n != "?" => n.to_string(),
            _ => bit.to_string(),
        }
    };
    let mut s = String::new();
    for (role, name) in ["primary", "secondary"].iter().enumerate() {
        s.push_str(&format!("\n {name}:\n"));
        for (ty, tname) in types.iter().enumerate() {
            s.push_str(&format!("{tname:>16}:"));
            let mask = cfg[role][ty];
            for bit in 0..32 {
                if mask & (1 << bit) != 0 {
                    let r = reason(ty, bit);
                    if !r.is_empty() {
                        s.push(' ');
                        s.push_str(&r);
                    }
                }
            }
            if mask == 0 {
                s.push_str(" (off)");
            }
            s.push('\n');
        }
    }
    Ok(s)
}

fn port_config_name(b: u32) -> Option<&'static str> {
    Some(match b {
        0x1 => "PORT_DOWN",
        0x2 => "NO_STP",
        0x4 => "NO_RECV",
        0x8 => "NO_RECV_STP",
        0x10 => "NO_FLOOD",
        0x20 => "NO_FWD",
        0x40 => "NO_PACKET_IN",
        _ => return None,
    })
}

/// `ofp_print_bit_names` with a space separator ("0" when no bit is set).
fn bit_names(bits: u32, name_of: impl Fn(u32) -> Option<&'static str>) -> String {
    if bits == 0 {
        return "0".into();
    }
    let mut out = Vec::new();
    let mut rest = bits;
    for i in 0..32 {
        let bit = 1u32 << i;
        if bits & bit != 0 {
            if let Some(n) = name_of(bit) {
                out.push(n.to_string());
                rest &= !bit;
            }
        }
    }
    if rest != 0 {
        out.push(format!("0x{rest:x}"));
    }
    out.join(" ")
}

/// Port features in Open vSwitch's `netdev_features` numbering.
fn netdev_features(f: u32, v: u8) -> u32 {
    if v == 1 {
        (f & 0x7f) | ((f & 0xf80) << 4)
    } else {
        f & 0xffff
    }
}

fn features_to_kbps(f: u32) -> u32 {
    let bps: u64 = if f & (1 << 9) != 0 {
        1_000_000_000_000
    } else if f & (1 << 8) != 0 {
        100_000_000_000
    } else if f & (1 << 7) != 0 {
        40_000_000_000
    } else if f & (1 << 6) != 0 {
        10_000_000_000
    } else if f & 0x30 != 0 {
        1_000_000_000
    } else if f & 0xc != 0 {
        100_000_000
    } else if f & 3 != 0 {
        10_000_000
    } else {
        0
    };
    (bps / 1000) as u32
}

fn feature_names(f: u32) -> String {
    bit_names(f, |b| {
        Some(match b.trailing_zeros() {
            0 => "10MB-HD",
            1 => "10MB-FD",
            2 => "100MB-HD",
            3 => "100MB-FD",
            4 => "1GB-HD",
            5 => "1GB-FD",
            6 => "10GB-FD",
            7 => "40GB-FD",
            8 => "100GB-FD",
            9 => "1TB-FD",
            10 => "OTHER",
            11 => "COPPER",
            12 => "FIBER",
            13 => "AUTO_NEG",
            14 => "AUTO_PAUSE",
            15 => "AUTO_PAUSE_ASYM",
            _ => return None,
        })
    })
}

/// Port number in the 16-bit space.
pub fn port_no16(p: &Port) -> u16 {
    port_from_ofp11(p.port_no).unwrap_or(ports::NONE)
}

/// `ofputil_phy_port_format`.
pub fn format_port_desc(p: &Port, v: u8) -> String {
    let raw = p.name_str();
    let name: String = raw.chars().take_while(|c| !c.is_control()).collect();
    let mut s = format!(
        " {}({}): addr:{}\n",
        format_port(port_no16(p), None),
        name,
        format_mac(&p.hw_addr)
    );
    let config = if v == 1 {
        p.config & 0x7f
    } else {
        p.config & 0x65
    };
    s.push_str("     config:     ");
    s.push_str(&bit_names(config, port_config_name));
    s.push('\n');
    s.push_str("     state:      ");
    let state = if v == 1 { p.state & 0x301 } else { p.state & 7 };
    let stp = state & 0x300;
    let st_names = |b: u32| match b {
        0x1 => Some("LINK_DOWN"),
        0x2 => Some("BLOCKED"),
        0x4 => Some("LIVE"),
        _ => None,
    };
    if stp != 0 {
        s.push_str(match stp {
            0x100 => "STP_LEARN",
            0x200 => "STP_FORWARD",
            _ => "STP_BLOCK",
        });
        let rest = state & !0x300;
        if rest != 0 {
            s.push_str(&bit_names(rest, st_names));
        }
    } else {
        s.push_str(&bit_names(state, st_names));
    }
    s.push('\n');
    let (curr, adv, sup, peer) = (
        netdev_features(p.curr, v),
        netdev_features(p.advertised, v),
        netdev_features(p.supported, v),
        netdev_features(p.peer, v),
    );
    for (val, label) in [
        (curr, "     current:    "),
        (adv, "     advertised: "),
        (sup, "     supported:  "),
        (peer, "     peer:       "),
    ] {
        if val != 0 {
            s.push_str(label);
            s.push_str(&feature_names(val));
            s.push('\n');
        }
    }
    let (cs, ms) = if v == 1 {
        (features_to_kbps(curr), features_to_kbps(sup))
    } else {
        (p.curr_speed, p.max_speed)
    };
    s.push_str(&format!(
        "     speed: {} Mbps now, {} Mbps max\n",
        cs / 1000,
        ms / 1000
    ));
    s
}

/// Ports sorted by number, each formatted.
pub fn format_ports(ps: &[Port], v: u8) -> String {
    let mut sorted: Vec<&Port> = ps.iter().collect();
    sorted.sort_by_key(|p| port_no16(p));
    sorted.iter().map(|p| format_port_desc(p, v)).collect()
}

fn format_config(c: &SwitchConfig, v: u8) -> String {
    let frag = match c.flags & 3 {
        0 => "normal",
        1 => "drop",
        2 => "reassemble",
        _ => "nx-match",
    };
    let mut s = format!(" frags={frag}");
    if v < 4 && c.flags & 4 != 0 {
        s.push_str(" invalid_ttl_to_controller");
    }
    s.push_str(&format!(" miss_send_len={}\n", c.miss_send_len));
    s
}

fn decode_match(m: &MatchRepr) -> Result<(FlowMatch, Option<(u64, u64)>), String> {
    match m {
        MatchRepr::Of10(o) => of10_to_flowmatch(o),
        MatchRepr::Nxm(x) | MatchRepr::Oxm(x) => FlowMatch::from_codec(x),
    }
}

/// `ofputil_flow_mod_format`.
fn format_flow_mod(f: &FlowMod, v: u8, map: Names) -> Result<String, String> {
    let (m, nx_cookie) = decode_match(&f.match_)?;
    let actions = crate::actions::decode_instructions(&f.instructions, v)?;
    let mut s = String::from(" ");
    s.push_str(match f.command {
        0 => "ADD",
        1 => "MOD",
        2 => "MOD_STRICT",
        3 => "DEL",
        4 => "DEL_STRICT",
        _ => "cmd:?",
    });
    if f.table_id != 0 {
        s.push_str(&format!(" table:{}", f.table_id));
    }
    s.push(' ');
    s.push_str(&m.format(map, Some(f.priority)));
    if !s.ends_with(' ') {
        s.push(' ');
    }
    // Cookie semantics differ between NXM/OF1.0 and OF1.1+ (ofputil_decode_flow_mod).
    let (new_cookie, cookie, cookie_mask) = if matches!(f.match_, MatchRepr::Oxm(_)) {
        if f.command == 0 {
            (f.cookie, 0, 0)
        } else {
            (u64::MAX, f.cookie, f.cookie_mask)
        }
    } else {
        let (c, cm) = nx_cookie.unwrap_or((0, 0));
        if f.command == 0 {
            (f.cookie, 0, 0)
        } else if cm != 0 {
            (u64::MAX, c, cm)
        } else {
            (f.cookie, 0, 0)
        }
    };
    if new_cookie != 0 && new_cookie != u64::MAX {
        s.push_str(&format!("cookie:0x{new_cookie:x} "));
    }
    if cookie_mask != 0 {
        s.push_str(&format!("cookie:0x{cookie:x}/0x{cookie_mask:x} "));
    }
    if f.idle_timeout != 0 {
        s.push_str(&format!("idle:{} ", f.idle_timeout));
    }
    if f.hard_timeout != 0 {
        s.push_str(&format!("hard:{} ", f.hard_timeout));
    }
    if f.importance != 0 {
        s.push_str(&format!("importance:{} ", f.importance));
    }
    if f.buffer_id != u32::MAX {
        s.push_str(&format!("buf:0x{:x} ", f.buffer_id));
    }
    let out_port = port_from_ofp11(f.out_port).unwrap_or(ports::ANY);
    if out_port != ports::ANY {
        s.push_str(&format!("out_port:{} ", format_port(out_port, map)));
    }
    let mut flags = f.flags;
    if v <= 2 {
        flags &= !crate::flow::flags::RESET_COUNTS;
    }
    s.push_str(&crate::flow::format_flow_flags(flags));
    s.push_str("actions=");
    s.push_str(&format_actions(&actions, map));
    Ok(s)
}

fn format_flow_removed(f: &FlowRemoved, v: u8, map: Names) -> Result<String, String> {
    let (m, _) = decode_match(&f.match_)?;
    let reason = match f.reason {
        0 => "idle".to_string(),
        1 => "hard".into(),
        2 => "delete".into(),
        3 => "group_delete".into(),
        4 => "meter_delete".into(),
        5 => "eviction".into(),
        r => r.to_string(),
    };
    let mut s = format!(" {} reason={reason}", m.format(map, Some(f.priority)));
    let table = if matches!(f.match_, MatchRepr::Of10(_)) {
        255
    } else {
        f.table_id
    };
    if table != 255 {
        s.push_str(&format!(" table_id={table}"));
    }
    if f.cookie != 0 {
        s.push_str(&format!(" cookie:0x{:x}", f.cookie));
    }
    let (mut dsec, mut dnsec, mut pk, mut by) = (
        f.duration_sec,
        f.duration_nsec,
        f.packet_count,
        f.byte_count,
    );
    if v >= 6 && matches!(f.match_, MatchRepr::Oxm(_)) {
        let st = crate::flow::oxs_stats(&f.oxs_stats);
        if let Some((a, b)) = st.duration {
            dsec = a;
            dnsec = b;
        }
        pk = st.packet_count.unwrap_or(u64::MAX);
        by = st.byte_count.unwrap_or(u64::MAX);
    }
    s.push_str(&format!(" duration{}s", format_duration(dsec, dnsec)));
    s.push_str(&format!(" idle{}", f.idle_timeout));
    if f.hard_timeout != 0 {
        s.push_str(&format!(" hard{}", f.hard_timeout));
    }
    s.push_str(&format!(" pkts{pk} bytes{by}\n"));
    Ok(s)
}

fn format_packet_in(p: &PacketIn, v: u8, map: Names, verbosity: u8) -> Result<String, String> {
    let (meta, table_id, cookie) = match &p.match_ {
        None => {
            let mut m = FlowMatch::new();
            let port = openflow::action::port_from_of10(p.in_port);
            m.set(
                crate::flowmatch::Slot::InPort,
                port_from_ofp11(port).unwrap_or(0) as u128,
                0xffff,
            );
            (m, 0, u64::MAX)
        }
        Some(mr) => {
            let (m, _) = decode_match(mr)?;
            let cookie = if v >= 4 || matches!(mr, MatchRepr::Nxm(_)) {
                p.cookie
            } else {
                u64::MAX
            };
            (m, p.table_id, cookie)
        }
    };
    Ok(format_pin_common(
        &PinView {
            version: v,
            table_id,
            cookie,
            total_len: p.total_len as usize,
            meta,
            reason: p.reason,
            data: &p.data,
            buffer_id: p.buffer_id,
            userdata: None,
            continuation: None,
        },
        map,
        verbosity,
    ))
}

struct PinView<'a> {
    version: u8,
    table_id: u8,
    cookie: u64,
    total_len: usize,
    meta: FlowMatch,
    reason: u8,
    data: &'a [u8],
    buffer_id: u32,
    userdata: Option<&'a [u8]>,
    continuation: Option<&'a [u8]>,
}

fn format_pin_common(p: &PinView, map: Names, verbosity: u8) -> String {
    let mut s = String::new();
    if p.table_id != 0 {
        s.push_str(&format!(" table_id={}", p.table_id));
    }
    if p.cookie != u64::MAX {
        s.push_str(&format!(" cookie=0x{:x}", p.cookie));
    }
    s.push_str(&format!(" total_len={} ", p.total_len));
    s.push_str(&p.meta.format(map, None));
    s.push_str(&format!(" (via {})", packet_in_reason_to_string(p.reason)));
    s.push_str(&format!(" data_len={}", p.data.len()));
    if p.buffer_id == u32::MAX {
        s.push_str(" (unbuffered)");
        if p.total_len != p.data.len() {
            s.push_str(" (***total_len != data_len***)");
        }
    } else {
        s.push_str(&format!(" buffer=0x{:08x}", p.buffer_id));
        if p.total_len < p.data.len() {
            s.push_str(" (***total_len < data_len***)");
        }
    }
    s.push('\n');
    if let Some(u) = p.userdata {
        if !u.is_empty() {
            s.push_str(&format!(" userdata={}\n", crate::value::hex_arg(u)));
        }
    }
    if let Some(c) = p.continuation {
        s.push_str(&format_continuation(c, p.version, map));
    }
    if verbosity > 0 {
        let pt = p.meta.val(crate::flowmatch::Slot::PacketType) as u32;
        s.push_str(&packet_to_string(p.data, pt));
    }
    if verbosity > 2 {
        s.push_str(&hex_dump(p.data));
    }
    s
}

/// The continuation's properties (NXCPT_*), as far as ovs-ofctl prints them.
fn format_continuation(c: &[u8], version: u8, map: Names) -> String {
    let mut s = String::new();
    let (mut bridge, mut stack, mut mirrors, mut ct) = (None, Vec::new(), 0u32, false);
    let (mut actions, mut action_set, mut odp_port) = (Vec::<String>::new(), None, 0u32);
    // Each NXCPT_ACTIONS group decodes as an `unroll_xlate` of the current table and cookie
    // (NXCPT_TABLE_ID / NXCPT_COOKIE, initially 0) followed by its actions.
    let (mut table_id, mut cookie) = (0u8, 0u64);
    // The continuation blob is 4 alignment bytes, then properties.
    let mut p = c.get(4..).unwrap_or(&[]);
    while p.len() >= 4 {
        let t = u16::from_be_bytes([p[0], p[1]]);
        let len = u16::from_be_bytes([p[2], p[3]]) as usize;
        if len < 4 || len > p.len() {
            break;
        }
        let val = &p[4..len];
        match t {
            0x8000 if val.len() == 16 => bridge = Some(val.to_vec()),
            0x8001 => stack.push(val.to_vec()),
            0x8002 if val.len() == 4 => {
                mirrors = u32::from_be_bytes([val[0], val[1], val[2], val[3]])
            }
            0x8003 => ct = true,
            0x8004 if !val.is_empty() => table_id = val[0],
            0x8005 if val.len() >= 8 => cookie = u64_at(val, 0),
            0x8006 | 0x8007 => {
                let acts = val
                    .get(4..)
                    .and_then(|a| openflow::action::decode_actions(a, version).ok())
                    .and_then(|a| decode_actions(&a, version).ok());
                if t == 0x8006 {
                    actions.push(format!("unroll_xlate(table={table_id}, cookie={cookie})"));
                    if let Some(a) = acts.filter(|a| !a.is_empty()) {
                        actions.push(format_actions(&a, map));
                    }
                } else {
                    action_set = acts;
                }
            }
            0x8008 if val.len() == 4 => {
                odp_port = u32::from_be_bytes([val[0], val[1], val[2], val[3]])
            }
            _ => {}
        }
        let adv = (len.div_ceil(8) * 8).min(p.len());
        p = &p[adv..];
    }
    if let Some(b) = bridge {
        if b.iter().any(|&x| x != 0) {
            // ovs-vswitchd copies its `struct uuid` (four host-order 32-bit words) into
            // the property as is; decode the words in our byte order, which is the
            // switch's when it runs on this host, as ovs-ofctl does.
            let w: Vec<u32> = b
                .chunks_exact(4)
                .take(4)
                .map(|c| u32::from_ne_bytes([c[0], c[1], c[2], c[3]]))
                .collect();
            if w.len() == 4 {
                s.push_str(&format!(
                    " continuation.bridge={:08x}-{:04x}-{:04x}-{:04x}-{:04x}{:08x}\n",
                    w[0],
                    w[1] >> 16,
                    w[1] & 0xffff,
                    w[2] >> 16,
                    w[2] & 0xffff,
                    w[3]
                ));
            }
        }
    }
    if !stack.is_empty() {
        s.push_str(" continuation.stack=(top)");
        for v in stack.iter().rev() {
            s.push(' ');
            s.push_str(&crate::value::put_hex(v));
        }
        s.push_str(" (bottom)\n");
    }
    if mirrors != 0 {
        s.push_str(&format!(" continuation.mirrors=0x{mirrors:x}\n"));
    }
    if ct {
        s.push_str(" continuation.conntracked=true\n");
    }
    if !actions.is_empty() {
        s.push_str(&format!(" continuation.actions={}\n", actions.join(",")));
    }
    if let Some(a) = action_set {
        if !a.is_empty() {
            s.push_str(&format!(
                " continuation.action_set={}\n",
                format_actions(&a, map)
            ));
        }
    }
    if odp_port != 0 {
        s.push_str(&format!(" continuation.odp_port={odp_port}\n"));
    }
    s
}

fn format_packet_in2(p: &PacketIn2, v: u8, map: Names, verbosity: u8) -> Result<String, String> {
    let data = p.packet().unwrap_or(&[]);
    let mut total_len = data.len();
    let mut buffer_id = u32::MAX;
    for prop in &p.props {
        match prop {
            PacketIn2Prop::FullLen(l) => total_len = *l as usize,
            PacketIn2Prop::BufferId(b) => buffer_id = *b,
            _ => {}
        }
    }
    let meta = match p.metadata() {
        Some(m) => FlowMatch::from_codec(m)?.0,
        None => FlowMatch::new(),
    };
    Ok(format_pin_common(
        &PinView {
            version: v,
            table_id: p.table_id().unwrap_or(0),
            cookie: p.cookie().unwrap_or(u64::MAX),
            total_len,
            meta,
            reason: p.reason().unwrap_or(0),
            data,
            buffer_id,
            userdata: p.userdata(),
            continuation: p.continuation(),
        },
        map,
        verbosity,
    ))
}

fn format_packet_out(p: &PacketOut, v: u8, map: Names, verbosity: u8) -> Result<String, String> {
    let mut s = String::new();
    let acts = decode_actions(&p.actions, v)?;
    match &p.match_ {
        Some(m) => {
            let (fm, _) = FlowMatch::from_codec(m)?;
            s.push(' ');
            s.push_str(&fm.format(map, None));
        }
        None => {
            s.push_str(&format!(
                " in_port={}",
                format_port(port_from_ofp11(p.in_port).unwrap_or(0), map)
            ));
        }
    }
    s.push_str(&format!(" actions={}", format_actions(&acts, map)));
    if p.buffer_id == u32::MAX {
        s.push_str(&format!(" data_len={}", p.data.len()));
        if verbosity > 0 && !p.data.is_empty() {
            s.push('\n');
            s.push_str(&packet_to_string(&p.data, 0));
        }
    } else {
        s.push_str(&format!(" buffer=0x{:08x}", p.buffer_id));
    }
    Ok(s)
}

fn format_mp_request(b: &MpRequest, v: u8, map: Names) -> Result<String, String> {
    Ok(match b {
        MpRequest::PortStats { port_no }
        | MpRequest::PortDesc {
            port_no: Some(port_no),
        } => {
            let p = port_from_ofp11(*port_no).unwrap_or(ports::ANY);
            if matches!(b, MpRequest::PortStats { .. }) {
                format!(" port_no={}", format_port(p, map))
            } else {
                format!(" port={}", format_port(p, map))
            }
        }
        MpRequest::PortDesc { port_no: None } => " port=ANY".into(),
        MpRequest::Flow(f) | MpRequest::Aggregate(f) => {
            let (m, cookie) = decode_match(&f.match_)?;
            let mut s = String::new();
            if f.table_id != 255 {
                s.push_str(&format!(" table={}", f.table_id));
            }
            let op = port_from_ofp11(f.out_port).unwrap_or(ports::ANY);
            if op != ports::ANY {
                s.push_str(&format!(" out_port={}", format_port(op, map)));
            }
            // ovs-ofctl does not show the request's cookie/mask.
            let _ = cookie;
            s.push(' ');
            s.push_str(&m.format(map, None));
            s
        }
        MpRequest::FlowMonitor { form, monitors } => {
            crate::monitor::format_requests(monitors, *form, map)?
        }
        MpRequest::Experimenter {
            experimenter: NX_VENDOR,
            exp_type: 8,
            body,
        } if body.len() >= 4 => format!(" group_id={}", group_name(u32_at(body, 0))),
        MpRequest::GroupDesc { group_id } => {
            format!(" group_id={}", group_name(group_id.unwrap_or(0xffff_fffc)))
        }
        MpRequest::GroupStats { group_id } => format!(" group_id={}", group_name(*group_id)),
        MpRequest::MeterStats { meter_id } | MpRequest::MeterConfig { meter_id } => {
            format!(" meter={}", meter_name(*meter_id))
        }
        MpRequest::QueueStats { port_no, queue_id } => {
            let p = port_from_ofp11(*port_no).unwrap_or(ports::ANY);
            // OpenFlow 1.0 says "all ports" with OFPP_ALL here; OVS shows it as ANY.
            let port = if v == 1 && p == ports::ALL {
                ports::ANY
            } else {
                p
            };
            let queue = *queue_id;
            let q = if queue == u32::MAX {
                "ALL".to_string()
            } else {
                queue.to_string()
            };
            format!(" port={} queue={q}", format_port(port, map))
        }
        _ => String::new(),
    })
}

/// Group statistics reply (`ofputil_group_stats_format`; Nicira's OpenFlow 1.0 form uses
/// the 1.3 layout).
fn format_group_stats(gs: &[GroupStats]) -> String {
    let mut s = String::new();
    for g in gs {
        s.push_str(&format!("\n group_id={},", g.group_id));
        if g.duration_sec != u32::MAX {
            s.push_str(&format!(
                "duration={}s,",
                format_duration(g.duration_sec, g.duration_nsec)
            ));
        }
        s.push_str(&format!(
            "ref_count={},packet_count={},byte_count={}",
            g.ref_count, g.packet_count, g.byte_count
        ));
        for (i, b) in g.buckets.iter().enumerate() {
            if b.packet_count != u64::MAX {
                s.push_str(&format!(
                    ",bucket{i}:packet_count={},byte_count={}",
                    b.packet_count, b.byte_count
                ));
            }
        }
    }
    s
}

/// Queue statistics reply (`ofputil_queue_stats_reply_format`).
fn format_queue_stats(qs: &[QueueStats], v: u8, map: Names, verbosity: u8) -> String {
    let mut s = format!(" {} queues\n", qs.len());
    if verbosity < 1 {
        return s;
    }
    let stat = |x: u64| {
        if x == u64::MAX {
            "?".to_string()
        } else {
            x.to_string()
        }
    };
    for q in qs {
        let port = port_from_ofp11(q.port_no).unwrap_or(ports::ANY);
        // OpenFlow 1.0 has no duration
        let dur =
            (v != 1 && q.duration_sec != u32::MAX).then_some((q.duration_sec, q.duration_nsec));
        let (queue, bytes, pkts, errs) = (q.queue_id, q.tx_bytes, q.tx_packets, q.tx_errors);
        let q = if queue == u32::MAX {
            "ALL".to_string()
        } else {
            queue.to_string()
        };
        s.push_str(&format!(
            "  port {} queue {q}: bytes={}, pkts={}, errors={}, duration={}\n",
            format_port(port, map),
            stat(bytes),
            stat(pkts),
            stat(errs),
            match dur {
                Some((sec, ns)) => format!("{}s", format_duration(sec, ns)),
                None => "?".into(),
            }
        ));
    }
    s
}

fn meter_name(m: u32) -> String {
    match m {
        0xffff_ffff => "all".into(),
        0xffff_fffd => "controller".into(),
        0xffff_fffe => "slowpath".into(),
        _ => m.to_string(),
    }
}

fn group_name(g: u32) -> String {
    match g {
        0xffff_fffc => "ALL".into(),
        0xffff_ffff => "ANY".into(),
        _ => g.to_string(),
    }
}

fn format_mp_reply(b: &MpReply, v: u8, map: Names, verbosity: u8) -> Result<String, String> {
    Ok(match b {
        MpReply::Flow { flows, .. } => {
            let mut s = String::new();
            for f in flows {
                let e = decode_flow_stats(f, v)?;
                s.push_str("\n ");
                s.push_str(&format_flow_entry(&e, map, true));
            }
            s
        }
        MpReply::Aggregate {
            packet_count,
            byte_count,
            flow_count,
            ..
        } => {
            format!(" packet_count={packet_count} byte_count={byte_count} flow_count={flow_count}")
        }
        MpReply::AggregateOxs(x) => {
            let st = crate::flow::oxs_stats(x);
            format!(
                " packet_count={} byte_count={} flow_count={}",
                st.packet_count.unwrap_or(0),
                st.byte_count.unwrap_or(0),
                st.flow_count.unwrap_or(0)
            )
        }
        MpReply::PortDesc(ps) => format!("\n{}", format_ports(ps, v)),
        MpReply::Desc(d) => {
            let f = |b: &[u8]| -> String {
                let end = b.iter().position(|&x| x == 0).unwrap_or(b.len());
                String::from_utf8_lossy(&b[..end]).into_owned()
            };
            format!(
                "\nManufacturer: {}\nHardware: {}\nSoftware: {}\nSerial Num: {}\nDP Description: {}\n",
                f(&d.mfr_desc),
                f(&d.hw_desc),
                f(&d.sw_desc),
                f(&d.serial_num),
                f(&d.dp_desc)
            )
        }
        MpReply::GroupDesc(gs) => {
            let mut s = String::new();
            for g in gs {
                s.push_str("\n ");
                s.push_str(&format_group(g, v, false, map)?);
            }
            s
        }
        MpReply::PortStats(ps) => format_port_stats(ps, v, map, verbosity),
        MpReply::QueueStats(qs) => format_queue_stats(qs, v, map, verbosity),
        MpReply::GroupStats(gs) => format_group_stats(gs),
        MpReply::FlowMonitor { form, updates } => {
            crate::monitor::format_updates(updates, *form, v, map)?
        }
        MpReply::Experimenter {
            experimenter: NX_VENDOR,
            exp_type: 8,
            body,
        } => {
            let mut s = String::new();
            for g in crate::groups::parse_nx_group_desc(body)? {
                s.push_str("\n ");
                s.push_str(&format_group(&g, 1, false, map)?);
            }
            s
        }
        MpReply::TableStats(ts) => format_table_stats(ts, v)?,
        _ => String::new(),
    })
}

/// One group as ovs-ofctl prints it (`ofp_print_group`).
pub fn format_group(
    g: &GroupMod,
    v: u8,
    suppress_type: bool,
    map: Names,
) -> Result<String, String> {
    let mut s = format!("group_id={}", g.group_id);
    if !suppress_type {
        let t = ["all", "select", "indirect", "ff", "unknown"];
        s.push_str(&format!(",type={}", t[(g.group_type as usize).min(4)]));
    }
    if let Some((method, param)) = g.selection_method() {
        if !method.is_empty() {
            s.push_str(&format!(",selection_method={method}"));
            if param != 0 {
                s.push_str(&format!(",selection_method_param={param}"));
            }
            s.push_str(&crate::groups::format_selection_fields(
                &crate::groups::selection_fields(&g.props),
            ));
        }
    }
    s.push(',');
    for b in &g.buckets {
        s.push_str(&format_bucket(b, g.group_type, v, map)?);
    }
    if s.ends_with(',') {
        s.pop();
    }
    Ok(s)
}

fn format_bucket(b: &Bucket, group_type: u8, v: u8, map: Names) -> Result<String, String> {
    let mut s = String::from("bucket=");
    if v == 1 || v >= 6 {
        s.push_str("bucket_id:");
        s.push_str(&bucket_id_name(b.bucket_id));
        s.push(',');
    }
    let weight = b.weight.unwrap_or(if group_type == 1 { 1 } else { 0 });
    if weight != if group_type == 1 { 1 } else { 0 } {
        s.push_str(&format!("weight:{weight},"));
    }
    if let Some(wp) = b.watch_port {
        let p = port_from_ofp11(wp).unwrap_or(ports::NONE);
        if p != ports::NONE {
            s.push_str(&format!("watch_port:{},", format_port(p, map)));
        }
    }
    if let Some(wg) = b.watch_group {
        if wg != u32::MAX {
            s.push_str(&format!("watch_group:{wg},"));
        }
    }
    let acts: Vec<Act> = decode_actions(&b.actions, v)?;
    s.push_str("actions=");
    s.push_str(&format_actions(&acts, map));
    s.push(',');
    Ok(s)
}

fn format_group_mod(g: &GroupMod, v: u8, map: Names) -> Result<String, String> {
    let cmd = match g.command {
        0 => "ADD".to_string(),
        1 => "MOD".into(),
        2 => "DEL".into(),
        3 => "INSERT_BUCKET".into(),
        4 => "ADD_OR_MOD".into(),
        5 => "REMOVE_BUCKET".into(),
        c => format!("cmd:{c}"),
    };
    let bucket_command = g.command == 3 || g.command == 5;
    let mut s = format!("\n {cmd} ");
    if bucket_command && (v == 1 || v >= 6) {
        s.push_str("command_bucket_id:");
        s.push_str(&bucket_id_name(g.command_bucket_id));
        s.push(',');
    }
    s.push_str(&format_group(g, v, bucket_command, map)?);
    Ok(s)
}

fn bucket_id_name(id: u32) -> String {
    match id {
        0xffff_fffd => "first".to_string(),
        0xffff_fffe => "last".into(),
        0xffff_ffff => "all".into(),
        n => n.to_string(),
    }
}

fn u64_at(b: &[u8], i: usize) -> u64 {
    b.get(i..i + 8)
        .and_then(|x| x.try_into().ok())
        .map(u64::from_be_bytes)
        .unwrap_or(0)
}
fn u32_at(b: &[u8], i: usize) -> u32 {
    b.get(i..i + 4)
        .and_then(|x| x.try_into().ok())
        .map(u32::from_be_bytes)
        .unwrap_or(0)
}
fn u16_at(b: &[u8], i: usize) -> u16 {
    b.get(i..i + 2)
        .and_then(|x| x.try_into().ok())
        .map(u16::from_be_bytes)
        .unwrap_or(0)
}

/// Port statistics reply (`ofputil_port_stats_format`).
fn format_port_stats(stats: &[PortStats], v: u8, map: Names, verbosity: u8) -> String {
    let mut s = format!(" {} ports\n", stats.len());
    if verbosity < 1 {
        return s;
    }
    let st = |x: u64| {
        if x == u64::MAX {
            "?".to_string()
        } else {
            x.to_string()
        }
    };
    for ps in stats {
        let port_no = port_from_ofp11(ps.port_no).unwrap_or(0);
        s.push_str("  port ");
        if port_no < 10 {
            s.push(' ');
        }
        s.push_str(&format_port(port_no, map));
        // (OpenFlow 1.4+ without the Ethernet property: unknown)
        let e = ps.ethernet.unwrap_or(PortStatsEthernet {
            rx_frame_err: u64::MAX,
            rx_over_err: u64::MAX,
            rx_crc_err: u64::MAX,
            collisions: u64::MAX,
        });
        s.push_str(&format!(
            ": rx pkts={}, bytes={}, drop={}, errs={}, frame={}, over={}, crc={}\n",
            st(ps.rx_packets),
            st(ps.rx_bytes),
            st(ps.rx_dropped),
            st(ps.rx_errors),
            st(e.rx_frame_err),
            st(e.rx_over_err),
            st(e.rx_crc_err)
        ));
        s.push_str(&format!(
            "           tx pkts={}, bytes={}, drop={}, errs={}, coll={}\n",
            st(ps.tx_packets),
            st(ps.tx_bytes),
            st(ps.tx_dropped),
            st(ps.tx_errors),
            st(e.collisions)
        ));
        // OpenFlow 1.0 has no duration
        if v != 1 && ps.duration_sec != u32::MAX {
            s.push_str(&format!(
                "           duration={}s\n",
                format_duration(ps.duration_sec, ps.duration_nsec)
            ));
        }
    }
    s
}

/// Table statistics (and, for OpenFlow 1.0, the features they carry).
fn format_table_stats(tables: &[TableStats], v: u8) -> Result<String, String> {
    if !matches!(v, 1 | 4..=6) {
        return Err("table stats for this version".into());
    }
    let mut s = String::new();
    let (mut first, mut last) = (-1i32, -1i32);
    let finish = |s: &mut String, first: i32, last: i32| {
        if first < 0 {
            return;
        }
        s.push('\n');
        if first == last {
            s.push_str(&format!("  table {first}: ditto\n"));
        } else {
            s.push_str(&format!("  tables {first}...{last}: ditto\n"));
        }
    };
    for (i, t) in tables.iter().enumerate() {
        let prev = if i > 0 { tables.get(i - 1) } else { None };
        let same_stats = prev.is_some_and(|p| {
            p.active_count == t.active_count
                && p.lookup_count == t.lookup_count
                && p.matched_count == t.matched_count
        });
        let name = t.name_str();
        let same_features =
            prev.is_some_and(|p| p.wildcards == t.wildcards && p.max_entries == t.max_entries);
        if same_stats && same_features && name.is_empty() {
            if first < 0 {
                first = t.table_id as i32;
            }
            last = t.table_id as i32;
            continue;
        }
        finish(&mut s, first, last);
        first = -1;
        s.push_str(&format!("\n  table {}", t.table_id));
        if !name.is_empty() {
            s.push_str(&format!(" (\"{name}\")"));
        }
        s.push(':');
        if same_stats && same_features {
            s.push_str(" ditto");
            continue;
        }
        s.push('\n');
        s.push_str(&format!(
            "    active={}, lookup={}, matched={}\n",
            t.active_count, t.lookup_count, t.matched_count
        ));
        if v == 1 {
            if same_features {
                s.push_str("    (same features)\n");
                continue;
            }
            if t.max_entries != 0 {
                s.push_str(&format!("    max_entries={}\n", t.max_entries));
            }
            let names = of10_wildcard_fields(t.wildcards);
            if !names.is_empty() {
                if prev.is_some_and(|p| of10_wildcard_fields(p.wildcards) == names) {
                    s.push_str("    (same matching)\n");
                } else {
                    s.push_str("    matching:\n");
                    s.push_str(&format!(
                        "      exact match or wildcard: {}\n",
                        compress_names(&names, 0)
                    ));
                }
            }
        }
    }
    finish(&mut s, first, last);
    Ok(s)
}

/// Field names for OpenFlow 1.0 wildcard bits, in Open vSwitch's field order.
fn of10_wildcard_fields(wc: u32) -> Vec<String> {
    let map: &[(u32, Mfo)] = &[
        (1 << 0, Mfo::InPort),
        (1 << 1, Mfo::VlanVid),
        (1 << 2, Mfo::EthSrc),
        (1 << 3, Mfo::EthDst),
        (1 << 4, Mfo::EthType),
        (1 << 5, Mfo::IpProto),
        (1 << 6, Mfo::TcpSrc),
        (1 << 7, Mfo::TcpDst),
        (0x3f << 8, Mfo::Ipv4Src),
        (0x3f << 14, Mfo::Ipv4Dst),
        (1 << 20, Mfo::VlanPcp),
        (1 << 21, Mfo::IpDscp),
    ];
    let mut fields: Vec<Mfo> = map
        .iter()
        .filter(|(b, _)| wc & b != 0)
        .map(|(_, f)| *f)
        .collect();
    fields.sort();
    fields.into_iter().map(|f| f.name().to_string()).collect()
}

/// The fields OpenFlow 1.0's table stats can name, in Open vSwitch's field-id order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Mfo {
    InPort,
    EthSrc,
    EthDst,
    EthType,
    VlanVid,
    VlanPcp,
    Ipv4Src,
    Ipv4Dst,
    IpProto,
    IpDscp,
    TcpSrc,
    TcpDst,
}

impl Mfo {
    fn name(self) -> &'static str {
        match self {
            Mfo::InPort => "in_port",
            Mfo::EthSrc => "eth_src",
            Mfo::EthDst => "eth_dst",
            Mfo::EthType => "eth_type",
            Mfo::VlanVid => "vlan_vid",
            Mfo::VlanPcp => "vlan_pcp",
            Mfo::Ipv4Src => "ip_src",
            Mfo::Ipv4Dst => "ip_dst",
            Mfo::IpProto => "nw_proto",
            Mfo::IpDscp => "nw_tos",
            Mfo::TcpSrc => "tcp_src",
            Mfo::TcpDst => "tcp_dst",
        }
    }
}

/// Open vSwitch's `print_names`: "eth_src eth_dst" => "eth_{src,dst}", "reg0 reg1" =>
/// "reg0...reg1".
pub fn compress_names(ids: &[String], prefix_len: usize) -> String {
    fn common_prefix(a: &str, b: &str) -> usize {
        let (a, b) = (a.as_bytes(), b.as_bytes());
        let mut r = 0;
        let mut i = 0;
        loop {
            if i >= a.len() || i >= b.len() || a[i] != b[i] {
                return r;
            }
            if a[i] == b'_' {
                r = i + 1;
            }
            i += 1;
        }
    }
    fn split_num(s: &str) -> Option<(&str, u64)> {
        let d = s.len() - s.bytes().rev().take_while(|c| c.is_ascii_digit()).count();
        if d == s.len() {
            return None;
        }
        s[d..].parse().ok().map(|n| (&s[..d], n))
    }
    let mut s = String::new();
    let mut i = 0;
    let mut group = 0;
    while i < ids.len() {
        if group > 0 {
            s.push(if prefix_len > 0 { ',' } else { ' ' });
        }
        group += 1;
        let rest = &ids[i..];
        // Prefix run.
        let (prefix_run, extra) = if rest.len() < 2 {
            (rest.len(), 0)
        } else {
            let e = common_prefix(&rest[0][prefix_len..], &rest[1][prefix_len..]);
            if e == 0 {
                (1, 0)
            } else {
                let mut k = 2;
                while k < rest.len()
                    && common_prefix(&rest[0][prefix_len..], &rest[k][prefix_len..]) > 0
                {
                    k += 1;
                }
                (k, e)
            }
        };
        // Sequential suffix run.
        let mut suffix_run = 1;
        if let Some((base, n)) = split_num(&rest[0]) {
            while suffix_run < rest.len() {
                match split_num(&rest[suffix_run]) {
                    Some((b2, n2)) if b2 == base && n2 == n + suffix_run as u64 => suffix_run += 1,
                    _ => break,
                }
            }
        }
        let run = prefix_run.max(suffix_run);
        if suffix_run >= prefix_run {
            s.push_str(&rest[0][prefix_len..]);
            if run > 1 {
                s.push_str("...");
                s.push_str(&rest[run - 1][prefix_len..]);
            }
        } else {
            s.push_str(&rest[0][prefix_len..prefix_len + extra]);
            s.push('{');
            s.push_str(&compress_names(&rest[..run], prefix_len + extra));
            s.push('}');
        }
        i += run;
    }
    s
}

/// `ds_put_hex_dump` with offsets and ASCII.
pub fn hex_dump(b: &[u8]) -> String {
    let mut s = String::new();
    for (i, chunk) in b.chunks(16).enumerate() {
        s.push_str(&format!("{:08x}  ", i * 16));
        for (j, x) in chunk.iter().enumerate() {
            s.push_str(&format!("{x:02x}"));
            s.push(if j == 7 { '-' } else { ' ' });
        }
        for _ in chunk.len()..16 {
            s.push_str("   ");
        }
        s.push('|');
        for x in chunk {
            s.push(if x.is_ascii_graphic() || *x == b' ' {
                *x as char
            } else {
                '.'
            });
        }
        // The ASCII column is always 16 wide.
        for _ in chunk.len()..16 {
            s.push(' ');
        }
        s.push_str("|\n");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn name_compression_like_ovs() {
        let n: Vec<String> = [
            "in_port", "eth_src", "eth_dst", "eth_type", "vlan_vid", "vlan_pcp", "ip_src",
            "ip_dst", "nw_proto", "nw_tos", "tcp_src", "tcp_dst",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        assert_eq!(
            compress_names(&n, 0),
            "in_port eth_{src,dst,type} vlan_{vid,pcp} ip_{src,dst} nw_{proto,tos} tcp_{src,dst}"
        );
        let r: Vec<String> = (0..4).map(|i| format!("reg{i}")).collect();
        assert_eq!(compress_names(&r, 0), "reg0...reg3");
    }
}
