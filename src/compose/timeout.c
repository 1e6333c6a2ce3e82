/* SPDX-License-Identifier: MIT */
/* Deadline scopes (asyncio.timeout) and wait_for.
 *
 * A scope is a timer in the caller's async_timeout storage. When it fires
 * it requests the cancellation of the task that entered the scope, through
 * the ordinary path (async__task_cancel), so the task's current wait ends
 * as for any cancellation, and an await passes it on.
 *
 * Telling the scope's request from others: every request counts in
 * t->ncancel, merged ones included (asyncio's cancelling()). At exit a
 * fired scope takes its own request back (uncancel). If the count is then
 * above what it was at entry, someone else (an outside canceller, an outer
 * scope) also wants the task cancelled: the scope does not claim the
 * cancellation. Otherwise the request was the scope's alone: a pending
 * one is withdrawn, and the body's outcome, which the exit is given, is
 * the scope's, with -ECANCELED (the body ended cancelled) turned into
 * -ETIMEDOUT, as asyncio's __aexit__ turns only a CancelledError into
 * TimeoutError.
 *
 * wait_for is asyncio 3.12's: an await inside a scope, whose outcome is
 * what the awaited future made of the deadline's cancellation. */
#include "compose.h"

#include <stdlib.h>
#include <string.h>

#define SCOPE_NONE INT64_MAX /* no deadline */

typedef async__scope scope;

_Static_assert(sizeof(scope) <= sizeof(async_timeout),
               "async_timeout is too small for the scope");
_Static_assert(_Alignof(scope) <= _Alignof(async_timeout),
               "async_timeout is not aligned enough for the scope");

static scope *scope_of(async_timeout *tmo) { return (scope *)(void *)tmo; }

static const scope *cscope_of(const async_timeout *tmo) {
  return (const scope *)(const void *)tmo;
}

/* An exited scope keeps when and expired readable, as asyncio's does. */
#define SCOPE_EXITED 0x544d4f58u /* "TMOX" */

static int scope_live(const scope *s) {
  return s && s->magic == ASYNC__MAGIC_SCOPE;
}

static int scope_readable(const scope *s) {
  return s && (s->magic == ASYNC__MAGIC_SCOPE || s->magic == SCOPE_EXITED);
}

static void scope_fire(async__timer *tm) {
  scope *s = async__container_of(tm, scope, timer);
  s->expired = 1;
  async__task_cancel(s->task);
}

/* An absolute time in seconds as a deadline in ns; NaN is the caller's. A
 * time gone by (negative ones too) is due at once. */
static int64_t scope_when(double when) {
  if (when >= ASYNC_NO_TIMEOUT) return SCOPE_NONE;
  return async__deadline_after(0, when); /* saturates at SCOPE_NONE */
}

static void scope_arm(scope *s) {
  async_loop *loop = s->task->fut.loop;
  if (s->when == SCOPE_NONE)
    async__timer_stop(loop, &s->timer);
  else
    async__timer_start(loop, &s->timer, s->when);
}

/* Whether s is one of t's entered scopes (a struct entered twice). */
static int scope_listed(const scope *s, const async__task *t) {
  for (const scope *x = t->scopes; x; x = x->outer)
    if (x == s) return 1;
  return 0;
}

/* Whether s is entered by another task of t's loop. A struct among t's own
 * locals (the usual case, and wait_for's) is left unread: it is fresh,
 * uninitialised memory that only t uses. Elsewhere (static, heap, shared)
 * the header asks for it to start zeroed, so its magic can be read; and
 * s->task is only followed once it is found among the loop's tasks: a
 * scope always belongs to a task not done (exits and kills mark it dead
 * first). */
static int scope_held_by_other(const scope *s, const async__task *t) {
  const char *lo = async__stack_lo(t->stack);
  const char *p = (const char *)s;
  if (p >= lo && p < lo + async__stack_size(t->stack)) return 0;
  if (s->magic != ASYNC__MAGIC_SCOPE || s->task == t) return 0;
  const async__list *tasks = &t->fut.loop->tasks;
  for (const async__list *l = tasks->next; l != tasks; l = l->next)
    if (async__container_of(l, async__task, fut.objects) == s->task)
      return scope_listed(s, s->task);
  return 0;
}

