//! What the kernel and the C allocators say about this process's memory:
//! resident set size, and the inner allocators' own statistics.
//!
//! Nothing here allocates through the global allocator, panics or takes a
//! lock of ours: `rss_bytes` and `peak_rss_bytes` are also called from the
//! sample slow path (the `MEMPROF_TRACE` line). Failures are `None`.
//!
//! The allocators' statistics functions are found at run time, so that a
//! build without them links and simply gets `None`:
//!
//! - glibc's `mallinfo2` with `dlsym`: libc is a shared library, so its
//!   symbols are in the dynamic symbol table (musl has no `mallinfo2`).
//! - jemalloc's `_rjem_mallctl` (tikv-jemallocator) and mimalloc's
//!   `mi_process_info` are linked statically into the executable, whose
//!   symbols are *not* in the dynamic symbol table (`dlsym` finds nothing
//!   without `-rdynamic`). They are referenced as *weak* symbols instead
//!   (`global_asm!` below): the linker resolves them to the allocator's
//!   functions when the allocator is linked in, and to 0 when it is not.
//!   `dlsym` is tried second, for an allocator in a shared library.

use core::ffi::{c_char, c_int, c_void, CStr};

/// Reads the whole of a small `/proc` file into `buf`; its length.
fn read_proc(path: &CStr, buf: &mut [u8]) -> Option<usize> {
    // SAFETY: `path` is NUL-terminated; the descriptor is closed below.
    let fd = unsafe { libc::open(path.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) };
    if fd < 0 {
        return None;
    }
    let mut len = 0;
    while len < buf.len() {
        let rest = &mut buf[len..];
        // SAFETY: `rest` is a valid writable buffer of the given length.
        let n = unsafe { libc::read(fd, rest.as_mut_ptr().cast(), rest.len()) };
        if n <= 0 {
            break;
        }
        len += n as usize;
    }
    // SAFETY: `fd` is ours and open.
    unsafe { libc::close(fd) };
    Some(len)
}

/// The `index`-th (from 0) space-separated decimal field of `text`.
pub(crate) fn field(text: &[u8], index: usize) -> Option<u64> {
    let f = text
        .split(|b| b.is_ascii_whitespace())
        .filter(|f| !f.is_empty())
        .nth(index)?;
    let mut n: u64 = 0;
    if f.is_empty() {
        return None;
    }
    for &b in f {
        if !b.is_ascii_digit() {
            return None;
        }
        n = n.checked_mul(10)?.checked_add(u64::from(b - b'0'))?;
    }
    Some(n)
}

/// Resident set size now, from `/proc/self/statm` (pages resident × page
/// size): what the kernel counts as this process's memory in RAM.
pub(crate) fn rss_bytes() -> Option<u64> {
    let mut buf = [0u8; 128];
    let len = read_proc(c"/proc/self/statm", &mut buf)?;
    let pages = field(&buf[..len], 1)?;
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if page <= 0 {
        return None;
    }
    pages.checked_mul(page as u64)
}

/// The highest resident set size so far (`getrusage`'s `ru_maxrss`). The
/// kernel sums its per-CPU counters approximately here, so it can trail
/// `rss_bytes` by a few hundred KiB.
pub(crate) fn peak_rss_bytes() -> Option<u64> {
    // SAFETY: all-zero is a valid `rusage`.
    let mut ru: libc::rusage = unsafe { core::mem::zeroed() };
    // SAFETY: `ru` is a valid out-pointer.
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) } != 0 {
        return None;
    }
    u64::try_from(ru.ru_maxrss).ok()?.checked_mul(1024)
}

/// glibc's `struct mallinfo2` (glibc 2.33 and later).
#[repr(C)]
#[derive(Default)]
struct Mallinfo2 {
    arena: usize,
    ordblks: usize,
    smblks: usize,
    hblks: usize,
    hblkhd: usize,
    usmblks: usize,
    fsmblks: usize,
    uordblks: usize,
    fordblks: usize,
    keepcost: usize,
}

