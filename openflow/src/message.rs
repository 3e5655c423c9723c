//! Messages: header, the [`Message`] enum, and version-aware decode/encode.

use crate::action::{
    emit_actions, emit_instructions, emit_prop, parse_actions, parse_instructions, parse_props,
    port_from_of10, port_to_of10, Action, Instruction,
};
use crate::buf::{pad8, Reader, Writer};
use crate::error::{fail, Error, ErrorCode, OfpErr, Result};
use crate::multipart::{MultipartReply, MultipartRequest};
use crate::oxm::{emit_ofp_match, parse_nx_match, parse_ofp_match, Match, Of10Match};
use crate::stats::OxsStats;
use crate::types::{
    actions_to_instructions, emit_bands, emit_buckets, instructions_to_actions, parse_bands,
    parse_buckets, Bucket, MatchRepr, MeterBand, Port,
};
use crate::{NX_VENDOR_ID, ONF_VENDOR_ID};

/// OpenFlow wire versions.
pub mod version {
    pub const OF10: u8 = 1;
    pub const OF11: u8 = 2;
    pub const OF12: u8 = 3;
    pub const OF13: u8 = 4;
    pub const OF14: u8 = 5;
    pub const OF15: u8 = 6;
}

/// Versions this codec decodes beyond HELLO/ERROR/ECHO (1.1 and 1.2 are not spoken by OVN or
/// needed by ovs-ofctl against us; they are refused with OFPBRC_BAD_VERSION).
pub fn version_supported(v: u8) -> bool {
    matches!(v, 1 | 4 | 5 | 6)
}

/// `ofp_header`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Header {
    pub version: u8,
    pub msg_type: u8,
    pub length: u16,
    pub xid: u32,
}

impl Header {
    pub const LEN: usize = 8;
    /// Parses the 8-byte header from the start of `b` (no length validation).
    pub fn parse(b: &[u8]) -> Option<Header> {
        let h = b.get(..8)?;
        Some(Header {
            version: h[0],
            msg_type: h[1],
            length: u16::from_be_bytes([h[2], h[3]]),
            xid: u32::from_be_bytes([h[4], h[5], h[6], h[7]]),
        })
    }
}

/// HELLO element.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum HelloElement {
    /// OFPHET_VERSIONBITMAP: bit n of word i set = version 32*i+n supported.
    VersionBitmap(Vec<u32>),
    Unknown {
        elem_type: u16,
        data: Vec<u8>,
    },
}

/// Returns the highest version present in both a HELLO's bitmap (or its header version when
/// there is none) and `ours` (a bitmap of our versions).
pub fn negotiate(hdr_version: u8, elements: &[HelloElement], ours: u32) -> Option<u8> {
    let theirs = elements
        .iter()
        .find_map(|e| match e {
            HelloElement::VersionBitmap(b) => b.first().copied(),
            _ => None,
        })
        .unwrap_or_else(|| {
            if hdr_version < 32 {
                (2u32 << hdr_version) - 1
            } else {
                u32::MAX
            }
        });
    let common = theirs & ours;
    if common == 0 {
        None
    } else {
        Some(31 - common.leading_zeros() as u8)
    }
}

/// `ofp_switch_features`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct SwitchFeatures {
    pub datapath_id: u64,
    pub n_buffers: u32,
    pub n_tables: u8,
    pub auxiliary_id: u8,
    pub capabilities: u32,
    /// OF1.0 supported actions bitmap / 1.1+ reserved.
    pub actions: u32,
    /// Ports (OpenFlow 1.0 only in OVS's encoding; 1.3+ uses PORT_DESC).
    pub ports: Vec<Port>,
}

/// `ofp_switch_config` (GET_CONFIG_REPLY / SET_CONFIG).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct SwitchConfig {
    pub flags: u16,
    pub miss_send_len: u16,
}

/// FLOW_MOD commands.
pub mod flow_mod_command {
    pub const ADD: u8 = 0;
    pub const MODIFY: u8 = 1;
    pub const MODIFY_STRICT: u8 = 2;
    pub const DELETE: u8 = 3;
    pub const DELETE_STRICT: u8 = 4;
}

/// FLOW_MOD flags (OFPFF_*).
pub mod flow_mod_flags {
    pub const SEND_FLOW_REM: u16 = 1 << 0;
    pub const CHECK_OVERLAP: u16 = 1 << 1;
    /// OF1.0 EMERG.
    pub const EMERG: u16 = 1 << 2;
    pub const RESET_COUNTS: u16 = 1 << 2;
    pub const NO_PKT_COUNTS: u16 = 1 << 3;
    pub const NO_BYT_COUNTS: u16 = 1 << 4;
}

/// FLOW_MOD (OFPT_FLOW_MOD 1.0 / 1.1+, or NXT_FLOW_MOD when `match_` is NXM).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FlowMod {
    pub cookie: u64,
    /// 1.1+ only (NXM/1.0: cookie masks come from other messages).
    pub cookie_mask: u64,
    /// 1.1+; in 1.0/NXM forms the high byte of `command` (NXT_FLOW_MOD_TABLE_ID).
    pub table_id: u8,
    pub command: u8,
    pub idle_timeout: u16,
    pub hard_timeout: u16,
    pub priority: u16,
    pub buffer_id: u32,
    /// 32-bit port space (1.0/NXM converted).
    pub out_port: u32,
    pub out_group: u32,
    pub flags: u16,
    /// OpenFlow 1.4+.
    pub importance: u16,
    pub match_: MatchRepr,
    /// 1.0/NXM action lists appear as one ApplyActions.
    pub instructions: Vec<Instruction>,
}

/// Packet-in (OFPT_PACKET_IN any version, or NXT_PACKET_IN when the match is NXM).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PacketIn {
    pub buffer_id: u32,
    pub total_len: u16,
    pub reason: u8,
    pub table_id: u8,
    pub cookie: u64,
    /// OF1.0: in_port in `Of10`-style form is `in_port` here with `match_ == None`.
    pub in_port: u16,
    pub match_: Option<MatchRepr>,
    pub data: Vec<u8>,
}

/// NXT_PACKET_IN2 / NXT_RESUME property (NXPINT_*), in wire order.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum PacketIn2Prop {
    Packet(Vec<u8>),
    FullLen(u32),
    BufferId(u32),
    TableId(u8),
    Cookie(u64),
    Reason(u8),
    /// Pipeline fields (registers, metadata, in_port...) as OXM/NXM TLVs.
    Metadata(Match),
    Userdata(Vec<u8>),
    /// The continuation (NXCPT_* nested properties), opaque to the controller; kept verbatim
    /// including its 4 alignment bytes.
    Continuation(Vec<u8>),
    Unknown {
        prop_type: u16,
        value: Vec<u8>,
    },
}

/// NXT_PACKET_IN2 / NXT_RESUME body.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct PacketIn2 {
    pub props: Vec<PacketIn2Prop>,
}

impl PacketIn2 {
    pub fn packet(&self) -> Option<&[u8]> {
        self.props.iter().find_map(|p| {
            if let PacketIn2Prop::Packet(v) = p {
                Some(&v[..])
            } else {
                None
            }
        })
    }
    pub fn userdata(&self) -> Option<&[u8]> {
        self.props.iter().find_map(|p| {
            if let PacketIn2Prop::Userdata(v) = p {
                Some(&v[..])
            } else {
                None
            }
        })
    }
    pub fn metadata(&self) -> Option<&Match> {
        self.props.iter().find_map(|p| {
            if let PacketIn2Prop::Metadata(m) = p {
                Some(m)
            } else {
                None
            }
        })
    }
    pub fn continuation(&self) -> Option<&[u8]> {
        self.props.iter().find_map(|p| {
            if let PacketIn2Prop::Continuation(v) = p {
                Some(&v[..])
            } else {
                None
            }
        })
    }
    pub fn cookie(&self) -> Option<u64> {
        self.props.iter().find_map(|p| {
            if let PacketIn2Prop::Cookie(v) = p {
                Some(*v)
            } else {
                None
            }
        })
    }
    pub fn table_id(&self) -> Option<u8> {
        self.props.iter().find_map(|p| {
            if let PacketIn2Prop::TableId(v) = p {
                Some(*v)
            } else {
                None
            }
        })
    }
    pub fn reason(&self) -> Option<u8> {
        self.props.iter().find_map(|p| {
            if let PacketIn2Prop::Reason(v) = p {
                Some(*v)
            } else {
                None
            }
        })
    }
}

