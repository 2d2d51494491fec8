//! At rate 1 every allocation is recorded exactly: known allocations from
//! known functions show exactly their alloc/in-use objects and bytes, in
//! process and in the written pprof read back by both `go tool pprof -raw`
//! and the npm `pprof-format` decoder, before and after they are freed;
//! `realloc` shows the old size freed and the new one allocated;
//! `alloc_zeroed` memory really is zero and is recorded; over-aligned
//! blocks are aligned and recorded; stacks deeper than 128 frames are cut
//! and marked as such.
//!
//! Its own binary because it needs rate 1 process-wide. Every test sets
//! rate 1 and nothing sets another rate, so the tests run in parallel; each
//! selects its samples by a function of its own and sizes of its own.

use allocator_tests::*;
use std::alloc::{Layout, System};

#[global_allocator]
static A: memprof::Sampled<System> = memprof::Sampled::new(System);

/// Reads the profile at `path` with both readers and checks, for `func`,
/// the four values of each object size in `want` (`(size, [alloc_objects,
/// alloc_space, inuse_objects, inuse_space])`), the Go heap shape at period
/// 1, and that every sample of `func` carries a `bytes` label equal to its
/// object size.
fn check_both(path: &std::path::Path, func: &str, want: &[(i64, [i64; 4])]) {
    for d in decode_both(path, &[func]) {
        d.assert_go_heap_shape(1);
        for &(size, values) in want {
            assert_eq!(
                d.sum(func, Some(size)),
                values,
                "{}: {func} size {size}",
                d.reader
            );
        }
        let mut n = 0;
        for s in d.with_fn(func) {
            let [objects, bytes, _, _] = s.heap_values();
            assert!(objects > 0, "{}: {func}: empty sample {s:?}", d.reader);
            assert_eq!(
                s.bytes,
                Some(bytes / objects),
                "{}: {func}: bytes label",
                d.reader
            );
            assert_eq!(
                bytes % objects,
                0,
                "{}: {func}: one size per sample",
                d.reader
            );
            n += 1;
        }
        assert!(n > 0, "{}: no sample of {func}", d.reader);
    }
}

#[inline(never)]
#[allow(clippy::vec_box)] // one allocation per box is the point
fn alloc_hundreds(out: &mut Vec<Box<[u8; 100]>>) {
    for i in 0..1000 {
        out.push(Box::new([i as u8; 100]));
    }
}

#[inline(never)]
fn alloc_pages(out: &mut Vec<Vec<u8>>) {
    for _ in 0..7 {
        out.push(Vec::with_capacity(4096));
    }
}

#[test]
fn live_blocks_are_exact_and_inuse_drops_to_zero_after_free() {
    memprof::set_rate(1);
    let dir = temp_dir("rate1-live");
    // The holders are allocated here, outside the measured functions.
    let mut hundreds = Vec::with_capacity(1000);
    let mut pages = Vec::with_capacity(7);
    alloc_hundreds(&mut hundreds);
    alloc_pages(&mut pages);

    let live = memprof::heap_profile();
    assert_eq!(
        record_sum(&live, "alloc_hundreds", Some(100)),
        [1000, 100_000, 1000, 100_000]
    );
    assert_eq!(
        record_sum(&live, "alloc_pages", Some(4096)),
        [7, 7 * 4096, 7, 7 * 4096]
    );
    let f = write_pprof(&live, &dir, "live.pb.gz");
    check_both(
        &f,
        "alloc_hundreds",
        &[(100, [1000, 100_000, 1000, 100_000])],
    );
    check_both(&f, "alloc_pages", &[(4096, [7, 28_672, 7, 28_672])]);

    drop(hundreds);
    drop(pages);
    let freed = memprof::heap_profile();
    assert_eq!(
        record_sum(&freed, "alloc_hundreds", Some(100)),
        [1000, 100_000, 0, 0]
    );
    let f = write_pprof(&freed, &dir, "freed.pb.gz");
    check_both(&f, "alloc_hundreds", &[(100, [1000, 100_000, 0, 0])]);
    check_both(&f, "alloc_pages", &[(4096, [7, 28_672, 0, 0])]);
    assert_eq!(
        freed.dropped_samples(),
        0,
        "no sample may be lost at rate 1"
    );
}

