/* SPDX-License-Identifier: MIT */
/* gather: results in argument order, the first error at once, every
 * outcome collected, cancellation both ways, empty and duplicate inputs.
 * In the spirit of CPython's test_asyncio/test_tasks.py gather tests. */
#include "vclock_helpers.h"

static void cancel_cb(void *f) { async_future_cancel(f); }

/* {==== Order and results =============================================== */

typedef struct {
  sleeper s[3];
  void *res[3];
  int err;
  double at;
} trio;

static void *gather_trio(void *arg) {
  trio *g = arg;
  async_task *t[3];
  for (int i = 0; i < 3; i++) t[i] = async_spawn(sleeper_fn, &g->s[i]);
  g->err = async_gather(t, 3, g->res);
  g->at = vnow();
  for (int i = 0; i < 3; i++) async_task_release(t[i]);
  return NULL;
}

static void test_gather_results_in_argument_order(void **state) {
  (void)state;
  trio g = {.s = {{.delay = 3, .value = IPTR(1)},
                  {.delay = 1, .value = IPTR(2)},
                  {.delay = 2, .value = IPTR(3)}}};
  assert_int_equal(vrun(gather_trio, &g, NULL, NULL), 0);
  assert_int_equal(g.err, 0);
  assert_int_equal(PTRI(g.res[0]), 1);
  assert_int_equal(PTRI(g.res[1]), 2);
  assert_int_equal(PTRI(g.res[2]), 3);
  assert_true(g.at == 3.0); /* the longest, not the sum */
}

typedef struct {
  int err;
  int others_ran;
} empty_probe;

static void *count_runs(void *arg) {
  ((empty_probe *)arg)->others_ran++;
  return NULL;
}

static void *gather_empty(void *arg) {
  empty_probe *p = arg;
  async_task *other = async_spawn(count_runs, p); /* runs if we suspend */
  p->err = async_gather(NULL, 0, NULL);
  int ran = p->others_ran;
  async_yield();
  p->others_ran = ran * 10 + p->others_ran;
  async_task_release(other);
  return NULL;
}

static void test_gather_empty_returns_at_once(void **state) {
  (void)state;
  async_loop *loop = new_vloop();
  empty_probe p = {-1, 0};
  async_task *t;
  async_task_spawn(loop, &t, gather_empty, &p, NULL);
  async_loop_run_until_complete(loop, t, NULL);
  async_task_release(t);
  free_loop(loop);
  assert_int_equal(p.err, 0);
  assert_int_equal(p.others_ran, 1); /* 0 before the yield, 1 after */
}

typedef struct {
  sleeper s;
  void *res[4];
  int err;
} dup;

static void *gather_duplicate(void *arg) {
  dup *d = arg;
  async_task *t = async_spawn(sleeper_fn, &d->s);
  async_future *f;
  async_future_new(async_loop_current(), &f);
  async_future_set_result(f, IPTR(9));
  async_future *list[4] = {t, f, t, t};
  d->err = async_gather(list, 4, d->res);
  async_task_release(t);
  async_future_release(f);
  return NULL;
}

static void test_gather_same_future_twice(void **state) {
  (void)state;
  dup d = {.s = {.delay = 1, .value = IPTR(5)}};
  assert_int_equal(vrun(gather_duplicate, &d, NULL, NULL), 0);
  assert_int_equal(d.err, 0);
  assert_int_equal(PTRI(d.res[0]), 5);
  assert_int_equal(PTRI(d.res[1]), 9);
  assert_int_equal(PTRI(d.res[2]), 5);
  assert_int_equal(PTRI(d.res[3]), 5);
}

typedef struct {
  async_future *f[2];
  void *res[3];
  int err;
  double at;
} bare;

static void resolve_cb(void *arg) { async_future_set_result(arg, IPTR(7)); }

static void *gather_bare(void *arg) {
  bare *b = arg;
  async_loop *loop = async_loop_current();
  async_future_new(loop, &b->f[0]);
  async_future_new(loop, &b->f[1]);
  async_loop_call_later(loop, 2.0, resolve_cb, b->f[0], NULL);
  async_loop_call_later(loop, 1.0, resolve_cb, b->f[1], NULL);
  sleeper s = {.delay = 0.5, .value = IPTR(8)};
  async_task *t = async_spawn(sleeper_fn, &s);
  async_future *list[3] = {b->f[0], t, b->f[1]};
  b->err = async_gather(list, 3, b->res);
  b->at = vnow();
  async_task_release(t);
  async_future_release(b->f[0]);
  async_future_release(b->f[1]);
  return NULL;
}

