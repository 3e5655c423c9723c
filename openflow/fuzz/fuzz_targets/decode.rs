//! Decodes arbitrary bytes as one OpenFlow message; whatever decodes must re-encode, and the
//! re-encoding must decode again (no panic anywhere).
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut msg = data.to_vec();
    // Make the header length agree half of the time, so bodies get exercised.
    if msg.len() >= 8 && msg.len() <= 0xffff && data[0] & 0x80 == 0 {
        let n = msg.len() as u16;
        msg[2..4].copy_from_slice(&n.to_be_bytes());
    }
    if let Ok((h, m)) = openflow::decode(&msg) {
        let again = openflow::encode(h.version, h.xid, &m);
        let _ = openflow::decode(&again);
    }
});