/// Sizes `realloc_chain` passes through: within one small size class (the
/// block stays in place), across classes, into the large-block zone, within
/// one large run (in place again), to a larger run, and back down.
const CHAIN: [usize; 7] = [1001, 1010, 3003, 70_007, 73_000, 200_003, 517];

/// Takes one block through the `CHAIN` sizes with `std::alloc::realloc`,
/// checking that its contents survive each step.
#[inline(never)]
fn realloc_chain() -> (*mut u8, Layout) {
    const SIZES: [usize; CHAIN.len()] = CHAIN;
    let mut layout = Layout::from_size_align(SIZES[0], 8).unwrap();
    // SAFETY: non-zero layout; null is checked.
    let mut p = unsafe { std::alloc::alloc(layout) };
    assert!(!p.is_null());
    // SAFETY: `p` holds `layout.size()` bytes.
    unsafe { p.write_bytes(0x5A, layout.size()) };
    for &size in &SIZES[1..] {
        // SAFETY: `p` was allocated with `layout`; `size` is non-zero.
        let q = unsafe { std::alloc::realloc(p, layout, size) };
        assert!(!q.is_null(), "realloc to {size}");
        let kept = layout.size().min(size);
        // SAFETY: realloc keeps the first `kept` bytes; the block has `size`.
        unsafe {
            assert!(
                std::slice::from_raw_parts(q, kept)
                    .iter()
                    .all(|&b| b == 0x5A),
                "realloc {} -> {size} lost data",
                layout.size()
            );
            q.write_bytes(0x5A, size);
        }
        if size == 1010 || size == 73_000 {
            // Make sure the chain exercises the profiler's in-place path
            // (re-recording a sampled block without moving it).
            assert_eq!(
                q,
                p,
                "realloc {} -> {size} was expected in place",
                layout.size()
            );
        }
        p = q;
        layout = Layout::from_size_align(size, 8).unwrap();
    }
    (p, layout)
}

#[test]
fn realloc_frees_the_old_size_and_allocates_the_new_one() {
    memprof::set_rate(1);
    let dir = temp_dir("rate1-realloc");
    let (p, layout) = realloc_chain();
    let live = memprof::heap_profile();
    let f = write_pprof(&live, &dir, "live.pb.gz");
    let mut want = Vec::new();
    for size in CHAIN {
        let (size, inuse) = (size as u64, u64::from(size == 517));
        assert_eq!(
            record_sum(&live, "realloc_chain", Some(size)),
            [1, size, inuse, inuse * size],
            "in process, size {size}"
        );
        let (size, inuse) = (size as i64, inuse as i64);
        want.push((size, [1, size, inuse, inuse * size]));
    }
    check_both(&f, "realloc_chain", &want);
    // SAFETY: allocated by `realloc_chain` with `layout`.
    unsafe { std::alloc::dealloc(p, layout) };
    let freed = memprof::heap_profile();
    assert_eq!(
        record_sum(&freed, "realloc_chain", None),
        [CHAIN.len() as u64, CHAIN.iter().sum::<usize>() as u64, 0, 0]
    );
}

/// A `Vec` grown by `reserve_exact` steps: each step is one `realloc`.
#[inline(never)]
fn grow_vec() -> Vec<u8> {
    let mut v: Vec<u8> = Vec::with_capacity(1111);
    for cap in [2222, 4444, 8888] {
        v.resize(v.capacity(), 7);
        v.reserve_exact(cap - v.len());
        assert_eq!(v.capacity(), cap);
    }
    v
}

#[test]
fn vec_growth_by_reserve_exact_is_recorded_step_by_step() {
    memprof::set_rate(1);
    let dir = temp_dir("rate1-vec");
    let v = grow_vec();
    assert!(v.iter().all(|&b| b == 7), "growth kept the contents");
    let live = memprof::heap_profile();
    let f = write_pprof(&live, &dir, "live.pb.gz");
    let mut want = Vec::new();
    for (size, inuse) in [(1111, 0), (2222, 0), (4444, 0), (8888, 1)] {
        assert_eq!(
            record_sum(&live, "grow_vec", Some(size)),
            [1, size, inuse, inuse * size],
            "in process, size {size}"
        );
        let (size, inuse) = (size as i64, inuse as i64);
        want.push((size, [1, size, inuse, inuse * size]));
    }
    check_both(&f, "grow_vec", &want);
    drop(v);
    let freed = memprof::heap_profile();
    assert_eq!(record_sum(&freed, "grow_vec", Some(8888)), [1, 8888, 0, 0]);
}

