//! The soak (`allocator_tests::soak`) over `Sampled<System>`.

#[global_allocator]
static A: memprof::Sampled<std::alloc::System> = memprof::Sampled::new(std::alloc::System);

fn main() {
    allocator_tests::soak::main("system")
}
