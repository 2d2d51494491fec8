//! Idle connections and concurrent scrapes against a running
//! `/debug/pprof` server, for docs/design.md ("The server"). A
//! measurement to run by hand, not a test:
//!
//! ```sh
//! cargo run -p allocator-tests --bin http_example 127.0.0.1:6061 &   # the service
//! cargo run -p allocator-tests --bin http_load 127.0.0.1:6061
//! ```
//!
//! It opens 20, then 100 idle connections, waits 0.2 s and scrapes
//! `/debug/pprof/heap` once; then starts 50 scrapes at once. It prints the
//! status of each scrape (or the error), counted.
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// One scrape: its status code, or what went wrong.
fn scrape(addr: SocketAddr) -> String {
    let run = || -> std::io::Result<String> {
        let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(10))?;
        s.set_read_timeout(Some(Duration::from_secs(30)))?;
        s.write_all(b"GET /debug/pprof/heap HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")?;
        let mut raw = Vec::new();
        s.read_to_end(&mut raw)?;
        let head = String::from_utf8_lossy(&raw[..raw.len().min(32)]).into_owned();
        Ok(head.split(' ').nth(1).unwrap_or("no answer").to_owned())
    };
    run().unwrap_or_else(|e| format!("error: {e}"))
}

fn main() {
    let addr: SocketAddr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:6060".into())
        .parse()
        .expect("an address such as 127.0.0.1:6060");
    for n in [20, 100] {
        let idle: Vec<TcpStream> = (0..n)
            .filter_map(|_| TcpStream::connect_timeout(&addr, Duration::from_secs(10)).ok())
            .collect();
        std::thread::sleep(Duration::from_millis(200));
        println!("{} idle + 1 scrape: {}", idle.len(), scrape(addr));
        drop(idle);
        std::thread::sleep(Duration::from_millis(500));
    }
    let results: Vec<String> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..50).map(|_| s.spawn(|| scrape(addr))).collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let mut counts = BTreeMap::new();
    for r in results {
        *counts.entry(r).or_insert(0) += 1;
    }
    println!("50 concurrent scrapes: {counts:?}");
}
