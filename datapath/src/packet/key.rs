//! Flow-key extraction: one pass over the headers into a fixed array of 64-bit words.
//!
//! The key is a flat `[u64; KEY_WORDS]` so that masking, hashing and comparing are loops over
//! words (what a megaflow cache does per packet) and so that the layout can later be mirrored into
//! a BPF map for an XDP fast tier. Field packing follows Open vSwitch's conventions where a
//! convention exists: `vlan_tci` carries the CFI bit (0x1000) when a tag is present, ICMP type and
//! code live in `tp_src`/`tp_dst`, the ARP opcode in `nw_proto`, `nw_frag` uses OVS's ANY/LATER
//! bits (lib/flow.h).

use super::{be16, ethertype, ipproto, Mac, Malformed, Result};

pub const KEY_WORDS: usize = 24;

/// Word indices and bit positions of every field. Metadata words (in_port, tunnel,
/// conntrack) come first, then L2, L3 and L4, so that each classifier stage is a contiguous range
/// of words.
pub mod w {
    /// in_port [0..32) | recirc_id [32..64)
    pub const META: usize = 0;
    /// tun_id
    pub const TUN_ID: usize = 1;
    /// tun_dst [0..32) | tun_src [32..64)
    pub const TUN_ADDR: usize = 2;
    /// tun_metadata0 (OVN maps its 4-byte Geneve option here)
    pub const TUN_META0: usize = 3;
    /// tun_flags [0..16) | ct_zone [16..32) | ct_state [32..64)
    pub const TUN_CT: usize = 4;
    /// pkt_mark [0..32) | ct_mark [32..64)
    pub const MARKS: usize = 5;
    pub const CT_LABEL_HI: usize = 6;
    pub const CT_LABEL_LO: usize = 7;
    /// dp_hash [0..32) | ct_nw_proto [32..40)
    pub const HASH: usize = 8;
    /// ct_nw_src [0..32) | ct_nw_dst [32..64)
    pub const CT_NW: usize = 9;
    /// ct_tp_src [0..16) | ct_tp_dst [16..32)
    pub const CT_TP: usize = 10;
    /// Which tunnel metadata options are present (bit 0: tun_metadata0): set by decap when
    /// the mapped Geneve option came with the packet and by set_field, read by encap, which
    /// emits only present options (as OVS). Words `0..L2_START` are the metadata stage.
    pub const TUN_PRESENT: usize = 11;
    pub const L2_START: usize = 12;
    /// dl_dst [0..48) | vlan_tci [48..64)
    pub const ETH_DST: usize = 12;
    /// dl_src [0..48) | dl_type [48..64)
    pub const ETH_SRC: usize = 13;
    pub const L3_START: usize = 14;
    /// nw_proto [0..8) | nw_tos [8..16) | nw_ttl [16..24) | nw_frag [24..32) | ipv6_label [32..52)
    pub const L3: usize = 14;
    pub const NW_SRC_HI: usize = 15;
    /// IPv4 source (and ARP spa) in the low 32 bits
    pub const NW_SRC_LO: usize = 16;
    pub const NW_DST_HI: usize = 17;
    pub const NW_DST_LO: usize = 18;
    /// arp_sha / nd_sll [0..48)
    pub const ARP_SHA: usize = 19;
    /// arp_tha / nd_tll [0..48)
    pub const ARP_THA: usize = 20;
    pub const ND_TARGET_HI: usize = 21;
    pub const ND_TARGET_LO: usize = 22;
    pub const L4_START: usize = 23;
    /// tp_src [0..16) | tp_dst [16..32) | tcp_flags [32..48)
    pub const L4: usize = 23;
}

pub const FRAG_ANY: u8 = 1;
pub const FRAG_LATER: u8 = 2;
pub const VLAN_CFI: u16 = 0x1000;

const MAC_MASK: u64 = (1 << 48) - 1;

/// A flow key. Unused words are zero.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
#[repr(C, align(64))]
pub struct FlowKey {
    pub w: [u64; KEY_WORDS],
}

