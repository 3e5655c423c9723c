//! No input makes the text layer or the message printer panic: mangled flow text (every
//! prefix of real OVN flows, random byte substitutions) gets a clear error or a flow, and
//! mangled messages (every truncation and random corruption of real encodings) print as a
//! decode error or something, never a crash.  Deterministic pseudo-random mutations, so a
//! failure reproduces.

use std::panic::{catch_unwind, AssertUnwindSafe};
use xvs_ofctl::field::proto;
use xvs_ofctl::flow::{encode_flow_mod, parse_flow, Command, ParseFor};
use xvs_ofctl::print::ofp_to_string;

/// xorshift64*: small, deterministic.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

fn sample_lines() -> Vec<String> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data");
    let mut lines = Vec::new();
    for f in [
        "ovn-flows-full-ch1.txt",
        "extra-flows-of15.txt",
        "extra-flows-of10.txt",
    ] {
        let text = std::fs::read_to_string(dir.join(f)).unwrap();
        lines.extend(text.lines().map(|l| l.trim().to_string()));
    }
    lines.retain(|l| !l.is_empty());
    lines
}

/// Parses (and, when that works, encodes and prints) `text`; must not panic.
fn exercise(text: &str) {
    let r = catch_unwind(AssertUnwindSafe(|| {
        if let Ok(f) = parse_flow(text, ParseFor::ModAny, None) {
            let _ = f.to_dump_line(None);
            for p in [proto::OF10_NXM, proto::OF13_OXM, proto::OF15_OXM] {
                if let Ok(m) = encode_flow_mod(&f, p) {
                    let bytes = openflow::encode(proto::version(p), 1, &m);
                    let _ = ofp_to_string(&bytes, None, 2);
                }
            }
        }
    }));
    assert!(r.is_ok(), "panic on flow text: {text:?}");
}

#[test]
fn mangled_flow_text() {
    let lines = sample_lines();
    let mut rng = Rng(0x1234_5678_9abc_def1);
    // Every prefix of a sample of lines (truncations hit every parser state).
    for l in lines.iter().step_by(37) {
        for i in (0..=l.len()).filter(|i| l.is_char_boundary(*i)) {
            exercise(&l[..i]);
        }
    }
    // Random substitutions of syntax-relevant characters.
    let alphabet = b"=,()[]{}:/.->+*0123456789abcdefx \\\"'";
    for _ in 0..20_000 {
        let l = lines[rng.below(lines.len())].as_bytes().to_vec();
        let mut b = l.clone();
        for _ in 0..1 + rng.below(3) {
            let i = rng.below(b.len());
            match rng.below(3) {
                0 => b[i] = alphabet[rng.below(alphabet.len())],
                1 => {
                    b.remove(i);
                }
                _ => b.insert(i, alphabet[rng.below(alphabet.len())]),
            }
        }
        exercise(&String::from_utf8_lossy(&b));
    }
}

#[test]
fn mangled_messages() {
    let lines = sample_lines();
    let mut rng = Rng(0xfeed_beef_0bad_cafe);
    let mut msgs = Vec::new();
    for l in lines.iter().step_by(5) {
        if let Ok(f) = parse_flow(l, ParseFor::Mod(Command::Add), None) {
            for p in [proto::OF10_NXM, proto::OF13_OXM, proto::OF15_OXM] {
                if let Ok(m) = encode_flow_mod(&f, p) {
                    msgs.push(openflow::encode(proto::version(p), 7, &m));
                }
            }
        }
    }
    assert!(msgs.len() > 200, "{}", msgs.len());
    let check = |b: &[u8]| {
        let r = catch_unwind(AssertUnwindSafe(|| ofp_to_string(b, None, 2)));
        assert!(r.is_ok(), "panic printing {b:02x?}");
    };
    for m in &msgs {
        // Truncations, with the header's length fixed up so the codec looks inside.
        for cut in (8..m.len()).step_by(4) {
            let mut b = m[..cut].to_vec();
            b[2..4].copy_from_slice(&(cut as u16).to_be_bytes());
            check(&b);
        }
        // Random corruption of the body.
        for _ in 0..20 {
            let mut b = m.clone();
            for _ in 0..1 + rng.below(4) {
                let i = 8 + rng.below(b.len() - 8);
                b[i] = rng.next() as u8;
            }
            check(&b);
        }
    }
}

#[test]
fn mangled_packets() {
    use xvs_ofctl::packet::{packet_to_string, parse_hex_packet};
    let mut rng = Rng(0x0dd_ba11);
    let samples = [
        // ARP, UDP, TCP over VLAN, IPv6 ICMPv6 neighbor solicitation.
        "ffffffffffff000000000001080600010800060400010000000000010a0000010000000000000a000002",
        "00000000000200000000000108004500002000004000401126cb0a0000010a00000204d20035000c492fdeadbeef",
        "0000000000020000000000018100000508004500002800004000400600000a0000010a00000204d200500000000100000000501220000000000",
        "33330000000100000000000186dd6000000000203aff fe800000000000000000000000000001ff0200000000000000000001ff000002870000000000000000fe800000000000000000000000000002",
    ];
    for s in samples {
        let hex: String = s.split_whitespace().collect();
        let Ok(p) = parse_hex_packet(&hex[..hex.len() & !1]) else {
            continue;
        };
        for cut in 0..=p.len() {
            let r = catch_unwind(AssertUnwindSafe(|| packet_to_string(&p[..cut], 0)));
            assert!(r.is_ok(), "panic on {:02x?}", &p[..cut]);
        }
        for _ in 0..2000 {
            let mut b = p.clone();
            for _ in 0..1 + rng.below(4) {
                let i = rng.below(b.len());
                b[i] = rng.next() as u8;
            }
            let r = catch_unwind(AssertUnwindSafe(|| packet_to_string(&b, 0)));
            assert!(r.is_ok(), "panic on {b:02x?}");
        }
    }
}

/// Every message type the switch and ovs-ofctl exchanged (the `openflow` crate's 9,940
/// captured vectors), truncated and corrupted at random: the printer never panics.
#[test]
fn mangled_vector_messages() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../openflow/tests/vectors");
    let mut msgs = Vec::new();
    for e in std::fs::read_dir(&dir).unwrap().flatten() {
        let p = e.path();
        if p.extension().is_some_and(|x| x == "txt") {
            for l in std::fs::read_to_string(&p).unwrap().lines() {
                if let Some(h) = l.strip_prefix("c2s ").or_else(|| l.strip_prefix("s2c ")) {
                    let b: Vec<u8> = (0..h.len() / 2)
                        .filter_map(|i| u8::from_str_radix(&h[2 * i..2 * i + 2], 16).ok())
                        .collect();
                    msgs.push(b);
                }
            }
        }
    }
    assert!(msgs.len() > 9000);
    let mut rng = Rng(0x5eed_1234_abcd_0001);
    let check = |b: &[u8]| {
        let r = catch_unwind(AssertUnwindSafe(|| ofp_to_string(b, None, 3)));
        assert!(r.is_ok(), "panic printing {b:02x?}");
    };
    for m in &msgs {
        check(m);
        if m.len() <= 8 {
            continue;
        }
        for _ in 0..4 {
            let cut = 8 + rng.below(m.len() - 8);
            let mut b = m[..cut].to_vec();
            b[2..4].copy_from_slice(&(cut as u16).to_be_bytes());
            check(&b);
        }
        for _ in 0..4 {
            let mut b = m.clone();
            for _ in 0..1 + rng.below(3) {
                let i = 8 + rng.below(b.len() - 8);
                b[i] = rng.next() as u8;
            }
            check(&b);
        }
    }
}
