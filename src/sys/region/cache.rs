//! Per-thread caches of free small slots, so that a thread that frees and
//! allocates (every op of a churn at rate 1) touches no shared cache line:
//! with only the shared list, two threads at rate 1 bounced its head on
//! every alloc and free (9x bare `System` instead of ~3x).
//!
//! Each thread has, per class, a list of at most `cap(c)` slots linked
//! through the metadata like the shared list. An empty list takes
//! `cap.div_ceil(2)` slots from the shared list in one CAS; a list that
//! grows past `cap` gives back down to `cap / 2` in one CAS.
//!
//! Bounded by bytes, as tcmalloc's and jemalloc's are: `cap(c)` holds at
//! most `CLASS_BYTES` of class `c` (but at least one slot, at most
//! `MAX_LEN`), so a thread holds at most `THREAD_BYTES` (757 KiB;
//! the test below computes it) however it allocates.
//!
//! At thread exit a `pthread` key destructor gives every slot back (and
//! again if later thread-local destructors free more). A thread registers
//! for it the first time its cache holds a slot, whether that came from a
//! free or from a refill, so a thread that only allocates loses nothing
//! either. The cells are `const` thread-locals without destructors, usable
//! inside `alloc` and during thread teardown; once they are gone, callers
//! use the shared list.
//!
//! Invariants: a cache's `len` is the length of its chain, at most
//! `cap(c)` between operations; its slots are free (`weight == 0`) and on
//! no other list. Only the owning thread touches a cache, and only inside
//! the profiler (`Busy` is set), so a signal handler never re-enters it.
//!
//! The list logic (`Cache`) is generic over the atomics, like
//! `freelist.rs`, so the `loom` model below runs the allocator's code.

use super::class::{class_size, NCLASSES};
use super::freelist::{pop_chain, push_chain, Corrupt, Head, Link, Links};
use core::cell::Cell;
use core::sync::atomic::{AtomicU32, AtomicUsize, Ordering};

/// Most bytes of one class a thread keeps.
const CLASS_BYTES: usize = 16 * 1024;
/// Most slots of one class a thread keeps.
const MAX_LEN: usize = 64;

/// Most slots of class `c` a thread keeps: one load (a division by the
/// class size was on every sampled alloc and free).
#[inline]
pub(super) const fn cap(c: usize) -> usize {
    CAPS[c] as usize
}

/// `cap` of every class.
const CAPS: [u8; NCLASSES] = {
    let mut t = [0; NCLASSES];
    let mut c = 0;
    while c < NCLASSES {
        t[c] = cap_of(c) as u8;
        c += 1;
    }
    t
};

const fn cap_of(c: usize) -> usize {
    let n = CLASS_BYTES / class_size(c);
    if n < 1 {
        1
    } else if n > MAX_LEN {
        MAX_LEN
    } else {
        n
    }
}

/// Most bytes one thread's caches hold, all classes together.
#[cfg(test)]
pub(super) const THREAD_BYTES: usize = {
    let mut sum = 0;
    let mut c = 0;
    while c < NCLASSES {
        sum += cap(c) * class_size(c);
        c += 1;
    }
    sum
};

/// One class's cache: `len << 32 | (head slot + 1)`, 0 when empty.
pub(super) struct Cache {
    v: Cell<u64>,
}

impl Cache {
    pub(super) const fn new() -> Self {
        Cache { v: Cell::new(0) }
    }

    pub(super) fn len(&self) -> usize {
        (self.v.get() >> 32) as usize
    }

    fn set(&self, len: usize, head: u32) {
        self.v.set((len as u64) << 32 | u64::from(head));
    }

    /// A slot from the cache.
    #[inline]
    pub(super) fn pop<S: Links>(&self, links: &S) -> Result<Option<usize>, Corrupt> {
        let v = self.v.get();
        let head = v as u32;
        if head == 0 {
            return Ok(None);
        }
        let slot = (head - 1) as usize;
        let next = links.link(slot).ok_or(Corrupt)?.load(Ordering::Relaxed);
        self.set(self.len() - 1, next);
        Ok(Some(slot))
    }

    /// Takes up to `cap.div_ceil(2)` slots from the shared list into the
    /// (empty) cache and returns one of them. `kept` is true when slots
    /// stayed in the cache.
    pub(super) fn refill<H: Head, S: Links>(
        &self,
        shared: &H,
        links: &S,
        cap: usize,
    ) -> Result<Option<(usize, bool)>, Corrupt> {
        debug_assert_eq!(self.len(), 0);
        let Some((first, last, n)) = pop_chain(shared, links, cap.div_ceil(2))? else {
            return Ok(None);
        };
        if n > 1 {
            let rest = links.link(first).ok_or(Corrupt)?.load(Ordering::Relaxed);
            links.link(last).ok_or(Corrupt)?.store(0, Ordering::Release);
            self.set(n - 1, rest);
        }
        Ok(Some((first, n > 1)))
    }

