/* SPDX-License-Identifier: MIT */
/* Cancellation at every kind of suspension point, asyncio's rules. */
#include "helpers.h"
#include "core/core.h"

#include <unistd.h>

static void stop_cb(void *arg) { async_loop_stop(arg); }

/* Runs the loop for one pass over what is ready now. */
static void spin(async_loop *loop) {
  async_loop_call_soon(loop, stop_cb, loop, NULL);
  async_loop_run_forever(loop);
}

typedef struct {
  int first;  /* what the interrupted call returned */
  int second; /* what a later suspending call returned */
  int cleaned;
  int ran;
} probe;

static void *sleeper(void *arg) {
  probe *p = arg;
  p->ran = 1;
  p->first = async_sleep(60.0);
  p->second = async_sleep(0.001); /* it may carry on after a cancel */
  p->cleaned = 1;
  return async_fail(p->first);
}

static void test_cancel_sleep(void **state) {
  (void)state;
  async_loop *loop = new_loop();
  probe p = {0};
  async_task *t;
  async_task_spawn(loop, &t, sleeper, &p, NULL);
  spin(loop);
  double t0 = async_clock();
  assert_int_equal(async_task_cancel(t), 1);
  /* asyncio 3.12+: every request on a task not done returns 1 and counts;
   * this one merges with the pending one (one -ECANCELED). */
  assert_int_equal(async_task_cancel(t), 1);
  assert_int_equal(async_task_cancelling(t), 2);
  assert_int_equal(async_loop_run_until_complete(loop, t, NULL), -ECANCELED);
  assert_true(async_clock() - t0 < 30.0);
  assert_int_equal(p.first, -ECANCELED);
  assert_int_equal(p.second, 0);
  assert_int_equal(p.cleaned, 1);
  assert_int_equal(async_task_cancelled(t), 1);
  assert_int_equal(async_task_cancel(t), 0); /* done */
  async_task_release(t);
  free_loop(loop);
}

static void *yielder(void *arg) {
  probe *p = arg;
  p->first = async_yield();
  p->second = async_yield();
  return NULL; /* caught the cancellation: ends normally */
}

static void test_cancel_yield_and_carry_on(void **state) {
  (void)state;
  async_loop *loop = new_loop();
  probe p = {0};
  async_task *t;
  async_task_spawn(loop, &t, yielder, &p, NULL);
  spin(loop); /* the task yielded: it is ready, not parked */
  assert_int_equal(async_task_cancel(t), 1);
  assert_int_equal(async_loop_run_until_complete(loop, t, NULL), 0);
  assert_int_equal(p.first, -ECANCELED);
  assert_int_equal(p.second, 0);
  assert_int_equal(async_task_cancelled(t), 0);
  async_task_release(t);
  free_loop(loop);
}

static void test_cancel_before_start(void **state) {
  (void)state;
  async_loop *loop = new_loop();
  probe p = {0};
  async_task *t;
  async_task_spawn(loop, &t, sleeper, &p, NULL);
  assert_int_equal(async_task_cancel(t), 1);
  assert_int_equal(async_loop_run_until_complete(loop, t, NULL), -ECANCELED);
  assert_int_equal(p.ran, 0);
  assert_int_equal(async_task_cancelled(t), 1);
  async_task_release(t);
  free_loop(loop);
}

static void *self_cancel(void *arg) {
  probe *p = arg;
  async_task_cancel(async_task_current());
  p->ran = 1;                   /* still running: delivery waits */
  p->first = async_sleep(60.0); /* returns at once */
  p->second = async_sleep(0.001);
  return NULL;
}

static void test_cancel_self_arrives_at_next_suspension(void **state) {
  (void)state;
  async_loop *loop = new_loop();
  probe p = {0};
  double t0 = async_clock();
  assert_int_equal(run_task(loop, self_cancel, &p, NULL), 0);
  assert_true(async_clock() - t0 < 30.0);
  assert_int_equal(p.ran, 1);
  assert_int_equal(p.first, -ECANCELED);
  assert_int_equal(p.second, 0);
  free_loop(loop);
}

