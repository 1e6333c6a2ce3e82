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
 * Timers ordered by (when, seq): equal deadlines fire in the order they
 * were armed. Two structures share them. The run is a sorted list taking
 * every timer that is due after all of it or before all of it, in O(1):
 * timers armed with one delay (a thousand tasks sleeping 1 s, one idle
 * timeout per connection) are armed in deadline order, and never touch the
 * heap. The others go to a 4-ary heap in an array of (when, timer) pairs,
 * O(log n) with one cache line of keys per level, grown by doubling and
 * freed when it empties. When it cannot grow, the timer goes into the run
 * by linear insertion: slow, but arming never fails. The node lives in its
 * owner (a task, a handle). */

typedef struct async__timer {
  struct async__timer *prev, *next; /* in the run */
  size_t slot;                      /* in the heap, or ASYNC__TIMER_RUN */
  int64_t when;                     /* nanoseconds on the loop's clock */
  uint32_t seq;                     /* arming order, compared modulo 2^32 */
  uint32_t armed;
  void (*fire)(struct async__timer *tm); /* called by the loop, unarmed */
} async__timer;

#define ASYNC__TIMER_RUN ((size_t)-1)

typedef struct async__heap_ent {
  int64_t when; /* a copy of tm->when, so that sifting reads no timer */
  async__timer *tm;
} async__heap_ent;

typedef struct async__heap {
  async__timer *root;        /* the earliest timer of all, NULL when none */
  size_t n;                  /* timers in all */
  async__timer *head, *tail; /* the run */
  async__heap_ent *a;        /* the heap: a[0] the least, children 4i+1.. */
  size_t len, cap;
  void *mem; /* the block `a` lies in, aligned so that siblings share a line */
} async__heap;

void async__heap_insert(async__heap *h, async__timer *tm);
void async__heap_remove(async__heap *h, async__timer *tm);

/* The end of the clock's range, about 292 years: a deadline there (an
 * infinite delay, or one beyond the range) is never reached, and its timer
 * never fires. The clocks saturate one below. */
#define ASYNC__TIME_NEVER INT64_MAX

int64_t async__clock_ns(void);
/* The time `seconds` after `now` in ns, rounded up, saturating at
 * INT64_MAX (which INFINITY gives); negative seconds give a time before
 * now (call_later's order). NaN is the caller's to refuse. */
int64_t async__time_after(int64_t now, double seconds);
/* A wait's deadline: as async__time_after, but zero or less seconds (a
 * remaining time gone negative) give `now`, already expired, never a
 * time a wait could mistake for ASYNC__NO_DEADLINE. */
int64_t async__deadline_after(int64_t now, double seconds);

/* Arms tm to fire at `when` (ns); re-arming an armed timer moves it. */
void async__timer_start(async_loop *loop, async__timer *tm, int64_t when);
static inline void async__timer_stop(async_loop *loop, async__timer *tm);
/* Fires every timer due at loop->now, in order. */
void async__timers_run(async_loop *loop);

/* }==== */

/* {==== Context variables (context.c) ==================================
 * A context is an array of (variable id, value) sorted by id, counted by
 * its holders: a task, a callback handle, a done callback record, each
 * thread outside them (NULL is the empty context). Shared, it is never
 * written: a set makes a new one for its holder, so a spawn or a call_soon
 * copies one pointer. Only a context held once is changed in place. Ids,
 * not pointers, name the variables: a freed one's values are never seen
 * by a later one at the same address. */

typedef struct async__cvent {
  uint64_t id;
  void *value;
} async__cvent;

typedef struct async__cvctx {
  uint32_t refs;
  uint32_t n, cap;
  async__cvent e[];
} async__cvctx;

void async__context_free(async__cvctx *c);
static inline void async__context_drop(async__cvctx *c) {
  if (c && --c->refs == 0) async__context_free(c);
}
/* The current context, with a reference for the caller (inline at the end
 * of this file: it reads the loop). */
static inline async__cvctx *async__context_capture(void);

/* }==== */

/* {==== Futures and tasks (future.c, task.c) ============================ */

#define ASYNC__MAGIC_FUTURE 0x46555455u /* a live future or task */
/* Every object the user holds starts with a magic value of its kind, which
 * a call checks first; a freed one says ASYNC__MAGIC_DEAD, so a use after
 * free or a second release is caught while the memory stays readable. */
