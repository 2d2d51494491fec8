//! The built-in server: one event-loop thread and a few workers.
//!
//! The event loop (`poll(2)`) accepts connections, reads request heads of
//! all of them at once, and writes responses: an idle, slow or trickling
//! client costs a socket and its buffered bytes, never a thread. A request
//! that has arrived whole goes to a worker, which builds its [`Response`]
//! (through [`handler::respond`], so concurrent scrapes share one build)
//! and hands it back, with the same answer for every queued request of
//! the same key that came before it was asked for. The event loop sends
//! it without blocking, so a slow reader holds nothing but its own
//! connection. Each connection serves one request and closes
//! (`Connection: close`).
//!
//! Bounds: at most [`Options::max_connections`] open connections; at that
//! number, a new one evicts the oldest connection still sending its
//! request (or one lingering after its answer), and is refused with `503`
//! only when every connection is being answered. At most
//! [`Options::max_workers`] workers, started on demand. A connection
//! buffers at most one request (16 KiB head, 64 KiB body).
//!
//! Thread safety: `Shared` is behind an `Arc`. `jobs` (a std mutex, held
//! only to queue, take or share jobs, and to start a worker) passes complete requests to workers;
//! `done` passes answers back, and a byte on the waker socket wakes the
//! event loop. No lock is held across I/O or profile building. Server
//! threads run with sampling off: the profile shows the service, not the
//! profiler's own server.

use std::collections::{HashMap, VecDeque};
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant, SystemTime};

use super::request::{self, ReadError, Request};
use super::{coalesce, handler, Response};

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
    /// Connections open at once (default 256). At this number a new
    /// connection evicts the oldest one that has not sent its whole
    /// request yet (closing it); when every connection is being answered,
    /// the new one gets `503` and is closed.
    pub max_connections: usize,
    /// Threads building responses, started on demand (default 16). A delta
    /// profile (`?seconds=N`) holds one for its window; at most
    /// [`MAX_CONCURRENT_DELTAS`](super::MAX_CONCURRENT_DELTAS) do at once.
    pub max_workers: usize,
    /// Time a client has to send its whole request (default 10 s), however
    /// slowly it trickles; it is then answered `408` and closed.
    pub read_timeout: Duration,
    /// Time to send a response (default 60 s); a client reading slower is
    /// cut off.
    pub write_timeout: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            max_connections: 256,
            max_workers: 16,
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
    event_loop: Option<JoinHandle<()>>,
}

struct Shared {
    options: Options,
    stopping: AtomicBool,
    jobs: Mutex<Jobs>,
    /// Signalled when a job is queued, and when the server stops.
    job_ready: Condvar,
    /// Signalled when a worker ends.
    worker_ended: Condvar,
    /// Answers the workers built, for the event loop to send.
    done: Mutex<Vec<Done>>,
    /// Written to wake the event loop (answers are ready, or stopping).
    waker: UnixStream,
    /// The event loop's end of `waker`, kept as long as `waker` is, so a
    /// late wake-up never writes to a closed socket (no `SIGPIPE`).
    wakee: UnixStream,
}

#[derive(Default)]
struct Jobs {
    queue: VecDeque<Job>,
    /// Workers running, and of those, waiting for a job.
    alive: usize,
    idle: usize,
}

/// A complete request, for a worker; its connection (blocking) with it.
struct Job {
    id: u64,
    stream: TcpStream,
    request: Request,
    /// What answers may be shared with it ([`coalesce::Key`]), if any.
    key: Option<coalesce::Key>,
    /// When it was queued.
    queued: Instant,
}

/// A worker's answer to a [`Job`].
struct Done {
    id: u64,
    stream: TcpStream,
    response: Arc<Response>,
    head_only: bool,
}

