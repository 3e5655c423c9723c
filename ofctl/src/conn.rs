//! An OpenFlow connection the way ovs-ofctl's `vconn` drives one: connect (`unix:PATH`,
//! `tcp:IP[:PORT]`, or a bridge name meaning `$OVS_RUNDIR/BRIDGE.mgmt`), HELLO version
//! negotiation, echo handling, request/reply matching by xid, multipart dumps, "no reply"
//! transactions closed by a barrier (so errors are seen), and atomic bundles.
//!
//! Transaction IDs come from one process-wide counter starting at 1, as in Open vSwitch, so
//! a run of xvs-ofctl numbers its messages like ovs-ofctl does.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use openflow::message::{negotiate, BundleAdd, BundleControl, HelloElement};
use openflow::{Framer, Header, Message};

static NEXT_XID: AtomicU32 = AtomicU32::new(1);

/// Allocates a transaction ID.
pub fn alloc_xid() -> u32 {
    NEXT_XID.fetch_add(1, Ordering::Relaxed)
}

/// A received message: header, decoded body, raw bytes.
#[derive(Debug, Clone)]
pub struct Received {
    pub header: Header,
    pub message: Message,
    pub bytes: Vec<u8>,
}

trait Stream: Read + Write + Send {
    fn set_timeout(&self, t: Option<Duration>) -> std::io::Result<()>;
}
impl Stream for UnixStream {
    fn set_timeout(&self, t: Option<Duration>) -> std::io::Result<()> {
        self.set_read_timeout(t)
    }
}
impl Stream for TcpStream {
    fn set_timeout(&self, t: Option<Duration>) -> std::io::Result<()> {
        self.set_read_timeout(t)
    }
}

/// The run directory ovs-ofctl resolves bridge names in: `$OVS_RUNDIR`, else `$XVS_RUNDIR`,
/// else `/var/run/openvswitch`.
pub fn rundir() -> String {
    std::env::var("OVS_RUNDIR")
        .or_else(|_| std::env::var("XVS_RUNDIR"))
        .unwrap_or_else(|_| "/var/run/openvswitch".to_string())
}

/// Where a target name leads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Unix(String),
    Tcp(String),
}

/// The sockets to try for a target, the way ovs-ofctl's `open_vconn` does: a name with a
/// colon is a connection method (`unix:PATH`, `tcp:IP[:PORT]`) tried alone; anything else
/// is a socket path or a bridge name (`$RUNDIR/NAME.mgmt`), tried in that order.  The flag
/// says which of the two it was (they fail with different messages).
pub fn resolve(name: &str) -> Result<(Vec<Target>, bool), String> {
    if let Some(p) = name.strip_prefix("unix:") {
        return Ok((vec![Target::Unix(p.to_string())], true));
    }
    if let Some(t) = name.strip_prefix("tcp:") {
        let addr = if t.starts_with('[') {
            if t.contains("]:") {
                t.to_string()
            } else {
                format!("{t}:6653")
            }
        } else if t.contains(':') {
            t.to_string()
        } else {
            format!("{t}:6653")
        };
        return Ok((vec![Target::Tcp(addr)], true));
    }
    if name.contains(':') {
        return Err(format!(
            "connecting to {name} (Address family not supported by protocol)"
        ));
    }
    let mut v = vec![Target::Unix(name.to_string())];
    let mut dirs = vec![rundir()];
    if std::env::var("OVS_RUNDIR").is_err() && std::env::var("XVS_RUNDIR").is_err() {
        dirs.push("/var/run/xvswitch".to_string());
    }
    for d in &dirs {
        v.push(Target::Unix(format!("{d}/{name}.mgmt")));
    }
    Ok((v, false))
}

/// An open, negotiated OpenFlow connection.
pub struct Conn {
    stream: Box<dyn Stream>,
    framer: Framer,
    pub version: u8,
    pub name: String,
    /// Messages received while waiting for something else (for `monitor`).
    pending: Vec<Received>,
}

fn io_err(name: &str, e: std::io::Error) -> String {
    format!("{name}: {e}")
}

impl Conn {
    /// Connects and negotiates a version among `allowed` (bitmap of wire versions).
    pub fn open(name: &str, allowed: u32) -> Result<Conn, String> {
        let (targets, explicit) = resolve(name)?;
        let connect = |t: &Target| -> std::io::Result<Box<dyn Stream>> {
            Ok(match t {
                Target::Unix(p) => Box::new(UnixStream::connect(p)?),
                Target::Tcp(a) => Box::new(TcpStream::connect(a.as_str())?),
            })
        };
        let mut stream = None;
        let mut last_err = None;
        for t in &targets {
            match connect(t) {
                Ok(s) => {
                    stream = Some((s, t));
                    break;
                }
                Err(e) => last_err = Some(e),
            }
        }
        let (stream, target) = match (stream, last_err) {
            (Some(s), _) => s,
            (None, Some(e)) if explicit => {
                return Err(format!("connecting to {name} ({})", errno_text(&e)))
            }
            _ => return Err(format!("{name} is not a bridge or a socket")),
        };
        stream
            .set_timeout(Some(Duration::from_secs(60)))
            .map_err(|e| io_err(name, e))?;
        let mut c = Conn {
            stream,
            framer: Framer::new(),
            version: 0,
            name: match target {
                Target::Unix(p) => format!("unix:{p}"),
                Target::Tcp(a) => format!("tcp:{a}"),
            },
            pending: Vec::new(),
        };
        c.handshake(allowed)?;
        Ok(c)
    }

