//! Replies that describe the switch: FEATURES, multipart statistics and descriptions,
//! FLOW_REMOVED, port descriptions. Counters are folded from the PMDs' caches first, so
//! n_packets and n_bytes are exact when dumped.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use openflow::action::ports;
use openflow::message::{FlowRemoved, Message, SwitchFeatures};
use openflow::multipart::{
    Desc, FlowStatsRequest, GroupFeatures, MeterConfig, MeterFeatures, MpReply, MpRequest,
    MultipartReply, MultipartRequest,
};
use openflow::stats::{
    fixed_name, BucketCounter, FeatureId, GroupStats, MeterBandStats, MeterStats, OxsEntry,
    OxsStats, PortStats, PortStatsEthernet, TableFeatureProp, TableFeatures, TableStats,
};
use openflow::types::{FlowStatsEncoder, FlowStatsRef, MatchRepr, MatchReprRef, Port};
use openflow::{Match, OfpErr};

use super::conn::Conn;
use super::mods::{self, match_to_key};
use super::send_error;
use crate::daemon::State;
use crate::pipeline::ofpact;
use crate::pipeline::tables::Rule;
use crate::stats::PortStat;

/// OFPC_* capabilities we have: flow, table, port and group stats.
const CAPABILITIES: u32 = 1 | 2 | 4 | 8;

pub fn features(st: &State, c: &Conn) -> SwitchFeatures {
    let dpid = st
        .pipeline
        .bridges
        .get(c.bridge)
        .map(|b| b.datapath_id)
        .unwrap_or(0);
    let mut f = SwitchFeatures {
        datapath_id: dpid,
        n_buffers: 0,
        n_tables: 254,
        auxiliary_id: 0,
        // OpenFlow 1.0's bit 3 is STP, 1.1+'s is group stats
        capabilities: if c.version == 1 {
            1 | 2 | 4
        } else {
            CAPABILITIES
        },
        actions: 0,
        ports: Vec::new(),
    };
    if c.version == 1 {
        // OpenFlow 1.0: the action bitmap (output..enqueue, all 12) and the ports
        f.actions = 0xfff;
        let mut ps: Vec<u32> = st.pipeline.bridges[c.bridge]
            .ports
            .keys()
            .copied()
            .collect();
        ps.sort();
        f.ports = ps
            .into_iter()
            .filter_map(|p| port_desc(st, c.bridge, p, c.version))
            .collect();
    }
    f
}

fn name16(s: &str) -> [u8; 16] {
    let mut n = [0u8; 16];
    let b = s.as_bytes();
    let l = b.len().min(15);
    n[..l].copy_from_slice(&b[..l]);
    n
}

/// The OpenFlow description of a port as a connection of `version` reads it: link down or
/// (OpenFlow 1.1+) live, and the feature bits of that version's layout.
pub fn port_desc(st: &State, bridge: usize, ofport: u32, version: u8) -> Option<Port> {
    let p = st
        .ports
        .iter()
        .find(|p| p.bridge as usize == bridge && p.ofport == ofport)?;
    let up = p.admin_up && p.carrier;
    let mut config = p.of_config;
    if !p.admin_up {
        config |= 1; // OFPPC_PORT_DOWN
    }
    Some(Port {
        port_no: ofport,
        hw_addr: p.mac.map(|m| m.0).unwrap_or([0; 6]),
        name: name16(&p.name),
        config,
        state: match (up, version) {
            (false, _) => OFPPS_LINK_DOWN,
            (true, 1) => 0,
            (true, _) => OFPPS_LIVE,
        },
        // 10 Gb/s full duplex, copper, as OVS reports for virtual devices
        curr: port_features(OFPPF_10GB_FD | OFPPF_COPPER, version),
        advertised: 0,
        supported: 0,
        peer: 0,
        curr_speed: 10_000_000,
        max_speed: 0,
        extra_props: Vec::new(),
    })
}

const OFPPS_LINK_DOWN: u32 = 1;
/// OpenFlow 1.1+: the port can forward (OVS sets it whenever the link is up).
const OFPPS_LIVE: u32 = 4;
/// Port feature bits in the OpenFlow 1.1+ layout.
const OFPPF_10GB_FD: u32 = 1 << 6;
const OFPPF_COPPER: u32 = 1 << 11;