static void test_gather_bare_futures_and_tasks(void **state) {
  (void)state;
  bare b = {0};
  assert_int_equal(vrun(gather_bare, &b, NULL, NULL), 0);
  assert_int_equal(b.err, 0);
  assert_int_equal(PTRI(b.res[0]), 7);
  assert_int_equal(PTRI(b.res[1]), 8);
  assert_int_equal(PTRI(b.res[2]), 7);
  assert_true(b.at == 2.0);
}

#define MANY 40

typedef struct {
  sleeper s[MANY];
  void *res[MANY];
  int err;
  double at;
} many;

static void *gather_many(void *arg) {
  many *m = arg;
  async_task *t[MANY];
  for (int i = 0; i < MANY; i++) {
    m->s[i].delay = (MANY - i) * 0.5;
    m->s[i].value = IPTR(i);
    t[i] = async_spawn(sleeper_fn, &m->s[i]);
  }
  m->err = async_gather(t, MANY, m->res);
  m->at = vnow();
  for (int i = 0; i < MANY; i++) async_task_release(t[i]);
  return NULL;
}

static void test_gather_many_futures(void **state) {
  (void)state;
  static many m;
  memset(&m, 0, sizeof m);
  assert_int_equal(vrun(gather_many, &m, NULL, NULL), 0);
  assert_int_equal(m.err, 0);
  for (int i = 0; i < MANY; i++) assert_int_equal(PTRI(m.res[i]), i);
  assert_true(m.at == MANY * 0.5);
}

static void *gather_done(void *arg) {
  empty_probe *p = arg;
  async_future *f[2];
  async_future_new(async_loop_current(), &f[0]);
  async_future_new(async_loop_current(), &f[1]);
  async_future_set_result(f[0], IPTR(1));
  async_future_set_error(f[1], -EIO);
  async_task *other = async_spawn(count_runs, p);
  void *res[2];
  p->err = async_gather(f, 1, res) * 100; /* 0: done, no suspension */
  p->err += async_gather(f, 2, res);      /* the done future's error */
  p->err += p->others_ran * 1000;         /* still 0: nothing ran */
  async_task_release(other);
  async_future_release(f[0]);
  async_future_release(f[1]);
  return NULL;
}

static void test_gather_done_futures_do_not_suspend(void **state) {
  (void)state;
  empty_probe p = {0, 0};
  assert_int_equal(vrun(gather_done, &p, NULL, NULL), 0);
  assert_int_equal(p.err, -EIO);
}

/* }==== */

/* {==== Errors ========================================================== */

typedef struct {
  sleeper s[3];
  void *res[3];
  int errs[3];
  int err;
  double at;
  int after[3]; /* outcomes of the children once awaited afterwards */
  void *after_res[3];
  int collect;
} fail3;

static void *gather_fail(void *arg) {
  fail3 *g = arg;
  async_task *t[3];
  for (int i = 0; i < 3; i++) t[i] = async_spawn(sleeper_fn, &g->s[i]);
  if (g->collect)
    g->err = async_gather_errors(t, 3, g->res, g->errs);
  else
    g->err = async_gather(t, 3, g->res);
  g->at = vnow();
  for (int i = 0; i < 3; i++) {
    g->after[i] = async_await(t[i], &g->after_res[i]);
    async_task_release(t[i]);
  }
  return NULL;
}

static void test_gather_first_error_returns_at_once(void **state) {
  (void)state;
  fail3 g = {.s = {{.delay = 1, .value = IPTR(1)},
                   {.delay = 2, .fail = -EIO},
                   {.delay = 5, .value = IPTR(3)}}};
  double end;
  assert_int_equal(vrun(gather_fail, &g, NULL, &end), 0);
  assert_int_equal(g.err, -EIO);
  assert_true(g.at == 2.0);            /* not after the slow one */
  assert_int_equal(PTRI(g.res[0]), 1); /* done before the error */
  assert_null(g.res[2]);               /* not done then */
  /* The others were not cancelled: the slow one finished with its value. */
  assert_int_equal(g.s[2].slept, 0);
  assert_int_equal(g.after[2], 0);
  assert_int_equal(PTRI(g.after_res[2]), 3);
  assert_int_equal(g.after[1], -EIO);
  assert_true(end == 5.0);
}

