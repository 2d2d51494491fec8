//! The heap's sampled in-use estimate, and the peak heap profile.
//!
//! ## The estimate
//!
//! Every sampled block adds `weight × size` (its unbiased estimate of the
//! bytes it stands for) to the in-use counter when it is recorded and
//! subtracts exactly the same amount when it is freed, so the counter is
//! the in-use estimate of the whole heap at every instant, and returns to
//! exactly 0 when everything is freed. It is touched on the sample slow
//! path only.
//!
//! The counter is split in per-thread slots (`SLOTS`, each alone on its
//! pair of cache lines; a thread adds to its own slot, a free to the
//! freeing thread's slot, so a slot may go negative): in-use is their sum.
//! The first `OWNED` threads each get a slot of their own, for good (a
//! 64-bit count hands them out, so none is handed out twice, and a slot is
//! never handed back, even when its thread exits): its only writer, the
//! thread adds with a plain load and store (`add_owned`, `sub_owned`: no
//! locked instruction; at rate 1 these were two of the four locked
//! read-modify-writes of an alloc and free). Later threads, and threads
//! whose locals are gone, share the last `SLOTS - OWNED` slots and add
//! atomically (`add`, `sub`).
//! One shared counter was one cache line bounced between cores on every
//! sample and every free: at rate 1 with two threads allocating, a third
//! of the time. A sum of slots costs a load per slot in use, so it is
//! only taken where a single word would have been read for an exact
//! answer: near the peak, and by the readers (`inuse_bytes`, `read`).
//! Elsewhere the free path needs only to know that in-use is *not* above
//! the captured peak's rise, which one shared upper bound answers:
//!
//! `BOUND`, the sum of every slot's `reserve`, a value kept at or above
//! the slot's counter: a sample that takes its slot over its reserve
//! first raises the reserve (and `BOUND`) to the counter plus `CHUNK`, and
//! a free that leaves it more than `2 × CHUNK` below its reserve lowers
//! the reserve to the counter plus `CHUNK`. So `BOUND` is written about
//! once per `CHUNK` (4 KiB) of a thread's net growth or shrinkage, read
//! by every sample and free, and exceeds in-use by at most `2 × CHUNK`
//! per slot in use.
//!
//! ## The peak
//!
//! The peak profile is a copy of every record's counters (`records::
//! capture_peak`) taken at the highest in-use so far. In-use reaches a
//! local maximum just before a free, so the check runs on the sample free
//! path, *before* the free is applied: if in-use is at its high since the
//! last capture (`in-use >= HIGH`) and above the captured peak by more than
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
//! Which values are exact: a capture can only happen at `in-use > RISE`
//! (`RISE` = captured + hysteresis), and `BOUND >= in-use`, so a sample or
//! a free that reads `BOUND <= RISE` skips the peak check and leaves `HIGH`
//! alone: `HIGH` is the highest in-use seen since the last capture *among
//! those above `RISE`*, and for any in-use above `RISE`, "at or above
//! `HIGH`" means the same as before. So the peak is exactly what one
//! counter gave, with no new error bound: above `BOUND > RISE` every
//! sample and free sums the slots, exact when no other thread is
//! mid-sample (as the one counter was); under concurrent samples the sum, read
//! slot by slot, may mix moments by what the other threads do during it
//! (a few samples), where one counter gave one instant's value. A thread
//! that reads a stale `BOUND` just below `RISE` while another thread's
//! sample raises it may skip one check, as a stale read of the one
//! counter could.
//!
//! Thread safety: the slots, `BOUND` and `HIGH` are atomics (an owned
//! slot's written by its thread alone, with plain stores); a capture holds
//! `CAPTURE`. A free at a new high waits for it when another thread holds
//! it, then checks again: skipping would lose that high for good, since
//! in-use only falls after it (a test saw the peak stuck at 162 of 200
//! MiB when a capture on another thread made the free skip). Whoever holds
//! `CAPTURE` copies atomics or reads the copy into memory reserved before
//! the lock, so the wait is short and cannot deadlock. Under concurrent
//! allocation the copy is not one instant's state, as `heap_profile` is
//! not either.
//!
//! Invariants, at any instant no sample is being recorded or freed:
//! `Σ slot.inuse == Σ est_bytes(weight, size)` over live sampled blocks;
//! each `slot.inuse <= slot.reserve`; `BOUND == Σ slot.reserve`. And
//! `CAPTURED <= HIGH`, `RISE == CAPTURED + hysteresis(CAPTURED)` after
//! every capture or reset. (`validate` checks the slot ones.) At every
//! instant: an owned slot has at most one thread that ever wrote it.

