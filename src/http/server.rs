//! The built-in server: one accept thread, one thread per connection, at
//! most [`Options::max_connections`] of them; each reads one request,
//! answers it with [`handler::route`] and closes (`Connection: close`).
//!
//! Thread safety: `Shared` is behind an `Arc`; `conns` (a std mutex, held
//! only to add, remove or shut down entries, never across I/O or profile
//! building) holds a clone of every open connection so that [`Server::stop`]
//! can end them; `stopping` tells the accept loop and delta waits to quit.
//! Server threads run with sampling off: the profile shows the service, not
//! the profiler's own server.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant, SystemTime};

use super::request::{self, ReadError};
use super::{handler, Response};

/// Settings of the built-in server ([`serve_with`]).
///
/// ```
/// let mut options = memprof::http::Options::default();
/// options.max_connections = 4;
/// let server = memprof::http::serve_with("127.0.0.1:0", options)?;
/// server.stop();
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Options {
    /// Connections served at once (default 16). Further clients get `503`
    /// at once and are closed.
    pub max_connections: usize,
    /// Time a client has to send its whole request (default 10 s); a slow
    /// or idle client is then answered `408` and closed.
    pub read_timeout: Duration,
    /// Time to send a response (default 60 s); a client reading slower is
    /// cut off.
    pub write_timeout: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            max_connections: 16,
            read_timeout: Duration::from_secs(10),
            write_timeout: Duration::from_secs(60),
        }
    }
}

/// A running `/debug/pprof` server, from [`serve`]. [`stop`](Self::stop)
/// or dropping it shuts it down.
#[must_use = "the server stops when this handle is dropped: keep it, e.g. `let _pprof = memprof::http::serve(addr)?;`"]
pub struct Server {
    addr: SocketAddr,
    shared: Arc<Shared>,
    accept: Option<JoinHandle<()>>,
}

struct Shared {
    options: Options,
    stopping: AtomicBool,
    conns: Mutex<Conns>,
    /// Signalled when a connection ends.
    ended: Condvar,
}

#[derive(Default)]
struct Conns {
    next_id: u64,
    open: HashMap<u64, TcpStream>,
}

/// Serves the `/debug/pprof/` endpoints ([`handle`](super::handle)) at
/// `addr` on a thread of its own, with the default [`Options`]. Use port 0
/// for any free port and [`Server::local_addr`] to learn it.
///
/// Binding to an address other than loopback exposes the profiles to the
/// network, without authentication: see the [module docs](super).
///
/// ```
/// let server = memprof::http::serve("127.0.0.1:0")?;
/// println!("go tool pprof http://{}/debug/pprof/heap", server.local_addr());
/// server.stop();
/// # Ok::<(), std::io::Error>(())
/// ```
///
/// # Errors
///
/// The address cannot be bound (in use, no permission) or the thread not
/// started.
pub fn serve(addr: impl ToSocketAddrs) -> io::Result<Server> {
    serve_with(addr, Options::default())
}

/// [`serve`] with the given [`Options`].
///
/// # Errors
///
/// As [`serve`].
pub fn serve_with(addr: impl ToSocketAddrs, options: Options) -> io::Result<Server> {
    let listener = TcpListener::bind(addr)?;
    let addr = listener.local_addr()?;
    let shared = Arc::new(Shared {
        options,
        stopping: AtomicBool::new(false),
        conns: Mutex::new(Conns::default()),
        ended: Condvar::new(),
    });
    let sh = Arc::clone(&shared);
    let accept = thread::Builder::new()
        .name("memprof-http".into())
        .spawn(move || accept_loop(listener, sh))?;
    Ok(Server {
        addr,
        shared,
        accept: Some(accept),
    })
}

impl Server {
    /// The address the server listens on (with the real port when bound
    /// to port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Shuts the server down: closes the listener, ends open connections
    /// (a delta profile being waited for is given up), and waits for their
    /// threads, at most 5 s (a profile being built finishes first).
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        let Some(accept) = self.accept.take() else {
            return;
        };
        self.shared.stopping.store(true, Ordering::SeqCst);
        // Wake the blocking `accept` with a connection of our own. Should
        // that fail, the thread ends at the next connection instead.
        let mut wake = self.addr;
        if wake.ip().is_unspecified() {
            wake.set_ip(match wake {
                SocketAddr::V4(_) => [127, 0, 0, 1].into(),
                SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
            });
        }
        if TcpStream::connect_timeout(&wake, Duration::from_secs(1)).is_ok() {
            let _ = accept.join();
        }
        let mut conns = self.shared.lock();
        for s in conns.open.values() {
            let _ = s.shutdown(Shutdown::Both);
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while !conns.open.is_empty() {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            conns = self
                .shared
                .ended
                .wait_timeout(conns, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.shutdown();
    }
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("addr", &self.addr)
            .field("options", &self.shared.options)
            .finish_non_exhaustive()
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Conns> {
        self.conns.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Registers `s` if there is room; its id.
    fn admit(&self, s: &TcpStream) -> Option<u64> {
        let mut conns = self.lock();
        if conns.open.len() >= self.options.max_connections {
            return None;
        }
        let clone = s.try_clone().ok()?;
        conns.next_id += 1;
        let id = conns.next_id;
        conns.open.insert(id, clone);
        Some(id)
    }

    fn release(&self, id: u64) {
        self.lock().open.remove(&id);
        self.ended.notify_all();
    }
}

/// A connection's place in [`Shared::conns`], given back when its thread
/// ends, even by a panic.
struct Admitted<'a>(&'a Shared, u64);

impl Drop for Admitted<'_> {
    fn drop(&mut self) {
        self.0.release(self.1);
    }
}

fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    crate::sampler::without_sampling(|| {
        for conn in listener.incoming() {
            if shared.stopping.load(Ordering::SeqCst) {
                break;
            }
            let Ok(stream) = conn else {
                // Out of descriptors and the like: let it pass.
                thread::sleep(Duration::from_millis(10));
                continue;
            };
            let Some(id) = shared.admit(&stream) else {
                reject(stream);
                continue;
            };
            let sh = Arc::clone(&shared);
            let spawned = thread::Builder::new()
                .name("memprof-http-conn".into())
                .spawn(move || {
                    let _slot = Admitted(&sh, id);
                    connection(stream, &sh);
                });
            if spawned.is_err() {
                shared.release(id);
            }
        }
    });
}

