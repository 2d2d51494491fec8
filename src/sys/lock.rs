//! A spin lock for the profiler's slow paths.
//!
//! Critical sections are short and never allocate or call out, so spinning
//! (with a `sched_yield` after a while, for 2-core machines where the holder
//! may be descheduled) beats a parking lock, and it cannot allocate: parking
//! locks that allocate on contention have deadlocked allocators before
//! (dhat-rs #25). Every lock is also taken by the `fork` handlers (except
//! the profile writer's, see `crate::fork`), so a child never inherits one
//! held by a thread that does not exist there.

use core::sync::atomic::{AtomicBool, Ordering};

pub(crate) struct SpinLock {
    locked: AtomicBool,
}

impl SpinLock {
    pub(crate) const fn new() -> Self {
        SpinLock {
            locked: AtomicBool::new(false),
        }
    }

    #[inline]
    pub(crate) fn lock(&self) -> SpinGuard<'_> {
        self.raw_lock();
        SpinGuard { lock: self }
    }

    pub(crate) fn raw_lock(&self) {
        let mut spins = 0u32;
        loop {
            if !self.locked.load(Ordering::Relaxed)
                && self
                    .locked
                    .compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed)
                    .is_ok()
            {
                return;
            }
            spins += 1;
            if spins < 64 {
                core::hint::spin_loop();
            } else {
                // SAFETY: sched_yield has no preconditions.
                unsafe {
                    libc::sched_yield();
                }
            }
        }
    }

    /// Takes the lock if it is free, without waiting; `true` if taken
    /// (release it with `raw_unlock`).
    pub(crate) fn try_raw_lock(&self) -> bool {
        !self.locked.load(Ordering::Relaxed)
            && self
                .locked
                .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
                .is_ok()
    }

    /// Releases a lock taken with `raw_lock` (or, in a `fork` child, one
    /// held by a thread that does not exist there).
    pub(crate) fn raw_unlock(&self) {
        self.locked.store(false, Ordering::Release);
    }
}

pub(crate) struct SpinGuard<'a> {
    lock: &'a SpinLock,
}

impl Drop for SpinGuard<'_> {
    #[inline]
    fn drop(&mut self) {
        self.lock.raw_unlock();
    }
}
