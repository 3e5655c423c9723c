//! IPv4 headers.

use super::{be16, set_be16, Malformed, Result};
use std::net::Ipv4Addr;

mod field {
    use std::ops::Range;
    pub const VER_IHL: usize = 0;
    pub const DSCP_ECN: usize = 1;
    pub const LENGTH: Range<usize> = 2..4;
    pub const IDENT: Range<usize> = 4..6;
    pub const FLG_OFF: Range<usize> = 6..8;
    pub const TTL: usize = 8;
    pub const PROTOCOL: usize = 9;
    pub const CHECKSUM: Range<usize> = 10..12;
    pub const SRC: Range<usize> = 12..16;
    pub const DST: Range<usize> = 16..20;
}

pub const HEADER_LEN: usize = field::DST.end;

/// A view of an IPv4 packet. `new_checked` validates version, IHL and total length against the
/// buffer; bytes past the total length (Ethernet padding) are ignored by `payload`.
#[derive(Debug, Clone, Copy)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    pub fn new_unchecked(buffer: T) -> Self {
        Packet { buffer }
    }
    pub fn new_checked(buffer: T) -> Result<Self> {
        let p = Self::new_unchecked(buffer);
        p.check_len()?;
        Ok(p)
    }
    pub fn check_len(&self) -> Result<()> {
        let b = self.buffer.as_ref();
        if b.len() < HEADER_LEN {
            return Err(Malformed::Truncated);
        }
        if self.version() != 4 || self.header_len() < HEADER_LEN {
            return Err(Malformed::BadHeader);
        }
        if b.len() < self.header_len() {
            return Err(Malformed::Truncated);
        }
        let total = self.total_len() as usize;
        if total < self.header_len() || total > b.len() {
            return Err(Malformed::BadLength);
        }
        Ok(())
    }
    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[field::VER_IHL] >> 4
    }
    pub fn header_len(&self) -> usize {
        ((self.buffer.as_ref()[field::VER_IHL] & 0x0f) as usize) * 4
    }
    pub fn dscp_ecn(&self) -> u8 {
        self.buffer.as_ref()[field::DSCP_ECN]
    }
    pub fn total_len(&self) -> u16 {
        be16(self.buffer.as_ref(), field::LENGTH.start)
    }
    pub fn ident(&self) -> u16 {
        be16(self.buffer.as_ref(), field::IDENT.start)
    }
    pub fn dont_frag(&self) -> bool {
        be16(self.buffer.as_ref(), field::FLG_OFF.start) & 0x4000 != 0
    }
    pub fn more_frags(&self) -> bool {
        be16(self.buffer.as_ref(), field::FLG_OFF.start) & 0x2000 != 0
    }
    /// Fragment offset in bytes.
    pub fn frag_offset(&self) -> u16 {
        (be16(self.buffer.as_ref(), field::FLG_OFF.start) & 0x1fff) * 8
    }
    pub fn ttl(&self) -> u8 {
        self.buffer.as_ref()[field::TTL]
    }
    pub fn protocol(&self) -> u8 {
        self.buffer.as_ref()[field::PROTOCOL]
    }
    pub fn checksum(&self) -> u16 {
        be16(self.buffer.as_ref(), field::CHECKSUM.start)
    }
    pub fn src_bytes(&self) -> [u8; 4] {
        let b = &self.buffer.as_ref()[field::SRC];
        [b[0], b[1], b[2], b[3]]
    }
    pub fn dst_bytes(&self) -> [u8; 4] {
        let b = &self.buffer.as_ref()[field::DST];
        [b[0], b[1], b[2], b[3]]
    }
    pub fn src(&self) -> Ipv4Addr {
        Ipv4Addr::from(self.src_bytes())
    }
    pub fn dst(&self) -> Ipv4Addr {
        Ipv4Addr::from(self.dst_bytes())
    }
    pub fn verify_checksum(&self) -> bool {
        super::checksum::fold(super::checksum::sum(
            0,
            &self.buffer.as_ref()[..self.header_len()],
        )) == 0xffff
    }
    /// The payload up to the total length (padding excluded). Call after `check_len`.
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[self.header_len()..self.total_len() as usize]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    pub fn set_ttl(&mut self, v: u8) {
        self.buffer.as_mut()[field::TTL] = v
    }
    pub fn set_checksum(&mut self, v: u16) {
        set_be16(self.buffer.as_mut(), field::CHECKSUM.start, v)
    }
    /// Recomputes the header checksum.
    pub fn fill_checksum(&mut self) {
        self.set_checksum(0);
        let hl = self.header_len();
        let c = super::checksum::checksum(&self.buffer.as_ref()[..hl]);
        self.set_checksum(c);
    }
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let (h, t) = (self.header_len(), self.total_len() as usize);
        &mut self.buffer.as_mut()[h..t]
    }
}