typedef struct {
  async_task *inner;
  probe inner_p;
  int outer_err;
  void *outer_res;
} nest;

static void *outer(void *arg) {
  nest *n = arg;
  n->inner = async_spawn(sleeper, &n->inner_p);
  n->outer_err = async_await(n->inner, NULL);
  return async_fail(n->outer_err);
}

static void test_cancel_propagates_through_await(void **state) {
  (void)state;
  async_loop *loop = new_loop();
  nest n = {0};
  async_task *t;
  async_task_spawn(loop, &t, outer, &n, NULL);
  spin(loop);
  spin(loop);
  assert_int_equal(async_task_cancel(t), 1);
  assert_int_equal(async_loop_run_until_complete(loop, t, NULL), -ECANCELED);
  /* The awaited task was cancelled too, and had unwound first. */
  assert_int_equal(n.inner_p.first, -ECANCELED);
  assert_int_equal(n.inner_p.cleaned, 1);
  assert_int_equal(async_task_done(n.inner), 1);
  assert_int_equal(async_task_cancelled(n.inner), 1);
  assert_int_equal(n.outer_err, -ECANCELED);
  async_task_release(n.inner);
  async_task_release(t);
  free_loop(loop);
}

static void *stubborn_child(void *arg) {
  probe *p = arg;
  p->first = async_sleep(60.0);
  p->second = async_sleep(0.01); /* ignores it, finishes normally */
  return IPTR(5);
}

static void *outer_stubborn(void *arg) {
  nest *n = arg;
  n->inner = async_spawn(stubborn_child, &n->inner_p);
  n->outer_err = async_await(n->inner, &n->outer_res);
  return NULL;
}

static void test_cancel_awaiter_waits_for_the_awaited_to_end(void **state) {
  (void)state;
  async_loop *loop = new_loop();
  nest n = {0};
  async_task *t;
  async_task_spawn(loop, &t, outer_stubborn, &n, NULL);
  spin(loop);
  spin(loop);
  async_task_cancel(t);
  assert_int_equal(async_loop_run_until_complete(loop, t, NULL), 0);
  /* The request went to the child, which caught it and returned: the
   * awaiter gets its result once it has ended, as in asyncio. */
  assert_int_equal(n.outer_err, 0);
  assert_int_equal(PTRI(n.outer_res), 5);
  assert_int_equal(async_task_cancelling(t), 1);
  assert_int_equal(async_task_done(n.inner), 1);
  void *res;
  assert_int_equal(async_task_result(n.inner, &res), 0);
  assert_int_equal(PTRI(res), 5);
  async_task_release(n.inner);
  async_task_release(t);
  free_loop(loop);
}

typedef struct {
  async_future *f;
  int err;
} fut_wait;

static void *await_future(void *arg) {
  fut_wait *w = arg;
  w->err = async_await(w->f, NULL);
  return NULL;
}

static void test_cancel_await_of_a_bare_future_cancels_it(void **state) {
  (void)state;
  async_loop *loop = new_loop();
  fut_wait w = {0};
  async_future_new(loop, &w.f);
  async_task *t;
  async_task_spawn(loop, &t, await_future, &w, NULL);
  spin(loop);
  async_task_cancel(t);
  assert_int_equal(async_loop_run_until_complete(loop, t, NULL), 0);
  assert_int_equal(w.err, -ECANCELED);
  assert_int_equal(async_future_cancelled(w.f), 1);
  async_future_release(w.f);
  async_task_release(t);
  free_loop(loop);
}

/* A request pending when the task awaits (it cancelled itself) is passed
 * on, as one made while it waits: asyncio's __step cancels the future the
 * coroutine yields. The awaited task, and what it awaits, unwind first. */
static void *self_cancel_then_await(void *arg) {
  nest *n = arg;
  n->inner = async_spawn(outer, &n[1]); /* n[1]: outer()'s own nest */
  async_yield();
  async_yield(); /* inner awaits its sleeper, which sleeps */
  async_task_cancel(async_task_current());
  n->outer_err = async_await(n->inner, NULL);
  n->inner_p.cleaned = async_task_done(n->inner);
  return NULL;
}

