//! `HeapProfile::write_pprof_unsymbolized`: a profile of addresses,
//! mappings and build IDs that reads no debug info, and that readers
//! symbolize from the binary (`go tool pprof` with the binary at hand).
//!
//! One test function: the debug-info load counter and the RSS are
//! process-wide, so nothing else may symbolize while they are read.

use std::alloc::System;
use std::hint::black_box;
use std::path::Path;
use std::process::Command;

use allocator_tests::mem::peak_growth_kib;
use allocator_tests::{
    go_raw, keep_frame, pprof_format, rate_lock, temp_dir, watchdog, write_pprof,
};

#[global_allocator]
static A: memprof::Sampled<System> = memprof::Sampled::new(System);

/// The known site: 100 blocks of 1000 bytes, kept.
#[inline(never)]
fn unsymbolized_known_site() -> Vec<Box<[u8]>> {
    let kept = (0..100)
        .map(|_| black_box(vec![7u8; 1000].into_boxed_slice()))
        .collect();
    keep_frame();
    kept
}

fn go_pprof(args: &[&str], profile: &Path) -> String {
    let out = Command::new("go")
        .args(["tool", "pprof"])
        .args(args)
        .arg(profile)
        .env("PPROF_TMPDIR", std::env::temp_dir())
        .output()
        .expect("go tool pprof (apt-get install golang-go)");
    assert!(
        out.status.success(),
        "go tool pprof {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn unsymbolized_profiles_read_no_debug_info_and_symbolize_from_the_binary() {
    let _w = watchdog(300, "unsymbolized");
    let _r = rate_lock();
    memprof::set_rate(1);
    let kept = unsymbolized_known_site();
    let profile = memprof::heap_profile();
    memprof::set_rate(0);
    let dir = temp_dir("unsymbolized");

    // No debug info read: the counter of module loads does not move, and
    // the RSS grows by far less than a symbolizing write's.
    let loads = memprof::__private::debug_info_loads();
    let plain = dir.join("plain.pb.gz");
    let grew_plain = peak_growth_kib(|| {
        let f = std::fs::File::create(&plain).unwrap();
        profile.write_pprof_unsymbolized(f).unwrap();
    });
    assert_eq!(
        memprof::__private::debug_info_loads(),
        loads,
        "an unsymbolized write opened debug info"
    );
    // The endpoints, with `?symbolize=0`: no debug info either.
    for target in [
        "/debug/pprof/heap?symbolize=0",
        "/debug/pprof/allocs?symbolize=0",
    ] {
        let r = memprof::http::handle("GET", target);
        assert_eq!(r.status, 200, "{target}");
        let path = dir.join("http.pb.gz");
        std::fs::write(&path, &r.body).unwrap();
        let raw = go_pprof(&["-raw", "-symbolize=none"], &path);
        assert!(raw.contains("symbolization: off"), "{target}:\n{raw}");
    }
    assert_eq!(
        memprof::__private::debug_info_loads(),
        loads,
        "an unsymbolized endpoint opened debug info"
    );
    let mut named = None;
    let grew_named = peak_growth_kib(|| named = Some(write_pprof(&profile, &dir, "named.pb.gz")));
    let named = named.unwrap();
    assert!(
        memprof::__private::debug_info_loads() > loads,
        "the symbolized write should have read the binary's debug info"
    );
    eprintln!("peak RSS growth: unsymbolized {grew_plain} KiB, symbolized {grew_named} KiB");
    // Both small: the symbolized write reads a few compilation units at a
    // time (docs/performance.md, "Memory of a profile write"); that it read
    // any debug info at all is the load counter's to say.
    assert!(
        grew_plain < 8 * 1024 && grew_named < 16 * 1024,
        "unsymbolized write grew the RSS by {grew_plain} KiB (symbolized: {grew_named} KiB)"
    );

    // `-symbolize=none`: addresses only, no names; the comment says so.
    let raw = go_pprof(&["-raw", "-symbolize=none"], &plain);
    assert!(
        raw.contains("symbolization: off (unsymbolized profile"),
        "{raw}"
    );
    assert!(!raw.contains("unsymbolized_known_site"), "{raw}");
    let locations = raw.split("Locations").nth(1).expect("no Locations section");
    let exe = std::env::current_exe().unwrap();
    let build_id = {
        let out = Command::new("readelf")
            .arg("-n")
            .arg(&exe)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        text.lines()
            .find_map(|l| l.trim().strip_prefix("Build ID: ").map(str::to_owned))
            .expect("the test binary has no build ID")
    };
    let mappings = locations.split("Mappings").nth(1).expect("no Mappings");
    assert!(
        mappings.contains(&*exe.to_string_lossy()) && mappings.contains(&build_id),
        "the main mapping with its file and build ID:\n{mappings}"
    );
    // Every location line is an address with no function after it.
    for l in locations.split("Mappings").next().unwrap().lines().skip(1) {
        let mut f = l.split_whitespace();
        let (Some(_id), Some(addr)) = (f.next(), f.next()) else {
            continue;
        };
        assert!(addr.starts_with("0x") && addr.len() > 3, "{l}");
        assert!(f.all(|t| t.starts_with("M=")), "a named location: {l}");
    }

    // With the binary at hand, `go tool pprof` names the known site from
    // its debug info, with the bytes of the symbolized profile.
    // The known site's cumulative bytes. `go tool pprof` names frames from
    // DWARF's `DW_AT_name`, the short name (`unsymbolized_known_site`);
    // the symbolized profile has the path (`unsymbolized::...`).
    let cum = |report: &str| -> i64 {
        report
            .lines()
            .filter_map(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                let name = f.get(5..)?.join(" ");
                let site = name == "unsymbolized_known_site"
                    || name.ends_with("::unsymbolized_known_site");
                site.then(|| f[3].strip_suffix('B')?.parse().ok())?
            })
            .max()
            .unwrap_or(-1)
    };
    let args = [
        "-top",
        "-cum",
        "-unit=B",
        "-nodefraction=0",
        "-nodecount=100000",
        "-sample_index=inuse_space",
    ];
    let mut local = args.to_vec();
    local.push("-symbolize=local");
    let from_binary = go_pprof(&local, &plain);
    let symbolized = go_pprof(&args, &named);
    let (a, b) = (cum(&from_binary), cum(&symbolized));
    assert!(b >= 100_000, "symbolized profile:\n{symbolized}");
    assert_eq!(
        a, b,
        "the known site's cumulative bytes, named by go tool pprof from the binary \
         against the symbolized profile:\n{from_binary}\n---\n{symbolized}"
    );
    // The profiler's frames were cut by their symbol-table names.
    for name in ["capture_with", "alloc_sampled", "__rust_alloc", "memprof::"] {
        assert!(
            !from_binary.contains(name),
            "profiler frame {name} left in:\n{from_binary}"
        );
    }
    // The binary's path given on the command line works the same way.
    let mut with_exe = args.to_vec();
    with_exe.push("-symbolize=local");
    let exe_str = exe.to_string_lossy().into_owned();
    with_exe.push(&exe_str);
    assert_eq!(cum(&go_pprof(&with_exe, &plain)), b);

    // pprof-format reads it: the same values, locations without lines.
    let js = pprof_format(&plain, &[]);
    let go = go_raw(&plain, &[]);
    assert_eq!(js.total(), go.total());
    assert!(js.total()[3] >= 100_000, "{:?}", js.total());
    assert!(js.samples.iter().all(|s| s.funcs.iter().all(Vec::is_empty)));

    black_box(kept);
    let _ = std::fs::remove_dir_all(&dir);
}

