/* SPDX-License-Identifier: MIT */
/* wait_for and deadline scopes (asyncio.timeout): the timeout cancels and
 * waits for the unwinding, scopes nest and move, only the scope that
 * expired converts the cancellation, and an outside cancellation stays a
 * cancellation. In the spirit of CPython's test_asyncio/test_waitfor.py
 * and test_timeouts.py. */
#include "vclock_helpers.h"

#include "core/core.h" /* white box: the loop's timer heap */

#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

static void cancel_cb(void *f) { async_future_cancel(f); }

/* {==== wait_for ======================================================== */

typedef struct {
  sleeper s;
  double timeout;
  int rc;
  void *res;
  double at;
  int cancel_at;  /* cancel the waiting task at this time (0: never) */
  int child_done; /* the child was done when wait_for returned */
  int child_rc;   /* its own outcome */
  void *child_res;
} wf;

static void *wait_for_main(void *arg) {
  wf *w = arg;
  async_task *t = async_spawn(sleeper_fn, &w->s);
  if (w->cancel_at)
    async_loop_call_later(async_loop_current(), w->cancel_at, cancel_cb,
                          async_task_current(), NULL);
  w->res = IPTR(-1);
  w->rc = async_wait_for(t, w->timeout, &w->res);
  w->at = vnow();
  w->child_done = async_task_done(t);
  w->child_rc = async_task_result(t, &w->child_res);
  async_task_release(t);
  return NULL;
}

static void test_wait_for_in_time(void **state) {
  (void)state;
  wf w = {.s = {.delay = 1, .value = IPTR(42)}, .timeout = 2};
  assert_int_equal(vrun(wait_for_main, &w, NULL, NULL), 0);
  assert_int_equal(w.rc, 0);
  assert_int_equal(PTRI(w.res), 42);
  assert_true(w.at == 1.0);
}

static void test_wait_for_timeout_cancels_and_waits(void **state) {
  (void)state;
  wf w = {.s = {.delay = 3600, .cleanup = 2}, .timeout = 1};
  double t0 = async_clock();
  assert_int_equal(vrun(wait_for_main, &w, NULL, NULL), 0);
  assert_true(async_clock() - t0 < 5.0); /* an hour, on the virtual clock */
  assert_int_equal(w.rc, -ETIMEDOUT);
  assert_null(w.res);
  /* Returned only once the child had unwound, cleanup included. */
  assert_true(w.at == 3.0);
  assert_int_equal(w.child_done, 1);
  assert_int_equal(w.s.slept, -ECANCELED);
  assert_int_equal(w.child_rc, -ECANCELED);
}

static void test_wait_for_zero_timeout(void **state) {
  (void)state;
  wf w = {.s = {.delay = 1}, .timeout = 0};
  assert_int_equal(vrun(wait_for_main, &w, NULL, NULL), 0);
  assert_int_equal(w.rc, -ETIMEDOUT);
  assert_true(w.at == 0.0);
  assert_int_equal(w.child_rc, -ECANCELED);
  assert_int_equal(w.s.ran, 0); /* cancelled before it started */
}

/* asyncio's wait_for reports what the work made of the deadline: a value
 * it returned regardless is the result, an error of its cleanup is the
 * error; only an ending cancelled is a timeout (issue 10 item 5). */
static void test_wait_for_child_ignoring_the_cancel(void **state) {
  (void)state;
  wf w = {.s = {.delay = 10, .ignore = 1, .value = IPTR(7)}, .timeout = 1};
  assert_int_equal(vrun(wait_for_main, &w, NULL, NULL), 0);
  assert_int_equal(w.rc, 0);
  assert_int_equal(PTRI(w.res), 7);
  assert_true(w.at == 1.0);
  assert_int_equal(w.s.slept, -ECANCELED); /* it was cancelled */
  assert_int_equal(w.child_rc, 0);
  assert_int_equal(PTRI(w.child_res), 7);
}

static void test_wait_for_child_failing_in_its_cleanup(void **state) {
  (void)state;
  wf w = {.s = {.delay = 10, .ignore = 1, .cleanup = 1, .fail = -EIO},
          .timeout = 1};
  assert_int_equal(vrun(wait_for_main, &w, NULL, NULL), 0);
  assert_int_equal(w.rc, -EIO);
  assert_null(w.res);
  assert_true(w.at == 2.0);
  assert_int_equal(w.child_rc, -EIO);
}