static void test_cancel_pending_is_passed_on_by_await(void **state) {
  (void)state;
  async_loop *loop = new_loop();
  nest n[2] = {{0}};
  assert_int_equal(run_task(loop, self_cancel_then_await, n, NULL), 0);
  assert_int_equal(n[0].outer_err, -ECANCELED);
  assert_int_equal(n[0].inner_p.cleaned, 1); /* done when await returned */
  assert_int_equal(async_task_cancelled(n[0].inner), 1);
  /* The chain below it: outer() awaited a sleeper, cancelled in turn. */
  assert_int_equal(n[1].outer_err, -ECANCELED);
  assert_int_equal(async_task_cancelled(n[1].inner), 1);
  assert_int_equal(n[1].inner_p.first, -ECANCELED);
  assert_int_equal(n[1].inner_p.cleaned, 1);
  async_task_release(n[1].inner);
  async_task_release(n[0].inner);
  free_loop(loop);
}

static void *self_cancel_then_await_future(void *arg) {
  fut_wait *w = arg;
  async_task_cancel(async_task_current());
  w->err = async_await(w->f, NULL);
  return NULL;
}

static void test_cancel_pending_cancels_an_awaited_future(void **state) {
  (void)state;
  async_loop *loop = new_loop();
  fut_wait w = {0};
  async_future_new(loop, &w.f);
  assert_int_equal(run_task(loop, self_cancel_then_await_future, &w, NULL), 0);
  assert_int_equal(w.err, -ECANCELED);
  assert_int_equal(async_future_cancelled(w.f), 1);
  async_future_release(w.f);
  free_loop(loop);
}

/* {==== Cancellation requests (asyncio's cancelling/uncancel) ========== */

static void *self_cancel_and_return(void *arg) {
  (void)arg;
  assert_int_equal(async_task_cancel(async_task_current()), 1);
  return IPTR(3); /* no suspension: the request is still pending */
}

static void test_cancel_pending_at_return_ends_cancelled(void **state) {
  (void)state;
  async_loop *loop = new_loop();
  void *res = IPTR(1);
  assert_int_equal(run_task(loop, self_cancel_and_return, NULL, &res),
                   -ECANCELED);
  assert_null(res);
  free_loop(loop);
}

static void *self_cancel_and_fail(void *arg) {
  (void)arg;
  async_task_cancel(async_task_current());
  return async_fail(-EIO); /* its own error wins, as an exception would */
}

static void test_cancel_pending_at_failure_keeps_the_error(void **state) {
  (void)state;
  async_loop *loop = new_loop();
  assert_int_equal(run_task(loop, self_cancel_and_fail, NULL, NULL), -EIO);
  free_loop(loop);
}

typedef struct {
  async__task *t;
  int rc;
} handed;

/* Parks on nothing but its own wake: the core's wait primitive. */
static void *park_and_return(void *arg) {
  handed *h = arg;
  h->t = (async__task *)async_task_current();
  h->rc = async__task_park(h->t->fut.loop, h->t, NULL, NULL, "test");
  return IPTR(7);
}

static void test_cancel_after_a_handed_result_ends_cancelled(void **state) {
  (void)state;
  async_loop *loop = new_loop();
  handed h = {0};
  async_task *t;
  async_task_spawn(loop, &t, park_and_return, &h, NULL);
  spin(loop);
  async__task_wake(h.t, 0);                  /* handed its result... */
  assert_int_equal(async_task_cancel(t), 1); /* ...cancelled before it ran */
  assert_int_equal(async_loop_run_until_complete(loop, t, NULL), -ECANCELED);
  assert_int_equal(h.rc, 0);
  async_task_release(t);
  free_loop(loop);
}

static void *fails_when_cancelled(void *arg) {
  probe *p = arg;
  p->first = async_sleep(60.0);
  return async_fail(-EIO); /* its cleanup fails */
}

