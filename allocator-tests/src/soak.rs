//! The soak: everything memprof must survive, at once, for as long as asked.
//!
//! Run by the `soak_system`, `soak_jemalloc` and `soak_mimalloc` binaries
//! (each installs `Sampled<inner>` and calls [`main`]) and by
//! `tests/soak.rs`, which runs each of them at rates 1, 4096 and the
//! default. For `SOAK_SECS` seconds these run concurrently:
//!
//! - `SOAK_THREADS` workers (default 4), each holding a bounded set of
//!   blocks: small (1–256 B), mixed (1 B–64 KiB, log-uniform), large
//!   (64 KiB–2 MiB), alignments 1 B–64 KiB and 128 KiB–2 MiB (`Layout` and
//!   `std::alloc::alloc`), `alloc_zeroed` (checked zero), raw `realloc`
//!   (contents kept up to the smaller size), `Vec` growth and
//!   `shrink_to_fit`, blocks sent to other workers over channels and
//!   freed there, and bursts: thousands of 1 B–3 KiB blocks allocated and
//!   then freed together (a test building `String`s), which moves slots
//!   between the threads' caches and the shared free lists;
//! - a spawner of short-lived threads: some allocate, free everything and
//!   exit; some send what they allocated to a worker and exit; some run a
//!   burst and exit; all arm a thread-local whose destructor allocates and
//!   frees;
//! - a forker: `fork()` every `SOAK_FORK_MS` (default 200); the child
//!   switches to rate 1, allocates and checks a little, every fourth one
//!   writes a heap profile to `/dev/null`, and `_exit(0)`s; a child that
//!   crashes or is still running after 60 s fails the soak;
//! - a profile writer: `heap_profile()`, `write_pprof` and `write_text` to
//!   a sink, `by_label`, `older_than`, `oldest_sites`, `peak_profile` (and
//!   now and then `reset_peak`), `exact_totals`, `write_heap_profile` to a
//!   temporary file; the workers allocate under labels (64 tenant and
//!   worker combinations) and free each other's blocks;
//! - an HTTP client of `memprof::http::serve`, fetching
//!   `/debug/pprof/heap` (and now and then `?debug=1`, `/allocs`, `/peak`).
//!
//! Every block is filled with a pattern derived from its address and size
//! and checked before it is freed or reallocated, so blocks that overlap
//! or memory that someone else wrote is found at the first free.
//!
//! At the end everything is joined and freed. The soak counts its own
//! allocations at its own allocation sites (the `soak_site_*` functions,
//! one allocating call each); at rate 1 the heap profile must show exactly
//! those counts and bytes at those sites and nothing in use; at other
//! rates nothing in use at them, and bytes within 6 SD of the truth. Then the region's invariants are checked
//! (`validate_region`).
//!
//! Any failure prints a line starting with `soak FAILED:` and exits with
//! status 1 (a panic on any thread too); a crash is a signal, a hang is
//! aborted by a watchdog after `SOAK_SECS + 300` s. On success the last
//! line starts with `soak ok:` and gives the figures.
//!
//! Environment: `SOAK_SECS` (default 20, fractions allowed),
//! `SOAK_THREADS` (default 4), `SOAK_FORK_MS` (default 200, 0 = no forks),
//! `SOAK_SEED` (default: from the clock; printed, so a run can be
//! repeated as far as thread interleaving allows), and `MEMPROFILERATE`,
//! which memprof itself reads.

use std::alloc::{self, Layout};
use std::cell::RefCell;
use std::fmt::Display;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::time::{Duration, Instant};

/// Prints `soak FAILED: msg` and ends the process with status 1 at once
/// (other threads may be in any state; nothing is unwound).
pub fn fail(msg: impl Display) -> ! {
    eprintln!("soak FAILED: {msg}");
    // SAFETY: `_exit` ends the process without running anything else.
    unsafe { libc::_exit(1) }
}

// ---------------------------------------------------------------------
// Sites: where the soak allocates, and what it counted there.

/// The soak's allocation sites. Each has one `#[inline(never)]` function
/// whose name is looked up in the profile's stacks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Site {
    /// `alloc`, 1–256 B.
    Small,
    /// `alloc`, 1 B–64 KiB.
    Mixed,
    /// `alloc`, 64 KiB–2 MiB.
    Large,
    /// `alloc` with alignment 1 B–64 KiB.
    Aligned,
    /// `alloc` with alignment 128 KiB–2 MiB.
    OverAligned,
    /// `alloc_zeroed`.
    Zeroed,
    /// `realloc` (for the profile: a free and an allocation here).
    Realloc,
    /// `Vec` growth and `shrink_to_fit`.
    Vec,
}

const SITES: [Site; 8] = [
    Site::Small,
    Site::Mixed,
    Site::Large,
    Site::Aligned,
    Site::OverAligned,
    Site::Zeroed,
    Site::Realloc,
    Site::Vec,
];

impl Site {
    /// The function whose frame marks this site's allocations.
    pub fn function(self) -> &'static str {
        match self {
            Site::Small => "soak_site_small",
            Site::Mixed => "soak_site_mixed",
            Site::Large => "soak_site_large",
            Site::Aligned => "soak_site_aligned",
            Site::OverAligned => "soak_site_overaligned",
            Site::Zeroed => "soak_site_zeroed",
            Site::Realloc => "soak_site_realloc",
            Site::Vec => "soak_site_vec",
        }
    }
}

