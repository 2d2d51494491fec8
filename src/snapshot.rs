//! `HeapProfile`: a consistent copy of every record, with unbiased estimates.
//!
//! A snapshot is taken by [`heap_profile`](crate::heap_profile). It copies the
//! record table (never holding a lock that the allocation path needs) and
//! turns each record's sampled weights into estimates of the true numbers:
//! every sample carries the weight `1 / (1 - e^(-size/rate))` of the rate in
//! force when *it* was taken, so a rate change mid-run is weighted correctly.
//! At rate 1 every weight is exactly 1 and the numbers are exact.
//!
//! Symbolization is not done here: the snapshot holds raw return addresses.
//! [`HeapProfile::write_pprof`] and [`HeapProfile::write_text`] resolve them,
//! and [`Record::frames`] does so for one record.

use crate::ages::{self, Ages};
use crate::labels::LabelSet;
use std::io;
use std::time::Duration;

/// A heap profile: one [`Record`] per (call stack, object size), as in Go.
///
/// Values are unbiased estimates of the true counts (exact at rate 1). A
/// profile is an owned snapshot: it does not change when the program
/// allocates after it was taken.
///
/// ```
/// let profile = memprof::heap_profile();
/// for record in profile.records() {
///     println!("{} bytes in use in {} objects of {} bytes",
///         record.inuse_bytes(), record.inuse_objects(), record.object_size());
/// }
/// ```
#[derive(Clone, Debug)]
pub struct HeapProfile {
    pub(crate) records: Vec<Record>,
    /// The sampling rate in force when the snapshot was taken (pprof `period`).
    pub(crate) rate: usize,
    /// Wall-clock time of the snapshot, nanoseconds since the Unix epoch.
    pub(crate) time_nanos: i64,
    /// For a delta ([`HeapProfile::delta_since`]), the length of its window
    /// (pprof `duration_nanos`); 0 for a snapshot.
    pub(crate) duration_nanos: i64,
    /// Samples lost because a profiler table or the sampled-block region was full.
    pub(crate) dropped_samples: u64,
    /// Which unwinder captured the stacks ("libgcc", "fp").
    pub(crate) unwinder: &'static str,
    /// Label sets past the limit, folded into one (`labels.rs`).
    pub(crate) label_overflow: u64,
    /// The exact figures beside the estimate, taken with a heap snapshot
    /// (`None` for the peak and for `older_than`, which are not the heap
    /// at `time_nanos`).
    pub(crate) exact: Option<crate::ExactTotals>,
    /// What the profile is: the live heap, or the peak (with its in-use
    /// estimate), or the heap filtered by age.
    pub(crate) kind: Kind,
}

/// What a [`HeapProfile`] holds.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Kind {
    /// The heap at `time_nanos`, with the ages of live samples.
    Heap,
    /// The copy taken at the highest in-use so far (`peak.rs`); the
    /// estimate of in-use then, in bytes. No ages.
    Peak { inuse_bytes: u64 },
    /// Only the live objects at least this old (`older_than`).
    OlderThan { age_ns: u64 },
}

/// The counters of one allocation site: a call stack and an object size.
///
/// `alloc_*` are cumulative since the process started (Go's `alloc_space`);
/// `inuse_*` are the blocks still live when the snapshot was taken.
#[derive(Clone, Debug, PartialEq)]
pub struct Record {
    /// Return addresses, leaf (innermost) first, as captured.
    pub(crate) stack: Vec<usize>,
    /// The labels the samples were taken under, sorted by key.
    pub(crate) labels: LabelSet,
    /// The live samples by age at the snapshot (`None`: not known, as in
    /// a peak profile or a hand-made one).
    pub(crate) ages: Option<Box<Ages>>,
    /// The unwinder stopped at the depth limit before reaching the root.
    pub(crate) truncated: bool,
    /// Requested size (`Layout::size()`) of each object in this record.
    pub(crate) object_size: u64,
    /// Samples taken at this site, and samples of those that were freed.
    pub(crate) sampled_allocs: u64,
    pub(crate) sampled_frees: u64,
    /// Unbiased estimates of objects allocated and still in use.
    pub(crate) alloc_objects_est: f64,
    pub(crate) inuse_objects_est: f64,
}

