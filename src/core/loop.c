/* SPDX-License-Identifier: MIT */
/* The event loop: creation, the iteration, running and stopping, closing.
 *
 * One iteration (loop_run_once) is its phases, in this order:
 *   1. loop_timeout: how long to block: until the next timer when nothing
 *      is ready, else not at all; before blocking, loop_idle gives back
 *      cached stacks and blocks;
 *   2. loop_poll: poll for I/O; when work is ready, only every 64th
 *      iteration, so busy tasks cannot starve I/O and yet pay no system
 *      call per turn;
 *   3. loop_run_timers: read the clock and fire every due timer;
 *   4. loop_run_batch: run the ready items that were queued before this
 *      phase (the batch); items queued meanwhile wait for the next
 *      iteration, as in asyncio.
 * A task that suspends hands over straight to the next task of the batch
 * (one switch); only when the next item is a callback, or the batch is
 * done, does control come back to the loop's own stack. */
#include "core.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#if defined(__linux__)
#include <sys/eventfd.h>
#endif

_Thread_local async_loop *async__tls_loop ASYNC__TLS_FAST;

#if !defined(ASYNC__TLS_LOAD)
/* Out of line where os.h has no asm for it: a call the compiler does not
 * see into reads this thread's slot anew, each time (see "tls" in os.h).
 * The barrier keeps it from being taken for a function that only reads
 * memory, whose calls could be merged. */
ASYNC__NOINLINE async_loop *async__loop_here(void) {
  async_loop *loop = async__tls_loop;
#if defined(__GNUC__)
  __asm__ volatile("" ::: "memory");
#endif
  return loop;
}
#endif

atomic_uint async__fork_gen;

/* Names gdb's helper (tools/gdb/libasync.py) where it is installed, in the
 * section gdb reads for scripts to load with an object's debug information
 * (when its auto-load safe-path allows). It lives here because every
 * program that uses the library links this file, from the static archive
 * too. "MS" merges the entries of every object that carries one. */
#if defined(ASYNC_GDB_SCRIPT) && defined(__ELF__) && defined(__GNUC__)
__asm__(".pushsection \".debug_gdb_scripts\", \"MS\", @progbits, 1\n"
        ".byte 1\n" /* a Python file */
        ".asciz \"" ASYNC_GDB_SCRIPT "\"\n"
        ".popsection\n");
#endif

#define POLL_EVERY ASYNC__POLL_EVERY
#define POLL_GAP_NS 20000 /* a busy loop polls at most this often */
#define CLOSE_ROUNDS 8
#define CLOSE_ROUND_NS 250000000 /* grace after each cancellation at close */

_Noreturn void async__assert_fail(const char *what, const char *file,
                                  int line) {
  fprintf(stderr, "libasync: internal error: %s (%s:%d)\n", what, file, line);
  abort();
}

int64_t async__loop_now(async_loop *loop) {
  if (async__unlikely(loop->virtual_clock)) return loop->now;
  return async__clock_ns();
}

/* {==== Wake-up fd for async_loop_call_soon_threadsafe =======================
 */

static int wake_open(async_loop *loop) {
#if defined(__linux__)
  int fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (fd < 0) return -errno;
  loop->wake_fd[0] = loop->wake_fd[1] = fd;
#else
  if (pipe(loop->wake_fd) < 0) return -errno;
  for (int i = 0; i < 2; i++) {
    fcntl(loop->wake_fd[i], F_SETFL, O_NONBLOCK);
    fcntl(loop->wake_fd[i], F_SETFD, FD_CLOEXEC);
  }
#endif
  return 0;
}

static void wake_close(async_loop *loop) {
  if (loop->wake_fd[0] >= 0) close(loop->wake_fd[0]);
  if (loop->wake_fd[1] >= 0 && loop->wake_fd[1] != loop->wake_fd[0])
    close(loop->wake_fd[1]);
  loop->wake_fd[0] = loop->wake_fd[1] = -1;
}

static void wake_signal(async_loop *loop) {
  uint64_t one = 1;
  ssize_t r = write(loop->wake_fd[1], &one, sizeof one);
  (void)r; /* a full pipe or counter already wakes the loop */
}

/* Moves the calls made from other threads onto the ready queue. The flag
 * is cleared first: a call queued after the move signals again. */
