//! The bridge's LOCAL port (OpenFlow port LOCAL: 0xfffe in OpenFlow 1.0, 0xfffffffe later): the
//! host's own interface on the bridge, named like the bridge, as Open vSwitch's internal port.
//! Addresses configured on it make the host a station on the bridge; flows match it with
//! `in_port=LOCAL` and send to it with `output:LOCAL`; NORMAL, FLOOD and ALL include it.
//!
//! OVS's userspace datapath makes it a tap whose file descriptor ovs-vswitchd reads and writes.
//! Our ports are AF_XDP sockets, and AF_XDP on a tap sits on the other side of it: XDP sees what
//! is written into the tap's fd and XDP transmits come out of that fd, so the host stack would
//! be the switch's peer only through a process holding the fd. A veth pair has no such
//! asymmetry: the host keeps one end, named like the bridge, and the daemon opens the other end
//! (a peer named `xvsl` + a hash of the bridge name) as an ordinary AF_XDP port whose OpenFlow
//! number is LOCAL. What the host sends on `BRIDGE` enters the pipeline from LOCAL; what the
//! pipeline outputs to LOCAL is received by the host on `BRIDGE`.
//!
//! Unlike a tap the pair outlives a killed daemon, so both ends carry an interface alias naming
//! their bridge: the next start recognises such a leftover and replaces it, and refuses any
//! other interface that holds the bridge's name rather than take it over.

use afxdp::{netdev, netlink};
use tracing::{info, warn};

use super::PortError;
use crate::config::{PortConfig, XdpMode};

/// The alias of both ends of a LOCAL port's veth pair, followed by the bridge name.
pub const ALIAS_PREFIX: &str = "xvswitchd LOCAL port of bridge ";

/// A bridge's LOCAL port interface pair, deleted when dropped (on every exit path of the
/// daemon but a kill, which the next start repairs).
#[derive(Debug)]
pub struct LocalPort {
    /// The host's interface: the bridge's name.
    pub name: String,
    /// The daemon's end, opened as the AF_XDP port.
    pub peer: String,
    ifindex: u32,
}

/// The daemon-side end's name: `xvsl` and 8 hex digits of the bridge name's FNV-1a hash, so it
/// fits the kernel's 15 bytes whatever the bridge's name and stays the same from run to run.
pub fn peer_name(bridge: &str) -> String {
    let mut h: u32 = 0x811c_9dc5;
    for b in bridge.bytes() {
        h = (h ^ b as u32).wrapping_mul(0x0100_0193);
    }
    format!("xvsl{h:08x}")
}

fn alias(bridge: &str) -> String {
    format!("{ALIAS_PREFIX}{bridge}")
}

fn err(port: &str, msg: String) -> PortError {
    PortError::Other {
        port: port.to_string(),
        msg,
    }
}

fn xerr(port: &str) -> impl Fn(afxdp::Error) -> PortError + '_ {
    move |source| PortError::Xdp {
        port: port.to_string(),
        source,
    }
}

impl LocalPort {
    /// Creates the pair for `bridge`, marks both ends and brings them up, first replacing a pair
    /// a killed daemon left behind.
    pub fn create(bridge: &str) -> Result<LocalPort, PortError> {
        if bridge.is_empty() || bridge.len() > 15 {
            return Err(err(
                bridge,
                format!(
                    "bridge name {bridge:?} cannot name its LOCAL port interface: interface names \
                     have 1 to 15 bytes (IFNAMSIZ - 1)"
                ),
            ));
        }
        let peer = peer_name(bridge);
        remove_stale(bridge, &peer)?;
        netlink::create_veth(bridge, &peer).map_err(|e| {
            if e.errno() == Some(libc::EEXIST) {
                err(
                    bridge,
                    format!(
                        "cannot create the LOCAL port: interface {peer} already exists and is not \
                         a LOCAL port xvswitchd left behind"
                    ),
                )
            } else {
                xerr(bridge)(e)
            }
        })?;
        let ifindex = netdev::ifindex(bridge).map_err(xerr(bridge))?;
        // from here on the pair is deleted on any error, by drop
        let lp = LocalPort {
            name: bridge.to_string(),
            peer: peer.clone(),
            ifindex,
        };
        for dev in [bridge, peer.as_str()] {
            netdev::set_ifalias(dev, &alias(bridge)).map_err(xerr(dev))?;
            netdev::set_admin_up(dev, true).map_err(xerr(dev))?;
        }
        info!(bridge, peer = %peer, "LOCAL port created");
        Ok(lp)
    }

    /// The AF_XDP port configuration of the daemon's end (veth: generic or native copy mode,
    /// whichever attaches; checksums completed as on any virtual device).
    pub fn peer_config(&self) -> PortConfig {
        PortConfig {
            name: self.peer.clone(),
            xdp_mode: XdpMode::BestEffort,
            csum_complete: None,
            tunnel: None,
            patch: None,
        }
    }
}

impl Drop for LocalPort {
    fn drop(&mut self) {
        // only if the name still denotes the pair we made
        if netdev::ifindex(&self.name).ok() != Some(self.ifindex) {
            return;
        }
        match netlink::delete_link(self.ifindex) {
            Ok(()) => info!(bridge = %self.name, "LOCAL port deleted"),
            Err(e) => warn!(bridge = %self.name, error = %e, "cannot delete the LOCAL port"),
        }
    }
}

/// Deletes a LOCAL port pair of `bridge` left by a daemon that did not exit cleanly. An
/// interface of either name that is not such a leftover, or a pair still in use (an XDP
/// program is attached to its daemon end: another xvswitchd serves this bridge), is an error.
fn remove_stale(bridge: &str, peer: &str) -> Result<(), PortError> {
    let mark = alias(bridge);
    for dev in [bridge, peer] {
        let Ok(ifindex) = netdev::ifindex(dev) else {
            continue;
        };
        let ours = netdev::ifalias(dev).as_deref() == Some(mark.as_str())
            && netdev::driver(dev).as_deref() == Some("veth");
        if !ours {
            return Err(err(
                bridge,
                format!(
                    "interface {dev} already exists and is not a LOCAL port left by xvswitchd; \
                     the bridge's LOCAL port needs that name (remove the interface, choose \
                     another bridge name, or start with --no-local-port)"
                ),
            ));
        }
        if let Ok(pi) = netdev::ifindex(peer) {
            let busy = netlink::xdp_info(pi)
                .map(|i| !i.programs().is_empty())
                .unwrap_or(false);
            if busy {
                return Err(err(
                    bridge,
                    format!(
                        "the LOCAL port {bridge} is in use (an XDP program is attached to {peer}): \
                         is another xvswitchd serving a bridge of this name?"
                    ),
                ));
            }
        }
        warn!(bridge, interface = %dev, "replacing the LOCAL port a previous xvswitchd left behind");
        match netlink::delete_link(ifindex) {
            Ok(()) => {}
            // deleting one end of a veth took the other with it
            Err(e) if e.errno() == Some(libc::ENODEV) => {}
            Err(e) => return Err(xerr(dev)(e)),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peer_names_fit_and_are_stable() {
        let a = peer_name("br0");
        assert_eq!(a, peer_name("br0"));
        assert_ne!(a, peer_name("br1"));
        assert!(a.len() <= 15);
        assert!(peer_name("a-fifteen-bytes").len() <= 15);
    }

    #[test]
    fn long_bridge_names_are_refused_clearly() {
        let e = LocalPort::create("a-sixteen-bytes!")
            .unwrap_err()
            .to_string();
        assert!(e.contains("1 to 15 bytes"), "{e}");
    }
}
