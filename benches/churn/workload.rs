// The churn workload, shared by every variant binary (`include!`d, so each
// variant is built once with its own #[global_allocator]).
//
// A fixed set of live slots; each op frees a random slot's block and
// allocates a new one of a random size in its place. Sizes: `small`
// 16..=256 B; `mixed` mostly small with 1 in 64 ops drawing 4 KiB..1 MiB.
// Prints `ns_per_op peak_rss_kib` on stdout.

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
        if mixed && r % 64 == 0 {
            4096 + (r >> 8) as usize % (1 << 20)
        } else {
            16 + (r >> 8) as usize % 241
        }
    }

    fn run_thread(seed: u64, slots: usize, ops: usize, mixed: bool) {
        let mut rng = Rng(seed | 1);
        let mut live: Vec<Vec<u8>> = (0..slots).map(|_| Vec::with_capacity(size(&mut rng, mixed))).collect();
        for _ in 0..ops {
            let i = rng.next() as usize % slots;
            let mut v = Vec::with_capacity(size(&mut rng, mixed));
            v.push(1u8);
            live[i] = black_box(v);
        }
        black_box(&live);
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

    /// `args`: --variant-run <small|mixed> <threads> <ops per thread>
    pub(crate) fn main_with(setup: impl FnOnce()) {
        let args: Vec<String> = std::env::args().collect();
        if args.get(1).map(String::as_str) != Some("--variant-run") {
            return; // run by `cargo bench` directly: the driver runs us
        }
        let mixed = args[2] == "mixed";
        let threads: usize = args[3].parse().unwrap();
        let ops: usize = args[4].parse().unwrap();
        setup();
        let start = Instant::now();
        std::thread::scope(|s| {
            for t in 0..threads {
                s.spawn(move || run_thread(0x9e37_79b9 + t as u64, 16 * 1024, ops, mixed));
            }
        });
        let ns = start.elapsed().as_nanos() as f64 / (ops * threads) as f64;
        println!("{ns:.3} {}", peak_rss_kib());
    }
}
