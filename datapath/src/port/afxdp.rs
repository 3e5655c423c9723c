//! AF_XDP ports: the XDP program and XSKMAP per interface, attach with mode fallback and stale
//! program replacement, and socket creation per queue into a PMD's UMEM pools.

use std::os::fd::{AsRawFd, OwnedFd};

use afxdp::{asm, bpf, netdev, netlink, socket, sys};
use tracing::{info, warn};

use super::PortError;
use crate::config::{PortConfig, XdpMode};

/// How the XDP program ended up attached.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AttachMode {
    /// In the driver (native XDP).
    Driver,
    /// Generic (SKB) XDP: works on every device, costs an skb per packet.
    Generic,
}

impl AttachMode {
    pub fn as_str(self) -> &'static str {
        match self {
            AttachMode::Driver => "drv",
            AttachMode::Generic => "skb",
        }
    }
}

/// An interface opened as a switch port.
pub struct XdpPort {
    pub name: String,
    pub ifindex: u32,
    pub queues: u32,
    pub config: PortConfig,
    pub driver: String,
    pub attach_mode: Option<AttachMode>,
    pub csum_complete: bool,
    prog: OwnedFd,
    xskmap: OwnedFd,
    link: Option<OwnedFd>,
    /// (queue, socket fd) registered in the XSKMAP; the fds are owned by PMDs.
    pub sockets: Vec<(u32, i32, bool)>,
}

impl std::fmt::Debug for XdpPort {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("XdpPort")
            .field("name", &self.name)
            .field("ifindex", &self.ifindex)
            .field("queues", &self.queues)
            .field("attach_mode", &self.attach_mode)
            .finish()
    }
}

fn xerr(port: &str) -> impl Fn(afxdp::Error) -> PortError + '_ {
    move |source| PortError::Xdp {
        port: port.to_string(),
        source,
    }
}

impl XdpPort {
    /// Looks the interface up and loads its program and XSKMAP (nothing is attached yet).
    pub fn open(cfg: &PortConfig) -> Result<Self, PortError> {
        let name = cfg.name.clone();
        let ifindex = netdev::ifindex(&name).map_err(xerr(&name))?;
        let queues = netdev::rx_queues(&name).max(1);
        let driver = netdev::driver(&name).unwrap_or_else(|| "unknown".into());
        let virtual_dev = matches!(driver.as_str(), "veth" | "tun" | "virtio_net" | "unknown");
        let xskmap = bpf::map_create(bpf::BPF_MAP_TYPE_XSKMAP, 4, 4, queues, "xvs_xsks")
            .map_err(xerr(&name))?;
        let prog = bpf::prog_load_xdp(&asm::xsk_redirect(xskmap.as_raw_fd()), "xvs_redirect")
            .map_err(xerr(&name))?;
        Ok(XdpPort {
            name,
            ifindex,
            queues,
            config: cfg.clone(),
            driver,
            attach_mode: None,
            csum_complete: cfg.csum_complete.unwrap_or(virtual_dev),
            prog,
            xskmap,
            link: None,
            sockets: Vec::new(),
        })
    }

    /// Removes XDP programs another process left attached the legacy way (a killed OVS, `ip
    /// link set xdp`): they would make our attach fail. A program held by a live bpf_link (e.g.
    /// another running xvswitchd) cannot be removed and is reported as an error.
    fn clear_stale(&self) -> Result<(), PortError> {
        let info = netlink::xdp_info(self.ifindex).map_err(xerr(&self.name))?;
        for (id, mode) in info.programs() {
            let pname = bpf::prog_get_fd_by_id(id)
                .and_then(|fd| bpf::prog_name(fd.as_raw_fd()))
                .unwrap_or_else(|_| "?".into());
            warn!(port = %self.name, prog_id = id, prog = %pname, "replacing XDP program left attached on the interface");
            netlink::detach_legacy(self.ifindex, mode).map_err(|e| {
                if e.errno() == Some(libc::EBUSY) {
                    PortError::Other {
                        port: self.name.clone(),
                        msg: format!(
                            "XDP program {pname} (id {id}) is held by another process's bpf_link; \
                             is another switch daemon using this interface?"
                        ),
                    }
                } else {
                    xerr(&self.name)(e)
                }
            })?;
        }
        Ok(())
    }

    /// Attaches the redirect program through a bpf_link: native first (unless generic is asked
    /// for), generic as the fallback. The link is released when the daemon exits, however it
    /// exits, so a killed daemon leaves nothing attached.
    pub fn attach(&mut self) -> Result<AttachMode, PortError> {
        self.clear_stale()?;
        let modes: &[(u32, AttachMode)] = match self.config.xdp_mode {
            XdpMode::BestEffort => &[
                (sys::XDP_FLAGS_DRV_MODE, AttachMode::Driver),
                (sys::XDP_FLAGS_SKB_MODE, AttachMode::Generic),
            ],
            XdpMode::Native | XdpMode::NativeWithZerocopy => {
                &[(sys::XDP_FLAGS_DRV_MODE, AttachMode::Driver)]
            }
            XdpMode::Generic => &[(sys::XDP_FLAGS_SKB_MODE, AttachMode::Generic)],
        };
        let mut last = None;
        for &(flags, mode) in modes {
            match bpf::link_create_xdp(self.prog.as_raw_fd(), self.ifindex, flags) {
                Ok(l) => {
                    self.link = Some(l);
                    self.attach_mode = Some(mode);
                    info!(port = %self.name, mode = mode.as_str(), driver = %self.driver, "XDP program attached");
                    return Ok(mode);
                }
                Err(e) => {
                    info!(port = %self.name, mode = mode.as_str(), error = %e, "XDP attach failed, trying next mode");
                    last = Some(e);
                }
            }
        }
        Err(xerr(&self.name)(last.unwrap_or_else(|| {
            afxdp::Error::Invalid("no XDP mode to try".into())
        })))
    }

    /// Whether sockets should try zero-copy first.
    pub fn wants_zerocopy(&self) -> bool {
        self.attach_mode == Some(AttachMode::Driver)
            && matches!(
                self.config.xdp_mode,
                XdpMode::BestEffort | XdpMode::NativeWithZerocopy
            )
    }

    /// Whether zero-copy is mandatory (fail rather than fall back to copy).
    pub fn requires_zerocopy(&self) -> bool {
        self.config.xdp_mode == XdpMode::NativeWithZerocopy
    }

    /// Directs queue `queue` to the socket `fd`.
    pub fn register(&mut self, queue: u32, fd: i32, zerocopy: bool) -> Result<(), PortError> {
        bpf::map_update(
            self.xskmap.as_raw_fd(),
            &queue.to_ne_bytes(),
            &fd.to_ne_bytes(),
        )
        .map_err(xerr(&self.name))?;
        self.sockets.push((queue, fd, zerocopy));
        Ok(())
    }

    /// Detaches the program (also happens on drop and on process exit).
    pub fn detach(&mut self) {
        if self.link.take().is_some() {
            info!(port = %self.name, "XDP program detached");
        }
        self.attach_mode = None;
    }

    /// Kernel statistics of one of this port's sockets.
    pub fn socket_stats(&self, fd: i32) -> Option<afxdp::XdpStatistics> {
        socket::statistics(fd).ok()
    }
}

/// Socket geometry for one queue.
pub fn xsk_config(
    ifindex: u32,
    queue: u32,
    ring: u32,
    mode: socket::BindMode,
) -> socket::XskConfig {
    socket::XskConfig::new(ifindex, queue, ring, mode)
}