/// PACKET_OUT.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PacketOut {
    pub buffer_id: u32,
    /// 1.0-1.4 in_port (32-bit space); in 1.5 it is inside `match_`.
    pub in_port: u32,
    /// OpenFlow 1.5 packet metadata match.
    pub match_: Option<Match>,
    pub actions: Vec<Action>,
    pub data: Vec<u8>,
}

/// FLOW_REMOVED (OFPT any version, or NXT_FLOW_REMOVED when the match is NXM).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FlowRemoved {
    pub cookie: u64,
    pub priority: u16,
    pub reason: u8,
    pub table_id: u8,
    pub duration_sec: u32,
    pub duration_nsec: u32,
    pub idle_timeout: u16,
    pub hard_timeout: u16,
    pub packet_count: u64,
    pub byte_count: u64,
    pub match_: MatchRepr,
    /// OpenFlow 1.5 OXS statistics (duration, idle time, packet and byte counts there;
    /// the fields above are then unused); empty and not encoded before 1.5.
    pub oxs_stats: OxsStats,
}

/// PORT_MOD.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PortMod {
    pub port_no: u32,
    pub hw_addr: [u8; 6],
    pub config: u32,
    pub mask: u32,
    /// 1.0-1.3 advertise (1.4+: in `props`).
    pub advertise: u32,
    /// OpenFlow 1.4+ properties (type, value).
    pub props: Vec<(u16, Vec<u8>)>,
}

/// GROUP_MOD (and group-desc entries).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct GroupMod {
    /// OFPGC_ADD 0, MODIFY 1, DELETE 2, (1.5) INSERT_BUCKET 3, REMOVE_BUCKET 5.
    pub command: u16,
    /// OFPGT_ALL 0, SELECT 1, INDIRECT 2, FF 3.
    pub group_type: u8,
    pub group_id: u32,
    /// OpenFlow 1.5 command_bucket_id.
    pub command_bucket_id: u32,
    pub buckets: Vec<Bucket>,
    /// OpenFlow 1.5 group properties (NTR selection method etc.), verbatim.
    pub props: Vec<u8>,
}

impl GroupMod {
    /// The OVS selection method ("hash", "dp_hash") and parameter from the NTR property
    /// (experimenter property, Netronome vendor ID 0x154d as OVS uses, exp_type 1).
    pub fn selection_method(&self) -> Option<(String, u64)> {
        let mut r = Reader::new(&self.props, OfpErr::OFPBPC_BAD_LEN);
        for (t, v) in parse_props(&mut r).ok()? {
            if t != 0xffff || v.len() < 32 {
                continue;
            }
            let exp = u32::from_be_bytes(v[0..4].try_into().ok()?);
            let exp_type = u32::from_be_bytes(v[4..8].try_into().ok()?);
            if exp == NTR_VENDOR_ID && exp_type == 1 {
                // pad[4], selection_method[16], selection_method_param u64, fields...
                let name = &v[12..28];
                let end = name.iter().position(|&b| b == 0).unwrap_or(16);
                let param = u64::from_be_bytes(v[28..36.min(v.len())].try_into().ok()?);
                return Some((String::from_utf8_lossy(&name[..end]).into_owned(), param));
            }
        }
        None
    }
}

/// METER_MOD.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MeterMod {
    /// OFPMC_ADD 0, MODIFY 1, DELETE 2.
    pub command: u16,
    /// OFPMF_KBPS 1, PKTPS 2, BURST 4, STATS 8.
    pub flags: u16,
    /// 0xffffffff = all.
    pub meter_id: u32,
    pub bands: Vec<MeterBand>,
}

/// ROLE_REQUEST/REPLY (OpenFlow 1.2+ form, or NXT_ROLE_* when `nx`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Role {
    pub role: u32,
    pub generation_id: u64,
    pub nx: bool,
}

/// BUNDLE_CONTROL.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct BundleControl {
    pub bundle_id: u32,
    /// OPEN_REQUEST 0, OPEN_REPLY 1, CLOSE_REQUEST 2, CLOSE_REPLY 3, COMMIT_REQUEST 4,
    /// COMMIT_REPLY 5, DISCARD_REQUEST 6, DISCARD_REPLY 7.
    pub ctrl_type: u16,
    /// OFPBF_ATOMIC 1, OFPBF_ORDERED 2.
    pub flags: u16,
    pub props: Vec<u8>,
}

/// BUNDLE_ADD_MESSAGE: the inner message is decoded too.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BundleAdd {
    pub bundle_id: u32,
    pub flags: u16,
    pub header: Header,
    pub message: Box<Message>,
    /// Bytes after the inner message (properties), verbatim.
    pub props: Vec<u8>,
}

/// One NXT_TLV_TABLE_MOD / REPLY mapping.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TlvMap {
    pub option_class: u16,
    pub option_type: u8,
    pub option_len: u8,
    /// tun_metadata index.
    pub index: u16,
}

/// An OFPT_ERROR.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ErrorMsg {
    pub code: ErrorCode,
    /// Usually the offending message (or its first 64 bytes).
    pub data: Vec<u8>,
}

impl ErrorMsg {
    /// Builds the ERROR reply for `err` in `version`, echoing `request` as OVS does (the whole
    /// request — ovs-vswitchd echoed 104 bytes of an OF1.0 NXT_FLOW_MOD in the captures —
    /// capped so the reply fits the 64 KiB message limit).
    pub fn for_request(err: OfpErr, version: u8, request: &[u8]) -> ErrorMsg {
        let cap = 0xffff - 24;
        ErrorMsg {
            code: err.code(version),
            data: request[..request.len().min(cap)].to_vec(),
        }
    }
}

/// Nicira vendor messages (`NXT_*`) and ONF experimenter messages without a dedicated variant.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Experimenter {
    /// NXT_SET_FLOW_FORMAT: 0 = OpenFlow 1.0, 2 = NXM.
    SetFlowFormat(u32),
    /// NXT_FLOW_MOD_TABLE_ID.
    FlowModTableId(bool),
    /// NXT_SET_PACKET_IN_FORMAT: 0 standard, 1 nxt_packet_in, 2 nxt_packet_in2.
    SetPacketInFormat(u32),
    /// NXT_SET_CONTROLLER_ID.
    SetControllerId(u16),
    /// NXT_TLV_TABLE_MOD: command (0 add, 1 delete, 2 clear) and maps.
    TlvTableMod {
        command: u16,
        maps: Vec<TlvMap>,
    },
    TlvTableRequest,
    TlvTableReply {
        max_option_space: u32,
        max_fields: u16,
        maps: Vec<TlvMap>,
    },
    /// NXT_CT_FLUSH_ZONE.
    CtFlushZone(u16),
    /// NXT_CT_FLUSH: ip_proto and the zone/tuple properties verbatim.
    CtFlush {
        ip_proto: u8,
        props: Vec<u8>,
    },
    /// NXT_FLOW_AGE.
    FlowAge,
    /// NXT_FLOW_MONITOR_CANCEL (or ONFT 1870 in 1.3).
    FlowMonitorCancel(u32),
    FlowMonitorPaused,
    FlowMonitorResumed,
    /// NXT_SET_ASYNC_CONFIG (masks verbatim).
    SetAsyncConfig(Vec<u8>),
    /// Any other well-formed experimenter message: ID, subtype, body after the subtype.
    Other {
        experimenter: u32,
        exp_type: u32,
        body: Vec<u8>,
    },
}