/// Feature bits (OpenFlow 1.1+ layout) for a connection of `version`: OpenFlow 1.0 has no
/// 40G/100G/1T/other-speed bits, so copper, fiber, autoneg, pause and pause_asym sit four bits
/// lower (OpenFlow 1.0 §5.2.1 vs 1.3 §7.2.1; OVS netdev_port_features_to_ofp10).
fn port_features(f: u32, version: u8) -> u32 {
    if version == 1 {
        (f & 0x7f) | ((f & 0xf800) >> 4)
    } else {
        f
    }
}

fn port_counter(st: &State, dp: u16, s: PortStat) -> u64 {
    st.pmds
        .iter()
        .map(|p| p.ports[dp as usize].get(s as usize))
        .sum()
}

/// Asks every PMD to credit its cached flows' hits to their rules and waits (briefly) until
/// they have: dumps then show exact counters.
pub fn fold_pmd_stats(st: &State) {
    let mut targets = Vec::new();
    for p in &st.pmds {
        let t = p.fold_req.fetch_add(1, Ordering::AcqRel) + 1;
        p.waker.wake();
        targets.push(t);
    }
    let deadline = std::time::Instant::now() + Duration::from_millis(200);
    for (p, t) in st.pmds.iter().zip(targets) {
        while p.fold_done.load(Ordering::Acquire) < t && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_micros(50));
        }
    }
}

fn duration(now_ms: u64, since_ms: u64) -> (u32, u32) {
    let d = now_ms.saturating_sub(since_ms);
    ((d / 1000) as u32, ((d % 1000) * 1_000_000) as u32)
}

/// OpenFlow 1.5 OXS statistics: duration, idle_time, packet_count, byte_count.
fn oxs(dur: (u32, u32), idle: (u32, u32), packets: u64, bytes: u64) -> OxsStats {
    OxsStats::new(vec![
        OxsEntry::Duration {
            sec: dur.0,
            nsec: dur.1,
        },
        OxsEntry::IdleTime {
            sec: idle.0,
            nsec: idle.1,
        },
        OxsEntry::PacketCount(packets),
        OxsEntry::ByteCount(bytes),
    ])
}

/// The match in the form the request used (NXM for Nicira requests and NXM flow format,
/// OXM for 1.1+).
/// NXFF_NXM, the Nicira flow format of NXT_SET_FLOW_FORMAT.
const NXFF_NXM: u32 = 2;

/// The match as a connection of `version` reads it: `nx` for the Nicira message forms, the
/// OpenFlow 1.0 `ofp_match` for standard 1.0 messages, OXM otherwise.
fn match_repr(m: &Match, version: u8, nx: bool) -> MatchRepr {
    if version == 1 && !nx {
        MatchRepr::Of10(openflow::oxm::Of10Match::from_match(m))
    } else if nx {
        MatchRepr::Nxm(m.clone())
    } else {
        MatchRepr::Oxm(m.clone())
    }
}

fn selected<'a>(
    st: &'a State,
    bridge: usize,
    req: &FlowStatsRequest,
) -> Result<Vec<&'a std::sync::Arc<Rule>>, OfpErr> {
    let m = req.match_.to_match();
    let (value, mask, nx_cookie) = match_to_key(&m).map_err(|e| e.err)?;
    let (cookie, cookie_mask) = nx_cookie.unwrap_or((req.cookie, req.cookie_mask));
    let Some(bt) = st.pipeline.bridges.get(bridge) else {
        return Ok(Vec::new());
    };
    let tables: Vec<usize> = if req.table_id == 255 {
        (0..bt.tables.len()).collect()
    } else {
        vec![req.table_id as usize]
    };
    let mut out = Vec::new();
    for t in tables {
        let Some(tab) = bt.tables.get(t) else {
            continue;
        };
        if tab.is_empty() {
            continue;
        }
        let mut rules: Vec<_> = tab
            .cls()
            .iter_covered_by(&value, &mask)
            .map(|r| r.payload)
            .filter(|r| r.cookie & cookie_mask == cookie & cookie_mask)
            .filter(|r| req.out_port == ports::ANY || ofpact::outputs_to(&r.ofpacts, req.out_port))
            .filter(|r| {
                req.out_group == 0xffff_ffff || ofpact::outputs_to_group(&r.ofpacts, req.out_group)
            })
            .collect();
        rules.sort_by_key(|r| std::cmp::Reverse(r.priority));
        out.extend(rules);
    }
    Ok(out)
}