/// Allocations (profile events: a realloc is one) and their bytes per site.
static SITE_ALLOCS: [AtomicU64; 8] = [const { AtomicU64::new(0) }; 8];
static SITE_BYTES: [AtomicU64; 8] = [const { AtomicU64::new(0) }; 8];

/// Blocks freed (by `Block::free`; `Vec`s dropped in place are not counted).
static FREES: AtomicU64 = AtomicU64::new(0);

fn count(site: Site, bytes: usize) {
    SITE_ALLOCS[site as usize].fetch_add(1, Relaxed);
    SITE_BYTES[site as usize].fetch_add(bytes as u64, Relaxed);
}

/// One allocating call, then the count: the count after the call keeps the
/// call from being a tail call, so the site's frame is on the stack.
#[inline(always)]
fn alloc_at(site: Site, layout: Layout, zeroed: bool) -> NonNull<u8> {
    // SAFETY: every layout the soak builds has a non-zero size.
    let p = unsafe {
        if zeroed {
            alloc::alloc_zeroed(layout)
        } else {
            alloc::alloc(layout)
        }
    };
    let Some(p) = NonNull::new(p) else {
        fail(format_args!(
            "{site:?}: allocation of {layout:?} returned null"
        ))
    };
    count(site, layout.size());
    std::hint::black_box(p)
}

#[inline(never)]
fn soak_site_small(layout: Layout) -> NonNull<u8> {
    alloc_at(Site::Small, layout, false)
}

#[inline(never)]
fn soak_site_mixed(layout: Layout) -> NonNull<u8> {
    alloc_at(Site::Mixed, layout, false)
}

#[inline(never)]
fn soak_site_large(layout: Layout) -> NonNull<u8> {
    alloc_at(Site::Large, layout, false)
}

#[inline(never)]
fn soak_site_aligned(layout: Layout) -> NonNull<u8> {
    alloc_at(Site::Aligned, layout, false)
}

#[inline(never)]
fn soak_site_overaligned(layout: Layout) -> NonNull<u8> {
    alloc_at(Site::OverAligned, layout, false)
}

#[inline(never)]
fn soak_site_zeroed(layout: Layout) -> NonNull<u8> {
    alloc_at(Site::Zeroed, layout, true)
}

/// Reallocates `b` to `new_size` bytes. The caller has checked its pattern.
#[inline(never)]
fn soak_site_realloc(b: &Block, new_size: usize) -> NonNull<u8> {
    // SAFETY: `b` is live, allocated with `b.layout`; `new_size` is
    // non-zero and does not overflow when rounded up to the alignment.
    let p = unsafe { alloc::realloc(b.ptr.as_ptr(), b.layout, new_size) };
    let Some(p) = NonNull::new(p) else {
        fail(format_args!(
            "realloc of {:?} to {new_size} B returned null",
            b.layout
        ))
    };
    count(Site::Realloc, new_size);
    std::hint::black_box(p)
}

/// Grows a `Vec<u64>` to `n` elements one push at a time, checks it,
/// truncates it to `keep` and shrinks it to fit, checks it again. Counts
/// one allocation each time the capacity changes to a non-zero value (the
/// first growth is an `alloc`, every later change a `realloc`).
#[inline(never)]
fn soak_site_vec(n: usize, keep: usize, tag: u64) -> Vec<u64> {
    let mut v: Vec<u64> = Vec::new();
    let mut cap = 0;
    for i in 0..n {
        v.push(tag ^ i as u64);
        if v.capacity() != cap {
            cap = v.capacity();
            count(Site::Vec, cap * 8);
        }
    }
    check_vec(&v, n, tag, "after growth");
    v.truncate(keep);
    v.shrink_to_fit();
    if v.capacity() != cap {
        cap = v.capacity();
        if cap != 0 {
            count(Site::Vec, cap * 8);
        }
    }
    check_vec(&v, keep.min(n), tag, "after shrink_to_fit");
    std::hint::black_box(v)
}

fn check_vec(v: &[u64], n: usize, tag: u64, when: &str) {
    if v.len() != n {
        fail(format_args!("Vec {when}: length {} != {n}", v.len()));
    }
    if let Some(i) = (0..n).find(|&i| v[i] != tag ^ i as u64) {
        fail(format_args!(
            "Vec<u64> at {:p} {when}: element {i} is {:#x}, wrote {:#x}",
            v.as_ptr(),
            v[i],
            tag ^ i as u64
        ));
    }
}

// ---------------------------------------------------------------------
// Blocks and their patterns.

/// A live block the soak owns.
pub struct Block {
    ptr: NonNull<u8>,
    layout: Layout,
    site: Site,
}

// SAFETY: a `Block` is the only handle on its memory; it moves between
// threads whole, as a `Box` would.
unsafe impl Send for Block {}

const K_WORD: u64 = 0x9e37_79b9_7f4a_7c15;