static void *await_failing(void *arg) {
  nest *n = arg;
  n->inner = async_spawn(fails_when_cancelled, &n->inner_p);
  n->outer_err = async_await(n->inner, NULL);
  return NULL;
}

static void test_cancel_await_returns_the_awaited_error(void **state) {
  (void)state;
  async_loop *loop = new_loop();
  nest n = {0};
  async_task *t;
  async_task_spawn(loop, &t, await_failing, &n, NULL);
  spin(loop);
  spin(loop);
  assert_int_equal(async_task_cancel(t), 1);
  assert_int_equal(async_loop_run_until_complete(loop, t, NULL), 0);
  assert_int_equal(n.inner_p.first, -ECANCELED);
  assert_int_equal(n.outer_err, -EIO);
  async_task_release(n.inner);
  async_task_release(t);
  free_loop(loop);
}

/* A second request on an awaiting task is passed on again: the awaited
 * task, which ignored the first, gets the second. */
static void *ignores_one(void *arg) {
  probe *p = arg;
  p->first = async_sleep(60.0);
  p->second = async_sleep(60.0);
  return NULL;
}

static void *await_ignorer(void *arg) {
  nest *n = arg;
  n->inner = async_spawn(ignores_one, &n->inner_p);
  n->outer_err = async_await(n->inner, NULL);
  return NULL;
}

static void test_cancel_second_request_is_passed_on_again(void **state) {
  (void)state;
  async_loop *loop = new_loop();
  nest n = {0};
  async_task *t;
  async_task_spawn(loop, &t, await_ignorer, &n, NULL);
  spin(loop);
  spin(loop);
  assert_int_equal(async_task_cancel(t), 1);
  spin(loop); /* the child caught it and sleeps again */
  assert_int_equal(n.inner_p.first, -ECANCELED);
  assert_int_equal(async_task_cancel(t), 1);
  double t0 = async_clock();
  assert_int_equal(async_loop_run_until_complete(loop, t, NULL), 0);
  assert_true(async_clock() - t0 < 30.0);
  assert_int_equal(n.inner_p.second, -ECANCELED);
  assert_int_equal(n.outer_err, 0); /* the child returned NULL */
  assert_int_equal(async_task_cancelling(t), 2);
  assert_int_equal(async_task_cancelling(n.inner), 2);
  async_task_release(n.inner);
  async_task_release(t);
  free_loop(loop);
}

static void *cancel_then_uncancel(void *arg) {
  int *out = arg;
  async_task *me = async_task_current();
  async_task_cancel(me);
  async_task_cancel(me);
  out[0] = async_task_uncancel(me);
  out[1] = async_yield(); /* one request left: still pending */
  async_task_cancel(me);
  out[2] = async_task_uncancel(me);
  out[3] = async_task_uncancel(me);
  out[4] = async_yield(); /* none left: withdrawn (asyncio 3.13) */
  out[5] = async_task_uncancel(me);
  return NULL;
}

static void test_cancel_cancelling_and_uncancel(void **state) {
  (void)state;
  async_loop *loop = new_loop();
  int out[6];
  assert_int_equal(run_task(loop, cancel_then_uncancel, out, NULL), 0);
  assert_int_equal(out[0], 1);
  assert_int_equal(out[1], -ECANCELED);
  assert_int_equal(out[2], 1);
  assert_int_equal(out[3], 0);
  assert_int_equal(out[4], 0);
  assert_int_equal(out[5], 0); /* never below 0 */
  async_future *f;
  async_future_new(loop, &f);
  assert_int_equal(async_task_cancelling(f), -EINVAL); /* not a task */
  assert_int_equal(async_task_uncancel(f), -EINVAL);
  assert_int_equal(async_task_cancelling(NULL), -EINVAL);
  async_future_release(f);
  free_loop(loop);
}

/* }==== */

typedef struct {
  int fd;
  int err;
} fd_wait;

