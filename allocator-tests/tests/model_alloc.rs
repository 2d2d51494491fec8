//! Model-based property tests of `Sampled<System>` at rate 1, where every
//! block comes from memprof's own region allocator: random sequences of
//! `alloc`, `alloc_zeroed`, `realloc` and `dealloc` (sizes 1 B–1 MiB,
//! biased small; alignments 1 B–1 MiB, powers of two), checked against a
//! model of the live blocks:
//!
//! - every pointer has its layout's alignment;
//! - `alloc_zeroed` memory reads zero;
//! - no two live blocks overlap (address ranges compared at every new
//!   block; every block is filled with a pattern of its own, and every live
//!   block's pattern is checked before each free and at the end);
//! - `realloc` keeps the contents up to the smaller size;
//! - inside `memprof::measure`, the scope's `Stats` equal the model's exact
//!   counts (allocs, reallocs, deallocs, bytes allocated and freed, live
//!   blocks and bytes, peak bytes, no foreign frees);
//! - and the same with several threads running such sequences at once,
//!   each with its own model and scope.
//!
//! `PROPTEST_CASES` sets the number of cases (default 64 per property).

use allocator_tests::soak::{fill, find_damage, seed};
use proptest::prelude::*;
use std::alloc::{Layout, System};

#[global_allocator]
static A: memprof::Sampled<System> = memprof::Sampled::new(System);

#[derive(Clone, Debug)]
enum Op {
    Alloc {
        size: usize,
        align_log: u32,
    },
    AllocZeroed {
        size: usize,
        align_log: u32,
    },
    /// Reallocates live block `pick % live` (nothing if none is live).
    Realloc {
        pick: usize,
        size: usize,
    },
    /// Frees live block `pick % live` (nothing if none is live).
    Free {
        pick: usize,
    },
}

fn size() -> impl Strategy<Value = usize> {
    prop_oneof![
        16 => 1usize..=256,
        6 => 257usize..=16 << 10,
        2 => (16 << 10) + 1..=256usize << 10,
        1 => (256usize << 10) + 1..=1 << 20,
    ]
}

fn align_log() -> impl Strategy<Value = u32> {
    prop_oneof![8 => 0u32..=4, 4 => 5u32..=12, 2 => 13u32..=16, 1 => 17u32..=20]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (size(), align_log()).prop_map(|(size, align_log)| Op::Alloc { size, align_log }),
        2 => (size(), align_log()).prop_map(|(size, align_log)| Op::AllocZeroed { size, align_log }),
        2 => (any::<usize>(), size()).prop_map(|(pick, size)| Op::Realloc { pick, size }),
        3 => any::<usize>().prop_map(|pick| Op::Free { pick }),
    ]
}

fn ops() -> impl Strategy<Value = Vec<Op>> {
    prop::collection::vec(op(), 1..64)
}

fn config() -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(64);
    ProptestConfig {
        cases,
        ..ProptestConfig::default()
    }
}

struct Live {
    ptr: *mut u8,
    layout: Layout,
}

impl Live {
    fn seed(&self) -> u64 {
        seed(self.ptr as usize, self.layout.size())
    }

    fn end(&self) -> usize {
        self.ptr as usize + self.layout.size()
    }
}

/// The model: the live blocks and what the scope's counters must say.
/// Its vector is allocated before the run so the run itself allocates
/// nothing but the blocks (a scope counts every allocation of its thread).
#[derive(Default)]
struct Model {
    live: Vec<Live>,
    allocs: u64,
    reallocs: u64,
    deallocs: u64,
    bytes_allocated: u64,
    bytes_freed: u64,
    live_bytes: u64,
    peak_bytes: u64,
}

type Check = Result<(), TestCaseError>;

impl Model {
    fn with_room(n: usize) -> Model {
        Model {
            live: Vec::with_capacity(n),
            ..Model::default()
        }
    }

    fn grew(&mut self, bytes: u64) {
        self.live_bytes += bytes;
        self.peak_bytes = self.peak_bytes.max(self.live_bytes);
    }

    /// Alignment and no overlap with any other live block.
    fn check_new(&self, b: &Live, what: &str) -> Check {
        prop_assert!(!b.ptr.is_null(), "{what} {:?} returned null", b.layout);
        prop_assert!(
            (b.ptr as usize).is_multiple_of(b.layout.align()),
            "{what}: {:p} is not aligned for {:?}",
            b.ptr,
            b.layout
        );
        // (A realloc's old block is out of `live` by now.)
        for o in &self.live {
            prop_assert!(
                b.end() <= o.ptr as usize || o.end() <= b.ptr as usize,
                "{what}: {:p}+{} overlaps the live block {:p}+{}",
                b.ptr,
                b.layout.size(),
                o.ptr,
                o.layout.size()
            );
        }
        Ok(())
    }

    fn check_all(&self, when: &str) -> Check {
        for b in &self.live {
            // SAFETY: the block is live, `layout.size()` bytes.
            let damage = unsafe { find_damage(b.ptr, b.layout.size(), b.seed()) };
            prop_assert!(
                damage.is_none(),
                "{when}: live block {:p} ({:?}) damaged at (offset, pattern, found) {:?}",
                b.ptr,
                b.layout,
                damage
            );
        }
        Ok(())
    }

