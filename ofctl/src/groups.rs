//! Groups: ovs-ofctl's `add-group`/`mod-group`/`del-groups` syntax
//! (`group_id=1,type=select,selection_method=dp_hash,bucket=weight:100,actions=...`),
//! encoded as OFPT_GROUP_MOD (OpenFlow 1.1-1.5) or, in OpenFlow 1.0, as Open vSwitch's
//! NXT_GROUP_MOD (the OpenFlow 1.5 layout inside a Nicira message, which the codec does not
//! model, so it is built here), and the group-description replies decoded for printing.

use openflow::message::{GroupMod, NTR_VENDOR_ID};
use openflow::multipart::{MpRequest, MultipartRequest};
use openflow::types::Bucket;
use openflow::{Message, NX_VENDOR_ID};

use crate::actions::{encode_actions, KeyValues, ParseCtx};
use crate::actions::{parse_actions, Act};
use crate::field::proto;
use crate::field::Mf;
use crate::flowmatch::FlowMatch;
use crate::value::{
    mf_format, mf_parse, parse_port, parse_u64_full, port_to_ofp11, ports, PortMap,
};

pub const OFPG_ALL: u32 = 0xffff_fffc;
pub const OFPG_ANY: u32 = 0xffff_ffff;
pub const BUCKET_ALL: u32 = 0xffff_ffff;
pub const BUCKET_FIRST: u32 = 0xffff_fffd;
pub const BUCKET_LAST: u32 = 0xffff_fffe;

/// Group-mod commands (OFPGC_*; ADD_OR_MOD is Open vSwitch's extension).
pub mod cmd {
    pub const ADD: u16 = 0;
    pub const MODIFY: u16 = 1;
    pub const DELETE: u16 = 2;
    pub const INSERT_BUCKET: u16 = 3;
    pub const REMOVE_BUCKET: u16 = 5;
    pub const ADD_OR_MOD: u16 = 0x8000;
}

/// A bucket as parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BucketSpec {
    pub bucket_id: u32,
    pub weight: u16,
    pub watch_port: u16,
    pub watch_group: u32,
    pub actions: Vec<Act>,
}

/// A parsed group mod (Open vSwitch's `ofputil_group_mod`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupSpec {
    pub command: u16,
    pub group_type: u8,
    pub group_id: u32,
    pub command_bucket_id: u32,
    pub buckets: Vec<BucketSpec>,
    pub selection_method: String,
    pub selection_method_param: u64,
    /// Hash fields for `selection_method=hash`: each field with the mask of the bits to
    /// hash (all-ones for the whole field), in field order.
    pub fields: Vec<(Mf, Vec<u8>)>,
    pub usable: u32,
}

fn str_to_u32(s: &str) -> Result<u32, String> {
    match parse_u64_full(s) {
        Some(v) if v <= u32::MAX as u64 => Ok(v as u32),
        _ => Err(format!("invalid numeric format {s}")),
    }
}

