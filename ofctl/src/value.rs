//! Value syntax shared by matches and actions: integers in OVS's `parse_int_string` rules,
//! Ethernet/IPv4/IPv6 addresses with masks, flag sets (`+trk-inv`, `syn|ack`), IP fragment
//! keywords, OpenFlow port numbers and names, and the hexadecimal style ovs-ofctl prints
//! (`0x1a` without leading zeros, `0` for zero).
//!
//! Every parser returns `Err(String)` with ovs-ofctl's wording (`1.2.3.x: invalid IP
//! address`) rather than panicking, whatever the input.

use std::collections::HashMap;
use std::net::Ipv6Addr;

use crate::field::{Fmt, Mf};

/// Port numbers (Open vSwitch's 16-bit `ofp_port_t` space).
pub mod ports {
    pub const MAX: u16 = 0xff00;
    pub const UNSET: u16 = 0xfff7;
    pub const IN_PORT: u16 = 0xfff8;
    pub const TABLE: u16 = 0xfff9;
    pub const NORMAL: u16 = 0xfffa;
    pub const FLOOD: u16 = 0xfffb;
    pub const ALL: u16 = 0xfffc;
    pub const CONTROLLER: u16 = 0xfffd;
    pub const LOCAL: u16 = 0xfffe;
    pub const ANY: u16 = 0xffff;
    pub const NONE: u16 = 0xffff;
}

/// Reserved port names, as ovs-ofctl prints them.
pub fn reserved_port_name(p: u16) -> Option<&'static str> {
    Some(match p {
        ports::IN_PORT => "IN_PORT",
        ports::TABLE => "TABLE",
        ports::NORMAL => "NORMAL",
        ports::FLOOD => "FLOOD",
        ports::ALL => "ALL",
        ports::CONTROLLER => "CONTROLLER",
        ports::LOCAL => "LOCAL",
        ports::ANY => "ANY",
        _ => return None,
    })
}

/// OpenFlow 1.1+ 32-bit port to the 16-bit space (None for the unusable gap).
pub fn port_from_ofp11(p: u32) -> Option<u16> {
    if p < ports::MAX as u32 {
        Some(p as u16)
    } else if p >= 0xffff_ff00 {
        Some((p - 0xffff_0000) as u16)
    } else {
        None
    }
}

/// 16-bit port to OpenFlow 1.1+.
pub fn port_to_ofp11(p: u16) -> u32 {
    if p < ports::MAX {
        p as u32
    } else {
        p as u32 + 0xffff_0000
    }
}

/// Port names learned from the switch (port descriptions), for `--names`.
#[derive(Debug, Clone, Default)]
pub struct PortMap {
    by_name: HashMap<String, Option<u16>>,
    by_number: HashMap<u16, Option<String>>,
}

impl PortMap {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a port; a name or number seen twice becomes unusable, as in OVS's namemap.
    pub fn insert(&mut self, number: u16, name: &str) {
        self.by_name
            .entry(name.to_string())
            .and_modify(|e| {
                if *e != Some(number) {
                    *e = None
                }
            })
            .or_insert(Some(number));
        self.by_number
            .entry(number)
            .and_modify(|e| {
                if e.as_deref() != Some(name) {
                    *e = None
                }
            })
            .or_insert(Some(name.to_string()));
    }

    pub fn number(&self, name: &str) -> Option<u16> {
        self.by_name.get(name).copied().flatten()
    }

    pub fn name(&self, number: u16) -> Option<&str> {
        self.by_number.get(&number).and_then(|n| n.as_deref())
    }

    pub fn is_empty(&self) -> bool {
        self.by_number.is_empty()
    }
}

/// Parses a port the way ovs-ofctl does: a number (OF1.0 or OF1.1+ reserved numbering), a
/// reserved name (case-insensitive), or a port name from `map` (optionally JSON-quoted).
pub fn parse_port(s: &str, map: Option<&PortMap>) -> Option<u16> {
    if s.starts_with('-') {
        return None;
    }
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        let n: u64 = s.parse().ok()?;
        if n < ports::MAX as u64 || n <= 0xffff {
            return Some(n as u16);
        }
        if n < 0xffff_ff00 {
            return None;
        }
        if n <= u32::MAX as u64 {
            return Some((n - 0xffff_0000) as u16);
        }
        return None;
    }
    for p in [
        ports::IN_PORT,
        ports::TABLE,
        ports::NORMAL,
        ports::FLOOD,
        ports::ALL,
        ports::CONTROLLER,
        ports::LOCAL,
        ports::ANY,
    ] {
        if reserved_port_name(p).is_some_and(|n| n.eq_ignore_ascii_case(s)) {
            return Some(p);
        }
    }
    if s.eq_ignore_ascii_case("NONE") {
        return Some(ports::NONE);
    }
    let map = map?;
    if let Some(inner) = s.strip_prefix('"').and_then(|x| x.strip_suffix('"')) {
        let name = json_unescape(inner)?;
        return map.number(&name);
    }
    map.number(s)
}