/// Streams a flow-stats reply for `rules`, encoded straight from the rules (no copy of their
/// matches) and sent a 64 KiB message at a time, so the client decodes while the rest is
/// encoded.
fn send_flow_stats(c: &mut Conn, xid: u32, rules: &[&Arc<Rule>], v: u8, nx: bool, now_ms: u64) {
    let mut enc = FlowStatsEncoder::new(v, xid, nx);
    for r in rules {
        let packets = r.stats.packets.load(Ordering::Relaxed);
        let bytes = r.stats.bytes.load(Ordering::Relaxed);
        let used = r.stats.used_ms.load(Ordering::Relaxed).max(r.created_ms);
        let dur = duration(now_ms, r.created_ms);
        let of10;
        let m = r.match_();
        let match_ = if v == 1 && !nx {
            of10 = openflow::oxm::Of10Match::from_match(&m);
            MatchReprRef::Of10(&of10)
        } else if nx {
            MatchReprRef::Nxm(&m)
        } else {
            MatchReprRef::Oxm(&m)
        };
        let oxs_stats = if v >= 6 {
            oxs(dur, duration(now_ms, used), packets, bytes)
        } else {
            OxsStats::default()
        };
        let instructions = openflow::compat::instructions_for(
            &r.instructions(),
            openflow::compat::Added::flow(r.of_version, &m),
            v,
        );
        let e = FlowStatsRef {
            table_id: r.table,
            duration_sec: dur.0,
            duration_nsec: dur.1,
            priority: r.priority,
            idle_timeout: r.idle_timeout,
            hard_timeout: r.hard_timeout,
            flags: openflow::compat::flow_stats_flags(r.flags, v),
            importance: r.importance,
            idle_age: ((now_ms.saturating_sub(used)) / 1000).min(0xffff) as u16 + 1,
            hard_age: 0,
            cookie: r.cookie,
            packet_count: packets,
            byte_count: bytes,
            match_,
            oxs_stats: &oxs_stats,
            instructions: &instructions,
        };
        if let Some(part) = enc.push(&e, v) {
            c.send_raw(part);
            c.flush();
        }
    }
    c.send_raw(enc.finish());
}

pub fn flow_removed(c: &Conn, r: &Rule, reason: u8, now_ms: u64) -> Message {
    let packets = r.stats.packets.load(Ordering::Relaxed);
    let bytes = r.stats.bytes.load(Ordering::Relaxed);
    let dur = duration(now_ms, r.created_ms);
    let used = r.stats.used_ms.load(Ordering::Relaxed).max(r.created_ms);
    // OpenFlow 1.0 connections get NXT_FLOW_REMOVED only after asking for the NXM flow
    // format (NXT_SET_FLOW_FORMAT), as from OVS (ofputil_encode_flow_removed)
    let nx = c.version == 1 && c.flow_format == NXFF_NXM;
    Message::FlowRemoved(FlowRemoved {
        cookie: r.cookie,
        priority: r.priority,
        reason,
        table_id: r.table,
        duration_sec: dur.0,
        duration_nsec: dur.1,
        idle_timeout: r.idle_timeout,
        hard_timeout: r.hard_timeout,
        packet_count: packets,
        byte_count: bytes,
        match_: match_repr(&r.match_(), c.version, nx),
        oxs_stats: if c.version >= 6 {
            oxs(dur, duration(now_ms, used), packets, bytes)
        } else {
            OxsStats::default()
        },
    })
}

