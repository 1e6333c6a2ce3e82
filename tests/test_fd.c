/* SPDX-License-Identifier: MIT */
/* File-descriptor waits, on whichever backend ASYNC_BACKEND names. */
#include "helpers.h"

#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

static void stop_cb(void *arg) { async_loop_stop(arg); }

static void spin(async_loop *loop) {
  async_loop_call_soon(loop, stop_cb, loop, NULL);
  async_loop_run_forever(loop);
}

typedef struct {
  int fd;
  int events;
  double timeout;
  int got;
} waitc;

static void *waiter(void *arg) {
  waitc *w = arg;
  w->got = async_fd_wait(w->fd, w->events, w->timeout);
  return NULL;
}

static void *writer(void *arg) {
  async_sleep(0.01);
  if (write(*(int *)arg, "hello", 5) != 5) return async_fail(-EIO);
  return NULL;
}

static void test_fd_readable_after_write(void **state) {
  (void)state;
  async_loop *loop = new_loop();
  int p[2];
  assert_int_equal(pipe(p), 0);
  waitc w = {.fd = p[0], .events = ASYNC_READABLE, .timeout = ASYNC_NO_TIMEOUT};
  async_task *t;
  async_task_spawn(loop, &t, waiter, &w, NULL);
  async_task_spawn(loop, NULL, writer, &p[1], NULL);
  assert_int_equal(async_loop_run_until_complete(loop, t, NULL), 0);
  assert_int_equal(w.got, ASYNC_READABLE);
  async_task_release(t);
  /* Writable at once; both directions asked, one reported. */
  waitc w2 = {
      .fd = p[1], .events = ASYNC_READABLE | ASYNC_WRITABLE, .timeout = 1.0};
  async_task_spawn(loop, &t, waiter, &w2, NULL);
  assert_int_equal(async_loop_run_until_complete(loop, t, NULL), 0);
  assert_int_equal(w2.got, ASYNC_WRITABLE);
  async_task_release(t);
  close(p[0]);
  close(p[1]);
  free_loop(loop);
}

static void test_fd_timeout(void **state) {
  (void)state;
  async_loop *loop = new_loop();
  int p[2];
  assert_int_equal(pipe(p), 0);
  waitc w = {.fd = p[0], .events = ASYNC_READABLE, .timeout = 0.02};
  double t0 = async_clock();
  async_task *t;
  async_task_spawn(loop, &t, waiter, &w, NULL);
  assert_int_equal(async_loop_run_until_complete(loop, t, NULL), 0);
  assert_int_equal(w.got, -ETIMEDOUT);
  assert_true(async_clock() - t0 >= 0.02);
  async_task_release(t);
  close(p[0]);
  close(p[1]);
  free_loop(loop);
}

/* A timeout of zero or less reports the readiness there is right now,
 * without suspending (the task spawned first never gets to run). */
typedef struct {
  int p[2];
  int ran;
  int rc[6];
} nowait;

static void cancel_cb(void *t) { async_future_cancel(t); }

static void *set_ran(void *arg) {
  *(int *)arg = 1;
  return NULL;
}

static void *nowait_main(void *arg) {
  nowait *n = arg;
  async_task_spawn(async_loop_current(), NULL, set_ran, &n->ran, NULL);
  n->rc[0] = async_fd_wait(n->p[0], ASYNC_READABLE, 0);
  n->rc[1] = async_fd_wait(n->p[0], ASYNC_READABLE, -1.0);
  if (write(n->p[1], "x", 1) != 1) return async_fail(-EIO);
  n->rc[2] = async_fd_wait(n->p[0], ASYNC_READABLE, 0);
  n->rc[3] = async_fd_wait(n->p[1], ASYNC_READABLE | ASYNC_WRITABLE, -5.0);
  int gone = dup(n->p[0]);
  close(gone);
  n->rc[4] = async_fd_wait(gone, ASYNC_READABLE, 0);
  n->rc[5] = n->ran;
  return NULL;
}

