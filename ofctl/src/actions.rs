//! Actions and instructions: ovs-ofctl's syntax (ovs-actions(7)) parsed into [`Act`], encoded
//! into the codec's [`Action`]/[`Instruction`] for a given OpenFlow version with Open
//! vSwitch's encoding choices, decoded back, and printed exactly as ovs-ofctl prints them.
//!
//! [`Act`] mirrors Open vSwitch's internal `ofpact`: one variant per *meaning*, plus the few
//! bits of wire history that change how an action prints or re-encodes (`load:` vs
//! `set_field:`, `pop_vlan` vs `strip_vlan`, `resubmit:N` vs `resubmit(N,)`, `set_tunnel64`,
//! `controller` vs `controller2`).  Keeping that history is what lets a flow decoded from a
//! switch print the same text ovs-ofctl prints, and lets `parse -> encode` produce the bytes
//! ovs-ofctl sends.

use openflow::action::{
    Bundle as WBundle, Conntrack, Controller2, Learn as WLearn, LearnDst, LearnSpec, LearnSrc,
    Multipath as WMultipath, Nat as WNat, Sample as WSample, Subfield as WSubfield,
};
use openflow::oxm::OxmHeader;
use openflow::{Action, Instruction, MatchField};

use crate::field::{proto, Mf};
use crate::flowmatch::{FlowMatch, Slot};
use crate::value::{
    be_to_u128, c_hex, format_ipv4, format_ipv6, format_mac, format_port, hex_arg, mf_format,
    mf_parse, parse_hex_arg, parse_int_string, parse_ipv4, parse_ipv6, parse_mac, parse_port,
    parse_u64_full, port_from_ofp11, port_to_ofp11, ports, put_hex, u128_to_be, PortMap,
};

/// A bit range of a field (`NXM_NX_REG0[0..15]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Subfield {
    pub field: Mf,
    pub ofs: u16,
    pub n_bits: u16,
}

impl Subfield {
    pub fn full(field: Mf) -> Self {
        Subfield {
            field,
            ofs: 0,
            n_bits: field.n_bits() as u16,
        }
    }

    /// `mf_parse_subfield`: `NAME[]`, `NAME[a..b]`, `NAME[a]` or bare `NAME`, where NAME is
    /// an NXM/OXM name (optionally with `_W`) or a field name.  Returns the rest of `s`.
    pub fn parse_prefix(s: &str) -> Result<(Subfield, &str), String> {
        let name_len = s.find(['[', '-']).unwrap_or(s.len());
        let name = &s[..name_len];
        let field = Mf::from_nxm_name(name)
            .or_else(|| Mf::from_name(name))
            .ok_or_else(|| format!("{s}: unknown field `{name}'"))?;
        let n_bits = field.n_bits();
        let mut rest = &s[name_len..];
        let (mut start, mut end) = (0u32, n_bits - 1);
        if let Some(r) = rest.strip_prefix('[') {
            let close = r.find(']').ok_or_else(|| {
                format!("{s}: syntax error expecting [] or [<bit>] or [<start>..<end>]")
            })?;
            let inner = &r[..close];
            let num = |x: &str| -> Option<u32> {
                (!x.is_empty() && x.bytes().all(|c| c.is_ascii_digit()))
                    .then(|| x.parse().ok())
                    .flatten()
            };
            if inner.is_empty() {
            } else if let Some((a, b)) = inner.split_once("..") {
                match (num(a), num(b)) {
                    (Some(a), Some(b)) => {
                        start = a;
                        end = b;
                    }
                    _ => {
                        return Err(format!(
                            "{s}: syntax error expecting [] or [<bit>] or [<start>..<end>]"
                        ))
                    }
                }
            } else if let Some(a) = num(inner) {
                start = a;
                end = a;
            } else {
                return Err(format!(
                    "{s}: syntax error expecting [] or [<bit>] or [<start>..<end>]"
                ));
            }
            rest = &r[close + 1..];
            if start > end {
                return Err(format!(
                    "{s}: starting bit {start} is after ending bit {end}"
                ));
            } else if start >= n_bits {
                return Err(format!(
                    "{s}: starting bit {start} is not valid because field is only {n_bits} bits wide"
                ));
            } else if end >= n_bits {
                return Err(format!(
                    "{s}: ending bit {end} is not valid because field is only {n_bits} bits wide"
                ));
            }
        }
        Ok((
            Subfield {
                field,
                ofs: start as u16,
                n_bits: (end - start + 1) as u16,
            },
            rest,
        ))
    }

    /// Parses a whole string as a subfield.
    pub fn parse(s: &str) -> Result<Subfield, String> {
        let (sf, rest) = Subfield::parse_prefix(s)?;
        if !rest.is_empty() {
            return Err("unexpected input following field syntax".into());
        }
        Ok(sf)
    }

    /// `mf_format_subfield`.
    pub fn format(&self) -> String {
        let mut s = self.field.nxm_name();
        if self.ofs == 0 && self.n_bits as u32 == self.field.n_bits() {
            s.push_str("[]");
        } else if self.n_bits == 1 {
            s.push_str(&format!("[{}]", self.ofs));
        } else {
            s.push_str(&format!(
                "[{}..{}]",
                self.ofs,
                self.ofs as u32 + self.n_bits as u32 - 1
            ));
        }
        s
    }

    fn from_wire(header: &OxmHeader, ofs: u16, n_bits: u16) -> Result<Subfield, String> {
        let field = Mf::from_header(header)
            .ok_or_else(|| format!("unknown field header 0x{:08x}", header.word()))?;
        if ofs as u32 + n_bits as u32 > field.n_bits() || n_bits == 0 {
            return Err(format!("subfield {}[{}..] out of range", field.name(), ofs));
        }
        Ok(Subfield { field, ofs, n_bits })
    }

    fn from_wire32(word: u32, ofs: u16, n_bits: u16) -> Result<Subfield, String> {
        Subfield::from_wire(&header32(word), ofs, n_bits)
    }

    /// The header to write in an action for `version` (0 = NXM).
    fn header(&self, version: u8) -> Result<OxmHeader, String> {
        self.field
            .header_for(version)
            .map(|h| h.header)
            .ok_or_else(|| format!("{}: field has no NXM or OXM header", self.field.name()))
    }

    fn header32(&self) -> Result<OxmHeader, String> {
        self.field.nxm_header32().ok_or_else(|| {
            format!(
                "experimenter OXM field '{}' not supported",
                self.field.name()
            )
        })
    }
}

fn header32(w: u32) -> OxmHeader {
    OxmHeader {
        class: (w >> 16) as u16,
        field: ((w >> 9) & 0x7f) as u8,
        hasmask: w & 0x100 != 0,
        length: (w & 0xff) as u8,
        experimenter: 0,
    }
}

/// How a set-field arrived (it changes how it prints and re-encodes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SetRaw {
    SetField,
    RegLoad,
    RegLoad2,
}

/// `controller(...)`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Controller {
    pub max_len: u16,
    pub controller_id: u16,
    pub reason: u8,
    pub userdata: Vec<u8>,
    pub pause: bool,
    pub meter_id: Option<u32>,
    /// Arrived as NXAST_CONTROLLER2.
    pub raw2: bool,
}

/// `ct(nat(...))`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct NatAct {
    pub flags: u16,
    /// 4 = IPv4 range, 6 = IPv6 range, 0 = none.
    pub af: u8,
    pub min4: u32,
    pub max4: u32,
    pub min6: u128,
    pub max6: u128,
    pub proto_min: u16,
    pub proto_max: u16,
}

const NAT_SRC: u16 = 1;
const NAT_DST: u16 = 2;
const NAT_PERSISTENT: u16 = 4;
const NAT_HASH: u16 = 8;
const NAT_RANDOM: u16 = 16;

/// `ct(...)`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CtAct {
    pub flags: u16,
    pub zone_src: Option<Subfield>,
    pub zone_imm: u16,
    pub recirc_table: u8,
    pub alg: u16,
    pub actions: Vec<Act>,
}

/// One `learn` spec.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum LearnSpecAct {
    /// Match the destination on an immediate value.
    MatchImm {
        dst: Subfield,
        imm: Vec<u8>,
    },
    /// Match the destination on the packet's source subfield.
    MatchField {
        dst: Subfield,
        src: Subfield,
    },
    LoadImm {
        dst: Subfield,
        imm: Vec<u8>,
    },
    LoadField {
        dst: Subfield,
        src: Subfield,
    },
    Output {
        src: Subfield,
    },
}

/// `learn(...)`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct LearnAct {
    pub idle_timeout: u16,
    pub hard_timeout: u16,
    pub priority: u16,
    pub cookie: u64,
    pub flags: u16,
    pub table_id: u8,
    pub fin_idle_timeout: u16,
    pub fin_hard_timeout: u16,
    pub limit: u32,
    pub result_dst: Option<Subfield>,
    pub raw2: bool,
    pub specs: Vec<LearnSpecAct>,
}

/// `bundle(...)` / `bundle_load(...)`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct BundleAct {
    pub algorithm: u16,
    pub fields: u16,
    pub basis: u16,
    pub dst: Option<Subfield>,
    pub members: Vec<u16>,
}

/// `multipath(...)`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MultipathAct {
    pub fields: u16,
    pub basis: u16,
    pub algorithm: u16,
    pub max_link: u16,
    pub arg: u32,
    pub dst: Subfield,
}

/// `sample(...)`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SampleAct {
    pub probability: u16,
    pub collector_set_id: u32,
    pub obs_domain_id: u32,
    pub obs_point_id: u32,
    pub sampling_port: u16,
    pub direction: u8,
    /// NXAST_SAMPLE subtype it arrived as (29, 38 or 41), 0 when parsed.
    pub raw: u16,
}

/// An action or instruction (Open vSwitch's `ofpact`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Act {
    Output {
        port: u16,
        max_len: u16,
    },
    Group(u32),
    Controller(Controller),
    Enqueue {
        port: u16,
        queue: u32,
    },
    OutputReg {
        src: Subfield,
        max_len: u16,
        raw2: bool,
    },
    Bundle(BundleAct),
    SetField {
        field: Mf,
        value: Vec<u8>,
        mask: Vec<u8>,
        raw: SetRaw,
    },
    SetVlanVid {
        vid: u16,
        push_if_needed: bool,
    },
    SetVlanPcp {
        pcp: u8,
        push_if_needed: bool,
    },
    /// `strip_vlan` (OF1.0 form) or `pop_vlan`.
    StripVlan {
        pop: bool,
    },
    PushVlan(u16),
    SetEthSrc([u8; 6]),
    SetEthDst([u8; 6]),
    SetIpv4Src(u32),
    SetIpv4Dst(u32),
    SetIpDscp(u8),
    SetIpEcn(u8),
    SetIpTtl(u8),
    SetL4Src(u16),
    SetL4Dst(u16),
    RegMove {
        src: Subfield,
        dst: Subfield,
    },
    StackPush(Subfield),
    StackPop(Subfield),
    /// `dec_ttl` (None) or `dec_ttl(ids...)`.
    DecTtl(Option<Vec<u16>>),
    SetMplsLabel(u32),
    SetMplsTc(u8),
    SetMplsTtl(u8),
    DecMplsTtl,
    PushMpls(u16),
    PopMpls(u16),
    SetTunnel {
        tun_id: u64,
        raw64: bool,
    },
    SetQueue(u32),
    PopQueue,
    FinTimeout {
        idle: u16,
        hard: u16,
    },
    Resubmit {
        in_port: u16,
        table: u8,
        ct: bool,
        /// Arrived as NXAST_RESUBMIT (no table).
        plain: bool,
    },
    Learn(LearnAct),
    Conjunction {
        id: u32,
        clause: u8,
        n_clauses: u8,
    },
    Multipath(MultipathAct),
    Note(Vec<u8>),
    Exit,
    Sample(SampleAct),
    Ct(CtAct),
    CtClear,
    Nat(NatAct),
    OutputTrunc {
        port: u16,
        max_len: u32,
    },
    Clone(Vec<Act>),
    CheckPktLarger {
        pkt_len: u16,
        dst: Subfield,
    },
    DecNshTtl,
    DebugRecirc,
    DebugSlow,
    /// `encap(...)` / `decap(...)` / `delete_field` and other Nicira actions carried
    /// verbatim (subtype, bytes after the subtype).
    NxRaw {
        subtype: u16,
        body: Vec<u8>,
    },
    Meter(u32),
    ClearActions,
    WriteActions(Vec<Act>),
    WriteMetadata {
        metadata: u64,
        mask: u64,
    },
    GotoTable(u8),
}

/// Instruction rank for ordering (OVS `ovs_instruction_type`).
fn inst_rank(a: &Act) -> u8 {
    match a {
        Act::Meter(_) => 0,
        Act::ClearActions => 2,
        Act::WriteActions(_) => 3,
        Act::WriteMetadata { .. } => 4,
        Act::GotoTable(_) => 5,
        _ => 1,
    }
}

fn inst_name(rank: u8) -> &'static str {
    match rank {
        0 => "meter",
        1 => "apply_actions",
        2 => "clear_actions",
        3 => "write_actions",
        4 => "write_metadata",
        _ => "goto_table",
    }
}

fn act_name(a: &Act) -> &'static str {
    match a {
        Act::Output { .. } => "output",
        Act::Group(_) => "group",
        Act::Controller(_) => "controller",
        Act::Enqueue { .. } => "enqueue",
        Act::OutputReg { .. } => "output_reg",
        Act::Bundle(_) => "bundle",
        Act::SetField { .. } => "set_field",
        Act::SetVlanVid { .. } => "set_vlan_vid",
        Act::SetVlanPcp { .. } => "set_vlan_pcp",
        Act::StripVlan { .. } => "strip_vlan",
        Act::PushVlan(_) => "push_vlan",
        Act::SetEthSrc(_) => "mod_dl_src",
        Act::SetEthDst(_) => "mod_dl_dst",
        Act::SetIpv4Src(_) => "mod_nw_src",
        Act::SetIpv4Dst(_) => "mod_nw_dst",
        Act::SetIpDscp(_) => "mod_nw_tos",
        Act::SetIpEcn(_) => "mod_nw_ecn",
        Act::SetIpTtl(_) => "mod_nw_ttl",
        Act::SetL4Src(_) => "mod_tp_src",
        Act::SetL4Dst(_) => "mod_tp_dst",
        Act::RegMove { .. } => "move",
        Act::StackPush(_) => "push",
        Act::StackPop(_) => "pop",
        Act::DecTtl(_) => "dec_ttl",
        Act::SetMplsLabel(_) => "set_mpls_label",
        Act::SetMplsTc(_) => "set_mpls_tc",
        Act::SetMplsTtl(_) => "set_mpls_ttl",
        Act::DecMplsTtl => "dec_mpls_ttl",
        Act::PushMpls(_) => "push_mpls",
        Act::PopMpls(_) => "pop_mpls",
        Act::SetTunnel { .. } => "set_tunnel",
        Act::SetQueue(_) => "set_queue",
        Act::PopQueue => "pop_queue",
        Act::FinTimeout { .. } => "fin_timeout",
        Act::Resubmit { .. } => "resubmit",
        Act::Learn(_) => "learn",
        Act::Conjunction { .. } => "conjunction",
        Act::Multipath(_) => "multipath",
        Act::Note(_) => "note",
        Act::Exit => "exit",
        Act::Sample(_) => "sample",
        Act::Ct(_) => "ct",
        Act::CtClear => "ct_clear",
        Act::Nat(_) => "nat",
        Act::OutputTrunc { .. } => "output_trunc",
        Act::Clone(_) => "clone",
        Act::CheckPktLarger { .. } => "check_pkt_larger",
        Act::DecNshTtl => "dec_nsh_ttl",
        Act::DebugRecirc => "debug_recirc",
        Act::DebugSlow => "debug_slow",
        Act::NxRaw { subtype, .. } => match subtype {
            46 => "encap",
            47 => "decap",
            50 => "delete_field",
            _ => "<unknown>",
        },
        Act::Meter(_) => "meter",
        Act::ClearActions => "clear_actions",
        Act::WriteActions(_) => "write_actions",
        Act::WriteMetadata { .. } => "write_metadata",
        Act::GotoTable(_) => "goto_table",
    }
}

