//! Actions (standard and Nicira `NXAST_*`) and OpenFlow 1.1+ instructions.
//!
//! [`Action`] is wire-faithful: each variant is one wire form, so re-encoding reproduces the
//! input byte for byte (e.g. `set_field` vs `NXAST_REG_LOAD` vs `NXAST_REG_LOAD2` stay
//! distinct; a pipeline treats them alike).  Standard actions whose numbering changes between
//! OpenFlow 1.0 and 1.1+ (output, strip/pop VLAN, set_queue, group, dec_ttl...) are one
//! variant each, encoded per version; in OpenFlow 1.0 the 1.1+ ones travel as the Nicira
//! actions Open vSwitch uses for them ("NX1.0(n)" in OVS's `ofp-actions.c`).
//!
//! Layouts follow Open vSwitch's `lib/ofp-actions.c` structs (`nx_action_*`): the Nicira
//! action header is 10 bytes (type, len, vendor, subtype); a lone argument sits at its natural
//! alignment after it; variable actions are padded to a multiple of 8.
//!
//! Actions that are rarely used and that xvswitchd does not execute (NSH `encap`/`decap`/
//! `dec_nsh_ttl`, `sample` v4, `delete_field`, `output_trunc`, ONF `copy_field`, debug
//! actions) are kept as [`Action::NxRaw`]/[`Action::Experimenter`]: parsed for length and
//! vendor, carried verbatim, so a bundle holding them is not refused at decode time; the
//! pipeline decides whether to reject them.

use crate::buf::{pad8, Reader, Writer};
use crate::error::{fail, OfpErr, Result};
use crate::oxm::{MatchField, OxmHeader};
use crate::{NX_VENDOR_ID, ONF_VENDOR_ID};

/// Converts an OpenFlow 1.0 16-bit port to the 32-bit space (OFPP_MAX and up are reserved).
pub fn port_from_of10(p: u16) -> u32 {
    if p >= 0xff00 {
        p as u32 | 0xffff_0000
    } else {
        p as u32
    }
}

/// Converts a 32-bit port to OpenFlow 1.0's 16 bits (reserved ports map back).
pub fn port_to_of10(p: u32) -> u16 {
    if p >= 0xffff_ff00 {
        (p & 0xffff) as u16
    } else {
        p.min(0xffff) as u16
    }
}

/// Reserved port numbers (32-bit space).
pub mod ports {
    pub const MAX: u32 = 0xffff_ff00;
    pub const UNSET: u32 = 0xffff_fff7;
    pub const IN_PORT: u32 = 0xffff_fff8;
    pub const TABLE: u32 = 0xffff_fff9;
    pub const NORMAL: u32 = 0xffff_fffa;
    pub const FLOOD: u32 = 0xffff_fffb;
    pub const ALL: u32 = 0xffff_fffc;
    pub const CONTROLLER: u32 = 0xffff_fffd;
    pub const LOCAL: u32 = 0xffff_fffe;
    pub const ANY: u32 = 0xffff_ffff;
}

/// A field reference in Nicira actions: header plus bit range `ofs..ofs+n_bits`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Subfield {
    pub header: OxmHeader,
    pub ofs: u16,
    pub n_bits: u16,
}

fn ofs_nbits(v: u16) -> (u16, u16) {
    (v >> 6, (v & 0x3f) + 1)
}
fn to_ofs_nbits(ofs: u16, n_bits: u16) -> u16 {
    ofs << 6 | (n_bits.saturating_sub(1) & 0x3f)
}

/// A 32-bit NXM header as used in old fixed-layout actions (no experimenter form).
fn nxm32(w: u32) -> OxmHeader {
    OxmHeader {
        class: (w >> 16) as u16,
        field: ((w >> 9) & 0x7f) as u8,
        hasmask: w & 0x100 != 0,
        length: (w & 0xff) as u8,
        experimenter: 0,
    }
}

/// `ct(nat(...))` address/port ranges.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Nat {
    /// NX_NAT_F_*: SRC 1, DST 2, PERSISTENT 4, PROTO_HASH 8, PROTO_RANDOM 16.
    pub flags: u16,
    pub ipv4_min: Option<u32>,
    pub ipv4_max: Option<u32>,
    pub ipv6_min: Option<u128>,
    pub ipv6_max: Option<u128>,
    pub proto_min: Option<u16>,
    pub proto_max: Option<u16>,
}

/// `ct(...)`: conntrack.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Conntrack {
    /// NX_CT_F_COMMIT 1, NX_CT_F_FORCE 2.
    pub flags: u16,
    /// Zone from a field (`zone=NXM_NX_REG13[0..15]`), else `zone_imm`.
    pub zone_src: Option<Subfield>,
    pub zone_imm: u16,
    /// Table to recirculate to; 255 = none.
    pub recirc_table: u8,
    pub alg: u16,
    /// Nested actions: `nat` and `exec(set_field/load of ct_mark/ct_label...)`.
    pub actions: Vec<Action>,
}

/// One `learn` flow-mod spec.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct LearnSpec {
    pub n_bits: u16,
    pub src: LearnSrc,
    pub dst: LearnDst,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum LearnSrc {
    Field {
        header: OxmHeader,
        ofs: u16,
    },
    /// Immediate value, 2*ceil(n_bits/16) bytes.
    Immediate(Vec<u8>),
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum LearnDst {
    Match { header: OxmHeader, ofs: u16 },
    Load { header: OxmHeader, ofs: u16 },
    Output,
}

/// `learn(...)` (NXAST_LEARN, and NXAST_LEARN2 when `learn2` is set).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Learn {
    pub idle_timeout: u16,
    pub hard_timeout: u16,
    pub priority: u16,
    pub cookie: u64,
    /// NX_LEARN_F_SEND_FLOW_REM 1, DELETE_LEARNED 2, WRITE_RESULT 4.
    pub flags: u16,
    pub table_id: u8,
    pub fin_idle_timeout: u16,
    pub fin_hard_timeout: u16,
    /// NXAST_LEARN2 extension: (limit, result_dst_ofs, result_dst header when WRITE_RESULT).
    pub learn2: Option<(u32, u16, Option<OxmHeader>)>,
    pub specs: Vec<LearnSpec>,
}

/// `controller2` properties (NXAC2PT_*), kept in OVS's encoding order.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Controller2 {
    pub max_len: Option<u16>,
    pub controller_id: Option<u16>,
    pub reason: Option<u8>,
    pub userdata: Option<Vec<u8>>,
    pub pause: bool,
    pub meter_id: Option<u32>,
}

/// `multipath(...)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Multipath {
    pub fields: u16,
    pub basis: u16,
    pub algorithm: u16,
    pub max_link: u16,
    pub arg: u32,
    pub dst: Subfield,
}

/// `bundle(...)` / `bundle_load(...)`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Bundle {
    pub algorithm: u16,
    pub fields: u16,
    pub basis: u16,
    pub member_type: u32,
    /// Destination for `bundle_load` (raw ofs_nbits and 32-bit header; zero for `bundle`).
    pub ofs_nbits: u16,
    pub dst: u32,
    pub members: Vec<u16>,
}

/// `sample(...)` (versions 1-3 of NXAST_SAMPLE).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Sample {
    /// 29 (sample), 38 (sample2) or 41 (sample3).
    pub subtype: u16,
    pub probability: u16,
    pub collector_set_id: u32,
    pub obs_domain_id: u32,
    pub obs_point_id: u32,
    pub sampling_port: u16,
    pub direction: u8,
}

