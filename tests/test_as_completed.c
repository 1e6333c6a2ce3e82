/* SPDX-License-Identifier: MIT */
/* as_completed: completion order, bare futures, the timeout, cancellation
 * of the iterating task, and lifetimes. In the spirit of CPython's
 * test_asyncio/test_tasks.py as_completed tests. */
#include "vclock_helpers.h"

#include <math.h>

static void cancel_cb(void *f) { async_future_cancel(f); }
static void resolve_cb(void *f) { async_future_set_result(f, f); }

#define MAXN 8

/* What a run of next() calls saw. */
typedef struct {
  int n;
  sleeper s[MAXN];
  double timeout;
  int rc[MAXN + 2];
  int which[MAXN + 2]; /* index of the future handed back, -1 for none */
  double at[MAXN + 2];
  int calls;
  int left_after;
} run;

static int index_of(async_future *const *futs, int n, async_future *f) {
  for (int i = 0; i < n; i++)
    if (futs[i] == f) return i;
  return -1;
}

static void *iterate(void *arg) {
  run *r = arg;
  async_task *t[MAXN];
  for (int i = 0; i < r->n; i++) t[i] = async_spawn(sleeper_fn, &r->s[i]);
  async_as_completed *it;
  if (async_as_completed_new(&it, t, (size_t)r->n, r->timeout) != 0)
    return async_fail(-EPROTO);
  for (r->calls = 0; r->calls < MAXN + 2; r->calls++) {
    async_future *f = (async_future *)1;
    int rc = async_as_completed_next(it, &f);
    r->rc[r->calls] = rc;
    r->which[r->calls] = f ? index_of(t, r->n, f) : -1;
    r->at[r->calls] = vnow();
    if (rc == 0) break;
  }
  r->left_after = (int)async_as_completed_left(it);
  async_as_completed_free(it);
  for (int i = 0; i < r->n; i++) {
    async_await(t[i], NULL);
    async_task_release(t[i]);
  }
  return NULL;
}

static void test_as_completed_order(void **state) {
  (void)state;
  run r = {.n = 3,
           .timeout = ASYNC_NO_TIMEOUT,
           .s = {{.delay = 3}, {.delay = 1}, {.delay = 2}}};
  assert_int_equal(vrun(iterate, &r, NULL, NULL), 0);
  assert_int_equal(r.calls, 3);
  const int want[] = {1, 2, 0};
  for (int i = 0; i < 3; i++) {
    assert_int_equal(r.rc[i], 1);
    assert_int_equal(r.which[i], want[i]);
    assert_true(r.at[i] == i + 1.0);
  }
  assert_int_equal(r.rc[3], 0);
  assert_int_equal(r.which[3], -1);
  assert_int_equal(r.left_after, 0);
}

static void test_as_completed_timeout(void **state) {
  (void)state;
  run r = {
      .n = 3, .timeout = 3.0, .s = {{.delay = 10}, {.delay = 1}, {.delay = 5}}};
  double end;
  assert_int_equal(vrun(iterate, &r, NULL, &end), 0);
  assert_int_equal(r.rc[0], 1);
  assert_int_equal(r.which[0], 1);
  assert_true(r.at[0] == 1.0);
  /* At the deadline, the others are reported in argument order. */
  assert_int_equal(r.rc[1], -ETIMEDOUT);
  assert_int_equal(r.which[1], 0);
  assert_true(r.at[1] == 3.0);
  assert_int_equal(r.rc[2], -ETIMEDOUT);
  assert_int_equal(r.which[2], 2);
  assert_true(r.at[2] == 3.0);
  assert_int_equal(r.rc[3], 0);
  /* Nothing was cancelled: they finished on their own. */
  assert_int_equal(r.s[0].slept, 0);
  assert_int_equal(r.s[2].slept, 0);
  assert_true(end == 10.0);
}

static void test_as_completed_zero_timeout(void **state) {
  (void)state;
  run r = {.n = 2, .timeout = 0, .s = {{.delay = 1}, {.delay = 2}}};
  assert_int_equal(vrun(iterate, &r, NULL, NULL), 0);
  assert_int_equal(r.rc[0], -ETIMEDOUT);
  assert_int_equal(r.which[0], 0);
  assert_int_equal(r.rc[1], -ETIMEDOUT);
  assert_int_equal(r.which[1], 1);
  assert_true(r.at[1] == 0.0);
  assert_int_equal(r.rc[2], 0);
}

