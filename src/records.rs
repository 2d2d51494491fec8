//! Per-site records: counters keyed by (stack, object size, label set):
//! Go's key, plus the labels the sample was taken under (`labels.rs`).
//!
//! Size is part of the key, so a record's objects all have one size and
//! bytes are always `objects × size`: only object counts and weights are
//! stored. Each sample adds its own weight (fixed point, `WEIGHT_ONE` = one
//! object) taken at the rate in force when it was sampled, and its free
//! subtracts exactly that weight again, read back from the block's
//! metadata.
//!
//! A record also keeps its stack's full 64-bit hash (`stacks::finish`), and
//! is found by (stack hash, size, labels): a sample at a site seen before
//! needs one lookup here and none in the stack table (`live::record_of`).
//! The stack table identifies a stack by its hash (with its length and
//! truncation mark, which the hash folds in), so the key is (stack, size,
//! labels) up to the hash collisions the stack table already accepts
//! (~n²/2^65 for n stacks).
//!
//! Thread safety: lookups are lock-free; adding a record locks (`sys::table`).
//! Counters are atomics updated on the slow path only.
//!
//! Counter shards: a record's counters start in the record, written by
//! the thread that made it (its `owner`). The first time another thread
//! counts an event on it, the record gets `SHARDS` more sets of the four
//! counters, each on its own pair of cache lines (`Shards`, from the arena), and
//! from then on every thread counts into the set of its own thread tag
//! (`tag % SHARDS`). So two threads allocating at one site (at rate 1,
//! every allocation) stop bouncing one cache line between their cores,
//! and a record only one thread uses costs no memory more. Every set is
//! atomics, and a reader sums them all: which set an event lands in never
//! matters for exactness, only for speed (a thread without its locals
//! counts into the record's own set). Shard sets are never freed; at most
//! `MAX_SHARDED` records get one (then the rest share the record's set).
//!
//! Invariants (per record, at any instant a reader loads `frees` before
//! `allocs`): `frees <= allocs` and `free_weight <= alloc_weight`.
//!
//! The peak copy: `capture_peak` copies every record's four counters into
//! its `peak` fields (under `peak.rs`'s capture lock) and then publishes
//! how many records it covered; records past that count have no peak
//! values. See `peak.rs` for when a capture happens.

use crate::labels::LabelSetId;
use crate::sampler::WEIGHT_ONE;
use crate::stacks::StackId;
use crate::sys::arena;
use crate::sys::lock::SpinLock;
use crate::sys::table::Table;
use core::cell::Cell;
use core::ptr;
use core::sync::atomic::{AtomicPtr, AtomicU32, AtomicU64, Ordering};

pub(crate) type RecordId = u32;

/// At most this many records (2 Mi).
const CHUNKS: usize = 512;

/// One set of a record's counters, generic over its atomics so that the
/// `loom` model below runs this code.
///
/// Weights are stored as `count * WEIGHT_ONE + extra`: a sample of weight
/// exactly one object (every sample at rate 1, and blocks far larger than
/// the rate) then costs one atomic add, not two. The adds were most of a
/// rate-1 sample's time after the stack walk.
struct Counters<C = AtomicU64> {
    allocs: C,
    frees: C,
    alloc_extra: C,
    free_extra: C,
}

/// The atomic a counter is.
trait Count {
    fn load(&self, order: Ordering) -> u64;
    fn add(&self, v: u64, order: Ordering);
}

impl Count for AtomicU64 {
    #[inline]
    fn load(&self, order: Ordering) -> u64 {
        AtomicU64::load(self, order)
    }
    #[inline]
    fn add(&self, v: u64, order: Ordering) {
        self.fetch_add(v, order);
    }
}

impl Counters {
    const fn new() -> Self {
        Counters {
            allocs: AtomicU64::new(0),
            frees: AtomicU64::new(0),
            alloc_extra: AtomicU64::new(0),
            free_extra: AtomicU64::new(0),
        }
    }
}

impl<C: Count> Counters<C> {
    /// Counts one alloc (`free == false`) or free of `weight`.
    #[inline]
    fn count(&self, free: bool, weight: u64) {
        let (n, extra) = if free {
            (&self.frees, &self.free_extra)
        } else {
            (&self.allocs, &self.alloc_extra)
        };
        if weight != WEIGHT_ONE {
            // Wrapping: a weight just under one object would subtract.
            extra.add(weight.wrapping_sub(WEIGHT_ONE), Ordering::Relaxed);
        }
        // Release: a reader that sees this count sees the extra too.
        n.add(1, Ordering::Release);
    }
}

