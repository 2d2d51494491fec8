//! More distinct label sets than the table holds (4096, two of them
//! reserved: the empty set and `memprof.labels=overflow`): the sets past
//! the bound are counted, their samples land under
//! `memprof.labels=overflow` with exact values at rate 1, the sets made
//! before keep working, the count is in both formats' comments, and the
//! readers take the profile. No crash, no lost sample.
//!
//! Its own binary: the label table and its overflow count are process-wide
//! and never shrink, so the exact count needs a process where only this
//! test makes label sets.

use allocator_tests::*;
use std::alloc::System;

#[global_allocator]
static A: memprof::Sampled<System> = memprof::Sampled::new(System);

/// The table's bound, and the sets it holds before any user set.
const MAX_SETS: usize = 4096;
const RESERVED: usize = 2;
/// Distinct sets this test makes: the first `MAX_SETS - RESERVED` fit.
const SETS: usize = 5000;
const FIT: usize = MAX_SETS - RESERVED;
const OVER: usize = SETS - FIT;
const SIZE: usize = 424;

#[inline(never)]
fn overflow_block() -> Vec<u8> {
    own_body("overflow_block");
    std::hint::black_box(Vec::with_capacity(SIZE))
}

#[inline(never)]
fn again_block() -> Vec<u8> {
    own_body("again_block");
    std::hint::black_box(Vec::with_capacity(SIZE))
}

#[inline(never)]
fn nested_block() -> Vec<u8> {
    own_body("nested_block");
    std::hint::black_box(Vec::with_capacity(SIZE))
}

/// A request label value that is not a number (see `parse_labels`).
fn req(i: usize) -> String {
    format!("r{i}")
}

#[test]
fn label_sets_past_the_bound_are_counted_and_folded_into_one() {
    let _dog = watchdog(120, "labels overflow");
    memprof::set_rate(1);
    let before = memprof::heap_profile();
    assert_eq!(before.label_overflow(), 0);

    let mut kept = Vec::with_capacity(SETS + 16);
    for i in 0..SETS {
        let v = req(i);
        memprof::with_labels(&[("req", &v)], || kept.push(overflow_block()));
    }
    // A set made before the table filled still has its own id.
    memprof::with_labels(&[("req", &req(7))], || kept.push(again_block()));
    // A new set on top of the overflow set overflows too, and is counted.
    memprof::with_labels(&[("req", &req(SETS + 1))], || {
        memprof::with_labels(&[("step", "inner")], || kept.push(nested_block()));
    });
    let over = (OVER + 2) as u64; // + req=r5001 and {req=r5001, step=inner}

    let p = memprof::heap_profile();
    assert_eq!(p.label_overflow(), over, "label sets counted as overflow");
    assert_eq!(p.dropped_samples(), 0, "no sample lost");
    let size = SIZE as u64;
    let overflowed = OVER as u64;

    // In process: one record per fitting set, one for all the others.
    let mut filter = FnFilter::new("overflow_block");
    let mut per_req = 0;
    let mut under_overflow = [0u64; 2];
    for r in p.records() {
        if r.object_size() != size || !filter.matches(r) {
            continue;
        }
        match r.label("memprof.labels") {
            Some(v) => {
                assert_eq!(v, "overflow");
                assert_eq!(r.labels().len(), 1, "{:?}", r.labels());
                under_overflow[0] += r.alloc_objects();
                under_overflow[1] += r.inuse_bytes();
            }
            None => {
                let v = r.label("req").expect("a req label");
                let i: usize = v[1..].parse().unwrap();
                assert!(i < FIT, "req={v} fits in the table");
                assert_eq!([r.alloc_objects(), r.inuse_bytes()], [1, size], "req={v}");
                per_req += 1;
            }
        }
    }
    assert_eq!(per_req, FIT, "one record per set that fits");
    assert_eq!(under_overflow, [overflowed, overflowed * size]);
    let req7 = record_sum(&p, "again_block", Some(size));
    assert_eq!(req7, [1, size, 1, size]);
    assert!(p
        .records()
        .filter(|r| r.object_size() == size && FnFilter::new("again_block").matches(r))
        .all(|r| r.label("req") == Some("r7")));
    assert!(p
        .records()
        .filter(|r| r.object_size() == size && FnFilter::new("nested_block").matches(r))
        .all(|r| r.label("memprof.labels") == Some("overflow") && r.labels().len() == 1));

    // by_label: every fitting value once, the rest under the overflow key.
    let by_req = p.by_label("req");
    assert_eq!(
        by_req.len(),
        FIT,
        "values of req: only the sets that fit (r7 twice in one entry)"
    );
    let r7 = by_req.iter().find(|(v, _)| v == "r7").unwrap().1;
    assert_eq!((r7.alloc_objects, r7.inuse_bytes), (2, 2 * size));
    let by_overflow = p.by_label("memprof.labels");
    let t = by_overflow
        .iter()
        .find(|(v, _)| v == "overflow")
        .expect("an overflow entry")
        .1;
    // `overflow_block`'s and `nested_block`'s samples, and whatever else
    // `with_labels` allocated under the overflow set (nothing here).
    assert_eq!(
        (t.alloc_objects, t.inuse_objects, t.inuse_bytes),
        (overflowed + 1, overflowed + 1, (overflowed + 1) * size)
    );

    // The readers take the profile; the counts and the comment are there.
    let dir = temp_dir("labels-overflow");
    let file = write_pprof(&p, &dir, "heap.pb.gz");
    let want_comment =
        format!("label sets over the limit (counted as memprof.labels=overflow): {over}");
    for d in decode_both(&file, &["overflow_block", "nested_block"]) {
        assert!(
            d.comments.contains(&want_comment),
            "{}: comments {:?}",
            d.reader,
            d.comments
        );
        let of = |s: &Sample| s.str_label("memprof.labels") == Some("overflow");
        let o = overflowed as i64;
        let s = size as i64;
        assert_eq!(
            d.sum_where(|x| of(x) && x.has_fn("overflow_block")),
            [o, o * s, o, o * s],
            "{}",
            d.reader
        );
        assert_eq!(
            d.sum_where(|x| !of(x) && x.has_fn("overflow_block")),
            [FIT as i64, FIT as i64 * s, FIT as i64, FIT as i64 * s],
            "{}",
            d.reader
        );
        let labelled = d
            .with_fn("overflow_block")
            .filter(|x| x.str_label("req").is_some())
            .count();
        assert_eq!(labelled, FIT, "{}: samples with a req label", d.reader);
        assert_eq!(
            d.sum_where(|x| of(x) && x.has_fn("nested_block")),
            [1, s, 1, s],
            "{}",
            d.reader
        );
    }
    // go tool pprof filters on it like on any label.
    let top = go_top(&file, &["-tagfocus=memprof.labels=overflow"]);
    let shown = top_shown(&top).unwrap_or_else(|| panic!("{top}")).0;
    assert_eq!(shown, (overflowed as i64 + 1) * size as i64, "{top}");
    // The text format says it too.
    let text = write_text(&p, &dir, "heap.txt");
    let body = std::fs::read_to_string(&text).unwrap();
    assert!(
        body.lines().any(|l| l == format!("# {want_comment}")),
        "no overflow comment in the text profile"
    );
    go_raw_text(&text, None);

    drop(kept);
    let p = memprof::heap_profile();
    assert_eq!(
        record_sum(&p, "overflow_block", Some(size)),
        [SETS as u64, SETS as u64 * size, 0, 0]
    );
}
