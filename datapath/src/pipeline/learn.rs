//! The `learn` action (NXAST_LEARN / NXAST_LEARN2): a flow that adds a flow.
//!
//! A learn action is checked and compiled once, at flow-mod time, into [`LearnAction`]: its
//! field references resolved to pipeline-key locations. Translation then builds the learned
//! flow ([`LearnAction::execute`]) from the packet's pipeline key at the point the action runs,
//! as a plain OpenFlow flow mod ([`Learned`]), so that the control thread applies it like any
//! other flow mod and dumps, flow monitors and expiry treat it like any other flow.
//!
//! Caching: translation un-wildcards every source field a spec reads ([`LearnAction::mask`]),
//! and the pipeline-only words (registers, metadata) are a function of the key bits a megaflow
//! matches. So every packet of a megaflow learns exactly the same flow: the learned flow is
//! computed once per translation and the megaflow carries it in a [`super::DpAction::Learn`],
//! which the PMD hands to the control thread (de-duplicated, over a bounded ring) for every
//! packet — the way OVS's revalidators re-execute the learn actions in their xlate cache, so
//! a learned flow stays alive as long as traffic keeps teaching it.
//!
//! Semantics follow Open vSwitch (lib/learn.c `learn_execute`, ofproto.c learned cookies):
//! matches accumulate per field, loads become `load`/`set_field` actions of the learned flow,
//! `output:FIELD` becomes an output to the port the field holds (16-bit OpenFlow 1.0 ports),
//! `delete_learned` removes every flow of (table, cookie) once no flow with such a learn action
//! is left.

use std::hash::{Hash, Hasher};

use openflow::action::{self as ofa, ports, Action, Instruction, LearnDst, LearnSrc};
use openflow::message::FlowMod;
use openflow::types::MatchRepr;
use openflow::{Field, Match, MatchField, OfpErr};

use super::flow::{loc, PKey};
use super::ofpact::{bits_mask, Ofpact, Refused, SubField};

/// NX_LEARN_F_* flags.
pub mod flags {
    pub const SEND_FLOW_REM: u16 = 1;
    pub const DELETE_LEARNED: u16 = 2;
    pub const WRITE_RESULT: u16 = 4;
}

/// Where a spec's value comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Src {
    Imm(u128),
    Field(SubField),
}

/// What a spec's value becomes in the learned flow.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Dst {
    /// A match on these bits.
    Match(SubField),
    /// A `load` of the value into these bits (an action of the learned flow).
    Load(SubField),
    /// `output` to the port the value names.
    Output,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Spec {
    pub n_bits: u32,
    pub src: Src,
    pub dst: Dst,
}

/// A checked learn action.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LearnAction {
    pub table: u8,
    pub priority: u16,
    pub idle_timeout: u16,
    pub hard_timeout: u16,
    pub fin_idle_timeout: u16,
    pub fin_hard_timeout: u16,
    pub cookie: u64,
    /// NX_LEARN_F_*.
    pub flags: u16,
    /// NXAST_LEARN2: most flows of (table, cookie) to learn; 0 = unlimited. Not enforced
    /// yet (see [`LearnAction::execute`]).
    pub limit: u32,
    /// NXAST_LEARN2 with write_result: where the outcome (1 = learned) is written.
    pub result_dst: Option<SubField>,
    pub specs: Vec<Spec>,
}

fn refuse<T>(why: impl Into<String>) -> Result<T, Refused> {
    Err(Refused {
        err: OfpErr::OFPBAC_BAD_ARGUMENT,
        why: why.into(),
    })
}

fn sub(header: &openflow::OxmHeader, ofs: u16, n_bits: u32) -> Result<SubField, Refused> {
    let Some(field) = Field::from_header(header) else {
        return refuse(format!("learn: unknown field {header:?}"));
    };
    let Some(l) = loc(field) else {
        return refuse(format!(
            "learn: field {} is not supported by this switch",
            field.info().name
        ));
    };
    let ofs = ofs as u32;
    if n_bits == 0 || ofs + n_bits > l.width() {
        return refuse(format!(
            "learn: bits {ofs}..{} outside {} ({} bits)",
            ofs + n_bits,
            field.info().name,
            l.width()
        ));
    }
    Ok(SubField {
        field,
        loc: l,
        ofs,
        n_bits,
    })
}

