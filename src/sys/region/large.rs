//! Large runs: blocks over 64 KiB (or aligned beyond what a small class
//! serves), each a run of pages in the large zone with a 64-byte header
//! just before the block.
//!
//! Runs are carved from a high-water mark, committed 4 MiB at a time.
//! Freed runs go on a sorted array of free runs, merged with their
//! neighbours, and reused best-fit (a block takes the start of its run,
//! where the header of the block freed there made a page resident). Freed
//! runs stay committed, their pages resident, so a churn of large blocks
//! costs no syscall each. What they keep resident is bounded by the dirty
//! limit (half the live large bytes, between 1 and 32 MiB) by measuring
//! rather than by run lengths: each free run carries a bound on its
//! resident bytes (its length once freed); when the bounds pass the limit,
//! a survey (`mincore`) measures the runs freed, merged or split since the
//! last one, and only if the measured bytes pass it are whole runs, the
//! highest first, given back (`MADV_DONTNEED`; the address range stays
//! ours, and reads as zero when reused, which `alloc_zeroed` relies on)
//! down to three quarters of it. A program that touches only the start of
//! its blocks (the mixed churn: 1 MiB blocks, one page resident) so keeps
//! its runs and faults no header back in after each purge (5,570
//! `madvise` calls in 3M ops before, ~100 after); one that fills them gives
//! back as before.
//!
//! Invariants (checked by `validate`):
//! - free runs are disjoint, sorted by address, never adjacent (adjacent
//!   runs are merged on free), and lie below `high`;
//! - `resident_bytes` is the sum of the free runs' `resident`; a run's
//!   `resident` is at most its length, 0 unless it is dirty, and not 0 if
//!   it is fresh (a run is fresh from its free, merge or split to the next
//!   survey; its `resident` is then a bound, else the survey's count);
//! - a run that is not dirty reads as zero;
//! - `live_bytes` (the runs of live blocks) plus the free runs' lengths is
//!   at most `high` (less only once runs were given up at `MAX_RUNS`);
//! - `high <= committed <= the large zone's length`;
//! - a live block's header holds its run and `magic == block ^ MAGIC`; a
//!   freed one's magic is 0, so a second free is caught;
//! - a live run whose header is not at its start (an alignment over 64)
//!   has `[start ^ RUN_MARK, header address]` in its first two words, so
//!   `for_each_live` can step from run to run.
//!
//! Thread safety: all state is under `LARGE.lock`, taken only inside the
//! profiler (`Busy` set), so a signal handler on the same thread never
//! waits for it. The survey's `mincore` and the purge's `madvise` run
//! under the lock: a concurrent large allocation waits for them (a purge:
//! about 1 ms per 32 MiB here).

use super::layout::large_zone;
use super::meta::BlockMeta;
use crate::sys::arena;
use crate::sys::lock::SpinLock;
use crate::sys::os::{self, PAGE};
use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicUsize, Ordering};

const LARGE_COMMIT: usize = 4 << 20;
pub(super) const HEADER: usize = 64;
/// The resident bytes of free large runs are kept under the dirty limit:
/// half the bytes of the live large runs, between these two. A churn of
/// large blocks keeps its freed runs' pages for reuse in proportion to what
/// it holds (at rate 1, the mixed churn holds ~128 MiB and keeps up to
/// 32 MiB, as glibc's dynamic trim threshold would), while a sample of a
/// few large blocks (the default rate) keeps at most 1 MiB: the parse
/// workload's peak RSS at the default rate is +2.1 MiB over `System`'s
/// (with 3 MiB, counted by resident pages, +4.3 MiB; a flat 32 MiB counted
/// by run lengths was +5 MiB).
const DIRTY_MIN: usize = 1 << 20;
const DIRTY_MAX: usize = 32 << 20;
const MAX_RUNS: usize = 8192;
/// A survey leaves a fresh run whose bound is at most this as it is (most
/// are what is left of a run with only its first page resident when a
/// block took its start: measuring them cost one `mincore` each for a
/// page at most; the bounds still count it).
const SURVEY_MIN: usize = 4 * PAGE;
/// Pages a `mincore` call of a survey covers (4 MiB).
const SURVEY_PAGES: usize = 1024;
/// Mixed into a live header's `magic`.
const MAGIC: usize = 0x6d65_6d70_726f_6621;
/// Mixed into the first word of a live run whose header is further in.
const RUN_MARK: usize = 0x7275_6e68_6561_6472;

