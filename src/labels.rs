//! Labels: key/value pairs that tag the samples a thread takes, as Go's
//! `pprof.Do` tags CPU samples, but for memory.
//!
//! A *label set* (sorted by key, one value per key) is interned once into a
//! `LabelSetId`, a `u32`. The thread's current id sits in a `const`
//! thread-local `Cell`, which the sample slow path reads and makes part of
//! the record key (stack, size, labels): so a block keeps the labels it was
//! allocated under until it is freed, whichever thread frees it, and
//! in-use by label is right. Unlabelled code has id 0 and pays nothing; the
//! fast path never reads any of this.
//!
//! Interning runs in user code (`set_labels`, `with_labels`, building a
//! `Labeled`), never on the allocation path, under a `spin::Mutex` with
//! sampling off (what it allocates goes to the inner allocator). Polling a
//! `Labeled` future only swaps the thread-local id: no lock, no allocation.
//!
//! Bound: at most `MAX_SETS` distinct sets. Past that, new sets are mapped
//! to one reserved set, `memprof.labels=overflow`, and counted; the count is
//! written in every profile's comments.
//!
//! Invariants: id 0 is the empty set; `sets[id]` never changes once
//! published; `index[sets[id]] == id`; every id a thread holds is `<
//! sets.len()`.

use core::cell::Cell;
use core::future::Future;
use core::marker::PhantomData;
use core::pin::Pin;
use core::sync::atomic::{AtomicU64, Ordering};
use core::task::{Context, Poll};
use std::collections::HashMap;
use std::sync::Arc;

pub(crate) type LabelSetId = u32;

/// A label set: `(key, value)` pairs sorted by key, keys distinct.
pub(crate) type LabelSet = Arc<[(String, String)]>;

/// Distinct label sets kept; more are counted as overflow.
pub(crate) const MAX_SETS: usize = 4096;

/// The key and value of the reserved set that stands for every set past
/// `MAX_SETS`.
pub(crate) const OVERFLOW: (&str, &str) = ("memprof.labels", "overflow");

thread_local! {
    /// The label set of this thread's samples (0: none).
    static CURRENT: Cell<LabelSetId> = const { Cell::new(0) };
}

struct Table {
    sets: Vec<LabelSet>,
    index: HashMap<LabelSet, LabelSetId>,
}

static TABLE: spin::Mutex<Option<Table>> = spin::Mutex::new(None);
static OVERFLOWED: AtomicU64 = AtomicU64::new(0);

/// This thread's current label set, for the sample slow path. 0 when TLS
/// is gone (thread teardown).
#[inline]
pub(crate) fn current() -> LabelSetId {
    CURRENT.try_with(Cell::get).unwrap_or(0)
}

fn set_current(id: LabelSetId) -> LabelSetId {
    CURRENT.try_with(|c| c.replace(id)).unwrap_or(0)
}

/// The set of `id` (empty for 0, or an id this process never made).
pub(crate) fn get(id: LabelSetId) -> LabelSet {
    crate::sampler::without_sampling(|| {
        let t = TABLE.lock();
        match t.as_ref().and_then(|t| t.sets.get(id as usize)) {
            Some(s) => s.clone(),
            None => Arc::from(Vec::new()),
        }
    })
}

/// Label set creations that found the table full.
pub(crate) fn overflowed() -> u64 {
    OVERFLOWED.load(Ordering::Relaxed)
}