static void test_gather_errors_collects_every_outcome(void **state) {
  (void)state;
  fail3 g = {.s = {{.delay = 3, .fail = -ENOENT},
                   {.delay = 1, .value = IPTR(2)},
                   {.delay = 2, .fail = -EIO}},
             .collect = 1};
  assert_int_equal(vrun(gather_fail, &g, NULL, NULL), 0);
  assert_int_equal(g.err, 0);
  assert_true(g.at == 3.0);
  assert_int_equal(g.errs[0], -ENOENT);
  assert_int_equal(g.errs[1], 0);
  assert_int_equal(g.errs[2], -EIO);
  assert_null(g.res[0]);
  assert_int_equal(PTRI(g.res[1]), 2);
  assert_null(g.res[2]);
}

typedef struct {
  sleeper s[2];
  int err, errs[2], collect, later;
  double at;
} child_cancel;

static void *gather_child_cancelled(void *arg) {
  child_cancel *c = arg;
  async_task *t[2];
  for (int i = 0; i < 2; i++) t[i] = async_spawn(sleeper_fn, &c->s[i]);
  async_loop_call_later(async_loop_current(), 1.0, cancel_cb, t[0], NULL);
  if (c->collect)
    c->err = async_gather_errors(t, 2, NULL, c->errs);
  else
    c->err = async_gather(t, 2, NULL);
  c->at = vnow();
  c->later = async_sleep(1.0); /* the gathering task was not cancelled */
  for (int i = 0; i < 2; i++) {
    async_await(t[i], NULL);
    async_task_release(t[i]);
  }
  return NULL;
}

static void test_gather_child_cancelled_counts_as_error(void **state) {
  (void)state;
  child_cancel c = {.s = {{.delay = 10}, {.delay = 3}}};
  assert_int_equal(vrun(gather_child_cancelled, &c, NULL, NULL), 0);
  assert_int_equal(c.err, -ECANCELED);
  assert_true(c.at == 1.0);
  assert_int_equal(c.later, 0);
  memset(&c, 0, sizeof c);
  c.s[0].delay = 10;
  c.s[1].delay = 3;
  c.collect = 1;
  assert_int_equal(vrun(gather_child_cancelled, &c, NULL, NULL), 0);
  assert_int_equal(c.err, 0);
  assert_int_equal(c.errs[0], -ECANCELED);
  assert_int_equal(c.errs[1], 0);
  assert_true(c.at == 3.0);
  assert_int_equal(c.later, 0);
}

/* }==== */

/* {==== Cancelling the gathering task =================================== */

typedef struct {
  sleeper s[3];
  async_future *bare;
  int err;
  int errs[4];
  int collect;
  int pending_first; /* cancel the gatherer before it gathers */
  double at;
} outer_cancel;

static void *gatherer(void *arg) {
  outer_cancel *o = arg;
  async_task *t[3];
  for (int i = 0; i < 3; i++) t[i] = async_spawn(sleeper_fn, &o->s[i]);
  async_future_new(async_loop_current(), &o->bare);
  async_future *list[4] = {t[0], t[1], o->bare, t[2]};
  if (o->pending_first) async_task_cancel(async_task_current());
  if (o->collect)
    o->err = async_gather_errors(list, 4, NULL, o->errs);
  else
    o->err = async_gather(list, 4, NULL);
  o->at = vnow();
  for (int i = 0; i < 3; i++) async_task_release(t[i]);
  return NULL;
}

static void run_outer_cancel(outer_cancel *o) {
  async_loop *loop = new_vloop();
  async_task *t;
  async_task_spawn(loop, &t, gatherer, o, NULL);
  if (!o->pending_first) async_loop_call_later(loop, 1.0, cancel_cb, t, NULL);
  assert_int_equal(async_loop_run_until_complete(loop, t, NULL), 0);
  assert_int_equal(async_future_cancelled(o->bare), 1);
  async_future_release(o->bare);
  async_task_release(t);
  free_loop(loop);
}

