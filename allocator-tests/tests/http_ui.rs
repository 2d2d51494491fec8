//! `/debug/pprof/ui` in a real browser: Debian's Chromium, headless, driven
//! by the npm `playwright-core` (`allocator-tests/js/ui.cjs`) over the
//! running `http` example (examples/http.rs, built here as `http_example`).
//! The flame graph must draw the example's `load_catalog` site, zoom on a
//! click and highlight it when searched, served live, saved as a file, and
//! written by `memprof report` from the profiles saved as files.
//! A missing Node.js, playwright-core or Chromium fails the test.
use allocator_tests::http::{example_watchdog, get, Example};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The example's start-up site: 8 MiB kept, in every in-use profile.
const SITE: &str = "load_catalog";
/// The example's cache entries, also kept.
const CACHE: &str = "Cache::insert";
const CHROMIUM: &str = "/usr/bin/chromium";

fn js_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("js")
}

/// Node.js, playwright-core and Chromium are there, or the test fails
/// saying how to install them.
fn check_tools() {
    let node = Command::new("node").arg("--version").output();
    assert!(
        node.as_ref().is_ok_and(|o| o.status.success()),
        "cannot run node ({node:?}): `apt-get install nodejs npm` (Debian; .ci/run does it); \
         this test never skips the browser"
    );
    assert!(
        js_dir().join("node_modules/playwright-core").is_dir(),
        "the npm package playwright-core is not installed: run `npm ci` in {} (.ci/run does it)",
        js_dir().display()
    );
    assert!(
        Path::new(CHROMIUM).exists(),
        "no Chromium at {CHROMIUM}: `apt-get install chromium` (Debian; .ci/run does it); \
         this test never skips the browser"
    );
}

