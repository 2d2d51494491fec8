//! `go tool pprof` as the real client of the running `http` example
//! (examples/http.rs, built here as the `http_example` binary): the heap
//! and allocs profiles and a 2-second delta, read with `-raw` and `-top`.
use allocator_tests::http::{example_watchdog, go_pprof, Example};
use allocator_tests::{parse_go_raw, Decoded, Keep};

/// The example's sites (examples/http.rs; its crate is `http_example` here).
const CATALOG: &str = "load_catalog";
const CACHE: &str = "Cache::insert";
const RENDER: &str = "render_response";
const PARSE: &str = "parse_request";

fn type_names(d: &Decoded) -> Vec<&str> {
    d.sample_types.iter().map(|(t, _)| t.as_str()).collect()
}

fn raw(args: &[&str]) -> (String, Decoded) {
    let text = go_pprof(args);
    let decoded = parse_go_raw(&text, "go tool pprof", &Keep::Funcs(&[]));
    (text, decoded)
}

const TYPES: [&str; 4] = [
    "alloc_objects",
    "alloc_space",
    "inuse_objects",
    "inuse_space",
];

#[test]
fn heap_profile_over_http() {
    example_watchdog(120, "heap over http");
    let s = Example::start(
        env!("CARGO_BIN_EXE_http_example"),
        &[CATALOG, CACHE, RENDER, PARSE],
    );
    let (text, d) = raw(&["-raw", &s.url("heap")]);
    assert_eq!(type_names(&d), TYPES);
    assert_eq!(d.period, 65536);
    assert!(!text.contains("[dflt]"), "heap opens on the last type");
    assert!(!text.contains("Duration:"), "a snapshot has no duration");
    // 8 MiB kept since the start: allocated = in use, an estimate within
    // 50% (over 5 standard deviations for 128 blocks of 64 KiB).
    let catalog = d.sum(CATALOG, None);
    assert_eq!(catalog[1], catalog[3]);
    assert!((4 << 20..12 << 20).contains(&catalog[3]), "{catalog:?}");
    assert!(d.sum(CACHE, None)[3] > 0, "cache entries in use");
    assert!(d.sum(RENDER, None)[1] > 0, "responses allocated");

    let top = go_pprof(&["-top", &s.url("heap")]);
    for want in ["Type: inuse_space", CATALOG, CACHE] {
        assert!(top.contains(want), "{want} not in:\n{top}");
    }
}

#[test]
fn allocs_profile_opens_on_alloc_space() {
    example_watchdog(120, "allocs over http");
    let s = Example::start(
        env!("CARGO_BIN_EXE_http_example"),
        &[CATALOG, CACHE, RENDER, PARSE],
    );
    let (text, d) = raw(&["-raw", &s.url("allocs")]);
    assert_eq!(type_names(&d), TYPES);
    assert!(text.contains("alloc_space/bytes[dflt]"), "{text}");
    assert!(d.sum(PARSE, None)[1] > 0);
    let top = go_pprof(&["-top", &s.url("allocs")]);
    for want in ["Type: alloc_space", RENDER, PARSE] {
        assert!(top.contains(want), "{want} not in:\n{top}");
    }
}

#[test]
fn delta_profile_shows_the_window() {
    example_watchdog(120, "delta over http");
    let s = Example::start(
        env!("CARGO_BIN_EXE_http_example"),
        &[CATALOG, CACHE, RENDER, PARSE],
    );
    let before = raw(&["-raw", &s.url("allocs")]).1;
    let (text, delta) = raw(&["-raw", "-seconds", "2", &s.url("heap")]);
    let after = raw(&["-raw", &s.url("allocs")]).1;

    assert_eq!(type_names(&delta), TYPES);
    let duration: f64 = text
        .lines()
        .find_map(|l| l.strip_prefix("Duration: "))
        .unwrap_or_else(|| panic!("no duration in:\n{text}"))
        .trim()
        .parse()
        .unwrap();
    assert!((2.0..10.0).contains(&duration), "duration {duration}");

    // Allocated before the window, live at its end: no allocation in the
    // delta, in use as at the end (Go would show in-use 0 here).
    let catalog = delta.sum(CATALOG, None);
    assert_eq!(catalog[..2], [0, 0], "{catalog:?}");
    assert!(catalog[3] >= 4 << 20, "{catalog:?}");

    // Allocated during the window only: at most what full profiles taken
    // before and after it differ by (rounding aside), and more than zero.
    let grown = after.sum(RENDER, None)[1] - before.sum(RENDER, None)[1];
    let in_window = delta.sum(RENDER, None)[1];
    assert!(in_window > 0);
    assert!(
        in_window <= grown + grown / 100 + (256 << 10),
        "delta {in_window} > growth {grown} between full profiles"
    );
    assert!(in_window < after.sum(RENDER, None)[1]);
}