static void test_as_completed_negative_timeout(void **state) {
  (void)state;
  run r = {.n = 2, .timeout = -1.0, .s = {{.delay = 1}, {.delay = 2}}};
  assert_int_equal(vrun(iterate, &r, NULL, NULL), 0);
  assert_int_equal(r.rc[0], -ETIMEDOUT);
  assert_int_equal(r.which[0], 0);
  assert_true(r.at[0] == 0.0);
  assert_int_equal(r.rc[1], -ETIMEDOUT);
  assert_int_equal(r.which[1], 1);
  assert_int_equal(r.rc[2], 0);
}

static void test_as_completed_empty(void **state) {
  (void)state;
  run r = {.n = 0, .timeout = 1.0};
  assert_int_equal(vrun(iterate, &r, NULL, NULL), 0);
  assert_int_equal(r.rc[0], 0);
  assert_true(r.at[0] == 0.0);
}

/* Bare futures, some done already, one late, one duplicated. */
typedef struct {
  async_future *f[4];
  int rc[6];
  int which[6];
  double at[6];
} bare;

static void *iterate_bare(void *arg) {
  bare *b = arg;
  async_loop *loop = async_loop_current();
  for (int i = 0; i < 3; i++) async_future_new(loop, &b->f[i]);
  b->f[3] = b->f[0];                      /* the same future twice */
  async_future_set_result(b->f[2], NULL); /* done already */
  async_loop_call_later(loop, 2.0, resolve_cb, b->f[0], NULL);
  async_loop_call_later(loop, 4.0, resolve_cb, b->f[1], NULL);
  async_as_completed *it;
  async_as_completed_new(&it, b->f, 4, 3.0);
  /* Nobody waits in next() until 5: the order is recorded meanwhile, and
   * f[1], done at 4, is past the deadline. */
  async_sleep(5.0);
  for (int i = 0; i < 6; i++) {
    async_future *f;
    b->rc[i] = async_as_completed_next(it, &f);
    b->which[i] = f ? index_of(b->f, 3, f) : -1;
    b->at[i] = vnow();
  }
  async_as_completed_free(it);
  for (int i = 0; i < 3; i++) async_future_release(b->f[i]);
  return NULL;
}

static void test_as_completed_bare_futures(void **state) {
  (void)state;
  bare b = {{0}, {0}, {0}, {0}};
  assert_int_equal(vrun(iterate_bare, &b, NULL, NULL), 0);
  /* f[0], given twice, is handed back once (asyncio takes a set). */
  const int rc[] = {1, 1, -ETIMEDOUT, 0, 0, 0};
  const int which[] = {2, 0, 1, -1, -1, -1};
  for (int i = 0; i < 6; i++) {
    assert_int_equal(b.rc[i], rc[i]);
    assert_int_equal(b.which[i], which[i]);
    assert_true(b.at[i] == 5.0); /* none of them waited */
  }
}

/* Many repeats (the sorted path): each future once, left counts them. */
typedef struct {
  long left;
  int n, rc_end;
  int which[4];
} many;

static void *iterate_many(void *arg) {
  many *m = arg;
  async_loop *loop = async_loop_current();
  async_future *f[3], *list[100];
  for (int i = 0; i < 3; i++) async_future_new(loop, &f[i]);
  for (int i = 0; i < 100; i++) list[i] = f[i % 3];
  async_future_set_result(f[1], NULL);
  async_loop_call_later(loop, 1.0, resolve_cb, f[2], NULL);
  async_loop_call_later(loop, 2.0, resolve_cb, f[0], NULL);
  async_as_completed *it;
  if (async_as_completed_new(&it, list, 100, ASYNC_NO_TIMEOUT))
    return async_fail(-EPROTO);
  m->left = async_as_completed_left(it);
  async_future *got;
  while (m->n < 4 && async_as_completed_next(it, &got) == 1)
    m->which[m->n++] = index_of(f, 3, got);
  m->rc_end = async_as_completed_next(it, &got);
  async_as_completed_free(it);
  for (int i = 0; i < 3; i++) async_future_release(f[i]);
  return NULL;
}

