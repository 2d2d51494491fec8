//! The `memprof` binary end to end: `top`, `diff` and `flame` on Go's
//! reference heap profiles (`tests/data`) print what `go tool pprof`
//! prints and draw the flame graphs; `report` writes the HTML page, whose
//! top table is `go tool pprof -top`'s, and finds the peak `MEMPROFILE`
//! writes beside a profile of ours (this test binary samples itself); every bad input (missing, empty,
//! garbage, truncated, corrupt) is one line on stderr, `memprof: FILE:
//! reason`, with exit code 1, and a usage error exits with 2. No input
//! makes it panic (exit code 101).
//!
//! `go tool pprof` is required: without it the comparisons fail, never
//! skip.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

// Samples this test binary, so that it can write profiles of its own.
#[global_allocator]
static A: memprof::Sampled<std::alloc::System> = memprof::Sampled::new(std::alloc::System);

fn memprof(args: &[&str]) -> Output {
    let exe = env!("CARGO_BIN_EXE_memprof");
    Command::new(exe)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {exe}: {e} (build it with --features cli)"))
}

fn data(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
        .display()
        .to_string()
}

fn temp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("memprof-cli-{}", std::process::id()));
    std::fs::create_dir_all(&d).expect("temp dir");
    d.join(name)
}

fn stdout(out: &Output) -> String {
    assert!(
        out.status.success(),
        "memprof failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).expect("UTF-8")
}

/// `go tool pprof -top ARGS`, without the lines about the file (binary,
/// time) that memprof does not print.
fn go_top(args: &[&str]) -> String {
    let out = Command::new("go")
        .args(["tool", "pprof", "-top"])
        .args(args)
        .env("PPROF_TMPDIR", std::env::temp_dir())
        .output()
        .unwrap_or_else(|e| panic!("cannot run `go tool pprof` ({e}): install golang-go"));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.starts_with("File: ") && !l.starts_with("Time: "))
        .flat_map(|l| [l, "\n"])
        .collect()
}

#[test]
fn top_prints_what_go_tool_pprof_prints() {
    let heap = data("go1.19-heap-rate512k.pb.gz");
    assert_eq!(stdout(&memprof(&["top", &heap])), go_top(&[&heap]));
    assert_eq!(
        stdout(&memprof(&[
            "top",
            "--sample-index",
            "alloc_space",
            "--cum",
            "-n",
            "3",
            &heap
        ])),
        go_top(&["-sample_index=alloc_space", "-cum", "-nodecount=3", &heap])
    );
}

#[test]
fn diff_prints_what_go_diff_base_prints() {
    let base = data("go1.19-heap-rate1.pb.gz");
    let heap = data("go1.19-heap-rate512k.pb.gz");
    assert_eq!(
        stdout(&memprof(&["diff", &base, &heap])),
        go_top(&[&format!("-diff_base={base}"), &heap])
    );
}

#[test]
fn flame_graphs_are_svg_with_the_functions() {
    let heap = data("go1.19-heap-rate512k.pb.gz");
    let out = temp("flame.svg");
    let o = out.display().to_string();
    stdout(&memprof(&["flame", &heap, "-o", &o]));
    let svg = std::fs::read_to_string(&out).expect("svg written");
    assert!(
        svg.contains("<title>main.allocA ("),
        "the top function is a frame"
    );
    // Without -o, the SVG goes to stdout.
    let printed = stdout(&memprof(&[
        "flame",
        &heap,
        "--sample-index",
        "alloc_objects",
    ]));
    assert!(printed.starts_with("<?xml") && printed.contains("objects"));

    let base = data("go1.19-heap-rate1.pb.gz");
    let diff = temp("diff.svg");
    let d = diff.display().to_string();
    stdout(&memprof(&["diff", &base, &heap, "--flame", "-o", &d]));
    let svg = std::fs::read_to_string(&diff).expect("diff svg written");
    assert!(svg.contains("main.allocA"));
}

/// Runs memprof on `bytes` written to a file: Ok, or one line `memprof:
/// FILE: ...` and exit code 1; never a panic.
fn on_bytes(name: &str, bytes: &[u8]) -> Result<(), String> {
    let path = temp(name);
    std::fs::write(&path, bytes).expect("write input");
    let p = path.display().to_string();
    for args in [
        vec!["top", &p],
        vec!["flame", &p, "-o", "/dev/null"],
        vec!["report", &p, "-o", "/dev/null"],
    ] {
        let out = memprof(&args);
        if out.status.success() {
            continue;
        }
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
        assert_eq!(err.lines().count(), 1, "one line: {err}");
        assert!(err.starts_with(&format!("memprof: {p}: ")), "{err}");
        return Err(err);
    }
    Ok(())
}

