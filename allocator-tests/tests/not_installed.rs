//! A test binary WITHOUT `memprof::Sampled` as its global allocator: every
//! test helper must panic, saying so, instead of seeing no allocation and
//! passing (regression: `measure` returned zeros and `assert_no_alloc` /
//! `assert_no_leaks` passed on closures that allocate and leak).

use std::panic::{catch_unwind, AssertUnwindSafe};

const WHY: &str = "memprof::Sampled is not the global allocator of this binary";

fn panic_message(f: impl FnOnce()) -> String {
    let err = catch_unwind(AssertUnwindSafe(f)).expect_err("the helper did not panic");
    err.downcast_ref::<String>()
        .cloned()
        .or_else(|| err.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_default()
}

#[test]
fn measure_panics_instead_of_counting_zero() {
    let msg = panic_message(|| {
        let m = memprof::measure(|| vec![0u8; 100]);
        eprintln!("measure returned {}", m.stats);
    });
    assert!(msg.contains(WHY), "{msg}");
    assert!(msg.contains("measure()"), "{msg}");
}

#[test]
fn assert_no_alloc_panics_instead_of_passing() {
    let msg = panic_message(|| {
        memprof::assert_no_alloc(|| std::hint::black_box(Box::new(7)));
    });
    assert!(msg.contains(WHY), "{msg}");
    assert!(msg.contains("assert_no_alloc()"), "{msg}");
}

#[test]
fn assert_no_leaks_panics_instead_of_passing() {
    let msg = panic_message(|| {
        memprof::assert_no_leaks(|| std::mem::forget(vec![0u8; 10]));
    });
    assert!(msg.contains(WHY), "{msg}");
    assert!(msg.contains("assert_no_leaks()"), "{msg}");
}

#[test]
fn allocs_per_run_and_dump_on_panic_panic_too() {
    let msg = panic_message(|| {
        let _ = memprof::allocs_per_run(3, || drop(std::hint::black_box(vec![1u8; 3])));
    });
    assert!(msg.contains(WHY), "{msg}");
    let msg = panic_message(|| drop(memprof::dump_on_panic()));
    assert!(msg.contains(WHY), "{msg}");
}
