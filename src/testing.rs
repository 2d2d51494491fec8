//! Heap numbers in tests: exact scoped counts, no-alloc and no-leak
//! assertions, and a profile per failing test.
//!
//! ```
//! # #[global_allocator]
//! # static A: memprof::Sampled<std::alloc::System> = memprof::Sampled::new(std::alloc::System);
//! let m = memprof::measure(|| format!("{}-{}", 1, 2));  // exact, attributed to this scope
//! assert_eq!(m.stats.allocs, 1);                        // m.value is the closure's result
//! let r = memprof::allocs_per_run(100, || { let _ = 1 + 1; });
//! assert_eq!(r.avg_allocs(), 0.0, "{r}");               // Display: summary and top sites
//! memprof::assert_no_alloc(|| 2 + 2);                   // panics naming the first allocating site
//! memprof::assert_no_leaks(|| drop(vec![1, 2, 3]));     // panics listing the live blocks by site
//! let _g = memprof::dump_on_panic();                    // first line of a test: its profile if it fails
//! ```
//!
//! # Attribution is by scope, not by process
//!
//! A scope records every allocation its thread makes (rate 1 for that
//! thread only; the global rate is untouched) and owns the blocks it
//! allocated: their frees are charged back to it from whichever thread
//! frees them. So other tests running in parallel threads, libtest's own
//! threads, and frees of blocks from before the scope never change its
//! numbers (frees of other scopes' blocks are reported as
//! `foreign_frees`). Threads spawned inside a scope are not counted unless
//! attached with [`ScopeHandle::attach`]: shared pools (rayon, tokio) would
//! otherwise charge one test's work to another.
//!
//! | | Go `testing.AllocsPerRun` | dhat testing mode | memprof |
//! |---|---|---|---|
//! | counts | the whole process (`MemStats.Mallocs` delta) | the whole process | the scope's thread(s) only |
//! | parallel tests | panics inside parallel tests (golang/go#70464) | one profiler per process: `--test-threads=1` | exact under parallel tests |
//! | frees on other threads | counted globally | counted globally | charged to the owning scope |
//! | where it allocated | no | yes (one profile per process) | yes: stack per allocation, a pprof file per failure |
//! | result | integer (truncated mean) | counts | `f64` mean, min, max, bytes, retained bytes |
//!
//! The global heap profile sees a scope's blocks too, each with weight 1:
//! nothing is counted twice or inflated.
//!
//! # Cost
//!
//! A scope keeps its thread's sample countdown expired, so every
//! allocation takes the existing slow path (stack walk and record, served
//! from memprof's region): no new branch on the fast path, and nothing
//! changes for threads without a scope. `docs/performance.md` has the
//! measured cost inside a scope.
//!
//! # Traps
//!
//! - The compiler may remove or merge allocations (see `GlobalAlloc`): a
//!   count is what the optimised program really did.
//! - Allocations made while the thread is panicking are not recorded (the
//!   panic machinery is not the test's work).
//! - `assert_no_leaks` counts what the closure returns as live.
//! - Every helper panics, saying why, when it cannot count: `Sampled` is
//!   not the binary's global allocator, or memprof could not reserve its
//!   sampled-block region (an address-space limit). None passes vacuously.

use crate::sampler::without_sampling;
use crate::scope;
use crate::snapshot::{HeapProfile, Record};
use std::fmt;
use std::path::PathBuf;