static int scope_enter(async_timeout *tmo, int64_t when, double when_s,
                       async__task *t) {
  scope *s = scope_of(tmo);
  if (scope_listed(s, t) || scope_held_by_other(s, t)) return -EBUSY;
  memset(tmo, 0, sizeof *tmo);
  s->timer.fire = scope_fire;
  s->task = t;
  s->when = when;
  s->when_s = when_s;
  s->magic = ASYNC__MAGIC_SCOPE;
  s->ncancel0 = t->ncancel;
  s->expired = 0;
  s->inner = NULL;
  s->outer = t->scopes;
  if (s->outer) s->outer->inner = s;
  t->scopes = s;
  scope_arm(s);
  return 0;
}

int async_timeout_enter(async_timeout *tmo, double delay) {
  int err = 0;
  async__task *t = async__task_require(&err);
  if (!t) return err;
  if (!tmo || async__isnan(delay)) return -EINVAL;
  int64_t now = async__loop_now(t->fut.loop), when = SCOPE_NONE;
  if (delay < ASYNC_NO_TIMEOUT) when = async__deadline_after(now, delay);
  /* asyncio's when(): loop.time() + delay, as async_loop_time reads. */
  return scope_enter(tmo, when, (double)now / 1e9 + delay, t);
}

int async_timeout_enter_at(async_timeout *tmo, double when) {
  int err = 0;
  async__task *t = async__task_require(&err);
  if (!t) return err;
  if (!tmo || async__isnan(when)) return -EINVAL;
  return scope_enter(tmo, scope_when(when), when, t);
}

int async_timeout_reschedule(async_timeout *tmo, double when) {
  scope *s = tmo ? scope_of(tmo) : NULL;
  if (!scope_live(s) || async__isnan(when)) return -EINVAL;
  if (s->expired) return -EALREADY;
  s->when = scope_when(when);
  s->when_s = when;
  scope_arm(s);
  return 0;
}

double async_timeout_when(const async_timeout *tmo) {
  const scope *s = tmo ? cscope_of(tmo) : NULL;
  if (!scope_readable(s)) return ASYNC__NAN;
  return s->when_s;
}

int async_timeout_expired(const async_timeout *tmo) {
  const scope *s = tmo ? cscope_of(tmo) : NULL;
  if (!scope_readable(s)) return -EINVAL;
  return s->expired;
}

/* Whether the cancellation of s's task is s's alone: s fired, and no
 * other request came since s was entered (its own still counted). */
static int scope_alone(const scope *s) {
  return s->expired && s->task->ncancel - 1 <= s->ncancel0;
}

int async_timeout_exit(async_timeout *tmo, int err) {
  scope *s = tmo ? scope_of(tmo) : NULL;
  if (!scope_live(s)) return -EINVAL;
  async__task *t = s->task;
  if (async__task_current() != t) return -EPERM;
  async__timer_stop(t->fut.loop, &s->timer);
  s->magic = SCOPE_EXITED;
  async__scope_unlist(s);
  if (!s->expired) return err;
  int alone = scope_alone(s);
  t->ncancel--; /* the scope's own request, taken back */
  if (!alone) return err;
  if (t->cancel_req) t->fut.loop->cancel_epoch++;
  t->cancel_req = 0; /* if never delivered, withdrawn */
  return err == -ECANCELED ? -ETIMEDOUT : err;
}

int async_wait_for(async_future *f, double timeout, void **result) {
  int err = 0;
  if (result) *result = NULL;
  async__task *t = async__task_require(&err);
  if (!t) return err;
  if (!async__future_ok(f) || async__isnan(timeout)) return -EINVAL;
  if (timeout >= ASYNC_NO_TIMEOUT || f->done) return async_await(f, result);
  if (f == &t->fut) return -EDEADLK;
  if (f->loop != t->fut.loop) return f->loop ? -EXDEV : -ESHUTDOWN;
  async_timeout tmo;
  int64_t now = async__loop_now(t->fut.loop);
  scope_enter(&tmo, async__deadline_after(now, timeout),
              (double)now / 1e9 + timeout, t);
  err = async_await(f, result);
  /* The deadline's cancellation, passed on to f, which is done now: what
   * f made of it is the outcome (a value it returned regardless, an error
   * of its cleanup, or -ECANCELED, which the exit makes -ETIMEDOUT). */
  if (err == -ECANCELED && f->done && scope_alone(scope_of(&tmo)))
    err = async_future_result(f, result);
  err = async_timeout_exit(&tmo, err);
  if (err && result) *result = NULL;
  return err;
}