static void test_wait_for_outside_cancel_is_not_a_timeout(void **state) {
  (void)state;
  wf w = {.s = {.delay = 10, .cleanup = 1}, .timeout = 5, .cancel_at = 2};
  assert_int_equal(vrun(wait_for_main, &w, NULL, NULL), 0);
  assert_int_equal(w.rc, -ECANCELED);
  assert_true(w.at == 3.0);
  assert_int_equal(w.child_rc, -ECANCELED); /* passed on, as await does */
}

static void test_wait_for_no_limit(void **state) {
  (void)state;
  wf w = {.s = {.delay = 7200, .value = IPTR(1)}, .timeout = ASYNC_NO_TIMEOUT};
  assert_int_equal(vrun(wait_for_main, &w, NULL, NULL), 0);
  assert_int_equal(w.rc, 0);
  assert_true(w.at == 7200.0);
}

typedef struct {
  async_future *f;
  int rc;
  double at;
} wfbare;

static void *wait_for_bare(void *arg) {
  wfbare *b = arg;
  async_future_new(async_loop_current(), &b->f);
  b->rc = async_wait_for(b->f, 2.5, NULL);
  b->at = vnow();
  return NULL;
}

static void test_wait_for_bare_future(void **state) {
  (void)state;
  wfbare b = {0};
  assert_int_equal(vrun(wait_for_bare, &b, NULL, NULL), 0);
  assert_int_equal(b.rc, -ETIMEDOUT);
  assert_true(b.at == 2.5);
  assert_int_equal(async_future_cancelled(b.f), 1);
  async_future_release(b.f);
}

/* }==== */

/* {==== Scopes ========================================================== */

/* A scripted body: sleeps inside nested scopes and records what it sees.
 * Times are virtual. */
typedef struct {
  double outer_delay, inner_delay; /* < 0: no deadline */
  double body_sleep;
  double resched_inner; /* reschedule the inner to it */
  double resched_at;    /* ... after sleeping this long */
  int body_rc, inner_rc, outer_rc, after_rc;
  double at_inner_exit, at_outer_exit;
  int inner_expired, outer_expired;
  int resched_rc;
} nest;

static void *nested_main(void *arg) {
  nest *n = arg;
  async_timeout outer, inner;
  async_timeout_enter(&outer, n->outer_delay);
  async_timeout_enter(&inner, n->inner_delay);
  if (n->resched_at > 0) {
    async_sleep(n->resched_at);
    n->resched_rc = async_timeout_reschedule(&inner, n->resched_inner);
  }
  n->body_rc = async_sleep(n->body_sleep);
  n->inner_expired = async_timeout_expired(&inner);
  n->inner_rc = async_timeout_exit(&inner, n->body_rc);
  n->at_inner_exit = vnow();
  int err = n->inner_rc;
  if (!err) err = n->after_rc = async_sleep(1.0); /* still in outer */
  n->outer_expired = async_timeout_expired(&outer);
  n->outer_rc = async_timeout_exit(&outer, err);
  n->at_outer_exit = vnow();
  return NULL;
}

static void run_nest(nest *n) {
  assert_int_equal(vrun(nested_main, n, NULL, NULL), 0);
}

static void test_timeout_scope_expires(void **state) {
  (void)state;
  nest n = {
      .outer_delay = ASYNC_NO_TIMEOUT, .inner_delay = 2, .body_sleep = 3600};
  run_nest(&n);
  assert_int_equal(n.body_rc, -ECANCELED);
  assert_int_equal(n.inner_expired, 1);
  assert_int_equal(n.inner_rc, -ETIMEDOUT);
  assert_true(n.at_inner_exit == 2.0);
  assert_int_equal(n.outer_rc, -ETIMEDOUT); /* passed through the outer */
  assert_int_equal(n.outer_expired, 0);
}

static void test_timeout_scope_in_time(void **state) {
  (void)state;
  nest n = {.outer_delay = 10, .inner_delay = 5, .body_sleep = 2};
  run_nest(&n);
  assert_int_equal(n.body_rc, 0);
  assert_int_equal(n.inner_rc, 0);
  assert_int_equal(n.after_rc, 0);
  assert_int_equal(n.outer_rc, 0);
  assert_true(n.at_outer_exit == 3.0);
}

static void test_timeout_inner_expires_first(void **state) {
  (void)state;
  nest n = {.outer_delay = 10, .inner_delay = 1, .body_sleep = 60};
  run_nest(&n);
  assert_int_equal(n.body_rc, -ECANCELED);
  assert_int_equal(n.inner_rc, -ETIMEDOUT);
  assert_int_equal(n.outer_rc, -ETIMEDOUT); /* the inner's, passed on */
  assert_int_equal(n.outer_expired, 0);
  assert_true(n.at_outer_exit == 1.0);
}

