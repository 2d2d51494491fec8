//! Churn variant: `Sampled<System>`, rate from `MEMPROFILERATE` (the driver
//! sets 0, the default, or 1; `CHURN_SCOPE=1` churns inside `measure`). Run through `cargo bench --bench churn` (or
//! `benches/instructions.sh`).
#[global_allocator]
static A: memprof::Sampled<std::alloc::System> = memprof::Sampled::new(std::alloc::System);
include!("churn/workload.rs");
fn main() {
    // CHURN_SCOPE=1: every worker churns inside `memprof::measure`, i.e.
    // every allocation is recorded exactly for the scope (test support).
    if std::env::var_os("CHURN_SCOPE").is_some_and(|v| v == "1") {
        churn::main_with_wrap(
            || (),
            |f| {
                let m = memprof::measure(f);
                std::hint::black_box(m.stats);
            },
        );
    } else {
        churn::main_with(|| ());
    }
}
