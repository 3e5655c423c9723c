//! Tiny TCP and UDP services and their clients, on real kernel sockets opened inside a
//! namespace (see [`Netns::in_ns`]): the tests of stateful features (conntrack, NAT, load
//! balancers) need to know which server answered, which source address it saw, and whether a
//! connection was refused, timed out or carried its data both ways.
//!
//! The TCP exchange: the client connects, writes a payload and shuts its side down; the server
//! reads to end of stream and answers `"<name> <peer ip>:<peer port> <length>\n"` followed by
//! the payload, then closes. So one exchange proves the handshake, data in both directions
//! (several segments each, the payload is bigger than the MTU) and an orderly close, and tells
//! the client who answered and what source address the server saw (NAT is visible).
//!
//! The UDP exchange: one datagram, answered with the same header and payload.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, SocketAddrV4, TcpListener, TcpStream, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::netns::Netns;

/// How long a server waits on one stalled connection before giving up on it.
const SERVER_IO_TIMEOUT: Duration = Duration::from_secs(20);

/// What a client got back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Answer {
    /// The name of the server that answered.
    pub server: String,
    /// The client's address as the server saw it (after any NAT on the way).
    pub seen_as: SocketAddr,
}

/// A server running on a thread, recording the peer of every request it received whole (before
/// answering it); stopped on drop.
pub struct Server {
    name: String,
    stop: Arc<AtomicBool>,
    peers: Arc<Mutex<Vec<SocketAddr>>>,
    thread: Option<JoinHandle<()>>,
}

impl Server {
    /// The peers of the requests received so far, in order.
    pub fn peers(&self) -> Vec<SocketAddr> {
        self.peers.lock().expect("peers").clone()
    }

    pub fn name(&self) -> &str {
        &self.name
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn header(name: &str, peer: SocketAddr, len: usize) -> Vec<u8> {
    format!("{name} {peer} {len}\n").into_bytes()
}

/// Parses what a server sent back: header, then the payload it received.
fn parse_answer(buf: &[u8], sent: &[u8]) -> std::io::Result<Answer> {
    let bad = |why: String| std::io::Error::new(std::io::ErrorKind::InvalidData, why);
    let nl = buf
        .iter()
        .position(|&b| b == b'\n')
        .ok_or_else(|| bad(format!("no header in {} bytes", buf.len())))?;
    let head = String::from_utf8_lossy(&buf[..nl]).into_owned();
    let mut f = head.split_whitespace();
    let (Some(server), Some(peer), Some(len)) = (f.next(), f.next(), f.next()) else {
        return Err(bad(format!("malformed header {head:?}")));
    };
    let seen_as: SocketAddr = peer
        .parse()
        .map_err(|e| bad(format!("peer {peer:?}: {e}")))?;
    let body = &buf[nl + 1..];
    if len != sent.len().to_string() || body != sent {
        return Err(bad(format!(
            "{server} got {len} bytes and echoed {} of the {} sent (intact: {})",
            body.len(),
            sent.len(),
            body == sent
        )));
    }
    Ok(Answer {
        server: server.to_string(),
        seen_as,
    })
}

fn payload(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 + i / 251) as u8).collect()
}

/// Starts a TCP server named `name` listening on `addr` inside `ns`.
pub fn tcp_server(ns: &Netns, addr: SocketAddrV4, name: &str) -> Server {
    let listener = ns
        .in_ns(|| TcpListener::bind(addr))
        .unwrap_or_else(|e| panic!("{name}: bind TCP {addr} in {}: {e}", ns.name()));
    listener.set_nonblocking(true).expect("nonblocking");
    let stop = Arc::new(AtomicBool::new(false));
    let peers = Arc::new(Mutex::new(Vec::new()));
    let (s, p, n) = (stop.clone(), peers.clone(), name.to_string());
    let thread = std::thread::spawn(move || {
        while !s.load(Ordering::Relaxed) {
            match listener.accept() {
                Ok((conn, peer)) => {
                    let (p, n) = (p.clone(), n.clone());
                    // one thread per connection: a stalled peer holds up no other
                    std::thread::spawn(move || {
                        let _ = serve_tcp(conn, peer, &n, &p);
                    });
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    std::thread::sleep(Duration::from_millis(5))
                }
                Err(_) => std::thread::sleep(Duration::from_millis(5)),
            }
        }
    });
    Server {
        name: name.to_string(),
        stop,
        peers,
        thread: Some(thread),
    }
}

