/* SPDX-License-Identifier: MIT */
/* Semaphores (asyncio.Semaphore, BoundedSemaphore): FIFO-fair and
 * cancellation-safe.
 *
 * Invariant: `value` is 0 whenever tasks wait. A release with waiters does
 * not raise the value: it hands the permit to the first waiter and wakes
 * it (see sync.h), so a newcomer cannot take it first, not even the task
 * that released it; a waiter cancelled after it was handed the permit
 * passes it on before it returns. */
#include "sync.h"

#include <limits.h>
#include <stdlib.h>

#define SEM_MAGIC 0x53454d41u /* "SEMA" */

struct async_semaphore {
  uint32_t magic;
  uint8_t bounded;
  unsigned value;
  unsigned bound; /* bounded: the initial value */
  /* Waiters handed a permit and woken that have not run yet: a cancelled
   * one gives it back when it does, so it must not be freed. */
  unsigned woken;
  async__list waiters; /* async__waiter, item = the semaphore */
};

static inline int sem_ok(const async_semaphore *s) {
  return s && s->magic == SEM_MAGIC;
}

static int sem_new(async_semaphore **out, unsigned value, int bounded) {
  if (!out) return -EINVAL;
  *out = NULL;
  if (value > INT_MAX) return -EINVAL;
  async_semaphore *s = calloc(1, sizeof *s);
  if (!s) return -ENOMEM;
  s->value = s->bound = value;
  s->bounded = (uint8_t)bounded;
  async__list_init(&s->waiters);
  s->magic = SEM_MAGIC;
  *out = s;
  return 0;
}

int async_semaphore_new(async_semaphore **out, unsigned value) {
  return sem_new(out, value, 0);
}

int async_bounded_semaphore_new(async_semaphore **out, unsigned value) {
  return sem_new(out, value, 1);
}

int async_semaphore_free(async_semaphore *s) {
  if (!s) return 0;
  if (!sem_ok(s)) return -EINVAL;
  if (!async__list_empty(&s->waiters) || s->woken) return -EBUSY;
  s->magic = ASYNC__MAGIC_DEAD;
  free(s);
  return 0;
}

/* To the first waiter, which then owns it, else to the semaphore. */
static void give_permit(async_semaphore *s) {
  async__waiter *w = async__waitq_first(&s->waiters);
  if (w) {
    s->woken++;
    async__waitq_wake(w, 0);
  } else {
    s->value++;
  }
}

/* For a waiter killed at loop close after it was woken. */
static void sem_unlink(async__task *t) {
  async__waiter *w = t->wait_obj;
  async__list_remove(&w->link);
  if (t->state != ASYNC__T_SUSPENDED && t->wake == 0)
    ((async_semaphore *)w->item)->woken--;
}

int async_semaphore_acquire(async_semaphore *s) {
  int err = 0;
  async__task *t = async__task_require(&err);
  if (!t) return err;
  if (!sem_ok(s)) return -EINVAL;
  if (s->value) {
    s->value--;
    return 0;
  }
  if ((err = async__task_take_cancel(t))) return err;
  async__waiter w;
  w.item = s;
  /* 0: the releaser handed us its permit before waking us. */
  err = async__waitq_park(&s->waiters, &w, t, sem_unlink, "semaphore");
  if (err) return err;
  s->woken--;
  if ((err = async__task_take_cancel(t)))
    give_permit(s); /* cancelled before we ran: to the next */
  return err;
}

int async_semaphore_try_acquire(async_semaphore *s) {
  if (!sem_ok(s)) return -EINVAL;
  if (!s->value) return -EAGAIN;
  s->value--;
  return 0;
}

int async_semaphore_release(async_semaphore *s) {
  if (!sem_ok(s)) return -EINVAL;
  if (s->bounded ? s->value >= s->bound : s->value >= INT_MAX)
    return -EOVERFLOW;
  give_permit(s);
  return 0;
}

int async_semaphore_locked(const async_semaphore *s) {
  return sem_ok(s) ? s->value == 0 : -EINVAL;
}

long async_semaphore_value(const async_semaphore *s) {
  return sem_ok(s) ? (long)s->value : -EINVAL;
}