// ---------------------------------------------------------------------------------------
// Tokenizer
// ---------------------------------------------------------------------------------------

/// `parse_value`: length of a value up to a delimiter, skipping balanced parentheses.
fn value_len(s: &[u8], delims: &[u8]) -> usize {
    let mut n = 0;
    while n < s.len() && !delims.contains(&s[n]) {
        if s[n] == b'(' {
            let mut level = 0i32;
            loop {
                match s.get(n) {
                    None => return n,
                    Some(b'(') => level += 1,
                    Some(b')') => level -= 1,
                    _ => {}
                }
                n += 1;
                if level <= 0 {
                    break;
                }
            }
        } else {
            n += 1;
        }
    }
    n
}

/// `ofputil_parse_key_value`: splits `KEY`, `KEY=VALUE`, `KEY:VALUE` or `KEY(VALUE)` items
/// separated by commas or white space.
pub struct KeyValues<'a> {
    rest: &'a str,
}

impl<'a> KeyValues<'a> {
    pub fn new(s: &'a str) -> Self {
        KeyValues { rest: s }
    }

    /// The text not parsed yet (what OVS's error messages sometimes quote).
    pub fn rest(&self) -> &'a str {
        self.rest
    }
}

impl<'a> Iterator for KeyValues<'a> {
    type Item = (&'a str, &'a str);

    fn next(&mut self) -> Option<(&'a str, &'a str)> {
        let s = self.rest.trim_start_matches([',', ' ', '\t', '\r', '\n']);
        if s.is_empty() {
            self.rest = s;
            return None;
        }
        let b = s.as_bytes();
        let key_len = b
            .iter()
            .position(|c| b":=(, \t\r\n".contains(c))
            .unwrap_or(b.len());
        let key = &s[..key_len];
        let delim = b.get(key_len).copied();
        let after = if delim.is_some() {
            key_len + 1
        } else {
            key_len
        };
        let value_delims: &[u8] = match delim {
            Some(b':') | Some(b'=') => b", \t\r\n",
            Some(b'(') => b")",
            _ => {
                self.rest = &s[after..];
                return Some((key, ""));
            }
        };
        let vs = &s[after..];
        let vb = vs.as_bytes();
        let mut vlen = value_len(vb, value_delims);
        if delim == Some(b'(')
            && vb.get(vlen) == Some(&b')')
            && vb.get(vlen + 1) == Some(&b'-')
            && vb.get(vlen + 2) == Some(&b'>')
        {
            vlen += value_len(&vb[vlen..], b", \t\r\n");
        }
        let value = &vs[..vlen];
        let consumed = vlen + usize::from(vlen < vb.len());
        self.rest = &vs[consumed..];
        Some((key, value))
    }
}

// ---------------------------------------------------------------------------------------
// Parsing
// ---------------------------------------------------------------------------------------

/// Parse context: port names, and the protocols the parsed text can be expressed in.
pub struct ParseCtx<'a> {
    pub port_map: Option<&'a PortMap>,
    pub usable: u32,
    depth: u32,
}

impl<'a> ParseCtx<'a> {
    pub fn new(port_map: Option<&'a PortMap>) -> Self {
        ParseCtx {
            port_map,
            usable: proto::ANY,
            depth: 0,
        }
    }
}

fn str_to_u16(s: &str, name: &str) -> Result<u16, String> {
    match parse_u64_full(s) {
        Some(v) if v <= u16::MAX as u64 => Ok(v as u16),
        _ => Err(format!("invalid {name} \"{s}\"")),
    }
}

fn str_to_u8(s: &str, name: &str) -> Result<u8, String> {
    match parse_u64_full(s) {
        Some(v) if v <= u8::MAX as u64 => Ok(v as u8),
        _ => Err(format!("invalid {name} \"{s}\"")),
    }
}

fn str_to_u32(s: &str) -> Result<u32, String> {
    match parse_u64_full(s) {
        Some(v) if v <= u32::MAX as u64 => Ok(v as u32),
        _ => Err(format!("invalid numeric format {s}")),
    }
}

fn str_to_u64(s: &str) -> Result<u64, String> {
    parse_u64_full(s).ok_or_else(|| format!("invalid numeric format {s}"))
}

/// C `atoi`: leading digits, 0 when none.
fn atoi(s: &str) -> i64 {
    let t = s.trim_start();
    let (neg, t) = match t.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, t.strip_prefix('+').unwrap_or(t)),
    };
    let digits: String = t.chars().take_while(|c| c.is_ascii_digit()).collect();
    let v: i64 = digits.parse().unwrap_or(0);
    if neg {
        -v
    } else {
        v
    }
}

/// Parses a table number (ovs `ofputil_table_from_string` without names).
pub fn parse_table(s: &str) -> Option<u8> {
    parse_u64_full(s).and_then(|v| u8::try_from(v).ok())
}

/// Parses an action list (`allow_instructions` at the top level of a flow).
pub fn parse_actions(s: &str, ctx: &mut ParseCtx) -> Result<Vec<Act>, String> {
    parse_actions_nested(s, ctx, true, None)
}

fn parse_actions_nested(
    s: &str,
    ctx: &mut ParseCtx,
    allow_instructions: bool,
    outer: Option<&'static str>,
) -> Result<Vec<Act>, String> {
    if ctx.depth >= 64 {
        return Err("Action nested too deeply".into());
    }
    ctx.depth += 1;
    let r = parse_actions_inner(s, ctx, allow_instructions, outer);
    ctx.depth -= 1;
    r
}

fn parse_actions_inner(
    s: &str,
    ctx: &mut ParseCtx,
    allow_instructions: bool,
    outer: Option<&'static str>,
) -> Result<Vec<Act>, String> {
    let mut out: Vec<Act> = Vec::new();
    let mut drop = false;
    for (key, value) in KeyValues::new(s) {
        let lower = key.to_ascii_lowercase();
        match lower.as_str() {
            "drop" => {
                drop = true;
                continue;
            }
            "apply_actions" => return Err("apply_actions is the default instruction".into()),
            _ => {}
        }
        match parse_one(key, &lower, value, ctx, &mut out)? {
            true => {
                if lower == "meter" && !allow_instructions {
                    ctx.usable &= proto::OF15_UP;
                }
            }
            false => {
                // Bare port name/number: output.
                match parse_port(key, ctx.port_map) {
                    Some(port) => out.push(Act::Output {
                        port,
                        max_len: if port == ports::CONTROLLER {
                            u16::MAX
                        } else {
                            0
                        },
                    }),
                    None => return Err(format!("unknown action {key}")),
                }
            }
        }
    }
    if drop && !out.is_empty() {
        return Err("\"drop\" must not be accompanied by any other action or instruction".into());
    }
    verify(&out, allow_instructions, outer)?;
    Ok(out)
}

/// `ofpacts_verify`: instruction order, conjunction exclusivity, nesting rules.
fn verify(
    acts: &[Act],
    allow_instructions: bool,
    outer: Option<&'static str>,
) -> Result<(), String> {
    if acts.iter().any(|a| matches!(a, Act::Conjunction { .. })) {
        for a in acts {
            if !matches!(a, Act::Conjunction { .. } | Act::Note(_)) {
                return Err(format!(
                    "\"conjunction\" actions may be used along with \"note\" but not any \
                     other kind of action (such as the \"{}\" action used here)",
                    act_name(a)
                ));
            }
        }
        return Ok(());
    }
    let mut inst = 0u8;
    for (i, a) in acts.iter().enumerate() {
        verify_nested(a, outer)?;
        let next = inst_rank(a);
        if i > 0 && (if inst == 1 { next < inst } else { next <= inst }) {
            if next == inst {
                return Err(format!(
                    "duplicate {} instruction not allowed, for OpenFlow 1.1+ compatibility",
                    inst_name(inst)
                ));
            }
            return Err(format!(
                "invalid instruction ordering: {} must appear before {}, for OpenFlow 1.1+ \
                 compatibility",
                inst_name(next),
                inst_name(inst)
            ));
        }
        let allowed = allow_instructions || next == 1 || next == 0;
        if !allowed {
            return Err(format!("{} instruction not allowed here", inst_name(next)));
        }
        inst = next;
    }
    Ok(())
}

/// `ofpacts_verify_nested`: what may appear inside `ct(exec(...))`, `clone(...)` and
/// `write_actions(...)`, and where `nat` and ct_mark/ct_label writes may appear.
fn verify_nested(a: &Act, outer: Option<&'static str>) -> Result<(), String> {
    let dst = match a {
        Act::SetField { field, .. } => Some(*field),
        Act::RegMove { dst, .. } => Some(dst.field),
        _ => None,
    };
    let requires_ct = |f: Mf| matches!(f, Mf::CtMark | Mf::CtLabel);
    if dst.is_some_and(requires_ct) && outer != Some("ct") {
        return Err("cannot set CT fields outside of ct action".into());
    }
    if let Act::Nat(_) = a {
        if outer != Some("ct") {
            return Err("Cannot have NAT action outside of \"ct\" action".into());
        }
        return Ok(());
    }
    if let Some(outer) = outer {
        if outer == "ct" {
            match dst {
                None => {
                    return Err(format!(
                        "ct action doesn't support nested action {}",
                        act_name(a)
                    ))
                }
                Some(f) if !requires_ct(f) => {
                    return Err(format!(
                        "ct action doesn't support nested modification of {}",
                        f.name()
                    ))
                }
                _ => {}
            }
        }
        if let Act::Meter(_) = a {
            return Err(format!(
                "{outer} action doesn't support nested action meter"
            ));
        }
    }
    Ok(())
}

/// Parses one action; Ok(false) when `key` is not an action name.
fn parse_one(
    key: &str,
    lower: &str,
    arg: &str,
    ctx: &mut ParseCtx,
    out: &mut Vec<Act>,
) -> Result<bool, String> {
    let map = ctx.port_map;
    match lower {
        "output" | "output_reg" => {
            if arg.contains("port") && arg.contains("max_len") {
                let (mut port, mut max_len) = (0u16, 0u32);
                for (k, v) in KeyValues::new(arg) {
                    match k {
                        "port" => {
                            port = parse_port(v, map)
                                .ok_or_else(|| format!("output to unknown truncate port: {v}"))?;
                            if port > ports::MAX && port != ports::LOCAL && port != ports::IN_PORT {
                                return Err(format!("output to unsupported truncate port: {v}"));
                            }
                        }
                        "max_len" => {
                            max_len = str_to_u32(v)?;
                            if max_len < 14 {
                                return Err(format!(
                                    "max_len {max_len} is less than the minimum value 14"
                                ));
                            }
                        }
                        _ => return Err(format!("invalid key '{k}' in output_trunc argument")),
                    }
                }
                out.push(Act::OutputTrunc { port, max_len });
            } else if let Some(port) = parse_port(arg, map) {
                out.push(Act::Output {
                    port,
                    max_len: if port == ports::CONTROLLER {
                        u16::MAX
                    } else {
                        0
                    },
                });
            } else if let Ok(src) = Subfield::parse(arg) {
                out.push(Act::OutputReg {
                    src,
                    max_len: u16::MAX,
                    raw2: false,
                });
            } else {
                return Err(format!("{arg}: output to unknown port"));
            }
        }
        "group" => out.push(Act::Group(str_to_u32(arg)?)),
        "controller" => out.push(parse_controller(arg)?),
        "enqueue" => {
            let mut it = arg.splitn(2, [':', 'q', ',']);
            let (port, queue) = match (it.next(), it.next()) {
                (Some(p), Some(q)) if !p.is_empty() => (p, q),
                _ => {
                    return Err("\"enqueue\" syntax is \"enqueue:PORT:QUEUE\" or \
                                \"enqueue(PORT,QUEUE)\""
                        .into())
                }
            };
            let port =
                parse_port(port, map).ok_or_else(|| format!("{port}: enqueue to unknown port"))?;
            let queue = str_to_u32(queue.trim_start_matches([':', 'q', ',']))?;
            out.push(Act::Enqueue { port, queue });
        }
        "bundle" => out.push(parse_bundle(arg, false, map)?),
        "bundle_load" => out.push(parse_bundle(arg, true, map)?),
        "set_field" => {
            let (field, value, mask) = parse_set_field(arg, map)?;
            ctx.usable &= field.usable_exact();
            out.push(Act::SetField {
                field,
                value,
                mask,
                raw: SetRaw::SetField,
            });
        }
        "load" => out.push(parse_reg_load(arg)?),
        "set_vlan_vid" | "mod_vlan_vid" => {
            let vid = str_to_u16(arg, "VLAN VID")?;
            if vid & !0xfff != 0 {
                return Err(format!("{arg}: not a valid VLAN VID"));
            }
            out.push(Act::SetVlanVid {
                vid,
                push_if_needed: lower == "mod_vlan_vid",
            });
        }
        "set_vlan_pcp" | "mod_vlan_pcp" => {
            let pcp = str_to_u8(arg, "VLAN PCP")?;
            if pcp & !7 != 0 {
                return Err(format!("{arg}: not a valid VLAN PCP"));
            }
            out.push(Act::SetVlanPcp {
                pcp,
                push_if_needed: lower == "mod_vlan_pcp",
            });
        }
        "strip_vlan" => out.push(Act::StripVlan { pop: false }),
        "pop_vlan" => out.push(Act::StripVlan { pop: true }),
        "push_vlan" => {
            ctx.usable &= proto::OF11_UP;
            let e = str_to_u16(arg, "ethertype")?;
            if e != 0x8100 && e != 0x88a8 {
                return Err(format!("{arg}: not a valid VLAN ethertype"));
            }
            out.push(Act::PushVlan(e));
        }
        "mod_dl_src" | "mod_dl_dst" => {
            let mac = parse_mac(arg).ok_or_else(|| format!("invalid mac address {arg}"))?;
            out.push(if lower == "mod_dl_src" {
                Act::SetEthSrc(mac)
            } else {
                Act::SetEthDst(mac)
            });
        }
        "mod_nw_src" | "mod_nw_dst" => {
            let ip =
                parse_ipv4(arg).ok_or_else(|| format!("{arg}: could not convert to IP address"))?;
            out.push(if lower == "mod_nw_src" {
                Act::SetIpv4Src(ip)
            } else {
                Act::SetIpv4Dst(ip)
            });
        }
        "mod_nw_tos" => {
            let tos = str_to_u8(arg, "TOS")?;
            if tos & !0xfc != 0 {
                return Err(format!("{arg}: not a valid TOS"));
            }
            out.push(Act::SetIpDscp(tos));
        }
        "mod_nw_ecn" => {
            let ecn = str_to_u8(arg, "ECN")?;
            if ecn & !3 != 0 {
                return Err(format!("{arg}: not a valid ECN"));
            }
            out.push(Act::SetIpEcn(ecn));
        }
        "mod_nw_ttl" | "set_nw_ttl" => out.push(Act::SetIpTtl(str_to_u8(arg, "TTL")?)),
        "mod_tp_src" => out.push(Act::SetL4Src(str_to_u16(arg, "source port")?)),
        "mod_tp_dst" => out.push(Act::SetL4Dst(str_to_u16(arg, "destination port")?)),
        "move" => {
            let (src, dst) = parse_reg_move(arg)?;
            out.push(Act::RegMove { src, dst });
        }
        "push" => out.push(Act::StackPush(Subfield::parse(arg)?)),
        "pop" => out.push(Act::StackPop(Subfield::parse(arg)?)),
        "dec_ttl" => {
            if arg.is_empty() {
                out.push(Act::DecTtl(None));
            } else {
                let ids: Vec<u16> = arg
                    .split([',', ' '])
                    .filter(|x| !x.is_empty())
                    .map(|x| atoi(x) as u16)
                    .collect();
                if ids.is_empty() {
                    return Err("dec_ttl_cnt_ids: expected at least one controller id.".into());
                }
                out.push(Act::DecTtl(Some(ids)));
            }
        }
        "set_mpls_label" => {
            if arg.is_empty() {
                return Err("set_mpls_label: expected label.".into());
            }
            let l = str_to_u32(arg)?;
            if l & !0xfffff != 0 {
                return Err(format!("{arg}: not a valid MPLS label"));
            }
            out.push(Act::SetMplsLabel(l));
        }
        "set_mpls_tc" => {
            if arg.is_empty() {
                return Err("set_mpls_tc: expected tc.".into());
            }
            let tc = str_to_u8(arg, "MPLS TC")?;
            if tc & !7 != 0 {
                return Err(format!("{arg}: not a valid MPLS TC"));
            }
            out.push(Act::SetMplsTc(tc));
        }
        "set_mpls_ttl" => {
            if arg.is_empty() {
                return Err("set_mpls_ttl: expected ttl.".into());
            }
            out.push(Act::SetMplsTtl(str_to_u8(arg, "MPLS TTL")?));
        }
        "dec_mpls_ttl" => out.push(Act::DecMplsTtl),
        "push_mpls" => out.push(Act::PushMpls(str_to_u16(arg, "push_mpls")?)),
        "pop_mpls" => out.push(Act::PopMpls(str_to_u16(arg, "pop_mpls")?)),
        "set_tunnel" | "set_tunnel64" => out.push(Act::SetTunnel {
            tun_id: str_to_u64(arg)?,
            raw64: lower == "set_tunnel64",
        }),
        "set_queue" => out.push(Act::SetQueue(str_to_u32(arg)?)),
        "pop_queue" => out.push(Act::PopQueue),
        "fin_timeout" => {
            let (mut idle, mut hard) = (0, 0);
            for (k, v) in KeyValues::new(arg) {
                match k {
                    "idle_timeout" => idle = str_to_u16(v, k)?,
                    "hard_timeout" => hard = str_to_u16(v, k)?,
                    _ => return Err(format!("invalid key '{k}' in 'fin_timeout' argument")),
                }
            }
            out.push(Act::FinTimeout { idle, hard });
        }
        "resubmit" => out.push(parse_resubmit(arg, map)?),
        "learn" => out.push(Act::Learn(parse_learn(arg, map)?)),
        "conjunction" => out.push(parse_conjunction(arg)?),
        "multipath" => out.push(parse_multipath(arg)?),
        "note" => {
            let data =
                parse_hex_arg(arg).map_err(|_| "bad hex digit in `note' argument".to_string())?;
            out.push(Act::Note(data));
        }
        "exit" => out.push(Act::Exit),
        "sample" => out.push(parse_sample(arg, map)?),
        "ct" => out.push(parse_ct(arg, ctx)?),
        "ct_clear" => out.push(Act::CtClear),
        "nat" => out.push(Act::Nat(parse_nat(arg)?)),
        "clone" => {
            let acts = parse_actions_nested(arg, ctx, false, Some("clone"))?;
            out.push(Act::Clone(acts));
        }
        "check_pkt_larger" => {
            let (v, k) = arg
                .split_once("->")
                .ok_or_else(|| format!("{arg}: missing `->'"))?;
            if k.is_empty() {
                return Err(format!("{arg}: missing field name following `->'"));
            }
            let v = v.strip_suffix(')').unwrap_or(v);
            let dst = Subfield::parse(k)?;
            if dst.n_bits != 1 {
                return Err("Only 1-bit destination field is allowed".into());
            }
            let pkt_len = str_to_u16(v, "").map_err(|_| format!("invalid numeric format {v}"))?;
            out.push(Act::CheckPktLarger { pkt_len, dst });
        }
        "dec_nsh_ttl" => out.push(Act::DecNshTtl),
        "debug_recirc" => out.push(Act::DebugRecirc),
        "debug_slow" => out.push(Act::DebugSlow),
        "encap" => {
            ctx.usable &= proto::OF13_UP;
            out.push(parse_encap(arg)?);
        }
        "decap" => out.push(parse_decap(arg)?),
        "meter" => {
            ctx.usable &= proto::OF13_UP;
            out.push(Act::Meter(str_to_u32(arg)?));
        }
        "clear_actions" => out.push(Act::ClearActions),
        "write_actions" => {
            let acts = parse_actions_nested(arg, ctx, false, Some("write_actions"))?;
            out.push(Act::WriteActions(acts));
        }
        "write_metadata" => {
            ctx.usable &= proto::NXM_OF11_UP;
            let (v, m) = match arg.split_once('/') {
                Some((v, m)) => (v, Some(m)),
                None => (arg, None),
            };
            let mask = match m {
                Some(m) => str_to_u64(m)?,
                None => u64::MAX,
            };
            out.push(Act::WriteMetadata {
                metadata: str_to_u64(v)?,
                mask,
            });
        }
        "goto_table" => {
            let t = parse_table(arg).ok_or_else(|| format!("unknown table \"{arg}\""))?;
            out.push(Act::GotoTable(t));
        }
        "unroll_xlate" => {
            return Err("UNROLL is an internal action that shouldn't be used via OpenFlow".into())
        }
        "output_trunc" => return Err(format!("unknown action {arg}")),
        _ => {
            let _ = key;
            return Ok(false);
        }
    }
    Ok(true)
}