/// What glibc's malloc says: (bytes in use, bytes it holds from the OS).
/// In use is `uordblks + hblkhd`: the chunks handed out (with their 8-byte
/// headers and rounding, and those parked in the per-thread caches) plus
/// the blocks it served with their own `mmap`. Held is `arena + hblkhd`.
/// `None` without `mallinfo2` (musl, glibc before 2.33).
pub(crate) fn glibc_mallinfo() -> Option<(u64, u64)> {
    // SAFETY: the name is NUL-terminated; RTLD_DEFAULT searches the
    // loaded objects.
    let f = unsafe { libc::dlsym(libc::RTLD_DEFAULT, c"mallinfo2".as_ptr()) };
    if f.is_null() {
        return None;
    }
    // SAFETY: glibc's `mallinfo2` has exactly this signature (it returns
    // the struct by value), and the symbol found is that function.
    let mallinfo2: extern "C" fn() -> Mallinfo2 = unsafe { core::mem::transmute(f) };
    let m = mallinfo2();
    let in_use = m.uordblks as u64 + m.hblkhd as u64;
    Some((in_use, m.arena as u64 + m.hblkhd as u64))
}

type Mallctl =
    unsafe extern "C" fn(*const c_char, *mut c_void, *mut usize, *mut c_void, usize) -> c_int;
type MiProcessInfo = unsafe extern "C" fn(
    *mut usize,
    *mut usize,
    *mut usize,
    *mut usize,
    *mut usize,
    *mut usize,
    *mut usize,
    *mut usize,
);

// Weak references to the statically linked allocators' statistics
// functions: each slot holds the function's address, or 0 when no object
// of the link defines it. The slots are hidden (never exported) and named
// with the crate version, so two versions of memprof in one program do
// not collide.
core::arch::global_asm!(
    ".weak _rjem_mallctl",
    ".weak mi_process_info",
    ".pushsection .data.rel.ro.memprof_weak_allocators,\"aw\",%progbits",
    ".p2align 3",
    ".globl memprof_0_1_weak_rjem_mallctl",
    ".hidden memprof_0_1_weak_rjem_mallctl",
    "memprof_0_1_weak_rjem_mallctl:",
    ".quad _rjem_mallctl",
    ".globl memprof_0_1_weak_mi_process_info",
    ".hidden memprof_0_1_weak_mi_process_info",
    "memprof_0_1_weak_mi_process_info:",
    ".quad mi_process_info",
    ".popsection",
);

extern "C" {
    static memprof_0_1_weak_rjem_mallctl: usize;
    static memprof_0_1_weak_mi_process_info: usize;
}

/// The address of a function: the weak slot's, else `dlsym`'s.
fn lookup(weak: usize, name: &CStr) -> Option<usize> {
    if weak != 0 {
        return Some(weak);
    }
    // SAFETY: the name is NUL-terminated.
    let f = unsafe { libc::dlsym(libc::RTLD_DEFAULT, name.as_ptr()) };
    (!f.is_null()).then_some(f as usize)
}

/// Reads one `size_t` statistic through jemalloc's `mallctl`.
fn mallctl_usize(mallctl: Mallctl, name: &CStr) -> Option<u64> {
    let mut v: usize = 0;
    let mut len = core::mem::size_of::<usize>();
    // SAFETY: `name` is NUL-terminated; `v` and `len` are valid out-
    // pointers of the size the statistic has (`size_t`); nothing is written.
    let rc = unsafe {
        mallctl(
            name.as_ptr(),
            (&mut v as *mut usize).cast(),
            &mut len,
            core::ptr::null_mut(),
            0,
        )
    };
    (rc == 0 && len == core::mem::size_of::<usize>()).then_some(v as u64)
}

