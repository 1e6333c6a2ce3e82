/* SPDX-License-Identifier: MIT */
/* The event (asyncio.Event): a flag tasks wait to see set. A set wakes
 * every waiter with 0 at once, so a waiter that has been woken returns 0
 * even if the flag is cleared before it runs, as in asyncio; one cancelled
 * before it runs returns -ECANCELED (it holds nothing to pass on). */
#include "sync.h"

#include <stdlib.h>

#define EVENT_MAGIC 0x45564e54u /* "EVNT" */

struct async_event {
  uint32_t magic;
  uint8_t flag;
  async__list waiters; /* async__waiter */
};

static inline int event_ok(const async_event *e) {
  return e && e->magic == EVENT_MAGIC;
}

int async_event_new(async_event **out) {
  if (!out) return -EINVAL;
  async_event *e = calloc(1, sizeof *e);
  *out = e;
  if (!e) return -ENOMEM;
  async__list_init(&e->waiters);
  e->magic = EVENT_MAGIC;
  return 0;
}

int async_event_free(async_event *e) {
  if (!e) return 0;
  if (!event_ok(e)) return -EINVAL;
  if (!async__list_empty(&e->waiters)) return -EBUSY;
  e->magic = ASYNC__MAGIC_DEAD;
  free(e);
  return 0;
}

int async_event_set(async_event *e) {
  if (!event_ok(e)) return -EINVAL;
  e->flag = 1;
  size_t n = async__waitq_wake_all(&e->waiters, 0);
  return n > INT32_MAX ? INT32_MAX : (int)n;
}

int async_event_clear(async_event *e) {
  if (!event_ok(e)) return -EINVAL;
  e->flag = 0;
  return 0;
}

int async_event_is_set(const async_event *e) {
  return event_ok(e) ? e->flag : -EINVAL;
}

int async_event_wait(async_event *e) {
  int err = 0;
  async__task *t = async__task_require(&err);
  if (!t) return err;
  if (!event_ok(e)) return -EINVAL;
  if (e->flag) return 0;
  if ((err = async__task_take_cancel(t))) return err;
  async__waiter w;
  err = async__waitq_park(&e->waiters, &w, t, NULL, "event");
  return err ? err : async__task_take_cancel(t);
}
