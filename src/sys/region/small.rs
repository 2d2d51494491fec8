//! Small slots: one zone per size class, each a bump-allocated array of
//! slots with its metadata array in front, committed as it grows, and a
//! shared lock-free free list (`freelist.rs`) linked through the metadata.
//!
//! Invariants (checked by `validate`):
//! - `committed <= nslots`, and `committed` only grows; the slots below it
//!   and their metadata are readable and writable;
//! - `bump` hands out each slot below `nslots` once, in runs (it may run
//!   past `nslots`: those `fetch_add`s handed out only the slots below);
//! - a slot below `min(bump, nslots)` is free on exactly one list (this
//!   class's shared list or one thread's cache) xor handed out; its
//!   `BlockMeta` holds the link while free and the record id while out.
//!   ("This class's shared list": any of its `HOMES` lists.)

use super::class::{class_size, div_by_size, NCLASSES};
use super::freelist::{self, Links};
use super::layout::{data_base, meta_at, nslots, zone_base, zone_len};
use super::meta::{BlockMeta, META};
use crate::sys::lock::SpinLock;
use crate::sys::os::{self, PAGE};
use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};

/// Slots are committed this many bytes at a time.
const COMMIT_BYTES: usize = 256 * 1024;

#[repr(align(128))]
pub(super) struct Class {
    /// Next never-used slot.
    bump: AtomicUsize,
    /// Slots below this are committed.
    committed: AtomicUsize,
    /// Free list heads (see `freelist.rs`), one per home (see `HOMES`),
    /// each on its own cache-line pair, away from `bump`.
    free: [Head; HOMES],
    lock: SpinLock,
    data_bytes: UnsafeCell<usize>,
    meta_bytes: UnsafeCell<usize>,
}

// SAFETY: the UnsafeCells are only touched with `lock` held.
unsafe impl Sync for Class {}

/// Shared free lists per class. A thread gives slots back to its home's
/// list and refills from it first, from the others only when it is empty
/// (before taking fresh slots, so no slot is stranded): with one list,
/// two threads trading half-caches took each other's slots, and their
/// blocks and metadata came to share cache lines that both then wrote on
/// every alloc and free (a simulation of the same-site churn: 1.1% of
/// slots handed out came from the other thread with one list, 0.26%
/// with a list per thread).
pub(super) const HOMES: usize = 4;

/// One free list head, alone on its cache-line pair.
#[repr(align(128))]
pub(super) struct Head(AtomicU64);

#[allow(clippy::declare_interior_mutable_const)]
const CLASS: Class = Class {
    bump: AtomicUsize::new(0),
    committed: AtomicUsize::new(0),
    free: [const { Head(AtomicU64::new(0)) }; HOMES],
    lock: SpinLock::new(),
    data_bytes: UnsafeCell::new(0),
    meta_bytes: UnsafeCell::new(0),
};

static CLASSES: [Class; NCLASSES] = [CLASS; NCLASSES];

/// The links of class `c`: a slot index is accepted only below the
/// committed count, read afresh at each check (it only grows; a count read
/// once before the head could be older than a slot the head names, which
/// looked like corruption), so a stale index read from the list never
/// leads outside committed metadata.
pub(super) struct ClassLinks {
    class: usize,
}

impl Links for ClassLinks {
    type L = AtomicU32;
    #[inline]
    fn link(&self, slot: usize) -> Option<&AtomicU32> {
        let committed = CLASSES[self.class].committed.load(Ordering::Acquire);
        (slot < committed).then(|| &meta_at(self.class, slot).record_or_link)
    }
}

pub(super) fn committed_links(c: usize) -> ClassLinks {
    ClassLinks { class: c }
}

/// The shared free list head of class `c` for `home` (modulo `HOMES`).
pub(super) fn shared_list(c: usize, home: usize) -> &'static AtomicU64 {
    &CLASSES[c].free[home % HOMES].0
}

pub(super) fn slot_ptr(c: usize, slot: usize) -> *mut u8 {
    (data_base(c) + slot * class_size(c)) as *mut u8
}

/// The slot of class `c` that starts at `p`, or `None` if `p` is not the
/// start of a committed slot (a pointer memprof never handed out).
pub(super) fn slot_at(c: usize, p: *mut u8) -> Option<usize> {
    let off = (p as usize).wrapping_sub(data_base(c));
    if off >= zone_len() {
        return None; // in the metadata part of the zone
    }
    let slot = div_by_size(c, off);
    let ok = slot < CLASSES[c].committed.load(Ordering::Acquire) && slot * class_size(c) == off;
    ok.then_some(slot)
}

