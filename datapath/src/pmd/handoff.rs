//! Cross-PMD packet handoff: a bounded single-producer/single-consumer ring of fixed-size slots.
//!
//! Needed when a PMD must transmit on a port whose AF_XDP socket another PMD owns (different
//! UMEM, single-producer TX ring): the packet is copied into a slot here and the owner copies it
//! into its own UMEM. Slots are preallocated; nothing allocates per packet. When the ring is full
//! the packet is dropped and counted: the fast path never waits for another thread.

use std::cell::UnsafeCell;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;

/// Largest frame a slot carries.
pub const SLOT_BYTES: usize = 3840;

struct Slot<M, const N: usize> {
    port: u16,
    len: u16,
    meta: M,
    data: [u8; N],
}

#[repr(align(64))]
struct Padded(AtomicU32);

struct Ring<M, const N: usize> {
    slots: Box<[UnsafeCell<Slot<M, N>>]>,
    mask: u32,
    head: Padded, // next slot the producer writes
    tail: Padded, // next slot the consumer reads
}

// SAFETY: the producer only writes slots in [tail+size-.., head) it has not yet published and
// the consumer only reads slots in [tail, head) that were published with a Release store of head;
// `Producer` and `Consumer` are the only handles and neither is Clone.
unsafe impl<M: Send, const N: usize> Sync for Ring<M, N> {}
unsafe impl<M: Send, const N: usize> Send for Ring<M, N> {}

/// Wakes a PMD blocked in poll() (eventfd), only when it says it is sleeping.
pub struct Waker {
    fd: std::os::fd::OwnedFd,
    pub sleeping: AtomicBool,
}

impl Waker {
    pub fn new() -> std::io::Result<Self> {
        // SAFETY: plain eventfd(2); the fd is owned right away.
        let fd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(Waker {
            // SAFETY: fresh fd we own.
            fd: unsafe { std::os::fd::FromRawFd::from_raw_fd(fd) },
            sleeping: AtomicBool::new(false),
        })
    }
    pub fn fd(&self) -> i32 {
        std::os::fd::AsRawFd::as_raw_fd(&self.fd)
    }
    /// Wakes the owner if it is (about to be) blocked. Callers publish their work first.
    #[inline]
    pub fn wake_if_sleeping(&self) {
        std::sync::atomic::fence(Ordering::SeqCst);
        if self.sleeping.load(Ordering::SeqCst) {
            self.wake();
        }
    }
    pub fn wake(&self) {
        let one: u64 = 1;
        // SAFETY: an 8-byte write to our eventfd.
        unsafe { libc::write(self.fd(), &one as *const u64 as *const libc::c_void, 8) };
    }
    /// Clears pending wake-ups.
    pub fn drain(&self) {
        let mut v: u64 = 0;
        // SAFETY: an 8-byte read from our non-blocking eventfd.
        unsafe { libc::read(self.fd(), &mut v as *mut u64 as *mut libc::c_void, 8) };
    }
}

/// The producing end. `M` is per-packet metadata carried with the bytes (`()` for handoffs,
/// the packet-in description for packet-ins).
pub struct Producer<M = (), const N: usize = SLOT_BYTES> {
    ring: Arc<Ring<M, N>>,
    cached_tail: u32,
    waker: Arc<Waker>,
}

pub struct Consumer<M = (), const N: usize = SLOT_BYTES> {
    ring: Arc<Ring<M, N>>,
    cached_head: u32,
}

/// A ring of `slots` slots (rounded up to a power of two) and its two ends.
pub fn channel<M: Default + Send>(
    slots: usize,
    consumer_waker: Arc<Waker>,
) -> (Producer<M>, Consumer<M>) {
    sized_channel(slots, consumer_waker)
}

/// A ring whose slots carry only metadata (no frame bytes): requests such as learned flows,
/// whose content travels in `M`.
pub fn meta_channel<M: Default + Send>(
    slots: usize,
    consumer_waker: Arc<Waker>,
) -> (Producer<M, 0>, Consumer<M, 0>) {
    sized_channel(slots, consumer_waker)
}

fn sized_channel<M: Default + Send, const N: usize>(
    slots: usize,
    consumer_waker: Arc<Waker>,
) -> (Producer<M, N>, Consumer<M, N>) {
    let n = slots.max(2).next_power_of_two();
    let v: Vec<UnsafeCell<Slot<M, N>>> = (0..n)
        .map(|_| {
            UnsafeCell::new(Slot {
                port: 0,
                len: 0,
                meta: M::default(),
                data: [0; N],
            })
        })
        .collect();
    let ring = Arc::new(Ring {
        slots: v.into_boxed_slice(),
        mask: n as u32 - 1,
        head: Padded(AtomicU32::new(0)),
        tail: Padded(AtomicU32::new(0)),
    });
    (
        Producer {
            ring: ring.clone(),
            cached_tail: 0,
            waker: consumer_waker,
        },
        Consumer {
            ring,
            cached_head: 0,
        },
    )
}

impl Producer<()> {
    /// Copies `data` for output on `port`. Returns false (nothing queued) when the ring is full
    /// or the frame is larger than a slot.
    #[inline]
    pub fn push(&mut self, port: u16, data: &[u8]) -> bool {
        if data.len() > SLOT_BYTES {
            return false;
        }
        self.push_with(port, data, ())
    }
}

