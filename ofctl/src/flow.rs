//! Flows as ovs-ofctl reads and prints them: the `add-flow`/`mod-flows`/`del-flows` text
//! (`table=1,priority=10,ip,nw_src=10.0.0.0/8 actions=...`), flow-stats requests
//! (`dump-flows` filters), and the `dump-flows` line format.
//!
//! Parsing follows Open vSwitch's `parse_ofp_str`: keywords, protocol shorthands and match
//! fields in any order, `actions=` last; it also computes the set of OpenFlow "protocols"
//! (flow formats) able to express the flow, which the CLI uses to pick OpenFlow 1.0's
//! fixed match, NXM, or OXM exactly as ovs-ofctl does.

use openflow::message::FlowMod;
use openflow::multipart::{FlowStatsRequest, MpRequest};
use openflow::types::FlowStats;
use openflow::{MatchRepr, Message, MultipartRequest, Of10Match};

use crate::actions::{
    check, decode_instructions, encode_instructions, format_actions, parse_actions, parse_table,
    Act, ParseCtx,
};
use crate::field::{proto, Mf};
use crate::flowmatch::{FlowMatch, Slot};
use crate::value::{
    c_hex, mf_parse, parse_port, parse_u64_full, port_to_ofp11, ports, strtoull, FieldValue,
    PortMap,
};

/// Flow-mod commands (OFPFC_*).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    Add = 0,
    Modify = 1,
    ModifyStrict = 2,
    Delete = 3,
    DeleteStrict = 4,
}

/// What a text flow is parsed for (which keywords it may carry).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParseFor {
    /// A flow mod with this command.
    Mod(Command),
    /// A flow mod whose command may prefix the text (`add-flows FILE` lines).
    ModAny,
    /// A flow-stats request (dump-flows, dump-aggregate, diff/replace filters).
    Stats,
}

/// Flow-mod flags (OFPUTIL_FF_*).
pub mod flags {
    pub const SEND_FLOW_REM: u16 = 1 << 0;
    pub const CHECK_OVERLAP: u16 = 1 << 1;
    pub const RESET_COUNTS: u16 = 1 << 2;
    pub const NO_PKT_COUNTS: u16 = 1 << 3;
    pub const NO_BYT_COUNTS: u16 = 1 << 4;
}

/// A parsed flow (Open vSwitch's `ofputil_flow_mod`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlowSpec {
    pub command: Command,
    /// 255 = not specified (all tables for deletes and stats).
    pub table_id: u8,
    pub priority: u16,
    /// Cookie to match (with `cookie_mask`), for modify/delete/stats.
    pub cookie: u64,
    pub cookie_mask: u64,
    /// Cookie to set (add, modify); u64::MAX = leave unchanged.
    pub new_cookie: u64,
    pub modify_cookie: bool,
    pub idle_timeout: u16,
    pub hard_timeout: u16,
    pub importance: u16,
    pub flags: u16,
    pub out_port: u16,
    pub out_group: u32,
    pub buffer_id: u32,
    pub match_: FlowMatch,
    pub actions: Vec<Act>,
    /// Protocols able to express this flow.
    pub usable: u32,
}

impl FlowSpec {
    fn new(command: Command) -> Self {
        FlowSpec {
            command,
            table_id: 255,
            priority: 32768,
            cookie: 0,
            cookie_mask: 0,
            new_cookie: if matches!(command, Command::Modify | Command::ModifyStrict) {
                u64::MAX
            } else {
                0
            },
            modify_cookie: false,
            idle_timeout: 0,
            hard_timeout: 0,
            importance: 0,
            flags: 0,
            out_port: ports::ANY,
            out_group: u32::MAX,
            buffer_id: u32::MAX,
            match_: FlowMatch::new(),
            actions: Vec::new(),
            usable: proto::ANY,
        }
    }
}

