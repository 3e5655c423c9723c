//! `xvs-perf labtool`: fast stand-ins for the reference lab's Python `labtool.py send|recv|rarp`
//! (same arguments, same log formats, same 64-byte payload), used by perf/migration.sh.
//!
//! Why: the Python sender managed ~10 kpps with multi-millisecond scheduling gaps, so "activation
//! to first delivered packet" measured the sender's next datagram, not the switch. This one paces
//! on absolute `clock_nanosleep` deadlines with a 1 ns timer slack (steady spacing without
//! spinning a core of a 2-core machine), the receiver logs the kernel's arrival timestamp
//! (`SO_TIMESTAMPNS`, not when the process got scheduled), and the RARP announcer downs the
//! source interface and sends the first RARP a few microseconds later ("instant source stop").
//!
//! ```text
//! xvs-perf labtool send DST PORT INTERVAL_S DURATION_S LOGFILE     logs "seq t_send"
//! xvs-perf labtool recv BIND_IP PORT LOGFILE [READYFILE]           logs "seq t_recv t_send"
//! xvs-perf labtool rarp IFNAME MAC OFFSETS_MS LOGFILE [STOP_NETNS STOP_IFNAME]
//!                                                                  logs "n t_sent" [+ "stop t"]
//! ```
//! Payload: 8-byte big-endian sequence number, 8-byte big-endian f64 send time (wall clock, s),
//! 48 bytes of `x`. Times in the logs are wall-clock seconds with microsecond digits.

use std::io::Write;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::util;

const PAYLOAD: usize = 64;

pub fn main(args: &[String]) -> i32 {
    util::install_signal_handlers();
    let r = match args.first().map(String::as_str) {
        Some("send") if args.len() == 6 => send(&args[1..]),
        Some("recv") if args.len() == 4 || args.len() == 5 => recv(&args[1..]),
        Some("rarp") if args.len() == 5 || args.len() == 7 => rarp(&args[1..]),
        _ => Err("usage: xvs-perf labtool send|recv|rarp ARGS (see perf/src/labtool.rs)".into()),
    };
    match r {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("xvs-perf labtool: {e}");
            1
        }
    }
}

fn wall() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

fn mono_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec we own.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

fn sleep_until_mono(ns: u64) {
    let ts = libc::timespec {
        tv_sec: (ns / 1_000_000_000) as libc::time_t,
        tv_nsec: (ns % 1_000_000_000) as libc::c_long,
    };
    // SAFETY: absolute sleep on a timespec we own; no remainder needed with TIMER_ABSTIME.
    unsafe {
        libc::clock_nanosleep(
            libc::CLOCK_MONOTONIC,
            libc::TIMER_ABSTIME,
            &ts,
            std::ptr::null_mut(),
        )
    };
}

/// 1 ns timer slack and SCHED_FIFO (best effort): on a loaded 2-core machine a normal-priority
/// sender waits milliseconds behind compilers now and then, and its gaps would be charged to
/// the switch (and a starved receiver overflows its socket buffer: losses that are not the
/// switch's). Their wake-ups are short (one sendto / recvmsg), so they take little from anyone.
fn realtime() {
    let p = libc::sched_param { sched_priority: 10 };
    // SAFETY: prctl with integer arguments only; sched_setscheduler reads a param we own.
    unsafe {
        libc::prctl(libc::PR_SET_TIMERSLACK, 1 as libc::c_ulong, 0, 0, 0);
        libc::sched_setscheduler(0, libc::SCHED_FIFO, &p);
    }
}