impl std::fmt::Debug for FlowKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "in_port={},dl_src={},dl_dst={},dl_type=0x{:04x},vlan_tci=0x{:04x},nw_proto={},tp_src={},tp_dst={}",
            self.in_port(),
            self.dl_src(),
            self.dl_dst(),
            self.dl_type(),
            self.vlan_tci(),
            self.nw_proto(),
            self.tp_src(),
            self.tp_dst()
        )
    }
}

impl FlowKey {
    #[inline]
    pub fn in_port(&self) -> u32 {
        self.w[w::META] as u32
    }
    /// Non-zero for a packet back from the connection tracker (`ct(table=N)`).
    #[inline]
    pub fn recirc_id(&self) -> u32 {
        (self.w[w::META] >> 32) as u32
    }
    #[inline]
    pub fn set_in_port(&mut self, p: u32) {
        self.w[w::META] = (self.w[w::META] & !0xffff_ffff) | p as u64;
    }
    #[inline]
    pub fn dl_dst(&self) -> Mac {
        Mac::from_u64(self.w[w::ETH_DST] & MAC_MASK)
    }
    #[inline]
    pub fn dl_src(&self) -> Mac {
        Mac::from_u64(self.w[w::ETH_SRC] & MAC_MASK)
    }
    #[inline]
    pub fn dl_dst_u64(&self) -> u64 {
        self.w[w::ETH_DST] & MAC_MASK
    }
    #[inline]
    pub fn dl_src_u64(&self) -> u64 {
        self.w[w::ETH_SRC] & MAC_MASK
    }
    #[inline]
    pub fn vlan_tci(&self) -> u16 {
        (self.w[w::ETH_DST] >> 48) as u16
    }
    /// The VLAN id, 0 when untagged.
    #[inline]
    pub fn vlan_vid(&self) -> u16 {
        self.vlan_tci() & 0x0fff
    }
    #[inline]
    pub fn dl_type(&self) -> u16 {
        (self.w[w::ETH_SRC] >> 48) as u16
    }
    #[inline]
    pub fn nw_proto(&self) -> u8 {
        self.w[w::L3] as u8
    }
    #[inline]
    pub fn nw_tos(&self) -> u8 {
        (self.w[w::L3] >> 8) as u8
    }
    #[inline]
    pub fn nw_ttl(&self) -> u8 {
        (self.w[w::L3] >> 16) as u8
    }
    #[inline]
    pub fn nw_frag(&self) -> u8 {
        (self.w[w::L3] >> 24) as u8
    }
    #[inline]
    pub fn tp_src(&self) -> u16 {
        self.w[w::L4] as u16
    }
    #[inline]
    pub fn tp_dst(&self) -> u16 {
        (self.w[w::L4] >> 16) as u16
    }
    #[inline]
    pub fn tcp_flags(&self) -> u16 {
        (self.w[w::L4] >> 32) as u16
    }
    pub fn nw_src_v4(&self) -> std::net::Ipv4Addr {
        std::net::Ipv4Addr::from(self.w[w::NW_SRC_LO] as u32)
    }
    pub fn nw_dst_v4(&self) -> std::net::Ipv4Addr {
        std::net::Ipv4Addr::from(self.w[w::NW_DST_LO] as u32)
    }
    pub fn nw_src_v6(&self) -> std::net::Ipv6Addr {
        std::net::Ipv6Addr::from(
            ((self.w[w::NW_SRC_HI] as u128) << 64) | self.w[w::NW_SRC_LO] as u128,
        )
    }
    pub fn nw_dst_v6(&self) -> std::net::Ipv6Addr {
        std::net::Ipv6Addr::from(
            ((self.w[w::NW_DST_HI] as u128) << 64) | self.w[w::NW_DST_LO] as u128,
        )
    }
    pub fn arp_sha(&self) -> Mac {
        Mac::from_u64(self.w[w::ARP_SHA] & MAC_MASK)
    }
    pub fn arp_tha(&self) -> Mac {
        Mac::from_u64(self.w[w::ARP_THA] & MAC_MASK)
    }
}