static void test_gather_cancel_cancels_every_child(void **state) {
  (void)state;
  for (int mode = 0; mode < 4; mode++) {
    outer_cancel o = {.s = {{.delay = 5, .cleanup = 2},
                            {.delay = 0.5, .value = IPTR(1)},
                            {.delay = 5}}};
    o.collect = mode & 1;
    o.pending_first = (mode >> 1) & 1;
    run_outer_cancel(&o);
    assert_int_equal(o.err, -ECANCELED);
    /* Every child not done was cancelled and had unwound: the gather
     * returned only after child 0's two-second cleanup. */
    if (o.pending_first) {
      assert_int_equal(o.s[0].ran, 0); /* cancelled before it started */
      assert_int_equal(o.s[1].ran, 0);
      assert_true(o.at == 0.0);
    } else {
      assert_int_equal(o.s[0].slept, -ECANCELED);
      assert_int_equal(o.s[1].slept, 0); /* done before the cancel */
      assert_int_equal(o.s[2].slept, -ECANCELED);
      assert_true(o.s[0].end_time == 3.0);
      assert_true(o.at == 3.0);
    }
    if (o.collect) {
      assert_int_equal(o.errs[0], -ECANCELED);
      assert_int_equal(o.errs[1], o.pending_first ? -ECANCELED : 0);
      assert_int_equal(o.errs[2], -ECANCELED);
      assert_int_equal(o.errs[3], -ECANCELED);
    }
  }
}

/* }==== */

/* {==== gather_coros: the tutorial's gather(count(), count(), count()) == */

typedef struct {
  seqlog log;
  int err;
  double at;
} counts;

static counts *the_counts;

static void *count(void *arg) {
  seqlog_add(&the_counts->log, 1); /* "One" */
  async_sleep(1.0);
  seqlog_add(&the_counts->log, 2); /* "Two" */
  return arg;
}

static void *count_main(void *arg) {
  counts *c = arg;
  async_coro coros[3] = {
      {count, IPTR(10)}, {count, IPTR(20)}, {count, IPTR(30)}};
  void *res[3];
  c->err = async_gather_coros(coros, 3, res, NULL);
  c->at = vnow();
  if (!c->err &&
      (PTRI(res[0]) != 10 || PTRI(res[1]) != 20 || PTRI(res[2]) != 30))
    c->err = -EPROTO;
  return NULL;
}

static void test_gather_coros_countasync(void **state) {
  (void)state;
  counts c = {{{0}, 0}, 0, 0};
  the_counts = &c;
  assert_int_equal(vrun(count_main, &c, NULL, NULL), 0);
  assert_int_equal(c.err, 0);
  const int want[] = {1, 1, 1, 2, 2, 2};
  seqlog_expect(&c.log, want, 6);
  assert_true(c.at == 1.0);
}

typedef struct {
  sleeper s[3];
  int err, errs[3];
  void *res[3];
  int bad;
} coro_errs;

static void *coros_main(void *arg) {
  coro_errs *c = arg;
  async_coro coros[3] = {
      {sleeper_fn, &c->s[0]}, {sleeper_fn, &c->s[1]}, {sleeper_fn, &c->s[2]}};
  c->err = async_gather_coros(coros, 3, c->res, c->errs);
  coros[1].fn = NULL;
  c->bad = async_gather_coros(coros, 3, NULL, NULL);
  return NULL;
}

static void test_gather_coros_with_errors(void **state) {
  (void)state;
  coro_errs c = {.s = {{.delay = 1, .value = IPTR(1)},
                       {.delay = 2, .fail = -EPIPE},
                       {.delay = 3, .value = IPTR(3)}}};
  assert_int_equal(vrun(coros_main, &c, NULL, NULL), 0);
  assert_int_equal(c.err, 0);
  assert_int_equal(c.errs[0], 0);
  assert_int_equal(c.errs[1], -EPIPE);
  assert_int_equal(c.errs[2], 0);
  assert_int_equal(PTRI(c.res[2]), 3);
  assert_int_equal(c.bad, -EINVAL);
}