/// `MEMPROF_SYMBOLIZE=0`: the profiles `MEMPROFILE` writes at exit are
/// unsymbolized; `go tool pprof` names the probe's site from its binary.
#[test]
fn memprof_symbolize_0_writes_the_exit_profiles_unsymbolized() {
    let _w = watchdog(120, "MEMPROF_SYMBOLIZE=0");
    let dir = temp_dir("unsymbolized-env");
    let probe = env!("CARGO_BIN_EXE_env_probe");
    let heap = dir.join("heap.pb.gz");
    let out = Command::new(probe)
        .env("MEMPROFILERATE", "1")
        .env("MEMPROFILE", &heap)
        .env("MEMPROF_SYMBOLIZE", "0")
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    for path in [heap.clone(), dir.join("heap.peak.pb.gz")] {
        let raw = go_pprof(&["-raw", "-symbolize=none"], &path);
        assert!(
            raw.contains("symbolization: off"),
            "{}:\n{raw}",
            path.display()
        );
        assert!(!raw.contains("probe_allocs"), "{raw}");
    }
    let top = go_pprof(
        &[
            "-top",
            "-cum",
            "-nodecount=100000",
            "-symbolize=local",
            probe,
        ],
        &heap,
    );
    assert!(top.contains("probe_allocs"), "{top}");
    let _ = std::fs::remove_dir_all(&dir);
}