/// What the extractor learnt about the layout, for actions that edit the packet (checksum
/// completion today, NAT and tunnels later).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Layout {
    /// Offset of the L3 header (after any VLAN tag).
    pub l3: u16,
    /// Offset of the L4 header, 0 when there is none (non-IP, later fragments).
    pub l4: u16,
    /// L4 length from the IP header (segment length for the pseudo-header).
    pub l4_len: u16,
    /// 4 or 6 for IP packets, 0 otherwise.
    pub ip_version: u8,
}

#[inline]
fn mac48(b: &[u8], at: usize) -> u64 {
    u64::from_be_bytes([
        0,
        0,
        b[at],
        b[at + 1],
        b[at + 2],
        b[at + 3],
        b[at + 4],
        b[at + 5],
    ])
}

#[inline]
fn be64(b: &[u8], at: usize) -> u64 {
    let mut x = [0u8; 8];
    x.copy_from_slice(&b[at..at + 8]);
    u64::from_be_bytes(x)
}

/// Extracts the flow key of `frame` received on `in_port`. Malformed headers are an error (the
/// caller drops and counts the frame); unknown protocols are not (the key just stops there).
pub fn extract(frame: &[u8], in_port: u32, key: &mut FlowKey, lay: &mut Layout) -> Result<()> {
    key.w = [0; KEY_WORDS];
    *lay = Layout::default();
    if frame.len() < 14 {
        return Err(Malformed::Truncated);
    }
    let dst = mac48(frame, 0);
    let src = mac48(frame, 6);
    let mut off = 12;
    let mut dl_type = be16(frame, off);
    let mut tci: u16 = 0;
    off += 2;
    if dl_type == ethertype::VLAN || dl_type == ethertype::QINQ {
        if frame.len() < off + 4 {
            return Err(Malformed::Truncated);
        }
        tci = be16(frame, off) | VLAN_CFI;
        dl_type = be16(frame, off + 2);
        off += 4;
    }
    // 802.3 length field: OVS reports dl_type 0x05ff for non-Ethernet-II frames
    if dl_type < 0x0600 {
        dl_type = 0x05ff;
    }
    key.w[w::META] = in_port as u64;
    key.w[w::ETH_DST] = dst | ((tci as u64) << 48);
    key.w[w::ETH_SRC] = src | ((dl_type as u64) << 48);
    lay.l3 = off as u16;
    let l3 = &frame[off..];
    match dl_type {
        ethertype::IPV4 => extract_ipv4(l3, off, key, lay),
        ethertype::IPV6 => extract_ipv6(l3, off, key, lay),
        ethertype::ARP | ethertype::RARP => {
            let p = super::arp::Packet::new_checked(l3)?;
            let op = p.oper();
            if op <= 0xff {
                key.w[w::L3] = op as u64;
            }
            key.w[w::NW_SRC_LO] = u32::from_be_bytes(p.spa().octets()) as u64;
            key.w[w::NW_DST_LO] = u32::from_be_bytes(p.tpa().octets()) as u64;
            key.w[w::ARP_SHA] = mac48(l3, 8);
            key.w[w::ARP_THA] = mac48(l3, 18);
            Ok(())
        }
        _ => Ok(()),
    }
}

