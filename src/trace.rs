//! `MEMPROF_TRACE`: a one-line heap summary on stderr at most once per
//! interval, like Go's `GODEBUG=gctrace=1`.
//!
//! ```text
//! memprof: @2.004s inuse 96.1 MiB ± 6.9 MiB, allocated 1.9 GiB (+1003.2 MiB, 1000.9 MiB/s), rss 104.3 MiB, dropped 0
//! ```
//!
//! Driven by the sample slow path (`tick`, from `alloc::decide`), never
//! the fast path and never a thread of ours: a process that does not
//! allocate prints nothing, as gctrace prints per GC. Lines come at the
//! first slow path after the interval, so at least one rate of bytes
//! (4 MiB when profiling is off) must be allocated on some thread between
//! two lines.
//!
//! Cost when off: one relaxed load and a compare per slow path. When on:
//! a coarse clock read (`CLOCK_MONOTONIC_COARSE`, vDSO, no syscall) and a
//! compare; the thread whose `compare_exchange` moves the due time prints,
//! so at most one line per interval process-wide. The line is formatted
//! into a stack buffer with `core::fmt` (which does not allocate) and
//! written with `write(2)`; reading RSS opens `/proc/self/statm`.
//!
//! Thread safety: three atomics; the due time's compare-exchange elects
//! the printer, which alone writes `LAST_*`.

use crate::totals::Bytes;
use core::fmt::{self, Write};
use core::sync::atomic::{AtomicU64, Ordering};

/// The trace interval in ns; 0 while tracing is off.
static INTERVAL: AtomicU64 = AtomicU64::new(0);
/// Coarse-clock ns at which the next line is due; `u64::MAX` when off.
static DUE: AtomicU64 = AtomicU64::new(u64::MAX);
/// Coarse-clock ns when tracing started.
static START: AtomicU64 = AtomicU64::new(0);
/// Bytes allocated and the time at the last line (the printer's only).
static LAST_ALLOCATED: AtomicU64 = AtomicU64::new(0);
static LAST_TIME: AtomicU64 = AtomicU64::new(0);

/// Default interval for `MEMPROF_TRACE=1`.
const DEFAULT_INTERVAL_NS: u64 = 1_000_000_000;

/// `MEMPROF_TRACE`'s value: `0` off, `1` every second, or an interval:
/// a whole number followed by `ms`, `s` or `m` (`500ms`, `5s`, `1m`).
/// `Err` for anything else, including `0s`.
pub(crate) fn parse_interval(value: &[u8]) -> Result<Option<u64>, ()> {
    let v = value.trim_ascii();
    match v {
        b"0" => return Ok(None),
        b"1" => return Ok(Some(DEFAULT_INTERVAL_NS)),
        _ => {}
    }
    let digits = v.iter().take_while(|b| b.is_ascii_digit()).count();
    let (number, unit) = v.split_at(digits);
    let scale: u64 = match unit {
        b"ms" => 1_000_000,
        b"s" => 1_000_000_000,
        b"m" => 60_000_000_000,
        _ => return Err(()),
    };
    let n = crate::sampler::parse_rate(number).ok_or(())? as u64;
    match n.checked_mul(scale) {
        Some(0) | None => Err(()),
        Some(ns) => Ok(Some(ns)),
    }
}

/// Turns tracing on with `interval_ns` (from `env::init_once`).
pub(crate) fn enable(interval_ns: u64) {
    let now = crate::sys::os::coarse_nanos();
    START.store(now, Ordering::Relaxed);
    LAST_TIME.store(now, Ordering::Relaxed);
    LAST_ALLOCATED.store(crate::sampler::allocated_bytes(), Ordering::Relaxed);
    INTERVAL.store(interval_ns, Ordering::Relaxed);
    DUE.store(now.saturating_add(interval_ns), Ordering::Release);
}

/// Prints the line if one is due. Called on the sample slow path only.
#[inline]
pub(crate) fn tick() {
    let due = DUE.load(Ordering::Relaxed);
    if due == u64::MAX {
        return;
    }
    let now = crate::sys::os::coarse_nanos();
    if now < due {
        return;
    }
    tick_slow(due, now);
}

