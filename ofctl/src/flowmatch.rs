//! [`FlowMatch`]: a match as Open vSwitch holds it (`struct match`: flow values plus
//! wildcard masks), and the three things done with it — set fields from text or from the
//! wire with OVS's semantics, write it out as NXM/OXM in OVS's exact field order for a given
//! OpenFlow version, and print it as `ovs-ofctl` does (`match_format`).
//!
//! Why not keep the codec's [`openflow::Match`] field list: several names share one piece
//! of the flow (`arp_op` and `nw_proto`, `icmp_type` and `tp_src`, `dl_vlan`, `vlan_pcp` and
//! `vlan_tci`, `nw_tos`/`ip_dscp`/`nw_ecn`, `reg`/`xreg`/`xxreg`), the printed order is fixed
//! by the flow layout rather than by the input, and the names printed depend on `dl_type`.
//! Holding the flow the way OVS does makes "parse then print" and "decode then print"
//! reproduce ovs-ofctl's text, and makes two matches comparable for `diff-flows`.

use std::collections::BTreeMap;

use openflow::oxm::{class, OxmHeader};
use openflow::{Field, Match, MatchField};

use crate::field::{proto, Mf, Prereq};
use crate::value::{
    be_to_u128, c_hex, ct_state_name, format_flags, format_flags_masked, format_frag,
    format_ipv4_masked, format_ipv6_masked, format_mac, format_packet_type, format_port,
    port_from_ofp11, port_to_ofp11, put_hex, tcp_flag_name, tun_flag_name, u128_to_be, FieldValue,
    PortMap,
};

/// A piece of the flow (a member of OVS's `struct flow`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Slot {
    PktMark,
    RecircId,
    DpHash,
    ConjId,
    SkbPriority,
    ActsetOutput,
    CtState,
    CtZone,
    CtMark,
    CtLabel,
    CtNwSrc,
    CtNwDst,
    CtIpv6Src,
    CtIpv6Dst,
    CtNwProto,
    CtTpSrc,
    CtTpDst,
    PacketType,
    DlType,
    NwProto,
    Reg(u8),
    TunId,
    TunSrc,
    TunDst,
    TunIpv6Src,
    TunIpv6Dst,
    TunGbpId,
    TunGbpFlags,
    TunTos,
    TunTtl,
    TunErspanVer,
    TunErspanIdx,
    TunErspanDir,
    TunErspanHwid,
    TunGtpuFlags,
    TunGtpuMsgtype,
    TunFlags,
    Metadata,
    InPort,
    VlanTci,
    DlSrc,
    DlDst,
    Ipv6Src,
    Ipv6Dst,
    Ipv6Label,
    NwSrc,
    NwDst,
    NshFlags,
    NshTtl,
    NshMdtype,
    NshNp,
    NshPathHdr,
    NshC(u8),
    ArpSha,
    ArpTha,
    NwTos,
    NwTtl,
    MplsLse,
    NwFrag,
    TpSrc,
    TpDst,
    NdTarget,
    NdReserved,
    TcpFlags,
}

/// Where a field lives: slot, bit offset and the field's bits (unshifted).
fn loc(mf: Mf) -> Option<(Slot, u32, u128)> {
    use Mf::*;
    let full = |n: u32| -> u128 {
        if n >= 128 {
            u128::MAX
        } else {
            (1u128 << n) - 1
        }
    };
    let s = |slot: Slot, bits: u32| Some((slot, 0, full(bits)));
    match mf {
        DpHash => s(Slot::DpHash, 32),
        RecircId => s(Slot::RecircId, 32),
        PacketType => s(Slot::PacketType, 32),
        ConjId => s(Slot::ConjId, 32),
        TunId => s(Slot::TunId, 64),
        TunSrc => s(Slot::TunSrc, 32),
        TunDst => s(Slot::TunDst, 32),
        TunIpv6Src => s(Slot::TunIpv6Src, 128),
        TunIpv6Dst => s(Slot::TunIpv6Dst, 128),
        TunFlags => s(Slot::TunFlags, 1),
        TunTtl => s(Slot::TunTtl, 8),
        TunTos => s(Slot::TunTos, 8),
        TunGbpId => s(Slot::TunGbpId, 16),
        TunGbpFlags => s(Slot::TunGbpFlags, 8),
        TunErspanIdx => s(Slot::TunErspanIdx, 32),
        TunErspanVer => s(Slot::TunErspanVer, 8),
        TunErspanDir => s(Slot::TunErspanDir, 8),
        TunErspanHwid => s(Slot::TunErspanHwid, 8),
        TunGtpuFlags => s(Slot::TunGtpuFlags, 8),
        TunGtpuMsgtype => s(Slot::TunGtpuMsgtype, 8),
        Metadata => s(Slot::Metadata, 64),
        InPort => s(Slot::InPort, 16),
        SkbPriority => s(Slot::SkbPriority, 32),
        PktMark => s(Slot::PktMark, 32),
        CtState => s(Slot::CtState, 8),
        CtZone => s(Slot::CtZone, 16),
        CtMark => s(Slot::CtMark, 32),
        CtLabel => s(Slot::CtLabel, 128),
        CtNwProto => s(Slot::CtNwProto, 8),
        CtNwSrc => s(Slot::CtNwSrc, 32),
        CtNwDst => s(Slot::CtNwDst, 32),
        CtIpv6Src => s(Slot::CtIpv6Src, 128),
        CtIpv6Dst => s(Slot::CtIpv6Dst, 128),
        CtTpSrc => s(Slot::CtTpSrc, 16),
        CtTpDst => s(Slot::CtTpDst, 16),
        Reg(n) => s(Slot::Reg(n), 32),
        EthSrc => s(Slot::DlSrc, 48),
        EthDst => s(Slot::DlDst, 48),
        EthType => s(Slot::DlType, 16),
        VlanTci => s(Slot::VlanTci, 16),
        VlanVid => Some((Slot::VlanTci, 0, 0x1fff)),
        MplsLabel => Some((Slot::MplsLse, 12, 0xfffff)),
        MplsTc => Some((Slot::MplsLse, 9, 7)),
        MplsBos => Some((Slot::MplsLse, 8, 1)),
        MplsTtl => Some((Slot::MplsLse, 0, 0xff)),
        Ipv4Src | ArpSpa => s(Slot::NwSrc, 32),
        Ipv4Dst | ArpTpa => s(Slot::NwDst, 32),
        Ipv6Src => s(Slot::Ipv6Src, 128),
        Ipv6Dst => s(Slot::Ipv6Dst, 128),
        Ipv6Label => s(Slot::Ipv6Label, 32),
        IpProto | ArpOp => s(Slot::NwProto, 8),
        IpDscp => Some((Slot::NwTos, 0, 0xfc)),
        IpDscpShifted => Some((Slot::NwTos, 2, 0x3f)),
        IpEcn => Some((Slot::NwTos, 0, 3)),
        IpTtl => s(Slot::NwTtl, 8),
        IpFrag => s(Slot::NwFrag, 2),
        ArpSha | NdSll => s(Slot::ArpSha, 48),
        ArpTha | NdTll => s(Slot::ArpTha, 48),
        TcpSrc | UdpSrc | SctpSrc | Icmpv4Type | Icmpv6Type => s(Slot::TpSrc, 16),
        TcpDst | UdpDst | SctpDst | Icmpv4Code | Icmpv6Code => s(Slot::TpDst, 16),
        TcpFlags | NdOptionsType => s(Slot::TcpFlags, 16),
        NdTarget => s(Slot::NdTarget, 128),
        NdReserved => s(Slot::NdReserved, 32),
        NshFlags => s(Slot::NshFlags, 8),
        NshMdtype => s(Slot::NshMdtype, 8),
        NshNp => s(Slot::NshNp, 8),
        NshSpi => Some((Slot::NshPathHdr, 8, 0xffffff)),
        NshSi => Some((Slot::NshPathHdr, 0, 0xff)),
        NshC(n) => s(Slot::NshC(n), 32),
        NshTtl => s(Slot::NshTtl, 8),
        DlVlan | DlVlanPcp | VlanPcp | Xreg(_) | Xxreg(_) | TunMetadata(_) | InPortOxm
        | ActsetOutput => None,
    }
}

