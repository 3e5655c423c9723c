//! Normalized OpenFlow actions ("ofpacts", as Open vSwitch calls them).
//!
//! The codec's [`openflow::Action`] is wire-faithful: `set_field`, `NXAST_REG_LOAD`,
//! `NXAST_REG_LOAD2`, `set_dl_src`... are distinct variants so they re-encode byte for byte.
//! The pipeline wants one form per meaning, with fields already resolved to their storage
//! ([`Loc`]) and checked once at flow-mod time, so translation never re-validates.
//!
//! Validation follows what ovs-vswitchd refuses at flow-mod time (lib/ofp-actions.c
//! `ofpacts_check`): fields this switch doesn't implement, writes to read-only fields, bit
//! ranges outside a field, goto_table backwards, unsupported actions. Anything OVS accepts must
//! be accepted here too, since one refusal aborts an atomic bundle from ovn-controller.

use std::sync::Arc;

use openflow::action::{self as ofa, ports, Action, Instruction, Subfield as WireSubfield};
use openflow::{Field, OfpErr};

use super::flow::{loc, Loc};

/// A bit range of a field.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SubField {
    pub field: Field,
    pub loc: Loc,
    pub ofs: u32,
    pub n_bits: u32,
}

impl SubField {
    /// The whole field.
    pub fn whole(field: Field) -> Option<SubField> {
        let l = loc(field)?;
        Some(SubField {
            field,
            loc: l,
            ofs: 0,
            n_bits: l.width(),
        })
    }

    /// Mask of the range in field coordinates.
    pub fn mask(&self) -> u128 {
        bits_mask(self.n_bits) << self.ofs
    }

    pub fn get(&self, k: &super::flow::PKey) -> u128 {
        (self.loc.get(k) >> self.ofs) & bits_mask(self.n_bits)
    }

    pub fn set(&self, k: &mut super::flow::PKey, v: u128) {
        self.loc.set_masked(k, v << self.ofs, self.mask());
    }
}

pub fn bits_mask(n: u32) -> u128 {
    if n >= 128 {
        u128::MAX
    } else {
        (1u128 << n) - 1
    }
}

/// Where `ct()` takes its zone from.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum CtZone {
    Imm(u16),
    Field(SubField),
}

/// A compiled `ct(...)`: what translation needs to emit the datapath's conntrack action.
#[derive(Clone, Debug, PartialEq)]
pub struct CtOfpact {
    pub commit: bool,
    pub force: bool,
    pub zone: CtZone,
    /// Table the tracked packet recirculates to (`table=`), if any.
    pub table: Option<u8>,
    pub nat: Option<ofa::Nat>,
    /// `exec(...)`: set_field/load/move into ct_mark and ct_label only (as OVS requires).
    pub exec: Vec<Ofpact>,
    /// `alg=` (ftp/tftp helpers): accepted, not implemented; recorded for traces.
    pub alg: u16,
}

impl CtOfpact {
    fn compile(ct: &ofa::Conntrack, depth: u32) -> Result<CtOfpact, Refused> {
        let zone = match &ct.zone_src {
            Some(z) => CtZone::Field(subfield(z)?),
            None => CtZone::Imm(ct.zone_imm),
        };
        if ct.recirc_table == 254 {
            return refuse(OfpErr::OFPBAC_BAD_ARGUMENT, "ct table 254");
        }
        let mut nat = None;
        let mut exec = Vec::new();
        for a in &ct.actions {
            match a {
                Action::Nat(n) => {
                    if nat.is_some() {
                        return refuse(OfpErr::OFPBAC_BAD_ARGUMENT, "ct() with two nat()");
                    }
                    nat = Some(n.clone());
                }
                other => {
                    let o = from_action(other, depth + 1)?;
                    let target = match &o {
                        Ofpact::SetField { field, .. } => Some(*field),
                        Ofpact::Move { dst, .. } => Some(dst.field),
                        _ => None,
                    };
                    if !matches!(target, Some(Field::CtMark | Field::CtLabel)) {
                        return refuse(
                            OfpErr::OFPBAC_BAD_ARGUMENT,
                            "ct(exec(...)) may only set ct_mark or ct_label",
                        );
                    }
                    exec.push(o);
                }
            }
        }
        Ok(CtOfpact {
            commit: ct.flags & 1 != 0,
            force: ct.flags & 2 != 0,
            zone,
            table: (ct.recirc_table != 255).then_some(ct.recirc_table),
            nat,
            exec,
            alg: ct.alg,
        })
    }
}

