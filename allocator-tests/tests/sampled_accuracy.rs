//! At a sampled rate the profile's numbers are unbiased estimates with the
//! sampling error the math predicts: a known live set and a churned set
//! are estimated within 5 standard deviations, the mean of many seeded
//! runs sits within 5 standard errors of the truth, and the spread of those
//! runs matches the predicted standard deviation.
//!
//! The error model: every object of size s is sampled independently with
//! p = 1 − e^(−s/R) (the countdown's gaps are geometric, so this is exact)
//! and weighted 1/p, so an estimate of B bytes has the standard deviation
//! `estimate_sd` computes, sqrt(Σ s²(1 − p)/p) ≈ sqrt(R·B) for small
//! objects: a relative error of sqrt(R/B). A bound of 5 SD on a
//! near-normal estimate fails correct code with probability 5.7e-7 per
//! check (two-sided); this binary makes 12 such checks, so about 7e-6 per
//! run. The threads are seeded (`__private::seed_thread`), so a run is
//! also repeatable.
//!
//! Its own binary because it sets the process-wide rate; its tests take
//! `rate_lock` so they never overlap.

use allocator_tests::*;
use std::alloc::System;

#[global_allocator]
static A: memprof::Sampled<System> = memprof::Sampled::new(System);

/// Allowed distance from the truth, in standard deviations.
const SIGMAS: f64 = 5.0;

fn assert_within(what: &str, est: f64, truth: f64, sd: f64) {
    eprintln!("{what}: {est} vs {truth}, {:+.2} SD", (est - truth) / sd);
    assert!(
        // + 1: the accessors round each record to whole bytes.
        (est - truth).abs() <= SIGMAS * sd + 1.0,
        "{what}: estimate {est} vs truth {truth}: off by {:.2} SD (SD {sd:.0}, {:.2}% of the truth)",
        (est - truth) / sd,
        100.0 * sd / truth
    );
}

const LIVE_OBJECTS: usize = 4 << 20;
const LIVE_SIZE: usize = 64;
const CHURN_OBJECTS: usize = 4 << 20;
const CHURN_SIZE: usize = 96;

#[inline(never)]
#[allow(clippy::vec_box)] // one allocation per box is the point
fn live_set(out: &mut Vec<Box<[u8; LIVE_SIZE]>>) {
    for i in 0..LIVE_OBJECTS {
        out.push(Box::new([i as u8; LIVE_SIZE]));
    }
}

#[inline(never)]
fn churn_set() {
    for i in 0..CHURN_OBJECTS {
        let b = Box::new([i as u8; CHURN_SIZE]);
        std::hint::black_box(&b);
    }
}

#[test]
fn default_rate_estimates_a_256_mib_live_set_and_a_churned_set_within_5_sd() {
    let _rate = rate_lock();
    memprof::set_rate(memprof::DEFAULT_RATE);
    memprof::__private::seed_thread(0x5eed_0001);
    let rate = memprof::DEFAULT_RATE as u64;
    let mut live = Vec::with_capacity(LIVE_OBJECTS);
    live_set(&mut live);
    churn_set();
    let p = memprof::heap_profile();
    assert_eq!(p.rate(), memprof::DEFAULT_RATE);

    // 256 MiB of 64-byte objects: SD = sqrt(R·B) = 11.6 MiB, 4.4%.
    let live_bytes = (LIVE_OBJECTS * LIVE_SIZE) as f64;
    let live_sd = estimate_sd(std::iter::repeat_n(LIVE_SIZE as u64, LIVE_OBJECTS), rate);
    let [_, alloc_b, inuse_o, inuse_b] = record_sum(&p, "live_set", Some(LIVE_SIZE as u64));
    assert_within(
        "live set, in-use bytes",
        inuse_b as f64,
        live_bytes,
        live_sd,
    );
    assert_within("live set, alloc bytes", alloc_b as f64, live_bytes, live_sd);
    assert_within(
        "live set, in-use objects",
        inuse_o as f64,
        LIVE_OBJECTS as f64,
        live_sd / LIVE_SIZE as f64,
    );

    // 384 MiB churned in 96-byte objects: SD 3.6%. Every sampled block was
    // freed with the weight it was sampled with: in-use is exactly 0.
    let churn_bytes = (CHURN_OBJECTS * CHURN_SIZE) as f64;
    let churn_sd = estimate_sd(std::iter::repeat_n(CHURN_SIZE as u64, CHURN_OBJECTS), rate);
    let [_, alloc_b, inuse_o, inuse_b] = record_sum(&p, "churn_set", Some(CHURN_SIZE as u64));
    assert_within(
        "churned set, alloc bytes",
        alloc_b as f64,
        churn_bytes,
        churn_sd,
    );
    assert_eq!((inuse_o, inuse_b), (0, 0), "churned set, in use");

    // The pprof file carries the same numbers, at period 524288.
    let dir = temp_dir("accuracy-default");
    let f = write_pprof(&p, &dir, "heap.pb.gz");
    let d = go_raw(&f, &["live_set", "churn_set"]);
    d.assert_go_heap_shape(rate as i64);
    let in_process = record_sum(&p, "live_set", Some(LIVE_SIZE as u64)).map(|v| v as i64);
    assert_eq!(d.sum("live_set", Some(LIVE_SIZE as i64)), in_process);
    assert_eq!(d.sum("churn_set", Some(CHURN_SIZE as i64))[2..], [0, 0]);
    drop(live);
}

