//! Typed multipart bodies, flow monitors and OXS statistics that the captured vectors do not
//! contain (non-empty queue stats, optical and unknown properties, experimenter OXS,
//! paused/resumed updates...): built as values, encoded, decoded back unchanged.

use openflow::action::{Action, Instruction};
use openflow::monitor::{
    nxfme, ofpfme, FlowMonitorForm, FlowMonitorRequest, FlowUpdate, FlowUpdateFull,
};
use openflow::multipart::{MpReply, MpRequest, MultipartReply, MultipartRequest};
use openflow::oxm::{Field, Match, MatchField, OxmHeader};
use openflow::stats::*;
use openflow::{decode, encode, Message};

fn rt(version: u8, m: Message) -> Vec<u8> {
    let b = encode(version, 7, &m);
    let (h, back) = decode(&b).unwrap_or_else(|e| panic!("v{version}: {e}: {m:?}"));
    assert_eq!(h.length as usize, b.len());
    assert_eq!(back, m, "v{version}");
    assert_eq!(encode(version, 7, &back), b);
    b
}

fn reply(body: MpReply) -> Message {
    Message::MultipartReply(MultipartReply { flags: 1, body })
}

fn request(body: MpRequest) -> Message {
    Message::MultipartRequest(MultipartRequest { flags: 0, body })
}

/// eth_type=0x800 (NXM header for `version` 1, OXM otherwise).
fn ip(version: u8) -> Match {
    Match {
        fields: vec![MatchField::new(Field::EthType, version, vec![8, 0], None).unwrap()],
    }
}

#[test]
fn stats_requests() {
    for v in [1u8, 4, 5, 6] {
        let q = rt(
            v,
            request(MpRequest::QueueStats {
                port_no: 3,
                queue_id: 7,
            }),
        );
        // OpenFlow 1.0: 16-bit port + 2 pad, then the queue.
        assert_eq!(q.len(), if v == 1 { 12 + 8 } else { 16 + 8 });
    }
    for v in [4u8, 5, 6] {
        rt(v, request(MpRequest::GroupStats { group_id: 9 }));
        rt(v, request(MpRequest::MeterStats { meter_id: 1 }));
        rt(v, request(MpRequest::MeterConfig { meter_id: 2 }));
        rt(v, request(MpRequest::TableFeatures(vec![])));
    }
}

#[test]
fn port_and_queue_stats_all_versions() {
    let base = PortStats {
        port_no: 5,
        duration_sec: 3,
        duration_nsec: 4,
        rx_packets: 10,
        tx_packets: 11,
        rx_bytes: 12,
        tx_bytes: 13,
        rx_dropped: 14,
        tx_dropped: 15,
        rx_errors: 16,
        tx_errors: 17,
        ethernet: Some(PortStatsEthernet {
            rx_frame_err: 1,
            rx_over_err: 2,
            rx_crc_err: 3,
            collisions: 4,
        }),
        props: vec![],
    };
    let mut of10 = base.clone();
    of10.duration_sec = 0;
    of10.duration_nsec = 0;
    assert_eq!(rt(1, reply(MpReply::PortStats(vec![of10]))).len(), 12 + 104);
    assert_eq!(
        rt(4, reply(MpReply::PortStats(vec![base.clone()]))).len(),
        16 + 112
    );
    let mut p14 = base.clone();
    p14.props = vec![
        PortStatsProp::Optical(PortStatsOptical {
            flags: 1,
            tx_freq_lmda: 2,
            tx_offset: 3,
            tx_grid_span: 4,
            rx_freq_lmda: 5,
            rx_offset: 6,
            rx_grid_span: 7,
            tx_pwr: 8,
            rx_pwr: 9,
            bias_current: 10,
            temperature: 11,
        }),
        PortStatsProp::Experimenter {
            experimenter: 0xaa01,
            exp_type: 1,
            data: vec![0; 8],
        },
        PortStatsProp::Other {
            prop_type: 7,
            body: vec![1, 2, 3],
        },
    ];
    let mut no_eth = base.clone();
    no_eth.ethernet = None;
    for v in [5u8, 6] {
        let b = rt(
            v,
            reply(MpReply::PortStats(vec![p14.clone(), no_eth.clone()])),
        );
        // 80 + ethernet 40 + optical 48 + experimenter 24 + other 8, then 80.
        assert_eq!(b.len(), 16 + 200 + 80);
    }
    let q = QueueStats {
        port_no: 2,
        queue_id: 1,
        tx_bytes: 100,
        tx_packets: 2,
        tx_errors: 0,
        duration_sec: 0,
        duration_nsec: 0,
        props: vec![],
    };
    assert_eq!(
        rt(1, reply(MpReply::QueueStats(vec![q.clone(), q.clone()]))).len(),
        12 + 64
    );
    let q13 = QueueStats {
        duration_sec: 5,
        duration_nsec: 6,
        ..q.clone()
    };
    assert_eq!(
        rt(4, reply(MpReply::QueueStats(vec![q13.clone()]))).len(),
        16 + 40
    );
    let q14 = QueueStats {
        props: vec![(0xffff, vec![0, 0, 0, 1, 0, 0, 0, 2])],
        ..q13
    };
    assert_eq!(
        rt(6, reply(MpReply::QueueStats(vec![q14]))).len(),
        16 + 48 + 16
    );
}