/// A run of up to `n` never-used slots of class `c` (they read as zero):
/// `(first, count)`, or `None` when the zone is full or cannot be
/// committed. A run, not one slot: slots handed out one at a time to two
/// threads at once interleave, so their metadata (24 B a slot) and small
/// blocks share cache lines that both threads then write on every alloc
/// and free.
pub(super) fn fresh(c: usize, n: usize) -> Option<(usize, usize)> {
    let class = &CLASSES[c];
    let first = class.bump.fetch_add(n, Ordering::Relaxed);
    let total = nslots(c);
    if first >= total {
        return None;
    }
    let count = n.min(total - first);
    let last = first + count - 1;
    if last >= class.committed.load(Ordering::Acquire) && !commit(c, last) {
        // The run is lost to this zone (counted nowhere); the OS refused
        // memory, so the caller's fall back to the inner allocator is right.
        return None;
    }
    Some((first, count))
}

#[cold]
fn commit(c: usize, slot: usize) -> bool {
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

/// Committed bytes of every class (data and metadata).
pub(super) fn committed_bytes() -> usize {
    CLASSES
        .iter()
        .map(|class| {
            let _g = class.lock.lock();
            // SAFETY: we hold the class lock.
            unsafe { *class.data_bytes.get() + *class.meta_bytes.get() }
        })
        .sum()
}

pub(super) fn lock_all() {
    for class in &CLASSES {
        class.lock.raw_lock();
    }
}

pub(super) fn unlock_all() {
    for class in CLASSES.iter().rev() {
        class.lock.raw_unlock();
    }
}

/// Calls `f` with the metadata of every slot of class `c` that may be
/// live: those handed out and committed. Lock-free; the caller reads each
/// with `BlockMeta::read_live`.
pub(super) fn for_each_slot_meta(c: usize, mut f: impl FnMut(&BlockMeta)) {
    let n = used_slots(c).min(CLASSES[c].committed.load(Ordering::Acquire));
    for slot in 0..n {
        f(meta(c, slot));
    }
}

/// Slots ever handed out of class `c` (free or not).
pub(super) fn used_slots(c: usize) -> usize {
    CLASSES[c].bump.load(Ordering::Relaxed).min(nslots(c))
}

/// Checks the invariants of class `c` as far as one thread can see them,
/// counting its shared free list (which must hold distinct committed free
/// slots). Returns the shared list's length. For quiescent moments (tests,
/// the soak's end): it reads the list without taking it.
pub(super) fn validate(c: usize, seen: &mut [u64]) -> Result<usize, &'static str> {
    let class = &CLASSES[c];
    let committed = class.committed.load(Ordering::Acquire);
    if committed > nslots(c) {
        return Err("committed > nslots");
    }
    let links = committed_links(c);
    let mut n = 0;
    for head in &class.free {
        n += validate_list(c, &links, head.0.load(Ordering::Acquire) as u32, seen)?;
    }
    Ok(n)
}

/// Checks one shared list of class `c` from its head; returns its length.
fn validate_list(
    c: usize,
    links: &ClassLinks,
    mut next: u32,
    seen: &mut [u64],
) -> Result<usize, &'static str> {
    let mut n = 0;
    while next != 0 {
        let slot = (next - 1) as usize;
        let Some(link) = links.link(slot) else {
            return Err("shared free list links outside committed slots");
        };
        mark_seen(seen, slot)?;
        if meta_at(c, slot).is_live() {
            return Err("a live block is on the shared free list");
        }
        n += 1;
        next = link.load(Ordering::Relaxed);
    }
    Ok(n)
}

/// Marks `slot` in a bitmap of slots found on free lists; an error if it
/// was already there (a slot on two lists, or twice on one).
pub(super) fn mark_seen(seen: &mut [u64], slot: usize) -> Result<(), &'static str> {
    let Some(word) = seen.get_mut(slot / 64) else {
        return Err("free slot beyond the validator's bitmap");
    };
    let bit = 1u64 << (slot % 64);
    if *word & bit != 0 {
        return Err("a slot is on the free lists twice");
    }
    *word |= bit;
    Ok(())
}

/// The metadata of `slot` of class `c`, after the caller checked it.
pub(super) fn meta(c: usize, slot: usize) -> &'static BlockMeta {
    meta_at(c, slot)
}

/// Pushes a chain of class `c` onto its shared list of `home`.
pub(super) fn push_shared(c: usize, home: usize, first: usize, last: usize) {
    freelist::push_chain(shared_list(c, home), &committed_links(c), first, last);
}
