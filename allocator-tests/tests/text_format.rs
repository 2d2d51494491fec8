//! Go's legacy `debug=1` text, as written by `write_text`, carries the same
//! numbers as the pprof proto of the same snapshot once a reader has
//! scaled it: `go tool pprof -raw` reads both, and every sample of the
//! proto has a text sample with the same stack (location addresses) and
//! object size whose values are equal at rate 1, and within one sample's
//! scaled truncation at a sampled rate. `google-pprof` (gperftools' legacy
//! reader) reads the text too, with the same per-function counts.
//!
//! Its own binary because it sets the process-wide rate; its tests take
//! `rate_lock` so they never overlap.

use allocator_tests::*;
use std::alloc::System;

#[global_allocator]
static A: memprof::Sampled<System> = memprof::Sampled::new(System);

/// Writes `p` both ways, reads both with `go tool pprof -raw`, and pairs
/// every proto sample of `funcs` with the text sample of the same stack and
/// size. Returns (proto sample, text sample) pairs.
fn pairs(
    p: &memprof::HeapProfile,
    tag: &str,
    funcs: &[&str],
) -> (Decoded, Decoded, Vec<(Sample, Sample)>) {
    let dir = temp_dir(tag);
    let mut proto = go_raw(&write_pprof(p, &dir, "heap.pb.gz"), funcs);
    // The proto splits each site by the age of its live objects; the text
    // has one line per site.
    proto.samples = merge_ages(&proto.samples);
    assert!(!proto.samples.is_empty(), "no sample of {funcs:?}");
    let stacks: Vec<Vec<u64>> = proto.samples.iter().map(|s| s.addrs.clone()).collect();
    let text = go_raw_text(&write_text(p, &dir, "heap.txt"), Some(&stacks));
    let mut out = Vec::new();
    for s in &proto.samples {
        let matching: Vec<&Sample> = text
            .samples
            .iter()
            .filter(|t| t.addrs == s.addrs && t.bytes == s.bytes)
            .collect();
        assert_eq!(
            matching.len(),
            1,
            "one text sample for the proto sample {:?} (size {:?})",
            s.funcs.first(),
            s.bytes
        );
        out.push((s.clone(), matching[0].clone()));
    }
    (proto, text, out)
}

#[inline(never)]
fn text_exact_site(out: &mut Vec<Vec<u8>>) {
    for i in 0..300 {
        out.push(Vec::with_capacity(48));
        if i % 3 == 0 {
            out.push(Vec::with_capacity(7000));
        }
    }
    out.truncate(250); // frees some of each size
}

#[test]
fn text_read_by_go_pprof_equals_the_proto_exactly_at_rate_1() {
    let _rate = rate_lock();
    memprof::set_rate(1);
    let mut kept = Vec::with_capacity(400);
    text_exact_site(&mut kept);
    let p = memprof::heap_profile();
    let (proto, text, pairs) = pairs(&p, "text-exact", &["text_exact_site"]);
    proto.assert_go_heap_shape(1);
    // `heap_v2/1`: period 1, four sample types (alloc and in-use differ).
    text.assert_go_heap_shape(1);
    for (s, t) in &pairs {
        assert_eq!(t.values, s.values, "size {:?}", s.bytes);
    }
    let [alloc_o, _, inuse_o, _] = proto.sum("text_exact_site", None);
    assert_eq!((alloc_o, inuse_o), (400, 250));
    drop(kept);
}

#[inline(never)]
fn text_all_site() -> Vec<Vec<u8>> {
    (1..=20).map(|i| Vec::with_capacity(i * 111)).collect()
}

