//! The reserved address range that serves every sampled block.
//!
//! Why: `dealloc` must tell "was this block sampled?" exactly, without a lock
//! or a shared write, on every free. Serving sampled blocks from one range
//! we reserved makes that a subtract and a compare (`contains`), with no
//! memory load beyond two read-mostly words (docs/design.md, "free-side
//! lookup", has the alternatives and their measured costs).
//!
//! Layout of the range (`len` bytes at `base`, split into 64 equal zones):
//!
//! ```text
//! zone 0..NCLASSES   one small size class each (16 B .. 64 KiB)
//!                    [ BlockMeta per slot | pad to 64 KiB | slots of `size` ]
//! zone NCLASSES..64  the large zone: page runs for blocks over 64 KiB, each
//!                    with a 64-byte header just before the block
//! ```
//!
//! Nothing is committed up front: the range is reserved `PROT_NONE` and
//! made writable as each class's bump pointer grows. Freed small slots go to
//! the freeing thread's cache for their class (`local`), which trades
//! batches of 32 with a lock-free per-class free list; both are linked
//! through the metadata, which is ours, so no read ever touches user
//! memory. Freed large runs go on a
//! free list with coalescing, and their pages go back to the OS in batches
//! once more than `PURGE_BYTES` sit dirty (so a churn of large blocks costs
//! neither an mmap/munmap pair each nor unbounded RSS).
//!
//! Invariants:
//! - a slot is on one free list (its class's shared list or one thread's
//!   cache) xor handed out; its `BlockMeta` holds the list link while free
//!   and the record id while out;
//! - `committed <= nslots` slots of a class are readable and writable, and
//!   `bump` only hands out slots below `nslots`;
//! - large free runs are disjoint, sorted by address, and never adjacent
//!   (adjacent runs are merged on free).

use super::arena;
use super::lock::SpinLock;
use super::os::{self, PAGE};
use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicU32, AtomicU64, AtomicU8, AtomicUsize, Ordering};

/// Per-block facts of a sampled block. The slow path can add fields here
/// (timestamps, labels) without touching the fast path.
#[repr(C)]
pub(crate) struct BlockMeta {
    /// Record id while the block is out; free-list link while it is free.
    record_or_link: AtomicU32,
    /// The test scope that owns the block (0: none), see `scope.rs`.
    scope: AtomicU32,
    /// The sample's weight, in units of 1/`WEIGHT_ONE` objects.
    weight: AtomicU64,
}

impl BlockMeta {
    pub(crate) fn set(&self, record: u32, weight: u64, scope: u32) {
        self.record_or_link.store(record, Ordering::Relaxed);
        self.weight.store(weight, Ordering::Relaxed);
        self.scope.store(scope, Ordering::Relaxed);
    }
    pub(crate) fn scope(&self) -> u32 {
        self.scope.load(Ordering::Relaxed)
    }
    pub(crate) fn record(&self) -> u32 {
        self.record_or_link.load(Ordering::Relaxed)
    }
    pub(crate) fn weight(&self) -> u64 {
        self.weight.load(Ordering::Relaxed)
    }
}

const META: usize = core::mem::size_of::<BlockMeta>();
const ZONES: usize = 64;
const SMALL_MAX: usize = 64 * 1024;
/// Slots start this far into a class zone, after the metadata, so classes
/// whose size is a multiple of an alignment up to 64 KiB serve it.
const DATA_ALIGN: usize = 64 * 1024;
const COMMIT_BYTES: usize = 256 * 1024;
const LARGE_COMMIT: usize = 4 << 20;
const HEADER: usize = 64;
/// Dirty free large runs above this are returned to the OS in one batch.
const PURGE_BYTES: usize = 32 << 20;
const MAX_RUNS: usize = 8192;

/// Slot sizes: 16..128 by 16, then four classes per doubling up to 64 KiB.
pub(crate) const NCLASSES: usize = 8 + 9 * 4;

pub(crate) const fn class_size(c: usize) -> usize {
    if c < 8 {
        (c + 1) * 16
    } else {
        let group = (c - 8) / 4; // 0 => (128, 256]
        let step = 32 << group;
        (128 << group) + ((c - 8) % 4 + 1) * step
    }
}

