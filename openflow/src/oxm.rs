//! Match fields: the field table, OXM/NXM headers and entries, and the [`Match`] set.
//!
//! OpenFlow has three match encodings and all of them decode into the same [`Match`]:
//! - OXM (OpenFlow 1.2+ `ofp_match` of type `OFPMT_OXM`), where Open vSwitch also accepts
//!   NXM headers for fields with no OXM code (registers, conntrack, tunnel metadata...);
//! - NXM (`nx_match` in `NXT_FLOW_MOD`, `NXST_FLOW`, `NXT_PACKET_IN`...), the same TLVs
//!   without the `ofp_match` wrapper;
//! - OpenFlow 1.0's fixed `ofp_match`, kept verbatim as [`Of10Match`] (so it re-encodes byte
//!   for byte) with [`Of10Match::to_match`] for the classifier.
//!
//! A [`MatchField`] remembers the exact header it was decoded with (NXM vs OXM code, and the
//! experimenter ID), so `encode(decode(x)) == x`; fields built in code pick OVS's preferred
//! header for the version through [`Field::header_for`].
//!
//! Field codes, widths, maskability and prerequisites are the ones documented in Open
//! vSwitch's `include/openvswitch/meta-flow.h` / `lib/meta-flow.xml`.

use crate::buf::{pad8, Reader, Writer};
use crate::error::{fail, OfpErr, Result};
use crate::{NX_VENDOR_ID, ONF_VENDOR_ID};

/// OXM/NXM class numbers.
pub mod class {
    /// NXM_OF_*: fields that mirror OpenFlow 1.0 (Nicira's class 0).
    pub const NXM_OF: u16 = 0x0000;
    /// NXM_NX_*: Nicira extension fields.
    pub const NXM_NX: u16 = 0x0001;
    /// OXM_OF_*: OpenFlow basic class.
    pub const OPENFLOW_BASIC: u16 = 0x8000;
    /// OXM_OF_PKT_REG*: packet registers (xreg0-7).
    pub const PACKET_REGS: u16 = 0x8001;
    /// Experimenter class: an experimenter ID follows the 32-bit header.
    pub const EXPERIMENTER: u16 = 0xffff;
}

/// An OXM/NXM TLV header, as on the wire.  `length` is the payload length in bytes (for an
/// experimenter header it includes the 4-byte experimenter ID, as OXM requires).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OxmHeader {
    pub class: u16,
    pub field: u8,
    pub hasmask: bool,
    pub length: u8,
    /// Experimenter ID when `class == 0xffff`, else 0.
    pub experimenter: u32,
}

impl OxmHeader {
    pub const fn new(class: u16, field: u8, length: u8) -> Self {
        OxmHeader {
            class,
            field,
            hasmask: false,
            length,
            experimenter: 0,
        }
    }
    pub const fn exp(experimenter: u32, field: u8, length: u8) -> Self {
        OxmHeader {
            class: class::EXPERIMENTER,
            field,
            hasmask: false,
            length: length + 4,
            experimenter,
        }
    }
    pub fn is_experimenter(&self) -> bool {
        self.class == class::EXPERIMENTER
    }
    /// Bytes this header occupies (4, or 8 with an experimenter ID).
    pub fn wire_len(&self) -> usize {
        if self.is_experimenter() {
            8
        } else {
            4
        }
    }
    /// Payload length without the experimenter ID.
    pub fn payload_len(&self) -> usize {
        let l = self.length as usize;
        if self.is_experimenter() {
            l.saturating_sub(4)
        } else {
            l
        }
    }
    /// The 32-bit header word.
    pub fn word(&self) -> u32 {
        (self.class as u32) << 16
            | (self.field as u32) << 9
            | (self.hasmask as u32) << 8
            | self.length as u32
    }
    pub(crate) fn parse(r: &mut Reader) -> Result<Self> {
        let w = r.u32("oxm header")?;
        let class = (w >> 16) as u16;
        let mut h = OxmHeader {
            class,
            field: ((w >> 9) & 0x7f) as u8,
            hasmask: w & 0x100 != 0,
            length: (w & 0xff) as u8,
            experimenter: 0,
        };
        if class == class::EXPERIMENTER {
            if h.length < 4 {
                return Err(r.short("oxm experimenter header"));
            }
            h.experimenter = r.u32("oxm experimenter")?;
        }
        Ok(h)
    }
    pub(crate) fn emit(&self, w: &mut Writer) {
        w.u32(self.word());
        if self.is_experimenter() {
            w.u32(self.experimenter);
        }
    }
    /// The same header without mask bit and with the plain field width (how OVS writes field
    /// references in actions: `move`, `load`, `learn`...).
    pub fn unmasked(mut self) -> Self {
        if self.hasmask {
            let pl = self.payload_len() / 2;
            self.hasmask = false;
            self.length = (pl + if self.is_experimenter() { 4 } else { 0 }) as u8;
        }
        self
    }
}

/// Prerequisites of a field (meta-flow.h "Prerequisites:").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Prereq {
    None,
    Ethernet,
    VlanVid,
    Arp,
    Ipv4,
    Ipv6,
    IpAny,
    Mpls,
    Tcp,
    Udp,
    Sctp,
    Icmpv4,
    Icmpv6,
    Nd,
    NdSolicit,
    NdAdvert,
    /// Conntrack original-direction tuple: needs `ct_state=+trk-inv`.
    Ct,
    Nsh,
}

/// A match field (Open vSwitch's `mf_field_id`, with numbered families folded).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Field {
    /// NXM_OF_IN_PORT: 16-bit OpenFlow 1.0 port.
    InPort,
    /// OXM_OF_IN_PORT: 32-bit OpenFlow 1.1+ port.
    InPortOxm,
    InPhyPort,
    Metadata,
    Reg(u8),
    Xreg(u8),
    Xxreg(u8),
    TunId,
    TunSrc,
    TunDst,
    TunIpv6Src,
    TunIpv6Dst,
    TunFlags,
    TunGbpId,
    TunGbpFlags,
    TunMetadata(u8),
    TunErspanIdx,
    TunErspanVer,
    TunErspanDir,
    TunErspanHwid,
    TunGtpuFlags,
    TunGtpuMsgtype,
    PktMark,
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
    ConjId,
    DpHash,
    RecircId,
    ActsetOutput,
    PacketType,
    EthSrc,
    EthDst,
    EthType,
    VlanTci,
    VlanVid,
    VlanPcp,
    MplsLabel,
    MplsTc,
    MplsBos,
    MplsTtl,
    IpSrc,
    IpDst,
    Ipv6Src,
    Ipv6Dst,
    Ipv6Label,
    IpProto,
    /// NXM_OF_IP_TOS (DSCP bits in place).
    IpTos,
    IpDscp,
    IpEcn,
    IpTtl,
    IpFrag,
    ArpOp,
    ArpSpa,
    ArpTpa,
    ArpSha,
    ArpTha,
    TcpSrc,
    TcpDst,
    TcpFlags,
    UdpSrc,
    UdpDst,
    SctpSrc,
    SctpDst,
    IcmpType,
    IcmpCode,
    Icmpv6Type,
    Icmpv6Code,
    NdTarget,
    NdSll,
    NdTll,
    NshFlags,
    NshTtl,
    NshMdtype,
    NshNp,
    NshSpi,
    NshSi,
    NshC(u8),
    /// NXM_NX_COOKIE pseudo-field (NXM class 1, field 30, 8 bytes): the flow cookie (and
    /// mask) in NXM flow mods and flow-stats requests.  Shares its field number with
    /// `mpls_ttl`; the length tells them apart, as in OVS's nx-match.c.
    Cookie,
}

