//! Extraction of the connection key from a frame.
//!
//! The tracker re-validates everything it reads here instead of trusting the caller's
//! [`Layout`](crate::packet::key::Layout) beyond the L3 offset and IP version: `execute` must
//! never panic whatever the bytes are, and it needs facts the flow key does not carry (the IPv4
//! header checksum, the ICMP error's inner header). Every offset returned in [`Parsed`] has been
//! bounds-checked against the frame, so the NAT code can index without further checks.

use super::Key;
use crate::packet::checksum;
use crate::packet::ipproto;

/// TCP flag bits (as in the TCP header's low 9 bits).
pub(crate) mod tcpf {
    pub const FIN: u16 = 0x001;
    pub const SYN: u16 = 0x002;
    pub const RST: u16 = 0x004;
    pub const PSH: u16 = 0x008;
    pub const ACK: u16 = 0x010;
    pub const URG: u16 = 0x020;
}

/// Why a frame could not be tracked (each is counted as an invalid packet).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParseError {
    /// Not IPv4/IPv6, or the header is malformed or truncated.
    BadL3,
    /// A fragment: the tracker does not reassemble.
    Fragment,
    /// The L4 header is truncated or malformed.
    BadL4,
    /// An ICMP type the tracker does not handle (neither query nor error).
    IcmpType,
}

/// What `execute` needs to know about one frame: the lookup key and where things are.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Parsed {
    /// The key to look up: the packet's own tuple, or for an ICMP error the reversed tuple of
    /// the packet it quotes (the quoted packet travelled the other way).
    pub key: Key,
    /// An ICMP error quoting another packet.
    pub related: bool,
    pub v6: bool,
    pub l3: usize,
    pub l4: usize,
    /// End of the IP packet (L2 padding excluded).
    pub end: usize,
    pub proto: u8,
    pub tcp_flags: u16,
    /// ICMP query (echo, timestamp, information) type; meaningful when `icmp_query`.
    pub icmp_type: u8,
    /// An ICMP query (its id is rewritten by NAT like a port).
    pub icmp_query: bool,
    /// The quoted packet of an ICMP error: its L3 and L4 offsets and protocol.
    pub inner_l3: usize,
    pub inner_l4: usize,
    pub inner_proto: u8,
}

/// The reply type of an ICMP query type (OVS's reverse_icmp_type / reverse_icmp6_type).
pub(crate) fn reverse_icmp_type(v6: bool, t: u8) -> u8 {
    if v6 {
        match t {
            128 => 129,
            129 => 128,
            x => x,
        }
    } else {
        match t {
            8 => 0,
            0 => 8,
            13 => 14,
            14 => 13,
            15 => 16,
            16 => 15,
            x => x,
        }
    }
}

fn is_icmp_query(v6: bool, t: u8) -> bool {
    if v6 {
        matches!(t, 128 | 129)
    } else {
        matches!(t, 0 | 8 | 13 | 14 | 15 | 16)
    }
}

fn is_icmp_error(v6: bool, t: u8) -> bool {
    if v6 {
        matches!(t, 1..=4)
    } else {
        matches!(t, 3 | 4 | 5 | 11 | 12)
    }
}

/// Whether an ICMP type may open a connection (a request, never a reply).
pub(crate) fn icmp_valid_new(v6: bool, t: u8) -> bool {
    if v6 {
        t == 128
    } else {
        matches!(t, 8 | 13 | 15)
    }
}

#[inline]
fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

/// L3 header facts: (proto, l4 offset, end, src, dst).
struct L3 {
    proto: u8,
    l4: usize,
    end: usize,
    src: [u8; 16],
    dst: [u8; 16],
}

