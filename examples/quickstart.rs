//! Quickstart: profile a realistic workload, write its heap profile, and
//! show the top in-use and the top allocating sites.
//!
//! ```sh
//! cargo run --release --example quickstart
//! cargo run --release --features cli --bin memprof -- top heap.pb.gz   # memprof's viewer
//! go tool pprof -top heap.pb.gz     # or Go's; -http=:8080 for a browser view
//! ```
//!
//! The workload is a small search service: it builds an inverted index
//! over generated documents (kept), answers queries through a cache (some
//! kept, most evicted), and parses request logs in batches (all freed: they
//! show up in `alloc_space` but not in `inuse_space`, and make the peak).
//! Each stage runs under a `stage` label, so the profile splits by stage.

use std::alloc::System;
use std::collections::{HashMap, VecDeque};
use std::fs::File;
use std::io::BufWriter;

#[global_allocator]
static ALLOC: memprof::Sampled<System> = memprof::Sampled::new(System);

/// A tiny deterministic generator, so every run profiles the same work.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// A word from a 50,000-word vocabulary, skewed like real text (a few
/// words are very common).
fn word(rng: &mut Rng) -> String {
    let spread = rng.below(50_000) + 1;
    let rank = rng.below(spread);
    let mut x = rank.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let len = 3 + (x % 8) as usize;
    (0..len)
        .map(|_| {
            x = x.rotate_left(5).wrapping_mul(0x2545_f491_4f6c_dd1d);
            (b'a' + (x >> 59) as u8 % 26) as char
        })
        .collect()
}

/// Documents: ~30 MB of text, kept for the whole run.
#[inline(never)]
fn load_documents(rng: &mut Rng, n: usize) -> Vec<String> {
    (0..n)
        .map(|_| {
            let words = 50 + rng.below(400) as usize;
            let mut doc = String::new();
            for _ in 0..words {
                doc.push_str(&word(rng));
                doc.push(' ');
            }
            doc
        })
        .collect()
}

/// The inverted index: word -> ids of the documents that contain it.
#[inline(never)]
fn build_index(docs: &[String]) -> HashMap<String, Vec<u32>> {
    let mut index: HashMap<String, Vec<u32>> = HashMap::new();
    for (id, doc) in docs.iter().enumerate() {
        for w in doc.split(' ').filter(|w| !w.is_empty()) {
            index.entry(w.to_string()).or_default().push(id as u32);
        }
    }
    index
}

/// A query result cache that keeps the last `cap` answers.
struct Cache {
    cap: usize,
    order: VecDeque<String>,
    answers: HashMap<String, Vec<u32>>,
}

impl Cache {
    #[inline(never)]
    fn answer(&mut self, index: &HashMap<String, Vec<u32>>, query: &str) -> usize {
        if let Some(hit) = self.answers.get(query) {
            return hit.len();
        }
        let mut result: Vec<u32> = Vec::new();
        for term in query.split(' ') {
            if let Some(ids) = index.get(term) {
                result.extend_from_slice(ids);
            }
        }
        result.sort_unstable();
        result.dedup();
        let n = result.len();
        self.answers.insert(query.to_string(), result);
        self.order.push_back(query.to_string());
        if self.order.len() > self.cap {
            if let Some(old) = self.order.pop_front() {
                self.answers.remove(&old);
            }
        }
        n
    }
}

/// Request logs: parsed a batch at a time, summarised, and dropped.
#[inline(never)]
fn parse_logs(rng: &mut Rng, lines: usize) -> usize {
    let mut fields_seen = 0;
    for _ in 0..lines / 50_000 {
        let batch = parse_batch(rng, 50_000);
        fields_seen += batch.iter().map(Vec::len).sum::<usize>();
    }
    fields_seen
}

/// One batch of parsed log lines, all held at once.
#[inline(never)]
fn parse_batch(rng: &mut Rng, lines: usize) -> Vec<Vec<(String, String)>> {
    let mut batch = Vec::with_capacity(lines);
    for _ in 0..lines {
        let line = format!(
            "ts={} user={} path=/search?q={} status={} bytes={}",
            rng.next(),
            rng.below(10_000),
            word(rng),
            200 + rng.below(3) * 100,
            rng.below(1 << 20)
        );
        let fields: Vec<(String, String)> = line
            .split(' ')
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        batch.push(fields);
    }
    batch
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1 << 20) as f64
}

/// `bytes` for a person: `812 B`, `40.2 KiB`, `12.3 MiB`.
fn human(bytes: u64) -> String {
    match bytes {
        0..1024 => format!("{bytes} B"),
        1024..1_048_576 => format!("{:.1} KiB", bytes as f64 / 1024.0),
        _ => format!("{:.1} MiB", mib(bytes)),
    }
}

/// One row of a sites table: bytes, objects, function and `file:line`.
fn row(bytes: u64, objects: u64, site: &memprof::Site) {
    println!(
        "  {:>10} {:>9}  {}  ({})",
        human(bytes),
        objects,
        site.function,
        site.location
    );
}