static void test_timeout_outer_expires_inside_inner(void **state) {
  (void)state;
  nest n = {.outer_delay = 1, .inner_delay = 10, .body_sleep = 60};
  run_nest(&n);
  assert_int_equal(n.body_rc, -ECANCELED);
  /* Not the inner's: the -ECANCELED travels on, and the outer claims it. */
  assert_int_equal(n.inner_rc, -ECANCELED);
  assert_int_equal(n.inner_expired, 0);
  assert_int_equal(n.outer_rc, -ETIMEDOUT);
  assert_true(n.at_outer_exit == 1.0);
}

static void test_timeout_both_expire_together(void **state) {
  (void)state;
  nest n = {.outer_delay = 1, .inner_delay = 1, .body_sleep = 60};
  run_nest(&n);
  assert_int_equal(n.body_rc, -ECANCELED);
  assert_int_equal(n.inner_expired, 1);
  assert_int_equal(n.inner_rc, -ECANCELED); /* the outer's is there too */
  assert_int_equal(n.outer_rc, -ETIMEDOUT);
}

static void test_timeout_reschedule_later(void **state) {
  (void)state;
  nest n = {.outer_delay = ASYNC_NO_TIMEOUT,
            .inner_delay = 2,
            .body_sleep = 3,
            .resched_at = 1,
            .resched_inner = 10};
  run_nest(&n);
  assert_int_equal(n.resched_rc, 0);
  assert_int_equal(n.body_rc, 0);
  assert_int_equal(n.inner_rc, 0);
  assert_true(n.at_inner_exit == 4.0);
}

static void test_timeout_reschedule_earlier_and_to_none(void **state) {
  (void)state;
  nest n = {.outer_delay = ASYNC_NO_TIMEOUT,
            .inner_delay = 100,
            .body_sleep = 50,
            .resched_at = 1,
            .resched_inner = 5};
  run_nest(&n);
  assert_int_equal(n.inner_rc, -ETIMEDOUT);
  assert_true(n.at_inner_exit == 5.0);
  nest m = {.outer_delay = ASYNC_NO_TIMEOUT,
            .inner_delay = 2,
            .body_sleep = 50,
            .resched_at = 1,
            .resched_inner = ASYNC_NO_TIMEOUT};
  run_nest(&m);
  assert_int_equal(m.body_rc, 0);
  assert_int_equal(m.inner_rc, 0);
  assert_true(m.at_inner_exit == 51.0);
}

/* A cancellation from outside the scope stays -ECANCELED. */
typedef struct {
  int body_rc, exit_rc, later;
} outside;

static void *outside_main(void *arg) {
  outside *o = arg;
  async_loop_call_later(async_loop_current(), 1.0, cancel_cb,
                        async_task_current(), NULL);
  async_timeout tmo;
  async_timeout_enter(&tmo, 5.0);
  o->body_rc = async_sleep(10.0);
  o->exit_rc = async_timeout_exit(&tmo, o->body_rc);
  o->later = async_sleep(10.0); /* the scope's deadline is gone with it */
  return NULL;
}

static void test_timeout_outside_cancel_is_not_converted(void **state) {
  (void)state;
  outside o = {0, 0, 0};
  double end;
  assert_int_equal(vrun(outside_main, &o, NULL, &end), 0);
  assert_int_equal(o.body_rc, -ECANCELED);
  assert_int_equal(o.exit_rc, -ECANCELED);
  assert_int_equal(o.later, 0);
  assert_true(end == 11.0);
}

/* Deadline and outside cancellation at once, before the task runs: the
 * scope does not claim the cancellation. */
static void *both_main(void *arg) {
  outside *o = arg;
  async_task *self = async_task_current();
  async_loop_call_later(async_loop_current(), 1.0, cancel_cb, self, NULL);
  async_timeout tmo;
  /* At 1 the scope's timer fires first (timers run before callbacks), then
   * the callback cancels the task again: merged with the scope's. */
  async_timeout_enter(&tmo, 1.0);
  o->body_rc = async_sleep(10.0);
  o->exit_rc = async_timeout_exit(&tmo, o->body_rc);
  o->later = async_sleep(1.0);
  return NULL;
}

static void test_timeout_merged_with_outside_cancel(void **state) {
  (void)state;
  outside o = {0, 0, 0};
  assert_int_equal(vrun(both_main, &o, NULL, NULL), 0);
  assert_int_equal(o.body_rc, -ECANCELED);
  assert_int_equal(o.exit_rc, -ECANCELED);
  assert_int_equal(o.later, 0);
}

