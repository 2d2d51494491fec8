//! At rate 1 every allocation is recorded exactly. One `#[test]`: the rate
#![allow(clippy::vec_box)] // boxes are the point: one allocation each
//! is process-wide. Checked through two independent readers.
use allocator_tests::*;
use std::alloc::{Layout, System};

#[global_allocator]
static A: memprof::Sampled<System> = memprof::Sampled::new(System);

#[inline(never)]
fn alloc_hundreds() -> Vec<Box<[u8; 100]>> {
    (0..1000).map(|i| Box::new([i as u8; 100])).collect()
}

#[inline(never)]
fn alloc_pages() -> Vec<Vec<u8>> {
    (0..7).map(|_| Vec::with_capacity(4096)).collect()
}

#[inline(never)]
fn grow_by_realloc() -> *mut u8 {
    // SAFETY: non-zero layouts; the block is freed by the test.
    unsafe {
        let p = std::alloc::alloc(Layout::from_size_align(24, 8).unwrap());
        std::alloc::realloc(p, Layout::from_size_align(24, 8).unwrap(), 3000)
    }
}

#[inline(never)]
fn zeroed_block() -> Vec<u8> {
    vec![0u8; 5000]
}

fn check(d: &Decoded, reader: &str, live: bool) {
    assert_eq!(d.period, 1, "{reader}: period");
    assert_eq!(
        d.sample_types,
        [
            "alloc_objects",
            "alloc_space",
            "inuse_objects",
            "inuse_space"
        ],
        "{reader}"
    );
    let inuse = |n: i64, b: i64| if live { [n, n * b] } else { [0, 0] };
    let h = d.sum("alloc_hundreds", Some(100));
    assert_eq!(
        h,
        [1000, 100_000, inuse(1000, 100)[0], inuse(1000, 100)[1]],
        "{reader}: alloc_hundreds"
    );
    let p = d.sum("alloc_pages", Some(4096));
    assert_eq!(
        p,
        [7, 7 * 4096, inuse(7, 4096)[0], inuse(7, 4096)[1]],
        "{reader}: alloc_pages"
    );
    // realloc 24 -> 3000: the 24-byte block was freed, the 3000-byte one lives.
    assert_eq!(
        d.sum("grow_by_realloc", Some(24)),
        [1, 24, 0, 0],
        "{reader}: realloc old"
    );
    let g = d.sum("grow_by_realloc", Some(3000));
    assert_eq!(
        g,
        [1, 3000, inuse(1, 3000)[0], inuse(1, 3000)[1]],
        "{reader}: realloc new"
    );
    let z = d.sum("zeroed_block", Some(5000));
    assert_eq!(
        z,
        [1, 5000, inuse(1, 5000)[0], inuse(1, 5000)[1]],
        "{reader}: alloc_zeroed"
    );
    assert!(d
        .samples
        .iter()
        .filter(|s| s.has_fn("alloc_hundreds"))
        .all(|s| s.bytes.is_some()));
}

#[test]
fn every_allocation_is_recorded_exactly_before_and_after_free() {
    memprof::set_rate(1);
    let dir = temp_dir("rate1");
    let hundreds = alloc_hundreds();
    let pages = alloc_pages();
    let grown = grow_by_realloc();
    let zeroed = zeroed_block();
    assert!(zeroed.iter().all(|&b| b == 0));
    let live = memprof::heap_profile();
    assert_eq!(
        record_sum(&live, "alloc_hundreds", Some(100)),
        [1000, 100_000, 1000, 100_000]
    );
    let f = write_pprof(&live, &dir, "live.pb.gz");
    check(&go_raw(&f), "go tool pprof", true);
    check(&pprof_format(&f), "pprof-format", true);

    drop((hundreds, pages, zeroed));
    // SAFETY: `grown` came from realloc with this layout.
    unsafe { std::alloc::dealloc(grown, Layout::from_size_align(3000, 8).unwrap()) };
    let freed = memprof::heap_profile();
    let f = write_pprof(&freed, &dir, "freed.pb.gz");
    check(&go_raw(&f), "go tool pprof", false);
    check(&pprof_format(&f), "pprof-format", false);
    // Go's shape: profile comments carry the dropped-sample count.
    assert_eq!(freed.dropped_samples(), 0);
}