/// Sizes of the mixed live set: from far below the rate to above it.
const MIXED_SIZES: [usize; 6] = [40, 200, 1000, 5000, 20_000, 70_000];
const MIXED_EACH: usize = 600;

#[inline(never)]
fn mixed_live_set(out: &mut Vec<Vec<u8>>) {
    for i in 0..MIXED_EACH * MIXED_SIZES.len() {
        out.push(Vec::with_capacity(MIXED_SIZES[i % MIXED_SIZES.len()]));
    }
}

#[test]
fn a_4_kib_rate_estimates_each_size_of_a_mixed_live_set_within_5_sd() {
    let _rate = rate_lock();
    let rate = 4096u64;
    memprof::set_rate(rate as usize);
    memprof::__private::seed_thread(0x5eed_0002);
    let mut live = Vec::with_capacity(MIXED_EACH * MIXED_SIZES.len());
    mixed_live_set(&mut live);
    let p = memprof::heap_profile();
    let mut total = (0.0, 0.0, 0.0);
    for size in MIXED_SIZES {
        let size = size as u64;
        let truth = (MIXED_EACH as u64 * size) as f64;
        let sd = estimate_sd(std::iter::repeat_n(size, MIXED_EACH), rate);
        let inuse = record_sum(&p, "mixed_live_set", Some(size))[3] as f64;
        assert_within(
            &format!("{size}-byte objects, in-use bytes"),
            inuse,
            truth,
            sd,
        );
        total.0 += inuse;
        total.1 += truth;
        total.2 += sd * sd;
    }
    assert_within("mixed set, in-use bytes", total.0, total.1, total.2.sqrt());
    drop(live);
}

/// The seeded runs' allocations: `SEED_RUN_EACH` objects of each size.
const SEED_RUN_SIZES: [u64; 5] = [24, 136, 520, 2056, 9000];
const SEED_RUN_EACH: usize = 100;

#[inline(never)]
fn seeded_run() {
    for i in 0..SEED_RUN_EACH * SEED_RUN_SIZES.len() {
        let v: Vec<u8> = Vec::with_capacity(SEED_RUN_SIZES[i % SEED_RUN_SIZES.len()] as usize);
        std::hint::black_box(&v);
    }
}

#[test]
fn estimates_are_unbiased_across_200_seeds() {
    let _rate = rate_lock();
    let rate = 8192u64;
    memprof::set_rate(rate as usize);
    let sizes = || {
        SEED_RUN_SIZES
            .iter()
            .flat_map(|&s| std::iter::repeat_n(s, SEED_RUN_EACH))
    };
    let truth: f64 = sizes().sum::<u64>() as f64;
    let sd = estimate_sd(sizes(), rate);
    let seeds = 200;
    let mut filter = FnFilter::new("seeded_run");
    let mut last = filter.sum(&memprof::heap_profile(), None)[1];
    let mut estimates = Vec::with_capacity(seeds);
    for seed in 0..seeds as u64 {
        memprof::__private::seed_thread(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) + 1);
        seeded_run();
        let now = filter.sum(&memprof::heap_profile(), None)[1];
        estimates.push((now - last) as f64);
        last = now;
    }
    let n = seeds as f64;
    let mean = estimates.iter().sum::<f64>() / n;
    let spread = (estimates.iter().map(|e| (e - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt();
    // Each run's SD is `sd` (25% of the truth here: 64 samples a run), so
    // the mean of 200 runs has SD sd/sqrt(200) = 1.8% of the truth.
    assert_within("mean of 200 seeded estimates", mean, truth, sd / n.sqrt());
    // The spread of the runs is the predicted SD: its estimate from 200
    // runs is within ~5% (1 SE), so [0.7, 1.4] is more than 6 SE wide on
    // each side, while a wrong weight or a stuck sampler falls outside.
    let ratio = spread / sd;
    eprintln!("spread {spread:.0} / predicted SD {sd:.0} = {ratio:.3}");
    assert!(
        (0.7..=1.4).contains(&ratio),
        "spread of the seeded estimates {spread:.0} vs predicted SD {sd:.0} (ratio {ratio:.2})"
    );
    // Different seeds really gave different samples.
    let distinct: std::collections::HashSet<u64> = estimates.iter().map(|&e| e as u64).collect();
    assert!(
        distinct.len() > seeds / 2,
        "only {} distinct estimates",
        distinct.len()
    );
}
