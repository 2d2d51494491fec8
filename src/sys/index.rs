//! A hash index from a 32-bit hash to a 32-bit id, with lock-free lookups.
//!
//! Thread safety: `lookup` may run on any thread at any time; `insert` must
//! be serialised by the caller's lock (the stack and record tables each own
//! one). Lookups never block and never write.
//!
//! Layout: open addressing, linear probing, one `AtomicU64` per slot holding
//! `hash << 32 | (id + 1)`; 0 is an empty slot. Entries are never removed.
//! The table doubles when half full: the new array is filled and then
//! published with a release store; the old one stays mapped in the arena,
//! so a reader still probing it reads valid (if stale) memory, but its
//! whole pages are given back to the OS (`Slots::retire`, `MADV_DONTNEED`):
//! they read as zero afterwards, i.e. as empty slots. (Old arrays were half
//! of the index's resident memory: at rate 1 on syn's parser, 4 of 8 MiB
//! for each of the stack and record tables.) A stale reader may therefore
//! miss any entry, not only a new one, while the index grows; that is why
//! callers look up again under their lock before inserting.
//!
//! Memory order: every slot is written with a release store and read with
//! an acquire load, so a reader that finds an id sees everything its
//! inserter did before `insert_locked` (the caller's entry). A grown array
//! is published with a release store of `table` after its header and its
//! copied slots are written, and read with an acquire load.
//!
//! Invariant: `len * 2 <= cap` after every insert that found room, so every
//! probe sequence reaches an empty slot.
//!
//! The logic is generic over its atomics and over where its arrays come
//! from (`Slots`), so that a `loom` model (`cfg(memprof_loom)`, below)
//! checks the same code the allocator runs.

use super::arena;
use super::os;
use core::sync::atomic::{AtomicPtr, AtomicU32, AtomicU64, AtomicUsize, Ordering};

/// An atomic word holding a `T`: a core atomic in the allocator, loom's in
/// the model.
pub(crate) trait Atomic<T> {
    fn load(&self, order: Ordering) -> T;
    fn store(&self, v: T, order: Ordering);
}

macro_rules! atomic_impls {
    ($ptr:ident, $($atomic:ty => $t:ty),*) => {
        $(
            impl Atomic<$t> for $atomic {
                #[inline]
                fn load(&self, order: Ordering) -> $t {
                    <$atomic>::load(self, order)
                }
                #[inline]
                fn store(&self, v: $t, order: Ordering) {
                    <$atomic>::store(self, v, order)
                }
            }
        )*
        impl<X> Atomic<*mut X> for $ptr<X> {
            #[inline]
            fn load(&self, order: Ordering) -> *mut X {
                $ptr::<X>::load(self, order)
            }
            #[inline]
            fn store(&self, v: *mut X, order: Ordering) {
                $ptr::<X>::store(self, v, order)
            }
        }
    };
}
atomic_impls!(AtomicPtr, AtomicU64 => u64, AtomicU32 => u32, AtomicUsize => usize);
#[cfg(memprof_loom)]
mod loom_atomics {
    use super::Atomic;
    use core::sync::atomic::Ordering;
    use loom::sync::atomic::{AtomicPtr, AtomicU32, AtomicU64, AtomicUsize};
    atomic_impls!(AtomicPtr, AtomicU64 => u64, AtomicU32 => u32, AtomicUsize => usize);
}

/// A word written before its array is published and only read after: a
/// plain `usize` in the allocator; in the model loom's `UnsafeCell`, so
/// loom checks that every read happens after the write.
pub(crate) trait Fixed {
    fn get(&self) -> usize;
}

impl Fixed for usize {
    #[inline]
    fn get(&self) -> usize {
        *self
    }
}

/// A slot array: its header, followed by `mask + 1` slots.
#[repr(C)]
pub(crate) struct Array<M, S> {
    mask: M,
    slots: [S; 0],
}