#[derive(Clone, Copy)]
struct Run {
    start: usize,
    len: usize,
    /// At least the bytes of the run resident in memory now: measured by
    /// the last survey, or its length (or a part's) since it was freed,
    /// merged or split.
    resident: usize,
    /// May hold nonzero bytes (otherwise it reads as zero: fresh from the
    /// high-water mark, or discarded and untouched since).
    dirty: bool,
    /// `resident` is a bound, not a measurement: the next survey measures it.
    fresh: bool,
}

struct LargeState {
    /// Bytes handed out from the start of the large zone so far.
    high: usize,
    committed: usize,
    runs: *mut Run,
    nruns: usize,
    /// The sum of the free runs' `resident`.
    resident_bytes: usize,
    /// Bytes of the runs of live blocks.
    live_bytes: usize,
    /// `mincore`'s answer, a byte a page, for a survey.
    pages: [u8; SURVEY_PAGES],
    /// Surveys and discards (`madvise` calls) so far, for the tests.
    surveys: usize,
    discards: usize,
}

struct Large {
    lock: SpinLock,
    state: UnsafeCell<LargeState>,
    /// `state.committed`, readable without the lock: a pointer below
    /// `large_base + committed` has readable memory before it.
    committed: AtomicUsize,
}

// SAFETY: `state` is only touched with `lock` held.
unsafe impl Sync for Large {}

static LARGE: Large = Large {
    lock: SpinLock::new(),
    state: UnsafeCell::new(LargeState::new(core::ptr::null_mut())),
    committed: AtomicUsize::new(0),
};

#[repr(C)]
pub(super) struct Header {
    pub(super) meta: BlockMeta,
    run_start: AtomicUsize,
    run_len: AtomicUsize,
    /// `block ^ MAGIC` while live, 0 once freed.
    magic: AtomicUsize,
}

impl Header {
    fn run(&self) -> (usize, usize) {
        (
            self.run_start.load(Ordering::Relaxed),
            self.run_len.load(Ordering::Relaxed),
        )
    }
}

const _: () = assert!(core::mem::size_of::<Header>() <= HEADER);

/// Sets up the run array. `false` if the arena refused it.
pub(super) fn init() -> bool {
    let runs = arena::alloc_zeroed(MAX_RUNS * core::mem::size_of::<Run>(), 8);
    if runs.is_null() {
        return false;
    }
    let _g = LARGE.lock.lock();
    // SAFETY: we hold LARGE.lock.
    unsafe { (*LARGE.state.get()).runs = runs.cast() };
    true
}

/// The header of `block`, if `block` is a live large block (its header is
/// in committed memory, names a run around it, and has the right magic).
/// `Err(true)` when it looks like a freed one (a double free).
#[inline(never)]
pub(super) fn header(block: *mut u8) -> Result<&'static Header, bool> {
    let (zone, _) = large_zone();
    let b = block as usize;
    let committed = LARGE.committed.load(Ordering::Acquire);
    if !b.is_multiple_of(HEADER) || b < zone + HEADER || b >= zone + committed {
        return Err(false);
    }
    // SAFETY: `b - HEADER` is inside the committed part of the large zone
    // (checked just above; committed memory is never unmapped) and 64-byte
    // aligned; `Header` is plain integers and atomics, valid for any bits.
    let h = unsafe { &*((b - HEADER) as *const Header) };
    let magic = h.magic.load(Ordering::Relaxed);
    let (start, len) = h.run();
    if magic == b ^ MAGIC && start < b && b <= start.wrapping_add(len) {
        return Ok(h);
    }
    Err(magic == 0 && len != 0)
}

/// Bytes usable from `block` to the end of its run.
pub(super) fn room(h: &Header, block: *mut u8) -> usize {
    let (start, len) = h.run();
    start + len - block as usize
}

