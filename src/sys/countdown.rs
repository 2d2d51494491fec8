//! The thread's sample countdown: one word of thread-local storage that
//! the allocation fast path reads and writes on every allocation.
//!
//! Why not `thread_local!`: its accessor is a closure behind a function
//! pointer, which LLVM inlines into the fast path only when the two land in
//! one codegen unit (or after ThinLTO imports it). In a default release
//! build they often do not: the churn benchmark's `Vec::with_capacity`
//! then called the accessor out of line, and the extra size kept std's
//! `RawVecInner::try_allocate_in` from being inlined into the loop, 79
//! instructions an op over a forwarding wrapper instead of 15 (the same
//! code with `codegen-units = 1`). On x86-64 the word is a symbol in the
//! static TLS block (`.tbss`, defined below) and the fast path reaches it
//! with inline assembly, which is always inlined: one load of its offset
//! (the linker turns the GOT load of an executable into an immediate), one
//! subtract from memory, one load of the result. Elsewhere, and under loom, it is a
//! `thread_local!`.
//!
//! Invariants: the word is 0 when a thread starts (`.tbss` is zero-filled,
//! as `const { Cell::new(0) }` was), is only ever touched by its own thread,
//! and stays valid through the thread's TLS destructors (static TLS lives
//! as long as the thread), so no access can fail.

#[cfg(all(target_arch = "x86_64", not(memprof_loom)))]
mod imp {
    // The countdown, 8 bytes of static TLS. Hidden (never exported) and
    // named with the crate version, so two versions of memprof in one
    // program do not collide.
    core::arch::global_asm!(
        ".pushsection .tbss.memprof_0_1_countdown,\"awT\",@nobits",
        ".p2align 3",
        ".globl memprof_0_1_countdown",
        ".hidden memprof_0_1_countdown",
        ".type memprof_0_1_countdown, @object",
        ".size memprof_0_1_countdown, 8",
        "memprof_0_1_countdown:",
        ".zero 8",
        ".popsection",
    );

    /// Subtracts `size` from the countdown; the new value.
    #[inline(always)]
    pub(crate) fn sub(size: usize) -> i64 {
        let n: i64;
        // SAFETY: reads and writes this thread's own countdown word, which
        // exists for the thread's whole life (static TLS); the initial-exec
        // offset comes from the GOT. Touches no other memory and no stack.
        unsafe {
            core::arch::asm!(
                "mov {off}, qword ptr [rip + memprof_0_1_countdown@GOTTPOFF]",
                "sub qword ptr fs:[{off}], {size}",
                "mov {n}, qword ptr fs:[{off}]",
                off = out(reg) _,
                n = out(reg) n,
                size = in(reg) size,
                options(nostack),
            );
        }
        n
    }

    /// The countdown.
    #[inline]
    pub(crate) fn get() -> i64 {
        let n: i64;
        // SAFETY: as in `sub`; reads only.
        unsafe {
            core::arch::asm!(
                "mov {off}, qword ptr [rip + memprof_0_1_countdown@GOTTPOFF]",
                "mov {n}, qword ptr fs:[{off}]",
                off = out(reg) _,
                n = out(reg) n,
                options(nostack, readonly, preserves_flags),
            );
        }
        n
    }

    /// Sets the countdown.
    #[inline]
    pub(crate) fn set(value: i64) {
        // SAFETY: as in `sub`; writes only this thread's word.
        unsafe {
            core::arch::asm!(
                "mov {off}, qword ptr [rip + memprof_0_1_countdown@GOTTPOFF]",
                "mov qword ptr fs:[{off}], {v}",
                off = out(reg) _,
                v = in(reg) value,
                options(nostack, preserves_flags),
            );
        }
    }
}

#[cfg(not(all(target_arch = "x86_64", not(memprof_loom))))]
mod imp {
    use core::cell::Cell;

    std::thread_local! {
        static NEXT: Cell<i64> = const { Cell::new(0) };
    }

    /// Subtracts `size` from the countdown; the new value.
    #[inline(always)]
    pub(crate) fn sub(size: usize) -> i64 {
        NEXT.with(|next| {
            let n = next.get().wrapping_sub(size as i64);
            next.set(n);
            n
        })
    }

    /// The countdown.
    #[inline]
    pub(crate) fn get() -> i64 {
        NEXT.try_with(Cell::get).unwrap_or(0)
    }

    /// Sets the countdown.
    #[inline]
    pub(crate) fn set(value: i64) {
        let _ = NEXT.try_with(|n| n.set(value));
    }
}

pub(crate) use imp::{get, set, sub};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_thread_and_zero_at_start() {
        // Nothing between these lines allocates (were `Sampled` the
        // allocator, its fast path would move the word).
        let before = get();
        set(1000);
        let a = sub(16);
        let b = get();
        let c = sub(usize::MAX);
        set(before);
        assert_eq!((a, b, c), (984, 984, 985), "subtract, read, wrap");
        std::thread::spawn(|| {
            let start = get();
            set(5);
            let five = get();
            assert_eq!((start, five), (0, 5), "a new thread starts at 0");
        })
        .join()
        .unwrap();
        assert_eq!(get(), before, "another thread's writes stay in its word");
    }
}
