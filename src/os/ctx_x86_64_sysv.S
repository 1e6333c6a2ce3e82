/* SPDX-License-Identifier: MIT */
/* Context switch for x86-64, System V ABI (Linux, the BSDs, macOS).
 *
 * A suspended context is its stack pointer; the stack holds, from that
 * address up, the frame async__ctx_swap pushed:
 *
 *   sp +  0  MXCSR (4 bytes), x87 control word (2 bytes), 2 unused bytes
 *   sp +  8  r15
 *   sp + 16  r14
 *   sp + 24  r13
 *   sp + 32  r12
 *   sp + 40  rbx
 *   sp + 48  rbp
 *   sp + 56  return address
 *
 * async__ctx_make in ctx.c builds the same 64-byte frame by hand for a new
 * context, with r12 = entry, r13 = arg and the return address pointing at
 * async__ctx_trampoline; keep the two in step.
 *
 * These are the registers and control state the ABI says a call preserves.
 * Everything else (the other general registers, all of xmm0-15, the flags)
 * is caller-saved, so the compiler already assumes a call clobbers it. The
 * whole MXCSR is saved, status flags included, because masking them out
 * would cost instructions on the hottest path for no benefit.
 *
 * The swap ends with a plain ret, which the return-stack predictor always
 * gets wrong (it expects the caller in the context being left). Popping the
 * address and jumping to it, as Boost.Context does, lets the indirect
 * predictor learn the target instead, but measured on a Sapphire Rapids VM
 * it only wins a bare ping-pong (5 ns against 16): once each side returns
 * through a couple of calls after the switch it loses (29 ns against 17),
 * the return stack being left unbalanced, and in some code layouts it took
 * some 80 ns, which went away with the MXCSR and x87 instructions removed:
 * mispredicting the jump seems to cost dearly around them.
 *
 * No .note.gnu.property is emitted: a stack switch defeats the CET shadow
 * stack, so a program linking this file must not be marked as using it. */

/* ELF wants symbol types and sizes and takes .hidden; Mach-O prefixes C
 * names with an underscore and spells hidden .private_extern. */
#if defined(__APPLE__)
#define ASYNC__SYM(name) _##name
#define ASYNC__HIDDEN .private_extern
#else
#define ASYNC__SYM(name) name
#define ASYNC__HIDDEN .hidden
#endif

/* Indirect branch tracking wants an endbr64 where an indirect call may land;
 * emitted only when the compiler is asked for CET (it is a no-op elsewhere
 * but costs a few bytes of the instruction cache). */
#if defined(__CET__) && (__CET__ & 1)
#define ASYNC__ENDBR endbr64
#else
#define ASYNC__ENDBR
#endif

  .text

/* void async__ctx_swap(async__ctx *from, async__ctx *to)
 * rdi = from, rsi = to; from->sp and to->sp are at offset 0. */
  .globl ASYNC__SYM(async__ctx_swap)
  ASYNC__HIDDEN ASYNC__SYM(async__ctx_swap)
#if defined(__ELF__)
  .type async__ctx_swap, @function
#endif
  .p2align 4
ASYNC__SYM(async__ctx_swap):
  .cfi_startproc
  ASYNC__ENDBR
  pushq %rbp
  .cfi_adjust_cfa_offset 8
  .cfi_rel_offset %rbp, 0
  pushq %rbx
  .cfi_adjust_cfa_offset 8
  .cfi_rel_offset %rbx, 0
  pushq %r12
  .cfi_adjust_cfa_offset 8
  .cfi_rel_offset %r12, 0
  pushq %r13
  .cfi_adjust_cfa_offset 8
  .cfi_rel_offset %r13, 0
  pushq %r14
  .cfi_adjust_cfa_offset 8
  .cfi_rel_offset %r14, 0
  pushq %r15
  .cfi_adjust_cfa_offset 8
  .cfi_rel_offset %r15, 0
  subq $8, %rsp
  .cfi_adjust_cfa_offset 8
  stmxcsr (%rsp)
  fnstcw 4(%rsp)

  /* The switch proper. The frame on the new stack has the same layout, so
   * the unwind information above stays true and a debugger stopped below
   * this point sees the backtrace of the context being resumed. */
  movl (%rsp), %eax
  movzwl 4(%rsp), %ecx
  movq %rsp, (%rdi)
  movq (%rsi), %rsp

  /* Loading MXCSR and above all the x87 control word is slow (fldcw is
   * microcoded), and the two contexts almost always agree: compare first
   * (rax and rcx are caller-saved, free to use). The two loads sit out
   * of line, where the unwind state is the one remembered here. */
  .cfi_remember_state
  cmpl (%rsp), %eax
  jne 2f
1:
  cmpw 4(%rsp), %cx
  jne 3f
4:
  addq $8, %rsp
  .cfi_adjust_cfa_offset -8
  popq %r15
  .cfi_adjust_cfa_offset -8
  .cfi_restore %r15
  popq %r14
  .cfi_adjust_cfa_offset -8
  .cfi_restore %r14
  popq %r13
  .cfi_adjust_cfa_offset -8
  .cfi_restore %r13
  popq %r12
  .cfi_adjust_cfa_offset -8
  .cfi_restore %r12
  popq %rbx
  .cfi_adjust_cfa_offset -8
  .cfi_restore %rbx
  popq %rbp
  .cfi_adjust_cfa_offset -8
  .cfi_restore %rbp
  ret
2:
  .cfi_restore_state
  ldmxcsr (%rsp)
  jmp 1b
3:
  fldcw 4(%rsp)
  jmp 4b
  .cfi_endproc
#if defined(__ELF__)
  .size async__ctx_swap, . - async__ctx_swap
#endif

/* Where the first swap into a new context "returns" to. async__ctx_make
 * left entry in r12, arg in r13 and rbp = 0 (which ends frame-pointer
 * walks here). The ret that brought us here popped the frame's last slot,
 * and async__ctx_make puts that frame 64 bytes below a 16-byte aligned top,
 * so rsp is 16-byte aligned now, as the ABI requires at a call. */
  .globl ASYNC__SYM(async__ctx_trampoline)
  ASYNC__HIDDEN ASYNC__SYM(async__ctx_trampoline)
#if defined(__ELF__)
  .type async__ctx_trampoline, @function
#endif
  .p2align 4
ASYNC__SYM(async__ctx_trampoline):
  .cfi_startproc
  /* Nothing called us: tell unwinders this is the outermost frame. */
  .cfi_undefined %rip
  movq %r13, %rdi
  callq *%r12
  /* An entry function must end by switching away for good; returning
   * would run off the top of the stack, so stop here instead. */
  ud2
  .cfi_endproc
#if defined(__ELF__)
  .size async__ctx_trampoline, . - async__ctx_trampoline
#endif

#if defined(__ELF__)
  .section .note.GNU-stack, "", @progbits
#endif
