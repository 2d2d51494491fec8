//! Readers that do not read hold nothing that others need: with a single
//! worker, four clients that ask for a multi-megabyte text profile through
//! a 4 KiB receive buffer and then read nothing do not stop other
//! requests from being answered at once (the event loop sends, workers
//! only build), and each slow reader still gets its whole answer when it
//! reads at last.
use allocator_tests::http::{get, read_reply};
use allocator_tests::watchdog;
use memprof::http::Options;
use std::alloc::System;
use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::os::fd::FromRawFd;
use std::sync::Mutex;
use std::time::{Duration, Instant};

#[global_allocator]
static A: memprof::Sampled<System> = memprof::Sampled::new(System);

/// Blocks kept for the whole run: a record each (distinct sizes).
static KEPT: Mutex<Vec<Vec<u8>>> = Mutex::new(Vec::new());

#[inline(never)]
fn kept_site(n: usize) {
    let mut kept = KEPT.lock().unwrap_or_else(|e| e.into_inner());
    kept.extend((0..n).map(|i| vec![i as u8; 64 + i]));
}

/// A connection to `addr` (IPv4) whose receive buffer is 4 KiB, set
/// before connecting so that the window it offers stays small.
fn small_window(addr: SocketAddr) -> TcpStream {
    let SocketAddr::V4(v4) = addr else {
        panic!("IPv4 only")
    };
    // SAFETY: creates a socket; the descriptor is checked below and then
    // owned by the TcpStream.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0) };
    assert!(fd >= 0, "socket");
    let size: libc::c_int = 4096;
    // SAFETY: `fd` is an open socket; the option value points to a c_int
    // of the length given.
    let r = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_RCVBUF,
            (&size as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    assert_eq!(r, 0, "SO_RCVBUF");
    let sa = libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: v4.port().to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from_ne_bytes(v4.ip().octets()),
        },
        sin_zero: [0; 8],
    };
    // SAFETY: `sa` is a valid sockaddr_in and the length is its size.
    let r = unsafe {
        libc::connect(
            fd,
            (&sa as *const libc::sockaddr_in).cast(),
            std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
        )
    };
    assert_eq!(r, 0, "connect: {}", std::io::Error::last_os_error());
    // SAFETY: `fd` is an open, connected socket that nothing else owns.
    unsafe { TcpStream::from_raw_fd(fd) }
}

#[test]
fn readers_that_do_not_read_block_nothing() {
    let _dog = watchdog(120, "http slow reader");
    memprof::set_rate(1);
    kept_site(1000);
    let mut options = Options::default();
    options.max_workers = 1;
    let server = memprof::http::serve_with("127.0.0.1:0", options).unwrap();
    let addr = server.local_addr();
    let target = "/debug/pprof/heap?debug=1";
    let whole = get(addr, target).body.len();
    eprintln!("{whole} bytes");
    assert!(whole > 1 << 20, "a {whole}-byte answer fits socket buffers");
    let mut slow: Vec<TcpStream> = (0..4)
        .map(|_| {
            let mut s = small_window(addr);
            write!(s, "GET {target} HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
            s
        })
        .collect();
    // Their answers are built and stuck in flight.
    std::thread::sleep(Duration::from_secs(2));
    for _ in 0..3 {
        let start = Instant::now();
        let r = get(addr, "/debug/pprof/symbol");
        assert_eq!(r.status, 200);
        assert!(
            start.elapsed() < Duration::from_secs(1),
            "answered after {:?} beside the slow readers",
            start.elapsed()
        );
    }
    assert_eq!(get(addr, "/debug/pprof/heap").status, 200);
    // Reading at last, each gets all of its answer.
    for s in &mut slow {
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let r = read_reply(s, false);
        assert_eq!(r.status, 200);
        assert!(r.text().starts_with("heap profile: "));
        assert!(r.body.len() > 1 << 20);
    }
    server.stop();
}