#define ASYNC__MAGIC_DEAD 0x44454144u /* "DEAD": freed, or released twice */

enum async__fkind {
  ASYNC__KIND_FUTURE = 1,
  ASYNC__KIND_TASK,
  ASYNC__KIND_COMPOSED /* an async__composed */
};

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

/* Unlinks a parked task from what it waits on (an fd, a future, a queue;
 * never the deadline timer, which async__task_park_until owns and stops),
 * without waking it. For a task killed at close (t->killed) it
 * must also give back what the wait holds, and it is then called as well
 * for a task woken from the wait but not yet resumed: t->state is READY,
 * the waker already took the record off what it waited on (which may even
 * be freed by now), and only what the wait itself holds is left. */
typedef void (*async__unlink_fn)(async__task *t);
/* Delivers a cancellation to a parked task; NULL means: unlink it and wake
 * it with -ECANCELED. */
typedef void (*async__cancel_fn)(async__task *t);

/* Where a task is, by state (every task not done is on loop->tasks through
 * fut.objects, a done one on loop->objects):
 * - READY: rn is on loop->ready (also before its first run: started == 0,
 *   stack NULL, ctx unset). wait_* are NULL, except for a task woken from a
 *   park that has not returned yet: then wait_unlink/wait_obj still name
 *   the wait (see async__unlink_fn) and `wake` holds what park returns.
 * - RUNNING: it is loop->current; on no queue; stack and ctx are its own.
 * - SUSPENDED: parked (async__task_park_until); on no ready queue, reachable
 *   only from what it waits on: wait_unlink (or NULL), wait_cancel,
 *   wait_what and wait_obj describe that wait, and `timer` is armed iff the
 *   wait has a deadline. ctx holds its saved registers.
 * - DONE: off every queue, on loop->objects; its stack is given back (by
 *   the next runner, through loop->zombie); only `fut`, id and name still
 *   mean something.
 * - killed (any state, at loop close): it is made READY once and ended
 *   without running; timer and scopes are disarmed at once.
 * cancel_req and ncancel mean something until DONE; `scopes` is non-NULL
 * only while RUNNING, SUSPENDED or READY inside a deadline scope. */
struct async__task {
  async_future fut; /* first: a task is a future */
  async__rnode rn;  /* ready queue link */
  async__ctx ctx;
  async__stack *stack; /* NULL until the first run and after the last */
  async_fn fn;
  void *arg;
  async__timer timer;           /* a park's deadline */
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
  async__cvctx *cv;                /* its context, until it is done */
  struct async__task *cancel_next; /* loop->cancel_head FIFO */
  uint64_t id;
  char *name; /* NULL: "Task-<id>", formatted on demand */
};

/* A future that a composition completes and defines the cancellation of
 * (compose/'s gather and shield futures, asyncio's _GatheringFuture and
 * shield's outer future). Its block (async__future_alloc) starts with
 * this. `cancel` is async_future_cancel on it while it is not done, and
 * returns what that returns; `destroy` gives back what it holds, before
 * the block is freed. Neither may free another composed future. */
typedef struct async__composed_ops {
  int (*cancel)(async_future *f);
  void (*destroy)(async_future *f);
} async__composed_ops;

typedef struct async__composed {
  async_future fut; /* first */
  const async__composed_ops *ops;
} async__composed;

static inline async__task *async__task_of(async_future *f) {
  return (async__task *)f;
}

/* Validates a handle from the user: a live future. */
static inline int async__future_ok(const async_future *f) {
  return f && f->magic == ASYNC__MAGIC_FUTURE;
}

/* Blocks for futures and tasks (one size, sizeof(async__task)) come from
 * the loop's slab (loop->blocks): spawning is hot, and a released block
 * stays readable there, which is what lets a second release be caught. */
void *async__future_alloc(async_loop *loop);
void async__future_free_block(async_loop *loop, void *block);
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

