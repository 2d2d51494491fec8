//! Labels (`with_labels`, `set_labels`, `LabelsExt::with_labels`) at rate 1
//! are exact: two tenants' tasks running interleaved on a multi-threaded
//! tokio runtime, moving between its workers, get exactly their own
//! allocated and in-use numbers per record and per tenant, in process
//! (`by_label`, `Record::label`), through both readers of the pprof file
//! (string labels on samples) and through `go tool pprof -tagfocus`. A
//! block keeps the labels it was allocated under when another thread or
//! another tenant's scope frees it. Labels nest and merge; a guard restores
//! the labels it replaced. At a sampled rate the per-tenant estimates are
//! unbiased over 200 seeded runs.
//!
//! Its own binary because it sets the process-wide rate; every test takes
//! `rate_lock`, and each uses label values of its own.

use allocator_tests::*;
use memprof::LabelsExt;
use std::alloc::System;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::thread::ThreadId;
use std::time::Duration;

#[global_allocator]
static A: memprof::Sampled<System> = memprof::Sampled::new(System);

/// The totals of label `key` = `value` in `p` (zero if absent).
fn label_totals(p: &memprof::HeapProfile, key: &str, value: &str) -> memprof::Totals {
    p.by_label(key)
        .into_iter()
        .find(|(v, _)| v == value)
        .map(|(_, t)| t)
        .unwrap_or_default()
}

fn totals_array(t: memprof::Totals) -> [i64; 4] {
    [
        t.alloc_objects,
        t.alloc_bytes,
        t.inuse_objects,
        t.inuse_bytes,
    ]
    .map(|v| v as i64)
}