/// The pattern seed of a block at `addr` of `size` bytes.
pub fn seed(addr: usize, size: usize) -> u64 {
    let mut x = (addr as u64) ^ (size as u64).rotate_left(40) ^ 0x5eed_50a4;
    x = (x ^ (x >> 31)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x ^ (x >> 29)
}

/// Word `i` (bytes `8i..8i+8`) of the pattern with `seed`.
#[inline(always)]
fn word(seed: u64, i: usize) -> u64 {
    seed.wrapping_add((i as u64).wrapping_mul(K_WORD))
}

/// Fills `len` bytes at `p` with the pattern of `seed`.
///
/// # Safety
/// `p..p+len` is writable.
pub unsafe fn fill(p: *mut u8, len: usize, seed: u64) {
    let words = len / 8;
    for i in 0..words {
        // SAFETY: `8i + 8 <= len`.
        unsafe { p.add(8 * i).cast::<u64>().write_unaligned(word(seed, i)) };
    }
    let last = word(seed, words).to_le_bytes();
    for (j, &b) in last.iter().enumerate().take(len % 8) {
        // SAFETY: `8 * words + j < len`.
        unsafe { p.add(8 * words + j).write(b) };
    }
}

/// The first byte of `p..p+len` that differs from the pattern of `seed`:
/// (offset, expected, found).
///
/// # Safety
/// `p..p+len` is readable.
pub unsafe fn find_damage(p: *const u8, len: usize, seed: u64) -> Option<(usize, u8, u8)> {
    let words = len / 8;
    let byte = |off: usize| {
        // SAFETY: callers pass offsets below `len`.
        unsafe { p.add(off).read() }
    };
    for i in 0..words {
        // SAFETY: `8i + 8 <= len`.
        let got = unsafe { p.add(8 * i).cast::<u64>().read_unaligned() };
        let want = word(seed, i);
        if got != want {
            let j = (got ^ want).to_le_bytes().iter().position(|&b| b != 0);
            let j = j.unwrap_or(0);
            return Some((8 * i + j, want.to_le_bytes()[j], byte(8 * i + j)));
        }
    }
    let last = word(seed, words).to_le_bytes();
    (0..len % 8)
        .find(|&j| byte(8 * words + j) != last[j])
        .map(|j| (8 * words + j, last[j], byte(8 * words + j)))
}

impl Block {
    /// Takes ownership of a fresh allocation: checks its alignment (and
    /// zeroes, for `alloc_zeroed`) and writes its pattern.
    fn new(ptr: NonNull<u8>, layout: Layout, site: Site) -> Block {
        let b = Block { ptr, layout, site };
        if !(ptr.as_ptr() as usize).is_multiple_of(layout.align()) {
            fail(format_args!(
                "{site:?}: {:p} for {layout:?} is not aligned to {}",
                ptr.as_ptr(),
                layout.align()
            ));
        }
        if site == Site::Zeroed {
            // SAFETY: the block is `layout.size()` bytes, just allocated
            // zeroed.
            let s = unsafe { std::slice::from_raw_parts(ptr.as_ptr(), layout.size()) };
            if let Some(i) = s.iter().position(|&x| x != 0) {
                fail(format_args!(
                    "alloc_zeroed {:p} ({layout:?}): byte {i} is {:#04x}, not 0",
                    ptr.as_ptr(),
                    s[i]
                ));
            }
        }
        b.fill();
        b
    }

    fn seed(&self) -> u64 {
        seed(self.ptr.as_ptr() as usize, self.layout.size())
    }

    fn fill(&self) {
        // SAFETY: the block is live and `layout.size()` bytes long.
        unsafe { fill(self.ptr.as_ptr(), self.layout.size(), self.seed()) }
    }

    /// Fails the soak if the block's first `len` bytes are not its pattern.
    fn check_prefix(&self, len: usize, when: &str) {
        // SAFETY: the block is live and `len <= layout.size()`.
        if let Some((off, want, got)) = unsafe { find_damage(self.ptr.as_ptr(), len, self.seed()) }
        {
            fail(format_args!(
                "corruption {when}: block {:p} ({} B, align {}, from {:?}) byte {off} is \
                 {got:#04x}, its pattern says {want:#04x} (overlapping blocks, or a write \
                 by someone else)",
                self.ptr.as_ptr(),
                self.layout.size(),
                self.layout.align(),
                self.site,
            ));
        }
    }

    fn check(&self, when: &str) {
        self.check_prefix(self.layout.size(), when);
    }

    /// Checks the pattern, then frees the block.
    fn free(self, when: &str) {
        self.check(when);
        // SAFETY: the block is live and was allocated with `layout`.
        unsafe { alloc::dealloc(self.ptr.as_ptr(), self.layout) };
        std::mem::forget(self);
        FREES.fetch_add(1, Relaxed);
    }

    /// Reallocates to `new_size`: the old contents must survive up to the
    /// smaller size; then the new block gets its own pattern.
    fn realloc(self, new_size: usize) -> Block {
        self.check("before realloc");
        let old = self.layout.size();
        let old_seed = self.seed();
        let p = soak_site_realloc(&self, new_size);
        let layout = Layout::from_size_align(new_size, self.layout.align()).unwrap();
        std::mem::forget(self);
        // SAFETY: the new block is `new_size` bytes; realloc kept
        // `min(old, new_size)` bytes of the old one.
        let damage = unsafe { find_damage(p.as_ptr(), old.min(new_size), old_seed) };
        if let Some((off, want, got)) = damage {
            fail(format_args!(
                "realloc {old} -> {new_size} B (align {}) to {:p} lost contents: byte {off} is \
                 {got:#04x}, was {want:#04x}",
                layout.align(),
                p.as_ptr()
            ));
        }
        Block::new(p, layout, Site::Realloc)
    }
}

impl Drop for Block {
    fn drop(&mut self) {
        // Blocks are freed by `free`, with their check; dropping one is a
        // soak bug, and freeing it unchecked would hide damage.
        fail(format_args!(
            "soak bug: block {:p} dropped without free",
            self.ptr.as_ptr()
        ));
    }
}

// ---------------------------------------------------------------------
// Random sizes and layouts.

/// splitmix64.
#[derive(Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator seeded with `seed`.
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
}

