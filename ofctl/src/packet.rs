//! Packets as ovs-ofctl summarises them (`ofp_packet_to_string`): the packet parsed into
//! flow fields (Ethernet, VLAN, ARP, IPv4/IPv6, TCP/UDP/SCTP/ICMP, ND) and printed like a
//! match, followed by the L4 checksum — what `monitor` shows under each packet-in and what
//! `packet-out` echoes.
//!
//! Parsing never panics: every read is bounds-checked and a truncated header simply ends
//! the parse at the layer it reached (as OVS's `flow_extract` does).

use crate::flowmatch::{FlowMatch, Slot};

fn be16(b: &[u8], i: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*b.get(i)?, *b.get(i + 1)?]))
}
fn be32(b: &[u8], i: usize) -> Option<u32> {
    Some(u32::from_be_bytes([
        *b.get(i)?,
        *b.get(i + 1)?,
        *b.get(i + 2)?,
        *b.get(i + 3)?,
    ]))
}
fn bytes_u128(b: &[u8], i: usize, n: usize) -> Option<u128> {
    let s = b.get(i..i + n)?;
    Some(s.iter().fold(0u128, |a, &x| a << 8 | x as u128))
}

/// Extracted packet fields plus where the L4 header starts.
struct Parsed {
    m: FlowMatch,
    l4: Option<(u8, usize)>,
}

fn full(bits: u32) -> u128 {
    if bits >= 128 {
        u128::MAX
    } else {
        (1u128 << bits) - 1
    }
}