/// `[alloc_objects, alloc_bytes, inuse_objects, inuse_bytes]` of the
/// records of `func` with object size `size` whose labels are `labels`.
fn labelled_records(
    p: &memprof::HeapProfile,
    func: &str,
    size: u64,
    labels: &[(&str, &str)],
) -> [u64; 4] {
    let mut filter = FnFilter::new(func);
    let want: Vec<(String, String)> = labels
        .iter()
        .map(|&(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let mut t = [0; 4];
    for r in p.records() {
        if r.object_size() == size && r.labels() == want.as_slice() && filter.matches(r) {
            t[0] += r.alloc_objects();
            t[1] += r.alloc_bytes();
            t[2] += r.inuse_objects();
            t[3] += r.inuse_bytes();
        }
    }
    t
}

// ---------------------------------------------------------------------------
// Two tenants on a multi-threaded tokio runtime, at rate 1.

/// One tenant of the tokio test: its label value and the two object sizes
/// its tasks allocate (sizes of its own, so records tell tenants apart
/// even without labels).
struct Tenant {
    name: &'static str,
    keep: usize,
    churn: usize,
}

const ACME: Tenant = Tenant {
    name: "acme",
    keep: 1208,
    churn: 344,
};
const INITECH: Tenant = Tenant {
    name: "initech",
    keep: 2216,
    churn: 488,
};

const TASKS: usize = 8;
const ROUNDS: usize = 48;
/// Every `FREE_EVERY`-th round a task frees one of the blocks it kept.
const FREE_EVERY: usize = 4;

/// The blocks of the tokio test, allocated here and nowhere else.
#[inline(never)]
fn tenant_block(size: usize) -> Vec<u8> {
    own_body("tenant_block");
    std::hint::black_box(Vec::with_capacity(size))
}

/// Returns `Pending` once after waking itself: a yield that allocates
/// nothing (the task goes back to a run queue, which another worker may
/// steal from).
struct YieldOnce(bool);

impl Future for YieldOnce {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.0 {
            return Poll::Ready(());
        }
        self.0 = true;
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

/// One task: per round, a churn block that lives across an `.await` and a
/// kept block; a short sleep every 8 rounds (woken by the timer, on any
/// worker), and one kept block freed every `FREE_EVERY` rounds. The
/// vectors come from the caller, with room for everything, so the task
/// itself allocates only its blocks.
async fn tenant_task(
    t: &'static Tenant,
    mut kept: Vec<Vec<u8>>,
    mut threads: Vec<ThreadId>,
) -> (Vec<Vec<u8>>, Vec<ThreadId>) {
    for i in 0..ROUNDS {
        let churn = tenant_block(t.churn);
        threads.push(std::thread::current().id());
        YieldOnce(false).await;
        kept.push(tenant_block(t.keep));
        threads.push(std::thread::current().id());
        if i % 8 == 7 {
            tokio::time::sleep(Duration::from_millis(1)).await;
            threads.push(std::thread::current().id());
        }
        drop(churn);
        if i % FREE_EVERY == FREE_EVERY - 1 {
            drop(kept.swap_remove(0));
        }
    }
    (kept, threads)
}

/// The exact values of one tenant of the tokio test while its kept blocks
/// are live: per size `(size, [alloc_objects, alloc_bytes, inuse_objects,
/// inuse_bytes])`, and the totals.
fn tenant_truth(t: &Tenant) -> ([(u64, [u64; 4]); 2], [u64; 4]) {
    let allocs = (TASKS * ROUNDS) as u64;
    let live = (TASKS * (ROUNDS - ROUNDS / FREE_EVERY)) as u64;
    let (keep, churn) = (t.keep as u64, t.churn as u64);
    let per_size = [
        (keep, [allocs, allocs * keep, live, live * keep]),
        (churn, [allocs, allocs * churn, 0, 0]),
    ];
    let total = [2 * allocs, allocs * (keep + churn), live, live * keep];
    (per_size, total)
}

/// `go tool pprof -top` of `path` with `args`: the sum of the samples the
/// filters keep, from the report's header.
fn go_top_total(path: &std::path::Path, args: &[&str]) -> i64 {
    let report = go_top(path, args);
    top_shown(&report)
        .unwrap_or_else(|| panic!("no total in go tool pprof -top {args:?}:\n{report}"))
        .0
}

#[test]
fn two_tenants_on_a_multi_threaded_runtime_get_exact_numbers() {
    let _rate = rate_lock();
    let _dog = watchdog(120, "labels: tokio tenants");
    memprof::set_rate(1);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_time()
        .build()
        .unwrap();
    // Interleaved: acme, initech, acme, ... All made on this thread,
    // outside any label; each poll sets its task's labels.
    let mut handles = Vec::with_capacity(2 * TASKS);
    for _ in 0..TASKS {
        for t in [&ACME, &INITECH] {
            let kept = Vec::with_capacity(ROUNDS);
            let threads = Vec::with_capacity(3 * ROUNDS);
            let task = tenant_task(t, kept, threads).with_labels(&[("tenant", t.name)]);
            handles.push(rt.spawn(task));
        }
    }
    let results: Vec<(Vec<Vec<u8>>, Vec<ThreadId>)> = rt.block_on(async {
        let mut out = Vec::with_capacity(handles.len());
        for h in handles {
            out.push(h.await.unwrap());
        }
        out
    });
    // The tasks really moved between the workers.
    let moved = results
        .iter()
        .filter(|(_, threads)| threads.iter().any(|t| *t != threads[0]))
        .count();
    let workers: std::collections::HashSet<ThreadId> = results
        .iter()
        .flat_map(|(_, t)| t.iter().copied())
        .collect();
    eprintln!(
        "{moved} of {} tasks ran on more than one worker; {} workers ran tasks",
        results.len(),
        workers.len()
    );
    assert_eq!(workers.len(), 2, "both workers ran tasks");
    assert!(moved >= 2, "only {moved} tasks moved between workers");

    let p = memprof::heap_profile();
    let dir = temp_dir("labels-tokio");
    let file = write_pprof(&p, &dir, "heap.pb.gz");
    for t in [&ACME, &INITECH] {
        let (per_size, total) = tenant_truth(t);
        for (size, want) in per_size {
            assert_eq!(
                labelled_records(&p, "tenant_block", size, &[("tenant", t.name)]),
                want,
                "{}: records of {size} B",
                t.name
            );
            // Nothing of this size was recorded without the label.
            assert_eq!(
                record_sum(&p, "tenant_block", Some(size)),
                want,
                "{}: every {size} B record carries the label",
                t.name
            );
        }
        let by = label_totals(&p, "tenant", t.name);
        assert_eq!(
            totals_array(by),
            total.map(|v| v as i64),
            "{}: by_label(\"tenant\")",
            t.name
        );
    }

    // Both readers: the samples with the string label carry the same
    // numbers, per size and in total.
    for d in decode_both(&file, &[]) {
        d.assert_go_heap_shape(1);
        for t in [&ACME, &INITECH] {
            let (per_size, total) = tenant_truth(t);
            let of_tenant = |s: &Sample| s.str_label("tenant") == Some(t.name);
            assert_eq!(
                d.sum_where(of_tenant),
                total.map(|v| v as i64),
                "{}: tenant {}",
                d.reader,
                t.name
            );
            for (size, want) in per_size {
                assert_eq!(
                    d.sum_where(|s| of_tenant(s)
                        && s.has_fn("tenant_block")
                        && s.bytes == Some(size as i64)),
                    want.map(|v| v as i64),
                    "{}: tenant {}, {size} B",
                    d.reader,
                    t.name
                );
                // No sample of this size lacks the label.
                assert_eq!(
                    d.sum_where(|s| !of_tenant(s)
                        && s.has_fn("tenant_block")
                        && s.bytes == Some(size as i64)),
                    [0; 4],
                    "{}: unlabelled {size} B samples",
                    d.reader
                );
            }
        }
    }

    // go tool pprof's own label filter gives the tenant's totals.
    for t in [&ACME, &INITECH] {
        let (_, total) = tenant_truth(t);
        let focus = format!("-tagfocus=tenant={}", t.name);
        for (index, want) in [("alloc_space", total[1]), ("inuse_space", total[3])] {
            assert_eq!(
                go_top_total(&file, &[&focus, &format!("-sample_index={index}")]),
                want as i64,
                "go tool pprof -top {focus} -sample_index={index}"
            );
        }
    }

    // Freed (on this thread, outside any label), in-use drops to 0 under
    // each tenant's label; the allocated totals stay.
    drop(results);
    let p = memprof::heap_profile();
    for t in [&ACME, &INITECH] {
        let (per_size, total) = tenant_truth(t);
        let by = label_totals(&p, "tenant", t.name);
        assert_eq!(
            totals_array(by),
            [total[0], total[1], 0, 0].map(|v| v as i64),
            "{} after the free",
            t.name
        );
        for (size, want) in per_size {
            assert_eq!(
                labelled_records(&p, "tenant_block", size, &[("tenant", t.name)]),
                [want[0], want[1], 0, 0],
                "{}: {size} B after the free",
                t.name
            );
        }
    }
    drop(rt);
}

// ---------------------------------------------------------------------------
// A block keeps its labels, whoever frees it.

const HANDOFF_SIZE: usize = 777;
const HANDOFF_BLOCKS: usize = 100;

#[inline(never)]
fn handoff_block() -> Vec<u8> {
    std::hint::black_box(Vec::with_capacity(HANDOFF_SIZE))
}

#[test]
fn a_block_keeps_its_labels_when_another_thread_or_tenant_frees_it() {
    let _rate = rate_lock();
    let _dog = watchdog(60, "labels: cross-thread frees");
    memprof::set_rate(1);
    let size = HANDOFF_SIZE as u64;
    let n = HANDOFF_BLOCKS as u64;
    let mut blocks = Vec::with_capacity(HANDOFF_BLOCKS);
    memprof::with_labels(&[("tenant", "hooli")], || {
        for _ in 0..HANDOFF_BLOCKS {
            blocks.push(handoff_block());
        }
    });
    let p = memprof::heap_profile();
    let all = [n, n * size, n, n * size];
    assert_eq!(
        labelled_records(&p, "handoff_block", size, &[("tenant", "hooli")]),
        all
    );
    assert_eq!(
        totals_array(label_totals(&p, "tenant", "hooli")),
        all.map(|v| v as i64)
    );

    // 60 blocks freed on another thread, inside another tenant's scope.
    let later = blocks.split_off(40);
    std::thread::spawn(move || {
        memprof::with_labels(&[("tenant", "globex")], || drop(later));
    })
    .join()
    .unwrap();
    let p = memprof::heap_profile();
    let left = [n, n * size, 40, 40 * size];
    assert_eq!(
        labelled_records(&p, "handoff_block", size, &[("tenant", "hooli")]),
        left,
        "in-use dropped under the label the blocks were allocated with"
    );
    assert_eq!(
        totals_array(label_totals(&p, "tenant", "hooli")),
        left.map(|v| v as i64)
    );
    assert_eq!(
        label_totals(&p, "tenant", "globex"),
        memprof::Totals::default(),
        "freeing under a label charges nothing to it"
    );
    let dir = temp_dir("labels-handoff");
    let file = write_pprof(&p, &dir, "heap.pb.gz");
    for d in decode_both(&file, &["handoff_block"]) {
        assert_eq!(
            d.sum_where(|s| s.str_label("tenant") == Some("hooli") && s.bytes == Some(size as i64)),
            left.map(|v| v as i64),
            "{}",
            d.reader
        );
        assert_eq!(
            d.sum_where(|s| s.str_label("tenant") != Some("hooli")),
            [0; 4],
            "{}: every sample of handoff_block is hooli's",
            d.reader
        );
    }

    // The rest freed by a thread without labels: in-use back to 0.
    std::thread::spawn(move || drop(blocks)).join().unwrap();
    let p = memprof::heap_profile();
    assert_eq!(
        labelled_records(&p, "handoff_block", size, &[("tenant", "hooli")]),
        [n, n * size, 0, 0]
    );
    assert_eq!(
        totals_array(label_totals(&p, "tenant", "hooli")),
        [n, n * size, 0, 0].map(|v| v as i64)
    );
}

// ---------------------------------------------------------------------------
// Nesting, merging and restoring.

/// The blocks of the nesting test; each size is allocated once, under a
/// known label set.
#[inline(never)]
fn nest_block(size: usize) -> Vec<u8> {
    own_body("nest_block");
    std::hint::black_box(Vec::with_capacity(size))
}

/// An async block that allocates one `nest_block`.
async fn nest_task(size: usize) -> Vec<u8> {
    YieldOnce(false).await;
    nest_block(size)
}

#[test]
fn labels_nest_merge_and_are_restored() {
    let _rate = rate_lock();
    let _dog = watchdog(60, "labels: nesting");
    memprof::set_rate(1);
    let mut kept = Vec::with_capacity(16);
    // (size, its label set, sorted by key)
    let mut want: Vec<(usize, Vec<(&str, &str)>)> = Vec::new();
    memprof::with_labels(&[("svc", "nest-a"), ("op", "get")], || {
        kept.push(nest_block(1001));
        memprof::with_labels(&[("op", "put"), ("zone", "eu")], || {
            // The inner `op` replaces the outer one; `svc` stays.
            kept.push(nest_block(1002));
        });
        kept.push(nest_block(1003));
        let guard = memprof::set_labels(&[("svc", "nest-b")]);
        kept.push(nest_block(1004));
        {
            let _inner = memprof::set_labels(&[("zone", "us")]);
            kept.push(nest_block(1005));
        }
        kept.push(nest_block(1006));
        drop(guard);
        kept.push(nest_block(1007));
        // Of a key given twice in one call, the last value wins.
        memprof::with_labels(&[("op", "x"), ("op", "y")], || kept.push(nest_block(1008)));
    });
    kept.push(nest_block(1009));
    // A panic out of `with_labels` restores the labels as it unwinds.
    let caught = std::panic::catch_unwind(|| {
        memprof::with_labels(&[("svc", "nest-panic")], || {
            std::panic::resume_unwind(Box::new("out of with_labels"))
        })
    });
    assert!(caught.is_err());
    kept.push(nest_block(1010));
    // A future made inside a scope takes that scope's labels with its own;
    // polled on a thread with other labels, it allocates under its own,
    // and the thread's are back after each poll.
    let fut = memprof::with_labels(&[("svc", "nest-fut")], || {
        nest_task(1011).with_labels(&[("op", "async")])
    });
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    memprof::with_labels(&[("svc", "poller")], || {
        kept.push(rt.block_on(fut));
        kept.push(nest_block(1012));
    });
    drop(rt);
    want.extend([
        (1001, vec![("op", "get"), ("svc", "nest-a")]),
        (1002, vec![("op", "put"), ("svc", "nest-a"), ("zone", "eu")]),
        (1003, vec![("op", "get"), ("svc", "nest-a")]),
        (1004, vec![("op", "get"), ("svc", "nest-b")]),
        (1005, vec![("op", "get"), ("svc", "nest-b"), ("zone", "us")]),
        (1006, vec![("op", "get"), ("svc", "nest-b")]),
        (1007, vec![("op", "get"), ("svc", "nest-a")]),
        (1008, vec![("op", "y"), ("svc", "nest-a")]),
        (1009, vec![]),
        (1010, vec![]),
        (1011, vec![("op", "async"), ("svc", "nest-fut")]),
        (1012, vec![("svc", "poller")]),
    ]);

    let p = memprof::heap_profile();
    let mut filter = FnFilter::new("nest_block");
    for (size, labels) in &want {
        let recs: Vec<&memprof::Record> = p
            .records()
            .filter(|r| r.object_size() == *size as u64 && filter.matches(r))
            .collect();
        assert_eq!(recs.len(), 1, "{size}: one record");
        let r = recs[0];
        let got: Vec<(&str, &str)> = r
            .labels()
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(&got, labels, "labels of the {size} B block");
        for (k, v) in labels {
            assert_eq!(r.label(k), Some(*v), "{size}: label {k}");
        }
        assert_eq!(r.label("nope"), None);
        let s = *size as u64;
        assert_eq!(
            [
                r.alloc_objects(),
                r.alloc_bytes(),
                r.inuse_objects(),
                r.inuse_bytes()
            ],
            [1, s, 1, s]
        );
    }
    // by_label sums over every set holding the key: op=get is 1001, 1003,
    // 1004, 1005, 1006 and 1007.
    let get = (1001 + 1003 + 1004 + 1005 + 1006 + 1007) as i64;
    assert_eq!(
        totals_array(label_totals(&p, "op", "get")),
        [6, get, 6, get]
    );

    let dir = temp_dir("labels-nest");
    let file = write_pprof(&p, &dir, "heap.pb.gz");
    for d in decode_both(&file, &["nest_block"]) {
        for (size, labels) in &want {
            let samples: Vec<&Sample> = d
                .with_fn("nest_block")
                .filter(|s| s.bytes == Some(*size as i64))
                .collect();
            assert_eq!(samples.len(), 1, "{}: {size}", d.reader);
            let got: Vec<(&str, &str)> = samples[0]
                .str_labels
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            assert_eq!(&got, labels, "{}: labels of the {size} B sample", d.reader);
        }
        assert_eq!(
            d.sum_where(|s| s.str_label("op") == Some("get")),
            [6, get, 6, get],
            "{}",
            d.reader
        );
    }
    drop(kept);
}

// ---------------------------------------------------------------------------
// Unbiased per-label estimates at a sampled rate.

/// Allowed distance from the truth, in standard deviations (as in
/// sampled_accuracy.rs).
const SIGMAS: f64 = 5.0;

const STAT_RATE: u64 = 4096;
const STAT_RUNS: usize = 200;
const STAT_EACH: usize = 100;
const STAT_A: [usize; 3] = [48, 700, 3000];
const STAT_B: [usize; 3] = [96, 1500, 9000];

#[inline(never)]
fn stat_block(size: usize) -> Vec<u8> {
    own_body("stat_block");
    std::hint::black_box(Vec::with_capacity(size))
}

/// One run: `STAT_EACH` blocks of each size of each tenant, the two
/// tenants' allocations interleaved one by one.
#[inline(never)]
fn stat_run(out: &mut Vec<Vec<u8>>) {
    for i in 0..STAT_EACH * STAT_A.len() {
        let j = i % STAT_A.len();
        memprof::with_labels(&[("tenant", "stat-a")], || out.push(stat_block(STAT_A[j])));
        let _g = memprof::set_labels(&[("tenant", "stat-b")]);
        out.push(stat_block(STAT_B[j]));
    }
}

/// Runs of tenant `stat-a` and `stat-b` at a 4 KiB rate, 200 seeds. Each
/// run's in-use estimate per tenant is its samples' weights; the mean of
/// the 200 runs must be within 5 standard errors of the truth (each run's
/// SD is `estimate_sd`: 8.9% for stat-a's 375 kB, 3.7% for stat-b's
/// 1.06 MB; the mean's 0.63% and 0.26%), and the spread of the runs must match the
/// predicted SD (ratio in [0.7, 1.4], more than 6 of its standard errors
/// away on each side for 200 runs). A wrong weight, labels swapped or mixed
/// between the tenants, or samples lost under labels fail it. False
/// failures: 2 × 5.7e-7 for the means, and below 1e-6 for the spreads:
/// about 2e-6 per run. Freed, each tenant's in-use is exactly 0 again
/// (every sample is freed with its own weight), and the alloc growth of
/// each run equals its in-use estimate.
#[test]
fn labelled_estimates_are_unbiased_at_a_sampled_rate() {
    let _rate = rate_lock();
    let _dog = watchdog(120, "labels: unbiased estimates");
    memprof::set_rate(STAT_RATE as usize);
    let sizes = |set: [usize; 3]| {
        set.into_iter()
            .flat_map(|s| std::iter::repeat_n(s as u64, STAT_EACH))
    };
    let truth = [
        sizes(STAT_A).sum::<u64>() as f64,
        sizes(STAT_B).sum::<u64>() as f64,
    ];
    let sd = [
        estimate_sd(sizes(STAT_A), STAT_RATE),
        estimate_sd(sizes(STAT_B), STAT_RATE),
    ];
    let tenants = ["stat-a", "stat-b"];
    let mut estimates = [Vec::new(), Vec::new()];
    let mut out = Vec::with_capacity(2 * STAT_EACH * STAT_A.len());
    let before = memprof::heap_profile();
    let mut alloc_before = tenants.map(|t| label_totals(&before, "tenant", t).alloc_bytes);
    for seed in 0..STAT_RUNS as u64 {
        memprof::__private::seed_thread(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ 0x1abe1);
        stat_run(&mut out);
        let p = memprof::heap_profile();
        for (i, t) in tenants.iter().enumerate() {
            let tot = label_totals(&p, "tenant", t);
            // Equal but for the rounding of each of the 3 records to whole
            // bytes in each of the two profiles.
            let growth = tot.alloc_bytes - alloc_before[i];
            assert!(
                growth.abs_diff(tot.inuse_bytes) <= 3,
                "{t}, run {seed}: the run's alloc growth {growth} is its in-use {}",
                tot.inuse_bytes
            );
            alloc_before[i] = tot.alloc_bytes;
            estimates[i].push(tot.inuse_bytes as f64);
        }
        out.clear();
        let p = memprof::heap_profile();
        for t in tenants {
            let tot = label_totals(&p, "tenant", t);
            assert_eq!(
                (tot.inuse_objects, tot.inuse_bytes),
                (0, 0),
                "{t}, run {seed}: in-use after the free"
            );
        }
    }
    let n = STAT_RUNS as f64;
    for i in 0..2 {
        let e = &estimates[i];
        let mean = e.iter().sum::<f64>() / n;
        let spread = (e.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt();
        let se = sd[i] / n.sqrt();
        eprintln!(
            "{}: mean {mean:.0} vs truth {:.0} ({:+.2} SE); spread {spread:.0} vs SD {:.0} ({:.3})",
            tenants[i],
            truth[i],
            (mean - truth[i]) / se,
            sd[i],
            spread / sd[i]
        );
        assert!(
            (mean - truth[i]).abs() <= SIGMAS * se + 1.0,
            "{}: mean of {STAT_RUNS} estimates {mean:.0} vs truth {:.0}: {:+.2} SE",
            tenants[i],
            truth[i],
            (mean - truth[i]) / se
        );
        let ratio = spread / sd[i];
        assert!(
            (0.7..=1.4).contains(&ratio),
            "{}: spread {spread:.0} vs predicted SD {:.0} (ratio {ratio:.2})",
            tenants[i],
            sd[i]
        );
    }
}