/// Splits items into multipart replies that each fit in one OpenFlow message (64 KiB), with
/// REPLY_MORE on all but the last. Items are taken from the iterator a part at a time (a
/// 100k-flow dump is never materialized whole) and moved, not copied. The part size starts
/// from the `per_item` guess and then follows the measured bytes per item; a part that still
/// encodes too long is split in two (`unmk` gives its items back), so large entries never
/// produce a truncated message; an item too long on its own is left out and counted.
fn send_parts<T>(
    c: &mut Conn,
    xid: u32,
    items: impl IntoIterator<Item = T>,
    per_item: usize,
    mk: impl Fn(Vec<T>) -> MpReply,
    unmk: impl Fn(MpReply) -> Vec<T>,
) {
    const BUDGET: usize = 60_000;
    let v = if c.version == 0 { 6 } else { c.version };
    let mut it = items.into_iter();
    let mut est = per_item.max(1);
    let mut split: Vec<Vec<T>> = Vec::new();
    // the newest part is held back until the next one exists (only the last one lacks
    // REPLY_MORE); the others go out at once, so the client decodes part k while part k+1 is
    // encoded instead of waiting for the whole dump
    let mut held: Option<Vec<u8>> = None;
    loop {
        let chunk: Vec<T> = match split.pop() {
            Some(ch) => ch,
            None => {
                let ch: Vec<T> = it.by_ref().take((BUDGET / est).max(1)).collect();
                if ch.is_empty() {
                    break;
                }
                ch
            }
        };
        let n = chunk.len();
        let msg = Message::MultipartReply(MultipartReply {
            flags: 1,
            body: mk(chunk),
        });
        let b = openflow::encode(v, xid, &msg);
        if b.len() > 0xffff && n > 1 {
            if let Message::MultipartReply(r) = msg {
                let mut first = unmk(r.body);
                let second = first.split_off(first.len() / 2);
                split.push(second);
                split.push(first);
            }
            est = est.saturating_mul(2);
            continue;
        }
        if b.len() > 0xffff {
            // one item alone is too long for any message: leave it out rather than send a
            // length the peer would misframe (or drop the part that ends the reply)
            super::conn::oversize_dropped("multipart reply item", b.len());
            continue;
        }
        est = (b.len() * 11 / 10 / n).max(1);
        if let Some(prev) = held.replace(b) {
            c.send_raw(prev);
            c.flush();
        }
    }
    let Some(mut last) = held else {
        c.send(
            xid,
            &Message::MultipartReply(MultipartReply {
                flags: 0,
                body: mk(Vec::new()),
            }),
        );
        return;
    };
    // the multipart flags are at bytes 10..12 in every version; clear REPLY_MORE
    last[11] &= !1;
    c.send_raw(last);
}

fn desc_bytes(s: &str, len: usize) -> Vec<u8> {
    let mut v = vec![0u8; len];
    let b = s.as_bytes();
    let l = b.len().min(len - 1);
    v[..l].copy_from_slice(&b[..l]);
    v
}

