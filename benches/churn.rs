//! Side-by-side churn comparison: every allocator variant on the same
//! workload, in interleaved rounds, in one invocation.
//!
//! ```sh
//! cargo bench -p memprof-benches --bench churn                  # 7 rounds, 2 M ops per thread, depth 0
//! CHURN_ROUNDS=11 CHURN_OPS=4000000 cargo bench -p memprof-benches --bench churn
//! CHURN_DEPTHS=0,40 cargo bench -p memprof-benches --bench churn   # depth 0, then 40 frames above each allocation
//! CHURN_VARIANTS=sampled-default,jemalloc-prof cargo bench -p memprof-benches --bench churn   # a subset
//! CHURN_BUILD=nofp CHURN_DEPTHS=0,40 cargo bench -p memprof-benches --bench churn   # variants built without frame pointers
//! CHURN_DESCENT=op CHURN_DEPTHS=0,40 cargo bench -p memprof-benches --bench churn   # each op descends the depth
//! CHURN_WORKLOAD=parse cargo bench -p memprof-benches --bench churn     # the real workload: syn parsing its own sources
//! CHURN_WORKLOAD=parse CHURN_BUILD=nofp CHURN_PASSES=2 cargo bench -p memprof-benches --bench churn
//! ```
//!
//! `CHURN_WORKLOAD` picks what every variant runs: `churn` (the default:
//! the synthetic churn below, three tables per depth) or `parse`, a real
//! program's allocations: `syn::parse_file` over every `.rs` file of syn
//! 2's own sources (55 files, 1.7 MB, a crate nobody here wrote, found in
//! cargo's registry by benches/build.rs through `cargo metadata`), one
//! table per depth, `CHURN_PASSES` passes per run (default 1; ~0.17 s a
//! pass with bare `System`, ~10 s with dhat). Its allocation count is not
//! known in advance: before the rounds the driver runs the workload once
//! with a counting allocator (`churn_count`) and hands the count to the
//! variants (`CHURN_ALLOCATIONS`) for their `every_alloc=` check.
//!
//! `CHURN_BUILD` picks how the variant binaries are built: `fp` (the
//! default) with the repo's rustflags (`-C force-frame-pointers=yes`, from
//! .cargo/config.toml), so memprof's default unwinder is `FramePointers`;
//! `nofp` with `CARGO_ENCODED_RUSTFLAGS=""` (no rustflags at all, as in
//! most users' builds) in a separate target dir, `target/churn-nofp`, so
//! the normal build stays as it is; there memprof's default unwinder is
//! `Dwarf`. The first nofp run builds all dependencies once more. The
//! output's header and every table name the build.
//!
//! Variants (keys for `CHURN_VARIANTS`; bare `System` always runs):
//! - `system`, `forward` (a wrapper that only forwards to `System`);
//! - `sampled-0`, `sampled-default`, `sampled-1` (`Sampled<System>` at
//!   rate 0, 512 KiB, 1, with the build's default unwinder), and
//!   `sampled-1-dwarf`, `sampled-1-libgcc` (rate 1 with
//!   `MEMPROF_UNWIND=dwarf` / `libgcc`); `sampled-scope` (inside
//!   `memprof::measure`);
//! - `jemalloc`, `jemalloc-prof` (`tikv-jemallocator`, and the same with
//!   jemalloc's profiler at `lg_prof_sample:19`, checked through
//!   `mallctl`); `dhat` (records every allocation);
//! - `pprof-alloc`, `pprof-alloc-1` (crate `pprof-alloc` 0.6 wrapping
//!   `System`, at its default 512 KiB and with `PPROF_ALLOC_SAMPLE_RATE=1`);
//! - `mimalloc`, `mimalloc-pprof` (crate `mimalloc-pprof` 1.1: plain
//!   mimalloc, and its profiler with `MIMALLOC_PROF=1` at its defaults,
//!   512 KiB and 32 frames), and, only when named in `CHURN_VARIANTS`,
//!   `mimalloc-pprof-1` (every allocation, 128 frames): each of its
//!   sampled frees walks a list of all live samples, ~45 µs per op here,
//!   so use it with a small `CHURN_OPS`.
//!
//! The peers walk frame pointers in both builds (pprof-alloc's default
//! `frame-pointer` feature; mimalloc-pprof on Linux), so in the nofp build
//! their stacks are short or wrong: compare the tables' "deepest stack"
//! column before their times.
//!
//! Every run is checked against what its variant promises, through the
//! `info:` lines its binary prints (read back from the profiler itself);
//! any mismatch stops the whole run: memprof's unwinder (the build's
//! default, or the one `MEMPROF_UNWIND` names) and rate; jemalloc's
//! `mallctl` options; whether pprof-alloc and mimalloc-pprof's profilers
//! are on, at which rate; for the every-allocation variants, that their
//! sample count covers every allocation of the run (`every_alloc=true`)
//! and, at depth d > 0, that their deepest recorded stack has at least d
//! frames (memprof in both builds; the peers in the fp build only).
//!
//! Each variant is its own binary (`benches/churn_*.rs`, one
//! `#[global_allocator]` each, built by this driver through cargo). Rounds
//! interleave the variants in a rotating order so drift on a shared machine
//! hits all of them alike. One table per workload (small sizes 1 thread,
//! mixed sizes 1 thread, small sizes 2 threads) and depth: the median
//! ns/op, min–max, the median of per-round ratios to bare `System` (and to
//! the plain allocator for jemalloc's and mimalloc's profilers), peak RSS
//! (`VmHWM` of the variant's process, largest over the rounds) and its
//! ratio to bare `System`'s, and the deepest stack the profiler recorded in
//! the last round (raw frames, the profiler's own included; `—` where it
//! reports none).

