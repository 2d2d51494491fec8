//! The cached DWARF unwinder: frame-pointer speed on builds without frame
//! pointers.
//!
//! Each frame is unwound by a rule read from the module's CFI (`cfi.rs`)
//! and cached per return address: after warm-up a frame costs a hash, one
//! load from the cache, and two loads from the stack. libgcc, by contrast,
//! finds and interprets the CFI program again for every frame of every
//! stack (~85 ns per frame).
//!
//! The cache is a direct-mapped table of 2^16 `u64` entries (512 KiB of
//! the profiler's arena, touched only where used), shared by all threads
//! and lock-free: an entry is `rule << 32 | tag`, written and read with one
//! atomic access, so a reader sees a whole entry or another one, never a
//! mix. The tag and the slot index together give back the whole address.
//!
//! Modules come and go: `dlopen` may map code where nothing was, `dlclose`
//! may unmap code whose rules are cached and put other code there. Each
//! thread reads the loader's load/unload counters (`dl_iterate_phdr`) at
//! most once a millisecond, and the cache is emptied when they moved.
//! Reads are bounded by the thread's stack whatever the cache says, so a
//! stale rule (new code at the very return address of unloaded code,
//! within that millisecond) could only give a wrong frame, never a bad
//! read.

use super::{arena, cfi, frames};
use cfi::Rule;
use core::cell::Cell;
use core::mem::MaybeUninit;
use core::ptr;
use core::sync::atomic::{AtomicPtr, AtomicU64, Ordering};

/// Whether this target has the cached DWARF unwinder.
pub(crate) const SUPPORTED: bool = cfg!(all(target_arch = "x86_64", target_os = "linux"));

const SLOTS_LOG2: u32 = 16;
const SLOTS: usize = 1 << SLOTS_LOG2;
/// Memory of the cache, taken from the arena on first use.
pub(crate) const CACHE_BYTES: usize = SLOTS * 8;

static CACHE: AtomicPtr<AtomicU64> = AtomicPtr::new(ptr::null_mut());
/// `dlpi_adds + dlpi_subs` when the cache was last known valid.
static MODULES_EPOCH: AtomicU64 = AtomicU64::new(0);
/// Rules read from CFI (cache misses), and walks handed to libgcc.
static MISSES: AtomicU64 = AtomicU64::new(0);
static FALLBACKS: AtomicU64 = AtomicU64::new(0);

/// How a walk ended.
pub(crate) enum Walk {
    /// `frames` return addresses written; `truncated` when the walk was
    /// cut (depth limit, code without CFI, a frame leaving the stack).
    Done {
        frames: usize,
        truncated: bool,
        /// The frames folded by `frames::fold`.
        hash: u64,
    },
    /// A frame needs the full DWARF machinery, or the walk could not start
    /// (no stack bounds, or on another stack): use libgcc.
    Fallback,
}

fn cache() -> Option<&'static [AtomicU64; SLOTS]> {
    let mut p = CACHE.load(Ordering::Acquire);
    if p.is_null() {
        let fresh = arena::alloc_zeroed(CACHE_BYTES, 64).cast::<AtomicU64>();
        if fresh.is_null() {
            return None;
        }
        p = match CACHE.compare_exchange(
            ptr::null_mut(),
            fresh,
            Ordering::AcqRel,
            Ordering::Acquire,
        ) {
            Ok(_) => fresh,
            // Another thread won; our zeroed block stays unused in the
            // arena (512 KiB, once, in a race that needs two first samples
            // at the same moment).
            Err(winner) => winner,
        };
    }
    // SAFETY: `p` points to SLOTS zeroed AtomicU64s from the arena, never
    // freed, and AtomicU64 may be created from zeroed memory.
    Some(unsafe { &*p.cast::<[AtomicU64; SLOTS]>() })
}

/// Slot and tag of a code address below 2^48: the tag is the address's
/// bits above 16, and the slot folds the tag's low 16 bits into the
/// address's low 16 (one shift and one xor on the walk's critical path,
/// where a multiply would add latency to every frame), so `(slot, tag)`
/// names exactly one address. Return addresses of one module differ in
/// their low bits, and modules are 64 KiB apart at least, so the fold
/// spreads both.
#[inline(always)]
fn slot_and_tag(pc: usize) -> (usize, u32) {
    let tag = pc >> SLOTS_LOG2;
    ((pc ^ tag) & (SLOTS - 1), tag as u32)
}

