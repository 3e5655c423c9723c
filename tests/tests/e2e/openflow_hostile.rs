//! Hostile OpenFlow input against a running xvswitchd: messages the real ovs-ofctl sent to a
//! real ovs-vswitchd (the captured vectors in `openflow/tests/vectors`, OpenFlow 1.0, 1.3, 1.4,
//! 1.5), picked at random, replayed and mutated (bit flips, overwritten bytes, truncation,
//! random tails, splices of two messages, another message type) over the bridge's management
//! socket; a third of the flow mods widened first to match every packet in table 0, and frames
//! sent through the switch between batches so that the mutated actions run in the fast path.
//! The codec's own robustness test covers decoding; this one covers what comes after it in the
//! daemon (match and action checks, flow/group/meter tables, bundles, multipart replies,
//! packet-outs, translation and execution, TLV maps, monitors), where a panic would take the
//! switch down.
//!
//! `XVS_OF_FUZZ_N` (messages per OpenFlow version, default 2500) and `XVS_OF_FUZZ_SEED` run it
//! longer or differently by hand.

use std::io::{ErrorKind, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use xvs_tests::ofctl::{write_lines, Of};
use xvs_tests::WAIT;

use xvs_tests::pkt::{self, UdpCsum, BROADCAST};
use xvs_tests::{Host, RawSock, Rng};

use crate::openflow::{crosses, frame_ip, OfLab};

/// The client-to-switch messages of the captured vectors, by OpenFlow wire version.
fn client_messages() -> Vec<(u8, Vec<u8>)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../openflow/tests/vectors");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "txt"))
        .collect();
    files.sort();
    let mut out = Vec::new();
    for f in files {
        for line in std::fs::read_to_string(&f).unwrap().lines() {
            let Some(hex) = line.strip_prefix("c2s ") else {
                continue;
            };
            let m: Vec<u8> = (0..hex.len() / 2)
                .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap())
                .collect();
            // HELLOs renegotiate nothing after the handshake; keep them out of the mix
            if m.len() >= 8 && m[1] != 0 {
                out.push((m[0], m));
            }
        }
    }
    out
}

/// One to three mutations of `base` (a whole message); `other` is a second message to splice
/// from. The header's version is kept (so the body decoders are reached) and its length fixed
/// up (a wrong length is a framing error, which closes the connection, as in OVS).
fn mutate(rng: &mut Rng, base: &[u8], other: &[u8]) -> Vec<u8> {
    let mut m = base.to_vec();
    if rng.below(3) == 0 {
        widen(&mut m);
    }
    // one to three mutations on top of each other
    for _ in 0..1 + rng.below(3) {
        mutate_once(rng, &mut m, other);
    }
    m.truncate(0xffff);
    let n = m.len() as u16;
    m[2..4].copy_from_slice(&n.to_be_bytes());
    m
}

fn mutate_once(rng: &mut Rng, m: &mut Vec<u8>, other: &[u8]) {
    match rng.below(8) {
        0 => {} // as captured
        1 => {
            for _ in 0..1 + rng.below(4) {
                let at = 8 + rng.below(m.len().saturating_sub(8));
                if at < m.len() {
                    m[at] ^= 1 << rng.below(8);
                }
            }
        }
        2 => {
            for _ in 0..1 + rng.below(3) {
                let at = 8 + rng.below(m.len().saturating_sub(8));
                if at < m.len() {
                    m[at] = match rng.below(4) {
                        0 => 0,
                        1 => 0xff,
                        _ => rng.next_u64() as u8,
                    };
                }
            }
        }
        3 => {
            let keep = 8 + rng.below(m.len().saturating_sub(7));
            m.truncate(keep);
        }
        4 => {
            for _ in 0..rng.below(64) {
                m.push(rng.next_u64() as u8);
            }
        }
        5 => {
            // the head of one message on the tail of another
            let cut = 8 + rng.below(m.len().saturating_sub(7));
            m.truncate(cut.min(m.len()));
            let from = 8 + rng.below(other.len().saturating_sub(7));
            m.extend_from_slice(other.get(from..).unwrap_or(&[]));
        }
        6 => m[1] = rng.below(40) as u8, // another message type, same body
        _ => {
            // a 16- or 32-bit field (lengths, counts, ids, ports) set to an edge value
            let at = 8 + rng.below(m.len().saturating_sub(9));
            let v: u32 = [0, 1, 0xffff, 0xfff8, 0xffff_ffff, 0x7fff][rng.below(6)];
            let b = v.to_be_bytes();
            for (i, x) in b[4 - 2 * (1 + rng.below(2))..].iter().enumerate() {
                if let Some(y) = m.get_mut(at + i) {
                    *y = *x;
                }
            }
        }
    }
}

