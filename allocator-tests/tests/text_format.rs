//! The Go debug=1 text is read by `go tool pprof` with the proto's numbers.
#![allow(clippy::vec_box)] // boxes are the point: one allocation each
use allocator_tests::*;
use std::alloc::System;

#[global_allocator]
static A: memprof::Sampled<System> = memprof::Sampled::new(System);

#[inline(never)]
fn text_site() -> Vec<Box<[u8; 48]>> {
    (0..300).map(|_| Box::new([7u8; 48])).collect()
}

#[test]
fn text_and_proto_show_the_same_numbers() {
    memprof::set_rate(1);
    let dir = temp_dir("text");
    let kept = text_site();
    let p = memprof::heap_profile();
    let proto = go_raw(&write_pprof(&p, &dir, "p.pb.gz"));
    let text = go_raw(&write_text(&p, &dir, "p.txt"));
    assert_eq!(proto.sum("text_site", Some(48)), [300, 14_400, 300, 14_400]);
    // The text carries raw addresses (pprof symbolizes them from the
    // binary, not from its `#` comments), so compare by size and in total.
    assert_eq!(text.sum("", Some(48)), proto.sum("", Some(48)));
    let all = |d: &Decoded| {
        d.samples.iter().fold([0i64; 4], |mut t, s| {
            t.iter_mut().zip(s.values).for_each(|(a, v)| *a += v);
            t
        })
    };
    // Records sampled before `set_rate(1)` (libtest's start-up, at the
    // default rate) carry fractional estimates. The proto rounds objects
    // and bytes separately; the text can only write whole objects of
    // `size` bytes. So objects agree exactly and bytes within one object
    // per sample.
    let (t, p) = (all(&text), all(&proto));
    assert_eq!((t[0], t[2]), (p[0], p[2]), "object totals");
    let slack: i64 = proto.samples.iter().map(|s| s.bytes.unwrap_or(0)).sum();
    assert!(
        (t[1] - p[1]).abs() <= slack && (t[3] - p[3]).abs() <= slack,
        "byte totals {t:?} vs {p:?}"
    );

    assert_eq!(text.period, 1);
    // google-pprof (gperftools' reader) accepts the same file.
    let exe = std::env::current_exe().unwrap();
    let out = std::process::Command::new("google-pprof")
        .arg("--text")
        .arg(&exe)
        .arg(dir.join("p.txt"))
        .output()
        .expect("google-pprof missing: install Debian google-perftools (.ci/run does)");
    assert!(
        out.status.success(),
        "google-pprof: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("Total"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    drop(kept);
}
