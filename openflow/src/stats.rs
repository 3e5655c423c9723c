//! Statistics bodies of MULTIPART replies (table, table features, port, queue, group, meter,
//! table description) and OpenFlow 1.5's OXS statistics (`ofp_stats`).
//!
//! Each type is one entry of its reply, in the layout of the message's version; properties
//! that are not modelled are carried verbatim, so everything Open vSwitch sends round-trips.

use crate::action::{emit_prop, parse_props, port_from_of10, port_to_of10};
use crate::buf::{pad8, Reader, Writer};
use crate::error::{fail, OfpErr, Result};
use crate::oxm::OxmHeader;

const BRC: OfpErr = OfpErr::OFPBRC_BAD_LEN;

/// Copies `s` into a NUL-padded fixed-size name (at most `N - 1` bytes, so it stays
/// NUL-terminated).
pub fn fixed_name<const N: usize>(s: &str) -> [u8; N] {
    let mut n = [0u8; N];
    let b = s.as_bytes();
    let l = b.len().min(N.saturating_sub(1));
    n[..l].copy_from_slice(&b[..l]);
    n
}

/// A NUL-padded fixed-size name as a string (up to the first NUL).
pub fn name_str(name: &[u8]) -> String {
    let end = name.iter().position(|&b| b == 0).unwrap_or(name.len());
    String::from_utf8_lossy(&name[..end]).into_owned()
}

// ------------------------------------------------------------------------------------------
// Table statistics (OFPMP_TABLE)

/// One table of a table-stats reply: `ofp10_table_stats` (64 bytes) in OpenFlow 1.0,
/// `ofp13_table_stats` (24 bytes) in 1.3+.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct TableStats {
    pub table_id: u8,
    /// OpenFlow 1.0 only (zero and not encoded in 1.3+): NUL-padded table name.
    pub name: [u8; 32],
    /// OpenFlow 1.0 only: the OFPFW10_* wildcards the table supports.
    pub wildcards: u32,
    /// OpenFlow 1.0 only: maximum number of entries.
    pub max_entries: u32,
    pub active_count: u32,
    pub lookup_count: u64,
    pub matched_count: u64,
}

impl TableStats {
    /// The OpenFlow 1.0 name as a string.
    pub fn name_str(&self) -> String {
        name_str(&self.name)
    }
}

pub(crate) fn parse_table_stats(r: &mut Reader, v: u8) -> Result<Vec<TableStats>> {
    let mut out = Vec::new();
    let n = if v == 1 { 64 } else { 24 };
    if !r.remaining().is_multiple_of(n) {
        return fail(BRC, "table stats length");
    }
    while !r.is_empty() {
        let mut t = TableStats {
            table_id: r.u8("table_id")?,
            ..Default::default()
        };
        r.pad(3, "pad")?;
        if v == 1 {
            t.name = r.array("name")?;
            t.wildcards = r.u32("wildcards")?;
            t.max_entries = r.u32("max_entries")?;
        }
        t.active_count = r.u32("active_count")?;
        t.lookup_count = r.u64("lookup_count")?;
        t.matched_count = r.u64("matched_count")?;
        out.push(t);
    }
    Ok(out)
}

pub(crate) fn emit_table_stats(list: &[TableStats], v: u8, w: &mut Writer) {
    for t in list {
        w.u8(t.table_id);
        w.zeros(3);
        if v == 1 {
            w.bytes(&t.name);
            w.u32(t.wildcards);
            w.u32(t.max_entries);
        }
        w.u32(t.active_count);
        w.u64(t.lookup_count);
        w.u64(t.matched_count);
    }
}

// ------------------------------------------------------------------------------------------
// Table features (OFPMP_TABLE_FEATURES)

/// Table-feature property types (OFPTFPT_*).
pub mod tfpt {
    pub const INSTRUCTIONS: u16 = 0;
    pub const INSTRUCTIONS_MISS: u16 = 1;
    pub const NEXT_TABLES: u16 = 2;
    pub const NEXT_TABLES_MISS: u16 = 3;
    pub const WRITE_ACTIONS: u16 = 4;
    pub const WRITE_ACTIONS_MISS: u16 = 5;
    pub const APPLY_ACTIONS: u16 = 6;
    pub const APPLY_ACTIONS_MISS: u16 = 7;
    pub const MATCH: u16 = 8;
    pub const WILDCARDS: u16 = 10;
    pub const WRITE_SETFIELD: u16 = 12;
    pub const WRITE_SETFIELD_MISS: u16 = 13;
    pub const APPLY_SETFIELD: u16 = 14;
    pub const APPLY_SETFIELD_MISS: u16 = 15;
    pub const EXPERIMENTER: u16 = 0xfffe;
    pub const EXPERIMENTER_MISS: u16 = 0xffff;
}

/// An instruction or action ID in a table-features property (`ofp_instruction_id`,
/// `ofp_action_id`): its type and whatever follows the 4-byte type/length header
/// (experimenter IDs carry their experimenter ID there), verbatim.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FeatureId {
    pub id_type: u16,
    pub data: Vec<u8>,
}

