//! The UMEM: one anonymous mapping split into fixed-size frames that the kernel and we hand to
//! each other through the fill/RX and TX/completion rings.

use std::ptr::NonNull;

use crate::{Error, Result};

/// A UMEM area. Frames are addressed by their byte offset (`addr`) from the start of the area,
/// as the rings do. The area is never touched by the kernel except for frames we handed it.
pub struct Umem {
    area: NonNull<u8>,
    len: usize,
    frame_size: u32,
    frames: u32,
    headroom: u32,
    hugepages: bool,
}

// SAFETY: the mapping is owned by this value and freed on drop; frames are shared with the kernel
// only through rings whose ownership protocol the caller follows. Moving it between threads is
// fine (it is not Sync).
unsafe impl Send for Umem {}

impl Umem {
    /// Maps `frames` frames of `frame_size` bytes (a power of two, 2048 or 4096 in practice).
    /// `headroom` bytes at the start of each frame are kept free by the kernel on receive, room to
    /// push headers (tunnel encapsulation) without a copy. Tries huge pages first when asked.
    pub fn new(frames: u32, frame_size: u32, headroom: u32, hugepages: bool) -> Result<Self> {
        if !frame_size.is_power_of_two() || !(2048..=65536).contains(&frame_size) {
            return Err(Error::Invalid(format!(
                "UMEM frame size {frame_size} must be a power of two between 2048 and 65536"
            )));
        }
        if frames == 0 || headroom + 128 > frame_size {
            return Err(Error::Invalid(format!(
                "UMEM of {frames} frames with headroom {headroom} in {frame_size}-byte frames"
            )));
        }
        let len = frames as usize * frame_size as usize;
        let mut tried_huge = false;
        let map = |huge: bool| {
            let mut flags = libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_POPULATE;
            if huge {
                flags |= libc::MAP_HUGETLB;
            }
            // SAFETY: anonymous private mapping, result checked below.
            unsafe {
                libc::mmap(
                    std::ptr::null_mut(),
                    len,
                    libc::PROT_READ | libc::PROT_WRITE,
                    flags,
                    -1,
                    0,
                )
            }
        };
        let mut p = libc::MAP_FAILED;
        if hugepages {
            tried_huge = true;
            p = map(true);
        }
        let got_huge = tried_huge && p != libc::MAP_FAILED;
        if p == libc::MAP_FAILED {
            p = map(false);
        }
        if p == libc::MAP_FAILED {
            return Err(Error::last("mmap UMEM"));
        }
        Ok(Umem {
            // SAFETY: mmap succeeded, so p is non-null.
            area: unsafe { NonNull::new_unchecked(p as *mut u8) },
            len,
            frame_size,
            frames,
            headroom,
            hugepages: got_huge,
        })
    }

    pub fn area_ptr(&self) -> *mut u8 {
        self.area.as_ptr()
    }
    pub fn len(&self) -> usize {
        self.len
    }
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    pub fn frame_size(&self) -> u32 {
        self.frame_size
    }
    pub fn frames(&self) -> u32 {
        self.frames
    }
    pub fn headroom(&self) -> u32 {
        self.headroom
    }
    pub fn hugepages(&self) -> bool {
        self.hugepages
    }

    /// The base address of the frame holding `addr`.
    #[inline(always)]
    pub fn frame_base(&self, addr: u64) -> u64 {
        addr & !(self.frame_size as u64 - 1)
    }

    /// Whether `[addr, addr+len)` lies inside one frame of this UMEM.
    #[inline(always)]
    pub fn valid(&self, addr: u64, len: usize) -> bool {
        let off = (addr & (self.frame_size as u64 - 1)) as usize;
        (addr as usize) < self.len && off + len <= self.frame_size as usize
    }

    /// The bytes at `[addr, addr+len)`, or `None` if that range is not inside one frame.
    #[inline]
    pub fn data(&self, addr: u64, len: usize) -> Option<&[u8]> {
        if !self.valid(addr, len) {
            return None;
        }
        // SAFETY: the range is inside the mapping (checked); the caller owns this frame (it came
        // from the RX or completion ring), so the kernel is not writing it.
        Some(unsafe { std::slice::from_raw_parts(self.area.as_ptr().add(addr as usize), len) })
    }

    /// Mutable access to `[addr, addr+len)`; `None` if the range is not inside one frame.
    #[inline]
    pub fn data_mut(&mut self, addr: u64, len: usize) -> Option<&mut [u8]> {
        if !self.valid(addr, len) {
            return None;
        }
        // SAFETY: as in `data`; `&mut self` makes this the only Rust reference into the area.
        Some(unsafe { std::slice::from_raw_parts_mut(self.area.as_ptr().add(addr as usize), len) })
    }

    /// Hints the CPU to start loading the cache line at `addr` (a received packet's first bytes,
    /// written by the kernel on another core). Out-of-range addresses are ignored.
    #[inline(always)]
    pub fn prefetch(&self, addr: u64) {
        if (addr as usize) < self.len {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: a prefetch never faults and has no architectural effect; the pointer is
            // inside our mapping.
            unsafe {
                core::arch::x86_64::_mm_prefetch(
                    self.area.as_ptr().add(addr as usize) as *const i8,
                    core::arch::x86_64::_MM_HINT_T0,
                );
            }
        }
    }

    /// Copies `len` bytes from `src` to `dst` (both UMEM addresses of different frames).
    #[inline]
    pub fn copy_frame(&mut self, src: u64, dst: u64, len: usize) -> bool {
        if !self.valid(src, len)
            || !self.valid(dst, len)
            || self.frame_base(src) == self.frame_base(dst)
        {
            return false;
        }
        // SAFETY: both ranges are inside the mapping and in different frames, so they do not
        // overlap; we own both frames.
        unsafe {
            std::ptr::copy_nonoverlapping(
                self.area.as_ptr().add(src as usize),
                self.area.as_ptr().add(dst as usize),
                len,
            )
        };
        true
    }
}

impl Drop for Umem {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly our mapping; sockets using it must be dropped first (the kernel
        // keeps its own page references while a socket lives, so this is memory-safe either way).
        unsafe { libc::munmap(self.area.as_ptr() as *mut libc::c_void, self.len) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_bad_geometry() {
        assert!(Umem::new(16, 3000, 0, false).is_err());
        assert!(Umem::new(0, 4096, 0, false).is_err());
        assert!(Umem::new(16, 2048, 2000, false).is_err());
    }

    #[test]
    fn frame_access_is_bounds_checked() {
        let mut u = Umem::new(4, 2048, 256, false).unwrap();
        assert_eq!(u.len(), 8192);
        assert_eq!(u.frame_base(2048 + 300), 2048);
        assert!(u.data(0, 2048).is_some());
        assert!(u.data(1, 2048).is_none(), "crosses into the next frame");
        assert!(u.data(8192, 1).is_none(), "past the end");
        assert!(u.data(6144, 2048).is_some());
        u.data_mut(256, 4).unwrap().copy_from_slice(&[1, 2, 3, 4]);
        assert!(u.copy_frame(256, 2048 + 256, 4));
        assert_eq!(u.data(2048 + 256, 4).unwrap(), &[1, 2, 3, 4]);
        assert!(!u.copy_frame(256, 300, 4), "same frame");
    }
}