/// Exact allocation counts of a scope. See [`measure`].
///
/// | field | counts |
/// |---|---|
/// | `allocs` | `alloc` and `alloc_zeroed` calls in the scope |
/// | `reallocs` | `realloc` calls in the scope |
/// | `deallocs` | frees of blocks the scope owns, from any thread, until it ends |
/// | `bytes_allocated` | requested bytes of new blocks, plus realloc growth |
/// | `bytes_freed` | bytes of owned blocks freed, plus realloc shrink |
/// | `live_blocks`, `live_bytes` | owned blocks still live when the scope ends |
/// | `peak_bytes` | the most owned bytes live at once during the scope |
/// | `foreign_frees` | frees (and reallocs) in the scope of blocks it does not own |
///
/// Allocate 100 B, realloc to 1000, realloc to 50, free: allocs 1,
/// reallocs 2, deallocs 1, bytes_allocated 1000, bytes_freed 1000, live 0,
/// peak 1000.
///
/// What `Vec` growth costs (`Vec<u64>`, pushing one element at a time;
/// the standard library grows to 4 elements, then doubles):
///
/// | pushes | allocs | reallocs | bytes_allocated | live_bytes |
/// |---|---|---|---|---|
/// | 1 | 1 | 0 | 32 | 32 |
/// | 5 | 1 | 1 | 64 | 64 |
/// | 100 | 1 | 5 | 1024 | 1024 |
///
/// `Stats` subtract field by field (saturating at 0), for differences
/// between two measurements.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// `alloc` and `alloc_zeroed` calls.
    pub allocs: u64,
    /// `realloc` calls.
    pub reallocs: u64,
    /// Frees of owned blocks.
    pub deallocs: u64,
    /// Requested bytes of new blocks plus realloc growth.
    pub bytes_allocated: u64,
    /// Bytes of owned blocks freed plus realloc shrink.
    pub bytes_freed: u64,
    /// Owned blocks live at the end.
    pub live_blocks: u64,
    /// Owned bytes live at the end.
    pub live_bytes: u64,
    /// Most owned bytes live at once.
    pub peak_bytes: u64,
    /// Frees in the scope of blocks it does not own (e.g. allocated before it).
    pub foreign_frees: u64,
}

impl std::ops::Sub for Stats {
    type Output = Stats;
    fn sub(self, o: Stats) -> Stats {
        Stats {
            allocs: self.allocs.saturating_sub(o.allocs),
            reallocs: self.reallocs.saturating_sub(o.reallocs),
            deallocs: self.deallocs.saturating_sub(o.deallocs),
            bytes_allocated: self.bytes_allocated.saturating_sub(o.bytes_allocated),
            bytes_freed: self.bytes_freed.saturating_sub(o.bytes_freed),
            live_blocks: self.live_blocks.saturating_sub(o.live_blocks),
            live_bytes: self.live_bytes.saturating_sub(o.live_bytes),
            peak_bytes: self.peak_bytes.saturating_sub(o.peak_bytes),
            foreign_frees: self.foreign_frees.saturating_sub(o.foreign_frees),
        }
    }
}

impl fmt::Display for Stats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} allocs, {} reallocs, {} deallocs, {} B allocated, {} B freed, {} blocks / {} B live, peak {} B",
            self.allocs,
            self.reallocs,
            self.deallocs,
            self.bytes_allocated,
            self.bytes_freed,
            self.live_blocks,
            self.live_bytes,
            self.peak_bytes
        )
    }
}

/// The result of [`measure`]: the closure's value, its exact [`Stats`],
/// and a profile of every allocation it made.
#[derive(Debug)]
pub struct Measured<R> {
    /// What the closure returned.
    pub value: R,
    /// Exact counts for the scope.
    pub stats: Stats,
    profile: HeapProfile,
}

impl<R> Measured<R> {
    /// Every allocation of the scope with its stack (rate 1, exact): what
    /// was allocated, and what was still live when the scope ended.
    pub fn profile(&self) -> &HeapProfile {
        &self.profile
    }
}

/// Why a scope would see nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum CannotRecord {
    /// No `Sampled` serves this process's allocations.
    NotInstalled,
    /// The region that serves recorded blocks could not be reserved.
    NoRegion,
}

impl CannotRecord {
    fn message(self, what: &str) -> String {
        match self {
            CannotRecord::NotInstalled => format!(
                "memprof::Sampled is not the global allocator of this binary: {what}() cannot see allocations \
                 (add `#[global_allocator] static A: memprof::Sampled<std::alloc::System> = memprof::Sampled::new(std::alloc::System);` \
                 to the test binary)"
            ),
            CannotRecord::NoRegion => format!(
                "memprof could not reserve its sampled-block region (address-space limit? `ulimit -v`): \
                 {what}() cannot record allocations"
            ),
        }
    }
}

