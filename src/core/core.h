/* SPDX-License-Identifier: MIT */
/* Private structures and helpers shared by the library's files.
 *
 * Naming: async__<concept>_* lives in src/<concept>.c. Every list and queue
 * is intrusive: its link sits inside the object, so linking never
 * allocates. */
#ifndef ASYNC_CORE_H
#define ASYNC_CORE_H

#include "async.h"
#include "os/os.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

/* {==== Ready queue ======================================================
 * One FIFO of everything that is ready to run: task resumptions, callbacks
 * and done callbacks, so that they keep asyncio's order among themselves. */

enum async__rn_kind { ASYNC__RN_TASK, ASYNC__RN_CALL, ASYNC__RN_DONECB };

typedef struct async__rnode {
  struct async__rnode *next;
  unsigned kind;
} async__rnode;

typedef struct async__rq {
  async__rnode *head;
  async__rnode **tailp;
  size_t count;
} async__rq;

static inline void async__rq_init(async__rq *q) {
  q->head = NULL;
  q->tailp = &q->head;
  q->count = 0;
}
static inline void async__rq_push(async__rq *q, async__rnode *n) {
  n->next = NULL;
  *q->tailp = n;
  q->tailp = &n->next;
  q->count++;
}
static inline async__rnode *async__rq_pop(async__rq *q) {
  async__rnode *n = q->head;
  if (n) {
    q->head = n->next;
    if (!q->head) q->tailp = &q->head;
    q->count--;
  }
  return n;
}

/* }==== */

/* {==== Timers (timer.c) =================================================
 * A pointer-based binary min-heap ordered by (when, seq): equal deadlines
 * fire in the order they were armed. Insert and remove are O(log n) and
 * allocate nothing; the node lives in its owner (a task, a handle). */

typedef struct async__timer {
  struct async__timer *left, *right, *parent;
  int64_t when; /* nanoseconds on the loop's clock */
  uint32_t seq; /* arming order, compared modulo 2^32 */
  uint32_t armed;
  void (*fire)(struct async__timer *tm); /* called by the loop, unarmed */
} async__timer;

typedef struct async__heap {
  async__timer *root;
  size_t n;
} async__heap;

void async__heap_insert(async__heap *h, async__timer *tm);
void async__heap_remove(async__heap *h, async__timer *tm);

int64_t async__clock_ns(void);
/* Seconds from now to an absolute deadline in ns, saturating; NaN → -1. */
int64_t async__deadline_after(int64_t now, double seconds);

/* Arms tm to fire at `when` (ns); re-arming an armed timer moves it. */
void async__timer_start(async_loop *loop, async__timer *tm, int64_t when);
void async__timer_stop(async_loop *loop, async__timer *tm);
/* Fires every timer due at loop->now, in order. */
void async__timers_run(async_loop *loop);

/* }==== */

/* {==== Futures and tasks (future.c, task.c) ============================ */

#define ASYNC__MAGIC_FUTURE 0x46555455u /* a live future or task */
#define ASYNC__MAGIC_DEAD 0x44454144u   /* freed, or released twice */

enum async__fkind { ASYNC__KIND_FUTURE = 1, ASYNC__KIND_TASK };

/* A registration on a future's waiter list: notify(w, f) runs synchronously
 * when f becomes done, in registration order, after w is unlinked. It must
 * not free f. */
typedef struct async__fwaiter {
  async__list link;
  void (*notify)(struct async__fwaiter *w, async_future *f);
} async__fwaiter;

/* The future, the head of every task.
 * refs counts every holder: the user's reference (user_ref says it is still
 * held, which catches a second release), the loop's for a task not done,
 * one per done-callback record and per waiting task. The object is freed
 * when refs reaches 0. `loop` is NULL once the loop is closed. */