fn parse_controller(arg: &str) -> Result<Act, String> {
    let mut reason = 1u8;
    let mut controller_id = 0u16;
    let mut max_len = u16::MAX;
    let mut meter_id = None;
    let mut userdata: Option<Vec<u8>> = None;
    let mut pause = false;
    if arg.is_empty() {
    } else if arg.bytes().all(|c| c.is_ascii_digit()) {
        max_len = str_to_u16(arg, "max_len")?;
    } else {
        for (k, v) in KeyValues::new(arg) {
            match k {
                "reason" => {
                    reason = packet_in_reason_from_string(v)
                        .ok_or_else(|| format!("unknown reason \"{v}\""))?
                }
                "max_len" => max_len = str_to_u16(v, "max_len")?,
                "id" => controller_id = str_to_u16(v, "id")?,
                "userdata" => {
                    userdata = Some(parse_hex_arg(v).map_err(|_| {
                        "bad hex digit in `controller' action `userdata'".to_string()
                    })?)
                }
                "pause" => pause = true,
                "meter_id" => meter_id = Some(str_to_u32(v)?),
                _ => return Err(format!("unknown key \"{k}\" parsing controller action")),
            }
        }
    }
    if reason == 1 && controller_id == 0 && userdata.is_none() && !pause && meter_id.is_none() {
        return Ok(Act::Output {
            port: ports::CONTROLLER,
            max_len,
        });
    }
    Ok(Act::Controller(Controller {
        max_len,
        controller_id,
        reason,
        userdata: userdata.unwrap_or_default(),
        pause,
        meter_id,
        raw2: false,
    }))
}

/// Packet-in reason names.
pub fn packet_in_reason_to_string(r: u8) -> String {
    match r {
        0 => "no_match".into(),
        1 => "action".into(),
        2 => "invalid_ttl".into(),
        3 => "action_set".into(),
        4 => "group".into(),
        5 => "packet_out".into(),
        6 | 7 => "no_match".into(),
        n => n.to_string(),
    }
}

fn packet_in_reason_from_string(s: &str) -> Option<u8> {
    (0..6u8).find(|r| packet_in_reason_to_string(*r).eq_ignore_ascii_case(s))
}

/// `set_field:VALUE->FIELD`.
fn parse_set_field(arg: &str, map: Option<&PortMap>) -> Result<(Mf, Vec<u8>, Vec<u8>), String> {
    let (value, key) = arg
        .split_once("->")
        .ok_or_else(|| format!("{arg}: missing `->'"))?;
    if key.is_empty() {
        return Err(format!("{arg}: missing field name following `->'"));
    }
    let mf = Mf::from_name(key).ok_or_else(|| format!("{key} is not a valid OXM field name"))?;
    if !mf.info().writable {
        return Err(format!("{key} is read-only"));
    }
    let fv = mf_parse(mf, value, map)?;
    Ok((mf, fv.value, fv.mask))
}

/// `load:VALUE->DST[..]`.
fn parse_reg_load(arg: &str) -> Result<Act, String> {
    let (value, key) = arg
        .split_once("->")
        .ok_or_else(|| format!("{arg}: missing `->'"))?;
    if key.is_empty() {
        return Err(format!("{arg}: missing field name following `->'"));
    }
    let dst = Subfield::parse(key)?;
    let n = dst.field.n_bytes();
    let (v, _tail) =
        parse_int_string(value, n).map_err(|_| format!("{arg}: cannot parse integer value"))?;
    let vv = be_to_u128(&v);
    if dst.n_bits < 128 && (vv >> dst.n_bits) != 0 {
        return Err(format!(
            "{arg}: value {} does not fit into {} bits",
            mf_format(dst.field, &v, None, None),
            dst.n_bits
        ));
    }
    let mut value = vec![0u8; n];
    let mut mask = vec![0u8; n];
    bits_put(&mut value, dst.ofs as u32, dst.n_bits as u32, vv);
    bits_put(&mut mask, dst.ofs as u32, dst.n_bits as u32, u128::MAX);
    Ok(Act::SetField {
        field: dst.field,
        value,
        mask,
        raw: SetRaw::RegLoad,
    })
}

/// Writes the low `n` bits of `v` at bit offset `ofs` of big-endian `buf`.
fn bits_put(buf: &mut [u8], ofs: u32, n: u32, v: u128) {
    let total = buf.len() as u32 * 8;
    for i in 0..n {
        let bit = ofs + i;
        if bit >= total {
            break;
        }
        let byte = (total - 1 - bit) / 8;
        let shift = bit % 8;
        let set = i < 128 && (v >> i) & 1 == 1;
        if set {
            buf[byte as usize] |= 1 << shift;
        } else {
            buf[byte as usize] &= !(1 << shift);
        }
    }
}

/// Reads `n` bits at `ofs` of big-endian `buf`.
fn bits_get(buf: &[u8], ofs: u32, n: u32) -> u128 {
    let total = buf.len() as u32 * 8;
    let mut v = 0u128;
    for i in (0..n.min(128)).rev() {
        let bit = ofs + i;
        if bit >= total {
            continue;
        }
        let byte = (total - 1 - bit) / 8;
        v = v << 1 | ((buf[byte as usize] >> (bit % 8)) & 1) as u128;
    }
    v
}

/// First bit at or after `start` (below `end`) whose mask bit equals `want`.
fn bit_scan(mask: &[u8], want: bool, start: u32, end: u32) -> u32 {
    let mut i = start;
    while i < end {
        if (bits_get(mask, i, 1) == 1) == want {
            return i;
        }
        i += 1;
    }
    end
}

/// `next_load_segment`: splits a set-field into contiguous runs of at most 64 bits.
fn load_segments(field: Mf, value: &[u8], mask: &[u8]) -> Vec<(Subfield, u64)> {
    let n_bits = field.n_bits();
    let mut out = Vec::new();
    let mut start = 0u32;
    while start < n_bits {
        let ofs = bit_scan(mask, true, start, n_bits);
        if ofs >= n_bits {
            break;
        }
        let end = bit_scan(mask, false, ofs + 1, (ofs + 64).min(n_bits));
        let nb = end - ofs;
        out.push((
            Subfield {
                field,
                ofs: ofs as u16,
                n_bits: nb as u16,
            },
            bits_get(value, ofs, nb) as u64,
        ));
        start = end;
    }
    out
}

fn parse_reg_move(arg: &str) -> Result<(Subfield, Subfield), String> {
    let (src, rest) = Subfield::parse_prefix(arg)?;
    let rest = rest
        .strip_prefix("->")
        .ok_or_else(|| format!("{arg}: missing `->' following source"))?;
    let (dst, tail) = Subfield::parse_prefix(rest)?;
    if !tail.is_empty() {
        return Err(format!("{arg}: trailing garbage following destination"));
    }
    if src.n_bits != dst.n_bits {
        return Err(format!(
            "{arg}: source field is {} bits wide but destination is {} bits wide",
            src.n_bits, dst.n_bits
        ));
    }
    Ok((src, dst))
}

fn parse_resubmit(arg: &str, map: Option<&PortMap>) -> Result<Act, String> {
    let mut parts = arg.splitn(3, ',');
    let in_port_s = parts.next().unwrap_or("");
    let table_s = parts.next().unwrap_or("");
    let ct_s = parts.next().unwrap_or("");
    let in_port = if in_port_s.is_empty() {
        ports::IN_PORT
    } else {
        parse_port(in_port_s, map)
            .ok_or_else(|| format!("{in_port_s}: resubmit to unknown port"))?
    };
    let table = if table_s.is_empty() {
        255
    } else {
        parse_table(table_s).ok_or_else(|| format!("{table_s}: resubmit to unknown table"))?
    };
    let ct = if ct_s.is_empty() {
        false
    } else if ct_s == "ct" {
        true
    } else {
        return Err(format!("{ct_s}: unknown parameter"));
    };
    if in_port == ports::IN_PORT && table == 255 {
        return Err("at least one \"in_port\" or \"table\" must be specified on resubmit".into());
    }
    Ok(Act::Resubmit {
        in_port,
        table,
        ct,
        plain: false,
    })
}

fn parse_conjunction(arg: &str) -> Result<Act, String> {
    let syntax = || "\"conjunction\" syntax is \"conjunction(id,i/n)\"".to_string();
    let (id, rest) = arg.split_once(',').ok_or_else(syntax)?;
    let (clause, n) = rest.split_once('/').ok_or_else(syntax)?;
    let id = parse_u64_full(id.trim())
        .filter(|v| *v <= u32::MAX as u64)
        .ok_or_else(syntax)? as u32;
    let clause: u8 = clause.trim().parse().map_err(|_| syntax())?;
    let n_clauses: u8 = n.trim().parse().map_err(|_| syntax())?;
    if n_clauses < 2 {
        return Err("conjunction must have at least 2 clauses".into());
    } else if n_clauses > 64 {
        return Err("conjunction must have at most 64 clauses".into());
    } else if clause < 1 {
        return Err("clause index must be positive".into());
    } else if clause > n_clauses {
        return Err("clause index must be less than or equal to number of clauses".into());
    }
    Ok(Act::Conjunction {
        id,
        clause: clause - 1,
        n_clauses,
    })
}

const HASH_FIELDS: &[(&str, u16)] = &[
    ("eth_src", 0),
    ("symmetric_l4", 1),
    ("symmetric_l3l4", 2),
    ("symmetric_l3l4+udp", 3),
    ("nw_src", 4),
    ("nw_dst", 5),
    ("symmetric_l3", 6),
];

fn hash_fields_name(f: u16) -> &'static str {
    HASH_FIELDS
        .iter()
        .find(|(_, v)| *v == f)
        .map(|(n, _)| *n)
        .unwrap_or("<unknown>")
}

fn parse_hash_fields(s: &str, whole: &str) -> Result<u16, String> {
    HASH_FIELDS
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(s))
        .map(|(_, v)| *v)
        .ok_or_else(|| format!("{whole}: unknown fields `{s}'"))
}

const MP_ALGS: &[(&str, u16)] = &[
    ("modulo_n", 0),
    ("hash_threshold", 1),
    ("hrw", 2),
    ("iter_hash", 3),
];

fn parse_multipath(arg: &str) -> Result<Act, String> {
    let toks: Vec<&str> = arg.split([',', ' ']).filter(|t| !t.is_empty()).collect();
    if toks.len() < 6 {
        return Err(format!("{arg}: not enough arguments to multipath action"));
    }
    let fields = parse_hash_fields(toks[0], arg)?;
    let basis = atoi(toks[1]) as u16;
    let algorithm = MP_ALGS
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(toks[2]))
        .map(|(_, v)| *v)
        .ok_or_else(|| format!("{arg}: unknown algorithm `{}'", toks[2]))?;
    let n_links = atoi(toks[3]);
    if !(1..=65536).contains(&n_links) {
        return Err(format!(
            "{arg}: n_links {n_links} is not in valid range 1 to 65536"
        ));
    }
    let argv = atoi(toks[4]) as u32;
    let dst = Subfield::parse(toks[5])?;
    if dst.field.nxm_header32().is_none() {
        return Err(format!(
            "{arg}: experimenter OXM field '{}' not supported",
            toks[5]
        ));
    }
    if dst.n_bits < 16 && n_links > (1i64 << dst.n_bits) {
        return Err(format!(
            "{arg}: {}-bit destination field has {} possible values, less than specified n_links {}",
            dst.n_bits,
            1u32 << dst.n_bits,
            n_links
        ));
    }
    Ok(Act::Multipath(MultipathAct {
        fields,
        basis,
        algorithm,
        max_link: (n_links - 1) as u16,
        arg: argv,
        dst,
    }))
}