const ETH_TYPE_IP: u16 = 0x0800;
const ETH_TYPE_IPV6: u16 = 0x86dd;
const ETH_TYPE_ARP: u16 = 0x0806;
const ETH_TYPE_RARP: u16 = 0x8035;
const ETH_TYPE_MPLS: u16 = 0x8847;
const ETH_TYPE_MPLS_MCAST: u16 = 0x8848;
const ETH_TYPE_NSH: u16 = 0x894f;

/// A match: per-slot value and mask (value always within mask; absent = wildcarded), plus
/// tunnel metadata options (value, mask), each as long as the option.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FlowMatch {
    slots: BTreeMap<Slot, (u128, u128)>,
    tun_md: BTreeMap<u8, (Vec<u8>, Vec<u8>)>,
}

impl FlowMatch {
    pub fn new() -> Self {
        Self::default()
    }

    /// True for the catch-all match.
    pub fn is_catchall(&self) -> bool {
        self.slots.is_empty() && self.tun_md.is_empty()
    }

    /// Value and mask of a slot ((0, 0) when wildcarded).
    pub fn get(&self, slot: Slot) -> (u128, u128) {
        self.slots.get(&slot).copied().unwrap_or((0, 0))
    }

    /// Flow value of a slot (what OVS's `match->flow` holds: 0 when wildcarded).
    pub fn val(&self, slot: Slot) -> u128 {
        self.get(slot).0
    }

    /// Mask of a slot.
    pub fn mask(&self, slot: Slot) -> u128 {
        self.get(slot).1
    }

    /// Sets a slot's value and mask (normalised: value within mask; zero mask removes).
    pub fn set(&mut self, slot: Slot, value: u128, mask: u128) {
        if mask == 0 {
            self.slots.remove(&slot);
        } else {
            self.slots.insert(slot, (value & mask, mask));
        }
    }

    /// Writes `bits` (unshifted) of `value` at `shift` in `slot` under `mask`, keeping the
    /// slot's other bits.
    fn put_bits(&mut self, slot: Slot, shift: u32, bits: u128, value: u128, mask: u128) {
        let (mut v, mut m) = self.get(slot);
        let field = bits << shift;
        let mask = (mask & bits) << shift;
        let value = (value & bits) << shift;
        v = (v & !field) | (value & mask);
        m = (m & !field) | mask;
        self.set(slot, v, m);
    }

    fn set_default_packet_type(&mut self) {
        self.set(Slot::PacketType, 0, u32::MAX as u128);
    }

    /// `match_has_default_packet_type`.
    pub fn has_default_packet_type(&self) -> bool {
        self.get(Slot::PacketType) == (0, u32::MAX as u128)
    }

    /// Tunnel metadata option `i` (value, mask).
    pub fn tun_metadata(&self, i: u8) -> Option<&(Vec<u8>, Vec<u8>)> {
        self.tun_md.get(&i)
    }

    /// Sets field `mf` from a value and mask, with Open vSwitch's `mf_set` semantics
    /// (exact, wildcard, or masked; composite fields update only their bits).  Returns the
    /// protocols that can express what was set.
    pub fn set_field(&mut self, mf: Mf, fv: &FieldValue) -> Result<u32, String> {
        let info = mf.info();
        let exact = fv.is_exact();
        let wild = fv.is_wild() && !matches!(mf, Mf::TunMetadata(_));
        let usable = if exact {
            self.set_value(mf, &fv.value)?;
            mf.usable_exact()
        } else if wild {
            self.set_wild(mf);
            proto::ANY
        } else {
            if !info.maskable {
                return Ok(proto::NONE);
            }
            self.set_masked(mf, &fv.value, &fv.mask)?;
            let mask32 = be_to_u128(&fv.mask) as u32;
            let cidr = mask32.leading_ones() + mask32.trailing_zeros() == 32;
            if mf.usable_bitwise() == mf.usable_cidr() || cidr {
                mf.usable_cidr()
            } else {
                mf.usable_bitwise()
            }
        };
        if info.prereq != Prereq::None {
            self.set_default_packet_type();
        }
        Ok(usable)
    }

    fn set_value(&mut self, mf: Mf, value: &[u8]) -> Result<(), String> {
        let v = be_to_u128(value);
        match mf {
            Mf::DlVlan => {
                let vid = v as u16;
                let (tci, m) = self.get(Slot::VlanTci);
                if vid == 0xffff {
                    self.set(Slot::VlanTci, 0, 0xffff);
                } else {
                    let tci = (tci & !0x0fff) | (vid as u128 & 0x0fff) | 0x1000;
                    self.set(Slot::VlanTci, tci, m | 0x1fff);
                }
            }
            Mf::DlVlanPcp | Mf::VlanPcp => {
                let (tci, m) = self.get(Slot::VlanTci);
                let tci = (tci & !0xe000) | (((v & 7) << 13) | 0x1000);
                self.set(Slot::VlanTci, tci, m | 0xf000);
            }
            // ICMP type/code and ND option type set the whole 16-bit L4 slot.
            Mf::Icmpv4Type | Mf::Icmpv6Type => self.set(Slot::TpSrc, v & 0xff, 0xffff),
            Mf::Icmpv4Code | Mf::Icmpv6Code => self.set(Slot::TpDst, v & 0xff, 0xffff),
            Mf::NdOptionsType => self.set(Slot::TcpFlags, v & 0xff, 0xffff),
            _ => self.set_masked(mf, value, &vec![0xff; value.len()])?,
        }
        Ok(())
    }