struct async_future {
  uint32_t magic;
  uint8_t kind;
  uint8_t done;
  uint8_t user_ref;
  uint8_t err_read; /* someone awaited it or read its outcome */
  uint32_t refs;
  int err;
  void *result;
  async_loop *loop;
  async__list waiters; /* async__fwaiter */
  /* On loop->objects (every live future, to detach them at close); a task
   * is on loop->tasks instead while it is not done. */
  async__list objects;
};

enum async__tstate {
  ASYNC__T_READY = 1, /* on the ready queue (also before its first run) */
  ASYNC__T_RUNNING,
  ASYNC__T_SUSPENDED, /* parked in a wait, see wait_unlink */
  ASYNC__T_DONE
};

typedef struct async__task async__task;

/* Unlinks a parked task from what it waits on (a timer, an fd, a future, a
 * queue), without waking it. For a task killed at close (t->killed) it
 * must also give back what the wait holds, and it is then called as well
 * for a task woken from the wait but not yet resumed: t->state is READY,
 * the waker already took the record off what it waited on (which may even
 * be freed by now), and only what the wait itself holds is left. */
typedef void (*async__unlink_fn)(async__task *t);
/* Delivers a cancellation to a parked task; NULL means: unlink it and wake
 * it with -ECANCELED. */
typedef void (*async__cancel_fn)(async__task *t);

struct async__task {
  async_future fut; /* first: a task is a future */
  async__rnode rn;  /* ready queue link */
  async__ctx ctx;
  async__stack *stack; /* NULL until the first run and after the last */
  async_fn fn;
  void *arg;
  async__timer timer;
  async__unlink_fn wait_unlink; /* set while parked */
  async__cancel_fn wait_cancel;
  const char *wait_what; /* for dumps: "sleep", "await", "fd", ... */
  void *wait_obj;        /* the waiter record of the current wait */
  int wake;              /* what park() returns */
  int fail;              /* set by async_fail() */
  uint8_t state;
  uint8_t started;
  uint8_t cancel_req;    /* a cancellation not yet delivered */
  uint8_t killed;        /* given up at close: end it without running */
  uint8_t canary;        /* its stack has no guard page: check at each switch */
  uint8_t cancel_queued; /* on loop->cancel_head, its hook not run yet */
  uint32_t stack_size;
  /* Cancellation requests made while not done, merged ones included, less
   * those a deadline scope or task group took back (asyncio's
   * cancelling()/uncancel()): tells the request of a scope from others. */
  uint32_t ncancel;
  struct async__scope *scopes;     /* deadline scopes entered, not yet exited */
  struct async__task *cancel_next; /* loop->cancel_head FIFO */
  uint64_t id;
  char *name; /* NULL: "Task-<id>", formatted on demand */
};

static inline async__task *async__task_of(async_future *f) {
  return (async__task *)f;
}

/* Validates a handle from the user: a live future. */
static inline int async__future_ok(const async_future *f) {
  return f && f->magic == ASYNC__MAGIC_FUTURE;
}

/* Blocks for futures and tasks (one size, sizeof(async__task)) come from a
 * per-loop cache, trimmed to a few thousand when the loop idles: spawning
 * is hot, and a released block stays readable there, which is what lets a
 * second release be caught. */
void *async__future_alloc(async_loop *loop);
void async__future_free_block(async_loop *loop, void *block);
void async__future_cache_free(async_loop *loop);
/* Frees cached blocks beyond a few thousand: called when the loop idles. */
void async__future_cache_trim(async_loop *loop);
void async__future_init(async_future *f, async_loop *loop, int kind);
void async__future_ref(async_future *f);
void async__future_unref(async_future *f);
/* Marks f done and runs its waiters' notifications. */
void async__future_complete(async_future *f, void *result, int err);
void async__future_add_waiter(async_future *f, async__fwaiter *w);
/* async_await (shielded == 0) and async_shield (shielded == 1). */
int async__await(async_future *f, void **result, int shielded);
/* Frees f's memory (no checks): the future or the task. */
void async__future_destroy(async_future *f);
/* At loop close: detach a future still referenced by its user. */
void async__future_detach(async_future *f);

