/* SPDX-License-Identifier: MIT */
/* The virtual clock: time starts at 0 and jumps from timer to timer, so
 * long sleeps take no real time and happen in a fixed order. */
#include "vclock_helpers.h"

#include <pthread.h>
#include <unistd.h>

static void test_vclock_default_is_the_real_clock(void **state) {
  (void)state;
  async_loop_options o;
  async_loop_options_init(&o);
  assert_int_equal(o.virtual_clock, 0);
  async_loop *loop = new_loop();
  double t = async_loop_time(loop);
  assert_true(t > async_clock() - 5.0 && t <= async_clock());
  free_loop(loop);
  loop = new_vloop();
  assert_true(async_loop_time(loop) == 0.0);
  free_loop(loop);
}

typedef struct {
  double woke[3];
  int err[3];
} hour;

static void *sleep_an_hour(void *arg) {
  hour *h = arg;
  h->err[0] = async_sleep(3600.0);
  h->woke[0] = vnow();
  h->err[1] = async_sleep(0.25);
  h->woke[1] = vnow();
  h->err[2] = async_sleep(86400.0 * 365);
  h->woke[2] = vnow();
  return NULL;
}

static void test_vclock_long_sleeps_take_no_real_time(void **state) {
  (void)state;
  hour h = {{0}, {0}};
  double t0 = async_clock(), end;
  assert_int_equal(vrun(sleep_an_hour, &h, NULL, &end), 0);
  assert_true(async_clock() - t0 < 5.0);
  for (int i = 0; i < 3; i++) assert_int_equal(h.err[i], 0);
  /* Exactly: every jump lands on the deadline. */
  assert_true(h.woke[0] == 3600.0);
  assert_true(h.woke[1] == 3600.25);
  assert_true(h.woke[2] == 3600.25 + 86400.0 * 365);
  assert_true(end == h.woke[2]);
}

typedef struct {
  seqlog *log;
  int id;
  double delay;
} tick;

static void *ticker(void *arg) {
  tick *k = arg;
  for (int i = 0; i < 3; i++) {
    async_sleep(k->delay);
    seqlog_add(k->log, k->id * 10 + i);
  }
  return NULL;
}

static void logged_cb(void *arg) {
  tick *k = arg;
  seqlog_add(k->log, k->id);
}

static void
test_vclock_orders_sleepers_and_callbacks_by_deadline(void **state) {
  (void)state;
  async_loop *loop = new_vloop();
  seqlog log = {{0}, 0};
  tick a = {&log, 1, 3.0}, b = {&log, 2, 2.0}, c = {&log, 99, 0};
  async_task *ta, *tb;
  async_task_spawn(loop, &ta, ticker, &a, NULL);
  async_task_spawn(loop, &tb, ticker, &b, NULL);
  async_loop_call_later(loop, 5.0, logged_cb, &c, NULL);
  assert_int_equal(async_loop_run_until_complete(loop, ta, NULL), 0);
  /* b at 2, 4, 6; a at 3, 6, 9 (a's 6 was armed first); the callback at 5 */
  const int want[] = {20, 10, 21, 99, 11, 22, 12};
  seqlog_expect(&log, want, 7);
  assert_true(async_loop_time(loop) == 9.0);
  async_task_release(ta);
  async_task_release(tb);
  free_loop(loop);
}

static void test_vclock_call_at_uses_virtual_time(void **state) {
  (void)state;
  async_loop *loop = new_vloop();
  seqlog log = {{0}, 0};
  tick c = {&log, 7, 0};
  async_loop_call_at(loop, 42.5, logged_cb, &c, NULL);
  async_loop_call_at(loop, 42.5, stop_cb, loop, NULL);
  assert_int_equal(async_loop_run_forever(loop), 0);
  assert_int_equal(log.n, 1);
  assert_true(async_loop_time(loop) == 42.5);
  free_loop(loop);
}

typedef struct {
  int fd;
  int events;
  double at;
} fd_waiter;

static void *wait_pipe(void *arg) {
  fd_waiter *w = arg;
  w->events = async_fd_wait(w->fd, ASYNC_READABLE, ASYNC_NO_TIMEOUT);
  w->at = vnow();
  return NULL;
}

static void *write_later(void *arg) {
  usleep(20000);
  ssize_t r = write(*(int *)arg, "x", 1);
  (void)r;
  return NULL;
}

/* While a task waits on an fd the clock does not jump: the loop waits in
 * real time and the clock follows; once nothing but timers is left, it
 * jumps again. */
static void test_vclock_does_not_jump_over_fd_waiters(void **state) {
  (void)state;
  async_loop *loop = new_vloop();
  int p[2];
  assert_int_equal(pipe(p), 0);
  fd_waiter w = {.fd = p[0]};
  hour h = {{0}, {0}};
  async_task *tw, *ts;
  async_task_spawn(loop, &tw, wait_pipe, &w, NULL);
  async_task_spawn(loop, &ts, sleep_an_hour, &h, NULL);
  pthread_t th;
  assert_int_equal(pthread_create(&th, NULL, write_later, &p[1]), 0);
  assert_int_equal(async_loop_run_until_complete(loop, ts, NULL), 0);
  pthread_join(th, NULL);
  assert_int_equal(w.events, ASYNC_READABLE);
  assert_true(w.at > 0.0 && w.at < 3600.0); /* real time waited, about 0.02 */
  assert_true(h.woke[0] == 3600.0);         /* then a jump to the deadline */
  async_task_release(tw);
  async_task_release(ts);
  close(p[0]);
  close(p[1]);
  free_loop(loop);
}

static void *stubborn_sleeper(void *arg) {
  int *cleaned = arg;
  if (async_sleep(1e6) == -ECANCELED) {
    async_sleep(30.0); /* a cleanup that sleeps, on virtual time */
    (*cleaned)++;
  }
  return NULL;
}

static void test_vclock_close_unwinds_sleepers(void **state) {
  (void)state;
  async_loop *loop = new_vloop();
  int cleaned = 0;
  for (int i = 0; i < 3; i++)
    async_task_spawn(loop, NULL, stubborn_sleeper, &cleaned, NULL);
  async_loop_call_later(loop, 10.0, stop_cb, loop, NULL);
  assert_int_equal(async_loop_run_forever(loop), 0);
  assert_true(async_loop_time(loop) == 10.0);
  double t0 = async_clock();
  assert_int_equal(async_loop_close(loop), 0);
  assert_true(async_clock() - t0 < 5.0);
  assert_int_equal(cleaned, 3);
  free_loop(loop);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_vclock_default_is_the_real_clock),
      cmocka_unit_test(test_vclock_long_sleeps_take_no_real_time),
      cmocka_unit_test(test_vclock_orders_sleepers_and_callbacks_by_deadline),
      cmocka_unit_test(test_vclock_call_at_uses_virtual_time),
      cmocka_unit_test(test_vclock_does_not_jump_over_fd_waiters),
      cmocka_unit_test(test_vclock_close_unwinds_sleepers),
  };
  return cmocka_run_group_tests_name("vclock", tests, NULL, NULL);
}