/// Formats a port: reserved name, mapped name (quoted when not alphanumeric), or number.
pub fn format_port(p: u16, map: Option<&PortMap>) -> String {
    if let Some(n) = reserved_port_name(p) {
        return n.to_string();
    }
    if let Some(name) = map.and_then(|m| m.name(p)) {
        return quote_name(name);
    }
    p.to_string()
}

/// ovs-ofctl quotes a port or table name unless it is a letter followed by alphanumerics.
pub fn quote_name(name: &str) -> String {
    let mut chars = name.chars();
    let plain = chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric());
    if plain {
        name.to_string()
    } else {
        json_escape(name)
    }
}

fn json_escape(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn json_unescape(s: &str) -> Option<String> {
    serde_json::from_str::<String>(&format!("\"{s}\"")).ok()
}

/// `ds_put_hex`: "0x" and the bytes without leading zeros, or "0".
pub fn put_hex(bytes: &[u8]) -> String {
    let mut out = String::new();
    for &b in bytes {
        if out.is_empty() {
            if b != 0 {
                out.push_str(&format!("0x{b:x}"));
            }
        } else {
            out.push_str(&format!("{b:02x}"));
        }
    }
    if out.is_empty() {
        out.push('0');
    }
    out
}

/// C's `%#x`: "0" for zero, else "0x" and lowercase hex.
pub fn c_hex(v: u128) -> String {
    if v == 0 {
        "0".into()
    } else {
        format!("0x{v:x}")
    }
}

/// `format_hex_arg`: bytes as `01.02.ff`.
pub fn hex_arg(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(".")
}

/// Parses `01.02.ff` or `0102ff` (OVS `parse_hex_bytes`-style, dots optional).
pub fn parse_hex_arg(s: &str) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'.' {
            i += 1;
            continue;
        }
        let hi = hexit(b[i]);
        let lo = b.get(i + 1).copied().and_then(hexit);
        match (hi, lo) {
            (Some(h), Some(l)) => out.push(h << 4 | l),
            _ => return Err(format!("{s}: bad hex digit in byte string")),
        }
        i += 2;
    }
    Ok(out)
}

fn hexit(c: u8) -> Option<u8> {
    (c as char).to_digit(16).map(|d| d as u8)
}

/// C `strtoull(s, &tail, 0)`: optional whitespace and sign, `0x` hex, leading-0 octal, else
/// decimal.  Returns (value, bytes consumed), None when no digits or on overflow.
pub fn strtoull(s: &str) -> Option<(u64, usize)> {
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() && (b[i] == b' ' || (b'\t'..=b'\r').contains(&b[i])) {
        i += 1;
    }
    let mut neg = false;
    if i < b.len() && (b[i] == b'+' || b[i] == b'-') {
        neg = b[i] == b'-';
        i += 1;
    }
    let (radix, start) = if b.len() > i + 1 && b[i] == b'0' && (b[i + 1] | 0x20) == b'x' {
        if b.get(i + 2).copied().and_then(hexit).is_some() {
            (16, i + 2)
        } else {
            (10, i)
        }
    } else if i < b.len() && b[i] == b'0' {
        (8, i)
    } else {
        (10, i)
    };
    let mut j = start;
    let mut v: u64 = 0;
    while j < b.len() {
        let d = match (b[j] as char).to_digit(radix) {
            Some(d) => d as u64,
            None => break,
        };
        v = v.checked_mul(radix as u64)?.checked_add(d)?;
        j += 1;
    }
    if j == start {
        return None;
    }
    Some((if neg { v.wrapping_neg() } else { v }, j))
}

/// Parses an unsigned integer that must fill the whole string (ovs `str_to_u*`).
pub fn parse_u64_full(s: &str) -> Option<u64> {
    let (v, n) = strtoull(s)?;
    (n == s.len()).then_some(v)
}