/* The one wait primitive. Parks the running task t until
 * async__task_wake(t, code) or, unless `deadline` is ASYNC__NO_DEADLINE,
 * until the loop's clock reaches `deadline` (ns, as async__deadline_after
 * makes them), and returns code or -ETIMEDOUT. It owns t->timer for the
 * wait: no caller arms a timer of its own to bound a wait.
 *
 * `unlink` takes t off what it waits on (see async__unlink_fn); it may be
 * NULL when the wait holds nothing but its deadline (a sleep). `cancel`
 * may be NULL. It does not look at a pending cancellation: every caller
 * consumes one (returning -ECANCELED) before it registers anything, since
 * it must then register nothing.
 *
 * Races, settled by whichever comes first while t is SUSPENDED:
 * - a wake-up or a cancellation: its code is returned, and the deadline is
 *   void, even if loop time passes it before t runs (the timer is ignored
 *   once t is READY, and stopped before this returns);
 * - the deadline: unlink(t) runs (t still SUSPENDED), then t is woken with
 *   -ETIMEDOUT; a later wake-up cannot happen (t is unlinked) and a
 *   cancellation requested before t runs stays pending in t->cancel_req,
 *   for the caller or the next suspending call to deliver.
 * So exactly one outcome is returned, and -ETIMEDOUT only when the task
 * was still waiting at the deadline. */
#define ASYNC__NO_DEADLINE (-1)
int async__task_park_until(async_loop *loop, async__task *t,
                           async__unlink_fn unlink, async__cancel_fn cancel,
                           const char *what, int64_t deadline);
/* async__task_park_until without a deadline: the hot waits (await, queue,
 * lock) pay no timer branch. */
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
  double when_s;     /* as given, for async_timeout_when: no round trip */
  uint32_t magic;    /* ASYNC__MAGIC_SCOPE while entered */
  uint32_t ncancel0; /* task->ncancel at entry */
  int expired;       /* the timer fired and requested a cancellation */
} async__scope;

#define ASYNC__MAGIC_SCOPE 0x544d4f55u /* "TMOU" */

/* Takes s off its task's list of scopes. */
void async__scope_unlist(async__scope *s);

/* }==== */

/* {==== Callbacks (loop.c) ============================================== */

enum async__hstate { ASYNC__H_SCHEDULED = 1, ASYNC__H_DONE };

#define ASYNC__MAGIC_HANDLE 0x48444c45u /* "HDLE": a callback handle */

/* Validates a handle from the user: live, and the user's reference held. */
static inline int async__handle_ok(const async_handle *h);

struct async_handle {
  uint32_t magic; /* first, where every checked object keeps it */
  uint8_t state;
  uint8_t cancelled;
  uint8_t user_ref; /* where a future keeps its own */
  uint8_t loop_ref;
  uint8_t timed; /* made by call_later/call_at: timer.when is its due time */
  async__rnode rn;
  async__timer timer;
  async_callback cb;
  void *arg;
  async_loop *loop;
  async__cvctx *cv; /* the context it runs in */
};

/* A done callback waiting on a future, then on the ready queue. */
typedef struct async__donecb {
  async__fwaiter w;
  async__rnode rn;
  async_done_fn cb;
  void *arg;
  async_future *f;  /* holds a reference */
  async__cvctx *cv; /* the context it runs in */
} async__donecb;

/* }==== */

/* {==== File descriptors (fd.c) =========================================
 * Every fd the loop watches has watcher records that carry their callback
 * (libuv's uv__io_t): a task in async_fd_wait is one kind, the loop's
 * wake-up fd another, and an I/O object embeds its own. fd.c knows no
 * kind: it tells the backend the union of the events of an fd's started
 * watchers and calls each one whose events came.
 *
 * An fd held by a library object that closes it itself, through
 * async_fd_forget (a stream, a server's listening socket), keeps its
 * registration from one wait to the next: the number cannot be closed and
 * reused behind the loop's back without breaking that object's contract,
 * so a wait whose interest the backend has already costs no system call.
 * Any other fd is re-told at every start, which repairs a registration
 * the kernel dropped when its number was closed and reused. */

typedef struct async__io async__io;

/* Called from the poll phase with what came of w->events (an error or
 * hang-up reports all of them), or with ASYNC__IO_GONE alone when
 * async_fd_forget dropped the fd, w then already stopped. It may stop or
 * free w and wake tasks, but neither start a watcher (the backend, in the
 * middle of its report, must not be told anything) nor stop another
 * watcher of the same fd (the walk has read the next one). */
typedef void (*async__io_cb)(async_loop *loop, async__io *w, unsigned revents);

#define ASYNC__IO_GONE 0x100u

struct async__io {
  async__list link; /* on its fd entry's watchers while started */
  async__io_cb cb;
  int fd;
  unsigned events; /* ASYNC__POLL_IN and/or ASYNC__POLL_OUT */
  /* Set by the owner: the watcher does not keep the virtual clock from
   * jumping to the next timer (the loop's wake-up fd, whose calls
   * ts_signalled announces). */
  uint8_t unref;
};

