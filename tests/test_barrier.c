/* SPDX-License-Identifier: MIT */
/* The barrier. After CPython's test_locks BarrierTests. */
#include "helpers.h"

static void stop_cb(void *arg) { async_loop_stop(arg); }

static void spin(async_loop *loop) {
  async_loop_call_soon(loop, stop_cb, loop, NULL);
  async_loop_run_forever(loop);
}

typedef struct bw {
  async_barrier *b;
  int id;
  seqlog *log;
  int rc[2]; /* the index (or error) of each cycle */
  int cycles;
} bw;

static void *barrier_task(void *arg) {
  bw *w = arg;
  for (int i = 0; i < w->cycles; i++) {
    w->rc[i] = async_barrier_wait(w->b);
    if (w->log) seqlog_add(w->log, w->id);
    if (w->rc[i] < 0) break;
  }
  return NULL;
}

static void run_all(async_loop *loop, async_task **t, int n) {
  for (int i = 0; i < n; i++) {
    async_loop_run_until_complete(loop, t[i], NULL);
    async_task_release(t[i]);
  }
}

static void test_barrier_trips_with_arrival_indexes(void **state) {
  (void)state;
  async_loop *loop = new_loop();
  async_barrier *b;
  assert_int_equal(async_barrier_new(&b, 3), 0);
  assert_int_equal(async_barrier_parties(b), 3);
  seqlog log = {0};
  bw w[3];
  async_task *t[3];
  for (int i = 0; i < 3; i++) {
    w[i] = (bw){.b = b, .id = i, .log = &log, .cycles = 2};
    async_task_spawn(loop, &t[i], barrier_task, &w[i], NULL);
  }
  run_all(loop, t, 3);
  /* The last to arrive passes first, without suspending; then the others
   * in arrival order. Task 2 goes on first, so it arrives first in the
   * second cycle, and task 1 trips it. */
  int want[] = {2, 0, 1, 1, 2, 0};
  seqlog_expect(&log, want, 6);
  for (int i = 0; i < 3; i++) assert_int_equal(w[i].rc[0], i);
  assert_int_equal(w[2].rc[1], 0);
  assert_int_equal(w[0].rc[1], 1);
  assert_int_equal(w[1].rc[1], 2);
  assert_int_equal(async_barrier_n_waiting(b), 0);
  assert_int_equal(async_barrier_broken(b), 0);
  assert_int_equal(async_barrier_free(b), 0);
  free_loop(loop);
}

static void test_barrier_of_one_never_waits(void **state) {
  (void)state;
  async_loop *loop = new_loop();
  async_barrier *b;
  async_barrier_new(&b, 1);
  bw w = {.b = b, .cycles = 2};
  assert_int_equal(run_task(loop, barrier_task, &w, NULL), 0);
  assert_int_equal(w.rc[0], 0);
  assert_int_equal(w.rc[1], 0);
  assert_int_equal(async_barrier_free(b), 0);
  free_loop(loop);
}

static void test_barrier_cancelled_waiter_no_longer_counts(void **state) {
  (void)state;
  async_loop *loop = new_loop();
  async_barrier *b;
  async_barrier_new(&b, 3);
  bw w[4];
  async_task *t[4];
  for (int i = 0; i < 2; i++) {
    w[i] = (bw){.b = b, .id = i, .cycles = 1};
    async_task_spawn(loop, &t[i], barrier_task, &w[i], NULL);
  }
  spin(loop);
  assert_int_equal(async_barrier_n_waiting(b), 2);
  assert_int_equal(async_barrier_free(b), -EBUSY);
  async_task_cancel(t[0]);
  spin(loop);
  assert_int_equal(async_barrier_n_waiting(b), 1);
  assert_int_equal(w[0].rc[0], -ECANCELED);
  /* A third arrival does not trip it now; a fourth does. */
  for (int i = 2; i < 4; i++) {
    w[i] = (bw){.b = b, .id = i, .cycles = 1};
    async_task_spawn(loop, &t[i], barrier_task, &w[i], NULL);
    spin(loop);
    if (i == 2) assert_int_equal(async_barrier_n_waiting(b), 2);
  }
  run_all(loop, t, 4);
  assert_int_equal(w[1].rc[0], 0);
  assert_int_equal(w[2].rc[0], 1);
  assert_int_equal(w[3].rc[0], 2);
  assert_int_equal(async_barrier_free(b), 0);
  free_loop(loop);
}