/// OVS `str_to_u16`-family helper with its error text.
pub fn str_to_uint(s: &str, name: &str, max: u64) -> Result<u64, String> {
    match s.parse::<i64>().ok().or_else(|| {
        let (v, n) = strtoull(s)?;
        (n == s.len()).then_some(v as i64)
    }) {
        Some(v) if v >= 0 && (v as u64) <= max => Ok(v as u64),
        _ => Err(format!("invalid {name} \"{s}\"")),
    }
}

/// OVS `parse_int_string`: hex of any length after `0x` (up to `width` bytes), otherwise a
/// C integer.  Returns the big-endian bytes and the unparsed tail.
pub fn parse_int_string(s: &str, width: usize) -> Result<(Vec<u8>, &str), IntErr> {
    let mut out = vec![0u8; width];
    if let Some(h) = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        let mut digits = Vec::new();
        let hb = h.as_bytes();
        let mut i = 0;
        loop {
            while i < hb.len() && matches!(hb[i], b' ' | b'\t' | b'\r' | b'\n') {
                i += 1;
            }
            match hb.get(i).copied().and_then(hexit) {
                Some(d) => {
                    if d != 0 || !digits.is_empty() {
                        if (digits.len() + 1).div_ceil(2) > width {
                            return Err(IntErr::Range);
                        }
                        digits.push(d);
                    }
                    i += 1;
                }
                None => break,
            }
        }
        let mut idx = width;
        let mut k = digits.len();
        while k > 0 {
            idx -= 1;
            let lo = digits[k - 1];
            let hi = if k >= 2 { digits[k - 2] } else { 0 };
            out[idx] = hi << 4 | lo;
            k = k.saturating_sub(2);
        }
        return Ok((out, &h[i..]));
    }
    let (mut v, n) = strtoull(s).ok_or(IntErr::Syntax)?;
    for i in (0..width).rev() {
        out[i] = v as u8;
        v = v.checked_shr(8).unwrap_or(0);
    }
    if v != 0 {
        return Err(IntErr::Range);
    }
    Ok((out, &s[n..]))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IntErr {
    Syntax,
    Range,
}

/// Big-endian bytes to u128 (last 16 bytes).
pub fn be_to_u128(b: &[u8]) -> u128 {
    b.iter()
        .rev()
        .take(16)
        .rev()
        .fold(0u128, |a, &x| a << 8 | x as u128)
}

/// u128 to `n` big-endian bytes (n <= 16).
pub fn u128_to_be(v: u128, n: usize) -> Vec<u8> {
    let all = v.to_be_bytes();
    all[16 - n.min(16)..].to_vec()
}

// ---- addresses ----

