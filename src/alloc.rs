//! `Sampled<A>`: the global allocator wrapper.
//!
//! Every call forwards to the inner allocator, except the rare sampled one.
//! The fast paths are:
//!
//! - `alloc`: count the size against the thread's countdown; one branch.
//! - `dealloc`: is the pointer inside the sampled-block region? one branch.
//!
//! Everything else is `#[cold]` and out of line, so the inlined fast paths
//! stay a handful of instructions. Null from the inner allocator is passed
//! back untouched and nothing is recorded for it.

use crate::guard::Busy;
use crate::live;
use crate::sampler;
use crate::scope;
use crate::sys::region;
use core::alloc::{GlobalAlloc, Layout};
use core::ptr;
use core::sync::atomic::{AtomicBool, Ordering};

/// A global allocator that samples allocations, Go-style, and forwards
/// everything to the allocator it wraps.
///
/// ```
/// use std::alloc::System;
///
/// #[global_allocator]
/// static A: memprof::Sampled<System> = memprof::Sampled::new(System);
///
/// fn main() {
///     let v: Vec<u64> = (0..100_000).collect();
///     let profile = memprof::heap_profile();
///     println!("{} sites sampled", profile.records().len());
///     # drop(v);
/// }
/// ```
///
/// Any inner `GlobalAlloc` works (System, mimalloc, jemalloc). Sampled
/// blocks (about one per 512 KiB allocated at the default rate, all of
/// them at rate 1) are served from a reserved address range of the
/// profiler instead of the inner allocator, which is what lets `dealloc`
/// recognise them exactly with one compare; see the crate docs.
///
/// The `GlobalAlloc` contract is kept: no method unwinds, null from the
/// inner allocator is passed back, and layouts are forwarded unchanged.
pub struct Sampled<A> {
    inner: A,
    /// The inner allocator's statistics for `exact_totals`; registered by
    /// the first slow path, never read by the fast paths.
    stats: Option<crate::totals::StatsFn>,
}

impl<A> Sampled<A> {
    /// Wraps `inner`. `const`, so it can initialise a `static`. When `A`
    /// is `std::alloc::System`, [`exact_totals`](crate::exact_totals)
    /// reports glibc's in-use bytes; for another allocator, see
    /// [`with_stats`](Self::with_stats).
    pub const fn new(inner: A) -> Self {
        Sampled { inner, stats: None }
    }

    /// Wraps `inner`, an allocator that reports its own heap
    /// ([`InnerStats`](crate::InnerStats)), for
    /// [`exact_totals`](crate::exact_totals).
    ///
    /// ```
    /// #[global_allocator]
    /// static A: memprof::Sampled<std::alloc::System> =
    ///     memprof::Sampled::with_stats(std::alloc::System);
    /// # fn main() { assert!(memprof::exact_totals().inner.is_some()); }
    /// ```
    pub const fn with_stats(inner: A) -> Self
    where
        A: crate::InnerStats,
    {
        Sampled {
            inner,
            stats: Some(A::inner_stats),
        }
    }

    /// Wraps `inner`, with `stats` reporting its heap for
    /// [`exact_totals`](crate::exact_totals): for an allocator of another
    /// crate, e.g. one of [`memprof::inner`](crate::inner)'s.
    ///
    /// ```
    /// # mod tikv_jemallocator { pub use std::alloc::System as Jemalloc; } // not a dependency of these docs
    /// use tikv_jemallocator::Jemalloc;
    ///
    /// #[global_allocator]
    /// static A: memprof::Sampled<Jemalloc> =
    ///     memprof::Sampled::with_stats_from(Jemalloc, memprof::inner::jemalloc);
    ///
    /// fn main() {
    ///     // `None` unless tikv-jemallocator's `stats` feature is on.
    ///     if let Some(je) = memprof::exact_totals().inner {
    ///         assert_eq!(je.allocator, "jemalloc");
    ///     }
    /// }
    /// ```
    pub const fn with_stats_from(inner: A, stats: fn() -> Option<crate::InnerHeap>) -> Self {
        Sampled {
            inner,
            stats: Some(stats),
        }
    }

