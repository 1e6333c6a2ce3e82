/* SPDX-License-Identifier: MIT */
/* Task groups (asyncio.TaskGroup).
 *
 * The group is a heap object owned by its user. Each task spawned into it
 * has a record (gchild) registered on the task's waiter list, so the group
 * learns of every ending synchronously, whether or not the parent waits.
 * A record stays on `children` until the group is freed, and on `failed`
 * too once its task failed, in the order of failures.
 *
 * Aborting (the first failure, async_task_group_cancel, or the parent
 * cancelled while it waits) cancels every child not done and closes the
 * group to new children. A failure while the parent is not waiting in the
 * group also cancels the parent, so that its body comes to the wait early;
 * the wait takes that request back as deadline scopes do (the parent's
 * ncancel, counted since the group was made). What is left of the count
 * then is someone else's: with errors to report, it is made pending again
 * rather than lost in the merge. */
#include "compose.h"

#include <stdlib.h>

#define GROUP_MAGIC 0x54475250u /* "TGRP" */

typedef struct gchild {
  async__fwaiter w;
  async__list link;  /* g->children */
  async__list flink; /* g->failed, once failed */
  struct async_task_group *g;
  async_future *task; /* the group's reference */
  int err;
  int done;
} gchild;

struct async_task_group {
  uint32_t magic;
  uint8_t aborting;
  uint8_t finished;          /* the wait has returned */
  uint8_t parent_cancel_req; /* the group cancelled the parent */
  int woken;
  async_loop *loop;
  async__task *parent; /* holds a reference */
  async__task *waiter; /* the parent, while parked in the wait */
  uint32_t ncancel0;   /* parent->ncancel when the group was made */
  size_t pending;      /* children not done */
  size_t nerrors;
  int result; /* of a finished wait */
  async__list children;
  async__list failed;
};

static int group_ok(const async_task_group *g) {
  return g && g->magic == GROUP_MAGIC;
}

/* Cancels every child not done; returns how many were asked. */
static int group_abort(async_task_group *g) {
  int n = 0;
  g->aborting = 1;
  async__list *l;
  async__list_each(l, &g->children) {
    gchild *c = async__list_item(l, gchild, link);
    if (!c->done && async_future_cancel(c->task) == 1) n++;
  }
  return n;
}

static void group_wake(async_task_group *g) {
  if (g->waiter && !g->woken) {
    g->woken = 1;
    async__task_wake(g->waiter, 0);
  }
}

static void group_notify(async__fwaiter *w, async_future *f) {
  gchild *c = async__container_of(w, gchild, w);
  async_task_group *g = c->g;
  c->done = 1;
  c->err = f->err;
  f->err_read = 1; /* the group reports it */
  g->pending--;
  if (f->err && f->err != -ECANCELED) {
    async__list_push(&g->failed, &c->flink);
    g->nerrors++;
    if (!g->aborting) {
      group_abort(g);
      /* Interrupt the parent's body; a parent waiting in the group just
       * goes on waiting, for fewer and fewer children. */
      if (!g->waiter && g->parent->state != ASYNC__T_DONE) {
        g->parent_cancel_req = 1;
        async__task_cancel(g->parent);
      }
    }
  }
  if (g->pending == 0) group_wake(g);
}

int async_task_group_new(async_task_group **out) {
  int err = 0;
  if (out) *out = NULL;
  async__task *t = async__task_require(&err);
  if (!t) return err;
  if (!out) return -EINVAL;
  async_task_group *g = calloc(1, sizeof *g);
  if (!g) return -ENOMEM;
  g->magic = GROUP_MAGIC;
  g->loop = t->fut.loop;
  g->parent = t;
  async__future_ref(&t->fut);
  g->ncancel0 = t->ncancel;
  async__list_init(&g->children);
  async__list_init(&g->failed);
  *out = g;
  return 0;
}