/// `controller(...)` / `controller2`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ControllerSpec {
    pub max_len: u16,
    pub controller_id: u16,
    pub reason: u8,
    pub userdata: Vec<u8>,
    pub pause: bool,
    pub meter_id: Option<u32>,
}

/// One normalized action or instruction.
#[derive(Clone, Debug, PartialEq)]
pub enum Ofpact {
    /// Output to a port (reserved ports included: IN_PORT, NORMAL, FLOOD, ALL, CONTROLLER,
    /// LOCAL, TABLE).
    Output {
        port: u32,
        max_len: u16,
    },
    OutputReg {
        src: SubField,
        max_len: u16,
    },
    Controller(Arc<ControllerSpec>),
    /// set_field, load, reg_load(2), set_dl_src, set_nw_tos, write_metadata...: bits of
    /// `value` under `mask` (field coordinates) are written.
    SetField {
        field: Field,
        loc: Loc,
        value: u128,
        mask: u128,
    },
    Move {
        src: SubField,
        dst: SubField,
    },
    StackPush(SubField),
    StackPop(SubField),
    PushVlan(u16),
    PopVlan,
    DecTtl(Vec<u16>),
    Resubmit {
        in_port: Option<u32>,
        table: Option<u8>,
        ct: bool,
    },
    Group(u32),
    Meter(u32),
    Clone(Vec<Ofpact>),
    Conjunction {
        id: u32,
        clause: u8,
        n_clauses: u8,
    },
    Ct(Arc<CtOfpact>),
    CtClear,
    Learn(Arc<super::learn::LearnAction>),
    CheckPktLarger {
        len: u16,
        dst: SubField,
    },
    Bundle(Box<ofa::Bundle>),
    Multipath(Box<ofa::Multipath>, SubField),
    SetQueue(u32),
    PopQueue,
    Exit,
    /// Accepted and without effect here: note, fin_timeout (no TCP FIN tracking yet), sample.
    Nop(&'static str),
    // instructions
    GotoTable(u8),
    ClearActions,
    WriteActions(Vec<Ofpact>),
}

/// A refused action: the OpenFlow error and a human text for logs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refused {
    pub err: OfpErr,
    pub why: String,
}

fn refuse<T>(err: OfpErr, why: impl Into<String>) -> Result<T, Refused> {
    Err(Refused {
        err,
        why: why.into(),
    })
}

/// Fields an action may write (OVS: `mf_field.writable`).
fn writable(f: Field) -> bool {
    !matches!(
        f,
        Field::EthType
            | Field::IpProto
            | Field::IpFrag
            | Field::TcpFlags
            | Field::ConjId
            | Field::CtState
            | Field::CtZone
            | Field::CtNwProto
            | Field::CtNwSrc
            | Field::CtNwDst
            | Field::CtTpSrc
            | Field::CtTpDst
            | Field::RecircId
            | Field::DpHash
            | Field::ActsetOutput
            | Field::PacketType
            | Field::InPhyPort
    )
}

fn subfield(sf: &WireSubfield) -> Result<SubField, Refused> {
    let Some(field) = Field::from_header(&sf.header) else {
        return refuse(
            OfpErr::OFPBAC_BAD_SET_TYPE,
            format!("unknown field {:?}", sf.header),
        );
    };
    header_subfield(field, sf.ofs as u32, sf.n_bits as u32)
}

