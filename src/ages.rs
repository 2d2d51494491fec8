//! Ages of live sampled blocks: how long ago each was allocated.
//!
//! Every sampled block's metadata holds the coarse monotonic time it was
//! sampled at (`BlockMeta::born`, `CLOCK_MONOTONIC_COARSE`, a few ns from
//! the vDSO, 1-4 ms resolution). Records cannot keep ages as counters: an
//! age changes with the time it is read at. So a snapshot walks the live
//! sampled blocks (`region::for_each_live`: the metadata arrays, never
//! user memory) and sums each record's live samples by age:
//!
//! - in *fine bins*, eight per doubling of the age in milliseconds (each
//!   about 9% wide), for [`HeapProfile::older_than`](crate::HeapProfile::older_than);
//! - in the coarse *buckets* of [`BUCKETS`] (0, 1 s, 10 s, 1 min, 10 min,
//!   1 h, 6 h, 1 d, 1 w), written as the pprof numeric label `age` so a
//!   site splits into at most nine samples;
//! - and the oldest live sample's exact age, for the oldest-sites views.
//!
//! The walk costs about 1 ns per live sampled block (24 bytes of metadata
//! each): nothing at the default rate, a few ms per million live blocks at
//! rate 1. It races allocations and frees, so a block born or freed during
//! the walk may be missed or seen; record ids are checked before use.

use crate::records::RecordId;
use crate::sampler::WEIGHT_ONE;
use crate::sys::{os, region};
use std::collections::HashMap;

/// Lower bounds of the age buckets written into profiles, in seconds.
pub(crate) const BUCKETS: [u64; 9] = [0, 1, 10, 60, 600, 3600, 6 * 3600, 86400, 7 * 86400];

/// Fine bins per doubling of the age.
const BINS_PER_OCTAVE: f64 = 8.0;

/// The live samples of one record, by age.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct Ages {
    /// `(fine bin, objects estimate, samples)`, sorted by bin.
    pub(crate) bins: Vec<(u16, f64, u64)>,
    /// Objects estimate per bucket of [`BUCKETS`].
    pub(crate) buckets: [f64; BUCKETS.len()],
    /// Age of the oldest live sample, in nanoseconds.
    pub(crate) oldest_ns: u64,
}

/// The fine bin of an age: 0 below 1 ms, then 8 per doubling.
pub(crate) fn bin(age_ns: u64) -> u16 {
    let ms = age_ns as f64 / 1e6;
    if ms < 1.0 {
        return 0;
    }
    (1.0 + (ms.log2() * BINS_PER_OCTAVE).floor()).min(f64::from(u16::MAX)) as u16
}

/// The smallest age in fine bin `b`, in nanoseconds.
pub(crate) fn bin_floor_ns(b: u16) -> u64 {
    if b == 0 {
        return 0;
    }
    (2f64.powf(f64::from(b - 1) / BINS_PER_OCTAVE) * 1e6) as u64
}

/// The bucket of [`BUCKETS`] an age falls in.
pub(crate) fn bucket(age_ns: u64) -> usize {
    let s = age_ns / 1_000_000_000;
    BUCKETS.iter().rposition(|&b| s >= b).unwrap_or(0)
}

impl Ages {
    fn add(&mut self, age_ns: u64, objects: f64) {
        let b = bin(age_ns);
        match self.bins.binary_search_by_key(&b, |e| e.0) {
            Ok(i) => {
                self.bins[i].1 += objects;
                self.bins[i].2 += 1;
            }
            Err(i) => self.bins.insert(i, (b, objects, 1)),
        }
        self.buckets[bucket(age_ns)] += objects;
        self.oldest_ns = self.oldest_ns.max(age_ns);
    }

    /// The part of these ages in bins whose smallest age is at least
    /// `min_ns`, with its objects estimate and sample count.
    pub(crate) fn older_than(&self, min_ns: u64) -> (Ages, f64, u64) {
        let mut out = Ages::default();
        let (mut objects, mut samples) = (0.0, 0);
        for &(b, n, k) in &self.bins {
            let floor = bin_floor_ns(b);
            if floor >= min_ns {
                out.bins.push((b, n, k));
                out.buckets[bucket(floor)] += n;
                out.oldest_ns = self.oldest_ns;
                objects += n;
                samples += k;
            }
        }
        (out, objects, samples)
    }

    /// Adds another record's ages (records merged into one site).
    pub(crate) fn merge(&mut self, other: &Ages) {
        for &(b, n, k) in &other.bins {
            match self.bins.binary_search_by_key(&b, |e| e.0) {
                Ok(i) => {
                    self.bins[i].1 += n;
                    self.bins[i].2 += k;
                }
                Err(i) => self.bins.insert(i, (b, n, k)),
            }
        }
        for (a, b) in self.buckets.iter_mut().zip(other.buckets) {
            *a += b;
        }
        self.oldest_ns = self.oldest_ns.max(other.oldest_ns);
    }
}

/// Walks the live sampled blocks: their ages now, by record. Only records
/// below `records` (the count the snapshot read) are kept.
pub(crate) fn collect(records: usize) -> HashMap<RecordId, Ages> {
    let now = os::coarse_nanos();
    let mut out: HashMap<RecordId, Ages> = HashMap::new();
    region::for_each_live(|record, weight, born| {
        if record as usize >= records {
            return;
        }
        let objects = weight as f64 / WEIGHT_ONE as f64;
        out.entry(record)
            .or_default()
            .add(now.saturating_sub(born), objects);
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    #[test]
    fn bins_are_eighth_octaves_of_milliseconds() {
        assert_eq!(bin(0), 0);
        assert_eq!(bin(MS - 1), 0);
        assert_eq!(bin(MS), 1);
        assert_eq!(bin(2 * MS), 9);
        for age in [MS, 3 * MS, 250 * MS, 7_000 * MS, 86_400_000 * MS] {
            let b = bin(age);
            assert!(bin_floor_ns(b) <= age, "{age}");
            assert!(bin_floor_ns(b + 1) > age, "{age}");
            assert!(bin_floor_ns(b + 1) as f64 / bin_floor_ns(b) as f64 <= 1.091);
        }
    }

    #[test]
    fn buckets_follow_the_table() {
        assert_eq!(bucket(0), 0);
        assert_eq!(bucket(999 * MS), 0);
        assert_eq!(bucket(1000 * MS), 1);
        assert_eq!(bucket(59_999 * MS), 2);
        assert_eq!(bucket(60_000 * MS), 3);
        assert_eq!(bucket(30 * 86_400_000 * MS), 8);
    }

    #[test]
    fn older_than_keeps_whole_bins_at_or_past_the_age() {
        let mut a = Ages::default();
        a.add(5 * MS, 2.0);
        a.add(300 * MS, 3.0);
        a.add(2_000 * MS, 4.0);
        assert_eq!(a.buckets[..2], [5.0, 4.0]);
        assert_eq!(a.oldest_ns, 2_000 * MS);
        let (old, n, k) = a.older_than(200 * MS);
        assert_eq!((n, k), (7.0, 2));
        assert_eq!(old.bins.len(), 2);
        let (none, n, _) = a.older_than(10_000 * MS);
        assert_eq!(n, 0.0);
        assert!(none.bins.is_empty());
        let mut b = a.clone();
        b.merge(&a);
        assert_eq!(b.buckets[..2], [10.0, 8.0]);
        assert_eq!(b.bins.iter().map(|e| e.2).sum::<u64>(), 6);
    }
}