/// Static facts about a field.
#[derive(Debug, Clone, Copy)]
pub struct FieldInfo {
    /// Open vSwitch's name (`reg0`, `eth_src`, ...); numbered families share a base name.
    pub name: &'static str,
    /// Width in bytes (tunnel metadata: the maximum, 124).
    pub width: u8,
    pub maskable: bool,
    pub prereq: Prereq,
    /// Header in NXM (class 0/1) when it has one.
    pub nxm: Option<OxmHeader>,
    /// Header in OXM when it has one, and the first OpenFlow version (wire number) with it.
    pub oxm: Option<(OxmHeader, u8)>,
}

const fn nxm_of(field: u8, w: u8) -> Option<OxmHeader> {
    Some(OxmHeader::new(class::NXM_OF, field, w))
}
const fn nxm_nx(field: u8, w: u8) -> Option<OxmHeader> {
    Some(OxmHeader::new(class::NXM_NX, field, w))
}
const fn oxm(field: u8, w: u8, since: u8) -> Option<(OxmHeader, u8)> {
    Some((OxmHeader::new(class::OPENFLOW_BASIC, field, w), since))
}
const fn nxoxm(field: u8, w: u8) -> Option<(OxmHeader, u8)> {
    Some((OxmHeader::exp(NX_VENDOR_ID, field, w), 4))
}
/// NXOXM_NSH_* fields use their own experimenter ID (OVS nx-match.c `NXOXM_NSH`).
pub const NXOXM_NSH_ID: u32 = 0x005a_d650;
const fn nshoxm(field: u8, w: u8) -> Option<(OxmHeader, u8)> {
    Some((OxmHeader::exp(NXOXM_NSH_ID, field, w), 4))
}

