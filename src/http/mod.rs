//! `/debug/pprof` over HTTP, as Go's `net/http/pprof` serves it (cargo
//! feature `http`, off by default; its one dependency is `inferno`, for the
//! flame graphs of the `ui` page).
//!
//! `go tool pprof`, and continuous profilers that scrape Go services
//! (Parca, Pyroscope, Grafana Alloy), fetch heap profiles from a live
//! process at these paths. Start the built-in server:
//!
//! ```no_run
//! #[global_allocator]
//! static A: memprof::Sampled<std::alloc::System> = memprof::Sampled::new(std::alloc::System);
//!
//! fn main() -> std::io::Result<()> {
//!     let _server = memprof::http::serve("127.0.0.1:6060")?; // stops when dropped
//!     // ... the service ...
//!     # Ok(())
//! }
//! ```
//!
//! ```sh
//! go tool pprof http://127.0.0.1:6060/debug/pprof/heap               # in use now
//! go tool pprof http://127.0.0.1:6060/debug/pprof/allocs             # everything allocated
//! go tool pprof -seconds 30 http://127.0.0.1:6060/debug/pprof/allocs # allocated in the next 30 s
//! ```
//!
//! or mount [`handle`] in your own server (axum, actix, hyper, ...): it
//! turns a method and a path with its query into a [`Response`] (status,
//! headers, body); `examples/axum/` shows it.
//!
//! # Endpoints
//!
//! | path | answer |
//! |---|---|
//! | `/debug/pprof/` | an HTML index linking the profiles (`heap?debug=1`, `allocs?debug=1`) |
//! | `/debug/pprof/heap` | the heap profile, gzip `profile.proto`; opens on `inuse_space` |
//! | `/debug/pprof/allocs` | the same profile, opening on `alloc_space` (Go's only difference between the two) |
//! | `/debug/pprof/peak` | the peak heap profile ([`peak_profile`](crate::peak_profile)); `reset=1` starts the peak over after it (memprof's own) |
//! | `/debug/pprof/ui` | the profiles as an HTML page (memprof's own, [`view::report_html`](crate::view::report_html)): flame graph, top functions, labels, ages, peak; `profile=heap\|allocs\|peak` picks the profile (`heap` by default, with the peak below it), `seconds=N` a delta of heap or allocs over the next N seconds |
//! | `/debug/pprof/symbol` | Go's symbolz protocol: `go tool pprof` posts addresses a profile leaves unnamed (normally none: our mappings say `has_functions`) |
//!
//! `GET` and `HEAD` are allowed (and `POST` for `symbol`); other methods
//! get `405`, other names under `/debug/pprof/` `404 Unknown profile`.
//!
//! Query parameters, as in Go:
//!
//! - `debug=N`: any N ≠ 0 gives Go's legacy text profile
//!   ([`HeapProfile::write_text`](crate::HeapProfile::write_text)) as
//!   `text/plain`; 0 (or anything that is not a number) the proto.
//! - `gc=N`: accepted and ignored. Go runs a garbage collection first so
//!   that in-use numbers are current; in Rust frees are synchronous and
//!   in-use is always exact, there is nothing to collect.
//! - `seconds=N`: a delta profile over the next N seconds, with
//!   `duration_nanos` set and `Content-Disposition: attachment;
//!   filename="heap-delta"` (`allocs-delta`). Its `alloc_*` values are
//!   what was allocated in the window; its `inuse_*` values are what is
//!   live at the end of it
//!   ([`HeapProfile::delta_since`](crate::HeapProfile::delta_since)). Go
//!   subtracts in-use values too, giving "in use at the end minus in use
//!   at the start" (golang/go#67942); we give the state at the end, the
//!   fix that issue asks for. N must be a positive integer (else `400 invalid value
//!   for "seconds" - must be a positive integer`), at most
//!   [`MAX_DELTA_SECONDS`] (600), and not combined with `debug` (`400
//!   seconds and debug params are incompatible`). At most
//!   [`MAX_CONCURRENT_DELTAS`] wait at once (more get `503`); the built-in
//!   server gives a wait up when its client disconnects.
//!
//! And one of memprof's own: `symbolize=0` on `heap`, `allocs` and `peak`
//! (proto only) writes the profile unsymbolized, with addresses, mappings
//! and build IDs and no debug info read
//! ([`HeapProfile::write_pprof_unsymbolized`](crate::HeapProfile::write_pprof_unsymbolized)),
//! for a scraper that symbolizes on its side (Parca with uploaded debug
//! info).
//!
//! Every response carries `X-Content-Type-Options: nosniff`; errors are
//! plain text with `X-Go-Pprof: 1`, so `go tool pprof` prints their reason
//! (see [`Response`]).
//!
//! # The built-in server
//!
//! [`serve`] runs a small HTTP/1.1 server: one event-loop thread
//! (`poll(2)`) accepts connections, reads every request head and writes
//! every response without blocking, and up to 16 worker threads
//! ([`Options::max_workers`], started on demand) build the responses to
//! complete requests. Each connection serves one request and closes.
//! Idle and slow clients therefore cost a socket, never a thread: a
//! client trickling a byte a second holds no worker and delays no one.
//! Its limits ([`Options`]): 256 connections at once; at that number a new
//! connection evicts the oldest one that has not sent its whole request
//! (only when every connection is being answered is it refused with
//! `503`); a request must arrive whole within 10 s, however it trickles
//! (else `408`), its request line in 8 KiB, its head in 16 KiB and a body
//! in 64 KiB (else `400`); a malformed request gets `400`; a response must
//! be read within 60 s. Concurrent requests for the same profile in the
//! same format (`heap`, `allocs`, `peak`, not deltas nor `reset`; and the
//! index page, which counts the heap profile's records) share one
//! build and its bytes, also through [`handle`]: the answer is at most one
//! build old. Profiles are built in memory with sampling off for the
//! building thread, and sent after every memprof lock is released, by the
//! event loop: a slow client never holds up the service's allocations,
//! a worker, or another response.
//!
//! What a fetch costs the service (time and memory): see the "HTTP"
//! section of `docs/performance.md`.
//!
//! # Security
//!
//! There is no authentication. A profile shows the program's code
//! structure (function names, source files and lines, library paths and
//! build IDs) and how much memory it holds where, and serving it costs CPU
//! time. Bind to loopback (`127.0.0.1`), as the examples do, unless the
//! network in between is trusted; binding to `0.0.0.0` or a public address
//! is your explicit choice. When mounting [`handle`] in a server of your
//! own, put it behind the same access control as other admin endpoints.

mod coalesce;
mod handler;
mod request;
mod response;
mod server;
mod ui;
mod url;

pub use handler::{handle, handle_with_body, MAX_CONCURRENT_DELTAS, MAX_DELTA_SECONDS};
pub use response::Response;
pub use server::{serve, serve_with, Options, Server};

/// Answers built for `heap`, `allocs`, `peak` and index requests since
/// the process started; concurrent identical requests share one build. For
/// tests of the server, not a stable API.
#[doc(hidden)]
pub fn __profile_builds() -> u64 {
    coalesce::builds()
}

/// The request parsers under the invariants the fuzz targets in `fuzz/`
/// check; the corpus replay test runs them too. Not a stable API.
#[doc(hidden)]
#[path = "fuzz.rs"]
pub mod __fuzz;
