//! A service-like workload that serves `/debug/pprof/` until it is killed
//! (Ctrl-C).
//!
//! ```sh
//! cargo run --release --features http --example http              # 127.0.0.1:6060
//! go tool pprof -top http://127.0.0.1:6060/debug/pprof/heap        # in use now
//! go tool pprof -top http://127.0.0.1:6060/debug/pprof/allocs      # allocated since start
//! go tool pprof -top -seconds 5 http://127.0.0.1:6060/debug/pprof/allocs   # in the next 5 s
//! ```
//!
//! The first argument is the address to serve at. Three worker threads
//! handle made-up requests: each is parsed (`parse_request`: freed at
//! once), answered (`render_response`: freed at once), and its result is
//! cached (`Cache::insert`: kept, so in-use grows until the cache is full,
//! then old entries are evicted). `load_catalog` allocates once at start
//! and keeps it: it shows in `inuse_space` of every profile, and in no
//! `?seconds=` window's `alloc_space`.

use std::alloc::System;
use std::collections::{HashMap, VecDeque};
use std::io::Write;
use std::sync::Mutex;
use std::time::Duration;

#[global_allocator]
static ALLOC: memprof::Sampled<System> = memprof::Sampled::new(System);

/// A tiny deterministic generator.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// Start-up data, kept for the whole run: 8 MiB in 64 KiB pages.
#[inline(never)]
fn load_catalog() -> Vec<Vec<u8>> {
    // A loop rather than `.collect()`: ending in that call, an optimised
    // build would jump to it (a tail call), and the pages would be
    // profiled without this function on their stack.
    let mut pages = Vec::with_capacity(128);
    for i in 0..128 {
        pages.push(vec![i as u8; 64 * 1024]);
    }
    pages
}

/// Splits a request line into owned tokens: short-lived garbage.
#[inline(never)]
fn parse_request(rng: &mut Rng) -> Vec<String> {
    let n = 4 + rng.next() % 12;
    (0..n)
        .map(|i| format!("field{i}={:x}", rng.next()))
        .collect()
}

/// Builds a response body of 1–8 KiB: freed once "sent".
#[inline(never)]
fn render_response(tokens: &[String]) -> String {
    let mut body = String::new();
    while body.len() < 1024 * tokens.len().min(8) {
        for t in tokens {
            body.push_str(t);
            body.push('\n');
        }
    }
    body
}

/// An LRU-ish cache of rendered values that grows up to `limit` bytes.
struct Cache {
    map: HashMap<u64, Vec<u8>>,
    order: VecDeque<u64>,
    bytes: usize,
    limit: usize,
}

impl Cache {
    #[inline(never)]
    fn insert(&mut self, key: u64, value: &str) {
        let value = value.as_bytes().to_vec();
        self.bytes += value.len();
        if let Some(old) = self.map.insert(key, value) {
            self.bytes -= old.len();
        } else {
            self.order.push_back(key);
        }
        while self.bytes > self.limit {
            let Some(k) = self.order.pop_front() else {
                break;
            };
            if let Some(v) = self.map.remove(&k) {
                self.bytes -= v.len();
            }
        }
    }
}

/// One worker: a request every millisecond or so.
fn worker(id: u64, cache: &Mutex<Cache>) {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ (id + 1));
    loop {
        let tokens = parse_request(&mut rng);
        let body = render_response(&tokens);
        if rng.next() & 3 == 0 {
            let key = rng.next() % 100_000;
            cache
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(key, &body);
        }
        drop((tokens, body));
        std::thread::sleep(Duration::from_millis(1));
    }
}

fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:6060".into());
    let catalog = load_catalog();
    let cache = Mutex::new(Cache {
        map: HashMap::new(),
        order: VecDeque::new(),
        bytes: 0,
        limit: 32 << 20,
    });
    let server = memprof::http::serve(addr.as_str())?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "serving http://{}/debug/pprof/", server.local_addr())?;
    out.flush()?;
    drop(out);
    std::thread::scope(|s| {
        for id in 0..3 {
            let cache = &cache;
            s.spawn(move || worker(id, cache));
        }
    });
    drop(catalog);
    Ok(())
}
