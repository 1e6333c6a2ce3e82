/* SPDX-License-Identifier: MIT */
/* shield: the outer wait can be cancelled while the inner task carries on.
 * In the spirit of CPython's test_asyncio/test_tasks.py shield tests. */
#include "vclock_helpers.h"

static void cancel_cb(void *f) { async_future_cancel(f); }

typedef struct {
  sleeper s;
  double cancel_at; /* > 0: cancel the shielding task then */
  int pending;      /* cancel the shielding task before it shields */
  int rc, again;
  void *res, *res_again;
  double at, end;
  int inner_done_at_return;
} sh;

static void *shield_main(void *arg) {
  sh *x = arg;
  async_task *t = async_spawn(sleeper_fn, &x->s);
  if (x->cancel_at > 0)
    async_loop_call_later(async_loop_current(), x->cancel_at, cancel_cb,
                          async_task_current(), NULL);
  if (x->pending) async_task_cancel(async_task_current());
  x->rc = async_shield(t, &x->res);
  x->at = vnow();
  x->inner_done_at_return = async_task_done(t);
  x->again = async_await(t, &x->res_again); /* wait for it for real */
  x->end = vnow();
  async_task_release(t);
  return NULL;
}

static void test_shield_passes_the_result(void **state) {
  (void)state;
  sh x = {.s = {.delay = 2, .value = IPTR(3)}};
  assert_int_equal(vrun(shield_main, &x, NULL, NULL), 0);
  assert_int_equal(x.rc, 0);
  assert_int_equal(PTRI(x.res), 3);
  assert_true(x.at == 2.0);
}

static void test_shield_outer_cancel_leaves_inner_running(void **state) {
  (void)state;
  sh x = {.s = {.delay = 5, .value = IPTR(9)}, .cancel_at = 1};
  assert_int_equal(vrun(shield_main, &x, NULL, NULL), 0);
  assert_int_equal(x.rc, -ECANCELED);
  assert_null(x.res);
  assert_true(x.at == 1.0); /* returned at once */
  assert_int_equal(x.inner_done_at_return, 0);
  assert_int_equal(x.s.slept, 0); /* never cancelled */
  assert_int_equal(x.again, 0);
  assert_int_equal(PTRI(x.res_again), 9);
  assert_true(x.end == 5.0);
}

static void test_shield_pending_cancel(void **state) {
  (void)state;
  sh x = {.s = {.delay = 1, .value = IPTR(4)}, .pending = 1};
  assert_int_equal(vrun(shield_main, &x, NULL, NULL), 0);
  assert_int_equal(x.rc, -ECANCELED);
  assert_true(x.at == 0.0);
  assert_int_equal(x.s.ran, 1); /* it started anyway, untouched */
  assert_int_equal(x.again, 0);
  assert_int_equal(PTRI(x.res_again), 4);
}

/* A deadline on the wait that leaves the inner task running: a shield in
 * a scope (where wait_for would cancel it). */
typedef struct {
  sleeper s;
  int rc, exit_rc;
  double at;
  int inner_rc;
} scoped;

static void *scoped_main(void *arg) {
  scoped *x = arg;
  async_task *t = async_spawn(sleeper_fn, &x->s);
  async_timeout tmo;
  async_timeout_enter(&tmo, 1.0);
  x->rc = async_shield(t, NULL);
  x->exit_rc = async_timeout_exit(&tmo, x->rc);
  x->at = vnow();
  x->inner_rc = async_await(t, NULL);
  async_task_release(t);
  return NULL;
}

static void test_shield_inside_a_timeout(void **state) {
  (void)state;
  scoped x = {.s = {.delay = 3, .value = IPTR(1)}};
  double end;
  assert_int_equal(vrun(scoped_main, &x, NULL, &end), 0);
  assert_int_equal(x.rc, -ECANCELED);
  assert_int_equal(x.exit_rc, -ETIMEDOUT);
  assert_true(x.at == 1.0);
  assert_int_equal(x.s.slept, 0);
  assert_int_equal(x.inner_rc, 0);
  assert_true(end == 3.0);
}

