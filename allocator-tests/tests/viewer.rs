//! The viewer (`memprof::view`) prints what `go tool pprof` prints: the
//! `-top` table (rows, values, percentages, header lines) for every sample
//! type, sorted by flat and by cum, with and without `-nodecount`, on
//! Go's own heap profiles, on a profile this library writes at rate 1,
//! and on legacy `debug=1` text (Go's and ours, sampled and not); the
//! `-diff_base` table; and a flame graph whose frames carry the numbers of
//! the table. Both sides are computed here, nothing is copied from Go.
//!
//! `go tool pprof` is required: without it these tests fail, never skip.
//! Its own binary because it sets the process-wide rate; its tests take
//! `rate_lock`.

use allocator_tests::*;
use memprof::view::{diff, diff_flame_svg, flame_svg, Profile, Top, TopOptions};
use std::alloc::System;
use std::path::{Path, PathBuf};
use std::process::Command;

#[global_allocator]
static A: memprof::Sampled<System> = memprof::Sampled::new(System);

/// A Go reference profile kept in the repository (`tests/data`).
fn reference(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/data")
        .join(name)
}

/// `go tool pprof -top ARGS PATH`, its output; fails loudly without Go.
fn go_report(args: &[&str], path: &Path) -> String {
    let out = Command::new("go")
        .args(["tool", "pprof", "-top"])
        .args(args)
        .arg(path)
        .env("PPROF_TMPDIR", std::env::temp_dir())
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run `go tool pprof` ({e}): install golang-go; this test never skips")
        });
    assert!(
        out.status.success(),
        "go tool pprof -top {args:?} {}: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("go tool pprof prints UTF-8")
}

/// The report's lines without those that describe the file rather than
/// the numbers (binary name, build ID, time), which the viewer leaves out.
fn comparable(report: &str) -> Vec<String> {
    report
        .lines()
        .filter(|l| {
            ![
                "File: ",
                "Build ID: ",
                "Time: ",
                "Duration: ",
                "Main binary filename",
            ]
            .iter()
            .any(|p| l.starts_with(p))
        })
        .map(|l| l.trim_end().to_owned())
        .collect()
}

fn ours(profile: &Profile, options: &TopOptions) -> Vec<String> {
    let top = Top::new(profile, options).expect("top");
    top.render()
        .lines()
        .map(|l| l.trim_end().to_owned())
        .collect()
}

/// The option sets compared: every sample type (and the default), flat
/// and cum order, all rows and the first three.
fn variants(profile: &Profile) -> Vec<(TopOptions, Vec<String>)> {
    let mut out = Vec::new();
    let mut indexes: Vec<Option<String>> = vec![None];
    indexes.extend(profile.sample_types.iter().map(|t| Some(t.kind.clone())));
    for si in indexes {
        for cum in [false, true] {
            for n in [0, 3] {
                let mut args = Vec::new();
                if let Some(si) = &si {
                    args.push(format!("-sample_index={si}"));
                }
                if cum {
                    args.push("-cum".to_owned());
                }
                if n > 0 {
                    args.push(format!("-nodecount={n}"));
                }
                let options = TopOptions {
                    sample_index: si.clone(),
                    node_count: n,
                    cum,
                    ..TopOptions::default()
                };
                out.push((options, args));
            }
        }
    }
    out
}

/// Our table of `profile` equals `go tool pprof -top` of `path`, line by
/// line, for every variant; `rename` maps Go's row names onto ours.
fn assert_top_matches(
    profile: &Profile,
    path: &Path,
    extra: &[&str],
    rename: impl Fn(&str) -> String,
) {
    for (options, args) in variants(profile) {
        let mut all: Vec<&str> = extra.to_vec();
        all.extend(args.iter().map(String::as_str));
        let go: Vec<String> = comparable(&go_report(&all, path))
            .into_iter()
            .map(|l| rename(&l))
            .collect();
        let mine = ours(profile, &options);
        assert_eq!(
            mine,
            go,
            "memprof vs go tool pprof -top {all:?} {}",
            path.display()
        );
    }
}