/// The rule for the return address `pc`: a cache hit is one load and a
/// 32-bit compare; a miss reads the CFI (`cfi::rule_for`, out of line).
///
/// An empty slot (0) matches only an address below 64 KiB, never code:
/// its rule 0 has no kind, and the walk ends there. The tag keeps 32 bits
/// of the address above bit 16, which is all of it below 2^48, where
/// user-space code lives on x86-64; a garbage return address above that
/// could match another's rule and give a wrong frame, never a bad read.
#[inline(always)]
fn rule(cache: &[AtomicU64; SLOTS], pc: usize) -> Rule {
    let (slot, tag) = slot_and_tag(pc);
    let e = cache[slot].load(Ordering::Relaxed);
    if e as u32 == tag {
        return Rule((e >> 32) as u32);
    }
    miss(cache, pc)
}

#[cold]
#[inline(never)]
fn miss(cache: &[AtomicU64; SLOTS], pc: usize) -> Rule {
    if pc >> SLOTS_LOG2 == 0 {
        // Not code (a null or tiny return address): the walk ends here.
        return Rule(0);
    }
    MISSES.fetch_add(1, Ordering::Relaxed);
    let r = cfi::rule_for(pc.wrapping_sub(1));
    if pc >> 48 == 0 && pc >> SLOTS_LOG2 != 0 {
        let (slot, tag) = slot_and_tag(pc);
        cache[slot].store(u64::from(r.0) << 32 | u64::from(tag), Ordering::Relaxed);
    }
    r
}

thread_local! {
    /// When this thread last read the loader's counters (coarse
    /// monotonic nanoseconds).
    static CHECKED_AT: Cell<u64> = const { Cell::new(0) };
}

/// How often each thread reads the loader's counters.
const CHECK_EVERY_NANOS: u64 = 1_000_000;

/// Empties the cache if a module was loaded or unloaded since it was
/// filled. Reading the counters takes the loader's lock, which at rate 1
/// on two threads made the lock's cache line bounce on every capture
/// (15x bare `System` instead of 4x), so each thread reads them at most
/// once a millisecond (`CLOCK_MONOTONIC_COARSE`, a vDSO read of a few ns).
fn check_modules_now_and_then(cache: &[AtomicU64; SLOTS]) {
    let now = super::os::coarse_nanos();
    let due = CHECKED_AT
        .try_with(|c| {
            let due = now.wrapping_sub(c.get()) >= CHECK_EVERY_NANOS;
            if due {
                c.set(now);
            }
            due
        })
        .unwrap_or(true);
    if due {
        check_modules(cache);
    }
}

fn check_modules(cache: &[AtomicU64; SLOTS]) {
    unsafe extern "C" fn first(
        info: *mut libc::dl_phdr_info,
        _size: libc::size_t,
        data: *mut libc::c_void,
    ) -> libc::c_int {
        // SAFETY: `info` is valid for this call; `data` is the u64 below.
        unsafe {
            *data.cast::<u64>() = ((*info).dlpi_adds).wrapping_add((*info).dlpi_subs);
        }
        1
    }
    let mut epoch = 0u64;
    // SAFETY: `first` matches the callback type and writes only `epoch`.
    unsafe { libc::dl_iterate_phdr(Some(first), (&raw mut epoch).cast()) };
    if MODULES_EPOCH.load(Ordering::Relaxed) != epoch {
        for e in cache.iter() {
            e.store(0, Ordering::Relaxed);
        }
        MODULES_EPOCH.store(epoch, Ordering::Relaxed);
    }
}

/// How a walk ends at a frame that is not unwound by rsp or rbp.
#[cold]
fn end_of_walk(kind: u32, frames: usize, hash: u64) -> Walk {
    match kind {
        cfi::KIND_END => Walk::Done {
            frames,
            truncated: false,
            hash,
        },
        // 0: an empty cache slot matched an address below 64 KiB.
        0 | cfi::KIND_NO_CFI => Walk::Done {
            frames,
            truncated: true,
            hash,
        },
        _ => {
            FALLBACKS.fetch_add(1, Ordering::Relaxed);
            Walk::Fallback
        }
    }
}

/// Empties the cache (for measuring first-use cost).
pub(crate) fn flush() {
    if let Some(cache) = cache() {
        for e in cache.iter() {
            e.store(0, Ordering::Relaxed);
        }
    }
}