/// `[allocs, frees, alloc_extra, free_extra]` summed over the sets
/// `sets()` returns (called twice: the record's own set and the shards
/// published by then). Every set's frees are read before any set's allocs,
/// so each free seen has its alloc seen too: a count is added with
/// release, and an alloc happens before its block's free. The sets are
/// asked for again after the frees: a free counted in the record's own set
/// (by a thread without locals) may have its alloc in a shard published
/// after the first call.
fn sum<'a, C: Count + 'a, I: Iterator<Item = &'a Counters<C>>>(
    mut sets: impl FnMut() -> I,
) -> [u64; 4] {
    let (mut frees, mut free_extra) = (0u64, 0u64);
    for c in sets() {
        frees = frees.wrapping_add(c.frees.load(Ordering::Acquire));
        free_extra = free_extra.wrapping_add(c.free_extra.load(Ordering::Relaxed));
    }
    let (mut allocs, mut alloc_extra) = (0u64, 0u64);
    for c in sets() {
        allocs = allocs.wrapping_add(c.allocs.load(Ordering::Acquire));
        alloc_extra = alloc_extra.wrapping_add(c.alloc_extra.load(Ordering::Relaxed));
    }
    [allocs, frees, alloc_extra, free_extra]
}

/// Counter sets per sharded record.
const SHARDS: usize = 8;
/// Most records with shards: 16 MiB of them.
const MAX_SHARDED: u32 = 16 * 1024;

/// 128 bytes: the adjacent-line prefetcher fetches lines in aligned
/// pairs, so two sets on one pair still bounce between cores.
#[repr(C, align(128))]
struct Shard(Counters);

/// A record's extra counter sets, one pair of cache lines each.
struct Shards([Shard; SHARDS]);

pub(crate) struct Record {
    /// The stack's full hash (`stacks::finish`): records are found by it,
    /// so a sample at a known site needs no stack table lookup.
    stack_hash: u64,
    pub(crate) stack: StackId,
    pub(crate) labels: LabelSetId,
    pub(crate) size: u64,
    /// The tag of the thread that made the record (see the module docs).
    owner: u32,
    /// Null until a second thread counts on the record; then set once.
    shards: AtomicPtr<Shards>,
    counts: Counters,
    /// `[allocs, frees, alloc_extra, free_extra]` at the last peak capture.
    peak: [AtomicU64; 4],
}

/// A consistent read of one record's counters.
pub(crate) struct Counts {
    pub(crate) id: RecordId,
    pub(crate) stack: StackId,
    pub(crate) labels: LabelSetId,
    pub(crate) size: u64,
    pub(crate) allocs: u64,
    pub(crate) frees: u64,
    pub(crate) alloc_weight: u64,
    pub(crate) free_weight: u64,
}

static TABLE: Table<Record, CHUNKS> = Table::new();
static DROPPED: AtomicU64 = AtomicU64::new(0);
/// Taken to give a record its shards (never while another lock is held).
static SHARD_LOCK: SpinLock = SpinLock::new();
/// Records given shards so far (guarded by `SHARD_LOCK`).
static SHARDED: AtomicU32 = AtomicU32::new(0);
/// The last thread tag handed out.
static LAST_TAG: AtomicU32 = AtomicU32::new(0);

thread_local! {
    /// This thread's tag, 0 until its first count.
    static TAG: Cell<u32> = const { Cell::new(0) };
}

/// This thread's tag (never 0), or 0 once its locals are gone.
#[inline]
fn tag() -> u32 {
    TAG.try_with(|t| {
        let v = t.get();
        if v != 0 {
            return v;
        }
        let v = LAST_TAG
            .fetch_add(1, Ordering::Relaxed)
            .wrapping_add(1)
            .max(1);
        t.set(v);
        v
    })
    .unwrap_or(0)
}
/// Records covered by the last peak capture.
static PEAK_LEN: AtomicU32 = AtomicU32::new(0);

fn hash(stack_hash: u64, size: u64, labels: LabelSetId) -> u32 {
    let key =
        stack_hash ^ size.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ u64::from(labels).rotate_left(17);
    let h = key.wrapping_mul(0xff51_afd7_ed55_8ccd);
    (h >> 32) as u32 ^ h as u32
}