/* The tutorial's chained.py on the virtual clock: each chain sleeps part1
 * then part2, the chains run side by side, and the program takes exactly
 * as long as its longest chain, not the sum of them. */
typedef struct {
  double p1, p2;
  double took;
} chain;

static void *run_chain(void *arg) {
  chain *c = arg;
  double start = vnow();
  async_sleep(c->p1);
  async_sleep(c->p2);
  c->took = vnow() - start;
  return NULL;
}

typedef struct {
  chain c[3];
} chains;

static void *chained_main(void *arg) {
  chains *ch = arg;
  async_coro coros[3];
  for (int i = 0; i < 3; i++) coros[i] = (async_coro){run_chain, &ch->c[i]};
  int err = async_gather_coros(coros, 3, NULL, NULL);
  return err ? async_fail(err) : NULL;
}

static void test_gather_chained_total_is_the_longest_chain(void **state) {
  (void)state;
  /* The tutorial's draws for 9 6 3 (random.seed(444)), and two others. */
  const double draws[3][6] = {
      {4, 7, 4, 4, 0, 4}, {10, 0, 0, 10, 5, 5}, {1, 2, 3, 4, 5, 6}};
  for (int k = 0; k < 3; k++) {
    chains ch;
    double longest = 0, sum = 0;
    for (int i = 0; i < 3; i++) {
      ch.c[i] = (chain){draws[k][2 * i], draws[k][2 * i + 1], -1};
      double len = ch.c[i].p1 + ch.c[i].p2;
      if (len > longest) longest = len;
      sum += len;
    }
    double end;
    vrun(chained_main, &ch, NULL, &end);
    for (int i = 0; i < 3; i++)
      assert_true(ch.c[i].took == ch.c[i].p1 + ch.c[i].p2);
    assert_true(end == longest);
    assert_true(end < sum);
  }
}

/* }==== */

/* {==== Misuse ========================================================== */

typedef struct {
  async_future *foreign; /* a future of another loop */
  int errs[5];
} misuse;

static void *other_loop_fut(void *arg) {
  misuse *m = arg;
  int *errs = m->errs;
  static long long junk[16]; /* zeroes: not a future */
  async_future *bad = (async_future *)(void *)junk;
  async_task *self = async_task_current();
  errs[0] = async_gather(&m->foreign, 1, NULL);
  errs[1] = async_gather(&self, 1, NULL);
  errs[2] = async_gather(NULL, 2, NULL);
  async_future *null = NULL;
  errs[3] = async_gather(&null, 1, NULL);
  errs[4] = async_gather_errors(&bad, 1, NULL, NULL);
  return NULL;
}

static void test_gather_misuse(void **state) {
  (void)state;
  assert_int_equal(async_gather(NULL, 0, NULL), -EPERM);
  async_coro c = {count, NULL};
  assert_int_equal(async_gather_coros(&c, 1, NULL, NULL), -EPERM);
  async_loop *other = new_vloop();
  misuse m = {0};
  int *errs = m.errs;
  assert_int_equal(async_future_new(other, &m.foreign), 0);
  assert_int_equal(vrun(other_loop_fut, &m, NULL, NULL), 0);
  async_future_release(m.foreign);
  free_loop(other);
  assert_int_equal(errs[0], -EXDEV);
  assert_int_equal(errs[1], -EDEADLK);
  assert_int_equal(errs[2], -EINVAL);
  assert_int_equal(errs[3], -EINVAL);
  assert_int_equal(errs[4], -EINVAL);
}

/* }==== */

/* {==== gather as a future (issue 10 item 9) ============================ */

typedef struct {
  sleeper s[3];
  int n;
  int flags;
  double timeout;          /* > 0: await through wait_for */
  double cancel_at;        /* > 0: cancel the gather future then */
  double cancel_waiter_at; /* > 0: cancel the awaiting task then */
  int rc, cancel_rc;
  double at;
  void *res[3];
  long nread;
  void *rres[3];
  int rerr[3];
} gfrun;

typedef struct {
  async_future *f;
  int rc;
} cancel_rec;

static void cancel_rec_cb(void *arg) {
  cancel_rec *c = arg;
  c->rc = async_future_cancel(c->f);
}