fn parse_bundle(arg: &str, load: bool, map: Option<&PortMap>) -> Result<Act, String> {
    let toks: Vec<&str> = arg
        .split([',', ' ', '[', ']'])
        .filter(|t| !t.is_empty())
        .collect();
    let need = if load { 6 } else { 5 };
    if toks.len() < need {
        return Err(format!("{arg}: not enough arguments to bundle action"));
    }
    // The member delimiter may be glued to the first member: "members:1".
    let (fields, basis, alg, mtype) = (toks[0], toks[1], toks[2], toks[3]);
    let dst = if load { Some(toks[4]) } else { None };
    let delim_tok = toks[need - 1];
    let (delim, first) = match delim_tok.split_once(':') {
        Some((d, f)) => (d, Some(f)),
        None => (delim_tok, None),
    };
    if !delim.eq_ignore_ascii_case("members") && !delim.eq_ignore_ascii_case("slaves") {
        return Err(format!(
            "{arg}: missing member delimiter, expected `members', got `{delim}'"
        ));
    }
    let mut members = Vec::new();
    for m in first
        .into_iter()
        .filter(|f| !f.is_empty())
        .chain(toks[need..].iter().copied())
    {
        let p = parse_port(m, map).ok_or_else(|| format!("{m}: bad port number"))?;
        members.push(p);
    }
    let fields = parse_hash_fields(fields, arg)?;
    let algorithm = if alg.eq_ignore_ascii_case("active_backup") {
        0
    } else if alg.eq_ignore_ascii_case("hrw") {
        1
    } else {
        return Err(format!("{arg}: unknown algorithm `{alg}'"));
    };
    if !mtype.eq_ignore_ascii_case("ofport") {
        return Err(format!("{arg}: unknown member_type `{mtype}'"));
    }
    let dst = match dst {
        Some(d) => {
            let sf = Subfield::parse(d)?;
            if sf.field.nxm_header32().is_none() {
                return Err(format!("{arg}: experimenter OXM field '{d}' not supported"));
            }
            Some(sf)
        }
        None => None,
    };
    Ok(Act::Bundle(BundleAct {
        algorithm,
        fields,
        basis: atoi(basis) as u16,
        dst,
        members,
    }))
}

fn parse_sample(arg: &str, map: Option<&PortMap>) -> Result<Act, String> {
    let mut s = SampleAct {
        probability: 0,
        collector_set_id: 0,
        obs_domain_id: 0,
        obs_point_id: 0,
        sampling_port: ports::NONE,
        direction: 0,
        raw: 0,
    };
    for (k, v) in KeyValues::new(arg) {
        match k {
            "probability" => {
                s.probability = str_to_u16(v, "probability")?;
                if s.probability == 0 {
                    return Err(format!("invalid probability value \"{v}\""));
                }
            }
            "collector_set_id" => s.collector_set_id = str_to_u32(v)?,
            "obs_domain_id" => s.obs_domain_id = str_to_u32(v)?,
            "obs_point_id" => s.obs_point_id = str_to_u32(v)?,
            "sampling_port" => {
                s.sampling_port = parse_port(v, map).ok_or_else(|| format!("{v}: unknown port"))?
            }
            "ingress" => s.direction = 1,
            "egress" => s.direction = 2,
            _ => return Err(format!("invalid key \"{k}\" in \"sample\" argument")),
        }
    }
    if s.probability == 0 {
        return Err("non-zero \"probability\" must be specified on sample".into());
    }
    Ok(Act::Sample(s))
}

fn parse_ct(arg: &str, ctx: &mut ParseCtx) -> Result<Act, String> {
    let mut ct = CtAct {
        flags: 0,
        zone_src: None,
        zone_imm: 0,
        recirc_table: 255,
        alg: 0,
        actions: Vec::new(),
    };
    for (k, v) in KeyValues::new(arg) {
        match k {
            "commit" => ct.flags |= 1,
            "force" => ct.flags |= 2,
            "table" => {
                let t = parse_table(v).ok_or_else(|| format!("unknown table {v}"))?;
                if t == 255 {
                    return Err(format!("invalid table 0x{t:x}"));
                }
                ct.recirc_table = t;
            }
            "zone" => match str_to_u16(v, "zone") {
                Ok(z) => {
                    ct.zone_imm = z;
                    ct.zone_src = None;
                }
                Err(_) => ct.zone_src = Some(Subfield::parse(v)?),
            },
            "alg" => {
                ct.alg = match v {
                    "ftp" => 21,
                    "tftp" => 69,
                    _ => str_to_u16(v, "connection tracking helper")
                        .map_err(|_| format!("invalid alg \"{v}\""))?,
                }
            }
            "nat" => ct.actions.push(Act::Nat(parse_nat(v)?)),
            "exec" => {
                let acts = parse_actions_nested(v, ctx, false, Some("ct"))?;
                ct.actions.extend(acts);
            }
            _ => return Err(format!("invalid argument to \"ct\" action: `{k}'")),
        }
    }
    if ct.flags & 2 != 0 && ct.flags & 1 == 0 {
        return Err("\"force\" flag requires \"commit\" flag.".into());
    }
    Ok(Act::Ct(ct))
}

fn parse_nat(arg: &str) -> Result<NatAct, String> {
    let mut n = NatAct::default();
    for (k, v) in KeyValues::new(arg) {
        match k {
            "src" | "dst" => {
                n.flags |= if k == "src" { NAT_SRC } else { NAT_DST };
                parse_nat_range(v, &mut n)?;
            }
            "persistent" => n.flags |= NAT_PERSISTENT,
            "hash" => n.flags |= NAT_HASH,
            "random" => n.flags |= NAT_RANDOM,
            _ => return Err(format!("invalid key \"{k}\" in \"nat\" argument")),
        }
    }
    if n.flags & NAT_SRC != 0 && n.flags & NAT_DST != 0 {
        return Err("May only specify one of \"src\" or \"dst\".".into());
    }
    if n.flags & (NAT_SRC | NAT_DST) == 0 {
        if n.flags != 0 {
            return Err("Flags allowed only with \"src\" or \"dst\".".into());
        }
        if n.af != 0 {
            return Err("Range allowed only with \"src\" or \"dst\".".into());
        }
    }
    if n.flags & NAT_HASH != 0 && n.flags & NAT_RANDOM != 0 {
        return Err("Both \"hash\" and \"random\" are not allowed.".into());
    }
    Ok(n)
}

fn parse_nat_range(s: &str, n: &mut NatAct) -> Result<(), String> {
    let bad = || format!("invalid nat range \"{s}\"");
    n.af = 0;
    let mut rest = s;
    // IPv4 (a.b.c.d) or IPv6 ([x] or bare).
    let take_v4 = |r: &str| -> Option<(u32, usize)> {
        let end = r
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(r.len());
        parse_ipv4(&r[..end]).map(|ip| (ip, end))
    };
    let take_v6 = |r: &str| -> Option<(u128, usize)> {
        if let Some(inner) = r.strip_prefix('[') {
            let close = inner.find(']')?;
            parse_ipv6(&inner[..close]).map(|ip| (ip, close + 2))
        } else {
            let end = r
                .find(|c: char| !(c.is_ascii_hexdigit() || c == ':' || c == '.'))
                .unwrap_or(r.len());
            parse_ipv6(&r[..end]).map(|ip| (ip, end))
        }
    };
    if let Some((ip, len)) = take_v4(rest) {
        n.af = 4;
        n.min4 = ip;
        rest = &rest[len..];
        if let Some(r) = rest.strip_prefix('-') {
            let (ip2, len2) = take_v4(r).ok_or_else(bad)?;
            if ip2 < n.min4 {
                return Err(bad());
            }
            n.max4 = ip2;
            rest = &r[len2..];
        }
    } else if let Some((ip, len)) = take_v6(rest) {
        n.af = 6;
        n.min6 = ip;
        rest = &rest[len..];
        if let Some(r) = rest.strip_prefix('-') {
            let (ip2, len2) = take_v6(r).ok_or_else(bad)?;
            if ip2 < n.min6 {
                return Err(bad());
            }
            n.max6 = ip2;
            rest = &r[len2..];
        }
    }
    if n.af != 0 {
        if let Some(r) = rest.strip_prefix(':') {
            let end = r.find(|c: char| !c.is_ascii_digit()).unwrap_or(r.len());
            n.proto_min = r[..end].parse().map_err(|_| bad())?;
            rest = &r[end..];
            if let Some(r) = rest.strip_prefix('-') {
                let end = r.find(|c: char| !c.is_ascii_digit()).unwrap_or(r.len());
                n.proto_max = r[..end].parse().map_err(|_| bad())?;
                if n.proto_max < n.proto_min {
                    return Err(bad());
                }
                rest = &r[end..];
            }
        }
    }
    if !rest.is_empty() {
        let pos = s.len() - rest.len();
        return Err(format!(
            "garbage ({rest}) after nat range \"{s}\" (pos: {pos})"
        ));
    }
    Ok(())
}

fn parse_learn(arg: &str, map: Option<&PortMap>) -> Result<LearnAct, String> {
    let orig = arg;
    let mut l = LearnAct {
        idle_timeout: 0,
        hard_timeout: 0,
        priority: 32768,
        cookie: 0,
        flags: 0,
        table_id: 1,
        fin_idle_timeout: 0,
        fin_hard_timeout: 0,
        limit: 0,
        result_dst: None,
        raw2: false,
        specs: Vec::new(),
    };
    for (k, v) in KeyValues::new(arg) {
        match k {
            "table" => {
                let t = parse_table(v).ok_or_else(|| format!("unknown table \"{v}\""))?;
                if t == 255 {
                    return Err(format!("{orig}: table id 255 not valid for `learn' action"));
                }
                l.table_id = t;
            }
            "priority" => l.priority = atoi(v) as u16,
            "idle_timeout" => l.idle_timeout = atoi(v) as u16,
            "hard_timeout" => l.hard_timeout = atoi(v) as u16,
            "fin_idle_timeout" => l.fin_idle_timeout = atoi(v) as u16,
            "fin_hard_timeout" => l.fin_hard_timeout = atoi(v) as u16,
            "cookie" => l.cookie = crate::value::strtoull(v).map(|x| x.0).unwrap_or(0),
            "send_flow_rem" => l.flags |= 1,
            "delete_learned" => l.flags |= 2,
            "limit" => l.limit = atoi(v) as u32,
            "result_dst" => {
                l.flags |= 4;
                let sf = Subfield::parse(v)?;
                if !sf.field.info().writable {
                    return Err(format!("{v} is read-only"));
                }
                if sf.n_bits != 1 {
                    return Err("result_dst in 'learn' action must be a single bit".into());
                }
                l.result_dst = Some(sf);
            }
            _ => l.specs.push(parse_learn_spec(orig, k, v, map)?),
        }
    }
    Ok(l)
}

fn parse_learn_spec(
    orig: &str,
    name: &str,
    value: &str,
    map: Option<&PortMap>,
) -> Result<LearnSpecAct, String> {
    if let Ok(dst) = Subfield::parse(name) {
        if dst.field.nxm_header32().is_none() {
            return Err(format!(
                "{orig}: experimenter OXM field '{name}' not supported"
            ));
        }
        if value.is_empty() {
            return Ok(LearnSpecAct::MatchField { dst, src: dst });
        }
        match Subfield::parse(value) {
            Ok(src) => {
                if src.n_bits != dst.n_bits {
                    return Err(format!(
                        "{orig}: bit widths of {name} ({}) and {value} ({}) differ",
                        src.n_bits, dst.n_bits
                    ));
                }
                Ok(LearnSpecAct::MatchField { dst, src })
            }
            Err(sub_err) => {
                let n = dst.field.n_bytes();
                let full = dst.ofs == 0 && dst.n_bits as u32 == dst.field.n_bits();
                let imm = if full {
                    crate::value::mf_parse(dst.field, value, map).and_then(|fv| {
                        if fv.is_exact() {
                            Ok(fv.value)
                        } else {
                            Err(format!("{value}: wildcards not allowed here"))
                        }
                    })
                } else {
                    match parse_int_string(value, n) {
                        Ok((v, "")) => {
                            let vv = be_to_u128(&v);
                            if dst.n_bits < 128 && vv >> dst.n_bits != 0 {
                                Err(format!(
                                    "{orig}: value {} does not fit into {} bits",
                                    mf_format(dst.field, &v, None, None),
                                    dst.n_bits
                                ))
                            } else {
                                Ok(v)
                            }
                        }
                        _ => Err(format!("{orig}: cannot parse integer value")),
                    }
                };
                match imm {
                    Ok(v) => {
                        let nb = (dst.n_bits as usize).div_ceil(8);
                        Ok(LearnSpecAct::MatchImm {
                            dst,
                            imm: v[v.len() - nb..].to_vec(),
                        })
                    }
                    Err(imm_err) => Err(format!(
                        "{orig}: {name} value {value} cannot be parsed as a subfield ({sub_err}) \
                         or an immediate value ({imm_err})"
                    )),
                }
            }
        }
    } else if name == "load" {
        let (src_s, dst_s) = match value.find("->") {
            Some(0) => return Err(format!("{name}: missing source before `->' in `{value}'")),
            Some(i) => (&value[..i], &value[i + 2..]),
            None => return Err(format!("{name}: missing `->' in `{value}'")),
        };
        if let Ok((v, tail)) = parse_int_string(src_s, 16) {
            if !tail.is_empty() {
                return Err(format!("{name}: garbage before `->' in `{value}'"));
            }
            let dst = Subfield::parse(dst_s)?;
            if dst.field.nxm_header32().is_none() {
                return Err(format!(
                    "{value}: experimenter OXM field '{dst_s}' not supported"
                ));
            }
            let vv = be_to_u128(&v);
            if dst.n_bits < 128 && vv >> dst.n_bits != 0 {
                return Err(format!(
                    "{value}: value does not fit into {} bits",
                    dst.n_bits
                ));
            }
            let nb = (dst.n_bits as usize).div_ceil(8);
            return Ok(LearnSpecAct::LoadImm {
                dst,
                imm: v[16 - nb..].to_vec(),
            });
        }
        let (src, dst) = parse_reg_move(value)?;
        Ok(LearnSpecAct::LoadField { dst, src })
    } else if name == "output" {
        Ok(LearnSpecAct::Output {
            src: Subfield::parse(value)?,
        })
    } else {
        Err(format!("{orig}: unknown keyword {name}"))
    }
}

fn parse_encap(arg: &str) -> Result<Act, String> {
    let mut kv = KeyValues::new(arg);
    let (key, value) = kv
        .next()
        .ok_or_else(|| format!("Missing encap hdr: {arg}"))?;
    let (pkt_type, class): (u32, Option<u16>) = match key {
        "ethernet" => (0, Some(0)),
        "nsh" => (0x0001_894f, Some(4)),
        "mpls" => (0x0001_8847, Some(1)),
        "mpls_mc" => (0x0001_8848, Some(1)),
        _ => return Err(format!("Encap hdr not supported: {value}")),
    };
    let mut body = vec![0u8, 0];
    body.extend(pkt_type.to_be_bytes());
    for (k, v) in KeyValues::new(value) {
        match (class, k) {
            (Some(4), "md_type") => {
                let md = str_to_u8(v, "md_type")?;
                body.extend([0, 4, 1, 5, md, 0, 0, 0]);
            }
            _ => return Err(format!("Invalid property: {k}")),
        }
    }
    Ok(Act::NxRaw { subtype: 46, body })
}

