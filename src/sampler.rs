//! The sample decision: a per-thread countdown of bytes.
//!
//! The math. Mark every allocated byte independently with probability
//! 1/R (R = the rate, mean bytes between samples). An allocation of S bytes
//! is sampled when it covers a mark: P = 1 − (1 − 1/R)^S ≈ 1 − e^(−S/R).
//! The distance to the next mark is geometric, drawn here as
//! `floor(−ln(u)·R)` with u uniform on (0, 1], i.e. the floor of an
//! exponential with mean R, for which P(distance < S) = 1 − e^(−S/R)
//! exactly. The distance is memoryless, so after a sample we draw afresh
//! from the end of the allocation and the overshoot is simply dropped (as
//! Go does); one huge allocation costs one slow path.
//!
//! Unbiasing (Horvitz–Thompson): a sample of size S stands for
//! 1 / (1 − e^(−S/R)) objects. At R = 512 KiB that is 32768.5 for a 16-byte
//! object, 1.58 for a 512 KiB one and 1.0000 for 16 MiB. The weight uses the
//! rate of the draw that produced the sample, not the rate when a profile is
//! written (Go's `scaleHeapSample` uses the latter, which is wrong after a
//! rate change). At R = 1 every allocation is sampled with weight exactly 1.
//!
//! The fast path is one thread-local countdown and one branch:
//!
//! ```text
//! next -= size;  if next - FLOOR < 0 { slow }
//! ```
//!
//! `FLOOR` makes a rate change take effect at once on every thread without
//! a second branch: `set_rate` moves it up by `FLOOR_STEP`, more than any
//! countdown can hold, so every thread's next allocation takes the slow
//! path, which sees its `synced` floor is stale and redraws with the new
//! rate. Wrapping arithmetic keeps this valid as FLOOR wraps around; a
//! thread idle through 2^23 rate changes could miss one (documented limit).
//!
//! Sign rules: `next - FLOOR >= 0` means "bytes left before the next
//! sample"; a new thread starts at 0 - size < 0, so its first allocation
//! initialises it in the slow path.
//!
//! Exact bytes allocated, for free: every byte allocated is subtracted from
//! the thread's countdown `NEXT` (one word of static TLS, `sys::countdown`)
//! by the fast path and by nothing else, so the bytes allocated by a thread
//! since `NEXT` was last written are `LAST_SET - NEXT`. Every write of
//! `NEXT` outside the fast path (`set_next`) first moves that difference
//! into the thread's `UNFLUSHED` bytes, which go to the global `ALLOCATED`
//! once they reach `FLUSH_BYTES` (so that at rate 1, where every allocation
//! writes `NEXT`, threads do not bounce one cache line). Invariant, per
//! thread, between two allocations:
//!
//! ```text
//! allocated by the thread = its share of ALLOCATED + UNFLUSHED + (LAST_SET - NEXT)
//! ```
//!
//! A reader sees the other threads late by at most their countdown plus
//! `FLUSH_BYTES`: about one rate each, `OFF_DRAW` when profiling is off.

use crate::guard;
use crate::sys::countdown;
use core::cell::Cell;
use core::sync::atomic::{AtomicI64, AtomicU64, AtomicUsize, Ordering};

/// Go's default: one sample per 512 KiB allocated, on average.
pub const DEFAULT_RATE: usize = 512 * 1024;

/// One object, in the fixed-point unit of sample weights.
pub(crate) const WEIGHT_ONE: u64 = 1 << 16;

/// Largest countdown drawn.
const MAX_DRAW: i64 = 1 << 38;
/// The countdown while profiling is off (rate 0): each thread still takes
/// the slow path once per 4 MiB it allocates, to publish its exact
/// allocated bytes and drive `MEMPROF_TRACE`. That is one slow path of
/// some 20 ns per 4 MiB, nothing next to the allocations themselves.
pub(crate) const OFF_DRAW: i64 = 4 << 20;
/// Bytes a thread counts locally before adding them to `ALLOCATED`.
const FLUSH_BYTES: u64 = 64 * 1024;
/// How far `set_rate` moves the floor: more than any countdown.
const FLOOR_STEP: i64 = 1 << 40;

