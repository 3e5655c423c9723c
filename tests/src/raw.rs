//! Raw `AF_PACKET` sockets bound to one interface: inject hand-made frames and capture what
//! crosses the interface, deterministically (no tcpdump, no timing).

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

use crate::netns::Netns;

/// `sll_pkttype` of a captured frame.
pub const PACKET_HOST: u8 = 0;
pub const PACKET_BROADCAST: u8 = 1;
pub const PACKET_MULTICAST: u8 = 2;
pub const PACKET_OTHERHOST: u8 = 3;
pub const PACKET_OUTGOING: u8 = 4;

/// A captured frame.
#[derive(Clone, Debug)]
pub struct Frame {
    pub data: Vec<u8>,
    /// One of the `PACKET_*` values: `PACKET_OUTGOING` for frames this host sent.
    pub pkttype: u8,
}

impl Frame {
    pub fn incoming(&self) -> bool {
        self.pkttype != PACKET_OUTGOING
    }
}

/// An `AF_PACKET`/`SOCK_RAW` socket for all protocols, bound to one interface of a namespace.
/// It sees frames in both directions from the moment it is bound.
pub struct RawSock {
    fd: OwnedFd,
    pub ifname: String,
    ifindex: i32,
}

fn os_err(what: &str) -> ! {
    panic!("{what}: {}", std::io::Error::last_os_error())
}

impl RawSock {
    /// Opens and binds the socket to `ifname` in `ns`, with a large receive buffer.
    pub fn open(ns: &Netns, ifname: &str) -> RawSock {
        let name = ifname.to_string();
        let (fd, ifindex) = ns.in_ns(move || {
            let proto = (libc::ETH_P_ALL as u16).to_be() as i32;
            // SAFETY: socket(2); the fd is owned right away.
            let fd = unsafe {
                libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, proto)
            };
            if fd < 0 {
                os_err("socket(AF_PACKET)");
            }
            // SAFETY: fresh fd we own.
            let fd = unsafe { OwnedFd::from_raw_fd(fd) };
            let ifindex = afxdp::netdev::ifindex(&name)
                .unwrap_or_else(|e| panic!("raw socket on {name}: {e}"));
            // SAFETY: zeroed sockaddr_ll is a valid value; fields set below.
            let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
            sll.sll_family = libc::AF_PACKET as u16;
            sll.sll_protocol = (libc::ETH_P_ALL as u16).to_be();
            sll.sll_ifindex = ifindex as i32;
            // SAFETY: bind with a properly sized sockaddr_ll.
            let r = unsafe {
                libc::bind(
                    fd.as_raw_fd(),
                    &sll as *const libc::sockaddr_ll as *const libc::sockaddr,
                    std::mem::size_of::<libc::sockaddr_ll>() as u32,
                )
            };
            if r != 0 {
                os_err("bind(AF_PACKET)");
            }
            set_int_opt(
                fd.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVBUFFORCE,
                16 << 20,
            );
            (fd, ifindex as i32)
        });
        let s = RawSock {
            fd,
            ifname: ifname.to_string(),
            ifindex,
        };
        // frames queued between socket() and bind() may come from any interface: drop them
        s.drain();
        s
    }

    /// Sends one frame out of the interface (as if the host transmitted it).
    pub fn send(&self, frame: &[u8]) {
        // SAFETY: zeroed sockaddr_ll is valid; fields set below.
        let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        sll.sll_family = libc::AF_PACKET as u16;
        sll.sll_ifindex = self.ifindex;
        sll.sll_halen = 6;
        sll.sll_addr[..6].copy_from_slice(&frame[..6]);
        // SAFETY: sendto with a live buffer and a properly sized address.
        let r = unsafe {
            libc::sendto(
                self.fd.as_raw_fd(),
                frame.as_ptr() as *const libc::c_void,
                frame.len(),
                0,
                &sll as *const libc::sockaddr_ll as *const libc::sockaddr,
                std::mem::size_of::<libc::sockaddr_ll>() as u32,
            )
        };
        if r < 0 {
            os_err(&format!("sendto on {}", self.ifname));
        }
        assert_eq!(r as usize, frame.len(), "short send on {}", self.ifname);
    }

    /// Receives one frame, waiting at most `timeout`.
    pub fn recv(&self, timeout: Duration) -> Option<Frame> {
        if !poll_in(self.fd.as_raw_fd(), timeout) {
            return None;
        }
        self.recv_now()
    }

    fn recv_now(&self) -> Option<Frame> {
        let mut buf = vec![0u8; 65536];
        // SAFETY: zeroed sockaddr_ll is valid for the kernel to fill.
        let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        let mut alen = std::mem::size_of::<libc::sockaddr_ll>() as u32;
        // SAFETY: recvfrom into a live buffer; the address buffer is a sockaddr_ll.
        let n = unsafe {
            libc::recvfrom(
                self.fd.as_raw_fd(),
                buf.as_mut_ptr() as *mut libc::c_void,
                buf.len(),
                libc::MSG_DONTWAIT,
                &mut sll as *mut libc::sockaddr_ll as *mut libc::sockaddr,
                &mut alen,
            )
        };
        if n < 0 {
            return None;
        }
        buf.truncate(n as usize);
        Some(Frame {
            data: buf,
            pkttype: sll.sll_pkttype,
        })
    }

    /// Receives the next frame the interface *received* (skipping the host's own outgoing
    /// frames), waiting at most `timeout` in total.
    pub fn recv_incoming(&self, timeout: Duration) -> Option<Vec<u8>> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let f = self.recv(left)?;
            if f.incoming() {
                return Some(f.data);
            }
        }
    }

    /// Everything queued right now, without waiting.
    pub fn drain(&self) -> Vec<Frame> {
        let mut v = Vec::new();
        while let Some(f) = self.recv_now() {
            v.push(f);
        }
        v
    }

    /// Collects incoming frames until `done` returns true for one of them (it is included) or
    /// `timeout` passes; returns (frames, whether `done` matched).
    pub fn collect_until(
        &self,
        timeout: Duration,
        mut done: impl FnMut(&[u8]) -> bool,
    ) -> (Vec<Vec<u8>>, bool) {
        let deadline = Instant::now() + timeout;
        let mut v = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.recv(left) {
                None => return (v, false),
                Some(f) if !f.incoming() => {}
                Some(f) => {
                    let stop = done(&f.data);
                    v.push(f.data);
                    if stop {
                        return (v, true);
                    }
                }
            }
        }
    }
}

/// poll(2) for readability.
pub fn poll_in(fd: i32, timeout: Duration) -> bool {
    let mut p = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    let ms = timeout.as_millis().min(i32::MAX as u128) as i32;
    loop {
        // SAFETY: one valid pollfd.
        let r = unsafe { libc::poll(&mut p, 1, ms) };
        if r < 0 && std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
            continue;
        }
        return r > 0 && p.revents & libc::POLLIN != 0;
    }
}

/// setsockopt with an int value (errors ignored: buffer sizes are best effort).
pub fn set_int_opt(fd: i32, level: i32, name: i32, v: i32) {
    // SAFETY: setsockopt with a pointer to a live int of the right size.
    unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            &v as *const i32 as *const libc::c_void,
            std::mem::size_of::<i32>() as u32,
        );
    }
}
