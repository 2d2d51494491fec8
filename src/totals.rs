//! Exact totals beside the estimate: what can be known exactly about the
//! heap without touching the fast path ([`exact_totals`](crate::exact_totals)).
//!
//! | figure | where it comes from | exact? |
//! |---|---|---|
//! | bytes allocated | the sampler's countdown (`sampler::allocated_bytes`) | yes, up to each other thread's unflushed countdown |
//! | inner allocator in use | the inner allocator's own statistics ([`InnerStats`]) | as the allocator counts it |
//! | sampled blocks live | the record table: Σ (samples − frees) × size | yes |
//! | RSS | the kernel (`/proc/self/statm`) | yes |
//! | in-use estimate ± error | the samples (`peak::inuse_bytes`) | an estimate |
//!
//! Sampled blocks are served from memprof's own region, not by the inner
//! allocator (at rate 1, all of them), so the inner allocator's in-use
//! misses them; the heap's exact in-use is the inner allocator's figure
//! plus the live sampled blocks'.
//!
//! The inner allocator's statistics function is registered by the first
//! slow path of the `Sampled` that is the global allocator (see
//! `alloc.rs`), from `Sampled::with_stats`, `Sampled::with_stats_from`, or,
//! for `Sampled<System>`, glibc's `mallinfo2`. The fast paths never read it.
//!
//! Thread safety: one atomic word holds the registered function.

use crate::sys::proc;
use core::fmt;
use core::sync::atomic::{AtomicUsize, Ordering};

/// What an inner allocator says about its own heap. Fields it cannot give
/// are `None`.
///
/// ```
/// let heap = memprof::InnerHeap::new("my-arena", Some(4096)).with_blocks(2);
/// assert_eq!(heap.inuse_bytes, Some(4096));
/// assert_eq!(heap.inuse_blocks, Some(2));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct InnerHeap {
    /// The allocator's name, as printed: `"glibc"`, `"jemalloc"`, ….
    pub allocator: &'static str,
    /// Bytes in use as the allocator counts them: usually its rounded
    /// block sizes (glibc: chunk sizes with their 8-byte header, and the
    /// free blocks parked in its per-thread caches; jemalloc: size
    /// classes), so somewhat more than the bytes requested. It includes
    /// memprof's own memory taken from the inner allocator, chiefly the
    /// symbolizer's debug-info caches after the first profile write.
    pub inuse_bytes: Option<u64>,
    /// Blocks in use, when the allocator counts them (glibc and jemalloc
    /// do not, cheaply).
    pub inuse_blocks: Option<u64>,
    /// Bytes the allocator holds from the operating system (glibc: its
    /// arenas and `mmap`ed blocks; jemalloc: `stats.resident`; mimalloc:
    /// its committed memory).
    pub held_bytes: Option<u64>,
}

impl InnerHeap {
    /// A report from `allocator` with `inuse_bytes` in use.
    ///
    /// ```
    /// let heap = memprof::InnerHeap::new("bump", None).with_held(1 << 20);
    /// assert_eq!(heap.held_bytes, Some(1 << 20));
    /// ```
    pub const fn new(allocator: &'static str, inuse_bytes: Option<u64>) -> Self {
        InnerHeap {
            allocator,
            inuse_bytes,
            inuse_blocks: None,
            held_bytes: None,
        }
    }

    /// The same report with a count of blocks in use.
    ///
    /// ```
    /// assert_eq!(memprof::InnerHeap::new("a", Some(64)).with_blocks(1).inuse_blocks, Some(1));
    /// ```
    #[must_use = "returns the changed report; `self` is consumed"]
    pub const fn with_blocks(mut self, blocks: u64) -> Self {
        self.inuse_blocks = Some(blocks);
        self
    }

    /// The same report with the bytes held from the operating system.
    ///
    /// ```
    /// assert_eq!(memprof::InnerHeap::new("a", None).with_held(8192).held_bytes, Some(8192));
    /// ```
    #[must_use = "returns the changed report; `self` is consumed"]
    pub const fn with_held(mut self, bytes: u64) -> Self {
        self.held_bytes = Some(bytes);
        self
    }
}