/// The smallest class that holds `size` bytes at alignment `align`.
fn class_for(size: usize, align: usize) -> Option<usize> {
    if size > SMALL_MAX || align > DATA_ALIGN {
        return None;
    }
    let need = size.max(align);
    let mut c = if need <= 128 {
        need.max(1).div_ceil(16) - 1
    } else {
        let group = (usize::BITS - 1 - (need - 1).leading_zeros()) as usize - 7; // 128 << group < need <= 256 << group
        let step = 32usize << group;
        8 + group * 4 + (need - (128 << group)).div_ceil(step) - 1
    };
    while c < NCLASSES {
        // `align` is a power of two (Layout guarantees it): mask, do not divide.
        if class_size(c) & (align - 1) == 0 {
            return Some(c);
        }
        c += 1;
    }
    None
}

/// `[base, base + len)` once reserved; `len == 0` before, so `contains` is
/// false for every pointer.
#[repr(C, align(64))]
struct Bounds {
    base: AtomicUsize,
    len: AtomicUsize,
}

static BOUNDS: Bounds = Bounds {
    base: AtomicUsize::new(0),
    len: AtomicUsize::new(0),
};

/// Was `p` served by the region? Exact; one subtract, one compare.
#[inline(always)]
pub(crate) fn contains(p: *mut u8) -> bool {
    (p as usize).wrapping_sub(BOUNDS.base.load(Ordering::Relaxed))
        < BOUNDS.len.load(Ordering::Relaxed)
}

#[repr(align(128))]
struct Class {
    /// Next never-used slot.
    bump: AtomicUsize,
    /// Slots below this are committed.
    committed: AtomicUsize,
    /// Free list head: `tag << 32 | (slot + 1)`, 0 in the low half = empty.
    free: AtomicU64,
    lock: SpinLock,
    data_bytes: UnsafeCell<usize>,
    meta_bytes: UnsafeCell<usize>,
}

// SAFETY: the UnsafeCells are only touched with `lock` held.
unsafe impl Sync for Class {}

#[allow(clippy::declare_interior_mutable_const)]
const CLASS: Class = Class {
    bump: AtomicUsize::new(0),
    committed: AtomicUsize::new(0),
    free: AtomicU64::new(0),
    lock: SpinLock::new(),
    data_bytes: UnsafeCell::new(0),
    meta_bytes: UnsafeCell::new(0),
};

static CLASSES: [Class; NCLASSES] = [CLASS; NCLASSES];

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
}

struct Large {
    lock: SpinLock,
    state: UnsafeCell<LargeState>,
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
    }),
};

const UNINIT: u8 = 0;
const READY: u8 = 2;
const FAILED: u8 = 3;
static STATE: AtomicU8 = AtomicU8::new(UNINIT);
static INIT_LOCK: SpinLock = SpinLock::new();

/// Bytes of the region handed out to live or cached blocks, for reports.
static LARGE_RELEASED: AtomicU64 = AtomicU64::new(0);

/// Reserves the range on first use (other threads wait for it). `false` if
/// the OS refused every size we tried: profiling then stays off for
/// blocks, and each sample is counted as dropped.
pub(crate) fn ensure_init() -> bool {
    match STATE.load(Ordering::Acquire) {
        READY => return true,
        FAILED => return false,
        _ => {}
    }
    // Threads that race the first reservation wait for it (two mmap calls;
    // nothing is allocated through us, so this cannot deadlock): failing
    // instead would drop the samples of every thread that starts sampling at
    // the same moment, as parallel tests do. The lock is also taken around
    // `fork`, so a child never sees a reservation half done.
    let _g = INIT_LOCK.lock();
    match STATE.load(Ordering::Acquire) {
        READY => return true,
        FAILED => return false,
        _ => {}
    }
    // 2 TiB of address space: 32 GiB per size class. Smaller tries for
    // systems with an address-space limit (ulimit -v, valgrind).
    for shift in [41u32, 39, 37, 35, 33] {
        let len = 1usize << shift;
        if let Some(base) = os::reserve(len) {
            let runs = arena::alloc_zeroed(MAX_RUNS * core::mem::size_of::<Run>(), 8);
            if runs.is_null() {
                break;
            }
            // SAFETY: no other thread touches LARGE before STATE is READY.
            unsafe { (*LARGE.state.get()).runs = runs.cast() };
            BOUNDS.base.store(base as usize, Ordering::Relaxed);
            set_layout(len);
            BOUNDS.len.store(len, Ordering::Release);
            STATE.store(READY, Ordering::Release);
            return true;
        }
    }
    STATE.store(FAILED, Ordering::Release);
    os::write_stderr(
        b"memprof: could not reserve address space for sampled blocks; heap profiling is off\n",
    );
    false
}