    /// The wrapped allocator.
    pub const fn inner(&self) -> &A {
        &self.inner
    }
}

// SAFETY: every method returns either what the inner allocator returned for
// the same layout, or a block from the region that is valid for the layout
// (size and alignment honoured, zeroed when asked) until it is passed back
// to `dealloc`/`realloc` here. Blocks are routed back to whoever served them
// by `region::contains`, which is exact.
unsafe impl<A: GlobalAlloc> GlobalAlloc for Sampled<A> {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if sampler::fast(layout.size()) {
            // SAFETY: the caller upholds `alloc`'s contract for `layout`.
            return unsafe { self.inner.alloc(layout) };
        }
        // SAFETY: as above.
        unsafe { self.alloc_slow(layout, false) }
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if sampler::fast(layout.size()) {
            // SAFETY: the caller upholds `alloc_zeroed`'s contract.
            return unsafe { self.inner.alloc_zeroed(layout) };
        }
        // SAFETY: as above.
        unsafe { self.alloc_slow(layout, true) }
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if region::contains(ptr) {
            // SAFETY: `ptr` is live (caller's contract) and in the region,
            // so it was served by `live::alloc_sampled`.
            return unsafe { live::free_sampled(ptr) };
        }
        // SAFETY: not ours, so the inner allocator served it with `layout`.
        unsafe { self.inner.dealloc(ptr, layout) }
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if !region::holds(ptr) && sampler::fast(new_size) {
            // SAFETY: the inner allocator served `ptr` with `layout`; the
            // caller upholds `realloc`'s contract.
            return unsafe { self.inner.realloc(ptr, layout, new_size) };
        }
        // SAFETY: as above.
        unsafe { self.realloc_slow(ptr, layout, new_size) }
    }
}

/// Set by the first slow path of any `Sampled`: some `Sampled` serves this
/// process's global allocations. Costs the fast path nothing.
static INSTALLED: AtomicBool = AtomicBool::new(false);

/// Is a `Sampled` the global allocator of this process? Once an allocation
/// has gone through a `Sampled` slow path this is one load. Before that, a
/// probe: one allocation of 1 byte with this thread's countdown forced to
/// run out (so a `Sampled` would take its slow path) and the thread marked
/// busy (so nothing is recorded), then its free. Called by the test helpers.
pub(crate) fn is_installed() -> bool {
    if INSTALLED.load(Ordering::Relaxed) {
        return true;
    }
    {
        let _busy = Busy::enter();
        sampler::force_slow_path();
        let layout = Layout::new::<u8>();
        // SAFETY: a non-zero-sized layout; the block is freed just below
        // with the same layout. `black_box` keeps the pair from being
        // optimised away.
        unsafe {
            let p = core::hint::black_box(std::alloc::alloc(layout));
            if !p.is_null() {
                std::alloc::dealloc(p, layout);
            }
        }
    }
    if scope::current() == 0 {
        // The probe's slow path (if any) drew a fresh countdown; without
        // one, leave the forced countdown to the next slow path to redraw.
        sampler::resume_sampling();
    }
    INSTALLED.load(Ordering::Relaxed)
}

/// The statistics of an inner allocator wrapped with `Sampled::new`:
/// glibc's for `System` (by its type name: `A` need not be `'static`).
fn default_stats<A>() -> Option<crate::totals::StatsFn> {
    (core::any::type_name::<A>() == "std::alloc::System").then_some(crate::inner::glibc)
}

/// The sample decision for a countdown that ran out: the environment is
/// read first (once), then the sampler judges with the thread's scope.
#[inline]
fn decide(size: usize) -> Option<sampler::Sample> {
    crate::env::init_once();
    crate::trace::tick();
    sampler::slow(size, scope::current())
}

