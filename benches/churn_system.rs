//! Churn variant: bare `System`. Run through `cargo bench --bench churn`.
#[global_allocator]
static A: std::alloc::System = std::alloc::System;
include!("churn/workload.rs");
fn main() {
    churn::main_with(|| ());
}
