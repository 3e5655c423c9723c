//! A minimal bpf(2) wrapper: maps, program load, XDP links, object info and BPF_PROG_RUN.
//! No libbpf and no ELF: programs are instruction arrays built by [`crate::asm`].

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use crate::{Error, Result};

pub const BPF_MAP_CREATE: i32 = 0;
pub const BPF_MAP_LOOKUP_ELEM: i32 = 1;
pub const BPF_MAP_UPDATE_ELEM: i32 = 2;
pub const BPF_MAP_DELETE_ELEM: i32 = 3;
pub const BPF_PROG_LOAD: i32 = 5;
pub const BPF_PROG_TEST_RUN: i32 = 10;
pub const BPF_PROG_GET_FD_BY_ID: i32 = 13;
pub const BPF_OBJ_GET_INFO_BY_FD: i32 = 15;
pub const BPF_LINK_CREATE: i32 = 28;

pub const BPF_MAP_TYPE_ARRAY: u32 = 2;
pub const BPF_MAP_TYPE_PERCPU_ARRAY: u32 = 6;
pub const BPF_MAP_TYPE_DEVMAP: u32 = 14;
pub const BPF_MAP_TYPE_XSKMAP: u32 = 17;

pub const BPF_PROG_TYPE_XDP: u32 = 6;
/// `enum bpf_attach_type` value for XDP links.
pub const BPF_XDP: u32 = 37;
pub const BPF_F_TEST_XDP_LIVE_FRAMES: u32 = 1 << 1;

const ATTR_LEN: usize = 144;

/// `union bpf_attr`, filled field by field at the offsets of include/uapi/linux/bpf.h.
#[repr(C, align(8))]
struct Attr([u8; ATTR_LEN]);

impl Attr {
    fn new() -> Self {
        Attr([0u8; ATTR_LEN])
    }
    fn u32(&mut self, off: usize, v: u32) -> &mut Self {
        self.0[off..off + 4].copy_from_slice(&v.to_ne_bytes());
        self
    }
    fn u64(&mut self, off: usize, v: u64) -> &mut Self {
        self.0[off..off + 8].copy_from_slice(&v.to_ne_bytes());
        self
    }
    fn get_u32(&self, off: usize) -> u32 {
        let mut b = [0u8; 4];
        b.copy_from_slice(&self.0[off..off + 4]);
        u32::from_ne_bytes(b)
    }
    fn name(&mut self, off: usize, name: &str) -> &mut Self {
        let b = name.as_bytes();
        let n = b.len().min(15);
        self.0[off..off + n].copy_from_slice(&b[..n]);
        self
    }
}

fn sys_bpf(cmd: i32, attr: &mut Attr, op: &'static str) -> Result<i64> {
    // SAFETY: the attr buffer is ATTR_LEN bytes and any pointers stored in it point to live
    // buffers owned by the caller for the duration of the call.
    let r = unsafe { libc::syscall(libc::SYS_bpf, cmd, attr.0.as_mut_ptr(), ATTR_LEN as u32) };
    crate::cvt(op, r)
}

fn owned(fd: i64) -> OwnedFd {
    // SAFETY: the kernel just returned this fd to us; nobody else owns it.
    unsafe { OwnedFd::from_raw_fd(fd as RawFd) }
}

/// Creates a map; the name is truncated to 15 bytes.
pub fn map_create(
    map_type: u32,
    key_size: u32,
    value_size: u32,
    max_entries: u32,
    name: &str,
) -> Result<OwnedFd> {
    let mut a = Attr::new();
    a.u32(0, map_type)
        .u32(4, key_size)
        .u32(8, value_size)
        .u32(12, max_entries)
        .name(28, name);
    sys_bpf(BPF_MAP_CREATE, &mut a, "BPF_MAP_CREATE").map(owned)
}

pub fn map_update(fd: RawFd, key: &[u8], value: &[u8]) -> Result<()> {
    let mut a = Attr::new();
    a.u32(0, fd as u32)
        .u64(8, key.as_ptr() as u64)
        .u64(16, value.as_ptr() as u64);
    sys_bpf(BPF_MAP_UPDATE_ELEM, &mut a, "BPF_MAP_UPDATE_ELEM").map(|_| ())
}

pub fn map_delete(fd: RawFd, key: &[u8]) -> Result<()> {
    let mut a = Attr::new();
    a.u32(0, fd as u32).u64(8, key.as_ptr() as u64);
    sys_bpf(BPF_MAP_DELETE_ELEM, &mut a, "BPF_MAP_DELETE_ELEM").map(|_| ())
}

pub fn map_lookup(fd: RawFd, key: &[u8], value: &mut [u8]) -> Result<()> {
    let mut a = Attr::new();
    a.u32(0, fd as u32)
        .u64(8, key.as_ptr() as u64)
        .u64(16, value.as_mut_ptr() as u64);
    sys_bpf(BPF_MAP_LOOKUP_ELEM, &mut a, "BPF_MAP_LOOKUP_ELEM").map(|_| ())
}

