//! Per-thread re-entrancy guard: "this thread is inside the profiler".
//!
//! While the flag is set, the thread's allocations are forwarded to the inner
//! allocator and never sampled. It is set around the sample slow path (stack
//! capture, table inserts) and around everything that builds or writes a
//! profile (snapshot copies, symbolization, gzip, I/O), so the profiler never
//! records or re-enters itself.
//!
//! Profiler work outside the allocation path enters it through
//! `sampler::without_sampling`, which also keeps its allocations out of the
//! exact bytes-allocated count.
//!
//! The flag is a `const`-initialised `Cell<bool>` with no destructor: it
//! needs no lazy registration, so it is usable during thread start and
//! teardown (TLS destructors that allocate) without allocating itself.

use std::cell::Cell;

thread_local! {
    static BUSY: Cell<bool> = const { Cell::new(false) };
}

/// Is this thread inside the profiler? `true` also when TLS is unavailable,
/// so a caller that cannot tell errs on the side of not sampling.
#[inline]
pub(crate) fn is_busy() -> bool {
    BUSY.try_with(Cell::get).unwrap_or(true)
}

/// Marks this thread busy until dropped; restores the previous state, so
/// scopes nest.
pub(crate) struct Busy {
    was: bool,
}

impl Busy {
    #[inline]
    pub(crate) fn enter() -> Busy {
        let was = BUSY.try_with(|b| b.replace(true)).unwrap_or(true);
        Busy { was }
    }
}

impl Drop for Busy {
    #[inline]
    fn drop(&mut self) {
        let was = self.was;
        let _ = BUSY.try_with(|b| b.set(was));
    }
}
