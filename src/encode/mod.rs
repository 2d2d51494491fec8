//! Encoders for [`HeapProfile`]: pprof `profile.proto` ([`pprof`]) and Go's
//! legacy `debug=1` text ([`text`]).
//!
//! Both start from the same [`sites`]: records symbolized, trimmed of the
//! profiler's frames, and merged when their trimmed stacks and object sizes
//! coincide (records that differ only in hidden frames would otherwise show
//! up as duplicate samples).

use std::collections::HashMap;

use crate::ages::Ages;
use crate::labels::LabelSet;
use crate::snapshot::{round, Kind};
use crate::symbolize::{LocKey, Symbolizer};
use crate::HeapProfile;

pub(crate) mod pprof;
pub(crate) mod proto;
pub(crate) mod text;

use crate::snapshot::encode_then_write;
use std::io;

/// The writers live with the encoders (a snapshot knows nothing of formats).
impl HeapProfile {
    /// Writes the profile as a gzip-compressed pprof `profile.proto`, shaped
    /// like Go's heap profile (`go tool pprof` opens it as it is).
    ///
    /// Symbolizes the stacks (functions, inlined frames, files and lines).
    /// Allocations made while writing are not sampled.
    ///
    /// ```no_run
    /// let file = std::fs::File::create("heap.pb.gz")?;
    /// memprof::heap_profile().write_pprof(file)?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn write_pprof<W: io::Write>(&self, w: W) -> io::Result<()> {
        encode_then_write(w, |buf| pprof::write(self, None, true, buf))
    }

    /// Like [`write_pprof`](Self::write_pprof), but the profile opens on
    /// `alloc_space` by default, like Go's `allocs` profile.
    pub fn write_pprof_allocs<W: io::Write>(&self, w: W) -> io::Result<()> {
        encode_then_write(w, |buf| pprof::write(self, Some("alloc_space"), true, buf))
    }

    /// Writes the profile like [`write_pprof`](Self::write_pprof), but
    /// unsymbolized: no debug info is read, so the write costs no memory or
    /// time for symbols. For backends that symbolize on their side (Parca
    /// with its debuginfo upload, `go tool pprof` with the binary at hand).
    ///
    /// Each location has its address (the call instruction's, as in the
    /// symbolized profile) and its mapping; each mapping has the file name,
    /// the address range, the file offset and the GNU build ID from
    /// `/proc/self/maps` and the loaded objects' ELF notes, and
    /// `has_functions = false`. The profiler's own frames (memprof,
    /// `__rust_alloc`, the allocation plumbing of `alloc::alloc`) are cut
    /// from the leaf end of each stack by their symbol-table names, as in
    /// the symbolized profile (no inlining is known without debug info, so
    /// a profiler function inlined into a caller's frame is not cut). A
    /// comment says `symbolization: off`.
    ///
    /// `MEMPROF_SYMBOLIZE=0` makes the `MEMPROFILE` write unsymbolized, and
    /// `?symbolize=0` the `/debug/pprof` endpoints'.
    ///
    /// ```
    /// let mut out = Vec::new();
    /// memprof::heap_profile().write_pprof_unsymbolized(&mut out)?;
    /// assert_eq!(out[..2], [0x1f, 0x8b]); // gzip-compressed profile.proto
    /// # Ok::<(), std::io::Error>(())
    /// ```
    /// ```sh
    /// go tool pprof -top ./myapp heap.pb.gz     # named from the binary's debug info
    /// ```
    pub fn write_pprof_unsymbolized<W: io::Write>(&self, w: W) -> io::Result<()> {
        encode_then_write(w, |buf| pprof::write(self, None, false, buf))
    }

    /// [`write_pprof_unsymbolized`](Self::write_pprof_unsymbolized), opening
    /// on `alloc_space` like [`write_pprof_allocs`](Self::write_pprof_allocs).
    pub fn write_pprof_allocs_unsymbolized<W: io::Write>(&self, w: W) -> io::Result<()> {
        encode_then_write(w, |buf| pprof::write(self, Some("alloc_space"), false, buf))
    }

    /// Writes Go's legacy text heap profile (`debug=1`), which
    /// `go tool pprof` also reads.
    ///
    /// ```
    /// let mut out = Vec::new();
    /// memprof::heap_profile().write_text(&mut out)?;
    /// assert!(out.starts_with(b"heap profile: "));
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn write_text<W: io::Write>(&self, w: W) -> io::Result<()> {
        encode_then_write(w, |buf| text::write(self, buf))
    }
}

/// One sample to write: a trimmed stack, an object size, a label set and
/// the summed unbiased estimates of every record merged into it.
#[derive(Clone, Debug)]
pub(crate) struct Site {
    /// Leaf first.
    pub(crate) locs: Vec<LocKey>,
    pub(crate) truncated: bool,
    pub(crate) object_size: u64,
    pub(crate) labels: LabelSet,
    pub(crate) alloc_objects_est: f64,
    pub(crate) inuse_objects_est: f64,
    /// The live samples by age, when known.
    pub(crate) ages: Option<Ages>,
}

