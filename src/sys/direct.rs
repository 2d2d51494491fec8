//! Statics the fast paths read without the GOT.
//!
//! Code inlined into the program's `__rust_alloc` and `__rust_dealloc`
//! (the `Sampled` fast paths) lives in the program's crate, and a static of
//! memprof is, to it, a static of another crate: LLVM reaches it through
//! the GOT, one load of its address and then the load of the value
//! (position-independent code cannot assume another crate's data is in the
//! same module, and the linker does not turn these loads back into an
//! address). That was one instruction of the eight on the allocation fast
//! path (the rate floor) and one of the seven on the free path (the
//! region's bounds).
//!
//! On x86-64 such a static is instead a symbol of our own in `.bss`, hidden
//! (never exported, so never preempted, in an executable or a shared
//! library alike) and named with the crate version (two versions of
//! memprof in one program do not collide), and its address is one
//! `lea [rip + symbol]`, which LLVM then folds into the instructions that
//! read it (`cmp reg, [addr]`). Elsewhere, and under loom, it is a plain
//! `static`.
//!
//! Invariant: the memory is zero-filled at start (`.bss`), as the plain
//! static's `new(0)` is, lives for the whole program, and is only reached
//! through the accessor, as the atomic type it is declared with.

/// `direct_static!(fn name() -> Type, "symbol");` defines `fn name() ->
/// &'static Type`, a zero-initialised static of `Type` (an atomic, or a
/// `#[repr(C)]` struct of atomics: anything valid when all zero and `Sync`)
/// reached without the GOT on x86-64.
///
/// `direct_static!(fn name() -> Type = [w0, w1, ...], "symbol");` is the
/// same with the static's initial 64-bit words given (in `.data`): `Type`
/// must be exactly that many words, and valid with those bits.
macro_rules! direct_static {
    ($(#[$meta:meta])* $vis:vis fn $name:ident() -> $ty:ty, $sym:literal) => {
        #[cfg(all(target_arch = "x86_64", not(memprof_loom)))]
        core::arch::global_asm!(
            $crate::sys::direct::direct_static!(@head $sym, "bss", "@nobits"),
            ".zero {size}",
            ".popsection",
            size = const core::mem::size_of::<$ty>(),
        );
        // SAFETY (of the fallback's initial value): `$ty` is valid all zero
        // (the macro's contract).
        $crate::sys::direct::direct_static!(@accessor $(#[$meta])* $vis fn $name() -> $ty,
            $sym, unsafe { core::mem::zeroed() });
    };
    ($(#[$meta:meta])* $vis:vis fn $name:ident() -> $ty:ty = [$($w:expr),+ $(,)?], $sym:literal) => {
        const _: () = assert!(
            core::mem::size_of::<$ty>() == 8 * [$($w as u64),+].len(),
            "one initial word per 8 bytes of the type"
        );
        #[cfg(all(target_arch = "x86_64", not(memprof_loom)))]
        core::arch::global_asm!(
            $crate::sys::direct::direct_static!(@head $sym, "data", "@progbits"),
            $(".quad {}", $crate::sys::direct::direct_static!(@ignore $w),)+
            ".popsection",
            $(const $w as u64,)+
            size = const core::mem::size_of::<$ty>(),
        );
        // SAFETY (of the fallback's initial value): `$ty` is as many
        // words as given and valid with their bits (the macro's contract).
        $crate::sys::direct::direct_static!(@accessor $(#[$meta])* $vis fn $name() -> $ty,
            $sym, unsafe { core::mem::transmute::<[u64; [$($w as u64),+].len()], $ty>([$($w as u64),+]) });
    };
    (@ignore $w:expr) => { "" };
    // The symbol's section, alignment, visibility and size (`{size}`), up
    // to its label: the lines both kinds of static share.
    (@head $sym:literal, $section:literal, $kind:literal) => {
        concat!(
            ".pushsection .", $section, ".", $sym, ",\"aw\",", $kind, "\n",
            ".p2align 7\n",
            ".globl ", $sym, "\n",
            ".hidden ", $sym, "\n",
            ".type ", $sym, ", @object\n",
            ".size ", $sym, ", {size}\n",
            $sym, ":"
        )
    };
    (@accessor $(#[$meta:meta])* $vis:vis fn $name:ident() -> $ty:ty, $sym:literal, $init:expr) => {
        $(#[$meta])*
        #[inline(always)]
        $vis fn $name() -> &'static $ty {
            #[cfg(all(target_arch = "x86_64", not(memprof_loom)))]
            {
                let p: *const $ty;
                // SAFETY: computes the symbol's address; reads nothing.
                unsafe {
                    core::arch::asm!(
                        concat!("lea {p}, [rip + ", $sym, "]"),
                        p = out(reg) p,
                        options(pure, nomem, nostack, preserves_flags),
                    );
                }
                // The symbol is `size_of::<$ty>()` 128-aligned bytes holding
                // the macro's initial value, live for the whole program.
                // SAFETY: only reached here, as a `$ty` (valid with those bits, `Sync`).
                unsafe { &*p }
            }
            #[cfg(not(all(target_arch = "x86_64", not(memprof_loom))))]
            {
                // The initial value is checked at the macro's arms.
                static STATIC: $ty = $init;
                &STATIC
            }
        }
    };
}

/// `direct_load!("symbol")`: the word at a `direct_static!` symbol, read
/// with one `mov` from a RIP-relative address (x86-64 only). For a fast
/// path that would otherwise read it through `lea` and then a load: LLVM
/// does not fold an atomic load into the instruction that uses it, so the
/// accessor costs two instructions where this costs one. A plain load on
/// x86-64 has acquire order, as the atomic load it replaces at most did.
#[cfg(all(target_arch = "x86_64", not(memprof_loom)))]
macro_rules! direct_load {
    ($sym:literal) => {{
        let v: usize;
        // SAFETY: reads the first word of a `direct_static!` symbol:
        // aligned, always mapped, and only ever written as an atomic.
        unsafe {
            core::arch::asm!(
                concat!("mov {v}, qword ptr [rip + ", $sym, "]"),
                v = out(reg) v,
                options(nostack, readonly, preserves_flags),
            );
        }
        v
    }};
}

#[cfg(all(target_arch = "x86_64", not(memprof_loom)))]
pub(crate) use direct_load;
pub(crate) use direct_static;

#[cfg(test)]
mod tests {
    use core::sync::atomic::{AtomicU64, Ordering};

    #[repr(C)]
    struct Pair {
        a: AtomicU64,
        b: AtomicU64,
    }

    direct_static!(fn word() -> AtomicU64, "memprof_0_1_test_word");
    direct_static!(fn pair() -> Pair, "memprof_0_1_test_pair");
    direct_static!(fn given() -> Pair = [3, 0xffff_8000_0000_0000], "memprof_0_1_test_given");

    #[test]
    fn initial_words() {
        assert_eq!(given().a.load(Ordering::Relaxed), 3);
        assert_eq!(given().b.load(Ordering::Relaxed), 0xffff_8000_0000_0000);
        assert_eq!(given() as *const Pair as usize % 128, 0, "aligned");
    }

    #[test]
    fn zeroed_shared_and_distinct() {
        assert_eq!(word().load(Ordering::Relaxed), 0);
        assert_eq!(pair().b.load(Ordering::Relaxed), 0);
        word().store(7, Ordering::Relaxed);
        pair().a.store(9, Ordering::Relaxed);
        std::thread::spawn(|| {
            assert_eq!(
                word().load(Ordering::Relaxed),
                7,
                "one word for all threads"
            );
            pair().b.store(11, Ordering::Relaxed);
        })
        .join()
        .unwrap();
        assert_eq!(pair().b.load(Ordering::Relaxed), 11);
        assert_eq!(word().load(Ordering::Relaxed), 7, "the pair is elsewhere");
        assert_eq!(core::ptr::from_ref(word()), core::ptr::from_ref(word()));
        assert_eq!(word() as *const AtomicU64 as usize % 128, 0, "aligned");
    }
}