    fn handshake(&mut self, allowed: u32) -> Result<(), String> {
        let max = 31 - allowed.leading_zeros() as u8;
        // OVS sends a bitmap unless the allowed versions are exactly 1..=max.
        let contiguous = ((allowed >> 1) + 1).is_power_of_two();
        let els = if contiguous {
            vec![]
        } else {
            vec![HelloElement::VersionBitmap(vec![allowed])]
        };
        self.send_raw(&openflow::encode(max, alloc_xid(), &Message::Hello(els)))?;
        loop {
            let r = self.recv_raw()?;
            if let Message::Hello(els) = &r.message {
                match negotiate(r.header.version, els, allowed) {
                    Some(v) => {
                        self.version = v;
                        return Ok(());
                    }
                    None => {
                        return Err(format!(
                            "{}: version negotiation failed (we support version 0x{:02x}, \
                             peer supports version 0x{:02x})",
                            self.name, max, r.header.version
                        ))
                    }
                }
            }
            if let Message::Error(_) = r.message {
                return Err(format!(
                    "{}: failed to connect to socket (Protocol error)",
                    self.name
                ));
            }
        }
    }

    /// Sets (or clears) the read timeout.
    pub fn set_timeout(&mut self, t: Option<Duration>) -> Result<(), String> {
        self.stream
            .set_timeout(t)
            .map_err(|e| io_err(&self.name, e))
    }

    pub fn send_raw(&mut self, bytes: &[u8]) -> Result<(), String> {
        self.stream
            .write_all(bytes)
            .map_err(|e| format!("{}: failed to send packet to switch ({e})", self.name))
    }

    /// Encodes and sends `m` with a fresh xid; returns the xid.
    pub fn send(&mut self, m: &Message) -> Result<u32, String> {
        let xid = alloc_xid();
        self.send_raw(&openflow::encode(self.version, xid, m))?;
        Ok(xid)
    }

