//! The endpoints: Go's `net/http/pprof` routes, query parameters, headers
//! and error texts, for the heap and allocs profiles. No I/O happens here:
//! a request becomes a [`Response`] built in memory, so no memprof lock is
//! held while a client is written to.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use super::coalesce::{self, Key};
use super::response::{header_safe, html_escape};
use super::url::{form_value, split, strip_authority};
use super::Response;
use crate::HeapProfile;

/// The longest `?seconds=N` window accepted (10 minutes). Longer ones get
/// `400 profile duration exceeds the server's limit of 600 seconds`, as
/// Go's server answers a window longer than its `WriteTimeout`.
pub const MAX_DELTA_SECONDS: u64 = 600;

/// Delta profiles (`?seconds=N`) that may wait at once, process-wide; more
/// get `503`. A waiting request holds a connection (and, in [`handle`], a
/// thread), so this keeps plain profile fetches served while some wait.
pub const MAX_CONCURRENT_DELTAS: usize = 8;

static DELTAS: AtomicUsize = AtomicUsize::new(0);

const PREFIX: &str = "/debug/pprof/";

/// Answers one request for the `/debug/pprof/` endpoints, the way Go's
/// `net/http/pprof` does: `method` is the HTTP method (`GET`, `HEAD`, ...)
/// and `path_and_query` the request target, e.g.
/// `/debug/pprof/heap?debug=1` (an absolute `http://host/...` target works
/// too). Mount it at `/debug/pprof/` (and `/debug/pprof`) in any server.
///
/// - For `HEAD`, the response is that of `GET`, body included; a server
///   sends only its headers (most frameworks do this by themselves).
/// - `?seconds=N` makes this call take N seconds (a delta profile). In an
///   async server, call it from a blocking task (e.g.
///   `tokio::task::spawn_blocking`).
/// - The `symbol` endpoint reads addresses from a `POST` body: use
///   [`handle_with_body`] to serve it.
/// - Calls for the same profile in the same format (`heap`, `allocs`,
///   `peak`, or the index) made while one is being built wait for that
///   build and get a copy of its answer: many scrapes at once cost one
///   build.
///
/// ```
/// let r = memprof::http::handle("GET", "/debug/pprof/heap?debug=1");
/// assert_eq!(r.status, 200);
/// assert_eq!(r.header("Content-Type"), Some("text/plain; charset=utf-8"));
/// assert!(r.body.starts_with(b"heap profile: "));
///
/// let r = memprof::http::handle("GET", "/debug/pprof/heap");
/// assert_eq!(r.header("Content-Disposition"), Some("attachment; filename=\"heap\""));
/// assert_eq!(r.body[..2], [0x1f, 0x8b]); // gzip-compressed profile.proto
///
/// let r = memprof::http::handle("GET", "/debug/pprof/goroutine");
/// assert_eq!((r.status, &r.body[..]), (404, &b"Unknown profile\n"[..]));
/// ```
pub fn handle(method: &str, path_and_query: &str) -> Response {
    handle_with_body(method, path_and_query, &[])
}

/// [`handle`], with the request body: needed only for `POST
/// /debug/pprof/symbol` (the symbolz protocol `go tool pprof` uses for
/// addresses a profile leaves unnamed).
///
/// ```
/// let f = memprof::http::handle_with_body as fn(&str, &str, &[u8]) -> _;
/// let addr = format!("{:#x}", f as usize);
/// let r = memprof::http::handle_with_body("POST", "/debug/pprof/symbol", addr.as_bytes());
/// let text = String::from_utf8(r.body).unwrap();
/// assert!(text.starts_with("num_symbols: 1\n"));
/// ```
pub fn handle_with_body(method: &str, path_and_query: &str, body: &[u8]) -> Response {
    let r = respond(method, path_and_query, body, &mut |d| {
        std::thread::sleep(d);
        true
    });
    Arc::try_unwrap(r).unwrap_or_else(|shared| (*shared).clone())
}

/// Answers a request the way [`route`] does, sharing one build among
/// concurrent identical profile requests (`coalesce.rs`).
pub(crate) fn respond(
    method: &str,
    target: &str,
    body: &[u8],
    wait: &mut dyn FnMut(Duration) -> bool,
) -> Arc<Response> {
    match Key::of(method, target) {
        Some(key) => coalesce::shared(key, || route("GET", &key.target(), &[], &mut |_| true)),
        None => Arc::new(route(method, target, body, wait)),
    }
}