static void *wait_readable(void *arg) {
  fd_wait *w = arg;
  w->err = async_fd_wait(w->fd, ASYNC_READABLE, ASYNC_NO_TIMEOUT);
  return NULL;
}

static void test_cancel_fd_wait(void **state) {
  (void)state;
  async_loop *loop = new_loop();
  int p[2];
  assert_int_equal(pipe(p), 0);
  fd_wait w = {.fd = p[0]};
  async_task *t;
  async_task_spawn(loop, &t, wait_readable, &w, NULL);
  spin(loop);
  async_task_cancel(t);
  assert_int_equal(async_loop_run_until_complete(loop, t, NULL), 0);
  assert_int_equal(w.err, -ECANCELED);
  /* The fd is usable again afterwards. */
  w.err = 0;
  async_task_release(t);
  async_task_spawn(loop, &t, wait_readable, &w, NULL);
  spin(loop);
  assert_int_equal(write(p[1], "x", 1), 1);
  assert_int_equal(async_loop_run_until_complete(loop, t, NULL), 0);
  assert_int_equal(w.err, ASYNC_READABLE);
  async_task_release(t);
  close(p[0]);
  close(p[1]);
  free_loop(loop);
}

typedef struct {
  async_task *victim;
  int first;
  int second;
} late_cancel;

/* Armed first, so its timer fires first when both are due together: it
 * runs while the victim is woken but has not run yet. */
static void *canceller(void *arg) {
  late_cancel *c = arg;
  async_sleep(1.0);
  async_task_cancel(c->victim);
  return NULL;
}

static void *late_victim(void *arg) {
  late_cancel *c = arg;
  c->first = async_sleep(1.0);
  c->second = async_sleep(0.5);
  return NULL;
}

static void test_cancel_after_the_wake_is_reported_by_that_sleep(void **state) {
  (void)state;
  async_loop_options o;
  async_loop_options_init(&o);
  o.virtual_clock = 1; /* equal deadlines, exactly */
  async_loop *loop;
  assert_int_equal(async_loop_new(&loop, &o), 0);
  late_cancel c = {0};
  async_task *a, *b;
  async_task_spawn(loop, &a, canceller, &c, NULL);
  async_task_spawn(loop, &b, late_victim, &c, NULL);
  c.victim = b;
  assert_int_equal(async_loop_run_until_complete(loop, b, NULL), 0);
  assert_int_equal(c.first, -ECANCELED); /* asyncio raises from that sleep */
  assert_int_equal(c.second, 0);         /* delivered once */
  async_loop_run_until_complete(loop, a, NULL);
  async_task_release(a);
  async_task_release(b);
  free_loop(loop);
}

static void cancel_cb(void *arg) { async_task_cancel(arg); }

static void test_cancel_from_a_callback(void **state) {
  (void)state;
  async_loop *loop = new_loop();
  probe p = {0};
  async_task *t;
  async_task_spawn(loop, &t, sleeper, &p, NULL);
  async_loop_call_later(loop, 0.01, cancel_cb, t, NULL);
  assert_int_equal(async_loop_run_until_complete(loop, t, NULL), -ECANCELED);
  async_task_release(t);
  free_loop(loop);
}

static void *forever_stubborn(void *arg) {
  int *rounds = arg;
  for (;;) {
    if (async_sleep(3600.0) == -ECANCELED) (*rounds)++;
  }
  return NULL;
}

static void *polite(void *arg) {
  int *cleaned = arg;
  if (async_sleep(3600.0) == -ECANCELED) {
    async_sleep(0.001); /* cleanup may still suspend */
    (*cleaned)++;
  }
  return NULL;
}