#[test]
fn table_stats_features_desc() {
    let t10 = TableStats {
        table_id: 3,
        name: fixed_name("table3"),
        wildcards: 0x3fffff,
        max_entries: 1000,
        active_count: 2,
        lookup_count: 3,
        matched_count: 1,
    };
    assert_eq!(t10.name_str(), "table3");
    rt(
        1,
        reply(MpReply::TableStats(vec![t10.clone(), t10.clone()])),
    );
    let t13 = TableStats {
        name: [0; 32],
        wildcards: 0,
        max_entries: 0,
        ..t10
    };
    for v in [4u8, 5, 6] {
        let b = rt(v, reply(MpReply::TableStats(vec![t13.clone()])));
        assert_eq!(b.len(), 16 + 24);
    }
    let hdr = Field::EthType.header_for(4, false).unwrap();
    let exp_hdr = OxmHeader::exp(0x4f4e4600, 3, 4);
    let tf = |v: u8| TableFeatures {
        table_id: 1,
        command: if v >= 6 { 2 } else { 0 },
        features: if v >= 6 { 3 } else { 0 },
        name: fixed_name("t1"),
        metadata_match: 1,
        metadata_write: 2,
        capabilities: 3,
        max_entries: 4,
        props: vec![
            TableFeatureProp::Instructions {
                miss: false,
                ids: vec![
                    FeatureId::new(1),
                    FeatureId {
                        id_type: 0xffff,
                        data: vec![0, 0, 0x23, 0x20],
                    },
                ],
            },
            TableFeatureProp::Instructions {
                miss: true,
                ids: vec![FeatureId::new(4)],
            },
            TableFeatureProp::NextTables {
                miss: false,
                tables: vec![2, 3, 4],
            },
            TableFeatureProp::NextTables {
                miss: true,
                tables: vec![],
            },
            TableFeatureProp::WriteActions {
                miss: true,
                ids: vec![FeatureId::new(0)],
            },
            TableFeatureProp::ApplyActions {
                miss: false,
                ids: vec![FeatureId::new(0), FeatureId::new(25)],
            },
            TableFeatureProp::Match(vec![hdr, exp_hdr]),
            TableFeatureProp::Wildcards(vec![hdr]),
            TableFeatureProp::WriteSetfield {
                miss: false,
                fields: vec![hdr],
            },
            TableFeatureProp::ApplySetfield {
                miss: true,
                fields: vec![],
            },
            TableFeatureProp::Experimenter {
                miss: true,
                experimenter: 0x2320,
                exp_type: 9,
                data: vec![1, 2, 3, 4, 5],
            },
            TableFeatureProp::Other {
                prop_type: 9,
                body: vec![7],
            },
        ],
    };
    for v in [4u8, 5, 6] {
        rt(v, reply(MpReply::TableFeatures(vec![tf(v), tf(v)])));
        rt(v, request(MpRequest::TableFeatures(vec![tf(v)])));
    }
    let d = TableDesc {
        table_id: 4,
        config: 8,
        props: vec![
            TableDescProp::Eviction { flags: 7 },
            TableDescProp::Vacancy {
                vacancy_down: 10,
                vacancy_up: 90,
                vacancy: 50,
            },
            TableDescProp::Experimenter {
                experimenter: 1,
                exp_type: 2,
                data: vec![3],
            },
            TableDescProp::Other {
                prop_type: 5,
                body: vec![],
            },
        ],
    };
    rt(5, reply(MpReply::TableDesc(vec![d.clone(), d])));
}

