//! MULTIPART (OpenFlow 1.0 "stats") requests and replies, including Nicira NXST_* forms.
//!
//! Typed: desc, flow, aggregate (OXS in 1.5), table stats, table features, port stats, port
//! desc, queue stats, group stats, group desc, group features, meter stats, meter config,
//! meter features, table desc, and flow monitors in their three forms (NXST, ONFST,
//! OFPMP 1.4+); in OpenFlow 1.0, group statistics are Nicira's NXST_GROUP.  Other bodies
//! (queue desc, NXST_GROUP_DESC, other experimenter multiparts, types in versions that do
//! not define them) are kept verbatim in [`MpRequest::Raw`]/[`MpReply::Raw`] (or
//! `Experimenter`) so they round-trip.

use crate::action::{port_from_of10, port_to_of10};
use crate::buf::{Reader, Writer};
use crate::error::{fail, OfpErr, Result};
use crate::message::{decode_group_mod, emit_group_mod, GroupMod};
use crate::monitor::{
    emit_requests, emit_updates, parse_requests, parse_updates, FlowMonitorForm,
    FlowMonitorRequest, FlowUpdate,
};
use crate::oxm::{emit_ofp_match, parse_nx_match, parse_ofp_match, Of10Match};
use crate::stats::{
    emit_group_stats, emit_meter_stats, emit_port_stats, emit_queue_stats, emit_table_desc,
    emit_table_features, emit_table_stats, parse_group_stats, parse_meter_stats, parse_port_stats,
    parse_queue_stats, parse_table_desc, parse_table_features, parse_table_stats, GroupStats,
    MeterStats, OxsStats, PortStats, QueueStats, TableDesc, TableFeatures, TableStats,
};
use crate::types::{
    emit_bands, emit_flow_stats, parse_bands, parse_flow_stats, FlowStats, MatchRepr, MeterBand,
    Port,
};
use crate::{NX_VENDOR_ID, ONF_VENDOR_ID};

/// Multipart type numbers (OFPMP_*).
pub mod mp_type {
    pub const DESC: u16 = 0;
    pub const FLOW: u16 = 1;
    pub const AGGREGATE: u16 = 2;
    pub const TABLE: u16 = 3;
    pub const PORT_STATS: u16 = 4;
    pub const QUEUE: u16 = 5;
    pub const GROUP: u16 = 6;
    pub const GROUP_DESC: u16 = 7;
    pub const GROUP_FEATURES: u16 = 8;
    pub const METER: u16 = 9;
    pub const METER_CONFIG: u16 = 10;
    pub const METER_FEATURES: u16 = 11;
    pub const TABLE_FEATURES: u16 = 12;
    pub const PORT_DESC: u16 = 13;
    pub const TABLE_DESC: u16 = 14;
    pub const QUEUE_DESC: u16 = 15;
    pub const FLOW_MONITOR: u16 = 16;
    pub const EXPERIMENTER: u16 = 0xffff;
}

/// Flow / aggregate stats request.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FlowStatsRequest {
    pub table_id: u8,
    pub out_port: u32,
    pub out_group: u32,
    pub cookie: u64,
    pub cookie_mask: u64,
    /// The form: OF1.0 `ofp_match`, NXST (`Nxm`), or OF1.1+ OXM.
    pub match_: MatchRepr,
}

/// ONF experimenter multipart type of ONFST_FLOW_MONITOR.
pub const ONFST_FLOW_MONITOR: u32 = 1870;
/// Nicira experimenter multipart type of NXST_FLOW_MONITOR.
pub const NXST_FLOW_MONITOR: u32 = 2;
/// Nicira experimenter multipart type of NXST_GROUP (group statistics in OpenFlow 1.0).
pub const NXST_GROUP: u32 = 7;
/// Nicira experimenter multipart type of NXST_GROUP_DESC (OpenFlow 1.0; 1.5 layout).
pub const NXST_GROUP_DESC: u32 = 8;
/// Nicira experimenter multipart type of NXST_GROUP_FEATURES (OpenFlow 1.0).
pub const NXST_GROUP_FEATURES: u32 = 9;