    fn set_wild(&mut self, mf: Mf) {
        match mf {
            Mf::DlVlan | Mf::VlanVid => {
                let (tci, m) = self.get(Slot::VlanTci);
                if m & 0xe000 != 0 {
                    self.set(Slot::VlanTci, tci & !0x0fff, m & !0x0fff);
                } else {
                    self.set(Slot::VlanTci, 0, 0);
                }
            }
            Mf::DlVlanPcp | Mf::VlanPcp => {
                let (tci, m) = self.get(Slot::VlanTci);
                if m & 0x0fff != 0 {
                    self.set(Slot::VlanTci, tci & !0xe000, m & !0xe000);
                } else {
                    self.set(Slot::VlanTci, 0, 0);
                }
            }
            Mf::Xreg(_) | Mf::Xxreg(_) | Mf::InPortOxm | Mf::ActsetOutput => {
                let n = mf.n_bytes();
                let _ = self.set_masked(mf, &vec![0; n], &vec![0; n]);
            }
            Mf::TunMetadata(i) => {
                self.tun_md.remove(&i);
            }
            _ => {
                if let Some((slot, shift, bits)) = loc(mf) {
                    self.put_bits(slot, shift, bits, 0, 0);
                }
            }
        }
    }

    fn set_masked(&mut self, mf: Mf, value: &[u8], mask: &[u8]) -> Result<(), String> {
        let v = be_to_u128(value);
        let m = be_to_u128(mask);
        match mf {
            Mf::Xreg(n) => {
                for (k, shift) in [(0u8, 32u32), (1, 0)] {
                    self.set(
                        Slot::Reg(2 * n + k),
                        (v >> shift) & 0xffff_ffff,
                        (m >> shift) & 0xffff_ffff,
                    );
                }
            }
            Mf::Xxreg(n) => {
                for k in 0..4u8 {
                    let shift = 32 * (3 - k as u32);
                    self.set(
                        Slot::Reg(4 * n + k),
                        (v >> shift) & 0xffff_ffff,
                        (m >> shift) & 0xffff_ffff,
                    );
                }
            }
            Mf::InPortOxm | Mf::ActsetOutput => {
                let slot = if mf == Mf::InPortOxm {
                    Slot::InPort
                } else {
                    Slot::ActsetOutput
                };
                if m == 0 {
                    self.set(slot, 0, 0);
                } else {
                    let p = port_from_ofp11(v as u32)
                        .ok_or_else(|| format!("{}: port {} out of range", mf.name(), v))?;
                    self.set(slot, p as u128, 0xffff);
                }
            }
            Mf::VlanVid => {
                let m = m & 0x1fff;
                let (tci, old) = self.get(Slot::VlanTci);
                let tci = (tci & !0x1fff) | (v & m);
                self.set(Slot::VlanTci, tci, m | (old & 0xe000));
            }
            Mf::DlVlan | Mf::DlVlanPcp | Mf::VlanPcp => {
                self.set_value(mf, value)?;
            }
            Mf::TunMetadata(i) => {
                // Length: significant bytes of value and mask (OVS `mf_field_len`).
                let sig = |b: &[u8]| b.len() - b.iter().position(|&x| x != 0).unwrap_or(b.len());
                let is_masked = !mask.iter().all(|&x| x == 0xff);
                let mut len = sig(value);
                if is_masked {
                    len = len.max(sig(mask));
                }
                let len = len.min(value.len());
                let off = value.len() - len;
                let val: Vec<u8> = value[off..]
                    .iter()
                    .zip(&mask[off..])
                    .map(|(a, b)| a & b)
                    .collect();
                self.tun_md.insert(i, (val, mask[off..].to_vec()));
            }
            _ => {
                let (slot, shift, bits) =
                    loc(mf).ok_or_else(|| format!("{}: cannot be matched", mf.name()))?;
                self.put_bits(slot, shift, bits, v, m);
            }
        }
        Ok(())
    }

    /// The value and mask of field `mf` in this match (`mf_get`).
    pub fn get_field(&self, mf: Mf) -> FieldValue {
        let n = mf.n_bytes();
        let (v, m) = match mf {
            Mf::Xreg(i) => {
                let (h, hm) = self.get(Slot::Reg(2 * i));
                let (l, lm) = self.get(Slot::Reg(2 * i + 1));
                (h << 32 | l, hm << 32 | lm)
            }
            Mf::Xxreg(i) => {
                let mut v = 0u128;
                let mut m = 0u128;
                for k in 0..4 {
                    let (a, b) = self.get(Slot::Reg(4 * i + k));
                    v = v << 32 | a;
                    m = m << 32 | b;
                }
                (v, m)
            }
            Mf::InPortOxm | Mf::ActsetOutput => {
                let slot = if mf == Mf::InPortOxm {
                    Slot::InPort
                } else {
                    Slot::ActsetOutput
                };
                let (v, m) = self.get(slot);
                if m == 0 {
                    (0, 0)
                } else {
                    (port_to_ofp11(v as u16) as u128, u32::MAX as u128)
                }
            }
            Mf::DlVlan => {
                let (t, m) = self.get(Slot::VlanTci);
                (t & 0xfff, if m & 0xfff != 0 { 0xffff } else { 0 })
            }
            Mf::DlVlanPcp | Mf::VlanPcp => {
                let (t, m) = self.get(Slot::VlanTci);
                ((t >> 13) & 7, if m & 0xe000 != 0 { 0xff } else { 0 })
            }
            Mf::TunMetadata(i) => {
                let (val, mask) = self.tun_md.get(&i).cloned().unwrap_or_default();
                let mut v = vec![0u8; n];
                let mut m = vec![0u8; n];
                v[n - val.len()..].copy_from_slice(&val);
                m[n - mask.len()..].copy_from_slice(&mask);
                return FieldValue { value: v, mask: m };
            }
            _ => match loc(mf) {
                Some((slot, shift, bits)) => {
                    let (v, m) = self.get(slot);
                    ((v >> shift) & bits, (m >> shift) & bits)
                }
                None => (0, 0),
            },
        };
        FieldValue {
            value: u128_to_be(v, n),
            mask: u128_to_be(m, n),
        }
    }

    /// Applies every entry of a decoded NXM/OXM match (switch replies, packet-ins).
    /// The cookie pseudo-field is returned separately (value, mask).
    pub fn from_codec(m: &Match) -> Result<(FlowMatch, Option<(u64, u64)>), String> {
        let mut fm = FlowMatch::new();
        let mut cookie = None;
        for f in &m.fields {
            if f.field == Field::Cookie {
                let v = be_to_u128(&f.value) as u64;
                let mk = f.mask.as_ref().map(|x| be_to_u128(x) as u64);
                cookie = Some((v, mk.unwrap_or(u64::MAX)));
                continue;
            }
            let mf = Mf::from_codec(f.field);
            let n = mf.n_bytes();
            let fit = |b: &[u8]| -> Vec<u8> {
                let mut out = vec![0u8; n];
                let k = b.len().min(n);
                out[n - k..].copy_from_slice(&b[b.len() - k..]);
                out
            };
            let value = fit(&f.value);
            let mask = match &f.mask {
                Some(mk) => fit(mk),
                None => {
                    if let Mf::TunMetadata(_) = mf {
                        let mut mk = vec![0u8; n];
                        for b in mk.iter_mut().skip(n - f.value.len().min(n)) {
                            *b = 0xff;
                        }
                        mk
                    } else {
                        vec![0xff; n]
                    }
                }
            };
            if let Mf::TunMetadata(i) = mf {
                let len = f.value.len().min(n);
                fm.tun_md.insert(
                    i,
                    (
                        value[n - len..]
                            .iter()
                            .zip(&mask[n - len..])
                            .map(|(a, b)| a & b)
                            .collect(),
                        mask[n - len..].to_vec(),
                    ),
                );
                continue;
            }
            fm.set_field(mf, &FieldValue { value, mask })?;
        }
        Ok((fm, cookie))
    }