/// Runs `ui.cjs` on `url` for the frames of function `site`, saving its
/// screenshot as `shot`, and returns what it measured.
fn browse(url: &str, site: &str, shot: &Path) -> serde_json::Value {
    let out = Command::new("node")
        .arg(js_dir().join("ui.cjs"))
        .arg(url)
        .arg(site)
        .arg(shot)
        .env("CHROMIUM", CHROMIUM)
        .output()
        .expect("cannot run node allocator-tests/js/ui.cjs");
    assert!(
        out.status.success(),
        "ui.cjs on {url} failed ({}):\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "ui.cjs printed bad JSON ({e}):\n{}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

/// What a page must show: four sample types and tables, the site's frame
/// drawn, zoomed to full width on a click (the others hidden), back on
/// "Reset zoom", and highlighted when searched; every type's graph and
/// table when selected; no error, no request but the page.
fn check(v: &serde_json::Value, url: &str, site: &str) {
    let f = |p: &str| {
        v.pointer(p)
            .unwrap_or_else(|| panic!("{url}: no {p} in {v:#}"))
    };
    let num = |p: &str| {
        f(p).as_f64()
            .unwrap_or_else(|| panic!("{url}: {p} not a number"))
    };
    let text = |p: &str| f(p).as_str().unwrap_or_default().to_owned();
    assert_eq!(f("/errors"), &serde_json::json!([]), "{url}: errors");
    assert_eq!(
        f("/types"),
        &serde_json::json!([
            "alloc_objects",
            "alloc_space",
            "inuse_objects",
            "inuse_space"
        ]),
        "{url}"
    );
    assert_eq!(num("/tables"), 4.0, "{url}: a top table per type");
    let frame = text("/frame");
    assert!(
        frame == site || frame.ends_with(&format!("::{site}")),
        "{url}: frame {v:#}"
    );
    assert_eq!(f("/pwned"), false, "{url}: a script from the profile ran");
    assert!(num("/frames") > 5.0, "{url}: frames drawn {v:#}");

    let full = num("/before/fullWidth");
    let before = num("/before/width");
    assert!(full > 600.0, "{url}: graph {full} px wide");
    assert!(
        before > 0.0 && before < full,
        "{url}: {SITE} is {before} of {full} px"
    );
    assert_eq!(num("/before/hidden"), 0.0, "{url}");

    assert_eq!(
        text("/zoomed/widthAttr"),
        "100.0000%",
        "{url}: zoomed {v:#}"
    );
    assert!(num("/zoomed/width") >= full - 1.0, "{url}: zoomed {v:#}");
    assert!(num("/zoomed/hidden") > 0.0, "{url}: zoom hid nothing {v:#}");
    assert_eq!(f("/zoomed/targetHidden"), false, "{url}");

    assert_eq!(num("/unzoomed/width"), before, "{url}: reset zoom {v:#}");
    assert_eq!(num("/unzoomed/hidden"), 0.0, "{url}");

    let (fill, orig) = (text("/search/fill"), text("/search/origFill"));
    assert!(
        !orig.is_empty() && fill != orig,
        "{url}: not highlighted {v:#}"
    );
    assert!(
        text("/search/matched").starts_with("Matched: "),
        "{url}: {v:#}"
    );
    assert_eq!(
        text("/search/matched"),
        text("/search/pageMatched"),
        "{url}"
    );
    assert!(
        num("/search/rowsMatched") >= 1.0,
        "{url}: no top row marked"
    );
}

fn is_png(path: &Path) -> bool {
    std::fs::read(path).is_ok_and(|b| b.starts_with(b"\x89PNG\r\n\x1a\n"))
}

#[test]
fn flame_graph_zooms_and_searches_in_chromium() {
    check_tools();
    example_watchdog(240, "the ui test");
    // The cache too, kept as the catalog is: with only the catalog in use
    // (soon after the start, as an optimised build gets there) its frame
    // is the whole graph, and the zoom has nothing to hide.
    let s = Example::start(env!("CARGO_BIN_EXE_http_example"), &[SITE, CACHE]);
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("http_ui");
    std::fs::create_dir_all(&dir).unwrap();

    // The index links the page; the page is HTML, not cached.
    let index = get(s.addr, "/debug/pprof/").text();
    assert!(index.contains("<a href='ui'>ui</a>"), "{index}");
    let page = get(s.addr, "/debug/pprof/ui");
    assert_eq!(page.status, 200);
    assert_eq!(
        page.header("Content-Type"),
        Some("text/html; charset=utf-8")
    );
    assert_eq!(page.header("Cache-Control"), Some("no-store"));

    // Live.
    let url = format!("http://{}/debug/pprof/ui", s.addr);
    let shot = dir.join("ui.png");
    check(&browse(&url, SITE, &shot), &url, SITE);
    assert!(is_png(&shot), "no screenshot at {}", shot.display());

    // The same page saved as a file, the service gone: it needs nothing
    // from a server (every frame is inline).
    let file = dir.join("report.html");
    std::fs::write(&file, &page.body).unwrap();
    // The heap profile and its peak, saved as MEMPROFILE names them.
    let heap = dir.join("heap.pb.gz");
    let peak = memprof::peak_path(&heap);
    let heap_pb = get(s.addr, "/debug/pprof/heap");
    let peak_pb = get(s.addr, "/debug/pprof/peak");
    assert_eq!((heap_pb.status, peak_pb.status), (200, 200));
    std::fs::write(&heap, &heap_pb.body).unwrap();
    std::fs::write(&peak, &peak_pb.body).unwrap();
    drop(s);
    let url = format!("file://{}", file.display());
    check(&browse(&url, SITE, &dir.join("file.png")), &url, SITE);

    // `memprof report` on the saved profile: the same page, from a file,
    // with the peak found beside it.
    let cli = dir.join("cli.html");
    let out = Command::new(env!("CARGO_BIN_EXE_memprof_cli"))
        .arg("report")
        .arg(&heap)
        .arg("-o")
        .arg(&cli)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "memprof report: {err}");
    assert!(
        err.contains(&format!("including its peak profile {}", peak.display())),
        "{err}"
    );
    let html = std::fs::read_to_string(&cli).unwrap();
    assert!(html.contains("id=\"peak-flame\""), "the peak is shown");
    let url = format!("file://{}", cli.display());
    check(&browse(&url, SITE, &dir.join("cli.png")), &url, SITE);
}

/// A function name, a label and a comment that would run a script if the
/// report echoed them unescaped.
const EVIL: &str = "<alloc::vec::Vec<T> as Clone>::clone<script>top.pwned=1</script>\
                    <img src=x onerror=top.pwned=2>";

/// A hand-built profile whose top site is [`EVIL`], under five callers,
/// next to a plain one.
fn evil_profile() -> memprof::view::Profile {
    use memprof::view::{Frame, Profile, Sample, ValueType};
    let vt = |k: &str, u: &str| ValueType {
        kind: k.into(),
        unit: u.into(),
    };
    let frame = |f: &str| Frame {
        function: f.into(),
        file: format!("src/{f}.rs"),
        line: 7,
        inlined: false,
    };
    let mut frames = vec![frame(EVIL), frame("plain_site")];
    frames.extend(["main", "run", "serve", "handle", "work"].map(frame));
    let sample = |leaf: u32, v: i64, label: &str| Sample {
        stack: vec![leaf, 6, 5, 4, 3, 2],
        values: vec![v, v << 10, v, v << 10],
        labels: vec![("tenant".into(), label.into())],
        num_labels: vec![("age".into(), 60, "seconds".into())],
    };
    Profile {
        sample_types: vec![
            vt("alloc_objects", "count"),
            vt("alloc_space", "bytes"),
            vt("inuse_objects", "count"),
            vt("inuse_space", "bytes"),
        ],
        period_type: Some(vt("space", "bytes")),
        period: 1,
        comments: vec![format!("comment {EVIL}")],
        frames,
        samples: vec![sample(0, 300, EVIL), sample(1, 100, "acme")],
        ..Profile::default()
    }
}

#[test]
fn report_file_echoes_no_markup_in_chromium() {
    check_tools();
    example_watchdog(120, "the ui test");
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("http_ui");
    std::fs::create_dir_all(&dir).unwrap();
    let p = evil_profile();
    let opts = memprof::view::ReportOptions {
        title: format!("title {EVIL}"),
        peak: Some(&p),
        ..Default::default()
    };
    let file = dir.join("evil.html");
    std::fs::write(&file, memprof::view::report_html(&p, &opts)).unwrap();
    let url = format!("file://{}", file.display());
    let v = browse(&url, EVIL, &dir.join("evil.png"));
    check(&v, &url, EVIL);
    assert_eq!(v["title"], format!("title {EVIL}"), "the title, as text");
}
