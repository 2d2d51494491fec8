//! Probe for `tests/peak.rs`: the program. It holds 200 MiB at
//! `site_a` (200 blocks of 1 MiB), frees it, then holds 100 MiB at
//! `site_b` (100 blocks of 1 MiB) until it exits through `exit(0)`, so a
//! `MEMPROFILE` heap profile shows B live and the peak profile beside it
//! shows A. Run it with `MEMPROFILERATE` and `MEMPROFILE` set.

#[global_allocator]
static A: memprof::Sampled<std::alloc::System> = memprof::Sampled::new(std::alloc::System);

const MIB: usize = 1 << 20;

#[inline(never)]
fn site_a(out: &mut Vec<Vec<u8>>) {
    for _ in 0..200 {
        out.push(std::hint::black_box(Vec::with_capacity(MIB)));
    }
}

#[inline(never)]
fn site_b(out: &mut Vec<Vec<u8>>) {
    for _ in 0..100 {
        out.push(std::hint::black_box(Vec::with_capacity(MIB)));
    }
}

fn main() {
    let mut a = Vec::with_capacity(200);
    site_a(&mut a);
    drop(a);
    let mut b = Vec::with_capacity(100);
    site_b(&mut b);
    std::hint::black_box(&b);
    println!("rate {}", memprof::rate());
    // B stays live: `exit` runs the `MEMPROFILE` writer without dropping it.
    std::process::exit(0);
}