/// A protocol shorthand (`ip`, `tcp6`, ...): (dl_type, nw_proto).
pub fn protocol_shorthand(name: &str) -> Option<(u16, u8)> {
    Some(match name {
        "ip" => (0x0800, 0),
        "ipv4" => (0x0800, 0),
        "ip4" => (0x0800, 0),
        "arp" => (0x0806, 0),
        "icmp" => (0x0800, 1),
        "icmp4" => (0x0800, 1),
        "tcp" => (0x0800, 6),
        "tcp4" => (0x0800, 6),
        "udp" => (0x0800, 17),
        "udp4" => (0x0800, 17),
        "sctp" => (0x0800, 132),
        "sctp4" => (0x0800, 132),
        "ipv6" => (0x86dd, 0),
        "ip6" => (0x86dd, 0),
        "tcp6" => (0x86dd, 6),
        "udp6" => (0x86dd, 17),
        "sctp6" => (0x86dd, 132),
        "icmp6" => (0x86dd, 58),
        "rarp" => (0x8035, 0),
        "mpls" => (0x8847, 0),
        "mplsm" => (0x8848, 0),
        _ => return None,
    })
}

/// Splits a key-value list like ovs-ofctl's match syntax (delegates to the action tokenizer).
fn key_values(s: &str) -> crate::actions::KeyValues<'_> {
    crate::actions::KeyValues::new(s)
}

