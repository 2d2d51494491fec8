//! `fork()` while other threads allocate, take snapshots and write
//! profiles (so profiler locks are likely held at the moment of the fork):
//! each child switches to rate 1, allocates a known set, writes a heap
//! profile to a file and `_exit`s with a status that says whether all of
//! that worked. The parent bounds each child with a timeout (a hang fails
//! the test and kills the child) and reads the child's profile with
//! `go tool pprof`, which must show the child's set exactly.
//!
//! Also: a fork aimed at the moment another thread reserves memprof's
//! sampled-block region (the process's first sample, slowed down by an
//! `LD_PRELOAD` shim) leaves a child that can sample (the `fork_first_sample`
//! probe, a process of its own).
//!
//! The parent's threads also set labels and read and reset the peak, so
//! the label table's and the peak capture's locks are held at forks too.
//!
//! Its own binary: forking a process whose other tests run threads of their
//! own would make those threads' state part of every child.

use allocator_tests::*;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

#[global_allocator]
static A: memprof::Sampled<std::alloc::System> = memprof::Sampled::new(std::alloc::System);

const CHILDREN: usize = 8;

/// Label values the churn cycles through (each `set_labels` interns under
/// the label table's lock).
const CHURN: [&str; 4] = ["a", "b", "c", "d"];

/// Allocates and frees in a loop under changing labels; every 64 rounds
/// takes a snapshot and the peak (the peak capture's lock), every 256
/// writes the snapshot (symbolizing under the profiler's writer lock) and
/// every 512 resets the peak.
#[inline(never)]
fn parent_churn(stop: &AtomicBool) {
    let mut v: Vec<Vec<u8>> = Vec::new();
    let mut i = 0usize;
    while !stop.load(Ordering::Relaxed) {
        let _labels = memprof::set_labels(&[("churn", CHURN[i % CHURN.len()])]);
        v.push(vec![1u8; 16 + i % 5000]);
        if i.is_multiple_of(7) {
            v.push(vec![2u8; 70_000 + i % 1000]); // large blocks too
        }
        if v.len() > 100 {
            v.clear();
        }
        i += 1;
        if i.is_multiple_of(64) {
            let p = memprof::heap_profile();
            let _ = memprof::peak_profile();
            if i.is_multiple_of(256) {
                p.write_pprof(std::io::sink()).unwrap();
            }
            if i.is_multiple_of(512) {
                memprof::reset_peak();
            }
        }
    }
}

#[inline(never)]
fn child_allocs() -> Vec<Vec<u8>> {
    let kept = (0..1000).map(|_| Vec::with_capacity(777)).collect();
    keep_frame();
    kept
}

/// What a child does after `fork`; returns its exit status. Its blocks
/// are labelled, and it reads the labels and the peak back: the label
/// table's and the peak's locks must be free in the child.
fn child(path: &Path) -> i32 {
    memprof::set_rate(1);
    let kept = memprof::with_labels(&[("child", "yes")], child_allocs);
    let by_label = memprof::heap_profile().by_label("child");
    let labelled = by_label.len() == 1 && by_label[0].1.inuse_bytes >= 777_000;
    let peak = memprof::peak_profile().peak_inuse_bytes().is_some();
    let ok = kept.len() == 1000 && labelled && peak && memprof::write_heap_profile(path).is_ok();
    drop(kept);
    if ok {
        0
    } else {
        1
    }
}

#[test]
fn children_forked_while_threads_allocate_and_write_profiles_complete() {
    let _watchdog = watchdog(180, "fork test");
    memprof::set_rate(4096);
    let dir = temp_dir("fork");
    let stop = AtomicBool::new(false);
    std::thread::scope(|s| {
        for _ in 0..3 {
            s.spawn(|| parent_churn(&stop));
        }
        for k in 0..CHILDREN {
            std::thread::sleep(Duration::from_millis(20));
            let path = dir.join(format!("child{k}.pb.gz"));
            // SAFETY: the child runs only `child` and then `_exit`s, without
            // running the parent's exit handlers or unwinding.
            let pid = unsafe { libc::fork() };
            assert!(pid >= 0, "fork failed");
            if pid == 0 {
                let status = std::panic::catch_unwind(|| child(&path)).unwrap_or(2);
                // SAFETY: ends the child at once, as a forked child should.
                unsafe { libc::_exit(status) };
            }
            let status = wait_child(pid, Duration::from_secs(30), &format!("child {k}"));
            assert!(
                libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
                "child {k} failed: wait status {status:#x}"
            );
        }
        stop.store(true, Ordering::Relaxed);
    });
    // Read after the churn stopped: decoding in the parent is not the point.
    for k in 0..CHILDREN {
        let d = go_raw(&dir.join(format!("child{k}.pb.gz")), &["child_allocs"]);
        d.assert_go_heap_shape(1);
        assert_eq!(
            d.sum("child_allocs", Some(777)),
            [1000, 777_000, 1000, 777_000],
            "child {k}'s own allocations"
        );
    }
}

#[test]
fn a_fork_during_the_first_region_reservation_leaves_a_child_that_can_sample() {
    // Regression: the child inherited a reservation "in progress" that no
    // thread of it would finish, and spun forever at its first sample.
    let out = output_within(
        std::process::Command::new(env!("CARGO_BIN_EXE_fork_first_sample"))
            .env("MEMPROFILERATE", "0")
            .env("LD_PRELOAD", env!("SLOW_RESERVE_SO")),
        Duration::from_secs(60),
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let took_ms: u64 = stdout
        .strip_prefix("first sample: ")
        .and_then(|s| s.split_once(" ms"))
        .and_then(|(ms, _)| ms.parse().ok())
        .unwrap_or_else(|| panic!("probe output: {stdout}{stderr}"));
    assert!(
        took_ms >= 90,
        "the shim did not slow the reservation down ({took_ms} ms), so the fork was not aimed at it"
    );
    assert!(
        out.status.success() && stdout.contains("child: ok"),
        "{stdout}{stderr}"
    );
}
