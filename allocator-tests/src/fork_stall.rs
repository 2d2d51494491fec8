//! `fork()` while another thread writes heap profiles continuously, the
//! first one with cold symbolization over thousands of distinct stacks (a
//! fresh process): no `fork` call may wait for a write. Shared by
//! `tests/fork_jemalloc.rs` and `tests/fork_mimalloc.rs`, which install
//! `Sampled` over those allocators (each test binary is its own process,
//! so its symbolization starts cold).
//!
//! Each fork's duration is measured in the parent; each child switches to
//! rate 1, allocates a known set, checks it in its own heap profile,
//! writes a profile to a file and `_exit`s with a status saying whether all
//! of that worked, bounded by a timeout.

use crate::{go_raw, wait_child, watchdog};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The bound on one `fork()` call while a profile is being written. Writes
/// take far longer (the first, cold, one ~1-3 s in these debug builds; a
/// warm one ~0.1-0.3 s; printed by the test); forks measured here take
/// ~1-5 ms, and a stalled one waits for the write.
pub const FORK_BOUND: Duration = Duration::from_millis(50);

/// A binary tree of call sites, `LEVELS` deep: `tree(bits)` allocates from
/// one of 2^LEVELS distinct stacks, each level choosing one of two call
/// sites by one bit.
macro_rules! levels {
    ($name:ident, $next:ident) => {
        #[inline(never)]
        fn $name(bits: u32, size: usize) -> Vec<u8> {
            if bits & 1 == 0 {
                std::hint::black_box($next(bits >> 1, size))
            } else {
                std::hint::black_box($next(bits >> 1, size + 1))
            }
        }
    };
}
levels!(l0, l1);
levels!(l1, l2);
levels!(l2, l3);
levels!(l3, l4);
levels!(l4, l5);
levels!(l5, l6);
levels!(l6, l7);
levels!(l7, l8);
levels!(l8, l9);
levels!(l9, l10);
levels!(l10, l11);
levels!(l11, leaf);

#[inline(never)]
fn leaf(_bits: u32, size: usize) -> Vec<u8> {
    vec![0u8; size]
}

const LEVELS: u32 = 12;

#[inline(never)]
fn child_allocs() -> Vec<Vec<u8>> {
    (0..1000).map(|_| Vec::with_capacity(777)).collect()
}

/// What a child does after `fork`; returns its exit status.
fn child(path: &Path) -> i32 {
    memprof::set_rate(1);
    let kept = child_allocs();
    let seen: u64 = memprof::heap_profile()
        .records()
        .filter(|r| r.object_size() == 777)
        .map(|r| r.inuse_objects())
        .sum();
    let ok = kept.len() == 1000 && seen >= 1000 && memprof::write_heap_profile(path).is_ok();
    drop(kept);
    if ok {
        0
    } else {
        1
    }
}

/// One fork: how long the call took, and whether a write was in progress
/// (started before the fork and ended after it).
struct Fork {
    took: Duration,
    during_write: bool,
}

