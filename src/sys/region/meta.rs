//! `BlockMeta`: the profiler's facts about one sampled block, kept outside
//! the block (in a small zone's metadata array, or a large run's header),
//! so no read of it ever touches user memory.
//!
//! Invariants:
//! - while the block is handed out, `weight != 0` (every sample weighs at
//!   least one object, `WEIGHT_ONE`) and `record_or_link` is its record id;
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
}

impl BlockMeta {
    /// Marks the block handed out, for sample `record` of `weight` (> 0).
    pub(crate) fn set(&self, record: u32, weight: u64, scope: u32) {
        debug_assert!(weight != 0);
        // Release: the word was a free-list link (see freelist.rs).
        self.record_or_link.store(record, Ordering::Release);
        self.weight.store(weight.max(1), Ordering::Relaxed);
        self.scope.store(scope, Ordering::Relaxed);
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