/// Serves one exchange; the peer is recorded once its whole payload arrived, before the
/// answer goes out, so a client holding an answer finds its peer recorded.
fn serve_tcp(
    mut conn: TcpStream,
    peer: SocketAddr,
    name: &str,
    peers: &Mutex<Vec<SocketAddr>>,
) -> std::io::Result<()> {
    conn.set_nonblocking(false)?;
    conn.set_read_timeout(Some(SERVER_IO_TIMEOUT))?;
    conn.set_write_timeout(Some(SERVER_IO_TIMEOUT))?;
    let mut got = Vec::new();
    conn.read_to_end(&mut got)?;
    peers.lock().expect("peers").push(peer);
    let mut out = header(name, peer, got.len());
    out.extend_from_slice(&got);
    conn.write_all(&out)?;
    conn.shutdown(Shutdown::Write)?;
    // wait for the client's close so the exchange is complete on both sides
    let _ = conn.read(&mut [0u8; 1]);
    Ok(())
}

/// One TCP exchange from inside `ns` to `to` with a `len`-byte payload: connect (giving up
/// after `connect_timeout`), send, receive the answer. The error tells refused
/// (`ConnectionRefused`) from unanswered (`TimedOut`) from a broken exchange (anything else).
pub fn tcp_exchange(
    ns: &Netns,
    to: SocketAddrV4,
    len: usize,
    connect_timeout: Duration,
) -> std::io::Result<Answer> {
    ns.in_ns(move || {
        let mut c = TcpStream::connect_timeout(&to.into(), connect_timeout)?;
        c.set_read_timeout(Some(SERVER_IO_TIMEOUT))?;
        c.set_write_timeout(Some(SERVER_IO_TIMEOUT))?;
        let sent = payload(len);
        c.write_all(&sent)?;
        c.shutdown(Shutdown::Write)?;
        let mut buf = Vec::new();
        c.read_to_end(&mut buf)?;
        parse_answer(&buf, &sent)
    })
}

/// Starts a UDP server named `name` on `addr` inside `ns`: each datagram is answered with the
/// header and the datagram.
pub fn udp_server(ns: &Netns, addr: SocketAddrV4, name: &str) -> Server {
    let sock = ns
        .in_ns(|| UdpSocket::bind(addr))
        .unwrap_or_else(|e| panic!("{name}: bind UDP {addr} in {}: {e}", ns.name()));
    sock.set_read_timeout(Some(Duration::from_millis(50)))
        .expect("timeout");
    let stop = Arc::new(AtomicBool::new(false));
    let peers = Arc::new(Mutex::new(Vec::new()));
    let (s, p, n) = (stop.clone(), peers.clone(), name.to_string());
    let thread = std::thread::spawn(move || {
        let mut buf = vec![0u8; 65536];
        while !s.load(Ordering::Relaxed) {
            if let Ok((len, peer)) = sock.recv_from(&mut buf) {
                p.lock().expect("peers").push(peer);
                let mut out = header(&n, peer, len);
                out.extend_from_slice(&buf[..len]);
                let _ = sock.send_to(&out, peer);
            }
        }
    });
    Server {
        name: name.to_string(),
        stop,
        peers,
        thread: Some(thread),
    }
}

/// One UDP exchange from inside `ns` to `to` on a connected socket: sends a `len`-byte
/// datagram up to `tries` times, waiting `wait` for the answer each time (the first may be
/// lost while a next hop is resolved). An ICMP port unreachable comes back as
/// `ConnectionRefused`; no answer at all as `TimedOut`.
pub fn udp_exchange(
    ns: &Netns,
    to: SocketAddrV4,
    len: usize,
    tries: u32,
    wait: Duration,
) -> std::io::Result<Answer> {
    ns.in_ns(move || {
        let s = UdpSocket::bind("0.0.0.0:0")?;
        s.connect(to)?;
        s.set_read_timeout(Some(wait))?;
        let sent = payload(len);
        let mut buf = vec![0u8; 65536];
        let mut last = std::io::Error::new(std::io::ErrorKind::TimedOut, "no answer");
        for _ in 0..tries.max(1) {
            s.send(&sent)?;
            match s.recv(&mut buf) {
                Ok(n) => return parse_answer(&buf[..n], &sent),
                Err(e)
                    if e.kind() == std::io::ErrorKind::WouldBlock
                        || e.kind() == std::io::ErrorKind::TimedOut =>
                {
                    last = std::io::Error::new(std::io::ErrorKind::TimedOut, "no answer");
                }
                Err(e) => return Err(e),
            }
        }
        Err(last)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_parse_and_check_the_echo() {
        let sent = payload(3000);
        let mut buf = header("b1", "10.0.0.7:4242".parse().unwrap(), sent.len());
        buf.extend_from_slice(&sent);
        assert_eq!(
            parse_answer(&buf, &sent).unwrap(),
            Answer {
                server: "b1".into(),
                seen_as: "10.0.0.7:4242".parse().unwrap()
            }
        );
        // a truncated echo is an error, not an answer
        assert!(parse_answer(&buf[..buf.len() - 1], &sent).is_err());
        assert!(parse_answer(b"garbage", &sent).is_err());
    }
}