impl Field {
    /// Field table.  Versions are wire numbers (4 = OpenFlow 1.3).
    pub fn info(self) -> FieldInfo {
        use Field::*;
        use Prereq as P;
        let fi = |name, width, maskable, prereq, nxm, oxm| FieldInfo {
            name,
            width,
            maskable,
            prereq,
            nxm,
            oxm,
        };
        match self {
            InPort => fi("in_port", 2, false, P::None, nxm_of(0, 2), None),
            InPortOxm => fi("in_port_oxm", 4, false, P::None, None, oxm(0, 4, 3)),
            InPhyPort => fi("in_phy_port", 4, false, P::None, None, oxm(1, 4, 3)),
            Metadata => fi("metadata", 8, true, P::None, None, oxm(2, 8, 3)),
            Reg(n) => fi("reg", 4, true, P::None, nxm_nx(n, 4), None),
            Xreg(n) => fi(
                "xreg",
                8,
                true,
                P::None,
                None,
                Some((OxmHeader::new(class::PACKET_REGS, n, 8), 4)),
            ),
            Xxreg(n) => fi("xxreg", 16, true, P::None, nxm_nx(111 + n, 16), None),
            TunId => fi("tun_id", 8, true, P::None, nxm_nx(16, 8), oxm(38, 8, 4)),
            TunSrc => fi("tun_src", 4, true, P::None, nxm_nx(31, 4), None),
            TunDst => fi("tun_dst", 4, true, P::None, nxm_nx(32, 4), None),
            TunIpv6Src => fi("tun_ipv6_src", 16, true, P::None, nxm_nx(109, 16), None),
            TunIpv6Dst => fi("tun_ipv6_dst", 16, true, P::None, nxm_nx(110, 16), None),
            TunFlags => fi("tun_flags", 2, true, P::None, nxm_nx(104, 2), None),
            TunGbpId => fi("tun_gbp_id", 2, true, P::None, nxm_nx(38, 2), None),
            TunGbpFlags => fi("tun_gbp_flags", 1, true, P::None, nxm_nx(39, 1), None),
            TunMetadata(n) => fi(
                "tun_metadata",
                124,
                true,
                P::None,
                nxm_nx(40 + n, 124),
                None,
            ),
            TunErspanIdx => fi("tun_erspan_idx", 4, true, P::None, None, nxoxm(11, 4)),
            TunErspanVer => fi("tun_erspan_ver", 1, true, P::None, None, nxoxm(12, 1)),
            TunErspanDir => fi("tun_erspan_dir", 1, true, P::None, None, nxoxm(13, 1)),
            TunErspanHwid => fi("tun_erspan_hwid", 1, true, P::None, None, nxoxm(14, 1)),
            TunGtpuFlags => fi("tun_gtpu_flags", 1, true, P::None, None, nxoxm(15, 1)),
            TunGtpuMsgtype => fi("tun_gtpu_msgtype", 1, true, P::None, None, nxoxm(16, 1)),
            PktMark => fi("pkt_mark", 4, true, P::None, nxm_nx(33, 4), None),
            CtState => fi("ct_state", 4, true, P::None, nxm_nx(105, 4), None),
            CtZone => fi("ct_zone", 2, false, P::None, nxm_nx(106, 2), None),
            CtMark => fi("ct_mark", 4, true, P::None, nxm_nx(107, 4), None),
            CtLabel => fi("ct_label", 16, true, P::None, nxm_nx(108, 16), None),
            CtNwProto => fi("ct_nw_proto", 1, false, P::Ct, nxm_nx(119, 1), None),
            CtNwSrc => fi("ct_nw_src", 4, true, P::Ct, nxm_nx(120, 4), None),
            CtNwDst => fi("ct_nw_dst", 4, true, P::Ct, nxm_nx(121, 4), None),
            CtIpv6Src => fi("ct_ipv6_src", 16, true, P::Ct, nxm_nx(122, 16), None),
            CtIpv6Dst => fi("ct_ipv6_dst", 16, true, P::Ct, nxm_nx(123, 16), None),
            CtTpSrc => fi("ct_tp_src", 2, true, P::Ct, nxm_nx(124, 2), None),
            CtTpDst => fi("ct_tp_dst", 2, true, P::Ct, nxm_nx(125, 2), None),
            ConjId => fi("conj_id", 4, false, P::None, nxm_nx(37, 4), None),
            DpHash => fi("dp_hash", 4, true, P::None, nxm_nx(35, 4), nxoxm(0, 4)),
            RecircId => fi("recirc_id", 4, false, P::None, nxm_nx(36, 4), None),
            ActsetOutput => fi("actset_output", 4, false, P::None, None, oxm(43, 4, 6)),
            PacketType => fi("packet_type", 4, false, P::None, None, oxm(44, 4, 6)),
            EthSrc => fi("eth_src", 6, true, P::Ethernet, nxm_of(2, 6), oxm(4, 6, 3)),
            EthDst => fi("eth_dst", 6, true, P::Ethernet, nxm_of(1, 6), oxm(3, 6, 3)),
            EthType => fi(
                "eth_type",
                2,
                false,
                P::Ethernet,
                nxm_of(3, 2),
                oxm(5, 2, 3),
            ),
            VlanTci => fi("vlan_tci", 2, true, P::Ethernet, nxm_of(4, 2), None),
            VlanVid => fi("vlan_vid", 2, true, P::Ethernet, None, oxm(6, 2, 3)),
            VlanPcp => fi("vlan_pcp", 1, false, P::VlanVid, None, oxm(7, 1, 3)),
            MplsLabel => fi("mpls_label", 4, false, P::Mpls, None, oxm(34, 4, 3)),
            MplsTc => fi("mpls_tc", 1, false, P::Mpls, None, oxm(35, 1, 3)),
            MplsBos => fi("mpls_bos", 1, false, P::Mpls, None, oxm(36, 1, 4)),
            MplsTtl => fi("mpls_ttl", 1, false, P::Mpls, nxm_nx(30, 1), None),
            IpSrc => fi("ip_src", 4, true, P::Ipv4, nxm_of(7, 4), oxm(11, 4, 3)),
            IpDst => fi("ip_dst", 4, true, P::Ipv4, nxm_of(8, 4), oxm(12, 4, 3)),
            Ipv6Src => fi(
                "ipv6_src",
                16,
                true,
                P::Ipv6,
                nxm_nx(19, 16),
                oxm(26, 16, 3),
            ),
            Ipv6Dst => fi(
                "ipv6_dst",
                16,
                true,
                P::Ipv6,
                nxm_nx(20, 16),
                oxm(27, 16, 3),
            ),
            Ipv6Label => fi("ipv6_label", 4, true, P::Ipv6, nxm_nx(27, 4), oxm(28, 4, 3)),
            IpProto => fi("nw_proto", 1, false, P::IpAny, nxm_of(6, 1), oxm(10, 1, 3)),
            IpTos => fi("nw_tos", 1, false, P::IpAny, nxm_of(5, 1), None),
            IpDscp => fi("ip_dscp", 1, false, P::IpAny, None, oxm(8, 1, 3)),
            IpEcn => fi("nw_ecn", 1, false, P::IpAny, nxm_nx(28, 1), oxm(9, 1, 3)),
            IpTtl => fi("nw_ttl", 1, false, P::IpAny, nxm_nx(29, 1), None),
            IpFrag => fi("ip_frag", 1, true, P::IpAny, nxm_nx(26, 1), None),
            ArpOp => fi("arp_op", 2, false, P::Arp, nxm_of(15, 2), oxm(21, 2, 3)),
            ArpSpa => fi("arp_spa", 4, true, P::Arp, nxm_of(16, 4), oxm(22, 4, 3)),
            ArpTpa => fi("arp_tpa", 4, true, P::Arp, nxm_of(17, 4), oxm(23, 4, 3)),
            ArpSha => fi("arp_sha", 6, true, P::Arp, nxm_nx(17, 6), oxm(24, 6, 3)),
            ArpTha => fi("arp_tha", 6, true, P::Arp, nxm_nx(18, 6), oxm(25, 6, 3)),
            TcpSrc => fi("tcp_src", 2, true, P::Tcp, nxm_of(9, 2), oxm(13, 2, 3)),
            TcpDst => fi("tcp_dst", 2, true, P::Tcp, nxm_of(10, 2), oxm(14, 2, 3)),
            TcpFlags => fi("tcp_flags", 2, true, P::Tcp, nxm_nx(34, 2), oxm(42, 2, 6)),
            UdpSrc => fi("udp_src", 2, true, P::Udp, nxm_of(11, 2), oxm(15, 2, 3)),
            UdpDst => fi("udp_dst", 2, true, P::Udp, nxm_of(12, 2), oxm(16, 2, 3)),
            SctpSrc => fi("sctp_src", 2, true, P::Sctp, None, oxm(17, 2, 3)),
            SctpDst => fi("sctp_dst", 2, true, P::Sctp, None, oxm(18, 2, 3)),
            IcmpType => fi(
                "icmp_type",
                1,
                false,
                P::Icmpv4,
                nxm_of(13, 1),
                oxm(19, 1, 3),
            ),
            IcmpCode => fi(
                "icmp_code",
                1,
                false,
                P::Icmpv4,
                nxm_of(14, 1),
                oxm(20, 1, 3),
            ),
            Icmpv6Type => fi(
                "icmpv6_type",
                1,
                false,
                P::Icmpv6,
                nxm_nx(21, 1),
                oxm(29, 1, 3),
            ),
            Icmpv6Code => fi(
                "icmpv6_code",
                1,
                false,
                P::Icmpv6,
                nxm_nx(22, 1),
                oxm(30, 1, 3),
            ),
            NdTarget => fi("nd_target", 16, true, P::Nd, nxm_nx(23, 16), oxm(31, 16, 3)),
            NdSll => fi(
                "nd_sll",
                6,
                true,
                P::NdSolicit,
                nxm_nx(24, 6),
                oxm(32, 6, 3),
            ),
            NdTll => fi("nd_tll", 6, true, P::NdAdvert, nxm_nx(25, 6), oxm(33, 6, 3)),
            NshFlags => fi("nsh_flags", 1, true, P::Nsh, None, nshoxm(1, 1)),
            NshMdtype => fi("nsh_mdtype", 1, false, P::Nsh, None, nshoxm(2, 1)),
            NshNp => fi("nsh_np", 1, false, P::Nsh, None, nshoxm(3, 1)),
            NshSpi => fi("nsh_spi", 4, false, P::Nsh, None, nshoxm(4, 4)),
            NshSi => fi("nsh_si", 1, false, P::Nsh, None, nshoxm(5, 1)),
            NshC(n) => fi("nsh_c", 4, true, P::Nsh, None, nshoxm(6 + n, 4)),
            NshTtl => fi("nsh_ttl", 1, false, P::Nsh, None, nshoxm(10, 1)),
            Cookie => fi("cookie", 8, true, P::None, nxm_nx(30, 8), None),
        }
    }

