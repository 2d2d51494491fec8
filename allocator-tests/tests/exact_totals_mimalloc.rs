//! `memprof::exact_totals()` over mimalloc (`mimalloc-pprof`, its profiler
//! off), wrapped with `Sampled::with_stats_from(.., memprof::inner::mimalloc)`:
//! memprof finds `mi_process_info` in the executable; mimalloc reports
//! its committed memory (it keeps no in-use count in release builds), so
//! the heap has no exact in-use figure and says so.

use mimalloc_pprof::MiMalloc;

#[global_allocator]
static A: memprof::Sampled<MiMalloc> =
    memprof::Sampled::with_stats_from(MiMalloc, memprof::inner::mimalloc);

const MIB: u64 = 1 << 20;

#[test]
fn mimalloc_reports_its_committed_memory() {
    memprof::set_rate(0);
    let before = memprof::exact_totals();
    let inner = before.inner.expect("mimalloc's statistics");
    assert_eq!(inner.allocator, "mimalloc");
    assert_eq!(inner.inuse_bytes, None);
    assert_eq!(before.heap_inuse_bytes(), None);
    let blocks: Vec<Vec<u8>> = (0..16384).map(|_| vec![1u8; 4096]).collect();
    let held = memprof::exact_totals();
    let grew = held.inner.unwrap().held_bytes.unwrap() - inner.held_bytes.unwrap();
    assert!(grew >= 60 * MIB, "committed grew by {grew}");
    assert!(held.to_string().contains("mimalloc holds "), "{held}");
    assert!(
        memprof::inner::jemalloc().is_none(),
        "jemalloc is not linked in"
    );
    drop(blocks);
    memprof::set_rate(memprof::DEFAULT_RATE);
}
