//! An append-only table of `T` with lock-free lookups: the shape shared by
//! the stack table and the record table.
//!
//! Thread safety: `get` and the lookup half of `intern` never lock and
//! never write. Adding an entry takes `lock`: the entry is written into its
//! chunk first and then published through the hash index (release store)
//! and `len`, so a reader that finds an id sees the whole entry.
//!
//! Invariants: ids are dense (`0..len`); an entry never moves or changes
//! after it is published (its own atomics aside); chunks come from the
//! profiler's arena and are never freed.

use super::arena;
use super::index::Index;
use super::lock::SpinLock;
use core::sync::atomic::{AtomicPtr, AtomicU32, Ordering};

/// Entries per chunk.
const CHUNK: usize = 4096;

pub(crate) struct Table<T, const CHUNKS: usize> {
    dir: [AtomicPtr<T>; CHUNKS],
    len: AtomicU32,
    index: Index,
    lock: SpinLock,
}

// SAFETY: entries are written once, under `lock`, before they are
// published, and only shared as `&T` afterwards; `T: Sync` makes sharing
// those references across threads sound.
unsafe impl<T: Sync, const CHUNKS: usize> Sync for Table<T, CHUNKS> {}

impl<T, const CHUNKS: usize> Table<T, CHUNKS> {
    /// At most this many entries.
    pub(crate) const CAPACITY: usize = CHUNK * CHUNKS;

    pub(crate) const fn new() -> Self {
        Table {
            dir: [const { AtomicPtr::new(core::ptr::null_mut()) }; CHUNKS],
            len: AtomicU32::new(0),
            index: Index::new(),
            lock: SpinLock::new(),
        }
    }

    /// The entry `id`, which `intern` returned.
    pub(crate) fn get(&self, id: u32) -> &T {
        let chunk = self.dir[id as usize / CHUNK].load(Ordering::Acquire);
        // SAFETY: `id` was published by `intern` after its chunk pointer
        // and entry were written; chunks are never freed.
        unsafe { &*chunk.add(id as usize % CHUNK) }
    }

    /// Number of entries so far.
    pub(crate) fn len(&self) -> usize {
        self.len.load(Ordering::Acquire) as usize
    }

    /// The id of the entry with hash `hash` for which `eq` holds, adding
    /// `make()` if there is none. `None` when the table, the arena or
    /// `make` gives out (the caller counts a dropped sample).
    pub(crate) fn intern(
        &self,
        hash: u32,
        eq: impl Fn(&T) -> bool,
        make: impl FnOnce() -> Option<T>,
    ) -> Option<u32> {
        let found = |id: u32| eq(self.get(id));
        if let Some(id) = self.index.lookup(hash, found) {
            return Some(id);
        }
        let _g = self.lock.lock();
        if let Some(id) = self.index.lookup(hash, found) {
            return Some(id);
        }
        let id = self.len.load(Ordering::Relaxed) as usize;
        if id >= Self::CAPACITY {
            return None;
        }
        let slot = &self.dir[id / CHUNK];
        if slot.load(Ordering::Relaxed).is_null() {
            let chunk = arena::alloc_zeroed(CHUNK * core::mem::size_of::<T>(), 64);
            if chunk.is_null() {
                return None;
            }
            slot.store(chunk.cast(), Ordering::Release);
        }
        let entry = make()?;
        // SAFETY: entry `id` of the chunk is ours (lock held, `id == len`)
        // and not yet visible to any reader; the chunk has room for it.
        unsafe { slot.load(Ordering::Relaxed).add(id % CHUNK).write(entry) };
        if !self.index.insert_locked(hash, id as u32) {
            return None;
        }
        self.len.store(id as u32 + 1, Ordering::Release);
        Some(id as u32)
    }

    pub(crate) fn lock_for_fork(&self) {
        self.lock.raw_lock();
    }

    pub(crate) fn unlock_after_fork(&self) {
        self.lock.raw_unlock();
    }
}
