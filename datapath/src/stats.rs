//! Counters. The fast path owns its counters (one writer per cache line) and bumps them with a
//! plain load+store, no locked instruction; the control thread sums them for display.

use std::sync::atomic::{AtomicU64, Ordering};

/// Bumps a counter that only the calling thread writes.
#[inline(always)]
pub fn bump(c: &AtomicU64, n: u64) {
    c.store(c.load(Ordering::Relaxed).wrapping_add(n), Ordering::Relaxed);
}

macro_rules! counters {
    ($(#[$m:meta])* $name:ident { $($var:ident = $text:literal,)* }) => {
        $(#[$m])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        #[repr(usize)]
        pub enum $name { $($var,)* }
        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$var,)*];
            pub const COUNT: usize = Self::ALL.len();
            pub fn name(self) -> &'static str {
                match self { $($name::$var => $text,)* }
            }
        }
    };
}

counters! {
    /// Events and drop reasons shown by `coverage/show`.
    Cov {
        DropMalformedTruncated = "drop_malformed_truncated",
        DropMalformedLength = "drop_malformed_bad_length",
        DropMalformedHeader = "drop_malformed_bad_header",
        DropInvalidDesc = "drop_invalid_rx_descriptor",
        DropAction = "drop_by_flow",
        DropTxRingFull = "drop_tx_ring_full",
        DropNoFrames = "drop_umem_exhausted",
        DropHandoffFull = "drop_pmd_handoff_full",
        DropNoRoute = "drop_no_tx_route",
        DropPortDown = "drop_port_down",
        TxKickError = "tx_wakeup_error",
        CsumCompleted = "csum_partial_completed",
        Upcall = "upcall",
        Flood = "normal_flood",
        MacLearned = "mac_learned",
        MacMoved = "mac_moved",
        CacheFlush = "cache_flush",
        MegaflowExpired = "megaflow_expired",
        HandoffSent = "pmd_handoff_sent",
        HandoffRecv = "pmd_handoff_received",
        FillWakeup = "fill_ring_wakeup",
        DropResubmitLimit = "drop_resubmit_limit",
        DropRecircLost = "drop_recirc_lost",
        // connection tracking: ct() executions, recirculations, packets the tracker found
        // invalid (the pipeline decides what to do with them), recirculation depth exceeded
        CtExecuted = "conntrack_executed",
        CtRecirc = "recirc",
        CtInvalid = "conntrack_invalid",
        DropRecircDepth = "drop_recirc_depth",
        DropTtlExpired = "drop_ttl_expired",
        DropNoHeadroom = "drop_no_headroom",
        UncacheableFlow = "uncacheable_translation",
        PacketIn = "packet_in",
        DropPacketInQueueFull = "drop_packet_in_queue_full",
        // learn actions: requests handed to the control thread, repeats suppressed (the
        // same flow within ~100 ms), requests dropped on a full ring
        LearnRequest = "learn_requests",
        LearnDeduplicated = "learn_deduplicated",
        DropLearnRingFull = "learn_ring_full",
        // dropped by an OpenFlow meter band (the OVS coverage counter of the same name)
        DropMeter = "datapath_drop_meter",
        TunnelPush = "tunnel_push",
        TunnelPop = "tunnel_pop",
        TunnelNeighMiss = "tunnel_neigh_miss",
        DropTunnelNoRoute = "tunnel_drop_no_route",
        DropTunnelOversize = "tunnel_drop_oversize",
        DropTunnelMalformed = "tunnel_drop_malformed",
        DropTunnelNoPort = "tunnel_drop_no_port",
        DropTunnelNested = "tunnel_drop_nested",
        // live-migration gates: packets a blocking flow dropped, gates opened in the fast path
        DropGate = "drop_migration_gate",
        GateActivated = "migration_gate_activated",
    }
}

