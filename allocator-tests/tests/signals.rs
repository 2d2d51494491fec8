//! A signal handler that allocates and frees, interrupting a thread that
//! is inside memprof (at rate 1 every allocation is, and large blocks hold
//! the large-run lock, across `madvise` when a purge runs): it must neither
//! deadlock nor corrupt the region.
//!
//! A sender thread `pthread_kill`s the worker every few microseconds; the
//! handler frees the blocks the previous handler left (one small, one
//! large) and allocates new ones. Before frees inside the profiler were
//! deferred, the handler's free of a large block while the worker held the
//! large-run lock hung the process (the watchdog turns that into a
//! failure).
//!
//! Its own binary: the handler is process-wide.

use allocator_tests::watchdog;
use std::alloc::{alloc, dealloc, Layout};
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, Ordering};
use std::time::{Duration, Instant};

#[global_allocator]
static A: memprof::Sampled<std::alloc::System> = memprof::Sampled::new(std::alloc::System);

const SMALL: usize = 48;
const LARGE: usize = 100_000;
static SMALL_BLOCK: AtomicPtr<u8> = AtomicPtr::new(std::ptr::null_mut());
static LARGE_BLOCK: AtomicPtr<u8> = AtomicPtr::new(std::ptr::null_mut());
static HANDLED: AtomicU64 = AtomicU64::new(0);

fn layout(size: usize) -> Layout {
    Layout::from_size_align(size, 8).unwrap()
}

/// Frees what `slot` holds and puts a fresh block of `size` there.
fn replace(slot: &AtomicPtr<u8>, size: usize) {
    let old = slot.swap(std::ptr::null_mut(), Ordering::AcqRel);
    if !old.is_null() {
        // SAFETY: `old` came from `alloc(layout(size))` below, and the swap
        // made it ours alone.
        unsafe {
            assert_eq!(
                *old.add(size - 1),
                0xee,
                "a handler's block was overwritten"
            );
            dealloc(old, layout(size));
        }
    }
    // SAFETY: a non-zero-sized layout; the block is written within it.
    unsafe {
        let p = alloc(layout(size));
        if !p.is_null() {
            p.write_bytes(0xee, size);
        }
        slot.store(p, Ordering::Release);
    }
}

extern "C" fn on_signal(_: libc::c_int) {
    replace(&SMALL_BLOCK, SMALL);
    replace(&LARGE_BLOCK, LARGE);
    HANDLED.fetch_add(1, Ordering::Relaxed);
}

/// Small and large blocks in a window, enough large frees to trigger
/// purges (32 MiB dirty) often.
fn churn(until: Instant) -> u64 {
    let mut window: Vec<Vec<u8>> = Vec::new();
    let mut ops = 0u64;
    while Instant::now() < until {
        for i in 0..64usize {
            let size = if i % 4 == 0 {
                70_000 + i * 4096
            } else {
                16 + i * 37
            };
            let v = vec![(i as u8) | 1; size];
            window.push(v);
            ops += 1;
        }
        for (i, v) in window.iter().enumerate() {
            assert!(
                v.iter().all(|&b| b == ((i % 64) as u8) | 1),
                "block {i} corrupted"
            );
        }
        window.clear();
    }
    ops
}

#[test]
fn a_handler_that_allocates_never_deadlocks_or_corrupts() {
    let _watchdog = watchdog(120, "signal handler test (a hang is a deadlock)");
    memprof::set_rate(1);
    // SAFETY: installing a handler for SIGUSR1 with a zeroed sigaction is
    // the documented way; the handler is an `extern "C" fn(c_int)`.
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = on_signal as extern "C" fn(libc::c_int) as usize;
        sa.sa_flags = libc::SA_RESTART;
        libc::sigemptyset(&mut sa.sa_mask);
        assert_eq!(libc::sigaction(libc::SIGUSR1, &sa, std::ptr::null_mut()), 0);
    }
    let until = Instant::now() + Duration::from_secs(8);
    let stop = AtomicBool::new(false);
    let ops = std::thread::scope(|s| {
        // A second thread churns too, so the region's locks are contended.
        let other = s.spawn(|| churn(until));
        let (tid_tx, tid_rx) = std::sync::mpsc::channel();
        let worker = s.spawn(move || {
            // SAFETY: pthread_self has no preconditions.
            tid_tx.send(unsafe { libc::pthread_self() }).unwrap();
            churn(until)
        });
        let target = tid_rx.recv().unwrap();
        let stop = &stop;
        s.spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                // SAFETY: `target` is a live thread of this process until
                // `stop` is set, after it is joined.
                unsafe { libc::pthread_kill(target, libc::SIGUSR1) };
                std::thread::sleep(Duration::from_micros(20));
            }
        });
        let ops = worker.join().unwrap();
        stop.store(true, Ordering::Relaxed);
        ops + other.join().unwrap()
    });
    let handled = HANDLED.load(Ordering::Relaxed);
    eprintln!("{ops} churn ops, {handled} signals handled");
    assert!(
        handled > 1000,
        "only {handled} signals landed: the test proved little"
    );
    // Free the handler's last blocks outside any handler, then check the
    // region: free lists consistent, large runs consistent.
    for (slot, size) in [(&SMALL_BLOCK, SMALL), (&LARGE_BLOCK, LARGE)] {
        let p = slot.swap(std::ptr::null_mut(), Ordering::AcqRel);
        if !p.is_null() {
            // SAFETY: allocated by `replace` with this layout.
            unsafe { dealloc(p, layout(size)) };
        }
    }
    memprof::__private::validate_region().expect("region invariants");
    assert_eq!(memprof::__private::deferred_frees_lost(), 0);
}
