//! Scopes: exact, per-thread recording for tests (`measure` and friends).
//!
//! While a scope is active on a thread, every allocation of that thread
//! takes the sample slow path (the scope forces the thread's countdown to
//! stay expired, so the fast path gains nothing) and is recorded with
//! weight 1, served from the region like any sample. The block's metadata
//! carries the scope's handle, so its free is charged back to the scope
//! whichever thread frees it, without a lookup. The global profile sees
//! these blocks too, each with weight 1: nothing is counted twice.
//!
//! Handles are `generation << SLOT_BITS | slot`. A slot is reused only
//! after the *root* scope of its nest ends; reuse bumps the generation, so
//! a late free of a block owned by an ended nest is recognised as stale
//! and charged to nobody. A nested scope that ends forwards later charges
//! to its still-active ancestors. A charge from another thread pins its
//! slot, so a release waits for charges in flight and a reused slot never
//! sees a stale one (`gate`).
//!
//! Ownership is per scope: scope S owns a block when the block's handle is
//! S or a descendant of S. Frees, foreign frees and reallocs are accounted
//! in each scope of a chain by its own ownership.
//!
//! The owner thread (the one that began a scope) and the others. A scope's
//! counters come in two sets, summed when read: `own`, written only by the
//! owner thread with a plain load and store (never from a signal handler:
//! every write is made with the thread busy), and `remote`, read-modify-
//! writes by every other thread (attached threads, frees on other threads).
//! Live bytes are split the same way, and the peak stays exact with no
//! read-modify-write for the owner while no other thread grows the scope:
//! a thread that attaches (`enter`) marks the scope shared and makes the
//! heavy side of an asymmetric fence (`membarrier`), after which the
//! owner's growths read the other threads' count with a read-modify-write
//! (`live`; without `membarrier`, scopes start shared). Per-site counts
//! are split like the counters (`sites`).
//! Invariants:
//!
//! - `OWN` (thread-local) is either 0 or this thread's `CURRENT`, and then
//!   every scope of `CURRENT`'s chain was begun by this thread and is not
//!   released: only this thread can end them, and the release of a nest
//!   happens at its root's end. So this thread charges that chain without
//!   pinning (`own_chain`); every other charge pins (`for_active`).
//! - A scope's `own` counters are written only by its owner thread, and
//!   read by it (`snapshot`; the helpers' guards are `!Send`).
//! - A thread other than a scope's owner grows the scope's live bytes only
//!   after it marked the scope shared and made the heavy fence (`enter`
//!   does it for the chain it attaches to); `shared` is cleared only by
//!   `begin`, when no charger can be inside.
//! - The site table of a slot only grows while the slot is in use: entries
//!   are inserted under the slot's lock and published by their `size`;
//!   lookups take no lock. `begin` clears it, when no charger can be inside
//!   (pins drained, generation not yet opened).
//!
//! Thread safety: counters are atomics; a slot's lock guards site inserts,
//! the table's allocation and `nsites`, and is never held while
//! allocating.

use crate::stacks::StackId;
use crate::sys::arena;
use crate::sys::lock::SpinLock;
use crate::sys::membarrier;
use core::cell::{Cell, UnsafeCell};
use core::sync::atomic::{AtomicBool, AtomicI64, AtomicPtr, AtomicU32, AtomicU64, Ordering};

const SLOT_BITS: u32 = 8;
/// At most this many scopes (nested ones included) at once.
pub(crate) const SLOTS: usize = 1 << SLOT_BITS;
/// Distinct (stack, size) sites a scope keeps (a power of two); more are
/// counted as dropped in its profile, never in its `Stats`.
const SITES: usize = 4096;
const NONE: u32 = 0;

thread_local! {
    /// The innermost scope active on this thread (0: none).
    static CURRENT: Cell<u32> = const { Cell::new(NONE) };
    /// `CURRENT` when this thread began every scope of its chain, else 0
    /// (see the module docs); also 0 during a realloc (`realloc_begin`), so
    /// that one compare sends its charges to the pinned paths.
    static OWN: Cell<u32> = const { Cell::new(NONE) };
    /// `OWN` before the realloc this thread is doing.
    static REALLOC_OWN: Cell<u32> = const { Cell::new(NONE) };
    /// The scope (0: none) whose realloc this thread is doing, so the
    /// realloc's free and alloc are accounted as one realloc in that scope
    /// and its ancestors.
    static IN_REALLOC: Cell<u32> = const { Cell::new(NONE) };
    /// This thread's id for `Slot::owner` (0: not drawn yet).
    static THREAD_ID: Cell<u32> = const { Cell::new(0) };
}

/// Indices of a scope's counters in `Counters`.
const ALLOCS: usize = 0;
const REALLOCS: usize = 1;
const DEALLOCS: usize = 2;
const BYTES_ALLOCATED: usize = 3;
const BYTES_FREED: usize = 4;
const LIVE_BLOCKS: usize = 5;
const FOREIGN_FREES: usize = 6;
const COUNTERS: usize = 7;

/// One set of a scope's counters (wrapping: a set alone may go "negative",
/// the sum of both is the count).
#[repr(align(64))]
struct Counters([AtomicU64; COUNTERS]);

#[repr(align(128))] // scopes of different threads must not share cache lines
struct Slot {
    gate: gate::Gate<AtomicU32>,
    active: AtomicU32,
    parent: AtomicU32,
    /// Next slot (handle) of the same root nest, for release.
    next_in_root: AtomicU32,
    /// `THREAD_ID` of the thread that began the scope.
    owner: AtomicU32,
    /// The owner thread began the parent's whole chain too (`OWN`).
    own_chain: AtomicBool,
    /// Owned bytes live and their peak.
    live: live::Live<AtomicI64>,
    first_stack: AtomicU32,
    dropped: AtomicU64,
    lock: SpinLock,
    sites: AtomicPtr<Site>,
    nsites: UnsafeCell<usize>,
    /// Written by the owner thread only.
    own: Counters,
    /// Written by the other threads.
    remote: Counters,
}

// SAFETY: `nsites` is only touched with `lock` held.
unsafe impl Sync for Slot {}

#[allow(clippy::declare_interior_mutable_const)]
const COUNTERS_ZERO: Counters = Counters([const { AtomicU64::new(0) }; COUNTERS]);