/// Turns a flow mod into one that matches every packet in table 0, at a high priority, so the
/// test's frames run its (then mutated) actions. OpenFlow 1.0: all wildcards; NXT_FLOW_MOD: an
/// empty nx_match; 1.3+: an empty OXM match (layouts: openflow.h, nicira-ext.h).
fn widen(m: &mut Vec<u8>) {
    match (m[0], m[1]) {
        (1, 14) if m.len() >= 72 => {
            m[8..12].copy_from_slice(&0x003f_ffffu32.to_be_bytes());
            m[62..64].copy_from_slice(&60000u16.to_be_bytes());
        }
        (1, 4) if m.len() >= 48 && m[8..16] == [0, 0, 0x23, 0x20, 0, 0, 0, 13] => {
            let len = u16::from_be_bytes([m[40], m[41]]) as usize;
            let end = (48 + len.div_ceil(8) * 8).min(m.len());
            m.drain(48..end);
            m[40..42].copy_from_slice(&[0, 0]);
            m[30..32].copy_from_slice(&60000u16.to_be_bytes());
        }
        (4..=6, 14) if m.len() >= 52 => {
            let len = u16::from_be_bytes([m[50], m[51]]) as usize;
            let end = (48 + len.div_ceil(8) * 8).min(m.len());
            m.splice(48..end, [0, 1, 0, 4, 0, 0, 0, 0]);
            m[24] = 0;
            m[30..32].copy_from_slice(&60000u16.to_be_bytes());
        }
        _ => {}
    }
}

/// A raw connection that tolerates whatever the switch answers.
struct Conn {
    s: UnixStream,
    version: u8,
    buf: Vec<u8>,
    /// Messages received, by type (for the summary line).
    received: [usize; 64],
    last: Vec<String>,
}

impl Conn {
    fn open(path: &Path, version: u8) -> Conn {
        let s = UnixStream::connect(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        s.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let mut c = Conn {
            s,
            version,
            buf: Vec::new(),
            received: [0; 64],
            last: Vec::new(),
        };
        c.send(&[version, 0, 0, 8, 0, 0, 0, 1]);
        c
    }

    fn send(&mut self, m: &[u8]) -> bool {
        self.s.write_all(m).is_ok()
    }

    /// Sends an ECHO_REQUEST and reads (dropping) everything until its reply. `Err` if the
    /// switch closed the connection or did not answer within [`WAIT`].
    fn sync(&mut self, xid: u32) -> Result<(), String> {
        let echo = [self.version, 2, 0, 8, 0, 0, 0, 0];
        let mut echo = echo.to_vec();
        echo[4..8].copy_from_slice(&xid.to_be_bytes());
        if !self.send(&echo) {
            return Err("the write of an ECHO_REQUEST failed".into());
        }
        let deadline = Instant::now() + WAIT;
        let mut chunk = vec![0u8; 1 << 16];
        loop {
            while self.buf.len() >= 8 {
                let len = u16::from_be_bytes([self.buf[2], self.buf[3]]) as usize;
                if len < 8 {
                    return Err(format!(
                        "the switch sent a message of length {len}: {} after {:?}",
                        hex(&self.buf[..self.buf.len().min(64)]),
                        self.last
                    ));
                }
                if self.buf.len() < len {
                    break;
                }
                let m: Vec<u8> = self.buf.drain(..len).collect();
                self.received[m[1] as usize % 64] += 1;
                self.last.push(hex(&m[..m.len().min(48)]));
                if self.last.len() > 4 {
                    self.last.remove(0);
                }
                if m[1] == 3 && m[4..8] == xid.to_be_bytes() {
                    return Ok(());
                }
                if m[1] == 2 {
                    // the switch's own keepalive
                    let mut r = m.clone();
                    r[1] = 3;
                    self.send(&r);
                }
            }
            if Instant::now() > deadline {
                return Err(format!("no ECHO_REPLY within {WAIT:?}"));
            }
            match self.s.read(&mut chunk) {
                Ok(0) => return Err("the switch closed the connection".into()),
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e)
                    if matches!(
                        e.kind(),
                        ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
                    ) => {}
                Err(e) => return Err(format!("read: {e}")),
            }
        }
    }
}