/// log2 of a zone's length, set when the range is reserved.
static ZONE_SHIFT: AtomicUsize = AtomicUsize::new(0);
/// Per class: slots in the zone, and where the slots start in it. Set once
/// at reservation, so the free path divides by nothing.
static NSLOTS: [AtomicUsize; NCLASSES] = [const { AtomicUsize::new(0) }; NCLASSES];
static DATA_OFF: [AtomicUsize; NCLASSES] = [const { AtomicUsize::new(0) }; NCLASSES];

/// ceil(2^64 / size) per class: `(off * R) >> 64 == off / size` for every
/// offset below 2^48 (the error term `off * (R*size - 2^64)` stays below
/// 2^64), so a free finds its slot with a multiply instead of a divide.
const RECIP: [u64; NCLASSES] = {
    let mut r = [0u64; NCLASSES];
    let mut c = 0;
    while c < NCLASSES {
        let size = class_size(c) as u128;
        r[c] = ((1u128 << 64).div_ceil(size)) as u64;
        c += 1;
    }
    r
};

fn set_layout(len: usize) {
    let shift = (len / ZONES).trailing_zeros() as usize;
    ZONE_SHIFT.store(shift, Ordering::Relaxed);
    for c in 0..NCLASSES {
        let n = ((1usize << shift) - DATA_ALIGN) / (class_size(c) + META);
        NSLOTS[c].store(n, Ordering::Relaxed);
        DATA_OFF[c].store(os::round_up(n * META, DATA_ALIGN), Ordering::Relaxed);
    }
}

fn zone_len() -> usize {
    1 << ZONE_SHIFT.load(Ordering::Relaxed)
}

fn zone_of(p: *mut u8) -> usize {
    (p as usize - BOUNDS.base.load(Ordering::Relaxed)) >> ZONE_SHIFT.load(Ordering::Relaxed)
}

fn slot_of(c: usize, p: *mut u8) -> usize {
    let off = (p as usize - data_base(c)) as u128;
    ((off * u128::from(RECIP[c])) >> 64) as usize
}

fn zone_base(z: usize) -> usize {
    BOUNDS.base.load(Ordering::Relaxed) + z * zone_len()
}

fn nslots(c: usize) -> usize {
    NSLOTS[c].load(Ordering::Relaxed)
}

fn data_base(c: usize) -> usize {
    zone_base(c) + DATA_OFF[c].load(Ordering::Relaxed)
}

fn meta_at(c: usize, slot: usize) -> &'static BlockMeta {
    // SAFETY: slot < committed, so its metadata is committed memory inside
    // our reservation, which is never unmapped; BlockMeta is all atomics.
    unsafe { &*((zone_base(c) + slot * META) as *const BlockMeta) }
}

/// A block served by the region.
pub(crate) struct Block {
    pub(crate) ptr: *mut u8,
    pub(crate) meta: &'static BlockMeta,
    /// The memory is known to read as zero.
    pub(crate) zeroed: bool,
}

/// A block of `size` bytes aligned to `align`, or `None` when the region is
/// unavailable or full (the caller falls back to the inner allocator).
pub(crate) fn alloc(size: usize, align: usize) -> Option<Block> {
    if !ensure_init() {
        return None;
    }
    match class_for(size, align) {
        Some(c) => alloc_small(c),
        None => alloc_large(size, align),
    }
}

