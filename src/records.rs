//! Per-site records: counters keyed by (stack, object size, label set):
//! Go's key, plus the labels the sample was taken under (`labels.rs`).
//!
//! Size is part of the key, so a record's objects all have one size and
//! bytes are always `objects × size`: only object counts and weights are
//! stored. Each sample adds its own weight (fixed point, `WEIGHT_ONE` = one
//! object) taken at the rate in force when it was sampled, and its free
//! subtracts exactly that weight again, read back from the block's
//! metadata.
//!
//! Thread safety: lookups are lock-free; adding a record locks (`sys::table`).
//! Counters are atomics updated on the slow path only.
//!
//! Invariants (per record, at any instant a reader loads `frees` before
//! `allocs`): `frees <= allocs` and `free_weight <= alloc_weight`.
//!
//! The peak copy: `capture_peak` copies every record's four counters into
//! its `peak` fields (under `peak.rs`'s capture lock) and then publishes
//! how many records it covered; records past that count have no peak
//! values. See `peak.rs` for when a capture happens.

use crate::labels::LabelSetId;
use crate::sampler::WEIGHT_ONE;
use crate::stacks::StackId;
use crate::sys::table::Table;
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};

pub(crate) type RecordId = u32;

/// At most this many records (2 Mi).
const CHUNKS: usize = 512;

pub(crate) struct Record {
    pub(crate) stack: StackId,
    pub(crate) labels: LabelSetId,
    pub(crate) size: u64,
    allocs: AtomicU64,
    frees: AtomicU64,
    /// Weights are stored as `count * WEIGHT_ONE + extra`: a sample of
    /// weight exactly one object (every sample at rate 1, and blocks far
    /// larger than the rate) then costs one atomic add, not two. The adds
    /// were most of a rate-1 sample's time after the stack walk.
    alloc_extra: AtomicU64,
    free_extra: AtomicU64,
    /// `[allocs, frees, alloc_extra, free_extra]` at the last peak capture.
    peak: [AtomicU64; 4],
}

/// A consistent read of one record's counters.
pub(crate) struct Counts {
    pub(crate) id: RecordId,
    pub(crate) stack: StackId,
    pub(crate) labels: LabelSetId,
    pub(crate) size: u64,
    pub(crate) allocs: u64,
    pub(crate) frees: u64,
    pub(crate) alloc_weight: u64,
    pub(crate) free_weight: u64,
}

static TABLE: Table<Record, CHUNKS> = Table::new();
static DROPPED: AtomicU64 = AtomicU64::new(0);
/// Records covered by the last peak capture.
static PEAK_LEN: AtomicU32 = AtomicU32::new(0);

fn hash(stack: StackId, size: u64, labels: LabelSetId) -> u32 {
    let key = u64::from(stack) ^ size.rotate_left(32) ^ u64::from(labels).rotate_left(17);
    let h = key.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    (h >> 32) as u32 ^ h as u32
}

fn get(id: RecordId) -> &'static Record {
    TABLE.get(id)
}

/// The record for (stack, size, labels), added if new; `None` when full.
pub(crate) fn intern(stack: StackId, size: u64, labels: LabelSetId) -> Option<RecordId> {
    let eq = |r: &Record| r.stack == stack && r.size == size && r.labels == labels;
    TABLE.intern(hash(stack, size, labels), eq, || {
        Some(Record {
            stack,
            labels,
            size,
            allocs: AtomicU64::new(0),
            frees: AtomicU64::new(0),
            alloc_extra: AtomicU64::new(0),
            free_extra: AtomicU64::new(0),
            peak: [const { AtomicU64::new(0) }; 4],
        })
    })
}

/// Number of records so far.
pub(crate) fn count() -> usize {
    TABLE.len()
}

/// The stack and object size of a record.
pub(crate) fn stack_and_size(id: RecordId) -> (StackId, u64) {
    let r = get(id);
    (r.stack, r.size)
}

pub(crate) fn on_alloc(id: RecordId, weight: u64) {
    let r = get(id);
    if weight != WEIGHT_ONE {
        // Wrapping: a weight just under one object would subtract.
        r.alloc_extra
            .fetch_add(weight.wrapping_sub(WEIGHT_ONE), Ordering::Relaxed);
    }
    r.allocs.fetch_add(1, Ordering::Release);
}

