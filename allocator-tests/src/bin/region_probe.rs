//! Probe for tests/region_misuse.rs: one misuse or check per run, chosen
//! by the first argument, at rate 1 (every allocation served by memprof's
//! region). Each either exits 0 having checked what it says, or is expected
//! to die by the abort memprof raises on misuse.
//!
//! - `align`: allocates every (size, alignment) layout with an alignment of
//!   8 KiB .. 1 MiB, checks each is aligned, prints `checked N layouts, M
//!   misaligned` and exits 1 if any is. Run under the `offset_mmap` shim.
//! - `double-free-small`, `double-free-large`: frees a block twice.
//! - `invalid-pointer`: frees a pointer into the middle of a region block.

use std::alloc::{alloc, dealloc, Layout};
use std::hint::black_box;

#[global_allocator]
static A: memprof::Sampled<std::alloc::System> = memprof::Sampled::new(std::alloc::System);

fn main() {
    memprof::set_rate(1);
    let what = std::env::args().nth(1).unwrap_or_default();
    // SAFETY: layouts are non-zero-sized and blocks are used within their
    // size; the misuse arms free on purpose what the allocator must refuse
    // (it aborts before anything is corrupted).
    unsafe {
        match what.as_str() {
            "align" => {
                let (mut checked, mut bad) = (0, 0);
                for shift in 13..=20 {
                    let align = 1usize << shift;
                    for size in [
                        1,
                        100,
                        4096,
                        8192,
                        50_000,
                        65_536,
                        70_000,
                        300_000,
                        1 << 20,
                        3 << 20,
                        10,
                    ] {
                        let layout = Layout::from_size_align(size, align).unwrap();
                        let p = alloc(layout);
                        assert!(!p.is_null());
                        p.write_bytes(0x5a, size);
                        if !(p as usize).is_multiple_of(align) {
                            bad += 1;
                            eprintln!("misaligned: size {size} align {align} at {p:p}");
                        }
                        checked += 1;
                        dealloc(p, layout);
                    }
                }
                let (reserved, _) = memprof::__private::region_footprint();
                println!("checked {checked} layouts, {bad} misaligned, region {reserved} bytes");
                std::process::exit(i32::from(bad > 0 || reserved == 0));
            }
            "double-free-small" | "double-free-large" => {
                let size = if what.ends_with("small") { 48 } else { 100_000 };
                let layout = Layout::from_size_align(size, 8).unwrap();
                // black_box: an optimised build otherwise sees the
                // allocation unused and removes it with its frees, and the
                // probe "survives" without ever reaching memprof.
                let p = black_box(alloc(layout));
                dealloc(black_box(p), layout);
                dealloc(black_box(p), layout);
                // Not reached: had the second free gone through, the next
                // two allocations would share an address.
                let a = black_box(alloc(layout));
                let b = black_box(alloc(layout));
                println!("survived: {a:p} {b:p}");
            }
            "invalid-pointer" => {
                let layout = Layout::from_size_align(64, 8).unwrap();
                let p = black_box(alloc(layout));
                dealloc(black_box(p.add(16)), layout);
                println!("survived");
            }
            _ => {
                eprintln!(
                    "usage: region_probe align|double-free-small|double-free-large|invalid-pointer"
                );
                std::process::exit(2);
            }
        }
    }
}
