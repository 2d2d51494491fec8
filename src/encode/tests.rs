//! Shared fixtures for the encoder tests, and the checks that read our
//! output back with `go tool pprof`.

use std::path::PathBuf;
use std::process::Command;

use crate::snapshot::Record;
use crate::symbolize::tests::{other_site, outer_site};
use crate::HeapProfile;

/// The weight of one sample of `size` bytes at `rate` (1 at rate <= 1).
pub(super) fn weight(size: u64, rate: u64) -> f64 {
    if rate <= 1 {
        1.0
    } else {
        1.0 / (1.0 - (-(size as f64) / rate as f64).exp())
    }
}

/// A record of `allocs` samples (`frees` of them freed), taken at `rate`.
pub(super) fn record(stack: &[usize], size: u64, allocs: u64, frees: u64, rate: u64) -> Record {
    let w = weight(size, rate);
    Record {
        stack: stack.to_vec(),
        labels: Default::default(),
        ages: None,
        truncated: false,
        object_size: size,
        sampled_allocs: allocs,
        sampled_frees: frees,
        alloc_objects_est: allocs as f64 * w,
        inuse_objects_est: (allocs - frees) as f64 * w,
    }
}

/// Stacks of two known sites, captured for real.
pub(super) struct Stacks {
    /// `outer_site` with `inlined_site` inlined into it.
    pub(super) outer: Vec<usize>,
    pub(super) other: Vec<usize>,
}

pub(super) fn stacks() -> Stacks {
    Stacks {
        outer: outer_site().0,
        other: other_site(),
    }
}

/// A profile at `rate` with every case the encoders handle:
///
/// | # | stack | size | samples (freed) | case |
/// |---|---|---|---|---|
/// | 0 | outer | 1024 | 41 (10) | |
/// | 1 | outer minus its leaf (a hidden frame) | 1024 | 2 (2) | merges into 0 |
/// | 2 | other | 106496 | 35 (0) | |
/// | 3 | other | 368640 | 1 (1) | fully freed: kept |
/// | 4 | other | 64 | 0 (0) | all zero: skipped |
/// | 5 | other, first 5 addresses | 32 | 3 (0) | truncated |
/// | 6 | other | 4096 | 5 (1) | sampled at rate 65536, not `rate` |
pub(super) fn profile(s: &Stacks, rate: u64) -> HeapProfile {
    let mut truncated = record(&s.other[..5], 32, 3, 0, rate);
    truncated.truncated = true;
    HeapProfile {
        records: vec![
            record(&s.outer, 1024, 41, 10, rate),
            record(&s.outer[1..], 1024, 2, 2, rate),
            record(&s.other, 106496, 35, 0, rate),
            record(&s.other, 368640, 1, 1, rate),
            record(&s.other, 64, 0, 0, rate),
            truncated,
            record(&s.other, 4096, 5, 1, 65536),
        ],
        rate: rate as usize,
        time_nanos: 1_700_000_000_123_456_789,
        duration_nanos: 0,
        dropped_samples: 7,
        unwinder: "libgcc",
        label_overflow: 0,
        exact: None,
        kind: crate::snapshot::Kind::Heap,
    }
}

/// A fresh path in the temp directory for one test's output.
pub(super) fn temp_path(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("memprof-test-{}-{name}", std::process::id()))
}

/// One sample of `go tool pprof -raw` output.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct RawSample {
    /// `alloc_objects, alloc_space, inuse_objects, inuse_space`.
    pub(super) values: Vec<i64>,
    /// Location addresses, leaf first.
    pub(super) addresses: Vec<u64>,
    /// The `bytes` label.
    pub(super) bytes: Option<i64>,
}

/// What `go tool pprof -raw` shows of a profile.
pub(super) struct Raw {
    pub(super) text: String,
    pub(super) period: i64,
    pub(super) sample_types: String,
    pub(super) samples: Vec<RawSample>,
}