pub fn format_mac(m: &[u8]) -> String {
    m.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// Parses `aa:bb:cc:dd:ee:ff` (each part 1-2 hex digits, like `%hhx` scanning).
pub fn parse_mac(s: &str) -> Option<[u8; 6]> {
    let parts: Vec<&str> = s.split(':').collect();
    if parts.len() != 6 {
        return None;
    }
    let mut m = [0u8; 6];
    for (i, p) in parts.iter().enumerate() {
        if p.is_empty() || p.len() > 2 || !p.bytes().all(|c| c.is_ascii_hexdigit()) {
            return None;
        }
        m[i] = u8::from_str_radix(p, 16).ok()?;
    }
    Some(m)
}

pub fn format_ipv4(v: u32) -> String {
    let b = v.to_be_bytes();
    format!("{}.{}.{}.{}", b[0], b[1], b[2], b[3])
}

/// Parses a dotted quad (each part 0-255 decimal).
pub fn parse_ipv4(s: &str) -> Option<u32> {
    let parts: Vec<&str> = s.split('.').collect();
    if parts.len() != 4 {
        return None;
    }
    let mut v = 0u32;
    for p in parts {
        if p.is_empty() || p.len() > 3 || !p.bytes().all(|c| c.is_ascii_digit()) {
            return None;
        }
        let n: u32 = p.parse().ok()?;
        if n > 255 {
            return None;
        }
        v = v << 8 | n;
    }
    Some(v)
}

/// `ip_format_masked`: CIDR suffix when the mask is a prefix.
pub fn format_ipv4_masked(ip: u32, mask: u32) -> String {
    let mut s = format_ipv4(ip);
    if mask != u32::MAX {
        if mask.leading_ones() + mask.trailing_zeros() == 32 {
            s.push_str(&format!("/{}", mask.leading_ones()));
        } else {
            s.push('/');
            s.push_str(&format_ipv4(mask));
        }
    }
    s
}

/// `ip_parse_masked`: `a.b.c.d`, `a.b.c.d/n`, `a.b.c.d/m.m.m.m`.
pub fn parse_ipv4_masked(s: &str) -> Result<(u32, u32), String> {
    let bad = || format!("{s}: invalid IP address");
    let (a, m) = match s.split_once('/') {
        Some((a, m)) => (a, Some(m)),
        None => (s, None),
    };
    let ip = parse_ipv4(a).ok_or_else(bad)?;
    let mask = match m {
        None => u32::MAX,
        Some(m) => {
            if let Some(mm) = parse_ipv4(m) {
                mm
            } else if !m.is_empty() && m.bytes().all(|c| c.is_ascii_digit()) {
                let n: u32 = m.parse().map_err(|_| bad())?;
                if n > 32 {
                    return Err(format!(
                        "{s}: IPv4 network prefix bits not between 0 and 32, inclusive"
                    ));
                }
                if n == 0 {
                    0
                } else {
                    u32::MAX << (32 - n)
                }
            } else {
                return Err(bad());
            }
        }
    };
    Ok((ip, mask))
}

/// glibc `inet_ntop(AF_INET6)`: RFC 5952 compression, with embedded IPv4 for `::a.b.c.d`
/// and `::ffff:a.b.c.d`.
pub fn format_ipv6(v: u128) -> String {
    let w: Vec<u16> = (0..8).map(|i| (v >> (112 - 16 * i)) as u16).collect();
    // Longest run of zero words (length >= 2), first one wins.
    let (mut best_base, mut best_len) = (usize::MAX, 0usize);
    let mut i = 0;
    while i < 8 {
        if w[i] == 0 {
            let start = i;
            while i < 8 && w[i] == 0 {
                i += 1;
            }
            if i - start > best_len {
                best_base = start;
                best_len = i - start;
            }
        } else {
            i += 1;
        }
    }
    if best_len < 2 {
        best_base = usize::MAX;
    }
    let mut out = String::new();
    let mut i = 0;
    while i < 8 {
        if best_base != usize::MAX && i >= best_base && i < best_base + best_len {
            if i == best_base {
                out.push(':');
            }
            i += 1;
            continue;
        }
        if i != 0 {
            out.push(':');
        }
        // Encapsulated IPv4?
        if i == 6
            && best_base == 0
            && (best_len == 6 || (best_len == 7 && w[7] != 1) || (best_len == 5 && w[5] == 0xffff))
        {
            out.push_str(&format_ipv4(v as u32));
            return out;
        }
        out.push_str(&format!("{:x}", w[i]));
        i += 1;
    }
    if best_base != usize::MAX && best_base + best_len == 8 {
        out.push(':');
    }
    out
}

pub fn parse_ipv6(s: &str) -> Option<u128> {
    s.parse::<Ipv6Addr>().ok().map(u128::from)
}

/// `ipv6_format_masked`.
pub fn format_ipv6_masked(ip: u128, mask: u128) -> String {
    let mut s = format_ipv6(ip);
    if mask != u128::MAX {
        if mask.leading_ones() + mask.trailing_zeros() == 128 {
            s.push_str(&format!("/{}", mask.leading_ones()));
        } else {
            s.push('/');
            s.push_str(&format_ipv6(mask));
        }
    }
    s
}

/// `ipv6_parse_masked`.
pub fn parse_ipv6_masked(s: &str) -> Result<(u128, u128), String> {
    let bad = || format!("{s}: invalid IPv6 address");
    let (a, m) = match s.split_once('/') {
        Some((a, m)) => (a, Some(m)),
        None => (s, None),
    };
    let ip = parse_ipv6(a.trim_start()).ok_or_else(bad)?;
    let mask = match m {
        None => u128::MAX,
        Some(m) if !m.is_empty() && m.bytes().all(|c| c.is_ascii_digit()) => {
            let n: u32 = m.parse().map_err(|_| bad())?;
            if n > 128 {
                return Err(format!(
                    "{s}: IPv6 network prefix bits not between 0 and 128, inclusive"
                ));
            }
            if n == 0 {
                0
            } else {
                u128::MAX << (128 - n)
            }
        }
        Some(m) => parse_ipv6(m).ok_or_else(|| format!("{s}: Invalid IPv6 mask"))?,
    };
    Ok((ip, mask))
}

// ---- flags ----

pub fn ct_state_name(bit: u32) -> Option<&'static str> {
    Some(match bit {
        0x01 => "new",
        0x02 => "est",
        0x04 => "rel",
        0x08 => "rpl",
        0x10 => "inv",
        0x20 => "trk",
        0x40 => "snat",
        0x80 => "dnat",
        _ => return None,
    })
}