/// A block of `size` bytes at `align`: the block, its metadata, and
/// whether it reads as zero.
#[inline(never)]
pub(super) fn alloc(size: usize, align: usize) -> Option<(*mut u8, &'static BlockMeta, bool)> {
    let align = align.max(HEADER);
    let slack = if align > PAGE { align } else { 0 };
    let need = os::round_up(size.checked_add(align + slack)?, PAGE);
    let (zone, zone_len) = large_zone();
    let _g = LARGE.lock.lock();
    // SAFETY: we hold LARGE.lock.
    let st = unsafe { &mut *LARGE.state.get() };
    let (start, len, zeroed) = st.take(zone, zone_len, need)?;
    LARGE.committed.store(st.committed, Ordering::Release);
    let block = os::round_up(start + HEADER, align);
    // SAFETY: the header lies inside the committed run we just took (64-byte
    // aligned: `block` is), and is all atomics, valid for any bits.
    let h = unsafe { &*((block - HEADER) as *const Header) };
    h.run_start.store(start, Ordering::Relaxed);
    h.run_len.store(len, Ordering::Relaxed);
    h.magic.store(block ^ MAGIC, Ordering::Relaxed);
    if block - HEADER != start {
        // SAFETY: the header is at least 64 bytes into the run (`block` is
        // aligned beyond 64), so the run's first two words are ours and
        // committed; they are only read by `for_each_live`, under the lock.
        unsafe {
            let words = start as *mut usize;
            words.write(start ^ RUN_MARK);
            words.add(1).write(block - HEADER);
        }
    }
    Some((block as *mut u8, &h.meta, zeroed))
}

/// Returns the run of a live large block (its header checked by `header`).
pub(super) fn free(h: &Header) {
    let (start, len) = h.run();
    let _g = LARGE.lock.lock();
    // Cleared under the lock: a second free fails `header`.
    h.magic.store(0, Ordering::Relaxed);
    // SAFETY: we hold LARGE.lock.
    let st = unsafe { &mut *LARGE.state.get() };
    st.put(start, len);
}

impl LargeState {
    const fn new(runs: *mut Run) -> LargeState {
        LargeState {
            high: 0,
            committed: 0,
            runs,
            nruns: 0,
            resident_bytes: 0,
            live_bytes: 0,
            pages: [0; SURVEY_PAGES],
            surveys: 0,
            discards: 0,
        }
    }

