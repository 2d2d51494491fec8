//! Shared helpers for the allocator tests (`tests/*.rs`), each of which
//! installs `memprof::Sampled` as its global allocator.
//!
//! - Write a profile to a temporary file ([`temp_dir`], [`write_pprof`],
//!   [`write_text`]).
//! - Read it back with real, independent readers: `go tool pprof -raw`
//!   ([`go_raw`], [`go_raw_text`]) and the npm `pprof-format` decoder run by
//!   `js/decode.cjs` ([`pprof_format`]); `google-pprof` ([`google_pprof_text`]).
//!   A missing reader is a test **failure** whose message names what to
//!   install; no test skips.
//! - Select "the samples whose stack contains function X"
//!   ([`Decoded::sum`], [`Decoded::with_fn`], [`record_sum`], [`FnFilter`]).
//! - Keep tests honest about time: [`watchdog`] aborts a hung binary,
//!   [`wait_child`] and [`output_within`] bound child processes.
//! - Serialise the tests of one binary that change the process-wide rate
//!   ([`rate_lock`]), and the sampling math the statistical tests use
//!   ([`sample_probability`], [`estimate_sd`]).

use std::collections::HashMap;
use std::io::Read;
pub mod fork_stall;
pub mod http;
pub mod mem;
pub mod soak;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// One sample, as a reader saw it.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// The sample's values, in the profile's sample-type order. For a Go
    /// heap profile: alloc_objects, alloc_space, inuse_objects, inuse_space.
    pub values: Vec<i64>,
    /// The `bytes` numeric label (object size), if any.
    pub bytes: Option<i64>,
    /// Function names per location, leaf location first; within a location,
    /// innermost (inlined) function first.
    pub funcs: Vec<Vec<String>>,
    /// Location addresses, leaf first (only from `go tool pprof -raw`; empty
    /// from `pprof-format`).
    pub addrs: Vec<u64>,
    /// String labels as (key, value), sorted.
    pub str_labels: Vec<(String, String)>,
    /// Numeric labels as (key, value, unit), sorted; the unit is `""` when
    /// the profile gives none. The `bytes` label is here too.
    pub num_labels: Vec<(String, i64, String)>,
}

/// Ends an `#[inline(never)]` function whose frame a test looks for: in
/// an optimised build, a function whose last act is a call jumps to it (a
/// tail call), and its frame is then not on the stack of what the callee
/// allocates. Anything after the call keeps the frame.
#[inline(always)]
pub fn keep_frame() {
    std::hint::black_box(());
}

/// Starts an `#[inline(never)]` function whose frame a test looks for
/// when its body is the same as another function's (`Vec::with_capacity`
/// of a size, say): an optimised build merges identical functions into
/// one, whose frames then carry one of their names for all of them. The
/// function's own `name` makes its body its own.
#[inline(always)]
pub fn own_body(name: &'static str) {
    std::hint::black_box(name);
}

/// Does the function `name` (a demangled path such as
/// `rate1_exact::alloc_hundreds`) stand for `func`? `func` is either the
/// whole path or its last segments (`alloc_hundreds`,
/// `rate1_exact::alloc_hundreds`). Closures inside `func` do not match: the
/// enclosing function's own frame is on the stack anyway.
pub fn fn_matches(name: &str, func: &str) -> bool {
    name == func
        || name
            .strip_suffix(func)
            .is_some_and(|prefix| prefix.ends_with("::"))
}

impl Sample {
    /// Does any frame of this sample's stack belong to `func` (see
    /// [`fn_matches`])?
    pub fn has_fn(&self, func: &str) -> bool {
        self.funcs.iter().flatten().any(|f| fn_matches(f, func))
    }

    /// The (first) value of the string label `key`.
    pub fn str_label(&self, key: &str) -> Option<&str> {
        self.str_labels
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// The (first) value and unit of the numeric label `key`.
    pub fn num_label(&self, key: &str) -> Option<(i64, &str)> {
        self.num_labels
            .iter()
            .find(|(k, _, _)| k == key)
            .map(|(_, v, u)| (*v, u.as_str()))
    }

    /// The four Go heap values; panics if the sample has another shape.
    pub fn heap_values(&self) -> [i64; 4] {
        self.values
            .as_slice()
            .try_into()
            .unwrap_or_else(|_| panic!("expected 4 values, got {:?}", self.values))
    }
}

/// A decoded profile.
#[derive(Debug, Clone)]
pub struct Decoded {
    /// Which reader produced this, for assertion messages.
    pub reader: &'static str,
    /// `period_type` as (type, unit).
    pub period_type: Option<(String, String)>,
    /// pprof `period`.
    pub period: i64,
    /// Sample types as (type, unit), in order.
    pub sample_types: Vec<(String, String)>,
    /// The default sample type, `""` when unset.
    pub default_sample_type: String,
    /// Profile comments.
    pub comments: Vec<String>,
    /// All samples, in file order.
    pub samples: Vec<Sample>,
}

/// Go's heap profile sample types, in Go's order.
pub const GO_HEAP_SAMPLE_TYPES: [(&str, &str); 4] = [
    ("alloc_objects", "count"),
    ("alloc_space", "bytes"),
    ("inuse_objects", "count"),
    ("inuse_space", "bytes"),
];

impl Decoded {
    /// The samples whose stack contains `func`.
    pub fn with_fn<'a>(&'a self, func: &'a str) -> impl Iterator<Item = &'a Sample> + 'a {
        self.samples.iter().filter(move |s| s.has_fn(func))
    }