fn alloc_small(c: usize) -> Option<Block> {
    // This thread's cache, else a batch from the shared free list.
    if let Some(slot) = local::pop(c).or_else(|| local::refill(c)) {
        let ptr = (data_base(c) + slot * class_size(c)) as *mut u8;
        return Some(Block {
            ptr,
            meta: meta_at(c, slot),
            zeroed: false,
        });
    }
    // Or take a fresh slot.
    let class = &CLASSES[c];
    let slot = class.bump.fetch_add(1, Ordering::Relaxed);
    if slot >= nslots(c) {
        return None;
    }
    if slot >= class.committed.load(Ordering::Acquire) && !commit_small(c, slot) {
        return None;
    }
    let ptr = (data_base(c) + slot * class_size(c)) as *mut u8;
    Some(Block {
        ptr,
        meta: meta_at(c, slot),
        zeroed: true,
    })
}

#[cold]
fn commit_small(c: usize, slot: usize) -> bool {
    let class = &CLASSES[c];
    let _g = class.lock.lock();
    let size = class_size(c);
    let total = nslots(c);
    let mut committed = class.committed.load(Ordering::Relaxed);
    while committed <= slot {
        let want = (committed + (COMMIT_BYTES / size).max(1)).min(total);
        // SAFETY: we hold the class lock, which guards these counters; the
        // ranges lie inside this class's zone of our reservation.
        unsafe {
            let data = &mut *class.data_bytes.get();
            let meta = &mut *class.meta_bytes.get();
            let data_need = os::round_up(want * size, PAGE);
            let meta_need = os::round_up(want * META, PAGE);
            if data_need > *data {
                if !os::commit((data_base(c) + *data) as *mut u8, data_need - *data) {
                    return false;
                }
                *data = data_need;
            }
            if meta_need > *meta {
                if !os::commit((zone_base(c) + *meta) as *mut u8, meta_need - *meta) {
                    return false;
                }
                *meta = meta_need;
            }
        }
        committed = want;
        class.committed.store(committed, Ordering::Release);
    }
    true
}

fn large_base() -> usize {
    zone_base(NCLASSES)
}

fn large_len() -> usize {
    zone_len() * (ZONES - NCLASSES)
}

#[repr(C)]
struct LargeHeader {
    meta: BlockMeta,
    run_start: usize,
    run_len: usize,
}

fn header_of(block: *mut u8) -> &'static LargeHeader {
    // SAFETY: every large block has its header in the committed bytes just
    // before it, inside the run it was carved from.
    unsafe { &*((block as usize - HEADER) as *const LargeHeader) }
}