/// The atomics an index is made of and where its arrays come from.
pub(crate) trait Slots {
    type Mask: Fixed;
    type Slot: Atomic<u64>;
    type Table: Atomic<*mut Array<Self::Mask, Self::Slot>>;
    type Len: Atomic<usize>;
    /// Slots of the first array (a power of two).
    const INITIAL_CAP: usize;
    /// A new array of `cap` (a power of two) empty slots that is never
    /// freed or moved, or null when there is no memory for it.
    fn new_array(cap: usize) -> *mut Array<Self::Mask, Self::Slot>;
    /// Called on an array once a grown copy replaced it: its slots may be
    /// emptied (all or some), never its header; readers that loaded it
    /// before may still probe it.
    fn retire(t: *mut Array<Self::Mask, Self::Slot>);
}

/// The allocator's index: core atomics, arrays from the profiler's arena.
pub(crate) struct Arena;

impl Slots for Arena {
    type Mask = usize;
    type Slot = AtomicU64;
    type Table = AtomicPtr<Array<usize, AtomicU64>>;
    type Len = AtomicUsize;
    const INITIAL_CAP: usize = 1024;

    fn new_array(cap: usize) -> *mut Array<usize, AtomicU64> {
        let bytes = core::mem::size_of::<Array<usize, AtomicU64>>() + cap * 8;
        let p = arena::alloc_zeroed(bytes, 64).cast::<Array<usize, AtomicU64>>();
        if !p.is_null() {
            // SAFETY: `p` is fresh, zeroed, aligned arena memory of `bytes`
            // bytes; zeroed `AtomicU64`s are empty slots.
            unsafe { (*p).mask = cap - 1 };
        }
        p
    }

    fn retire(t: *mut Array<usize, AtomicU64>) {
        // SAFETY: `t` is a published array (header written, never freed).
        let slots = unsafe { slots(t) };
        let start = os::round_up(slots.as_ptr() as usize, os::PAGE);
        let end = (slots.as_ptr() as usize + slots.len() * 8) & !(os::PAGE - 1);
        if end > start {
            // Whole pages of `t`'s slots only (its header and the arena's
            // neighbours lie outside); a reader still probing reads zeros.
            // SAFETY: nothing writes these slots any more; zero = empty, a miss.
            unsafe { os::discard(start as *mut u8, end - start) };
        }
    }
}

/// The slots of `t`.
///
/// # Safety
///
/// `t` is a non-null array from `Slots::new_array`, whose header was
/// written before this thread obtained `t` (arrays live forever).
unsafe fn slots<'a, M: Fixed, S>(t: *const Array<M, S>) -> &'a [S] {
    // SAFETY: `new_array` allocated `mask + 1` initialised slots right
    // after the header, aligned for `S`, and they live forever.
    unsafe {
        let first = core::ptr::addr_of!((*t).slots).cast::<S>();
        core::slice::from_raw_parts(first, (*t).mask.get() + 1)
    }
}

pub(crate) struct Index<S: Slots = Arena> {
    table: S::Table,
    len: S::Len,
}

impl Index {
    pub(crate) const fn new() -> Self {
        Index {
            table: AtomicPtr::new(core::ptr::null_mut()),
            len: AtomicUsize::new(0),
        }
    }
}