/// A frame of one of several kinds (UDP, broadcast, ICMP, ARP, TCP SYN, IPv6/UDP, VLAN-tagged)
/// from `a` to `b`, sometimes with a byte past the Ethernet header overwritten: traffic that
/// meets whatever flows the messages installed.
fn traffic(rng: &mut Rng, a: &Host, b: &Host) -> Vec<u8> {
    let (sip, dip) = (frame_ip(a), frame_ip(b));
    let payload = [0x5au8; 18];
    let mut f = match rng.below(7) {
        0 => pkt::udp_frame(b.mac, a.mac, sip, dip, 7, 53, &payload, UdpCsum::Full),
        1 => pkt::udp_frame(BROADCAST, a.mac, sip, dip, 68, 67, &payload, UdpCsum::Full),
        2 => pkt::icmp_echo_frame(b.mac, a.mac, sip, dip, 1, 1, &payload, false),
        3 => pkt::arp_frame(BROADCAST, 1, a.mac, sip, [0; 6], dip),
        4 => {
            let mut tcp = vec![0u8; 20];
            tcp[0..2].copy_from_slice(&1234u16.to_be_bytes());
            tcp[2..4].copy_from_slice(&80u16.to_be_bytes());
            tcp[12] = 5 << 4;
            tcp[13] = 0x02; // SYN
            pkt::eth(b.mac, a.mac, 0x0800, &pkt::ipv4(sip, dip, 6, 9, &tcp))
        }
        5 => {
            let mut ip6 = vec![0x60, 0, 0, 0, 0, 8 + 18, 17, 64];
            ip6.extend_from_slice(&[0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
            ip6.extend_from_slice(&[0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
            ip6.extend_from_slice(&[0, 7, 0, 53, 0, 8 + 18, 0, 0]);
            ip6.extend_from_slice(&payload);
            pkt::eth([0x33, 0x33, 0, 0, 0, 1], a.mac, 0x86dd, &ip6)
        }
        _ => {
            let mut f = pkt::udp_frame(b.mac, a.mac, sip, dip, 7, 53, &payload, UdpCsum::Full);
            f.splice(12..12, [0x81, 0x00, 0x00, 0x05]);
            f
        }
    };
    if rng.below(3) == 0 {
        let at = 14 + rng.below(f.len() - 14);
        f[at] = rng.next_u64() as u8;
    }
    f
}

fn hex(m: &[u8]) -> String {
    m.iter().map(|b| format!("{b:02x}")).collect()
}

/// Proves: thousands of captured and mutated OpenFlow messages in each version (flow, group,
/// meter, bundle, port and TLV mods, packet-outs, multipart requests, Nicira extensions) sent
/// to a running xvswitchd never take it down: after every batch of 25 the switch still answers
/// an echo on the same connection (none of these inputs closes it) while frames of several
/// kinds, some damaged, cross the flows they installed; at the end its log holds no panic, and
/// once its tables are reset with ovs-ofctl it forwards a frame from one namespace to another
/// again.
#[test]
fn hostile_openflow_messages_never_take_the_switch_down() {
    let mut l = OfLab::secure(2, &[]);
    let per_version: usize = std::env::var("XVS_OF_FUZZ_N")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2500);
    let seed: u64 = std::env::var("XVS_OF_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5eed_0f0f_1234_5678);
    let all = client_messages();
    assert!(all.len() > 1000, "only {} captured messages", all.len());
    let mut rng = Rng(seed | 1);
    let mut sent = 0usize;
    let socks: Vec<RawSock> = (0..2).map(|i| l.sock(i)).collect();
    for version in [1u8, 4, 5, 6] {
        let msgs: Vec<&Vec<u8>> = all
            .iter()
            .filter(|(v, _)| *v == version)
            .map(|(_, m)| m)
            .collect();
        assert!(
            !msgs.is_empty(),
            "no captured messages of version {version}"
        );
        let mut c = Conn::open(&l.d.mgmt("br0"), version);
        let mut replies = [0usize; 64];
        let mut batch: Vec<Vec<u8>> = Vec::new();
        for i in 0..per_version {
            let base = msgs[rng.below(msgs.len())];
            let other = msgs[rng.below(msgs.len())];
            let m = mutate(&mut rng, base, other);
            let ok = c.send(&m);
            batch.push(m);
            sent += 1;
            if !ok || batch.len() == 25 || i + 1 == per_version {
                for k in 0..4 {
                    let (x, y) = (k % 2, 1 - k % 2);
                    socks[x].send(&traffic(&mut rng, l.host(x), l.host(y)));
                }
                if let Err(e) = c.sync(0xfeed_0000 + i as u32) {
                    let alive = l.d.alive();
                    panic!(
                        "OpenFlow {version:#x}, after {sent} messages: {e} (daemon alive: {alive}); \
                         the last batch:\n{}\nlog:\n{}",
                        batch.iter().map(|m| hex(m)).collect::<Vec<_>>().join("\n"),
                        l.d.log()
                    );
                }
                batch.clear();
            }
        }
        for (t, n) in c.received.iter().enumerate() {
            replies[t] += n;
        }
        let kinds: Vec<String> = replies
            .iter()
            .enumerate()
            .filter(|(_, n)| **n > 0)
            .map(|(t, n)| format!("type {t}: {n}"))
            .collect();
        eprintln!("OpenFlow {version:#x}: replies {}", kinds.join(", "));
    }
    assert!(l.d.alive(), "the daemon exited; log:\n{}", l.d.log());
    let log = l.d.log();
    assert!(!log.contains("panicked"), "a thread panicked:\n{log}");
    // whatever the messages did to the tables, the switch is still a switch
    let o = l.ofctl.v(Of::V15);
    o.ok(&["del-flows", "br0"]);
    o.ok(&["del-groups", "br0"]);
    o.ok(&["del-meters", "br0"]);
    o.ok(&["add-flow", "br0", "actions=normal"]);
    let (a, b) = (l.sock(0), l.sock(1));
    crosses(
        (l.host(0), &a),
        (l.host(1), &b),
        "after the hostile messages",
    );
    eprintln!("{sent} messages sent");
}

/// Proves: a flow whose description is longer than one OpenFlow message (added by ovs-ofctl
/// with a flow mod just under 64 KiB (65,528 bytes: a 65,430-byte note); its flow-stats entry adds 16 bytes
/// of headers) does not corrupt a dump: `ovs-ofctl dump-flows` completes and lists the other
/// flows, the long one is left out and counted in `ofproto_oversize_dropped`, and it is still
/// in the table (the aggregate counts it). Before, the reply went out with its 16-bit length
/// clamped and the client lost its framing. (A note 24 bytes longer makes ovs-ofctl 3.1 itself
/// send a 65,552-byte flow mod whose length field wrapped to 16; the switch closes that
/// connection on the framing error.)
#[test]
fn a_flow_too_long_to_describe_is_left_out_of_a_dump_not_truncated() {
    let l = OfLab::secure(2, &[]);
    let o = l.ofctl.v(Of::V13);
    let note: String = (0..65430).map(|i| format!("{:02x}", i % 251)).collect();
    let file = write_lines(
        &l.dir,
        "long.flows",
        &[
            "priority=5,in_port=1,actions=output:2",
            &format!("priority=9,in_port=2,actions=note:{note},output:1"),
        ],
    );
    o.ok(&["add-flows", "br0", &file]);
    let before = l.d.coverage().get("ofproto_oversize_dropped");
    let flows = o.flows("br0", "");
    assert_eq!(flows.len(), 1, "{flows:#?}");
    assert_eq!(flows[0].priority, 5, "{flows:#?}");
    assert_eq!(
        l.d.coverage().get("ofproto_oversize_dropped"),
        before + 1,
        "{}",
        l.d.appctl("coverage/show", &[])
    );
    let agg = o.ok(&["dump-aggregate", "br0"]);
    assert!(agg.contains("flow_count=2"), "{agg}");
    // the long flow forwards: its note is not an action that touches the packet
    let (a, b) = (l.sock(0), l.sock(1));
    crosses((l.host(1), &b), (l.host(0), &a), "through the long flow");
}
