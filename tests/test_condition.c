/* SPDX-License-Identifier: MIT */
/* The condition variable. After CPython's test_locks ConditionTests. */
#include "helpers.h"

static void stop_cb(void *arg) { async_loop_stop(arg); }

static void spin(async_loop *loop) {
  async_loop_call_soon(loop, stop_cb, loop, NULL);
  async_loop_run_forever(loop);
}

typedef struct cw {
  async_condition *c;
  int id;
  seqlog *log;
  int rc;    /* what wait returned */
  int held;  /* the task held the lock when wait returned */
  int after; /* a later suspending call, lock released first */
  int done;
} cw;

static void *cond_waiter(void *arg) {
  cw *w = arg;
  if (async_condition_acquire(w->c) != 0) return NULL;
  w->rc = async_condition_wait(w->c);
  w->held = async_condition_locked(w->c);
  if (w->log) seqlog_add(w->log, w->id);
  async_condition_release(w->c);
  w->after = async_sleep(0.001);
  w->done = 1;
  return NULL;
}

static void run_all(async_loop *loop, async_task **t, int n) {
  for (int i = 0; i < n; i++) {
    async_loop_run_until_complete(loop, t[i], NULL);
    async_task_release(t[i]);
  }
}

static async_task *spawn_waiters(async_loop *loop, async_condition *c, cw *w,
                                 async_task **t, int n, seqlog *log) {
  for (int i = 0; i < n; i++) {
    w[i] = (cw){.c = c, .id = i, .log = log};
    async_task_spawn(loop, &t[i], cond_waiter, &w[i], NULL);
  }
  spin(loop);
  return t[0];
}

static void test_condition_notify_wakes_in_order(void **state) {
  (void)state;
  async_loop *loop = new_loop();
  async_condition *c;
  assert_int_equal(async_condition_new(&c, NULL), 0);
  seqlog log = {0};
  cw w[3];
  async_task *t[3];
  spawn_waiters(loop, c, w, t, 3, &log);
  assert_int_equal(log.n, 0);
  assert_int_equal(async_condition_locked(c), 0); /* wait released it */
  assert_int_equal(async_condition_free(c), -EBUSY);
  assert_int_equal(async_condition_notify(c, 1), -EPERM); /* not locked */
  assert_int_equal(async_lock_try_acquire(async_condition_lock(c)), 0);
  assert_int_equal(async_condition_notify(c, 1), 1);
  async_condition_release(c);
  spin(loop);
  spin(loop);
  int want1[] = {0};
  seqlog_expect(&log, want1, 1);
  async_lock_try_acquire(async_condition_lock(c));
  assert_int_equal(async_condition_notify(c, 5), 2);
  assert_int_equal(async_condition_notify(c, 1), 0);
  async_condition_release(c);
  run_all(loop, t, 3);
  int want[] = {0, 1, 2};
  seqlog_expect(&log, want, 3);
  for (int i = 0; i < 3; i++) {
    assert_int_equal(w[i].rc, 0);
    assert_int_equal(w[i].held, 1);
  }
  assert_int_equal(async_condition_free(c), 0);
  free_loop(loop);
}

static void
test_condition_free_refused_until_the_notified_resume(void **state) {
  (void)state;
  async_loop *loop = new_loop();
  async_condition *c;
  assert_int_equal(async_condition_new(&c, NULL), 0);
  cw w[1];
  async_task *t[1];
  spawn_waiters(loop, c, w, t, 1, NULL);
  async_lock_try_acquire(async_condition_lock(c));
  assert_int_equal(async_condition_notify(c, 1), 1);
  async_condition_release(c);
  /* Notified, not yet run: it will take the lock back through c. */
  assert_int_equal(async_condition_free(c), -EBUSY);
  run_all(loop, t, 1);
  assert_int_equal(w[0].rc, 0);
  assert_int_equal(w[0].held, 1);
  assert_int_equal(async_condition_free(c), 0);
  free_loop(loop);
}

static void test_condition_notify_all(void **state) {
  (void)state;
  async_loop *loop = new_loop();
  async_lock *l;
  async_lock_new(&l);
  async_condition *c;
  assert_int_equal(async_condition_new(&c, l), 0); /* an explicit lock */
  assert_ptr_equal(async_condition_lock(c), l);
  seqlog log = {0};
  cw w[3];
  async_task *t[3];
  spawn_waiters(loop, c, w, t, 3, &log);
  async_lock_try_acquire(l);
  assert_int_equal(async_condition_notify_all(c), 3);
  async_lock_release(l);
  run_all(loop, t, 3);
  int want[] = {0, 1, 2};
  seqlog_expect(&log, want, 3);
  assert_int_equal(async_condition_free(c), 0);
  assert_int_equal(async_lock_free(l), 0); /* the caller's lock */
  free_loop(loop);
}