/// Sizes are drawn from a bounded set (at most a few thousand per site),
/// so that at rate 1 the profile's (stack, size) records stay far below
/// the table's capacity over an hour.
fn small_size(r: &mut Rng) -> usize {
    1 + r.below(256) as usize
}

/// 1 B..64 KiB, log-uniform, kept to 6 significant bits.
fn mixed_size(r: &mut Rng) -> usize {
    let bits = r.below(17) as u32; // 2^0 ..= 2^16
    let x = (1usize << bits) + r.below(1u64 << bits) as usize;
    let shift = bits.saturating_sub(6);
    ((x >> shift) << shift).clamp(1, 64 << 10)
}

/// 64 KiB..2 MiB, in steps of 4000 B plus a few odd bytes.
fn large_size(r: &mut Rng) -> usize {
    (64 << 10) + 4000 * r.below(508) as usize + r.below(8) as usize
}

fn layout(size: usize, align: usize) -> Layout {
    Layout::from_size_align(size, align).expect("soak layout")
}

// ---------------------------------------------------------------------
// Figures.

#[derive(Default)]
struct Figures {
    ops: AtomicU64,
    bursts: AtomicU64,
    reallocs: AtomicU64,
    cross_thread: AtomicU64,
    short_threads: AtomicU64,
    forks: AtomicU64,
    profile_writes: AtomicU64,
    http_fetches: AtomicU64,
}

fn bump(c: &AtomicU64) {
    c.fetch_add(1, Relaxed);
}

struct Ctx {
    stop: AtomicBool,
    fig: Figures,
    dir: std::path::PathBuf,
}

// ---------------------------------------------------------------------
// Workers.

/// Bytes a worker keeps live at most, and blocks.
const WORKER_BYTES: usize = 48 << 20;
const WORKER_BLOCKS: usize = 2048;

struct Held {
    blocks: Vec<Block>,
    bytes: usize,
}

impl Held {
    fn new() -> Held {
        Held {
            blocks: Vec::with_capacity(WORKER_BLOCKS),
            bytes: 0,
        }
    }

    fn take(&mut self, i: usize) -> Block {
        let b = self.blocks.swap_remove(i);
        self.bytes -= b.layout.size();
        b
    }

    fn take_random(&mut self, r: &mut Rng) -> Option<Block> {
        if self.blocks.is_empty() {
            None
        } else {
            let i = r.below(self.blocks.len() as u64) as usize;
            Some(self.take(i))
        }
    }

    /// Keeps `b`, first freeing random blocks until there is room.
    fn keep(&mut self, b: Block, r: &mut Rng) {
        while !self.blocks.is_empty()
            && (self.blocks.len() >= WORKER_BLOCKS || self.bytes + b.layout.size() > WORKER_BYTES)
        {
            self.take_random(r).unwrap().free("when making room");
        }
        self.bytes += b.layout.size();
        self.blocks.push(b);
    }

    fn free_all(&mut self, when: &str) {
        for b in self.blocks.drain(..) {
            b.free(when);
        }
        self.bytes = 0;
    }
}

/// One new block of a random kind (the mix every thread uses).
fn new_block(r: &mut Rng) -> Block {
    let k = r.below(100);
    let (site, l) = match k {
        0..=40 => (Site::Small, layout(small_size(r), 1)),
        41..=71 => (Site::Mixed, layout(mixed_size(r), 1)),
        72 => (Site::Large, layout(large_size(r), 1)),
        73..=84 => {
            let align = 1usize << r.below(17); // 1 B ..= 64 KiB
            let size = if r.below(50) == 0 {
                large_size(r)
            } else {
                mixed_size(r)
            };
            (Site::Aligned, layout(size, align))
        }
        85..=86 => {
            let align = 1usize << (17 + r.below(5)); // 128 KiB ..= 2 MiB
            let size = match r.below(6) {
                0..=2 => small_size(r),
                3..=4 => mixed_size(r),
                _ => large_size(r),
            };
            (Site::OverAligned, layout(size, align))
        }
        _ => {
            let size = if r.below(50) == 0 {
                large_size(r)
            } else {
                mixed_size(r)
            };
            (Site::Zeroed, layout(size, 1 << r.below(7)))
        }
    };
    let p = match site {
        Site::Small => soak_site_small(l),
        Site::Mixed => soak_site_mixed(l),
        Site::Large => soak_site_large(l),
        Site::Aligned => soak_site_aligned(l),
        Site::OverAligned => soak_site_overaligned(l),
        _ => soak_site_zeroed(l),
    };
    Block::new(p, l, site)
}

/// A burst, like a test that builds thousands of `String`s and drops
/// them all: `n` blocks of 1 B–3 KiB (a few size classes, so a thread's
/// cache of each overflows to the shared free lists and is refilled from
/// them, the path where the region crashed under contention), checked and
/// freed together. Returns `n`.
fn burst(r: &mut Rng, buf: &mut Vec<Block>) -> u64 {
    let n = 256 + r.below(4000) as usize;
    for _ in 0..n {
        let b = if r.below(2) == 0 {
            let l = layout(small_size(r), 1);
            Block::new(soak_site_small(l), l, Site::Small)
        } else {
            let l = layout(mixed_size(r).min(3072), 1);
            Block::new(soak_site_mixed(l), l, Site::Mixed)
        };
        buf.push(b);
    }
    for b in buf.iter() {
        b.check("in a burst");
    }
    if r.below(2) == 0 {
        buf.reverse();
    }
    for b in buf.drain(..) {
        b.free("at the end of a burst");
    }
    n as u64
}