static void *gather_future_main(void *arg) {
  gfrun *g = arg;
  async_loop *loop = async_loop_current();
  async_task *t[3];
  for (int i = 0; i < g->n; i++) t[i] = async_spawn(sleeper_fn, &g->s[i]);
  async_future *gf;
  if (async_gather_future(&gf, t, (size_t)g->n, g->flags))
    return async_fail(-EPROTO);
  cancel_rec c = {gf, -1};
  if (g->cancel_at > 0)
    async_loop_call_later(loop, g->cancel_at, cancel_rec_cb, &c, NULL);
  if (g->cancel_waiter_at > 0)
    async_loop_call_later(loop, g->cancel_waiter_at, cancel_cb,
                          async_task_current(), NULL);
  void *r = NULL;
  g->rc =
      g->timeout > 0 ? async_wait_for(gf, g->timeout, &r) : async_await(gf, &r);
  g->at = vnow();
  if (g->rc == 0)
    for (int i = 0; i < g->n; i++) g->res[i] = ((void **)r)[i];
  g->cancel_rc = c.rc;
  for (int i = 0; i < g->n; i++) async_await(t[i], NULL); /* all end */
  g->nread = async_gather_future_read(gf, g->rres, g->rerr, 3);
  async_future_release(gf);
  for (int i = 0; i < g->n; i++) async_task_release(t[i]);
  return NULL;
}

static void test_gather_future_awaited(void **state) {
  (void)state;
  gfrun g = {.n = 3,
             .s = {{.delay = 3, .value = IPTR(1)},
                   {.delay = 1, .value = IPTR(2)},
                   {.delay = 2, .value = IPTR(3)}}};
  assert_int_equal(vrun(gather_future_main, &g, NULL, NULL), 0);
  assert_int_equal(g.rc, 0);
  assert_true(g.at == 3.0);
  for (int i = 0; i < 3; i++) {
    assert_int_equal(PTRI(g.res[i]), i + 1);
    assert_int_equal(PTRI(g.rres[i]), i + 1);
    assert_int_equal(g.rerr[i], 0);
  }
  assert_int_equal(g.nread, 3);
}

static void test_gather_future_first_error_and_collect(void **state) {
  (void)state;
  gfrun g = {.n = 3,
             .s = {{.delay = 3, .value = IPTR(1)},
                   {.delay = 1, .fail = -EIO},
                   {.delay = 2, .value = IPTR(3)}}};
  double end;
  assert_int_equal(vrun(gather_future_main, &g, NULL, &end), 0);
  assert_int_equal(g.rc, -EIO);
  assert_true(g.at == 1.0); /* at once; the others went on */
  assert_int_equal(g.s[0].slept, 0);
  assert_true(end == 3.0);
  assert_int_equal(g.rerr[1], -EIO);
  assert_int_equal(PTRI(g.rres[2]), 3);
  gfrun c = {.n = 3,
             .flags = ASYNC_GATHER_ERRORS,
             .s = {{.delay = 3, .value = IPTR(1)},
                   {.delay = 1, .fail = -EIO},
                   {.delay = 2, .value = IPTR(3)}}};
  assert_int_equal(vrun(gather_future_main, &c, NULL, NULL), 0);
  assert_int_equal(c.rc, 0);
  assert_true(c.at == 3.0);
  assert_int_equal(PTRI(c.res[0]), 1);
  assert_null(c.res[1]);
  assert_int_equal(c.rerr[1], -EIO);
  assert_int_equal(PTRI(c.res[2]), 3);
}

/* Cancelling it cancels the children, and it ends cancelled once they are
 * done (asyncio's _GatheringFuture.cancel), even one that returned. */
static void test_gather_future_cancel_cancels_the_children(void **state) {
  (void)state;
  gfrun g = {.n = 2,
             .flags = ASYNC_GATHER_ERRORS,
             .cancel_at = 1,
             .s = {{.delay = 10, .cleanup = 2},
                   {.delay = 10, .ignore = 1, .value = IPTR(5)}}};
  assert_int_equal(vrun(gather_future_main, &g, NULL, NULL), 0);
  assert_int_equal(g.cancel_rc, 1);
  assert_int_equal(g.rc, -ECANCELED);
  assert_true(g.at == 3.0); /* after the cleanup */
  assert_int_equal(g.s[0].slept, -ECANCELED);
  assert_int_equal(g.s[1].slept, -ECANCELED);
  assert_int_equal(g.rerr[0], -ECANCELED);
  assert_int_equal(g.rerr[1], 0);
  assert_int_equal(PTRI(g.rres[1]), 5);
}

