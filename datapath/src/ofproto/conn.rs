//! One OpenFlow connection: bytes in and out, version negotiation, and the per-connection
//! settings OVS keeps (role, miss_send_len, packet-in format, controller id, flow format,
//! bundles in progress, barriers waiting for the fast path).

use std::collections::{HashMap, VecDeque};
use std::io::{Read, Write};
use std::sync::atomic::{AtomicU64, Ordering};

use mio::net::{TcpStream, UnixStream};
use openflow::message::{HelloElement, Message};
use openflow::{Framer, Header};

/// Messages (or multipart items) left unsent because they do not fit in one OpenFlow message
/// (its length field is 16 bits): a flow added with a near-64 KiB flow mod grows past the limit
/// in a flow-stats entry. Sending it would desynchronize the peer's framing (the encoder can only
/// clamp the length), so it is counted (`ofproto_oversize_dropped` in coverage/show) and logged.
pub static OVERSIZE_DROPPED: AtomicU64 = AtomicU64::new(0);

/// Counts one oversize drop; warns for the first and then at each power of two, so a peer
/// that provokes many cannot flood the log.
pub fn oversize_dropped(what: &str, len: usize) {
    let n = OVERSIZE_DROPPED.fetch_add(1, Ordering::Relaxed) + 1;
    if n.is_power_of_two() {
        tracing::warn!(
            what,
            len,
            total = n,
            "left out: longer than one OpenFlow message (65535 bytes)"
        );
    }
}

/// Versions we speak: OpenFlow 1.0, 1.3, 1.4, 1.5 (wire numbers 1, 4, 5, 6).
pub const VERSIONS: u32 = (1 << 1) | (1 << 4) | (1 << 5) | (1 << 6);

pub enum Stream {
    Unix(UnixStream),
    Tcp(TcpStream),
}

impl Stream {
    fn read(&mut self, b: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Stream::Unix(s) => s.read(b),
            Stream::Tcp(s) => s.read(b),
        }
    }
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        match self {
            Stream::Unix(s) => s.write(b),
            Stream::Tcp(s) => s.write(b),
        }
    }
    pub fn source(&mut self) -> &mut dyn mio::event::Source {
        match self {
            Stream::Unix(s) => s,
            Stream::Tcp(s) => s,
        }
    }
}

/// Packet-in formats (NXT_SET_PACKET_IN_FORMAT).
pub mod pin_format {
    pub const STANDARD: u32 = 0;
    pub const NXT_PACKET_IN: u32 = 1;
    pub const NXT_PACKET_IN2: u32 = 2;
}

/// Controller roles.
pub mod role {
    pub const NOCHANGE: u32 = 0;
    pub const EQUAL: u32 = 1;
    pub const MASTER: u32 = 2;
    pub const SLAVE: u32 = 3;
}

/// Which asynchronous message a mask filters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AsyncKind {
    PacketIn,
    PortStatus,
    FlowRemoved,
}

/// SET_ASYNC masks, per kind, [master/equal, slave]; bit n allows reason n. The defaults are
/// OpenFlow's: masters get packet-ins for no-match, action and invalid-TTL (1.4+: also action
/// set, group, packet-out), every port-status and flow-removed; slaves get only port-status.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AsyncMasks {
    pub packet_in: [u32; 2],
    pub port_status: [u32; 2],
    pub flow_removed: [u32; 2],
}

impl Default for AsyncMasks {
    fn default() -> Self {
        AsyncMasks {
            packet_in: [0x3f, 0],
            port_status: [0x7, 0x7],
            flow_removed: [0x3f, 0],
        }
    }
}

/// A bundle being built (OFPBCT_OPEN ... COMMIT).
pub struct Bundle {
    pub flags: u16,
    pub closed: bool,
    /// (xid of the inner message, the inner message).
    pub msgs: Vec<(u32, Message)>,
}