/// Serves the `/debug/pprof/` endpoints ([`handle`](super::handle)) at
/// `addr` on threads of its own, with the default [`Options`]. Use port 0
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
    listener.set_nonblocking(true)?;
    let (waker, wakee) = UnixStream::pair()?;
    waker.set_nonblocking(true)?;
    wakee.set_nonblocking(true)?;
    let shared = Arc::new(Shared {
        options,
        stopping: AtomicBool::new(false),
        jobs: Mutex::new(Jobs::default()),
        job_ready: Condvar::new(),
        worker_ended: Condvar::new(),
        done: Mutex::new(Vec::new()),
        waker,
        wakee,
    });
    let sh = Arc::clone(&shared);
    let event_loop = thread::Builder::new()
        .name("memprof-http".into())
        .spawn(move || crate::sampler::without_sampling(|| EventLoop::new(listener, sh).run()))?;
    Ok(Server {
        addr,
        shared,
        event_loop: Some(event_loop),
    })
}

impl Server {
    /// The address the server listens on (with the real port when bound
    /// to port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Shuts the server down: closes the listener and every connection (a
    /// delta profile being waited for is given up), and waits for the
    /// workers, at most 5 s (a profile being built finishes first).
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        let Some(event_loop) = self.event_loop.take() else {
            return;
        };
        self.shared.stopping.store(true, Ordering::SeqCst);
        self.shared.wake();
        let _ = event_loop.join();
        let mut jobs = self.shared.lock_jobs();
        jobs.queue.clear();
        self.shared.job_ready.notify_all();
        let deadline = Instant::now() + Duration::from_secs(5);
        while jobs.alive > 0 {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            jobs = self
                .shared
                .worker_ended
                .wait_timeout(jobs, left)
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
    fn lock_jobs(&self) -> MutexGuard<'_, Jobs> {
        self.jobs.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn wake(&self) {
        // A full socket buffer means a wake-up is pending already.
        let _ = (&self.waker).write(&[1]);
    }
}

/// Where a connection is.
enum State {
    /// Receiving its request: the bytes so far.
    Reading(Vec<u8>),
    /// Its request is with a worker, and its stream too.
    Busy,
    /// Sending `head` then the body (unless `head_only`); `sent` bytes so far.
    Writing {
        head: Vec<u8>,
        response: Arc<Response>,
        head_only: bool,
        sent: usize,
    },
    /// Answered and shut for writing: reading what the client still sends,
    /// so that closing does not reset the connection before the client
    /// has read the answer.
    Lingering { drained: usize },
}

struct Conn {
    /// `None` while a worker has it.
    stream: Option<TcpStream>,
    state: State,
    opened: Instant,
    /// When the current state times out (none while `Busy`).
    deadline: Instant,
}

/// Connections accepted per round of the event loop, at most.
const ACCEPT_BURST: usize = 64;

/// How long a connection lingers after its answer, and how much it reads
/// meanwhile.
const LINGER: Duration = Duration::from_millis(500);
const LINGER_BYTES: usize = 64 * 1024;

struct EventLoop {
    listener: TcpListener,
    shared: Arc<Shared>,
    conns: HashMap<u64, Conn>,
    next_id: u64,
    /// Accepting paused until then (out of descriptors).
    accept_paused: Option<Instant>,
}

impl EventLoop {
    fn new(listener: TcpListener, shared: Arc<Shared>) -> Self {
        EventLoop {
            listener,
            shared,
            conns: HashMap::new(),
            next_id: 0,
            accept_paused: None,
        }
    }