#[test]
fn bad_files_are_one_line_and_exit_1() {
    let missing = temp("missing.pb.gz").display().to_string();
    let out = memprof(&["top", &missing]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).starts_with(&format!("memprof: {missing}: ")));

    let e = on_bytes("empty", b"").unwrap_err();
    assert!(e.ends_with("empty file\n"), "{e}");
    let e = on_bytes("garbage", b"hello, world\n").unwrap_err();
    assert!(e.ends_with("not a pprof profile or Go heap text\n"), "{e}");

    let heap = std::fs::read(data("go1.19-heap-rate512k.pb.gz")).expect("reference");
    let e = on_bytes("truncated", &heap[..heap.len() / 2]).unwrap_err();
    assert!(e.ends_with("truncated gzip stream\n"), "{e}");
    // Every 37th prefix and some flipped bytes: Ok or a clean error.
    for end in (0..heap.len()).step_by(37) {
        let _ = on_bytes("prefix", &heap[..end]);
    }
    for at in (10..heap.len()).step_by(53) {
        let mut bad = heap.clone();
        bad[at] ^= 0x5a;
        let _ = on_bytes("flipped", &bad);
    }
}

#[test]
fn usage_errors_exit_2() {
    assert_eq!(memprof(&[]).status.code(), Some(2));
    assert_eq!(memprof(&["top"]).status.code(), Some(2));
    assert_eq!(memprof(&["frobnicate", "x"]).status.code(), Some(2));
    let out = memprof(&[
        "top",
        &data("go1.19-heap-rate1.pb.gz"),
        "--sample-index",
        "cpu",
    ]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "a bad sample index is about the file"
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("must be one of"));
}

/// The text of an HTML fragment: tags removed, entities decoded.
fn html_text(s: &str) -> String {
    let mut out = String::new();
    let mut in_tag = false;
    for c in s.chars() {
        match c {
            '<' => in_tag = true,
            '>' => in_tag = false,
            c if !in_tag => out.push(c),
            _ => {}
        }
    }
    out.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&amp;", "&")
}