pub fn tcp_flag_name(bit: u32) -> Option<&'static str> {
    Some(match bit {
        0x001 => "fin",
        0x002 => "syn",
        0x004 => "rst",
        0x008 => "psh",
        0x010 => "ack",
        0x020 => "urg",
        0x040 => "ece",
        0x080 => "cwr",
        0x100 => "ns",
        _ => return None,
    })
}

pub fn tun_flag_name(bit: u32) -> Option<&'static str> {
    Some(match bit {
        0x1 => "oam",
        0x2 => "df",
        0x4 => "csum",
        0x8 => "key",
        _ => return None,
    })
}

/// `format_flags`: names joined by `del`, unknown bits as hex, "0" for none.
pub fn format_flags(name_of: fn(u32) -> Option<&'static str>, flags: u32, del: char) -> String {
    if flags == 0 {
        return "0".into();
    }
    let mut out = Vec::new();
    let mut bad = 0u32;
    let mut f = flags;
    while f != 0 {
        let bit = f & f.wrapping_neg();
        match name_of(bit) {
            Some(n) => out.push(n.to_string()),
            None => bad |= bit,
        }
        f &= !bit;
    }
    if bad != 0 {
        out.push(format!("0x{bad:x}"));
    }
    out.join(&del.to_string())
}

/// `format_flags_masked` (without the `name=` prefix).
pub fn format_flags_masked(
    name_of: fn(u32) -> Option<&'static str>,
    flags: u32,
    mask: u32,
    max_mask: u32,
) -> String {
    if mask == max_mask {
        return format_flags(name_of, flags, '|');
    }
    if mask == 0 {
        return "0/0".into();
    }
    let mut out = String::new();
    let mut m = mask;
    while m != 0 {
        let bit = m & m.wrapping_neg();
        out.push(if flags & bit != 0 { '+' } else { '-' });
        out.push_str(name_of(bit).unwrap_or("[Unknown]"));
        m &= !bit;
    }
    out
}

/// `parse_flags`: `N/M` numerically, `+a-b` masked, or `a|b` / numbers unmasked.
pub fn parse_flags(
    s: &str,
    name_of: fn(u32) -> Option<&'static str>,
    field_name: &str,
    allowed: u32,
) -> Result<(u32, u32), String> {
    let unknown = || format!("{s}: unknown {field_name} flag(s)");
    if let Some((a, b)) = s.split_once('/') {
        if let (Some(f), Some(m)) = (parse_u64_full(a), parse_u64_full(b)) {
            let (f, m) = (f as u32, m as u32);
            if f & !allowed != 0 || m & !allowed != 0 {
                return Err(unknown());
            }
            return Ok((f, m));
        }
    }
    let names: Vec<(u32, &'static str)> = (0..32)
        .filter_map(|i| name_of(1 << i).map(|n| (1u32 << i, n)))
        .collect();
    if s.starts_with('+') || s.starts_with('-') {
        let (mut flags, mut mask) = (0u32, 0u32);
        let mut rest = s;
        while !rest.is_empty() {
            let set = match rest.as_bytes()[0] {
                b'+' => true,
                b'-' => false,
                _ => {
                    return Err(format!(
                        "{rest}: {field_name} must be preceded by '+' (for SET) or '-' (NOT SET)"
                    ))
                }
            };
            rest = &rest[1..];
            let end = rest.find(['+', '-']).unwrap_or(rest.len());
            let word = &rest[..end];
            // OVS names the rest of the string from this word on.
            let unknown_here = || format!("{rest}: unknown {field_name} flag(s)");
            let (bit, _) = names
                .iter()
                .find(|(_, n)| *n == word)
                .ok_or_else(unknown_here)?;
            if mask & bit != 0 {
                return Err(format!(
                    "{rest}: Each {field_name} flag can be specified only once"
                ));
            }
            if bit & allowed == 0 {
                return Err(unknown_here());
            }
            if set {
                flags |= bit;
            }
            mask |= bit;
            rest = &rest[end..];
        }
        return Ok((flags, mask));
    }
    let mut result = 0u32;
    for word in s.split('|') {
        if word.is_empty() {
            continue;
        }
        if let Some(v) = parse_u64_full(word) {
            if v as u32 as u64 != v || (v as u32) & !allowed != 0 {
                return Err(unknown());
            }
            result |= v as u32;
            continue;
        }
        let (bit, _) = names.iter().find(|(_, n)| *n == word).ok_or_else(unknown)?;
        if bit & allowed == 0 {
            return Err(unknown());
        }
        result |= bit;
    }
    Ok((result, u32::MAX))
}

/// IP fragment keywords: (name, mask, value).
const FRAGS: &[(&str, u8, u8)] = &[
    ("no", 3, 0),
    ("first", 3, 1),
    ("later", 3, 3),
    ("no", 1, 0),
    ("yes", 1, 1),
    ("not_later", 2, 0),
    ("later", 2, 2),
];

pub fn format_frag(value: u8, mask: u8) -> &'static str {
    let mask = mask & 3;
    let value = value & mask;
    FRAGS
        .iter()
        .find(|(_, m, v)| *m == mask && *v == value)
        .map(|(n, _, _)| *n)
        .unwrap_or("<error>")
}