static void test_as_completed_hands_a_repeated_future_back_once(void **state) {
  (void)state;
  many m;
  memset(&m, 0, sizeof m);
  assert_int_equal(vrun(iterate_many, &m, NULL, NULL), 0);
  assert_int_equal(m.left, 3);
  assert_int_equal(m.n, 3);
  assert_int_equal(m.which[0], 1);
  assert_int_equal(m.which[1], 2);
  assert_int_equal(m.which[2], 0);
  assert_int_equal(m.rc_end, 0);
}

/* Cancelling the iterating task: next() returns -ECANCELED and loses
 * nothing; the futures are not cancelled. */
typedef struct {
  async_future *f[2];
  int rc[4];
  int which[4];
} cancelled;

static void *iterate_cancelled(void *arg) {
  cancelled *c = arg;
  async_loop *loop = async_loop_current();
  for (int i = 0; i < 2; i++) async_future_new(loop, &c->f[i]);
  async_loop_call_later(loop, 1.0, cancel_cb, async_task_current(), NULL);
  async_loop_call_later(loop, 2.0, resolve_cb, c->f[1], NULL);
  async_loop_call_later(loop, 3.0, resolve_cb, c->f[0], NULL);
  async_as_completed *it;
  async_as_completed_new(&it, c->f, 2, ASYNC_NO_TIMEOUT);
  for (int i = 0; i < 4; i++) {
    async_future *f;
    c->rc[i] = async_as_completed_next(it, &f);
    c->which[i] = f ? index_of(c->f, 2, f) : -1;
  }
  async_as_completed_free(it);
  for (int i = 0; i < 2; i++) async_future_release(c->f[i]);
  return NULL;
}

static void test_as_completed_cancel_loses_nothing(void **state) {
  (void)state;
  cancelled c = {{0}, {0}, {0}};
  assert_int_equal(vrun(iterate_cancelled, &c, NULL, NULL), 0);
  const int rc[] = {-ECANCELED, 1, 1, 0};
  const int which[] = {-1, 1, 0, -1};
  for (int i = 0; i < 4; i++) {
    assert_int_equal(c.rc[i], rc[i]);
    assert_int_equal(c.which[i], which[i]);
  }
}

/* Two tasks in next() at once; free while one waits. */
typedef struct {
  async_as_completed *it;
  int first, second, freed;
} busy;

static void *next_waiter(void *arg) {
  busy *b = arg;
  async_future *f;
  b->first = async_as_completed_next(b->it, &f);
  return NULL;
}

static void *busy_main(void *arg) {
  busy *b = arg;
  async_future *f;
  async_future_new(async_loop_current(), &f);
  async_as_completed_new(&b->it, &f, 1, ASYNC_NO_TIMEOUT);
  async_task *w = async_spawn(next_waiter, b);
  async_yield(); /* w waits in next() */
  async_future *g;
  b->second = async_as_completed_next(b->it, &g);
  b->freed = async_as_completed_free(b->it);
  async_future_set_result(f, NULL);
  async_await(w, NULL);
  async_task_release(w);
  async_as_completed_free(b->it);
  async_future_release(f);
  return NULL;
}

static void test_as_completed_one_waiter_at_a_time(void **state) {
  (void)state;
  busy b = {0};
  assert_int_equal(vrun(busy_main, &b, NULL, NULL), 0);
  assert_int_equal(b.second, -EBUSY);
  assert_int_equal(b.freed, -EBUSY);
  assert_int_equal(b.first, 1);
}

/* The iterator may outlive the loop, and a bare future still pending at
 * close with it; its references keep the futures readable until free. */
static void test_as_completed_outlives_the_loop(void **state) {
  (void)state;
  async_loop *loop = new_vloop();
  async_future *f[2];
  async_future_new(loop, &f[0]);
  async_future_new(loop, &f[1]);
  async_as_completed *it;
  assert_int_equal(async_as_completed_new(&it, f, 2, 10.0), 0);
  assert_int_equal(async_as_completed_left(it), 2);
  async_future_set_result(f[1], NULL);
  async_future_release(f[0]);
  async_future_release(f[1]);
  assert_int_equal(async_loop_close(loop), 0);
  async_future *g;
  assert_int_equal(async_as_completed_next(it, &g), -EPERM); /* no task */
  assert_int_equal(async_as_completed_free(it), 0);
  free_loop(loop);
}