/// The record `id` (one that `intern` returned).
#[inline]
pub(crate) fn get(id: RecordId) -> &'static Record {
    TABLE.get(id)
}

/// Starts loading what `find(stack_hash, size, labels)` reads first (its
/// index slot: a cache miss when sampled allocations are far apart).
#[inline]
pub(crate) fn prefetch(stack_hash: u64, size: u64, labels: LabelSetId) {
    TABLE.prefetch(hash(stack_hash, size, labels));
}

/// The record for (the stack of full hash `stack_hash`, size, labels), if
/// there is one: one lookup, lock-free. A stack is identified by its full
/// hash, as in the stack table (`stacks.rs`).
#[inline]
pub(crate) fn find(
    stack_hash: u64,
    size: u64,
    labels: LabelSetId,
) -> Option<(RecordId, &'static Record)> {
    let eq = |r: &Record| r.stack_hash == stack_hash && r.size == size && r.labels == labels;
    TABLE.find_entry(hash(stack_hash, size, labels), eq)
}

/// The record for (stack, size, labels), added if new; `None` when full.
/// `stack_hash` is the stack's full hash (`stacks::finish`).
pub(crate) fn intern(
    stack: StackId,
    stack_hash: u64,
    size: u64,
    labels: LabelSetId,
) -> Option<(RecordId, &'static Record)> {
    let eq = |r: &Record| r.stack_hash == stack_hash && r.size == size && r.labels == labels;
    let id = TABLE.intern(hash(stack_hash, size, labels), eq, || {
        Some(Record {
            stack_hash,
            stack,
            labels,
            size,
            owner: tag(),
            shards: AtomicPtr::new(ptr::null_mut()),
            counts: Counters::new(),
            peak: [const { AtomicU64::new(0) }; 4],
        })
    })?;
    Some((id, get(id)))
}

/// Number of records so far.
pub(crate) fn count() -> usize {
    TABLE.len()
}

/// The counter set this thread counts `r`'s events in.
#[inline]
fn counters(r: &Record) -> &Counters {
    let tag = tag();
    let s = r.shards.load(Ordering::Acquire);
    if !s.is_null() && tag != 0 {
        // SAFETY: a non-null `shards` points to a zeroed, never freed
        // `Shards` from the arena, published (release) after it was made.
        return unsafe { &(*s).0[tag as usize % SHARDS].0 };
    }
    if tag == r.owner || tag == 0 {
        return &r.counts;
    }
    shard_slow(r, tag)
}

/// Gives `r` its shards (if no other thread did, and the budget allows)
/// and returns this thread's set.
#[cold]
#[inline(never)]
fn shard_slow(r: &Record, tag: u32) -> &Counters {
    let _g = SHARD_LOCK.lock();
    let mut s = r.shards.load(Ordering::Acquire);
    if s.is_null() {
        if SHARDED.load(Ordering::Relaxed) >= MAX_SHARDED {
            return &r.counts;
        }
        s = arena::alloc_zeroed(core::mem::size_of::<Shards>(), 128).cast::<Shards>();
        if s.is_null() {
            return &r.counts;
        }
        SHARDED.fetch_add(1, Ordering::Relaxed);
        r.shards.store(s, Ordering::Release);
    }
    // SAFETY: as in `counters`; zeroed memory is a valid `Shards` (atomics).
    unsafe { &(*s).0[tag as usize % SHARDS].0 }
}

#[cfg(test)]
pub(crate) fn on_alloc(id: RecordId, weight: u64) {
    count_alloc(get(id), weight);
}

#[cfg(test)]
pub(crate) fn on_free(id: RecordId, weight: u64) {
    count_free(get(id), weight);
}

/// Counts a sample of `weight` on `r`, found by `get`.
#[inline]
pub(crate) fn count_alloc(r: &Record, weight: u64) {
    counters(r).count(false, weight);
}

/// Counts the free of a sample of `weight` on `r`.
#[inline]
pub(crate) fn count_free(r: &Record, weight: u64) {
    counters(r).count(true, weight);
}

