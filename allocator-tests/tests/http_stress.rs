//! Bounded stress: 32 clients × 10 fetches of the profiles and the index on
//! loopback, against the built-in server with its default limits, while
//! worker threads allocate and free. Every answer is valid (a refused
//! connection, 503, is retried), one profile is read back with
//! `go tool pprof`, the workers keep allocating throughout, and nothing
//! hangs (a watchdog aborts after 120 s).
use allocator_tests::http::{get, is_gzip_profile, Reply};
use allocator_tests::{go_raw, temp_dir, watchdog};
use std::alloc::System;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

#[global_allocator]
static A: memprof::Sampled<System> = memprof::Sampled::new(System);

const CLIENTS: usize = 32;
const FETCHES: usize = 10;
const TARGETS: [&str; 5] = [
    "/debug/pprof/heap",
    "/debug/pprof/allocs",
    "/debug/pprof/heap?debug=1",
    "/debug/pprof/",
    "/debug/pprof/allocs?gc=1",
];

/// A service's churn: short-lived buffers of ten sizes (16 B to 8 KiB) and
/// a map that keeps some of them.
#[inline(never)]
fn stress_worker(seed: u64, stop: &AtomicBool, ops: &AtomicU64) {
    let mut x = seed | 1;
    let mut kept: HashMap<u64, Vec<u8>> = HashMap::new();
    while !stop.load(Ordering::Relaxed) {
        for _ in 0..100 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let buf = vec![0u8; 16 << (x % 10)];
            if x & 7 == 0 {
                kept.insert(x % 4096, buf);
            }
        }
        ops.fetch_add(100, Ordering::Relaxed);
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Fetches `target` until it is not refused for lack of connections.
fn fetch(addr: std::net::SocketAddr, target: &str, refused: &AtomicU64) -> Reply {
    loop {
        let r = get(addr, target);
        if r.status != 503 {
            return r;
        }
        r.assert_error(503, "too many connections");
        let n = refused.fetch_add(1, Ordering::Relaxed);
        std::thread::sleep(Duration::from_millis(20 + n % 30));
    }
}

fn check(target: &str, r: &Reply) {
    assert_eq!(r.status, 200, "{target}: {}", r.text());
    assert_eq!(r.header("X-Content-Type-Options"), Some("nosniff"));
    match target {
        "/debug/pprof/" => assert!(r.text().contains("heap?debug=1")),
        t if t.ends_with("debug=1") => assert!(r.text().starts_with("heap profile: ")),
        _ => assert!(is_gzip_profile(&r.body), "{target}: not a gzip profile"),
    }
}

#[test]
fn many_clients_while_the_service_allocates() {
    let _dog = watchdog(120, "http stress");
    memprof::set_rate(4096);
    let server = memprof::http::serve("127.0.0.1:0").unwrap();
    let addr = server.local_addr();
    let stop = AtomicBool::new(false);
    let ops = AtomicU64::new(0);
    let refused = AtomicU64::new(0);
    let saved = std::sync::Mutex::new(None);
    std::thread::scope(|s| {
        for seed in 0..2 {
            let (stop, ops) = (&stop, &ops);
            s.spawn(move || stress_worker(0x9e37_79b9 + seed, stop, ops));
        }
        let clients: Vec<_> = (0..CLIENTS)
            .map(|c| {
                let (refused, saved) = (&refused, &saved);
                s.spawn(move || {
                    for i in 0..FETCHES {
                        let target = TARGETS[(c + i) % TARGETS.len()];
                        let r = fetch(addr, target, refused);
                        check(target, &r);
                        if target == "/debug/pprof/heap" {
                            *saved.lock().unwrap() = Some(r.body);
                        }
                    }
                })
            })
            .collect();
        let before = ops.load(Ordering::Relaxed);
        for c in clients {
            c.join().unwrap();
        }
        // The workers allocated while the profiles were being served.
        assert!(ops.load(Ordering::Relaxed) > before);
        stop.store(true, Ordering::Relaxed);
    });
    eprintln!(
        "{} fetches, {} refused with 503 and retried",
        CLIENTS * FETCHES,
        refused.load(Ordering::Relaxed)
    );
    let body = saved.into_inner().unwrap().expect("a heap profile");
    let path = temp_dir("http-stress").join("heap.pb.gz");
    std::fs::write(&path, body).unwrap();
    let d = go_raw(&path, &["stress_worker"]);
    assert_eq!(
        d.sample_types
            .iter()
            .map(|(t, _)| t.as_str())
            .collect::<Vec<_>>(),
        [
            "alloc_objects",
            "alloc_space",
            "inuse_objects",
            "inuse_space"
        ]
    );
    assert_eq!(d.period, 4096);
    assert!(d.sum("stress_worker", None)[1] > 0);
    server.stop();
}