/// A decoded OpenFlow message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    Hello(Vec<HelloElement>),
    Error(ErrorMsg),
    EchoRequest(Vec<u8>),
    EchoReply(Vec<u8>),
    FeaturesRequest,
    FeaturesReply(SwitchFeatures),
    GetConfigRequest,
    GetConfigReply(SwitchConfig),
    SetConfig(SwitchConfig),
    PacketIn(PacketIn),
    /// NXT_PACKET_IN2.
    PacketIn2(PacketIn2),
    /// NXT_RESUME (same properties as NXT_PACKET_IN2).
    Resume(PacketIn2),
    FlowRemoved(FlowRemoved),
    PortStatus {
        reason: u8,
        port: Port,
    },
    PacketOut(PacketOut),
    FlowMod(FlowMod),
    GroupMod(GroupMod),
    PortMod(PortMod),
    /// TABLE_MOD: table, config, 1.4+ properties verbatim.
    TableMod {
        table_id: u8,
        config: u32,
        props: Vec<u8>,
    },
    MultipartRequest(MultipartRequest),
    MultipartReply(MultipartReply),
    BarrierRequest,
    BarrierReply,
    RoleRequest(Role),
    RoleReply(Role),
    GetAsyncRequest,
    /// GET_ASYNC_REPLY / SET_ASYNC bodies verbatim.
    GetAsyncReply(Vec<u8>),
    SetAsync(Vec<u8>),
    MeterMod(MeterMod),
    BundleControl(BundleControl),
    BundleAdd(BundleAdd),
    Experimenter(Experimenter),
    /// Well-formed message of a type this codec does not model (role status, table status,
    /// queue config...): type and body after the header.
    Unknown {
        msg_type: u8,
        body: Vec<u8>,
    },
}

const BRC: OfpErr = OfpErr::OFPBRC_BAD_LEN;

/// Decodes exactly one complete message (`bytes.len()` must equal the header's length).
pub fn decode(bytes: &[u8]) -> Result<(Header, Message)> {
    let h = match Header::parse(bytes) {
        Some(h) => h,
        None => return fail(BRC, "ofp_header"),
    };
    if h.length as usize != bytes.len() || (h.length as usize) < Header::LEN {
        return fail(BRC, "ofp_header length");
    }
    let mut r = Reader::new(&bytes[Header::LEN..], BRC);
    let m = decode_body(&h, &mut r, 0)?;
    Ok((h, m))
}

fn decode_body(h: &Header, r: &mut Reader, depth: u32) -> Result<Message> {
    let v = h.version;
    // HELLO, ERROR and ECHO have the same form in every version.
    match h.msg_type {
        0 => return decode_hello(r),
        1 => return decode_error(r),
        2 => return Ok(Message::EchoRequest(r.take_rest().to_vec())),
        3 => return Ok(Message::EchoReply(r.take_rest().to_vec())),
        _ => {}
    }
    if !version_supported(v) {
        return fail(OfpErr::OFPBRC_BAD_VERSION, "version");
    }
    let empty = |r: &Reader, m: Message| {
        if r.is_empty() {
            Ok(m)
        } else {
            fail(BRC, "non-empty body")
        }
    };
    match (h.msg_type, v) {
        (4, _) => decode_experimenter(h, r, depth),
        (5, _) => empty(r, Message::FeaturesRequest),
        (6, _) => {
            let mut f = SwitchFeatures {
                datapath_id: r.u64("datapath_id")?,
                n_buffers: r.u32("n_buffers")?,
                n_tables: r.u8("n_tables")?,
                auxiliary_id: r.u8("auxiliary_id")?,
                ..Default::default()
            };
            r.pad(2, "pad")?;
            f.capabilities = r.u32("capabilities")?;
            f.actions = r.u32("actions")?;
            if v == 1 {
                while !r.is_empty() {
                    f.ports.push(Port::parse(r, v)?);
                }
            }
            empty(r, Message::FeaturesReply(f))
        }
        (7, _) => empty(r, Message::GetConfigRequest),
        (8, _) | (9, _) => {
            let c = SwitchConfig {
                flags: r.u16("flags")?,
                miss_send_len: r.u16("miss_send_len")?,
            };
            empty(
                r,
                if h.msg_type == 8 {
                    Message::GetConfigReply(c)
                } else {
                    Message::SetConfig(c)
                },
            )
        }
        (10, _) => decode_packet_in(r, v),
        (11, _) => decode_flow_removed(r, v),
        (12, _) => {
            let reason = r.u8("reason")?;
            r.pad(7, "pad")?;
            let port = Port::parse(r, v)?;
            empty(r, Message::PortStatus { reason, port })
        }
        (13, _) => decode_packet_out(r, v),
        (14, _) => decode_flow_mod(r, v),
        (15, 1) => decode_port_mod(r, v),
        (15, _) => decode_group_mod(r, v).map(Message::GroupMod),
        (16, 1) => MultipartRequest::decode(r, v).map(Message::MultipartRequest),
        (16, _) => decode_port_mod(r, v),
        (17, 1) => MultipartReply::decode(r, v).map(Message::MultipartReply),
        (17, _) => {
            let table_id = r.u8("table")?;
            r.pad(3, "pad")?;
            let config = r.u32("config")?;
            Ok(Message::TableMod {
                table_id,
                config,
                props: r.take_rest().to_vec(),
            })
        }
        (18, 1) => empty(r, Message::BarrierRequest),
        (19, 1) => empty(r, Message::BarrierReply),
        (18, _) => MultipartRequest::decode(r, v).map(Message::MultipartRequest),
        (19, _) => MultipartReply::decode(r, v).map(Message::MultipartReply),
        (20, 1) | (21, 1) => Ok(Message::Unknown {
            msg_type: h.msg_type,
            body: r.take_rest().to_vec(),
        }),
        (20, _) => empty(r, Message::BarrierRequest),
        (21, _) => empty(r, Message::BarrierReply),
        (24, _) | (25, _) => {
            let role = Role {
                role: r.u32("role")?,
                generation_id: {
                    r.pad(4, "pad")?;
                    r.u64("generation_id")?
                },
                nx: false,
            };
            empty(
                r,
                if h.msg_type == 24 {
                    Message::RoleRequest(role)
                } else {
                    Message::RoleReply(role)
                },
            )
        }
        (26, _) => empty(r, Message::GetAsyncRequest),
        (27, _) => Ok(Message::GetAsyncReply(r.take_rest().to_vec())),
        (28, _) => Ok(Message::SetAsync(r.take_rest().to_vec())),
        (29, _) => {
            let command = r.u16("command")?;
            let flags = r.u16("flags")?;
            let meter_id = r.u32("meter_id")?;
            let bands = parse_bands(r)?;
            Ok(Message::MeterMod(MeterMod {
                command,
                flags,
                meter_id,
                bands,
            }))
        }
        (33, 5..) => decode_bundle_control(r).map(Message::BundleControl),
        (34, 5..) => decode_bundle_add(r, v, depth).map(Message::BundleAdd),
        (t, _) if t <= 35 => Ok(Message::Unknown {
            msg_type: t,
            body: r.take_rest().to_vec(),
        }),
        _ => fail(OfpErr::OFPBRC_BAD_TYPE, "message type"),
    }
}