// ---- per-field parse / format (mf_parse / mf_format) ----

/// A field value and mask, big-endian, `n_bytes` long each.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldValue {
    pub value: Vec<u8>,
    pub mask: Vec<u8>,
}

impl FieldValue {
    pub fn exact(value: Vec<u8>) -> Self {
        let mask = vec![0xff; value.len()];
        FieldValue { value, mask }
    }
    pub fn is_exact(&self) -> bool {
        self.mask.iter().all(|&b| b == 0xff)
    }
    pub fn is_wild(&self) -> bool {
        self.mask.iter().all(|&b| b == 0)
    }
}

/// `mf_parse`: parses `s` as a value (and optional mask) for `mf`.
pub fn mf_parse(mf: Mf, s: &str, map: Option<&PortMap>) -> Result<FieldValue, String> {
    let info = mf.info();
    let n = info.n_bytes;
    if s == "*" {
        return Ok(FieldValue {
            value: vec![0; n],
            mask: vec![0; n],
        });
    }
    let fv = match info.fmt {
        Fmt::Decimal | Fmt::Hex => {
            let syntax = |what: &str, e: IntErr| match e {
                IntErr::Range => format!("{s}: {what} too large for {n}-byte field {}", info.name),
                IntErr::Syntax => format!("{s}: bad syntax for {} {what}", info.name),
            };
            let (value, tail) = parse_int_string(s, n).map_err(|e| syntax("value", e))?;
            let mask = if let Some(m) = tail.strip_prefix('/') {
                let (mask, t2) = parse_int_string(m, n).map_err(|e| syntax("mask", e))?;
                if !t2.is_empty() {
                    return Err(syntax("mask", IntErr::Syntax));
                }
                mask
            } else if tail.is_empty() {
                vec![0xff; n]
            } else {
                return Err(syntax("value", IntErr::Syntax));
            };
            FieldValue { value, mask }
        }
        Fmt::CtState => {
            let (f, m) = parse_flags(s, ct_state_name, "ct_state", 0xff)?;
            FieldValue {
                value: f.to_be_bytes().to_vec(),
                mask: m.to_be_bytes().to_vec(),
            }
        }
        Fmt::Ethernet => {
            let bad = || format!("{s}: invalid Ethernet address");
            let (a, m) = match s.split_once('/') {
                Some((a, m)) => (a, Some(m)),
                None => (s, None),
            };
            let v = parse_mac(a).ok_or_else(bad)?;
            let mask = match m {
                Some(m) => parse_mac(m).ok_or_else(bad)?,
                None => [0xff; 6],
            };
            FieldValue {
                value: v.to_vec(),
                mask: mask.to_vec(),
            }
        }
        Fmt::Ipv4 => {
            let (ip, m) = parse_ipv4_masked(s)?;
            FieldValue {
                value: ip.to_be_bytes().to_vec(),
                mask: m.to_be_bytes().to_vec(),
            }
        }
        Fmt::Ipv6 => {
            let (ip, m) = parse_ipv6_masked(s)?;
            FieldValue {
                value: ip.to_be_bytes().to_vec(),
                mask: m.to_be_bytes().to_vec(),
            }
        }
        Fmt::OfpPort => {
            let p = parse_port(s, map)
                .ok_or_else(|| format!("{s}: invalid or unknown port for {}", info.name))?;
            FieldValue::exact(p.to_be_bytes().to_vec())
        }
        Fmt::OfpPortOxm => {
            let p = parse_port(s, map)
                .ok_or_else(|| format!("{s}: port value out of range for {}", info.name))?;
            FieldValue::exact(port_to_ofp11(p).to_be_bytes().to_vec())
        }
        Fmt::Frag => {
            let (_, m, v) = FRAGS
                .iter()
                .find(|(name, _, _)| name.eq_ignore_ascii_case(s))
                .ok_or_else(|| {
                    format!(
                        "{s}: unknown fragment type (valid types are \"no\", \"yes\", \
                         \"first\", \"later\", \"not_later\""
                    )
                })?;
            FieldValue {
                value: vec![*v],
                mask: vec![*m | !3],
            }
        }
        Fmt::TnlFlags => {
            let (f, m) = parse_flags(s, tun_flag_name, "tunnel", 0x1)?;
            FieldValue {
                value: (f as u16).to_be_bytes().to_vec(),
                mask: (m as u16).to_be_bytes().to_vec(),
            }
        }
        Fmt::TcpFlags => {
            let (f, m) = parse_flags(s, tcp_flag_name, "TCP", 0x0fff)?;
            FieldValue {
                value: (f as u16).to_be_bytes().to_vec(),
                mask: (m as u16).to_be_bytes().to_vec(),
            }
        }
        Fmt::PacketType => {
            let bad = |what: &str| format!("{s}: bad syntax for packet type {what}");
            let inner = s.strip_prefix('(').ok_or_else(|| bad("missing '('"))?;
            let (ns, tail) = parse_int_string(inner, 2).map_err(|_| bad("ns"))?;
            let rest = tail.strip_prefix(',').ok_or_else(|| bad("missing ','"))?;
            let (ty, tail) = parse_int_string(rest, 2).map_err(|_| bad("ns_type"))?;
            if tail != ")" {
                return Err(bad("missing ')'"));
            }
            let mut v = ns;
            v.extend(ty);
            FieldValue::exact(v)
        }
    };
    if !mask_valid(mf, &fv.mask) {
        return Err(format!("{s}: invalid mask for field {}", info.name));
    }
    Ok(fv)
}

