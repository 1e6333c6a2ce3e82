/* Context switch: the two-function interface under the scheduler.
 *
 * With the assembly switch (the default) a context is one saved stack
 * pointer: async__ctx_swap pushes the callee-saved registers and the
 * floating-point control state the ABI says a call preserves onto the stack
 * being left, stores the stack pointer in `from`, loads `to`'s and pops.
 *   x86-64 SysV: rbx rbp r12-r15, MXCSR control bits, x87 control word.
 *   AArch64:     x19-x28, x29 (fp), x30 (lr), d8-d15, FPCR.
 * With ASYNC_USE_UCONTEXT (a CMake option) a context is a ucontext_t.
 *
 * async__ctx_switch wraps the swap with the AddressSanitizer fiber
 * annotations; the rest of the library calls only async__ctx_make and
 * async__ctx_switch. */
#ifndef ASYNC_CTX_H
#define ASYNC_CTX_H

#include <stddef.h>

#if defined(ASYNC_USE_UCONTEXT)
#include <ucontext.h>
#endif

#if defined(__SANITIZE_ADDRESS__)
#define ASYNC__ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define ASYNC__ASAN 1
#endif
#endif

typedef struct async__ctx {
#if defined(ASYNC_USE_UCONTEXT)
  ucontext_t uc;
#else
  void *sp; /* read by the assembly at offset 0: keep it first */
#endif
#if defined(ASYNC__ASAN)
  const void *stack_lo; /* bounds ASan is told when this context is entered */
  size_t stack_size;    /* 0 for the thread's own stack until first left */
  void *fake_stack;
#endif
} async__ctx;

typedef void (*async__ctx_entry)(void *arg);

/* Prepares `ctx` so that the first switch into it calls entry(arg) on the
 * stack [stack_lo, stack_lo + size). The entry function must never return:
 * it ends by switching away for good (async__ctx_switch with dying != 0). */
void async__ctx_make(async__ctx *ctx, void *stack_lo, size_t size,
                     async__ctx_entry entry, void *arg);

/* Saves the running context in `from` and resumes `to`. Returns when some
 * context switches back to `from`. `dying` says `from` will never be resumed
 * (a finished task): sanitizers then release what they kept for it. */
void async__ctx_switch(async__ctx *from, async__ctx *to, int dying);

/* The raw switch (assembly or swapcontext), without annotations. */
void async__ctx_swap(async__ctx *from, async__ctx *to);

/* The first thing an entry function calls, before any other code: it ends
 * the sanitizer's half-done switch into the new context. */
void async__ctx_entered(void);

#endif
