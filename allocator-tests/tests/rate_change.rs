//! A rate change mid-run: each sample keeps the weight of the rate it was
//! taken at, and running threads see the change at once. One `#[test]`:
//! the rate is process-wide.
use allocator_tests::*;

#[global_allocator]
static A: memprof::Sampled<std::alloc::System> = memprof::Sampled::new(std::alloc::System);

#[inline(never)]
fn exact_set() -> Vec<Vec<u8>> {
    (0..500).map(|_| Vec::with_capacity(64)).collect()
}

#[inline(never)]
fn sampled_set() -> Vec<Vec<u8>> {
    (0..400_000).map(|_| Vec::with_capacity(64)).collect()
}

#[inline(never)]
fn off_set() -> Vec<Vec<u8>> {
    (0..1000).map(|_| Vec::with_capacity(72)).collect()
}

#[inline(never)]
fn waiting_thread_set() -> Vec<Vec<u8>> {
    (0..300).map(|_| Vec::with_capacity(88)).collect()
}

#[test]
fn samples_keep_the_weight_of_their_rate() {
    // A thread that drew its countdown at rate 0, blocked until rate 1 is set.
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    memprof::set_rate(0);
    let waiter = std::thread::spawn(move || {
        let warm: Vec<u8> = Vec::with_capacity(10);
        drop(warm);
        rx.recv().unwrap();
        waiting_thread_set()
    });
    let off = off_set();
    memprof::set_rate(1);
    let exact = exact_set();
    tx.send(()).unwrap();
    let waited = waiter.join().unwrap();
    // 400k × 64 B = 25.6 MB at 16 KiB: ~1560 samples, relative SD
    // sqrt(R/B) = 2.5%; 6 SD = 15% (false failure ~2e-9).
    memprof::set_rate(16 * 1024);
    let sampled = sampled_set();
    memprof::set_rate(memprof::DEFAULT_RATE); // later changes don't rescale old samples
    let p = memprof::heap_profile();
    assert_eq!(
        record_sum(&p, "exact_set", Some(64)),
        [500, 32_000, 500, 32_000]
    );
    assert_eq!(
        record_sum(&p, "waiting_thread_set", Some(88)),
        [300, 26_400, 300, 26_400]
    );
    assert_eq!(record_sum(&p, "off_set", Some(72)), [0, 0, 0, 0]);
    let est = record_sum(&p, "sampled_set", Some(64))[3] as f64;
    let truth = 400_000.0 * 64.0;
    assert!(
        (est - truth).abs() < 0.15 * truth,
        "estimate {est} vs {truth}"
    );
    // Through go tool pprof too.
    let d = go_raw(&write_pprof(&p, &temp_dir("rate_change"), "r.pb.gz"));
    assert_eq!(d.sum("exact_set", Some(64)), [500, 32_000, 500, 32_000]);
    drop((off, exact, waited, sampled));
}
