//! A hash index from a 32-bit hash to a 32-bit id, with lock-free lookups.
//!
//! Thread safety: `lookup` may run on any thread at any time; `insert` must
//! be serialised by the caller's lock (the stack and record tables each own
//! one). Lookups never block and never write.
//!
//! Layout: open addressing, linear probing, one `AtomicU64` per slot holding
//! `hash << 32 | (id + 1)`; 0 is an empty slot. Entries are never removed.
//! The table doubles when half full: the new array is filled and then
//! published with a release store; the old one is left in the arena, so a
//! reader still probing it reads valid (if stale) memory. A stale reader may
//! miss a new entry, which is why callers look up again under their lock
//! before inserting.
//!
//! Invariant: `len * 2 <= cap` after every insert that found room, so every
//! probe sequence reaches an empty slot.

use super::arena;
use core::sync::atomic::{AtomicPtr, AtomicU64, AtomicUsize, Ordering};

const INITIAL_CAP: usize = 1024;

#[repr(C)]
struct Table {
    mask: usize,
    // followed by `mask + 1` AtomicU64 slots
}

impl Table {
    fn slots(&self) -> &[AtomicU64] {
        // SAFETY: `new_table` allocated `mask + 1` zeroed slots right after
        // the header, aligned for AtomicU64, and they live forever.
        unsafe {
            let first = (self as *const Table).add(1).cast::<AtomicU64>();
            core::slice::from_raw_parts(first, self.mask + 1)
        }
    }
}

fn new_table(cap: usize) -> *mut Table {
    let bytes = core::mem::size_of::<Table>() + cap * 8;
    let p = arena::alloc_zeroed(bytes, 64).cast::<Table>();
    if !p.is_null() {
        // SAFETY: `p` is fresh, zeroed, aligned arena memory of `bytes` bytes.
        unsafe { (*p).mask = cap - 1 };
    }
    p
}

pub(crate) struct Index {
    table: AtomicPtr<Table>,
    len: AtomicUsize,
}

impl Index {
    pub(crate) const fn new() -> Self {
        Index {
            table: AtomicPtr::new(core::ptr::null_mut()),
            len: AtomicUsize::new(0),
        }
    }

    /// Finds the id whose hash is `hash` and for which `eq(id)` holds.
    #[inline]
    pub(crate) fn lookup(&self, hash: u32, mut eq: impl FnMut(u32) -> bool) -> Option<u32> {
        let t = self.table.load(Ordering::Acquire);
        if t.is_null() {
            return None;
        }
        // SAFETY: published tables are never freed or moved.
        let slots = unsafe { (*t).slots() };
        let mask = slots.len() - 1;
        let mut i = hash as usize & mask;
        loop {
            let v = slots[i].load(Ordering::Acquire);
            if v == 0 {
                return None;
            }
            if (v >> 32) as u32 == hash {
                let id = (v as u32).wrapping_sub(1);
                if eq(id) {
                    return Some(id);
                }
            }
            i = (i + 1) & mask;
        }
    }

    /// Adds `hash -> id`. The caller holds the lock that serialises inserts
    /// and has checked that no equal entry exists. `false` when no memory was
    /// left to grow into.
    pub(crate) fn insert_locked(&self, hash: u32, id: u32) -> bool {
        debug_assert!(id < u32::MAX);
        let mut t = self.table.load(Ordering::Acquire);
        let len = self.len.load(Ordering::Relaxed);
        if t.is_null() || (len + 1) * 2 > cap_of(t) {
            let cap = if t.is_null() {
                INITIAL_CAP
            } else {
                cap_of(t) * 2
            };
            let grown = new_table(cap);
            if grown.is_null() {
                // Out of memory: keep using the old table while it has room.
                if t.is_null() || (len + 1) * 8 > cap_of(t) * 7 {
                    return false;
                }
            } else {
                if !t.is_null() {
                    // SAFETY: both tables are valid; only this (locked)
                    // thread writes to `grown` before it is published.
                    unsafe {
                        for s in (*t).slots() {
                            let v = s.load(Ordering::Relaxed);
                            if v != 0 {
                                put((*grown).slots(), v);
                            }
                        }
                    }
                }
                self.table.store(grown, Ordering::Release);
                t = grown;
            }
        }
        // SAFETY: `t` is a live table.
        put(
            unsafe { (*t).slots() },
            (u64::from(hash) << 32) | u64::from(id + 1),
        );
        self.len.store(len + 1, Ordering::Relaxed);
        true
    }
}

/// Slots of a published (non-null) table.
fn cap_of(t: *mut Table) -> usize {
    // SAFETY: callers pass a non-null table pointer loaded from `Index::table`;
    // published tables are never freed.
    unsafe { (*t).mask + 1 }
}

fn put(slots: &[AtomicU64], v: u64) {
    let mask = slots.len() - 1;
    let mut i = (v >> 32) as usize & mask;
    while slots[i].load(Ordering::Relaxed) != 0 {
        i = (i + 1) & mask;
    }
    slots[i].store(v, Ordering::Release);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_what_was_inserted_across_growth() {
        let idx = Index::new();
        for id in 0..10_000u32 {
            let h = id.wrapping_mul(2_654_435_761) % 977; // many collisions
            assert!(idx.lookup(h, |x| x == id).is_none());
            assert!(idx.insert_locked(h, id));
        }
        for id in 0..10_000u32 {
            let h = id.wrapping_mul(2_654_435_761) % 977;
            assert_eq!(idx.lookup(h, |x| x == id), Some(id));
        }
        assert_eq!(idx.lookup(5000, |_| false), None);
    }
}