const ZEROED_SMALL: usize = 5003;
const ZEROED_LARGE: usize = 100_003;

/// Allocates and frees blocks full of 0xAB, so that the zeroed blocks
/// allocated next reuse dirty memory.
#[inline(never)]
fn dirty_blocks(n: usize) {
    let blocks: Vec<Vec<u8>> = (0..n)
        .flat_map(|_| [vec![0xAB; ZEROED_SMALL], vec![0xAB; ZEROED_LARGE]])
        .collect();
    std::hint::black_box(&blocks);
}

#[inline(never)]
fn zeroed_blocks(n: usize, out: &mut Vec<Vec<u8>>) {
    for _ in 0..n {
        out.push(vec![0u8; ZEROED_SMALL]);
        out.push(vec![0u8; ZEROED_LARGE]);
    }
}

#[test]
fn alloc_zeroed_memory_is_zero_and_recorded_exactly() {
    memprof::set_rate(1);
    let dir = temp_dir("rate1-zeroed");
    let mut out = Vec::with_capacity(128);
    for _ in 0..4 {
        out.clear();
        dirty_blocks(16);
        zeroed_blocks(16, &mut out);
        for b in &out {
            assert!(
                b.iter().all(|&x| x == 0),
                "alloc_zeroed gave non-zero memory"
            );
        }
    }
    let live = memprof::heap_profile();
    let f = write_pprof(&live, &dir, "live.pb.gz");
    // 4 rounds of 16: 48 of each size freed by `clear`, 16 live.
    let mut want = Vec::new();
    for size in [ZEROED_SMALL as u64, ZEROED_LARGE as u64] {
        assert_eq!(
            record_sum(&live, "zeroed_blocks", Some(size)),
            [64, 64 * size, 16, 16 * size],
            "size {size}"
        );
        let s = size as i64;
        want.push((s, [64, 64 * s, 16, 16 * s]));
    }
    check_both(&f, "zeroed_blocks", &want);
}

#[inline(never)]
fn shape_site() -> Vec<u8> {
    Vec::with_capacity(3131)
}

#[test]
fn profile_has_go_heap_shape_and_allocs_profile_defaults_to_alloc_space() {
    memprof::set_rate(1);
    let dir = temp_dir("rate1-shape");
    let kept = shape_site();
    let p = memprof::heap_profile();
    assert_eq!(p.rate(), 1);
    let heap = write_pprof(&p, &dir, "heap.pb.gz");
    for d in decode_both(&heap, &["shape_site"]) {
        d.assert_go_heap_shape(1);
        // Like Go's heap profile: no default, readers open on inuse_space.
        assert_eq!(d.default_sample_type, "", "{}", d.reader);
        assert!(
            d.comments.iter().any(|c| c.contains("dropped samples")),
            "{}: comments {:?}",
            d.reader,
            d.comments
        );
    }
    let allocs = dir.join("allocs.pb.gz");
    p.write_pprof_allocs(std::fs::File::create(&allocs).unwrap())
        .unwrap();
    for d in decode_both(&allocs, &["shape_site"]) {
        d.assert_go_heap_shape(1);
        assert_eq!(d.default_sample_type, "alloc_space", "{}", d.reader);
        assert_eq!(
            d.sum("shape_site", Some(3131)),
            [1, 3131, 1, 3131],
            "{}",
            d.reader
        );
    }
    // Gzip, as Go writes it.
    let bytes = std::fs::read(&heap).unwrap();
    assert_eq!(&bytes[..2], &[0x1f, 0x8b], "gzip magic");
    drop(kept);
}

/// (size, align) pairs: small classes, a class whose size is not a multiple
/// of the alignment, page and larger-than-page alignment, and large blocks.
const ALIGNED: [(usize, usize); 8] = [
    (100, 64),
    (1000, 256),
    (3000, 4096),
    (5000, 4096),
    (123, 65_536),
    (70_001, 8192),
    (200_001, 1 << 20),
    (5, 1 << 21),
];

#[inline(never)]
fn aligned_blocks() -> Vec<(*mut u8, Layout)> {
    let blocks = ALIGNED
        .iter()
        .map(|&(size, align)| {
            let l = Layout::from_size_align(size, align).unwrap();
            // SAFETY: non-zero layout; null is checked; `size` bytes written.
            unsafe {
                let p = std::alloc::alloc(l);
                assert!(!p.is_null(), "{size} B aligned to {align}");
                assert_eq!(p as usize % align, 0, "{size} B aligned to {align}");
                p.write_bytes(0xC3, size);
                (p, l)
            }
        })
        .collect();
    keep_frame();
    blocks
}

