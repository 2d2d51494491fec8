//! `memprof::exact_totals()` over tikv-jemallocator (built with its
//! `stats` feature), wrapped with `Sampled::with_stats_from(..,
//! memprof::inner::jemalloc)`: memprof finds `_rjem_mallctl` in the
//! executable (a weak symbol: it is not in the dynamic symbol table) and
//! jemalloc's `stats.allocated` moves by what the program holds.

use tikv_jemallocator::Jemalloc;

#[global_allocator]
static A: memprof::Sampled<Jemalloc> =
    memprof::Sampled::with_stats_from(Jemalloc, memprof::inner::jemalloc);

const MIB: u64 = 1 << 20;

#[test]
fn jemalloc_reports_its_heap() {
    memprof::set_rate(0); // jemalloc serves every block
    let before = memprof::exact_totals();
    let inner = before.inner.expect("jemalloc's statistics");
    assert_eq!(inner.allocator, "jemalloc");
    assert!(inner.held_bytes.unwrap() >= inner.inuse_bytes.unwrap());
    let blocks: Vec<Vec<u8>> = (0..16384).map(|_| vec![1u8; 4096]).collect();
    let held = memprof::exact_totals();
    let grew = held.heap_inuse_bytes().unwrap() as i64 - before.heap_inuse_bytes().unwrap() as i64;
    // 4096 is a jemalloc size class: 64 MiB exactly, plus the outer Vec
    // (256 KiB) and whatever the thread caches hold.
    assert!(grew >= 64 * MIB as i64, "grew {grew}");
    assert!(grew <= 66 * MIB as i64, "grew {grew}");
    drop(blocks);
    let freed = memprof::exact_totals();
    let back = freed.heap_inuse_bytes().unwrap() as i64 - before.heap_inuse_bytes().unwrap() as i64;
    assert!(back.abs() <= 2 * MIB as i64, "after the frees {back}");
    assert!(
        memprof::inner::mimalloc().is_none(),
        "mimalloc is not linked in"
    );
    memprof::set_rate(memprof::DEFAULT_RATE);
}
