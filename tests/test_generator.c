/* SPDX-License-Identifier: MIT */
/* Async generators: iteration, laziness, close and cleanup, errors,
 * cancellation, the comprehension helper, misuse. */
#include "helpers.h"

static void stop_cb(void *arg) { async_loop_stop(arg); }

static void spin(async_loop *loop) {
  async_loop_call_soon(loop, stop_cb, loop, NULL);
  async_loop_run_forever(loop);
}

/* A producer yielding base^0 .. base^(count-1), logging what it does:
 * 1000 + value before each yield, -1 on a close seen, -2 at its end. */
typedef struct powgen {
  long base, count;
  double pause; /* sleep after each yield */
  seqlog *log;
  int yield_rc; /* the last yield's result */
  int cleaned;  /* the producer ran its cleanup */
  int fail_at;  /* > 0: fail with -EIO before yielding the nth value */
  int ran;
} powgen;

static void *powers(void *arg) {
  powgen *p = arg;
  p->ran = 1;
  long v = 1;
  for (long i = 0; i < p->count; i++, v *= p->base) {
    if (p->fail_at && i + 1 == p->fail_at) {
      p->cleaned = 1;
      return async_fail(-EIO);
    }
    if (p->log) seqlog_add(p->log, 1000 + (int)v);
    p->yield_rc = async_gen_yield(IPTR(v));
    if (p->yield_rc) {
      if (p->log) seqlog_add(p->log, p->yield_rc == -EPIPE ? -1 : -3);
      break;
    }
    if (p->pause > 0) async_sleep(p->pause);
  }
  p->cleaned = 1;
  if (p->log) seqlog_add(p->log, -2);
  return NULL;
}

typedef struct consumer {
  async_gen *g;
  seqlog *log;
  int take; /* stop after this many (0: all) */
  int rc;   /* how the loop ended */
  int close_rc;
  int next_after_close;
  void **items;
  size_t n;
} consumer;

static void *consume(void *arg) {
  consumer *c = arg;
  void *v;
  int got = 0;
  while ((c->rc = async_gen_next(c->g, &v)) == 0) {
    if (c->log) seqlog_add(c->log, PTRI(v));
    if (c->take && ++got == c->take) {
      c->close_rc = async_gen_close(c->g);
      c->next_after_close = async_gen_next(c->g, &v);
      break;
    }
  }
  return NULL;
}

static void *collect(void *arg) {
  consumer *c = arg;
  c->rc = async_gen_collect(c->g, &c->items, &c->n);
  return NULL;
}

static void test_generator_collects_every_value(void **state) {
  (void)state;
  async_loop *loop = new_loop();
  powgen p = {.base = 2, .count = 10, .pause = 0.0001};
  consumer c = {0};
  assert_int_equal(async_gen_new(&c.g, powers, &p, NULL), 0);
  assert_int_equal(run_task(loop, collect, &c, NULL), 0);
  assert_int_equal(c.rc, 0);
  assert_int_equal(c.n, 10);
  for (size_t i = 0; i < c.n; i++) assert_int_equal(PTRI(c.items[i]), 1 << i);
  free(c.items);
  assert_int_equal(p.cleaned, 1);
  assert_int_equal(p.yield_rc, 0);
  /* Exhausted: done again, and again. */
  assert_int_equal(run_task(loop, consume, &c, NULL), 0);
  assert_int_equal(c.rc, ASYNC_GEN_DONE);
  assert_int_equal(async_gen_free(c.g), 0);
  free_loop(loop);
}

static void test_generator_is_lazy_and_alternates(void **state) {
  (void)state;
  async_loop *loop = new_loop();
  seqlog log = {0};
  powgen p = {.base = 3, .count = 3, .log = &log};
  consumer c = {.log = &log};
  async_gen_new(&c.g, powers, &p, NULL);
  spin(loop);
  assert_int_equal(p.ran, 0); /* nothing runs before the first next */
  assert_int_equal(run_task(loop, consume, &c, NULL), 0);
  assert_int_equal(c.rc, ASYNC_GEN_DONE);
  /* Producer and consumer take turns, one value at a time. */
  int want[] = {1001, 1, 1003, 3, 1009, 9, -2};
  seqlog_expect(&log, want, 7);
  assert_int_equal(async_gen_free(c.g), 0);
  free_loop(loop);
}

