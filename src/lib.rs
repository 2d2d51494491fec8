//! Go-style sampled heap profiles for Rust.
//!
//! `memprof` is a wrapping global allocator. It samples allocations the way
//! Go's runtime does (one sample per 512 KiB allocated, on average), keeps
//! in-use and cumulative objects and bytes per allocation site, and writes
//! heap profiles that `go tool pprof` and every pprof reader open as they
//! are.
//!
//! # Quick start
//!
//! ```
//! use std::alloc::System;
//!
//! #[global_allocator]
//! static A: memprof::Sampled<System> = memprof::Sampled::new(System);
//!
//! fn main() -> std::io::Result<()> {
//!     memprof::set_rate(1); // record every allocation (exact), for this demo
//!     let kept: Vec<String> = (0..1000).map(|i| i.to_string()).collect();
//!     let profile = memprof::heap_profile();
//!     assert!(profile.totals().inuse_objects >= 1000);
//!     for site in profile.top_sites(3) {
//!         println!("{:>8} B in use  {}  ({})", site.inuse_bytes, site.function, site.location);
//!     }
//!     # let dir = std::env::temp_dir().join(format!("memprof-doc-{}", std::process::id()));
//!     # std::fs::create_dir_all(&dir)?;
//!     # let path = dir.join("heap.pb.gz");
//!     memprof::write_heap_profile(&path)?; // then: go tool pprof -top heap.pb.gz
//!     # drop(kept);
//!     Ok(())
//! }
//! ```
//!
//! # The rate
//!
//! [`set_rate`] (or `MEMPROFILERATE=N` in the environment) sets the mean
//! number of bytes between samples, like Go's `runtime.MemProfileRate`:
//! `0` turns sampling off, `1` records every allocation, the default is
//! [`DEFAULT_RATE`] (512 KiB). A change takes effect at once on every
//! thread. A bad `MEMPROFILERATE` prints one warning and keeps the default.
//!
//! # Accuracy and limits
//!
//! - Every number is an unbiased estimate: a sample of S bytes taken at
//!   rate R stands for 1 / (1 − e^(−S/R)) objects, with the rate in force
//!   *when it was taken*. At rate 1 the numbers are exact. For B bytes of
//!   small objects at one site the relative error is about sqrt(R/B):
//!   22% for 10 MiB and 2.2% for 1 GiB at the default rate.
//! - Sizes are the requested [`Layout::size()`](std::alloc::Layout::size),
//!   not what the inner allocator rounds them to.
//! - Records are keyed by (call stack, object size), as in Go, so one call
//!   site allocating several sizes has several records.
//! - In-use numbers are exact at the moment of the snapshot (frees are
//!   seen at once; there is no garbage-collection lag as in Go).
//! - Stacks keep at least 128 frames; a longer stack is cut and marked.
//! - The compiler may remove or merge allocations (see the `GlobalAlloc`
//!   docs): a profile shows the allocations the program really made.
//! - Sampled blocks are served from an address range memprof reserves, not
//!   by the inner allocator (all blocks at rate 1). See `docs/design.md`.
//!
//! # Beyond Go: labels, the peak, ages
//!
//! ```
//! # use std::alloc::System;
//! # #[global_allocator]
//! # static A: memprof::Sampled<System> = memprof::Sampled::new(System);
//! use memprof::LabelsExt;
//! use std::time::Duration;
//!
//! // Labels: samples taken inside carry tenant=acme, and the blocks keep it
//! // until freed, whichever thread frees them.
//! let cache = memprof::with_labels(&[("tenant", "acme")], || vec![0u8; 1 << 20]);
//! let task = async { vec![0u8; 4096] }.with_labels(&[("tenant", "initech")]);
//!
//! let heap = memprof::heap_profile();
//! for (tenant, t) in heap.by_label("tenant") {
//!     println!("{tenant}: {} B in use", t.inuse_bytes);
//! }
//! // Ages: the live objects allocated over a minute ago, the leak suspects.
//! let old = heap.older_than(Duration::from_secs(60));
//! for site in heap.oldest_sites(3) {
//!     println!("{:?} old: {}", site.oldest_age, site.function);
//! }
//! // The peak: the live set when in-use was at its highest so far.
//! let peak = memprof::peak_profile();
//! println!("peak: {:?} B", peak.peak_inuse_bytes());
//! # drop((cache, task, old));
//! ```
//!
//! - **Labels** ([`with_labels`], [`set_labels`], [`LabelsExt`]) are pprof
//!   string labels on the samples: `go tool pprof -tagfocus=tenant=acme`
//!   and Pyroscope's or Parca's label filters use them. At most 4096
//!   distinct label sets; more are counted under `memprof.labels=overflow`.
//! - **The peak** ([`peak_profile`], [`reset_peak`], `/debug/pprof/peak`,
//!   and a `.peak` file beside `MEMPROFILE`'s) is copied as in-use passes
//!   a new high, within 1.6% of the true peak.
//! - **Ages**: every heap profile carries a numeric label `age` (seconds,
//!   in buckets 0, 1 s, 10 s, 1 min, 10 min, 1 h, 6 h, 1 d, 1 w) on the
//!   live part of each site, so `go tool pprof -tagfocus=age=1h:` shows
//!   what has been live for an hour; [`HeapProfile::older_than`] and
//!   [`HeapProfile::oldest_sites`] do the same in process.
//!
//! All of it lives on the sample slow path: an allocation that is not
//! sampled costs exactly what it did without these features.
//!
//! # Stacks
//!
//! Each sample records its call stack, at least 128 frames (a longer one is
//! cut and marked with a `memprof::truncated` frame). memprof picks the
//! unwinder itself ([`Unwinder`]): on a build with frame pointers
//! (`RUSTFLAGS="-C force-frame-pointers=yes"`) it walks them, about 1.4 ns a
//! frame; on an ordinary build it unwinds by the DWARF unwind information
//! every build has, with each return address's rule cached after its first
//! use, about 5 ns a frame. Either way recording every allocation
//! (`MEMPROFILERATE=1`) stays a small multiple of the bare allocator.
//!
//! # Environment
//!
//! Read once, without allocating, at the first allocation:
//!
//! | variable | meaning |
//! |---|---|
//! | `MEMPROFILERATE=N` | mean bytes between samples; `0` off, `1` every allocation |
//! | `MEMPROF_UNWIND=fp\|dwarf\|libgcc` | the stack unwinder ([`Unwinder`]); the default is `fp` on builds with frame pointers, `dwarf` otherwise |
//! | `MEMPROFILE=path` | write the heap profile there at normal exit, like `go test -memprofile`; `{pid}` and `{bin}` are replaced |
//! | `MEMPROF_TRACE=1` or an interval (`500ms`, `5s`, `1m`) | one heap summary line on stderr per interval (`1`: per second), like Go's `GODEBUG=gctrace=1`; see below |
//!
//! `MEMPROF_TRACE` prints lines such as
//!
//! ```text
//! memprof: @2.004s inuse 96.1 MiB ± 6.9 MiB, allocated 1.9 GiB (+1003.2 MiB, 1001.2 MiB/s), rss 104.3 MiB, dropped 0
//! ```
//!
//! the time since the first allocation, the sampled in-use estimate ± one
//! standard error (sqrt(rate × in-use); exact at rate 1), the bytes
//! allocated since the start (exact, see [`ExactTotals`]) with those since
//! the last line and their rate, the RSS, and the samples dropped. It is
//! printed by an allocation (a sample slow path), without allocating and
//! without a thread: at most one line per interval, and none while the
//! process does not allocate (as gctrace prints one per GC). A bad value
//! prints one warning and leaves tracing off.
//!
//! # Formats
//!
//! [`HeapProfile::write_pprof`] writes gzip `profile.proto` shaped exactly
//! like Go's heap profile; [`HeapProfile::write_text`] writes Go's legacy
//! `debug=1` text. Both open in `go tool pprof`.
//!
//! # Cargo features
//!
//! - `http` (off by default): `memprof::http`, the `/debug/pprof/heap` and
//!   `/debug/pprof/allocs` endpoints of Go's `net/http/pprof`, as a small
//!   built-in server (`memprof::http::serve`) or a function to mount in any
//!   web framework (`memprof::http::handle`). Uses only std.
//! - `cli` (off by default): the `memprof` viewer binary and
//!   `memprof::view`, which read any pprof heap profile
//!   (Go's included) or Go's `debug=1` text without Go: `memprof top FILE`
//!   (the table `go tool pprof -top` prints), `memprof flame FILE -o
//!   out.svg` (an `inferno` flame graph), `memprof diff BASE FILE` (growth,
//!   as `-diff_base`). Install with `cargo install memprof --features cli`.
//!   Adds `clap` and `inferno`.
#![deny(missing_docs)]

