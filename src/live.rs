//! Sampled blocks: where they live, and how a free finds its record.
//!
//! A sampled block is served from the profiler's reserved region
//! (`sys::region`), so `dealloc` recognises it exactly with one range
//! compare, and its metadata (record id, sample weight) sits at an address
//! computed from the pointer: no hash table, no lock on the free path.
//! Unsampled blocks never touch any of this.
//!
//! Invariant: each live sampled block has exactly one `BlockMeta`, set
//! before the block is returned and read once, by the free that ends it.
//!
//! Re-entrancy: both directions run with the thread marked busy
//! (`guard::Busy`), and so does everything that takes a profiler lock. A
//! signal handler that interrupts them and allocates goes to the inner
//! allocator (the sample path sees the thread busy); if it frees a sampled
//! block, the free is deferred (`deferred`) and done by the next sampled
//! allocation or free outside the profiler. So a handler never waits for a
//! lock its own thread holds, and never sees a thread cache mid-update.

use crate::guard::{self, Busy};
use crate::labels;
use crate::peak;
use crate::records;
use crate::sampler::Sample;
use crate::scope;
use crate::stack::{self, Captured};
use crate::stacks;
use crate::sys::os;
use crate::sys::region;
use core::alloc::Layout;
use core::ptr;

/// Captures the stack, records one sample of `layout.size()` bytes with
/// `weight`, and serves the block from the region. Null when anything is
/// full (the sample is counted as dropped and the caller falls back to the
/// inner allocator) or the region is unavailable.
#[inline(never)]
pub(crate) fn alloc_sampled(layout: Layout, sample: Sample, zeroed: bool) -> *mut u8 {
    let _busy = Busy::enter();
    deferred::drain();
    let mut cap = Captured::new();
    stack::capture(&mut cap);
    let (size, labels) = (layout.size() as u64, labels::current());
    let h64 = stacks::finish(cap.hash, cap.len, cap.truncated);
    // The record's index slot is cold when sampled allocations are far
    // apart (the default rate): it loads while the region serves the block.
    records::prefetch(h64, size, labels);
    let Some(block) = region::alloc(layout.size(), layout.align()) else {
        records::note_dropped();
        return ptr::null_mut();
    };
    let Some((rec, record)) = record_of(&cap, h64, size, labels) else {
        // SAFETY: served just above, never marked live nor handed out.
        unsafe { region::unalloc(block.ptr) };
        records::note_dropped();
        return ptr::null_mut();
    };
    if zeroed && !block.zeroed {
        // SAFETY: the block has room for `layout.size()` bytes.
        unsafe { ptr::write_bytes(block.ptr, 0, layout.size()) };
    }
    block
        .meta
        .set(rec, sample.weight, sample.scope, os::coarse_nanos());
    records::count_alloc(record, sample.weight);
    peak::on_alloc(sample.weight, layout.size() as u64);
    if sample.scope != 0 {
        scope::on_alloc(sample.scope, record.stack, layout.size() as u64);
    }
    block.ptr
}

/// The record of a sample of `size` bytes at the captured stack (of full
/// hash `h64`), under `labels`, added if new. A site seen before is found by the
/// stack's full hash in one lookup of the record table; only a new one
/// looks up (or adds) its stack. `None` when a table is full.
#[inline(always)]
fn record_of(
    cap: &Captured,
    h64: u64,
    size: u64,
    labels: crate::labels::LabelSetId,
) -> Option<(records::RecordId, &'static records::Record)> {
    if let Some(found) = records::find(h64, size, labels) {
        return Some(found);
    }
    new_record(cap, h64, size, labels)
}

/// `record_of` for a site not seen before (or one being added by another
/// thread): out of line, so that the lookup does not pay for it.
#[cold]
#[inline(never)]
fn new_record(
    cap: &Captured,
    h64: u64,
    size: u64,
    labels: crate::labels::LabelSetId,
) -> Option<(records::RecordId, &'static records::Record)> {
    let stack = stacks::intern_hashed(cap.as_slice(), cap.truncated, h64)?;
    records::intern(stack, h64, size, labels)
}

/// Records the free of a sampled block and returns it to the region.
///
/// # Safety
/// `p` is a live block served by `alloc_sampled` (`region::contains(p)`).
#[inline(never)]
pub(crate) unsafe fn free_sampled(p: *mut u8) {
    if guard::is_busy() {
        // Inside the profiler on this thread: a signal handler, or the
        // profiler's own code freeing a block from before it was entered.
        deferred::push(p);
        return;
    }
    let _busy = Busy::enter();
    // SAFETY: the caller guarantees `p` is a live region block.
    unsafe { free_now(p) };
    deferred::drain();
}