static void test_generator_close_early_runs_the_cleanup(void **state) {
  (void)state;
  async_loop *loop = new_loop();
  seqlog log = {0};
  powgen p = {.base = 2, .count = 100, .log = &log, .pause = 0.0001};
  consumer c = {.log = &log, .take = 2};
  async_gen_new(&c.g, powers, &p, NULL);
  assert_int_equal(run_task(loop, consume, &c, NULL), 0);
  /* close returned after the producer saw -EPIPE and cleaned up. */
  int want[] = {1001, 1, 1002, 2, -1, -2};
  seqlog_expect(&log, want, 6);
  assert_int_equal(c.close_rc, 0);
  assert_int_equal(p.yield_rc, -EPIPE);
  assert_int_equal(p.cleaned, 1);
  assert_int_equal(c.next_after_close, -ESHUTDOWN);
  assert_int_equal(async_gen_free(c.g), 0);
  free_loop(loop);
}

static void *close_only(void *arg) {
  consumer *c = arg;
  c->close_rc = async_gen_close(c->g);
  c->rc = async_gen_close(c->g); /* again: nothing to do */
  return NULL;
}

static void test_generator_closed_before_start_never_runs(void **state) {
  (void)state;
  async_loop *loop = new_loop();
  powgen p = {.base = 2, .count = 3};
  consumer c = {0};
  async_gen_new(&c.g, powers, &p, NULL);
  assert_int_equal(run_task(loop, close_only, &c, NULL), 0);
  assert_int_equal(c.close_rc, 0);
  assert_int_equal(c.rc, 0);
  assert_int_equal(p.ran, 0);
  assert_int_equal(async_gen_free(c.g), 0);
  free_loop(loop);
}

static void *next_with_pending_cancel(void *arg) {
  consumer *c = arg;
  void *v;
  async_task_cancel(async_task_current());
  c->rc = async_gen_next(c->g, &v);
  return NULL;
}

static void
test_generator_next_with_a_pending_cancel_resumes_nothing(void **state) {
  (void)state;
  async_loop *loop = new_loop();
  powgen p = {.base = 2, .count = 3};
  consumer c = {0};
  async_gen_new(&c.g, powers, &p, NULL);
  assert_int_equal(run_task(loop, next_with_pending_cancel, &c, NULL), 0);
  assert_int_equal(c.rc, -ECANCELED);
  spin(loop);
  assert_int_equal(p.ran, 0); /* not started */
  assert_int_equal(run_task(loop, collect, &c, NULL), 0);
  assert_int_equal(c.rc, 0);
  assert_int_equal(c.n, 3); /* nothing skipped */
  assert_int_equal(PTRI(c.items[0]), 1);
  free(c.items);
  assert_int_equal(async_gen_free(c.g), 0);
  free_loop(loop);
}

static void *take_one(void *arg) {
  consumer *c = arg;
  void *v;
  c->rc = async_gen_next(c->g, &v);
  return v;
}

static void test_generator_free_of_a_live_generator_is_deferred(void **state) {
  (void)state;
  async_loop *loop = new_loop();
  powgen p = {.base = 2, .count = 100, .pause = 0.0001};
  consumer c = {0};
  async_gen_new(&c.g, powers, &p, NULL);
  void *v;
  assert_int_equal(run_task(loop, take_one, &c, &v), 0);
  assert_int_equal(c.rc, 0);
  assert_int_equal(PTRI(v), 1);
  assert_int_equal(p.cleaned, 0); /* suspended at its yield */
  assert_int_equal(async_gen_free(c.g), 0);
  spin(loop);
  spin(loop);
  assert_int_equal(p.yield_rc, -EPIPE);
  assert_int_equal(p.cleaned, 1); /* and its memory went with it (ASan) */
  free_loop(loop);
}