fn alloc_large(size: usize, align: usize) -> Option<Block> {
    let align = align.max(HEADER);
    let slack = if align > PAGE { align } else { 0 };
    let need = os::round_up(size.checked_add(align + slack)?, PAGE);
    let _g = LARGE.lock.lock();
    // SAFETY: we hold LARGE.lock.
    let st = unsafe { &mut *LARGE.state.get() };
    let (start, len, zeroed) = match take_run(st, need) {
        Some(run) => run,
        None => {
            if st.high + need > large_len() {
                return None;
            }
            let start = large_base() + st.high;
            st.high += need;
            if st.high > st.committed {
                let to = os::round_up(st.high, LARGE_COMMIT).min(large_len());
                // SAFETY: inside the large zone of our reservation.
                if !unsafe {
                    os::commit((large_base() + st.committed) as *mut u8, to - st.committed)
                } {
                    st.high -= need;
                    return None;
                }
                st.committed = to;
            }
            (start, need, true)
        }
    };
    let block = os::round_up(start + HEADER, align);
    let h = (block - HEADER) as *mut LargeHeader;
    // SAFETY: the header lies inside the committed run we just took.
    unsafe {
        (*h).run_start = start;
        (*h).run_len = len;
    }
    Some(Block {
        ptr: block as *mut u8,
        meta: &header_of(block as *mut u8).meta,
        zeroed,
    })
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
        st.dirty_bytes -= r.len.min(st.dirty_bytes);
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

fn free_large(block: *mut u8) {
    let h = header_of(block);
    let (start, len) = (h.run_start, h.run_len);
    let _g = LARGE.lock.lock();
    // SAFETY: we hold LARGE.lock.
    let st = unsafe { &mut *LARGE.state.get() };
    // SAFETY: `runs` has room for MAX_RUNS entries, `nruns` initialised.
    let runs = unsafe { core::slice::from_raw_parts_mut(st.runs, MAX_RUNS) };
    let n = st.nruns;
    let i = runs[..n].partition_point(|r| r.start < start);
    let mut run = Run {
        start,
        len,
        dirty: true,
    };
    st.dirty_bytes += len;
    let merge_prev = i > 0 && runs[i - 1].start + runs[i - 1].len == start;
    let merge_next = i < n && start + len == runs[i].start;
    match (merge_prev, merge_next) {
        (true, true) => {
            run.start = runs[i - 1].start;
            run.len += runs[i - 1].len + runs[i].len;
            clean_accounting(st, &[runs[i - 1], runs[i]]);
            runs[i - 1] = run;
            runs.copy_within(i + 1..n, i);
            st.nruns -= 1;
        }
        (true, false) => {
            clean_accounting(st, &[runs[i - 1]]);
            runs[i - 1] = Run {
                start: runs[i - 1].start,
                len: runs[i - 1].len + len,
                dirty: true,
            };
        }
        (false, true) => {
            clean_accounting(st, &[runs[i]]);
            runs[i] = Run {
                start,
                len: len + runs[i].len,
                dirty: true,
            };
        }
        (false, false) => {
            if n == MAX_RUNS {
                // Too fragmented to track: give the pages back and leak the
                // address range (counted; never seen in practice).
                // SAFETY: the run is ours and no longer used.
                unsafe { os::discard(start as *mut u8, len) };
                st.dirty_bytes -= len;
                LARGE_RELEASED.fetch_add(len as u64, Ordering::Relaxed);
                return;
            }
            runs.copy_within(i..n, i + 1);
            runs[i] = run;
            st.nruns += 1;
        }
    }
    if st.dirty_bytes > PURGE_BYTES {
        purge(st);
    }
}

/// A merged run counts as dirty as a whole: re-add the clean parts it
/// absorbed to the dirty total, so `dirty_bytes` stays the sum of dirty runs.
fn clean_accounting(st: &mut LargeState, absorbed: &[Run]) {
    for r in absorbed {
        if !r.dirty {
            st.dirty_bytes += r.len;
        }
    }
}

/// Returns the pages of every dirty free run to the OS.
fn purge(st: &mut LargeState) {
    // SAFETY: `nruns` entries are initialised; we hold the lock.
    let runs = unsafe { core::slice::from_raw_parts_mut(st.runs, st.nruns) };
    for r in runs.iter_mut().filter(|r| r.dirty) {
        // Keep the first page: it may hold nothing, but the run's start is
        // reused for a header, and the syscall is per run anyway.
        // SAFETY: free runs hold no live data.
        unsafe { os::discard(r.start as *mut u8, r.len) };
        r.dirty = false;
    }
    st.dirty_bytes = 0;
}

/// Metadata of a block served by the region.
///
/// # Safety
/// `p` must be a live block returned by `alloc` (so `contains(p)`).
pub(crate) unsafe fn meta_of(p: *mut u8) -> &'static BlockMeta {
    let z = zone_of(p);
    if z < NCLASSES {
        let slot = slot_of(z, p);
        meta_at(z, slot)
    } else {
        &header_of(p).meta
    }
}

/// Bytes usable at `p` without moving it, if `new_size` at `align` belongs
/// in the same place (same small class; or a large run it fits without
/// wasting more than half).
///
/// # Safety
/// As for `meta_of`.
pub(crate) unsafe fn fits_in_place(p: *mut u8, new_size: usize, align: usize) -> bool {
    let z = zone_of(p);
    if z < NCLASSES {
        class_for(new_size, align) == Some(z)
    } else {
        let h = header_of(p);
        let avail = h.run_start + h.run_len - p as usize;
        class_for(new_size, align).is_none() && new_size <= avail && new_size * 2 > avail
    }
}

/// Returns a block to the region.
///
/// # Safety
/// `p` must be a live block returned by `alloc`, not used after this.
pub(crate) unsafe fn free(p: *mut u8) {
    let z = zone_of(p);
    if z >= NCLASSES {
        free_large(p);
        return;
    }
    let slot = slot_of(z, p);
    if !local::push(z, slot) {
        push_chain(z, slot, slot);
    }
}