fn extract_ipv4(l3: &[u8], l3_off: usize, key: &mut FlowKey, lay: &mut Layout) -> Result<()> {
    let p = super::ipv4::Packet::new_checked(l3)?;
    let proto = p.protocol();
    let mut frag = 0u8;
    if p.more_frags() || p.frag_offset() != 0 {
        frag = FRAG_ANY;
        if p.frag_offset() != 0 {
            frag |= FRAG_LATER;
        }
    }
    key.w[w::L3] =
        proto as u64 | (p.dscp_ecn() as u64) << 8 | (p.ttl() as u64) << 16 | (frag as u64) << 24;
    key.w[w::NW_SRC_LO] = u32::from_be_bytes(p.src_bytes()) as u64;
    key.w[w::NW_DST_LO] = u32::from_be_bytes(p.dst_bytes()) as u64;
    lay.ip_version = 4;
    if frag & FRAG_LATER != 0 {
        return Ok(());
    }
    let hl = p.header_len();
    let l4 = &l3[hl..p.total_len() as usize];
    lay.l4 = (l3_off + hl) as u16;
    lay.l4_len = l4.len() as u16;
    extract_l4(l4, proto, false, key)
}

fn extract_ipv6(l3: &[u8], l3_off: usize, key: &mut FlowKey, lay: &mut Layout) -> Result<()> {
    let p = super::ipv6::Packet::new_checked(l3)?;
    let end = super::ipv6::HEADER_LEN + p.payload_len() as usize;
    let l3 = &l3[..end];
    let mut next = p.next_header();
    let mut off = super::ipv6::HEADER_LEN;
    let mut frag = 0u8;
    // walk extension headers (bounded: a packet cannot make us loop)
    for _ in 0..8 {
        match next {
            0 | 43 | 60 => {
                if l3.len() < off + 8 {
                    return Err(Malformed::Truncated);
                }
                let len = (l3[off + 1] as usize + 1) * 8;
                if l3.len() < off + len {
                    return Err(Malformed::Truncated);
                }
                next = l3[off];
                off += len;
            }
            51 => {
                // AH: length in 4-byte units minus 2
                if l3.len() < off + 8 {
                    return Err(Malformed::Truncated);
                }
                let len = (l3[off + 1] as usize + 2) * 4;
                if l3.len() < off + len {
                    return Err(Malformed::Truncated);
                }
                next = l3[off];
                off += len;
            }
            44 => {
                if l3.len() < off + 8 {
                    return Err(Malformed::Truncated);
                }
                frag = FRAG_ANY;
                let offlg = be16(l3, off + 2);
                if offlg & 0xfff8 != 0 {
                    frag |= FRAG_LATER;
                }
                next = l3[off];
                off += 8;
            }
            _ => break,
        }
    }
    key.w[w::L3] = next as u64
        | (p.traffic_class() as u64) << 8
        | (p.hop_limit() as u64) << 16
        | (frag as u64) << 24
        | (p.flow_label() as u64) << 32;
    key.w[w::NW_SRC_HI] = be64(l3, 8);
    key.w[w::NW_SRC_LO] = be64(l3, 16);
    key.w[w::NW_DST_HI] = be64(l3, 24);
    key.w[w::NW_DST_LO] = be64(l3, 32);
    lay.ip_version = 6;
    if frag & FRAG_LATER != 0 {
        return Ok(());
    }
    let l4 = &l3[off..];
    lay.l4 = (l3_off + off) as u16;
    lay.l4_len = l4.len() as u16;
    extract_l4(l4, next, true, key)
}

