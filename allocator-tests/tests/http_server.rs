//! The built-in `/debug/pprof` server at the HTTP level, with raw
//! `TcpStream` requests: every endpoint, header and error of Go's
//! `net/http/pprof` that we serve, malformed and oversized requests, slow
//! clients, the connection bound, delta waits and `stop`. (Idle and slow
//! clients in numbers, coalesced scrapes and resource bounds have binaries
//! of their own: http_idle, http_slowloris, http_coalesce, http_bounds.)
//!
//! Tests run one at a time (`serial`): delta slots are process-wide, and
//! `stop` is checked by the port being closed.
use allocator_tests::http::{connect, exchange, get, is_gzip_profile, read_reply, request};
use allocator_tests::{watchdog, Watchdog};
use memprof::http::{Options, Server};
use std::alloc::System;
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

#[global_allocator]
static A: memprof::Sampled<System> = memprof::Sampled::new(System);

static SERIAL: Mutex<()> = Mutex::new(());

/// Blocks kept for the whole run, so profiles have a known site.
static KEPT: Mutex<Vec<Vec<u8>>> = Mutex::new(Vec::new());

#[inline(never)]
fn kept_site() {
    let mut kept = KEPT.lock().unwrap_or_else(|e| e.into_inner());
    if kept.is_empty() {
        kept.extend((0..64).map(|i| vec![i as u8; 1000]));
    }
}

/// Takes the test lock, arms the watchdog, samples every allocation and
/// starts a server with a 1 s read timeout.
fn setup(
    what: &'static str,
    max_connections: usize,
) -> ((MutexGuard<'static, ()>, Watchdog), Server) {
    let guard = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let dog = watchdog(120, what);
    memprof::set_rate(1);
    kept_site();
    let mut options = Options::default();
    options.read_timeout = Duration::from_secs(1);
    options.max_connections = max_connections;
    let server = memprof::http::serve_with("127.0.0.1:0", options).unwrap();
    ((guard, dog), server)
}

fn assert_common(r: &allocator_tests::http::Reply, content_type: &str) {
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.header("X-Content-Type-Options"), Some("nosniff"));
    assert_eq!(r.header("Content-Type"), Some(content_type));
    assert_eq!(r.header("X-Go-Pprof"), None);
}

#[test]
fn index_page_links_the_profiles() {
    let (_g, server) = setup("index", 16);
    let addr = server.local_addr();
    let r = get(addr, "/debug/pprof/");
    assert_common(&r, "text/html; charset=utf-8");
    assert_eq!(r.header("Content-Disposition"), None);
    let html = r.text();
    for want in [
        "<a href='heap?debug=1'>heap</a>",
        "<a href='allocs?debug=1'>allocs</a>",
        "A sampling of all past memory allocations",
        "A sampling of memory allocations of live objects.",
    ] {
        assert!(html.contains(want), "{want} not in {html}");
    }
    let r = get(addr, "/debug/pprof?debug=1");
    assert_eq!(r.status, 301);
    assert_eq!(r.header("Location"), Some("/debug/pprof/?debug=1"));
}

#[test]
fn echoed_strings_are_escaped() {
    let (_g, server) = setup("escape", 16);
    let addr = server.local_addr();
    let r = get(addr, "/debug/pprof?<script>alert('x')</script>=\"&y");
    assert_eq!(r.status, 301);
    assert_eq!(
        r.text(),
        "<a href=\"/debug/pprof/?&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;=&#34;&amp;y\">\
         Moved Permanently</a>.\n\n"
    );
    // Unknown names are not echoed at all, and errors are plain text.
    for target in [
        "/debug/pprof/<script>alert(1)</script>",
        "/debug/pprof/%3Cscript%3E",
        "/<script>",
    ] {
        let r = get(addr, target);
        assert_eq!(r.status, 404);
        assert!(!r.text().contains("<script>"), "{target}: {}", r.text());
        assert_eq!(r.header("Content-Type"), Some("text/plain; charset=utf-8"));
    }
}

#[test]
fn profiles_are_gzip_protos_with_go_headers() {
    let (_g, server) = setup("protos", 16);
    let addr = server.local_addr();
    for (target, file) in [
        ("/debug/pprof/heap", "heap"),
        ("/debug/pprof/heap?gc=1", "heap"),
        ("/debug/pprof/heap?debug=0", "heap"),
        ("/debug/pprof/heap?debug=abc", "heap"),
        ("/debug/pprof/allocs", "allocs"),
        ("/debug/pprof/allocs?gc=1&debug=0", "allocs"),
        ("http://localhost/debug/pprof/heap", "heap"),
    ] {
        let r = get(addr, target);
        assert_common(&r, "application/octet-stream");
        let disposition = format!("attachment; filename=\"{file}\"");
        assert_eq!(r.header("Content-Disposition"), Some(&disposition[..]));
        assert!(is_gzip_profile(&r.body), "{target}");
    }
}