static void test_fd_wait_zero_or_less_does_not_suspend(void **state) {
  (void)state;
  async_loop *loop = new_loop();
  nowait n;
  memset(&n, 0, sizeof n);
  assert_int_equal(pipe(n.p), 0);
  async_task *t;
  async_task_spawn(loop, &t, nowait_main, &n, NULL);
  /* Should a wait block, the test ends instead of hanging. */
  async_handle *h;
  async_loop_call_later(loop, 2.0, cancel_cb, t, &h);
  assert_int_equal(async_loop_run_until_complete(loop, t, NULL), 0);
  async_handle_cancel(h);
  assert_int_equal(n.rc[0], -ETIMEDOUT);
  assert_int_equal(n.rc[1], -ETIMEDOUT);
  assert_int_equal(n.rc[2], ASYNC_READABLE);
  assert_int_equal(n.rc[3], ASYNC_WRITABLE);
  assert_int_equal(n.rc[4], -EBADF);
  assert_int_equal(n.rc[5], 0);
  async_task_release(t);
  close(n.p[0]);
  close(n.p[1]);
  free_loop(loop);
}

static void test_fd_several_waiters_and_hangup(void **state) {
  (void)state;
  async_loop *loop = new_loop();
  int sv[2];
  assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
  waitc w[3];
  async_task *t[3];
  for (int i = 0; i < 3; i++) {
    w[i] = (waitc){.fd = sv[0], .events = ASYNC_READABLE, .timeout = 10};
    async_task_spawn(loop, &t[i], waiter, &w[i], NULL);
  }
  spin(loop);
  close(sv[1]); /* hang-up wakes them all */
  for (int i = 0; i < 3; i++) {
    assert_int_equal(async_loop_run_until_complete(loop, t[i], NULL), 0);
    assert_true(w[i].got > 0);
    assert_true(w[i].got & ASYNC_READABLE);
    async_task_release(t[i]);
  }
  close(sv[0]);
  free_loop(loop);
}

static void test_fd_forget_wakes_waiters_with_ebadf(void **state) {
  (void)state;
  async_loop *loop = new_loop();
  int p[2];
  assert_int_equal(pipe(p), 0);
  waitc w = {.fd = p[0], .events = ASYNC_READABLE, .timeout = ASYNC_NO_TIMEOUT};
  async_task *t;
  async_task_spawn(loop, &t, waiter, &w, NULL);
  spin(loop);
  assert_int_equal(async_fd_forget(loop, p[0]), 1);
  assert_int_equal(async_fd_forget(loop, p[0]), 0);
  close(p[0]);
  assert_int_equal(async_loop_run_until_complete(loop, t, NULL), 0);
  assert_int_equal(w.got, -EBADF);
  async_task_release(t);
  close(p[1]);
  assert_int_equal(async_fd_forget(NULL, 0), -EINVAL);
  free_loop(loop);
}

static void test_fd_number_reused_after_close(void **state) {
  (void)state;
  async_loop *loop = new_loop();
  int p[2];
  assert_int_equal(pipe(p), 0);
  int fd = p[0];
  /* Make the loop register fd, then close it behind the loop's back. */
  assert_int_equal(write(p[1], "x", 1), 1);
  waitc w = {.fd = fd, .events = ASYNC_READABLE, .timeout = 1};
  async_task *t;
  async_task_spawn(loop, &t, waiter, &w, NULL);
  async_loop_run_until_complete(loop, t, NULL);
  async_task_release(t);
  assert_int_equal(w.got, ASYNC_READABLE);
  close(p[0]);
  close(p[1]);
  int q[2];
  assert_int_equal(pipe(q), 0);
  assert_int_equal(q[0], fd); /* the same number, a new pipe */
  w = (waitc){.fd = q[0], .events = ASYNC_READABLE, .timeout = 5};
  async_task_spawn(loop, &t, waiter, &w, NULL);
  async_task_spawn(loop, NULL, writer, &q[1], NULL);
  async_loop_run_until_complete(loop, t, NULL);
  assert_int_equal(w.got, ASYNC_READABLE);
  async_task_release(t);
  close(q[0]);
  close(q[1]);
  free_loop(loop);
}

