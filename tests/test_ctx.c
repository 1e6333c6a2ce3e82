/* SPDX-License-Identifier: MIT */
/* Tests of the context switch (src/ctx.h), on stacks this file maps itself.
 *
 * A failing cmocka assertion longjmps back into the runner, which from a
 * coroutine would leave its stack for good in the middle of a switch. So
 * coroutines only record what they saw, in the test's state, and every
 * assertion runs in the main context once the coroutines are done. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "os/os.h"

/* Valgrind takes a jump of the stack pointer into unknown memory for a
 * stack overflow unless the stacks are registered. */
#if defined(__has_include)
#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#define TEST_HAVE_VALGRIND 1
#endif
#endif

#define TEST_STACK_SIZE (256u * 1024u)

/* A coroutine stack with a PROT_NONE page under it, so that an overflow in a
 * test faults instead of corrupting whatever lies below. */
struct test_stack {
  void *map;
  size_t map_size;
  void *lo;
  size_t size;
  unsigned valgrind_id;
};

static void stack_new(struct test_stack *s) {
  size_t page = (size_t)sysconf(_SC_PAGESIZE);

  s->map_size = TEST_STACK_SIZE + page;
  s->map = mmap(NULL, s->map_size, PROT_READ | PROT_WRITE,
                MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
  assert_true(s->map != MAP_FAILED);
  assert_int_equal(mprotect(s->map, page, PROT_NONE), 0);
  s->lo = (char *)s->map + page;
  s->size = TEST_STACK_SIZE;
#if defined(TEST_HAVE_VALGRIND)
  s->valgrind_id = VALGRIND_STACK_REGISTER(s->lo, (char *)s->lo + s->size);
#else
  s->valgrind_id = 0;
#endif
}

static void stack_free(struct test_stack *s) {
#if defined(TEST_HAVE_VALGRIND)
  VALGRIND_STACK_DEREGISTER(s->valgrind_id);
#endif
  assert_int_equal(munmap(s->map, s->map_size), 0);
}

/* Ping-pong: each side checks the value the other passed. */

#define PING_PONG_ROUNDS 100000

struct ping_pong {
  async__ctx main;
  async__ctx co;
  long to_co;
  long to_main;
  long co_mismatches;
  int entries;
  int done;
};

static void ping_pong_entry(void *arg) {
  async__ctx_entered();
  struct ping_pong *p = arg;

  p->entries++;
  for (long i = 0; i < PING_PONG_ROUNDS; i++) {
    if (p->to_co != i) p->co_mismatches++;
    p->to_main = 3 * i + 1;
    async__ctx_switch(&p->co, &p->main, 0);
  }
  p->done = 1;
  async__ctx_switch(&p->co, &p->main, 1);
}

static void run_ping_pong(struct ping_pong *p, struct test_stack *s) {
  long main_mismatches = 0;

  memset(p, 0, sizeof *p);
  async__ctx_make(&p->co, s->lo, s->size, ping_pong_entry, p);
  for (long i = 0; i < PING_PONG_ROUNDS; i++) {
    p->to_co = i;
    async__ctx_switch(&p->main, &p->co, 0);
    if (p->to_main != 3 * i + 1) main_mismatches++;
  }
  async__ctx_switch(&p->main, &p->co, 0);
  assert_int_equal(main_mismatches, 0);
  assert_int_equal(p->co_mismatches, 0);
  assert_int_equal(p->entries, 1);
  assert_int_equal(p->done, 1);
}

static void test_ctx_ping_pong(void **state) {
  struct test_stack s;
  struct ping_pong p;

  (void)state;
  stack_new(&s);
  run_ping_pong(&p, &s);
  stack_free(&s);
}

/* A stack whose coroutine has died can carry a new one. */
static void test_ctx_stack_reused_after_death(void **state) {
  struct test_stack s;
  struct ping_pong p;

  (void)state;
  stack_new(&s);
  for (int i = 0; i < 3; i++) run_ping_pong(&p, &s);
  stack_free(&s);
}

/* Two coroutines switching to each other, never through main. */

#define DIRECT_ROUNDS 1000

struct direct {
  async__ctx main;
  async__ctx a;
  async__ctx b;
  char trace[2 * DIRECT_ROUNDS + 1];
  size_t len;
  int stop;
  int a_done;
  int b_done;
};

static void direct_a(void *arg) {
  async__ctx_entered();
  struct direct *d = arg;

  for (int i = 0; i < DIRECT_ROUNDS; i++) {
    if (d->len < sizeof d->trace - 1) d->trace[d->len++] = 'A';
    async__ctx_switch(&d->a, &d->b, 0);
  }
  d->stop = 1;
  d->a_done = 1;
  async__ctx_switch(&d->a, &d->b, 1);
}

static void direct_b(void *arg) {
  async__ctx_entered();
  struct direct *d = arg;

  while (!d->stop) {
    if (d->len < sizeof d->trace - 1) d->trace[d->len++] = 'B';
    async__ctx_switch(&d->b, &d->a, 0);
  }
  d->b_done = 1;
  async__ctx_switch(&d->b, &d->main, 1);
}

static void test_ctx_two_coroutines_switch_directly(void **state) {
  struct test_stack sa, sb;
  struct direct d;
  char want[sizeof d.trace];

  (void)state;
  memset(&d, 0, sizeof d);
  stack_new(&sa);
  stack_new(&sb);
  async__ctx_make(&d.a, sa.lo, sa.size, direct_a, &d);
  async__ctx_make(&d.b, sb.lo, sb.size, direct_b, &d);
  async__ctx_switch(&d.main, &d.a, 0);
  for (int i = 0; i < DIRECT_ROUNDS; i++) {
    want[2 * i] = 'A';
    want[2 * i + 1] = 'B';
  }
  want[2 * DIRECT_ROUNDS] = '\0';
  assert_int_equal(d.a_done, 1);
  assert_int_equal(d.b_done, 1);
  assert_string_equal(d.trace, want);
  stack_free(&sa);
  stack_free(&sb);
}

/* The entry function gets the argument given to async__ctx_make, each
 * context its own even when they share the entry function. */

struct arg_probe {
  async__ctx main;
  async__ctx co;
  void *seen;
};

static void arg_entry(void *arg) {
  async__ctx_entered();
  struct arg_probe *p = arg;

  p->seen = arg;
  async__ctx_switch(&p->co, &p->main, 1);
}

static void test_ctx_entry_receives_argument(void **state) {
  struct test_stack s1, s2;
  struct arg_probe p1, p2;

  (void)state;
  memset(&p1, 0, sizeof p1);
  memset(&p2, 0, sizeof p2);
  stack_new(&s1);
  stack_new(&s2);
  async__ctx_make(&p1.co, s1.lo, s1.size, arg_entry, &p1);
  async__ctx_make(&p2.co, s2.lo, s2.size, arg_entry, &p2);
  async__ctx_switch(&p2.main, &p2.co, 0);
  async__ctx_switch(&p1.main, &p1.co, 0);
  assert_ptr_equal(p1.seen, &p1);
  assert_ptr_equal(p2.seen, &p2);
  stack_free(&s1);
  stack_free(&s2);
}

/* Stack alignment at entry. An _Alignas(16) local is placed by the compiler
 * on the assumption that the stack was aligned on entry, so its address
 * shows whether it was; the volatile keeps the compiler from folding the
 * test to true. Aligned SSE moves of vectors and printf("%f") (glibc saves
 * the vector registers with aligned moves) would crash on a misaligned
 * stack. */

typedef double test_v2d __attribute__((vector_size(16)));

struct align_probe {
  async__ctx main;
  async__ctx co;
  uintptr_t entry_local;
  uintptr_t entry_frame;
  uintptr_t nested_local;
  double vector_sum;
  char text[64];
  int done;
};

__attribute__((noinline)) static uintptr_t aligned_local_address(void) {
  _Alignas(16) char local[16];
  volatile uintptr_t addr = (uintptr_t)local;

  local[0] = 1;
  return addr;
}

__attribute__((noinline)) static double vector_math(double x) {
  volatile test_v2d a = {x, 2.0 * x};
  volatile test_v2d b = {0.5, 0.25};
  test_v2d c = a * b + a;

  return c[0] + c[1];
}

static void align_entry(void *arg) {
  async__ctx_entered();
  struct align_probe *p = arg;
  _Alignas(16) char local[16];
  volatile uintptr_t addr = (uintptr_t)local;

  local[0] = 0;
  p->entry_local = addr;
  p->entry_frame = (uintptr_t)__builtin_frame_address(0);
  p->nested_local = aligned_local_address();
  p->vector_sum = vector_math(3.0);
  snprintf(p->text, sizeof p->text, "%.3f", p->vector_sum / 3.0);
  p->done = 1;
  async__ctx_switch(&p->co, &p->main, 1);
}

static void test_ctx_stack_aligned_at_entry(void **state) {
  struct test_stack s;
  struct align_probe p;

  (void)state;
  memset(&p, 0, sizeof p);
  stack_new(&s);
  async__ctx_make(&p.co, s.lo, s.size, align_entry, &p);
  async__ctx_switch(&p.main, &p.co, 0);
  assert_int_equal(p.done, 1);
  assert_int_equal(p.entry_local % 16, 0);
  assert_int_equal(p.entry_frame % 16, 0);
  assert_int_equal(p.nested_local % 16, 0);
  /* 3 * 1.5 + 6 * 1.25 */
  assert_true(p.vector_sum == 12.0);
  assert_string_equal(p.text, "4.000");
  stack_free(&s);
}

/* A stack whose size leaves its top unaligned still gives an aligned
 * entry: async__ctx_make rounds the top down. */
static void test_ctx_unaligned_top_is_rounded(void **state) {
  struct test_stack s;
  struct align_probe p;

  (void)state;
  memset(&p, 0, sizeof p);
  stack_new(&s);
  async__ctx_make(&p.co, s.lo, s.size - 8, align_entry, &p);
  async__ctx_switch(&p.main, &p.co, 0);
  assert_int_equal(p.done, 1);
  assert_int_equal(p.entry_local % 16, 0);
  assert_int_equal(p.nested_local % 16, 0);
  assert_string_equal(p.text, "4.000");
  stack_free(&s);
}

/* Callee-saved registers survive a switch. Sixteen integers (and eight
 * doubles, which AArch64 keeps in d8-d15) are computed from volatile inputs
 * and kept live across the switch: the compiler cannot reload or recompute
 * them, so it holds them in callee-saved registers and stack slots. The
 * other side fills those registers with garbage before switching back. */

#define REG_INPUTS 16

struct regs_probe {
  async__ctx main;
  async__ctx co;
  volatile unsigned long in[REG_INPUTS];
  volatile double fin[8];
  int main_bad;
  int co_bad;
  int done;
};

#define TEST_REG_LIST(X)                                                       \
  X(0)                                                                         \
  X(1)                                                                         \
  X(2) X(3) X(4) X(5) X(6) X(7) X(8) X(9) X(10) X(11) X(12) X(13) X(14) X(15)
#define TEST_FREG_LIST(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7)

#define TEST_REG_VALUE(i)                                                      \
  ((r->in[i] * (i + 3u)) ^ r->in[((i) + 5) % REG_INPUTS] ^ salt)
#define TEST_FREG_VALUE(i) (r->fin[i] * (double)salt + r->fin[((i) + 3) % 8])
#define TEST_REG_LOAD(i) unsigned long x##i = TEST_REG_VALUE(i);
#define TEST_REG_CHECK(i) bad += x##i != TEST_REG_VALUE(i);
#define TEST_FREG_LOAD(i) double f##i = TEST_FREG_VALUE(i);
#define TEST_FREG_CHECK(i) bad += f##i != TEST_FREG_VALUE(i);

__attribute__((noinline)) static int hold_across_switch(struct regs_probe *r,
                                                        async__ctx *self,
                                                        async__ctx *other,
                                                        unsigned long salt) {
  int bad = 0;

  TEST_REG_LIST(TEST_REG_LOAD)
  TEST_FREG_LIST(TEST_FREG_LOAD)
  async__ctx_switch(self, other, 0);
  TEST_REG_LIST(TEST_REG_CHECK)
  TEST_FREG_LIST(TEST_FREG_CHECK)
  return bad;
}

/* Puts garbage in the callee-saved registers the compiler lets an asm
 * statement touch (not the frame pointer). The compiler saves and restores
 * them around this function, but between the asm and the switch that
 * follows it they hold nothing of the context being resumed. */
__attribute__((noinline)) static void
switch_with_clobbered_registers(async__ctx *self, async__ctx *other,
                                int dying) {
#if defined(__x86_64__)
  __asm__ volatile("movq $-0x5a5a5a5a, %%rbx\n\t"
                   "movq $-0x5b5b5b5b, %%r12\n\t"
                   "movq $-0x5c5c5c5c, %%r13\n\t"
                   "movq $-0x5d5d5d5d, %%r14\n\t"
                   "movq $-0x5e5e5e5e, %%r15\n\t"
                   :
                   :
                   : "rbx", "r12", "r13", "r14", "r15");
#elif defined(__aarch64__)
  __asm__ volatile("mov x19, #-0x5a5a\n\t"
                   "mov x20, #-0x5b5b\n\t"
                   "mov x21, #-0x5c5c\n\t"
                   "mov x22, #-0x5d5d\n\t"
                   "mov x23, #-0x5e5e\n\t"
                   "mov x24, #-0x5f5f\n\t"
                   "mov x25, #-0x6060\n\t"
                   "mov x26, #-0x6161\n\t"
                   "mov x27, #-0x6262\n\t"
                   "mov x28, #-0x6363\n\t"
                   "fmov d8, #-1.0\n\t"
                   "fmov d9, #-2.0\n\t"
                   "fmov d10, #-3.0\n\t"
                   "fmov d11, #-4.0\n\t"
                   "fmov d12, #-5.0\n\t"
                   "fmov d13, #-6.0\n\t"
                   "fmov d14, #-7.0\n\t"
                   "fmov d15, #-8.0\n\t"
                   :
                   :
                   : "x19", "x20", "x21", "x22", "x23", "x24", "x25", "x26",
                     "x27", "x28", "d8", "d9", "d10", "d11", "d12", "d13",
                     "d14", "d15");
#endif
  async__ctx_switch(self, other, dying);
}

static void regs_entry(void *arg) {
  async__ctx_entered();
  struct regs_probe *r = arg;

  r->co_bad = hold_across_switch(r, &r->co, &r->main, 0x2222222222222222ul);
  r->done = 1;
  switch_with_clobbered_registers(&r->co, &r->main, 1);
}

static void test_ctx_callee_saved_registers_survive(void **state) {
  struct test_stack s;
  struct regs_probe r;

  (void)state;
  memset(&r, 0, sizeof r);
  for (unsigned i = 0; i < REG_INPUTS; i++)
    r.in[i] = 0x0123456789abcdefu * (i + 1) + i;
  for (unsigned i = 0; i < 8; i++) r.fin[i] = 1.0 / (i + 3);
  stack_new(&s);
  async__ctx_make(&r.co, s.lo, s.size, regs_entry, &r);
  /* The coroutine runs to its switch inside hold_across_switch. */
  async__ctx_switch(&r.main, &r.co, 0);
  /* Main now holds its own values across a switch, which resumes the
   * coroutine; it checks, clobbers and switches back for good. */
  r.main_bad = hold_across_switch(&r, &r.main, &r.co, 0x1111111111111111ul);
  assert_int_equal(r.done, 1);
  assert_int_equal(r.co_bad, 0);
  assert_int_equal(r.main_bad, 0);
  stack_free(&s);
}

/* The main side clobbers too: a coroutine holding values is resumed from a
 * main context whose callee-saved registers hold garbage. */

static void regs_entry_waiting(void *arg) {
  async__ctx_entered();
  struct regs_probe *r = arg;

  r->co_bad = hold_across_switch(r, &r->co, &r->main, 0x3333333333333333ul);
  r->done = 1;
  async__ctx_switch(&r->co, &r->main, 1);
}

static void test_ctx_callee_saved_registers_survive_clobbering(void **state) {
  struct test_stack s;
  struct regs_probe r;

  (void)state;
  memset(&r, 0, sizeof r);
  for (unsigned i = 0; i < REG_INPUTS; i++)
    r.in[i] = 0x0fedcba987654321u * (i + 7) + i;
  for (unsigned i = 0; i < 8; i++) r.fin[i] = 1.0 / (i + 5);
  stack_new(&s);
  async__ctx_make(&r.co, s.lo, s.size, regs_entry_waiting, &r);
  async__ctx_switch(&r.main, &r.co, 0);
  switch_with_clobbered_registers(&r.main, &r.co, 0);
  assert_int_equal(r.done, 1);
  assert_int_equal(r.co_bad, 0);
  stack_free(&s);
}

/* The floating-point control state is per context: a coroutine that rounds
 * upward does not make the main context round upward, and finds its own
 * mode again when resumed. Set and read directly (fesetround lives in libm,
 * which the tests do not link), and checked by dividing too: 1/7 is inexact
 * in both double and the x87's 64-bit mantissa, and its nearest value is
 * below it in both, so rounding upward gives a larger result. */

enum { TEST_ROUND_NEAREST, TEST_ROUND_UPWARD, TEST_ROUND_OTHER };

#if defined(__x86_64__)

static int sse_rounding(void) {
  unsigned mxcsr;

  __asm__ volatile("stmxcsr %0" : "=m"(mxcsr));
  switch ((mxcsr >> 13) & 3) {
  case 0:
    return TEST_ROUND_NEAREST;
  case 2:
    return TEST_ROUND_UPWARD;
  default:
    return TEST_ROUND_OTHER;
  }
}

static int x87_rounding(void) {
  unsigned short cw;

  __asm__ volatile("fnstcw %0" : "=m"(cw));
  switch ((cw >> 10) & 3) {
  case 0:
    return TEST_ROUND_NEAREST;
  case 2:
    return TEST_ROUND_UPWARD;
  default:
    return TEST_ROUND_OTHER;
  }
}

static void round_upward(void) {
  unsigned mxcsr;
  unsigned short cw;

  __asm__ volatile("stmxcsr %0" : "=m"(mxcsr));
  mxcsr = (mxcsr & ~(3u << 13)) | (2u << 13);
  __asm__ volatile("ldmxcsr %0" : : "m"(mxcsr));
  __asm__ volatile("fnstcw %0" : "=m"(cw));
  cw = (unsigned short)((cw & ~(3u << 10)) | (2u << 10));
  __asm__ volatile("fldcw %0" : : "m"(cw));
}

#define TEST_HAVE_ROUNDING 1

#elif defined(__aarch64__)

static int fpcr_rounding(void) {
  unsigned long fpcr;

  __asm__ volatile("mrs %0, fpcr" : "=r"(fpcr));
  switch ((fpcr >> 22) & 3) {
  case 0:
    return TEST_ROUND_NEAREST;
  case 1:
    return TEST_ROUND_UPWARD;
  default:
    return TEST_ROUND_OTHER;
  }
}

static int sse_rounding(void) { return fpcr_rounding(); }
static int x87_rounding(void) { return fpcr_rounding(); }

static void round_upward(void) {
  unsigned long fpcr;

  __asm__ volatile("mrs %0, fpcr" : "=r"(fpcr));
  fpcr = (fpcr & ~(3ul << 22)) | (1ul << 22);
  __asm__ volatile("msr fpcr, %0" : : "r"(fpcr));
}

#define TEST_HAVE_ROUNDING 1

#endif

#if defined(TEST_HAVE_ROUNDING)

struct fp_probe {
  async__ctx main;
  async__ctx co;
  int co_sse_before;
  int co_x87_before;
  int co_sse_after;
  int co_x87_after;
  double co_third_before;
  double co_third_after;
  long double co_long_after;
  int done;
};

/* Valgrind keeps the control registers per context but computes in the
 * default rounding mode whatever they say. */
static int arithmetic_follows_rounding(void) {
#if defined(TEST_HAVE_VALGRIND)
  return !RUNNING_ON_VALGRIND;
#else
  return 1;
#endif
}

static volatile double test_one = 1.0;
static volatile double test_seven = 7.0;
static volatile long double test_long_one = 1.0L;
static volatile long double test_long_seven = 7.0L;

static void fp_entry(void *arg) {
  async__ctx_entered();
  struct fp_probe *p = arg;

  round_upward();
  p->co_sse_before = sse_rounding();
  p->co_x87_before = x87_rounding();
  p->co_third_before = test_one / test_seven;
  async__ctx_switch(&p->co, &p->main, 0);
  p->co_sse_after = sse_rounding();
  p->co_x87_after = x87_rounding();
  p->co_third_after = test_one / test_seven;
  p->co_long_after = test_long_one / test_long_seven;
  p->done = 1;
  async__ctx_switch(&p->co, &p->main, 1);
}

#endif

static void test_ctx_fp_control_is_per_context(void **state) {
#if defined(TEST_HAVE_ROUNDING)
  struct test_stack s;
  struct fp_probe p;
  int main_sse, main_x87;
  double main_third;
  long double main_long;

  (void)state;
  memset(&p, 0, sizeof p);
  assert_int_equal(sse_rounding(), TEST_ROUND_NEAREST);
  assert_int_equal(x87_rounding(), TEST_ROUND_NEAREST);
  stack_new(&s);
  async__ctx_make(&p.co, s.lo, s.size, fp_entry, &p);
  async__ctx_switch(&p.main, &p.co, 0);
  main_sse = sse_rounding();
  main_x87 = x87_rounding();
  main_third = test_one / test_seven;
  main_long = test_long_one / test_long_seven;
  async__ctx_switch(&p.main, &p.co, 0);
  assert_int_equal(p.done, 1);
  assert_int_equal(main_sse, TEST_ROUND_NEAREST);
  assert_int_equal(main_x87, TEST_ROUND_NEAREST);
  assert_int_equal(sse_rounding(), TEST_ROUND_NEAREST);
  assert_int_equal(x87_rounding(), TEST_ROUND_NEAREST);
  assert_int_equal(p.co_sse_before, TEST_ROUND_UPWARD);
  assert_int_equal(p.co_x87_before, TEST_ROUND_UPWARD);
  assert_int_equal(p.co_sse_after, TEST_ROUND_UPWARD);
  assert_int_equal(p.co_x87_after, TEST_ROUND_UPWARD);
  if (arithmetic_follows_rounding()) {
    assert_true(p.co_third_before > main_third);
    assert_true(p.co_third_after > main_third);
    assert_true(p.co_long_after > main_long);
    assert_true(test_one / test_seven == main_third);
  }
  stack_free(&s);
#else
  (void)state;
  skip();
#endif
}

/* Deep-ish recursion: 64 frames of a little over 1 KiB each. */

#define RECURSION_DEPTH 64

struct deep_probe {
  async__ctx main;
  async__ctx co;
  unsigned long result;
  uintptr_t top_frame;
  uintptr_t bottom_frame;
  int done;
};

__attribute__((noinline)) static unsigned long recurse(unsigned depth,
                                                       uintptr_t *deepest) {
  volatile unsigned char buf[1024];
  unsigned long sum;

  for (unsigned i = 0; i < sizeof buf; i++)
    buf[i] = (unsigned char)(depth * 31u + i);
  if (depth == 0) {
    *deepest = (uintptr_t)__builtin_frame_address(0);
    return buf[17];
  }
  sum = recurse(depth - 1, deepest);
  return sum * 3u + buf[depth % sizeof buf];
}

static void deep_entry(void *arg) {
  async__ctx_entered();
  struct deep_probe *p = arg;

  /* Frame addresses rather than those of locals, which ASan may move off
   * the stack to catch uses after return. */
  p->top_frame = (uintptr_t)__builtin_frame_address(0);
  p->result = recurse(RECURSION_DEPTH, &p->bottom_frame);
  p->done = 1;
  async__ctx_switch(&p->co, &p->main, 1);
}

static void test_ctx_deep_recursion(void **state) {
  struct test_stack s;
  struct deep_probe p;
  uintptr_t unused;

  (void)state;
  memset(&p, 0, sizeof p);
  stack_new(&s);
  async__ctx_make(&p.co, s.lo, s.size, deep_entry, &p);
  async__ctx_switch(&p.main, &p.co, 0);
  assert_int_equal(p.done, 1);
  assert_int_equal(p.result, recurse(RECURSION_DEPTH, &unused));
#if !defined(ASYNC__ASAN)
  /* ASan may keep the buffers on its fake stack instead, to catch uses
   * after return, and then the real stack does not grow that much. */
  assert_true(p.top_frame - p.bottom_frame >= 64u * 1024u);
#endif
  assert_true(p.bottom_frame >= (uintptr_t)s.lo);
  assert_true(p.top_frame < (uintptr_t)s.lo + s.size);
  stack_free(&s);
}

/* longjmp within a coroutine's stack works. Under AddressSanitizer it also
 * checks the fiber annotations: longjmp makes ASan clear the shadow of the
 * running stack, which it finds from the bounds it was told at the switch,
 * and it warns about a stack it does not know. */

struct jump_probe {
  async__ctx main;
  async__ctx co;
  jmp_buf env;
  int jumps;
  int done;
};

__attribute__((noinline)) static void jump_back(struct jump_probe *p) {
  volatile char pad[256];

  pad[0] = (char)p->jumps;
  longjmp(p->env, 1 + pad[0]);
}

static void jump_entry(void *arg) {
  async__ctx_entered();
  struct jump_probe *p = arg;

  if (setjmp(p->env) == 0) jump_back(p);
  p->jumps++;
  async__ctx_switch(&p->co, &p->main, 0);
  if (setjmp(p->env) == 0) jump_back(p);
  p->jumps++;
  p->done = 1;
  async__ctx_switch(&p->co, &p->main, 1);
}

static void test_ctx_longjmp_within_coroutine(void **state) {
  struct test_stack s;
  struct jump_probe p;
  volatile int main_jumps = 0;

  (void)state;
  memset(&p, 0, sizeof p);
  stack_new(&s);
  async__ctx_make(&p.co, s.lo, s.size, jump_entry, &p);
  async__ctx_switch(&p.main, &p.co, 0);
  /* Main's own stack, whose bounds ASan reported when it was first left. */
  if (setjmp(p.env) == 0) jump_back(&p);
  main_jumps++;
  async__ctx_switch(&p.main, &p.co, 0);
  assert_int_equal(p.done, 1);
  assert_int_equal(p.jumps, 2);
  assert_int_equal(main_jumps, 1);
  stack_free(&s);
}

/* An entry function that returns is a bug the switch makes loud: the
 * process dies of a signal instead of running off the top of the stack. */

static void returning_entry(void *arg) {
  async__ctx_entered();
  (void)arg;
}

static void test_ctx_entry_return_kills_the_process(void **state) {
  pid_t pid;
  int status;

  (void)state;
  pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    /* No cmocka assertions here: a failure would longjmp into the copy of
     * the runner and go on running the rest of the tests in the child. */
    const struct rlimit no_core = {0, 0};
    async__ctx main_ctx, co;
    size_t size = TEST_STACK_SIZE;
    void *lo = mmap(NULL, size, PROT_READ | PROT_WRITE,
                    MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);

    if (lo == MAP_FAILED) _exit(2);
#if defined(TEST_HAVE_VALGRIND)
    VALGRIND_STACK_REGISTER(lo, (char *)lo + size);
#endif
    setrlimit(RLIMIT_CORE, &no_core);
    /* cmocka catches these to report a crashing test; here the crash is
     * the expected outcome, to be seen by the parent. */
    signal(SIGILL, SIG_DFL);
    signal(SIGTRAP, SIG_DFL);
    signal(SIGABRT, SIG_DFL);
    signal(SIGSEGV, SIG_DFL);
    signal(SIGBUS, SIG_DFL);
    memset(&main_ctx, 0, sizeof main_ctx);
    async__ctx_make(&co, lo, size, returning_entry, NULL);
    async__ctx_switch(&main_ctx, &co, 0);
    _exit(0);
  }
  assert_int_equal(waitpid(pid, &status, 0), pid);
  assert_true(WIFSIGNALED(status));
  /* ud2 on x86-64, brk on AArch64, abort() with ucontext. */
  assert_true(WTERMSIG(status) == SIGILL || WTERMSIG(status) == SIGTRAP ||
              WTERMSIG(status) == SIGABRT);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_ctx_ping_pong),
      cmocka_unit_test(test_ctx_stack_reused_after_death),
      cmocka_unit_test(test_ctx_two_coroutines_switch_directly),
      cmocka_unit_test(test_ctx_entry_receives_argument),
      cmocka_unit_test(test_ctx_stack_aligned_at_entry),
      cmocka_unit_test(test_ctx_unaligned_top_is_rounded),
      cmocka_unit_test(test_ctx_callee_saved_registers_survive),
      cmocka_unit_test(test_ctx_callee_saved_registers_survive_clobbering),
      cmocka_unit_test(test_ctx_fp_control_is_per_context),
      cmocka_unit_test(test_ctx_deep_recursion),
      cmocka_unit_test(test_ctx_longjmp_within_coroutine),
      cmocka_unit_test(test_ctx_entry_return_kills_the_process),
  };

  return cmocka_run_group_tests(tests, NULL, NULL);
}