// The sampled-block region needs 8 GiB .. 2 TiB of address space and the
// Linux memory and thread calls (mmap/mprotect/madvise, pthread keys and
// atfork, the loader's module list). Say so now rather than fail inside
// an allocator at run time.
#[cfg(not(all(target_os = "linux", target_pointer_width = "64")))]
compile_error!(
    "memprof supports 64-bit Linux only (x86_64, aarch64): its sampled-block region reserves \
     up to 2 TiB of address space and uses Linux memory calls. On other targets, install the \
     inner allocator directly, e.g. behind #[cfg(target_os = \"linux\")]."
);

mod ages;
mod alloc;
mod encode;
mod env;
mod fork;
mod guard;
#[cfg(feature = "http")]
pub mod http;
mod labels;
mod live;
mod mappings;
mod peak;
mod records;
mod sampler;
mod scope;
mod snapshot;
mod stack;
mod stacks;
mod symbolize;
mod sys;
pub mod testing;
mod top;
mod totals;
mod trace;
#[cfg(any(feature = "cli", feature = "http"))]
pub mod view;

pub use alloc::Sampled;
pub use env::peak_path;
pub use labels::{set_labels, with_labels, LabelGuard, Labeled, LabelsExt};
pub use sampler::DEFAULT_RATE;
pub use snapshot::{Frame, HeapProfile, Record, Totals};
pub use stack::Unwinder;
pub use testing::{
    allocs_per_run, assert_no_alloc, assert_no_leaks, current_scope, dump_on_panic, measure,
    DumpOnPanic, Measured, PerRun, ScopeHandle, Stats,
};
pub use top::Site;
pub use totals::{inner, ExactTotals, InnerHeap, InnerStats};