/// Can a scope record this thread's allocations? Checked by every helper
/// before it begins, so that none passes vacuously.
fn can_record() -> Result<(), CannotRecord> {
    if !crate::alloc::is_installed() {
        return Err(CannotRecord::NotInstalled);
    }
    if !crate::sys::region::ensure_init() {
        return Err(CannotRecord::NoRegion);
    }
    Ok(())
}

/// A running scope; ends it when dropped (also on panic). Not `Send`: a
/// scope ends on the thread that began it, which alone writes its owner
/// counters and charges it without pins (see `scope`).
struct Active(u32, std::marker::PhantomData<*const ()>);

impl Active {
    /// Begins a scope for the helper `what`; panics, saying why, when the
    /// scope could not see or record allocations (it would pass vacuously).
    fn begin(what: &str) -> Active {
        if let Err(why) = can_record() {
            panic!("{}", why.message(what));
        }
        match scope::begin() {
            Some(h) => Active(h, std::marker::PhantomData),
            None => panic!(
                "memprof: more than {} measurement scopes at once",
                scope::SLOTS
            ),
        }
    }

    fn finish(self) -> (Stats, HeapProfile) {
        let (stats, profile, _) = self.finish_with_first();
        (stats, profile)
    }

    fn finish_with_first(self) -> (Stats, HeapProfile, Option<crate::stacks::StackId>) {
        let out = without_sampling(|| read(self.0));
        drop(self);
        out
    }
}

impl Drop for Active {
    fn drop(&mut self) {
        scope::end(self.0);
    }
}

fn read(h: u32) -> (Stats, HeapProfile, Option<crate::stacks::StackId>) {
    let Some(s) = scope::snapshot(h) else {
        return (Stats::default(), empty_profile(), None);
    };
    let first = s.first_stack;
    let c = |i: usize| s.counts[i].max(0) as u64;
    let stats = Stats {
        allocs: c(0),
        reallocs: c(1),
        deallocs: c(2),
        bytes_allocated: c(3),
        bytes_freed: c(4),
        live_blocks: c(5),
        live_bytes: c(6),
        peak_bytes: c(7),
        foreign_frees: c(8),
    };
    let mut p = empty_profile();
    p.dropped_samples = s.dropped;
    for (stack, size, allocs, frees) in s.sites {
        let (frames, truncated) = crate::stacks::get(stack);
        p.records.push(Record {
            stack: frames,
            labels: Default::default(),
            ages: None,
            truncated,
            object_size: size,
            sampled_allocs: allocs,
            sampled_frees: frees.min(allocs),
            alloc_objects_est: allocs as f64,
            inuse_objects_est: allocs.saturating_sub(frees) as f64,
        });
    }
    (stats, p, first)
}

fn site_of(frames: &[crate::Frame]) -> String {
    frames
        .iter()
        .find(|f| !crate::top::is_plumbing(f))
        .or(frames.first())
        .map(|f| match (&f.file, f.line) {
            (Some(file), Some(line)) => format!("{} ({file}:{line})", f.function),
            _ => f.function.clone(),
        })
        .unwrap_or_else(|| "?".to_string())
}

fn empty_profile() -> HeapProfile {
    HeapProfile {
        records: Vec::new(),
        rate: 1,
        time_nanos: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as i64)
            .unwrap_or(0),
        duration_nanos: 0,
        dropped_samples: 0,
        unwinder: crate::stack::unwinder_name(),
        label_overflow: 0,
        exact: None,
        kind: crate::snapshot::Kind::Heap,
    }
}

/// Runs `f` and counts exactly what it allocates and frees on this thread
/// (and on threads it [attaches](ScopeHandle::attach)).
///
/// ```
/// # #[global_allocator]
/// # static A: memprof::Sampled<std::alloc::System> = memprof::Sampled::new(std::alloc::System);
/// let m = memprof::measure(|| vec![1u8; 100]);
/// assert_eq!(m.stats.allocs, 1);
/// assert_eq!(m.stats.bytes_allocated, 100);
/// assert_eq!(m.stats.live_bytes, 100); // `m.value` still holds it
/// ```
///
/// # Panics
///
/// When it cannot count: `Sampled` is not the global allocator of the
/// binary, or memprof could not reserve the address range it records
/// blocks in (an address-space limit such as `ulimit -v`). So do
/// [`allocs_per_run`], [`assert_no_alloc`], [`assert_no_leaks`] and
/// [`dump_on_panic`]: none of them passes vacuously.
#[must_use = "the counts are in the returned `Measured` (`.stats`), and the closure's result in `.value`"]
pub fn measure<R>(f: impl FnOnce() -> R) -> Measured<R> {
    let active = Active::begin("measure");
    let value = f();
    let (stats, profile) = active.finish();
    Measured {
        value,
        stats,
        profile,
    }
}

