//! One build for concurrent identical profile requests. A fetch of `heap`,
//! `allocs` or `peak` (without `seconds`, and for `peak` without
//! `reset`), or of the index (it counts the heap profile's records), that
//! arrives while the same profile in the same format is
//! being built waits for that build and shares its bytes ([`Arc`]) instead
//! of building its own: fifty scrapes at once cost one snapshot,
//! symbolization and encoding, not fifty. The answer is at most one build
//! old, as with Go's `singleflight`. Waiters are the threads that asked
//! (the built-in server's workers, bounded; a framework's request threads),
//! so they are as bounded as those are.

use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};

use super::url::{form_value, split, strip_authority};
use super::Response;

/// Profiles built for a shared request, since the start (for tests).
static BUILDS: AtomicU64 = AtomicU64::new(0);

/// Builds in flight, by what they build (at most nine keys).
static FLIGHTS: Mutex<Vec<(Key, Arc<Flight>)>> = Mutex::new(Vec::new());

/// What makes two requests' answers the same.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Key {
    name: &'static str,
    text: bool,
    /// `symbolize=0` (a proto with addresses only) is a different answer.
    unsymbolized: bool,
}

impl Key {
    /// The key of a request whose answer may be shared; `None` for any
    /// other (deltas, `reset`, `symbol`, errors: routed on their own).
    pub(crate) fn of(method: &str, target: &str) -> Option<Key> {
        if method != "GET" && method != "HEAD" {
            return None;
        }
        let (path, query) = split(strip_authority(target))?;
        let name = match path.strip_prefix("/debug/pprof/")? {
            "" => "",
            "heap" => "heap",
            "allocs" => "allocs",
            "peak" => "peak",
            _ => return None,
        };
        let int = |k| form_value(query, k).parse::<i64>().unwrap_or(0);
        if !form_value(query, "seconds").is_empty() || (name == "peak" && int("reset") != 0) {
            return None;
        }
        // The index (`name` empty) has one form, whatever `debug` says;
        // text is always symbolized.
        let text = !name.is_empty() && int("debug") != 0;
        Some(Key {
            name,
            text,
            unsymbolized: !name.is_empty() && !text && form_value(query, "symbolize") == "0",
        })
    }

    /// A target that routes to this key's answer (every target with this
    /// key gets the same answer: `gc` is ignored, any `debug` ≠ 0 is text).
    pub(crate) fn target(self) -> String {
        let query = match (self.text, self.unsymbolized) {
            (true, _) => "?debug=1",
            (false, true) => "?symbolize=0",
            (false, false) => "",
        };
        format!("/debug/pprof/{}{query}", self.name)
    }
}

/// One build and the answer it gives its waiters.
struct Flight {
    /// The process building it: a `fork` child finds its parent's flights
    /// in `FLIGHTS`, with no thread to finish them, and must not wait.
    pid: u32,
    answer: Mutex<Option<Arc<Response>>>,
    done: Condvar,
}