int async_task_group_spawn(async_task_group *g, async_task **out, async_fn fn,
                           void *arg, const async_task_options *opts) {
  if (out) *out = NULL;
  if (!group_ok(g) || !fn || g->finished) return -EINVAL;
  if (g->aborting) return -ECANCELED;
  gchild *c = malloc(sizeof *c);
  if (!c) return -ENOMEM;
  async_task *task;
  int err = async_task_spawn(g->loop, &task, fn, arg, opts);
  if (err) {
    free(c);
    return err;
  }
  c->w.notify = group_notify;
  c->g = g;
  c->task = task;
  c->err = 0;
  c->done = 0;
  async__list_init(&c->flink);
  async__future_ref(task); /* the group's */
  async__future_add_waiter(task, &c->w);
  async__list_push(&g->children, &c->link);
  g->pending++;
  if (out)
    *out = task; /* the spawn's reference passes to the caller */
  else
    async_task_release(task);
  return 0;
}

static void group_unlink(async__task *t) {
  async_task_group *g = t->wait_obj;
  g->waiter = NULL;
}

static void group_cancel(async__task *t) {
  async_task_group *g = t->wait_obj;
  group_abort(g);
  if (g->pending == 0) group_wake(g);
}

/* The group's own cancellation of the parent, taken back: withdrawn if it
 * is still pending and nobody else asked for one. */
static void group_uncancel(async_task_group *g) {
  async__task *p = g->parent;
  if (!g->parent_cancel_req) return;
  g->parent_cancel_req = 0;
  if (p->state == ASYNC__T_DONE) return;
  p->ncancel--;
  if (p->ncancel <= g->ncancel0 && p->cancel_req) {
    p->cancel_req = 0;
    p->fut.loop->cancel_epoch++;
  }
}

static int group_first_error(const async_task_group *g) {
  if (async__list_empty(&g->failed)) return 0;
  return async__container_of(g->failed.next, gchild, flink)->err;
}

int async_task_group_wait(async_task_group *g) {
  int err = 0;
  async__task *t = async__task_require(&err);
  if (!t) return err;
  if (!group_ok(g)) return -EINVAL;
  if (t != g->parent) return -EPERM;
  if (g->finished) return g->result;
  group_uncancel(g);
  /* Until the group is closed, a child may be spawned after the last one
   * woke us and before we run: wait again, for it too. */
  while (g->pending) {
    /* An outside cancellation pending now is the body's (or came after
     * the wake, when group_cancel no longer runs): abort. */
    if (t->cancel_req) group_abort(g);
    g->waiter = t;
    g->woken = 0;
    t->wait_obj = g;
    async__task_park(g->loop, t, group_unlink, group_cancel, "task group");
    t->wait_obj = NULL;
    g->waiter = NULL;
  }
  g->finished = 1;
  /* No failure cancels the parent while it waits here (g->waiter is set
   * until the park returns), so nothing is left to take back. */
  if ((err = group_first_error(g))) {
    g->result = err;
    /* An outside request made in the group's lifetime survives the error,
     * pending for the next suspending call, even when it merged with the
     * group's own and the body took that one delivery (asyncio's
     * uncancel() + cancel() when cancelling() is still non-zero). */
    if (t->ncancel > g->ncancel0) t->cancel_req = 1;
  } else {
    g->result = async__task_take_cancel(t);
  }
  return g->result;
}

int async_task_group_cancel(async_task_group *g) {
  if (!group_ok(g)) return -EINVAL;
  return group_abort(g);
}

long async_task_group_errors(const async_task_group *g, int *errs,
                             async_task **tasks, size_t cap) {
  if (!group_ok(g) || (cap && !errs)) return -EINVAL;
  size_t n = 0;
  async__list *l;
  async__list_each(l, &g->failed) {
    gchild *c = async__list_item(l, gchild, flink);
    if (n < cap) {
      errs[n] = c->err;
      if (tasks) tasks[n] = c->task;
    }
    n++;
  }
  return (long)n;
}

int async_task_group_free(async_task_group *g) {
  if (!g) return 0;
  if (!group_ok(g)) return -EINVAL;
  if (g->waiter) return -EBUSY;
  group_abort(g);
  group_uncancel(g);
  g->magic = ASYNC__MAGIC_DEAD;
  while (!async__list_empty(&g->children)) {
    gchild *c = async__container_of(g->children.next, gchild, link);
    async__list_remove(&c->link);
    async__list_remove(&c->w.link); /* harmless once notified */
    async__future_unref(c->task);
    free(c);
  }
  async__future_unref(&g->parent->fut);
  free(g);
  return 0;
}