impl FeatureId {
    /// A plain (non-experimenter) ID.
    pub fn new(id_type: u16) -> Self {
        FeatureId {
            id_type,
            data: Vec::new(),
        }
    }
}

/// One table-features property.  `miss` selects the `_MISS` variant (what applies to the
/// table-miss flow).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum TableFeatureProp {
    /// OFPTFPT_INSTRUCTIONS(_MISS): instruction IDs.
    Instructions { miss: bool, ids: Vec<FeatureId> },
    /// OFPTFPT_NEXT_TABLES(_MISS): tables a goto_table may reach.
    NextTables { miss: bool, tables: Vec<u8> },
    /// OFPTFPT_WRITE_ACTIONS(_MISS): action IDs.
    WriteActions { miss: bool, ids: Vec<FeatureId> },
    /// OFPTFPT_APPLY_ACTIONS(_MISS): action IDs.
    ApplyActions { miss: bool, ids: Vec<FeatureId> },
    /// OFPTFPT_MATCH: matchable fields (`hasmask` set for arbitrarily maskable ones).
    Match(Vec<OxmHeader>),
    /// OFPTFPT_WILDCARDS: fields that may be wildcarded.
    Wildcards(Vec<OxmHeader>),
    /// OFPTFPT_WRITE_SETFIELD(_MISS).
    WriteSetfield { miss: bool, fields: Vec<OxmHeader> },
    /// OFPTFPT_APPLY_SETFIELD(_MISS).
    ApplySetfield { miss: bool, fields: Vec<OxmHeader> },
    /// OFPTFPT_EXPERIMENTER(_MISS): experimenter ID, type and data, verbatim.
    Experimenter {
        miss: bool,
        experimenter: u32,
        exp_type: u32,
        data: Vec<u8>,
    },
    /// Any other property type (or a malformed experimenter one), verbatim.
    Other { prop_type: u16, body: Vec<u8> },
}

/// One table's `ofp_table_features` (OpenFlow 1.3+).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TableFeatures {
    pub table_id: u8,
    /// OpenFlow 1.5 `command` (OFPTFC_*); zero (and padding) before 1.5.
    pub command: u8,
    /// OpenFlow 1.5 `features` (OFPTFF_*); zero (and padding) before 1.5.
    pub features: u32,
    /// NUL-padded table name.
    pub name: [u8; 32],
    pub metadata_match: u64,
    pub metadata_write: u64,
    /// `config` in OpenFlow 1.3, `capabilities` (OFPTC_*) in 1.4+.
    pub capabilities: u32,
    pub max_entries: u32,
    pub props: Vec<TableFeatureProp>,
}

impl TableFeatures {
    pub fn name_str(&self) -> String {
        name_str(&self.name)
    }
}

fn parse_feature_ids(val: &[u8]) -> Result<Vec<FeatureId>> {
    let mut r = Reader::new(val, OfpErr::OFPBPC_BAD_LEN);
    let mut out = Vec::new();
    while !r.is_empty() {
        let id_type = r.u16("id type")?;
        let len = r.u16("id length")? as usize;
        if len < 4 {
            return fail(OfpErr::OFPBPC_BAD_LEN, "table feature id length");
        }
        out.push(FeatureId {
            id_type,
            data: r.bytes(len - 4, "id")?.to_vec(),
        });
    }
    Ok(out)
}

fn parse_oxm_headers(val: &[u8]) -> Result<Vec<OxmHeader>> {
    let mut r = Reader::new(val, OfpErr::OFPBPC_BAD_LEN);
    let mut out = Vec::new();
    while !r.is_empty() {
        out.push(OxmHeader::parse(&mut r)?);
    }
    Ok(out)
}

pub(crate) fn parse_table_features(r: &mut Reader, v: u8) -> Result<Vec<TableFeatures>> {
    let mut out = Vec::new();
    while !r.is_empty() {
        let len = r.peek_u16(0).ok_or_else(|| r.short("table features"))? as usize;
        if len < 64 || len > r.remaining() {
            return fail(OfpErr::OFPBPC_BAD_LEN, "table features length");
        }
        let mut e = r.sub(len, "table features")?;
        e.skip(2, "length")?;
        let table_id = e.u8("table_id")?;
        let (command, features) = if v >= 6 {
            (e.u8("command")?, e.u32("features")?)
        } else {
            e.pad(5, "pad")?;
            (0, 0)
        };
        let mut tf = TableFeatures {
            table_id,
            command,
            features,
            name: e.array("name")?,
            metadata_match: e.u64("metadata_match")?,
            metadata_write: e.u64("metadata_write")?,
            capabilities: e.u32("capabilities")?,
            max_entries: e.u32("max_entries")?,
            props: Vec::new(),
        };
        for (t, val) in parse_props(&mut e)? {
            let miss = t & 1 != 0;
            let p = match t {
                0 | 1 => TableFeatureProp::Instructions {
                    miss,
                    ids: parse_feature_ids(val)?,
                },
                2 | 3 => TableFeatureProp::NextTables {
                    miss,
                    tables: val.to_vec(),
                },
                4 | 5 => TableFeatureProp::WriteActions {
                    miss,
                    ids: parse_feature_ids(val)?,
                },
                6 | 7 => TableFeatureProp::ApplyActions {
                    miss,
                    ids: parse_feature_ids(val)?,
                },
                8 => TableFeatureProp::Match(parse_oxm_headers(val)?),
                10 => TableFeatureProp::Wildcards(parse_oxm_headers(val)?),
                12 | 13 => TableFeatureProp::WriteSetfield {
                    miss,
                    fields: parse_oxm_headers(val)?,
                },
                14 | 15 => TableFeatureProp::ApplySetfield {
                    miss,
                    fields: parse_oxm_headers(val)?,
                },
                0xfffe | 0xffff if val.len() >= 8 => {
                    let mut x = Reader::new(val, OfpErr::OFPBPC_BAD_LEN);
                    TableFeatureProp::Experimenter {
                        miss,
                        experimenter: x.u32("experimenter")?,
                        exp_type: x.u32("exp_type")?,
                        data: x.take_rest().to_vec(),
                    }
                }
                _ => TableFeatureProp::Other {
                    prop_type: t,
                    body: val.to_vec(),
                },
            };
            tf.props.push(p);
        }
        out.push(tf);
    }
    Ok(out)
}

