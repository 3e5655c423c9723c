//! Frame builders and parsers: Ethernet, ARP, IPv4, UDP, ICMP echo, virtio-net header.
//! Builders produce valid checksums unless told otherwise; parsers return `None` on anything
//! they do not understand.

use std::net::Ipv4Addr;

pub type Mac = [u8; 6];

pub const BROADCAST: Mac = [0xff; 6];
pub const ETH_IPV4: u16 = 0x0800;
pub const ETH_ARP: u16 = 0x0806;
pub const PROTO_ICMP: u8 = 1;
pub const PROTO_UDP: u8 = 17;

pub fn mac_str(m: &Mac) -> String {
    m.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

pub fn parse_mac(s: &str) -> Option<Mac> {
    let mut m = [0u8; 6];
    let mut it = s.trim().split(':');
    for b in m.iter_mut() {
        *b = u8::from_str_radix(it.next()?, 16).ok()?;
    }
    if it.next().is_some() {
        return None;
    }
    Some(m)
}

/// One's-complement sum of 16-bit big-endian words (not folded).
pub fn sum16(mut acc: u64, data: &[u8]) -> u64 {
    let mut i = 0;
    while i + 1 < data.len() {
        acc += u16::from_be_bytes([data[i], data[i + 1]]) as u64;
        i += 2;
    }
    if i < data.len() {
        acc += (data[i] as u64) << 8;
    }
    acc
}

pub fn fold(mut acc: u64) -> u16 {
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    acc as u16
}

/// The Internet checksum of `data`.
pub fn checksum(data: &[u8]) -> u16 {
    !fold(sum16(0, data))
}

/// The IPv4 pseudo-header sum (not folded).
pub fn pseudo_sum(src: Ipv4Addr, dst: Ipv4Addr, proto: u8, len: u16) -> u64 {
    sum16(0, &src.octets()) + sum16(0, &dst.octets()) + proto as u64 + len as u64
}

pub fn eth(dst: Mac, src: Mac, ethertype: u16, payload: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(14 + payload.len());
    v.extend_from_slice(&dst);
    v.extend_from_slice(&src);
    v.extend_from_slice(&ethertype.to_be_bytes());
    v.extend_from_slice(payload);
    v
}

/// An IPv4 packet (20-byte header, DF, TTL 64, valid header checksum).
pub fn ipv4(src: Ipv4Addr, dst: Ipv4Addr, proto: u8, id: u16, payload: &[u8]) -> Vec<u8> {
    let total = 20 + payload.len();
    let mut h = vec![0u8; 20];
    h[0] = 0x45;
    h[2..4].copy_from_slice(&(total as u16).to_be_bytes());
    h[4..6].copy_from_slice(&id.to_be_bytes());
    h[6] = 0x40;
    h[8] = 64;
    h[9] = proto;
    h[12..16].copy_from_slice(&src.octets());
    h[16..20].copy_from_slice(&dst.octets());
    let c = checksum(&h);
    h[10..12].copy_from_slice(&c.to_be_bytes());
    h.extend_from_slice(payload);
    h
}

/// How to fill the UDP checksum field.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UdpCsum {
    /// A valid checksum.
    Full,
    /// The folded pseudo-header sum, what a sender with TX checksum offload leaves for the
    /// device to finish (CHECKSUM_PARTIAL).
    Partial,
    /// Zero: "no checksum".
    None,
}

/// A UDP datagram (header + payload).
pub fn udp(
    src: Ipv4Addr,
    dst: Ipv4Addr,
    sport: u16,
    dport: u16,
    payload: &[u8],
    mode: UdpCsum,
) -> Vec<u8> {
    let len = (8 + payload.len()) as u16;
    let mut u = Vec::with_capacity(len as usize);
    u.extend_from_slice(&sport.to_be_bytes());
    u.extend_from_slice(&dport.to_be_bytes());
    u.extend_from_slice(&len.to_be_bytes());
    u.extend_from_slice(&[0, 0]);
    u.extend_from_slice(payload);
    let pseudo = pseudo_sum(src, dst, PROTO_UDP, len);
    let c = match mode {
        UdpCsum::Full => {
            let c = !fold(sum16(pseudo, &u));
            if c == 0 {
                0xffff
            } else {
                c
            }
        }
        UdpCsum::Partial => fold(pseudo),
        UdpCsum::None => 0,
    };
    u[6..8].copy_from_slice(&c.to_be_bytes());
    u
}

/// A complete Ethernet/IPv4/UDP frame with a valid checksum.
#[allow(clippy::too_many_arguments)]
pub fn udp_frame(
    dst_mac: Mac,
    src_mac: Mac,
    src: Ipv4Addr,
    dst: Ipv4Addr,
    sport: u16,
    dport: u16,
    payload: &[u8],
    mode: UdpCsum,
) -> Vec<u8> {
    let u = udp(src, dst, sport, dport, payload, mode);
    eth(
        dst_mac,
        src_mac,
        ETH_IPV4,
        &ipv4(src, dst, PROTO_UDP, 0, &u),
    )
}

