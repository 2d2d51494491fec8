//! This process's memory as the kernel reports it, for the tests and the
//! cost probes (`http_cost`, `write_cost`) that bound what memprof adds;
//! and many distinct stacks to make it add something.

use std::hint::black_box;

/// A field of a `/proc` text file (`Name:  value kB`), in KiB; 0 if absent.
pub fn proc_field(text: &str, name: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// `(VmRSS, VmHWM)` in KiB.
pub fn rss_kib() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    (proc_field(&status, "VmRSS:"), proc_field(&status, "VmHWM:"))
}

/// Resets VmHWM to the current RSS.
pub fn reset_peak_rss() {
    std::fs::write("/proc/self/clear_refs", "5").unwrap();
}

/// Runs `f`; how far the peak RSS rose above the RSS before it, in KiB.
pub fn peak_growth_kib(f: impl FnOnce()) -> u64 {
    reset_peak_rss();
    let (before, _) = rss_kib();
    f();
    rss_kib().1.saturating_sub(before)
}

/// Blocks kept by [`keep_on_stack`].
pub type Kept = Vec<Box<[u8]>>;

// Eight functions, one call site each: the base-8 digits of `path` choose
// the stack. (Each returns its own constant, or the compiler would merge
// the identical functions into one.)
macro_rules! branches {
    ($($name:ident = $k:literal),*) => {$(
        #[inline(never)]
        fn $name(depth: u32, path: u64, out: &mut Kept) -> u64 {
            keep_on_stack(depth, path, out);
            black_box($k)
        }
    )*};
}
branches!(
    b0 = 0,
    b1 = 1,
    b2 = 2,
    b3 = 3,
    b4 = 4,
    b5 = 5,
    b6 = 6,
    b7 = 7
);

/// Keeps one 64-byte block in `out`, allocated `depth` calls down on the
/// stack that `path`'s base-8 digits choose: distinct paths below
/// `8^depth`, distinct stacks.
#[inline(never)]
pub fn keep_on_stack(depth: u32, path: u64, out: &mut Kept) {
    if depth == 0 {
        out.push(vec![0u8; 64].into_boxed_slice());
        return;
    }
    let f = [b0, b1, b2, b3, b4, b5, b6, b7][(path % 8) as usize];
    black_box(f(depth - 1, path / 8, out));
}
