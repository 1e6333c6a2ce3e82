/* Coroutine stacks: mmap'd in chunks, pooled, reused, guarded.
 *
 * A stack is a range of address space the kernel commits lazily, page by
 * page, when first touched. Its lowest page is a guard: MADV_GUARD_INSTALL
 * (Linux 6.13+) where the kernel has it, which costs no mapping; otherwise an
 * mprotect(PROT_NONE) page while the process-wide budget of mappings allows
 * (each one splits a mapping and vm.max_map_count is 65530 by default);
 * beyond that a canary at the bottom, checked at each switch.
 *
 * Overflow onto a guard page raises SIGSEGV; a handler on an alternate signal
 * stack recognises a fault just below the running stack, writes
 *   libasync: stack overflow in task 'NAME' (stack size N bytes)
 * to stderr and lets the process die of the signal. A broken canary is
 * reported the same way, then abort(). */
#ifndef ASYNC_STACK_H
#define ASYNC_STACK_H

#include <stddef.h>

typedef struct async__stack async__stack;
typedef struct async__stack_pool async__stack_pool;

/* Writes the name of the stack's owner (a task) into buf, NUL-terminated;
 * must be async-signal-safe: it is called from the SIGSEGV handler. */
typedef void (*async__stack_namer)(const void *owner, char *buf, size_t len);

#define ASYNC__STACK_DEFAULT_SIZE (256u * 1024u)
#define ASYNC__STACK_MIN_SIZE (16u * 1024u)

enum async__guard {
  ASYNC__GUARD_MADVISE = 1, /* MADV_GUARD_INSTALL */
  ASYNC__GUARD_MPROTECT,    /* a PROT_NONE page */
  ASYNC__GUARD_CANARY       /* a checked pattern at the bottom */
};

/* A pool per loop. `namer` may be NULL. Returns 0 or -ENOMEM. */
int async__stack_pool_new(async__stack_pool **out, async__stack_namer namer);

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

/* Tells the overflow reporter which stack runs now on this thread. */
static inline void async__stack_set_current(async__stack *s) {
  async__stack_current = s;
}

/* Checks the canary of a canary-guarded stack (a no-op for the others); on
 * damage reports the owner's name and aborts. Called when a task is left. */
void async__stack_check(const async__stack *s);

/* Installs the SIGSEGV reporter and an alternate signal stack for the
 * calling thread if it has none. Idempotent. Returns 0 or a negative errno. */
int async__stack_reporter_install(void);

/* Process-wide knobs for tests: forget the madvise guard (as on an older
 * kernel), and the mprotect budget (number of guards allowed). */
void async__stack_test_config(int allow_madvise_guard, long mprotect_budget);

#endif
