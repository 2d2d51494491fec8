//! Resources stay bounded under a flood of idle connections: with 500
//! connections open (each having sent part of a request) against a server
//! that keeps at most 256, the server runs at most one event-loop thread
//! and its workers (counted in /proc/self/status), the oldest idle
//! connections beyond the limit are closed, memory grows by little, and a
//! scrape is still served.
use allocator_tests::http::{connect, get, is_gzip_profile};
use allocator_tests::watchdog;
use memprof::http::Options;
use std::alloc::System;
use std::io::Write;
use std::net::TcpStream;
use std::time::{Duration, Instant};

#[global_allocator]
static A: memprof::Sampled<System> = memprof::Sampled::new(System);

const IDLE: usize = 500;

/// A field of /proc/self/status (`Threads`, `VmRSS` in kB).
fn status(field: &str) -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap();
    s.lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("no {field} in /proc/self/status"))
}

/// Has the server closed `s` (end of stream, or a 503 before it)?
fn closed_by_server(s: &TcpStream) -> bool {
    s.set_nonblocking(true).unwrap();
    let r = s.peek(&mut [0u8; 1]);
    s.set_nonblocking(false).unwrap();
    !matches!(r, Err(e) if e.kind() == std::io::ErrorKind::WouldBlock)
}

#[test]
fn five_hundred_idle_connections() {
    let _dog = watchdog(60, "http bounds");
    memprof::set_rate(4096);
    let options = Options::default();
    let (max_conns, max_workers) = (options.max_connections, options.max_workers);
    assert!(max_conns < IDLE);
    let threads0 = status("Threads");
    let server = memprof::http::serve_with("127.0.0.1:0", options).unwrap();
    let addr = server.local_addr();
    // A first scrape: symbolization's memory (debug info) is not ours to
    // count, and a worker starts.
    assert_eq!(get(addr, "/debug/pprof/heap").status, 200);
    let threads1 = status("Threads");
    let rss0 = status("VmRSS");
    let partial = format!(
        "GET /debug/pprof/heap HTTP/1.1\r\nHost: x\r\nX-Pad: {}",
        "p".repeat(1000)
    );
    let idle: Vec<TcpStream> = (0..IDLE)
        .map(|_| {
            let mut s = connect(addr, Duration::from_secs(30));
            s.write_all(partial.as_bytes()).unwrap();
            s
        })
        .collect();
    // Let the server accept and read them all.
    let deadline = Instant::now() + Duration::from_secs(10);
    let closed = loop {
        std::thread::sleep(Duration::from_millis(100));
        let closed = idle.iter().filter(|s| closed_by_server(s)).count();
        if closed >= IDLE - max_conns || Instant::now() > deadline {
            break closed;
        }
    };
    assert_eq!(closed, IDLE - max_conns, "connections beyond the limit");
    // The newest connections are the ones kept.
    assert!(idle[IDLE - max_conns..]
        .iter()
        .all(|s| !closed_by_server(s)));
    // What the flood cost, before any further profile build (their
    // symbolization loads debug info, not ours to count).
    let grown_kib = status("VmRSS").saturating_sub(rss0);
    // Idle connections hold no thread: as many as after one scrape.
    let threads = status("Threads");
    assert!(
        threads <= threads1 && threads1 <= threads0 + 2,
        "{threads} threads with {IDLE} idle connections (from {threads0}, {threads1})"
    );
    // A scrape is served, and the workers it started stay within bounds.
    for _ in 0..3 {
        let r = get(addr, "/debug/pprof/heap");
        assert_eq!(r.status, 200, "{}", r.text());
        assert!(is_gzip_profile(&r.body));
    }
    let threads = status("Threads");
    assert!(
        threads <= threads0 + 1 + max_workers as u64,
        "{threads} threads"
    );
    eprintln!(
        "{IDLE} idle: {closed} evicted, {threads} threads (from {threads0}), RSS +{grown_kib} KiB"
    );
    // 256 buffered partial heads are ~256 KiB; buffers of a whole
    // request's 80 KiB each would be 20 MiB.
    assert!(grown_kib < 8 * 1024, "RSS grew by {grown_kib} KiB");
    server.stop();
}