/// One frame of a symbolized stack.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frame {
    /// Demangled function name without the hash suffix, e.g. `myapp::load`.
    pub function: String,
    /// Source file, when debug info is present.
    pub file: Option<String>,
    /// Line number in `file`, when debug info is present.
    pub line: Option<u32>,
    /// The instruction address this frame was resolved from.
    pub address: usize,
    /// This frame was inlined into the next frame of the same address.
    pub inlined: bool,
}

impl HeapProfile {
    /// The records of this profile, one per (stack, object size).
    pub fn records(&self) -> impl ExactSizeIterator<Item = &Record> + '_ {
        self.records.iter()
    }

    /// Every record with its symbolized stack ([`Record::frames`]), read
    /// with one pass over the debug info: what to call when naming more
    /// than a few records, since each `Record::frames` call loads the debug
    /// info anew. Allocations made meanwhile are not sampled.
    ///
    /// ```
    /// let profile = memprof::heap_profile();
    /// for (record, frames) in profile.records_with_frames() {
    ///     let leaf = frames.first().map_or("?", |f| f.function.as_str());
    ///     println!("{:>10} B  {leaf}", record.inuse_bytes());
    /// }
    /// ```
    #[must_use]
    pub fn records_with_frames(&self) -> Vec<(&Record, Vec<Frame>)> {
        let frames = frames_of_each(self.records.iter().map(|r| r.stack()));
        self.records.iter().zip(frames).collect()
    }

    /// The sampling rate (mean bytes between samples) when this snapshot was
    /// taken; written as the pprof `period`. 0 means profiling was off.
    pub fn rate(&self) -> usize {
        self.rate
    }

    /// Samples that were not recorded because a table of the profiler was
    /// full. Also written into the profile's comments.
    pub fn dropped_samples(&self) -> u64 {
        self.dropped_samples
    }

    /// When the snapshot was taken, in nanoseconds since the Unix epoch.
    pub fn time_nanos(&self) -> i64 {
        self.time_nanos
    }

    /// Name of the stack unwinder that captured the stacks.
    pub fn unwinder(&self) -> &'static str {
        self.unwinder
    }

    /// For a delta profile ([`delta_since`](Self::delta_since)), the length
    /// of its window in nanoseconds, written as the pprof `duration_nanos`;
    /// 0 for a snapshot.
    pub fn duration_nanos(&self) -> i64 {
        self.duration_nanos
    }

    /// What happened between `earlier` and this snapshot, as Go's
    /// `/debug/pprof/heap?seconds=N` shows it, with its in-use fix: the
    /// `alloc_*` values of each record are the growth since `earlier` (what
    /// was allocated in the window), the `inuse_*` values are this
    /// snapshot's (what is live at the end of the window). The result's
    /// [`time_nanos`](Self::time_nanos) is this snapshot's and its
    /// [`duration_nanos`](Self::duration_nanos) the time between the two.
    ///
    /// Go subtracts the in-use values too, which gives "in use now minus in
    /// use then", often negative and hard to read (golang/go#67942); here
    /// in-use is the plain state at the end. Records are matched by call
    /// stack and object size; [`Record::sampled_allocs`] and
    /// [`Record::sampled_frees`] of the result count the samples taken and
    /// freed in the window, and so does
    /// [`dropped_samples`](Self::dropped_samples). `earlier` should be an
    /// earlier snapshot of the same process; counters never decrease, so
    /// any other order gives zero growth, never negative values.
    ///
    /// ```
    /// let before = memprof::heap_profile();
    /// let kept: Vec<Vec<u8>> = (0..100).map(|_| vec![0u8; 4096]).collect();
    /// let delta = memprof::heap_profile().delta_since(&before);
    /// assert!(delta.duration_nanos() >= 0);
    /// assert!(delta.totals().alloc_bytes <= memprof::heap_profile().totals().alloc_bytes);
    /// # drop(kept);
    /// ```
    #[must_use = "returns a new profile; `self` is unchanged"]
    pub fn delta_since(&self, earlier: &HeapProfile) -> HeapProfile {
        crate::sampler::without_sampling(|| {
            type Key<'a> = (&'a [usize], bool, u64, &'a [(String, String)]);
            let before: std::collections::HashMap<Key, &Record> = earlier
                .records
                .iter()
                .map(|r| ((&r.stack[..], r.truncated, r.object_size, &r.labels[..]), r))
                .collect();
            let records = self
                .records
                .iter()
                .map(|r| {
                    let mut d = r.clone();
                    let key = (&r.stack[..], r.truncated, r.object_size, &r.labels[..]);
                    if let Some(e) = before.get(&key) {
                        d.sampled_allocs = r.sampled_allocs.saturating_sub(e.sampled_allocs);
                        d.sampled_frees = r.sampled_frees.saturating_sub(e.sampled_frees);
                        d.alloc_objects_est = (r.alloc_objects_est - e.alloc_objects_est).max(0.0);
                    }
                    d
                })
                .collect();
            HeapProfile {
                records,
                rate: self.rate,
                time_nanos: self.time_nanos,
                duration_nanos: (self.time_nanos - earlier.time_nanos).max(0),
                dropped_samples: self.dropped_samples.saturating_sub(earlier.dropped_samples),
                unwinder: self.unwinder,
                label_overflow: self.label_overflow,
                exact: self.exact,
                kind: self.kind,
            }
        })
    }

    /// In-use per value of the label `key`: one entry per value, with the
    /// summed estimates of the records whose samples carried it, most
    /// in-use bytes first. Records without the label are left out (their
    /// share is [`totals`](Self::totals) minus the sum).
    ///
    /// ```
    /// for (tenant, t) in memprof::heap_profile().by_label("tenant") {
    ///     println!("{tenant}: {} B in use, {} B allocated", t.inuse_bytes, t.alloc_bytes);
    /// }
    /// ```
    pub fn by_label(&self, key: &str) -> Vec<(String, Totals)> {
        crate::sampler::without_sampling(|| {
            let mut by: std::collections::HashMap<&str, Totals> = Default::default();
            for r in &self.records {
                if let Some(v) = r.label(key) {
                    by.entry(v).or_default().add(r);
                }
            }
            let mut out: Vec<(String, Totals)> =
                by.into_iter().map(|(v, t)| (v.to_string(), t)).collect();
            out.sort_by(|a, b| {
                (b.1.inuse_bytes, b.1.alloc_bytes, &a.0).cmp(&(
                    a.1.inuse_bytes,
                    a.1.alloc_bytes,
                    &b.0,
                ))
            });
            out
        })
    }

    /// The live objects that were allocated at least `age` before the
    /// snapshot: the leak suspects of a long-running process. Each record
    /// keeps only those objects; its `alloc_*` values equal its `inuse_*`
    /// values (the objects counted are live), and records with none are
    /// dropped.
    ///
    /// Ages are kept in bins about 9% wide (eight per doubling, from 1 ms),
    /// and a bin counts when its smallest age is at least `age`; the clock
    /// is the kernel's coarse monotonic clock (1-4 ms). A peak profile has
    /// no ages, and gives an empty profile here.
    ///
    /// ```
    /// let profile = memprof::heap_profile();
    /// let old = profile.older_than(std::time::Duration::from_secs(60));
    /// assert!(old.totals().inuse_bytes <= profile.totals().inuse_bytes);
    /// ```
    #[must_use = "returns a new profile; `self` is unchanged"]
    pub fn older_than(&self, age: Duration) -> HeapProfile {
        crate::sampler::without_sampling(|| {
            let min_ns = u64::try_from(age.as_nanos()).unwrap_or(u64::MAX);
            let records = self
                .records
                .iter()
                .filter_map(|r| {
                    let (ages, objects, samples) = r.ages.as_ref()?.older_than(min_ns);
                    (samples > 0).then(|| Record {
                        stack: r.stack.clone(),
                        labels: r.labels.clone(),
                        ages: Some(Box::new(ages)),
                        truncated: r.truncated,
                        object_size: r.object_size,
                        sampled_allocs: samples,
                        sampled_frees: 0,
                        alloc_objects_est: objects,
                        inuse_objects_est: objects,
                    })
                })
                .collect();
            HeapProfile {
                records,
                kind: Kind::OlderThan { age_ns: min_ns },
                exact: None,
                ..self.clone_header()
            }
        })
    }

    /// The exact figures ([`crate::exact_totals`]) taken with this heap
    /// snapshot, also written into the profile's comments. `None` for a
    /// peak profile, an [`older_than`](Self::older_than) view, and a
    /// profile not taken from this process's heap.
    ///
    /// ```
    /// let profile = memprof::heap_profile();
    /// let exact = profile.exact_totals().unwrap();
    /// assert!(exact.allocated_bytes >= exact.sampled_blocks_bytes);
    /// assert!(memprof::peak_profile().exact_totals().is_none());
    /// ```
    pub fn exact_totals(&self) -> Option<crate::ExactTotals> {
        self.exact
    }

    /// For a profile from [`peak_profile`](crate::peak_profile): the
    /// estimated bytes in use at the peak (exact at rate 1). `None` for
    /// other profiles.
    pub fn peak_inuse_bytes(&self) -> Option<u64> {
        match self.kind {
            Kind::Peak { inuse_bytes } => Some(inuse_bytes),
            _ => None,
        }
    }

    /// Label sets that found the table full (4096 distinct sets) and were
    /// counted under the one set `memprof.labels=overflow` instead. Also
    /// written into the profile's comments.
    pub fn label_overflow(&self) -> u64 {
        self.label_overflow
    }

    /// Everything but the records.
    fn clone_header(&self) -> HeapProfile {
        HeapProfile {
            records: Vec::new(),
            rate: self.rate,
            time_nanos: self.time_nanos,
            duration_nanos: self.duration_nanos,
            dropped_samples: self.dropped_samples,
            unwinder: self.unwinder,
            label_overflow: self.label_overflow,
            exact: self.exact,
            kind: self.kind,
        }
    }

    /// Estimated totals over all records.
    pub fn totals(&self) -> Totals {
        let mut t = Totals::default();
        for r in &self.records {
            t.add(r);
        }
        t
    }
}