#[inline(never)]
fn aligned_reallocs(blocks: &mut [(*mut u8, Layout)]) {
    for (p, l) in blocks.iter_mut() {
        let new_size = l.size() * 3 + 7;
        // SAFETY: `p` is live with layout `l`; the new size is non-zero.
        let q = unsafe { std::alloc::realloc(*p, *l, new_size) };
        assert!(!q.is_null());
        assert_eq!(
            q as usize % l.align(),
            0,
            "realloc keeps the alignment {}",
            l.align()
        );
        // SAFETY: realloc kept the first `l.size()` bytes.
        let kept = unsafe { std::slice::from_raw_parts(q, l.size()) };
        assert!(kept.iter().all(|&b| b == 0xC3), "realloc kept the contents");
        *p = q;
        *l = Layout::from_size_align(new_size, l.align()).unwrap();
    }
}

#[test]
fn over_aligned_blocks_are_aligned_and_recorded_exactly() {
    memprof::set_rate(1);
    let mut blocks = aligned_blocks();
    aligned_reallocs(&mut blocks);
    let p = memprof::heap_profile();
    for &(size, _) in &ALIGNED {
        let (size, new) = (size as u64, size as u64 * 3 + 7);
        assert_eq!(
            record_sum(&p, "aligned_blocks", Some(size)),
            [1, size, 0, 0],
            "{size} B: allocated, then moved by realloc"
        );
        assert_eq!(
            record_sum(&p, "aligned_reallocs", Some(new)),
            [1, new, 1, new],
            "{new} B after realloc"
        );
    }
    for (ptr, l) in blocks {
        // SAFETY: live blocks with these layouts.
        unsafe { std::alloc::dealloc(ptr, l) };
    }
    let freed = memprof::heap_profile();
    assert_eq!(record_sum(&freed, "aligned_reallocs", None)[2..], [0, 0]);
}

/// Recurses `depth` frames, then allocates one block of 2468 bytes.
#[inline(never)]
fn deep(depth: usize) -> Box<[u8]> {
    if depth == 0 {
        return vec![9u8; 2468].into_boxed_slice();
    }
    let b = deep(depth - 1);
    std::hint::black_box(b)
}

#[test]
fn stacks_deeper_than_128_frames_are_cut_and_marked() {
    memprof::set_rate(1);
    let dir = temp_dir("rate1-deep");
    let shallow = deep(10);
    let very_deep = deep(300);
    let p = memprof::heap_profile();
    let mut filter = FnFilter::new("deep");
    let recs: Vec<&memprof::Record> = p
        .records()
        .filter(|r| r.object_size() == 2468 && filter.matches(r))
        .collect();
    assert_eq!(recs.len(), 2, "one record per stack");
    let truncated: Vec<bool> = recs.iter().map(|r| r.is_truncated()).collect();
    assert_eq!(
        truncated.iter().filter(|&&t| t).count(),
        1,
        "only the 300-deep stack is truncated"
    );
    for r in &recs {
        if r.is_truncated() {
            let deep_frames = r
                .frames()
                .iter()
                .filter(|f| fn_matches(&f.function, "deep"))
                .count();
            assert!(deep_frames >= 120, "kept {deep_frames} frames of `deep`");
        }
    }
    // Readers see the cut: a truncated stack ends in a marker frame.
    let f = write_pprof(&p, &dir, "deep.pb.gz");
    for d in decode_both(&f, &["deep"]) {
        let samples: Vec<&Sample> = d
            .with_fn("deep")
            .filter(|s| s.bytes == Some(2468))
            .collect();
        assert_eq!(samples.len(), 2, "{}", d.reader);
        let marked = samples
            .iter()
            .filter(|s| {
                s.funcs
                    .last()
                    .is_some_and(|root| root.iter().any(|f| f.contains("truncated")))
            })
            .count();
        assert_eq!(
            marked, 1,
            "{}: one stack ends in the truncation marker",
            d.reader
        );
        assert_eq!(
            d.sum("deep", Some(2468)),
            [2, 4936, 2, 4936],
            "{}",
            d.reader
        );
    }
    drop((shallow, very_deep));
}
