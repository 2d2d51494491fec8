//! The cached DWARF unwinder (`Unwinder::Dwarf`): the same call sites as
//! libgcc (`backtrace`) for plain calls, inlined functions, closures,
//! generics, C code calling back into Rust, and a `dlopen`ed Rust cdylib;
//! safe and exact at rate 1 in small stacks, deep recursion, code with no
//! unwind information and 8 threads at once; and read back through
//! `go tool pprof`.
//!
//! This binary runs in the project's frame-pointer build (`cargo test`),
//! and `tests/nofp_build.rs` builds and runs it again without frame
//! pointers, in debug and release, with `MEMPROF_TEST_EXPECT_UNWINDER=Dwarf`.
use allocator_tests::*;
use memprof::Unwinder;
use std::ffi::c_void;
use std::sync::{Mutex, OnceLock};

#[global_allocator]
static A: memprof::Sampled<std::alloc::System> = memprof::Sampled::new(std::alloc::System);

/// The unwinder memprof chose by itself, read before any test changes it;
/// then every test of this binary records with `Dwarf`.
fn setup() -> Unwinder {
    static DEFAULT: OnceLock<Unwinder> = OnceLock::new();
    *DEFAULT.get_or_init(|| {
        let default = memprof::unwinder();
        memprof::set_unwinder(Unwinder::Dwarf);
        default
    })
}

type Pair = (Vec<usize>, bool, Vec<usize>);

/// Captures with `Dwarf` then `Libgcc` from one call site, so both stacks
/// share every return address from here outwards.
#[inline(never)]
fn capture_both() -> Pair {
    let mut out = Vec::new();
    let mut truncated = false;
    // A loop the compiler cannot unroll: one call site for both.
    for u in std::hint::black_box(vec![Unwinder::Dwarf, Unwinder::Libgcc]) {
        let mut buf = [0usize; 256];
        let (n, t) = memprof::__private::capture_stack_with(u, &mut buf);
        if u == Unwinder::Dwarf {
            truncated = t;
        }
        out.push(buf[..n].to_vec());
    }
    let lg = out.pop().unwrap();
    let dw = out.pop().unwrap();
    std::hint::black_box((dw, truncated, lg))
}

/// Function names at each return address, innermost (inlined) first.
fn names(stack: &[usize]) -> Vec<String> {
    let mut out = Vec::new();
    for &ret in stack {
        backtrace::resolve(ret as *mut c_void, |s| {
            if let Some(n) = s.name() {
                out.push(format!("{n:#}"));
            }
        });
    }
    out
}

/// `expect` occurs in `names` in this order (as a subsequence).
fn in_order(names: &[String], expect: &[&str]) -> bool {
    let mut it = names.iter();
    expect.iter().all(|e| it.any(|n| n.contains(e)))
}

/// The two stacks agree from the capture site outwards: the longest common
/// tail holds `chain` in order, and before it each has only the
/// unwinders' own frames. Returns the common tail.
fn assert_same_call_sites<'a>((dw, truncated, lg): &'a Pair, chain: &[&str]) -> &'a [usize] {
    assert!(!truncated, "dwarf stack cut: {:#?}", names(dw));
    let common = dw
        .iter()
        .rev()
        .zip(lg.iter().rev())
        .take_while(|(a, b)| a == b)
        .count();
    let tail = &dw[dw.len() - common..];
    let tail_names = names(tail);
    assert!(
        in_order(&tail_names, chain),
        "common tail lacks {chain:?}\ncommon: {tail_names:#?}\ndwarf: {:#?}\nlibgcc: {:#?}",
        names(dw),
        names(lg)
    );
    assert!(
        in_order(&tail_names, &["capture_both"]),
        "the stacks differ outside the unwinders: {:#?}\nvs {:#?}",
        names(dw),
        names(lg)
    );
    assert!(
        dw.len() - common <= 8,
        "dwarf: {} own frames",
        dw.len() - common
    );
    tail
}

#[inline(never)]
fn plain_c() -> Pair {
    std::hint::black_box(capture_both())
}
#[inline(never)]
fn plain_b() -> Pair {
    std::hint::black_box(plain_c())
}
#[inline(never)]
fn plain_a() -> Pair {
    std::hint::black_box(plain_b())
}