/* The deadline passes while the body is ready after its sleep ended:
 * asyncio raises from that sleep, and so do we; the scope reports the
 * timeout. Arranged exactly: another task moves the scope's deadline to
 * the end of the body's sleep, so the sleep's timer (armed first) wakes
 * the body and the scope's timer then fires while the body is ready. */
typedef struct {
  async_timeout *tmo;
  int sleep_rc, expired, exit_rc, later;
} undelivered;

static void *move_deadline(void *arg) {
  undelivered *u = arg;
  async_timeout_reschedule(u->tmo, 1.0);
  return NULL;
}

static void *undelivered_main(void *arg) {
  undelivered *u = arg;
  async_timeout tmo;
  u->tmo = &tmo;
  async_timeout_enter(&tmo, ASYNC_NO_TIMEOUT);
  async_task *t = async_spawn(move_deadline, u);
  u->sleep_rc = async_sleep(1.0);
  u->expired = async_timeout_expired(&tmo);
  u->exit_rc = async_timeout_exit(&tmo, u->sleep_rc);
  u->later = async_sleep(1.0);
  async_task_release(t);
  return NULL;
}

static void
test_timeout_expiring_after_the_wake_reaches_that_sleep(void **state) {
  (void)state;
  undelivered u = {NULL, -1, 0, -1, -1};
  double end;
  assert_int_equal(vrun(undelivered_main, &u, NULL, &end), 0);
  assert_int_equal(u.sleep_rc, -ECANCELED);
  assert_int_equal(u.expired, 1);
  assert_int_equal(u.exit_rc, -ETIMEDOUT);
  assert_int_equal(u.later, 0);
  assert_true(end == 2.0);
}

/* The deadline passes after the body's last suspension returned success:
 * a generator's next that was handed its value keeps it (nothing is
 * lost), so the request is still pending at exit, which withdraws it, and
 * the task carries on uncancelled. (A queue get no longer serves here: a
 * getter cancelled after its wake-up returns -ECANCELED, issue 10 item
 * 7.) */
typedef struct {
  async_timeout *tmo;
  async_gen *g;
  void *item;
  int get_rc, expired, exit_rc, later;
} handed;

static void *hand_over(void *arg) {
  handed *h = arg;
  async_sleep(1.0);
  async_timeout_reschedule(h->tmo, 1.0); /* passes while the body is ready */
  async_gen_yield(IPTR(7));              /* straight to the waiting body */
  return NULL;
}

static void *handed_main(void *arg) {
  handed *h = arg;
  async_timeout tmo;
  h->tmo = &tmo;
  if (async_gen_new(&h->g, hand_over, h, NULL)) return async_fail(-ENOMEM);
  async_timeout_enter(&tmo, ASYNC_NO_TIMEOUT);
  h->get_rc = async_gen_next(h->g, &h->item);
  h->expired = async_timeout_expired(&tmo);
  h->exit_rc = async_timeout_exit(&tmo, h->get_rc);
  h->later = async_sleep(1.0);
  async_gen_close(h->g);
  async_gen_free(h->g);
  return NULL;
}

static void test_timeout_undelivered_request_is_withdrawn(void **state) {
  (void)state;
  handed h = {NULL, NULL, NULL, -1, 0, -1, -1};
  double end;
  assert_int_equal(vrun(handed_main, &h, NULL, &end), 0);
  assert_int_equal(h.get_rc, 0);
  assert_int_equal(PTRI(h.item), 7);
  assert_int_equal(h.expired, 1);
  assert_int_equal(h.exit_rc, 0);
  assert_int_equal(h.later, 0);
  assert_true(end == 2.0);
}

/* A deadline already past at entry fires at the next turn of the loop:
 * an exit before any suspension finds it unexpired. */
typedef struct {
  int expired, exit_rc, later;
} immediate;

static void *immediate_main(void *arg) {
  immediate *m = arg;
  async_timeout tmo;
  async_timeout_enter(&tmo, 0);
  m->expired = async_timeout_expired(&tmo);
  m->exit_rc = async_timeout_exit(&tmo, 0);
  m->later = async_sleep(1.0);
  async_timeout_enter(&tmo, 0);
  int rc = async_yield(); /* the deadline cancels this suspension */
  m->expired = m->expired * 10 + (rc == -ECANCELED);
  m->exit_rc = m->exit_rc * 100 + async_timeout_exit(&tmo, rc);
  return NULL;
}

