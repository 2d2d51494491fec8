//! `MEMPROFILERATE` and `MEMPROFILE`: read once, without allocating, at the
//! first allocation of the process; `MEMPROFILE` is written at normal exit.
//!
//! `MEMPROFILERATE=N`: mean bytes between samples (0 off, 1 every
//! allocation). A bad value (`abc`, `-5`, overflow, empty) prints one
//! warning and keeps the default.
//!
//! `MEMPROF_UNWIND=fp|dwarf|libgcc`: the stack unwinder (see `Unwinder`).
//!
//! `MEMPROF_TRACE=1|0|500ms|5s|1m`: a heap summary line on stderr per
//! interval (`crate::trace`); a bad value prints one warning, tracing off.
//!
//! `MEMPROF_SYMBOLIZE=0`: the `MEMPROFILE` profiles are written
//! unsymbolized (addresses, mappings and build IDs; no debug info read),
//! for a backend that symbolizes them. `1` or unset: symbolized. Another
//! value prints one warning and symbolizes.
//!
//! `MEMPROFILE=path`: the heap profile (pprof, gzip) is written there when
//! the process exits normally (`exit`, or returning from `main`; not on
//! `abort`, a signal, or `_exit`). `{pid}` and `{bin}` in the path are
//! replaced by the process id and the executable's file name, so that the
//! test binaries of one `cargo test` write one file each. Without a
//! placeholder, a file that another process wrote after this one started is
//! not overwritten: the profile goes to the same name with `.{bin}.{pid}`
//! inserted before the extension, and the message says so. The file is
//! written to a temporary name and renamed, so readers never see half a
//! profile. The peak heap profile (`peak.rs`) goes beside it, with `.peak`
//! before the extensions (`heap.pb.gz`, `heap.peak.pb.gz`). One line says
//! what was written; failure prints one line and leaves the exit status
//! alone.

use crate::fork;
use crate::guard::Busy;
use crate::sampler;
use crate::stack::{self, Unwinder};
use crate::sys::os;
use core::sync::atomic::{AtomicI64, AtomicU8, Ordering};
use std::ffi::CStr;
use std::path::{Path, PathBuf};

const UNINIT: u8 = 0;
const RUNNING: u8 = 1;
const DONE: u8 = 2;
static STATE: AtomicU8 = AtomicU8::new(UNINIT);
/// Process start (first allocation), ns since the epoch: for collisions.
static START_NANOS: AtomicI64 = AtomicI64::new(0);

/// Reads the environment the first time it is called; cheap after.
#[inline]
pub(crate) fn init_once() {
    if STATE.load(Ordering::Acquire) == DONE {
        return;
    }
    init_slow();
}

#[cold]
fn init_slow() {
    if STATE
        .compare_exchange(UNINIT, RUNNING, Ordering::AcqRel, Ordering::Acquire)
        .is_err()
    {
        return; // another thread is on it; the default rate holds meanwhile
    }
    // What libc allocates below (atfork and atexit lists) is not sampled.
    let _busy = Busy::enter();
    START_NANOS.store(now_nanos(), Ordering::Relaxed);
    fork::register_once();
    if let Some(value) = getenv(c"MEMPROF_UNWIND") {
        match value.trim_ascii() {
            b"fp" => stack::set_unwinder(Unwinder::FramePointers),
            b"dwarf" => stack::set_unwinder(Unwinder::Dwarf),
            b"libgcc" => stack::set_unwinder(Unwinder::Libgcc),
            _ => os::write_stderr(
                b"memprof: ignoring MEMPROF_UNWIND: expected fp, dwarf or libgcc; keeping the default\n",
            ),
        }
    }
    if let Some(value) = getenv(c"MEMPROFILERATE") {
        match sampler::parse_rate(value) {
            Some(rate) => sampler::set_rate(rate),
            None => warn_bad_rate(value),
        }
    }
    if let Some(value) = getenv(c"MEMPROF_TRACE") {
        match crate::trace::parse_interval(value) {
            Ok(Some(interval)) => crate::trace::enable(interval),
            Ok(None) => {}
            Err(()) => crate::trace::warn_bad(value),
        }
    }
    if getenv(c"MEMPROFILE").is_some() {
        // SAFETY: `write_at_exit` is an `extern "C" fn()` that lives forever.
        unsafe {
            libc::atexit(write_at_exit);
        }
    }
    STATE.store(DONE, Ordering::Release);
}

fn getenv(name: &CStr) -> Option<&'static [u8]> {
    // SAFETY: `name` is NUL-terminated. getenv returns a pointer into the
    // environment block, valid until the variable is changed; we read it
    // at once and the environment is not modified during start-up.
    let p = unsafe { libc::getenv(name.as_ptr()) };
    if p.is_null() {
        None
    } else {
        // SAFETY: a non-null getenv result is a NUL-terminated string.
        Some(unsafe { CStr::from_ptr(p) }.to_bytes())
    }
}