#[allow(clippy::declare_interior_mutable_const)]
const SLOT: Slot = Slot {
    gate: gate::Gate {
        gen: AtomicU32::new(0),
        pins: AtomicU32::new(0),
    },
    active: AtomicU32::new(0),
    parent: AtomicU32::new(NONE),
    next_in_root: AtomicU32::new(NONE),
    owner: AtomicU32::new(0),
    own_chain: AtomicBool::new(false),
    live: live::Live {
        own: AtomicI64::new(0),
        shared: AtomicI64::new(0),
        peak: AtomicI64::new(0),
        remote: AtomicI64::new(0),
    },
    first_stack: AtomicU32::new(u32::MAX),
    dropped: AtomicU64::new(0),
    lock: SpinLock::new(),
    sites: AtomicPtr::new(core::ptr::null_mut()),
    nsites: UnsafeCell::new(0),
    own: COUNTERS_ZERO,
    remote: COUNTERS_ZERO,
};

static TABLE: [Slot; SLOTS] = [SLOT; SLOTS];
static FREE_LOCK: SpinLock = SpinLock::new();
/// Slot in use (bit per slot), under FREE_LOCK.
static USED: [AtomicU64; SLOTS / 64] = [const { AtomicU64::new(0) }; SLOTS / 64];

/// A scope's owned live bytes and their peak, exact against one linear
/// history, with no read-modify-write on the owner thread's path while no
/// other thread has grown the scope.
///
/// `own` is the owner thread's net change (its growths and shrinks), a
/// plain load and store (it alone writes it); `remote` every other
/// thread's, read-modify-writes. Live = `own + remote`. `peak` is the
/// maximum of the totals the growths compute (only growths can raise it).
///
/// The danger is two growths on different threads that each miss the
/// other (a store-buffering pair): the peak would miss the moment both
/// blocks were live. `shared` decides how it is excluded:
///
/// - Unshared (0, the start when the heavy fence works): the owner's
///   growth stores `own`, passes a light fence (a compiler fence), loads
///   `shared` and, still 0, `remote` with a plain load. No other thread
///   grows yet; shrinks on other threads read nothing, so a growth that
///   misses one is ordered before it.
/// - `share` (before the first growth by any other thread: `enter`, when
///   a thread attaches): stores `shared = 1`, then the heavy fence
///   (`membarrier`) makes every thread of the process pass a full barrier.
///   An owner growth whose load of `shared` came before its barrier point
///   saw its store of `own` made visible by it, so every growth after the
///   heavy fence sees it; one after its barrier point sees `shared = 1`.
/// - Shared (1): the owner's growth reads `remote` with a read-modify-
///   write (`AcqRel`, adding 0) after its store of `own`; every other
///   thread's growth is a read-modify-write of `remote` followed by a load
///   of `own`. The read-modify-writes of `remote` are one linear history:
///   whichever of two growths comes later in it sees the other (the
///   earlier one's release carries its store of `own`). A slot starts
///   shared when the heavy fence is unavailable (`begin`): then every
///   growth is locked, as before this protocol.
///
/// A growth's total is the live count at one point of a linear order of
/// all the changes, so `peak` is neither a total that never was nor a
/// missed one. The `loom` models below check it, with the heavy fence as a
/// `SeqCst` fence on both sides (crossbeam's model of `membarrier`), and
/// that without the heavy side a growth is missed. Generic over its
/// atomic for them.
mod live {
    use core::sync::atomic::Ordering::{AcqRel, Relaxed};

    /// The atomic operations on 64-bit signed words `Live` needs.
    pub(crate) trait AtomicI {
        fn load(&self, o: core::sync::atomic::Ordering) -> i64;
        fn store(&self, v: i64, o: core::sync::atomic::Ordering);
        fn fetch_add(&self, v: i64, o: core::sync::atomic::Ordering) -> i64;
        fn fetch_max(&self, v: i64, o: core::sync::atomic::Ordering) -> i64;
    }

    macro_rules! atomic_i {
        ($t:ty) => {
            impl AtomicI for $t {
                fn load(&self, o: core::sync::atomic::Ordering) -> i64 {
                    <$t>::load(self, o)
                }
                fn store(&self, v: i64, o: core::sync::atomic::Ordering) {
                    <$t>::store(self, v, o)
                }
                fn fetch_add(&self, v: i64, o: core::sync::atomic::Ordering) -> i64 {
                    <$t>::fetch_add(self, v, o)
                }
                fn fetch_max(&self, v: i64, o: core::sync::atomic::Ordering) -> i64 {
                    <$t>::fetch_max(self, v, o)
                }
            }
        };
    }
    atomic_i!(core::sync::atomic::AtomicI64);
    #[cfg(memprof_loom)]
    atomic_i!(loom::sync::atomic::AtomicI64);

    pub(crate) struct Live<A> {
        pub(crate) own: A,
        pub(crate) shared: A,
        pub(crate) peak: A,
        pub(crate) remote: A,
    }

    impl<A: AtomicI> Live<A> {
        /// `bytes` more are live: the owner thread only. `light` is the
        /// light side of the fence `share` makes heavy.
        #[inline]
        pub(crate) fn grow_own(&self, bytes: i64, light: impl FnOnce()) {
            let own = self.own.load(Relaxed).wrapping_add(bytes);
            self.own.store(own, Relaxed);
            light();
            let remote = if self.shared.load(Relaxed) == 0 {
                self.remote.load(Relaxed)
            } else {
                self.remote.fetch_add(0, AcqRel)
            };
            self.raise_peak(own.wrapping_add(remote));
        }

        /// `bytes` fewer are live: the owner thread only.
        #[inline]
        pub(crate) fn shrink_own(&self, bytes: i64) {
            let s = &self.own;
            s.store(s.load(Relaxed).wrapping_sub(bytes), Relaxed);
        }

        /// `bytes` more are live: any thread but the owner, after `share`.
        pub(crate) fn grow(&self, bytes: i64) {
            let remote = self.remote.fetch_add(bytes, AcqRel).wrapping_add(bytes);
            self.raise_peak(remote.wrapping_add(self.own.load(Relaxed)));
        }

        /// `bytes` fewer are live: any thread but the owner.
        pub(crate) fn shrink(&self, bytes: i64) {
            self.remote.fetch_add(bytes.wrapping_neg(), Relaxed);
        }

        #[inline]
        fn raise_peak(&self, now: i64) {
            // `peak` only grows: a value read at or above `now` makes the
            // `fetch_max` a no-op, so it is skipped.
            if now > self.peak.load(Relaxed) {
                self.peak.fetch_max(now, Relaxed);
            }
        }

