//! `MEMPROF_TRACE`, through a real process (the `trace_probe` binary):
//! with an interval of 100 ms, a process that allocates for 1.2 s prints
//! one well-formed line per interval at most, with time, in-use estimate
//! ± error, allocated bytes growing, rate, RSS and dropped samples; a
//! process that does not allocate prints nothing; a bad value prints one
//! warning and no line.
//!
//! Its own binary because the environment is read once per process.

use allocator_tests::*;
use std::process::Command;
use std::time::Duration;

const PROBE: &str = env!("CARGO_BIN_EXE_trace_probe");

fn run(trace: &str, args: &[&str]) -> (String, String) {
    let out = output_within(
        Command::new(PROBE)
            .args(args)
            .env_remove("MEMPROFILERATE")
            .env_remove("MEMPROFILE")
            .env("MEMPROF_TRACE", trace),
        Duration::from_secs(60),
    );
    assert!(out.status.success(), "{out:?}");
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// One parsed line: (ms since start, in-use, error, allocated, since, per
/// second, rss, dropped), byte figures as printed (unit strings).
#[derive(Debug)]
struct Line {
    ms: u64,
    allocated: f64,
    since: f64,
    rss: f64,
}

/// `12.3 MiB` or `812 B` in bytes.
fn bytes(s: &str) -> f64 {
    let (n, unit) = s
        .trim()
        .split_once(' ')
        .unwrap_or_else(|| panic!("no unit in {s:?}"));
    let n: f64 = n.parse().unwrap_or_else(|_| panic!("not a number: {s:?}"));
    let scale = match unit {
        "B" => 1.0,
        "KiB" => 1024.0,
        "MiB" => 1024.0 * 1024.0,
        "GiB" => 1024.0 * 1024.0 * 1024.0,
        other => panic!("unit {other:?} in {s:?}"),
    };
    n * scale
}

/// Parses `memprof: @1.503s inuse A ± B, allocated C (+D, E/s), rss F, dropped G`.
fn parse(line: &str) -> Line {
    let rest = line
        .strip_prefix("memprof: @")
        .unwrap_or_else(|| panic!("{line:?}"));
    let (secs, rest) = rest.split_once("s inuse ").unwrap();
    let (s, ms) = secs.split_once('.').unwrap();
    assert_eq!(ms.len(), 3, "{line:?}");
    let ms = s.parse::<u64>().unwrap() * 1000 + ms.parse::<u64>().unwrap();
    let (inuse, rest) = rest.split_once(" ± ").unwrap();
    let (error, rest) = rest.split_once(", allocated ").unwrap();
    let (allocated, rest) = rest.split_once(" (+").unwrap();
    let (since, rest) = rest.split_once(", ").unwrap();
    let (per_sec, rest) = rest.split_once("/s), rss ").unwrap();
    let (rss, dropped) = rest.split_once(", dropped ").unwrap();
    let _: u64 = dropped
        .parse()
        .unwrap_or_else(|_| panic!("dropped in {line:?}"));
    let (inuse, error, per_sec) = (bytes(inuse), bytes(error), bytes(per_sec));
    assert!(inuse >= 0.0 && error >= 0.0 && per_sec >= 0.0);
    Line {
        ms,
        allocated: bytes(allocated),
        since: bytes(since),
        rss: bytes(rss),
    }
}

#[test]
fn an_allocating_process_prints_one_line_per_interval() {
    let (stdout, stderr) = run("100ms", &["--alloc-ms", "1200"]);
    assert_eq!(stdout.trim(), "done");
    let lines: Vec<Line> = stderr
        .lines()
        .filter(|l| !l.starts_with("memprof: recording every allocation"))
        .map(parse)
        .collect();
    // 1.2 s of allocation at 1 MiB a millisecond: a line every 100 ms,
    // give or take the coarse clock and a slow machine.
    assert!(lines.len() >= 6, "{} lines:\n{stderr}", lines.len());
    assert!(lines.len() <= 13, "{} lines:\n{stderr}", lines.len());
    for pair in lines.windows(2) {
        let (a, b) = (&pair[0], &pair[1]);
        assert!(b.ms >= a.ms + 100, "two lines within 100 ms:\n{stderr}");
        assert!(
            b.allocated > a.allocated,
            "allocated does not grow:\n{stderr}"
        );
        // The line's "+D" is the growth since the previous line (to the
        // printed precision: 0.1 of the unit).
        let tol = 0.06 * b.since.max(a.allocated * 0.002) + 1024.0 * 1024.0;
        assert!(
            (b.allocated - a.allocated - b.since).abs() <= tol,
            "since {} vs {}:\n{stderr}",
            b.since,
            b.allocated - a.allocated
        );
        assert!(b.rss > 1024.0 * 1024.0);
    }
}

#[test]
fn a_process_that_does_not_allocate_prints_nothing() {
    let (stdout, stderr) = run("100ms", &["--idle-ms", "600"]);
    assert_eq!(stdout.trim(), "done");
    let traced = stderr
        .lines()
        .filter(|l| l.starts_with("memprof: @"))
        .count();
    assert_eq!(traced, 0, "an idle process traced:\n{stderr}");
}

#[test]
fn one_second_is_the_default_and_zero_is_off() {
    let (_, stderr) = run("1", &["--alloc-ms", "1500"]);
    let n = stderr
        .lines()
        .filter(|l| l.starts_with("memprof: @"))
        .count();
    assert!(
        (1..=2).contains(&n),
        "MEMPROF_TRACE=1 over 1.5 s:\n{stderr}"
    );
    let (_, stderr) = run("0", &["--alloc-ms", "300"]);
    assert_eq!(stderr, "", "MEMPROF_TRACE=0");
}

#[test]
fn a_bad_value_warns_once_and_traces_nothing() {
    for bad in ["fast", "2", "0s", "10h", ""] {
        let (_, stderr) = run(bad, &["--alloc-ms", "300"]);
        assert_eq!(stderr.lines().count(), 1, "{bad:?}:\n{stderr}");
        assert!(
            stderr.starts_with(&format!(
                "memprof: ignoring MEMPROF_TRACE=\"{bad}\": expected "
            )),
            "{bad:?}:\n{stderr}"
        );
    }
}