/// What jemalloc (tikv-jemallocator's `_rjem_` build) says, after
/// refreshing its statistics (`epoch`): (`stats.allocated`,
/// `stats.resident`). `None` when jemalloc is not linked in or was built
/// without statistics (tikv-jemallocator's `stats` feature).
pub(crate) fn jemalloc_stats() -> Option<(u64, Option<u64>)> {
    // SAFETY: a plain read of an address-sized slot defined above.
    let weak = unsafe { memprof_0_1_weak_rjem_mallctl };
    let f = lookup(weak, c"_rjem_mallctl")?;
    // SAFETY: `_rjem_mallctl` is jemalloc's `mallctl`, of this signature.
    let mallctl: Mallctl = unsafe { core::mem::transmute(f) };
    let mut epoch: u64 = 1;
    let mut len = core::mem::size_of::<u64>();
    // SAFETY: "epoch" reads and writes a `uint64_t`; the pointers are valid.
    unsafe {
        mallctl(
            c"epoch".as_ptr(),
            (&mut epoch as *mut u64).cast(),
            &mut len,
            (&mut epoch as *mut u64).cast(),
            core::mem::size_of::<u64>(),
        )
    };
    let allocated = mallctl_usize(mallctl, c"stats.allocated")?;
    Some((allocated, mallctl_usize(mallctl, c"stats.resident")))
}

/// What mimalloc says (`mi_process_info`): the bytes it has committed.
/// mimalloc keeps no in-use byte count in its release builds. `None` when
/// mimalloc is not linked in.
pub(crate) fn mimalloc_committed() -> Option<u64> {
    // SAFETY: a plain read of an address-sized slot defined above.
    let weak = unsafe { memprof_0_1_weak_mi_process_info };
    let f = lookup(weak, c"mi_process_info")?;
    // SAFETY: `mi_process_info` has this signature in mimalloc 1, 2 and 3.
    let info: MiProcessInfo = unsafe { core::mem::transmute(f) };
    let mut v = [0usize; 8];
    let p = v.as_mut_ptr();
    // SAFETY: eight valid, distinct out-pointers.
    unsafe {
        info(
            p,
            p.add(1),
            p.add(2),
            p.add(3),
            p.add(4),
            p.add(5),
            p.add(6),
            p.add(7),
        )
    };
    Some(v[5] as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_parse() {
        assert_eq!(field(b"123 456 7\n", 1), Some(456));
        assert_eq!(field(b"  1   2", 1), Some(2));
        assert_eq!(field(b"1 x 3", 1), None);
        assert_eq!(field(b"1", 1), None);
    }

    #[test]
    fn rss_is_read_and_grows_when_pages_are_touched() {
        let before = rss_bytes().unwrap();
        assert!(before > 0);
        let mut v = vec![0u8; 64 << 20];
        for i in (0..v.len()).step_by(4096) {
            v[i] = 1;
        }
        let after = rss_bytes().unwrap();
        // 64 MiB touched; a test running beside this one may give back up
        // to 32 MiB meanwhile (`glibc_reports_a_large_block_in_use`).
        assert!(after >= before + (30 << 20), "{before} -> {after}");
        let peak = peak_rss_bytes().unwrap();
        // The kernel sums its per-CPU RSS counters approximately for
        // `ru_maxrss`: it may trail `statm` by a little (150 KiB seen).
        assert!(peak + (4 << 20) >= after, "peak {peak} < {after}");
        std::hint::black_box(&v);
    }

    #[test]
    fn glibc_reports_a_large_block_in_use() {
        let (before, _) = glibc_mallinfo().unwrap();
        let v = std::hint::black_box(vec![1u8; 32 << 20]);
        let (after, held) = glibc_mallinfo().unwrap();
        assert!(after >= before + (32 << 20), "{before} -> {after}");
        assert!(held >= after);
        drop(v);
    }

    #[test]
    fn allocators_not_linked_are_none() {
        // The library's tests link neither jemalloc with `_rjem_` nor
        // mimalloc... unless the dev-dependencies pull them in; either way
        // the call must not crash and must be consistent with the slot.
        // SAFETY: plain reads of the slots.
        let (je, mi) = unsafe {
            (
                memprof_0_1_weak_rjem_mallctl,
                memprof_0_1_weak_mi_process_info,
            )
        };
        if je == 0 {
            assert!(jemalloc_stats().is_none());
        }
        if mi == 0 {
            assert!(mimalloc_committed().is_none());
        }
    }
}
