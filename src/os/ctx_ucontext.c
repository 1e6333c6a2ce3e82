/* SPDX-License-Identifier: MIT */
/* Context switch through <ucontext.h>, for CPUs without an assembly switch
 * and for debugging the assembly one. It is an order of magnitude slower:
 * glibc's swapcontext makes a sigprocmask system call on every switch. */
#include "os.h"

#include <stdint.h>
#include <stdlib.h>

#if defined(ASYNC__ASAN)
#include <sanitizer/asan_interface.h>
#endif

#if !defined(ASYNC_USE_UCONTEXT)
#error "ctx_ucontext.c is built only with ASYNC_USE_UCONTEXT"
#endif

/* What the trampoline needs to start a context. makecontext passes only int
 * arguments, so the trampoline gets the address of this record split in two
 * halves; the record itself lives at the top of the new stack, above the part
 * handed to makecontext, where nothing overwrites it before it is read. */
struct async__ctx_start {
  async__ctx_entry entry;
  void *arg;
};

static void async__ctx_trampoline(unsigned hi, unsigned lo) {
  uintptr_t addr = (uintptr_t)hi << 16 << 16 | (uintptr_t)lo;
  const struct async__ctx_start *start = (const struct async__ctx_start *)addr;

  start->entry(start->arg);
  /* An entry function must end by switching away for good; uc_link is NULL,
   * so returning would end the thread. Make the bug loud instead. */
  abort();
}

void async__ctx_make(async__ctx *ctx, void *stack_lo, size_t size,
                     async__ctx_entry entry, void *arg) {
  /* 16 bytes is the strictest stack alignment of the supported ABIs. */
  uintptr_t top = ((uintptr_t)stack_lo + size) & ~(uintptr_t)15;
  uintptr_t rec = (top - sizeof(struct async__ctx_start)) & ~(uintptr_t)15;
  struct async__ctx_start *start = (struct async__ctx_start *)rec;

#if defined(ASYNC__ASAN)
  /* A reused stack still carries, in ASan's shadow, the redzones of the
   * frames its last context died in (those functions never returned to
   * clear them); the record written below must not trip over them. */
  __asan_unpoison_memory_region(stack_lo, size);
#endif
  start->entry = entry;
  start->arg = arg;
  /* getcontext also fills in the signal mask and the floating-point state:
   * a new context starts with those of the code that made it. */
  if (getcontext(&ctx->uc) != 0) abort();
  ctx->uc.uc_stack.ss_sp = stack_lo;
  ctx->uc.uc_stack.ss_size = rec - (uintptr_t)stack_lo;
  ctx->uc.uc_link = NULL;
  /* Casting the trampoline to void (*)(void) is what makecontext's
   * prototype demands; it calls it back with the two int arguments. The
   * shifts are split so that they stay defined when uintptr_t has 32 bits. */
  makecontext(&ctx->uc, (void (*)(void))async__ctx_trampoline, 2,
              (unsigned)(rec >> 16 >> 16), (unsigned)rec);
  async__ctx_sanitizer_make(ctx);
#if defined(ASYNC__ASAN)
  ctx->stack_lo = stack_lo;
  ctx->stack_size = size;
  ctx->fake_stack = NULL;
#endif
}

void async__ctx_swap(async__ctx *from, async__ctx *to) {
  /* It fails only for a malformed context, which nothing can recover. */
  if (swapcontext(&from->uc, &to->uc) != 0) abort();
}