/// A header without options.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Repr {
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    pub protocol: u8,
    pub payload_len: usize,
    pub ttl: u8,
    pub dscp_ecn: u8,
    pub ident: u16,
    pub dont_frag: bool,
}

impl Repr {
    pub fn parse<T: AsRef<[u8]>>(p: &Packet<T>) -> Result<Repr> {
        p.check_len()?;
        Ok(Repr {
            src: p.src(),
            dst: p.dst(),
            protocol: p.protocol(),
            payload_len: p.total_len() as usize - p.header_len(),
            ttl: p.ttl(),
            dscp_ecn: p.dscp_ecn(),
            ident: p.ident(),
            dont_frag: p.dont_frag(),
        })
    }
    pub fn buffer_len(&self) -> usize {
        HEADER_LEN
    }
    /// Writes a 20-byte header with a valid checksum.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, p: &mut Packet<T>) {
        let b = p.buffer.as_mut();
        b[field::VER_IHL] = 0x45;
        b[field::DSCP_ECN] = self.dscp_ecn;
        set_be16(
            b,
            field::LENGTH.start,
            (HEADER_LEN + self.payload_len) as u16,
        );
        set_be16(b, field::IDENT.start, self.ident);
        set_be16(
            b,
            field::FLG_OFF.start,
            if self.dont_frag { 0x4000 } else { 0 },
        );
        b[field::TTL] = self.ttl;
        b[field::PROTOCOL] = self.protocol;
        b[field::SRC].copy_from_slice(&self.src.octets());
        b[field::DST].copy_from_slice(&self.dst.octets());
        p.fill_checksum();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 10.0.0.1 -> 10.0.0.2 UDP, 28 bytes total, valid checksum, then 4 bytes of padding.
    static PKT: [u8; 32] = [
        0x45, 0x00, 0x00, 0x1c, 0x12, 0x34, 0x40, 0x00, 0x40, 0x11, 0x14, 0x9b, 10, 0, 0, 1, 10, 0,
        0, 2, // header
        0x00, 0x07, 0x00, 0x09, 0x00, 0x08, 0x00, 0x00, // udp
        0, 0, 0, 0, // padding
    ];

    #[test]
    fn parse_emit_and_padding() {
        let p = Packet::new_checked(&PKT[..]).unwrap();
        assert!(p.verify_checksum(), "test vector checksum");
        let r = Repr::parse(&p).unwrap();
        assert_eq!(r.src, Ipv4Addr::new(10, 0, 0, 1));
        assert_eq!(r.protocol, 17);
        assert_eq!(r.payload_len, 8);
        assert_eq!(p.payload().len(), 8, "padding excluded");
        let mut out = [0u8; 28];
        r.emit(&mut Packet::new_unchecked(&mut out[..]));
        assert_eq!(out[..20], PKT[..20]);
    }

    #[test]
    fn malformed_headers_are_refused() {
        assert_eq!(
            Packet::new_checked(&PKT[..19]).err(),
            Some(Malformed::Truncated)
        );
        let mut x = PKT;
        x[0] = 0x44; // ihl 4
        assert_eq!(
            Packet::new_checked(&x[..]).err(),
            Some(Malformed::BadHeader)
        );
        let mut x = PKT;
        x[0] = 0x65; // version 6
        assert_eq!(
            Packet::new_checked(&x[..]).err(),
            Some(Malformed::BadHeader)
        );
        let mut x = PKT;
        x[3] = 0x40; // total length 64 > 32 bytes present
        assert_eq!(
            Packet::new_checked(&x[..]).err(),
            Some(Malformed::BadLength)
        );
        let mut x = PKT;
        x[3] = 0x10; // total length 16 < header
        assert_eq!(
            Packet::new_checked(&x[..]).err(),
            Some(Malformed::BadLength)
        );
        let mut x = PKT;
        x[0] = 0x4f; // ihl 60 > 32 bytes present
        assert_eq!(
            Packet::new_checked(&x[..]).err(),
            Some(Malformed::Truncated)
        );
    }
}
