//! A Rust cdylib that tests/unwind_dwarf.rs loads with `dlopen` after the
//! unwinder's cache is warm, calls through, unloads and loads again. Its
//! frames sit between the test's frames: the unwinder must find this
//! module's CFI. Built by build.rs with the build's own rustflags.

/// Calls `f(n)` through two frames of this library.
#[no_mangle]
pub extern "C" fn memprof_dylib_call(f: extern "C" fn(u64), n: u64) -> u64 {
    std::hint::black_box(dylib_middle(f, n)) + 1
}

#[inline(never)]
fn dylib_middle(f: extern "C" fn(u64), n: u64) -> u64 {
    let v = std::hint::black_box(n.wrapping_mul(3));
    f(v);
    std::hint::black_box(v) ^ 5
}
