/* SPDX-License-Identifier: MIT */
/* The lock: FIFO fairness, no barging, cancellation of waiters, misuse.
 * After CPython's test_locks LockTests. */
#include "helpers.h"

static void stop_cb(void *arg) { async_loop_stop(arg); }

static void spin(async_loop *loop) {
  async_loop_call_soon(loop, stop_cb, loop, NULL);
  async_loop_run_forever(loop);
}

typedef struct locker {
  async_lock *l;
  int id;
  seqlog *log;
  int rc;       /* what acquire returned */
  int held;     /* still holds the lock when done */
  int after;    /* a later suspending call */
  int hold_for; /* yields while holding */
  int release;  /* release before returning */
} locker;

static void *lock_task(void *arg) {
  locker *k = arg;
  k->rc = async_lock_acquire(k->l);
  if (k->log) seqlog_add(k->log, k->id);
  if (k->rc == 0) {
    for (int i = 0; i < k->hold_for; i++) async_yield();
    k->after = async_sleep(0.001);
    if (k->release)
      async_lock_release(k->l);
    else
      k->held = 1;
  }
  return NULL;
}

static void run_all(async_loop *loop, async_task **t, int n) {
  for (int i = 0; i < n; i++) {
    async_loop_run_until_complete(loop, t[i], NULL);
    async_task_release(t[i]);
  }
}

static void test_lock_basics_outside_a_task(void **state) {
  (void)state;
  async_lock *l;
  assert_int_equal(async_lock_new(&l), 0);
  assert_int_equal(async_lock_locked(l), 0);
  assert_int_equal(async_lock_release(l), -EPERM); /* not locked */
  assert_int_equal(async_lock_try_acquire(l), 0);
  assert_int_equal(async_lock_locked(l), 1);
  assert_int_equal(async_lock_try_acquire(l), -EAGAIN);
  assert_int_equal(async_lock_acquire(l), -EPERM); /* outside a task */
  assert_int_equal(async_lock_release(l), 0);
  assert_int_equal(async_lock_locked(l), 0);
  assert_int_equal(async_lock_free(l), 0);
  assert_int_equal(async_lock_new(NULL), -EINVAL);
  assert_int_equal(async_lock_locked(NULL), -EINVAL);
  assert_int_equal(async_lock_release(NULL), -EINVAL);
  assert_int_equal(async_lock_try_acquire(NULL), -EINVAL);
  assert_int_equal(async_lock_free(NULL), 0);
}

static void test_lock_waiters_get_it_in_arrival_order(void **state) {
  (void)state;
  async_loop *loop = new_loop();
  async_lock *l;
  async_lock_new(&l);
  seqlog log = {0};
  locker k[4];
  async_task *t[4];
  for (int i = 0; i < 4; i++) {
    k[i] = (locker){.l = l, .id = i, .log = &log, .hold_for = 3, .release = 1};
    async_task_spawn(loop, &t[i], lock_task, &k[i], NULL);
  }
  run_all(loop, t, 4);
  int want[] = {0, 1, 2, 3};
  seqlog_expect(&log, want, 4);
  for (int i = 0; i < 4; i++) assert_int_equal(k[i].rc, 0);
  assert_int_equal(async_lock_locked(l), 0);
  assert_int_equal(async_lock_free(l), 0);
  free_loop(loop);
}

static void test_lock_release_hands_over_no_barging(void **state) {
  (void)state;
  async_loop *loop = new_loop();
  async_lock *l;
  async_lock_new(&l);
  assert_int_equal(async_lock_try_acquire(l), 0); /* held from outside */
  locker k = {.l = l, .release = 1};
  async_task *t;
  async_task_spawn(loop, &t, lock_task, &k, NULL);
  spin(loop);
  assert_int_equal(async_lock_free(l), -EBUSY);
  assert_int_equal(async_lock_release(l), 0); /* to the waiter */
  assert_int_equal(async_lock_locked(l), 1);
  assert_int_equal(async_lock_try_acquire(l), -EAGAIN); /* no barging */
  run_all(loop, &t, 1);
  assert_int_equal(k.rc, 0);
  assert_int_equal(async_lock_locked(l), 0);
  assert_int_equal(async_lock_free(l), 0);
  free_loop(loop);
}