/// Go's `-addresses` rows name a frame `0000000000401234 <unknown>` (or
/// `[binary]`); the viewer names an unsymbolized frame by the address alone.
fn address_rows(line: &str) -> String {
    let Some(at) = line.find("  ") else {
        return line.to_owned();
    };
    // Rows: "<flat> <flat%> <sum%> <cum> <cum%>  <name>".
    let cols = line.split_whitespace().count();
    if cols < 7
        || !line
            .trim_start()
            .starts_with(|c: char| c.is_ascii_digit() || c == '-')
    {
        return line.to_owned();
    }
    let name_at = line.rfind("  ").unwrap_or(at) + 2;
    let name = &line[name_at..];
    match name.split_once(' ') {
        Some((addr, _)) if addr.len() == 16 && addr.bytes().all(|b| b.is_ascii_hexdigit()) => {
            format!("{}{addr}", &line[..name_at])
        }
        _ => line.to_owned(),
    }
}

/// Text without the `#` lines: only addresses, as pprof reads it.
fn strip_symbols(path: &Path, out: &Path) -> Profile {
    let text = std::fs::read_to_string(path).expect("read text");
    let stripped: String = text
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .flat_map(|l| [l, "\n"])
        .collect();
    std::fs::write(out, &stripped).expect("write stripped text");
    Profile::from_bytes(stripped.as_bytes()).expect("read stripped text")
}

#[test]
fn top_matches_go_on_go_reference_profiles() {
    for name in [
        "go1.19-heap-rate1.pb.gz",
        "go1.19-heap-rate512k.pb.gz",
        "go1.19-allocs-rate512k.pb.gz",
    ] {
        let path = reference(name);
        let profile = Profile::read(&path).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_top_matches(&profile, &path, &[], str::to_owned);
    }
}

#[inline(never)]
fn viewer_site_a() -> Vec<u8> {
    std::hint::black_box(vec![1u8; 3000])
}

#[inline(never)]
fn viewer_site_b(n: usize) -> Vec<Vec<u64>> {
    let more = (0..n)
        .map(|i| std::hint::black_box(vec![i as u64; 100]))
        .collect();
    keep_frame();
    more
}

/// The row of the function whose name ends with `suffix`.
fn row<'a>(top: &'a Top, suffix: &str) -> &'a memprof::view::TopRow {
    top.rows
        .iter()
        .find(|r| r.name.ends_with(suffix))
        .unwrap_or_else(|| panic!("no row {suffix} in\n{}", top.render()))
}

#[test]
fn top_matches_go_on_our_rate_1_profile() {
    let _g = rate_lock();
    memprof::set_rate(1);
    let held: Vec<Vec<u8>> = (0..4).map(|_| viewer_site_a()).collect();
    let more = viewer_site_b(5);
    let snapshot = memprof::heap_profile();
    memprof::set_rate(memprof::DEFAULT_RATE);
    drop((held, more));

    let dir = temp_dir("viewer-rate1");
    let path = write_pprof(&snapshot, &dir, "heap.pb.gz");
    let profile = Profile::read(&path).expect("read our profile");
    // At rate 1 the numbers are exact: 4 x 3000 bytes held.
    let top = Top::new(
        &profile,
        &TopOptions {
            node_fraction: 0.0,
            ..TopOptions::default()
        },
    )
    .expect("top");
    assert_eq!(row(&top, "viewer_site_a").cum, 12_000);
    assert_eq!(
        row(&top, "viewer_site_b").cum,
        5 * 800 + 5 * 24,
        "{}",
        top.render()
    );
    assert_top_matches(&profile, &path, &[], str::to_owned);
}

#[test]
fn legacy_go_text_matches_go() {
    // Go's text without its `#` lines is addresses only, as pprof reads it.
    let dir = temp_dir("viewer-go-text");
    for name in ["go1.19-heap-rate1.txt", "go1.19-heap-rate512k.txt"] {
        let stripped = dir.join(name);
        let profile = strip_symbols(&reference(name), &stripped);
        assert_top_matches(
            &profile,
            &stripped,
            &["-addresses", "-symbolize=none"],
            address_rows,
        );
    }
    // With its `#` lines the viewer names the functions: the same table as
    // Go's pprof profile of the same program at rate 1 (both exact).
    let text = Profile::read(reference("go1.19-heap-rate1.txt")).expect("text");
    let top = Top::new(&text, &TopOptions::default()).expect("top");
    assert!(
        top.rows.iter().any(|r| r.name == "main.holdExact"),
        "{}",
        top.render()
    );
}

