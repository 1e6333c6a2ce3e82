/* SPDX-License-Identifier: MIT */
/* Semaphores and bounded semaphores. After CPython's test_locks
 * SemaphoreTests and BoundedSemaphoreTests. */
#include "helpers.h"

#include <limits.h>

static void stop_cb(void *arg) { async_loop_stop(arg); }

static void spin(async_loop *loop) {
  async_loop_call_soon(loop, stop_cb, loop, NULL);
  async_loop_run_forever(loop);
}

typedef struct acq {
  async_semaphore *s;
  int id;
  seqlog *log;
  int rc;
  int after;
  int release;
} acq;

static void *acquirer(void *arg) {
  acq *a = arg;
  a->rc = async_semaphore_acquire(a->s);
  if (a->log) seqlog_add(a->log, a->id);
  if (a->rc == 0) {
    a->after = async_sleep(0.001);
    if (a->release) async_semaphore_release(a->s);
  }
  return NULL;
}

static void run_all(async_loop *loop, async_task **t, int n) {
  for (int i = 0; i < n; i++) {
    async_loop_run_until_complete(loop, t[i], NULL);
    async_task_release(t[i]);
  }
}

static void test_semaphore_counts(void **state) {
  (void)state;
  async_semaphore *s;
  assert_int_equal(async_semaphore_new(&s, 2), 0);
  assert_int_equal(async_semaphore_value(s), 2);
  assert_int_equal(async_semaphore_locked(s), 0);
  assert_int_equal(async_semaphore_try_acquire(s), 0);
  assert_int_equal(async_semaphore_try_acquire(s), 0);
  assert_int_equal(async_semaphore_locked(s), 1);
  assert_int_equal(async_semaphore_try_acquire(s), -EAGAIN);
  assert_int_equal(async_semaphore_release(s), 0);
  assert_int_equal(async_semaphore_release(s), 0);
  assert_int_equal(async_semaphore_release(s), 0); /* unbounded: fine */
  assert_int_equal(async_semaphore_value(s), 3);
  assert_int_equal(async_semaphore_acquire(s), -EPERM); /* outside a task */
  assert_int_equal(async_semaphore_free(s), 0);
  assert_int_equal(async_semaphore_new(&s, 0), 0);
  assert_int_equal(async_semaphore_locked(s), 1);
  assert_int_equal(async_semaphore_free(s), 0);
  assert_int_equal(async_semaphore_new(&s, (unsigned)INT_MAX + 1u), -EINVAL);
  assert_int_equal(async_semaphore_new(NULL, 1), -EINVAL);
  assert_int_equal(async_semaphore_value(NULL), -EINVAL);
  assert_int_equal(async_semaphore_release(NULL), -EINVAL);
  assert_int_equal(async_semaphore_free(NULL), 0);
}

static void test_bounded_semaphore_refuses_release_past_initial(void **state) {
  (void)state;
  async_semaphore *s;
  assert_int_equal(async_bounded_semaphore_new(&s, 2), 0);
  assert_int_equal(async_semaphore_release(s), -EOVERFLOW);
  assert_int_equal(async_semaphore_value(s), 2);
  assert_int_equal(async_semaphore_try_acquire(s), 0);
  assert_int_equal(async_semaphore_release(s), 0);
  assert_int_equal(async_semaphore_release(s), -EOVERFLOW);
  assert_int_equal(async_semaphore_free(s), 0);
  assert_int_equal(async_bounded_semaphore_new(&s, 0), 0);
  assert_int_equal(async_semaphore_release(s), -EOVERFLOW);
  assert_int_equal(async_semaphore_free(s), 0);
}