use std::path::Path;

/// Sets the sampling rate: the mean number of bytes allocated between two
/// samples, like Go's `runtime.MemProfileRate`. `0` turns sampling off, `1`
/// records every allocation. Takes effect at once, on every thread.
///
/// Samples already taken keep the weight of the rate they were taken at,
/// so a profile stays an unbiased estimate across rate changes.
///
/// ```
/// memprof::set_rate(1);
/// assert_eq!(memprof::rate(), 1);
/// memprof::set_rate(memprof::DEFAULT_RATE);
/// ```
pub fn set_rate(bytes: usize) {
    env::init_once();
    sampler::set_rate(bytes);
}

/// Chooses the stack unwinder for samples taken from now on (see
/// [`Unwinder`] for the default and the trade-off). `MEMPROF_UNWIND=fp`,
/// `dwarf` or `libgcc` does the same from the environment.
///
/// ```
/// memprof::set_unwinder(memprof::Unwinder::Libgcc);
/// assert_eq!(memprof::unwinder(), memprof::Unwinder::Libgcc);
/// ```
pub fn set_unwinder(unwinder: Unwinder) {
    env::init_once();
    stack::set_unwinder(unwinder);
}

/// The stack unwinder in use.
pub fn unwinder() -> Unwinder {
    env::init_once();
    stack::unwinder()
}

/// The current sampling rate in bytes (see [`set_rate`]).
pub fn rate() -> usize {
    env::init_once();
    sampler::rate()
}

/// A snapshot of the heap profile: every allocation site with its
/// estimated allocated and in-use objects and bytes.
///
/// ```
/// let profile = memprof::heap_profile();
/// let totals = profile.totals();
/// assert!(totals.inuse_bytes <= totals.alloc_bytes);
/// ```
pub fn heap_profile() -> HeapProfile {
    env::init_once();
    snapshot::take()
}

