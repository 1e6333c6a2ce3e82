/* SPDX-License-Identifier: MIT */
/* gather: wait for every future of an array, results in argument order.
 *
 * The gathering task registers a slot on each pending future and parks
 * once. A slot's notification records the outcome in the caller's arrays
 * and wakes the task when the wait is over: every future done, or (first
 * error mode) the first failure. The task is always woken with 0 and reads
 * the reason from the record, so that no child's -ECANCELED is mistaken
 * for the task's own cancellation by async__task_park.
 *
 * Cancelling the gathering task cancels every pending future and keeps it
 * parked until they are all done (gather_cancel); the request stays
 * pending meanwhile and is consumed when the call returns. */
#include "compose.h"

#include <string.h>

typedef struct gather {
  async__task *t;
  async_future *const *futs;
  async__slot *slots;
  size_t n;
  size_t pending; /* registered slots not notified yet */
  void **results;
  int *errors;
  int collect;    /* return_exceptions: wait for all whatever happens */
  int first_err;  /* first error mode: the error that ended the wait */
  int cancelling; /* the task was cancelled: the futures were too */
  int woken;      /* not parked, or already woken */
  /* async_gather_coros: the tasks' user references, and the array when it
   * was malloc'd, belong to the wait, so that a task killed at close (its
   * frame never resumed) still gives them back. */
  int owns_tasks;
  void *owned_array;
  async__slot inl[ASYNC__SLOTS_INLINE];
} gather;

static void gather_drop_owned(async_future *const *futs, size_t n, int owns,
                              void *array) {
  if (!owns) return;
  for (size_t i = 0; i < n; i++) async_task_release(futs[i]);
  free(array);
}

static void gather_record(gather *g, size_t i, async_future *f) {
  f->err_read = 1;
  if (g->results) g->results[i] = f->err ? NULL : f->result;
  if (g->errors) g->errors[i] = f->err;
}

static void gather_wake(gather *g) {
  if (!g->woken) {
    g->woken = 1;
    async__task_wake(g->t, 0);
  }
}

static void gather_notify(async__fwaiter *w, async_future *f) {
  async__slot *s = (async__slot *)w;
  gather *g = s->owner;
  g->pending--;
  gather_record(g, s->index, f);
  if (f->err && !g->collect && !g->cancelling && !g->first_err) {
    g->first_err = f->err;
    gather_wake(g);
  } else if (g->pending == 0) {
    gather_wake(g);
  }
}

/* Cancels every future still pending. Bare futures end at once, so their
 * notifications run (and may wake the task) from inside this walk. */
static void gather_cancel_all(gather *g) {
  g->cancelling = 1;
  for (size_t i = 0; i < g->n; i++)
    if (!g->futs[i]->done) async_future_cancel(g->futs[i]);
}

static void gather_cancel(async__task *t) {
  gather *g = t->wait_obj;
  gather_cancel_all(g);
  if (g->pending == 0) gather_wake(g);
}

/* Unregisters the slots still linked and drops the wait's references. */
static void gather_release(gather *g) {
  for (size_t i = 0; i < g->n; i++) {
    if (!g->slots[i].owner) continue; /* done on entry: not registered */
    async__list_remove(&g->slots[i].w.link);
    async__future_unref(g->futs[i]);
  }
  async__slots_put(g->inl, g->slots);
  gather_drop_owned(g->futs, g->n, g->owns_tasks, g->owned_array);
}

static void gather_unlink(async__task *t) {
  gather *g = t->wait_obj;
  if (t->killed) {
    gather_release(g); /* the task will not come back to do it */
    return;
  }
  for (size_t i = 0; i < g->n; i++) async__list_remove(&g->slots[i].w.link);
}

static int gather_run(async_future *const *futs, size_t n, void **results,
                      int *errors, int collect, void *owned_array, int owns) {
  int err = 0;
  async__task *t = async__task_require(&err);
  if (!t) return err;
  if ((err = async__futs_check(t, futs, n))) {
    gather_drop_owned(futs, n, owns, owned_array);
    return err;
  }
  if (results) memset(results, 0, n * sizeof *results);
  if (errors) memset(errors, 0, n * sizeof *errors);

  gather g;
  g.t = t;
  g.futs = futs;
  g.n = n;
  g.pending = 0;
  g.results = results;
  g.errors = errors;
  g.collect = collect;
  g.first_err = 0;
  g.cancelling = 0;
  g.woken = 1;
  g.owns_tasks = owns;
  g.owned_array = owned_array;
  /* Futures done already: no registration, and no suspension if all are. */
  for (size_t i = 0; i < n; i++) {
    async_future *f = futs[i];
    if (!f->done) {
      g.pending++;
      continue;
    }
    gather_record(&g, i, f);
    if (f->err && !g.first_err) g.first_err = f->err;
  }
  if ((!collect && g.first_err) || g.pending == 0 ||
      !(g.slots = async__slots_get(g.inl, n))) {
    gather_drop_owned(futs, n, owns, owned_array);
    return !collect && g.first_err ? g.first_err : g.pending ? -ENOMEM : 0;
  }
  for (size_t i = 0; i < n; i++) {
    async__slot *s = &g.slots[i];
    async__list_init(&s->w.link);
    s->index = i;
    if (futs[i]->done) {
      s->owner = NULL; /* recorded above */
      continue;
    }
    s->owner = &g;
    s->w.notify = gather_notify;
    async__future_ref(futs[i]);
    async__future_add_waiter(futs[i], &s->w);
  }
  t->wait_obj = &g;
  /* A request made before the call is this wait's cancellation. */
  if (t->cancel_req) gather_cancel_all(&g);
  if (g.pending) {
    g.woken = 0;
    async__task_park(t->fut.loop, t, gather_unlink, gather_cancel, "gather");
  }
  t->wait_obj = NULL;
  gather_release(&g);
  if ((err = async__task_take_cancel(t))) return err;
  return collect ? 0 : g.first_err;
}

int async_gather(async_future *const futs[], size_t n, void **results) {
  return gather_run(futs, n, results, NULL, 0, NULL, 0);
}

int async_gather_errors(async_future *const futs[], size_t n, void **results,
                        int *errors) {
  return gather_run(futs, n, results, errors, 1, NULL, 0);
}

int async_gather_coros(const async_coro coros[], size_t n, void **results,
                       int *errors) {
  int err = 0;
  async__task *t = async__task_require(&err);
  if (!t) return err;
  if (n && !coros) return -EINVAL;
  for (size_t i = 0; i < n; i++)
    if (!coros[i].fn) return -EINVAL;
  if (n == 0) return 0;
  async_task *inl[ASYNC__SLOTS_INLINE];
  async_task **tasks = inl;
  if (n > ASYNC__SLOTS_INLINE) {
    if (n > SIZE_MAX / sizeof *tasks) return -ENOMEM;
    tasks = malloc(n * sizeof *tasks);
    if (!tasks) return -ENOMEM;
  }
  size_t spawned = 0;
  for (; spawned < n; spawned++) {
    err = async_task_spawn(t->fut.loop, &tasks[spawned], coros[spawned].fn,
                           coros[spawned].arg, NULL);
    if (err) break;
  }
  if (!err)
    return gather_run(tasks, n, results, errors, errors != NULL,
                      tasks != inl ? tasks : NULL, 1);
  /* None has run yet: cancelled now, they end without running. */
  for (size_t i = 0; i < spawned; i++) async_task_cancel(tasks[i]);
  gather_drop_owned(tasks, spawned, 1, tasks != inl ? tasks : NULL);
  return err;
}