static void test_generator_error_is_reported_once(void **state) {
  (void)state;
  async_loop *loop = new_loop();
  powgen p = {.base = 2, .count = 10, .fail_at = 3};
  consumer c = {0};
  async_gen_new(&c.g, powers, &p, NULL);
  assert_int_equal(run_task(loop, collect, &c, NULL), 0);
  assert_int_equal(c.rc, -EIO);
  assert_int_equal(c.n, 2); /* what came before the error */
  assert_int_equal(PTRI(c.items[0]), 1);
  assert_int_equal(PTRI(c.items[1]), 2);
  free(c.items);
  assert_int_equal(run_task(loop, consume, &c, NULL), 0);
  assert_int_equal(c.rc, ASYNC_GEN_DONE);
  assert_int_equal(async_gen_free(c.g), 0);
  free_loop(loop);
}

static void test_generator_empty_collects_nothing(void **state) {
  (void)state;
  async_loop *loop = new_loop();
  powgen p = {.base = 2, .count = 0};
  consumer c = {0};
  async_gen_new(&c.g, powers, &p, NULL);
  assert_int_equal(run_task(loop, collect, &c, NULL), 0);
  assert_int_equal(c.rc, 0);
  assert_int_equal(c.n, 0);
  assert_null(c.items);
  assert_int_equal(async_gen_free(c.g), 0);
  free_loop(loop);
}

/* A producer that sleeps long before its value, and reports how its sleep
 * ended; `stubborn` ignores a cancellation and yields anyway. */
typedef struct slowgen {
  int stubborn;
  int sleep_rc;
  int yield_rc;
} slowgen;

static void *slow(void *arg) {
  slowgen *s = arg;
  s->sleep_rc = async_sleep(60.0);
  if (s->sleep_rc && !s->stubborn) return async_fail(s->sleep_rc);
  s->yield_rc = async_gen_yield(IPTR(77));
  return NULL;
}

typedef struct next_probe {
  async_gen *g;
  int rc;
  void *v;
  int after;
} next_probe;

static void *next_then_sleep(void *arg) {
  next_probe *n = arg;
  n->rc = async_gen_next(n->g, &n->v);
  n->after = async_sleep(0.001);
  return NULL;
}

static void
test_generator_consumer_cancel_is_passed_to_the_producer(void **state) {
  (void)state;
  async_loop *loop = new_loop();
  slowgen s = {0};
  next_probe n = {0};
  async_gen_new(&n.g, slow, &s, NULL);
  async_task *t;
  async_task_spawn(loop, &t, next_then_sleep, &n, NULL);
  spin(loop);
  spin(loop);
  double t0 = async_clock();
  async_task_cancel(t);
  async_loop_run_until_complete(loop, t, NULL);
  async_task_release(t);
  assert_true(async_clock() - t0 < 30.0);
  assert_int_equal(s.sleep_rc, -ECANCELED);
  assert_int_equal(n.rc, -ECANCELED);
  assert_int_equal(n.after, 0); /* delivered once */
  assert_int_equal(async_gen_free(n.g), 0);
  free_loop(loop);
}

static void
test_generator_value_yielded_after_cancel_is_not_lost(void **state) {
  (void)state;
  async_loop *loop = new_loop();
  slowgen s = {.stubborn = 1};
  next_probe n = {0};
  async_gen_new(&n.g, slow, &s, NULL);
  async_task *t;
  async_task_spawn(loop, &t, next_then_sleep, &n, NULL);
  spin(loop);
  spin(loop);
  async_task_cancel(t);
  async_loop_run_until_complete(loop, t, NULL);
  async_task_release(t);
  assert_int_equal(s.sleep_rc, -ECANCELED);
  assert_int_equal(n.rc, 0); /* the value came: returned */
  assert_int_equal(PTRI(n.v), 77);
  assert_int_equal(n.after, -ECANCELED);    /* the cancel, delivered later */
  assert_int_equal(async_gen_free(n.g), 0); /* closes the suspended one */
  spin(loop);
  assert_int_equal(s.yield_rc, -EPIPE);
  free_loop(loop);
}

/* The producer's own wait is cancelled from outside while it waits at a
 * yield; it goes on and yields again with no consumer waiting: the value
 * waits for the next consumer. */
