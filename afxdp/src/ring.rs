//! The four AF_XDP rings: single-producer/single-consumer arrays shared with the kernel.
//!
//! Fill and TX rings are produced by us and consumed by the kernel ([`ProdRing`]); RX and
//! completion rings are produced by the kernel and consumed by us ([`ConsRing`]). Both cache the
//! peer's index and touch the shared cache line only when the cached view runs out, so a batch
//! costs two atomic operations, not two per descriptor.

use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, Ordering};

use crate::sys::{RingOffset, XDP_RING_NEED_WAKEUP};
use crate::{Error, Result};

/// The mapping behind one ring and the raw pointers into it.
struct RingMap<T> {
    producer: NonNull<AtomicU32>,
    consumer: NonNull<AtomicU32>,
    flags: NonNull<AtomicU32>,
    descs: NonNull<T>,
    mask: u32,
    size: u32,
    /// `Some((addr, len))` when we own an mmap to undo on drop.
    map: Option<(NonNull<libc::c_void>, usize)>,
}

// SAFETY: the ring memory is a private mapping owned by this value; the kernel synchronises with
// us only through the atomic producer/consumer indices. Moving the owner to another thread is
// fine; sharing it is not (the types are not Sync).
unsafe impl<T: Send> Send for RingMap<T> {}

impl<T: Copy> RingMap<T> {
    fn map(fd: i32, off: &RingOffset, size: u32, pgoff: i64) -> Result<Self> {
        if !size.is_power_of_two() {
            return Err(Error::Invalid(format!(
                "ring size {size} is not a power of two"
            )));
        }
        let len = off.desc as usize + size as usize * std::mem::size_of::<T>();
        // SAFETY: plain mmap of the ring region the kernel set up on `fd`; the result is checked.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_POPULATE,
                fd,
                pgoff,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(Error::last("mmap xdp ring"));
        }
        let base = p as *mut u8;
        // SAFETY: the offsets come from XDP_MMAP_OFFSETS and lie inside the `len` bytes mapped.
        unsafe {
            Ok(RingMap {
                producer: NonNull::new_unchecked(base.add(off.producer as usize) as *mut AtomicU32),
                consumer: NonNull::new_unchecked(base.add(off.consumer as usize) as *mut AtomicU32),
                flags: NonNull::new_unchecked(base.add(off.flags as usize) as *mut AtomicU32),
                descs: NonNull::new_unchecked(base.add(off.desc as usize) as *mut T),
                mask: size - 1,
                size,
                map: Some((NonNull::new_unchecked(p), len)),
            })
        }
    }

    #[inline(always)]
    fn producer(&self) -> &AtomicU32 {
        // SAFETY: points into our live mapping (or test buffer) for as long as `self` lives.
        unsafe { self.producer.as_ref() }
    }
    #[inline(always)]
    fn consumer(&self) -> &AtomicU32 {
        // SAFETY: as above.
        unsafe { self.consumer.as_ref() }
    }
    #[inline(always)]
    fn flags(&self) -> &AtomicU32 {
        // SAFETY: as above.
        unsafe { self.flags.as_ref() }
    }
    #[inline(always)]
    fn slot(&self, idx: u32) -> *mut T {
        // SAFETY: `idx & mask` < size, and the descriptor array holds `size` entries.
        unsafe { self.descs.as_ptr().add((idx & self.mask) as usize) }
    }
}

impl<T> Drop for RingMap<T> {
    fn drop(&mut self) {
        if let Some((p, len)) = self.map {
            // SAFETY: unmapping exactly the region mapped in `map`; no references outlive self.
            unsafe { libc::munmap(p.as_ptr(), len) };
        }
    }
}

/// A ring we produce into (fill, TX).
pub struct ProdRing<T> {
    m: RingMap<T>,
    cached_prod: u32,
    cached_cons: u32,
}

/// A ring we consume from (RX, completion).
pub struct ConsRing<T> {
    m: RingMap<T>,
    cached_prod: u32,
    cached_cons: u32,
}

impl<T: Copy> ProdRing<T> {
    pub(crate) fn map(fd: i32, off: &RingOffset, size: u32, pgoff: i64) -> Result<Self> {
        let m = RingMap::map(fd, off, size, pgoff)?;
        Ok(Self::from_map(m))
    }

