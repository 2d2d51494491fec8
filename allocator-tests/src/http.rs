//! A raw HTTP/1.1 client for the `/debug/pprof` tests: sends bytes exactly
//! as given, reads the whole answer (the server closes after it) and
//! checks its framing; and `go tool pprof` run against a URL.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::time::Duration;

/// A parsed response.
#[derive(Debug)]
pub struct Reply {
    /// Status code.
    pub status: u16,
    /// Headers in order, names as sent.
    pub headers: Vec<(String, String)>,
    /// The body (empty for HEAD).
    pub body: Vec<u8>,
}

impl Reply {
    /// The value of header `name`, compared without regard to case.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// Asserts the headers every Go pprof error has, and the reason.
    pub fn assert_error(&self, status: u16, reason: &str) {
        assert_eq!(self.status, status, "{self:?}");
        assert_eq!(self.text(), format!("{reason}\n"));
        assert_eq!(self.header("X-Go-Pprof"), Some("1"));
        assert_eq!(self.header("X-Content-Type-Options"), Some("nosniff"));
        assert_eq!(
            self.header("Content-Type"),
            Some("text/plain; charset=utf-8")
        );
        assert_eq!(self.header("Content-Disposition"), None);
    }
}

/// Connects to `addr` with read and write timeouts of `timeout`.
pub fn connect(addr: SocketAddr, timeout: Duration) -> TcpStream {
    let s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).unwrap();
    s.set_read_timeout(Some(timeout)).unwrap();
    s.set_write_timeout(Some(timeout)).unwrap();
    s
}

/// Sends `raw` and reads the reply (to EOF). `head_only`: the request was
/// HEAD, so the body is not sent whatever `Content-Length` says.
pub fn exchange(addr: SocketAddr, raw: &[u8], head_only: bool) -> Reply {
    let mut s = connect(addr, Duration::from_secs(30));
    s.write_all(raw).unwrap();
    read_reply(&mut s, head_only)
}

/// `GET target` with a Host header.
pub fn get(addr: SocketAddr, target: &str) -> Reply {
    request(addr, "GET", target)
}

/// `method target` with a Host header.
pub fn request(addr: SocketAddr, method: &str, target: &str) -> Reply {
    let raw = format!("{method} {target} HTTP/1.1\r\nHost: {addr}\r\nUser-Agent: test\r\n\r\n");
    exchange(addr, raw.as_bytes(), method == "HEAD")
}

/// Reads a whole reply from `s` until the server closes, and checks that
/// `Content-Length` and `Connection: close` frame it.
pub fn read_reply(s: &mut TcpStream, head_only: bool) -> Reply {
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    parse_reply(&raw, head_only)
}

/// Parses and checks a reply's framing.
pub fn parse_reply(raw: &[u8], head_only: bool) -> Reply {
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no end of head in {:?}", String::from_utf8_lossy(raw)))
        + 4;
    let head = std::str::from_utf8(&raw[..end - 4]).unwrap();
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap();
    let mut parts = status_line.splitn(3, ' ');
    assert_eq!(parts.next(), Some("HTTP/1.1"), "{status_line}");
    let status = parts.next().unwrap().parse().unwrap();
    let headers: Vec<(String, String)> = lines
        .map(|l| {
            let (k, v) = l.split_once(": ").unwrap();
            (k.to_owned(), v.to_owned())
        })
        .collect();
    let reply = Reply {
        status,
        headers,
        body: raw[end..].to_vec(),
    };
    let len: usize = reply.header("Content-Length").unwrap().parse().unwrap();
    assert_eq!(reply.header("Connection"), Some("close"));
    assert!(reply.header("Date").is_some_and(|d| d.ends_with(" GMT")));
    if head_only {
        assert!(reply.body.is_empty(), "HEAD answered with a body");
    } else {
        assert_eq!(reply.body.len(), len, "Content-Length");
    }
    reply
}

/// Is `body` gzip that decompresses to a non-empty message?
pub fn is_gzip_profile(body: &[u8]) -> bool {
    let mut raw = Vec::new();
    body.starts_with(&[0x1f, 0x8b])
        && flate2::read::GzDecoder::new(body)
            .read_to_end(&mut raw)
            .is_ok()
        && !raw.is_empty()
}

/// Runs `go tool pprof` with `args` (a URL among them), its files kept in
/// a temporary directory; returns stdout. Fails the test if pprof fails.
pub fn go_pprof(args: &[&str]) -> String {
    let dir = crate::temp_dir("pprof-home");
    let out = Command::new("go")
        .args(["tool", "pprof"])
        .args(args)
        .env("PPROF_TMPDIR", &dir)
        .output()
        .unwrap_or_else(|e| panic!("cannot run go tool pprof ({e}): install golang-go"));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "go tool pprof {args:?} failed:\n{}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// Services started by [`Example::start`], killed should
/// [`example_watchdog`] abort the test.
static EXAMPLES: std::sync::Mutex<Vec<std::sync::Arc<std::sync::Mutex<std::process::Child>>>> =
    std::sync::Mutex::new(Vec::new());

/// Aborts the process if the test is not done in `secs` (a hang fails),
/// killing the examples it started first so that none outlives the test.
pub fn example_watchdog(secs: u64, what: &'static str) {
    std::thread::spawn(move || {
        std::thread::sleep(Duration::from_secs(secs));
        eprintln!("watchdog: {what} did not finish in {secs} s (hang)");
        for child in EXAMPLES.lock().unwrap_or_else(|e| e.into_inner()).iter() {
            if let Ok(mut child) = child.try_lock() {
                let _ = child.kill();
            }
        }
        std::process::abort();
    });
}

/// The `http` example (examples/http.rs), running on a free port; killed
/// on drop.
pub struct Example {
    child: std::sync::Arc<std::sync::Mutex<std::process::Child>>,
    /// Where it serves.
    pub addr: SocketAddr,
}

impl Example {
    /// Starts the example binary `exe` (a test's
    /// `env!("CARGO_BIN_EXE_http_example")`) at a rate that gives plenty
    /// of samples, and waits until every one of `sites` shows in its heap
    /// profile (60 s at most, then the test fails).
    pub fn start(exe: &str, sites: &[&str]) -> Example {
        use std::io::{BufRead, BufReader};
        use std::time::Instant;
        let mut child = Command::new(exe)
            .arg("127.0.0.1:0")
            .env("MEMPROFILERATE", "65536")
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {exe}: {e}"));
        let stdout = child.stdout.take().unwrap();
        let child = std::sync::Arc::new(std::sync::Mutex::new(child));
        EXAMPLES
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(std::sync::Arc::clone(&child));
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).unwrap();
        let addr = line
            .trim()
            .strip_prefix("serving http://")
            .and_then(|a| a.strip_suffix("/debug/pprof/"))
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .parse()
            .unwrap();
        let example = Example { child, addr };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let text = get(addr, "/debug/pprof/heap?debug=1").text();
            if sites.iter().all(|f| text.contains(f)) {
                break example;
            }
            assert!(
                Instant::now() < deadline,
                "{sites:?} never all sampled:\n{text}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// `http://ADDR/debug/pprof/{profile}`.
    pub fn url(&self, profile: &str) -> String {
        format!("http://{}/debug/pprof/{profile}", self.addr)
    }
}

impl Drop for Example {
    fn drop(&mut self) {
        let mut child = self.child.lock().unwrap_or_else(|e| e.into_inner());
        let _ = child.kill();
        let _ = child.wait();
    }
}
