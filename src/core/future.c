/* SPDX-License-Identifier: MIT */
/* Futures: one-shot result slots with waiters, and the await on them.
 *
 * Everything that waits for a future is an async__fwaiter on its list: a
 * task in async_await, a done callback, run_until_complete. Completion
 * moves the list aside first and notifies each waiter in order, so a
 * notification may add or remove waiters without upsetting the walk. */
#include "core.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int normalize_err(int err) {
  return err > 0 ? -err : err == 0 ? -EINVAL : err;
}

/* {==== Memory ========================================================== */

void *async__future_alloc(async_loop *loop) {
  return async__slab_get(&loop->blocks);
}

void async__future_free_block(async_loop *loop, void *block) {
  async_future *f = block;
  /* The slab links free blocks through `result`, so `magic` keeps saying
   * the block is dead to a stale handle. */
  f->magic = ASYNC__MAGIC_DEAD;
  async__slab_put(loop && !loop->closed ? &loop->blocks : NULL, f);
}

/* }==== */

static void report_unread(const async_future *f) {
  if (!f->done || !f->err || f->err == -ECANCELED || f->err_read) return;
  async_future *m = (async_future *)f;
  if (f->kind == ASYNC__KIND_TASK) {
    char name[64];
    async__task_namer(async__task_of(m), name, sizeof name);
    async__error_report(f->loop, m, f->err, 0,
                        "task '%s' failed (%s) and nobody read the error", name,
                        async_strerror(f->err));
  } else {
    async__error_report(f->loop, m, f->err, 0,
                        "a future failed (%s) and nobody read the error",
                        async_strerror(f->err));
  }
}

void async__future_destroy(async_future *f) {
  report_unread(f);
  async_loop *loop = f->loop;
  if (loop) async__list_remove(&f->objects);
  /* Most tasks have no name: no call to free(NULL) per task. */
  if (f->kind == ASYNC__KIND_TASK && async__task_of(f)->name)
    free(async__task_of(f)->name);
  if (f->kind == ASYNC__KIND_COMPOSED) ((async__composed *)f)->ops->destroy(f);
  async__future_free_block(loop, f);
}

void async__future_init(async_future *f, async_loop *loop, int kind) {
  f->magic = ASYNC__MAGIC_FUTURE;
  f->kind = (uint8_t)kind;
  f->done = 0;
  f->user_ref = 0;
  f->err_read = 0;
  f->refs = 0;
  f->err = 0;
  f->result = NULL;
  f->loop = loop;
  async__list_init(&f->waiters);
  async__list_push(&loop->objects, &f->objects);
}

void async__future_ref(async_future *f) { f->refs++; }

void async__future_unref(async_future *f) {
  ASYNC__ASSERT(f->refs > 0);
  if (--f->refs == 0) async__future_destroy(f);
}

/* }==== */

/* {==== Completion ====================================================== */

void async__future_add_waiter(async_future *f, async__fwaiter *w) {
  async__list_push(&f->waiters, &w->link);
}

void async__future_complete(async_future *f, void *result, int err) {
  ASYNC__ASSERT(!f->done);
  f->done = 1;
  f->result = result;
  f->err = err;
  async__list pending;
  async__list_move(&f->waiters, &pending);
  while (!async__list_empty(&pending)) {
    async__list *n = pending.next;
    async__list_remove(n);
    async__fwaiter *w = async__container_of(n, async__fwaiter, link);
    w->notify(w, f);
  }
}

static void donecb_notify(async__fwaiter *w, async_future *f) {
  async__donecb *d = async__container_of(w, async__donecb, w);
  async__rq_push(&f->loop->ready, &d->rn);
}

/* At loop close, for a future its user still holds: it outlives the loop,
 * readable, with no loop behind it. */