impl Totals {
    fn add(&mut self, r: &Record) {
        self.alloc_objects += r.alloc_objects();
        self.alloc_bytes += r.alloc_bytes();
        self.inuse_objects += r.inuse_objects();
        self.inuse_bytes += r.inuse_bytes();
    }
}

/// Estimated totals of a [`HeapProfile`], see [`HeapProfile::totals`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Totals {
    /// Objects allocated since the start.
    pub alloc_objects: u64,
    /// Bytes allocated since the start.
    pub alloc_bytes: u64,
    /// Objects live at the snapshot.
    pub inuse_objects: u64,
    /// Bytes live at the snapshot.
    pub inuse_bytes: u64,
}

impl Record {
    /// Return addresses of the allocating call stack, innermost first, as
    /// captured (including the profiler's own frames, which the encoders
    /// and [`frames`](Self::frames) remove).
    pub fn stack(&self) -> &[usize] {
        &self.stack
    }

    /// The stack was cut at the depth limit (128 user frames).
    pub fn is_truncated(&self) -> bool {
        self.truncated
    }

    /// Requested size in bytes of each object of this record.
    pub fn object_size(&self) -> u64 {
        self.object_size
    }

    /// Estimated objects allocated at this site since the start.
    pub fn alloc_objects(&self) -> u64 {
        round(self.alloc_objects_est)
    }

