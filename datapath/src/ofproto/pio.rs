//! Packets between the switch and controllers: packet-in (in the format each connection chose,
//! with NXT_PACKET_IN2 metadata, userdata and continuations), packet-out and NXT_RESUME, both
//! of which are translated here and executed by a PMD.

use std::sync::Arc;

use openflow::message::{Message, PacketIn, PacketIn2, PacketIn2Prop, PacketOut};
use openflow::types::MatchRepr;
use openflow::{Field, Match, MatchField, OfpErr};

use super::conn::pin_format;
use super::mods::ModError;
use super::Ofproto;
use crate::daemon::State;
use crate::packet::key::{self, FlowKey, Layout};
use crate::pipeline::flow::{self, loc};
use crate::pipeline::xlate::{self, XlateIn};
use crate::pipeline::{ofpact, Frozen, PacketInSpec};
use crate::pmd::{ExecJob, PinMeta};

/// Magic prefix of our continuation ids (opaque to controllers, which echo them back).
const CONT_MAGIC: &[u8; 8] = b"XVSCONT1";
/// NXCPT_BRIDGE, the continuation property OVS fills with the bridge's UUID (ofp-packet.c,
/// enum nx_continuation_prop_type). We put the magic and the stored frozen state's id there:
/// ovs-ofctl decodes it as a UUID and sends it back verbatim in NXT_RESUME, and a controller
/// cannot tell it from OVS's.
const NXCPT_BRIDGE: u16 = 0x8000;

/// The NXPINT_CONTINUATION property value for continuation `id`: 4 bytes of padding (nested
/// properties start 8-aligned), then NXCPT_BRIDGE (header + 16 bytes, padded to 24).
fn encode_continuation(id: u64) -> Vec<u8> {
    let mut v = vec![0u8; 4];
    v.extend_from_slice(&NXCPT_BRIDGE.to_be_bytes());
    v.extend_from_slice(&20u16.to_be_bytes());
    v.extend_from_slice(CONT_MAGIC);
    v.extend_from_slice(&id.to_be_bytes());
    v.extend_from_slice(&[0; 4]);
    v
}

/// The continuation id in a NXPINT_CONTINUATION value, whatever other nested properties a
/// controller put around it.
fn decode_continuation(v: &[u8]) -> Option<u64> {
    let mut rest = v.get(4..)?;
    while rest.len() >= 4 {
        let ty = u16::from_be_bytes([rest[0], rest[1]]);
        let len = usize::from(u16::from_be_bytes([rest[2], rest[3]]));
        if len < 4 || len > rest.len() {
            return None;
        }
        if ty == NXCPT_BRIDGE && len == 20 && &rest[4..12] == CONT_MAGIC {
            return Some(u64::from_be_bytes(rest[12..20].try_into().ok()?));
        }
        rest = &rest[len.next_multiple_of(8).min(rest.len())..];
    }
    None
}

fn mf(field: Field, version: u8, value: u128) -> Option<MatchField> {
    let bytes = (field.info().width as usize).clamp(1, 16);
    let b = value.to_be_bytes();
    MatchField::new(field, version, b[16 - bytes..].to_vec(), None)
}

/// The packet-in's pipeline fields as a match (in_port, registers, metadata, tunnel, ct).
fn metadata_match(spec: &PacketInSpec, version: u8) -> Match {
    let mut m = Match::default();
    for (f, v) in &spec.metadata {
        let f = if *f == Field::InPortOxm && version == 1 {
            Field::InPort
        } else {
            *f
        };
        let v = if f == Field::InPort {
            openflow::action::port_to_of10(*v as u32) as u128
        } else {
            *v
        };
        if let Some(x) = mf(f, version.max(4), v) {
            m.fields.push(x);
        }
    }
    m
}

