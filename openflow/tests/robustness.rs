//! Decoding hostile bytes never panics: every captured vector is mutated (bit flips, byte
//! overwrites, truncation, length-field edits) and decoded; results must be `Ok` or `Err`.
//! Also checks the stream framer and the error-code mapping.

use openflow::message::{version, HelloElement};
use openflow::{decode, encode, ErrorCode, Framer, Message, OfpErr};
use std::path::PathBuf;

fn vectors() -> Vec<Vec<u8>> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/vectors");
    let mut out = Vec::new();
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    files.sort();
    for f in files
        .iter()
        .filter(|p| p.extension().is_some_and(|x| x == "txt"))
    {
        for line in std::fs::read_to_string(f).unwrap().lines() {
            if let Some((_, hex)) = line.split_once(' ').filter(|_| !line.starts_with('#')) {
                out.push(
                    (0..hex.len() / 2)
                        .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap())
                        .collect(),
                );
            }
        }
    }
    out
}

/// xorshift64*: deterministic, no dependency.
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

/// Fixes up the header length so the mutation reaches the body decoders.
fn fix_len(m: &mut [u8]) {
    if m.len() >= 4 {
        let n = m.len().min(0xffff) as u16;
        m[2..4].copy_from_slice(&n.to_be_bytes());
    }
}

#[test]
fn mutated_vectors_never_panic() {
    let vs = vectors();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut decoded_ok = 0usize;
    let mut total = 0usize;
    // Every vector a few times, plus more rounds on a sample (keeps the test ~seconds).
    for round in 0..6 {
        for (i, v) in vs.iter().enumerate() {
            if round >= 2 && i % 7 != 0 {
                continue;
            }
            let mut m = v.clone();
            match rng.below(5) {
                0 => {
                    for _ in 0..1 + rng.below(4) {
                        let at = rng.below(m.len());
                        m[at] ^= 1 << rng.below(8);
                    }
                }
                1 => {
                    let at = rng.below(m.len());
                    m[at] = rng.next() as u8;
                }
                2 => {
                    let n = rng.below(m.len());
                    m.truncate(n.max(8));
                }
                3 => {
                    // Overwrite a 16-bit field (often a nested length) with an extreme value.
                    if m.len() > 10 {
                        let at = 8 + rng.below(m.len() - 10);
                        let val = [0u16, 1, 4, 7, 8, 0xffff, 0x8000][rng.below(7)];
                        m[at..at + 2].copy_from_slice(&val.to_be_bytes());
                    }
                }
                _ => {
                    let extra = rng.below(24);
                    for _ in 0..extra {
                        m.push(rng.next() as u8);
                    }
                }
            }
            fix_len(&mut m);
            total += 1;
            if let Ok((h, msg)) = decode(&m) {
                decoded_ok += 1;
                // Whatever decodes must also encode without panicking.
                let _ = encode(h.version, h.xid, &msg);
            }
            // The raw mutation without the length fix-up, too.
            let _ = decode(&m[..m.len().saturating_sub(rng.below(3))]);
        }
    }
    eprintln!("{total} mutations, {decoded_ok} still decoded");
    assert!(total > 20_000);
}

#[test]
fn random_bytes_never_panic() {
    let mut rng = Rng(42);
    for _ in 0..50_000 {
        let n = 8 + rng.below(200);
        let mut m: Vec<u8> = (0..n).map(|_| rng.next() as u8).collect();
        m[0] = [1, 4, 5, 6][rng.below(4)];
        m[1] = rng.below(36) as u8;
        fix_len(&mut m);
        let _ = decode(&m);
    }
}

#[test]
fn framer_reassembles_split_stream() {
    let vs: Vec<Vec<u8>> = vectors().into_iter().take(500).collect();
    let stream: Vec<u8> = vs.concat();
    let mut f = Framer::new();
    let mut got = Vec::new();
    let mut rng = Rng(7);
    let mut at = 0;
    while at < stream.len() {
        let n = 1 + rng.below(300);
        let end = (at + n).min(stream.len());
        f.push(&stream[at..end]);
        at = end;
        while let Some(m) = f.next_message().unwrap() {
            got.push(m);
        }
    }
    assert_eq!(got, vs);
    assert_eq!(f.pending(), 0);
}