fn decode_hello(r: &mut Reader) -> Result<Message> {
    let mut els = Vec::new();
    // OVS ignores trailing garbage shorter than an element header.
    while r.remaining() >= 4 {
        let t = r.u16("hello element")?;
        let len = r.u16("hello element len")? as usize;
        if len < 4 || pad8(len) - 4 > r.remaining() {
            if len >= 4 && len - 4 <= r.remaining() {
                // Unpadded last element.
            } else {
                return fail(BRC, "hello element length");
            }
        }
        let body = r.bytes(len - 4, "hello element")?;
        let pad = (pad8(len) - len).min(r.remaining());
        r.skip(pad, "hello pad")?;
        if t == 1 {
            els.push(HelloElement::VersionBitmap(
                body.chunks_exact(4)
                    .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]))
                    .collect(),
            ));
        } else {
            els.push(HelloElement::Unknown {
                elem_type: t,
                data: body.to_vec(),
            });
        }
    }
    Ok(Message::Hello(els))
}

fn decode_error(r: &mut Reader) -> Result<Message> {
    let t = r.u16("error type")?;
    let c = r.u16("error code")?;
    let code = if t == 0xffff {
        ErrorCode::Experimenter {
            exp_code: c,
            experimenter: r.u32("experimenter")?,
        }
    } else if t == 0xb0c2
        && c == 0
        && r.remaining() >= 8
        && r.peek_u16(0) == Some(0)
        && r.peek_u16(2) == Some(0x2320)
    {
        r.skip(4, "vendor")?;
        ErrorCode::NxVendor {
            err_type: r.u16("nx type")?,
            code: r.u16("nx code")?,
        }
    } else {
        ErrorCode::Standard {
            err_type: t,
            code: c,
        }
    };
    Ok(Message::Error(ErrorMsg {
        code,
        data: r.take_rest().to_vec(),
    }))
}

fn decode_experimenter(h: &Header, r: &mut Reader, depth: u32) -> Result<Message> {
    let exp = r.u32("experimenter")?;
    let sub = r.u32("subtype")?;
    let v = h.version;
    let empty = |r: &Reader, m: Message| {
        if r.is_empty() {
            Ok(m)
        } else {
            fail(BRC, "non-empty body")
        }
    };
    let x = |e: Experimenter| Message::Experimenter(e);
    if exp == ONF_VENDOR_ID {
        return match sub {
            2300 if v == 4 => decode_bundle_control(r).map(Message::BundleControl),
            2301 if v == 4 => decode_bundle_add(r, v, depth).map(Message::BundleAdd),
            1870 => Ok(x(Experimenter::FlowMonitorCancel(r.u32("id")?))),
            1871 => empty(r, x(Experimenter::FlowMonitorPaused)),
            1872 => empty(r, x(Experimenter::FlowMonitorResumed)),
            _ => Ok(x(Experimenter::Other {
                experimenter: exp,
                exp_type: sub,
                body: r.take_rest().to_vec(),
            })),
        };
    }
    if exp != NX_VENDOR_ID {
        return fail(OfpErr::OFPBRC_BAD_VENDOR, "experimenter");
    }
    match sub {
        10 | 11 => {
            let role = Role {
                role: r.u32("role")?,
                generation_id: 0,
                nx: true,
            };
            empty(
                r,
                if sub == 10 {
                    Message::RoleRequest(role)
                } else {
                    Message::RoleReply(role)
                },
            )
        }
        12 => {
            let f = r.u32("format")?;
            empty(r, x(Experimenter::SetFlowFormat(f)))
        }
        13 => decode_nx_flow_mod(r, v),
        14 => decode_nx_flow_removed(r, v),
        NXT_GROUP_MOD if v == 1 => decode_group_mod(r, v).map(Message::GroupMod),
        15 => {
            let set = r.u8("set")?;
            r.pad(7, "pad")?;
            empty(r, x(Experimenter::FlowModTableId(set != 0)))
        }
        16 => {
            let f = r.u32("format")?;
            empty(r, x(Experimenter::SetPacketInFormat(f)))
        }
        17 => decode_nx_packet_in(r, v),
        18 => empty(r, x(Experimenter::FlowAge)),
        19 => Ok(x(Experimenter::SetAsyncConfig(r.take_rest().to_vec()))),
        20 => {
            r.pad(6, "zero")?;
            {
                let f = r.u16("controller_id")?;
                empty(r, x(Experimenter::SetControllerId(f)))
            }
        }
        21 => {
            let f = r.u32("id")?;
            empty(r, x(Experimenter::FlowMonitorCancel(f)))
        }
        22 => empty(r, x(Experimenter::FlowMonitorPaused)),
        23 => empty(r, x(Experimenter::FlowMonitorResumed)),
        24 => {
            let command = r.u16("command")?;
            r.pad(6, "pad")?;
            Ok(x(Experimenter::TlvTableMod {
                command,
                maps: decode_tlv_maps(r)?,
            }))
        }
        25 => empty(r, x(Experimenter::TlvTableRequest)),
        26 => {
            let max_option_space = r.u32("max_option_space")?;
            let max_fields = r.u16("max_fields")?;
            r.pad(10, "reserved")?;
            Ok(x(Experimenter::TlvTableReply {
                max_option_space,
                max_fields,
                maps: decode_tlv_maps(r)?,
            }))
        }
        28 | 30 => {
            let p = decode_packet_in2(r, v)?;
            Ok(if sub == 30 {
                Message::PacketIn2(p)
            } else {
                Message::Resume(p)
            })
        }
        29 => {
            r.pad(6, "zero")?;
            {
                let f = r.u16("zone")?;
                empty(r, x(Experimenter::CtFlushZone(f)))
            }
        }
        32 => {
            let ip_proto = r.u8("ip_proto")?;
            r.pad(7, "pad")?;
            Ok(x(Experimenter::CtFlush {
                ip_proto,
                props: r.take_rest().to_vec(),
            }))
        }
        _ => Ok(x(Experimenter::Other {
            experimenter: exp,
            exp_type: sub,
            body: r.take_rest().to_vec(),
        })),
    }
}

fn decode_tlv_maps(r: &mut Reader) -> Result<Vec<TlvMap>> {
    let mut out = Vec::new();
    if r.remaining() & 7 != 0 {
        return fail(BRC, "tlv maps");
    }
    while !r.is_empty() {
        let m = TlvMap {
            option_class: r.u16("class")?,
            option_type: r.u8("type")?,
            option_len: r.u8("len")?,
            index: r.u16("index")?,
        };
        r.pad(2, "pad")?;
        out.push(m);
    }
    Ok(out)
}

fn decode_packet_in2(r: &mut Reader, _v: u8) -> Result<PacketIn2> {
    let mut p = PacketIn2::default();
    for (t, val) in parse_props(r)? {
        let mut vr = Reader::new(val, OfpErr::OFPBPC_BAD_LEN);
        let need = |n: usize| {
            if val.len() == n {
                Ok(())
            } else {
                fail(OfpErr::OFPBPC_BAD_LEN, "packet-in2 property")
            }
        };
        p.props.push(match t {
            0 => PacketIn2Prop::Packet(val.to_vec()),
            1 => {
                need(4)?;
                PacketIn2Prop::FullLen(vr.u32("full_len")?)
            }
            2 => {
                need(4)?;
                PacketIn2Prop::BufferId(vr.u32("buffer_id")?)
            }
            3 => {
                need(1)?;
                PacketIn2Prop::TableId(vr.u8("table")?)
            }
            4 => {
                // Cookie is 8 bytes after 4 alignment bytes? OVS puts it unaligned (len 12).
                need(12)?;
                vr.pad(4, "pad")?;
                PacketIn2Prop::Cookie(vr.u64("cookie")?)
            }
            5 => {
                need(1)?;
                PacketIn2Prop::Reason(vr.u8("reason")?)
            }
            6 => PacketIn2Prop::Metadata(Match::parse_tlvs(
                &mut vr.with_err(OfpErr::OFPBMC_BAD_LEN),
            )?),
            7 => PacketIn2Prop::Userdata(val.to_vec()),
            8 => PacketIn2Prop::Continuation(val.to_vec()),
            _ => PacketIn2Prop::Unknown {
                prop_type: t,
                value: val.to_vec(),
            },
        });
    }
    Ok(p)
}

