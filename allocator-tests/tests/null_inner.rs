//! A null from the inner allocator is passed back; nothing is recorded.
use std::alloc::{GlobalAlloc, Layout, System};

struct NullFor12345;

// SAFETY: forwards to System except for one size, for which it fails (null).
unsafe impl GlobalAlloc for NullFor12345 {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        if l.size() == 12_345 {
            return std::ptr::null_mut();
        }
        // SAFETY: forwarded contract.
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        // SAFETY: forwarded contract.
        unsafe { System.dealloc(p, l) }
    }
}

#[global_allocator]
static A: memprof::Sampled<NullFor12345> = memprof::Sampled::new(NullFor12345);

fn recorded_12345() -> u64 {
    memprof::heap_profile()
        .records()
        .filter(|r| r.object_size() == 12_345)
        .map(|r| r.sampled_allocs())
        .sum()
}

#[test]
fn null_from_inner_is_passed_back_and_not_recorded() {
    let l = Layout::from_size_align(12_345, 8).unwrap();
    memprof::set_rate(0);
    // SAFETY: non-zero layout.
    assert!(unsafe { std::alloc::alloc(l) }.is_null());
    assert_eq!(recorded_12345(), 0);
    // At 4 KiB, a 12345-byte block is sampled 95% of the time and then
    // served by memprof's region (not null, recorded); an unsampled one
    // comes back null from the inner allocator and is not recorded.
    memprof::set_rate(4096);
    let mut served = 0;
    for _ in 0..200 {
        // SAFETY: non-zero layout; freed if non-null.
        unsafe {
            let p = std::alloc::alloc(l);
            if !p.is_null() {
                served += 1;
                std::alloc::dealloc(p, l);
            }
        }
    }
    assert!(served > 150 && served < 200, "served {served}");
    assert_eq!(recorded_12345(), served);
}