static void test_condition_cancelled_waiter_absorbs_no_notify(void **state) {
  (void)state;
  async_loop *loop = new_loop();
  async_condition *c;
  async_condition_new(&c, NULL);
  seqlog log = {0};
  cw w[2];
  async_task *t[2];
  spawn_waiters(loop, c, w, t, 2, &log);
  async_task_cancel(t[0]);
  async_lock_try_acquire(async_condition_lock(c));
  assert_int_equal(async_condition_notify(c, 1), 1); /* to the second */
  async_condition_release(c);
  run_all(loop, t, 2);
  assert_int_equal(w[0].rc, -ECANCELED);
  assert_int_equal(w[0].held, 1); /* held the lock all the same */
  assert_int_equal(w[1].rc, 0);
  assert_int_equal(async_condition_locked(c), 0);
  assert_int_equal(async_condition_free(c), 0);
  free_loop(loop);
}

/* Issue 10 item 7: notified, then cancelled before it runs: the
 * cancellation wins (as in asyncio), the task still takes the lock back,
 * and the notification goes to the next waiter. */
static void test_condition_cancelled_after_notify_passes_it_on(void **state) {
  (void)state;
  async_loop *loop = new_loop();
  async_condition *c;
  async_condition_new(&c, NULL);
  seqlog log = {0};
  cw w[3];
  async_task *t[3];
  spawn_waiters(loop, c, w, t, 3, &log);
  async_lock_try_acquire(async_condition_lock(c));
  assert_int_equal(async_condition_notify(c, 1), 1);
  async_task_cancel(t[0]); /* notified, has not run yet */
  spin(loop);
  /* It waits for the lock now. */
  assert_int_equal(w[0].done, 0);
  async_condition_release(c);
  async_loop_run_until_complete(loop, t[0], NULL);
  assert_int_equal(w[0].rc, -ECANCELED);
  assert_int_equal(w[0].held, 1);
  assert_int_equal(w[0].after, 0); /* delivered once only */
  /* Exactly one notification passed on: the second wakes, not the third. */
  async_loop_run_until_complete(loop, t[1], NULL);
  assert_int_equal(w[1].rc, 0);
  assert_int_equal(w[2].done, 0);
  async_lock_try_acquire(async_condition_lock(c));
  assert_int_equal(async_condition_notify_all(c), 1);
  async_condition_release(c);
  run_all(loop, t, 3);
  assert_int_equal(w[2].rc, 0);
  int want[] = {0, 1, 2};
  seqlog_expect(&log, want, 3);
  assert_int_equal(async_condition_free(c), 0);
  free_loop(loop);
}

/* Notified, then cancelled (twice) while it takes the lock back: one
 * -ECANCELED, and the notification goes on. */
static void test_condition_cancelled_while_reacquiring(void **state) {
  (void)state;
  async_loop *loop = new_loop();
  async_condition *c;
  async_condition_new(&c, NULL);
  cw w[2];
  async_task *t[2];
  spawn_waiters(loop, c, w, t, 2, NULL);
  async_lock_try_acquire(async_condition_lock(c));
  async_condition_notify(c, 1);
  spin(loop); /* now waiting for the lock */
  async_task_cancel(t[0]);
  spin(loop);
  async_task_cancel(t[0]); /* a second one while still waiting */
  spin(loop);
  assert_int_equal(w[0].done, 0); /* reacquires through cancellations */
  async_condition_release(c);
  run_all(loop, t, 2);
  assert_int_equal(w[0].rc, -ECANCELED);
  assert_int_equal(w[0].held, 1);
  assert_int_equal(w[0].after, 0);
  assert_int_equal(w[1].rc, 0); /* got the notification passed on */
  assert_int_equal(async_condition_free(c), 0);
  free_loop(loop);
}

static void
test_condition_cancelled_before_notify_waits_for_the_lock(void **state) {
  (void)state;
  async_loop *loop = new_loop();
  async_condition *c;
  async_condition_new(&c, NULL);
  cw w[1];
  async_task *t[1];
  spawn_waiters(loop, c, w, t, 1, NULL);
  async_lock_try_acquire(async_condition_lock(c)); /* someone holds it */
  async_task_cancel(t[0]);
  spin(loop);
  spin(loop);
  assert_int_equal(w[0].done, 0);
  async_condition_release(c);
  run_all(loop, t, 1);
  assert_int_equal(w[0].rc, -ECANCELED);
  assert_int_equal(w[0].held, 1);
  assert_int_equal(w[0].after, 0); /* delivered once only */
  assert_int_equal(async_condition_free(c), 0);
  free_loop(loop);
}

