//! rtnetlink, just enough for XDP: which program is attached to an interface and in which mode,
//! and the legacy (non-link) attach/detach through IFLA_XDP. Used to replace a stale program left
//! by another tool before we attach ours with a bpf_link. Also creates and deletes the veth pair
//! behind a bridge's LOCAL port.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use crate::{cvt, Error, Result};

const RTM_NEWLINK: u16 = 16;
const RTM_DELLINK: u16 = 17;
const RTM_GETLINK: u16 = 18;
const RTM_SETLINK: u16 = 19;
const NLMSG_ERROR: u16 = 2;
const NLM_F_REQUEST: u16 = 1;
const NLM_F_ACK: u16 = 4;
const NLM_F_EXCL: u16 = 0x200;
const NLM_F_CREATE: u16 = 0x400;
const IFLA_IFNAME: u16 = 3;
const IFLA_LINKINFO: u16 = 18;
const IFLA_INFO_KIND: u16 = 1;
const IFLA_INFO_DATA: u16 = 2;
const VETH_INFO_PEER: u16 = 1;
const NLA_F_NESTED: u16 = 0x8000;
const IFLA_XDP: u16 = 43;
const IFLA_XDP_FD: u16 = 1;
const IFLA_XDP_ATTACHED: u16 = 2;
const IFLA_XDP_FLAGS: u16 = 3;
const IFLA_XDP_PROG_ID: u16 = 4;
const IFLA_XDP_DRV_PROG_ID: u16 = 5;
const IFLA_XDP_SKB_PROG_ID: u16 = 6;

/// `XDP_ATTACHED_*` from if_link.h.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum XdpAttached {
    None,
    Driver,
    Generic,
    Hardware,
    Multi,
}

/// What is attached to an interface.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct XdpInfo {
    pub attached: XdpAttached,
    /// Program id for single attachments.
    pub prog_id: u32,
    pub drv_prog_id: u32,
    pub skb_prog_id: u32,
}

impl XdpInfo {
    /// All attached program ids with the attach flag that removes each.
    pub fn programs(&self) -> Vec<(u32, u32)> {
        use crate::sys::{XDP_FLAGS_DRV_MODE, XDP_FLAGS_HW_MODE, XDP_FLAGS_SKB_MODE};
        let mut v = Vec::new();
        match self.attached {
            XdpAttached::None => {}
            XdpAttached::Driver => v.push((self.prog_id, XDP_FLAGS_DRV_MODE)),
            XdpAttached::Generic => v.push((self.prog_id, XDP_FLAGS_SKB_MODE)),
            XdpAttached::Hardware => v.push((self.prog_id, XDP_FLAGS_HW_MODE)),
            XdpAttached::Multi => {
                if self.drv_prog_id != 0 {
                    v.push((self.drv_prog_id, XDP_FLAGS_DRV_MODE));
                }
                if self.skb_prog_id != 0 {
                    v.push((self.skb_prog_id, XDP_FLAGS_SKB_MODE));
                }
            }
        }
        v
    }
}

struct Nl {
    fd: OwnedFd,
    seq: u32,
}

fn push_attr(buf: &mut Vec<u8>, ty: u16, payload: &[u8]) {
    let len = 4 + payload.len();
    buf.extend_from_slice(&(len as u16).to_ne_bytes());
    buf.extend_from_slice(&ty.to_ne_bytes());
    buf.extend_from_slice(payload);
    while !buf.len().is_multiple_of(4) {
        buf.push(0);
    }
}

/// Iterates netlink attributes in `b`: (type without flags, payload).
fn attrs(mut b: &[u8]) -> impl Iterator<Item = (u16, &[u8])> {
    std::iter::from_fn(move || {
        if b.len() < 4 {
            return None;
        }
        let len = u16::from_ne_bytes([b[0], b[1]]) as usize;
        let ty = u16::from_ne_bytes([b[2], b[3]]) & 0x3fff;
        if len < 4 || len > b.len() {
            return None;
        }
        let payload = &b[4..len];
        let adv = (len + 3) & !3;
        b = if adv >= b.len() { &[] } else { &b[adv..] };
        Some((ty, payload))
    })
}

