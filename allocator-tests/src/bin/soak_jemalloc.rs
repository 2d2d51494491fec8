//! The soak (`allocator_tests::soak`) over `Sampled<tikv_jemallocator::Jemalloc>`.

#[global_allocator]
static A: memprof::Sampled<tikv_jemallocator::Jemalloc> =
    memprof::Sampled::new(tikv_jemallocator::Jemalloc);

fn main() {
    allocator_tests::soak::main("jemalloc")
}
