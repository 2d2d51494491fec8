//! Probe for the `trace` tests: a program with `Sampled` installed that
//! allocates and frees for `--alloc-ms N` milliseconds (1 MiB a
//! millisecond, in 16 KiB blocks), then sleeps for `--idle-ms N`
//! milliseconds without allocating, then exits. `MEMPROF_TRACE` is read
//! from the environment as usual.

use std::time::{Duration, Instant};

#[global_allocator]
static A: memprof::Sampled<std::alloc::System> = memprof::Sampled::new(std::alloc::System);

fn main() {
    let (mut alloc_ms, mut idle_ms) = (0u64, 0u64);
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--alloc-ms" => {
                alloc_ms = args
                    .next()
                    .and_then(|v| v.parse().ok())
                    .expect("--alloc-ms N")
            }
            "--idle-ms" => {
                idle_ms = args
                    .next()
                    .and_then(|v| v.parse().ok())
                    .expect("--idle-ms N")
            }
            other => panic!("trace_probe: unknown argument {other:?}"),
        }
    }
    let start = Instant::now();
    let mut kept: Vec<Vec<u8>> = Vec::new();
    while start.elapsed() < Duration::from_millis(alloc_ms) {
        for _ in 0..64 {
            kept.push(std::hint::black_box(vec![1u8; 16 * 1024]));
        }
        if kept.len() > 4096 {
            kept.clear();
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    std::thread::sleep(Duration::from_millis(idle_ms));
    println!("done");
}
