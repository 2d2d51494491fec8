/* LD_PRELOAD shim for tests/region_misuse.rs: every large PROT_NONE
 * mapping (memprof's reservation of its sampled-block region, 8 GiB or
 * more) comes back at an address 4 KiB past a 64 KiB boundary, as kernels
 * before 6.7 (no THP alignment of large anonymous mappings) may return it.
 * Says so once on stderr, so the test knows the shim was used. Calls the
 * system call directly: never allocates or recurses into the allocator. */
#define _GNU_SOURCE
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <unistd.h>

#define ALIGN ((uintptr_t)64 * 1024)

static void say(uintptr_t base) {
    char msg[] = "offset_mmap: reservation at 0x0000000000000000\n";
    char *d = msg + strlen("offset_mmap: reservation at 0x");
    for (int i = 0; i < 16; i++) {
        d[i] = "0123456789abcdef"[(base >> (60 - 4 * i)) & 0xf];
    }
    ssize_t r = write(2, msg, sizeof msg - 1);
    (void)r;
}

void *mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off) {
    if (addr == NULL && prot == PROT_NONE && len >= ((size_t)1 << 33)) {
        long raw = syscall(SYS_mmap, NULL, len + 2 * ALIGN, prot, flags, fd, off);
        if (raw == -1) {
            return MAP_FAILED;
        }
        uintptr_t base = (((uintptr_t)raw + ALIGN - 1) & ~(ALIGN - 1)) + 4096;
        say(base);
        return (void *)base;
    }
    return (void *)syscall(SYS_mmap, addr, len, prot, flags, fd, off);
}
