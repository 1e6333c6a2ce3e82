/* SPDX-License-Identifier: MIT */
/* The condition variable (asyncio.Condition), on top of the lock.
 *
 * A wait releases the lock, parks until notified, and takes the lock again
 * whatever happens, as asyncio does: the reacquisition goes on through
 * cancellations. Notify hands the wake-up to the first waiters (see
 * sync.h): one cancelled while parked is unlinked and cannot absorb a
 * notification; one cancelled after it was notified (before it ran, or
 * while it takes the lock back) returns -ECANCELED and passes the
 * notification on to the next waiter, as asyncio does. */
#include "sync.h"

#include <limits.h>
#include <stdlib.h>

#define COND_MAGIC 0x434f4e44u /* "COND" */

/* `resuming` counts the waiters out of the FIFO, notified or cancelled,
 * that have not taken the lock back yet: they still read the condition
 * when they run, so it must not be freed under them. A record's `item` is
 * the condition while it is counted there. */
struct async_condition {
  uint32_t magic;
  uint8_t own_lock;
  unsigned resuming;
  async_lock *lock;
  async__list waiters; /* async__waiter; item is the condition once notified */
};

static inline int cond_ok(const async_condition *c) {
  return c && c->magic == COND_MAGIC;
}

int async_condition_new(async_condition **out, async_lock *lock) {
  if (!out) return -EINVAL;
  *out = NULL;
  if (lock && async_lock_locked(lock) < 0) return -EINVAL;
  async_condition *c = calloc(1, sizeof *c);
  if (!c) return -ENOMEM;
  if (!lock) {
    int err = async_lock_new(&lock);
    if (err) {
      free(c);
      return err;
    }
    c->own_lock = 1;
  }
  c->lock = lock;
  async__list_init(&c->waiters);
  c->magic = COND_MAGIC;
  *out = c;
  return 0;
}

int async_condition_free(async_condition *c) {
  if (!c) return 0;
  if (!cond_ok(c)) return -EINVAL;
  if (!async__list_empty(&c->waiters) || c->resuming) return -EBUSY;
  if (c->own_lock) {
    int err = async_lock_free(c->lock);
    if (err) return err;
  }
  c->magic = ASYNC__MAGIC_DEAD;
  free(c);
  return 0;
}

async_lock *async_condition_lock(async_condition *c) {
  return cond_ok(c) ? c->lock : NULL;
}

int async_condition_acquire(async_condition *c) {
  return cond_ok(c) ? async_lock_acquire(c->lock) : -EINVAL;
}

int async_condition_release(async_condition *c) {
  return cond_ok(c) ? async_lock_release(c->lock) : -EINVAL;
}

int async_condition_locked(const async_condition *c) {
  return cond_ok(c) ? async_lock_locked(c->lock) : -EINVAL;
}

typedef struct cond_waiter {
  async__waiter w; /* first */
  async_condition *c;
} cond_waiter;

/* Unlinks a parked waiter. A cancelled one is counted in `resuming` until
 * it has the lock back; one killed at loop close will not run again and
 * gives its count back. */
static void cond_unlink(async__task *t) {
  cond_waiter *cw = t->wait_obj;
  async__list_remove(&cw->w.link);
  if (t->killed) {
    if (cw->w.item) cw->c->resuming--;
    cw->w.item = NULL;
  } else if (!cw->w.item) {
    cw->w.item = cw->c;
    cw->c->resuming++;
  }
}

/* The lock wait that takes the lock back: a task killed at close there
 * (parked, or handed the lock and not run) gives its count back too. */
static void cond_relock_unlink(async__task *t) {
  cond_waiter *cw = t->wait_obj;
  async__lock_unlink(t, cw->c->lock);
  if (t->killed && cw->w.item) {
    cw->c->resuming--;
    cw->w.item = NULL;
  }
}

int async_condition_wait(async_condition *c) {
  int err = 0;
  async__task *t = async__task_require(&err);
  if (!t) return err;
  if (!cond_ok(c)) return -EINVAL;
  if (!async__lock_held_by(c->lock, t)) return -EPERM;
  /* A pending cancellation: delivered here, with the lock still held. */
  if ((err = async__task_take_cancel(t))) return err;
  async_lock_release(c->lock);
  cond_waiter cw = {.w.item = NULL, .c = c};
  int rc = async__waitq_park(&c->waiters, &cw.w, t, cond_unlink, "condition");
  /* Notified, then cancelled before it ran: the cancellation wins. */
  int cancelled = rc == 0 && async__task_take_cancel(t);
  /* Take the lock back, however many times we are cancelled meanwhile. */
  while ((err = async__lock_acquire_as(c->lock, &cw.w, cond_relock_unlink)) ==
         -ECANCELED)
    cancelled = 1;
  if (cw.w.item) c->resuming--; /* done with c: it may be freed now */
  if (err) return err;          /* only if the lock was freed under us */
  if (rc == 0 && cancelled) {
    /* The notification we took, and will not act on, goes to the next
     * waiter, as asyncio's wait notifies another when it raises. */
    async_condition_notify(c, 1);
    return -ECANCELED;
  }
  return rc;
}

int async_condition_wait_for(async_condition *c, int (*pred)(void *arg),
                             void *arg) {
  int err = 0;
  async__task *t = async__task_require(&err);
  if (!t) return err;
  if (!cond_ok(c) || !pred) return -EINVAL;
  /* Asked first, as asyncio does: already true needs neither the lock nor
   * a wait. */
  if (pred(arg)) return 0;
  if (!async__lock_held_by(c->lock, t)) return -EPERM;
  do
    if ((err = async_condition_wait(c))) return err;
  while (!pred(arg));
  return 0;
}

int async_condition_notify(async_condition *c, int n) {
  if (!cond_ok(c) || n < 0) return -EINVAL;
  if (!async_lock_locked(c->lock)) return -EPERM;
  int woken = 0;
  async__waiter *w;
  while (woken < n && (w = async__waitq_first(&c->waiters))) {
    w->item = c;
    c->resuming++;
    async__waitq_wake(w, 0);
    woken++;
  }
  return woken;
}

int async_condition_notify_all(async_condition *c) {
  return async_condition_notify(c, INT_MAX);
}