static void test_lock_cancelled_waiter_never_holds_it(void **state) {
  (void)state;
  async_loop *loop = new_loop();
  async_lock *l;
  async_lock_new(&l);
  async_lock_try_acquire(l);
  locker k[2] = {{.l = l, .id = 1}, {.l = l, .id = 2, .release = 1}};
  async_task *t[2];
  for (int i = 0; i < 2; i++)
    async_task_spawn(loop, &t[i], lock_task, &k[i], NULL);
  spin(loop);
  async_task_cancel(t[0]);
  spin(loop);
  assert_int_equal(async_lock_release(l), 0); /* to the second */
  run_all(loop, t, 2);
  assert_int_equal(k[0].rc, -ECANCELED);
  assert_int_equal(k[0].held, 0);
  assert_int_equal(k[1].rc, 0);
  assert_int_equal(async_lock_locked(l), 0);
  assert_int_equal(async_lock_free(l), 0);
  free_loop(loop);
}

static void test_lock_cancelled_only_waiter_leaves_it_free(void **state) {
  (void)state;
  async_loop *loop = new_loop();
  async_lock *l;
  async_lock_new(&l);
  async_lock_try_acquire(l);
  locker k = {.l = l};
  async_task *t;
  async_task_spawn(loop, &t, lock_task, &k, NULL);
  spin(loop);
  async_task_cancel(t);
  run_all(loop, &t, 1);
  assert_int_equal(k.rc, -ECANCELED);
  assert_int_equal(async_lock_release(l), 0);
  assert_int_equal(async_lock_locked(l), 0); /* nobody got it */
  assert_int_equal(async_lock_free(l), 0);
  free_loop(loop);
}

/* Issue 10 item 7: made the owner, then cancelled before it runs: the
 * cancellation wins (as in asyncio) and the lock goes to the next waiter. */
static void test_lock_handed_over_then_cancelled_passes_it_on(void **state) {
  (void)state;
  async_loop *loop = new_loop();
  async_lock *l;
  async_lock_new(&l);
  async_lock_try_acquire(l);
  seqlog log = {0};
  locker k[2] = {{.l = l, .id = 0, .log = &log, .release = 1},
                 {.l = l, .id = 1, .log = &log, .release = 1}};
  async_task *t[2];
  for (int i = 0; i < 2; i++)
    async_task_spawn(loop, &t[i], lock_task, &k[i], NULL);
  spin(loop);
  async_lock_release(l);   /* handed to the first waiter */
  async_task_cancel(t[0]); /* before it runs */
  run_all(loop, t, 2);
  assert_int_equal(k[0].rc, -ECANCELED); /* it does not hold it */
  assert_int_equal(k[1].rc, 0);          /* the next one got it */
  assert_int_equal(k[1].after, 0);
  int want[] = {0, 1};
  seqlog_expect(&log, want, 2);
  assert_int_equal(async_lock_locked(l), 0); /* and released it */
  assert_int_equal(async_lock_free(l), 0);
  free_loop(loop);
}

/* Nobody next: the lock handed over and refused is free again. */
static void test_lock_handed_over_then_cancelled_unlocks(void **state) {
  (void)state;
  async_loop *loop = new_loop();
  async_lock *l;
  async_lock_new(&l);
  async_lock_try_acquire(l);
  locker k = {.l = l, .release = 1};
  async_task *t;
  async_task_spawn(loop, &t, lock_task, &k, NULL);
  spin(loop);
  async_lock_release(l);
  async_task_cancel(t);
  run_all(loop, &t, 1);
  assert_int_equal(k.rc, -ECANCELED);
  assert_int_equal(async_lock_locked(l), 0);
  assert_int_equal(async_lock_try_acquire(l), 0);
  assert_int_equal(async_lock_release(l), 0);
  assert_int_equal(async_lock_free(l), 0);
  free_loop(loop);
}

/* The lock handed to a waiter that has not run yet is busy: cancelled, it
 * would release it. One given up at loop close before it ran counts
 * itself out. */