static void test_barrier_abort_and_reset(void **state) {
  (void)state;
  async_loop *loop = new_loop();
  async_barrier *b;
  async_barrier_new(&b, 3);
  bw w[2];
  async_task *t[2];
  for (int i = 0; i < 2; i++) {
    w[i] = (bw){.b = b, .id = i, .cycles = 1};
    async_task_spawn(loop, &t[i], barrier_task, &w[i], NULL);
  }
  spin(loop);
  assert_int_equal(async_barrier_abort(b), 2);
  assert_int_equal(async_barrier_broken(b), 1);
  run_all(loop, t, 2);
  assert_int_equal(w[0].rc[0], -ENOTRECOVERABLE);
  assert_int_equal(w[1].rc[0], -ENOTRECOVERABLE);
  bw late = {.b = b, .cycles = 1};
  run_task(loop, barrier_task, &late, NULL);
  assert_int_equal(late.rc[0], -ENOTRECOVERABLE); /* broken: at once */
  /* Reset mends it, and wakes those waiting with the same error. */
  assert_int_equal(async_barrier_reset(b), 0);
  assert_int_equal(async_barrier_broken(b), 0);
  w[0] = (bw){.b = b, .cycles = 1};
  async_task_spawn(loop, &t[0], barrier_task, &w[0], NULL);
  spin(loop);
  assert_int_equal(async_barrier_reset(b), 1);
  run_all(loop, t, 1);
  assert_int_equal(w[0].rc[0], -ENOTRECOVERABLE);
  assert_int_equal(async_barrier_n_waiting(b), 0);
  for (int i = 0; i < 2; i++) {
    w[i] = (bw){.b = b, .cycles = 1};
    async_task_spawn(loop, &t[i], barrier_task, &w[i], NULL);
  }
  spin(loop);
  bw third = {.b = b, .cycles = 1};
  run_task(loop, barrier_task, &third, NULL);
  run_all(loop, t, 2);
  assert_int_equal(third.rc[0], 2);
  assert_int_equal(w[0].rc[0], 0);
  assert_int_equal(w[1].rc[0], 1);
  assert_int_equal(async_barrier_free(b), 0);
  free_loop(loop);
}

/* Issue 10 item 7: let through by the trip, then cancelled before it
 * runs: the cancellation wins, as in asyncio; the others pass all the
 * same, and the next cycle starts empty. */
static void test_barrier_passed_then_cancelled(void **state) {
  (void)state;
  async_loop *loop = new_loop();
  async_barrier *b;
  async_barrier_new(&b, 3);
  bw w[3];
  async_task *t[3];
  for (int i = 0; i < 2; i++) {
    w[i] = (bw){.b = b, .id = i, .cycles = 1};
    async_task_spawn(loop, &t[i], barrier_task, &w[i], NULL);
  }
  spin(loop);
  w[2] = (bw){.b = b, .id = 2, .cycles = 1};
  async_task_spawn(loop, &t[2], barrier_task, &w[2], NULL);
  spin(loop);                                   /* the last party trips it */
  assert_int_equal(w[2].rc[0], 2);              /* without suspending */
  assert_int_equal(async_task_cancel(t[0]), 1); /* passed, not run yet */
  run_all(loop, t, 3);
  assert_int_equal(w[0].rc[0], -ECANCELED);
  assert_int_equal(w[1].rc[0], 1);
  assert_int_equal(async_barrier_n_waiting(b), 0);
  assert_int_equal(async_barrier_broken(b), 0);
  assert_int_equal(async_barrier_free(b), 0);
  free_loop(loop);
}

static void test_barrier_misuse(void **state) {
  (void)state;
  async_barrier *b;
  assert_int_equal(async_barrier_new(&b, 0), -EINVAL);
  assert_int_equal(async_barrier_new(NULL, 2), -EINVAL);
  assert_int_equal(async_barrier_parties(NULL), -EINVAL);
  assert_int_equal(async_barrier_n_waiting(NULL), -EINVAL);
  assert_int_equal(async_barrier_broken(NULL), -EINVAL);
  assert_int_equal(async_barrier_reset(NULL), -EINVAL);
  assert_int_equal(async_barrier_abort(NULL), -EINVAL);
  assert_int_equal(async_barrier_free(NULL), 0);
  assert_int_equal(async_barrier_new(&b, 2), 0);
  assert_int_equal(async_barrier_wait(b), -EPERM); /* outside a task */
  assert_int_equal(async_barrier_free(b), 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_barrier_trips_with_arrival_indexes),
      cmocka_unit_test(test_barrier_of_one_never_waits),
      cmocka_unit_test(test_barrier_cancelled_waiter_no_longer_counts),
      cmocka_unit_test(test_barrier_abort_and_reset),
      cmocka_unit_test(test_barrier_passed_then_cancelled),
      cmocka_unit_test(test_barrier_misuse),
  };
  return cmocka_run_group_tests_name("barrier", tests, NULL, NULL);
}
