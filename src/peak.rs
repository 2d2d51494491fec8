//! The heap's sampled in-use estimate, and the peak heap profile.
//!
//! Every sampled block adds `weight × size` (its unbiased estimate of the
//! bytes it stands for) to one global counter when it is recorded and
//! subtracts exactly the same amount when it is freed, so the counter is
//! the in-use estimate of the whole heap at every instant, and returns to
//! exactly 0 when everything is freed. It is touched on the sample slow
//! path only.
//!
//! Thread safety: one atomic, updated with relaxed read-modify-writes.
//!
//! Invariant: `INUSE == Σ est_bytes(weight, size)` over live sampled
//! blocks, at any instant no sample is being recorded or freed.

use crate::sampler::WEIGHT_ONE;
use core::sync::atomic::{AtomicU64, Ordering};

/// Estimated bytes in use, from the samples.
static INUSE: AtomicU64 = AtomicU64::new(0);

/// The bytes a sample of `weight` (fixed point) and `size` stands for.
/// Deterministic: the free subtracts what the alloc added.
#[inline]
pub(crate) fn est_bytes(weight: u64, size: u64) -> u64 {
    let b = (u128::from(weight) * u128::from(size)) >> WEIGHT_ONE.trailing_zeros();
    b.min(u128::from(u64::MAX >> 2)) as u64
}

/// A sample of `weight` and `size` was recorded.
pub(crate) fn on_alloc(weight: u64, size: u64) {
    INUSE.fetch_add(est_bytes(weight, size), Ordering::Relaxed);
}

/// A sampled block of `weight` and `size` is being freed.
pub(crate) fn on_free(weight: u64, size: u64) {
    INUSE.fetch_sub(est_bytes(weight, size), Ordering::Relaxed);
}

/// The heap's estimated in-use bytes now (exact at rate 1).
pub(crate) fn inuse_bytes() -> u64 {
    // A free racing an alloc of the same bytes can dip it below 0 for an
    // instant: read it as signed.
    (INUSE.load(Ordering::Relaxed) as i64).max(0) as u64
}