fn parse_decap(arg: &str) -> Result<Act, String> {
    let mut pt: u32 = 0xfffe;
    if let Some((k, v)) = KeyValues::new(arg).next() {
        if k != "packet_type" {
            return Err(format!("Invalid decap argument: {k}"));
        }
        let mut it = KeyValues::new(v);
        let ns = match it.next() {
            Some(("ns", x)) => str_to_u16(x, "ns")?,
            _ => return Err("Missing packet_type attribute ns".into()),
        };
        if ns >= 6 {
            return Err(format!("Unsupported ns value: {ns}"));
        }
        let ty = match it.next() {
            Some(("type", x)) => str_to_u16(x, "type")?,
            _ => return Err("Missing packet_type attribute type".into()),
        };
        pt = (ns as u32) << 16 | ty as u32;
    }
    let mut body = vec![0u8, 0];
    body.extend(pt.to_be_bytes());
    Ok(Act::NxRaw { subtype: 47, body })
}

// ---------------------------------------------------------------------------------------
// Formatting
// ---------------------------------------------------------------------------------------

/// `ofpacts_format`: "drop" for no actions, else the actions joined by commas.
pub fn format_actions(acts: &[Act], map: Option<&PortMap>) -> String {
    if acts.is_empty() {
        return "drop".into();
    }
    acts.iter()
        .map(|a| format_act(a, map))
        .collect::<Vec<_>>()
        .join(",")
}

fn format_nested(acts: &[Act], map: Option<&PortMap>) -> String {
    format_actions(acts, map)
}

fn format_act(a: &Act, map: Option<&PortMap>) -> String {
    let port = |p: u16| format_port(p, map);
    match a {
        Act::Output { port: p, max_len } => {
            let mut s = String::new();
            if *p < ports::MAX {
                s.push_str("output:");
            }
            s.push_str(&port(*p));
            if *p == ports::CONTROLLER {
                s.push_str(&format!(":{max_len}"));
            }
            s
        }
        Act::Group(g) => format!("group:{g}"),
        Act::Controller(c) => {
            if c.reason == 1
                && c.controller_id == 0
                && c.userdata.is_empty()
                && !c.pause
                && c.meter_id.is_none()
            {
                return format!("CONTROLLER:{}", c.max_len);
            }
            let mut s = String::from("controller(");
            if c.reason != 1 {
                s.push_str(&format!("reason={},", packet_in_reason_to_string(c.reason)));
            }
            if c.max_len != u16::MAX {
                s.push_str(&format!("max_len={},", c.max_len));
            }
            if c.controller_id != 0 {
                s.push_str(&format!("id={},", c.controller_id));
            }
            if !c.userdata.is_empty() {
                s.push_str(&format!("userdata={},", hex_arg(&c.userdata)));
            }
            if c.pause {
                s.push_str("pause,");
            }
            if let Some(m) = c.meter_id {
                s.push_str(&format!("meter_id={m},"));
            }
            if s.ends_with(',') {
                s.pop();
            }
            s.push(')');
            s
        }
        Act::Enqueue { port: p, queue } => format!("enqueue:{}:{queue}", port(*p)),
        Act::OutputReg { src, .. } => format!("output:{}", src.format()),
        Act::Bundle(b) => {
            let alg = match b.algorithm {
                1 => "hrw",
                0 => "active_backup",
                _ => "<unknown>",
            };
            let mut s = format!(
                "{}({},{},{},ofport,",
                if b.dst.is_some() {
                    "bundle_load"
                } else {
                    "bundle"
                },
                hash_fields_name(b.fields),
                b.basis,
                alg
            );
            if let Some(d) = &b.dst {
                s.push_str(&d.format());
                s.push(',');
            }
            s.push_str("members:");
            s.push_str(
                &b.members
                    .iter()
                    .map(|m| port(*m))
                    .collect::<Vec<_>>()
                    .join(","),
            );
            s.push(')');
            s
        }
        Act::SetField {
            field,
            value,
            mask,
            raw,
        } => {
            if *raw == SetRaw::RegLoad {
                load_segments(*field, value, mask)
                    .iter()
                    .map(|(sf, v)| format!("load:{}->{}", c_hex(*v as u128), sf.format()))
                    .collect::<Vec<_>>()
                    .join(",")
            } else {
                format!(
                    "set_field:{}->{}",
                    mf_format(*field, value, Some(mask), map),
                    field.name()
                )
            }
        }
        Act::SetVlanVid {
            vid,
            push_if_needed,
        } => format!(
            "{}:{vid}",
            if *push_if_needed {
                "mod_vlan_vid"
            } else {
                "set_vlan_vid"
            }
        ),
        Act::SetVlanPcp {
            pcp,
            push_if_needed,
        } => format!(
            "{}:{pcp}",
            if *push_if_needed {
                "mod_vlan_pcp"
            } else {
                "set_vlan_pcp"
            }
        ),
        Act::StripVlan { pop } => if *pop { "pop_vlan" } else { "strip_vlan" }.into(),
        Act::PushVlan(e) => format!("push_vlan:{}", c_hex(*e as u128)),
        Act::SetEthSrc(m) => format!("mod_dl_src:{}", format_mac(m)),
        Act::SetEthDst(m) => format!("mod_dl_dst:{}", format_mac(m)),
        Act::SetIpv4Src(ip) => format!("mod_nw_src:{}", format_ipv4(*ip)),
        Act::SetIpv4Dst(ip) => format!("mod_nw_dst:{}", format_ipv4(*ip)),
        Act::SetIpDscp(d) => format!("mod_nw_tos:{d}"),
        Act::SetIpEcn(e) => format!("mod_nw_ecn:{e}"),
        Act::SetIpTtl(t) => format!("mod_nw_ttl:{t}"),
        Act::SetL4Src(p) => format!("mod_tp_src:{p}"),
        Act::SetL4Dst(p) => format!("mod_tp_dst:{p}"),
        Act::RegMove { src, dst } => format!("move:{}->{}", src.format(), dst.format()),
        Act::StackPush(sf) => format!("push:{}", sf.format()),
        Act::StackPop(sf) => format!("pop:{}", sf.format()),
        Act::DecTtl(None) => "dec_ttl".into(),
        Act::DecTtl(Some(ids)) => format!(
            "dec_ttl({})",
            ids.iter()
                .map(|i| i.to_string())
                .collect::<Vec<_>>()
                .join(",")
        ),
        Act::SetMplsLabel(l) => format!("set_mpls_label({l})"),
        Act::SetMplsTc(t) => format!("set_mpls_tc({t})"),
        Act::SetMplsTtl(t) => format!("set_mpls_ttl({t})"),
        Act::DecMplsTtl => "dec_mpls_ttl".into(),
        Act::PushMpls(e) => format!("push_mpls:0x{e:04x}"),
        Act::PopMpls(e) => format!("pop_mpls:0x{e:04x}"),
        Act::SetTunnel { tun_id, raw64 } => format!(
            "set_tunnel{}:{}",
            if *tun_id > u32::MAX as u64 || *raw64 {
                "64"
            } else {
                ""
            },
            c_hex(*tun_id as u128)
        ),
        Act::SetQueue(q) => format!("set_queue:{q}"),
        Act::PopQueue => "pop_queue".into(),
        Act::FinTimeout { idle, hard } => {
            let mut s = String::from("fin_timeout(");
            if *idle != 0 {
                s.push_str(&format!("idle_timeout={idle},"));
            }
            if *hard != 0 {
                s.push_str(&format!("hard_timeout={hard},"));
            }
            if s.ends_with(',') {
                s.pop();
            }
            s.push(')');
            s
        }
        Act::Resubmit {
            in_port, table, ct, ..
        } => {
            if *in_port != ports::IN_PORT && *table == 255 {
                format!("resubmit:{}", port(*in_port))
            } else {
                let mut s = String::from("resubmit(");
                if *in_port != ports::IN_PORT {
                    s.push_str(&port(*in_port));
                }
                s.push(',');
                if *table != 255 {
                    s.push_str(&table.to_string());
                }
                if *ct {
                    s.push_str(",ct");
                }
                s.push(')');
                s
            }
        }
        Act::Learn(l) => format_learn(l, map),
        Act::Conjunction {
            id,
            clause,
            n_clauses,
        } => format!("conjunction({id},{}/{n_clauses})", *clause as u32 + 1),
        Act::Multipath(m) => format!(
            "multipath({},{},{},{},{},{})",
            hash_fields_name(m.fields),
            m.basis,
            MP_ALGS
                .iter()
                .find(|(_, v)| *v == m.algorithm)
                .map(|(n, _)| *n)
                .unwrap_or("<unknown>"),
            m.max_link as u32 + 1,
            m.arg,
            m.dst.format()
        ),
        Act::Note(d) => format!("note:{}", hex_arg(d)),
        Act::Exit => "exit".into(),
        Act::Sample(s) => {
            let mut out = format!(
                "sample(probability={},collector_set_id={},obs_domain_id={},obs_point_id={}",
                s.probability, s.collector_set_id, s.obs_domain_id, s.obs_point_id
            );
            if s.sampling_port != ports::NONE {
                out.push_str(&format!(",sampling_port={}", port(s.sampling_port)));
            }
            match s.direction {
                1 => out.push_str(",ingress"),
                2 => out.push_str(",egress"),
                _ => {}
            }
            out.push(')');
            out
        }
        Act::Ct(c) => {
            let mut s = String::from("ct(");
            if c.flags & 1 != 0 {
                s.push_str("commit,");
            }
            if c.flags & 2 != 0 {
                s.push_str("force,");
            }
            if c.recirc_table != 255 {
                s.push_str(&format!("table={},", c.recirc_table));
            }
            if let Some(z) = &c.zone_src {
                s.push_str(&format!("zone={},", z.format()));
            } else if c.zone_imm != 0 {
                s.push_str(&format!("zone={},", c.zone_imm));
            }
            let mut rest: &[Act] = &c.actions;
            if let Some(Act::Nat(n)) = rest.first() {
                s.push_str(&format_nat(n));
                s.push(',');
                rest = &rest[1..];
            }
            if !rest.is_empty() {
                s.push_str(&format!("exec({}),", format_nested(rest, map)));
            }
            match c.alg {
                0 => {}
                21 => s.push_str("alg=ftp,"),
                69 => s.push_str("alg=tftp,"),
                p => s.push_str(&format!("alg={p},")),
            }
            if s.ends_with(',') {
                s.pop();
            }
            s.push(')');
            s
        }
        Act::CtClear => "ct_clear".into(),
        Act::Nat(n) => format_nat(n),
        Act::OutputTrunc { port: p, max_len } => {
            format!("output(port={},max_len={max_len})", port(*p))
        }
        Act::Clone(acts) => format!("clone({})", format_nested(acts, map)),
        Act::CheckPktLarger { pkt_len, dst } => {
            format!("check_pkt_larger({pkt_len})->{}", dst.format())
        }
        Act::DecNshTtl => "dec_nsh_ttl".into(),
        Act::DebugRecirc => "debug_recirc".into(),
        Act::DebugSlow => "debug_slow".into(),
        Act::NxRaw { subtype, body } => format_nx_raw(*subtype, body),
        Act::Meter(m) => format!("meter:{m}"),
        Act::ClearActions => "clear_actions".into(),
        Act::WriteActions(acts) => format!("write_actions({})", format_nested(acts, map)),
        Act::WriteMetadata { metadata, mask } => {
            let mut s = format!("write_metadata:{}", c_hex(*metadata as u128));
            if *mask != u64::MAX {
                s.push_str(&format!("/{}", c_hex(*mask as u128)));
            }
            s
        }
        Act::GotoTable(t) => format!("goto_table:{t}"),
    }
}

fn format_nx_raw(subtype: u16, body: &[u8]) -> String {
    let u32_at = |i: usize| -> u32 {
        body.get(i..i + 4)
            .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
            .unwrap_or(0)
    };
    match subtype {
        46 => {
            let pt = u32_at(2);
            let name = match pt {
                0 => "ethernet".to_string(),
                0x0001_894f => "nsh".to_string(),
                0x0001_8847 => "mpls".to_string(),
                0x0001_8848 => "mpls_mc".to_string(),
                _ => format!("packet_type(ns={},type=0x{:x})", pt >> 16, pt & 0xffff),
            };
            let mut props = Vec::new();
            let mut i = 6;
            while i + 4 <= body.len() {
                let class = u16::from_be_bytes([body[i], body[i + 1]]);
                let ty = body[i + 2];
                let len = body[i + 3] as usize;
                if len < 4 {
                    break;
                }
                if class == 4 && ty == 1 {
                    props.push(format!("md_type={}", body.get(i + 4).copied().unwrap_or(0)));
                }
                i += len.div_ceil(8) * 8;
            }
            if props.is_empty() {
                format!("encap({name})")
            } else {
                format!("encap({name}({}))", props.join(","))
            }
        }
        47 => {
            let pt = u32_at(2);
            if pt == 0xfffe {
                "decap()".into()
            } else {
                format!(
                    "decap(packet_type(ns={},type=0x{:x}))",
                    pt >> 16,
                    pt & 0xffff
                )
            }
        }
        _ => format!("<nicira action {subtype}>"),
    }
}

fn format_nat(n: &NatAct) -> String {
    let mut s = String::from("nat");
    if n.flags & (NAT_SRC | NAT_DST) != 0 {
        s.push('(');
        s.push_str(if n.flags & NAT_SRC != 0 { "src" } else { "dst" });
        if n.af != 0 {
            s.push('=');
            if n.af == 4 {
                s.push_str(&format_ipv4(n.min4));
                if n.max4 != 0 && n.max4 != n.min4 {
                    s.push('-');
                    s.push_str(&format_ipv4(n.max4));
                }
            } else {
                let br = n.proto_min != 0;
                let f = |ip: u128| {
                    if br {
                        format!("[{}]", format_ipv6(ip))
                    } else {
                        format_ipv6(ip)
                    }
                };
                s.push_str(&f(n.min6));
                if n.max6 != 0 && n.max6 != n.min6 {
                    s.push('-');
                    s.push_str(&f(n.max6));
                }
            }
            if n.proto_min != 0 {
                s.push_str(&format!(":{}", n.proto_min));
                if n.proto_max != 0 && n.proto_max != n.proto_min {
                    s.push_str(&format!("-{}", n.proto_max));
                }
            }
            s.push(',');
            if n.flags & NAT_PERSISTENT != 0 {
                s.push_str("persistent,");
            }
            if n.flags & NAT_HASH != 0 {
                s.push_str("hash,");
            }
            if n.flags & NAT_RANDOM != 0 {
                s.push_str("random,");
            }
        }
        if s.ends_with(',') {
            s.pop();
        }
        s.push(')');
    }
    s
}

fn format_learn(l: &LearnAct, map: Option<&PortMap>) -> String {
    let mut s = format!("learn(table={}", l.table_id);
    if l.idle_timeout != 0 {
        s.push_str(&format!(",idle_timeout={}", l.idle_timeout));
    }
    if l.hard_timeout != 0 {
        s.push_str(&format!(",hard_timeout={}", l.hard_timeout));
    }
    if l.fin_idle_timeout != 0 {
        s.push_str(&format!(",fin_idle_timeout={}", l.fin_idle_timeout));
    }
    if l.fin_hard_timeout != 0 {
        s.push_str(&format!(",fin_hard_timeout={}", l.fin_hard_timeout));
    }
    if l.priority != 32768 {
        s.push_str(&format!(",priority={}", l.priority));
    }
    if l.flags & 1 != 0 {
        s.push_str(",send_flow_rem");
    }
    if l.flags & 2 != 0 {
        s.push_str(",delete_learned");
    }
    if l.cookie != 0 {
        s.push_str(&format!(",cookie=0x{:x}", l.cookie));
    }
    if l.limit != 0 {
        s.push_str(&format!(",limit={}", l.limit));
    }
    if let Some(r) = &l.result_dst {
        if l.flags & 4 != 0 {
            s.push_str(&format!(",result_dst={}", r.format()));
        }
    }
    for spec in &l.specs {
        s.push(',');
        match spec {
            LearnSpecAct::MatchImm { dst, imm } => {
                if dst.ofs == 0 && dst.n_bits as u32 == dst.field.n_bits() {
                    let n = dst.field.n_bytes();
                    let mut v = vec![0u8; n];
                    let k = imm.len().min(n);
                    v[n - k..].copy_from_slice(&imm[imm.len() - k..]);
                    s.push_str(&format!(
                        "{}={}",
                        dst.field.name(),
                        mf_format(dst.field, &v, None, map)
                    ));
                } else {
                    s.push_str(&format!("{}={}", dst.format(), put_hex(imm)));
                }
            }
            LearnSpecAct::MatchField { dst, src } => {
                s.push_str(&dst.format());
                if src.field != dst.field || src.ofs != dst.ofs {
                    s.push('=');
                    s.push_str(&src.format());
                }
            }
            LearnSpecAct::LoadImm { dst, imm } => {
                s.push_str(&format!("load:{}->{}", put_hex(imm), dst.format()));
            }
            LearnSpecAct::LoadField { dst, src } => {
                s.push_str(&format!("load:{}->{}", src.format(), dst.format()));
            }
            LearnSpecAct::Output { src } => s.push_str(&format!("output:{}", src.format())),
        }
    }
    s.push(')');
    s
}

