/* SPDX-License-Identifier: MIT */
/* A loop that moves between threads while it is not running (the rule in
 * <async.h>): its tasks, suspended on one thread, are resumed on the next
 * one, in every kind of wait, and come back with their results whole. The
 * library must then reach each thread's own thread-locals (the running
 * loop, the running stack), not those of the thread a task was suspended
 * on, which a compiler keeps across a call when nothing says a call may
 * return on another thread (GCC for AArch64 does: see "tls" in
 * src/os/os.h). CI runs this under qemu AArch64 too.
 *
 * Each test runs the loop in stages, each on a thread of its own: a stop
 * asked before a run makes it run one iteration, in which the tasks that
 * are ready run until they wait again. Between the stages the test wakes
 * the waits (an event, a queue, a pipe, a future) from outside the loop,
 * so that every wait a task starts in one stage ends in a later one, on
 * another thread. */
#include "helpers.h"

#include "os/os.h" /* white box: the stack the overflow reporter sees */

#include <pthread.h>
#include <unistd.h>

/* {==== Stages, each on a thread of its own ============================ */

enum stage_how { STAGE_ONE, STAGE_UNTIL, STAGE_CLOSE };

/* A stage's thread stays alive, parked, until the test ends: every stage
 * then has a thread (and thread-locals) of its own, where a thread made
 * after another one ended could be given the same. */
typedef struct stage {
  async_loop *loop;
  enum stage_how how;
  async_future *until; /* STAGE_UNTIL: run until it is done */
  int rc;
  pthread_t th;
  int done, release; /* under stages_mu */
} stage;

static stage stages[24];
static int nstages;
static pthread_mutex_t stages_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t stages_cv = PTHREAD_COND_INITIALIZER;

static void stage_run(stage *s) {
  switch (s->how) {
  case STAGE_ONE: /* a stop asked first: one iteration */
    s->rc = async_loop_stop(s->loop);
    if (!s->rc) s->rc = async_loop_run_forever(s->loop);
    break;
  case STAGE_UNTIL:
    s->rc = async_loop_run_until_complete(s->loop, s->until, NULL);
    break;
  case STAGE_CLOSE:
    s->rc = async_loop_close(s->loop);
    break;
  }
}

static void *stage_main(void *arg) {
  stage *s = arg;
  stage_run(s);
  pthread_mutex_lock(&stages_mu);
  s->done = 1;
  pthread_cond_broadcast(&stages_cv);
  while (!s->release) pthread_cond_wait(&stages_cv, &stages_mu);
  pthread_mutex_unlock(&stages_mu);
  return NULL;
}

/* Runs the next stage: on the test's own thread if `here`, else on a new
 * thread with a small stack, as a worker of a program's pool would. */
static int stage_next(async_loop *loop, enum stage_how how, async_future *until,
                      int here) {
  assert_true(nstages < (int)(sizeof stages / sizeof stages[0]));
  stage *s = &stages[nstages++];
  memset(s, 0, sizeof *s);
  s->loop = loop;
  s->how = how;
  s->until = until;
  s->rc = -1;
  if (here) {
    s->th = pthread_self();
    stage_run(s);
    s->release = 1;
    return s->rc;
  }
  pthread_attr_t attr;
  assert_int_equal(pthread_attr_init(&attr), 0);
  assert_int_equal(pthread_attr_setstacksize(&attr, 256 * 1024), 0);
  assert_int_equal(pthread_create(&s->th, &attr, stage_main, s), 0);
  pthread_attr_destroy(&attr);
  pthread_mutex_lock(&stages_mu);
  while (!s->done) pthread_cond_wait(&stages_cv, &stages_mu);
  pthread_mutex_unlock(&stages_mu);
  return s->rc;
}

/* Lets the stages' threads end. */
static void stages_end(void) {
  pthread_mutex_lock(&stages_mu);
  for (int i = 0; i < nstages; i++) stages[i].release = 1;
  pthread_cond_broadcast(&stages_cv);
  pthread_mutex_unlock(&stages_mu);
  for (int i = 0; i < nstages; i++)
    if (!pthread_equal(stages[i].th, pthread_self()))
      assert_int_equal(pthread_join(stages[i].th, NULL), 0);
  nstages = 0;
}

/* }==== */

/* {==== What a task sees after each wait ================================ */

/* The threads a task ran on, one entry per wait it came back from, and
 * the first thing that was wrong when it came back. */
