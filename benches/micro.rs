//! Criterion micro-benchmarks of memprof's paths, with `Sampled<System>`
//! installed as this binary's global allocator and the rate switched per
//! group with `memprof::set_rate`:
//!
//! - `alloc_free`: one `alloc` + `dealloc` pair through the global
//!   allocator per size (16 B .. 1 MiB) with the profiler off, at the
//!   default rate and at rate 1, next to `System.alloc`/`dealloc` called
//!   directly (the baseline, in the same binary).
//! - `sampled_at_depth`: the sample slow path (rate 1, 64 B) with 5, 40
//!   and 128 frames between the benchmark loop and `main`, with the
//!   frame-pointer walk and with the cached DWARF unwinder, next to the
//!   same pair with the profiler off; the difference is what a sample
//!   costs at that depth (capture, hashing, interning, counting). Minus
//!   `stack_capture` at the same depth, it prices interning per frame.
//! - `profile_write`: `heap_profile()` + `write_pprof` into `io::sink()`
//!   with 10,000 distinct stacks live. The first write, which symbolizes
//!   every address, is timed once with `Instant` before criterion starts
//!   and printed (`profile_write: first write ...`); criterion times the
//!   repeats.
//! - `stack_capture` (per unwinder, depths 5/40/128): one stack captured
//!   by the frame-pointer walk, by the cached DWARF unwinder (warm cache)
//!   and by libgcc, with the frames each one captured printed first; then
//!   `dwarf cold`: the DWARF unwinder with its rule cache emptied before
//!   each capture (outside the timing), the first-use cost. Prints the
//!   rule cache's use after the warm runs (`unwind_cache_usage`).
//!
//! ```sh
//! cargo bench -p memprof-benches --bench micro                    # everything, ~4 minutes
//! cargo bench -p memprof-benches --bench micro -- alloc_free/     # one group (criterion filter)
//! cargo bench -p memprof-benches --bench micro -- stack_capture --warm-up-time 1 --measurement-time 2
//! ```
//!
//! Never a test: nothing here fails because the machine is slow.