pub(crate) fn emit_table_features(list: &[TableFeatures], v: u8, w: &mut Writer) {
    for tf in list {
        let start = w.len();
        w.u16(0);
        w.u8(tf.table_id);
        if v >= 6 {
            w.u8(tf.command);
            w.u32(tf.features);
        } else {
            w.zeros(5);
        }
        w.bytes(&tf.name);
        w.u64(tf.metadata_match);
        w.u64(tf.metadata_write);
        w.u32(tf.capabilities);
        w.u32(tf.max_entries);
        for p in &tf.props {
            let mut b = Writer::new();
            let ids = |b: &mut Writer, ids: &[FeatureId]| {
                for i in ids {
                    b.u16(i.id_type);
                    b.u16((4 + i.data.len()).min(0xffff) as u16);
                    b.bytes(&i.data);
                }
            };
            let hdrs = |b: &mut Writer, hs: &[OxmHeader]| {
                for h in hs {
                    h.emit(b);
                }
            };
            let t = match p {
                TableFeatureProp::Instructions { miss, ids: x } => {
                    ids(&mut b, x);
                    tfpt::INSTRUCTIONS + *miss as u16
                }
                TableFeatureProp::NextTables { miss, tables } => {
                    b.bytes(tables);
                    tfpt::NEXT_TABLES + *miss as u16
                }
                TableFeatureProp::WriteActions { miss, ids: x } => {
                    ids(&mut b, x);
                    tfpt::WRITE_ACTIONS + *miss as u16
                }
                TableFeatureProp::ApplyActions { miss, ids: x } => {
                    ids(&mut b, x);
                    tfpt::APPLY_ACTIONS + *miss as u16
                }
                TableFeatureProp::Match(x) => {
                    hdrs(&mut b, x);
                    tfpt::MATCH
                }
                TableFeatureProp::Wildcards(x) => {
                    hdrs(&mut b, x);
                    tfpt::WILDCARDS
                }
                TableFeatureProp::WriteSetfield { miss, fields } => {
                    hdrs(&mut b, fields);
                    tfpt::WRITE_SETFIELD + *miss as u16
                }
                TableFeatureProp::ApplySetfield { miss, fields } => {
                    hdrs(&mut b, fields);
                    tfpt::APPLY_SETFIELD + *miss as u16
                }
                TableFeatureProp::Experimenter {
                    miss,
                    experimenter,
                    exp_type,
                    data,
                } => {
                    b.u32(*experimenter);
                    b.u32(*exp_type);
                    b.bytes(data);
                    tfpt::EXPERIMENTER + *miss as u16
                }
                TableFeatureProp::Other { prop_type, body } => {
                    b.bytes(body);
                    *prop_type
                }
            };
            emit_prop(w, t, &b.buf);
        }
        w.patch_len(start, start);
    }
}

// ------------------------------------------------------------------------------------------
// Table descriptions (OFPMP_TABLE_DESC, OpenFlow 1.4+)

/// A table-description (and table-mod) property.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum TableDescProp {
    /// OFPTMPT_EVICTION (2): OFPTMPEF_* flags.
    Eviction { flags: u32 },
    /// OFPTMPT_VACANCY (3): thresholds and (in descriptions) the current vacancy, in %.
    Vacancy {
        vacancy_down: u8,
        vacancy_up: u8,
        vacancy: u8,
    },
    /// OFPTMPT_EXPERIMENTER (0xffff), verbatim.
    Experimenter {
        experimenter: u32,
        exp_type: u32,
        data: Vec<u8>,
    },
    /// Any other (or malformed) property, verbatim.
    Other { prop_type: u16, body: Vec<u8> },
}

/// One table's `ofp14_table_desc`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TableDesc {
    pub table_id: u8,
    /// OFPTC_* bits.
    pub config: u32,
    pub props: Vec<TableDescProp>,
}