fn extract_l4(l4: &[u8], proto: u8, v6: bool, key: &mut FlowKey) -> Result<()> {
    match proto {
        ipproto::TCP => {
            let t = super::tcp::Packet::new_checked(l4)?;
            key.w[w::L4] =
                t.src_port() as u64 | (t.dst_port() as u64) << 16 | (t.flags() as u64) << 32;
        }
        ipproto::UDP => {
            let u = super::udp::Packet::new_checked(l4)?;
            key.w[w::L4] = u.src_port() as u64 | (u.dst_port() as u64) << 16;
        }
        ipproto::SCTP => {
            if l4.len() < 12 {
                return Err(Malformed::Truncated);
            }
            key.w[w::L4] = be16(l4, 0) as u64 | (be16(l4, 2) as u64) << 16;
        }
        ipproto::ICMP if !v6 => {
            let i = super::icmp::Packet::new_checked(l4)?;
            key.w[w::L4] = i.msg_type() as u64 | (i.code() as u64) << 16;
        }
        ipproto::ICMPV6 if v6 => {
            let i = super::icmp::Packet::new_checked(l4)?;
            let ty = i.msg_type();
            key.w[w::L4] = ty as u64 | (i.code() as u64) << 16;
            if i.code() == 0
                && (ty == super::icmp::v6type::NEIGHBOR_SOLICIT
                    || ty == super::icmp::v6type::NEIGHBOR_ADVERT)
            {
                if let Some(t) = i.nd_target() {
                    key.w[w::ND_TARGET_HI] = be64(&t, 0);
                    key.w[w::ND_TARGET_LO] = be64(&t, 8);
                    // options: type, length in 8-byte units; bad options end the walk
                    let mut o = 24;
                    while o + 8 <= l4.len() {
                        let len = l4[o + 1] as usize * 8;
                        if len == 0 || o + len > l4.len() {
                            break;
                        }
                        match l4[o] {
                            1 => key.w[w::ARP_SHA] = mac48(l4, o + 2),
                            2 => key.w[w::ARP_THA] = mac48(l4, o + 2),
                            _ => {}
                        }
                        o += len;
                    }
                }
            }
        }
        _ => {}
    }
    Ok(())
}

/// Completes a partial TCP/UDP checksum (see [`super::checksum`]) if the packet carries one.
/// Returns whether it changed the packet. Fragments and non-TCP/UDP packets are left alone.
#[inline]
pub fn complete_partial_checksum(frame: &mut [u8], key: &FlowKey, lay: &Layout) -> bool {
    use super::checksum;
    if lay.l4 == 0 || key.nw_frag() != 0 {
        return false;
    }
    let proto = key.nw_proto();
    let (csum_off, udp) = match proto {
        ipproto::TCP => (super::tcp::CHECKSUM_OFFSET, false),
        ipproto::UDP => (super::udp::CHECKSUM_OFFSET, true),
        _ => return false,
    };
    let l4 = lay.l4 as usize;
    let l4_len = lay.l4_len as usize;
    if frame.len() < l4 + l4_len || l4_len < csum_off + 2 {
        return false;
    }
    let field = be16(frame, l4 + csum_off);
    if udp && field == 0 && lay.ip_version == 4 {
        return false; // no checksum
    }
    let l3 = lay.l3 as usize;
    let pseudo = if lay.ip_version == 4 {
        let s = [
            frame[l3 + 12],
            frame[l3 + 13],
            frame[l3 + 14],
            frame[l3 + 15],
        ];
        let d = [
            frame[l3 + 16],
            frame[l3 + 17],
            frame[l3 + 18],
            frame[l3 + 19],
        ];
        checksum::pseudo_v4(s, d, proto, l4_len as u16)
    } else {
        let mut s = [0u8; 16];
        let mut d = [0u8; 16];
        s.copy_from_slice(&frame[l3 + 8..l3 + 24]);
        d.copy_from_slice(&frame[l3 + 24..l3 + 40]);
        checksum::pseudo_v6(&s, &d, proto, l4_len as u32)
    };
    if !checksum::is_partial(field, pseudo) {
        return false;
    }
    checksum::complete(&mut frame[l4..l4 + l4_len], csum_off, udp);
    true
}

#[cfg(test)]
pub(crate) mod testpkt {
    //! Builders for test frames.
    use super::super::checksum;

    pub fn eth(dst: [u8; 6], src: [u8; 6], ty: u16) -> Vec<u8> {
        let mut v = Vec::new();
        v.extend_from_slice(&dst);
        v.extend_from_slice(&src);
        v.extend_from_slice(&ty.to_be_bytes());
        v
    }