#[cold]
#[inline(never)]
fn tick_slow(due: u64, now: u64) {
    if crate::guard::is_busy() {
        return; // inside the profiler: the next slow path outside prints
    }
    let interval = INTERVAL.load(Ordering::Relaxed);
    if DUE
        .compare_exchange(
            due,
            now.saturating_add(interval),
            Ordering::AcqRel,
            Ordering::Relaxed,
        )
        .is_err()
    {
        return; // another thread prints this one
    }
    let _busy = crate::guard::Busy::enter();
    let allocated = crate::sampler::allocated_bytes();
    let rate = crate::sampler::rate();
    let inuse = crate::peak::inuse_bytes();
    let line = Line {
        since_start_ns: now.saturating_sub(START.load(Ordering::Relaxed)),
        inuse_bytes: inuse,
        inuse_error_bytes: quick_error(rate, inuse),
        allocated_bytes: allocated,
        allocated_since_bytes: allocated.saturating_sub(LAST_ALLOCATED.load(Ordering::Relaxed)),
        window_ns: now.saturating_sub(LAST_TIME.load(Ordering::Relaxed)),
        rss_bytes: crate::sys::proc::rss_bytes(),
        dropped: crate::records::dropped(),
    };
    LAST_ALLOCATED.store(allocated, Ordering::Relaxed);
    LAST_TIME.store(now, Ordering::Relaxed);
    let mut buf = StackBuf::new();
    if write!(buf, "{line}").is_err() {
        buf.truncated();
    }
    crate::sys::os::write_stderr(buf.as_bytes());
}

/// sqrt(rate × bytes): the standard error of an in-use estimate of
/// `bytes` made of objects much smaller than the rate (an upper bound for
/// larger ones); 0 at rate 1, where every allocation is recorded.
pub(crate) fn quick_error(rate: usize, bytes: u64) -> u64 {
    if rate <= 1 {
        0
    } else {
        (rate as f64 * bytes as f64).sqrt() as u64
    }
}

/// The figures of one trace line.
pub(crate) struct Line {
    pub(crate) since_start_ns: u64,
    pub(crate) inuse_bytes: u64,
    pub(crate) inuse_error_bytes: u64,
    pub(crate) allocated_bytes: u64,
    pub(crate) allocated_since_bytes: u64,
    pub(crate) window_ns: u64,
    pub(crate) rss_bytes: Option<u64>,
    pub(crate) dropped: u64,
}

impl fmt::Display for Line {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = self.since_start_ns / 1_000_000;
        let per_sec = if self.window_ns == 0 {
            0
        } else {
            (self.allocated_since_bytes as f64 * 1e9 / self.window_ns as f64) as u64
        };
        write!(
            f,
            "memprof: @{}.{:03}s inuse {} ± {}, allocated {} (+{}, {}/s), rss ",
            ms / 1000,
            ms % 1000,
            Bytes(self.inuse_bytes),
            Bytes(self.inuse_error_bytes),
            Bytes(self.allocated_bytes),
            Bytes(self.allocated_since_bytes),
            Bytes(per_sec),
        )?;
        match self.rss_bytes {
            Some(r) => write!(f, "{}", Bytes(r))?,
            None => f.write_str("?")?,
        }
        writeln!(f, ", dropped {}", self.dropped)
    }
}

/// A fixed buffer that `core::fmt` writes into; too long a line is cut.
struct StackBuf {
    buf: [u8; 256],
    len: usize,
}

impl StackBuf {
    fn new() -> Self {
        StackBuf {
            buf: [0; 256],
            len: 0,
        }
    }

    fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }

    /// Ends a cut line with `...` and a newline.
    fn truncated(&mut self) {
        let end = self.buf.len() - 4;
        self.len = self.len.min(end);
        self.buf[self.len..self.len + 4].copy_from_slice(b"...\n");
        self.len += 4;
    }
}