use crate::records;
use crate::sampler::WEIGHT_ONE;
use crate::sys::lock::SpinLock;
use core::cell::Cell;
use core::sync::atomic::{AtomicI64, AtomicU32, AtomicU64, Ordering};

/// Per-thread slots of the in-use counter: `OWNED` slots each written by
/// one thread, then shared ones. Threads past `OWNED` share those
/// (`NEXT_SLOT % SHARED`): still exact, only slower.
const SLOTS: usize = 64;
/// Slots `0..OWNED` have one thread each.
const OWNED: usize = 48;
/// The shared slots, `OWNED..SLOTS`; the last serves threads whose locals
/// are gone.
const SHARED: usize = SLOTS - OWNED;
/// The reserve's step (see the module docs).
const CHUNK: i64 = 4096;

/// One slot: alone on its cache-line pair (the adjacent-line prefetcher
/// pairs lines), written by its thread only (or by its sharers,
/// atomically), read by the others only near the peak and by the readers.
#[repr(C, align(128))]
struct Slot<A = AtomicI64> {
    /// The slot's share of in-use (samples minus frees counted here).
    inuse: A,
    /// At or above `inuse`: this slot's part of `BOUND`.
    reserve: A,
}

static SLOT: [Slot; SLOTS] = [const {
    Slot {
        inuse: AtomicI64::new(0),
        reserve: AtomicI64::new(0),
    }
}; SLOTS];

/// One past the highest slot handed out so far: a sum reads that many.
static USED: AtomicU32 = AtomicU32::new(0);
/// Slots handed out, ever. 64 bits: it never wraps, so an owned slot is
/// never handed out twice.
static NEXT_SLOT: AtomicU64 = AtomicU64::new(0);

thread_local! {
    /// This thread's slot plus one; 0 until its first sample or free.
    static MY_SLOT: Cell<u32> = const { Cell::new(0) };
}

/// `Σ slot.reserve`: at or above in-use. Read by every sample and free,
/// written about once per `CHUNK` of a thread's net change.
#[repr(C, align(128))]
struct Bound(AtomicI64);
static BOUND: Bound = Bound(AtomicI64::new(0));

/// Read on every sample and free, written only at a new high or capture.
#[repr(C, align(128))]
struct Marks {
    /// The highest in-use seen above `rise` since the last capture.
    high: AtomicI64,
    /// `captured + hysteresis(captured)`: a capture needs in-use above it.
    rise: AtomicI64,
    /// In-use at the last capture (the peak shown), and its wall time.
    captured: AtomicU64,
    captured_at: AtomicI64,
    /// Held while the record counters are copied or the copy is read.
    capture: SpinLock,
}
static MARKS: Marks = Marks {
    high: AtomicI64::new(0),
    rise: AtomicI64::new(4096),
    captured: AtomicU64::new(0),
    captured_at: AtomicI64::new(0),
    capture: SpinLock::new(),
};

/// The atomic a slot word is, so that the `loom` model runs this code.
trait Word {
    fn get(&self) -> i64;
    fn add(&self, v: i64) -> i64;
    fn cas(&self, old: i64, new: i64) -> bool;
    /// Its one writer's read of it (relaxed).
    fn mine(&self) -> i64;
    /// Its one writer's store (release; a plain store on x86).
    fn set(&self, v: i64);
}

impl Word for AtomicI64 {
    #[inline]
    fn get(&self) -> i64 {
        AtomicI64::load(self, Ordering::SeqCst)
    }
    #[inline]
    fn mine(&self) -> i64 {
        AtomicI64::load(self, Ordering::Relaxed)
    }
    #[inline]
    fn set(&self, v: i64) {
        self.store(v, Ordering::Release);
    }
    #[inline]
    fn add(&self, v: i64) -> i64 {
        self.fetch_add(v, Ordering::SeqCst).wrapping_add(v)
    }
    #[inline]
    fn cas(&self, old: i64, new: i64) -> bool {
        self.compare_exchange(old, new, Ordering::SeqCst, Ordering::Relaxed)
            .is_ok()
    }
}