/// Parses one flow: `parse_ofp_str`.
pub fn parse_flow(text: &str, pf: ParseFor, map: Option<&PortMap>) -> Result<FlowSpec, String> {
    let mut s = text;
    let command = match pf {
        ParseFor::Mod(c) => Some(c),
        ParseFor::Stats => None,
        ParseFor::ModAny => {
            let t = s.trim_start_matches([' ', '\t', '\r', '\n']);
            let len = t.find([',', ' ', '\t', '\r', '\n']).unwrap_or(t.len());
            let word = &t[..len];
            let cmd = if len == 0 {
                None
            } else if "add".starts_with(word) {
                Some(Command::Add)
            } else if "delete".starts_with(word) {
                Some(Command::Delete)
            } else if "delete_strict".starts_with(word) {
                Some(Command::DeleteStrict)
            } else if "modify".starts_with(word) {
                Some(Command::Modify)
            } else if "modify_strict".starts_with(word) {
                Some(Command::ModifyStrict)
            } else {
                None
            };
            match cmd {
                Some(c) => {
                    s = &t[len..];
                    Some(c)
                }
                None => Some(Command::Add),
            }
        }
    };
    // Which keywords are allowed.
    let (f_out_port, f_actions, f_importance, f_timeout, f_priority, f_flags) = match command {
        None => (true, false, false, false, false, false),
        Some(Command::Add) => (false, true, true, true, true, true),
        Some(Command::Delete) => (true, false, false, false, false, false),
        Some(Command::DeleteStrict) => (true, false, false, false, true, false),
        Some(Command::Modify) | Some(Command::ModifyStrict) => {
            (false, true, false, true, true, true)
        }
    };
    let mut fm = FlowSpec::new(command.unwrap_or(Command::Delete));
    if command.is_none() {
        fm.new_cookie = 0;
    }
    let mut usable = proto::ANY;

    // `actions=` (the first "action" substring) ends the match.
    let (match_s, act_s) = if f_actions {
        match s.find("action") {
            Some(i) => {
                let rest = &s[i..];
                match rest.find('=') {
                    Some(j) => (&s[..i], Some(&rest[j + 1..])),
                    None => return Err("must specify an action".into()),
                }
            }
            None => return Err("must specify an action".into()),
        }
    } else {
        (s, None)
    };

    for (name, value) in key_values(match_s) {
        if let Some((dl_type, nw_proto)) = protocol_shorthand(name) {
            let ty = Mf::EthType;
            fm.match_
                .set_field(ty, &FieldValue::exact(dl_type.to_be_bytes().to_vec()))?;
            if nw_proto != 0 {
                fm.match_
                    .set_field(Mf::IpProto, &FieldValue::exact(vec![nw_proto]))?;
            }
            continue;
        }
        match name {
            "eth" => {
                fm.match_.set(Slot::PacketType, 0, u32::MAX as u128);
                continue;
            }
            "send_flow_rem" if f_flags => {
                fm.flags |= flags::SEND_FLOW_REM;
                continue;
            }
            "check_overlap" if f_flags => {
                fm.flags |= flags::CHECK_OVERLAP;
                continue;
            }
            "reset_counts" if f_flags => {
                fm.flags |= flags::RESET_COUNTS;
                usable &= proto::OF12_UP;
                continue;
            }
            "no_packet_counts" if f_flags => {
                fm.flags |= flags::NO_PKT_COUNTS;
                usable &= proto::OF13_UP;
                continue;
            }
            "no_byte_counts" if f_flags => {
                fm.flags |= flags::NO_BYT_COUNTS;
                usable &= proto::OF13_UP;
                continue;
            }
            "no_readonly_table" | "allow_hidden_fields" => continue,
            _ => {}
        }
        if let Some(mf) = Mf::from_name(name) {
            let v = if value.is_empty() { "0/0" } else { value };
            let fv = mf_parse(mf, v, map)?;
            usable &= fm.match_.set_field(mf, &fv)?;
            continue;
        }
        if name.contains('[') {
            // `field[bits]=value`: sets part of a field.
            let sf = crate::actions::Subfield::parse(name)?;
            let n = sf.field.n_bytes();
            let (v, tail) = crate::value::parse_int_string(value, n)
                .map_err(|_| format!("{value}: cannot parse integer value"))?;
            let (m, t2) = if let Some(m) = tail.strip_prefix('/') {
                crate::value::parse_int_string(m, n)
                    .map_err(|_| format!("{value}: cannot parse integer value"))?
            } else if tail.is_empty() {
                (vec![0xff; n], "")
            } else {
                return Err(format!("{value}: cannot parse integer value"));
            };
            if !t2.is_empty() {
                return Err(format!("{value}: cannot parse integer value"));
            }
            let mut cur = fm.match_.get_field(sf.field);
            let vv = crate::value::be_to_u128(&v);
            let mm = crate::value::be_to_u128(&m);
            let width = sf.n_bits as u32;
            let fieldmask: u128 = if width >= 128 {
                u128::MAX
            } else {
                (1u128 << width) - 1
            };
            let cv = crate::value::be_to_u128(&cur.value);
            let cm = crate::value::be_to_u128(&cur.mask);
            let sh = sf.ofs as u32;
            let nv = (cv & !(fieldmask << sh)) | ((vv & fieldmask & mm) << sh);
            let nm = (cm & !(fieldmask << sh)) | ((mm & fieldmask) << sh);
            cur.value = crate::value::u128_to_be(nv, n);
            cur.mask = crate::value::u128_to_be(nm, n);
            usable &= fm.match_.set_field(sf.field, &cur)?;
            continue;
        }
        if value.is_empty() {
            return Err(format!("field {name} missing value"));
        }
        match name {
            "table" => {
                fm.table_id =
                    parse_table(value).ok_or_else(|| format!("unknown table \"{value}\""))?;
                if fm.table_id != 255 {
                    usable &= proto::TID;
                }
            }
            "out_port" if f_out_port => {
                fm.out_port = parse_port(value, map)
                    .ok_or_else(|| format!("{value} is not a valid OpenFlow port"))?;
            }
            "out_group" if f_out_port => {
                usable &= proto::OF11_UP;
                fm.out_group = parse_group(value)
                    .ok_or_else(|| format!("{value} is not a valid OpenFlow group"))?;
            }
            "priority" if f_priority => fm.priority = str_to_u16(value, name)?,
            "idle_timeout" if f_timeout => fm.idle_timeout = str_to_u16(value, name)?,
            "hard_timeout" if f_timeout => fm.hard_timeout = str_to_u16(value, name)?,
            "importance" if f_importance => fm.importance = str_to_u16(value, name)?,
            "cookie" => {
                if let Some((c, m)) = value.split_once('/') {
                    if command == Some(Command::Add) {
                        return Err("flow additions cannot use a cookie mask".into());
                    }
                    fm.cookie = str_to_be64(c)?;
                    fm.cookie_mask = str_to_be64(m)?;
                    if fm.cookie_mask != 0 {
                        usable &= proto::NXM_OF11_UP;
                    }
                } else {
                    if !matches!(
                        command,
                        Some(Command::Add) | Some(Command::Modify) | Some(Command::ModifyStrict)
                    ) {
                        return Err(format!(
                            "cannot set cookie (to match on a cookie, specify a mask, e.g. \
                             cookie={value}/-1)"
                        ));
                    }
                    fm.new_cookie = str_to_be64(value)?;
                    fm.modify_cookie = true;
                }
            }
            "duration" | "n_packets" | "n_bytes" | "idle_age" | "hard_age" => {}
            _ => return Err(format!("unknown keyword {name}")),
        }
    }
    // IPv6 L3/L4 fields need NXM or OXM.
    if fm.match_.val(Slot::DlType) == 0x86dd
        && (fm.match_.mask(Slot::NwProto) != 0
            || fm.match_.mask(Slot::NwTos) != 0
            || fm.match_.mask(Slot::TpSrc) != 0
            || fm.match_.mask(Slot::TpDst) != 0)
    {
        usable &= proto::NXM_OXM_ANY;
    }
    if fm.cookie_mask == 0
        && fm.new_cookie == u64::MAX
        && matches!(fm.command, Command::Modify | Command::ModifyStrict)
    {
        fm.new_cookie = 0;
    }
    if let Some(a) = act_s {
        let mut ctx = ParseCtx::new(map);
        fm.actions = parse_actions(a, &mut ctx)?;
        usable &= ctx.usable;
        let mut check_usable = proto::ANY;
        check(&fm.actions, &fm.match_, &mut check_usable)?;
        usable &= check_usable;
        if usable == 0 {
            return Err(
                "actions are invalid with specified match (OFPBAC_MATCH_INCONSISTENT)".into(),
            );
        }
    }
    if command.is_none() {
        // Special table ID support is not required for stats requests.
        if usable & proto::OF10_STD_TID != 0 {
            usable |= proto::OF10_STD;
        }
        if usable & proto::OF10_NXM_TID != 0 {
            usable |= proto::OF10_NXM;
        }
    }
    fm.usable = usable;
    Ok(fm)
}

