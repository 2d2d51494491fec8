// The churn workload, shared by every variant binary (`include!`d, so each
// variant is built once with its own #[global_allocator]).
//
// A fixed set of live slots; each op frees a random slot's block and
// allocates a new one of a random size in its place. Sizes: `small`
// 16..=256 B; `mixed` mostly small with 1 in 64 ops drawing 4 KiB..1 MiB.
// With depth N > 0, every allocation and free is made N nested
// `#[inline(never)]` frames below the churn loop (deep stacks for the
// unwinders): the loop descends N frames and runs a batch of ops there,
// so the bare workload costs what it costs at depth 0. With
// `CHURN_DESCENT=op` it descends N frames for every op instead, so the bare
// workload pays for the calls too (as a program whose allocations sit
// under deep, real call chains does).
//
// The `parse` workload is a real program's allocations instead: each op is
// one pass of `syn::parse_file` over every `.rs` file of syn 2's own
// sources (55 files, 1.7 MB, found by build.rs through `cargo metadata`:
// `CHURN_PARSE_CORPUS`), in path order, the pass's syntax trees kept
// until the pass ends. The files are read before the clock starts. syn's
// recursive descent gives deep, varied stacks of its own; with depth N > 0
// each pass runs N frames further down.
//
// Args: `--variant-run <small|mixed|parse> <threads> <ops per thread>
// [depth]` (depth defaults to `CHURN_DEPTH`, else 0). Prints `ns_per_op
// peak_rss_kib` on stdout; a variant may also print lines starting with
// `info:` (read by the driver, e.g. to check jemalloc's options), before
// the clock starts or after the result line (see `main_with`).