typedef struct async__fdent {
  async__list watchers; /* async__io, started */
  unsigned interest;    /* what the backend was last told */
  int dirty;            /* on the loop's dirty list */
  int next_dirty;
  /* Held (async__fd_hold) until async_fd_forget, or until the backend
   * says the number names another file: `interest` is then trusted. */
  uint8_t held;
  /* The library object that owns the fd (async__fd_own), and what tells
   * it the number is no longer its own. */
  void (*gone)(void *owner);
  void *owner;
} async__fdent;

/* Entries by fd number in a sparse array (memory in proportion to the
 * numbers in use). A zeroed entry, waiters.next == NULL, was never used. */
typedef struct async__fdtab {
  async__sparse ents; /* async__fdent */
  int dirty_head;     /* -1: none */
} async__fdtab;

/* A stopped watcher of fd calling cb. Allocates nothing. */
void async__io_init(async__io *w, int fd, async__io_cb cb);
/* Starts the stopped watcher w for `events`. The backend is told at once
 * (one system call, which also repairs a registration the kernel dropped
 * when the fd number was closed and reused), unless the fd is held and
 * the backend has the interest needed already. Returns 0, -ESHUTDOWN (the
 * loop is closed), -ENOMEM (the fd table) or the backend's error, w then
 * still stopped. A watcher still started when the loop closes is stopped
 * by the close. */
int async__io_start(async_loop *loop, async__io *w, unsigned events);
/* Marks fd as held by a library object that will close it through
 * async_fd_forget (or async_fd_close), and not otherwise: from then on a
 * watcher start whose interest the backend has costs nothing. What the
 * loop had registered for the number before is checked once, here (it
 * may have been for a file the user closed behind the loop's back).
 * Without memory for the fd's entry, fd simply stays unheld. */
void async__fd_hold(async_loop *loop, int fd);
/* async__fd_hold, and `owner` (a stream, a server) becomes the fd's owner:
 * gone(owner) is called, once, when the number stops being its own while
 * it may still hold it: async_fd_close or async_fd_forget on it, or a
 * fork whose child closed it. From then on the owner must neither use
 * nor close the number, which may name another file at once, even before
 * the owner's tasks woken with -EBADF have run. The owner itself closes
 * the fd with async__fd_disown first, then async_fd_forget and close(2).
 * Returns 0 or -ENOMEM (the fd table). */
int async__fd_own(async_loop *loop, int fd, void (*gone)(void *owner),
                  void *owner);
/* Ends owner's ownership of fd, if it still has it (else nothing), without
 * calling its gone. Safe once the loop is closed. */
void async__fd_disown(async_loop *loop, int fd, const void *owner);
/* Stops w; stopping a stopped watcher does nothing. The backend's interest
 * is dropped lazily, by the first event that no watcher wants. */
void async__io_stop(async_loop *loop, async__io *w);

void async__fd_poll_cb(void *ud, int fd, unsigned revents);
void async__fd_sync_dirty(async_loop *loop);
void async__fd_close_all(async_loop *loop);
/* Drops the registration of an fd of the loop's own (the wake-up fd, an
 * extension's) that the loop is about to close, its watchers stopped.
 * Needed in a child process: there the file is still open in the parent,
 * so closing this process's copy would not take it out of an epoll set. */
void async__fd_release(async_loop *loop, int fd);
/* async_loop_fork, before it opens anything: the watchers of the fds the
 * child closed since the fork (without async_fd_forget) are told they
 * are gone, while those numbers cannot yet name a file that async_loop_
 * fork opens. */
void async__fd_fork_prune(async_loop *loop);
/* async_loop_fork, once the loop has its new poller and fds of its own:
 * tells the poller every other fd the old one had, with the same
 * interest. A number that cannot be added (closed since the fork) wakes
 * its watchers as gone. */
void async__fd_fork(async_loop *loop);

/* }==== */

/* {==== Extensions of the loop (loop.c) =================================
 * A layer above core that keeps state per loop (io's thread pool) hangs it
 * on the loop as an extension record embedded in that state: found again
 * by its key, and ended by its close hook when the loop closes, after
 * every task has ended and before the fds, the poller and the stacks go.
 * The hook owns the record from then on (it may free it). */

