//! Side-by-side churn comparison: every allocator variant on the same
//! workload, in interleaved rounds, in one invocation.
//!
//! ```sh
//! cargo bench --bench churn                  # 7 rounds, 2 M ops per thread
//! CHURN_ROUNDS=11 CHURN_OPS=4000000 cargo bench --bench churn
//! ```
//!
//! Each variant is its own binary (`benches/churn_*.rs`, one
//! `#[global_allocator]` each, built by this driver through cargo). Rounds
//! interleave the variants in a rotating order so drift on a shared machine
//! hits all of them alike; the table reports the median ns/op, min–max,
//! the median of per-round ratios to bare `System`, and peak RSS.

use std::process::Command;

struct Variant {
    label: &'static str,
    bench: &'static str,
    env: &'static [(&'static str, &'static str)],
}

const VARIANTS: &[Variant] = &[
    Variant {
        label: "System (bare)",
        bench: "churn_system",
        env: &[],
    },
    Variant {
        label: "Sampled, rate 0 (off)",
        bench: "churn_sampled",
        env: &[("MEMPROFILERATE", "0")],
    },
    Variant {
        label: "Sampled, default 512 KiB",
        bench: "churn_sampled",
        env: &[],
    },
    Variant {
        label: "Sampled, rate 1 (every alloc)",
        bench: "churn_sampled",
        env: &[("MEMPROFILERATE", "1")],
    },
];

fn executables() -> Vec<(String, String)> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.args([
        "bench",
        "--no-run",
        "--message-format=json-render-diagnostics",
    ]);
    let mut names: Vec<&str> = VARIANTS.iter().map(|v| v.bench).collect();
    names.dedup();
    for n in &names {
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

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let rounds: usize = std::env::var("CHURN_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(7);
    let ops: usize = std::env::var("CHURN_OPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2_000_000);
    let exes = executables();
    let exe = |bench: &str| {
        exes.iter()
            .find(|(n, _)| n == bench)
            .map(|(_, e)| e.clone())
            .expect("variant built")
    };
    println!("churn: 16 Ki live slots, {ops} ops per thread, {rounds} interleaved rounds\n");
    for (workload, threads) in [("small", 1), ("mixed", 1), ("small", 2)] {
        let n = VARIANTS.len();
        let mut ns = vec![Vec::new(); n];
        let mut rss = vec![0u64; n];
        for round in 0..rounds {
            for k in 0..n {
                let i = (k + round) % n;
                let v = &VARIANTS[i];
                let out = Command::new(exe(v.bench))
                    .args([
                        "--variant-run",
                        workload,
                        &threads.to_string(),
                        &ops.to_string(),
                    ])
                    .env_remove("MEMPROFILERATE")
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
                let mut it = s.split_whitespace();
                ns[i].push(it.next().unwrap().parse::<f64>().unwrap());
                rss[i] = rss[i].max(it.next().unwrap().parse().unwrap());
            }
        }
        println!("### {workload} sizes, {threads} thread(s)\n");
        println!("| variant | ns/op median | min–max | ratio to System | peak RSS MiB |");
        println!("|---|---|---|---|---|");
        for i in 0..n {
            let mut ratios: Vec<f64> = (0..rounds).map(|r| ns[i][r] / ns[0][r]).collect();
            let (lo, hi) = ns[i]
                .iter()
                .fold((f64::MAX, 0f64), |(l, h), &x| (l.min(x), h.max(x)));
            let med = median(&mut ns[i].clone());
            println!(
                "| {} | {med:.1} | {lo:.1}–{hi:.1} | {:.3} | {:.1} |",
                VARIANTS[i].label,
                median(&mut ratios),
                rss[i] as f64 / 1024.0
            );
        }
        println!();
    }
}
