/* SPDX-License-Identifier: MIT */
/* Sleep and yield: order, duration, edge values. */
#include "helpers.h"

static seqlog g_log;

static void *nap(void *arg) {
  int ms = PTRI(arg);
  async_sleep(ms / 1000.0);
  seqlog_add(&g_log, ms);
  return NULL;
}

static void *order_main(void *arg) {
  (void)arg;
  int ms[] = {30, 10, 20, 10, 0};
  async_task *t[5];
  for (int i = 0; i < 5; i++) t[i] = async_spawn(nap, IPTR(ms[i]));
  for (int i = 0; i < 5; i++) {
    async_await(t[i], NULL);
    async_task_release(t[i]);
  }
  return NULL;
}

static void test_sleep_wakes_in_deadline_order(void **state) {
  (void)state;
  async_loop *loop = new_loop();
  g_log.n = 0;
  assert_int_equal(run_task(loop, order_main, NULL, NULL), 0);
  int want[] = {0, 10, 10, 20, 30};
  seqlog_expect(&g_log, want, 5);
  free_loop(loop);
}

static void *timed_ok(void *arg) {
  double *dt = arg;
  double t0 = async_clock();
  int err = async_sleep(0.05);
  *dt = async_clock() - t0;
  return err ? async_fail(err) : NULL;
}

static void test_sleep_lasts_at_least_the_time_asked(void **state) {
  (void)state;
  async_loop *loop = new_loop();
  double dt = 0;
  assert_int_equal(run_task(loop, timed_ok, &dt, NULL), 0);
  assert_true(dt >= 0.05);
  assert_true(dt < 5.0); /* generous: CI machines are loaded */
  free_loop(loop);
}

typedef struct {
  int zero, neg, nan, huge_then_cancel;
} edges;

static void *edge_main(void *arg) {
  edges *e = arg;
  e->zero = async_sleep(0.0);
  e->neg = async_sleep(-1.0);
  e->nan = async_sleep(0.0 / 0.0);
  return NULL;
}

static void test_sleep_edge_values(void **state) {
  (void)state;
  async_loop *loop = new_loop();
  edges e = {1, 1, 1, 1};
  assert_int_equal(run_task(loop, edge_main, &e, NULL), 0);
  assert_int_equal(e.zero, 0);
  assert_int_equal(e.neg, 0);
  assert_int_equal(e.nan, -EINVAL);
  free_loop(loop);
}

static void *pinger(void *arg) {
  for (int i = 0; i < 5; i++) {
    seqlog_add(&g_log, PTRI(arg));
    async_yield();
  }
  return NULL;
}

static void test_sleep_yield_alternates_fifo(void **state) {
  (void)state;
  async_loop *loop = new_loop();
  g_log.n = 0;
  async_task *a, *b;
  async_task_spawn(loop, &a, pinger, IPTR(1), NULL);
  async_task_spawn(loop, &b, pinger, IPTR(2), NULL);
  async_loop_run_until_complete(loop, b, NULL);
  int want[] = {1, 2, 1, 2, 1, 2, 1, 2, 1, 2};
  seqlog_expect(&g_log, want, 10);
  async_task_release(a);
  async_task_release(b);
  free_loop(loop);
}

static int woke;

static void *one_sleeper(void *arg) {
  (void)arg;
  if (async_sleep(0.02) == 0) woke++;
  return NULL;
}

static void *many_sleepers(void *arg) {
  int n = PTRI(arg);
  async_task **t = malloc((size_t)n * sizeof *t);
  for (int i = 0; i < n; i++) t[i] = async_spawn(one_sleeper, NULL);
  for (int i = 0; i < n; i++) {
    async_await(t[i], NULL);
    async_task_release(t[i]);
  }
  free(t);
  return NULL;
}

static void test_sleep_many_at_once(void **state) {
  (void)state;
  async_loop *loop = new_loop();
  woke = 0;
  double t0 = async_clock();
  assert_int_equal(run_task(loop, many_sleepers, IPTR(20000), NULL), 0);
  assert_int_equal(woke, 20000);
  assert_true(async_clock() - t0 < 30.0);
  free_loop(loop);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_sleep_wakes_in_deadline_order),
      cmocka_unit_test(test_sleep_lasts_at_least_the_time_asked),
      cmocka_unit_test(test_sleep_edge_values),
      cmocka_unit_test(test_sleep_yield_alternates_fifo),
      cmocka_unit_test(test_sleep_many_at_once),
  };
  return cmocka_run_group_tests_name("sleep", tests, NULL, NULL);
}
