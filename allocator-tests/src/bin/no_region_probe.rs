//! Probe for tests/no_region.rs: limits its address space (`RLIMIT_AS`)
//! before memprof reserves its sampled-block region, so the reservation
//! fails, then runs each test helper on a closure that allocates and
//! leaks. Each must panic saying why; prints one line per helper,
//! `<helper>: panicked: <message>` or `<helper>: PASSED VACUOUSLY ...`.
//!
//! Run with `MEMPROFILERATE=0`, so that nothing is sampled (and the region
//! not reserved) before the limit is set.

use std::panic::{catch_unwind, AssertUnwindSafe};

#[global_allocator]
static A: memprof::Sampled<std::alloc::System> = memprof::Sampled::new(std::alloc::System);

fn vm_size() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmSize:"))
        .and_then(|v| v.trim().strip_suffix("kB"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap();
    kb * 1024
}

fn run(name: &str, f: impl FnOnce() -> String) {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(what) => println!("{name}: PASSED VACUOUSLY ({what})"),
        Err(e) => {
            let msg = e
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            println!("{name}: panicked: {}", msg.replace('\n', " "));
        }
    }
}

fn main() {
    assert_eq!(memprof::rate(), 0, "run with MEMPROFILERATE=0");
    let (reserved, _) = memprof::__private::region_footprint();
    assert_eq!(reserved, 0, "the region was reserved before the limit");
    // Room for what the process has and a little heap, far less than the
    // smallest region memprof tries (8 GiB).
    let limit = vm_size() + (512 << 20);
    let rl = libc::rlimit {
        rlim_cur: limit,
        rlim_max: limit,
    };
    // SAFETY: plain syscall on a valid struct.
    assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_AS, &rl) }, 0);
    std::panic::set_hook(Box::new(|_| {})); // the messages are printed below
    run("measure", || {
        let m = memprof::measure(|| vec![0u8; 100]);
        format!("{}", m.stats)
    });
    run("assert_no_alloc", || {
        memprof::assert_no_alloc(|| std::hint::black_box(Box::new(7)));
        String::new()
    });
    run("assert_no_leaks", || {
        memprof::assert_no_leaks(|| std::mem::forget(vec![0u8; 10]));
        String::new()
    });
}