pub(crate) fn on_free(id: RecordId, weight: u64) {
    let r = get(id);
    if weight != WEIGHT_ONE {
        r.free_extra
            .fetch_add(weight.wrapping_sub(WEIGHT_ONE), Ordering::Relaxed);
    }
    r.frees.fetch_add(1, Ordering::Release);
}

fn weight(count: u64, extra: u64) -> u64 {
    count.wrapping_mul(WEIGHT_ONE).wrapping_add(extra)
}

/// Reads every record. Frees are read before allocs, so each record's
/// counts satisfy the invariants even while other threads run.
pub(crate) fn for_each(mut f: impl FnMut(Counts)) {
    for id in 0..TABLE.len() as u32 {
        let r = get(id);
        let frees = r.frees.load(Ordering::Acquire);
        let free_extra = r.free_extra.load(Ordering::Relaxed);
        let allocs = r.allocs.load(Ordering::Acquire);
        let alloc_extra = r.alloc_extra.load(Ordering::Relaxed);
        f(counts(id, r, [allocs, frees, alloc_extra, free_extra]));
    }
}

fn counts(id: RecordId, r: &Record, [allocs, frees, alloc_extra, free_extra]: [u64; 4]) -> Counts {
    let free_weight = weight(frees, free_extra);
    let alloc_weight = weight(allocs, alloc_extra);
    Counts {
        id,
        stack: r.stack,
        labels: r.labels,
        size: r.size,
        allocs: allocs.max(frees),
        frees,
        alloc_weight: alloc_weight.max(free_weight),
        free_weight,
    }
}

/// Copies every record's counters into its peak copy. The caller holds
/// the peak capture lock (`peak.rs`), so captures never interleave.
pub(crate) fn capture_peak() {
    let n = TABLE.len() as u32;
    for id in 0..n {
        let r = get(id);
        let frees = r.frees.load(Ordering::Acquire);
        let free_extra = r.free_extra.load(Ordering::Relaxed);
        let allocs = r.allocs.load(Ordering::Acquire);
        let alloc_extra = r.alloc_extra.load(Ordering::Relaxed);
        for (slot, v) in r.peak.iter().zip([allocs, frees, alloc_extra, free_extra]) {
            slot.store(v, Ordering::Relaxed);
        }
    }
    PEAK_LEN.store(n, Ordering::Release);
}

/// Reads every record's peak copy (records made after the capture are
/// left out). The caller holds the peak capture lock.
pub(crate) fn for_each_peak(mut f: impl FnMut(Counts)) {
    for id in 0..PEAK_LEN.load(Ordering::Acquire) {
        let r = get(id);
        let v = r.peak.each_ref().map(|a| a.load(Ordering::Relaxed));
        f(counts(id, r, v));
    }
}

/// Counts a sample that could not be recorded (a table or the region full).
pub(crate) fn note_dropped() {
    DROPPED.fetch_add(1, Ordering::Relaxed);
}

pub(crate) fn dropped() -> u64 {
    DROPPED.load(Ordering::Relaxed)
}

pub(crate) fn lock_for_fork() {
    TABLE.lock_for_fork();
}

pub(crate) fn unlock_after_fork() {
    TABLE.unlock_after_fork();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts_of(id: RecordId) -> (u64, u64, u64, u64) {
        let mut out = None;
        for_each(|c| {
            if c.id == id {
                out = Some((c.allocs, c.alloc_weight, c.frees, c.free_weight));
            }
        });
        out.unwrap()
    }

    #[test]
    fn weights_of_one_object_and_others_add_up() {
        // A stack id no other test uses.
        let id = intern(0x7fff_0001, 48, 0).unwrap();
        let weights = [WEIGHT_ONE, WEIGHT_ONE * 3 + 7, WEIGHT_ONE, WEIGHT_ONE - 1];
        for w in weights {
            on_alloc(id, w);
        }
        on_free(id, WEIGHT_ONE * 3 + 7);
        on_free(id, WEIGHT_ONE - 1);
        let total: u64 = weights.iter().sum();
        assert_eq!(
            counts_of(id),
            (4, total, 2, WEIGHT_ONE * 3 + 7 + WEIGHT_ONE - 1)
        );
    }
}