/// Parses a group mod; `command` None means the text may start with a command word.
pub fn parse_group(
    text: &str,
    command: Option<u16>,
    map: Option<&PortMap>,
) -> Result<GroupSpec, String> {
    let mut usable = proto::ANY;
    let mut s = text;
    let command = match command {
        Some(c) => c,
        None => {
            let t = s.trim_start();
            let len = t.find([',', ' ', '\t', '\r', '\n']).unwrap_or(t.len());
            let w = &t[..len];
            let c = if len == 0 {
                None
            } else if "add".starts_with(w) {
                Some(cmd::ADD)
            } else if "delete".starts_with(w) {
                Some(cmd::DELETE)
            } else if "modify".starts_with(w) {
                Some(cmd::MODIFY)
            } else if "add_or_mod".starts_with(w) {
                Some(cmd::ADD_OR_MOD)
            } else if "insert_bucket".starts_with(w) {
                Some(cmd::INSERT_BUCKET)
            } else if "remove_bucket".starts_with(w) {
                Some(cmd::REMOVE_BUCKET)
            } else {
                None
            };
            match c {
                Some(c) => {
                    s = &t[len..];
                    c
                }
                None => cmd::ADD,
            }
        }
    };
    let (f_type, f_buckets, f_cbid, f_cbid_all) = match command {
        cmd::ADD | cmd::MODIFY | cmd::ADD_OR_MOD => (true, true, false, false),
        cmd::DELETE => (false, false, false, false),
        cmd::INSERT_BUCKET => {
            usable &= proto::OF10_ANY | proto::OF15_UP;
            (false, true, true, false)
        }
        _ => {
            usable &= proto::OF10_ANY | proto::OF15_UP;
            (false, false, true, true)
        }
    };
    let mut g = GroupSpec {
        command,
        group_type: 0,
        group_id: OFPG_ANY,
        command_bucket_id: BUCKET_ALL,
        buckets: Vec::new(),
        selection_method: String::new(),
        selection_method_param: 0,
        fields: Vec::new(),
        usable,
    };
    if command == cmd::DELETE && s.trim().is_empty() {
        g.group_id = OFPG_ALL;
        return Ok(g);
    }
    let (head, bkt) = match s.find("bucket=") {
        Some(i) => {
            if !f_buckets {
                return Err("bucket is not needed".into());
            }
            (&s[..i], Some(&s[i..]))
        }
        None => (s, None),
    };
    let mut had_type = false;
    let mut had_cbid = false;
    for (name, value) in KeyValues::new(head) {
        match name {
            "command_bucket_id" => {
                if !f_cbid {
                    return Err("command bucket id is not needed".into());
                }
                g.command_bucket_id = match value {
                    "all" => BUCKET_ALL,
                    "first" => BUCKET_FIRST,
                    "last" => BUCKET_LAST,
                    _ => {
                        let v = str_to_u32(value)?;
                        if v > 0xffff_ff00 && v != BUCKET_FIRST && v != BUCKET_LAST {
                            return Err(format!("invalid command bucket id {v}"));
                        }
                        v
                    }
                };
                if g.command_bucket_id == BUCKET_ALL && !f_cbid_all {
                    return Err("command_bucket_id=all is not permitted".into());
                }
                had_cbid = true;
            }
            "group_id" => {
                g.group_id = if value == "all" {
                    OFPG_ALL
                } else {
                    let v = str_to_u32(value)?;
                    if v != OFPG_ALL && v > 0xffff_ff00 {
                        return Err(format!("invalid group id {v}"));
                    }
                    v
                };
            }
            "type" => {
                if !f_type {
                    return Err("type is not needed".into());
                }
                g.group_type = match value {
                    "all" => 0,
                    "select" => 1,
                    "indirect" => 2,
                    "ff" | "fast_failover" => 3,
                    _ => return Err(format!("invalid group type {value}")),
                };
                had_type = true;
            }
            "selection_method" => {
                if !f_type {
                    return Err("selection method is not needed".into());
                }
                if value.len() >= 16 {
                    return Err("selection method is longer than 15 bytes long".into());
                }
                g.selection_method = value.to_string();
                g.usable &= proto::OF10_ANY | proto::OF15_UP;
            }
            "selection_method_param" => {
                if !f_type {
                    return Err("selection method param is not needed".into());
                }
                g.selection_method_param = parse_u64_full(value)
                    .ok_or_else(|| format!("invalid numeric format {value}"))?;
                g.usable &= proto::OF10_ANY | proto::OF15_UP;
            }
            "fields" => {
                if !f_type {
                    return Err("fields are not needed".into());
                }
                parse_select_fields(value, map, &mut g.fields, &mut g.usable)?;
                g.usable &= proto::OF10_ANY | proto::OF15_UP;
            }
            _ => return Err(format!("unknown keyword {name}")),
        }
    }
    if g.group_id == OFPG_ANY {
        return Err("must specify a group_id".into());
    }
    if f_type && !had_type {
        return Err("must specify a type".into());
    }
    if g.selection_method != "hash" && !g.fields.is_empty() {
        return Err("fields may only be specified with \"selection_method=hash\"".into());
    }
    if g.selection_method.is_empty() && g.selection_method_param != 0 {
        return Err("selection_method_param is only allowed with \"selection_method\"".into());
    }
    if f_cbid {
        if !(f_cbid_all || had_cbid) {
            return Err("must specify a command bucket id".into());
        }
    } else if had_cbid {
        return Err("command bucket id is not needed".into());
    }
    if let Some(mut rest) = bkt {
        loop {
            let after = &rest["bucket=".len()..];
            let (this, next) = match after.find("bucket=") {
                Some(i) => (&after[..i], Some(&after[i..])),
                None => (after, None),
            };
            let b = parse_bucket(this, g.group_type, map, &mut g.usable)?;
            if command != cmd::INSERT_BUCKET && g.group_type != 1 && b.weight != 0 {
                return Err("Only select groups can have bucket weights.".into());
            }
            g.buckets.push(b);
            match next {
                Some(n) => rest = n,
                None => break,
            }
        }
    }
    if g.group_type == 2 && g.buckets.len() > 1 {
        return Err("Indirect groups can have at most one bucket.".into());
    }
    Ok(g)
}

