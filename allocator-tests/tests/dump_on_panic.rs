//! `dump_on_panic` writes the failing thread's profile at the panic, from
//! its panic hook, while the blocks the failing code held are still live;
//! falls back to writing at drop when its hook did not run or the panic is
//! inside memprof (without waiting for memprof's locks); writes nothing for
//! a guard dropped without a panic. Each case runs on a thread of its own,
//! named after the case: the profile's file is named after the thread.
//! Profiles are read back with `go tool pprof -raw`.
use allocator_tests::*;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};

#[global_allocator]
static A: memprof::Sampled<std::alloc::System> = memprof::Sampled::new(std::alloc::System);

/// The size of the block the failing code holds: distinctive in a profile.
const HELD: usize = 48_879;

/// The cases run one at a time: one of them replaces the process's panic
/// hook for a while.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The directory the guards write to, the same for every case of this
/// binary (set before any guard exists); `MEMPROF_TEST_DUMP=always` from
/// the caller's environment would write passing cases too.
fn test_dir() -> PathBuf {
    let d = temp_dir("dump_on_panic");
    std::env::set_var("MEMPROF_TEST_DIR", &d);
    std::env::remove_var("MEMPROF_TEST_DUMP");
    d
}

#[inline(never)]
fn held_at_failure() -> Vec<u8> {
    std::hint::black_box(vec![0xab; HELD])
}

/// Runs `f` on a thread named `name`; did it panic?
fn panicked_on_thread(name: &str, f: impl FnOnce() + Send + 'static) -> bool {
    std::thread::Builder::new()
        .name(name.into())
        .spawn(f)
        .unwrap()
        .join()
        .is_err()
}

/// `held_at_failure`'s alloc objects, alloc bytes, in-use objects and
/// in-use bytes in the profile at `path`.
fn held_in(path: &Path) -> [i64; 4] {
    assert!(path.exists(), "no profile at {}", path.display());
    go_raw(path, &["held_at_failure"]).sum("held_at_failure", None)
}

#[test]
fn the_profile_is_written_at_the_panic_with_the_failing_codes_blocks_in_use() {
    let _s = serial();
    let dir = test_dir();
    let panicked = panicked_on_thread("dump_at_panic", || {
        let _dump = memprof::dump_on_panic();
        let held = held_at_failure(); // declared after the guard: freed by unwinding before the guard drops
        assert!(held.is_empty(), "deliberate failure");
    });
    assert!(panicked);
    let [allocs, alloc_bytes, inuse, inuse_bytes] = held_in(&dir.join("dump_at_panic.pb.gz"));
    assert_eq!((allocs, alloc_bytes), (1, HELD as i64));
    assert_eq!(
        (inuse, inuse_bytes),
        (1, HELD as i64),
        "the block held at the failure must be in use in the profile"
    );
}

#[test]
fn a_guard_dropped_without_a_panic_writes_nothing() {
    let _s = serial();
    let dir = test_dir();
    let panicked = panicked_on_thread("dump_passing", || {
        let _dump = memprof::dump_on_panic();
        assert_eq!(held_at_failure().len(), HELD);
    });
    assert!(!panicked);
    assert!(!dir.join("dump_passing.pb.gz").exists());
}

#[test]
fn a_panic_caught_inside_the_guard_leaves_no_file_when_the_test_goes_on() {
    let _s = serial();
    let dir = test_dir();
    let path = dir.join("dump_caught");
    let panicked = panicked_on_thread("dump_caught", move || {
        let _dump = memprof::dump_on_panic();
        let caught = std::panic::catch_unwind(|| {
            let held = held_at_failure();
            assert!(held.is_empty(), "deliberate failure, caught");
        });
        assert!(caught.is_err());
        assert!(
            path.with_extension("pb.gz").exists(),
            "the hook writes at every panic"
        );
    });
    assert!(!panicked);
    assert!(!dir.join("dump_caught.pb.gz").exists());
}

#[test]
fn without_its_hook_the_guard_writes_at_drop_after_unwinding() {
    let _s = serial();
    let dir = test_dir();
    // The guard's hook is installed by the first guard; then a hook that
    // does not chain replaces it, as a test harness might.
    drop(memprof::dump_on_panic());
    let ours = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let panicked = panicked_on_thread("dump_at_drop", || {
        let _dump = memprof::dump_on_panic();
        let held = held_at_failure();
        assert!(held.is_empty(), "deliberate failure");
    });
    std::panic::set_hook(ours);
    assert!(panicked);
    let [allocs, alloc_bytes, inuse, inuse_bytes] = held_in(&dir.join("dump_at_drop.pb.gz"));
    assert_eq!((allocs, alloc_bytes), (1, HELD as i64));
    assert_eq!(
        (inuse, inuse_bytes),
        (0, 0),
        "written at drop: unwinding freed the block first"
    );
}

#[test]
fn a_panic_inside_memprof_with_its_lock_held_does_not_deadlock_the_hook() {
    let _s = serial();
    let dir = test_dir();
    let _w = watchdog(120, "dump_on_panic's hook on a panic inside memprof");
    let panicked = panicked_on_thread("dump_inside", || {
        let _dump = memprof::dump_on_panic();
        let _held = held_at_failure();
        memprof::__private::panic_inside_profiler();
    });
    assert!(panicked);
    // The hook left it to the guard, which wrote once unwinding had
    // released the lock.
    let [allocs, alloc_bytes, inuse, _] = held_in(&dir.join("dump_inside.pb.gz"));
    assert_eq!((allocs, alloc_bytes, inuse), (1, HELD as i64, 0));
}
