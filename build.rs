//! Detects whether this build has frame pointers, so that memprof can use
//! its frame-pointer stack walk by default (see src/stack.rs).
//!
//! RUSTFLAGS apply to every crate of a build alike, so if memprof itself is
//! built with `-C force-frame-pointers=yes`, so is the code that calls it.

fn main() {
    println!("cargo:rustc-check-cfg=cfg(memprof_frame_pointers)");
    println!("cargo:rerun-if-env-changed=CARGO_ENCODED_RUSTFLAGS");
    let flags = std::env::var("CARGO_ENCODED_RUSTFLAGS").unwrap_or_default();
    let flags: Vec<&str> = flags.split('\x1f').collect();
    let mut on = false;
    for (i, f) in flags.iter().enumerate() {
        let value = if let Some(v) = f.strip_prefix("-Cforce-frame-pointers=") {
            Some(v)
        } else if *f == "-C" || *f == "--codegen" {
            flags
                .get(i + 1)
                .and_then(|n| n.strip_prefix("force-frame-pointers="))
        } else {
            f.strip_prefix("--codegen=force-frame-pointers=")
        };
        if let Some(v) = value {
            on = matches!(v, "yes" | "y" | "on" | "true" | "always");
        } else if *f == "-Cforce-frame-pointers" {
            on = true;
        }
    }
    if on {
        println!("cargo:rustc-cfg=memprof_frame_pointers");
    }
}
