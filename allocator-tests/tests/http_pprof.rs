//! `go tool pprof` as the real client of the running `http` example
//! (examples/http.rs, built here as the `http_example` binary): the heap
//! and allocs profiles and a 2-second delta, read with `-raw` and `-top`.
use allocator_tests::http::{get, go_pprof};
use allocator_tests::{parse_go_raw, Decoded, Keep};
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The example's sites (examples/http.rs; its crate is `http_example` here).
const CATALOG: &str = "load_catalog";
const CACHE: &str = "Cache::insert";
const RENDER: &str = "render_response";
const PARSE: &str = "parse_request";

/// Services started, to be killed should the watchdog abort the test.
static CHILDREN: Mutex<Vec<Arc<Mutex<Child>>>> = Mutex::new(Vec::new());

/// Aborts the process if the test is not done in `secs` (a hang fails),
/// killing the services first so that none outlives the test.
fn watchdog(secs: u64, what: &'static str) {
    std::thread::spawn(move || {
        std::thread::sleep(Duration::from_secs(secs));
        eprintln!("watchdog: {what} did not finish in {secs} s (hang)");
        for child in CHILDREN.lock().unwrap_or_else(|e| e.into_inner()).iter() {
            if let Ok(mut child) = child.try_lock() {
                let _ = child.kill();
            }
        }
        std::process::abort();
    });
}

/// The example, running; killed on drop.
struct Service {
    child: Arc<Mutex<Child>>,
    addr: SocketAddr,
}

impl Service {
    /// Starts the example on a free port, at a rate that gives plenty of
    /// samples, and waits until every site has been sampled.
    fn start() -> Service {
        let mut child = Command::new(env!("CARGO_BIN_EXE_http_example"))
            .arg("127.0.0.1:0")
            .env("MEMPROFILERATE", "65536")
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let child = Arc::new(Mutex::new(child));
        CHILDREN
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(Arc::clone(&child));
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).unwrap();
        let addr = line
            .trim()
            .strip_prefix("serving http://")
            .and_then(|a| a.strip_suffix("/debug/pprof/"))
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .parse()
            .unwrap();
        let service = Service { child, addr };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let text = get(addr, "/debug/pprof/heap?debug=1").text();
            if [CATALOG, CACHE, RENDER, PARSE]
                .iter()
                .all(|f| text.contains(f))
            {
                break service;
            }
            assert!(Instant::now() < deadline, "sites never sampled:\n{text}");
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn url(&self, profile: &str) -> String {
        format!("http://{}/debug/pprof/{profile}", self.addr)
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let mut child = self.child.lock().unwrap_or_else(|e| e.into_inner());
        let _ = child.kill();
        let _ = child.wait();
    }
}

fn type_names(d: &Decoded) -> Vec<&str> {
    d.sample_types.iter().map(|(t, _)| t.as_str()).collect()
}

fn raw(args: &[&str]) -> (String, Decoded) {
    let text = go_pprof(args);
    let decoded = parse_go_raw(&text, "go tool pprof", &Keep::Funcs(&[]));
    (text, decoded)
}

const TYPES: [&str; 4] = [
    "alloc_objects",
    "alloc_space",
    "inuse_objects",
    "inuse_space",
];

#[test]
fn heap_profile_over_http() {
    watchdog(120, "heap over http");
    let s = Service::start();
    let (text, d) = raw(&["-raw", &s.url("heap")]);
    assert_eq!(type_names(&d), TYPES);
    assert_eq!(d.period, 65536);
    assert!(!text.contains("[dflt]"), "heap opens on the last type");
    assert!(!text.contains("Duration:"), "a snapshot has no duration");
    // 8 MiB kept since the start: allocated = in use, an estimate within
    // 50% (over 5 standard deviations for 128 blocks of 64 KiB).
    let catalog = d.sum(CATALOG, None);
    assert_eq!(catalog[1], catalog[3]);
    assert!((4 << 20..12 << 20).contains(&catalog[3]), "{catalog:?}");
    assert!(d.sum(CACHE, None)[3] > 0, "cache entries in use");
    assert!(d.sum(RENDER, None)[1] > 0, "responses allocated");

    let top = go_pprof(&["-top", &s.url("heap")]);
    for want in ["Type: inuse_space", CATALOG, CACHE] {
        assert!(top.contains(want), "{want} not in:\n{top}");
    }
}

#[test]
fn allocs_profile_opens_on_alloc_space() {
    watchdog(120, "allocs over http");
    let s = Service::start();
    let (text, d) = raw(&["-raw", &s.url("allocs")]);
    assert_eq!(type_names(&d), TYPES);
    assert!(text.contains("alloc_space/bytes[dflt]"), "{text}");
    assert!(d.sum(PARSE, None)[1] > 0);
    let top = go_pprof(&["-top", &s.url("allocs")]);
    for want in ["Type: alloc_space", RENDER, PARSE] {
        assert!(top.contains(want), "{want} not in:\n{top}");
    }
}

#[test]
fn delta_profile_shows_the_window() {
    watchdog(120, "delta over http");
    let s = Service::start();
    let before = raw(&["-raw", &s.url("allocs")]).1;
    let (text, delta) = raw(&["-raw", "-seconds", "2", &s.url("heap")]);
    let after = raw(&["-raw", &s.url("allocs")]).1;

    assert_eq!(type_names(&delta), TYPES);
    let duration: f64 = text
        .lines()
        .find_map(|l| l.strip_prefix("Duration: "))
        .unwrap_or_else(|| panic!("no duration in:\n{text}"))
        .trim()
        .parse()
        .unwrap();
    assert!((2.0..10.0).contains(&duration), "duration {duration}");

    // Allocated before the window, live at its end: no allocation in the
    // delta, in use as at the end (Go would show in-use 0 here).
    let catalog = delta.sum(CATALOG, None);
    assert_eq!(catalog[..2], [0, 0], "{catalog:?}");
    assert!(catalog[3] >= 4 << 20, "{catalog:?}");

    // Allocated during the window only: at most what full profiles taken
    // before and after it differ by (rounding aside), and more than zero.
    let grown = after.sum(RENDER, None)[1] - before.sum(RENDER, None)[1];
    let in_window = delta.sum(RENDER, None)[1];
    assert!(in_window > 0);
    assert!(
        in_window <= grown + grown / 100 + (256 << 10),
        "delta {in_window} > growth {grown} between full profiles"
    );
    assert!(in_window < after.sum(RENDER, None)[1]);
}