fn str_to_u16(s: &str, name: &str) -> Result<u16, String> {
    match parse_u64_full(s) {
        Some(v) if v <= u16::MAX as u64 => Ok(v as u16),
        _ => Err(format!("invalid {name} \"{s}\"")),
    }
}

fn str_to_be64(s: &str) -> Result<u64, String> {
    match strtoull(s) {
        Some((v, n)) if n == s.len() => Ok(v),
        _ => Err(format!("invalid numeric format {s}")),
    }
}

/// Group numbers and names (`ofputil_group_from_string`).
pub fn parse_group(s: &str) -> Option<u32> {
    match s.to_ascii_lowercase().as_str() {
        "all" => Some(0xffff_fffc),
        "any" => Some(0xffff_ffff),
        _ => {
            let v = parse_u64_full(s)?;
            if v > u32::MAX as u64 || (v > 0xffff_ff00 && v != 0xffff_fffc && v != 0xffff_ffff) {
                None
            } else {
                Some(v as u32)
            }
        }
    }
}

/// An OpenFlow "protocol": version plus flow format (see [`proto`]).
pub type Protocol = u32;

/// The version a protocol speaks.
pub fn protocol_version(p: Protocol) -> u8 {
    proto::version(p)
}

fn is_nxm(p: Protocol) -> bool {
    p & proto::OF10_NXM_ANY != 0
}

fn has_tid(p: Protocol) -> bool {
    p & proto::TID != 0
}

