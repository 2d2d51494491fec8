//! Not a timed variant: `System` behind a counter of allocations (`alloc`,
//! `alloc_zeroed` and `realloc` calls), which the churn driver runs once
//! per workload and depth before the rounds to learn how many allocations
//! the `parse` workload makes (`CHURN_ALLOCATIONS`, for the
//! every-allocation variants' `every_alloc=` check). Counts from just
//! before the clock starts to just after the result line and prints
//! `info: allocations=… reallocs=…`.
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

static ALLOCS: AtomicU64 = AtomicU64::new(0);
static REALLOCS: AtomicU64 = AtomicU64::new(0);

struct Counting;

// SAFETY: every method forwards to `System` with the same arguments (after
// a counter increment), so `System`'s guarantees are ours.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Relaxed);
        // SAFETY: the caller upholds `alloc`'s contract.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Relaxed);
        // SAFETY: the caller upholds `alloc_zeroed`'s contract.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `System` with `layout`.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        REALLOCS.fetch_add(1, Relaxed);
        // SAFETY: as in `dealloc`; the caller upholds `realloc`'s contract.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static A: Counting = Counting;
include!("churn/workload.rs");

/// Prints the counts when dropped (after the result line).
struct Report;

impl Drop for Report {
    fn drop(&mut self) {
        let (a, r) = (ALLOCS.load(Relaxed), REALLOCS.load(Relaxed));
        println!("info: allocations={} reallocs={r}", a + r);
    }
}

fn main() {
    churn::main_with(|| {
        ALLOCS.store(0, Relaxed);
        REALLOCS.store(0, Relaxed);
        Report
    });
}
