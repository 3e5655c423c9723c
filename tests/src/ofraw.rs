//! A minimal OpenFlow client that speaks raw bytes, for what `ovs-ofctl` cannot do: keep a
//! plain connection open and watch what arrives on it, send messages `ovs-ofctl` refuses to
//! build (a goto_table backwards, an unknown OXM field), play an active controller's side.
//! Messages are built by hand from the specification (OpenFlow 1.3 unless said otherwise), not
//! with the project's codec, so the switch is checked against the wire format itself.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::raw::poll_in;
use crate::WAIT;

/// OpenFlow 1.3's wire version.
pub const OF13: u8 = 4;

/// Message types (OpenFlow 1.3 numbering).
pub mod t {
    pub const HELLO: u8 = 0;
    pub const ERROR: u8 = 1;
    pub const ECHO_REQUEST: u8 = 2;
    pub const ECHO_REPLY: u8 = 3;
    pub const EXPERIMENTER: u8 = 4;
    pub const FEATURES_REQUEST: u8 = 5;
    pub const FEATURES_REPLY: u8 = 6;
    pub const SET_CONFIG: u8 = 9;
    pub const PACKET_IN: u8 = 10;
    pub const FLOW_REMOVED: u8 = 11;
    pub const PORT_STATUS: u8 = 12;
    pub const FLOW_MOD: u8 = 14;
    pub const BARRIER_REQUEST: u8 = 20;
    pub const BARRIER_REPLY: u8 = 21;
    /// OpenFlow 1.4+.
    pub const BUNDLE_CONTROL: u8 = 33;
    pub const BUNDLE_ADD_MESSAGE: u8 = 34;
}

/// One received message.
#[derive(Clone, Debug)]
pub struct Msg {
    pub version: u8,
    pub msg_type: u8,
    pub xid: u32,
    /// The bytes after the 8-byte header.
    pub body: Vec<u8>,
}

impl Msg {
    /// (type, code) of an OFPT_ERROR.
    pub fn error(&self) -> Option<(u16, u16)> {
        (self.msg_type == t::ERROR && self.body.len() >= 4).then(|| {
            (
                u16::from_be_bytes([self.body[0], self.body[1]]),
                u16::from_be_bytes([self.body[2], self.body[3]]),
            )
        })
    }

    /// The frame carried by an OpenFlow 1.3 OFPT_PACKET_IN (after the match and 2 bytes pad).
    pub fn packet_in_data(&self) -> Option<&[u8]> {
        if self.msg_type != t::PACKET_IN || self.version != OF13 {
            return None;
        }
        // buffer_id 4, total_len 2, reason 1, table_id 1, cookie 8, then ofp_match
        let b = &self.body;
        let mlen = u16::from_be_bytes([*b.get(18)?, *b.get(19)?]) as usize;
        let padded = mlen.div_ceil(8) * 8;
        b.get(16 + padded + 2..)
    }
}

enum Stream {
    Unix(UnixStream),
    Tcp(TcpStream),
}

impl Stream {
    fn fd(&self) -> i32 {
        match self {
            Stream::Unix(s) => s.as_raw_fd(),
            Stream::Tcp(s) => s.as_raw_fd(),
        }
    }
}

/// A connection to a switch (or from one, for an active controller connection).
pub struct OfConn {
    s: Stream,
    pub version: u8,
    next_xid: u32,
    buf: Vec<u8>,
}

/// The 8-byte header followed by `body`.
pub fn message(version: u8, msg_type: u8, xid: u32, body: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(8 + body.len());
    v.push(version);
    v.push(msg_type);
    v.extend_from_slice(&((8 + body.len()) as u16).to_be_bytes());
    v.extend_from_slice(&xid.to_be_bytes());
    v.extend_from_slice(body);
    v
}