/// The id of `base`'s labels with `labels` added (a key already in `base`
/// takes the new value; of repeated keys in `labels`, the last wins).
pub(crate) fn intern_with(base: LabelSetId, labels: &[(&str, &str)]) -> LabelSetId {
    if labels.is_empty() {
        return base;
    }
    crate::sampler::without_sampling(|| {
        let mut guard = TABLE.lock();
        let t = guard.get_or_insert_with(|| {
            let empty: LabelSet = Arc::from(Vec::new());
            let overflow: LabelSet =
                Arc::from(vec![(OVERFLOW.0.to_string(), OVERFLOW.1.to_string())]);
            Table {
                index: HashMap::from([(empty.clone(), 0), (overflow.clone(), 1)]),
                sets: vec![empty, overflow],
            }
        });
        let mut set: Vec<(String, String)> = t
            .sets
            .get(base as usize)
            .map(|s| s.to_vec())
            .unwrap_or_default();
        for &(k, v) in labels {
            match set.binary_search_by(|(sk, _)| sk.as_str().cmp(k)) {
                Ok(i) => set[i].1 = v.to_string(),
                Err(i) => set.insert(i, (k.to_string(), v.to_string())),
            }
        }
        let set: LabelSet = Arc::from(set);
        if let Some(&id) = t.index.get(&set) {
            return id;
        }
        if t.sets.len() >= MAX_SETS {
            OVERFLOWED.fetch_add(1, Ordering::Relaxed);
            return 1;
        }
        let id = t.sets.len() as LabelSetId;
        t.sets.push(set.clone());
        t.index.insert(set, id);
        id
    })
}

/// Before `fork`: holds the table lock across it (held only briefly, and
/// never by the allocation path). See `crate::fork`.
pub(crate) fn lock_for_fork() {
    core::mem::forget(TABLE.lock());
}

/// After `fork`, in parent and child: releases what `lock_for_fork` took.
pub(crate) fn unlock_after_fork() {
    // SAFETY: `lock_for_fork` took the lock on this (the forking) thread
    // and forgot its guard; nothing else can hold it now.
    unsafe { TABLE.force_unlock() };
}

/// Runs `f` with `labels` added to this thread's labels: every sample taken
/// on this thread inside `f` carries them, as pprof string labels, and the
/// blocks keep them until they are freed, whichever thread frees them.
///
/// Labels nest: inside another `with_labels`, the outer labels stay and a
/// key given again takes the inner value. For async code, where a task
/// moves between threads, use [`LabelsExt::with_labels`] on the future.
///
/// ```
/// use std::alloc::System;
/// #[global_allocator]
/// static A: memprof::Sampled<System> = memprof::Sampled::new(System);
///
/// memprof::set_rate(1);
/// let kept = memprof::with_labels(&[("tenant", "acme")], || vec![0u8; 4096]);
/// let acme: u64 = memprof::heap_profile()
///     .by_label("tenant")
///     .into_iter()
///     .filter(|(value, _)| value == "acme")
///     .map(|(_, t)| t.inuse_bytes)
///     .sum();
/// assert!(acme >= 4096);
/// # drop(kept);
/// # memprof::set_rate(memprof::DEFAULT_RATE);
/// ```
pub fn with_labels<R>(labels: &[(&str, &str)], f: impl FnOnce() -> R) -> R {
    let _guard = set_labels(labels);
    f()
}

/// Adds `labels` to this thread's labels until the returned guard is
/// dropped (see [`with_labels`], which is usually simpler). Guards must be
/// dropped in the reverse order of their creation, as scopes nest.
///
/// ```
/// let _g = memprof::set_labels(&[("request", "upload")]);
/// let buffer = vec![0u8; 1 << 20]; // sampled under request=upload
/// # drop(buffer);
/// ```
#[must_use = "the labels are removed when the guard is dropped"]
pub fn set_labels(labels: &[(&str, &str)]) -> LabelGuard {
    let id = intern_with(current(), labels);
    LabelGuard {
        previous: set_current(id),
        _not_send: PhantomData,
    }
}

/// Restores the thread's previous labels when dropped; from
/// [`set_labels`]. It belongs to the thread that made it.
#[must_use = "the labels are removed when the guard is dropped"]
pub struct LabelGuard {
    previous: LabelSetId,
    _not_send: PhantomData<*const ()>,
}

impl Drop for LabelGuard {
    fn drop(&mut self) {
        set_current(self.previous);
    }
}

impl core::fmt::Debug for LabelGuard {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("LabelGuard").finish_non_exhaustive()
    }
}

/// A future that sets its labels on the polling thread around each poll of
/// the future it wraps, so a task keeps its labels as it moves between an
/// async runtime's worker threads. Made by [`LabelsExt::with_labels`].
#[must_use = "futures do nothing unless polled"]
#[derive(Debug)]
pub struct Labeled<F> {
    inner: F,
    labels: LabelSetId,
}

