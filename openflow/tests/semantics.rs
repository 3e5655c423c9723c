//! Spot checks of decoded field values on captured vectors (that the decoder understands
//! what `ovs-ofctl ofp-print` printed, not only that it round-trips).

use openflow::action::{Action, Instruction, LearnDst};
use openflow::message::{Experimenter, PacketIn2Prop};
use openflow::oxm::Field;
use openflow::{decode, MatchRepr, Message, MpReply, MpRequest};
use std::path::PathBuf;

/// (ofp-print summary line, bytes) for every vector in `file`.
fn load(file: &str) -> Vec<(String, Vec<u8>)> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/vectors")
        .join(file);
    let text = std::fs::read_to_string(p).unwrap();
    let mut out = Vec::new();
    let mut last = String::new();
    for line in text.lines() {
        if let Some(c) = line.strip_prefix("# conn ") {
            last = c.to_string();
        } else if let Some((_, hex)) = line.split_once(' ').filter(|_| !line.starts_with('#')) {
            let b = (0..hex.len() / 2)
                .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap())
                .collect();
            out.push((last.clone(), b));
        }
    }
    out
}

fn msgs(file: &str) -> Vec<(String, Message)> {
    load(file)
        .into_iter()
        .filter_map(|(s, b)| decode(&b).ok().map(|(_, m)| (s, m)))
        .collect()
}

#[test]
fn of15_bundle_holds_ovn_flow_mods() {
    let ms = msgs("of15-flowmod.txt");
    let mut n_flow_mods = 0;
    let mut saw_ct_nat = false;
    let mut saw_learn = false;
    let mut saw_controller2_pause_or_userdata = false;
    for (_, m) in &ms {
        let Message::BundleAdd(b) = m else { continue };
        assert_eq!(b.flags & 3, 3, "atomic+ordered");
        let Message::FlowMod(fm) = &*b.message else {
            continue;
        };
        n_flow_mods += 1;
        let MatchRepr::Oxm(_) = fm.match_ else {
            panic!("OF1.5 uses OXM")
        };
        for i in &fm.instructions {
            let Instruction::ApplyActions(acts) = i else {
                continue;
            };
            for a in acts {
                match a {
                    Action::Ct(ct) if ct.actions.iter().any(|x| matches!(x, Action::Nat(_))) => {
                        saw_ct_nat = true
                    }
                    Action::Learn(l)
                        if l.specs
                            .iter()
                            .any(|s| matches!(s.dst, LearnDst::Load { .. })) =>
                    {
                        saw_learn = true
                    }
                    Action::Controller2(c) if c.userdata.is_some() => {
                        saw_controller2_pause_or_userdata = true
                    }
                    _ => {}
                }
            }
        }
    }
    assert!(n_flow_mods > 1000, "{n_flow_mods}");
    assert!(saw_ct_nat && saw_learn && saw_controller2_pause_or_userdata);
}

#[test]
fn of15_packet_in2_with_continuation_and_resume() {
    let ms = msgs("of15-async-nxt_packet_in2.txt");
    let pin = ms
        .iter()
        .find_map(|(_, m)| match m {
            Message::PacketIn2(p) if p.continuation().is_some() => Some(p.clone()),
            _ => None,
        })
        .expect("a paused packet-in");
    // reg0=0x5, metadata=0x6 set before controller(pause) in the capture's flow.
    let md = pin.metadata().unwrap();
    // OVS sends pipeline registers as masked xregs: xreg0 = reg0:reg1.
    assert_eq!(md.register(0), Some((5, 0xffff_ffff)));
    assert_eq!(md.register(1), None);
    assert_eq!(
        md.get(Field::Metadata).unwrap().value,
        6u64.to_be_bytes().to_vec()
    );
    assert_eq!(pin.userdata(), Some(&[0, 0, 0, 0x0e, 0, 0, 0, 0][..]));
    assert_eq!(pin.packet().unwrap().len(), 118);
    let resume = ms
        .iter()
        .find_map(|(_, m)| {
            if let Message::Resume(p) = m {
                Some(p)
            } else {
                None
            }
        })
        .unwrap();
    assert_eq!(resume.continuation(), pin.continuation());
    assert!(resume
        .props
        .iter()
        .any(|p| matches!(p, PacketIn2Prop::Packet(_))));
}

