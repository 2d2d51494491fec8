//! A rate change mid-run: every sample keeps the weight of the rate it was
//! taken at (Go rescales everything with the rate at write time, which is
//! wrong after a change), rate 0 records nothing new but still records
//! frees, and threads that are already running see a change at once.
//!
//! Its own binary because the rate is process-wide; its tests take
//! `rate_lock` so they never overlap. Sampled estimates are checked within
//! 5 standard deviations (`estimate_sd`; 5.7e-7 false failures per check,
//! 2 checks here), and the threads are seeded, so runs repeat.

use allocator_tests::*;
use std::sync::mpsc;

#[global_allocator]
static A: memprof::Sampled<std::alloc::System> = memprof::Sampled::new(std::alloc::System);

const RATE_64K: usize = 64 * 1024;

fn assert_within_5_sd(what: &str, est: u64, truth: u64, sd: f64) {
    let (est, truth) = (est as f64, truth as f64);
    assert!(
        (est - truth).abs() <= 5.0 * sd + 1.0,
        "{what}: estimate {est} vs truth {truth} ({:+.2} SD, SD {:.1}% of the truth)",
        (est - truth) / sd,
        100.0 * sd / truth
    );
}

/// `n` blocks of `size` bytes, kept live.
fn blocks(n: usize, size: usize, out: &mut Vec<Vec<u8>>) {
    for _ in 0..n {
        out.push(Vec::with_capacity(size));
    }
}

#[inline(never)]
fn set_a_at_rate_1(out: &mut Vec<Vec<u8>>) {
    blocks(500, 1500, out);
    keep_frame();
}

#[inline(never)]
fn set_b_at_64k(out: &mut Vec<Vec<u8>>) {
    blocks(32_768, 2048, out); // 64 MiB: SD sqrt(R·B) = 2 MiB, 3.1%
    keep_frame();
}

#[test]
fn exact_samples_keep_weight_1_after_switching_to_a_sampled_rate() {
    let _rate = rate_lock();
    memprof::__private::seed_thread(0xc4a1);
    let mut kept = Vec::with_capacity(40_000);
    memprof::set_rate(1);
    set_a_at_rate_1(&mut kept);
    memprof::set_rate(RATE_64K);
    set_b_at_64k(&mut kept);

    let p = memprof::heap_profile();
    assert_eq!(p.rate(), RATE_64K);
    // Rescaled with the rate at write time (Go's way), set A would read as
    // 500 / (1 − e^(−1500/65536)) ≈ 22 000 objects.
    let a = record_sum(&p, "set_a_at_rate_1", Some(1500));
    assert_eq!(a, [500, 750_000, 500, 750_000], "set A, sampled at rate 1");
    let b = record_sum(&p, "set_b_at_64k", Some(2048));
    let sd = estimate_sd(std::iter::repeat_n(2048, 32_768), RATE_64K as u64);
    assert_within_5_sd("set B, in-use bytes", b[3], 64 << 20, sd);

    // The written profile says the same.
    let f = write_pprof(&p, &temp_dir("rate-change-up"), "heap.pb.gz");
    for d in decode_both(&f, &["set_a_at_rate_1", "set_b_at_64k"]) {
        d.assert_go_heap_shape(RATE_64K as i64);
        assert_eq!(
            d.sum("set_a_at_rate_1", Some(1500)),
            [500, 750_000, 500, 750_000],
            "{}",
            d.reader
        );
        assert_eq!(
            d.sum("set_b_at_64k", Some(2048)),
            b.map(|v| v as i64),
            "{}",
            d.reader
        );
    }

    // Later rate changes do not rescale what was sampled.
    memprof::set_rate(0);
    let q = memprof::heap_profile();
    assert_eq!(q.rate(), 0);
    assert_eq!(record_sum(&q, "set_a_at_rate_1", Some(1500)), a);
    assert_eq!(record_sum(&q, "set_b_at_64k", Some(2048)), b);
    memprof::set_rate(3);
    assert_eq!(
        record_sum(&memprof::heap_profile(), "set_b_at_64k", Some(2048)),
        b
    );
}

#[inline(never)]
fn set_c_at_64k(out: &mut Vec<Vec<u8>>) {
    blocks(65_536, 1024, out); // 64 MiB: SD 3.1%
    keep_frame();
}

#[inline(never)]
fn set_d_at_rate_1(out: &mut Vec<Vec<u8>>) {
    blocks(700, 333, out);
    keep_frame();
}

