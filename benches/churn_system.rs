//! Churn variant: bare `System`, the baseline every ratio is taken to.
//! Run through `cargo bench -p memprof-benches --bench churn` (or `benches/instructions.sh`).
#[global_allocator]
static A: std::alloc::System = std::alloc::System;
include!("churn/workload.rs");
fn main() {
    churn::main_with(|| ());
}
