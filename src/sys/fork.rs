//! `fork()` safety: every profiler lock is taken before the fork and
//! released in both parent and child, so a child never inherits a lock held
//! by a thread that does not exist in it (it would deadlock on its first
//! sampled allocation or profile write). Lock order: profile writer,
//! stacks, records, region, arena; the same order everywhere else.

use core::sync::atomic::{AtomicBool, Ordering};

static REGISTERED: AtomicBool = AtomicBool::new(false);

/// Installs the handlers once. Called from the first slow path; may
/// allocate inside libc (that allocation is not sampled: the caller is busy).
pub(crate) fn register_once() {
    if REGISTERED.swap(true, Ordering::AcqRel) {
        return;
    }
    // SAFETY: the three handlers are `extern "C" fn()` with static lifetime
    // and only take or release our own spin locks.
    unsafe {
        libc::pthread_atfork(Some(prepare), Some(release), Some(release));
    }
}

extern "C" fn prepare() {
    crate::snapshot::lock_writer_for_fork();
    crate::scope::lock_for_fork();
    crate::stacks::lock_for_fork();
    crate::records::lock_for_fork();
    super::region::lock_for_fork();
    super::arena::lock_for_fork();
}

extern "C" fn release() {
    super::arena::unlock_after_fork();
    super::region::unlock_after_fork();
    crate::records::unlock_after_fork();
    crate::stacks::unlock_after_fork();
    crate::scope::unlock_after_fork();
    crate::snapshot::unlock_writer_after_fork();
}