/// A multipart request body.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum MpRequest {
    Desc,
    Flow(FlowStatsRequest),
    Aggregate(FlowStatsRequest),
    Table,
    PortStats {
        port_no: u32,
    },
    /// Queue statistics (`queue_id` 0xffffffff: all queues).  OpenFlow 1.0 carries a 16-bit
    /// port (OFPP_ALL for all ports), converted like other 1.0 ports.
    QueueStats {
        port_no: u32,
        queue_id: u32,
    },
    /// Group statistics (OFPG_ALL for all): OFPMP_GROUP, NXST_GROUP in OpenFlow 1.0.
    GroupStats {
        group_id: u32,
    },
    /// Meter statistics (OpenFlow 1.3+; OFPM_ALL for all).
    MeterStats {
        meter_id: u32,
    },
    /// Meter configuration (OpenFlow 1.3+; OFPM_ALL for all).
    MeterConfig {
        meter_id: u32,
    },
    /// Table features (OpenFlow 1.3+): empty to query, or the tables to set.
    TableFeatures(Vec<TableFeatures>),
    /// Flow monitor request (NXST_FLOW_MONITOR, ONFST_FLOW_MONITOR or OFPMP_FLOW_MONITOR).
    FlowMonitor {
        form: FlowMonitorForm,
        monitors: Vec<FlowMonitorRequest>,
    },
    /// `port_no` is present in OpenFlow 1.5.
    PortDesc {
        port_no: Option<u32>,
    },
    /// `group_id` is present in OpenFlow 1.5.
    GroupDesc {
        group_id: Option<u32>,
    },
    GroupFeatures,
    MeterFeatures,
    TableDesc,
    Raw {
        mp_type: u16,
        body: Vec<u8>,
    },
    /// Experimenter / vendor multipart (NXST_*, ONFST_*) not modelled above.
    Experimenter {
        experimenter: u32,
        exp_type: u32,
        body: Vec<u8>,
    },
}

/// MULTIPART_REQUEST.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MultipartRequest {
    /// OFPMPF_REQ_MORE = 1.
    pub flags: u16,
    pub body: MpRequest,
}

/// `ofp_desc`: fixed-size NUL-padded strings, kept verbatim.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Desc {
    pub mfr_desc: Vec<u8>,
    pub hw_desc: Vec<u8>,
    pub sw_desc: Vec<u8>,
    pub serial_num: Vec<u8>,
    pub dp_desc: Vec<u8>,
}

/// Meter features reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct MeterFeatures {
    pub max_meter: u32,
    pub band_types: u32,
    pub capabilities: u32,
    pub max_bands: u8,
    pub max_color: u8,
}

/// Group features reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct GroupFeatures {
    pub types: u32,
    pub capabilities: u32,
    pub max_groups: [u32; 4],
    pub actions: [u32; 4],
}

/// One meter in a meter-config reply.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MeterConfig {
    pub flags: u16,
    pub meter_id: u32,
    pub bands: Vec<MeterBand>,
}

/// A multipart reply body.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum MpReply {
    Desc(Desc),
    /// `nx`: NXST_FLOW form.
    Flow {
        nx: bool,
        flows: Vec<FlowStats>,
    },
    Aggregate {
        nx: bool,
        packet_count: u64,
        byte_count: u64,
        flow_count: u32,
    },
    /// OpenFlow 1.5 aggregate reply: OXS flow, packet and byte counts.
    AggregateOxs(OxsStats),
    TableStats(Vec<TableStats>),
    /// Table features (OpenFlow 1.3+).
    TableFeatures(Vec<TableFeatures>),
    PortStats(Vec<PortStats>),
    QueueStats(Vec<QueueStats>),
    PortDesc(Vec<Port>),
    /// Group descriptions (`command` is unused, 0).
    GroupDesc(Vec<GroupMod>),
    GroupFeatures(GroupFeatures),
    MeterConfig(Vec<MeterConfig>),
    MeterFeatures(MeterFeatures),
    /// Group statistics: OFPMP_GROUP, NXST_GROUP in OpenFlow 1.0 (same layout as 1.3).
    GroupStats(Vec<GroupStats>),
    /// Meter statistics (OpenFlow 1.3+).
    MeterStats(Vec<MeterStats>),
    /// Table descriptions (OpenFlow 1.4+).
    TableDesc(Vec<TableDesc>),
    /// Flow updates (NXST_FLOW_MONITOR, ONFST_FLOW_MONITOR or OFPMP_FLOW_MONITOR).
    FlowMonitor {
        form: FlowMonitorForm,
        updates: Vec<FlowUpdate>,
    },
    Raw {
        mp_type: u16,
        body: Vec<u8>,
    },
    Experimenter {
        experimenter: u32,
        exp_type: u32,
        body: Vec<u8>,
    },
}

