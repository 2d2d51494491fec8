//! Thousands of short threads whose TLS destructors allocate and free.
use allocator_tests::*;
use std::alloc::System;
use std::cell::RefCell;

#[global_allocator]
static A: memprof::Sampled<System> = memprof::Sampled::new(System);

struct AllocatesOnDrop(u8);

impl Drop for AllocatesOnDrop {
    fn drop(&mut self) {
        tls_dtor_alloc(self.0);
    }
}

#[inline(never)]
fn tls_dtor_alloc(x: u8) {
    let v = vec![x; 333];
    let b = Box::new([x; 77]);
    std::hint::black_box((&v, &b));
}

thread_local! {
    static GUARD: RefCell<Option<AllocatesOnDrop>> = const { RefCell::new(None) };
}

#[test]
fn tls_destructors_that_allocate_are_recorded_without_crash() {
    watchdog(120, "thread storm");
    memprof::set_rate(1);
    let n = 2000;
    for batch in 0..(n / 50) {
        let hs: Vec<_> = (0..50)
            .map(|i| {
                std::thread::spawn(move || {
                    GUARD.with(|g| *g.borrow_mut() = Some(AllocatesOnDrop((batch + i) as u8)));
                    let _ = vec![1u8; 100];
                })
            })
            .collect();
        for h in hs {
            h.join().unwrap();
        }
    }
    let p = memprof::heap_profile();
    assert_eq!(
        record_sum(&p, "tls_dtor_alloc", Some(333)),
        [n as u64, n as u64 * 333, 0, 0]
    );
    assert_eq!(
        record_sum(&p, "tls_dtor_alloc", Some(77)),
        [n as u64, n as u64 * 77, 0, 0]
    );
    memprof::set_rate(memprof::DEFAULT_RATE);
    let hs: Vec<_> = (0..500)
        .map(|i| {
            std::thread::spawn(move || {
                GUARD.with(|g| *g.borrow_mut() = Some(AllocatesOnDrop(i as u8)))
            })
        })
        .collect();
    for h in hs {
        h.join().unwrap();
    }
}