#[test]
fn group_and_meter_stats() {
    let g = GroupStats {
        group_id: 1,
        ref_count: 2,
        packet_count: 3,
        byte_count: 4,
        duration_sec: 5,
        duration_nsec: 6,
        buckets: vec![
            BucketCounter {
                packet_count: 7,
                byte_count: 8,
            };
            3
        ],
    };
    let m = MeterStats {
        meter_id: 1,
        flow_count: 2,
        packet_in_count: 3,
        byte_in_count: 4,
        duration_sec: 5,
        duration_nsec: 6,
        bands: vec![MeterBandStats {
            packet_band_count: 1,
            byte_band_count: 2,
        }],
    };
    // OpenFlow 1.0: NXST_GROUP (vendor stats header of 24 bytes), same entries.
    let b = rt(1, reply(MpReply::GroupStats(vec![g.clone()])));
    assert_eq!(b.len(), 24 + 40 + 48);
    assert_eq!(&b[8..10], &[0xff, 0xff]);
    assert_eq!(
        rt(1, request(MpRequest::GroupStats { group_id: 1 })).len(),
        24 + 8
    );
    for v in [4u8, 5, 6] {
        let b = rt(v, reply(MpReply::GroupStats(vec![g.clone()])));
        assert_eq!(b.len(), 16 + 40 + 48);
        let b = rt(v, reply(MpReply::MeterStats(vec![m.clone(), m.clone()])));
        assert_eq!(b.len(), 16 + 2 * 56);
        // the meter entry's length sits after the meter id
        assert_eq!(&b[20..22], &[0, 56]);
    }
}

#[test]
fn oxs_stats() {
    let x = OxsStats::new(vec![
        OxsEntry::Duration { sec: 1, nsec: 2 },
        OxsEntry::IdleTime { sec: 3, nsec: 0 },
        OxsEntry::FlowCount(4),
        OxsEntry::PacketCount(5),
        OxsEntry::ByteCount(6),
        // an experimenter statistic and a masked one: unknown, kept verbatim
        OxsEntry::Other {
            header: 0xffff_0000 | 7 << 9,
            experimenter: Some(0x2320),
            value: vec![1, 2, 3, 4, 5, 6, 7, 8],
        },
        OxsEntry::Other {
            header: 0x8002_0000 | 4 << 9 | 0x100,
            experimenter: None,
            value: vec![0; 16],
        },
    ]);
    assert_eq!(x.duration(), Some((1, 2)));
    assert_eq!(x.idle_time(), Some((3, 0)));
    assert_eq!(
        (x.flow_count(), x.packet_count(), x.byte_count()),
        (Some(4), Some(5), Some(6))
    );
    rt(6, reply(MpReply::AggregateOxs(x.clone())));
    rt(6, reply(MpReply::AggregateOxs(OxsStats::default())));
    let fr = Message::FlowRemoved(openflow::message::FlowRemoved {
        cookie: 1,
        priority: 2,
        reason: 3,
        table_id: 4,
        duration_sec: 0,
        duration_nsec: 0,
        idle_timeout: 5,
        hard_timeout: 6,
        packet_count: 0,
        byte_count: 0,
        match_: openflow::MatchRepr::Oxm(ip(6)),
        oxs_stats: x,
    });
    rt(6, fr);
}