impl<M, const N: usize> Producer<M, N> {
    /// Copies `data` (truncated to a slot) with `meta`. Returns false when the ring is full.
    #[inline]
    pub fn push_with(&mut self, port: u16, data: &[u8], meta: M) -> bool {
        let r = &*self.ring;
        let head = r.head.0.load(Ordering::Relaxed);
        let size = r.mask + 1;
        if head.wrapping_sub(self.cached_tail) >= size {
            self.cached_tail = r.tail.0.load(Ordering::Acquire);
            if head.wrapping_sub(self.cached_tail) >= size {
                return false;
            }
        }
        // SAFETY: slot `head` is outside [tail, head), so the consumer does not read it until the
        // Release store below publishes it; we are the only producer.
        let slot = unsafe { &mut *r.slots[(head & r.mask) as usize].get() };
        let n = data.len().min(N);
        slot.port = port;
        slot.len = n as u16;
        slot.meta = meta;
        slot.data[..n].copy_from_slice(&data[..n]);
        r.head.0.store(head.wrapping_add(1), Ordering::Release);
        true
    }

    /// Wakes the consumer if it sleeps; call once per batch after pushing.
    #[inline]
    pub fn notify(&self) {
        self.waker.wake_if_sleeping();
    }
}

impl<M, const N: usize> Consumer<M, N> {
    /// Whether packets are waiting.
    pub fn is_empty(&mut self) -> bool {
        let r = &*self.ring;
        self.cached_head = r.head.0.load(Ordering::Acquire);
        self.cached_head == r.tail.0.load(Ordering::Relaxed)
    }

    /// Hands up to `max` queued packets to `f(port, bytes)`; returns how many.
    #[inline]
    pub fn drain(&mut self, max: usize, mut f: impl FnMut(u16, &[u8])) -> usize {
        self.drain_with(max, |p, d, _| f(p, d))
    }

    /// Like [`Self::drain`], handing over each packet's metadata too (taken out of the slot).
    #[inline]
    pub fn drain_with(&mut self, max: usize, mut f: impl FnMut(u16, &[u8], &mut M)) -> usize {
        let r = &*self.ring;
        let mut tail = r.tail.0.load(Ordering::Relaxed);
        let mut n = 0;
        while n < max {
            if tail == self.cached_head {
                self.cached_head = r.head.0.load(Ordering::Acquire);
                if tail == self.cached_head {
                    break;
                }
            }
            // SAFETY: slot `tail` is in [tail, head): published by the producer's Release store
            // (observed by our Acquire load) and not reused until we advance tail.
            let slot = unsafe { &mut *r.slots[(tail & r.mask) as usize].get() };
            f(slot.port, &slot.data[..slot.len as usize], &mut slot.meta);
            tail = tail.wrapping_add(1);
            n += 1;
        }
        r.tail.0.store(tail, Ordering::Release);
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fifo_full_and_oversize() {
        let w = Arc::new(Waker::new().unwrap());
        let (mut p, mut c) = channel::<()>(4, w);
        assert!(c.is_empty());
        for i in 0..4u8 {
            assert!(p.push(i as u16, &[i; 10]));
        }
        assert!(!p.push(9, &[0; 10]), "full");
        assert!(!p.push(9, &vec![0; SLOT_BYTES + 1]), "oversize");
        let mut got = Vec::new();
        assert_eq!(c.drain(2, |port, d| got.push((port, d.to_vec()))), 2);
        assert!(p.push(4, &[4; 3]));
        c.drain(10, |port, d| got.push((port, d.to_vec())));
        assert_eq!(
            got.iter().map(|g| g.0).collect::<Vec<_>>(),
            vec![0, 1, 2, 3, 4]
        );
        assert_eq!(got[4].1, vec![4, 4, 4]);
    }

    #[test]
    fn two_threads_deliver_everything_in_order() {
        let w = Arc::new(Waker::new().unwrap());
        let (mut p, mut c) = channel::<()>(64, w);
        const N: u32 = 200_000;
        let t = std::thread::spawn(move || {
            let mut i = 0u32;
            while i < N {
                if p.push((i % 7) as u16, &i.to_le_bytes()) {
                    i += 1;
                } else {
                    std::hint::spin_loop();
                }
            }
        });
        let mut next = 0u32;
        while next < N {
            c.drain(32, |port, d| {
                let v = u32::from_le_bytes([d[0], d[1], d[2], d[3]]);
                assert_eq!(v, next);
                assert_eq!(port as u32, v % 7);
                next += 1;
            });
        }
        t.join().unwrap();
    }

    #[test]
    fn metadata_only_rings_carry_the_metadata() {
        let w = Arc::new(Waker::new().unwrap());
        let (mut p, mut c) = meta_channel::<Option<Arc<u32>>>(2, w);
        assert!(p.push_with(0, &[], Some(Arc::new(7))));
        assert!(p.push_with(0, &[], Some(Arc::new(8))));
        assert!(
            !p.push_with(0, &[], Some(Arc::new(9))),
            "full: refused, not blocked"
        );
        let mut got = Vec::new();
        c.drain_with(8, |_, d, m| {
            assert!(d.is_empty());
            got.extend(m.take().map(|v| *v));
        });
        assert_eq!(got, vec![7, 8]);
    }

    #[test]
    fn waker_wakes_only_sleepers() {
        let w = Waker::new().unwrap();
        w.wake_if_sleeping();
        let mut pfd = libc::pollfd {
            fd: w.fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: poll on one valid pollfd.
        assert_eq!(unsafe { libc::poll(&mut pfd, 1, 0) }, 0);
        w.sleeping.store(true, Ordering::SeqCst);
        w.wake_if_sleeping();
        // SAFETY: as above.
        assert_eq!(unsafe { libc::poll(&mut pfd, 1, 0) }, 1);
        w.drain();
    }
}