/// Sends one packet-in (from a PMD) to the connections that want it.
pub fn packet_in(st: &mut State, data: &[u8], meta: PinMeta) {
    let Some(spec) = meta.spec else {
        return;
    };
    let bridge = spec.bridge as usize;
    // controller(meter_id=N): rate limit
    if let Some(mid) = spec.spec.meter_id {
        if let Some(m) = st
            .pipeline
            .bridges
            .get(bridge)
            .and_then(|bt| bt.meters.get(&mid))
        {
            if !m.admit(data.len()) {
                st.ofproto.stats.packet_ins_metered += 1;
                return;
            }
        }
    }
    let cont = spec.frozen.clone().map(|f| {
        let id = st.ofproto.store_continuation(f);
        encode_continuation(id)
    });
    let total_len = meta.total_len;
    let mut sent = 0;
    for c in st.ofproto.conns.values_mut() {
        if c.bridge != bridge || !c.wants_async() {
            continue;
        }
        if c.controller_id != spec.spec.controller_id {
            continue;
        }
        if !c.async_allows(super::conn::AsyncKind::PacketIn, spec.spec.reason) {
            continue;
        }
        // the controller action's max_len bytes (0xffff: the whole packet)
        let cut = data.len().min(spec.spec.max_len as usize);
        let body = &data[..cut];
        let v = c.version;
        let m = match c.pin_format {
            pin_format::NXT_PACKET_IN2 => {
                let mut props = vec![PacketIn2Prop::Packet(body.to_vec())];
                if cut < data.len() {
                    props.push(PacketIn2Prop::FullLen(total_len));
                }
                props.push(PacketIn2Prop::TableId(spec.table_id));
                props.push(PacketIn2Prop::Cookie(spec.cookie));
                props.push(PacketIn2Prop::Reason(spec.spec.reason));
                props.push(PacketIn2Prop::Metadata(metadata_match(&spec, 6)));
                if !spec.spec.userdata.is_empty() {
                    props.push(PacketIn2Prop::Userdata(spec.spec.userdata.clone()));
                }
                if let Some(k) = &cont {
                    props.push(PacketIn2Prop::Continuation(k.clone()));
                }
                Message::PacketIn2(PacketIn2 { props })
            }
            pin_format::NXT_PACKET_IN => Message::PacketIn(PacketIn {
                buffer_id: 0xffff_ffff,
                total_len: total_len.min(0xffff) as u16,
                reason: spec.spec.reason,
                table_id: spec.table_id,
                cookie: spec.cookie,
                in_port: 0,
                match_: Some(MatchRepr::Nxm(metadata_match(&spec, 1))),
                data: body.to_vec(),
            }),
            _ if v == 1 => Message::PacketIn(PacketIn {
                buffer_id: 0xffff_ffff,
                total_len: total_len.min(0xffff) as u16,
                reason: spec.spec.reason.min(1),
                table_id: spec.table_id,
                cookie: spec.cookie,
                in_port: spec
                    .metadata
                    .iter()
                    .find(|(f, _)| *f == Field::InPortOxm)
                    .map(|(_, p)| openflow::action::port_to_of10(*p as u32))
                    .unwrap_or(0xfffd),
                match_: None,
                data: body.to_vec(),
            }),
            _ => Message::PacketIn(PacketIn {
                buffer_id: 0xffff_ffff,
                total_len: total_len.min(0xffff) as u16,
                reason: spec.spec.reason,
                table_id: spec.table_id,
                cookie: spec.cookie,
                in_port: 0,
                match_: Some(MatchRepr::Oxm(metadata_match(&spec, v))),
                data: body.to_vec(),
            }),
        };
        c.send(0, &m);
        sent += 1;
    }
    st.ofproto.stats.packet_ins_sent += sent;
    st.migration.note_packet_in(&spec, sent);
}

fn key_meta(w: &[u64]) -> [u64; key::w::L2_START] {
    let mut m = [0u64; key::w::L2_START];
    m.copy_from_slice(&w[..key::w::L2_START]);
    m
}

fn extract(data: &[u8], in_dp: u32) -> Result<(FlowKey, Layout), ModError> {
    let mut k = FlowKey::default();
    let mut l = Layout::default();
    key::extract(data, in_dp, &mut k, &mut l).map_err(|_| ModError {
        err: OfpErr::OFPBRC_BAD_PACKET,
        why: "malformed packet".into(),
    })?;
    Ok((k, l))
}

/// Hands a packet and its actions to a PMD. `meta` is the packet's datapath metadata words
/// (input port, tunnel, marks), which a `ct(table=)` recirculation carries on.
fn send_job(
    st: &mut State,
    data: &[u8],
    actions: Vec<crate::pipeline::DpAction>,
    lay: Layout,
    meta: [u64; key::w::L2_START],
) {
    if actions.is_empty() {
        return;
    }
    let job = Arc::new(ExecJob { actions, lay, meta });
    if let Some(tx) = st.ofproto.exec_tx.as_mut() {
        if tx.push_with(0, data, Some(job)) {
            tx.notify();
        }
    }
}