    /// Estimated bytes allocated at this site since the start.
    pub fn alloc_bytes(&self) -> u64 {
        round(self.alloc_objects_est * self.object_size as f64)
    }

    /// Estimated objects of this site live at the snapshot.
    pub fn inuse_objects(&self) -> u64 {
        round(self.inuse_objects_est)
    }

    /// Estimated bytes of this site live at the snapshot.
    pub fn inuse_bytes(&self) -> u64 {
        round(self.inuse_objects_est * self.object_size as f64)
    }

    /// The labels this record's samples were taken under
    /// ([`with_labels`](crate::with_labels)), sorted by key.
    pub fn labels(&self) -> &[(String, String)] {
        &self.labels
    }

    /// The value of label `key` on this record's samples.
    pub fn label(&self, key: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// How long before the snapshot the oldest live sampled object of this
    /// record was allocated (to the coarse clock's 1-4 ms). `None` when
    /// nothing is live or ages are not known (a peak profile).
    pub fn oldest_age(&self) -> Option<Duration> {
        let a = self.ages.as_ref()?;
        (!a.bins.is_empty()).then(|| Duration::from_nanos(a.oldest_ns))
    }

    /// Raw number of samples taken at this site (not scaled).
    pub fn sampled_allocs(&self) -> u64 {
        self.sampled_allocs
    }

    /// Raw number of those samples that were freed (not scaled).
    pub fn sampled_frees(&self) -> u64 {
        self.sampled_frees
    }

    /// Symbolizes the stack: one [`Frame`] per function, inlined frames
    /// included, innermost first, without the profiler's own frames.
    ///
    /// Allocations made while symbolizing are not sampled. Each call reads
    /// the debug info it needs and releases it (some milliseconds): to name
    /// many records, use [`HeapProfile::records_with_frames`] or
    /// [`HeapProfile::top_sites`].
    pub fn frames(&self) -> Vec<Frame> {
        frames_of(&self.stack)
    }
}

/// Rounds a non-negative estimate to the nearest integer.
pub(crate) fn round(x: f64) -> u64 {
    if x <= 0.0 {
        0
    } else {
        (x + 0.5) as u64
    }
}

/// Serialises profile building and symbolization. Not waited for around
/// `fork` (a cold symbolization holds it for seconds): see `crate::fork`
/// and the handlers below.
static WRITER: crate::sys::lock::SpinLock = crate::sys::lock::SpinLock::new();

thread_local! {
    /// Set by `writer_prepare_fork` on the forking thread: another thread
    /// held the writer at the fork, so the child must not trust the
    /// symbolizer's state. Thread-local: two threads may fork at once.
    static WRITER_BUSY_AT_FORK: core::cell::Cell<bool> = const { core::cell::Cell::new(false) };
}

/// Before `fork`: takes the writer lock only if it is free, never waits.
pub(crate) fn writer_prepare_fork() {
    let busy = !WRITER.try_raw_lock();
    let _ = WRITER_BUSY_AT_FORK.try_with(|b| b.set(busy));
}

/// After `fork`, in the parent: releases the lock if `prepare` took it.
pub(crate) fn writer_after_fork_parent() {
    if !WRITER_BUSY_AT_FORK.try_with(|b| b.get()).unwrap_or(true) {
        WRITER.raw_unlock();
    }
}

/// After `fork`, in the child: the lock is released either way (if
/// another thread held it, that thread does not exist here). If a write
/// was in progress, the symbolizer (the `backtrace` crate's lock and
/// caches, the loader walk) may be mid-update: symbolization is off in
/// this child, and its profiles carry addresses and mappings only.
pub(crate) fn writer_after_fork_child() {
    if WRITER_BUSY_AT_FORK.try_with(|b| b.get()).unwrap_or(true) {
        crate::symbolize::disable_after_fork();
    }
    WRITER.raw_unlock();
}

/// Panics with the writer lock held and sampling off: a stand-in for a bug
/// inside memprof (`__private::panic_inside_profiler`).
pub(crate) fn panic_under_writer_lock() {
    crate::sampler::without_sampling(|| {
        let _g = WRITER.lock();
        panic!("memprof: deliberate panic with the writer lock held (a test hook)");
    })
}

/// Symbolizes one stack under the writer lock, sampling off.
pub(crate) fn frames_of(stack: &[usize]) -> Vec<Frame> {
    let frames = crate::sampler::without_sampling(|| {
        let _g = WRITER.lock();
        crate::symbolize::frames_of(stack)
    });
    crate::symbolize::give_back_memory();
    frames
}

/// Symbolizes many stacks under one writer lock with one symbolizer, so
/// addresses shared by the stacks are resolved once (`top_sites` over tens
/// of thousands of records took seconds stack by stack).
pub(crate) fn frames_of_each<'a>(stacks: impl Iterator<Item = &'a [usize]>) -> Vec<Vec<Frame>> {
    let frames = crate::sampler::without_sampling(|| {
        let _g = WRITER.lock();
        let mut sym = crate::symbolize::Symbolizer::new();
        let stacks: Vec<&[usize]> = stacks.collect();
        sym.prefetch(stacks.iter().flat_map(|s| s.iter().copied()));
        stacks
            .into_iter()
            .map(|s| crate::symbolize::frames_with(&mut sym, s))
            .collect()
    });
    crate::symbolize::give_back_memory();
    frames
}

