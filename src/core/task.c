/* SPDX-License-Identifier: MIT */
/* Tasks: a future driven by a coroutine on a stack of its own.
 *
 * Life of a task: spawned READY on the ready queue, with no stack; given a
 * stack and a context on its first run; RUNNING, SUSPENDED (parked in a
 * wait) and READY again any number of times; DONE when its function
 * returns, at which point it switches away for good and the next context
 * to run gives its stack back (a stack cannot be freed while in use). */
#include "core.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

async__task *async__task_current(void) {
  async_loop *loop = async__loop_here();
  return loop ? loop->current : NULL;
}

/* {==== Deadline scopes, as the task sees them ========================== */

void async__scope_unlist(async__scope *s) {
  if (s->inner)
    s->inner->outer = s->outer;
  else
    s->task->scopes = s->outer;
  if (s->outer) s->outer->inner = s->inner;
  s->inner = s->outer = NULL;
}

/* The task is parked or ready: its stack, where the scopes live, is intact
 * until it ends. */
static void scopes_disarm(async__task *t) {
  while (t->scopes) {
    async__scope *s = t->scopes;
    async__timer_stop(t->fut.loop, &s->timer);
    s->magic = ASYNC__MAGIC_DEAD;
    async__scope_unlist(s);
  }
}

_Noreturn static void scope_left_open(async__task *t) {
  char name[64];
  async__task_namer(t, name, sizeof name);
  async__error_report(t->fut.loop, &t->fut, -EINVAL, 1,
                      "task '%s' returned inside a deadline scope "
                      "(async_timeout_enter without async_timeout_exit)",
                      name);
  abort();
}

/* }==== */

/* {==== Switching ======================================================= */

static void task_entry(void *arg);

static int task_prepare(async_loop *loop, async__task *t) {
  size_t size = t->stack_size ? t->stack_size : loop->stack_size;
  async__stack *s = async__stack_get(loop->stacks, size, t);
  if (!s) return -ENOMEM;
  t->stack = s;
  t->started = 1;
  t->canary = async__stack_guard(s) == ASYNC__GUARD_CANARY;
  async__ctx_make(&t->ctx, async__stack_lo(s), async__stack_size(s), task_entry,
                  t);
  return 0;
}

void async__task_reap(async_loop *loop) {
  async__task *z = loop->zombie;
  if (z) {
    loop->zombie = NULL;
    async__stack_put(loop->stacks, z->stack);
    z->stack = NULL;
    async__future_unref(&z->fut); /* the loop's reference */
  }
}

/* The next task of this iteration's batch, made ready to switch to, or
 * NULL when the loop must take over. */
static async__task *next_task(async_loop *loop) {
  async__rnode *rn = loop->ready.head;
  if (!rn || rn->kind != ASYNC__RN_TASK) return NULL;
  if (!loop->batch && !async__loop_iterate_inline(loop)) return NULL;
  async__task *t = async__container_of(rn, async__task, rn);
  if (async__unlikely(!t->started)) {
    /* Endings without a run are the loop's business. */
    if (t->cancel_req || t->killed || task_prepare(loop, t) != 0) return NULL;
  } else if (async__unlikely(t->killed)) {
    return NULL;
  }
  async__rq_pop(&loop->ready);
  loop->batch--;
  return t;
}

/* A broken canary, found at a switch and not in a signal handler: the
 * overflow can go to the exception handler (the default one writes the
 * guard page's line). */
static void stack_check(async_loop *loop, async__task *t) {
  if (async__stack_intact(t->stack)) return;
  char name[64];
  async__task_namer(t, name, sizeof name);
  async__error_report(loop, &t->fut, -EFAULT, 1,
                      "stack overflow in task '%s' (stack size %zu bytes)",
                      name, async__stack_size(t->stack));
  abort();
}