/// `(misses, fallbacks)`: rules read from CFI so far, and walks that met a
/// frame only libgcc can unwind.
pub(crate) fn counts() -> (u64, u64) {
    (
        MISSES.load(Ordering::Relaxed),
        FALLBACKS.load(Ordering::Relaxed),
    )
}

/// Slots in use, for reporting cache memory.
pub(crate) fn cached_rules() -> usize {
    cache().map_or(0, |c| {
        c.iter().filter(|e| e.load(Ordering::Relaxed) != 0).count()
    })
}

#[inline(always)]
fn registers() -> (usize, usize, usize) {
    let (pc, sp, bp): (usize, usize, usize);
    // SAFETY: reads rip, rsp and rbp; no memory access, no side effects.
    #[cfg(target_arch = "x86_64")]
    unsafe {
        core::arch::asm!(
            "lea {pc}, [rip]",
            "mov {sp}, rsp",
            "mov {bp}, rbp",
            pc = out(reg) pc,
            sp = out(reg) sp,
            bp = out(reg) bp,
            options(nomem, nostack, preserves_flags)
        );
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        (pc, sp, bp) = (0, 0, 0);
    }
    (pc, sp, bp)
}

/// Writes return addresses to the start of `out`, innermost first, starting
/// with the caller of `walk`, folding them into a hash as it goes.
#[inline(never)]
pub(crate) fn walk(out: &mut [MaybeUninit<usize>]) -> Walk {
    if !SUPPORTED {
        return Walk::Fallback;
    }
    let Some((lo, hi)) = frames::stack_bounds() else {
        return Walk::Fallback;
    };
    let (mut pc, mut sp, mut bp) = registers();
    if sp < lo || sp >= hi || sp % 8 != 0 {
        return Walk::Fallback;
    }
    // Without its cache (the arena is full) this unwinder is no faster
    // than libgcc.
    let Some(cache) = cache() else {
        return Walk::Fallback;
    };
    check_modules_now_and_then(cache);
    let mut n = 0;
    let mut h = frames::HASH_START;
    // Per frame: the rule, the CFA (checked to lie above the frame and
    // inside the stack), the saved rbp if the frame saved it, the return
    // address. Every load is 8-byte aligned and inside `[lo, hi)`.
    loop {
        let r = rule(cache, pc);
        let kind = r.kind();
        let cfa;
        if kind == cfi::KIND_SP {
            // `sp` is 8-byte aligned and the offset a multiple of 8 of at
            // least 8 (`cfi::pack`), so the CFA is aligned and above `sp`.
            cfa = sp + r.offset();
            if cfa > hi {
                return cut(n, h);
            }
        } else if kind == cfi::KIND_BP {
            cfa = bp.wrapping_add(r.offset());
            if cfa <= sp || cfa > hi || cfa % 8 != 0 {
                return cut(n, h);
            }
        } else {
            return end_of_walk(kind, n, h);
        }
        // Here `sp < cfa <= hi`, both 8-byte aligned, so `cfa - 8` is in
        // `[sp, hi)`.
        let save = r.rbp_save_bytes();
        if save != 0 {
            // `save` is 8..=2040 and a multiple of 8, so `at < cfa`.
            let at = cfa.wrapping_sub(save);
            if at < lo || at > cfa {
                return cut(n, h);
            }
            // SAFETY: `at` is 8-byte aligned (cfa is) and in `[lo, hi)`,
            // this thread's stack, mapped while we run on it.
            bp = unsafe { *(at as *const usize) };
        }
        // SAFETY: `cfa - 8` is 8-byte aligned and in `[sp, hi)`, inside
        // this thread's stack.
        let ret = unsafe { *((cfa - 8) as *const usize) };
        if ret == 0 {
            return Walk::Done {
                frames: n,
                truncated: false,
                hash: h,
            };
        }
        if n == out.len() {
            return cut(n, h);
        }
        out[n].write(ret);
        h = frames::fold(h, ret);
        n += 1;
        sp = cfa;
        pc = ret;
    }
}

/// A walk cut short: a frame left the stack, or `out` is full.
#[cold]
fn cut(frames: usize, hash: u64) -> Walk {
    Walk::Done {
        frames,
        truncated: true,
        hash,
    }
}
