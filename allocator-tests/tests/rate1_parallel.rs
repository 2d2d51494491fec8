//! A user's report, reproduced: "A crate with 8 ordinary `#[test]`
//! functions in one file, each building 5,000 Strings of 0–3,000 bytes 20
//! times, with `Sampled<System>` installed: `MEMPROFILERATE=1 cargo test
//! --release` died with SIGSEGV in 9 of 30 runs." And: "Two threads that
//! keep a window of `Vec<u8>` of 16–2,016 bytes (push one, drain half when
//! 512 are kept)."
//!
//! The tests are ordinary ones that libtest runs in parallel threads, and
//! check their data. They mean most at `MEMPROFILERATE=1`, where every
//! allocation is served from memprof's region: `.ci/run` builds this
//! binary once and runs it 50 times that way (a crash in any run fails
//! CI). Under plain `cargo test` they run at the default rate.

use std::alloc::System;
use std::collections::VecDeque;

#[global_allocator]
static A: memprof::Sampled<System> = memprof::Sampled::new(System);

/// xorshift64*, seeded per test.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

/// The byte of string `i` in round `round`: a letter, so the String is
/// valid UTF-8 and each one's contents differ from its neighbours'.
fn letter(test: u64, round: u64, i: u64) -> char {
    (b'a' + ((test * 7 + round * 3 + i) % 26) as u8) as char
}

/// 20 rounds of 5,000 Strings of 0–3,000 bytes, all kept until the
/// round's end, then checked and dropped.
fn strings(test: u64) {
    let mut r = Rng(0x9e37_79b9_7f4a_7c15 ^ test.wrapping_mul(0x1234_5677));
    for round in 0..20 {
        let mut v: Vec<String> = Vec::with_capacity(5000);
        let mut lens = Vec::with_capacity(5000);
        for i in 0..5000u64 {
            let len = (r.next() % 3001) as usize;
            let c = letter(test, round, i);
            let mut s = String::new();
            // Built in pieces, so growth reallocs too.
            while s.len() < len {
                let piece = (len - s.len()).min(1 + (r.next() % 700) as usize);
                s.extend(std::iter::repeat_n(c, piece));
            }
            v.push(s);
            lens.push(len);
        }
        for (i, s) in v.iter().enumerate() {
            let c = letter(test, round, i as u64);
            assert_eq!(
                s.len(),
                lens[i],
                "test {test} round {round} string {i}: length"
            );
            assert!(
                s.bytes().all(|b| b == c as u8),
                "test {test} round {round} string {i} ({} B at {:p}): contents damaged",
                s.len(),
                s.as_ptr()
            );
        }
    }
}

#[test]
fn strings_1() {
    strings(1);
}
#[test]
fn strings_2() {
    strings(2);
}
#[test]
fn strings_3() {
    strings(3);
}
#[test]
fn strings_4() {
    strings(4);
}
#[test]
fn strings_5() {
    strings(5);
}
#[test]
fn strings_6() {
    strings(6);
}
#[test]
fn strings_7() {
    strings(7);
}
#[test]
fn strings_8() {
    strings(8);
}

/// One thread's window: push a `Vec<u8>` of 16–2,016 bytes filled with a
/// value of its own; when 512 are kept, check and drop the oldest half.
fn window(thread: u64, pushes: u64) {
    let mut r = Rng(0xdead_beef_cafe_f00d ^ thread);
    let mut w: VecDeque<(u64, Vec<u8>)> = VecDeque::new();
    let check = |k: u64, v: &Vec<u8>| {
        let b = (k % 251) as u8;
        assert!(
            v.iter().all(|&x| x == b),
            "thread {thread} vector {k} ({} B at {:p}): contents damaged",
            v.len(),
            v.as_ptr()
        );
    };
    for k in 0..pushes {
        let len = 16 + (r.next() % 2001) as usize;
        w.push_back((k, vec![(k % 251) as u8; len]));
        if w.len() == 512 {
            for (k, v) in w.drain(..256) {
                check(k, &v);
            }
        }
    }
    for (k, v) in &w {
        check(*k, v);
    }
}

#[test]
fn two_threads_keep_windows_of_vecs() {
    std::thread::scope(|s| {
        for t in 0..2 {
            s.spawn(move || window(t, 400_000));
        }
    });
}

#[test]
fn the_rate_is_the_one_asked_for() {
    // Not vacuous: when the environment asks for a rate, memprof runs at it.
    if let Some(r) = std::env::var("MEMPROFILERATE")
        .ok()
        .and_then(|r| r.trim().parse::<usize>().ok())
    {
        assert_eq!(memprof::rate(), r);
    }
}
