//! Feeds arbitrary bytes through the stream framer in random-sized pieces.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut f = openflow::Framer::new();
    let mut rest = data;
    while !rest.is_empty() {
        let n = 1 + (rest[0] as usize % 64).min(rest.len() - 1);
        f.push(&rest[..n]);
        rest = &rest[n..];
        while let Ok(Some(m)) = f.next_message() {
            let _ = openflow::decode(&m);
        }
    }
});