static void test_fd_bad_arguments(void **state) {
  (void)state;
  async_loop *loop = new_loop();
  int p[2];
  assert_int_equal(pipe(p), 0);
  waitc cases[] = {
      {.fd = -1, .events = ASYNC_READABLE, .timeout = 1},
      {.fd = p[0], .events = 0, .timeout = 1},
      {.fd = p[0], .events = 8, .timeout = 1},
      {.fd = p[0], .events = ASYNC_READABLE, .timeout = 0.0 / 0.0},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    async_task *t;
    async_task_spawn(loop, &t, waiter, &cases[i], NULL);
    async_loop_run_until_complete(loop, t, NULL);
    async_task_release(t);
    assert_int_equal(cases[i].got, -EINVAL);
  }
  /* A closed fd: the backend's error, or ready-with-error under poll(2). */
  int fd = p[0];
  close(p[0]);
  close(p[1]);
  waitc w = {.fd = fd, .events = ASYNC_READABLE, .timeout = 1};
  async_task *t;
  async_task_spawn(loop, &t, waiter, &w, NULL);
  async_loop_run_until_complete(loop, t, NULL);
  async_task_release(t);
  assert_true(w.got == -EBADF || w.got == ASYNC_READABLE);
  assert_int_equal(async_fd_wait(0, ASYNC_READABLE, 0), -EPERM);
  free_loop(loop);
}

/* {==== Huge fd numbers (issue 9.4) ====================================== */

/* The process's resident memory, KiB, read while the loop lives: a table
 * grown for one fd number stays committed until the loop is freed. */
static long peak_kib(void) {
  long pages = 0, resident = 0;
  FILE *f = fopen("/proc/self/statm", "r");
  if (!f) return 0;
  if (fscanf(f, "%ld %ld", &pages, &resident) != 2) resident = 0;
  fclose(f);
  return resident * (sysconf(_SC_PAGESIZE) / 1024);
}

#define HUGE_FD_BUDGET_KIB 2048

static void test_fd_huge_bad_number_costs_nothing(void **state) {
  (void)state;
  async_loop *loop = new_loop();
  long before = peak_kib();
  waitc w = {.fd = INT_MAX - 1, .events = ASYNC_READABLE, .timeout = 0};
  assert_int_equal(run_task(loop, waiter, &w, NULL), 0);
  assert_int_equal(w.got, -EBADF);
  w.fd = INT_MAX;
  assert_int_equal(run_task(loop, waiter, &w, NULL), 0);
  assert_int_equal(w.got, -EBADF);
  long grew = peak_kib() - before;
  free_loop(loop);
  if (grew > HUGE_FD_BUDGET_KIB)
    fprintf(stderr, "resident memory grew %ld KiB\n", grew);
  assert_true(grew <= HUGE_FD_BUDGET_KIB);
}

static void test_fd_huge_valid_number(void **state) {
  (void)state;
  struct rlimit old, lim;
  assert_int_equal(getrlimit(RLIMIT_NOFILE, &old), 0);
  /* 1 << 20 where the hard limit allows (or root may raise it). */
  lim.rlim_cur = lim.rlim_max = 1u << 20;
  if (lim.rlim_max < old.rlim_max) lim.rlim_cur = lim.rlim_max = old.rlim_max;
  if (setrlimit(RLIMIT_NOFILE, &lim) != 0) {
    lim.rlim_cur = lim.rlim_max = old.rlim_max;
    assert_int_equal(setrlimit(RLIMIT_NOFILE, &lim), 0);
  }
  int high = lim.rlim_cur > INT_MAX ? INT_MAX : (int)lim.rlim_cur - 1;
  int p[2];
  assert_int_equal(pipe(p), 0);
  assert_int_equal(dup2(p[0], high), high);
  async_loop *loop = new_loop();
  long before = peak_kib();
  waitc w = {.fd = high, .events = ASYNC_READABLE, .timeout = 5};
  async_task *t;
  async_task_spawn(loop, &t, waiter, &w, NULL);
  async_task_spawn(loop, NULL, writer, &p[1], NULL);
  assert_int_equal(async_loop_run_until_complete(loop, t, NULL), 0);
  async_task_release(t);
  assert_int_equal(w.got, ASYNC_READABLE);
  long grew = peak_kib() - before;
  assert_int_equal(async_fd_forget(loop, high), 0);
  free_loop(loop);
  close(high);
  close(p[0]);
  close(p[1]);
  setrlimit(RLIMIT_NOFILE, &old);
  if (grew > HUGE_FD_BUDGET_KIB)
    fprintf(stderr, "fd %d: resident memory grew %ld KiB\n", high, grew);
  assert_true(grew <= HUGE_FD_BUDGET_KIB);
}

/* }==== */

/* {==== An fd closed while waited on, its number reused (issue 9.8) ===== */

static double real_now(void) { return async_clock(); }

/* The old waiter gets -EBADF as soon as a new waiter registers the number
 * for the new file, and the new waiter wakes for the new file's data. */
/* `before`: the number was waited on once already, so the loop keeps its
 * interest and the second wait only re-tells the backend. */