static void ts_flush(async_loop *loop) {
  atomic_store(&loop->ts_signalled, 0);
  pthread_mutex_lock(&loop->ts_lock);
  async__rnode *n;
  while ((n = async__rq_pop(&loop->ts_queue))) async__rq_push(&loop->ready, n);
  pthread_mutex_unlock(&loop->ts_lock);
}

static void wake_drain(async_loop *loop) {
  char buf[64];
  while (read(loop->wake_fd[0], buf, sizeof buf) > 0) {
  }
  ts_flush(loop);
}

/* The wake-up fd's watcher: one more fd watcher to fd.c. */
static void wake_ready(async_loop *loop, async__io *w, unsigned revents) {
  (void)w;
  (void)revents;
  wake_drain(loop);
}

/* In a forked child, once the loop has its new poller: a wake-up fd of
 * the child's own; the old one is dropped from the new poller and this
 * process's copy closed (the parent's stays, watched by its poller). */
static int wake_remake(async_loop *loop) {
  int old[2] = {loop->wake_fd[0], loop->wake_fd[1]};
  int err = wake_open(loop);
  if (err) {
    loop->wake_fd[0] = old[0];
    loop->wake_fd[1] = old[1];
    return err;
  }
  async__io_stop(loop, &loop->wake_io);
  async__fd_release(loop, old[0]);
  close(old[0]);
  if (old[1] != old[0]) close(old[1]);
  async__io_init(&loop->wake_io, loop->wake_fd[0], wake_ready);
  loop->wake_io.unref = 1;
  return async__io_start(loop, &loop->wake_io, ASYNC__POLL_IN);
}

int async__loop_owns_fd(const async_loop *loop, int fd) {
  if (fd == loop->wake_fd[0] || fd == loop->wake_fd[1]) return 1;
  for (const async__ext *e = loop->exts; e; e = e->next)
    if (e->fd == fd) return 1;
  return 0;
}

/* }==== */

/* {==== Creation ======================================================== */

/* In the child of every fork() (see async__fork_gen). */
static void fork_child(void) {
  atomic_fetch_add_explicit(&async__fork_gen, 1, memory_order_relaxed);
}

static pthread_once_t fork_once = PTHREAD_ONCE_INIT;
static int fork_err;

static void fork_register(void) { fork_err = pthread_atfork(0, 0, fork_child); }

void async_loop_options_init(async_loop_options *opts) {
  if (!opts) return;
  memset(opts, 0, sizeof *opts);
  opts->size = sizeof *opts;
  opts->report_overflow = 1;
}

int async_loop_new(async_loop **out, const async_loop_options *opts) {
  async_loop_options def;
  if (!out) return -EINVAL;
  *out = NULL;
  if (!opts) {
    async_loop_options_init(&def);
    opts = &def;
  }
  if (opts->size < sizeof(async_loop_options)) return -EINVAL;
  const char *name = opts->backend;
  if (!name || !*name) name = getenv("ASYNC_BACKEND");
  const async__backend *be = async__backend_find(name);
  if (!be) return -EINVAL;
  if (opts->stack_size && opts->stack_size > UINT32_MAX) return -EINVAL;
  if (opts->guard_size > ASYNC__STACK_MAX_GUARD) return -EINVAL;
  /* Before the first loop exists, so that no fork goes unseen. */
  pthread_once(&fork_once, fork_register);
  if (fork_err) return -fork_err;

  async_loop *loop = calloc(1, sizeof *loop);
  if (!loop) return -ENOMEM;
  loop->magic = ASYNC__MAGIC_LOOP;
  loop->fork_gen = loop->poller_gen = loop->lock_gen =
      atomic_load_explicit(&async__fork_gen, memory_order_relaxed);
  loop->backend = be;
  async__rq_init(&loop->ready);
  async__rq_init(&loop->ts_queue);
  async__list_init(&loop->tasks);
  async__list_init(&loop->objects);
  async__sparse_init(&loop->fds.ents, sizeof(async__fdent));
  async__slab_init(&loop->blocks, sizeof(async__task),
                   offsetof(async_future, result));
  loop->cancel_tail = &loop->cancel_head;
  loop->fds.dirty_head = -1;
  loop->wake_fd[0] = loop->wake_fd[1] = -1;
  loop->stack_size =
      opts->stack_size ? opts->stack_size : ASYNC__STACK_DEFAULT_SIZE;
  loop->report_overflow = opts->report_overflow;
  loop->virtual_clock = opts->virtual_clock != 0;
  loop->now = loop->virtual_clock ? 0 : async__clock_ns();
  int err = pthread_mutex_init(&loop->ts_lock, NULL);
  if (err) {
    free(loop);
    return -err;
  }
  if ((err = be->init(&loop->poller)) < 0) goto fail;
  if ((err = async__stack_pool_new(&loop->stacks, async__task_namer,
                                   opts->guard_size)) < 0)
    goto fail;
  if ((err = wake_open(loop)) < 0) goto fail;
  async__io_init(&loop->wake_io, loop->wake_fd[0], wake_ready);
  loop->wake_io.unref = 1;
  if ((err = async__io_start(loop, &loop->wake_io, ASYNC__POLL_IN)) < 0)
    goto fail;
  if (loop->report_overflow) async__stack_reporter_install();
  *out = loop;
  return 0;
fail:
  async__fd_close_all(loop);
  wake_close(loop);
  if (loop->stacks) async__stack_pool_free(loop->stacks);
  if (loop->poller) be->close(loop->poller);
  pthread_mutex_destroy(&loop->ts_lock);
  free(loop);
  return err;
}