fn u32_of(p: &[u8]) -> u32 {
    if p.len() >= 4 {
        u32::from_ne_bytes([p[0], p[1], p[2], p[3]])
    } else {
        0
    }
}

impl Nl {
    fn open() -> Result<Self> {
        // SAFETY: plain socket(2), fd owned right away.
        let fd = unsafe {
            libc::socket(
                libc::AF_NETLINK,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                libc::NETLINK_ROUTE,
            )
        };
        cvt("socket(NETLINK_ROUTE)", fd as i64)?;
        Ok(Nl {
            // SAFETY: fresh fd we own.
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
            seq: 1,
        })
    }

    /// Sends one request (header + ifinfomsg for `ifindex` + attributes) and returns the reply
    /// payloads (after the nlmsghdr) until the matching response or error.
    fn request(&mut self, ty: u16, flags: u16, ifindex: i32, attrs: &[u8]) -> Result<Vec<u8>> {
        self.seq += 1;
        let mut m = Vec::with_capacity(32 + attrs.len());
        let len = 16 + 16 + attrs.len();
        m.extend_from_slice(&(len as u32).to_ne_bytes());
        m.extend_from_slice(&ty.to_ne_bytes());
        m.extend_from_slice(&(NLM_F_REQUEST | flags).to_ne_bytes());
        m.extend_from_slice(&self.seq.to_ne_bytes());
        m.extend_from_slice(&0u32.to_ne_bytes());
        // ifinfomsg: family, pad, type, index, flags, change
        m.extend_from_slice(&[libc::AF_UNSPEC as u8, 0, 0, 0]);
        m.extend_from_slice(&ifindex.to_ne_bytes());
        m.extend_from_slice(&0u32.to_ne_bytes());
        m.extend_from_slice(&0u32.to_ne_bytes());
        m.extend_from_slice(attrs);
        // SAFETY: send of a live buffer.
        let r = unsafe {
            libc::send(
                self.fd.as_raw_fd(),
                m.as_ptr() as *const libc::c_void,
                m.len(),
                0,
            )
        };
        cvt("netlink send", r as i64)?;
        let mut buf = vec![0u8; 65536];
        loop {
            // SAFETY: recv into a live buffer of the given size.
            let n = unsafe {
                libc::recv(
                    self.fd.as_raw_fd(),
                    buf.as_mut_ptr() as *mut libc::c_void,
                    buf.len(),
                    0,
                )
            };
            let n = cvt("netlink recv", n as i64)? as usize;
            let mut off = 0;
            while off + 16 <= n {
                let mlen = u32_of(&buf[off..]) as usize;
                let mty = u16::from_ne_bytes([buf[off + 4], buf[off + 5]]);
                let mseq = u32_of(&buf[off + 8..]);
                if mlen < 16 || off + mlen > n {
                    return Err(Error::Invalid("truncated netlink reply".into()));
                }
                if mseq == self.seq {
                    let payload = buf[off + 16..off + mlen].to_vec();
                    if mty == NLMSG_ERROR {
                        let errno = -(u32_of(&payload) as i32);
                        if errno != 0 {
                            return Err(Error::Sys {
                                op: "rtnetlink",
                                source: std::io::Error::from_raw_os_error(errno),
                            });
                        }
                        return Ok(Vec::new());
                    }
                    if mty == RTM_NEWLINK {
                        return Ok(payload);
                    }
                }
                off += (mlen + 3) & !3;
            }
        }
    }
}