use criterion::{BenchmarkId, Criterion};
use std::alloc::{alloc, dealloc, handle_alloc_error, GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::io;
use std::time::{Duration, Instant};

#[global_allocator]
static A: memprof::Sampled<System> = memprof::Sampled::new(System);

const SIZES: [usize; 7] = [16, 64, 256, 1024, 4096, 65536, 1 << 20];

const RATES: [(&str, usize); 3] = [
    ("off", 0),
    ("default", memprof::DEFAULT_RATE),
    ("rate 1", 1),
];

/// One allocation and its free through the global allocator (`Sampled`).
#[inline(always)]
fn global_pair(layout: Layout) {
    // SAFETY: `layout` has a non-zero size; the block is freed at once with
    // the layout it was allocated with.
    unsafe {
        let p = alloc(black_box(layout));
        if p.is_null() {
            handle_alloc_error(layout);
        }
        dealloc(black_box(p), layout);
    }
}

fn alloc_free(c: &mut Criterion) {
    let mut g = c.benchmark_group("alloc_free");
    g.warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    for size in SIZES {
        let layout = Layout::from_size_align(size, 8).unwrap();
        g.bench_with_input(BenchmarkId::new("System direct", size), &layout, |b, &l| {
            memprof::set_rate(0);
            b.iter(|| {
                // SAFETY: as in `global_pair`, on `System` directly.
                unsafe {
                    let p = System.alloc(black_box(l));
                    if p.is_null() {
                        handle_alloc_error(l);
                    }
                    System.dealloc(black_box(p), l);
                }
            });
        });
        for (name, rate) in RATES {
            g.bench_with_input(BenchmarkId::new(name, size), &layout, |b, &l| {
                memprof::set_rate(rate);
                b.iter(|| global_pair(l));
                memprof::set_rate(0);
            });
        }
    }
    g.finish();
}

/// Runs `f` `frames` frames further down the stack (`frames >= 1`). The
/// depth goes through `black_box` and is used after the call, so every
/// level is a real frame (no inlining, loop or tail call).
#[inline(never)]
fn nested(frames: usize, f: &mut dyn FnMut()) {
    if frames <= 1 {
        f();
    } else {
        nested(black_box(frames - 1), f);
    }
    black_box(frames);
}

fn sampled_at_depth(c: &mut Criterion) {
    let mut g = c.benchmark_group("sampled_at_depth");
    g.warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    let layout = Layout::from_size_align(64, 8).unwrap();
    let default = memprof::unwinder();
    for depth in [5usize, 40, 128] {
        for (name, rate, unwinder) in [
            ("off", 0, default),
            ("rate 1 fp", 1, memprof::Unwinder::FramePointers),
            ("rate 1 dwarf", 1, memprof::Unwinder::Dwarf),
        ] {
            g.bench_with_input(BenchmarkId::new(name, depth), &depth, |b, &d| {
                // Descend once, then let criterion loop down there: the
                // descent is not timed, every timed allocation is `d`
                // frames deeper than the benchmark's caller.
                nested(d, &mut || {
                    memprof::set_unwinder(unwinder);
                    memprof::set_rate(rate);
                    b.iter(|| global_pair(layout));
                    memprof::set_rate(0);
                    memprof::set_unwinder(default);
                });
            });
        }
    }
    g.finish();
}

/// Distinct stacks for the profile: `pad` frames of one function, then 14
/// levels that each go through `left` or `right` by one bit of `bits`.
const LEVELS: u32 = 14;
const STACKS: u32 = 10_000;
const OBJECT: usize = 64;

#[inline(never)]
fn pad(n: u32, bits: u32, keep: &mut Vec<Vec<u8>>) {
    if n == 0 {
        level(0, bits, keep);
    } else {
        pad(black_box(n - 1), bits, keep);
    }
    black_box(n);
}

#[inline(never)]
fn level(l: u32, bits: u32, keep: &mut Vec<Vec<u8>>) {
    if l == LEVELS {
        keep.push(black_box(Vec::with_capacity(OBJECT)));
    } else if (bits >> l) & 1 == 0 {
        left(l + 1, bits, keep);
    } else {
        right(l + 1, bits, keep);
    }
    black_box(l);
}

#[inline(never)]
fn left(l: u32, bits: u32, keep: &mut Vec<Vec<u8>>) {
    level(black_box(l), bits, keep);
    black_box(0x1eu8);
}

#[inline(never)]
fn right(l: u32, bits: u32, keep: &mut Vec<Vec<u8>>) {
    level(black_box(l), bits, keep);
    black_box(0x716u64);
}

/// Allocates one live 64-byte object from each of 10,000 distinct stacks
/// at rate 1 (so each is recorded), then turns sampling off.
fn make_stacks() -> Vec<Vec<u8>> {
    memprof::set_rate(0);
    let mut keep = Vec::with_capacity(STACKS as usize);
    memprof::set_rate(1);
    for i in 0..STACKS {
        pad(i % 5, i, &mut keep);
    }
    memprof::set_rate(0);
    keep
}

/// One snapshot + pprof write: (snapshot time, total time, records).
fn write_once() -> (Duration, Duration, usize) {
    let t = Instant::now();
    let profile = memprof::heap_profile();
    let snap = t.elapsed();
    profile.write_pprof(io::sink()).expect("write to sink");
    let total = t.elapsed();
    let records = profile.records().len();
    (snap, total, records)
}

fn profile_write(c: &mut Criterion) {
    let tables_before = memprof::__private::table_bytes();
    let keep = make_stacks();
    let profile = memprof::heap_profile();
    let mut ours: Vec<&[usize]> = profile
        .records()
        .filter(|r| r.object_size() == OBJECT as u64 && r.inuse_objects() == 1)
        .map(|r| r.stack())
        .collect();
    ours.sort_unstable();
    ours.dedup();
    let mut addresses: Vec<usize> = ours.iter().flat_map(|s| s.iter().copied()).collect();
    addresses.sort_unstable();
    addresses.dedup();
    let (distinct, unwinder) = (ours.len(), profile.unwinder());
    drop(profile);
    let (snap, first, records) = write_once();
    let (snap2, second, _) = write_once();
    println!(
        "profile_write: {records} records, {distinct} distinct stacks made here \
         ({} distinct addresses, unwinder {unwinder}); \
         first write {:.1} ms (snapshot {:.2} ms, symbolization + encoding {:.1} ms); \
         second write {:.1} ms (snapshot {:.2} ms)",
        addresses.len(),
        ms(first),
        ms(snap),
        ms(first - snap),
        ms(second),
        ms(snap2),
    );
    let (reserved, committed) = memprof::__private::region_footprint();
    println!(
        "memory: profiler tables {:.2} MiB mapped ({:.2} MiB before the 10,000 stacks), \
         sampled-block region {:.2} MiB committed ({} GiB reserved), with the stacks' \
         objects live",
        mib(memprof::__private::table_bytes()),
        mib(tables_before),
        mib(committed),
        reserved >> 30,
    );
    let mut g = c.benchmark_group("profile_write");
    g.sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(10));
    g.bench_function("snapshot 10k stacks", |b| {
        b.iter(|| black_box(memprof::heap_profile()))
    });
    g.bench_function("snapshot + write_pprof 10k stacks (repeat)", |b| {
        b.iter(|| {
            memprof::heap_profile()
                .write_pprof(io::sink())
                .expect("write to sink")
        })
    });
    g.finish();
    drop(keep);
}

