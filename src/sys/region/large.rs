//! Large runs: blocks over 64 KiB (or aligned beyond what a small class
//! serves), each a run of pages in the large zone with a 64-byte header
//! just before the block.
//!
//! Runs are carved from a high-water mark, committed 4 MiB at a time.
//! Freed runs go on a sorted array of free runs, merged with their
//! neighbours, and reused best-fit. A freed run stays committed ("dirty")
//! so a churn of large blocks costs no syscall each; once more than the
//! dirty limit sit dirty (half the live large bytes, between 3 and 32 MiB),
//! every dirty run's pages go back to the OS in one batch (`MADV_DONTNEED`; the address range stays ours, and reads as zero
//! when reused, which `alloc_zeroed` relies on).
//!
//! Invariants (checked by `validate`):
//! - free runs are disjoint, sorted by address, never adjacent (adjacent
//!   runs are merged on free), and lie below `high`;
//! - `dirty_bytes` is the sum of the lengths of the dirty free runs;
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
//! waits for it. The purge's `madvise` runs under the lock: a concurrent
//! large allocation waits for it (about 1 ms per 32 MiB here).

use super::layout::large_zone;
use super::meta::BlockMeta;
use crate::sys::arena;
use crate::sys::lock::SpinLock;
use crate::sys::os::{self, PAGE};
use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicUsize, Ordering};

const LARGE_COMMIT: usize = 4 << 20;
pub(super) const HEADER: usize = 64;
/// Dirty free large runs above the dirty limit are returned to the OS in
/// one batch. The limit is half the bytes of the live large runs, between
/// these two: a churn of large blocks keeps its freed runs for reuse in
/// proportion to what it holds (at rate 1, the mixed churn holds ~128 MiB
/// and keeps 32 MiB dirty, as glibc's dynamic trim threshold would), while
/// a sample of a few large blocks (the default rate) no longer keeps up to
/// 32 MiB of them resident: that was most of the default rate's +5 MiB of
/// peak RSS on the parse workload.
const DIRTY_MIN: usize = 3 << 20;
const DIRTY_MAX: usize = 32 << 20;
const MAX_RUNS: usize = 8192;
/// Mixed into a live header's `magic`.
const MAGIC: usize = 0x6d65_6d70_726f_6621;
/// Mixed into the first word of a live run whose header is further in.
const RUN_MARK: usize = 0x7275_6e68_6561_6472;

#[derive(Clone, Copy)]
struct Run {
    start: usize,
    len: usize,
    dirty: bool,
}

