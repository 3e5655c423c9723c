//! Hashing of masked key words.
//!
//! Subtables hash the masked words of a key stage by stage, so that the hash of
//! stages `0..=i` is a prefix computation of the hash of stages `0..=i+1`: a
//! lookup computes each stage's hash incrementally and stops at the first stage
//! whose hash is not in the subtable's prefix set.
//!
//! The per-word step is a bijection of the word for a fixed running state
//! (xor, odd multiply, xor-shift are all invertible), so two values that differ
//! in a single word do not collide (but for the one hash value the tables
//! reserve as their empty marker). Each stage's output goes through the
//! MurmurHash3 64-bit finaliser so that the tables, which use the hash as is
//! ([`crate::flat::FlatMap`]), see well-spread low and high bits. The running state starts
//! from a per-classifier random seed, so collision chains cannot be planned
//! from outside the process.
//!
//! Collisions are harmless for correctness: a stage-prefix collision only makes
//! a lookup go one stage further than needed (examining, and un-wildcarding,
//! more bits), and the final table compares full values.

const MUL: u64 = 0x9E37_79B9_7F4A_7C15;

/// Folds one masked key word into the running hash state.
#[inline(always)]
pub(crate) fn mix(h: u64, w: u64) -> u64 {
    let x = (h ^ w).wrapping_mul(MUL);
    x ^ (x >> 32)
}

/// The hashing parameters of one classifier.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Hashing {
    /// Initial running state.
    pub seed: u64,
    /// Bits of the final hash that are kept: all of them, except when tests
    /// deliberately degrade the hash to exercise collision handling.
    pub keep: u64,
}

impl Hashing {
    /// Turns a running state into a table key (MurmurHash3 `fmix64`, never 0).
    #[inline(always)]
    pub(crate) fn finish(self, mut h: u64) -> u64 {
        h ^= h >> 33;
        h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
        h ^= h >> 33;
        h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
        h ^= h >> 33;
        crate::flat::nonzero(h & self.keep)
    }
}