pub(crate) fn parse_table_desc(r: &mut Reader) -> Result<Vec<TableDesc>> {
    let mut out = Vec::new();
    while !r.is_empty() {
        let len = r.peek_u16(0).ok_or_else(|| r.short("table desc"))? as usize;
        if len < 8 || len > r.remaining() {
            return fail(BRC, "table desc length");
        }
        let mut e = r.sub(len, "table desc")?;
        e.skip(2, "length")?;
        let table_id = e.u8("table_id")?;
        e.pad(1, "pad")?;
        let config = e.u32("config")?;
        let mut props = Vec::new();
        for (t, val) in parse_props(&mut e)? {
            let mut x = Reader::new(val, OfpErr::OFPBPC_BAD_LEN);
            props.push(match t {
                2 if val.len() == 4 => TableDescProp::Eviction {
                    flags: x.u32("flags")?,
                },
                3 if val.len() == 4 && val[3] == 0 => TableDescProp::Vacancy {
                    vacancy_down: val[0],
                    vacancy_up: val[1],
                    vacancy: val[2],
                },
                0xffff if val.len() >= 8 => TableDescProp::Experimenter {
                    experimenter: x.u32("experimenter")?,
                    exp_type: x.u32("exp_type")?,
                    data: x.take_rest().to_vec(),
                },
                _ => TableDescProp::Other {
                    prop_type: t,
                    body: val.to_vec(),
                },
            });
        }
        out.push(TableDesc {
            table_id,
            config,
            props,
        });
    }
    Ok(out)
}

pub(crate) fn emit_table_desc(list: &[TableDesc], w: &mut Writer) {
    for d in list {
        let start = w.len();
        w.u16(0);
        w.u8(d.table_id);
        w.u8(0);
        w.u32(d.config);
        for p in &d.props {
            match p {
                TableDescProp::Eviction { flags } => emit_prop(w, 2, &flags.to_be_bytes()),
                TableDescProp::Vacancy {
                    vacancy_down,
                    vacancy_up,
                    vacancy,
                } => emit_prop(w, 3, &[*vacancy_down, *vacancy_up, *vacancy, 0]),
                TableDescProp::Experimenter {
                    experimenter,
                    exp_type,
                    data,
                } => emit_prop(w, 0xffff, &exp_body(*experimenter, *exp_type, data)),
                TableDescProp::Other { prop_type, body } => emit_prop(w, *prop_type, body),
            }
        }
        w.patch_len(start, start);
    }
}

fn exp_body(experimenter: u32, exp_type: u32, data: &[u8]) -> Vec<u8> {
    let mut b = Vec::with_capacity(8 + data.len());
    b.extend_from_slice(&experimenter.to_be_bytes());
    b.extend_from_slice(&exp_type.to_be_bytes());
    b.extend_from_slice(data);
    b
}

// ------------------------------------------------------------------------------------------
// Port statistics (OFPMP_PORT_STATS)

/// The Ethernet error counters of a port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct PortStatsEthernet {
    pub rx_frame_err: u64,
    pub rx_over_err: u64,
    pub rx_crc_err: u64,
    pub collisions: u64,
}

/// OpenFlow 1.4+ OFPPSPT_OPTICAL property.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct PortStatsOptical {
    pub flags: u32,
    pub tx_freq_lmda: u32,
    pub tx_offset: u32,
    pub tx_grid_span: u32,
    pub rx_freq_lmda: u32,
    pub rx_offset: u32,
    pub rx_grid_span: u32,
    pub tx_pwr: u16,
    pub rx_pwr: u16,
    pub bias_current: u16,
    pub temperature: u16,
}

/// An OpenFlow 1.4+ port-stats property other than the leading Ethernet one.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum PortStatsProp {
    /// OFPPSPT_OPTICAL (1).
    Optical(PortStatsOptical),
    /// OFPPSPT_EXPERIMENTER (0xffff), verbatim (Open vSwitch sends its custom per-device
    /// counters this way).
    Experimenter {
        experimenter: u32,
        exp_type: u32,
        data: Vec<u8>,
    },
    /// Any other (or malformed, or a second Ethernet) property, verbatim.
    Other { prop_type: u16, body: Vec<u8> },
}

/// One port of a port-stats reply: `ofp10_port_stats` (104 bytes), `ofp13_port_stats`
/// (112 bytes, with duration) or `ofp14_port_stats` (length, duration, properties).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct PortStats {
    pub port_no: u32,
    /// OpenFlow 1.3+ (zero in 1.0).
    pub duration_sec: u32,
    pub duration_nsec: u32,
    pub rx_packets: u64,
    pub tx_packets: u64,
    pub rx_bytes: u64,
    pub tx_bytes: u64,
    pub rx_dropped: u64,
    pub tx_dropped: u64,
    pub rx_errors: u64,
    pub tx_errors: u64,
    /// The Ethernet counters: in the fixed body in OpenFlow 1.0 and 1.3 (always `Some` when
    /// decoded; `None` encodes zeros), the OFPPSPT_ETHERNET property in 1.4+ (`None`: absent;
    /// encoded as the first property).
    pub ethernet: Option<PortStatsEthernet>,
    /// OpenFlow 1.4+ properties after the Ethernet one, in order (not encoded before 1.4).
    pub props: Vec<PortStatsProp>,
}