/* Switches from the running task t to next, or to the loop when next is
 * NULL, and returns when t is resumed (never when `dying`), maybe on
 * another thread. The loop is read again after the switch, from t, whose
 * loop never changes (the thread's may have: see "tls" in os.h), rather
 * than kept: the fast path's callers keep t across the switch anyway, so
 * they save no register for it (the swap saves them all), which is a
 * tenth of a yield. */
static inline void switch_to(async_loop *loop, async__task *t,
                             async__task *next, int dying) {
  async__ctx *to = &loop->ctx;
  if (next) {
    next->state = ASYNC__T_RUNNING;
    to = &next->ctx;
  }
  loop->current = next;
  async__stack_set_current(next ? next->stack : NULL);
  async__ctx_switch(&t->ctx, to, dying);
  async_loop *back = t->fut.loop;
  if (back->zombie) async__task_reap(back);
}

/* Leaves the running task t for the next task of the batch or the loop. */
ASYNC__NOINLINE static void switch_out_slow(async_loop *loop, async__task *t,
                                            int dying) {
  if (async__unlikely(t->canary)) stack_check(loop, t);
  switch_to(loop, t, next_task(loop), dying);
}

/* The same, for the common case, with no call before the switch: the next
 * task of the batch has run before and t has a guard. */
static void switch_out(async_loop *loop, async__task *t, int dying) {
  async__rnode *rn = loop->ready.head;
  async__task *next = NULL;
  if (async__likely(rn && rn->kind == ASYNC__RN_TASK &&
                    (loop->batch || async__loop_iterate_fast(loop))))
    next = async__container_of(rn, async__task, rn);
  if (async__unlikely(!next || !next->started || next->killed || t->canary)) {
    switch_out_slow(loop, t, dying);
    return;
  }
  async__rq_pop(&loop->ready);
  loop->batch--;
  switch_to(loop, t, next, dying);
}

static void task_finish(async_loop *loop, async__task *t, void *result,
                        int err) {
  async__list_remove(&t->fut.objects); /* off loop->tasks */
  async__list_push(&loop->objects, &t->fut.objects);
  loop->ntasks--;
  t->state = ASYNC__T_DONE; /* cancel_req means nothing from now on */
  async__future_complete(&t->fut, result, err);
  if (async__unlikely(t->cv)) {
    async__context_drop(t->cv);
    t->cv = NULL;
  }
}

static void task_entry(void *arg) {
  async__task *t = arg;
  async_loop *loop = t->fut.loop;
  async__ctx_entered();
  async__task_reap(loop);
  void *result = t->fn(t->arg);
  if (async__unlikely(t->scopes)) scope_left_open(t);
  /* A request still pending at the return ends the task cancelled, as
   * asyncio's __step does: a cancel that returned 1 is never dropped. An
   * error the task failed with wins over it. */
  int err = t->fail;
  if (async__unlikely(t->cancel_req) && !err) err = -ECANCELED;
  task_finish(loop, t, err ? NULL : result, err);
  loop->zombie = t;
  switch_out(loop, t, 1);
  ASYNC__ASSERT(!"a finished task was resumed");
}

/* Ends a task from the loop's stack: it never ran, or it was given up. */
static void end_in_loop(async_loop *loop, async__task *t, int err) {
  task_finish(loop, t, NULL, err);
  if (t->stack) {
    async__ctx_release(&t->ctx);
    async__stack_put(loop->stacks, t->stack);
    t->stack = NULL;
  }
  async__future_unref(&t->fut);
}

void async__task_run(async_loop *loop, async__task *t) {
  if (async__unlikely(t->killed)) {
    end_in_loop(loop, t, -ECANCELED);
    return;
  }
  if (!t->started) {
    int err = t->cancel_req ? -ECANCELED : task_prepare(loop, t);
    if (err) {
      end_in_loop(loop, t, err);
      return;
    }
  }
  t->state = ASYNC__T_RUNNING;
  loop->current = t;
  async__stack_set_current(t->stack);
  async__ctx_switch(&loop->ctx, &t->ctx, 0);
  async__task_reap(loop);
}