static void test_timeout_zero_delay(void **state) {
  (void)state;
  immediate m = {-1, -1, -1};
  assert_int_equal(vrun(immediate_main, &m, NULL, NULL), 0);
  assert_int_equal(m.expired, 1);          /* 0, then cancelled */
  assert_int_equal(m.exit_rc, -ETIMEDOUT); /* 0 * 100 - ETIMEDOUT */
  assert_int_equal(m.later, 0);
}

/* The exit is given the body's outcome: a body that caught the deadline's
 * cancellation and succeeded, or failed otherwise, reports that, not
 * -ETIMEDOUT; expired stays readable after the exit (issue 10 item 5). */
typedef struct {
  int body, exit_ok, exit_err, exit_cancelled, expired[3], when_ok;
} outcome;

static void *outcome_main(void *arg) {
  outcome *o = arg;
  async_timeout tmo;
  async_timeout_enter(&tmo, 1.0);
  o->body = async_sleep(10.0); /* -ECANCELED: caught, carries on */
  int err = async_sleep(1.0);  /* 0: not cancelled again */
  o->exit_ok = async_timeout_exit(&tmo, err);
  o->expired[0] = async_timeout_expired(&tmo);
  o->when_ok = async_timeout_when(&tmo) == 1.0;
  async_timeout_enter(&tmo, 1.0);
  err = async_sleep(10.0);
  if (err == -ECANCELED) err = -EIO; /* its cleanup failed */
  o->exit_err = async_timeout_exit(&tmo, err);
  o->expired[1] = async_timeout_expired(&tmo);
  async_timeout_enter(&tmo, 1.0);
  o->exit_cancelled = async_timeout_exit(&tmo, async_sleep(10.0));
  o->expired[2] = async_timeout_expired(&tmo);
  return NULL;
}

static void test_timeout_exit_reports_the_bodys_outcome(void **state) {
  (void)state;
  outcome o;
  memset(&o, 0, sizeof o);
  double end;
  assert_int_equal(vrun(outcome_main, &o, NULL, &end), 0);
  assert_int_equal(o.body, -ECANCELED);
  assert_int_equal(o.exit_ok, 0);
  assert_int_equal(o.exit_err, -EIO);
  assert_int_equal(o.exit_cancelled, -ETIMEDOUT);
  for (int i = 0; i < 3; i++) assert_int_equal(o.expired[i], 1);
  assert_int_equal(o.when_ok, 1);
  assert_true(end == 4.0);
}

/* A scope cancels only the task that entered it. */
typedef struct {
  sleeper other;
  int body_rc, exit_rc;
} only;

static void *only_main(void *arg) {
  only *o = arg;
  async_task *t = async_spawn(sleeper_fn, &o->other);
  async_timeout tmo;
  async_timeout_enter(&tmo, 1.0);
  o->body_rc = async_sleep(5.0);
  o->exit_rc = async_timeout_exit(&tmo, o->body_rc);
  async_await(t, NULL);
  async_task_release(t);
  return NULL;
}

/* Zero or less is "expired already", never "no limit" (issue 10 item 4):
 * a negative delay, a past or negative absolute deadline, a reschedule
 * into the past, a negative wait_for timeout (a remaining time gone
 * negative). */
typedef struct {
  int body[4], exit[4];
  double at[4];
  int wf_rc, child_rc;
  double wf_at;
} negative;

static void *negative_main(void *arg) {
  negative *n = arg;
  async_sleep(10.0);
  async_timeout tmo;
  for (int i = 0; i < 4; i++) {
    if (i == 0) async_timeout_enter(&tmo, -1.0);
    if (i == 1) async_timeout_enter_at(&tmo, 5.0); /* before now (10) */
    if (i == 2) async_timeout_enter_at(&tmo, -1.0);
    if (i == 3) {
      async_timeout_enter(&tmo, 100.0);
      async_timeout_reschedule(&tmo, -0.5);
    }
    n->body[i] = async_sleep(3600.0);
    n->exit[i] = async_timeout_exit(&tmo, n->body[i]);
    n->at[i] = vnow();
  }
  sleeper s = {.delay = 1, .value = IPTR(1)};
  async_task *t = async_spawn(sleeper_fn, &s);
  double deadline = vnow() - 2.0; /* a deadline computed and passed */
  n->wf_rc = async_wait_for(t, deadline - vnow(), NULL);
  n->wf_at = vnow();
  n->child_rc = async_task_result(t, NULL);
  async_task_release(t);
  return NULL;
}