    fn run(&mut self) {
        let mut fds: Vec<libc::pollfd> = Vec::new();
        let mut ids: Vec<u64> = Vec::new();
        while !self.shared.stopping.load(Ordering::SeqCst) {
            self.take_answers();
            let now = Instant::now();
            self.expire(now);
            if self.accept_paused.is_some_and(|t| t <= now) {
                self.accept_paused = None;
            }
            fds.clear();
            ids.clear();
            let pollfd = |fd, events| libc::pollfd {
                fd,
                events,
                revents: 0,
            };
            fds.push(pollfd(self.shared.wakee.as_raw_fd(), libc::POLLIN));
            if self.accept_paused.is_none() {
                fds.push(pollfd(self.listener.as_raw_fd(), libc::POLLIN));
            }
            let fixed = fds.len();
            let mut next = self.accept_paused;
            for (&id, c) in &self.conns {
                let events = match c.state {
                    State::Reading(_) | State::Lingering { .. } => libc::POLLIN,
                    State::Writing { .. } => libc::POLLOUT,
                    State::Busy => continue,
                };
                let Some(s) = &c.stream else { continue };
                fds.push(pollfd(s.as_raw_fd(), events));
                ids.push(id);
                next = Some(next.map_or(c.deadline, |n| n.min(c.deadline)));
            }
            let timeout = next.map_or(-1, |t| {
                let ms = t.saturating_duration_since(now).as_micros().div_ceil(1000);
                i32::try_from(ms).unwrap_or(i32::MAX)
            });
            // SAFETY: `fds` is a valid, initialized array of `fds.len()`
            // pollfd structs that lives across the call; poll only writes
            // their `revents`.
            let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout) };
            if n <= 0 {
                continue; // timeout, EINTR (or EAGAIN): the loop reruns
            }
            if fds[0].revents != 0 {
                let mut buf = [0u8; 64];
                while matches!((&self.shared.wakee).read(&mut buf), Ok(n) if n > 0) {}
            }
            if fixed == 2 && fds[1].revents != 0 {
                self.accept();
            }
            for (fd, &id) in fds[fixed..].iter().zip(&ids) {
                if fd.revents != 0 {
                    self.ready(id);
                }
            }
        }
        // Stopping: every connection the loop holds closes here; workers
        // see `stopping` and end their waits.
    }

    /// Moves the workers' answers to their connections, to be sent.
    fn take_answers(&mut self) {
        let done = std::mem::take(
            &mut *self
                .shared
                .done
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
        );
        for d in done {
            if let Some(c) = self.conns.get_mut(&d.id) {
                let _ = d.stream.set_nonblocking(true);
                c.stream = Some(d.stream);
                let head = d.response.head(SystemTime::now()).into_bytes();
                c.state = State::Writing {
                    head,
                    response: d.response,
                    head_only: d.head_only,
                    sent: 0,
                };
                c.deadline = after(self.shared.options.write_timeout);
            }
        }
    }

    /// Ends what has timed out: a request not whole in time gets `408`, a
    /// response not read in time is cut off, lingering ends.
    fn expire(&mut self, now: Instant) {
        let mut closed = Vec::new();
        for (&id, c) in &mut self.conns {
            if c.deadline > now || c.stream.is_none() {
                continue;
            }
            match c.state {
                State::Reading(_) => {
                    let r = Response::error(408, "request timeout");
                    answer(c, Arc::new(r), &self.shared.options);
                }
                State::Busy => {}
                State::Writing { .. } | State::Lingering { .. } => closed.push(id),
            }
        }
        for id in closed {
            self.conns.remove(&id);
        }
    }

    /// Accepts pending connections, making room for each if needed: at
    /// most [`ACCEPT_BURST`] per round, so that a flood of connections
    /// cannot keep the loop from sending answers.
    fn accept(&mut self) {
        for _ in 0..ACCEPT_BURST {
            let stream = match self.listener.accept() {
                Ok((s, _)) => s,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == io::ErrorKind::ConnectionAborted => continue,
                Err(_) => {
                    // Out of descriptors and the like: retry shortly.
                    self.accept_paused = Some(Instant::now() + Duration::from_millis(10));
                    return;
                }
            };
            if stream.set_nonblocking(true).is_err() {
                continue;
            }
            let _ = stream.set_nodelay(true);
            if self.conns.len() >= self.shared.options.max_connections.max(1) && !self.evict() {
                refuse(stream);
                continue;
            }
            self.next_id += 1;
            let id = self.next_id;
            self.conns.insert(
                id,
                Conn {
                    stream: Some(stream),
                    state: State::Reading(Vec::new()),
                    opened: Instant::now(),
                    deadline: after(self.shared.options.read_timeout),
                },
            );
            // A real client's request has often arrived with the
            // connection: read it now, so that it goes to a worker before
            // more connections of this burst can evict it.
            if !self.read_request(id) {
                self.conns.remove(&id);
            }
        }
    }

    /// Closes a connection to make room: one lingering after its answer,
    /// else the oldest still sending its request. `false` if every
    /// connection is being answered.
    fn evict(&mut self) -> bool {
        let lingering = self
            .conns
            .iter()
            .find(|(_, c)| matches!(c.state, State::Lingering { .. }))
            .map(|(&id, _)| id);
        let oldest_reading = || {
            self.conns
                .iter()
                .filter(|(_, c)| matches!(c.state, State::Reading(_)))
                .min_by_key(|(_, c)| c.opened)
                .map(|(&id, _)| id)
        };
        match lingering.or_else(oldest_reading) {
            Some(id) => {
                if let Some(Conn {
                    stream: Some(mut s),
                    state: State::Reading(_),
                    ..
                }) = self.conns.remove(&id)
                {
                    // Best effort, without waiting: the client may learn why.
                    let _ = s.write(&error_bytes(503, "too many connections"));
                }
                true
            }
            None => false,
        }
    }

    /// Does what connection `id`'s readiness allows.
    fn ready(&mut self, id: u64) {
        let Some(c) = self.conns.get_mut(&id) else {
            return;
        };
        let keep = match &mut c.state {
            State::Reading(_) => self.read_request(id),
            State::Writing { .. } => write_answer(c),
            State::Lingering { drained } => linger(c.stream.as_mut(), drained),
            State::Busy => true,
        };
        if !keep {
            self.conns.remove(&id);
        }
    }

    /// Reads what has arrived of connection `id`'s request; when it is
    /// whole, hands it to a worker. `false` to close.
    fn read_request(&mut self, id: u64) -> bool {
        let Some(c) = self.conns.get_mut(&id) else {
            return false;
        };
        let (Some(s), State::Reading(buf)) = (c.stream.as_mut(), &mut c.state) else {
            return false;
        };
        let mut chunk = [0u8; 4096];
        let mut ended = false;
        loop {
            let want = (request::MAX_REQUEST + 1)
                .saturating_sub(buf.len())
                .min(chunk.len());
            if want == 0 {
                break;
            }
            match s.read(&mut chunk[..want]) {
                // The client is done sending (perhaps after a whole
                // request: `shutdown(Write)` is how some clients end one).
                Ok(0) => {
                    ended = true;
                    break;
                }
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(_) => return false,
            }
        }
        match request::parse(buf) {
            // The client left before a whole request: nothing to answer.
            Ok(None) => !ended,
            Err(ReadError::Bad(status, why)) => {
                answer(
                    c,
                    Arc::new(Response::error(status, why)),
                    &self.shared.options,
                );
                true
            }
            Ok(Some(request)) => {
                let Some(stream) = c.stream.take() else {
                    return false;
                };
                if stream.set_nonblocking(false).is_err() {
                    return false;
                }
                c.state = State::Busy;
                let key = coalesce::Key::of(&request.method, &request.target);
                self.dispatch(Job {
                    id,
                    stream,
                    request,
                    key,
                    queued: Instant::now(),
                })
            }
        }
    }

    /// Queues `job` for a worker, starting one if none is free. `false`
    /// if no worker can run it (the connection closes).
    fn dispatch(&mut self, job: Job) -> bool {
        let shared = &self.shared;
        let mut jobs = shared.lock_jobs();
        jobs.queue.push_back(job);
        if jobs.queue.len() > jobs.idle && jobs.alive < shared.options.max_workers.max(1) {
            let sh = Arc::clone(shared);
            let spawned = thread::Builder::new()
                .name("memprof-http-worker".into())
                .spawn(move || crate::sampler::without_sampling(|| worker(&sh)));
            match spawned {
                Ok(_) => jobs.alive += 1,
                Err(_) if jobs.alive == 0 => {
                    jobs.queue.clear();
                    return false;
                }
                Err(_) => {}
            }
        }
        shared.job_ready.notify_one();
        true
    }
}