/// Parses an IPv4 header at `l3`. `quoted` relaxes the total-length check (an ICMP error quotes
/// only the start of the packet) and skips the checksum check.
fn ipv4(f: &[u8], l3: usize, limit: usize, quoted: bool) -> Result<L3, ParseError> {
    if limit > f.len() || l3 + 20 > limit {
        return Err(ParseError::BadL3);
    }
    if f[l3] >> 4 != 4 {
        return Err(ParseError::BadL3);
    }
    let hl = (f[l3] & 0xf) as usize * 4;
    let total = be16(f, l3 + 2) as usize;
    if hl < 20 || l3 + hl > limit || total < hl {
        return Err(ParseError::BadL3);
    }
    let end = if quoted {
        limit.min(l3 + total)
    } else {
        if l3 + total > limit {
            return Err(ParseError::BadL3);
        }
        if checksum::fold(checksum::sum(0, &f[l3..l3 + hl])) != 0xffff {
            return Err(ParseError::BadL3);
        }
        l3 + total
    };
    let frag = be16(f, l3 + 6);
    if frag & 0x3fff != 0 {
        return Err(ParseError::Fragment);
    }
    let mut src = [0u8; 16];
    let mut dst = [0u8; 16];
    src[..4].copy_from_slice(&f[l3 + 12..l3 + 16]);
    dst[..4].copy_from_slice(&f[l3 + 16..l3 + 20]);
    Ok(L3 {
        proto: f[l3 + 9],
        l4: l3 + hl,
        end,
        src,
        dst,
    })
}

/// Parses an IPv6 header and its extension headers at `l3`.
fn ipv6(f: &[u8], l3: usize, limit: usize, quoted: bool) -> Result<L3, ParseError> {
    if limit > f.len() || l3 + 40 > limit {
        return Err(ParseError::BadL3);
    }
    if f[l3] >> 4 != 6 {
        return Err(ParseError::BadL3);
    }
    let total = 40 + be16(f, l3 + 4) as usize;
    let end = if quoted {
        limit.min(l3 + total)
    } else {
        if l3 + total > limit {
            return Err(ParseError::BadL3);
        }
        l3 + total
    };
    let mut next = f[l3 + 6];
    let mut off = l3 + 40;
    // bounded walk: a packet cannot make us loop
    for _ in 0..8 {
        match next {
            0 | 43 | 60 => {
                if off + 8 > end {
                    return Err(ParseError::BadL3);
                }
                let len = (f[off + 1] as usize + 1) * 8;
                if off + len > end {
                    return Err(ParseError::BadL3);
                }
                next = f[off];
                off += len;
            }
            51 => {
                if off + 8 > end {
                    return Err(ParseError::BadL3);
                }
                let len = (f[off + 1] as usize + 2) * 4;
                if off + len > end {
                    return Err(ParseError::BadL3);
                }
                next = f[off];
                off += len;
            }
            44 => return Err(ParseError::Fragment),
            _ => break,
        }
    }
    if matches!(next, 0 | 43 | 60 | 51 | 44) {
        return Err(ParseError::BadL3);
    }
    let mut src = [0u8; 16];
    let mut dst = [0u8; 16];
    src.copy_from_slice(&f[l3 + 8..l3 + 24]);
    dst.copy_from_slice(&f[l3 + 24..l3 + 40]);
    Ok(L3 {
        proto: next,
        l4: off,
        end,
        src,
        dst,
    })
}