/// Which XDP program(s) are attached to `ifindex`.
pub fn xdp_info(ifindex: u32) -> Result<XdpInfo> {
    let mut nl = Nl::open()?;
    let p = nl.request(RTM_GETLINK, 0, ifindex as i32, &[])?;
    let mut info = XdpInfo {
        attached: XdpAttached::None,
        prog_id: 0,
        drv_prog_id: 0,
        skb_prog_id: 0,
    };
    if p.len() < 16 {
        return Ok(info);
    }
    for (ty, payload) in attrs(&p[16..]) {
        if ty != IFLA_XDP {
            continue;
        }
        for (t, v) in attrs(payload) {
            match t {
                IFLA_XDP_ATTACHED => {
                    info.attached = match v.first().copied().unwrap_or(0) {
                        1 => XdpAttached::Driver,
                        2 => XdpAttached::Generic,
                        3 => XdpAttached::Hardware,
                        4 => XdpAttached::Multi,
                        _ => XdpAttached::None,
                    }
                }
                IFLA_XDP_PROG_ID => info.prog_id = u32_of(v),
                IFLA_XDP_DRV_PROG_ID => info.drv_prog_id = u32_of(v),
                IFLA_XDP_SKB_PROG_ID => info.skb_prog_id = u32_of(v),
                _ => {}
            }
        }
    }
    Ok(info)
}

fn set_xdp(ifindex: u32, fd: i32, flags: u32) -> Result<()> {
    let mut nested = Vec::new();
    push_attr(&mut nested, IFLA_XDP_FD, &fd.to_ne_bytes());
    push_attr(&mut nested, IFLA_XDP_FLAGS, &flags.to_ne_bytes());
    let mut a = Vec::new();
    push_attr(&mut a, IFLA_XDP | NLA_F_NESTED, &nested);
    let mut nl = Nl::open()?;
    nl.request(RTM_SETLINK, NLM_F_ACK, ifindex as i32, &a)
        .map(|_| ())
}

/// Legacy attach (what `ip link set dev X xdp ...` and libxdp's fallback do). The program stays
/// attached after the process exits: this is how stale programs come to exist.
pub fn attach_legacy(ifindex: u32, prog_fd: i32, mode_flags: u32) -> Result<()> {
    set_xdp(ifindex, prog_fd, mode_flags)
}

/// Removes a legacy-attached program in the given mode. Fails with EBUSY when the program is held
/// by a bpf_link (i.e. a live process owns it).
pub fn detach_legacy(ifindex: u32, mode_flags: u32) -> Result<()> {
    set_xdp(ifindex, -1, mode_flags)
}

/// An interface name as the kernel wants it in IFLA_IFNAME: 1 to 15 bytes, NUL-terminated.
fn ifname_attr(name: &str) -> Result<Vec<u8>> {
    if name.is_empty() || name.len() > 15 || name.contains('\0') {
        return Err(Error::Invalid(format!(
            "{name:?} is not a valid interface name (1 to 15 bytes)"
        )));
    }
    let mut v = name.as_bytes().to_vec();
    v.push(0);
    Ok(v)
}

/// Creates the veth pair `name` <-> `peer` (`ip link add NAME type veth peer name PEER`), both
/// down. Fails with EEXIST if either name is taken: the caller decides what an existing
/// interface means.
pub fn create_veth(name: &str, peer: &str) -> Result<()> {
    // VETH_INFO_PEER carries a whole ifinfomsg followed by the peer's own attributes
    let mut peer_msg = vec![0u8; 16];
    peer_msg[0] = libc::AF_UNSPEC as u8;
    push_attr(&mut peer_msg, IFLA_IFNAME, &ifname_attr(peer)?);
    let mut data = Vec::new();
    push_attr(&mut data, VETH_INFO_PEER | NLA_F_NESTED, &peer_msg);
    let mut info = Vec::new();
    push_attr(&mut info, IFLA_INFO_KIND, b"veth");
    push_attr(&mut info, IFLA_INFO_DATA | NLA_F_NESTED, &data);
    let mut a = Vec::new();
    push_attr(&mut a, IFLA_IFNAME, &ifname_attr(name)?);
    push_attr(&mut a, IFLA_LINKINFO | NLA_F_NESTED, &info);
    let mut nl = Nl::open()?;
    nl.request(RTM_NEWLINK, NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL, 0, &a)
        .map(|_| ())
}