/* }==== */

/* {==== The iteration =================================================== */

static void handle_free(async_handle *h) {
  h->magic = ASYNC__MAGIC_DEAD;
  async__context_drop(h->cv);
  free(h);
}

static void handle_unref_loop(async_handle *h) {
  h->loop_ref = 0;
  if (!h->user_ref) handle_free(h);
}

static void donecb_free(async__donecb *d) {
  async__context_drop(d->cv);
  free(d);
}

static void run_item(async_loop *loop, async__rnode *rn) {
  switch (rn->kind) {
  case ASYNC__RN_TASK:
    async__task_run(loop, async__container_of(rn, async__task, rn));
    break;
  case ASYNC__RN_CALL: {
    async_handle *h = async__container_of(rn, async_handle, rn);
    if (!h->cancelled) {
      h->state = ASYNC__H_DONE;
      loop->cv_slot = &h->cv;
      h->cb(h->arg);
      loop->cv_slot = NULL;
    }
    handle_unref_loop(h);
    break;
  }
  case ASYNC__RN_DONECB: {
    async__donecb *d = async__container_of(rn, async__donecb, rn);
    loop->cv_slot = &d->cv;
    d->cb(d->f, d->arg);
    loop->cv_slot = NULL;
    async__future_unref(d->f);
    donecb_free(d);
    break;
  }
  }
}

/* The virtual clock's poll timeout (real ns), for an iteration with nothing
 * ready. When no fd waiter is registered and no other thread has queued a
 * call, only a timer can make progress: the clock jumps to the next one and
 * the poll does not block. Otherwise the poller may block for the virtual
 * time left to the next timer, in real time, and vclock_advance moves the
 * clock by what was waited. `deadline` is on the real clock (closing). */
static int64_t vclock_timeout(async_loop *loop, int64_t deadline) {
  async__timer *next = loop->timers.root;
  /* Only timers that never fire are left: no jump to the end of time; the
   * loop waits as when no timer is armed at all. */
  if (next && next->when == ASYNC__TIME_NEVER) next = NULL;
  if (next && !loop->fd_waiters && !atomic_load(&loop->ts_signalled)) {
    if (next->when > loop->now) loop->now = next->when;
    return 0;
  }
  int64_t timeout = -1;
  if (next) timeout = next->when > loop->now ? next->when - loop->now : 0;
  if (deadline >= 0) {
    int64_t real = async__clock_ns();
    int64_t left = deadline > real ? deadline - real : 0;
    if (timeout < 0 || left < timeout) timeout = left;
  }
  return timeout;
}

/* After a blocking poll: the virtual clock advances by the real time
 * waited, never past the poll's timeout (the next timer), and saturates
 * short of ASYNC__TIME_NEVER. */
static void vclock_advance(async_loop *loop, int64_t started, int64_t timeout) {
  int64_t waited = async__clock_ns() - started;
  if (waited < 0) waited = 0;
  if (timeout >= 0 && waited > timeout) waited = timeout;
  if (waited >= ASYNC__TIME_NEVER - 1 - loop->now)
    loop->now = ASYNC__TIME_NEVER - 1;
  else
    loop->now += waited;
}

