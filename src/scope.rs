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
//! to its still-active ancestors. A charge pins its slot, so a release
//! waits for charges in flight and a reused slot never sees a stale one
//! (`gate`).
//!
//! Ownership is per scope: scope S owns a block when the block's handle is
//! S or a descendant of S. Frees, foreign frees and reallocs are accounted
//! in each scope of a chain by its own ownership.
//!
//! Thread safety: counters are atomics (frees come from any thread); a
//! slot's per-site table is guarded by the slot's spin lock, taken on the
//! slow path only, never while allocating.

use crate::stacks::StackId;
use crate::sys::arena;
use crate::sys::lock::SpinLock;
use core::cell::{Cell, UnsafeCell};
use core::sync::atomic::{AtomicI64, AtomicPtr, AtomicU32, AtomicU64, Ordering};

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
    /// The scope (0: none) whose realloc this thread is doing, so the
    /// realloc's free and alloc are accounted as one realloc in that scope
    /// and its ancestors.
    static IN_REALLOC: Cell<u32> = const { Cell::new(NONE) };
}

#[derive(Clone, Copy, Default)]
struct Site {
    stack: u32,
    size: u64,
    allocs: u64,
    frees: u64,
}

#[repr(align(128))] // scopes of different threads must not share cache lines
struct Slot {
    gate: gate::Gate<AtomicU32>,
    active: AtomicU32,
    parent: AtomicU32,
    /// Next slot (handle) of the same root nest, for release.
    next_in_root: AtomicU32,
    allocs: AtomicU64,
    reallocs: AtomicU64,
    deallocs: AtomicU64,
    bytes_allocated: AtomicU64,
    bytes_freed: AtomicU64,
    live_blocks: AtomicI64,
    live_bytes: AtomicI64,
    peak_bytes: AtomicI64,
    foreign_frees: AtomicU64,
    first_stack: AtomicU32,
    dropped: AtomicU64,
    lock: SpinLock,
    sites: AtomicPtr<Site>,
    nsites: UnsafeCell<usize>,
}

// SAFETY: `nsites` and the `sites` array are only touched with `lock` held.
unsafe impl Sync for Slot {}

#[allow(clippy::declare_interior_mutable_const)]
const SLOT: Slot = Slot {
    gate: gate::Gate {
        gen: AtomicU32::new(0),
        pins: AtomicU32::new(0),
    },
    active: AtomicU32::new(0),
    parent: AtomicU32::new(NONE),
    next_in_root: AtomicU32::new(NONE),
    allocs: AtomicU64::new(0),
    reallocs: AtomicU64::new(0),
    deallocs: AtomicU64::new(0),
    bytes_allocated: AtomicU64::new(0),
    bytes_freed: AtomicU64::new(0),
    live_blocks: AtomicI64::new(0),
    live_bytes: AtomicI64::new(0),
    peak_bytes: AtomicI64::new(0),
    foreign_frees: AtomicU64::new(0),
    first_stack: AtomicU32::new(u32::MAX),
    dropped: AtomicU64::new(0),
    lock: SpinLock::new(),
    sites: AtomicPtr::new(core::ptr::null_mut()),
    nsites: UnsafeCell::new(0),
};

static TABLE: [Slot; SLOTS] = [SLOT; SLOTS];
static FREE_LOCK: SpinLock = SpinLock::new();
/// Slot in use (bit per slot), under FREE_LOCK.
static USED: [AtomicU64; SLOTS / 64] = [const { AtomicU64::new(0) }; SLOTS / 64];

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
    let s = &TABLE[(h & (SLOTS as u32 - 1)) as usize];
    (s.gate.gen() == h >> SLOT_BITS).then_some(s)
}

/// The innermost scope of this thread, 0 if none.
#[inline]
pub(crate) fn current() -> u32 {
    CURRENT.try_with(Cell::get).unwrap_or(NONE)
}