    /// The free runs (the caller holds the lock, or owns the state).
    fn runs(&mut self) -> &'static mut [Run] {
        // SAFETY: `runs` holds `nruns` initialised entries, touched only
        // through this state, whose owner (the lock) the caller holds.
        unsafe { core::slice::from_raw_parts_mut(self.runs, self.nruns) }
    }

    /// A run of `need` bytes (a multiple of the page) from the free runs,
    /// else from the high-water mark of the zone at `zone` (committing it
    /// as needed): its start, length, and whether it reads as zero.
    fn take(&mut self, zone: usize, zone_len: usize, need: usize) -> Option<(usize, usize, bool)> {
        let run = match self.take_free(need) {
            Some(run) => run,
            None => {
                if need > zone_len - self.high {
                    return None;
                }
                let start = zone + self.high;
                let high = self.high + need;
                if high > self.committed {
                    let to = os::round_up(high, LARGE_COMMIT).min(zone_len);
                    // SAFETY: inside the zone, a reservation of ours.
                    if !unsafe {
                        os::commit((zone + self.committed) as *mut u8, to - self.committed)
                    } {
                        return None;
                    }
                    self.committed = to;
                }
                self.high = high;
                (start, need, true)
            }
        };
        self.live_bytes += need;
        Some(run)
    }

    /// Best fit from the free runs; splits off what is not needed (the
    /// block takes the run's start, where a freed block's header made a
    /// page resident).
    fn take_free(&mut self, need: usize) -> Option<(usize, usize, bool)> {
        let runs = self.runs();
        let mut best: Option<usize> = None;
        for (i, r) in runs.iter().enumerate() {
            if r.len >= need && best.is_none_or(|b| r.len < runs[b].len) {
                best = Some(i);
            }
        }
        let i = best?;
        let r = runs[i];
        self.resident_bytes -= r.resident;
        if r.len > need {
            let len = r.len - need;
            let resident = r.resident.min(len);
            self.resident_bytes += resident;
            runs[i] = Run {
                start: r.start + need,
                len,
                resident,
                dirty: r.dirty,
                fresh: resident != 0,
            };
        } else {
            runs.copy_within(i + 1.., i);
            self.nruns -= 1;
        }
        Some((r.start, need, !r.dirty))
    }

    /// Adds the run `[start, start + len)` of a freed block to the free
    /// runs, merged with its neighbours, then keeps the resident free bytes
    /// bounded (`trim`).
    fn put(&mut self, start: usize, len: usize) {
        self.live_bytes = self.live_bytes.saturating_sub(len);
        // SAFETY: `runs` has room for MAX_RUNS entries, `nruns` initialised;
        // the caller holds the lock.
        let runs = unsafe { core::slice::from_raw_parts_mut(self.runs, MAX_RUNS) };
        let n = self.nruns;
        let i = runs[..n].partition_point(|r| r.start < start);
        let merge_prev = i > 0 && runs[i - 1].start + runs[i - 1].len == start;
        let merge_next = i < n && start + len == runs[i].start;
        // Every page of the freed block may be resident: the next survey
        // finds out.
        let mut merged = Run {
            start,
            len,
            resident: len,
            dirty: true,
            fresh: true,
        };
        self.resident_bytes += len;
        if merge_prev {
            let p = runs[i - 1];
            merged.start = p.start;
            merged.len += p.len;
            merged.resident += p.resident;
        }
        if merge_next {
            let nx = runs[i];
            merged.len += nx.len;
            merged.resident += nx.resident;
        }
        match (merge_prev, merge_next) {
            (true, true) => {
                runs[i - 1] = merged;
                runs.copy_within(i + 1..n, i);
                self.nruns -= 1;
            }
            (true, false) => runs[i - 1] = merged,
            (false, true) => runs[i] = merged,
            (false, false) => {
                if n == MAX_RUNS {
                    // Too fragmented to track (8192 disjoint free runs):
                    // give the pages back and the address range up. Never
                    // seen; the range is 1.3 TiB, so this costs address
                    // space, not memory.
                    // SAFETY: the run is ours and no longer used.
                    unsafe { os::discard(start as *mut u8, len) };
                    self.discards += 1;
                    self.resident_bytes -= len;
                    return;
                }
                runs.copy_within(i..n, i + 1);
                runs[i] = merged;
                self.nruns += 1;
            }
        }
        self.trim();
    }

    /// Keeps the resident bytes of the free runs at most the dirty limit
    /// (half the live large bytes, between `DIRTY_MIN` and `DIRTY_MAX`).
    /// Past it (by the bounds), a survey measures the runs freed, merged or
    /// split since the last one; only if they really hold more than the
    /// limit are pages given back, whole runs from the highest down, until
    /// three quarters of it are left. A churn whose blocks are mostly
    /// untouched (only the header page resident) so keeps its runs and
    /// faults nothing back in, while one that fills its blocks gives back
    /// as before, though a quarter of the limit at a time rather than all.
    fn trim(&mut self) {
        let limit = (self.live_bytes / 2).clamp(DIRTY_MIN, DIRTY_MAX);
        if self.resident_bytes <= limit {
            return;
        }
        self.survey();
        if self.resident_bytes > limit {
            self.purge(limit / 4 * 3);
        }
    }

    /// Measures the resident bytes of each fresh run (`mincore`).
    fn survey(&mut self) {
        self.surveys += 1;
        let runs = self.runs();
        for r in runs
            .iter_mut()
            .filter(|r| r.fresh && r.resident > SURVEY_MIN)
        {
            // SAFETY: the run is part of the committed zone, page-aligned.
            let n = unsafe { os::resident_pages(r.start as *mut u8, r.len, &mut self.pages) };
            let resident = n.map_or(r.len, |n| (n * PAGE).min(r.len));
            self.resident_bytes = self.resident_bytes - r.resident + resident;
            r.resident = resident;
            r.fresh = false;
        }
    }

    /// Returns the pages of free runs to the OS, the highest first, until
    /// at most `target` resident bytes are left in free runs. A discarded
    /// run reads as zero afterwards (so may a freed block's header inside
    /// it, which `header` reports as "not live").
    fn purge(&mut self, target: usize) {
        let runs = self.runs();
        for r in runs.iter_mut().rev() {
            if self.resident_bytes <= target {
                break;
            }
            if r.resident == 0 {
                continue;
            }
            // SAFETY: free runs hold no live data.
            unsafe { os::discard(r.start as *mut u8, r.len) };
            self.discards += 1;
            self.resident_bytes -= r.resident;
            *r = Run {
                resident: 0,
                dirty: false,
                fresh: false,
                ..*r
            };
        }
    }

    /// Checks the invariants at the top of the file against the zone at
    /// `zone`, `zone_len` bytes long.
    fn validate(&mut self, zone: usize, zone_len: usize) -> Result<(), &'static str> {
        if self.high > self.committed || self.committed > zone_len {
            return Err("large: high <= committed <= zone length does not hold");
        }
        if self.runs.is_null() {
            return Ok(());
        }
        let runs = self.runs();
        let mut resident = 0;
        let mut free = 0;
        for (i, r) in runs.iter().enumerate() {
            free += r.len;
            if r.len == 0 || r.start < zone || r.start + r.len > zone + self.high {
                return Err("large: a free run lies outside the used part of the zone");
            }
            if i > 0 && runs[i - 1].start + runs[i - 1].len >= r.start {
                return Err("large: free runs overlap, touch, or are out of order");
            }
            if r.resident > r.len || (r.resident != 0 && !r.dirty) || (r.fresh && r.resident == 0) {
                return Err("large: a free run's resident bound is inconsistent");
            }
            resident += r.resident;
        }
        if resident != self.resident_bytes {
            return Err("large: resident_bytes is not the sum of the free runs'");
        }
        if free + self.live_bytes > self.high {
            return Err("large: live and free runs add up to more than was handed out");
        }
        Ok(())
    }
}