impl Site {
    /// `[alloc_objects, alloc_bytes, inuse_objects, inuse_bytes]`, rounded
    /// like [`Record`](crate::Record)'s accessors.
    pub(crate) fn values(&self) -> [u64; 4] {
        let size = self.object_size as f64;
        [
            round(self.alloc_objects_est),
            round(self.alloc_objects_est * size),
            round(self.inuse_objects_est),
            round(self.inuse_objects_est * size),
        ]
    }

    /// The site as samples to write, split by the age of its live objects:
    /// one per age bucket with live objects (`Some(bucket's smallest age
    /// in seconds)`; its objects are both allocated and in use, but for a
    /// delta, whose alloc columns are the window's growth, what is left of
    /// that growth), and one
    /// without an age for the rest (the freed objects, and all of them
    /// when ages are not known). Values as in [`values`](Self::values);
    /// their sums are the site's.
    pub(crate) fn by_age(&self) -> Vec<(Option<u64>, [u64; 4])> {
        let size = self.object_size as f64;
        let values = |alloc: f64, inuse: f64| {
            [
                round(alloc),
                round(alloc * size),
                round(inuse),
                round(inuse * size),
            ]
        };
        let Some(ages) = &self.ages else {
            return vec![(None, self.values())];
        };
        let mut out = Vec::new();
        let (mut alloc, mut inuse) = (self.alloc_objects_est, self.inuse_objects_est);
        for (&secs, &n) in crate::ages::BUCKETS.iter().zip(&ages.buckets) {
            // A delta's alloc column (growth in the window) can be below
            // its in-use: the objects live at the end but allocated before.
            let a = n.min(alloc.max(0.0));
            let v = values(a, n);
            if v != [0; 4] {
                out.push((Some(secs), v));
                alloc -= a;
                inuse -= n;
            }
        }
        let rest = values(alloc, inuse);
        if rest != [0; 4] || out.is_empty() {
            out.push((None, rest));
        }
        out
    }
}

/// The profile's records as sites, in record order, merged by
/// (trimmed stack, truncation, object size, and the labels when
/// `by_labels`). Records whose four values are all zero are skipped; fully
/// freed sites (in-use 0) are kept, as in Go.
pub(crate) fn sites(profile: &HeapProfile, sym: &mut Symbolizer, by_labels: bool) -> Vec<Site> {
    use std::hash::BuildHasher;
    let mut out: Vec<Site> = Vec::new();
    // Sites by the hash of their key, `(trimmed stack, truncation, object
    // size, labels)`: the first with that hash, then the next of each in
    // `chain`. The keys are not copied: at 10,000 records a map keyed by
    // them doubled the sites' memory.
    let hasher = std::collections::hash_map::RandomState::new();
    let mut first: HashMap<u64, usize> = HashMap::new();
    let mut chain: Vec<usize> = Vec::new();
    let no_labels = LabelSet::default();
    // Every address first, so each module's debug info is read once.
    sym.prefetch(profile.records.iter().flat_map(|r| r.stack.iter().copied()));
    for r in &profile.records {
        if r.alloc_objects() == 0
            && r.alloc_bytes() == 0
            && r.inuse_objects() == 0
            && r.inuse_bytes() == 0
        {
            continue;
        }
        let mut locs = sym.trim(&r.stack);
        let labels = if by_labels { &r.labels } else { &no_labels };
        let hash = hasher.hash_one((&locs, r.truncated, r.object_size, labels));
        let mut at = first.get(&hash).copied();
        while let Some(i) = at {
            let site = &out[i];
            if site.locs == locs
                && site.truncated == r.truncated
                && site.object_size == r.object_size
                && site.labels == *labels
            {
                break;
            }
            at = chain.get(i).copied().filter(|&n| n != usize::MAX);
        }
        if let Some(i) = at {
            let site = &mut out[i];
            site.alloc_objects_est += r.alloc_objects_est;
            site.inuse_objects_est += r.inuse_objects_est;
            match (&mut site.ages, &r.ages) {
                (Some(a), Some(b)) => a.merge(b),
                (a @ None, Some(b)) => *a = Some((**b).clone()),
                _ => {}
            }
            continue;
        }
        locs.shrink_to_fit();
        chain.push(first.insert(hash, out.len()).unwrap_or(usize::MAX));
        out.push(Site {
            locs,
            truncated: r.truncated,
            object_size: r.object_size,
            labels: labels.clone(),
            alloc_objects_est: r.alloc_objects_est,
            inuse_objects_est: r.inuse_objects_est,
            ages: r.ages.as_deref().cloned(),
        });
    }
    out
}

/// A comment line saying what a profile other than the live heap is.
pub(crate) fn kind_comment(profile: &HeapProfile) -> Option<String> {
    match profile.kind {
        Kind::Heap => None,
        Kind::Peak { inuse_bytes } => Some(format!(
            "peak heap: the live set when in-use was highest, {inuse_bytes} bytes (estimate)"
        )),
        Kind::OlderThan { age_ns } => Some(format!(
            "live objects allocated at least {:.3} s before the snapshot",
            age_ns as f64 / 1e9
        )),
    }
}

/// Name of the function of the extra, root-most frame that marks a
/// truncated stack (the unwinder stopped at its depth limit). pprof shows
/// it as the root of such stacks; the text format says so in a comment.
pub(crate) const TRUNCATED: &str = "memprof::truncated";

#[cfg(test)]
mod tests;