/// The free itself; the thread is busy.
///
/// # Safety
/// As for `free_sampled`.
#[inline]
unsafe fn free_now(p: *mut u8) {
    // SAFETY: the caller guarantees `p` is a live region block; `meta_of`
    // aborts with a message if it is not (a double free).
    unsafe {
        let found = region::find(p);
        let meta = found.meta();
        let (weight, rec) = (meta.weight(), records::get(meta.record()));
        peak::on_free(weight, rec.size);
        records::count_free(rec, weight);
        charge_free(meta.scope(), rec);
        region::free_found(found);
    }
}

/// Deferred frees leaked for want of a slot (see `deferred`).
pub(crate) fn deferred_lost() -> u64 {
    deferred::LOST.load(core::sync::atomic::Ordering::Relaxed)
}

/// Frees of sampled blocks that arrived while their thread was inside the
/// profiler, kept until a thread outside it can do them.
///
/// A fixed array of slots taken and emptied by atomic swaps: no lock, no
/// allocation, safe in a signal handler. If all slots are taken the block
/// is leaked (counted in `lost`): memory, never a crash. The count of
/// pending frees is one shared word, read on each sampled alloc and free.
mod deferred {
    use core::ptr;
    use core::sync::atomic::{AtomicPtr, AtomicU64, AtomicUsize, Ordering};

    const SLOTS: usize = 256;
    static PENDING: [AtomicPtr<u8>; SLOTS] = [const { AtomicPtr::new(ptr::null_mut()) }; SLOTS];
    static COUNT: AtomicUsize = AtomicUsize::new(0);
    /// Blocks leaked because every slot was taken.
    pub(crate) static LOST: AtomicU64 = AtomicU64::new(0);

    pub(super) fn push(p: *mut u8) {
        for slot in &PENDING {
            if slot
                .compare_exchange(ptr::null_mut(), p, Ordering::Release, Ordering::Relaxed)
                .is_ok()
            {
                COUNT.fetch_add(1, Ordering::Release);
                return;
            }
        }
        LOST.fetch_add(1, Ordering::Relaxed);
    }

    /// Does the pending frees (the thread is busy, outside any lock).
    #[inline]
    pub(super) fn drain() {
        if COUNT.load(Ordering::Relaxed) != 0 {
            drain_slow();
        }
    }

    #[cold]
    fn drain_slow() {
        for slot in &PENDING {
            let p = slot.swap(ptr::null_mut(), Ordering::Acquire);
            if !p.is_null() {
                COUNT.fetch_sub(1, Ordering::Relaxed);
                // SAFETY: `p` was a live region block handed to `free_sampled`;
                // the swap gave it to us alone.
                unsafe { super::free_now(p) };
            }
        }
    }
}

/// Charges the free of a block to the scopes that own it (its scope and
/// that scope's active ancestors), and counts it as foreign in each active
/// scope of this thread's chain that does not own it. Inside a realloc in
/// a scope, `scope::realloc_done` accounts the realloc's own chain.
#[inline]
fn charge_free(owner: u32, rec: &records::Record) {
    if owner != 0 || scope::current() != 0 {
        scope::on_free(owner, rec.stack, rec.size);
    }
}

/// Re-records a sampled block in place: the old sample is freed and a new
/// one of `new_size` taken at the same address. `false` when `new_size`
/// does not belong at `p` or a table is full; nothing is changed then.
///
/// # Safety
/// As for `free_sampled`.
pub(crate) unsafe fn resample_in_place(
    p: *mut u8,
    align: usize,
    new_size: usize,
    sample: Sample,
) -> bool {
    // SAFETY: the caller guarantees `p` is a live region block.
    if !unsafe { region::fits_in_place(p, new_size, align) } {
        return false;
    }
    let _busy = Busy::enter();
    let mut cap = Captured::new();
    stack::capture(&mut cap);
    let h64 = stacks::finish(cap.hash, cap.len, cap.truncated);
    let Some((rec, record)) = record_of(&cap, h64, new_size as u64, labels::current()) else {
        return false;
    };
    // SAFETY: as above.
    let meta = unsafe { region::meta_of(p) };
    let (weight, old) = (meta.weight(), records::get(meta.record()));
    peak::on_free(weight, old.size);
    records::count_free(old, weight);
    charge_free(meta.scope(), old);
    meta.set(rec, sample.weight, sample.scope, os::coarse_nanos());
    records::count_alloc(record, sample.weight);
    peak::on_alloc(sample.weight, new_size as u64);
    if sample.scope != 0 {
        scope::on_alloc(sample.scope, record.stack, new_size as u64);
    }
    true
}