    /// Sums the four heap values of the samples whose stack contains `func`
    /// and whose `bytes` label is `size` (any size if `None`).
    pub fn sum(&self, func: &str, size: Option<i64>) -> [i64; 4] {
        let mut t = [0; 4];
        for s in self
            .with_fn(func)
            .filter(|s| size.is_none() || s.bytes == size)
        {
            for (acc, v) in t.iter_mut().zip(s.heap_values()) {
                *acc += v;
            }
        }
        t
    }

    /// Sums the four heap values over every sample.
    pub fn total(&self) -> [i64; 4] {
        self.sum_where(|_| true)
    }

    /// Sums the four heap values of the samples `keep` selects.
    pub fn sum_where(&self, keep: impl Fn(&Sample) -> bool) -> [i64; 4] {
        let mut t = [0; 4];
        for s in self.samples.iter().filter(|s| keep(s)) {
            for (acc, v) in t.iter_mut().zip(s.heap_values()) {
                *acc += v;
            }
        }
        t
    }

    /// Asserts the shape of a Go heap profile: `period_type` space/bytes,
    /// `period`, and the four sample types in Go's order.
    pub fn assert_go_heap_shape(&self, period: i64) {
        let r = self.reader;
        assert_eq!(
            self.period_type,
            Some(("space".to_string(), "bytes".to_string())),
            "{r}: period_type"
        );
        assert_eq!(self.period, period, "{r}: period");
        let want: Vec<(String, String)> = GO_HEAP_SAMPLE_TYPES
            .iter()
            .map(|&(t, u)| (t.to_string(), u.to_string()))
            .collect();
        assert_eq!(self.sample_types, want, "{r}: sample types");
    }
}

/// `samples` with those that differ only in their `age` label merged (values
/// summed, the age dropped), in order of first appearance: a heap profile
/// splits each site by the age of its live objects, while Go's text format
/// and older views have one sample per site.
pub fn merge_ages(samples: &[Sample]) -> Vec<Sample> {
    let mut out: Vec<Sample> = Vec::new();
    for s in samples {
        let mut s = s.clone();
        s.num_labels.retain(|(k, _, _)| k != "age");
        let same = |o: &Sample| {
            o.addrs == s.addrs
                && o.funcs == s.funcs
                && o.bytes == s.bytes
                && o.str_labels == s.str_labels
                && o.num_labels == s.num_labels
        };
        match out.iter_mut().find(|o| same(o)) {
            Some(o) => {
                for (a, v) in o.values.iter_mut().zip(&s.values) {
                    *a += v;
                }
            }
            None => out.push(s),
        }
    }
    out
}