/// An allocator that can report its own heap, for [`exact_totals`](crate::exact_totals): wrap
/// it with [`Sampled::with_stats`](crate::Sampled::with_stats).
///
/// An associated function, not a method: global allocators are unit
/// structs over global state. It is called by [`exact_totals`](crate::exact_totals) (and so by
/// profile writes), never from inside an allocation; it may allocate.
/// Implemented for [`std::alloc::System`] (glibc's `mallinfo2`; `None` on
/// other C libraries). For an allocator of another crate, which this trait
/// cannot be implemented for in yours, pass a function to
/// [`Sampled::with_stats_from`](crate::Sampled::with_stats_from); the
/// [`inner`] module has them for jemalloc and mimalloc.
///
/// ```
/// use std::alloc::{GlobalAlloc, Layout, System};
///
/// struct Counting;
/// unsafe impl GlobalAlloc for Counting {
///     unsafe fn alloc(&self, l: Layout) -> *mut u8 { unsafe { System.alloc(l) } }
///     unsafe fn dealloc(&self, p: *mut u8, l: Layout) { unsafe { System.dealloc(p, l) } }
/// }
/// impl memprof::InnerStats for Counting {
///     fn inner_stats() -> Option<memprof::InnerHeap> {
///         Some(memprof::InnerHeap::new("counting", Some(0)))
///     }
/// }
///
/// #[global_allocator]
/// static A: memprof::Sampled<Counting> = memprof::Sampled::with_stats(Counting);
///
/// fn main() {
///     let v = vec![0u8; 100];
///     assert_eq!(memprof::exact_totals().inner.unwrap().allocator, "counting");
///     # drop(v);
/// }
/// ```
pub trait InnerStats {
    /// The allocator's report now, or `None` when it cannot say.
    fn inner_stats() -> Option<InnerHeap>;
}

impl InnerStats for std::alloc::System {
    fn inner_stats() -> Option<InnerHeap> {
        inner::glibc()
    }
}

/// Statistics functions for common inner allocators, to pass to
/// [`Sampled::with_stats_from`](crate::Sampled::with_stats_from).
///
/// Each finds its allocator at run time and returns `None` when it is not
/// in the program: no dependency on the allocator's crate, no link error.
///
/// ```
/// // With tikv-jemallocator:
/// // static A: memprof::Sampled<Jemalloc> =
/// //     memprof::Sampled::with_stats_from(Jemalloc, memprof::inner::jemalloc);
/// let glibc = memprof::inner::glibc().expect("glibc");
/// assert!(glibc.inuse_bytes.is_some());
/// ```
pub mod inner {
    use super::{proc, InnerHeap};

    /// glibc's malloc (`std::alloc::System` on Linux with glibc), through
    /// `mallinfo2` (glibc 2.33 and later; `None` elsewhere). In use is
    /// `uordblks + hblkhd`, held is `arena + hblkhd`; no block count. It
    /// takes each malloc arena's lock for a moment.
    ///
    /// ```
    /// let before = memprof::inner::glibc().unwrap().inuse_bytes.unwrap();
    /// let v = std::hint::black_box(vec![1u8; 1 << 20]); // System serves this doc test
    /// let after = memprof::inner::glibc().unwrap().inuse_bytes.unwrap();
    /// assert!(after >= before + (1 << 20));
    /// # drop(v);
    /// ```
    pub fn glibc() -> Option<InnerHeap> {
        let (inuse, held) = proc::glibc_mallinfo()?;
        Some(InnerHeap::new("glibc", Some(inuse)).with_held(held))
    }

    /// jemalloc as built by `tikv-jemallocator` (symbols prefixed `_rjem_`):
    /// `stats.allocated` in use and `stats.resident` held, after an `epoch`
    /// refresh. `None` when it is not linked in, or was built without
    /// statistics: enable tikv-jemallocator's `stats` feature.
    ///
    /// ```
    /// // Not linked into this example: nothing to report.
    /// assert!(memprof::inner::jemalloc().is_none());
    /// ```
    pub fn jemalloc() -> Option<InnerHeap> {
        let (allocated, resident) = proc::jemalloc_stats()?;
        let heap = InnerHeap::new("jemalloc", Some(allocated));
        Some(match resident {
            Some(r) => heap.with_held(r),
            None => heap,
        })
    }

    /// mimalloc (the `mimalloc` and `mimalloc-pprof` crates), through
    /// `mi_process_info`: the committed bytes only, as held. mimalloc's
    /// release builds keep no count of the bytes in use, so a mimalloc
    /// heap has no exact in-use figure. `None` when it is not linked in.
    ///
    /// ```
    /// assert!(memprof::inner::mimalloc().is_none());
    /// ```
    pub fn mimalloc() -> Option<InnerHeap> {
        Some(InnerHeap::new("mimalloc", None).with_held(proc::mimalloc_committed()?))
    }
}

