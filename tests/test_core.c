/* SPDX-License-Identifier: MIT */
/* The core's internal mechanisms, seen through core.h: fd watchers that
 * carry their own callback, and the one wait primitive with a deadline
 * (async__task_park_until) and its races. Linked, like test_layers, from
 * the os and core objects alone. */
#include "core/core.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

static async_loop *new_loop(int virtual_clock) {
  async_loop_options o;
  async_loop_options_init(&o);
  o.virtual_clock = virtual_clock;
  async_loop *loop = NULL;
  assert_int_equal(async_loop_new(&loop, &o), 0);
  return loop;
}

static int run(async_loop *loop, async_fn fn, void *arg) {
  async_task *t = NULL;
  assert_int_equal(async_task_spawn(loop, &t, fn, arg, NULL), 0);
  int err = async_loop_run_until_complete(loop, t, NULL);
  assert_int_equal(async_task_release(t), 0);
  return err;
}

/* {==== fd watchers ===================================================== */

typedef struct {
  async__io io;
  int calls, gone, stop_self;
  unsigned last;
} counter;

static void count_cb(async_loop *loop, async__io *w, unsigned revents) {
  counter *c = async__container_of(w, counter, io);
  c->calls++;
  c->last = revents;
  if (revents & ASYNC__IO_GONE) c->gone++;
  if (c->stop_self) async__io_stop(loop, w);
}

typedef struct {
  int fds[2];
  counter once, always;
  int waiters_started, waiters_stopped, fd_rc, forgot;
} wctx;

static void *watchers_main(void *arg) {
  wctx *x = arg;
  async_loop *loop = async_loop_current();
  size_t base = loop->fd_waiters;
  async__io_init(&x->once.io, x->fds[0], count_cb);
  async__io_init(&x->always.io, x->fds[0], count_cb);
  x->once.stop_self = 1;
  if (async__io_start(loop, &x->once.io, ASYNC__POLL_IN) ||
      async__io_start(loop, &x->always.io, ASYNC__POLL_IN))
    return NULL;
  x->waiters_started = (int)(loop->fd_waiters - base);
  /* A task's wait is one more watcher on the same fd: all three see it. */
  if (write(x->fds[1], "x", 1) != 1) return NULL;
  x->fd_rc = async_fd_wait(x->fds[0], ASYNC_READABLE, 5);
  async_sleep(0.01); /* the fd stays readable: `always` keeps being told */
  x->waiters_stopped = (int)(loop->fd_waiters - base);
  x->forgot = async_fd_forget(loop, x->fds[0]);
  return NULL;
}

static void test_core_watchers_carry_their_callback(void **state) {
  (void)state;
  async_loop *loop = new_loop(0);
  wctx x;
  memset(&x, 0, sizeof x);
  assert_int_equal(pipe(x.fds), 0);
  assert_int_equal(run(loop, watchers_main, &x), 0);
  assert_int_equal(x.waiters_started, 2);
  assert_int_equal(x.fd_rc, ASYNC_READABLE);
  assert_int_equal(x.once.calls, 1); /* it stopped itself */
  assert_int_equal(x.once.last, ASYNC__POLL_IN);
  assert_true(x.always.calls >= 2);
  assert_int_equal(x.waiters_stopped, 1); /* `always` alone */
  /* forget tells the one watcher left, stopped, with ASYNC__IO_GONE. */
  assert_int_equal(x.forgot, 1);
  assert_int_equal(x.always.gone, 1);
  assert_int_equal(x.always.last, ASYNC__IO_GONE);
  assert_true(async__list_empty(&x.always.io.link));
  close(x.fds[0]);
  close(x.fds[1]);
  assert_int_equal(async_loop_free(loop), 0);
}

typedef struct {
  int wait_rc, forget_rc, called;
} own;

static void on_call(void *arg) { ((own *)arg)->called++; }

static void *own_main(void *arg) {
  own *o = arg;
  async_loop *loop = async_loop_current();
  o->wait_rc = async_fd_wait(loop->wake_fd[0], ASYNC_READABLE, 0);
  o->forget_rc = async_fd_forget(loop, loop->wake_fd[0]);
  /* The loop's own watcher survived: a call from "another thread" (here,
   * this one) still wakes the loop out of a long poll. */
  async_loop_call_soon_threadsafe(loop, on_call, o);
  async_sleep(0.01);
  return NULL;
}

static void test_core_wake_fd_is_the_loops(void **state) {
  (void)state;
  async_loop *loop = new_loop(0);
  own o = {0};
  assert_int_equal(run(loop, own_main, &o), 0);
  assert_int_equal(o.wait_rc, -EINVAL);
  assert_int_equal(o.forget_rc, 0);
  assert_int_equal(o.called, 1);
  assert_int_equal(loop->fd_waiters, 0); /* unref: not counted */
  assert_int_equal(async_loop_free(loop), 0);
}