/// Runs `go tool pprof -raw path` and parses its samples. Fails the test
/// with a clear message when `go` is missing or pprof rejects the file.
pub(super) fn go_pprof_raw(path: &std::path::Path) -> Raw {
    let out = Command::new("go")
        .args(["tool", "pprof", "-raw"])
        .arg(path)
        .env("PPROF_TMPDIR", std::env::temp_dir())
        .output()
        .expect("`go` (Go toolchain, for `go tool pprof`) must be installed for this test");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "go tool pprof failed: {err}\n{text}");
    parse_raw(&text)
}

/// Parses the `Period`, `Samples` and `Locations` sections of `-raw` output.
fn parse_raw(text: &str) -> Raw {
    let mut period = 0;
    let mut sample_types = String::new();
    let mut samples: Vec<(Vec<i64>, Vec<u64>, Option<i64>)> = Vec::new();
    let mut addr_of = std::collections::HashMap::new();
    let mut section = "";
    for line in text.lines() {
        let t = line.trim();
        match t {
            "Samples:" | "Locations" | "Mappings" => {
                section = t;
                continue;
            }
            _ => {}
        }
        if let Some(p) = t.strip_prefix("Period: ") {
            period = p.parse().unwrap();
        } else if section == "Samples:" && sample_types.is_empty() {
            sample_types = t.to_owned();
        } else if section == "Samples:" {
            if let Some(b) = t.strip_prefix("bytes:[") {
                samples.last_mut().unwrap().2 = Some(b.trim_end_matches(']').parse().unwrap());
            } else if let Some((vals, locs)) = t.split_once(':') {
                let values = vals
                    .split_whitespace()
                    .map(|v| v.parse().unwrap())
                    .collect();
                let ids = locs
                    .split_whitespace()
                    .map(|v| v.parse().unwrap())
                    .collect();
                samples.push((values, ids, None));
            }
        } else if section == "Locations" {
            // `   3: 0x55d0c7a5e0ab M=1 func file:line s=0`
            let mut f = t.split_whitespace();
            if let (Some(id), Some(addr)) = (f.next(), f.next()) {
                if let (Some(id), Some(addr)) = (id.strip_suffix(':'), addr.strip_prefix("0x")) {
                    addr_of.insert(
                        id.parse::<u64>().unwrap(),
                        u64::from_str_radix(addr, 16).unwrap(),
                    );
                }
            }
        }
    }
    let samples = samples
        .into_iter()
        .map(|(values, ids, bytes)| RawSample {
            values,
            addresses: ids.iter().map(|id: &u64| addr_of[id]).collect(),
            bytes,
        })
        .collect();
    Raw {
        text: text.to_owned(),
        period,
        sample_types,
        samples,
    }
}

#[test]
fn age_split_keeps_the_site_totals_even_in_a_delta() {
    use crate::ages::{Ages, BUCKETS};
    let mut ages = Ages::default();
    ages.buckets[0] = 3.0;
    ages.buckets[2] = 4.0;
    let site = |alloc: f64, inuse: f64| super::Site {
        locs: Vec::new(),
        truncated: false,
        object_size: 10,
        labels: Default::default(),
        alloc_objects_est: alloc,
        inuse_objects_est: inuse,
        ages: Some(ages.clone()),
    };
    let sum = |parts: &[(Option<u64>, [u64; 4])]| {
        parts.iter().fold([0; 4], |mut t, (_, v)| {
            (0..4).for_each(|i| t[i] += v[i]);
            t
        })
    };
    // A snapshot: 7 live by age, 5 freed without an age.
    let parts = site(12.0, 7.0).by_age();
    assert_eq!(
        parts,
        [
            (Some(BUCKETS[0]), [3, 30, 3, 30]),
            (Some(BUCKETS[2]), [4, 40, 4, 40]),
            (None, [5, 50, 0, 0]),
        ]
    );
    assert_eq!(sum(&parts), [12, 120, 7, 70]);
    // A delta: 2 allocated in the window, 7 live at its end.
    let parts = site(2.0, 7.0).by_age();
    assert_eq!(sum(&parts), [2, 20, 7, 70]);
    assert!(parts.iter().all(|(age, _)| age.is_some()));
}
