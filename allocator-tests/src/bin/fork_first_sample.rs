//! Probe for the `fork` tests: forks while another thread is reserving
//! memprof's sampled-block region (its very first sample), and checks
//! that the child can take a sample of its own.
//!
//! Run with `MEMPROFILERATE=0` (so nothing is sampled before the race) and
//! `LD_PRELOAD` set to the `slow_reserve` shim, which makes the reservation
//! take 100 ms: the fork, 30 ms after the first sample starts, lands inside
//! it. Prints `first sample: N ms; child: ok|hung` and exits with status 1
//! if the child hung (it is killed after 5 s).
//!
//! Regression: the child of such a fork inherited a reservation "in
//! progress" that none of its threads would finish, and spun forever at
//! its first sampled allocation.

use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

#[global_allocator]
static A: memprof::Sampled<std::alloc::System> = memprof::Sampled::new(std::alloc::System);

#[inline(never)]
fn first_sample() -> Duration {
    let t = Instant::now();
    std::hint::black_box(Vec::<u8>::with_capacity(100));
    t.elapsed()
}

fn main() {
    assert_eq!(memprof::rate(), 0, "run with MEMPROFILERATE=0");
    let barrier = Arc::new(Barrier::new(2));
    let b = barrier.clone();
    let first = std::thread::spawn(move || {
        b.wait();
        first_sample()
    });
    memprof::set_rate(1);
    barrier.wait();
    // Nothing here allocates until the fork: the other thread takes the
    // process's first sample, and is inside the (slowed) reservation.
    std::thread::sleep(Duration::from_millis(30));
    // SAFETY: the child only allocates once and `_exit`s.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed");
    if pid == 0 {
        std::hint::black_box(Vec::<u8>::with_capacity(200));
        // SAFETY: ends the child at once, running nothing of the parent's.
        unsafe { libc::_exit(0) };
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut status = 0;
    let hung = loop {
        // SAFETY: waiting for our own child.
        let r = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
        if r == pid {
            break false;
        }
        if Instant::now() > deadline {
            // SAFETY: killing and reaping our own child.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
                libc::waitpid(pid, &mut status, 0);
            }
            break true;
        }
        std::thread::sleep(Duration::from_millis(1));
    };
    let took = first.join().unwrap();
    let child_ok = !hung && libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0;
    println!(
        "first sample: {} ms; child: {}",
        took.as_millis(),
        if hung {
            "hung"
        } else if child_ok {
            "ok"
        } else {
            "failed"
        }
    );
    std::process::exit(i32::from(!child_ok));
}