pub struct Conn {
    pub id: u64,
    pub stream: Stream,
    pub bridge: usize,
    pub peer: String,
    framer: Framer,
    /// Receive buffer, allocated once (a flow mod per wake-up is the common case).
    rx_buf: Box<[u8]>,
    /// Reading stopped before the socket was drained (work bound per wake-up): the event
    /// loop must re-arm the (edge-triggered) registration so the rest is read.
    pub rx_more: bool,
    /// Whether the registration includes WRITABLE (re-registered only when this changes).
    pub registered_writable: bool,
    out: Vec<u8>,
    /// Bytes of `out` already written (compacted once written out, not per write: a 20 MB
    /// dump going out 200 KB at a time would otherwise move the rest each time).
    out_pos: usize,
    /// Negotiated version; 0 until both hellos are seen.
    pub version: u8,
    /// A service connection (the mgmt socket or a passive listener) as opposed to an active
    /// controller connection: it gets no asynchronous messages until it sets miss_send_len.
    pub service: bool,
    pub role: u32,
    pub miss_send_len: u16,
    pub pin_format: u32,
    pub controller_id: u16,
    /// NXT_SET_FLOW_FORMAT: 0 OpenFlow 1.0, 2 NXM.
    pub flow_format: u32,
    pub flow_mod_table_id: bool,
    pub bundles: HashMap<u32, Bundle>,
    /// Barrier replies waiting until the fast path has caught up with generation `.1`.
    pub barriers: VecDeque<(u32, u64)>,
    /// Set when the peer asked for flow-removed / port-status... (async config); `None`: the
    /// defaults of the role.
    pub async_config: Option<Vec<u8>>,
    pub closed: bool,
    /// Flow monitors (NXST_FLOW_MONITOR) this connection registered.
    pub monitors: Vec<super::monitor::Monitor>,
    /// Last time anything arrived, and the outstanding inactivity probe.
    pub last_rx: std::time::Instant,
    pub probe_sent: Option<std::time::Instant>,
    /// Asynchronous message masks (SET_ASYNC): [master/equal, slave] for packet-in,
    /// port-status and flow-removed reasons.
    pub async_masks: AsyncMasks,
    /// Messages received, for `ofproto/conns`-style diagnostics.
    pub rx_msgs: u64,
    pub tx_msgs: u64,
}

impl Conn {
    pub fn new(id: u64, stream: Stream, bridge: usize, service: bool, peer: String) -> Self {
        Conn {
            id,
            stream,
            bridge,
            peer,
            framer: Framer::new(),
            rx_buf: vec![0u8; 65536].into_boxed_slice(),
            rx_more: false,
            registered_writable: false,
            out: Vec::new(),
            out_pos: 0,
            version: 0,
            service,
            role: role::EQUAL,
            // OVS: primary (controller) connections default to 128, service ones to 0
            miss_send_len: if service { 0 } else { 128 },
            pin_format: pin_format::STANDARD,
            controller_id: 0,
            flow_format: 0,
            flow_mod_table_id: false,
            bundles: HashMap::new(),
            barriers: VecDeque::new(),
            async_config: None,
            closed: false,
            monitors: Vec::new(),
            last_rx: std::time::Instant::now(),
            probe_sent: None,
            async_masks: AsyncMasks::default(),
            rx_msgs: 0,
            tx_msgs: 0,
        }
    }

    /// Queues our HELLO (sent on accept/connect).
    pub fn send_hello(&mut self) {
        let hello = Message::Hello(vec![HelloElement::VersionBitmap(vec![VERSIONS])]);
        // HELLO goes out with our highest version; the peer picks the common one
        self.send_raw(openflow::encode(6, 0, &hello));
    }

    pub fn send_raw(&mut self, bytes: Vec<u8>) {
        if bytes.len() > 0xffff {
            oversize_dropped(&format!("message type {}", bytes[1]), bytes.len());
            return;
        }
        self.tx_msgs += 1;
        self.out.extend_from_slice(&bytes);
    }

    /// Encodes and queues a message for this connection's version.
    pub fn send(&mut self, xid: u32, m: &Message) {
        let v = if self.version == 0 { 6 } else { self.version };
        let b = openflow::encode(v, xid, m);
        self.send_raw(b);
    }