impl Write for StackBuf {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let room = self.buf.len() - self.len;
        let n = s.len().min(room);
        self.buf[self.len..self.len + n].copy_from_slice(&s.as_bytes()[..n]);
        self.len += n;
        if n < s.len() {
            Err(fmt::Error)
        } else {
            Ok(())
        }
    }
}

/// The warning for a bad `MEMPROF_TRACE`, without allocating.
pub(crate) fn warn_bad(value: &[u8]) {
    let mut buf = StackBuf::new();
    warn_bad_into(&mut buf, value);
    crate::sys::os::write_stderr(buf.as_bytes());
}

fn warn_bad_into(buf: &mut StackBuf, value: &[u8]) {
    let shown = &value[..value.len().min(64)];
    let _ = writeln!(
        buf,
        "memprof: ignoring MEMPROF_TRACE=\"{}{}\": expected 1 (every second), 0 (off) or an interval such as 500ms, 5s or 1m; tracing is off",
        core::str::from_utf8(shown).unwrap_or("(not UTF-8)"),
        if value.len() > 64 { "..." } else { "" },
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals_parse_or_are_rejected() {
        assert_eq!(parse_interval(b"0"), Ok(None));
        assert_eq!(parse_interval(b"1"), Ok(Some(1_000_000_000)));
        assert_eq!(parse_interval(b" 5s "), Ok(Some(5_000_000_000)));
        assert_eq!(parse_interval(b"500ms"), Ok(Some(500_000_000)));
        assert_eq!(parse_interval(b"1m"), Ok(Some(60_000_000_000)));
        for bad in [
            &b""[..],
            b"2",
            b"yes",
            b"0s",
            b"5 s",
            b"-1s",
            b"1.5s",
            b"s",
            b"10h",
            b"99999999999999999999m",
            b"400000000000m",
        ] {
            assert_eq!(
                parse_interval(bad),
                Err(()),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn a_line_reads_like_gctrace() {
        let line = Line {
            since_start_ns: 2_004_000_000,
            inuse_bytes: 100_770_000,
            inuse_error_bytes: quick_error(524_288, 100_770_000),
            allocated_bytes: 2_040_109_465,
            allocated_since_bytes: 1_051_931_443,
            window_ns: 1_002_000_000,
            rss_bytes: Some(109_366_476),
            dropped: 3,
        };
        let mut buf = StackBuf::new();
        write!(buf, "{line}").unwrap();
        assert_eq!(
            core::str::from_utf8(buf.as_bytes()).unwrap(),
            "memprof: @2.004s inuse 96.1 MiB ± 6.9 MiB, allocated 1.9 GiB (+1003.2 MiB, 1001.2 MiB/s), rss 104.3 MiB, dropped 3\n"
        );
        let quiet = Line {
            since_start_ns: 5_000_000,
            window_ns: 0,
            rss_bytes: None,
            ..line
        };
        let mut buf = StackBuf::new();
        write!(buf, "{quiet}").unwrap();
        let s = core::str::from_utf8(buf.as_bytes()).unwrap();
        assert!(s.starts_with("memprof: @0.005s "), "{s}");
        assert!(s.contains("0 B/s), rss ?, dropped 3\n"), "{s}");
    }

    #[test]
    fn errors_are_zero_at_rate_1_and_sqrt_rb_above() {
        assert_eq!(quick_error(1, 1 << 30), 0);
        assert_eq!(quick_error(0, 1 << 30), 0);
        assert_eq!(quick_error(1 << 19, 1 << 21), 1 << 20);
    }

    #[test]
    fn a_long_line_is_cut_not_overrun() {
        let mut buf = StackBuf::new();
        let long = "x".repeat(1000);
        assert!(write!(buf, "{long}").is_err());
        buf.truncated();
        assert_eq!(buf.as_bytes().len(), 256);
        assert!(buf.as_bytes().ends_with(b"...\n"));
        let mut w = StackBuf::new();
        warn_bad_into(&mut w, b"nonsense");
        let s = core::str::from_utf8(w.as_bytes()).unwrap();
        assert!(
            s.contains("MEMPROF_TRACE=\"nonsense\"") && s.ends_with("tracing is off\n"),
            "{s}"
        );
    }
}