fn parse_bucket(
    s: &str,
    group_type: u8,
    map: Option<&PortMap>,
    usable: &mut u32,
) -> Result<BucketSpec, String> {
    let mut b = BucketSpec {
        bucket_id: BUCKET_ALL,
        weight: if group_type == 1 { 1 } else { 0 },
        watch_port: ports::ANY,
        watch_group: OFPG_ANY,
        actions: Vec::new(),
    };
    let mut acts = String::new();
    for (key, value) in KeyValues::new(s) {
        match key.to_ascii_lowercase().as_str() {
            "weight" => {
                b.weight = match parse_u64_full(value) {
                    Some(v) if v <= u16::MAX as u64 => v as u16,
                    _ => return Err(format!("invalid weight \"{value}\"")),
                }
            }
            "watch_port" => {
                let p = parse_port(value, map);
                match p {
                    Some(p) if p < ports::MAX || p == ports::ANY || p == ports::CONTROLLER => {
                        b.watch_port = p
                    }
                    _ => return Err(format!("{value}: invalid watch_port")),
                }
            }
            "watch_group" => {
                b.watch_group = str_to_u32(value)?;
                if b.watch_group > 0xffff_ff00 {
                    return Err(format!("invalid watch_group id {}", b.watch_group));
                }
            }
            "bucket_id" => {
                b.bucket_id = str_to_u32(value)?;
                if b.bucket_id > 0xffff_ff00 {
                    return Err(format!("invalid bucket_id id {}", b.bucket_id));
                }
                *usable &= proto::OF10_ANY | proto::OF15_UP;
            }
            "action" | "actions" => {
                acts.push_str(value);
                acts.push(',');
            }
            _ => {
                acts.push_str(&format!("{key}({value}),"));
            }
        }
    }
    if acts.is_empty() {
        return Err("bucket must specify actions".into());
    }
    if group_type == 3 && b.watch_port == ports::ANY && b.watch_group == OFPG_ANY {
        return Err("fast failover bucket requires watch_port or watch_group".into());
    }
    acts.pop();
    let mut ctx = ParseCtx::new(map);
    b.actions = parse_actions(&acts, &mut ctx)?;
    // ovs-ofctl's action parser *resets* the group's usable protocols rather than
    // narrowing them (ofpacts_parse_copy), so what counts in the end is only the last
    // bucket's actions: e.g. `selection_method=...,bucket=bucket_id:0,...` is accepted
    // for OpenFlow 1.3 and sent without the OF1.5-only parts.  Do the same, so the same
    // command lines work.
    *usable = ctx.usable;
    Ok(b)
}

