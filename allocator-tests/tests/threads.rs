//! 8 threads allocate and free while profiles are written; no hang, exact
//! totals at rate 1.
use allocator_tests::*;
use std::alloc::System;

#[global_allocator]
static A: memprof::Sampled<System> = memprof::Sampled::new(System);

const THREADS: usize = 8;
const OPS: usize = 20_000;

#[inline(never)]
fn worker_churn(seed: usize) {
    let mut live: Vec<Option<Vec<u8>>> = (0..64).map(|_| None).collect();
    live.shrink_to_fit();
    for i in 0..OPS {
        let size = 16 + (seed * 7919 + i * 104_729) % 3000;
        live[i % 64] = Some(Vec::with_capacity(size));
    }
}

#[test]
fn eight_threads_churn_while_profiles_are_written() {
    watchdog(120, "threads test");
    memprof::set_rate(1);
    let dir = temp_dir("threads");
    let done = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|s| {
        let hs: Vec<_> = (0..THREADS)
            .map(|t| s.spawn(move || worker_churn(t)))
            .collect();
        s.spawn(|| {
            let mut n = 0;
            while !done.load(std::sync::atomic::Ordering::Relaxed) || n < 3 {
                let p = memprof::heap_profile();
                p.write_pprof(std::io::sink()).unwrap();
                p.write_text(std::io::sink()).unwrap();
                n += 1;
            }
        });
        for h in hs {
            h.join().unwrap();
        }
        done.store(true, std::sync::atomic::Ordering::Relaxed);
    });
    let p = memprof::heap_profile();
    let t = record_sum(&p, "worker_churn", None);
    // Each op allocates one Vec buffer (the `live` table's own buffer too).
    assert_eq!(t[0], (THREADS * (OPS + 1)) as u64, "alloc objects");
    assert_eq!(t[2], 0, "in-use objects after all threads ended");
    assert_eq!(t[3], 0, "in-use bytes");
    let d = go_raw(&write_pprof(&p, &dir, "t.pb.gz"));
    assert_eq!(d.sum("worker_churn", None)[0], (THREADS * (OPS + 1)) as i64);
}
