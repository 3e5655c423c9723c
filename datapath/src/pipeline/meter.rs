//! OpenFlow meters (METER_MOD) as the fast path enforces them.
//!
//! A [`Meter`] is installed in its bridge's [`BridgeTables`](super::tables::BridgeTables)
//! behind an `Arc`; translation puts that `Arc` into the datapath flow's action list
//! ([`DpAction::Meter`](super::DpAction::Meter)), so a cached megaflow meters every packet it
//! forwards without a table lookup, a lock or an allocation. The controller action's
//! `meter_id` (packet-in rate limiting, in the control thread) uses the same object, so both
//! kinds of use show up in the same meter stats.
//!
//! Semantics follow OVS's userspace datapath (lib/dpif-netdev.c, `dpif_netdev_meter_set` and
//! `dp_netdev_run_meter`): one token bucket per drop band that starts full, holds at most
//! `burst_size` (the rate when no burst size is given: OVS substitutes it), refills at `rate`
//! packets/s (`pktps`) or kbit/s (`kbps`, charged by frame bytes × 8); a packet that finds its
//! band's bucket short is dropped and counted in that band; every packet that reaches the
//! meter counts in packet_in/byte_in. A meter modify installs a new meter (a full bucket and
//! zeroed counters, as dpif-netdev replaces its `dp_meter`), while the OpenFlow-level duration
//! keeps running from the meter's creation (ofproto.c `meter_update` keeps `created`).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::Instant;

use openflow::types::MeterBand;

/// Meter flags (OFPMF13_*).
pub const MF_KBPS: u16 = 1;
pub const MF_PKTPS: u16 = 2;
pub const MF_BURST: u16 = 4;
pub const MF_STATS: u16 = 8;

/// Bucket units per packet (pktps) and per kilobit of burst (kbps). The bucket counts in units
/// of 10⁻⁹ packet (pktps) or 10⁻⁶ bit (kbps) so that one nanosecond of refill is exactly
/// `rate` units in both modes: rate packets/s = rate·10⁹ units per 10⁹ ns, and rate kbit/s =
/// rate·10³ bits/s = rate·10⁹ units per 10⁹ ns. All arithmetic is integer; a full bucket of
/// the largest burst (2³²−1 · 10⁹ ≈ 4.3·10¹⁸) fits a u64.
const UNITS: u64 = 1_000_000_000;
/// Units per bit in kbps mode.
const UNITS_PER_BIT: u64 = 1_000_000;

/// Nanoseconds on a process-wide monotonic clock (CLOCK_MONOTONIC through the vDSO: no
/// syscall, no lock). Only metered packets read it.
#[inline]
pub fn now_ns() -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_nanos() as u64
}

/// A lock-free token bucket shared by every PMD that runs the meter.
///
/// Design choice: one shared bucket with atomics rather than per-PMD buckets with the rate
/// split between them. A split rate is only accurate when traffic is spread evenly over the
/// PMDs (one busy PMD would get 1/n of the rate, and a rate of 1 pktps cannot be split at
/// all); a shared bucket is exact whatever the spread, at the cost of one contended cache
/// line per metered packet, as in dpif-netdev. Refill: the caller that moves `last_ns`
/// forward (an atomic `fetch_max`, so two PMDs never refill the same interval) adds the
/// elapsed time's tokens, capped at the capacity; a packet then takes its cost with a
/// compare-exchange that never goes below zero. Accuracy: exact up to the clock (ns) —
/// between a refill by one PMD and the take by another, the bucket can only be short by the
/// tokens of the few nanoseconds in between, which the next refill adds back.
#[derive(Debug)]
pub struct TokenBucket {
    /// Refill per nanosecond, in units (see [`UNITS`]).
    rate: u64,
    /// Capacity in units.
    capacity: u64,
    tokens: AtomicU64,
    last_ns: AtomicU64,
}

impl TokenBucket {
    /// A full bucket refilling at `rate` and holding `burst`, both in the meter's unit
    /// (packets or kilobits; the rate per second), as of `now_ns`.
    pub fn new(rate: u32, burst: u32, now_ns: u64) -> TokenBucket {
        let capacity = burst as u64 * UNITS;
        TokenBucket {
            rate: rate as u64,
            capacity,
            tokens: AtomicU64::new(capacity),
            last_ns: AtomicU64::new(now_ns),
        }
    }

