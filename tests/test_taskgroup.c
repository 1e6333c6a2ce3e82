/* SPDX-License-Identifier: MIT */
/* Task groups (asyncio.TaskGroup): wait for all, the first failure cancels
 * the siblings and the parent's body, every error is reported, and
 * cancellation works in both directions. In the spirit of CPython's
 * test_asyncio/test_taskgroups.py. */
#include "vclock_helpers.h"

static void cancel_cb(void *f) { async_future_cancel(f); }

#define N 4

typedef struct {
  sleeper s[N];
  int n;
  double body_sleep;     /* the parent's body sleeps this long before waiting */
  double cancel_at;      /* > 0: cancel the parent then */
  double cancel_task_at; /* > 0: a task armed after the children cancels
                            the parent then */
  int body_rc, wait_rc, after_rc, spawn_after_abort, spawn_after_wait;
  double at;
  long nerr;
  int errs[N];
  int failed_index[N];
} grp;

static void *noop(void *arg) { return arg; }

typedef struct {
  double at;
  async_task *parent;
} canceller;

/* Spawned after the children, its sleep's timer fires after theirs at an
 * equal time: the parent is cancelled just after a child failed. */
static void *cancel_later(void *arg) {
  canceller *c = arg;
  async_sleep(c->at);
  async_task_cancel(c->parent);
  return NULL;
}

static void *group_main(void *arg) {
  grp *x = arg;
  async_task_group *g;
  if (async_task_group_new(&g)) return async_fail(-EPROTO);
  async_task *t[N];
  for (int i = 0; i < x->n; i++)
    async_task_group_spawn(g, &t[i], sleeper_fn, &x->s[i], NULL);
  if (x->cancel_at > 0)
    async_loop_call_later(async_loop_current(), x->cancel_at, cancel_cb,
                          async_task_current(), NULL);
  async_task *ct = NULL;
  canceller c = {x->cancel_task_at, async_task_current()};
  if (x->cancel_task_at > 0) ct = async_spawn(cancel_later, &c);
  if (x->body_sleep > 0) x->body_rc = async_sleep(x->body_sleep);
  x->spawn_after_abort = async_task_group_spawn(g, NULL, noop, NULL, NULL);
  x->wait_rc = async_task_group_wait(g);
  x->at = vnow();
  x->spawn_after_wait = async_task_group_spawn(g, NULL, noop, NULL, NULL);
  async_task *failed[N];
  x->nerr = async_task_group_errors(g, x->errs, failed, N);
  for (long k = 0; k < x->nerr && k < N; k++) {
    x->failed_index[k] = -1;
    for (int i = 0; i < x->n; i++)
      if (failed[k] == t[i]) x->failed_index[k] = i;
  }
  for (int i = 0; i < x->n; i++) async_task_release(t[i]);
  async_task_group_free(g);
  x->after_rc = async_sleep(1.0); /* not cancelled any more */
  if (ct) {
    async_await(ct, NULL);
    async_task_release(ct);
  }
  return NULL;
}

static void run_group(grp *x, double *end) {
  assert_int_equal(vrun(group_main, x, NULL, end), 0);
}

static void test_taskgroup_waits_for_all(void **state) {
  (void)state;
  grp x = {.n = 3, .s = {{.delay = 2}, {.delay = 5}, {.delay = 1}}};
  run_group(&x, NULL);
  assert_int_equal(x.wait_rc, 0);
  assert_true(x.at == 5.0);
  for (int i = 0; i < 3; i++) assert_int_equal(x.s[i].slept, 0);
  assert_int_equal(x.nerr, 0);
  assert_int_equal(x.spawn_after_wait, -EINVAL);
  assert_int_equal(x.after_rc, 0);
}

static void test_taskgroup_failure_cancels_siblings(void **state) {
  (void)state;
  grp x = {.n = 3,
           .s = {{.delay = 10, .cleanup = 1},
                 {.delay = 2, .fail = -EIO},
                 {.delay = 20}}};
  double end;
  run_group(&x, &end);
  assert_int_equal(x.wait_rc, -EIO);
  assert_int_equal(x.s[0].slept, -ECANCELED);
  assert_int_equal(x.s[2].slept, -ECANCELED);
  assert_true(x.at == 3.0); /* after the siblings' cleanup */
  assert_int_equal(x.nerr, 1);
  assert_int_equal(x.errs[0], -EIO);
  assert_int_equal(x.failed_index[0], 1);
  assert_int_equal(x.after_rc, 0);
  assert_true(end == 4.0);
}