static void test_lock_free_waits_for_the_woken_owner(void **state) {
  (void)state;
  for (int close = 0; close < 2; close++) {
    async_loop *loop = new_loop();
    async_lock *l;
    async_lock_new(&l);
    async_lock_try_acquire(l);
    locker k = {.l = l, .release = 1};
    async_task *t;
    async_task_spawn(loop, &t, lock_task, &k, NULL);
    spin(loop);
    async_lock_release(l); /* handed over */
    assert_int_equal(async_lock_free(l), -EBUSY);
    if (close) {
      async_task_release(t);
      free_loop(loop); /* it is given up before it runs */
      assert_int_equal(async_lock_free(l), 0);
    } else {
      run_all(loop, &t, 1);
      assert_int_equal(k.rc, 0);
      assert_int_equal(async_lock_free(l), 0);
      free_loop(loop);
    }
  }
}

/* As the semaphore's stress test: workers take the lock in rounds, and
 * right after a release (the lock handed to the first waiter, woken but
 * not yet run) one now and then cancels every task waiting for it. Never
 * two holders, the lock free at the end, every worker done. */
#define LSTRESS_TASKS 5
#define LSTRESS_ROUNDS 2000

typedef struct lstress {
  async_lock *l;
  async_task *t[LSTRESS_TASKS];
  uint8_t waiting[LSTRESS_TASKS];
  int holders, bad, finished;
  long cancels;
  uint64_t rng;
} lstress;

typedef struct lstress_arg {
  lstress *st;
  int id;
} lstress_arg;

static uint64_t lxs(uint64_t *x) {
  *x ^= *x << 13, *x ^= *x >> 7, *x ^= *x << 17;
  return *x;
}

static void *lstress_worker(void *arg) {
  lstress_arg *a = arg;
  lstress *st = a->st;
  for (int i = 0; i < LSTRESS_ROUNDS;) {
    st->waiting[a->id] = 1;
    int rc = async_lock_acquire(st->l);
    st->waiting[a->id] = 0;
    if (rc == -ECANCELED) {
      st->cancels++;
      continue;
    }
    if (rc) {
      st->bad++;
      break;
    }
    if (++st->holders > 1) st->bad++;
    if (lxs(&st->rng) % 2) async_yield();
    st->holders--;
    if (async_lock_release(st->l)) st->bad++;
    if (lxs(&st->rng) % 4 == 0)
      for (int k = 0; k < LSTRESS_TASKS; k++)
        if (st->waiting[k]) async_task_cancel(st->t[k]);
    i++;
  }
  st->finished++;
  return NULL;
}

static void test_lock_random_cancellations_of_woken_owners(void **state) {
  (void)state;
  async_loop *loop = new_loop();
  lstress st = {.rng = 0x2545F4914F6CDD1Dull};
  lstress_arg a[LSTRESS_TASKS];
  assert_int_equal(async_lock_new(&st.l), 0);
  for (int i = 0; i < LSTRESS_TASKS; i++) {
    a[i] = (lstress_arg){&st, i};
    async_task_spawn(loop, &st.t[i], lstress_worker, &a[i], NULL);
  }
  run_all(loop, st.t, LSTRESS_TASKS);
  assert_int_equal(st.bad, 0);
  assert_int_equal(st.finished, LSTRESS_TASKS);
  assert_int_equal(async_lock_locked(st.l), 0);
  assert_true(st.cancels > 100);
  assert_int_equal(async_lock_free(st.l), 0);
  free_loop(loop);
}

static void *relock(void *arg) {
  locker *k = arg;
  async_lock_acquire(k->l);
  k->rc = async_lock_acquire(k->l);
  async_lock_release(k->l);
  return NULL;
}

static void test_lock_is_not_recursive(void **state) {
  (void)state;
  async_loop *loop = new_loop();
  async_lock *l;
  async_lock_new(&l);
  locker k = {.l = l};
  assert_int_equal(run_task(loop, relock, &k, NULL), 0);
  assert_int_equal(k.rc, -EDEADLK);
  assert_int_equal(async_lock_locked(l), 0);
  assert_int_equal(async_lock_free(l), 0);
  free_loop(loop);
}

/* Mutual exclusion under random cancellations. */
typedef struct mutex_run {
  async_lock *l;
  int inside, overlap, entered;
  uint64_t rng;
  async_task *t[6];
  int running;
} mutex_run;

static uint64_t xs(uint64_t *x) {
  *x ^= *x << 13, *x ^= *x >> 7, *x ^= *x << 17;
  return *x;
}

