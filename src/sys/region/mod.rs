//! The reserved address range that serves every sampled block.
//!
//! Why: `dealloc` must tell "was this block sampled?" exactly, without a lock
//! or a shared write, on every free. Serving sampled blocks from one range
//! we reserved makes that a subtract and a compare (`contains`), with no
//! memory load beyond two read-mostly words (docs/design.md, "free-side
//! lookup", has the alternatives and their measured costs).
//!
//! The parts, each with its invariants at its top:
//!
//! | file | concept |
//! |---|---|
//! | `layout` | the range's bounds (64 KiB aligned), its zones, pointer arithmetic |
//! | `class` | small size classes (16 B .. 64 KiB) |
//! | `meta` | `BlockMeta`, the per-block facts, kept outside the block |
//! | `small` | a class's zone: bump, commit, its shared free list |
//! | `freelist` | the lock-free list of free slots, and why stale links are safe |
//! | `cache` | per-thread caches of free slots, bounded by bytes |
//! | `large` | page runs for blocks over 64 KiB |
//!
//! This file routes between them and catches misuse: a free of a pointer
//! inside the range that memprof did not hand out, or of one already freed,
//! aborts with a message (as glibc's "free(): double free detected" does)
//! instead of corrupting the lists. `validate` checks the invariants at a
//! quiescent moment (tests and the soak call it).
//!
//! Everything here runs inside the profiler (`Busy` set by the caller), so
//! a signal handler that allocates on the same thread never re-enters it.

mod cache;
mod class;
mod freelist;
mod large;
mod layout;
mod meta;
mod small;

pub(crate) use layout::{contains, holds};
pub(crate) use meta::BlockMeta;

use super::lock::SpinLock;
use super::os;
use class::{class_for, class_size, NCLASSES};
use core::sync::atomic::{AtomicU8, Ordering};

const UNINIT: u8 = 0;
const READY: u8 = 2;
const FAILED: u8 = 3;
static STATE: AtomicU8 = AtomicU8::new(UNINIT);
static INIT_LOCK: SpinLock = SpinLock::new();

/// Reserves the range on first use (other threads wait for it). `false` if
/// the OS refused every size we tried: profiling then stays off for
/// blocks, and each sample is counted as dropped.
#[inline]
pub(crate) fn ensure_init() -> bool {
    if STATE.load(Ordering::Acquire) == READY {
        return true;
    }
    init_slow()
}