/// Big-endian immediate bytes to a number (at most 128 bits are meaningful here: no field
/// this switch has is wider).
fn imm_value(b: &[u8]) -> u128 {
    b.iter()
        .rev()
        .take(16)
        .rev()
        .fold(0u128, |v, &x| (v << 8) | x as u128)
}

impl LearnAction {
    /// Checks and compiles a learn action (OVS: decode_LEARN_common + learn_check).
    pub fn compile(l: &ofa::Learn) -> Result<LearnAction, Refused> {
        if l.table_id == 255 {
            return refuse("learn: table 255");
        }
        let mut specs = Vec::with_capacity(l.specs.len());
        for s in &l.specs {
            let n_bits = s.n_bits as u32;
            let src = match &s.src {
                LearnSrc::Immediate(b) => {
                    if n_bits > 128 && b[..b.len().saturating_sub(16)].iter().any(|&x| x != 0) {
                        return refuse("learn: immediate wider than any field");
                    }
                    Src::Imm(imm_value(b) & bits_mask(n_bits))
                }
                LearnSrc::Field { header, ofs } => Src::Field(sub(header, *ofs, n_bits)?),
            };
            let dst = match &s.dst {
                LearnDst::Match { header, ofs } => Dst::Match(sub(header, *ofs, n_bits)?),
                LearnDst::Load { header, ofs } => {
                    let d = sub(header, *ofs, n_bits)?;
                    if matches!(
                        d.field,
                        Field::EthType | Field::IpProto | Field::ConjId | Field::CtState
                    ) {
                        return refuse(format!(
                            "learn: load into read-only {}",
                            d.field.info().name
                        ));
                    }
                    Dst::Load(d)
                }
                LearnDst::Output => {
                    if matches!(src, Src::Imm(_)) {
                        // OVS: an output spec takes its port from a field
                        return refuse("learn: output from an immediate");
                    }
                    Dst::Output
                }
            };
            specs.push(Spec { n_bits, src, dst });
        }
        let (limit, result_dst) = match &l.learn2 {
            Some((limit, ofs, hdr)) => {
                let rd = match hdr {
                    Some(h) if l.flags & flags::WRITE_RESULT != 0 => Some(sub(h, *ofs, 1)?),
                    _ => None,
                };
                (*limit, rd)
            }
            None => (0, None),
        };
        Ok(LearnAction {
            table: l.table_id,
            priority: l.priority,
            idle_timeout: l.idle_timeout,
            hard_timeout: l.hard_timeout,
            fin_idle_timeout: l.fin_idle_timeout,
            fin_hard_timeout: l.fin_hard_timeout,
            cookie: l.cookie,
            flags: l.flags,
            limit,
            result_dst,
            specs,
        })
    }

    /// The source bits the learned flow depends on, to un-wildcard (OVS: learn_mask).
    pub fn mask(&self, wc: &mut PKey) {
        for s in &self.specs {
            if let Src::Field(sf) = &s.src {
                sf.loc.or_mask(wc, sf.mask());
            }
        }
    }

