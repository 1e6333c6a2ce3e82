/* SPDX-License-Identifier: MIT */
/* The barrier (asyncio.Barrier).
 *
 * The waiters of the current cycle are parked in arrival order; the last
 * party hands every one its arrival index and wakes them all (see
 * sync.h), and the barrier is at once empty for the next cycle: there is
 * no draining phase to wait for, since the records leave with the wake. A
 * task cancelled before the trip is unlinked and no longer counts. */
#include "sync.h"

#include <stdlib.h>

#define BARRIER_MAGIC 0x42415252u /* "BARR" */
#define BROKEN (-ENOTRECOVERABLE)

struct async_barrier {
  uint32_t magic;
  uint8_t broken;
  unsigned parties;
  unsigned count;      /* tasks waiting in this cycle */
  async__list waiters; /* barrier_waiter, in arrival order */
};

typedef struct barrier_waiter {
  async__waiter w; /* first */
  async_barrier *b;
} barrier_waiter;

static inline int barrier_ok(const async_barrier *b) {
  return b && b->magic == BARRIER_MAGIC;
}

static void barrier_unlink(async__task *t) {
  if (t->state != ASYNC__T_SUSPENDED) return; /* woken: counted out */
  barrier_waiter *bw = t->wait_obj;
  async__list_remove(&bw->w.link);
  bw->b->count--;
}

static int wake_all(async_barrier *b, int code) {
  int n = (int)async__waitq_wake_all(&b->waiters, code);
  b->count = 0;
  return n;
}

int async_barrier_new(async_barrier **out, unsigned parties) {
  if (!out) return -EINVAL;
  *out = NULL;
  if (parties == 0 || parties > INT32_MAX) return -EINVAL;
  async_barrier *b = calloc(1, sizeof *b);
  if (!b) return -ENOMEM;
  b->parties = parties;
  async__list_init(&b->waiters);
  b->magic = BARRIER_MAGIC;
  *out = b;
  return 0;
}

int async_barrier_free(async_barrier *b) {
  if (!b) return 0;
  if (!barrier_ok(b)) return -EINVAL;
  if (!async__list_empty(&b->waiters)) return -EBUSY;
  b->magic = ASYNC__MAGIC_DEAD;
  free(b);
  return 0;
}

int async_barrier_wait(async_barrier *b) {
  int err = 0;
  async__task *t = async__task_require(&err);
  if (!t) return err;
  if (!barrier_ok(b)) return -EINVAL;
  if (b->broken) return BROKEN;
  if (b->count + 1 == b->parties) {
    /* The last party: everyone passes, with their arrival index. */
    uintptr_t i = 0;
    async__waiter *w;
    while ((w = async__waitq_first(&b->waiters))) {
      w->item = (void *)i++;
      async__waitq_wake(w, 0);
    }
    b->count = 0;
    return (int)(b->parties - 1);
  }
  if ((err = async__task_take_cancel(t))) return err;
  barrier_waiter bw = {.b = b};
  b->count++;
  err = async__waitq_park(&b->waiters, &bw.w, t, barrier_unlink, "barrier");
  /* Cancelled after the trip, before it ran: the cancellation wins, as in
   * asyncio; the others have passed all the same. */
  if (err == 0) err = async__task_take_cancel(t);
  return err ? err : (int)(uintptr_t)bw.w.item;
}

int async_barrier_reset(async_barrier *b) {
  if (!barrier_ok(b)) return -EINVAL;
  b->broken = 0;
  return wake_all(b, BROKEN);
}

int async_barrier_abort(async_barrier *b) {
  if (!barrier_ok(b)) return -EINVAL;
  b->broken = 1;
  return wake_all(b, BROKEN);
}

int async_barrier_parties(const async_barrier *b) {
  return barrier_ok(b) ? (int)b->parties : -EINVAL;
}

int async_barrier_n_waiting(const async_barrier *b) {
  return barrier_ok(b) ? (int)b->count : -EINVAL;
}

int async_barrier_broken(const async_barrier *b) {
  return barrier_ok(b) ? b->broken : -EINVAL;
}