static void closed_then_reused_by_a_new_waiter(void **state, int before) {
  (void)state;
  async_loop *loop = new_loop();
  int p[2];
  assert_int_equal(pipe(p), 0);
  int fd = p[0];
  waitc a = {.fd = fd, .events = ASYNC_READABLE, .timeout = 3};
  async_task *ta, *tb;
  if (before) {
    char c;
    assert_int_equal(write(p[1], "x", 1), 1);
    assert_int_equal(run_task(loop, waiter, &a, NULL), 0);
    assert_int_equal(a.got, ASYNC_READABLE);
    assert_int_equal(read(p[0], &c, 1), 1);
  }
  async_task_spawn(loop, &ta, waiter, &a, NULL);
  spin(loop);  /* a waits */
  close(p[0]); /* misuse: no async_fd_forget */
  close(p[1]);
  int q[2];
  assert_int_equal(pipe(q), 0);
  assert_int_equal(q[0], fd);
  waitc b = {.fd = q[0], .events = ASYNC_READABLE, .timeout = 3};
  double t0 = real_now();
  async_task_spawn(loop, &tb, waiter, &b, NULL);
  async_task_spawn(loop, NULL, writer, &q[1], NULL);
  async_loop_run_until_complete(loop, tb, NULL);
  async_loop_run_until_complete(loop, ta, NULL);
  double took = real_now() - t0;
  async_task_release(ta);
  async_task_release(tb);
  assert_int_equal(a.got, -EBADF);
  assert_int_equal(b.got, ASYNC_READABLE);
  assert_true(took < 2.5); /* neither waited for its timeout */
  async_fd_forget(loop, q[0]);
  close(q[0]);
  close(q[1]);
  free_loop(loop);
}

static void
test_fd_closed_while_waited_then_reused_by_a_new_waiter(void **state) {
  for (int before = 0; before < 2; before++)
    closed_then_reused_by_a_new_waiter(state, before);
}

/* Data on the new file must never wake the old waiter as if its own file
 * were ready. poll watches numbers and sees the new file: it tells the
 * old waiter -EBADF. epoll watches files: the closed one's registration
 * went with it, and the old waiter sleeps to its timeout. */
static void test_fd_closed_while_waited_then_reused_with_data(void **state) {
  (void)state;
  async_loop *loop = new_loop();
  int p[2];
  assert_int_equal(pipe(p), 0);
  int fd = p[0];
  waitc a = {.fd = fd, .events = ASYNC_READABLE, .timeout = 0.5};
  async_task *ta;
  async_task_spawn(loop, &ta, waiter, &a, NULL);
  spin(loop);
  close(p[0]);
  close(p[1]);
  int q[2];
  assert_int_equal(pipe(q), 0);
  assert_int_equal(q[0], fd);
  assert_int_equal(write(q[1], "x", 1), 1);
  async_loop_run_until_complete(loop, ta, NULL);
  async_task_release(ta);
  if (strcmp(async_loop_backend(loop), "poll") == 0)
    assert_int_equal(a.got, -EBADF);
  else
    assert_int_equal(a.got, -ETIMEDOUT);
  /* The number works for a new waiter. */
  waitc b = {.fd = q[0], .events = ASYNC_READABLE, .timeout = 3};
  assert_int_equal(run_task(loop, waiter, &b, NULL), 0);
  assert_int_equal(b.got, ASYNC_READABLE);
  async_fd_forget(loop, q[0]);
  close(q[0]);
  close(q[1]);
  free_loop(loop);
}

/* }==== */

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_fd_readable_after_write),
      cmocka_unit_test(test_fd_timeout),
      cmocka_unit_test(test_fd_wait_zero_or_less_does_not_suspend),
      cmocka_unit_test(test_fd_several_waiters_and_hangup),
      cmocka_unit_test(test_fd_forget_wakes_waiters_with_ebadf),
      cmocka_unit_test(test_fd_number_reused_after_close),
      cmocka_unit_test(test_fd_bad_arguments),
      cmocka_unit_test(test_fd_huge_bad_number_costs_nothing),
      cmocka_unit_test(test_fd_huge_valid_number),
      cmocka_unit_test(test_fd_closed_while_waited_then_reused_by_a_new_waiter),
      cmocka_unit_test(test_fd_closed_while_waited_then_reused_with_data),
  };
  return cmocka_run_group_tests_name("fd", tests, NULL, NULL);
}
