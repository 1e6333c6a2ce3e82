/* SPDX-License-Identifier: MIT */
/* Infinite and NaN delays, on both clocks (issue 9, item 7): an infinite
 * delay never passes, a NaN one is refused, and the virtual clock neither
 * jumps to the end of time nor overflows. In every test the loop has
 * nothing but infinite waits, so only another thread (a call, or a write
 * to a pipe, 20 ms later in real time) can make progress: the clock must
 * not jump to get there. */
#include "helpers.h"

#include "core/core.h" /* white box: the virtual clock near its end */

#include <math.h>
#include <pthread.h>
#include <unistd.h>

static int vclock; /* the clock of the loops made, set by each test */

static async_loop *make_loop(void) {
  async_loop_options o;
  async_loop_options_init(&o);
  o.virtual_clock = vclock;
  async_loop *loop = NULL;
  assert_int_equal(async_loop_new(&loop, &o), 0);
  return loop;
}

static double now(void) { return async_loop_time(async_loop_current()); }

/* {==== Help from another thread, 20 ms later in real time ============== */

typedef struct later {
  pthread_t th;
  async_loop *loop;
  async_callback cb; /* called on the loop through call_soon_threadsafe */
  void *arg;
  int wfd; /* or a byte written there (>= 0) */
} later;

static void *later_thread(void *arg) {
  later *l = arg;
  usleep(20000);
  if (l->cb) async_loop_call_soon_threadsafe(l->loop, l->cb, l->arg);
  if (l->wfd >= 0 && write(l->wfd, "x", 1) != 1) abort();
  return NULL;
}

static void later_start(later *l, async_callback cb, void *arg, int wfd) {
  l->loop = async_loop_current();
  l->cb = cb;
  l->arg = arg;
  l->wfd = wfd;
  if (pthread_create(&l->th, NULL, later_thread, l) != 0) abort();
}

static void later_join(later *l) { pthread_join(l->th, NULL); }

static void cancel_cb(void *t) { async_future_cancel(t); }
static void resolve_cb(void *f) { async_future_set_result(f, IPTR(42)); }

/* }==== */

typedef struct rec {
  int rc[8];
  double t0, t1;
  int fired;
  void *res;
} rec;

/* The clock went on by the real time waited at most (a loaded machine:
 * generous), never backwards, never to the end of time. */
static void assert_sane_time(const rec *r) {
  assert_true(r->t1 >= r->t0);
  assert_true(r->t1 - r->t0 < 60.0);
}

static void *sleep_forever(void *arg) {
  rec *r = arg;
  r->rc[0] = async_sleep(NAN);
  r->rc[1] = async_sleep(-INFINITY); /* a yield */
  r->t0 = now();
  later l;
  later_start(&l, cancel_cb, async_task_current(), -1);
  r->rc[2] = async_sleep(INFINITY);
  r->t1 = now();
  later_join(&l);
  return NULL;
}

static void run_main(async_fn fn, rec *r) {
  async_loop *loop = make_loop();
  assert_int_equal(run_task(loop, fn, r, NULL), 0);
  free_loop(loop);
}

static void test_sleep(void **state) {
  (void)state;
  rec r = {0};
  run_main(sleep_forever, &r);
  assert_int_equal(r.rc[0], -EINVAL);
  assert_int_equal(r.rc[1], 0);
  assert_int_equal(r.rc[2], -ECANCELED);
  assert_sane_time(&r);
}

static void set_fired(void *arg) { ((rec *)arg)->fired = 1; }

static void *call_later_forever(void *arg) {
  rec *r = arg;
  async_loop *loop = async_loop_current();
  async_handle *h1, *h2;
  r->rc[0] = async_loop_call_later(loop, NAN, set_fired, r, NULL);
  r->rc[1] = async_loop_call_at(loop, NAN, set_fired, r, NULL);
  r->rc[2] = async_loop_call_later(loop, INFINITY, set_fired, r, &h1);
  r->rc[3] = async_loop_call_at(loop, INFINITY, set_fired, r, &h2);
  async_future *f;
  async_future_new(loop, &f);
  r->t0 = now();
  later l;
  later_start(&l, resolve_cb, f, -1);
  r->rc[4] = async_await(f, &r->res);
  r->t1 = now();
  later_join(&l);
  async_future_release(f);
  r->rc[5] = async_handle_cancel(h1); /* 1: still scheduled */
  r->rc[6] = async_handle_cancel(h2);
  return NULL;
}

static void test_call_later(void **state) {
  (void)state;
  rec r = {0};
  run_main(call_later_forever, &r);
  assert_int_equal(r.rc[0], -EINVAL);
  assert_int_equal(r.rc[1], -EINVAL);
  assert_int_equal(r.rc[2], 0);
  assert_int_equal(r.rc[3], 0);
  assert_int_equal(r.rc[4], 0);
  assert_int_equal(PTRI(r.res), 42);
  assert_int_equal(r.fired, 0);
  assert_int_equal(r.rc[5], 1);
  assert_int_equal(r.rc[6], 1);
  assert_sane_time(&r);
}