/* }==== */

/* {==== async__task_park_until ========================================== */

typedef struct {
  async__task *t;
  int unlinks, unlinked_suspended;
  int rc, after;
  int64_t deadline;
  async__timer poke; /* a timer of the test's, due with the deadline */
  int poke_cancels;
} pctx;

static void p_unlink(async__task *t) {
  pctx *p = t->wait_obj;
  p->unlinks++;
  if (t->state == ASYNC__T_SUSPENDED) p->unlinked_suspended++;
}

static void poke_fire(async__timer *tm) {
  pctx *p = async__container_of(tm, pctx, poke);
  if (p->poke_cancels)
    async_future_cancel(&p->t->fut);
  else
    async__task_wake(p->t, 42);
}

/* Arms the poke at the parked task's deadline, after the deadline timer:
 * the heap fires equal times in arming order. */
static void *poke_later(void *arg) {
  pctx *p = arg;
  async__timer_start(async_loop_current(), &p->poke, p->deadline);
  return NULL;
}

/* Parks with a deadline 1 ms ahead; the poke timer, when set, is due at
 * that same time, armed before the deadline timer (poke_first) or after
 * it, by a task that runs once this one is parked. */
static void park_case(pctx *p, int poke, int poke_first) {
  async__task *t = async__task_current();
  async_loop *loop = t->fut.loop;
  p->deadline = async__loop_now(loop) + 1000000;
  p->t = t;
  t->wait_obj = p;
  p->poke.fire = poke_fire;
  if (poke && poke_first) async__timer_start(loop, &p->poke, p->deadline);
  async_task *helper = NULL;
  if (poke && !poke_first) async_task_spawn(loop, &helper, poke_later, p, NULL);
  p->rc = async__task_park_until(loop, t, p_unlink, NULL, "test", p->deadline);
  t->wait_obj = NULL;
  p->after = async_yield(); /* delivers a cancellation left pending */
  async__timer_stop(loop, &p->poke);
  if (helper) async_task_release(helper);
}

static void *deadline_only(void *arg) {
  park_case(arg, 0, 0);
  return NULL;
}
static void *wake_first(void *arg) {
  park_case(arg, 1, 1);
  return NULL;
}
static void *deadline_then_cancel(void *arg) {
  ((pctx *)arg)->poke_cancels = 1;
  park_case(arg, 1, 0);
  return NULL;
}

static void test_core_park_until_deadline(void **state) {
  (void)state;
  async_loop *loop = new_loop(1);
  pctx p;
  memset(&p, 0, sizeof p);
  assert_int_equal(run(loop, deadline_only, &p), 0);
  assert_int_equal(p.rc, -ETIMEDOUT);
  assert_int_equal(p.unlinks, 1);            /* the deadline unlinked it ... */
  assert_int_equal(p.unlinked_suspended, 1); /* ... while still parked */
  assert_int_equal(p.after, 0);
  assert_null(loop->timers.root); /* nothing left armed */
  assert_int_equal(async_loop_free(loop), 0);
}

static void test_core_park_until_wake_beats_deadline(void **state) {
  (void)state;
  async_loop *loop = new_loop(1);
  pctx p;
  memset(&p, 0, sizeof p);
  assert_int_equal(run(loop, wake_first, &p), 0);
  /* Woken at the deadline's own time, before its timer fired: the wake
   * wins, and the deadline firing next, t already READY, is void. */
  assert_int_equal(p.rc, 42);
  assert_int_equal(p.unlinks, 0);
  assert_null(loop->timers.root);
  assert_int_equal(async_loop_free(loop), 0);
}

static void test_core_park_until_deadline_beats_cancel(void **state) {
  (void)state;
  async_loop *loop = new_loop(1);
  pctx p;
  memset(&p, 0, sizeof p);
  assert_int_equal(run(loop, deadline_then_cancel, &p), 0);
  /* The deadline came first: -ETIMEDOUT, and the cancellation requested
   * before the task ran stays pending for the next suspending call. */
  assert_int_equal(p.rc, -ETIMEDOUT);
  assert_int_equal(p.unlinks, 1);
  assert_int_equal(p.after, -ECANCELED);
  assert_int_equal(async_loop_free(loop), 0);
}

/* }==== */

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_core_watchers_carry_their_callback),
      cmocka_unit_test(test_core_wake_fd_is_the_loops),
      cmocka_unit_test(test_core_park_until_deadline),
      cmocka_unit_test(test_core_park_until_wake_beats_deadline),
      cmocka_unit_test(test_core_park_until_deadline_beats_cancel),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
