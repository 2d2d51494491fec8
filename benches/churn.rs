//! Side-by-side churn comparison: every allocator variant on the same
//! workload, in interleaved rounds, in one invocation.
//!
//! ```sh
//! cargo bench --bench churn                  # 7 rounds, 2 M ops per thread, depth 0
//! CHURN_ROUNDS=11 CHURN_OPS=4000000 cargo bench --bench churn
//! CHURN_DEPTHS=0,40 cargo bench --bench churn   # depth 0, then 40 frames above each allocation
//! CHURN_VARIANTS=sampled-default,jemalloc-prof cargo bench --bench churn   # a subset
//! ```
//!
//! Variants (keys for `CHURN_VARIANTS`; bare `System` always runs):
//! `system`, `forward` (a wrapper that only forwards to `System`),
//! `sampled-0`, `sampled-default`, `sampled-1` (`Sampled<System>` at rate
//! 0, 512 KiB, 1), `jemalloc`, `jemalloc-prof` (`tikv-jemallocator`, and
//! the same with jemalloc's profiler at `lg_prof_sample:19`, checked
//! through `mallctl`), `dhat` (records every allocation).
//!
//! Each variant is its own binary (`benches/churn_*.rs`, one
//! `#[global_allocator]` each, built by this driver through cargo). Rounds
//! interleave the variants in a rotating order so drift on a shared machine
//! hits all of them alike. One table per workload (small sizes 1 thread,
//! mixed sizes 1 thread, small sizes 2 threads) and depth: the median
//! ns/op, min–max, the median of per-round ratios to bare `System` (and to
//! plain jemalloc for jemalloc's profiler), and peak RSS.

use std::process::Command;

struct Variant {
    key: &'static str,
    label: &'static str,
    bench: &'static str,
    env: &'static [(&'static str, &'static str)],
    /// Substrings the variant's `info:` lines must hold (checked each run).
    expect: &'static [&'static str],
    /// Key of a second baseline this variant gets a ratio to.
    vs: Option<&'static str>,
}

const JEMALLOC_PROF: &str = "prof:true,prof_active:true,lg_prof_sample:19";

const VARIANTS: &[Variant] = &[
    Variant {
        key: "system",
        label: "System (bare)",
        bench: "churn_system",
        env: &[],
        expect: &[],
        vs: None,
    },
    Variant {
        key: "forward",
        label: "forwarding wrapper",
        bench: "churn_forward",
        env: &[],
        expect: &[],
        vs: None,
    },
    Variant {
        key: "sampled-0",
        label: "Sampled, rate 0 (off)",
        bench: "churn_sampled",
        env: &[("MEMPROFILERATE", "0")],
        expect: &[],
        vs: None,
    },
    Variant {
        key: "sampled-default",
        label: "Sampled, default 512 KiB",
        bench: "churn_sampled",
        env: &[],
        expect: &[],
        vs: None,
    },
    Variant {
        key: "sampled-1",
        label: "Sampled, rate 1 (every alloc)",
        bench: "churn_sampled",
        env: &[("MEMPROFILERATE", "1")],
        expect: &[],
        vs: None,
    },
    Variant {
        key: "sampled-scope",
        label: "Sampled, inside measure() (exact scope)",
        bench: "churn_sampled",
        env: &[("CHURN_SCOPE", "1")],
        expect: &[],
        vs: None,
    },
    Variant {
        key: "jemalloc",
        label: "jemalloc (tikv-jemallocator)",
        bench: "churn_jemalloc",
        env: &[],
        expect: &["opt.prof=false"],
        vs: Some("jemalloc"),
    },
    Variant {
        key: "jemalloc-prof",
        label: "jemalloc prof, lg_prof_sample:19",
        bench: "churn_jemalloc",
        env: &[("_RJEM_MALLOC_CONF", JEMALLOC_PROF)],
        expect: &["opt.prof=true", "prof.active=true", "opt.lg_prof_sample=19"],
        vs: Some("jemalloc"),
    },
    Variant {
        key: "dhat",
        label: "dhat (every alloc)",
        bench: "churn_dhat",
        env: &[],
        expect: &[],
        vs: None,
    },
];