#[inline(always)]
fn inlined_leaf() -> Pair {
    std::hint::black_box(capture_both())
}
#[inline(never)]
fn holds_inlined() -> Pair {
    std::hint::black_box(inlined_leaf())
}

#[inline(never)]
fn call_closure<F: FnOnce() -> Pair>(f: F) -> Pair {
    std::hint::black_box(f())
}

#[inline(never)]
fn generic_leaf<T: std::fmt::Debug>(t: T) -> Pair {
    let r = capture_both();
    std::hint::black_box(format!("{t:?}"));
    r
}

#[test]
fn same_call_sites_as_libgcc() {
    setup();
    assert_same_call_sites(
        &plain_a(),
        &["plain_c", "plain_b", "plain_a", "same_call_sites_as_libgcc"],
    );
    assert_same_call_sites(
        &holds_inlined(),
        &["inlined_leaf", "holds_inlined", "same_call_sites_as_libgcc"],
    );
    let v = std::hint::black_box(vec![1u8, 2, 3]);
    assert_same_call_sites(
        &call_closure(move || {
            std::hint::black_box(&v);
            capture_both()
        }),
        &["{{closure}}", "call_closure", "same_call_sites_as_libgcc"],
    );
    assert_same_call_sites(
        &generic_leaf("text"),
        &["generic_leaf", "same_call_sites_as_libgcc"],
    );
    assert_same_call_sites(
        &generic_leaf(42u64),
        &["generic_leaf", "same_call_sites_as_libgcc"],
    );
}

thread_local! {
    /// What a callback captured, for the test that made the call (callbacks
    /// and the signal handler run on the calling thread; tests run in
    /// parallel, each on its own thread).
    static FROM_CALLBACK: std::cell::RefCell<Option<Pair>> = const { std::cell::RefCell::new(None) };
}

fn put_captured(p: Pair) {
    FROM_CALLBACK.with(|c| *c.borrow_mut() = Some(p));
}

fn take_captured() -> Pair {
    FROM_CALLBACK
        .with(|c| c.borrow_mut().take())
        .expect("the callback ran and captured")
}

#[inline(never)]
extern "C" fn capture_in_callback(x: u64) {
    let p = capture_both();
    std::hint::black_box(x);
    put_captured(p);
}

extern "C" {
    fn memprof_test_nofp_call(f: extern "C" fn(u64), n: u64) -> u64;
    fn memprof_test_nocfi_call(f: extern "C" fn(u64), n: u64) -> u64;
    fn memprof_test_cfaexpr_call(f: extern "C" fn(u64), n: u64) -> u64;
}

#[test]
fn same_call_sites_through_c() {
    setup();
    // SAFETY: the C function only computes and calls the callback.
    unsafe { memprof_test_nofp_call(capture_in_callback, 10) };
    let p = take_captured();
    assert_same_call_sites(
        &p,
        &[
            "capture_in_callback",
            "memprof_test_nofp_call",
            "same_call_sites_through_c",
        ],
    );
}

/// The file and exported symbol that hold `addr`, from the loader.
fn dladdr(addr: usize) -> Option<(String, Option<String>)> {
    // SAFETY: `info` is a plain C struct that dladdr fills on success.
    let mut info: libc::Dl_info = unsafe { std::mem::zeroed() };
    // SAFETY: any address may be asked about; `info` is a valid out-pointer.
    if unsafe { libc::dladdr(addr as *const c_void, &mut info) } == 0 || info.dli_fname.is_null() {
        return None;
    }
    let text = |p: *const libc::c_char| {
        (!p.is_null()).then(|| {
            // SAFETY: non-null strings from dladdr are NUL-terminated and
            // live while the module is loaded, which it is here.
            let s = unsafe { std::ffi::CStr::from_ptr(p) };
            s.to_string_lossy().into_owned()
        })
    };
    Some((text(info.dli_fname)?, text(info.dli_sname)))
}