/// [`handle_with_body`] with the delta window's wait supplied by the
/// caller: `wait(d)` returns after `d`, or `false` early when the request
/// should be given up (client gone, server stopping).
pub(crate) fn route(
    method: &str,
    target: &str,
    body: &[u8],
    wait: &mut dyn FnMut(Duration) -> bool,
) -> Response {
    let target = strip_authority(target);
    let Some((path, query)) = split(target) else {
        return Response::error(400, "malformed request target");
    };
    if path == "/debug/pprof" {
        return redirect(&format!("{PREFIX}{}", opt_query(query)));
    }
    let Some(name) = path.strip_prefix(PREFIX) else {
        return not_found();
    };
    let allowed: &[&str] = if name == "symbol" {
        &["GET", "HEAD", "POST"]
    } else {
        &["GET", "HEAD"]
    };
    if !allowed.contains(&method) {
        let mut r = Response::error(405, "Method Not Allowed");
        r.headers.push(("Allow", allowed.join(", ")));
        return r;
    }
    crate::sampler::without_sampling(|| match name {
        "" => index(),
        "heap" | "allocs" => profile(name, query, wait),
        "peak" => peak(query),
        "ui" => super::ui::page(query, wait),
        "symbol" => symbol(if method == "POST" {
            body
        } else {
            query.as_bytes()
        }),
        _ => Response::error(404, "Unknown profile"),
    })
}

fn opt_query(query: &str) -> String {
    if query.is_empty() {
        String::new()
    } else {
        format!("?{query}")
    }
}

/// Go's `http.Redirect` for a GET: 301, and a link as the body. `to`
/// echoes the request's query: escaped for the header and for the HTML.
fn redirect(to: &str) -> Response {
    let to = header_safe(to);
    let body = format!(
        "<a href=\"{}\">Moved Permanently</a>.\n\n",
        html_escape(&to)
    );
    Response {
        status: 301,
        headers: vec![
            ("Location", to),
            ("Content-Type", "text/html; charset=utf-8".into()),
        ],
        body: body.into_bytes(),
    }
}

/// Go's mux answer for a path it has no handler for.
fn not_found() -> Response {
    Response {
        status: 404,
        headers: vec![
            ("Content-Type", "text/plain; charset=utf-8".into()),
            ("X-Content-Type-Options", "nosniff".into()),
        ],
        body: b"404 page not found\n".to_vec(),
    }
}

/// `heap` or `allocs`: the profile now, or a delta over `?seconds=N`.
fn profile(name: &str, query: &str, wait: &mut dyn FnMut(Duration) -> bool) -> Response {
    let seconds = form_value(query, "seconds");
    // Go: `debug, _ := strconv.Atoi(...)`, anything unparsable is 0.
    let debug = form_value(query, "debug").parse::<i64>().unwrap_or(0);
    // `gc=N` is accepted and ignored: frees are synchronous in Rust, in-use
    // is already exact, there is nothing to collect first.
    let symbolize = symbolize_param(query);
    if !seconds.is_empty() {
        return delta(name, &seconds, debug, symbolize, wait);
    }
    let p = crate::heap_profile();
    if debug != 0 {
        let mut body = Vec::new();
        return match p.write_text(&mut body) {
            Ok(()) => Response::ok("text/plain; charset=utf-8", None, body),
            Err(e) => write_failed(e),
        };
    }
    binary(name, name, &p, symbolize)
}

/// `?symbolize=0`: the profile is written unsymbolized (addresses,
/// mappings and build IDs; [`HeapProfile::write_pprof_unsymbolized`]), for
/// a scraper that symbolizes on its side. Any other value, or none:
/// symbolized. (Not a Go parameter; Go's profiles are always symbolized.)
fn symbolize_param(query: &str) -> bool {
    form_value(query, "symbolize") != "0"
}