use std::path::PathBuf;
use std::process::Command;

/// Which build the variants are: `CHURN_BUILD=fp` (the default) or `nofp`.
#[derive(Clone, Copy, PartialEq)]
enum Build {
    /// The repo's own flags (.cargo/config.toml: `-C force-frame-pointers=yes`).
    Fp,
    /// `CARGO_ENCODED_RUSTFLAGS=""` (no flags, so no frame pointers, as in
    /// most users' builds), in its own target dir.
    NoFp,
}

impl Build {
    fn from_env() -> Build {
        match std::env::var("CHURN_BUILD").as_deref() {
            Err(_) | Ok("" | "fp") => Build::Fp,
            Ok("nofp") => Build::NoFp,
            Ok(other) => panic!("CHURN_BUILD={other}: expected fp or nofp"),
        }
    }

    fn key(self) -> &'static str {
        match self {
            Build::Fp => "fp",
            Build::NoFp => "nofp",
        }
    }

    /// The unwinder memprof must pick by default in this build.
    fn default_unwinder(self) -> &'static str {
        match self {
            Build::Fp => "FramePointers",
            Build::NoFp => "Dwarf",
        }
    }

    fn describe(self) -> String {
        match self {
            Build::Fp => "fp (the repo's rustflags: -C force-frame-pointers=yes)".into(),
            Build::NoFp => format!(
                "nofp (CARGO_ENCODED_RUSTFLAGS=\"\": no frame pointers; target dir {})",
                nofp_target_dir().display()
            ),
        }
    }
}

/// The nofp build's target dir: `churn-nofp` in this driver's target dir
/// (the driver is `<target>/release/deps/churn-…`), so the two builds do
/// not invalidate each other.
fn nofp_target_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the driver's path");
    exe.ancestors()
        .nth(3)
        .expect("the driver runs from <target>/<profile>/deps")
        .join("churn-nofp")
}

/// Which recorded stacks must reach the workload's depth (the deepest
/// stack's `frames=` at depth d > 0 must be at least d).
#[derive(Clone, Copy, PartialEq)]
enum Deep {
    No,
    /// In every build (memprof's unwinders).
    Always,
    /// In the fp build only (peers that walk frame pointers regardless).
    WithFramePointers,
}

struct Variant {
    key: &'static str,
    label: &'static str,
    bench: &'static str,
    env: &'static [(&'static str, &'static str)],
    /// Tokens the variant's `info:` lines must hold (checked each run).
    expect: &'static [&'static str],
    /// memprof with the build's default unwinder: expects
    /// `memprof.unwinder=FramePointers` (fp) or `=Dwarf` (nofp).
    default_unwinder: bool,
    deep: Deep,
    /// Key of a second baseline this variant gets a ratio to.
    vs: Option<&'static str>,
    /// Runs only when `CHURN_VARIANTS` names it (too slow for the default set).
    opt_in: bool,
}

/// The counting allocator the parse workload's allocation count comes from.
const COUNT_BENCH: &str = "churn_count";

const JEMALLOC_PROF: &str = "prof:true,prof_active:true,lg_prof_sample:19";