/// `fields=FIELD` / `fields(FIELD[=MASK],...)` (`parse_select_group_field`).
fn parse_select_fields(
    text: &str,
    map: Option<&PortMap>,
    fields: &mut Vec<(Mf, Vec<u8>)>,
    usable: &mut u32,
) -> Result<(), String> {
    // OVS's messages quote the text left after the current item.
    let mut kv = KeyValues::new(text);
    while let Some((name, value)) = kv.next() {
        let rest = kv.rest();
        let mf = Mf::from_name(name).ok_or_else(|| format!("{rest}: unknown field {name}"))?;
        if fields.iter().any(|(f, _)| *f == mf) {
            return Err(format!("{name}: duplicate field"));
        }
        let mask = if value.is_empty() {
            vec![0xff; mf.n_bytes()]
        } else {
            let v = mf_parse(mf, value, map)?;
            if !matches!(mf, Mf::TunMetadata(_)) && v.value.iter().all(|&b| b == 0) {
                return Err(format!(
                    "{rest}: values are wildcards here and must not be all-zeros"
                ));
            }
            v.value
        };
        *usable &= if mask.iter().all(|&b| b == 0xff) {
            mf.usable_exact()
        } else {
            mf.usable_bitwise()
        };
        fields.push((mf, mask));
    }
    fields.sort_by_key(|(f, _)| *f);
    Ok(())
}

/// Decodes the hash fields of an NTR selection-method property body (the OXM field array
/// after the method name and parameter): unmasked entries whose value is the mask.
pub fn selection_fields(props: &[u8]) -> Vec<(Mf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut p = props;
    while p.len() >= 4 {
        let t = u16::from_be_bytes([p[0], p[1]]);
        let len = u16::from_be_bytes([p[2], p[3]]) as usize;
        if len < 4 || len > p.len() {
            break;
        }
        let body = &p[4..len];
        let is_ntr = t == 0xffff
            && body.len() >= 36
            && u32::from_be_bytes([body[0], body[1], body[2], body[3]]) == NTR_VENDOR_ID
            && u32::from_be_bytes([body[4], body[5], body[6], body[7]]) == 1;
        if is_ntr {
            let mut f = &body[36..];
            while f.len() >= 4 {
                let w = u32::from_be_bytes([f[0], f[1], f[2], f[3]]);
                let mut h = openflow::oxm::OxmHeader {
                    class: (w >> 16) as u16,
                    field: ((w >> 9) & 0x7f) as u8,
                    hasmask: w & 0x100 != 0,
                    length: (w & 0xff) as u8,
                    experimenter: 0,
                };
                let mut hl = 4;
                if h.class == 0xffff {
                    if f.len() < 8 {
                        break;
                    }
                    h.experimenter = u32::from_be_bytes([f[4], f[5], f[6], f[7]]);
                    hl = 8;
                }
                let plen = (h.length as usize).saturating_sub(hl - 4);
                let Some(v) = f.get(hl..hl + plen) else { break };
                let Some(mf) = Mf::from_header(&h) else { break };
                let v = if h.hasmask { &v[..plen / 2] } else { v };
                // Variable-length fields (tun_metadata) drop leading zero bytes.
                let mut full = vec![0u8; mf.n_bytes().saturating_sub(v.len())];
                full.extend_from_slice(v);
                out.push((mf, full));
                f = &f[hl + plen..];
            }
        }
        p = p.get(len.div_ceil(8) * 8..).unwrap_or(&[]);
    }
    out
}

/// `oxm_format_field_array` wrapped as ovs-ofctl prints it after the selection method:
/// `,fields=F` for one field, `,fields(F,G=MASK)` for several.
pub fn format_selection_fields(fields: &[(Mf, Vec<u8>)]) -> String {
    let items: Vec<String> = fields
        .iter()
        .map(|(mf, v)| {
            if v.iter().all(|&b| b == 0xff) {
                mf.name()
            } else {
                format!("{}={}", mf.name(), mf_format(*mf, v, None, None))
            }
        })
        .collect();
    match items.len() {
        0 => String::new(),
        1 => format!(",fields={}", items[0]),
        _ => format!(",fields({})", items.join(",")),
    }
}

