/* SPDX-License-Identifier: MIT */
/* Misuse gets a clear error, never a crash. */
#include "helpers.h"

static void *nothing(void *arg) { return arg; }

static void test_misuse_suspending_outside_a_task(void **state) {
  (void)state;
  assert_int_equal(async_sleep(0.01), -EPERM);
  assert_int_equal(async_yield(), -EPERM);
  assert_int_equal(async_fd_wait(0, ASYNC_READABLE, 0), -EPERM);
  async_loop *loop = new_loop();
  async_future *f;
  async_future_new(loop, &f);
  assert_int_equal(async_await(f, NULL), -EPERM);
  assert_null(async_spawn(NULL, NULL));
  async_future_release(f);
  free_loop(loop);
}

static int cb_results[4];

static void suspend_in_callback(void *arg) {
  (void)arg;
  cb_results[0] = async_sleep(0.01);
  cb_results[1] = async_yield();
  async_loop_stop(async_loop_current());
}

static void test_misuse_suspending_in_a_callback(void **state) {
  (void)state;
  async_loop *loop = new_loop();
  async_loop_call_soon(loop, suspend_in_callback, NULL, NULL);
  async_loop_run_forever(loop);
  assert_int_equal(cb_results[0], -EPERM);
  assert_int_equal(cb_results[1], -EPERM);
  free_loop(loop);
}

static void test_misuse_null_arguments(void **state) {
  (void)state;
  assert_int_equal(async_loop_new(NULL, NULL), -EINVAL);
  assert_int_equal(async_loop_close(NULL), -EINVAL);
  assert_int_equal(async_loop_run_forever(NULL), -EINVAL);
  assert_int_equal(async_loop_run_until_complete(NULL, NULL, NULL), -EINVAL);
  assert_int_equal(async_loop_stop(NULL), -EINVAL);
  assert_int_equal(async_loop_is_running(NULL), 0);
  assert_int_equal(async_loop_is_closed(NULL), 0);
  assert_null(async_loop_backend(NULL));
  assert_int_equal(async_task_spawn(NULL, NULL, NULL, NULL, NULL), -EINVAL);
  assert_int_equal(async_future_new(NULL, NULL), -EINVAL);
  assert_int_equal(async_future_done(NULL), -EINVAL);
  assert_int_equal(async_future_cancelled(NULL), -EINVAL);
  assert_int_equal(async_future_result(NULL, NULL), -EINVAL);
  assert_int_equal(async_future_cancel(NULL), -EINVAL);
  assert_int_equal(async_future_release(NULL), -EINVAL);
  assert_int_equal(async_future_set_result(NULL, NULL), -EINVAL);
  assert_int_equal(async_future_set_error(NULL, -EIO), -EINVAL);
  assert_int_equal(async_future_add_done_callback(NULL, NULL, NULL), -EINVAL);
  assert_int_equal(async_future_remove_done_callback(NULL, NULL, NULL),
                   -EINVAL);
  assert_null(async_task_name(NULL));
  assert_int_equal(async_task_set_name(NULL, "x"), -EINVAL);
  assert_null(async_fail(-EIO)); /* outside a task: only returns NULL */
  async_loop_options_init(NULL);
  async_task_options_init(NULL);
  async_loop *loop = new_loop();
  async_task_options o;
  async_task_options_init(&o);
  o.size = 0;
  assert_int_equal(async_task_spawn(loop, NULL, nothing, NULL, &o), -EINVAL);
  free_loop(loop);
}

static void *await_self(void *arg) {
  (void)arg;
  return IPTR(async_await(async_task_current(), NULL));
}

static void test_misuse_task_awaiting_itself(void **state) {
  (void)state;
  void *res;
  assert_int_equal(async_run(await_self, NULL, &res), 0);
  assert_int_equal(PTRI(res), -EDEADLK);
}

typedef struct {
  async_future *foreign;
  int err;
} xloop;

static void *await_foreign(void *arg) {
  xloop *x = arg;
  x->err = async_await(x->foreign, NULL);
  return NULL;
}

static void test_misuse_awaiting_another_loops_task(void **state) {
  (void)state;
  async_loop *a = new_loop(), *b = new_loop();
  xloop x = {0};
  async_future_new(b, &x.foreign);
  assert_int_equal(run_task(a, await_foreign, &x, NULL), 0);
  assert_int_equal(x.err, -EXDEV);
  assert_int_equal(async_loop_run_until_complete(a, x.foreign, NULL), -EXDEV);
  async_future_release(x.foreign);
  free_loop(b);
  free_loop(a);
}

/* A callback handle has a magic value of its own: another object passed
 * for one is refused, not taken apart as a handle. */
static void test_misuse_future_is_no_handle(void **state) {
  (void)state;
  async_loop *loop = new_loop();
  async_future *f;
  assert_int_equal(async_future_new(loop, &f), 0);
  assert_int_equal(async_handle_cancel((async_handle *)f), -EINVAL);
  assert_int_equal(async_handle_release((async_handle *)f), -EINVAL);
  assert_int_equal(async_future_release(f), 0);
  free_loop(loop);
}

static void test_misuse_second_release(void **state) {
  (void)state;
  async_loop *loop = new_loop();
  async_future *f;
  async_future_new(loop, &f);
  assert_int_equal(async_future_release(f), 0);
  assert_int_equal(async_future_release(f), -EINVAL);
  assert_int_equal(async_future_cancel(f), -EINVAL); /* a dead handle */
  async_task *t;
  async_task_spawn(loop, &t, nothing, NULL, NULL);
  assert_int_equal(async_task_release(t), 0); /* still held by the loop */
  assert_int_equal(async_task_release(t), -EINVAL);
  free_loop(loop);
}

static void test_misuse_strerror_covers_every_code(void **state) {
  (void)state;
  int codes[] = {0,          -EINVAL, -EPERM,     -EDEADLK,
                 -EXDEV,     -EBUSY,  -ESHUTDOWN, -ECANCELED,
                 -ETIMEDOUT, -ENOMEM, -EALREADY,  -EINPROGRESS,
                 -EIO,       -ECHILD, -99999,     5};
  for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++) {
    const char *s = async_strerror(codes[i]);
    assert_non_null(s);
    assert_true(strlen(s) > 0);
  }
  assert_string_equal(async_strerror(-ECANCELED), "cancelled");
  assert_non_null(async_version());
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_misuse_suspending_outside_a_task),
      cmocka_unit_test(test_misuse_suspending_in_a_callback),
      cmocka_unit_test(test_misuse_null_arguments),
      cmocka_unit_test(test_misuse_task_awaiting_itself),
      cmocka_unit_test(test_misuse_awaiting_another_loops_task),
      cmocka_unit_test(test_misuse_second_release),
      cmocka_unit_test(test_misuse_future_is_no_handle),
      cmocka_unit_test(test_misuse_strerror_covers_every_code),
  };
  return cmocka_run_group_tests_name("misuse", tests, NULL, NULL);
}
