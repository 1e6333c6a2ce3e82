/* SPDX-License-Identifier: MIT */
/* The platform layer (src/os): what the rest of the library needs from the
 * machine and the kernel, behind small interfaces.
 *
 *   compat   likely/unlikely, container_of, the always-on assert
 *   tls      thread-locals read or written after a context switch
 *   list     the intrusive doubly-linked list and its walks
 *   ctx      the context switch (ctx.c, ctx_*.S, ctx_ucontext.c)
 *   stack    task stacks: pools, guards, overflow reports (stack.c)
 *   poll     the poller backends (backend.c, poll_*.c)
 *   sparse   arrays indexed by fd number, in proportion to use (sparse.c)
 *   slab     fixed-size blocks carved from aligned chunks (slab.c)
 *
 * Nothing here knows about loops or tasks. */
#ifndef ASYNC_OS_H
#define ASYNC_OS_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

/* {==== compat ============================================================ */

#define async__container_of(ptr, type, member)                                 \
  ((type *)(void *)((char *)(ptr)-offsetof(type, member)))

#if defined(__GNUC__)
#define async__likely(x) __builtin_expect(!!(x), 1)
#define async__unlikely(x) __builtin_expect(!!(x), 0)
#define ASYNC__NOINLINE __attribute__((noinline))
#else
#define async__likely(x) (x)
#define async__unlikely(x) (x)
#define ASYNC__NOINLINE
#endif

