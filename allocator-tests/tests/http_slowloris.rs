//! Slow clients hold no worker: 40 connections trickling a request at one
//! byte per second (more than the server has workers) do not stop scrapes
//! from being answered at once, and each trickler is still answered `408`
//! when its read timeout (2 s here) ends, however steadily it sends.
use allocator_tests::http::{connect, get, is_gzip_profile, read_reply};
use allocator_tests::watchdog;
use memprof::http::Options;
use std::alloc::System;
use std::io::Write;
use std::net::TcpStream;
use std::time::{Duration, Instant};

#[global_allocator]
static A: memprof::Sampled<System> = memprof::Sampled::new(System);

const TRICKLERS: usize = 40;

#[test]
fn one_byte_a_second_does_not_stop_scrapes() {
    let _dog = watchdog(60, "http slowloris");
    memprof::set_rate(4096);
    let mut options = Options::default();
    options.read_timeout = Duration::from_secs(2);
    options.max_workers = 4;
    let server = memprof::http::serve_with("127.0.0.1:0", options).unwrap();
    let addr = server.local_addr();
    // A first scrape warms symbolization up (it is slow in a debug build).
    assert_eq!(get(addr, "/debug/pprof/heap").status, 200);
    let request = b"GET /debug/pprof/heap HTTP/1.1\r\nHost: x\r\nX-Slow: 0123456789\r\n\r\n";
    let start = Instant::now();
    let tricklers: Vec<TcpStream> = (0..TRICKLERS)
        .map(|_| connect(addr, Duration::from_secs(30)))
        .collect();
    // One thread sends one byte a second on every trickler, for 3 s.
    let sender = {
        let socks: Vec<TcpStream> = tricklers.iter().map(|s| s.try_clone().unwrap()).collect();
        std::thread::spawn(move || {
            for b in &request[..3] {
                for mut s in &socks {
                    let _ = s.write_all(&[*b]);
                }
                std::thread::sleep(Duration::from_secs(1));
            }
        })
    };
    // Meanwhile scrapes are answered at once.
    let mut scrapes = 0;
    while start.elapsed() < Duration::from_millis(1500) {
        let t = Instant::now();
        let r = get(addr, "/debug/pprof/heap");
        assert_eq!(r.status, 200, "{}", r.text());
        assert!(is_gzip_profile(&r.body));
        assert!(
            t.elapsed() < Duration::from_secs(1),
            "a scrape took {:?} beside the tricklers",
            t.elapsed()
        );
        scrapes += 1;
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(scrapes >= 3);
    // The tricklers are cut off at their read timeout, mid-request.
    for mut s in tricklers {
        read_reply(&mut s, false).assert_error(408, "request timeout");
    }
    let took = start.elapsed();
    assert!(
        took >= Duration::from_millis(1900) && took < Duration::from_secs(5),
        "tricklers answered after {took:?}"
    );
    sender.join().unwrap();
    server.stop();
}