/// Profiles built by [`shared`] for shareable requests so far.
pub(crate) fn builds() -> u64 {
    BUILDS.load(Ordering::Relaxed)
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Joins the build of `key` in flight, or runs `build` as the one.
pub(crate) fn shared(key: Key, build: impl FnOnce() -> Response) -> Arc<Response> {
    let pid = std::process::id();
    let (flight, leader) = {
        let mut flights = lock(&FLIGHTS);
        flights.retain(|(_, f)| f.pid == pid);
        match flights.iter().find(|(k, _)| *k == key) {
            Some((_, f)) => (Arc::clone(f), false),
            None => {
                let f = Arc::new(Flight {
                    pid,
                    answer: Mutex::new(None),
                    done: Condvar::new(),
                });
                flights.push((key, Arc::clone(&f)));
                (f, true)
            }
        }
    };
    if leader {
        BUILDS.fetch_add(1, Ordering::Relaxed);
        // Waiters must be answered even if the build panics.
        let answer = panic::catch_unwind(AssertUnwindSafe(build))
            .unwrap_or_else(|_| Response::error(500, "internal error"));
        let answer = Arc::new(answer);
        lock(&FLIGHTS).retain(|(_, f)| !Arc::ptr_eq(f, &flight));
        *lock(&flight.answer) = Some(Arc::clone(&answer));
        flight.done.notify_all();
        return answer;
    }
    let mut answer = lock(&flight.answer);
    loop {
        if let Some(a) = answer.as_ref() {
            return Arc::clone(a);
        }
        answer = flight
            .done
            .wait(answer)
            .unwrap_or_else(PoisonError::into_inner);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Barrier;
    use std::time::Duration;

    #[test]
    fn keys_name_shareable_requests() {
        let k = |m, t| Key::of(m, t).map(|k| k.target());
        assert_eq!(
            k("GET", "/debug/pprof/heap"),
            Some("/debug/pprof/heap".into())
        );
        assert_eq!(
            k("HEAD", "http://h/debug/pprof/%68eap?gc=1&debug=2"),
            Some("/debug/pprof/heap?debug=1".into())
        );
        assert_eq!(
            k("GET", "/debug/pprof/allocs?debug=x"),
            Some("/debug/pprof/allocs".into())
        );
        assert_eq!(
            k("GET", "/debug/pprof/peak?reset=0"),
            Some("/debug/pprof/peak".into())
        );
        assert_eq!(
            k("GET", "/debug/pprof/?debug=1"),
            Some("/debug/pprof/".into())
        );
        // An unsymbolized proto is its own answer; text is always symbolized.
        assert_eq!(
            k("GET", "/debug/pprof/allocs?gc=1&symbolize=0"),
            Some("/debug/pprof/allocs?symbolize=0".into())
        );
        assert_eq!(
            k("GET", "/debug/pprof/heap?symbolize=0&debug=1"),
            Some("/debug/pprof/heap?debug=1".into())
        );
        assert_ne!(
            Key::of("GET", "/debug/pprof/heap?symbolize=0"),
            Key::of("GET", "/debug/pprof/heap")
        );
        for (m, t) in [
            ("POST", "/debug/pprof/heap"),
            ("GET", "/debug/pprof/heap?seconds=1"),
            ("GET", "/debug/pprof/peak?reset=1"),
            ("GET", "/debug/pprof/symbol"),
            ("GET", "/debug/pprof/%zz"),
        ] {
            assert_eq!(k(m, t), None, "{m} {t}");
        }
    }

    #[test]
    fn concurrent_requests_share_one_build() {
        let key = Key {
            name: "test",
            text: false,
            unsymbolized: false,
        };
        let builds = AtomicU64::new(0);
        let started = Barrier::new(2);
        let answers: Vec<Arc<Response>> = std::thread::scope(|s| {
            let leader = s.spawn(|| {
                shared(key, || {
                    builds.fetch_add(1, Ordering::Relaxed);
                    started.wait();
                    // Let the others join before answering.
                    std::thread::sleep(Duration::from_millis(300));
                    Response::error(200, "built")
                })
            });
            started.wait();
            let others: Vec<_> = (0..8)
                .map(|_| s.spawn(|| shared(key, || unreachable!("joined"))))
                .collect();
            let mut all = vec![leader.join().unwrap()];
            all.extend(others.into_iter().map(|h| h.join().unwrap()));
            all
        });
        assert_eq!(builds.load(Ordering::Relaxed), 1);
        assert!(answers.iter().all(|a| Arc::ptr_eq(a, &answers[0])));
        // The flight is over: the next request builds again.
        let again = shared(key, || Response::error(200, "again"));
        assert_eq!(again.body, b"again\n");
    }

    #[test]
    fn a_panicking_build_answers_500() {
        let key = Key {
            name: "panics",
            text: true,
            unsymbolized: false,
        };
        let r = shared(key, || panic!("build failed"));
        assert_eq!(r.status, 500);
        assert!(lock(&FLIGHTS).iter().all(|(k, _)| *k != key));
    }
}