/// A statistics function, as stored in `Sampled` and registered here.
pub(crate) type StatsFn = fn() -> Option<InnerHeap>;

/// The registered statistics function as an address; 0 for none.
static SOURCE: AtomicUsize = AtomicUsize::new(0);

/// Registers the global allocator's statistics function (first slow path).
pub(crate) fn register(f: Option<StatsFn>) {
    if let Some(f) = f {
        SOURCE.store(f as usize, Ordering::Release);
    }
}

fn source() -> Option<StatsFn> {
    let f = SOURCE.load(Ordering::Acquire);
    if f == 0 {
        return None;
    }
    // SAFETY: a non-zero value was stored by `register` from a `StatsFn`,
    // and function pointers and `usize` have the same size.
    Some(unsafe { core::mem::transmute::<usize, StatsFn>(f) })
}

/// Exact figures about the heap, beside the sampled estimate: see
/// [`exact_totals`](crate::exact_totals).
///
/// `Display` prints them in two readable lines.
///
/// ```
/// let t = memprof::exact_totals();
/// assert!(t.inuse_estimate_error_bytes <= t.inuse_estimate_bytes.max(1) * 1000);
/// println!("{t}");
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
#[non_exhaustive]
pub struct ExactTotals {
    /// Bytes allocated since the process started (requested sizes; a
    /// `realloc` counts its new size), counted by the sampler's countdown.
    /// Exact for the calling thread. Each other thread's latest bytes
    /// arrive at its next sample slow path, so they are late by at most
    /// about one rate each (at most 4 MiB each when profiling is off, and
    /// 64 KiB each at rate 1); an exited thread's last such bytes are lost.
    pub allocated_bytes: u64,
    /// The inner allocator's own report, when it gives one (see
    /// [`InnerStats`]). It does not include the sampled blocks.
    pub inner: Option<InnerHeap>,
    /// Live sampled blocks, served by memprof's region rather than the
    /// inner allocator: their requested bytes, exactly.
    pub sampled_blocks_bytes: u64,
    /// Live sampled blocks: how many, exactly.
    pub sampled_blocks: u64,
    /// Resident set size, from the kernel.
    pub rss_bytes: Option<u64>,
    /// The highest resident set size so far, from the kernel.
    pub peak_rss_bytes: Option<u64>,
    /// Memory mapped for the profiler's own tables (stacks, records).
    pub profiler_bytes: u64,
    /// Memory committed by the region that serves sampled blocks (the
    /// blocks themselves, free slots and their metadata).
    pub region_committed_bytes: u64,
    /// The sampled estimate of the heap's in-use bytes (the profile's
    /// `inuse_space` total; exact at rate 1).
    pub inuse_estimate_bytes: u64,
    /// One standard error of `inuse_estimate_bytes`: the square root of
    /// Σ w(w − 1)·size² over live samples of weight w (Horvitz–Thompson),
    /// about sqrt(rate × in-use bytes) for objects much smaller than the
    /// rate, less for large ones, 0 at rate 1.
    pub inuse_estimate_error_bytes: u64,
    /// The sampling rate when these were taken.
    pub rate: usize,
}

impl ExactTotals {
    /// The heap's in-use bytes: the inner allocator's in-use plus the live
    /// sampled blocks. `None` when the inner allocator gives no in-use
    /// figure. Counts the inner allocator's rounding (see
    /// [`InnerHeap::inuse_bytes`]) and the sampled blocks' requested sizes.
    ///
    /// ```
    /// let t = memprof::exact_totals();
    /// if let Some(b) = t.heap_inuse_bytes() {
    ///     assert!(b >= t.sampled_blocks_bytes);
    /// }
    /// ```
    pub fn heap_inuse_bytes(&self) -> Option<u64> {
        Some(self.inner?.inuse_bytes? + self.sampled_blocks_bytes)
    }

    /// The heap's blocks in use: the inner allocator's count plus the live
    /// sampled blocks. `None` when the inner allocator does not count.
    ///
    /// ```
    /// let t = memprof::exact_totals();
    /// assert_eq!(t.heap_inuse_blocks().is_some(), t.inner.and_then(|i| i.inuse_blocks).is_some());
    /// ```
    pub fn heap_inuse_blocks(&self) -> Option<u64> {
        Some(self.inner?.inuse_blocks? + self.sampled_blocks)
    }
}