impl<A: GlobalAlloc> Sampled<A> {
    #[cold]
    #[inline(never)]
    unsafe fn alloc_slow(&self, layout: Layout, zeroed: bool) -> *mut u8 {
        if !INSTALLED.load(Ordering::Relaxed) {
            INSTALLED.store(true, Ordering::Relaxed);
            crate::totals::register(self.stats.or_else(default_stats::<A>));
        }
        if let Some(sample) = decide(layout.size()) {
            let p = live::alloc_sampled(layout, sample, zeroed);
            if !p.is_null() {
                return p;
            }
        }
        // SAFETY: the caller upholds the contract for `layout`.
        unsafe {
            if zeroed {
                self.inner.alloc_zeroed(layout)
            } else {
                self.inner.alloc(layout)
            }
        }
    }

    /// `realloc` as a free of the old block and an allocation of the new
    /// one, for the profile; the data moves only when a block enters or
    /// leaves the region.
    #[cold]
    #[inline(never)]
    unsafe fn realloc_slow(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let old_sampled = region::holds(ptr);
        // A sampled old block skipped the countdown in the fast path.
        let sample = if old_sampled && sampler::fast(new_size) {
            None
        } else {
            decide(new_size)
        };
        let Some(s) = sample.filter(|s| s.scope != 0) else {
            // SAFETY: forwarded contract.
            return unsafe { self.realloc_move(ptr, layout, new_size, sample) };
        };
        // Inside a test scope: one realloc, not a free and an alloc, in
        // each scope of the thread's chain by its own ownership.
        let old_owner = if old_sampled {
            // SAFETY: a region pointer is a live sampled block.
            unsafe { region::meta_of(ptr) }.scope()
        } else {
            0
        };
        scope::realloc_begin();
        // SAFETY: forwarded contract.
        let new = unsafe { self.realloc_move(ptr, layout, new_size, Some(s)) };
        scope::realloc_done(
            !new.is_null(),
            old_owner,
            layout.size() as u64,
            new_size as u64,
            region::holds(new),
        );
        new
    }

    /// The data side of `realloc_slow`.
    unsafe fn realloc_move(
        &self,
        ptr: *mut u8,
        layout: Layout,
        new_size: usize,
        weight: Option<sampler::Sample>,
    ) -> *mut u8 {
        let old_sampled = region::holds(ptr);
        // SAFETY: `realloc`'s contract: `new_size`, rounded up to
        // `layout.align()`, does not overflow isize.
        let new_layout = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
        if old_sampled {
            if let Some(w) = weight {
                // SAFETY: `ptr` is a live region block.
                if unsafe { live::resample_in_place(ptr, layout.align(), new_size, w) } {
                    return ptr;
                }
            }
            let new = match weight.map(|w| live::alloc_sampled(new_layout, w, false)) {
                Some(p) if !p.is_null() => p,
                // SAFETY: `new_layout` is valid and non-zero-sized.
                _ => unsafe { self.inner.alloc(new_layout) },
            };
            if new.is_null() {
                return new; // the old block stays valid, as `realloc` requires
            }
            // SAFETY: both blocks are live, distinct, and at least this long.
            unsafe {
                ptr::copy_nonoverlapping(ptr, new, layout.size().min(new_size));
                live::free_sampled(ptr);
            }
            return new;
        }
        if let Some(w) = weight {
            let new = live::alloc_sampled(new_layout, w, false);
            if !new.is_null() {
                // SAFETY: both blocks are live, distinct, and at least this
                // long; the inner allocator served `ptr` with `layout`.
                unsafe {
                    ptr::copy_nonoverlapping(ptr, new, layout.size().min(new_size));
                    self.inner.dealloc(ptr, layout);
                }
                return new;
            }
        }
        // SAFETY: the inner allocator served `ptr` with `layout`.
        unsafe { self.inner.realloc(ptr, layout, new_size) }
    }
}
