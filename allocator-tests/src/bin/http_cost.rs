//! What serving `/debug/pprof/heap` costs the running service, for
//! docs/performance.md ("HTTP"). A measurement to run by hand, not a test:
//!
//! ```sh
//! cargo run --release -p allocator-tests --bin http_cost
//! ```
//!
//! At rate 1, it keeps one 64-byte block on each of N distinct call stacks
//! (N records, stacks 6 calls deep through 16 call sites), serves the
//! endpoints with `memprof::http::serve`, and fetches the heap profile over
//! loopback. Per N it prints: the time to serve (request to last byte) of
//! the first fetch at that size (the very first also loads the debug info)
//! and of the next five, the response size, the peak RSS growth during the
//! first and a repeated fetch (VmHWM reset through /proc/self/clear_refs;
//! memory freed by one fetch is reused by the next), and the longest stall
//! of a thread that keeps allocating (and being sampled) during the first
//! fetch, next to its longest stall without a fetch.
use std::alloc::System;
use std::hint::black_box;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use allocator_tests::mem::{keep_on_stack, reset_peak_rss, rss_kib, Kept};

#[global_allocator]
static A: memprof::Sampled<System> = memprof::Sampled::new(System);

/// Runs `f`; how much the peak RSS grew above the RSS before, in MiB.
fn peak_growth<R>(f: impl FnOnce() -> R) -> (R, f64) {
    reset_peak_rss();
    let (before, _) = rss_kib();
    let r = f();
    let (_, peak) = rss_kib();
    (r, peak.saturating_sub(before) as f64 / 1024.0)
}

/// Fetches `target`; the time to the last byte and the body size.
fn fetch(addr: SocketAddr, target: &str) -> (Duration, usize) {
    let start = Instant::now();
    let mut s = TcpStream::connect(addr).unwrap();
    write!(s, "GET {target} HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let took = start.elapsed();
    assert!(raw.starts_with(b"HTTP/1.1 200 "));
    let head = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    (took, raw.len() - head)
}

/// Runs `f` while a thread allocates 64-byte blocks; the longest gap
/// between two of its allocations.
fn longest_stall<R>(f: impl FnOnce() -> R) -> (R, Duration) {
    let stop = AtomicBool::new(false);
    std::thread::scope(|s| {
        let probe = s.spawn(|| {
            let mut worst = Duration::ZERO;
            let mut last = Instant::now();
            while !stop.load(Ordering::Relaxed) {
                black_box(vec![0u8; 64]);
                let now = Instant::now();
                worst = worst.max(now - last);
                last = now;
            }
            worst
        });
        std::thread::sleep(Duration::from_millis(20));
        let r = f();
        stop.store(true, Ordering::Relaxed);
        (r, probe.join().unwrap())
    })
}

fn main() {
    memprof::set_rate(1);
    let server = memprof::http::serve("127.0.0.1:0").unwrap();
    let addr = server.local_addr();
    let heap = "/debug/pprof/heap";
    let mut kept: Kept = Vec::new();
    let mut path = 0u64;
    println!(
        "| records | fetch ms, first / median of 5 | response KiB \
         | peak RSS growth MiB, first / repeated | allocation stall ms, fetching / idle |"
    );
    println!("|---|---|---|---|---|");
    for n in [1_000u64, 10_000, 100_000] {
        while path < n {
            keep_on_stack(6, path, &mut kept);
            path += 1;
        }
        let records = memprof::heap_profile().records().len();
        // The probe thread is started (and has run 20 ms) before the peak
        // is reset: its own stack and caches are not the fetch's cost.
        let (((first, size), first_growth), stall) =
            longest_stall(|| peak_growth(|| fetch(addr, heap)));
        let mut times: Vec<Duration> = (0..5).map(|_| fetch(addr, heap).0).collect();
        times.sort();
        let (_, repeated_growth) = peak_growth(|| fetch(addr, heap));
        let ((), idle) = longest_stall(|| std::thread::sleep(times[2]));
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        println!(
            "| {records} | {:.0} / {:.0} | {:.0} | {first_growth:.1} / {repeated_growth:.1} | {:.1} / {:.1} |",
            ms(first),
            ms(times[2]),
            size as f64 / 1024.0,
            ms(stall),
            ms(idle),
        );
    }
    black_box(&kept);
    server.stop();
}
