//! 802.1Q tags: the 4 bytes after the outer EtherType 0x8100 (TCI, inner EtherType).

use super::{be16, set_be16, Malformed, Result};

mod field {
    use std::ops::{Range, RangeFrom};
    pub const TCI: Range<usize> = 0..2;
    pub const ETHERTYPE: Range<usize> = 2..4;
    pub const PAYLOAD: RangeFrom<usize> = 4..;
}

pub const HEADER_LEN: usize = field::PAYLOAD.start;

#[derive(Debug, Clone, Copy)]
pub struct Tag<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Tag<T> {
    pub fn new_unchecked(buffer: T) -> Self {
        Tag { buffer }
    }
    pub fn new_checked(buffer: T) -> Result<Self> {
        let t = Self::new_unchecked(buffer);
        t.check_len()?;
        Ok(t)
    }
    pub fn check_len(&self) -> Result<()> {
        if self.buffer.as_ref().len() < HEADER_LEN {
            Err(Malformed::Truncated)
        } else {
            Ok(())
        }
    }
    pub fn tci(&self) -> u16 {
        be16(self.buffer.as_ref(), field::TCI.start)
    }
    pub fn vid(&self) -> u16 {
        self.tci() & 0x0fff
    }
    pub fn pcp(&self) -> u8 {
        (self.tci() >> 13) as u8
    }
    pub fn ethertype(&self) -> u16 {
        be16(self.buffer.as_ref(), field::ETHERTYPE.start)
    }
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[field::PAYLOAD]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Tag<T> {
    pub fn set_tci(&mut self, v: u16) {
        set_be16(self.buffer.as_mut(), field::TCI.start, v)
    }
    pub fn set_ethertype(&mut self, v: u16) {
        set_be16(self.buffer.as_mut(), field::ETHERTYPE.start, v)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Repr {
    pub vid: u16,
    pub pcp: u8,
    pub ethertype: u16,
}

impl Repr {
    pub fn parse<T: AsRef<[u8]>>(t: &Tag<T>) -> Result<Repr> {
        t.check_len()?;
        Ok(Repr {
            vid: t.vid(),
            pcp: t.pcp(),
            ethertype: t.ethertype(),
        })
    }
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, t: &mut Tag<T>) {
        t.set_tci(((self.pcp as u16) << 13) | (self.vid & 0x0fff));
        t.set_ethertype(self.ethertype);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_emit() {
        let bytes = [0xa0, 0x64, 0x08, 0x00, 0x45];
        let t = Tag::new_checked(&bytes[..]).unwrap();
        let r = Repr::parse(&t).unwrap();
        assert_eq!(
            r,
            Repr {
                vid: 100,
                pcp: 5,
                ethertype: 0x0800
            }
        );
        assert_eq!(t.payload(), &[0x45]);
        let mut out = [0u8; 4];
        r.emit(&mut Tag::new_unchecked(&mut out[..]));
        assert_eq!(out, bytes[..4]);
        assert!(Tag::new_checked(&bytes[..3]).is_err());
    }
}