#[test]
fn flow_monitors() {
    let mv = |form| {
        if form == FlowMonitorForm::Nicira {
            1
        } else {
            4
        }
    };
    let req = |form| FlowMonitorRequest {
        id: 3,
        flags: 0x1f,
        out_port: if form == FlowMonitorForm::Nicira {
            0xffff_ffff
        } else {
            5
        },
        out_group: if form == FlowMonitorForm::OpenFlow {
            6
        } else {
            0xffff_ffff
        },
        table_id: 9,
        command: if form == FlowMonitorForm::OpenFlow {
            1
        } else {
            0
        },
        match_: ip(mv(form)),
    };
    let full = |form, event, reason| {
        FlowUpdate::Full(FlowUpdateFull {
            event,
            reason,
            priority: 100,
            idle_timeout: 1,
            hard_timeout: 2,
            table_id: 3,
            cookie: 0x99,
            match_: ip(mv(form)),
            instructions: vec![Instruction::ApplyActions(vec![Action::Output {
                port: 3,
                max_len: 0,
            }])],
        })
    };
    for (v, form) in [
        (1u8, FlowMonitorForm::Nicira),
        (4, FlowMonitorForm::Nicira),
        (4, FlowMonitorForm::Onf),
        (5, FlowMonitorForm::OpenFlow),
        (6, FlowMonitorForm::OpenFlow),
    ] {
        rt(
            v,
            request(MpRequest::FlowMonitor {
                form,
                monitors: vec![req(form), req(form)],
            }),
        );
        let of = form == FlowMonitorForm::OpenFlow;
        let mut updates = vec![
            full(form, if of { ofpfme::ADDED } else { nxfme::ADDED }, 0),
            full(form, if of { ofpfme::REMOVED } else { nxfme::DELETED }, 2),
            FlowUpdate::Abbrev { xid: 0x1234 },
        ];
        if of {
            updates.push(FlowUpdate::Paused);
            updates.push(FlowUpdate::Resumed);
            updates.push(full(form, ofpfme::INITIAL, 0));
        }
        rt(v, reply(MpReply::FlowMonitor { form, updates }));
    }
}