typedef struct {
  int done_rc, err_rc, self_rc, bare_rc;
  void *res;
} shmisc;

static void *shield_misc(void *arg) {
  shmisc *m = arg;
  async_future *f, *g;
  async_future_new(async_loop_current(), &f);
  async_future_new(async_loop_current(), &g);
  async_future_set_result(f, IPTR(6));
  async_future_set_error(g, -EIO);
  m->done_rc = async_shield(f, &m->res);
  m->err_rc = async_shield(g, NULL);
  m->self_rc = async_shield(async_task_current(), NULL);
  async_future_release(f);
  async_future_release(g);
  /* A bare future cancelled by someone else while shielded. */
  async_future_new(async_loop_current(), &f);
  async_loop_call_later(async_loop_current(), 1.0, cancel_cb, f, NULL);
  m->bare_rc = async_shield(f, NULL);
  async_future_release(f);
  return NULL;
}

static void test_shield_done_failed_self_and_bare(void **state) {
  (void)state;
  shmisc m = {0, 0, 0, 0, NULL};
  assert_int_equal(vrun(shield_misc, &m, NULL, NULL), 0);
  assert_int_equal(m.done_rc, 0);
  assert_int_equal(PTRI(m.res), 6);
  assert_int_equal(m.err_rc, -EIO);
  assert_int_equal(m.self_rc, -EDEADLK);
  assert_int_equal(m.bare_rc, -ECANCELED);
  assert_int_equal(async_shield(NULL, NULL), -EPERM);
}

/* {==== shield as a future (issue 10 item 9) ============================ */

typedef struct {
  sleeper s;
  double cancel_at; /* > 0: cancel the awaiting task then */
  double timeout;   /* > 0: await through wait_for */
  int rc, inner_rc, outer_cancelled;
  void *res, *inner_res;
  double at, end;
} shf;

static void *shield_future_main(void *arg) {
  shf *x = arg;
  async_task *t = async_spawn(sleeper_fn, &x->s);
  async_future *outer;
  if (async_shield_future(&outer, t)) return async_fail(-EPROTO);
  if (x->cancel_at > 0)
    async_loop_call_later(async_loop_current(), x->cancel_at, cancel_cb,
                          async_task_current(), NULL);
  x->rc = x->timeout > 0 ? async_wait_for(outer, x->timeout, &x->res)
                         : async_await(outer, &x->res);
  x->at = vnow();
  x->outer_cancelled = async_future_cancelled(outer);
  x->inner_rc = async_await(t, &x->inner_res);
  x->end = vnow();
  async_future_release(outer);
  async_task_release(t);
  return NULL;
}

static void test_shield_future_passes_the_outcome(void **state) {
  (void)state;
  shf x = {.s = {.delay = 2, .value = IPTR(3)}};
  assert_int_equal(vrun(shield_future_main, &x, NULL, NULL), 0);
  assert_int_equal(x.rc, 0);
  assert_int_equal(PTRI(x.res), 3);
  assert_true(x.at == 2.0);
  shf y = {.s = {.delay = 2, .fail = -EIO}};
  assert_int_equal(vrun(shield_future_main, &y, NULL, NULL), 0);
  assert_int_equal(y.rc, -EIO);
  assert_int_equal(y.inner_rc, -EIO);
}

/* Cancelling the task that awaits it cancels the shield future only. */
static void test_shield_future_cancel_does_not_reach_the_inner(void **state) {
  (void)state;
  shf x = {.s = {.delay = 5, .value = IPTR(4)}, .cancel_at = 1};
  assert_int_equal(vrun(shield_future_main, &x, NULL, NULL), 0);
  assert_int_equal(x.rc, -ECANCELED);
  assert_true(x.at == 1.0);
  assert_int_equal(x.outer_cancelled, 1);
  assert_int_equal(x.s.slept, 0);
  assert_int_equal(x.inner_rc, 0);
  assert_int_equal(PTRI(x.inner_res), 4);
  assert_true(x.end == 5.0);
  shf y = {.s = {.delay = 5, .value = IPTR(4)}, .timeout = 2};
  assert_int_equal(vrun(shield_future_main, &y, NULL, NULL), 0);
  assert_int_equal(y.rc, -ETIMEDOUT);
  assert_true(y.at == 2.0);
  assert_int_equal(y.s.slept, 0);
  assert_int_equal(y.inner_rc, 0);
}