/* While work is ready, every POLL_EVERY-th iteration polls without
 * blocking, unless the last poll is younger than POLL_GAP_NS: tiny
 * iterations (tasks that only yield) then pay no system call, and long
 * ones poll as often as before. */
static int poll_due(async_loop *loop) {
  if (++loop->iter % POLL_EVERY) return 0;
  return async__clock_ns() - loop->last_poll >= POLL_GAP_NS;
}

int async__loop_iterate_inline(async_loop *loop) {
  if (loop->stopping || loop->closing || !loop->ready.count) return 0;
  if ((loop->iter + 1) % POLL_EVERY == 0 &&
      async__clock_ns() - loop->last_poll >= POLL_GAP_NS)
    return 0; /* this one polls */
  if (loop->timers.root) {
    int64_t now = async__loop_now(loop);
    if (loop->timers.root->when <= now) return 0;
    loop->now = now;
  }
  loop->iter++;
  loop->batch = loop->ready.count;
  return 1;
}

/* Phase 1: how long the poll may block, in ns (-1: until an event, 0: not
 * at all). `deadline` is on the real clock (closing), or -1. */
static int64_t loop_timeout(async_loop *loop, int64_t deadline) {
  if (loop->ready.count || loop->stopping) return 0;
  if (async__unlikely(loop->virtual_clock))
    return vclock_timeout(loop, deadline);
  if (!loop->timers.root && deadline < 0) return -1;
  int64_t now = async__clock_ns();
  int64_t until = deadline;
  if (loop->timers.root && (until < 0 || loop->timers.root->when < until))
    until = loop->timers.root->when;
  return until > now ? until - now : 0;
}

/* Before blocking: give back what bursts of tasks left behind. */
static void loop_idle(async_loop *loop) {
  async__stack_trim(loop->stacks);
  async__slab_trim(&loop->blocks);
}

/* Phase 2: the backend reports ready fds to their watchers. A forked loop
 * (async__loop_forked) must not: its poller is the parent's, so a wait
 * would take the parent's events, and its reports would send the child's
 * tasks to the parent's data. Its run ends with this iteration instead,
 * and returns -ECHILD; a close goes on without polling. */
static void loop_poll(async_loop *loop, int64_t timeout) {
  if (async__loop_forked(loop)) {
    if (!loop->closing) loop->stopping = 1;
    return;
  }
  int64_t started = loop->virtual_clock && timeout != 0 ? async__clock_ns() : 0;
  int n = loop->backend->wait(loop->poller, timeout, async__fd_poll_cb, loop);
  if (n > 0) async__fd_sync_dirty(loop);
  if (async__unlikely(started)) vclock_advance(loop, started, timeout);
}

/* Phase 3: read the clock and fire every timer due. */
static void loop_run_timers(async_loop *loop, int polled) {
  int64_t real = async__clock_ns();
  if (async__likely(!loop->virtual_clock)) loop->now = real;
  if (polled) loop->last_poll = real;
  async__timers_run(loop);
}

/* Phase 4: run what was ready before this phase; what it makes ready waits
 * for the next iteration. */
static void loop_run_batch(async_loop *loop) {
  loop->batch = loop->ready.count;
  while (loop->batch) {
    loop->batch--;
    run_item(loop, async__rq_pop(&loop->ready));
  }
}

/* One iteration. The fast path of busy tasks skips the poll (and, with no
 * timer, the clock): only the batch runs. */
static void loop_run_once(async_loop *loop, int64_t deadline) {
  int need_clock = loop->timers.root != NULL || deadline >= 0;
  int64_t timeout = loop_timeout(loop, deadline);
  int polled = 0;
  if (timeout != 0) loop_idle(loop);
  if (timeout != 0 || poll_due(loop)) {
    loop_poll(loop, timeout);
    polled = need_clock = 1;
  }
  if (need_clock) loop_run_timers(loop, polled);
  loop_run_batch(loop);
}

/* Runs iterations until stopped. Returns 0 or -EBUSY/-ESHUTDOWN/-EINVAL. */
static int loop_enter(async_loop *loop) {
  if (!async__loop_ok(loop)) return -EINVAL;
  if (loop->closed) return -ESHUTDOWN;
  if (loop->running || async__loop_here()) return -EBUSY;
  if (async__loop_forked(loop)) return -ECHILD;
  loop->running = 1;
  async__tls_loop = loop;
  return 0;
}