/// A handle on the current scope, to count work done on other threads.
///
/// ```
/// # #[global_allocator]
/// # static A: memprof::Sampled<std::alloc::System> = memprof::Sampled::new(std::alloc::System);
/// let m = memprof::measure(|| {
///     let scope = memprof::current_scope().unwrap();
///     std::thread::spawn(move || scope.attach(|| vec![0u8; 12345])).join().unwrap()
/// });
/// // Counted: the attached thread's vector (and what `spawn` allocated).
/// assert!(m.profile().records().any(|r| r.object_size() == 12345));
/// ```
#[derive(Clone, Copy, Debug)]
pub struct ScopeHandle(u32);

impl ScopeHandle {
    /// Runs `f` on this thread as part of the scope. Once the scope has
    /// ended, `f` just runs.
    pub fn attach<R>(&self, f: impl FnOnce() -> R) -> R {
        struct Leave(scope::Prev);
        impl Drop for Leave {
            fn drop(&mut self) {
                scope::leave(self.0);
            }
        }
        let _leave = Leave(scope::enter(self.0));
        f()
    }
}

/// The scope active on this thread (inside [`measure`] and friends).
pub fn current_scope() -> Option<ScopeHandle> {
    match scope::current() {
        0 => None,
        h => Some(ScopeHandle(h)),
    }
}

/// Per-run numbers of [`allocs_per_run`].
#[derive(Debug)]
pub struct PerRun {
    runs: usize,
    allocs: Vec<u64>,
    bytes: Vec<u64>,
    retained: Vec<u64>,
    profile: HeapProfile,
}

impl PerRun {
    /// Mean allocations (`alloc` + `realloc` calls) per run, not truncated
    /// (Go's `AllocsPerRun` truncates to an integer).
    pub fn avg_allocs(&self) -> f64 {
        self.allocs.iter().sum::<u64>() as f64 / self.runs.max(1) as f64
    }
    /// Fewest allocations in one run.
    pub fn min_allocs(&self) -> u64 {
        self.allocs.iter().copied().min().unwrap_or(0)
    }
    /// Most allocations in one run.
    pub fn max_allocs(&self) -> u64 {
        self.allocs.iter().copied().max().unwrap_or(0)
    }
    /// Mean bytes allocated per run.
    pub fn avg_bytes(&self) -> f64 {
        self.bytes.iter().sum::<u64>() as f64 / self.runs.max(1) as f64
    }
    /// Mean bytes per run still live after the run: a slowly growing cache
    /// shows up here.
    pub fn retained_bytes_per_run(&self) -> f64 {
        self.retained.iter().sum::<u64>() as f64 / self.runs.max(1) as f64
    }
    /// Every allocation of all measured runs, with stacks.
    pub fn profile(&self) -> &HeapProfile {
        &self.profile
    }
}

impl fmt::Display for PerRun {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:.2} allocs/run (min {}, max {}), {:.1} B/run, {:.1} B retained/run, over {} runs",
            self.avg_allocs(),
            self.min_allocs(),
            self.max_allocs(),
            self.avg_bytes(),
            self.retained_bytes_per_run(),
            self.runs
        )?;
        for line in top_lines(&self.profile, false, 5) {
            write!(f, "\n  {line}")?;
        }
        Ok(())
    }
}

