//! Bodies shared by several messages: ports, buckets, meter bands, flow-stats entries.

use crate::action::{
    emit_actions, emit_instructions, emit_prop, parse_actions, parse_instructions, parse_props,
    port_from_of10, port_to_of10, Action, Instruction,
};
use crate::buf::{Reader, Writer};
use crate::error::{fail, OfpErr, Result};
use crate::oxm::{emit_ofp_match, parse_nx_match, parse_ofp_match, Match, Of10Match};
use crate::stats::OxsStats;

/// How a message carries its match, which also selects the message's wire form
/// (OFPT_FLOW_MOD 1.0 vs 1.1+ vs NXT_FLOW_MOD, OFPST_FLOW vs NXST_FLOW, ...).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum MatchRepr {
    /// OpenFlow 1.0 `ofp_match`.
    Of10(Of10Match),
    /// Nicira `nx_match` (Nicira-extension message forms).
    Nxm(Match),
    /// OpenFlow 1.1+ `ofp_match` with OXM TLVs.
    Oxm(Match),
}

impl MatchRepr {
    /// The match as a field set.
    pub fn to_match(&self) -> Match {
        match self {
            MatchRepr::Of10(m) => m.to_match(),
            MatchRepr::Nxm(m) | MatchRepr::Oxm(m) => m.clone(),
        }
    }
}

/// Actions as instructions: OpenFlow 1.0 / Nicira forms carry a bare action list, which is
/// represented as a single `ApplyActions` (none when the list is empty).
pub(crate) fn actions_to_instructions(a: Vec<Action>) -> Vec<Instruction> {
    if a.is_empty() {
        vec![]
    } else {
        vec![Instruction::ApplyActions(a)]
    }
}

/// Flattens instructions back to an action list for OpenFlow 1.0 / Nicira forms.
pub(crate) fn instructions_to_actions(ins: &[Instruction]) -> Vec<Action> {
    let mut out = Vec::new();
    for i in ins {
        match i {
            Instruction::ApplyActions(a) => out.extend(a.iter().cloned()),
            Instruction::WriteMetadata { metadata, mask } => out.push(Action::WriteMetadata {
                metadata: *metadata,
                mask: *mask,
            }),
            Instruction::GotoTable(t) => out.push(Action::ResubmitTable {
                in_port: 0xfff8,
                table: *t,
                ct: false,
            }),
            _ => {}
        }
    }
    out
}

/// A switch port (`ofp_port` in all its versions).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct Port {
    pub port_no: u32,
    pub hw_addr: [u8; 6],
    /// NUL-padded name (16 bytes).
    pub name: [u8; 16],
    pub config: u32,
    pub state: u32,
    pub curr: u32,
    pub advertised: u32,
    pub supported: u32,
    pub peer: u32,
    pub curr_speed: u32,
    pub max_speed: u32,
    /// OpenFlow 1.4+ properties other than the Ethernet one (type, value), verbatim.
    pub extra_props: Vec<(u16, Vec<u8>)>,
}

impl Port {
    /// The name as a string (up to the first NUL).
    pub fn name_str(&self) -> String {
        let end = self.name.iter().position(|&b| b == 0).unwrap_or(16);
        String::from_utf8_lossy(&self.name[..end]).into_owned()
    }

