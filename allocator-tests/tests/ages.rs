//! Ages of live objects at rate 1: a set OLD allocated at `site_x`, part of
//! it freed, then, 1.25 s later, a set YOUNG at `site_y`. In process,
//! `older_than(1 s)` holds exactly OLD's live bytes and none of YOUNG's,
//! `Record::oldest_age` and `oldest_sites` tell them apart; in the pprof
//! file, read by both readers, OLD's live samples carry the numeric label
//! `age` = 1 (unit `seconds`), YOUNG's `age` = 0, and freed objects no
//! age; `go tool pprof -tagfocus=age=1s:` keeps OLD's bytes and not
//! YOUNG's. The text profile lists the oldest live sites in `# oldest live`
//! comments and still reads in `go tool pprof` and `google-pprof`.
//!
//! Its own binary because it needs rate 1 process-wide; one test, since
//! the sleep is the slow part.

use allocator_tests::*;
use std::alloc::System;
use std::time::{Duration, Instant};

#[global_allocator]
static A: memprof::Sampled<System> = memprof::Sampled::new(System);

const X_SIZE: u64 = 3000;
const X_N: usize = 100;
const X_LIVE: usize = 60;
const Y_SIZE: u64 = 5000;
const Y_N: usize = 50;
const Z_SIZE: u64 = 7000;
const SLEEP: Duration = Duration::from_millis(1250);

#[inline(never)]
fn site_x(out: &mut Vec<Vec<u8>>) {
    for _ in 0..X_N {
        out.push(std::hint::black_box(Vec::with_capacity(X_SIZE as usize)));
    }
}

#[inline(never)]
fn site_y(out: &mut Vec<Vec<u8>>) {
    for _ in 0..Y_N {
        out.push(std::hint::black_box(Vec::with_capacity(Y_SIZE as usize)));
    }
}

/// Allocated and freed at once: no live object, so no age.
#[inline(never)]
fn site_z() {
    for _ in 0..10 {
        std::hint::black_box(Vec::<u8>::with_capacity(Z_SIZE as usize));
    }
}

/// The records of `func` with object size `size`.
fn records_of<'a>(p: &'a memprof::HeapProfile, func: &str, size: u64) -> Vec<&'a memprof::Record> {
    let mut f = FnFilter::new(func);
    p.records()
        .filter(|r| r.object_size() == size && f.matches(r))
        .collect()
}

