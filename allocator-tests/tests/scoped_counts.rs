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
            // `black_box`: otherwise LLVM may remove the whole sequence
            // (it does in today's release builds).
            let p = std::hint::black_box(alloc(l));
            let p = std::hint::black_box(realloc(p, l, 1000));
            let p = std::hint::black_box(realloc(p, Layout::from_size_align(1000, 8).unwrap(), 50));
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

// ---- Nested scopes: ownership is per scope --------------------------------
//
// A block is owned by scope S when its scope (the one active when it was
// allocated) is S or a descendant of S. Each scope of a nest accounts a
// realloc, a free and a foreign free by its own ownership.

/// Stats with the given fields, the rest 0.
#[allow(clippy::too_many_arguments)]
fn stats(
    allocs: u64,
    reallocs: u64,
    deallocs: u64,
    bytes_allocated: u64,
    bytes_freed: u64,
    live: (u64, u64),
    peak_bytes: u64,
    foreign_frees: u64,
) -> Stats {
    Stats {
        allocs,
        reallocs,
        deallocs,
        bytes_allocated,
        bytes_freed,
        live_blocks: live.0,
        live_bytes: live.1,
        peak_bytes,
        foreign_frees,
    }
}

#[test]
fn realloc_in_an_inner_scope_of_a_block_the_outer_owns_is_no_leak() {
    // The reported case: a false leak.
    memprof::assert_no_leaks(|| {
        let mut v = vec![0u8; 8];
        let _ = measure(|| v.reserve(1000));
        drop(v);
    });
    let mut inner = Stats::default();
    let outer = measure(|| {
        let mut v = vec![0u8; 8];
        inner = measure(|| v.reserve(1000)).stats; // 8 -> 1008 bytes
        drop(v);
    });
    // The inner scope does not own the old block: a foreign free, and the
    // new 1008-byte block is its own.
    assert_eq!(inner, stats(0, 1, 0, 1008, 0, (1, 1008), 1008, 1), "inner");
    // The outer scope owns it before and after: growth of 1000 bytes.
    assert_eq!(
        outer.stats,
        stats(1, 1, 1, 1008, 1008, (0, 0), 1008, 0),
        "outer"
    );
}

#[test]
fn realloc_in_the_outer_scope_of_a_block_an_ended_inner_scope_owns() {
    let mut inner = Stats::default();
    let outer = measure(|| {
        let m = measure(|| vec![0u8; 8]);
        inner = m.stats;
        let mut v = m.value;
        v.reserve(1000);
        drop(v);
    });
    assert_eq!(inner, stats(1, 0, 0, 8, 0, (1, 8), 8, 0), "inner");
    assert_eq!(
        outer.stats,
        stats(1, 1, 1, 1008, 1008, (0, 0), 1008, 0),
        "outer"
    );
}

#[test]
fn free_in_an_inner_scope_of_a_block_the_outer_owns() {
    let mut inner = Stats::default();
    let outer = measure(|| {
        let v = vec![0u8; 8];
        inner = measure(|| drop(v)).stats;
    });
    assert_eq!(inner, stats(0, 0, 0, 0, 0, (0, 0), 0, 1), "inner");
    assert_eq!(outer.stats, stats(1, 0, 1, 8, 8, (0, 0), 8, 0), "outer");
}

#[test]
fn three_levels_each_scope_by_its_own_ownership() {
    let (mut b, mut c) = (Stats::default(), Stats::default());
    let a = measure(|| {
        let mut x = vec![0u8; 8]; // owned by a
        b = measure(|| {
            let mut y = vec![0u8; 16]; // owned by b (and a)
            c = measure(|| {
                x.reserve(100); // 8 -> 108: a owns it, b and c do not
                y.reserve(100); // 16 -> 116: a and b own it, c does not
            })
            .stats;
            drop(y);
        })
        .stats;
        drop(x);
    });
    assert_eq!(c, stats(0, 2, 0, 224, 0, (2, 224), 224, 2), "c");
    // b: y (16), x's realloc as a foreign block (+108, live), y's growth
    // (+100); then y (now c's, so b's) freed; x freed after b ended.
    assert_eq!(b, stats(1, 2, 1, 224, 116, (1, 108), 224, 1), "b");
    assert_eq!(a.stats, stats(2, 2, 2, 224, 224, (0, 0), 224, 0), "a");
}

