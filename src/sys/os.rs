//! Thin wrappers over the OS memory calls. Failures are values, not panics.

use core::ptr;

pub(crate) const PAGE: usize = 4096;

/// Nanoseconds of `CLOCK_MONOTONIC_COARSE`: the kernel's last tick (1-4
/// ms resolution), read from the vDSO in a few ns with no system call.
/// 0 if the clock cannot be read.
#[inline]
pub(crate) fn coarse_nanos() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid out-pointer; the call has no other effect.
    if unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC_COARSE, &mut ts) } != 0 {
        return 0;
    }
    (ts.tv_sec as u64)
        .wrapping_mul(1_000_000_000)
        .wrapping_add(ts.tv_nsec as u64)
}

/// Reserves `len` bytes of address space with no access and no commit
/// charge. Returns `None` when the kernel refuses (e.g. `ulimit -v`).
pub(crate) fn reserve(len: usize) -> Option<*mut u8> {
    // SAFETY: an anonymous private mapping with a null hint has no
    // preconditions; the result is checked against MAP_FAILED.
    let p = unsafe {
        libc::mmap(
            ptr::null_mut(),
            len,
            libc::PROT_NONE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
            -1,
            0,
        )
    };
    if p == libc::MAP_FAILED {
        None
    } else {
        Some(p.cast())
    }
}

/// Maps `len` bytes of fresh, zeroed, readable and writable memory.
pub(crate) fn map(len: usize) -> Option<*mut u8> {
    // SAFETY: as in `reserve`.
    let p = unsafe {
        libc::mmap(
            ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    if p == libc::MAP_FAILED {
        None
    } else {
        Some(p.cast())
    }
}

/// Asks the CPU to start loading the cache line of `p` (nothing else: no
/// load, no fault, whatever `p` is).
#[inline(always)]
pub(crate) fn prefetch<T>(p: *const T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch only hints the cache; it never faults.
    unsafe {
        core::arch::x86_64::_mm_prefetch::<{ core::arch::x86_64::_MM_HINT_T0 }>(p.cast())
    };
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

/// Makes `[p, p + len)`, part of a reservation, readable and writable.
///
/// # Safety
/// The range must lie inside a mapping this process owns and that nothing
/// else relies on being inaccessible.
pub(crate) unsafe fn commit(p: *mut u8, len: usize) -> bool {
    // SAFETY: the caller guarantees the range is ours.
    unsafe { libc::mprotect(p.cast(), len, libc::PROT_READ | libc::PROT_WRITE) == 0 }
}

/// Returns the pages of `[p, p + len)` to the OS; they read as zero after.
///
/// # Safety
/// The range must be ours and hold nothing anyone still needs.
pub(crate) unsafe fn discard(p: *mut u8, len: usize) {
    // SAFETY: the caller guarantees the range is ours and unused.
    unsafe {
        libc::madvise(p.cast(), len, libc::MADV_DONTNEED);
    }
}

/// Unmaps `[p, p + len)` (nothing if `len` is 0).
///
/// # Safety
/// The range must be ours and hold nothing anyone still needs.
pub(crate) unsafe fn release(p: *mut u8, len: usize) {
    if len != 0 {
        // SAFETY: the caller guarantees the range is ours and unused.
        unsafe {
            libc::munmap(p.cast(), len);
        }
    }
}

/// Writes `parts` to stderr as one line and aborts the process, without
/// allocating: for misuse found on the allocation path (a double free),
/// where going on would corrupt the heap.
pub(crate) fn abort_with(parts: &[&[u8]]) -> ! {
    for part in parts {
        write_stderr(part);
    }
    write_stderr(b"\n");
    // SAFETY: abort has no preconditions.
    unsafe { libc::abort() }
}

/// `x` as `0x` and 16 hex digits, without allocating.
pub(crate) fn hex(x: usize) -> [u8; 18] {
    let mut out = *b"0x0000000000000000";
    for (i, b) in out[2..].iter_mut().enumerate() {
        let nibble = (x >> (60 - 4 * i)) & 0xf;
        *b = b"0123456789abcdef"[nibble];
    }
    out
}

/// Writes `msg` to stderr without allocating (for warnings from the
/// allocation path).
pub(crate) fn write_stderr(msg: &[u8]) {
    let mut rest = msg;
    while !rest.is_empty() {
        // SAFETY: `rest` is a valid readable buffer of the given length.
        let n = unsafe { libc::write(2, rest.as_ptr().cast(), rest.len()) };
        if n <= 0 {
            return;
        }
        rest = &rest[n as usize..];
    }
}

pub(crate) const fn round_up(x: usize, to: usize) -> usize {
    (x + to - 1) & !(to - 1)
}

/// The civil date `(year, month 1-12, day 1-31)` of `days` since
/// 1970-01-01 (Howard Hinnant's `civil_from_days`); the HTTP `Date` header
/// and the report page's times share it.
#[cfg(any(feature = "http", feature = "cli"))]
pub(crate) fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m as u32, d as u32)
}

/// Counts the pages of `[p, p + len)` that are resident (in memory now),
/// using `vec` (one byte a page) for up to `vec.len()` pages a call. `None`
/// if the kernel refused (the caller then assumes all of them are).
///
/// # Safety
/// The range must lie inside a mapping this process owns; `p` page-aligned.
pub(crate) unsafe fn resident_pages(p: *mut u8, len: usize, vec: &mut [u8]) -> Option<usize> {
    let mut n = 0;
    let mut at = 0;
    while at < len {
        let step = (len - at).min(vec.len() * PAGE);
        // SAFETY: the caller guarantees the range is ours and page-aligned;
        // `vec` has a byte for each of the `step / PAGE` (rounded up) pages.
        if unsafe { libc::mincore(p.add(at).cast(), step, vec.as_mut_ptr()) } != 0 {
            return None;
        }
        n += vec[..step.div_ceil(PAGE)]
            .iter()
            .filter(|&&b| b & 1 != 0)
            .count();
        at += step;
    }
    Some(n)
}