static void *mutex_worker(void *arg) {
  mutex_run *m = arg;
  for (int i = 0; i < 300; i++) {
    if (async_lock_acquire(m->l) != 0) continue; /* cancelled: not held */
    if (m->inside++) m->overlap++;
    m->entered++;
    async_yield(); /* may be cancelled: still holds it */
    m->inside--;
    async_lock_release(m->l);
  }
  m->running--;
  return NULL;
}

static void *mutex_canceller(void *arg) {
  mutex_run *m = arg;
  while (m->running) {
    uint64_t r = xs(&m->rng);
    for (int k = (int)(r % 3); k > 0; k--) async_yield();
    async_task_cancel(m->t[(r >> 8) % 6]);
  }
  return NULL;
}

static void test_lock_mutual_exclusion_under_cancellation(void **state) {
  (void)state;
  async_loop *loop = new_loop();
  mutex_run m = {.rng = 12345, .running = 6};
  async_lock_new(&m.l);
  for (int i = 0; i < 6; i++)
    async_task_spawn(loop, &m.t[i], mutex_worker, &m, NULL);
  async_task *c;
  async_task_spawn(loop, &c, mutex_canceller, &m, NULL);
  run_all(loop, m.t, 6);
  run_all(loop, &c, 1);
  assert_int_equal(m.overlap, 0);
  assert_true(m.entered > 100);
  assert_true(m.entered < 6 * 300); /* cancellations did hit waiters */
  assert_int_equal(async_lock_locked(m.l), 0);
  assert_int_equal(async_lock_free(m.l), 0);
  free_loop(loop);
}

/* The owner is remembered by identity, not by address: a task that ended
 * holding the lock (any code may release it, as in asyncio) is not taken
 * for a new task whose memory reuses its block. */
static void *hold_and_leave(void *arg) {
  locker *k = arg;
  k->rc = async_lock_acquire(k->l);
  return NULL;
}

static void *release_later(void *arg) {
  locker *k = arg;
  async_yield();
  async_yield();
  k->rc = async_lock_release(k->l);
  return NULL;
}

static void test_lock_owner_is_not_a_reused_address(void **state) {
  (void)state;
  async_loop *loop = new_loop();
  async_lock *l;
  async_lock_new(&l);
  locker a = {.l = l, .rc = 1}, b = {.l = l, .rc = 1}, c = {.l = l, .rc = 1};
  async_task *ta, *tb, *tc;
  async_task_spawn(loop, &ta, hold_and_leave, &a, NULL);
  assert_int_equal(async_loop_run_until_complete(loop, ta, NULL), 0);
  void *old = ta;
  async_task_release(ta); /* its block goes back to the loop's cache */
  spin(loop);             /* and its stack too */
  assert_int_equal(a.rc, 0);
  assert_int_equal(async_lock_locked(l), 1);
  async_task_spawn(loop, &tb, lock_task, &b, NULL);
  assert_ptr_equal(tb, old); /* the premise: the block was reused */
  async_task_spawn(loop, &tc, release_later, &c, NULL);
  async_task *both[] = {tb, tc};
  run_all(loop, both, 2);
  assert_int_equal(b.rc, 0); /* waited, then got it: not -EDEADLK */
  assert_int_equal(c.rc, 0);
  assert_int_equal(b.held, 1);
  free_loop(loop);
  assert_int_equal(async_lock_free(l), 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_lock_basics_outside_a_task),
      cmocka_unit_test(test_lock_waiters_get_it_in_arrival_order),
      cmocka_unit_test(test_lock_release_hands_over_no_barging),
      cmocka_unit_test(test_lock_cancelled_waiter_never_holds_it),
      cmocka_unit_test(test_lock_cancelled_only_waiter_leaves_it_free),
      cmocka_unit_test(test_lock_handed_over_then_cancelled_passes_it_on),
      cmocka_unit_test(test_lock_handed_over_then_cancelled_unlocks),
      cmocka_unit_test(test_lock_free_waits_for_the_woken_owner),
      cmocka_unit_test(test_lock_random_cancellations_of_woken_owners),
      cmocka_unit_test(test_lock_is_not_recursive),
      cmocka_unit_test(test_lock_mutual_exclusion_under_cancellation),
      cmocka_unit_test(test_lock_owner_is_not_a_reused_address),
  };
  return cmocka_run_group_tests_name("lock", tests, NULL, NULL);
}
