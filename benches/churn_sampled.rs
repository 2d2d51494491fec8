//! Churn variant: `Sampled<System>`, rate from `MEMPROFILERATE` (the driver
//! sets 0, the default, or 1), unwinder from `MEMPROF_UNWIND` (unset: the
//! build's default); `CHURN_SCOPE=1` churns inside `measure`. Run through
//! `cargo bench -p memprof-benches --bench churn` (or `benches/instructions.sh`).
//!
//! Before the clock it prints `info: memprof.unwinder=… memprof.rate=…`,
//! read back from memprof; after the result line (outside the timing and
//! the peak-RSS reading) `info: memprof.samples=… memprof.dropped=…
//! every_alloc=… frames=…` from a heap profile: the samples taken, whether
//! they cover every allocation of the run, and the deepest stack recorded
//! (raw frames, memprof's own included). The driver checks them.
#[global_allocator]
static A: memprof::Sampled<std::alloc::System> = memprof::Sampled::new(std::alloc::System);
include!("churn/workload.rs");

/// Prints what memprof recorded when dropped (after the result line).
struct Report;

impl Drop for Report {
    fn drop(&mut self) {
        let profile = memprof::heap_profile();
        let (mut samples, mut frames) = (0u64, 0usize);
        for r in profile.records() {
            samples += r.sampled_allocs();
            frames = frames.max(r.stack().len());
        }
        println!(
            "info: memprof.samples={samples} memprof.dropped={} every_alloc={} frames={frames}",
            profile.dropped_samples(),
            samples >= churn::allocations(),
        );
    }
}

fn report() -> Report {
    println!(
        "info: memprof.unwinder={:?} memprof.rate={}",
        memprof::unwinder(),
        memprof::rate()
    );
    Report
}

fn main() {
    // CHURN_SCOPE=1: every worker churns inside `memprof::measure`, i.e.
    // every allocation is recorded exactly for the scope (test support).
    if std::env::var_os("CHURN_SCOPE").is_some_and(|v| v == "1") {
        churn::main_with_wrap(report, |f| {
            let m = memprof::measure(f);
            std::hint::black_box(m.stats);
        });
    } else {
        churn::main_with(report);
    }
}