/// `peak`: the live set at the highest in-use so far; `?reset=1` starts
/// the peak over after taking it.
fn peak(query: &str) -> Response {
    if !form_value(query, "seconds").is_empty() {
        return Response::error(400, "the peak profile takes no \"seconds\" parameter");
    }
    let debug = form_value(query, "debug").parse::<i64>().unwrap_or(0);
    let p = crate::peak_profile();
    if form_value(query, "reset").parse::<i64>().unwrap_or(0) != 0 {
        crate::reset_peak();
    }
    if debug != 0 {
        let mut body = Vec::new();
        return match p.write_text(&mut body) {
            Ok(()) => Response::ok("text/plain; charset=utf-8", None, body),
            Err(e) => write_failed(e),
        };
    }
    binary("peak", "peak", &p, symbolize_param(query))
}

fn delta(
    name: &str,
    seconds: &str,
    debug: i64,
    symbolize: bool,
    wait: &mut dyn FnMut(Duration) -> bool,
) -> Response {
    match delta_profile(seconds, debug, wait) {
        Ok(p) => binary(name, &format!("{name}-delta"), &p, symbolize),
        Err(r) => r,
    }
}

/// The delta profile over the next `seconds` (checked as Go checks it),
/// or the error response; shared with the `ui` page.
pub(super) fn delta_profile(
    seconds: &str,
    debug: i64,
    wait: &mut dyn FnMut(Duration) -> bool,
) -> Result<HeapProfile, Response> {
    let secs = match seconds.parse::<i64>() {
        Ok(s) if s > 0 => s as u64,
        _ => {
            return Err(Response::error(
                400,
                "invalid value for \"seconds\" - must be a positive integer",
            ))
        }
    };
    if secs > MAX_DELTA_SECONDS {
        return Err(Response::error(
            400,
            &format!("profile duration exceeds the server's limit of {MAX_DELTA_SECONDS} seconds"),
        ));
    }
    if debug != 0 {
        return Err(Response::error(
            400,
            "seconds and debug params are incompatible",
        ));
    }
    let Some(_slot) = Slot::take(&DELTAS, MAX_CONCURRENT_DELTAS) else {
        return Err(Response::error(503, "too many delta profiles in progress"));
    };
    let p0 = crate::heap_profile();
    if !wait(Duration::from_secs(secs)) {
        return Err(Response::error(503, "delta profile cancelled"));
    }
    let p1 = crate::heap_profile();
    Ok(p1.delta_since(&p0))
}

/// One of at most `max` slots counted by `count` (for deltas: [`DELTAS`],
/// [`MAX_CONCURRENT_DELTAS`]), given back on drop.
struct Slot<'a>(&'a AtomicUsize);

impl<'a> Slot<'a> {
    fn take(count: &'a AtomicUsize, max: usize) -> Option<Slot<'a>> {
        count
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < max).then_some(n + 1)
            })
            .ok()
            .map(|_| Slot(count))
    }
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The gzip proto of `p`; the allocs profile opens on `alloc_space`.
fn binary(name: &str, filename: &str, p: &HeapProfile, symbolize: bool) -> Response {
    let mut body = Vec::new();
    let written = match (name == "allocs", symbolize) {
        (true, true) => p.write_pprof_allocs(&mut body),
        (true, false) => p.write_pprof_allocs_unsymbolized(&mut body),
        (false, true) => p.write_pprof(&mut body),
        (false, false) => p.write_pprof_unsymbolized(&mut body),
    };
    match written {
        Ok(()) => Response::ok(
            "application/octet-stream",
            Some(format!("attachment; filename=\"{filename}\"")),
            body,
        ),
        Err(e) => write_failed(e),
    }
}

fn write_failed(e: std::io::Error) -> Response {
    Response::error(500, &format!("Could not write profile: {e}"))
}

/// Go's `pprof.Symbol`: `+`-separated addresses in, `0xADDR name` lines
/// out, after `num_symbols: 1` (there is symbol information). Addresses
/// that resolve to nothing are left out.
fn symbol(input: &[u8]) -> Response {
    let input = String::from_utf8_lossy(input);
    let pcs: Vec<u64> = input.split('+').filter_map(parse_uint).collect();
    let names = crate::snapshot::with_writer(|| {
        // One symbolizer for the request: each module is read once.
        let mut sym = crate::symbolize::Symbolizer::new();
        sym.prefetch(
            pcs.iter()
                .filter_map(|&pc| usize::try_from(pc).ok()?.checked_add(1)),
        );
        pcs.iter()
            .filter_map(|&pc| Some(format!("{pc:#x} {}\n", function_at(&mut sym, pc)?)))
            .collect::<String>()
    });
    let body = format!("num_symbols: 1\n{names}").into_bytes();
    Response::ok("text/plain; charset=utf-8", None, body)
}