fn link(c: usize, slot: usize) -> &'static AtomicU32 {
    &meta_at(c, slot).record_or_link
}

/// Pushes the chain `first ..= last` (linked through the metadata) onto
/// class `c`'s shared free list: one successful CAS for the whole chain.
fn push_chain(c: usize, first: usize, last: usize) {
    let class = &CLASSES[c];
    let mut head = class.free.load(Ordering::Relaxed);
    loop {
        link(c, last).store(head as u32, Ordering::Relaxed);
        let new = ((head >> 32).wrapping_add(1) << 32) | (first as u64 + 1);
        match class
            .free
            .compare_exchange_weak(head, new, Ordering::Release, Ordering::Relaxed)
        {
            Ok(_) => return,
            Err(h) => head = h,
        }
    }
}

/// Takes up to `max` slots off class `c`'s shared free list with one
/// successful CAS. Returns the first and last slot and the count; the chain
/// is linked first to last and its last link is left as it was.
///
/// The walk reads links of slots still on the list; if any was popped
/// meanwhile the head's tag changed and the CAS fails (every push and pop
/// bumps it), and only a pop or push at the head can change a link.
fn pop_chain(c: usize, max: usize) -> Option<(usize, usize, usize)> {
    let class = &CLASSES[c];
    let mut head = class.free.load(Ordering::Acquire);
    loop {
        if head as u32 == 0 {
            return None;
        }
        let first = (head as u32 - 1) as usize;
        let (mut last, mut n) = (first, 1);
        let mut next = link(c, last).load(Ordering::Relaxed);
        while n < max && next != 0 {
            last = (next - 1) as usize;
            next = link(c, last).load(Ordering::Relaxed);
            n += 1;
        }
        let new = ((head >> 32).wrapping_add(1) << 32) | u64::from(next);
        match class
            .free
            .compare_exchange_weak(head, new, Ordering::Acquire, Ordering::Acquire)
        {
            Ok(_) => return Some((first, last, n)),
            Err(h) => head = h,
        }
    }
}

/// Per-thread caches of free small slots, so that a thread that frees and
/// allocates (every op of a churn at rate 1) touches no shared cache line:
/// with one shared free list per class, two threads at rate 1 bounced its
/// head on every alloc and free (9x bare `System` instead of ~3x).
///
/// Each class has a local list of at most `2 * BATCH` slots, linked through
/// the metadata like the shared list. An empty local list takes `BATCH`
/// slots from the shared list in one CAS; a full one gives `BATCH` back in
/// one CAS. At thread exit a `pthread` key destructor gives every slot
/// back (and again if later thread-local destructors free more), so a
/// thread's cache is not lost with it. The cells are `const` thread-locals
/// without destructors, usable inside `alloc` and during thread teardown;
/// if they are gone, `push` and `pop` report it and the caller uses the
/// shared list.
mod local {
    use super::{link, pop_chain, push_chain, NCLASSES};
    use core::cell::Cell;
    use core::sync::atomic::{AtomicU32, Ordering};

    const BATCH: usize = 32;

    thread_local! {
        /// Per class: `len << 32 | (head slot + 1)`, 0 when empty.
        static LISTS: [Cell<u64>; NCLASSES] = const { [const { Cell::new(0) }; NCLASSES] };
        /// This thread has set its exit-time key (see `register`).
        static REGISTERED: Cell<bool> = const { Cell::new(false) };
    }

    /// A slot from this thread's cache of class `c`.
    pub(super) fn pop(c: usize) -> Option<usize> {
        LISTS
            .try_with(|l| {
                let v = l[c].get();
                let head = v as u32;
                if head == 0 {
                    return None;
                }
                let slot = (head - 1) as usize;
                let next = link(c, slot).load(Ordering::Relaxed);
                l[c].set(((v >> 32) - 1) << 32 | u64::from(next));
                Some(slot)
            })
            .ok()
            .flatten()
    }

