//! What writing a profile costs in memory and time, for docs/performance.md
//! ("Memory of a profile write"). A measurement to run by hand, not a test:
//!
//! ```sh
//! cargo run --release -p allocator-tests --bin write_cost             # symbolized
//! cargo run --release -p allocator-tests --bin write_cost -- unsymbolized
//! ```
//!
//! At rate 1, it keeps one 64-byte block on each of 10,000 distinct call
//! stacks (`--records`), then writes the heap profile to `io::sink()` three times: once
//! cold, once right after, once after a pause longer than the window in
//! which memprof might keep the debug info (`--pause SECS`, default 3;
//! `--records N`, default 10,000). Per
//! write it prints the time, how much the peak RSS grew during it (VmHWM
//! reset through /proc/self/clear_refs), and the RSS left afterwards over
//! the RSS before the first write, split into anonymous and file-backed
//! pages (/proc/self/smaps_rollup).
use std::alloc::System;
use std::hint::black_box;
use std::time::{Duration, Instant};

use allocator_tests::mem::{keep_on_stack, proc_field, Kept};

#[global_allocator]
static A: memprof::Sampled<System> = memprof::Sampled::new(System);

/// RSS, anonymous and file-backed resident KiB, and VmHWM.
#[derive(Clone, Copy)]
struct Mem {
    rss: u64,
    anon: u64,
    file: u64,
    hwm: u64,
}

fn mem() -> Mem {
    let rollup = std::fs::read_to_string("/proc/self/smaps_rollup").unwrap();
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let rss = proc_field(&rollup, "Rss:");
    let anon = proc_field(&rollup, "Anonymous:");
    Mem {
        rss,
        anon,
        file: rss.saturating_sub(anon),
        hwm: proc_field(&status, "VmHWM:"),
    }
}

fn mib(kib: i64) -> f64 {
    kib as f64 / 1024.0
}

fn main() {
    let mut args = std::env::args().skip(1);
    let mut symbolize = true;
    let mut pause = Duration::from_secs(3);
    let mut records = 10_000u64;
    while let Some(a) = args.next() {
        match a.as_str() {
            "unsymbolized" => symbolize = false,
            "symbolized" => symbolize = true,
            "--pause" => {
                pause = Duration::from_secs_f64(args.next().unwrap().parse().unwrap());
            }
            "--records" => records = args.next().unwrap().parse().unwrap(),
            other => panic!("unknown argument {other}"),
        }
    }
    memprof::set_rate(1);
    let mut kept: Kept = Vec::new();
    for path in 0..records {
        keep_on_stack(6, path, &mut kept);
    }
    let profile = memprof::heap_profile();
    println!(
        "{} records, {}",
        profile.records().len(),
        if symbolize {
            "write_pprof"
        } else {
            "write_pprof_unsymbolized"
        }
    );
    let base = mem();
    println!(
        "before: RSS {:.1} MiB (anon {:.1}, file {:.1})",
        mib(base.rss as i64),
        mib(base.anon as i64),
        mib(base.file as i64)
    );
    println!("| write | ms | peak RSS growth MiB | RSS after - before MiB (anon / file) |");
    println!("|---|---|---|---|");
    let write = |what: &str| {
        std::fs::write("/proc/self/clear_refs", "5").unwrap();
        let before = mem();
        let start = Instant::now();
        let mut out = Vec::new();
        if symbolize {
            profile.write_pprof(&mut out).unwrap();
        } else {
            profile.write_pprof_unsymbolized(&mut out).unwrap();
        }
        let took = start.elapsed();
        drop(out);
        let after = mem();
        println!(
            "| {what} | {:.1} | {:.1} | {:.1} ({:.1} / {:.1}) |",
            took.as_secs_f64() * 1e3,
            mib(after.hwm as i64 - before.rss as i64),
            mib(after.rss as i64 - base.rss as i64),
            mib(after.anon as i64 - base.anon as i64),
            mib(after.file as i64 - base.file as i64),
        );
    };
    write("first");
    write("second, at once");
    std::thread::sleep(pause);
    let idle = mem();
    println!(
        "after {:.0} s idle: RSS - before {:.1} MiB (anon {:.1} / file {:.1})",
        pause.as_secs_f64(),
        mib(idle.rss as i64 - base.rss as i64),
        mib(idle.anon as i64 - base.anon as i64),
        mib(idle.file as i64 - base.file as i64),
    );
    write(&format!("third, after {:.0} s", pause.as_secs_f64()));
    black_box(&kept);
}