    /// Finds the field for a header (any of its NXM/OXM codes), ignoring mask bit and length.
    pub fn from_header(h: &OxmHeader) -> Option<Field> {
        use Field::*;
        Some(match (h.class, h.field) {
            (class::NXM_OF, f) => match f {
                0 => InPort,
                1 => EthDst,
                2 => EthSrc,
                3 => EthType,
                4 => VlanTci,
                5 => IpTos,
                6 => IpProto,
                7 => IpSrc,
                8 => IpDst,
                9 => TcpSrc,
                10 => TcpDst,
                11 => UdpSrc,
                12 => UdpDst,
                13 => IcmpType,
                14 => IcmpCode,
                15 => ArpOp,
                16 => ArpSpa,
                17 => ArpTpa,
                _ => return None,
            },
            (class::NXM_NX, f) => match f {
                0..=15 => Reg(f),
                16 => TunId,
                17 => ArpSha,
                18 => ArpTha,
                19 => Ipv6Src,
                20 => Ipv6Dst,
                21 => Icmpv6Type,
                22 => Icmpv6Code,
                23 => NdTarget,
                24 => NdSll,
                25 => NdTll,
                26 => IpFrag,
                27 => Ipv6Label,
                28 => IpEcn,
                29 => IpTtl,
                30 if h.payload_len() >= 8 => Cookie,
                30 => MplsTtl,
                31 => TunSrc,
                32 => TunDst,
                33 => PktMark,
                34 => TcpFlags,
                35 => DpHash,
                36 => RecircId,
                37 => ConjId,
                38 => TunGbpId,
                39 => TunGbpFlags,
                40..=103 => TunMetadata(f - 40),
                104 => TunFlags,
                105 => CtState,
                106 => CtZone,
                107 => CtMark,
                108 => CtLabel,
                109 => TunIpv6Src,
                110 => TunIpv6Dst,
                111..=114 => Xxreg(f - 111),
                119 => CtNwProto,
                120 => CtNwSrc,
                121 => CtNwDst,
                122 => CtIpv6Src,
                123 => CtIpv6Dst,
                124 => CtTpSrc,
                125 => CtTpDst,
                _ => return None,
            },
            (class::OPENFLOW_BASIC, f) => match f {
                0 => InPortOxm,
                1 => InPhyPort,
                2 => Metadata,
                3 => EthDst,
                4 => EthSrc,
                5 => EthType,
                6 => VlanVid,
                7 => VlanPcp,
                8 => IpDscp,
                9 => IpEcn,
                10 => IpProto,
                11 => IpSrc,
                12 => IpDst,
                13 => TcpSrc,
                14 => TcpDst,
                15 => UdpSrc,
                16 => UdpDst,
                17 => SctpSrc,
                18 => SctpDst,
                19 => IcmpType,
                20 => IcmpCode,
                21 => ArpOp,
                22 => ArpSpa,
                23 => ArpTpa,
                24 => ArpSha,
                25 => ArpTha,
                26 => Ipv6Src,
                27 => Ipv6Dst,
                28 => Ipv6Label,
                29 => Icmpv6Type,
                30 => Icmpv6Code,
                31 => NdTarget,
                32 => NdSll,
                33 => NdTll,
                34 => MplsLabel,
                35 => MplsTc,
                36 => MplsBos,
                38 => TunId,
                42 => TcpFlags,
                43 => ActsetOutput,
                44 => PacketType,
                _ => return None,
            },
            (class::PACKET_REGS, f) if f < 8 => Xreg(f),
            (class::EXPERIMENTER, f) if h.experimenter == NX_VENDOR_ID => match f {
                0 => DpHash,
                11 => TunErspanIdx,
                12 => TunErspanVer,
                13 => TunErspanDir,
                14 => TunErspanHwid,
                15 => TunGtpuFlags,
                16 => TunGtpuMsgtype,
                _ => return None,
            },
            (class::EXPERIMENTER, f) if h.experimenter == NXOXM_NSH_ID => match f {
                1 => NshFlags,
                2 => NshMdtype,
                3 => NshNp,
                4 => NshSpi,
                5 => NshSi,
                6..=9 => NshC(f - 6),
                10 => NshTtl,
                _ => return None,
            },
            (class::EXPERIMENTER, f) if h.experimenter == ONF_VENDOR_ID => match f {
                42 => TcpFlags,
                43 => ActsetOutput,
                _ => return None,
            },
            _ => return None,
        })
    }

    /// Width in bits for fixed-width fields (tunnel metadata: its maximum).
    pub fn bits(self) -> u32 {
        self.info().width as u32 * 8
    }

    /// The header OVS writes for this field in OpenFlow `version` (wire number): the OXM
    /// code if the field has one in that version, else the NXM code (and with `nxm_only`,
    /// as in NXT_FLOW_MOD / nx_match, the NXM code whenever there is one).
    pub fn header_for(self, version: u8, nxm_only: bool) -> Option<OxmHeader> {
        let info = self.info();
        let oxm = info
            .oxm
            .filter(|(_, since)| version >= *since)
            .map(|(h, _)| h);
        let h = if nxm_only {
            info.nxm.or(oxm)
        } else {
            oxm.or(info.nxm)
        };
        let mut h = h?;
        if let Field::TunMetadata(_) = self {
            h.length = 0;
        }
        Some(h)
    }
}

/// One match entry: a field, its value and optional mask, plus the header it was written with.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MatchField {
    pub field: Field,
    /// Header as decoded (or chosen); `hasmask`/`length` are recomputed on encode.
    pub header: OxmHeader,
    pub value: Vec<u8>,
    pub mask: Option<Vec<u8>>,
}

impl MatchField {
    /// Builds an entry with OVS's preferred header for `version` (OXM encoding).
    pub fn new(field: Field, version: u8, value: Vec<u8>, mask: Option<Vec<u8>>) -> Option<Self> {
        let header = field.header_for(version, false)?;
        Some(MatchField {
            field,
            header,
            value,
            mask,
        })
    }