#[test]
fn debug_gives_go_text() {
    let (_g, server) = setup("text", 16);
    let addr = server.local_addr();
    for target in [
        "/debug/pprof/heap?debug=1",
        "/debug/pprof/heap?debug=2",
        "/debug/pprof/allocs?debug=1",
        "/debug/pprof/heap?gc=1&debug=-1",
    ] {
        let r = get(addr, target);
        assert_common(&r, "text/plain; charset=utf-8");
        assert_eq!(r.header("Content-Disposition"), None);
        let text = r.text();
        assert!(text.starts_with("heap profile: "), "{target}: {text}");
        assert!(text.contains("kept_site"), "{target}");
    }
    // HTTP/1.0 and a request body that is read and ignored.
    let raw = b"GET /debug/pprof/heap?debug=1 HTTP/1.0\r\nContent-Length: 5\r\n\r\nhello";
    let r = exchange(addr, raw, false);
    assert!(r.text().starts_with("heap profile: "));
    // A client that ends its request by shutting its sending side is
    // answered (the request and the end of stream may arrive together).
    let mut s = connect(addr, Duration::from_secs(30));
    s.write_all(b"GET /debug/pprof/heap?debug=1 HTTP/1.1\r\n\r\n")
        .unwrap();
    s.shutdown(std::net::Shutdown::Write).unwrap();
    assert!(read_reply(&mut s, false)
        .text()
        .starts_with("heap profile: "));
}

#[test]
fn head_sends_the_headers_only() {
    let (_g, server) = setup("head", 16);
    let r = request(server.local_addr(), "HEAD", "/debug/pprof/heap");
    assert_common(&r, "application/octet-stream");
    assert!(
        r.header("Content-Length")
            .unwrap()
            .parse::<usize>()
            .unwrap()
            > 20
    );
    assert!(r.body.is_empty());
}

#[test]
fn errors_are_plain_text_with_x_go_pprof() {
    let (_g, server) = setup("errors", 16);
    let addr = server.local_addr();
    for name in ["goroutine", "profile", "cmdline", "heap/", "Heap", "trace"] {
        get(addr, &format!("/debug/pprof/{name}")).assert_error(404, "Unknown profile");
    }
    let invalid = "invalid value for \"seconds\" - must be a positive integer";
    for bad in ["0", "-3", "1.5", "abc", "%20", "99999999999999999999"] {
        get(addr, &format!("/debug/pprof/heap?seconds={bad}")).assert_error(400, invalid);
    }
    get(addr, "/debug/pprof/allocs?seconds=2&debug=1")
        .assert_error(400, "seconds and debug params are incompatible");
    get(addr, "/debug/pprof/heap?seconds=601").assert_error(
        400,
        "profile duration exceeds the server's limit of 600 seconds",
    );
    for method in ["POST", "PUT", "DELETE", "OPTIONS", "PATCH"] {
        let r = request(addr, method, "/debug/pprof/heap");
        r.assert_error(405, "Method Not Allowed");
        assert_eq!(r.header("Allow"), Some("GET, HEAD"));
    }
    let r = request(addr, "PUT", "/debug/pprof/symbol");
    r.assert_error(405, "Method Not Allowed");
    assert_eq!(r.header("Allow"), Some("GET, HEAD, POST"));
    // Outside /debug/pprof/: Go's mux 404, without X-Go-Pprof.
    let r = get(addr, "/");
    assert_eq!((r.status, r.text().as_str()), (404, "404 page not found\n"));
    assert_eq!(r.header("X-Go-Pprof"), None);
    assert_eq!(r.header("X-Content-Type-Options"), Some("nosniff"));
}