fn mib(bytes: usize) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

// ---------------------------------------------------------------------------
// stack_capture: ns per captured stack, per unwinder, at depths 5/40/128,
// through `memprof::__private::capture_stack_with` (what the sampler runs).
// The depth is below the benchmark's own frames (criterion adds ~10 more).
// ---------------------------------------------------------------------------

const UNWINDERS: [(&str, memprof::Unwinder); 3] = [
    ("fp", memprof::Unwinder::FramePointers),
    ("dwarf", memprof::Unwinder::Dwarf),
    ("libgcc", memprof::Unwinder::Libgcc),
];

const CAPTURE_DEPTHS: [usize; 3] = [5, 40, 128];

/// Frames each unwinder captures at each depth, printed once so the times
/// can be read per frame (and a short walk shows).
fn print_capture_sizes() {
    for depth in CAPTURE_DEPTHS {
        nested(depth, &mut || {
            let sizes: Vec<String> = UNWINDERS
                .iter()
                .map(|&(name, unwinder)| {
                    let mut buf = [0usize; 256];
                    let (n, truncated) = memprof::__private::capture_stack_with(unwinder, &mut buf);
                    let cut = if truncated { " (truncated)" } else { "" };
                    format!("{name} {n}{cut}")
                })
                .collect();
            println!(
                "stack_capture: depth {depth}: frames captured: {}",
                sizes.join(", ")
            );
        });
    }
}

fn stack_capture(c: &mut Criterion) {
    print_capture_sizes();
    let mut g = c.benchmark_group("stack_capture");
    g.warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(2));
    for depth in CAPTURE_DEPTHS {
        for (name, unwinder) in UNWINDERS {
            g.bench_with_input(BenchmarkId::new(name, depth), &depth, |b, &d| {
                nested(d, &mut || {
                    let mut buf = [0usize; 256];
                    b.iter(|| {
                        black_box(memprof::__private::capture_stack_with(unwinder, &mut buf))
                    });
                });
            });
        }
    }
    // What the warm DWARF captures above left in the rule cache.
    let (rules, bytes) = memprof::__private::unwind_cache_usage();
    println!(
        "stack_capture: DWARF unwind cache after the warm runs: {rules} rules cached, \
         {:.1} KiB cache",
        bytes as f64 / 1024.0
    );
    // Cold: the rule cache is emptied before each capture (outside the
    // timing), so every return address is looked up in .eh_frame again:
    // the first-use cost. `nested` repeats one return address, so this is
    // the cost of the stack's distinct addresses (criterion's and main's
    // frames, and nested's one), not of every frame.
    for depth in CAPTURE_DEPTHS {
        g.bench_with_input(BenchmarkId::new("dwarf cold", depth), &depth, |b, &d| {
            nested(d, &mut || {
                let mut buf = [0usize; 256];
                b.iter_custom(|iters| {
                    let mut total = Duration::ZERO;
                    for _ in 0..iters {
                        memprof::__private::flush_unwind_cache();
                        let t = Instant::now();
                        black_box(memprof::__private::capture_stack_with(
                            memprof::Unwinder::Dwarf,
                            &mut buf,
                        ));
                        total += t.elapsed();
                    }
                    total
                });
            });
        });
    }
    g.finish();
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    // The profile group first: its 10,000 stacks are then the profile's,
    // not mixed with the other groups' samples, and its first write is
    // the process's first symbolization.
    profile_write(&mut c);
    alloc_free(&mut c);
    sampled_at_depth(&mut c);
    stack_capture(&mut c);
    c.final_summary();
}
