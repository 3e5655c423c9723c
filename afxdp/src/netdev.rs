//! Facts about Linux network interfaces, from sysfs and a couple of ioctls.

use std::ffi::CString;
use std::path::PathBuf;

use crate::{Error, Result};

pub fn ifindex(name: &str) -> Result<u32> {
    let c = CString::new(name).map_err(|_| Error::NoSuchInterface(name.to_string()))?;
    // SAFETY: NUL-terminated string, plain libc call.
    let i = unsafe { libc::if_nametoindex(c.as_ptr()) };
    if i == 0 {
        Err(Error::NoSuchInterface(name.to_string()))
    } else {
        Ok(i)
    }
}

fn sys(name: &str, attr: &str) -> PathBuf {
    PathBuf::from(format!("/sys/class/net/{name}/{attr}"))
}

fn read(name: &str, attr: &str) -> Option<String> {
    std::fs::read_to_string(sys(name, attr))
        .ok()
        .map(|s| s.trim().to_string())
}

/// Number of RX queues (`/sys/class/net/IF/queues/rx-*`); XDP redirects by RX queue index, so
/// this is the number of AF_XDP sockets a port needs.
pub fn rx_queues(name: &str) -> u32 {
    count_queues(name, "rx-")
}

pub fn tx_queues(name: &str) -> u32 {
    count_queues(name, "tx-")
}

fn count_queues(name: &str, prefix: &str) -> u32 {
    match std::fs::read_dir(sys(name, "queues")) {
        Ok(d) => d
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().starts_with(prefix))
            .count()
            .max(1) as u32,
        Err(_) => 1,
    }
}

pub fn mac(name: &str) -> Option<[u8; 6]> {
    let s = read(name, "address")?;
    let mut m = [0u8; 6];
    let mut parts = s.split(':');
    for b in m.iter_mut() {
        *b = u8::from_str_radix(parts.next()?, 16).ok()?;
    }
    Some(m)
}

/// The interface's alias (`ip link set IF alias TEXT`), if one is set. The daemon marks the
/// interfaces it creates with it, to recognise them after a crash.
pub fn ifalias(name: &str) -> Option<String> {
    read(name, "ifalias").filter(|s| !s.is_empty())
}

/// Sets the interface's alias (through sysfs, as `ip link set IF alias TEXT` does by netlink).
pub fn set_ifalias(name: &str, alias: &str) -> Result<()> {
    std::fs::write(sys(name, "ifalias"), alias).map_err(|source| Error::Sys {
        op: "write /sys/class/net/IF/ifalias",
        source,
    })
}

pub fn mtu(name: &str) -> Option<u32> {
    read(name, "mtu")?.parse().ok()
}

/// Link state as the kernel reports it: `(admin up, carrier)`.
pub fn link_state(name: &str) -> (bool, bool) {
    let flags = read(name, "flags")
        .and_then(|s| u32::from_str_radix(s.trim_start_matches("0x"), 16).ok())
        .unwrap_or(0);
    let admin_up = flags & libc::IFF_UP as u32 != 0;
    let carrier = read(name, "carrier").map(|s| s == "1").unwrap_or(false);
    (admin_up, carrier)
}

/// Brings an interface administratively up or down (SIOCGIFFLAGS/SIOCSIFFLAGS on IFF_UP), as
/// ovs-vswitchd does for OpenFlow `mod-port ... up|down`.
pub fn set_admin_up(name: &str, up: bool) -> Result<()> {
    #[repr(C)]
    struct IfReqFlags {
        name: [u8; 16],
        flags: libc::c_short,
        _pad: [u8; 22],
    }
    if name.is_empty() || name.len() >= 16 {
        return Err(Error::NoSuchInterface(name.to_string()));
    }
    let mut req = IfReqFlags {
        name: [0; 16],
        flags: 0,
        _pad: [0; 22],
    };
    req.name[..name.len()].copy_from_slice(name.as_bytes());
    // SAFETY: a datagram socket used only for two ioctls and closed on every path; `req` is a
    // live, correctly sized `struct ifreq` (name + short flags, padded to 40 bytes).
    let rc: std::result::Result<(), std::io::Error> = unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0);
        if fd < 0 {
            return Err(Error::last("socket for SIOCSIFFLAGS"));
        }
        let mut rc = libc::ioctl(fd, libc::SIOCGIFFLAGS as _, &mut req);
        if rc == 0 {
            if up {
                req.flags |= libc::IFF_UP as libc::c_short;
            } else {
                req.flags &= !(libc::IFF_UP as libc::c_short);
            }
            rc = libc::ioctl(fd, libc::SIOCSIFFLAGS as _, &req);
        }
        let err = std::io::Error::last_os_error();
        libc::close(fd);
        if rc == 0 {
            Ok(())
        } else {
            Err(err)
        }
    };
    rc.map_err(|source| Error::Sys {
        op: "SIOCSIFFLAGS",
        source,
    })
}