/// MULTIPART_REPLY.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MultipartReply {
    /// OFPMPF_REPLY_MORE = 1.
    pub flags: u16,
    pub body: MpReply,
}

const BRC: OfpErr = OfpErr::OFPBRC_BAD_LEN;

/// Reads the common part: type, flags, (1.1+) pad4; and for experimenter types the
/// experimenter ID and subtype (plus 4 pad bytes in OF1.0's vendor stats).
/// (type, flags, experimenter and subtype for experimenter types).
type MpHeader = (u16, u16, Option<(u32, u32)>);

fn parse_mp_header(r: &mut Reader, v: u8) -> Result<MpHeader> {
    let t = r.u16("multipart type")?;
    let flags = r.u16("multipart flags")?;
    if v != 1 {
        r.pad(4, "pad")?;
    }
    if t == 0xffff {
        let exp = r.u32("experimenter")?;
        if v == 1 && exp != NX_VENDOR_ID {
            return fail(OfpErr::OFPBRC_BAD_VENDOR, "vendor stats");
        }
        let sub = if v == 1 || exp == NX_VENDOR_ID || exp == ONF_VENDOR_ID {
            r.u32("subtype")?
        } else {
            return fail(OfpErr::OFPBRC_BAD_VENDOR, "experimenter multipart");
        };
        if v == 1 {
            r.pad(4, "pad")?;
        }
        return Ok((t, flags, Some((exp, sub))));
    }
    Ok((t, flags, None))
}

fn emit_mp_header(w: &mut Writer, v: u8, t: u16, flags: u16, exp: Option<(u32, u32)>) {
    w.u16(t);
    w.u16(flags);
    if v != 1 {
        w.zeros(4);
    }
    if let Some((e, s)) = exp {
        w.u32(e);
        w.u32(s);
        if v == 1 {
            w.zeros(4);
        }
    }
}

fn parse_flow_req(r: &mut Reader, v: u8, nx: bool) -> Result<FlowStatsRequest> {
    if nx {
        let out_port = port_from_of10(r.u16("out_port")?);
        let match_len = r.u16("match_len")? as usize;
        let table_id = r.u8("table")?;
        r.pad(3, "pad")?;
        let m = parse_nx_match(r, match_len)?;
        return Ok(FlowStatsRequest {
            table_id,
            out_port,
            out_group: 0xffff_ffff,
            cookie: 0,
            cookie_mask: 0,
            match_: MatchRepr::Nxm(m),
        });
    }
    if v == 1 {
        let m = Of10Match::parse(r)?;
        let table_id = r.u8("table")?;
        r.pad(1, "pad")?;
        let out_port = port_from_of10(r.u16("out_port")?);
        return Ok(FlowStatsRequest {
            table_id,
            out_port,
            out_group: 0xffff_ffff,
            cookie: 0,
            cookie_mask: 0,
            match_: MatchRepr::Of10(m),
        });
    }
    let table_id = r.u8("table")?;
    r.pad(3, "pad")?;
    let out_port = r.u32("out_port")?;
    let out_group = r.u32("out_group")?;
    r.pad(4, "pad")?;
    let cookie = r.u64("cookie")?;
    let cookie_mask = r.u64("cookie_mask")?;
    let m = parse_ofp_match(r)?;
    Ok(FlowStatsRequest {
        table_id,
        out_port,
        out_group,
        cookie,
        cookie_mask,
        match_: MatchRepr::Oxm(m),
    })
}

fn emit_flow_req(f: &FlowStatsRequest, w: &mut Writer) {
    match &f.match_ {
        MatchRepr::Nxm(m) => {
            w.u16(port_to_of10(f.out_port));
            w.u16(m.tlv_len() as u16);
            w.u8(f.table_id);
            w.zeros(3);
            let s = w.len();
            m.emit_tlvs(w);
            w.pad8_from(s);
        }
        MatchRepr::Of10(m) => {
            m.emit(w);
            w.u8(f.table_id);
            w.u8(0);
            w.u16(port_to_of10(f.out_port));
        }
        MatchRepr::Oxm(m) => {
            w.u8(f.table_id);
            w.zeros(3);
            w.u32(f.out_port);
            w.u32(f.out_group);
            w.zeros(4);
            w.u64(f.cookie);
            w.u64(f.cookie_mask);
            emit_ofp_match(m, w);
        }
    }
}

