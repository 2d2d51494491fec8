//! Probe for the `env_bad_values` tests: a program with `Sampled` installed
//! that prints the rate it runs with (`rate N`), allocates a known set in
//! `probe_allocs` (1000 blocks of 321 bytes, live until exit), and exits.
//!
//! Arguments: `--exit N` exits with status N (through `exit`, so a
//! `MEMPROFILE` profile is still written); `--wait-for PATH` waits (at most
//! 60 s) until PATH exists before exiting.

use std::time::{Duration, Instant};

#[global_allocator]
static A: memprof::Sampled<std::alloc::System> = memprof::Sampled::new(std::alloc::System);

#[inline(never)]
fn probe_allocs() -> Vec<Vec<u8>> {
    (0..1000).map(|_| Vec::with_capacity(321)).collect()
}

fn main() {
    let mut code = 0;
    let mut wait_for = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--exit" => code = args.next().and_then(|v| v.parse().ok()).expect("--exit N"),
            "--wait-for" => wait_for = Some(args.next().expect("--wait-for PATH")),
            other => panic!("env_probe: unknown argument {other:?}"),
        }
    }
    let kept = probe_allocs();
    println!("rate {}", memprof::rate());
    if let Some(path) = wait_for {
        let start = Instant::now();
        while !std::path::Path::new(&path).exists() {
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "waited 60 s for {path}"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    std::hint::black_box(&kept);
    std::process::exit(code);
}