typedef struct stray {
  int rc[3];
  async_task *self;
} stray;

static void *stray_producer(void *arg) {
  stray *s = arg;
  s->self = async_task_current();
  s->rc[0] = async_gen_yield(IPTR(1)); /* cancelled while suspended */
  s->rc[1] = async_gen_yield(IPTR(2)); /* nobody waits yet */
  s->rc[2] = async_gen_yield(IPTR(3));
  return NULL;
}

static void test_generator_producer_cancelled_at_its_yield(void **state) {
  (void)state;
  async_loop *loop = new_loop();
  stray s = {{0}, NULL};
  consumer c = {0};
  async_gen_new(&c.g, stray_producer, &s, NULL);
  void *v;
  assert_int_equal(run_task(loop, take_one, &c, &v), 0);
  assert_int_equal(PTRI(v), 1);
  async_task_cancel(s.self);
  spin(loop);
  spin(loop);
  assert_int_equal(s.rc[0], -ECANCELED);
  assert_int_equal(run_task(loop, take_one, &c, &v), 0);
  assert_int_equal(c.rc, 0);
  assert_int_equal(PTRI(v), 2);
  assert_int_equal(run_task(loop, take_one, &c, &v), 0);
  assert_int_equal(PTRI(v), 3);
  assert_int_equal(s.rc[1], 0);
  assert_int_equal(run_task(loop, take_one, &c, &v), 0);
  assert_int_equal(c.rc, ASYNC_GEN_DONE);
  assert_int_equal(async_gen_free(c.g), 0);
  free_loop(loop);
}

/* A producer that consumes another generator: nesting works. */
static void *doubled(void *arg) {
  async_gen *inner = arg;
  void *v;
  int err;
  while ((err = async_gen_next(inner, &v)) == 0)
    if (async_gen_yield(IPTR(2 * PTRI(v))) != 0) break;
  async_gen_close(inner);
  return err < 0 ? async_fail(err) : NULL;
}

static void test_generator_nested(void **state) {
  (void)state;
  async_loop *loop = new_loop();
  powgen p = {.base = 3, .count = 4};
  async_gen *inner;
  consumer c = {0};
  async_gen_new(&inner, powers, &p, NULL);
  async_task_options o;
  async_task_options_init(&o);
  o.name = "doubler";
  assert_int_equal(async_gen_new(&c.g, doubled, inner, &o), 0);
  assert_int_equal(run_task(loop, collect, &c, NULL), 0);
  assert_int_equal(c.rc, 0);
  assert_int_equal(c.n, 4);
  int want[] = {2, 6, 18, 54};
  for (int i = 0; i < 4; i++) assert_int_equal(PTRI(c.items[i]), want[i]);
  free(c.items);
  assert_int_equal(async_gen_free(c.g), 0);
  assert_int_equal(async_gen_free(inner), 0);
  free_loop(loop);
}

static void test_generator_loop_close_ends_the_producer(void **state) {
  (void)state;
  async_loop *loop = new_loop();
  powgen p = {.base = 2, .count = 100};
  consumer c = {0};
  async_gen_new(&c.g, powers, &p, NULL);
  void *v;
  assert_int_equal(run_task(loop, take_one, &c, &v), 0);
  assert_int_equal(async_loop_close(loop), 0);
  assert_int_equal(p.yield_rc, -ECANCELED);
  assert_int_equal(p.cleaned, 1);
  assert_int_equal(async_gen_free(c.g), 0);
  free_loop(loop);
}

/* {==== asend and athrow (issue 10 item 8) ============================= */

/* Yields twice what it is sent (0 for next); handles -EIO by yielding
 * 100, fails with any other error thrown. */
typedef struct echo {
  int ran, caught, end_rc;
} echo;

static void *echo_gen(void *arg) {
  echo *e = arg;
  e->ran = 1;
  long n = 0;
  for (;;) {
    void *sent = IPTR(-1);
    int rc = async_gen_yield_recv(IPTR(n), &sent);
    if (rc == -EIO) {
      e->caught++;
      n = 100;
      continue;
    }
    if (rc) {
      e->end_rc = rc;
      if (sent != NULL) return async_fail(-EFAULT); /* must be NULL */
      return rc == -EPIPE ? NULL : async_fail(rc);
    }
    n = 2 * PTRI(sent);
  }
}