impl MultipartRequest {
    pub(crate) fn decode(r: &mut Reader, v: u8) -> Result<MultipartRequest> {
        let (t, flags, exp) = parse_mp_header(r, v)?;
        let empty = |r: &Reader, b: MpRequest| {
            if r.is_empty() {
                Ok(b)
            } else {
                fail(BRC, "multipart request body")
            }
        };
        use mp_type::*;
        let body = match (t, exp) {
            (EXPERIMENTER, Some((NX_VENDOR_ID, 0))) => MpRequest::Flow(parse_flow_req(r, v, true)?),
            (EXPERIMENTER, Some((NX_VENDOR_ID, 1))) => {
                MpRequest::Aggregate(parse_flow_req(r, v, true)?)
            }
            (EXPERIMENTER, Some((NX_VENDOR_ID, NXST_FLOW_MONITOR))) => MpRequest::FlowMonitor {
                form: FlowMonitorForm::Nicira,
                monitors: parse_requests(r, FlowMonitorForm::Nicira)?,
            },
            (EXPERIMENTER, Some((ONF_VENDOR_ID, ONFST_FLOW_MONITOR))) => MpRequest::FlowMonitor {
                form: FlowMonitorForm::Onf,
                monitors: parse_requests(r, FlowMonitorForm::Onf)?,
            },
            (EXPERIMENTER, Some((NX_VENDOR_ID, NXST_GROUP))) if v == 1 => {
                let group_id = r.u32("group_id")?;
                r.pad(4, "pad")?;
                empty(r, MpRequest::GroupStats { group_id })?
            }
            (EXPERIMENTER, Some((NX_VENDOR_ID, NXST_GROUP_DESC))) if v == 1 => {
                let g = r.u32("group_id")?;
                r.pad(4, "pad")?;
                empty(r, MpRequest::GroupDesc { group_id: Some(g) })?
            }
            (EXPERIMENTER, Some((NX_VENDOR_ID, NXST_GROUP_FEATURES))) if v == 1 => {
                empty(r, MpRequest::GroupFeatures)?
            }
            (EXPERIMENTER, Some((e, s))) => MpRequest::Experimenter {
                experimenter: e,
                exp_type: s,
                body: r.take_rest().to_vec(),
            },
            (DESC, _) => empty(r, MpRequest::Desc)?,
            (FLOW, _) => MpRequest::Flow(parse_flow_req(r, v, false)?),
            (AGGREGATE, _) => MpRequest::Aggregate(parse_flow_req(r, v, false)?),
            (TABLE, _) => empty(r, MpRequest::Table)?,
            (PORT_STATS, _) => {
                let port_no = if v == 1 {
                    let p = port_from_of10(r.u16("port_no")?);
                    r.pad(6, "pad")?;
                    p
                } else {
                    let p = r.u32("port_no")?;
                    r.pad(4, "pad")?;
                    p
                };
                empty(r, MpRequest::PortStats { port_no })?
            }
            (PORT_DESC, _) if v >= 6 => {
                let p = r.u32("port_no")?;
                r.pad(4, "pad")?;
                empty(r, MpRequest::PortDesc { port_no: Some(p) })?
            }
            (PORT_DESC, _) => empty(r, MpRequest::PortDesc { port_no: None })?,
            (GROUP_DESC, _) if v >= 6 => {
                let g = r.u32("group_id")?;
                r.pad(4, "pad")?;
                empty(r, MpRequest::GroupDesc { group_id: Some(g) })?
            }
            (GROUP_DESC, _) if v != 1 => empty(r, MpRequest::GroupDesc { group_id: None })?,
            (GROUP_FEATURES, _) if v != 1 => empty(r, MpRequest::GroupFeatures)?,
            (METER_FEATURES, _) if v >= 4 => empty(r, MpRequest::MeterFeatures)?,
            (TABLE_DESC, _) if v >= 5 => empty(r, MpRequest::TableDesc)?,
            (QUEUE, _) => {
                let port_no = if v == 1 {
                    let p = port_from_of10(r.u16("port_no")?);
                    r.pad(2, "pad")?;
                    p
                } else {
                    r.u32("port_no")?
                };
                let queue_id = r.u32("queue_id")?;
                empty(r, MpRequest::QueueStats { port_no, queue_id })?
            }
            (GROUP, _) if v >= 4 => {
                let group_id = r.u32("group_id")?;
                r.pad(4, "pad")?;
                empty(r, MpRequest::GroupStats { group_id })?
            }
            (METER | METER_CONFIG, _) if v >= 4 => {
                let meter_id = r.u32("meter_id")?;
                r.pad(4, "pad")?;
                let b = if t == METER {
                    MpRequest::MeterStats { meter_id }
                } else {
                    MpRequest::MeterConfig { meter_id }
                };
                empty(r, b)?
            }
            (TABLE_FEATURES, _) if v >= 4 => MpRequest::TableFeatures(parse_table_features(r, v)?),
            (FLOW_MONITOR, _) if v >= 5 => MpRequest::FlowMonitor {
                form: FlowMonitorForm::OpenFlow,
                monitors: parse_requests(r, FlowMonitorForm::OpenFlow)?,
            },
            (t, _) if t <= 19 => MpRequest::Raw {
                mp_type: t,
                body: r.take_rest().to_vec(),
            },
            _ => return fail(OfpErr::OFPBRC_BAD_STAT, "multipart type"),
        };
        Ok(MultipartRequest { flags, body })
    }

