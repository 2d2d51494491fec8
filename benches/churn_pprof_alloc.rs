//! Churn variant: `pprof-alloc` 0.6's `PprofAlloc` wrapping `System`, with
//! its sampling rate from `PPROF_ALLOC_SAMPLE_RATE` (unset: its default,
//! one sample per 512 KiB like Go's; 1 records every allocation). Stacks
//! come from its default `frame-pointer` feature: a frame-pointer walk,
//! also on builds without frame pointers, where it gives short or wrong
//! stacks (the `frames=` column shows it). Run through
//! `cargo bench -p memprof-benches --bench churn`.
//!
//! Before the clock it prints `info: pprof_alloc.capture=…`; after the
//! result line (outside the timing and the peak-RSS reading) it reads the
//! crate's own summary and its pprof output and prints
//! `info: pprof_alloc.on=… pprof_alloc.stacks=… pprof_alloc.alloc_objects=…
//! every_alloc=… frames=…` (`alloc_objects` is exact at rate 1; `frames`
//! is the deepest stack in the profile), which the driver checks.
use std::io::Read;

#[global_allocator]
static A: pprof_alloc::PprofAlloc = pprof_alloc::PprofAlloc::new()
    .with_pprof_sample_rate_from_env(pprof_alloc::DEFAULT_PPROF_SAMPLE_RATE);
include!("churn/workload.rs");

/// Prints what pprof-alloc recorded when dropped (after the result line).
struct Report;

impl Drop for Report {
    fn drop(&mut self) {
        let summary = pprof_alloc::snapshot().pprof;
        let gz = pprof_alloc::generate_pprof().expect("pprof-alloc profile");
        let mut profile = Vec::new();
        flate2::read::GzDecoder::new(&gz[..])
            .read_to_end(&mut profile)
            .expect("gunzip the pprof-alloc profile");
        println!(
            "info: pprof_alloc.on={} pprof_alloc.stacks={} pprof_alloc.alloc_objects={} \
             every_alloc={} frames={}",
            summary.total_stacks > 0,
            summary.total_stacks,
            summary.alloc_objects,
            summary.alloc_objects >= churn::allocations(),
            deepest_sample(&profile),
        );
    }
}

/// Reads a protobuf varint at `*at`.
fn varint(buf: &[u8], at: &mut usize) -> u64 {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let b = buf[*at];
        *at += 1;
        v |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            break;
        }
    }
    v
}

/// Calls `f(field, wire type, payload)` for each field of a protobuf
/// message (payload: the bytes of a length-delimited field, else empty).
fn fields(buf: &[u8], mut f: impl FnMut(u64, u64, &[u8])) {
    let mut at = 0;
    while at < buf.len() {
        let key = varint(buf, &mut at);
        match key & 7 {
            0 => {
                varint(buf, &mut at);
                f(key >> 3, 0, &[]);
            }
            1 => at += 8,
            2 => {
                let len = varint(buf, &mut at) as usize;
                f(key >> 3, 2, &buf[at..at + len]);
                at += len;
            }
            5 => at += 4,
            w => panic!("pprof profile: unexpected wire type {w}"),
        }
    }
}

/// The most location ids of any sample in a pprof `Profile` (field 2:
/// `Sample`, its field 1: `location_id`, packed or not).
fn deepest_sample(profile: &[u8]) -> usize {
    let mut deepest = 0;
    fields(profile, |field, wire, sample| {
        if field != 2 || wire != 2 {
            return;
        }
        let mut n = 0;
        fields(sample, |field, wire, ids| match (field, wire) {
            (1, 0) => n += 1,
            (1, 2) => {
                let mut at = 0;
                while at < ids.len() {
                    varint(ids, &mut at);
                    n += 1;
                }
            }
            _ => {}
        });
        deepest = deepest.max(n);
    });
    deepest
}

fn main() {
    churn::main_with(|| {
        println!(
            "info: pprof_alloc.capture={:?}",
            pprof_alloc::capture_mode()
        );
        Report
    });
}
