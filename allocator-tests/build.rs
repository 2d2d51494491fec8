//! Builds the C helper used by tests/unwind.rs: code without frame
//! pointers that calls back into Rust.
fn main() {
    println!("cargo:rerun-if-changed=c/nofp.c");
    cc::Build::new()
        .file("c/nofp.c")
        .opt_level(2)
        .flag("-fomit-frame-pointer")
        .compile("nofp");
}