fn header_subfield(field: Field, ofs: u32, n_bits: u32) -> Result<SubField, Refused> {
    let Some(l) = loc(field) else {
        return refuse(
            OfpErr::OFPBAC_BAD_SET_TYPE,
            format!(
                "field {} is not supported by this switch",
                field.info().name
            ),
        );
    };
    // arp_op is 16 bits on the wire, but only its low 8 bits exist (OVS keeps it in
    // nw_proto and truncates on set: `mf_set_flow_value`, MFF_ARP_OP); `load:2->arp_op[]`
    // (OVN's ARP responder) writes all 16, so writes to it keep the stored bits
    let (ofs, n_bits) = if field == Field::ArpOp && ofs < 8 && ofs + n_bits <= 16 {
        (ofs, n_bits.min(8 - ofs))
    } else {
        (ofs, n_bits)
    };
    if n_bits == 0 || ofs + n_bits > l.width() {
        return refuse(
            OfpErr::OFPBAC_BAD_SET_LEN,
            format!(
                "bits {ofs}..{} outside {} ({} bits)",
                ofs + n_bits,
                field.info().name,
                l.width()
            ),
        );
    }
    Ok(SubField {
        field,
        loc: l,
        ofs,
        n_bits,
    })
}

fn set_field(field: Field, value: u128, mask: u128) -> Result<Ofpact, Refused> {
    let Some(l) = loc(field) else {
        return refuse(
            OfpErr::OFPBAC_BAD_SET_TYPE,
            format!(
                "field {} is not supported by this switch",
                field.info().name
            ),
        );
    };
    if !writable(field) {
        return refuse(
            OfpErr::OFPBAC_BAD_SET_ARGUMENT,
            format!("field {} is read-only", field.info().name),
        );
    }
    let full = l.full();
    Ok(Ofpact::SetField {
        field,
        loc: l,
        value: value & full & mask,
        mask: mask & full,
    })
}

fn writable_sub(sf: SubField) -> Result<SubField, Refused> {
    if !writable(sf.field) {
        return refuse(
            OfpErr::OFPBAC_BAD_SET_ARGUMENT,
            format!("field {} is read-only", sf.field.info().name),
        );
    }
    Ok(sf)
}

/// Normalizes one action list. `depth` bounds nesting (clone in clone...).
pub fn from_actions(actions: &[Action], depth: u32) -> Result<Vec<Ofpact>, Refused> {
    if depth > 16 {
        return refuse(OfpErr::OFPBAC_BAD_LEN, "actions nested too deep");
    }
    let mut out = Vec::with_capacity(actions.len());
    for a in actions {
        out.push(from_action(a, depth)?);
    }
    Ok(out)
}