static void test_taskgroup_reports_every_error(void **state) {
  (void)state;
  /* One fails; one woken at the same instant is cancelled before it runs
   * and gets the cancellation from that sleep (asyncio's behaviour too), so
   * its own failure never happens; one fails in its cleanup after the group
   * cancelled it; the ones cancelled quietly are not errors. */
  grp x = {.n = 4,
           .s = {{.delay = 3, .fail = -EPIPE},
                 {.delay = 3, .fail = -ENOENT},
                 {.delay = 10, .cleanup = 1, .ignore = 1, .fail = -EBADMSG},
                 {.delay = 10}}};
  run_group(&x, NULL);
  assert_int_equal(x.wait_rc, -EPIPE); /* the first */
  assert_int_equal(x.nerr, 2);
  assert_int_equal(x.errs[0], -EPIPE);
  assert_int_equal(x.errs[1], -EBADMSG);
  assert_int_equal(x.failed_index[0], 0);
  assert_int_equal(x.failed_index[1], 2);
  assert_int_equal(x.s[1].slept, -ECANCELED);
  assert_int_equal(x.s[3].slept, -ECANCELED);
  assert_true(x.at == 4.0);
}

static void test_taskgroup_failure_interrupts_the_parents_body(void **state) {
  (void)state;
  grp x = {.n = 2,
           .body_sleep = 100,
           .s = {{.delay = 1, .fail = -EIO}, {.delay = 50}}};
  run_group(&x, NULL);
  assert_int_equal(x.body_rc, -ECANCELED); /* cut short at 1 */
  assert_int_equal(x.spawn_after_abort, -ECANCELED);
  assert_int_equal(x.wait_rc, -EIO);
  assert_true(x.at == 1.0);
  assert_int_equal(x.s[1].slept, -ECANCELED);
  assert_int_equal(x.after_rc, 0); /* the group took its request back */
}

static void test_taskgroup_outside_cancel_while_waiting(void **state) {
  (void)state;
  grp x = {.n = 2,
           .cancel_at = 2,
           .s = {{.delay = 10, .cleanup = 1}, {.delay = 10}}};
  run_group(&x, NULL);
  assert_int_equal(x.wait_rc, -ECANCELED);
  assert_true(x.at == 3.0);
  assert_int_equal(x.s[0].slept, -ECANCELED);
  assert_int_equal(x.s[1].slept, -ECANCELED);
  assert_int_equal(x.nerr, 0);
  assert_int_equal(x.after_rc, 0);
}

static void test_taskgroup_outside_cancel_in_the_body(void **state) {
  (void)state;
  /* The body's sleep gets the cancellation; the body goes on to the wait,
   * which waits normally (the code did not abort the group). */
  grp x = {.n = 1,
           .body_sleep = 5,
           .cancel_at = 1,
           .s = {{.delay = 3, .value = IPTR(1)}}};
  run_group(&x, NULL);
  assert_int_equal(x.body_rc, -ECANCELED);
  assert_int_equal(x.wait_rc, 0);
  assert_true(x.at == 3.0);
  assert_int_equal(x.s[0].slept, 0);
}

/* The parent cancelled from outside at the time a child fails: the two
 * requests merge into one delivery, and the outside one survives the
 * wait, whichever came first (issue 10 item 3, asyncio's TaskGroup
 * __aexit__ re-cancelling a parent whose cancelling() is non-zero). */
static void test_taskgroup_outside_cancel_merged_with_a_failure(void **state) {
  (void)state;
  for (int first_outside = 0; first_outside < 2; first_outside++) {
    grp x = {.n = 2,
             .body_sleep = 100,
             .s = {{.delay = 1, .fail = -EIO}, {.delay = 50}}};
    if (first_outside)
      x.cancel_at = 1; /* armed before the children's timers */
    else
      x.cancel_task_at = 1;
    run_group(&x, NULL);
    assert_int_equal(x.body_rc, -ECANCELED); /* one delivery for both */
    assert_int_equal(x.wait_rc, -EIO);
    assert_true(x.at == 1.0);
    assert_int_equal(x.after_rc, -ECANCELED); /* the outside request */
  }
}

/* The same while the parent already waits in the group: the group does
 * not cancel it, the outside request stays pending through the wait. */
