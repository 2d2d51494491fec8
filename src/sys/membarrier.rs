//! The heavy side of an asymmetric fence: `membarrier(2)` with
//! `MEMBARRIER_CMD_PRIVATE_EXPEDITED`, which returns only once every
//! thread of this process that was running has executed a full memory
//! barrier (a thread that was not running passes one when it is scheduled
//! again). Paired with a compiler fence on the light side, it orders the
//! light side's earlier stores before its later loads as a full fence
//! would, without any instruction on the light side.
//!
//! Invariants: `STATE` goes from `UNKNOWN` to `READY` (the process is
//! registered and a barrier succeeded) or `UNAVAILABLE` (an old kernel,
//! a seccomp filter, a sandbox returning `ENOSYS`/`EINVAL`/`EPERM`), and
//! from `READY` to `UNAVAILABLE` if a later barrier fails; never back. A
//! caller relies on the light side only while `available` said so when
//! it set up the pairing, and checks `heavy`'s result.

use core::sync::atomic::{AtomicU8, Ordering};

const UNKNOWN: u8 = 0;
const READY: u8 = 1;
const UNAVAILABLE: u8 = 2;

static STATE: AtomicU8 = AtomicU8::new(UNKNOWN);

/// `membarrier` commands (`linux/membarrier.h`).
const CMD_PRIVATE_EXPEDITED: libc::c_int = 1 << 3;
const CMD_REGISTER_PRIVATE_EXPEDITED: libc::c_int = 1 << 4;

fn call(cmd: libc::c_int) -> bool {
    // SAFETY: membarrier takes two integers and touches no memory of
    // ours; an unknown command or a refusal is an error return.
    unsafe {
        libc::syscall(
            libc::SYS_membarrier,
            cmd,
            0 as libc::c_uint,
            0 as libc::c_int,
        ) == 0
    }
}

/// Whether `heavy` works in this process: the first call registers the
/// process for expedited barriers (a registration is inherited by a fork
/// child and undone only by `exec`) and makes one barrier to check.
/// Makes system calls; never allocates.
pub(crate) fn available() -> bool {
    match STATE.load(Ordering::Acquire) {
        READY => true,
        UNAVAILABLE => false,
        _ => {
            // Two threads may both register: registering is idempotent.
            let ok = call(CMD_REGISTER_PRIVATE_EXPEDITED) && call(CMD_PRIVATE_EXPEDITED);
            let _ = STATE.compare_exchange(
                UNKNOWN,
                if ok { READY } else { UNAVAILABLE },
                Ordering::AcqRel,
                Ordering::Acquire,
            );
            STATE.load(Ordering::Acquire) == READY
        }
    }
}

/// A full memory barrier on every running thread of the process. `false`
/// if it could not be made (then `available` says so from now on).
pub(crate) fn heavy() -> bool {
    if STATE.load(Ordering::Acquire) != READY {
        return false;
    }
    if call(CMD_PRIVATE_EXPEDITED) {
        return true;
    }
    STATE.store(UNAVAILABLE, Ordering::Release);
    false
}

/// The light side: keeps the compiler from moving memory accesses across
/// it; the CPU's reordering is what `heavy` undoes.
#[inline(always)]
pub(crate) fn light() {
    core::sync::atomic::compiler_fence(Ordering::SeqCst);
}
