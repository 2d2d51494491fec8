//! Estimates at a sampled rate fall within bounds derived from the sampling
//! error, and the estimator is unbiased across seeds. One `#[test]` per
//! concern would share the process-wide rate, so this binary has one.
//!
//! Bounds. For B bytes of objects much smaller than the rate R, the
//! estimate's relative standard deviation is about sqrt(R/B) (each sample
//! stands for ~R bytes; the count of samples is Poisson with mean B/R).
//! We allow 6 SD: a correct implementation fails with probability ~2e-9.
use allocator_tests::*;

#[global_allocator]
static A: memprof::Sampled<std::alloc::System> = memprof::Sampled::new(std::alloc::System);

const RATE: usize = 64 * 1024;

#[inline(never)]
fn live_set() -> Vec<Vec<u8>> {
    // 500_000 × 100 B = 50 MB live: sqrt(R/B) = 3.6%, 6 SD = 21.7%.
    (0..500_000).map(|_| Vec::with_capacity(100)).collect()
}

#[inline(never)]
fn churned_set() {
    // 1_000_000 × 200 B = 200 MB allocated and freed: sqrt(R/B) = 1.8%.
    for _ in 0..1_000_000 {
        std::hint::black_box(Vec::<u8>::with_capacity(200));
    }
}

#[inline(never)]
fn seeded_round() {
    // 20_000 × 240 B = 4.8 MB per seed.
    for _ in 0..20_000 {
        std::hint::black_box(Vec::<u8>::with_capacity(240));
    }
}

fn within(est: f64, truth: f64, rel_sd: f64, what: &str) {
    assert!(
        (est - truth).abs() <= 6.0 * rel_sd * truth,
        "{what}: estimate {est}, truth {truth}, bound 6 × {rel_sd:.4}"
    );
}

#[test]
fn estimates_are_within_sampling_error_and_unbiased() {
    memprof::set_rate(RATE);
    let live = live_set();
    churned_set();
    let p = memprof::heap_profile();
    let l = record_sum(&p, "live_set", Some(100));
    let b = 500_000.0 * 100.0;
    within(
        l[3] as f64,
        b,
        (RATE as f64 / b).sqrt(),
        "live in-use bytes",
    );
    within(l[1] as f64, b, (RATE as f64 / b).sqrt(), "live alloc bytes");
    let c = record_sum(&p, "churned_set", Some(200));
    let b = 1_000_000.0 * 200.0;
    within(
        c[1] as f64,
        b,
        (RATE as f64 / b).sqrt(),
        "churned alloc bytes",
    );
    assert_eq!(c[3], 0, "churned blocks are all freed");
    drop(live);

    // Unbiased across seeds: the mean of 100 per-seed estimates has SD
    // sqrt(R/B)/sqrt(100); allow 5 of those (false failure ~6e-7).
    let truth = 20_000.0 * 240.0;
    let seeds = 100;
    let mut prev = record_sum(&memprof::heap_profile(), "seeded_round", Some(240))[1];
    let mut sum = 0.0;
    for seed in 0..seeds {
        memprof::__private::seed_thread(0x5eed_0000 + seed);
        seeded_round();
        let now = record_sum(&memprof::heap_profile(), "seeded_round", Some(240))[1];
        sum += (now - prev) as f64;
        prev = now;
    }
    let mean = sum / seeds as f64;
    let se = (RATE as f64 / truth).sqrt() / (seeds as f64).sqrt();
    assert!(
        (mean - truth).abs() <= 5.0 * se * truth,
        "mean {mean} truth {truth} se {se}"
    );
}
