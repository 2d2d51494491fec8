//! The unsafe core, and nothing else.
//!
//! Everything here works on raw memory obtained straight from the OS, never
//! through the profiled allocator, and is reachable from `alloc`/`dealloc`:
//! no function here allocates through the global allocator, panics, or
//! blocks on a lock that can be held while its holder allocates.
//!
//! | module | offers its safe callers |
//! |---|---|
//! | `os` | `mmap`/`mprotect`/`madvise` wrappers that report failure as `None`/`false` |
//! | `countdown` | the thread's sample countdown: one word of static TLS the fast path reaches inline |
//! | `direct` | statics the fast paths reach without the GOT (the rate floor, the region's bounds) |
//! | `lock` | a spin lock that is safe to hold across `fork` (see `crate::fork`) |
//! | `membarrier` | the heavy side of an asymmetric fence (`membarrier(2)`), and whether it works here |
//! | `arena` | bounded bump memory for the profiler's own tables; null when full |
//! | `index` | a hash index from 32-bit hashes to ids with lock-free lookups |
//! | `table` | append-only tables with lock-free lookups (stacks, records) |
//! | `region` | the reserved address range that serves sampled blocks, and its per-block metadata |
//! | `frames` | a frame-pointer walk that never reads outside the thread's stack |
//! | `cfi` | the unwind rule of a code address, read from its module's `.eh_frame` |
//! | `dwarf` | a stack walk by cached CFI rules, bounded like `frames` |
//! | `proc` | RSS from the kernel, and the inner allocators' statistics (glibc, jemalloc, mimalloc) |

pub(crate) mod arena;
pub(crate) mod cfi;
pub(crate) mod countdown;
pub(crate) mod direct;
pub(crate) mod dwarf;
pub(crate) mod frames;
pub(crate) mod index;
pub(crate) mod lock;
pub(crate) mod membarrier;
pub(crate) mod os;
pub(crate) mod proc;
pub(crate) mod region;
pub(crate) mod table;
