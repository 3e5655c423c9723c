//! AF_XDP sockets: creation, UMEM registration or sharing, ring mapping and bind.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use crate::ring::{ConsRing, ProdRing};
use crate::sys::*;
use crate::umem::Umem;
use crate::{cvt, Error, Result};

/// How to bind: zero-copy (driver support needed) or copy mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BindMode {
    ZeroCopy,
    Copy,
}

#[derive(Clone, Debug)]
pub struct XskConfig {
    pub ifindex: u32,
    pub queue: u32,
    pub rx_size: u32,
    pub tx_size: u32,
    pub fill_size: u32,
    pub comp_size: u32,
    pub mode: BindMode,
    pub need_wakeup: bool,
    /// SO_SNDBUF for copy-mode TX: each in-flight TX skb is charged to it.
    pub sndbuf: i32,
}

/// A bound AF_XDP socket on one (interface, queue), with its four rings.
pub struct XskSocket {
    fd: OwnedFd,
    pub rx: ConsRing<XdpDesc>,
    pub tx: ProdRing<XdpDesc>,
    pub fill: ProdRing<u64>,
    pub comp: ConsRing<u64>,
    ifindex: u32,
    queue: u32,
    zerocopy: bool,
    need_wakeup: bool,
}

fn setsockopt<T>(fd: RawFd, level: i32, name: i32, v: &T, op: &'static str) -> Result<()> {
    // SAFETY: `v` is a live value of the size we pass.
    let r = unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            v as *const T as *const libc::c_void,
            std::mem::size_of::<T>() as libc::socklen_t,
        )
    };
    cvt(op, r as i64).map(|_| ())
}

/// Sets an integer socket option.
pub fn setsockopt_int(fd: RawFd, level: i32, name: i32, v: i32) -> Result<()> {
    setsockopt(fd, level, name, &v, "setsockopt")
}

impl XskSocket {
    /// Creates a socket that registers `umem` (the first socket of a UMEM).
    pub fn new_owner(umem: &Umem, cfg: &XskConfig) -> Result<Self> {
        Self::create(cfg, Some(umem), None)
    }

    /// Creates a socket sharing the UMEM registered by `owner` (XDP_SHARED_UMEM). It binds with
    /// the owner's mode (the kernel forbids mode flags on shared binds) and gets its own fill and
    /// completion rings, since it is on another (device, queue).
    pub fn new_shared(owner: &XskSocket, cfg: &XskConfig) -> Result<Self> {
        Self::create(cfg, None, Some(owner.fd.as_raw_fd()))
    }