fn parse_eth(r: &mut Reader) -> Result<PortStatsEthernet> {
    Ok(PortStatsEthernet {
        rx_frame_err: r.u64("rx_frame_err")?,
        rx_over_err: r.u64("rx_over_err")?,
        rx_crc_err: r.u64("rx_crc_err")?,
        collisions: r.u64("collisions")?,
    })
}

fn emit_eth(e: &PortStatsEthernet, w: &mut Writer) {
    w.u64(e.rx_frame_err);
    w.u64(e.rx_over_err);
    w.u64(e.rx_crc_err);
    w.u64(e.collisions);
}

pub(crate) fn parse_port_stats(r: &mut Reader, v: u8) -> Result<Vec<PortStats>> {
    let mut out = Vec::new();
    while !r.is_empty() {
        let mut p = PortStats::default();
        let counters = |r: &mut Reader, p: &mut PortStats| -> Result<()> {
            p.rx_packets = r.u64("rx_packets")?;
            p.tx_packets = r.u64("tx_packets")?;
            p.rx_bytes = r.u64("rx_bytes")?;
            p.tx_bytes = r.u64("tx_bytes")?;
            p.rx_dropped = r.u64("rx_dropped")?;
            p.tx_dropped = r.u64("tx_dropped")?;
            p.rx_errors = r.u64("rx_errors")?;
            p.tx_errors = r.u64("tx_errors")?;
            Ok(())
        };
        if v == 1 {
            p.port_no = port_from_of10(r.u16("port_no")?);
            r.pad(6, "pad")?;
            counters(r, &mut p)?;
            p.ethernet = Some(parse_eth(r)?);
        } else if v < 5 {
            p.port_no = r.u32("port_no")?;
            r.pad(4, "pad")?;
            counters(r, &mut p)?;
            p.ethernet = Some(parse_eth(r)?);
            p.duration_sec = r.u32("duration_sec")?;
            p.duration_nsec = r.u32("duration_nsec")?;
        } else {
            let len = r.peek_u16(0).ok_or_else(|| r.short("port stats"))? as usize;
            if len < 80 || len > r.remaining() {
                return fail(BRC, "port stats length");
            }
            let mut e = r.sub(len, "port stats")?;
            e.skip(2, "length")?;
            e.pad(2, "pad")?;
            p.port_no = e.u32("port_no")?;
            p.duration_sec = e.u32("duration_sec")?;
            p.duration_nsec = e.u32("duration_nsec")?;
            counters(&mut e, &mut p)?;
            for (i, (t, val)) in parse_props(&mut e)?.into_iter().enumerate() {
                let mut x = Reader::new(val, OfpErr::OFPBPC_BAD_LEN);
                match t {
                    0 if i == 0 && val.len() == 36 => {
                        x.pad(4, "pad")?;
                        p.ethernet = Some(parse_eth(&mut x)?);
                    }
                    1 if val.len() == 40 => {
                        x.pad(4, "pad")?;
                        p.props.push(PortStatsProp::Optical(PortStatsOptical {
                            flags: x.u32("flags")?,
                            tx_freq_lmda: x.u32("tx_freq_lmda")?,
                            tx_offset: x.u32("tx_offset")?,
                            tx_grid_span: x.u32("tx_grid_span")?,
                            rx_freq_lmda: x.u32("rx_freq_lmda")?,
                            rx_offset: x.u32("rx_offset")?,
                            rx_grid_span: x.u32("rx_grid_span")?,
                            tx_pwr: x.u16("tx_pwr")?,
                            rx_pwr: x.u16("rx_pwr")?,
                            bias_current: x.u16("bias_current")?,
                            temperature: x.u16("temperature")?,
                        }))
                    }
                    0xffff if val.len() >= 8 => p.props.push(PortStatsProp::Experimenter {
                        experimenter: x.u32("experimenter")?,
                        exp_type: x.u32("exp_type")?,
                        data: x.take_rest().to_vec(),
                    }),
                    _ => p.props.push(PortStatsProp::Other {
                        prop_type: t,
                        body: val.to_vec(),
                    }),
                }
            }
        }
        out.push(p);
    }
    Ok(out)
}

pub(crate) fn emit_port_stats(list: &[PortStats], v: u8, w: &mut Writer) {
    for p in list {
        let counters = |w: &mut Writer| {
            for c in [
                p.rx_packets,
                p.tx_packets,
                p.rx_bytes,
                p.tx_bytes,
                p.rx_dropped,
                p.tx_dropped,
                p.rx_errors,
                p.tx_errors,
            ] {
                w.u64(c);
            }
        };
        let eth = p.ethernet.unwrap_or_default();
        if v == 1 {
            w.u16(port_to_of10(p.port_no));
            w.zeros(6);
            counters(w);
            emit_eth(&eth, w);
        } else if v < 5 {
            w.u32(p.port_no);
            w.zeros(4);
            counters(w);
            emit_eth(&eth, w);
            w.u32(p.duration_sec);
            w.u32(p.duration_nsec);
        } else {
            let start = w.len();
            w.u16(0);
            w.zeros(2);
            w.u32(p.port_no);
            w.u32(p.duration_sec);
            w.u32(p.duration_nsec);
            counters(w);
            if let Some(e) = &p.ethernet {
                let mut b = Writer::new();
                b.zeros(4);
                emit_eth(e, &mut b);
                emit_prop(w, 0, &b.buf);
            }
            for prop in &p.props {
                match prop {
                    PortStatsProp::Optical(o) => {
                        let mut b = Writer::new();
                        b.zeros(4);
                        for x in [
                            o.flags,
                            o.tx_freq_lmda,
                            o.tx_offset,
                            o.tx_grid_span,
                            o.rx_freq_lmda,
                            o.rx_offset,
                            o.rx_grid_span,
                        ] {
                            b.u32(x);
                        }
                        for x in [o.tx_pwr, o.rx_pwr, o.bias_current, o.temperature] {
                            b.u16(x);
                        }
                        emit_prop(w, 1, &b.buf);
                    }
                    PortStatsProp::Experimenter {
                        experimenter,
                        exp_type,
                        data,
                    } => emit_prop(w, 0xffff, &exp_body(*experimenter, *exp_type, data)),
                    PortStatsProp::Other { prop_type, body } => emit_prop(w, *prop_type, body),
                }
            }
            w.patch_len(start, start);
        }
    }
}