#[cold]
#[inline(never)]
fn init_slow() -> bool {
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
    if large::init() && layout::reserve() {
        STATE.store(READY, Ordering::Release);
        return true;
    }
    STATE.store(FAILED, Ordering::Release);
    os::write_stderr(
        b"memprof: could not reserve address space for sampled blocks; heap profiling is off\n",
    );
    false
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
#[inline]
pub(crate) fn alloc(size: usize, align: usize) -> Option<Block> {
    if !ensure_init() {
        return None;
    }
    match class_for(size, align) {
        Some(c) => alloc_small(c),
        None => large::alloc(size, align).map(|(ptr, meta, zeroed)| Block { ptr, meta, zeroed }),
    }
}

/// A slot of class `c`: from this thread's cache when it has one (the
/// common case, inlined), else `alloc_small_slow`.
#[inline]
fn alloc_small(c: usize) -> Option<Block> {
    let links = small::committed_links(c);
    match cache::with(c, |cache| cache.pop(&links)) {
        Some(Ok(Some(slot))) => {
            return Some(Block {
                ptr: small::slot_ptr(c, slot),
                meta: small::meta(c, slot),
                zeroed: false,
            })
        }
        Some(Err(freelist::Corrupt)) => corrupt(c),
        Some(Ok(None)) | None => {}
    }
    alloc_small_slow(c)
}

/// This thread's cache of class `c` is empty (or its locals are gone):
/// a batch from the shared list, or a fresh slot.
#[cold]
#[inline(never)]
fn alloc_small_slow(c: usize) -> Option<Block> {
    let links = small::committed_links(c);
    let home = cache::home();
    // This thread's cache, else a batch from its home's shared list, else
    // from the other homes' (`small::HOMES`).
    let cached = cache::with(c, |cache| match cache.pop(&links) {
        Ok(None) => {
            for h in home..home + small::HOMES {
                match cache.refill(small::shared_list(c, h), &links, cache::cap(c)) {
                    Ok(None) => continue,
                    got => return got,
                }
            }
            Ok(None)
        }
        other => other.map(|slot| slot.map(|s| (s, true))),
    });
    let reused = match cached {
        Some(Ok(Some((slot, kept)))) => {
            if kept {
                cache::register();
            }
            Some(slot)
        }
        Some(Ok(None)) => None,
        Some(Err(freelist::Corrupt)) => corrupt(c),
        // No thread-locals any more: one slot straight from a shared list.
        None => (0..small::HOMES).find_map(|h| {
            match freelist::pop_chain(small::shared_list(c, h), &links, 1) {
                Ok(got) => got.map(|(slot, _, _)| slot),
                Err(freelist::Corrupt) => corrupt(c),
            }
        }),
    };
    if let Some(slot) = reused {
        return Some(Block {
            ptr: small::slot_ptr(c, slot),
            meta: small::meta(c, slot),
            zeroed: false,
        });
    }
    // Or take a run of fresh slots: one to return, the rest to this
    // thread's cache (one slot when its locals are gone).
    let want = cache::with(c, |_| cache::cap(c).div_ceil(2)).unwrap_or(1);
    let (slot, n) = small::fresh(c, want)?;
    if n > 1 {
        let links = small::committed_links(c);
        let shared = small::shared_list(c, home);
        let kept = cache::with(c, |cache| {
            (slot + 1..slot + n)
                .rev()
                .try_for_each(|s| cache.push(shared, &links, s, cache::cap(c)))
        });
        match kept {
            Some(Ok(())) => cache::register(),
            Some(Err(freelist::Corrupt)) => corrupt(c),
            None => (slot + 1..slot + n).for_each(|s| small::push_shared(c, home, s, s)),
        }
    }
    Some(Block {
        ptr: small::slot_ptr(c, slot),
        meta: small::meta(c, slot),
        zeroed: true,
    })
}

#[cold]
fn corrupt(c: usize) -> ! {
    os::abort_with(&[
        b"memprof: the free list of size class ",
        &os::hex(class_size(c)),
        b" is corrupt (a memprof bug: please report it)",
    ])
}

/// Where a region pointer belongs.
#[derive(Clone, Copy)]
enum Place {
    Small(usize, usize),
    Large(&'static large::Header),
}

/// Finds the block at `p`, aborting with a clear message if `p` is not a
/// live block memprof handed out (inside the range, so no other allocator
/// could have served it).
#[inline(always)]
fn place(p: *mut u8) -> Place {
    let z = layout::zone_of(p);
    if z < NCLASSES {
        let Some(slot) = small::slot_at(z, p) else {
            misuse(b"free(): invalid pointer ", p);
        };
        if !small::meta(z, slot).is_live() {
            misuse(b"free(): double free detected: ", p);
        }
        return Place::Small(z, slot);
    }
    match large::header(p) {
        Ok(h) if h.meta.is_live() => Place::Large(h),
        Ok(_) | Err(true) => misuse(b"free(): double free detected: ", p),
        Err(false) => misuse(b"free(): invalid pointer ", p),
    }
}

#[cold]
fn misuse(what: &[u8], p: *mut u8) -> ! {
    os::abort_with(&[
        b"memprof: ",
        what,
        &os::hex(p as usize),
        b" (a block of memprof's sampled-block region; see docs/design.md, \"Misuse\")",
    ])
}

/// A live block of the region, found by `find`: its metadata, and where
/// `free_found` returns it, looked up once for both.
pub(crate) struct Found(Place);

impl Found {
    /// The block's metadata.
    #[inline]
    pub(crate) fn meta(&self) -> &'static BlockMeta {
        match self.0 {
            Place::Small(c, slot) => small::meta(c, slot),
            Place::Large(h) => &h.meta,
        }
    }
}

/// The live block at `p`. Aborts the process, with a message, if `p` is
/// not one (a double free, or a pointer memprof never gave out).
///
/// # Safety
/// `contains(p)`.
#[inline]
pub(crate) unsafe fn find(p: *mut u8) -> Found {
    Found(place(p))
}

/// Metadata of the live block at `p` (aborting on misuse, as `find`).
///
/// # Safety
/// `contains(p)`.
pub(crate) unsafe fn meta_of(p: *mut u8) -> &'static BlockMeta {
    // SAFETY: forwarded contract.
    unsafe { find(p) }.meta()
}