typedef struct probe {
  pthread_t th[16];
  int n;
  const char *wrong;
  async_task *self;
} probe;

/* Out of line: read in the task's own code after a wait, the thread-local
 * could otherwise be read through the thread pointer of before the wait
 * (see "tls" in src/os/os.h). */
static ASYNC__NOINLINE int stack_is_current(const void *local) {
  const async__stack *s = async__stack_current;
  if (!s) return 0;
  const char *lo = async__stack_lo(s);
  return (const char *)local >= lo &&
         (const char *)local < lo + async__stack_size(s);
}

/* Called by a task at the start and after each wait: where it is, and
 * whether the library agrees that this task runs on this loop. */
static void probe_here(probe *p, async_loop *loop) {
  int local = 0;
  if (p->n < (int)(sizeof p->th / sizeof p->th[0]))
    p->th[p->n++] = pthread_self();
  if (p->wrong) return;
  if (async_loop_current() != loop)
    p->wrong = "async_loop_current is not the task's loop";
  else if (p->self && async_task_current() != p->self)
    p->wrong = "async_task_current is not the task";
  else if (!stack_is_current(&local))
    p->wrong = "the thread's current stack is not the task's";
}

/* Every wait ended on another thread than the one it started on. */
static void probe_moved_at_each_wait(const probe *p, int waits) {
  if (p->wrong) fail_msg("%s", p->wrong);
  assert_int_equal(p->n, waits + 1);
  for (int i = 0; i < waits; i++)
    if (pthread_equal(p->th[i], p->th[i + 1]))
      fail_msg("wait %d ended on the thread it started on", i);
}

/* }==== */

/* {==== Tasks in every kind of wait ===================================== */

static struct {
  async_loop *loop;
  async_event *ev;       /* set by the test between stages */
  async_queue *q;        /* fed by the test between stages */
  async_lock *lock;      /* held by `holder` across a wait on ev */
  async_future *fut;     /* resolved by the test between stages */
  async_context_var *cv; /* set by `ctxvar` before its waits */
  async_gen *gen;        /* its producer waits on ev before each value */
  int pipe[2];           /* written by the test between stages */

  probe yielder[2], sleeper, child, awaiter, getter, holder, locker, fd,
      waitfor, ctxvar, producer, consumer;
  long yields; /* by both yielders, all stages */
  int sleep_rc, holder_rc, locker_rc, fd_rc, waitfor_rc, ctx_rc;
  void *await_res, *waitfor_res, *got[3], *ctx_seen[3];
  void *gen_got[3];
  int gen_rc[4];
} w;

#define STAGES 4 /* of one iteration each, before the run to the end */

/* Two yielders, ready side by side at each stage: the first one's yield
 * switches straight to the second (the switch's fast path, which used to
 * read the loop from the thread after the switch). */
static void *yielder(void *arg) {
  probe *p = arg;
  probe_here(p, w.loop);
  for (int i = 0; i < STAGES; i++) {
    if (async_yield() != 0) return IPTR(-1);
    w.yields++;
    probe_here(p, w.loop);
  }
  return NULL;
}

static void *sleeper(void *arg) {
  (void)arg;
  probe_here(&w.sleeper, w.loop);
  w.sleep_rc = async_sleep(0.001); /* due only in a later stage */
  probe_here(&w.sleeper, w.loop);
  return NULL;
}

static void *child(void *arg) {
  (void)arg;
  probe_here(&w.child, w.loop);
  if (async_event_wait(w.ev) != 0) return IPTR(-1);
  probe_here(&w.child, w.loop);
  return IPTR(42);
}

static void *awaiter(void *arg) {
  (void)arg;
  probe_here(&w.awaiter, w.loop);
  async_task *c = async_spawn(child, NULL);
  if (!c) return IPTR(-1);
  int rc = async_await(c, &w.await_res);
  probe_here(&w.awaiter, w.loop);
  async_task_release(c);
  return IPTR(rc);
}

static void *getter(void *arg) {
  (void)arg;
  probe_here(&w.getter, w.loop);
  for (int i = 0; i < 3; i++) {
    if (async_queue_get(w.q, &w.got[i]) != 0) return IPTR(-1);
    probe_here(&w.getter, w.loop);
  }
  return NULL;
}