/// The peak heap profile: the sampled live set when the heap's in-use was
/// at its highest so far (since the start, or [`reset_peak`]), with each
/// site's in-use and allocated values at that moment. Labels are kept;
/// ages are not.
///
/// The copy is taken on the sample path as in-use passes a new high, at
/// the moment it starts to fall again, and only when the new high is more
/// than 1/64 above the last one (so a growing heap costs a few dozen
/// copies per doubling): the live set shown is within 1.6% of the true
/// peak's, and exactly the peak's when the heap rose more than that after
/// its last free. Exact at rate 1 in that case; an unbiased estimate at
/// other rates. [`HeapProfile::peak_inuse_bytes`] gives the in-use
/// estimate at the peak.
///
/// ```
/// use std::alloc::System;
/// #[global_allocator]
/// static A: memprof::Sampled<System> = memprof::Sampled::new(System);
///
/// memprof::set_rate(1);
/// memprof::reset_peak();
/// let big = vec![0u8; 8 << 20];
/// drop(big);
/// let peak = memprof::peak_profile();
/// assert!(peak.peak_inuse_bytes().unwrap() >= 8 << 20);
/// assert!(peak.totals().inuse_bytes >= 8 << 20);
/// # memprof::set_rate(memprof::DEFAULT_RATE);
/// ```
pub fn peak_profile() -> HeapProfile {
    snapshot::take_peak()
}

/// Starts the peak over: the peak becomes the heap as it is now, and
/// [`peak_profile`] shows the highest in-use reached from here on.
///
/// ```
/// memprof::reset_peak();
/// ```
pub fn reset_peak() {
    crate::sampler::without_sampling(peak::reset);
}

/// Exact figures about the heap, beside the sampled estimate, at no cost
/// to the fast path: bytes allocated since the start (counted by the
/// sampler's countdown), the heap's in-use bytes from the inner
/// allocator's own statistics plus the live sampled blocks, RSS from the
/// kernel, and the sampled in-use estimate with its standard error. See
/// [`ExactTotals`] for what each figure means and how late it can be.
///
/// `Sampled<System>` reports glibc's numbers (`mallinfo2`) by itself;
/// another inner allocator reports through [`Sampled::with_stats`] or
/// [`Sampled::with_stats_from`]. The same figures are in every profile's
/// comments and in [`HeapProfile::exact_totals`].
///
/// ```
/// use std::alloc::System;
///
/// #[global_allocator]
/// static A: memprof::Sampled<System> = memprof::Sampled::new(System);
///
/// fn main() {
///     let before = memprof::exact_totals();
///     let v = std::hint::black_box(vec![1u8; 1 << 20]);
///     let after = memprof::exact_totals();
///     assert!(after.allocated_bytes >= before.allocated_bytes + (1 << 20));
///     assert_eq!(after.inner.unwrap().allocator, "glibc");
///     println!("{after}");
///     # drop(v);
/// }
/// ```
pub fn exact_totals() -> ExactTotals {
    env::init_once();
    totals::take()
}

/// Writes the current heap profile to `path` as a gzip pprof file, the way
/// Go's `pprof.WriteHeapProfile` does. The file is written under a
/// temporary name and renamed, so it is never seen half-written.
///
/// ```no_run
/// memprof::write_heap_profile("heap.pb.gz")?;
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn write_heap_profile(path: impl AsRef<Path>) -> std::io::Result<()> {
    crate::sampler::without_sampling(|| write_profile_file(path.as_ref(), &heap_profile(), true))
}

/// Writes the peak heap profile ([`peak_profile`]) to `path` as a gzip
/// pprof file, as [`write_heap_profile`] does for the heap.
///
/// ```no_run
/// memprof::write_peak_profile("peak.pb.gz")?;
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn write_peak_profile(path: impl AsRef<Path>) -> std::io::Result<()> {
    crate::sampler::without_sampling(|| write_profile_file(path.as_ref(), &peak_profile(), true))
}

