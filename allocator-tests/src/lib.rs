//! Shared helpers for the allocator tests: write profiles, and read them
//! back with real readers (`go tool pprof -raw`, the npm `pprof-format`
//! decoder). A missing reader is a test failure naming what to install.

pub mod http;

use std::path::{Path, PathBuf};
use std::process::Command;

/// One sample as a reader saw it.
#[derive(Debug, Clone)]
pub struct Sample {
    /// alloc_objects, alloc_space, inuse_objects, inuse_space.
    pub values: [i64; 4],
    /// The `bytes` label.
    pub bytes: Option<i64>,
    /// Function names per location, leaf first; inlined frames innermost first.
    pub funcs: Vec<Vec<String>>,
}

impl Sample {
    /// Does any frame's function name contain `name`?
    pub fn has_fn(&self, name: &str) -> bool {
        self.funcs.iter().flatten().any(|f| f.contains(name))
    }
}

/// A decoded profile.
#[derive(Debug)]
pub struct Decoded {
    /// pprof period.
    pub period: i64,
    /// Sample type names.
    pub sample_types: Vec<String>,
    /// All samples.
    pub samples: Vec<Sample>,
}

impl Decoded {
    /// Sums the values of samples whose stack has `func` and whose bytes
    /// label is `size` (any size if `None`).
    pub fn sum(&self, func: &str, size: Option<i64>) -> [i64; 4] {
        let mut t = [0; 4];
        for s in self
            .samples
            .iter()
            .filter(|s| s.has_fn(func) && (size.is_none() || s.bytes == size))
        {
            for (acc, v) in t.iter_mut().zip(s.values) {
                *acc += v;
            }
        }
        t
    }
}