    /// Refills this thread's cache of class `c` from the shared list and
    /// returns one slot of the batch.
    pub(super) fn refill(c: usize) -> Option<usize> {
        let (first, last, n) = pop_chain(c, BATCH)?;
        if n > 1 {
            let rest = link(c, first).load(Ordering::Relaxed);
            link(c, last).store(0, Ordering::Relaxed);
            // The local list is empty: `refill` follows a failed `pop`.
            let kept = LISTS.try_with(|l| l[c].set(((n - 1) as u64) << 32 | u64::from(rest)));
            if kept.is_err() {
                // No thread-locals any more: give the rest back.
                push_chain(c, (rest - 1) as usize, last);
            }
        }
        Some(first)
    }

    /// Puts `slot` in this thread's cache of class `c`, giving a batch back
    /// to the shared list when the cache is full. `false` when this thread
    /// has no cache any more.
    pub(super) fn push(c: usize, slot: usize) -> bool {
        let pushed = LISTS.try_with(|l| {
            let v = l[c].get();
            link(c, slot).store(v as u32, Ordering::Relaxed);
            let len = (v >> 32) as usize + 1;
            l[c].set((len as u64) << 32 | (slot as u64 + 1));
            if len == 2 * BATCH {
                give_back(l, c, BATCH);
            }
        });
        if pushed.is_ok() {
            register();
        }
        pushed.is_ok()
    }

    /// Moves the first `n` slots of the local list of class `c` (which
    /// holds at least `n`) to the shared list.
    fn give_back(l: &[Cell<u64>; NCLASSES], c: usize, n: usize) {
        let v = l[c].get();
        let first = (v as u32 - 1) as usize;
        let mut last = first;
        for _ in 1..n {
            last = (link(c, last).load(Ordering::Relaxed) - 1) as usize;
        }
        let rest = link(c, last).load(Ordering::Relaxed);
        l[c].set(((v >> 32) - n as u64) << 32 | u64::from(rest));
        push_chain(c, first, last);
    }

    /// Key whose destructor empties an exiting thread's caches: 0 until
    /// created, `u32::MAX` if creation failed.
    static KEY: AtomicU32 = AtomicU32::new(0);

    /// Makes sure this thread's caches are emptied when it exits.
    fn register() {
        if REGISTERED.try_with(Cell::get).unwrap_or(true) {
            return;
        }
        let mut key = KEY.load(Ordering::Acquire);
        if key == 0 {
            key = create_key();
        }
        if key != u32::MAX {
            // SAFETY: `key - 1` is a key we created and never delete; the
            // value is a non-null marker (destructors run only for
            // non-null values), never dereferenced.
            unsafe { libc::pthread_setspecific(key - 1, core::ptr::dangling::<libc::c_void>()) };
        }
        let _ = REGISTERED.try_with(|r| r.set(true));
    }

    /// Creates the key once. No lock (a `fork` must not find one held):
    /// racing threads each create one, and the losers delete theirs.
    #[cold]
    fn create_key() -> u32 {
        let mut k: libc::pthread_key_t = 0;
        // SAFETY: `k` is a valid out-pointer; `on_thread_exit` matches the
        // destructor type.
        if unsafe { libc::pthread_key_create(&mut k, Some(on_thread_exit)) } != 0 {
            let _ = KEY.compare_exchange(0, u32::MAX, Ordering::AcqRel, Ordering::Acquire);
            return KEY.load(Ordering::Acquire);
        }
        match KEY.compare_exchange(0, k + 1, Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) => k + 1,
            Err(winner) => {
                // SAFETY: `k` is ours, unused: no thread set a value for it.
                unsafe { libc::pthread_key_delete(k) };
                winner
            }
        }
    }

    /// Gives every cached slot of the exiting thread back to the shared
    /// lists. Thread-local destructors that run after this and free more
    /// set the key again, and the thread library calls this again.
    unsafe extern "C" fn on_thread_exit(_: *mut libc::c_void) {
        let _ = LISTS.try_with(|l| {
            for c in 0..NCLASSES {
                let n = (l[c].get() >> 32) as usize;
                if n > 0 {
                    give_back(l, c, n);
                }
            }
        });
        let _ = REGISTERED.try_with(|r| r.set(false));
    }
}