    /// Decodes one TLV (header, value, optional mask).
    pub(crate) fn parse(r: &mut Reader) -> Result<Self> {
        let header = OxmHeader::parse(r)?;
        let field = match Field::from_header(&header) {
            Some(f) => f,
            None => return fail(OfpErr::OFPBMC_BAD_FIELD, "unknown match field"),
        };
        let plen = header.payload_len();
        let body = r.bytes(plen, "match field value")?;
        let info = field.info();
        let vlen = if header.hasmask { plen / 2 } else { plen };
        if (header.hasmask && plen % 2 != 0) || vlen == 0 {
            return fail(OfpErr::OFPBMC_BAD_LEN, "match field length");
        }
        match field {
            Field::TunMetadata(_) => {
                if vlen > 124 {
                    return fail(OfpErr::OFPBMC_BAD_LEN, "tun_metadata length");
                }
            }
            _ => {
                if vlen != info.width as usize {
                    return fail(OfpErr::OFPBMC_BAD_LEN, "match field length");
                }
            }
        }
        if header.hasmask && !info.maskable {
            return fail(OfpErr::OFPBMC_BAD_MASK, "mask on unmaskable field");
        }
        let (value, mask) = if header.hasmask {
            (body[..vlen].to_vec(), Some(body[vlen..].to_vec()))
        } else {
            (body.to_vec(), None)
        };
        Ok(MatchField {
            field,
            header,
            value,
            mask,
        })
    }

    pub(crate) fn emit(&self, w: &mut Writer) {
        let mut h = self.header;
        h.hasmask = self.mask.is_some();
        let plen = self.value.len() * if h.hasmask { 2 } else { 1 };
        h.length = (plen + if h.is_experimenter() { 4 } else { 0 }).min(255) as u8;
        h.emit(w);
        w.bytes(&self.value);
        if let Some(m) = &self.mask {
            w.bytes(m);
        }
    }

    /// The value as an unsigned integer (fields up to 16 bytes).
    pub fn value_u128(&self) -> u128 {
        be_u128(&self.value)
    }
    /// The mask as an unsigned integer (all ones when exact).
    pub fn mask_u128(&self) -> u128 {
        match &self.mask {
            Some(m) => be_u128(m),
            None => {
                let bits = self.value.len().min(16) * 8;
                if bits >= 128 {
                    u128::MAX
                } else {
                    (1u128 << bits) - 1
                }
            }
        }
    }
}

pub(crate) fn be_u128(b: &[u8]) -> u128 {
    b.iter()
        .rev()
        .take(16)
        .rev()
        .fold(0u128, |a, &x| a << 8 | x as u128)
}

/// A flow match: the fields in wire order.  At most one entry per field.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Match {
    pub fields: Vec<MatchField>,
}

impl Match {
    /// The entry for `field`, if matched.
    pub fn get(&self, field: Field) -> Option<&MatchField> {
        self.fields.iter().find(|f| f.field == field)
    }

    /// Register `n` (0-15) if the match constrains it, from `reg<n>` or from the `xreg`
    /// (OVS encodes pipeline registers as masked xregs in packet-ins) or `xxreg` holding it;
    /// returns (value, mask).
    pub fn register(&self, n: u8) -> Option<(u32, u32)> {
        if let Some(f) = self.get(Field::Reg(n)) {
            return Some((f.value_u128() as u32, f.mask_u128() as u32));
        }
        // xreg<k> = reg<2k> (high half) : reg<2k+1>; xxreg<k> = reg<4k> .. reg<4k+3>.
        let (f, shift) = if let Some(f) = self.get(Field::Xreg(n / 2)) {
            (f, if n & 1 == 0 { 32 } else { 0 })
        } else {
            (self.get(Field::Xxreg(n / 4))?, 32 * (3 - (n % 4) as u32))
        };
        let (v, m) = (
            (f.value_u128() >> shift) as u32,
            (f.mask_u128() >> shift) as u32,
        );
        if m == 0 {
            None
        } else {
            Some((v, m))
        }
    }

    /// Decodes NXM/OXM TLVs filling all of `r`, checking duplicates and prerequisites the way
    /// OVS's `nx_pull_raw` does (a prerequisite must appear before the field needing it).
    pub(crate) fn parse_tlvs(r: &mut Reader) -> Result<Match> {
        let mut m = Match::default();
        while !r.is_empty() {
            let f = MatchField::parse(r)?;
            if m.get(f.field).is_some() {
                return fail(OfpErr::OFPBMC_DUP_FIELD, "duplicate match field");
            }
            if !m.prereq_ok(f.field.info().prereq) {
                return fail(OfpErr::OFPBMC_BAD_PREREQ, "match prerequisite");
            }
            m.fields.push(f);
        }
        Ok(m)
    }

    pub(crate) fn emit_tlvs(&self, w: &mut Writer) {
        for f in &self.fields {
            f.emit(w);
        }
    }

    /// The TLVs as bytes (entries back to back, no padding): an `nx_match` body, for callers
    /// that lay out NXM themselves.
    pub fn tlv_bytes(&self) -> Vec<u8> {
        let mut w = Writer::new();
        self.emit_tlvs(&mut w);
        w.buf
    }

    /// Decodes an `nx_match` body (no padding), with the same checks as in messages.
    pub fn from_tlv_bytes(b: &[u8]) -> Result<Match> {
        let mut r = Reader::new(b, OfpErr::OFPBMC_BAD_LEN);
        Self::parse_tlvs(&mut r)
    }

    /// Length of the TLVs when encoded.
    pub fn tlv_len(&self) -> usize {
        let mut w = Writer::new();
        self.emit_tlvs(&mut w);
        w.len()
    }

    /// The flow value OVS's prerequisite check sees for `field`: value & mask, or 0 when the
    /// field is not matched (OVS checks `match->flow`, whose unmatched fields are zero).
    fn flow_value(&self, field: Field) -> u128 {
        self.get(field)
            .map(|f| f.value_u128() & f.mask_u128())
            .unwrap_or(0)
    }

    /// Whether prerequisite `p` is satisfied by the fields already present
    /// (Open vSwitch `mf_are_prereqs_ok` on the match's flow and mask).
    pub fn prereq_ok(&self, p: Prereq) -> bool {
        let et = self.flow_value(Field::EthType) as u16;
        let is_ip = et == 0x0800 || et == 0x86dd;
        let proto = self.flow_value(Field::IpProto) as u8;
        let frag_later = self.flow_value(Field::IpFrag) & 2 != 0;
        let icmp6_type = self.flow_value(Field::Icmpv6Type) as u8;
        let icmp6_code = self.flow_value(Field::Icmpv6Code) as u8;
        let is_icmpv6 = et == 0x86dd && proto == 58;
        let is_nd = is_icmpv6 && icmp6_code == 0 && (icmp6_type == 135 || icmp6_type == 136);
        match p {
            Prereq::None | Prereq::Ethernet => true,
            Prereq::VlanVid => {
                (self.flow_value(Field::VlanVid) | self.flow_value(Field::VlanTci)) & 0x1000 != 0
            }
            Prereq::Arp => et == 0x0806 || et == 0x8035,
            Prereq::Ipv4 => et == 0x0800,
            Prereq::Ipv6 => et == 0x86dd,
            Prereq::IpAny => is_ip,
            Prereq::Mpls => et == 0x8847 || et == 0x8848,
            Prereq::Tcp => is_ip && proto == 6 && !frag_later,
            Prereq::Udp => is_ip && proto == 17 && !frag_later,
            Prereq::Sctp => is_ip && proto == 132 && !frag_later,
            Prereq::Icmpv4 => et == 0x0800 && proto == 1,
            Prereq::Icmpv6 => is_icmpv6,
            Prereq::Nd => is_nd,
            Prereq::NdSolicit => is_nd && icmp6_type == 135,
            Prereq::NdAdvert => is_nd && icmp6_type == 136,
            Prereq::Nsh => et == 0x894f,
            Prereq::Ct => {
                // OVS is_ct_valid() with a mask: a bit implying a valid entry (new, est, rel,
                // rpl, snat, dnat) or +trk with an explicit -inv.
                let (v, m) = match self.get(Field::CtState) {
                    Some(f) => (
                        (f.value_u128() & f.mask_u128()) as u32,
                        f.mask_u128() as u32,
                    ),
                    None => (0, 0),
                };
                v & 0xcf != 0 || (v & 0x20 != 0 && m & 0x10 != 0 && v & 0x10 == 0)
            }
        }
    }