        /// Is the slot shared (other threads may grow it)?
        pub(crate) fn is_shared(&self) -> bool {
            self.shared.load(Relaxed) != 0
        }

        /// Before this thread (not the owner) grows the scope: marks it
        /// shared, then `heavy`, the heavy side of the fence (see the
        /// module docs). A thread calls it itself even when the slot is
        /// already shared: another thread's heavy fence may not be done.
        pub(crate) fn share(&self, heavy: impl FnOnce()) {
            self.shared.store(1, Relaxed);
            heavy();
        }

        /// Live bytes (exact on the owner thread).
        pub(crate) fn live(&self) -> i64 {
            self.own
                .load(Relaxed)
                .wrapping_add(self.remote.load(Relaxed))
        }

        pub(crate) fn peak(&self) -> i64 {
            self.peak.load(Relaxed)
        }

        /// For a new scope (no charger inside); `shared` when the heavy
        /// fence is unavailable.
        pub(crate) fn reset(&self, shared: bool) {
            for c in [&self.own, &self.remote, &self.peak] {
                c.store(0, Relaxed);
            }
            self.shared.store(i64::from(shared), Relaxed);
        }
    }
}

/// The `loom` models of `live`, the heavy fence (`membarrier`) modelled as
/// a `SeqCst` fence on both sides. The other thread marks the slot shared
/// (`share`) before it grows, as `enter` does.
///
/// The first: the owner grows by 10, shrinks by 10 and grows by 1 while
/// the other thread grows by 5. In every order of those the peak is 10 or
/// 15 (no total that never was, none missed) and the live count ends at
/// 6. The others: two growths that meet are both in the peak, with the
/// heavy fence, and with a slot shared from the start (no heavy fence
/// available); without the heavy side loom finds the order where each
/// misses the other.
#[cfg(all(test, memprof_loom))]
mod loom_live {
    use super::live::Live;
    use loom::sync::atomic::{fence, AtomicI64, Ordering::SeqCst};
    use loom::sync::Arc;

    fn live(shared: bool) -> Arc<Live<AtomicI64>> {
        Arc::new(Live {
            own: AtomicI64::new(0),
            shared: AtomicI64::new(i64::from(shared)),
            peak: AtomicI64::new(0),
            remote: AtomicI64::new(0),
        })
    }

    fn light() {
        fence(SeqCst);
    }

    #[test]
    fn loom_live_peak_is_one_linear_history() {
        loom::model(|| {
            let l = live(false);
            let other = {
                let l = l.clone();
                loom::thread::spawn(move || {
                    l.share(|| fence(SeqCst));
                    l.grow(5);
                })
            };
            l.grow_own(10, light);
            l.shrink_own(10);
            l.grow_own(1, light);
            other.join().unwrap();
            assert_eq!(l.live(), 6);
            let peak = l.peak();
            assert!(peak == 10 || peak == 15, "peak {peak}");
        });
    }

    /// Two threads that each grow and then meet: the peak counts both.
    fn both_counted(shared: bool, heavy: fn()) {
        loom::model(move || {
            let l = live(shared);
            let other = {
                let l = l.clone();
                loom::thread::spawn(move || {
                    l.share(heavy);
                    l.grow(5);
                })
            };
            l.grow_own(10, light);
            other.join().unwrap();
            // Both were live at once (after the join): the peak says so.
            assert_eq!(l.peak(), 15);
            l.shrink_own(10);
            assert_eq!(l.live(), 5);
        });
    }

    #[test]
    fn loom_live_concurrent_growths_both_counted() {
        both_counted(false, || fence(SeqCst));
    }

    /// No heavy fence (unavailable): the slot is shared from the start.
    #[test]
    fn loom_live_shared_from_the_start_without_fences() {
        both_counted(true, || {});
    }

    /// The model catches a missing heavy side.
    #[test]
    #[should_panic(expected = "assertion")]
    fn loom_live_without_the_heavy_side_a_growth_is_missed() {
        both_counted(false, || {});
    }
}

type Site = sites::Entry<AtomicU64, AtomicU32>;

/// A scope's per-site table: open addressing keyed by (stack, size), with
/// `size == 0` marking an empty entry (no allocation has size 0), insert
/// only. Inserts are made under the slot's lock: `stack` is stored, then
/// `size` with `Release`. Lookups take no lock: they read `size` with
/// `Acquire` (so a matching `size` comes with its `stack`) and stop at an
/// empty entry; the table is never more than 7/8 full, so a probe ends.
/// Generic over its atomics so the `loom` model (`loom_sites`) checks this
/// very code.
mod sites {
    use super::gate::Atomic32;
    use core::sync::atomic::Ordering::{Acquire, Relaxed, Release};

    /// The atomic operations on 64-bit words the table needs.
    pub(crate) trait Atomic64 {
        fn load(&self, o: core::sync::atomic::Ordering) -> u64;
        fn store(&self, v: u64, o: core::sync::atomic::Ordering);
        fn fetch_add(&self, v: u64, o: core::sync::atomic::Ordering) -> u64;
    }

    macro_rules! atomic64 {
        ($t:ty) => {
            impl Atomic64 for $t {
                fn load(&self, o: core::sync::atomic::Ordering) -> u64 {
                    <$t>::load(self, o)
                }
                fn store(&self, v: u64, o: core::sync::atomic::Ordering) {
                    <$t>::store(self, v, o)
                }
                fn fetch_add(&self, v: u64, o: core::sync::atomic::Ordering) -> u64 {
                    <$t>::fetch_add(self, v, o)
                }
            }
        };
    }
    atomic64!(core::sync::atomic::AtomicU64);
    #[cfg(memprof_loom)]
    atomic64!(loom::sync::atomic::AtomicU64);

    /// A (stack, size) site and its counts: `[allocs, frees]` by the
    /// scope's owner thread (plain load and store) and by the others
    /// (read-modify-writes). All-zero bytes are an empty entry.
    #[repr(C)]
    pub(crate) struct Entry<A, B> {
        pub(crate) size: A,
        pub(crate) stack: B,
        pub(crate) own: [A; 2],
        pub(crate) remote: [A; 2],
    }

    impl<A: Atomic64, B: Atomic32> Entry<A, B> {
        /// Counts one allocation (`alloc`) or free at this site.
        pub(crate) fn count(&self, own: bool, alloc: bool) {
            let i = usize::from(!alloc);
            if own {
                let c = &self.own[i];
                c.store(c.load(Relaxed).wrapping_add(1), Relaxed);
            } else {
                self.remote[i].fetch_add(1, Relaxed);
            }
        }