    fn from_map(m: RingMap<T>) -> Self {
        let cached_prod = m.producer().load(Ordering::Relaxed);
        let cached_cons = m.consumer().load(Ordering::Relaxed);
        ProdRing {
            m,
            cached_prod,
            cached_cons,
        }
    }

    pub fn size(&self) -> u32 {
        self.m.size
    }

    /// Free slots, refreshing the consumer index only when fewer than `want` are known free.
    #[inline]
    pub fn free(&mut self, want: u32) -> u32 {
        let free = self.m.size - self.cached_prod.wrapping_sub(self.cached_cons);
        if free >= want {
            return free;
        }
        self.cached_cons = self.m.consumer().load(Ordering::Acquire);
        self.m.size - self.cached_prod.wrapping_sub(self.cached_cons)
    }

    /// Writes entry `i` of the batch being produced (not visible until [`submit`](Self::submit)).
    /// The caller must have checked `i < free()`.
    #[inline]
    pub fn write(&mut self, i: u32, v: T) {
        debug_assert!(i < self.m.size);
        // SAFETY: `slot` masks the index into the descriptor array; only we write unsubmitted
        // slots, the kernel reads them only after the Release store in `submit`.
        unsafe { self.m.slot(self.cached_prod.wrapping_add(i)).write(v) }
    }

    /// Publishes `n` written entries to the kernel.
    #[inline]
    pub fn submit(&mut self, n: u32) {
        self.cached_prod = self.cached_prod.wrapping_add(n);
        self.m.producer().store(self.cached_prod, Ordering::Release);
    }

    /// Entries produced and not yet consumed by the kernel.
    #[inline]
    pub fn outstanding(&mut self) -> u32 {
        self.cached_cons = self.m.consumer().load(Ordering::Acquire);
        self.cached_prod.wrapping_sub(self.cached_cons)
    }

    #[inline]
    pub fn needs_wakeup(&self) -> bool {
        self.m.flags().load(Ordering::Relaxed) & XDP_RING_NEED_WAKEUP != 0
    }
}

impl<T: Copy> ConsRing<T> {
    pub(crate) fn map(fd: i32, off: &RingOffset, size: u32, pgoff: i64) -> Result<Self> {
        let m = RingMap::map(fd, off, size, pgoff)?;
        Ok(Self::from_map(m))
    }

    fn from_map(m: RingMap<T>) -> Self {
        let cached_prod = m.producer().load(Ordering::Relaxed);
        let cached_cons = m.consumer().load(Ordering::Relaxed);
        ConsRing {
            m,
            cached_prod,
            cached_cons,
        }
    }

    pub fn size(&self) -> u32 {
        self.m.size
    }

    /// Entries ready to read, at most `want`; refreshes the producer index when the cached view
    /// is empty.
    #[inline]
    pub fn peek(&mut self, want: u32) -> u32 {
        let mut avail = self.cached_prod.wrapping_sub(self.cached_cons);
        if avail == 0 {
            self.cached_prod = self.m.producer().load(Ordering::Acquire);
            avail = self.cached_prod.wrapping_sub(self.cached_cons);
        }
        avail.min(want)
    }

    /// Reads entry `i` of the peeked batch. The caller must have checked `i < peek()`.
    #[inline]
    pub fn read(&self, i: u32) -> T {
        // SAFETY: masked index into the descriptor array; the Acquire load in `peek` orders this
        // read after the kernel's write of the entry.
        unsafe { self.m.slot(self.cached_cons.wrapping_add(i)).read() }
    }

    /// Returns `n` read entries to the kernel.
    #[inline]
    pub fn release(&mut self, n: u32) {
        self.cached_cons = self.cached_cons.wrapping_add(n);
        self.m.consumer().store(self.cached_cons, Ordering::Release);
    }

