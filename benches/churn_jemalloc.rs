//! Churn variant: `tikv-jemallocator`, built with its `profiling` feature.
//! Plain when `_RJEM_MALLOC_CONF` is unset; jemalloc's own sampling heap
//! profiler with `_RJEM_MALLOC_CONF=prof:true,prof_active:true,lg_prof_sample:19`
//! (the crate builds jemalloc with the `_rjem_` prefix, so jemalloc reads
//! `_RJEM_MALLOC_CONF`, not `MALLOC_CONF`). Before the clock starts it
//! prints `info: opt.prof=… prof.active=… opt.lg_prof_sample=…`, read back
//! from jemalloc with `mallctl`, and the driver checks them, so a
//! misspelt variable cannot pass as "profiling on". Run through
//! `cargo bench -p memprof-benches --bench churn` (or `benches/instructions.sh`).
use tikv_jemalloc_ctl::{profiling, raw};

#[global_allocator]
static A: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;
include!("churn/workload.rs");

fn main() {
    churn::main_with(|| {
        let prof = profiling::prof::read().expect("mallctl opt.prof");
        // SAFETY: `prof.active` is a `bool` mallctl in builds with
        // profiling (this one), so reading it as `bool` is the right type.
        let active: bool = unsafe { raw::read(b"prof.active\0") }.unwrap_or(false);
        let lg = profiling::lg_prof_sample::read().expect("mallctl opt.lg_prof_sample");
        println!("info: opt.prof={prof} prof.active={active} opt.lg_prof_sample={lg}");
    });
}