/// An ICMP echo request (or reply) frame.
#[allow(clippy::too_many_arguments)]
pub fn icmp_echo_frame(
    dst_mac: Mac,
    src_mac: Mac,
    src: Ipv4Addr,
    dst: Ipv4Addr,
    id: u16,
    seq: u16,
    payload: &[u8],
    reply: bool,
) -> Vec<u8> {
    let mut m = vec![if reply { 0 } else { 8 }, 0, 0, 0];
    m.extend_from_slice(&id.to_be_bytes());
    m.extend_from_slice(&seq.to_be_bytes());
    m.extend_from_slice(payload);
    let c = checksum(&m);
    m[2..4].copy_from_slice(&c.to_be_bytes());
    eth(
        dst_mac,
        src_mac,
        ETH_IPV4,
        &ipv4(src, dst, PROTO_ICMP, seq, &m),
    )
}

/// An ARP frame (`op` 1 request, 2 reply) sent to `dst_mac`.
pub fn arp_frame(
    dst_mac: Mac,
    op: u16,
    sha: Mac,
    spa: Ipv4Addr,
    tha: Mac,
    tpa: Ipv4Addr,
) -> Vec<u8> {
    let mut a = vec![0, 1, 8, 0, 6, 4];
    a.extend_from_slice(&op.to_be_bytes());
    a.extend_from_slice(&sha);
    a.extend_from_slice(&spa.octets());
    a.extend_from_slice(&tha);
    a.extend_from_slice(&tpa.octets());
    eth(dst_mac, sha, ETH_ARP, &a)
}

/// `struct virtio_net_hdr` (10 bytes, little endian: the tap's default vnet header).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VirtioNetHdr {
    pub flags: u8,
    pub gso_type: u8,
    pub hdr_len: u16,
    pub gso_size: u16,
    pub csum_start: u16,
    pub csum_offset: u16,
}

pub const VIRTIO_NET_HDR_F_NEEDS_CSUM: u8 = 1;
pub const VIRTIO_NET_HDR_LEN: usize = 10;

impl VirtioNetHdr {
    pub fn to_bytes(self) -> [u8; VIRTIO_NET_HDR_LEN] {
        let mut b = [0u8; VIRTIO_NET_HDR_LEN];
        b[0] = self.flags;
        b[1] = self.gso_type;
        b[2..4].copy_from_slice(&self.hdr_len.to_le_bytes());
        b[4..6].copy_from_slice(&self.gso_size.to_le_bytes());
        b[6..8].copy_from_slice(&self.csum_start.to_le_bytes());
        b[8..10].copy_from_slice(&self.csum_offset.to_le_bytes());
        b
    }
}

// ---------------------------------------------------------------------------------------------
// parsing

pub fn dst_mac(f: &[u8]) -> Option<Mac> {
    f.get(0..6)?.try_into().ok()
}

pub fn src_mac(f: &[u8]) -> Option<Mac> {
    f.get(6..12)?.try_into().ok()
}

pub fn ethertype(f: &[u8]) -> Option<u16> {
    Some(u16::from_be_bytes(f.get(12..14)?.try_into().ok()?))
}

/// The parsed IPv4 part of a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ip<'a> {
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    pub proto: u8,
    /// The L4 bytes, as many as the total length says (padding excluded).
    pub payload: &'a [u8],
}

pub fn ipv4_of(f: &[u8]) -> Option<Ip<'_>> {
    if ethertype(f)? != ETH_IPV4 {
        return None;
    }
    let ip = f.get(14..)?;
    let hl = ((*ip.first()? & 0x0f) as usize) * 4;
    let total = u16::from_be_bytes(ip.get(2..4)?.try_into().ok()?) as usize;
    if hl < 20 || total < hl {
        return None;
    }
    let s: [u8; 4] = ip.get(12..16)?.try_into().ok()?;
    let d: [u8; 4] = ip.get(16..20)?.try_into().ok()?;
    Some(Ip {
        src: s.into(),
        dst: d.into(),
        proto: ip[9],
        payload: ip.get(hl..total)?,
    })
}

/// (sport, dport, payload) of a UDP frame.
pub fn udp_of(f: &[u8]) -> Option<(u16, u16, &[u8])> {
    let ip = ipv4_of(f)?;
    if ip.proto != PROTO_UDP {
        return None;
    }
    let u = ip.payload;
    let len = u16::from_be_bytes(u.get(4..6)?.try_into().ok()?) as usize;
    Some((
        u16::from_be_bytes(u.get(0..2)?.try_into().ok()?),
        u16::from_be_bytes(u.get(2..4)?.try_into().ok()?),
        u.get(8..len)?,
    ))
}

/// Whether the UDP checksum of a frame verifies (or is absent).
pub fn udp_checksum_ok(f: &[u8]) -> Option<bool> {
    let ip = ipv4_of(f)?;
    if ip.proto != PROTO_UDP {
        return None;
    }
    let u = ip.payload;
    if u.get(6..8)? == [0, 0] {
        return Some(true);
    }
    let pseudo = pseudo_sum(ip.src, ip.dst, PROTO_UDP, u.len() as u16);
    Some(fold(sum16(pseudo, u)) == 0xffff)
}