/// Starts sending `response` on `c` (an error the event loop answers).
fn answer(c: &mut Conn, response: Arc<Response>, options: &Options) {
    c.state = State::Writing {
        head: response.head(SystemTime::now()).into_bytes(),
        response,
        head_only: false,
        sent: 0,
    };
    c.deadline = after(options.write_timeout);
}

/// The instant `d` from now (a year at most: no overflow, whatever the
/// options say).
fn after(d: Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(d.min(Duration::from_secs(365 * 86_400)))
        .unwrap_or(now)
}

/// Sends what the socket takes of `c`'s answer; once all is sent, shuts
/// the connection for writing and lingers. `false` to close.
fn write_answer(c: &mut Conn) -> bool {
    let (
        Some(s),
        State::Writing {
            head,
            response,
            head_only,
            sent,
        },
    ) = (c.stream.as_mut(), &mut c.state)
    else {
        return false;
    };
    let body: &[u8] = if *head_only { &[] } else { &response.body };
    loop {
        let rest = match sent.checked_sub(head.len()) {
            None => &head[*sent..],
            Some(b) => match body.get(b..) {
                Some(rest) if !rest.is_empty() => rest,
                _ => break,
            },
        };
        match s.write(rest) {
            Ok(0) => return false,
            Ok(n) => *sent += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return true,
            Err(_) => return false,
        }
    }
    let _ = s.shutdown(Shutdown::Write);
    c.state = State::Lingering { drained: 0 };
    c.deadline = after(LINGER);
    true
}

