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
//! Single writers: a record's own counter set (`counts`) is written by the
//! thread that made it (its `owner`) and by no other, so the owner counts
//! with a plain load and store (`count_owned`: no locked instruction; at
//! rate 1 two of the four locked read-modify-writes an op were these).
//! Owners are thread tags (`tag`), 64-bit and handed out once each, so a
//! tag is never reused: no two threads are ever the owner of one set, even
//! after a thread exits (its sets then stay as they are, read as always).
//! A thread without its locals has tag 0, which owns nothing.
//!
//! Counter shards: the first time another thread counts an event on a
//! record, the record gets `SHARDS` shards (`Shards`, from the arena),
//! each on its own pair of cache lines, and from then on every thread,
//! the owner too, counts in the shard of its own tag (`tag % SHARDS`):
//! the record's own lines are then only read. A shard is claimed by the
//! first thread that counts in it (its `owner`, set once by a CAS from 0)
//! and holds two sets: `own`, written by that thread only, with plain
//! stores, and `shared`, which the other threads of that shard (tags
//! equal modulo `SHARDS`) add to atomically. The shards come with one
//! more set, added to atomically by threads without their locals (tag 0).
//! Past `MAX_SHARDED` records with shards, a record gets that one set
//! alone (`Overflow`, 64 bytes), and every other thread adds to it. A
//! record with neither (`shards` null) has nothing but its own set to
//! read, and stays 104 bytes: at rate 1 a program has many thousands of
//! thousands of records, and a peak capture reads them all. So two
//! threads allocating at one site (at rate 1, every allocation) stop
//! bouncing one cache line between their cores and neither uses a locked
//! instruction, and a record only one thread uses costs no memory more.
//! A reader sums every set: which set an event lands in never matters for
//! exactness, only for speed. Shard sets are never freed. With the arena
//! full (1 GiB of tables), a record without shards drops its other
//! threads' events (counted as dropped, as samples are then).
//!
//! Invariants (per record, at any instant a reader loads `frees` before
//! `allocs`): `frees <= allocs` and `free_weight <= alloc_weight`. Each set
//! is written either by one thread (a plain store, release) or by atomic
//! adds (release), never both; a reader loads every set's frees (acquire)
//! before any set's allocs, so each free it sees has its alloc seen too:
//! the alloc was counted before the block reached the freeing thread, and
//! a count seen makes everything its writer did before it visible,
//! whichever set either landed in (see `sum`). The weights are clamped for
//! the extras, which are relaxed (`counts`). And: a set with an owner is
//! written by no other thread.
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
    /// An atomic add (a locked instruction), for a set with many writers.
    fn add(&self, v: u64, order: Ordering);
    /// A plain load and store, for a set with one writer: the caller.
    fn add_owned(&self, v: u64, order: Ordering);
    /// Sets a shard's owner from 0 to `tag`; `false` if it had one.
    fn claim(&self, tag: u64) -> bool;
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
    #[inline]
    fn add_owned(&self, v: u64, order: Ordering) {
        self.store(
            AtomicU64::load(self, Ordering::Relaxed).wrapping_add(v),
            order,
        );
    }
    #[inline]
    fn claim(&self, tag: u64) -> bool {
        self.compare_exchange(0, tag, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
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
    /// Counts one alloc (`free == false`) or free of `weight`, atomically:
    /// any thread may.
    #[inline]
    fn count(&self, free: bool, weight: u64) {
        let (n, extra) = self.pick(free);
        if weight != WEIGHT_ONE {
            // Wrapping: a weight just under one object would subtract.
            extra.add(weight.wrapping_sub(WEIGHT_ONE), Ordering::Relaxed);
        }
        // Release: a reader that sees this count sees the extra too.
        n.add(1, Ordering::Release);
    }

    /// `count` with plain loads and stores: only the set's one writer (its
    /// owner thread) may call it.
    #[inline]
    fn count_owned(&self, free: bool, weight: u64) {
        let (n, extra) = self.pick(free);
        if weight != WEIGHT_ONE {
            extra.add_owned(weight.wrapping_sub(WEIGHT_ONE), Ordering::Relaxed);
        }
        // Release, as in `count`: the extra, and everything this thread
        // did before (the block's alloc, for a free), is seen with it.
        n.add_owned(1, Ordering::Release);
    }

    #[inline]
    fn pick(&self, free: bool) -> (&C, &C) {
        if free {
            (&self.frees, &self.free_extra)
        } else {
            (&self.allocs, &self.alloc_extra)
        }
    }
}

/// `[allocs, frees, alloc_extra, free_extra]` summed over the sets
/// `sets()` returns (called twice: the record's two sets and the shards'
/// sets published by then). Every set's frees are read before any set's
/// allocs, so each free seen has its alloc seen too: a count is stored
/// with release (a plain store by a set's one writer, or an atomic add),
/// the frees are loaded with acquire, and an alloc happens before its
/// block's free. The sets are asked for again after the frees: a free
/// counted in one of the record's sets may have its alloc in a shard
/// published after the first call.
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
/// Most records with shards: 18 MiB of them.
const MAX_SHARDED: u32 = 16 * 1024;

/// One shard: a set its `owner` thread (a tag, 0 until claimed) writes
/// alone and a set the shard's other threads add to. 128 bytes: the
/// adjacent-line prefetcher fetches lines in aligned pairs, so two shards
/// on one pair would still bounce between cores.
#[repr(C, align(128))]
struct Shard<C = AtomicU64> {
    owner: C,
    own: Counters<C>,
    shared: Counters<C>,
}

/// Counts an event of this thread (tag `tag`, never 0) in `shard`: in its
/// own set when this thread owns the shard or claims it now, else in its
/// shared set. A stale owner read is either 0 (the claim then fails if
/// another thread took it) or another thread's tag: never this thread's
/// unless this thread claimed it, since tags are never reused.
#[inline]
fn count_in_shard<C: Count>(shard: &Shard<C>, tag: u64, free: bool, weight: u64) {
    let o = shard.owner.load(Ordering::Relaxed);
    if o == tag || (o == 0 && shard.owner.claim(tag)) {
        shard.own.count_owned(free, weight);
    } else {
        shard.shared.count(free, weight);
    }
}

/// A record's extra counter sets, one pair of cache lines each.
#[repr(C, align(128))]
struct Shards {
    /// Events of threads without a shard (see `Overflow`); first, as in
    /// `Overflow`.
    shared: Counters,
    shard: [Shard; SHARDS],
}

/// What a record past the shard budget gets instead of `Shards`: only the
/// set every other thread adds to atomically. `Record::shards` points to
/// one with its low bit set.
#[repr(C, align(64))]
struct Overflow {
    shared: Counters,
}

/// `Record::shards`, read: the shared set and the shards (none for an
/// `Overflow`), or `None` while null.
#[inline]
fn sets_of(p: *mut u8) -> Option<(&'static Counters, &'static [Shard])> {
    if p.is_null() {
        None
    } else if p as usize & 1 == 0 {
        // SAFETY: an untagged non-null `shards` points to a zeroed, never
        // freed `Shards` from the arena, published (release) after it was
        // made; zeroed memory is a valid `Shards` (atomics).
        let s = unsafe { &*p.cast::<Shards>() };
        Some((&s.shared, &s.shard))
    } else {
        // SAFETY: as above, for an `Overflow`, its address tagged with 1
        // (it is 64-aligned).
        let o = unsafe { &*p.wrapping_sub(1).cast::<Overflow>() };
        Some((&o.shared, &[]))
    }
}

pub(crate) struct Record {
    /// The stack's full hash (`stacks::finish`): records are found by it,
    /// so a sample at a known site needs no stack table lookup.
    stack_hash: u64,
    pub(crate) stack: StackId,
    pub(crate) labels: LabelSetId,
    pub(crate) size: u64,
    /// The tag of the thread that made the record, the one writer of
    /// `counts` (`NO_OWNER` if it had no tag).
    owner: u64,
    /// Null until a second thread counts on the record; then set once, to
    /// its `Shards`, or past the budget its `Overflow` (tagged: see
    /// `sets_of`).
    shards: AtomicPtr<u8>,
    /// Written by `owner` only, with plain stores.
    counts: Counters,
    /// `[allocs, frees, alloc_extra, free_extra]` at the last peak capture.
    peak: [AtomicU64; 4],
}

// Every record pays for its fields, and a peak capture reads them all.
const _: () = assert!(core::mem::size_of::<Record>() == 104);

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
/// The last thread tag handed out. 64 bits: a tag is never handed out
/// twice (a thread a nanosecond would take 584 years to wrap it), so no
/// two threads, living or not, ever share one.
static LAST_TAG: AtomicU64 = AtomicU64::new(0);
/// The owner of a record made by a thread without a tag: no thread's tag.
const NO_OWNER: u64 = u64::MAX;

thread_local! {
    /// This thread's tag, 0 until its first count.
    static TAG: Cell<u64> = const { Cell::new(0) };
}

/// This thread's tag (never 0 nor `NO_OWNER`), or 0 once its locals are
/// gone.
#[inline]
fn tag() -> u64 {
    TAG.try_with(|t| {
        let v = t.get();
        if v != 0 {
            return v;
        }
        let v = LAST_TAG.fetch_add(1, Ordering::Relaxed).wrapping_add(1);
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
            owner: match tag() {
                0 => NO_OWNER,
                t => t,
            },
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

/// Counts an event on `r`: in its own set, plainly, on its owner thread
/// while `r` has no shards. Once it has, the owner counts in its shard as
/// every other thread does: the record's lines are then only read (the
/// key, `owner`, `shards`), not written on every event by one thread while
/// the others read them.
#[inline]
fn count_event(r: &Record, free: bool, weight: u64) {
    let tag = tag();
    if tag == r.owner && r.shards.load(Ordering::Relaxed).is_null() {
        r.counts.count_owned(free, weight);
    } else {
        count_foreign(r, tag, free, weight);
    }
}

/// Counts an event of a thread that is not `r`'s owner, or of its owner
/// once `r` has shards: in its shard (see `count_in_shard`), or atomically
/// in the shared set when it has none (a thread without locals, a record
/// past the budget). The shards are published before anything is counted
/// in them, so a reader that finds `r.shards` null has nothing to read but
/// `r.counts` (see `read`). With the arena full (1 GiB of tables) the
/// event is dropped and counted as dropped, as a sample is then.
#[inline(never)]
fn count_foreign(r: &Record, tag: u64, free: bool, weight: u64) {
    let mut p = r.shards.load(Ordering::Acquire);
    if p.is_null() {
        p = shard_slow(r);
    }
    let Some((shared, shards)) = sets_of(p) else {
        note_dropped();
        return;
    };
    match shards.get(tag as usize % SHARDS) {
        Some(shard) if tag != 0 => count_in_shard(shard, tag, free, weight),
        _ => shared.count(free, weight),
    }
}

/// Gives `r` its shards if no other thread did (an `Overflow` past the
/// budget), and returns what `r.shards` is now: null if the arena is full.
#[cold]
#[inline(never)]
fn shard_slow(r: &Record) -> *mut u8 {
    let _g = SHARD_LOCK.lock();
    let mut p = r.shards.load(Ordering::Acquire);
    if p.is_null() {
        if SHARDED.load(Ordering::Relaxed) < MAX_SHARDED {
            p = arena::alloc_zeroed(core::mem::size_of::<Shards>(), 128);
            if !p.is_null() {
                SHARDED.fetch_add(1, Ordering::Relaxed);
            }
        } else {
            p = arena::alloc_zeroed(core::mem::size_of::<Overflow>(), 64);
            if !p.is_null() {
                p = p.wrapping_add(1);
            }
        }
        r.shards.store(p, Ordering::Release);
    }
    p
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
    count_event(r, false, weight);
}

/// Counts the free of a sample of `weight` on `r`.
#[inline]
pub(crate) fn count_free(r: &Record, weight: u64) {
    count_event(r, true, weight);
}

/// `r`'s counters, summed over its sets (see `sum`). A record with no
/// shards pointer has only its own set to read (`count_foreign` publishes
/// them before counting in them): a peak capture reads every record,
/// at rate 1 many thousands, so this is its whole cost per record.
#[inline]
fn read(r: &Record) -> [u64; 4] {
    let own = &r.counts;
    if r.shards.load(Ordering::Acquire).is_null() {
        // `sum` over the record's own set alone, as long as no shards
        // appear before the allocs are read.
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
        let (shared, shards) = sets_of(r.shards.load(Ordering::Acquire))
            .map_or((None, &[][..]), |(c, s)| (Some(c), s));
        core::iter::once(&r.counts)
            .chain(shared)
            .chain(shards.iter().flat_map(|s| [&s.own, &s.shared]))
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

    /// More threads than shards: some own their shard, the others add to
    /// its shared set, and the owner counts in the record's own set with
    /// plain stores; nothing is lost.
    #[test]
    fn threads_past_the_shards_share_and_lose_nothing() {
        let id = intern(0x7fff_0003, 0x7fff_0003, 80, 0).unwrap().0;
        let threads: Vec<_> = (0..3 * SHARDS)
            .map(|_| {
                std::thread::spawn(move || {
                    for _ in 0..2000 {
                        on_alloc(id, WEIGHT_ONE);
                        on_free(id, WEIGHT_ONE + 3);
                        on_alloc(id, WEIGHT_ONE + 3);
                    }
                })
            })
            .collect();
        for _ in 0..2000 {
            on_alloc(id, WEIGHT_ONE);
            on_free(id, WEIGHT_ONE);
        }
        for t in threads {
            t.join().unwrap();
        }
        let n = 3 * SHARDS as u64 * 2000;
        assert_eq!(
            counts_of(id),
            (
                2 * n + 2000,
                WEIGHT_ONE * (2 * n + 2000) + 3 * n,
                n + 2000,
                WEIGHT_ONE * (n + 2000) + 3 * n
            )
        );
        let r = get(id);
        assert_eq!(r.owner, tag());
        let (_, shards) = sets_of(r.shards.load(Ordering::Acquire)).unwrap();
        assert_eq!(shards.len(), SHARDS);
        assert!(shards.iter().all(|s| s.owner.load(Ordering::Relaxed) != 0));
        assert!(shards
            .iter()
            .any(|s| s.shared.allocs.load(Ordering::Relaxed) != 0));
    }
}

/// The `loom` model of single-writer sets and counter shards:
/// `RUSTFLAGS="--cfg memprof_loom" cargo test --release --lib loom`. The
/// record's owner (tag 1) counts an alloc in its own set with plain
/// stores (in its shard, claiming it, once shards are published) and
/// hands the block to a second thread (tag 2), which publishes the shards,
/// counts an alloc of its own in its shard (claiming it), frees the
/// owner's block there and frees its own block as a thread without locals
/// (tag 0: the shards' shared set). With the second thread without
/// locals throughout, the record gets the shared set alone instead (as
/// an `Overflow` past the budget), and the events of both but the owner's
/// plain one go to it. A
/// reader sums meanwhile, as `read` does (the own set alone while nothing
/// is published): it never sees more frees than allocs; at the end the
/// sums are exact. Two threads of one shard (tags 2 and 4) race to claim
/// it, likewise. Two models break the protocol and must fail: two threads
/// counting plainly in one set (as two owners would), and two threads
/// claiming one shard without the CAS.
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
        fn add_owned(&self, v: u64, order: Ordering) {
            self.store(
                LoomU64::load(self, Ordering::Relaxed).wrapping_add(v),
                order,
            );
        }
        fn claim(&self, tag: u64) -> bool {
            self.compare_exchange(0, tag, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
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

    fn shard() -> Shard<LoomU64> {
        Shard {
            owner: LoomU64::new(0),
            own: set(),
            shared: set(),
        }
    }

    const OWNER: u64 = 1;
    /// `Rec::published`: nothing, the shards (with the shared set), an
    /// `Overflow` (the shared set alone).
    const NULL: u64 = 0;
    const SHARDS_ON: u64 = 1;
    const OVERFLOW: u64 = 2;

    struct Rec {
        own: Counters<LoomU64>,
        shared: Counters<LoomU64>,
        shards: [Shard<LoomU64>; 2],
        /// `Record::shards`, as one of the three states.
        published: LoomU64,
        handed: AtomicBool,
    }

    impl Rec {
        fn new() -> Arc<Rec> {
            Arc::new(Rec {
                own: set(),
                shared: set(),
                shards: [shard(), shard()],
                published: LoomU64::new(NULL),
                handed: AtomicBool::new(false),
            })
        }

        /// `count_event`, `count_foreign` and `shard_slow` (its lock a
        /// CAS: the first to publish wins).
        fn count(&self, tag: u64, free: bool, weight: u64) {
            if tag == OWNER && self.published.load(Ordering::Relaxed) == NULL {
                return self.own.count_owned(free, weight);
            }
            let mut s = self.published.load(Ordering::Acquire);
            if s == NULL {
                // (The model gives a thread without locals the `Overflow`,
                // as the budget would.)
                let want = if tag == 0 { OVERFLOW } else { SHARDS_ON };
                s = match self.published.compare_exchange(
                    NULL,
                    want,
                    Ordering::AcqRel,
                    Ordering::Acquire,
                ) {
                    Ok(_) => want,
                    Err(now) => now,
                };
            }
            if s == OVERFLOW || tag == 0 {
                self.shared.count(free, weight);
            } else {
                count_in_shard(&self.shards[tag as usize % 2], tag, free, weight);
            }
        }

        /// `read`: the own set alone while nothing is published, else
        /// `read_sharded`.
        fn sum(&self) -> [u64; 4] {
            if self.published.load(Ordering::Acquire) == NULL {
                let frees = self.own.frees.load(Ordering::Acquire);
                let free_extra = self.own.free_extra.load(Ordering::Relaxed);
                if self.published.load(Ordering::Acquire) == NULL {
                    let allocs = self.own.allocs.load(Ordering::Acquire);
                    let alloc_extra = self.own.alloc_extra.load(Ordering::Relaxed);
                    return [allocs, frees, alloc_extra, free_extra];
                }
            }
            sum(|| {
                let n = if self.published.load(Ordering::Acquire) == SHARDS_ON {
                    2
                } else {
                    0
                };
                [&self.own, &self.shared]
                    .into_iter()
                    .chain(self.shards[..n].iter().flat_map(|s| [&s.own, &s.shared]))
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

    fn builder() -> loom::model::Builder {
        let mut b = loom::model::Builder::new();
        b.preemption_bound = Some(3);
        b
    }

    /// The owner and a second thread of tag `other` (0: without locals).
    fn owner_and_other(other: u64) {
        builder().check(move || {
            let r = Rec::new();
            let owner = {
                let r = r.clone();
                loom::thread::spawn(move || {
                    r.count(OWNER, false, W);
                    r.handed.store(true, Ordering::Release);
                })
            };
            let second = {
                let r = r.clone();
                loom::thread::spawn(move || {
                    r.count(other, false, WEIGHT_ONE);
                    while !r.handed.load(Ordering::Acquire) {
                        loom::thread::yield_now();
                    }
                    r.count(other, true, W);
                    r.count(0, true, WEIGHT_ONE);
                })
            };
            check(r.sum());
            owner.join().unwrap();
            second.join().unwrap();
            assert_eq!(r.sum(), [2, 2, W - WEIGHT_ONE, W - WEIGHT_ONE]);
        });
    }

    #[test]
    fn loom_owned_sets_and_shards_lose_nothing_and_never_show_a_free_before_its_alloc() {
        owner_and_other(2);
    }

    #[test]
    fn loom_a_record_with_the_shared_set_alone_loses_nothing() {
        owner_and_other(0);
    }

    /// Two threads of one shard (tags 2 and 4) race to claim it: one
    /// counts in its own set, the other in the shared one.
    #[test]
    fn loom_two_threads_of_one_shard_lose_nothing() {
        builder().check(|| {
            let r = Rec::new();
            let t = {
                let r = r.clone();
                loom::thread::spawn(move || {
                    r.count(2, false, W);
                    r.count(2, true, W);
                })
            };
            r.count(4, false, WEIGHT_ONE);
            check(r.sum());
            r.count(4, true, WEIGHT_ONE);
            t.join().unwrap();
            assert_eq!(r.sum(), [2, 2, W - WEIGHT_ONE, W - WEIGHT_ONE]);
        });
    }

    /// Two threads on one set with plain stores (two owners of one set):
    /// loom finds the lost count.
    #[test]
    #[should_panic(expected = "assertion `left == right` failed")]
    fn loom_two_plain_writers_of_one_set_lose_a_count() {
        builder().check(|| {
            let r = Rec::new();
            let t = {
                let r = r.clone();
                loom::thread::spawn(move || r.count(OWNER, false, WEIGHT_ONE))
            };
            r.count(OWNER, false, WEIGHT_ONE);
            t.join().unwrap();
            assert_eq!(r.sum()[0], 2);
        });
    }

    /// Two threads of one shard taking it without the CAS: loom finds the
    /// lost count.
    #[test]
    #[should_panic(expected = "assertion `left == right` failed")]
    fn loom_a_shard_claimed_without_the_cas_loses_a_count() {
        builder().check(|| {
            let r = Rec::new();
            let racy = |r: &Rec, tag: u64| {
                let s = &r.shards[0];
                let o = s.owner.load(Ordering::Relaxed);
                if o == tag || o == 0 {
                    s.owner.store(tag, Ordering::Relaxed);
                    s.own.count_owned(false, WEIGHT_ONE);
                } else {
                    s.shared.count(false, WEIGHT_ONE);
                }
            };
            let t = {
                let r = r.clone();
                loom::thread::spawn(move || racy(&r, 2))
            };
            racy(&r, 4);
            t.join().unwrap();
            r.published.store(SHARDS_ON, Ordering::Release);
            assert_eq!(r.sum()[0], 2);
        });
    }
}