/// An action.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Action {
    // ---- standard (numbered per version) ----
    Output {
        port: u32,
        max_len: u16,
    },
    SetVlanVid(u16),
    SetVlanPcp(u8),
    /// OF1.0 STRIP_VLAN / OF1.1+ POP_VLAN.
    PopVlan,
    PushVlan(u16),
    SetDlSrc([u8; 6]),
    SetDlDst([u8; 6]),
    SetNwSrc(u32),
    SetNwDst(u32),
    SetNwTos(u8),
    SetNwEcn(u8),
    SetTpSrc(u16),
    SetTpDst(u16),
    /// OF1.0 only.
    Enqueue {
        port: u32,
        queue: u32,
    },
    CopyTtlOut,
    CopyTtlIn,
    SetMplsLabel(u32),
    SetMplsTc(u8),
    SetMplsTtl(u8),
    DecMplsTtl,
    PushMpls(u16),
    PopMpls(u16),
    SetQueue(u32),
    Group(u32),
    SetNwTtl(u8),
    DecNwTtl,
    /// OF1.2+ set-field (masked only in OF1.5).
    SetField(MatchField),
    PushPbb(u16),
    PopPbb,
    /// OF1.5 meter action.
    Meter(u32),
    /// OF1.5 copy-field (n_bits, src_ofs, dst_ofs, src, dst).
    CopyField {
        n_bits: u16,
        src_ofs: u16,
        dst_ofs: u16,
        src: OxmHeader,
        dst: OxmHeader,
    },
    // ---- Nicira ----
    Resubmit {
        in_port: u16,
    },
    ResubmitTable {
        in_port: u16,
        table: u8,
        ct: bool,
    },
    SetTunnel(u32),
    SetTunnel64(u64),
    PopQueue,
    RegMove {
        n_bits: u16,
        src_ofs: u16,
        dst_ofs: u16,
        src: OxmHeader,
        dst: OxmHeader,
    },
    /// NXAST_REG_LOAD: raw ofs_nbits, 32-bit NXM destination, value.
    RegLoad {
        ofs_nbits: u16,
        dst: u32,
        value: u64,
    },
    RegLoad2(MatchField),
    Note(Vec<u8>),
    Multipath(Multipath),
    Bundle(Bundle),
    BundleLoad(Bundle),
    OutputReg {
        src: Subfield,
        max_len: u16,
    },
    OutputReg2 {
        src: Subfield,
        max_len: u16,
    },
    Learn(Learn),
    Exit,
    FinTimeout {
        idle: u16,
        hard: u16,
    },
    Controller {
        max_len: u16,
        controller_id: u16,
        reason: u8,
    },
    Controller2(Controller2),
    DecTtlCntIds(Vec<u16>),
    WriteMetadata {
        metadata: u64,
        mask: u64,
    },
    StackPush(Subfield),
    StackPop(Subfield),
    Sample(Sample),
    Conjunction {
        id: u32,
        clause: u8,
        n_clauses: u8,
    },
    Ct(Conntrack),
    Nat(Nat),
    Clone(Vec<Action>),
    CtClear,
    CheckPktLarger {
        pkt_len: u16,
        dst: Subfield,
    },
    /// A well-formed Nicira action carried verbatim (bytes after the subtype).
    NxRaw {
        subtype: u16,
        body: Vec<u8>,
    },
    /// A well-formed ONF experimenter action carried verbatim (bytes after the 8-byte header).
    Experimenter {
        experimenter: u32,
        body: Vec<u8>,
    },
}

// Nicira subtypes (NXAST_RAW_* in ofp-actions.c).
mod nxast {
    pub const RESUBMIT: u16 = 1;
    pub const SET_TUNNEL: u16 = 2;
    pub const SET_QUEUE: u16 = 4;
    pub const POP_QUEUE: u16 = 5;
    pub const REG_MOVE: u16 = 6;
    pub const REG_LOAD: u16 = 7;
    pub const NOTE: u16 = 8;
    pub const SET_TUNNEL64: u16 = 9;
    pub const MULTIPATH: u16 = 10;
    pub const BUNDLE: u16 = 12;
    pub const BUNDLE_LOAD: u16 = 13;
    pub const RESUBMIT_TABLE: u16 = 14;
    pub const OUTPUT_REG: u16 = 15;
    pub const LEARN: u16 = 16;
    pub const EXIT: u16 = 17;
    pub const DEC_TTL: u16 = 18;
    pub const FIN_TIMEOUT: u16 = 19;
    pub const CONTROLLER: u16 = 20;
    pub const DEC_TTL_CNT_IDS: u16 = 21;
    pub const WRITE_METADATA: u16 = 22;
    pub const PUSH_MPLS: u16 = 23;
    pub const POP_MPLS: u16 = 24;
    pub const SET_MPLS_TTL: u16 = 25;
    pub const DEC_MPLS_TTL: u16 = 26;
    pub const STACK_PUSH: u16 = 27;
    pub const STACK_POP: u16 = 28;
    pub const SAMPLE: u16 = 29;
    pub const SET_MPLS_LABEL: u16 = 30;
    pub const SET_MPLS_TC: u16 = 31;
    pub const OUTPUT_REG2: u16 = 32;
    pub const REG_LOAD2: u16 = 33;
    pub const CONJUNCTION: u16 = 34;
    pub const CT: u16 = 35;
    pub const NAT: u16 = 36;
    pub const CONTROLLER2: u16 = 37;
    pub const SAMPLE2: u16 = 38;
    pub const OUTPUT_TRUNC: u16 = 39;
    pub const GROUP: u16 = 40;
    pub const SAMPLE3: u16 = 41;
    pub const CLONE: u16 = 42;
    pub const CT_CLEAR: u16 = 43;
    pub const RESUBMIT_TABLE_CT: u16 = 44;
    pub const LEARN2: u16 = 45;
    pub const ENCAP: u16 = 46;
    pub const DECAP: u16 = 47;
    pub const DEC_NSH_TTL: u16 = 48;
    pub const CHECK_PKT_LARGER: u16 = 49;
    pub const DELETE_FIELD: u16 = 50;
    pub const SAMPLE4: u16 = 51;
    pub const DEBUG_SLOW: u16 = 254;
    pub const DEBUG_RECIRC: u16 = 255;
}

const BAC: OfpErr = OfpErr::OFPBAC_BAD_LEN;

/// Decodes a list of actions filling all of `r`.
pub(crate) fn parse_actions(r: &mut Reader, version: u8) -> Result<Vec<Action>> {
    let mut out = Vec::new();
    let mut r = r.with_err(BAC);
    while !r.is_empty() {
        out.push(parse_action(&mut r, version, 0)?);
    }
    Ok(out)
}

/// Decodes actions from a byte slice (helper for nested lists and tests).
pub fn decode_actions(bytes: &[u8], version: u8) -> Result<Vec<Action>> {
    parse_actions(&mut Reader::new(bytes, BAC), version)
}

/// Encodes a list of actions for `version`.
pub fn encode_actions(actions: &[Action], version: u8) -> Vec<u8> {
    let mut w = Writer::new();
    emit_actions(actions, version, &mut w);
    w.buf
}

pub(crate) fn emit_actions(actions: &[Action], version: u8, w: &mut Writer) {
    for a in actions {
        a.emit(version, w);
    }
}

fn nested_depth_check(depth: u32) -> Result<()> {
    // OVS bounds nesting too (clone/ct inside clone...); keep recursion finite on hostile input.
    if depth > 64 {
        return fail(OfpErr::OFPBAC_BAD_ARGUMENT, "actions nested too deeply");
    }
    Ok(())
}