#[test]
fn sampled_estimates_keep_their_rate_after_switching_to_rate_1() {
    let _rate = rate_lock();
    memprof::__private::seed_thread(0xc4a2);
    let mut kept = Vec::with_capacity(70_000);
    memprof::set_rate(RATE_64K);
    set_c_at_64k(&mut kept);
    // The first allocation after the change is judged at rate 1 already.
    memprof::set_rate(1);
    set_d_at_rate_1(&mut kept);

    let p = memprof::heap_profile();
    assert_eq!(p.rate(), 1);
    let c = record_sum(&p, "set_c_at_64k", Some(1024));
    let sd = estimate_sd(std::iter::repeat_n(1024, 65_536), RATE_64K as u64);
    // Rescaled with rate 1 (Go's way), set C would read as its raw sample
    // count, about 1/64 of the truth.
    assert_within_5_sd("set C, in-use bytes", c[3], 64 << 20, sd);
    assert_eq!(
        record_sum(&p, "set_d_at_rate_1", Some(333)),
        [700, 233_100, 700, 233_100]
    );
    let f = write_pprof(&p, &temp_dir("rate-change-down"), "heap.pb.gz");
    for d in decode_both(&f, &["set_c_at_64k", "set_d_at_rate_1"]) {
        d.assert_go_heap_shape(1);
        assert_eq!(
            d.sum("set_c_at_64k", Some(1024)),
            c.map(|v| v as i64),
            "{}",
            d.reader
        );
        assert_eq!(
            d.sum("set_d_at_rate_1", Some(333)),
            [700, 233_100, 700, 233_100],
            "{}",
            d.reader
        );
    }
}

#[inline(never)]
fn set_e_at_rate_1(out: &mut Vec<Vec<u8>>) {
    blocks(100, 4444, out);
    keep_frame();
}

#[inline(never)]
fn set_f_at_rate_0(out: &mut Vec<Vec<u8>>) {
    blocks(1000, 555, out);
    blocks(3, 1 << 20, out);
    keep_frame();
}

#[test]
fn rate_0_records_nothing_new_but_still_records_frees() {
    let _rate = rate_lock();
    let mut e = Vec::with_capacity(100);
    let mut f = Vec::with_capacity(1003);
    memprof::set_rate(1);
    set_e_at_rate_1(&mut e);
    memprof::set_rate(0);
    set_f_at_rate_0(&mut f);
    drop(e);
    let p = memprof::heap_profile();
    assert_eq!(
        record_sum(&p, "set_e_at_rate_1", Some(4444)),
        [100, 444_400, 0, 0],
        "frees of blocks sampled earlier are recorded at rate 0"
    );
    let mut f_filter = FnFilter::new("set_f_at_rate_0");
    assert_eq!(
        p.records().filter(|r| f_filter.matches(r)).count(),
        0,
        "nothing is recorded at rate 0"
    );
    drop(f);
}

#[inline(never)]
fn waiting_thread_allocs(n: usize, size: usize) -> Vec<Vec<u8>> {
    let mut out = Vec::with_capacity(n);
    blocks(n, size, &mut out);
    out
}

/// Starts a thread that allocates (so its countdown is drawn at the rate in
/// force), then blocks on a channel; returns a sender that releases it to
/// allocate `n` blocks of `size` and the handle to join it.
fn parked_thread(
    n: usize,
    size: usize,
) -> (mpsc::Sender<()>, std::thread::JoinHandle<Vec<Vec<u8>>>) {
    let (go, wait) = mpsc::channel::<()>();
    let (ready, is_ready) = mpsc::channel::<()>();
    let h = std::thread::spawn(move || {
        let warm: Vec<Vec<u8>> = (0..100).map(|_| Vec::with_capacity(100)).collect();
        drop(warm);
        ready.send(()).unwrap();
        wait.recv().unwrap();
        waiting_thread_allocs(n, size)
    });
    is_ready.recv().unwrap();
    (go, h)
}

#[test]
fn a_thread_waiting_at_the_default_rate_sees_rate_1_at_once() {
    let _rate = rate_lock();
    memprof::set_rate(memprof::DEFAULT_RATE);
    // Its countdown was drawn at 512 KiB: without the change it would
    // sample about 1 in 1700 of its next 300-byte blocks.
    let (go, h) = parked_thread(300, 888);
    memprof::set_rate(1);
    go.send(()).unwrap();
    let kept = h.join().unwrap();
    assert_eq!(
        record_sum(&memprof::heap_profile(), "waiting_thread_allocs", Some(888)),
        [300, 266_400, 300, 266_400]
    );
    drop(kept);
}

#[test]
fn a_thread_waiting_at_rate_1_sees_rate_0_at_once() {
    let _rate = rate_lock();
    memprof::set_rate(1);
    let (go, h) = parked_thread(300, 999);
    memprof::set_rate(0);
    go.send(()).unwrap();
    let kept = h.join().unwrap();
    assert_eq!(
        record_sum(&memprof::heap_profile(), "waiting_thread_allocs", Some(999)),
        [0, 0, 0, 0]
    );
    drop(kept);
}
