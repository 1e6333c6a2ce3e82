/* SPDX-License-Identifier: MIT */
/* wait: FIRST_COMPLETED, FIRST_EXCEPTION, ALL_COMPLETED, the timeout that
 * cancels nothing, done and pending sets. In the spirit of CPython's
 * test_asyncio/test_tasks.py wait tests. */
#include "vclock_helpers.h"

#include <math.h>

static void cancel_cb(void *f) { async_future_cancel(f); }

#define N 3

typedef struct {
  sleeper s[N];
  async_return_when when;
  double timeout;
  int rc;
  double at;
  int done[N], pending[N]; /* indexes, in the order handed back */
  double end;
} waitrun;

static int index_of(async_task *const *t, async_future *f) {
  for (int i = 0; i < N; i++)
    if (t[i] == f) return i;
  return -1;
}

static void *waiter(void *arg) {
  waitrun *w = arg;
  async_task *t[N];
  async_future *done[N], *pending[N];
  for (int i = 0; i < N; i++) t[i] = async_spawn(sleeper_fn, &w->s[i]);
  w->rc = async_wait(t, N, w->when, w->timeout, done, pending);
  w->at = vnow();
  for (int i = 0; i < N; i++) w->done[i] = w->pending[i] = -1;
  if (w->rc >= 0) {
    for (int i = 0; i < w->rc; i++) w->done[i] = index_of(t, done[i]);
    for (int i = 0; i < N - w->rc; i++) w->pending[i] = index_of(t, pending[i]);
  }
  for (int i = 0; i < N; i++) {
    async_await(t[i], NULL);
    async_task_release(t[i]);
  }
  return NULL;
}

static void run_wait(waitrun *w) {
  assert_int_equal(vrun(waiter, w, NULL, &w->end), 0);
}

static void test_wait_all_completed(void **state) {
  (void)state;
  waitrun w = {.s = {{.delay = 2}, {.delay = 1, .fail = -EIO}, {.delay = 3}},
               .when = ASYNC_ALL_COMPLETED,
               .timeout = ASYNC_NO_TIMEOUT};
  run_wait(&w);
  assert_int_equal(w.rc, 3);
  assert_true(w.at == 3.0);
  for (int i = 0; i < N; i++) assert_int_equal(w.done[i], i);
}

static void test_wait_first_completed(void **state) {
  (void)state;
  waitrun w = {.s = {{.delay = 2}, {.delay = 3}, {.delay = 1}},
               .when = ASYNC_FIRST_COMPLETED,
               .timeout = ASYNC_NO_TIMEOUT};
  run_wait(&w);
  assert_int_equal(w.rc, 1);
  assert_true(w.at == 1.0);
  assert_int_equal(w.done[0], 2);
  assert_int_equal(w.pending[0], 0); /* argument order */
  assert_int_equal(w.pending[1], 1);
  /* Nothing cancelled: the others finished on their own. */
  assert_int_equal(w.s[0].slept, 0);
  assert_int_equal(w.s[1].slept, 0);
  assert_true(w.end == 3.0);
}

static void test_wait_first_exception(void **state) {
  (void)state;
  waitrun w = {.s = {{.delay = 1}, {.delay = 2, .fail = -EIO}, {.delay = 5}},
               .when = ASYNC_FIRST_EXCEPTION,
               .timeout = ASYNC_NO_TIMEOUT};
  run_wait(&w);
  assert_int_equal(w.rc, 2);
  assert_true(w.at == 2.0);
  assert_int_equal(w.done[0], 0);
  assert_int_equal(w.done[1], 1);
  assert_int_equal(w.pending[0], 2);
}

static void test_wait_first_exception_without_one_waits_for_all(void **state) {
  (void)state;
  waitrun w = {.s = {{.delay = 1}, {.delay = 2}, {.delay = 4}},
               .when = ASYNC_FIRST_EXCEPTION,
               .timeout = ASYNC_NO_TIMEOUT};
  run_wait(&w);
  assert_int_equal(w.rc, 3);
  assert_true(w.at == 4.0);
}

/* A cancelled future is not an exception for FIRST_EXCEPTION. */
typedef struct {
  int rc;
  double at;
} fe_cancel;

static void *first_exception_cancelled(void *arg) {
  fe_cancel *c = arg;
  sleeper s[2] = {{.delay = 5}, {.delay = 3}};
  async_task *t[2] = {async_spawn(sleeper_fn, &s[0]),
                      async_spawn(sleeper_fn, &s[1])};
  async_loop_call_later(async_loop_current(), 1.0, cancel_cb, t[0], NULL);
  c->rc = async_wait(t, 2, ASYNC_FIRST_EXCEPTION, ASYNC_NO_TIMEOUT, NULL, NULL);
  c->at = vnow();
  for (int i = 0; i < 2; i++) {
    async_await(t[i], NULL);
    async_task_release(t[i]);
  }
  return NULL;
}

static void test_wait_first_exception_ignores_cancelled(void **state) {
  (void)state;
  fe_cancel c = {0, 0};
  assert_int_equal(vrun(first_exception_cancelled, &c, NULL, NULL), 0);
  assert_int_equal(c.rc, 2);
  assert_true(c.at == 3.0);
}