/// OpenFlow 1.0 match from a flow match (`ofputil_match_to_ofp10_match`).
pub fn to_of10_match(m: &FlowMatch) -> Of10Match {
    use openflow::oxm::of10_wc as wc;
    let mut w = 0u32;
    if m.mask(Slot::InPort) == 0 {
        w |= wc::IN_PORT;
    }
    if m.mask(Slot::DlType) == 0 {
        w |= wc::DL_TYPE;
    }
    if m.mask(Slot::NwProto) == 0 {
        w |= wc::NW_PROTO;
    }
    let wcbits = |mask: u128| -> u32 {
        let m = mask as u32;
        32 - m.leading_ones()
    };
    w |= wcbits(m.mask(Slot::NwSrc)) << wc::NW_SRC_SHIFT;
    w |= wcbits(m.mask(Slot::NwDst)) << wc::NW_DST_SHIFT;
    if m.mask(Slot::NwTos) & 0xfc == 0 {
        w |= wc::NW_TOS;
    }
    if m.mask(Slot::TpSrc) == 0 {
        w |= wc::TP_SRC;
    }
    if m.mask(Slot::TpDst) == 0 {
        w |= wc::TP_DST;
    }
    if m.mask(Slot::DlSrc) == 0 {
        w |= wc::DL_SRC;
    }
    if m.mask(Slot::DlDst) == 0 {
        w |= wc::DL_DST;
    }
    let (tci, tm) = m.get(Slot::VlanTci);
    let (mut dl_vlan, mut pcp) = (0u16, 0u8);
    if tm == 0 {
        w |= wc::DL_VLAN | wc::DL_VLAN_PCP;
    } else if tm & 0x1000 != 0 && tci & 0x1000 == 0 {
        dl_vlan = 0xffff;
    } else {
        if tm & 0x0fff == 0 {
            w |= wc::DL_VLAN;
        } else {
            dl_vlan = (tci & 0xfff) as u16;
        }
        if tm & 0xe000 == 0 {
            w |= wc::DL_VLAN_PCP;
        } else {
            pcp = ((tci >> 13) & 7) as u8;
        }
    }
    let mac = |slot: Slot| -> [u8; 6] {
        let v = m.val(slot).to_be_bytes();
        let mut a = [0u8; 6];
        a.copy_from_slice(&v[10..16]);
        a
    };
    Of10Match {
        wildcards: w,
        in_port: m.val(Slot::InPort) as u16,
        dl_src: mac(Slot::DlSrc),
        dl_dst: mac(Slot::DlDst),
        dl_vlan,
        dl_vlan_pcp: pcp,
        dl_type: m.val(Slot::DlType) as u16,
        nw_tos: (m.val(Slot::NwTos) & 0xfc) as u8,
        nw_proto: m.val(Slot::NwProto) as u8,
        nw_src: m.val(Slot::NwSrc) as u32,
        nw_dst: m.val(Slot::NwDst) as u32,
        tp_src: m.val(Slot::TpSrc) as u16,
        tp_dst: m.val(Slot::TpDst) as u16,
    }
}