    fn apply(&mut self, op: &Op) -> Check {
        match *op {
            Op::Alloc { size, align_log } | Op::AllocZeroed { size, align_log } => {
                let zeroed = matches!(op, Op::AllocZeroed { .. });
                let layout = Layout::from_size_align(size, 1 << align_log).unwrap();
                // SAFETY: non-zero size.
                let ptr = unsafe {
                    if zeroed {
                        std::alloc::alloc_zeroed(layout)
                    } else {
                        std::alloc::alloc(layout)
                    }
                };
                let b = Live { ptr, layout };
                self.check_new(&b, if zeroed { "alloc_zeroed" } else { "alloc" })?;
                if zeroed {
                    // SAFETY: `size` bytes, just allocated.
                    let s = unsafe { std::slice::from_raw_parts(ptr, size) };
                    let nz = s.iter().position(|&x| x != 0);
                    prop_assert!(nz.is_none(), "alloc_zeroed {layout:?}: byte {nz:?} not 0");
                }
                // SAFETY: as above.
                unsafe { fill(ptr, size, b.seed()) };
                self.allocs += 1;
                self.bytes_allocated += size as u64;
                self.grew(size as u64);
                self.live.push(b);
            }
            Op::Realloc { pick, size } => {
                if self.live.is_empty() {
                    return Ok(());
                }
                let i = pick % self.live.len();
                let old = self.live.swap_remove(i);
                // SAFETY: `old` is live with this layout; size non-zero.
                let damage = unsafe { find_damage(old.ptr, old.layout.size(), old.seed()) };
                prop_assert!(damage.is_none(), "before realloc: {damage:?}");
                let keep = old.layout.size().min(size);
                let old_seed = old.seed();
                // SAFETY: as above.
                let ptr = unsafe { std::alloc::realloc(old.ptr, old.layout, size) };
                let b = Live {
                    ptr,
                    layout: Layout::from_size_align(size, old.layout.align()).unwrap(),
                };
                self.check_new(&b, "realloc")?;
                // SAFETY: the new block holds at least `keep` bytes.
                let damage = unsafe { find_damage(ptr, keep, old_seed) };
                prop_assert!(
                    damage.is_none(),
                    "realloc {:?} -> {size} B lost contents: {damage:?}",
                    old.layout
                );
                // SAFETY: `size` bytes.
                unsafe { fill(ptr, size, b.seed()) };
                self.reallocs += 1;
                let (o, n) = (old.layout.size() as u64, size as u64);
                if n >= o {
                    self.bytes_allocated += n - o;
                    self.grew(n - o);
                } else {
                    self.bytes_freed += o - n;
                    self.live_bytes -= o - n;
                }
                self.live.push(b);
            }
            Op::Free { pick } => {
                if self.live.is_empty() {
                    return Ok(());
                }
                self.check_all("before a free")?;
                let b = self.live.swap_remove(pick % self.live.len());
                // SAFETY: live, allocated with this layout.
                unsafe { std::alloc::dealloc(b.ptr, b.layout) };
                self.deallocs += 1;
                self.bytes_freed += b.layout.size() as u64;
                self.live_bytes -= b.layout.size() as u64;
            }
        }
        Ok(())
    }

    fn run(&mut self, ops: &[Op]) -> Check {
        for op in ops {
            self.apply(op)?;
        }
        self.check_all("at the end")
    }

    /// Frees what is left.
    fn free_all(&mut self) {
        for b in self.live.drain(..) {
            // SAFETY: live, allocated with this layout.
            unsafe { std::alloc::dealloc(b.ptr, b.layout) };
        }
    }

    fn expected(&self) -> memprof::Stats {
        memprof::Stats {
            allocs: self.allocs,
            reallocs: self.reallocs,
            deallocs: self.deallocs,
            bytes_allocated: self.bytes_allocated,
            bytes_freed: self.bytes_freed,
            live_blocks: self.live.len() as u64,
            live_bytes: self.live_bytes,
            peak_bytes: self.peak_bytes,
            foreign_frees: 0,
        }
    }
}

/// Runs `ops` inside `measure` and compares the scope's stats with the
/// model's; leaves nothing allocated.
fn measured_run(ops: &[Op]) -> Check {
    let mut model = Model::with_room(ops.len());
    let m = memprof::measure(|| model.run(ops));
    let expected = model.expected();
    model.free_all();
    m.value?;
    prop_assert_eq!(
        m.stats,
        expected,
        "scope stats (left) vs the model's (right)"
    );
    Ok(())
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn blocks_are_aligned_disjoint_zeroed_and_kept_by_realloc(ops in ops()) {
        memprof::set_rate(1);
        let mut model = Model::with_room(ops.len());
        let r = model.run(&ops);
        model.free_all();
        r?;
    }

    #[test]
    fn measure_counts_exactly_what_the_model_did(ops in ops()) {
        memprof::set_rate(1);
        measured_run(&ops)?;
    }

    #[test]
    fn threads_running_sequences_at_once_each_count_exactly(
        seqs in prop::collection::vec(ops(), 2..=4)
    ) {
        memprof::set_rate(1);
        let results: Vec<Check> = std::thread::scope(|s| {
            let hs: Vec<_> = seqs.iter().map(|ops| s.spawn(move || measured_run(ops))).collect();
            hs.into_iter().map(|h| h.join().expect("a sequence's thread panicked")).collect()
        });
        for r in results {
            r?;
        }
    }
}

#[test]
fn the_model_tests_run_at_rate_1_inside_memprof() {
    // Not vacuous: with Sampled installed, a measured allocation counts.
    memprof::set_rate(1);
    assert_eq!(memprof::rate(), 1);
    let m = memprof::measure(|| std::hint::black_box(vec![0u8; 100]));
    assert_eq!((m.stats.allocs, m.stats.bytes_allocated), (1, 100));
}