typedef struct pred_state {
  async_condition *c;
  int value;
  int calls;
  int rc;
} pred_state;

static int value_is_3(void *arg) {
  pred_state *p = arg;
  p->calls++;
  return p->value == 3;
}

static void *wait_for_3(void *arg) {
  pred_state *p = arg;
  async_condition_acquire(p->c);
  p->rc = async_condition_wait_for(p->c, value_is_3, p);
  async_condition_release(p->c);
  return NULL;
}

static void *bump(void *arg) {
  pred_state *p = arg;
  for (int i = 0; i < 3; i++) {
    async_condition_acquire(p->c);
    p->value++;
    async_condition_notify(p->c, 1);
    async_condition_release(p->c);
    async_yield();
  }
  return NULL;
}

static void test_condition_wait_for_predicate(void **state) {
  (void)state;
  async_loop *loop = new_loop();
  pred_state p = {0};
  async_condition_new(&p.c, NULL);
  async_task *t[2];
  async_task_spawn(loop, &t[0], wait_for_3, &p, NULL);
  async_task_spawn(loop, &t[1], bump, &p, NULL);
  run_all(loop, t, 2);
  assert_int_equal(p.rc, 0);
  assert_int_equal(p.value, 3);
  assert_int_equal(p.calls, 4); /* before waiting, then per notify */
  assert_int_equal(async_condition_free(p.c), 0);
  free_loop(loop);
}

/* Issue 10 item 8: wait_for asks the predicate first, as asyncio's does,
 * so an already true predicate needs neither the lock nor a wait. */
static int always(void *arg) {
  ++*(int *)arg;
  return 1;
}

typedef struct pred_first {
  async_condition *c;
  int calls, rc, rc_held, rc_cancelled;
} pred_first;

static void *wait_for_true(void *arg) {
  pred_first *p = arg;
  p->rc = async_condition_wait_for(p->c, always, &p->calls); /* no lock */
  async_condition_acquire(p->c);
  async_task_cancel(async_task_current());
  /* Served at once: does not suspend, so the request stays pending. */
  p->rc_held = async_condition_wait_for(p->c, always, &p->calls);
  async_condition_release(p->c);
  p->rc_cancelled = async_yield();
  return NULL;
}

static void test_condition_wait_for_asks_the_predicate_first(void **state) {
  (void)state;
  async_loop *loop = new_loop();
  pred_first p = {0};
  async_condition_new(&p.c, NULL);
  assert_int_equal(run_task(loop, wait_for_true, &p, NULL), 0);
  assert_int_equal(p.rc, 0);
  assert_int_equal(p.rc_held, 0);
  assert_int_equal(p.calls, 2);
  assert_int_equal(p.rc_cancelled, -ECANCELED);
  assert_int_equal(async_condition_locked(p.c), 0);
  assert_int_equal(async_condition_free(p.c), 0);
  free_loop(loop);
}

/* One item at a time: the producer adds it, notifies one waiter, and
 * sometimes cancels one of the tasks waiting on the condition at once,
 * at times the notified one; then it waits (yielding) until a consumer took
 * the item. A cancelled consumer retires until the item is taken (or
 * until nobody else waits), so only a notification can bring the item to
 * the waiting ones: one lost with consumers still waiting stalls the
 * producer, which counts it and repairs it with notify_all so that the
 * test ends. Every item is taken exactly once. */
#define CSTRESS_CONSUMERS 4
#define CSTRESS_ITEMS 3000

typedef struct cstress {
  async_condition *c;
  async_event *rehire;
  async_task *t[CSTRESS_CONSUMERS];
  uint8_t waiting[CSTRESS_CONSUMERS], retired[CSTRESS_CONSUMERS];
  int items, taken, producing, stalls, bad;
  long cancels;
  uint64_t rng;
} cstress;

typedef struct cstress_arg {
  cstress *st;
  int id;
} cstress_arg;

static uint64_t cxs(uint64_t *x) {
  *x ^= *x << 13, *x ^= *x >> 7, *x ^= *x << 17;
  return *x;
}

/* An item, or the end. */
static int has_item(void *arg) {
  const cstress *st = arg;
  return st->items > 0 || !st->producing;
}