/// Starts a scope nested in this thread's current one (if any). `None`
/// when all slots are in use.
pub(crate) fn begin() -> Option<u32> {
    let parent = current();
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
    for c in [
        &s.allocs,
        &s.reallocs,
        &s.deallocs,
        &s.bytes_allocated,
        &s.bytes_freed,
        &s.foreign_frees,
        &s.dropped,
    ] {
        c.store(0, Ordering::Relaxed);
    }
    for c in [&s.live_blocks, &s.live_bytes, &s.peak_bytes] {
        c.store(0, Ordering::Relaxed);
    }
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
    s.active.store(1, Ordering::Relaxed);
    // Link into the root's nest so that the root's end releases it.
    let root = root_of(parent);
    if let Some(r) = slot_of(root) {
        s.next_in_root
            .store(r.next_in_root.swap(h, Ordering::AcqRel), Ordering::Relaxed);
    } else {
        s.next_in_root.store(NONE, Ordering::Relaxed);
    }
    s.gate.open(gen);
    enter(h);
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

/// Makes `h` this thread's current scope (for `attach`); returns the one it
/// replaces.
pub(crate) fn enter(h: u32) -> u32 {
    let prev = CURRENT.try_with(|c| c.replace(h)).unwrap_or(NONE);
    crate::sampler::force_slow_path();
    prev
}

/// Restores `prev` as this thread's scope after `enter`.
pub(crate) fn leave(prev: u32) {
    let _ = CURRENT.try_with(|c| c.set(prev));
    if prev == NONE {
        crate::sampler::resume_sampling();
    }
}

/// Ends scope `h` (begun on this thread): stops charging it. A root scope
/// releases its whole nest.
pub(crate) fn end(h: u32) {
    let Some(s) = slot_of(h) else { return };
    s.active.store(0, Ordering::Release);
    leave(s.parent.load(Ordering::Relaxed));
    if s.parent.load(Ordering::Relaxed) != NONE {
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

/// Active scopes from `h` up its ancestors, with their handles. Each is
/// pinned while `f` charges it, so a concurrent release and reuse of its
/// slot never sees the charge (see `gate`); a stale handle ends the walk.
fn for_active(mut h: u32, mut f: impl FnMut(u32, &'static Slot)) {
    while h != NONE {
        let s = &TABLE[(h & (SLOTS as u32 - 1)) as usize];
        if !s.gate.pin(h >> SLOT_BITS) {
            return;
        }
        if s.active.load(Ordering::Acquire) != 0 {
            f(h, s);
        }
        let parent = s.parent.load(Ordering::Relaxed);
        s.gate.unpin();
        h = parent;
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

fn add_site(s: &Slot, stack: StackId, size: u64, alloc: bool) {
    let _g = s.lock.lock();
    let mut table = s.sites.load(Ordering::Relaxed);
    if table.is_null() {
        table = arena::alloc_zeroed(SITES * core::mem::size_of::<Site>(), 8).cast();
        if table.is_null() {
            s.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        s.sites.store(table, Ordering::Relaxed);
    }
    // Open addressing keyed by (stack, size); `size == 0` marks an empty
    // entry (no allocation has size 0). Slots are reused, so `begin`
    // clears the table lazily: see `clear_sites`.
    // SAFETY: we hold the slot lock; the table has SITES entries.
    unsafe {
        let n = &mut *s.nsites.get();
        let sites = core::slice::from_raw_parts_mut(table, SITES);
        let h = (u64::from(stack) ^ size.rotate_left(29)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        let mut i = (h >> 54) as usize & (SITES - 1);
        loop {
            let e = &mut sites[i];
            if e.size == size && e.stack == stack {
                if alloc {
                    e.allocs += 1
                } else {
                    e.frees += 1
                }
                return;
            }
            if e.size == 0 {
                if *n * 8 >= SITES * 7 {
                    s.dropped.fetch_add(1, Ordering::Relaxed);
                    return;
                }
                *e = Site {
                    stack,
                    size,
                    allocs: u64::from(alloc),
                    frees: u64::from(!alloc),
                };
                *n += 1;
                return;
            }
            i = (i + 1) & (SITES - 1);
        }
    }
}

/// Empties a slot's site table for a new scope (caller holds the lock).
///
/// # Safety
/// The caller holds `s.lock`.
unsafe fn clear_sites(s: &Slot) {
    let table = s.sites.load(Ordering::Relaxed);
    // SAFETY: lock held (caller); the table has SITES entries.
    unsafe {
        if !table.is_null() && *s.nsites.get() > 0 {
            core::ptr::write_bytes(table, 0, SITES);
        }
        *s.nsites.get() = 0;
    }
}

fn grow_live(s: &Slot, bytes: i64) {
    let now = s.live_bytes.fetch_add(bytes, Ordering::Relaxed) + bytes;
    s.peak_bytes.fetch_max(now, Ordering::Relaxed);
}

/// A block of `size` bytes at `stack` was allocated in scope `h`: every
/// active scope from `h` up owns it. Inside a realloc, the scopes that
/// `realloc_done` accounts only update their sites here.
pub(crate) fn on_alloc(h: u32, stack: StackId, size: u64) {
    let r = realloc_scope();
    for_active(h, |sh, s| {
        add_site(s, stack, size, true);
        if in_chain(sh, r) {
            return;
        }
        s.first_stack
            .compare_exchange(u32::MAX, stack, Ordering::Relaxed, Ordering::Relaxed)
            .ok();
        s.allocs.fetch_add(1, Ordering::Relaxed);
        s.bytes_allocated.fetch_add(size, Ordering::Relaxed);
        s.live_blocks.fetch_add(1, Ordering::Relaxed);
        grow_live(s, size as i64);
    });
}

/// A block owned by scope `h` was freed (on any thread): every active
/// scope from `h` up loses it. Inside a realloc, the scopes of the
/// realloc's own chain are accounted by `realloc_done` instead; owners
/// outside that chain (the block moved to an unrelated scope) see a free.
pub(crate) fn on_free(h: u32, stack: StackId, size: u64) {
    let r = realloc_scope();
    for_active(h, |sh, s| {
        add_site(s, stack, size, false);
        if in_chain(sh, r) {
            return;
        }
        s.deallocs.fetch_add(1, Ordering::Relaxed);
        s.bytes_freed.fetch_add(size, Ordering::Relaxed);
        s.live_blocks.fetch_sub(1, Ordering::Relaxed);
        s.live_bytes.fetch_sub(size as i64, Ordering::Relaxed);
    });
}

/// A block whose scope handle is `owner` (0: none) was freed on this
/// thread: each active scope of this thread's chain that does not own it
/// counts a foreign free. Not inside a realloc: `realloc_done` counts it.
pub(crate) fn on_foreign_free(owner: u32) {
    let cur = current();
    if cur == NONE || realloc_scope() != NONE {
        return;
    }
    for_active(cur, |sh, s| {
        if !in_chain(sh, owner) {
            s.foreign_frees.fetch_add(1, Ordering::Relaxed);
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
}

/// Accounts a realloc of `old_size` → `new_size` bytes in every active
/// scope of the current chain, each by its own ownership: a scope owns the
/// old block when `old_owner` (the old block's scope handle, 0 for an
/// unrecorded block) is it or a descendant. `tracked`: the new block is
/// recorded (served from the region, owned by the current scope); it is
/// not when the region was full and the inner allocator served it.
pub(crate) fn realloc_done(ok: bool, old_owner: u32, old_size: u64, new_size: u64, tracked: bool) {
    let _ = IN_REALLOC.try_with(|c| c.set(NONE));
    if !ok {
        return;
    }
    for_active(current(), |sh, s| {
        s.reallocs.fetch_add(1, Ordering::Relaxed);
        match (in_chain(sh, old_owner), tracked) {
            (true, true) => {
                if new_size >= old_size {
                    s.bytes_allocated
                        .fetch_add(new_size - old_size, Ordering::Relaxed);
                    grow_live(s, (new_size - old_size) as i64);
                } else {
                    s.bytes_freed
                        .fetch_add(old_size - new_size, Ordering::Relaxed);
                    s.live_bytes
                        .fetch_sub((old_size - new_size) as i64, Ordering::Relaxed);
                }
            }
            (true, false) => {
                // The block left the scope's view: its old bytes are gone.
                s.bytes_freed.fetch_add(old_size, Ordering::Relaxed);
                s.live_blocks.fetch_sub(1, Ordering::Relaxed);
                s.live_bytes.fetch_sub(old_size as i64, Ordering::Relaxed);
                s.dropped.fetch_add(1, Ordering::Relaxed);
            }
            (false, true) => {
                // A block the scope did not own: its new incarnation is.
                s.foreign_frees.fetch_add(1, Ordering::Relaxed);
                s.bytes_allocated.fetch_add(new_size, Ordering::Relaxed);
                s.live_blocks.fetch_add(1, Ordering::Relaxed);
                grow_live(s, new_size as i64);
            }
            (false, false) => {
                s.foreign_frees.fetch_add(1, Ordering::Relaxed);
                s.dropped.fetch_add(1, Ordering::Relaxed);
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

/// Reads scope `h` (allocates: the caller is busy).
pub(crate) fn snapshot(h: u32) -> Option<Snapshot> {
    let s = slot_of(h)?;
    let u = |a: &AtomicU64| a.load(Ordering::Relaxed) as i64;
    let i = |a: &AtomicI64| a.load(Ordering::Relaxed);
    let counts = [
        u(&s.allocs),
        u(&s.reallocs),
        u(&s.deallocs),
        u(&s.bytes_allocated),
        u(&s.bytes_freed),
        i(&s.live_blocks),
        i(&s.live_bytes),
        i(&s.peak_bytes),
        u(&s.foreign_frees),
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
            // SAFETY: we hold the slot lock; the table has SITES entries.
            let all = unsafe { core::slice::from_raw_parts(table, SITES) };
            sites.extend(
                all.iter()
                    .filter(|e| e.size != 0)
                    .map(|e| (e.stack, e.size, e.allocs, e.frees)),
            );
        }
    }
    Some(Snapshot {
        counts,
        first_stack: (first != u32::MAX).then_some(first),
        sites,
        dropped: u(&s.dropped) as u64,
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