#[test]
fn a_frame_with_a_cfa_expression_goes_to_libgcc_with_the_same_result() {
    setup();
    let before = memprof::__private::unwind_counts().1;
    // SAFETY: the assembly function only calls the callback.
    unsafe { memprof_test_cfaexpr_call(capture_in_callback, 10) };
    let p = take_captured();
    assert_same_call_sites(
        &p,
        &[
            "capture_in_callback",
            "memprof_test_cfaexpr_call",
            "a_frame_with_a_cfa_expression_goes_to_libgcc",
        ],
    );
    assert!(
        memprof::__private::unwind_counts().1 > before,
        "handed to libgcc"
    );
}

extern "C" fn capture_in_signal_handler(_: libc::c_int) {
    let p = capture_both();
    put_captured(p);
}

#[inline(never)]
fn raise_usr1() {
    // SAFETY: raising a signal whose handler we installed.
    unsafe { libc::raise(libc::SIGUSR1) };
    std::hint::black_box(());
}

/// A stack with a signal frame (`__restore_rt`, whose CFI the cache cannot
/// hold) goes to libgcc, which unwinds through it; on an alternate signal
/// stack the walk cannot start and goes to libgcc too.
#[test]
fn signal_frames_and_alternate_stacks_go_to_libgcc_with_the_same_result() {
    setup();
    static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());
    let _g = ONE_AT_A_TIME.lock().unwrap();
    for on_alt_stack in [false, true] {
        let alt = vec![0u8; 256 * 1024];
        // SAFETY: `sa` and `ss` are plain C structs, filled before use;
        // the handler only captures stacks (synchronously raised, so not
        // inside any allocator call), and the alternate stack outlives it.
        unsafe {
            if on_alt_stack {
                let ss = libc::stack_t {
                    ss_sp: alt.as_ptr() as *mut c_void,
                    ss_flags: 0,
                    ss_size: alt.len(),
                };
                assert_eq!(libc::sigaltstack(&ss, std::ptr::null_mut()), 0);
            }
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = capture_in_signal_handler as extern "C" fn(libc::c_int) as usize;
            sa.sa_flags = if on_alt_stack { libc::SA_ONSTACK } else { 0 };
            assert_eq!(libc::sigaction(libc::SIGUSR1, &sa, std::ptr::null_mut()), 0);
        }
        let before = memprof::__private::unwind_counts().1;
        raise_usr1();
        let p = take_captured();
        assert_same_call_sites(
            &p,
            &[
                "capture_in_signal_handler",
                "raise_usr1",
                "signal_frames_and_alternate_stacks_go_to_libgcc",
            ],
        );
        if !on_alt_stack {
            assert!(
                memprof::__private::unwind_counts().1 > before,
                "handed to libgcc"
            );
        }
        // SAFETY: restores the defaults set above.
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = libc::SIG_DFL;
            libc::sigaction(libc::SIGUSR1, &sa, std::ptr::null_mut());
            let ss = libc::stack_t {
                ss_sp: std::ptr::null_mut(),
                ss_flags: libc::SS_DISABLE,
                ss_size: 0,
            };
            libc::sigaltstack(&ss, std::ptr::null_mut());
        }
        drop(alt);
    }
}

type DylibCall = extern "C" fn(extern "C" fn(u64), u64) -> u64;

/// `dlopen`s the test cdylib and returns its entry point.
fn open_dylib() -> (*mut c_void, DylibCall) {
    let path = std::ffi::CString::new(env!("MEMPROF_TEST_DYLIB")).unwrap();
    // SAFETY: a valid C string; the library has no constructors.
    let h = unsafe { libc::dlopen(path.as_ptr(), libc::RTLD_NOW | libc::RTLD_LOCAL) };
    assert!(!h.is_null(), "dlopen {path:?}");
    // SAFETY: `h` is a live handle and the name a C string.
    let f = unsafe { libc::dlsym(h, c"memprof_dylib_call".as_ptr()) };
    assert!(!f.is_null(), "dlsym memprof_dylib_call");
    // SAFETY: the symbol is `memprof_dylib_call` of rust/dylib.rs, which
    // has this signature.
    (h, unsafe {
        std::mem::transmute::<*mut c_void, DylibCall>(f)
    })
}