/* The steps of an extension's fork hook, in a child process, on a loop
 * inherited through fork:
 * - CLOSE: the close of a loop still forked, before any task is touched:
 *   make the record safe to close (no lock or thread of the parent's
 *   waited for, nothing of the parent's read or written). Cannot fail.
 * - REMAKE: async_loop_fork, the loop still forked but its poller the
 *   child's: make the record the child's own (fds of its own, watchers on
 *   the new poller). May fail, and be called again after a failure.
 * - DONE: async_loop_fork once the loop is the child's: start what runs
 *   by itself (threads). Cannot fail. */
enum async__fork_step {
  ASYNC__FORK_CLOSE,
  ASYNC__FORK_REMAKE,
  ASYNC__FORK_DONE
};

typedef struct async__ext {
  struct async__ext *next;
  const void *key; /* the address of something of the owning layer's */
  void (*close)(async_loop *loop, struct async__ext *e);
  /* See async__fork_step; NULL: nothing to do. Returns 0 or a negative
   * errno. */
  int (*fork)(async_loop *loop, struct async__ext *e,
              enum async__fork_step step);
  int fd; /* its own fd, as the wake-up fd (async__loop_owns_fd), or -1 */
} async__ext;

/* The extension of loop with `key`, or NULL. */
async__ext *async__loop_ext(const async_loop *loop, const void *key);
/* Hangs e on loop; one per key. */
void async__loop_ext_add(async_loop *loop, async__ext *e);

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
  size_t fd_waiters; /* started watchers, less the unref ones */
  /* For white-box tests (tests/test_stream.c): the backend ctl calls fd.c
   * made, and the reads of the I/O layer that found nothing (EAGAIN). */
  struct {
    uint64_t ctl;
    uint64_t eagain;
  } counts;
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
  /* Counts the cancellations tasks have taken (or had withdrawn): an await
   * that passed a request on and sees the count unchanged knows the
   * request is still on its way down its chain of awaits (future.c). */
  uint32_t cancel_epoch;
  async__slab blocks; /* every future and task block (async__future_alloc) */
  /* async_loop_call_soon_threadsafe */
  pthread_mutex_t ts_lock;
  async__rq ts_queue;
  int wake_fd[2];    /* eventfd in [0] and [1], or a pipe */
  async__io wake_io; /* on wake_fd[0] */
  atomic_int ts_signalled;
  async__ext *exts; /* see async__loop_ext */
  /* The context of the callback running now (its holder's field), or
   * NULL; a running task's is its own. */
  async__cvctx **cv_slot;
  async_exception_handler exc_handler; /* NULL: the default */
  void *exc_arg;
  int ts_closed; /* under ts_lock: the close refuses calls from now on */
  /* The fork generation of the process the loop belongs to (see
   * async__loop_forked): set when it is made, and by async_loop_fork once
   * it is done; the one its poller was made in, which async_loop_fork
   * sets as soon as it has a new one (fd.c's calls go to it from then
   * on); and the one ts_lock was made in. */
  unsigned fork_gen;
  unsigned poller_gen;
  unsigned lock_gen;
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

/* The loop running on this thread, read where the call stands: the only
 * way the library reads async__tls_loop (only the functions that run a
 * loop write it), since the code of a task may have been moved to another
 * thread by any switch before (see "tls" in os.h). As cheap as the plain
 * read. */
#if defined(ASYNC__TLS_LOAD)
static inline async_loop *async__loop_here(void) {
  async_loop *loop;
  ASYNC__TLS_LOAD(loop, async__tls_loop);
  return loop;
}
#else
async_loop *async__loop_here(void);
#endif

/* Validates a loop from the user (closed ones included). */
static inline int async__loop_ok(const async_loop *loop) {
  return loop && loop->magic == ASYNC__MAGIC_LOOP;
}

/* The fork generation: a pthread_atfork child handler (registered by the
 * first async_loop_new) adds one in every child fork() makes. A loop whose
 * generation is older was inherited through fork: its poller, wake-up fd
 * and signal pipe are shared with the parent, its pool's threads are not
 * here. Such a loop is "forked" until async_loop_fork; only a few choke
 * points ask (running, telling the poller, the pool, signals, spawning,
 * the thread-safe call), none on the paths of a switch, a spawn or a
 * queue. Written only in a child, where no other thread runs. */
#if defined(__GNUC__)
__attribute__((visibility("hidden")))
#endif
extern atomic_uint async__fork_gen;