// ------------------------------------------------------------------------------------------
// Queue statistics (OFPMP_QUEUE)

/// One queue of a queue-stats reply: `ofp10_queue_stats` (32 bytes), `ofp13_queue_stats`
/// (40, with duration) or `ofp14_queue_stats` (length, properties).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct QueueStats {
    pub port_no: u32,
    pub queue_id: u32,
    pub tx_bytes: u64,
    pub tx_packets: u64,
    pub tx_errors: u64,
    /// OpenFlow 1.3+ (zero in 1.0).
    pub duration_sec: u32,
    pub duration_nsec: u32,
    /// OpenFlow 1.4+ properties (type, value), verbatim.
    pub props: Vec<(u16, Vec<u8>)>,
}

pub(crate) fn parse_queue_stats(r: &mut Reader, v: u8) -> Result<Vec<QueueStats>> {
    let mut out = Vec::new();
    while !r.is_empty() {
        let mut q = QueueStats::default();
        let mut e = if v >= 5 {
            let len = r.peek_u16(0).ok_or_else(|| r.short("queue stats"))? as usize;
            if len < 48 || len > r.remaining() {
                return fail(BRC, "queue stats length");
            }
            let mut e = r.sub(len, "queue stats")?;
            e.skip(8, "length, pad")?;
            e
        } else {
            r.sub(if v == 1 { 32 } else { 40 }, "queue stats")?
        };
        if v == 1 {
            q.port_no = port_from_of10(e.u16("port_no")?);
            e.pad(2, "pad")?;
        } else {
            q.port_no = e.u32("port_no")?;
        }
        q.queue_id = e.u32("queue_id")?;
        q.tx_bytes = e.u64("tx_bytes")?;
        q.tx_packets = e.u64("tx_packets")?;
        q.tx_errors = e.u64("tx_errors")?;
        if v != 1 {
            q.duration_sec = e.u32("duration_sec")?;
            q.duration_nsec = e.u32("duration_nsec")?;
        }
        if v >= 5 {
            q.props = parse_props(&mut e)?
                .into_iter()
                .map(|(t, val)| (t, val.to_vec()))
                .collect();
        }
        out.push(q);
    }
    Ok(out)
}

pub(crate) fn emit_queue_stats(list: &[QueueStats], v: u8, w: &mut Writer) {
    for q in list {
        let start = w.len();
        if v >= 5 {
            w.u16(0);
            w.zeros(6);
        }
        if v == 1 {
            w.u16(port_to_of10(q.port_no));
            w.zeros(2);
        } else {
            w.u32(q.port_no);
        }
        w.u32(q.queue_id);
        w.u64(q.tx_bytes);
        w.u64(q.tx_packets);
        w.u64(q.tx_errors);
        if v != 1 {
            w.u32(q.duration_sec);
            w.u32(q.duration_nsec);
        }
        if v >= 5 {
            for (t, val) in &q.props {
                emit_prop(w, *t, val);
            }
            w.patch_len(start, start);
        }
    }
}

// ------------------------------------------------------------------------------------------
// Group statistics (OFPMP_GROUP)

/// Counters of one bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct BucketCounter {
    pub packet_count: u64,
    pub byte_count: u64,
}

/// One group of a group-stats reply (`ofp13_group_stats`, OpenFlow 1.3+).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct GroupStats {
    pub group_id: u32,
    pub ref_count: u32,
    pub packet_count: u64,
    pub byte_count: u64,
    pub duration_sec: u32,
    pub duration_nsec: u32,
    pub buckets: Vec<BucketCounter>,
}

