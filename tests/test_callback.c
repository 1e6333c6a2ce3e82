/* SPDX-License-Identifier: MIT */
/* Callbacks: call_soon, call_later, call_at, handles, asyncio's order. */
#include "helpers.h"

#include <pthread.h>

typedef struct {
  seqlog *log;
  int id;
  async_loop *loop;
} rec;

static seqlog g_log;

static void log_cb(void *arg) { seqlog_add(&g_log, PTRI(arg)); }
static void stop_cb(void *arg) { async_loop_stop(arg); }

static void test_callback_call_soon_is_fifo(void **state) {
  (void)state;
  async_loop *loop = new_loop();
  g_log.n = 0;
  for (int i = 0; i < 10; i++)
    assert_int_equal(async_loop_call_soon(loop, log_cb, IPTR(i), NULL), 0);
  async_loop_call_soon(loop, stop_cb, loop, NULL);
  assert_int_equal(async_loop_run_forever(loop), 0);
  int want[] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9};
  seqlog_expect(&g_log, want, 10);
  free_loop(loop);
}

/* On the virtual clock, which stands still while the calls are made: on the
 * real one, the call_later below falls due after the timers at now + 0.01
 * whenever making the calls takes 10 ms (under qemu-user, the first run of
 * this code, which it translates, can). */
static void test_callback_timers_by_deadline_then_scheduling(void **state) {
  (void)state;
  async_loop *loop = NULL;
  async_loop_options o;
  async_loop_options_init(&o);
  o.virtual_clock = 1;
  assert_int_equal(async_loop_new(&loop, &o), 0);
  g_log.n = 0;
  double now = async_loop_time(loop);
  /* Equal deadlines fire in the order they were scheduled. */
  async_loop_call_at(loop, now + 0.03, log_cb, IPTR(4), NULL);
  async_loop_call_at(loop, now + 0.01, log_cb, IPTR(1), NULL);
  async_loop_call_at(loop, now + 0.02, log_cb, IPTR(2), NULL);
  async_loop_call_at(loop, now + 0.02, log_cb, IPTR(3), NULL);
  async_loop_call_at(loop, now + 0.01, log_cb, IPTR(11), NULL);
  async_loop_call_later(loop, -1.0, log_cb, IPTR(0), NULL); /* due at once */
  async_loop_call_at(loop, now + 0.04, stop_cb, loop, NULL);
  assert_int_equal(async_loop_run_forever(loop), 0);
  int want[] = {0, 1, 11, 2, 3, 4};
  seqlog_expect(&g_log, want, 6);
  free_loop(loop);
}

/* asyncio's call_later(d) is call_at(time() + d): negative delays keep
 * their order, before a zero delay scheduled earlier; so do past times. */
static void test_callback_negative_delays_in_deadline_order(void **state) {
  (void)state;
  async_loop *loop = new_loop();
  g_log.n = 0;
  double now = async_loop_time(loop);
  async_loop_call_later(loop, 0.0, log_cb, IPTR(5), NULL);
  async_loop_call_later(loop, -1.0, log_cb, IPTR(4), NULL);
  async_loop_call_later(loop, -2.0, log_cb, IPTR(2), NULL);
  async_loop_call_at(loop, now - 1.5, log_cb, IPTR(3), NULL);
  async_loop_call_at(loop, now - 3.0, log_cb, IPTR(1), NULL);
  async_loop_call_later(loop, 0.01, stop_cb, loop, NULL);
  assert_int_equal(async_loop_run_forever(loop), 0);
  int want[] = {1, 2, 3, 4, 5};
  seqlog_expect(&g_log, want, 5);
  free_loop(loop);
}

static void test_callback_call_later_waits(void **state) {
  (void)state;
  async_loop *loop = new_loop();
  double t0 = async_clock();
  async_loop_call_later(loop, 0.05, stop_cb, loop, NULL);
  assert_int_equal(async_loop_run_forever(loop), 0);
  double dt = async_clock() - t0;
  assert_true(dt >= 0.05);
  assert_true(dt < 5.0);
  free_loop(loop);
}