static void *holder(void *arg) {
  (void)arg;
  probe_here(&w.holder, w.loop);
  w.holder_rc = async_lock_acquire(w.lock); /* free: does not wait */
  if (!w.holder_rc) w.holder_rc = async_event_wait(w.ev);
  probe_here(&w.holder, w.loop);
  if (!w.holder_rc) w.holder_rc = async_lock_release(w.lock);
  return NULL;
}

static void *locker(void *arg) {
  (void)arg;
  probe_here(&w.locker, w.loop);
  w.locker_rc = async_lock_acquire(w.lock); /* held: waits */
  probe_here(&w.locker, w.loop);
  if (!w.locker_rc) w.locker_rc = async_lock_release(w.lock);
  return NULL;
}

static void *fd_reader(void *arg) {
  (void)arg;
  probe_here(&w.fd, w.loop);
  w.fd_rc = async_fd_wait(w.pipe[0], ASYNC_READABLE, ASYNC_NO_TIMEOUT);
  probe_here(&w.fd, w.loop);
  char c;
  if (w.fd_rc > 0 && read(w.pipe[0], &c, 1) != 1) w.fd_rc = -EIO;
  return NULL;
}

static void *waitfor(void *arg) {
  (void)arg;
  probe_here(&w.waitfor, w.loop);
  w.waitfor_rc = async_wait_for(w.fut, 60.0, &w.waitfor_res);
  probe_here(&w.waitfor, w.loop);
  return NULL;
}

/* A context variable set by the task reads back the same after each wait:
 * the library finds the task's context through the thread's loop. */
static void *ctxvar(void *arg) {
  (void)arg;
  probe_here(&w.ctxvar, w.loop);
  w.ctx_rc = async_context_var_set(w.cv, IPTR(7), NULL);
  for (int i = 0; i < 3 && !w.ctx_rc; i++) {
    void *item;
    /* The queue is the getter's too: each put wakes the first waiter,
     * and the test puts enough for both. */
    w.ctx_rc = async_queue_get(w.q, &item);
    probe_here(&w.ctxvar, w.loop);
    if (!w.ctx_rc) w.ctx_rc = async_context_var_get(w.cv, &w.ctx_seen[i]);
  }
  return NULL;
}

static void *producer(void *arg) {
  (void)arg;
  probe_here(&w.producer, w.loop);
  for (int i = 0; i < 3; i++) {
    if (async_event_wait(w.ev) != 0) return IPTR(-1);
    probe_here(&w.producer, w.loop);
    if (async_gen_yield(IPTR(100 + i)) != 0) break;
  }
  return NULL;
}

static void *consumer(void *arg) {
  (void)arg;
  probe_here(&w.consumer, w.loop);
  for (int i = 0; i < 4; i++) {
    w.gen_rc[i] = async_gen_next(w.gen, i < 3 ? &w.gen_got[i] : NULL);
    probe_here(&w.consumer, w.loop);
    if (w.gen_rc[i]) break;
  }
  return NULL;
}

static void *gather_all(void *arg) {
  async_task **t = arg;
  size_t n = 0;
  while (t[n]) n++;
  return IPTR(async_gather(t, n, NULL));
}

/* Wakes what waits on the test: a byte in the pipe, two items (one for
 * the getter, one for ctxvar), the event pulsed (set and cleared, so that
 * the next waits wait again) and, once, the future. */
static void wake_from_outside(int k) {
  assert_int_equal(write(w.pipe[1], "x", 1), 1);
  assert_int_equal(async_queue_put_nowait(w.q, IPTR(10 + k)), 0);
  assert_int_equal(async_queue_put_nowait(w.q, IPTR(20 + k)), 0);
  assert_true(async_event_set(w.ev) >= 0);
  assert_int_equal(async_event_clear(w.ev), 0);
  if (k == 1) assert_int_equal(async_future_set_result(w.fut, IPTR(5)), 0);
}

/* }==== */

/* Every kind of wait, suspended on one thread and resumed on another: a
 * yield (fast and slow switch), a sleep, an await, a queue, a lock, an
 * fd, a wait_for on a future, a generator's both sides, and a context
 * variable read back after each. Stages run on new threads and on the
 * test's own thread in turn (back to a thread that ran the loop before),
 * then a run to the end on another thread, and the close on yet another. */
