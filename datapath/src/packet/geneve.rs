//! Geneve (RFC 8926): the tunnel header OVN uses between chassis, carried in UDP (port 6081).
//!
//! ```text
//!  0                   1                   2                   3
//! |Ver|  Opt Len  |O|C|    Rsvd.  |          Protocol Type        |
//! |        Virtual Network Identifier (VNI)       |    Reserved   |
//! |                    Variable-Length Options                    |
//! ```
//!
//! Each option is a TLV: class (16 bits), type (8 bits, the high bit marks it critical), three
//! reserved bits and a 5-bit length in 4-byte words, then the data. OVN carries one option,
//! class 0x0102 type 0x80 length 4, holding the logical ingress and egress ports; OpenFlow sees
//! it as `tun_metadata0` once NXT_TLV_TABLE_MOD maps it there.
//!
//! Nothing here allocates: options are iterated in place over the header's bytes.

use super::{be16, be32, set_be16, Malformed, Result};

mod field {
    use std::ops::Range;
    pub const VER_OPTLEN: usize = 0;
    pub const FLAGS: usize = 1;
    pub const PROTOCOL: Range<usize> = 2..4;
    pub const VNI: Range<usize> = 4..7;
    pub const RESERVED: usize = 7;
}

/// The fixed header.
pub const HEADER_LEN: usize = 8;
/// The UDP port IANA assigned to Geneve.
pub const UDP_PORT: u16 = 6081;
/// Protocol type of an Ethernet payload (Transparent Ethernet Bridging).
pub const PROTO_ETHERNET: u16 = 0x6558;
/// Longest option area the 6-bit length can describe (63 words).
pub const MAX_OPTIONS_LEN: usize = 63 * 4;
/// OVN's option: class, type and data length.
pub const OVN_OPT_CLASS: u16 = 0x0102;
pub const OVN_OPT_TYPE: u8 = 0x80;
pub const OVN_OPT_LEN: usize = 4;

const FLAG_OAM: u8 = 0x80;
const FLAG_CRITICAL: u8 = 0x40;

/// A view of a Geneve header and what follows it.
#[derive(Debug, Clone, Copy)]
pub struct Header<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Header<T> {
    pub fn new_unchecked(buffer: T) -> Self {
        Header { buffer }
    }

    /// Checks the fixed header and its options fit, the version is 0 and the options parse
    /// (each option's length stays inside the option area).
    pub fn new_checked(buffer: T) -> Result<Self> {
        let h = Self::new_unchecked(buffer);
        h.check_len()?;
        Ok(h)
    }

    pub fn check_len(&self) -> Result<()> {
        let b = self.buffer.as_ref();
        if b.len() < HEADER_LEN {
            return Err(Malformed::Truncated);
        }
        if self.version() != 0 {
            return Err(Malformed::BadHeader);
        }
        if b.len() < self.header_len() {
            return Err(Malformed::Truncated);
        }
        // every option must end inside the option area
        let mut o = self.options_bytes();
        while !o.is_empty() {
            if o.len() < 4 {
                return Err(Malformed::BadLength);
            }
            let n = 4 + (o[3] & 0x1f) as usize * 4;
            if n > o.len() {
                return Err(Malformed::BadLength);
            }
            o = &o[n..];
        }
        Ok(())
    }

    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[field::VER_OPTLEN] >> 6
    }
    /// Length of the options in bytes.
    pub fn options_len(&self) -> usize {
        (self.buffer.as_ref()[field::VER_OPTLEN] & 0x3f) as usize * 4
    }
    /// Fixed header plus options.
    pub fn header_len(&self) -> usize {
        HEADER_LEN + self.options_len()
    }
    pub fn oam(&self) -> bool {
        self.buffer.as_ref()[field::FLAGS] & FLAG_OAM != 0
    }
    pub fn critical(&self) -> bool {
        self.buffer.as_ref()[field::FLAGS] & FLAG_CRITICAL != 0
    }
    pub fn protocol(&self) -> u16 {
        be16(self.buffer.as_ref(), field::PROTOCOL.start)
    }
    pub fn vni(&self) -> u32 {
        be32(self.buffer.as_ref(), field::VNI.start) >> 8
    }
    pub fn options_bytes(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..self.header_len()]
    }
    /// The options, in order.
    pub fn options(&self) -> Options<'_> {
        Options {
            rest: self.options_bytes(),
        }
    }
    /// What the tunnel carries (the inner Ethernet frame).
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[self.header_len()..]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Header<T> {
    fn set_first(&mut self, version: u8, options_len: usize) {
        self.buffer.as_mut()[field::VER_OPTLEN] = (version << 6) | ((options_len / 4) as u8 & 0x3f);
    }
    fn set_flags(&mut self, oam: bool, critical: bool) {
        let mut f = 0;
        if oam {
            f |= FLAG_OAM;
        }
        if critical {
            f |= FLAG_CRITICAL;
        }
        self.buffer.as_mut()[field::FLAGS] = f;
    }
    pub fn set_protocol(&mut self, p: u16) {
        set_be16(self.buffer.as_mut(), field::PROTOCOL.start, p)
    }
    pub fn set_vni(&mut self, vni: u32) {
        let b = self.buffer.as_mut();
        b[field::VNI].copy_from_slice(&vni.to_be_bytes()[1..]);
        b[field::RESERVED] = 0;
    }
}

