/* SPDX-License-Identifier: MIT */
/* The lock (asyncio.Lock): FIFO-fair, not recursive, cancellation-safe.
 *
 * Invariant: `locked` is 0 only while nobody waits. A release with waiters
 * does not unlock: it makes the first waiter the owner and wakes it (see
 * sync.h), so a newcomer cannot take the lock from under a waiter; a
 * waiter cancelled while parked never holds it, and one cancelled after it
 * was made the owner releases it before it returns, to the next waiter. */
#include "sync.h"

#include <stdlib.h>

#define LOCK_MAGIC 0x4c4f434bu /* "LOCK" */

struct async_lock {
  uint32_t magic;
  uint8_t locked;
  /* The task that acquired it (NULL outside a task), and its id: the
   * owner may end while holding it, and a later task of the loop may get
   * its memory back from the block cache, but not its id. */
  async__task *owner;
  uint64_t owner_id;
  /* Waiters made the owner and woken that have not run yet: a cancelled
   * one releases the lock when it does, so it must not be freed. */
  unsigned woken;
  async__list waiters; /* async__waiter */
};

static inline int lock_ok(const async_lock *l) {
  return l && l->magic == LOCK_MAGIC;
}

static inline void set_owner(async_lock *l, async__task *t) {
  l->owner = t;
  l->owner_id = t ? t->id : 0;
}

int async__lock_held_by(const async_lock *l, const async__task *t) {
  return l->locked && l->owner == t && l->owner_id == t->id;
}

int async_lock_new(async_lock **out) {
  if (!out) return -EINVAL;
  async_lock *l = calloc(1, sizeof *l);
  *out = l;
  if (!l) return -ENOMEM;
  async__list_init(&l->waiters);
  l->magic = LOCK_MAGIC;
  return 0;
}

int async_lock_free(async_lock *l) {
  if (!l) return 0;
  if (!lock_ok(l)) return -EINVAL;
  if (!async__list_empty(&l->waiters) || l->woken) return -EBUSY;
  l->magic = ASYNC__MAGIC_DEAD;
  free(l);
  return 0;
}

/* A lock wait's unlink: for a waiter killed at loop close after it was
 * made the owner, it will not come back to count itself out. */
void async__lock_unlink(async__task *t, async_lock *l) {
  async__waiter *w = t->wait_obj;
  async__list_remove(&w->link);
  if (t->state != ASYNC__T_SUSPENDED && t->wake == 0) l->woken--;
}

typedef struct lock_waiter {
  async__waiter w; /* first: t->wait_obj */
  async_lock *l;
} lock_waiter;

static void lock_unlink(async__task *t) {
  lock_waiter *lw = t->wait_obj;
  async__lock_unlink(t, lw->l);
}

int async_lock_acquire(async_lock *l) {
  lock_waiter lw = {.l = l};
  return async__lock_acquire_as(l, &lw.w, lock_unlink);
}

int async__lock_acquire_as(async_lock *l, async__waiter *w,
                           async__unlink_fn unlink) {
  int err = 0;
  async__task *t = async__task_require(&err);
  if (!t) return err;
  if (!lock_ok(l)) return -EINVAL;
  if (!l->locked) {
    l->locked = 1;
    set_owner(l, t);
    return 0;
  }
  if (async__lock_held_by(l, t)) return -EDEADLK;
  if ((err = async__task_take_cancel(t))) return err;
  /* 0: the releaser made us the owner before waking us. */
  err = async__waitq_park(&l->waiters, w, t, unlink, "lock");
  if (err) return err;
  l->woken--;
  if ((err = async__task_take_cancel(t)))
    async_lock_release(l); /* cancelled before we ran: to the next */
  return err;
}

int async_lock_try_acquire(async_lock *l) {
  if (!lock_ok(l)) return -EINVAL;
  if (l->locked) return -EAGAIN;
  l->locked = 1;
  set_owner(l, async__task_current());
  return 0;
}

int async_lock_release(async_lock *l) {
  if (!lock_ok(l)) return -EINVAL;
  if (!l->locked) return -EPERM;
  async__waiter *w = async__waitq_first(&l->waiters);
  if (w) {
    set_owner(l, w->t); /* handed over: stays locked */
    l->woken++;
    async__waitq_wake(w, 0);
  } else {
    l->locked = 0;
    set_owner(l, NULL);
  }
  return 0;
}

int async_lock_locked(const async_lock *l) {
  return lock_ok(l) ? l->locked : -EINVAL;
}