/// The temporary directory `tag` of this process, created if missing (and
/// otherwise left as it is: several tests may share one tag). Give each
/// test its own tag when it needs an empty directory.
pub fn temp_dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir()
        .join("memprof-allocator-tests")
        .join(format!("{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap_or_else(|e| panic!("create {}: {e}", d.display()));
    d
}

/// Writes `profile` as gzip pprof to `dir/name` and returns the path.
pub fn write_pprof(profile: &memprof::HeapProfile, dir: &Path, name: &str) -> PathBuf {
    let p = dir.join(name);
    let f = std::fs::File::create(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    profile.write_pprof(f).expect("write_pprof");
    p
}

/// Writes `profile` as Go `debug=1` text to `dir/name` and returns the path.
pub fn write_text(profile: &memprof::HeapProfile, dir: &Path, name: &str) -> PathBuf {
    let p = dir.join(name);
    let f = std::fs::File::create(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    profile.write_text(f).expect("write_text");
    p
}

/// Runs a reader; a reader that cannot be started fails with what to
/// install, one that rejects the profile fails with its stderr.
fn run_reader(cmd: &mut Command, what: &str, install: &str) -> String {
    let out = cmd.output().unwrap_or_else(|e| {
        panic!("cannot run {what} ({e}): install {install}; allocator-tests never skip a reader")
    });
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap_or_else(|e| panic!("{what}: output is not UTF-8: {e}"))
}

const INSTALL_GO: &str = "Go's pprof: `apt-get install golang-go` (Debian; .ci/run does it)";

fn go_pprof_raw(args: &[&str], path: &Path) -> String {
    run_reader(
        Command::new("go")
            .args(["tool", "pprof", "-raw"])
            .args(args)
            .arg(path)
            .env("PPROF_TMPDIR", std::env::temp_dir()),
        "go tool pprof",
        INSTALL_GO,
    )
}

/// Decodes a pprof file with `go tool pprof -raw`, keeping the samples whose
/// stack contains one of `funcs` (all samples if `funcs` is empty).
///
/// Filtering happens before anything per sample is allocated: at rate 1
/// every allocation of the test process is recorded, so decoding a whole
/// profile would leave records behind that make the next profile bigger.
pub fn go_raw(path: &Path, funcs: &[&str]) -> Decoded {
    parse_go_raw(
        &go_pprof_raw(&[], path),
        "go tool pprof",
        &Keep::Funcs(funcs),
    )
}

/// Runs `go tool pprof -top -unit=B` on `path` with `args` (filters such as
/// `-tagfocus=tenant=acme`, `-sample_index=alloc_space`), every node shown
/// (`-nodefraction=0 -nodecount=1000000`), and returns the report.
/// [`top_shown`] reads what the filters kept.
pub fn go_top(path: &Path, args: &[&str]) -> String {
    run_reader(
        Command::new("go")
            .args(["tool", "pprof", "-top", "-unit=B", "-nodefraction=0"])
            .arg("-nodecount=1000000")
            .args(args)
            .arg(path)
            .env("PPROF_TMPDIR", std::env::temp_dir()),
        "go tool pprof -top",
        INSTALL_GO,
    )
}

/// The header of a `go tool pprof -top -unit=B` report, `Showing nodes
/// accounting for X, P% of T total`, as `(X, T)`: with every node shown, X
/// is the sum of the samples the filters (`-tagfocus`, `-focus`) kept and T
/// the profile's total before them. Values are bytes (`123B`) or counts.
/// `None` without such a line.
pub fn top_shown(report: &str) -> Option<(i64, i64)> {
    let line = report.lines().find(|l| l.contains("Showing nodes"))?;
    let num = |x: &str| -> Option<i64> {
        let x = x.trim();
        x.strip_suffix('B').unwrap_or(x).parse().ok()
    };
    let (head, total) = line.split_once(" of ")?;
    let shown = head.split_once("accounting for ")?.1.split(',').next()?;
    Some((num(shown)?, num(total.strip_suffix(" total")?)?))
}

/// Decodes a Go legacy text profile with `go tool pprof -raw`, without
/// symbolization, keeping the samples whose leaf-first location addresses
/// are one of `stacks` (all samples if `None`). The text carries return
/// addresses, which Go's pprof would re-symbolize from the binary with
/// names that are unreliable for Rust, so text samples are matched to the
/// proto's by [`Sample::addrs`].
pub fn go_raw_text(path: &Path, stacks: Option<&[Vec<u64>]>) -> Decoded {
    let keep = match stacks {
        Some(s) => Keep::Stacks(s),
        None => Keep::Funcs(&[]),
    };
    parse_go_raw(
        &go_pprof_raw(&["-symbolize=none"], path),
        "go tool pprof (text)",
        &keep,
    )
}

/// Which samples a parse keeps.
pub enum Keep<'a> {
    /// Those whose stack has one of these functions; all if empty.
    Funcs(&'a [&'a str]),
    /// Those whose leaf-first location addresses are one of these.
    Stacks(&'a [Vec<u64>]),
}

/// The function names of one `-raw` location line (first or continuation),
/// without allocating: `name file:line s=N[(system name)]`.
fn raw_line_name(body: &str) -> &str {
    if body == "??" {
        return body;
    }
    let before_s = body.rsplit_once(" s=").map_or(body, |x| x.0);
    before_s.rsplit_once(' ').map_or(before_s, |x| x.0)
}

/// Splits a `-raw` location line into (id and address if it starts a
/// location, the function part).
fn raw_location_line(line: &str) -> (Option<(u64, u64)>, &str) {
    // `%6d: %#x ` [`M=%d `] [`[F] `] then `name file:line s=N`; inlined
    // callers follow on lines indented by 13 spaces.
    let t = line.trim_start();
    let Some((id, rest)) = t
        .split_once(": 0x")
        .filter(|(id, _)| !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit()))
    else {
        return (None, t);
    };
    let (addr, rest) = rest.split_once(' ').unwrap_or((rest, ""));
    let addr = u64::from_str_radix(addr, 16).unwrap_or_else(|_| panic!("address in {line:?}"));
    let rest = rest
        .strip_prefix("M=")
        .map(|r| r.split_once(' ').map_or("", |x| x.1))
        .unwrap_or(rest);
    let rest = rest.strip_prefix("[F] ").unwrap_or(rest);
    (Some((id.parse().unwrap(), addr)), rest)
}

/// Parses `go tool pprof -raw` output (google/pprof `Profile.String`):
///
/// ```text
/// PeriodType: space bytes
/// Period: 1
/// Samples:
/// alloc_objects/count alloc_space/bytes inuse_objects/count inuse_space/bytes
///        1000     100000       1000     100000: 1 2 3
///                 bytes:[100]
/// Locations
///      1: 0x55fb... M=1 rate1_exact::alloc_hundreds /path/x.rs:12 s=0(_ZN...E)
///              <inlined caller> /path/y.rs:3 s=0
/// Mappings
/// ```
pub fn parse_go_raw(text: &str, reader: &'static str, keep: &Keep<'_>) -> Decoded {
    let mut d = Decoded {
        reader,
        period_type: None,
        period: 0,
        sample_types: Vec::new(),
        default_sample_type: String::new(),
        comments: Vec::new(),
        samples: Vec::new(),
    };
    // Section bodies, between the lines `Samples:`, `Locations` and
    // `Mappings` (any of them may be empty).
    let section = |from: &str, to: Option<&str>| -> &str {
        let mut start = None;
        let mut offset = 0;
        for line in text.split_inclusive('\n') {
            let name = line.trim_end();
            if start.is_none() && name == from {
                start = Some(offset + line.len());
            } else if start.is_some() && Some(name) == to {
                return &text[start.unwrap()..offset];
            }
            offset += line.len();
        }
        let start = start.unwrap_or_else(|| panic!("{reader}: no {from:?} line in:\n{text}"));
        &text[start..]
    };
    let head = &text[..text.find("\nSamples:").map_or(0, |i| i + 1)];
    let samples_text = section("Samples:", Some("Locations"));
    let locations_text = section("Locations", Some("Mappings"));
    for line in head.lines() {
        if let Some(c) = line.strip_prefix("Comment: ") {
            d.comments.push(c.to_string());
        } else if let Some(pt) = line.strip_prefix("PeriodType: ") {
            let (t, u) = pt.split_once(' ').unwrap_or((pt, ""));
            d.period_type = Some((t.to_string(), u.to_string()));
        } else if let Some(p) = line.strip_prefix("Period: ") {
            d.period = p.trim().parse().expect("Period");
        }
    }

    // Locations: id -> (address, its lines' text), and which ones have a
    // wanted function.
    let mut locs: HashMap<u64, (u64, &str)> = HashMap::new();
    let mut wanted: std::collections::HashSet<u64> = Default::default();
    let funcs: &[&str] = match keep {
        Keep::Funcs(f) => f,
        Keep::Stacks(_) => &[],
    };
    let mut cur: Option<(u64, u64, usize)> = None; // id, address, start offset
    let base = locations_text.as_ptr() as usize;
    let mut close = |cur: Option<(u64, u64, usize)>, end: usize| {
        if let Some((id, addr, start)) = cur {
            locs.insert(id, (addr, &locations_text[start..end]));
        }
    };
    for line in locations_text.lines() {
        let off = line.as_ptr() as usize - base;
        let (head, body) = raw_location_line(line);
        if let Some((id, addr)) = head {
            close(cur, off);
            cur = Some((id, addr, off));
        }
        let id = cur
            .map(|c| c.0)
            .unwrap_or_else(|| panic!("{reader}: {line:?}"));
        if !body.trim().is_empty() && funcs.iter().any(|f| fn_matches(raw_line_name(body), f)) {
            wanted.insert(id);
        }
    }
    close(cur, locations_text.len());

    let wanted_stacks: std::collections::HashSet<&[u64]> = match keep {
        Keep::Stacks(stacks) => stacks.iter().map(Vec::as_slice).collect(),
        Keep::Funcs(_) => Default::default(),
    };
    let mut lines = samples_text.lines();
    if let Some(t) = lines.next() {
        for ty in t.split_whitespace() {
            let (ty, dflt) = match ty.strip_suffix("[dflt]") {
                Some(ty) => (ty, true),
                None => (ty, false),
            };
            let (name, unit) = ty.split_once('/').unwrap_or((ty, ""));
            if dflt {
                d.default_sample_type = name.to_string();
            }
            d.sample_types.push((name.to_string(), unit.to_string()));
        }
    }
    let mut kept_last = false;
    for line in lines {
        let t = line.trim();
        if t.is_empty() {
            continue;
        }
        if t.contains(":[") {
            // Label line of the sample above: string labels (`tenant:[acme]`)
            // on one line, then numeric ones, maybe with units, on the next
            // (`age:[1 seconds] bytes:[100]`).
            if kept_last {
                let sample = d.samples.last_mut().unwrap();
                match parse_labels(t) {
                    Labels::Num(labels) => {
                        for (key, value, unit) in labels {
                            if key == "bytes" && sample.bytes.is_none() {
                                sample.bytes = Some(value);
                            }
                            sample.num_labels.push((key, value, unit));
                        }
                        sample.num_labels.sort();
                    }
                    Labels::Str(labels) => {
                        sample.str_labels.extend(labels);
                        sample.str_labels.sort();
                    }
                }
            }
            continue;
        }
        let (vals, ids) = t
            .split_once(':')
            .unwrap_or_else(|| panic!("{reader}: sample line {t:?}"));
        let id_of = |x: &str| -> u64 { x.parse().unwrap_or_else(|_| panic!("location in {t:?}")) };
        kept_last = match keep {
            Keep::Funcs(f) => {
                f.is_empty() || ids.split_whitespace().any(|x| wanted.contains(&id_of(x)))
            }
            Keep::Stacks(_) => {
                let addrs: Vec<u64> = ids
                    .split_whitespace()
                    .map(|x| locs.get(&id_of(x)).map_or(0, |l| l.0))
                    .collect();
                wanted_stacks.contains(addrs.as_slice())
            }
        };
        if !kept_last {
            continue;
        }
        let mut sample = Sample {
            values: vals
                .split_whitespace()
                .map(|x| x.parse().unwrap_or_else(|_| panic!("value in {t:?}")))
                .collect(),
            bytes: None,
            funcs: Vec::new(),
            addrs: Vec::new(),
            str_labels: Vec::new(),
            num_labels: Vec::new(),
        };
        for x in ids.split_whitespace() {
            let id = id_of(x);
            let &(addr, block) = locs
                .get(&id)
                .unwrap_or_else(|| panic!("{reader}: unknown location {id}"));
            sample.addrs.push(addr);
            sample.funcs.push(
                block
                    .lines()
                    .map(|l| raw_location_line(l).1)
                    .filter(|b| !b.trim().is_empty())
                    .map(|b| raw_line_name(b).to_string())
                    .collect(),
            );
        }
        d.samples.push(sample);
    }
    d
}

/// The labels of one `-raw` label line.
#[derive(Debug, PartialEq)]
enum Labels {
    /// `key:[v1 v2] other:[v]`: (key, value) pairs.
    Str(Vec<(String, String)>),
    /// `key:[1 unit 2 unit] other:[3]`: (key, value, unit) triples.
    Num(Vec<(String, i64, String)>),
}

/// Parses a `-raw` label line (google/pprof `Sample.string`: string labels
/// on one line, numeric labels with their units on another, each `key:%v`
/// of a Go slice). A line is numeric when every value of every key starts
/// with an integer; so string values that are integers, or that contain
/// spaces, cannot be told apart here (the tests use neither).
fn parse_labels(line: &str) -> Labels {
    let mut raw: Vec<(String, Vec<&str>)> = Vec::new();
    let mut rest = line;
    while let Some((key, after)) = rest.split_once(":[") {
        let (vals, tail) = after.split_once(']').unwrap_or((after, ""));
        raw.push((key.trim().to_string(), vals.split_whitespace().collect()));
        rest = tail;
    }
    let numeric = raw
        .iter()
        .all(|(_, v)| v.first().is_some_and(|x| x.parse::<i64>().is_ok()));
    if !numeric {
        return Labels::Str(
            raw.into_iter()
                .flat_map(|(k, v)| v.into_iter().map(move |x| (k.clone(), x.to_string())))
                .collect(),
        );
    }
    let mut out = Vec::new();
    for (key, tokens) in raw {
        let mut it = tokens.into_iter().peekable();
        while let Some(v) = it.next() {
            let value = v
                .parse::<i64>()
                .unwrap_or_else(|_| panic!("numeric label {key} in {line:?}"));
            let unit = match it.peek() {
                Some(u) if u.parse::<i64>().is_err() => it.next().unwrap().to_string(),
                _ => String::new(),
            };
            out.push((key.clone(), value, unit));
        }
    }
    Labels::Num(out)
}

/// Decodes a pprof file with the npm `pprof-format` package
/// (`allocator-tests/js/decode.cjs`), keeping the samples whose stack
/// contains one of `funcs` (all if empty; filtered in the script, for the
/// reason given at [`go_raw`]).
pub fn pprof_format(path: &Path, funcs: &[&str]) -> Decoded {
    let js = Path::new(env!("CARGO_MANIFEST_DIR")).join("js");
    assert!(
        js.join("node_modules/pprof-format").is_dir(),
        "the npm package pprof-format is not installed: run `npm ci` in {} (.ci/run does it); \
         allocator-tests never skip a reader",
        js.display()
    );
    let text = run_reader(
        Command::new("node")
            .arg(js.join("decode.cjs"))
            .arg(path)
            .args(funcs),
        "node allocator-tests/js/decode.cjs",
        "Node.js: `apt-get install nodejs npm` (Debian), then `npm ci` in allocator-tests/js",
    );
    let v: serde_json::Value = serde_json::from_str(&text).expect("decode.cjs printed bad JSON");
    let num = |x: &serde_json::Value| {
        x.as_i64()
            .or_else(|| x.as_str().and_then(|s| s.parse().ok()))
            .unwrap_or_else(|| panic!("not a number: {x}"))
    };
    let s = |x: &serde_json::Value| x.as_str().expect("string").to_string();
    let pair = |x: &serde_json::Value| (s(&x[0]), s(&x[1]));
    let arr = |x: &serde_json::Value| x.as_array().cloned().unwrap_or_default();
    Decoded {
        reader: "pprof-format",
        period_type: v["periodType"].as_array().map(|_| pair(&v["periodType"])),
        period: num(&v["period"]),
        sample_types: arr(&v["sampleTypes"]).iter().map(pair).collect(),
        default_sample_type: s(&v["defaultSampleType"]),
        comments: arr(&v["comments"]).iter().map(s).collect(),
        samples: arr(&v["samples"])
            .iter()
            .map(|smp| {
                let mut str_labels = Vec::new();
                for (k, vals) in smp["strLabels"].as_object().into_iter().flatten() {
                    str_labels.extend(arr(vals).iter().map(|v| (k.clone(), s(v))));
                }
                str_labels.sort();
                let mut num_labels = Vec::new();
                for (k, vals) in smp["numLabels"].as_object().into_iter().flatten() {
                    let units = arr(&smp["numUnits"][k]);
                    for (i, v) in arr(vals).iter().enumerate() {
                        let unit = units.get(i).map(s).unwrap_or_default();
                        num_labels.push((k.clone(), num(v), unit));
                    }
                }
                num_labels.sort();
                Sample {
                    values: arr(&smp["values"]).iter().map(num).collect(),
                    bytes: smp["numLabels"]["bytes"]
                        .as_array()
                        .and_then(|a| a.first())
                        .map(num),
                    funcs: arr(&smp["locations"])
                        .iter()
                        .map(|l| arr(l).iter().map(s).collect())
                        .collect(),
                    addrs: Vec::new(),
                    str_labels,
                    num_labels,
                }
            })
            .collect(),
    }
}

/// Decodes a pprof file with both readers, keeping the samples whose stack
/// contains one of `funcs` (all if empty).
pub fn decode_both(path: &Path, funcs: &[&str]) -> [Decoded; 2] {
    [go_raw(path, funcs), pprof_format(path, funcs)]
}

/// Runs `google-pprof --text --<sample_index> <binary> <text profile>` (the
/// gperftools reader of the legacy heap text) and returns its report.
/// `sample_index` is e.g. `inuse_objects` or `alloc_objects`.
pub fn google_pprof_text(binary: &Path, profile: &Path, sample_index: &str) -> String {
    run_reader(
        Command::new("google-pprof")
            .arg("--text")
            .arg(format!("--{sample_index}"))
            .arg(binary)
            .arg(profile)
            .stdin(Stdio::null()),
        "google-pprof",
        "gperftools' pprof: `apt-get install google-perftools binutils` (Debian; .ci/run does it)",
    )
}

/// The per-function count of a `google-pprof --text` report: the `cum`
/// column of the line naming `func` (lines are `flat flat% sum% cum cum%
/// name`).
pub fn google_cum(report: &str, func: &str) -> i64 {
    let line = report
        .lines()
        .find(|l| {
            l.split_whitespace()
                .nth(5)
                .is_some_and(|name| fn_matches(name, func))
        })
        .unwrap_or_else(|| panic!("google-pprof report has no line for {func}:\n{report}"));
    line.split_whitespace().nth(3).unwrap().parse().unwrap()
}

/// Recurses `depth` frames, then allocates `size` bytes: a stack of known
/// shape for the unwinder tests. Every level is a real frame (the result
/// goes through `black_box` after the call, so there is no tail call).
#[inline(never)]
pub fn recurse_then_alloc(depth: usize, size: usize) -> Vec<u8> {
    if depth == 0 {
        return Vec::with_capacity(size);
    }
    let v = recurse_then_alloc(depth - 1, size);
    std::hint::black_box(v)
}

/// 200 allocations of `size` bytes from one site, for threads with small
/// stacks (`black_box`: no tail call, so this frame stays on the stack).
#[inline(never)]
pub fn small_stack_alloc(size: usize) -> Vec<Vec<u8>> {
    std::hint::black_box((0..200).map(|_| Vec::with_capacity(size)).collect())
}

/// Checks, in a profile read back by a reader, the samples of a recursion
/// test: `func` recursed `depth` times, then allocated `bytes` bytes, once
/// that deep and once too deep for the unwinder. The shallow sample shows
/// `depth + 1` frames of `func` in a row, leaf first, and then `caller`;
/// the deep one ends in the `memprof::truncated` marker frame.
pub fn assert_recursion_in_order(d: &Decoded, bytes: i64, func: &str, depth: usize, caller: &str) {
    let truncated = |s: &Sample| {
        s.funcs
            .iter()
            .flatten()
            .any(|f| f.contains("memprof::truncated"))
    };
    let s = d
        .samples
        .iter()
        .find(|s| s.bytes == Some(bytes) && !truncated(s))
        .unwrap_or_else(|| panic!("{}: no {bytes}-byte sample that is not truncated", d.reader));
    let names: Vec<&String> = s.funcs.iter().flatten().collect();
    let first = names.iter().position(|f| f.contains(func)).unwrap();
    assert!(
        names.len() > first + depth + 1
            && names[first..=first + depth]
                .iter()
                .all(|f| f.contains(func)),
        "{} frames of {func} in a row: {names:?}",
        depth + 1
    );
    assert!(
        names[first + depth + 1..]
            .iter()
            .any(|f| f.contains(caller)),
        "{caller} after the recursion: {names:?}"
    );
    assert!(
        d.samples
            .iter()
            .any(|s| s.bytes == Some(bytes) && truncated(s)),
        "truncation is visible in the profile"
    );
}

/// Sums the in-process records whose symbolized stack contains `func` and
/// whose object size is `size` (any size if `None`):
/// `[alloc_objects, alloc_bytes, inuse_objects, inuse_bytes]`.
pub fn record_sum(profile: &memprof::HeapProfile, func: &str, size: Option<u64>) -> [u64; 4] {
    FnFilter::new(func).sum(profile, size)
}

/// Selects records whose stack contains one function. Each distinct stack
/// is symbolized once per process (symbolizing is slow in debug builds, and
/// the readers' own allocations at rate 1 leave many records behind).
pub struct FnFilter {
    func: String,
}

type Names = HashMap<Vec<usize>, Arc<Vec<String>>>;
/// Function names of every stack symbolized so far, by raw stack.
static CACHE: Mutex<Option<Names>> = Mutex::new(None);

/// Symbolizes, in one pass over the debug info, the stacks of `profile`
/// not in the cache yet (a pass per stack took minutes in a debug build
/// on a loaded machine: each one loads the debug info anew).
fn symbolize_new_stacks(profile: &memprof::HeapProfile) {
    let new = {
        let cache = CACHE.lock().unwrap_or_else(|e| e.into_inner());
        profile
            .records()
            .any(|r| !cache.as_ref().is_some_and(|c| c.contains_key(r.stack())))
    };
    if !new {
        return;
    }
    // Symbolize without holding the cache lock: other threads may need it.
    let named: Vec<(Vec<usize>, Arc<Vec<String>>)> = profile
        .records_with_frames()
        .into_iter()
        .map(|(r, frames)| {
            let names = frames.into_iter().map(|f| f.function).collect();
            (r.stack().to_vec(), Arc::new(names))
        })
        .collect();
    CACHE
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get_or_insert_with(HashMap::new)
        .extend(named);
}

/// The function names of `record`'s stack, from the cache or symbolized.
fn stack_names(record: &memprof::Record) -> Arc<Vec<String>> {
    if let Some(names) = CACHE
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get_or_insert_with(HashMap::new)
        .get(record.stack())
    {
        return names.clone();
    }
    // Symbolize without holding the cache lock: other threads may need it.
    let names: Arc<Vec<String>> =
        Arc::new(record.frames().into_iter().map(|f| f.function).collect());
    CACHE
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get_or_insert_with(HashMap::new)
        .insert(record.stack().to_vec(), names.clone());
    names
}

impl FnFilter {
    /// A filter for `func` (see [`fn_matches`]).
    pub fn new(func: &str) -> Self {
        FnFilter {
            func: func.to_string(),
        }
    }

    /// Does `record`'s stack contain the function?
    pub fn matches(&mut self, record: &memprof::Record) -> bool {
        stack_names(record)
            .iter()
            .any(|f| fn_matches(f, &self.func))
    }

    /// `[alloc_objects, alloc_bytes, inuse_objects, inuse_bytes]` summed
    /// over the matching records of size `size` (any if `None`).
    pub fn sum(&mut self, profile: &memprof::HeapProfile, size: Option<u64>) -> [u64; 4] {
        symbolize_new_stacks(profile);
        let mut t = [0; 4];
        for r in profile.records() {
            if size.is_some_and(|s| s != r.object_size()) || !self.matches(r) {
                continue;
            }
            t[0] += r.alloc_objects();
            t[1] += r.alloc_bytes();
            t[2] += r.inuse_objects();
            t[3] += r.inuse_bytes();
        }
        t
    }
}

/// Aborts the whole test binary with a message if it is still running
/// after `secs` seconds, so a hang fails the run instead of stalling CI.
/// Dropping the returned guard disarms it.
#[must_use = "the watchdog is disarmed when this guard is dropped"]
pub fn watchdog(secs: u64, what: &'static str) -> Watchdog {
    let done = Arc::new(AtomicBool::new(false));
    let flag = done.clone();
    std::thread::spawn(move || {
        let deadline = Instant::now() + Duration::from_secs(secs);
        while Instant::now() < deadline {
            if flag.load(Ordering::Acquire) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        eprintln!("watchdog: {what} did not finish within {secs} s: aborting (a hang)");
        std::process::abort();
    });
    Watchdog { done }
}

/// Disarms its [`watchdog`] when dropped.
pub struct Watchdog {
    done: Arc<AtomicBool>,
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        self.done.store(true, Ordering::Release);
    }
}

/// Waits for the forked child `pid`, at most `timeout`; a child still
/// running then is killed and the test fails. Returns the wait status.
pub fn wait_child(pid: libc::pid_t, timeout: Duration, what: &str) -> libc::c_int {
    let start = Instant::now();
    let mut status = 0;
    loop {
        // SAFETY: `pid` is our own child and `status` a valid out-pointer.
        let r = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
        if r == pid {
            return status;
        }
        assert!(r == 0, "waitpid({pid}) failed for {what}");
        if start.elapsed() > timeout {
            // SAFETY: killing and reaping our own child.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
                libc::waitpid(pid, &mut status, 0);
            }
            panic!("{what} (pid {pid}) hung: still running after {timeout:?}, killed");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Runs `cmd` to completion with stdout and stderr captured; a process
/// still running after `timeout` is killed and the test fails.
pub fn output_within(cmd: &mut Command, timeout: Duration) -> Output {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"));
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut o = Vec::new();
        let _ = out.read_to_end(&mut o);
        o
    });
    let mut e = Vec::new();
    let _ = err.read_to_end(&mut e);
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().expect("try_wait") {
            break s;
        }
        if start.elapsed() > timeout {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{cmd:?} hung: still running after {timeout:?}, killed");
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    Output {
        status,
        stdout: reader.join().unwrap(),
        stderr: e,
    }
}

/// Serialises the tests of one binary that set the process-wide rate: hold
/// the guard for the whole test. A test that failed while holding it does
/// not poison the others.
pub fn rate_lock() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// Probability that one allocation of `size` bytes is sampled at `rate`:
/// `1 − e^(−size/rate)` (1 at rate 1).
pub fn sample_probability(size: u64, rate: u64) -> f64 {
    if rate <= 1 {
        return 1.0;
    }
    -(-(size as f64) / rate as f64).exp_m1()
}

/// Standard deviation of the unbiased (Horvitz–Thompson) estimate of the
/// bytes of the given objects at `rate`, each sampled independently with
/// probability p = 1 − e^(−s/R) and weighted 1/p:
/// `sqrt(Σ s² (1 − p) / p)`. For B bytes of objects much smaller than R it
/// is about `sqrt(R·B)`, a relative error of `sqrt(R/B)`.
pub fn estimate_sd(sizes: impl IntoIterator<Item = u64>, rate: u64) -> f64 {
    sizes
        .into_iter()
        .map(|s| {
            let p = sample_probability(s, rate);
            (s as f64).powi(2) * (1.0 - p) / p
        })
        .sum::<f64>()
        .sqrt()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fn_matches_whole_paths_and_last_segments_only() {
        assert!(fn_matches("rate1_exact::alloc_hundreds", "alloc_hundreds"));
        assert!(fn_matches(
            "rate1_exact::alloc_hundreds",
            "rate1_exact::alloc_hundreds"
        ));
        assert!(!fn_matches(
            "rate1_exact::alloc_hundreds2",
            "alloc_hundreds"
        ));
        assert!(!fn_matches(
            "rate1_exact::my_alloc_hundreds",
            "alloc_hundreds"
        ));
        assert!(!fn_matches(
            "rate1_exact::alloc_hundreds::{{closure}}",
            "alloc_hundreds"
        ));
    }

    #[test]
    fn go_raw_output_is_parsed_with_inlined_frames_and_labels() {
        let raw = "\
PeriodType: space bytes
Period: 524288
Time: 2026-11-24 21:06:30.260510141 +0000 UTC
Samples:
alloc_objects/count alloc_space/bytes[dflt] inuse_objects/count inuse_space/bytes
       1000     112000       1000     112000: 5 3 
                bytes:[112]
          3       1248          0          0: 6 
Locations
     3: 0x4b3d27 M=1 main.main goheap/main.go:20 s=0
     5: 0x4b3c28 M=1 <a::B as c::D>::e /x/z.rs:14 s=0(_ZN1a1eE)
             a::caller /x/z.rs:9 s=0
     6: 0x43f947 M=2 
Mappings
1: 0x400000/0x4b4000/0x0 /opt/heapdemo  [FN]
";
        let d = parse_go_raw(raw, "test", &Keep::Funcs(&[]));
        assert_eq!(d.period, 524288);
        assert_eq!(
            d.period_type,
            Some(("space".to_string(), "bytes".to_string()))
        );
        assert_eq!(d.default_sample_type, "alloc_space");
        assert_eq!(d.sample_types[1], ("alloc_space".into(), "bytes".into()));
        assert_eq!(d.samples.len(), 2);
        assert_eq!(d.samples[0].values, [1000, 112000, 1000, 112000]);
        assert_eq!(d.samples[0].bytes, Some(112));
        assert_eq!(d.samples[0].addrs, [0x4b3c28, 0x4b3d27]);
        assert_eq!(
            d.samples[0].funcs,
            [
                vec!["<a::B as c::D>::e".to_string(), "a::caller".to_string()],
                vec!["main.main".to_string()]
            ]
        );
        assert_eq!(d.samples[1].bytes, None);
        assert_eq!(d.samples[1].funcs, [Vec::<String>::new()]);
        assert_eq!(d.sum("caller", None), [1000, 112000, 1000, 112000]);
        let only = parse_go_raw(raw, "test", &Keep::Funcs(&["caller"]));
        assert_eq!(only.samples, d.samples[..1]);
        let by_addr = parse_go_raw(raw, "test", &Keep::Stacks(&[vec![0x43f947]]));
        assert_eq!(by_addr.samples, d.samples[1..]);
    }

    #[test]
    fn empty_sections_parse_as_no_samples() {
        let raw = "PeriodType: space bytes\nPeriod: 1\nSamples:\n\
                   alloc_objects/count alloc_space/bytes\nLocations\nMappings\n\
                   1: 0x1/0x2/0x0 /bin/x  [FN]\n";
        let d = parse_go_raw(raw, "test", &Keep::Funcs(&[]));
        assert_eq!(d.period, 1);
        assert_eq!(d.sample_types.len(), 2);
        assert!(d.samples.is_empty());
    }

    #[test]
    fn labels_with_units_and_several_keys_are_split() {
        let num = |k: &str, v: i64, u: &str| (k.to_string(), v, u.to_string());
        assert_eq!(
            parse_labels("bytes:[100 bytes] n:[1 2]"),
            Labels::Num(vec![
                num("bytes", 100, "bytes"),
                num("n", 1, ""),
                num("n", 2, "")
            ])
        );
        assert_eq!(
            parse_labels("age:[1 seconds] bytes:[72]"),
            Labels::Num(vec![num("age", 1, "seconds"), num("bytes", 72, "")])
        );
        assert_eq!(
            parse_labels("memprof.labels:[overflow] tenant:[acme]"),
            Labels::Str(vec![
                ("memprof.labels".to_string(), "overflow".to_string()),
                ("tenant".to_string(), "acme".to_string())
            ])
        );
    }

    #[test]
    fn string_and_numeric_label_lines_of_a_sample_are_both_kept() {
        let raw = "\
PeriodType: space bytes
Period: 1
Samples:
alloc_objects/count alloc_space/bytes inuse_objects/count inuse_space/bytes
          2        144          2        144: 1 
                op:[put] tenant:[acme]
                age:[10 seconds] bytes:[72]
          1         72          0          0: 1 
                bytes:[72]
Locations
     1: 0x4b3c28 M=1 a::site /x/z.rs:14 s=0
Mappings
1: 0x400000/0x4b4000/0x0 /opt/x  [FN]
";
        let d = parse_go_raw(raw, "test", &Keep::Funcs(&[]));
        let s = &d.samples[0];
        assert_eq!(s.str_label("tenant"), Some("acme"));
        assert_eq!(s.str_label("op"), Some("put"));
        assert_eq!(s.num_label("age"), Some((10, "seconds")));
        assert_eq!(s.bytes, Some(72));
        let t = &d.samples[1];
        assert!(t.str_labels.is_empty());
        assert_eq!(t.num_label("age"), None);
        assert_eq!(t.bytes, Some(72));
        assert_eq!(
            d.sum_where(|s| s.str_label("tenant") == Some("acme")),
            [2, 144, 2, 144]
        );
    }

    #[test]
    fn top_headers_are_read() {
        assert_eq!(
            top_shown("Type: x\nShowing nodes accounting for 595968B, 35.15% of 1695408B total\n"),
            Some((595968, 1695408))
        );
        assert_eq!(
            top_shown("Showing nodes accounting for 0, 0% of 12 total"),
            Some((0, 12))
        );
        assert_eq!(top_shown("no header"), None);
    }

    #[test]
    fn estimate_sd_is_sqrt_rate_times_bytes_for_small_objects() {
        let sd = estimate_sd(std::iter::repeat_n(64, 1 << 20), 524_288);
        let approx = (524_288f64 * 64.0 * (1 << 20) as f64).sqrt();
        assert!((sd / approx - 1.0).abs() < 0.01, "{sd} vs {approx}");
        assert_eq!(estimate_sd([100, 200], 1), 0.0);
    }
}