fn from_action(a: &Action, depth: u32) -> Result<Ofpact, Refused> {
    use Action as A;
    Ok(match a {
        A::Output { port, max_len } => Ofpact::Output {
            port: *port,
            max_len: *max_len,
        },
        A::Enqueue { port, .. } => Ofpact::Output {
            port: *port,
            max_len: 0,
        },
        A::SetVlanVid(v) => set_field(Field::VlanVid, 0x1000 | (*v as u128 & 0xfff), 0x1fff)?,
        A::SetVlanPcp(p) => set_field(Field::VlanPcp, *p as u128, 0x7)?,
        A::PopVlan => Ofpact::PopVlan,
        A::PushVlan(tpid) => {
            if *tpid != 0x8100 && *tpid != 0x88a8 {
                return refuse(
                    OfpErr::OFPBAC_BAD_ARGUMENT,
                    format!("push_vlan tpid {tpid:#x}"),
                );
            }
            Ofpact::PushVlan(*tpid)
        }
        A::SetDlSrc(m) => set_field(Field::EthSrc, mac(m), u128::MAX)?,
        A::SetDlDst(m) => set_field(Field::EthDst, mac(m), u128::MAX)?,
        A::SetNwSrc(a) => set_field(Field::IpSrc, *a as u128, u128::MAX)?,
        A::SetNwDst(a) => set_field(Field::IpDst, *a as u128, u128::MAX)?,
        A::SetNwTos(t) => set_field(Field::IpTos, *t as u128 & 0xfc, 0xfc)?,
        A::SetNwEcn(e) => set_field(Field::IpEcn, *e as u128, 0x3)?,
        A::SetTpSrc(p) => set_field(Field::TcpSrc, *p as u128, u128::MAX)?,
        A::SetTpDst(p) => set_field(Field::TcpDst, *p as u128, u128::MAX)?,
        A::SetNwTtl(t) => set_field(Field::IpTtl, *t as u128, u128::MAX)?,
        A::DecNwTtl => Ofpact::DecTtl(Vec::new()),
        A::DecTtlCntIds(ids) => Ofpact::DecTtl(ids.clone()),
        A::SetQueue(q) => Ofpact::SetQueue(*q),
        A::PopQueue => Ofpact::PopQueue,
        A::Group(g) => Ofpact::Group(*g),
        A::Meter(m) => Ofpact::Meter(*m),
        A::SetField(mf) => set_field(mf.field, mf.value_u128(), mf.mask_u128())?,
        A::RegLoad2(mf) => set_field(mf.field, mf.value_u128(), mf.mask_u128())?,
        A::RegLoad {
            ofs_nbits,
            dst,
            value,
        } => {
            let (ofs, n) = ((ofs_nbits >> 6) as u32, (ofs_nbits & 0x3f) as u32 + 1);
            let h = openflow::OxmHeader {
                class: (dst >> 16) as u16,
                field: ((dst >> 9) & 0x7f) as u8,
                hasmask: false,
                length: (dst & 0xff) as u8,
                experimenter: 0,
            };
            let Some(field) = Field::from_header(&h) else {
                return refuse(OfpErr::OFPBAC_BAD_SET_TYPE, format!("reg_load to {dst:#x}"));
            };
            let sf = writable_sub(header_subfield(field, ofs, n)?)?;
            if n < 64 && *value >> n != 0 {
                return refuse(
                    OfpErr::OFPBAC_BAD_SET_ARGUMENT,
                    "reg_load value wider than its field range",
                );
            }
            Ofpact::SetField {
                field,
                loc: sf.loc,
                value: (*value as u128) << ofs,
                mask: sf.mask(),
            }
        }
        A::SetTunnel(id) => set_field(Field::TunId, *id as u128, u128::MAX)?,
        A::SetTunnel64(id) => set_field(Field::TunId, *id as u128, u128::MAX)?,
        A::RegMove {
            n_bits,
            src_ofs,
            dst_ofs,
            src,
            dst,
        }
        | A::CopyField {
            n_bits,
            src_ofs,
            dst_ofs,
            src,
            dst,
        } => {
            let s = subfield(&WireSubfield {
                header: *src,
                ofs: *src_ofs,
                n_bits: *n_bits,
            })?;
            let d = writable_sub(subfield(&WireSubfield {
                header: *dst,
                ofs: *dst_ofs,
                n_bits: *n_bits,
            })?)?;
            Ofpact::Move { src: s, dst: d }
        }
        A::Resubmit { in_port } => Ofpact::Resubmit {
            in_port: Some(ofa::port_from_of10(*in_port)).filter(|p| *p != ports::IN_PORT),
            table: None,
            ct: false,
        },
        A::ResubmitTable { in_port, table, ct } => Ofpact::Resubmit {
            in_port: Some(ofa::port_from_of10(*in_port)).filter(|p| *p != ports::IN_PORT),
            table: (*table != 255).then_some(*table),
            ct: *ct,
        },
        A::Note(_) => Ofpact::Nop("note"),
        A::Exit => Ofpact::Exit,
        A::FinTimeout { .. } => Ofpact::Nop("fin_timeout"),
        A::Sample(_) => Ofpact::Nop("sample"),
        A::OutputReg { src, max_len } | A::OutputReg2 { src, max_len } => Ofpact::OutputReg {
            src: subfield(src)?,
            max_len: *max_len,
        },
        A::Controller {
            max_len,
            controller_id,
            reason,
        } => Ofpact::Controller(Arc::new(ControllerSpec {
            max_len: *max_len,
            controller_id: *controller_id,
            reason: *reason,
            userdata: Vec::new(),
            pause: false,
            meter_id: None,
        })),
        A::Controller2(c) => Ofpact::Controller(Arc::new(ControllerSpec {
            max_len: c.max_len.unwrap_or(u16::MAX),
            controller_id: c.controller_id.unwrap_or(0),
            reason: c.reason.unwrap_or(1),
            userdata: c.userdata.clone().unwrap_or_default(),
            pause: c.pause,
            meter_id: c.meter_id,
        })),
        A::WriteMetadata { metadata, mask } => {
            set_field(Field::Metadata, *metadata as u128, *mask as u128)?
        }
        A::StackPush(sf) => Ofpact::StackPush(subfield(sf)?),
        A::StackPop(sf) => Ofpact::StackPop(writable_sub(subfield(sf)?)?),
        A::Conjunction {
            id,
            clause,
            n_clauses,
        } => {
            if *n_clauses < 2 || *n_clauses > 64 || *clause >= *n_clauses {
                return refuse(
                    OfpErr::OFPBAC_BAD_ARGUMENT,
                    "conjunction clause out of range",
                );
            }
            Ofpact::Conjunction {
                id: *id,
                clause: *clause,
                n_clauses: *n_clauses,
            }
        }
        A::Ct(ct) => Ofpact::Ct(Arc::new(CtOfpact::compile(ct, depth)?)),
        A::Nat(_) => {
            return refuse(OfpErr::OFPBAC_BAD_ARGUMENT, "nat outside ct()");
        }
        A::CtClear => Ofpact::CtClear,
        A::Learn(l) => Ofpact::Learn(Arc::new(super::learn::LearnAction::compile(l)?)),
        A::Clone(inner) => Ofpact::Clone(from_actions(inner, depth + 1)?),
        A::CheckPktLarger { pkt_len, dst } => Ofpact::CheckPktLarger {
            len: *pkt_len,
            dst: writable_sub(subfield(dst)?)?,
        },
        A::Bundle(b) => Ofpact::Bundle(Box::new(b.clone())),
        A::BundleLoad(b) => Ofpact::Bundle(Box::new(b.clone())),
        A::Multipath(m) => Ofpact::Multipath(Box::new(*m), writable_sub(subfield(&m.dst)?)?),
        A::CopyTtlOut
        | A::CopyTtlIn
        | A::SetMplsLabel(_)
        | A::SetMplsTc(_)
        | A::SetMplsTtl(_)
        | A::DecMplsTtl
        | A::PushMpls(_)
        | A::PopMpls(_)
        | A::PushPbb(_)
        | A::PopPbb => {
            return refuse(
                OfpErr::OFPBAC_BAD_TYPE,
                format!("{a:?} is not supported (no MPLS/PBB)"),
            );
        }
        A::NxRaw { subtype, .. } => {
            return refuse(
                OfpErr::OFPBAC_BAD_VENDOR_TYPE,
                format!("Nicira action {subtype} is not supported"),
            );
        }
        A::Experimenter { experimenter, .. } => {
            return refuse(
                OfpErr::OFPBAC_BAD_VENDOR,
                format!("experimenter action {experimenter:#x} is not supported"),
            );
        }
    })
}