/// Bytes usable at `p` without moving it, if `new_size` at `align` belongs
/// in the same place (same small class; or a large run it fits without
/// wasting more than half).
///
/// # Safety
/// As for `meta_of`.
pub(crate) unsafe fn fits_in_place(p: *mut u8, new_size: usize, align: usize) -> bool {
    match place(p) {
        Place::Small(c, _) => class_for(new_size, align) == Some(c),
        Place::Large(h) => {
            let avail = large::room(h, p);
            class_for(new_size, align).is_none()
                && new_size <= avail
                && new_size * 2 > avail
                && (p as usize).is_multiple_of(align)
        }
    }
}

/// Returns a block to the region (aborting on misuse, as `meta_of`).
///
/// # Safety
/// `contains(p)`; `p` is not used after this.
#[cfg(test)]
pub(crate) unsafe fn free(p: *mut u8) {
    // SAFETY: forwarded contract.
    unsafe { free_found(find(p)) }
}

/// Returns the block `find` found to the region.
///
/// # Safety
/// The block is still live (no other free of it since `find`), and its
/// pointer is not used after this.
#[inline]
pub(crate) unsafe fn free_found(found: Found) {
    match found.0 {
        Place::Large(h) => {
            h.meta.mark_free();
            large::free(h);
            debug_validate();
        }
        Place::Small(c, slot) => {
            let meta = small::meta(c, slot);
            meta.mark_free();
            if !cache::push_local(c, slot, meta) {
                free_small_slow(c, slot);
            }
        }
    }
}

/// Returns a block `alloc` just served, never marked live (`meta.set`) nor
/// handed out: its sample could not be recorded.
///
/// # Safety
/// `p` is such a block, and not used after this.
pub(crate) unsafe fn unalloc(p: *mut u8) {
    let z = layout::zone_of(p);
    let place = if z < NCLASSES {
        match small::slot_at(z, p) {
            Some(slot) => Place::Small(z, slot),
            None => misuse(b"unalloc: invalid pointer ", p),
        }
    } else {
        match large::header(p) {
            Ok(h) => Place::Large(h),
            Err(_) => misuse(b"unalloc: invalid pointer ", p),
        }
    };
    // SAFETY: the block is live in the region's books (served, not freed)
    // and the caller no longer uses it.
    unsafe { free_found(Found(place)) }
}

/// `free_found` of a small slot when this thread's cache is full (it gives
/// half back) or its locals are gone.
#[cold]
#[inline(never)]
fn free_small_slow(c: usize, slot: usize) {
    let links = small::committed_links(c);
    let home = cache::home();
    let shared = small::shared_list(c, home);
    let cap = cache::cap(c);
    match cache::with(c, |cache| cache.push(shared, &links, slot, cap)) {
        Some(Ok(())) => cache::register(),
        Some(Err(freelist::Corrupt)) => corrupt(c),
        None => small::push_shared(c, home, slot, slot),
    }
}

/// Debug builds check the large runs every 64 large frees and the whole
/// region at every thread exit (the tests and the soak run debug too).
#[cfg(debug_assertions)]
fn debug_validate() {
    static N: core::sync::atomic::AtomicUsize = core::sync::atomic::AtomicUsize::new(0);
    if N.fetch_add(1, Ordering::Relaxed).is_multiple_of(64) {
        if let Err(e) = large::validate() {
            os::abort_with(&[b"memprof: region invariant broken: ", e.as_bytes()]);
        }
    }
}

#[cfg(not(debug_assertions))]
fn debug_validate() {}