/// A fresh temporary directory for one test.
pub fn temp_dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("memprof-test-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Writes `profile` as pprof to `dir/name` and returns the path.
pub fn write_pprof(profile: &memprof::HeapProfile, dir: &Path, name: &str) -> PathBuf {
    let p = dir.join(name);
    profile
        .write_pprof(std::fs::File::create(&p).unwrap())
        .unwrap();
    p
}

/// Writes `profile` as Go debug=1 text to `dir/name`.
pub fn write_text(profile: &memprof::HeapProfile, dir: &Path, name: &str) -> PathBuf {
    let p = dir.join(name);
    profile
        .write_text(std::fs::File::create(&p).unwrap())
        .unwrap();
    p
}

fn run(cmd: &mut Command, what: &str, install: &str) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {what} ({e}): install {install}"));
    assert!(
        out.status.success(),
        "{what} failed on the profile:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Decodes with `go tool pprof -raw` (proto or legacy text).
pub fn go_raw(path: &Path) -> Decoded {
    let text = run(
        Command::new("go")
            .args(["tool", "pprof", "-raw"])
            .arg(path)
            .env("PPROF_TMPDIR", std::env::temp_dir()),
        "go tool pprof",
        "Debian package golang-go (.ci/run does)",
    );
    parse_raw(&text)
}

/// Parses `go tool pprof -raw` output.
pub fn parse_raw(text: &str) -> Decoded {
    let mut period = 0;
    let mut sample_types = Vec::new();
    let mut raw_samples: Vec<([i64; 4], Option<i64>, Vec<u64>)> = Vec::new();
    let mut locs: std::collections::HashMap<u64, Vec<String>> = Default::default();
    let mut section = "";
    let mut last_loc = 0u64;
    for line in text.lines() {
        if let Some(p) = line.strip_prefix("Period: ") {
            period = p.trim().parse().unwrap();
            continue;
        }
        match line.trim_end() {
            "Samples:" => {
                section = "samples";
                continue;
            }
            "Locations" => {
                section = "locations";
                continue;
            }
            "Mappings" => {
                section = "mappings";
                continue;
            }
            _ => {}
        }
        match section {
            "samples" => {
                let t = line.trim();
                if t.is_empty() {
                    continue;
                }
                if t.contains('/') && sample_types.is_empty() {
                    sample_types = t
                        .split_whitespace()
                        .map(|s| s.split('/').next().unwrap().to_string())
                        .collect();
                } else if let Some(b) = t.strip_prefix("bytes:[") {
                    raw_samples.last_mut().unwrap().1 =
                        Some(b.trim_end_matches(']').parse().unwrap());
                } else if let Some((vals, ids)) = t.split_once(':') {
                    let v: Vec<i64> = vals
                        .split_whitespace()
                        .map(|x| x.parse().unwrap())
                        .collect();
                    if v.len() == 4 {
                        let ids = ids.split_whitespace().map(|x| x.parse().unwrap()).collect();
                        raw_samples.push(([v[0], v[1], v[2], v[3]], None, ids));
                    }
                }
            }
            "locations" => {
                let t = line.trim_start();
                let (is_new, rest) = match t.split_once(": 0x") {
                    Some((id, rest)) if id.chars().all(|c| c.is_ascii_digit()) => {
                        last_loc = id.parse().unwrap();
                        (true, rest.split_once(' ').map(|x| x.1).unwrap_or(""))
                    }
                    _ => (false, t),
                };
                // "M=1 name file:line s=0" or, for inlined lines, "name file:line s=0"
                let rest = match rest.split_once(' ') {
                    Some((m, r)) if is_new && m.starts_with("M=") => r,
                    _ => rest,
                };
                let body = rest.rsplit_once(" s=").map(|x| x.0).unwrap_or(rest);
                let name = body
                    .rsplit_once(' ')
                    .map(|x| x.0)
                    .unwrap_or(body)
                    .to_string();
                locs.entry(last_loc).or_default().push(name);
            }
            _ => {}
        }
    }
    let samples = raw_samples
        .into_iter()
        .map(|(values, bytes, ids)| Sample {
            values,
            bytes,
            funcs: ids
                .iter()
                .map(|id| locs.get(id).cloned().unwrap_or_default())
                .collect(),
        })
        .collect();
    Decoded {
        period,
        sample_types,
        samples,
    }
}

/// Decodes with the npm `pprof-format` reader (allocator-tests/js).
pub fn pprof_format(path: &Path) -> Decoded {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("js/decode.cjs");
    let text = run(
        Command::new("node").arg(&script).arg(path),
        "node allocator-tests/js/decode.cjs",
        "node and `npm ci` in allocator-tests/js (.ci/run does)",
    );
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    let num = |x: &serde_json::Value| {
        x.as_i64()
            .or_else(|| x.as_str().and_then(|s| s.parse().ok()))
            .unwrap()
    };
    let samples = v["samples"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            let vals: Vec<i64> = s["values"].as_array().unwrap().iter().map(num).collect();
            Sample {
                values: [vals[0], vals[1], vals[2], vals[3]],
                bytes: s["numLabels"]["bytes"]
                    .as_array()
                    .and_then(|a| a.first())
                    .map(num),
                funcs: s["locations"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|l| {
                        l.as_array()
                            .unwrap()
                            .iter()
                            .map(|f| f.as_str().unwrap().to_string())
                            .collect()
                    })
                    .collect(),
            }
        })
        .collect();
    Decoded {
        period: num(&v["period"]),
        sample_types: v["sampleTypes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t[0].as_str().unwrap().to_string())
            .collect(),
        samples,
    }
}

/// Sums in-process records whose symbolized stack has `func` (and `size`).
pub fn record_sum(profile: &memprof::HeapProfile, func: &str, size: Option<u64>) -> [u64; 4] {
    let mut t = [0; 4];
    for r in profile.records() {
        if size.is_some_and(|s| s != r.object_size()) {
            continue;
        }
        if r.frames().iter().any(|f| f.function.contains(func)) {
            t[0] += r.alloc_objects();
            t[1] += r.alloc_bytes();
            t[2] += r.inuse_objects();
            t[3] += r.inuse_bytes();
        }
    }
    t
}

/// Aborts the process if the test is not done in `secs`: a hang fails.
pub fn watchdog(secs: u64, what: &'static str) {
    std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_secs(secs));
        eprintln!("watchdog: {what} did not finish in {secs} s (hang)");
        std::process::abort();
    });
}
