/* SPDX-License-Identifier: MIT */
/* shield: an await that does not pass its task's cancellation on: the
 * waiting task gets -ECANCELED at once and the future carries on.
 *
 * The shield future (asyncio.shield's outer future) is a composed future
 * (core.h) registered on the inner one: the inner's outcome becomes its
 * own, while cancelling it only ends it, and unregisters it. It holds a
 * reference on the inner future until it is freed. */
#include "compose.h"

int async_shield(async_future *f, void **result) {
  return async__await(f, result, 1);
}

typedef struct sfut {
  async__composed c;
  async__fwaiter w; /* on the inner's waiters while both are pending */
  async_future *inner;
} sfut;

_Static_assert(sizeof(sfut) <= sizeof(async__task),
               "a shield future must fit a future block");

static void sf_notify(async__fwaiter *w, async_future *inner) {
  sfut *s = async__container_of(w, sfut, w);
  inner->err_read = 1; /* passed on: the outer reports it if unread */
  async__future_complete(&s->c.fut, inner->err ? NULL : inner->result,
                         inner->err);
}

static int sf_cancel(async_future *f) {
  sfut *s = (sfut *)(void *)f;
  async__list_remove(&s->w.link);
  async__future_complete(f, NULL, -ECANCELED);
  return 1;
}

static void sf_destroy(async_future *f) {
  sfut *s = (sfut *)(void *)f;
  async__list_remove(&s->w.link); /* harmless once notified or cancelled */
  async__future_unref(s->inner);
}

static const async__composed_ops sf_ops = {sf_cancel, sf_destroy};

int async_shield_future(async_future **out, async_future *f) {
  if (out) *out = NULL;
  if (!out || !async__future_ok(f)) return -EINVAL;
  async_loop *loop = f->loop;
  if (!loop || loop->closed) return -ESHUTDOWN;
  sfut *s = async__future_alloc(loop);
  if (!s) return -ENOMEM;
  async_future *outer = &s->c.fut;
  async__future_init(outer, loop, ASYNC__KIND_COMPOSED);
  outer->refs = 1;
  outer->user_ref = 1;
  s->c.ops = &sf_ops;
  s->inner = f;
  async__future_ref(f);
  async__list_init(&s->w.link);
  s->w.notify = sf_notify;
  if (f->done)
    sf_notify(&s->w, f);
  else
    async__future_add_waiter(f, &s->w);
  *out = outer;
  return 0;
}