/// Adds `b` bytes to `slot`, raising its reserve (and `bound`) first if
/// the counter would pass it. SeqCst (free on x86: the adds are locked
/// instructions and loads are plain): with a slot shared by two threads,
/// an add that reads the reserve before another thread's `sub` lowers it
/// is seen by that `sub`'s re-check (see `sub`).
#[inline]
fn add<A: Word>(slot: &Slot<A>, bound: &A, b: i64) {
    let v = slot.inuse.add(b);
    let r = slot.reserve.get();
    if v > r {
        raise(slot, bound, v, r);
    }
}

/// Raises `slot`'s reserve from `r` to cover `v` plus `CHUNK`.
#[cold]
#[inline(never)]
fn raise<A: Word>(slot: &Slot<A>, bound: &A, v: i64, r: i64) {
    let by = v.wrapping_sub(r).wrapping_add(CHUNK);
    slot.reserve.add(by);
    bound.add(by);
}

/// Takes `b` bytes from `slot`, and lowers its reserve to the counter
/// plus `CHUNK` once it is more than `2 × CHUNK` above it. The lowering
/// is a CAS (a concurrent lowering on a shared slot makes it skip), and
/// the counter is read again after it: an `add` that read the old
/// reserve and did not raise it is seen here, and the reserve is raised
/// back over it.
#[inline]
fn sub<A: Word>(slot: &Slot<A>, bound: &A, b: i64) {
    let v = slot.inuse.add(b.wrapping_neg());
    let r = slot.reserve.get();
    if r.wrapping_sub(v) > 2 * CHUNK {
        lower(slot, bound, v, r);
    }
}

#[cold]
#[inline(never)]
fn lower<A: Word>(slot: &Slot<A>, bound: &A, v: i64, r: i64) {
    let by = r.wrapping_sub(v).wrapping_sub(CHUNK);
    if !slot.reserve.cas(r, r.wrapping_sub(by)) {
        return;
    }
    bound.add(by.wrapping_neg());
    let now = slot.inuse.get();
    let r = r.wrapping_sub(by);
    if now > r {
        raise(slot, bound, now, r);
    }
}

/// `add` for the one writer of `slot` (an owned slot's thread): plain
/// loads and stores, and no re-check, since nothing else moves the slot.
#[inline]
fn add_owned<A: Word>(slot: &Slot<A>, bound: &A, b: i64) {
    let v = slot.inuse.mine().wrapping_add(b);
    slot.inuse.set(v);
    let r = slot.reserve.mine();
    if v > r {
        raise_owned(slot, bound, v, r);
    }
}

#[cold]
#[inline(never)]
fn raise_owned<A: Word>(slot: &Slot<A>, bound: &A, v: i64, r: i64) {
    let by = v.wrapping_sub(r).wrapping_add(CHUNK);
    slot.reserve.set(r.wrapping_add(by));
    bound.add(by);
}

/// `sub` for the one writer of `slot`.
#[inline]
fn sub_owned<A: Word>(slot: &Slot<A>, bound: &A, b: i64) {
    let v = slot.inuse.mine().wrapping_sub(b);
    slot.inuse.set(v);
    let r = slot.reserve.mine();
    if r.wrapping_sub(v) > 2 * CHUNK {
        lower_owned(slot, bound, v, r);
    }
}

#[cold]
#[inline(never)]
fn lower_owned<A: Word>(slot: &Slot<A>, bound: &A, v: i64, r: i64) {
    let by = r.wrapping_sub(v).wrapping_sub(CHUNK);
    slot.reserve.set(r.wrapping_sub(by));
    bound.add(by.wrapping_neg());
}

/// This thread's slot index: handed out at its first sample or free; the
/// last shared slot once its locals are gone.
#[inline]
fn my_slot() -> usize {
    MY_SLOT
        .try_with(|s| {
            let v = s.get();
            if v != 0 {
                return v as usize - 1;
            }
            let i = new_slot(NEXT_SLOT.fetch_add(1, Ordering::Relaxed));
            s.set(i as u32 + 1);
            i
        })
        .unwrap_or_else(|_| mark_used(SLOTS - 1))
}

