//! `fork()` must not wait for a profile write, over jemalloc: see
//! `allocator_tests::fork_stall`. Its own binary (a fresh process, so the
//! first write's symbolization is cold; and forking with other tests'
//! threads around would copy them into every child).

#[global_allocator]
static A: memprof::Sampled<tikv_jemallocator::Jemalloc> =
    memprof::Sampled::new(tikv_jemallocator::Jemalloc);

#[test]
fn fork_does_not_wait_for_a_profile_write_over_jemalloc() {
    allocator_tests::fork_stall::fork_while_writing_profiles("jemalloc");
}
