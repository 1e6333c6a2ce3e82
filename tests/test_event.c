/* SPDX-License-Identifier: MIT */
/* The event. After CPython's test_locks EventTests. */
#include "helpers.h"

static void stop_cb(void *arg) { async_loop_stop(arg); }

static void spin(async_loop *loop) {
  async_loop_call_soon(loop, stop_cb, loop, NULL);
  async_loop_run_forever(loop);
}

typedef struct ewait {
  async_event *e;
  int id;
  seqlog *log;
  int rc;
  int done;
} ewait;

static void *waiter(void *arg) {
  ewait *w = arg;
  w->rc = async_event_wait(w->e);
  if (w->log) seqlog_add(w->log, w->id);
  w->done = 1;
  return NULL;
}

static void run_all(async_loop *loop, async_task **t, int n) {
  for (int i = 0; i < n; i++) {
    async_loop_run_until_complete(loop, t[i], NULL);
    async_task_release(t[i]);
  }
}

static void test_event_set_wakes_every_waiter_in_order(void **state) {
  (void)state;
  async_loop *loop = new_loop();
  async_event *e;
  assert_int_equal(async_event_new(&e), 0);
  assert_int_equal(async_event_is_set(e), 0);
  seqlog log = {0};
  ewait w[3];
  async_task *t[3];
  for (int i = 0; i < 3; i++) {
    w[i] = (ewait){.e = e, .id = i, .log = &log};
    async_task_spawn(loop, &t[i], waiter, &w[i], NULL);
  }
  spin(loop);
  assert_int_equal(w[0].done, 0);
  assert_int_equal(async_event_free(e), -EBUSY);
  assert_int_equal(async_event_set(e), 3);
  assert_int_equal(async_event_is_set(e), 1);
  assert_int_equal(async_event_set(e), 0); /* nobody left */
  run_all(loop, t, 3);
  int want[] = {0, 1, 2};
  seqlog_expect(&log, want, 3);
  for (int i = 0; i < 3; i++) assert_int_equal(w[i].rc, 0);
  assert_int_equal(async_event_free(e), 0);
  free_loop(loop);
}

static void *wait_twice(void *arg) {
  ewait *w = arg;
  async_task_cancel(async_task_current());
  w->rc = async_event_wait(w->e); /* set: does not suspend */
  w->done = async_yield();        /* the cancellation, delivered here */
  return NULL;
}

static void test_event_wait_on_a_set_event_does_not_suspend(void **state) {
  (void)state;
  async_loop *loop = new_loop();
  async_event *e;
  async_event_new(&e);
  async_event_set(e);
  ewait w = {.e = e};
  assert_int_equal(run_task(loop, wait_twice, &w, NULL), 0);
  assert_int_equal(w.rc, 0);
  assert_int_equal(w.done, -ECANCELED);
  assert_int_equal(async_event_free(e), 0);
  free_loop(loop);
}

static void test_event_clear_after_set_still_wakes_the_woken(void **state) {
  (void)state;
  async_loop *loop = new_loop();
  async_event *e;
  async_event_new(&e);
  ewait w = {.e = e};
  async_task *t;
  async_task_spawn(loop, &t, waiter, &w, NULL);
  spin(loop);
  async_event_set(e);
  async_event_clear(e); /* before the waiter runs */
  assert_int_equal(async_event_is_set(e), 0);
  run_all(loop, &t, 1);
  assert_int_equal(w.rc, 0);
  /* A new wait now waits again. */
  w.done = 0;
  async_task_spawn(loop, &t, waiter, &w, NULL);
  spin(loop);
  assert_int_equal(w.done, 0);
  async_event_set(e);
  run_all(loop, &t, 1);
  assert_int_equal(w.done, 1);
  assert_int_equal(async_event_free(e), 0);
  free_loop(loop);
}

static void test_event_cancelled_waiter(void **state) {
  (void)state;
  async_loop *loop = new_loop();
  async_event *e;
  async_event_new(&e);
  ewait w[2] = {{.e = e}, {.e = e}};
  async_task *t[2];
  for (int i = 0; i < 2; i++)
    async_task_spawn(loop, &t[i], waiter, &w[i], NULL);
  spin(loop);
  async_task_cancel(t[0]);
  spin(loop);
  assert_int_equal(w[0].rc, -ECANCELED);
  assert_int_equal(async_event_set(e), 1); /* only the other one waits */
  run_all(loop, t, 2);
  assert_int_equal(w[1].rc, 0);
  assert_int_equal(async_event_free(e), 0);
  free_loop(loop);
}

/* Issue 10 item 7: woken by a set, then cancelled before it runs: the
 * cancellation wins, as in asyncio (there is nothing to pass on: every
 * waiter was woken). */
static void test_event_woken_then_cancelled(void **state) {
  (void)state;
  async_loop *loop = new_loop();
  async_event *e;
  async_event_new(&e);
  ewait w[2] = {{.e = e}, {.e = e}};
  async_task *t[2];
  for (int i = 0; i < 2; i++)
    async_task_spawn(loop, &t[i], waiter, &w[i], NULL);
  spin(loop);
  assert_int_equal(async_event_set(e), 2);
  assert_int_equal(async_task_cancel(t[0]), 1);
  run_all(loop, t, 2);
  assert_int_equal(w[0].rc, -ECANCELED);
  assert_int_equal(w[1].rc, 0);
  assert_int_equal(async_event_free(e), 0);
  free_loop(loop);
}

static void test_event_misuse(void **state) {
  (void)state;
  async_event *e;
  assert_int_equal(async_event_new(NULL), -EINVAL);
  assert_int_equal(async_event_set(NULL), -EINVAL);
  assert_int_equal(async_event_clear(NULL), -EINVAL);
  assert_int_equal(async_event_is_set(NULL), -EINVAL);
  assert_int_equal(async_event_free(NULL), 0);
  async_event_new(&e);
  assert_int_equal(async_event_wait(e), -EPERM); /* outside a task */
  assert_int_equal(async_event_free(e), 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_event_set_wakes_every_waiter_in_order),
      cmocka_unit_test(test_event_wait_on_a_set_event_does_not_suspend),
      cmocka_unit_test(test_event_clear_after_set_still_wakes_the_woken),
      cmocka_unit_test(test_event_cancelled_waiter),
      cmocka_unit_test(test_event_woken_then_cancelled),
      cmocka_unit_test(test_event_misuse),
  };
  return cmocka_run_group_tests_name("event", tests, NULL, NULL);
}