typedef struct send_throw {
  async_gen *g, *fresh;
  echo e, fresh_e;
  int rc[12];
  void *v[12];
} send_throw;

static void *send_and_throw(void *arg) {
  send_throw *st = arg;
  int i = 0;
  st->rc[i] = async_gen_asend(st->g, IPTR(5), &st->v[i]); /* not started */
  i++;
  st->rc[i] = async_gen_asend(st->g, NULL, &st->v[i]); /* starts: 0 */
  i++;
  st->rc[i] = async_gen_asend(st->g, IPTR(5), &st->v[i]); /* 10 */
  i++;
  st->rc[i] = async_gen_next(st->g, &st->v[i]); /* sends NULL: 0 */
  i++;
  st->rc[i] = async_gen_athrow(st->g, -EIO, &st->v[i]); /* handled: 100 */
  i++;
  st->rc[i] = async_gen_asend(st->g, IPTR(21), &st->v[i]); /* 42 */
  i++;
  st->rc[i] = async_gen_athrow(st->g, 5, &st->v[i]); /* not an error */
  i++;
  st->rc[i] = async_gen_athrow(st->g, -ENOENT, &st->v[i]); /* passed on */
  i++;
  st->rc[i] = async_gen_next(st->g, &st->v[i]); /* done */
  i++;
  st->rc[i] = async_gen_athrow(st->fresh, -EIO, &st->v[i]); /* never runs */
  i++;
  st->rc[i] = async_gen_next(st->fresh, &st->v[i]);
  i++;
  async_gen_close(st->fresh);
  st->rc[i] = async_gen_asend(st->fresh, NULL, &st->v[i]); /* closed */
  return NULL;
}

static void test_generator_asend_and_athrow(void **state) {
  (void)state;
  async_loop *loop = new_loop();
  send_throw st = {0};
  assert_int_equal(async_gen_new(&st.g, echo_gen, &st.e, NULL), 0);
  assert_int_equal(async_gen_new(&st.fresh, echo_gen, &st.fresh_e, NULL), 0);
  assert_int_equal(run_task(loop, send_and_throw, &st, NULL), 0);
  static const int rc[12] = {-EINVAL,
                             0,
                             0,
                             0,
                             0,
                             0,
                             -EINVAL,
                             -ENOENT,
                             ASYNC_GEN_DONE,
                             -EIO,
                             ASYNC_GEN_DONE,
                             -ESHUTDOWN};
  static const long v[12] = {0, 0, 10, 0, 100, 42, 0, 0, 0, 0, 0, 0};
  for (int i = 0; i < 12; i++) {
    if (st.rc[i] != rc[i] || PTRI(st.v[i]) != v[i])
      fail_msg("call %d: %d, %d (want %d, %ld)", i, st.rc[i], PTRI(st.v[i]),
               rc[i], v[i]);
  }
  assert_int_equal(st.e.caught, 1);
  assert_int_equal(st.e.end_rc, -ENOENT);
  assert_int_equal(st.fresh_e.ran, 0);
  assert_int_equal(async_gen_free(st.g), 0);
  assert_int_equal(async_gen_free(st.fresh), 0);
  free_loop(loop);
}

/* A producer whose wait at a yield is cancelled from outside runs on its
 * own: no yield can receive a sent value or a thrown error, -EAGAIN,
 * until it waits at a yield that delivered its value; next still works. */
typedef struct loose {
  async_gen *g;
  async_task *producer;
  int first_rc, athrow_running, asend_running, athrow_waiting, next_rc;
  int asend_null_rc;
  void *v, *v2;
} loose;

static void *loose_gen(void *arg) {
  loose *l = arg;
  l->producer = async_task_current();
  async_gen_yield(IPTR(1)); /* -ECANCELED, from outside: go on */
  async_sleep(0.01);
  async_gen_yield(IPTR(2)); /* nobody asked yet: waits, undelivered */
  async_gen_yield(IPTR(3));
  return NULL;
}