// ---------------------------------------------------------------------------------------
// Encoding
// ---------------------------------------------------------------------------------------

/// Encodes actions for OpenFlow `version` as instructions (1.1+) or, for 1.0, one
/// apply-actions list (the codec writes it as a bare action list).  `m` is the flow's match
/// (some encodings depend on it, e.g. `mod_tp_src` becomes `set_field` of tcp/udp/sctp).
pub fn encode_instructions(
    acts: &[Act],
    version: u8,
    m: &FlowMatch,
) -> Result<Vec<Instruction>, String> {
    let mut out = Vec::new();
    let mut apply: Vec<Action> = Vec::new();
    let mut apply_started = false;
    let mut pending: Vec<Instruction> = Vec::new();
    for a in acts {
        match a {
            Act::Meter(id) if version == 4 || version == 5 => {
                pending.push(Instruction::Meter(*id));
            }
            Act::ClearActions if version > 1 => pending.push(Instruction::ClearActions),
            Act::WriteActions(inner) if version > 1 => {
                let mut v = Vec::new();
                for x in inner {
                    encode_act(x, version, m, &mut v)?;
                }
                pending.push(Instruction::WriteActions(v));
            }
            Act::WriteMetadata { metadata, mask } if version > 1 => {
                pending.push(Instruction::WriteMetadata {
                    metadata: *metadata,
                    mask: *mask,
                })
            }
            Act::GotoTable(t) if version > 1 => pending.push(Instruction::GotoTable(*t)),
            Act::ClearActions | Act::WriteActions(_) => {}
            _ => {
                apply_started = true;
                encode_act(a, version, m, &mut apply)?;
            }
        }
    }
    // Order: meter, apply, then the others in the order given (already verified).
    let (meters, rest): (Vec<_>, Vec<_>) = pending
        .into_iter()
        .partition(|i| matches!(i, Instruction::Meter(_)));
    out.extend(meters);
    if apply_started && !apply.is_empty() {
        out.push(Instruction::ApplyActions(apply));
    }
    out.extend(rest);
    Ok(out)
}

/// Encodes a bare action list (packet-out, group buckets, nested actions).
pub fn encode_actions(acts: &[Act], version: u8, m: &FlowMatch) -> Result<Vec<Action>, String> {
    let mut v = Vec::new();
    for a in acts {
        encode_act(a, version, m, &mut v)?;
    }
    Ok(v)
}

fn set_field_action(field: Mf, version: u8, value: u128) -> Result<Action, String> {
    let n = field.n_bytes();
    let h = field
        .header_for(version)
        .ok_or_else(|| format!("{}: field has no OXM header", field.name()))?;
    let cf = field
        .to_codec()
        .ok_or_else(|| format!("{}: field cannot be encoded", field.name()))?;
    Ok(Action::SetField(MatchField {
        field: cf,
        header: h.header,
        value: u128_to_be(value, n),
        mask: None,
    }))
}

fn reg_load(sf: &Subfield, value: u64) -> Result<Action, String> {
    let h = sf.header32()?;
    Ok(Action::RegLoad {
        ofs_nbits: sf.ofs << 6 | ((sf.n_bits.saturating_sub(1)) & 0x3f),
        dst: h.word(),
        value,
    })
}

fn wsub(sf: &Subfield, version: u8) -> Result<WSubfield, String> {
    Ok(WSubfield {
        header: sf.header(version)?,
        ofs: sf.ofs,
        n_bits: sf.n_bits,
    })
}

fn wsub32(sf: &Subfield) -> Result<WSubfield, String> {
    Ok(WSubfield {
        header: sf.header32()?,
        ofs: sf.ofs,
        n_bits: sf.n_bits,
    })
}

fn set_field_to_nxast(
    field: Mf,
    value: &[u8],
    mask: &[u8],
    raw: SetRaw,
    out: &mut Vec<Action>,
) -> Result<(), String> {
    let info = field.info();
    if raw == SetRaw::RegLoad2 || field.nxm_header32().is_none() || info.variable {
        let h = field
            .header_for(0)
            .ok_or_else(|| format!("{}: field cannot be encoded", field.name()))?;
        let cf = field
            .to_codec()
            .ok_or_else(|| format!("{}: field cannot be encoded", field.name()))?;
        let exact = mask.iter().all(|&b| b == 0xff);
        let (v, m) = if let (Mf::TunMetadata(_), true) = (field, true) {
            // Variable length: only the significant bytes.
            let sig = |b: &[u8]| b.len() - b.iter().position(|&x| x != 0).unwrap_or(b.len());
            let len = sig(value).max(if exact { 0 } else { sig(mask) }).max(1);
            (
                value[value.len() - len..].to_vec(),
                mask[mask.len() - len..].to_vec(),
            )
        } else {
            (value.to_vec(), mask.to_vec())
        };
        out.push(Action::RegLoad2(MatchField {
            field: cf,
            header: h.header,
            value: v,
            mask: (!exact).then_some(m),
        }));
        return Ok(());
    }
    for (sf, v) in load_segments(field, value, mask) {
        out.push(reg_load(&sf, v)?);
    }
    Ok(())
}

fn set_field_to_set_field(
    field: Mf,
    value: &[u8],
    mask: &[u8],
    version: u8,
    out: &mut Vec<Action>,
) -> Result<(), String> {
    let h = field
        .header_for(version)
        .ok_or_else(|| format!("{}: field cannot be encoded", field.name()))?;
    let cf = field
        .to_codec()
        .ok_or_else(|| format!("{}: field cannot be encoded", field.name()))?;
    let exact = mask.iter().all(|&b| b == 0xff);
    let (v, m) = if let Mf::TunMetadata(_) = field {
        let sig = |b: &[u8]| b.len() - b.iter().position(|&x| x != 0).unwrap_or(b.len());
        let len = sig(value).max(if exact { 0 } else { sig(mask) }).max(1);
        (
            value[value.len() - len..].to_vec(),
            mask[mask.len() - len..].to_vec(),
        )
    } else {
        (value.to_vec(), mask.to_vec())
    };
    out.push(Action::SetField(MatchField {
        field: cf,
        header: h.header,
        value: v,
        mask: (!exact).then_some(m),
    }));
    Ok(())
}

fn encode_act(a: &Act, v: u8, m: &FlowMatch, out: &mut Vec<Action>) -> Result<(), String> {
    let p32 = |p: u16| port_to_ofp11(p);
    match a {
        Act::Output { port, max_len } => out.push(Action::Output {
            port: p32(*port),
            max_len: *max_len,
        }),
        Act::Group(g) => out.push(Action::Group(*g)),
        Act::Controller(c) => {
            if !c.userdata.is_empty() || c.pause || c.meter_id.is_some() || c.raw2 {
                out.push(Action::Controller2(Controller2 {
                    max_len: (c.max_len != u16::MAX).then_some(c.max_len),
                    controller_id: (c.controller_id != 0).then_some(c.controller_id),
                    reason: (c.reason != 1).then_some(c.reason),
                    userdata: (!c.userdata.is_empty()).then(|| c.userdata.clone()),
                    pause: c.pause,
                    meter_id: c.meter_id,
                }));
            } else {
                out.push(Action::Controller {
                    max_len: c.max_len,
                    controller_id: c.controller_id,
                    reason: c.reason,
                });
            }
        }
        Act::Enqueue { port, queue } => {
            if v == 1 {
                out.push(Action::Enqueue {
                    port: p32(*port),
                    queue: *queue,
                });
            } else {
                out.push(Action::SetQueue(*queue));
                out.push(Action::Output {
                    port: p32(*port),
                    max_len: u16::MAX,
                });
                out.push(Action::PopQueue);
            }
        }
        Act::OutputReg { src, max_len, raw2 } => {
            if *raw2 || src.field.nxm_header32().is_none() {
                out.push(Action::OutputReg2 {
                    src: wsub(src, 0)?,
                    max_len: *max_len,
                });
            } else {
                out.push(Action::OutputReg {
                    src: wsub32(src)?,
                    max_len: *max_len,
                });
            }
        }
        Act::Bundle(b) => {
            let (ofs_nbits, dst) = match &b.dst {
                Some(d) => (
                    d.ofs << 6 | ((d.n_bits.saturating_sub(1)) & 0x3f),
                    d.header32()?.word(),
                ),
                None => (0, 0),
            };
            let wb = WBundle {
                algorithm: b.algorithm,
                fields: b.fields,
                basis: b.basis,
                member_type: 0x0000_0002, // NXM_OF_IN_PORT header
                ofs_nbits,
                dst,
                members: b.members.clone(),
            };
            out.push(if b.dst.is_some() {
                Action::BundleLoad(wb)
            } else {
                Action::Bundle(wb)
            });
        }
        Act::SetField {
            field,
            value,
            mask,
            raw,
        } => {
            let exact = mask.iter().all(|&b| b == 0xff);
            if v >= 6 {
                set_field_to_set_field(*field, value, mask, v, out)?;
            } else if *raw != SetRaw::SetField {
                set_field_to_nxast(*field, value, mask, *raw, out)?;
            } else if v < 3 {
                set_field_to_legacy(*field, value, mask, v, out)?;
            } else if exact {
                set_field_to_set_field(*field, value, mask, v, out)?;
            } else {
                set_field_to_nxast(*field, value, mask, *raw, out)?;
            }
        }
        Act::SetVlanVid {
            vid,
            push_if_needed,
        } => {
            let has_vlan = m.val(Slot::VlanTci) & 0x1000 != 0;
            if v > 1 && *push_if_needed && !has_vlan {
                out.push(Action::PushVlan(0x8100));
            }
            if v <= 2 {
                out.push(Action::SetVlanVid(*vid));
            } else {
                out.push(set_field_action(Mf::VlanVid, v, (*vid | 0x1000) as u128)?);
            }
        }
        Act::SetVlanPcp {
            pcp,
            push_if_needed,
        } => {
            let has_vlan = m.val(Slot::VlanTci) & 0x1000 != 0;
            if v > 1 && *push_if_needed && !has_vlan {
                out.push(Action::PushVlan(0x8100));
            }
            if v <= 2 {
                out.push(Action::SetVlanPcp(*pcp));
            } else {
                out.push(set_field_action(Mf::VlanPcp, v, *pcp as u128)?);
            }
        }
        Act::StripVlan { .. } => out.push(Action::PopVlan),
        Act::PushVlan(e) => {
            if v > 1 {
                out.push(Action::PushVlan(*e));
            }
        }
        Act::SetEthSrc(mac) => {
            if v < 3 {
                out.push(Action::SetDlSrc(*mac));
            } else {
                out.push(set_field_action(Mf::EthSrc, v, be_to_u128(mac))?);
            }
        }
        Act::SetEthDst(mac) => {
            if v < 3 {
                out.push(Action::SetDlDst(*mac));
            } else {
                out.push(set_field_action(Mf::EthDst, v, be_to_u128(mac))?);
            }
        }
        Act::SetIpv4Src(ip) => {
            if v < 3 {
                out.push(Action::SetNwSrc(*ip));
            } else {
                out.push(set_field_action(Mf::Ipv4Src, v, *ip as u128)?);
            }
        }
        Act::SetIpv4Dst(ip) => {
            if v < 3 {
                out.push(Action::SetNwDst(*ip));
            } else {
                out.push(set_field_action(Mf::Ipv4Dst, v, *ip as u128)?);
            }
        }
        Act::SetIpDscp(d) => {
            if v < 3 {
                out.push(Action::SetNwTos(*d));
            } else {
                out.push(set_field_action(Mf::IpDscpShifted, v, (*d >> 2) as u128)?);
            }
        }
        Act::SetIpEcn(e) => {
            if v == 1 {
                out.push(reg_load(
                    &Subfield {
                        field: Mf::IpEcn,
                        ofs: 0,
                        n_bits: 2,
                    },
                    *e as u64,
                )?);
            } else if v == 2 {
                out.push(Action::SetNwEcn(*e));
            } else {
                out.push(set_field_action(Mf::IpEcn, v, *e as u128)?);
            }
        }
        Act::SetIpTtl(t) => {
            if v >= 2 {
                out.push(Action::SetNwTtl(*t));
            } else {
                out.push(reg_load(
                    &Subfield {
                        field: Mf::IpTtl,
                        ofs: 0,
                        n_bits: 8,
                    },
                    *t as u64,
                )?);
            }
        }
        Act::SetL4Src(p) | Act::SetL4Dst(p) => {
            let src = matches!(a, Act::SetL4Src(_));
            if v < 3 {
                out.push(if src {
                    Action::SetTpSrc(*p)
                } else {
                    Action::SetTpDst(*p)
                });
            } else {
                let proto = m.val(Slot::NwProto) as u8;
                let f = match (proto, src) {
                    (6, true) => Mf::TcpSrc,
                    (6, false) => Mf::TcpDst,
                    (17, true) => Mf::UdpSrc,
                    (17, false) => Mf::UdpDst,
                    (132, true) => Mf::SctpSrc,
                    (132, false) => Mf::SctpDst,
                    _ => return Err(format!("{}: needs a tcp, udp or sctp match", act_name(a))),
                };
                out.push(set_field_action(f, v, *p as u128)?);
            }
        }
        Act::RegMove { src, dst } => {
            if v >= 6 {
                out.push(Action::CopyField {
                    n_bits: dst.n_bits,
                    src_ofs: src.ofs,
                    dst_ofs: dst.ofs,
                    src: src.header(v)?,
                    dst: dst.header(v)?,
                });
            } else {
                out.push(Action::RegMove {
                    n_bits: dst.n_bits,
                    src_ofs: src.ofs,
                    dst_ofs: dst.ofs,
                    src: src.header(0)?,
                    dst: dst.header(0)?,
                });
            }
        }
        Act::StackPush(sf) => out.push(Action::StackPush(wsub(sf, 0)?)),
        Act::StackPop(sf) => out.push(Action::StackPop(wsub(sf, 0)?)),
        Act::DecTtl(ids) => match ids {
            Some(ids) => out.push(Action::DecTtlCntIds(ids.clone())),
            None => out.push(Action::DecNwTtl),
        },
        Act::SetMplsLabel(l) => {
            if v < 3 {
                out.push(Action::SetMplsLabel(*l));
            } else {
                out.push(set_field_action(Mf::MplsLabel, v, *l as u128)?);
            }
        }
        Act::SetMplsTc(t) => {
            if v < 3 {
                out.push(Action::SetMplsTc(*t));
            } else {
                out.push(set_field_action(Mf::MplsTc, v, *t as u128)?);
            }
        }
        Act::SetMplsTtl(t) => out.push(Action::SetMplsTtl(*t)),
        Act::DecMplsTtl => out.push(Action::DecMplsTtl),
        Act::PushMpls(e) => out.push(Action::PushMpls(*e)),
        Act::PopMpls(e) => out.push(Action::PopMpls(*e)),
        Act::SetTunnel { tun_id, raw64 } => {
            if v < 3 {
                if *tun_id <= u32::MAX as u64 && !raw64 {
                    out.push(Action::SetTunnel(*tun_id as u32));
                } else {
                    out.push(Action::SetTunnel64(*tun_id));
                }
            } else {
                out.push(set_field_action(Mf::TunId, v, *tun_id as u128)?);
            }
        }
        Act::SetQueue(q) => out.push(Action::SetQueue(*q)),
        Act::PopQueue => out.push(Action::PopQueue),
        Act::FinTimeout { idle, hard } => out.push(Action::FinTimeout {
            idle: *idle,
            hard: *hard,
        }),
        Act::Resubmit {
            in_port,
            table,
            ct,
            plain,
        } => {
            if *table == 255 && *plain {
                out.push(Action::Resubmit { in_port: *in_port });
            } else {
                out.push(Action::ResubmitTable {
                    in_port: *in_port,
                    table: *table,
                    ct: *ct,
                });
            }
        }
        Act::Learn(l) => out.push(Action::Learn(encode_learn(l)?)),
        Act::Conjunction {
            id,
            clause,
            n_clauses,
        } => out.push(Action::Conjunction {
            id: *id,
            clause: *clause,
            n_clauses: *n_clauses,
        }),
        Act::Multipath(mp) => out.push(Action::Multipath(WMultipath {
            fields: mp.fields,
            basis: mp.basis,
            algorithm: mp.algorithm,
            max_link: mp.max_link,
            arg: mp.arg,
            dst: wsub32(&mp.dst)?,
        })),
        // The codec pads the note to 8 bytes, as OVS does.
        Act::Note(d) => out.push(Action::Note(d.clone())),
        Act::Exit => out.push(Action::Exit),
        Act::Sample(s) => {
            let subtype = if s.raw == 41 || s.direction != 0 {
                41
            } else if s.raw == 38 || s.sampling_port != ports::NONE {
                38
            } else {
                29
            };
            out.push(Action::Sample(WSample {
                subtype,
                probability: s.probability,
                collector_set_id: s.collector_set_id,
                obs_domain_id: s.obs_domain_id,
                obs_point_id: s.obs_point_id,
                sampling_port: s.sampling_port,
                direction: s.direction,
            }));
        }
        Act::Ct(c) => {
            let mut inner = Vec::new();
            for x in &c.actions {
                encode_act(x, v, m, &mut inner)?;
            }
            let zone_src = match &c.zone_src {
                Some(z) => Some(wsub32(z)?),
                None => None,
            };
            out.push(Action::Ct(Conntrack {
                flags: c.flags,
                zone_src,
                zone_imm: if c.zone_src.is_some() { 0 } else { c.zone_imm },
                recirc_table: c.recirc_table,
                alg: c.alg,
                actions: inner,
            }));
        }
        Act::CtClear => out.push(Action::CtClear),
        Act::Nat(n) => {
            let mut w = WNat {
                flags: n.flags,
                ..Default::default()
            };
            if n.af == 4 {
                w.ipv4_min = (n.min4 != 0).then_some(n.min4);
                w.ipv4_max = (n.max4 != 0).then_some(n.max4);
            } else if n.af == 6 {
                w.ipv6_min = (n.min6 != 0).then_some(n.min6);
                w.ipv6_max = (n.max6 != 0).then_some(n.max6);
            }
            if n.af != 0 {
                w.proto_min = (n.proto_min != 0).then_some(n.proto_min);
                w.proto_max = (n.proto_max != 0).then_some(n.proto_max);
            }
            out.push(Action::Nat(w));
        }
        Act::OutputTrunc { port, max_len } => {
            let mut body = port.to_be_bytes().to_vec();
            body.extend(max_len.to_be_bytes());
            out.push(Action::NxRaw { subtype: 39, body });
        }
        Act::Clone(inner) => {
            let mut w = Vec::new();
            for x in inner {
                encode_act(x, v, m, &mut w)?;
            }
            out.push(Action::Clone(w));
        }
        Act::CheckPktLarger { pkt_len, dst } => out.push(Action::CheckPktLarger {
            pkt_len: *pkt_len,
            dst: wsub(dst, 0)?,
        }),
        Act::DecNshTtl => out.push(Action::NxRaw {
            subtype: 48,
            body: vec![],
        }),
        Act::DebugRecirc => out.push(Action::NxRaw {
            subtype: 255,
            body: vec![],
        }),
        Act::DebugSlow => out.push(Action::NxRaw {
            subtype: 254,
            body: vec![],
        }),
        Act::NxRaw { subtype, body } => out.push(Action::NxRaw {
            subtype: *subtype,
            body: body.clone(),
        }),
        Act::Meter(id) => {
            if v >= 6 {
                out.push(Action::Meter(*id));
            } else {
                return Err("meter: not an action before OpenFlow 1.5".into());
            }
        }
        Act::WriteMetadata { metadata, mask } => out.push(Action::WriteMetadata {
            metadata: *metadata,
            mask: *mask,
        }),
        Act::GotoTable(t) => out.push(Action::ResubmitTable {
            in_port: ports::IN_PORT,
            table: *t,
            ct: false,
        }),
        Act::ClearActions | Act::WriteActions(_) => {
            return Err(format!("{} instruction not allowed here", act_name(a)))
        }
    }
    Ok(())
}