#[test]
fn tlv_meter_group_messages() {
    let ms = msgs("of15-tlv.txt");
    assert!(ms.iter().any(|(_, m)| matches!(m,
        Message::Experimenter(Experimenter::TlvTableMod { command: 0, maps }) if maps.iter().any(|x| x.option_class == 0x102 && x.option_type == 0x80 && x.option_len == 4 && x.index == 0))));
    let ms = msgs("of15-meters.txt");
    assert!(ms.iter().any(|(_, m)| matches!(m, Message::MultipartReply(r) if matches!(r.body, MpReply::MeterFeatures(_)))));
    assert!(ms.iter().any(|(_, m)| matches!(m, Message::MeterMod(mm) if mm.command == 0 && mm.meter_id == 1 && mm.bands.len() == 1 && mm.bands[0].band_type == 1 && mm.bands[0].rate == 10)));
    let ms = msgs("of15-groups.txt");
    let g = ms
        .iter()
        .find_map(|(_, m)| match m {
            Message::GroupMod(g) if g.group_id == 1 && g.command == 0 => Some(g.clone()),
            _ => None,
        })
        .unwrap();
    assert_eq!(g.group_type, 1);
    assert_eq!(
        g.selection_method().map(|s| s.0),
        Some("dp_hash".to_string())
    );
    assert!(matches!(g.buckets[0].actions[0], Action::Ct(_)));
}

#[test]
fn of10_nxm_flow_mods_and_stats() {
    let ms = msgs("of10-flowmod.txt");
    let nxm = ms
        .iter()
        .filter(|(_, m)| matches!(m, Message::FlowMod(f) if matches!(f.match_, MatchRepr::Nxm(_))))
        .count();
    assert!(nxm > 1000, "{nxm}");
    assert!(ms
        .iter()
        .any(|(_, m)| matches!(m, Message::Experimenter(Experimenter::FlowModTableId(true)))));
    let ms = msgs("of10-stats.txt");
    assert!(ms.iter().any(|(_, m)| matches!(m, Message::MultipartRequest(r) if matches!(&r.body, MpRequest::Flow(f) if matches!(f.match_, MatchRepr::Nxm(_))))));
    assert!(ms.iter().any(|(_, m)| matches!(m, Message::MultipartReply(r) if matches!(&r.body, MpReply::Flow { nx: true, flows } if !flows.is_empty()))));
}

#[test]
fn flow_removed_and_port_status() {
    for f in [
        "of15-async-nxt_packet_in2.txt",
        "of13-async-standard.txt",
        "of10-async-standard.txt",
    ] {
        let ms = msgs(f);
        assert!(
            ms.iter().any(|(_, m)| matches!(m, Message::FlowRemoved(fr) if fr.cookie == 0x99 && fr.table_id == 5 && fr.reason == 2 && fr.priority == 1)
                || matches!(m, Message::FlowRemoved(fr) if fr.cookie == 0x99 && f.starts_with("of10"))),
            "{f}"
        );
        assert!(ms.iter().any(|(_, m)| matches!(m, Message::PortStatus { reason: 0, port } if port.name_str() == "p1")), "{f}");
    }
}

#[test]
fn of10_match_converts() {
    let ms = msgs("of10-dump-all.txt");
    let _ = ms;
    // ofp10 match: in_port=1, dl_type=0x800, nw_src=10.0.0.0/24.
    let mut m = openflow::Of10Match {
        wildcards: openflow::oxm::of10_wc::ALL,
        ..Default::default()
    };
    use openflow::oxm::of10_wc::*;
    m.wildcards &= !(IN_PORT | DL_TYPE);
    m.wildcards = (m.wildcards & !(0x3f << NW_SRC_SHIFT)) | (8 << NW_SRC_SHIFT);
    m.in_port = 1;
    m.dl_type = 0x800;
    m.nw_src = 0x0a00_0000;
    let x = m.to_match();
    assert_eq!(x.get(Field::InPort).unwrap().value, vec![0, 1]);
    assert_eq!(
        x.get(Field::IpSrc).unwrap().mask.as_deref(),
        Some(&[255, 255, 255, 0][..])
    );
    x.validate().unwrap();
}

// ---- typed multipart statistics, flow monitors and OXS --------------------------------

use openflow::monitor::{nxfme, ofpfme, FlowMonitorForm, FlowUpdate};
use openflow::multipart::MultipartReply;
use openflow::stats::{OxsEntry, PortStatsProp, TableDescProp, TableFeatureProp};