#[test]
fn old_and_young_objects_are_told_apart_at_rate_1() {
    let _dog = watchdog(120, "ages");
    memprof::set_rate(1);
    let mut old = Vec::with_capacity(X_N);
    site_x(&mut old);
    old.truncate(X_LIVE); // 40 of OLD freed: no age on those
    site_z();
    let born = Instant::now();
    std::thread::sleep(SLEEP);
    let mut young = Vec::with_capacity(Y_N);
    site_y(&mut young);
    let p = memprof::heap_profile();
    let slept = born.elapsed();

    let (xs, ys) = (X_SIZE, Y_SIZE);
    let (x_live, x_n, y_n) = (X_LIVE as u64, X_N as u64, Y_N as u64);
    let x_want = [x_n, x_n * xs, x_live, x_live * xs];
    let y_want = [y_n, y_n * ys, y_n, y_n * ys];
    assert_eq!(record_sum(&p, "site_x", Some(xs)), x_want);
    assert_eq!(record_sum(&p, "site_y", Some(ys)), y_want);

    // Record::oldest_age.
    let x_recs = records_of(&p, "site_x", xs);
    let y_recs = records_of(&p, "site_y", ys);
    let z_recs = records_of(&p, "site_z", Z_SIZE);
    assert!(!x_recs.is_empty() && !y_recs.is_empty() && !z_recs.is_empty());
    let x_age = x_recs.iter().filter_map(|r| r.oldest_age()).max().unwrap();
    let y_age = y_recs.iter().filter_map(|r| r.oldest_age()).max().unwrap();
    eprintln!("oldest ages: X {x_age:?}, Y {y_age:?} (slept {slept:?})");
    // The coarse clock lags by up to a few ms.
    assert!(x_age >= Duration::from_millis(1200), "X: {x_age:?}");
    assert!(
        x_age <= slept + Duration::from_millis(100),
        "X: {x_age:?} vs {slept:?}"
    );
    assert!(y_age < Duration::from_millis(500), "Y: {y_age:?}");
    assert!(
        z_recs.iter().all(|r| r.oldest_age().is_none()),
        "a record with nothing live has no age"
    );

    // older_than: exactly OLD's live objects, none of YOUNG's.
    let o = p.older_than(Duration::from_secs(1));
    assert_eq!(
        record_sum(&o, "site_x", Some(xs)),
        [x_live, x_live * xs, x_live, x_live * xs],
        "older_than(1 s): X"
    );
    assert_eq!(
        record_sum(&o, "site_y", Some(ys)),
        [0; 4],
        "older_than(1 s): Y"
    );
    assert_eq!(record_sum(&o, "site_z", Some(Z_SIZE)), [0; 4]);
    assert!(o.totals().inuse_bytes <= p.totals().inuse_bytes);
    let all = p.older_than(Duration::ZERO);
    assert_eq!(
        record_sum(&all, "site_y", Some(ys)),
        [y_n, y_n * ys, y_n, y_n * ys],
        "older_than(0): every live object"
    );
    let none = p.older_than(Duration::from_secs(3));
    assert_eq!(
        record_sum(&none, "site_x", Some(xs)),
        [0; 4],
        "older_than(3 s)"
    );

    // oldest_sites: X before Y, and every site listed before X older.
    let sites = p.oldest_sites(usize::MAX);
    let pos = |f: &str| {
        sites
            .iter()
            .position(|s| fn_matches(&s.function, f))
            .unwrap_or_else(|| panic!("{f} not among the oldest sites"))
    };
    let (px, py) = (pos("site_x"), pos("site_y"));
    assert!(px < py, "X at {px}, Y at {py}");
    assert_eq!(sites[px].inuse_bytes, x_live * xs);
    assert!(sites[px].oldest_age.unwrap() >= Duration::from_millis(1200));
    assert!(sites[py].oldest_age.unwrap() < Duration::from_millis(500));
    assert!(sites[..px]
        .iter()
        .all(|s| s.oldest_age >= sites[px].oldest_age));
    assert!(sites.iter().all(|s| !fn_matches(&s.function, "site_z")));
    let top3 = p.oldest_sites(3);
    assert_eq!(top3[..], sites[..3]);

    // The pprof file: OLD's live samples at age 1 s, YOUNG's at 0, the freed
    // ones without an age.
    let dir = temp_dir("ages");
    let file = write_pprof(&p, &dir, "heap.pb.gz");
    let (xi, yi) = (xs as i64, ys as i64);
    let (xl, xn, yn) = (x_live as i64, x_n as i64, y_n as i64);
    for d in decode_both(&file, &["site_x", "site_y", "site_z"]) {
        let r = d.reader;
        let x: Vec<&Sample> = d
            .with_fn("site_x")
            .filter(|s| s.bytes == Some(xi))
            .collect();
        let aged: Vec<&&Sample> = x.iter().filter(|s| s.num_label("age").is_some()).collect();
        assert_eq!(aged.len(), 1, "{r}: X's live objects in one age bucket");
        assert_eq!(
            aged[0].num_label("age"),
            Some((1, "seconds")),
            "{r}: X's age"
        );
        assert_eq!(aged[0].heap_values(), [xl, xl * xi, xl, xl * xi], "{r}");
        let freed: Vec<&&Sample> = x.iter().filter(|s| s.num_label("age").is_none()).collect();
        assert_eq!(freed.len(), 1, "{r}: X's freed objects in one sample");
        let fx = xn - xl;
        assert_eq!(freed[0].heap_values(), [fx, fx * xi, 0, 0], "{r}: X freed");
        let y: Vec<&Sample> = d
            .with_fn("site_y")
            .filter(|s| s.bytes == Some(yi))
            .collect();
        assert_eq!(y.len(), 1, "{r}: Y");
        assert_eq!(y[0].num_label("age"), Some((0, "seconds")), "{r}: Y's age");
        assert_eq!(y[0].heap_values(), [yn, yn * yi, yn, yn * yi], "{r}");
        for z in d.with_fn("site_z") {
            assert_eq!(z.num_label("age"), None, "{r}: Z is all freed");
        }
    }

    // go tool pprof's numeric label filter, on the two sites.
    let focus = "-focus=site_[xyz]";
    let top = |args: &[&str]| {
        let report = go_top(&file, args);
        top_shown(&report)
            .unwrap_or_else(|| panic!("{args:?}:\n{report}"))
            .0
    };
    assert_eq!(
        top(&[focus, "-tagfocus=age=1s:", "-sample_index=inuse_space"]),
        xl * xi,
        "-tagfocus=age=1s: keeps X's live bytes, not Y's"
    );
    assert_eq!(
        top(&[focus, "-tagfocus=age=1s:", "-sample_index=alloc_space"]),
        xl * xi,
        "-tagfocus=age=1s: drops the freed objects (no age) too"
    );
    assert_eq!(
        top(&[focus, "-tagignore=age=1s:", "-sample_index=inuse_space"]),
        yn * yi,
        "-tagignore=age=1s: keeps Y's"
    );
    assert_eq!(
        top(&[focus, "-sample_index=inuse_space"]),
        xl * xi + yn * yi
    );

    // The text: `# oldest live` lines, oldest first, none younger than X,
    // and the readers still take it.
    let text = write_text(&p, &dir, "heap.txt");
    let body = std::fs::read_to_string(&text).unwrap();
    let oldest: Vec<f64> = body
        .lines()
        .filter_map(|l| l.strip_prefix("# oldest live: "))
        .map(|l| {
            let (secs, rest) = l.split_once(" s, ").unwrap_or_else(|| panic!("{l:?}"));
            assert!(rest.contains(" B in use, "), "{l:?}");
            secs.parse().unwrap_or_else(|_| panic!("{l:?}"))
        })
        .collect();
    assert!(
        !oldest.is_empty() && oldest.len() <= 10,
        "{} `# oldest live` lines",
        oldest.len()
    );
    assert!(oldest.windows(2).all(|w| w[0] >= w[1]), "{oldest:?}");
    assert!(
        oldest[0] >= 1.2,
        "the oldest live site is at least X's age: {oldest:?}"
    );
    let proto = go_raw(&file, &["site_x", "site_y"]);
    let stacks: Vec<Vec<u64>> = proto.samples.iter().map(|s| s.addrs.clone()).collect();
    let t = go_raw_text(&text, Some(&stacks));
    assert_eq!(
        t.sum_where(|s| s.bytes == Some(xi)),
        [xn, xn * xi, xl, xl * xi],
        "text: X"
    );
    assert_eq!(
        t.sum_where(|s| s.bytes == Some(yi)),
        [yn, yn * yi, yn, yn * yi],
        "text: Y"
    );
    let exe = std::env::current_exe().unwrap();
    let inuse = google_pprof_text(&exe, &text, "inuse_objects");
    let alloc = google_pprof_text(&exe, &text, "alloc_objects");
    assert_eq!(google_cum(&inuse, "site_x"), xl, "{inuse}");
    assert_eq!(google_cum(&alloc, "site_x"), xn, "{alloc}");
    assert_eq!(google_cum(&inuse, "site_y"), yn, "{inuse}");
    drop((old, young));
}
