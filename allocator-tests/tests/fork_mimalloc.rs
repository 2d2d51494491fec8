//! `fork()` must not wait for a profile write, over mimalloc: see
//! `allocator_tests::fork_stall`. Its own binary (a fresh process, so the
//! first write's symbolization is cold; and forking with other tests'
//! threads around would copy them into every child).
//!
//! mimalloc comes from the `mimalloc-pprof` crate (plain mimalloc; its own
//! profiler stays off without `MIMALLOC_PROF`): the `mimalloc` crate links
//! the same native library, and one workspace may link it only once.

#[global_allocator]
static A: memprof::Sampled<mimalloc_pprof::MiMalloc> =
    memprof::Sampled::new(mimalloc_pprof::MiMalloc);

#[test]
fn fork_does_not_wait_for_a_profile_write_over_mimalloc() {
    allocator_tests::fork_stall::fork_while_writing_profiles("mimalloc");
}