/// memprof's default rate (`memprof::DEFAULT_RATE`, 512 KiB) as its
/// `info:` line prints it.
const SAMPLED_DEFAULT_RATE: &str = "memprof.rate=524288";

/// Fields left at their usual values by the variants below.
const PLAIN: Variant = Variant {
    key: "",
    label: "",
    bench: "",
    env: &[],
    expect: &[],
    default_unwinder: false,
    deep: Deep::No,
    vs: None,
    opt_in: false,
};

const VARIANTS: &[Variant] = &[
    Variant {
        key: "system",
        label: "System (bare)",
        bench: "churn_system",
        ..PLAIN
    },
    Variant {
        key: "forward",
        label: "forwarding wrapper",
        bench: "churn_forward",
        ..PLAIN
    },
    Variant {
        key: "sampled-0",
        label: "Sampled, rate 0 (off)",
        bench: "churn_sampled",
        env: &[("MEMPROFILERATE", "0")],
        expect: &["memprof.rate=0"],
        default_unwinder: true,
        ..PLAIN
    },
    Variant {
        key: "sampled-default",
        label: "Sampled, default 512 KiB",
        bench: "churn_sampled",
        expect: &[SAMPLED_DEFAULT_RATE],
        default_unwinder: true,
        ..PLAIN
    },
    Variant {
        key: "sampled-1",
        label: "Sampled, rate 1 (every alloc), build's default unwinder",
        bench: "churn_sampled",
        env: &[("MEMPROFILERATE", "1")],
        expect: &["memprof.rate=1", "every_alloc=true"],
        default_unwinder: true,
        deep: Deep::Always,
        ..PLAIN
    },
    Variant {
        key: "sampled-1-dwarf",
        label: "Sampled, rate 1, MEMPROF_UNWIND=dwarf",
        bench: "churn_sampled",
        env: &[("MEMPROFILERATE", "1"), ("MEMPROF_UNWIND", "dwarf")],
        expect: &[
            "memprof.rate=1",
            "memprof.unwinder=Dwarf",
            "every_alloc=true",
        ],
        deep: Deep::Always,
        ..PLAIN
    },
    Variant {
        key: "sampled-1-libgcc",
        label: "Sampled, rate 1, MEMPROF_UNWIND=libgcc",
        bench: "churn_sampled",
        env: &[("MEMPROFILERATE", "1"), ("MEMPROF_UNWIND", "libgcc")],
        expect: &[
            "memprof.rate=1",
            "memprof.unwinder=Libgcc",
            "every_alloc=true",
        ],
        deep: Deep::Always,
        ..PLAIN
    },
    Variant {
        key: "sampled-scope",
        label: "Sampled, inside measure() (exact scope)",
        bench: "churn_sampled",
        env: &[("CHURN_SCOPE", "1")],
        expect: &[SAMPLED_DEFAULT_RATE],
        default_unwinder: true,
        ..PLAIN
    },
    Variant {
        key: "jemalloc",
        label: "jemalloc (tikv-jemallocator)",
        bench: "churn_jemalloc",
        expect: &["opt.prof=false"],
        vs: Some("jemalloc"),
        ..PLAIN
    },
    Variant {
        key: "jemalloc-prof",
        label: "jemalloc prof, lg_prof_sample:19",
        bench: "churn_jemalloc",
        env: &[("_RJEM_MALLOC_CONF", JEMALLOC_PROF)],
        expect: &["opt.prof=true", "prof.active=true", "opt.lg_prof_sample=19"],
        vs: Some("jemalloc"),
        ..PLAIN
    },
    Variant {
        key: "dhat",
        label: "dhat (every alloc)",
        bench: "churn_dhat",
        ..PLAIN
    },
    Variant {
        key: "pprof-alloc",
        label: "pprof-alloc, default 512 KiB",
        bench: "churn_pprof_alloc",
        expect: &["pprof_alloc.capture=FramePointer", "pprof_alloc.on=true"],
        ..PLAIN
    },
    Variant {
        key: "pprof-alloc-1",
        label: "pprof-alloc, rate 1 (every alloc)",
        bench: "churn_pprof_alloc",
        env: &[("PPROF_ALLOC_SAMPLE_RATE", "1")],
        expect: &[
            "pprof_alloc.capture=FramePointer",
            "pprof_alloc.on=true",
            "every_alloc=true",
        ],
        deep: Deep::WithFramePointers,
        ..PLAIN
    },
    Variant {
        key: "mimalloc",
        label: "mimalloc (mimalloc-pprof, profiler off)",
        bench: "churn_mimalloc",
        expect: &["mimalloc.prof=false"],
        vs: Some("mimalloc"),
        ..PLAIN
    },
    Variant {
        key: "mimalloc-pprof",
        label: "mimalloc-pprof, MIMALLOC_PROF=1 (512 KiB, 32 frames)",
        bench: "churn_mimalloc",
        env: &[("MIMALLOC_PROF", "1"), ("MIMALLOC_PROF_ACCUM", "1")],
        expect: &[
            "mimalloc.prof=true",
            "mimalloc.rate=524288",
            "mimalloc.accum=true",
        ],
        vs: Some("mimalloc"),
        ..PLAIN
    },
    Variant {
        key: "mimalloc-pprof-1",
        label: "mimalloc-pprof, every alloc, 128 frames",
        bench: "churn_mimalloc",
        env: &[
            ("MIMALLOC_PROF", "1"),
            ("MIMALLOC_PROF_ACCUM", "1"),
            ("MIMALLOC_PROF_SAMPLE_INTERVAL", "1"),
            ("MIMALLOC_PROF_BT_MAX", "128"),
        ],
        expect: &[
            "mimalloc.prof=true",
            "mimalloc.rate=1",
            "mimalloc.accum=true",
            "every_alloc=true",
        ],
        deep: Deep::WithFramePointers,
        vs: Some("mimalloc"),
        // Every sampled free walks a list of all live samples (16 Ki
        // here): ~45 µs/op, 2 M ops take minutes per run.
        opt_in: true,
        ..PLAIN
    },
];