/* Parks the running task t until async__task_wake(t, code) and returns
 * code. `unlink` must be set; `cancel` may be NULL. It does not look at a
 * pending cancellation: every caller consumes one (returning -ECANCELED)
 * before it registers anything, since it must then register nothing. */
int async__task_park(async_loop *loop, async__task *t, async__unlink_fn unlink,
                     async__cancel_fn cancel, const char *what);
/* Makes a parked task ready; park() will return `code`. */
void async__task_wake(async__task *t, int code);
/* The running task of this thread's loop, or NULL. */
async__task *async__task_current(void);
/* Runs or finishes a task popped from the ready queue (loop context). */
void async__task_run(async_loop *loop, async__task *t);
/* Requests cancellation of a task (see async_future_cancel). */
int async__task_cancel(async__task *t);
/* Ends a task given up at close, whatever its state. */
void async__task_kill(async_loop *loop, async__task *t);
/* Frees the stack of a task that just ended (see async_loop.zombie). */
void async__task_reap(async_loop *loop);
/* Signal-safe name of a task for the overflow reporter. */
void async__task_namer(const void *owner, char *buf, size_t len);
/* async__task_require(&err), the common check of every suspending call, is
 * inline at the end of this file: it returns the running task, or NULL
 * and err = -EPERM. */
/* A deadline scope as its task sees it. compose/timeout.c makes and arms
 * them (async_timeout storage in the task's own stack frames); the task
 * only lists them, innermost first, because its end must know: a task
 * killed inside some has their timers disarmed before its stack goes
 * (async__task_kill), and one whose function returns inside one has lost
 * the memory under an armed timer, a programming error reported as fatal.
 * `when`, `ncancel0` and `expired` are timeout.c's. */
typedef struct async__scope {
  async__timer timer;
  async__task *task;
  struct async__scope *outer, *inner; /* task->scopes list */
  int64_t when;                       /* loop clock, ns; INT64_MAX: none */
  uint32_t magic;                     /* ASYNC__MAGIC_SCOPE while entered */
  uint32_t ncancel0;                  /* task->ncancel at entry */
  int expired; /* the timer fired and requested a cancellation */
} async__scope;

#define ASYNC__MAGIC_SCOPE 0x544d4f55u /* "TMOU" */

/* Takes s off its task's list of scopes. */
void async__scope_unlist(async__scope *s);

/* }==== */

/* {==== Callbacks (loop.c) ============================================== */

enum async__hstate { ASYNC__H_SCHEDULED = 1, ASYNC__H_DONE };

struct async_handle {
  async__rnode rn;
  async__timer timer;
  async_callback cb;
  void *arg;
  async_loop *loop;
  uint32_t magic;
  uint8_t state;
  uint8_t user_ref;
  uint8_t loop_ref;
  uint8_t cancelled;
};

/* A done callback waiting on a future, then on the ready queue. */
typedef struct async__donecb {
  async__fwaiter w;
  async__rnode rn;
  async_done_fn cb;
  void *arg;
  async_future *f; /* holds a reference */
} async__donecb;

/* }==== */

/* {==== File descriptors (fd.c) ========================================= */

typedef struct async__fdent {
  async__list waiters; /* async__fdwait */
  unsigned interest;   /* what the backend was last told */
  int dirty;           /* on the loop's dirty list */
  int next_dirty;
} async__fdent;

typedef struct async__fdtab {
  async__fdent **pages;
  int npages;
  int dirty_head; /* -1: none */
} async__fdtab;

void async__fd_poll_cb(void *ud, int fd, unsigned revents);
void async__fd_sync_dirty(async_loop *loop);
void async__fd_close_all(async_loop *loop);

/* }==== */

/* {==== The loop (loop.c) =============================================== */

