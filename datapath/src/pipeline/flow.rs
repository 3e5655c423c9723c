//! The pipeline's view of a packet: the datapath flow key plus the state only the OpenFlow
//! pipeline has (metadata, registers, the OpenFlow input port, conj_id, actset_output), as one
//! flat array of words so that the classifier masks, hashes and compares words, and so that
//! wildcard tracking is a word-wise OR.
//!
//! Words `0..PIPE_WORDS` are pipeline-internal: they start at known values for every packet and
//! are only ever derived from datapath fields, so a megaflow never needs to match them. Words
//! `DP..DP + KEY_WORDS` are exactly the datapath [`FlowKey`]: what a megaflow can match. The
//! order makes each classifier stage (metadata, L2, L3, L4) a contiguous range.
//!
//! [`loc`] maps every OpenFlow field the switch supports to its bits here. Values are host
//! integers (a MAC is a 48-bit number, an IPv6 address a 128-bit one), the same numbers the
//! codec's `MatchField::value_u128` yields.

use openflow::Field;

use crate::packet::key::{w, FlowKey, KEY_WORDS};

pub const PIPE_METADATA: usize = 0;
/// xreg0..xreg7: xreg k = reg(2k) << 32 | reg(2k+1), as in OVS.
pub const PIPE_XREG0: usize = 1;
/// OpenFlow in_port [0..32) | conj_id [32..64)
pub const PIPE_PORT_CONJ: usize = 9;
/// actset_output [0..32) | packet_type [32..64) (always 0: Ethernet)
pub const PIPE_ACTSET: usize = 10;
pub const PIPE_WORDS: usize = 11;
/// Where the datapath key starts.
pub const DP: usize = PIPE_WORDS;
pub const PKEY_WORDS: usize = DP + KEY_WORDS;

/// The pipeline key.
pub type PKey = [u64; PKEY_WORDS];

// `Loc` names words with a byte
const _: () = assert!(PKEY_WORDS <= 256);

/// Where a field lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
///
/// Bytes, not `usize`s: a `Loc` sits in every compiled `set_field`/`move` of every flow, and
/// with `usize`s it made each action 80 bytes instead of 48.
pub enum Loc {
    /// `bits` bits at `shift` in word `word`.
    Bits { word: u8, shift: u8, bits: u8 },
    /// A 128-bit field: high 64 bits in `hi`, low in `lo`.
    Wide { hi: u8, lo: u8 },
}

impl Loc {
    pub const fn bits(word: usize, shift: u32, bits: u32) -> Loc {
        Loc::Bits {
            word: word as u8,
            shift: shift as u8,
            bits: bits as u8,
        }
    }

    pub const fn wide(hi: usize, lo: usize) -> Loc {
        Loc::Wide {
            hi: hi as u8,
            lo: lo as u8,
        }
    }

    /// Width in bits.
    pub fn width(&self) -> u32 {
        match self {
            Loc::Bits { bits, .. } => *bits as u32,
            Loc::Wide { .. } => 128,
        }
    }

    #[inline]
    pub fn get(&self, k: &PKey) -> u128 {
        match *self {
            Loc::Bits { word, shift, bits } => {
                ((k[word as usize] >> shift) & low_bits(bits as u32)) as u128
            }
            Loc::Wide { hi, lo } => ((k[hi as usize] as u128) << 64) | k[lo as usize] as u128,
        }
    }

    /// Writes `value` (truncated to the field width).
    #[inline]
    pub fn set(&self, k: &mut PKey, value: u128) {
        match *self {
            Loc::Bits { word, shift, bits } => {
                let m = low_bits(bits as u32) << shift;
                let word = word as usize;
                k[word] = (k[word] & !m) | (((value as u64) << shift) & m);
            }
            Loc::Wide { hi, lo } => {
                k[hi as usize] = (value >> 64) as u64;
                k[lo as usize] = value as u64;
            }
        }
    }

