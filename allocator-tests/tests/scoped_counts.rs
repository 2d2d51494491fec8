//! Exact scoped counts (`measure`, `allocs_per_run`), in many parallel
//! tests of one binary: each test's numbers must be its own.
use memprof::{allocs_per_run, measure, Stats};
use std::alloc::{alloc, dealloc, realloc, Layout};

#[global_allocator]
static A: memprof::Sampled<std::alloc::System> = memprof::Sampled::new(std::alloc::System);

#[test]
fn realloc_sequence_matches_the_documented_example() {
    let m = measure(|| {
        let l = Layout::from_size_align(100, 8).unwrap();
        // SAFETY: valid layouts; the block is freed with its final size.
        unsafe {
            let p = alloc(l);
            let p = realloc(p, l, 1000);
            let p = realloc(p, Layout::from_size_align(1000, 8).unwrap(), 50);
            dealloc(p, Layout::from_size_align(50, 8).unwrap());
        }
    });
    let want = Stats {
        allocs: 1,
        reallocs: 2,
        deallocs: 1,
        bytes_allocated: 1000,
        bytes_freed: 1000,
        live_blocks: 0,
        live_bytes: 0,
        peak_bytes: 1000,
        foreign_frees: 0,
    };
    assert_eq!(m.stats, want);
}

#[test]
fn vec_growth_numbers() {
    for (pushes, allocs, reallocs, bytes) in [
        (1usize, 1u64, 0u64, 32u64),
        (5, 1, 1, 64),
        (100, 1, 5, 1024),
    ] {
        let m = measure(|| {
            let mut v: Vec<u64> = Vec::new();
            for i in 0..pushes {
                v.push(i as u64);
            }
            v
        });
        assert_eq!(
            (
                m.stats.allocs,
                m.stats.reallocs,
                m.stats.bytes_allocated,
                m.stats.live_bytes
            ),
            (allocs, reallocs, bytes, bytes),
            "{pushes} pushes"
        );
    }
}

#[test]
fn block_freed_on_another_thread_is_charged_back() {
    let m = measure(|| {
        let b = Box::new([0u8; 300]);
        std::thread::spawn(move || drop(b)).join().unwrap();
    });
    let site: Vec<_> = m
        .profile()
        .records()
        .filter(|r| r.object_size() == 300)
        .collect();
    assert_eq!(site.len(), 1);
    assert_eq!((site[0].alloc_objects(), site[0].inuse_objects()), (1, 0));
    assert_eq!(m.stats.live_blocks, 0, "{}", m.stats);
}

#[test]
fn block_from_before_the_scope_does_not_change_the_numbers() {
    let before = vec![1u8; 4000];
    let m = measure(move || drop(before));
    assert_eq!(
        (m.stats.allocs, m.stats.deallocs, m.stats.bytes_freed),
        (0, 0, 0),
        "{}",
        m.stats
    );
}

#[test]
fn nested_scopes_count_inner_work_in_both() {
    let outer = measure(|| {
        let inner = measure(|| vec![0u8; 777]);
        assert_eq!(inner.stats.allocs, 1);
        drop(inner); // frees the 777 B inside the outer scope only
        std::hint::black_box(vec![0u8; 55]);
    });
    assert_eq!(outer.stats.allocs, 2, "{}", outer.stats);
    assert_eq!(outer.stats.live_blocks, 0, "{}", outer.stats);
    assert_eq!(outer.stats.bytes_allocated, 777 + 55);
}

#[test]
fn allocs_per_run_counts_known_work() {
    let r = allocs_per_run(50, || {
        let v: Vec<String> = (0..3).map(|i| i.to_string()).collect();
        std::hint::black_box(v);
    });
    assert_eq!(r.avg_allocs(), 4.0, "{r}"); // the Vec and three Strings
    assert_eq!((r.min_allocs(), r.max_allocs()), (4, 4));
    assert_eq!(r.retained_bytes_per_run(), 0.0);
}

#[test]
fn allocs_per_run_shows_a_growing_cache() {
    let mut cache: Vec<Box<[u8; 64]>> = Vec::with_capacity(1000);
    let r = allocs_per_run(100, || cache.push(Box::new([0; 64])));
    assert_eq!(r.avg_allocs(), 1.0, "{r}");
    assert_eq!(r.retained_bytes_per_run(), 64.0, "{r}");
    assert!(format!("{r}").contains("allocs/run"));
}

/// 64 tests churning in parallel threads, each checking its exact numbers.
macro_rules! parallel_exact {
    ($($name:ident = $n:expr),*) => {$(
        #[test]
        fn $name() {
            let m = measure(|| {
                let mut kept = Vec::with_capacity($n);
                for i in 0..$n * 10 {
                    let b = vec![i as u8; 24 + $n];
                    if i % 10 == 0 {
                        kept.push(b);
                    }
                }
                kept
            });
            assert_eq!(m.stats.allocs, 1 + $n * 10, "{}", m.stats);
            assert_eq!(m.stats.deallocs, $n * 9, "{}", m.stats);
            assert_eq!(m.stats.live_blocks, 1 + $n, "{}", m.stats);
            // The `kept` vector (n × 24-byte `Vec` headers) and n kept buffers.
            assert_eq!(m.stats.live_bytes, ($n * 24 + $n * (24 + $n)) as u64, "{}", m.stats);
        }
    )*};
}

parallel_exact!(
    p01 = 1,
    p02 = 2,
    p03 = 3,
    p04 = 4,
    p05 = 5,
    p06 = 6,
    p07 = 7,
    p08 = 8,
    p09 = 9,
    p10 = 10,
    p11 = 11,
    p12 = 12,
    p13 = 13,
    p14 = 14,
    p15 = 15,
    p16 = 16,
    p17 = 17,
    p18 = 18,
    p19 = 19,
    p20 = 20,
    p21 = 21,
    p22 = 22,
    p23 = 23,
    p24 = 24,
    p25 = 25,
    p26 = 26,
    p27 = 27,
    p28 = 28,
    p29 = 29,
    p30 = 30,
    p31 = 31,
    p32 = 32,
    p33 = 33,
    p34 = 34,
    p35 = 35,
    p36 = 36,
    p37 = 37,
    p38 = 38,
    p39 = 39,
    p40 = 40,
    p41 = 41,
    p42 = 42,
    p43 = 43,
    p44 = 44,
    p45 = 45,
    p46 = 46,
    p47 = 47,
    p48 = 48,
    p49 = 49,
    p50 = 50,
    p51 = 51,
    p52 = 52,
    p53 = 53,
    p54 = 54,
    p55 = 55,
    p56 = 56,
    p57 = 57,
    p58 = 58,
    p59 = 59,
    p60 = 60,
    p61 = 61,
    p62 = 62,
    p63 = 63,
    p64 = 64
);