impl OfConn {
    /// Connects to a unix socket (a bridge's `.mgmt`) and exchanges HELLOs in `version`.
    pub fn unix(path: &Path, version: u8) -> OfConn {
        let s =
            UnixStream::connect(path).unwrap_or_else(|e| panic!("connect {}: {e}", path.display()));
        OfConn::handshake(Stream::Unix(s), version)
    }

    /// Waits for the switch's active connection on `listener` (at most [`WAIT`]) and exchanges
    /// HELLOs in `version`.
    pub fn accept(listener: &TcpListener, version: u8) -> OfConn {
        listener.set_nonblocking(true).expect("nonblocking");
        let deadline = Instant::now() + WAIT;
        loop {
            match listener.accept() {
                Ok((s, _)) => {
                    s.set_nonblocking(false).expect("blocking");
                    return OfConn::handshake(Stream::Tcp(s), version);
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    assert!(
                        Instant::now() < deadline,
                        "the switch never connected to the controller port within {WAIT:?}"
                    );
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(e) => panic!("accept: {e}"),
            }
        }
    }

    fn handshake(s: Stream, version: u8) -> OfConn {
        let mut c = OfConn {
            s,
            version,
            next_xid: 1,
            buf: Vec::new(),
        };
        c.send(t::HELLO, &[]);
        let hello = c
            .recv_matching(WAIT, |m| m.msg_type == t::HELLO)
            .expect("the switch's HELLO");
        assert!(
            hello.version >= version,
            "the switch offered version {} (< {version})",
            hello.version
        );
        c
    }

    fn write_all(&mut self, b: &[u8]) {
        let r = match &mut self.s {
            Stream::Unix(s) => s.write_all(b),
            Stream::Tcp(s) => s.write_all(b),
        };
        r.unwrap_or_else(|e| panic!("write to the switch: {e}"));
    }

    /// Sends a message of this connection's version; returns its xid.
    pub fn send(&mut self, msg_type: u8, body: &[u8]) -> u32 {
        let xid = self.next_xid;
        self.next_xid += 1;
        let m = message(self.version, msg_type, xid, body);
        self.write_all(&m);
        xid
    }

    /// Receives one message, waiting at most `timeout`; answers ECHO_REQUESTs by itself.
    pub fn recv(&mut self, timeout: Duration) -> Option<Msg> {
        let deadline = Instant::now() + timeout;
        loop {
            if self.buf.len() >= 8 {
                let len = u16::from_be_bytes([self.buf[2], self.buf[3]]) as usize;
                assert!(len >= 8, "bad OpenFlow length {len} from the switch");
                if self.buf.len() >= len {
                    let m: Vec<u8> = self.buf.drain(..len).collect();
                    let msg = Msg {
                        version: m[0],
                        msg_type: m[1],
                        xid: u32::from_be_bytes([m[4], m[5], m[6], m[7]]),
                        body: m[8..].to_vec(),
                    };
                    if msg.msg_type == t::ECHO_REQUEST {
                        let r = message(msg.version, t::ECHO_REPLY, msg.xid, &msg.body);
                        self.write_all(&r);
                        continue;
                    }
                    return Some(msg);
                }
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() || !poll_in(self.s.fd(), left) {
                return None;
            }
            let mut b = [0u8; 65536];
            let n = match match &mut self.s {
                Stream::Unix(s) => s.read(&mut b),
                Stream::Tcp(s) => s.read(&mut b),
            } {
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                r => r.unwrap_or_else(|e| panic!("read from the switch: {e}")),
            };
            assert!(n > 0, "the switch closed the connection");
            self.buf.extend_from_slice(&b[..n]);
        }
    }

    /// Receives messages until one satisfies `pred` (returned; the others are dropped).
    pub fn recv_matching(&mut self, timeout: Duration, pred: impl Fn(&Msg) -> bool) -> Option<Msg> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let m = self.recv(left)?;
            if pred(&m) {
                return Some(m);
            }
        }
    }