fn parse_action(r: &mut Reader, version: u8, depth: u32) -> Result<Action> {
    nested_depth_check(depth)?;
    let atype = r.peek_u16(0).ok_or_else(|| r.short("action header"))?;
    let len = r.peek_u16(2).ok_or_else(|| r.short("action header"))? as usize;
    if len < 8 || len & 7 != 0 || len > r.remaining() {
        return fail(BAC, "action length");
    }
    let mut a = r.sub(len, "action")?;
    a.skip(4, "action header")?;
    let exact = |want: usize| -> Result<()> {
        if len != want {
            fail(BAC, "action length")
        } else {
            Ok(())
        }
    };
    if atype == 0xffff {
        let vendor = a.u32("vendor")?;
        return match vendor {
            NX_VENDOR_ID => parse_nx_action(&mut a, len, version, depth),
            ONF_VENDOR_ID => Ok(Action::Experimenter {
                experimenter: vendor,
                body: a.take_rest().to_vec(),
            }),
            _ => fail(OfpErr::OFPBAC_BAD_VENDOR, "action vendor"),
        };
    }
    if version == 1 {
        return Ok(match atype {
            0 => {
                exact(8)?;
                Action::Output {
                    port: port_from_of10(a.u16("port")?),
                    max_len: a.u16("max_len")?,
                }
            }
            1 => {
                exact(8)?;
                Action::SetVlanVid(a.u16("vid")?)
            }
            2 => {
                exact(8)?;
                Action::SetVlanPcp(a.u8("pcp")?)
            }
            3 => {
                exact(8)?;
                Action::PopVlan
            }
            4 | 5 => {
                exact(16)?;
                let mac = a.array("mac")?;
                if atype == 4 {
                    Action::SetDlSrc(mac)
                } else {
                    Action::SetDlDst(mac)
                }
            }
            6 => {
                exact(8)?;
                Action::SetNwSrc(a.u32("nw")?)
            }
            7 => {
                exact(8)?;
                Action::SetNwDst(a.u32("nw")?)
            }
            8 => {
                exact(8)?;
                Action::SetNwTos(a.u8("tos")?)
            }
            9 => {
                exact(8)?;
                Action::SetTpSrc(a.u16("tp")?)
            }
            10 => {
                exact(8)?;
                Action::SetTpDst(a.u16("tp")?)
            }
            11 => {
                exact(16)?;
                let port = port_from_of10(a.u16("port")?);
                a.pad(6, "pad")?;
                Action::Enqueue {
                    port,
                    queue: a.u32("queue")?,
                }
            }
            _ => return fail(OfpErr::OFPBAC_BAD_TYPE, "OF1.0 action type"),
        });
    }
    Ok(match atype {
        0 => {
            exact(16)?;
            Action::Output {
                port: a.u32("port")?,
                max_len: a.u16("max_len")?,
            }
        }
        1 => {
            exact(8)?;
            Action::SetVlanVid(a.u16("vid")?)
        }
        2 => {
            exact(8)?;
            Action::SetVlanPcp(a.u8("pcp")?)
        }
        3 | 4 => {
            exact(16)?;
            let mac = a.array("mac")?;
            if atype == 3 {
                Action::SetDlSrc(mac)
            } else {
                Action::SetDlDst(mac)
            }
        }
        5 => {
            exact(8)?;
            Action::SetNwSrc(a.u32("nw")?)
        }
        6 => {
            exact(8)?;
            Action::SetNwDst(a.u32("nw")?)
        }
        7 => {
            exact(8)?;
            Action::SetNwTos(a.u8("tos")?)
        }
        8 => {
            exact(8)?;
            Action::SetNwEcn(a.u8("ecn")?)
        }
        9 => {
            exact(8)?;
            Action::SetTpSrc(a.u16("tp")?)
        }
        10 => {
            exact(8)?;
            Action::SetTpDst(a.u16("tp")?)
        }
        11 => {
            exact(8)?;
            Action::CopyTtlOut
        }
        12 => {
            exact(8)?;
            Action::CopyTtlIn
        }
        13 => {
            exact(8)?;
            Action::SetMplsLabel(a.u32("label")?)
        }
        14 => {
            exact(8)?;
            Action::SetMplsTc(a.u8("tc")?)
        }
        15 => {
            exact(8)?;
            Action::SetMplsTtl(a.u8("ttl")?)
        }
        16 => {
            exact(8)?;
            Action::DecMplsTtl
        }
        17 => {
            exact(8)?;
            Action::PushVlan(a.u16("ethertype")?)
        }
        18 => {
            exact(8)?;
            Action::PopVlan
        }
        19 => {
            exact(8)?;
            Action::PushMpls(a.u16("ethertype")?)
        }
        20 => {
            exact(8)?;
            Action::PopMpls(a.u16("ethertype")?)
        }
        21 => {
            exact(8)?;
            Action::SetQueue(a.u32("queue")?)
        }
        22 => {
            exact(8)?;
            Action::Group(a.u32("group")?)
        }
        23 => {
            exact(8)?;
            Action::SetNwTtl(a.u8("ttl")?)
        }
        24 => {
            exact(8)?;
            Action::DecNwTtl
        }
        25 if version >= 3 => {
            let mut b = a.with_err(OfpErr::OFPBAC_BAD_SET_LEN);
            let f = MatchField::parse(&mut b).map_err(|e| match e.kind {
                OfpErr::OFPBMC_BAD_FIELD => {
                    crate::error::Error::new(OfpErr::OFPBAC_BAD_SET_TYPE, "set_field field")
                }
                OfpErr::OFPBMC_BAD_MASK => {
                    crate::error::Error::new(OfpErr::OFPBAC_BAD_SET_MASK, "set_field mask")
                }
                _ => crate::error::Error::new(OfpErr::OFPBAC_BAD_SET_LEN, "set_field length"),
            })?;
            if f.mask.is_some() && version < 6 {
                return fail(OfpErr::OFPBAC_BAD_SET_MASK, "masked set_field before OF1.5");
            }
            if pad8(4 + f.header.wire_len() + f.header.payload_len()) != len {
                return fail(OfpErr::OFPBAC_BAD_SET_LEN, "set_field padding");
            }
            Action::SetField(f)
        }
        26 => {
            exact(8)?;
            Action::PushPbb(a.u16("ethertype")?)
        }
        27 => {
            exact(8)?;
            Action::PopPbb
        }
        28 if version >= 6 => {
            let n_bits = a.u16("n_bits")?;
            let src_ofs = a.u16("src_ofs")?;
            let dst_ofs = a.u16("dst_ofs")?;
            a.pad(2, "pad")?;
            let src = OxmHeader::parse(&mut a)?;
            let dst = OxmHeader::parse(&mut a)?;
            Action::CopyField {
                n_bits,
                src_ofs,
                dst_ofs,
                src,
                dst,
            }
        }
        29 if version >= 6 => {
            exact(8)?;
            Action::Meter(a.u32("meter")?)
        }
        _ => return fail(OfpErr::OFPBAC_BAD_TYPE, "action type"),
    })
}

fn subfield_at(a: &mut Reader, ofs: u16, n_bits: u16) -> Result<Subfield> {
    Ok(Subfield {
        header: OxmHeader::parse(a)?,
        ofs,
        n_bits,
    })
}