/* }==== */

/* {==== Waiting ========================================================= */

int async__task_park(async_loop *loop, async__task *t, async__unlink_fn unlink,
                     async__cancel_fn cancel, const char *what) {
  t->state = ASYNC__T_SUSPENDED;
  t->wait_unlink = unlink;
  t->wait_cancel = cancel;
  t->wait_what = what;
  switch_out(loop, t, 0);
  t->wait_unlink = NULL;
  t->wait_cancel = NULL;
  t->wait_what = NULL;
  /* A cancellation woke us: it is delivered now. Until this point the
   * request stayed pending, so a second cancel made meanwhile is no new
   * request (asyncio delivers one CancelledError, too). */
  if (t->wake == -ECANCELED) {
    t->cancel_req = 0;
    loop->cancel_epoch++;
  }
  return t->wake;
}

/* The deadline of a park: void once a wake-up came first (t is READY, see
 * async__task_park_until). */
static void park_timeout(async__timer *tm) {
  async__task *t = async__container_of(tm, async__task, timer);
  if (t->state != ASYNC__T_SUSPENDED) return;
  if (t->wait_unlink) t->wait_unlink(t);
  async__task_wake(t, -ETIMEDOUT);
}

int async__task_park_until(async_loop *loop, async__task *t,
                           async__unlink_fn unlink, async__cancel_fn cancel,
                           const char *what, int64_t deadline) {
  if (deadline < 0) return async__task_park(loop, t, unlink, cancel, what);
  t->timer.fire = park_timeout;
  async__timer_start(loop, &t->timer, deadline);
  int code = async__task_park(loop, t, unlink, cancel, what);
  async__timer_stop(loop, &t->timer);
  return code;
}

void async__task_wake(async__task *t, int code) {
  ASYNC__ASSERT(t->state == ASYNC__T_SUSPENDED);
  t->wake = code;
  t->state = ASYNC__T_READY;
  async__rq_push(&t->fut.loop->ready, &t->rn);
}

/* A wait's cancel hook may cancel other tasks (what it awaits, the
 * children it gathers), whose hooks cancel more: a chain of a million
 * awaits would take a million nested frames. The outermost cancellation
 * runs the hooks from a FIFO instead, each once, and returns when the
 * FIFO is empty, so callers still see the whole chain cancelled. */
static void cancel_hooks_run(async_loop *loop) {
  async__task *t;
  loop->cancel_running = 1;
  while ((t = loop->cancel_head)) {
    loop->cancel_head = t->cancel_next;
    if (!loop->cancel_head) loop->cancel_tail = &loop->cancel_head;
    t->cancel_next = NULL;
    t->cancel_queued = 0;
    /* Still parked in the same wait: nothing runs while the FIFO drains,
     * but a hook before may have woken it (the request then waits for
     * the task's own code, as for any request made after a wake). */
    if (t->state == ASYNC__T_SUSPENDED && t->wait_cancel && t->cancel_req)
      t->wait_cancel(t);
  }
  loop->cancel_running = 0;
}

int async__task_cancel(async__task *t) {
  if (t->state == ASYNC__T_DONE) return 0;
  t->ncancel++; /* counted even when merged with a pending request */
  if (t->cancel_req) return 1; /* merged: delivered once */
  t->cancel_req = 1;
  if (t->state == ASYNC__T_SUSPENDED) {
    if (t->wait_cancel) {
      async_loop *loop = t->fut.loop;
      if (!t->cancel_queued) {
        t->cancel_queued = 1;
        *loop->cancel_tail = t;
        loop->cancel_tail = &t->cancel_next;
      }
      if (!loop->cancel_running) cancel_hooks_run(loop);
    } else {
      if (t->wait_unlink) t->wait_unlink(t);
      async__task_wake(t, -ECANCELED);
    }
  }
  return 1;
}

