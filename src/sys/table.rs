//! An append-only table of `T` with lock-free lookups: the shape shared by
//! the stack table and the record table.
//!
//! Thread safety: `get`, `find` and the lookup half of `intern` never lock
//! and never write. Adding an entry takes `lock`: the entry is written into
//! its chunk first and then published through the hash index (release store)
//! and `len`, so a reader that finds an id sees the whole entry.
//!
//! Memory order: a chunk's pointer is stored (release) before any entry in
//! it is written, and entry `id` is written before `id` goes into the index
//! (release store of its slot) and before `len` becomes `id + 1` (release).
//! A reader that learned `id` from the index (acquire) or from `len`
//! (acquire) therefore sees the chunk pointer and the whole entry. The index
//! publishes `id` before `len` covers it: a reader may find an id through
//! the index that is not yet below `len()`.
//!
//! Invariants: ids are dense (`0..len`); an entry never moves or changes
//! after it is published (its own atomics aside); chunks come from the
//! profiler's arena and are never freed.
//!
//! The logic is generic over its atomics and over where its chunks come
//! from (`Chunks`), so that a `loom` model (`cfg(memprof_loom)`, below)
//! checks the same code the allocator runs.

use super::arena;
use super::index::{Arena, Atomic, Index, Slots};
use super::lock::SpinLock;
use core::sync::atomic::{AtomicPtr, AtomicU32, Ordering};

/// The atomics a table is made of and where its chunks come from (its
/// index's, `Slots`, too).
pub(crate) trait Chunks: Slots {
    type Dir<T>: Atomic<*mut T>;
    type Count: Atomic<u32>;
    /// Entries per chunk.
    const CHUNK: usize;
    /// Memory for `CHUNK` entries that is never freed or moved, or null.
    fn new_chunk<T>() -> *mut T;
}

impl Chunks for Arena {
    type Dir<T> = AtomicPtr<T>;
    type Count = AtomicU32;
    const CHUNK: usize = 4096;

    fn new_chunk<T>() -> *mut T {
        arena::alloc_zeroed(Self::CHUNK * core::mem::size_of::<T>(), 64).cast()
    }
}

pub(crate) struct Table<T, const CHUNKS: usize, A: Chunks = Arena> {
    dir: [A::Dir<T>; CHUNKS],
    len: A::Count,
    index: Index<A>,
    lock: SpinLock,
}

// SAFETY: entries are written once, under `lock`, before they are
// published, and only shared as `&T` afterwards; `T: Sync` makes sharing
// those references across threads sound.
unsafe impl<T: Sync, const CHUNKS: usize, A: Chunks> Sync for Table<T, CHUNKS, A> {}

impl<T, const CHUNKS: usize> Table<T, CHUNKS> {
    pub(crate) const fn new() -> Self {
        Table {
            dir: [const { AtomicPtr::new(core::ptr::null_mut()) }; CHUNKS],
            len: AtomicU32::new(0),
            index: Index::new(),
            lock: SpinLock::new(),
        }
    }
}

impl<T, const CHUNKS: usize, A: Chunks> Table<T, CHUNKS, A> {
    /// At most this many entries.
    pub(crate) const CAPACITY: usize = A::CHUNK * CHUNKS;

    /// The entry `id`, which `intern` or `find` returned (or below `len()`).
    pub(crate) fn get(&self, id: u32) -> &T {
        let chunk = self.dir[id as usize / A::CHUNK].load(Ordering::Acquire);
        // SAFETY: `id` was published by `intern` after its chunk pointer
        // and entry were written; chunks are never freed.
        unsafe { &*chunk.add(id as usize % A::CHUNK) }
    }

    /// Calls `f` on entries `0..n` in order (`n` at most `len()` as read
    /// by the caller), a chunk at a time: one directory load per 4096
    /// entries instead of one per entry (a peak capture reads every
    /// record).
    #[inline]
    pub(crate) fn for_each_below(&self, n: usize, mut f: impl FnMut(&T)) {
        let mut start = 0;
        while start < n {
            let chunk = self.dir[start / A::CHUNK].load(Ordering::Acquire);
            let len = (n - start).min(A::CHUNK);
            // SAFETY: entries below `n <= len()` were published (acquire of
            // `len` or of this chunk's pointer) after their chunk and contents
            // were written; chunks hold `CHUNK` entries, never freed.
            let entries = unsafe { core::slice::from_raw_parts(chunk, len) };
            entries.iter().for_each(&mut f);
            start += len;
        }
    }

    /// Number of entries so far.
    pub(crate) fn len(&self) -> usize {
        self.len.load(Ordering::Acquire) as usize
    }

    /// The id of a published entry with hash `hash` for which `eq` holds:
    /// the lock-free half of `intern`. May miss an entry being added, and
    /// any entry while the index grows (its old array is retired, see
    /// `index.rs`); `intern` looks again under the lock.
    #[inline]
    pub(crate) fn find(&self, hash: u32, eq: impl Fn(&T) -> bool) -> Option<u32> {
        self.index.lookup(hash, |id| eq(self.get(id)))
    }

    /// Starts loading the index slot a lookup of `hash` starts at.
    #[inline]
    pub(crate) fn prefetch(&self, hash: u32) {
        self.index.prefetch(hash);
    }

