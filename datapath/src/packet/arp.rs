//! ARP and RARP for Ethernet/IPv4 (the only hardware/protocol pair a switch needs to parse).
//! RARP (EtherType 0x8035) uses the same layout; QEMU announces a migrated guest with RARP
//! opcode 3 (request reverse), sha = tha = the guest's MAC, IPs 0.

use super::{be16, set_be16, Mac, Malformed, Result};
use std::net::Ipv4Addr;

mod field {
    use std::ops::Range;
    pub const HTYPE: Range<usize> = 0..2;
    pub const PTYPE: Range<usize> = 2..4;
    pub const HLEN: usize = 4;
    pub const PLEN: usize = 5;
    pub const OPER: Range<usize> = 6..8;
    pub const SHA: Range<usize> = 8..14;
    pub const SPA: Range<usize> = 14..18;
    pub const THA: Range<usize> = 18..24;
    pub const TPA: Range<usize> = 24..28;
}

pub const HEADER_LEN: usize = field::TPA.end;

pub mod op {
    pub const REQUEST: u16 = 1;
    pub const REPLY: u16 = 2;
    pub const RARP_REQUEST: u16 = 3;
    pub const RARP_REPLY: u16 = 4;
}

#[derive(Debug, Clone, Copy)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    pub fn new_unchecked(buffer: T) -> Self {
        Packet { buffer }
    }
    /// Checks the length and that this is Ethernet (1) / IPv4 (0x0800) with lengths 6 and 4.
    pub fn new_checked(buffer: T) -> Result<Self> {
        let p = Self::new_unchecked(buffer);
        p.check_len()?;
        if p.htype() != 1 || p.ptype() != 0x0800 || p.hlen() != 6 || p.plen() != 4 {
            return Err(Malformed::BadHeader);
        }
        Ok(p)
    }
    pub fn check_len(&self) -> Result<()> {
        if self.buffer.as_ref().len() < HEADER_LEN {
            Err(Malformed::Truncated)
        } else {
            Ok(())
        }
    }
    pub fn htype(&self) -> u16 {
        be16(self.buffer.as_ref(), field::HTYPE.start)
    }
    pub fn ptype(&self) -> u16 {
        be16(self.buffer.as_ref(), field::PTYPE.start)
    }
    pub fn hlen(&self) -> u8 {
        self.buffer.as_ref()[field::HLEN]
    }
    pub fn plen(&self) -> u8 {
        self.buffer.as_ref()[field::PLEN]
    }
    pub fn oper(&self) -> u16 {
        be16(self.buffer.as_ref(), field::OPER.start)
    }
    pub fn sha(&self) -> Mac {
        Mac::from_slice(&self.buffer.as_ref()[field::SHA])
    }
    pub fn spa(&self) -> Ipv4Addr {
        let b = &self.buffer.as_ref()[field::SPA];
        Ipv4Addr::new(b[0], b[1], b[2], b[3])
    }
    pub fn tha(&self) -> Mac {
        Mac::from_slice(&self.buffer.as_ref()[field::THA])
    }
    pub fn tpa(&self) -> Ipv4Addr {
        let b = &self.buffer.as_ref()[field::TPA];
        Ipv4Addr::new(b[0], b[1], b[2], b[3])
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    fn bytes(&mut self) -> &mut [u8] {
        self.buffer.as_mut()
    }
    pub fn set_header(&mut self) {
        let b = self.bytes();
        set_be16(b, field::HTYPE.start, 1);
        set_be16(b, field::PTYPE.start, 0x0800);
        b[field::HLEN] = 6;
        b[field::PLEN] = 4;
    }
    pub fn set_oper(&mut self, v: u16) {
        set_be16(self.bytes(), field::OPER.start, v)
    }
    pub fn set_sha(&mut self, m: Mac) {
        self.bytes()[field::SHA].copy_from_slice(&m.0)
    }
    pub fn set_spa(&mut self, a: Ipv4Addr) {
        self.bytes()[field::SPA].copy_from_slice(&a.octets())
    }
    pub fn set_tha(&mut self, m: Mac) {
        self.bytes()[field::THA].copy_from_slice(&m.0)
    }
    pub fn set_tpa(&mut self, a: Ipv4Addr) {
        self.bytes()[field::TPA].copy_from_slice(&a.octets())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Repr {
    pub oper: u16,
    pub sha: Mac,
    pub spa: Ipv4Addr,
    pub tha: Mac,
    pub tpa: Ipv4Addr,
}

impl Repr {
    pub fn parse<T: AsRef<[u8]>>(p: &Packet<T>) -> Result<Repr> {
        p.check_len()?;
        Ok(Repr {
            oper: p.oper(),
            sha: p.sha(),
            spa: p.spa(),
            tha: p.tha(),
            tpa: p.tpa(),
        })
    }
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, p: &mut Packet<T>) {
        p.set_header();
        p.set_oper(self.oper);
        p.set_sha(self.sha);
        p.set_spa(self.spa);
        p.set_tha(self.tha);
        p.set_tpa(self.tpa);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A QEMU announce (RARP request reverse) payload as captured in ../shared/qemu-rig.md.
    static RARP: [u8; 28] = [
        0x00, 0x01, 0x08, 0x00, 0x06, 0x04, 0x00, 0x03, // eth/ipv4, op 3
        0x0a, 0x00, 0x00, 0x00, 0x00, 0x20, 0, 0, 0, 0, // sha, spa
        0x0a, 0x00, 0x00, 0x00, 0x00, 0x20, 0, 0, 0, 0, // tha, tpa
    ];

    #[test]
    fn parse_and_emit_rarp() {
        let p = Packet::new_checked(&RARP[..]).unwrap();
        let r = Repr::parse(&p).unwrap();
        assert_eq!(r.oper, op::RARP_REQUEST);
        assert_eq!(r.sha, r.tha);
        assert_eq!(r.spa, Ipv4Addr::UNSPECIFIED);
        let mut out = [0u8; 28];
        r.emit(&mut Packet::new_unchecked(&mut out[..]));
        assert_eq!(out, RARP);
    }

    #[test]
    fn refuses_truncated_and_foreign_arp() {
        assert_eq!(
            Packet::new_checked(&RARP[..27]).err(),
            Some(Malformed::Truncated)
        );
        let mut x = RARP;
        x[4] = 8; // hlen 8
        assert_eq!(
            Packet::new_checked(&x[..]).err(),
            Some(Malformed::BadHeader)
        );
    }
}