/// `r`'s counters, summed over its sets (see `sum`).
#[inline]
fn read(r: &Record) -> [u64; 4] {
    let own = &r.counts;
    if r.shards.load(Ordering::Acquire).is_null() {
        // `sum` over the record's set alone, as long as no shards appear
        // before the allocs are read: a peak capture reads every record.
        let frees = own.frees.load(Ordering::Acquire);
        let free_extra = own.free_extra.load(Ordering::Relaxed);
        if r.shards.load(Ordering::Acquire).is_null() {
            let allocs = own.allocs.load(Ordering::Acquire);
            let alloc_extra = own.alloc_extra.load(Ordering::Relaxed);
            return [allocs, frees, alloc_extra, free_extra];
        }
    }
    read_sharded(r)
}

#[cold]
#[inline(never)]
fn read_sharded(r: &Record) -> [u64; 4] {
    sum(|| {
        let s = r.shards.load(Ordering::Acquire);
        let shards: &[Shard] = if s.is_null() {
            &[]
        } else {
            // SAFETY: as in `counters`.
            unsafe { &(*s).0 }
        };
        core::iter::once(&r.counts).chain(shards.iter().map(|s| &s.0))
    })
}

fn weight(count: u64, extra: u64) -> u64 {
    count.wrapping_mul(WEIGHT_ONE).wrapping_add(extra)
}

/// Reads every record. Frees are read before allocs, so each record's
/// counts satisfy the invariants even while other threads run.
pub(crate) fn for_each(mut f: impl FnMut(Counts)) {
    for id in 0..TABLE.len() as u32 {
        let r = get(id);
        f(counts(id, r, read(r)));
    }
}

fn counts(id: RecordId, r: &Record, [allocs, frees, alloc_extra, free_extra]: [u64; 4]) -> Counts {
    let free_weight = weight(frees, free_extra);
    let alloc_weight = weight(allocs, alloc_extra);
    Counts {
        id,
        stack: r.stack,
        labels: r.labels,
        size: r.size,
        allocs: allocs.max(frees),
        frees,
        alloc_weight: alloc_weight.max(free_weight),
        free_weight,
    }
}

/// Copies every record's counters into its peak copy. The caller holds
/// the peak capture lock (`peak.rs`), so captures never interleave.
pub(crate) fn capture_peak() {
    let n = TABLE.len();
    TABLE.for_each_below(n, |r| {
        for (slot, v) in r.peak.iter().zip(read(r)) {
            slot.store(v, Ordering::Relaxed);
        }
    });
    PEAK_LEN.store(n as u32, Ordering::Release);
}

/// Reads every record's peak copy (records made after the capture are
/// left out). The caller holds the peak capture lock.
pub(crate) fn for_each_peak(mut f: impl FnMut(Counts)) {
    for id in 0..PEAK_LEN.load(Ordering::Acquire) {
        let r = get(id);
        let v = r.peak.each_ref().map(|a| a.load(Ordering::Relaxed));
        f(counts(id, r, v));
    }
}

/// Counts a sample that could not be recorded (a table or the region full).
pub(crate) fn note_dropped() {
    DROPPED.fetch_add(1, Ordering::Relaxed);
}

pub(crate) fn dropped() -> u64 {
    DROPPED.load(Ordering::Relaxed)
}

pub(crate) fn lock_for_fork() {
    TABLE.lock_for_fork();
    SHARD_LOCK.raw_lock();
}