/// Deletes interface `ifindex` (for a veth, both ends go).
pub fn delete_link(ifindex: u32) -> Result<()> {
    let mut nl = Nl::open()?;
    nl.request(RTM_DELLINK, NLM_F_ACK, ifindex as i32, &[])
        .map(|_| ())
}

/// An IPv4 route of the main table (`ip route show table main`), as the tunnel code needs it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Route4 {
    pub dst: [u8; 4],
    pub prefix_len: u8,
    pub gateway: Option<[u8; 4]>,
    pub oif: u32,
    pub prefsrc: Option<[u8; 4]>,
    pub priority: u32,
}

/// An IPv4 address on an interface (`ip -4 addr`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Addr4 {
    pub ifindex: u32,
    pub addr: [u8; 4],
    pub prefix_len: u8,
}

const RTM_GETROUTE: u16 = 26;
const RTM_NEWROUTE: u16 = 24;
const RTM_GETADDR: u16 = 22;
const RTM_NEWADDR: u16 = 20;
const NLMSG_DONE: u16 = 3;
const NLM_F_DUMP: u16 = 0x300;
const RT_TABLE_MAIN: u32 = 254;
const RTN_UNICAST: u8 = 1;

fn ip4(p: &[u8]) -> Option<[u8; 4]> {
    p.get(..4).map(|b| [b[0], b[1], b[2], b[3]])
}

impl Nl {
    /// Sends a dump request (`ty` with family header `hdr`) and collects the payloads of the
    /// `want` messages until NLMSG_DONE.
    fn dump(&mut self, ty: u16, hdr: &[u8], want: u16) -> Result<Vec<Vec<u8>>> {
        self.seq += 1;
        let mut m = Vec::with_capacity(16 + hdr.len());
        m.extend_from_slice(&((16 + hdr.len()) as u32).to_ne_bytes());
        m.extend_from_slice(&ty.to_ne_bytes());
        m.extend_from_slice(&(NLM_F_REQUEST | NLM_F_DUMP).to_ne_bytes());
        m.extend_from_slice(&self.seq.to_ne_bytes());
        m.extend_from_slice(&0u32.to_ne_bytes());
        m.extend_from_slice(hdr);
        // SAFETY: send of a live buffer.
        let r = unsafe {
            libc::send(
                self.fd.as_raw_fd(),
                m.as_ptr() as *const libc::c_void,
                m.len(),
                0,
            )
        };
        cvt("netlink send", r as i64)?;
        let mut out = Vec::new();
        let mut buf = vec![0u8; 65536];
        loop {
            // SAFETY: recv into a live buffer of the given size.
            let n = unsafe {
                libc::recv(
                    self.fd.as_raw_fd(),
                    buf.as_mut_ptr() as *mut libc::c_void,
                    buf.len(),
                    0,
                )
            };
            let n = cvt("netlink recv", n as i64)? as usize;
            let mut off = 0;
            while off + 16 <= n {
                let mlen = u32_of(&buf[off..]) as usize;
                let mty = u16::from_ne_bytes([buf[off + 4], buf[off + 5]]);
                let mseq = u32_of(&buf[off + 8..]);
                if mlen < 16 || off + mlen > n {
                    return Err(Error::Invalid("truncated netlink reply".into()));
                }
                if mseq == self.seq {
                    let payload = &buf[off + 16..off + mlen];
                    match mty {
                        NLMSG_DONE => return Ok(out),
                        NLMSG_ERROR => {
                            let errno = -(u32_of(payload) as i32);
                            if errno != 0 {
                                return Err(Error::Sys {
                                    op: "rtnetlink dump",
                                    source: std::io::Error::from_raw_os_error(errno),
                                });
                            }
                            return Ok(out);
                        }
                        t if t == want => out.push(payload.to_vec()),
                        _ => {}
                    }
                }
                off += (mlen + 3) & !3;
            }
        }
    }
}