fn mac(m: &[u8; 6]) -> u128 {
    u64::from_be_bytes([0, 0, m[0], m[1], m[2], m[3], m[4], m[5]]) as u128
}

/// Normalizes a flow's instructions into execution order: meter, apply-actions, clear-actions,
/// write-actions, write-metadata, goto-table (OpenFlow 1.3 §5.9). `table` is the flow's table,
/// for the goto-forward rule.
pub fn from_instructions(insts: &[Instruction], table: u8) -> Result<Vec<Ofpact>, Refused> {
    let mut meter = None;
    let mut apply = Vec::new();
    let mut clear = false;
    let mut write = None;
    let mut metadata = None;
    let mut goto = None;
    for i in insts {
        match i {
            Instruction::Meter(m) => meter = Some(Ofpact::Meter(*m)),
            Instruction::ApplyActions(a) => apply = from_actions(a, 0)?,
            Instruction::ClearActions => clear = true,
            Instruction::WriteActions(a) => write = Some(Ofpact::WriteActions(from_actions(a, 0)?)),
            Instruction::WriteMetadata { metadata: v, mask } => {
                metadata = Some(set_field(Field::Metadata, *v as u128, *mask as u128)?)
            }
            Instruction::GotoTable(t) => {
                if *t <= table {
                    return refuse(
                        OfpErr::OFPBIC_BAD_TABLE_ID,
                        format!("goto_table:{t} from table {table} (must go forward)"),
                    );
                }
                if *t == 255 {
                    return refuse(OfpErr::OFPBIC_BAD_TABLE_ID, "goto_table:255");
                }
                goto = Some(Ofpact::GotoTable(*t))
            }
            Instruction::Experimenter { .. } => {
                return refuse(OfpErr::OFPBIC_UNSUP_INST, "experimenter instruction");
            }
        }
    }
    let mut out = Vec::new();
    out.extend(meter);
    out.extend(apply);
    if clear {
        out.push(Ofpact::ClearActions);
    }
    out.extend(write);
    out.extend(metadata);
    out.extend(goto);
    Ok(out)
}