/// Calls `f` once to warm up (like Go), then `runs` times, counting each
/// run exactly.
///
/// ```
/// # #[global_allocator]
/// # static A: memprof::Sampled<std::alloc::System> = memprof::Sampled::new(std::alloc::System);
/// let mut buf = Vec::with_capacity(64);
/// let r = memprof::allocs_per_run(100, || {
///     buf.clear();
///     buf.extend_from_slice(b"no allocation here");
/// });
/// assert_eq!(r.avg_allocs(), 0.0, "{r}");
/// ```
#[must_use = "the counts are in the returned `PerRun`: assert on `.avg_allocs()`"]
pub fn allocs_per_run(runs: usize, mut f: impl FnMut()) -> PerRun {
    f();
    let outer = Active::begin("allocs_per_run");
    let (mut allocs, mut bytes, mut retained) = (Vec::new(), Vec::new(), Vec::new());
    without_sampling(|| {
        allocs.reserve(runs);
        bytes.reserve(runs);
        retained.reserve(runs);
    });
    for _ in 0..runs {
        let m = measure(&mut f);
        allocs.push(m.stats.allocs + m.stats.reallocs);
        bytes.push(m.stats.bytes_allocated);
        retained.push(m.stats.live_bytes);
        without_sampling(|| drop(m));
    }
    let (_, profile) = outer.finish();
    PerRun {
        runs,
        allocs,
        bytes,
        retained,
        profile,
    }
}

/// Runs `f` and panics, on the calling thread after `f` returns, if it
/// allocated. The message names the first allocating site and the top
/// sites, and points to a pprof file with the details.
///
/// ```should_panic
/// # #[global_allocator]
/// # static A: memprof::Sampled<std::alloc::System> = memprof::Sampled::new(std::alloc::System);
/// memprof::assert_no_alloc(|| Box::new(7));
/// ```
pub fn assert_no_alloc<R>(f: impl FnOnce() -> R) -> R {
    let active = Active::begin("assert_no_alloc");
    let value = f();
    let (stats, profile, first) = active.finish_with_first();
    if stats.allocs + stats.reallocs > 0 {
        let msg = failure_message(&profile, "no-alloc", false, || {
            format!(
                "assert_no_alloc: the closure made {} allocations and {} reallocations ({} bytes); first at {}",
                stats.allocs,
                stats.reallocs,
                stats.bytes_allocated,
                first
                    .map(|id| site_of(&crate::snapshot::frames_of(&crate::stacks::get(id).0)))
                    .unwrap_or_else(|| "?".to_string())
            )
        });
        drop(value);
        panic!("{msg}");
    }
    value
}

/// Runs `f` and panics, on the calling thread after `f` returns, if blocks
/// it allocated are still live. What `f` returns is live too: return `()`,
/// or drop results inside. The message lists the live blocks by site with
/// sizes.
///
/// ```should_panic
/// # #[global_allocator]
/// # static A: memprof::Sampled<std::alloc::System> = memprof::Sampled::new(std::alloc::System);
/// memprof::assert_no_leaks(|| std::mem::forget(vec![0u8; 10]));
/// ```
pub fn assert_no_leaks<R>(f: impl FnOnce() -> R) -> R {
    let active = Active::begin("assert_no_leaks");
    let value = f();
    let (stats, profile) = active.finish();
    if stats.live_blocks > 0 {
        let msg = failure_message(&profile, "leaks", true, || {
            format!(
                "assert_no_leaks: {} blocks ({} bytes) allocated in the closure are still live",
                stats.live_blocks, stats.live_bytes
            )
        });
        drop(value);
        panic!("{msg}");
    }
    value
}

/// Records this thread's allocations from now on and, if the thread panics
/// while the returned guard lives, writes that recording's profile to
/// `$MEMPROF_TEST_DIR` (default `target/memprof/`) in a file named after the
/// thread (libtest names test threads after the test), and prints the path.
/// Nothing is written for a test that passes, unless `MEMPROF_TEST_DUMP=always`.
///
/// ```
/// # #[global_allocator]
/// # static A: memprof::Sampled<std::alloc::System> = memprof::Sampled::new(std::alloc::System);
/// let _dump = memprof::dump_on_panic();
/// // ... the test ...
/// ```
///
/// See [`DumpOnPanic`] for when the profile is written.
///
/// # Panics
///
/// As [`measure`]: when `Sampled` is not the global allocator or cannot
/// record.
pub fn dump_on_panic() -> DumpOnPanic {
    install_panic_hook();
    let active = Active::begin("dump_on_panic");
    let armed = Armed {
        scope: active.0,
        written: false,
    };
    DumpOnPanic {
        active: Some(active),
        outer: ARMED.try_with(|a| a.replace(Some(armed))).ok().flatten(),
    }
}