static void test_timeout_negative_means_expired(void **state) {
  (void)state;
  negative n;
  memset(&n, 0, sizeof n);
  assert_int_equal(vrun(negative_main, &n, NULL, NULL), 0);
  for (int i = 0; i < 4; i++) {
    assert_int_equal(n.body[i], -ECANCELED);
    assert_int_equal(n.exit[i], -ETIMEDOUT);
    assert_true(n.at[i] == 10.0);
  }
  assert_int_equal(n.wf_rc, -ETIMEDOUT);
  assert_true(n.wf_at == 10.0);
  assert_int_equal(n.child_rc, -ECANCELED);
}

static void test_timeout_cancels_only_its_task(void **state) {
  (void)state;
  only o = {.other = {.delay = 3}};
  double end;
  assert_int_equal(vrun(only_main, &o, NULL, &end), 0);
  assert_int_equal(o.body_rc, -ECANCELED);
  assert_int_equal(o.exit_rc, -ETIMEDOUT);
  assert_int_equal(o.other.slept, 0);
  assert_true(end == 3.0);
}

typedef struct {
  double when_rel, when_abs;
  int enter_at_rc, exit_rc, body_rc;
  double at;
} absolute;

static void *absolute_main(void *arg) {
  absolute *a = arg;
  async_sleep(10.0);
  async_timeout tmo;
  async_timeout_enter(&tmo, 2.5);
  a->when_rel = async_timeout_when(&tmo);
  async_timeout_exit(&tmo, 0);
  a->enter_at_rc = async_timeout_enter_at(&tmo, 15.0);
  a->when_abs = async_timeout_when(&tmo);
  a->body_rc = async_sleep(100.0);
  a->exit_rc = async_timeout_exit(&tmo, a->body_rc);
  a->at = vnow();
  return NULL;
}

static void test_timeout_absolute_deadline(void **state) {
  (void)state;
  absolute a;
  memset(&a, 0, sizeof a);
  assert_int_equal(vrun(absolute_main, &a, NULL, NULL), 0);
  assert_true(a.when_rel == 12.5);
  assert_int_equal(a.enter_at_rc, 0);
  assert_true(a.when_abs == 15.0);
  assert_int_equal(a.body_rc, -ECANCELED);
  assert_int_equal(a.exit_rc, -ETIMEDOUT);
  assert_true(a.at == 15.0);
}

/* async_timeout_when gives back the very double it was given (a round
 * trip through nanoseconds rounded pi/2 up to the next nanosecond). */
typedef struct {
  double at, rescheduled, rel, now;
} exact;

static void *exact_main(void *arg) {
  exact *e = arg;
  async_sleep(0.3);
  async_timeout tmo;
  async_timeout_enter_at(&tmo, 1.5707963267948966);
  e->at = async_timeout_when(&tmo);
  async_timeout_reschedule(&tmo, 3.14159265358979);
  e->rescheduled = async_timeout_when(&tmo);
  async_timeout_exit(&tmo, 0);
  e->now = vnow();
  async_timeout_enter(&tmo, 0.7);
  e->rel = async_timeout_when(&tmo);
  async_timeout_exit(&tmo, 0);
  return NULL;
}

static void test_timeout_when_is_exactly_the_deadline_given(void **state) {
  (void)state;
  exact e;
  memset(&e, 0, sizeof e);
  assert_int_equal(vrun(exact_main, &e, NULL, NULL), 0);
  assert_true(e.at == 1.5707963267948966);
  assert_true(e.rescheduled == 3.14159265358979);
  assert_true(e.rel == e.now + 0.7); /* asyncio: loop.time() + delay */
}

/* Misuse: another task's exit, a double exit, rescheduling after expiry. */
typedef struct {
  async_timeout *tmo;
  int rc;
} foreign;

static void *foreign_exit(void *arg) {
  foreign *f = arg;
  f->rc = async_timeout_exit(f->tmo, 0);
  return NULL;
}

typedef struct {
  int foreign_rc, second_exit, resched_after, nan, none_when, enter_nan;
  double when_none;
} scope_misuse;

static void *scope_misuse_main(void *arg) {
  scope_misuse *m = arg;
  async_timeout tmo;
  async_timeout_enter(&tmo, 1.0);
  foreign f = {&tmo, 0};
  async_task *t = async_spawn(foreign_exit, &f);
  async_await(t, NULL);
  async_task_release(t);
  m->foreign_rc = f.rc;
  m->nan = async_timeout_reschedule(&tmo, NAN);
  async_sleep(2.0); /* expires */
  m->resched_after = async_timeout_reschedule(&tmo, 100.0);
  async_timeout_exit(&tmo, 0);
  m->second_exit = async_timeout_exit(&tmo, 0);
  m->enter_nan = async_timeout_enter(&tmo, NAN);
  async_timeout_enter(&tmo, ASYNC_NO_TIMEOUT);
  m->when_none = async_timeout_when(&tmo);
  async_timeout_exit(&tmo, 0);
  return NULL;
}