/// Gives an exiting thread's cache of class `c` back (`cache.rs`).
fn flush_cache(c: usize, cache: &cache::Cache) {
    let links = small::committed_links(c);
    #[cfg(debug_assertions)]
    if cache.len() > 0 {
        let words = small::used_slots(c).div_ceil(64) + 1;
        let bytes = os::round_up(words * 8, os::PAGE);
        let checked = match os::map(bytes) {
            Some(map) => {
                // SAFETY: `map` is a fresh zeroed mapping of `words` words.
                let seen = unsafe { core::slice::from_raw_parts_mut(map.cast::<u64>(), words) };
                let checked = cache::validate(cache, &links, c, seen);
                // SAFETY: the bitmap is ours and no longer used.
                unsafe { os::release(map, bytes) };
                checked
            }
            None => Ok(0),
        };
        if let Err(e) = checked {
            os::abort_with(&[b"memprof: thread cache invariant broken: ", e.as_bytes()]);
        }
    }
    if cache
        .flush(small::shared_list(c, cache::home()), &links)
        .is_err()
    {
        corrupt(c);
    }
}

/// Calls `f(record, weight, born)` for every block live in the region
/// (small slots without a lock, large runs under their lock). The walk
/// races allocations and frees: a block freed or handed out meanwhile may
/// be seen or not, and its three values may mix two successive samples of
/// one slot, so the caller validates the record id. Never reads user data.
pub(crate) fn for_each_live(mut f: impl FnMut(u32, u64, u64)) {
    if STATE.load(Ordering::Acquire) != READY {
        return;
    }
    let mut each = |m: &BlockMeta| {
        if let Some((record, weight, born)) = m.read_live() {
            f(record, weight, born);
        }
    };
    for c in 0..NCLASSES {
        small::for_each_slot_meta(c, &mut each);
    }
    large::for_each_live(&mut each);
}

/// Address space reserved and bytes currently committed, for reports.
pub(crate) fn footprint() -> (usize, usize) {
    (
        layout::len(),
        small::committed_bytes() + large::committed_bytes(),
    )
}

/// Takes every region lock (before `fork`); see `crate::fork`.
pub(crate) fn lock_for_fork() {
    INIT_LOCK.raw_lock();
    small::lock_all();
    large::lock();
}

/// Releases what `lock_for_fork` took (after `fork`, in parent and child).
pub(crate) fn unlock_after_fork() {
    large::unlock();
    small::unlock_all();
    INIT_LOCK.raw_unlock();
}

/// What `validate` counted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Usage {
    /// Small slots ever handed out (free or live).
    pub(crate) small_slots: usize,
    /// Of those, free: on the shared lists or in this thread's caches.
    pub(crate) small_free: usize,
}

/// Checks the region's invariants (every file's list) as far as this
/// thread can see them: free lists hold distinct committed free slots,
/// caches are within their bounds, large runs are consistent. Meant for
/// quiescent moments (no other thread allocating); slots in other live
/// threads' caches are not counted in `small_free`.
pub(crate) fn validate() -> Result<Usage, &'static str> {
    if STATE.load(Ordering::Acquire) != READY {
        return Ok(Usage::default());
    }
    let mut usage = Usage::default();
    for c in 0..NCLASSES {
        let used = small::used_slots(c);
        let words = used.div_ceil(64).max(1);
        let bytes = os::round_up(words * 8, os::PAGE);
        let Some(map) = os::map(bytes) else {
            return Err("validate: no memory for the bitmap");
        };
        // SAFETY: `map` is a fresh zeroed mapping of `bytes` bytes.
        let seen = unsafe { core::slice::from_raw_parts_mut(map.cast::<u64>(), words) };
        let result = small::validate(c, seen).and_then(|shared| {
            let links = small::committed_links(c);
            let mine =
                cache::with(c, |cache| cache::validate(cache, &links, c, seen)).unwrap_or(Ok(0))?;
            Ok(shared + mine)
        });
        // SAFETY: the bitmap is ours and no longer used.
        unsafe { os::release(map, bytes) };
        let free = result?;
        if free > used {
            return Err("more free slots than slots handed out");
        }
        usage.small_slots += used;
        usage.small_free += free;
    }
    large::validate()?;
    Ok(usage)
}

#[cfg(test)]
mod tests;