    /// `find`, with the entry found.
    #[inline]
    pub(crate) fn find_entry(&self, hash: u32, eq: impl Fn(&T) -> bool) -> Option<(u32, &T)> {
        let mut found = None;
        let id = self.index.lookup(hash, |id| {
            let e = self.get(id);
            let hit = eq(e);
            if hit {
                found = Some(e);
            }
            hit
        })?;
        found.map(|e| (id, e))
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
        if let Some(id) = self.find(hash, &eq) {
            return Some(id);
        }
        let _g = self.lock.lock();
        if let Some(id) = self.find(hash, &eq) {
            return Some(id);
        }
        let id = self.len.load(Ordering::Relaxed) as usize;
        if id >= Self::CAPACITY {
            return None;
        }
        let slot = &self.dir[id / A::CHUNK];
        if slot.load(Ordering::Relaxed).is_null() {
            let chunk = A::new_chunk::<T>();
            if chunk.is_null() {
                return None;
            }
            slot.store(chunk, Ordering::Release);
        }
        let entry = make()?;
        // SAFETY: entry `id` of the chunk is ours (lock held, `id == len`)
        // and not yet visible to any reader; the chunk has room for it.
        unsafe { slot.load(Ordering::Relaxed).add(id % A::CHUNK).write(entry) };
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

/// The `loom` model:
/// `RUSTFLAGS="--cfg memprof_loom" cargo test --release --lib loom`.
///
/// The allocator's table with loom's atomics (the index's `Loom`, whose
/// initial capacity is 4), chunks from the heap (leaked, as the arena never
/// frees) and 2 entries a chunk instead of 4096 (the only difference: so
/// that the third entry needs a new chunk). One thread interns three
/// entries (the second goes into the published index array, the third
/// doubles it, retiring the first array, and publishes a chunk) while
/// another finds them (a find may miss, never find a wrong id) and reads
/// every entry below `len()`, by id and a chunk at a time
/// (`for_each_below`).
/// Each entry's payload is a loom `UnsafeCell` written by `make`, so loom
/// checks that every reader of an id sees its whole entry. The lock stays
/// the allocator's spin lock: only the interning thread takes it.
#[cfg(all(test, memprof_loom))]
mod loom_model {
    use super::super::index::loom_model::Loom;
    use super::*;
    use loom::cell::UnsafeCell;
    use loom::sync::atomic::{AtomicPtr, AtomicU32};
    use loom::sync::Arc;
    use std::alloc::{alloc, Layout};

    impl Chunks for Loom {
        type Dir<T> = AtomicPtr<T>;
        type Count = AtomicU32;
        const CHUNK: usize = 2;

        fn new_chunk<T>() -> *mut T {
            let layout = Layout::array::<T>(Self::CHUNK).unwrap();
            // SAFETY: the models' entries are not zero-sized.
            let p = unsafe { alloc(layout) }.cast::<T>();
            assert!(!p.is_null());
            p
        }
    }

    struct Entry {
        key: u32,
        payload: UnsafeCell<u64>,
    }

    // SAFETY: `payload` is written only by `make`, before the entry is
    // published, and read only by threads that learned the entry's id (what
    // loom checks).
    unsafe impl Sync for Entry {}

    type LoomTable = Table<Entry, 2, Loom>;

    fn new_table() -> LoomTable {
        Table {
            dir: [(); 2].map(|_| AtomicPtr::new(core::ptr::null_mut())),
            len: AtomicU32::new(0),
            index: Index::new_loom(),
            lock: SpinLock::new(),
        }
    }

    /// Keys 1 and 2 share a hash, so a search for 2 probes past 1.
    const HASH: [u32; 3] = [7, 3, 3];

    fn payload_of(key: u32) -> u64 {
        u64::from(key) * 1000 + 1
    }

    fn intern(t: &LoomTable, key: u32) -> Option<u32> {
        t.intern(
            HASH[key as usize],
            |e| e.key == key,
            || {
                let e = Entry {
                    key,
                    payload: UnsafeCell::new(0),
                };
                // SAFETY: `e` is ours alone until it is published.
                e.payload.with_mut(|p| unsafe { *p = payload_of(key) });
                Some(e)
            },
        )
    }

    /// Checks that entry `id` is whole and holds `key`.
    fn check(t: &LoomTable, id: u32, key: u32) {
        let e = t.get(id);
        assert_eq!(e.key, key);
        // SAFETY: the payload is only written before publication (loom
        // reports a read that does not happen after that write).
        assert_eq!(e.payload.with(|p| unsafe { *p }), payload_of(key));
    }

    #[test]
    fn loom_readers_see_whole_entries() {
        loom::model(|| {
            let t = Arc::new(new_table());
            assert_eq!(intern(&t, 0), Some(0)); // happens before the reader
            let reader = {
                let t = t.clone();
                loom::thread::spawn(move || {
                    // Key 0 was added before, but a find that loaded the
                    // index's first array may see it retired and miss.
                    for key in [0, 2, 1] {
                        if let Some(id) = t.find(HASH[key as usize], |e| e.key == key) {
                            assert_eq!(id, key);
                            check(&t, id, key);
                        }
                    }
                    // Ids are keys here (interned in key order).
                    for id in 0..t.len() as u32 {
                        check(&t, id, id);
                    }
                    // And a chunk at a time, as a peak capture reads.
                    let mut key = 0;
                    t.for_each_below(t.len(), |e| {
                        assert_eq!(e.key, key);
                        // SAFETY: as in `check`.
                        assert_eq!(e.payload.with(|p| unsafe { *p }), payload_of(key));
                        key += 1;
                    });
                })
            };
            for key in 1..3 {
                assert_eq!(intern(&t, key), Some(key));
            }
            reader.join().unwrap();
            assert_eq!(t.len(), 3);
            for key in 0..3 {
                assert_eq!(t.find(HASH[key as usize], |e| e.key == key), Some(key));
                assert_eq!(intern(&t, key), Some(key)); // found, not added
                check(&t, key, key);
            }
            assert_eq!(t.len(), 3);
        });
    }
}