crate::sys::direct::direct_static!(
    /// `FLOOR` (see the module docs), read by every allocation's fast path:
    /// reached without the GOT (`sys::direct`), alone on its cache lines.
    fn floor() -> AtomicI64,
    "memprof_0_1_floor"
);

/// The rate, read by the slow path.
static RATE: AtomicUsize = AtomicUsize::new(DEFAULT_RATE);

thread_local! {
    /// The FLOOR this thread last drew against (stale => the rate changed).
    static SYNCED: Cell<i64> = const { Cell::new(i64::MIN) };
    /// The rate the current countdown was drawn with: a sample's weight.
    static DRAW_RATE: Cell<usize> = const { Cell::new(0) };
    static RNG: Cell<u64> = const { Cell::new(0) };
    /// The value `NEXT` was last given outside the fast path.
    static LAST_SET: Cell<i64> = const { Cell::new(0) };
    /// Bytes allocated by this thread, counted but not yet in `ALLOCATED`.
    static UNFLUSHED: Cell<u64> = const { Cell::new(0) };
    /// What this thread has added to `ALLOCATED` (net of `uncount`).
    static THREAD_FLUSHED: Cell<u64> = const { Cell::new(0) };
}

/// Bytes allocated by every thread, as far as flushed (see the module docs).
static ALLOCATED: AtomicU64 = AtomicU64::new(0);

/// Counts `size` bytes against this thread's countdown. `true` when no
/// sample is due: the caller forwards to the inner allocator and is done.
#[inline(always)]
pub(crate) fn fast(size: usize) -> bool {
    countdown::sub(size).wrapping_sub(floor_now()) >= 0
}

/// The floor, for the fast path: one RIP-relative load (`sys::direct`).
///
/// Not `asm goto` with the compare reading the floor from memory (one
/// instruction fewer where the fast path is inlined): in the program's
/// out-of-line `__rust_alloc` it kept LLVM from shrink-wrapping the frame
/// that `System`'s aligned path needs, and the prologue and epilogue on
/// every allocation cost 4 more than the compare saved (syn's parse
/// workload: +0.5% instructions).
#[inline(always)]
fn floor_now() -> i64 {
    #[cfg(all(target_arch = "x86_64", not(memprof_loom)))]
    {
        crate::sys::direct::direct_load!("memprof_0_1_floor") as i64
    }
    #[cfg(not(all(target_arch = "x86_64", not(memprof_loom))))]
    {
        floor().load(Ordering::Relaxed)
    }
}

/// A rate as `MEMPROFILERATE` gives it (and `MEMPROF_TRACE`'s count): a
/// non-negative decimal integer that fits `usize`, surrounding ASCII
/// spaces allowed; anything else is `None`.
pub(crate) fn parse_rate(value: &[u8]) -> Option<usize> {
    let v = value.trim_ascii();
    if v.is_empty() {
        return None;
    }
    let mut n: usize = 0;
    for &b in v {
        if !b.is_ascii_digit() {
            return None;
        }
        n = n.checked_mul(10)?.checked_add(usize::from(b - b'0'))?;
    }
    Some(n)
}

/// A decision to record an allocation.
#[derive(Clone, Copy)]
pub(crate) struct Sample {
    /// Objects this sample stands for, in units of `WEIGHT_ONE`.
    pub(crate) weight: u64,
    /// The test scope that owns the block (0: none), see `scope.rs`.
    pub(crate) scope: u32,
}