/// Label values of the soak's workers (static: `set_labels` takes `&str`).
const TENANTS: [&str; 8] = ["t0", "t1", "t2", "t3", "t4", "t5", "t6", "t7"];
const WORKERS: [&str; 4] = ["w0", "w1", "w2", "w3"];

fn worker(id: usize, seed: u64, ctx: &Ctx, inbox: Receiver<Block>, peers: Vec<SyncSender<Block>>) {
    let mut r = Rng::new(seed ^ (id as u64).wrapping_mul(0x1234_5678_9abc_def1));
    let mut held = Held::new();
    let mut buf = Vec::with_capacity(4256);
    while !ctx.stop.load(Relaxed) {
        // Labels: most rounds under one of 64 tenants (their blocks are
        // freed on other threads, under other labels), some under none.
        let tenant = r.below(80);
        let _labels = (tenant < 64).then(|| {
            let name = TENANTS[tenant as usize % TENANTS.len()];
            memprof::set_labels(&[("tenant", name), ("worker", WORKERS[id % WORKERS.len()])])
        });
        for _ in 0..64 {
            bump(&ctx.fig.ops);
            match r.below(100) {
                0..=48 => {
                    let b = new_block(&mut r);
                    held.keep(b, &mut r);
                }
                49 => {
                    let n = burst(&mut r, &mut buf);
                    ctx.fig.ops.fetch_add(n - 1, Relaxed);
                    bump(&ctx.fig.bursts);
                }
                50..=57 => {
                    if let Some(b) = held.take_random(&mut r) {
                        let size = match r.below(40) {
                            0..=15 => small_size(&mut r),
                            16..=38 => mixed_size(&mut r),
                            _ => large_size(&mut r),
                        };
                        let b = b.realloc(size);
                        bump(&ctx.fig.reallocs);
                        held.keep(b, &mut r);
                    }
                }
                58..=61 => {
                    let n = r.below(3000) as usize;
                    let keep = r.below(n as u64 + 1) as usize;
                    let v = soak_site_vec(n, keep, r.next_u64());
                    if r.below(2) == 0 {
                        drop(v);
                    } else {
                        // Freed on another thread.
                        let p = &peers[r.below(peers.len() as u64) as usize];
                        let b = vec_block(v);
                        if let Some(b) = b {
                            send_or_free(p, b);
                        }
                    }
                }
                62..=71 => {
                    if let Some(b) = held.take_random(&mut r) {
                        let p = &peers[r.below(peers.len() as u64) as usize];
                        send_or_free(p, b);
                    }
                }
                _ => {
                    if let Some(b) = held.take_random(&mut r) {
                        b.free("on free");
                    }
                }
            }
        }
        // Blocks from other threads: check them now; keep half, free half.
        for _ in 0..256 {
            let Ok(b) = inbox.try_recv() else { break };
            b.check("on receipt from another thread");
            if r.below(2) == 0 {
                held.keep(b, &mut r);
            } else {
                b.free("on a cross-thread free");
                bump(&ctx.fig.cross_thread);
            }
        }
    }
    // Stop: drop our senders first (so no worker waits on us), free what
    // we hold, then everything still coming, until every sender is gone.
    drop(peers);
    held.free_all("at the end");
    for b in inbox.iter() {
        b.free("on a cross-thread free at the end");
        bump(&ctx.fig.cross_thread);
    }
}

/// A `Vec<u64>`'s buffer as a block (pattern written over it), so it can
/// travel and be checked like the others. `None` if it has no buffer.
fn vec_block(v: Vec<u64>) -> Option<Block> {
    let cap = v.capacity();
    if cap == 0 {
        return None;
    }
    let mut v = std::mem::ManuallyDrop::new(v);
    let ptr = NonNull::new(v.as_mut_ptr().cast::<u8>()).unwrap();
    let b = Block {
        ptr,
        layout: Layout::array::<u64>(cap).unwrap(),
        site: Site::Vec,
    };
    b.fill();
    Some(b)
}

fn send_or_free(to: &SyncSender<Block>, b: Block) {
    match to.try_send(b) {
        Ok(()) => {}
        Err(TrySendError::Full(b)) | Err(TrySendError::Disconnected(b)) => {
            b.free("on free (peer's inbox full)");
        }
    }
}

// ---------------------------------------------------------------------
// Short-lived threads.

/// Armed by short-lived threads: its destructor runs during thread exit
/// and allocates and frees at the soak's sites.
struct OnExit(u64);

impl Drop for OnExit {
    fn drop(&mut self) {
        let mut r = Rng::new(self.0);
        let bs: Vec<Block> = (0..4).map(|_| new_block(&mut r)).collect();
        for b in bs {
            b.free("in a thread-local destructor");
        }
    }
}

thread_local! {
    static ON_EXIT: RefCell<Option<OnExit>> = const { RefCell::new(None) };
}

fn short_thread(kind: u64, seed: u64, to: Option<SyncSender<Block>>) {
    let mut r = Rng::new(seed);
    ON_EXIT.with(|g| *g.borrow_mut() = Some(OnExit(r.next_u64())));
    if kind == 2 {
        burst(&mut r, &mut Vec::with_capacity(4256));
        return;
    }
    let n = 8 + r.below(64) as usize;
    let mut bs: Vec<Block> = (0..n).map(|_| new_block(&mut r)).collect();
    if r.below(4) == 0 {
        let k = r.below(bs.len() as u64) as usize;
        let b = bs.swap_remove(k).realloc(mixed_size(&mut r));
        bs.push(b);
    }
    match (kind, to) {
        (0, _) | (_, None) => {
            for b in bs {
                b.free("in a short-lived thread");
            }
        }
        (_, Some(to)) => {
            for b in bs {
                send_or_free(&to, b);
            }
        }
    }
}

