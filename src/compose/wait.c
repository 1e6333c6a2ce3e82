/* SPDX-License-Identifier: MIT */
/* wait: block until a condition holds over an array of futures, or a
 * timeout; report which are done. Nothing is ever cancelled.
 *
 * The task registers a slot on each pending future and parks with the
 * timeout as its deadline; the first of a notification that satisfies the
 * condition and the deadline wakes it (async__task_park_until settles the
 * race). A cancellation takes the default path: unlink (wait_unlink) and
 * wake with -ECANCELED. A future given twice counts once, by its first
 * entry: only that one is registered, counted and reported. */
#include "compose.h"

#include <limits.h>

#define FIRST_INLINE 64

typedef struct waitrec {
  async__task *t;
  async_future *const *futs;
  async__slot *slots;
  size_t n;
  size_t ndistinct; /* futures, each counted once */
  size_t ndone;
  size_t nfailed; /* done with an error other than -ECANCELED */
  async_return_when when;
  int woken;
  async__slot inl[ASYNC__SLOTS_INLINE];
} waitrec;

static int wait_satisfied(const waitrec *w) {
  switch (w->when) {
  case ASYNC_FIRST_COMPLETED:
    return w->ndone > 0;
  case ASYNC_FIRST_EXCEPTION:
    return w->nfailed > 0 || w->ndone == w->ndistinct;
  case ASYNC_ALL_COMPLETED:
  default:
    return w->ndone == w->ndistinct;
  }
}

static void wait_count(waitrec *w, const async_future *f) {
  w->ndone++;
  if (f->err && f->err != -ECANCELED) w->nfailed++;
}

static void wait_wake(waitrec *w) {
  if (!w->woken) {
    w->woken = 1;
    async__task_wake(w->t, 0);
  }
}

static void wait_notify(async__fwaiter *fw, async_future *f) {
  async__slot *s = (async__slot *)fw;
  waitrec *w = s->owner;
  wait_count(w, f);
  if (wait_satisfied(w)) wait_wake(w);
}

static void wait_release(waitrec *w) {
  for (size_t i = 0; i < w->n; i++) {
    if (!w->slots[i].owner) continue; /* done on entry */
    async__list_remove(&w->slots[i].w.link);
    async__future_unref(w->futs[i]);
  }
  async__slots_put(w->inl, w->slots);
}

static void wait_unlink(async__task *t) {
  waitrec *w = t->wait_obj;
  if (t->killed) {
    wait_release(w);
    return;
  }
  for (size_t i = 0; i < w->n; i++) async__list_remove(&w->slots[i].w.link);
}

/* async_wait on checked arguments; first[] says which entries count. */
static int wait_run(async__task *t, async_future *const *futs, size_t n,
                    const uint8_t *first, size_t ndistinct,
                    async_return_when return_when, double timeout,
                    async_future **done, async_future **pending) {
  int err;
  waitrec w;
  w.t = t;
  w.futs = futs;
  w.n = n;
  w.ndistinct = ndistinct;
  w.ndone = 0;
  w.nfailed = 0;
  w.when = return_when;
  w.woken = 1;
  for (size_t i = 0; i < n; i++)
    if (first[i] && futs[i]->done) wait_count(&w, futs[i]);

  if (!wait_satisfied(&w) && timeout > 0) {
    if ((err = async__task_take_cancel(t))) return err;
    async_loop *loop = t->fut.loop;
    w.slots = async__slots_get(w.inl, n);
    if (!w.slots) return -ENOMEM;
    for (size_t i = 0; i < n; i++) {
      async__slot *s = &w.slots[i];
      async__list_init(&s->w.link);
      s->index = i;
      s->owner = NULL;
      if (!first[i] || futs[i]->done) continue;
      s->owner = &w;
      s->w.notify = wait_notify;
      async__future_ref(futs[i]);
      async__future_add_waiter(futs[i], &s->w);
    }
    int64_t deadline = ASYNC__NO_DEADLINE;
    if (timeout < ASYNC_NO_TIMEOUT)
      deadline = async__deadline_after(async__loop_now(loop), timeout);
    t->wait_obj = &w;
    w.woken = 0;
    err = async__task_park_until(loop, t, wait_unlink, NULL, "wait", deadline);
    t->wait_obj = NULL;
    wait_release(&w);
    if (err == -ECANCELED) return err;
    if ((err = async__task_take_cancel(t))) return err;
  }

  /* What is done now, which may be more than what woke the task. */
  size_t nd = 0, np = 0;
  for (size_t i = 0; i < n; i++) {
    if (!first[i]) continue;
    if (futs[i]->done) {
      if (done) done[nd] = futs[i];
      nd++;
    } else {
      if (pending) pending[np] = futs[i];
      np++;
    }
  }
  return (int)nd;
}

int async_wait(async_future *const futs[], size_t n,
               async_return_when return_when, double timeout,
               async_future **done, async_future **pending) {
  int err = 0;
  async__task *t = async__task_require(&err);
  if (!t) return err;
  if (async__isnan(timeout) || n > INT_MAX) return -EINVAL;
  if (return_when != ASYNC_ALL_COMPLETED &&
      return_when != ASYNC_FIRST_COMPLETED &&
      return_when != ASYNC_FIRST_EXCEPTION)
    return -EINVAL;
  if ((err = async__futs_check(t, futs, n))) return err;
  if (n == 0) return -EINVAL; /* asyncio: "Set of Tasks/Futures is empty" */
  uint8_t first_inl[FIRST_INLINE];
  uint8_t *first = n <= FIRST_INLINE ? first_inl : malloc(n);
  if (!first) return -ENOMEM;
  long nd = async__futs_distinct(futs, n, first);
  if (nd >= 0)
    nd = wait_run(t, futs, n, first, (size_t)nd, return_when, timeout, done,
                  pending);
  if (first != first_inl) free(first);
  return (int)nd;
}