fn warn_bad_rate(value: &[u8]) {
    let mut buf = [0u8; 256];
    let mut len = 0;
    let shown = &value[..value.len().min(64)];
    let ellipsis: &[u8] = if value.len() > 64 { b"..." } else { b"" };
    for part in [
        b"memprof: ignoring MEMPROFILERATE=\"".as_slice(),
        shown,
        ellipsis,
        b"\": expected a whole number of bytes (0 = off, 1 = every allocation); using the default 524288\n",
    ] {
        let n = part.len().min(buf.len() - len);
        buf[len..len + n].copy_from_slice(&part[..n]);
        len += n;
    }
    os::write_stderr(&buf[..len]);
}

fn now_nanos() -> i64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid out-pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_REALTIME, &mut ts) };
    ts.tv_sec * 1_000_000_000 + ts.tv_nsec
}

extern "C" fn write_at_exit() {
    // Never unwind out of an atexit handler.
    let _ = std::panic::catch_unwind(|| {
        let _busy = Busy::enter();
        let Some(raw) = std::env::var_os("MEMPROFILE") else {
            return;
        };
        let path = expand(Path::new(&raw));
        let symbolize = symbolize_at_exit();
        let heap = crate::heap_profile();
        if let Err(e) = crate::write_profile_file(&path, &heap, symbolize) {
            eprintln!(
                "memprof: cannot write the heap profile to {}: {e}",
                path.display()
            );
            return;
        }
        let peak = peak_path(&path);
        match crate::write_profile_file(&peak, &crate::peak_profile(), symbolize) {
            Ok(()) => eprintln!(
                "memprof: heap profile written to {} (its peak to {})",
                path.display(),
                peak.display()
            ),
            Err(e) => eprintln!(
                "memprof: heap profile written to {}; cannot write its peak to {}: {e}",
                path.display(),
                peak.display()
            ),
        }
    });
}

/// `MEMPROF_SYMBOLIZE`: `0` writes the exit profiles unsymbolized.
fn symbolize_at_exit() -> bool {
    match std::env::var_os("MEMPROF_SYMBOLIZE") {
        None => true,
        Some(v) if v == "0" => false,
        Some(v) if v == "1" => true,
        Some(v) => {
            eprintln!(
                "memprof: MEMPROF_SYMBOLIZE={} is not 0 or 1; writing symbolized profiles",
                v.to_string_lossy()
            );
            true
        }
    }
}

/// The path `MEMPROFILE` writes the peak profile to, beside the heap
/// profile at `heap`: `.peak` before the extensions (`heap.pb.gz` ->
/// `heap.peak.pb.gz`, `profile` -> `profile.peak`). `memprof report`
/// looks there for the peak of the profile it is given.
///
/// ```
/// use std::path::Path;
/// assert_eq!(memprof::peak_path(Path::new("/tmp/heap.pb.gz")), Path::new("/tmp/heap.peak.pb.gz"));
/// ```
pub fn peak_path(heap: &Path) -> PathBuf {
    let name = heap
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let (stem, ext) = match name.find('.') {
        Some(i) if i > 0 => (&name[..i], &name[i..]),
        _ => (name.as_str(), ""),
    };
    heap.with_file_name(format!("{stem}.peak{ext}"))
}

fn bin_name() -> String {
    std::env::current_exe()
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_else(|| "bin".to_string())
}

/// Applies `{pid}`/`{bin}`, or the collision rule when there is neither.
pub(crate) fn expand(path: &Path) -> PathBuf {
    let s = path.to_string_lossy();
    if s.contains("{pid}") || s.contains("{bin}") {
        let s = s
            .replace("{pid}", &std::process::id().to_string())
            .replace("{bin}", &bin_name());
        return PathBuf::from(s);
    }
    let written_since_start = std::fs::metadata(path)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .is_some_and(|d| d.as_nanos() as i64 >= START_NANOS.load(Ordering::Relaxed));
    if !written_since_start {
        return path.to_path_buf();
    }
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let (stem, ext) = match name.find('.') {
        Some(i) => (&name[..i], &name[i..]),
        None => (name.as_str(), ""),
    };
    let unique = format!("{stem}.{}.{}{ext}", bin_name(), std::process::id());
    eprintln!(
        "memprof: {} was written by another process during this run; not overwriting it",
        path.display()
    );
    path.with_file_name(unique)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_peak_goes_beside_the_heap_profile() {
        for (heap, peak) in [
            ("heap.pb.gz", "heap.peak.pb.gz"),
            ("/tmp/x/heap-app-12.pb.gz", "/tmp/x/heap-app-12.peak.pb.gz"),
            ("profile", "profile.peak"),
            (".hidden", ".hidden.peak"),
        ] {
            assert_eq!(peak_path(Path::new(heap)), Path::new(peak), "{heap}");
        }
    }

    #[test]
    fn placeholders_expand() {
        let p = expand(Path::new("/tmp/heap-{bin}-{pid}.pb.gz"));
        let s = p.to_string_lossy();
        assert!(s.contains(&std::process::id().to_string()));
        assert!(!s.contains('{'));
    }
}