static void test_thread_resumed_on_another_thread_in_every_wait(void **state) {
  (void)state;
  memset(&w, 0, sizeof w);
  w.loop = new_loop();
  assert_int_equal(async_event_new(&w.ev), 0);
  assert_int_equal(async_queue_new(&w.q, 0, NULL), 0);
  assert_int_equal(async_lock_new(&w.lock), 0);
  assert_int_equal(async_future_new(w.loop, &w.fut), 0);
  assert_int_equal(async_context_var_new(&w.cv, NULL), 0);
  assert_int_equal(async_gen_new(&w.gen, producer, NULL, NULL), 0);
  assert_int_equal(pipe(w.pipe), 0);

  struct {
    async_fn fn;
    void *arg;
    probe *p;
  } spec[] = {
      {yielder, &w.yielder[0], &w.yielder[0]},
      {yielder, &w.yielder[1], &w.yielder[1]},
      {sleeper, NULL, &w.sleeper},
      {awaiter, NULL, &w.awaiter},
      {getter, NULL, &w.getter},
      {holder, NULL, &w.holder},
      {locker, NULL, &w.locker},
      {fd_reader, NULL, &w.fd},
      {waitfor, NULL, &w.waitfor},
      {ctxvar, NULL, &w.ctxvar},
      {consumer, NULL, &w.consumer},
  };
  enum { NSPEC = sizeof spec / sizeof spec[0] };
  async_task *t[NSPEC + 1] = {NULL};
  for (int i = 0; i < NSPEC; i++) {
    assert_int_equal(
        async_task_spawn(w.loop, &t[i], spec[i].fn, spec[i].arg, NULL), 0);
    spec[i].p->self = t[i];
  }

  /* Stage 0 starts every task, on a new thread; stage 1 runs on the
   * test's own thread, every other stage on a new one. */
  for (int k = 0; k < STAGES; k++) {
    if (k) wake_from_outside(k);
    assert_int_equal(stage_next(w.loop, STAGE_ONE, NULL, k == 1), 0);
    assert_null(async_loop_current()); /* not left set on this thread */
  }
  async_task *all;
  assert_int_equal(async_task_spawn(w.loop, &all, gather_all, t, NULL), 0);
  for (int k = STAGES; w.gen_rc[3] != ASYNC_GEN_DONE; k++) {
    assert_true(k < 16);
    wake_from_outside(k);
    assert_int_equal(stage_next(w.loop, STAGE_ONE, NULL, 0), 0);
  }
  assert_int_equal(stage_next(w.loop, STAGE_UNTIL, all, 0), 0);
  void *res;
  assert_int_equal(async_future_result(all, &res), 0);
  assert_int_equal(PTRI(res), 0);

  /* Results whole. */
  assert_int_equal(w.yields, 2 * STAGES);
  assert_int_equal(w.sleep_rc, 0);
  assert_int_equal(PTRI(w.await_res), 42);
  for (int i = 0; i < 3; i++) {
    /* The item put for it at stage i + 1, one of the two. */
    int got = PTRI(w.got[i]);
    assert_true(got == 11 + i || got == 21 + i);
    assert_ptr_equal(w.ctx_seen[i], IPTR(7));
    assert_ptr_equal(w.gen_got[i], IPTR(100 + i));
    assert_int_equal(w.gen_rc[i], 0);
  }
  assert_int_equal(w.gen_rc[3], ASYNC_GEN_DONE);
  assert_int_equal(w.holder_rc, 0);
  assert_int_equal(w.locker_rc, 0);
  assert_int_equal(w.fd_rc, ASYNC_READABLE);
  assert_int_equal(w.waitfor_rc, 0);
  assert_int_equal(PTRI(w.waitfor_res), 5);
  assert_int_equal(w.ctx_rc, 0);

  /* Moved, at every wait. */
  probe_moved_at_each_wait(&w.yielder[0], STAGES);
  probe_moved_at_each_wait(&w.yielder[1], STAGES);
  probe_moved_at_each_wait(&w.sleeper, 1);
  probe_moved_at_each_wait(&w.child, 1);
  probe_moved_at_each_wait(&w.awaiter, 1);
  probe_moved_at_each_wait(&w.getter, 3);
  probe_moved_at_each_wait(&w.holder, 1);
  probe_moved_at_each_wait(&w.locker, 1);
  probe_moved_at_each_wait(&w.fd, 1);
  probe_moved_at_each_wait(&w.waitfor, 1);
  probe_moved_at_each_wait(&w.ctxvar, 3);
  probe_moved_at_each_wait(&w.producer, 3);
  probe_moved_at_each_wait(&w.consumer, 4);

  assert_int_equal(stage_next(w.loop, STAGE_CLOSE, NULL, 0), 0);
  stages_end();
  for (int i = 0; i < NSPEC; i++) assert_int_equal(async_task_release(t[i]), 0);
  assert_int_equal(async_task_release(all), 0);
  assert_int_equal(async_gen_free(w.gen), 0);
  assert_int_equal(async_future_release(w.fut), 0);
  assert_int_equal(async_context_var_free(w.cv), 0);
  assert_int_equal(async_lock_free(w.lock), 0);
  assert_int_equal(async_queue_free(w.q), 0);
  assert_int_equal(async_event_free(w.ev), 0);
  close(w.pipe[0]);
  close(w.pipe[1]);
  free_loop(w.loop);
}