pub(crate) fn parse_group_stats(r: &mut Reader) -> Result<Vec<GroupStats>> {
    let mut out = Vec::new();
    while !r.is_empty() {
        let len = r.peek_u16(0).ok_or_else(|| r.short("group stats"))? as usize;
        if len < 40 || len > r.remaining() || !(len - 40).is_multiple_of(16) {
            return fail(BRC, "group stats length");
        }
        let mut e = r.sub(len, "group stats")?;
        e.skip(2, "length")?;
        e.pad(2, "pad")?;
        let mut g = GroupStats {
            group_id: e.u32("group_id")?,
            ref_count: e.u32("ref_count")?,
            ..Default::default()
        };
        e.pad(4, "pad")?;
        g.packet_count = e.u64("packet_count")?;
        g.byte_count = e.u64("byte_count")?;
        g.duration_sec = e.u32("duration_sec")?;
        g.duration_nsec = e.u32("duration_nsec")?;
        while !e.is_empty() {
            g.buckets.push(BucketCounter {
                packet_count: e.u64("packet_count")?,
                byte_count: e.u64("byte_count")?,
            });
        }
        out.push(g);
    }
    Ok(out)
}

pub(crate) fn emit_group_stats(list: &[GroupStats], w: &mut Writer) {
    for g in list {
        let start = w.len();
        w.u16(0);
        w.zeros(2);
        w.u32(g.group_id);
        w.u32(g.ref_count);
        w.zeros(4);
        w.u64(g.packet_count);
        w.u64(g.byte_count);
        w.u32(g.duration_sec);
        w.u32(g.duration_nsec);
        for b in &g.buckets {
            w.u64(b.packet_count);
            w.u64(b.byte_count);
        }
        w.patch_len(start, start);
    }
}

// ------------------------------------------------------------------------------------------
// Meter statistics (OFPMP_METER)

/// Counters of one meter band.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct MeterBandStats {
    pub packet_band_count: u64,
    pub byte_band_count: u64,
}

/// One meter of a meter-stats reply (`ofp13_meter_stats`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct MeterStats {
    pub meter_id: u32,
    pub flow_count: u32,
    pub packet_in_count: u64,
    pub byte_in_count: u64,
    pub duration_sec: u32,
    pub duration_nsec: u32,
    pub bands: Vec<MeterBandStats>,
}

pub(crate) fn parse_meter_stats(r: &mut Reader) -> Result<Vec<MeterStats>> {
    let mut out = Vec::new();
    while !r.is_empty() {
        let len = r.peek_u16(4).ok_or_else(|| r.short("meter stats"))? as usize;
        if len < 40 || len > r.remaining() || !(len - 40).is_multiple_of(16) {
            return fail(BRC, "meter stats length");
        }
        let mut e = r.sub(len, "meter stats")?;
        let meter_id = e.u32("meter_id")?;
        e.skip(2, "len")?;
        e.pad(6, "pad")?;
        let mut m = MeterStats {
            meter_id,
            flow_count: e.u32("flow_count")?,
            packet_in_count: e.u64("packet_in_count")?,
            byte_in_count: e.u64("byte_in_count")?,
            duration_sec: e.u32("duration_sec")?,
            duration_nsec: e.u32("duration_nsec")?,
            bands: Vec::new(),
        };
        while !e.is_empty() {
            m.bands.push(MeterBandStats {
                packet_band_count: e.u64("packet_band_count")?,
                byte_band_count: e.u64("byte_band_count")?,
            });
        }
        out.push(m);
    }
    Ok(out)
}

pub(crate) fn emit_meter_stats(list: &[MeterStats], w: &mut Writer) {
    for m in list {
        let start = w.len();
        w.u32(m.meter_id);
        w.u16(0);
        w.zeros(6);
        w.u32(m.flow_count);
        w.u64(m.packet_in_count);
        w.u64(m.byte_in_count);
        w.u32(m.duration_sec);
        w.u32(m.duration_nsec);
        for b in &m.bands {
            w.u64(b.packet_band_count);
            w.u64(b.byte_band_count);
        }
        w.patch_len(start + 4, start);
    }
}

// ------------------------------------------------------------------------------------------
// OXS statistics (OpenFlow 1.5 `ofp_stats`)

/// OXS class of the standard statistics (OFPXSC_OPENFLOW_BASIC).
pub const OXS_CLASS_BASIC: u16 = 0x8002;
/// OXS experimenter class.
pub const OXS_CLASS_EXPERIMENTER: u16 = 0xffff;

/// One OXS statistic.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum OxsEntry {
    /// OXS_OF_DURATION (field 0): time the flow has been alive.
    Duration { sec: u32, nsec: u32 },
    /// OXS_OF_IDLE_TIME (field 1): time since the flow last matched.
    IdleTime { sec: u32, nsec: u32 },
    /// OXS_OF_FLOW_COUNT (field 3).
    FlowCount(u32),
    /// OXS_OF_PACKET_COUNT (field 4).
    PacketCount(u64),
    /// OXS_OF_BYTE_COUNT (field 5).
    ByteCount(u64),
    /// Anything else (unknown field, experimenter class, mask bit or unexpected length),
    /// verbatim: the 32-bit header with its length byte zeroed (the length follows from
    /// `value`), the experimenter ID for class 0xffff, and the payload.
    Other {
        header: u32,
        experimenter: Option<u32>,
        value: Vec<u8>,
    },
}

/// OpenFlow 1.5 `ofp_stats`: OXS statistics in wire order.  Encoded as the 4-byte
/// header (reserved, length), the entries and zero padding to a multiple of 8.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct OxsStats {
    pub entries: Vec<OxsEntry>,
}

