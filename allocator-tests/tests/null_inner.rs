//! An inner allocator that fails (returns null) for one size, under
//! `Sampled`: wherever the inner allocator is asked, its null is passed
//! back and nothing is recorded for it (`alloc`, `alloc_zeroed` and
//! `realloc`, which also leaves the old block valid and recorded as live).
//!
//! Sampled blocks are served by memprof's own region, not by the inner
//! allocator (see the crate docs), so at rate 1 the inner allocator is never
//! asked and its refusal is not seen: the block is served and recorded.
//! That is checked too, as the documented behaviour.
//!
//! Its own binary because the inner allocator is the global one; its tests
//! set the rate and take `rate_lock`. Raw `std::alloc` calls, not `Vec`,
//! so that a null is observed rather than turned into an abort.

use allocator_tests::*;
use std::alloc::{GlobalAlloc, Layout, System};

/// The size the inner allocator refuses.
const REFUSED: usize = 12_345;

struct RefusesOneSize;

// SAFETY: forwards every call to System, except that requests for exactly
// `REFUSED` bytes fail with null, which `GlobalAlloc` allows.
unsafe impl GlobalAlloc for RefusesOneSize {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        if l.size() == REFUSED {
            return std::ptr::null_mut();
        }
        // SAFETY: the caller upholds `alloc`'s contract.
        unsafe { System.alloc(l) }
    }
    unsafe fn alloc_zeroed(&self, l: Layout) -> *mut u8 {
        if l.size() == REFUSED {
            return std::ptr::null_mut();
        }
        // SAFETY: the caller upholds `alloc_zeroed`'s contract.
        unsafe { System.alloc_zeroed(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        // SAFETY: the caller upholds `dealloc`'s contract; every block we
        // hand out comes from System.
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new_size: usize) -> *mut u8 {
        if new_size == REFUSED {
            return std::ptr::null_mut();
        }
        // SAFETY: the caller upholds `realloc`'s contract.
        unsafe { System.realloc(p, l, new_size) }
    }
}

#[global_allocator]
static A: memprof::Sampled<RefusesOneSize> = memprof::Sampled::new(RefusesOneSize);

fn refused() -> Layout {
    Layout::from_size_align(REFUSED, 8).unwrap()
}

/// Samples of `REFUSED`-byte objects recorded so far (raw, unscaled).
fn recorded_refused() -> u64 {
    memprof::heap_profile()
        .records()
        .filter(|r| r.object_size() == REFUSED as u64)
        .map(|r| r.sampled_allocs())
        .sum()
}

#[inline(never)]
fn alloc_refused(zeroed: bool) -> *mut u8 {
    // SAFETY: non-zero layout.
    unsafe {
        if zeroed {
            std::alloc::alloc_zeroed(refused())
        } else {
            std::alloc::alloc(refused())
        }
    }
}

#[test]
fn at_rate_0_null_from_alloc_and_alloc_zeroed_is_passed_back_and_not_recorded() {
    let _rate = rate_lock();
    memprof::set_rate(0);
    let before = recorded_refused();
    for zeroed in [false, true] {
        for _ in 0..100 {
            assert!(alloc_refused(zeroed).is_null(), "zeroed: {zeroed}");
        }
    }
    assert_eq!(recorded_refused(), before);
}

#[inline(never)]
fn block_sampled_at_rate_1() -> (*mut u8, Layout) {
    let l = Layout::from_size_align(2000, 8).unwrap();
    // SAFETY: non-zero layout; checked for null; 2000 bytes written.
    unsafe {
        let p = std::alloc::alloc(l);
        assert!(!p.is_null());
        p.write_bytes(0x3C, l.size());
        (p, l)
    }
}

#[test]
fn a_realloc_the_inner_allocator_refuses_returns_null_and_keeps_the_old_block() {
    let _rate = rate_lock();
    // A block sampled at rate 1 (served by memprof's region), then a
    // realloc at rate 0, which must ask the inner allocator for the new one.
    memprof::set_rate(1);
    let (p, l) = block_sampled_at_rate_1();
    memprof::set_rate(0);
    let before = recorded_refused();
    // SAFETY: `p` was allocated with `l`; REFUSED is non-zero.
    let q = unsafe { std::alloc::realloc(p, l, REFUSED) };
    assert!(q.is_null(), "the inner allocator's null is passed back");
    // SAFETY: a failed realloc leaves `p` valid with its contents.
    let intact = unsafe { std::slice::from_raw_parts(p, l.size()) }
        .iter()
        .all(|&b| b == 0x3C);
    assert!(intact, "the old block keeps its contents");
    let profile = memprof::heap_profile();
    assert_eq!(
        record_sum(&profile, "block_sampled_at_rate_1", Some(2000)),
        [1, 2000, 1, 2000],
        "the old block is still recorded as live"
    );
    assert_eq!(
        recorded_refused(),
        before,
        "nothing recorded for the refusal"
    );

    // An unsampled block (rate 0, from the inner allocator) likewise.
    // SAFETY: non-zero layout; freed below.
    let r = unsafe { std::alloc::alloc(l) };
    assert!(!r.is_null());
    // SAFETY: `r` was allocated with `l`.
    assert!(unsafe { std::alloc::realloc(r, l, REFUSED) }.is_null());
    // SAFETY: both blocks are live and were allocated with `l`.
    unsafe {
        std::alloc::dealloc(r, l);
        std::alloc::dealloc(p, l);
    }
    assert_eq!(
        record_sum(
            &memprof::heap_profile(),
            "block_sampled_at_rate_1",
            Some(2000)
        ),
        [1, 2000, 0, 0]
    );
}

#[test]
fn at_a_sampled_rate_unsampled_requests_get_null_and_sampled_ones_a_recorded_block() {
    let _rate = rate_lock();
    // At 4 KiB a 12 345-byte request is sampled with p = 1 − e^(−12345/4096)
    // = 0.951: sampled ones are served by the region and recorded, the
    // others reach the inner allocator and get its null. Over 1000
    // requests both happen (P(no null) = 0.951^1000 < 1e-21).
    memprof::set_rate(4096);
    memprof::__private::seed_thread(0x0dd);
    let before = recorded_refused();
    let (mut served, mut nulls) = (0u64, 0u64);
    for i in 0..1000 {
        let p = alloc_refused(i % 2 == 1);
        if p.is_null() {
            nulls += 1;
        } else {
            served += 1;
            // SAFETY: a live block of the refused layout.
            unsafe { std::alloc::dealloc(p, refused()) };
        }
    }
    assert!(served > 0 && nulls > 0, "served {served}, null {nulls}");
    assert_eq!(
        recorded_refused() - before,
        served,
        "exactly the served requests are recorded"
    );
}

#[test]
fn at_rate_1_the_region_serves_the_size_the_inner_allocator_refuses() {
    let _rate = rate_lock();
    memprof::set_rate(1);
    let before = recorded_refused();
    for zeroed in [false, true] {
        let p = alloc_refused(zeroed);
        assert!(!p.is_null(), "zeroed: {zeroed}");
        // SAFETY: a live block of the refused layout.
        unsafe {
            if zeroed {
                assert!(std::slice::from_raw_parts(p, REFUSED)
                    .iter()
                    .all(|&b| b == 0));
            }
            std::alloc::dealloc(p, refused());
        }
    }
    assert_eq!(recorded_refused() - before, 2);
}
