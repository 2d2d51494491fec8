//! Runs the soak (`allocator_tests::soak`) as a subprocess: each of the
//! three binaries (`Sampled` over System, jemalloc, mimalloc) at
//! `MEMPROFILERATE=1`, `4096` and the default (unset). A run fails the test
//! on a non-zero exit (a `soak FAILED:` line, a crash by signal, or the
//! soak's watchdog) or if it runs far over its time; its output is printed
//! either way.
//!
//! Each run lasts `SOAK_SECS` seconds (default 20, so the nine runs take
//! about 3.5 minutes). That is too long for `cargo test --workspace`, so
//! the nine are `#[ignore]`d and `.ci/run` runs them explicitly:
//!
//! ```sh
//! cargo test --release -p allocator-tests --test soak -- --ignored --test-threads=1
//! SOAK_SECS=3600 cargo test --release -p allocator-tests --test soak -- --ignored --test-threads=1
//! ```
//!
//! What `cargo test --workspace` runs instead is the smoke test: the three
//! binaries at rate 1 for `SOAK_SMOKE_SECS` (default 2) seconds each.

use allocator_tests::output_within;
use std::os::unix::process::ExitStatusExt;
use std::process::Command;
use std::time::Duration;

fn secs(var: &str, default: f64) -> f64 {
    match std::env::var(var) {
        Ok(v) => v
            .parse()
            .unwrap_or_else(|_| panic!("{var}={v:?} is not a number of seconds")),
        Err(_) => default,
    }
}

/// Runs `bin` for `secs` seconds at `rate` (`None`: MEMPROFILERATE unset).
fn soak(bin: &str, rate: Option<&str>, secs: f64) {
    let mut cmd = Command::new(bin);
    cmd.env("SOAK_SECS", secs.to_string())
        .env_remove("MEMPROFILE");
    match rate {
        Some(r) => cmd.env("MEMPROFILERATE", r),
        None => cmd.env_remove("MEMPROFILERATE"),
    };
    // The soak's own watchdog aborts at SOAK_SECS + 300 s; this bound is
    // only for a process that cannot even abort.
    let out = output_within(&mut cmd, Duration::from_secs_f64(secs + 420.0));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let what = format!(
        "{bin} at MEMPROFILERATE={}",
        rate.unwrap_or("(unset: the default)")
    );
    let how = match (out.status.code(), out.status.signal()) {
        (Some(0), _) => None,
        (Some(c), _) => Some(format!("exit status {c}")),
        (None, Some(s)) => Some(format!("killed by signal {s}{}", signal_name(s))),
        (None, None) => Some(format!("{:?}", out.status)),
    };
    if let Some(how) = how {
        panic!("{what}: {how}\n--- stdout\n{stdout}--- stderr\n{stderr}");
    }
    let summary = stdout.lines().find(|l| l.starts_with("soak ok: "));
    let summary = summary.unwrap_or_else(|| {
        panic!("{what}: exit 0 without a `soak ok:` line\n--- stdout\n{stdout}--- stderr\n{stderr}")
    });
    eprintln!("{summary}");
}

fn signal_name(s: i32) -> &'static str {
    match s {
        libc::SIGSEGV => " (SIGSEGV)",
        libc::SIGABRT => " (SIGABRT: an abort, e.g. memprof's misuse check or the watchdog)",
        libc::SIGBUS => " (SIGBUS)",
        libc::SIGILL => " (SIGILL)",
        libc::SIGKILL => " (SIGKILL)",
        _ => "",
    }
}

const SYSTEM: &str = env!("CARGO_BIN_EXE_soak_system");
const JEMALLOC: &str = env!("CARGO_BIN_EXE_soak_jemalloc");
const MIMALLOC: &str = env!("CARGO_BIN_EXE_soak_mimalloc");

fn long() -> f64 {
    secs("SOAK_SECS", 20.0)
}

#[test]
fn smoke_every_allocator_at_rate_1() {
    let s = secs("SOAK_SMOKE_SECS", 2.0);
    for bin in [SYSTEM, JEMALLOC, MIMALLOC] {
        soak(bin, Some("1"), s);
    }
}

macro_rules! soak_tests {
    ($($name:ident: $bin:expr, $rate:expr;)*) => {$(
        #[test]
        #[ignore = "minutes long: .ci/run runs it with --ignored; SOAK_SECS sets each run's length"]
        fn $name() {
            soak($bin, $rate, long());
        }
    )*};
}

soak_tests! {
    system_at_rate_1: SYSTEM, Some("1");
    system_at_rate_4096: SYSTEM, Some("4096");
    system_at_the_default_rate: SYSTEM, None;
    jemalloc_at_rate_1: JEMALLOC, Some("1");
    jemalloc_at_rate_4096: JEMALLOC, Some("4096");
    jemalloc_at_the_default_rate: JEMALLOC, None;
    mimalloc_at_rate_1: MIMALLOC, Some("1");
    mimalloc_at_rate_4096: MIMALLOC, Some("4096");
    mimalloc_at_the_default_rate: MIMALLOC, None;
}