#[test]
fn symbol_names_addresses() {
    let (_g, server) = setup("symbol", 16);
    let addr = server.local_addr();
    let r = get(addr, "/debug/pprof/symbol");
    assert_common(&r, "text/plain; charset=utf-8");
    assert_eq!(r.text(), "num_symbols: 1\n");
    let pc = kept_site as fn() as usize;
    let body = format!("{pc:#x}+0x0+junk");
    let raw = format!(
        "POST /debug/pprof/symbol HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let text = exchange(addr, raw.as_bytes(), false).text();
    let want = format!("num_symbols: 1\n{pc:#x} http_server::kept_site\n");
    assert_eq!(text, want);
    // The same through the query, as Go also accepts.
    let text = get(addr, &format!("/debug/pprof/symbol?{pc:#x}")).text();
    assert_eq!(text, want);
}

#[test]
fn delta_profiles_cover_the_window() {
    let (_g, server) = setup("delta", 16);
    let addr = server.local_addr();
    for (name, file) in [("heap", "heap-delta"), ("allocs", "allocs-delta")] {
        let start = Instant::now();
        let r = get(addr, &format!("/debug/pprof/{name}?seconds=1"));
        assert!(start.elapsed() >= Duration::from_secs(1));
        assert_common(&r, "application/octet-stream");
        let disposition = format!("attachment; filename=\"{file}\"");
        assert_eq!(r.header("Content-Disposition"), Some(&disposition[..]));
        assert!(is_gzip_profile(&r.body));
    }
}

#[test]
fn malformed_and_oversized_requests_get_400() {
    let (_g, server) = setup("malformed", 16);
    let addr = server.local_addr();
    let long_line = format!("GET /{} HTTP/1.1\r\n\r\n", "a".repeat(9000));
    let long_head = format!(
        "GET / HTTP/1.1\r\n{}\r\n",
        "X-Filler: 0123456789012345678901234567890123456789\r\n".repeat(400)
    );
    let no_end = format!("GET / HTTP/1.1\r\nX: {}", "z".repeat(20_000));
    for (raw, reason) in [
        ("GARBAGE\r\n\r\n".to_owned(), "malformed request line"),
        ("GET /x\r\n\r\n".into(), "malformed request line"),
        ("GET /x HTTP/1.1 x\r\n\r\n".into(), "malformed request line"),
        ("GET /x HTP/1.1\r\n\r\n".into(), "malformed request line"),
        ("GET /x y HTTP/1.1\r\n\r\n".into(), "malformed request line"),
        (
            "GET /\x7f HTTP/1.1\r\n\r\n".into(),
            "malformed request line",
        ),
        (
            "GET / HTTP/1.1\r\nBad Header\r\n\r\n".into(),
            "malformed header line",
        ),
        (
            "GET / HTTP/1.1\r\n folded\r\n\r\n".into(),
            "obsolete header line folding",
        ),
        (
            "GET / HTTP/1.1\r\nContent-Length: x\r\n\r\n".into(),
            "bad Content-Length",
        ),
        (
            "POST /debug/pprof/symbol HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n".into(),
            "chunked request bodies are not supported",
        ),
        (
            "POST /debug/pprof/symbol HTTP/1.1\r\nContent-Length: 100000\r\n\r\n".into(),
            "request body too large",
        ),
        (
            "GET /debug/pprof/%zz HTTP/1.1\r\n\r\n".into(),
            "malformed request target",
        ),
        (long_line, "request line too long"),
        (long_head, "request header too large"),
        (no_end, "request header too large"),
    ] {
        let r = exchange(addr, raw.as_bytes(), false);
        let start: String = raw.chars().take(60).collect();
        assert_eq!(r.status, 400, "{start:?}");
        r.assert_error(400, reason);
    }
    exchange(addr, b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", false)
        .assert_error(505, "HTTP Version Not Supported");
    // The server still serves after all that.
    assert_eq!(get(addr, "/debug/pprof/heap").status, 200);
}

#[test]
fn slow_clients_time_out_while_others_are_served() {
    let (_g, server) = setup("slow clients", 16);
    let addr = server.local_addr();
    let start = Instant::now();
    // Half a request, then nothing.
    let mut half = connect(addr, Duration::from_secs(10));
    half.write_all(b"GET /debug/pprof/heap HTTP/1.1\r\nHost:")
        .unwrap();
    // One byte every 100 ms: each read is quick, the whole is too slow.
    // (It stops sending once the answer arrives, as a real client would.)
    let trickle = std::thread::spawn(move || {
        let mut s = connect(addr, Duration::from_secs(10));
        let t = Instant::now();
        for b in b"GET /debug/pprof/heap HTTP/1.1\r\nHost: x\r\nX-Slow: 0123456789\r\n\r\n" {
            s.set_nonblocking(true).unwrap();
            let answered = matches!(s.peek(&mut [0]), Ok(n) if n > 0);
            s.set_nonblocking(false).unwrap();
            if answered || s.write_all(&[*b]).is_err() {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let r = read_reply(&mut s, false);
        (r, t.elapsed())
    });
    // Others are served meanwhile.
    let r = get(addr, "/debug/pprof/symbol");
    assert_eq!(r.status, 200);
    assert!(
        start.elapsed() < Duration::from_millis(900),
        "served at once"
    );
    let r = read_reply(&mut half, false);
    r.assert_error(408, "request timeout");
    let waited = start.elapsed();
    assert!(waited >= Duration::from_millis(900) && waited < Duration::from_secs(5));
    let (r, took) = trickle.join().unwrap();
    r.assert_error(408, "request timeout");
    assert!(took < Duration::from_secs(5), "trickle held {took:?}");
    // An idle connection that sends nothing gets the same.
    let mut idle = connect(addr, Duration::from_secs(10));
    read_reply(&mut idle, false).assert_error(408, "request timeout");
}

#[test]
fn connections_are_bounded() {
    let (_g, server) = setup("bound", 4);
    let addr = server.local_addr();
    // Four idle connections fill the server; a fifth, a real request,
    // evicts the oldest of them and is served.
    let mut idle: Vec<TcpStream> = (0..4)
        .map(|_| connect(addr, Duration::from_secs(10)))
        .collect();
    std::thread::sleep(Duration::from_millis(100));
    // (`symbol`: an answer that costs no profile build, so the timing
    // is the server's alone.)
    let start = Instant::now();
    assert_eq!(get(addr, "/debug/pprof/symbol").status, 200);
    assert!(start.elapsed() < Duration::from_millis(900));
    // The oldest was closed (after a best-effort 503), not left to time out.
    let mut rest = Vec::new();
    idle[0].read_to_end(&mut rest).unwrap();
    assert!(
        rest.is_empty() || rest.starts_with(b"HTTP/1.1 503 "),
        "{rest:?}"
    );
    assert!(start.elapsed() < Duration::from_millis(900));
    drop(idle.drain(..));
    // Four connections being answered (delta waits) cannot be evicted:
    // then a new one is refused with 503 at once.
    let waiting: Vec<TcpStream> = (0..4)
        .map(|_| {
            let mut s = connect(addr, Duration::from_secs(30));
            s.write_all(b"GET /debug/pprof/heap?seconds=60 HTTP/1.1\r\n\r\n")
                .unwrap();
            s
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    let start = Instant::now();
    get(addr, "/debug/pprof/heap").assert_error(503, "too many connections");
    assert!(start.elapsed() < Duration::from_millis(900));
    // Once they go, clients are served again.
    drop(waiting);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = get(addr, "/debug/pprof/heap");
        if r.status == 200 {
            break;
        }
        r.assert_error(503, "too many connections");
        assert!(Instant::now() < deadline, "slots never freed");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn delta_waits_are_bounded_and_end_with_their_client() {
    let (_g, server) = setup("delta slots", 16);
    let addr = server.local_addr();
    // Start 60-second deltas one by one: each waits (no answer within a
    // second) until all slots are taken, then the next is refused at once.
    let mut waiting: Vec<TcpStream> = Vec::new();
    let refused = loop {
        let mut s = connect(addr, Duration::from_secs(30));
        s.write_all(b"GET /debug/pprof/heap?seconds=60 HTTP/1.1\r\n\r\n")
            .unwrap();
        s.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
        match s.peek(&mut [0]) {
            Ok(n) if n > 0 => {
                s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
                break read_reply(&mut s, false);
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                waiting.push(s)
            }
            other => panic!("delta request: {other:?}"),
        }
        assert!(waiting.len() <= memprof::http::MAX_CONCURRENT_DELTAS);
    };
    refused.assert_error(503, "too many delta profiles in progress");
    assert_eq!(waiting.len(), memprof::http::MAX_CONCURRENT_DELTAS);
    // The clients leave: their waits end and the slots come back.
    drop(waiting);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = get(addr, "/debug/pprof/allocs?seconds=1");
        if r.status == 200 {
            break;
        }
        r.assert_error(503, "too many delta profiles in progress");
        assert!(
            Instant::now() < deadline,
            "abandoned waits kept their slots"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn stop_ends_waits_and_closes_the_port() {
    let (_g, server) = setup("stop", 16);
    let addr: SocketAddr = server.local_addr();
    let mut waiting = connect(addr, Duration::from_secs(30));
    waiting
        .write_all(b"GET /debug/pprof/heap?seconds=60 HTTP/1.1\r\n\r\n")
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let start = Instant::now();
    server.stop();
    assert!(start.elapsed() < Duration::from_secs(5), "stop waited");
    // The waiting client is let go (connection closed, with or without an
    // answer) long before its 60 s.
    let mut rest = Vec::new();
    let _ = waiting.read_to_end(&mut rest);
    assert!(start.elapsed() < Duration::from_secs(5));
    assert!(TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_err());
    // Dropping a server stops it too.
    let server = memprof::http::serve("127.0.0.1:0").unwrap();
    let addr = server.local_addr();
    drop(server);
    assert!(TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_err());
}
