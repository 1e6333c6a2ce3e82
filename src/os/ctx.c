/* SPDX-License-Identifier: MIT */
/* The portable half of the context switch: the initial frame of a new
 * context for the assembly switch, and the AddressSanitizer or
 * ThreadSanitizer fiber annotations around every switch. The swap itself is in
 * ctx_x86_64_sysv.S, ctx_aarch64.S or ctx_ucontext.c. */
#include "os.h"

#include <stdint.h>
#include <string.h>

#if defined(ASYNC__ASAN)
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#endif
#if defined(ASYNC__TSAN)
#include <sanitizer/tsan_interface.h>
#endif

#if !defined(ASYNC_USE_UCONTEXT)

/* Tells AddressSanitizer about the stack of a new context: its bounds, for
 * the switches into it, and a clean shadow. A reused stack still carries
 * there the redzones of the frames its last context died in (those
 * functions never returned to clear them), and code ASan does not
 * instrument, such as libc's, could hand an instrumented function a pointer
 * into them. ASan's own swapcontext interceptor clears ucontext stacks the
 * same way. */
static void async__ctx_set_stack(async__ctx *ctx, void *stack_lo, size_t size) {
#if defined(ASYNC__ASAN)
  __asan_unpoison_memory_region(stack_lo, size);
  ctx->stack_lo = stack_lo;
  ctx->stack_size = size;
  ctx->fake_stack = NULL;
#else
  (void)ctx;
  (void)stack_lo;
  (void)size;
#endif
}

/* Where the first frame of a new context goes: right under the 16-byte
 * aligned top of its stack. The swap pops that frame whole, return address
 * included, so the trampoline starts with the stack pointer at the aligned
 * top, which is what both ABIs want at a call. */
static void *async__ctx_first_frame(async__ctx *ctx, void *stack_lo,
                                    size_t size, size_t frame_size) {
  uintptr_t top = ((uintptr_t)stack_lo + size) & ~(uintptr_t)15;
  async__ctx_set_stack(ctx, stack_lo, size);
  async__ctx_sanitizer_make(ctx);
  return (void *)(top - frame_size);
}

/* Defined in the assembly next to async__ctx_swap; never called from C, only
 * returned to by the first swap into a new context. */
void async__ctx_trampoline(void);

#if defined(__x86_64__)

/* The frame async__ctx_swap leaves on a stack it switches away from, lowest
 * address first; see ctx_x86_64_sysv.S. */
struct async__ctx_frame {
  uint32_t mxcsr;
  uint16_t x87_cw;
  uint16_t unused;
  void *r15;
  void *r14;
  void *r13;            /* the trampoline passes it to entry */
  async__ctx_entry r12; /* the trampoline calls it */
  void *rbx;
  void *rbp;
  void (*ret)(void);
};

_Static_assert(sizeof(struct async__ctx_frame) == 64,
               "the frame must match what ctx_x86_64_sysv.S pops");

/* Fills a zeroed first frame; a new context starts with the
 * floating-point control state of the code that made it, as a new thread
 * does. */
static void frame_fill(struct async__ctx_frame *f, async__ctx_entry entry,
                       void *arg) {
  __asm__ volatile("stmxcsr %0" : "=m"(f->mxcsr));
  __asm__ volatile("fnstcw %0" : "=m"(f->x87_cw));
  f->r13 = arg;
  f->r12 = entry;
  f->ret = async__ctx_trampoline;
}

#elif defined(__aarch64__)

/* The frame async__ctx_swap leaves on a stack it switches away from, lowest
 * address first; see ctx_aarch64.S. */
struct async__ctx_frame {
  async__ctx_entry x19; /* the trampoline calls it */
  void *x20;            /* the trampoline passes it to entry */
  void *x21_x28[8];
  void *x29;
  void (*x30)(void); /* where the swap returns to */
  uint64_t d8_d15[8];
  uint64_t fpcr;
  uint64_t unused; /* keeps the frame a multiple of 16 bytes */
};

_Static_assert(sizeof(struct async__ctx_frame) == 176,
               "the frame must match what ctx_aarch64.S loads");

static void frame_fill(struct async__ctx_frame *f, async__ctx_entry entry,
                       void *arg) {
  uint64_t fpcr;
  __asm__ volatile("mrs %0, fpcr" : "=r"(fpcr));
  f->x19 = entry;
  f->x20 = arg;
  f->x30 = async__ctx_trampoline;
  f->fpcr = fpcr;
}

#else
#error "no assembly context switch for this CPU: build with ASYNC_USE_UCONTEXT"
#endif