static void
test_cancel_at_close_unwinds_and_gives_up_on_stubborn(void **state) {
  (void)state;
  async_loop *loop = new_loop();
  int rounds = 0, cleaned = 0;
  async_task *kept;
  async_task_spawn(loop, NULL, polite, &cleaned, NULL);
  async_task_spawn(loop, &kept, polite, &cleaned, NULL);
  async_task_spawn(loop, NULL, forever_stubborn, &rounds, NULL);
  spin(loop);
  double t0 = async_clock();
  assert_int_equal(async_loop_close(loop), 0);
  assert_true(async_clock() - t0 < 30.0);
  assert_int_equal(cleaned, 2);
  assert_true(rounds >= 2); /* cancelled again after each grace period */
  /* A handle kept across the close stays readable. */
  assert_int_equal(async_task_done(kept), 1);
  assert_int_equal(async_task_result(kept, NULL), 0);
  assert_int_equal(async_task_cancel(kept), 0);
  assert_int_equal(async_task_release(kept), 0);
  free_loop(loop);
}

/* White box: a task given up at close while it is ready, woken from a wait
 * it has not returned from yet, still holds what the wait took: await's
 * reference on its future, gather's registrations (on its dead stack) and
 * references on the futures still pending. The kill gives them back. */
typedef struct {
  async_future *awaited, *failing, *pending;
  int stop;
} woken_at_kill;

static void *stubborn_awaiter(void *arg) {
  woken_at_kill *w = arg;
  for (;;) {
    if (w->awaited) async_future_release(w->awaited);
    async_future_new(async_loop_current(), &w->awaited);
    async_await(w->awaited, NULL); /* ignores every cancellation */
  }
  return NULL;
}

static void *stubborn_gatherer(void *arg) {
  woken_at_kill *w = arg;
  for (;;) {
    if (w->failing) async_future_release(w->failing);
    if (w->pending) async_future_release(w->pending);
    async_future_new(async_loop_current(), &w->failing);
    async_future_new(async_loop_current(), &w->pending);
    async_future *fs[] = {w->failing, w->pending};
    async_gather(fs, 2, NULL); /* woken by the first error */
  }
  return NULL;
}

static void *stubborn_waker(void *arg) {
  woken_at_kill *w = arg;
  for (;;) {
    if (w->awaited && !async_future_done(w->awaited))
      async_future_set_result(w->awaited, NULL);
    if (w->failing && !async_future_done(w->failing))
      async_future_set_error(w->failing, -EIO);
    async_yield();
  }
  return NULL;
}

static void
test_cancel_killed_after_a_wake_gives_back_what_it_held(void **state) {
  (void)state;
  async_loop *loop = new_loop();
  woken_at_kill w = {0};
  async_task_spawn(loop, NULL, stubborn_awaiter, &w, NULL);
  async_task_spawn(loop, NULL, stubborn_gatherer, &w, NULL);
  async_task_spawn(loop, NULL, stubborn_waker, &w, NULL);
  spin(loop);
  spin(loop);
  assert_int_equal(async_loop_close(loop), 0); /* kills all three */
  /* Only the killed tasks' own references are left, which we drop. */
  assert_int_equal(w.awaited->refs, 1);
  assert_int_equal(w.pending->refs, 1);
  assert_true(async__list_empty(&w.pending->waiters));
  assert_int_equal(async_future_release(w.awaited), 0);
  assert_int_equal(async_future_release(w.failing), 0);
  assert_int_equal(async_future_release(w.pending), 0);
  free_loop(loop);
}

/* {==== Long chains: each link waits for the next ======================= */

#if defined(__has_include)
#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#define CHAIN_UNDER_VALGRIND() RUNNING_ON_VALGRIND
#endif
#endif
#if !defined(CHAIN_UNDER_VALGRIND)
#define CHAIN_UNDER_VALGRIND() 0
#endif

#include <pthread.h>

/* A million links: 4 GiB of stack pages at one each. ASan's shadow,
 * valgrind's slowness and TSan's fibers get a tenth, a fiftieth and a
 * hundredth; the
 * recursion this guards against overflowed at about 400 links on the
 * canceller's 64 KiB, and at a few tens of thousands on 8 MiB. */