#[test]
fn same_call_sites_through_a_dlopened_cdylib_loaded_late_and_reloaded() {
    setup();
    let _rate = rate_lock();
    memprof::set_rate(1);
    // Warm the unwinder's cache, and make `backtrace` read the list of
    // loaded modules, first: the library is mapped after both.
    assert!(!names(&plain_a().0).is_empty());
    for round in 0..3 {
        let (h, call) = open_dylib();
        call(capture_in_callback, round);
        let p = take_captured();
        let tail = assert_same_call_sites(
            &p,
            &[
                "capture_in_callback",
                "same_call_sites_through_a_dlopened_cdylib",
            ],
        );
        // The library's two frames sit between the callback and the test.
        // They are checked with `dladdr`: `backtrace` reads the list of
        // loaded modules once, at its first use, and so cannot name code
        // loaded after that.
        let dylib: Vec<Option<String>> = tail
            .iter()
            .filter_map(|&a| {
                let (file, sym) = dladdr(a - 1)?;
                file.ends_with("libmemprof_test_dylib.so").then_some(sym)
            })
            .collect();
        assert_eq!(dylib.len(), 2, "frames in the cdylib: {dylib:?}");
        assert_eq!(dylib[1].as_deref(), Some("memprof_dylib_call"));
        if round == 0 {
            // A profile written while the library is loaded names its
            // functions, in order, though `backtrace` cannot.
            call(alloc_in_dylib_callback, 1);
            let p = memprof::heap_profile();
            // In process (what `top_sites`, the text format and readers
            // without their own symbolizer see) ...
            assert_eq!(record_sum(&p, "dylib_middle", Some(2718))[0], 1);
            // ... and through go tool pprof.
            let d = go_raw(
                &write_pprof(&p, &temp_dir("unwind_dwarf_dylib"), "d.pb.gz"),
                &["alloc_in_dylib_callback"],
            );
            let s = d
                .samples
                .iter()
                .find(|s| s.bytes == Some(2718))
                .expect("the allocation made under the cdylib");
            let names: Vec<String> = s.funcs.iter().flatten().cloned().collect();
            assert!(
                in_order(
                    &names,
                    &[
                        "alloc_in_dylib_callback",
                        "dylib_middle",
                        "memprof_dylib_call",
                        "same_call_sites_through_a_dlopened_cdylib"
                    ]
                ),
                "{names:?}"
            );
        }
        // SAFETY: nothing of the library is in use any more.
        assert_eq!(unsafe { libc::dlclose(h) }, 0);
        // With the library gone, capturing still works and agrees.
        assert_same_call_sites(&plain_a(), &["plain_c", "plain_b", "plain_a"]);
    }
}

#[inline(never)]
extern "C" fn alloc_in_dylib_callback(x: u64) {
    let v: Vec<u8> = Vec::with_capacity(2718);
    std::hint::black_box((x, v));
}

#[inline(never)]
extern "C" fn alloc_in_callback(x: u64) {
    let v: Vec<u8> = Vec::with_capacity(3083);
    std::hint::black_box((x, v));
}

#[test]
fn code_without_unwind_info_stops_the_walk_and_marks_it() {
    setup();
    let _rate = rate_lock();
    memprof::set_rate(1);
    // SAFETY: the C function only computes and calls the callback.
    unsafe { memprof_test_nocfi_call(capture_in_callback, 3) };
    let (dw, truncated, _) = take_captured();
    let n = names(&dw);
    assert!(truncated, "{n:#?}");
    assert!(
        n.last()
            .is_some_and(|f| f.contains("memprof_test_nocfi_call")),
        "the walk ends at the frame without CFI: {n:#?}"
    );
    for _ in 0..50 {
        // SAFETY: as above.
        unsafe { memprof_test_nocfi_call(alloc_in_callback, 3) };
    }
    let p = memprof::heap_profile();
    assert!(p.unwinder().contains("dwarf"), "{}", p.unwinder());
    let recs: Vec<_> = p.records().filter(|r| r.object_size() == 3083).collect();
    assert_eq!(recs.iter().map(|r| r.alloc_objects()).sum::<u64>(), 50);
    assert!(recs.iter().all(|r| r.is_truncated()));
    assert_eq!(record_sum(&p, "alloc_in_callback", Some(3083))[0], 50);
}