/* Internal invariants: checked in every build, cheap, fatal. */
#define ASYNC__ASSERT(cond)                                                    \
  do {                                                                         \
    if (async__unlikely(!(cond)))                                              \
      async__assert_fail(#cond, __FILE__, __LINE__);                           \
  } while (0)
_Noreturn void async__assert_fail(const char *what, const char *file, int line);

/* x != x, said once: every call taking seconds rejects NaN with it. */
static inline int async__isnan(double x) { return x != x; }
/* What a call returning seconds answers for an object it does not know. */
#define ASYNC__NAN (0.0 / 0.0)

/* }==== */

/* {==== tls: thread-locals across a switch ============================== */

/* A task may be resumed on a thread other than the one it was suspended
 * on: a loop may move to another thread while it is not running, and a
 * close may run on any thread, resuming the suspended tasks there so that
 * they unwind. The compiler knows nothing of that. For it a function runs
 * on one thread from its call to its return, so the address of a
 * thread-local computed before a call stays good after it, and GCC for
 * AArch64 does keep it: it reads the thread pointer (tpidr_el0) once per
 * function, keeps it in a callee-saved register across the calls, and the
 * switch gives that register back as it was, holding the old thread's
 * pointer. An access after the switch then reads or writes the old
 * thread's slot. (x86-64 hides this: there the compiler addresses a
 * thread-local through %fs, whose base the CPU reads at each access.)
 *
 * So an access to a thread-local of the library that may come after a
 * switch in the same function (inlining included) goes through an
 * accessor that finds the thread pointer where it stands:
 * ASYNC__TLS_LOAD and ASYNC__TLS_STORE below, or, where the cost does not
 * matter (sanitizer builds), a function that is never inlined. These
 * macros are the compiler's own initial-exec sequence, written as asm that
 * the compiler can neither merge with an earlier copy nor move across the
 * switch: the same instructions, computed anew. The variables they name
 * must be global (an asm names the symbol) and initial-exec. On other
 * machines and compilers they are not defined, and the accessors that use
 * them are functions of their own instead (async__loop_here in loop.c,
 * async__stack_set_current in stack.c): a call to a function the compiler
 * cannot see into computes the address inside, each time.
 *
 * Where the library keeps thread-locals, and how each is safe:
 *   async__tls_loop (core/loop.c)   written only by the functions that
 *     run a loop, on the thread that runs it (theirs never changes under
 *     them: the loop's context is that thread's own stack); read through
 *     async__loop_here (core.h) everywhere. The switch itself reads none:
 *     a task resumed is back on its own loop, t->fut.loop (task.c).
 *   async__stack_current (os/stack.c)   written at every switch, through
 *     async__stack_set_current; read by the SIGSEGV handler and the pool,
 *     on their own thread.
 *   async__context_base (core/context.c)   the context outside any task:
 *     used only when async__loop_here found no loop running on the
 *     thread, that is by code that does not run in a task and so has not
 *     switched.
 *   async__ctx_leaving, async__ctx_dead_fiber (os/ctx.c, sanitizer builds)
 *     read after the swap in functions never inlined.
 *   sort_futs (compose/distinct.c), async__stack_chaining and
 *     async__stack_altstack_checked (os/stack.c)   set and read with no
 *     switch between (a sort, a signal handler, an installation). */
#if defined(__GNUC__) && defined(__ELF__) && defined(__x86_64__) &&            \
    !defined(__ILP32__)
#define ASYNC__TLS_LOAD(out, sym)                                              \
  __asm__ volatile("movq " #sym "@gottpoff(%%rip), %0\n\t"                     \
                   "movq %%fs:(%0), %0"                                        \
                   : "=r"(out)                                                 \
                   :                                                           \
                   : "memory")
#define ASYNC__TLS_STORE(sym, value)                                           \
  do {                                                                         \
    uintptr_t async__off;                                                      \
    __asm__ volatile("movq " #sym "@gottpoff(%%rip), %0\n\t"                   \
                     "movq %1, %%fs:(%0)"                                      \
                     : "=&r"(async__off)                                       \
                     : "r"(value)                                              \
                     : "memory");                                              \
  } while (0)
#elif defined(__GNUC__) && defined(__ELF__) && defined(__aarch64__) &&         \
    !defined(__ILP32__)
#define ASYNC__TLS_LOAD(out, sym)                                              \
  do {                                                                         \
    uintptr_t async__tp;                                                       \
    __asm__ volatile("mrs %1, tpidr_el0\n\t"                                   \
                     "adrp %0, :gottprel:" #sym "\n\t"                         \
                     "ldr %0, [%0, #:gottprel_lo12:" #sym "]\n\t"              \
                     "ldr %0, [%1, %0]"                                        \
                     : "=&r"(out), "=&r"(async__tp)                            \
                     :                                                         \
                     : "memory");                                              \
  } while (0)
#define ASYNC__TLS_STORE(sym, value)                                           \
  do {                                                                         \
    uintptr_t async__tp, async__off;                                           \
    __asm__ volatile("mrs %0, tpidr_el0\n\t"                                   \
                     "adrp %1, :gottprel:" #sym "\n\t"                         \
                     "ldr %1, [%1, #:gottprel_lo12:" #sym "]\n\t"              \
                     "str %2, [%0, %1]"                                        \
                     : "=&r"(async__tp), "=&r"(async__off)                     \
                     : "r"(value)                                              \
                     : "memory");                                              \
  } while (0)
#endif

/* }==== */

/* {==== list: doubly-linked, circular, intrusive ========================= */

typedef struct async__list {
  struct async__list *prev, *next;
} async__list;

static inline void async__list_init(async__list *h) { h->prev = h->next = h; }
static inline int async__list_empty(const async__list *h) {
  return h->next == h;
}
/* Inserts n before h: at the tail when h is a list head. */
static inline void async__list_push(async__list *h, async__list *n) {
  n->prev = h->prev;
  n->next = h;
  h->prev->next = n;
  h->prev = n;
}
/* Unlinks n and makes it a list of its own, so removing twice is safe. */
static inline void async__list_remove(async__list *n) {
  n->prev->next = n->next;
  n->next->prev = n->prev;
  n->prev = n->next = n;
}
/* Walks the list headed by h, n on each node in turn. The body must not
 * unlink n: a walk that does uses the _safe form, which has read the next
 * node (into nx) before the body runs. async__list_item is the node's
 * object. */
#define async__list_each(n, h)                                                 \
  for ((n) = (h)->next; (n) != (h); (n) = (n)->next)
#define async__list_each_safe(n, nx, h)                                        \
  for ((n) = (h)->next, (nx) = (n)->next; (n) != (h);                          \
       (n) = (nx), (nx) = (n)->next)
#define async__list_item(n, type, member) async__container_of(n, type, member)

/* Moves every node of `from` to the empty list `to`. */
static inline void async__list_move(async__list *from, async__list *to) {
  if (async__list_empty(from)) {
    async__list_init(to);
    return;
  }
  to->next = from->next;
  to->prev = from->prev;
  to->next->prev = to;
  to->prev->next = to;
  async__list_init(from);
}

/* }==== */

/* {==== ctx =============================================================== */

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

#if defined(__SANITIZE_THREAD__)
#define ASYNC__TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define ASYNC__TSAN 1
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
#if defined(ASYNC__TSAN)
  void *tsan_fiber; /* NULL for the thread's own stack until first left */
  int tsan_thread;  /* tsan_fiber is a thread's, learned when it is left */
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

/* Gives a context made by async__ctx_make its ThreadSanitizer fiber;
 * a no-op in other builds. Called by both makes. */
void async__ctx_sanitizer_make(async__ctx *ctx);

/* Forgets what the sanitizers keep for a context that will never run again
 * and did not die by switching away (a task ended at loop close). */
void async__ctx_release(async__ctx *ctx);

/* The raw switch (assembly or swapcontext), without annotations. */
void async__ctx_swap(async__ctx *from, async__ctx *to);

/* The first thing an entry function calls, before any other code: it ends
 * the sanitizer's half-done switch into the new context. */
void async__ctx_entered(void);

/* }==== */

/* {==== stack ============================================================= */

/* Coroutine stacks: mmap'd in chunks, pooled, reused, guarded.
 *
 * A stack is a range of address space the kernel commits lazily, page by
 * page, when first touched. Under it is a guard region (the pool's guard
 * size, 64 KiB by default): MADV_GUARD_INSTALL (Linux 6.13+) where the
 * kernel has it, which costs no mapping whatever its length (probed once:
 * qemu-user accepts the advice and ignores it); otherwise
 * mprotect(PROT_NONE) while the process-wide budget of mappings allows (each
 * one splits a mapping and vm.max_map_count is 65530 by default); beyond
 * that a canary at the bottom of the stack, checked at each switch, and
 * the region is plain memory.
 *
 * Overflow into a guard region raises SIGSEGV; a handler on an alternate
 * signal stack recognises a fault in or just under the running stack's
 * region (or, on a canary stack, any fault once its canary is broken),
 * writes
 *   libasync: stack overflow in task 'NAME' (stack size N bytes)
 * to stderr and lets the process die of the signal. A broken canary found
 * at a switch is reported the same way, then abort(); a canary stack's
 * message adds that it was found late and what may be corrupt. */

#include <stddef.h>

typedef struct async__stack async__stack;
typedef struct async__stack_pool async__stack_pool;

/* Writes the name of the stack's owner (a task) into buf, NUL-terminated;
 * must be async-signal-safe: it is called from the SIGSEGV handler. */
typedef void (*async__stack_namer)(const void *owner, char *buf, size_t len);

#define ASYNC__STACK_DEFAULT_SIZE (256u * 1024u)
#define ASYNC__STACK_MIN_SIZE (16u * 1024u)
#define ASYNC__STACK_DEFAULT_GUARD (64u * 1024u)
#define ASYNC__STACK_MAX_GUARD ((size_t)1 << 30)

enum async__guard {
  ASYNC__GUARD_MADVISE = 1, /* MADV_GUARD_INSTALL */
  ASYNC__GUARD_MPROTECT,    /* a PROT_NONE page */
  ASYNC__GUARD_CANARY       /* a checked pattern at the bottom */
};

/* A pool per loop. `namer` may be NULL. `guard` is the size of the guard
 * region under each stack, rounded up to whole pages; 0 means
 * ASYNC__STACK_DEFAULT_GUARD. Returns 0, -EINVAL (guard over
 * ASYNC__STACK_MAX_GUARD) or -ENOMEM. */
int async__stack_pool_new(async__stack_pool **out, async__stack_namer namer,
                          size_t guard);

/* Unmaps every stack of the pool, in use or not. */
void async__stack_pool_free(async__stack_pool *pool);

/* A stack of at least `size` usable bytes (rounded up to whole pages, at
 * least ASYNC__STACK_MIN_SIZE), for `owner`. NULL when memory is short. */
async__stack *async__stack_get(async__stack_pool *pool, size_t size,
                               const void *owner);

/* Gives the stack back to its pool. It must not be the running stack. */
void async__stack_put(async__stack_pool *pool, async__stack *s);

/* Unmaps the wholly free chunks of classes that cache more free stacks
 * than their budget. The loop calls it when it is about to block, so that
 * neither a burst of tasks ending nor one starting pays for it. */
void async__stack_trim(async__stack_pool *pool);

/* The usable range to run on: [lo, lo + size). */
void *async__stack_lo(const async__stack *s);
size_t async__stack_size(const async__stack *s);
enum async__guard async__stack_guard(const async__stack *s);

/* The stack running on this thread, for the overflow reporter (NULL: the
 * thread's own). It is written at every switch, so it uses the initial-exec
 * model: one store relative to the thread pointer, and no lazy allocation
 * of the thread-local block, which a signal handler could not afford. */
#if defined(__GNUC__)
#define ASYNC__STACK_TLS __attribute__((tls_model("initial-exec")))
#else
#define ASYNC__STACK_TLS
#endif
extern _Thread_local async__stack *async__stack_current ASYNC__STACK_TLS;

/* Tells the overflow reporter which stack runs now on this thread. Called
 * at every switch, so after earlier ones: see "tls" above. */
#if defined(ASYNC__TLS_STORE)
static inline void async__stack_set_current(async__stack *s) {
  ASYNC__TLS_STORE(async__stack_current, s);
}
#else
void async__stack_set_current(async__stack *s);
#endif

/* Checks the canary of a canary-guarded stack (a no-op for the others); on
 * damage writes the owner's name to stderr and aborts. */
void async__stack_check(const async__stack *s);
/* 0 if the canary of s is broken, else 1 (also for a guarded stack): what
 * the core checks when a task is left, to report it its own way. */
int async__stack_intact(const async__stack *s);

/* Installs the SIGSEGV reporter and an alternate signal stack for the
 * calling thread if it has none. Idempotent. Returns 0 or a negative errno. */
int async__stack_reporter_install(void);

/* Process-wide knobs for tests: forget the madvise guard (as on an older
 * kernel), and the mprotect budget (number of guards allowed). */
void async__stack_test_config(int allow_madvise_guard, long mprotect_budget);

/* }==== */

/* {==== slab ============================================================== */

/* Fixed-size blocks (the loop's futures and tasks) carved from 2 MiB chunks
 * aligned to their size, so that a block finds its chunk by masking its
 * address. A burst of spawns then costs a pointer bump per block where
 * malloc cost a hundred instructions and a header, and the memory of a
 * burst goes back in whole chunks when the loop idles.
 *
 * A freed block stays readable while its slab lives: its chunk is kept
 * mapped until every block of it is free, and then only decommitted
 * (reads see zeros) and kept for reuse, so a stale handle reads a magic
 * that says dead instead of faulting. Under AddressSanitizer, and under
 * valgrind in a build that knows it (ASYNC_VALGRIND), blocks come from
 * malloc instead, so that the tools see each one; free blocks are then
 * cached up to a budget, as the chunks would keep them. */
typedef struct async__slab_chunk async__slab_chunk;
typedef struct async__slab {
  size_t size; /* block size: a multiple of 16, at most 32 KiB */
  size_t link; /* where a free block keeps its free-list link */
  void *free;  /* blocks put back, newest first */
  size_t nfree;
  char *bump, *end;          /* the never-used part of the newest chunk */
  async__slab_chunk *chunks; /* every chunk, committed or not */
  size_t nempty;             /* committed chunks with no block out */
  int heap;                  /* blocks come from malloc (see above) */
} async__slab;

/* `size` is rounded up to 16; `link` is the offset, inside a free block,
 * of the pointer-sized word the free list may overwrite. No allocation. */
void async__slab_init(async__slab *s, size_t size, size_t link);
/* A block of s->size bytes, not zeroed; NULL when memory is short. */
void *async__slab_get(async__slab *s);
/* Gives a block back to s, its slab; s is NULL once that slab is freed,
 * and the block then goes back to the system with the last block out of
 * its chunk. Any thread may give back a block whose slab is freed. */
void async__slab_put(async__slab *s, void *block);
/* Decommits the chunks with no block out, but one, and frees the heap
 * blocks cached beyond the budget. Called when the loop is about to block:
 * neither a burst of tasks ending nor one starting pays for it. */
void async__slab_trim(async__slab *s);
/* Unmaps the chunks with no block out; the others live on, each until its
 * last block is put. s may then be initialised again. */
void async__slab_free(async__slab *s);

/* }==== */

/* {==== sparse ============================================================ */

/* An array of fixed-size slots indexed by a non-negative int (an fd
 * number), allocated a leaf of 256 slots at a time, zeroed, where numbers
 * are used: the memory is in proportion to the numbers in use, not to the
 * largest. A slot's address never changes until the array is freed. */
typedef struct async__sparse {
  void ***dirs; /* dirs[key >> 18][(key >> 8) & 1023]: a leaf, or NULL */
  size_t ndirs;
  size_t slot_size;
} async__sparse;

void async__sparse_init(async__sparse *s, size_t slot_size);
/* The slot of key, or NULL if its leaf was never made (or key < 0). */
void *async__sparse_find(const async__sparse *s, int key);
/* The slot of key, making its leaf (zeroed) if needed; NULL when memory is
 * short or key < 0. */
void *async__sparse_get(async__sparse *s, int key);
/* The smallest key >= `key` whose leaf exists, or -1: walks the slots made
 * without visiting the empty ranges. */
int async__sparse_next(const async__sparse *s, int key);
void async__sparse_free(async__sparse *s);

/* }==== */

/* {==== poll ============================================================== */

/* Poller backends: the small interface between the loop and the kernel's
 * readiness API. One file per backend (poll_epoll.c, poll_poll.c,
 * poll_kqueue.c); the loop picks one at creation by name.
 *
 * The loop keeps, per fd, the set of events someone waits for, and tells the
 * backend each change with `ctl` (prev -> next; next == 0 forgets the fd).
 * `wait` reports readiness through a callback, which only records what
 * happened: it must not call back into the backend.
 *
 * Readiness is level-triggered in every backend: an fd that stays ready is
 * reported at every wait until its interest changes.
 *
 * An fd should be forgotten (next == 0) before it is closed. What happens
 * when the user closes a watched fd behind the loop's back:
 *   epoll   watches the open file. Closed for good, its registration goes
 *           and nothing more is reported. If a duplicate keeps the file
 *           open (dup, a forked child, SCM_RIGHTS), the old number goes on
 *           being reported until the loop forgets it (ctl then fails with
 *           -EBADF, but the backend has forgotten it all the same); any
 *           later report of that orphan is dropped and the backend rebuilds
 *           its epoll set without it, so the loop does not spin.
 *   poll    watches the number, and the file's identity (st_dev, st_ino)
 *           taken when it was added. A closed one, or one whose number now
 *           names another file, is reported as ASYNC__POLL_STALE at every
 *           wait until the loop forgets it or tells `ctl` again (which
 *           then watches the new file and returns 1).
 *   kqueue  filters belong to the descriptor: gone with it, never reported.
 * In every backend a number the user reuses is watched correctly as soon
 * as the loop tells `ctl` its interest again, even with a stale prev; epoll
 * and poll then return 1, so that the loop can end the waits made for the
 * old file.
 *
 * None of this survives fork: a child must not use its parent's poller (an
 * epoll set is shared with the parent, a kqueue is not inherited), but it
 * may close it: `close` tells the kernel nothing, and only closes the
 * poller's fd where this process has a copy of its own (epoll), never a
 * number that fork did not copy (kqueue), which may name another file
 * by now. */

#include <stdint.h>

#define ASYNC__POLL_IN 1u
#define ASYNC__POLL_OUT 2u
#define ASYNC__POLL_ERR 4u   /* error or hang-up: wakes both directions */
#define ASYNC__POLL_STALE 8u /* the file watched is closed or replaced */

/* What a backend reports for an fd watched for `asked` when the kernel
 * said `got` (IN/OUT bits) and `broken` (an error, a hang-up, a closed fd):
 * nothing that was not asked, and a broken fd wakes every direction asked,
 * so that whoever waits meets the error in read or write. */
/* The timespec a kernel wait takes for a timeout in ns, filled in *ts:
 * NULL (no limit) for a negative one. */
static inline const struct timespec *async__poll_timespec(int64_t timeout_ns,
                                                          struct timespec *ts) {
  if (timeout_ns < 0) return NULL;
  ts->tv_sec = (time_t)(timeout_ns / 1000000000);
  ts->tv_nsec = (long)(timeout_ns % 1000000000);
  return ts;
}

static inline unsigned async__poll_report(unsigned asked, unsigned got,
                                          int broken) {
  if (broken) got |= ASYNC__POLL_ERR | asked;
  return got & (asked | ASYNC__POLL_ERR);
}

typedef struct async__poller async__poller;
typedef void (*async__poll_cb)(void *ud, int fd, unsigned revents);

typedef struct async__backend {
  const char *name;
  /* Returns 0 or a negative errno. */
  int (*init)(async__poller **out);
  void (*close)(async__poller *p);
  /* Changes fd's interest from prev to next (IN/OUT bits; others are
   * ignored). prev == 0 adds the fd, next == 0 removes it; prev == next ==
   * 0 does nothing. prev is only a hint: each backend knows or finds out
   * what it has registered, so adding twice just updates, removing an fd
   * that is not watched succeeds, and changing the interest of an fd that
   * was closed and reopened behind the loop's back watches the new file.
   * Returns 0; 1 when fd had a registration that turned out to be for
   * another file than fd names now (closed and reused behind the loop's
   * back: the new file is now watched); or a negative errno:
   *   -EBADF   fd is not open (or fd < 0) when adding, in every backend
   *            (poll checks with fcntl). When changing or removing, epoll
   *            and kqueue say -EBADF too; poll succeeds, and a closed fd
   *            left in its set is reported as ASYNC__POLL_ERR instead.
   *   -EPERM   epoll only: the file cannot be polled (a regular file,
   *            /dev/null); it is always ready, so the loop should not wait.
   *            poll and kqueue accept such files and report them ready.
   *   -ENOMEM  and whatever else the kernel says. */
  int (*ctl)(async__poller *p, int fd, unsigned prev, unsigned next);
  /* Waits at most timeout_ns (-1 or any negative: no limit, 0: do not
   * block) and calls cb(ud, fd, revents) once per ready fd. Returns the
   * number of fds reported, 0 on timeout or interruption by a signal, or a
   * negative errno.
   *
   * The wait never ends before timeout_ns has passed unless something is
   * ready: epoll uses epoll_pwait2 (nanoseconds) where the kernel and C
   * library have it, else milliseconds rounded up; poll uses ppoll
   * (milliseconds rounded up on macOS, which lacks it); kqueue takes
   * nanoseconds. One call reports at most 256 fds with epoll and kqueue
   * (the rest come at the next calls, none starved) and all with poll.
   *
   * revents holds only asked directions, plus ASYNC__POLL_ERR for an error
   * or hang-up: EPOLLERR/EPOLLHUP, POLLERR/POLLHUP/POLLNVAL, EV_EOF on the
   * write filter or with a socket error. With epoll and poll ERR comes with
   * every asked direction; with kqueue with those whose filter fired.
   * End of stream is IN, a read then returning 0: a TCP peer's close (until
   * a write draws a reset, then ERR) or shutdown(SHUT_WR). A hang-up (a
   * pipe's writer or a Unix socket's peer gone) is ERR | IN for a reader
   * with epoll and poll, IN with kqueue; a writer whose reader is gone gets
   * ERR | OUT everywhere. poll adds ASYNC__POLL_STALE (with ERR and the
   * asked directions) for an fd closed, or replaced by another file, since
   * it was added. */
  int (*wait)(async__poller *p, int64_t timeout_ns, async__poll_cb cb,
              void *ud);
} async__backend;

/* The backend called `name` ("epoll", "poll", "kqueue"), or the best one
 * built when name is NULL or empty; NULL when there is no such backend. */
const async__backend *async__backend_find(const char *name);

/* Defines async__backend_<x> from async__<x>_init, _close, _ctl, _wait. */
#define ASYNC__BACKEND_DEFINE(x)                                               \
  const async__backend async__backend_##x = {                                  \
      .name = #x,                                                              \
      .init = async__##x##_init,                                               \
      .close = async__##x##_close,                                             \
      .ctl = async__##x##_ctl,                                                 \
      .wait = async__##x##_wait,                                               \
  }

extern const async__backend async__backend_poll;
#if defined(__linux__)
extern const async__backend async__backend_epoll;
#endif
#if defined(__APPLE__) || defined(__FreeBSD__) || defined(__NetBSD__) ||       \
    defined(__OpenBSD__) || defined(__DragonFly__)
extern const async__backend async__backend_kqueue;
#endif

/* }==== */

#endif
