//! Unit tests of the region as a whole (each part tests itself in its own
//! file). The allocator-level tests (misuse aborts, an offset mmap base,
//! soak) are in allocator-tests.

use super::*;

fn alloc_free(size: usize, align: usize) -> usize {
    let b = alloc(size, align).expect("region available");
    // A record id far beyond any slot index, where the free-list link was:
    // what a stale walk of the shared list would read.
    b.meta.set(0x4000_0000, 1, 0, 0);
    b.ptr as usize
}

#[test]
fn small_and_large_blocks_round_trip() {
    for &(size, align) in &[
        (1, 1),
        (24, 8),
        (100, 64),
        (5000, 4096),
        (200_000, 16),
        (70_000, 8192),
        (10, 65536),
        (100, 1 << 20),
    ] {
        let b = alloc(size, align).expect("region available");
        assert!(contains(b.ptr));
        assert_eq!(b.ptr as usize % align, 0, "size {size} align {align}");
        // SAFETY: the block is ours and `size` bytes long.
        unsafe {
            core::ptr::write_bytes(b.ptr, 0xAB, size);
            b.meta.set(7, 99, 0, 0);
            assert_eq!(meta_of(b.ptr).record(), 7);
            assert_eq!(meta_of(b.ptr).weight(), 99);
            free(b.ptr);
        }
    }
    let mut x = 0u8;
    assert!(!contains(&mut x));
    assert!(layout::base().is_multiple_of(class::DATA_ALIGN));
    validate().unwrap();
}

/// Frees everything it was handed on this thread, so the next test starts
/// from a thread whose cache is empty.
fn free_all(ptrs: Vec<usize>) {
    for p in ptrs {
        // SAFETY: each block is live and ours, freed once.
        unsafe { free(p as *mut u8) };
    }
}

#[test]
fn a_threads_cached_slots_come_back_when_it_exits() {
    const SIZE: usize = 50_000; // a class no other test uses
    let c = class_for(SIZE, 8).unwrap();
    std::thread::spawn(|| free_all((0..50).map(|_| alloc_free(SIZE, 8)).collect()))
        .join()
        .unwrap();
    // All 50 went back to the shared list: taking 50 more needs no fresh
    // slot.
    let used = small::used_slots(c);
    let again: Vec<_> = (0..50).map(|_| alloc_free(SIZE, 8)).collect();
    assert_eq!(small::used_slots(c), used);
    let mut unique = again.clone();
    unique.sort_unstable();
    unique.dedup();
    assert_eq!(unique.len(), 50, "no slot handed out twice");
    free_all(again);
}

#[test]
fn a_thread_that_only_allocates_gives_its_cache_back() {
    const SIZE: usize = 208; // a class no other test uses
    let c = class_for(SIZE, 8).unwrap();
    assert!(cache::cap(c) > 2);
    // Put a batch on the shared list.
    let first: Vec<_> = (0..cache::cap(c) * 2)
        .map(|_| alloc_free(SIZE, 8))
        .collect();
    std::thread::spawn(move || free_all(first)).join().unwrap();
    let used = small::used_slots(c);
    // A thread that allocates one block (its refill keeps the rest of the
    // batch in its cache) and exits without freeing anything.
    let one = std::thread::spawn(move || alloc_free(SIZE, 8))
        .join()
        .unwrap();
    // Everything but that block is still free: no fresh slot is needed.
    let again: Vec<_> = (0..cache::cap(c) * 2 - 1)
        .map(|_| alloc_free(SIZE, 8))
        .collect();
    assert_eq!(
        small::used_slots(c),
        used,
        "slots were lost with the thread"
    );
    free_all(again);
    free_all(vec![one]);
}

#[test]
fn threads_trading_slots_never_share_one() {
    // Cross-thread frees through the shared lists, for long enough to hit
    // the walk-vs-reuse race of `pop_chain` many times (it crashed within a
    // second before links were validated). The allocator-level soak runs
    // this for minutes.
    const THREADS: usize = 4;
    const BATCH: usize = 100; // more than a cache holds: refills and give-backs
    let sizes = [48usize, 48, 48, 1000];
    let until = std::time::Instant::now() + std::time::Duration::from_millis(1500);
    let (tx, rx) = std::sync::mpsc::channel::<Vec<usize>>();
    let rx = std::sync::Arc::new(std::sync::Mutex::new(rx));
    let workers: Vec<_> = (0..THREADS)
        .map(|t| {
            let tx = tx.clone();
            let rx = rx.clone();
            std::thread::spawn(move || {
                for r in 0.. {
                    if r % 64 == 0 && std::time::Instant::now() > until {
                        break;
                    }
                    let size = sizes[(t + r) % sizes.len()];
                    let batch: Vec<usize> = (0..BATCH)
                        .map(|i| {
                            let p = alloc_free(size, 8);
                            // SAFETY: the block is ours, `size` bytes long.
                            unsafe {
                                core::ptr::write_bytes(p as *mut u8, (t * BATCH + i) as u8, size)
                            };
                            p
                        })
                        .collect();
                    for (i, &p) in batch.iter().enumerate() {
                        // SAFETY: as above; nobody else holds the block.
                        let got = unsafe { *(p as *const u8).add(size - 1) };
                        assert_eq!(got, (t * BATCH + i) as u8, "a block was handed out twice");
                    }
                    tx.send(batch).unwrap();
                    let theirs = rx.lock().unwrap().try_recv();
                    if let Ok(b) = theirs {
                        free_all(b);
                    }
                }
            })
        })
        .collect();
    drop(tx);
    for w in workers {
        w.join().unwrap();
    }
    while let Ok(b) = rx.lock().unwrap().try_recv() {
        free_all(b);
    }
    validate().unwrap();
}

#[test]
fn a_block_given_back_unrecorded_can_be_served_again() {
    // A sample whose record could not be made returns its block unmarked.
    for &size in &[72usize, 300_000] {
        let b = alloc(size, 8).expect("region available");
        // SAFETY: just served, never marked live nor handed out.
        unsafe { unalloc(b.ptr) };
        let again = alloc(size, 8).expect("region available");
        if size < 1000 {
            // This thread's cache hands it out again (a large run might
            // go to another test's thread meanwhile).
            assert_eq!(again.ptr, b.ptr, "the same block comes back");
        }
        again.meta.set(1, 1, 0, 0);
        // SAFETY: live (marked above), freed once.
        unsafe { free(again.ptr) };
    }
    validate().unwrap();
}