/// Writes `profile` to `path` through a temporary file and a rename;
/// unsymbolized ([`HeapProfile::write_pprof_unsymbolized`]) unless
/// `symbolize`.
pub(crate) fn write_profile_file(
    path: &Path,
    profile: &HeapProfile,
    symbolize: bool,
) -> std::io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(format!(".tmp.{}", std::process::id()));
    let tmp = std::path::PathBuf::from(tmp);
    let result = std::fs::File::create(&tmp)
        .and_then(|f| {
            let w = std::io::BufWriter::new(f);
            if symbolize {
                profile.write_pprof(w)
            } else {
                profile.write_pprof_unsymbolized(w)
            }
        })
        .and_then(|()| std::fs::rename(&tmp, path));
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

#[doc(hidden)]
pub mod __private {
    //! Test hooks. Not part of the API.

    /// Seeds the calling thread's sampler (for tests over many seeds).
    pub fn seed_thread(seed: u64) {
        crate::sampler::seed_thread(seed);
    }

    /// Captures the calling thread's stack with `unwinder` into `buf`, as
    /// the sampler would (for benchmarks and tests). Returns the number of
    /// frames and whether the stack was truncated.
    pub fn capture_stack_with(unwinder: crate::Unwinder, buf: &mut [usize]) -> (usize, bool) {
        crate::sampler::without_sampling(|| {
            let mut cap = crate::stack::Captured::new();
            crate::stack::capture_with(unwinder, &mut cap);
            let n = cap.len.min(buf.len());
            buf[..n].copy_from_slice(&cap.as_slice()[..n]);
            (n, cap.truncated || n < cap.len)
        })
    }

    /// The heap's sampled in-use estimate in bytes (exact at rate 1).
    pub fn inuse_estimate() -> u64 {
        crate::peak::inuse_bytes()
    }

    /// How many times a module's debug info was opened to symbolize, since
    /// the start (the unsymbolized writers open none).
    pub fn debug_info_loads() -> usize {
        crate::symbolize::debug_info_loads()
    }

    /// Samples dropped so far (tables or region full).
    pub fn dropped_samples() -> u64 {
        crate::records::dropped()
    }

    /// Address space reserved and bytes committed by the sampled-block region.
    pub fn region_footprint() -> (usize, usize) {
        crate::sys::region::footprint()
    }

    /// Checks the sampled-block region's invariants (free lists hold
    /// distinct committed free slots, thread caches within their byte
    /// bounds, large runs consistent) and returns `(slots handed out ever,
    /// of which free)`, counting this thread's caches and the shared lists.
    /// Call it at a quiescent moment: once every other thread that used the
    /// region has exited, every slot not live is counted as free.
    pub fn validate_region() -> Result<(usize, usize), &'static str> {
        crate::sampler::without_sampling(|| {
            crate::sys::region::validate().map(|u| (u.small_slots, u.small_free))
        })
    }

    /// Frees of sampled blocks that came in while their thread was inside
    /// the profiler (a signal handler) and found no room to be deferred:
    /// leaked, never crashed.
    pub fn deferred_frees_lost() -> u64 {
        crate::live::deferred_lost()
    }

    /// Bytes mapped for the profiler's tables.
    pub fn table_bytes() -> usize {
        crate::sys::arena::mapped_bytes()
    }

    /// Panics while holding the lock that serialises profile writes, as a
    /// bug inside memprof would (for the `dump_on_panic` tests: its hook
    /// must not wait for that lock).
    pub fn panic_inside_profiler() {
        crate::snapshot::panic_under_writer_lock();
    }

    /// Empties the DWARF unwinder's rule cache (to measure first-use cost).
    pub fn flush_unwind_cache() {
        crate::sys::dwarf::flush();
    }

    /// Rules in the DWARF unwinder's cache, and the cache's size in bytes.
    pub fn unwind_cache_usage() -> (usize, usize) {
        (
            crate::sys::dwarf::cached_rules(),
            crate::sys::dwarf::CACHE_BYTES,
        )
    }

    /// The DWARF unwinder's cache misses (rules read from CFI) and walks
    /// it handed to libgcc, since the start.
    pub fn unwind_counts() -> (u64, u64) {
        crate::sys::dwarf::counts()
    }
}
