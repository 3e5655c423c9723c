//! NAT: rewriting a frame to a connection's translated tuple, with incremental checksums.
//!
//! The tracker stores, per connection, the original tuple and the reply tuple that NAT chose.
//! A packet in the original direction is rewritten so that it looks like the reverse of the
//! reply tuple; a reply is rewritten to look like the reverse of the original tuple. Fields
//! that NAT did not change are equal already and rewriting them is a no-op, so one function
//! serves SNAT, DNAT and both. Checksums are updated with RFC 1624's incremental formula: the
//! fast path never re-sums a payload. ICMP errors are the exception (their payload quotes the
//! packet whose header we rewrite); their checksum is recomputed over the message.

use super::parse::Parsed;
use super::{Conn, Key};
use crate::packet::checksum::{self, update16, update_bytes};
use crate::packet::ipproto;

/// NAT kinds a connection carries (OVS's NAT_ACTION_SRC / NAT_ACTION_DST).
pub const NAT_SRC: u8 = 1;
pub const NAT_DST: u8 = 2;

#[inline]
fn rd16(f: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([f[at], f[at + 1]])
}

#[inline]
fn wr16(f: &mut [u8], at: usize, v: u16) {
    f[at..at + 2].copy_from_slice(&v.to_be_bytes());
}

/// Offset of the L4 checksum relative to the L4 header, when the protocol has one we keep.
fn l4_csum_off(proto: u8) -> Option<usize> {
    match proto {
        ipproto::TCP => Some(16),
        ipproto::UDP => Some(6),
        ipproto::ICMP | ipproto::ICMPV6 => Some(2),
        _ => None,
    }
}

/// Whether the L4 checksum covers the IP pseudo-header.
fn pseudo_covered(proto: u8) -> bool {
    matches!(proto, ipproto::TCP | ipproto::UDP | ipproto::ICMPV6)
}

/// Updates the L4 checksum at `at` (if inside `end`) for a change from `old` to `new` bytes.
/// A zero UDP checksum means "none" and stays zero; a computed zero is sent as 0xffff.
fn fix_l4(f: &mut [u8], at: usize, end: usize, udp: bool, old: &[u8], new: &[u8]) {
    if at + 2 > end {
        return;
    }
    let c = rd16(f, at);
    if udp && c == 0 {
        return;
    }
    let mut n = update_bytes(c, old, new);
    if udp && n == 0 {
        n = 0xffff;
    }
    wr16(f, at, n);
}

/// Rewrites one address field of the IP header at `l3` (`src`: source or destination).
/// Updates the IPv4 header checksum and, if `l4_csum` names one, the L4 checksum over the
/// pseudo-header.
fn set_addr(
    f: &mut [u8],
    l3: usize,
    v6: bool,
    src: bool,
    new: &[u8; 16],
    l4_csum: Option<(usize, bool)>,
    end: usize,
) {
    let (at, n) = match (v6, src) {
        (false, true) => (l3 + 12, 4),
        (false, false) => (l3 + 16, 4),
        (true, true) => (l3 + 8, 16),
        (true, false) => (l3 + 24, 16),
    };
    if f[at..at + n] == new[..n] {
        return;
    }
    let mut old = [0u8; 16];
    old[..n].copy_from_slice(&f[at..at + n]);
    f[at..at + n].copy_from_slice(&new[..n]);
    if !v6 {
        let c = rd16(f, l3 + 10);
        wr16(f, l3 + 10, update_bytes(c, &old[..4], &new[..4]));
    }
    if let Some((csum_at, udp)) = l4_csum {
        fix_l4(f, csum_at, end, udp, &old[..n], &new[..n]);
    }
}

/// Rewrites a 16-bit L4 field (port, ICMP id) at `at`, fixing the L4 checksum at `csum_at`.
fn set_port(f: &mut [u8], at: usize, new: u16, csum_at: Option<(usize, bool)>, end: usize) {
    let old = rd16(f, at);
    if old == new {
        return;
    }
    wr16(f, at, new);
    if let Some((c, udp)) = csum_at {
        if c + 2 > end {
            return;
        }
        let v = rd16(f, c);
        if udp && v == 0 {
            return;
        }
        let mut n = update16(v, old, new);
        if udp && n == 0 {
            n = 0xffff;
        }
        wr16(f, c, n);
    }
}