fn parse_nx_action(a: &mut Reader, len: usize, version: u8, depth: u32) -> Result<Action> {
    use nxast::*;
    let subtype = a.u16("subtype")?;
    let exact = |want: usize| -> Result<()> {
        if len != want {
            fail(BAC, "nx action length")
        } else {
            Ok(())
        }
    };
    // Subtypes that are only the OpenFlow 1.0 form of a standard 1.1+ action.
    let of10_only = matches!(
        subtype,
        SET_QUEUE
            | DEC_TTL
            | PUSH_MPLS
            | POP_MPLS
            | SET_MPLS_TTL
            | DEC_MPLS_TTL
            | SET_MPLS_LABEL
            | SET_MPLS_TC
            | GROUP
    );
    if of10_only && version != 1 {
        return fail(OfpErr::OFPBAC_BAD_VENDOR_TYPE, "OF1.0-only Nicira action");
    }
    Ok(match subtype {
        RESUBMIT => {
            exact(16)?;
            Action::Resubmit {
                in_port: a.u16("in_port")?,
            }
        }
        RESUBMIT_TABLE | RESUBMIT_TABLE_CT => {
            exact(16)?;
            Action::ResubmitTable {
                in_port: a.u16("in_port")?,
                table: a.u8("table")?,
                ct: subtype == RESUBMIT_TABLE_CT,
            }
        }
        SET_TUNNEL => {
            exact(16)?;
            a.pad(2, "pad")?;
            Action::SetTunnel(a.u32("tun_id")?)
        }
        SET_TUNNEL64 => {
            exact(24)?;
            a.pad(6, "pad")?;
            Action::SetTunnel64(a.u64("tun_id")?)
        }
        SET_QUEUE => {
            exact(16)?;
            a.pad(2, "pad")?;
            Action::SetQueue(a.u32("queue")?)
        }
        GROUP => {
            exact(16)?;
            a.pad(2, "pad")?;
            Action::Group(a.u32("group")?)
        }
        SET_MPLS_LABEL => {
            exact(16)?;
            a.pad(2, "pad")?;
            Action::SetMplsLabel(a.u32("label")?)
        }
        SET_MPLS_TC => {
            exact(16)?;
            Action::SetMplsTc(a.u8("tc")?)
        }
        SET_MPLS_TTL => {
            exact(16)?;
            Action::SetMplsTtl(a.u8("ttl")?)
        }
        PUSH_MPLS => {
            exact(16)?;
            Action::PushMpls(a.u16("ethertype")?)
        }
        POP_MPLS => {
            exact(16)?;
            Action::PopMpls(a.u16("ethertype")?)
        }
        DEC_TTL => {
            exact(16)?;
            Action::DecNwTtl
        }
        DEC_MPLS_TTL => {
            exact(16)?;
            Action::DecMplsTtl
        }
        POP_QUEUE => {
            exact(16)?;
            Action::PopQueue
        }
        EXIT => {
            exact(16)?;
            Action::Exit
        }
        CT_CLEAR => {
            exact(16)?;
            Action::CtClear
        }
        REG_MOVE => {
            let n_bits = a.u16("n_bits")?;
            let src_ofs = a.u16("src_ofs")?;
            let dst_ofs = a.u16("dst_ofs")?;
            let src = OxmHeader::parse(a)?;
            let dst = OxmHeader::parse(a)?;
            if pad8(16 + src.wire_len() + dst.wire_len()) != len {
                return fail(BAC, "reg_move length");
            }
            Action::RegMove {
                n_bits,
                src_ofs,
                dst_ofs,
                src,
                dst,
            }
        }
        REG_LOAD => {
            exact(24)?;
            Action::RegLoad {
                ofs_nbits: a.u16("ofs_nbits")?,
                dst: a.u32("dst")?,
                value: a.u64("value")?,
            }
        }
        REG_LOAD2 => {
            // OVS drops the ext_action_header padding here: the OXM starts right after the
            // subtype (offset 10), then the action is padded to 8.
            let f = MatchField::parse(a)
                .map_err(|_| crate::error::Error::new(OfpErr::OFPBAC_BAD_SET_LEN, "reg_load2"))?;
            if pad8(10 + f.header.wire_len() + f.header.payload_len()) != len {
                return fail(BAC, "reg_load2 length");
            }
            Action::RegLoad2(f)
        }
        NOTE => Action::Note(a.take_rest().to_vec()),
        MULTIPATH => {
            exact(32)?;
            let fields = a.u16("fields")?;
            let basis = a.u16("basis")?;
            a.pad(2, "pad")?;
            let algorithm = a.u16("algorithm")?;
            let max_link = a.u16("max_link")?;
            let arg = a.u32("arg")?;
            a.pad(2, "pad")?;
            let (ofs, n_bits) = ofs_nbits(a.u16("ofs_nbits")?);
            let dst = Subfield {
                header: nxm32(a.u32("dst")?),
                ofs,
                n_bits,
            };
            Action::Multipath(Multipath {
                fields,
                basis,
                algorithm,
                max_link,
                arg,
                dst,
            })
        }
        BUNDLE | BUNDLE_LOAD => {
            let algorithm = a.u16("algorithm")?;
            let fields = a.u16("fields")?;
            let basis = a.u16("basis")?;
            let member_type = a.u32("member_type")?;
            let n = a.u16("n_members")? as usize;
            let ofs_nbits = a.u16("ofs_nbits")?;
            let dst = a.u32("dst")?;
            a.pad(4, "zero")?;
            if pad8(32 + 2 * n) != len {
                return fail(BAC, "bundle length");
            }
            let mut members = Vec::with_capacity(n);
            for _ in 0..n {
                members.push(a.u16("member")?);
            }
            let b = Bundle {
                algorithm,
                fields,
                basis,
                member_type,
                ofs_nbits,
                dst,
                members,
            };
            if subtype == BUNDLE {
                Action::Bundle(b)
            } else {
                Action::BundleLoad(b)
            }
        }
        OUTPUT_REG => {
            exact(24)?;
            let (ofs, n_bits) = ofs_nbits(a.u16("ofs_nbits")?);
            let src = Subfield {
                header: nxm32(a.u32("src")?),
                ofs,
                n_bits,
            };
            Action::OutputReg {
                src,
                max_len: a.u16("max_len")?,
            }
        }
        OUTPUT_REG2 => {
            exact(24)?;
            let (ofs, n_bits) = ofs_nbits(a.u16("ofs_nbits")?);
            let max_len = a.u16("max_len")?;
            let src = subfield_at(a, ofs, n_bits)?;
            Action::OutputReg2 { src, max_len }
        }
        LEARN | LEARN2 => Action::Learn(parse_learn(a, subtype == LEARN2)?),
        FIN_TIMEOUT => {
            exact(16)?;
            Action::FinTimeout {
                idle: a.u16("idle")?,
                hard: a.u16("hard")?,
            }
        }
        CONTROLLER => {
            exact(16)?;
            Action::Controller {
                max_len: a.u16("max_len")?,
                controller_id: a.u16("id")?,
                reason: a.u8("reason")?,
            }
        }
        CONTROLLER2 => {
            a.pad(6, "pad")?;
            Action::Controller2(parse_controller2(a)?)
        }
        DEC_TTL_CNT_IDS => {
            let n = a.u16("n_controllers")? as usize;
            a.pad(4, "zero")?;
            if pad8(16 + 2 * n) != len {
                return fail(BAC, "cnt_ids length");
            }
            let mut ids = Vec::with_capacity(n);
            for _ in 0..n {
                ids.push(a.u16("id")?);
            }
            Action::DecTtlCntIds(ids)
        }
        WRITE_METADATA => {
            exact(32)?;
            a.pad(6, "zero")?;
            Action::WriteMetadata {
                metadata: a.u64("metadata")?,
                mask: a.u64("mask")?,
            }
        }
        STACK_PUSH | STACK_POP => {
            exact(24)?;
            let ofs = a.u16("offset")?;
            let header = OxmHeader::parse(a)?;
            let n_bits = a.u16("n_bits")?;
            let s = Subfield {
                header,
                ofs,
                n_bits,
            };
            if subtype == STACK_PUSH {
                Action::StackPush(s)
            } else {
                Action::StackPop(s)
            }
        }
        SAMPLE | SAMPLE2 | SAMPLE3 => {
            exact(if subtype == SAMPLE { 24 } else { 32 })?;
            let mut s = Sample {
                subtype,
                probability: a.u16("probability")?,
                collector_set_id: a.u32("collector")?,
                obs_domain_id: a.u32("domain")?,
                obs_point_id: a.u32("point")?,
                sampling_port: 0,
                direction: 0,
            };
            if subtype != SAMPLE {
                s.sampling_port = a.u16("sampling_port")?;
                s.direction = a.u8("direction")?;
            }
            Action::Sample(s)
        }
        CONJUNCTION => {
            exact(16)?;
            let clause = a.u8("clause")?;
            let n_clauses = a.u8("n_clauses")?;
            Action::Conjunction {
                id: a.u32("id")?,
                clause,
                n_clauses,
            }
        }
        CT => {
            let flags = a.u16("flags")?;
            let zone_src_w = a.u32("zone_src")?;
            let zone = a.u16("zone")?;
            let recirc_table = a.u8("recirc_table")?;
            a.pad(3, "pad")?;
            let alg = a.u16("alg")?;
            let (zone_src, zone_imm) = if zone_src_w != 0 {
                let (ofs, n_bits) = ofs_nbits(zone);
                (
                    Some(Subfield {
                        header: nxm32(zone_src_w),
                        ofs,
                        n_bits,
                    }),
                    0,
                )
            } else {
                (None, zone)
            };
            let mut actions = Vec::new();
            while !a.is_empty() {
                actions.push(parse_action(a, version, depth + 1)?);
            }
            Action::Ct(Conntrack {
                flags,
                zone_src,
                zone_imm,
                recirc_table,
                alg,
                actions,
            })
        }
        NAT => {
            a.pad(2, "pad")?;
            let flags = a.u16("flags")?;
            let present = a.u16("range_present")?;
            let mut n = Nat {
                flags,
                ..Default::default()
            };
            let mut body = 16;
            if present & 1 != 0 {
                n.ipv4_min = Some(a.u32("ipv4_min")?);
                body += 4;
            }
            if present & 2 != 0 {
                n.ipv4_max = Some(a.u32("ipv4_max")?);
                body += 4;
            }
            if present & 4 != 0 {
                n.ipv6_min = Some(a.u128("ipv6_min")?);
                body += 16;
            }
            if present & 8 != 0 {
                n.ipv6_max = Some(a.u128("ipv6_max")?);
                body += 16;
            }
            if present & 16 != 0 {
                n.proto_min = Some(a.u16("proto_min")?);
                body += 2;
            }
            if present & 32 != 0 {
                n.proto_max = Some(a.u16("proto_max")?);
                body += 2;
            }
            if present & !63 != 0 || pad8(body) != len {
                return fail(OfpErr::OFPBAC_BAD_ARGUMENT, "nat ranges");
            }
            Action::Nat(n)
        }
        CLONE => {
            a.pad(6, "pad")?;
            let mut actions = Vec::new();
            while !a.is_empty() {
                actions.push(parse_action(a, version, depth + 1)?);
            }
            Action::Clone(actions)
        }
        CHECK_PKT_LARGER => {
            exact(24)?;
            let pkt_len = a.u16("pkt_len")?;
            let ofs = a.u16("offset")?;
            let dst = subfield_at(a, ofs, 1)?;
            Action::CheckPktLarger { pkt_len, dst }
        }
        OUTPUT_TRUNC | ENCAP | DECAP | DEC_NSH_TTL | DELETE_FIELD | SAMPLE4 | DEBUG_SLOW
        | DEBUG_RECIRC => Action::NxRaw {
            subtype,
            body: a.take_rest().to_vec(),
        },
        _ => return fail(OfpErr::OFPBAC_BAD_VENDOR_TYPE, "Nicira action subtype"),
    })
}

