//! `assert_no_alloc`, `assert_no_leaks` and `dump_on_panic`: they pass on
#![allow(clippy::vec_box)] // boxes are the point: one allocation each
//! clean code, fail on dirty code naming the site, and the pprof files they
//! write are read by `go tool pprof` with that site on top.
use allocator_tests::*;

#[global_allocator]
static A: memprof::Sampled<std::alloc::System> = memprof::Sampled::new(std::alloc::System);

fn test_dir() -> std::path::PathBuf {
    // One directory for this binary; set before any test runs a scope.
    let d = temp_dir("assertions");
    std::env::set_var("MEMPROF_TEST_DIR", &d);
    d
}

#[inline(never)]
fn sneaky_allocation() -> usize {
    let s = format!("{}", 12345);
    s.len()
}

#[inline(never)]
fn leaky_cache_fill(cache: &mut Vec<Box<[u8; 200]>>) {
    for _ in 0..3 {
        cache.push(Box::new([0; 200]));
    }
}

#[test]
fn no_alloc_passes_on_clean_code() {
    let mut buf = Vec::with_capacity(16);
    let n = memprof::assert_no_alloc(|| {
        buf.extend_from_slice(b"abc");
        buf.len()
    });
    assert_eq!(n, 3);
}

#[test]
#[should_panic(expected = "sneaky_allocation")]
fn no_alloc_fails_naming_the_function() {
    test_dir();
    memprof::assert_no_alloc(sneaky_allocation);
}

#[test]
fn no_alloc_profile_has_the_site_on_top() {
    let dir = test_dir();
    let r = std::thread::Builder::new()
        .name("no_alloc_probe".into())
        .spawn(|| memprof::assert_no_alloc(sneaky_allocation))
        .unwrap()
        .join();
    let msg = *r.unwrap_err().downcast::<String>().unwrap();
    assert!(
        msg.contains("sneaky_allocation") && msg.contains("profile: "),
        "{msg}"
    );
    let path = dir.join("no_alloc_probe.no-alloc.pb.gz");
    let d = go_raw(&path, &["sneaky_allocation"]);
    assert!(
        d.samples.iter().any(|s| s.has_fn("sneaky_allocation")),
        "{path:?}"
    );
    let top = go_top(&path);
    assert!(top.contains("sneaky_allocation"), "{top}");
}

#[test]
fn no_leaks_passes_on_clean_code() {
    memprof::assert_no_leaks(|| {
        let v = vec![1u8; 1000];
        drop(v);
    });
}

#[test]
#[should_panic(expected = "leaky_cache_fill")]
fn no_leaks_fails_listing_the_live_blocks() {
    test_dir();
    let mut cache = Vec::with_capacity(10);
    memprof::assert_no_leaks(|| leaky_cache_fill(&mut cache));
}

#[inline(never)]
fn dump_site() -> Vec<u8> {
    vec![7u8; 31337]
}

#[test]
fn dump_on_panic_writes_the_failing_threads_profile_only() {
    let dir = test_dir();
    let failing = std::thread::Builder::new()
        .name("dump_case_failing".into())
        .spawn(|| {
            let _g = memprof::dump_on_panic();
            let v = dump_site();
            assert!(v.is_empty(), "deliberate failure");
        })
        .unwrap()
        .join();
    assert!(failing.is_err());
    let passing = std::thread::Builder::new()
        .name("dump_case_passing".into())
        .spawn(|| {
            let _g = memprof::dump_on_panic();
            dump_site().len()
        })
        .unwrap()
        .join();
    assert_eq!(passing.unwrap(), 31337);
    assert!(!dir.join("dump_case_passing.pb.gz").exists());
    let path = dir.join("dump_case_failing.pb.gz");
    let top = go_top(&path);
    assert!(top.contains("dump_site"), "{top}");
}

fn go_top(path: &std::path::Path) -> String {
    let out = std::process::Command::new("go")
        .args(["tool", "pprof", "-top", "-sample_index=alloc_space"])
        .arg(path)
        .output()
        .expect("go tool pprof: install golang-go");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}
