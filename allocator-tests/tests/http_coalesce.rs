//! Concurrent scrapes are served, not refused: 50 clients ask for the heap
//! profile at the same moment, every one gets `200` and a valid profile,
//! and the profile was built fewer times than it was asked for (requests
//! in flight together share one build).
use allocator_tests::http::{get, is_gzip_profile};
use allocator_tests::watchdog;
use std::alloc::System;
use std::sync::{Barrier, Mutex};
use std::time::Duration;

#[global_allocator]
static A: memprof::Sampled<System> = memprof::Sampled::new(System);

const SCRAPES: usize = 50;

/// Blocks kept for the whole run, many distinct sites' worth of records.
static KEPT: Mutex<Vec<Vec<u8>>> = Mutex::new(Vec::new());

#[inline(never)]
fn kept_site(n: usize) {
    let mut kept = KEPT.lock().unwrap_or_else(|e| e.into_inner());
    kept.extend((0..n).map(|i| vec![i as u8; 100 + i]));
}

#[test]
fn fifty_scrapes_share_builds() {
    let _dog = watchdog(60, "http coalesce");
    memprof::set_rate(1);
    kept_site(2000);
    let server = memprof::http::serve("127.0.0.1:0").unwrap();
    let addr = server.local_addr();
    // Warm up symbolization, as a scraped service would have.
    assert_eq!(get(addr, "/debug/pprof/heap").status, 200);
    let before = memprof::http::__profile_builds();
    let go = Barrier::new(SCRAPES);
    let replies: Vec<_> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..SCRAPES)
            .map(|_| {
                s.spawn(|| {
                    go.wait();
                    get(addr, "/debug/pprof/heap")
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let builds = memprof::http::__profile_builds() - before;
    let ok = replies.iter().filter(|r| r.status == 200).count();
    eprintln!("{SCRAPES} concurrent scrapes: {ok} answered 200, {builds} profile builds");
    for r in &replies {
        assert_eq!(r.status, 200, "{}", r.text());
        assert!(is_gzip_profile(&r.body));
    }
    assert!(builds >= 1);
    assert!(
        builds < SCRAPES as u64 / 2,
        "{builds} builds for {SCRAPES} concurrent scrapes"
    );
    // Text and proto are different answers: each is built, neither is
    // served for the other.
    let text = get(addr, "/debug/pprof/heap?debug=1");
    assert!(text.text().starts_with("heap profile: "));
    std::thread::sleep(Duration::from_millis(10));
    server.stop();
}