/// Variables the variants read are cleared (these names, and every name
/// with one of these prefixes) so the caller's environment cannot change
/// a variant; each variant sets its own.
const CLEARED: &[&str] = &["MALLOC_CONF", "ALLOCATOR"];
const CLEARED_PREFIXES: &[&str] = &["MEMPROF", "_RJEM_", "MIMALLOC_", "PPROF_ALLOC_", "CHURN_"];

fn executables(names: &[&str], build: Build) -> Vec<(String, String)> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.args([
        "bench",
        "-p",
        "memprof-benches",
        "--no-run",
        "--message-format=json-render-diagnostics",
    ]);
    if build == Build::NoFp {
        // Set but empty, CARGO_ENCODED_RUSTFLAGS wins over RUSTFLAGS and
        // over build.rustflags in .cargo/config.toml: no flags at all.
        cmd.env("CARGO_ENCODED_RUSTFLAGS", "")
            .arg("--target-dir")
            .arg(nofp_target_dir());
    }
    for n in names {
        cmd.args(["--bench", n]);
    }
    let out = cmd.output().expect("run cargo to build the churn variants");
    assert!(
        out.status.success(),
        "building the variants failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let mut found = Vec::new();
    for line in text.lines() {
        let (Some(exe), Some(name)) =
            (field(line, "\"executable\":\""), field(line, "\"name\":\""))
        else {
            continue;
        };
        if names.contains(&name.as_str()) {
            found.push((name, exe));
        }
    }
    found
}

fn field(line: &str, key: &str) -> Option<String> {
    let start = line.find(key)? + key.len();
    let end = line[start..].find('"')?;
    Some(line[start..start + end].to_string())
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    match std::env::var(name) {
        Ok(v) => v
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v}: not a valid value")),
        Err(_) => default,
    }
}

/// The value of `key=value` among the `info:` tokens.
fn token<'a>(info: &'a str, key: &str) -> Option<&'a str> {
    info.split_whitespace()
        .find_map(|t| t.strip_prefix(key)?.strip_prefix('='))
}

/// Checks a run's `info:` tokens against what the variant and the build
/// promise; panics (ending the whole run) on any mismatch.
fn check(v: &Variant, build: Build, depth: usize, info: &str) {
    let tokens: Vec<&str> = info.split_whitespace().collect();
    let unwinder = format!("memprof.unwinder={}", build.default_unwinder());
    let default = v.default_unwinder.then_some(unwinder.as_str());
    for e in v.expect.iter().copied().chain(default) {
        assert!(
            tokens.contains(&e),
            "{}: expected `{e}` in its info lines, got `{info}`",
            v.label
        );
    }
    let deep = match v.deep {
        Deep::No => false,
        Deep::Always => true,
        Deep::WithFramePointers => build == Build::Fp,
    };
    if deep && depth > 0 {
        let frames: usize = token(info, "frames")
            .and_then(|f| f.parse().ok())
            .unwrap_or_else(|| panic!("{}: no `frames=` in `{info}`", v.label));
        assert!(
            frames >= depth,
            "{}: deepest recorded stack has {frames} frames at depth {depth}: `{info}`",
            v.label
        );
    }
}