        /// `(allocs, frees)`.
        pub(crate) fn counts(&self) -> (u64, u64) {
            let c = |i: usize| {
                self.own[i]
                    .load(Relaxed)
                    .wrapping_add(self.remote[i].load(Relaxed))
            };
            (c(0), c(1))
        }
    }

    fn start(len: usize, stack: u32, size: u64) -> usize {
        let h = (u64::from(stack) ^ size.rotate_left(29)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        (h >> 32) as usize & (len - 1)
    }

    /// The entry of (stack, size), without a lock; `None` if it has none
    /// yet (then `insert` under the lock). `table.len()` is a power of two.
    #[inline]
    pub(crate) fn find<A: Atomic64, B: Atomic32>(
        table: &[Entry<A, B>],
        stack: u32,
        size: u64,
    ) -> Option<&Entry<A, B>> {
        let mut i = start(table.len(), stack, size);
        loop {
            let e = &table[i];
            let s = e.size.load(Acquire);
            if s == size && e.stack.load(Relaxed) == stack {
                return Some(e);
            }
            if s == 0 {
                return None;
            }
            i = (i + 1) & (table.len() - 1);
        }
    }

    /// The entry of (stack, size), made if missing; `None` when the table
    /// already holds 7/8 of its length. The caller holds the table's lock
    /// (the only writer of keys) and passes the count of entries, `n`.
    pub(crate) fn insert<'t, A: Atomic64, B: Atomic32>(
        table: &'t [Entry<A, B>],
        n: &mut usize,
        stack: u32,
        size: u64,
    ) -> Option<&'t Entry<A, B>> {
        let mut i = start(table.len(), stack, size);
        loop {
            let e = &table[i];
            let s = e.size.load(Relaxed);
            if s == size && e.stack.load(Relaxed) == stack {
                return Some(e);
            }
            if s == 0 {
                if *n * 8 >= table.len() * 7 {
                    return None;
                }
                e.stack.store(stack, Relaxed);
                e.size.store(size, Release);
                *n += 1;
                return Some(e);
            }
            i = (i + 1) & (table.len() - 1);
        }
    }
}

/// The `loom` model of the site table: an owner thread counts its
/// allocations at two sites while another thread counts frees at one of
/// them and at a third, each inserting under the lock when `find` misses.
/// Every site ends up with one entry and every count lands in it.
#[cfg(all(test, memprof_loom))]
mod loom_sites {
    use super::sites::{find, insert, Entry};
    use loom::sync::atomic::{AtomicU32, AtomicU64};
    use loom::sync::{Arc, Mutex};

    type E = Entry<AtomicU64, AtomicU32>;

    fn entry() -> E {
        Entry {
            size: AtomicU64::new(0),
            stack: AtomicU32::new(0),
            own: [AtomicU64::new(0), AtomicU64::new(0)],
            remote: [AtomicU64::new(0), AtomicU64::new(0)],
        }
    }

    fn charge(t: &(Vec<E>, Mutex<usize>), stack: u32, size: u64, own: bool, alloc: bool) {
        let e = match find(&t.0, stack, size) {
            Some(e) => e,
            None => {
                let mut n = t.1.lock().unwrap();
                insert(&t.0, &mut n, stack, size).unwrap()
            }
        };
        e.count(own, alloc);
    }

    #[test]
    fn loom_site_inserts_and_lock_free_lookups() {
        loom::model(|| {
            // Four entries: at most three sites fit (7/8).
            let t = Arc::new(((0..4).map(|_| entry()).collect::<Vec<_>>(), Mutex::new(0)));
            let other = {
                let t = t.clone();
                loom::thread::spawn(move || {
                    charge(&t, 1, 8, false, false);
                    charge(&t, 3, 24, false, false);
                })
            };
            charge(&t, 1, 8, true, true);
            charge(&t, 2, 16, true, true);
            charge(&t, 1, 8, true, true);
            other.join().unwrap();
            let count = |stack, size| find(&t.0, stack, size).map(|e| e.counts());
            assert_eq!(count(1, 8), Some((2, 1)));
            assert_eq!(count(2, 16), Some((1, 0)));
            assert_eq!(count(3, 24), Some((0, 1)));
            assert_eq!(*t.1.lock().unwrap(), 3);
            let used = t.0.iter().filter(|e| e.counts() != (0, 0)).count();
            assert_eq!(used, 3, "one entry per site");
        });
    }
}

/// A slot's generation and the chargers inside it: the part of slot reuse
/// that races with frees on other threads.
///
/// A free charges a block's scope by its handle, from any thread, while the
/// scope's root may end and the slot be handed to a new scope whose
/// counters `begin` resets. A generation check alone is not enough: a
/// charger can pass it, then the slot is released and reused, and the
/// stale charge lands in the new scope. So a charger *pins* the slot
/// (`pins += 1`) before it checks the generation, and `retire` bumps the
/// generation before it waits for the pins to drain. Both sides read with
/// read-modify-writes: either the charger sees the new generation and
/// backs off, or `retire` sees its pin and waits for it to finish. Generic over its atomic so the
/// `loom` model (`loom_model` below) checks this very code.
mod gate {
    use core::sync::atomic::Ordering::{Acquire, Release, SeqCst};

    /// The atomic operations the gate needs.
    pub(crate) trait Atomic32 {
        fn load(&self, o: core::sync::atomic::Ordering) -> u32;
        fn store(&self, v: u32, o: core::sync::atomic::Ordering);
        fn fetch_add(&self, v: u32, o: core::sync::atomic::Ordering) -> u32;
        fn fetch_sub(&self, v: u32, o: core::sync::atomic::Ordering) -> u32;
        fn swap(&self, v: u32, o: core::sync::atomic::Ordering) -> u32;
    }

    macro_rules! atomic32 {
        ($t:ty) => {
            impl Atomic32 for $t {
                fn load(&self, o: core::sync::atomic::Ordering) -> u32 {
                    <$t>::load(self, o)
                }
                fn store(&self, v: u32, o: core::sync::atomic::Ordering) {
                    <$t>::store(self, v, o)
                }
                fn fetch_add(&self, v: u32, o: core::sync::atomic::Ordering) -> u32 {
                    <$t>::fetch_add(self, v, o)
                }
                fn fetch_sub(&self, v: u32, o: core::sync::atomic::Ordering) -> u32 {
                    <$t>::fetch_sub(self, v, o)
                }
                fn swap(&self, v: u32, o: core::sync::atomic::Ordering) -> u32 {
                    <$t>::swap(self, v, o)
                }
            }
        };
    }
    atomic32!(core::sync::atomic::AtomicU32);
    #[cfg(memprof_loom)]
    atomic32!(loom::sync::atomic::AtomicU32);