static void test_semaphore_waiters_fifo_no_barging(void **state) {
  (void)state;
  async_loop *loop = new_loop();
  async_semaphore *s;
  async_bounded_semaphore_new(&s, 1);
  async_semaphore_try_acquire(s);
  seqlog log = {0};
  acq a[3];
  async_task *t[3];
  for (int i = 0; i < 3; i++) {
    a[i] = (acq){.s = s, .id = i, .log = &log, .release = 1};
    async_task_spawn(loop, &t[i], acquirer, &a[i], NULL);
  }
  spin(loop);
  assert_int_equal(log.n, 0);
  assert_int_equal(async_semaphore_free(s), -EBUSY);
  assert_int_equal(async_semaphore_release(s), 0); /* to the first */
  assert_int_equal(async_semaphore_value(s), 0);
  assert_int_equal(async_semaphore_try_acquire(s), -EAGAIN); /* no barging */
  run_all(loop, t, 3);
  int want[] = {0, 1, 2};
  seqlog_expect(&log, want, 3);
  assert_int_equal(async_semaphore_value(s), 1);
  assert_int_equal(async_semaphore_free(s), 0);
  free_loop(loop);
}

static void test_semaphore_cancelled_waiter_takes_no_permit(void **state) {
  (void)state;
  async_loop *loop = new_loop();
  async_semaphore *s;
  async_bounded_semaphore_new(&s, 1);
  async_semaphore_try_acquire(s);
  acq a[2] = {{.s = s, .release = 1}, {.s = s, .release = 1}};
  async_task *t[2];
  for (int i = 0; i < 2; i++)
    async_task_spawn(loop, &t[i], acquirer, &a[i], NULL);
  spin(loop);
  async_task_cancel(t[0]);
  spin(loop);
  assert_int_equal(async_semaphore_release(s), 0); /* to the second */
  run_all(loop, t, 2);
  assert_int_equal(a[0].rc, -ECANCELED);
  assert_int_equal(a[1].rc, 0);
  assert_int_equal(async_semaphore_value(s), 1); /* no permit lost */
  assert_int_equal(async_semaphore_free(s), 0);
  free_loop(loop);
}

/* Issue 10 item 7: handed the permit, then cancelled before it runs: the
 * cancellation wins (as in asyncio) and the permit goes to the next. */
static void
test_semaphore_served_then_cancelled_passes_the_permit_on(void **state) {
  (void)state;
  async_loop *loop = new_loop();
  async_semaphore *s;
  async_bounded_semaphore_new(&s, 1);
  async_semaphore_try_acquire(s);
  seqlog log = {0};
  acq a[2] = {{.s = s, .id = 0, .log = &log, .release = 1},
              {.s = s, .id = 1, .log = &log, .release = 1}};
  async_task *t[2];
  for (int i = 0; i < 2; i++)
    async_task_spawn(loop, &t[i], acquirer, &a[i], NULL);
  spin(loop);
  async_semaphore_release(s); /* handed to the first */
  async_task_cancel(t[0]);    /* before it runs */
  run_all(loop, t, 2);
  assert_int_equal(a[0].rc, -ECANCELED); /* took no permit */
  assert_int_equal(a[1].rc, 0);
  int want[] = {0, 1};
  seqlog_expect(&log, want, 2);
  assert_int_equal(async_semaphore_value(s), 1); /* none lost, none made */
  assert_int_equal(async_semaphore_free(s), 0);
  free_loop(loop);
}

static void
test_semaphore_served_then_cancelled_gives_the_permit_back(void **state) {
  (void)state;
  async_loop *loop = new_loop();
  async_semaphore *s;
  async_bounded_semaphore_new(&s, 1);
  async_semaphore_try_acquire(s);
  acq a = {.s = s, .release = 1};
  async_task *t;
  async_task_spawn(loop, &t, acquirer, &a, NULL);
  spin(loop);
  async_semaphore_release(s);
  async_task_cancel(t);
  run_all(loop, &t, 1);
  assert_int_equal(a.rc, -ECANCELED);
  assert_int_equal(async_semaphore_value(s), 1);
  assert_int_equal(async_semaphore_release(s), -EOVERFLOW); /* not doubled */
  assert_int_equal(async_semaphore_free(s), 0);
  free_loop(loop);
}

/* A permit handed to a waiter that has not run yet keeps the semaphore
 * busy; one given up at loop close before it ran counts itself out. */