counters! {
    /// Per-PMD figures shown by `pmd/stats`.
    PmdStat {
        RxPackets = "packets received",
        RxBatches = "rx batches",
        TxPackets = "packets sent",
        TxKicks = "tx wake-up syscalls",
        BusyCycles = "busy cycles",
        BusyPackets = "packets in measured busy rounds",
        RxCycles = "rx+processing cycles",
        TxCycles = "tx cycles",
        PreemptedRounds = "preempted rounds",
        IdleCycles = "idle cycles",
        BusyRounds = "busy rounds",
        IdleRounds = "idle rounds",
        Naps = "naps",
        Blocks = "blocking polls",
        EmcHits = "emc hits",
        CacheHits = "megaflow hits",
        CacheMisses = "upcalls",
        UpcallCycles = "upcall cycles",
        Flows = "megaflows",
        Masks = "masks",
        FramesTotal = "umem frames",
        FramesFree = "umem frames free",
        FramesFill = "umem frames in fill rings",
        FramesTx = "umem frames in tx",
        FramesLeaked = "umem frames unaccounted",
    }
}

counters! {
    /// Per-port, per-PMD traffic counters.
    PortStat {
        RxPackets = "rx_packets",
        RxBytes = "rx_bytes",
        RxDropped = "rx_dropped",
        TxPackets = "tx_packets",
        TxBytes = "tx_bytes",
        TxDropped = "tx_dropped",
    }
}

/// A cache-line aligned array of counters with one writer.
#[repr(C, align(64))]
pub struct Counters<const N: usize> {
    c: [AtomicU64; N],
}

impl<const N: usize> Default for Counters<N> {
    fn default() -> Self {
        Counters {
            c: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }
}

impl<const N: usize> Counters<N> {
    #[inline(always)]
    pub fn bump(&self, i: usize, n: u64) {
        bump(&self.c[i], n)
    }
    #[inline(always)]
    pub fn set(&self, i: usize, v: u64) {
        self.c[i].store(v, Ordering::Relaxed)
    }
    pub fn get(&self, i: usize) -> u64 {
        self.c[i].load(Ordering::Relaxed)
    }
    pub fn clear(&self) {
        for c in &self.c {
            c.store(0, Ordering::Relaxed)
        }
    }
}

pub type CovCounters = Counters<{ Cov::COUNT }>;
pub type PmdCounters = Counters<{ PmdStat::COUNT }>;
pub type PortCounters = Counters<{ PortStat::COUNT }>;

/// A monotonic cycle counter for per-round accounting: the TSC on x86_64, nanoseconds elsewhere.
pub mod clock {
    use std::sync::OnceLock;
    use std::time::Instant;

    #[inline(always)]
    pub fn cycles() -> u64 {
        #[cfg(target_arch = "x86_64")]
        {
            // SAFETY: RDTSC has no preconditions on x86_64; it only reads the time-stamp counter.
            unsafe { core::arch::x86_64::_rdtsc() }
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            static START: OnceLock<Instant> = OnceLock::new();
            START.get_or_init(Instant::now).elapsed().as_nanos() as u64
        }
    }

    /// Cycles per second, measured once against the monotonic clock (20 ms).
    pub fn hz() -> f64 {
        static HZ: OnceLock<f64> = OnceLock::new();
        *HZ.get_or_init(|| {
            let t0 = Instant::now();
            let c0 = cycles();
            std::thread::sleep(std::time::Duration::from_millis(20));
            let c1 = cycles();
            let dt = t0.elapsed().as_secs_f64();
            ((c1 - c0) as f64 / dt).max(1.0)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_counters_add() {
        let mut names: Vec<_> = Cov::ALL.iter().map(|c| c.name()).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), Cov::COUNT);
        let c = CovCounters::default();
        c.bump(Cov::Upcall as usize, 2);
        c.bump(Cov::Upcall as usize, 3);
        assert_eq!(c.get(Cov::Upcall as usize), 5);
        assert!(clock::hz() > 1e6);
    }
}