    /// Writes the bits of `value` selected by `mask`.
    #[inline]
    pub fn set_masked(&self, k: &mut PKey, value: u128, mask: u128) {
        let cur = self.get(k);
        self.set(k, (cur & !mask) | (value & mask));
    }

    /// ORs `mask` (in field coordinates) into the word mask `m`.
    #[inline]
    pub fn or_mask(&self, m: &mut PKey, mask: u128) {
        match *self {
            Loc::Bits { word, shift, bits } => {
                m[word as usize] |= ((mask as u64) & low_bits(bits as u32)) << shift
            }
            Loc::Wide { hi, lo } => {
                m[hi as usize] |= (mask >> 64) as u64;
                m[lo as usize] |= mask as u64;
            }
        }
    }

    /// The full-width mask of this field.
    pub fn full(&self) -> u128 {
        match self {
            Loc::Bits { bits, .. } => low_bits(*bits as u32) as u128,
            Loc::Wide { .. } => u128::MAX,
        }
    }
}

#[inline]
const fn low_bits(bits: u32) -> u64 {
    if bits >= 64 {
        u64::MAX
    } else {
        (1u64 << bits) - 1
    }
}

/// Where `f` lives, or `None` for fields this switch does not implement (MPLS, NSH, ERSPAN,
/// GTP-U, IPv6 tunnel endpoints, conntrack IPv6 tuples): a flow that matches or sets them is
/// refused with OFPBMC_BAD_FIELD / OFPBAC_BAD_SET_TYPE.
pub fn loc(f: Field) -> Option<Loc> {
    use Field::*;
    Some(match f {
        InPort | InPortOxm => Loc::bits(PIPE_PORT_CONJ, 0, 32),
        Metadata => Loc::bits(PIPE_METADATA, 0, 64),
        Reg(n) if n < 16 => Loc::bits(
            PIPE_XREG0 + n as usize / 2,
            if n % 2 == 0 { 32 } else { 0 },
            32,
        ),
        Xreg(n) if n < 8 => Loc::bits(PIPE_XREG0 + n as usize, 0, 64),
        Xxreg(n) if n < 4 => {
            Loc::wide(PIPE_XREG0 + 2 * n as usize, PIPE_XREG0 + 2 * n as usize + 1)
        }
        ConjId => Loc::bits(PIPE_PORT_CONJ, 32, 32),
        ActsetOutput => Loc::bits(PIPE_ACTSET, 0, 32),
        PacketType => Loc::bits(PIPE_ACTSET, 32, 32),
        RecircId => Loc::bits(DP + w::META, 32, 32),
        TunId => Loc::bits(DP + w::TUN_ID, 0, 64),
        TunSrc => Loc::bits(DP + w::TUN_ADDR, 32, 32),
        TunDst => Loc::bits(DP + w::TUN_ADDR, 0, 32),
        TunMetadata(0) => Loc::bits(DP + w::TUN_META0, 0, 64),
        TunFlags => Loc::bits(DP + w::TUN_CT, 0, 16),
        CtZone => Loc::bits(DP + w::TUN_CT, 16, 16),
        CtState => Loc::bits(DP + w::TUN_CT, 32, 32),
        PktMark => Loc::bits(DP + w::MARKS, 0, 32),
        CtMark => Loc::bits(DP + w::MARKS, 32, 32),
        CtLabel => Loc::wide(DP + w::CT_LABEL_HI, DP + w::CT_LABEL_LO),
        DpHash => Loc::bits(DP + w::HASH, 0, 32),
        CtNwProto => Loc::bits(DP + w::HASH, 32, 8),
        CtNwSrc => Loc::bits(DP + w::CT_NW, 0, 32),
        CtNwDst => Loc::bits(DP + w::CT_NW, 32, 32),
        CtTpSrc => Loc::bits(DP + w::CT_TP, 0, 16),
        CtTpDst => Loc::bits(DP + w::CT_TP, 16, 16),
        EthDst => Loc::bits(DP + w::ETH_DST, 0, 48),
        EthSrc => Loc::bits(DP + w::ETH_SRC, 0, 48),
        EthType => Loc::bits(DP + w::ETH_SRC, 48, 16),
        VlanTci => Loc::bits(DP + w::ETH_DST, 48, 16),
        // OXM vlan_vid: 12 bits of VID plus OFPVID_PRESENT (0x1000), which is our CFI bit
        VlanVid => Loc::bits(DP + w::ETH_DST, 48, 13),
        VlanPcp => Loc::bits(DP + w::ETH_DST, 61, 3),
        IpProto => Loc::bits(DP + w::L3, 0, 8),
        // the ARP opcode lives in nw_proto, as in OVS (only the low 8 bits exist)
        ArpOp => Loc::bits(DP + w::L3, 0, 8),
        IpTos => Loc::bits(DP + w::L3, 8, 8),
        IpEcn => Loc::bits(DP + w::L3, 8, 2),
        IpDscp => Loc::bits(DP + w::L3, 10, 6),
        IpTtl => Loc::bits(DP + w::L3, 16, 8),
        IpFrag => Loc::bits(DP + w::L3, 24, 8),
        Ipv6Label => Loc::bits(DP + w::L3, 32, 20),
        IpSrc | ArpSpa => Loc::bits(DP + w::NW_SRC_LO, 0, 32),
        IpDst | ArpTpa => Loc::bits(DP + w::NW_DST_LO, 0, 32),
        Ipv6Src => Loc::wide(DP + w::NW_SRC_HI, DP + w::NW_SRC_LO),
        Ipv6Dst => Loc::wide(DP + w::NW_DST_HI, DP + w::NW_DST_LO),
        ArpSha | NdSll => Loc::bits(DP + w::ARP_SHA, 0, 48),
        ArpTha | NdTll => Loc::bits(DP + w::ARP_THA, 0, 48),
        NdTarget => Loc::wide(DP + w::ND_TARGET_HI, DP + w::ND_TARGET_LO),
        TcpSrc | UdpSrc | SctpSrc => Loc::bits(DP + w::L4, 0, 16),
        TcpDst | UdpDst | SctpDst => Loc::bits(DP + w::L4, 16, 16),
        IcmpType | Icmpv6Type => Loc::bits(DP + w::L4, 0, 8),
        IcmpCode | Icmpv6Code => Loc::bits(DP + w::L4, 16, 8),
        TcpFlags => Loc::bits(DP + w::L4, 32, 12),
        _ => return None,
    })
}