static void loop_leave(async_loop *loop) {
  loop->running = 0;
  loop->stopping = 0;
  async__tls_loop = NULL;
}

int async_loop_run_forever(async_loop *loop) {
  int err = loop_enter(loop);
  if (err) return err;
  for (;;) {
    loop_run_once(loop, -1);
    if (loop->stopping) break;
  }
  loop_leave(loop);
  return async__loop_forked(loop) ? -ECHILD : 0;
}

typedef struct until_waiter {
  async__fwaiter w;
  async_loop *loop;
} until_waiter;

static void until_notify(async__fwaiter *w, async_future *f) {
  (void)f;
  ((until_waiter *)w)->loop->stopping = 1;
}

int async_loop_run_until_complete(async_loop *loop, async_future *f,
                                  void **result) {
  if (result) *result = NULL;
  if (!async__loop_ok(loop) || !async__future_ok(f)) return -EINVAL;
  if (f->loop != loop) return f->loop ? -EXDEV : -ESHUTDOWN;
  int err = loop_enter(loop);
  if (err) return err;
  until_waiter uw = {.loop = loop};
  async__future_ref(f);
  if (!f->done) {
    uw.w.notify = until_notify;
    async__future_add_waiter(f, &uw.w);
    for (;;) {
      loop_run_once(loop, -1);
      if (loop->stopping) break;
    }
    async__list_remove(&uw.w.link);
  }
  loop_leave(loop);
  if (f->done) {
    err = async_future_result(f, result);
  } else {
    err = async__loop_forked(loop) ? -ECHILD : -EINTR;
  }
  async__future_unref(f);
  return err;
}

int async_loop_stop(async_loop *loop) {
  if (!async__loop_ok(loop)) return -EINVAL;
  loop->stopping = 1;
  return 0;
}

int async_loop_is_running(const async_loop *loop) {
  return async__loop_ok(loop) && loop->running;
}

int async_loop_is_closed(const async_loop *loop) {
  return async__loop_ok(loop) && loop->closed;
}

double async_loop_time(const async_loop *loop) {
  if (!async__loop_ok(loop)) return ASYNC__NAN;
  return (double)async__loop_now((async_loop *)loop) / 1e9;
}

const char *async_loop_backend(const async_loop *loop) {
  return async__loop_ok(loop) ? loop->backend->name : NULL;
}

async_loop *async_loop_current(void) { return async__loop_here(); }

/* }==== */

/* {==== Closing ========================================================= */

/* Newest first: a task that awaits another passes its cancellation on to
 * the one it awaits, and that one, cancelled already, takes it at once; in
 * creation order each cancel of a chain of awaits would walk the rest of
 * the chain again (a million links: 10^12 steps). Cancelling never takes a
 * task off the list, so the walk may go on from n. */
static void cancel_all(async_loop *loop) {
  for (async__list *n = loop->tasks.prev; n != &loop->tasks; n = n->prev) {
    async__task *t = async__list_item(n, async__task, fut.objects);
    if (t->cancel_req) continue;
    async_future_cancel(&t->fut);
  }
}

/* Cancels what is pending and runs the loop until every task has ended;
 * each round of cancellation gets a grace period, and a task still there
 * after the last round is ended without being run. */
static void close_tasks(async_loop *loop) {
  loop->running = 1;
  async__tls_loop = loop;
  /* Forked meanwhile (a task's cleanup called fork()): a grace period
   * would spin, since the child's loop cannot wait. */
  for (int round = 0;
       round < CLOSE_ROUNDS && loop->ntasks && !async__loop_forked(loop);
       round++) {
    cancel_all(loop);
    int64_t deadline = async__clock_ns() + CLOSE_ROUND_NS;
    while (loop->ntasks && async__clock_ns() < deadline &&
           !async__loop_forked(loop))
      loop_run_once(loop, deadline);
  }
  if (loop->ntasks) {
    async__error_report(
        loop, NULL, -ECANCELED, 0,
        "%zu task(s) ignored cancellation at loop close; ending "
        "them without their cleanup",
        loop->ntasks);
    async__list *n;
    async__list_each(n, &loop->tasks) {
      async__task_kill(loop, async__list_item(n, async__task, fut.objects));
    }
    while (loop->ntasks) loop_run_once(loop, 0);
  }
  loop->running = 0;
  loop->stopping = 0;
  async__tls_loop = NULL;
}