/// One option (TLV).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GeneveOpt<'a> {
    pub class: u16,
    /// The type byte; its high bit (0x80) marks a critical option.
    pub typ: u8,
    pub data: &'a [u8],
}

impl GeneveOpt<'_> {
    /// Bytes the option takes on the wire.
    pub fn wire_len(&self) -> usize {
        4 + self.data.len()
    }

    /// Writes the option at the start of `out` (which must hold [`GeneveOpt::wire_len`] bytes;
    /// the data length must be a multiple of 4, at most 124).
    pub fn emit(&self, out: &mut [u8]) {
        out[0..2].copy_from_slice(&self.class.to_be_bytes());
        out[2] = self.typ;
        out[3] = (self.data.len() / 4) as u8 & 0x1f;
        out[4..4 + self.data.len()].copy_from_slice(self.data);
    }
}

/// Iterates the options of a checked header (stops at the first one that does not fit).
#[derive(Debug, Clone)]
pub struct Options<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for Options<'a> {
    type Item = GeneveOpt<'a>;
    fn next(&mut self) -> Option<GeneveOpt<'a>> {
        let o = self.rest;
        if o.len() < 4 {
            return None;
        }
        let n = 4 + (o[3] & 0x1f) as usize * 4;
        if n > o.len() {
            self.rest = &[];
            return None;
        }
        self.rest = &o[n..];
        Some(GeneveOpt {
            class: be16(o, 0),
            typ: o[2],
            data: &o[4..n],
        })
    }
}

/// A parsed Geneve header; `options` borrows the raw option area (TLVs back to back).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Repr<'a> {
    pub vni: u32,
    pub oam: bool,
    pub critical: bool,
    pub protocol: u16,
    pub options: &'a [u8],
}