static void test_wait_timeout_cancels_nothing(void **state) {
  (void)state;
  waitrun w = {.s = {{.delay = 1}, {.delay = 60}, {.delay = 3600}},
               .when = ASYNC_ALL_COMPLETED,
               .timeout = 10};
  run_wait(&w);
  assert_int_equal(w.rc, 1); /* not an error */
  assert_true(w.at == 10.0);
  assert_int_equal(w.done[0], 0);
  assert_int_equal(w.pending[0], 1);
  assert_int_equal(w.pending[1], 2);
  assert_int_equal(w.s[1].slept, 0);
  assert_int_equal(w.s[2].slept, 0);
  assert_true(w.end == 3600.0);
}

static void test_wait_zero_timeout_only_looks(void **state) {
  (void)state;
  waitrun w = {.s = {{.delay = 1}, {.delay = 2}, {.delay = 3}},
               .when = ASYNC_FIRST_COMPLETED,
               .timeout = 0};
  run_wait(&w);
  assert_int_equal(w.rc, 0);
  assert_true(w.at == 0.0);
  for (int i = 0; i < N; i++) assert_int_equal(w.pending[i], i);
}

/* A negative timeout has expired already: it only looks, as 0 does
 * (before, it meant no limit). */
static void test_wait_negative_timeout_only_looks(void **state) {
  (void)state;
  waitrun w = {.s = {{.delay = 1}, {.delay = 2}, {.delay = 3}},
               .when = ASYNC_FIRST_COMPLETED,
               .timeout = -1.0};
  run_wait(&w);
  assert_int_equal(w.rc, 0);
  assert_true(w.at == 0.0);
  for (int i = 0; i < N; i++) assert_int_equal(w.pending[i], i);
}

/* Cancelling the waiting task: -ECANCELED, the futures carry on. */
typedef struct {
  sleeper s[2];
  int rc;
  double at;
  int later;
} wcancel;

static void *wait_cancelled(void *arg) {
  wcancel *c = arg;
  async_task *t[2] = {async_spawn(sleeper_fn, &c->s[0]),
                      async_spawn(sleeper_fn, &c->s[1])};
  async_loop_call_later(async_loop_current(), 1.0, cancel_cb,
                        async_task_current(), NULL);
  c->rc = async_wait(t, 2, ASYNC_ALL_COMPLETED, 100, NULL, NULL);
  c->at = vnow();
  c->later =
      async_wait(t, 2, ASYNC_ALL_COMPLETED, ASYNC_NO_TIMEOUT, NULL, NULL);
  for (int i = 0; i < 2; i++) async_task_release(t[i]);
  return NULL;
}

static void test_wait_cancelled_leaves_futures_running(void **state) {
  (void)state;
  wcancel c = {.s = {{.delay = 2}, {.delay = 3}}};
  double end;
  assert_int_equal(vrun(wait_cancelled, &c, NULL, &end), 0);
  assert_int_equal(c.rc, -ECANCELED);
  assert_true(c.at == 1.0);
  assert_int_equal(c.s[0].slept, 0);
  assert_int_equal(c.s[1].slept, 0);
  assert_int_equal(c.later, 2);
  assert_true(end == 3.0);
}

/* Bare futures, duplicates, n == 0, done ones. */
typedef struct {
  int empty, dup, done_first;
  async_future *d[3], *p[3];
  async_future *f[2];
} misc;

static void resolve_cb(void *f) { async_future_set_result(f, NULL); }

static void *wait_misc(void *arg) {
  misc *m = arg;
  async_loop *loop = async_loop_current();
  m->empty =
      async_wait(NULL, 0, ASYNC_FIRST_COMPLETED, ASYNC_NO_TIMEOUT, NULL, NULL);
  async_future_new(loop, &m->f[0]);
  async_future_new(loop, &m->f[1]);
  async_loop_call_later(loop, 1.0, resolve_cb, m->f[1], NULL);
  async_future *list[3] = {m->f[0], m->f[1], m->f[1]};
  m->dup =
      async_wait(list, 3, ASYNC_FIRST_COMPLETED, ASYNC_NO_TIMEOUT, m->d, m->p);
  m->done_first = async_wait(list, 3, ASYNC_FIRST_COMPLETED, ASYNC_NO_TIMEOUT,
                             NULL, NULL); /* at once */
  async_future_release(m->f[0]);
  async_future_release(m->f[1]);
  return NULL;
}

static void test_wait_bare_futures_duplicates_and_empty(void **state) {
  (void)state;
  misc m;
  memset(&m, 0, sizeof m);
  double end;
  assert_int_equal(vrun(wait_misc, &m, NULL, &end), 0);
  /* asyncio: an empty set is a ValueError; a set holds a future once. */
  assert_int_equal(m.empty, -EINVAL);
  assert_int_equal(m.dup, 1);
  assert_ptr_equal(m.d[0], m.f[1]);
  assert_null(m.d[1]); /* past the last one written: untouched */
  assert_ptr_equal(m.p[0], m.f[0]);
  assert_null(m.p[1]);
  assert_int_equal(m.done_first, 1);
  assert_true(end == 1.0);
}