    /// Re-checks every field's prerequisites against the whole match (order-independent).
    pub fn validate(&self) -> Result<()> {
        for f in &self.fields {
            if !self.prereq_ok(f.field.info().prereq) {
                return fail(OfpErr::OFPBMC_BAD_PREREQ, "match prerequisite");
            }
        }
        Ok(())
    }
}

/// OpenFlow 1.1+ `ofp_match` (type OFPMT_OXM = 1): header, TLVs, padding to 8.
pub(crate) fn parse_ofp_match(r: &mut Reader) -> Result<Match> {
    let mtype = r.u16("ofp_match type")?;
    let len = r.u16("ofp_match length")? as usize;
    if mtype != 1 {
        return fail(OfpErr::OFPBMC_BAD_TYPE, "ofp_match type");
    }
    if len < 4 {
        return fail(OfpErr::OFPBMC_BAD_LEN, "ofp_match length");
    }
    let total = pad8(len);
    if r.remaining() < total - 4 {
        return fail(OfpErr::OFPBMC_BAD_LEN, "ofp_match length");
    }
    let mut body = r
        .sub(len - 4, "ofp_match")?
        .with_err(OfpErr::OFPBMC_BAD_LEN);
    r.skip(total - len, "ofp_match pad")?;
    Match::parse_tlvs(&mut body)
}

pub(crate) fn emit_ofp_match(m: &Match, w: &mut Writer) {
    let start = w.len();
    w.u16(1);
    w.u16(0);
    m.emit_tlvs(w);
    w.patch_len(start + 2, start);
    w.pad8_from(start);
}

/// Parses an `nx_match` of `len` bytes followed by padding to 8 (as in NXT_FLOW_MOD).
pub(crate) fn parse_nx_match(r: &mut Reader, len: usize) -> Result<Match> {
    let mut body = r.sub(len, "nx_match")?.with_err(OfpErr::OFPBMC_BAD_LEN);
    let m = Match::parse_tlvs(&mut body)?;
    let pad = pad8(len) - len;
    r.skip(pad.min(r.remaining()), "nx_match pad")?;
    Ok(m)
}

/// OpenFlow 1.0 `ofp_match`, kept verbatim (40 bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Of10Match {
    pub wildcards: u32,
    pub in_port: u16,
    pub dl_src: [u8; 6],
    pub dl_dst: [u8; 6],
    pub dl_vlan: u16,
    pub dl_vlan_pcp: u8,
    pub dl_type: u16,
    pub nw_tos: u8,
    pub nw_proto: u8,
    pub nw_src: u32,
    pub nw_dst: u32,
    pub tp_src: u16,
    pub tp_dst: u16,
}

/// OpenFlow 1.0 wildcard bits (OFPFW10_*).
pub mod of10_wc {
    pub const IN_PORT: u32 = 1 << 0;
    pub const DL_VLAN: u32 = 1 << 1;
    pub const DL_SRC: u32 = 1 << 2;
    pub const DL_DST: u32 = 1 << 3;
    pub const DL_TYPE: u32 = 1 << 4;
    pub const NW_PROTO: u32 = 1 << 5;
    pub const TP_SRC: u32 = 1 << 6;
    pub const TP_DST: u32 = 1 << 7;
    pub const NW_SRC_SHIFT: u32 = 8;
    pub const NW_DST_SHIFT: u32 = 14;
    pub const DL_VLAN_PCP: u32 = 1 << 20;
    pub const NW_TOS: u32 = 1 << 21;
    pub const ALL: u32 = (1 << 22) - 1;
}

impl Of10Match {
    pub const LEN: usize = 40;

    pub(crate) fn parse(r: &mut Reader) -> Result<Self> {
        let mut r = r.sub(Self::LEN, "ofp10_match")?;
        let wildcards = r.u32("wildcards")?;
        let in_port = r.u16("in_port")?;
        let dl_src = r.array("dl_src")?;
        let dl_dst = r.array("dl_dst")?;
        let dl_vlan = r.u16("dl_vlan")?;
        let dl_vlan_pcp = r.u8("pcp")?;
        r.pad(1, "pad")?;
        let dl_type = r.u16("dl_type")?;
        let nw_tos = r.u8("nw_tos")?;
        let nw_proto = r.u8("nw_proto")?;
        r.pad(2, "pad")?;
        Ok(Of10Match {
            wildcards,
            in_port,
            dl_src,
            dl_dst,
            dl_vlan,
            dl_vlan_pcp,
            dl_type,
            nw_tos,
            nw_proto,
            nw_src: r.u32("nw_src")?,
            nw_dst: r.u32("nw_dst")?,
            tp_src: r.u16("tp_src")?,
            tp_dst: r.u16("tp_dst")?,
        })
    }

    pub(crate) fn emit(&self, w: &mut Writer) {
        w.u32(self.wildcards);
        w.u16(self.in_port);
        w.bytes(&self.dl_src);
        w.bytes(&self.dl_dst);
        w.u16(self.dl_vlan);
        w.u8(self.dl_vlan_pcp);
        w.u8(0);
        w.u16(self.dl_type);
        w.u8(self.nw_tos);
        w.u8(self.nw_proto);
        w.zeros(2);
        w.u32(self.nw_src);
        w.u32(self.nw_dst);
        w.u16(self.tp_src);
        w.u16(self.tp_dst);
    }