    pub(crate) fn parse(r: &mut Reader, version: u8) -> Result<Port> {
        let mut p = Port::default();
        if version == 1 {
            p.port_no = port_from_of10(r.u16("port_no")?);
            p.hw_addr = r.array("hw_addr")?;
            p.name = r.array("name")?;
            p.config = r.u32("config")?;
            p.state = r.u32("state")?;
            p.curr = r.u32("curr")?;
            p.advertised = r.u32("advertised")?;
            p.supported = r.u32("supported")?;
            p.peer = r.u32("peer")?;
        } else if version < 5 {
            p.port_no = r.u32("port_no")?;
            r.pad(4, "pad")?;
            p.hw_addr = r.array("hw_addr")?;
            r.pad(2, "pad")?;
            p.name = r.array("name")?;
            p.config = r.u32("config")?;
            p.state = r.u32("state")?;
            p.curr = r.u32("curr")?;
            p.advertised = r.u32("advertised")?;
            p.supported = r.u32("supported")?;
            p.peer = r.u32("peer")?;
            p.curr_speed = r.u32("curr_speed")?;
            p.max_speed = r.u32("max_speed")?;
        } else {
            p.port_no = r.u32("port_no")?;
            let len = r.u16("port length")? as usize;
            if len < 40 || len - 6 > r.remaining() {
                return fail(OfpErr::OFPBRC_BAD_LEN, "port length");
            }
            let mut b = r.sub(len - 6, "port")?;
            b.pad(2, "pad")?;
            p.hw_addr = b.array("hw_addr")?;
            b.pad(2, "pad")?;
            p.name = b.array("name")?;
            p.config = b.u32("config")?;
            p.state = b.u32("state")?;
            for (ptype, val) in parse_props(&mut b)? {
                if ptype == 0 && val.len() == 28 {
                    let mut e = Reader::new(val, OfpErr::OFPBPC_BAD_LEN);
                    e.pad(4, "pad")?;
                    p.curr = e.u32("curr")?;
                    p.advertised = e.u32("advertised")?;
                    p.supported = e.u32("supported")?;
                    p.peer = e.u32("peer")?;
                    p.curr_speed = e.u32("curr_speed")?;
                    p.max_speed = e.u32("max_speed")?;
                } else {
                    p.extra_props.push((ptype, val.to_vec()));
                }
            }
        }
        Ok(p)
    }

    pub(crate) fn emit(&self, version: u8, w: &mut Writer) {
        if version == 1 {
            w.u16(port_to_of10(self.port_no));
            w.bytes(&self.hw_addr);
            w.bytes(&self.name);
            for v in [
                self.config,
                self.state,
                self.curr,
                self.advertised,
                self.supported,
                self.peer,
            ] {
                w.u32(v);
            }
        } else if version < 5 {
            w.u32(self.port_no);
            w.zeros(4);
            w.bytes(&self.hw_addr);
            w.zeros(2);
            w.bytes(&self.name);
            for v in [
                self.config,
                self.state,
                self.curr,
                self.advertised,
                self.supported,
                self.peer,
                self.curr_speed,
                self.max_speed,
            ] {
                w.u32(v);
            }
        } else {
            let start = w.len();
            w.u32(self.port_no);
            w.u16(0);
            w.zeros(2);
            w.bytes(&self.hw_addr);
            w.zeros(2);
            w.bytes(&self.name);
            w.u32(self.config);
            w.u32(self.state);
            let mut e = Writer::new();
            e.zeros(4);
            for v in [
                self.curr,
                self.advertised,
                self.supported,
                self.peer,
                self.curr_speed,
                self.max_speed,
            ] {
                e.u32(v);
            }
            emit_prop(w, 0, &e.buf);
            for (t, v) in &self.extra_props {
                emit_prop(w, *t, v);
            }
            w.patch_len(start + 4, start);
        }
    }
}

/// A group bucket.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct Bucket {
    /// OpenFlow 1.5 bucket ID (1.1-1.4: implicit).
    pub bucket_id: u32,
    pub weight: Option<u16>,
    pub watch_port: Option<u32>,
    pub watch_group: Option<u32>,
    pub actions: Vec<Action>,
}

/// Whether group mods and group descriptions of `version` use the OpenFlow 1.5 layout (bucket
/// ids, properties): 1.5, and OpenFlow 1.0's Nicira NXT_GROUP_MOD / NXST_GROUP_DESC (OVS
/// `ofputil_pull_ofp15_group_mod` serves both, with 1.0 actions in 1.0).
pub(crate) fn group_layout_15(version: u8) -> bool {
    version >= 6 || version == 1
}