/// Answers a connection over the limit with 503 without blocking the
/// accept loop for long (the answer fits any socket buffer).
fn reject(mut s: TcpStream) {
    let r = Response::error(503, "too many connections");
    let mut bytes = r.head(SystemTime::now()).into_bytes();
    bytes.extend_from_slice(&r.body);
    let _ = s.set_write_timeout(Some(Duration::from_millis(100)));
    if s.write_all(&bytes).is_ok() {
        linger(&mut s, Duration::from_millis(50));
    }
}

/// Serves one connection: one request, one response, then close.
fn connection(mut s: TcpStream, shared: &Shared) {
    crate::sampler::without_sampling(|| {
        let _ = s.set_nodelay(true);
        let opts = &shared.options;
        let (response, head_only) = match request::read(&mut s, Instant::now() + opts.read_timeout)
        {
            Ok(req) => {
                let client = &s;
                let mut wait = |d| wait_window(client, d, &shared.stopping);
                // A bug must not take the server down with it: answer 500.
                let r = panic::catch_unwind(AssertUnwindSafe(|| {
                    handler::route(&req.method, &req.target, &req.body, &mut wait)
                }))
                .unwrap_or_else(|_| Response::error(500, "internal error"));
                (r, req.method == "HEAD")
            }
            Err(ReadError::Closed) => return,
            Err(ReadError::Timeout) => (Response::error(408, "request timeout"), false),
            Err(ReadError::Bad(status, why)) => (Response::error(status, why), false),
        };
        let deadline = Instant::now() + opts.write_timeout;
        let head = response.head(SystemTime::now());
        let body: &[u8] = if head_only { &[] } else { &response.body };
        if write_until(&mut s, head.as_bytes(), deadline).is_ok()
            && write_until(&mut s, body, deadline).is_ok()
        {
            linger(&mut s, Duration::from_millis(500));
        }
    });
}

/// Waits `d` for a delta profile; `false` as soon as the client closes its
/// connection (even just its sending side, as Go's server also takes it)
/// or the server stops, so an abandoned request frees its slot.
fn wait_window(s: &TcpStream, d: Duration, stopping: &AtomicBool) -> bool {
    let end = Instant::now() + d;
    loop {
        if stopping.load(Ordering::SeqCst) {
            return false;
        }
        let left = end.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return true;
        }
        let slice = left.min(Duration::from_millis(200));
        if s.set_read_timeout(Some(slice)).is_err() {
            return false;
        }
        match s.peek(&mut [0u8; 1]) {
            Ok(0) => return false,
            // The client sent more than its request: it is there, but
            // `peek` would not block; wait the slice out.
            Ok(_) => thread::sleep(slice),
            Err(e) if is_timeout(&e) || e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return false,
        }
    }
}

fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

/// Writes all of `bytes` or fails at `deadline`.
fn write_until(s: &mut TcpStream, mut bytes: &[u8], deadline: Instant) -> io::Result<()> {
    while !bytes.is_empty() {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::ErrorKind::TimedOut.into());
        }
        s.set_write_timeout(Some(left))?;
        match s.write(&bytes[..bytes.len().min(64 * 1024)]) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => bytes = &bytes[n..],
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Closes gracefully: sends FIN after the response, then reads what the
/// client still sends (a request we did not read whole) for at most `max`,
/// so closing does not reset the connection before the client has read
/// the response.
fn linger(s: &mut TcpStream, max: Duration) {
    let _ = s.shutdown(Shutdown::Write);
    let deadline = Instant::now() + max;
    let mut buf = [0u8; 4096];
    let mut drained = 0;
    while drained < 64 * 1024 {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() || s.set_read_timeout(Some(left)).is_err() {
            return;
        }
        match s.read(&mut buf) {
            Ok(0) => return,
            Ok(n) => drained += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return,
        }
    }
}
