/* SPDX-License-Identifier: MIT */
/* Bare futures: resolved by callbacks, awaited by tasks. */
#include "helpers.h"

static void stop_cb(void *arg) { async_loop_stop(arg); }

typedef struct {
  async_future *f;
  int err[3];
  void *res[3];
  int n;
} waiters_ctx;

static void *await_f(void *arg) {
  waiters_ctx *c = arg;
  int i = c->n++;
  c->err[i] = async_await(c->f, &c->res[i]);
  return NULL;
}

static void resolve_cb(void *arg) {
  async_future_set_result(((waiters_ctx *)arg)->f, IPTR(99));
}

static void test_future_set_result_wakes_every_waiter(void **state) {
  (void)state;
  async_loop *loop = new_loop();
  waiters_ctx c = {0};
  assert_int_equal(async_future_new(loop, &c.f), 0);
  for (int i = 0; i < 3; i++) async_task_spawn(loop, NULL, await_f, &c, NULL);
  /* The bridge: a plain callback resolves what the tasks await. */
  async_loop_call_later(loop, 0.01, resolve_cb, &c, NULL);
  assert_int_equal(async_loop_run_until_complete(loop, c.f, NULL), 0);
  async_loop_call_soon(loop, stop_cb, loop, NULL);
  async_loop_run_forever(loop);
  for (int i = 0; i < 3; i++) {
    assert_int_equal(c.err[i], 0);
    assert_int_equal(PTRI(c.res[i]), 99);
  }
  assert_int_equal(async_future_set_result(c.f, NULL), -EALREADY);
  assert_int_equal(async_future_set_error(c.f, -EIO), -EALREADY);
  async_future_release(c.f);
  free_loop(loop);
}

static void test_future_set_error_and_result_without_waiting(void **state) {
  (void)state;
  async_loop *loop = new_loop();
  async_future *f;
  void *res = IPTR(1);
  assert_int_equal(async_future_new(loop, &f), 0);
  assert_int_equal(async_future_done(f), 0);
  assert_int_equal(async_future_result(f, &res), -EINPROGRESS);
  assert_null(res);
  assert_int_equal(async_future_set_error(f, EIO), 0); /* sign fixed */
  assert_int_equal(async_future_done(f), 1);
  assert_int_equal(async_future_cancelled(f), 0);
  assert_int_equal(async_future_result(f, &res), -EIO);
  async_future_release(f);
  assert_int_equal(async_future_new(loop, &f), 0);
  assert_int_equal(async_future_set_error(f, 0), 0);
  assert_int_equal(async_future_result(f, NULL), -EINVAL);
  async_future_release(f);
  free_loop(loop);
}

static void test_future_cancel(void **state) {
  (void)state;
  async_loop *loop = new_loop();
  waiters_ctx c = {0};
  assert_int_equal(async_future_new(loop, &c.f), 0);
  async_task *t;
  async_task_spawn(loop, &t, await_f, &c, NULL);
  async_loop_call_soon(loop, stop_cb, loop, NULL);
  async_loop_run_forever(loop); /* the task now waits */
  assert_int_equal(async_future_cancel(c.f), 1);
  assert_int_equal(async_future_cancel(c.f), 0);
  assert_int_equal(async_future_cancelled(c.f), 1);
  assert_int_equal(async_loop_run_until_complete(loop, t, NULL), 0);
  assert_int_equal(c.err[0], -ECANCELED);
  async_task_release(t);
  async_future_release(c.f);
  free_loop(loop);
}

static void test_future_set_on_a_task_is_refused(void **state) {
  (void)state;
  async_loop *loop = new_loop();
  async_task *t;
  assert_int_equal(async_task_spawn(loop, &t, NULL, NULL, NULL), -EINVAL);
  assert_null(t);
  waiters_ctx c = {0};
  async_future_new(loop, &c.f);
  assert_int_equal(async_task_spawn(loop, &t, await_f, &c, NULL), 0);
  assert_int_equal(async_future_set_result(t, NULL), -EINVAL);
  assert_int_equal(async_future_set_error(t, -EIO), -EINVAL);
  assert_null(async_task_name(c.f)); /* a bare future has no name */
  assert_int_equal(async_task_set_name(c.f, "x"), -EINVAL);
  async_future_set_result(c.f, NULL);
  assert_int_equal(async_loop_run_until_complete(loop, t, NULL), 0);
  async_task_release(t);
  async_future_release(c.f);
  free_loop(loop);
}

static void nop_done(async_future *f, void *arg) {
  (void)f;
  (void)arg;
}

static void test_future_removing_the_last_callback_frees_it(void **state) {
  (void)state;
  async_loop *loop = new_loop();
  async_future *f;
  assert_int_equal(async_future_new(loop, &f), 0);
  assert_int_equal(async_future_add_done_callback(f, nop_done, NULL), 0);
  assert_int_equal(async_future_release(f), 0); /* the record holds it */
  assert_int_equal(async_future_done(f), 0);    /* still alive */
  assert_int_equal(async_future_remove_done_callback(f, nop_done, NULL), 1);
  /* That was the last reference: the handle is dead now. */
  assert_int_equal(async_future_done(f), -EINVAL);
  free_loop(loop);
}

static void test_future_outlives_its_loop(void **state) {
  (void)state;
  async_loop *loop = new_loop();
  async_future *done, *pending;
  async_future_new(loop, &done);
  async_future_new(loop, &pending);
  async_future_set_result(done, IPTR(5));
  free_loop(loop);
  void *res;
  assert_int_equal(async_future_result(done, &res), 0);
  assert_int_equal(PTRI(res), 5);
  assert_int_equal(async_future_done(pending), 0);
  assert_int_equal(
      async_future_add_done_callback(pending, (async_done_fn)NULL, NULL),
      -EINVAL);
  assert_int_equal(async_future_release(done), 0);
  assert_int_equal(async_future_release(pending), 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_future_set_result_wakes_every_waiter),
      cmocka_unit_test(test_future_set_error_and_result_without_waiting),
      cmocka_unit_test(test_future_cancel),
      cmocka_unit_test(test_future_set_on_a_task_is_refused),
      cmocka_unit_test(test_future_removing_the_last_callback_frees_it),
      cmocka_unit_test(test_future_outlives_its_loop),
  };
  return cmocka_run_group_tests_name("future", tests, NULL, NULL);
}
