//! The heap's sampled in-use estimate, and the peak heap profile.
//!
//! ## The estimate
//!
//! Every sampled block adds `weight × size` (its unbiased estimate of the
//! bytes it stands for) to one global counter when it is recorded and
//! subtracts exactly the same amount when it is freed, so the counter is
//! the in-use estimate of the whole heap at every instant, and returns to
//! exactly 0 when everything is freed. It is touched on the sample slow
//! path only.
//!
//! ## The peak
//!
//! The peak profile is a copy of every record's counters (`records::
//! capture_peak`) taken at the highest in-use so far. In-use reaches a
//! local maximum just before a free, so the check runs on the sample free
//! path, *before* the free is applied: if in-use is at its high since the
//! last capture (`INUSE >= HIGH`) and above the captured peak by more than
//! the hysteresis, the copy is taken then. A heap that only grows is
//! captured once, at its first free (or when `peak_profile` is called at
//! the high), with its exact live set.
//!
//! The hysteresis, `max(peak / 64, 4 KiB)`: a capture costs about 4 ns per
//! record (tens of thousands of records at rate 1, a few hundred at the
//! default rate), and a heap rising with frees along the way would
//! otherwise copy every record on every free. With 1/64, growing the heap
//! by 2× costs at most 64·ln 2 ≈ 45 captures, and the peak profile shows a
//! live set within 1.6% of the true peak (exactly the peak when in-use
//! rose more than that since the last free).
//!
//! Thread safety: `INUSE` and `HIGH` are relaxed atomics; a capture holds
//! `CAPTURE`. A free at a new high waits for it when another thread holds
//! it, then checks again: skipping would lose that high for good, since
//! in-use only falls after it (a test saw the peak stuck at 162 of 200
//! MiB when a capture on another thread made the free skip). Whoever holds
//! `CAPTURE` copies atomics or reads the copy into memory reserved before
//! the lock, so the wait is short and cannot deadlock. Under concurrent
//! allocation the copy is not one instant's state, as `heap_profile` is
//! not either.
//!
//! Invariants: `INUSE == Σ est_bytes(weight, size)` over live sampled
//! blocks, at any instant no sample is being recorded or freed;
//! `CAPTURED <= HIGH` after every capture or reset.

use crate::records;
use crate::sampler::WEIGHT_ONE;
use crate::sys::lock::SpinLock;
use core::sync::atomic::{AtomicI64, AtomicU64, Ordering};

/// Estimated bytes in use, from the samples. Written by every sample and
/// its free: alone on its cache lines (128 bytes: the adjacent-line
/// prefetcher pairs lines), so that it does not make every thread miss
/// on the read-mostly words the linker would put next to it.
#[repr(C, align(128))]
struct Inuse(AtomicU64);
static INUSE: Inuse = Inuse(AtomicU64::new(0));

/// Read on every sample and free, written only at a new high or capture.
#[repr(C, align(128))]
struct Marks {
    /// The highest `INUSE` seen since the last capture.
    high: AtomicU64,
    /// `INUSE` at the last capture (the peak shown), and its wall time.
    captured: AtomicU64,
    captured_at: AtomicI64,
    /// Held while the record counters are copied or the copy is read.
    capture: SpinLock,
}
static MARKS: Marks = Marks {
    high: AtomicU64::new(0),
    captured: AtomicU64::new(0),
    captured_at: AtomicI64::new(0),
    capture: SpinLock::new(),
};

/// Smallest rise over the captured peak worth a new capture.
fn hysteresis(captured: u64) -> u64 {
    (captured / 64).max(4096)
}

/// The bytes a sample of `weight` (fixed point) and `size` stands for.
/// Deterministic: the free subtracts what the alloc added.
#[inline]
pub(crate) fn est_bytes(weight: u64, size: u64) -> u64 {
    let b = (u128::from(weight) * u128::from(size)) >> WEIGHT_ONE.trailing_zeros();
    b.min(u128::from(u64::MAX >> 2)) as u64
}

/// A sample of `weight` and `size` was recorded.
pub(crate) fn on_alloc(weight: u64, size: u64) {
    let b = est_bytes(weight, size);
    let now = INUSE.0.fetch_add(b, Ordering::Relaxed).wrapping_add(b);
    if now > MARKS.high.load(Ordering::Relaxed) {
        MARKS.high.fetch_max(now, Ordering::Relaxed);
    }
}

/// A sampled block of `weight` and `size` is being freed (call it before
/// the record's counters see the free): takes the peak copy first if
/// in-use is at a new high.
pub(crate) fn on_free(weight: u64, size: u64) {
    if at_new_high() {
        // Wait for a capture another thread may be taking: skipping would
        // lose this high for good (in-use only falls from here). The
        // holder copies atomics or reads the copy, never waits for
        // anything, and a signal handler on this thread defers its frees.
        let _g = MARKS.capture.lock();
        if at_new_high() {
            capture_locked(INUSE.0.load(Ordering::Relaxed));
        }
    }
    INUSE
        .0
        .fetch_sub(est_bytes(weight, size), Ordering::Relaxed);
}

/// Is in-use at its high since the last capture, and above the captured
/// peak by more than the hysteresis?
#[inline]
fn at_new_high() -> bool {
    let now = INUSE.0.load(Ordering::Relaxed);
    now >= MARKS.high.load(Ordering::Relaxed) && now > rise_needed()
}

fn rise_needed() -> u64 {
    let c = MARKS.captured.load(Ordering::Relaxed);
    c.saturating_add(hysteresis(c))
}

/// Copies the records as the peak. `CAPTURE` is held.
fn capture_locked(inuse: u64) {
    records::capture_peak();
    MARKS.captured.store(inuse, Ordering::Relaxed);
    MARKS.captured_at.store(wall_nanos(), Ordering::Relaxed);
    MARKS.high.store(inuse, Ordering::Relaxed);
}

fn wall_nanos() -> i64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid out-pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_REALTIME, &mut ts) };
    ts.tv_sec
        .wrapping_mul(1_000_000_000)
        .wrapping_add(ts.tv_nsec)
}

/// The peak: its in-use estimate, its wall time (ns since the epoch, 0
/// before any capture), and the records' counters at that moment, read
/// by `read` under the capture lock. If in-use is above the last capture
/// right now (at its high, or after a rise the hysteresis let pass), the
/// copy is taken now first: a read never shows less than the heap.
pub(crate) fn read<R>(read: impl FnOnce(u64, i64) -> R) -> R {
    let _g = MARKS.capture.lock();
    let now = INUSE.0.load(Ordering::Relaxed);
    if now > MARKS.captured.load(Ordering::Relaxed) {
        capture_locked(now);
    }
    read(
        MARKS.captured.load(Ordering::Relaxed),
        MARKS.captured_at.load(Ordering::Relaxed),
    )
}

/// Starts the peak over from the heap as it is now.
pub(crate) fn reset() {
    let _g = MARKS.capture.lock();
    capture_locked(inuse_bytes());
}

/// Before `fork`: a capture is brief and never allocates; wait for it.
pub(crate) fn lock_for_fork() {
    MARKS.capture.raw_lock();
}

/// After `fork`, in parent and child.
pub(crate) fn unlock_after_fork() {
    MARKS.capture.raw_unlock();
}

/// The heap's estimated in-use bytes now (exact at rate 1).
pub(crate) fn inuse_bytes() -> u64 {
    // A free racing an alloc of the same bytes can dip it below 0 for an
    // instant: read it as signed.
    (INUSE.0.load(Ordering::Relaxed) as i64).max(0) as u64
}