/// Loads an XDP program. On failure, loads again with the verifier log on and returns it.
pub fn prog_load_xdp(insns: &[u64], name: &str) -> Result<OwnedFd> {
    let license = b"GPL\0";
    let mut a = Attr::new();
    a.u32(0, BPF_PROG_TYPE_XDP)
        .u32(4, insns.len() as u32)
        .u64(8, insns.as_ptr() as u64)
        .u64(16, license.as_ptr() as u64)
        .name(48, name);
    match sys_bpf(BPF_PROG_LOAD, &mut a, "BPF_PROG_LOAD") {
        Ok(fd) => Ok(owned(fd)),
        Err(first) => {
            let mut log = vec![0u8; 1 << 16];
            let mut a = Attr::new();
            a.u32(0, BPF_PROG_TYPE_XDP)
                .u32(4, insns.len() as u32)
                .u64(8, insns.as_ptr() as u64)
                .u64(16, license.as_ptr() as u64)
                .u32(24, 1)
                .u32(28, log.len() as u32)
                .u64(32, log.as_mut_ptr() as u64)
                .name(48, name);
            match sys_bpf(BPF_PROG_LOAD, &mut a, "BPF_PROG_LOAD") {
                Ok(fd) => Ok(owned(fd)),
                Err(e) => {
                    let end = log.iter().position(|&c| c == 0).unwrap_or(0);
                    let source = match e {
                        Error::Sys { source, .. } => source,
                        _ => match first {
                            Error::Sys { source, .. } => source,
                            other => return Err(other),
                        },
                    };
                    Err(Error::Verifier {
                        name: name.to_string(),
                        source,
                        log: String::from_utf8_lossy(&log[..end]).into_owned(),
                    })
                }
            }
        }
    }
}

/// Attaches an XDP program to an interface through a bpf_link. The program stays attached as long
/// as the returned fd is open, so it is detached when the process exits, however it exits.
pub fn link_create_xdp(prog_fd: RawFd, ifindex: u32, flags: u32) -> Result<OwnedFd> {
    let mut a = Attr::new();
    a.u32(0, prog_fd as u32)
        .u32(4, ifindex)
        .u32(8, BPF_XDP)
        .u32(12, flags);
    sys_bpf(BPF_LINK_CREATE, &mut a, "BPF_LINK_CREATE(XDP)").map(owned)
}

pub fn prog_get_fd_by_id(id: u32) -> Result<OwnedFd> {
    let mut a = Attr::new();
    a.u32(0, id);
    sys_bpf(BPF_PROG_GET_FD_BY_ID, &mut a, "BPF_PROG_GET_FD_BY_ID").map(owned)
}

/// The name a loaded program was given (`bpf_prog_info.name`).
pub fn prog_name(fd: RawFd) -> Result<String> {
    let mut info = [0u8; 256];
    let mut a = Attr::new();
    a.u32(0, fd as u32)
        .u32(4, info.len() as u32)
        .u64(8, info.as_mut_ptr() as u64);
    sys_bpf(BPF_OBJ_GET_INFO_BY_FD, &mut a, "BPF_OBJ_GET_INFO_BY_FD")?;
    let name = &info[64..80];
    let end = name.iter().position(|&c| c == 0).unwrap_or(16);
    Ok(String::from_utf8_lossy(&name[..end]).into_owned())
}

/// BPF_PROG_RUN in live-frames mode: the kernel builds `repeat` real xdp_frames from `data` and
/// acts on the program's verdict (a redirect, for a traffic generator). Returns the kernel's
/// reported duration in ns per run.
pub fn prog_test_run_live(prog_fd: RawFd, data: &[u8], repeat: u32, batch: u32) -> Result<u32> {
    let mut a = Attr::new();
    a.u32(0, prog_fd as u32)
        .u32(8, data.len() as u32)
        .u64(16, data.as_ptr() as u64)
        .u32(32, repeat)
        .u32(64, BPF_F_TEST_XDP_LIVE_FRAMES)
        .u32(72, batch);
    sys_bpf(BPF_PROG_TEST_RUN, &mut a, "BPF_PROG_TEST_RUN")?;
    Ok(a.get_u32(36))
}

/// Number of possible CPUs, the stride of per-CPU map values.
pub fn possible_cpus() -> usize {
    let s = std::fs::read_to_string("/sys/devices/system/cpu/possible").unwrap_or_default();
    let mut n = 0usize;
    for part in s.trim().split(',').filter(|p| !p.is_empty()) {
        let hi = part.rsplit('-').next().unwrap_or("0");
        n = n.max(hi.parse::<usize>().unwrap_or(0) + 1);
    }
    n.max(1)
}

/// A per-CPU array of `slots` u64 counters, summed over CPUs on read.
pub struct PerCpuCounters {
    fd: OwnedFd,
    ncpu: usize,
    slots: u32,
}

impl PerCpuCounters {
    pub fn new(name: &str, slots: u32) -> Result<Self> {
        let fd = map_create(BPF_MAP_TYPE_PERCPU_ARRAY, 4, 8, slots, name)?;
        Ok(PerCpuCounters {
            fd,
            ncpu: possible_cpus(),
            slots,
        })
    }
    pub fn fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
    pub fn slots(&self) -> u32 {
        self.slots
    }
    /// Sum over CPUs of counter `slot`.
    pub fn total(&self, slot: u32) -> u64 {
        let key = slot.to_ne_bytes();
        let mut buf = vec![0u8; 8 * self.ncpu];
        if map_lookup(self.fd(), &key, &mut buf).is_err() {
            return 0;
        }
        buf.chunks(8)
            .map(|c| {
                let mut b = [0u8; 8];
                b.copy_from_slice(c);
                u64::from_ne_bytes(b)
            })
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn possible_cpus_is_at_least_one() {
        assert!(possible_cpus() >= 1);
    }

    #[test]
    fn attr_fields_land_at_their_offsets() {
        let mut a = Attr::new();
        a.u32(4, 0x01020304)
            .u64(8, 0x1122334455667788)
            .name(28, "abcdefghijklmnopq");
        assert_eq!(a.get_u32(4), 0x01020304);
        assert_eq!(&a.0[28..43], b"abcdefghijklmno");
        assert_eq!(a.0[43], 0, "names are NUL-terminated at 15 bytes");
    }
}