void async__task_kill(async_loop *loop, async__task *t) {
  t->killed = 1;
  if (async__unlikely(t->scopes)) scopes_disarm(t);
  async__timer_stop(loop, &t->timer); /* a park's deadline */
  if (t->state == ASYNC__T_SUSPENDED) {
    if (t->wait_unlink) t->wait_unlink(t);
    t->state = ASYNC__T_READY;
    async__rq_push(&loop->ready, &t->rn);
  } else if (t->wait_unlink) {
    /* Woken, but its park has not returned: the wait still holds what it
     * took (a reference, registrations on futures), which the task will
     * not come back to give up. The hook sees it READY. */
    t->wait_unlink(t);
  }
}

int async_yield(void) {
  int err = 0;
  async__task *t = async__task_require(&err);
  if (!t) return err;
  if ((err = async__task_take_cancel(t))) return err;
  async_loop *loop = t->fut.loop;
  t->state = ASYNC__T_READY;
  async__rq_push(&loop->ready, &t->rn);
  switch_out(loop, t, 0);
  return async__task_take_cancel(t);
}

int async_sleep(double seconds) {
  int err = 0;
  async__task *t = async__task_require(&err);
  if (!t) return err;
  if (async__isnan(seconds)) return -EINVAL;
  if (!(seconds > 0)) return async_yield();
  if ((err = async__task_take_cancel(t))) return err;
  async_loop *loop = t->fut.loop;
  int64_t deadline = async__deadline_after(async__loop_now(loop), seconds);
  err = async__task_park_until(loop, t, NULL, NULL, "sleep", deadline);
  /* Cancelled after the deadline woke it, before it ran: reported here, as
   * asyncio raises from that same sleep. */
  return err != -ETIMEDOUT ? err : async__task_take_cancel(t);
}

/* }==== */

/* {==== Spawning and introspection ====================================== */

void async_task_options_init(async_task_options *opts) {
  if (!opts) return;
  memset(opts, 0, sizeof *opts);
  opts->size = sizeof *opts;
}

int async_task_spawn(async_loop *loop, async_task **out, async_fn fn, void *arg,
                     const async_task_options *opts) {
  if (out) *out = NULL;
  if (!async__loop_ok(loop) || !fn) return -EINVAL;
  if (opts && (opts->size < sizeof *opts || opts->stack_size > UINT32_MAX))
    return -EINVAL;
  if (loop->closed) return -ESHUTDOWN;
  async__task *t = (async__task *)async__future_alloc(loop);
  if (!t) return -ENOMEM;
  memset(t, 0, sizeof *t);
  if (opts && opts->name && !(t->name = strdup(opts->name))) {
    async__future_free_block(loop, t);
    return -ENOMEM;
  }
  async__future_init(&t->fut, loop, ASYNC__KIND_TASK);
  t->fut.refs = 1; /* the loop's, until the task is done */
  t->rn.kind = ASYNC__RN_TASK;
  t->fn = fn;
  t->arg = arg;
  t->stack_size = opts ? (uint32_t)opts->stack_size : 0;
  t->id = ++loop->next_task_id;
  if (async__unlikely(async__context_in_use())) /* else t->cv stays NULL */
    t->cv = async__context_capture();           /* asyncio's copy_context() */
  t->state = ASYNC__T_READY;
  async__list_remove(&t->fut.objects); /* on loop->tasks until done */
  async__list_push(&loop->tasks, &t->fut.objects);
  loop->ntasks++;
  async__rq_push(&loop->ready, &t->rn);
  if (out) {
    t->fut.refs++;
    t->fut.user_ref = 1;
    *out = &t->fut;
  }
  return 0;
}

async_task *async_spawn(async_fn fn, void *arg) {
  async_task *t;
  return async_task_spawn(async__loop_here(), &t, fn, arg, NULL) ? NULL : t;
}

void *async_fail(int err) {
  async__task *t = async__task_current();
  if (t) t->fail = err > 0 ? -err : err == 0 ? -EINVAL : err;
  return NULL;
}

