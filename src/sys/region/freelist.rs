//! A lock-free list of free slots (a Treiber stack of chains), one per small
//! class, shared by all threads. Threads trade whole chains with it (a
//! thread cache gives back or takes up to a batch in one CAS).
//!
//! Links live in the slots' metadata (`Links`), not in the slots, so no
//! read ever touches user memory. The head is `tag << 32 | (slot + 1)`, 0 in
//! the low half for empty; every push and pop bumps the tag, so a CAS made
//! against a head read before any other push or pop fails (ABA needs 2^32
//! list operations while one thread sits between its head load and its
//! CAS).
//!
//! Why a walk may read garbage, and why that is safe: `pop_chain` walks up
//! to `max` links from the head before its CAS. Meanwhile another thread
//! may pop those slots, hand one out and store a record id where the link
//! was. So every link read is *possibly stale*: it is used only after
//! `Links::link` has checked it names a slot whose metadata is committed
//! (a bounds check against the class's committed count, which only grows).
//! A stale but in-bounds link is harmless to read, and the CAS then fails
//! because the head's tag moved. An out-of-bounds one ends the walk and the
//! pop retries from a fresh head. If the head did *not* move, the links
//! read were the list's own (no slot left the list, so none was rewritten),
//! so an out-of-bounds link with an unchanged head means the list is
//! corrupt: `pop_chain` reports it instead of spinning.
//!
//! Memory order: pushes publish their chain's links with a release CAS and
//! every modification of the head is a CAS, so a pop's acquire load of the
//! head sees the links of every chain pushed before it (release sequence).
//! Every store to a link word is a release store and the walk's loads are
//! acquire (free on x86-64): a walk that reads a link rewritten by another
//! thread then sees that thread's earlier pop of the slot, so its head
//! reload sees the tag moved. Without that, a stale head next to a fresh
//! link looked like corruption (the `loom` model found it).
//!
//! Invariants: a slot is on at most one list (this one or one thread
//! cache) and never on a list while handed out; the chain from the head
//! ends in a 0 link; every link on the list names a committed slot.
//!
//! The logic is generic over its atomics so that a `loom` model
//! (`cfg(memprof_loom)`, below) checks the same code the allocator runs.

use core::sync::atomic::Ordering;

/// The atomic head word (an `AtomicU64` in the allocator).
pub(crate) trait Head {
    fn load(&self, order: Ordering) -> u64;
    fn compare_exchange_weak(
        &self,
        current: u64,
        new: u64,
        success: Ordering,
        failure: Ordering,
    ) -> Result<u64, u64>;
}

/// A link word (an `AtomicU32` in the allocator).
pub(crate) trait Link {
    fn load(&self, order: Ordering) -> u32;
    fn store(&self, v: u32, order: Ordering);
}

/// The links of one class: `link(slot)` is `None` when `slot` is not a
/// committed slot (the validation every possibly stale link goes through).
pub(crate) trait Links {
    type L: Link;
    fn link(&self, slot: usize) -> Option<&Self::L>;
}

macro_rules! atomic_impls {
    ($u64:ty, $u32:ty) => {
        impl Head for $u64 {
            #[inline]
            fn load(&self, order: Ordering) -> u64 {
                <$u64>::load(self, order)
            }
            #[inline]
            fn compare_exchange_weak(
                &self,
                current: u64,
                new: u64,
                success: Ordering,
                failure: Ordering,
            ) -> Result<u64, u64> {
                <$u64>::compare_exchange_weak(self, current, new, success, failure)
            }
        }
        impl Link for $u32 {
            #[inline]
            fn load(&self, order: Ordering) -> u32 {
                <$u32>::load(self, order)
            }
            #[inline]
            fn store(&self, v: u32, order: Ordering) {
                <$u32>::store(self, v, order)
            }
        }
    };
}
atomic_impls!(core::sync::atomic::AtomicU64, core::sync::atomic::AtomicU32);
#[cfg(memprof_loom)]
atomic_impls!(loom::sync::atomic::AtomicU64, loom::sync::atomic::AtomicU32);

/// The list was found corrupt: an unchanged head led to a link that names
/// no committed slot.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Corrupt;