pub fn multipart(st: &mut State, c: &mut Conn, xid: u32, raw: &[u8], req: &MultipartRequest) {
    let now = st.started.elapsed().as_millis() as u64;
    let v = c.version;
    let reply = |c: &mut Conn, body: MpReply| {
        c.send(
            xid,
            &Message::MultipartReply(MultipartReply { flags: 0, body }),
        )
    };
    match &req.body {
        MpRequest::Desc => reply(
            c,
            MpReply::Desc(Desc {
                mfr_desc: desc_bytes("xvswitch", 256),
                hw_desc: desc_bytes("xvswitchd (AF_XDP)", 256),
                sw_desc: desc_bytes(env!("CARGO_PKG_VERSION"), 256),
                serial_num: desc_bytes("None", 32),
                dp_desc: desc_bytes(
                    &st.pipeline
                        .bridges
                        .get(c.bridge)
                        .map(|b| b.name.clone())
                        .unwrap_or_default(),
                    256,
                ),
            }),
        ),
        MpRequest::Flow(fr) => {
            fold_pmd_stats(st);
            let nx = matches!(fr.match_, MatchRepr::Nxm(_));
            match selected(st, c.bridge, fr) {
                Ok(rules) => {
                    send_flow_stats(c, xid, &rules, v, nx, now);
                }
                Err(e) => send_error(st, c, raw, e, "flow stats match"),
            }
        }
        MpRequest::Aggregate(fr) => {
            fold_pmd_stats(st);
            let nx = matches!(fr.match_, MatchRepr::Nxm(_));
            match selected(st, c.bridge, fr) {
                Ok(rules) => {
                    let (mut p, mut b) = (0u64, 0u64);
                    for r in &rules {
                        p += r.stats.packets.load(Ordering::Relaxed);
                        b += r.stats.bytes.load(Ordering::Relaxed);
                    }
                    let n = rules.len() as u32;
                    if v >= 6 {
                        // OpenFlow 1.5: OXS flow_count, packet_count, byte_count
                        let x = OxsStats::new(vec![
                            OxsEntry::FlowCount(n),
                            OxsEntry::PacketCount(p),
                            OxsEntry::ByteCount(b),
                        ]);
                        reply(c, MpReply::AggregateOxs(x));
                    } else {
                        reply(
                            c,
                            MpReply::Aggregate {
                                nx,
                                packet_count: p,
                                byte_count: b,
                                flow_count: n,
                            },
                        );
                    }
                }
                Err(e) => send_error(st, c, raw, e, "aggregate stats match"),
            }
        }
        MpRequest::Table => {
            let tables = table_stats(st, c.bridge, v);
            reply(c, MpReply::TableStats(tables))
        }
        MpRequest::PortStats { port_no } => {
            let ps = port_stats(st, c.bridge, *port_no);
            reply(c, MpReply::PortStats(ps))
        }
        MpRequest::PortDesc { port_no } => {
            let mut ps: Vec<u32> = st.pipeline.bridges[c.bridge]
                .ports
                .keys()
                .copied()
                .collect();
            ps.sort();
            let descs: Vec<Port> = ps
                .into_iter()
                .filter(|p| port_no.is_none_or(|x| x == ports::ANY || x == *p))
                .filter_map(|p| port_desc(st, c.bridge, p, c.version))
                .collect();
            reply(c, MpReply::PortDesc(descs))
        }
        MpRequest::GroupDesc { group_id } => {
            let bt = &st.pipeline.bridges[c.bridge];
            let mut gs: Vec<_> = bt
                .groups
                .values()
                .filter(|g| group_id.is_none_or(|x| x == mods::GROUP_ALL || x == g.group_id))
                .map(|g| {
                    let mut d = g.desc.clone();
                    d.command = 0;
                    for b in &mut d.buckets {
                        b.actions = openflow::compat::actions_for(
                            &b.actions,
                            openflow::compat::Added::bucket(g.of_version),
                            c.version,
                        );
                    }
                    d
                })
                .collect();
            gs.sort_by_key(|g| g.group_id);
            send_parts(c, xid, gs, 200, MpReply::GroupDesc, |r| match r {
                MpReply::GroupDesc(g) => g,
                _ => Vec::new(),
            });
        }
        MpRequest::GroupFeatures => reply(
            c,
            MpReply::GroupFeatures(GroupFeatures {
                types: 0xf,
                // select weight, select liveness, chaining
                capabilities: 1 | 2 | 4,
                max_groups: [65535; 4],
                actions: [0x0100_0001; 4],
            }),
        ),
        MpRequest::MeterFeatures => reply(
            c,
            MpReply::MeterFeatures(MeterFeatures {
                max_meter: mods::MAX_METERS as u32,
                band_types: 1 << 1, // drop
                capabilities: (mods::MF_KBPS | mods::MF_PKTPS | mods::MF_BURST | mods::MF_STATS)
                    as u32,
                max_bands: 1,
                max_color: 0,
            }),
        ),
        MpRequest::MeterConfig { meter_id: id } => {
            // OFPM_ALL for all
            let id = *id;
            let mut ms: Vec<MeterConfig> = st
                .pipeline
                .bridges
                .get(c.bridge)
                .map(|bt| {
                    bt.meters
                        .iter()
                        .filter(|(k, _)| id == mods::METER_ALL || **k == id)
                        .map(|(k, m)| MeterConfig {
                            flags: m.flags,
                            meter_id: *k,
                            bands: m.config_bands(),
                        })
                        .collect()
                })
                .unwrap_or_default();
            ms.sort_by_key(|m| m.meter_id);
            reply(c, MpReply::MeterConfig(ms))
        }
        MpRequest::MeterStats { meter_id } => {
            let out = meter_stats(st, c.bridge, *meter_id);
            reply(c, MpReply::MeterStats(out))
        }
        MpRequest::GroupStats { group_id } => {
            let out = group_stats(st, c.bridge, *group_id, now);
            reply(c, MpReply::GroupStats(out))
        }
        MpRequest::TableFeatures(set) => {
            if !set.is_empty() {
                send_error(
                    st,
                    c,
                    raw,
                    OfpErr::OFPBRC_EPERM,
                    "table features are read-only",
                );
                return;
            }
            let tables: Vec<TableFeatures> = (0..254u8).map(|t| table_features(t, v)).collect();
            // each table's features is ~1 KiB: split across replies like other multiparts
            // (by the encoded size of the first table, without the 16 header bytes)
            let per = tables
                .first()
                .map(|t| {
                    let one = MultipartReply {
                        flags: 0,
                        body: MpReply::TableFeatures(vec![t.clone()]),
                    };
                    openflow::encode(v, 0, &Message::MultipartReply(one)).len() - 16
                })
                .unwrap_or(1);
            send_parts(c, xid, tables, per, MpReply::TableFeatures, |r| match r {
                MpReply::TableFeatures(t) => t,
                _ => Vec::new(),
            });
        }
        _ => send_error(
            st,
            c,
            raw,
            OfpErr::OFPBRC_BAD_STAT,
            "statistics type not supported",
        ),
    }
}