fn parse_learn(a: &mut Reader, v2: bool) -> Result<Learn> {
    let mut l = Learn {
        idle_timeout: a.u16("idle")?,
        hard_timeout: a.u16("hard")?,
        priority: a.u16("priority")?,
        cookie: a.u64("cookie")?,
        flags: a.u16("flags")?,
        table_id: a.u8("table")?,
        fin_idle_timeout: 0,
        fin_hard_timeout: 0,
        learn2: None,
        specs: Vec::new(),
    };
    a.pad(1, "pad")?;
    l.fin_idle_timeout = a.u16("fin_idle")?;
    l.fin_hard_timeout = a.u16("fin_hard")?;
    if v2 {
        let limit = a.u32("limit")?;
        let result_dst_ofs = a.u16("result_dst_ofs")?;
        a.pad(2, "pad")?;
        let hdr = if l.flags & 4 != 0 {
            Some(OxmHeader::parse(a)?)
        } else {
            None
        };
        l.learn2 = Some((limit, result_dst_ofs, hdr));
    }
    while a.remaining() >= 2 {
        let h = a.peek_u16(0).unwrap_or(0);
        if h == 0 {
            break;
        }
        a.skip(2, "spec header")?;
        let n_bits = h & 0x3ff;
        let src_imm = h & 0x2000 != 0;
        let dst_type = (h >> 11) & 3;
        if h & 0xc000 != 0 || dst_type == 3 {
            return fail(OfpErr::OFPBAC_BAD_ARGUMENT, "learn spec header");
        }
        let src = if src_imm {
            let n = 2 * (n_bits as usize).div_ceil(16);
            LearnSrc::Immediate(a.bytes(n, "learn immediate")?.to_vec())
        } else {
            LearnSrc::Field {
                header: OxmHeader::parse(a)?,
                ofs: a.u16("src ofs")?,
            }
        };
        let dst = match dst_type {
            0 => LearnDst::Match {
                header: OxmHeader::parse(a)?,
                ofs: a.u16("dst ofs")?,
            },
            1 => LearnDst::Load {
                header: OxmHeader::parse(a)?,
                ofs: a.u16("dst ofs")?,
            },
            _ => LearnDst::Output,
        };
        l.specs.push(LearnSpec { n_bits, src, dst });
    }
    if a.rest().iter().any(|&b| b != 0) {
        return fail(OfpErr::NXBRC_MUST_BE_ZERO, "learn padding");
    }
    Ok(l)
}

fn parse_controller2(a: &mut Reader) -> Result<Controller2> {
    let mut c = Controller2::default();
    for (ptype, val) in parse_props(a)? {
        let bad = || crate::error::Error::new(OfpErr::OFPBPC_BAD_LEN, "controller2 property");
        match ptype {
            0 => c.max_len = Some(prop_u16(val).ok_or_else(bad)?),
            1 => c.controller_id = Some(prop_u16(val).ok_or_else(bad)?),
            2 => c.reason = Some(*val.first().filter(|_| val.len() == 1).ok_or_else(bad)?),
            3 => c.userdata = Some(val.to_vec()),
            4 => c.pause = true,
            5 => c.meter_id = Some(u32::from_be_bytes(val.try_into().map_err(|_| bad())?)),
            _ => return fail(OfpErr::OFPBPC_BAD_TYPE, "controller2 property type"),
        }
    }
    Ok(c)
}

/// A 16-bit property value: OVS writes it padded to 4 bytes (`ofpprop_put_u16`), accept both.
fn prop_u16(val: &[u8]) -> Option<u16> {
    match val.len() {
        2 | 4 => Some(u16::from_be_bytes([val[0], val[1]])),
        _ => None,
    }
}

/// Parses `ofp_prop_header` TLVs (type, length excluding padding, value, pad to 8).
pub(crate) fn parse_props<'a>(r: &mut Reader<'a>) -> Result<Vec<(u16, &'a [u8])>> {
    let mut out = Vec::new();
    while !r.is_empty() {
        let ptype = r.u16("property type")?;
        let plen = r.u16("property length")? as usize;
        if plen < 4 || pad8(plen) - 4 > r.remaining() {
            return fail(OfpErr::OFPBPC_BAD_LEN, "property length");
        }
        let val = r.bytes(plen - 4, "property")?;
        r.skip(pad8(plen) - plen, "property pad")?;
        out.push((ptype, val));
    }
    Ok(out)
}