void async__ctx_make(async__ctx *ctx, void *stack_lo, size_t size,
                     async__ctx_entry entry, void *arg) {
  /* The frame ends at a 16-byte aligned top; AArch64's hardware checks sp
   * against that alignment, too. */
  struct async__ctx_frame *f =
      async__ctx_first_frame(ctx, stack_lo, size, sizeof *f);
  memset(f, 0, sizeof *f); /* a zero frame pointer ends walks there */
  frame_fill(f, entry, arg);
  ctx->sp = f;
}

#endif /* !ASYNC_USE_UCONTEXT */

#if defined(ASYNC__ASAN)

/* The context this thread is leaving, published for the one being entered:
 * ASan tells the entered side the bounds of the stack it came from, and if
 * that is the thread's own stack, whose bounds nobody knew, they are written
 * into its context so that switching back to it can name them. NULL when the
 * context being left is dying and may be freed as soon as it is left. */
static _Thread_local async__ctx *async__ctx_leaving;

/* Never inlined: it reads async__ctx_leaving after the swap, which may
 * have resumed the context on another thread (see "tls" in os.h). */
ASYNC__NOINLINE static void async__ctx_learn_bounds(const void *lo,
                                                    size_t size) {
  async__ctx *left = async__ctx_leaving;

  if (left != NULL && left->stack_size == 0) {
    left->stack_lo = lo;
    left->stack_size = size;
  }
}

void async__ctx_switch(async__ctx *from, async__ctx *to, int dying) {
  const void *lo;
  size_t size;

  /* A dying context passes no fake-stack slot: ASan then frees the fake
   * frames it kept for it instead of saving them for a resumption. */
  async__ctx_leaving = dying ? NULL : from;
  __sanitizer_start_switch_fiber(dying ? NULL : &from->fake_stack, to->stack_lo,
                                 to->stack_size);
  async__ctx_swap(from, to);
  __sanitizer_finish_switch_fiber(from->fake_stack, &lo, &size);
  async__ctx_learn_bounds(lo, size);
}

void async__ctx_entered(void) {
  const void *lo;
  size_t size;

  /* A fresh context has no fake stack to restore. */
  __sanitizer_finish_switch_fiber(NULL, &lo, &size);
  async__ctx_learn_bounds(lo, size);
}

#elif defined(ASYNC__TSAN)

/* ThreadSanitizer keeps a shadow call stack and a clock per fiber: a switch
 * it is not told of makes it pair one task's calls with another's returns,
 * and the tasks of one thread look like threads racing each other. A dying
 * context's fiber cannot be destroyed while it runs: the context entered
 * next destroys it. */
static _Thread_local void *async__ctx_dead_fiber;

void async__ctx_sanitizer_make(async__ctx *ctx) {
  ctx->tsan_fiber = __tsan_create_fiber(0);
  ctx->tsan_thread = 0;
}

/* Never inlined, for the same reason as ASan's async__ctx_learn_bounds. */
ASYNC__NOINLINE static void async__ctx_reap_fiber(void) {
  void *dead = async__ctx_dead_fiber;

  if (dead != NULL) {
    async__ctx_dead_fiber = NULL;
    __tsan_destroy_fiber(dead);
  }
}

void async__ctx_switch(async__ctx *from, async__ctx *to, int dying) {
  /* A thread's own stack (the loop's context) is learned at every switch
   * away from it: the loop may run on one thread and close on another. */
  if (from->tsan_fiber == NULL || from->tsan_thread) {
    from->tsan_fiber = __tsan_get_current_fiber();
    from->tsan_thread = 1;
  }
  if (dying) async__ctx_dead_fiber = from->tsan_fiber;
  __tsan_switch_to_fiber(to->tsan_fiber, 0);
  async__ctx_swap(from, to);
  async__ctx_reap_fiber();
}

void async__ctx_entered(void) { async__ctx_reap_fiber(); }

void async__ctx_release(async__ctx *ctx) {
  if (ctx->tsan_fiber != NULL && !ctx->tsan_thread)
    __tsan_destroy_fiber(ctx->tsan_fiber);
  ctx->tsan_fiber = NULL;
}

#endif

#if !defined(ASYNC__TSAN)
void async__ctx_sanitizer_make(async__ctx *ctx) { (void)ctx; }
void async__ctx_release(async__ctx *ctx) { (void)ctx; }
#endif

#if !defined(ASYNC__ASAN) && !defined(ASYNC__TSAN)

void async__ctx_switch(async__ctx *from, async__ctx *to, int dying) {
  /* Without sanitizers this compiles to a tail jump into the swap. */
  (void)dying;
  async__ctx_swap(from, to);
}

void async__ctx_entered(void) {}

#endif