#[test]
fn framer_rejects_short_length() {
    let mut f = Framer::new();
    f.push(&[4, 0, 0, 4, 0, 0, 0, 1]);
    assert!(f.next_message().is_err());
}

#[test]
fn hello_negotiation() {
    // OF1.5 only bitmap (what ovn-controller sends) against ours (1.0, 1.3-1.5).
    let ours = (1 << 1) | (1 << 4) | (1 << 5) | (1 << 6);
    let hello = encode(
        6,
        1,
        &Message::Hello(vec![HelloElement::VersionBitmap(vec![1 << 6])]),
    );
    let (h, m) = decode(&hello).unwrap();
    let Message::Hello(els) = m else { panic!() };
    assert_eq!(
        openflow::message::negotiate(h.version, &els, ours),
        Some(version::OF15)
    );
    // A plain OF1.3 hello without bitmap: all versions up to 1.3.
    assert_eq!(
        openflow::message::negotiate(4, &[], ours),
        Some(version::OF13)
    );
    assert_eq!(
        openflow::message::negotiate(6, &[HelloElement::VersionBitmap(vec![1 << 2])], ours),
        None
    );
}

#[test]
fn error_codes_per_version() {
    assert_eq!(
        OfpErr::OFPBMC_BAD_PREREQ.code(6),
        ErrorCode::Standard {
            err_type: 4,
            code: 9
        }
    );
    assert_eq!(
        OfpErr::OFPBMC_BAD_PREREQ.code(1),
        ErrorCode::NxVendor {
            err_type: 1,
            code: 260
        }
    );
    assert_eq!(
        OfpErr::OFPFMFC_BAD_COMMAND.code(1),
        ErrorCode::Standard {
            err_type: 3,
            code: 4
        }
    );
    assert_eq!(
        OfpErr::OFPFMFC_BAD_COMMAND.code(4),
        ErrorCode::Standard {
            err_type: 5,
            code: 6
        }
    );
    assert_eq!(
        OfpErr::OFPBFC_MSG_UNSUP.code(4),
        ErrorCode::Experimenter {
            exp_code: 2310,
            experimenter: openflow::ONF_VENDOR_ID
        }
    );
    assert_eq!(
        OfpErr::OFPBFC_MSG_UNSUP.code(5),
        ErrorCode::Standard {
            err_type: 17,
            code: 10
        }
    );
    assert_eq!(
        OfpErr::NXBRC_MUST_BE_ZERO.code(6),
        ErrorCode::Experimenter {
            exp_code: 4,
            experimenter: openflow::NX_VENDOR_ID
        }
    );
}

#[test]
fn error_reply_echoes_request() {
    // A FLOW_MOD with an unknown instruction type: decode error -> ERROR with the request echoed.
    let mut fm = vec![6, 14, 0, 0, 0, 0, 0, 9];
    fm.extend_from_slice(&[0; 40]); // cookie..importance
    fm.extend_from_slice(&[0, 1, 0, 4, 0, 0, 0, 0]); // empty OXM match
    fm.extend_from_slice(&[0, 0x77, 0, 8, 0, 0, 0, 0]); // bogus instruction type 0x77
    let n = fm.len() as u16;
    fm[2..4].copy_from_slice(&n.to_be_bytes());
    let e = decode(&fm).unwrap_err();
    assert_eq!(e.kind, OfpErr::OFPBIC_UNKNOWN_INST);
    let reply = openflow::ErrorMsg::for_request(e.kind, 6, &fm);
    let bytes = encode(6, 9, &Message::Error(reply));
    // Same bytes ovs-vswitchd would put on the wire: type 3 code 0, then the request.
    assert_eq!(&bytes[8..12], &[0, 3, 0, 0]);
    assert_eq!(&bytes[12..], &fm[..]);
}