    /// The equivalent field set (Open vSwitch `ofputil_match_from_ofp10_match`, NXM fields).
    pub fn to_match(&self) -> Match {
        use of10_wc::*;
        let wc = self.wildcards;
        let mut m = Match::default();
        let mut add = |field: Field, value: Vec<u8>, mask: Option<Vec<u8>>| {
            if let Some(header) = field.header_for(1, true) {
                m.fields.push(MatchField {
                    field,
                    header,
                    value,
                    mask,
                });
            }
        };
        if wc & IN_PORT == 0 {
            add(Field::InPort, self.in_port.to_be_bytes().to_vec(), None);
        }
        if wc & DL_SRC == 0 {
            add(Field::EthSrc, self.dl_src.to_vec(), None);
        }
        if wc & DL_DST == 0 {
            add(Field::EthDst, self.dl_dst.to_vec(), None);
        }
        let vlan_wild = wc & DL_VLAN != 0;
        let pcp_wild = wc & DL_VLAN_PCP != 0;
        if !vlan_wild && self.dl_vlan == 0xffff {
            add(Field::VlanTci, vec![0, 0], None);
        } else if !vlan_wild || !pcp_wild {
            let mut v = 0u16;
            let mut mask = 0x1000u16;
            if !vlan_wild {
                v |= (self.dl_vlan & 0xfff) | 0x1000;
                mask |= 0xfff;
            } else {
                v |= 0x1000;
            }
            if !pcp_wild {
                v |= ((self.dl_vlan_pcp as u16) & 7) << 13;
                mask |= 0xe000;
            }
            add(
                Field::VlanTci,
                v.to_be_bytes().to_vec(),
                Some(mask.to_be_bytes().to_vec()),
            );
        }
        if wc & DL_TYPE == 0 {
            add(Field::EthType, self.dl_type.to_be_bytes().to_vec(), None);
            let ip = self.dl_type == 0x0800;
            let arp = self.dl_type == 0x0806;
            if ip && wc & NW_TOS == 0 {
                add(Field::IpTos, vec![self.nw_tos & 0xfc], None);
            }
            if (ip || arp) && wc & NW_PROTO == 0 {
                if arp {
                    add(
                        Field::ArpOp,
                        (self.nw_proto as u16).to_be_bytes().to_vec(),
                        None,
                    );
                } else {
                    add(Field::IpProto, vec![self.nw_proto], None);
                }
            }
            let pfx = |shift: u32| {
                let n = (wc >> shift) & 0x3f;
                if n >= 32 {
                    0
                } else {
                    u32::MAX << n
                }
            };
            let (sf, df) = if arp {
                (Field::ArpSpa, Field::ArpTpa)
            } else {
                (Field::IpSrc, Field::IpDst)
            };
            if ip || arp {
                for (field, val, mask) in [
                    (sf, self.nw_src, pfx(NW_SRC_SHIFT)),
                    (df, self.nw_dst, pfx(NW_DST_SHIFT)),
                ] {
                    if mask != 0 {
                        let msk = if mask == u32::MAX {
                            None
                        } else {
                            Some(mask.to_be_bytes().to_vec())
                        };
                        add(field, (val & mask).to_be_bytes().to_vec(), msk);
                    }
                }
            }
            if ip && wc & NW_PROTO == 0 {
                let (s, d) = match self.nw_proto {
                    6 => (Some(Field::TcpSrc), Some(Field::TcpDst)),
                    17 => (Some(Field::UdpSrc), Some(Field::UdpDst)),
                    132 => (Some(Field::SctpSrc), Some(Field::SctpDst)),
                    1 => (Some(Field::IcmpType), Some(Field::IcmpCode)),
                    _ => (None, None),
                };
                let icmp = self.nw_proto == 1;
                if let (Some(s), true) = (s, wc & TP_SRC == 0) {
                    let v = if icmp {
                        vec![self.tp_src as u8]
                    } else {
                        self.tp_src.to_be_bytes().to_vec()
                    };
                    add(s, v, None);
                }
                if let (Some(d), true) = (d, wc & TP_DST == 0) {
                    let v = if icmp {
                        vec![self.tp_dst as u8]
                    } else {
                        self.tp_dst.to_be_bytes().to_vec()
                    };
                    add(d, v, None);
                }
            }
        }
        m
    }