/// A thread started before any scope, that does one raw allocator
/// operation at a time for the test thread, inside a scope it is told
/// (attached or its own), without allocating on the test thread's side.
mod worker {
    use super::*;
    use memprof::ScopeHandle;
    use std::sync::atomic::{AtomicU8, Ordering};
    use std::sync::Mutex;

    #[derive(Clone, Copy)]
    pub enum Op {
        Free(usize, Layout),
        /// Realloc to a new size; the worker returns the new address.
        Realloc(usize, Layout, usize),
    }

    #[derive(Clone, Copy)]
    pub enum In {
        /// Attached to the test thread's scope.
        Attached(ScopeHandle),
        /// No scope at all.
        Unscoped,
        /// In a `measure` of its own; its Stats come back.
        Own,
    }

    #[derive(Default)]
    pub struct Worker {
        state: AtomicU8, // 0 idle, 1 job posted, 2 done, 3 stop
        job: Mutex<Option<(In, Op)>>,
        out: Mutex<Option<(usize, Option<Stats>)>>,
    }

    fn apply(op: Op) -> usize {
        // SAFETY: the test hands over live blocks with the layout they
        // were allocated with.
        unsafe {
            match op {
                Op::Free(p, l) => {
                    dealloc(p as *mut u8, l);
                    0
                }
                Op::Realloc(p, l, n) => realloc(p as *mut u8, l, n) as usize,
            }
        }
    }

    impl Worker {
        pub fn serve(&self) {
            loop {
                match self.state.load(Ordering::Acquire) {
                    1 => {
                        let (scope, op) = self.job.lock().unwrap().take().unwrap();
                        let out = match scope {
                            In::Attached(h) => (h.attach(|| apply(op)), None),
                            In::Unscoped => (apply(op), None),
                            In::Own => {
                                let m = measure(|| apply(op));
                                (m.value, Some(m.stats))
                            }
                        };
                        *self.out.lock().unwrap() = Some(out);
                        self.state.store(2, Ordering::Release);
                    }
                    3 => return,
                    _ => std::thread::yield_now(),
                }
            }
        }

        /// Runs `op` on the worker thread and waits for it.
        pub fn run(&self, scope: In, op: Op) -> (usize, Option<Stats>) {
            *self.job.lock().unwrap() = Some((scope, op));
            self.state.store(1, Ordering::Release);
            while self.state.load(Ordering::Acquire) != 2 {
                std::thread::yield_now();
            }
            self.state.store(0, Ordering::Release);
            self.out.lock().unwrap().take().unwrap()
        }

        pub fn stop(&self) {
            self.state.store(3, Ordering::Release);
        }
    }

    /// Runs `f` with a worker thread.
    pub fn with(f: impl FnOnce(&Worker)) {
        let w = Worker::default();
        struct Stop<'a>(&'a Worker);
        impl Drop for Stop<'_> {
            fn drop(&mut self) {
                self.0.stop(); // also when `f` panics
            }
        }
        std::thread::scope(|s| {
            s.spawn(|| w.serve());
            let _stop = Stop(&w);
            f(&w);
        });
    }
}

fn raw_alloc(size: usize) -> (usize, Layout) {
    let l = Layout::from_size_align(size, 8).unwrap();
    // SAFETY: non-zero size.
    let p = unsafe { alloc(l) };
    assert!(!p.is_null());
    (p as usize, l)
}

fn raw_free(p: usize, l: Layout) {
    // SAFETY: `p` is live with layout `l`.
    unsafe { dealloc(p as *mut u8, l) }
}

#[test]
fn cross_thread_free_in_an_attached_inner_scope_of_a_block_the_outer_owns() {
    use worker::{In, Op};
    worker::with(|w| {
        let mut inner = Stats::default();
        let outer = measure(|| {
            let (p, l) = raw_alloc(40);
            inner = measure(|| {
                let h = memprof::current_scope().unwrap();
                w.run(In::Attached(h), Op::Free(p, l));
            })
            .stats;
        });
        assert_eq!(inner, stats(0, 0, 0, 0, 0, (0, 0), 0, 1), "inner");
        assert_eq!(outer.stats, stats(1, 0, 1, 40, 40, (0, 0), 40, 0), "outer");
    });
}

