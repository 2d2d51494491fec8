/* Foreign code with no unwind information at all (built with
 * -fno-asynchronous-unwind-tables -fno-unwind-tables), calling back into
 * Rust: a DWARF unwinder finds no CFI for this frame and must stop there,
 * cleanly, and mark the stack as cut (tests/unwind_dwarf.rs). */
#include <stdint.h>

typedef void (*callback_t)(uint64_t);

__attribute__((noinline)) uint64_t memprof_test_nocfi_call(callback_t f, uint64_t n) {
    volatile uint64_t keep = n * 7;
    f(keep);
    return keep + 1;
}