/// The NTR selection-method group property (OpenFlow 1.5 / NXT_GROUP_MOD).
fn selection_prop(g: &GroupSpec, version: u8) -> Result<Vec<u8>, String> {
    if g.selection_method.is_empty() {
        return Ok(vec![]);
    }
    let mut p = Vec::new();
    p.extend(0xffffu16.to_be_bytes());
    p.extend(0u16.to_be_bytes());
    p.extend(NTR_VENDOR_ID.to_be_bytes());
    p.extend(1u32.to_be_bytes());
    p.extend([0u8; 4]);
    let mut name = [0u8; 16];
    name[..g.selection_method.len()].copy_from_slice(g.selection_method.as_bytes());
    p.extend(name);
    p.extend(g.selection_method_param.to_be_bytes());
    for (mf, v) in &g.fields {
        let hdr = mf
            .header_for(version)
            .ok_or_else(|| format!("{}: field cannot be used here", mf.name()))?
            .header;
        // field_len(): variable-length fields drop leading zero bytes.
        let v: &[u8] = if matches!(mf, Mf::TunMetadata(_)) {
            let z = v.iter().take_while(|&&b| b == 0).count();
            &v[z..]
        } else {
            v
        };
        let hl = if hdr.class == 0xffff { 8 } else { 4 };
        let length = (v.len() + hl - 4) as u32;
        let w = ((hdr.class as u32) << 16) | ((hdr.field as u32) << 9) | length;
        p.extend(w.to_be_bytes());
        if hl == 8 {
            p.extend(hdr.experimenter.to_be_bytes());
        }
        p.extend_from_slice(v);
    }
    let len = p.len() as u16;
    p[2..4].copy_from_slice(&len.to_be_bytes());
    while !p.len().is_multiple_of(8) {
        p.push(0);
    }
    Ok(p)
}

/// Bucket IDs as OVS assigns them when none was given (lowest free ID).
fn bucket_ids(g: &GroupSpec) -> Vec<u32> {
    let mut used: Vec<u32> = g
        .buckets
        .iter()
        .filter(|b| b.bucket_id <= 0xffff_ff00)
        .map(|b| b.bucket_id)
        .collect();
    let mut out = Vec::new();
    for b in &g.buckets {
        if b.bucket_id <= 0xffff_ff00 {
            out.push(b.bucket_id);
        } else {
            let mut id = 0;
            while used.contains(&id) {
                id += 1;
            }
            used.push(id);
            out.push(id);
        }
    }
    out
}

/// Encodes a group mod for `version` (wire bytes, with `xid`).
pub fn encode_group_mod(g: &GroupSpec, version: u8, xid: u32) -> Result<Vec<u8>, String> {
    let empty = FlowMatch::new();
    if version == 1 {
        // NXT_GROUP_MOD: Nicira header, then the OpenFlow 1.5 group_mod with 1.0 actions.
        let mut body = Vec::new();
        body.extend(g.command.to_be_bytes());
        body.push(g.group_type);
        body.push(0);
        body.extend(g.group_id.to_be_bytes());
        let blen_at = body.len();
        body.extend([0u8; 4]);
        body.extend(g.command_bucket_id.to_be_bytes());
        let bstart = body.len();
        for (b, id) in g.buckets.iter().zip(bucket_ids(g)) {
            let start = body.len();
            body.extend([0u8; 4]);
            body.extend(id.to_be_bytes());
            let acts = encode_actions(&b.actions, 1, &empty)?;
            let ab = openflow::action::encode_actions(&acts, 1);
            body.extend(&ab);
            let prop = |body: &mut Vec<u8>, t: u16, v: &[u8]| {
                let s = body.len();
                body.extend(t.to_be_bytes());
                body.extend(((4 + v.len()) as u16).to_be_bytes());
                body.extend(v);
                while !(body.len() - s).is_multiple_of(8) {
                    body.push(0);
                }
            };
            if g.group_type == 1 || b.weight != 0 {
                prop(&mut body, 0, &[(b.weight >> 8) as u8, b.weight as u8, 0, 0]);
            }
            if b.watch_port != ports::ANY {
                prop(&mut body, 1, &port_to_ofp11(b.watch_port).to_be_bytes());
            }
            if b.watch_group != OFPG_ANY {
                prop(&mut body, 2, &b.watch_group.to_be_bytes());
            }
            let len = (body.len() - start) as u16;
            body[start..start + 2].copy_from_slice(&len.to_be_bytes());
            body[start + 2..start + 4].copy_from_slice(&(ab.len() as u16).to_be_bytes());
        }
        let blen = (body.len() - bstart) as u16;
        body[blen_at..blen_at + 2].copy_from_slice(&blen.to_be_bytes());
        body.extend(selection_prop(g, version)?);
        let mut msg = vec![1u8, 4, 0, 0];
        msg.extend(xid.to_be_bytes());
        msg.extend(NX_VENDOR_ID.to_be_bytes());
        msg.extend(31u32.to_be_bytes());
        msg.extend(body);
        let n = msg.len() as u16;
        msg[2..4].copy_from_slice(&n.to_be_bytes());
        return Ok(msg);
    }
    if version < 6 && (g.command == cmd::INSERT_BUCKET || g.command == cmd::REMOVE_BUCKET) {
        return Err("insert_bucket and remove_bucket need OpenFlow 1.5".into());
    }
    let ids = bucket_ids(g);
    let mut buckets = Vec::new();
    for (b, id) in g.buckets.iter().zip(ids) {
        let acts = encode_actions(&b.actions, version, &empty)?;
        buckets.push(if version >= 6 {
            Bucket {
                bucket_id: id,
                weight: (g.group_type == 1 || b.weight != 0).then_some(b.weight),
                watch_port: (b.watch_port != ports::ANY).then(|| port_to_ofp11(b.watch_port)),
                watch_group: (b.watch_group != OFPG_ANY).then_some(b.watch_group),
                actions: acts,
            }
        } else {
            Bucket {
                bucket_id: 0,
                weight: Some(b.weight),
                watch_port: Some(port_to_ofp11(b.watch_port)),
                watch_group: Some(b.watch_group),
                actions: acts,
            }
        });
    }
    let gm = GroupMod {
        command: g.command,
        group_type: g.group_type,
        group_id: g.group_id,
        command_bucket_id: g.command_bucket_id,
        buckets,
        props: if version >= 6 {
            selection_prop(g, version)?
        } else {
            vec![]
        },
    };
    Ok(openflow::encode(version, xid, &Message::GroupMod(gm)))
}