    /// The OpenFlow 1.0 form of a field set, for connections that kept the standard flow
    /// format. Like Open vSwitch's `ofputil_match_to_ofp10_match`, what OpenFlow 1.0 cannot
    /// express (registers, metadata, partial MAC masks, IPv6...) is left out: the result
    /// matches at least the packets the field set matches.
    pub fn from_match(m: &Match) -> Of10Match {
        use of10_wc::*;
        let mut o = Of10Match {
            wildcards: ALL,
            ..Default::default()
        };
        // prefix length of a CIDR mask, None when not a prefix
        let prefix = |mask: u32| {
            let n = mask.leading_ones();
            (mask.checked_shl(n).unwrap_or(0) == 0).then_some(n)
        };
        let mut pcp_vlan = None;
        for f in &m.fields {
            let v = f.value_u128();
            let exact = f.mask.is_none();
            let mk = f.mask_u128();
            match f.field {
                Field::InPort if exact => {
                    o.in_port = if f.value.len() == 4 {
                        crate::action::port_to_of10(v as u32)
                    } else {
                        v as u16
                    };
                    o.wildcards &= !IN_PORT;
                }
                Field::EthSrc if exact => {
                    o.dl_src.copy_from_slice(&(v as u64).to_be_bytes()[2..]);
                    o.wildcards &= !DL_SRC;
                }
                Field::EthDst if exact => {
                    o.dl_dst.copy_from_slice(&(v as u64).to_be_bytes()[2..]);
                    o.wildcards &= !DL_DST;
                }
                Field::VlanTci => {
                    pcp_vlan = Some((v as u16, if exact { 0xffff } else { mk as u16 }))
                }
                Field::EthType if exact => {
                    o.dl_type = v as u16;
                    o.wildcards &= !DL_TYPE;
                }
                Field::IpTos if exact => {
                    o.nw_tos = v as u8 & 0xfc;
                    o.wildcards &= !NW_TOS;
                }
                Field::IpDscp if exact => {
                    o.nw_tos = (v as u8) << 2;
                    o.wildcards &= !NW_TOS;
                }
                Field::IpProto if exact => {
                    o.nw_proto = v as u8;
                    o.wildcards &= !NW_PROTO;
                }
                Field::ArpOp if exact && v <= 0xff => {
                    o.nw_proto = v as u8;
                    o.wildcards &= !NW_PROTO;
                }
                Field::IpSrc | Field::ArpSpa | Field::IpDst | Field::ArpTpa => {
                    let mask = if exact { u32::MAX } else { mk as u32 };
                    let Some(n) = prefix(mask) else { continue };
                    let wild = 32 - n;
                    if matches!(f.field, Field::IpSrc | Field::ArpSpa) {
                        o.nw_src = v as u32 & mask;
                        o.wildcards =
                            (o.wildcards & !(0x3f << NW_SRC_SHIFT)) | (wild << NW_SRC_SHIFT);
                    } else {
                        o.nw_dst = v as u32 & mask;
                        o.wildcards =
                            (o.wildcards & !(0x3f << NW_DST_SHIFT)) | (wild << NW_DST_SHIFT);
                    }
                }
                Field::TcpSrc | Field::UdpSrc | Field::SctpSrc | Field::IcmpType if exact => {
                    o.tp_src = v as u16;
                    o.wildcards &= !TP_SRC;
                }
                Field::TcpDst | Field::UdpDst | Field::SctpDst | Field::IcmpCode if exact => {
                    o.tp_dst = v as u16;
                    o.wildcards &= !TP_DST;
                }
                _ => {}
            }
        }
        if let Some((v, mask)) = pcp_vlan {
            if mask == 0xffff && v == 0 {
                // no 802.1Q header
                o.dl_vlan = 0xffff;
                o.wildcards &= !DL_VLAN;
            } else if v & 0x1000 != 0 {
                if mask & 0x1fff == 0x1fff {
                    o.dl_vlan = v & 0xfff;
                    o.wildcards &= !DL_VLAN;
                }
                if mask & 0xf000 == 0xf000 {
                    o.dl_vlan_pcp = (v >> 13) as u8;
                    o.wildcards &= !DL_VLAN_PCP;
                }
            }
        }
        o
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn of10_match_round_trips_through_field_sets() {
        let o = Of10Match {
            wildcards: of10_wc::ALL
                & !(of10_wc::IN_PORT
                    | of10_wc::DL_SRC
                    | of10_wc::DL_TYPE
                    | of10_wc::NW_PROTO
                    | of10_wc::TP_DST
                    | of10_wc::DL_VLAN
                    | (0x3f << of10_wc::NW_SRC_SHIFT))
                | (8 << of10_wc::NW_SRC_SHIFT),
            in_port: 3,
            dl_src: [0, 1, 2, 3, 4, 5],
            dl_vlan: 10,
            dl_type: 0x0800,
            nw_proto: 17,
            nw_src: 0x0a01_0200,
            tp_dst: 53,
            ..Default::default()
        };
        assert_eq!(Of10Match::from_match(&o.to_match()), o);
        // nothing OpenFlow 1.0 can express: everything wildcarded
        assert_eq!(
            Of10Match::from_match(&Match::default()).wildcards,
            of10_wc::ALL
        );
    }

    fn tlvs(bytes: &[u8]) -> Result<Match> {
        Match::parse_tlvs(&mut Reader::new(bytes, OfpErr::OFPBMC_BAD_LEN))
    }

    #[test]
    fn prerequisite_must_come_first() {
        // eth_type=0x0800 (OXM) then ip_src: fine.
        let ok = [0x80, 0, 0x0a, 2, 0x08, 0, 0x80, 0, 0x16, 4, 10, 0, 0, 1];
        assert_eq!(tlvs(&ok).unwrap().fields.len(), 2);
        // ip_src before eth_type: OVS refuses with BAD_PREREQ, so do we.
        let bad = [0x80, 0, 0x16, 4, 10, 0, 0, 1, 0x80, 0, 0x0a, 2, 0x08, 0];
        assert_eq!(tlvs(&bad).unwrap_err().kind, OfpErr::OFPBMC_BAD_PREREQ);
    }

    #[test]
    fn duplicate_and_unknown_fields() {
        let dup = [0, 1, 0, 4, 0, 0, 0, 1, 0, 1, 0, 4, 0, 0, 0, 2];
        assert_eq!(tlvs(&dup).unwrap_err().kind, OfpErr::OFPBMC_DUP_FIELD);
        let unknown = [0, 1, 0xfe, 4, 0, 0, 0, 1];
        assert_eq!(tlvs(&unknown).unwrap_err().kind, OfpErr::OFPBMC_BAD_FIELD);
        // Mask on eth_type (not maskable).
        let masked = [0x80, 0, 0x0b, 4, 8, 0, 0xff, 0xff];
        assert_eq!(tlvs(&masked).unwrap_err().kind, OfpErr::OFPBMC_BAD_MASK);
    }

    #[test]
    fn cookie_and_mpls_ttl_share_a_code() {
        let cookie = [0, 1, 0x3c, 8, 0, 0, 0, 0, 0, 0, 0x12, 0x34];
        assert_eq!(tlvs(&cookie).unwrap().fields[0].field, Field::Cookie);
        let ttl = [0x80, 0, 0x0a, 2, 0x88, 0x47, 0, 1, 0x3c, 1, 5];
        assert_eq!(tlvs(&ttl).unwrap().fields[1].field, Field::MplsTtl);
    }

    #[test]
    fn header_choice_per_version() {
        // OVS writes eth_src as OXM in OF1.2+, NXM in nx_match; reg0 always NXM.
        assert_eq!(
            Field::EthSrc.header_for(6, false).unwrap().class,
            class::OPENFLOW_BASIC
        );
        assert_eq!(
            Field::EthSrc.header_for(6, true).unwrap().class,
            class::NXM_OF
        );
        assert_eq!(
            Field::Reg(0).header_for(6, false).unwrap().class,
            class::NXM_NX
        );
        assert_eq!(
            Field::TcpFlags.header_for(4, false).unwrap().class,
            class::NXM_NX
        );
        assert_eq!(
            Field::TcpFlags.header_for(6, false).unwrap().class,
            class::OPENFLOW_BASIC
        );
        // Every numbered field maps back from its own header.
        for f in (0..16)
            .map(Field::Reg)
            .chain((0..8).map(Field::Xreg))
            .chain((0..4).map(Field::Xxreg))
            .chain((0..64).map(Field::TunMetadata))
        {
            let h = f.header_for(6, false).unwrap();
            assert_eq!(Field::from_header(&h), Some(f));
        }
    }

    #[test]
    fn ct_tuple_needs_valid_ct_state() {
        // ct_state=+trk (value 0x20 mask 0x20) then ct_nw_proto: refused like ovs-vswitchd.
        let bare = [
            0, 1, 0xd3, 8, 0, 0, 0, 0x20, 0, 0, 0, 0x20, 0, 1, 0xee, 1, 6,
        ];
        assert_eq!(tlvs(&bare).unwrap_err().kind, OfpErr::OFPBMC_BAD_PREREQ);
        // ct_state=+trk-inv is enough.
        let ok = [
            0, 1, 0xd3, 8, 0, 0, 0, 0x20, 0, 0, 0, 0x30, 0, 1, 0xee, 1, 6,
        ];
        assert!(tlvs(&ok).is_ok());
    }
}