/// The guard [`dump_on_panic`] returns: while it lives, its thread's
/// allocations are recorded, and a panic on the thread writes their profile.
/// It is not `Send`: the recording belongs to the thread that started it,
/// which alone writes its counters, so it ends on that thread.
///
/// **The profile is written at the panic**, by a panic hook, before
/// unwinding starts: the blocks the failing code held (locals declared
/// after the guard included) are still live, so the profile's `inuse_space`
/// shows the heap at the failure, not after unwinding has freed it. The
/// hook is installed once per process by the first `dump_on_panic` call; it
/// chains the hook that was installed before it (libtest's, or the
/// default, which prints the panic message after the profile's path), and
/// acts only on threads that hold a guard.
///
/// **Fallback at drop.** If the hook did not run for the panic (a hook set
/// later with `std::panic::set_hook` that does not call the previous one),
/// or the panic happened inside memprof itself (its locks may be held, so
/// writing then could deadlock), the guard writes the profile when it is
/// dropped during unwinding instead: the blocks dropped by then are shown
/// as allocated, not in use.
///
/// A panic caught inside the guard's lifetime (`catch_unwind`) writes the
/// profile too; if the guard is then dropped normally (the test went on
/// and passed), the file is removed. Guards nest: the innermost writes.
#[must_use = "the recording ends when this guard is dropped: keep it for the whole test, `let _dump = memprof::dump_on_panic();`"]
pub struct DumpOnPanic {
    /// The recording; `None` once finished.
    active: Option<Active>,
    /// The guard this one nests in on this thread, armed again on drop.
    outer: Option<Armed>,
}

impl fmt::Debug for DumpOnPanic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DumpOnPanic").finish_non_exhaustive()
    }
}

/// The innermost live [`DumpOnPanic`] of a thread: its scope, and whether
/// the panic hook has written its profile.
#[derive(Clone, Copy, PartialEq, Debug)]
struct Armed {
    scope: u32,
    written: bool,
}

thread_local! {
    /// This thread's innermost live guard. `const`, without a destructor,
    /// so the panic hook can read it in any thread state.
    static ARMED: std::cell::Cell<Option<Armed>> = const { std::cell::Cell::new(None) };
}

/// Installs, once per process, the hook that writes an armed thread's
/// profile at the panic and then runs the previously installed hook.
fn install_panic_hook() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    // `set_hook` panics on a panicking thread (a guard made in a `Drop`
    // during unwinding): the drop-time fallback covers that case.
    if std::thread::panicking() {
        return;
    }
    ONCE.call_once(|| {
        without_sampling(|| {
            let previous = std::panic::take_hook();
            std::panic::set_hook(Box::new(move |info| {
                dump_at_panic();
                previous(info);
            }));
        })
    });
}

/// The panic hook's part: writes the profile of this thread's innermost
/// guard, if it has one, before unwinding drops anything.
fn dump_at_panic() {
    let Some(armed) = ARMED.try_with(std::cell::Cell::get).ok().flatten() else {
        return;
    };
    if crate::guard::is_busy() {
        // The panic is inside memprof: one of its locks may be held by this
        // very thread, and writing would wait for it forever. Unwinding
        // releases them; the guard writes when it drops.
        return;
    }
    without_sampling(|| {
        let (_, profile, _) = read(armed.scope);
        if let Some(path) = write_scope_profile(&profile, "") {
            eprintln!(
                "memprof: heap profile of this test at the panic written to {}",
                path.display()
            );
        }
    });
    let _ = ARMED.try_with(|a| {
        a.set(Some(Armed {
            written: true,
            ..armed
        }))
    });
}