/// Runs `f` under the writer lock with sampling off: symbolization outside
/// a profile write (the HTTP `symbol` endpoint).
#[cfg(feature = "http")]
pub(crate) fn with_writer<R>(f: impl FnOnce() -> R) -> R {
    let r = crate::sampler::without_sampling(|| {
        let _g = WRITER.lock();
        f()
    });
    crate::symbolize::give_back_memory();
    r
}

/// Encodes under the writer lock into memory, then writes `w` without the
/// lock, so a slow reader never holds up `fork` or other writers.
pub(crate) fn encode_then_write<W: io::Write>(
    mut w: W,
    encode: impl FnOnce(&mut Vec<u8>) -> io::Result<()>,
) -> io::Result<()> {
    let buf = crate::sampler::without_sampling(|| {
        let _g = WRITER.lock();
        let mut buf = Vec::new();
        encode(&mut buf).map(|()| buf)
    })?;
    let written = crate::sampler::without_sampling(|| {
        w.write_all(&buf)?;
        w.flush()
    });
    drop(buf);
    // The symbolizer's memory was freed under the lock; give it back now.
    crate::symbolize::give_back_memory();
    written
}

/// Takes a snapshot of every record. See [`crate::heap_profile`].
pub(crate) fn take() -> HeapProfile {
    crate::sampler::without_sampling(|| {
        let mut counts = Vec::with_capacity(crate::records::count());
        crate::records::for_each(|c| counts.push(c));
        let mut ages = ages::collect(counts.len());
        let records = build(counts, |id| ages.remove(&id).map(Box::new));
        HeapProfile {
            exact: Some(crate::totals::take()),
            ..header(records, Kind::Heap, now_nanos())
        }
    })
}