/// Rewrites the (already bounds-checked) packet headers of `p` in `f` to carry `src`, `dst`,
/// `sport`, `dport` (ports: TCP/UDP ports or the ICMP query id, in `sport`).
#[allow(clippy::too_many_arguments)]
fn rewrite(
    f: &mut [u8],
    v6: bool,
    l3: usize,
    l4: usize,
    end: usize,
    proto: u8,
    icmp_query: bool,
    to: (&[u8; 16], &[u8; 16], u16, u16),
) {
    let csum = l4_csum_off(proto).map(|o| (l4 + o, proto == ipproto::UDP));
    let pseudo = if pseudo_covered(proto) { csum } else { None };
    set_addr(f, l3, v6, true, to.0, pseudo, end);
    set_addr(f, l3, v6, false, to.1, pseudo, end);
    match proto {
        ipproto::TCP | ipproto::UDP => {
            set_port(f, l4, to.2, csum, end);
            set_port(f, l4 + 2, to.3, csum, end);
        }
        ipproto::SCTP => {
            // SCTP's CRC32c cannot be updated incrementally; leave ports alone (as untranslated)
        }
        ipproto::ICMP | ipproto::ICMPV6 if icmp_query => {
            set_port(f, l4 + 4, to.2, csum, end);
        }
        _ => {}
    }
}

/// Applies `conn`'s NAT to a (non-ICMP-error) packet travelling in direction `reply`.
pub(crate) fn nat_packet(f: &mut [u8], p: &Parsed, conn: &Conn, reply: bool) {
    // target: the reverse of the other direction's tuple
    let k: &Key = if reply { &conn.fwd } else { &conn.rev };
    rewrite(
        f,
        p.v6,
        p.l3,
        p.l4,
        p.end,
        p.proto,
        p.icmp_query,
        (&k.dst, &k.src, k.dport, k.sport),
    );
}

/// Applies `conn`'s NAT to an ICMP error travelling in direction `reply`: the outer addresses
/// NAT changed, then the quoted packet (which travelled the other way) back to what its sender
/// saw, then the ICMP checksum over the whole message.
pub(crate) fn nat_related(f: &mut [u8], p: &Parsed, conn: &Conn, reply: bool) {
    let (snat, dnat) = (conn.nat & NAT_SRC != 0, conn.nat & NAT_DST != 0);
    // outer header: the side NAT translated, as OVS does (even when a router sent the error,
    // its source becomes the VIP for DNAT: the client only knows the VIP)
    if reply {
        if dnat {
            set_addr(f, p.l3, p.v6, true, &conn.fwd.dst, None, p.end);
        }
        if snat {
            set_addr(f, p.l3, p.v6, false, &conn.fwd.src, None, p.end);
        }
    } else {
        if snat {
            set_addr(f, p.l3, p.v6, true, &conn.rev.dst, None, p.end);
        }
        if dnat {
            set_addr(f, p.l3, p.v6, false, &conn.rev.src, None, p.end);
        }
    }
    // quoted packet: it went the opposite way, so it gets this direction's own tuple
    let k: &Key = if reply { &conn.fwd } else { &conn.rev };
    let ip = p.inner_proto;
    let query = ip == ipproto::ICMP || ip == ipproto::ICMPV6;
    rewrite(
        f,
        p.v6,
        p.inner_l3,
        p.inner_l4,
        p.end,
        ip,
        query,
        (&k.src, &k.dst, k.sport, k.dport),
    );
    // ICMP checksum over the message (and, for ICMPv6, the pseudo-header)
    wr16(f, p.l4 + 2, 0);
    let msg = &f[p.l4..p.end];
    let c = if p.v6 {
        let mut s = [0u8; 16];
        let mut d = [0u8; 16];
        s.copy_from_slice(&f[p.l3 + 8..p.l3 + 24]);
        d.copy_from_slice(&f[p.l3 + 24..p.l3 + 40]);
        let ps = checksum::pseudo_v6(&s, &d, ipproto::ICMPV6, msg.len() as u32);
        !checksum::fold(checksum::sum(ps, msg))
    } else {
        checksum::checksum(msg)
    };
    wr16(f, p.l4 + 2, c);
}
