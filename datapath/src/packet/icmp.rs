//! ICMP and ICMPv6 headers: type, code, checksum (the rest depends on the type).

use super::{be16, set_be16, Malformed, Result};

pub const HEADER_LEN: usize = 4;

pub mod v6type {
    pub const NEIGHBOR_SOLICIT: u8 = 135;
    pub const NEIGHBOR_ADVERT: u8 = 136;
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
        if self.buffer.as_ref().len() < HEADER_LEN {
            Err(Malformed::Truncated)
        } else {
            Ok(())
        }
    }
    pub fn msg_type(&self) -> u8 {
        self.buffer.as_ref()[0]
    }
    pub fn code(&self) -> u8 {
        self.buffer.as_ref()[1]
    }
    pub fn checksum(&self) -> u16 {
        be16(self.buffer.as_ref(), 2)
    }
    /// For neighbour solicitations/advertisements: the 16-byte target address after the 4-byte
    /// reserved field.
    pub fn nd_target(&self) -> Option<[u8; 16]> {
        let b = self.buffer.as_ref();
        if b.len() < 24 {
            return None;
        }
        let mut a = [0u8; 16];
        a.copy_from_slice(&b[8..24]);
        Some(a)
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    pub fn set_type(&mut self, t: u8) {
        self.buffer.as_mut()[0] = t
    }
    pub fn set_code(&mut self, c: u8) {
        self.buffer.as_mut()[1] = c
    }
    pub fn set_checksum(&mut self, v: u16) {
        set_be16(self.buffer.as_mut(), 2, v)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Repr {
    pub msg_type: u8,
    pub code: u8,
}

impl Repr {
    pub fn parse<T: AsRef<[u8]>>(p: &Packet<T>) -> Result<Repr> {
        p.check_len()?;
        Ok(Repr {
            msg_type: p.msg_type(),
            code: p.code(),
        })
    }
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, p: &mut Packet<T>) {
        p.set_type(self.msg_type);
        p.set_code(self.code);
        p.set_checksum(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn echo_request() {
        let b = [8u8, 0, 0xf7, 0xff, 0, 0, 0, 0];
        let p = Packet::new_checked(&b[..]).unwrap();
        assert_eq!(
            Repr::parse(&p).unwrap(),
            Repr {
                msg_type: 8,
                code: 0
            }
        );
        assert_eq!(super::super::checksum::checksum(&b), 0);
        assert!(Packet::new_checked(&b[..3]).is_err());
        assert!(p.nd_target().is_none());
    }
}