#[test]
fn cross_thread_realloc_in_an_attached_inner_scope_of_a_block_the_outer_owns() {
    use worker::{In, Op};
    worker::with(|w| {
        let mut inner = Stats::default();
        let outer = measure(|| {
            let (p, l) = raw_alloc(40);
            let mut q = 0;
            inner = measure(|| {
                let h = memprof::current_scope().unwrap();
                q = w.run(In::Attached(h), Op::Realloc(p, l, 400)).0;
            })
            .stats;
            raw_free(q, Layout::from_size_align(400, 8).unwrap());
        });
        assert_eq!(inner, stats(0, 1, 0, 400, 0, (1, 400), 400, 1), "inner");
        assert_eq!(
            outer.stats,
            stats(1, 1, 1, 400, 400, (0, 0), 400, 0),
            "outer"
        );
    });
}

#[test]
fn unscoped_thread_frees_a_block_of_an_active_inner_scope() {
    use worker::{In, Op};
    worker::with(|w| {
        let mut inner = Stats::default();
        let outer = measure(|| {
            inner = measure(|| {
                let (p, l) = raw_alloc(40);
                w.run(In::Unscoped, Op::Free(p, l));
            })
            .stats;
        });
        assert_eq!(inner, stats(1, 0, 1, 40, 40, (0, 0), 40, 0), "inner");
        assert_eq!(outer.stats, stats(1, 0, 1, 40, 40, (0, 0), 40, 0), "outer");
    });
}

#[test]
fn realloc_in_an_unrelated_scope_frees_the_block_for_its_owners() {
    use worker::{In, Op};
    worker::with(|w| {
        let mut inner = Stats::default();
        let mut other = None;
        let mut q = 0;
        let outer = measure(|| {
            inner = measure(|| {
                let (p, l) = raw_alloc(40);
                // Another thread's own scope reallocs it: a free for inner
                // and outer, a foreign realloc for the other scope.
                let (n, s) = w.run(In::Own, Op::Realloc(p, l, 400));
                q = n;
                other = s;
            })
            .stats;
        });
        assert_eq!(inner, stats(1, 0, 1, 40, 40, (0, 0), 40, 0), "inner");
        assert_eq!(outer.stats, stats(1, 0, 1, 40, 40, (0, 0), 40, 0), "outer");
        assert_eq!(
            other.unwrap(),
            stats(0, 1, 0, 400, 0, (1, 400), 400, 1),
            "the other thread's scope"
        );
        raw_free(q, Layout::from_size_align(400, 8).unwrap());
    });
}

/// The owner thread and an attached thread each allocate a block at the
/// same moment and hold it until both have: the peak counts both blocks,
/// whichever of the two growths comes first (`scope::live`: the attach
/// makes the heavy fence, so neither growth can miss the other). Many
/// rounds, so that the growths often race.
#[test]
fn peak_counts_owner_and_attached_growths_that_race() {
    use std::sync::atomic::{AtomicU32, Ordering};
    const BLOCK: usize = 64 * 1024;
    for round in 0..200 {
        let go = AtomicU32::new(0);
        let held = AtomicU32::new(0);
        let m = measure(|| {
            let scope = memprof::current_scope().unwrap();
            std::thread::scope(|s| {
                s.spawn(|| {
                    scope.attach(|| {
                        while go.load(Ordering::Acquire) == 0 {
                            std::hint::spin_loop();
                        }
                        let (p, l) = raw_alloc(BLOCK);
                        held.fetch_add(1, Ordering::AcqRel);
                        while held.load(Ordering::Acquire) < 2 {
                            std::hint::spin_loop();
                        }
                        raw_free(p, l);
                    })
                });
                go.store(1, Ordering::Release);
                let (p, l) = raw_alloc(BLOCK);
                held.fetch_add(1, Ordering::AcqRel);
                while held.load(Ordering::Acquire) < 2 {
                    std::hint::spin_loop();
                }
                raw_free(p, l);
            });
        });
        assert!(
            m.stats.peak_bytes >= 2 * BLOCK as u64,
            "round {round}: peak {} < two blocks",
            m.stats.peak_bytes
        );
    }
}