/// `mf_is_mask_valid`: exact or wildcard for unmaskable fields; any mask otherwise.
fn mask_valid(mf: Mf, mask: &[u8]) -> bool {
    let info = mf.info();
    if info.maskable {
        return true;
    }
    mask.iter().all(|&b| b == 0) || mask.iter().all(|&b| b == 0xff)
}

/// `mf_format`: the value (and mask) the way ovs-ofctl prints it in `set_field` and `learn`.
pub fn mf_format(mf: Mf, value: &[u8], mask: Option<&[u8]>, map: Option<&PortMap>) -> String {
    let info = mf.info();
    let mask = match mask {
        Some(m) if m.iter().all(|&b| b == 0) => return "ANY".into(),
        Some(m) if m.iter().all(|&b| b == 0xff) => None,
        m => m,
    };
    let u = be_to_u128(value);
    let mu = mask.map(be_to_u128);
    match info.fmt {
        Fmt::OfpPortOxm if mask.is_none() => match port_from_ofp11(u as u32) {
            Some(p) => format_port(p, map),
            None => (u as u32).to_string(),
        },
        Fmt::OfpPort if mask.is_none() => format_port(u as u16, map),
        Fmt::Decimal | Fmt::Hex | Fmt::OfpPort | Fmt::OfpPortOxm => {
            let mut s = if info.fmt == Fmt::Hex {
                put_hex(value)
            } else {
                (u as u64).to_string()
            };
            if let Some(m) = mask {
                s.push('/');
                s.push_str(&put_hex(m));
            }
            s
        }
        Fmt::CtState => format_flags_masked(
            ct_state_name,
            u as u32,
            mu.unwrap_or(u32::MAX as u128) as u32,
            0xffff,
        ),
        Fmt::Ethernet => {
            let mut s = format_mac(value);
            if let Some(m) = mask {
                s.push('/');
                s.push_str(&format_mac(m));
            }
            s
        }
        Fmt::Ipv4 => format_ipv4_masked(u as u32, mu.unwrap_or(u32::MAX as u128) as u32),
        Fmt::Ipv6 => format_ipv6_masked(u, mu.unwrap_or(u128::MAX)),
        Fmt::Frag => format_frag(u as u8, mu.unwrap_or(0xff) as u8).to_string(),
        Fmt::TnlFlags => format_flags_masked(
            tun_flag_name,
            u as u32,
            (mu.unwrap_or(0xffff) as u32) & 1,
            1,
        ),
        Fmt::TcpFlags => format_flags_masked(
            tcp_flag_name,
            u as u32,
            (mu.unwrap_or(0xffff) as u32) & 0x0fff,
            0x0fff,
        ),
        Fmt::PacketType => format_packet_type(u as u32, mu.unwrap_or(u32::MAX as u128) as u32),
    }
}

