//! `fork()` safety: the `pthread_atfork` handlers, above every layer they
//! coordinate.
//!
//! Before the fork, every profiler lock that is only ever held briefly
//! (never while allocating or calling out) is taken, and released in both
//! parent and child after it, so a child never inherits one held by a
//! thread that does not exist in it (it would deadlock on its first sampled
//! allocation or free). Lock order, the same everywhere else:
//!
//! 1. the profile writer (`snapshot`): only *tried*, see below;
//! 2. label sets (`labels`), 3. the peak capture (`peak`);
//! 4. scopes (`scope`): the slot table, then each slot;
//! 5. stacks (`stacks`), 6. records (`records`);
//! 7. the sampled-block region (`sys::region`), 8. the arena (`sys::arena`).
//!
//! The profile writer is different: it is held for a whole profile write,
//! seconds when symbolization is cold, so waiting for it would stall
//! `fork()` that long. The prepare handler takes it only if it is free. If
//! it was busy, the parent leaves it to its holder; the child, whose copy
//! of the holder does not exist, frees it and turns symbolization off for
//! good, because the symbolizer's state (the `backtrace` crate's lock and
//! caches) may be mid-update: that child's profiles are valid and complete
//! but unsymbolized (addresses and mappings; `go tool pprof` names them
//! from the binaries), with a comment saying so.
//!
//! The lock-free free lists and the atomic counters are consistent at every
//! instant and need nothing.

use core::sync::atomic::{AtomicBool, Ordering};

static REGISTERED: AtomicBool = AtomicBool::new(false);

/// Installs the handlers once. Called from the first slow path; may
/// allocate inside libc (that allocation is not sampled: the caller is busy).
pub(crate) fn register_once() {
    if REGISTERED.swap(true, Ordering::AcqRel) {
        return;
    }
    // SAFETY: the three handlers are `extern "C" fn()` with static lifetime
    // that only take or release our own spin locks and set flags.
    unsafe {
        libc::pthread_atfork(Some(prepare), Some(parent), Some(child));
    }
}

extern "C" fn prepare() {
    crate::snapshot::writer_prepare_fork();
    crate::labels::lock_for_fork();
    crate::peak::lock_for_fork();
    crate::scope::lock_for_fork();
    crate::stacks::lock_for_fork();
    crate::records::lock_for_fork();
    crate::sys::region::lock_for_fork();
    crate::sys::arena::lock_for_fork();
}

/// Everything but the writer, in reverse order.
fn release_brief_locks() {
    crate::sys::arena::unlock_after_fork();
    crate::sys::region::unlock_after_fork();
    crate::records::unlock_after_fork();
    crate::stacks::unlock_after_fork();
    crate::scope::unlock_after_fork();
    crate::peak::unlock_after_fork();
    crate::labels::unlock_after_fork();
}

extern "C" fn parent() {
    release_brief_locks();
    crate::snapshot::writer_after_fork_parent();
}

extern "C" fn child() {
    crate::scope::clear_pins_in_child();
    release_brief_locks();
    crate::snapshot::writer_after_fork_child();
}