    /// Receives the next message (answering echo requests itself).
    fn recv_raw(&mut self) -> Result<Received, String> {
        let mut buf = [0u8; 65536];
        loop {
            match self.framer.next_message() {
                Ok(Some(bytes)) => {
                    // A message the codec rejects is still delivered (as Unknown, with
                    // its bytes) so that printers can show it as ovs-ofctl does
                    // ("***decode error: ...***") instead of the command dying on it.
                    let (header, message) = match openflow::decode(&bytes) {
                        Ok(x) => x,
                        Err(e) => {
                            let h = Header::parse(&bytes).ok_or_else(|| {
                                format!("{}: received invalid OpenFlow message ({e})", self.name)
                            })?;
                            let body = bytes.get(8..).unwrap_or(&[]).to_vec();
                            let msg_type = h.msg_type;
                            (h, Message::Unknown { msg_type, body })
                        }
                    };
                    if let Message::EchoRequest(d) = &message {
                        let reply = openflow::encode(
                            header.version,
                            header.xid,
                            &Message::EchoReply(d.clone()),
                        );
                        self.send_raw(&reply)?;
                        continue;
                    }
                    return Ok(Received {
                        header,
                        message,
                        bytes,
                    });
                }
                Ok(None) => {}
                Err(e) => return Err(format!("{}: {e}", self.name)),
            }
            let n = match self.stream.read(&mut buf) {
                // EINTR (e.g. after a stop/continue with a read timeout set): read again
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                r => r,
            }
            .map_err(|e| {
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) {
                    format!("{}: timeout waiting for a reply", self.name)
                } else {
                    format!("{}: connection failed ({e})", self.name)
                }
            })?;
            if n == 0 {
                return Err(format!("{}: connection closed by peer", self.name));
            }
            self.framer.push(&buf[..n]);
        }
    }

    /// Receives the next message, first delivering any set aside earlier.
    pub fn recv(&mut self) -> Result<Received, String> {
        if !self.pending.is_empty() {
            return Ok(self.pending.remove(0));
        }
        self.recv_raw()
    }

    /// Sends a request and waits for the message with its xid (errors included).
    pub fn transact(&mut self, m: &Message) -> Result<Received, String> {
        let xid = self.send(m)?;
        loop {
            let r = self.recv_raw()?;
            if r.header.xid == xid {
                return Ok(r);
            }
            self.pending.push(r);
        }
    }

    /// Sends a multipart request and collects every reply (until one without "more"), or
    /// the error the switch answered with.
    pub fn dump(&mut self, m: &Message) -> Result<Vec<Received>, Box<Received>> {
        let xid = match self.send(m) {
            Ok(x) => x,
            Err(e) => return Err(Box::new(fake_error(e))),
        };
        let mut out = Vec::new();
        loop {
            let r = match self.recv_raw() {
                Ok(r) => r,
                Err(e) => return Err(Box::new(fake_error(e))),
            };
            if r.header.xid != xid {
                continue;
            }
            match &r.message {
                Message::Error(_) => return Err(Box::new(r)),
                Message::MultipartReply(mp) => {
                    let more = mp.flags & 1 != 0;
                    out.push(r);
                    if !more {
                        return Ok(out);
                    }
                }
                _ => {
                    out.push(r);
                    return Ok(out);
                }
            }
        }
    }

    /// Sends messages that only have a reply on error, then a barrier, and returns the
    /// first error received (Open vSwitch's `transact_multiple_noreply`).
    pub fn transact_noreply(&mut self, msgs: &[Message]) -> Result<Option<Received>, String> {
        let mut xids = Vec::new();
        let mut sent = Vec::new();
        for m in msgs {
            let xid = alloc_xid();
            let bytes = openflow::encode(self.version, xid, m);
            self.send_raw(&bytes)?;
            xids.push(xid);
            sent.push(bytes);
        }
        let barrier = self.send(&Message::BarrierRequest)?;
        let mut err = None;
        loop {
            let r = self.recv_raw()?;
            if r.header.xid == barrier {
                return Ok(err);
            }
            if xids.contains(&r.header.xid) && err.is_none() {
                err = Some(r);
            }
        }
    }

    /// Runs `msgs` in an ordered, atomic bundle (open, add, barrier, commit), returning the
    /// errors the switch sent (the bundle is discarded when there are any), each with the
    /// index of the bundled message it refers to when known.
    pub fn bundle_transact(
        &mut self,
        msgs: &[Message],
    ) -> Result<Vec<(Received, Option<usize>)>, String> {
        if self.version < 4 {
            return Err("bundles need OpenFlow 1.3 or later".into());
        }
        let flags = 3; // OFPBF_ATOMIC | OFPBF_ORDERED
        let ctrl = |t: u16| {
            Message::BundleControl(BundleControl {
                bundle_id: 0,
                ctrl_type: t,
                flags,
                props: vec![],
            })
        };
        let mut errors = Vec::new();
        let r = self.transact(&ctrl(0))?;
        if let Message::Error(_) = r.message {
            errors.push((r, None));
            return Ok(errors);
        }
        let mut xids = Vec::new();
        for m in msgs {
            let xid = alloc_xid();
            let inner = openflow::encode(self.version, xid, m);
            let header = Header::parse(&inner).ok_or("bad inner message")?;
            let add = Message::BundleAdd(BundleAdd {
                bundle_id: 0,
                flags,
                header,
                message: Box::new(m.clone()),
                props: vec![],
            });
            self.send_raw(&openflow::encode(self.version, xid, &add))?;
            xids.push(xid);
        }
        let barrier = self.send(&Message::BarrierRequest)?;
        loop {
            let r = self.recv_raw()?;
            if r.header.xid == barrier {
                break;
            }
            if let Message::Error(_) = r.message {
                let idx = xids.iter().position(|x| *x == r.header.xid);
                errors.push((r, idx));
            }
        }
        // Commit (or discard); errors for bundled messages may still arrive before the reply.
        let cxid = self.send(&ctrl(if errors.is_empty() { 4 } else { 6 }))?;
        loop {
            let r = self.recv_raw()?;
            let is_reply = r.header.xid == cxid;
            if let Message::Error(_) = r.message {
                let idx = xids.iter().position(|x| *x == r.header.xid);
                if is_reply || idx.is_some() {
                    errors.push((r, idx));
                }
            }
            if is_reply {
                break;
            }
        }
        Ok(errors)
    }
}

/// Wraps a local failure as an error "reply" (for `dump`'s Err side).
fn fake_error(e: String) -> Received {
    Received {
        header: Header {
            version: 0,
            msg_type: 1,
            length: 0,
            xid: 0,
        },
        message: Message::Unknown {
            msg_type: 255,
            body: e.into_bytes(),
        },
        bytes: vec![],
    }
}

/// A transport failure carried by `fake_error`, if that is what `r` is.
pub fn local_failure(r: &Received) -> Option<String> {
    match &r.message {
        Message::Unknown {
            msg_type: 255,
            body,
        } => Some(String::from_utf8_lossy(body).into_owned()),
        _ => None,
    }
}

fn errno_text(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => "No such file or directory".into(),
        std::io::ErrorKind::ConnectionRefused => "Connection refused".into(),
        std::io::ErrorKind::PermissionDenied => "Permission denied".into(),
        _ => e.to_string(),
    }
}