impl<S: Slots> Index<S> {
    /// Finds the id whose hash is `hash` and for which `eq(id)` holds.
    #[inline]
    pub(crate) fn lookup(&self, hash: u32, mut eq: impl FnMut(u32) -> bool) -> Option<u32> {
        let t = self.table.load(Ordering::Acquire);
        if t.is_null() {
            return None;
        }
        // SAFETY: published arrays are never freed or moved, and the acquire
        // load pairs with the release store that published `t`.
        let slots = unsafe { slots(t) };
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

    /// Starts loading the slot where a lookup of `hash` starts, for one a
    /// little later: a hint, which neither reads nor writes the slot.
    #[inline]
    pub(crate) fn prefetch(&self, hash: u32) {
        let t = self.table.load(Ordering::Acquire);
        if t.is_null() {
            return;
        }
        // SAFETY: as in `lookup`.
        let slots = unsafe { slots(t) };
        os::prefetch(&slots[hash as usize & (slots.len() - 1)]);
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
                S::INITIAL_CAP
            } else {
                cap_of(t) * 2
            };
            let grown = S::new_array(cap);
            if grown.is_null() {
                // Out of memory: keep using the old table while it has room.
                if t.is_null() || (len + 1) * 8 > cap_of(t) * 7 {
                    return false;
                }
            } else {
                if !t.is_null() {
                    // SAFETY: both arrays are valid; only this (locked)
                    // thread writes to `grown` before it is published.
                    unsafe {
                        for s in slots(t) {
                            let v = s.load(Ordering::Relaxed);
                            if v != 0 {
                                put(slots(grown), v);
                            }
                        }
                    }
                }
                self.table.store(grown, Ordering::Release);
                if !t.is_null() {
                    S::retire(t);
                }
                t = grown;
            }
        }
        // SAFETY: `t` is a live array.
        put(
            unsafe { slots(t) },
            (u64::from(hash) << 32) | u64::from(id + 1),
        );
        self.len.store(len + 1, Ordering::Relaxed);
        true
    }
}

/// Slots of a published (non-null) array.
fn cap_of<M: Fixed, S>(t: *mut Array<M, S>) -> usize {
    // SAFETY: callers pass a non-null array pointer loaded from
    // `Index::table` under the insert lock; published arrays are never freed.
    unsafe { (*t).mask.get() + 1 }
}