/// Calls `f` with the metadata of every live large block, stepping over
/// the zone run by run under the lock (so nothing moves meanwhile). Stops
/// early, quietly, at a run it cannot read (never seen: `validate` would
/// report it).
pub(super) fn for_each_live(mut f: impl FnMut(&BlockMeta)) {
    let (zone, _) = large_zone();
    let _g = LARGE.lock.lock();
    // SAFETY: we hold LARGE.lock.
    let st = unsafe { &*LARGE.state.get() };
    if st.runs.is_null() {
        return;
    }
    // SAFETY: `nruns` entries are initialised; we hold the lock.
    let runs = unsafe { core::slice::from_raw_parts(st.runs, st.nruns) };
    let (mut pos, end, mut free) = (zone, zone + st.high, runs.iter().peekable());
    while pos < end {
        if let Some(r) = free.next_if(|r| r.start == pos) {
            pos += r.len;
            continue;
        }
        let Some(h) = live_header_at(pos, end) else {
            return;
        };
        f(&h.meta);
        pos += h.run().1;
    }
}

/// The header of the live run starting at `start` (below `end`, the used
/// part of the zone), checked against its magic. The lock is held.
fn live_header_at(start: usize, end: usize) -> Option<&'static Header> {
    // SAFETY: `start` is a page-aligned run start below `high`, inside
    // committed memory; the run is at least a page long.
    let (w0, w1) = unsafe {
        let words = start as *const usize;
        (words.read(), words.add(1).read())
    };
    let at = if w0 == start ^ RUN_MARK && w1 > start && w1 + HEADER < end {
        w1
    } else {
        start
    };
    // SAFETY: `at` is 64-byte aligned (a page start, or a header address
    // checked to lie in the used, committed part of the zone); `Header` is
    // plain atomics, valid for any bits.
    let h = unsafe { &*(at as *const Header) };
    let (run_start, run_len) = h.run();
    let live = at.is_multiple_of(HEADER)
        && h.magic.load(Ordering::Relaxed) == (at + HEADER) ^ MAGIC
        && run_start == start
        && run_len >= PAGE
        && start + run_len <= end;
    live.then_some(h)
}

/// Committed bytes of the large zone.
pub(super) fn committed_bytes() -> usize {
    LARGE.committed.load(Ordering::Relaxed)
}

pub(super) fn lock() {
    LARGE.lock.raw_lock();
}

pub(super) fn unlock() {
    LARGE.lock.raw_unlock();
}