/// The countdown ran out. Returns the sample if this allocation is to be
/// recorded, `None` if not (rate changed and a fresh draw covers it,
/// profiling is off, or the thread is inside the profiler). Inside a test
/// scope (`scope`, the thread's current one, 0 for none) every allocation
/// is recorded, with weight 1. The caller reads the environment first
/// (`env::init_once`): this module sits below both.
#[cold]
#[inline(never)]
pub(crate) fn slow(size: usize, scope: u32) -> Option<Sample> {
    let floor = floor().load(Ordering::Acquire);
    if scope != 0 {
        return scoped(scope, floor);
    }
    let rate = RATE.load(Ordering::Acquire);
    // Rate 1, outside a test scope, drawn against this floor and rate:
    // every allocation comes here, and all there is to do is write the
    // countdown (the draw at rate 1 is 0) and take the sample. What
    // `slow_other` would do in this case, without its other cases.
    if rate == 1
        && SYNCED.try_with(Cell::get) == Ok(floor)
        && DRAW_RATE.try_with(Cell::get) == Ok(1)
        && !guard::is_busy()
    {
        set_next(floor);
        return Some(Sample {
            weight: WEIGHT_ONE,
            scope: 0,
        });
    }
    slow_other(size, floor, rate)
}

/// `slow` inside test scope `scope`: every allocation is recorded, with
/// weight 1, except the profiler's own and the panic machinery's.
#[inline(always)]
fn scoped(scope: u32, floor: i64) -> Option<Sample> {
    if guard::is_busy() {
        // The profiler's own allocations are never sampled.
        return None;
    }
    // The scope keeps the countdown expired: `force_slow_path` puts it
    // 2^62 below the floor, and allocations and floor changes only move
    // it further down. Write it again once it has moved 2^60 (about 2^20
    // rate changes), long before it could wrap around to above the floor.
    // Not writing it leaves the bytes allocated meanwhile in `LAST_SET -
    // NEXT`, counted at the next write (module docs).
    let below = countdown::get()
        .wrapping_sub(floor)
        .wrapping_add(FORCED_BELOW);
    if below.unsigned_abs() > 1 << 60 {
        force_slow_path();
    }
    if std::thread::panicking() {
        // The panic machinery (a backtrace print can allocate tens of MB)
        // is not the scope's work: record none of it.
        return None;
    }
    Some(Sample {
        weight: WEIGHT_ONE,
        scope,
    })
}

/// `slow` outside a test scope, every case.
#[cold]
#[inline(never)]
fn slow_other(size: usize, floor: i64, rate: usize) -> Option<Sample> {
    let (Ok(synced), Ok(draw_rate)) = (SYNCED.try_with(Cell::get), DRAW_RATE.try_with(Cell::get))
    else {
        return None;
    };
    if guard::is_busy() {
        // The profiler's own allocations are never sampled. Draw afresh:
        // memorylessness keeps the thread's other samples unbiased.
        restart(floor, rate);
        return None;
    }
    if synced != floor || draw_rate != rate {
        // First allocation of this thread, or the rate changed since the
        // last draw: this allocation is judged against a fresh draw.
        let gap = restart(floor, rate);
        if rate == 0 || gap >= size as i64 {
            restart_keep(floor, gap - size as i64);
            return None;
        }
        restart(floor, rate);
        return Some(Sample {
            weight: weight(size, rate),
            scope: 0,
        });
    }
    // The floor and rate are the ones this thread drew against: only the
    // countdown needs writing.
    restart_keep(floor, draw(rate));
    if draw_rate == 0 {
        return None;
    }
    Some(Sample {
        weight: weight(size, draw_rate),
        scope: 0,
    })
}

/// Draws a new countdown for `rate` and stores it; returns the gap drawn.
fn restart(floor: i64, rate: usize) -> i64 {
    let gap = draw(rate);
    let _ = SYNCED.try_with(|s| s.set(floor));
    let _ = DRAW_RATE.try_with(|r| r.set(rate));
    restart_keep(floor, gap);
    gap
}

fn restart_keep(floor: i64, gap: i64) {
    set_next(floor.wrapping_add(gap));
}

/// Writes this thread's countdown, first counting the bytes allocated
/// since it was last written. The only writer of `NEXT` but the fast path.
#[inline]
fn set_next(value: i64) {
    count_allocated(FLUSH_BYTES);
    countdown::set(value);
    let _ = LAST_SET.try_with(|l| l.set(value));
}