fn emit_packet_in2(p: &PacketIn2, w: &mut Writer) {
    for prop in &p.props {
        match prop {
            PacketIn2Prop::Packet(v) => emit_prop(w, 0, v),
            PacketIn2Prop::FullLen(v) => emit_prop(w, 1, &v.to_be_bytes()),
            PacketIn2Prop::BufferId(v) => emit_prop(w, 2, &v.to_be_bytes()),
            PacketIn2Prop::TableId(v) => emit_prop(w, 3, &[*v]),
            PacketIn2Prop::Cookie(v) => {
                let mut b = vec![0u8; 4];
                b.extend_from_slice(&v.to_be_bytes());
                emit_prop(w, 4, &b)
            }
            PacketIn2Prop::Reason(v) => emit_prop(w, 5, &[*v]),
            PacketIn2Prop::Metadata(m) => {
                let mut b = Writer::new();
                m.emit_tlvs(&mut b);
                emit_prop(w, 6, &b.buf)
            }
            PacketIn2Prop::Userdata(v) => emit_prop(w, 7, v),
            PacketIn2Prop::Continuation(v) => emit_prop(w, 8, v),
            PacketIn2Prop::Unknown { prop_type, value } => emit_prop(w, *prop_type, value),
        }
    }
}

fn decode_packet_in(r: &mut Reader, v: u8) -> Result<Message> {
    let buffer_id = r.u32("buffer_id")?;
    let total_len = r.u16("total_len")?;
    if v == 1 {
        let in_port = r.u16("in_port")?;
        let reason = r.u8("reason")?;
        r.pad(1, "pad")?;
        return Ok(Message::PacketIn(PacketIn {
            buffer_id,
            total_len,
            reason,
            table_id: 0,
            cookie: 0,
            in_port,
            match_: None,
            data: r.take_rest().to_vec(),
        }));
    }
    let reason = r.u8("reason")?;
    let table_id = r.u8("table_id")?;
    let cookie = r.u64("cookie")?;
    let m = parse_ofp_match(r)?;
    r.pad(2, "pad")?;
    Ok(Message::PacketIn(PacketIn {
        buffer_id,
        total_len,
        reason,
        table_id,
        cookie,
        in_port: 0,
        match_: Some(MatchRepr::Oxm(m)),
        data: r.take_rest().to_vec(),
    }))
}

fn decode_nx_packet_in(r: &mut Reader, _v: u8) -> Result<Message> {
    let buffer_id = r.u32("buffer_id")?;
    let total_len = r.u16("total_len")?;
    let reason = r.u8("reason")?;
    let table_id = r.u8("table_id")?;
    let cookie = r.u64("cookie")?;
    let match_len = r.u16("match_len")? as usize;
    r.pad(6, "pad")?;
    let m = parse_nx_match(r, match_len)?;
    r.pad(2, "pad")?;
    Ok(Message::PacketIn(PacketIn {
        buffer_id,
        total_len,
        reason,
        table_id,
        cookie,
        in_port: 0,
        match_: Some(MatchRepr::Nxm(m)),
        data: r.take_rest().to_vec(),
    }))
}

fn decode_packet_out(r: &mut Reader, v: u8) -> Result<Message> {
    let buffer_id = r.u32("buffer_id")?;
    let (in_port, match_, alen) = if v == 1 {
        let p = port_from_of10(r.u16("in_port")?);
        (p, None, r.u16("actions_len")? as usize)
    } else if v < 6 {
        let p = r.u32("in_port")?;
        let a = r.u16("actions_len")? as usize;
        r.pad(6, "pad")?;
        (p, None, a)
    } else {
        let a = r.u16("actions_len")? as usize;
        r.pad(2, "pad")?;
        let m = parse_ofp_match(r)?;
        (0, Some(m), a)
    };
    if alen > r.remaining() {
        return fail(BRC, "packet_out actions_len");
    }
    let mut ar = r.sub(alen, "actions")?;
    let actions = parse_actions(&mut ar, v)?;
    Ok(Message::PacketOut(PacketOut {
        buffer_id,
        in_port,
        match_,
        actions,
        data: r.take_rest().to_vec(),
    }))
}

fn decode_flow_mod(r: &mut Reader, v: u8) -> Result<Message> {
    if v == 1 {
        let m = Of10Match::parse(r)?;
        let cookie = r.u64("cookie")?;
        let cmd = r.u16("command")?;
        let fm = FlowMod {
            cookie,
            cookie_mask: 0,
            table_id: (cmd >> 8) as u8,
            command: cmd as u8,
            idle_timeout: r.u16("idle")?,
            hard_timeout: r.u16("hard")?,
            priority: r.u16("priority")?,
            buffer_id: r.u32("buffer_id")?,
            out_port: port_from_of10(r.u16("out_port")?),
            out_group: 0xffff_ffff,
            flags: r.u16("flags")?,
            importance: 0,
            match_: MatchRepr::Of10(m),
            instructions: actions_to_instructions(parse_actions(r, v)?),
        };
        return check_flow_mod(fm);
    }
    let cookie = r.u64("cookie")?;
    let cookie_mask = r.u64("cookie_mask")?;
    let table_id = r.u8("table_id")?;
    let command = r.u8("command")?;
    let idle_timeout = r.u16("idle")?;
    let hard_timeout = r.u16("hard")?;
    let priority = r.u16("priority")?;
    let buffer_id = r.u32("buffer_id")?;
    let out_port = r.u32("out_port")?;
    let out_group = r.u32("out_group")?;
    let flags = r.u16("flags")?;
    let importance = r.u16("importance")?;
    let importance = if v >= 5 { importance } else { 0 };
    let m = parse_ofp_match(r)?;
    let instructions = parse_instructions(r, v)?;
    check_flow_mod(FlowMod {
        cookie,
        cookie_mask,
        table_id,
        command,
        idle_timeout,
        hard_timeout,
        priority,
        buffer_id,
        out_port,
        out_group,
        flags,
        importance,
        match_: MatchRepr::Oxm(m),
        instructions,
    })
}

fn check_flow_mod(fm: FlowMod) -> Result<Message> {
    if fm.command > 4 {
        return fail(OfpErr::OFPFMFC_BAD_COMMAND, "flow_mod command");
    }
    Ok(Message::FlowMod(fm))
}

fn decode_nx_flow_mod(r: &mut Reader, v: u8) -> Result<Message> {
    let cookie = r.u64("cookie")?;
    let cmd = r.u16("command")?;
    let idle_timeout = r.u16("idle")?;
    let hard_timeout = r.u16("hard")?;
    let priority = r.u16("priority")?;
    let buffer_id = r.u32("buffer_id")?;
    let out_port = port_from_of10(r.u16("out_port")?);
    let flags = r.u16("flags")?;
    let match_len = r.u16("match_len")? as usize;
    r.pad(6, "pad")?;
    let m = parse_nx_match(r, match_len)?;
    let actions = parse_actions(r, v)?;
    check_flow_mod(FlowMod {
        cookie,
        cookie_mask: 0,
        table_id: (cmd >> 8) as u8,
        command: cmd as u8,
        idle_timeout,
        hard_timeout,
        priority,
        buffer_id,
        out_port,
        out_group: 0xffff_ffff,
        flags,
        importance: 0,
        match_: MatchRepr::Nxm(m),
        instructions: actions_to_instructions(actions),
    })
}