pub(crate) fn unlock_after_fork() {
    SHARD_LOCK.raw_unlock();
    TABLE.unlock_after_fork();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts_of(id: RecordId) -> (u64, u64, u64, u64) {
        let mut out = None;
        for_each(|c| {
            if c.id == id {
                out = Some((c.allocs, c.alloc_weight, c.frees, c.free_weight));
            }
        });
        out.unwrap()
    }

    #[test]
    fn weights_of_one_object_and_others_add_up() {
        // A stack id no other test uses.
        let id = intern(0x7fff_0001, 0x7fff_0001, 48, 0).unwrap().0;
        let weights = [WEIGHT_ONE, WEIGHT_ONE * 3 + 7, WEIGHT_ONE, WEIGHT_ONE - 1];
        for w in weights {
            on_alloc(id, w);
        }
        on_free(id, WEIGHT_ONE * 3 + 7);
        on_free(id, WEIGHT_ONE - 1);
        let total: u64 = weights.iter().sum();
        assert_eq!(
            counts_of(id),
            (4, total, 2, WEIGHT_ONE * 3 + 7 + WEIGHT_ONE - 1)
        );
    }

    #[test]
    fn counts_from_other_threads_go_to_shards_and_add_up() {
        let id = intern(0x7fff_0002, 0x7fff_0002, 64, 0).unwrap().0;
        on_alloc(id, WEIGHT_ONE);
        assert!(get(id).shards.load(Ordering::Acquire).is_null());
        let threads: Vec<_> = (0..3)
            .map(|_| {
                std::thread::spawn(move || {
                    for _ in 0..1000 {
                        on_alloc(id, WEIGHT_ONE * 2);
                        on_free(id, WEIGHT_ONE * 2);
                    }
                    on_alloc(id, WEIGHT_ONE);
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert!(!get(id).shards.load(Ordering::Acquire).is_null());
        on_free(id, WEIGHT_ONE);
        assert_eq!(
            counts_of(id),
            (
                3004,
                WEIGHT_ONE * (3000 * 2 + 4),
                3001,
                WEIGHT_ONE * (3000 * 2 + 1)
            )
        );
    }
}

/// The `loom` model of counter shards:
/// `RUSTFLAGS="--cfg memprof_loom" cargo test --release --lib loom`. The
/// record's owner counts an alloc (in its own set, or its shard once
/// shards are published) and hands the block to a second thread, which
/// publishes the shards, counts an alloc of its own in its shard, frees
/// the owner's block there and frees its own block into the record's set
/// (as a thread without locals does). A reader sums meanwhile: it never
/// sees more frees than allocs; at the end the sums are exact.
#[cfg(all(test, memprof_loom))]
mod loom_model {
    use super::*;
    use loom::sync::atomic::{AtomicBool, AtomicU64 as LoomU64};
    use loom::sync::Arc;

    impl Count for LoomU64 {
        fn load(&self, order: Ordering) -> u64 {
            LoomU64::load(self, order)
        }
        fn add(&self, v: u64, order: Ordering) {
            self.fetch_add(v, order);
        }
    }

    fn set() -> Counters<LoomU64> {
        Counters {
            allocs: LoomU64::new(0),
            frees: LoomU64::new(0),
            alloc_extra: LoomU64::new(0),
            free_extra: LoomU64::new(0),
        }
    }

    struct Rec {
        own: Counters<LoomU64>,
        shards: [Counters<LoomU64>; 2],
        published: AtomicBool,
        handed: AtomicBool,
    }

    impl Rec {
        fn sum(&self) -> [u64; 4] {
            sum(|| {
                let n = if self.published.load(Ordering::Acquire) {
                    2
                } else {
                    0
                };
                core::iter::once(&self.own).chain(self.shards[..n].iter())
            })
        }
    }

    const W: u64 = WEIGHT_ONE * 3 + 5;

    /// Counts never show a free before its alloc. (An extra is added
    /// before its count, relaxed, so a reader may see an extra whose count
    /// it does not see yet: `counts` clamps the weights for that.)
    fn check(v: [u64; 4]) {
        let [allocs, frees, _, _] = v;
        assert!(frees <= allocs, "{v:?}");
    }

    #[test]
    fn loom_shards_lose_nothing_and_never_show_a_free_before_its_alloc() {
        let mut b = loom::model::Builder::new();
        b.preemption_bound = Some(3);
        b.check(|| {
            let r = Arc::new(Rec {
                own: set(),
                shards: [set(), set()],
                published: AtomicBool::new(false),
                handed: AtomicBool::new(false),
            });
            let owner = {
                let r = r.clone();
                loom::thread::spawn(move || {
                    // `counters` for the owner: its shard once published.
                    if r.published.load(Ordering::Acquire) {
                        r.shards[0].count(false, W);
                    } else {
                        r.own.count(false, W);
                    }
                    r.handed.store(true, Ordering::Release);
                })
            };
            let other = {
                let r = r.clone();
                loom::thread::spawn(move || {
                    r.published.store(true, Ordering::Release);
                    r.shards[1].count(false, WEIGHT_ONE);
                    while !r.handed.load(Ordering::Acquire) {
                        loom::thread::yield_now();
                    }
                    r.shards[1].count(true, W);
                    r.own.count(true, WEIGHT_ONE);
                })
            };
            check(r.sum());
            owner.join().unwrap();
            other.join().unwrap();
            assert_eq!(r.sum(), [2, 2, W - WEIGHT_ONE, W - WEIGHT_ONE]);
        });
    }
}