void async__future_detach(async_future *f) {
  while (!async__list_empty(&f->waiters)) {
    async__list *n = f->waiters.next;
    async__list_remove(n);
    async__fwaiter *w = async__container_of(n, async__fwaiter, link);
    /* Every task has ended: what still waits is a done callback, or an
     * object its user owns (an as_completed iterator), which keeps its
     * reference, and so f, until the user frees it. */
    if (w->notify != donecb_notify) continue;
    async__donecb *d = async__container_of(w, async__donecb, w);
    async__context_drop(d->cv);
    free(d);
    f->refs--;
  }
  async__list_remove(&f->objects);
  f->loop = NULL;
  if (f->refs == 0) async__future_destroy(f);
}

/* }==== */

/* {==== Public API ====================================================== */

int async_future_new(async_loop *loop, async_future **out) {
  if (out) *out = NULL;
  if (!async__loop_ok(loop) || !out) return -EINVAL;
  if (loop->closed) return -ESHUTDOWN;
  async_future *f = async__future_alloc(loop);
  if (!f) return -ENOMEM;
  async__future_init(f, loop, ASYNC__KIND_FUTURE);
  f->refs = 1;
  f->user_ref = 1;
  *out = f;
  return 0;
}

static int future_set(async_future *f, void *result, int err) {
  if (!async__future_ok(f) || f->kind != ASYNC__KIND_FUTURE) return -EINVAL;
  if (f->done) return -EALREADY;
  async__future_complete(f, result, err);
  return 0;
}

int async_future_set_result(async_future *f, void *result) {
  return future_set(f, result, 0);
}

int async_future_set_error(async_future *f, int err) {
  return future_set(f, NULL, normalize_err(err));
}

int async_future_done(const async_future *f) {
  if (!async__future_ok(f)) return -EINVAL;
  return f->done;
}

int async_future_cancelled(const async_future *f) {
  if (!async__future_ok(f)) return -EINVAL;
  return f->done && f->err == -ECANCELED;
}

int async_future_result(const async_future *f, void **result) {
  if (result) *result = NULL;
  if (!async__future_ok(f)) return -EINVAL;
  if (!f->done) return -EINPROGRESS;
  ((async_future *)f)->err_read = 1;
  if (f->err) return f->err;
  if (result) *result = f->result;
  return 0;
}

int async_future_cancel(async_future *f) {
  if (!async__future_ok(f)) return -EINVAL;
  if (f->done) return 0;
  if (f->kind == ASYNC__KIND_TASK) return async__task_cancel(async__task_of(f));
  if (f->kind == ASYNC__KIND_COMPOSED)
    return ((async__composed *)f)->ops->cancel(f);
  async__future_complete(f, NULL, -ECANCELED);
  return 1;
}

int async_future_add_done_callback(async_future *f, async_done_fn cb,
                                   void *arg) {
  if (!async__future_ok(f) || !cb) return -EINVAL;
  if (!f->loop) return -ESHUTDOWN;
  async__donecb *d = malloc(sizeof *d);
  if (!d) return -ENOMEM;
  d->w.notify = donecb_notify;
  d->rn.kind = ASYNC__RN_DONECB;
  d->cb = cb;
  d->arg = arg;
  d->f = f;
  d->cv = async__context_capture();
  async__future_ref(f);
  if (f->done)
    async__rq_push(&f->loop->ready, &d->rn);
  else
    async__future_add_waiter(f, &d->w);
  return 0;
}

int async_future_remove_done_callback(async_future *f, async_done_fn cb,
                                      void *arg) {
  if (!async__future_ok(f) || !cb) return -EINVAL;
  int removed = 0;
  async__list *n = f->waiters.next;
  while (n != &f->waiters) {
    async__list *next = n->next;
    async__fwaiter *w = async__container_of(n, async__fwaiter, link);
    if (w->notify == donecb_notify) {
      async__donecb *d = async__container_of(w, async__donecb, w);
      if (d->cb == cb && d->arg == arg) {
        async__list_remove(n);
        async__context_drop(d->cv);
        free(d);
        removed++;
      }
    }
    n = next;
  }
  /* Each record held a reference. Dropped after the walk: the last may
   * free f, when the caller's pointer was only borrowed. */
  for (int i = 0; i < removed; i++) async__future_unref(f);
  return removed;
}