fn spawner(seed: u64, ctx: &'static Ctx, peers: Vec<SyncSender<Block>>) {
    let mut r = Rng::new(seed ^ 0x0005_407e_7412_ead5);
    while !ctx.stop.load(Relaxed) {
        let batch = 1 + r.below(4);
        let hs: Vec<_> = (0..batch)
            .map(|_| {
                let kind = r.below(3);
                let s = r.next_u64();
                let to = (kind == 1).then(|| peers[r.below(peers.len() as u64) as usize].clone());
                std::thread::Builder::new()
                    .name("soak-short".into())
                    .spawn(move || short_thread(kind, s, to))
                    .unwrap_or_else(|e| fail(format_args!("spawn a short-lived thread: {e}")))
            })
            .collect();
        for h in hs {
            if h.join().is_err() {
                fail("a short-lived thread panicked");
            }
            bump(&ctx.fig.short_threads);
        }
    }
}

// ---------------------------------------------------------------------
// fork().

/// What a forked child does: rate 1, allocate and check a little, maybe
/// write a profile to `/dev/null`. Returns its exit status; prints nothing
/// (a lock on stderr may have been held by another thread at the fork).
#[inline(never)]
fn fork_child(k: u64) -> i32 {
    memprof::set_rate(1);
    let mut r = Rng::new(k);
    let mut kept: Vec<Vec<u8>> = Vec::new();
    for i in 0..200 {
        let n = mixed_size(&mut r);
        kept.push(vec![i as u8; n]);
    }
    for (i, v) in kept.iter().enumerate() {
        if v.iter().any(|&b| b != i as u8) {
            return 3;
        }
    }
    if k.is_multiple_of(4) {
        let written = std::fs::OpenOptions::new()
            .write(true)
            .open("/dev/null")
            .and_then(|f| memprof::heap_profile().write_pprof(f));
        if written.is_err() {
            return 4;
        }
    }
    drop(kept);
    0
}

fn describe_status(status: libc::c_int) -> String {
    if libc::WIFEXITED(status) {
        match libc::WEXITSTATUS(status) {
            2 => "exit status 2 (it panicked)".into(),
            3 => "exit status 3 (its blocks' contents were wrong)".into(),
            4 => "exit status 4 (writing its profile failed)".into(),
            c => format!("exit status {c}"),
        }
    } else if libc::WIFSIGNALED(status) {
        let sig = libc::WTERMSIG(status);
        // SAFETY: strsignal returns a static or thread-local string.
        let name = unsafe { std::ffi::CStr::from_ptr(libc::strsignal(sig)) };
        format!("killed by signal {sig} ({})", name.to_string_lossy())
    } else {
        format!("wait status {status:#x}")
    }
}

/// How long a forked child may take (it may symbolize a whole profile on
/// a loaded machine).
const CHILD_TIMEOUT: Duration = Duration::from_secs(60);