/// Moves the bytes this thread allocated since `NEXT` was last written
/// into `UNFLUSHED`, and those into `ALLOCATED` once they reach `flush_at`.
#[inline]
fn count_allocated(flush_at: u64) {
    let next = countdown::get();
    let (Ok(last), Ok(unflushed)) = (LAST_SET.try_with(Cell::get), UNFLUSHED.try_with(Cell::get))
    else {
        return;
    };
    let pending = unflushed.wrapping_add(last.wrapping_sub(next) as u64);
    let _ = LAST_SET.try_with(|l| l.set(next));
    if pending >= flush_at {
        ALLOCATED.fetch_add(pending, Ordering::Relaxed);
        let _ = THREAD_FLUSHED.try_with(|t| t.set(t.get().wrapping_add(pending)));
        #[cfg(test)]
        let _ = tests::FLUSHED_HERE.try_with(|f| f.set(f.get() + pending));
        let _ = UNFLUSHED.try_with(|u| u.set(0));
    } else {
        let _ = UNFLUSHED.try_with(|u| u.set(pending));
    }
}

/// Runs `f` with sampling off on this thread: what `f` allocates goes to
/// the inner allocator unrecorded, and is taken back out of the exact
/// bytes-allocated count (the profiler's own work, such as symbolizing for
/// a profile write, is not the program's). Nested calls count once.
pub(crate) fn without_sampling<R>(f: impl FnOnce() -> R) -> R {
    if guard::is_busy() {
        return f();
    }
    let start = thread_counted();
    let r = {
        let _busy = guard::Busy::enter();
        f()
    };
    uncount(thread_counted().wrapping_sub(start));
    r
}

/// Bytes this thread has counted so far: flushed, unflushed and pending.
fn thread_counted() -> u64 {
    count_allocated(u64::MAX);
    THREAD_FLUSHED
        .try_with(Cell::get)
        .unwrap_or(0)
        .wrapping_add(UNFLUSHED.try_with(Cell::get).unwrap_or(0))
}

/// Takes `bytes` this thread counted back out: from its unflushed bytes
/// first, the rest (flushed meanwhile) from `ALLOCATED`.
fn uncount(bytes: u64) {
    let unflushed = UNFLUSHED.try_with(Cell::get).unwrap_or(0);
    let local = bytes.min(unflushed);
    let _ = UNFLUSHED.try_with(|u| u.set(unflushed - local));
    if bytes > local {
        ALLOCATED.fetch_sub(bytes - local, Ordering::Relaxed);
        let _ = THREAD_FLUSHED.try_with(|t| t.set(t.get().wrapping_sub(bytes - local)));
    }
}

/// Bytes allocated (requested sizes; a `realloc` counts its new size)
/// since the process started: exact for the calling thread, late by at
/// most one countdown and `FLUSH_BYTES` for each other thread, and missing
/// at most that much for each thread that has exited.
pub(crate) fn allocated_bytes() -> u64 {
    count_allocated(0);
    ALLOCATED.load(Ordering::Relaxed)
}

/// A geometric gap with mean `rate`: bytes to skip before the next sample.
fn draw(rate: usize) -> i64 {
    match rate {
        0 => OFF_DRAW,
        1 => 0,
        _ => gap_from_uniform(next_random(), rate),
    }
}

/// `floor(−ln(u)·rate)` for u in (0, 1] taken from the top 53 bits of `x`.
pub(crate) fn gap_from_uniform(x: u64, rate: usize) -> i64 {
    let u = ((x >> 11) + 1) as f64 * (1.0 / (1u64 << 53) as f64);
    let g = -u.ln() * rate as f64;
    if g >= MAX_DRAW as f64 {
        MAX_DRAW
    } else {
        g as i64
    }
}

/// The weight of one sample of `size` bytes taken at `rate`, fixed point:
/// `WEIGHT_ONE / (1 − e^(−size/rate))`.
pub(crate) fn weight(size: usize, rate: usize) -> u64 {
    if rate <= 1 {
        return WEIGHT_ONE;
    }
    let p = -(-(size as f64) / rate as f64).exp_m1();
    if p <= 0.0 {
        return u64::MAX / 4;
    }
    let w = WEIGHT_ONE as f64 / p;
    if w >= (u64::MAX / 4) as f64 {
        u64::MAX / 4
    } else {
        (w + 0.5) as u64
    }
}