impl<'a> Repr<'a> {
    pub fn parse<T: AsRef<[u8]> + ?Sized>(h: &'a Header<&'a T>) -> Result<Repr<'a>> {
        h.check_len()?;
        Ok(Repr {
            vni: h.vni(),
            oam: h.oam(),
            critical: h.critical(),
            protocol: h.protocol(),
            options: h.options_bytes(),
        })
    }

    /// Fixed header plus options.
    pub fn buffer_len(&self) -> usize {
        HEADER_LEN + self.options.len()
    }

    /// Writes the header and options (the option area must be a multiple of 4 bytes, at most
    /// [`MAX_OPTIONS_LEN`]).
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, h: &mut Header<T>) {
        h.set_first(0, self.options.len());
        h.set_flags(self.oam, self.critical);
        h.set_protocol(self.protocol);
        h.set_vni(self.vni);
        let n = self.options.len();
        h.buffer.as_mut()[HEADER_LEN..HEADER_LEN + n].copy_from_slice(self.options);
    }

    pub fn options(&self) -> Options<'a> {
        Options { rest: self.options }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The Geneve header of a packet ovn-controller's OVS sends between chassis: VNI 5 (the
    /// logical datapath's tunnel key), one OVN option (class 0x0102, type 0x80, 4 bytes:
    /// ingress port 1, egress port 2), then the inner frame (first bytes only here).
    const OVN: [u8; 20] = [
        0x02, 0x00, 0x65, 0x58, // ver 0, opt len 2 words, no flags, Ethernet
        0x00, 0x00, 0x05, 0x00, // VNI 5
        0x01, 0x02, 0x80, 0x01, // class 0x0102, type 0x80, 1 word
        0x00, 0x01, 0x00, 0x02, // option data
        0xaa, 0xbb, 0xcc, 0xdd, // inner frame starts
    ];

    #[test]
    fn parse_ovn_header() {
        let h = Header::new_checked(&OVN[..]).unwrap();
        assert_eq!(h.version(), 0);
        assert_eq!(h.header_len(), 16);
        assert_eq!(h.vni(), 5);
        assert!(!h.oam() && !h.critical());
        assert_eq!(h.protocol(), PROTO_ETHERNET);
        let opts: Vec<_> = h.options().collect();
        assert_eq!(
            opts,
            vec![GeneveOpt {
                class: OVN_OPT_CLASS,
                typ: OVN_OPT_TYPE,
                data: &[0, 1, 0, 2]
            }]
        );
        assert_eq!(h.payload(), &[0xaa, 0xbb, 0xcc, 0xdd]);
    }

    #[test]
    fn repr_round_trip() {
        let h = Header::new_checked(&OVN[..]).unwrap();
        let r = Repr::parse(&h).unwrap();
        assert_eq!(r.vni, 5);
        assert_eq!(r.buffer_len(), 16);
        let mut out = [0u8; 16];
        r.emit(&mut Header::new_unchecked(&mut out[..]));
        assert_eq!(out, OVN[..16]);
        // an option built from parts emits the same bytes
        let o = GeneveOpt {
            class: OVN_OPT_CLASS,
            typ: OVN_OPT_TYPE,
            data: &[0, 1, 0, 2],
        };
        let mut ob = [0u8; 8];
        o.emit(&mut ob);
        assert_eq!(ob, OVN[8..16]);
    }

    #[test]
    fn several_options_and_flags() {
        let b = [
            0x03, 0xc0, 0x65, 0x58, 0xff, 0xff, 0xfe, 0x00, // 3 words of options, O and C set
            0xff, 0xff, 0x01, 0x00, // class 0xffff type 1, no data
            0x01, 0x02, 0x80, 0x01, 0xde, 0xad, 0xbe, 0xef,
        ];
        let h = Header::new_checked(&b[..]).unwrap();
        assert!(h.oam() && h.critical());
        assert_eq!(h.vni(), 0xfffffe);
        let v: Vec<_> = h
            .options()
            .map(|o| (o.class, o.typ, o.data.len()))
            .collect();
        assert_eq!(v, vec![(0xffff, 1, 0), (0x0102, 0x80, 4)]);
        assert!(h.payload().is_empty());
    }

    #[test]
    fn malformed_headers_are_refused() {
        assert_eq!(
            Header::new_checked(&OVN[..7]).err(),
            Some(Malformed::Truncated)
        );
        // options longer than the bytes present
        assert_eq!(
            Header::new_checked(&OVN[..12]).err(),
            Some(Malformed::Truncated)
        );
        // version 1
        let mut x = OVN;
        x[0] |= 0x40;
        assert_eq!(
            Header::new_checked(&x[..]).err(),
            Some(Malformed::BadHeader)
        );
        // an option whose length runs past the option area
        let mut x = OVN;
        x[11] = 0x02;
        assert_eq!(
            Header::new_checked(&x[..]).err(),
            Some(Malformed::BadLength)
        );
        // unchecked iteration of such bytes stops instead of panicking
        let h = Header::new_unchecked(&x[..]);
        assert_eq!(h.options().count(), 0);
    }
}