/// (ofp-print first line without "conn N: ", message) for every vector of `file` whose first
/// line starts with `prefix`.
fn with_line(file: &str, prefix: &str) -> Vec<(String, Message)> {
    msgs(file)
        .into_iter()
        .filter_map(|(c, m)| {
            let line = c.split_once(": ").map(|(_, t)| t.to_string())?;
            line.starts_with(prefix).then_some((line, m))
        })
        .collect()
}

fn one(file: &str, prefix: &str) -> (String, Message) {
    let mut v = with_line(file, prefix);
    assert_eq!(v.len(), 1, "{file}: {prefix}");
    v.pop().unwrap()
}

fn reply_body(m: &Message) -> &MpReply {
    match m {
        Message::MultipartReply(MultipartReply { body, .. }) => body,
        other => panic!("not a multipart reply: {other:?}"),
    }
}

fn request_body(m: &Message) -> &MpRequest {
    match m {
        Message::MultipartRequest(r) => &r.body,
        other => panic!("not a multipart request: {other:?}"),
    }
}

/// The "N ports" / "N queues" count of an ofp-print first line.
fn count_in(line: &str, what: &str) -> usize {
    let (head, _) = line.rsplit_once(what).expect(what);
    head.trim_end()
        .rsplit(' ')
        .next()
        .unwrap()
        .parse()
        .expect("count")
}

#[test]
fn every_captured_multipart_is_typed() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/vectors");
    let mut n = 0;
    for f in std::fs::read_dir(dir).unwrap() {
        let f = f.unwrap().path();
        if f.extension().is_none_or(|x| x != "txt") {
            continue;
        }
        let name = f.file_name().unwrap().to_string_lossy().into_owned();
        for (c, m) in msgs(&name) {
            let raw = match &m {
                Message::MultipartRequest(r) => matches!(
                    r.body,
                    MpRequest::Raw { .. } | MpRequest::Experimenter { .. }
                ),
                Message::MultipartReply(r) => {
                    matches!(r.body, MpReply::Raw { .. } | MpReply::Experimenter { .. })
                }
                _ => continue,
            };
            n += 1;
            assert!(!raw, "{name}: {c} decoded raw: {m:?}");
        }
    }
    assert!(n > 150, "{n} multipart messages");
}

#[test]
fn table_stats_of10_and_of13() {
    // OFPST_TABLE reply (OF1.0): table 0 active=8, max_entries=1000000, matching in_port
    // eth_{src,dst,type} vlan_{vid,pcp} ip_{src,dst} nw_{proto,tos} tcp_{src,dst}.
    let (_, m) = one("of10-stats.txt", "OFPST_TABLE reply");
    let MpReply::TableStats(ts) = reply_body(&m) else {
        panic!()
    };
    assert_eq!(ts.len(), 254);
    assert_eq!((ts[0].table_id, ts[0].active_count), (0, 8));
    assert_eq!((ts[1].table_id, ts[1].active_count), (1, 26));
    assert_eq!(ts[0].max_entries, 1_000_000);
    assert_eq!(ts[0].wildcards, 0x003f_ffff);
    assert_eq!(ts[253].table_id, 253);
    let (_, m) = one("of13-stats.txt", "OFPST_TABLE reply");
    let MpReply::TableStats(ts) = reply_body(&m) else {
        panic!()
    };
    assert_eq!(ts.len(), 254);
    assert_eq!(
        (ts[0].active_count, ts[1].active_count, ts[0].lookup_count),
        (8, 30, 0)
    );
    assert!(matches!(
        request_body(&one("of13-stats.txt", "OFPST_TABLE request").1),
        MpRequest::Table
    ));
}