    /// Puts `slot` in the cache, giving slots back to the shared list when
    /// it grows past `cap`.
    #[inline]
    pub(super) fn push<H: Head, S: Links>(
        &self,
        shared: &H,
        links: &S,
        slot: usize,
        cap: usize,
    ) -> Result<(), Corrupt> {
        let v = self.v.get();
        links
            .link(slot)
            .ok_or(Corrupt)?
            .store(v as u32, Ordering::Release);
        let len = self.len() + 1;
        self.set(len, slot as u32 + 1);
        if len > cap {
            self.give_back(shared, links, len - cap / 2)?;
        }
        Ok(())
    }

    /// Gives every slot back (thread exit).
    pub(super) fn flush<H: Head, S: Links>(&self, shared: &H, links: &S) -> Result<(), Corrupt> {
        let n = self.len();
        if n > 0 {
            self.give_back(shared, links, n)?;
        }
        Ok(())
    }

    /// Moves the first `n` slots (the cache holds at least `n`) to the
    /// shared list.
    #[cold]
    #[inline(never)]
    fn give_back<H: Head, S: Links>(&self, shared: &H, links: &S, n: usize) -> Result<(), Corrupt> {
        let v = self.v.get();
        let first = (v as u32 - 1) as usize;
        let mut last = first;
        for _ in 1..n {
            last =
                (links.link(last).ok_or(Corrupt)?.load(Ordering::Relaxed) as usize).wrapping_sub(1);
        }
        let rest = links.link(last).ok_or(Corrupt)?.load(Ordering::Relaxed);
        self.set(self.len() - n, rest);
        push_chain(shared, links, first, last);
        Ok(())
    }
}

thread_local! {
    static CACHES: [Cache; NCLASSES] = const { [const { Cache::new() }; NCLASSES] };
    /// This thread's home (`small::HOMES`) plus one; 0 until first asked.
    static HOME: Cell<usize> = const { Cell::new(0) };
    /// This thread has set its exit-time key (see `register`).
    static REGISTERED: Cell<bool> = const { Cell::new(false) };
}

/// Runs `f` on this thread's cache of class `c`; `None` once the thread's
/// locals are gone.
#[inline]
pub(super) fn with<R>(c: usize, f: impl FnOnce(&Cache) -> R) -> Option<R> {
    CACHES.try_with(|caches| f(&caches[c])).ok()
}

/// Threads given a home so far.
static HOMED: AtomicUsize = AtomicUsize::new(0);

/// This thread's home: which of a class's shared lists it gives slots
/// back to and refills from first (handed out in thread order; 0 once
/// its locals are gone).
#[inline]
pub(super) fn home() -> usize {
    HOME.try_with(|h| {
        let v = h.get();
        if v != 0 {
            return v - 1;
        }
        let v = HOMED.fetch_add(1, Ordering::Relaxed);
        h.set(v + 1);
        v
    })
    .unwrap_or(0)
}

/// Puts `slot` (of class `c`, just freed; `meta` its metadata) in this
/// thread's cache if it has room: the common case of a free, inlined.
/// `false` when the cache is full or the thread's locals are gone; the
/// caller then uses `Cache::push` or the shared list.
#[inline]
pub(super) fn push_local(c: usize, slot: usize, meta: &super::BlockMeta) -> bool {
    let pushed = CACHES
        .try_with(|caches| {
            let cache = &caches[c];
            let v = cache.v.get();
            let len = cache.len() + 1;
            if len > cap(c) {
                return false;
            }
            // Release, as in `push`: the word held the block's record id.
            meta.record_or_link.store(v as u32, Ordering::Release);
            cache.set(len, slot as u32 + 1);
            true
        })
        .unwrap_or(false);
    if pushed {
        register();
    }
    pushed
}

/// Makes sure this thread's caches are emptied when it exits.
#[inline]
pub(super) fn register() {
    if REGISTERED.try_with(Cell::get).unwrap_or(true) {
        return;
    }
    register_slow();
}

#[cold]
fn register_slow() {
    let mut key = KEY.load(Ordering::Acquire);
    if key == 0 {
        key = create_key();
    }
    if key != u32::MAX {
        // SAFETY: `key - 1` is a key we created and never delete; the
        // value is a non-null marker (destructors run only for non-null
        // values), never dereferenced.
        unsafe { libc::pthread_setspecific(key - 1, core::ptr::dangling::<libc::c_void>()) };
    }
    let _ = REGISTERED.try_with(|r| r.set(true));
}

/// Key whose destructor empties an exiting thread's caches: 0 until
/// created, `u32::MAX` if creation failed.
static KEY: AtomicU32 = AtomicU32::new(0);