/* {==== The close, on another thread ==================================== */

static struct {
  async_loop *loop;
  probe p[3];
  int rc[3];
} spin;

/* Yields until cancelled: each yield but the last of a batch switches
 * straight to the next spinner. */
static void *spinner(void *arg) {
  probe *p = arg;
  int i = (int)(p - spin.p);
  probe_here(p, spin.loop);
  int rc;
  while ((rc = async_yield()) == 0) {
    if (p->n < 2) probe_here(p, spin.loop);
  }
  spin.rc[i] = rc;
  probe_here(p, spin.loop);
  return NULL;
}

/* Tasks left ready in yields, some through the fast switch, are resumed
 * by a close on another thread, and unwind there. */
static void test_thread_close_on_another_thread_resumes_yielders(void **state) {
  (void)state;
  memset(&spin, 0, sizeof spin);
  spin.loop = new_loop();
  async_task *t[3];
  for (int i = 0; i < 3; i++) {
    assert_int_equal(
        async_task_spawn(spin.loop, &t[i], spinner, &spin.p[i], NULL), 0);
    spin.p[i].self = t[i];
  }
  assert_int_equal(stage_next(spin.loop, STAGE_ONE, NULL, 1), 0);
  assert_int_equal(stage_next(spin.loop, STAGE_ONE, NULL, 1), 0);
  assert_int_equal(stage_next(spin.loop, STAGE_CLOSE, NULL, 0), 0);
  stages_end();
  for (int i = 0; i < 3; i++) {
    assert_int_equal(spin.rc[i], -ECANCELED);
    if (spin.p[i].wrong) fail_msg("%s", spin.p[i].wrong);
    assert_int_equal(spin.p[i].n, 3);
    assert_true(pthread_equal(spin.p[i].th[0], spin.p[i].th[1]));
    assert_false(pthread_equal(spin.p[i].th[1], spin.p[i].th[2]));
    assert_int_equal(async_future_done(t[i]), 1);
    assert_int_equal(async_task_release(t[i]), 0);
  }
  free_loop(spin.loop);
}

/* }==== */

/* {==== Never on two threads at once ==================================== */

static void *try_run(void *arg) {
  async_loop *loop = arg;
  static int rc[2];
  rc[0] = async_loop_run_forever(loop);
  rc[1] = async_loop_close(loop);
  return rc;
}

static struct { int run_rc, close_rc; } other;

static void *runs_while_another_thread_tries(void *arg) {
  pthread_t th;
  void *r;
  if (pthread_create(&th, NULL, try_run, arg) != 0) return IPTR(-1);
  pthread_join(th, &r); /* blocks the loop, briefly */
  other.run_rc = ((int *)r)[0];
  other.close_rc = ((int *)r)[1];
  return NULL;
}

/* While a loop runs on one thread, another cannot run or close it. */
static void test_thread_running_loop_refuses_a_second_thread(void **state) {
  (void)state;
  async_loop *loop = new_loop();
  assert_int_equal(run_task(loop, runs_while_another_thread_tries, loop, NULL),
                   0);
  assert_int_equal(other.run_rc, -EBUSY);
  assert_int_equal(other.close_rc, -EBUSY);
  free_loop(loop);
}

/* }==== */

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_thread_resumed_on_another_thread_in_every_wait),
      cmocka_unit_test(test_thread_close_on_another_thread_resumes_yielders),
      cmocka_unit_test(test_thread_running_loop_refuses_a_second_thread),
  };
  return cmocka_run_group_tests_name("thread", tests, NULL, NULL);
}
