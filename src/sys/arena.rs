//! Bounded bump memory for the profiler's own tables.
//!
//! Memory comes from `mmap` in chunks, never from the profiled allocator, and
//! is never freed: the stack and record tables only grow, and a grown index
//! leaves its old array behind for readers that may still be probing it
//! (bounded: the old arrays of a doubling index sum to less than the new one).
//!
//! Invariant: `used <= LIMIT`. A request that would pass `LIMIT` gets null,
//! and the caller drops the sample and counts it.

use super::lock::SpinLock;
use super::os;
use core::cell::UnsafeCell;
use core::ptr;
use core::sync::atomic::{AtomicUsize, Ordering};

/// Upper bound on profiler table memory. Address space only: pages are
/// touched as the tables fill.
pub(crate) const LIMIT: usize = 1 << 30;
const CHUNK: usize = 1 << 20;

struct Bump {
    next: *mut u8,
    end: *mut u8,
}

struct Arena {
    lock: SpinLock,
    bump: UnsafeCell<Bump>,
    used: AtomicUsize,
}

// SAFETY: `bump` is only touched with `lock` held.
unsafe impl Sync for Arena {}

static ARENA: Arena = Arena {
    lock: SpinLock::new(),
    bump: UnsafeCell::new(Bump {
        next: ptr::null_mut(),
        end: ptr::null_mut(),
    }),
    used: AtomicUsize::new(0),
};

/// Zeroed memory of `size` bytes aligned to `align` (a power of two, at most
/// a page), or null when the arena is exhausted or the OS refuses.
pub(crate) fn alloc_zeroed(size: usize, align: usize) -> *mut u8 {
    debug_assert!(align.is_power_of_two() && align <= os::PAGE);
    let _g = ARENA.lock.lock();
    // SAFETY: we hold the lock that guards `bump`.
    let bump = unsafe { &mut *ARENA.bump.get() };
    let start = os::round_up(bump.next as usize, align);
    if bump.next.is_null() || start + size > bump.end as usize {
        let len = os::round_up(size.max(CHUNK), os::PAGE);
        if ARENA.used.load(Ordering::Relaxed) + len > LIMIT {
            return ptr::null_mut();
        }
        let Some(chunk) = os::map(len) else {
            return ptr::null_mut();
        };
        ARENA.used.fetch_add(len, Ordering::Relaxed);
        bump.next = chunk;
        // SAFETY: `chunk` maps `len` bytes.
        bump.end = unsafe { chunk.add(len) };
        return take(bump, chunk as usize, size);
    }
    take(bump, start, size)
}

fn take(bump: &mut Bump, start: usize, size: usize) -> *mut u8 {
    bump.next = (start + size) as *mut u8;
    start as *mut u8
}

/// Bytes of address space the arena has mapped so far.
pub(crate) fn mapped_bytes() -> usize {
    ARENA.used.load(Ordering::Relaxed)
}

pub(crate) fn lock_for_fork() {
    ARENA.lock.raw_lock();
}

pub(crate) fn unlock_after_fork() {
    ARENA.lock.raw_unlock();
}