fn put<S: Atomic<u64>>(slots: &[S], v: u64) {
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

    /// A grown index gives its old array's whole pages back (they read as
    /// empty slots) and still finds every id through the new one.
    #[test]
    fn growth_retires_the_old_array() {
        let idx = Index::new();
        assert!(idx.insert_locked(1, 0));
        let first = idx.table.load(Ordering::Acquire);
        let mut id = 1;
        while idx.table.load(Ordering::Acquire) == first {
            assert!(idx.insert_locked(id * 7 + 1, id));
            id += 1;
        }
        // SAFETY: `first` was published and is never freed.
        let old = unsafe { slots(first) };
        assert_eq!(old.len(), Arena::INITIAL_CAP);
        // 8 KiB of slots hold at least one whole page, which reads empty.
        let whole = old
            .iter()
            .filter(|s| {
                let a = *s as *const AtomicU64 as usize;
                a >= os::round_up(old.as_ptr() as usize, os::PAGE)
                    && a + 8 <= (old.as_ptr() as usize + old.len() * 8) & !(os::PAGE - 1)
            })
            .collect::<Vec<_>>();
        assert!(whole.len() >= os::PAGE / 8);
        assert!(whole.iter().all(|s| s.load(Ordering::Relaxed) == 0));
        for i in 0..id {
            let h = if i == 0 { 1 } else { i * 7 + 1 };
            assert_eq!(idx.lookup(h, |x| x == i), Some(i));
        }
    }

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

/// The `loom` model:
/// `RUSTFLAGS="--cfg memprof_loom" cargo test --release --lib loom`.
///
/// `Loom` is the allocator's index with loom's atomics, its arrays taken
/// from the heap (and leaked, as the arena never frees) and an initial
/// capacity of 4 instead of 1024 (the only difference: so that of the
/// inserts after the first, one goes into the published array and the
/// next doubles it, 4 -> 8), and `retire` empties the old array's slots
/// with atomic stores where the allocator's gives its pages back (they
/// read as zero after). Each id's entry is a loom
/// `UnsafeCell` written before the id is inserted and read by the reader's
/// `eq`, so loom checks that a reader that finds an id sees its entry; the
/// arrays' masks are loom cells too, so loom checks that a reader sees the
/// header of the array it loaded.
#[cfg(all(test, memprof_loom))]
pub(crate) mod loom_model {
    use super::*;
    use loom::cell::UnsafeCell;
    use loom::sync::atomic::{AtomicPtr, AtomicU64, AtomicUsize};
    use loom::sync::Arc;
    use std::alloc::{alloc, Layout};

    /// Loom atomics, arrays from the heap.
    pub(crate) struct Loom;

    type LoomArray = Array<UnsafeCell<usize>, AtomicU64>;

    impl Fixed for UnsafeCell<usize> {
        fn get(&self) -> usize {
            // SAFETY: the mask is only written when its cell is created.
            self.with(|p| unsafe { *p })
        }
    }

    impl Slots for Loom {
        type Mask = UnsafeCell<usize>;
        type Slot = AtomicU64;
        type Table = AtomicPtr<LoomArray>;
        type Len = AtomicUsize;
        const INITIAL_CAP: usize = 4;

        fn new_array(cap: usize) -> *mut LoomArray {
            let slots = Layout::array::<AtomicU64>(cap).unwrap();
            let (layout, offset) = Layout::new::<LoomArray>().extend(slots).unwrap();
            // SAFETY: `layout` has a non-zero size (the header).
            let p = unsafe { alloc(layout) }.cast::<LoomArray>();
            assert!(!p.is_null());
            // SAFETY: `p` is fresh memory for the header and `cap` slots,
            // which start right after the header (checked).
            unsafe {
                core::ptr::addr_of_mut!((*p).mask).write(UnsafeCell::new(cap - 1));
                let first = core::ptr::addr_of_mut!((*p).slots).cast::<AtomicU64>();
                assert_eq!(first as usize - p as usize, offset);
                for i in 0..cap {
                    first.add(i).write(AtomicU64::new(0));
                }
            }
            p
        }

        /// Empties every slot (relaxed stores), as `MADV_DONTNEED` may
        /// under a reader still probing the old array: loom then checks
        /// that such a reader only ever misses, never finds a wrong id.
        fn retire(t: *mut LoomArray) {
            // SAFETY: `t` is a published array, never freed.
            for s in unsafe { slots(t) } {
                s.store(0, Ordering::Relaxed);
            }
        }
    }

    impl Index<Loom> {
        pub(crate) fn new_loom() -> Self {
            Index {
                table: AtomicPtr::new(core::ptr::null_mut()),
                len: AtomicUsize::new(0),
            }
        }
    }

    /// Ids 0 and 1 share a hash, so a lookup of 1 probes past 0 (`eq` false).
    const HASH: [u32; 3] = [5, 5, 6];

    struct Shared {
        index: Index<Loom>,
        /// Entry `id` holds key `id + 100` once it is inserted.
        keys: [UnsafeCell<u32>; 3],
    }

    // SAFETY: `keys[id]` is written only by the inserter and before `id`
    // is inserted, and read only by lookups that found `id` (what loom checks).
    unsafe impl Sync for Shared {}

    fn insert(s: &Shared, id: u32) {
        // SAFETY: no lookup reads `keys[id]` before `id` is inserted.
        s.keys[id as usize].with_mut(|p| unsafe { *p = id + 100 });
        assert!(s.index.insert_locked(HASH[id as usize], id));
    }

    fn lookup(s: &Shared, want: u32) -> Option<u32> {
        s.index.lookup(HASH[want as usize], |id| {
            // SAFETY: `id` was found in the index, so its key was written
            // (loom reports it if not).
            s.keys[id as usize].with(|p| unsafe { *p }) == want + 100
        })
    }

    #[test]
    fn loom_lookups_see_inserts_across_doublings() {
        loom::model(|| {
            let s = Arc::new(Shared {
                index: Index::new_loom(),
                keys: [0u32; 3].map(UnsafeCell::new),
            });
            insert(&s, 0); // happens before the reader starts
            let reader = {
                let s = s.clone();
                loom::thread::spawn(move || {
                    // 0 was inserted before, but a lookup that loaded the
                    // first array may find it emptied (retired) and miss.
                    for want in [0, 2, 1] {
                        if let Some(id) = lookup(&s, want) {
                            assert_eq!(id, want);
                        }
                    }
                })
            };
            // The inserter (the lock's holder in the allocator): 1 goes
            // into the published array, 2 doubles it.
            insert(&s, 1);
            insert(&s, 2);
            reader.join().unwrap();
            for want in 0..3 {
                assert_eq!(lookup(&s, want), Some(want));
            }
        });
    }
}