static void test_callback_cancel_before_and_after(void **state) {
  (void)state;
  async_loop *loop = new_loop();
  g_log.n = 0;
  async_handle *soon, *later, *ran;
  assert_int_equal(async_loop_call_soon(loop, log_cb, IPTR(1), &soon), 0);
  assert_int_equal(async_loop_call_later(loop, 0.01, log_cb, IPTR(2), &later),
                   0);
  assert_int_equal(async_loop_call_soon(loop, log_cb, IPTR(3), &ran), 0);
  assert_int_equal(async_handle_cancel(soon), 1);
  assert_int_equal(async_handle_cancel(later), 1);
  async_loop_call_later(loop, 0.02, stop_cb, loop, NULL);
  assert_int_equal(async_loop_run_forever(loop), 0);
  int want[] = {3};
  seqlog_expect(&g_log, want, 1);
  assert_int_equal(async_handle_cancel(ran), 0); /* too late: it ran */
  free_loop(loop);
}

static void test_callback_release_keeps_it_scheduled(void **state) {
  (void)state;
  async_loop *loop = new_loop();
  g_log.n = 0;
  async_handle *h;
  assert_int_equal(async_loop_call_later(loop, 0.001, log_cb, IPTR(9), &h), 0);
  assert_int_equal(async_handle_release(h), 0);
  async_loop_call_later(loop, 0.01, stop_cb, loop, NULL);
  async_loop_run_forever(loop);
  int want[] = {9};
  seqlog_expect(&g_log, want, 1);
  free_loop(loop);
}

static void chain_cb(void *arg) {
  async_loop *loop = arg;
  seqlog_add(&g_log, 1);
  /* Scheduled during the iteration that stop ends: runs on the next run. */
  async_loop_call_soon(loop, log_cb, IPTR(2), NULL);
  async_loop_stop(loop);
}

static void test_callback_scheduled_during_iteration_runs_next(void **state) {
  (void)state;
  async_loop *loop = new_loop();
  g_log.n = 0;
  async_loop_call_soon(loop, chain_cb, loop, NULL);
  async_loop_run_forever(loop);
  int want1[] = {1};
  seqlog_expect(&g_log, want1, 1);
  async_loop_call_soon(loop, stop_cb, loop, NULL);
  async_loop_run_forever(loop);
  int want2[] = {1, 2};
  seqlog_expect(&g_log, want2, 2);
  free_loop(loop);
}

static void test_callback_bad_arguments(void **state) {
  (void)state;
  async_loop *loop = new_loop();
  async_handle *h = (async_handle *)&h;
  assert_int_equal(async_loop_call_soon(NULL, log_cb, NULL, NULL), -EINVAL);
  assert_int_equal(async_loop_call_soon(loop, NULL, NULL, &h), -EINVAL);
  assert_null(h);
  assert_int_equal(async_loop_call_later(loop, 0.0 / 0.0, log_cb, NULL, NULL),
                   -EINVAL);
  assert_int_equal(async_loop_call_at(loop, 0.0 / 0.0, log_cb, NULL, NULL),
                   -EINVAL);
  assert_int_equal(async_loop_call_soon_threadsafe(NULL, log_cb, NULL),
                   -EINVAL);
  assert_int_equal(async_handle_cancel(NULL), -EINVAL);
  assert_int_equal(async_handle_release(NULL), -EINVAL);
  /* A handle given back twice is caught while the loop still holds it. */
  assert_int_equal(async_loop_call_later(loop, 10.0, log_cb, NULL, &h), 0);
  assert_int_equal(async_handle_release(h), 0);
  free_loop(loop);
}

/* when() is the deadline the loop orders by: on a virtual clock, exactly
 * the time the callback runs at; NaN where there is none. */
static double g_ran_at[2];
static void when_cb(void *arg) {
  async_loop *loop = async_loop_current();
  g_ran_at[PTRI(arg)] = async_loop_time(loop);
}