/// The test: `allocator` names the inner allocator in messages.
pub fn fork_while_writing_profiles(allocator: &str) {
    let _watchdog = watchdog(300, "fork-while-writing test");
    memprof::set_rate(1);
    // Thousands of distinct stacks (and a few sizes each), kept live. An
    // optimised build writes ~5x faster, so it gets more records, enough
    // that its writes still take well over `FORK_BOUND` (150-400 ms).
    let sizes = if cfg!(debug_assertions) { 2 } else { 4 };
    let kept: Vec<Vec<u8>> = (0..1u32 << LEVELS)
        .flat_map(|bits| (0..sizes).map(move |k| l0(bits, 16 + 8 * k)))
        .collect();
    memprof::set_rate(4096);
    let dir = crate::temp_dir(&format!("fork_stall_{allocator}"));
    let stop = AtomicBool::new(false);
    let writing = AtomicBool::new(false);
    let writes_done = AtomicU64::new(0);
    let write_times = Mutex::new(Vec::new());
    let mut forks = Vec::new();
    std::thread::scope(|s| {
        s.spawn(|| {
            while !stop.load(Ordering::Relaxed) {
                writing.store(true, Ordering::SeqCst);
                let t = Instant::now();
                memprof::heap_profile()
                    .write_pprof(std::io::sink())
                    .unwrap();
                let took = t.elapsed();
                writes_done.fetch_add(1, Ordering::SeqCst);
                writing.store(false, Ordering::SeqCst);
                write_times.lock().unwrap().push(took);
            }
        });
        while !writing.load(Ordering::SeqCst) {
            std::thread::yield_now();
        }
        let start = Instant::now();
        // Fork through the first (cold) write and a few warm ones.
        while forks.len() < 200
            && (writes_done.load(Ordering::SeqCst) < 4 || forks.len() < 20)
            && start.elapsed() < Duration::from_secs(120)
        {
            std::thread::sleep(Duration::from_millis(5));
            let k = forks.len();
            let path = dir.join(format!("child{k}.pb.gz"));
            let (was_writing, before) = (
                writing.load(Ordering::SeqCst),
                writes_done.load(Ordering::SeqCst),
            );
            let t = Instant::now();
            // SAFETY: the child runs only `child` and then `_exit`s,
            // without running the parent's exit handlers or unwinding.
            let pid = unsafe { libc::fork() };
            let took = t.elapsed();
            assert!(pid >= 0, "fork failed");
            if pid == 0 {
                let status = std::panic::catch_unwind(|| child(&path)).unwrap_or(2);
                // SAFETY: ends the child at once, as a forked child should.
                unsafe { libc::_exit(status) };
            }
            let during_write = was_writing
                && writing.load(Ordering::SeqCst)
                && writes_done.load(Ordering::SeqCst) == before;
            forks.push(Fork { took, during_write });
            let status = wait_child(pid, Duration::from_secs(60), &format!("child {k}"));
            assert!(
                libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
                "child {k} failed: wait status {status:#x}"
            );
        }
        stop.store(true, Ordering::Relaxed);
    });
    drop(kept);
    let writes = write_times.into_inner().unwrap();
    let ms = |d: &Duration| d.as_secs_f64() * 1e3;
    let during: Vec<f64> = forks
        .iter()
        .filter(|f| f.during_write)
        .map(|f| ms(&f.took))
        .collect();
    let max_fork = forks.iter().map(|f| ms(&f.took)).fold(0.0, f64::max);
    eprintln!(
        "{allocator}: {} writes, ms: {:?}; {} forks, {} during a write, max fork {max_fork:.2} ms, during-write forks ms: {:?}",
        writes.len(),
        writes.iter().map(|d| ms(d).round()).collect::<Vec<_>>(),
        forks.len(),
        during.len(),
        during.iter().map(|m| (m * 100.0).round() / 100.0).collect::<Vec<_>>()
    );
    // A fork that waited for a write would take a good part of one: the
    // writes must be long enough for that to show against the bound.
    let longest = writes.iter().max().copied().unwrap_or_default();
    assert!(
        longest > FORK_BOUND * 4,
        "the longest write took only {longest:?}: the test did not exercise a slow write"
    );
    assert!(
        during.len() >= 5,
        "only {} forks landed inside a write",
        during.len()
    );
    for (k, f) in forks.iter().enumerate() {
        assert!(
            f.took < FORK_BOUND,
            "{allocator}: fork {k} took {:?} (during a write: {}), bound {FORK_BOUND:?}: fork waited for the profile writer",
            f.took,
            f.during_write
        );
    }
    // A child's profile reads back whole: its own 1000 blocks of 777 B.
    for k in [0, forks.len() - 1] {
        let d = go_raw(&dir.join(format!("child{k}.pb.gz")), &[]);
        d.assert_go_heap_shape(1);
        let objs: i64 = d
            .samples
            .iter()
            .filter(|s| s.bytes == Some(777))
            .map(|s| s.heap_values()[2])
            .sum();
        assert!(
            objs >= 1000,
            "child {k}'s profile: {objs} live 777 B objects"
        );
    }
}