/// (type, id, seq, payload) of an ICMP echo request (8) or reply (0).
pub fn icmp_echo_of(f: &[u8]) -> Option<(u8, u16, u16, &[u8])> {
    let ip = ipv4_of(f)?;
    if ip.proto != PROTO_ICMP {
        return None;
    }
    let m = ip.payload;
    let ty = *m.first()?;
    if ty != 0 && ty != 8 {
        return None;
    }
    Some((
        ty,
        u16::from_be_bytes(m.get(4..6)?.try_into().ok()?),
        u16::from_be_bytes(m.get(6..8)?.try_into().ok()?),
        m.get(8..)?,
    ))
}

/// An ARP packet's fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Arp {
    pub op: u16,
    pub sha: Mac,
    pub spa: Ipv4Addr,
    pub tha: Mac,
    pub tpa: Ipv4Addr,
}

pub fn arp_of(f: &[u8]) -> Option<Arp> {
    if ethertype(f)? != ETH_ARP {
        return None;
    }
    let a = f.get(14..42)?;
    let spa: [u8; 4] = a[14..18].try_into().ok()?;
    let tpa: [u8; 4] = a[24..28].try_into().ok()?;
    Some(Arp {
        op: u16::from_be_bytes([a[6], a[7]]),
        sha: a[8..14].try_into().ok()?,
        spa: spa.into(),
        tha: a[18..24].try_into().ok()?,
        tpa: tpa.into(),
    })
}

/// A test payload of `len` bytes: the 4-byte sequence number then a pattern derived from it, so
/// any corruption or mix-up between datagrams is detected by [`check_payload`].
pub fn pattern_payload(seq: u32, len: usize) -> Vec<u8> {
    let mut v = Vec::with_capacity(len);
    v.extend_from_slice(&seq.to_be_bytes());
    for i in 4..len {
        v.push((seq as usize * 31 + i * 7 + (i >> 8)) as u8);
    }
    v.truncate(len);
    v
}

/// The sequence number of a [`pattern_payload`] if the whole payload matches the pattern.
pub fn check_payload(p: &[u8]) -> Option<u32> {
    let seq = u32::from_be_bytes(p.get(0..4)?.try_into().ok()?);
    (pattern_payload(seq, p.len()) == p).then_some(seq)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn udp_checksums_verify_and_partial_is_the_pseudo_sum() {
        let s = Ipv4Addr::new(10, 0, 0, 1);
        let d = Ipv4Addr::new(10, 0, 0, 2);
        let f = udp_frame(BROADCAST, [2; 6], s, d, 1, 2, b"hello", UdpCsum::Full);
        assert_eq!(udp_checksum_ok(&f), Some(true));
        assert_eq!(udp_of(&f).unwrap(), (1, 2, &b"hello"[..]));
        let p = udp_frame(BROADCAST, [2; 6], s, d, 1, 2, b"hello", UdpCsum::Partial);
        assert_eq!(udp_checksum_ok(&p), Some(false));
        let ip = ipv4_of(&p).unwrap();
        assert_eq!(checksum(&p[14..34]), 0, "IPv4 header checksum");
        assert_eq!(
            u16::from_be_bytes([ip.payload[6], ip.payload[7]]),
            fold(pseudo_sum(s, d, PROTO_UDP, 13))
        );
    }

    #[test]
    fn payload_patterns_round_trip() {
        for (seq, len) in [(0u32, 4usize), (7, 100), (999, 1472)] {
            let p = pattern_payload(seq, len);
            assert_eq!(p.len(), len);
            assert_eq!(check_payload(&p), Some(seq));
        }
        let mut p = pattern_payload(5, 64);
        p[40] ^= 1;
        assert_eq!(check_payload(&p), None);
    }

    #[test]
    fn arp_and_icmp_round_trip() {
        let a = arp_frame(
            BROADCAST,
            1,
            [2, 0, 0, 0, 0, 1],
            Ipv4Addr::new(1, 2, 3, 4),
            [0; 6],
            Ipv4Addr::new(1, 2, 3, 5),
        );
        let p = arp_of(&a).unwrap();
        assert_eq!((p.op, p.tpa), (1, Ipv4Addr::new(1, 2, 3, 5)));
        let e = icmp_echo_frame(
            [1; 6],
            [2; 6],
            Ipv4Addr::new(1, 1, 1, 1),
            Ipv4Addr::new(2, 2, 2, 2),
            7,
            9,
            b"xyz",
            false,
        );
        assert_eq!(icmp_echo_of(&e), Some((8, 7, 9, &b"xyz"[..])));
        assert_eq!(parse_mac("02:00:00:00:00:0a"), Some([2, 0, 0, 0, 0, 10]));
        assert_eq!(mac_str(&[2, 0, 0, 0, 0, 10]), "02:00:00:00:00:0a");
    }
}