/// Sends a frame the switch itself made (an ARP request for a tunnel next hop) through bridge
/// `bridge`'s pipeline from OpenFlow port `in_port`, as a packet-out to TABLE would.
pub(crate) fn inject(st: &mut State, bridge: usize, data: &[u8], in_port: u32) {
    let Some(bt) = st.pipeline.bridges.get(bridge).cloned() else {
        return;
    };
    let in_dp = bt
        .ports
        .get(&in_port)
        .map(|p| p.dp as u32)
        .unwrap_or(0xffff);
    let Ok((key, lay)) = extract(data, in_dp) else {
        return;
    };
    let cfg = st.shared.config.load();
    let pipe = st.shared.pipeline.load();
    let inp = XlateIn {
        pipe: &pipe,
        cfg: &cfg,
        macs: &st.shared.macs,
        now: st.shared.now_sec.load(std::sync::atomic::Ordering::Relaxed),
        now_ms: st.started.elapsed().as_millis() as u64,
        pkt_len: data.len() as u32,
        trace: false,
        recirc: &st.shared.recirc,
    };
    let acts = [crate::pipeline::ofpact::Ofpact::Output {
        port: openflow::action::ports::TABLE,
        max_len: 0,
    }];
    let x = xlate::translate_actions(&inp, &bt, &key, in_port, &acts);
    let actions = run_control_actions(st, data, &x.actions);
    send_job(st, data, actions, lay, key_meta(&key.w));
}

/// PACKET_OUT: translate the actions for the packet and have PMD 0 execute them.
pub fn packet_out(st: &mut State, bridge: usize, po: &PacketOut) -> Result<(), ModError> {
    if po.buffer_id != 0xffff_ffff {
        return Err(ModError {
            err: OfpErr::OFPBRC_BUFFER_UNKNOWN,
            why: "this switch buffers no packets".into(),
        });
    }
    let in_port = match &po.match_ {
        Some(m) => m
            .get(Field::InPortOxm)
            .map(|f| f.value_u128() as u32)
            .unwrap_or(po.in_port),
        None => po.in_port,
    };
    let acts = ofpact::from_actions(&po.actions, 0).map_err(|r| ModError {
        err: r.err,
        why: r.why,
    })?;
    let Some(bt) = st.pipeline.bridges.get(bridge).cloned() else {
        return Ok(());
    };
    let in_dp = bt
        .ports
        .get(&in_port)
        .map(|p| p.dp as u32)
        .unwrap_or(0xffff);
    let (key, lay) = extract(&po.data, in_dp)?;
    let cfg = st.shared.config.load();
    // packet-outs see the published tables (resubmit / output:TABLE)
    let pipe = st.shared.pipeline.load();
    let inp = XlateIn {
        pipe: &pipe,
        cfg: &cfg,
        macs: &st.shared.macs,
        now: st.shared.now_sec.load(std::sync::atomic::Ordering::Relaxed),
        now_ms: st.started.elapsed().as_millis() as u64,
        pkt_len: po.data.len() as u32,
        trace: false,
        recirc: &st.shared.recirc,
    };
    let x = xlate::translate_actions(&inp, &bt, &key, in_port, &acts);
    // flows the packet went through (output:TABLE, resubmit) count it, as in OVS
    credit(&x.rules, po.data.len(), inp.now_ms);
    let actions = run_control_actions(st, &po.data, &x.actions);
    send_job(st, &po.data, actions, lay, key_meta(&key.w));
    Ok(())
}

fn credit(rules: &[Arc<crate::pipeline::tables::RuleStats>], len: usize, now_ms: u64) {
    for r in rules {
        r.add(1, len as u64, now_ms);
    }
}

/// Runs, in the control thread, the parts of a packet-out's (or resumed translation's)
/// actions that do not touch the frame, in order: packet-ins go out directly rather than
/// through a PMD, and meters are applied here (a packet a meter drops skips to the meter's
/// `skip_to`, as in the PMD). Returns the rest, for a PMD to execute.
fn run_control_actions(
    st: &mut State,
    data: &[u8],
    actions: &[crate::pipeline::DpAction],
) -> Vec<crate::pipeline::DpAction> {
    use crate::pipeline::DpAction;
    let mut out = Vec::with_capacity(actions.len());
    // the packet as the actions so far have edited it: a packet-in (e.g. a pausing
    // controller action in OVN's icmp4_error packet-out) carries that, as from a PMD
    let mut pkt = data.to_vec();
    let lay = extract(data, 0).map(|(_, l)| l).ok();
    let mut i = 0;
    while let Some(a) = actions.get(i) {
        match a {
            DpAction::Set { field, value, mask } => {
                if let Some(l) = &lay {
                    crate::packet::edit::set_field(&mut pkt, l, *field, *value, *mask);
                }
                out.push(a.clone());
            }
            DpAction::Userspace(spec) => packet_in(
                st,
                &pkt,
                PinMeta {
                    spec: Some(spec.clone()),
                    total_len: pkt.len() as u32,
                },
            ),
            DpAction::Learn(l) => super::apply_learned(st, l),
            DpAction::Meter { meter, skip_to, .. } => {
                if !meter.admit(data.len()) {
                    i = *skip_to as usize;
                    continue;
                }
            }
            a => out.push(a.clone()),
        }
        i += 1;
    }
    out
}