/// Address space reserved and bytes currently committed, for reports.
pub(crate) fn footprint() -> (usize, usize) {
    let mut committed = 0;
    for class in &CLASSES {
        let _g = class.lock.lock();
        // SAFETY: we hold the class lock.
        unsafe { committed += *class.data_bytes.get() + *class.meta_bytes.get() };
    }
    let _g = LARGE.lock.lock();
    // SAFETY: we hold LARGE.lock.
    committed += unsafe { (*LARGE.state.get()).committed };
    (BOUNDS.len.load(Ordering::Relaxed), committed)
}

pub(crate) fn lock_for_fork() {
    INIT_LOCK.raw_lock();
    for class in &CLASSES {
        class.lock.raw_lock();
    }
    LARGE.lock.raw_lock();
}

pub(crate) fn unlock_after_fork() {
    LARGE.lock.raw_unlock();
    for class in CLASSES.iter().rev() {
        class.lock.raw_unlock();
    }
    INIT_LOCK.raw_unlock();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_grow_and_fit() {
        let mut prev = 0;
        for c in 0..NCLASSES {
            let s = class_size(c);
            assert!(s > prev && s.is_multiple_of(16), "class {c} size {s}");
            prev = s;
        }
        assert_eq!(class_size(NCLASSES - 1), SMALL_MAX);
        for size in 1..=SMALL_MAX {
            let c = class_for(size, 8).unwrap();
            assert!(class_size(c) >= size);
            assert!(
                c == 0 || class_size(c - 1) < size,
                "size {size} got class {c}"
            );
        }
        assert_eq!(class_for(100, 64).map(class_size), Some(128));
        assert_eq!(class_for(SMALL_MAX + 1, 8), None);
    }

    #[test]
    fn reciprocal_division_is_exact() {
        for (c, &recip) in RECIP.iter().enumerate() {
            let size = class_size(c);
            for off in [
                0usize,
                size - 1,
                size,
                7 * size + 3,
                (1 << 35) - 1,
                (1 << 40) + 12345,
                (1 << 48) - 1,
            ] {
                assert_eq!(
                    ((off as u128 * u128::from(recip)) >> 64) as usize,
                    off / size,
                    "class {c} off {off}"
                );
            }
        }
    }

    #[test]
    fn small_and_large_blocks_round_trip() {
        for &(size, align) in &[
            (1, 1),
            (24, 8),
            (100, 64),
            (5000, 4096),
            (200_000, 16),
            (70_000, 8192),
        ] {
            let b = alloc(size, align).expect("region available");
            assert!(contains(b.ptr));
            assert_eq!(b.ptr as usize % align, 0);
            // SAFETY: the block is ours and `size` bytes long.
            unsafe {
                core::ptr::write_bytes(b.ptr, 0xAB, size);
                meta_of(b.ptr).set(7, 99, 0);
                assert_eq!(meta_of(b.ptr).record(), 7);
                assert_eq!(meta_of(b.ptr).weight(), 99);
                free(b.ptr);
            }
        }
        let mut x = 0u8;
        assert!(!contains(&mut x));
    }

    #[test]
    fn a_threads_cached_slots_come_back_when_it_exits() {
        const SIZE: usize = 50_000; // a class no other test uses
        let c = class_for(SIZE, 8).unwrap();
        std::thread::spawn(|| {
            let blocks: Vec<_> = (0..50)
                .map(|_| alloc(SIZE, 8).unwrap().ptr as usize)
                .collect();
            for p in blocks {
                // SAFETY: each block is ours, freed once.
                unsafe { free(p as *mut u8) };
            }
        })
        .join()
        .unwrap();
        // All 50 went back to the shared list: taking 50 more needs no
        // fresh slot.
        let bump = CLASSES[c].bump.load(Ordering::Relaxed);
        let again: Vec<_> = (0..50)
            .map(|_| alloc(SIZE, 8).unwrap().ptr as usize)
            .collect();
        assert_eq!(CLASSES[c].bump.load(Ordering::Relaxed), bump);
        let mut unique = again.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), 50, "no slot handed out twice");
        for p in again {
            // SAFETY: as above.
            unsafe { free(p as *mut u8) };
        }
    }
}