/* Drops a ready callback or done callback without running it. */
static void drop_item(async__rnode *rn) {
  if (rn->kind == ASYNC__RN_CALL) {
    async_handle *h = async__container_of(rn, async_handle, rn);
    h->state = ASYNC__H_DONE;
    handle_unref_loop(h);
  } else if (rn->kind == ASYNC__RN_DONECB) {
    async__donecb *d = async__container_of(rn, async__donecb, rn);
    async__future_unref(d->f);
    donecb_free(d);
  }
}

static void drop_ready(async_loop *loop) {
  async__rnode *rn;
  while ((rn = async__rq_pop(&loop->ready))) drop_item(rn);
}

/* The close of a forked loop: no code of the parent's program runs in the
 * child. Every task is ended where it stands, as the last round of
 * close_tasks ends those that ignore cancellation, and the callbacks
 * queued meanwhile (done callbacks of the tasks ending) are dropped. */
static void close_tasks_forked(async_loop *loop) {
  loop->running = 1;
  async__tls_loop = loop;
  async__list *n;
  async__list_each(n, &loop->tasks) {
    async__task_kill(loop, async__list_item(n, async__task, fut.objects));
  }
  async__rnode *rn;
  while ((rn = async__rq_pop(&loop->ready))) {
    if (rn->kind == ASYNC__RN_TASK)
      async__task_run(loop, async__container_of(rn, async__task, rn));
    else
      drop_item(rn);
  }
  ASYNC__ASSERT(loop->ntasks == 0);
  loop->running = 0;
  loop->stopping = 0;
  async__tls_loop = NULL;
}

static void drop_timers(async_loop *loop) {
  async__timer *tm;
  while ((tm = loop->timers.root)) {
    async__heap_remove(&loop->timers, tm);
    tm->armed = 0;
    /* Only callback handles can still be armed: every task has ended. */
    async_handle *h = async__container_of(tm, async_handle, timer);
    h->state = ASYNC__H_DONE;
    handle_unref_loop(h);
  }
}

async__ext *async__loop_ext(const async_loop *loop, const void *key) {
  for (async__ext *e = loop->exts; e; e = e->next)
    if (e->key == key) return e;
  return NULL;
}

void async__loop_ext_add(async_loop *loop, async__ext *e) {
  e->next = loop->exts;
  loop->exts = e;
}

/* Newest first, as a stack of layers unwinds. */
static void close_exts(async_loop *loop) {
  async__ext *e;
  while ((e = loop->exts)) {
    loop->exts = e->next;
    e->close(loop, e);
  }
}

void async__mutex_reset(pthread_mutex_t *m) {
  memset(m, 0, sizeof *m);
  pthread_mutex_init(m, NULL);
}

/* In a child process, on a forked loop: a step of async__fork_step, for
 * the loop's lock and for every extension. */
static int fork_exts(async_loop *loop, enum async__fork_step step) {
  /* Once per fork (no thread of the child's can hold it yet). */
  unsigned gen = atomic_load_explicit(&async__fork_gen, memory_order_relaxed);
  if (loop->lock_gen != gen) {
    loop->lock_gen = gen;
    async__mutex_reset(&loop->ts_lock);
  }
  for (async__ext *e = loop->exts; e; e = e->next) {
    int err = e->fork ? e->fork(loop, e, step) : 0;
    if (err) return err;
  }
  return 0;
}

int async_loop_close(async_loop *loop) {
  if (!async__loop_ok(loop)) return -EINVAL;
  if (loop->running) return -EBUSY;
  if (loop->closed) return 0;
  if (async__loop_here()) return -EBUSY; /* another loop runs on this thread */
  /* A forked loop reads neither wake-up fd: one is shared with the
   * parent, whose wake-up a read would take. */
  int forked = async__loop_forked(loop);
  loop->closing = 1;
  if (forked) {
    (void)fork_exts(loop, ASYNC__FORK_CLOSE); /* cannot fail */
    close_tasks_forked(loop);
  } else {
    wake_drain(loop);
    close_tasks(loop);
    /* A task's cleanup called fork(), and this is the child. */
    if (async__loop_forked(loop)) {
      forked = 1;
      (void)fork_exts(loop, ASYNC__FORK_CLOSE);
    }
  }
  close_exts(loop);
  pthread_mutex_lock(&loop->ts_lock);
  loop->ts_closed = 1; /* from now on other threads get -ESHUTDOWN */
  pthread_mutex_unlock(&loop->ts_lock);
  if (!forked) wake_drain(loop);
  drop_ready(loop);
  drop_timers(loop);
  async__task_reap(loop);
  while (!async__list_empty(&loop->objects))
    async__future_detach(
        async__container_of(loop->objects.next, async_future, objects));
  async__fd_close_all(loop);
  /* Safe in a forked child too: it tells the kernel nothing (os.h). */
  loop->backend->close(loop->poller);
  loop->poller = NULL;
  wake_close(loop);
  async__stack_pool_free(loop->stacks);
  loop->stacks = NULL;
  async__slab_free(&loop->blocks);
  loop->closed = 1;
  return 0;
}