/// Encodes a flow mod in `protocol` (`ofputil_encode_flow_mod`).
pub fn encode_flow_mod(fm: &FlowSpec, protocol: Protocol) -> Result<Message, String> {
    let version = protocol_version(protocol);
    let instructions = encode_instructions(&fm.actions, version, &fm.match_)?;
    let cmd = fm.command as u8;
    let raw_flags = fm.flags;
    if version >= 2 {
        let is_mod = matches!(fm.command, Command::Modify | Command::ModifyStrict);
        let cookie = if (protocol == proto::OF11_STD && is_mod && fm.cookie_mask == 0)
            || fm.command == Command::Add
        {
            fm.new_cookie
        } else {
            fm.cookie & fm.cookie_mask
        };
        let table_id = if fm.table_id != 255
            || (protocol != proto::OF11_STD
                && matches!(fm.command, Command::Delete | Command::DeleteStrict))
        {
            fm.table_id
        } else {
            0
        };
        let m = fm.match_.to_codec(version, 0, 0)?;
        return Ok(Message::FlowMod(FlowMod {
            cookie,
            cookie_mask: fm.cookie_mask,
            table_id,
            command: cmd,
            idle_timeout: fm.idle_timeout,
            hard_timeout: fm.hard_timeout,
            priority: fm.priority,
            buffer_id: fm.buffer_id,
            out_port: port_to_ofp11(fm.out_port),
            out_group: fm.out_group,
            flags: raw_flags,
            importance: if version >= 5 && fm.command == Command::Add {
                fm.importance
            } else {
                0
            },
            match_: MatchRepr::Oxm(m),
            instructions,
        }));
    }
    let table_id = if has_tid(protocol) { fm.table_id } else { 0 };
    let match_ = if is_nxm(protocol) {
        MatchRepr::Nxm(fm.match_.to_codec(0, fm.cookie, fm.cookie_mask)?)
    } else {
        MatchRepr::Of10(to_of10_match(&fm.match_))
    };
    Ok(Message::FlowMod(FlowMod {
        cookie: fm.new_cookie,
        cookie_mask: 0,
        table_id,
        command: cmd,
        idle_timeout: fm.idle_timeout,
        hard_timeout: fm.hard_timeout,
        priority: fm.priority,
        buffer_id: fm.buffer_id,
        out_port: port_to_ofp11(fm.out_port),
        out_group: u32::MAX,
        flags: raw_flags,
        importance: 0,
        match_,
        instructions,
    }))
}

/// Encodes a flow or aggregate stats request for `protocol`.
pub fn encode_flow_stats_request(
    fs: &FlowSpec,
    protocol: Protocol,
    aggregate: bool,
) -> Result<Message, String> {
    let version = protocol_version(protocol);
    let match_ = if version >= 2 {
        MatchRepr::Oxm(fs.match_.to_codec(version, 0, 0)?)
    } else if is_nxm(protocol) {
        MatchRepr::Nxm(fs.match_.to_codec(0, fs.cookie, fs.cookie_mask)?)
    } else {
        MatchRepr::Of10(to_of10_match(&fs.match_))
    };
    let req = FlowStatsRequest {
        table_id: fs.table_id,
        out_port: port_to_ofp11(fs.out_port),
        out_group: fs.out_group,
        cookie: fs.cookie,
        cookie_mask: fs.cookie_mask,
        match_,
    };
    Ok(Message::MultipartRequest(MultipartRequest {
        flags: 0,
        body: if aggregate {
            MpRequest::Aggregate(req)
        } else {
            MpRequest::Flow(req)
        },
    }))
}

/// One flow from a flow-stats reply, decoded for printing and comparing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlowEntry {
    pub table_id: u8,
    pub duration_sec: u32,
    pub duration_nsec: u32,
    pub priority: u16,
    pub idle_timeout: u16,
    pub hard_timeout: u16,
    pub flags: u16,
    pub importance: u16,
    pub idle_age: Option<u32>,
    pub hard_age: Option<u32>,
    pub cookie: u64,
    pub packet_count: Option<u64>,
    pub byte_count: Option<u64>,
    pub match_: FlowMatch,
    pub actions: Vec<Act>,
}

/// OpenFlow 1.5 OXS statistics: (duration, idle age, packets, bytes, flow count).
#[derive(Debug, Clone, Copy, Default)]
pub struct OxsStats {
    pub duration: Option<(u32, u32)>,
    pub idle_age: Option<u32>,
    pub packet_count: Option<u64>,
    pub byte_count: Option<u64>,
    pub flow_count: Option<u32>,
}

/// The OXS statistics as `oxs_pull_stat` keeps them (idle age in whole seconds; a later
/// entry of the same kind wins).
pub fn oxs_stats(x: &openflow::stats::OxsStats) -> OxsStats {
    use openflow::stats::OxsEntry;
    let mut st = OxsStats::default();
    for e in &x.entries {
        match e {
            OxsEntry::Duration { sec, nsec } => st.duration = Some((*sec, *nsec)),
            OxsEntry::IdleTime { sec, .. } => st.idle_age = Some(*sec),
            OxsEntry::FlowCount(n) => st.flow_count = Some(*n),
            OxsEntry::PacketCount(n) => st.packet_count = Some(*n),
            OxsEntry::ByteCount(n) => st.byte_count = Some(*n),
            OxsEntry::Other { .. } => {}
        }
    }
    st
}