struct LargeState {
    /// Bytes handed out from the start of the large zone so far.
    high: usize,
    committed: usize,
    runs: *mut Run,
    nruns: usize,
    dirty_bytes: usize,
    /// Bytes of the runs of live blocks.
    live_bytes: usize,
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
    state: UnsafeCell::new(LargeState {
        high: 0,
        committed: 0,
        runs: core::ptr::null_mut(),
        nruns: 0,
        dirty_bytes: 0,
        live_bytes: 0,
    }),
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
    let (start, len, zeroed) = match take_run(st, need) {
        Some(run) => run,
        None => {
            if need > zone_len - st.high {
                return None;
            }
            let start = zone + st.high;
            st.high += need;
            if st.high > st.committed {
                let to = os::round_up(st.high, LARGE_COMMIT).min(zone_len);
                // SAFETY: inside the large zone of our reservation.
                if !unsafe { os::commit((zone + st.committed) as *mut u8, to - st.committed) } {
                    st.high -= need;
                    return None;
                }
                st.committed = to;
                LARGE.committed.store(to, Ordering::Release);
            }
            (start, need, true)
        }
    };
    st.live_bytes += len;
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

/// Best fit from the free runs; splits off what is not needed.
fn take_run(st: &mut LargeState, need: usize) -> Option<(usize, usize, bool)> {
    // SAFETY: `runs` holds `nruns` initialised entries; we hold the lock.
    let runs = unsafe { core::slice::from_raw_parts_mut(st.runs, st.nruns) };
    let mut best: Option<usize> = None;
    for (i, r) in runs.iter().enumerate() {
        if r.len >= need && best.is_none_or(|b| r.len < runs[b].len) {
            best = Some(i);
        }
    }
    let i = best?;
    let r = runs[i];
    if r.dirty {
        st.dirty_bytes -= r.len;
    }
    if r.len > need {
        runs[i] = Run {
            start: r.start + need,
            len: r.len - need,
            dirty: r.dirty,
        };
        if r.dirty {
            st.dirty_bytes += r.len - need;
        }
    } else {
        runs.copy_within(i + 1.., i);
        st.nruns -= 1;
    }
    Some((r.start, need, !r.dirty))
}

/// Returns the run of a live large block (its header checked by `header`).
pub(super) fn free(h: &Header) {
    let (start, len) = h.run();
    let _g = LARGE.lock.lock();
    // Cleared under the lock: a second free fails `header`.
    h.magic.store(0, Ordering::Relaxed);
    // SAFETY: we hold LARGE.lock.
    let st = unsafe { &mut *LARGE.state.get() };
    st.live_bytes = st.live_bytes.saturating_sub(len);
    // SAFETY: `runs` has room for MAX_RUNS entries, `nruns` initialised.
    let runs = unsafe { core::slice::from_raw_parts_mut(st.runs, MAX_RUNS) };
    let n = st.nruns;
    let i = runs[..n].partition_point(|r| r.start < start);
    let merge_prev = i > 0 && runs[i - 1].start + runs[i - 1].len == start;
    let merge_next = i < n && start + len == runs[i].start;
    // The new run is dirty; so is any run it absorbs, as a whole.
    let mut merged = Run {
        start,
        len,
        dirty: true,
    };
    st.dirty_bytes += len;
    if merge_prev {
        let p = runs[i - 1];
        merged.start = p.start;
        merged.len += p.len;
        if !p.dirty {
            st.dirty_bytes += p.len;
        }
    }
    if merge_next {
        let nx = runs[i];
        merged.len += nx.len;
        if !nx.dirty {
            st.dirty_bytes += nx.len;
        }
    }
    match (merge_prev, merge_next) {
        (true, true) => {
            runs[i - 1] = merged;
            runs.copy_within(i + 1..n, i);
            st.nruns -= 1;
        }
        (true, false) => runs[i - 1] = merged,
        (false, true) => runs[i] = merged,
        (false, false) => {
            if n == MAX_RUNS {
                // Too fragmented to track (8192 disjoint free runs): give
                // the pages back and the address range up. Never seen; the
                // range is 1.3 TiB, so this costs address space, not memory.
                // SAFETY: the run is ours and no longer used.
                unsafe { os::discard(start as *mut u8, len) };
                st.dirty_bytes -= len;
                return;
            }
            runs.copy_within(i..n, i + 1);
            runs[i] = merged;
            st.nruns += 1;
        }
    }
    if st.dirty_bytes > (st.live_bytes / 2).clamp(DIRTY_MIN, DIRTY_MAX) {
        purge(st);
    }
}

/// Returns the pages of every dirty free run to the OS. Headers of freed
/// blocks inside them read as zero afterwards, which `header` still
/// reports as "not live".
fn purge(st: &mut LargeState) {
    // SAFETY: `nruns` entries are initialised; we hold the lock.
    let runs = unsafe { core::slice::from_raw_parts_mut(st.runs, st.nruns) };
    for r in runs.iter_mut().filter(|r| r.dirty) {
        // SAFETY: free runs hold no live data.
        unsafe { os::discard(r.start as *mut u8, r.len) };
        r.dirty = false;
    }
    st.dirty_bytes = 0;
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
    // SAFETY: we hold LARGE.lock; `nruns` entries are initialised.
    let st = unsafe { &*LARGE.state.get() };
    if st.high > st.committed || st.committed > zone_len {
        return Err("large: high <= committed <= zone length does not hold");
    }
    if st.runs.is_null() {
        return Ok(());
    }
    // SAFETY: as above.
    let runs = unsafe { core::slice::from_raw_parts(st.runs, st.nruns) };
    let mut dirty = 0;
    let mut free = 0;
    for (i, r) in runs.iter().enumerate() {
        free += r.len;
        if r.len == 0 || r.start < zone || r.start + r.len > zone + st.high {
            return Err("large: a free run lies outside the used part of the zone");
        }
        if i > 0 && runs[i - 1].start + runs[i - 1].len >= r.start {
            return Err("large: free runs overlap, touch, or are out of order");
        }
        if r.dirty {
            dirty += r.len;
        }
    }
    if dirty != st.dirty_bytes {
        return Err("large: dirty_bytes is not the sum of dirty runs");
    }
    if free + st.live_bytes > st.high {
        return Err("large: live and free runs add up to more than was handed out");
    }
    Ok(())
}