/// Fills the ports or ICMP id/type/code of `key` from the L4 header at `l4`. Quoted packets
/// only need their first 8 bytes.
fn l4_key(
    f: &[u8],
    l4: usize,
    end: usize,
    v6: bool,
    quoted: bool,
    key: &mut Key,
) -> Result<(u16, u8), ParseError> {
    let proto = key.proto;
    let need = |n: usize| {
        if l4 + n <= end {
            Ok(())
        } else {
            Err(ParseError::BadL4)
        }
    };
    match proto {
        ipproto::TCP => {
            if quoted {
                need(8)?;
            } else {
                need(20)?;
                let doff = (f[l4 + 12] >> 4) as usize * 4;
                if doff < 20 || l4 + doff > end {
                    return Err(ParseError::BadL4);
                }
            }
            key.sport = be16(f, l4);
            key.dport = be16(f, l4 + 2);
            let flags = if quoted { 0 } else { be16(f, l4 + 12) & 0x1ff };
            Ok((flags, 0))
        }
        ipproto::UDP | ipproto::SCTP | 136 /* UDP-Lite */ => {
            need(8)?;
            key.sport = be16(f, l4);
            key.dport = be16(f, l4 + 2);
            Ok((0, 0))
        }
        ipproto::ICMP | ipproto::ICMPV6 => {
            if (proto == ipproto::ICMPV6) != v6 {
                return Ok((0, 0)); // ICMP in IPv6 or ICMPv6 in IPv4: an "other" protocol
            }
            need(8)?;
            let t = f[l4];
            if !is_icmp_query(v6, t) {
                return Err(ParseError::IcmpType);
            }
            let id = be16(f, l4 + 4);
            key.sport = id;
            key.dport = id;
            key.icmp_type = t;
            key.icmp_rtype = reverse_icmp_type(v6, t);
            key.icmp_code = f[l4 + 1];
            Ok((0, t))
        }
        _ => Ok((0, 0)),
    }
}

/// Extracts the connection key of the IP packet at `l3` (IP version `ipv`) in zone `zone`.
pub(crate) fn parse(f: &[u8], l3: usize, ipv: u8, zone: u16) -> Result<Parsed, ParseError> {
    let v6 = match ipv {
        4 => false,
        6 => true,
        _ => return Err(ParseError::BadL3),
    };
    let h = if v6 {
        ipv6(f, l3, f.len(), false)?
    } else {
        ipv4(f, l3, f.len(), false)?
    };
    let mut key = Key {
        src: h.src,
        dst: h.dst,
        sport: 0,
        dport: 0,
        zone,
        proto: h.proto,
        v6,
        icmp_type: 0,
        icmp_rtype: 0,
        icmp_code: 0,
    };
    let mut p = Parsed {
        key,
        related: false,
        v6,
        l3,
        l4: h.l4,
        end: h.end,
        proto: h.proto,
        tcp_flags: 0,
        icmp_type: 0,
        icmp_query: false,
        inner_l3: 0,
        inner_l4: 0,
        inner_proto: 0,
    };
    let is_icmp = (!v6 && h.proto == ipproto::ICMP) || (v6 && h.proto == ipproto::ICMPV6);
    if is_icmp {
        if h.l4 + 8 > h.end {
            return Err(ParseError::BadL4);
        }
        let t = f[h.l4];
        if is_icmp_error(v6, t) {
            return related(f, p, zone);
        }
    }
    let (flags, icmp_type) = l4_key(f, h.l4, h.end, v6, false, &mut key)?;
    p.key = key;
    p.tcp_flags = flags;
    p.icmp_type = icmp_type;
    p.icmp_query = is_icmp;
    Ok(p)
}

/// An ICMP error: the key is the quoted packet's tuple, reversed.
fn related(f: &[u8], mut p: Parsed, zone: u16) -> Result<Parsed, ParseError> {
    let inner_l3 = p.l4 + 8;
    let h = if p.v6 {
        ipv6(f, inner_l3, p.end, true)?
    } else {
        ipv4(f, inner_l3, p.end, true)?
    };
    let mut key = Key {
        src: h.src,
        dst: h.dst,
        sport: 0,
        dport: 0,
        zone,
        proto: h.proto,
        v6: p.v6,
        icmp_type: 0,
        icmp_rtype: 0,
        icmp_code: 0,
    };
    // An error quoting an error is not related to anything (l4_key refuses non-queries).
    l4_key(f, h.l4, h.end, p.v6, true, &mut key)?;
    p.key = key.reversed();
    p.related = true;
    p.inner_l3 = inner_l3;
    p.inner_l4 = h.l4;
    p.inner_proto = h.proto;
    Ok(p)
}
