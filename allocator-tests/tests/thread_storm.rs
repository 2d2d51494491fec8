//! Thousands of short-lived threads whose thread-local destructors
//! allocate and free (a `thread_local!` whose `Drop` allocates a `Vec` and
//! a `Box`), at rate 1 and at the default rate: no crash, no hang (a
//! watchdog aborts the binary after 120 s), the destructors' allocations
//! are recorded (exactly at rate 1, within 5 SD at the default rate; 5.7e-7
//! false failures per check, 2 checks) and their in-use is 0 afterwards.
//!
//! Its own binary because thread start and teardown are process-wide
//! concerns and it sets the rate; its tests take `rate_lock`.

use allocator_tests::*;
use std::alloc::System;
use std::cell::RefCell;

#[global_allocator]
static A: memprof::Sampled<System> = memprof::Sampled::new(System);

const THREADS: usize = 2000;
const BATCH: usize = 50;

/// Sizes the destructor allocates: (Vec, Box) per test.
const SMALL: (usize, usize) = (333, 77);
const LARGE: (usize, usize) = (60_000, 300_000);

struct AllocatesOnDrop {
    large: bool,
}

impl Drop for AllocatesOnDrop {
    fn drop(&mut self) {
        if self.large {
            tls_dtor_allocs_large();
        } else {
            tls_dtor_allocs_small();
        }
    }
}

#[inline(never)]
fn tls_dtor_allocs_small() {
    let v = vec![1u8; SMALL.0];
    let b = Box::new([2u8; SMALL.1]);
    std::hint::black_box((&v, &b));
}

#[inline(never)]
fn tls_dtor_allocs_large() {
    let v = vec![1u8; LARGE.0];
    let b: Box<[u8]> = vec![2u8; LARGE.1].into_boxed_slice();
    std::hint::black_box((&v, &b));
}

thread_local! {
    static ON_EXIT: RefCell<Option<AllocatesOnDrop>> = const { RefCell::new(None) };
}

/// Runs `THREADS` threads, `BATCH` at a time, each arming the destructor
/// and allocating a little itself.
fn storm(large: bool) {
    for _ in 0..THREADS / BATCH {
        let hs: Vec<_> = (0..BATCH)
            .map(|i| {
                std::thread::spawn(move || {
                    ON_EXIT.with(|g| *g.borrow_mut() = Some(AllocatesOnDrop { large }));
                    std::hint::black_box(vec![i as u8; 100]);
                })
            })
            .collect();
        for h in hs {
            h.join().expect("thread panicked");
        }
    }
}

#[test]
fn tls_destructors_that_allocate_are_recorded_exactly_at_rate_1() {
    let _rate = rate_lock();
    let _watchdog = watchdog(120, "thread storm at rate 1");
    memprof::set_rate(1);
    storm(false);
    let p = memprof::heap_profile();
    let n = THREADS as u64;
    let (v, b) = (SMALL.0 as u64, SMALL.1 as u64);
    assert_eq!(
        record_sum(&p, "tls_dtor_allocs_small", Some(v)),
        [n, n * v, 0, 0]
    );
    assert_eq!(
        record_sum(&p, "tls_dtor_allocs_small", Some(b)),
        [n, n * b, 0, 0]
    );
    assert_eq!(p.dropped_samples(), 0);
}

#[test]
fn tls_destructors_that_allocate_are_estimated_at_the_default_rate() {
    let _rate = rate_lock();
    let _watchdog = watchdog(120, "thread storm at the default rate");
    memprof::set_rate(memprof::DEFAULT_RATE);
    storm(true);
    let p = memprof::heap_profile();
    let rate = memprof::DEFAULT_RATE as u64;
    for size in [LARGE.0 as u64, LARGE.1 as u64] {
        let [_, alloc_b, inuse_o, inuse_b] = record_sum(&p, "tls_dtor_allocs_large", Some(size));
        // 2000 × 60 000 B: SD 6.4%; 2000 × 300 000 B: SD 2.5%.
        let truth = (THREADS as u64 * size) as f64;
        let sd = estimate_sd(std::iter::repeat_n(size, THREADS), rate);
        assert!(
            (alloc_b as f64 - truth).abs() <= 5.0 * sd,
            "{size}-byte blocks: estimate {alloc_b} vs {truth} (SD {sd:.0})"
        );
        assert_eq!((inuse_o, inuse_b), (0, 0), "{size}-byte blocks in use");
    }
}
