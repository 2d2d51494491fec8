//! Stack capture: the frame-pointer walk finds the same call sites as the
//! DWARF (libgcc) unwinder, survives small stacks, foreign code without
//! frame pointers and deep recursion (truncated and marked). The project
//! builds with frame pointers (.cargo/config.toml), so `fp` is the default.
use allocator_tests::*;
use memprof::Unwinder;

#[global_allocator]
static A: memprof::Sampled<std::alloc::System> = memprof::Sampled::new(std::alloc::System);

fn capture(u: Unwinder) -> Vec<usize> {
    let mut buf = [0usize; 256];
    let (n, _) = memprof::__private::capture_stack_with(u, &mut buf);
    buf[..n].to_vec()
}

#[inline(never)]
fn level_c() -> (Vec<usize>, Vec<usize>) {
    let r = (capture(Unwinder::FramePointers), capture(Unwinder::Libgcc));
    std::hint::black_box(r)
}

#[inline(never)]
fn level_b() -> (Vec<usize>, Vec<usize>) {
    std::hint::black_box(level_c())
}

#[inline(never)]
fn level_a() -> (Vec<usize>, Vec<usize>) {
    std::hint::black_box(level_b())
}

#[test]
fn fp_walk_and_libgcc_agree_on_call_sites() {
    let (fp, dw) = level_a();
    // Both capture from the same chain. They differ inside the unwinders
    // and at the two capture calls in `level_c`; from `level_b` outwards the
    // return addresses must be the same. libgcc may see further out (glibc's
    // thread start has no frame pointer), so fp's tail must appear in it.
    let contained = |tail: &[usize]| dw.windows(tail.len()).any(|w| w == tail);
    let first = (0..fp.len()).find(|&i| contained(&fp[i..])).unwrap();
    assert!(
        first <= 8 && fp.len() - first >= 6,
        "fp {fp:x?}\nlibgcc {dw:x?}\nshared from {first}"
    );
    assert!(fp.len() >= 6, "{fp:x?}");
}

extern "C" {
    fn memprof_test_nofp_call(f: extern "C" fn(u64), n: u64) -> u64;
}

#[inline(never)]
extern "C" fn callback_from_c(x: u64) {
    let v: Vec<u64> = Vec::with_capacity(777);
    std::hint::black_box(x);
    std::hint::black_box(v);
}

#[test]
fn fp_walk_is_safe_in_small_stacks_foreign_frames_and_deep_recursion() {
    let _watchdog = watchdog(120, "unwind test");
    memprof::set_rate(1);
    assert_eq!(
        memprof::unwinder(),
        Unwinder::FramePointers,
        "the project builds with frame pointers"
    );
    // 64 KiB thread stacks.
    let hs: Vec<_> = (0..4)
        .map(|_| {
            std::thread::Builder::new()
                .stack_size(64 * 1024)
                .spawn(|| small_stack_alloc(1234))
                .unwrap()
        })
        .collect();
    for h in hs {
        drop(h.join().unwrap());
    }
    // Foreign code without frame pointers on the stack.
    for _ in 0..100 {
        // SAFETY: the C function only computes and calls the callback.
        unsafe { memprof_test_nofp_call(callback_from_c, 1000) };
    }
    // 1000-deep recursion: cut at the depth limit and marked.
    drop(recurse_then_alloc(1000, 4321));
    drop(recurse_then_alloc(10, 4321));

    let p = memprof::heap_profile();
    assert_eq!(record_sum(&p, "small_stack_alloc", Some(1234))[0], 800);
    assert_eq!(record_sum(&p, "callback_from_c", Some(777 * 8))[0], 100);
    let deep: Vec<_> = p.records().filter(|r| r.object_size() == 4321).collect();
    assert!(
        deep.iter().any(|r| r.is_truncated()),
        "the 1000-deep stack is marked truncated"
    );
    assert!(
        deep.iter().any(|r| !r.is_truncated()),
        "the 10-deep one is not"
    );

    // Read back through go tool pprof: functions in call order, leaf first.
    let d = go_raw(
        &write_pprof(&p, &temp_dir("unwind"), "u.pb.gz"),
        &["recurse_then_alloc"],
    );
    assert_recursion_in_order(&d, 4321, "recurse_then_alloc", 10, "fp_walk_is_safe");
}