static size_t chain_len(void) {
  const char *env = getenv("TEST_CHAIN_LEN"); /* for a run by hand */
  if (env && atol(env) > 0) return (size_t)atol(env);
  if (CHAIN_UNDER_VALGRIND()) return 20000;
#if defined(__has_feature)
#if __has_feature(thread_sanitizer)
  return 10000; /* a mapping of its own per fiber's shadow stack */
#endif
#if __has_feature(address_sanitizer)
  return 100000;
#endif
#endif
#if defined(__SANITIZE_THREAD__)
  return 10000;
#elif defined(__SANITIZE_ADDRESS__)
  return 100000;
#endif
  return 1000000;
}

enum chain_kind { CHAIN_AWAIT, CHAIN_GATHER, CHAIN_GROUP };

static struct {
  enum chain_kind kind;
  size_t n;
  size_t started;
  size_t cancelled;   /* links whose wait said -ECANCELED */
  int tail_cancelled; /* the cancellation went down every link */
  async_task *head;
} chain;

static void *chain_link(void *arg) {
  size_t i = (size_t)(uintptr_t)arg;
  int err;

  chain.started++;
  if (i + 1 == chain.n) {
    err = async_sleep(1e9);
    chain.tail_cancelled = err == -ECANCELED;
  } else if (chain.kind == CHAIN_GROUP) {
    async_task_group *g;
    if (async_task_group_new(&g)) return IPTR(-ENOMEM);
    err = async_task_group_spawn(g, NULL, chain_link, IPTR(i + 1), NULL);
    if (!err) err = async_task_group_wait(g);
    async_task_group_free(g);
  } else {
    async_task *next;
    if (async_task_spawn(async_loop_current(), &next, chain_link, IPTR(i + 1),
                         NULL))
      return IPTR(-ENOMEM);
    err = chain.kind == CHAIN_AWAIT ? async_await(next, NULL)
                                    : async_gather(&next, 1, NULL);
    async_task_release(next);
  }
  if (err == -ECANCELED) chain.cancelled++;
  /* An await returns what the awaited task ended with (asyncio passes on
   * its outcome): each link ends cancelled, so the one above sees it. */
  if (chain.kind == CHAIN_AWAIT && err) return async_fail(err);
  return IPTR(err);
}

static async_loop *chain_start(enum chain_kind kind, size_t n) {
  async_loop_options opts;
  async_loop *loop = NULL;

  async_loop_options_init(&opts);
  opts.virtual_clock = 1;
  opts.stack_size = 16 * 1024;
  opts.guard_size = 4096; /* address space: 1M x 80 KiB would be plenty */
  assert_int_equal(async_loop_new(&loop, &opts), 0);
  memset(&chain, 0, sizeof chain);
  chain.kind = kind;
  chain.n = n;
  assert_int_equal(
      async_task_spawn(loop, &chain.head, chain_link, IPTR(0), NULL), 0);
  return loop;
}

/* On a stack of 64 KiB: waits until every link waits, cancels the head. */
static void *chain_cancel(void *arg) {
  (void)arg;
  while (chain.started < chain.n) async_sleep(1.0);
  async_sleep(1.0); /* the tail is parked in its sleep too */
  assert_int_equal(async_task_cancel(chain.head), 1);
  void *res = NULL;
  int err = async_await(chain.head, &res);
  return err ? IPTR(err) : res;
}

static void check_chain_cancel(enum chain_kind kind, size_t n) {
  async_loop *loop = chain_start(kind, n);
  async_task_options topts;
  async_task *canceller;

  async_task_options_init(&topts);
  topts.stack_size = 64 * 1024;
  assert_int_equal(
      async_task_spawn(loop, &canceller, chain_cancel, NULL, &topts), 0);
  void *res = NULL;
  assert_int_equal(async_loop_run_until_complete(loop, canceller, &res), 0);
  assert_int_equal(PTRI(res), -ECANCELED);
  assert_int_equal(chain.started, n);
  assert_int_equal(chain.cancelled, n);
  assert_int_equal(async_task_release(canceller), 0);
  assert_int_equal(async_task_release(chain.head), 0);
  free_loop(loop);
}

static void test_cancel_million_link_await_chain(void **state) {
  (void)state;
  check_chain_cancel(CHAIN_AWAIT, chain_len());
}