#[inline(never)]
fn stress_leaf(i: usize) -> Vec<u8> {
    Vec::with_capacity(2345 + (i & 1))
}

#[inline(never)]
fn stress_thread(t: usize) {
    for i in 0..5000 {
        let v = if i % 3 == 0 {
            call_closure_alloc(|| stress_leaf(i))
        } else {
            stress_leaf(i)
        };
        std::hint::black_box((t, v));
    }
}

#[inline(never)]
fn call_closure_alloc<F: FnOnce() -> Vec<u8>>(f: F) -> Vec<u8> {
    std::hint::black_box(f())
}

#[test]
fn rate_1_small_stacks_deep_recursion_threads_and_go_pprof() {
    let default = setup();
    let expected = std::env::var("MEMPROF_TEST_EXPECT_UNWINDER").unwrap_or("FramePointers".into());
    assert_eq!(
        format!("{default:?}"),
        expected,
        "memprof's default unwinder for this build"
    );
    let _watchdog = watchdog(300, "unwind_dwarf test");
    let _rate = rate_lock();
    memprof::set_rate(1);
    assert_eq!(memprof::unwinder(), Unwinder::Dwarf);

    // 64 KiB thread stacks.
    let hs: Vec<_> = (0..4)
        .map(|_| {
            std::thread::Builder::new()
                .stack_size(64 * 1024)
                .spawn(|| small_stack_alloc(1235))
                .unwrap()
        })
        .collect();
    for h in hs {
        drop(h.join().unwrap());
    }
    // 8 threads at once.
    let hs: Vec<_> = (0..8)
        .map(|t| std::thread::spawn(move || stress_thread(t)))
        .collect();
    for h in hs {
        h.join().unwrap();
    }
    // 1000-deep recursion: cut at the depth limit and marked.
    drop(recurse_then_alloc(1000, 4322));
    drop(recurse_then_alloc(10, 4322));

    let p = memprof::heap_profile();
    assert_eq!(record_sum(&p, "small_stack_alloc", Some(1235))[0], 800);
    let stress = record_sum(&p, "stress_thread", Some(2345))[0]
        + record_sum(&p, "stress_thread", Some(2346))[0];
    assert_eq!(
        stress,
        8 * 5000,
        "every allocation of the 8 threads, under its caller"
    );
    assert_eq!(
        record_sum(&p, "call_closure_alloc", Some(2345))[0]
            + record_sum(&p, "call_closure_alloc", Some(2346))[0],
        8 * 1667
    );
    let deep: Vec<_> = p.records().filter(|r| r.object_size() == 4322).collect();
    assert!(deep.iter().any(|r| r.is_truncated()), "1000-deep marked");
    assert!(deep.iter().any(|r| !r.is_truncated()), "10-deep not");

    // Through go tool pprof: functions in call order, leaf first, and the
    // unwinder named in the comments.
    let d = go_raw(
        &write_pprof(&p, &temp_dir("unwind_dwarf"), "u.pb.gz"),
        &["recurse_then_alloc", "stress_leaf"],
    );
    assert!(
        d.comments.iter().any(|c| c.contains("unwinder: dwarf")),
        "{:?}",
        d.comments
    );
    assert_recursion_in_order(
        &d,
        4322,
        "recurse_then_alloc",
        10,
        "rate_1_small_stacks_deep_recursion",
    );
    let s = d
        .samples
        .iter()
        .find(|s| s.bytes == Some(2345) && s.has_fn("call_closure_alloc"))
        .expect("a stress sample through the closure");
    let names: Vec<String> = s.funcs.iter().flatten().cloned().collect();
    assert!(
        in_order(
            &names,
            &[
                "stress_leaf",
                "{{closure}}",
                "call_closure_alloc",
                "stress_thread"
            ]
        ),
        "{names:?}"
    );
    memprof::set_rate(512 * 1024);
}