fn decode_flow_removed(r: &mut Reader, v: u8) -> Result<Message> {
    let mut fr = FlowRemoved {
        cookie: 0,
        priority: 0,
        reason: 0,
        table_id: 0,
        duration_sec: 0,
        duration_nsec: 0,
        idle_timeout: 0,
        hard_timeout: 0,
        packet_count: 0,
        byte_count: 0,
        match_: MatchRepr::Oxm(Match::default()),
        oxs_stats: OxsStats::default(),
    };
    if v == 1 {
        fr.match_ = MatchRepr::Of10(Of10Match::parse(r)?);
        fr.cookie = r.u64("cookie")?;
        fr.priority = r.u16("priority")?;
        fr.reason = r.u8("reason")?;
        r.pad(1, "pad")?;
        fr.duration_sec = r.u32("duration_sec")?;
        fr.duration_nsec = r.u32("duration_nsec")?;
        fr.idle_timeout = r.u16("idle")?;
        r.pad(2, "pad")?;
        fr.packet_count = r.u64("packets")?;
        fr.byte_count = r.u64("bytes")?;
    } else if v < 6 {
        fr.cookie = r.u64("cookie")?;
        fr.priority = r.u16("priority")?;
        fr.reason = r.u8("reason")?;
        fr.table_id = r.u8("table_id")?;
        fr.duration_sec = r.u32("duration_sec")?;
        fr.duration_nsec = r.u32("duration_nsec")?;
        fr.idle_timeout = r.u16("idle")?;
        fr.hard_timeout = r.u16("hard")?;
        fr.packet_count = r.u64("packets")?;
        fr.byte_count = r.u64("bytes")?;
        fr.match_ = MatchRepr::Oxm(parse_ofp_match(r)?);
    } else {
        // ofp15_flow_removed: table_id, reason, priority, idle, hard, cookie.
        fr.table_id = r.u8("table_id")?;
        fr.reason = r.u8("reason")?;
        fr.priority = r.u16("priority")?;
        fr.idle_timeout = r.u16("idle")?;
        fr.hard_timeout = r.u16("hard")?;
        fr.cookie = r.u64("cookie")?;
        fr.match_ = MatchRepr::Oxm(parse_ofp_match(r)?);
        fr.oxs_stats = OxsStats::parse(r)?;
        if !r.is_empty() {
            return fail(BRC, "flow removed trailing bytes");
        }
    }
    Ok(Message::FlowRemoved(fr))
}

fn decode_nx_flow_removed(r: &mut Reader, _v: u8) -> Result<Message> {
    let cookie = r.u64("cookie")?;
    let priority = r.u16("priority")?;
    let reason = r.u8("reason")?;
    let table_id = r.u8("table_id")?;
    let duration_sec = r.u32("duration_sec")?;
    let duration_nsec = r.u32("duration_nsec")?;
    let idle_timeout = r.u16("idle")?;
    let match_len = r.u16("match_len")? as usize;
    let packet_count = r.u64("packets")?;
    let byte_count = r.u64("bytes")?;
    let m = parse_nx_match(r, match_len)?;
    Ok(Message::FlowRemoved(FlowRemoved {
        cookie,
        priority,
        reason,
        table_id,
        duration_sec,
        duration_nsec,
        idle_timeout,
        hard_timeout: 0,
        packet_count,
        byte_count,
        match_: MatchRepr::Nxm(m),
        oxs_stats: OxsStats::default(),
    }))
}

fn decode_port_mod(r: &mut Reader, v: u8) -> Result<Message> {
    let mut pm = PortMod {
        port_no: 0,
        hw_addr: [0; 6],
        config: 0,
        mask: 0,
        advertise: 0,
        props: vec![],
    };
    if v == 1 {
        pm.port_no = port_from_of10(r.u16("port_no")?);
        pm.hw_addr = r.array("hw_addr")?;
        pm.config = r.u32("config")?;
        pm.mask = r.u32("mask")?;
        pm.advertise = r.u32("advertise")?;
        r.pad(4, "pad")?;
    } else {
        pm.port_no = r.u32("port_no")?;
        r.pad(4, "pad")?;
        pm.hw_addr = r.array("hw_addr")?;
        r.pad(2, "pad")?;
        pm.config = r.u32("config")?;
        pm.mask = r.u32("mask")?;
        if v < 5 {
            pm.advertise = r.u32("advertise")?;
            r.pad(4, "pad")?;
        } else {
            pm.props = parse_props(r)?
                .into_iter()
                .map(|(t, v)| (t, v.to_vec()))
                .collect();
        }
    }
    if !r.is_empty() {
        return fail(BRC, "port_mod length");
    }
    Ok(Message::PortMod(pm))
}

pub(crate) fn decode_group_mod(r: &mut Reader, v: u8) -> Result<GroupMod> {
    let command = r.u16("command")?;
    let group_type = r.u8("type")?;
    r.pad(1, "pad")?;
    let group_id = r.u32("group_id")?;
    if !crate::types::group_layout_15(v) {
        let buckets = parse_buckets(r, v)?;
        return Ok(GroupMod {
            command,
            group_type,
            group_id,
            command_bucket_id: 0,
            buckets,
            props: vec![],
        });
    }
    let blen = r.u16("bucket_array_len")? as usize;
    r.pad(2, "pad")?;
    let command_bucket_id = r.u32("command_bucket_id")?;
    if blen > r.remaining() {
        return fail(OfpErr::OFPGMFC_BAD_BUCKET, "bucket_array_len");
    }
    let mut br = r.sub(blen, "buckets")?;
    let buckets = parse_buckets(&mut br, v)?;
    Ok(GroupMod {
        command,
        group_type,
        group_id,
        command_bucket_id,
        buckets,
        props: r.take_rest().to_vec(),
    })
}

pub(crate) fn emit_group_mod(g: &GroupMod, v: u8, w: &mut Writer) {
    w.u16(g.command);
    w.u8(g.group_type);
    w.u8(0);
    w.u32(g.group_id);
    if !crate::types::group_layout_15(v) {
        emit_buckets(&g.buckets, v, w);
    } else {
        let at = w.len();
        w.u16(0);
        w.zeros(2);
        w.u32(g.command_bucket_id);
        let bs = w.len();
        emit_buckets(&g.buckets, v, w);
        w.patch_len(at, bs);
        w.bytes(&g.props);
    }
}

fn decode_bundle_control(r: &mut Reader) -> Result<BundleControl> {
    Ok(BundleControl {
        bundle_id: r.u32("bundle_id")?,
        ctrl_type: r.u16("type")?,
        flags: r.u16("flags")?,
        props: r.take_rest().to_vec(),
    })
}

fn decode_bundle_add(r: &mut Reader, v: u8, depth: u32) -> Result<BundleAdd> {
    let bundle_id = r.u32("bundle_id")?;
    r.pad(2, "pad")?;
    let flags = r.u16("flags")?;
    let inner = r.rest();
    let ih = match Header::parse(inner) {
        Some(h) => h,
        None => return fail(OfpErr::OFPBFC_MSG_BAD_LEN, "bundled message"),
    };
    let ilen = ih.length as usize;
    if ilen < 8 || ilen > inner.len() || ih.version != v {
        return fail(OfpErr::OFPBFC_MSG_BAD_LEN, "bundled message length");
    }
    if depth > 0 {
        return fail(OfpErr::OFPBFC_MSG_UNSUP, "nested bundle");
    }
    let mut ir = Reader::new(&inner[8..ilen], BRC);
    let message = decode_body(&ih, &mut ir, depth + 1)?;
    r.skip(ilen, "bundled message")?;
    Ok(BundleAdd {
        bundle_id,
        flags,
        header: ih,
        message: Box::new(message),
        props: r.take_rest().to_vec(),
    })
}

