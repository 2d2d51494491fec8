//! The stack table: deduplicates captured stacks into `StackId`s.
//!
//! Thread safety: `intern` looks up without a lock (the common case: the
//! stack was seen before) and locks only to add a new stack (`sys::table`). `get`
//! never locks.
//!
//! Invariants: ids are dense, `0..len`; an entry never changes after it is
//! published (frames written, then the index slot stored with release);
//! memory comes from the profiler's arena and is never freed. When the
//! table or the arena is full, `intern` returns `None` and the caller
//! counts a dropped sample.

use crate::sys::arena;
use crate::sys::table::Table;

pub(crate) type StackId = u32;

/// At most this many distinct stacks (1 Mi).
const CHUNKS: usize = 256;

#[derive(Clone, Copy)]
struct Entry {
    /// `len` frames in the arena, never changed or freed.
    frames: *const usize,
    /// The stack's full 64-bit hash: equal hashes (and lengths) are taken
    /// as equal stacks, so a lookup never compares frames. Two distinct
    /// stacks of one process share a hash with probability ~n²/2^65 (under
    /// 1e-7 for a million stacks); they would then share a record.
    hash: u64,
    len: u32,
    truncated: bool,
}

// SAFETY: `frames` points to immutable arena memory that lives forever.
unsafe impl Sync for Entry {}

static TABLE: Table<Entry, CHUNKS> = Table::new();

/// 64-bit hash of a stack from its frames folded by `frames::fold` (the
/// unwinders fold as they walk), its length and its truncation mark.
fn finish(folded: u64, len: usize, truncated: bool) -> u64 {
    let h = (folded ^ (len as u64) << 1 ^ u64::from(truncated)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    h ^ (h >> 29)
}

/// The hash of `frames` from scratch (for stacks not captured here).
#[cfg(test)]
fn fold_all(frames: &[usize]) -> u64 {
    use crate::sys::frames::{fold, HASH_START};
    frames.iter().fold(HASH_START, |h, &f| fold(h, f))
}

fn frames_of(e: &Entry) -> &'static [usize] {
    // SAFETY: `frames` points to `len` words in the arena, written before
    // the entry was published and never changed or freed.
    unsafe { core::slice::from_raw_parts(e.frames, e.len as usize) }
}

/// The id of this stack, adding it if new. `None` when the table is full.
/// `folded` is `frames` folded by `frames::fold` (`Captured::hash`).
pub(crate) fn intern(frames: &[usize], truncated: bool, folded: u64) -> Option<StackId> {
    let h64 = finish(folded, frames.len(), truncated);
    let eq =
        |e: &Entry| e.hash == h64 && e.len as usize == frames.len() && e.truncated == truncated;
    TABLE.intern((h64 ^ (h64 >> 32)) as u32, eq, || {
        let copy = arena::alloc_zeroed(core::mem::size_of_val(frames).max(8), 8).cast::<usize>();
        if copy.is_null() {
            return None;
        }
        // SAFETY: `copy` has room for `frames.len()` words and is ours.
        unsafe { core::ptr::copy_nonoverlapping(frames.as_ptr(), copy, frames.len()) };
        Some(Entry {
            frames: copy,
            hash: h64,
            len: frames.len() as u32,
            truncated,
        })
    })
}

/// The frames of a stack and whether it was truncated.
pub(crate) fn get(id: StackId) -> (&'static [usize], bool) {
    let e = TABLE.get(id);
    (frames_of(e), e.truncated)
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

    #[test]
    fn same_stack_same_id_and_distinct_stacks_differ() {
        let a = [0x1000usize, 0x2000, 0x3000];
        let b = [0x1000usize, 0x2000, 0x3001];
        let ia = intern(&a, false, fold_all(&a)).unwrap();
        assert_eq!(intern(&a, false, fold_all(&a)), Some(ia));
        let ib = intern(&b, false, fold_all(&b)).unwrap();
        assert_ne!(ia, ib);
        let it = intern(&a, true, fold_all(&a)).unwrap();
        assert_ne!(ia, it);
        assert_eq!(get(ia), (&a[..], false));
        assert_eq!(get(it), (&a[..], true));
        assert!(TABLE.len() >= 3);
    }
}