/// The group-description request for `version` (NXST_GROUP_DESC in OpenFlow 1.0).
pub fn group_desc_request(version: u8, group_id: u32, xid: u32) -> Vec<u8> {
    if version == 1 {
        let mut m = vec![1u8, 16, 0, 0];
        m.extend(xid.to_be_bytes());
        m.extend(0xffffu16.to_be_bytes());
        m.extend(0u16.to_be_bytes());
        m.extend(NX_VENDOR_ID.to_be_bytes());
        m.extend(8u32.to_be_bytes());
        m.extend([0u8; 4]);
        m.extend(group_id.to_be_bytes());
        m.extend([0u8; 4]);
        let n = m.len() as u16;
        m[2..4].copy_from_slice(&n.to_be_bytes());
        return m;
    }
    let body = MpRequest::GroupDesc {
        group_id: (version >= 6).then_some(group_id),
    };
    openflow::encode(
        version,
        xid,
        &Message::MultipartRequest(MultipartRequest { flags: 0, body }),
    )
}

/// The group-statistics request for `version` (NXST_GROUP in OpenFlow 1.0).
pub fn group_stats_request(version: u8, group_id: u32, xid: u32) -> Vec<u8> {
    let body = MpRequest::GroupStats { group_id };
    openflow::encode(
        version,
        xid,
        &Message::MultipartRequest(MultipartRequest { flags: 0, body }),
    )
}

/// Decodes an NXST_GROUP_DESC reply body (OpenFlow 1.5 layout, OpenFlow 1.0 actions).
pub fn parse_nx_group_desc(body: &[u8]) -> Result<Vec<GroupMod>, String> {
    let bad = || "NXST_GROUP_DESC reply: bad length".to_string();
    let mut out = Vec::new();
    let mut p = body;
    while !p.is_empty() {
        if p.len() < 16 {
            return Err(bad());
        }
        let len = u16::from_be_bytes([p[0], p[1]]) as usize;
        let gtype = p[2];
        let gid = u32::from_be_bytes([p[4], p[5], p[6], p[7]]);
        let blen = u16::from_be_bytes([p[8], p[9]]) as usize;
        if len < 16 || len > p.len() || 16 + blen > len {
            return Err(bad());
        }
        let buckets = parse_nx_buckets(&p[16..16 + blen], "NXST_GROUP_DESC reply")?;
        out.push(GroupMod {
            command: 0,
            group_type: gtype,
            group_id: gid,
            command_bucket_id: 0,
            buckets,
            props: p[16 + blen..len].to_vec(),
        });
        p = &p[len..];
    }
    Ok(out)
}