pub(crate) fn parse_buckets(r: &mut Reader, version: u8) -> Result<Vec<Bucket>> {
    let mut out = Vec::new();
    let mut r = r.with_err(OfpErr::OFPGMFC_BAD_BUCKET);
    while !r.is_empty() {
        let len = r.peek_u16(0).ok_or_else(|| r.short("bucket"))? as usize;
        if !group_layout_15(version) {
            if len < 16 || len & 7 != 0 || len > r.remaining() {
                return fail(OfpErr::OFPGMFC_BAD_BUCKET, "bucket length");
            }
            let mut b = r.sub(len, "bucket")?;
            b.skip(2, "len")?;
            let weight = b.u16("weight")?;
            let watch_port = b.u32("watch_port")?;
            let watch_group = b.u32("watch_group")?;
            b.pad(4, "pad")?;
            let actions = parse_actions(&mut b, version)?;
            out.push(Bucket {
                bucket_id: out.len() as u32,
                weight: Some(weight),
                watch_port: Some(watch_port),
                watch_group: Some(watch_group),
                actions,
            });
        } else {
            let alen = r.peek_u16(2).ok_or_else(|| r.short("bucket"))? as usize;
            if len < 8 || len & 7 != 0 || len > r.remaining() || alen > len - 8 {
                return fail(OfpErr::OFPGMFC_BAD_BUCKET, "bucket length");
            }
            let mut b = r.sub(len, "bucket")?;
            b.skip(4, "len")?;
            let mut bk = Bucket {
                bucket_id: b.u32("bucket_id")?,
                ..Default::default()
            };
            let mut ab = b.sub(alen, "bucket actions")?;
            bk.actions = parse_actions(&mut ab, version)?;
            for (t, v) in parse_props(&mut b)? {
                let mut pr = Reader::new(v, OfpErr::OFPBPC_BAD_LEN);
                match t {
                    0 => bk.weight = Some(pr.u16("weight")?),
                    1 => bk.watch_port = Some(pr.u32("watch_port")?),
                    2 => bk.watch_group = Some(pr.u32("watch_group")?),
                    _ => return fail(OfpErr::OFPBPC_BAD_TYPE, "bucket property"),
                }
            }
            out.push(bk);
        }
    }
    Ok(out)
}

pub(crate) fn emit_buckets(buckets: &[Bucket], version: u8, w: &mut Writer) {
    for b in buckets {
        let start = w.len();
        if !group_layout_15(version) {
            w.u16(0);
            w.u16(b.weight.unwrap_or(0));
            w.u32(b.watch_port.unwrap_or(0xffff_ffff));
            w.u32(b.watch_group.unwrap_or(0xffff_ffff));
            w.zeros(4);
            emit_actions(&b.actions, version, w);
        } else {
            w.u16(0);
            w.u16(0);
            w.u32(b.bucket_id);
            let astart = w.len();
            emit_actions(&b.actions, version, w);
            let alen = w.len() - astart;
            w.patch_u16(start + 2, alen as u16);
            if let Some(v) = b.weight {
                let mut p = v.to_be_bytes().to_vec();
                p.extend_from_slice(&[0, 0]);
                emit_prop(w, 0, &p);
            }
            if let Some(v) = b.watch_port {
                emit_prop(w, 1, &v.to_be_bytes());
            }
            if let Some(v) = b.watch_group {
                emit_prop(w, 2, &v.to_be_bytes());
            }
        }
        w.patch_len(start, start);
    }
}

/// A meter band.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MeterBand {
    /// OFPMBT_DROP 1, DSCP_REMARK 2, EXPERIMENTER 0xffff.
    pub band_type: u16,
    pub rate: u32,
    pub burst_size: u32,
    /// Type-specific 4 bytes (prec_level + pad for DSCP_REMARK, experimenter ID, zeros for drop).
    pub extra: [u8; 4],
}

pub(crate) fn parse_bands(r: &mut Reader) -> Result<Vec<MeterBand>> {
    let mut out = Vec::new();
    let mut r = r.with_err(OfpErr::OFPMMFC_BAD_BAND);
    while !r.is_empty() {
        let band_type = r.u16("band type")?;
        let len = r.u16("band len")?;
        if len != 16 {
            return fail(OfpErr::OFPMMFC_BAD_BAND, "band length");
        }
        out.push(MeterBand {
            band_type,
            rate: r.u32("rate")?,
            burst_size: r.u32("burst")?,
            extra: r.array("band extra")?,
        });
    }
    Ok(out)
}

pub(crate) fn emit_bands(bands: &[MeterBand], w: &mut Writer) {
    for b in bands {
        w.u16(b.band_type);
        w.u16(16);
        w.u32(b.rate);
        w.u32(b.burst_size);
        w.bytes(&b.extra);
    }
}