    /// Reads what is available and returns complete messages' bytes. A framing error closes
    /// the connection.
    pub fn read_messages(&mut self) -> Vec<Vec<u8>> {
        let mut msgs = Vec::new();
        loop {
            match self.stream.read(&mut self.rx_buf) {
                Ok(0) => {
                    self.closed = true;
                    break;
                }
                Ok(n) => {
                    self.framer.push(&self.rx_buf[..n]);
                    loop {
                        match self.framer.next_message() {
                            Ok(Some(m)) => msgs.push(m),
                            Ok(None) => break,
                            Err(e) => {
                                tracing::warn!(peer = %self.peer, error = %e, "OpenFlow framing error, closing");
                                self.closed = true;
                                return msgs;
                            }
                        }
                    }
                    // a short read from a stream socket took everything queued: anything sent
                    // later raises a new edge, so no read that would only say EAGAIN
                    if n < self.rx_buf.len() {
                        break;
                    }
                    // bound the work done per wake-up so one busy peer can't starve others
                    if msgs.len() >= 4096 {
                        self.rx_more = true;
                        break;
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => {
                    self.closed = true;
                    break;
                }
            }
        }
        self.rx_msgs += msgs.len() as u64;
        if !msgs.is_empty() {
            self.last_rx = std::time::Instant::now();
            self.probe_sent = None;
        }
        msgs
    }

    /// Writes queued output; returns whether some remains.
    pub fn flush(&mut self) -> bool {
        while self.out_pos < self.out.len() {
            match self.stream.write(&self.out[self.out_pos..]) {
                Ok(0) => {
                    self.closed = true;
                    return false;
                }
                Ok(n) => self.out_pos += n,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    // compact when the written part dominates, so appends stay amortized
                    if self.out_pos > self.out.len() / 2 {
                        self.out.drain(..self.out_pos);
                        self.out_pos = 0;
                    }
                    return true;
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => {
                    self.closed = true;
                    return false;
                }
            }
        }
        self.out.clear();
        self.out_pos = 0;
        // a big dump's buffer is not kept for the connection's lifetime
        if self.out.capacity() > 1 << 20 {
            self.out = Vec::new();
        }
        false
    }

    pub fn pending_output(&self) -> usize {
        self.out.len() - self.out_pos
    }

    /// Whether this connection gets asynchronous messages at all (OVS's
    /// `ofconn_receives_async_msg`: not slaves, and service connections only once they set a
    /// non-zero miss_send_len).
    pub fn wants_async(&self) -> bool {
        self.version != 0 && self.role != role::SLAVE && !(self.service && self.miss_send_len == 0)
    }

    /// Whether asynchronous message `kind` with `reason` passes this connection's masks.
    pub fn async_allows(&self, kind: AsyncKind, reason: u8) -> bool {
        let i = if self.role == role::SLAVE { 1 } else { 0 };
        let m = match kind {
            AsyncKind::PacketIn => self.async_masks.packet_in[i],
            AsyncKind::PortStatus => self.async_masks.port_status[i],
            AsyncKind::FlowRemoved => self.async_masks.flow_removed[i],
        };
        reason < 32 && m & (1 << reason) != 0
    }

    /// Applies a SET_ASYNC body: OpenFlow 1.3's six masks, or 1.4+'s properties.
    pub fn set_async(&mut self, b: &[u8]) {
        self.async_config = Some(b.to_vec());
        let u32_at = |o: usize| u32::from_be_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]]);
        if self.version <= 4 {
            if b.len() >= 24 {
                let m = &mut self.async_masks;
                m.packet_in = [u32_at(0), u32_at(4)];
                m.port_status = [u32_at(8), u32_at(12)];
                m.flow_removed = [u32_at(16), u32_at(20)];
            }
            return;
        }
        let mut o = 0;
        while o + 8 <= b.len() {
            let ty = u16::from_be_bytes([b[o], b[o + 1]]);
            let len = u16::from_be_bytes([b[o + 2], b[o + 3]]) as usize;
            if len < 8 {
                break;
            }
            let v = u32_at(o + 4);
            let m = &mut self.async_masks;
            match ty {
                0 => m.packet_in[1] = v,
                1 => m.packet_in[0] = v,
                2 => m.port_status[1] = v,
                3 => m.port_status[0] = v,
                4 => m.flow_removed[1] = v,
                5 => m.flow_removed[0] = v,
                _ => {}
            }
            o += (len + 7) & !7;
        }
    }

    /// The GET_ASYNC reply body in this connection's version.
    pub fn async_body(&self) -> Vec<u8> {
        let m = &self.async_masks;
        let mut v = Vec::new();
        if self.version <= 4 {
            for x in [
                m.packet_in[0],
                m.packet_in[1],
                m.port_status[0],
                m.port_status[1],
                m.flow_removed[0],
                m.flow_removed[1],
            ] {
                v.extend_from_slice(&x.to_be_bytes());
            }
        } else {
            for (ty, x) in [
                (0u16, m.packet_in[1]),
                (1, m.packet_in[0]),
                (2, m.port_status[1]),
                (3, m.port_status[0]),
                (4, m.flow_removed[1]),
                (5, m.flow_removed[0]),
            ] {
                v.extend_from_slice(&ty.to_be_bytes());
                v.extend_from_slice(&8u16.to_be_bytes());
                v.extend_from_slice(&x.to_be_bytes());
            }
        }
        v
    }

    /// Handles HELLO: negotiates the version. Returns false when there is none in common.
    pub fn on_hello(&mut self, h: &Header, elems: &[HelloElement]) -> bool {
        let theirs = elems
            .iter()
            .find_map(|e| match e {
                HelloElement::VersionBitmap(b) => b.first().copied(),
                _ => None,
            })
            .unwrap_or(if h.version < 32 {
                // no bitmap: every version up to theirs
                ((1u64 << (h.version as u64 + 1)) - 1) as u32
            } else {
                0
            });
        let common = theirs & VERSIONS;
        if common == 0 {
            return false;
        }
        self.version = 31 - common.leading_zeros() as u8;
        true
    }
}
