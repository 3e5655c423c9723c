//! TCP headers (the fields a switch matches on; options are skipped by data offset).

use super::{be16, be32, set_be16, Malformed, Result};

mod field {
    use std::ops::Range;
    pub const SRC_PORT: Range<usize> = 0..2;
    pub const DST_PORT: Range<usize> = 2..4;
    pub const SEQ: Range<usize> = 4..8;
    pub const ACK: Range<usize> = 8..12;
    pub const OFF_FLAGS: Range<usize> = 12..14;
    pub const WINDOW: Range<usize> = 14..16;
    pub const CHECKSUM: Range<usize> = 16..18;
    pub const URGENT: Range<usize> = 18..20;
}

pub const HEADER_LEN: usize = field::URGENT.end;
pub const CHECKSUM_OFFSET: usize = field::CHECKSUM.start;

pub mod flags {
    pub const FIN: u16 = 0x001;
    pub const SYN: u16 = 0x002;
    pub const RST: u16 = 0x004;
    pub const PSH: u16 = 0x008;
    pub const ACK: u16 = 0x010;
    pub const URG: u16 = 0x020;
}

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
        let hl = self.header_len();
        if hl < HEADER_LEN {
            return Err(Malformed::BadHeader);
        }
        if hl > b.len() {
            return Err(Malformed::Truncated);
        }
        Ok(())
    }
    pub fn src_port(&self) -> u16 {
        be16(self.buffer.as_ref(), field::SRC_PORT.start)
    }
    pub fn dst_port(&self) -> u16 {
        be16(self.buffer.as_ref(), field::DST_PORT.start)
    }
    pub fn seq(&self) -> u32 {
        be32(self.buffer.as_ref(), field::SEQ.start)
    }
    pub fn ack(&self) -> u32 {
        be32(self.buffer.as_ref(), field::ACK.start)
    }
    pub fn header_len(&self) -> usize {
        ((self.buffer.as_ref()[field::OFF_FLAGS.start] >> 4) as usize) * 4
    }
    /// The 12 flag bits (NS..FIN), as OpenFlow's tcp_flags.
    pub fn flags(&self) -> u16 {
        be16(self.buffer.as_ref(), field::OFF_FLAGS.start) & 0x0fff
    }
    pub fn window(&self) -> u16 {
        be16(self.buffer.as_ref(), field::WINDOW.start)
    }
    pub fn checksum(&self) -> u16 {
        be16(self.buffer.as_ref(), field::CHECKSUM.start)
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    pub fn set_src_port(&mut self, v: u16) {
        set_be16(self.buffer.as_mut(), field::SRC_PORT.start, v)
    }
    pub fn set_dst_port(&mut self, v: u16) {
        set_be16(self.buffer.as_mut(), field::DST_PORT.start, v)
    }
    pub fn set_checksum(&mut self, v: u16) {
        set_be16(self.buffer.as_mut(), field::CHECKSUM.start, v)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Repr {
    pub src_port: u16,
    pub dst_port: u16,
    pub seq: u32,
    pub ack: u32,
    pub flags: u16,
    pub window: u16,
}

impl Repr {
    pub fn parse<T: AsRef<[u8]>>(p: &Packet<T>) -> Result<Repr> {
        p.check_len()?;
        Ok(Repr {
            src_port: p.src_port(),
            dst_port: p.dst_port(),
            seq: p.seq(),
            ack: p.ack(),
            flags: p.flags(),
            window: p.window(),
        })
    }
    /// Writes a 20-byte header (no options) with a zero checksum.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, p: &mut Packet<T>) {
        let b = p.buffer.as_mut();
        set_be16(b, field::SRC_PORT.start, self.src_port);
        set_be16(b, field::DST_PORT.start, self.dst_port);
        b[field::SEQ].copy_from_slice(&self.seq.to_be_bytes());
        b[field::ACK].copy_from_slice(&self.ack.to_be_bytes());
        set_be16(b, field::OFF_FLAGS.start, (5 << 12) | (self.flags & 0x0fff));
        set_be16(b, field::WINDOW.start, self.window);
        set_be16(b, field::CHECKSUM.start, 0);
        set_be16(b, field::URGENT.start, 0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    static SYN: [u8; 24] = [
        0xc0, 0x00, 0x00, 0x50, // 49152 -> 80
        0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, // seq 1, ack 0
        0x60, 0x02, 0xff, 0xff, // data offset 6 (24 bytes), SYN, window
        0x00, 0x00, 0x00, 0x00, // checksum, urgent
        0x02, 0x04, 0x05, 0xb4, // MSS 1460
    ];

    #[test]
    fn parse_with_options() {
        let p = Packet::new_checked(&SYN[..]).unwrap();
        let r = Repr::parse(&p).unwrap();
        assert_eq!(r.src_port, 49152);
        assert_eq!(r.flags, flags::SYN);
        assert_eq!(p.header_len(), 24);
        let mut out = [0u8; 20];
        Repr {
            flags: flags::SYN | flags::ACK,
            ..r
        }
        .emit(&mut Packet::new_unchecked(&mut out[..]));
        assert_eq!(Packet::new_unchecked(&out[..]).flags(), 0x012);
    }

    #[test]
    fn malformed() {
        assert_eq!(
            Packet::new_checked(&SYN[..19]).err(),
            Some(Malformed::Truncated)
        );
        assert_eq!(
            Packet::new_checked(&SYN[..22]).err(),
            Some(Malformed::Truncated)
        );
        let mut x = SYN;
        x[12] = 0x40; // data offset 4 words
        assert_eq!(
            Packet::new_checked(&x[..]).err(),
            Some(Malformed::BadHeader)
        );
    }
}