/// Pushes the chain `first ..= last` (linked through `links`, last link
/// ignored) onto the list at `head`: one successful CAS for the whole chain.
pub(crate) fn push_chain<H: Head, S: Links>(head: &H, links: &S, first: usize, last: usize) {
    let Some(last_link) = links.link(last) else {
        return; // callers pass committed slots; never seen
    };
    let mut h = head.load(Ordering::Relaxed);
    loop {
        last_link.store(h as u32, Ordering::Release);
        let new = ((h >> 32).wrapping_add(1) << 32) | (first as u64 + 1);
        match head.compare_exchange_weak(h, new, Ordering::Release, Ordering::Relaxed) {
            Ok(_) => return,
            Err(now) => h = now,
        }
    }
}

/// Takes up to `max` (>= 1) slots off the list with one successful CAS.
/// Returns the first and last slot and the count; the chain is linked first
/// to last through `links` and its last link is left as it was.
pub(crate) fn pop_chain<H: Head, S: Links>(
    head: &H,
    links: &S,
    max: usize,
) -> Result<Option<(usize, usize, usize)>, Corrupt> {
    let mut h = head.load(Ordering::Acquire);
    loop {
        if h as u32 == 0 {
            return Ok(None);
        }
        let first = (h as u32 - 1) as usize;
        match walk(links, first, max) {
            Some((last, n, next)) => {
                let new = ((h >> 32).wrapping_add(1) << 32) | u64::from(next);
                match head.compare_exchange_weak(h, new, Ordering::Acquire, Ordering::Acquire) {
                    Ok(_) => return Ok(Some((first, last, n))),
                    Err(now) => h = now,
                }
            }
            None => {
                // A link named no committed slot: stale, unless the head
                // stayed put (then nothing was rewritten: corrupt).
                let now = head.load(Ordering::Acquire);
                if now == h {
                    return Err(Corrupt);
                }
                h = now;
            }
        }
    }
}

/// Follows up to `max` slots from `first`. Returns the last slot reached,
/// the count, and the link after it; `None` if a link was out of bounds.
#[inline]
fn walk<S: Links>(links: &S, first: usize, max: usize) -> Option<(usize, usize, u32)> {
    let (mut last, mut n) = (first, 1);
    let mut next = links.link(last)?.load(Ordering::Acquire);
    while n < max && next != 0 {
        last = (next - 1) as usize;
        next = links.link(last)?.load(Ordering::Acquire);
        n += 1;
    }
    // The link after the chain becomes the head: it must name a slot too.
    if next != 0 {
        links.link((next - 1) as usize)?;
    }
    Some((last, n, next))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use core::sync::atomic::{AtomicU32, AtomicU64};

    /// Links in a plain array: `link` checks the bound like the allocator's.
    pub(crate) struct ArrayLinks<L>(pub(crate) Vec<L>);
    impl<L: Link> Links for ArrayLinks<L> {
        type L = L;
        fn link(&self, slot: usize) -> Option<&L> {
            self.0.get(slot)
        }
    }

    fn drain(head: &AtomicU64, links: &ArrayLinks<AtomicU32>) -> Vec<usize> {
        let mut out = Vec::new();
        while let Some((first, _, n)) = pop_chain(head, links, 3).unwrap() {
            let mut s = first;
            for _ in 0..n {
                out.push(s);
                s = (links.link(s).unwrap().load(Ordering::Relaxed) as usize).wrapping_sub(1);
            }
        }
        out
    }

    #[test]
    fn chains_go_on_and_come_off_in_order() {
        let links = ArrayLinks((0..8).map(|_| AtomicU32::new(0)).collect());
        let head = AtomicU64::new(0);
        for s in 0..8 {
            push_chain(&head, &links, s, s);
        }
        let mut got = drain(&head, &links);
        got.sort_unstable();
        assert_eq!(got, (0..8).collect::<Vec<_>>());
        assert_eq!(pop_chain(&head, &links, 4), Ok(None));
    }

    #[test]
    fn an_out_of_bounds_link_under_a_still_head_is_reported() {
        let links = ArrayLinks((0..4).map(|_| AtomicU32::new(0)).collect());
        let head = AtomicU64::new(0);
        push_chain(&head, &links, 0, 0);
        push_chain(&head, &links, 1, 1);
        // A record id where slot 1's link was (what a use-after-free of the
        // list would leave): never followed.
        links.0[1].store(1_000_000, Ordering::Relaxed);
        assert_eq!(pop_chain(&head, &links, 4), Err(Corrupt));
        // Even a pop of one slot reads that link, to make it the new head.
        assert_eq!(pop_chain(&head, &links, 1), Err(Corrupt));
    }
}