static void test_semaphore_free_waits_for_the_woken_waiter(void **state) {
  (void)state;
  for (int close = 0; close < 2; close++) {
    async_loop *loop = new_loop();
    async_semaphore *s;
    async_semaphore_new(&s, 0);
    acq a = {.s = s, .release = 1};
    async_task *t;
    async_task_spawn(loop, &t, acquirer, &a, NULL);
    spin(loop);
    async_semaphore_release(s); /* handed over */
    assert_int_equal(async_semaphore_free(s), -EBUSY);
    if (close) {
      async_task_release(t);
      free_loop(loop);
      assert_int_equal(async_semaphore_free(s), 0);
    } else {
      run_all(loop, &t, 1);
      assert_int_equal(a.rc, 0);
      assert_int_equal(async_semaphore_free(s), 0);
      free_loop(loop);
    }
  }
}

/* Workers take and give back permits in rounds; right after a release
 * (which hands the permit to the first waiter, woken but not yet run) a
 * worker now and then cancels every task waiting for one. Never more
 * holders than permits, no permit lost or made, and every worker finishes
 * its rounds (a lost permit would leave them waiting forever). */
#define SSTRESS_TASKS 6
#define SSTRESS_ROUNDS 2000
#define SSTRESS_PERMITS 2

typedef struct sstress {
  async_semaphore *s;
  async_task *t[SSTRESS_TASKS];
  uint8_t waiting[SSTRESS_TASKS];
  int holders, bad, finished;
  long cancels, pokes;
  uint64_t rng;
} sstress;

typedef struct sstress_arg {
  sstress *st;
  int id;
} sstress_arg;

static uint64_t sxs(uint64_t *x) {
  *x ^= *x << 13, *x ^= *x >> 7, *x ^= *x << 17;
  return *x;
}

static void *sstress_worker(void *arg) {
  sstress_arg *a = arg;
  sstress *st = a->st;
  for (int i = 0; i < SSTRESS_ROUNDS;) {
    st->waiting[a->id] = 1;
    int rc = async_semaphore_acquire(st->s);
    st->waiting[a->id] = 0;
    if (rc == -ECANCELED) {
      st->cancels++;
      continue;
    }
    if (rc) {
      st->bad++;
      break;
    }
    if (++st->holders > SSTRESS_PERMITS) st->bad++;
    if (sxs(&st->rng) % 2) async_yield(); /* hold it across a switch */
    st->holders--;
    if (async_semaphore_release(st->s)) st->bad++;
    if (sxs(&st->rng) % 4 == 0) {
      st->pokes++;
      for (int k = 0; k < SSTRESS_TASKS; k++)
        if (st->waiting[k]) async_task_cancel(st->t[k]);
    }
    i++;
  }
  st->finished++;
  return NULL;
}

static void test_semaphore_random_cancellations_lose_no_permit(void **state) {
  (void)state;
  async_loop *loop = new_loop();
  sstress st = {.rng = 0x9E3779B97F4A7C15ull};
  sstress_arg a[SSTRESS_TASKS];
  assert_int_equal(async_bounded_semaphore_new(&st.s, SSTRESS_PERMITS), 0);
  for (int i = 0; i < SSTRESS_TASKS; i++) {
    a[i] = (sstress_arg){&st, i};
    async_task_spawn(loop, &st.t[i], sstress_worker, &a[i], NULL);
  }
  run_all(loop, st.t, SSTRESS_TASKS);
  assert_int_equal(st.bad, 0);
  assert_int_equal(st.finished, SSTRESS_TASKS);
  assert_int_equal(st.holders, 0);
  assert_int_equal(async_semaphore_value(st.s), SSTRESS_PERMITS);
  assert_true(st.cancels > 100);
  assert_true(st.pokes > 100);
  assert_int_equal(async_semaphore_free(st.s), 0);
  free_loop(loop);
}

/* A task that releases and at once acquires again does not overtake the
 * waiter woken by its release, even when that one is then cancelled. */
typedef struct recycler {
  async_semaphore *s;
  seqlog *log;
  int rc;
} recycler;

static void *release_and_reacquire(void *arg) {
  recycler *r = arg;
  async_semaphore_release(r->s); /* wakes the waiter */
  r->rc = async_semaphore_acquire(r->s);
  seqlog_add(r->log, 9);
  if (r->rc == 0) async_semaphore_release(r->s);
  return NULL;
}