int async_task_cancelling(const async_task *f) {
  if (!async__future_ok(f) || f->kind != ASYNC__KIND_TASK) return -EINVAL;
  uint32_t n = async__task_of((async_future *)f)->ncancel;
  return n > INT_MAX ? INT_MAX : (int)n;
}

int async_task_uncancel(async_task *f) {
  if (!async__future_ok(f) || f->kind != ASYNC__KIND_TASK) return -EINVAL;
  async__task *t = async__task_of(f);
  /* asyncio 3.13: the last request taken back withdraws a pending one. */
  if (t->ncancel > 0 && --t->ncancel == 0 && t->cancel_req) {
    t->cancel_req = 0;
    if (t->fut.loop) t->fut.loop->cancel_epoch++;
  }
  return async_task_cancelling(f);
}

async_task *async_task_current(void) {
  async__task *t = async__task_current();
  return t ? &t->fut : NULL;
}

long async_task_all(async_loop *loop, async_task **out, size_t cap) {
  if (!async__loop_ok(loop) || (cap && !out)) return -EINVAL;
  size_t n = 0;
  async__list *l;
  async__list_each(l, &loop->tasks) {
    if (n < cap) out[n] = &async__list_item(l, async__task, fut.objects)->fut;
    n++;
  }
  return (long)n;
}

long async_loop_dump(async_loop *loop, FILE *out) {
  if (!async__loop_ok(loop) || !out) return -EINVAL;
  long n = 0;
  async__list *l;
  async__list_each(l, &loop->tasks) {
    async__task *t = async__list_item(l, async__task, fut.objects);
    char name[64];
    async__task_namer(t, name, sizeof name);
    const char *state = t->state == ASYNC__T_RUNNING     ? "running"
                        : t->state == ASYNC__T_SUSPENDED ? "waiting"
                        : t->started                     ? "ready"
                                                         : "not started";
    fprintf(out, "%s: %s%s%s%s\n", name, state, t->wait_what ? " on " : "",
            t->wait_what ? t->wait_what : "",
            t->cancel_req ? " (cancellation pending)" : "");
    n++;
  }
  return n;
}

/* Formats "Task-<id>" without stdio: it also runs in a signal handler. */
static void default_name(const async__task *t, char *buf, size_t len) {
  char digits[24];
  int nd = 0;
  uint64_t id = t->id;
  do {
    digits[nd++] = (char)('0' + id % 10);
    id /= 10;
  } while (id);
  static const char prefix[] = "Task-";
  size_t i = 0;
  for (; prefix[i] && i + 1 < len; i++) buf[i] = prefix[i];
  while (nd > 0 && i + 1 < len) buf[i++] = digits[--nd];
  if (len) buf[i] = '\0';
}

void async__task_namer(const void *owner, char *buf, size_t len) {
  const async__task *t = owner;
  if (!len) return;
  if (t->name) {
    size_t i = 0;
    for (; t->name[i] && i + 1 < len; i++) buf[i] = t->name[i];
    buf[i] = '\0';
  } else {
    default_name(t, buf, len);
  }
}

const char *async_task_name(const async_task *f) {
  if (!async__future_ok(f) || f->kind != ASYNC__KIND_TASK) return NULL;
  async__task *t = async__task_of((async_future *)f);
  if (!t->name) {
    char buf[32];
    default_name(t, buf, sizeof buf);
    t->name = strdup(buf);
    if (!t->name) return "Task";
  }
  return t->name;
}

int async_task_set_name(async_task *f, const char *name) {
  if (!async__future_ok(f) || f->kind != ASYNC__KIND_TASK || !name)
    return -EINVAL;
  char *copy = strdup(name);
  if (!copy) return -ENOMEM;
  async__task *t = async__task_of(f);
  free(t->name);
  t->name = copy;
  return 0;
}

/* }==== */
