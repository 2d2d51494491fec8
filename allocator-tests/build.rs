//! Builds the C helpers of the tests:
//! - `c/nofp.c` (tests/unwind.rs): code without frame pointers that calls
//!   back into Rust, linked into the test binaries;
//! - `c/slow_reserve.c` (tests/fork.rs): an `LD_PRELOAD` shim that slows
//!   memprof's region reservation down, built as a shared library whose
//!   path the tests get as `SLOW_RESERVE_SO`.
use std::path::PathBuf;

fn main() {
    println!("cargo:rerun-if-changed=c/nofp.c");
    println!("cargo:rerun-if-changed=c/slow_reserve.c");
    cc::Build::new()
        .file("c/nofp.c")
        .opt_level(2)
        .flag("-fomit-frame-pointer")
        .compile("nofp");

    let so = PathBuf::from(std::env::var("OUT_DIR").unwrap()).join("libslow_reserve.so");
    let status = cc::Build::new()
        .get_compiler()
        .to_command()
        .args(["-shared", "-fPIC", "-O2", "-o"])
        .arg(&so)
        .arg("c/slow_reserve.c")
        .status()
        .expect("run the C compiler for c/slow_reserve.c");
    assert!(status.success(), "building c/slow_reserve.c failed");
    println!("cargo:rustc-env=SLOW_RESERVE_SO={}", so.display());
}