#define ASYNC__MAGIC_LOOP 0x4c4f4f50u

/* Loop invariants:
 * - `current` is the task whose stack runs, NULL while the loop's own code
 *   runs on the thread's stack (saved in `ctx` while a task runs).
 * - Every task not done is on `tasks` and is READY (on `ready`), RUNNING
 *   (it is `current`) or SUSPENDED (reachable from what it waits on).
 * - `batch` counts the ready items that belong to this iteration: a task
 *   that suspends hands over straight to the next one while batch > 0 and
 *   the next item is a task, else back to the loop. */
struct async_loop {
  uint32_t magic;
  uint8_t running;
  uint8_t closed;
  uint8_t closing;
  uint8_t stopping;
  int64_t last_poll; /* real ns: when the poller was last asked */
  async__ctx ctx;
  async__task *current;
  async__rq ready;
  size_t batch;
  unsigned iter;
  async__heap timers;
  uint32_t timer_seq;
  int64_t now; /* ns, read at the start of an iteration */
  /* Virtual clock (async_loop_options.virtual_clock): `now` starts at 0 and
   * is the only time there is; it moves when the loop jumps to the next
   * timer instead of blocking, or by the real time spent waiting while
   * something may arrive from outside (an fd, another thread). */
  int virtual_clock;
  const async__backend *backend;
  async__poller *poller;
  async__fdtab fds;
  size_t fd_waiters;
  async__stack_pool *stacks;
  size_t stack_size;
  int report_overflow;
  async__list tasks; /* not done, in creation order */
  size_t ntasks;
  async__list objects; /* every live future, to detach them at close */
  uint64_t next_task_id;
  async__task *zombie; /* ended task whose stack is freed by the next runner */
  /* Parked tasks whose cancel hook is still to run (async__task_cancel),
   * and whether a cancellation is running them. */
  async__task *cancel_head;
  async__task **cancel_tail;
  int cancel_running;
  void *block_cache; /* freed future blocks, linked through their first word */
  size_t nblock_cache;
  /* async_loop_call_soon_threadsafe */
  pthread_mutex_t ts_lock;
  async__rq ts_queue;
  int wake_fd[2]; /* eventfd in [0] and [1], or a pipe */
  atomic_int ts_signalled;
  int ts_closed; /* under ts_lock: the close refuses calls from now on */
};

/* The loop running on this thread. Initial-exec: one load from the thread
 * pointer on every suspending call, instead of a __tls_get_addr call in the
 * shared library (which is then not meant to be dlopen'ed late by a
 * program short of static TLS, a few bytes' worth). */
#if defined(__GNUC__)
#define ASYNC__TLS_FAST __attribute__((tls_model("initial-exec")))
#else
#define ASYNC__TLS_FAST
#endif
extern _Thread_local async_loop *async__tls_loop ASYNC__TLS_FAST;

int64_t async__loop_now(async_loop *loop);
/* Called by a task that ends a batch with more tasks ready: starts the next
 * iteration right there, without a trip to the loop's stack, when that
 * iteration would neither poll nor fire a timer. Returns 1 if it did. */
int async__loop_iterate_inline(async_loop *loop);
/* Moves the calls queued by other threads onto the ready queue. */
void async__loop_wake_drain(async_loop *loop);

/* Consumes a cancellation request of t that is still pending, as
 * -ECANCELED: what every suspending call does before it registers anything
 * (it must then register nothing), and after its wait for a request that
 * came once it was woken. */
static inline int async__task_take_cancel(async__task *t) {
  if (async__unlikely(t->cancel_req)) {
    t->cancel_req = 0;
    return -ECANCELED;
  }
  return 0;
}

static inline async__task *async__task_require(int *err) {
  async_loop *loop = async__tls_loop;
  async__task *t = loop ? loop->current : NULL;
  if (async__unlikely(!t)) *err = -EPERM;
  return t;
}

/* }==== */

#endif