/// One flow in a flow-stats reply (OFPST_FLOW any version, NXST_FLOW).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FlowStats {
    pub table_id: u8,
    pub duration_sec: u32,
    pub duration_nsec: u32,
    pub priority: u16,
    pub idle_timeout: u16,
    pub hard_timeout: u16,
    pub flags: u16,
    pub importance: u16,
    /// NXST_FLOW only.
    pub idle_age: u16,
    pub hard_age: u16,
    pub cookie: u64,
    pub packet_count: u64,
    pub byte_count: u64,
    pub match_: MatchRepr,
    /// OpenFlow 1.5 OXS statistics (`ofp_stats`): duration, idle time, packet and byte
    /// counts there (the fields above are then unused); empty and not encoded before 1.5.
    pub oxs_stats: OxsStats,
    pub instructions: Vec<Instruction>,
}

/// Parses the flow entries of a flow-stats reply: `nx` selects the NXST_FLOW layout.
pub(crate) fn parse_flow_stats(r: &mut Reader, version: u8, nx: bool) -> Result<Vec<FlowStats>> {
    let mut out = Vec::new();
    while !r.is_empty() {
        let len = r.peek_u16(0).ok_or_else(|| r.short("flow stats"))? as usize;
        if len < 8 || len > r.remaining() {
            return fail(OfpErr::OFPBRC_BAD_LEN, "flow stats length");
        }
        let mut e = r.sub(len, "flow stats")?;
        e.skip(2, "len")?;
        let b2 = e.u8("table")?;
        e.pad(1, "pad")?;
        let table_id = if version >= 6 && !nx {
            let t = e.u8("table")?;
            e.pad(1, "pad")?;
            t
        } else {
            b2
        };
        let mut fs = FlowStats {
            table_id,
            duration_sec: 0,
            duration_nsec: 0,
            priority: 0,
            idle_timeout: 0,
            hard_timeout: 0,
            flags: 0,
            importance: 0,
            idle_age: 0,
            hard_age: 0,
            cookie: 0,
            packet_count: 0,
            byte_count: 0,
            match_: MatchRepr::Oxm(Match::default()),
            oxs_stats: OxsStats::default(),
            instructions: vec![],
        };
        if nx {
            fs.duration_sec = e.u32("duration_sec")?;
            fs.duration_nsec = e.u32("duration_nsec")?;
            fs.priority = e.u16("priority")?;
            fs.idle_timeout = e.u16("idle")?;
            fs.hard_timeout = e.u16("hard")?;
            let match_len = e.u16("match_len")? as usize;
            fs.idle_age = e.u16("idle_age")?;
            fs.hard_age = e.u16("hard_age")?;
            fs.cookie = e.u64("cookie")?;
            fs.packet_count = e.u64("packets")?;
            fs.byte_count = e.u64("bytes")?;
            fs.match_ = MatchRepr::Nxm(parse_nx_match(&mut e, match_len)?);
            fs.instructions =
                crate::types::actions_to_instructions(parse_actions(&mut e, version)?);
        } else if version == 1 {
            fs.match_ = MatchRepr::Of10(Of10Match::parse(&mut e)?);
            fs.duration_sec = e.u32("duration_sec")?;
            fs.duration_nsec = e.u32("duration_nsec")?;
            fs.priority = e.u16("priority")?;
            fs.idle_timeout = e.u16("idle")?;
            fs.hard_timeout = e.u16("hard")?;
            e.pad(6, "pad")?;
            fs.cookie = e.u64("cookie")?;
            fs.packet_count = e.u64("packets")?;
            fs.byte_count = e.u64("bytes")?;
            fs.instructions =
                crate::types::actions_to_instructions(parse_actions(&mut e, version)?);
        } else if version < 6 {
            fs.duration_sec = e.u32("duration_sec")?;
            fs.duration_nsec = e.u32("duration_nsec")?;
            fs.priority = e.u16("priority")?;
            fs.idle_timeout = e.u16("idle")?;
            fs.hard_timeout = e.u16("hard")?;
            fs.flags = e.u16("flags")?;
            if version >= 5 {
                fs.importance = e.u16("importance")?;
                e.pad(2, "pad")?;
            } else {
                e.pad(4, "pad")?;
            }
            fs.cookie = e.u64("cookie")?;
            fs.packet_count = e.u64("packets")?;
            fs.byte_count = e.u64("bytes")?;
            fs.match_ = MatchRepr::Oxm(parse_ofp_match(&mut e)?);
            fs.instructions = parse_instructions(&mut e, version)?;
        } else {
            fs.priority = e.u16("priority")?;
            fs.idle_timeout = e.u16("idle")?;
            fs.hard_timeout = e.u16("hard")?;
            fs.flags = e.u16("flags")?;
            fs.importance = e.u16("importance")?;
            fs.cookie = e.u64("cookie")?;
            fs.match_ = MatchRepr::Oxm(parse_ofp_match(&mut e)?);
            fs.oxs_stats = OxsStats::parse(&mut e)?;
            fs.instructions = parse_instructions(&mut e, version)?;
        }
        out.push(fs);
    }
    Ok(out)
}