/// The slot of the `n`th thread to ask (from 0): its own for the first
/// `OWNED`, a shared one after.
#[cold]
fn new_slot(n: u64) -> usize {
    mark_used(slot_of(n))
}

/// Makes sums read slot `i`.
fn mark_used(i: usize) -> usize {
    USED.fetch_max(i as u32 + 1, Ordering::Relaxed);
    i
}

#[inline]
fn slot_of(n: u64) -> usize {
    if n < OWNED as u64 {
        n as usize
    } else {
        OWNED + (n % SHARED as u64) as usize
    }
}

/// Adds `b` (possibly negative) bytes to slot `i` of this thread.
#[inline]
fn add_mine(i: usize, b: i64) {
    let slot = &SLOT[i % SLOTS];
    if i < OWNED {
        add_owned(slot, &BOUND.0, b);
    } else {
        add(slot, &BOUND.0, b);
    }
}

#[inline]
fn sub_mine(i: usize, b: i64) {
    let slot = &SLOT[i % SLOTS];
    if i < OWNED {
        sub_owned(slot, &BOUND.0, b);
    } else {
        sub(slot, &BOUND.0, b);
    }
}

/// In-use now: the sum of the slots (exact when no sample is being
/// recorded or freed meanwhile).
fn sum() -> i64 {
    let n = (USED.load(Ordering::Relaxed) as usize).min(SLOTS);
    SLOT[..n]
        .iter()
        .fold(0i64, |a, s| a.wrapping_add(s.inuse.get()))
}

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
#[inline]
pub(crate) fn on_alloc(weight: u64, size: u64) {
    add_mine(my_slot(), est_bytes(weight, size) as i64);
    if near_peak() {
        note_high();
    }
}

/// Could in-use be above `RISE` (is `BOUND`)? If not, neither a capture
/// nor `HIGH` can be due (see the module docs).
#[inline]
fn near_peak() -> bool {
    BOUND.0.load(Ordering::Relaxed) > MARKS.rise.load(Ordering::Relaxed)
}

/// In-use may be above `RISE`: keeps `HIGH` as the highest seen.
#[cold]
#[inline(never)]
fn note_high() {
    let now = sum();
    if now > MARKS.high.load(Ordering::Relaxed) {
        MARKS.high.fetch_max(now, Ordering::Relaxed);
    }
}

/// A sampled block of `weight` and `size` is being freed (call it before
/// the record's counters see the free): takes the peak copy first if
/// in-use is at a new high.
#[inline]
pub(crate) fn on_free(weight: u64, size: u64) {
    let slot = my_slot();
    if near_peak() {
        capture_if_at_new_high();
    }
    sub_mine(slot, est_bytes(weight, size) as i64);
}

#[cold]
#[inline(never)]
fn capture_if_at_new_high() {
    if at_new_high().is_some() {
        // Wait for a capture another thread may be taking: skipping would
        // lose this high for good (in-use only falls from here). The
        // holder copies atomics or reads the copy, never waits for
        // anything, and a signal handler on this thread defers its frees.
        let _g = MARKS.capture.lock();
        if let Some(now) = at_new_high() {
            capture_locked(now);
        }
    }
}

/// In-use, if it is at its high since the last capture and above the
/// captured peak by more than the hysteresis.
#[inline]
fn at_new_high() -> Option<i64> {
    let now = sum();
    (now >= MARKS.high.load(Ordering::Relaxed) && now > MARKS.rise.load(Ordering::Relaxed))
        .then_some(now)
}