/// The name of the function holding instruction `pc` (the innermost one,
/// if inlined), as Go's `runtime.FuncForPC` gives it.
fn function_at(sym: &mut crate::symbolize::Symbolizer, pc: u64) -> Option<String> {
    if !crate::symbolize::enabled() {
        return None; // a fork child, see `symbolize::enabled`
    }
    // The symbolizer looks up the byte before the address it is given (it
    // expects return addresses).
    let addr = usize::try_from(pc).ok()?.checked_add(1)?;
    Some(sym.resolve(addr).first()?.name.clone())
}

/// Go's `strconv.ParseUint(s, 0, 64)`: `0x` hex, `0o` or `0` octal, `0b`
/// binary, else decimal; 0 and errors count as nothing.
fn parse_uint(s: &str) -> Option<u64> {
    let s = s.trim_end_matches(['\r', '\n']);
    let (digits, radix) = if let Some(h) = s.strip_prefix("0x").or(s.strip_prefix("0X")) {
        (h, 16)
    } else if let Some(b) = s.strip_prefix("0b").or(s.strip_prefix("0B")) {
        (b, 2)
    } else if let Some(o) = s.strip_prefix("0o").or(s.strip_prefix("0O")) {
        (o, 8)
    } else if s.len() > 1 && s.starts_with('0') {
        (&s[1..], 8)
    } else {
        (s, 10)
    };
    let digits = digits.replace('_', "");
    u64::from_str_radix(&digits, radix).ok().filter(|&v| v != 0)
}

/// The index page, as Go's: profile counts, links to the text form, and
/// what each profile is.
fn index() -> Response {
    // Go's count for heap and allocs is the number of records.
    let count = crate::heap_profile().records().len();
    let rows: String = PROFILES
        .iter()
        .map(|(name, _)| {
            format!(
                "\t<tr>\n\t<td>{count}</td><td><a href='{name}?debug=1'>{name}</a></td>\n\t</tr>\n"
            )
        })
        .collect();
    let descriptions: String = PROFILES
        .iter()
        .map(|(name, desc)| format!("<li><div class=profile-name>{name}: </div> {desc}</li>\n"))
        .collect();
    let html = format!(
        "<html>\n<head>\n<title>/debug/pprof/</title>\n<style>\n.profile-name{{\n\tdisplay:inline-block;\n\twidth:6rem;\n}}\n</style>\n</head>\n<body>\n/debug/pprof/\n<br>\n<p>Set debug=1 as a query parameter to export in legacy text format</p>\n<br>\nTypes of profiles available:\n<table>\n<thead><td>Count</td><td>Profile</td></thead>\n{rows}</table>\n<p><a href='ui'>ui</a>: the profiles in a page of their own (flame graph, top functions, labels, ages, peak)</p>\n<br>\n<p>\nProfile Descriptions:\n<ul>\n{descriptions}</ul>\n</p>\n</body>\n</html>\n"
    );
    Response::ok("text/html; charset=utf-8", None, html.into_bytes())
}

/// The profiles served, sorted by name as Go lists them, with Go's
/// descriptions (heap's `gc` sentence adapted: there is no GC to run).
const PROFILES: [(&str, &str); 3] = [
    ("allocs", "A sampling of all past memory allocations"),
    (
        "heap",
        "A sampling of memory allocations of live objects. The gc GET parameter is accepted \
         and ignored: frees are immediate in Rust, so the in-use numbers are always current.",
    ),
    (
        "peak",
        "The sampled live set when the heap's in-use was at its highest so far (memprof). \
         reset=1 starts the peak over after this profile.",
    ),
];

#[cfg(test)]
mod tests {
    use super::*;

    fn get(target: &str) -> Response {
        route("GET", target, &[], &mut |_| true)
    }

