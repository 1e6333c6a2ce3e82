/* SPDX-License-Identifier: MIT */
/* as_completed: an iterator handing back futures in completion order.
 *
 * The iterator registers a slot on every pending future when it is made,
 * so completions are queued on `done` in the order they happen, whether or
 * not a task waits in next(). The timeout is a deadline on the loop's
 * clock; it needs no timer of its own: a future completing at or after it
 * is "late" and counts as timed out, as if asyncio's timeout callback had
 * run first, and only a task waiting in next() parks with it as its
 * deadline.
 *
 * Slot states: PENDING (registered on its future), QUEUED (on `done`),
 * LATE (completed past the deadline), OUT (handed back), REPEAT (a
 * future given before, which asyncio's set would hold once: never
 * registered, counted or handed back). The iterator
 * holds a reference on every future until it is freed. At loop close a
 * pending bare future drops the iterator's registration (see
 * async__future_detach) but not its reference. */
#include "compose.h"

#include <stdlib.h>

#define AC_MAGIC 0x41534350u /* "ASCP" */

enum { AC_PENDING = 1, AC_QUEUED, AC_LATE, AC_OUT, AC_REPEAT };

#define FIRST_INLINE 64

typedef struct ac_slot {
  async__fwaiter w;
  async__list qlink; /* on it->done while QUEUED */
  struct async_as_completed *it;
  async_future *f;
  int state;
} ac_slot;

struct async_as_completed {
  uint32_t magic;
  async_loop *loop; /* of the pending futures; NULL if none was */
  int64_t deadline; /* loop clock, ns; -1: none */
  size_t n;
  size_t left;         /* not handed back yet */
  async__task *waiter; /* the task parked in next(), if any */
  async__list done;    /* QUEUED slots, in completion order */
  ac_slot slots[];
};

static int ac_ok(const async_as_completed *it) {
  return it && it->magic == AC_MAGIC;
}

static int ac_past_deadline(async_as_completed *it) {
  return it->deadline >= 0 && it->loop &&
         async__loop_now(it->loop) >= it->deadline;
}

/* `waiter` stays set until the woken task is back in next: it still reads
 * the iterator there, so the free and a second next are refused until
 * then. */
static void ac_wake(async_as_completed *it) {
  async__task *t = it->waiter;
  if (t && t->state == ASYNC__T_SUSPENDED) {
    async__task_wake(t, 0);
  }
}

static void ac_notify(async__fwaiter *w, async_future *f) {
  (void)f;
  ac_slot *s = async__container_of(w, ac_slot, w);
  async_as_completed *it = s->it;
  if (ac_past_deadline(it)) {
    s->state = AC_LATE;
  } else {
    s->state = AC_QUEUED;
    async__list_push(&it->done, &s->qlink);
  }
  ac_wake(it);
}

/* A cancelled waiter is still in next until it runs; a killed one never
 * comes back, so it is taken off here. Either way `it` is alive: the free
 * is refused while `waiter` is set. The deadline timer is
 * async__task_park_until's. */
static void ac_unlink(async__task *t) {
  async_as_completed *it = t->wait_obj;
  if (t->killed) it->waiter = NULL;
}

