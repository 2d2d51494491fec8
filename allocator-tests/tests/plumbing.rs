//! The standard library's allocation plumbing (`alloc::alloc::realloc`,
//! `Global::grow_impl`, `exchange_malloc`, the `__rust_*` shims) is trimmed
//! from the profiles we write, as Go trims `runtime.mallocgc`: `go tool
//! pprof -top` puts the flat bytes on `RawVec` growth, `Box::new` and the
//! caller's own functions.
use allocator_tests::*;

#[global_allocator]
static A: memprof::Sampled<std::alloc::System> = memprof::Sampled::new(std::alloc::System);

#[inline(never)]
fn grow_a_string() -> String {
    let mut s = String::new();
    for _ in 0..64 {
        s.push_str("plumbing test, one line of text\n");
    }
    s
}

#[inline(never)]
fn box_a_block() -> Box<[u64; 64]> {
    Box::new(std::hint::black_box([7u64; 64]))
}

#[inline(never)]
fn raw_allocation() -> *mut u8 {
    let layout = std::alloc::Layout::from_size_align(777, 8).unwrap();
    // SAFETY: the layout has a nonzero size; the block is freed by the test.
    let p = unsafe { std::alloc::alloc(layout) };
    keep_frame();
    p
}

fn is_plumbing(name: &str) -> bool {
    let name = name.trim_end_matches(" (inline)");
    name.starts_with("alloc::alloc::")
        || name.starts_with("<alloc::alloc::Global")
        || name.starts_with("__rust")
        || name.starts_with("__rg_")
        || name.starts_with("__rdl_")
        || name.contains("memprof::")
}

#[test]
fn go_pprof_top_lands_on_the_callers_not_the_plumbing() {
    memprof::set_rate(1);
    let kept: Vec<String> = (0..20).map(|_| grow_a_string()).collect();
    let boxes: Vec<Box<[u64; 64]>> = (0..20).map(|_| box_a_block()).collect();
    let raw = raw_allocation();
    let dir = temp_dir("plumbing");
    let file = write_pprof(&memprof::heap_profile(), &dir, "heap.pb.gz");

    let top = go_top(&file, &["-sample_index=alloc_space"]);
    let flat: Vec<(i64, String)> = top
        .lines()
        .skip_while(|l| !l.trim_start().starts_with("flat"))
        .skip(1)
        .filter_map(|l| {
            // Columns: flat flat% sum% cum cum% name (which has spaces).
            let cols: Vec<&str> = l.split_whitespace().collect();
            let bytes = cols.first()?.trim_end_matches('B').parse::<i64>().ok()?;
            (bytes > 0 && cols.len() > 5).then(|| (bytes, cols[5..].join(" ")))
        })
        .collect();
    assert!(!flat.is_empty(), "no flat rows in:\n{top}");
    for (bytes, name) in &flat {
        assert!(
            !is_plumbing(name),
            "{bytes} B flat in plumbing `{name}`:\n{top}"
        );
    }
    let on = |pat: &str| {
        flat.iter()
            .filter(|(_, n)| n.contains(pat))
            .map(|(b, _)| b)
            .sum::<i64>()
    };
    // The string's growth lands on RawVec growth, the box on Box::new (or
    // the function it is inlined into), the raw call on its caller.
    assert!(
        on("finish_grow") + on("grow_a_string") > 0,
        "no string growth site:\n{top}"
    );
    assert!(
        on("box_new") + on("Box") + on("box_a_block") >= 20 * 512,
        "no Box::new site:\n{top}"
    );
    assert!(
        on("raw_allocation") >= 777,
        "raw allocation not on its caller:\n{top}"
    );

    drop((kept, boxes));
    // SAFETY: `raw` came from `std::alloc::alloc` with this layout.
    unsafe { std::alloc::dealloc(raw, std::alloc::Layout::from_size_align(777, 8).unwrap()) };
}