/// Whether any action outputs to `port` (OpenFlow out_port filters of flow mods and stats).
pub fn outputs_to(acts: &[Ofpact], port: u32) -> bool {
    acts.iter().any(|a| match a {
        Ofpact::Output { port: p, .. } => *p == port,
        Ofpact::Controller(_) => port == ports::CONTROLLER,
        Ofpact::Clone(inner) | Ofpact::WriteActions(inner) => outputs_to(inner, port),
        _ => false,
    })
}

/// Appends the groups the actions name.
pub fn groups_used(acts: &[Ofpact], out: &mut Vec<u32>) {
    for a in acts {
        match a {
            Ofpact::Group(g) => out.push(*g),
            Ofpact::Clone(inner) | Ofpact::WriteActions(inner) => groups_used(inner, out),
            _ => {}
        }
    }
}

/// Whether any action references group `g` (out_group filters).
pub fn outputs_to_group(acts: &[Ofpact], g: u32) -> bool {
    acts.iter().any(|a| match a {
        Ofpact::Group(x) => *x == g,
        Ofpact::Clone(inner) | Ofpact::WriteActions(inner) => outputs_to_group(inner, g),
        _ => false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use openflow::MatchField;

    #[test]
    fn loads_and_set_fields_normalize_alike() {
        let via_set = from_action(
            &Action::SetField(
                MatchField::new(Field::Reg(0), 6, 5u32.to_be_bytes().to_vec(), None).unwrap(),
            ),
            0,
        )
        .unwrap();
        // load:5->NXM_NX_REG0[] : NXM_NX_REG0 header 0x00010004, ofs 0, 32 bits
        let via_load = from_action(
            &Action::RegLoad {
                ofs_nbits: 31,
                dst: 0x0001_0004,
                value: 5,
            },
            0,
        )
        .unwrap();
        assert_eq!(via_set, via_load);
    }

    #[test]
    fn refusals_name_the_problem() {
        let e = from_action(
            &Action::SetField(MatchField::new(Field::EthType, 6, vec![8, 0], None).unwrap()),
            0,
        )
        .unwrap_err();
        assert_eq!(e.err, OfpErr::OFPBAC_BAD_SET_ARGUMENT);
        assert!(e.why.contains("read-only"));
        // load:1->NXM_NX_REG0[30..33]: beyond 32 bits
        let e = from_action(
            &Action::RegLoad {
                ofs_nbits: (30 << 6) | 3,
                dst: 0x0001_0004,
                value: 1,
            },
            0,
        )
        .unwrap_err();
        assert_eq!(e.err, OfpErr::OFPBAC_BAD_SET_LEN);
        let e = from_instructions(&[Instruction::GotoTable(3)], 5).unwrap_err();
        assert_eq!(e.err, OfpErr::OFPBIC_BAD_TABLE_ID);
        assert!(from_action(&Action::PushMpls(0x8847), 0).is_err());
    }

    #[test]
    fn instruction_order_is_openflows() {
        let acts = from_instructions(
            &[
                Instruction::GotoTable(9),
                Instruction::ApplyActions(vec![Action::Output {
                    port: 1,
                    max_len: 0,
                }]),
                Instruction::Meter(4),
            ],
            0,
        )
        .unwrap();
        assert_eq!(acts.first(), Some(&Ofpact::Meter(4)));
        assert_eq!(acts.last(), Some(&Ofpact::GotoTable(9)));
        assert!(outputs_to(&acts, 1));
        assert!(!outputs_to(&acts, 2));
    }
}