fn table_stats(st: &State, bridge: usize, v: u8) -> Vec<TableStats> {
    let mut out = Vec::new();
    let Some(bt) = st.pipeline.bridges.get(bridge) else {
        return out;
    };
    for (i, t) in bt.tables.iter().enumerate().take(254) {
        let mut ts = TableStats {
            table_id: i as u8,
            active_count: t.len() as u32,
            lookup_count: t.stats.lookups.load(Ordering::Relaxed),
            matched_count: t.stats.matched.load(Ordering::Relaxed),
            ..Default::default()
        };
        if v == 1 {
            let name = if i == 0 {
                "classifier".to_string()
            } else {
                format!("table{i}")
            };
            ts.name = fixed_name(&name);
            ts.wildcards = 0x003f_ffff;
            ts.max_entries = 1_000_000;
        }
        out.push(ts);
    }
    out
}

fn port_stats(st: &State, bridge: usize, port_no: u32) -> Vec<PortStats> {
    let now = st.started.elapsed();
    let mut ps: Vec<&crate::daemon::PortState> = st
        .ports
        .iter()
        .filter(|p| p.bridge as usize == bridge)
        .filter(|p| port_no == ports::ANY || port_no == 0xffff || p.ofport == port_no)
        .collect();
    ps.sort_by_key(|p| p.ofport);
    ps.into_iter()
        .map(|p| {
            let g = |s| port_counter(st, p.dp, s);
            // duration: the daemon's uptime (OpenFlow 1.3+); the Ethernet error counters
            // are zero (OpenFlow 1.4+: as the Ethernet property)
            PortStats {
                port_no: p.ofport,
                duration_sec: now.as_secs() as u32,
                duration_nsec: now.subsec_nanos(),
                rx_packets: g(PortStat::RxPackets),
                tx_packets: g(PortStat::TxPackets),
                rx_bytes: g(PortStat::RxBytes),
                tx_bytes: g(PortStat::TxBytes),
                rx_dropped: g(PortStat::RxDropped),
                tx_dropped: g(PortStat::TxDropped),
                rx_errors: 0,
                tx_errors: 0,
                ethernet: Some(PortStatsEthernet::default()),
                props: Vec::new(),
            }
        })
        .collect()
}

/// Meter stats straight from the meters' atomic counters, which the PMDs (and the packet-in
/// path) update as packets go through: nothing to fold. flow_count is the number of flows
/// whose actions name the meter (OVS: the length of the meter's rule list).
fn meter_stats(st: &State, bridge: usize, id: u32) -> Vec<MeterStats> {
    let Some(bt) = st.pipeline.bridges.get(bridge) else {
        return Vec::new();
    };
    let mut ms: Vec<_> = bt
        .meters
        .iter()
        .filter(|(k, _)| id == mods::METER_ALL || **k == id)
        .collect();
    ms.sort_by_key(|(k, _)| **k);
    let flows = mods::meter_flow_counts(bt);
    ms.into_iter()
        .map(|(k, m)| {
            let d = m.created.elapsed();
            MeterStats {
                meter_id: *k,
                flow_count: flows.get(k).copied().unwrap_or(0),
                packet_in_count: m.packets_in.load(Ordering::Relaxed),
                byte_in_count: m.bytes_in.load(Ordering::Relaxed),
                duration_sec: d.as_secs() as u32,
                duration_nsec: d.subsec_nanos(),
                bands: m
                    .bands
                    .iter()
                    .map(|b| MeterBandStats {
                        packet_band_count: b.packets.load(Ordering::Relaxed),
                        byte_band_count: b.bytes.load(Ordering::Relaxed),
                    })
                    .collect(),
            }
        })
        .collect()
}