static void *cstress_consumer(void *arg) {
  cstress_arg *a = arg;
  cstress *st = a->st;
  while (st->producing || st->items) {
    if (st->retired[a->id]) {
      if (async_event_wait(st->rehire)) st->bad++;
      st->retired[a->id] = 0;
      continue;
    }
    if (async_condition_acquire(st->c)) {
      st->bad++;
      break;
    }
    st->waiting[a->id] = 1;
    int rc = async_condition_wait_for(st->c, has_item, st);
    st->waiting[a->id] = 0;
    if (async_condition_locked(st->c) != 1) st->bad++; /* held either way */
    if (rc == 0 && st->items > 0) {
      st->items--;
      st->taken++;
    } else if (rc == -ECANCELED) {
      st->cancels++;
      st->retired[a->id] = 1;
    } else if (rc != 0) {
      st->bad++;
    }
    async_condition_release(st->c);
  }
  return NULL;
}

static int cstress_count(const uint8_t *v) {
  int n = 0;
  for (int k = 0; k < CSTRESS_CONSUMERS; k++) n += v[k];
  return n;
}

static void cstress_rehire(cstress *st) {
  async_event_set(st->rehire);
  async_event_clear(st->rehire);
}

static void *cstress_producer(void *arg) {
  cstress *st = arg;
  for (int i = 0; i < CSTRESS_ITEMS; i++) {
    async_condition_acquire(st->c);
    st->items++;
    async_condition_notify(st->c, 1);
    async_condition_release(st->c);
    uint64_t r = cxs(&st->rng);
    if (r % 3 == 0) /* one of them, so that others may still wait */
      for (int k = (int)((r >> 8) % CSTRESS_CONSUMERS), n = 0;
           n < CSTRESS_CONSUMERS; n++, k = (k + 1) % CSTRESS_CONSUMERS)
        if (st->waiting[k]) {
          async_task_cancel(st->t[k]);
          break;
        }
    for (int spins = 0; st->items; spins++) {
      async_yield();
      if (!cstress_count(st->waiting)) {
        cstress_rehire(st); /* nobody waits: they need no notification */
      } else if (spins == 1000) {
        st->stalls++;
        async_condition_acquire(st->c);
        async_condition_notify_all(st->c);
        async_condition_release(st->c);
      }
    }
    if (cstress_count(st->retired)) cstress_rehire(st);
  }
  st->producing = 0;
  async_condition_acquire(st->c);
  async_condition_notify_all(st->c); /* the last look at `producing` */
  async_condition_release(st->c);
  async_event_set(st->rehire);
  return NULL;
}

static void test_condition_random_cancellations_lose_no_notify(void **state) {
  (void)state;
  async_loop *loop = new_loop();
  cstress st = {.rng = 0x9E3779B97F4A7C15ull, .producing = 1};
  cstress_arg a[CSTRESS_CONSUMERS];
  assert_int_equal(async_condition_new(&st.c, NULL), 0);
  assert_int_equal(async_event_new(&st.rehire), 0);
  for (int i = 0; i < CSTRESS_CONSUMERS; i++) {
    a[i] = (cstress_arg){&st, i};
    async_task_spawn(loop, &st.t[i], cstress_consumer, &a[i], NULL);
  }
  async_task *p;
  async_task_spawn(loop, &p, cstress_producer, &st, NULL);
  run_all(loop, &p, 1);
  run_all(loop, st.t, CSTRESS_CONSUMERS);
  assert_int_equal(st.bad, 0);
  assert_int_equal(st.stalls, 0);
  assert_int_equal(st.taken, CSTRESS_ITEMS);
  assert_true(st.cancels > 100);
  assert_int_equal(async_condition_locked(st.c), 0);
  assert_int_equal(async_condition_free(st.c), 0);
  assert_int_equal(async_event_free(st.rehire), 0);
  free_loop(loop);
}

typedef struct misuse {
  async_condition *c;
  int wait_rc, wait_for_rc, notify_rc;
} misuse;

static int never(void *arg) {
  (void)arg;
  return 0;
}

static void *misuse_task(void *arg) {
  misuse *m = arg;
  m->wait_rc = async_condition_wait(m->c);
  m->wait_for_rc = async_condition_wait_for(m->c, never, NULL);
  m->notify_rc = async_condition_notify_all(m->c);
  return NULL;
}

