//! Decodes every message captured between real `ovs-ofctl` and `ovs-vswitchd` (see
//! `tests/vectors/capture.py`) and checks `encode(decode(x)) == x` byte for byte.

use openflow::{decode, encode};
use std::path::PathBuf;

/// One captured message.
struct Vector {
    file: String,
    line: usize,
    conn: u32,
    dir: String,
    bytes: Vec<u8>,
}

/// Every vector, with the connection number from the preceding `# conn N:` comment.
fn vectors() -> Vec<Vector> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/vectors");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("vectors dir")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "txt"))
        .collect();
    files.sort();
    let mut out = Vec::new();
    for f in files {
        let name = f.file_name().unwrap().to_string_lossy().into_owned();
        let text = std::fs::read_to_string(&f).unwrap();
        let mut conn = 0;
        for (i, line) in text.lines().enumerate() {
            if let Some(rest) = line.strip_prefix("# conn ") {
                conn = rest
                    .split(':')
                    .next()
                    .and_then(|n| n.parse().ok())
                    .unwrap_or(0);
                continue;
            }
            if line.starts_with('#') || line.trim().is_empty() {
                continue;
            }
            let (dir, hex) = line.split_once(' ').expect("dir hex");
            out.push(Vector {
                file: name.clone(),
                line: i + 1,
                conn,
                dir: dir.to_string(),
                bytes: hex_decode(hex),
            });
        }
    }
    out
}

fn hex_decode(s: &str) -> Vec<u8> {
    (0..s.len() / 2)
        .map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap())
        .collect()
}

#[test]
fn all_vectors_decode_and_roundtrip() {
    let vs = vectors();
    assert!(
        vs.len() > 5000,
        "expected the captured vector set, found {}",
        vs.len()
    );
    let mut failures = Vec::new();
    let mut ok = 0;
    let mut refused_like_ovs = 0;
    for (idx, v) in vs.iter().enumerate() {
        let (file, line, dir, bytes) = (&v.file, v.line, &v.dir, &v.bytes);
        match decode(bytes) {
            Ok((h, m)) => {
                let again = encode(h.version, h.xid, &m);
                if &again != bytes {
                    failures.push(format!(
                        "{file}:{line} {dir}: roundtrip differs\n  in : {}\n  out: {}",
                        hex(bytes),
                        hex(&again)
                    ));
                } else {
                    ok += 1;
                }
            }
            Err(e) if ovs_refused(&vs, idx) => {
                // ovs-vswitchd answered this very message with an OFPT_ERROR: refusing it is
                // the compatible behaviour (e.g. ct_nw_src after a bare ct_state=+trk).
                let _ = e;
                refused_like_ovs += 1;
            }
            Err(e) => failures.push(format!("{file}:{line} {dir}: {e}\n  in: {}", hex(bytes))),
        }
    }
    for f in failures.iter().take(15) {
        eprintln!("{f}");
    }
    eprintln!(
        "{ok} vectors round-tripped, {refused_like_ovs} refused as ovs-vswitchd refused them"
    );
    assert!(
        failures.is_empty(),
        "{} of {} vectors failed ({} ok)",
        failures.len(),
        vs.len(),
        ok
    );
    assert!(
        refused_like_ovs < 10,
        "too many refusals: {refused_like_ovs}"
    );
}

/// True if a later switch-to-controller OFPT_ERROR on the same connection echoes the message
/// at `idx` (OVS puts the offending request, or its start, in the error's data).
fn ovs_refused(vs: &[Vector], idx: usize) -> bool {
    let req = &vs[idx];
    vs[idx + 1..].iter().take(50).any(|v| {
        if v.file != req.file
            || v.conn != req.conn
            || v.dir != "s2c"
            || v.bytes.len() < 12
            || v.bytes[1] != 1
        {
            return false;
        }
        let data_at = match (v.bytes[8], v.bytes[9]) {
            (0xff, 0xff) => 16,
            (0xb0, 0xc2) => 20, // NXET_VENDOR: nx_vendor_error precedes the data
            _ => 12,
        };
        let data = &v.bytes[data_at.min(v.bytes.len())..];
        !data.is_empty() && req.bytes.starts_with(data)
    })
}

fn hex(b: &[u8]) -> String {
    b.iter().take(400).map(|x| format!("{x:02x}")).collect()
}