/* Repeats, many of them (the sorted path): ALL_COMPLETED waits for each
 * distinct future once, and reports each once, by its first entry. */
#define NREP 100

typedef struct {
  int rc, rc_first;
  double at;
  int done_idx[NREP], pending_idx[NREP];
} repeats;

static void *wait_repeats(void *arg) {
  repeats *r = arg;
  async_loop *loop = async_loop_current();
  async_future *f[3], *list[NREP], *done[NREP], *pending[NREP];
  for (int i = 0; i < 3; i++) async_future_new(loop, &f[i]);
  for (int i = 0; i < NREP; i++) list[i] = f[(i * 7 + 2) % 3]; /* 2, 0, 1 */
  async_future_set_result(f[0], NULL);
  async_loop_call_later(loop, 1.0, resolve_cb, f[1], NULL);
  async_loop_call_later(loop, 2.0, resolve_cb, f[2], NULL);
  memset(done, 0, sizeof done);
  memset(pending, 0, sizeof pending);
  r->rc_first = async_wait(list, 5, ASYNC_FIRST_COMPLETED, ASYNC_NO_TIMEOUT,
                           done, pending); /* f[0] done already */
  for (int i = 0; i < NREP; i++) {
    r->done_idx[i] = r->pending_idx[i] = -1;
    for (int k = 0; k < 3; k++) {
      if (done[i] == f[k]) r->done_idx[i] = k;
      if (pending[i] == f[k]) r->pending_idx[i] = k;
    }
  }
  r->rc =
      async_wait(list, NREP, ASYNC_ALL_COMPLETED, ASYNC_NO_TIMEOUT, NULL, NULL);
  r->at = vnow();
  for (int i = 0; i < 3; i++) async_future_release(f[i]);
  return NULL;
}

static void test_wait_counts_a_repeated_future_once(void **state) {
  (void)state;
  repeats r;
  memset(&r, 0, sizeof r);
  assert_int_equal(vrun(wait_repeats, &r, NULL, NULL), 0);
  assert_int_equal(r.rc_first, 1);
  assert_int_equal(r.done_idx[0], 0);
  assert_int_equal(r.done_idx[1], -1);
  assert_int_equal(r.pending_idx[0], 2); /* first entry order: 2, then 1 */
  assert_int_equal(r.pending_idx[1], 1);
  assert_int_equal(r.pending_idx[2], -1);
  assert_int_equal(r.rc, 3);
  assert_true(r.at == 2.0);
}

typedef struct {
  int errs[5];
} wmisuse;

static void *wait_misuse(void *arg) {
  wmisuse *m = arg;
  async_task *self = async_task_current();
  async_future *f;
  async_future_new(async_loop_current(), &f);
  m->errs[0] =
      async_wait(&f, 1, (async_return_when)7, ASYNC_NO_TIMEOUT, NULL, NULL);
  m->errs[1] = async_wait(&f, 1, ASYNC_ALL_COMPLETED, NAN, NULL, NULL);
  m->errs[2] =
      async_wait(&self, 1, ASYNC_ALL_COMPLETED, ASYNC_NO_TIMEOUT, NULL, NULL);
  m->errs[3] =
      async_wait(NULL, 1, ASYNC_ALL_COMPLETED, ASYNC_NO_TIMEOUT, NULL, NULL);
  async_future_release(f);
  return NULL;
}

static void test_wait_misuse(void **state) {
  (void)state;
  assert_int_equal(
      async_wait(NULL, 0, ASYNC_ALL_COMPLETED, ASYNC_NO_TIMEOUT, NULL, NULL),
      -EPERM);
  wmisuse m = {{0}};
  assert_int_equal(vrun(wait_misuse, &m, NULL, NULL), 0);
  assert_int_equal(m.errs[0], -EINVAL);
  assert_int_equal(m.errs[1], -EINVAL);
  assert_int_equal(m.errs[2], -EDEADLK);
  assert_int_equal(m.errs[3], -EINVAL);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_wait_all_completed),
      cmocka_unit_test(test_wait_first_completed),
      cmocka_unit_test(test_wait_first_exception),
      cmocka_unit_test(test_wait_first_exception_without_one_waits_for_all),
      cmocka_unit_test(test_wait_first_exception_ignores_cancelled),
      cmocka_unit_test(test_wait_timeout_cancels_nothing),
      cmocka_unit_test(test_wait_zero_timeout_only_looks),
      cmocka_unit_test(test_wait_negative_timeout_only_looks),
      cmocka_unit_test(test_wait_cancelled_leaves_futures_running),
      cmocka_unit_test(test_wait_bare_futures_duplicates_and_empty),
      cmocka_unit_test(test_wait_counts_a_repeated_future_once),
      cmocka_unit_test(test_wait_misuse),
  };
  return cmocka_run_group_tests_name("wait", tests, NULL, NULL);
}