/// Decodes one codec flow-stats entry (`ofputil_decode_flow_stats_reply`).
pub fn decode_flow_stats(fs: &FlowStats, version: u8) -> Result<FlowEntry, String> {
    let (match_, _) = match &fs.match_ {
        MatchRepr::Of10(m) => of10_to_flowmatch(m)?,
        MatchRepr::Nxm(m) | MatchRepr::Oxm(m) => FlowMatch::from_codec(m)?,
    };
    let nx = matches!(fs.match_, MatchRepr::Nxm(_));
    let mut e = FlowEntry {
        table_id: fs.table_id,
        duration_sec: fs.duration_sec,
        duration_nsec: fs.duration_nsec,
        priority: fs.priority,
        idle_timeout: fs.idle_timeout,
        hard_timeout: fs.hard_timeout,
        flags: if version >= 4 && !nx { fs.flags } else { 0 },
        importance: if version >= 5 && !nx {
            fs.importance
        } else {
            0
        },
        idle_age: None,
        hard_age: None,
        cookie: fs.cookie,
        packet_count: Some(fs.packet_count),
        byte_count: Some(fs.byte_count),
        match_,
        actions: decode_instructions(&fs.instructions, version)?,
    };
    if nx {
        if fs.idle_age != 0 {
            e.idle_age = Some(fs.idle_age as u32 - 1);
        }
        if fs.hard_age != 0 {
            e.hard_age = Some(fs.hard_age as u32 - 1);
        }
    }
    if version >= 6 && !nx && !matches!(fs.match_, MatchRepr::Of10(_)) {
        let st = oxs_stats(&fs.oxs_stats);
        let (s, ns) = st.duration.unwrap_or((u32::MAX, u32::MAX));
        e.duration_sec = s;
        e.duration_nsec = ns;
        e.packet_count = st.packet_count;
        e.byte_count = st.byte_count;
        e.idle_age = st.idle_age;
    }
    Ok(e)
}

/// OpenFlow 1.0 match to a flow match (`ofputil_match_from_ofp10_match`, via the codec).
pub fn of10_to_flowmatch(m: &Of10Match) -> Result<(FlowMatch, Option<(u64, u64)>), String> {
    FlowMatch::from_codec(&m.to_match())
}

/// `ofp_print_duration`.
pub fn format_duration(sec: u32, nsec: u32) -> String {
    let mut s = sec.to_string();
    if nsec > 0 {
        let msec = nsec / 1_000_000;
        if msec * 1_000_000 == nsec {
            s.push_str(&format!(".{msec:03}"));
        } else {
            let mut f = format!(".{nsec:09}");
            while f.ends_with('0') {
                f.pop();
            }
            s.push_str(&f);
        }
    }
    s
}

/// `ofputil_flow_mod_flags_format`.
pub fn format_flow_flags(f: u16) -> String {
    let mut s = String::new();
    for (bit, name) in [
        (flags::SEND_FLOW_REM, "send_flow_rem "),
        (flags::CHECK_OVERLAP, "check_overlap "),
        (flags::RESET_COUNTS, "reset_counts "),
        (flags::NO_PKT_COUNTS, "no_packet_counts "),
        (flags::NO_BYT_COUNTS, "no_byte_counts "),
    ] {
        if f & bit != 0 {
            s.push_str(name);
        }
    }
    s
}