/// One run's result: ns/op, peak RSS in KiB, and its `info:` lines.
/// `allocations`: the parse workload's count (`CHURN_ALLOCATIONS`).
fn run(
    exe: &str,
    v: &Variant,
    cleared: &[String],
    (workload, threads, ops, depth): (&str, usize, usize, usize),
    allocations: Option<u64>,
) -> (f64, u64, String) {
    let mut cmd = Command::new(exe);
    cmd.args([
        "--variant-run",
        workload,
        &threads.to_string(),
        &ops.to_string(),
        &depth.to_string(),
    ]);
    for k in cleared {
        cmd.env_remove(k);
    }
    if let Ok(d) = std::env::var("CHURN_DESCENT") {
        cmd.env("CHURN_DESCENT", d);
    }
    if let Some(n) = allocations {
        cmd.env("CHURN_ALLOCATIONS", n.to_string());
    }
    let out = cmd
        .envs(v.env.iter().copied())
        .output()
        .expect("run variant");
    assert!(
        out.status.success(),
        "{} failed ({}): {}",
        v.label,
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let s = String::from_utf8_lossy(&out.stdout);
    let info: Vec<&str> = s
        .lines()
        .filter_map(|l| l.strip_prefix("info:"))
        .map(str::trim)
        .collect();
    let info = info.join(" ");
    let line = s
        .lines()
        .find(|l| !l.starts_with("info:"))
        .expect("a result line");
    let mut it = line.split_whitespace();
    let ns = it.next().unwrap().parse::<f64>().unwrap();
    let rss = it.next().unwrap().parse().unwrap();
    (ns, rss, info)
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let build = Build::from_env();
    let rounds: usize = env_or("CHURN_ROUNDS", 7);
    let ops: usize = env_or("CHURN_OPS", 2_000_000);
    // Depth 0 always runs, first; CHURN_DEPTHS adds deeper stacks.
    let mut depths: Vec<usize> = vec![0];
    for d in std::env::var("CHURN_DEPTHS").unwrap_or_default().split(',') {
        let d = d.trim();
        if d.is_empty() {
            continue;
        }
        let d: usize = d.parse().expect("CHURN_DEPTHS: comma-separated depths");
        if !depths.contains(&d) {
            depths.push(d);
        }
    }
    let parse = match std::env::var("CHURN_WORKLOAD").as_deref() {
        Err(_) | Ok("" | "churn") => false,
        Ok("parse") => true,
        Ok(other) => panic!("CHURN_WORKLOAD={other}: expected churn or parse"),
    };
    let ops: usize = if parse {
        env_or("CHURN_PASSES", 1)
    } else {
        ops
    };
    let chosen: Vec<&Variant> = match std::env::var("CHURN_VARIANTS") {
        Ok(list) => {
            let keys: Vec<&str> = list.split(',').map(str::trim).collect();
            for k in &keys {
                assert!(
                    VARIANTS.iter().any(|v| v.key == *k),
                    "CHURN_VARIANTS: unknown variant `{k}`"
                );
            }
            VARIANTS
                .iter()
                .filter(|v| v.key == "system" || keys.contains(&v.key))
                .collect()
        }
        Err(_) => VARIANTS.iter().filter(|v| !v.opt_in).collect(),
    };
    let cleared: Vec<String> = std::env::vars_os()
        .filter_map(|(k, _)| k.into_string().ok())
        .filter(|k| {
            CLEARED.contains(&k.as_str()) || CLEARED_PREFIXES.iter().any(|p| k.starts_with(p))
        })
        .collect();
    let mut names: Vec<&str> = chosen.iter().map(|v| v.bench).collect();
    if parse {
        names.push(COUNT_BENCH);
    }
    names.sort_unstable();
    names.dedup();
    let exes = executables(&names, build);
    let exe = |bench: &str| {
        exes.iter()
            .find(|(n, _)| n == bench)
            .map(|(_, e)| e.clone())
            .expect("variant built")
    };
    let descent = match std::env::var("CHURN_DESCENT").as_deref() {
        Ok("op") => "every op descends the depth (the bare workload pays for the calls)",
        Ok("batch") | Err(_) => {
            "batches of 1024 ops at the depth (the bare workload costs as at depth 0)"
        }
        Ok(other) => panic!("CHURN_DESCENT: expected op or batch, got {other:?}"),
    };
    if parse {
        println!(
            "parse: build {}; syn::parse_file over {}, {ops} pass(es) per run, {rounds} \
             interleaved rounds, depths {depths:?}\n",
            build.describe(),
            env!("CHURN_PARSE_CORPUS")
        );
    } else {
        println!(
            "churn: build {}; 16 Ki live slots, {ops} ops per thread, {rounds} interleaved rounds, \
             depths {depths:?}; {descent}\n",
            build.describe()
        );
    }
    let workloads: &[(&str, usize)] = if parse {
        &[("parse", 1)]
    } else {
        &[("small", 1), ("mixed", 1), ("small", 2)]
    };
    let n = chosen.len();
    let mut infos = vec![String::new(); n];
    for &depth in &depths {
        for &(workload, threads) in workloads {
            // The parse workload's allocation count, for the
            // every-allocation checks (the churn workloads' is ops × threads).
            let allocations = parse.then(|| {
                let count = Variant {
                    key: "count",
                    label: "counting allocator",
                    bench: COUNT_BENCH,
                    ..PLAIN
                };
                let (_, _, info) = run(
                    &exe(COUNT_BENCH),
                    &count,
                    &cleared,
                    (workload, threads, ops, depth),
                    None,
                );
                let n: u64 = token(&info, "allocations")
                    .and_then(|a| a.parse().ok())
                    .unwrap_or_else(|| panic!("no `allocations=` from {COUNT_BENCH}: `{info}`"));
                println!("{workload}, depth {depth}: {n} allocations a run ({info})\n");
                n
            });
            let mut ns = vec![Vec::new(); n];
            let mut rss = vec![0u64; n];
            for round in 0..rounds {
                for k in 0..n {
                    let i = (k + round) % n;
                    let v = chosen[i];
                    let (t, r, info) = run(
                        &exe(v.bench),
                        v,
                        &cleared,
                        (workload, threads, ops, depth),
                        allocations,
                    );
                    check(v, build, depth, &info);
                    ns[i].push(t);
                    rss[i] = rss[i].max(r);
                    infos[i] = info;
                }
            }
            let s = if threads == 1 { "" } else { "s" };
            let (what, unit, scale) = if parse {
                ("syn::parse_file over syn's sources", "ms/pass", 1e-6)
            } else {
                ("", "ns/op", 1.0)
            };
            if parse {
                println!(
                    "### {what}, {ops} pass(es), depth {depth}, build {}\n",
                    build.key()
                );
            } else {
                println!(
                    "### {workload} sizes, {threads} thread{s}, depth {depth}, build {}\n",
                    build.key()
                );
            }
            println!(
                "| variant | {unit} median | min–max | ratio to System | ratio to its plain allocator \
                 | peak RSS MiB | RSS ratio to System | deepest stack (frames) |"
            );
            println!("|---|---|---|---|---|---|---|---|");
            let ratio_to = |i: usize, base: usize| {
                let mut r: Vec<f64> = (0..rounds).map(|k| ns[i][k] / ns[base][k]).collect();
                median(&mut r)
            };
            for i in 0..n {
                let (lo, hi) = ns[i]
                    .iter()
                    .fold((f64::MAX, 0f64), |(l, h), &x| (l.min(x), h.max(x)));
                let (lo, hi) = (lo * scale, hi * scale);
                let med = median(&mut ns[i].clone()) * scale;
                let vs = chosen[i]
                    .vs
                    .and_then(|key| chosen.iter().position(|v| v.key == key))
                    .map_or("—".to_string(), |b| format!("{:.3}", ratio_to(i, b)));
                let frames = token(&infos[i], "frames").unwrap_or("—");
                println!(
                    "| {} | {med:.1} | {lo:.1}–{hi:.1} | {:.3} | {vs} | {:.1} | {:.2} | {frames} |",
                    chosen[i].label,
                    ratio_to(i, 0),
                    rss[i] as f64 / 1024.0,
                    rss[i] as f64 / rss[0] as f64
                );
            }
            println!();
        }
    }
    println!("info lines (each variant's last run):\n");
    for (v, info) in chosen.iter().zip(&infos) {
        if !info.is_empty() {
            println!("- {}: {info}", v.label);
        }
    }
}