    /// Encodes as NXM (`oxm == 0`) or OXM for OpenFlow `oxm` (3..=6), in `nx_put_raw`'s
    /// order, with the optional cookie pseudo-field (NXM flow mods and stats requests).
    pub fn to_codec(&self, oxm: u8, cookie: u64, cookie_mask: u64) -> Result<Match, String> {
        let mut out = Match::default();
        let mut implied_ethernet = false;
        let mut put = |mf: Mf, value: u128, mask: Option<u128>| -> Result<(), String> {
            let n = mf.n_bytes();
            let h = mf
                .header_for(oxm)
                .ok_or_else(|| format!("{}: field cannot be encoded", mf.name()))?;
            let field = mf
                .to_codec()
                .ok_or_else(|| format!("{}: field cannot be encoded", mf.name()))?;
            out.fields.push(MatchField {
                field,
                header: h.header,
                value: u128_to_be(value, n),
                mask: mask.map(|m| u128_to_be(m, n)),
            });
            if mf.info().prereq != Prereq::None {
                implied_ethernet = true;
            }
            Ok(())
        };
        // nxm_put: skip when wildcarded, exact without mask, else masked.
        let full = |mf: Mf| -> u128 {
            let b = mf.n_bytes() * 8;
            if b >= 128 {
                u128::MAX
            } else {
                (1u128 << b) - 1
            }
        };
        macro_rules! putm {
            ($mf:expr, $v:expr, $m:expr) => {{
                let (v, m): (u128, u128) = ($v, $m);
                if m != 0 {
                    if m == full($mf) {
                        put($mf, v, None)?;
                    } else {
                        put($mf, v, Some(m))?;
                    }
                }
            }};
        }
        let g = |s: Slot| self.get(s);
        let dl_type = self.val(Slot::DlType) as u16;

        let (pt, ptm) = g(Slot::PacketType);
        if ptm != 0 && !self.has_default_packet_type() {
            putm!(Mf::PacketType, pt, ptm);
        }
        let (v, m) = g(Slot::DpHash);
        putm!(Mf::DpHash, v, m);
        let (v, m) = g(Slot::RecircId);
        if m != 0 {
            put(Mf::RecircId, v, None)?;
        }
        let (v, m) = g(Slot::ConjId);
        if m != 0 {
            put(Mf::ConjId, v, None)?;
        }
        let (v, m) = g(Slot::InPort);
        if m != 0 {
            if oxm != 0 {
                put(Mf::InPortOxm, port_to_ofp11(v as u16) as u128, None)?;
            } else {
                put(Mf::InPort, v, None)?;
            }
        }
        let (v, m) = g(Slot::ActsetOutput);
        if m != 0 {
            put(Mf::ActsetOutput, port_to_ofp11(v as u16) as u128, None)?;
        }
        let (v, m) = g(Slot::DlSrc);
        putm!(Mf::EthSrc, v, m);
        let (v, m) = g(Slot::DlDst);
        putm!(Mf::EthDst, v, m);
        let (v, m) = g(Slot::DlType);
        putm!(Mf::EthType, v, m);

        let (tci, tm) = g(Slot::VlanTci);
        if oxm != 0 {
            let vid = tci & 0x1fff;
            let mask = tm & 0x1fff;
            if mask == 0x1fff {
                put(Mf::VlanVid, vid, None)?;
            } else if mask != 0 {
                put(Mf::VlanVid, vid, Some(mask))?;
            }
            if vid != 0 && (tm >> 13) & 7 != 0 {
                put(Mf::VlanPcp, (tci >> 13) & 7, None)?;
            }
        } else {
            putm!(Mf::VlanTci, tci, tm);
        }

        if dl_type == ETH_TYPE_MPLS || dl_type == ETH_TYPE_MPLS_MCAST {
            let (lse, lm) = g(Slot::MplsLse);
            if lm & 0xe00 != 0 {
                put(Mf::MplsTc, (lse >> 9) & 7, None)?;
            }
            if lm & 0x100 != 0 {
                put(Mf::MplsBos, (lse >> 8) & 1, None)?;
            }
            if lm & 0xff != 0 {
                put(Mf::MplsTtl, lse & 0xff, None)?;
            }
            if lm & 0xffff_f000 != 0 {
                put(Mf::MplsLabel, lse >> 12, None)?;
            }
        }

        if dl_type == ETH_TYPE_IP || dl_type == ETH_TYPE_IPV6 {
            if dl_type == ETH_TYPE_IP {
                let (v, m) = g(Slot::NwSrc);
                putm!(Mf::Ipv4Src, v, m);
                let (v, m) = g(Slot::NwDst);
                putm!(Mf::Ipv4Dst, v, m);
            } else {
                let (v, m) = g(Slot::Ipv6Src);
                putm!(Mf::Ipv6Src, v, m);
                let (v, m) = g(Slot::Ipv6Dst);
                putm!(Mf::Ipv6Dst, v, m);
            }
            let (fr, frm) = g(Slot::NwFrag);
            let frm = frm & 3;
            if frm != 0 {
                if frm == 3 {
                    put(Mf::IpFrag, fr & 3, None)?;
                } else {
                    put(Mf::IpFrag, fr & frm, Some(frm))?;
                }
            }
            let (tos, tosm) = g(Slot::NwTos);
            if tosm & 0xfc != 0 {
                if oxm != 0 {
                    put(Mf::IpDscpShifted, (tos & 0xfc) >> 2, None)?;
                } else {
                    put(Mf::IpDscp, tos & 0xfc, None)?;
                }
            }
            if tosm & 3 != 0 {
                put(Mf::IpEcn, tos & 3, None)?;
            }
            let (v, m) = g(Slot::NwTtl);
            if m != 0 {
                put(Mf::IpTtl, v, None)?;
            }
            let (v, m) = g(Slot::Ipv6Label);
            putm!(Mf::Ipv6Label, v, m);
            let (proto_v, proto_m) = g(Slot::NwProto);
            if proto_m != 0 {
                put(Mf::IpProto, proto_v, None)?;
                let (sv, sm) = g(Slot::TpSrc);
                let (dv, dm) = g(Slot::TpDst);
                match proto_v {
                    6 => {
                        putm!(Mf::TcpSrc, sv, sm);
                        putm!(Mf::TcpDst, dv, dm);
                        let (fv, fmk) = g(Slot::TcpFlags);
                        putm!(Mf::TcpFlags, fv, fmk);
                    }
                    17 => {
                        putm!(Mf::UdpSrc, sv, sm);
                        putm!(Mf::UdpDst, dv, dm);
                    }
                    132 => {
                        putm!(Mf::SctpSrc, sv, sm);
                        putm!(Mf::SctpDst, dv, dm);
                    }
                    1 if dl_type == ETH_TYPE_IP => {
                        if sm != 0 {
                            put(Mf::Icmpv4Type, sv & 0xff, None)?;
                        }
                        if dm != 0 {
                            put(Mf::Icmpv4Code, dv & 0xff, None)?;
                        }
                    }
                    58 if dl_type == ETH_TYPE_IPV6 => {
                        if sm != 0 {
                            put(Mf::Icmpv6Type, sv & 0xff, None)?;
                        }
                        if dm != 0 {
                            put(Mf::Icmpv6Code, dv & 0xff, None)?;
                        }
                        let is_nd = dv == 0 && (sv == 135 || sv == 136);
                        if is_nd {
                            let (v, m) = g(Slot::NdReserved);
                            if m != 0 {
                                put(Mf::NdReserved, v, None)?;
                            }
                            let (v, m) = g(Slot::NdTarget);
                            putm!(Mf::NdTarget, v, m);
                            let (v, m) = g(Slot::TcpFlags);
                            if m != 0 {
                                put(Mf::NdOptionsType, v & 0xff, None)?;
                            }
                            if sv == 135 {
                                let (v, m) = g(Slot::ArpSha);
                                putm!(Mf::NdSll, v, m);
                            }
                            if sv == 136 {
                                let (v, m) = g(Slot::ArpTha);
                                putm!(Mf::NdTll, v, m);
                            }
                        }
                    }
                    _ => {}
                }
            }
        } else if dl_type == ETH_TYPE_ARP || dl_type == ETH_TYPE_RARP {
            let (v, m) = g(Slot::NwProto);
            if m != 0 {
                put(Mf::ArpOp, v, None)?;
            }
            let (v, m) = g(Slot::NwSrc);
            putm!(Mf::ArpSpa, v, m);
            let (v, m) = g(Slot::NwDst);
            putm!(Mf::ArpTpa, v, m);
            let (v, m) = g(Slot::ArpSha);
            putm!(Mf::ArpSha, v, m);
            let (v, m) = g(Slot::ArpTha);
            putm!(Mf::ArpTha, v, m);
        }

        let (v, m) = g(Slot::TunId);
        putm!(Mf::TunId, v, m);
        let (v, m) = g(Slot::TunFlags);
        putm!(Mf::TunFlags, v, m);
        let (v, m) = g(Slot::TunSrc);
        putm!(Mf::TunSrc, v, m);
        let (v, m) = g(Slot::TunDst);
        putm!(Mf::TunDst, v, m);
        let (v, m) = g(Slot::TunIpv6Src);
        putm!(Mf::TunIpv6Src, v, m);
        let (v, m) = g(Slot::TunIpv6Dst);
        putm!(Mf::TunIpv6Dst, v, m);
        let (v, m) = g(Slot::TunGbpId);
        putm!(Mf::TunGbpId, v, m);
        let (v, m) = g(Slot::TunGbpFlags);
        putm!(Mf::TunGbpFlags, v, m);
        for (i, (val, mask)) in &self.tun_md {
            let masked = !mask.iter().all(|&b| b == 0xff);
            let h = Mf::TunMetadata(*i).header_for(oxm).map(|h| h.header);
            if let Some(h) = h {
                out.fields.push(MatchField {
                    field: Field::TunMetadata(*i),
                    header: h,
                    value: val.clone(),
                    mask: masked.then(|| mask.clone()),
                });
            }
        }
        let mut put = |mf: Mf, value: u128, mask: Option<u128>| -> Result<(), String> {
            let n = mf.n_bytes();
            let h = mf
                .header_for(oxm)
                .ok_or_else(|| format!("{}: field cannot be encoded", mf.name()))?;
            let field = mf
                .to_codec()
                .ok_or_else(|| format!("{}: field cannot be encoded", mf.name()))?;
            out.fields.push(MatchField {
                field,
                header: h.header,
                value: u128_to_be(value, n),
                mask: mask.map(|m| u128_to_be(m, n)),
            });
            if mf.info().prereq != Prereq::None {
                implied_ethernet = true;
            }
            Ok(())
        };
        macro_rules! putm2 {
            ($mf:expr, $slot:expr) => {{
                let (v, m) = g($slot);
                if m != 0 {
                    if m == full($mf) {
                        put($mf, v, None)?;
                    } else {
                        put($mf, v, Some(m))?;
                    }
                }
            }};
        }
        putm2!(Mf::TunErspanIdx, Slot::TunErspanIdx);
        putm2!(Mf::TunErspanVer, Slot::TunErspanVer);
        putm2!(Mf::TunErspanDir, Slot::TunErspanDir);
        putm2!(Mf::TunErspanHwid, Slot::TunErspanHwid);
        putm2!(Mf::TunGtpuFlags, Slot::TunGtpuFlags);
        putm2!(Mf::TunGtpuMsgtype, Slot::TunGtpuMsgtype);
        putm2!(Mf::NshFlags, Slot::NshFlags);
        putm2!(Mf::NshTtl, Slot::NshTtl);
        putm2!(Mf::NshMdtype, Slot::NshMdtype);
        putm2!(Mf::NshNp, Slot::NshNp);
        let (ph, phm) = g(Slot::NshPathHdr);
        let mut spi_mask = phm >> 8;
        if spi_mask == 0xffffff {
            spi_mask = 0xffff_ffff;
        }
        if spi_mask != 0 {
            if spi_mask == 0xffff_ffff {
                put(Mf::NshSpi, ph >> 8, None)?;
            } else {
                put(Mf::NshSpi, ph >> 8, Some(spi_mask))?;
            }
        }
        if phm & 0xff != 0 {
            if phm & 0xff == 0xff {
                put(Mf::NshSi, ph & 0xff, None)?;
            } else {
                put(Mf::NshSi, ph & 0xff, Some(phm & 0xff))?;
            }
        }
        for i in 0..4 {
            putm2!(Mf::NshC(i), Slot::NshC(i));
        }
        if oxm < 6 {
            for i in 0..16 {
                putm2!(Mf::Reg(i), Slot::Reg(i));
            }
        } else {
            for i in 0..8u8 {
                let fv = self.get_field(Mf::Xreg(i));
                let (v, m) = (be_to_u128(&fv.value), be_to_u128(&fv.mask));
                if m != 0 {
                    if m == u64::MAX as u128 {
                        put(Mf::Xreg(i), v, None)?;
                    } else {
                        put(Mf::Xreg(i), v, Some(m))?;
                    }
                }
            }
        }
        putm2!(Mf::PktMark, Slot::PktMark);
        // ct_state is 32 bits on the wire but 8 in the flow: an exact match is written
        // with mask 0xff, as OVS does.
        putm2!(Mf::CtState, Slot::CtState);
        putm2!(Mf::CtZone, Slot::CtZone);
        putm2!(Mf::CtMark, Slot::CtMark);
        putm2!(Mf::CtLabel, Slot::CtLabel);
        putm2!(Mf::CtNwSrc, Slot::CtNwSrc);
        putm2!(Mf::CtIpv6Src, Slot::CtIpv6Src);
        putm2!(Mf::CtNwDst, Slot::CtNwDst);
        putm2!(Mf::CtIpv6Dst, Slot::CtIpv6Dst);
        if self.val(Slot::CtNwProto) != 0 {
            putm2!(Mf::CtNwProto, Slot::CtNwProto);
            putm2!(Mf::CtTpSrc, Slot::CtTpSrc);
            putm2!(Mf::CtTpDst, Slot::CtTpDst);
        }
        putm2!(Mf::Metadata, Slot::Metadata);
        if cookie_mask != 0 {
            let masked = cookie_mask != u64::MAX;
            out.fields.push(MatchField {
                field: Field::Cookie,
                header: OxmHeader::new(class::NXM_NX, 30, 8),
                value: (cookie & cookie_mask).to_be_bytes().to_vec(),
                mask: masked.then(|| cookie_mask.to_be_bytes().to_vec()),
            });
        }
        if self.has_default_packet_type() && !implied_ethernet {
            if let Some(h) = Mf::PacketType.header_for(oxm) {
                out.fields.insert(
                    0,
                    MatchField {
                        field: Field::PacketType,
                        header: h.header,
                        value: vec![0; 4],
                        mask: None,
                    },
                );
            }
        }
        Ok(out)
    }