    pub(crate) fn emit(&self, v: u8, w: &mut Writer) {
        use mp_type::*;
        let f = self.flags;
        match &self.body {
            MpRequest::Desc => emit_mp_header(w, v, DESC, f, None),
            MpRequest::Flow(fr) | MpRequest::Aggregate(fr) => {
                let agg = matches!(self.body, MpRequest::Aggregate(_));
                if let MatchRepr::Nxm(_) = fr.match_ {
                    emit_mp_header(w, v, EXPERIMENTER, f, Some((NX_VENDOR_ID, agg as u32)));
                } else {
                    emit_mp_header(w, v, if agg { AGGREGATE } else { FLOW }, f, None);
                }
                emit_flow_req(fr, w);
            }
            MpRequest::Table => emit_mp_header(w, v, TABLE, f, None),
            MpRequest::PortStats { port_no } => {
                emit_mp_header(w, v, PORT_STATS, f, None);
                if v == 1 {
                    w.u16(port_to_of10(*port_no));
                    w.zeros(6);
                } else {
                    w.u32(*port_no);
                    w.zeros(4);
                }
            }
            MpRequest::PortDesc { port_no } => {
                emit_mp_header(w, v, PORT_DESC, f, None);
                if let Some(p) = port_no {
                    w.u32(*p);
                    w.zeros(4);
                }
            }
            MpRequest::GroupDesc { group_id } => {
                emit_group_header(w, v, f, GROUP_DESC, NXST_GROUP_DESC);
                if v == 1 {
                    w.u32(group_id.unwrap_or(0xffff_fffc));
                    w.zeros(4);
                } else if let Some(g) = group_id {
                    w.u32(*g);
                    w.zeros(4);
                }
            }
            MpRequest::GroupFeatures => {
                emit_group_header(w, v, f, GROUP_FEATURES, NXST_GROUP_FEATURES)
            }
            MpRequest::MeterFeatures => emit_mp_header(w, v, METER_FEATURES, f, None),
            MpRequest::TableDesc => emit_mp_header(w, v, TABLE_DESC, f, None),
            MpRequest::QueueStats { port_no, queue_id } => {
                emit_mp_header(w, v, QUEUE, f, None);
                if v == 1 {
                    w.u16(port_to_of10(*port_no));
                    w.zeros(2);
                } else {
                    w.u32(*port_no);
                }
                w.u32(*queue_id);
            }
            MpRequest::GroupStats { group_id } => {
                emit_group_stats_header(w, v, f);
                w.u32(*group_id);
                w.zeros(4);
            }
            MpRequest::MeterStats { meter_id } | MpRequest::MeterConfig { meter_id } => {
                let t = if matches!(self.body, MpRequest::MeterStats { .. }) {
                    METER
                } else {
                    METER_CONFIG
                };
                emit_mp_header(w, v, t, f, None);
                w.u32(*meter_id);
                w.zeros(4);
            }
            MpRequest::TableFeatures(list) => {
                emit_mp_header(w, v, TABLE_FEATURES, f, None);
                emit_table_features(list, v, w);
            }
            MpRequest::FlowMonitor { form, monitors } => {
                emit_monitor_header(w, v, *form, f);
                emit_requests(monitors, *form, w);
            }
            MpRequest::Raw { mp_type, body } => {
                emit_mp_header(w, v, *mp_type, f, None);
                w.bytes(body);
            }
            MpRequest::Experimenter {
                experimenter,
                exp_type,
                body,
            } => {
                emit_mp_header(w, v, EXPERIMENTER, f, Some((*experimenter, *exp_type)));
                w.bytes(body);
            }
        }
    }
}

