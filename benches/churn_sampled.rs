//! Churn variant: `Sampled<System>`, rate from `MEMPROFILERATE` (the driver
//! sets 0, the default, or 1). Run through `cargo bench --bench churn` (or
//! `benches/instructions.sh`).
#[global_allocator]
static A: memprof::Sampled<std::alloc::System> = memprof::Sampled::new(std::alloc::System);
include!("churn/workload.rs");
fn main() {
    churn::main_with(|| ());
}