/// Encodes `msg` as OpenFlow `version` with transaction ID `xid`.
pub fn encode(version: u8, xid: u32, msg: &Message) -> Vec<u8> {
    let mut w = Writer::new();
    w.u8(version);
    w.u8(0);
    w.u16(0);
    w.u32(xid);
    let t = emit_body(version, msg, &mut w);
    if let Some(b) = w.buf.get_mut(1) {
        *b = t;
    }
    let n = w.len().min(0xffff) as u16;
    w.patch_u16(2, n);
    w.buf
}

/// Nicira subtype of NXT_GROUP_MOD, the group mod of OpenFlow 1.0 (1.5 layout).
const NXT_GROUP_MOD: u32 = 31;

fn nx_hdr(w: &mut Writer, subtype: u32) -> u8 {
    w.u32(NX_VENDOR_ID);
    w.u32(subtype);
    4
}

fn emit_body(v: u8, msg: &Message, w: &mut Writer) -> u8 {
    let v10 = v == 1;
    match msg {
        Message::Hello(els) => {
            for e in els {
                let start = w.len();
                match e {
                    HelloElement::VersionBitmap(b) => {
                        w.u16(1);
                        w.u16(0);
                        for x in b {
                            w.u32(*x);
                        }
                    }
                    HelloElement::Unknown { elem_type, data } => {
                        w.u16(*elem_type);
                        w.u16(0);
                        w.bytes(data);
                    }
                }
                w.patch_len(start + 2, start);
                w.pad8_from(start);
            }
            0
        }
        Message::Error(e) => {
            match e.code {
                ErrorCode::Standard { err_type, code } => {
                    w.u16(err_type);
                    w.u16(code);
                }
                ErrorCode::Experimenter {
                    exp_code,
                    experimenter,
                } => {
                    w.u16(0xffff);
                    w.u16(exp_code);
                    w.u32(experimenter);
                }
                ErrorCode::NxVendor { err_type, code } => {
                    w.u16(0xb0c2);
                    w.u16(0);
                    w.u32(NX_VENDOR_ID);
                    w.u16(err_type);
                    w.u16(code);
                }
            }
            w.bytes(&e.data);
            1
        }
        Message::EchoRequest(d) => {
            w.bytes(d);
            2
        }
        Message::EchoReply(d) => {
            w.bytes(d);
            3
        }
        Message::FeaturesRequest => 5,
        Message::FeaturesReply(f) => {
            w.u64(f.datapath_id);
            w.u32(f.n_buffers);
            w.u8(f.n_tables);
            w.u8(f.auxiliary_id);
            w.zeros(2);
            w.u32(f.capabilities);
            w.u32(f.actions);
            for p in &f.ports {
                p.emit(v, w);
            }
            6
        }
        Message::GetConfigRequest => 7,
        Message::GetConfigReply(c) | Message::SetConfig(c) => {
            w.u16(c.flags);
            w.u16(c.miss_send_len);
            if matches!(msg, Message::GetConfigReply(_)) {
                8
            } else {
                9
            }
        }
        Message::PacketIn(p) => match &p.match_ {
            None => {
                w.u32(p.buffer_id);
                w.u16(p.total_len);
                w.u16(p.in_port);
                w.u8(p.reason);
                w.u8(0);
                w.bytes(&p.data);
                10
            }
            Some(MatchRepr::Nxm(m)) => {
                nx_hdr(w, 17);
                w.u32(p.buffer_id);
                w.u16(p.total_len);
                w.u8(p.reason);
                w.u8(p.table_id);
                w.u64(p.cookie);
                w.u16(m.tlv_len() as u16);
                w.zeros(6);
                let ms = w.len();
                m.emit_tlvs(w);
                w.pad8_from(ms);
                w.zeros(2);
                w.bytes(&p.data);
                4
            }
            Some(mr) => {
                w.u32(p.buffer_id);
                w.u16(p.total_len);
                w.u8(p.reason);
                w.u8(p.table_id);
                w.u64(p.cookie);
                emit_ofp_match(&mr.to_match(), w);
                w.zeros(2);
                w.bytes(&p.data);
                10
            }
        },
        Message::PacketIn2(p) | Message::Resume(p) => {
            nx_hdr(
                w,
                if matches!(msg, Message::PacketIn2(_)) {
                    30
                } else {
                    28
                },
            );
            emit_packet_in2(p, w);
            4
        }
        Message::FlowRemoved(f) => emit_flow_removed(f, v, w),
        Message::PortStatus { reason, port } => {
            w.u8(*reason);
            w.zeros(7);
            port.emit(v, w);
            12
        }
        Message::PacketOut(p) => {
            w.u32(p.buffer_id);
            let alen_at;
            if v10 {
                w.u16(port_to_of10(p.in_port));
                alen_at = w.len();
                w.u16(0);
            } else if v < 6 {
                w.u32(p.in_port);
                alen_at = w.len();
                w.u16(0);
                w.zeros(6);
            } else {
                alen_at = w.len();
                w.u16(0);
                w.zeros(2);
                emit_ofp_match(p.match_.as_ref().unwrap_or(&Match::default()), w);
            }
            let astart = w.len();
            emit_actions(&p.actions, v, w);
            w.patch_len(alen_at, astart);
            w.bytes(&p.data);
            13
        }
        Message::FlowMod(f) => emit_flow_mod(f, v, w),
        Message::GroupMod(g) => {
            if v10 {
                // NXT_GROUP_MOD (OVS include/openvswitch/ofp-msgs.h: "NXT 1.0 (31)")
                let t = nx_hdr(w, NXT_GROUP_MOD);
                emit_group_mod(g, v, w);
                t
            } else {
                emit_group_mod(g, v, w);
                15
            }
        }
        Message::PortMod(p) => {
            if v10 {
                w.u16(port_to_of10(p.port_no));
                w.bytes(&p.hw_addr);
                w.u32(p.config);
                w.u32(p.mask);
                w.u32(p.advertise);
                w.zeros(4);
                return 15;
            }
            w.u32(p.port_no);
            w.zeros(4);
            w.bytes(&p.hw_addr);
            w.zeros(2);
            w.u32(p.config);
            w.u32(p.mask);
            if v < 5 {
                w.u32(p.advertise);
                w.zeros(4);
            } else {
                for (t, val) in &p.props {
                    emit_prop(w, *t, val);
                }
            }
            16
        }
        Message::TableMod {
            table_id,
            config,
            props,
        } => {
            w.u8(*table_id);
            w.zeros(3);
            w.u32(*config);
            w.bytes(props);
            17
        }
        Message::MultipartRequest(m) => {
            m.emit(v, w);
            if v10 {
                16
            } else {
                18
            }
        }
        Message::MultipartReply(m) => {
            m.emit(v, w);
            if v10 {
                17
            } else {
                19
            }
        }
        Message::BarrierRequest => {
            if v10 {
                18
            } else {
                20
            }
        }
        Message::BarrierReply => {
            if v10 {
                19
            } else {
                21
            }
        }
        Message::RoleRequest(r) | Message::RoleReply(r) => {
            let req = matches!(msg, Message::RoleRequest(_));
            if r.nx {
                nx_hdr(w, if req { 10 } else { 11 });
                w.u32(r.role);
                4
            } else {
                w.u32(r.role);
                w.zeros(4);
                w.u64(r.generation_id);
                if req {
                    24
                } else {
                    25
                }
            }
        }
        Message::GetAsyncRequest => 26,
        Message::GetAsyncReply(b) => {
            w.bytes(b);
            27
        }
        Message::SetAsync(b) => {
            w.bytes(b);
            28
        }
        Message::MeterMod(m) => {
            w.u16(m.command);
            w.u16(m.flags);
            w.u32(m.meter_id);
            emit_bands(&m.bands, w);
            29
        }
        Message::BundleControl(b) => {
            let t = if v == 4 {
                w.u32(ONF_VENDOR_ID);
                w.u32(2300);
                4
            } else {
                33
            };
            w.u32(b.bundle_id);
            w.u16(b.ctrl_type);
            w.u16(b.flags);
            w.bytes(&b.props);
            t
        }
        Message::BundleAdd(b) => {
            let t = if v == 4 {
                w.u32(ONF_VENDOR_ID);
                w.u32(2301);
                4
            } else {
                34
            };
            w.u32(b.bundle_id);
            w.zeros(2);
            w.u16(b.flags);
            w.bytes(&encode(b.header.version, b.header.xid, &b.message));
            w.bytes(&b.props);
            t
        }
        Message::Experimenter(e) => emit_experimenter(e, v, w),
        Message::Unknown { msg_type, body } => {
            w.bytes(body);
            *msg_type
        }
    }
}