static void *loose_consumer(void *arg) {
  loose *l = arg;
  l->first_rc = async_gen_next(l->g, &l->v);
  async_task_cancel(l->producer);
  async_sleep(0.005); /* the producer sleeps on its own */
  l->athrow_running = async_gen_athrow(l->g, -EIO, NULL);
  l->asend_running = async_gen_asend(l->g, IPTR(7), NULL);
  async_sleep(0.02); /* now it waits at yield(2), undelivered */
  l->athrow_waiting = async_gen_athrow(l->g, -EIO, NULL);
  l->next_rc = async_gen_next(l->g, &l->v);
  l->asend_null_rc = async_gen_asend(l->g, NULL, &l->v2); /* as next */
  async_gen_close(l->g);
  return NULL;
}

static void test_generator_send_and_throw_need_a_waiting_yield(void **state) {
  (void)state;
  async_loop *loop = new_loop();
  loose l = {0};
  assert_int_equal(async_gen_new(&l.g, loose_gen, &l, NULL), 0);
  assert_int_equal(run_task(loop, loose_consumer, &l, NULL), 0);
  assert_int_equal(l.first_rc, 0);
  assert_int_equal(l.athrow_running, -EAGAIN);
  assert_int_equal(l.asend_running, -EAGAIN);
  assert_int_equal(l.athrow_waiting, -EAGAIN);
  assert_int_equal(l.next_rc, 0);
  assert_int_equal(PTRI(l.v), 2);
  assert_int_equal(l.asend_null_rc, 0);
  assert_int_equal(PTRI(l.v2), 3);
  assert_int_equal(async_gen_free(l.g), 0);
  free_loop(loop);
}

/* The closer cancelled while it waits: the cancellation goes to the
 * producer, whose ignored yield then returns it at once instead of
 * waiting for another close; the close still reports -EPERM. */
typedef struct stubborn {
  async_gen *g;
  async_task *closer;
  int rc[3], close_rc, after_close;
} stubborn;

static void *stubborn_gen(void *arg) {
  stubborn *sb = arg;
  sb->rc[0] = async_gen_yield(IPTR(1)); /* -EPIPE */
  sb->rc[1] = async_gen_yield(IPTR(2)); /* ignored: -ECANCELED at once */
  sb->rc[2] = 1;
  return NULL;
}

static void *stubborn_closer(void *arg) {
  stubborn *sb = arg;
  void *v;
  async_gen_next(sb->g, &v);
  sb->close_rc = async_gen_close(sb->g);
  sb->after_close = async_yield(); /* our cancellation, still pending */
  return NULL;
}

static void
test_generator_cancelled_closer_of_a_stubborn_producer(void **state) {
  (void)state;
  async_loop *loop = new_loop();
  stubborn sb = {0};
  assert_int_equal(async_gen_new(&sb.g, stubborn_gen, &sb, NULL), 0);
  async_task *t;
  async_task_spawn(loop, &t, stubborn_closer, &sb, NULL);
  spin(loop); /* next starts the producer */
  spin(loop); /* which yields 1 */
  spin(loop); /* the close waits, the producer is resumed */
  assert_int_equal(async_task_cancel(t), 1);
  async_loop_run_until_complete(loop, t, NULL);
  async_task_release(t);
  spin(loop);
  assert_int_equal(sb.rc[0], -EPIPE);
  assert_int_equal(sb.rc[1], -ECANCELED);
  assert_int_equal(sb.rc[2], 1); /* and it went on to its end */
  assert_int_equal(sb.close_rc, -EPERM);
  assert_int_equal(sb.after_close, -ECANCELED);
  assert_int_equal(async_gen_free(sb.g), 0);
  free_loop(loop);
}

/* }==== */

/* {==== Misuse ========================================================== */

typedef struct misuse {
  async_gen *g;
  int yield_in_task;
  int next_own, close_own;
  int yield_after_close[2];
  int second_next;
  int next_rc, close_rc;
} misuse;