    /// Sends a BARRIER_REQUEST and returns every message received before its reply, in order.
    pub fn barrier(&mut self) -> Vec<Msg> {
        let xid = self.send(t::BARRIER_REQUEST, &[]);
        self.until_reply(xid, t::BARRIER_REPLY)
    }

    /// Sends an ECHO_REQUEST and returns every message received before its reply, in order.
    /// Everything the switch had queued for this connection before it read the request comes
    /// first: an "is anything pending?" check without waiting for time to pass.
    pub fn echo(&mut self) -> Vec<Msg> {
        let xid = self.send(t::ECHO_REQUEST, b"xt");
        self.until_reply(xid, t::ECHO_REPLY)
    }

    fn until_reply(&mut self, xid: u32, reply: u8) -> Vec<Msg> {
        let mut v = Vec::new();
        loop {
            let m = self
                .recv(WAIT)
                .unwrap_or_else(|| panic!("no reply of type {reply} to xid {xid}; got {v:?}"));
            if m.msg_type == reply && m.xid == xid {
                return v;
            }
            v.push(m);
        }
    }

    /// OFPT_SET_CONFIG with `miss_send_len` (flags 0).
    pub fn set_miss_send_len(&mut self, miss_send_len: u16) {
        let mut b = vec![0, 0];
        b.extend_from_slice(&miss_send_len.to_be_bytes());
        self.send(t::SET_CONFIG, &b);
    }

    /// FEATURES_REQUEST → the datapath id.
    pub fn datapath_id(&mut self) -> u64 {
        let xid = self.send(t::FEATURES_REQUEST, &[]);
        let m = self
            .recv_matching(WAIT, |m| m.msg_type == t::FEATURES_REPLY && m.xid == xid)
            .expect("FEATURES_REPLY");
        u64::from_be_bytes(m.body[..8].try_into().expect("8 bytes"))
    }
}

/// An OXM TLV of the OpenFlow basic class (0x8000), no mask.
pub fn oxm(field: u8, value: &[u8]) -> Vec<u8> {
    let mut v = vec![0x80, 0x00, field << 1, value.len() as u8];
    v.extend_from_slice(value);
    v
}

/// OXM field numbers used by the tests.
pub mod oxm_field {
    pub const IN_PORT: u8 = 0;
    pub const ETH_TYPE: u8 = 5;
}

/// An OpenFlow 1.3 OFPIT_GOTO_TABLE instruction.
pub fn goto_table(table: u8) -> Vec<u8> {
    vec![0, 1, 0, 8, table, 0, 0, 0]
}

/// An OpenFlow 1.3 OFPIT_APPLY_ACTIONS with one OFPAT_OUTPUT to `port`.
pub fn apply_output(port: u32) -> Vec<u8> {
    let mut v = vec![0, 4, 0, 24, 0, 0, 0, 0];
    v.extend_from_slice(&[0, 0, 0, 16]);
    v.extend_from_slice(&port.to_be_bytes());
    v.extend_from_slice(&0xffe5u16.to_be_bytes()); // max_len: OFPCML_MAX
    v.extend_from_slice(&[0; 6]);
    v
}

/// An OpenFlow 1.3 OFPT_FLOW_MOD (ADD) body: `table`, `priority`, the match made of `oxms`
/// (padded), then `instructions`.
pub fn flow_mod_add(table: u8, priority: u16, oxms: &[Vec<u8>], instructions: &[u8]) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend_from_slice(&0u64.to_be_bytes()); // cookie
    b.extend_from_slice(&0u64.to_be_bytes()); // cookie_mask
    b.push(table);
    b.push(0); // OFPFC_ADD
    b.extend_from_slice(&0u16.to_be_bytes()); // idle_timeout
    b.extend_from_slice(&0u16.to_be_bytes()); // hard_timeout
    b.extend_from_slice(&priority.to_be_bytes());
    b.extend_from_slice(&0xffff_ffffu32.to_be_bytes()); // buffer_id: none
    b.extend_from_slice(&0xffff_ffffu32.to_be_bytes()); // out_port: any
    b.extend_from_slice(&0xffff_ffffu32.to_be_bytes()); // out_group: any
    b.extend_from_slice(&0u16.to_be_bytes()); // flags
    b.extend_from_slice(&[0, 0]);
    let fields: Vec<u8> = oxms.concat();
    let mlen = 4 + fields.len();
    b.extend_from_slice(&1u16.to_be_bytes()); // OFPMT_OXM
    b.extend_from_slice(&(mlen as u16).to_be_bytes());
    b.extend_from_slice(&fields);
    b.resize(b.len() + (8 - mlen % 8) % 8, 0);
    b.extend_from_slice(instructions);
    b
}