static void test_cancel_long_gather_chain(void **state) {
  (void)state;
  check_chain_cancel(CHAIN_GATHER, chain_len() / 10);
}

static void test_cancel_long_task_group_chain(void **state) {
  (void)state;
  check_chain_cancel(CHAIN_GROUP, chain_len() / 10);
}

static void chain_stop(void *arg) {
  if (chain.started < chain.n) {
    async_loop_call_later(arg, 1.0, chain_stop, arg, NULL);
    return;
  }
  async_loop_stop(arg);
}

static void *chain_close(void *arg) { return IPTR(async_loop_close(arg)); }

/* The close cancels every task; on a thread of 256 KiB of stack. */
static void test_cancel_million_link_chain_at_close(void **state) {
  (void)state;
  size_t n = chain_len();
  async_loop *loop = chain_start(CHAIN_AWAIT, n);
  assert_int_equal(async_loop_call_later(loop, 1.0, chain_stop, loop, NULL), 0);
  assert_int_equal(async_loop_run_forever(loop), 0);
  assert_int_equal(chain.started, n);

  pthread_attr_t attr;
  pthread_t th;
  void *r;
  assert_int_equal(pthread_attr_init(&attr), 0);
  assert_int_equal(pthread_attr_setstacksize(&attr, 256 * 1024), 0);
  assert_int_equal(pthread_create(&th, &attr, chain_close, loop), 0);
  assert_int_equal(pthread_join(th, &r), 0);
  pthread_attr_destroy(&attr);
  assert_int_equal(PTRI(r), 0);
  /* The tail saw the cancellation that the close gave the head. The
   * unwinding of a million links may outlast the close's grace period on
   * a loaded machine or a slow build (ucontext): the links still
   * unwinding are then ended without running, as the close promises. */
  assert_true(chain.tail_cancelled);
  assert_true(chain.cancelled >= 1);
  assert_int_equal(async_future_done(chain.head), 1);
  assert_int_equal(async_task_release(chain.head), 0);
  free_loop(loop);
}

/* }==== */

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_cancel_sleep),
      cmocka_unit_test(test_cancel_yield_and_carry_on),
      cmocka_unit_test(test_cancel_before_start),
      cmocka_unit_test(test_cancel_self_arrives_at_next_suspension),
      cmocka_unit_test(test_cancel_propagates_through_await),
      cmocka_unit_test(test_cancel_awaiter_waits_for_the_awaited_to_end),
      cmocka_unit_test(test_cancel_await_of_a_bare_future_cancels_it),
      cmocka_unit_test(test_cancel_pending_is_passed_on_by_await),
      cmocka_unit_test(test_cancel_pending_cancels_an_awaited_future),
      cmocka_unit_test(test_cancel_pending_at_return_ends_cancelled),
      cmocka_unit_test(test_cancel_pending_at_failure_keeps_the_error),
      cmocka_unit_test(test_cancel_after_a_handed_result_ends_cancelled),
      cmocka_unit_test(test_cancel_await_returns_the_awaited_error),
      cmocka_unit_test(test_cancel_second_request_is_passed_on_again),
      cmocka_unit_test(test_cancel_cancelling_and_uncancel),
      cmocka_unit_test(test_cancel_fd_wait),
      cmocka_unit_test(test_cancel_from_a_callback),
      cmocka_unit_test(test_cancel_after_the_wake_is_reported_by_that_sleep),
      cmocka_unit_test(test_cancel_at_close_unwinds_and_gives_up_on_stubborn),
      cmocka_unit_test(test_cancel_killed_after_a_wake_gives_back_what_it_held),
      cmocka_unit_test(test_cancel_million_link_await_chain),
      cmocka_unit_test(test_cancel_long_gather_chain),
      cmocka_unit_test(test_cancel_long_task_group_chain),
      cmocka_unit_test(test_cancel_million_link_chain_at_close),
  };
  return cmocka_run_group_tests_name("cancel", tests, NULL, NULL);
}
