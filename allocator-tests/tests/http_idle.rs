//! Idle connections do not take capacity from real requests: with 20 and
//! then 100 connections open that send nothing (or half a request), a
//! scrape of the built-in server's default configuration gets `200` and a
//! valid profile at once, and the idle connections stay open (not evicted
//! below the limit) until their read timeout.
use allocator_tests::http::{connect, get, is_gzip_profile};
use allocator_tests::watchdog;
use std::alloc::System;
use std::io::Write;
use std::net::TcpStream;
use std::time::{Duration, Instant};

#[global_allocator]
static A: memprof::Sampled<System> = memprof::Sampled::new(System);

/// Is `s` still open with nothing to read (no answer, no end of stream)?
fn still_waiting(s: &TcpStream) -> bool {
    s.set_nonblocking(true).unwrap();
    let r = s.peek(&mut [0u8; 1]);
    s.set_nonblocking(false).unwrap();
    matches!(r, Err(e) if e.kind() == std::io::ErrorKind::WouldBlock)
}

#[test]
fn idle_connections_do_not_block_scrapes() {
    let _dog = watchdog(60, "http idle");
    memprof::set_rate(4096);
    let server = memprof::http::serve("127.0.0.1:0").unwrap();
    let addr = server.local_addr();
    for n in [20, 100] {
        let idle: Vec<TcpStream> = (0..n)
            .map(|i| {
                let mut s = connect(addr, Duration::from_secs(30));
                if i % 2 == 1 {
                    s.write_all(b"GET /debug/pprof/heap HTTP/1.1\r\nHost:")
                        .unwrap();
                }
                s
            })
            .collect();
        std::thread::sleep(Duration::from_millis(200));
        for target in ["/debug/pprof/heap", "/debug/pprof/heap?debug=1"] {
            let start = Instant::now();
            let r = get(addr, target);
            assert_eq!(r.status, 200, "{n} idle: {target}: {}", r.text());
            assert!(
                start.elapsed() < Duration::from_secs(3),
                "{n} idle: {target} took {:?}",
                start.elapsed()
            );
            if target.ends_with("debug=1") {
                assert!(r.text().starts_with("heap profile: "));
            } else {
                assert!(is_gzip_profile(&r.body), "{n} idle: not a profile");
            }
        }
        let open = idle.iter().filter(|s| still_waiting(s)).count();
        assert_eq!(open, n, "idle connections below the limit were closed");
    }
    server.stop();
}