/* A gather future of shield futures, cancelled: the shields end at once,
 * the inner ones carry on; an inner cancelled cancels its shield; a done
 * inner gives a done shield. */
typedef struct {
  int gather_rc, cancel_rc, inner_slept[2], inner_cancelled_rc;
  int done_rc, done_done, bad[2];
  void *done_res;
  double at;
} shmix;

static void *shield_mix(void *arg) {
  shmix *m = arg;
  async_loop *loop = async_loop_current();
  sleeper s[2] = {{.delay = 3}, {.delay = 3}};
  async_task *t[2];
  async_future *outer[2], *g;
  for (int i = 0; i < 2; i++) {
    t[i] = async_spawn(sleeper_fn, &s[i]);
    async_shield_future(&outer[i], t[i]);
  }
  async_gather_future(&g, outer, 2, 0);
  async_sleep(1.0);
  m->cancel_rc = async_future_cancel(g);
  m->gather_rc = async_await(g, NULL);
  m->at = vnow();
  for (int i = 0; i < 2; i++) {
    async_await(t[i], NULL);
    m->inner_slept[i] = s[i].slept;
    async_future_release(outer[i]);
    async_task_release(t[i]);
  }
  async_future_release(g);
  async_future *f, *o;
  async_future_new(loop, &f);
  async_shield_future(&o, f);
  async_future_cancel(f);
  m->inner_cancelled_rc = async_future_result(o, NULL);
  async_future_release(o);
  async_future_release(f);
  async_future_new(loop, &f);
  async_future_set_result(f, IPTR(9));
  async_shield_future(&o, f);
  m->done_done = async_future_done(o);
  m->done_rc = async_future_result(o, &m->done_res);
  async_future_release(o);
  m->bad[0] = async_shield_future(NULL, f);
  m->bad[1] = async_shield_future(&o, NULL);
  async_future_release(f);
  return NULL;
}

static void test_shield_future_in_a_gather_and_misc(void **state) {
  (void)state;
  shmix m;
  memset(&m, 0, sizeof m);
  double end;
  assert_int_equal(vrun(shield_mix, &m, NULL, &end), 0);
  assert_int_equal(m.cancel_rc, 1);
  assert_int_equal(m.gather_rc, -ECANCELED);
  assert_true(m.at == 1.0);
  assert_int_equal(m.inner_slept[0], 0);
  assert_int_equal(m.inner_slept[1], 0);
  assert_true(end == 3.0);
  assert_int_equal(m.inner_cancelled_rc, -ECANCELED);
  assert_int_equal(m.done_done, 1);
  assert_int_equal(m.done_rc, 0);
  assert_int_equal(PTRI(m.done_res), 9);
  assert_int_equal(m.bad[0], -EINVAL);
  assert_int_equal(m.bad[1], -EINVAL);
}

/* }==== */

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_shield_passes_the_result),
      cmocka_unit_test(test_shield_outer_cancel_leaves_inner_running),
      cmocka_unit_test(test_shield_pending_cancel),
      cmocka_unit_test(test_shield_inside_a_timeout),
      cmocka_unit_test(test_shield_done_failed_self_and_bare),
      cmocka_unit_test(test_shield_future_passes_the_outcome),
      cmocka_unit_test(test_shield_future_cancel_does_not_reach_the_inner),
      cmocka_unit_test(test_shield_future_in_a_gather_and_misc),
  };
  return cmocka_run_group_tests_name("shield", tests, NULL, NULL);
}
