//! NXT_CT_FLUSH: flushes the connections a zone and (parts of) their tuples select. The
//! message is `ip_proto`, 7 bytes of padding, then TLVs (OVS include/openflow/nicira-ext.h:
//! nx_ct_flush_tlv_type): 16-bit type, 16-bit length including the 4-byte header, the value,
//! padding to a multiple of 8. ORIG/REPLY_TUPLE nest the same TLV format (SRC/DST as IPv6 or
//! IPv4-mapped addresses, ports, ICMP id/type/code). The codec hands the TLVs over verbatim.

use std::net::{IpAddr, Ipv6Addr};

use crate::conntrack::TupleFilter;

const ORIG_TUPLE: u16 = 0;
const REPLY_TUPLE: u16 = 1;
const ZONE_ID: u16 = 2;
const MARK: u16 = 3;
const MARK_MASK: u16 = 4;
const LABELS: u16 = 5;
const LABELS_MASK: u16 = 6;

const T_SRC: u16 = 0;
const T_DST: u16 = 1;
const T_SRC_PORT: u16 = 2;
const T_DST_PORT: u16 = 3;
const T_ICMP_ID: u16 = 4;
const T_ICMP_TYPE: u16 = 5;
const T_ICMP_CODE: u16 = 6;

/// A parsed NXT_CT_FLUSH.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct CtFlushReq {
    pub zone: u16,
    pub orig: TupleFilter,
    pub reply: TupleFilter,
}

/// Walks a TLV list, handing each (type, value) to `f`.
fn tlvs(mut b: &[u8], mut f: impl FnMut(u16, &[u8]) -> Result<(), String>) -> Result<(), String> {
    while !b.is_empty() {
        if b.len() < 4 {
            return Err(format!("ct flush: {} trailing bytes", b.len()));
        }
        let t = u16::from_be_bytes([b[0], b[1]]);
        let len = u16::from_be_bytes([b[2], b[3]]) as usize;
        if len < 4 || len > b.len() {
            return Err(format!("ct flush: TLV type {t} has bad length {len}"));
        }
        f(t, &b[4..len])?;
        let padded = len.div_ceil(8) * 8;
        b = &b[padded.min(b.len())..];
    }
    Ok(())
}

fn be16(v: &[u8], what: &str) -> Result<u16, String> {
    <[u8; 2]>::try_from(v)
        .map(u16::from_be_bytes)
        .map_err(|_| format!("ct flush: {what} needs 2 bytes, got {}", v.len()))
}

fn addr(v: &[u8]) -> Result<IpAddr, String> {
    let a: [u8; 16] = v
        .try_into()
        .map_err(|_| format!("ct flush: address needs 16 bytes, got {}", v.len()))?;
    let a = Ipv6Addr::from(a);
    Ok(match a.to_ipv4_mapped() {
        Some(v4) => IpAddr::V4(v4),
        None => IpAddr::V6(a),
    })
}

fn tuple(v: &[u8], proto: u8) -> Result<TupleFilter, String> {
    let mut t = TupleFilter {
        proto: (proto != 0).then_some(proto),
        ..Default::default()
    };
    tlvs(v, |ty, v| {
        match ty {
            T_SRC => t.src = Some(addr(v)?),
            T_DST => t.dst = Some(addr(v)?),
            T_SRC_PORT | T_ICMP_ID => t.sport = Some(be16(v, "port")?),
            T_DST_PORT => t.dport = Some(be16(v, "port")?),
            // ICMP type/code narrow an ICMP flush further; the id already selects it
            T_ICMP_TYPE | T_ICMP_CODE => {}
            other => return Err(format!("ct flush: unknown tuple TLV type {other}")),
        }
        Ok(())
    })?;
    Ok(t)
}

/// Parses the TLVs after `ip_proto` (the padding is already stripped by the codec).
pub fn parse(ip_proto: u8, props: &[u8]) -> Result<CtFlushReq, String> {
    let mut r = CtFlushReq {
        orig: TupleFilter {
            proto: (ip_proto != 0).then_some(ip_proto),
            ..Default::default()
        },
        reply: TupleFilter {
            proto: (ip_proto != 0).then_some(ip_proto),
            ..Default::default()
        },
        ..Default::default()
    };
    tlvs(props, |ty, v| {
        match ty {
            ORIG_TUPLE => r.orig = tuple(v, ip_proto)?,
            REPLY_TUPLE => r.reply = tuple(v, ip_proto)?,
            ZONE_ID => r.zone = be16(v, "zone")?,
            // mark/label selection: accepted, not narrowing (flushes more, never less)
            MARK | MARK_MASK | LABELS | LABELS_MASK => {}
            other => return Err(format!("ct flush: unknown TLV type {other}")),
        }
        Ok(())
    })?;
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    #[test]
    fn zone_and_orig_tuple() {
        // zone 5; orig tuple src 10.0.0.1 (mapped), dst port 80
        let mut b = vec![0, 2, 0, 6, 0, 5, 0, 0];
        let mut inner = vec![0, 0, 0, 20];
        inner.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 10, 0, 0, 1]);
        inner.extend_from_slice(&[0; 4]);
        inner.extend_from_slice(&[0, 3, 0, 6, 0, 80, 0, 0]);
        b.extend_from_slice(&[0, 0]);
        b.extend_from_slice(&((4 + inner.len()) as u16).to_be_bytes());
        b.extend_from_slice(&inner);
        let r = parse(6, &b).unwrap();
        assert_eq!(r.zone, 5);
        assert_eq!(r.orig.src, Some(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1))));
        assert_eq!(r.orig.dport, Some(80));
        assert_eq!(r.orig.proto, Some(6));
        assert_eq!(r.reply.src, None);
    }

    #[test]
    fn malformed_tlvs_are_errors_not_panics() {
        assert!(parse(0, &[0, 2, 0]).is_err());
        assert!(parse(0, &[0, 2, 0, 99, 0, 0, 0, 0]).is_err());
        assert!(parse(0, &[0, 2, 0, 5, 1, 0, 0, 0]).is_err());
        assert!(parse(0, &[0, 9, 0, 4, 0, 0, 0, 0]).is_err());
        assert_eq!(parse(0, &[]).unwrap(), CtFlushReq::default());
    }
}