/// The rows of the report's top table `id`, each its cells' text joined
/// by single spaces, as `go tool pprof -top` rows split on whitespace.
fn report_rows(html: &str, id: &str) -> Vec<String> {
    let at = html
        .find(&format!("id=\"{id}\""))
        .unwrap_or_else(|| panic!("no {id}"));
    let table = &html[at..];
    let body =
        &table[table.find("<tbody>").expect("tbody")..table.find("</tbody>").expect("/tbody")];
    body.split("</tr>")
        .filter(|r| r.contains("<td"))
        .map(|r| {
            r.split("</td>")
                .map(html_text)
                .map(|c| c.split_whitespace().collect::<Vec<_>>().join(" "))
                .filter(|c| !c.is_empty())
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect()
}

#[test]
fn report_of_a_go_profile_has_go_tool_pprofs_tables() {
    let heap = data("go1.19-heap-rate512k.pb.gz");
    let out = temp("go-report.html");
    let o = out.display().to_string();
    let run = memprof(&["report", &heap, "-o", &o, "--title", "go <heap>"]);
    stdout(&run);
    assert!(run.stderr.is_empty(), "no peak for Go's profile");
    let html = std::fs::read_to_string(&out).expect("report written");
    assert!(html.starts_with("<!DOCTYPE html>"));
    assert!(html.contains("<title>go &lt;heap&gt;</title>"));
    assert_eq!(
        html.matches("<table class=\"top\">").count(),
        4,
        "a table per type"
    );
    for i in 0..4 {
        assert!(html.contains(&format!("id=\"top-{i}\"")), "top-{i}");
        assert!(html.contains(&format!("id=\"flame-{i}\"")), "flame-{i}");
    }
    assert!(!html.contains("id=\"peak\""));
    // Each table's rows are go tool pprof -top's, as are their captions'
    // "Dropped" lines.
    for (i, kind) in [
        "alloc_objects",
        "alloc_space",
        "inuse_objects",
        "inuse_space",
    ]
    .iter()
    .enumerate()
    {
        let go = go_top(&[&format!("-sample_index={kind}"), "-nodecount=200", &heap]);
        let mut lines = go.lines();
        let header: Vec<&str> = lines
            .by_ref()
            .take_while(|l| !l.trim_start().starts_with("flat"))
            .collect();
        let go_rows: Vec<String> = lines
            .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
            .collect();
        assert!(!go_rows.is_empty(), "{go}");
        assert_eq!(report_rows(&html, &format!("top-{i}")), go_rows, "{kind}");
        for h in header
            .iter()
            .filter(|h| h.starts_with("Dropped") || h.starts_with("Showing"))
        {
            let h = h.replace('<', "&lt;");
            assert!(html.contains(&h), "{kind}: caption lacks {h:?}");
        }
    }
    // The top function is in the flame graph and the table.
    assert!(html.contains("main.allocA"));
    // Without -o the page goes to stdout.
    let printed = stdout(&memprof(&["report", &heap, "-n", "3"]));
    assert!(printed.starts_with("<!DOCTYPE html>") && printed.contains("Showing top 3 nodes"));
}

/// Allocates 16 MiB (sampled whatever the rate) and keeps it.
#[inline(never)]
fn cli_report_site() -> Vec<u8> {
    std::hint::black_box(vec![1u8; 16 << 20])
}

#[test]
fn report_of_our_profile_includes_the_peak_beside_it() {
    let dir = temp("ours");
    std::fs::create_dir_all(&dir).expect("dir");
    let heap = dir.join("heap.pb.gz");
    let peak = memprof::peak_path(&heap);
    assert!(peak.ends_with("heap.peak.pb.gz"));
    let kept = cli_report_site();
    memprof::write_heap_profile(&heap).expect("heap written");
    memprof::write_peak_profile(&peak).expect("peak written");
    drop(kept);

    let h = heap.display().to_string();
    let out = dir.join("report.html");
    let run = memprof(&["report", &h, "-o", &out.display().to_string()]);
    stdout(&run);
    let err = String::from_utf8_lossy(&run.stderr);
    assert_eq!(
        err,
        format!(
            "memprof: {h}: including its peak profile {}\n",
            peak.display()
        ),
        "says where the peak came from"
    );
    let html = std::fs::read_to_string(&out).expect("report written");
    assert_eq!(
        html.matches("<table class=\"top\">").count(),
        5,
        "4 + the peak's"
    );
    assert!(html.contains("id=\"peak\"") && html.contains("id=\"peak-top\""));
    let rows = report_rows(&html, "top-3");
    assert!(
        rows.iter().any(|r| r.ends_with("cli_report_site")),
        "the site is a row: {rows:#?}"
    );
    assert!(report_rows(&html, "peak-top")
        .iter()
        .any(|r| r.ends_with("cli_report_site")));

    // The peak itself has no peak; --peak names one; a bad one is one line.
    let run = memprof(&["report", &peak.display().to_string(), "-o", "/dev/null"]);
    stdout(&run);
    assert!(run.stderr.is_empty());
    let bad = dir.join("bad.pb.gz");
    std::fs::write(&bad, b"\x1f\x8b garbage").expect("write");
    let b = bad.display().to_string();
    let run = memprof(&["report", &h, "--peak", &b, "-o", "/dev/null"]);
    assert_eq!(run.status.code(), Some(1));
    let err = String::from_utf8_lossy(&run.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.starts_with(&format!("memprof: {b}: ")), "{err}");
}

#[test]
fn corrupt_report_input_is_one_line_and_exit_1() {
    let mut heap = std::fs::read(data("go1.19-heap-rate512k.pb.gz")).expect("reference");
    let n = heap.len();
    heap[n / 2] ^= 0xff;
    heap.truncate(n - 10);
    let path = temp("corrupt.pb.gz");
    std::fs::write(&path, &heap).expect("write input");
    let p = path.display().to_string();
    let out = memprof(&[
        "report",
        &p,
        "-o",
        &temp("corrupt.html").display().to_string(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    assert!(err.starts_with(&format!("memprof: {p}: ")), "{err}");
    assert!(out.stdout.is_empty());
    assert!(!temp("corrupt.html").exists(), "nothing written");
}