    fn create(cfg: &XskConfig, umem: Option<&Umem>, shared_fd: Option<RawFd>) -> Result<Self> {
        // SAFETY: plain socket(2); the fd is owned right away.
        let raw = unsafe { libc::socket(AF_XDP, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
        cvt("socket(AF_XDP)", raw as i64)?;
        // SAFETY: `raw` is a fresh fd we own.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let f = fd.as_raw_fd();
        if let Some(u) = umem {
            let reg = UmemReg {
                addr: u.area_ptr() as u64,
                len: u.len() as u64,
                chunk_size: u.frame_size(),
                headroom: u.headroom(),
                flags: 0,
                tx_metadata_len: 0,
            };
            if setsockopt(f, SOL_XDP, XDP_UMEM_REG, &reg, "XDP_UMEM_REG").is_err() {
                // kernels before 6.8 know only the 24-byte prefix of xdp_umem_reg
                // SAFETY: passes a prefix of a live struct.
                let r = unsafe {
                    libc::setsockopt(
                        f,
                        SOL_XDP,
                        XDP_UMEM_REG,
                        &reg as *const UmemReg as *const libc::c_void,
                        24,
                    )
                };
                cvt("XDP_UMEM_REG", r as i64)?;
            }
        }
        setsockopt_int(f, SOL_XDP, XDP_UMEM_FILL_RING, cfg.fill_size as i32)?;
        setsockopt_int(f, SOL_XDP, XDP_UMEM_COMPLETION_RING, cfg.comp_size as i32)?;
        setsockopt_int(f, SOL_XDP, XDP_RX_RING, cfg.rx_size as i32)?;
        setsockopt_int(f, SOL_XDP, XDP_TX_RING, cfg.tx_size as i32)?;
        if cfg.sndbuf > 0 {
            // best effort: a small sndbuf only limits copy-mode TX bursts
            let _ = setsockopt_int(f, libc::SOL_SOCKET, libc::SO_SNDBUFFORCE, cfg.sndbuf);
        }
        let mut off = MmapOffsets::default();
        let mut optlen = std::mem::size_of::<MmapOffsets>() as libc::socklen_t;
        // SAFETY: getsockopt into a correctly sized struct.
        let r = unsafe {
            libc::getsockopt(
                f,
                SOL_XDP,
                XDP_MMAP_OFFSETS,
                &mut off as *mut MmapOffsets as *mut libc::c_void,
                &mut optlen,
            )
        };
        cvt("XDP_MMAP_OFFSETS", r as i64)?;
        let fill = ProdRing::map(f, &off.fr, cfg.fill_size, XDP_UMEM_PGOFF_FILL_RING)?;
        let comp = ConsRing::map(f, &off.cr, cfg.comp_size, XDP_UMEM_PGOFF_COMPLETION_RING)?;
        let rx = ConsRing::map(f, &off.rx, cfg.rx_size, XDP_PGOFF_RX_RING)?;
        let tx = ProdRing::map(f, &off.tx, cfg.tx_size, XDP_PGOFF_TX_RING)?;

        let flags = match shared_fd {
            Some(_) => XDP_SHARED_UMEM,
            None => {
                (match cfg.mode {
                    BindMode::ZeroCopy => XDP_ZEROCOPY,
                    BindMode::Copy => XDP_COPY,
                }) | if cfg.need_wakeup {
                    XDP_USE_NEED_WAKEUP
                } else {
                    0
                }
            }
        };
        let sa = SockaddrXdp {
            family: AF_XDP as u16,
            flags,
            ifindex: cfg.ifindex,
            queue_id: cfg.queue,
            shared_umem_fd: shared_fd.unwrap_or(0) as u32,
        };
        // SAFETY: bind with a correctly sized sockaddr_xdp.
        let r = unsafe {
            libc::bind(
                f,
                &sa as *const SockaddrXdp as *const libc::sockaddr,
                std::mem::size_of::<SockaddrXdp>() as libc::socklen_t,
            )
        };
        cvt("bind(AF_XDP)", r as i64)?;

        let mut opts: u32 = 0;
        let mut optlen = 4 as libc::socklen_t;
        // SAFETY: getsockopt into a u32.
        let r = unsafe {
            libc::getsockopt(
                f,
                SOL_XDP,
                XDP_OPTIONS,
                &mut opts as *mut u32 as *mut libc::c_void,
                &mut optlen,
            )
        };
        let zerocopy = r == 0 && opts & XDP_OPTIONS_ZEROCOPY != 0;
        Ok(XskSocket {
            fd,
            rx,
            tx,
            fill,
            comp,
            ifindex: cfg.ifindex,
            queue: cfg.queue,
            zerocopy,
            need_wakeup: cfg.need_wakeup,
        })
    }

    pub fn fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
    pub fn ifindex(&self) -> u32 {
        self.ifindex
    }
    pub fn queue(&self) -> u32 {
        self.queue
    }
    /// Whether the kernel reports this socket bound in zero-copy mode.
    pub fn is_zerocopy(&self) -> bool {
        self.zerocopy
    }
    pub fn uses_need_wakeup(&self) -> bool {
        self.need_wakeup
    }

    /// Kicks the kernel to transmit what is on the TX ring. Returns the errno on failure; EAGAIN,
    /// EBUSY and ENOBUFS are transient (the ring is drained on a later kick), ENETDOWN means the
    /// link is down.
    #[inline]
    pub fn kick_tx(&self) -> std::result::Result<(), i32> {
        // SAFETY: zero-length sendto on our socket; no buffers are passed.
        let r = unsafe {
            libc::sendto(
                self.fd.as_raw_fd(),
                std::ptr::null(),
                0,
                libc::MSG_DONTWAIT,
                std::ptr::null(),
                0,
            )
        };
        if r < 0 {
            Err(std::io::Error::last_os_error().raw_os_error().unwrap_or(0))
        } else {
            Ok(())
        }
    }

    /// Wakes the driver to refill from the fill ring (when it set need_wakeup on it).
    #[inline]
    pub fn kick_rx(&self) {
        // SAFETY: zero-length recvfrom on our socket; no buffers are passed.
        unsafe {
            libc::recvfrom(
                self.fd.as_raw_fd(),
                std::ptr::null_mut(),
                0,
                libc::MSG_DONTWAIT,
                std::ptr::null_mut(),
                std::ptr::null_mut(),
            )
        };
    }

    pub fn statistics(&self) -> Result<XdpStatistics> {
        statistics(self.fd.as_raw_fd())
    }
}

/// XDP_STATISTICS of an AF_XDP socket by fd (the control thread reads those of sockets PMDs own).
pub fn statistics(fd: RawFd) -> Result<XdpStatistics> {
    let mut st = XdpStatistics::default();
    let mut len = std::mem::size_of::<XdpStatistics>() as libc::socklen_t;
    // SAFETY: getsockopt into a correctly sized struct; a stale fd only yields an error.
    let r = unsafe {
        libc::getsockopt(
            fd,
            SOL_XDP,
            XDP_STATISTICS,
            &mut st as *mut XdpStatistics as *mut libc::c_void,
            &mut len,
        )
    };
    cvt("XDP_STATISTICS", r as i64)?;
    Ok(st)
}

impl std::fmt::Debug for XskSocket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("XskSocket")
            .field("fd", &self.fd.as_raw_fd())
            .field("ifindex", &self.ifindex)
            .field("queue", &self.queue)
            .field("zerocopy", &self.zerocopy)
            .finish()
    }
}

impl XskConfig {
    pub fn new(ifindex: u32, queue: u32, ring: u32, mode: BindMode) -> Self {
        XskConfig {
            ifindex,
            queue,
            rx_size: ring,
            tx_size: ring,
            fill_size: ring,
            // completions lag TX by the time the receiver takes to free the skbs: room for two
            // rings' worth keeps copy-mode TX from stalling on completion-slot reservation
            comp_size: ring * 2,
            mode,
            need_wakeup: true,
            sndbuf: 32 << 20,
        }
    }
}

/// Convenience: whether an error is "the driver cannot do zero-copy" rather than a real failure.
pub fn is_unsupported(e: &Error) -> bool {
    matches!(
        e.errno(),
        Some(libc::EOPNOTSUPP) | Some(libc::EINVAL) | Some(libc::EPROTONOSUPPORT)
    )
}