    /// Adds the tokens of the time since the last refill (once per interval, whoever calls).
    #[inline]
    fn refill(&self, now_ns: u64) {
        let prev = self.last_ns.fetch_max(now_ns, Ordering::Relaxed);
        if now_ns <= prev || self.rate == 0 {
            return;
        }
        let add = ((now_ns - prev) as u128 * self.rate as u128).min(self.capacity as u128) as u64;
        let cap = self.capacity;
        let _ = self
            .tokens
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |t| {
                Some(t.saturating_add(add).min(cap))
            });
    }

    /// Takes `cost` units if the bucket holds them (refilled to `now_ns` first); false leaves
    /// the bucket as it was.
    #[inline]
    pub fn take(&self, cost: u64, now_ns: u64) -> bool {
        self.refill(now_ns);
        self.tokens
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |t| {
                t.checked_sub(cost)
            })
            .is_ok()
    }
}

/// One band's bucket and its counters (packets and bytes the band dropped).
#[derive(Debug)]
pub struct Band {
    pub band: MeterBand,
    bucket: TokenBucket,
    pub packets: AtomicU64,
    pub bytes: AtomicU64,
}

/// An installed meter: its configuration (as the controller sent it), buckets and counters.
#[derive(Debug)]
pub struct Meter {
    pub flags: u16,
    pub bands: Vec<Band>,
    /// When the meter was first added (meter stats duration; kept across modifies).
    pub created: Instant,
    pub packets_in: AtomicU64,
    pub bytes_in: AtomicU64,
}

impl Meter {
    /// A meter with full buckets. A band without a burst size gets its rate as burst (OVS,
    /// dpif-netdev.c `dpif_netdev_meter_set`: "Set burst size to a workable value").
    pub fn new(flags: u16, bands: &[MeterBand], created: Instant) -> Meter {
        let now = now_ns();
        Meter {
            flags,
            bands: bands
                .iter()
                .map(|b| {
                    let burst = if b.burst_size == 0 {
                        b.rate
                    } else {
                        b.burst_size
                    };
                    Band {
                        band: b.clone(),
                        bucket: TokenBucket::new(b.rate, burst, now),
                        packets: AtomicU64::new(0),
                        bytes: AtomicU64::new(0),
                    }
                })
                .collect(),
            created,
            packets_in: AtomicU64::new(0),
            bytes_in: AtomicU64::new(0),
        }
    }

    /// The bands as configured (meter config replies).
    pub fn config_bands(&self) -> Vec<MeterBand> {
        self.bands.iter().map(|b| b.band.clone()).collect()
    }

    /// Runs one packet of `bytes` bytes through the meter at `now_ns`: whether it passes.
    /// Every packet counts in the meter; a dropped one counts in the band that dropped it.
    /// With several bands, the band of the highest rate the packet exceeds fires (OpenFlow
    /// 1.3 §5.7, as dp_netdev_run_meter does); a band whose bucket was short takes nothing.
    #[inline]
    pub fn admit_at(&self, bytes: usize, now_ns: u64) -> bool {
        self.packets_in.fetch_add(1, Ordering::Relaxed);
        self.bytes_in.fetch_add(bytes as u64, Ordering::Relaxed);
        let cost = if self.flags & MF_PKTPS != 0 {
            UNITS
        } else {
            (bytes as u64).saturating_mul(8 * UNITS_PER_BIT)
        };
        let mut fired: Option<&Band> = None;
        for b in &self.bands {
            if !b.bucket.take(cost, now_ns) && fired.is_none_or(|f| b.band.rate > f.band.rate) {
                fired = Some(b);
            }
        }
        match fired {
            Some(b) => {
                b.packets.fetch_add(1, Ordering::Relaxed);
                b.bytes.fetch_add(bytes as u64, Ordering::Relaxed);
                false
            }
            None => true,
        }
    }