static void *plain_task_yields(void *arg) {
  misuse *m = arg;
  m->yield_in_task = async_gen_yield(NULL); /* not a generator */
  return NULL;
}

static void *selfish(void *arg) {
  misuse *m = arg;
  void *v;
  m->next_own = async_gen_next(m->g, &v);
  m->close_own = async_gen_close(m->g);
  async_gen_yield(IPTR(1));
  return NULL;
}

static void *ignores_close(void *arg) {
  misuse *m = arg;
  async_gen_yield(IPTR(1)); /* -EPIPE: closed */
  /* Ignored: the close returns -EPERM, and this waits for the next. */
  m->yield_after_close[0] = async_gen_yield(IPTR(2));
  m->yield_after_close[1] = async_sleep(0.001);
  return NULL;
}

static void *close_it(void *arg) {
  misuse *m = arg;
  m->close_rc = async_gen_close(m->g);
  return NULL;
}

static void *second_consumer(void *arg) {
  misuse *m = arg;
  void *v;
  m->second_next = async_gen_next(m->g, &v);
  return NULL;
}

static void *first_consumer(void *arg) {
  misuse *m = arg;
  void *v;
  async_task *other = async_spawn(second_consumer, m);
  m->next_rc = async_gen_next(m->g, &v); /* the other runs meanwhile */
  async_await(other, NULL);
  async_task_release(other);
  async_gen_close(m->g);
  return NULL;
}

static void *one_then_close(void *arg) {
  misuse *m = arg;
  void *v;
  m->next_rc = async_gen_next(m->g, &v);
  m->close_rc = async_gen_close(m->g);
  return NULL;
}

static void *sleepy_gen(void *arg) {
  (void)arg;
  async_sleep(0.01);
  async_gen_yield(IPTR(5));
  return NULL;
}

static void test_generator_misuse(void **state) {
  (void)state;
  async_loop *loop = new_loop();
  misuse m = {0};
  void *v = IPTR(1);
  /* Outside any task. */
  assert_int_equal(async_gen_yield(NULL), -EPERM);
  assert_int_equal(async_gen_new(&m.g, sleepy_gen, NULL, NULL), 0);
  assert_int_equal(async_gen_next(m.g, &v), -EPERM);
  assert_null(v);
  assert_int_equal(async_gen_close(m.g), -EPERM);
  assert_int_equal(async_gen_collect(m.g, NULL, NULL), -EINVAL);
  /* yield_value in a task that is no generator. */
  assert_int_equal(run_task(loop, plain_task_yields, &m, NULL), 0);
  assert_int_equal(m.yield_in_task, -EPERM);
  /* Two consumers at once. */
  assert_int_equal(run_task(loop, first_consumer, &m, NULL), 0);
  assert_int_equal(m.next_rc, 0);
  assert_int_equal(m.second_next, -EBUSY);
  assert_int_equal(async_gen_free(m.g), 0);
  /* next and close from the producer itself. */
  assert_int_equal(async_gen_new(&m.g, selfish, &m, NULL), 0);
  assert_int_equal(run_task(loop, one_then_close, &m, NULL), 0);
  assert_int_equal(m.next_own, -EDEADLK);
  assert_int_equal(m.close_own, -EDEADLK);
  assert_int_equal(m.next_rc, 0);
  assert_int_equal(async_gen_free(m.g), 0);
  /* Issue 10 item 8: a producer that yields again after the close makes
   * the close report it, asyncio's "ignored GeneratorExit"; it is left at
   * that yield, undelivered, and a second close tells it again. */
  assert_int_equal(async_gen_new(&m.g, ignores_close, &m, NULL), 0);
  m.yield_after_close[0] = m.yield_after_close[1] = 1;
  assert_int_equal(run_task(loop, one_then_close, &m, NULL), 0);
  assert_int_equal(m.close_rc, -EPERM);
  assert_int_equal(m.yield_after_close[0], 1);       /* still waiting there */
  assert_int_equal(async_gen_next(m.g, &v), -EPERM); /* outside a task */
  assert_int_equal(run_task(loop, close_it, &m, NULL), 0);
  assert_int_equal(m.close_rc, 0); /* it returned this time */
  assert_int_equal(m.yield_after_close[0], -EPIPE);
  assert_int_equal(m.yield_after_close[1], 0);
  assert_int_equal(async_gen_free(m.g), 0);
  /* Freed while it waits at an ignored yield: told again. */
  assert_int_equal(async_gen_new(&m.g, ignores_close, &m, NULL), 0);
  m.yield_after_close[0] = m.yield_after_close[1] = 1;
  assert_int_equal(run_task(loop, one_then_close, &m, NULL), 0);
  assert_int_equal(m.close_rc, -EPERM);
  assert_int_equal(async_gen_free(m.g), 0);
  spin(loop);
  assert_int_equal(m.yield_after_close[0], -EPIPE);
  /* Bad arguments. */
  assert_int_equal(async_gen_new(NULL, sleepy_gen, NULL, NULL), -EINVAL);
  assert_int_equal(async_gen_new(&m.g, NULL, NULL, NULL), -EINVAL);
  assert_null(m.g);
  async_task_options o;
  async_task_options_init(&o);
  o.size = 0;
  assert_int_equal(async_gen_new(&m.g, sleepy_gen, NULL, &o), -EINVAL);
  assert_int_equal(async_gen_free(NULL), 0);
  free_loop(loop);
}