/// `ofputil_flow_stats_format`: one `dump-flows` line (without the leading space).
pub fn format_flow_entry(e: &FlowEntry, map: Option<&PortMap>, show_stats: bool) -> String {
    let mut s = String::new();
    if show_stats || e.cookie != 0 {
        s.push_str(&format!("cookie=0x{:x}, ", e.cookie));
    }
    if show_stats {
        s.push_str(&format!(
            "duration={}s, ",
            format_duration(e.duration_sec, e.duration_nsec)
        ));
    }
    if show_stats || e.table_id != 0 {
        s.push_str(&format!("table={}, ", e.table_id));
    }
    if show_stats {
        let stat = |v: Option<u64>| v.map(|x| x.to_string()).unwrap_or_else(|| "?".into());
        s.push_str(&format!("n_packets={}, ", stat(e.packet_count)));
        s.push_str(&format!("n_bytes={}, ", stat(e.byte_count)));
    }
    if e.idle_timeout != 0 {
        s.push_str(&format!("idle_timeout={}, ", e.idle_timeout));
    }
    if e.hard_timeout != 0 {
        s.push_str(&format!("hard_timeout={}, ", e.hard_timeout));
    }
    s.push_str(&format_flow_flags(e.flags));
    if e.importance != 0 {
        s.push_str(&format!("importance={}, ", e.importance));
    }
    if show_stats {
        if let Some(a) = e.idle_age {
            s.push_str(&format!("idle_age={a}, "));
        }
        if let Some(a) = e.hard_age {
            if a != e.duration_sec {
                s.push_str(&format!("hard_age={a}, "));
            }
        }
    }
    let m = e.match_.format(map, Some(e.priority));
    if !m.is_empty() {
        s.push_str(&m);
        s.push(' ');
    }
    s.push_str("actions=");
    s.push_str(&format_actions(&e.actions, map));
    s
}

impl FlowSpec {
    /// The flow as a switch would report it once installed (no statistics).
    pub fn to_entry(&self) -> FlowEntry {
        FlowEntry {
            table_id: if self.table_id == 255 {
                0
            } else {
                self.table_id
            },
            duration_sec: 0,
            duration_nsec: 0,
            priority: self.priority,
            idle_timeout: self.idle_timeout,
            hard_timeout: self.hard_timeout,
            flags: self.flags,
            importance: self.importance,
            idle_age: None,
            hard_age: None,
            cookie: if self.new_cookie == u64::MAX {
                0
            } else {
                self.new_cookie
            },
            packet_count: None,
            byte_count: None,
            match_: self.match_.clone(),
            actions: self.actions.clone(),
        }
    }

    /// The flow as `dump-flows --no-stats` prints it once installed.
    pub fn to_dump_line(&self, map: Option<&PortMap>) -> String {
        format_flow_entry(&self.to_entry(), map, false)
    }
}

/// `cookie=0x...` in flow-mod printing (`ofputil_flow_mod_format`).
pub fn cookie_text(c: u64) -> String {
    c_hex(c as u128)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_print() {
        let f = parse_flow(
            "table=8, priority=100,metadata=0x2,vlan_tci=0x1000/0x1000 actions=drop",
            ParseFor::Mod(Command::Add),
            None,
        )
        .unwrap();
        assert_eq!(f.table_id, 8);
        assert_eq!(
            f.match_.format(None, Some(f.priority)),
            "priority=100,metadata=0x2,vlan_tci=0x1000/0x1000"
        );
        assert!(f.actions.is_empty());
        let e = parse_flow("foo=1 actions=drop", ParseFor::Mod(Command::Add), None);
        assert_eq!(e.unwrap_err(), "unknown keyword foo");
        let e = parse_flow(
            "ip,nw_src=1.2.3.x actions=drop",
            ParseFor::Mod(Command::Add),
            None,
        );
        assert_eq!(e.unwrap_err(), "1.2.3.x: invalid IP address");
    }

    #[test]
    fn usable_protocols_like_ovs() {
        let u = |s: &str| {
            parse_flow(s, ParseFor::Mod(Command::Add), None)
                .unwrap()
                .usable
        };
        assert_eq!(u("priority=0 actions=drop"), proto::ANY);
        assert_eq!(u("table=1,actions=drop"), proto::TID);
        assert_eq!(u("reg0=1,actions=drop"), proto::NXM_OXM_ANY);
        assert_eq!(u("actions=set_field:0x1->reg13") & proto::OF10_STD_ANY, 0);
    }
}