    /// A UDP/IPv4 frame with a valid (or, if `partial`, a partial) checksum.
    pub fn udp4(
        src: [u8; 4],
        dst: [u8; 4],
        sport: u16,
        dport: u16,
        payload: &[u8],
        partial: bool,
    ) -> Vec<u8> {
        let mut f = eth([2, 0, 0, 0, 0, 2], [2, 0, 0, 0, 0, 1], 0x0800);
        let udp_len = 8 + payload.len();
        let total = 20 + udp_len;
        let mut ip = vec![
            0x45,
            0,
            (total >> 8) as u8,
            total as u8,
            0,
            1,
            0x40,
            0,
            64,
            17,
            0,
            0,
        ];
        ip.extend_from_slice(&src);
        ip.extend_from_slice(&dst);
        let c = checksum::checksum(&ip);
        ip[10..12].copy_from_slice(&c.to_be_bytes());
        f.extend_from_slice(&ip);
        let mut udp = vec![
            (sport >> 8) as u8,
            sport as u8,
            (dport >> 8) as u8,
            dport as u8,
            (udp_len >> 8) as u8,
            udp_len as u8,
            0,
            0,
        ];
        udp.extend_from_slice(payload);
        let pseudo = checksum::pseudo_v4(src, dst, 17, udp_len as u16);
        if partial {
            udp[6..8].copy_from_slice(&checksum::fold(pseudo).to_be_bytes());
        } else {
            let c = !checksum::fold(checksum::sum(pseudo, &udp));
            udp[6..8].copy_from_slice(&(if c == 0 { 0xffff } else { c }).to_be_bytes());
        }
        f.extend_from_slice(&udp);
        f
    }
}

#[cfg(test)]
mod tests {
    use super::testpkt::*;
    use super::*;

    #[test]
    fn udp_ipv4_key() {
        let f = udp4([10, 0, 0, 1], [10, 0, 0, 2], 1234, 80, b"hello", false);
        let mut k = FlowKey::default();
        let mut l = Layout::default();
        extract(&f, 7, &mut k, &mut l).unwrap();
        assert_eq!(k.in_port(), 7);
        assert_eq!(k.dl_type(), 0x0800);
        assert_eq!(k.dl_src().to_string(), "02:00:00:00:00:01");
        assert_eq!(k.nw_proto(), 17);
        assert_eq!(k.nw_ttl(), 64);
        assert_eq!(k.nw_src_v4(), std::net::Ipv4Addr::new(10, 0, 0, 1));
        assert_eq!((k.tp_src(), k.tp_dst()), (1234, 80));
        assert_eq!(
            l,
            Layout {
                l3: 14,
                l4: 34,
                l4_len: 13,
                ip_version: 4
            }
        );
    }

    #[test]
    fn vlan_and_arp_key() {
        let mut f = eth([0xff; 6], [2, 0, 0, 0, 0, 9], 0x8100);
        f.extend_from_slice(&[0x20, 0x0a, 0x08, 0x06]); // pcp 1, vid 10, ARP
        f.extend_from_slice(&[
            0, 1, 8, 0, 6, 4, 0, 1, 2, 0, 0, 0, 0, 9, 10, 0, 0, 9, 0, 0, 0, 0, 0, 0, 10, 0, 0, 1,
        ]);
        let mut k = FlowKey::default();
        let mut l = Layout::default();
        extract(&f, 1, &mut k, &mut l).unwrap();
        assert_eq!(k.vlan_tci(), 0x200a | VLAN_CFI);
        assert_eq!(k.vlan_vid(), 10);
        assert_eq!(k.dl_type(), 0x0806);
        assert_eq!(k.nw_proto(), 1, "ARP request opcode");
        assert_eq!(k.nw_dst_v4(), std::net::Ipv4Addr::new(10, 0, 0, 1));
        assert_eq!(k.arp_sha().to_string(), "02:00:00:00:00:09");
        assert_eq!(l.l3, 18);
    }