#[test]
fn legacy_text_we_write_matches_go() {
    let _g = rate_lock();
    let dir = temp_dir("viewer-our-text");
    for rate in [1usize, 4096] {
        memprof::set_rate(rate);
        let held: Vec<Vec<u8>> = (0..64).map(|_| viewer_site_a()).collect();
        let more = viewer_site_b(50);
        // A stack deeper than memprof keeps: marked truncated both ways.
        let deep = recurse_then_alloc(300, 5000);
        let snapshot = memprof::heap_profile();
        memprof::set_rate(memprof::DEFAULT_RATE);
        drop((held, more, deep));

        // Addresses only, un-sampled as pprof un-samples (rate 4096).
        let text = write_text(&snapshot, &dir, &format!("heap-{rate}.txt"));
        let stripped = dir.join(format!("heap-{rate}-addresses.txt"));
        let profile = strip_symbols(&text, &stripped);
        assert_top_matches(
            &profile,
            &stripped,
            &["-addresses", "-symbolize=none"],
            address_rows,
        );

        if rate == 1 {
            // With the `#` lines, named: the table of the pprof file of the
            // same snapshot (exact at rate 1, so the values agree).
            let named = Profile::read(&text).expect("read our text");
            let proto = write_pprof(&snapshot, &dir, "heap-1.pb.gz");
            let options = TopOptions::default();
            let from_proto = Profile::read(&proto).expect("read our pprof");
            let a = Top::new(&named, &options).expect("top");
            let b = Top::new(&from_proto, &options).expect("top");
            // This test's own functions: sampled at rate 1, so exact in
            // both formats. (Records sampled earlier at another rate hold
            // fractional estimates, which the text rounds per object
            // count and the pprof file per value.)
            let own = [
                "viewer_site_a",
                "viewer_site_b",
                "recurse_then_alloc",
                "legacy_text_we_write_matches_go",
            ];
            let rows = |t: &Top| {
                t.rows
                    .iter()
                    .filter(|r| own.iter().any(|f| r.name.ends_with(f)))
                    .map(|r| (r.name.clone(), r.flat, r.cum))
                    .collect::<Vec<_>>()
            };
            assert_eq!(rows(&a), rows(&b), "text vs pprof of one snapshot");
            assert_eq!(row(&a, "viewer_site_a").cum, 64 * 3000);
            assert!(row(&a, "memprof::truncated").cum >= 5000);
        }
    }
}

#[test]
fn diff_matches_go_diff_base() {
    // Go's profiles: rate 1 as the base of the 512 KiB one.
    let base = reference("go1.19-heap-rate1.pb.gz");
    let file = reference("go1.19-heap-rate512k.pb.gz");
    let d = diff(
        &Profile::read(&base).expect("base"),
        &Profile::read(&file).expect("file"),
    )
    .expect("diff");
    let flag = format!("-diff_base={}", base.display());
    assert_top_matches(&d, &file, &[&flag], str::to_owned);

    // Ours: what a few more sites added.
    let _g = rate_lock();
    memprof::set_rate(1);
    let first: Vec<Vec<u8>> = (0..4).map(|_| viewer_site_a()).collect();
    let before = memprof::heap_profile();
    let second: Vec<Vec<u8>> = (0..10).map(|_| viewer_site_a()).collect();
    let more = viewer_site_b(7);
    let after = memprof::heap_profile();
    memprof::set_rate(memprof::DEFAULT_RATE);
    drop((first, second, more));

    let dir = temp_dir("viewer-diff");
    let base = write_pprof(&before, &dir, "before.pb.gz");
    let file = write_pprof(&after, &dir, "after.pb.gz");
    let (b, a) = (
        Profile::read(&base).expect("base"),
        Profile::read(&file).expect("file"),
    );
    let d = diff(&b, &a).expect("diff");
    let grown = Top::new(
        &d,
        &TopOptions {
            sample_index: Some("inuse_space".into()),
            node_fraction: 0.0,
            ..TopOptions::default()
        },
    )
    .expect("top");
    assert_eq!(row(&grown, "viewer_site_a").cum, 10 * 3000);
    let flag = format!("-diff_base={}", base.display());
    assert_top_matches(&d, &file, &[&flag], str::to_owned);

    let svg = diff_flame_svg(&b, &a, 3, "growth").expect("diff flame");
    assert!(svg.contains("viewer_site_a"), "the grown site is drawn");
}