pub(crate) fn emit_prop(w: &mut Writer, ptype: u16, val: &[u8]) {
    let start = w.len();
    w.u16(ptype);
    w.u16((4 + val.len()).min(0xffff) as u16);
    w.bytes(val);
    w.pad8_from(start);
}

fn nx_start(w: &mut Writer, subtype: u16) -> usize {
    let start = w.len();
    w.u16(0xffff);
    w.u16(0);
    w.u32(NX_VENDOR_ID);
    w.u16(subtype);
    start
}

fn finish(w: &mut Writer, start: usize) {
    w.pad8_from(start);
    w.patch_len(start + 2, start);
}

fn pad_to(w: &mut Writer, start: usize, total: usize) {
    let n = w.len() - start;
    if n < total {
        w.zeros(total - n);
    }
}

impl Action {
    /// Encodes this action for `version` (wire number).
    pub(crate) fn emit(&self, version: u8, w: &mut Writer) {
        use nxast::*;
        let v10 = version == 1;
        // Standard action with a fixed body.
        let std = |w: &mut Writer, t: u16, body: &dyn Fn(&mut Writer)| {
            let start = w.len();
            w.u16(t);
            w.u16(0);
            body(w);
            finish(w, start);
        };
        // Nicira action of fixed total length `total`.
        let nx = |w: &mut Writer, st: u16, total: usize, body: &dyn Fn(&mut Writer)| {
            let start = nx_start(w, st);
            body(w);
            pad_to(w, start, total);
            finish(w, start);
        };
        match self {
            Action::Output { port, max_len } => {
                if v10 {
                    std(w, 0, &|w| {
                        w.u16(port_to_of10(*port));
                        w.u16(*max_len)
                    })
                } else {
                    std(w, 0, &|w| {
                        w.u32(*port);
                        w.u16(*max_len);
                        w.zeros(6)
                    })
                }
            }
            Action::SetVlanVid(v) => std(w, 1, &|w| w.u16(*v)),
            Action::SetVlanPcp(v) => std(w, 2, &|w| w.u8(*v)),
            Action::PopVlan => std(w, if v10 { 3 } else { 18 }, &|w| w.zeros(4)),
            Action::PushVlan(e) => std(w, 17, &|w| w.u16(*e)),
            Action::SetDlSrc(m) => std(w, if v10 { 4 } else { 3 }, &|w| {
                w.bytes(m);
                w.zeros(6)
            }),
            Action::SetDlDst(m) => std(w, if v10 { 5 } else { 4 }, &|w| {
                w.bytes(m);
                w.zeros(6)
            }),
            Action::SetNwSrc(v) => std(w, if v10 { 6 } else { 5 }, &|w| w.u32(*v)),
            Action::SetNwDst(v) => std(w, if v10 { 7 } else { 6 }, &|w| w.u32(*v)),
            Action::SetNwTos(v) => std(w, if v10 { 8 } else { 7 }, &|w| w.u8(*v)),
            Action::SetNwEcn(v) => std(w, 8, &|w| w.u8(*v)),
            Action::SetTpSrc(v) => std(w, 9, &|w| w.u16(*v)),
            Action::SetTpDst(v) => std(w, 10, &|w| w.u16(*v)),
            Action::Enqueue { port, queue } => std(w, 11, &|w| {
                w.u16(port_to_of10(*port));
                w.zeros(6);
                w.u32(*queue)
            }),
            Action::CopyTtlOut => std(w, 11, &|w| w.zeros(4)),
            Action::CopyTtlIn => std(w, 12, &|w| w.zeros(4)),
            Action::SetMplsLabel(v) if v10 => nx(w, SET_MPLS_LABEL, 16, &|w| {
                w.zeros(2);
                w.u32(*v)
            }),
            Action::SetMplsLabel(v) => std(w, 13, &|w| w.u32(*v)),
            Action::SetMplsTc(v) if v10 => nx(w, SET_MPLS_TC, 16, &|w| w.u8(*v)),
            Action::SetMplsTc(v) => std(w, 14, &|w| w.u8(*v)),
            Action::SetMplsTtl(v) if v10 => nx(w, SET_MPLS_TTL, 16, &|w| w.u8(*v)),
            Action::SetMplsTtl(v) => std(w, 15, &|w| w.u8(*v)),
            Action::DecMplsTtl if v10 => nx(w, DEC_MPLS_TTL, 16, &|_| {}),
            Action::DecMplsTtl => std(w, 16, &|w| w.zeros(4)),
            Action::PushMpls(e) if v10 => nx(w, PUSH_MPLS, 16, &|w| w.u16(*e)),
            Action::PushMpls(e) => std(w, 19, &|w| w.u16(*e)),
            Action::PopMpls(e) if v10 => nx(w, POP_MPLS, 16, &|w| w.u16(*e)),
            Action::PopMpls(e) => std(w, 20, &|w| w.u16(*e)),
            Action::SetQueue(q) if v10 => nx(w, SET_QUEUE, 16, &|w| {
                w.zeros(2);
                w.u32(*q)
            }),
            Action::SetQueue(q) => std(w, 21, &|w| w.u32(*q)),
            Action::Group(g) if v10 => nx(w, GROUP, 16, &|w| {
                w.zeros(2);
                w.u32(*g)
            }),
            Action::Group(g) => std(w, 22, &|w| w.u32(*g)),
            Action::SetNwTtl(v) => std(w, 23, &|w| w.u8(*v)),
            Action::DecNwTtl if v10 => nx(w, DEC_TTL, 16, &|_| {}),
            Action::DecNwTtl => std(w, 24, &|w| w.zeros(4)),
            Action::SetField(f) => std(w, 25, &|w| f.emit(w)),
            Action::PushPbb(e) => std(w, 26, &|w| w.u16(*e)),
            Action::PopPbb => std(w, 27, &|w| w.zeros(4)),
            Action::Meter(m) => std(w, 29, &|w| w.u32(*m)),
            Action::CopyField {
                n_bits,
                src_ofs,
                dst_ofs,
                src,
                dst,
            } => std(w, 28, &|w| {
                w.u16(*n_bits);
                w.u16(*src_ofs);
                w.u16(*dst_ofs);
                w.zeros(2);
                src.emit(w);
                dst.emit(w)
            }),
            Action::Resubmit { in_port } => nx(w, RESUBMIT, 16, &|w| w.u16(*in_port)),
            Action::ResubmitTable { in_port, table, ct } => nx(
                w,
                if *ct {
                    RESUBMIT_TABLE_CT
                } else {
                    RESUBMIT_TABLE
                },
                16,
                &|w| {
                    w.u16(*in_port);
                    w.u8(*table)
                },
            ),
            Action::SetTunnel(t) => nx(w, SET_TUNNEL, 16, &|w| {
                w.zeros(2);
                w.u32(*t)
            }),
            Action::SetTunnel64(t) => nx(w, SET_TUNNEL64, 24, &|w| {
                w.zeros(6);
                w.u64(*t)
            }),
            Action::PopQueue => nx(w, POP_QUEUE, 16, &|_| {}),
            Action::Exit => nx(w, EXIT, 16, &|_| {}),
            Action::CtClear => nx(w, CT_CLEAR, 16, &|_| {}),
            Action::RegMove {
                n_bits,
                src_ofs,
                dst_ofs,
                src,
                dst,
            } => nx(w, REG_MOVE, 0, &|w| {
                w.u16(*n_bits);
                w.u16(*src_ofs);
                w.u16(*dst_ofs);
                src.emit(w);
                dst.emit(w)
            }),
            Action::RegLoad {
                ofs_nbits,
                dst,
                value,
            } => nx(w, REG_LOAD, 24, &|w| {
                w.u16(*ofs_nbits);
                w.u32(*dst);
                w.u64(*value)
            }),
            Action::RegLoad2(f) => nx(w, REG_LOAD2, 0, &|w| f.emit(w)),
            Action::Note(n) => nx(w, NOTE, 16, &|w| w.bytes(n)),
            Action::Multipath(m) => nx(w, MULTIPATH, 32, &|w| {
                w.u16(m.fields);
                w.u16(m.basis);
                w.zeros(2);
                w.u16(m.algorithm);
                w.u16(m.max_link);
                w.u32(m.arg);
                w.zeros(2);
                w.u16(to_ofs_nbits(m.dst.ofs, m.dst.n_bits));
                w.u32(m.dst.header.word())
            }),
            Action::Bundle(b) | Action::BundleLoad(b) => {
                let st = if matches!(self, Action::Bundle(_)) {
                    BUNDLE
                } else {
                    BUNDLE_LOAD
                };
                nx(w, st, 32, &|w| {
                    w.u16(b.algorithm);
                    w.u16(b.fields);
                    w.u16(b.basis);
                    w.u32(b.member_type);
                    w.u16(b.members.len() as u16);
                    w.u16(b.ofs_nbits);
                    w.u32(b.dst);
                    w.zeros(4);
                    for m in &b.members {
                        w.u16(*m);
                    }
                })
            }
            Action::OutputReg { src, max_len } => nx(w, OUTPUT_REG, 24, &|w| {
                w.u16(to_ofs_nbits(src.ofs, src.n_bits));
                w.u32(src.header.word());
                w.u16(*max_len)
            }),
            Action::OutputReg2 { src, max_len } => nx(w, OUTPUT_REG2, 24, &|w| {
                w.u16(to_ofs_nbits(src.ofs, src.n_bits));
                w.u16(*max_len);
                src.header.emit(w)
            }),
            Action::Learn(l) => nx(
                w,
                if l.learn2.is_some() { LEARN2 } else { LEARN },
                0,
                &|w| emit_learn(l, w),
            ),
            Action::FinTimeout { idle, hard } => nx(w, FIN_TIMEOUT, 16, &|w| {
                w.u16(*idle);
                w.u16(*hard)
            }),
            Action::Controller {
                max_len,
                controller_id,
                reason,
            } => nx(w, CONTROLLER, 16, &|w| {
                w.u16(*max_len);
                w.u16(*controller_id);
                w.u8(*reason)
            }),
            Action::Controller2(c) => nx(w, CONTROLLER2, 0, &|w| {
                w.zeros(6);
                // 16-bit properties carry 2 bytes of padding inside their length.
                if let Some(v) = c.max_len {
                    emit_prop(w, 0, &[(v >> 8) as u8, v as u8, 0, 0]);
                }
                if let Some(v) = c.controller_id {
                    emit_prop(w, 1, &[(v >> 8) as u8, v as u8, 0, 0]);
                }
                if let Some(v) = c.reason {
                    emit_prop(w, 2, &[v]);
                }
                if let Some(v) = &c.userdata {
                    emit_prop(w, 3, v);
                }
                if c.pause {
                    emit_prop(w, 4, &[]);
                }
                if let Some(v) = c.meter_id {
                    emit_prop(w, 5, &v.to_be_bytes());
                }
            }),
            Action::DecTtlCntIds(ids) => nx(w, DEC_TTL_CNT_IDS, 16, &|w| {
                w.u16(ids.len() as u16);
                w.zeros(4);
                for id in ids {
                    w.u16(*id);
                }
            }),
            Action::WriteMetadata { metadata, mask } => nx(w, WRITE_METADATA, 32, &|w| {
                w.zeros(6);
                w.u64(*metadata);
                w.u64(*mask)
            }),
            Action::StackPush(s) | Action::StackPop(s) => {
                let st = if matches!(self, Action::StackPush(_)) {
                    STACK_PUSH
                } else {
                    STACK_POP
                };
                nx(w, st, 24, &|w| {
                    w.u16(s.ofs);
                    s.header.emit(w);
                    w.u16(s.n_bits)
                })
            }
            Action::Sample(s) => nx(
                w,
                s.subtype,
                if s.subtype == SAMPLE { 24 } else { 32 },
                &|w| {
                    w.u16(s.probability);
                    w.u32(s.collector_set_id);
                    w.u32(s.obs_domain_id);
                    w.u32(s.obs_point_id);
                    if s.subtype != SAMPLE {
                        w.u16(s.sampling_port);
                        w.u8(s.direction);
                    }
                },
            ),
            Action::Conjunction {
                id,
                clause,
                n_clauses,
            } => nx(w, CONJUNCTION, 16, &|w| {
                w.u8(*clause);
                w.u8(*n_clauses);
                w.u32(*id)
            }),
            Action::Ct(c) => nx(w, CT, 24, &|w| {
                w.u16(c.flags);
                match &c.zone_src {
                    Some(s) => {
                        w.u32(s.header.word());
                        w.u16(to_ofs_nbits(s.ofs, s.n_bits));
                    }
                    None => {
                        w.u32(0);
                        w.u16(c.zone_imm);
                    }
                }
                w.u8(c.recirc_table);
                w.zeros(3);
                w.u16(c.alg);
                emit_actions(&c.actions, version, w);
            }),
            Action::Nat(n) => nx(w, NAT, 16, &|w| {
                w.zeros(2);
                w.u16(n.flags);
                let present = n.ipv4_min.is_some() as u16
                    | (n.ipv4_max.is_some() as u16) << 1
                    | (n.ipv6_min.is_some() as u16) << 2
                    | (n.ipv6_max.is_some() as u16) << 3
                    | (n.proto_min.is_some() as u16) << 4
                    | (n.proto_max.is_some() as u16) << 5;
                w.u16(present);
                if let Some(v) = n.ipv4_min {
                    w.u32(v);
                }
                if let Some(v) = n.ipv4_max {
                    w.u32(v);
                }
                if let Some(v) = n.ipv6_min {
                    w.u128(v);
                }
                if let Some(v) = n.ipv6_max {
                    w.u128(v);
                }
                if let Some(v) = n.proto_min {
                    w.u16(v);
                }
                if let Some(v) = n.proto_max {
                    w.u16(v);
                }
            }),
            Action::Clone(actions) => nx(w, CLONE, 16, &|w| {
                w.zeros(6);
                emit_actions(actions, version, w)
            }),
            Action::CheckPktLarger { pkt_len, dst } => nx(w, CHECK_PKT_LARGER, 24, &|w| {
                w.u16(*pkt_len);
                w.u16(dst.ofs);
                dst.header.emit(w)
            }),
            Action::NxRaw { subtype, body } => nx(w, *subtype, 16, &|w| w.bytes(body)),
            Action::Experimenter { experimenter, body } => {
                let start = w.len();
                w.u16(0xffff);
                w.u16(0);
                w.u32(*experimenter);
                w.bytes(body);
                finish(w, start);
            }
        }
    }
}