/// Copies the records as the peak. `CAPTURE` is held.
fn capture_locked(inuse: i64) {
    records::capture_peak();
    let inuse = inuse.max(0);
    let captured = inuse as u64;
    MARKS.captured.store(captured, Ordering::Relaxed);
    MARKS.captured_at.store(wall_nanos(), Ordering::Relaxed);
    MARKS.high.store(inuse, Ordering::Relaxed);
    let rise = captured.saturating_add(hysteresis(captured));
    MARKS
        .rise
        .store(i64::try_from(rise).unwrap_or(i64::MAX), Ordering::Relaxed);
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
    let now = sum();
    if now > 0 && now as u64 > MARKS.captured.load(Ordering::Relaxed) {
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
    capture_locked(sum());
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
    // instant.
    sum().max(0) as u64
}

#[cfg(test)]
/// Checks the slot invariants of the module docs (call it with no sample
/// being recorded or freed).
pub(crate) fn validate() -> Result<(), &'static str> {
    let mut reserves = 0i64;
    for s in &SLOT {
        if s.inuse.get() > s.reserve.get() {
            return Err("a slot's in-use is above its reserve");
        }
        reserves = reserves.wrapping_add(s.reserve.get());
    }
    if reserves != BOUND.0.load(Ordering::Relaxed) {
        return Err("the bound is not the sum of the reserves");
    }
    if sum() > BOUND.0.load(Ordering::Relaxed) {
        return Err("in-use is above its bound");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One thread's samples and frees keep its slot's reserve within
    /// `[inuse, inuse + 2 × CHUNK]` and the bound the reserve's sum, and
    /// the bound moves about once per `CHUNK` of net change.
    #[test]
    fn the_reserve_follows_the_slot_within_two_chunks() {
        let slot = Slot {
            inuse: AtomicI64::new(0),
            reserve: AtomicI64::new(0),
        };
        let bound = AtomicI64::new(0);
        let mut live: Vec<i64> = Vec::new();
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let mut bound_moves = 0;
        for i in 0..200_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let before = bound.get();
            // Grows for the first half, then a level churn, then frees.
            let grow = if i < 50_000 {
                !x.is_multiple_of(3)
            } else if i < 150_000 {
                x.is_multiple_of(2)
            } else {
                false
            };
            if grow || live.is_empty() {
                let b =
                    16 + (x >> 8) as i64 % 241 + if x.is_multiple_of(997) { 1 << 20 } else { 0 };
                add(&slot, &bound, b);
                live.push(b);
            } else {
                let b = live.swap_remove((x >> 16) as usize % live.len());
                sub(&slot, &bound, b);
            }
            if bound.get() != before {
                bound_moves += 1;
            }
            let (v, r) = (slot.inuse.get(), slot.reserve.get());
            assert_eq!(v, live.iter().sum::<i64>());
            assert!(v <= r && r - v <= 2 * CHUNK, "{v} {r}");
            assert_eq!(bound.get(), r);
        }
        // A net change of ~2 MB over the run, and 100k level ops.
        assert!(bound_moves < 5_000, "{bound_moves} bound writes");
    }

    /// A slot that goes negative (a thread freeing other threads' blocks)
    /// keeps its reserve above it too.
    #[test]
    fn a_slot_may_go_negative() {
        let slot = Slot {
            inuse: AtomicI64::new(0),
            reserve: AtomicI64::new(0),
        };
        let bound = AtomicI64::new(0);
        for _ in 0..1000 {
            sub(&slot, &bound, 100);
        }
        let (v, r) = (slot.inuse.get(), slot.reserve.get());
        assert_eq!(v, -100_000);
        assert!(v <= r && r - v <= 2 * CHUNK && bound.get() == r, "{v} {r}");
    }

    #[test]
    fn the_global_slots_are_valid_when_quiet() {
        // The lib tests do not install the allocator: no sample runs.
        validate().unwrap();
    }
}

/// The `loom` models of the slots: `RUSTFLAGS="--cfg memprof_loom" cargo
/// test --release --lib loom`. A slot shared by two threads (threads past
/// `OWNED` do share): whatever the interleaving, once both are done the
/// reserve is at or above the counter (a lowering that raced an add
/// raised it back) and the bound is the reserve. Owned slots: two threads
/// handed slots concurrently write one each with plain stores and lose
/// nothing; made owners of one slot, they lose an update.
#[cfg(all(test, memprof_loom))]
mod loom_model {
    use super::*;
    use loom::sync::atomic::{AtomicI64 as LoomI64, AtomicU64 as LoomU64};
    use loom::sync::Arc;

    impl Word for LoomI64 {
        fn get(&self) -> i64 {
            LoomI64::load(self, Ordering::SeqCst)
        }
        fn add(&self, v: i64) -> i64 {
            self.fetch_add(v, Ordering::SeqCst).wrapping_add(v)
        }
        fn cas(&self, old: i64, new: i64) -> bool {
            self.compare_exchange(old, new, Ordering::SeqCst, Ordering::Relaxed)
                .is_ok()
        }
        fn mine(&self) -> i64 {
            LoomI64::load(self, Ordering::Relaxed)
        }
        fn set(&self, v: i64) {
            self.store(v, Ordering::Release);
        }
    }