int async_loop_free(async_loop *loop) {
  if (!loop) return 0;
  if (!async__loop_ok(loop)) return -EINVAL;
  int err = async_loop_close(loop);
  if (err) return err;
  /* Calls queued from other threads after the close are dropped. */
  async__rnode *rn;
  while ((rn = async__rq_pop(&loop->ts_queue)))
    handle_free(async__container_of(rn, async_handle, rn));
  pthread_mutex_destroy(&loop->ts_lock);
  loop->magic = ASYNC__MAGIC_DEAD;
  free(loop);
  return 0;
}

/* }==== */

/* {==== fork(2) ========================================================= */

/* The order matters. The new poller first; then each fd of the loop's own
 * is replaced (its old number dropped from the new poller before this
 * process's copy is closed: async__fd_release says why), before the new
 * poller is told the other fds: a number it refuses wakes its watchers as
 * gone, and the watcher of an old pipe would then read the parent's
 * bytes. Threads start last, once the loop is the child's. A failure
 * leaves the loop forked, and a second call starts over: every step
 * tolerates what an earlier, failed one did. */
int async_loop_fork(async_loop *loop) {
  if (!async__loop_ok(loop)) return -EINVAL;
  if (loop->closed || loop->closing) return -ESHUTDOWN;
  if (!async__loop_forked(loop)) return 0;
  /* Mid-iteration on a thread that does not exist here. */
  if (loop->running && async__loop_here() != loop) return -EBUSY;
  async__fd_fork_prune(loop);
  async__poller *poller;
  int err = loop->backend->init(&poller);
  if (err) return err;
  loop->backend->close(loop->poller);
  loop->poller = poller;
  loop->poller_gen =
      atomic_load_explicit(&async__fork_gen, memory_order_relaxed);
  if ((err = wake_remake(loop))) return err;
  if ((err = fork_exts(loop, ASYNC__FORK_REMAKE))) return err;
  async__fd_fork(loop);
  /* The child's now. Only then may threads start: a job may make a
   * thread-safe call, which reads the generation. */
  loop->fork_gen = atomic_load_explicit(&async__fork_gen, memory_order_relaxed);
  (void)fork_exts(loop, ASYNC__FORK_DONE); /* cannot fail */
  /* Calls queued from another thread before the fork: the new fd has not
   * heard of them. */
  if (atomic_load(&loop->ts_signalled) || loop->ts_queue.count)
    wake_signal(loop);
  return 0;
}

/* }==== */

/* {==== Callbacks ======================================================= */

static void handle_timer_fire(async__timer *tm) {
  async_handle *h = async__container_of(tm, async_handle, timer);
  async__rq_push(&h->loop->ready, &h->rn);
}

/* Reads nothing of the loop: call_soon_threadsafe calls it from any
 * thread. */
static async_handle *handle_alloc(async_loop *loop, async_callback cb,
                                  void *arg, int user_ref) {
  async_handle *h = malloc(sizeof *h);
  if (!h) return NULL;
  memset(h, 0, sizeof *h);
  h->rn.kind = ASYNC__RN_CALL;
  h->cb = cb;
  h->arg = arg;
  h->loop = loop;
  h->magic = ASYNC__MAGIC_HANDLE;
  h->state = ASYNC__H_SCHEDULED;
  h->loop_ref = 1;
  h->user_ref = (uint8_t)(user_ref != 0);
  h->timer.fire = handle_timer_fire;
  return h;
}

