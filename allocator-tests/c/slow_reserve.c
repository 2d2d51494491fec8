/* LD_PRELOAD shim for the fork tests (tests/fork.rs): makes every large
 * PROT_NONE mapping (memprof's reservation of its sampled-block region,
 * 8 GiB or more) take 100 ms longer, so that a fork can be aimed at the
 * moment a thread is reserving the region. Everything else is an ordinary
 * mmap. It calls the system call directly, so it never allocates or
 * recurses into the allocator. */
#define _GNU_SOURCE
#include <stddef.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

void *mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off) {
    if (prot == PROT_NONE && len >= ((size_t)1 << 33)) {
        struct timespec ts = {0, 100 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    return (void *)syscall(SYS_mmap, addr, len, prot, flags, fd, off);
}