/// The number in an inferno frame title, `<title>NAME (1,234 bytes, 5%)`.
fn title_value(svg: &str, name: &str) -> i64 {
    let key = format!("<title>{name} (");
    let at = svg.find(&key).unwrap_or_else(|| panic!("no frame {name}")) + key.len();
    let digits: String = svg[at..]
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == ',')
        .filter(char::is_ascii_digit)
        .collect();
    digits.parse().expect("a count")
}

#[test]
fn flame_graph_frames_carry_the_tables_numbers() {
    let _g = rate_lock();
    memprof::set_rate(1);
    let held: Vec<Vec<u8>> = (0..6).map(|_| viewer_site_a()).collect();
    let snapshot = memprof::heap_profile();
    memprof::set_rate(memprof::DEFAULT_RATE);
    drop(held);

    let profile = Profile::from_heap(&snapshot).expect("from_heap");
    let index = profile.sample_index(Some("inuse_space")).expect("index");
    let svg = flame_svg(&profile, index, "inuse_space").expect("svg");
    assert!(svg.starts_with("<?xml") && svg.trim_end().ends_with("</svg>"));
    let top = Top::new(
        &profile,
        &TopOptions {
            sample_index: Some("inuse_space".into()),
            node_fraction: 0.0,
            ..TopOptions::default()
        },
    )
    .expect("top");
    let site = row(&top, "viewer_site_a");
    assert_eq!(site.cum, 6 * 3000);
    assert_eq!(title_value(&svg, &site.name), site.cum);
    assert!(svg.contains(&format!("<title>{} (", site.name)));
}

/// A tiny xorshift, so the random profiles are the same on every run.
fn next(seed: &mut u64) -> u64 {
    *seed ^= *seed << 13;
    *seed ^= *seed >> 7;
    *seed ^= *seed << 17;
    *seed
}

/// A random legacy heap profile (addresses only): recursion (repeated
/// addresses), shared callers, sizes from 8 B to 1 MiB, sampled or not.
fn random_text(seed: &mut u64) -> String {
    let header = match next(seed) % 3 {
        0 => "heapprofile".to_owned(),
        1 => "heap_v2/4096".to_owned(),
        _ => "heap/1048576".to_owned(),
    };
    let mut lines = Vec::new();
    let mut total = [0u64; 4];
    for _ in 0..1 + next(seed) % 40 {
        let size = [8u64, 100, 4096, 1 << 20][(next(seed) % 4) as usize];
        let inuse = next(seed) % 4;
        let alloc = inuse + next(seed) % 4;
        if alloc == 0 {
            continue;
        }
        let depth = 1 + next(seed) % 12;
        let stack: Vec<String> = (0..depth)
            .map(|_| format!("{:#x}", 0x401000 + 0x10 * (next(seed) % 15)))
            .collect();
        let row = [inuse, inuse * size, alloc, alloc * size];
        for (t, v) in total.iter_mut().zip(row) {
            *t += v;
        }
        lines.push(format!(
            "{}: {} [{}: {}] @ {}",
            row[0],
            row[1],
            row[2],
            row[3],
            stack.join(" ")
        ));
    }
    format!(
        "heap profile: {}: {} [{}: {}] @ {header}\n{}\n",
        total[0],
        total[1],
        total[2],
        total[3] + 1,
        lines.join("\n")
    )
}

/// Random profiles (and diffs of them) give the table `go tool pprof`
/// gives: recursion, ties, node cuts and un-sampling included.
#[test]
fn top_matches_go_on_random_legacy_profiles() {
    let dir = temp_dir("viewer-random");
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let flags = ["-addresses", "-symbolize=none"];
    let mut previous: Option<(PathBuf, Profile)> = None;
    for i in 0..12 {
        let text = random_text(&mut seed);
        let path = dir.join(format!("random-{i}.txt"));
        std::fs::write(&path, &text).expect("write");
        let profile =
            Profile::from_bytes(text.as_bytes()).unwrap_or_else(|e| panic!("{e}:\n{text}"));
        assert_top_matches(&profile, &path, &flags, address_rows);
        if let Some((base_path, base)) = previous.take() {
            let flag = format!("-diff_base={}", base_path.display());
            let d = diff(&base, &profile).expect("diff");
            let mut all = flags.to_vec();
            all.push(&flag);
            assert_top_matches(&d, &path, &all, address_rows);
        }
        previous = Some((path, profile));
    }
}