static void test_as_completed_misuse(void **state) {
  (void)state;
  async_loop *loop = new_vloop(), *other = new_vloop();
  async_future *f[2];
  async_future_new(loop, &f[0]);
  async_future_new(other, &f[1]);
  async_as_completed *it = (async_as_completed *)1;
  assert_int_equal(async_as_completed_new(&it, f, 2, ASYNC_NO_TIMEOUT), -EXDEV);
  assert_null(it);
  assert_int_equal(async_as_completed_new(&it, f, 1, NAN), -EINVAL);
  assert_int_equal(async_as_completed_new(NULL, f, 1, ASYNC_NO_TIMEOUT),
                   -EINVAL);
  assert_int_equal(async_as_completed_new(&it, NULL, 1, ASYNC_NO_TIMEOUT),
                   -EINVAL);
  assert_int_equal(async_as_completed_free(NULL), 0);
  assert_int_equal(async_as_completed_left(NULL), -EINVAL);
  async_future_set_result(f[1], NULL);
  /* A done future of another loop is fine. */
  assert_int_equal(async_as_completed_new(&it, f, 2, ASYNC_NO_TIMEOUT), 0);
  assert_int_equal(async_as_completed_free(it), 0);
  async_future_release(f[0]);
  async_future_release(f[1]);
  free_loop(loop);
  free_loop(other);
}

/* The window between a future's wake-up of the task in next and that
 * task's resumption: another task's next is refused and takes nothing, and
 * the free is refused (the woken task still reads the iterator). */
typedef struct {
  async_future *f;
  async_as_completed *it;
  int first_rc, second_rc, free_in_window, free_after;
  async_future *first_got, *second_got;
} window;

static void *window_first(void *arg) {
  window *w = arg;
  w->first_rc = async_as_completed_next(w->it, &w->first_got);
  return NULL;
}

static void *window_second(void *arg) {
  window *w = arg;
  w->second_rc = async_as_completed_next(w->it, &w->second_got);
  w->free_in_window = async_as_completed_free(w->it);
  return NULL;
}

static void *window_main(void *arg) {
  window *w = arg;
  async_future_new(async_loop_current(), &w->f);
  async_as_completed_new(&w->it, &w->f, 1, ASYNC_NO_TIMEOUT);
  async_task *first = async_spawn(window_first, w);
  async_yield(); /* first parks in next */
  async_task *second = async_spawn(window_second, w);
  async_future_set_result(w->f, NULL); /* wakes first, queued after second */
  async_await(first, NULL);
  async_await(second, NULL);
  w->free_after = async_as_completed_free(w->it);
  async_task_release(first);
  async_task_release(second);
  async_future_release(w->f);
  return NULL;
}

static void test_as_completed_free_between_wake_and_resumption(void **state) {
  (void)state;
  window w = {.second_got = (async_future *)1};
  assert_int_equal(vrun(window_main, &w, NULL, NULL), 0);
  assert_int_equal(w.second_rc, -EBUSY);
  assert_null(w.second_got);
  assert_int_equal(w.free_in_window, -EBUSY);
  assert_int_equal(w.first_rc, 1);
  assert_ptr_equal(w.first_got, w.f);
  assert_int_equal(w.free_after, 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_as_completed_order),
      cmocka_unit_test(test_as_completed_timeout),
      cmocka_unit_test(test_as_completed_zero_timeout),
      cmocka_unit_test(test_as_completed_negative_timeout),
      cmocka_unit_test(test_as_completed_empty),
      cmocka_unit_test(test_as_completed_bare_futures),
      cmocka_unit_test(test_as_completed_hands_a_repeated_future_back_once),
      cmocka_unit_test(test_as_completed_cancel_loses_nothing),
      cmocka_unit_test(test_as_completed_one_waiter_at_a_time),
      cmocka_unit_test(test_as_completed_outlives_the_loop),
      cmocka_unit_test(test_as_completed_misuse),
      cmocka_unit_test(test_as_completed_free_between_wake_and_resumption),
  };
  return cmocka_run_group_tests_name("as_completed", tests, NULL, NULL);
}
