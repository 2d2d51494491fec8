//! 8 threads allocate and free blocks of mixed sizes (small classes and
//! large blocks, with reallocs) at rate 1 while the main thread takes
//! snapshots and writes pprof and text profiles over and over. Nothing
//! hangs (a watchdog aborts the binary after 60 s), every profile written
//! mid-run is readable, and at the end, with every thread's blocks freed,
//! the threads' functions show in-use 0 and exactly the allocations made.
//!
//! Its own binary: one test, because it needs rate 1 and a quiet process
//! to count exactly.

use allocator_tests::*;
use std::alloc::System;
use std::sync::atomic::{AtomicUsize, Ordering};

#[global_allocator]
static A: memprof::Sampled<System> = memprof::Sampled::new(System);

const THREADS: usize = 8;
const OPS: usize = 20_000;
const WINDOW: usize = 64;

/// Size of the `i`th block of thread `t`: 16 B .. ~3 KiB, with every 97th
/// one a large block (over the 64 KiB small-class limit).
fn size_of(t: usize, i: usize) -> usize {
    if i.is_multiple_of(97) {
        70_000 + (t * 131 + i) % 50_000
    } else {
        16 + (t * 7919 + i * 104_729) % 3000
    }
}

/// Allocates `OPS` blocks (plus one growth `realloc` for every 10th),
/// keeping at most `WINDOW` alive, and frees them all before returning.
/// Returns how many allocations (including reallocs) it made.
#[inline(never)]
fn thread_churn(t: usize) -> usize {
    let mut live: Vec<Option<Vec<u8>>> = Vec::new();
    live.resize_with(WINDOW, || None);
    let mut allocs = 0;
    for i in 0..OPS {
        let mut v = Vec::with_capacity(size_of(t, i));
        allocs += 1;
        if i % 10 == 0 {
            v.reserve_exact(v.capacity() + 1000); // one realloc
            allocs += 1;
        }
        v.push(t as u8);
        live[i % WINDOW] = Some(v);
    }
    drop(live);
    allocs
}

#[test]
fn eight_threads_churn_while_profiles_are_written_and_end_with_exact_totals() {
    let _watchdog = watchdog(60, "threads: 8 threads churning while profiles are written");
    memprof::set_rate(1);
    let dir = temp_dir("threads");
    let done = AtomicUsize::new(0);
    let mut expected = 0;
    let mut written = 0;
    std::thread::scope(|s| {
        let workers: Vec<_> = (0..THREADS)
            .map(|t| {
                let done = &done;
                s.spawn(move || {
                    let n = thread_churn(t);
                    done.fetch_add(1, Ordering::Release);
                    n
                })
            })
            .collect();
        // The main thread writes profiles until every worker is done.
        let mut mid_run = None;
        while done.load(Ordering::Acquire) < THREADS {
            let p = memprof::heap_profile();
            p.write_pprof(std::io::sink()).unwrap();
            p.write_text(std::io::sink()).unwrap();
            if mid_run.is_none() {
                mid_run = Some(write_pprof(&p, &dir, "mid-run.pb.gz"));
                write_text(&p, &dir, "mid-run.txt");
            }
            written += 1;
        }
        for w in workers {
            expected += w.join().unwrap();
        }
        // A profile written while the threads ran is readable.
        let mid_run = mid_run.expect("no profile written while the threads ran");
        let d = go_raw(&mid_run, &["thread_churn"]);
        d.assert_go_heap_shape(1);
        go_raw_text(&dir.join("mid-run.txt"), None).assert_go_heap_shape(1);
    });
    assert!(written >= 1, "the main thread wrote {written} profiles");

    let p = memprof::heap_profile();
    let t = record_sum(&p, "thread_churn", None);
    let expected_bytes: usize = (0..THREADS)
        .flat_map(|t| (0..OPS).map(move |i| (t, i)))
        .map(|(t, i)| {
            let s = size_of(t, i);
            if i % 10 == 0 {
                s + (s + 1000)
            } else {
                s
            }
        })
        .sum::<usize>()
        + THREADS * WINDOW * std::mem::size_of::<Option<Vec<u8>>>();
    // + the `live` table of each thread: one allocation.
    assert_eq!(t[0], (expected + THREADS) as u64, "alloc objects");
    assert_eq!(t[1], expected_bytes as u64, "alloc bytes");
    assert_eq!(t[2], 0, "in-use objects after every block was freed");
    assert_eq!(t[3], 0, "in-use bytes after every block was freed");
    assert_eq!(p.dropped_samples(), 0);

    let d = go_raw(&write_pprof(&p, &dir, "end.pb.gz"), &["thread_churn"]);
    let t = t.map(|v| v as i64);
    assert_eq!(d.sum("thread_churn", None), t, "go tool pprof");
}