impl Drop for DumpOnPanic {
    fn drop(&mut self) {
        let Some(active) = self.active.take() else {
            return;
        };
        let me = ARMED.try_with(|a| a.replace(self.outer)).ok().flatten();
        let written = me.is_some_and(|a| a.scope == active.0 && a.written);
        let panicking = std::thread::panicking();
        let always = std::env::var_os("MEMPROF_TEST_DUMP").is_some_and(|v| v == "always");
        if written && panicking {
            // The hook wrote this panic's profile. Outer guards unwound by
            // the same panic must not overwrite it with a later heap.
            if let Some(outer) = self.outer {
                let _ = ARMED.try_with(|a| {
                    a.set(Some(Armed {
                        written: true,
                        ..outer
                    }))
                });
            }
            return;
        }
        if !panicking && !always {
            if written {
                // The panic was caught and the test went on: as for a
                // passing test, leave no file.
                let path = without_sampling(|| scope_profile_path("").0);
                let _ = std::fs::remove_file(path);
            }
            return;
        }
        // The hook did not write (see `DumpOnPanic`), or the test passed
        // with `MEMPROF_TEST_DUMP=always`.
        let (_, profile) = active.finish();
        without_sampling(|| {
            if let Some(path) = write_scope_profile(&profile, "") {
                eprintln!(
                    "memprof: heap profile of this test written to {}",
                    path.display()
                );
            }
        });
    }
}

fn test_dir() -> PathBuf {
    std::env::var_os("MEMPROF_TEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("target/memprof"))
}

/// Writes `profile` atomically to the test directory, named after the
/// thread; `None` (and a note) if that fails.
fn write_scope_profile(profile: &HeapProfile, what: &str) -> Option<PathBuf> {
    let (path, tmp) = scope_profile_path(what);
    let dir = test_dir();
    let result = std::fs::create_dir_all(&dir)
        .and_then(|()| std::fs::File::create(&tmp))
        .and_then(|f| profile.write_pprof(std::io::BufWriter::new(f)))
        .and_then(|()| std::fs::rename(&tmp, &path));
    match result {
        Ok(()) => Some(path),
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            eprintln!(
                "memprof: cannot write the test's heap profile to {}: {e}",
                path.display()
            );
            None
        }
    }
}

/// Where this thread's scope profile `what` goes, and the temporary file
/// it is written through.
fn scope_profile_path(what: &str) -> (PathBuf, PathBuf) {
    let thread = std::thread::current();
    let name: String = thread
        .name()
        .unwrap_or("thread")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let dir = test_dir();
    let file = if what.is_empty() {
        format!("{name}.pb.gz")
    } else {
        format!("{name}.{what}.pb.gz")
    };
    let path = dir.join(file);
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    (path, tmp)
}

/// An assertion's panic message: `headline`, the top sites (live blocks
/// or all allocations), and the path of the scope's profile, written as
/// `<thread>.<what>.pb.gz`.
fn failure_message(
    profile: &HeapProfile,
    what: &str,
    live: bool,
    headline: impl FnOnce() -> String,
) -> String {
    without_sampling(|| {
        let path = write_scope_profile(profile, what);
        let mut msg = headline();
        for line in top_lines(profile, live, 5) {
            msg.push_str("\n  ");
            msg.push_str(&line);
        }
        msg.push_str(&path_note(path));
        msg
    })
}

fn path_note(path: Option<PathBuf>) -> String {
    match path {
        Some(p) => format!(
            "\n  profile: {} (go tool pprof -top -sample_index=alloc_space {})",
            p.display(),
            p.display()
        ),
        None => String::new(),
    }
}

/// "count × size B at function (file:line)" lines, most first; `live`
/// selects blocks still live, otherwise all allocations.
fn top_lines(profile: &HeapProfile, live: bool, n: usize) -> Vec<String> {
    let mut rows: Vec<(u64, u64, String)> = Vec::new();
    for r in profile.records() {
        let count = if live {
            r.inuse_objects()
        } else {
            r.alloc_objects()
        };
        if count == 0 {
            continue;
        }
        let site = site_of(&r.frames());
        rows.push((
            count * r.object_size(),
            count,
            format!("{count} × {} B at {site}", r.object_size()),
        ));
    }
    rows.sort_by(|a, b| b.0.cmp(&a.0).then(b.1.cmp(&a.1)));
    rows.into_iter().take(n).map(|r| r.2).collect()
}
