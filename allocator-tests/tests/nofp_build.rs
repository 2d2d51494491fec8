//! The cached DWARF unwinder on ordinary builds: builds `tests/unwind_dwarf.rs`
//! again without frame pointers (an empty `CARGO_ENCODED_RUSTFLAGS`
//! overrides the project's `-C force-frame-pointers=yes`), in debug and in
//! release, and runs it. There memprof must choose `Dwarf` by itself, and
//! every test of that binary must pass: the same call sites as libgcc,
//! exact counts at rate 1, and the stacks read back by `go tool pprof`.
//!
//! The builds go to `target/nofp`, apart from the main build.
use allocator_tests::*;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

fn run(release: bool) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(root)
        .args(["test", "-p", "allocator-tests", "--test", "unwind_dwarf"])
        .arg("--target-dir")
        .arg(root.join("target/nofp"))
        .env("CARGO_ENCODED_RUSTFLAGS", "")
        .env_remove("RUSTFLAGS")
        .env("MEMPROF_TEST_EXPECT_UNWINDER", "Dwarf");
    if release {
        cmd.arg("--release");
    }
    let out = output_within(&mut cmd, Duration::from_secs(1500));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let build = if release { "release" } else { "debug" };
    assert!(
        out.status.success(),
        "unwind_dwarf without frame pointers ({build}) failed:\n{stdout}\n{stderr}"
    );
    assert!(
        stdout.contains("test result: ok. 7 passed; 0 failed"),
        "unwind_dwarf without frame pointers ({build}) ran other tests than expected:\n{stdout}"
    );
}

#[test]
fn unwind_dwarf_passes_without_frame_pointers_in_debug_and_release() {
    run(false);
    run(true);
}