fn forker(every: Duration, ctx: &Ctx) {
    let mut k = 0u64;
    while !ctx.stop.load(Relaxed) {
        std::thread::sleep(every);
        k += 1;
        // SAFETY: the child runs only `fork_child` (async-signal-safe as
        // far as memprof's fork handlers make allocation so) and `_exit`s.
        let pid = unsafe { libc::fork() };
        if pid < 0 {
            fail(format_args!("fork: {}", std::io::Error::last_os_error()));
        }
        if pid == 0 {
            let status = std::panic::catch_unwind(|| fork_child(k)).unwrap_or(2);
            // SAFETY: ends the child at once.
            unsafe { libc::_exit(status) };
        }
        let start = Instant::now();
        let mut status = 0;
        loop {
            // SAFETY: `pid` is our child; `status` is a valid out-pointer.
            let r = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
            if r == pid {
                break;
            }
            if r != 0 {
                fail(format_args!(
                    "waitpid({pid}): {}",
                    std::io::Error::last_os_error()
                ));
            }
            if start.elapsed() > CHILD_TIMEOUT {
                let stacks = child_stacks(pid);
                // SAFETY: killing and reaping our own child.
                unsafe {
                    libc::kill(pid, libc::SIGKILL);
                    libc::waitpid(pid, &mut status, 0);
                }
                fail(format_args!(
                    "forked child {k} (pid {pid}) hung: still running after {CHILD_TIMEOUT:?}, killed; its stacks:\n{stacks}"
                ));
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        if !(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0) {
            fail(format_args!(
                "forked child {k} (pid {pid}) failed: {}",
                describe_status(status)
            ));
        }
        bump(&ctx.fig.forks);
    }
}

/// A hung child's stacks, for the failure message: `gdb`'s backtrace of
/// its one thread (`.ci/run` installs gdb), else what the kernel says.
fn child_stacks(pid: libc::pid_t) -> String {
    let gdb = std::process::Command::new("timeout")
        .args(["30", "gdb", "-p", &pid.to_string(), "-batch", "-nx"])
        .args(["-ex", "thread apply all bt 60"])
        .output();
    let mut out = match gdb {
        Ok(o) => String::from_utf8_lossy(&o.stdout).into_owned(),
        Err(e) => format!("(gdb could not run: {e})\n"),
    };
    for file in ["wchan", "stat"] {
        let text = std::fs::read_to_string(format!("/proc/{pid}/{file}")).unwrap_or_default();
        out.push_str(&format!("/proc/{pid}/{file}: {}\n", text.trim()));
    }
    out
}

// ---------------------------------------------------------------------
// Profile writes and HTTP fetches.

fn writer(ctx: &Ctx) {
    let path = ctx.dir.join("heap.pb.gz");
    let mut loops = 0u64;
    while !ctx.stop.load(Relaxed) {
        let p = memprof::heap_profile();
        let t = p.totals();
        if t.inuse_bytes > t.alloc_bytes {
            fail(format_args!(
                "profile totals: in use {} B > allocated {} B",
                t.inuse_bytes, t.alloc_bytes
            ));
        }
        let n = p
            .records()
            .filter(|r| r.inuse_objects() > r.alloc_objects())
            .count();
        if n != 0 {
            fail(format_args!(
                "{n} records with more objects in use than allocated"
            ));
        }
        if let Err(e) = p.write_pprof(std::io::sink()) {
            fail(format_args!("write_pprof: {e}"));
        }
        if let Err(e) = p.write_text(std::io::sink()) {
            fail(format_args!("write_text: {e}"));
        }
        // Labels, ages, the peak and the exact totals, read while the
        // workers run: sane, never a crash.
        let by_tenant: u64 = p
            .by_label("tenant")
            .iter()
            .map(|(_, t)| t.inuse_bytes)
            .sum();
        if by_tenant > t.inuse_bytes {
            fail(format_args!(
                "in use by tenant {by_tenant} B > in use {} B",
                t.inuse_bytes
            ));
        }
        let old = p.older_than(Duration::from_millis(50)).totals();
        if old.inuse_bytes > t.inuse_bytes {
            fail(format_args!(
                "older than 50 ms: {} B > in use {} B",
                old.inuse_bytes, t.inuse_bytes
            ));
        }
        let _ = p.oldest_sites(3);
        drop(p);
        let peak = memprof::peak_profile();
        if let Err(e) = peak.write_pprof(std::io::sink()) {
            fail(format_args!("peak write_pprof: {e}"));
        }
        if peak.peak_inuse_bytes().is_none() {
            fail("a peak profile without its in-use");
        }
        drop(peak);
        loops += 1;
        if loops.is_multiple_of(4) {
            memprof::reset_peak();
        }
        let _ = memprof::exact_totals();
        if let Err(e) = memprof::write_heap_profile(&path) {
            fail(format_args!("write_heap_profile({}): {e}", path.display()));
        }
        ctx.fig.profile_writes.fetch_add(3, Relaxed);
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn http_client(addr: std::net::SocketAddr, ctx: &Ctx) {
    let mut i = 0u64;
    while !ctx.stop.load(Relaxed) {
        i += 1;
        let target = match i % 8 {
            3 => "/debug/pprof/heap?debug=1",
            5 => "/debug/pprof/peak",
            7 => "/debug/pprof/allocs",
            _ => "/debug/pprof/heap",
        };
        let reply = crate::http::get(addr, target);
        if reply.status == 503 {
            std::thread::sleep(Duration::from_millis(20));
            continue;
        }
        if reply.status != 200 {
            fail(format_args!(
                "GET {target}: status {}: {}",
                reply.status,
                reply.text()
            ));
        }
        let ok = if target.ends_with("debug=1") {
            reply.body.starts_with(b"heap profile: ")
        } else {
            crate::http::is_gzip_profile(&reply.body)
        };
        if !ok {
            fail(format_args!(
                "GET {target}: not a profile ({} bytes)",
                reply.body.len()
            ));
        }
        bump(&ctx.fig.http_fetches);
        std::thread::sleep(Duration::from_millis(20));
    }
}

// ---------------------------------------------------------------------
// The driver.

fn env_parse<T: std::str::FromStr>(name: &str, default: T) -> T {
    match std::env::var(name) {
        Ok(v) => v
            .trim()
            .parse()
            .unwrap_or_else(|_| fail(format_args!("{name}={v:?} is not a valid value"))),
        Err(_) => default,
    }
}

/// Runs the soak over the global allocator the binary installed (named
/// `allocator` in the output) and exits the process: 0 with a `soak ok:`
/// line, 1 with a `soak FAILED:` line.
pub fn main(allocator: &'static str) -> ! {
    std::panic::set_hook(Box::new(|info| {
        let t = std::thread::current();
        fail(format_args!(
            "panic in thread {}: {info}",
            t.name().unwrap_or("?")
        ))
    }));
    let secs: f64 = env_parse("SOAK_SECS", 20.0);
    let threads: usize = env_parse("SOAK_THREADS", 4);
    let fork_ms: u64 = env_parse("SOAK_FORK_MS", 200);
    let seed: u64 = env_parse(
        "SOAK_SEED",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64),
    );
    if !(secs >= 0.0 && secs.is_finite()) || threads == 0 {
        fail("SOAK_SECS must be >= 0 and SOAK_THREADS >= 1");
    }
    let rate = memprof::rate();
    let _dog = crate::watchdog(secs as u64 + 300, "the soak (a hang)");
    println!(
        "soak: allocator={allocator} rate={rate} threads={threads} secs={secs} fork_ms={fork_ms} \
         seed={seed}"
    );

    let ctx: &'static Ctx = Box::leak(Box::new(Ctx {
        stop: AtomicBool::new(false),
        fig: Figures::default(),
        dir: crate::temp_dir("soak"),
    }));
    let server = memprof::http::serve("127.0.0.1:0")
        .unwrap_or_else(|e| fail(format_args!("memprof::http::serve: {e}")));
    let addr = server.local_addr();

    let (senders, receivers): (Vec<_>, Vec<_>) = (0..threads)
        .map(|_| mpsc::sync_channel::<Block>(512))
        .unzip();
    let named = |name: &str| std::thread::Builder::new().name(name.to_string());
    let mut handles = Vec::new();
    for (i, rx) in receivers.into_iter().enumerate() {
        let peers: Vec<_> = senders
            .iter()
            .enumerate()
            .filter(|&(j, _)| j != i || threads == 1)
            .map(|(_, s)| s.clone())
            .collect();
        handles.push((
            "worker",
            named(&format!("soak-worker-{i}")).spawn(move || worker(i, seed, ctx, rx, peers)),
        ));
    }
    let peers = senders.clone();
    handles.push((
        "spawner",
        named("soak-spawner").spawn(move || spawner(seed, ctx, peers)),
    ));
    drop(senders);
    if fork_ms > 0 {
        let every = Duration::from_millis(fork_ms);
        handles.push((
            "forker",
            named("soak-forker").spawn(move || forker(every, ctx)),
        ));
    }
    handles.push(("writer", named("soak-writer").spawn(move || writer(ctx))));
    handles.push((
        "http",
        named("soak-http").spawn(move || http_client(addr, ctx)),
    ));

    let start = Instant::now();
    std::thread::sleep(Duration::from_secs_f64(secs));
    ctx.stop.store(true, Relaxed);
    for (what, h) in handles {
        let h = h.unwrap_or_else(|e| fail(format_args!("spawn the {what} thread: {e}")));
        if h.join().is_err() {
            fail(format_args!("the {what} thread panicked"));
        }
    }
    let elapsed = start.elapsed().as_secs_f64();
    server.stop();

    check_profile(rate);
    let (reserved, committed) = memprof::__private::region_footprint();
    if let Err(e) = memprof::__private::validate_region() {
        fail(format_args!("the region's invariants: {e}"));
    }
    let _ = std::fs::remove_dir_all(&ctx.dir);

    let f = &ctx.fig;
    let allocs: u64 = SITE_ALLOCS.iter().map(|c| c.load(Relaxed)).sum();
    println!(
        "soak ok: allocator={allocator} rate={rate} threads={threads} secs={elapsed:.1} ops={} \
         allocs={allocs} frees={} bursts={} reallocs={} cross_thread_frees={} short_threads={} \
         forks={} \
         profile_writes={} http_fetches={} region_committed_mib={} region_reserved_gib={} \
         failures=0",
        f.ops.load(Relaxed),
        FREES.load(Relaxed),
        f.bursts.load(Relaxed),
        f.reallocs.load(Relaxed),
        f.cross_thread.load(Relaxed),
        f.short_threads.load(Relaxed),
        f.forks.load(Relaxed),
        f.profile_writes.load(Relaxed),
        f.http_fetches.load(Relaxed),
        committed >> 20,
        reserved >> 30,
    );
    // SAFETY: every thread the soak started has been joined.
    unsafe { libc::_exit(0) }
}