/// `format_packet_type_masked`.
pub fn format_packet_type(value: u32, mask: u32) -> String {
    if value == 0 && mask == u32::MAX {
        return "eth".into();
    }
    let part = |v: u16, m: u16| -> String {
        if m == 0 {
            "*".into()
        } else {
            let mut s = if v > 9 {
                format!("0x{v:x}")
            } else {
                v.to_string()
            };
            if m != u16::MAX {
                s.push_str(&format!("/0x{m:x}"));
            }
            s
        }
    };
    format!(
        "packet_type=({},{})",
        part((value >> 16) as u16, (mask >> 16) as u16),
        part(value as u16, mask as u16)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_like_inet_ntop() {
        let f = |s: &str| format_ipv6(parse_ipv6(s).unwrap());
        assert_eq!(f("fe80::1"), "fe80::1");
        assert_eq!(f("::"), "::");
        assert_eq!(f("::1"), "::1");
        assert_eq!(f("::ffff:1.2.3.4"), "::ffff:1.2.3.4");
        assert_eq!(f("::1.2.3.4"), "::1.2.3.4");
        assert_eq!(f("2001:db8:0:0:1:0:0:1"), "2001:db8::1:0:0:1");
        assert_eq!(f("ff02::1:ff00:1"), "ff02::1:ff00:1");
    }

    #[test]
    fn integers() {
        assert_eq!(
            parse_int_string("0x1234", 4).unwrap(),
            (vec![0, 0, 0x12, 0x34], "")
        );
        assert_eq!(parse_int_string("10", 1).unwrap(), (vec![10], ""));
        assert_eq!(parse_int_string("010", 1).unwrap(), (vec![8], ""));
        assert_eq!(parse_int_string("256", 1), Err(IntErr::Range));
        assert_eq!(parse_int_string("0x100", 1), Err(IntErr::Range));
        assert_eq!(parse_int_string("x", 1), Err(IntErr::Syntax));
        assert_eq!(put_hex(&[0, 0, 0x1a, 0x02]), "0x1a02");
        assert_eq!(put_hex(&[0, 0]), "0");
        assert_eq!(strtoull("-1").unwrap().0, u64::MAX);
    }

    #[test]
    fn flags() {
        assert_eq!(
            parse_flags("+trk+est-new", ct_state_name, "ct_state", 0xff).unwrap(),
            (0x22, 0x23)
        );
        assert_eq!(
            parse_flags("trk|est", ct_state_name, "ct_state", 0xff).unwrap(),
            (0x22, u32::MAX)
        );
        assert!(parse_flags("+foo", ct_state_name, "ct_state", 0xff).is_err());
        assert_eq!(
            format_flags_masked(ct_state_name, 0x22, 0x23, 0xff),
            "-new+est+trk"
        );
    }

    #[test]
    fn ports() {
        assert_eq!(parse_port("LOCAL", None), Some(ports::LOCAL));
        assert_eq!(parse_port("local", None), Some(ports::LOCAL));
        assert_eq!(parse_port("4294967294", None), Some(ports::LOCAL));
        assert_eq!(parse_port("7", None), Some(7));
        assert_eq!(parse_port("foo", None), None);
        let mut m = PortMap::new();
        m.insert(3, "br-int");
        assert_eq!(parse_port("\"br-int\"", Some(&m)), Some(3));
        assert_eq!(parse_port("br-int", Some(&m)), Some(3));
        assert_eq!(format_port(3, Some(&m)), "\"br-int\"");
    }
}