impl<F: Future> Future for Labeled<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        // `inner` is structurally pinned: it is never moved out of a
        // pinned `Labeled` (nothing hands it out by value or `&mut`, and
        // `Labeled` has no `Drop` impl), and `Labeled` is `Unpin` only
        // when `F` is (the auto trait).
        // SAFETY: by that pinning, `self` is never moved out of here.
        let this = unsafe { self.get_unchecked_mut() };
        let previous = set_current(this.labels);
        // SAFETY: as above; `this.inner` stays where the pin put it.
        let inner = unsafe { Pin::new_unchecked(&mut this.inner) };
        // Restored even if the poll unwinds.
        struct Restore(LabelSetId);
        impl Drop for Restore {
            fn drop(&mut self) {
                set_current(self.0);
            }
        }
        let _restore = Restore(previous);
        inner.poll(cx)
    }
}

/// Labels for futures: `fut.with_labels(&[("tenant", "acme")])`.
///
/// The labels are the creating thread's current labels with these added,
/// fixed when the future is made; each poll sets them on the polling thread
/// and restores that thread's own labels after.
///
/// ```
/// use memprof::LabelsExt;
///
/// async fn handle() -> Vec<u8> { vec![0; 1024] }
///
/// let task = handle().with_labels(&[("tenant", "acme")]);
/// // tokio::spawn(task), or any executor
/// # drop(task);
/// ```
pub trait LabelsExt: Future + Sized {
    /// Wraps this future so every poll runs with `labels` added.
    fn with_labels(self, labels: &[(&str, &str)]) -> Labeled<Self> {
        Labeled {
            inner: self,
            labels: intern_with(current(), labels),
        }
    }
}

impl<F: Future> LabelsExt for F {}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels_of(id: LabelSetId) -> Vec<(String, String)> {
        get(id).to_vec()
    }

    fn pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
        v.iter()
            .map(|&(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn sets_are_sorted_merged_and_interned_once() {
        let a = intern_with(0, &[("tenant", "acme"), ("op", "put")]);
        assert_eq!(labels_of(a), pairs(&[("op", "put"), ("tenant", "acme")]));
        assert_eq!(intern_with(0, &[("op", "put"), ("tenant", "acme")]), a);
        let b = intern_with(a, &[("tenant", "initech"), ("zone", "eu")]);
        assert_eq!(
            labels_of(b),
            pairs(&[("op", "put"), ("tenant", "initech"), ("zone", "eu")])
        );
        assert_eq!(intern_with(a, &[]), a);
        assert_eq!(
            intern_with(0, &[("k", "1"), ("k", "2")]),
            intern_with(0, &[("k", "2")])
        );
        assert!(labels_of(0).is_empty());
    }

    #[test]
    fn guards_nest_and_restore() {
        assert_eq!(current(), 0);
        let outer = set_labels(&[("a", "1")]);
        let a = current();
        with_labels(&[("b", "2")], || {
            assert_eq!(labels_of(current()), pairs(&[("a", "1"), ("b", "2")]));
        });
        assert_eq!(current(), a);
        drop(outer);
        assert_eq!(current(), 0);
    }

    #[test]
    fn a_labeled_future_sets_its_labels_only_while_polled() {
        use std::task::{Wake, Waker};
        struct Noop;
        impl Wake for Noop {
            fn wake(self: Arc<Self>) {}
        }
        let seen = Cell::new(0);
        let fut = async { seen.set(current()) }.with_labels(&[("task", "t1")]);
        let id = fut.labels;
        let mut fut = Box::pin(fut);
        let waker = Waker::from(Arc::new(Noop));
        let _other = set_labels(&[("thread", "worker")]);
        let mine = current();
        assert!(fut
            .as_mut()
            .poll(&mut Context::from_waker(&waker))
            .is_ready());
        assert_eq!(seen.get(), id);
        assert_eq!(labels_of(id), pairs(&[("task", "t1")]));
        assert_eq!(current(), mine);
    }
}
