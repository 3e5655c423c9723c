//! `type=tap` interfaces: a tap device the switch creates and holds, as ovs-vswitchd does on
//! the userspace datapath. The switch polls it through AF_XDP like any other interface (what
//! the host stack sends on the tap enters the bridge; what the bridge outputs to it the host
//! receives), and the fd only keeps the device (and its carrier) alive: the device goes away
//! when the port is deleted or the daemon exits.

use std::os::fd::OwnedFd;

use afxdp::netdev;
use tracing::info;

use super::PortError;

#[derive(Debug)]
pub struct TapPort {
    pub name: String,
    _fd: OwnedFd,
}

impl TapPort {
    /// Creates tap `name` (or attaches to a persistent tap of that name nobody holds) and
    /// brings it up.
    pub fn create(name: &str) -> Result<TapPort, PortError> {
        let xerr = |source| PortError::Xdp {
            port: name.to_string(),
            source,
        };
        let fd = netdev::create_tap(name).map_err(|e| {
            if e.errno() == Some(libc::EBUSY) || e.errno() == Some(libc::EINVAL) {
                PortError::Other {
                    port: name.to_string(),
                    msg: format!(
                        "cannot create tap {name}: an interface of that name exists and is not a \
                         free tap ({e})"
                    ),
                }
            } else {
                xerr(e)
            }
        })?;
        netdev::set_admin_up(name, true).map_err(xerr)?;
        info!(port = name, "tap created");
        Ok(TapPort {
            name: name.to_string(),
            _fd: fd,
        })
    }
}