impl MultipartReply {
    pub(crate) fn decode(r: &mut Reader, v: u8) -> Result<MultipartReply> {
        let (t, flags, exp) = parse_mp_header(r, v)?;
        use mp_type::*;
        let body = match (t, exp) {
            (EXPERIMENTER, Some((NX_VENDOR_ID, 0))) => MpReply::Flow {
                nx: true,
                flows: parse_flow_stats(r, v, true)?,
            },
            (EXPERIMENTER, Some((NX_VENDOR_ID, 1))) => parse_aggregate(r, true)?,
            (EXPERIMENTER, Some((NX_VENDOR_ID, NXST_FLOW_MONITOR))) => MpReply::FlowMonitor {
                form: FlowMonitorForm::Nicira,
                updates: parse_updates(r, FlowMonitorForm::Nicira, v)?,
            },
            (EXPERIMENTER, Some((ONF_VENDOR_ID, ONFST_FLOW_MONITOR))) => MpReply::FlowMonitor {
                form: FlowMonitorForm::Onf,
                updates: parse_updates(r, FlowMonitorForm::Onf, v)?,
            },
            (EXPERIMENTER, Some((NX_VENDOR_ID, NXST_GROUP))) if v == 1 => {
                MpReply::GroupStats(parse_group_stats(r)?)
            }
            (EXPERIMENTER, Some((NX_VENDOR_ID, NXST_GROUP_DESC))) if v == 1 => {
                MpReply::GroupDesc(parse_group_descs(r, v)?)
            }
            (EXPERIMENTER, Some((NX_VENDOR_ID, NXST_GROUP_FEATURES))) if v == 1 => {
                MpReply::GroupFeatures(parse_group_features(r)?)
            }
            (EXPERIMENTER, Some((e, s))) => MpReply::Experimenter {
                experimenter: e,
                exp_type: s,
                body: r.take_rest().to_vec(),
            },
            (DESC, _) => MpReply::Desc(Desc {
                mfr_desc: r.bytes(256, "mfr")?.to_vec(),
                hw_desc: r.bytes(256, "hw")?.to_vec(),
                sw_desc: r.bytes(256, "sw")?.to_vec(),
                serial_num: r.bytes(32, "serial")?.to_vec(),
                dp_desc: r.bytes(256, "dp")?.to_vec(),
            }),
            (FLOW, _) => MpReply::Flow {
                nx: false,
                flows: parse_flow_stats(r, v, false)?,
            },
            (AGGREGATE, _) if v >= 6 => MpReply::AggregateOxs(OxsStats::parse(r)?),
            (TABLE, _) => MpReply::TableStats(parse_table_stats(r, v)?),
            (PORT_STATS, _) if v == 1 || v >= 4 => MpReply::PortStats(parse_port_stats(r, v)?),
            (QUEUE, _) if v == 1 || v >= 4 => MpReply::QueueStats(parse_queue_stats(r, v)?),
            (GROUP, _) if v >= 4 => MpReply::GroupStats(parse_group_stats(r)?),
            (METER, _) if v >= 4 => MpReply::MeterStats(parse_meter_stats(r)?),
            (TABLE_FEATURES, _) if v >= 4 => MpReply::TableFeatures(parse_table_features(r, v)?),
            (TABLE_DESC, _) if v >= 5 => MpReply::TableDesc(parse_table_desc(r)?),
            (FLOW_MONITOR, _) if v >= 5 => MpReply::FlowMonitor {
                form: FlowMonitorForm::OpenFlow,
                updates: parse_updates(r, FlowMonitorForm::OpenFlow, v)?,
            },
            (AGGREGATE, _) => parse_aggregate(r, false)?,
            (PORT_DESC, _) => {
                let mut ports = Vec::new();
                while !r.is_empty() {
                    ports.push(Port::parse(r, v)?);
                }
                MpReply::PortDesc(ports)
            }
            (GROUP_DESC, _) if v != 1 => MpReply::GroupDesc(parse_group_descs(r, v)?),
            (GROUP_FEATURES, _) if v != 1 => MpReply::GroupFeatures(parse_group_features(r)?),
            (METER_CONFIG, _) if v >= 4 => {
                let mut out = Vec::new();
                while !r.is_empty() {
                    let len = r.u16("meter config length")? as usize;
                    if len < 8 || len - 2 > r.remaining() {
                        return fail(BRC, "meter config length");
                    }
                    let mut e = r.sub(len - 2, "meter config")?;
                    let flags = e.u16("flags")?;
                    let meter_id = e.u32("meter_id")?;
                    out.push(MeterConfig {
                        flags,
                        meter_id,
                        bands: parse_bands(&mut e)?,
                    });
                }
                MpReply::MeterConfig(out)
            }
            (METER_FEATURES, _) if v >= 4 => {
                let f = MeterFeatures {
                    max_meter: r.u32("max_meter")?,
                    band_types: r.u32("band_types")?,
                    capabilities: r.u32("capabilities")?,
                    max_bands: r.u8("max_bands")?,
                    max_color: r.u8("max_color")?,
                };
                r.pad(2, "pad")?;
                MpReply::MeterFeatures(f)
            }
            (t, _) if t <= 19 => MpReply::Raw {
                mp_type: t,
                body: r.take_rest().to_vec(),
            },
            _ => return fail(OfpErr::OFPBRC_BAD_STAT, "multipart type"),
        };
        if !r.is_empty() {
            return fail(BRC, "multipart reply trailing bytes");
        }
        Ok(MultipartReply { flags, body })
    }

