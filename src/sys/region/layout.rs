//! Where things are in the reserved range: its bounds, its zones, and the
//! arithmetic from a pointer to its zone, slot and metadata.
//!
//! ```text
//! base (64 KiB aligned, by us: mmap gives 4 KiB)         base + len
//! | zone 0 | zone 1 | ... | zone NCLASSES-1 | large zone ........ |
//!   each small zone: [ BlockMeta per slot | pad to 64 KiB | slots of `size` ]
//! ```
//!
//! The range is split into 64 equal zones of `len / 64` bytes: one per small
//! class, the rest for large runs. All of it is reserved `PROT_NONE` at
//! first; the small and large code commit it as they grow.
//!
//! Invariants:
//! - `base` is a multiple of `DATA_ALIGN` (so slot `i` of a class is at a
//!   multiple of its size, and every alignment the class serves holds);
//! - `len` is 0 and `base` is `NO_BASE` until the range is reserved; then
//!   neither changes. `p - NO_BASE` (wrapping) is at least 2^47 for every
//!   user-space pointer `p`, more than any `len`, so `contains` is false
//!   whichever mix of old and new words it reads: its two loads need no
//!   order between them. `len` is still published after `base` and the
//!   per-class layout (release), so a thread that sees `len` sees them.

use super::class::{class_size, DATA_ALIGN, NCLASSES};
use super::meta::{BlockMeta, META};
use crate::sys::os;
use core::sync::atomic::{AtomicUsize, Ordering};

pub(crate) const ZONES: usize = 64;

/// `[base, base + len)` once reserved; `len == 0` and `base == NO_BASE`
/// before, so `contains` is false for every pointer.
#[repr(C)]
struct Bounds {
    base: AtomicUsize,
    len: AtomicUsize,
}
// `contains` reads the words by their offsets in the symbol.
const _: () = assert!(core::mem::offset_of!(Bounds, base) == 0);
const _: () = assert!(core::mem::offset_of!(Bounds, len) == 8);

/// `base` before the range is reserved: the start of the kernel's half of
/// the address space, in 4- and 5-level paging alike. A user pointer minus
/// it is at least 2^47 (as a wrapping `usize`), above any `len`.
const NO_BASE: usize = 0xffff_8000_0000_0000;
// A user pointer `p` (below 2^56 in 5-level paging) minus `NO_BASE` is `p +
// 2^47`: at least 2^47, without wrapping, and above the largest `len`.
const _: () = assert!(0usize.wrapping_sub(NO_BASE) == 1 << 47);
const _: () = assert!(1usize << MAX_SHIFT < 1 << 47);

crate::sys::direct::direct_static!(
    /// The bounds, read by every free's fast path: reached without the GOT
    /// (`sys::direct`).
    fn bounds() -> Bounds = [NO_BASE, 0],
    "memprof_0_1_region_bounds"
);

/// Was `p` served by the region? Exact; one subtract and one compare, both
/// from memory, and the branch (`asm goto`): four instructions on every
/// free. The two words may be read in either order (file invariants).
#[inline(always)]
pub(crate) fn contains(p: *mut u8) -> bool {
    #[cfg(all(target_arch = "x86_64", not(memprof_loom)))]
    {
        let mut ours = false;
        // SAFETY: reads the two words of the bounds symbol (aligned, always
        // mapped, only ever written as atomics); writes a register.
        unsafe {
            core::arch::asm!(
                "mov {off}, {p}",
                "sub {off}, qword ptr [rip + memprof_0_1_region_bounds]",
                "cmp {off}, qword ptr [rip + memprof_0_1_region_bounds + 8]",
                "jb {inside}",
                off = out(reg) _,
                p = in(reg) p,
                inside = label { ours = true; },
                options(nostack, readonly),
            );
        }
        ours
    }
    #[cfg(not(all(target_arch = "x86_64", not(memprof_loom))))]
    {
        let len = bounds().len.load(Ordering::Acquire);
        (p as usize).wrapping_sub(bounds().base.load(Ordering::Relaxed)) < len
    }
}

/// `contains` as a plain value, for `realloc`'s paths: the same test
/// without `asm goto` (with it there too, the rate-1 churn measured 2.26×
/// `System` against 2.14×, most likely code placement).
#[inline(always)]
pub(crate) fn holds(p: *mut u8) -> bool {
    #[cfg(all(target_arch = "x86_64", not(memprof_loom)))]
    {
        let (off, len): (usize, usize);
        // SAFETY: reads the two words of the bounds symbol (aligned, always
        // mapped, only ever written as atomics); writes registers.
        unsafe {
            core::arch::asm!(
                "mov {len}, qword ptr [rip + memprof_0_1_region_bounds + 8]",
                "mov {off}, {p}",
                "sub {off}, qword ptr [rip + memprof_0_1_region_bounds]",
                len = out(reg) len,
                off = out(reg) off,
                p = in(reg) p,
                options(nostack, readonly, preserves_flags),
            );
        }
        off < len
    }
    #[cfg(not(all(target_arch = "x86_64", not(memprof_loom))))]
    {
        contains(p)
    }
}