/// The streaming flow-stats encoder (what a switch uses for big dumps) produces replies that
/// decode to the same entries, every message within 64 KiB, REPLY_MORE on all but the last;
/// for a list that fits one message, exactly the bytes of encoding `MpReply::Flow`.
#[test]
fn flow_stats_encoder_matches_the_typed_encoding() {
    use openflow::oxm::Of10Match;
    use openflow::types::{FlowStats, FlowStatsEncoder, MatchRepr};
    for (v, nx) in [(1u8, false), (1, true), (4, false), (6, false)] {
        let flows: Vec<FlowStats> = (0..3000u32)
            .map(|i| {
                let m = ip(if nx { 1 } else { v.max(4) });
                FlowStats {
                    table_id: (i % 7) as u8,
                    // 1.5 carries these in OXS only
                    duration_sec: if v >= 6 { 0 } else { i },
                    duration_nsec: 0,
                    priority: (i % 100) as u16,
                    idle_timeout: 0,
                    hard_timeout: 0,
                    flags: 0,
                    importance: 0,
                    hard_age: 0,
                    cookie: i as u64,
                    packet_count: if v >= 6 { 0 } else { i as u64 * 3 },
                    byte_count: if v >= 6 { 0 } else { i as u64 * 300 },
                    idle_age: if nx { 1 } else { 0 },
                    match_: if v == 1 && !nx {
                        MatchRepr::Of10(Of10Match::from_match(&m))
                    } else if nx {
                        MatchRepr::Nxm(m)
                    } else {
                        MatchRepr::Oxm(m)
                    },
                    oxs_stats: if v >= 6 {
                        OxsStats::new(vec![OxsEntry::PacketCount(i as u64)])
                    } else {
                        OxsStats::default()
                    },
                    instructions: vec![Instruction::ApplyActions(
                        (0..(i % 9 + 1))
                            .map(|p| Action::Output {
                                port: p,
                                max_len: 0,
                            })
                            .collect(),
                    )],
                }
            })
            .collect();
        // many entries: several messages
        let mut enc = FlowStatsEncoder::new(v, 9, nx);
        let mut parts = Vec::new();
        for f in &flows {
            parts.extend(enc.push(&as_ref(f), v));
        }
        parts.push(enc.finish());
        assert!(parts.len() > 1, "v{v} nx={nx}: {} parts", parts.len());
        let mut back = Vec::new();
        for (i, p) in parts.iter().enumerate() {
            assert!(p.len() <= 0xffff, "v{v}: part {i} is {} bytes", p.len());
            let (h, m) = decode(p).unwrap_or_else(|e| panic!("v{v} nx={nx} part {i}: {e}"));
            assert_eq!(h.length as usize, p.len());
            let Message::MultipartReply(r) = m else {
                panic!("v{v}: not a multipart reply");
            };
            assert_eq!(
                r.flags & 1 == 1,
                i + 1 < parts.len(),
                "v{v}: REPLY_MORE of part {i}"
            );
            let MpReply::Flow { nx: n, flows } = r.body else {
                panic!("v{v}: not a flow reply");
            };
            assert_eq!(n, nx);
            back.extend(flows);
        }
        assert_eq!(back.len(), flows.len(), "v{v} nx={nx}");
        if let Some(i) = (0..flows.len()).find(|&i| back[i] != flows[i]) {
            panic!("v{v} nx={nx}: entry {i}: {:?} != {:?}", back[i], flows[i]);
        }
        // few entries: one message, byte for byte the typed encoding
        let mut enc = FlowStatsEncoder::new(v, 9, nx);
        for f in &flows[..5] {
            assert!(enc.push(&as_ref(f), v).is_none());
        }
        let typed = encode(
            v,
            9,
            &Message::MultipartReply(MultipartReply {
                flags: 0,
                body: MpReply::Flow {
                    nx,
                    flows: flows[..5].to_vec(),
                },
            }),
        );
        assert_eq!(enc.finish(), typed, "v{v} nx={nx}");
        // no entries
        let empty = encode(
            v,
            9,
            &Message::MultipartReply(MultipartReply {
                flags: 0,
                body: MpReply::Flow {
                    nx,
                    flows: Vec::new(),
                },
            }),
        );
        assert_eq!(FlowStatsEncoder::new(v, 9, nx).finish(), empty);
    }
}

/// The borrowed form of a flow-stats entry.
fn as_ref(f: &openflow::types::FlowStats) -> openflow::types::FlowStatsRef<'_> {
    use openflow::types::{FlowStatsRef, MatchRepr, MatchReprRef};
    let m = match &f.match_ {
        MatchRepr::Of10(m) => MatchReprRef::Of10(m),
        MatchRepr::Nxm(m) => MatchReprRef::Nxm(m),
        MatchRepr::Oxm(m) => MatchReprRef::Oxm(m),
    };
    FlowStatsRef {
        table_id: f.table_id,
        duration_sec: f.duration_sec,
        duration_nsec: f.duration_nsec,
        priority: f.priority,
        idle_timeout: f.idle_timeout,
        hard_timeout: f.hard_timeout,
        flags: f.flags,
        importance: f.importance,
        idle_age: f.idle_age,
        hard_age: f.hard_age,
        cookie: f.cookie,
        packet_count: f.packet_count,
        byte_count: f.byte_count,
        match_: m,
        oxs_stats: &f.oxs_stats,
        instructions: &f.instructions,
    }
}