#[test]
fn port_stats_all_versions() {
    for (file, dur) in [
        ("of10-stats.txt", None),
        ("of13-stats.txt", Some((11, 782_000_000))),
        ("of14-stats.txt", Some((9, 722_000_000))),
        ("of15-stats.txt", Some((7, 630_000_000))),
    ] {
        let (line, m) = one(file, "OFPST_PORT reply");
        let MpReply::PortStats(ps) = reply_body(&m) else {
            panic!("{file}")
        };
        assert_eq!(ps.len(), count_in(&line, "ports"), "{file}");
        // port LOCAL: rx pkts=0, bytes=0, drop=0, errs=0, frame=0, over=0, crc=0
        let p = &ps[0];
        assert_eq!(p.port_no, 0xffff_fffe, "{file}");
        assert_eq!((p.rx_packets, p.tx_bytes, p.rx_errors), (0, 0, 0));
        assert_eq!(p.ethernet.map(|e| e.rx_crc_err), Some(0), "{file}");
        if let Some(d) = dur {
            assert_eq!((p.duration_sec, p.duration_nsec), d, "{file}");
        }
        // OVS adds its per-device counters as an experimenter property in 1.4+.
        let exp = p.props.iter().any(|x| {
            matches!(x, PortStatsProp::Experimenter { experimenter: 0xaa01, exp_type: 1, data } if !data.is_empty())
        });
        assert_eq!(exp, file >= "of14", "{file}");
        // OFPST_PORT request: port_no=ANY (OpenFlow 1.0's OFPP_NONE 0xffff maps to it)
        let (_, m) = one(file, "OFPST_PORT request");
        let MpRequest::PortStats { port_no } = request_body(&m) else {
            panic!()
        };
        assert_eq!(*port_no, 0xffff_ffff);
    }
}

#[test]
fn queue_stats_requests_and_empty_replies() {
    for file in [
        "of10-stats.txt",
        "of13-stats.txt",
        "of14-stats.txt",
        "of15-stats.txt",
    ] {
        // OFPST_QUEUE request: port=ANY queue=ALL (OpenFlow 1.0 says OFPP_ALL).
        let (_, m) = one(file, "OFPST_QUEUE request");
        let MpRequest::QueueStats { port_no, queue_id } = request_body(&m) else {
            panic!("{file}")
        };
        let any = if file.starts_with("of10") {
            0xffff_fffc
        } else {
            0xffff_ffff
        };
        assert_eq!((*port_no, *queue_id), (any, 0xffff_ffff), "{file}");
        let (line, m) = one(file, "OFPST_QUEUE reply");
        let MpReply::QueueStats(qs) = reply_body(&m) else {
            panic!("{file}")
        };
        assert_eq!(qs.len(), count_in(&line, "queues"));
    }
}

#[test]
fn group_and_meter_stats() {
    for file in ["of13-groups.txt", "of14-groups.txt", "of15-groups.txt"] {
        let (_, m) = one(file, "OFPST_GROUP request");
        assert!(matches!(
            request_body(&m),
            MpRequest::GroupStats {
                group_id: 0xffff_fffc
            }
        ));
        let (_, m) = one(file, "OFPST_GROUP reply");
        let MpReply::GroupStats(gs) = reply_body(&m) else {
            panic!("{file}")
        };
        assert!(gs.len() >= 5, "{file}");
        assert!(gs.iter().all(|g| g.ref_count == 0 && g.packet_count == 0));
        assert!(gs
            .iter()
            .all(|g| g.duration_sec == 0 && g.duration_nsec > 0));
        if file == "of13-groups.txt" {
            // group_id=1 (1 bucket), 12 (2), 10 (2), 11 (1), 14 (2), ...
            let ids: Vec<(u32, usize)> = gs
                .iter()
                .take(5)
                .map(|g| (g.group_id, g.buckets.len()))
                .collect();
            assert_eq!(ids, [(1, 1), (12, 2), (10, 2), (11, 1), (14, 2)]);
            assert_eq!(gs[0].duration_nsec, 119_000_000);
        }
    }
    for file in ["of13-meters.txt", "of14-meters.txt", "of15-meters.txt"] {
        let (_, m) = one(file, "OFPST_METER request");
        assert!(matches!(
            request_body(&m),
            MpRequest::MeterStats {
                meter_id: 0xffff_ffff
            }
        ));
        let (_, m) = one(file, "OFPST_METER_CONFIG request");
        assert!(matches!(
            request_body(&m),
            MpRequest::MeterConfig {
                meter_id: 0xffff_ffff
            }
        ));
        let (_, m) = one(file, "OFPST_METER reply");
        let MpReply::MeterStats(ms) = reply_body(&m) else {
            panic!("{file}")
        };
        // meter:1 flow_count:0 ... bands: 0: packet_count:0 byte_count:0, then meter:2.
        assert_eq!(
            ms.iter()
                .map(|m| (m.meter_id, m.bands.len()))
                .collect::<Vec<_>>(),
            [(1, 1), (2, 1)]
        );
        assert_eq!(ms[0].flow_count, 0);
        if file == "of13-meters.txt" {
            assert_eq!((ms[0].duration_sec, ms[0].duration_nsec), (0, 284_000_000));
            assert_eq!((ms[1].duration_sec, ms[1].duration_nsec), (0, 226_000_000));
        }
    }
}