/// Creates the key once. No lock (a `fork` must not find one held): racing
/// threads each create one, and the losers delete theirs.
#[cold]
fn create_key() -> u32 {
    let mut k: libc::pthread_key_t = 0;
    // SAFETY: `k` is a valid out-pointer; `on_thread_exit` matches the
    // destructor type.
    if unsafe { libc::pthread_key_create(&mut k, Some(on_thread_exit)) } != 0 {
        let _ = KEY.compare_exchange(0, u32::MAX, Ordering::AcqRel, Ordering::Acquire);
        return KEY.load(Ordering::Acquire);
    }
    match KEY.compare_exchange(0, k + 1, Ordering::AcqRel, Ordering::Acquire) {
        Ok(_) => k + 1,
        Err(winner) => {
            // SAFETY: `k` is ours, unused: no thread set a value for it.
            unsafe { libc::pthread_key_delete(k) };
            winner
        }
    }
}

/// Gives every cached slot of the exiting thread back to the shared lists.
/// Thread-local destructors that run after this and free more register
/// again, and the thread library calls this again.
unsafe extern "C" fn on_thread_exit(_: *mut libc::c_void) {
    let _ = REGISTERED.try_with(|r| r.set(false));
    let _ = CACHES.try_with(|caches| {
        for (c, cache) in caches.iter().enumerate() {
            super::flush_cache(c, cache);
        }
    });
}

/// Checks one cache of this thread: its chain has `len` distinct free
/// slots, within `cap`, on no other list (`seen`). Returns `len`.
pub(super) fn validate<S: Links>(
    cache: &Cache,
    links: &S,
    c: usize,
    seen: &mut [u64],
) -> Result<usize, &'static str> {
    let len = cache.len();
    if len > cap(c) {
        return Err("a thread cache holds more than its cap");
    }
    let mut next = cache.v.get() as u32;
    for _ in 0..len {
        if next == 0 {
            return Err("a thread cache's chain is shorter than its len");
        }
        let slot = (next - 1) as usize;
        let Some(link) = links.link(slot) else {
            return Err("a thread cache links outside committed slots");
        };
        super::small::mark_seen(seen, slot)?;
        if super::small::meta(c, slot).is_live() {
            return Err("a live block is in a thread cache");
        }
        next = link.load(Ordering::Relaxed);
    }
    Ok(len)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caches_are_bounded_by_bytes() {
        for c in 0..NCLASSES {
            let bytes = cap(c) * class_size(c);
            assert!(
                bytes <= CLASS_BYTES || cap(c) == 1,
                "class {c}: {bytes} bytes"
            );
        }
        // The whole of one thread's caches, worst case: under 1 MiB
        // (count-bounded at 64 slots a class it was 4 MiB for 64 KiB alone).
        const { assert!(THREAD_BYTES < 1 << 20) };
    }
}

/// The `loom` model of caches trading with the shared list:
/// `RUSTFLAGS="--cfg memprof_loom" cargo test --release --lib loom`. Two threads
/// each allocate (pop or refill) and free (push, with give-backs) through
/// their own cache, then flush it as the exit hook does; one then frees a
/// slot into the shared list directly, as a thread without locals does. At the
/// end every slot is on the shared list exactly once.
#[cfg(all(test, memprof_loom))]
mod loom_model {
    use super::super::freelist::tests::ArrayLinks;
    use super::*;
    use loom::sync::atomic::{AtomicU32, AtomicU64};
    use loom::sync::Arc;

    const SLOTS: usize = 3;
    const CAP: usize = 2;

    struct Shared {
        head: AtomicU64,
        links: ArrayLinks<AtomicU32>,
    }

    fn churn(s: &Shared) {
        let cache = Cache::new();
        let mut held = Vec::new();
        for _ in 0..CAP {
            let slot = match cache.pop(&s.links).unwrap() {
                Some(slot) => Some(slot),
                None => cache
                    .refill(&s.head, &s.links, CAP)
                    .unwrap()
                    .map(|(slot, _)| slot),
            };
            if let Some(slot) = slot {
                // Handed out: the link now holds a record id.
                s.links.link(slot).unwrap().store(77, Ordering::Release);
                held.push(slot);
            }
        }
        for slot in held {
            cache.push(&s.head, &s.links, slot, CAP).unwrap();
        }
        cache.flush(&s.head, &s.links).unwrap();
        assert_eq!(cache.len(), 0);
    }

    #[test]
    fn loom_caches_lose_and_duplicate_no_slot() {
        super::super::freelist::loom_model::model(|| {
            let s = Arc::new(Shared {
                head: AtomicU64::new(0),
                links: ArrayLinks((0..SLOTS).map(|_| AtomicU32::new(0)).collect()),
            });
            for slot in 0..SLOTS - 1 {
                push_chain(&s.head, &s.links, slot, slot);
            }
            let other = {
                let s = s.clone();
                loom::thread::spawn(move || churn(&s))
            };
            churn(&s);
            push_chain(&s.head, &s.links, SLOTS - 1, SLOTS - 1);
            other.join().unwrap();
            let mut all = super::super::freelist::loom_model::drain(&s.head, &s.links);
            all.sort_unstable();
            assert_eq!(all, (0..SLOTS).collect::<Vec<_>>());
        });
    }
}