/* A mutex as pthread_mutex_init leaves it, for a child process: one held
 * by a thread of the parent's at the fork would stay held for ever, and no
 * thread can be in it in the child, so there is nothing to destroy. */
void async__mutex_reset(pthread_mutex_t *m);

static inline int async__loop_forked(const async_loop *loop) {
  return async__unlikely(
      loop->fork_gen !=
      atomic_load_explicit(&async__fork_gen, memory_order_relaxed));
}

/* Whether the loop's poller is the parent's (fd.c asks). */
static inline int async__poller_forked(const async_loop *loop) {
  return async__unlikely(
      loop->poller_gen !=
      atomic_load_explicit(&async__fork_gen, memory_order_relaxed));
}

/* Inline: every park with a deadline stops its timer, mostly unarmed. */
static inline void async__timer_stop(async_loop *loop, async__timer *tm) {
  if (!tm->armed) return;
  async__heap_remove(&loop->timers, tm);
  tm->armed = 0;
}

static inline int async__handle_ok(const async_handle *h) {
  return h && h->magic == ASYNC__MAGIC_HANDLE && h->user_ref;
}

int64_t async__loop_now(async_loop *loop);
/* Reports a problem found by the loop to its exception handler (error.c),
 * the default one when loop is NULL (closed) or none is set. It does not
 * abort for `fatal`: the caller does. */
void async__error_report(async_loop *loop, async_future *f, int err, int fatal,
                         const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 5, 6)))
#endif
    ;
/* Called by a task that ends a batch with more tasks ready: starts the next
 * iteration right there, without a trip to the loop's stack, when that
 * iteration would neither poll nor fire a timer. Returns 1 if it did. */
int async__loop_iterate_inline(async_loop *loop);
/* While work is ready, every ASYNC__POLL_EVERY-th iteration polls without
 * blocking (unless the last poll is recent): see loop.c's poll_due. */
#define ASYNC__POLL_EVERY 64
/* async__loop_iterate_inline's common case, with no call in it: nothing
 * stops the loop, no timer is pending (so no clock to read) and this
 * iteration does not poll. 0 means: ask async__loop_iterate_inline. */
static inline int async__loop_iterate_fast(async_loop *loop) {
  if (loop->stopping || loop->closing || loop->timers.root ||
      !loop->ready.count || (loop->iter + 1) % ASYNC__POLL_EVERY == 0)
    return 0;
  loop->iter++;
  loop->batch = loop->ready.count;
  return 1;
}
/* Whether fd is one of the loop's own (its wake-up fd, an extension's):
 * not the user's to wait on or forget. */
int async__loop_owns_fd(const async_loop *loop, int fd);

/* Consumes a cancellation request of t that is still pending, as
 * -ECANCELED: what every suspending call does before it registers anything
 * (it must then register nothing), and after its wait for a request that
 * came once it was woken. */
static inline int async__task_take_cancel(async__task *t) {
  if (async__unlikely(t->cancel_req)) {
    t->cancel_req = 0;
    t->fut.loop->cancel_epoch++;
    return -ECANCELED;
  }
  return 0;
}

/* Each thread's context outside tasks and callbacks. */
extern _Thread_local async__cvctx *async__context_base ASYNC__TLS_FAST;
/* Set by the first async_context_var_set of the process: until then every
 * context is empty, and a spawn pays one load for capturing nothing
 * (hidden: a direct load, not one through the GOT). */
#if defined(__GNUC__)
__attribute__((visibility("hidden")))
#endif
extern atomic_int async__context_used;

/* Where the current context is held: the running task, the running
 * callback, or the thread. */
static inline async__cvctx **async__context_slot(void) {
  async_loop *loop = async__loop_here();
  if (loop) {
    if (loop->current) return &loop->current->cv;
    if (loop->cv_slot) return loop->cv_slot;
  }
  return &async__context_base;
}

static inline int async__context_in_use(void) {
  return atomic_load_explicit(&async__context_used, memory_order_relaxed);
}

static inline async__cvctx *async__context_capture(void) {
  if (async__likely(!async__context_in_use())) return NULL;
  async__cvctx *c = *async__context_slot();
  if (c) c->refs++;
  return c;
}

static inline async__task *async__task_require(int *err) {
  async_loop *loop = async__loop_here();
  async__task *t = loop ? loop->current : NULL;
  if (async__unlikely(!t)) *err = -EPERM;
  return t;
}

/* }==== */

#endif