    /// Builds the flow this action learns from pipeline key `flow` (OVS: learn_execute): an
    /// OpenFlow 1.5 ADD, applied by the control thread as an add-or-refresh.
    pub fn execute(&self, flow: &PKey, bridge: u8) -> Learned {
        // per field: (value, mask) in field coordinates, in order of first appearance
        let mut fields: Vec<(SubField, u128, u128)> = Vec::new();
        let mut acts = Vec::new();
        if self.fin_idle_timeout != 0 || self.fin_hard_timeout != 0 {
            acts.push(Action::FinTimeout {
                idle: self.fin_idle_timeout,
                hard: self.fin_hard_timeout,
            });
        }
        for s in &self.specs {
            let v = match &s.src {
                Src::Imm(x) => *x,
                Src::Field(sf) => sf.get(flow),
            } & bits_mask(s.n_bits);
            match &s.dst {
                Dst::Match(d) => {
                    let m = d.mask();
                    match fields.iter_mut().find(|(f, _, _)| f.field == d.field) {
                        Some((_, val, mask)) => {
                            *val = (*val & !m) | ((v << d.ofs) & m);
                            *mask |= m;
                        }
                        None => fields.push((*d, (v << d.ofs) & m, m)),
                    }
                }
                Dst::Load(d) => acts.push(load_action(d, v)),
                Dst::Output => {
                    // 16-bit OpenFlow 1.0 ports: physical ones and a few reserved ones
                    if s.n_bits <= 16 || v >> 16 == 0 {
                        let p = v as u16;
                        let ok = p < 0xff00 || [0xfff8, 0xfffb, 0xfffc, 0xfffe].contains(&p);
                        if ok {
                            acts.push(Action::Output {
                                port: ofa::port_from_of10(p),
                                max_len: 0,
                            });
                        }
                    }
                }
            }
        }
        let mut m = Match::default();
        for (sf, v, mk) in fields {
            if let Some(f) = match_field(&sf, v, mk) {
                m.fields.push(f);
            }
        }
        let fm = FlowMod {
            cookie: self.cookie,
            cookie_mask: 0,
            table_id: self.table,
            command: 0,
            idle_timeout: self.idle_timeout,
            hard_timeout: self.hard_timeout,
            priority: self.priority,
            buffer_id: 0xffff_ffff,
            out_port: ports::ANY,
            out_group: 0xffff_ffff,
            flags: if self.flags & flags::SEND_FLOW_REM != 0 {
                1
            } else {
                0
            },
            importance: 0,
            match_: MatchRepr::Oxm(m),
            instructions: vec![Instruction::ApplyActions(acts)],
        };
        let mut h = std::collections::hash_map::DefaultHasher::new();
        bridge.hash(&mut h);
        fm.hash(&mut h);
        Learned {
            bridge,
            hash: h.finish(),
            fm,
        }
    }
}

/// A match entry for bits `mask` of `sf`'s field holding `value` (field coordinates).
fn match_field(sf: &SubField, value: u128, mask: u128) -> Option<MatchField> {
    let w = (sf.field.info().width as usize).clamp(1, 16);
    let vb = value.to_be_bytes()[16 - w..].to_vec();
    let full = sf.loc.full();
    let mb = if mask & full == full {
        None
    } else {
        Some(mask.to_be_bytes()[16 - w..].to_vec())
    };
    MatchField::new(sf.field, 6, vb, mb)
}

/// `load:V->DST[ofs..ofs+n]`: NXAST_REG_LOAD when the field has a 32-bit header (as OVS
/// encodes learned loads), else a masked set_field (NXAST_REG_LOAD2).
fn load_action(d: &SubField, v: u128) -> Action {
    let info = d.field.info();
    let hdr = info.nxm.or(info.oxm.map(|(h, _)| h));
    if let Some(h) = hdr.filter(|h| h.class != 0xffff && d.n_bits <= 64) {
        return Action::RegLoad {
            ofs_nbits: ((d.ofs as u16) << 6) | (d.n_bits as u16 - 1),
            dst: ((h.class as u32) << 16) | ((h.field as u32) << 9) | h.length as u32,
            value: v as u64,
        };
    }
    let w = (info.width as usize).clamp(1, 16);
    let mf = MatchField::new(
        d.field,
        6,
        (v << d.ofs).to_be_bytes()[16 - w..].to_vec(),
        Some(d.mask().to_be_bytes()[16 - w..].to_vec()),
    );
    match mf {
        Some(mf) => Action::RegLoad2(mf),
        None => Action::Note(Vec::new()),
    }
}

/// A flow to learn, as computed by translation and applied by the control thread.
#[derive(Debug)]
pub struct Learned {
    pub bridge: u8,
    /// Hash of the bridge and flow mod, for the PMDs' de-duplication.
    pub hash: u64,
    pub fm: FlowMod,
}