fn set_field_to_legacy(
    field: Mf,
    value: &[u8],
    mask: &[u8],
    v: u8,
    out: &mut Vec<Action>,
) -> Result<(), String> {
    let u = be_to_u128(value);
    match field {
        Mf::VlanTci => {
            let tci = u as u16;
            if tci & 0x1000 != 0 {
                if v > 1 {
                    out.push(Action::PushVlan(0x8100));
                }
                out.push(Action::SetVlanVid(tci & 0xfff));
                out.push(Action::SetVlanPcp((tci >> 13) as u8 & 7));
            } else {
                out.push(Action::PopVlan);
            }
        }
        Mf::VlanVid => out.push(Action::SetVlanVid(u as u16 & 0xfff)),
        Mf::VlanPcp => out.push(Action::SetVlanPcp(u as u8)),
        Mf::EthSrc => out.push(Action::SetDlSrc(value.try_into().unwrap_or([0; 6]))),
        Mf::EthDst => out.push(Action::SetDlDst(value.try_into().unwrap_or([0; 6]))),
        Mf::Ipv4Src => out.push(Action::SetNwSrc(u as u32)),
        Mf::Ipv4Dst => out.push(Action::SetNwDst(u as u32)),
        Mf::IpDscp => out.push(Action::SetNwTos(u as u8)),
        Mf::IpDscpShifted => out.push(Action::SetNwTos((u as u8) << 2)),
        Mf::IpEcn => {
            if v == 1 {
                out.push(reg_load(
                    &Subfield {
                        field: Mf::IpEcn,
                        ofs: 0,
                        n_bits: 2,
                    },
                    u as u64,
                )?);
            } else {
                out.push(Action::SetNwEcn(u as u8));
            }
        }
        Mf::TcpSrc | Mf::UdpSrc => out.push(Action::SetTpSrc(u as u16)),
        Mf::TcpDst | Mf::UdpDst => out.push(Action::SetTpDst(u as u16)),
        _ => set_field_to_nxast(field, value, mask, SetRaw::SetField, out)?,
    }
    Ok(())
}

fn encode_learn(l: &LearnAct) -> Result<WLearn, String> {
    let learn2 = l.raw2 || l.limit != 0 || l.flags & 4 != 0;
    let mut specs = Vec::new();
    for s in &l.specs {
        let imm_bytes = |imm: &[u8], n_bits: u16| -> Vec<u8> {
            let n = 2 * (n_bits as usize).div_ceil(16);
            let mut v = vec![0u8; n];
            let k = imm.len().min(n);
            v[n - k..].copy_from_slice(&imm[imm.len() - k..]);
            v
        };
        let hdr = |sf: &Subfield| sf.header32();
        specs.push(match s {
            LearnSpecAct::MatchImm { dst, imm } => LearnSpec {
                n_bits: dst.n_bits,
                src: LearnSrc::Immediate(imm_bytes(imm, dst.n_bits)),
                dst: LearnDst::Match {
                    header: hdr(dst)?,
                    ofs: dst.ofs,
                },
            },
            LearnSpecAct::MatchField { dst, src } => LearnSpec {
                n_bits: dst.n_bits,
                src: LearnSrc::Field {
                    header: hdr(src)?,
                    ofs: src.ofs,
                },
                dst: LearnDst::Match {
                    header: hdr(dst)?,
                    ofs: dst.ofs,
                },
            },
            LearnSpecAct::LoadImm { dst, imm } => LearnSpec {
                n_bits: dst.n_bits,
                src: LearnSrc::Immediate(imm_bytes(imm, dst.n_bits)),
                dst: LearnDst::Load {
                    header: hdr(dst)?,
                    ofs: dst.ofs,
                },
            },
            LearnSpecAct::LoadField { dst, src } => LearnSpec {
                n_bits: src.n_bits,
                src: LearnSrc::Field {
                    header: hdr(src)?,
                    ofs: src.ofs,
                },
                dst: LearnDst::Load {
                    header: hdr(dst)?,
                    ofs: dst.ofs,
                },
            },
            LearnSpecAct::Output { src } => LearnSpec {
                n_bits: src.n_bits,
                src: LearnSrc::Field {
                    header: hdr(src)?,
                    ofs: src.ofs,
                },
                dst: LearnDst::Output,
            },
        });
    }
    let learn2 = if learn2 {
        let (ofs, h) = match &l.result_dst {
            Some(r) if l.flags & 4 != 0 => (r.ofs, Some(r.header(0)?)),
            _ => (0, None),
        };
        Some((l.limit, ofs, h))
    } else {
        None
    };
    Ok(WLearn {
        idle_timeout: l.idle_timeout,
        hard_timeout: l.hard_timeout,
        priority: l.priority,
        cookie: l.cookie,
        flags: l.flags,
        table_id: l.table_id,
        fin_idle_timeout: l.fin_idle_timeout,
        fin_hard_timeout: l.fin_hard_timeout,
        learn2,
        specs,
    })
}

// ---------------------------------------------------------------------------------------
// Decoding
// ---------------------------------------------------------------------------------------

/// Decodes instructions (or an OF1.0/NXM action list wrapped as apply-actions) in Open
/// vSwitch's instruction order.
pub fn decode_instructions(ins: &[Instruction], version: u8) -> Result<Vec<Act>, String> {
    let mut ranked: Vec<(u8, Vec<Act>)> = Vec::new();
    for i in ins {
        let (rank, acts) = match i {
            Instruction::Meter(m) => (0, vec![Act::Meter(*m)]),
            Instruction::ApplyActions(a) => (1, decode_actions(a, version)?),
            Instruction::ClearActions => (2, vec![Act::ClearActions]),
            Instruction::WriteActions(a) => {
                (3, vec![Act::WriteActions(decode_actions(a, version)?)])
            }
            Instruction::WriteMetadata { metadata, mask } => (
                4,
                vec![Act::WriteMetadata {
                    metadata: *metadata,
                    mask: *mask,
                }],
            ),
            Instruction::GotoTable(t) => (5, vec![Act::GotoTable(*t)]),
            Instruction::Experimenter { experimenter, .. } => {
                return Err(format!(
                    "unknown experimenter instruction 0x{experimenter:x}"
                ))
            }
        };
        ranked.push((rank, acts));
    }
    ranked.sort_by_key(|(r, _)| *r);
    Ok(ranked.into_iter().flat_map(|(_, a)| a).collect())
}

/// Decodes a codec action list.
pub fn decode_actions(acts: &[Action], version: u8) -> Result<Vec<Act>, String> {
    acts.iter().map(|a| decode_act(a, version)).collect()
}

fn p16(p: u32) -> u16 {
    port_from_ofp11(p).unwrap_or(p as u16)
}