    pub(crate) fn emit(&self, v: u8, w: &mut Writer) {
        use mp_type::*;
        let f = self.flags;
        match &self.body {
            MpReply::Desc(d) => {
                emit_mp_header(w, v, DESC, f, None);
                for (s, n) in [
                    (&d.mfr_desc, 256),
                    (&d.hw_desc, 256),
                    (&d.sw_desc, 256),
                    (&d.serial_num, 32),
                    (&d.dp_desc, 256),
                ] {
                    let b = &s[..s.len().min(n)];
                    w.bytes(b);
                    w.zeros(n - b.len());
                }
            }
            MpReply::Flow { nx, flows } => {
                if *nx {
                    emit_mp_header(w, v, EXPERIMENTER, f, Some((NX_VENDOR_ID, 0)));
                } else {
                    emit_mp_header(w, v, FLOW, f, None);
                }
                emit_flow_stats(flows, v, w);
            }
            MpReply::Aggregate {
                nx,
                packet_count,
                byte_count,
                flow_count,
            } => {
                if *nx {
                    emit_mp_header(w, v, EXPERIMENTER, f, Some((NX_VENDOR_ID, 1)));
                } else {
                    emit_mp_header(w, v, AGGREGATE, f, None);
                }
                w.u64(*packet_count);
                w.u64(*byte_count);
                w.u32(*flow_count);
                w.zeros(4);
            }
            MpReply::AggregateOxs(x) => {
                emit_mp_header(w, v, AGGREGATE, f, None);
                x.emit(w);
            }
            MpReply::TableStats(list) => {
                emit_mp_header(w, v, TABLE, f, None);
                emit_table_stats(list, v, w);
            }
            MpReply::TableFeatures(list) => {
                emit_mp_header(w, v, TABLE_FEATURES, f, None);
                emit_table_features(list, v, w);
            }
            MpReply::PortStats(list) => {
                emit_mp_header(w, v, PORT_STATS, f, None);
                emit_port_stats(list, v, w);
            }
            MpReply::QueueStats(list) => {
                emit_mp_header(w, v, QUEUE, f, None);
                emit_queue_stats(list, v, w);
            }
            MpReply::GroupStats(list) => {
                emit_group_stats_header(w, v, f);
                emit_group_stats(list, w);
            }
            MpReply::MeterStats(list) => {
                emit_mp_header(w, v, METER, f, None);
                emit_meter_stats(list, w);
            }
            MpReply::TableDesc(list) => {
                emit_mp_header(w, v, TABLE_DESC, f, None);
                emit_table_desc(list, w);
            }
            MpReply::FlowMonitor { form, updates } => {
                emit_monitor_header(w, v, *form, f);
                emit_updates(updates, *form, v, w);
            }
            MpReply::PortDesc(ports) => {
                emit_mp_header(w, v, PORT_DESC, f, None);
                for p in ports {
                    p.emit(v, w);
                }
            }
            MpReply::GroupDesc(groups) => {
                emit_group_header(w, v, f, GROUP_DESC, NXST_GROUP_DESC);
                for g in groups {
                    let start = w.len();
                    emit_group_mod(g, v, w);
                    w.patch_len(start, start);
                }
            }
            MpReply::GroupFeatures(g) => {
                emit_group_header(w, v, f, GROUP_FEATURES, NXST_GROUP_FEATURES);
                w.u32(g.types);
                w.u32(g.capabilities);
                for x in g.max_groups.iter().chain(g.actions.iter()) {
                    w.u32(*x);
                }
            }
            MpReply::MeterConfig(list) => {
                emit_mp_header(w, v, METER_CONFIG, f, None);
                for m in list {
                    let start = w.len();
                    w.u16(0);
                    w.u16(m.flags);
                    w.u32(m.meter_id);
                    emit_bands(&m.bands, w);
                    w.patch_len(start, start);
                }
            }
            MpReply::MeterFeatures(m) => {
                emit_mp_header(w, v, METER_FEATURES, f, None);
                w.u32(m.max_meter);
                w.u32(m.band_types);
                w.u32(m.capabilities);
                w.u8(m.max_bands);
                w.u8(m.max_color);
                w.zeros(2);
            }
            MpReply::Raw { mp_type, body } => {
                emit_mp_header(w, v, *mp_type, f, None);
                w.bytes(body);
            }
            MpReply::Experimenter {
                experimenter,
                exp_type,
                body,
            } => {
                emit_mp_header(w, v, EXPERIMENTER, f, Some((*experimenter, *exp_type)));
                w.bytes(body);
            }
        }
    }
}