static void test_semaphore_reacquire_does_not_overtake(void **state) {
  (void)state;
  for (int cancel = 0; cancel < 2; cancel++) {
    async_loop *loop = new_loop();
    async_semaphore *s;
    async_bounded_semaphore_new(&s, 1);
    async_semaphore_try_acquire(s); /* the recycler's permit */
    seqlog log = {0};
    acq a = {.s = s, .id = 0, .log = &log, .release = 1};
    recycler r = {.s = s, .log = &log};
    async_task *t[2];
    async_task_spawn(loop, &t[0], acquirer, &a, NULL);
    spin(loop); /* it waits */
    async_task_spawn(loop, &t[1], release_and_reacquire, &r, NULL);
    spin(loop); /* released, then waits behind */
    assert_int_equal(log.n, 0);
    if (cancel) async_task_cancel(t[0]); /* woken, not run yet */
    run_all(loop, t, 2);
    assert_int_equal(a.rc, cancel ? -ECANCELED : 0);
    assert_int_equal(r.rc, 0);
    int want[] = {0, 9}; /* the waiter's turn came first */
    seqlog_expect(&log, want, 2);
    assert_int_equal(async_semaphore_value(s), 1);
    assert_int_equal(async_semaphore_free(s), 0);
    free_loop(loop);
  }
}

/* At most `limit` tasks inside at once, under cancellations. */
typedef struct limiter {
  async_semaphore *s;
  int inside, max_inside, entered, running;
  uint64_t rng;
  async_task *t[8];
} limiter;

static void *limited(void *arg) {
  limiter *m = arg;
  for (int i = 0; i < 200; i++) {
    if (async_semaphore_acquire(m->s) != 0) continue;
    if (++m->inside > m->max_inside) m->max_inside = m->inside;
    m->entered++;
    async_yield();
    m->inside--;
    async_semaphore_release(m->s);
  }
  m->running--;
  return NULL;
}

static void *limit_canceller(void *arg) {
  limiter *m = arg;
  while (m->running) {
    uint64_t *x = &m->rng;
    *x ^= *x << 13, *x ^= *x >> 7, *x ^= *x << 17;
    async_yield();
    async_task_cancel(m->t[(*x >> 8) % 8]);
  }
  return NULL;
}

static void test_semaphore_limits_concurrency_under_cancellation(void **state) {
  (void)state;
  async_loop *loop = new_loop();
  limiter m = {.rng = 777, .running = 8};
  async_bounded_semaphore_new(&m.s, 3);
  for (int i = 0; i < 8; i++)
    async_task_spawn(loop, &m.t[i], limited, &m, NULL);
  async_task *c;
  async_task_spawn(loop, &c, limit_canceller, &m, NULL);
  run_all(loop, m.t, 8);
  run_all(loop, &c, 1);
  assert_int_equal(m.max_inside, 3);
  assert_true(m.entered < 8 * 200);
  assert_int_equal(async_semaphore_value(m.s), 3); /* every permit back */
  assert_int_equal(async_semaphore_free(m.s), 0);
  free_loop(loop);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_semaphore_counts),
      cmocka_unit_test(test_bounded_semaphore_refuses_release_past_initial),
      cmocka_unit_test(test_semaphore_waiters_fifo_no_barging),
      cmocka_unit_test(test_semaphore_cancelled_waiter_takes_no_permit),
      cmocka_unit_test(
          test_semaphore_served_then_cancelled_passes_the_permit_on),
      cmocka_unit_test(
          test_semaphore_served_then_cancelled_gives_the_permit_back),
      cmocka_unit_test(test_semaphore_reacquire_does_not_overtake),
      cmocka_unit_test(test_semaphore_free_waits_for_the_woken_waiter),
      cmocka_unit_test(test_semaphore_random_cancellations_lose_no_permit),
      cmocka_unit_test(test_semaphore_limits_concurrency_under_cancellation),
  };
  return cmocka_run_group_tests_name("semaphore", tests, NULL, NULL);
}
