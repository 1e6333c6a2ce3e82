/* SPDX-License-Identifier: MIT */
/* Private pieces shared by the primitives of layer 5: queues, the lock,
 * event, condition, semaphores, barrier (queue.c, lock.c, event.c,
 * condition.c, semaphore.c, barrier.c).
 *
 * Every primitive keeps its parked tasks in a FIFO of async__waiter
 * records, one per waiting task, living on that task's stack. The rule
 * that makes them cancellation-safe: whatever a waiter waits for (the
 * lock, a permit, a notification, a barrier index; for a queue, the
 * promise of an item or of a place) is handed over to it by the task that
 * wakes it, at wake time, and the record leaves the FIFO at the same
 * moment. So:
 * - a waiter cancelled while still parked is unlinked (the default cancel
 *   of async__task_park) and owns nothing; the next waiter is served;
 * - a waiter woken with 0 and cancelled before it runs (task.c then only
 *   sets cancel_req) returns -ECANCELED, as in asyncio, the cancellation
 *   winning: right after its park it takes the cancellation
 *   (async__task_take_cancel) and gives back what it was handed through
 *   the primitive's own release path, which serves the next waiter.
 * No primitive ever has a free resource and a waiter at the same time, so
 * a newcomer cannot overtake the waiters: service is first come, first
 * served. */
#ifndef ASYNC_SYNC_H
#define ASYNC_SYNC_H

#include "core/core.h"

typedef struct async__waiter {
  async__list link;
  async__task *t;
  void *item; /* what is handed over at wake: a queue item, an index */
} async__waiter;

/* The default unlink: takes the parked task's record out of its FIFO. A
 * record holds nothing before it is woken, so a killed task has nothing
 * to give back. */
static inline void async__waitq_unlink(async__task *t) {
  async__waiter *w = (async__waiter *)t->wait_obj;
  async__list_remove(&w->link);
}

/* Appends w to q and parks t until a waker calls async__waitq_wake (or a
 * cancellation unlinks it). `unlink` may be NULL for the default. Returns
 * the wake code. */
static inline int async__waitq_park(async__list *q, async__waiter *w,
                                    async__task *t, async__unlink_fn unlink,
                                    const char *what) {
  w->t = t;
  async__list_push(q, &w->link);
  t->wait_obj = w;
  int rc = async__task_park(t->fut.loop, t,
                            unlink ? unlink : async__waitq_unlink, NULL, what);
  t->wait_obj = NULL;
  return rc;
}

/* The first waiter of q, or NULL. */
static inline async__waiter *async__waitq_first(const async__list *q) {
  return async__list_empty(q)
             ? NULL
             : async__container_of(q->next, async__waiter, link);
}

/* Takes w out of its FIFO and makes its task ready; park returns `code`.
 * Whatever w must own is to be stored in it before. */
static inline void async__waitq_wake(async__waiter *w, int code) {
  async__list_remove(&w->link);
  async__task_wake(w->t, code);
}

/* Wakes every waiter of q with `code`, in order; returns how many. */
static inline size_t async__waitq_wake_all(async__list *q, int code) {
  size_t n = 0;
  async__waiter *w;
  while ((w = async__waitq_first(q))) {
    async__waitq_wake(w, code);
    n++;
  }
  return n;
}

/* The lock's internals that condition.c needs. */
int async__lock_held_by(const async_lock *l, const async__task *t);
/* async_lock_acquire with the caller's record and unlink hook, for a
 * waiter that holds more than the lock wait itself; the hook must call
 * async__lock_unlink(t, l). */
int async__lock_acquire_as(async_lock *l, async__waiter *w,
                           async__unlink_fn unlink);
void async__lock_unlink(async__task *t, async_lock *l);

#endif