/// The driver name (veth, tun, mlx5_core, ...), from ETHTOOL_GDRVINFO.
pub fn driver(name: &str) -> Option<String> {
    const SIOCETHTOOL: libc::c_ulong = 0x8946;
    const ETHTOOL_GDRVINFO: u32 = 0x3;
    #[repr(C)]
    struct DrvInfo {
        cmd: u32,
        driver: [u8; 32],
        rest: [u8; 160],
    }
    #[repr(C)]
    struct IfReq {
        name: [u8; 16],
        data: *mut DrvInfo,
        _pad: [u8; 16],
    }
    if name.len() >= 16 {
        return None;
    }
    let mut info = DrvInfo {
        cmd: ETHTOOL_GDRVINFO,
        driver: [0; 32],
        rest: [0; 160],
    };
    let mut req = IfReq {
        name: [0; 16],
        data: &mut info,
        _pad: [0; 16],
    };
    req.name[..name.len()].copy_from_slice(name.as_bytes());
    // SAFETY: a datagram socket only used for the ioctl and closed right after; the ifreq points
    // to a live ethtool_drvinfo large enough for the kernel's copy.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0);
        if fd < 0 {
            return None;
        }
        let r = libc::ioctl(fd, SIOCETHTOOL, &mut req as *mut IfReq);
        libc::close(fd);
        if r < 0 {
            return None;
        }
    }
    let end = info.driver.iter().position(|&c| c == 0).unwrap_or(32);
    Some(String::from_utf8_lossy(&info.driver[..end]).into_owned())
}

/// Creates tap interface `name` (`IFF_TAP | IFF_NO_PI`), as ovs-vswitchd does for
/// `type=tap` interfaces. The interface lives as long as the returned fd is open and has
/// carrier only while it is; the switch reaches it through AF_XDP, not through the fd.
pub fn create_tap(name: &str) -> Result<std::os::fd::OwnedFd> {
    use std::os::fd::FromRawFd;
    const TUNSETIFF: libc::c_ulong = 0x4004_54ca;
    const IFF_TAP: libc::c_short = 0x0002;
    const IFF_NO_PI: libc::c_short = 0x1000;
    #[repr(C)]
    struct IfReqFlags {
        name: [u8; 16],
        flags: libc::c_short,
        _pad: [u8; 22],
    }
    if name.is_empty() || name.len() >= 16 || name.contains('/') {
        return Err(Error::NoSuchInterface(name.to_string()));
    }
    // SAFETY: open(2) of a fixed NUL-terminated path; the fd is owned right after the check.
    let fd = unsafe {
        libc::open(
            c"/dev/net/tun".as_ptr(),
            libc::O_RDWR | libc::O_CLOEXEC | libc::O_NONBLOCK,
        )
    };
    if fd < 0 {
        return Err(Error::last("open /dev/net/tun"));
    }
    // SAFETY: `fd` is a fresh descriptor nothing else owns.
    let fd = unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) };
    let mut req = IfReqFlags {
        name: [0; 16],
        flags: IFF_TAP | IFF_NO_PI,
        _pad: [0; 22],
    };
    req.name[..name.len()].copy_from_slice(name.as_bytes());
    // SAFETY: TUNSETIFF reads and writes a `struct ifreq` (40 bytes), which `req` lays out.
    let rc = unsafe {
        libc::ioctl(
            std::os::fd::AsRawFd::as_raw_fd(&fd),
            TUNSETIFF as _,
            &mut req as *mut IfReqFlags,
        )
    };
    if rc < 0 {
        return Err(Error::last("TUNSETIFF"));
    }
    Ok(fd)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_is_known() {
        assert_eq!(ifindex("lo").unwrap(), 1);
        assert!(rx_queues("lo") >= 1);
        assert!(matches!(
            ifindex("no-such-if0"),
            Err(Error::NoSuchInterface(_))
        ));
        assert!(ifindex("bad\0name").is_err());
        let (up, _) = link_state("lo");
        assert!(up);
    }
}
