//! memprof: Go-style sampled heap profiles for Rust.
#![deny(missing_docs)]

mod alloc;
mod encode;
mod env;
mod guard;
mod live;
mod records;
mod sampler;
mod snapshot;
mod stack;
mod stacks;
mod symbolize;
mod sys;
mod top;

pub use alloc::Sampled;
pub use sampler::DEFAULT_RATE;
pub use snapshot::{Frame, HeapProfile, Record, Totals};
pub use top::Site;

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
    snapshot::take()
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
    let path = path.as_ref();
    guard::without_sampling(|| {
        let profile = heap_profile();
        let mut tmp = path.as_os_str().to_owned();
        tmp.push(format!(".tmp.{}", std::process::id()));
        let tmp = std::path::PathBuf::from(tmp);
        let result = std::fs::File::create(&tmp)
            .and_then(|f| profile.write_pprof(std::io::BufWriter::new(f)))
            .and_then(|()| std::fs::rename(&tmp, path));
        if result.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        result
    })
}

#[doc(hidden)]
pub mod __private {
    //! Test hooks. Not part of the API.

    /// Seeds the calling thread's sampler (for tests over many seeds).
    pub fn seed_thread(seed: u64) {
        crate::sampler::seed_thread(seed);
    }

    /// Samples dropped so far (tables or region full).
    pub fn dropped_samples() -> u64 {
        crate::records::dropped()
    }

    /// Address space reserved and bytes committed by the sampled-block region.
    pub fn region_footprint() -> (usize, usize) {
        crate::sys::region::footprint()
    }

    /// Bytes mapped for the profiler's tables.
    pub fn table_bytes() -> usize {
        crate::sys::arena::mapped_bytes()
    }
}