/* }==== */

/* The producer returns; before the consumer resumes from next, another
 * task frees the generator: refused, since the consumer still reads it. */
typedef struct {
  async_gen *g;
  int free_in_window, next_rc, free_after;
} endwin;

static void *endwin_freer(void *arg) {
  endwin *e = arg;
  e->free_in_window = async_gen_free(e->g);
  return NULL;
}

static void *endwin_producer(void *arg) {
  async_task_spawn(async_loop_current(), NULL, endwin_freer, arg, NULL);
  return NULL; /* wakes the consumer, queued after the freer */
}

static void *endwin_consumer(void *arg) {
  endwin *e = arg;
  e->next_rc = async_gen_next(e->g, NULL);
  e->free_after = async_gen_free(e->g);
  return NULL;
}

static void test_generator_free_between_end_and_resumption(void **state) {
  (void)state;
  async_loop *loop = new_loop();
  endwin e = {0};
  assert_int_equal(async_gen_new(&e.g, endwin_producer, &e, NULL), 0);
  assert_int_equal(run_task(loop, endwin_consumer, &e, NULL), 0);
  free_loop(loop);
  assert_int_equal(e.free_in_window, -EBUSY);
  assert_int_equal(e.next_rc, ASYNC_GEN_DONE);
  assert_int_equal(e.free_after, 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_generator_collects_every_value),
      cmocka_unit_test(test_generator_is_lazy_and_alternates),
      cmocka_unit_test(test_generator_close_early_runs_the_cleanup),
      cmocka_unit_test(test_generator_closed_before_start_never_runs),
      cmocka_unit_test(
          test_generator_next_with_a_pending_cancel_resumes_nothing),
      cmocka_unit_test(test_generator_free_of_a_live_generator_is_deferred),
      cmocka_unit_test(test_generator_error_is_reported_once),
      cmocka_unit_test(test_generator_empty_collects_nothing),
      cmocka_unit_test(
          test_generator_consumer_cancel_is_passed_to_the_producer),
      cmocka_unit_test(test_generator_value_yielded_after_cancel_is_not_lost),
      cmocka_unit_test(test_generator_producer_cancelled_at_its_yield),
      cmocka_unit_test(test_generator_nested),
      cmocka_unit_test(test_generator_loop_close_ends_the_producer),
      cmocka_unit_test(test_generator_asend_and_athrow),
      cmocka_unit_test(test_generator_send_and_throw_need_a_waiting_yield),
      cmocka_unit_test(test_generator_cancelled_closer_of_a_stubborn_producer),
      cmocka_unit_test(test_generator_misuse),
      cmocka_unit_test(test_generator_free_between_end_and_resumption),
  };
  return cmocka_run_group_tests_name("generator", tests, NULL, NULL);
}