    pub(crate) struct Gate<A> {
        pub(crate) gen: A,
        pub(crate) pins: A,
    }

    impl<A: Atomic32> Gate<A> {
        /// The current generation (no pin: for reads that charge nothing).
        pub(crate) fn gen(&self) -> u32 {
            self.gen.load(Acquire)
        }

        /// Pins the slot if its generation is `gen`; `unpin` after.
        pub(crate) fn pin(&self, gen: u32) -> bool {
            self.pins.fetch_add(1, SeqCst);
            // A read-modify-write, not a load: it reads the latest
            // generation in its modification order (see `retire`).
            if self.gen.fetch_add(0, SeqCst) == gen {
                return true;
            }
            self.pins.fetch_sub(1, Release);
            false
        }

        pub(crate) fn unpin(&self) {
            self.pins.fetch_sub(1, Release);
        }

        /// Makes every handle of generation `gen()` stale and waits until
        /// no charger that passed `pin` under it is left. `wait` is called
        /// while waiting (a yield).
        pub(crate) fn retire(&self, next: u32, mut wait: impl FnMut()) {
            self.gen.swap(next, SeqCst);
            // Read-modify-writes on both sides: if this reads 0 pins, a
            // later `pin` reads from it (release/acquire through `pins`)
            // and so sees the new generation, which plain SeqCst loads and
            // stores would also give but `loom` does not model.
            while self.pins.fetch_add(0, SeqCst) != 0 {
                wait();
            }
        }

        /// Hands out generation `gen` (after the slot was reset).
        pub(crate) fn open(&self, gen: u32) {
            // A read-modify-write like every other write of `gen`, so that
            // `pin`'s read-modify-write is ordered against it too.
            self.gen.swap(gen, SeqCst);
        }

        /// In a `fork` child: chargers of the parent's other threads do not
        /// exist there, so their pins never drain.
        pub(crate) fn clear_pins(&self) {
            self.pins.store(0, Release);
        }
    }
}

/// The `loom` model of slot reuse against a concurrent charge:
/// `RUSTFLAGS="--cfg memprof_loom" cargo test --release --lib loom`.
///
/// One thread charges a handle of generation 1 (a free of a block of that
/// scope, counted in the slot's counter); the other ends that scope
/// (`retire`), resets the counter and hands the slot out as generation 2.
/// In every interleaving the charge lands in generation 1's count or not
/// at all, never in generation 2's (with the generation check alone, loom
/// finds the interleaving where it does).
#[cfg(all(test, memprof_loom))]
mod loom_model {
    use super::gate::Gate;
    use loom::sync::atomic::{AtomicU32, Ordering};
    use loom::sync::Arc;

    struct Slot {
        gate: Gate<AtomicU32>,
        count: AtomicU32,
    }

    fn charge(s: &Slot, gen: u32) -> bool {
        if !s.gate.pin(gen) {
            return false;
        }
        s.count.fetch_add(1, Ordering::Relaxed);
        s.gate.unpin();
        true
    }

    #[test]
    fn loom_a_stale_charge_never_lands_in_a_reused_slot() {
        loom::model(|| {
            let s = Arc::new(Slot {
                gate: Gate {
                    gen: AtomicU32::new(1),
                    pins: AtomicU32::new(0),
                },
                count: AtomicU32::new(0),
            });
            let charger = {
                let s = s.clone();
                loom::thread::spawn(move || charge(&s, 1))
            };
            // End generation 1, reset, reuse as generation 3 (2 is the
            // retired value no handle carries).
            s.gate.retire(2, loom::thread::yield_now);
            let before_reset = s.count.load(Ordering::Relaxed);
            s.count.store(0, Ordering::Relaxed);
            s.gate.open(3);
            let charged = charger.join().unwrap();
            // A charge that passed the gate finished before the reset.
            assert_eq!(before_reset, u32::from(charged));
            assert_eq!(
                s.count.load(Ordering::Relaxed),
                0,
                "a stale charge hit generation 3"
            );
            assert_eq!(s.gate.gen(), 3);
        });
    }
}

fn slot_of(h: u32) -> Option<&'static Slot> {
    if h == NONE {
        return None;
    }
    let s = slot(h);
    (s.gate.gen() == h >> SLOT_BITS).then_some(s)
}

/// The slot of handle `h`, whatever its generation.
#[inline]
fn slot(h: u32) -> &'static Slot {
    &TABLE[(h & (SLOTS as u32 - 1)) as usize]
}

/// The innermost scope of this thread, 0 if none.
#[inline]
pub(crate) fn current() -> u32 {
    CURRENT.try_with(Cell::get).unwrap_or(NONE)
}

/// `CURRENT` if this thread began its whole chain, else 0.
#[inline]
fn own() -> u32 {
    OWN.try_with(Cell::get).unwrap_or(NONE)
}

/// This thread's id for `Slot::owner`, never 0.
fn thread_id() -> u32 {
    static NEXT: AtomicU32 = AtomicU32::new(1);
    THREAD_ID
        .try_with(|t| {
            if t.get() == 0 {
                // 2^32 threads would wrap it: past 0, ids repeat.
                let mut id = NEXT.fetch_add(1, Ordering::Relaxed);
                if id == 0 {
                    id = NEXT.fetch_add(1, Ordering::Relaxed);
                }
                t.set(id);
            }
            t.get()
        })
        // No TLS (thread teardown): an id no slot's owner has.
        .unwrap_or(0)
}