static void test_callback_handle_when(void **state) {
  (void)state;
  async_loop_options o;
  async_loop_options_init(&o);
  o.virtual_clock = 1;
  async_loop *loop = NULL;
  assert_int_equal(async_loop_new(&loop, &o), 0);
  async_handle *later, *at, *soon;
  assert_int_equal(async_loop_call_later(loop, 0.25, when_cb, IPTR(0), &later),
                   0);
  assert_int_equal(async_loop_call_at(loop, 1.5, when_cb, IPTR(1), &at), 0);
  assert_int_equal(async_loop_call_soon(loop, log_cb, IPTR(0), &soon), 0);
  assert_true(async_handle_when(later) == 0.25);
  assert_true(async_handle_when(at) == 1.5);
  double w = async_handle_when(soon);
  assert_true(w != w);
  w = async_handle_when(NULL);
  assert_true(w != w);
  async_loop_call_at(loop, 2.0, stop_cb, loop, NULL);
  assert_int_equal(async_loop_run_forever(loop), 0);
  /* Still readable after the callback ran, and it ran at that time. */
  assert_true(async_handle_when(later) == g_ran_at[0]);
  assert_true(async_handle_when(at) == g_ran_at[1]);
  assert_int_equal(async_handle_release(later), 0);
  w = async_handle_when(at);
  assert_int_equal(async_handle_release(at), 0);
  assert_true(w == 1.5);
  assert_int_equal(async_handle_release(soon), 0);
  /* Given back while still scheduled: the loop holds it, and it says so. */
  assert_int_equal(async_loop_call_later(loop, 10.0, log_cb, NULL, &later), 0);
  assert_int_equal(async_handle_release(later), 0);
  w = async_handle_when(later);
  assert_true(w != w);
  free_loop(loop);
}

static void test_callback_handle_outlives_loop(void **state) {
  (void)state;
  async_loop *loop = new_loop();
  async_handle *h;
  assert_int_equal(async_loop_call_later(loop, 10.0, log_cb, NULL, &h), 0);
  free_loop(loop); /* drops the callback; the handle stays ours */
  assert_int_equal(async_handle_cancel(h), 0);
}

/* asyncio appends both calls to one deque: the thread-safe one keeps its
 * place among plain callbacks, from the loop's thread and from another. */
static void test_callback_threadsafe_shares_the_fifo(void **state) {
  (void)state;
  async_loop *loop = new_loop();
  g_log.n = 0;
  assert_int_equal(async_loop_call_soon_threadsafe(loop, log_cb, IPTR(1)), 0);
  assert_int_equal(async_loop_call_soon(loop, log_cb, IPTR(2), NULL), 0);
  assert_int_equal(async_loop_call_soon_threadsafe(loop, log_cb, IPTR(3)), 0);
  assert_int_equal(async_loop_call_soon(loop, log_cb, IPTR(4), NULL), 0);
  async_loop_call_soon(loop, stop_cb, loop, NULL);
  assert_int_equal(async_loop_run_forever(loop), 0);
  int want[] = {1, 2, 3, 4};
  seqlog_expect(&g_log, want, 4);
  free_loop(loop);
}

static void *ts_call(void *arg) {
  async_loop_call_soon_threadsafe(arg, log_cb, IPTR(5));
  return NULL;
}

/* Inside a running callback: another thread's call, made (joined) before
 * this thread's call_soon, runs first. */
static void ts_then_soon(void *arg) {
  async_loop *loop = arg;
  pthread_t th;
  assert_int_equal(pthread_create(&th, NULL, ts_call, loop), 0);
  pthread_join(th, NULL);
  async_loop_call_soon(loop, log_cb, IPTR(6), NULL);
  async_loop_call_soon(loop, stop_cb, loop, NULL);
}

static void
test_callback_threadsafe_from_another_thread_keeps_order(void **state) {
  (void)state;
  async_loop *loop = new_loop();
  g_log.n = 0;
  async_loop_call_soon(loop, ts_then_soon, loop, NULL);
  assert_int_equal(async_loop_run_forever(loop), 0);
  int want[] = {5, 6};
  seqlog_expect(&g_log, want, 2);
  free_loop(loop);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_callback_call_soon_is_fifo),
      cmocka_unit_test(test_callback_timers_by_deadline_then_scheduling),
      cmocka_unit_test(test_callback_negative_delays_in_deadline_order),
      cmocka_unit_test(test_callback_call_later_waits),
      cmocka_unit_test(test_callback_cancel_before_and_after),
      cmocka_unit_test(test_callback_release_keeps_it_scheduled),
      cmocka_unit_test(test_callback_scheduled_during_iteration_runs_next),
      cmocka_unit_test(test_callback_bad_arguments),
      cmocka_unit_test(test_callback_handle_when),
      cmocka_unit_test(test_callback_handle_outlives_loop),
      cmocka_unit_test(test_callback_threadsafe_shares_the_fifo),
      cmocka_unit_test(
          test_callback_threadsafe_from_another_thread_keeps_order),
  };
  return cmocka_run_group_tests_name("callback", tests, NULL, NULL);
}