/// NXT_RESUME: continue a paused translation from where `controller(pause)` stopped.
pub fn resume(st: &mut State, bridge: usize, p: &PacketIn2) -> Result<(), ModError> {
    let stale = || ModError {
        err: OfpErr::NXR_STALE,
        why: "unknown or expired continuation".into(),
    };
    let cont = p
        .props
        .iter()
        .find_map(|x| match x {
            PacketIn2Prop::Continuation(v) => Some(v.clone()),
            _ => None,
        })
        .ok_or_else(stale)?;
    let id = decode_continuation(&cont).ok_or_else(stale)?;
    let frozen: Arc<Frozen> = Ofproto::take_continuation(&mut st.ofproto, id).ok_or_else(stale)?;
    let data = p
        .props
        .iter()
        .find_map(|x| match x {
            PacketIn2Prop::Packet(v) => Some(v.clone()),
            _ => None,
        })
        .unwrap_or_default();
    let md = p.props.iter().find_map(|x| match x {
        PacketIn2Prop::Metadata(m) => Some(m.clone()),
        _ => None,
    });
    let Some(bt) = st.pipeline.bridges.get(frozen.bridge as usize).cloned() else {
        return Err(stale());
    };
    let _ = bridge;
    let in_port = md
        .as_ref()
        .and_then(|m| m.get(Field::InPortOxm).or_else(|| m.get(Field::InPort)))
        .map(|f| f.value_u128() as u32)
        .unwrap_or(openflow::action::ports::CONTROLLER);
    let in_dp = bt
        .ports
        .get(&in_port)
        .map(|p| p.dp as u32)
        .unwrap_or(0xffff);
    let (key, lay) = extract(&data, in_dp)?;
    let mut pkey = flow::pkey_of(&key, in_port);
    if let Some(m) = &md {
        for f in &m.fields {
            if let Some(l) = loc(f.field) {
                l.set(&mut pkey, f.value_u128());
            }
        }
    }
    let cfg = st.shared.config.load();
    let pipe = st.shared.pipeline.load();
    let inp = XlateIn {
        pipe: &pipe,
        cfg: &cfg,
        macs: &st.shared.macs,
        now: st.shared.now_sec.load(std::sync::atomic::Ordering::Relaxed),
        now_ms: st.started.elapsed().as_millis() as u64,
        pkt_len: data.len() as u32,
        trace: false,
        recirc: &st.shared.recirc,
    };
    let x = xlate::resume(&inp, &bt, pkey, &frozen);
    credit(&x.rules, data.len(), inp.now_ms);
    let actions = run_control_actions(st, &data, &x.actions);
    send_job(st, &data, actions, lay, key_meta(&pkey[flow::DP..]));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn continuations_round_trip_as_an_nxcpt_bridge_property() {
        let v = encode_continuation(0x0102_0304_0506_0708);
        // pad, NXCPT_BRIDGE len 20, "XVSCONT1", id, pad
        assert_eq!(
            v,
            [
                0, 0, 0, 0, 0x80, 0, 0, 20, b'X', b'V', b'S', b'C', b'O', b'N', b'T', b'1', 1, 2,
                3, 4, 5, 6, 7, 8, 0, 0, 0, 0
            ]
        );
        assert_eq!(decode_continuation(&v), Some(0x0102_0304_0506_0708));
        // another nested property first (NXCPT_TABLE_ID, u8 padded to 8) is skipped
        let mut w = vec![0u8; 4];
        w.extend_from_slice(&[0x80, 4, 0, 5, 3, 0, 0, 0]);
        w.extend_from_slice(&v[4..]);
        assert_eq!(decode_continuation(&w), Some(0x0102_0304_0506_0708));
        // garbage: no id, no panic
        assert_eq!(decode_continuation(&[0, 0, 0, 0, 0x80, 0, 0, 2]), None);
        assert_eq!(decode_continuation(&v[..10]), None);
        assert_eq!(decode_continuation(&[]), None);
    }
}