/// Starts a scope nested in this thread's current one (if any). `None`
/// when all slots are in use.
pub(crate) fn begin() -> Option<u32> {
    let parent = current();
    let own_chain = parent == NONE || own() == parent;
    let me = thread_id();
    let idx = {
        let _g = FREE_LOCK.lock();
        let mut found = None;
        for (w, word) in USED.iter().enumerate() {
            let bits = word.load(Ordering::Relaxed);
            if bits != u64::MAX {
                let b = (!bits).trailing_zeros() as usize;
                word.store(bits | 1 << b, Ordering::Relaxed);
                found = Some(w * 64 + b);
                break;
            }
        }
        found?
    };
    let s = &TABLE[idx];
    for c in s.own.0.iter().chain(&s.remote.0) {
        c.store(0, Ordering::Relaxed);
    }
    s.dropped.store(0, Ordering::Relaxed);
    s.live.reset(!membarrier::available());
    s.first_stack.store(u32::MAX, Ordering::Relaxed);
    {
        let _g = s.lock.lock();
        // SAFETY: we hold the slot lock.
        unsafe { clear_sites(s) };
    }
    // Generation 0 is never handed out, so handle 0 means "no scope".
    let gen = (s.gate.gen() + 1).max(1) & ((1 << (32 - SLOT_BITS)) - 1);
    let gen = gen.max(1);
    let h = gen << SLOT_BITS | idx as u32;
    s.parent.store(parent, Ordering::Relaxed);
    s.owner.store(me, Ordering::Relaxed);
    s.own_chain.store(own_chain, Ordering::Relaxed);
    s.active.store(1, Ordering::Relaxed);
    // Link into the root's nest so that the root's end releases it.
    let root = root_of(parent);
    if let Some(r) = slot_of(root) {
        s.next_in_root
            .store(r.next_in_root.swap(h, Ordering::AcqRel), Ordering::Relaxed);
    } else {
        s.next_in_root.store(NONE, Ordering::Relaxed);
    }
    // Publishes the writes above to chargers on other threads (their pin
    // reads this generation with a read-modify-write).
    s.gate.open(gen);
    set_current(Prev {
        current: h,
        own: if own_chain { h } else { NONE },
    });
    Some(h)
}

fn root_of(mut h: u32) -> u32 {
    while let Some(s) = slot_of(h) {
        let p = s.parent.load(Ordering::Relaxed);
        if p == NONE {
            return h;
        }
        h = p;
    }
    h
}

/// A thread's scope state, saved by `enter` and restored by `leave`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Prev {
    current: u32,
    own: u32,
}

fn set_current(p: Prev) {
    let _ = CURRENT.try_with(|c| c.set(p.current));
    let _ = OWN.try_with(|c| c.set(p.own));
    if p.current == NONE {
        crate::sampler::resume_sampling();
    } else {
        crate::sampler::force_slow_path();
    }
}

/// Makes `h` this thread's current scope (for `attach`); returns the state
/// it replaces. The chain is not this thread's own (`OWN`): its charges
/// pin.
pub(crate) fn enter(h: u32) -> Prev {
    let prev = Prev {
        current: current(),
        own: own(),
    };
    // This thread may grow the scopes of `h`'s chain from now on: the
    // owners' growths must see its own (`live`).
    let mut shared = false;
    for_active(h, |_, c| {
        if !c.own {
            c.s.live.share(|| ());
            shared = true;
        }
    });
    if shared {
        heavy();
    }
    let _ = CURRENT.try_with(|c| c.set(h));
    let _ = OWN.try_with(|c| c.set(NONE));
    crate::sampler::force_slow_path();
    prev
}

/// The heavy side of `live`'s fence. If `membarrier` fails (a seccomp
/// filter installed since the slot's `begin` probed it), scopes begun from
/// now on start shared; a growth of an owner thread of a scope begun
/// before, racing with this thread's first growth, could then be missed
/// by its peak (the only case the protocol does not cover).
fn heavy() {
    let _ = membarrier::heavy();
}

/// Restores `prev` as this thread's scope after `enter`.
pub(crate) fn leave(prev: Prev) {
    let _ = CURRENT.try_with(|c| c.set(prev.current));
    let _ = OWN.try_with(|c| c.set(prev.own));
    if prev.current == NONE {
        crate::sampler::resume_sampling();
    }
}

/// Ends scope `h` (begun on this thread): stops charging it. A root scope
/// releases its whole nest.
pub(crate) fn end(h: u32) {
    let Some(s) = slot_of(h) else { return };
    s.active.store(0, Ordering::Release);
    let parent = s.parent.load(Ordering::Relaxed);
    // The parent's chain is this thread's own when this scope's is.
    let own_chain = s.own_chain.load(Ordering::Relaxed);
    leave(Prev {
        current: parent,
        own: if own_chain { parent } else { NONE },
    });
    if parent != NONE {
        return;
    }
    let mut next = s.next_in_root.load(Ordering::Acquire);
    release(h);
    while let Some(d) = slot_of(next) {
        let n = d.next_in_root.load(Ordering::Acquire);
        release(next);
        next = n;
    }
}

fn release(h: u32) {
    let idx = (h & (SLOTS as u32 - 1)) as usize;
    let s = &TABLE[idx];
    // A new generation makes every handle of this use stale; chargers
    // that got in under the old one finish before the slot is reused.
    s.gate.retire(
        s.gate.gen().wrapping_add(1) & ((1 << (32 - SLOT_BITS)) - 1),
        // SAFETY: sched_yield has no preconditions.
        || unsafe {
            libc::sched_yield();
        },
    );
    let _g = FREE_LOCK.lock();
    USED[idx / 64].fetch_and(!(1u64 << (idx % 64)), Ordering::Relaxed);
}

/// A scope being charged, and which of its counter sets this thread
/// writes.
#[derive(Clone, Copy)]
struct Charge {
    s: &'static Slot,
    /// This thread is the scope's owner: `own` counters.
    own: bool,
}

impl Charge {
    #[inline]
    fn add(self, i: usize, v: u64) {
        if self.own {
            // Only the owner thread writes `own`, always busy (no signal
            // handler charges in between): a load and a store lose nothing.
            let c = &self.s.own.0[i];
            c.store(c.load(Ordering::Relaxed).wrapping_add(v), Ordering::Relaxed);
        } else {
            self.s.remote.0[i].fetch_add(v, Ordering::Relaxed);
        }
    }

    #[inline]
    fn sub(self, i: usize, v: u64) {
        self.add(i, v.wrapping_neg());
    }

    fn grow_live(self, bytes: u64) {
        let live = &self.s.live;
        if self.own {
            live.grow_own(bytes as i64, membarrier::light);
        } else {
            if !live.is_shared() {
                // Not reached: `enter` shares the chain of a thread before
                // it charges (only attached threads grow others' scopes).
                live.share(heavy);
            }
            live.grow(bytes as i64);
        }
    }