#[test]
fn table_features_and_table_desc() {
    for file in ["of13-stats.txt", "of14-stats.txt", "of15-stats.txt"] {
        let (_, m) = one(file, "OFPST_TABLE_FEATURES request");
        assert!(matches!(request_body(&m), MpRequest::TableFeatures(t) if t.is_empty()));
        let replies = with_line(file, "OFPST_TABLE_FEATURES reply");
        assert_eq!(replies.len(), 2, "{file}");
        let MpReply::TableFeatures(tfs) = reply_body(&replies[0].1) else {
            panic!("{file}")
        };
        // table 0: metadata: match=0xffffffffffffffff write=0xffffffffffffffff,
        // max_entries=1000000, next tables: 1-253, instructions: meter apply_actions
        // clear_actions write_actions write_metadata goto_table.
        let t0 = &tfs[0];
        assert_eq!(t0.table_id, 0);
        assert_eq!((t0.metadata_match, t0.metadata_write), (u64::MAX, u64::MAX));
        assert_eq!(t0.max_entries, 1_000_000);
        let next = t0.props.iter().find_map(|p| match p {
            TableFeatureProp::NextTables {
                miss: false,
                tables,
            } => Some(tables.clone()),
            _ => None,
        });
        assert_eq!(next, Some((1..=253).collect::<Vec<u8>>()));
        let mut insts: Vec<u16> = t0
            .props
            .iter()
            .find_map(|p| match p {
                TableFeatureProp::Instructions { miss: false, ids } => {
                    Some(ids.iter().map(|i| i.id_type).collect())
                }
                _ => None,
            })
            .unwrap();
        insts.sort();
        // (OpenFlow 1.5 has no meter instruction: meter is an action there.)
        let n = if file.starts_with("of15") { 5 } else { 6 };
        assert_eq!(insts, (1..=n).collect::<Vec<u16>>(), "{file}");
        // "arbitrary mask: ... metadata ..." and "exact match or wildcard: ... eth_type ...".
        let matchable = t0
            .props
            .iter()
            .find_map(|p| match p {
                TableFeatureProp::Match(h) => Some(h.clone()),
                _ => None,
            })
            .unwrap();
        let has = |class: u16, field: u8, mask: bool| {
            matchable
                .iter()
                .any(|h| h.class == class && h.field == field && h.hasmask == mask)
        };
        assert!(has(0x8000, 2, true), "metadata maskable");
        assert!(has(0x8000, 5, false), "eth_type exact");
        // "Write-Actions and Apply-Actions features: actions: output group set_field ..."
        assert!(t0.props.iter().any(|p| matches!(p,
            TableFeatureProp::ApplyActions { miss: false, ids } if ids.iter().any(|i| i.id_type == 0))));
    }
    for file in ["of14-stats.txt", "of15-stats.txt"] {
        for (_, m) in with_line(file, "OFPST_TABLE_DESC reply") {
            let MpReply::TableDesc(ds) = reply_body(&m) else {
                panic!("{file}")
            };
            // table 0: eviction=off eviction_flags=OTHER|IMPORTANCE|LIFETIME, vacancy=off
            // (config 0, an eviction property with flags 7, no vacancy property)
            assert_eq!(ds[0].table_id, 0);
            assert_eq!(ds[0].config, 0);
            assert_eq!(ds[0].props, [TableDescProp::Eviction { flags: 7 }]);
            assert_eq!(ds[1].table_id, 1);
        }
    }
}