/// Takes the exact figures now. See [`crate::exact_totals`].
pub(crate) fn take() -> ExactTotals {
    crate::sampler::without_sampling(|| {
        let allocated_bytes = crate::sampler::allocated_bytes();
        let one = crate::sampler::WEIGHT_ONE as f64;
        let (mut bytes, mut blocks, mut variance) = (0u64, 0u64, 0f64);
        crate::records::for_each(|c| {
            let live = c.allocs - c.frees;
            if live == 0 {
                return;
            }
            blocks += live;
            bytes = bytes.saturating_add(live.saturating_mul(c.size));
            let w = c.alloc_weight as f64 / one / c.allocs as f64;
            let s = c.size as f64;
            variance += live as f64 * w * (w - 1.0).max(0.0) * s * s;
        });
        let (_, committed) = crate::sys::region::footprint();
        ExactTotals {
            allocated_bytes,
            inner: source().and_then(|f| f()),
            sampled_blocks_bytes: bytes,
            sampled_blocks: blocks,
            rss_bytes: proc::rss_bytes(),
            peak_rss_bytes: proc::peak_rss_bytes(),
            profiler_bytes: crate::sys::arena::mapped_bytes() as u64,
            region_committed_bytes: committed as u64,
            inuse_estimate_bytes: crate::peak::inuse_bytes(),
            inuse_estimate_error_bytes: variance.sqrt() as u64,
            rate: crate::sampler::rate(),
        }
    })
}

/// The profile comments that carry `t` (raw numbers, for tools).
pub(crate) fn comments(t: &ExactTotals) -> Vec<String> {
    let mut c = vec![
        format!("allocated bytes: {} (exact)", t.allocated_bytes),
        format!(
            "in-use bytes: {} estimated, standard error {} (sampled)",
            t.inuse_estimate_bytes, t.inuse_estimate_error_bytes
        ),
    ];
    match (t.inner, t.heap_inuse_bytes()) {
        (Some(i), Some(total)) => c.push(format!(
            "in-use bytes: {total} exact ({} {} + sampled blocks {} in {} blocks)",
            i.allocator,
            total - t.sampled_blocks_bytes,
            t.sampled_blocks_bytes,
            t.sampled_blocks
        )),
        _ => c.push(format!(
            "in-use bytes: sampled blocks {} in {} blocks (exact); the inner allocator gives no in-use figure",
            t.sampled_blocks_bytes, t.sampled_blocks
        )),
    }
    if let Some(h) = t.inner.and_then(|i| Some((i.allocator, i.held_bytes?))) {
        c.push(format!("{} holds bytes: {}", h.0, h.1));
    }
    if let Some(rss) = t.rss_bytes {
        c.push(format!("rss bytes: {rss}"));
    }
    if let Some(peak) = t.peak_rss_bytes {
        c.push(format!("peak rss bytes: {peak}"));
    }
    c.push(format!(
        "profiler bytes: {} tables + {} region committed",
        t.profiler_bytes, t.region_committed_bytes
    ));
    c
}

/// Bytes for people: `812 B`, `12.3 KiB`, `1.2 GiB`. Allocation-free.
#[derive(Clone, Copy)]
pub(crate) struct Bytes(pub(crate) u64);

impl fmt::Display for Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
        if self.0 < 1024 {
            return write!(f, "{} B", self.0);
        }
        let mut v = self.0 as f64 / 1024.0;
        let mut unit = 0;
        while v >= 1023.95 && unit + 1 < UNITS.len() {
            v /= 1024.0;
            unit += 1;
        }
        write!(f, "{v:.1} {}", UNITS[unit])
    }
}

