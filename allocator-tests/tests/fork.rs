//! fork() while other threads allocate: the child allocates and writes a
//! profile; nothing hangs (each child is bounded by a timeout).
use allocator_tests::*;
use std::sync::atomic::{AtomicBool, Ordering};

#[global_allocator]
static A: memprof::Sampled<std::alloc::System> = memprof::Sampled::new(std::alloc::System);

#[inline(never)]
fn parent_churn(stop: &AtomicBool) {
    let mut v: Vec<Vec<u8>> = Vec::new();
    let mut i = 0usize;
    while !stop.load(Ordering::Relaxed) {
        v.push(vec![1u8; 16 + i % 5000]);
        if v.len() > 100 {
            v.clear();
        }
        i += 1;
        if i.is_multiple_of(64) {
            let _ = memprof::heap_profile();
        }
    }
}

#[test]
fn children_forked_during_allocation_allocate_and_write_profiles() {
    watchdog(120, "fork test");
    memprof::set_rate(4096);
    let dir = temp_dir("fork");
    let stop = AtomicBool::new(false);
    std::thread::scope(|s| {
        for _ in 0..3 {
            s.spawn(|| parent_churn(&stop));
        }
        for k in 0..5 {
            std::thread::sleep(std::time::Duration::from_millis(20));
            let path = dir.join(format!("child{k}.pb.gz"));
            // SAFETY: the child only allocates, writes a file and _exits.
            let pid = unsafe { libc::fork() };
            assert!(pid >= 0, "fork failed");
            if pid == 0 {
                let v: Vec<String> = (0..5000).map(|i| i.to_string()).collect();
                let ok = memprof::write_heap_profile(&path).is_ok() && v.len() == 5000;
                // SAFETY: leave the child without running the parent's exit handlers.
                unsafe { libc::_exit(if ok { 0 } else { 1 }) };
            }
            let mut status = 0;
            let start = std::time::Instant::now();
            loop {
                // SAFETY: waiting for our own child.
                let r = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
                if r == pid {
                    break;
                }
                if start.elapsed() > std::time::Duration::from_secs(30) {
                    // SAFETY: killing our own child.
                    unsafe { libc::kill(pid, libc::SIGKILL) };
                    panic!("child {k} hung after fork");
                }
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            assert!(
                libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
                "child {k} failed"
            );
            assert!(!go_raw(&path).samples.is_empty());
        }
        stop.store(true, Ordering::Relaxed);
    });
}