static void test_gather_future_awaiter_cancelled(void **state) {
  (void)state;
  gfrun g = {
      .n = 2, .cancel_waiter_at = 1, .s = {{.delay = 10}, {.delay = 10}}};
  assert_int_equal(vrun(gather_future_main, &g, NULL, NULL), 0);
  assert_int_equal(g.rc, -ECANCELED);
  assert_true(g.at == 1.0);
  assert_int_equal(g.s[0].slept, -ECANCELED);
  assert_int_equal(g.s[1].slept, -ECANCELED);
}

static void test_gather_future_in_wait_for(void **state) {
  (void)state;
  gfrun g = {.n = 2,
             .timeout = 2,
             .flags = ASYNC_GATHER_ERRORS,
             .s = {{.delay = 1, .value = IPTR(1)}, {.delay = 10}}};
  assert_int_equal(vrun(gather_future_main, &g, NULL, NULL), 0);
  assert_int_equal(g.rc, -ETIMEDOUT);
  assert_true(g.at == 2.0);
  assert_int_equal(g.s[0].slept, 0);
  assert_int_equal(g.s[1].slept, -ECANCELED);
  assert_int_equal(PTRI(g.rres[0]), 1);
}

/* Gathers nest, with bare futures, futures done already and n == 0. */
typedef struct {
  int rc, inner_done, empty_rc, empty_done, read_bad, flags_bad, null_out;
  void *res[2];
  void *inner0; /* the inner gather's results[0], read while it lives */
  void *empty_res;
  long outside;
} nested;

static void *nested_main(void *arg) {
  nested *x = arg;
  async_loop *loop = async_loop_current();
  async_future *a, *b, *inner, *outer, *empty;
  async_future_new(loop, &a);
  async_future_new(loop, &b);
  async_future_set_result(a, IPTR(7)); /* done already */
  async_loop_call_later(loop, 1.0, resolve_cb, b, NULL);
  async_future *ab[2] = {a, b};
  async_gather_future(&inner, ab, 2, 0);
  async_future *pair[2] = {inner, a};
  async_gather_future(&outer, pair, 2, 0);
  void *r = NULL;
  x->rc = async_await(outer, &r);
  if (!x->rc) {
    memcpy(x->res, r, sizeof x->res);
    x->inner0 = ((void **)x->res[0])[0]; /* the inner's results array */
  }
  x->inner_done = async_future_done(inner);
  x->empty_rc = async_gather_future(&empty, NULL, 0, 0);
  x->empty_done = async_future_done(empty);
  async_future_result(empty, &x->empty_res);
  x->read_bad = (int)async_gather_future_read(a, NULL, NULL, 0);
  async_future *none;
  x->flags_bad = async_gather_future(&none, ab, 2, 4);
  x->null_out = async_gather_future(NULL, ab, 2, 0);
  async_future_release(empty);
  async_future_release(outer);
  async_future_release(inner);
  async_future_release(a);
  async_future_release(b);
  return NULL;
}

static void test_gather_future_nested_bare_and_empty(void **state) {
  (void)state;
  nested x;
  memset(&x, 0, sizeof x);
  x.empty_res = IPTR(1);
  assert_int_equal(vrun(nested_main, &x, NULL, NULL), 0);
  assert_int_equal(x.rc, 0);
  assert_non_null(x.res[0]);
  assert_int_equal(PTRI(x.inner0), 7);
  assert_int_equal(x.inner_done, 1);
  assert_int_equal(PTRI(x.res[1]), 7);
  assert_int_equal(x.empty_rc, 0);
  assert_int_equal(x.empty_done, 1);
  assert_null(x.empty_res);
  assert_int_equal(x.read_bad, -EINVAL);
  assert_int_equal(x.flags_bad, -EINVAL);
  assert_int_equal(x.null_out, -EINVAL);
  async_future *f = (async_future *)1;
  assert_int_equal(async_gather_future(&f, NULL, 0, 0), -EINVAL); /* no loop */
  assert_null(f);
}