static int handle_new(async_loop *loop, async_callback cb, void *arg,
                      async_handle **out, async_handle **hp, int capture) {
  if (out) *out = NULL;
  if (!async__loop_ok(loop) || !cb) return -EINVAL;
  if (loop->closed) return -ESHUTDOWN;
  async_handle *h = handle_alloc(loop, cb, arg, out != NULL);
  if (!h) return -ENOMEM;
  /* `capture`: the handle runs in a copy of the current context, which
   * only the loop's own thread may take. */
  if (capture) h->cv = async__context_capture();
  if (out) *out = h;
  *hp = h;
  return 0;
}

int async_loop_call_soon(async_loop *loop, async_callback cb, void *arg,
                         async_handle **out) {
  async_handle *h;
  int err = handle_new(loop, cb, arg, out, &h, 1);
  if (err) return err;
  /* Thread-safe calls made before this one go first, as in asyncio's one
   * deque; the wake-up fd stays readable, its drain then finds nothing. */
  if (atomic_load(&loop->ts_signalled)) ts_flush(loop);
  async__rq_push(&loop->ready, &h->rn);
  return 0;
}

int async_loop_call_at(async_loop *loop, double when, async_callback cb,
                       void *arg, async_handle **out) {
  if (async__isnan(when)) return -EINVAL;
  async_handle *h;
  int err = handle_new(loop, cb, arg, out, &h, 1);
  if (err) return err;
  h->timed = 1;
  async__timer_start(loop, &h->timer, async__time_after(0, when));
  return 0;
}

int async_loop_call_later(async_loop *loop, double delay, async_callback cb,
                          void *arg, async_handle **out) {
  if (async__isnan(delay)) return -EINVAL;
  async_handle *h;
  int err = handle_new(loop, cb, arg, out, &h, 1);
  if (err) return err;
  int64_t when = async__time_after(async__loop_now(loop), delay);
  h->timed = 1;
  async__timer_start(loop, &h->timer, when);
  return 0;
}

double async_handle_when(const async_handle *h) {
  if (!async__handle_ok(h) || !h->timed) return ASYNC__NAN;
  return (double)h->timer.when / 1e9;
}

int async_handle_cancel(async_handle *h) {
  if (!async__handle_ok(h)) return -EINVAL;
  int stopped = 0;
  if (h->state == ASYNC__H_SCHEDULED && !h->cancelled) {
    stopped = 1;
    h->cancelled = 1;
    if (h->timer.armed) {
      /* Still in the heap: take it out and let the loop forget it now. */
      async__timer_stop(h->loop, &h->timer);
      h->state = ASYNC__H_DONE;
      h->loop_ref = 0;
    }
    /* On the ready queue it is skipped when popped. */
  }
  return async_handle_release(h) < 0 ? -EINVAL : stopped;
}

int async_handle_release(async_handle *h) {
  if (!async__handle_ok(h)) return -EINVAL;
  h->user_ref = 0;
  if (!h->loop_ref) handle_free(h);
  return 0;
}

int async_loop_call_soon_threadsafe(async_loop *loop, async_callback cb,
                                    void *arg) {
  if (!async__loop_ok(loop) || !cb) return -EINVAL;
  /* Its wake-up fd is the parent's: a write would wake the parent. */
  if (async__loop_forked(loop)) return -ECHILD;
  if (async__loop_here() == loop) { /* the loop's own thread: no wake-up */
    async_handle *h;
    int err = handle_new(loop, cb, arg, NULL, &h, 1);
    if (err) return err;
    if (atomic_load(&loop->ts_signalled)) ts_flush(loop);
    async__rq_push(&loop->ready, &h->rn);
    return 0;
  }
  async_handle *h = handle_alloc(loop, cb, arg, 0);
  if (!h) return -ENOMEM;
  /* The check, the push and the write share the lock with close: once
   * ts_closed is set no call gets in, and the wake-up fd is closed only
   * after that, so no write can land on a number reused by another file.
   * The write happens once per drain, so contention stays on the lock. */
  pthread_mutex_lock(&loop->ts_lock);
  if (loop->ts_closed) {
    pthread_mutex_unlock(&loop->ts_lock);
    free(h);
    return -ESHUTDOWN;
  }
  async__rq_push(&loop->ts_queue, &h->rn);
  if (atomic_exchange(&loop->ts_signalled, 1) == 0) wake_signal(loop);
  pthread_mutex_unlock(&loop->ts_lock);
  return 0;
}

/* }==== */
