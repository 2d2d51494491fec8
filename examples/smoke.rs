use std::alloc::System;
#[global_allocator]
static A: memprof::Sampled<System> = memprof::Sampled::new(System);

#[inline(never)]
fn make(n: usize) -> Vec<Box<[u8; 100]>> { (0..n).map(|_| Box::new([1u8; 100])).collect() }

fn main() {
    memprof::set_rate(1);
    let v = make(1000);
    let p = memprof::heap_profile();
    let mut recs: Vec<_> = p.records().filter(|r| r.object_size() == 100).collect();
    recs.sort_by_key(|r| std::cmp::Reverse(r.inuse_bytes()));
    for r in recs.iter().take(3) { println!("size {} allocs {} inuse {} frames {}", r.object_size(), r.alloc_objects(), r.inuse_objects(), r.stack().len()); }
    drop(v);
    let p = memprof::heap_profile();
    let r: Vec<_> = p.records().filter(|r| r.object_size() == 100).map(|r| (r.alloc_objects(), r.inuse_objects())).collect();
    println!("{:?} dropped {}", r, p.dropped_samples());
    memprof::set_rate(memprof::DEFAULT_RATE);
    let mut total = 0usize;
    for i in 0..200_000 { let b = vec![0u8; 16 + i % 240]; total += b.len(); }
    let t = memprof::heap_profile().totals();
    println!("churn true {} est alloc {} ", total, t.alloc_bytes);
    println!("{:?} {}", memprof::__private::region_footprint(), memprof::__private::table_bytes());
}