/// The unicast IPv4 routes of the main table of this network namespace.
pub fn ipv4_routes() -> Result<Vec<Route4>> {
    let mut nl = Nl::open()?;
    let mut hdr = [0u8; 12];
    hdr[0] = libc::AF_INET as u8;
    let msgs = nl.dump(RTM_GETROUTE, &hdr, RTM_NEWROUTE)?;
    let mut v = Vec::new();
    for p in msgs {
        if p.len() < 12 || p[0] != libc::AF_INET as u8 || p[7] != RTN_UNICAST {
            continue;
        }
        let mut table = p[4] as u32;
        let mut r = Route4 {
            dst: [0; 4],
            prefix_len: p[1],
            gateway: None,
            oif: 0,
            prefsrc: None,
            priority: 0,
        };
        for (ty, a) in attrs(&p[12..]) {
            match ty {
                1 => r.dst = ip4(a).unwrap_or([0; 4]),
                4 => r.oif = u32_of(a),
                5 => r.gateway = ip4(a),
                6 => r.priority = u32_of(a),
                7 => r.prefsrc = ip4(a),
                15 => table = u32_of(a),
                _ => {}
            }
        }
        if table == RT_TABLE_MAIN && r.oif != 0 {
            v.push(r);
        }
    }
    Ok(v)
}

/// The IPv4 addresses of every interface of this network namespace.
pub fn ipv4_addrs() -> Result<Vec<Addr4>> {
    let mut nl = Nl::open()?;
    let mut hdr = [0u8; 8];
    hdr[0] = libc::AF_INET as u8;
    let msgs = nl.dump(RTM_GETADDR, &hdr, RTM_NEWADDR)?;
    let mut v = Vec::new();
    for p in msgs {
        if p.len() < 8 || p[0] != libc::AF_INET as u8 {
            continue;
        }
        let ifindex = u32_of(&p[4..]);
        let mut addr = None;
        for (ty, a) in attrs(&p[8..]) {
            // IFA_LOCAL is the address itself; IFA_ADDRESS the peer on point-to-point links
            match ty {
                2 => addr = ip4(a),
                1 if addr.is_none() => addr = ip4(a),
                _ => {}
            }
        }
        if let Some(addr) = addr {
            v.push(Addr4 {
                ifindex,
                addr,
                prefix_len: p[1],
            });
        }
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attribute_iteration_handles_padding_and_truncation() {
        let mut b = Vec::new();
        push_attr(&mut b, 1, &[1, 2, 3]);
        push_attr(&mut b, 2, &7u32.to_ne_bytes());
        let v: Vec<_> = attrs(&b).collect();
        assert_eq!(v.len(), 2);
        assert_eq!(v[0], (1, &[1u8, 2, 3][..]));
        assert_eq!(u32_of(v[1].1), 7);
        // a length field pointing past the end stops iteration instead of panicking
        let bad = [200u8, 0, 1, 0, 0, 0];
        assert_eq!(attrs(&bad).count(), 0);
    }

    #[test]
    fn dumps_routes_and_addresses() {
        // every namespace has the loopback address; the dumps must at least parse
        let a = ipv4_addrs().unwrap();
        assert!(a.iter().any(|a| a.addr == [127, 0, 0, 1]), "{a:?}");
        ipv4_routes().unwrap();
        assert_eq!(attrs(&[1, 2]).count(), 0);
    }

    #[test]
    fn interface_names_are_checked_before_reaching_the_kernel() {
        assert_eq!(ifname_attr("br0").unwrap(), b"br0\0");
        assert!(ifname_attr("").is_err());
        assert!(ifname_attr("a-name-too-long-").is_err());
        assert!(ifname_attr("nul\0inside").is_err());
        assert!(create_veth("0123456789abcdefg", "x").is_err());
    }
}