/// The end-of-run check of the profile against the soak's own counts.
fn check_profile(rate: usize) {
    let p = memprof::heap_profile();
    let exact = rate == 1;
    if exact && p.dropped_samples() != 0 {
        fail(format_args!(
            "{} samples dropped (a profiler table filled up): rate 1 cannot be exact",
            p.dropped_samples()
        ));
    }
    let mut bad = Vec::new();
    for site in SITES {
        let [ao, ab, io, ib] = crate::FnFilter::new(site.function()).sum(&p, None);
        let (want_o, want_b) = (
            SITE_ALLOCS[site as usize].load(Relaxed),
            SITE_BYTES[site as usize].load(Relaxed),
        );
        // Off rate 1, the bytes estimate must be within 6 SD of the truth.
        // SD <= sqrt(rate * bytes), since each object's variance
        // s^2 (1-p)/p <= s * rate (p = 1 - e^(-s/rate) >= s/rate / (1 + s/rate)
        // gives (1-p)/p <= rate/s); false failures 2e-9 a check.
        let tolerance = 6.0 * ((rate as f64) * want_b as f64).sqrt();
        let near = exact || (ab as f64 - want_b as f64).abs() <= tolerance;
        let ok = io == 0 && ib == 0 && near && (!exact || (ao == want_o && ab == want_b));
        let line = format!(
            "  {:<22} counted {want_o} allocs / {want_b} B; profile: {ao} allocs / {ab} B, \
             in use {io} / {ib} B{}",
            site.function(),
            if ok { "" } else { "  <-- wrong" }
        );
        println!("{line}");
        if !ok {
            bad.push(site.function());
        }
        if want_o == 0 {
            bad.push("(a site never allocated: the soak did not run its mix)");
        }
    }
    if !bad.is_empty() {
        fail(format_args!(
            "the profile disagrees with the soak's own counts at {} (rate {rate}; {})",
            bad.join(", "),
            if exact {
                "rate 1: allocs and bytes must be equal, in use 0"
            } else {
                "in use must be 0 once everything is freed, bytes within 6 SD"
            }
        ));
    }
}
