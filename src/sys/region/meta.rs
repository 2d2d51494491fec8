//! `BlockMeta`: the profiler's facts about one sampled block, kept outside
//! the block (in a small zone's metadata array, or a large run's header),
//! so no read of it ever touches user memory.
//!
//! Invariants:
//! - while the block is handed out, `weight != 0` (every sample weighs at
//!   least one object, `WEIGHT_ONE`), `record_or_link` is its record id and
//!   `born` the coarse monotonic time it was sampled at;
//! - while it is free, `weight == 0` and `record_or_link` is a free-list
//!   link (small slots) or unused (large runs).
//!
//! `weight == 0` is how a double free is caught: a free of a block whose
//! weight is already 0 is one (`region::checked_meta`).

use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};

#[repr(C)]
pub(crate) struct BlockMeta {
    /// Record id while the block is out; free-list link while it is free.
    pub(super) record_or_link: AtomicU32,
    /// The test scope that owns the block (0: none), see `scope.rs`.
    scope: AtomicU32,
    /// The sample's weight, in units of 1/`WEIGHT_ONE` objects; 0 while free.
    weight: AtomicU64,
    /// When the block was sampled: `os::coarse_nanos()`.
    born: AtomicU64,
}

impl BlockMeta {
    /// Marks the block handed out, for sample `record` of `weight` (> 0)
    /// taken at `born`.
    pub(crate) fn set(&self, record: u32, weight: u64, scope: u32, born: u64) {
        debug_assert!(weight != 0);
        // Release: the word was a free-list link (see freelist.rs).
        self.record_or_link.store(record, Ordering::Release);
        self.born.store(born, Ordering::Relaxed);
        self.scope.store(scope, Ordering::Relaxed);
        // Last, release: a walker that sees the weight sees the rest.
        self.weight.store(weight.max(1), Ordering::Release);
    }
    /// When the block was sampled (`os::coarse_nanos()`).
    pub(crate) fn born(&self) -> u64 {
        self.born.load(Ordering::Relaxed)
    }
    pub(crate) fn scope(&self) -> u32 {
        self.scope.load(Ordering::Relaxed)
    }
    pub(crate) fn record(&self) -> u32 {
        self.record_or_link.load(Ordering::Relaxed)
    }
    pub(crate) fn weight(&self) -> u64 {
        self.weight.load(Ordering::Relaxed)
    }
    /// `(record, weight, born)` of a block that was live when read, for a
    /// walk that races allocations and frees: `None` if it was free. The
    /// three may come from two successive samples of the slot; the caller
    /// validates the record id before use.
    pub(crate) fn read_live(&self) -> Option<(u32, u64, u64)> {
        let weight = self.weight.load(Ordering::Acquire);
        if weight == 0 {
            return None;
        }
        Some((self.record(), weight, self.born()))
    }
    /// Is the block handed out (not free)?
    pub(crate) fn is_live(&self) -> bool {
        self.weight() != 0
    }
    /// Marks the block free (see the invariants above).
    pub(super) fn mark_free(&self) {
        self.weight.store(0, Ordering::Relaxed);
    }
}

pub(crate) const META: usize = core::mem::size_of::<BlockMeta>();