/// OFPMP_GROUP, or NXST_GROUP in OpenFlow 1.0.
/// The header of a group desc or features multipart: the standard type, or in OpenFlow 1.0
/// the Nicira one.
fn emit_group_header(w: &mut Writer, v: u8, flags: u16, std: u16, nx: u32) {
    if v == 1 {
        emit_mp_header(w, v, mp_type::EXPERIMENTER, flags, Some((NX_VENDOR_ID, nx)));
    } else {
        emit_mp_header(w, v, std, flags, None);
    }
}

fn parse_group_descs(r: &mut Reader, v: u8) -> Result<Vec<GroupMod>> {
    let mut out = Vec::new();
    while !r.is_empty() {
        let len = r.peek_u16(0).ok_or_else(|| r.short("group desc"))? as usize;
        if len < 8 || len > r.remaining() {
            return fail(BRC, "group desc length");
        }
        let mut e = r.sub(len, "group desc")?;
        // Same layout as a group mod after replacing `length` by `command`.
        let mut g = decode_group_mod(&mut e, v)?;
        g.command = 0;
        out.push(g);
    }
    Ok(out)
}

fn parse_group_features(r: &mut Reader) -> Result<GroupFeatures> {
    let mut g = GroupFeatures {
        types: r.u32("types")?,
        capabilities: r.u32("capabilities")?,
        ..Default::default()
    };
    for i in 0..4 {
        g.max_groups[i] = r.u32("max_groups")?;
    }
    for i in 0..4 {
        g.actions[i] = r.u32("actions")?;
    }
    Ok(g)
}

fn emit_group_stats_header(w: &mut Writer, v: u8, flags: u16) {
    if v == 1 {
        emit_mp_header(
            w,
            v,
            mp_type::EXPERIMENTER,
            flags,
            Some((NX_VENDOR_ID, NXST_GROUP)),
        );
    } else {
        emit_mp_header(w, v, mp_type::GROUP, flags, None);
    }
}

fn emit_monitor_header(w: &mut Writer, v: u8, form: FlowMonitorForm, flags: u16) {
    use mp_type::*;
    match form {
        FlowMonitorForm::Nicira => emit_mp_header(
            w,
            v,
            EXPERIMENTER,
            flags,
            Some((NX_VENDOR_ID, NXST_FLOW_MONITOR)),
        ),
        FlowMonitorForm::Onf => emit_mp_header(
            w,
            v,
            EXPERIMENTER,
            flags,
            Some((ONF_VENDOR_ID, ONFST_FLOW_MONITOR)),
        ),
        FlowMonitorForm::OpenFlow => emit_mp_header(w, v, FLOW_MONITOR, flags, None),
    }
}

fn parse_aggregate(r: &mut Reader, nx: bool) -> Result<MpReply> {
    let packet_count = r.u64("packets")?;
    let byte_count = r.u64("bytes")?;
    let flow_count = r.u32("flows")?;
    r.pad(4, "pad")?;
    Ok(MpReply::Aggregate {
        nx,
        packet_count,
        byte_count,
        flow_count,
    })
}