#[test]
fn every_sample_of_the_text_matches_the_proto_within_rounding_at_rate_1() {
    let _rate = rate_lock();
    memprof::set_rate(1);
    let kept = text_all_site();
    let p = memprof::heap_profile();
    // The whole profile: also the records libtest's start-up left behind at
    // the default rate, whose estimates are fractional. The proto rounds
    // objects and bytes separately; the text holds whole objects of `size`
    // bytes. So objects agree exactly and bytes within half an object.
    let (_, _, pairs) = pairs(&p, "text-all", &[]);
    assert!(pairs.len() >= 20, "{} samples", pairs.len());
    for (s, t) in &pairs {
        let half = s.bytes.unwrap_or(0) as f64 / 2.0 + 1.0;
        assert_eq!(
            (t.values[0], t.values[2]),
            (s.values[0], s.values[2]),
            "objects"
        );
        for i in [1, 3] {
            let diff = (s.values[i] - t.values[i]).abs() as f64;
            assert!(
                diff <= half,
                "bytes: proto {:?} vs text {:?}",
                s.values,
                t.values
            );
        }
    }
    drop(kept);
}

const SAMPLED_SIZES: [usize; 4] = [64, 900, 6000, 50_000];

#[inline(never)]
fn text_sampled_site(out: &mut Vec<Vec<u8>>) {
    for i in 0..8000 {
        out.push(Vec::with_capacity(SAMPLED_SIZES[i % SAMPLED_SIZES.len()]));
    }
    out.truncate(5000);
}

#[test]
fn text_read_by_go_pprof_is_within_one_scaled_sample_of_the_proto_at_a_sampled_rate() {
    let _rate = rate_lock();
    let rate = 4096u64;
    memprof::set_rate(rate as usize);
    memprof::__private::seed_thread(0x7e47);
    let mut kept = Vec::with_capacity(8000);
    text_sampled_site(&mut kept);
    let p = memprof::heap_profile();
    let (proto, text, pairs) = pairs(&p, "text-sampled", &["text_sampled_site"]);
    proto.assert_go_heap_shape(rate as i64);
    // `heap_v2/4096`: the reader scales each line with the header's rate.
    text.assert_go_heap_shape(rate as i64);
    assert!(pairs.len() >= SAMPLED_SIZES.len());
    for (s, t) in &pairs {
        let size = s.bytes.expect("bytes label") as f64;
        // The text holds whole sampled counts n; readers turn them into
        // trunc(n · scale). The proto holds the estimate itself, so the
        // two differ by at most half a scaled sample, plus truncation.
        let scale = 1.0 / sample_probability(size as u64, rate);
        let tolerance = [scale, scale * size, scale, scale * size].map(|x| x / 2.0 + 1.0);
        for i in 0..4 {
            let diff = (s.values[i] - t.values[i]).abs() as f64;
            assert!(
                diff <= tolerance[i],
                "size {size}, value {i}: proto {:?} vs text {:?} (tolerance {:?})",
                s.values,
                t.values,
                tolerance
            );
        }
    }
    drop(kept);
}

#[inline(never)]
fn text_google_site(out: &mut Vec<Vec<u8>>) {
    for _ in 0..321 {
        out.push(Vec::with_capacity(4321));
    }
    out.truncate(123);
}

#[test]
fn google_pprof_reads_the_text_with_the_same_counts() {
    let _rate = rate_lock();
    memprof::set_rate(1);
    let mut kept = Vec::with_capacity(321);
    text_google_site(&mut kept);
    let p = memprof::heap_profile();
    let dir = temp_dir("text-google");
    let text = write_text(&p, &dir, "heap.txt");
    let exe = std::env::current_exe().unwrap();
    let inuse = google_pprof_text(&exe, &text, "inuse_objects");
    let alloc = google_pprof_text(&exe, &text, "alloc_objects");
    assert!(
        inuse.contains("Heap version 2") || inuse.contains("Total:"),
        "{inuse}"
    );
    // google-pprof counts every sample under the function, whatever its
    // size: compare with the proto's samples of the same function.
    let proto = go_raw(&write_pprof(&p, &dir, "heap.pb.gz"), &["text_google_site"]);
    let [alloc_o, _, inuse_o, _] = proto.sum("text_google_site", None);
    assert_eq!(
        proto.sum("text_google_site", Some(4321)),
        [321, 321 * 4321, 123, 123 * 4321]
    );
    assert_eq!(
        google_cum(&inuse, "text_google_site"),
        inuse_o,
        "in-use objects:\n{inuse}"
    );
    assert_eq!(
        google_cum(&alloc, "text_google_site"),
        alloc_o,
        "alloc objects:\n{alloc}"
    );
    drop(kept);
}