/// Classifier stages, cheapest-to-prune first as in OVS: metadata (pipeline state, in_port,
/// tunnel, conntrack), then L2, L3, L4. Contiguous word ranges covering the whole key.
pub fn stages() -> [std::ops::Range<usize>; 4] {
    [
        0..DP + w::L2_START,
        DP + w::L2_START..DP + w::L3_START,
        DP + w::L3_START..DP + w::L4_START,
        DP + w::L4_START..PKEY_WORDS,
    ]
}

/// Builds the pipeline key of a packet: its datapath key, the OpenFlow input port, zeroed
/// registers and metadata.
pub fn pkey_of(key: &FlowKey, of_in_port: u32) -> PKey {
    let mut k = [0u64; PKEY_WORDS];
    k[DP..].copy_from_slice(&key.w);
    k[PIPE_PORT_CONJ] = of_in_port as u64;
    k
}

/// The datapath part of a pipeline mask.
pub fn dp_mask(m: &PKey) -> FlowKey {
    let mut f = FlowKey::default();
    f.w.copy_from_slice(&m[DP..]);
    f
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_supported_field_round_trips_and_fields_do_not_collide() {
        use openflow::Field::*;
        let fields = [
            InPortOxm,
            Metadata,
            Reg(0),
            Reg(1),
            Reg(15),
            TunId,
            TunSrc,
            TunDst,
            TunMetadata(0),
            TunFlags,
            CtZone,
            CtState,
            PktMark,
            CtMark,
            CtLabel,
            DpHash,
            RecircId,
            ConjId,
            EthDst,
            EthSrc,
            EthType,
            VlanTci,
            IpProto,
            IpTos,
            IpTtl,
            IpFrag,
            Ipv6Label,
            IpSrc,
            IpDst,
            Ipv6Src,
            Ipv6Dst,
            ArpSha,
            ArpTha,
            NdTarget,
            TcpSrc,
            TcpDst,
            TcpFlags,
            ActsetOutput,
        ];
        // distinct storage: writing all-ones to one leaves every other field zero
        for (i, f) in fields.iter().enumerate() {
            let l = loc(*f).unwrap();
            let mut k = [0u64; PKEY_WORDS];
            l.set(&mut k, u128::MAX);
            assert_eq!(l.get(&k), l.full(), "{f:?}");
            // IPv4 and IPv6 addresses share storage: their prerequisites (eth_type) exclude
            // each other in any one match or packet
            let shared = |a: Field, b: Field| {
                matches!(
                    (a, b),
                    (IpSrc, Ipv6Src) | (Ipv6Src, IpSrc) | (IpDst, Ipv6Dst) | (Ipv6Dst, IpDst)
                )
            };
            for (j, g) in fields.iter().enumerate() {
                if i != j && !shared(*f, *g) {
                    assert_eq!(loc(*g).unwrap().get(&k), 0, "{f:?} overlaps {g:?}");
                }
            }
        }
    }

    #[test]
    fn views_share_storage_as_in_ovs() {
        let mut k = [0u64; PKEY_WORDS];
        loc(Field::Xreg(0))
            .unwrap()
            .set(&mut k, 0x1111_2222_3333_4444);
        assert_eq!(loc(Field::Reg(0)).unwrap().get(&k), 0x1111_2222);
        assert_eq!(loc(Field::Reg(1)).unwrap().get(&k), 0x3333_4444);
        loc(Field::Xxreg(1))
            .unwrap()
            .set(&mut k, 0xaaaa_bbbb_cccc_dddd_eeee_ffff_0000_1111);
        assert_eq!(loc(Field::Reg(4)).unwrap().get(&k), 0xaaaa_bbbb);
        assert_eq!(loc(Field::Reg(7)).unwrap().get(&k), 0x0000_1111);
        loc(Field::VlanTci).unwrap().set(&mut k, 0x3064);
        assert_eq!(loc(Field::VlanVid).unwrap().get(&k), 0x1064);
        assert_eq!(loc(Field::VlanPcp).unwrap().get(&k), 1);
        loc(Field::IpTos).unwrap().set(&mut k, 0xb9);
        assert_eq!(loc(Field::IpDscp).unwrap().get(&k), 0x2e);
        assert_eq!(loc(Field::IpEcn).unwrap().get(&k), 1);
        assert!(loc(Field::MplsLabel).is_none());
    }

    #[test]
    fn masked_set_and_mask_building() {
        let mut k = [0u64; PKEY_WORDS];
        let l = loc(Field::Reg(3)).unwrap();
        l.set(&mut k, 0xffff_0000);
        l.set_masked(&mut k, 0x0000_1234, 0x0000_ffff);
        assert_eq!(l.get(&k), 0xffff_1234);
        let mut m = [0u64; PKEY_WORDS];
        l.or_mask(&mut m, 0xff);
        assert_eq!(m[PIPE_XREG0 + 1], 0xff);
        let st = stages();
        assert_eq!(st[0].start, 0);
        for i in 1..4 {
            assert_eq!(st[i - 1].end, st[i].start, "contiguous stages");
        }
        assert_eq!(st[3].end, PKEY_WORDS);
    }
}
