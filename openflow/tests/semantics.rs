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
