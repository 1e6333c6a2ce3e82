/* SPDX-License-Identifier: MIT */
/* async_run: asyncio.run's semantics. */
#include "helpers.h"

static void *answer(void *arg) {
  (void)arg;
  async_sleep(0.001);
  return IPTR(42);
}

static void *failing(void *arg) {
  (void)arg;
  return async_fail(ENOENT);
}

static void test_run_returns_the_main_result(void **state) {
  (void)state;
  void *res = NULL;
  assert_int_equal(async_run(answer, NULL, &res), 0);
  assert_int_equal(PTRI(res), 42);
  assert_int_equal(async_run(answer, NULL, NULL), 0);
  assert_null(async_loop_current());
}

static void test_run_returns_the_main_error(void **state) {
  (void)state;
  void *res = IPTR(1);
  assert_int_equal(async_run(failing, NULL, &res), -ENOENT);
  assert_null(res);
}

typedef struct {
  int cleaned;
  int started;
} leftovers;

static void *lingering(void *arg) {
  leftovers *l = arg;
  l->started++;
  if (async_sleep(3600) == -ECANCELED) l->cleaned++;
  return NULL;
}

static void *leaves_tasks_behind(void *arg) {
  for (int i = 0; i < 10; i++)
    async_task_spawn(async_loop_current(), NULL, lingering, arg, NULL);
  async_yield();
  return NULL;
}

static void test_run_cancels_what_is_left_and_lets_it_unwind(void **state) {
  (void)state;
  leftovers l = {0};
  double t0 = async_clock();
  assert_int_equal(async_run(leaves_tasks_behind, &l, NULL), 0);
  assert_true(async_clock() - t0 < 30.0);
  assert_int_equal(l.started, 10);
  assert_int_equal(l.cleaned, 10);
}

static void *nested(void *arg) {
  (void)arg;
  return IPTR(async_run(answer, NULL, NULL));
}

static void test_run_refuses_nesting_and_null(void **state) {
  (void)state;
  void *res;
  assert_int_equal(async_run(nested, NULL, &res), 0);
  assert_int_equal(PTRI(res), -EBUSY);
  assert_int_equal(async_run(NULL, NULL, &res), -EINVAL);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_run_returns_the_main_result),
      cmocka_unit_test(test_run_returns_the_main_error),
      cmocka_unit_test(test_run_cancels_what_is_left_and_lets_it_unwind),
      cmocka_unit_test(test_run_refuses_nesting_and_null),
  };
  return cmocka_run_group_tests_name("run", tests, NULL, NULL);
}