/// Reads and drops what a client sends after its answer. `false` to close
/// (end of stream, an error, or enough drained).
fn linger(s: Option<&mut TcpStream>, drained: &mut usize) -> bool {
    let Some(s) = s else { return false };
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return false,
            Ok(n) => {
                *drained += n;
                if *drained >= LINGER_BYTES {
                    return false;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return true,
            Err(_) => return false,
        }
    }
}

/// An error response, framed, as bytes.
fn error_bytes(status: u16, reason: &str) -> Vec<u8> {
    let r = Response::error(status, reason);
    let mut bytes = r.head(SystemTime::now()).into_bytes();
    bytes.extend_from_slice(&r.body);
    bytes
}

/// Answers a connection there is no room for with `503`, without waiting
/// (the answer fits any socket buffer), and closes it.
fn refuse(mut s: TcpStream) {
    if s.write_all(&error_bytes(503, "too many connections"))
        .is_ok()
    {
        let _ = s.shutdown(Shutdown::Write);
    }
}

/// A worker: builds the answers to complete requests until the server
/// stops.
fn worker(shared: &Shared) {
    loop {
        let job = {
            let mut jobs = shared.lock_jobs();
            loop {
                if shared.stopping.load(Ordering::SeqCst) {
                    jobs.alive -= 1;
                    shared.worker_ended.notify_all();
                    return;
                }
                if let Some(job) = jobs.queue.pop_front() {
                    break job;
                }
                jobs.idle += 1;
                jobs = shared
                    .job_ready
                    .wait(jobs)
                    .unwrap_or_else(PoisonError::into_inner);
                jobs.idle -= 1;
            }
        };
        let Job {
            id,
            stream,
            request: req,
            key,
            ..
        } = job;
        let asked = Instant::now();
        let mut wait = |d| wait_window(&stream, d, &shared.stopping);
        // A bug must not take the server down with it: answer 500.
        let response = panic::catch_unwind(AssertUnwindSafe(|| {
            handler::respond(&req.method, &req.target, &req.body, &mut wait)
        }))
        .unwrap_or_else(|_| Arc::new(Response::error(500, "internal error")));
        let mut done = vec![Done {
            id,
            stream,
            response: Arc::clone(&response),
            head_only: req.method == "HEAD",
        }];
        // Queued requests for the same answer that came before it was
        // asked for share it too (as they would have joined its build had
        // a worker been free): with few workers, many scrapes still cost
        // one build.
        if let Some(key) = key {
            let mut jobs = shared.lock_jobs();
            let queue = std::mem::take(&mut jobs.queue);
            for j in queue {
                if j.key == Some(key) && j.queued <= asked {
                    done.push(Done {
                        id: j.id,
                        stream: j.stream,
                        response: Arc::clone(&response),
                        head_only: j.request.method == "HEAD",
                    });
                } else {
                    jobs.queue.push_back(j);
                }
            }
        }
        shared
            .done
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend(done);
        shared.wake();
    }
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
