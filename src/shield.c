/* shield: an await that does not pass its task's cancellation on.
 *
 * The wait is async_await's, with no cancel hook: cancelling the waiting
 * task takes the default path (unlink, wake with -ECANCELED) and leaves
 * the awaited future alone. */
#include "compose.h"

typedef struct shield_waiter {
  async__fwaiter w;
  async__task *t;
  async_future *f;
} shield_waiter;

static void shield_notify(async__fwaiter *w, async_future *f) {
  (void)f;
  async__task_wake(((shield_waiter *)w)->t, 0);
}

static void shield_unlink(async__task *t) {
  shield_waiter *sw = t->wait_obj;
  async__list_remove(&sw->w.link);
  if (t->killed) async__future_unref(sw->f);
}

int async_shield(async_future *f, void **result) {
  int err = 0;
  if (result) *result = NULL;
  async__task *t = async__task_require(&err);
  if (!t) return err;
  if (!async__future_ok(f)) return -EINVAL;
  if (f == &t->fut) return -EDEADLK;
  if (f->done) return async_future_result(f, result);
  if (f->loop != t->fut.loop) return f->loop ? -EXDEV : -ESHUTDOWN;
  if ((err = async__take_cancel(t))) return err;
  shield_waiter sw = {.w.notify = shield_notify, .t = t, .f = f};
  async__future_ref(f);
  async__future_add_waiter(f, &sw.w);
  t->wait_obj = &sw;
  err = async__task_park(t->fut.loop, t, shield_unlink, NULL, "shield");
  t->wait_obj = NULL;
  async__list_remove(&sw.w.link);
  if (!err) err = async__take_cancel(t);
  if (!err) err = async_future_result(f, result);
  async__future_unref(f);
  return err;
}