pub(crate) fn emit_flow_stats(list: &[FlowStats], version: u8, w: &mut Writer) {
    for fs in list {
        let m = match &fs.match_ {
            MatchRepr::Nxm(m) => MatchReprRef::Nxm(m),
            MatchRepr::Oxm(m) => MatchReprRef::Oxm(m),
            MatchRepr::Of10(m) => MatchReprRef::Of10(m),
        };
        emit_flow_stats_entry(&fs.borrowed(m), version, w);
    }
}

/// A match as [`MatchRepr`], borrowed.
#[derive(Debug, Clone, Copy)]
pub enum MatchReprRef<'a> {
    Of10(&'a Of10Match),
    Nxm(&'a Match),
    Oxm(&'a Match),
}

/// A flow-stats entry whose match and instructions are borrowed: a switch answering a dump of
/// 100k flows encodes straight from its flow table, without a copy of every match and action
/// list ([`FlowStatsEncoder`]).
#[derive(Debug, Clone, Copy)]
pub struct FlowStatsRef<'a> {
    pub table_id: u8,
    pub duration_sec: u32,
    pub duration_nsec: u32,
    pub priority: u16,
    pub idle_timeout: u16,
    pub hard_timeout: u16,
    pub flags: u16,
    pub importance: u16,
    pub idle_age: u16,
    pub hard_age: u16,
    pub cookie: u64,
    pub packet_count: u64,
    pub byte_count: u64,
    pub match_: MatchReprRef<'a>,
    pub oxs_stats: &'a OxsStats,
    pub instructions: &'a [Instruction],
}

impl FlowStats {
    fn borrowed<'a>(&'a self, match_: MatchReprRef<'a>) -> FlowStatsRef<'a> {
        FlowStatsRef {
            table_id: self.table_id,
            duration_sec: self.duration_sec,
            duration_nsec: self.duration_nsec,
            priority: self.priority,
            idle_timeout: self.idle_timeout,
            hard_timeout: self.hard_timeout,
            flags: self.flags,
            importance: self.importance,
            idle_age: self.idle_age,
            hard_age: self.hard_age,
            cookie: self.cookie,
            packet_count: self.packet_count,
            byte_count: self.byte_count,
            match_,
            oxs_stats: &self.oxs_stats,
            instructions: &self.instructions,
        }
    }
}

/// Actions of a 1.0 / Nicira flow entry: the apply-actions (and write-actions) lists in order,
/// as [`instructions_to_actions`] flattens them, without copying them.
fn emit_flat_actions(insts: &[Instruction], version: u8, w: &mut Writer) {
    if let [Instruction::ApplyActions(a)] = insts {
        emit_actions(a, version, w);
    } else {
        emit_actions(&instructions_to_actions(insts), version, w);
    }
}

fn emit_flow_stats_entry(fs: &FlowStatsRef, version: u8, w: &mut Writer) {
    let start = w.len();
    w.u16(0);
    if version >= 6 && matches!(fs.match_, MatchReprRef::Oxm(_)) {
        w.zeros(2);
    }
    w.u8(fs.table_id);
    w.u8(0);
    match fs.match_ {
        MatchReprRef::Nxm(m) => {
            w.u32(fs.duration_sec);
            w.u32(fs.duration_nsec);
            w.u16(fs.priority);
            w.u16(fs.idle_timeout);
            w.u16(fs.hard_timeout);
            w.u16(m.tlv_len() as u16);
            w.u16(fs.idle_age);
            w.u16(fs.hard_age);
            w.u64(fs.cookie);
            w.u64(fs.packet_count);
            w.u64(fs.byte_count);
            let ms = w.len();
            m.emit_tlvs(w);
            w.pad8_from(ms);
            emit_flat_actions(fs.instructions, version, w);
        }
        MatchReprRef::Of10(m) => {
            m.emit(w);
            w.u32(fs.duration_sec);
            w.u32(fs.duration_nsec);
            w.u16(fs.priority);
            w.u16(fs.idle_timeout);
            w.u16(fs.hard_timeout);
            w.zeros(6);
            w.u64(fs.cookie);
            w.u64(fs.packet_count);
            w.u64(fs.byte_count);
            emit_flat_actions(fs.instructions, version, w);
        }
        MatchReprRef::Oxm(m) if version < 6 => {
            w.u32(fs.duration_sec);
            w.u32(fs.duration_nsec);
            w.u16(fs.priority);
            w.u16(fs.idle_timeout);
            w.u16(fs.hard_timeout);
            w.u16(fs.flags);
            if version >= 5 {
                w.u16(fs.importance);
                w.zeros(2);
            } else {
                w.zeros(4);
            }
            w.u64(fs.cookie);
            w.u64(fs.packet_count);
            w.u64(fs.byte_count);
            emit_ofp_match(m, w);
            emit_instructions(fs.instructions, version, w);
        }
        MatchReprRef::Oxm(m) => {
            w.u16(fs.priority);
            w.u16(fs.idle_timeout);
            w.u16(fs.hard_timeout);
            w.u16(fs.flags);
            w.u16(fs.importance);
            w.u64(fs.cookie);
            emit_ofp_match(m, w);
            fs.oxs_stats.emit(w);
            emit_instructions(fs.instructions, version, w);
        }
    }
    w.patch_len(start, start);
}

/// Encodes a flow-stats reply entry by entry into messages of at most 64 KiB: `push` returns
/// each message as it fills up (REPLY_MORE set), `finish` the last one (REPLY_MORE clear).
/// The same bytes as encoding [`crate::MpReply::Flow`] parts, without building
/// [`FlowStats`] values.
pub struct FlowStatsEncoder {
    prefix: Vec<u8>,
    w: Writer,
    entries: usize,
}

impl FlowStatsEncoder {
    /// `nx`: the NXST_FLOW form.
    pub fn new(version: u8, xid: u32, nx: bool) -> FlowStatsEncoder {
        let prefix = crate::message::encode(
            version,
            xid,
            &crate::Message::MultipartReply(crate::MultipartReply {
                flags: 1,
                body: crate::MpReply::Flow {
                    nx,
                    flows: Vec::new(),
                },
            }),
        );
        let mut w = Writer::new();
        w.bytes(&prefix);
        FlowStatsEncoder {
            prefix,
            w,
            entries: 0,
        }
    }

    /// Appends one entry; returns a finished message when the entry did not fit in the
    /// current one (the entry then starts the next message).
    pub fn push(&mut self, e: &FlowStatsRef, version: u8) -> Option<Vec<u8>> {
        let before = self.w.len();
        emit_flow_stats_entry(e, version, &mut self.w);
        if self.w.len() <= 0xffff || self.entries == 0 {
            self.entries += 1;
            return None;
        }
        let tail = self.w.buf.split_off(before);
        let mut done = std::mem::replace(&mut self.w.buf, Vec::with_capacity(65536));
        self.w.bytes(&self.prefix);
        self.w.bytes(&tail);
        self.entries = 1;
        let n = done.len().min(0xffff) as u16;
        done[2..4].copy_from_slice(&n.to_be_bytes());
        Some(done)
    }

    /// The last message (possibly with no entry).
    pub fn finish(self) -> Vec<u8> {
        let mut done = self.w.buf;
        let n = done.len().min(0xffff) as u16;
        done[2..4].copy_from_slice(&n.to_be_bytes());
        // the multipart flags are at bytes 10..12 in every version: clear REPLY_MORE
        done[11] &= !1;
        done
    }
}