fn extract(p: &[u8], packet_type: u32) -> Parsed {
    let mut m = FlowMatch::new();
    let mut l4 = None;
    let put = |m: &mut FlowMatch, slot: Slot, v: u128, bits: u32| m.set(slot, v, full(bits));
    put(&mut m, Slot::PacketType, packet_type as u128, 32);
    // Fields masked for every packet (flow_wildcards_init_for_packet), later unmasked when
    // zero by flow_format: none of them are known from the bytes alone.
    let mut off;
    let dl_type;
    if packet_type == 0 {
        // Ethernet.
        let (Some(dst), Some(src)) = (bytes_u128(p, 0, 6), bytes_u128(p, 6, 6)) else {
            put(&mut m, Slot::DlDst, bytes_u128(p, 0, 6).unwrap_or(0), 48);
            put(&mut m, Slot::DlSrc, 0, 48);
            put(&mut m, Slot::DlType, 0, 16);
            put(&mut m, Slot::VlanTci, 0, 16);
            return Parsed { m, l4 };
        };
        put(&mut m, Slot::DlDst, dst, 48);
        put(&mut m, Slot::DlSrc, src, 48);
        off = 12;
        let mut et = be16(p, off).unwrap_or(0);
        let mut tci = 0u16;
        if et == 0x8100 || et == 0x88a8 {
            if let Some(t) = be16(p, off + 2) {
                tci = t | 0x1000;
                off += 4;
                et = be16(p, off).unwrap_or(0);
                // Further tags are outside the first-tag view we print.
                while et == 0x8100 || et == 0x88a8 {
                    off += 4;
                    et = be16(p, off).unwrap_or(0);
                }
            }
        }
        put(&mut m, Slot::VlanTci, tci as u128, 16);
        off += 2;
        if et < 0x600 {
            // 802.2 LLC/SNAP: OVS reports FLOW_DL_TYPE_NONE (0x05ff) unless SNAP.
            et = 0x05ff;
            if p.get(off..off + 3) == Some(&[0xaa, 0xaa, 0x03]) && p.len() >= off + 8 {
                if let Some(t) = be16(p, off + 6) {
                    if t >= 0x600 {
                        et = t;
                        off += 8;
                    }
                }
            }
        }
        put(&mut m, Slot::DlType, et as u128, 16);
        dl_type = et;
    } else {
        off = 0;
        dl_type = if packet_type >> 16 == 1 {
            packet_type as u16
        } else {
            0
        };
    }
    match dl_type {
        0x0800 => {
            let ihl = p.get(off).map(|b| (b & 0xf) as usize * 4).unwrap_or(0);
            if ihl < 20 || p.len() < off + 20 {
                return Parsed { m, l4 };
            }
            let tos = p[off + 1];
            let frag = be16(p, off + 6).unwrap_or(0);
            let ttl = p[off + 8];
            let proto = p[off + 9];
            put(
                &mut m,
                Slot::NwSrc,
                be32(p, off + 12).unwrap_or(0) as u128,
                32,
            );
            put(
                &mut m,
                Slot::NwDst,
                be32(p, off + 16).unwrap_or(0) as u128,
                32,
            );
            put(&mut m, Slot::NwTos, tos as u128, 8);
            put(&mut m, Slot::NwTtl, ttl as u128, 8);
            put(&mut m, Slot::NwProto, proto as u128, 8);
            let mut nw_frag = 0u8;
            if frag & 0x3fff != 0 {
                nw_frag |= 1;
                if frag & 0x1fff != 0 {
                    nw_frag |= 2;
                }
            }
            m.set(Slot::NwFrag, nw_frag as u128, 3);
            if nw_frag & 2 == 0 {
                l4 = Some((proto, off + ihl));
            }
        }
        0x86dd => {
            if p.len() < off + 40 {
                return Parsed { m, l4 };
            }
            let vtc = be32(p, off).unwrap_or(0);
            let tc = ((vtc >> 20) & 0xff) as u8;
            put(&mut m, Slot::Ipv6Label, (vtc & 0xfffff) as u128, 32);
            let mut next = p[off + 6];
            let hlim = p[off + 7];
            put(
                &mut m,
                Slot::Ipv6Src,
                bytes_u128(p, off + 8, 16).unwrap_or(0),
                128,
            );
            put(
                &mut m,
                Slot::Ipv6Dst,
                bytes_u128(p, off + 24, 16).unwrap_or(0),
                128,
            );
            put(&mut m, Slot::NwTos, tc as u128, 8);
            put(&mut m, Slot::NwTtl, hlim as u128, 8);
            let mut o = off + 40;
            let mut nw_frag = 0u8;
            // Extension headers: hop-by-hop, routing, destination options, fragment.
            loop {
                match next {
                    0 | 43 | 60 => {
                        let (Some(nh), Some(len)) = (p.get(o), p.get(o + 1)) else {
                            break;
                        };
                        next = *nh;
                        o += (*len as usize + 1) * 8;
                    }
                    44 => {
                        let (Some(nh), Some(fo)) = (p.get(o), be16(p, o + 2)) else {
                            break;
                        };
                        next = *nh;
                        nw_frag |= 1;
                        if fo & 0xfff8 != 0 {
                            nw_frag |= 2;
                        }
                        o += 8;
                    }
                    _ => break,
                }
            }
            put(&mut m, Slot::NwProto, next as u128, 8);
            m.set(Slot::NwFrag, nw_frag as u128, 3);
            if nw_frag & 2 == 0 {
                l4 = Some((next, o));
            }
        }
        0x0806 | 0x8035 => {
            if p.len() >= off + 28
                && be16(p, off) == Some(1)
                && be16(p, off + 2) == Some(0x0800)
                && p[off + 4] == 6
                && p[off + 5] == 4
            {
                let op = be16(p, off + 6).unwrap_or(0);
                put(&mut m, Slot::NwProto, (op & 0xff) as u128, 8);
                put(
                    &mut m,
                    Slot::ArpSha,
                    bytes_u128(p, off + 8, 6).unwrap_or(0),
                    48,
                );
                put(
                    &mut m,
                    Slot::NwSrc,
                    be32(p, off + 14).unwrap_or(0) as u128,
                    32,
                );
                put(
                    &mut m,
                    Slot::ArpTha,
                    bytes_u128(p, off + 18, 6).unwrap_or(0),
                    48,
                );
                put(
                    &mut m,
                    Slot::NwDst,
                    be32(p, off + 24).unwrap_or(0) as u128,
                    32,
                );
            } else {
                put(&mut m, Slot::NwProto, 0, 8);
                put(&mut m, Slot::ArpSha, 0, 48);
                put(&mut m, Slot::NwSrc, 0, 32);
                put(&mut m, Slot::ArpTha, 0, 48);
                put(&mut m, Slot::NwDst, 0, 32);
            }
        }
        _ => {}
    }
    if let Some((proto, o)) = l4 {
        let is_v6 = dl_type == 0x86dd;
        match proto {
            6 | 17 | 132 => {
                let (sp, dp) = (be16(p, o).unwrap_or(0), be16(p, o + 2).unwrap_or(0));
                put(&mut m, Slot::TpSrc, sp as u128, 16);
                put(&mut m, Slot::TpDst, dp as u128, 16);
                if proto == 6 {
                    let fl = be16(p, o + 12).unwrap_or(0) & 0x0fff;
                    put(&mut m, Slot::TcpFlags, fl as u128, 16);
                }
            }
            1 if !is_v6 => {
                put(
                    &mut m,
                    Slot::TpSrc,
                    p.get(o).copied().unwrap_or(0) as u128,
                    16,
                );
                put(
                    &mut m,
                    Slot::TpDst,
                    p.get(o + 1).copied().unwrap_or(0) as u128,
                    16,
                );
            }
            58 if is_v6 => {
                let ty = p.get(o).copied().unwrap_or(0);
                let code = p.get(o + 1).copied().unwrap_or(0);
                put(&mut m, Slot::TpSrc, ty as u128, 16);
                put(&mut m, Slot::TpDst, code as u128, 16);
                if code == 0 && (ty == 135 || ty == 136) {
                    put(
                        &mut m,
                        Slot::NdTarget,
                        bytes_u128(p, o + 8, 16).unwrap_or(0),
                        128,
                    );
                    let (mut sll, mut tll) = (0u128, 0u128);
                    let mut q = o + 24;
                    while let (Some(t), Some(l)) = (p.get(q), p.get(q + 1)) {
                        let len = *l as usize * 8;
                        if len == 0 {
                            break;
                        }
                        if len == 8 {
                            if *t == 1 && ty == 135 {
                                sll = bytes_u128(p, q + 2, 6).unwrap_or(0);
                            } else if *t == 2 && ty == 136 {
                                tll = bytes_u128(p, q + 2, 6).unwrap_or(0);
                            }
                        }
                        q += len;
                    }
                    put(&mut m, Slot::ArpSha, sll, 48);
                    put(&mut m, Slot::ArpTha, tll, 48);
                }
            }
            2 if !is_v6 => {
                put(
                    &mut m,
                    Slot::TpSrc,
                    p.get(o).copied().unwrap_or(0) as u128,
                    16,
                );
                put(
                    &mut m,
                    Slot::TpDst,
                    p.get(o + 1).copied().unwrap_or(0) as u128,
                    16,
                );
            }
            _ => {}
        }
    }
    Parsed { m, l4 }
}