    #[inline]
    pub fn needs_wakeup(&self) -> bool {
        self.m.flags().load(Ordering::Relaxed) & XDP_RING_NEED_WAKEUP != 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A ring laid out like the kernel's, in a heap buffer we control, playing the kernel's side.
    /// All access goes through one raw pointer so the ring's pointers and ours never conflict.
    struct FakeRing {
        base: *mut u64,
        words: usize,
        size: u32,
    }

    impl FakeRing {
        fn new(size: u32) -> Self {
            // words: 0 = producer, 1 = consumer, 2 = flags, 3.. = descriptors (u64)
            let words = 3 + size as usize;
            let base = Box::into_raw(vec![0u64; words].into_boxed_slice()) as *mut u64;
            FakeRing { base, words, size }
        }
        fn map(&self) -> RingMap<u64> {
            // SAFETY: test-only view of our own buffer; it outlives the RingMap in each test.
            unsafe {
                RingMap {
                    producer: NonNull::new_unchecked(self.base as *mut AtomicU32),
                    consumer: NonNull::new_unchecked(self.base.add(1) as *mut AtomicU32),
                    flags: NonNull::new_unchecked(self.base.add(2) as *mut AtomicU32),
                    descs: NonNull::new_unchecked(self.base.add(3)),
                    mask: self.size - 1,
                    size: self.size,
                    map: None,
                }
            }
        }
        fn get(&self, i: usize) -> u64 {
            assert!(i < self.words);
            // SAFETY: in-bounds read of our buffer.
            unsafe { self.base.add(i).read_volatile() }
        }
        fn set(&self, i: usize, v: u64) {
            assert!(i < self.words);
            // SAFETY: in-bounds write of our buffer.
            unsafe { self.base.add(i).write_volatile(v) }
        }
        fn word(&self, i: usize) -> u32 {
            self.get(i) as u32
        }
        fn set_word(&self, i: usize, v: u32) {
            self.set(i, v as u64)
        }
    }

    impl Drop for FakeRing {
        fn drop(&mut self) {
            // SAFETY: reconstructs the box leaked in `new`.
            unsafe {
                drop(Box::from_raw(std::ptr::slice_from_raw_parts_mut(
                    self.base, self.words,
                )))
            };
        }
    }

    #[test]
    fn producer_wraps_and_respects_consumer() {
        let f = FakeRing::new(4);
        let mut r = ProdRing::from_map(f.map());
        let mut next = 0u64;
        for round in 0..10u32 {
            let n = r.free(4);
            assert_eq!(n, 4, "round {round}");
            for i in 0..n {
                r.write(i, next);
                next += 1;
            }
            r.submit(n);
            assert_eq!(r.free(1), 0);
            // kernel consumes everything
            let prod = f.word(0);
            for k in 0..4u32 {
                let idx = prod.wrapping_sub(4).wrapping_add(k);
                assert_eq!(f.get(3 + (idx & 3) as usize), next - 4 + k as u64);
            }
            f.set_word(1, prod);
        }
        assert_eq!(f.word(0), 40);
    }

    #[test]
    fn consumer_reads_in_order_across_index_wraparound() {
        let f = FakeRing::new(8);
        // start both indices near u32::MAX to exercise wrapping arithmetic
        f.set_word(0, u32::MAX - 2);
        f.set_word(1, u32::MAX - 2);
        let mut r = ConsRing::from_map(f.map());
        assert_eq!(r.peek(8), 0);
        // kernel produces 5 entries
        for k in 0..5u32 {
            let idx = (u32::MAX - 2).wrapping_add(k);
            f.set(3 + (idx & 7) as usize, 100 + k as u64);
        }
        f.set_word(0, (u32::MAX - 2).wrapping_add(5));
        let n = r.peek(3);
        assert_eq!(n, 3);
        let got: Vec<u64> = (0..n).map(|i| r.read(i)).collect();
        assert_eq!(got, vec![100, 101, 102]);
        r.release(n);
        assert_eq!(r.peek(8), 2);
        assert_eq!(r.read(0), 103);
        assert_eq!(r.read(1), 104);
        r.release(2);
        assert_eq!(f.word(1), (u32::MAX - 2).wrapping_add(5));
        assert_eq!(r.peek(8), 0);
    }

    #[test]
    fn need_wakeup_flag_is_read_from_the_shared_word() {
        let f = FakeRing::new(2);
        let r = ProdRing::<u64>::from_map(f.map());
        assert!(!r.needs_wakeup());
        f.set_word(2, XDP_RING_NEED_WAKEUP);
        assert!(r.needs_wakeup());
    }
}