/// The `loom` model: `RUSTFLAGS="--cfg memprof_loom" cargo test --release --lib loom`.
///
/// Two threads pop chains, "hand out" what they pop by overwriting its link
/// with a record id (out of bounds, or in bounds to look like a link), then
/// push it back; one of them then pushes a slot that was never listed. In every interleaving no walk follows a
/// bad link (`ArrayLinks` would panic) and at the end every slot is on the
/// list exactly once.
#[cfg(all(test, memprof_loom))]
pub(crate) mod loom_model {
    use super::tests::ArrayLinks;
    use super::*;
    use loom::sync::atomic::{AtomicU32, AtomicU64};
    use loom::sync::Arc;

    const SLOTS: usize = 3;

    /// Every interleaving with up to `PREEMPTIONS` forced switches (loom's
    /// usual bound: bugs of this kind need two or three).
    pub(crate) fn model(f: impl Fn() + Sync + Send + 'static) {
        let mut b = loom::model::Builder::new();
        b.preemption_bound = Some(3);
        b.check(f);
    }

    struct Shared {
        head: AtomicU64,
        links: ArrayLinks<AtomicU32>,
    }

    /// Pops every slot off the list at `head`, in list order.
    pub(crate) fn drain(head: &AtomicU64, links: &ArrayLinks<AtomicU32>) -> Vec<usize> {
        let mut out = Vec::new();
        while let Some((first, last, n)) = pop_chain(head, links, usize::MAX).unwrap() {
            let mut x = first;
            for i in 0..n {
                out.push(x);
                if i + 1 < n {
                    x = (links.link(x).unwrap().load(Ordering::Relaxed) - 1) as usize;
                }
            }
            assert_eq!(x, last);
        }
        out
    }

    fn hand_out_and_return(s: &Shared, max: usize, record: u32) {
        if let Some((first, last, n)) = pop_chain(&s.head, &s.links, max).unwrap() {
            // Remember the chain before "handing out" overwrites the links.
            let mut chain = [0usize; SLOTS];
            let mut x = first;
            for (i, c) in chain.iter_mut().enumerate().take(n) {
                *c = x;
                if i + 1 < n {
                    x = (s.links.link(x).unwrap().load(Ordering::Relaxed) - 1) as usize;
                }
            }
            assert_eq!(x, last);
            for &slot in &chain[..n] {
                s.links.link(slot).unwrap().store(record, Ordering::Release);
            }
            for &slot in &chain[..n] {
                push_chain(&s.head, &s.links, slot, slot);
            }
        }
    }

    #[test]
    fn loom_stale_links_are_never_followed() {
        model(|| {
            let s = Arc::new(Shared {
                head: AtomicU64::new(0),
                links: ArrayLinks((0..SLOTS).map(|_| AtomicU32::new(0)).collect()),
            });
            // Slots 0..3 on the list; slot 3 is pushed by a thread.
            for slot in 0..SLOTS - 1 {
                push_chain(&s.head, &s.links, slot, slot);
            }
            let a = {
                let s = s.clone();
                loom::thread::spawn(move || hand_out_and_return(&s, 2, 1_000_000))
            };
            // Main pops too, and "hands out" with an in-bounds id (one that
            // looks like a link), then pushes the last slot.
            hand_out_and_return(&s, 2, 2);
            push_chain(&s.head, &s.links, SLOTS - 1, SLOTS - 1);
            a.join().unwrap();
            let mut all = drain(&s.head, &s.links);
            all.sort_unstable();
            assert_eq!(all, (0..SLOTS).collect::<Vec<_>>());
        });
    }
}
