//! `MEMPROFILERATE` and `MEMPROFILE`, through a real process (the
//! `env_probe` binary, which installs `Sampled`): bad rates warn once on
//! stderr and keep the default, good ones apply silently; an unwritable
//! `MEMPROFILE` gives one message and leaves the exit status alone;
//! `{pid}`/`{bin}` name the file; a profile file another process wrote
//! during the run is not overwritten; and recording every allocation
//! without frame pointers says once how to turn them on.
//!
//! Its own binary because the environment is read once per process: each
//! case is a fresh `env_probe` process (the tests themselves only spawn).

use allocator_tests::*;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

const PROBE: &str = env!("CARGO_BIN_EXE_env_probe");

struct Run {
    code: i32,
    stdout: String,
    /// Without the one-time unwinder hint (see `without_hint`).
    stderr: String,
    raw_stderr: String,
}

/// `stderr` without the line memprof prints once when every allocation is
/// recorded without frame pointers (as in a build without them): the
/// tests here are about the environment, and run in either build.
fn without_hint(stderr: &str) -> String {
    stderr
        .lines()
        .filter(|l| !l.starts_with("memprof: recording every allocation"))
        .map(|l| format!("{l}\n"))
        .collect()
}

fn probe_cmd(envs: &[(&str, &str)], args: &[&str]) -> Command {
    let mut cmd = Command::new(PROBE);
    cmd.args(args)
        .env_remove("MEMPROFILERATE")
        .env_remove("MEMPROFILE")
        .envs(envs.iter().copied());
    cmd
}

fn probe(envs: &[(&str, &str)], args: &[&str]) -> Run {
    let out = output_within(&mut probe_cmd(envs, args), Duration::from_secs(60));
    let raw_stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: without_hint(&raw_stderr),
        raw_stderr,
    }
}

#[test]
fn bad_rates_warn_once_and_keep_the_default() {
    for bad in ["abc", "-5", "99999999999999999999999", "", "1e6"] {
        let r = probe(&[("MEMPROFILERATE", bad)], &[]);
        assert_eq!(r.code, 0, "{bad:?}: exit status");
        assert_eq!(r.stdout.trim(), "rate 524288", "{bad:?}: the default rate");
        assert_eq!(
            r.stderr.lines().count(),
            1,
            "{bad:?}: one line:\n{}",
            r.stderr
        );
        assert!(
            r.stderr.contains("MEMPROFILERATE") && r.stderr.contains("524288"),
            "{bad:?}: the warning names the variable and the default:\n{}",
            r.stderr
        );
    }
}

#[test]
fn rate_1_without_frame_pointers_says_once_how_to_turn_them_on() {
    for unwinder in ["dwarf", "libgcc"] {
        let r = probe(
            &[("MEMPROFILERATE", "1"), ("MEMPROF_UNWIND", unwinder)],
            &[],
        );
        assert_eq!(r.code, 0, "{}", r.raw_stderr);
        assert_eq!(
            r.raw_stderr.matches("force-frame-pointers=yes").count(),
            1,
            "{unwinder}: one hint:\n{}",
            r.raw_stderr
        );
    }
    let r = probe(&[("MEMPROFILERATE", "1"), ("MEMPROF_UNWIND", "fp")], &[]);
    assert_eq!(r.raw_stderr, "", "no hint with frame pointers");
    let r = probe(&[("MEMPROF_UNWIND", "dwarf")], &[]);
    assert_eq!(r.raw_stderr, "", "no hint at the default rate");
}

#[test]
fn good_rates_apply_silently() {
    for (good, want) in [("1", "rate 1"), ("0", "rate 0"), ("4096", "rate 4096")] {
        let r = probe(&[("MEMPROFILERATE", good)], &[]);
        assert_eq!((r.code, r.stdout.trim(), r.stderr.as_str()), (0, want, ""));
    }
}

#[test]
fn unwritable_memprofile_gives_one_message_and_keeps_exit_status_3() {
    // Tests run as root, and root may write into a mode-0o555 directory,
    // so a read-only directory would not fail here. These paths fail for
    // root too: a path under a regular file (ENOTDIR), a missing
    // directory (ENOENT), and a new file in /proc.
    let dir = temp_dir("env-unwritable");
    let file = dir.join("a-regular-file");
    std::fs::write(&file, b"x").unwrap();
    for path in [
        file.join("heap.pb.gz"),
        dir.join("missing-dir").join("heap.pb.gz"),
        "/proc/heap.pb.gz".into(),
    ] {
        let shown = path.to_str().unwrap();
        let r = probe(&[("MEMPROFILE", shown)], &["--exit", "3"]);
        assert_eq!(r.code, 3, "{shown}: the exit status is unchanged");
        assert_eq!(
            r.stderr.lines().count(),
            1,
            "{shown}: one line:\n{}",
            r.stderr
        );
        assert!(
            r.stderr.contains("cannot write the heap profile") && r.stderr.contains(shown),
            "{shown}: the message says what failed, and where:\n{}",
            r.stderr
        );
        assert!(!path.exists());
    }
}