fn group_stats(st: &State, bridge: usize, id: u32, now_ms: u64) -> Vec<GroupStats> {
    let bt = &st.pipeline.bridges[bridge];
    let mut gs: Vec<_> = bt
        .groups
        .values()
        .filter(|g| id == mods::GROUP_ALL || g.group_id == id)
        .collect();
    gs.sort_by_key(|g| g.group_id);
    let refs = bt.group_ref_counts();
    gs.into_iter()
        .map(|g| {
            let dur = duration(now_ms, g.created_ms);
            GroupStats {
                group_id: g.group_id,
                ref_count: refs.get(&g.group_id).copied().unwrap_or(0),
                packet_count: g.stats.packets.load(Ordering::Relaxed),
                byte_count: g.stats.bytes.load(Ordering::Relaxed),
                duration_sec: dur.0,
                duration_nsec: dur.1,
                buckets: g
                    .buckets
                    .iter()
                    .map(|b| BucketCounter {
                        packet_count: b.stats.packets.load(Ordering::Relaxed),
                        byte_count: b.stats.bytes.load(Ordering::Relaxed),
                    })
                    .collect(),
            }
        })
        .collect()
}

/// GET_ASYNC reply body for the connection's role and version.
pub fn async_config(c: &Conn) -> Vec<u8> {
    c.async_body()
}

/// One table's `ofp_table_features` (OpenFlow 1.3+): what the pipeline really supports —
/// instructions, the tables a goto can reach, the actions and the match/set-field fields.
fn table_features(table: u8, v: u8) -> TableFeatures {
    use openflow::Field;
    let ids = |ts: &[u16]| ts.iter().map(|t| FeatureId::new(*t)).collect::<Vec<_>>();
    // instructions: goto_table, write_metadata, write_actions, apply_actions, clear_actions
    let inst = ids(&[1, 2, 3, 4, 5]);
    let next: Vec<u8> = (table.saturating_add(1)..254).collect();
    // actions: output, set_queue, group, set_nw_ttl, dec_nw_ttl, set_field, push/pop vlan
    let acts = ids(&[0, 17, 18, 21, 22, 23, 24, 25]);
    let fields = [
        Field::InPortOxm,
        Field::Metadata,
        Field::EthDst,
        Field::EthSrc,
        Field::EthType,
        Field::VlanVid,
        Field::VlanPcp,
        Field::IpDscp,
        Field::IpEcn,
        Field::IpProto,
        Field::IpSrc,
        Field::IpDst,
        Field::TcpSrc,
        Field::TcpDst,
        Field::UdpSrc,
        Field::UdpDst,
        Field::SctpSrc,
        Field::SctpDst,
        Field::IcmpType,
        Field::IcmpCode,
        Field::ArpOp,
        Field::ArpSpa,
        Field::ArpTpa,
        Field::ArpSha,
        Field::ArpTha,
        Field::Ipv6Src,
        Field::Ipv6Dst,
        Field::Ipv6Label,
        Field::Icmpv6Type,
        Field::Icmpv6Code,
        Field::NdTarget,
        Field::NdSll,
        Field::NdTll,
        Field::TunId,
    ];
    let hdrs: Vec<_> = fields
        .iter()
        .filter_map(|f| f.header_for(v.max(4), false))
        .collect();
    TableFeatures {
        table_id: table,
        // OF1.3/1.4 pad; OF1.5 command 0 + features 0
        command: 0,
        features: 0,
        name: [0; 32], // no table names
        metadata_match: u64::MAX,
        metadata_write: u64::MAX,
        capabilities: 0,
        max_entries: 1_000_000,
        props: vec![
            TableFeatureProp::Instructions {
                miss: false,
                ids: inst,
            },
            TableFeatureProp::NextTables {
                miss: false,
                tables: next,
            },
            TableFeatureProp::WriteActions {
                miss: false,
                ids: acts.clone(),
            },
            TableFeatureProp::ApplyActions {
                miss: false,
                ids: acts,
            },
            TableFeatureProp::Match(hdrs.clone()),
            TableFeatureProp::Wildcards(hdrs.clone()),
            TableFeatureProp::WriteSetfield {
                miss: false,
                fields: hdrs.clone(),
            },
            TableFeatureProp::ApplySetfield {
                miss: false,
                fields: hdrs,
            },
        ],
    }
}