impl OxsStats {
    pub fn new(entries: Vec<OxsEntry>) -> Self {
        OxsStats { entries }
    }
    /// True when there are no statistics.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
    /// The duration (seconds, nanoseconds), if present.
    pub fn duration(&self) -> Option<(u32, u32)> {
        self.entries.iter().find_map(|e| match e {
            OxsEntry::Duration { sec, nsec } => Some((*sec, *nsec)),
            _ => None,
        })
    }
    /// The idle time (seconds, nanoseconds), if present.
    pub fn idle_time(&self) -> Option<(u32, u32)> {
        self.entries.iter().find_map(|e| match e {
            OxsEntry::IdleTime { sec, nsec } => Some((*sec, *nsec)),
            _ => None,
        })
    }
    pub fn flow_count(&self) -> Option<u32> {
        self.entries.iter().find_map(|e| match e {
            OxsEntry::FlowCount(n) => Some(*n),
            _ => None,
        })
    }
    pub fn packet_count(&self) -> Option<u64> {
        self.entries.iter().find_map(|e| match e {
            OxsEntry::PacketCount(n) => Some(*n),
            _ => None,
        })
    }
    pub fn byte_count(&self) -> Option<u64> {
        self.entries.iter().find_map(|e| match e {
            OxsEntry::ByteCount(n) => Some(*n),
            _ => None,
        })
    }

    /// Parses an `ofp_stats` including its padding.
    pub(crate) fn parse(r: &mut Reader) -> Result<OxsStats> {
        let err = OfpErr::OFPBMC_BAD_LEN;
        let len = r.peek_u16(2).ok_or_else(|| r.short("ofp_stats"))? as usize;
        if len < 4 {
            return fail(err, "ofp_stats length");
        }
        if r.remaining() < pad8(len) {
            return fail(err, "ofp_stats length");
        }
        let mut body = r.sub(len, "ofp_stats")?.with_err(err);
        r.skip(pad8(len) - len, "ofp_stats pad")?;
        body.skip(4, "ofp_stats header")?;
        let mut entries = Vec::new();
        while !body.is_empty() {
            let header = body.u32("oxs header")?;
            let class = (header >> 16) as u16;
            let field = ((header >> 9) & 0x7f) as u8;
            let hasmask = header & 0x100 != 0;
            let length = (header & 0xff) as usize;
            let experimenter = if class == OXS_CLASS_EXPERIMENTER {
                if length < 4 {
                    return fail(err, "oxs experimenter length");
                }
                Some(body.u32("oxs experimenter")?)
            } else {
                None
            };
            let plen = length - if experimenter.is_some() { 4 } else { 0 };
            let mut p = body.sub(plen, "oxs payload")?;
            let known = class == OXS_CLASS_BASIC && !hasmask;
            let e = match (known, field, plen) {
                (true, 0, 8) => OxsEntry::Duration {
                    sec: p.u32("sec")?,
                    nsec: p.u32("nsec")?,
                },
                (true, 1, 8) => OxsEntry::IdleTime {
                    sec: p.u32("sec")?,
                    nsec: p.u32("nsec")?,
                },
                (true, 3, 4) => OxsEntry::FlowCount(p.u32("flow_count")?),
                (true, 4, 8) => OxsEntry::PacketCount(p.u64("packet_count")?),
                (true, 5, 8) => OxsEntry::ByteCount(p.u64("byte_count")?),
                _ => OxsEntry::Other {
                    header: header & !0xff,
                    experimenter,
                    value: p.take_rest().to_vec(),
                },
            };
            entries.push(e);
        }
        Ok(OxsStats { entries })
    }

    pub(crate) fn emit(&self, w: &mut Writer) {
        let start = w.len();
        w.u16(0);
        w.u16(0);
        let basic = |w: &mut Writer, field: u32, len: u32| {
            w.u32((OXS_CLASS_BASIC as u32) << 16 | field << 9 | len);
        };
        for e in &self.entries {
            match e {
                OxsEntry::Duration { sec, nsec } => {
                    basic(w, 0, 8);
                    w.u32(*sec);
                    w.u32(*nsec);
                }
                OxsEntry::IdleTime { sec, nsec } => {
                    basic(w, 1, 8);
                    w.u32(*sec);
                    w.u32(*nsec);
                }
                OxsEntry::FlowCount(n) => {
                    basic(w, 3, 4);
                    w.u32(*n);
                }
                OxsEntry::PacketCount(n) => {
                    basic(w, 4, 8);
                    w.u64(*n);
                }
                OxsEntry::ByteCount(n) => {
                    basic(w, 5, 8);
                    w.u64(*n);
                }
                OxsEntry::Other {
                    header,
                    experimenter,
                    value,
                } => {
                    let exp = (*header >> 16) as u16 == OXS_CLASS_EXPERIMENTER;
                    let len = (value.len() + if exp { 4 } else { 0 }).min(0xff) as u32;
                    w.u32((*header & !0xff) | len);
                    if exp {
                        w.u32(experimenter.unwrap_or(0));
                    }
                    w.bytes(value);
                }
            }
        }
        w.patch_len(start + 2, start);
        w.pad8_from(start);
    }
}