#[allow(dead_code)]
mod churn {
    use std::hint::black_box;
    use std::time::Instant;

    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
    }

    fn size(rng: &mut Rng, mixed: bool) -> usize {
        let r = rng.next();
        if mixed && r.is_multiple_of(64) {
            4096 + (r >> 8) as usize % (1 << 20)
        } else {
            16 + (r >> 8) as usize % 241
        }
    }

    /// Ops per descent at depth > 0: the descent's calls and returns (which
    /// overflow the return-stack predictor at depth 40, ~4 ns per frame)
    /// are spread over this many ops, so they add < 0.2 ns/op and the
    /// time stays the allocator's.
    const BATCH: usize = 1024;

    /// Calls `run` `frames` frames down (`frames >= 1`). The depth goes
    /// through `black_box` and is used again after the recursive call, so
    /// the compiler can neither unroll the recursion nor turn it into a
    /// loop or a tail call: every level is a real frame on the stack.
    #[inline(never)]
    fn nested(frames: usize, run: &mut dyn FnMut()) {
        if frames <= 1 {
            run();
        } else {
            nested(black_box(frames - 1), run);
        }
        black_box(frames);
    }

    /// `k` churn ops: free a random slot's block, allocate a new one there.
    #[inline(always)]
    fn churn_ops(rng: &mut Rng, live: &mut [Vec<u8>], k: usize, mixed: bool) {
        for _ in 0..k {
            let i = rng.next() as usize % live.len();
            let mut v = Vec::with_capacity(size(rng, mixed));
            v.push(1u8);
            live[i] = black_box(v);
        }
    }

    fn run_thread(seed: u64, slots: usize, ops: usize, mixed: bool, depth: usize) {
        let mut rng = Rng(seed | 1);
        let mut live: Vec<Vec<u8>> = (0..slots)
            .map(|_| Vec::with_capacity(size(&mut rng, mixed)))
            .collect();
        if depth == 0 {
            churn_ops(&mut rng, &mut live, ops, mixed);
        } else {
            // Every allocation and free happens `depth` frames below this
            // loop (plus the closure's own frame).
            let per_op = std::env::var("CHURN_DESCENT").is_ok_and(|v| v == "op");
            let batch = if per_op { 1 } else { BATCH };
            let mut done = 0;
            while done < ops {
                let k = (ops - done).min(batch);
                nested(depth, &mut || churn_ops(&mut rng, &mut live, k, mixed));
                done += k;
            }
        }
        black_box(&live);
    }

    /// The parse corpus: every `.rs` file under `CHURN_PARSE_CORPUS` (set
    /// at build time), sorted by path.
    fn corpus() -> Vec<String> {
        fn walk(dir: &std::path::Path, files: &mut Vec<std::path::PathBuf>) {
            for e in std::fs::read_dir(dir).expect("read the parse corpus") {
                let p = e.expect("a corpus entry").path();
                if p.is_dir() {
                    walk(&p, files);
                } else if p.extension().is_some_and(|x| x == "rs") {
                    files.push(p);
                }
            }
        }
        let mut files = Vec::new();
        walk(std::path::Path::new(env!("CHURN_PARSE_CORPUS")), &mut files);
        files.sort();
        assert!(!files.is_empty(), "no .rs files in {}", env!("CHURN_PARSE_CORPUS"));
        files
            .iter()
            .map(|p| std::fs::read_to_string(p).expect("read a corpus file"))
            .collect()
    }

    /// `passes` passes of `syn::parse_file` over the corpus, `depth` frames
    /// down (0: here); each pass keeps its trees until it ends.
    fn run_parse(corpus: &[String], passes: usize, depth: usize) {
        let mut pass = || {
            let trees: Vec<syn::File> = corpus
                .iter()
                .map(|src| syn::parse_file(black_box(src)).expect("syn parses its own sources"))
                .collect();
            black_box(&trees);
        };
        for _ in 0..passes {
            if depth == 0 {
                pass();
            } else {
                nested(depth, &mut pass);
            }
        }
    }

    fn peak_rss_kib() -> u64 {
        std::fs::read_to_string("/proc/self/status")
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("VmHWM:"))
                    .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
            })
            .unwrap_or(0)
    }

    /// Allocations the run will make: threads × ops per thread, from the
    /// `--variant-run` args (0 when not called as a variant). A variant
    /// that records every allocation compares its own count to this. For
    /// `parse`, `CHURN_ALLOCATIONS` (the driver counts them once with the
    /// `churn_count` variant), else `u64::MAX` (never covered).
    pub(crate) fn allocations() -> u64 {
        let args: Vec<String> = std::env::args().collect();
        if args.get(1).map(String::as_str) != Some("--variant-run") {
            return 0;
        }
        if args[2] == "parse" {
            return std::env::var("CHURN_ALLOCATIONS")
                .ok()
                .and_then(|n| n.parse().ok())
                .unwrap_or(u64::MAX);
        }
        let threads: u64 = args[3].parse().unwrap();
        let ops: u64 = args[4].parse().unwrap();
        threads * ops
    }

    /// Runs the workload when called as a variant (see the args above);
    /// returns at once otherwise (`cargo bench` runs every bench binary,
    /// and only the driver runs this one with arguments).
    ///
    /// `setup` runs before the clock starts; what it returns is dropped
    /// after the result is printed, so a profiler it starts can write its
    /// output outside the timing and the peak-RSS reading. With
    /// `CHURN_NO_REPORT=1` it is never dropped (no after-run `info:` line,
    /// no profile written), for instruction counts of the run alone.
    pub(crate) fn main_with<G>(setup: impl FnOnce() -> G) {
        main_with_wrap(setup, |f: &mut dyn FnMut()| f());
    }

    /// As `main_with`, with each worker thread's churn run inside `wrap`
    /// (e.g. a `memprof::measure` scope).
    pub(crate) fn main_with_wrap<G>(setup: impl FnOnce() -> G, wrap: fn(&mut dyn FnMut())) {
        let args: Vec<String> = std::env::args().collect();
        if args.get(1).map(String::as_str) != Some("--variant-run") {
            return;
        }
        let mixed = args[2] == "mixed";
        let parse = args[2] == "parse";
        let corpus = if parse { corpus() } else { Vec::new() };
        let corpus = &corpus;
        let threads: usize = args[3].parse().unwrap();
        let ops: usize = args[4].parse().unwrap();
        let depth: usize = args
            .get(5)
            .cloned()
            .or_else(|| std::env::var("CHURN_DEPTH").ok())
            .map(|d| d.parse().unwrap())
            .unwrap_or(0);
        let guard = setup();
        let start = Instant::now();
        std::thread::scope(|s| {
            for t in 0..threads {
                s.spawn(move || {
                    wrap(&mut || {
                        if parse {
                            run_parse(corpus, ops, depth)
                        } else {
                            run_thread(0x9e37_79b9 + t as u64, 16 * 1024, ops, mixed, depth)
                        }
                    })
                });
            }
        });
        let ns = start.elapsed().as_nanos() as f64 / (ops * threads) as f64;
        println!("{ns:.3} {}", peak_rss_kib());
        if std::env::var_os("CHURN_NO_REPORT").is_some_and(|v| v == "1") {
            // benches/instructions.sh: the count is the workload's, not
            // what a profiler does at exit (read or write its profile).
            std::mem::forget(guard);
        } else {
            drop(guard);
        }
    }
}