int async_future_release(async_future *f) {
  if (!async__future_ok(f) || !f->user_ref) return -EINVAL;
  f->user_ref = 0;
  async__future_unref(f);
  return 0;
}

/* The await: a waiter on the future's list, parked until notified. */
typedef struct await_waiter {
  async__fwaiter w;
  async__task *t;
  async_future *f;
  int passed;     /* a request was passed on to f */
  uint32_t epoch; /* loop->cancel_epoch then */
} await_waiter;

static void await_notify(async__fwaiter *w, async_future *f) {
  (void)f;
  async__task_wake(((await_waiter *)w)->t, 0);
}

static void await_unlink(async__task *t) {
  await_waiter *aw = t->wait_obj;
  async__list_remove(&aw->w.link);
  if (t->killed) async__future_unref(aw->f);
}

/* asyncio's rule: cancelling a task that awaits cancels what it awaits.
 * The request is then delivered, to f: the await returns f's outcome (the
 * awaited task may fail otherwise, or catch it and return), and a further
 * request is passed on again. */
/* Passes the request on to f. Passed on already, with no cancellation
 * taken by any task since, the earlier one is still on its way down the
 * chain of awaits below: this one merges with it (asyncio would pass it
 * down to the same end; here a close cancelling every link of a chain of
 * a million, each walk to the end again, would take 10^12 steps). */
static void await_cancel(async__task *t) {
  await_waiter *aw = t->wait_obj;
  async_loop *loop = t->fut.loop;
  if (aw->passed && aw->epoch == loop->cancel_epoch) {
    t->cancel_req = 0;
    return;
  }
  if (async_future_cancel(aw->f) == 1) {
    t->cancel_req = 0;
    aw->passed = 1;
    aw->epoch = loop->cancel_epoch;
  }
}

/* The await, shielded or not. Not shielded, a cancellation is passed on to
 * f and reported once f is done; shielded, it wakes the waiter at once
 * (the default cancel path) and f carries on. */
int async__await(async_future *f, void **result, int shielded) {
  int err = 0;
  if (result) *result = NULL;
  async__task *t = async__task_require(&err);
  if (!t) return err;
  if (!async__future_ok(f)) return -EINVAL;
  if (f == &t->fut) return -EDEADLK;
  if (f->done) return async_future_result(f, result);
  if (f->loop != t->fut.loop) return f->loop ? -EXDEV : -ESHUTDOWN;
  int passed = 0;
  if (async__unlikely(t->cancel_req)) {
    /* Pending since before the await (the task cancelled itself, or came
     * back from a wait that kept it): asyncio's __step passes it on to
     * the future awaited, as await_cancel does once parked. A shield's
     * outer future is what is cancelled: it reports at once. */
    if (shielded) return async__task_take_cancel(t);
    if (async_future_cancel(f) == 1) t->cancel_req = 0;
    if (f->done) return async_future_result(f, result); /* a bare future */
    passed = !t->cancel_req;
  }
  await_waiter aw = {.w.notify = await_notify,
                     .t = t,
                     .f = f,
                     .passed = passed,
                     .epoch = t->fut.loop->cancel_epoch};
  async__future_ref(f);
  async__future_add_waiter(f, &aw.w);
  t->wait_obj = &aw;
  err = async__task_park(t->fut.loop, t, await_unlink,
                         shielded ? NULL : await_cancel,
                         shielded ? "shield" : "await");
  t->wait_obj = NULL;
  /* A request made after the wake is delivered now. */
  if (!err) err = async__task_take_cancel(t);
  if (!err) err = async_future_result(f, result);
  async__future_unref(f);
  return err;
}

int async_await(async_future *f, void **result) {
  return async__await(f, result, 0);
}

/* }==== */
