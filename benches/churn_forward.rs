//! Churn variant: a `GlobalAlloc` that only forwards to `System`, the
//! floor for any wrapping allocator (what `Sampled` at rate 0 is compared
//! to in instructions per op). Run through `cargo bench -p memprof-benches --bench churn` (or
//! `benches/instructions.sh`).
use std::alloc::{GlobalAlloc, Layout, System};

struct Forward;

// SAFETY: every method forwards to `System` with the same arguments, so
// `System`'s guarantees are ours.
unsafe impl GlobalAlloc for Forward {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller upholds `alloc`'s contract.
        unsafe { System.alloc(layout) }
    }
    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller upholds `alloc_zeroed`'s contract.
        unsafe { System.alloc_zeroed(layout) }
    }
    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `System` with `layout` (we serve nothing
        // else).
        unsafe { System.dealloc(ptr, layout) }
    }
    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: as in `dealloc`; the caller upholds `realloc`'s contract.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static A: Forward = Forward;
include!("churn/workload.rs");
fn main() {
    churn::main_with(|| ());
}