/// wyrand, per thread, seeded from the thread's TLS address and the clock.
fn next_random() -> u64 {
    RNG.try_with(|rng| {
        let mut s = rng.get();
        if s == 0 {
            s = seed();
        }
        s = s.wrapping_add(0xa076_1d64_78bd_642f);
        rng.set(s);
        let t = u128::from(s) * u128::from(s ^ 0xe703_7ed1_a0b4_28db);
        (t >> 64) as u64 ^ t as u64
    })
    .unwrap_or(0x9e37_79b9_7f4a_7c15)
}

fn seed() -> u64 {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid out-pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    let local = 0u8;
    let mut z = (&local as *const u8 as u64)
        ^ (ts.tv_nsec as u64).rotate_left(32)
        ^ ts.tv_sec as u64
        ^ (COUNTER.fetch_add(1, Ordering::Relaxed) as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    // splitmix64 finaliser, and never 0 (0 means "unseeded").
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    (z ^ (z >> 31)) | 1
}

/// Keeps this thread's countdown expired, so that every allocation takes
/// the slow path (while a test scope is active). 2^62 bytes of allocation
/// cannot bring it back above the floor.
pub(crate) fn force_slow_path() {
    let floor = floor().load(Ordering::Relaxed);
    set_next(floor.wrapping_sub(FORCED_BELOW));
}

/// How far below the floor `force_slow_path` puts the countdown.
const FORCED_BELOW: i64 = 1 << 62;

/// Ends `force_slow_path`: the next allocation draws a fresh countdown
/// (memorylessness keeps the global sampling unbiased).
pub(crate) fn resume_sampling() {
    let _ = SYNCED.try_with(|s| s.set(i64::MIN));
    let floor = floor().load(Ordering::Relaxed);
    set_next(floor.wrapping_sub(1));
}

/// Seeds this thread's generator (tests use it to run many seeds) and
/// forces a fresh draw at its next allocation.
pub(crate) fn seed_thread(seed: u64) {
    let _ = RNG.try_with(|r| r.set(seed | 1));
    let _ = SYNCED.try_with(|s| s.set(i64::MIN));
    set_next(floor().load(Ordering::Relaxed).wrapping_sub(1));
}

/// Sets the sampling rate for every thread, at once. See [`crate::set_rate`].
pub(crate) fn set_rate(bytes: usize) {
    crate::stack::hint_if_slow(bytes);
    RATE.store(bytes, Ordering::Release);
    floor().fetch_add(FLOOR_STEP, Ordering::AcqRel);
}

pub(crate) fn rate() -> usize {
    RATE.load(Ordering::Acquire)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_parse_or_are_rejected() {
        assert_eq!(parse_rate(b"0"), Some(0));
        assert_eq!(parse_rate(b"1"), Some(1));
        assert_eq!(parse_rate(b" 524288 "), Some(524288));
        for bad in [
            &b"abc"[..],
            b"-5",
            b"",
            b"  ",
            b"99999999999999999999999",
            b"1e6",
            b"12k",
        ] {
            assert_eq!(parse_rate(bad), None, "{:?}", String::from_utf8_lossy(bad));
        }
    }

    thread_local! {
        /// What this thread added to `ALLOCATED`.
        pub(super) static FLUSHED_HERE: Cell<u64> = const { Cell::new(0) };
    }

    /// This thread's bytes as the counters see them (module invariant).
    fn thread_total() -> u64 {
        let pending = LAST_SET.with(Cell::get).wrapping_sub(countdown::get()) as u64;
        FLUSHED_HERE.with(Cell::get) + UNFLUSHED.with(Cell::get) + pending
    }

    /// Drives the countdown as `Sampled` does (fast path, then the slow
    /// path when it runs out), through a forced test scope, and
    /// checks that every byte is counted exactly once.
    #[test]
    fn every_byte_allocated_is_counted_once() {
        std::thread::spawn(|| {
            seed_thread(12345);
            let truth = Cell::new(0u64);
            let before = thread_total();
            let alloc = |size: usize| {
                truth.set(truth.get() + size as u64);
                if !fast(size) {
                    let _ = slow(size, 0);
                }
            };
            for i in 0..20_000usize {
                alloc(16 + (i * 37) % 5000);
            }
            force_slow_path();
            for i in 0..1000usize {
                // A test scope: every allocation takes the slow path.
                truth.set(truth.get() + 100 + i as u64);
                assert!(!fast(100 + i));
                let _ = slow(100 + i, 7);
            }
            resume_sampling();
            for i in 0..20_000usize {
                alloc(1 + (i * 131) % 70_000);
            }
            let truth = truth.get();
            assert_eq!(thread_total() - before, truth);
            // And the reader brings this thread up to date.
            let global = allocated_bytes();
            assert_eq!(UNFLUSHED.with(Cell::get), 0);
            assert_eq!(LAST_SET.with(Cell::get), countdown::get());
            assert!(global >= truth);
        })
        .join()
        .unwrap();
    }

    fn splitmix(state: &mut u64) -> u64 {
        *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = *state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    #[test]
    fn gap_mean_is_the_rate() {
        // n = 200_000 exponential gaps: the mean's SD is R/sqrt(n) = 0.22% of
        // R; we allow 6 SD (1.3%), so correct code fails ~2e-9 of the time.
        let (rate, n) = (524_288usize, 200_000);
        let mut s = 1;
        let sum: f64 = (0..n)
            .map(|_| gap_from_uniform(splitmix(&mut s), rate) as f64)
            .sum();
        let mean = sum / n as f64;
        assert!(
            (mean - rate as f64).abs() < 6.0 * rate as f64 / (n as f64).sqrt(),
            "mean {mean}"
        );
    }

    #[test]
    fn weights_match_the_formula() {
        let r = 524_288;
        assert_eq!(weight(100, 1), WEIGHT_ONE);
        let w16 = weight(16, r) as f64 / WEIGHT_ONE as f64;
        assert!((w16 - 32768.5).abs() < 0.01, "{w16}");
        let w = weight(r, r) as f64 / WEIGHT_ONE as f64;
        assert!((w - 1.0 / (1.0 - (-1f64).exp())).abs() < 1e-4, "{w}");
        assert_eq!(weight(1 << 30, r), WEIGHT_ONE);
    }

    /// Simulates the countdown over a stream of allocations and checks the
    /// weighted estimate of the total against the truth, across seeds.
    #[test]
    fn estimator_is_unbiased_across_seeds() {
        let rate = 4096usize;
        let sizes = [16usize, 48, 200, 1000, 5000, 40_000];
        let per_seed = 20_000;
        let truth: f64 = (0..per_seed).map(|i| sizes[i % sizes.len()] as f64).sum();
        let seeds = 200;
        let mut sum = 0.0;
        let mut sumsq = 0.0;
        for seed in 0..seeds {
            let mut s = seed as u64 * 7919 + 1;
            let mut left = gap_from_uniform(splitmix(&mut s), rate);
            let mut est = 0.0;
            for i in 0..per_seed {
                let size = sizes[i % sizes.len()];
                left -= size as i64;
                if left < 0 {
                    est += weight(size, rate) as f64 / WEIGHT_ONE as f64 * size as f64;
                    left = gap_from_uniform(splitmix(&mut s), rate);
                }
            }
            sum += est;
            sumsq += est * est;
        }
        let mean = sum / seeds as f64;
        let sd = (sumsq / seeds as f64 - mean * mean).sqrt();
        // The mean of 200 estimates has SD sd/sqrt(200); allow 5 of those.
        let tol = 5.0 * sd / (seeds as f64).sqrt();
        assert!(
            (mean - truth).abs() < tol,
            "mean {mean} truth {truth} tol {tol}"
        );
        // And each estimate is useful: relative SD near 1/sqrt(samples).
        assert!(sd / truth < 0.05, "relative sd {}", sd / truth);
    }
}