/// Decodes an NXT_GROUP_MOD body (after the Nicira header; OpenFlow 1.5 group_mod layout
/// with OpenFlow 1.0 actions), e.g. one echoed back inside an error reply.
pub fn parse_nx_group_mod(body: &[u8]) -> Result<GroupMod, String> {
    if body.len() < 16 {
        return Err("NXT_GROUP_MOD: bad length".into());
    }
    let command = u16::from_be_bytes([body[0], body[1]]);
    let blen = u16::from_be_bytes([body[8], body[9]]) as usize;
    if 16 + blen > body.len() {
        return Err("NXT_GROUP_MOD: bad length".into());
    }
    Ok(GroupMod {
        command,
        group_type: body[2],
        group_id: u32::from_be_bytes([body[4], body[5], body[6], body[7]]),
        command_bucket_id: u32::from_be_bytes([body[12], body[13], body[14], body[15]]),
        buckets: parse_nx_buckets(&body[16..16 + blen], "NXT_GROUP_MOD")?,
        props: body[16 + blen..].to_vec(),
    })
}

/// OpenFlow 1.5 buckets carrying OpenFlow 1.0 actions.
fn parse_nx_buckets(mut bk: &[u8], what: &str) -> Result<Vec<Bucket>, String> {
    let bad = || format!("{what}: bad length");
    let mut buckets = Vec::new();
    while !bk.is_empty() {
        if bk.len() < 8 {
            return Err(bad());
        }
        let l = u16::from_be_bytes([bk[0], bk[1]]) as usize;
        let al = u16::from_be_bytes([bk[2], bk[3]]) as usize;
        let id = u32::from_be_bytes([bk[4], bk[5], bk[6], bk[7]]);
        if l < 8 || l > bk.len() || 8 + al > l {
            return Err(bad());
        }
        let actions = openflow::action::decode_actions(&bk[8..8 + al], 1)
            .map_err(|e| format!("{what}: {e}"))?;
        let mut b = Bucket {
            bucket_id: id,
            weight: None,
            watch_port: None,
            watch_group: None,
            actions,
        };
        let mut props = &bk[8 + al..l];
        while props.len() >= 4 {
            let t = u16::from_be_bytes([props[0], props[1]]);
            let pl = u16::from_be_bytes([props[2], props[3]]) as usize;
            if pl < 4 || pl > props.len() {
                break;
            }
            let v = &props[4..pl];
            match (t, v.len()) {
                (0, 4) | (0, 2) => b.weight = Some(u16::from_be_bytes([v[0], v[1]])),
                (1, 4) => b.watch_port = Some(u32::from_be_bytes([v[0], v[1], v[2], v[3]])),
                (2, 4) => b.watch_group = Some(u32::from_be_bytes([v[0], v[1], v[2], v[3]])),
                _ => {}
            }
            props = props.get(pl.div_ceil(8) * 8..).unwrap_or(&[]);
        }
        buckets.push(b);
        bk = &bk[l..];
    }
    Ok(buckets)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_groups() {
        let g = parse_group(
            "group_id=2,type=select,bucket=weight:10,actions=output:1,bucket=output:2",
            Some(cmd::ADD),
            None,
        )
        .unwrap();
        assert_eq!(g.buckets.len(), 2);
        assert_eq!(g.buckets[0].weight, 10);
        assert_eq!(g.buckets[1].weight, 1);
        assert!(parse_group("type=all,bucket=output:1", Some(cmd::ADD), None).is_err());
        let d = parse_group("", Some(cmd::DELETE), None).unwrap();
        assert_eq!(d.group_id, OFPG_ALL);
    }
}