static void test_timeout_misuse(void **state) {
  (void)state;
  async_timeout tmo;
  assert_int_equal(async_timeout_enter(&tmo, 1.0), -EPERM);
  assert_int_equal(async_timeout_exit(NULL, 0), -EINVAL);
  assert_true(isnan(async_timeout_when(NULL)));
  scope_misuse m;
  memset(&m, 0, sizeof m);
  assert_int_equal(vrun(scope_misuse_main, &m, NULL, NULL), 0);
  assert_int_equal(m.foreign_rc, -EPERM);
  assert_int_equal(m.nan, -EINVAL);
  assert_int_equal(m.resched_after, -EALREADY);
  assert_int_equal(m.second_exit, -EINVAL);
  assert_int_equal(m.enter_nan, -EINVAL);
  assert_true(m.when_none == ASYNC_NO_TIMEOUT);
}

/* Scopes left behind: a task killed at loop close inside a scope (it
 * ignored every cancellation) has the scope's timer disarmed before its
 * stack goes; a task returning inside one is a fatal programming error. */
static void *stubborn_in_scope(void *arg) {
  int *rounds = arg;
  async_timeout outer, inner;
  async_timeout_enter(&outer, 1e9); /* years: never reached here */
  async_timeout_enter(&inner, 1e8);
  for (;;)
    if (async_sleep(1.0) == -ECANCELED) (*rounds)++;
  async_timeout_exit(&inner, 0); /* never reached */
  async_timeout_exit(&outer, 0);
  return NULL;
}

/* White box: when the killed task ends, no timer of its is left in the
 * loop's heap (the scopes' timers lived on its stack). */
typedef struct {
  async__fwaiter w;
  async_loop *loop;
  size_t timers_at_end;
} end_probe;

static void end_notify(async__fwaiter *w, async_future *f) {
  (void)f;
  end_probe *p = (end_probe *)w;
  p->timers_at_end = p->loop->timers.n;
}

static void test_timeout_task_killed_inside_scopes(void **state) {
  (void)state;
  async_loop *loop = new_vloop();
  int rounds = 0;
  async_task *t;
  async_task_spawn(loop, &t, stubborn_in_scope, &rounds, NULL);
  end_probe p = {.w.notify = end_notify, .loop = loop, .timers_at_end = 99};
  async__future_add_waiter(t, &p.w);
  async_loop_call_later(loop, 5.0, stop_cb, loop, NULL);
  assert_int_equal(async_loop_run_forever(loop), 0);
  assert_int_equal(loop->timers.n, 3); /* its sleep and its two scopes */
  assert_int_equal(async_loop_close(loop), 0); /* gives up on it, cleanly */
  assert_true(rounds >= 2);
  assert_int_equal(p.timers_at_end, 0);
  assert_int_equal(async_task_cancelled(t), 1);
  async_task_release(t);
  free_loop(loop);
}

static void *returns_inside(void *arg) {
  (void)arg;
  async_timeout tmo;
  async_timeout_enter(&tmo, 10.0);
  return NULL;
}

static void test_timeout_returning_inside_a_scope_aborts(void **state) {
  (void)state;
  fflush(NULL);
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    int null = open("/dev/null", O_WRONLY);
    if (null >= 0) dup2(null, 2); /* the report is expected */
    async_loop *loop = NULL;
    async_loop_options o;
    async_loop_options_init(&o);
    o.virtual_clock = 1;
    async_loop_new(&loop, &o);
    async_task *t;
    async_task_spawn(loop, &t, returns_inside, NULL, NULL);
    async_loop_run_until_complete(loop, t, NULL);
    _exit(0); /* not reached */
  }
  int status = 0;
  assert_int_equal(waitpid(pid, &status, 0), pid);
  assert_true(WIFSIGNALED(status));
  assert_int_equal(WTERMSIG(status), SIGABRT);
}

typedef struct {
  int twice, exit_outer_first, exit_inner, body;
} order;

static void *out_of_order(void *arg) {
  order *o = arg;
  async_timeout a, b;
  async_timeout_enter(&a, 5.0);
  o->twice = async_timeout_enter(&a, 1.0); /* still entered */
  async_timeout_enter(&b, 1.0);
  o->exit_outer_first = async_timeout_exit(&a, 0); /* out of order: allowed */
  o->body = async_sleep(10.0);                     /* b still cuts it short */
  o->exit_inner = async_timeout_exit(&b, o->body);
  return NULL;
}