fn decode_act(a: &Action, v: u8) -> Result<Act, String> {
    Ok(match a {
        Action::Output { port, max_len } => Act::Output {
            port: p16(*port),
            max_len: *max_len,
        },
        Action::SetVlanVid(vid) => Act::SetVlanVid {
            vid: *vid,
            push_if_needed: v == 1,
        },
        Action::SetVlanPcp(pcp) => Act::SetVlanPcp {
            pcp: *pcp,
            push_if_needed: v == 1,
        },
        Action::PopVlan => Act::StripVlan { pop: v != 1 },
        Action::PushVlan(e) => Act::PushVlan(*e),
        Action::SetDlSrc(m) => Act::SetEthSrc(*m),
        Action::SetDlDst(m) => Act::SetEthDst(*m),
        Action::SetNwSrc(ip) => Act::SetIpv4Src(*ip),
        Action::SetNwDst(ip) => Act::SetIpv4Dst(*ip),
        Action::SetNwTos(t) => Act::SetIpDscp(*t),
        Action::SetNwEcn(e) => Act::SetIpEcn(*e),
        Action::SetTpSrc(p) => Act::SetL4Src(*p),
        Action::SetTpDst(p) => Act::SetL4Dst(*p),
        Action::Enqueue { port, queue } => Act::Enqueue {
            port: p16(*port),
            queue: *queue,
        },
        Action::CopyTtlOut => return Err("copy_ttl_out is not supported".into()),
        Action::CopyTtlIn => return Err("copy_ttl_in is not supported".into()),
        Action::SetMplsLabel(l) => Act::SetMplsLabel(*l),
        Action::SetMplsTc(t) => Act::SetMplsTc(*t),
        Action::SetMplsTtl(t) => Act::SetMplsTtl(*t),
        Action::DecMplsTtl => Act::DecMplsTtl,
        Action::PushMpls(e) => Act::PushMpls(*e),
        Action::PopMpls(e) => Act::PopMpls(*e),
        Action::SetQueue(q) => Act::SetQueue(*q),
        Action::Group(g) => Act::Group(*g),
        Action::SetNwTtl(t) => Act::SetIpTtl(*t),
        Action::DecNwTtl => Act::DecTtl(None),
        Action::SetField(mf) => {
            let field = Mf::from_codec(mf.field);
            let n = field.n_bytes();
            let fit = |b: &[u8]| -> Vec<u8> {
                let mut out = vec![0u8; n];
                let k = b.len().min(n);
                out[n - k..].copy_from_slice(&b[b.len() - k..]);
                out
            };
            let value = fit(&mf.value);
            // An unmasked entry sets the whole field (all 124 bytes of tunnel metadata).
            let mask = match &mf.mask {
                Some(m) => fit(m),
                None => vec![0xffu8; n],
            };
            Act::SetField {
                field,
                value,
                mask,
                raw: SetRaw::SetField,
            }
        }
        Action::RegLoad2(mf) => {
            let field = Mf::from_codec(mf.field);
            let n = field.n_bytes();
            let fit = |b: &[u8]| -> Vec<u8> {
                let mut out = vec![0u8; n];
                let k = b.len().min(n);
                out[n - k..].copy_from_slice(&b[b.len() - k..]);
                out
            };
            let value = fit(&mf.value);
            let mask = match &mf.mask {
                Some(m) => fit(m),
                None => vec![0xffu8; n],
            };
            Act::SetField {
                field,
                value,
                mask,
                raw: SetRaw::RegLoad2,
            }
        }
        Action::RegLoad {
            ofs_nbits,
            dst,
            value,
        } => {
            let sf = Subfield::from_wire32(*dst, ofs_nbits >> 6, (ofs_nbits & 0x3f) + 1)?;
            if sf.n_bits < 64 && value >> sf.n_bits != 0 {
                return Err("reg_load value does not fit in its destination".into());
            }
            let n = sf.field.n_bytes();
            let mut val = vec![0u8; n];
            let mut mask = vec![0u8; n];
            bits_put(&mut val, sf.ofs as u32, sf.n_bits as u32, *value as u128);
            bits_put(&mut mask, sf.ofs as u32, sf.n_bits as u32, u128::MAX);
            Act::SetField {
                field: sf.field,
                value: val,
                mask,
                raw: SetRaw::RegLoad,
            }
        }
        Action::PushPbb(_) | Action::PopPbb => return Err("PBB actions are not supported".into()),
        Action::Meter(m) => Act::Meter(*m),
        Action::CopyField {
            n_bits,
            src_ofs,
            dst_ofs,
            src,
            dst,
        }
        | Action::RegMove {
            n_bits,
            src_ofs,
            dst_ofs,
            src,
            dst,
        } => Act::RegMove {
            src: Subfield::from_wire(src, *src_ofs, *n_bits)?,
            dst: Subfield::from_wire(dst, *dst_ofs, *n_bits)?,
        },
        Action::Resubmit { in_port } => Act::Resubmit {
            in_port: *in_port,
            table: 255,
            ct: false,
            plain: true,
        },
        Action::ResubmitTable { in_port, table, ct } => Act::Resubmit {
            in_port: *in_port,
            table: *table,
            ct: *ct,
            plain: false,
        },
        Action::SetTunnel(t) => Act::SetTunnel {
            tun_id: *t as u64,
            raw64: false,
        },
        Action::SetTunnel64(t) => Act::SetTunnel {
            tun_id: *t,
            raw64: true,
        },
        Action::PopQueue => Act::PopQueue,
        Action::Note(n) => {
            // OVS keeps the padding bytes as part of the note.
            Act::Note(n.clone())
        }
        Action::Multipath(m) => Act::Multipath(MultipathAct {
            fields: m.fields,
            basis: m.basis,
            algorithm: m.algorithm,
            max_link: m.max_link,
            arg: m.arg,
            dst: Subfield::from_wire(&m.dst.header, m.dst.ofs, m.dst.n_bits)?,
        }),
        Action::Bundle(b) | Action::BundleLoad(b) => {
            let dst = if matches!(a, Action::BundleLoad(_)) {
                Some(Subfield::from_wire32(
                    b.dst,
                    b.ofs_nbits >> 6,
                    (b.ofs_nbits & 0x3f) + 1,
                )?)
            } else {
                None
            };
            Act::Bundle(BundleAct {
                algorithm: b.algorithm,
                fields: b.fields,
                basis: b.basis,
                dst,
                members: b.members.clone(),
            })
        }
        Action::OutputReg { src, max_len } | Action::OutputReg2 { src, max_len } => {
            Act::OutputReg {
                src: Subfield::from_wire(&src.header, src.ofs, src.n_bits)?,
                max_len: *max_len,
                raw2: matches!(a, Action::OutputReg2 { .. }),
            }
        }
        Action::Learn(l) => Act::Learn(decode_learn(l)?),
        Action::Exit => Act::Exit,
        Action::FinTimeout { idle, hard } => Act::FinTimeout {
            idle: *idle,
            hard: *hard,
        },
        Action::Controller {
            max_len,
            controller_id,
            reason,
        } => Act::Controller(Controller {
            max_len: *max_len,
            controller_id: *controller_id,
            reason: *reason,
            userdata: vec![],
            pause: false,
            meter_id: None,
            raw2: false,
        }),
        Action::Controller2(c) => Act::Controller(Controller {
            max_len: c.max_len.unwrap_or(u16::MAX),
            controller_id: c.controller_id.unwrap_or(0),
            reason: c.reason.unwrap_or(1),
            userdata: c.userdata.clone().unwrap_or_default(),
            pause: c.pause,
            meter_id: c.meter_id,
            raw2: true,
        }),
        Action::DecTtlCntIds(ids) => Act::DecTtl(Some(ids.clone())),
        Action::WriteMetadata { metadata, mask } => Act::WriteMetadata {
            metadata: *metadata,
            mask: *mask,
        },
        Action::StackPush(s) => Act::StackPush(Subfield::from_wire(&s.header, s.ofs, s.n_bits)?),
        Action::StackPop(s) => Act::StackPop(Subfield::from_wire(&s.header, s.ofs, s.n_bits)?),
        Action::Sample(s) => Act::Sample(SampleAct {
            probability: s.probability,
            collector_set_id: s.collector_set_id,
            obs_domain_id: s.obs_domain_id,
            obs_point_id: s.obs_point_id,
            sampling_port: if s.subtype == 29 {
                ports::NONE
            } else {
                s.sampling_port
            },
            direction: s.direction,
            raw: s.subtype,
        }),
        Action::Conjunction {
            id,
            clause,
            n_clauses,
        } => Act::Conjunction {
            id: *id,
            clause: *clause,
            n_clauses: *n_clauses,
        },
        Action::Ct(c) => Act::Ct(CtAct {
            flags: c.flags,
            zone_src: match &c.zone_src {
                Some(z) => Some(Subfield::from_wire(&z.header, z.ofs, z.n_bits)?),
                None => None,
            },
            zone_imm: c.zone_imm,
            recirc_table: c.recirc_table,
            alg: c.alg,
            actions: decode_actions(&c.actions, v)?,
        }),
        Action::Nat(n) => {
            let af = if n.ipv4_min.is_some() || n.ipv4_max.is_some() {
                4
            } else if n.ipv6_min.is_some() || n.ipv6_max.is_some() {
                6
            } else if n.proto_min.is_some() || n.proto_max.is_some() {
                4
            } else {
                0
            };
            Act::Nat(NatAct {
                flags: n.flags,
                af,
                min4: n.ipv4_min.unwrap_or(0),
                max4: n.ipv4_max.unwrap_or(0),
                min6: n.ipv6_min.unwrap_or(0),
                max6: n.ipv6_max.unwrap_or(0),
                proto_min: n.proto_min.unwrap_or(0),
                proto_max: n.proto_max.unwrap_or(0),
            })
        }
        Action::Clone(inner) => Act::Clone(decode_actions(inner, v)?),
        Action::CtClear => Act::CtClear,
        Action::CheckPktLarger { pkt_len, dst } => Act::CheckPktLarger {
            pkt_len: *pkt_len,
            dst: Subfield::from_wire(&dst.header, dst.ofs, dst.n_bits)?,
        },
        Action::NxRaw { subtype, body } => match subtype {
            39 if body.len() >= 6 => Act::OutputTrunc {
                port: u16::from_be_bytes([body[0], body[1]]),
                max_len: u32::from_be_bytes([body[2], body[3], body[4], body[5]]),
            },
            48 => Act::DecNshTtl,
            254 => Act::DebugSlow,
            255 => Act::DebugRecirc,
            _ => Act::NxRaw {
                subtype: *subtype,
                body: body.clone(),
            },
        },
        Action::Experimenter { experimenter, body } => decode_onf_action(*experimenter, body)?,
    })
}

/// ONF experimenter actions.  The only one OVS knows is OpenFlow 1.3's `copy_field`
/// (ONFACT_ET_COPY_FIELD, 3200), which ovs-vswitchd uses to report `move` actions in
/// OpenFlow 1.3 replies; the codec hands it over verbatim.
fn decode_onf_action(experimenter: u32, body: &[u8]) -> Result<Act, String> {
    const ONF: u32 = 0x4f4e_4600;
    let u16at = |i: usize| body.get(i..i + 2).map(|b| u16::from_be_bytes([b[0], b[1]]));
    let unknown = || format!("unknown experimenter action 0x{experimenter:x}");
    if experimenter != ONF || u16at(0) != Some(3200) {
        return Err(unknown());
    }
    // exp_type(2) pad(2) n_bits(2) src_offset(2) dst_offset(2) pad(2) src dst.
    let (Some(n_bits), Some(src_ofs), Some(dst_ofs)) = (u16at(4), u16at(6), u16at(8)) else {
        return Err("truncated copy_field action".into());
    };
    let mut rest = body.get(12..).unwrap_or(&[]);
    let mut take = || -> Result<OxmHeader, String> {
        if rest.len() < 4 {
            return Err("truncated copy_field action".into());
        }
        let w = u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]);
        let mut h = header32(w);
        rest = &rest[4..];
        if h.class == 0xffff {
            if rest.len() < 4 {
                return Err("truncated copy_field action".into());
            }
            h.experimenter = u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]);
            rest = &rest[4..];
        }
        Ok(h)
    };
    let src = take()?;
    let dst = take()?;
    Ok(Act::RegMove {
        src: Subfield::from_wire(&src, src_ofs, n_bits)?,
        dst: Subfield::from_wire(&dst, dst_ofs, n_bits)?,
    })
}

fn decode_learn(l: &WLearn) -> Result<LearnAct, String> {
    let mut specs = Vec::new();
    for s in &l.specs {
        let n = s.n_bits;
        let imm = |b: &[u8]| -> Vec<u8> {
            let nb = (n as usize).div_ceil(8);
            b[b.len().saturating_sub(nb)..].to_vec()
        };
        specs.push(match (&s.src, &s.dst) {
            (LearnSrc::Immediate(b), LearnDst::Match { header, ofs }) => LearnSpecAct::MatchImm {
                dst: Subfield::from_wire(header, *ofs, n)?,
                imm: imm(b),
            },
            (
                LearnSrc::Field {
                    header: sh,
                    ofs: so,
                },
                LearnDst::Match { header, ofs },
            ) => LearnSpecAct::MatchField {
                dst: Subfield::from_wire(header, *ofs, n)?,
                src: Subfield::from_wire(sh, *so, n)?,
            },
            (LearnSrc::Immediate(b), LearnDst::Load { header, ofs }) => LearnSpecAct::LoadImm {
                dst: Subfield::from_wire(header, *ofs, n)?,
                imm: imm(b),
            },
            (
                LearnSrc::Field {
                    header: sh,
                    ofs: so,
                },
                LearnDst::Load { header, ofs },
            ) => LearnSpecAct::LoadField {
                dst: Subfield::from_wire(header, *ofs, n)?,
                src: Subfield::from_wire(sh, *so, n)?,
            },
            (LearnSrc::Field { header, ofs }, LearnDst::Output) => LearnSpecAct::Output {
                src: Subfield::from_wire(header, *ofs, n)?,
            },
            (LearnSrc::Immediate(_), LearnDst::Output) => {
                return Err("learn: immediate output spec".into())
            }
        });
    }
    let (limit, result_dst) = match &l.learn2 {
        Some((limit, ofs, h)) => (
            *limit,
            match h {
                Some(h) => Some(Subfield::from_wire(h, *ofs, 1)?),
                None => None,
            },
        ),
        None => (0, None),
    };
    Ok(LearnAct {
        idle_timeout: l.idle_timeout,
        hard_timeout: l.hard_timeout,
        priority: l.priority,
        cookie: l.cookie,
        flags: l.flags,
        table_id: l.table_id,
        fin_idle_timeout: l.fin_idle_timeout,
        fin_hard_timeout: l.fin_hard_timeout,
        limit,
        result_dst,
        raw2: l.learn2.is_some(),
        specs,
    })
}

/// `ofpacts_check`-style consistency checks against the flow's match: set-field
/// prerequisites (an error, as ovs-ofctl refuses such flows), and actions that only OpenFlow
/// 1.0 tolerates without a matching match (they narrow the usable protocols).
pub fn check(acts: &[Act], m: &FlowMatch, usable: &mut u32) -> Result<(), String> {
    // Actions like encap() change what later actions see (OVS updates its copy of the flow).
    let mut m = m.clone();
    for a in acts {
        let dl_type = m.val(Slot::DlType) as u16;
        let is_ip = dl_type == 0x0800 || dl_type == 0x86dd;
        let proto = m.val(Slot::NwProto) as u8;
        if let Act::NxRaw { subtype: 46, body } = a {
            if let Some(pt) = body.get(2..6) {
                let pt = u32::from_be_bytes([pt[0], pt[1], pt[2], pt[3]]);
                m.set(Slot::PacketType, pt as u128, u32::MAX as u128);
                if pt >> 16 == 1 {
                    m.set(Slot::DlType, (pt & 0xffff) as u128, 0xffff);
                }
            }
        }
        let m = &m;
        match a {
            Act::SetField { field, .. }
                if !prereq_ok(*field, m)
                    || (*field == Mf::VlanVid && m.val(Slot::VlanTci) & 0x1000 == 0) =>
            {
                return Err(
                    "actions are invalid with specified match (OFPBAC_MATCH_INCONSISTENT)".into(),
                );
            }
            Act::SetIpv4Src(_) | Act::SetIpv4Dst(_) if dl_type != 0x0800 => {
                *usable &= proto::OF10_ANY
            }
            Act::SetIpDscp(_) | Act::SetIpEcn(_) | Act::SetIpTtl(_) | Act::DecTtl(_) if !is_ip => {
                *usable &= proto::OF10_ANY
            }
            Act::SetL4Src(_) | Act::SetL4Dst(_) if !(is_ip && matches!(proto, 6 | 17 | 132)) => {
                *usable &= proto::OF10_ANY
            }
            Act::Clone(inner) | Act::WriteActions(inner) => check(inner, m, usable)?,
            _ => {}
        }
    }
    Ok(())
}

fn prereq_ok(f: Mf, m: &FlowMatch) -> bool {
    use crate::field::Prereq as P;
    let dl = m.val(Slot::DlType) as u16;
    let proto = m.val(Slot::NwProto) as u8;
    let ip = dl == 0x0800 || dl == 0x86dd;
    let tp_src = m.val(Slot::TpSrc) as u16;
    let tp_dst = m.val(Slot::TpDst) as u16;
    let frag_later = m.val(Slot::NwFrag) & 2 != 0;
    let icmp6 = dl == 0x86dd && proto == 58;
    let nd = icmp6 && tp_dst == 0 && (tp_src == 135 || tp_src == 136);
    match f.info().prereq {
        P::None | P::Ethernet => true,
        P::VlanVid => m.val(Slot::VlanTci) & 0x1000 != 0,
        P::Arp => dl == 0x0806 || dl == 0x8035,
        P::Ipv4 => dl == 0x0800,
        P::Ipv6 => dl == 0x86dd,
        P::IpAny => ip,
        P::Mpls => dl == 0x8847 || dl == 0x8848,
        P::Tcp => ip && proto == 6 && !frag_later,
        P::Udp => ip && proto == 17 && !frag_later,
        P::Sctp => ip && proto == 132 && !frag_later,
        P::Icmpv4 => dl == 0x0800 && proto == 1,
        P::Icmpv6 => icmp6,
        P::Nd => nd,
        P::NdSolicit => nd && tp_src == 135,
        P::NdAdvert => nd && tp_src == 136,
        P::Nsh => dl == 0x894f,
        P::Ct => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rt(s: &str) -> String {
        let mut ctx = ParseCtx::new(None);
        format_actions(&parse_actions(s, &mut ctx).unwrap(), None)
    }

    #[test]
    fn round_trips() {
        for s in [
            "drop",
            "set_field:0x1->reg13,resubmit(,8)",
            "move:NXM_NX_TUN_ID[0..23]->OXM_OF_METADATA[0..23]",
            "ct(commit,zone=NXM_NX_REG13[0..15],nat(src=10.0.0.1-10.0.0.9:100-200,persistent,random))",
            "controller(userdata=00.00.00.1a.00.00.00.00,pause,meter_id=1)",
            "conjunction(100,2/2)",
            "check_pkt_larger(1314)->OXM_OF_PKT_REG4[1],resubmit(,27)",
            "learn(table=69,delete_learned,cookie=0x38285b5a,OXM_OF_METADATA[],eth_type=0x800,NXM_OF_IP_SRC[],ip_dst=10.0.0.101,nw_proto=6,NXM_OF_TCP_SRC[]=NXM_OF_TCP_DST[],load:0x1->NXM_NX_REG10[7])",
            "bundle(eth_src,0,active_backup,ofport,members:1)",
            "clone(ct_clear,set_field:0->reg10),output:1",
            "set_field:0/0x1000->reg10",
            "load:0x1->NXM_NX_REG13[]",
            "CONTROLLER:65535",
            "push:NXM_NX_REG0[],pop:NXM_OF_ETH_SRC[]",
        ] {
            assert_eq!(rt(s), s);
        }
    }

    #[test]
    fn errors_name_the_token() {
        let mut ctx = ParseCtx::new(None);
        assert_eq!(
            parse_actions("frob", &mut ctx).unwrap_err(),
            "unknown action frob"
        );
        assert_eq!(
            parse_actions("output:foo", &mut ctx).unwrap_err(),
            "foo: output to unknown port"
        );
    }
}
