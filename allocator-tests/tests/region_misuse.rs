//! The region as a user's program meets it, in probe processes
//! (`src/bin/region_probe.rs`): alignment when `mmap` returns a base that
//! is only 4 KiB aligned, and misuse (double free, a pointer memprof never
//! handed out) caught with a clear message and an abort instead of a
//! corrupted heap.

use allocator_tests::output_within;
use std::os::unix::process::ExitStatusExt;
use std::process::Command;
use std::time::Duration;

fn probe(arg: &str) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_region_probe"));
    cmd.arg(arg).env_remove("MEMPROFILERATE");
    cmd
}

#[test]
fn layouts_are_aligned_when_mmap_returns_a_4k_aligned_base() {
    let out = output_within(
        probe("align").env("LD_PRELOAD", env!("OFFSET_MMAP_SO")),
        Duration::from_secs(60),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stderr.contains("offset_mmap: reservation at"),
        "the shim was not used, so this test proves nothing: {stderr}"
    );
    assert!(
        out.status.success() && stdout.contains(" 0 misaligned"),
        "status {:?}\nstdout: {stdout}\nstderr: {stderr}",
        out.status
    );
}

fn assert_aborts(arg: &str, message: &str) {
    let out = output_within(&mut probe(arg), Duration::from_secs(60));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.signal(),
        Some(libc::SIGABRT),
        "{arg}: expected an abort, got {:?}\nstdout: {}\nstderr: {stderr}",
        out.status,
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(
        stderr.contains(message),
        "{arg}: stderr lacks {message:?}: {stderr}"
    );
}

#[test]
fn a_double_free_of_a_small_block_aborts_with_a_message() {
    assert_aborts("double-free-small", "memprof: free(): double free detected");
}

#[test]
fn a_double_free_of_a_large_block_aborts_with_a_message() {
    assert_aborts("double-free-large", "memprof: free(): double free detected");
}

#[test]
fn a_pointer_into_a_block_aborts_with_a_message() {
    assert_aborts("invalid-pointer", "memprof: free(): invalid pointer");
}