/// Variables the variants read; cleared so the caller's environment cannot
/// change a variant (each variant sets its own).
const CLEARED: &[&str] = &[
    "CHURN_SCOPE",
    "MEMPROFILERATE",
    "MEMPROFILE",
    "_RJEM_MALLOC_CONF",
    "MALLOC_CONF",
    "CHURN_DEPTH",
];

fn executables(names: &[&str]) -> Vec<(String, String)> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.args([
        "bench",
        "--no-run",
        "--message-format=json-render-diagnostics",
    ]);
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

/// One run's result: ns/op, peak RSS in KiB, and its `info:` lines.
fn run(
    exe: &str,
    v: &Variant,
    workload: &str,
    threads: usize,
    ops: usize,
    depth: usize,
) -> (f64, u64, String) {
    let mut cmd = Command::new(exe);
    cmd.args([
        "--variant-run",
        workload,
        &threads.to_string(),
        &ops.to_string(),
        &depth.to_string(),
    ]);
    for k in CLEARED {
        cmd.env_remove(k);
    }
    let out = cmd
        .envs(v.env.iter().copied())
        .output()
        .expect("run variant");
    assert!(
        out.status.success(),
        "{} failed: {}",
        v.label,
        String::from_utf8_lossy(&out.stderr)
    );
    let s = String::from_utf8_lossy(&out.stdout);
    let info: Vec<&str> = s.lines().filter(|l| l.starts_with("info:")).collect();
    let info = info.join(" ");
    for e in v.expect {
        assert!(
            info.contains(e),
            "{}: expected `{e}` in its info line, got `{info}`",
            v.label
        );
    }
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
        Err(_) => VARIANTS.iter().collect(),
    };
    let mut names: Vec<&str> = chosen.iter().map(|v| v.bench).collect();
    names.dedup();
    let exes = executables(&names);
    let exe = |bench: &str| {
        exes.iter()
            .find(|(n, _)| n == bench)
            .map(|(_, e)| e.clone())
            .expect("variant built")
    };
    println!(
        "churn: 16 Ki live slots, {ops} ops per thread, {rounds} interleaved rounds, depths {depths:?}\n"
    );
    let n = chosen.len();
    let mut infos = vec![String::new(); n];
    for &depth in &depths {
        for (workload, threads) in [("small", 1), ("mixed", 1), ("small", 2)] {
            let mut ns = vec![Vec::new(); n];
            let mut rss = vec![0u64; n];
            for round in 0..rounds {
                for k in 0..n {
                    let i = (k + round) % n;
                    let v = chosen[i];
                    let (t, r, info) = run(&exe(v.bench), v, workload, threads, ops, depth);
                    ns[i].push(t);
                    rss[i] = rss[i].max(r);
                    infos[i] = info;
                }
            }
            let s = if threads == 1 { "" } else { "s" };
            println!("### {workload} sizes, {threads} thread{s}, depth {depth}\n");
            println!(
                "| variant | ns/op median | min–max | ratio to System | ratio to jemalloc | peak RSS MiB |"
            );
            println!("|---|---|---|---|---|---|");
            let ratio_to = |i: usize, base: usize| {
                let mut r: Vec<f64> = (0..rounds).map(|k| ns[i][k] / ns[base][k]).collect();
                median(&mut r)
            };
            for i in 0..n {
                let (lo, hi) = ns[i]
                    .iter()
                    .fold((f64::MAX, 0f64), |(l, h), &x| (l.min(x), h.max(x)));
                let med = median(&mut ns[i].clone());
                let vs = chosen[i]
                    .vs
                    .and_then(|key| chosen.iter().position(|v| v.key == key))
                    .map_or("—".to_string(), |b| format!("{:.3}", ratio_to(i, b)));
                println!(
                    "| {} | {med:.1} | {lo:.1}–{hi:.1} | {:.3} | {vs} | {:.1} |",
                    chosen[i].label,
                    ratio_to(i, 0),
                    rss[i] as f64 / 1024.0
                );
            }
            println!();
        }
    }
    for (v, info) in chosen.iter().zip(&infos) {
        if !info.is_empty() {
            println!("{}: {info}", v.label);
        }
    }
}