static void
test_taskgroup_outside_cancel_and_a_failure_while_waiting(void **state) {
  (void)state;
  grp x = {.n = 2,
           .cancel_task_at = 1,
           .s = {{.delay = 1, .fail = -EIO}, {.delay = 50, .cleanup = 1}}};
  run_group(&x, NULL);
  assert_int_equal(x.wait_rc, -EIO);
  assert_true(x.at == 2.0); /* the sibling's cleanup */
  assert_int_equal(x.s[1].slept, -ECANCELED);
  assert_int_equal(x.after_rc, -ECANCELED);
}

/* The body took an outside cancellation, went on to the wait, and a child
 * then failed: the error is reported and the cancellation is not lost. */
static void test_taskgroup_outside_cancel_then_a_failure(void **state) {
  (void)state;
  grp x = {.n = 1,
           .body_sleep = 5,
           .cancel_at = 1,
           .s = {{.delay = 3, .fail = -EIO}}};
  run_group(&x, NULL);
  assert_int_equal(x.body_rc, -ECANCELED);
  assert_int_equal(x.wait_rc, -EIO);
  assert_true(x.at == 3.0);
  assert_int_equal(x.after_rc, -ECANCELED);
}

static void test_taskgroup_empty(void **state) {
  (void)state;
  grp x = {.n = 0};
  run_group(&x, NULL);
  assert_int_equal(x.spawn_after_abort, 0); /* not aborted: accepted */
  assert_int_equal(x.wait_rc, 0);
  assert_true(x.at == 0.0);
  assert_int_equal(x.spawn_after_wait, -EINVAL);
}

/* A pending outside cancellation when the parent calls the wait aborts the
 * group; a child cancelled by someone else is not an error; children may
 * spawn siblings while the parent waits. */
typedef struct {
  async_task_group *g;
  sleeper s[3];
  int rc, rc2, cancelled_rc, nested_spawn;
  long nerr;
  double at;
} misc;

static void *spawner(void *arg) {
  misc *m = arg;
  async_sleep(1.0);
  m->nested_spawn =
      async_task_group_spawn(m->g, NULL, sleeper_fn, &m->s[2], NULL);
  return NULL;
}

static void *misc_main(void *arg) {
  misc *m = arg;
  /* 1: a child cancelled from elsewhere, a child spawning a sibling. */
  async_task_group_new(&m->g);
  async_task *t;
  async_task_group_spawn(m->g, &t, sleeper_fn, &m->s[0], NULL);
  async_task_group_spawn(m->g, NULL, spawner, m, NULL);
  async_loop_call_later(async_loop_current(), 0.5, cancel_cb, t, NULL);
  m->rc = async_task_group_wait(m->g);
  m->at = vnow();
  m->nerr = async_task_group_errors(m->g, NULL, NULL, 0);
  m->rc2 = async_task_group_wait(m->g); /* again: same outcome */
  async_task_release(t);
  async_task_group_free(m->g);
  /* 2: a pending cancellation at the wait. */
  async_task_group_new(&m->g);
  sleeper s = {.delay = 10};
  async_task_group_spawn(m->g, NULL, sleeper_fn, &s, NULL);
  async_task_cancel(async_task_current());
  m->cancelled_rc = async_task_group_wait(m->g);
  m->cancelled_rc = m->cancelled_rc * 100 - s.slept * (s.ran ? 1 : 0);
  async_task_group_free(m->g);
  return NULL;
}

static void test_taskgroup_misc(void **state) {
  (void)state;
  misc m;
  memset(&m, 0, sizeof m);
  m.s[0].delay = 5;
  m.s[2].delay = 3;
  assert_int_equal(vrun(misc_main, &m, NULL, NULL), 0);
  assert_int_equal(m.rc, 0);
  assert_int_equal(m.rc2, 0);
  assert_int_equal(m.nerr, 0);
  assert_int_equal(m.s[0].slept, -ECANCELED);
  assert_int_equal(m.nested_spawn, 0);
  assert_true(m.at == 4.0); /* the sibling spawned at 1 was waited for */
  /* -ECANCELED from the wait; the child never started (cancelled first) */
  assert_int_equal(m.cancelled_rc, -ECANCELED * 100);
}

/* Explicit abort from the body, free without wait, misuse. */
typedef struct {
  async_task_group *g;
  sleeper s[2];
  int cancelled, wait_rc, not_parent;
  int freed_child_slept;
} ctl;

static void *other_waits(void *arg) {
  ctl *c = arg;
  c->not_parent = async_task_group_wait(c->g);
  return NULL;
}