impl fmt::Display for ExactTotals {
    /// Two lines, e.g.
    ///
    /// ```text
    /// in use: 12.3 MiB estimated ± 412.0 KiB (sampled), 12.1 MiB exact (glibc 11.9 MiB + 201.0 KiB in sampled blocks)
    /// allocated: 1.2 GiB; RSS 40.0 MiB (peak 52.1 MiB); profiler 1.1 MiB
    /// ```
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "in use: {} estimated ± {} (sampled)",
            Bytes(self.inuse_estimate_bytes),
            Bytes(self.inuse_estimate_error_bytes)
        )?;
        match (self.inner, self.heap_inuse_bytes()) {
            (Some(i), Some(total)) => write!(
                f,
                ", {} exact ({} {} + {} in sampled blocks)",
                Bytes(total),
                i.allocator,
                Bytes(total - self.sampled_blocks_bytes),
                Bytes(self.sampled_blocks_bytes)
            )?,
            (Some(i), None) => match i.held_bytes {
                Some(h) => write!(f, "; {} holds {}", i.allocator, Bytes(h))?,
                None => write!(f, "; {} gives no in-use figure", i.allocator)?,
            },
            (None, _) => write!(f, "; the inner allocator gives no in-use figure")?,
        }
        write!(f, "\nallocated: {}", Bytes(self.allocated_bytes))?;
        if let Some(rss) = self.rss_bytes {
            write!(f, "; RSS {}", Bytes(rss))?;
            if let Some(peak) = self.peak_rss_bytes {
                write!(f, " (peak {})", Bytes(peak))?;
            }
        }
        write!(
            f,
            "; profiler {}",
            Bytes(self.profiler_bytes + self.region_committed_bytes)
        )
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn sample() -> ExactTotals {
        ExactTotals {
            allocated_bytes: 1_288_490_189,
            inner: Some(InnerHeap::new("glibc", Some(12_477_399)).with_held(14 << 20)),
            sampled_blocks_bytes: 205_824,
            sampled_blocks: 12,
            rss_bytes: Some(40 << 20),
            peak_rss_bytes: Some(52 << 20),
            profiler_bytes: 1 << 20,
            region_committed_bytes: 100 << 10,
            inuse_estimate_bytes: 12_897_485,
            inuse_estimate_error_bytes: 421_888,
            rate: 524_288,
        }
    }

    #[test]
    fn bytes_read_well() {
        let s = |b| Bytes(b).to_string();
        assert_eq!(s(0), "0 B");
        assert_eq!(s(1023), "1023 B");
        assert_eq!(s(1024), "1.0 KiB");
        assert_eq!(s(1536), "1.5 KiB");
        assert_eq!(s(1024 * 1024 - 1), "1.0 MiB");
        assert_eq!(s(5 << 30), "5.0 GiB");
        assert_eq!(s(u64::MAX), "16384.0 PiB");
    }

    #[test]
    fn totals_print_in_two_lines() {
        assert_eq!(
            sample().to_string(),
            "in use: 12.3 MiB estimated ± 412.0 KiB (sampled), 12.1 MiB exact (glibc 11.9 MiB + 201.0 KiB in sampled blocks)\n\
             allocated: 1.2 GiB; RSS 40.0 MiB (peak 52.0 MiB); profiler 1.1 MiB"
        );
        let mut mi = sample();
        mi.inner = Some(InnerHeap::new("mimalloc", None).with_held(30 << 20));
        assert!(mi.to_string().starts_with(
            "in use: 12.3 MiB estimated ± 412.0 KiB (sampled); mimalloc holds 30.0 MiB\n"
        ));
        let mut none = sample();
        none.inner = None;
        none.rss_bytes = None;
        assert_eq!(
            none.to_string(),
            "in use: 12.3 MiB estimated ± 412.0 KiB (sampled); the inner allocator gives no in-use figure\n\
             allocated: 1.2 GiB; profiler 1.1 MiB"
        );
    }

    #[test]
    fn comments_carry_the_raw_numbers() {
        assert_eq!(
            comments(&sample()),
            [
                "allocated bytes: 1288490189 (exact)",
                "in-use bytes: 12897485 estimated, standard error 421888 (sampled)",
                "in-use bytes: 12683223 exact (glibc 12477399 + sampled blocks 205824 in 12 blocks)",
                "glibc holds bytes: 14680064",
                "rss bytes: 41943040",
                "peak rss bytes: 54525952",
                "profiler bytes: 1048576 tables + 102400 region committed",
            ]
        );
    }

    #[test]
    fn heap_totals_add_the_sampled_blocks() {
        let t = sample();
        assert_eq!(t.heap_inuse_bytes(), Some(12_477_399 + 205_824));
        assert_eq!(t.heap_inuse_blocks(), None);
        let mut counted = t;
        counted.inner = Some(InnerHeap::new("x", Some(10)).with_blocks(3));
        assert_eq!(counted.heap_inuse_blocks(), Some(15));
    }
}