    fn shrink_live(self, bytes: u64) {
        if self.own {
            self.s.live.shrink_own(bytes as i64);
        } else {
            self.s.live.shrink(bytes as i64);
        }
    }

    /// Counts an allocation (`alloc`) or a free at (stack, size).
    fn site(self, stack: StackId, size: u64, alloc: bool) {
        let s = self.s;
        let table = s.sites.load(Ordering::Acquire);
        if !table.is_null() {
            // SAFETY: a published table has SITES entries and lives as
            // long as the slot (never freed).
            let t = unsafe { core::slice::from_raw_parts(table, SITES) };
            if let Some(e) = sites::find(t, stack, size) {
                e.count(self.own, alloc);
                return;
            }
        }
        self.site_insert(stack, size, alloc);
    }

    #[cold]
    fn site_insert(self, stack: StackId, size: u64, alloc: bool) {
        let s = self.s;
        let _g = s.lock.lock();
        let mut table = s.sites.load(Ordering::Relaxed);
        if table.is_null() {
            table = arena::alloc_zeroed(SITES * core::mem::size_of::<Site>(), 8).cast();
            if table.is_null() {
                s.dropped.fetch_add(1, Ordering::Relaxed);
                return;
            }
            // Zeroed entries are empty; `Release`: lookups see them so.
            s.sites.store(table, Ordering::Release);
        }
        // SAFETY: we hold the slot lock (for `nsites`); the table has
        // SITES entries, zeroed or written as `Site`s.
        let (t, n) = unsafe {
            (
                core::slice::from_raw_parts(table, SITES),
                &mut *s.nsites.get(),
            )
        };
        match sites::insert(t, n, stack, size) {
            Some(e) => e.count(self.own, alloc),
            None => {
                s.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// A block of `size` bytes at `stack` is now owned by the scope.
    fn alloc(self, stack: StackId, size: u64) {
        let s = self.s;
        if s.first_stack.load(Ordering::Relaxed) == u32::MAX {
            s.first_stack
                .compare_exchange(u32::MAX, stack, Ordering::Relaxed, Ordering::Relaxed)
                .ok();
        }
        self.add(ALLOCS, 1);
        self.add(BYTES_ALLOCATED, size);
        self.add(LIVE_BLOCKS, 1);
        self.grow_live(size);
    }

    /// An owned block of `size` bytes was freed.
    fn free(self, size: u64) {
        self.add(DEALLOCS, 1);
        self.add(BYTES_FREED, size);
        self.sub(LIVE_BLOCKS, 1);
        self.shrink_live(size);
    }
}

/// Active scopes from `h` up its ancestors, with their handles. Each is
/// pinned while `f` charges it, so a concurrent release and reuse of its
/// slot never sees the charge (see `gate`); a stale handle ends the walk.
fn for_active(mut h: u32, mut f: impl FnMut(u32, Charge)) {
    let me = thread_id();
    while h != NONE {
        let s = slot(h);
        if !s.gate.pin(h >> SLOT_BITS) {
            return;
        }
        if s.active.load(Ordering::Acquire) != 0 {
            // Read after the pin: the owner of this generation.
            let own = s.owner.load(Ordering::Relaxed) == me;
            f(h, Charge { s, own });
        }
        let parent = s.parent.load(Ordering::Relaxed);
        s.gate.unpin();
        h = parent;
    }
}

/// Active scopes from `h` (this thread's `OWN`) up, charged by their owner
/// without pins: only this thread could end them (module docs).
#[inline]
fn own_chain(mut h: u32, mut f: impl FnMut(Charge)) {
    while h != NONE {
        let s = slot(h);
        if s.active.load(Ordering::Relaxed) != 0 {
            f(Charge { s, own: true });
        }
        h = s.parent.load(Ordering::Relaxed);
    }
}

/// Is `scope` one of `h`, its parent, its parent's parent...? That is:
/// does `scope` own a block whose handle is `h`? A stale `h` (its nest
/// ended and the slot was reused) is owned by nobody.
fn in_chain(scope: u32, mut h: u32) -> bool {
    if scope == NONE {
        return false;
    }
    while let Some(s) = slot_of(h) {
        if h == scope {
            return true;
        }
        h = s.parent.load(Ordering::Relaxed);
    }
    false
}

/// The scope whose realloc this thread is doing (0: none), see
/// `realloc_begin`.
fn realloc_scope() -> u32 {
    IN_REALLOC.try_with(Cell::get).unwrap_or(NONE)
}

/// Empties a slot's site table for a new scope (caller holds the lock).
///
/// # Safety
/// The caller holds `s.lock`, and no charger is inside the slot (it is
/// being handed out: pins drained, the new generation not yet opened).
unsafe fn clear_sites(s: &Slot) {
    let table = s.sites.load(Ordering::Relaxed);
    // SAFETY: lock held, no charger (caller); the table has SITES entries,
    // and all-zero bytes are an empty entry.
    unsafe {
        if !table.is_null() && *s.nsites.get() > 0 {
            core::ptr::write_bytes(table, 0, SITES);
        }
        *s.nsites.get() = 0;
    }
}

/// A block of `size` bytes at `stack` was allocated in scope `h` (this
/// thread's current scope): every active scope from `h` up owns it. Inside
/// a realloc, the scopes that `realloc_done` accounts only update their
/// sites here. The thread is busy.
#[inline(always)]
pub(crate) fn on_alloc(h: u32, stack: StackId, size: u64) {
    // `own()` is 0 inside a realloc.
    if h == own() {
        own_chain(h, |c| {
            c.site(stack, size, true);
            c.alloc(stack, size);
        });
    } else {
        on_alloc_pinned(h, stack, size);
    }
}

/// `on_alloc` outside this thread's own chain, or inside a realloc.
#[cold]
#[inline(never)]
fn on_alloc_pinned(h: u32, stack: StackId, size: u64) {
    let r = realloc_scope();
    for_active(h, |sh, c| {
        c.site(stack, size, true);
        if !in_chain(sh, r) {
            c.alloc(stack, size);
        }
    });
}

/// A block whose scope handle is `owner` (0: none) was freed on this
/// thread (the thread is busy). Every active scope from `owner` up loses
/// it; inside a realloc, the scopes of the realloc's own chain are
/// accounted by `realloc_done` instead, and owners outside that chain (the
/// block moved to an unrelated scope) see a free. Each active scope of
/// this thread's chain that does not own it counts a foreign free (not
/// inside a realloc: `realloc_done` counts it).
#[inline(always)]
pub(crate) fn on_free(owner: u32, stack: StackId, size: u64) {
    // `own()` is 0 inside a realloc.
    if owner != NONE && owner == own() {
        // The innermost scope of this thread's own chain: every scope of
        // the chain owns the block, none counts a foreign free.
        own_chain(owner, |c| {
            c.site(stack, size, false);
            c.free(size);
        });
    } else {
        on_free_pinned(owner, stack, size);
    }
}

/// `on_free` of a block not owned by this thread's own innermost scope,
/// or inside a realloc.
#[cold]
#[inline(never)]
fn on_free_pinned(owner: u32, stack: StackId, size: u64) {
    let r = realloc_scope();
    if owner != NONE {
        for_active(owner, |sh, c| {
            c.site(stack, size, false);
            if !in_chain(sh, r) {
                c.free(size);
            }
        });
    }
    let cur = current();
    if cur == NONE || r != NONE {
        return;
    }
    for_active(cur, |sh, c| {
        if !in_chain(sh, owner) {
            c.add(FOREIGN_FREES, 1);
        }
    });
}

/// Marks the start of a realloc on this thread, in its current scope: the
/// free and alloc it does update per-site tables but not the counters of
/// that scope and its ancestors, which `realloc_done` then updates as one
/// realloc.
pub(crate) fn realloc_begin() {
    let cur = current();
    let _ = IN_REALLOC.try_with(|c| c.set(cur));
    let own = OWN.try_with(|c| c.replace(NONE)).unwrap_or(NONE);
    let _ = REALLOC_OWN.try_with(|c| c.set(own));
}

/// Accounts a realloc of `old_size` → `new_size` bytes in every active
/// scope of the current chain, each by its own ownership: a scope owns the
/// old block when `old_owner` (the old block's scope handle, 0 for an
/// unrecorded block) is it or a descendant. `tracked`: the new block is
/// recorded (served from the region, owned by the current scope); it is
/// not when the region was full and the inner allocator served it.
pub(crate) fn realloc_done(ok: bool, old_owner: u32, old_size: u64, new_size: u64, tracked: bool) {
    let _ = IN_REALLOC.try_with(|c| c.set(NONE));
    let own = REALLOC_OWN.try_with(|c| c.replace(NONE)).unwrap_or(NONE);
    let _ = OWN.try_with(|c| c.set(own));
    if !ok {
        return;
    }
    // Owner counters are written with plain loads and stores: no signal
    // handler may charge in between.
    let _busy = crate::guard::Busy::enter();
    for_active(current(), |sh, c| {
        c.add(REALLOCS, 1);
        match (in_chain(sh, old_owner), tracked) {
            (true, true) => {
                if new_size >= old_size {
                    c.add(BYTES_ALLOCATED, new_size - old_size);
                    c.grow_live(new_size - old_size);
                } else {
                    c.add(BYTES_FREED, old_size - new_size);
                    c.shrink_live(old_size - new_size);
                }
            }
            (true, false) => {
                // The block left the scope's view: its old bytes are gone.
                c.add(BYTES_FREED, old_size);
                c.sub(LIVE_BLOCKS, 1);
                c.shrink_live(old_size);
                c.s.dropped.fetch_add(1, Ordering::Relaxed);
            }
            (false, true) => {
                // A block the scope did not own: its new incarnation is.
                c.add(FOREIGN_FREES, 1);
                c.add(BYTES_ALLOCATED, new_size);
                c.add(LIVE_BLOCKS, 1);
                c.grow_live(new_size);
            }
            (false, false) => {
                c.add(FOREIGN_FREES, 1);
                c.s.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    });
}

/// A copy of a scope's counters and sites.
pub(crate) struct Snapshot {
    pub(crate) counts: [i64; 10],
    pub(crate) first_stack: Option<StackId>,
    pub(crate) sites: Vec<(StackId, u64, u64, u64)>,
    pub(crate) dropped: u64,
}

/// Reads scope `h` (allocates: the caller is busy). Called on the scope's
/// owner thread, which alone writes the `own` counters.
pub(crate) fn snapshot(h: u32) -> Option<Snapshot> {
    let s = slot_of(h)?;
    let u = |i: usize| {
        s.own.0[i]
            .load(Ordering::Relaxed)
            .wrapping_add(s.remote.0[i].load(Ordering::Relaxed)) as i64
    };
    let counts = [
        u(ALLOCS),
        u(REALLOCS),
        u(DEALLOCS),
        u(BYTES_ALLOCATED),
        u(BYTES_FREED),
        u(LIVE_BLOCKS),
        s.live.live(),
        s.live.peak(),
        u(FOREIGN_FREES),
        0,
    ];
    let first = s.first_stack.load(Ordering::Relaxed);
    // Room for every site, allocated before the lock is taken: the slot
    // lock is never held while allocating (the fork handlers take it).
    let mut sites = Vec::with_capacity(SITES);
    {
        let _g = s.lock.lock();
        let table = s.sites.load(Ordering::Relaxed);
        if !table.is_null() {
            // SAFETY: the table has SITES entries, zeroed or written as
            // `Site`s, and is never freed.
            let all = unsafe { core::slice::from_raw_parts(table, SITES) };
            sites.extend(all.iter().filter_map(|e| {
                let size = e.size.load(Ordering::Acquire);
                let (allocs, frees) = e.counts();
                (size != 0).then(|| (e.stack.load(Ordering::Relaxed), size, allocs, frees))
            }));
        }
    }
    Some(Snapshot {
        counts,
        first_stack: (first != u32::MAX).then_some(first),
        sites,
        dropped: s.dropped.load(Ordering::Relaxed),
    })
}

/// Takes the scope locks (before `fork`; see `crate::fork`): the slot
/// table's, then every slot's. Each is held for a few instructions, and
/// never while allocating.
pub(crate) fn lock_for_fork() {
    FREE_LOCK.raw_lock();
    for s in &TABLE {
        s.lock.raw_lock();
    }
}

/// In a `fork` child, before `unlock_after_fork`: pins held by the
/// parent's other threads (charging when it forked) never drain here.
pub(crate) fn clear_pins_in_child() {
    for s in &TABLE {
        s.gate.clear_pins();
    }
}

/// Releases what `lock_for_fork` took (after `fork`, in parent and child).
pub(crate) fn unlock_after_fork() {
    for s in TABLE.iter().rev() {
        s.lock.raw_unlock();
    }
    FREE_LOCK.raw_unlock();
}