static void *ctl_main(void *arg) {
  ctl *c = arg;
  async_task_group *g;
  async_task_group_new(&g);
  c->g = g;
  async_task_group_spawn(g, NULL, sleeper_fn, &c->s[0], NULL);
  async_task_group_spawn(g, NULL, other_waits, c, NULL);
  async_sleep(1.0);
  c->cancelled = async_task_group_cancel(g);
  c->wait_rc = async_task_group_wait(g);
  async_task_group_free(g);
  /* Freed without a wait: its task is cancelled. */
  async_task_group_new(&g);
  async_task_group_spawn(g, NULL, sleeper_fn, &c->s[1], NULL);
  async_yield(); /* it starts */
  async_task_group_free(g);
  async_sleep(1.0);
  c->freed_child_slept = c->s[1].slept;
  return NULL;
}

static void test_taskgroup_cancel_free_and_misuse(void **state) {
  (void)state;
  ctl c;
  memset(&c, 0, sizeof c);
  c.s[0].delay = 10;
  c.s[1].delay = 10;
  assert_int_equal(vrun(ctl_main, &c, NULL, NULL), 0);
  assert_int_equal(c.not_parent, -EPERM); /* only the parent waits */
  assert_int_equal(c.cancelled, 1);
  assert_int_equal(c.wait_rc, 0); /* cancelled tasks are not errors */
  assert_int_equal(c.s[0].slept, -ECANCELED);
  assert_int_equal(c.freed_child_slept, -ECANCELED);
  async_task_group *g = (async_task_group *)1;
  assert_int_equal(async_task_group_new(&g), -EPERM);
  assert_null(g);
  assert_int_equal(async_task_group_free(NULL), 0);
  assert_int_equal(async_task_group_wait(NULL), -EPERM);
  assert_int_equal(async_task_group_errors(NULL, NULL, NULL, 0), -EINVAL);
}

/* A child spawned (by a task outside the group) after the last child woke
 * the parent, but before the parent ran again, is still waited for: the
 * wait must not return with a child of the group running, whose failure
 * would then cancel the parent after the group is over. */
typedef struct {
  async_task_group *g;
  sleeper late;
  int spawn_rc, wait_rc, late_done_at_return, after_rc;
} latecomer;

static void *one_yield(void *arg) {
  async_yield();
  return arg;
}

static void *late_spawner(void *arg) {
  latecomer *l = arg;
  async_yield(); /* the group's only child has just ended, before us */
  l->spawn_rc = async_task_group_spawn(l->g, NULL, sleeper_fn, &l->late, NULL);
  return NULL;
}

static void *latecomer_main(void *arg) {
  latecomer *l = arg;
  async_task_group_new(&l->g);
  async_task_group_spawn(l->g, NULL, one_yield, NULL, NULL);
  async_task_release(async_spawn(late_spawner, l));
  l->wait_rc = async_task_group_wait(l->g);
  l->late_done_at_return = l->late.ended;
  async_task_group_free(l->g);
  l->after_rc = async_sleep(10.0);
  return NULL;
}

static void
test_taskgroup_waits_for_a_child_spawned_after_the_wake(void **state) {
  (void)state;
  latecomer l;
  memset(&l, 0, sizeof l);
  l.late.delay = 1;
  l.late.fail = -EIO;
  assert_int_equal(vrun(latecomer_main, &l, NULL, NULL), 0);
  assert_int_equal(l.spawn_rc, 0);
  assert_int_equal(l.late_done_at_return, 1);
  assert_int_equal(l.wait_rc, -EIO);
  assert_int_equal(l.after_rc, 0); /* no stray cancellation */
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_taskgroup_waits_for_all),
      cmocka_unit_test(test_taskgroup_failure_cancels_siblings),
      cmocka_unit_test(test_taskgroup_reports_every_error),
      cmocka_unit_test(test_taskgroup_failure_interrupts_the_parents_body),
      cmocka_unit_test(test_taskgroup_outside_cancel_while_waiting),
      cmocka_unit_test(test_taskgroup_outside_cancel_in_the_body),
      cmocka_unit_test(test_taskgroup_outside_cancel_merged_with_a_failure),
      cmocka_unit_test(test_taskgroup_outside_cancel_then_a_failure),
      cmocka_unit_test(
          test_taskgroup_outside_cancel_and_a_failure_while_waiting),
      cmocka_unit_test(test_taskgroup_empty),
      cmocka_unit_test(test_taskgroup_misc),
      cmocka_unit_test(test_taskgroup_cancel_free_and_misuse),
      cmocka_unit_test(test_taskgroup_waits_for_a_child_spawned_after_the_wake),
  };
  return cmocka_run_group_tests_name("taskgroup", tests, NULL, NULL);
}