/// The peak profile. See [`crate::peak_profile`].
pub(crate) fn take_peak() -> HeapProfile {
    crate::sampler::without_sampling(|| {
        // Reserved before the capture lock: frees at a new high wait for it.
        let mut counts = Vec::with_capacity(crate::records::count() + 1024);
        let (inuse_bytes, at) = crate::peak::read(|inuse, at| {
            crate::records::for_each_peak(|c| counts.push(c));
            (inuse, at)
        });
        let records = build(counts, |_| None);
        header(records, Kind::Peak { inuse_bytes }, at)
    })
}

fn now_nanos() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

fn header(records: Vec<Record>, kind: Kind, time_nanos: i64) -> HeapProfile {
    HeapProfile {
        records,
        rate: crate::sampler::rate(),
        time_nanos,
        duration_nanos: 0,
        dropped_samples: crate::records::dropped(),
        unwinder: crate::stack::unwinder_name(),
        label_overflow: crate::labels::overflowed(),
        exact: None,
        kind,
    }
}

/// Records from counters: stacks copied, label sets looked up once each,
/// weights turned into estimates.
fn build(
    counts: Vec<crate::records::Counts>,
    mut ages_of: impl FnMut(crate::records::RecordId) -> Option<Box<Ages>>,
) -> Vec<Record> {
    let mut sets: std::collections::HashMap<u32, LabelSet> = Default::default();
    let one = crate::sampler::WEIGHT_ONE as f64;
    counts
        .into_iter()
        .filter(|c| c.allocs != 0)
        .map(|c| {
            let (stack, truncated) = crate::stacks::get(c.stack);
            Record {
                stack,
                labels: sets
                    .entry(c.labels)
                    .or_insert_with(|| crate::labels::get(c.labels))
                    .clone(),
                ages: ages_of(c.id),
                truncated,
                object_size: c.size,
                sampled_allocs: c.allocs,
                sampled_frees: c.frees,
                alloc_objects_est: c.alloc_weight as f64 / one,
                inuse_objects_est: (c.alloc_weight - c.free_weight) as f64 / one,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(stack: &[usize], size: u64, alloc: f64, inuse: f64, samples: (u64, u64)) -> Record {
        Record {
            stack: stack.to_vec(),
            labels: Default::default(),
            ages: None,
            truncated: false,
            object_size: size,
            sampled_allocs: samples.0,
            sampled_frees: samples.1,
            alloc_objects_est: alloc,
            inuse_objects_est: inuse,
        }
    }

    fn profile(time_nanos: i64, dropped: u64, records: Vec<Record>) -> HeapProfile {
        HeapProfile {
            records,
            rate: 4096,
            time_nanos,
            duration_nanos: 0,
            dropped_samples: dropped,
            unwinder: "fp",
            label_overflow: 0,
            exact: None,
            kind: Kind::Heap,
        }
    }

    #[test]
    fn delta_is_alloc_growth_and_inuse_at_the_end() {
        let t0 = 1_700_000_000_000_000_000;
        let earlier = profile(
            t0,
            3,
            vec![
                record(&[1, 2], 64, 10.0, 8.0, (10, 2)),
                record(&[1, 2], 128, 5.0, 5.0, (5, 0)),
                record(&[3], 64, 7.0, 0.0, (7, 7)),
            ],
        );
        let mut truncated = record(&[1, 2], 64, 4.0, 4.0, (4, 0));
        truncated.truncated = true;
        let later = profile(
            t0 + 2_000_000_000,
            5,
            vec![
                // Grew by 6 objects; 3 live now.
                record(&[1, 2], 64, 16.0, 3.0, (16, 13)),
                // Nothing allocated in the window; all still live.
                record(&[1, 2], 128, 5.0, 5.0, (5, 0)),
                // Unchanged and fully freed: all zero in the delta.
                record(&[3], 64, 7.0, 0.0, (7, 7)),
                // New in the window; same stack and size as the first record
                // but truncated, so a different record.
                truncated,
            ],
        );
        let d = later.delta_since(&earlier);
        assert_eq!(d.time_nanos(), later.time_nanos());
        assert_eq!(d.duration_nanos(), 2_000_000_000);
        assert_eq!(d.dropped_samples(), 2);
        assert_eq!(d.rate(), 4096);
        let rows: Vec<_> = d
            .records()
            .map(|r| {
                (
                    r.alloc_objects(),
                    r.alloc_bytes(),
                    r.inuse_objects(),
                    r.inuse_bytes(),
                    r.sampled_allocs(),
                    r.sampled_frees(),
                )
            })
            .collect();
        assert_eq!(
            rows,
            [
                (6, 6 * 64, 3, 3 * 64, 6, 11),
                (0, 0, 5, 5 * 128, 0, 0),
                (0, 0, 0, 0, 0, 0),
                (4, 4 * 64, 4, 4 * 64, 4, 0),
            ]
        );
        assert_eq!(
            d.totals(),
            Totals {
                alloc_objects: 10,
                alloc_bytes: 10 * 64,
                inuse_objects: 12,
                inuse_bytes: 7 * 64 + 5 * 128,
            }
        );
    }

    #[test]
    fn delta_against_a_later_profile_never_goes_negative() {
        let a = profile(10, 0, vec![record(&[1], 16, 2.0, 1.0, (2, 1))]);
        let b = profile(20, 1, vec![record(&[1], 16, 9.0, 4.0, (9, 5))]);
        let d = a.delta_since(&b);
        assert_eq!(d.duration_nanos(), 0);
        assert_eq!(d.dropped_samples(), 0);
        let r = d.records().next().unwrap();
        assert_eq!((r.alloc_objects(), r.inuse_objects()), (0, 1));
        assert_eq!((r.sampled_allocs(), r.sampled_frees()), (0, 0));
    }
}