int async_as_completed_new(async_as_completed **out, async_future *const futs[],
                           size_t n, double timeout) {
  if (out) *out = NULL;
  if (!out || (n && !futs) || async__isnan(timeout)) return -EINVAL;
  async_loop *loop = NULL;
  for (size_t i = 0; i < n; i++)
    if (!async__future_ok(futs[i])) return -EINVAL;
  for (size_t i = 0; i < n; i++) {
    const async_future *f = futs[i];
    if (f->done) continue;
    if (!f->loop) return -ESHUTDOWN;
    if (loop && f->loop != loop) return -EXDEV;
    loop = f->loop;
  }
  if ((SIZE_MAX - sizeof(async_as_completed)) / sizeof(ac_slot) < n)
    return -ENOMEM;
  uint8_t first_inl[FIRST_INLINE];
  uint8_t *first = n <= FIRST_INLINE ? first_inl : malloc(n);
  async_as_completed *it =
      malloc(sizeof(async_as_completed) + n * sizeof(ac_slot));
  long nd = first && it ? async__futs_distinct(futs, n, first) : -ENOMEM;
  if (nd < 0) {
    if (first != first_inl) free(first);
    free(it);
    return (int)nd;
  }
  it->magic = AC_MAGIC;
  it->loop = loop;
  it->deadline = ASYNC__NO_DEADLINE;
  if (loop && timeout < ASYNC_NO_TIMEOUT)
    it->deadline = async__deadline_after(async__loop_now(loop), timeout);
  it->n = n;
  it->left = (size_t)nd;
  it->waiter = NULL;
  async__list_init(&it->done);
  for (size_t i = 0; i < n; i++) {
    ac_slot *s = &it->slots[i];
    s->it = it;
    s->f = futs[i];
    async__list_init(&s->w.link);
    async__list_init(&s->qlink);
    if (!first[i]) {
      s->state = AC_REPEAT;
      continue;
    }
    async__future_ref(s->f);
    if (s->f->done) {
      s->state = AC_QUEUED;
      async__list_push(&it->done, &s->qlink);
    } else {
      s->state = AC_PENDING;
      s->w.notify = ac_notify;
      async__future_add_waiter(s->f, &s->w);
    }
  }
  if (first != first_inl) free(first);
  *out = it;
  return 0;
}

/* The first slot left at the deadline, in argument order: hands it back. */
static async_future *ac_time_out_one(async_as_completed *it) {
  for (size_t i = 0; i < it->n; i++) {
    ac_slot *s = &it->slots[i];
    if (s->state == AC_PENDING) async__list_remove(&s->w.link);
    if (s->state == AC_PENDING || s->state == AC_LATE) {
      s->state = AC_OUT;
      it->left--;
      return s->f;
    }
  }
  ASYNC__ASSERT(!"as_completed: no future left to time out");
  return NULL;
}

int async_as_completed_next(async_as_completed *it, async_future **f) {
  int err = 0;
  if (f) *f = NULL;
  async__task *t = async__task_require(&err);
  if (!t) return err;
  if (!ac_ok(it) || !f) return -EINVAL;
  if (it->waiter) return -EBUSY;
  for (;;) {
    if (!async__list_empty(&it->done)) {
      ac_slot *s = async__container_of(it->done.next, ac_slot, qlink);
      async__list_remove(&s->qlink);
      s->state = AC_OUT;
      it->left--;
      *f = s->f;
      return 1;
    }
    if (it->left == 0) return 0;
    /* Something is left, so some future was pending: it->loop is set. */
    if (it->loop != t->fut.loop) return -EXDEV;
    if (ac_past_deadline(it)) {
      *f = ac_time_out_one(it);
      return -ETIMEDOUT;
    }
    for (size_t i = 0; i < it->n; i++)
      if (it->slots[i].f == &t->fut && it->slots[i].state == AC_PENDING)
        return -EDEADLK;
    if ((err = async__task_take_cancel(t))) return err;
    it->waiter = t;
    t->wait_obj = it;
    /* The deadline wakes it with -ETIMEDOUT, which the next turn reports
     * through ac_past_deadline. */
    err = async__task_park_until(it->loop, t, ac_unlink, NULL, "as_completed",
                                 it->deadline);
    t->wait_obj = NULL;
    it->waiter = NULL;
    if (err == -ECANCELED) return err;
    if ((err = async__task_take_cancel(t))) return err;
  }
}

long async_as_completed_left(const async_as_completed *it) {
  if (!ac_ok(it)) return -EINVAL;
  return (long)it->left;
}

int async_as_completed_free(async_as_completed *it) {
  if (!it) return 0;
  if (!ac_ok(it)) return -EINVAL;
  if (it->waiter) return -EBUSY;
  it->magic = ASYNC__MAGIC_DEAD;
  for (size_t i = 0; i < it->n; i++) {
    ac_slot *s = &it->slots[i];
    if (s->state == AC_REPEAT) continue;
    async__list_remove(&s->w.link); /* harmless once notified or detached */
    async__future_unref(s->f);
  }
  free(it);
  return 0;
}