    #[test]
    fn routes_and_errors_follow_go() {
        assert_eq!(get("/debug/pprof/").status, 200);
        assert_eq!(get("http://h:1/debug/pprof/?debug=1").status, 200);
        let r = get("/debug/pprof?x=1");
        assert_eq!(
            (r.status, r.header("Location")),
            (301, Some("/debug/pprof/?x=1"))
        );
        let r = get("/elsewhere");
        assert_eq!((r.status, &r.body[..]), (404, &b"404 page not found\n"[..]));
        assert_eq!(r.header("X-Go-Pprof"), None);
        let r = get("/debug/pprof/profile");
        assert_eq!((r.status, &r.body[..]), (404, &b"Unknown profile\n"[..]));
        assert_eq!(r.header("X-Go-Pprof"), Some("1"));
        let r = route("POST", "/debug/pprof/heap", &[], &mut |_| true);
        assert_eq!((r.status, r.header("Allow")), (405, Some("GET, HEAD")));
        let r = route("DELETE", "/debug/pprof/symbol", &[], &mut |_| true);
        assert_eq!(
            (r.status, r.header("Allow")),
            (405, Some("GET, HEAD, POST"))
        );
        assert_eq!(get("/debug/pprof/%zz").status, 400);
    }

    #[test]
    fn redirects_escape_what_they_echo() {
        let r = get("/debug/pprof?<script>alert(1)</script>=\"'&x");
        assert_eq!(r.status, 301);
        let body = String::from_utf8(r.body).unwrap();
        assert_eq!(
            body,
            "<a href=\"/debug/pprof/?&lt;script&gt;alert(1)&lt;/script&gt;=&#34;&#39;&amp;x\">\
             Moved Permanently</a>.\n\n"
        );
        let r = get("/debug/pprof?a\r\nSet-Cookie: x");
        assert_eq!(
            r.header("Location"),
            Some("/debug/pprof/?a%0D%0ASet-Cookie:%20x")
        );
    }

    #[test]
    fn seconds_are_checked_before_waiting() {
        let invalid = b"invalid value for \"seconds\" - must be a positive integer\n";
        for bad in ["0", "-1", "1.5", "x", "99999999999999999999"] {
            let r = get(&format!("/debug/pprof/heap?seconds={bad}"));
            assert_eq!((r.status, &r.body[..]), (400, &invalid[..]), "{bad}");
        }
        let r = get("/debug/pprof/heap?seconds=601");
        assert_eq!(r.status, 400);
        let r = get("/debug/pprof/allocs?seconds=1&debug=1");
        let incompatible = b"seconds and debug params are incompatible\n";
        assert_eq!((r.status, &r.body[..]), (400, &incompatible[..]));
        let r = route("GET", "/debug/pprof/heap?seconds=5", &[], &mut |_| false);
        assert_eq!(r.status, 503, "cancelled wait");
        let mut waited = Duration::ZERO;
        let r = route("GET", "/debug/pprof/allocs?seconds=%2B3", &[], &mut |d| {
            waited = d;
            true
        });
        assert_eq!(waited, Duration::from_secs(3));
        assert_eq!(r.status, 200);
        assert_eq!(
            r.header("Content-Disposition"),
            Some("attachment; filename=\"allocs-delta\"")
        );
    }

    #[test]
    fn slots_are_bounded_and_given_back() {
        let count = AtomicUsize::new(0);
        let slots: Vec<_> = std::iter::from_fn(|| Slot::take(&count, 3))
            .take(10)
            .collect();
        assert_eq!(slots.len(), 3);
        assert!(Slot::take(&count, 3).is_none());
        drop(slots);
        assert_eq!(count.load(Ordering::Relaxed), 0);
        assert!(Slot::take(&count, 3).is_some());
    }

    #[test]
    fn uints_parse_like_go() {
        assert_eq!(parse_uint("0x1f"), Some(31));
        assert_eq!(parse_uint("0X1F\n"), Some(31));
        assert_eq!(parse_uint("017"), Some(15));
        assert_eq!(parse_uint("0b101"), Some(5));
        assert_eq!(parse_uint("42"), Some(42));
        assert_eq!(parse_uint("0"), None);
        assert_eq!(parse_uint("zz"), None);
        assert_eq!(parse_uint(""), None);
    }
}
