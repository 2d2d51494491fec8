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

use crate::sys::{dwarf, frames};
use core::mem::MaybeUninit;
use core::sync::atomic::{AtomicU8, Ordering};

/// A captured stack in a caller-provided buffer.
pub(crate) struct Captured {
    /// The first `len` entries are written; the rest are not (a sample
    /// must not pay for zeroing 1 KiB).
    frames: [MaybeUninit<usize>; MAX_FRAMES],
    pub(crate) len: usize,
    /// More frames existed than fit: the stack is cut, and marked so.
    pub(crate) truncated: bool,
    /// The frames folded by `frames::fold`, computed during the walk.
    pub(crate) hash: u64,
}

impl Captured {
    pub(crate) const fn new() -> Captured {
        Captured {
            frames: [const { MaybeUninit::uninit() }; MAX_FRAMES],
            len: 0,
            truncated: false,
            hash: frames::HASH_START,
        }
    }

    pub(crate) fn as_slice(&self) -> &[usize] {
        // SAFETY: the first `len` entries were written by an unwinder, and
        // `len <= MAX_FRAMES`; MaybeUninit<usize> has usize's layout.
        unsafe { core::slice::from_raw_parts(self.frames.as_ptr().cast::<usize>(), self.len) }
    }
}

/// The stack unwinder used for samples.
///
/// | unwinder | cost per sample (warm) | needs |
/// |---|---|---|
/// | [`FramePointers`](Unwinder::FramePointers) | ~1.4 ns per frame | the build has frame pointers (`-C force-frame-pointers=yes`) |
/// | [`Dwarf`](Unwinder::Dwarf) | ~5 ns per frame; ~0.3 µs the first time a return address is seen | DWARF CFI (`.eh_frame`), which every build has; x86-64 Linux |
/// | [`Libgcc`](Unwinder::Libgcc) | ~1 µs + ~85 ns per frame | nothing |
///
/// The default is `FramePointers` when memprof was built with
/// `-C force-frame-pointers=yes` (RUSTFLAGS apply to every crate of a build,
/// so then the whole program has them; std has them since Rust 1.79),
/// `Dwarf` otherwise where it is supported, and `Libgcc` elsewhere.
/// `MEMPROF_UNWIND=fp|dwarf|libgcc` overrides it, as does
/// [`set_unwinder`](crate::set_unwinder). The profile's comments name the
/// unwinder that ran.
///
/// A frame-pointer walk through code built without frame pointers gives a
/// short or wrong stack (never a bad memory read: it stays inside the
/// thread's stack); that is why it is not the default on such builds.
/// `Dwarf` reads the same unwind information as libgcc and caches the rule
/// of each return address; at a frame its cached rules cannot express (a
/// signal frame, a realigned stack) it hands the whole stack to libgcc, and
/// at code with no unwind information (JIT code) it stops and marks the
/// stack truncated.
///
/// More unwinders may come (other architectures), so a `match` on this
/// enum needs a wildcard arm.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Unwinder {
    /// Walk the frame-pointer chain, bounded by the thread's stack.
    FramePointers,
    /// Unwind by DWARF CFI rules cached per return address, bounded by the
    /// thread's stack.
    Dwarf,
    /// libgcc's `_Unwind_Backtrace` (DWARF CFI), through the `backtrace` crate.
    Libgcc,
}

const FP: u8 = 1;
const LIBGCC: u8 = 2;
const DWARF: u8 = 3;

static UNWINDER: AtomicU8 = AtomicU8::new(if cfg!(memprof_frame_pointers) && frames::SUPPORTED {
    FP
} else if dwarf::SUPPORTED {
    DWARF
} else {
    LIBGCC
});

pub(crate) fn set_unwinder(u: Unwinder) {
    let v = match u {
        Unwinder::FramePointers if frames::SUPPORTED => FP,
        Unwinder::Dwarf if dwarf::SUPPORTED => DWARF,
        _ => LIBGCC,
    };
    UNWINDER.store(v, Ordering::Relaxed);
}

pub(crate) fn unwinder() -> Unwinder {
    match UNWINDER.load(Ordering::Relaxed) {
        FP => Unwinder::FramePointers,
        DWARF => Unwinder::Dwarf,
        _ => Unwinder::Libgcc,
    }
}

/// Says once, when every allocation is to be recorded without frame
/// pointers, what turning them on buys. Writes with `write(2)`: this can
/// run inside the first allocation (MEMPROFILERATE=1).
pub(crate) fn hint_if_slow(rate: usize) {
    static SAID: core::sync::atomic::AtomicBool = core::sync::atomic::AtomicBool::new(false);
    let msg: &[u8] = match unwinder() {
        Unwinder::FramePointers => return,
        Unwinder::Dwarf => {
            b"memprof: recording every allocation with cached DWARF unwinding; \
build with RUSTFLAGS=\"-C force-frame-pointers=yes\" for frame-pointer stacks (~1.4 ns a frame instead of ~5, no warm-up)\n"
        }
        Unwinder::Libgcc => {
            b"memprof: recording every allocation with libgcc DWARF unwinding (~1 us per allocation); \
build with RUSTFLAGS=\"-C force-frame-pointers=yes\" for frame-pointer stacks (~30x faster)\n"
        }
    };
    if rate == 1 && !SAID.swap(true, Ordering::Relaxed) {
        crate::sys::os::write_stderr(msg);
    }
}

/// Name of the unwinder in use, for the profile's comments.
pub(crate) fn unwinder_name() -> &'static str {
    match unwinder() {
        Unwinder::FramePointers => "fp (frame pointers)",
        Unwinder::Dwarf => "dwarf (cached CFI)",
        Unwinder::Libgcc => "libgcc (DWARF)",
    }
}

/// Captures the current thread's stack with the selected unwinder. Never
/// allocates through the profiled path (the caller is marked busy, so
/// anything an unwinder allocates goes straight to the inner allocator).
///
/// Inlined into the sample path: with frame pointers (the common case at
/// rate 1) it is a load, a compare and the walk; the other unwinders are
/// behind `capture_with`.
#[inline(always)]
pub(crate) fn capture(out: &mut Captured) {
    if UNWINDER.load(Ordering::Relaxed) == FP {
        if let Some((n, truncated)) = frames::walk(&mut out.frames, &mut out.hash) {
            out.len = n;
            out.truncated = truncated;
            return;
        }
    }
    capture_with(unwinder(), out);
}

#[inline(never)]
pub(crate) fn capture_with(u: Unwinder, out: &mut Captured) {
    out.len = 0;
    out.truncated = false;
    out.hash = frames::HASH_START;
    if u == Unwinder::FramePointers {
        if let Some((n, truncated)) = frames::walk(&mut out.frames, &mut out.hash) {
            out.len = n;
            out.truncated = truncated;
            return;
        }
        // No known stack bounds (e.g. on a signal stack): fall back.
    }
    if u == Unwinder::Dwarf {
        if let dwarf::Walk::Done {
            frames,
            truncated,
            hash,
        } = dwarf::walk(&mut out.frames)
        {
            out.len = frames;
            out.truncated = truncated;
            out.hash = hash;
            return;
        }
    }
    capture_libgcc(out);
}

fn capture_libgcc(out: &mut Captured) {
    // libgcc's `_Unwind_Backtrace` is thread-safe, and the callback only
    // writes to our buffer and never panics.
    // SAFETY: so concurrent unwinds are fine, as `trace_unsynchronized` asks.
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
            out.frames[out.len].write(ip);
            out.hash = frames::fold(out.hash, ip);
            out.len += 1;
            true
        });
    }
}