    fn slot() -> Slot<LoomI64> {
        Slot {
            inuse: LoomI64::new(0),
            reserve: LoomI64::new(0),
        }
    }

    /// Two threads take slots as `my_slot` does (`slot_of` of a shared
    /// count) and each rises 3 chunks and falls back with the plain
    /// `add_owned` and `sub_owned` on its slot (or `add` and `sub` on a
    /// shared one), while the main thread sums. `owned_by` says which slot
    /// index each thread writes: `None` is the protocol; `Some(i)` makes
    /// both threads owners of slot `i`, which must lose an update.
    fn run_owned(owned_by: Option<usize>) {
        let mut builder = loom::model::Builder::new();
        builder.preemption_bound = Some(3);
        builder.check(move || {
            let s = Arc::new(([slot(), slot()], LoomI64::new(0), LoomU64::new(0)));
            let ops = |s: Arc<([Slot<LoomI64>; 2], LoomI64, LoomU64)>| {
                move || {
                    let i = match owned_by {
                        Some(i) => i,
                        None => slot_of(s.2.fetch_add(1, Ordering::Relaxed)),
                    };
                    assert!(i < OWNED);
                    for b in [CHUNK, 2 * CHUNK] {
                        add_owned(&s.0[i], &s.1, b);
                    }
                    sub_owned(&s.0[i], &s.1, 3 * CHUNK);
                    add_owned(&s.0[i], &s.1, 100);
                }
            };
            let t = loom::thread::spawn(ops(s.clone()));
            ops(s.clone())();
            t.join().unwrap();
            let (mut v, mut r) = (0, 0);
            for slot in &s.0 {
                let (sv, sr) = (slot.inuse.get(), slot.reserve.get());
                assert!(sv <= sr && sr - sv <= 2 * CHUNK, "{sv} {sr}");
                v += sv;
                r += sr;
            }
            assert_eq!(v, 200);
            assert_eq!(s.1.get(), r);
        });
    }

    #[test]
    fn loom_owned_slots_have_one_writer_and_lose_nothing() {
        run_owned(None);
    }

    #[test]
    #[should_panic(expected = "assertion `left == right` failed")]
    fn loom_two_owners_of_one_slot_lose_an_update() {
        run_owned(Some(0));
    }

    fn run(a: &'static [i64], b: &'static [i64]) {
        let mut builder = loom::model::Builder::new();
        builder.preemption_bound = Some(3);
        builder.check(move || {
            let s = Arc::new((
                Slot {
                    inuse: LoomI64::new(0),
                    reserve: LoomI64::new(0),
                },
                LoomI64::new(0),
            ));
            let ops = |s: Arc<(Slot<LoomI64>, LoomI64)>, ops: &'static [i64]| {
                move || {
                    for &b in ops {
                        if b > 0 {
                            add(&s.0, &s.1, b);
                        } else {
                            sub(&s.0, &s.1, -b);
                        }
                    }
                }
            };
            let t = loom::thread::spawn(ops(s.clone(), a));
            ops(s.clone(), b)();
            t.join().unwrap();
            let (v, r, bound) = (s.0.inuse.get(), s.0.reserve.get(), s.1.get());
            let net: i64 = a.iter().chain(b).sum();
            assert_eq!(v, net);
            assert!(v <= r, "in-use {v} above its reserve {r}");
            assert_eq!(bound, r);
        });
    }

    #[test]
    fn loom_a_lowering_racing_an_add_is_raised_back() {
        // One thread rises 3 chunks and falls back (a lowering), the other
        // adds 2 chunks meanwhile, which may read the reserve before the
        // lowering.
        run(&[3 * CHUNK, -3 * CHUNK], &[2 * CHUNK]);
    }

    #[test]
    fn loom_two_lowerings_on_one_slot_never_go_below_it() {
        run(&[3 * CHUNK, -3 * CHUNK], &[3 * CHUNK, -3 * CHUNK]);
    }
}
