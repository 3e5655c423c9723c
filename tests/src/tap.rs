//! Tap devices the test holds open to play a VM: frames written on the fd are what the "guest"
//! transmits, frames read from it are what the host delivers to the guest.

use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

use crate::netns::Netns;
use crate::pkt::{self, Mac, VirtioNetHdr, VIRTIO_NET_HDR_LEN};
use crate::raw::poll_in;

const TUNSETIFF: libc::c_ulong = 0x4004_54ca;
const IFF_TAP: i16 = 0x0002;
const IFF_NO_PI: i16 = 0x1000;
const IFF_VNET_HDR: i16 = 0x4000;

#[repr(C)]
struct IfReq {
    name: [u8; 16],
    flags: i16,
    _pad: [u8; 22],
}

/// A tap device (`IFF_TAP | IFF_NO_PI`, optionally `IFF_VNET_HDR`) in a namespace. The device
/// exists as long as the fd is open: dropping the `Tap` removes it.
pub struct Tap {
    pub name: String,
    fd: OwnedFd,
    pub vnet_hdr: bool,
}

impl Tap {
    /// Creates tap `name` in `ns` and sets it up (a tap has carrier while its fd is open).
    pub fn create(ns: &Netns, name: &str, vnet_hdr: bool) -> Tap {
        assert!(name.len() <= 15);
        let n = name.to_string();
        let fd = ns.in_ns(move || {
            // SAFETY: open(2) of a fixed NUL-terminated path; fd owned right away.
            let fd = unsafe {
                libc::open(
                    c"/dev/net/tun".as_ptr(),
                    libc::O_RDWR | libc::O_CLOEXEC | libc::O_NONBLOCK,
                )
            };
            if fd < 0 {
                panic!("open /dev/net/tun: {}", std::io::Error::last_os_error());
            }
            // SAFETY: fresh fd we own.
            let fd = unsafe { OwnedFd::from_raw_fd(fd) };
            let mut req = IfReq {
                name: [0; 16],
                flags: IFF_TAP | IFF_NO_PI | if vnet_hdr { IFF_VNET_HDR } else { 0 },
                _pad: [0; 22],
            };
            req.name[..n.len()].copy_from_slice(n.as_bytes());
            // SAFETY: TUNSETIFF reads and writes a struct ifreq, which IfReq lays out (40 bytes).
            let r = unsafe { libc::ioctl(fd.as_raw_fd(), TUNSETIFF, &mut req as *mut IfReq) };
            if r < 0 {
                panic!("TUNSETIFF {n}: {}", std::io::Error::last_os_error());
            }
            fd
        });
        ns.ip(&format!("link set {name} up"));
        Tap {
            name: name.to_string(),
            fd,
            vnet_hdr,
        }
    }

    /// Writes `bytes` as they are (with the vnet header in front if the tap has one).
    pub fn write_raw(&self, bytes: &[u8]) {
        // SAFETY: write(2) from a live buffer.
        let r = unsafe {
            libc::write(
                self.fd.as_raw_fd(),
                bytes.as_ptr() as *const libc::c_void,
                bytes.len(),
            )
        };
        if r < 0 {
            panic!(
                "write on tap {}: {}",
                self.name,
                std::io::Error::last_os_error()
            );
        }
        assert_eq!(r as usize, bytes.len(), "short write on tap {}", self.name);
    }

    /// Transmits a frame from the "guest" (a zeroed vnet header first if the tap has one).
    pub fn send(&self, frame: &[u8]) {
        if self.vnet_hdr {
            self.send_vnet(VirtioNetHdr::default(), frame);
        } else {
            self.write_raw(frame);
        }
    }

    /// Transmits a frame preceded by `hdr` (the tap must have `IFF_VNET_HDR`).
    pub fn send_vnet(&self, hdr: VirtioNetHdr, frame: &[u8]) {
        assert!(self.vnet_hdr, "tap {} has no vnet header", self.name);
        let mut v = hdr.to_bytes().to_vec();
        v.extend_from_slice(frame);
        self.write_raw(&v);
    }

    /// Reads one frame delivered to the "guest" (vnet header stripped), waiting at most
    /// `timeout`.
    pub fn recv(&self, timeout: Duration) -> Option<Vec<u8>> {
        if !poll_in(self.fd.as_raw_fd(), timeout) {
            return None;
        }
        let mut buf = vec![0u8; 65536];
        // SAFETY: read(2) into a live buffer.
        let n = unsafe {
            libc::read(
                self.fd.as_raw_fd(),
                buf.as_mut_ptr() as *mut libc::c_void,
                buf.len(),
            )
        };
        if n < 0 {
            return None;
        }
        buf.truncate(n as usize);
        if self.vnet_hdr {
            buf.drain(..VIRTIO_NET_HDR_LEN.min(buf.len()));
        }
        Some(buf)
    }
}

/// A minimal guest on a tap: it owns a MAC and an IPv4 address and answers ARP requests for
/// that address while the test waits for something.
pub struct Vm<'a> {
    pub tap: &'a Tap,
    pub mac: Mac,
    pub ip: Ipv4Addr,
}

impl Vm<'_> {
    /// Reads frames until `want` accepts one (returned), answering ARP requests for the VM's
    /// address meanwhile. Panics after `timeout` listing a summary of what arrived.
    pub fn recv_until(&self, timeout: Duration, mut want: impl FnMut(&[u8]) -> bool) -> Vec<u8> {
        let deadline = Instant::now() + timeout;
        let mut seen = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                panic!(
                    "tap {}: the expected frame never arrived within {timeout:?}; got {} other \
                     frames: {:?}",
                    self.tap.name,
                    seen.len(),
                    seen
                );
            }
            let Some(f) = self.tap.recv(left) else {
                continue;
            };
            if want(&f) {
                return f;
            }
            if let Some(a) = pkt::arp_of(&f) {
                if a.op == 1 && a.tpa == self.ip {
                    self.tap
                        .send(&pkt::arp_frame(a.sha, 2, self.mac, self.ip, a.sha, a.spa));
                }
            }
            seen.push(describe(&f));
        }
    }
}

/// A one-line description of a frame for failure messages.
pub fn describe(f: &[u8]) -> String {
    let mac = |m: Option<Mac>| m.map(|m| pkt::mac_str(&m)).unwrap_or_default();
    let l3 = if let Some(a) = pkt::arp_of(f) {
        format!("arp op {} {} -> {}", a.op, a.spa, a.tpa)
    } else if let Some(ip) = pkt::ipv4_of(f) {
        format!("ip proto {} {} -> {}", ip.proto, ip.src, ip.dst)
    } else {
        format!("type {:04x?}", pkt::ethertype(f))
    };
    format!(
        "{} -> {} len {} {l3}",
        mac(pkt::src_mac(f)),
        mac(pkt::dst_mac(f)),
        f.len()
    )
}
