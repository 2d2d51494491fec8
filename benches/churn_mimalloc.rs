//! Churn variant: `mimalloc-pprof` 1.1 (mimalloc v3 with a sampled heap
//! profiler in C), built with its `pprof` feature. Plain mimalloc when
//! `MIMALLOC_PROF` is unset (the profiler is built in but off: a few
//! instructions per pair); its profiler with `MIMALLOC_PROF=1` (default:
//! one sample per ~512 KiB, 32 frames; `MIMALLOC_PROF_SAMPLE_INTERVAL=1`
//! samples every allocation, `MIMALLOC_PROF_BT_MAX` sets the depth, up to
//! 128). The driver also sets `MIMALLOC_PROF_ACCUM=1` so it keeps
//! cumulative alloc counts as the other profilers do. On Linux it walks
//! frame pointers, also on builds without them, where it gives short or
//! wrong stacks (the `frames=` column shows it). Run through
//! `cargo bench -p memprof-benches --bench churn`.
//!
//! Before the clock it prints `info: mimalloc.prof=… mimalloc.rate=…`,
//! read back from the profiler; after the result line (outside the timing
//! and the peak-RSS reading) `info: mimalloc.samples=… mimalloc.dropped=…
//! every_alloc=… frames=…` (cumulative samples, whether they cover every
//! allocation of the run, the deepest stack recorded). The driver checks
//! them.
use mimalloc_pprof::prof;

#[global_allocator]
static A: mimalloc_pprof::MiMalloc = mimalloc_pprof::MiMalloc;
include!("churn/workload.rs");

/// Prints what mimalloc's profiler recorded when dropped (after the result
/// line).
struct Report;

impl Drop for Report {
    fn drop(&mut self) {
        let stats = prof::stats();
        let frames = prof::samples()
            .iter()
            .map(|s| s.stack.len())
            .max()
            .unwrap_or(0);
        println!(
            "info: mimalloc.samples={} mimalloc.dropped={} every_alloc={} frames={frames}",
            stats.accum_samples,
            stats.dropped_samples,
            stats.accum_samples as u64 >= churn::allocations(),
        );
    }
}

fn main() {
    churn::main_with(|| {
        let stats = prof::stats();
        println!(
            "info: mimalloc.prof={} mimalloc.rate={} mimalloc.accum={}",
            prof::is_enabled(),
            stats.sample_rate,
            stats.accum
        );
        Report
    });
}