fn main() -> std::io::Result<()> {
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    let stage = |name| [("stage", name)];
    let docs = memprof::with_labels(&stage("load"), || load_documents(&mut rng, 20_000));
    let index = memprof::with_labels(&stage("index"), || build_index(&docs));
    let mut cache = Cache {
        cap: 2_000,
        order: VecDeque::new(),
        answers: HashMap::new(),
    };
    let mut hits = 0;
    memprof::with_labels(&stage("query"), || {
        for _ in 0..20_000 {
            let query = format!("{} {}", word(&mut rng), word(&mut rng));
            hits += cache.answer(&index, &query);
        }
    });
    let fields = memprof::with_labels(&stage("logs"), || parse_logs(&mut rng, 200_000));

    let profile = memprof::heap_profile();
    profile.write_pprof(BufWriter::new(File::create("heap.pb.gz")?))?;
    profile.write_text(BufWriter::new(File::create("heap.txt")?))?;
    let peak = memprof::peak_profile();
    peak.write_pprof(BufWriter::new(File::create("peak.pb.gz")?))?;

    let t = profile.totals();
    println!(
        "workload: {} documents, {} index terms, {hits} query hits, {fields} log fields",
        docs.len(),
        index.len()
    );
    println!(
        "heap profile (rate {} bytes, {} sites): {:.1} MiB in use in {} objects; {:.1} MiB allocated in total",
        profile.rate(),
        profile.records().len(),
        mib(t.inuse_bytes),
        t.inuse_objects,
        mib(t.alloc_bytes)
    );
    // The estimate beside what can be had exactly: bytes allocated (counted
    // by the sampler), the inner allocator's in-use, RSS.
    println!(
        "\nexact totals beside the estimate:\n{}",
        memprof::exact_totals()
    );
    println!("\nin use and allocated by stage (label \"stage\"):");
    for (name, t) in profile.by_label("stage") {
        println!(
            "  {name:<6} {:>8.1} MiB in use  {:>8.1} MiB allocated",
            mib(t.inuse_bytes),
            mib(t.alloc_bytes)
        );
    }
    // `top_sites` sorts by in-use bytes: sites with nothing live left come
    // last, and are not shown here.
    let sites = profile.top_sites(usize::MAX);
    println!("\ntop in-use sites (inuse_space, estimates):");
    println!("  {:>10} {:>9}  site", "in use", "objects");
    for site in sites.iter().filter(|s| s.inuse_bytes > 0).take(10) {
        row(site.inuse_bytes, site.inuse_objects, site);
    }
    let mut allocating = sites;
    allocating.sort_by_key(|s| std::cmp::Reverse(s.alloc_bytes));
    println!("\ntop allocating sites since the start (alloc_space, freed or not):");
    println!("  {:>10} {:>9}  site", "allocated", "objects");
    for site in allocating.iter().take(10) {
        row(site.alloc_bytes, site.alloc_objects, site);
    }
    let at_peak = peak.totals();
    println!(
        "\npeak heap: {:.1} MiB in use (now {:.1} MiB); its top sites then:",
        mib(peak.peak_inuse_bytes().unwrap_or(at_peak.inuse_bytes)),
        mib(t.inuse_bytes)
    );
    for site in peak.top_sites(5).iter().filter(|s| s.inuse_bytes > 0) {
        row(site.inuse_bytes, site.inuse_objects, site);
    }
    println!("\noldest live sites (leak suspects in a long-running process):");
    for site in profile.oldest_sites(3) {
        let age = site.oldest_age.unwrap_or_default();
        println!(
            "  {:>8.2} s {:>10}  {}  ({})",
            age.as_secs_f64(),
            human(site.inuse_bytes),
            site.function,
            site.location
        );
    }
    println!("\nwrote heap.pb.gz (pprof), heap.txt (Go debug=1 text) and peak.pb.gz.");
    println!("\nread them with memprof's viewer:");
    let viewer = "cargo run --release --features cli --bin memprof --";
    println!("  {viewer} top heap.pb.gz");
    println!("  {viewer} flame heap.pb.gz -o heap.svg       # flame graph");
    println!("  {viewer} report heap.pb.gz -o report.html   # a page to open in a browser");
    println!("\nor with Go's pprof:");
    println!("  go tool pprof -top -sample_index=inuse_space heap.pb.gz");
    println!("  go tool pprof -top -sample_index=alloc_space heap.pb.gz");
    println!("  go tool pprof -top -tagfocus=stage=index heap.pb.gz      # one stage");
    println!(
        "  go tool pprof -top -tagfocus=age=1s: heap.pb.gz          # live for a second or more"
    );
    println!("  go tool pprof -top peak.pb.gz                            # the heap at its peak");
    println!(
        "  go tool pprof -http=:8080 heap.pb.gz                     # graph, flame graph, source"
    );
    Ok(())
}