    /// `match_format`: the match as ovs-ofctl prints it, with `priority=N,` first when
    /// `priority` is given and is not the default 32768.
    pub fn format(&self, map: Option<&PortMap>, priority: Option<u16>) -> String {
        let mut s = String::new();
        if let Some(p) = priority {
            if p != 32768 {
                s.push_str(&format!("priority={p},"));
            }
        }
        let g = |slot: Slot| self.get(slot);
        let u32m = |s: &mut String, name: &str, v: u128, m: u128| {
            if m != 0 {
                s.push_str(&format!("{name}={}", c_hex(v)));
                if m != u32::MAX as u128 {
                    s.push_str(&format!("/{}", c_hex(m)));
                }
                s.push(',');
            }
        };
        let u64m = |s: &mut String, name: &str, v: u128, m: u128| {
            if m != 0 {
                s.push_str(&format!("{name}={}", c_hex(v)));
                if m != u64::MAX as u128 {
                    s.push_str(&format!("/{}", c_hex(m)));
                }
                s.push(',');
            }
        };
        let be16m = |s: &mut String, name: &str, v: u128, m: u128| {
            if m != 0 {
                if m == 0xffff {
                    s.push_str(&format!("{name}={v},"));
                } else {
                    s.push_str(&format!("{name}=0x{v:x}/0x{m:x},"));
                }
            }
        };
        let be32m = |s: &mut String, name: &str, v: u128, m: u128| {
            if m != 0 {
                if m == u32::MAX as u128 {
                    s.push_str(&format!("{name}={v},"));
                } else {
                    s.push_str(&format!("{name}=0x{v:08x}/0x{m:08x},"));
                }
            }
        };
        let ipm = |s: &mut String, name: &str, v: u128, m: u128| {
            if m != 0 {
                s.push_str(&format!(
                    "{name}={},",
                    format_ipv4_masked(v as u32, m as u32)
                ));
            }
        };
        let ip6m = |s: &mut String, name: &str, v: u128, m: u128| {
            if m != 0 {
                s.push_str(&format!("{name}={},", format_ipv6_masked(v, m)));
            }
        };
        let ethm = |s: &mut String, name: &str, v: u128, m: u128| {
            if m != 0 {
                s.push_str(&format!("{name}={}", format_mac(&u128_to_be(v, 6))));
                if m != 0xffff_ffff_ffff {
                    s.push('/');
                    s.push_str(&format_mac(&u128_to_be(m, 6)));
                }
                s.push(',');
            }
        };

        let (v, m) = g(Slot::PktMark);
        u32m(&mut s, "pkt_mark", v, m);
        let (v, m) = g(Slot::RecircId);
        let is_megaflow = m != 0;
        if m != 0 {
            u32m(&mut s, "recirc_id", v, m);
        }
        let (v, m) = g(Slot::DpHash);
        u32m(&mut s, "dp_hash", v, m);
        let (v, m) = g(Slot::ConjId);
        if m != 0 {
            s.push_str(&format!("conj_id={v},"));
        }
        let (v, m) = g(Slot::SkbPriority);
        if m != 0 {
            s.push_str(&format!("skb_priority={},", c_hex(v)));
        }
        let (v, m) = g(Slot::ActsetOutput);
        if m != 0 {
            s.push_str(&format!("actset_output={},", format_port(v as u16, map)));
        }
        let (v, m) = g(Slot::CtState);
        if m != 0 {
            s.push_str("ct_state=");
            if m == 0xff {
                s.push_str(&format_flags(ct_state_name, v as u32, '|'));
            } else {
                s.push_str(&format_flags_masked(
                    ct_state_name,
                    v as u32,
                    m as u32,
                    0xff,
                ));
            }
            s.push(',');
        }
        let (v, m) = g(Slot::CtZone);
        if m != 0 {
            if m == 0xffff {
                s.push_str(&format!("ct_zone={v},"));
            } else {
                s.push_str(&format!("ct_zone=0x{v:x}/0x{m:x},"));
            }
        }
        let (v, m) = g(Slot::CtMark);
        u32m(&mut s, "ct_mark", v, m);
        let (v, m) = g(Slot::CtLabel);
        if m != 0 {
            s.push_str("ct_label=");
            s.push_str(&put_hex(&v.to_be_bytes()));
            if m != u128::MAX {
                s.push('/');
                s.push_str(&put_hex(&m.to_be_bytes()));
            }
            s.push(',');
        }
        let (v, m) = g(Slot::CtNwSrc);
        ipm(&mut s, "ct_nw_src", v, m);
        let (v, m) = g(Slot::CtIpv6Src);
        ip6m(&mut s, "ct_ipv6_src", v, m);
        let (v, m) = g(Slot::CtNwDst);
        ipm(&mut s, "ct_nw_dst", v, m);
        let (v, m) = g(Slot::CtIpv6Dst);
        ip6m(&mut s, "ct_ipv6_dst", v, m);
        let (v, m) = g(Slot::CtNwProto);
        if m != 0 {
            s.push_str(&format!("ct_nw_proto={v},"));
            let (v, m) = g(Slot::CtTpSrc);
            be16m(&mut s, "ct_tp_src", v, m);
            let (v, m) = g(Slot::CtTpDst);
            be16m(&mut s, "ct_tp_dst", v, m);
        }

        let mut dl_type = self.val(Slot::DlType) as u16;
        let (pt, ptm) = g(Slot::PacketType);
        if ptm != 0 && (!self.has_default_packet_type() || is_megaflow) {
            s.push_str(&format_packet_type(pt as u32, ptm as u32));
            s.push(',');
            if pt >> 16 == 1 {
                dl_type = pt as u16;
            }
        }
        let nw_proto = self.val(Slot::NwProto) as u8;
        let proto_masked = self.mask(Slot::NwProto) != 0;
        let mut skip_type = false;
        let mut skip_proto = false;
        if self.mask(Slot::DlType) != 0 {
            skip_type = true;
            match dl_type {
                ETH_TYPE_IP => {
                    if proto_masked {
                        skip_proto = true;
                        match nw_proto {
                            1 => s.push_str("icmp,"),
                            6 => s.push_str("tcp,"),
                            17 => s.push_str("udp,"),
                            132 => s.push_str("sctp,"),
                            _ => {
                                s.push_str("ip,");
                                skip_proto = false;
                            }
                        }
                    } else {
                        s.push_str("ip,");
                    }
                }
                ETH_TYPE_IPV6 => {
                    if proto_masked {
                        skip_proto = true;
                        match nw_proto {
                            58 => s.push_str("icmp6,"),
                            6 => s.push_str("tcp6,"),
                            17 => s.push_str("udp6,"),
                            132 => s.push_str("sctp6,"),
                            _ => {
                                s.push_str("ipv6,");
                                skip_proto = false;
                            }
                        }
                    } else {
                        s.push_str("ipv6,");
                    }
                }
                ETH_TYPE_ARP => s.push_str("arp,"),
                ETH_TYPE_RARP => s.push_str("rarp,"),
                ETH_TYPE_MPLS => s.push_str("mpls,"),
                ETH_TYPE_MPLS_MCAST => s.push_str("mplsm,"),
                _ => skip_type = false,
            }
        }
        for i in 0..16 {
            let (v, m) = g(Slot::Reg(i));
            u32m(&mut s, &format!("reg{i}"), v, m);
        }
        // Tunnel.
        let (v, m) = g(Slot::TunId);
        u64m(&mut s, "tun_id", v, m);
        let (v, m) = g(Slot::TunSrc);
        ipm(&mut s, "tun_src", v, m);
        let (v, m) = g(Slot::TunDst);
        ipm(&mut s, "tun_dst", v, m);
        let (v, m) = g(Slot::TunIpv6Src);
        ip6m(&mut s, "tun_ipv6_src", v, m);
        let (v, m) = g(Slot::TunIpv6Dst);
        ip6m(&mut s, "tun_ipv6_dst", v, m);
        let (v, m) = g(Slot::TunGbpId);
        be16m(&mut s, "tun_gbp_id", v, m);
        let (v, m) = g(Slot::TunGbpFlags);
        if m != 0 {
            s.push_str(&format!("tun_gbp_flags={},", c_hex(v)));
        }
        let (v, m) = g(Slot::TunTos);
        if m != 0 {
            s.push_str(&format!("tun_tos={v:x},"));
        }
        let (v, m) = g(Slot::TunTtl);
        if m != 0 {
            s.push_str(&format!("tun_ttl={v},"));
        }
        let (ver, m) = g(Slot::TunErspanVer);
        if m != 0 {
            s.push_str(&format!("tun_erspan_ver={ver},"));
        }
        let (v, m) = g(Slot::TunErspanIdx);
        if m != 0 && ver == 1 {
            s.push_str(&format!("tun_erspan_idx={},", c_hex(v)));
        }
        let (v, m) = g(Slot::TunErspanDir);
        if m != 0 && ver == 2 {
            s.push_str(&format!("tun_erspan_dir={v},"));
        }
        let (v, m) = g(Slot::TunErspanHwid);
        if m != 0 && ver == 2 {
            s.push_str(&format!("tun_erspan_hwid={},", c_hex(v)));
        }
        let (v, m) = g(Slot::TunGtpuFlags);
        if m != 0 {
            s.push_str(&format!("gtpu_flags={},", c_hex(v)));
        }
        let (v, m) = g(Slot::TunGtpuMsgtype);
        if m != 0 {
            s.push_str(&format!("gtpu_msgtype={v},"));
        }
        let (v, m) = g(Slot::TunFlags);
        if m & 0xf != 0 {
            s.push_str("tun_flags=");
            s.push_str(&format_flags_masked(
                tun_flag_name,
                (v & 0xf) as u32,
                (m & 0xf) as u32,
                0xf,
            ));
            s.push(',');
        }
        for (i, (val, mask)) in &self.tun_md {
            s.push_str(&format!("tun_metadata{i}"));
            let masked = !mask.iter().all(|&b| b == 0xff);
            if !(masked && mask.iter().all(|&b| b == 0)) {
                s.push('=');
                s.push_str(&put_hex(val));
                if masked {
                    s.push('/');
                    s.push_str(&put_hex(mask));
                }
            }
            s.push(',');
        }
        let (v, m) = g(Slot::Metadata);
        u64m(&mut s, "metadata", v, m);
        let (v, m) = g(Slot::InPort);
        if m != 0 {
            s.push_str(&format!("in_port={},", format_port(v as u16, map)));
        }
        let (tci, tm) = g(Slot::VlanTci);
        if tm != 0 {
            let vid_mask = tm & 0x0fff;
            let pcp_mask = tm & 0xe000;
            let cfi = tm & 0x1000;
            if cfi != 0
                && tci & 0x1000 != 0
                && (vid_mask == 0 || vid_mask == 0x0fff)
                && (pcp_mask == 0 || pcp_mask == 0xe000)
                && (vid_mask != 0 || pcp_mask != 0)
            {
                if vid_mask != 0 {
                    s.push_str(&format!("dl_vlan={},", tci & 0xfff));
                }
                if pcp_mask != 0 {
                    s.push_str(&format!("dl_vlan_pcp={},", (tci >> 13) & 7));
                }
            } else if tm == 0xffff {
                s.push_str(&format!("vlan_tci=0x{tci:04x},"));
            } else {
                s.push_str(&format!("vlan_tci=0x{tci:04x}/0x{tm:04x},"));
            }
        }
        let (v, m) = g(Slot::DlSrc);
        ethm(&mut s, "dl_src", v, m);
        let (v, m) = g(Slot::DlDst);
        ethm(&mut s, "dl_dst", v, m);
        if !skip_type && self.mask(Slot::DlType) != 0 {
            s.push_str(&format!("dl_type=0x{dl_type:04x},"));
        }
        let is_arp = dl_type == ETH_TYPE_ARP || dl_type == ETH_TYPE_RARP;
        if dl_type == ETH_TYPE_IPV6 {
            let (v, m) = g(Slot::Ipv6Src);
            ip6m(&mut s, "ipv6_src", v, m);
            let (v, m) = g(Slot::Ipv6Dst);
            ip6m(&mut s, "ipv6_dst", v, m);
            let (v, m) = g(Slot::Ipv6Label);
            if m != 0 {
                if m == u32::MAX as u128 {
                    s.push_str(&format!("ipv6_label=0x{v:05x},"));
                } else {
                    s.push_str(&format!("ipv6_label=0x{v:05x}/0x{m:05x},"));
                }
            }
        } else if is_arp {
            let (v, m) = g(Slot::NwSrc);
            ipm(&mut s, "arp_spa", v, m);
            let (v, m) = g(Slot::NwDst);
            ipm(&mut s, "arp_tpa", v, m);
        } else if dl_type == ETH_TYPE_NSH {
            let u8m = |s: &mut String, name: &str, v: u128, m: u128| {
                if m != 0 {
                    if m == 0xff {
                        s.push_str(&format!("{name}={v},"));
                    } else {
                        s.push_str(&format!("{name}=0x{v:02x}/0x{m:02x},"));
                    }
                }
            };
            let hexm = |s: &mut String, name: &str, v: u128, m: u128| {
                if m != 0 {
                    if m == u32::MAX as u128 {
                        s.push_str(&format!("{name}=0x{v:x},"));
                    } else {
                        s.push_str(&format!("{name}=0x{v:x}/0x{m:x},"));
                    }
                }
            };
            let (v, m) = g(Slot::NshFlags);
            u8m(&mut s, "nsh_flags", v, m);
            let (v, m) = g(Slot::NshTtl);
            u8m(&mut s, "nsh_ttl", v, m);
            let (mdv, mdm) = g(Slot::NshMdtype);
            u8m(&mut s, "nsh_mdtype", mdv, mdm);
            let (v, m) = g(Slot::NshNp);
            u8m(&mut s, "nsh_np", v, m);
            let (ph, phm) = g(Slot::NshPathHdr);
            let mut spi_mask = phm >> 8;
            if spi_mask == 0xffffff {
                spi_mask = u32::MAX as u128;
            }
            hexm(&mut s, "nsh_spi", ph >> 8, spi_mask);
            u8m(&mut s, "nsh_si", ph & 0xff, phm & 0xff);
            if mdm == 0xff && mdv == 1 {
                for i in 0..4 {
                    let (v, m) = g(Slot::NshC(i));
                    hexm(&mut s, &format!("nsh_c{}", i + 1), v, m);
                }
            }
        } else {
            let (v, m) = g(Slot::NwSrc);
            ipm(&mut s, "nw_src", v, m);
            let (v, m) = g(Slot::NwDst);
            ipm(&mut s, "nw_dst", v, m);
        }
        if !skip_proto && proto_masked {
            if is_arp {
                s.push_str(&format!("arp_op={nw_proto},"));
            } else {
                s.push_str(&format!("nw_proto={nw_proto},"));
            }
        }
        if is_arp {
            let (v, m) = g(Slot::ArpSha);
            ethm(&mut s, "arp_sha", v, m);
            let (v, m) = g(Slot::ArpTha);
            ethm(&mut s, "arp_tha", v, m);
        }
        let (tos, tosm) = g(Slot::NwTos);
        if tosm & 0xfc != 0 {
            s.push_str(&format!("nw_tos={},", tos & 0xfc));
        }
        if tosm & 3 != 0 {
            s.push_str(&format!("nw_ecn={},", tos & 3));
        }
        let (v, m) = g(Slot::NwTtl);
        if m != 0 {
            s.push_str(&format!("nw_ttl={v},"));
        }
        let (lse, lm) = g(Slot::MplsLse);
        if lm & 0xffff_f000 != 0 {
            s.push_str(&format!("mpls_label={},", lse >> 12));
        }
        if lm & 0xe00 != 0 {
            s.push_str(&format!("mpls_tc={},", (lse >> 9) & 7));
        }
        if lm & 0xff != 0 {
            s.push_str(&format!("mpls_ttl={},", lse & 0xff));
        }
        if lm & 0x100 != 0 {
            s.push_str(&format!("mpls_bos={},", (lse >> 8) & 1));
        }
        let (fv, fm) = g(Slot::NwFrag);
        if fm & 3 != 0 {
            s.push_str(&format!("nw_frag={},", format_frag(fv as u8, fm as u8)));
        }
        let (sv, sm) = g(Slot::TpSrc);
        let (dv, dm) = g(Slot::TpDst);
        if dl_type == ETH_TYPE_IP && nw_proto == 1 {
            be16m(&mut s, "icmp_type", sv, sm);
            be16m(&mut s, "icmp_code", dv, dm);
        } else if dl_type == ETH_TYPE_IPV6 && nw_proto == 58 {
            be16m(&mut s, "icmp_type", sv, sm);
            be16m(&mut s, "icmp_code", dv, dm);
            let (v, m) = g(Slot::NdTarget);
            ip6m(&mut s, "nd_target", v, m);
            let (v, m) = g(Slot::ArpSha);
            ethm(&mut s, "nd_sll", v, m);
            let (v, m) = g(Slot::ArpTha);
            ethm(&mut s, "nd_tll", v, m);
            let (v, m) = g(Slot::NdReserved);
            if m != 0 {
                be32m(&mut s, "nd_reserved", v, m);
            }
            let (v, m) = g(Slot::TcpFlags);
            if m != 0 {
                be16m(&mut s, "nd_options_type", v, m);
            }
        } else {
            be16m(&mut s, "tp_src", sv, sm);
            be16m(&mut s, "tp_dst", dv, dm);
        }
        let (v, m) = g(Slot::TcpFlags);
        if (dl_type == ETH_TYPE_IP || dl_type == ETH_TYPE_IPV6) && nw_proto == 6 && m != 0 {
            s.push_str("tcp_flags=");
            s.push_str(&format_flags_masked(
                tcp_flag_name,
                v as u32,
                (m & 0x0fff) as u32,
                0x0fff,
            ));
            s.push(',');
        }
        if s.ends_with(',') {
            s.pop();
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::value::mf_parse;

    fn set(m: &mut FlowMatch, name: &str, v: &str) {
        let mf = Mf::from_name(name).unwrap();
        let fv = mf_parse(mf, v, None).unwrap();
        m.set_field(mf, &fv).unwrap();
    }

    #[test]
    fn vlan_forms() {
        let mut m = FlowMatch::new();
        set(&mut m, "vlan_tci", "0x1005");
        assert_eq!(m.format(None, None), "dl_vlan=5,dl_vlan_pcp=0");
        let mut m = FlowMatch::new();
        set(&mut m, "vlan_tci", "0x0000/0x1000");
        assert_eq!(m.format(None, None), "vlan_tci=0x0000/0x1000");
        let mut m = FlowMatch::new();
        set(&mut m, "dl_vlan", "5");
        set(&mut m, "dl_vlan_pcp", "3");
        assert_eq!(m.format(None, None), "dl_vlan=5,dl_vlan_pcp=3");
    }

    #[test]
    fn xreg_is_two_regs() {
        let mut m = FlowMatch::new();
        set(&mut m, "xreg2", "0x7/0xff");
        assert_eq!(m.format(None, None), "reg5=0x7/0xff");
        let oxm = m.to_codec(6, 0, 0).unwrap();
        assert_eq!(oxm.fields[0].field, Field::Xreg(2));
        let nxm = m.to_codec(0, 0, 0).unwrap();
        assert_eq!(nxm.fields[0].field, Field::Reg(5));
    }
}
