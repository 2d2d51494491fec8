//! Builds the C helpers of the tests:
//! - `c/nofp.c` (tests/unwind.rs): code without frame pointers that calls
//!   back into Rust, linked into the test binaries;
//! - `c/nocfi.c` (tests/unwind_dwarf.rs): code with no unwind information
//!   at all that calls back into Rust;
//! - `c/cfaexpr.S` (tests/unwind_dwarf.rs): a frame whose CFA is a DWARF
//!   expression, calling back into Rust (x86-64 only);
//! - `c/slow_reserve.c` (tests/fork.rs): an `LD_PRELOAD` shim that slows
//!   memprof's region reservation down, built as a shared library whose
//!   path the tests get as `SLOW_RESERVE_SO`;
//! - `c/offset_mmap.c` (tests/region_misuse.rs): an `LD_PRELOAD` shim that
//!   returns memprof's region reservation 4 KiB off a 64 KiB boundary,
//!   whose path the tests get as `OFFSET_MMAP_SO`;
//! - `rust/dylib.rs` (tests/unwind_dwarf.rs): a Rust cdylib for `dlopen`,
//!   built with this build's rustflags and optimization level, whose path
//!   the tests get as `MEMPROF_TEST_DYLIB`.
use std::path::PathBuf;
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=c/nofp.c");
    println!("cargo:rerun-if-changed=c/slow_reserve.c");
    println!("cargo:rerun-if-changed=c/nocfi.c");
    println!("cargo:rerun-if-changed=c/offset_mmap.c");
    println!("cargo:rerun-if-changed=c/cfaexpr.S");
    println!("cargo:rerun-if-changed=rust/dylib.rs");
    cc::Build::new()
        .file("c/nofp.c")
        .opt_level(2)
        .flag("-fomit-frame-pointer")
        .compile("nofp");

    cc::Build::new()
        .file("c/nocfi.c")
        .opt_level(2)
        .flag("-fno-asynchronous-unwind-tables")
        .flag("-fno-unwind-tables")
        .compile("nocfi");
    if std::env::var("CARGO_CFG_TARGET_ARCH").as_deref() == Ok("x86_64") {
        cc::Build::new().file("c/cfaexpr.S").compile("cfaexpr");
    }

    let out = PathBuf::from(std::env::var("OUT_DIR").unwrap());
    let dylib = out.join("libmemprof_test_dylib.so");
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let opt = std::env::var("OPT_LEVEL").unwrap_or_else(|_| "0".into());
    let flags = std::env::var("CARGO_ENCODED_RUSTFLAGS").unwrap_or_default();
    let status = Command::new(rustc)
        .args(["--crate-type", "cdylib", "--edition", "2021", "-g"])
        .arg(format!("-Copt-level={opt}"))
        .args(flags.split('\x1f').filter(|f| !f.is_empty()))
        .arg("-o")
        .arg(&dylib)
        .arg("rust/dylib.rs")
        .status()
        .expect("run rustc for rust/dylib.rs");
    assert!(status.success(), "building rust/dylib.rs failed");
    println!("cargo:rustc-env=MEMPROF_TEST_DYLIB={}", dylib.display());

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

    let so = PathBuf::from(std::env::var("OUT_DIR").unwrap()).join("liboffset_mmap.so");
    let status = cc::Build::new()
        .get_compiler()
        .to_command()
        .args(["-shared", "-fPIC", "-O2", "-o"])
        .arg(&so)
        .arg("c/offset_mmap.c")
        .status()
        .expect("run the C compiler for c/offset_mmap.c");
    assert!(status.success(), "building c/offset_mmap.c failed");
    println!("cargo:rustc-env=OFFSET_MMAP_SO={}", so.display());
}