#[test]
fn oxs_in_flow_stats_aggregate_and_flow_removed() {
    // OFPST_AGGREGATE reply (OF1.5): packet_count=0 byte_count=0 flow_count=N
    let aggs = with_line("of15-stats.txt", "OFPST_AGGREGATE reply");
    assert_eq!(aggs.len(), 2);
    for (line, m) in aggs {
        let MpReply::AggregateOxs(x) = reply_body(&m) else {
            panic!()
        };
        let want: u32 = line.rsplit("flow_count=").next().unwrap().parse().unwrap();
        assert_eq!(x.flow_count(), Some(want));
        assert_eq!((x.packet_count(), x.byte_count()), (Some(0), Some(0)));
    }
    // OFPT_FLOW_REMOVED (OF1.5): ... reason=delete table_id=5 cookie:0x99 duration0.065s idle100
    let (_, m) = one("of15-async-nxt_packet_in2.txt", "OFPT_FLOW_REMOVED");
    let Message::FlowRemoved(fr) = m else {
        panic!()
    };
    assert_eq!(fr.idle_timeout, 100);
    assert_eq!(fr.oxs_stats.duration(), Some((0, 65_000_000)));
    assert_eq!(fr.oxs_stats.packet_count(), Some(0));
    assert!(!fr
        .oxs_stats
        .entries
        .iter()
        .any(|e| matches!(e, OxsEntry::Other { .. })));
    // OFPST_FLOW reply (OF1.5): duration=0.922s, idle_age=0 (every flow has OXS stats).
    let (_, m) = with_line("of15-stats.txt", "OFPST_FLOW reply").remove(0);
    let MpReply::Flow { flows, .. } = reply_body(&m) else {
        panic!()
    };
    assert_eq!(flows[0].oxs_stats.duration(), Some((0, 922_000_000)));
    assert_eq!(flows[0].oxs_stats.idle_time().map(|t| t.0), Some(0));
    assert!(flows.iter().all(|f| f.oxs_stats.byte_count() == Some(0)));
}

#[test]
fn flow_monitors_in_three_forms() {
    for (file, form, prefix) in [
        ("of10-flow-monitor.txt", FlowMonitorForm::Nicira, "NXST"),
        ("of13-flow-monitor.txt", FlowMonitorForm::Onf, "ONFST"),
        ("of15-flow-monitor.txt", FlowMonitorForm::OpenFlow, "OFPST"),
    ] {
        let of = form == FlowMonitorForm::OpenFlow;
        let reqs = with_line(file, &format!("{prefix}_FLOW_MONITOR request"));
        assert_eq!(reqs.len(), 2);
        // id=0 flags=initial,add,delete,modify,actions,own
        // id=0 flags=add,delete,modify,own table=0 in_port=LOCAL
        let mut got = Vec::new();
        for (_, m) in &reqs {
            let MpRequest::FlowMonitor { form: f, monitors } = request_body(m) else {
                panic!("{file}")
            };
            assert_eq!(*f, form);
            assert_eq!(monitors.len(), 1);
            let x = &monitors[0];
            got.push((x.id, x.flags, x.table_id, x.match_.fields.len()));
        }
        let own = if of { 64 } else { 32 };
        assert_eq!(got, [(0, 31 | own, 0xff, 0), (0, 14 | own, 0, 1)], "{file}");

        let replies = with_line(file, &format!("{prefix}_FLOW_MONITOR reply"));
        let updates: Vec<Vec<FlowUpdate>> = replies
            .iter()
            .map(|(_, m)| match reply_body(m) {
                MpReply::FlowMonitor { form: f, updates } if *f == form => updates.clone(),
                other => panic!("{file}: {other:?}"),
            })
            .collect();
        // Initial reply: "event=ADDED (1.4+: INITIAL) table=0 cookie=0 udp,in_port=LOCAL
        // actions=controller(...),resubmit(,8)", ... "event=ADDED table=8 cookie=0".
        let FlowUpdate::Full(first) = &updates[0][0] else {
            panic!()
        };
        let initial = if of { ofpfme::INITIAL } else { nxfme::ADDED };
        assert_eq!((first.event, first.table_id, first.cookie), (initial, 0, 0));
        assert!(!first.instructions.is_empty());
        // then "event=ADDED table=6 cookie=0 in_port=2 actions=output:3", MODIFIED to
        // output:4, "event=DELETED reason=delete table=6".
        let events: Vec<(u16, u16, u8)> = updates[1..4]
            .iter()
            .map(|u| match &u[0] {
                FlowUpdate::Full(f) => (f.event, f.reason, f.table_id),
                other => panic!("{other:?}"),
            })
            .collect();
        let want = if of {
            [
                (ofpfme::ADDED, 0, 6),
                (ofpfme::MODIFIED, 0, 6),
                (ofpfme::REMOVED, 2, 6),
            ]
        } else {
            [
                (nxfme::ADDED, 0, 6),
                (nxfme::MODIFIED, 0, 6),
                (nxfme::DELETED, 2, 6),
            ]
        };
        assert_eq!(events, want, "{file}");
        // the second monitor's reply is empty ("... reply (xid=0x2):" and nothing else)
        assert!(updates[4].is_empty(), "{file}");
    }
}