/// `ofp_packet_to_string`: the packet as a flow plus its L4 checksum, newline-terminated.
pub fn packet_to_string(data: &[u8], packet_type: u32) -> String {
    let parsed = extract(data, packet_type);
    let mut s = parsed.m.format(None, None);
    if let Some((proto, o)) = parsed.l4 {
        let l4_size = data.len().saturating_sub(o);
        match proto {
            6 if l4_size >= 20 => {
                s.push_str(&format!(" tcp_csum:{:x}", be16(data, o + 16).unwrap_or(0)))
            }
            17 if l4_size >= 8 => {
                s.push_str(&format!(" udp_csum:{:x}", be16(data, o + 6).unwrap_or(0)))
            }
            132 if l4_size >= 12 => {
                s.push_str(&format!(" sctp_csum:{:x}", be32(data, o + 8).unwrap_or(0)))
            }
            1 if l4_size >= 8 => {
                s.push_str(&format!(" icmp_csum:{:x}", be16(data, o + 2).unwrap_or(0)))
            }
            58 if l4_size >= 4 => {
                s.push_str(&format!(" icmp6_csum:{:x}", be16(data, o + 2).unwrap_or(0)))
            }
            _ => {}
        }
    }
    s.push('\n');
    s
}

/// Parses a hex packet (`packet=` in packet-out): hex digits, white space ignored.
pub fn parse_hex_packet(s: &str) -> Result<Vec<u8>, String> {
    let digits: Vec<u8> = s.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    if !digits.len().is_multiple_of(2) {
        return Err("Trailing garbage in packet data".into());
    }
    digits
        .chunks(2)
        .map(|c| {
            let h = (c[0] as char).to_digit(16);
            let l = (c[1] as char).to_digit(16);
            match (h, l) {
                (Some(h), Some(l)) => Ok((h * 16 + l) as u8),
                _ => Err("Trailing garbage in packet data".into()),
            }
        })
        .collect()
}

/// A hex Ethernet frame as packet-out takes it (`eth_from_hex`): hex digits, optionally
/// separated by white space, at least an Ethernet header long.
pub fn eth_from_hex(s: &str) -> Result<Vec<u8>, String> {
    let p = parse_hex_packet(s)?;
    if p.len() < 14 {
        return Err("Packet data too short for Ethernet".into());
    }
    Ok(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn udp_packet_summary() {
        // eth 0a:..:10 <- 0a:..:20, IPv4 10.0.0.20 -> 10.0.0.10 UDP 1000 -> 2000.
        let pkt = parse_hex_packet(
            "0a00000000100a000000002008004500001c0000000040110000\
             0a0000140a00000a03e807d000080000",
        )
        .unwrap();
        assert_eq!(
            packet_to_string(&pkt, 0),
            "udp,vlan_tci=0x0000,dl_src=0a:00:00:00:00:20,dl_dst=0a:00:00:00:00:10,\
             nw_src=10.0.0.20,nw_dst=10.0.0.10,nw_tos=0,nw_ecn=0,nw_ttl=64,nw_frag=no,\
             tp_src=1000,tp_dst=2000 udp_csum:0\n"
        );
        // Truncated input never panics.
        for n in 0..pkt.len() {
            let _ = packet_to_string(&pkt[..n], 0);
        }
    }
}