static void test_timeout_enter_twice_and_exit_out_of_order(void **state) {
  (void)state;
  order o = {0, -1, 0, 0};
  double end;
  assert_int_equal(vrun(out_of_order, &o, NULL, &end), 0);
  assert_int_equal(o.twice, -EBUSY);
  assert_int_equal(o.exit_outer_first, 0);
  assert_int_equal(o.body, -ECANCELED);
  assert_int_equal(o.exit_inner, -ETIMEDOUT);
  assert_true(end == 1.0);
}

/* One struct entered by a second task while the first is inside it: the
 * second enter must be refused, and the first scope's timer, still in the
 * heap, must keep working. */
typedef struct {
  async_timeout tmo;
  int first_enter, second_enter, second_exit, body, first_exit;
  double first_at;
} shared;

static void *shared_second(void *arg) {
  shared *sh = arg;
  sh->second_enter = async_timeout_enter(&sh->tmo, 5);
  sh->second_exit = async_timeout_exit(&sh->tmo, 0);
  return NULL;
}

static void *shared_first(void *arg) {
  shared *sh = arg;
  sh->first_enter = async_timeout_enter(&sh->tmo, 1);
  async_task *t = async_spawn(shared_second, sh);
  sh->body = async_sleep(10);
  sh->first_at = vnow();
  sh->first_exit = async_timeout_exit(&sh->tmo, sh->body);
  async_await(t, NULL);
  async_task_release(t);
  return NULL;
}

static void test_timeout_struct_shared_by_two_tasks(void **state) {
  (void)state;
  shared sh;
  memset(&sh, 0, sizeof sh);
  assert_int_equal(vrun(shared_first, &sh, NULL, NULL), 0);
  assert_int_equal(sh.first_enter, 0);
  assert_int_equal(sh.second_enter, -EBUSY);
  assert_int_equal(sh.second_exit, -EPERM); /* still the first's */
  assert_int_equal(sh.body, -ECANCELED);
  assert_true(sh.first_at == 1.0);
  assert_int_equal(sh.first_exit, -ETIMEDOUT);
}

/* }==== */

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_wait_for_in_time),
      cmocka_unit_test(test_wait_for_timeout_cancels_and_waits),
      cmocka_unit_test(test_wait_for_zero_timeout),
      cmocka_unit_test(test_wait_for_child_ignoring_the_cancel),
      cmocka_unit_test(test_wait_for_child_failing_in_its_cleanup),
      cmocka_unit_test(test_wait_for_outside_cancel_is_not_a_timeout),
      cmocka_unit_test(test_wait_for_no_limit),
      cmocka_unit_test(test_wait_for_bare_future),
      cmocka_unit_test(test_timeout_scope_expires),
      cmocka_unit_test(test_timeout_scope_in_time),
      cmocka_unit_test(test_timeout_inner_expires_first),
      cmocka_unit_test(test_timeout_outer_expires_inside_inner),
      cmocka_unit_test(test_timeout_both_expire_together),
      cmocka_unit_test(test_timeout_reschedule_later),
      cmocka_unit_test(test_timeout_reschedule_earlier_and_to_none),
      cmocka_unit_test(test_timeout_outside_cancel_is_not_converted),
      cmocka_unit_test(test_timeout_merged_with_outside_cancel),
      cmocka_unit_test(test_timeout_expiring_after_the_wake_reaches_that_sleep),
      cmocka_unit_test(test_timeout_undelivered_request_is_withdrawn),
      cmocka_unit_test(test_timeout_zero_delay),
      cmocka_unit_test(test_timeout_negative_means_expired),
      cmocka_unit_test(test_timeout_exit_reports_the_bodys_outcome),
      cmocka_unit_test(test_timeout_cancels_only_its_task),
      cmocka_unit_test(test_timeout_absolute_deadline),
      cmocka_unit_test(test_timeout_when_is_exactly_the_deadline_given),
      cmocka_unit_test(test_timeout_misuse),
      cmocka_unit_test(test_timeout_task_killed_inside_scopes),
      cmocka_unit_test(test_timeout_returning_inside_a_scope_aborts),
      cmocka_unit_test(test_timeout_enter_twice_and_exit_out_of_order),
      cmocka_unit_test(test_timeout_struct_shared_by_two_tasks),
  };
  return cmocka_run_group_tests_name("timeout", tests, NULL, NULL);
}