    #[test]
    fn ipv6_nd_key() {
        let mut f = eth([0x33, 0x33, 0xff, 0, 0, 2], [2, 0, 0, 0, 0, 1], 0x86dd);
        let mut ip = vec![0x60, 0, 0, 0, 0, 32, 58, 255];
        ip.extend_from_slice(&[0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
        ip.extend_from_slice(&[0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0xff, 0, 0, 2]);
        f.extend_from_slice(&ip);
        let mut ns = vec![135, 0, 0, 0, 0, 0, 0, 0];
        ns.extend_from_slice(&[0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]);
        ns.extend_from_slice(&[1, 1, 2, 0, 0, 0, 0, 1]); // SLL option
        f.extend_from_slice(&ns);
        let mut k = FlowKey::default();
        let mut l = Layout::default();
        extract(&f, 1, &mut k, &mut l).unwrap();
        assert_eq!(k.nw_proto(), 58);
        assert_eq!(k.tp_src(), 135);
        assert_eq!(k.w[w::ND_TARGET_LO], 2);
        assert_eq!(k.arp_sha().to_string(), "02:00:00:00:00:01");
        assert_eq!(
            k.nw_src_v6(),
            "fe80::1".parse::<std::net::Ipv6Addr>().unwrap()
        );
    }

    #[test]
    fn malformed_frames_are_errors() {
        let mut k = FlowKey::default();
        let mut l = Layout::default();
        let good = udp4([10, 0, 0, 1], [10, 0, 0, 2], 1, 2, b"x", false);
        // truncated Ethernet, truncated IPv4 header, bogus IPv4 total length, bogus UDP length
        assert_eq!(
            extract(&good[..10], 1, &mut k, &mut l),
            Err(Malformed::Truncated)
        );
        assert_eq!(
            extract(&good[..30], 1, &mut k, &mut l),
            Err(Malformed::Truncated)
        );
        let mut bad = good.clone();
        bad[17] = 200;
        assert_eq!(extract(&bad, 1, &mut k, &mut l), Err(Malformed::BadLength));
        let mut bad = good.clone();
        bad[39] = 100;
        assert_eq!(extract(&bad, 1, &mut k, &mut l), Err(Malformed::BadLength));
        // an unknown EtherType is fine
        let other = eth([1; 6], [2; 6], 0x88cc);
        assert!(extract(&other, 1, &mut k, &mut l).is_ok());
        assert_eq!(k.dl_type(), 0x88cc);
    }

    #[test]
    fn partial_checksum_is_completed_and_valid_one_left_alone() {
        let payload: Vec<u8> = (0..100u8).collect();
        let good = udp4([10, 0, 0, 1], [10, 0, 0, 2], 5000, 6000, &payload, false);
        let mut part = udp4([10, 0, 0, 1], [10, 0, 0, 2], 5000, 6000, &payload, true);
        assert_ne!(good, part);
        let mut k = FlowKey::default();
        let mut l = Layout::default();
        extract(&part, 1, &mut k, &mut l).unwrap();
        assert!(complete_partial_checksum(&mut part, &k, &l));
        assert_eq!(part, good);
        let mut again = good.clone();
        assert!(!complete_partial_checksum(&mut again, &k, &l));
        assert_eq!(again, good);
    }

    proptest::proptest! {
        #[test]
        fn extraction_never_panics(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..200)) {
            let mut k = FlowKey::default();
            let mut l = Layout::default();
            let mut b = bytes.clone();
            if extract(&b, 1, &mut k, &mut l).is_ok() {
                complete_partial_checksum(&mut b, &k, &l);
            }
        }

        #[test]
        fn extraction_of_mutated_ip_frames_never_panics(
            pos in 0usize..60, val in proptest::num::u8::ANY, cut in 0usize..60
        ) {
            let mut f = udp4([10, 0, 0, 1], [10, 0, 0, 2], 1, 2, &[0u8; 20], true);
            let p = pos % f.len();
            f[p] = val;
            f.truncate(f.len() - cut.min(f.len()));
            let mut k = FlowKey::default();
            let mut l = Layout::default();
            if extract(&f, 1, &mut k, &mut l).is_ok() {
                complete_partial_checksum(&mut f, &k, &l);
            }
        }
    }
}