fn emit_experimenter(e: &Experimenter, v: u8, w: &mut Writer) -> u8 {
    match e {
        Experimenter::SetFlowFormat(f) => {
            nx_hdr(w, 12);
            w.u32(*f);
        }
        Experimenter::FlowModTableId(s) => {
            nx_hdr(w, 15);
            w.u8(*s as u8);
            w.zeros(7);
        }
        Experimenter::SetPacketInFormat(f) => {
            nx_hdr(w, 16);
            w.u32(*f);
        }
        Experimenter::SetControllerId(id) => {
            nx_hdr(w, 20);
            w.zeros(6);
            w.u16(*id);
        }
        Experimenter::TlvTableMod { command, maps } => {
            nx_hdr(w, 24);
            w.u16(*command);
            w.zeros(6);
            emit_tlv_maps(maps, w);
        }
        Experimenter::TlvTableRequest => {
            nx_hdr(w, 25);
        }
        Experimenter::TlvTableReply {
            max_option_space,
            max_fields,
            maps,
        } => {
            nx_hdr(w, 26);
            w.u32(*max_option_space);
            w.u16(*max_fields);
            w.zeros(10);
            emit_tlv_maps(maps, w);
        }
        Experimenter::CtFlushZone(z) => {
            nx_hdr(w, 29);
            w.zeros(6);
            w.u16(*z);
        }
        Experimenter::CtFlush { ip_proto, props } => {
            nx_hdr(w, 32);
            w.u8(*ip_proto);
            w.zeros(7);
            w.bytes(props);
        }
        Experimenter::FlowAge => {
            nx_hdr(w, 18);
        }
        Experimenter::FlowMonitorCancel(id) => {
            if v == 4 {
                w.u32(ONF_VENDOR_ID);
                w.u32(1870);
            } else {
                nx_hdr(w, 21);
            }
            w.u32(*id);
        }
        Experimenter::FlowMonitorPaused | Experimenter::FlowMonitorResumed => {
            let paused = matches!(e, Experimenter::FlowMonitorPaused);
            if v == 4 {
                w.u32(ONF_VENDOR_ID);
                w.u32(if paused { 1871 } else { 1872 });
            } else {
                nx_hdr(w, if paused { 22 } else { 23 });
            }
        }
        Experimenter::SetAsyncConfig(b) => {
            nx_hdr(w, 19);
            w.bytes(b);
        }
        Experimenter::Other {
            experimenter,
            exp_type,
            body,
        } => {
            w.u32(*experimenter);
            w.u32(*exp_type);
            w.bytes(body);
        }
    }
    4
}

fn emit_tlv_maps(maps: &[TlvMap], w: &mut Writer) {
    for m in maps {
        w.u16(m.option_class);
        w.u8(m.option_type);
        w.u8(m.option_len);
        w.u16(m.index);
        w.zeros(2);
    }
}

fn emit_flow_mod(f: &FlowMod, v: u8, w: &mut Writer) -> u8 {
    let cmd16 = (f.table_id as u16) << 8 | f.command as u16;
    match &f.match_ {
        MatchRepr::Nxm(m) => {
            nx_hdr(w, 13);
            w.u64(f.cookie);
            w.u16(cmd16);
            w.u16(f.idle_timeout);
            w.u16(f.hard_timeout);
            w.u16(f.priority);
            w.u32(f.buffer_id);
            w.u16(port_to_of10(f.out_port));
            w.u16(f.flags);
            w.u16(m.tlv_len() as u16);
            w.zeros(6);
            let ms = w.len();
            m.emit_tlvs(w);
            w.pad8_from(ms);
            emit_actions(&instructions_to_actions(&f.instructions), v, w);
            4
        }
        MatchRepr::Of10(m) => {
            m.emit(w);
            w.u64(f.cookie);
            w.u16(cmd16);
            w.u16(f.idle_timeout);
            w.u16(f.hard_timeout);
            w.u16(f.priority);
            w.u32(f.buffer_id);
            w.u16(port_to_of10(f.out_port));
            w.u16(f.flags);
            emit_actions(&instructions_to_actions(&f.instructions), v, w);
            14
        }
        MatchRepr::Oxm(m) => {
            w.u64(f.cookie);
            w.u64(f.cookie_mask);
            w.u8(f.table_id);
            w.u8(f.command);
            w.u16(f.idle_timeout);
            w.u16(f.hard_timeout);
            w.u16(f.priority);
            w.u32(f.buffer_id);
            w.u32(f.out_port);
            w.u32(f.out_group);
            w.u16(f.flags);
            w.u16(if v >= 5 { f.importance } else { 0 });
            emit_ofp_match(m, w);
            emit_instructions(&f.instructions, v, w);
            14
        }
    }
}

fn emit_flow_removed(f: &FlowRemoved, v: u8, w: &mut Writer) -> u8 {
    match &f.match_ {
        MatchRepr::Nxm(m) => {
            nx_hdr(w, 14);
            w.u64(f.cookie);
            w.u16(f.priority);
            w.u8(f.reason);
            w.u8(f.table_id);
            w.u32(f.duration_sec);
            w.u32(f.duration_nsec);
            w.u16(f.idle_timeout);
            w.u16(m.tlv_len() as u16);
            w.u64(f.packet_count);
            w.u64(f.byte_count);
            let ms = w.len();
            m.emit_tlvs(w);
            w.pad8_from(ms);
            4
        }
        MatchRepr::Of10(m) => {
            m.emit(w);
            w.u64(f.cookie);
            w.u16(f.priority);
            w.u8(f.reason);
            w.u8(0);
            w.u32(f.duration_sec);
            w.u32(f.duration_nsec);
            w.u16(f.idle_timeout);
            w.zeros(2);
            w.u64(f.packet_count);
            w.u64(f.byte_count);
            11
        }
        MatchRepr::Oxm(m) if v < 6 => {
            w.u64(f.cookie);
            w.u16(f.priority);
            w.u8(f.reason);
            w.u8(f.table_id);
            w.u32(f.duration_sec);
            w.u32(f.duration_nsec);
            w.u16(f.idle_timeout);
            w.u16(f.hard_timeout);
            w.u64(f.packet_count);
            w.u64(f.byte_count);
            emit_ofp_match(m, w);
            11
        }
        MatchRepr::Oxm(m) => {
            w.u8(f.table_id);
            w.u8(f.reason);
            w.u16(f.priority);
            w.u16(f.idle_timeout);
            w.u16(f.hard_timeout);
            w.u64(f.cookie);
            emit_ofp_match(m, w);
            f.oxs_stats.emit(w);
            11
        }
    }
}

impl From<Error> for OfpErr {
    fn from(e: Error) -> OfpErr {
        e.kind
    }
}

/// Netronome's experimenter ID: OVS's group selection-method property (NTRT_SELECTION_METHOD).
pub const NTR_VENDOR_ID: u32 = 0x0000_154d;
