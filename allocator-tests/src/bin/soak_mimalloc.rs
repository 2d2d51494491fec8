//! The soak (`allocator_tests::soak`) over `Sampled<MiMalloc>`: plain
//! mimalloc v3, as packaged by `mimalloc-pprof` with its profiler off (the
//! workspace links mimalloc through that crate already, so the `mimalloc`
//! crate, which links the same C library, cannot be added beside it).

use mimalloc_pprof::MiMalloc;

#[global_allocator]
static A: memprof::Sampled<MiMalloc> = memprof::Sampled::new(MiMalloc);

fn main() {
    allocator_tests::soak::main("mimalloc")
}
