//! The `memprof` binary end to end: `top`, `diff` and `flame` on Go's
//! reference heap profiles (`tests/data`) print what `go tool pprof`
//! prints and draw the flame graphs; every bad input (missing, empty,
//! garbage, truncated, corrupt) is one line on stderr, `memprof: FILE:
//! reason`, with exit code 1, and a usage error exits with 2. No input
//! makes it panic (exit code 101).
//!
//! `go tool pprof` is required: without it the comparisons fail, never
//! skip.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

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
    for args in [vec!["top", &p], vec!["flame", &p, "-o", "/dev/null"]] {
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