fn setsockopt_int(fd: i32, level: i32, name: i32, v: i32) -> std::io::Result<()> {
    // SAFETY: passes a pointer to an i32 we own and its size.
    let r = unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            &v as *const i32 as *const libc::c_void,
            std::mem::size_of::<i32>() as libc::socklen_t,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

fn num<T: std::str::FromStr>(s: &str, what: &str) -> Result<T, String> {
    s.parse().map_err(|_| format!("{what}: bad number {s:?}"))
}

fn write_log(path: &str, body: &str) -> Result<(), String> {
    std::fs::File::create(path)
        .and_then(|mut f| f.write_all(body.as_bytes()))
        .map_err(|e| format!("{path}: {e}"))
}

/// Paced UDP sender: datagram k leaves at start + k * interval (absolute deadlines: a late
/// wake-up does not shift the rest of the stream; more than 50 ms behind restarts the schedule
/// instead of bursting).
fn send(a: &[String]) -> Result<(), String> {
    let dst: std::net::IpAddr = num(&a[0], "DST")?;
    let port: u16 = num(&a[1], "PORT")?;
    let iv: f64 = num(&a[2], "INTERVAL_S")?;
    let dur: f64 = num(&a[3], "DURATION_S")?;
    let s = UdpSocket::bind("0.0.0.0:0").map_err(|e| format!("bind: {e}"))?;
    s.connect(SocketAddr::new(dst, port))
        .map_err(|e| format!("connect: {e}"))?;
    // no UDP checksum (as the Python sender): the veths offload nothing in the lab
    let _ = setsockopt_int(s.as_raw_fd(), libc::SOL_SOCKET, libc::SO_NO_CHECK, 1);
    realtime();
    let iv_ns = ((iv * 1e9) as u64).max(1);
    let n_max = (dur / iv) as usize + 16;
    let mut log: Vec<(u64, f64)> = Vec::with_capacity(n_max);
    let mut buf = [b'x'; PAYLOAD];
    let t0 = mono_ns();
    let end = t0 + (dur * 1e9) as u64;
    let mut nxt = t0;
    let mut seq = 0u64;
    while !util::stopped() {
        let now = mono_ns();
        if now >= end {
            break;
        }
        if now < nxt {
            sleep_until_mono(nxt);
            continue;
        }
        let ts = wall();
        buf[..8].copy_from_slice(&seq.to_be_bytes());
        buf[8..16].copy_from_slice(&ts.to_be_bytes());
        let ok = s.send(&buf).is_ok();
        log.push((seq, if ok { ts } else { -1.0 }));
        seq += 1;
        nxt += iv_ns;
        if nxt + 50_000_000 < mono_ns() {
            nxt = mono_ns();
        }
    }
    let mut out = String::with_capacity(log.len() * 28);
    for (q, ts) in log {
        out.push_str(&format!("{q} {ts:.6}\n"));
    }
    write_log(&a[4], &out)
}

/// UDP receiver logging the kernel's receive timestamp of every datagram until SIGTERM/SIGINT.
fn recv(a: &[String]) -> Result<(), String> {
    let ip: std::net::IpAddr = num(&a[0], "BIND_IP")?;
    let port: u16 = num(&a[1], "PORT")?;
    let s = UdpSocket::bind(SocketAddr::new(ip, port)).map_err(|e| format!("bind: {e}"))?;
    let fd = s.as_raw_fd();
    let _ = setsockopt_int(fd, libc::SOL_SOCKET, libc::SO_RCVBUFFORCE, 8 << 20)
        .or_else(|_| setsockopt_int(fd, libc::SOL_SOCKET, libc::SO_RCVBUF, 8 << 20));
    // the receiver must not fall behind the SCHED_FIFO sender and switch daemons either
    realtime();
    setsockopt_int(fd, libc::SOL_SOCKET, libc::SO_TIMESTAMPNS, 1)
        .map_err(|e| format!("SO_TIMESTAMPNS: {e}"))?;
    s.set_read_timeout(Some(Duration::from_millis(200)))
        .map_err(|e| format!("timeout: {e}"))?;
    if let Some(r) = a.get(3) {
        write_log(r, "")?;
    }
    let mut log: Vec<(u64, f64, f64)> = Vec::with_capacity(1 << 20);
    let mut data = [0u8; 2048];
    let mut cbuf = [0u64; 16];
    while !util::stopped() {
        let mut iov = libc::iovec {
            iov_base: data.as_mut_ptr() as *mut libc::c_void,
            iov_len: data.len(),
        };
        // SAFETY: msghdr is plain data; zeroed is a valid empty header.
        let mut mh: libc::msghdr = unsafe { std::mem::zeroed() };
        mh.msg_iov = &mut iov;
        mh.msg_iovlen = 1;
        mh.msg_control = cbuf.as_mut_ptr() as *mut libc::c_void;
        mh.msg_controllen = std::mem::size_of_val(&cbuf) as _;
        // SAFETY: the header points at our buffers, which outlive the call.
        let n = unsafe { libc::recvmsg(fd, &mut mh, 0) };
        if n < 0 {
            continue; // timeout (to check for the signal) or EINTR
        }
        let n = n as usize;
        let mut t = None;
        // SAFETY: walks the control messages the kernel wrote inside cbuf, per cmsg(3).
        unsafe {
            let mut c = libc::CMSG_FIRSTHDR(&mh);
            while !c.is_null() {
                if (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == libc::SCM_TIMESTAMPNS {
                    let ts = std::ptr::read_unaligned(libc::CMSG_DATA(c) as *const libc::timespec);
                    t = Some(ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9);
                }
                c = libc::CMSG_NXTHDR(&mh, c);
            }
        }
        let t = t.unwrap_or_else(wall);
        if n >= 16 {
            let q = u64::from_be_bytes(data[..8].try_into().unwrap_or_default());
            let ts = f64::from_be_bytes(data[8..16].try_into().unwrap_or_default());
            log.push((q, t, ts));
        }
    }
    let mut out = String::with_capacity(log.len() * 40);
    for (q, t, ts) in log {
        out.push_str(&format!("{q} {t:.6} {ts:.6}\n"));
    }
    write_log(&a[2], &out)
}

/// Sets IFNAME down inside network namespace NETNS (this process moves there; sockets opened
/// before stay in their namespace).
fn if_down_in_netns(netns: &str, ifname: &str) -> Result<(), String> {
    let f = std::fs::File::open(format!("/var/run/netns/{netns}"))
        .map_err(|e| format!("netns {netns}: {e}"))?;
    // SAFETY: setns on a namespace fd we own; this process is single-threaded.
    if unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
        return Err(format!(
            "setns {netns}: {}",
            std::io::Error::last_os_error()
        ));
    }
    let s = UdpSocket::bind("0.0.0.0:0").map_err(|e| format!("socket: {e}"))?;
    // SAFETY: ifreq is plain data; zeroed is valid.
    let mut ifr: libc::ifreq = unsafe { std::mem::zeroed() };
    for (d, b) in ifr.ifr_name.iter_mut().zip(ifname.bytes().take(15)) {
        *d = b as libc::c_char;
    }
    // SAFETY: SIOCGIFFLAGS/SIOCSIFFLAGS read and write the ifreq we own.
    unsafe {
        if libc::ioctl(s.as_raw_fd(), libc::SIOCGIFFLAGS, &mut ifr) != 0 {
            return Err(format!(
                "SIOCGIFFLAGS {ifname}: {}",
                std::io::Error::last_os_error()
            ));
        }
        ifr.ifr_ifru.ifru_flags &= !(libc::IFF_UP as libc::c_short);
        if libc::ioctl(s.as_raw_fd(), libc::SIOCSIFFLAGS, &ifr) != 0 {
            return Err(format!(
                "SIOCSIFFLAGS {ifname}: {}",
                std::io::Error::last_os_error()
            ));
        }
    }
    Ok(())
}

/// QEMU-style announces: 60-byte broadcast RARP "reverse request" (opcode 3) from MAC, at the
/// given offsets (ms) after the (optional) source stop.
fn rarp(a: &[String]) -> Result<(), String> {
    let mac = util::parse_mac(&a[1]).ok_or_else(|| format!("bad MAC {:?}", a[1]))?;
    let offs: Vec<f64> = a[2]
        .split(',')
        .map(|x| num::<f64>(x, "OFFSETS_MS"))
        .collect::<Result<_, _>>()?;
    let mut frame = [0u8; 60];
    frame[..6].fill(0xff);
    frame[6..12].copy_from_slice(&mac);
    frame[12..14].copy_from_slice(&0x8035u16.to_be_bytes());
    frame[14..22].copy_from_slice(&[0, 1, 0x08, 0, 6, 4, 0, 3]);
    frame[22..28].copy_from_slice(&mac);
    frame[32..38].copy_from_slice(&mac);
    let name = std::ffi::CString::new(a[0].as_str()).map_err(|_| "bad IFNAME".to_string())?;
    // SAFETY: if_nametoindex reads a NUL-terminated string we own.
    let ifindex = unsafe { libc::if_nametoindex(name.as_ptr()) };
    if ifindex == 0 {
        return Err(format!("no interface {}", a[0]));
    }
    // SAFETY: plain socket(2) call; the fd is owned below.
    let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW, 0) };
    if fd < 0 {
        return Err(format!("AF_PACKET: {}", std::io::Error::last_os_error()));
    }
    // SAFETY: fd is a fresh socket nobody else owns.
    let sock: std::os::fd::OwnedFd = unsafe { std::os::fd::FromRawFd::from_raw_fd(fd) };
    // SAFETY: sockaddr_ll is plain data; zeroed is valid.
    let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    sll.sll_family = libc::AF_PACKET as u16;
    sll.sll_ifindex = ifindex as i32;
    // SAFETY: binds our socket to a sockaddr_ll we own, with its size.
    let r = unsafe {
        libc::bind(
            sock.as_raw_fd(),
            &sll as *const libc::sockaddr_ll as *const libc::sockaddr,
            std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
        )
    };
    if r != 0 {
        return Err(format!(
            "bind {}: {}",
            a[0],
            std::io::Error::last_os_error()
        ));
    }
    realtime();
    let mut t_stop = None;
    if a.len() == 6 {
        if_down_in_netns(&a[4], &a[5])?;
        t_stop = Some(wall());
    }
    let t0 = mono_ns();
    let mut out = String::new();
    for (i, off) in offs.iter().enumerate() {
        sleep_until_mono(t0 + (off * 1e6) as u64);
        let ts = wall();
        // SAFETY: sends our frame buffer on our bound socket.
        let r = unsafe {
            libc::send(
                sock.as_raw_fd(),
                frame.as_ptr() as *const libc::c_void,
                frame.len(),
                0,
            )
        };
        if r < 0 {
            return Err(format!("send: {}", std::io::Error::last_os_error()));
        }
        out.push_str(&format!("{i} {ts:.6}\n"));
    }
    if let Some(t) = t_stop {
        out.push_str(&format!("stop {t:.6}\n"));
    }
    write_log(&a[3], &out)
}