fn emit_learn(l: &Learn, w: &mut Writer) {
    w.u16(l.idle_timeout);
    w.u16(l.hard_timeout);
    w.u16(l.priority);
    w.u64(l.cookie);
    w.u16(l.flags);
    w.u8(l.table_id);
    w.u8(0);
    w.u16(l.fin_idle_timeout);
    w.u16(l.fin_hard_timeout);
    if let Some((limit, ofs, hdr)) = &l.learn2 {
        w.u32(*limit);
        w.u16(*ofs);
        w.zeros(2);
        if let Some(h) = hdr {
            h.emit(w);
        }
    }
    for s in &l.specs {
        let mut h = s.n_bits & 0x3ff;
        if matches!(s.src, LearnSrc::Immediate(_)) {
            h |= 0x2000;
        }
        h |= match s.dst {
            LearnDst::Match { .. } => 0,
            LearnDst::Load { .. } => 1 << 11,
            LearnDst::Output => 2 << 11,
        };
        w.u16(h);
        match &s.src {
            LearnSrc::Field { header, ofs } => {
                header.emit(w);
                w.u16(*ofs);
            }
            LearnSrc::Immediate(v) => w.bytes(v),
        }
        match &s.dst {
            LearnDst::Match { header, ofs } | LearnDst::Load { header, ofs } => {
                header.emit(w);
                w.u16(*ofs);
            }
            LearnDst::Output => {}
        }
    }
}