/// The one line a successful exit write prints: the heap profile and its
/// peak beside it.
fn written_line(heap: &Path) -> String {
    let name = heap.file_name().unwrap().to_str().unwrap();
    let (stem, ext) = name.split_at(name.find('.').unwrap());
    let peak = heap.with_file_name(format!("{stem}.peak{ext}"));
    format!(
        "memprof: heap profile written to {} (its peak to {})",
        heap.display(),
        peak.display()
    )
}

/// The probe's own allocations, exactly, in the profile it wrote at exit.
fn assert_probe_profile(path: &Path) {
    let d = go_raw(path, &["probe_allocs"]);
    d.assert_go_heap_shape(1);
    assert_eq!(
        d.sum("probe_allocs", Some(321)),
        [1000, 321_000, 1000, 321_000],
        "{}",
        path.display()
    );
}

#[test]
fn memprofile_placeholders_name_the_file_by_pid_and_binary() {
    let dir = temp_dir("env-placeholders");
    let pattern = dir.join("heap-{bin}-{pid}.pb.gz");
    let mut child = probe_cmd(
        &[
            ("MEMPROFILE", pattern.to_str().unwrap()),
            ("MEMPROFILERATE", "1"),
        ],
        &[],
    )
    .stdout(Stdio::null())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    let pid = child.id();
    let stderr = without_hint(&std::io::read_to_string(child.stderr.take().unwrap()).unwrap());
    assert!(child.wait().unwrap().success(), "{stderr}");
    let want = dir.join(format!("heap-env_probe-{pid}.pb.gz"));
    let peak = dir.join(format!("heap-env_probe-{pid}.peak.pb.gz"));
    let mut written: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    written.sort();
    assert_eq!(written, [want.clone(), peak.clone()], "{stderr}");
    assert_eq!(stderr.trim(), written_line(&want));
    assert_probe_profile(&want);
    assert_probe_profile(&peak);
}

#[test]
fn a_profile_written_by_another_process_during_the_run_is_not_overwritten() {
    let dir = temp_dir("env-collision");
    let path = dir.join("heap.pb.gz");
    let env = [
        ("MEMPROFILE", path.to_str().unwrap()),
        ("MEMPROFILERATE", "1"),
    ];
    // B starts first and waits until A's profile exists.
    let mut b = probe_cmd(&env, &["--wait-for", path.to_str().unwrap()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let b_pid = b.id();
    let mut b_out = BufReader::new(b.stdout.take().unwrap());
    let mut line = String::new();
    b_out.read_line(&mut line).unwrap();
    assert_eq!(line.trim(), "rate 1", "B has started");
    // File times come from a coarse clock; keep A's write clearly later.
    std::thread::sleep(Duration::from_millis(50));
    let a = probe(&env, &[]);
    assert_eq!(a.code, 0, "{}", a.stderr);
    assert_eq!(a.stderr.trim(), written_line(&path));
    let a_bytes = std::fs::read(&path).unwrap();
    // B exits now, after A wrote the file.
    let b_stderr = without_hint(&std::io::read_to_string(b.stderr.take().unwrap()).unwrap());
    assert!(b.wait().unwrap().success(), "{b_stderr}");
    let b_path = dir.join(format!("heap.env_probe.{b_pid}.pb.gz"));
    assert_eq!(
        std::fs::read(&path).unwrap(),
        a_bytes,
        "A's profile was overwritten"
    );
    let lines: Vec<&str> = b_stderr.lines().collect();
    assert_eq!(lines.len(), 2, "{b_stderr}");
    assert!(
        lines[0].contains("not overwriting") && lines[0].contains(path.to_str().unwrap()),
        "{b_stderr}"
    );
    assert_eq!(lines[1], written_line(&b_path));
    assert_probe_profile(&path);
    assert_probe_profile(&b_path);
}

#[test]
fn a_profile_left_by_an_earlier_run_is_replaced() {
    // The rule only protects files written *during* this run: rerunning a
    // program replaces its old profile, as `go test -memprofile` does.
    let dir = temp_dir("env-rerun");
    let path = dir.join("heap.pb.gz");
    let env = [
        ("MEMPROFILE", path.to_str().unwrap()),
        ("MEMPROFILERATE", "1"),
    ];
    let first = probe(&env, &[]);
    assert_eq!(first.code, 0, "{}", first.stderr);
    let first_time = std::fs::metadata(&path).unwrap().modified().unwrap();
    std::thread::sleep(Duration::from_millis(50));
    let second = probe(&env, &[]);
    assert_eq!(second.code, 0, "{}", second.stderr);
    assert_eq!(second.stderr.trim(), written_line(&path));
    assert!(std::fs::metadata(&path).unwrap().modified().unwrap() > first_time);
    let files = std::fs::read_dir(&dir).unwrap().count();
    assert_eq!(
        files, 2,
        "the profile and its peak, no other file next to them"
    );
    assert_probe_profile(&path);
}