/* Released while its children run, or held past the loop's close: the
 * children are unaffected and nothing leaks (ASan, valgrind). */
static void *release_early_main(void *arg) {
  async_future **keep = arg;
  async_loop *loop = async_loop_current();
  async_future *f[2], *gf;
  async_future_new(loop, &f[0]);
  async_future_new(loop, &f[1]);
  async_gather_future(&gf, f, 2, 0);
  async_future_release(gf); /* pending, unwatched from now on */
  async_future_set_result(f[0], NULL);
  async_gather_future(&keep[0], f, 2, 0);
  async_future_release(f[0]); /* keep[0] holds it */
  keep[1] = f[1];             /* still pending at close */
  return NULL;
}

static void test_gather_future_released_early_and_after_close(void **state) {
  (void)state;
  async_future *keep[2] = {NULL, NULL};
  async_loop *loop = new_vloop();
  assert_int_equal(run_task(loop, release_early_main, keep, NULL), 0);
  assert_int_equal(async_loop_close(loop), 0);
  assert_int_equal(async_future_done(keep[0]), 0);
  assert_int_equal(async_future_cancel(keep[0]), 1); /* after the close */
  assert_int_equal(async_future_cancelled(keep[0]), 1);
  assert_int_equal(async_future_release(keep[0]), 0);
  assert_int_equal(async_future_release(keep[1]), 0);
  free_loop(loop);
}

/* }==== */

static async_task *cycle_parent;

static void *await_parent(void *arg) {
  (void)arg;
  /* Its await passes the cancellation on to the parent, which waits for
   * this task: neither ever ends, and the close gives them up. */
  for (;;) async_await(cycle_parent, NULL);
  return NULL;
}

static void *gather_into_cycle(void *arg) {
  async_coro coros[2] = {{await_parent, NULL}, {await_parent, NULL}};
  (void)arg;
  cycle_parent = async_task_current();
  for (;;) async_gather_coros(coros, 2, NULL, NULL);
  return NULL;
}

/* The close ends both tasks without resuming them: the children that
 * async_gather_coros spawned must not leak (ASan's leak check and
 * valgrind's, in CI, fail the test if they do). */
static void test_gather_coros_cycle_given_up_at_close(void **state) {
  (void)state;
  async_loop *loop = new_loop();
  assert_int_equal(async_task_spawn(loop, NULL, gather_into_cycle, NULL, NULL),
                   0);
  assert_int_equal(async_loop_call_later(loop, 0.01, stop_cb, loop, NULL), 0);
  assert_int_equal(async_loop_run_forever(loop), 0);
  long n = async_task_all(loop, NULL, 0);
  assert_int_equal(n, 3);
  free_loop(loop);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_gather_results_in_argument_order),
      cmocka_unit_test(test_gather_empty_returns_at_once),
      cmocka_unit_test(test_gather_same_future_twice),
      cmocka_unit_test(test_gather_bare_futures_and_tasks),
      cmocka_unit_test(test_gather_many_futures),
      cmocka_unit_test(test_gather_done_futures_do_not_suspend),
      cmocka_unit_test(test_gather_first_error_returns_at_once),
      cmocka_unit_test(test_gather_errors_collects_every_outcome),
      cmocka_unit_test(test_gather_child_cancelled_counts_as_error),
      cmocka_unit_test(test_gather_cancel_cancels_every_child),
      cmocka_unit_test(test_gather_coros_countasync),
      cmocka_unit_test(test_gather_coros_with_errors),
      cmocka_unit_test(test_gather_chained_total_is_the_longest_chain),
      cmocka_unit_test(test_gather_misuse),
      cmocka_unit_test(test_gather_future_awaited),
      cmocka_unit_test(test_gather_future_first_error_and_collect),
      cmocka_unit_test(test_gather_future_cancel_cancels_the_children),
      cmocka_unit_test(test_gather_future_awaiter_cancelled),
      cmocka_unit_test(test_gather_future_in_wait_for),
      cmocka_unit_test(test_gather_future_nested_bare_and_empty),
      cmocka_unit_test(test_gather_future_released_early_and_after_close),
      cmocka_unit_test(test_gather_coros_cycle_given_up_at_close),
  };
  return cmocka_run_group_tests_name("gather", tests, NULL, NULL);
}
