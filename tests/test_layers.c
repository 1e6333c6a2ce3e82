/* SPDX-License-Identifier: MIT */
/* The layers hold: this program links the os and core object libraries
 * alone (tests/CMakeLists.txt), so the day a core file calls into compose,
 * sync or io again, it stops linking. What it runs is the core's whole
 * life cycle: spawn, sleep, await, cancel, an fd wait, callbacks, close. */
#include "helpers.h"

#include <unistd.h>

static void *sleeper(void *arg) {
  int rc = async_sleep(0.001);
  return IPTR(rc == 0 ? PTRI(arg) : rc);
}

static void *victim(void *arg) {
  int *rc = arg;
  *rc = async_sleep(3600);
  return NULL;
}

typedef struct {
  int spawned, awaited, slept, cancel_rc, victim_rc, fd_rc, called;
} outcome;

static void on_call(void *arg) { ((outcome *)arg)->called++; }

static void *main_task(void *arg) {
  outcome *o = arg;
  async_task *a = NULL, *v = NULL;
  o->spawned =
      async_task_spawn(async_loop_current(), &a, sleeper, IPTR(7), NULL);
  if (o->spawned) return NULL;
  void *res = NULL;
  o->awaited = async_await(a, &res);
  o->slept = PTRI(res);
  async_task_release(a);

  o->victim_rc = 1;
  if (async_task_spawn(async_loop_current(), &v, victim, &o->victim_rc, NULL) ==
      0) {
    async_yield();
    o->cancel_rc = async_task_cancel(v);
    async_await(v, NULL);
    async_task_release(v);
  }

  int p[2];
  if (pipe(p) == 0) {
    if (write(p[1], "x", 1) == 1)
      o->fd_rc = async_fd_wait(p[0], ASYNC_READABLE, 1.0);
    async_fd_forget(async_loop_current(), p[0]);
    close(p[0]);
    close(p[1]);
  }
  async_loop_call_soon(async_loop_current(), on_call, o, NULL);
  async_yield();
  return NULL;
}

static void test_layers_core_alone(void **state) {
  (void)state;
  outcome o = {0};
  /* Not async_run: it lives above, in io (it watches SIGINT). */
  async_loop *loop = NULL;
  async_task *t = NULL;
  assert_int_equal(async_loop_new(&loop, NULL), 0);
  assert_int_equal(async_task_spawn(loop, &t, main_task, &o, NULL), 0);
  assert_int_equal(async_loop_run_until_complete(loop, t, NULL), 0);
  assert_int_equal(async_task_release(t), 0);
  assert_int_equal(async_loop_free(loop), 0);
  assert_int_equal(o.spawned, 0);
  assert_int_equal(o.awaited, 0);
  assert_int_equal(o.slept, 7);
  assert_int_equal(o.cancel_rc, 1);
  assert_int_equal(o.victim_rc, -ECANCELED);
  assert_int_equal(o.fd_rc, ASYNC_READABLE);
  assert_int_equal(o.called, 1);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_layers_core_alone),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