static void *timeout_forever(void *arg) {
  rec *r = arg;
  async_timeout tmo, tmo2;
  r->rc[0] = async_timeout_enter(&tmo, NAN);
  r->rc[1] = async_timeout_enter_at(&tmo, NAN);
  r->rc[2] = async_timeout_enter(&tmo, INFINITY);
  r->rc[3] = async_timeout_enter_at(&tmo2, INFINITY);
  r->t0 = now();
  later l;
  later_start(&l, cancel_cb, async_task_current(), -1);
  r->rc[4] = async_sleep(INFINITY);
  r->t1 = now();
  later_join(&l);
  r->fired = async_timeout_when(&tmo) == ASYNC_NO_TIMEOUT &&
             async_timeout_when(&tmo2) == ASYNC_NO_TIMEOUT;
  /* The thread's cancellation is no deadline's: it passes both exits. */
  r->rc[5] = async_timeout_exit(&tmo2, r->rc[4]);
  r->rc[6] = async_timeout_exit(&tmo, r->rc[5]);
  return NULL;
}

static void test_timeout(void **state) {
  (void)state;
  rec r = {0};
  run_main(timeout_forever, &r);
  assert_int_equal(r.rc[0], -EINVAL);
  assert_int_equal(r.rc[1], -EINVAL);
  assert_int_equal(r.rc[2], 0);
  assert_int_equal(r.rc[3], 0);
  assert_int_equal(r.rc[4], -ECANCELED); /* the thread's, not a deadline */
  assert_int_equal(r.fired, 1);          /* no deadline: ASYNC_NO_TIMEOUT */
  assert_int_equal(r.rc[5], -ECANCELED);
  assert_int_equal(r.rc[6], -ECANCELED);
  assert_sane_time(&r);
}

static void *wait_for_forever(void *arg) {
  rec *r = arg;
  async_future *f;
  async_future_new(async_loop_current(), &f);
  r->rc[0] = async_wait_for(f, NAN, NULL);
  r->t0 = now();
  later l;
  later_start(&l, resolve_cb, f, -1);
  r->rc[1] = async_wait_for(f, INFINITY, &r->res);
  r->t1 = now();
  later_join(&l);
  async_future_release(f);
  return NULL;
}

static void test_wait_for(void **state) {
  (void)state;
  rec r = {0};
  run_main(wait_for_forever, &r);
  assert_int_equal(r.rc[0], -EINVAL);
  assert_int_equal(r.rc[1], 0);
  assert_int_equal(PTRI(r.res), 42);
  assert_sane_time(&r);
}

/* An infinite sleep, then a real wait on an fd: the clock must neither
 * have jumped to the end of time nor overflow when the wait advances it. */
static void *fd_forever(void *arg) {
  rec *r = arg;
  int p[2];
  if (pipe(p) != 0) return async_fail(-errno);
  r->rc[0] = async_fd_wait(p[0], ASYNC_READABLE, NAN);
  r->t0 = now();
  later l;
  later_start(&l, cancel_cb, async_task_current(), -1);
  r->rc[1] = async_sleep(INFINITY);
  later_join(&l);
  later_start(&l, NULL, NULL, p[1]);
  r->rc[2] = async_fd_wait(p[0], ASYNC_READABLE, INFINITY);
  r->t1 = now();
  later_join(&l);
  async_fd_forget(async_loop_current(), p[0]);
  close(p[0]);
  close(p[1]);
  return NULL;
}

static void test_fd_wait(void **state) {
  (void)state;
  rec r = {0};
  run_main(fd_forever, &r);
  assert_int_equal(r.rc[0], -EINVAL);
  assert_int_equal(r.rc[1], -ECANCELED);
  assert_int_equal(r.rc[2], ASYNC_READABLE);
  assert_sane_time(&r);
}

/* The virtual clock at the end of its range: a real wait saturates it. */
static void *fd_at_the_end(void *arg) {
  rec *r = arg;
  int p[2];
  if (pipe(p) != 0) return async_fail(-errno);
  async_loop *loop = async_loop_current();
  loop->now = INT64_MAX - 1000; /* 1 us before the end */
  r->t0 = now();
  later l;
  later_start(&l, NULL, NULL, p[1]);
  r->rc[0] = async_fd_wait(p[0], ASYNC_READABLE, ASYNC_NO_TIMEOUT);
  r->t1 = now();
  later_join(&l);
  async_fd_forget(loop, p[0]);
  close(p[0]);
  close(p[1]);
  return NULL;
}

static void test_virtual_clock_saturates(void **state) {
  (void)state;
  rec r = {0};
  run_main(fd_at_the_end, &r);
  assert_int_equal(r.rc[0], ASYNC_READABLE);
  assert_true(r.t0 > 9.2e9);
  assert_true(r.t1 >= r.t0);
}

static int on_real(void **state) {
  (void)state;
  vclock = 0;
  return 0;
}

static int on_virtual(void **state) {
  (void)state;
  vclock = 1;
  return 0;
}

#define BOTH(fn)                                                               \
  cmocka_unit_test_setup(fn, on_real), cmocka_unit_test_setup(fn, on_virtual)

int main(void) {
  const struct CMUnitTest tests[] = {
      BOTH(test_sleep),
      BOTH(test_call_later),
      BOTH(test_timeout),
      BOTH(test_wait_for),
      BOTH(test_fd_wait),
      cmocka_unit_test_setup(test_virtual_clock_saturates, on_virtual),
  };
  return cmocka_run_group_tests_name("forever", tests, NULL, NULL);
}