/// Checks the invariants above.
pub(super) fn validate() -> Result<(), &'static str> {
    let (zone, zone_len) = large_zone();
    let _g = LARGE.lock.lock();
    // SAFETY: we hold LARGE.lock.
    let st = unsafe { &mut *LARGE.state.get() };
    st.validate(zone, zone_len)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A large zone of its own (a private reservation and run array), so
    /// the policy can be watched without the other tests' blocks.
    struct Zone {
        st: LargeState,
        base: usize,
        len: usize,
        rng: u64,
    }

    impl Zone {
        fn new(len: usize) -> Zone {
            let base = os::reserve(len).expect("reserve a test zone") as usize;
            let run = Run {
                start: 0,
                len: 0,
                resident: 0,
                dirty: false,
                fresh: false,
            };
            let runs = Box::leak(vec![run; MAX_RUNS].into_boxed_slice()).as_mut_ptr();
            Zone {
                st: LargeState::new(runs),
                base,
                len,
                rng: 0x9e37_79b9_7f4a_7c15,
            }
        }

        fn next(&mut self) -> usize {
            self.rng ^= self.rng << 13;
            self.rng ^= self.rng >> 7;
            self.rng ^= self.rng << 17;
            self.rng as usize
        }

        /// A run of 64 KiB..1 MiB; `touch` writes every page, else only
        /// the first byte (as the mixed churn does). Checks that a run said
        /// to read as zero does.
        fn take(&mut self, touch: bool) -> (usize, usize) {
            let need = os::round_up((64 << 10) + self.next() % (1 << 20), PAGE);
            let (start, len, zeroed) = self.st.take(self.base, self.len, need).expect("room");
            let p = start as *mut u8;
            // SAFETY: the run is ours, `len` committed bytes.
            unsafe {
                if zeroed {
                    assert_eq!(*p, 0);
                    assert_eq!(*p.add(len - 1), 0);
                }
                if touch {
                    core::ptr::write_bytes(p, 0xAB, len);
                } else {
                    *p = 0xAB;
                }
            }
            (start, len)
        }

        /// The bytes of the free runs really resident now.
        fn resident_free(&mut self) -> usize {
            let mut pages = [0u8; SURVEY_PAGES];
            self.st
                .runs()
                .iter()
                // SAFETY: free runs are committed parts of our zone.
                .map(|r| unsafe { os::resident_pages(r.start as *mut u8, r.len, &mut pages) })
                .map(|n| n.expect("mincore") * PAGE)
                .sum()
        }

        /// Frees a random one of `live` and takes a new run in its place,
        /// `ops` times; checks the invariants and, after each free, that the
        /// resident bytes of the free runs stay under the limit.
        fn churn(&mut self, live: &mut [(usize, usize)], ops: usize, touch: bool) {
            for _ in 0..ops {
                let i = self.next() % live.len();
                let (start, len) = live[i];
                self.st.put(start, len);
                let limit = (self.st.live_bytes / 2).clamp(DIRTY_MIN, DIRTY_MAX);
                assert!(self.st.resident_bytes <= limit);
                assert!(self.resident_free() <= self.st.resident_bytes);
                live[i] = self.take(touch);
                self.st.validate(self.base, self.len).unwrap();
            }
        }
    }

    impl Drop for Zone {
        fn drop(&mut self) {
            // SAFETY: the reservation is ours and nothing points into it.
            unsafe { os::release(self.base as *mut u8, self.len) };
        }
    }

    #[test]
    fn a_churn_of_untouched_blocks_reuses_its_runs_without_purging() {
        let mut z = Zone::new(1 << 30);
        let mut live: Vec<_> = (0..64).map(|_| z.take(false)).collect();
        z.churn(&mut live, 3000, false);
        // Only a page of each freed run was resident: the bounds went over
        // the limit many times, the surveys found little, nothing was
        // given back, and the runs were reused (the zone grew little).
        assert!(z.st.surveys > 0);
        assert_eq!(z.st.discards, 0);
        assert!(
            z.st.high < z.st.live_bytes * 2,
            "high {} live {}",
            z.st.high,
            z.st.live_bytes
        );
    }

    #[test]
    fn a_churn_of_filled_blocks_keeps_resident_free_bytes_bounded() {
        let mut z = Zone::new(1 << 30);
        let mut live: Vec<_> = (0..16).map(|_| z.take(true)).collect();
        z.churn(&mut live, 400, true);
        assert!(z.st.discards > 0);
        // Purges give back down to three quarters of the limit, not all:
        // some freed runs stay resident for reuse.
        assert!(z.resident_free() > 0);
        // Everything freed: the limit falls to its minimum, and whatever
        // is left resident fits in it.
        for (start, len) in live {
            z.st.put(start, len);
        }
        assert!(z.resident_free() <= DIRTY_MIN);
        z.st.validate(z.base, z.len).unwrap();
    }
}