/// log2 of a zone's length, set when the range is reserved.
static ZONE_SHIFT: AtomicUsize = AtomicUsize::new(0);

/// One class's zone, its addresses precomputed: where its metadata and
/// its slots start, and how many slots it holds. Set once at reservation
/// (before `len` is published), so the alloc and free paths compute no
/// zone address and divide by nothing: one load each.
#[repr(C, align(32))]
struct ClassZone {
    base: AtomicUsize,
    data: AtomicUsize,
    nslots: AtomicUsize,
}

static CLASS_ZONES: [ClassZone; NCLASSES] = [const {
    ClassZone {
        base: AtomicUsize::new(0),
        data: AtomicUsize::new(0),
        nslots: AtomicUsize::new(0),
    }
}; NCLASSES];

/// log2 of the largest range tried.
const MAX_SHIFT: u32 = 41;

/// Reserves the range: the largest of the sizes tried that the OS grants,
/// with its base aligned to `DATA_ALIGN` by reserving that much more and
/// giving back the ends. `false` if every size was refused.
///
/// Called once, under the caller's init lock, before anything else here.
pub(super) fn reserve() -> bool {
    // 2 TiB of address space: 32 GiB per zone. Smaller tries for systems
    // with an address-space limit (ulimit -v, valgrind).
    for shift in [MAX_SHIFT, 39, 37, 35, 33] {
        let len = 1usize << shift;
        let Some(raw) = os::reserve(len + DATA_ALIGN) else {
            continue;
        };
        let raw = raw as usize;
        let base = os::round_up(raw, DATA_ALIGN);
        // SAFETY: both ends lie inside the mapping we just made and hold
        // nothing; what stays is `[base, base + len)`.
        unsafe {
            os::release(raw as *mut u8, base - raw);
            os::release((base + len) as *mut u8, raw + DATA_ALIGN - base);
        }
        bounds().base.store(base, Ordering::Relaxed);
        set_zones(base, len);
        bounds().len.store(len, Ordering::Release);
        return true;
    }
    false
}

fn set_zones(base: usize, len: usize) {
    let shift = (len / ZONES).trailing_zeros() as usize;
    ZONE_SHIFT.store(shift, Ordering::Relaxed);
    for (c, z) in CLASS_ZONES.iter().enumerate() {
        let n = ((1usize << shift) - DATA_ALIGN) / (class_size(c) + META);
        let zone = base + (c << shift);
        z.base.store(zone, Ordering::Relaxed);
        z.data
            .store(zone + os::round_up(n * META, DATA_ALIGN), Ordering::Relaxed);
        z.nslots.store(n, Ordering::Relaxed);
    }
}

#[inline]
pub(crate) fn base() -> usize {
    bounds().base.load(Ordering::Relaxed)
}

pub(crate) fn len() -> usize {
    bounds().len.load(Ordering::Acquire)
}

#[inline]
pub(crate) fn zone_len() -> usize {
    1 << ZONE_SHIFT.load(Ordering::Relaxed)
}

/// The zone of a pointer inside the range.
#[inline]
pub(crate) fn zone_of(p: *mut u8) -> usize {
    (p as usize - base()) >> ZONE_SHIFT.load(Ordering::Relaxed)
}

/// Where class `c`'s zone (its metadata) starts.
#[inline]
pub(crate) fn zone_base(c: usize) -> usize {
    CLASS_ZONES[c].base.load(Ordering::Relaxed)
}

/// Slots a class's zone holds.
#[inline]
pub(crate) fn nslots(c: usize) -> usize {
    CLASS_ZONES[c].nslots.load(Ordering::Relaxed)
}

/// Where a class's slots start.
#[inline]
pub(crate) fn data_base(c: usize) -> usize {
    CLASS_ZONES[c].data.load(Ordering::Relaxed)
}

/// The metadata of slot `slot` of class `c`.
///
/// The caller must have checked `slot < committed` for the class, so the
/// metadata is committed memory (this is the check every possibly stale
/// slot index goes through, `small::committed_links`).
#[inline]
pub(crate) fn meta_at(c: usize, slot: usize) -> &'static BlockMeta {
    debug_assert!(slot < nslots(c));
    // SAFETY: slot < committed (caller), so its metadata is committed memory
    // inside our reservation, which is never unmapped; BlockMeta is all
    // atomics, valid for any bit pattern.
    unsafe { &*((zone_base(c) + slot * META) as *const BlockMeta) }
}

/// Start of the large zone and its length.
pub(crate) fn large_zone() -> (usize, usize) {
    (
        base() + NCLASSES * zone_len(),
        zone_len() * (ZONES - NCLASSES),
    )
}