/// An OpenFlow 1.1+ instruction.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Instruction {
    GotoTable(u8),
    WriteMetadata {
        metadata: u64,
        mask: u64,
    },
    WriteActions(Vec<Action>),
    ApplyActions(Vec<Action>),
    ClearActions,
    /// OF1.3/1.4 meter instruction (OF1.5 uses [`Action::Meter`]).
    Meter(u32),
    Experimenter {
        experimenter: u32,
        body: Vec<u8>,
    },
}

/// Decodes instructions filling all of `r`.
pub(crate) fn parse_instructions(r: &mut Reader, version: u8) -> Result<Vec<Instruction>> {
    let mut out: Vec<Instruction> = Vec::new();
    let mut r = r.with_err(OfpErr::OFPBIC_BAD_LEN);
    while !r.is_empty() {
        let itype = r.peek_u16(0).ok_or_else(|| r.short("instruction"))?;
        let len = r.peek_u16(2).ok_or_else(|| r.short("instruction"))? as usize;
        if len < 8 || len & 7 != 0 || len > r.remaining() {
            return fail(OfpErr::OFPBIC_BAD_LEN, "instruction length");
        }
        let mut b = r.sub(len, "instruction")?;
        b.skip(4, "instruction header")?;
        let exact = |want: usize| {
            if len == want {
                Ok(())
            } else {
                fail(OfpErr::OFPBIC_BAD_LEN, "instruction length")
            }
        };
        let ins = match itype {
            1 => {
                exact(8)?;
                Instruction::GotoTable(b.u8("table")?)
            }
            2 => {
                exact(24)?;
                b.pad(4, "pad")?;
                Instruction::WriteMetadata {
                    metadata: b.u64("metadata")?,
                    mask: b.u64("mask")?,
                }
            }
            3 | 4 => {
                b.pad(4, "pad")?;
                let acts = parse_actions(&mut b, version)?;
                if itype == 3 {
                    Instruction::WriteActions(acts)
                } else {
                    Instruction::ApplyActions(acts)
                }
            }
            5 => Instruction::ClearActions,
            6 if version >= 4 => {
                exact(8)?;
                Instruction::Meter(b.u32("meter")?)
            }
            0xffff => Instruction::Experimenter {
                experimenter: b.u32("experimenter")?,
                body: b.take_rest().to_vec(),
            },
            _ => return fail(OfpErr::OFPBIC_UNKNOWN_INST, "instruction type"),
        };
        if out
            .iter()
            .any(|i| std::mem::discriminant(i) == std::mem::discriminant(&ins))
            && itype != 0xffff
        {
            return fail(OfpErr::OFPBIC_DUP_INST, "duplicate instruction");
        }
        out.push(ins);
    }
    Ok(out)
}

/// Decodes a list of instructions from a byte slice (what [`encode_instructions`] wrote).
pub fn decode_instructions(bytes: &[u8], version: u8) -> Result<Vec<Instruction>> {
    parse_instructions(&mut Reader::new(bytes, OfpErr::OFPBIC_BAD_LEN), version)
}

/// Encodes a list of instructions for `version` (for OpenFlow 1.0 the instruction framing
/// is kept around the actions: a storage form, not a message body).
pub fn encode_instructions(ins: &[Instruction], version: u8) -> Vec<u8> {
    let mut w = Writer::new();
    emit_instructions(ins, version, &mut w);
    w.buf
}

pub(crate) fn emit_instructions(ins: &[Instruction], version: u8, w: &mut Writer) {
    for i in ins {
        let start = w.len();
        let t = match i {
            Instruction::GotoTable(_) => 1,
            Instruction::WriteMetadata { .. } => 2,
            Instruction::WriteActions(_) => 3,
            Instruction::ApplyActions(_) => 4,
            Instruction::ClearActions => 5,
            Instruction::Meter(_) => 6,
            Instruction::Experimenter { .. } => 0xffff,
        };
        w.u16(t);
        w.u16(0);
        match i {
            Instruction::GotoTable(t) => {
                w.u8(*t);
                w.zeros(3)
            }
            Instruction::WriteMetadata { metadata, mask } => {
                w.zeros(4);
                w.u64(*metadata);
                w.u64(*mask)
            }
            Instruction::WriteActions(a) | Instruction::ApplyActions(a) => {
                w.zeros(4);
                emit_actions(a, version, w)
            }
            Instruction::ClearActions => w.zeros(4),
            Instruction::Meter(m) => w.u32(*m),
            Instruction::Experimenter { experimenter, body } => {
                w.u32(*experimenter);
                w.bytes(body)
            }
        }
        finish(w, start);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn of10_forms_of_standard_actions() {
        // dec_ttl is NXAST_DEC_TTL in OF1.0 and OFPAT_DEC_NW_TTL (24) in 1.1+.
        let a = [
            Action::DecNwTtl,
            Action::Output {
                port: ports::CONTROLLER,
                max_len: 0xffff,
            },
        ];
        let v10 = encode_actions(&a, 1);
        assert_eq!(&v10[..10], &[0xff, 0xff, 0, 16, 0, 0, 0x23, 0x20, 0, 18]);
        assert_eq!(&v10[16..20], &[0, 0, 0, 8]);
        assert_eq!(&v10[20..22], &[0xff, 0xfd]);
        assert_eq!(decode_actions(&v10, 1).unwrap(), a);
        let v15 = encode_actions(&a, 6);
        assert_eq!(&v15[..4], &[0, 24, 0, 8]);
        assert_eq!(decode_actions(&v15, 6).unwrap(), a);
        // The OF1.0-only Nicira form is refused in 1.3+, as OVS does.
        assert_eq!(
            decode_actions(&v10, 4).unwrap_err().kind,
            OfpErr::OFPBAC_BAD_VENDOR_TYPE
        );
    }

    #[test]
    fn bad_lengths() {
        // Length not a multiple of 8.
        assert_eq!(
            decode_actions(&[0, 0, 0, 9, 0, 0, 0, 0, 0], 4)
                .unwrap_err()
                .kind,
            OfpErr::OFPBAC_BAD_LEN
        );
        // Length beyond the buffer.
        assert_eq!(
            decode_actions(&[0, 0, 0, 16, 0, 0, 0, 0], 4)
                .unwrap_err()
                .kind,
            OfpErr::OFPBAC_BAD_LEN
        );
        // Unknown vendor.
        let v = [0xff, 0xff, 0, 16, 0, 0, 0, 1, 0, 1, 0, 0, 0, 0, 0, 0];
        assert_eq!(
            decode_actions(&v, 4).unwrap_err().kind,
            OfpErr::OFPBAC_BAD_VENDOR
        );
    }

    #[test]
    fn deep_clone_nesting_is_bounded() {
        // clone(clone(clone(...))) 100 deep: an error, not a stack overflow.
        let mut a = Action::CtClear;
        for _ in 0..100 {
            a = Action::Clone(vec![a]);
        }
        let b = encode_actions(&[a], 6);
        assert_eq!(
            decode_actions(&b, 6).unwrap_err().kind,
            OfpErr::OFPBAC_BAD_ARGUMENT
        );
    }
}