    /// [`Meter::admit_at`] now.
    #[inline]
    pub fn admit(&self, bytes: usize) -> bool {
        self.admit_at(bytes, now_ns())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn band(rate: u32, burst: u32) -> MeterBand {
        MeterBand {
            band_type: 1,
            rate,
            burst_size: burst,
            extra: [0; 4],
        }
    }

    #[test]
    fn pktps_bucket_passes_burst_then_rate() {
        let m = Meter::new(MF_PKTPS | MF_BURST, &[band(10, 3)], Instant::now());
        let t0 = now_ns() + 1_000_000_000; // later than the meter's creation, by a second
                                           // a full bucket of 3 packets, then nothing at the same instant
        let passed = (0..10).filter(|_| m.admit_at(100, t0)).count();
        assert_eq!(passed, 3);
        // 10 pktps: one packet per 100 ms; 250 ms later two more
        let t1 = t0 + 250_000_000;
        let passed = (0..10).filter(|_| m.admit_at(100, t1)).count();
        assert_eq!(passed, 2);
        // refill is capped at the burst, however long the pause
        let t2 = t1 + 3_600 * 1_000_000_000;
        let passed = (0..10).filter(|_| m.admit_at(100, t2)).count();
        assert_eq!(passed, 3);
        assert_eq!(m.packets_in.load(Ordering::Relaxed), 30);
        assert_eq!(m.bytes_in.load(Ordering::Relaxed), 3000);
        assert_eq!(m.bands[0].packets.load(Ordering::Relaxed), 22);
        assert_eq!(m.bands[0].bytes.load(Ordering::Relaxed), 2200);
    }

    #[test]
    fn kbps_bucket_charges_bytes_and_time_going_back_adds_nothing() {
        // 8 kbit/s, burst 8 kbit: 1000 bytes of burst, 1000 bytes/s
        let m = Meter::new(MF_KBPS | MF_BURST, &[band(8, 8)], Instant::now());
        let t0 = now_ns() + 1_000_000_000; // later than the meter's creation, by a second
        assert!(m.admit_at(600, t0));
        assert!(!m.admit_at(600, t0)); // 400 bytes left
        assert!(m.admit_at(400, t0));
        // an older timestamp (another PMD's clock read) neither refills nor underflows
        assert!(!m.admit_at(1, t0 - 1_000_000));
        // 0.5 s: 500 bytes
        assert!(!m.admit_at(501, t0 + 500_000_000));
        assert!(m.admit_at(500, t0 + 500_000_000));
        assert_eq!(m.bands[0].packets.load(Ordering::Relaxed), 3);
        assert_eq!(m.bands[0].bytes.load(Ordering::Relaxed), 1102);
    }

    #[test]
    fn no_burst_size_means_burst_of_one_second_and_extremes_do_not_overflow() {
        let m = Meter::new(MF_PKTPS, &[band(5, 0)], Instant::now());
        let t0 = now_ns() + 1_000_000_000; // later than the meter's creation, by a second
        assert_eq!((0..20).filter(|_| m.admit_at(64, t0)).count(), 5);
        // the largest rate and burst: an impossible packet size is dropped, not wrapped
        let big = Meter::new(
            MF_KBPS | MF_BURST,
            &[band(u32::MAX, u32::MAX)],
            Instant::now(),
        );
        assert!(!big.admit_at(usize::MAX, t0));
        assert_eq!(big.bands[0].packets.load(Ordering::Relaxed), 1);
        // a huge time step refills to the capacity without overflowing
        assert!(big.admit_at(65535, u64::MAX));
        assert!(big.admit_at(65535, u64::MAX));
    }

    #[test]
    fn a_bucket_shared_by_threads_never_passes_more_than_its_tokens() {
        let m = std::sync::Arc::new(Meter::new(
            MF_PKTPS | MF_BURST,
            &[band(1, 100)],
            Instant::now(),
        ));
        let t0 = now_ns() + 1_000_000_000; // later than the meter's creation, by a second
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let m = m.clone();
                std::thread::spawn(move || (0..1000).filter(|_| m.admit_at(64, t0)).count())
            })
            .collect();
        let passed: usize = threads.into_iter().map(|t| t.join().unwrap_or(0)).sum();
        // every thread used the same instant: no refill, exactly the burst passes
        assert_eq!(passed, 100);
        assert_eq!(m.bands[0].packets.load(Ordering::Relaxed), 3900);
    }
}