/// An OFPT_BUNDLE_CONTROL body (OpenFlow 1.4+): bundle `id`, `ctrl_type` (0 open, 2 close,
/// 4 commit, 6 discard), flags atomic + ordered.
pub fn bundle_control(id: u32, ctrl_type: u16) -> Vec<u8> {
    let mut b = id.to_be_bytes().to_vec();
    b.extend_from_slice(&ctrl_type.to_be_bytes());
    b.extend_from_slice(&3u16.to_be_bytes());
    b
}

/// An OFPT_BUNDLE_ADD_MESSAGE body carrying `inner` (a whole message, header included).
pub fn bundle_add(id: u32, inner: &[u8]) -> Vec<u8> {
    let mut b = id.to_be_bytes().to_vec();
    b.extend_from_slice(&[0, 0]);
    b.extend_from_slice(&3u16.to_be_bytes());
    b.extend_from_slice(inner);
    b
}

/// OpenFlow 1.3 error types and codes the tests expect.
pub mod err {
    pub const BAD_REQUEST: u16 = 1;
    pub const BAD_INSTRUCTION: u16 = 3;
    pub const BAD_MATCH: u16 = 4;
    pub const FLOW_MOD_FAILED: u16 = 5;
    /// OFPBRC_EPERM.
    pub const EPERM: u16 = 5;
    /// OFPBIC_BAD_TABLE_ID.
    pub const BAD_TABLE_ID: u16 = 2;
    /// OFPBMC_BAD_FIELD.
    pub const BAD_FIELD: u16 = 6;
    /// OFPFMFC_BAD_TABLE_ID.
    pub const FM_BAD_TABLE_ID: u16 = 2;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flow_mod_layout() {
        let b = flow_mod_add(
            5,
            100,
            &[oxm(oxm_field::IN_PORT, &1u32.to_be_bytes())],
            &goto_table(3),
        );
        // 40 bytes of fixed fields, then a 12-byte match padded to 16, then 8 of instruction
        assert_eq!(b.len(), 40 + 16 + 8);
        assert_eq!(b[16], 5);
        assert_eq!(&b[40..44], &[0, 1, 0, 12]);
        assert_eq!(&b[56..60], &[0, 1, 0, 8]);
        let m = message(OF13, t::FLOW_MOD, 7, &b);
        assert_eq!(u16::from_be_bytes([m[2], m[3]]) as usize, m.len());
    }

    #[test]
    fn packet_in_data_skips_the_match() {
        let mut body = vec![0xff, 0xff, 0xff, 0xff, 0, 3, 1, 0];
        body.extend_from_slice(&[0; 8]); // cookie
        let mut m = vec![0, 1, 0, 12, 0x80, 0, 0, 4, 0, 0, 0, 1];
        m.resize(16, 0);
        body.extend_from_slice(&m);
        body.extend_from_slice(&[0, 0, 0xaa, 0xbb, 0xcc]);
        let msg = Msg {
            version: OF13,
            msg_type: t::PACKET_IN,
            xid: 0,
            body,
        };
        assert_eq!(msg.packet_in_data(), Some(&[0xaa, 0xbb, 0xcc][..]));
    }
}
