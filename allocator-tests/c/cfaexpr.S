/* A frame whose CFA is given by a DWARF expression (DW_CFA_def_cfa_expression,
 * as GCC emits after dynamic stack realignment), calling back into Rust.
 * memprof's cached DWARF unwinder cannot cache such a rule and must hand
 * the stack to libgcc, which evaluates it (tests/unwind_dwarf.rs).
 * memprof_test_cfaexpr_call(f, n) calls f(n). */
    .text
    .globl memprof_test_cfaexpr_call
    .type memprof_test_cfaexpr_call, @function
memprof_test_cfaexpr_call:
    .cfi_startproc
    pushq %rbx
    /* CFA = rsp + 16, as an expression: DW_OP_breg7 (rsp) 16. */
    .cfi_escape 0x0f, 0x02, 0x77, 0x10
    .cfi_offset %rbx, -16
    movq %rdi, %rax
    movq %rsi, %rdi
    call *%rax
    popq %rbx
    .cfi_def_cfa %rsp, 8
    ret
    .cfi_endproc
    .size memprof_test_cfaexpr_call, .-memprof_test_cfaexpr_call
    .section .note.GNU-stack,"",@progbits
