/* Foreign code without frame pointers (built with -fomit-frame-pointer),
 * calling back into Rust: the frame-pointer walker must survive it. The
 * arithmetic keeps several registers busy, so the compiler may use rbp as
 * a general register and leave anything in it. */
#include <stdint.h>

typedef void (*callback_t)(uint64_t);

__attribute__((noinline)) uint64_t memprof_test_nofp_call(callback_t f, uint64_t n) {
    uint64_t a = n, b = n * 3, c = n ^ 0x55, d = n + 7, e = n * n, g = n >> 1, h = ~n;
    for (uint64_t i = 0; i < n; i++) {
        a += b ^ i; b += c * i; c ^= d + i; d += e; e ^= g; g += h; h ^= a;
    }
    f(a ^ b ^ c ^ d ^ e ^ g ^ h);
    return a + b + c + d + e + g + h;
}
