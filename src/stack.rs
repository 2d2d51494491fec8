//! Stack capture: raw return addresses into a fixed buffer, no allocation.
//!
//! Addresses are stored as captured, innermost first, and symbolized only
//! when a profile is written. The first few frames are the profiler's own
//! (slow path, `GlobalAlloc` shim); they are kept here, where skipping a
//! fixed count would break with inlining, and removed by name when the
//! stack is symbolized. `MAX_FRAMES` leaves room for them on top of the
//! 128 user frames we promise.

/// User frames kept at least (Go keeps 128 since 1.23).
pub(crate) const USER_FRAMES: usize = 128;
/// Frames captured, including the profiler's own.
pub(crate) const MAX_FRAMES: usize = USER_FRAMES + 16;

/// A captured stack in a caller-provided buffer.
pub(crate) struct Captured {
    pub(crate) frames: [usize; MAX_FRAMES],
    pub(crate) len: usize,
    /// More frames existed than fit: the stack is cut, and marked so.
    pub(crate) truncated: bool,
}

impl Captured {
    pub(crate) fn as_slice(&self) -> &[usize] {
        &self.frames[..self.len]
    }
}

/// Which unwinder captures stacks.
pub(crate) fn unwinder_name() -> &'static str {
    "libgcc"
}

/// Captures the current thread's stack. Never allocates through the
/// profiled path (the caller is marked busy, so anything the unwinder
/// allocates goes straight to the inner allocator).
#[inline(never)]
pub(crate) fn capture(out: &mut Captured) {
    out.len = 0;
    out.truncated = false;
    // SAFETY: `trace_unsynchronized` requires that no other unwinder runs
    // concurrently in a way that is not thread-safe; libgcc's
    // `_Unwind_Backtrace` is thread-safe, and the callback only writes to
    // our buffer and never panics.
    unsafe {
        backtrace::trace_unsynchronized(|frame| {
            let ip = frame.ip() as usize;
            if ip == 0 {
                return false;
            }
            if out.len == MAX_FRAMES {
                out.truncated = true;
                return false;
            }
            out.frames[out.len] = ip;
            out.len += 1;
            true
        });
    }
}
