/* SPDX-License-Identifier: MIT */
/* Context switch for AArch64, AAPCS64 (Linux, the BSDs, macOS).
 *
 * A suspended context is its stack pointer; the stack holds, from that
 * address up, the 176-byte frame async__ctx_swap stored:
 *
 *   sp +   0  x19, x20
 *   sp +  16  x21, x22
 *   sp +  32  x23, x24
 *   sp +  48  x25, x26
 *   sp +  64  x27, x28
 *   sp +  80  x29 (frame pointer), x30 (return address)
 *   sp +  96  d8,  d9
 *   sp + 112  d10, d11
 *   sp + 128  d12, d13
 *   sp + 144  d14, d15
 *   sp + 160  FPCR, 8 unused bytes (sp must stay 16-byte aligned)
 *
 * async__ctx_make in ctx.c builds the same frame by hand for a new context,
 * with x19 = entry, x20 = arg and x30 pointing at async__ctx_trampoline;
 * keep the two in step.
 *
 * These are the registers and control state the ABI says a call preserves:
 * only the low 64 bits of v8-v15 are callee-saved, and x18, the platform
 * register, is left alone. FPSR (the sticky exception flags) is
 * caller-saved and not switched. */

/* Mach-O prefixes C names with an underscore and spells hidden
 * .private_extern; ELF wants symbol types and sizes and takes .hidden. */
#if defined(__APPLE__)
#define ASYNC__SYM(name) _##name
#define ASYNC__HIDDEN .private_extern
#else
#define ASYNC__SYM(name) name
#define ASYNC__HIDDEN .hidden
#endif

  .text

/* The frame is 176 bytes: each pair is stored at [sp, #off], which the
 * unwinder finds at off - 176 from the canonical frame address. */
  .macro save_pair ra, rb, off
  stp \ra, \rb, [sp, #\off]
  .cfi_offset \ra, \off - 176
  .cfi_offset \rb, \off - 168
  .endm

  .macro load_pair ra, rb, off
  ldp \ra, \rb, [sp, #\off]
  .endm

/* void async__ctx_swap(async__ctx *from, async__ctx *to)
 * x0 = from, x1 = to; from->sp and to->sp are at offset 0. */
  .globl ASYNC__SYM(async__ctx_swap)
  ASYNC__HIDDEN ASYNC__SYM(async__ctx_swap)
#if defined(__ELF__)
  .type async__ctx_swap, %function
#endif
  .p2align 4
ASYNC__SYM(async__ctx_swap):
  .cfi_startproc
  sub sp, sp, #176
  .cfi_def_cfa_offset 176
  save_pair x19, x20, 0
  save_pair x21, x22, 16
  save_pair x23, x24, 32
  save_pair x25, x26, 48
  save_pair x27, x28, 64
  save_pair x29, x30, 80
  save_pair d8, d9, 96
  save_pair d10, d11, 112
  save_pair d12, d13, 128
  save_pair d14, d15, 144
  mrs x9, fpcr
  str x9, [sp, #160]

  /* The switch proper. The frame on the new stack has the same layout, so
   * the unwind information above stays true and a debugger stopped below
   * this point sees the backtrace of the context being resumed. */
  mov x10, sp
  str x10, [x0]
  ldr x10, [x1]
  mov sp, x10

  /* Writing FPCR can stall the pipeline on some cores, and it nearly always
   * holds the same value in both contexts: write it only when it differs.
   * x9 still holds the value of the context being left. */
  ldr x10, [sp, #160]
  cmp x9, x10
  b.eq 1f
  msr fpcr, x10
1:
  load_pair d8, d9, 96
  load_pair d10, d11, 112
  load_pair d12, d13, 128
  load_pair d14, d15, 144
  load_pair x19, x20, 0
  load_pair x21, x22, 16
  load_pair x23, x24, 32
  load_pair x25, x26, 48
  load_pair x27, x28, 64
  load_pair x29, x30, 80
  add sp, sp, #176
  .cfi_def_cfa_offset 0
  .cfi_restore x19
  .cfi_restore x20
  .cfi_restore x21
  .cfi_restore x22
  .cfi_restore x23
  .cfi_restore x24
  .cfi_restore x25
  .cfi_restore x26
  .cfi_restore x27
  .cfi_restore x28
  .cfi_restore x29
  .cfi_restore x30
  .cfi_restore d8
  .cfi_restore d9
  .cfi_restore d10
  .cfi_restore d11
  .cfi_restore d12
  .cfi_restore d13
  .cfi_restore d14
  .cfi_restore d15
  ret
  .cfi_endproc
#if defined(__ELF__)
  .size async__ctx_swap, . - async__ctx_swap
#endif

/* Where the first swap into a new context "returns" to. async__ctx_make
 * left entry in x19, arg in x20 and x29 = 0 (which ends frame-pointer walks
 * here), and put the frame right under a 16-byte aligned top, so sp is that
 * aligned top once the swap has popped the frame. */
  .globl ASYNC__SYM(async__ctx_trampoline)
  ASYNC__HIDDEN ASYNC__SYM(async__ctx_trampoline)
#if defined(__ELF__)
  .type async__ctx_trampoline, %function
#endif
  .p2align 4
ASYNC__SYM(async__ctx_trampoline):
  .cfi_startproc
  /* Nothing called us: tell unwinders this is the outermost frame. */
  .cfi_undefined x30
  mov x0, x20
  blr x19
  /* An entry function must end by switching away for good; returning
   * would run off the top of the stack, so stop here instead. */
  brk #0x3e8
  .cfi_endproc
#if defined(__ELF__)
  .size async__ctx_trampoline, . - async__ctx_trampoline
#endif

#if defined(__ELF__)
  .section .note.GNU-stack, "", %progbits
#endif