static void test_condition_misuse(void **state) {
  (void)state;
  async_loop *loop = new_loop();
  misuse m = {0};
  async_condition_new(&m.c, NULL);
  /* The lock not held at all. */
  assert_int_equal(run_task(loop, misuse_task, &m, NULL), 0);
  assert_int_equal(m.wait_rc, -EPERM);
  assert_int_equal(m.wait_for_rc, -EPERM);
  assert_int_equal(m.notify_rc, -EPERM);
  /* Held, but not by the waiting task: wait refuses, notify accepts. */
  assert_int_equal(async_lock_try_acquire(async_condition_lock(m.c)), 0);
  assert_int_equal(run_task(loop, misuse_task, &m, NULL), 0);
  assert_int_equal(m.wait_rc, -EPERM);
  assert_int_equal(m.wait_for_rc, -EPERM);
  assert_int_equal(m.notify_rc, 0);
  assert_int_equal(async_condition_wait(m.c), -EPERM); /* outside a task */
  assert_int_equal(async_condition_notify(m.c, -1), -EINVAL);
  assert_int_equal(async_condition_release(m.c), 0);
  assert_int_equal(async_condition_free(m.c), 0);
  assert_int_equal(async_condition_new(NULL, NULL), -EINVAL);
  assert_int_equal(async_condition_acquire(NULL), -EINVAL);
  assert_int_equal(async_condition_release(NULL), -EINVAL);
  assert_int_equal(async_condition_wait(NULL), -EPERM); /* outside a task */
  assert_int_equal(async_condition_notify(NULL, 1), -EINVAL);
  assert_int_equal(async_condition_locked(NULL), -EINVAL);
  assert_null(async_condition_lock(NULL));
  assert_int_equal(async_condition_free(NULL), 0);
  free_loop(loop);
}

/* A waiter cancelled while parked, not run yet: it will still take the
 * lock back and read the condition, so the free is refused until then. */
static void
test_condition_free_refused_until_the_cancelled_resume(void **state) {
  (void)state;
  async_loop *loop = new_loop();
  async_condition *c;
  assert_int_equal(async_condition_new(&c, NULL), 0);
  cw w[1];
  async_task *t[1];
  spawn_waiters(loop, c, w, t, 1, NULL);
  assert_int_equal(async_future_cancel(t[0]), 1);
  assert_int_equal(async_condition_free(c), -EBUSY);
  run_all(loop, t, 1);
  assert_int_equal(w[0].rc, -ECANCELED);
  assert_int_equal(w[0].held, 1);
  assert_int_equal(async_condition_free(c), 0);
  free_loop(loop);
}

/* A notified waiter that cannot take the lock back (held outside any
 * task) ignores the close's cancellations there and is given up: its
 * count must go with it, or the condition could never be freed. */
static void *cond_waiter_stuck(void *arg) {
  async_condition *c = arg;
  if (async_condition_acquire(c) != 0) return NULL;
  async_condition_wait(c);
  return NULL;
}

static void
test_condition_free_after_close_killed_a_resuming_waiter(void **state) {
  (void)state;
  async_loop *loop = new_loop();
  async_condition *c;
  assert_int_equal(async_condition_new(&c, NULL), 0);
  async_task_spawn(loop, NULL, cond_waiter_stuck, c, NULL);
  spin(loop); /* it waits, the lock free */
  assert_int_equal(async_lock_try_acquire(async_condition_lock(c)), 0);
  assert_int_equal(async_condition_notify(c, 1), 1);
  spin(loop); /* it now waits for the lock, which nobody will release */
  assert_int_equal(async_condition_free(c), -EBUSY);
  free_loop(loop); /* cancels it (ignored there), then gives it up */
  async_condition_release(c);
  assert_int_equal(async_condition_free(c), 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_condition_free_refused_until_the_notified_resume),
      cmocka_unit_test(test_condition_notify_wakes_in_order),
      cmocka_unit_test(test_condition_notify_all),
      cmocka_unit_test(test_condition_cancelled_waiter_absorbs_no_notify),
      cmocka_unit_test(test_condition_cancelled_after_notify_passes_it_on),
      cmocka_unit_test(test_condition_cancelled_while_reacquiring),
      cmocka_unit_test(
          test_condition_cancelled_before_notify_waits_for_the_lock),
      cmocka_unit_test(test_condition_wait_for_predicate),
      cmocka_unit_test(test_condition_wait_for_asks_the_predicate_first),
      cmocka_unit_test(test_condition_random_cancellations_lose_no_notify),
      cmocka_unit_test(test_condition_misuse),
      cmocka_unit_test(test_condition_free_refused_until_the_cancelled_resume),
      cmocka_unit_test(
          test_condition_free_after_close_killed_a_resuming_waiter),
  };
  return cmocka_run_group_tests_name("condition", tests, NULL, NULL);
}