impl PartialEq for Learned {
    fn eq(&self, o: &Self) -> bool {
        self.bridge == o.bridge && self.fm == o.fm
    }
}

/// The (table, cookie) of every learn action with `delete_learned` in `acts`.
pub fn delete_learned_cookies(acts: &[Ofpact], out: &mut Vec<(u8, u64)>) {
    for a in acts {
        match a {
            Ofpact::Learn(l) if l.flags & flags::DELETE_LEARNED != 0 => {
                out.push((l.table, l.cookie))
            }
            Ofpact::Clone(inner) | Ofpact::WriteActions(inner) => {
                delete_learned_cookies(inner, out)
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::flow::PKEY_WORDS;
    use openflow::action::LearnSpec;
    use openflow::OxmHeader;

    fn nxm(f: Field) -> OxmHeader {
        f.info().nxm.or(f.info().oxm.map(|(h, _)| h)).unwrap()
    }

    fn learn(specs: Vec<LearnSpec>) -> ofa::Learn {
        ofa::Learn {
            idle_timeout: 30,
            hard_timeout: 0,
            priority: 10,
            cookie: 0x1234,
            flags: flags::DELETE_LEARNED,
            table_id: 1,
            fin_idle_timeout: 0,
            fin_hard_timeout: 0,
            learn2: None,
            specs,
        }
    }

    fn set(k: &mut PKey, f: Field, v: u128) {
        loc(f).unwrap().set(k, v);
    }

    fn acts(l: &Learned) -> &[Action] {
        match &l.fm.instructions[..] {
            [Instruction::ApplyActions(a)] => a,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn l2_learning_spec_matches_source_and_outputs_to_in_port() {
        // learn(table=1,priority=10,idle_timeout=30,
        //       NXM_OF_ETH_DST[]=NXM_OF_ETH_SRC[],output:NXM_OF_IN_PORT[])
        let l = LearnAction::compile(&learn(vec![
            LearnSpec {
                n_bits: 48,
                src: LearnSrc::Field {
                    header: nxm(Field::EthSrc),
                    ofs: 0,
                },
                dst: LearnDst::Match {
                    header: nxm(Field::EthDst),
                    ofs: 0,
                },
            },
            LearnSpec {
                n_bits: 16,
                src: LearnSrc::Field {
                    header: nxm(Field::InPort),
                    ofs: 0,
                },
                dst: LearnDst::Output,
            },
        ]))
        .unwrap();
        let mut k = [0u64; PKEY_WORDS];
        set(&mut k, Field::EthSrc, 0x0200_0000_00aa);
        set(&mut k, Field::EthDst, 0x0200_0000_00bb);
        set(&mut k, Field::InPortOxm, 3);
        let got = l.execute(&k, 0);
        assert_eq!(got.fm.table_id, 1);
        assert_eq!(got.fm.priority, 10);
        assert_eq!(got.fm.idle_timeout, 30);
        assert_eq!(got.fm.cookie, 0x1234);
        let m = got.fm.match_.to_match();
        assert_eq!(m.fields.len(), 1);
        assert_eq!(m.fields[0].field, Field::EthDst);
        assert_eq!(m.fields[0].value, vec![2, 0, 0, 0, 0, 0xaa]);
        assert_eq!(m.fields[0].mask, None);
        assert_eq!(
            acts(&got),
            &[Action::Output {
                port: 3,
                max_len: 0
            }]
        );
        // the source fields are what the megaflow must match
        let mut wc = [0u64; PKEY_WORDS];
        l.mask(&mut wc);
        assert_eq!(loc(Field::EthSrc).unwrap().get(&wc), 0xffff_ffff_ffff);
        assert_eq!(loc(Field::InPortOxm).unwrap().get(&wc), 0xffff);
        assert_eq!(loc(Field::EthDst).unwrap().get(&wc), 0);
        // same input, same flow, same hash; another source, another hash
        assert_eq!(l.execute(&k, 0).hash, got.hash);
        set(&mut k, Field::EthSrc, 0x0200_0000_00cc);
        assert_ne!(l.execute(&k, 0).hash, got.hash);
        // a reserved port that cannot be output to is left out (OVS)
        set(&mut k, Field::InPortOxm, 0xfff0);
        assert!(acts(&l.execute(&k, 0)).is_empty());
    }

    #[test]
    fn ovn_hairpin_spec_immediates_field_copies_and_bit_loads() {
        // learn(table=69,delete_learned,cookie=0x2b959687,OXM_OF_METADATA[],eth_type=0x800,
        //   NXM_OF_IP_SRC[],ip_dst=10.0.0.100,nw_proto=6,NXM_OF_TCP_SRC[]=NXM_OF_TCP_DST[],
        //   load:0x1->NXM_NX_REG10[7])
        let f = |field: Field| LearnSrc::Field {
            header: nxm(field),
            ofs: 0,
        };
        let mtch = |field: Field| LearnDst::Match {
            header: nxm(field),
            ofs: 0,
        };
        let mut wire = learn(vec![
            LearnSpec {
                n_bits: 64,
                src: f(Field::Metadata),
                dst: mtch(Field::Metadata),
            },
            LearnSpec {
                n_bits: 16,
                src: LearnSrc::Immediate(vec![0x08, 0x00]),
                dst: mtch(Field::EthType),
            },
            LearnSpec {
                n_bits: 32,
                src: f(Field::IpSrc),
                dst: mtch(Field::IpSrc),
            },
            LearnSpec {
                n_bits: 32,
                src: LearnSrc::Immediate(vec![10, 0, 0, 100]),
                dst: mtch(Field::IpDst),
            },
            LearnSpec {
                n_bits: 8,
                src: LearnSrc::Immediate(vec![0, 6]),
                dst: mtch(Field::IpProto),
            },
            LearnSpec {
                n_bits: 16,
                src: f(Field::TcpDst),
                dst: mtch(Field::TcpSrc),
            },
            LearnSpec {
                n_bits: 1,
                src: LearnSrc::Immediate(vec![0, 1]),
                dst: LearnDst::Load {
                    header: nxm(Field::Reg(10)),
                    ofs: 7,
                },
            },
        ]);
        wire.table_id = 69;
        wire.cookie = 0x2b95_9687;
        wire.idle_timeout = 0;
        let l = LearnAction::compile(&wire).unwrap();
        let mut k = [0u64; PKEY_WORDS];
        set(&mut k, Field::Metadata, 5);
        set(&mut k, Field::EthType, 0x800);
        set(&mut k, Field::IpSrc, 0x0a00_0005);
        set(&mut k, Field::IpDst, 0x0a00_0064);
        set(&mut k, Field::IpProto, 6);
        set(&mut k, Field::TcpSrc, 40000);
        set(&mut k, Field::TcpDst, 80);
        let got = l.execute(&k, 0);
        let m = got.fm.match_.to_match();
        let vals: Vec<(Field, u128)> = m.fields.iter().map(|f| (f.field, f.value_u128())).collect();
        assert_eq!(
            vals,
            vec![
                (Field::Metadata, 5),
                (Field::EthType, 0x800),
                (Field::IpSrc, 0x0a00_0005),
                (Field::IpDst, 0x0a00_0064),
                (Field::IpProto, 6),
                (Field::TcpSrc, 80),
            ]
        );
        assert!(m.fields.iter().all(|f| f.mask.is_none()));
        // load:0x1->NXM_NX_REG10[7]: NXAST_REG_LOAD with ofs 7, 1 bit
        assert_eq!(
            acts(&got),
            &[Action::RegLoad {
                ofs_nbits: 7 << 6,
                dst: 0x0001_1404,
                value: 1
            }]
        );
        // and it normalizes to setting exactly bit 7 of reg10
        let o = super::super::ofpact::from_actions(acts(&got), 0).unwrap();
        match &o[0] {
            Ofpact::SetField {
                field, value, mask, ..
            } => {
                assert_eq!(*field, Field::Reg(10));
                assert_eq!((*value, *mask), (0x80, 0x80));
            }
            other => panic!("{other:?}"),
        }
        let mut cookies = Vec::new();
        delete_learned_cookies(&[Ofpact::Learn(std::sync::Arc::new(l))], &mut cookies);
        assert_eq!(cookies, vec![(69, 0x2b95_9687)]);
    }

    #[test]
    fn subfield_copies_with_offsets_merge_into_one_masked_match() {
        // NXM_NX_REG0[8..15]=NXM_OF_IP_SRC[0..7], NXM_NX_REG0[0..3]=0x5,
        // load:NXM_OF_ETH_SRC[16..47]->NXM_NX_REG1[], load:NXM_NX_REG2[4..7]->NXM_NX_REG3[28..31]
        let l = LearnAction::compile(&learn(vec![
            LearnSpec {
                n_bits: 8,
                src: LearnSrc::Field {
                    header: nxm(Field::IpSrc),
                    ofs: 0,
                },
                dst: LearnDst::Match {
                    header: nxm(Field::Reg(0)),
                    ofs: 8,
                },
            },
            LearnSpec {
                n_bits: 4,
                src: LearnSrc::Immediate(vec![0, 5]),
                dst: LearnDst::Match {
                    header: nxm(Field::Reg(0)),
                    ofs: 0,
                },
            },
            LearnSpec {
                n_bits: 32,
                src: LearnSrc::Field {
                    header: nxm(Field::EthSrc),
                    ofs: 16,
                },
                dst: LearnDst::Load {
                    header: nxm(Field::Reg(1)),
                    ofs: 0,
                },
            },
            LearnSpec {
                n_bits: 4,
                src: LearnSrc::Field {
                    header: nxm(Field::Reg(2)),
                    ofs: 4,
                },
                dst: LearnDst::Load {
                    header: nxm(Field::Reg(3)),
                    ofs: 28,
                },
            },
        ]))
        .unwrap();
        let mut k = [0u64; PKEY_WORDS];
        set(&mut k, Field::IpSrc, 0x0a00_00c7);
        set(&mut k, Field::EthSrc, 0x1122_3344_5566);
        set(&mut k, Field::Reg(2), 0xa0);
        let got = l.execute(&k, 0);
        let m = got.fm.match_.to_match();
        assert_eq!(m.fields.len(), 1);
        assert_eq!(m.fields[0].field, Field::Reg(0));
        assert_eq!(m.fields[0].value_u128(), 0xc705);
        assert_eq!(m.fields[0].mask_u128(), 0xff0f);
        let o = super::super::ofpact::from_actions(acts(&got), 0).unwrap();
        let sets: Vec<(Field, u128, u128)> = o
            .iter()
            .map(|a| match a {
                Ofpact::SetField {
                    field, value, mask, ..
                } => (*field, *value, *mask),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(
            sets,
            vec![
                (Field::Reg(1), 0x1122_3344, 0xffff_ffff),
                (Field::Reg(3), 0xa000_0000, 0xf000_0000),
            ]
        );
        let mut wc = [0u64; PKEY_WORDS];
        l.mask(&mut wc);
        assert_eq!(loc(Field::IpSrc).unwrap().get(&wc), 0xff);
        assert_eq!(loc(Field::EthSrc).unwrap().get(&wc), 0xffff_ffff_0000);
    }

    #[test]
    fn bad_specs_are_refused() {
        let bad_range = learn(vec![LearnSpec {
            n_bits: 16,
            src: LearnSrc::Field {
                header: nxm(Field::IpProto),
                ofs: 0,
            },
            dst: LearnDst::Match {
                header: nxm(Field::IpProto),
                ofs: 0,
            },
        }]);
        assert!(LearnAction::compile(&bad_range).is_err());
        let mut t255 = learn(Vec::new());
        t255.table_id = 255;
        assert!(LearnAction::compile(&t255).is_err());
    }
}
