/* SPDX-License-Identifier: MIT */
/* The thread pool: results, the bound, laziness, cancellation while a job
 * runs and while it waits, timeouts, the loop's close with work running
 * and queued, and the DNS lane beside the work lane. Blocking functions
 * wait on gates the tests open, never on timing. */
#include "pool_helpers.h"

#include <dirent.h>
#include <signal.h>
#include <time.h>
#include <unistd.h>

/* What dispose callbacks saw; they run on the loop's thread only. */
static struct {
  int calls, ran, off_thread;
  void *arg, *result;
  pthread_t loop_thread;
} disposed;

static void dispose_reset(void) {
  memset(&disposed, 0, sizeof disposed);
  disposed.loop_thread = pthread_self();
}

static void record_dispose(void *arg, void *result, int ran) {
  disposed.calls++;
  disposed.ran += ran;
  disposed.arg = arg;
  disposed.result = result;
  if (!pthread_equal(pthread_self(), disposed.loop_thread))
    disposed.off_thread++;
}

static void *twice(void *arg) { return IPTR(PTRI(arg) * 2); }

static gate g;

/* Waits at the gate `g`, then returns its argument. */
static void *blocker(void *arg) {
  gate_pass(&g);
  return arg;
}

static atomic_int ran_unwanted;
static void *must_not_run(void *arg) {
  atomic_fetch_add(&ran_unwanted, 1);
  return arg;
}

/* ---- Results, laziness, the bound ------------------------------------- */

typedef struct {
  int err[64];
  void *res[64];
  int threads_before, threads_after;
} seen;

static void *sequential(void *arg) {
  seen *s = arg;
  s->threads_before = async_pool_threads(async_loop_current(), ASYNC_POOL_WORK);
  for (int i = 0; i < 8; i++)
    s->err[i] = async_to_thread(twice, IPTR(i + 1), &s->res[i], NULL);
  s->threads_after = async_pool_threads(async_loop_current(), ASYNC_POOL_WORK);
  return NULL;
}

static void test_pool_results_and_lazy_start(void **state) {
  (void)state;
  async_loop *loop = new_loop();
  assert_int_equal(async_pool_threads(loop, ASYNC_POOL_WORK), 0);
  assert_int_equal(async_pool_threads(loop, ASYNC_POOL_DNS), 0);
  seen s = {0};
  assert_int_equal(run_task(loop, sequential, &s, NULL), 0);
  assert_int_equal(s.threads_before, 0);
  for (int i = 0; i < 8; i++) {
    assert_int_equal(s.err[i], 0);
    assert_int_equal(PTRI(s.res[i]), 2 * (i + 1));
  }
  /* One job at a time needs one thread; the DNS lane was never used. */
  assert_int_equal(s.threads_after, 1);
  assert_int_equal(async_pool_threads(loop, ASYNC_POOL_DNS), 0);
  free_loop(loop);
}

typedef struct {
  int i, err;
  void *res;
} one_job;

static seqlog order;

static void *job_task(void *arg) {
  one_job *j = arg;
  j->err = async_to_thread(blocker, IPTR(j->i), &j->res, NULL);
  seqlog_add(&order, j->i);
  return NULL;
}

static void *bounded_main(void *arg) {
  int n = PTRI(arg);
  one_job jobs[64];
  async_task *t[64];
  for (int i = 0; i < n; i++) {
    jobs[i] = (one_job){.i = i, .err = 1};
    t[i] = async_spawn(job_task, &jobs[i]);
  }
  /* Three threads take three jobs; the others wait in the queue. */
  await_count(&g.entered, 3);
  async_sleep(0.05);
  seqlog_add(&order, -atomic_load(&g.entered));
  seqlog_add(&order,
             -async_pool_threads(async_loop_current(), ASYNC_POOL_WORK));
  gate_open(&g);
  async_gather(t, (size_t)n, NULL);
  for (int i = 0; i < n; i++) {
    if (jobs[i].err || PTRI(jobs[i].res) != i) seqlog_add(&order, 1000 + i);
    async_task_release(t[i]);
  }
  return NULL;
}

static void test_pool_bounded_beyond_max(void **state) {
  (void)state;
  gate_init(&g);
  memset(&order, 0, sizeof order);
  async_loop *loop = new_loop();
  assert_int_equal(async_pool_set_max(loop, ASYNC_POOL_WORK, 3), 0);
  assert_int_equal(async_pool_threads(loop, ASYNC_POOL_WORK), 0);
  assert_int_equal(run_task(loop, bounded_main, IPTR(40), NULL), 0);
  assert_true(order.n >= 2);
  assert_int_equal(order.v[0], -3); /* entered the gate before it opened */
  assert_int_equal(order.v[1], -3); /* threads */
  assert_int_equal(order.n, 2 + 40);
  for (int i = 2; i < order.n; i++) assert_true(order.v[i] < 40);
  assert_int_equal(atomic_load(&g.most), 3);
  assert_int_equal(atomic_load(&g.entered), 40);
  assert_int_equal(async_pool_threads(loop, ASYNC_POOL_WORK), 3);
  free_loop(loop);
  gate_destroy(&g);
}

/* Completions wake their tasks in the order the functions returned. */
static gate gates[3];
static void *gated(void *arg) {
  gate_pass(&gates[PTRI(arg)]);
  return arg;
}

static void *ordered_job(void *arg) {
  void *res = NULL;
  int err = async_to_thread(gated, arg, &res, NULL);
  seqlog_add(&order, err ? -1 : PTRI(res));
  return NULL;
}

static void *ordering_main(void *arg) {
  (void)arg;
  async_task *t[3];
  for (int i = 0; i < 3; i++) t[i] = async_spawn(ordered_job, IPTR(i));
  for (int i = 0; i < 3; i++) await_count(&gates[i].entered, 1);
  int open_order[3] = {2, 0, 1};
  for (int k = 0; k < 3; k++) {
    int n = order.n;
    gate_open(&gates[open_order[k]]);
    for (int i = 0; i < 10000 && order.n == n; i++) async_sleep(0.001);
  }
  async_gather(t, 3, NULL);
  for (int i = 0; i < 3; i++) async_task_release(t[i]);
  return NULL;
}

static void test_pool_completion_order(void **state) {
  (void)state;
  memset(&order, 0, sizeof order);
  for (int i = 0; i < 3; i++) gate_init(&gates[i]);
  async_loop *loop = new_loop();
  assert_int_equal(run_task(loop, ordering_main, NULL, NULL), 0);
  int want[] = {2, 0, 1};
  seqlog_expect(&order, want, 3);
  free_loop(loop);
  for (int i = 0; i < 3; i++) gate_destroy(&gates[i]);
}

/* ---- Cancellation ------------------------------------------------------ */

typedef struct {
  int err;
  int gate_open_at_return;
  int disposed_at_return;
  async_pool_lane lane;
  double timeout;
  async_fn fn;
} canc;

static void *cancellable(void *arg) {
  canc *c = arg;
  void *res = IPTR(-1);
  c->err = async_pool_run(c->lane, c->fn ? c->fn : blocker, IPTR(7), &res,
                          record_dispose, c->timeout);
  c->gate_open_at_return = gate_is_open(&g);
  c->disposed_at_return = disposed.calls;
  return res;
}

static void *cancel_running_main(void *arg) {
  canc *c = arg;
  async_task *t = async_spawn(cancellable, c);
  await_count(&g.entered, 1);
  async_future_cancel(t);
  void *res = NULL;
  int err = async_await(t, &res);
  seqlog_add(&order, err);
  seqlog_add(&order, disposed.calls); /* not yet: fn still runs */
  async_task_release(t);
  gate_open(&g);
  for (int i = 0; i < 10000 && !disposed.calls; i++) async_sleep(0.001);
  return NULL;
}

static void test_pool_cancel_while_running(void **state) {
  (void)state;
  gate_init(&g);
  dispose_reset();
  memset(&order, 0, sizeof order);
  async_loop *loop = new_loop();
  canc c = {.lane = ASYNC_POOL_WORK, .timeout = ASYNC_NO_TIMEOUT};
  assert_int_equal(run_task(loop, cancel_running_main, &c, NULL), 0);
  assert_int_equal(c.err, -ECANCELED);
  assert_int_equal(c.gate_open_at_return, 0); /* at once, fn still blocked */
  int want[] = {0, 0};
  seqlog_expect(&order, want, 2); /* the task returned normally */
  assert_int_equal(disposed.calls, 1);
  assert_int_equal(disposed.ran, 1);
  assert_int_equal(PTRI(disposed.arg), 7);
  assert_int_equal(PTRI(disposed.result), 7);
  assert_int_equal(disposed.off_thread, 0);
  free_loop(loop);
  assert_int_equal(disposed.calls, 1); /* and never again */
  gate_destroy(&g);
}

static void *first_holds_the_thread(void *arg) {
  (void)arg;
  void *res = NULL;
  int err = async_to_thread(blocker, IPTR(1), &res, NULL);
  return IPTR(err ? err : PTRI(res));
}

static void *cancel_queued_main(void *arg) {
  canc *c = arg;
  async_task *a = async_spawn(first_holds_the_thread, NULL);
  await_count(&g.entered, 1);
  async_task *b = async_spawn(cancellable, c);
  async_sleep(0.02); /* b's job is queued behind a's */
  async_future_cancel(b);
  async_await(b, NULL);
  async_task_release(b);
  gate_open(&g);
  void *res = NULL;
  int err = async_await(a, &res);
  seqlog_add(&order, err ? err : PTRI(res));
  async_task_release(a);
  return NULL;
}

static void test_pool_cancel_while_queued(void **state) {
  (void)state;
  gate_init(&g);
  dispose_reset();
  memset(&order, 0, sizeof order);
  atomic_store(&ran_unwanted, 0);
  async_loop *loop = new_loop();
  assert_int_equal(async_pool_set_max(loop, ASYNC_POOL_WORK, 1), 0);
  canc c = {
      .lane = ASYNC_POOL_WORK, .timeout = ASYNC_NO_TIMEOUT, .fn = must_not_run};
  assert_int_equal(run_task(loop, cancel_queued_main, &c, NULL), 0);
  assert_int_equal(c.err, -ECANCELED);
  assert_int_equal(c.disposed_at_return, 1); /* before the call returned */
  assert_int_equal(disposed.calls, 1);
  assert_int_equal(disposed.ran, 0);
  assert_null(disposed.result);
  assert_int_equal(PTRI(disposed.arg), 7);
  int want[] = {1};
  seqlog_expect(&order, want, 1); /* the job ahead was not disturbed */
  free_loop(loop);
  assert_int_equal(atomic_load(&ran_unwanted), 0);
  assert_int_equal(disposed.calls, 1);
  gate_destroy(&g);
}

/* Done, then cancelled before its task resumed. One thread runs the jobs
 * of b, the victim and c in turn, so c's function starting means the
 * first two are on the done list; the loop thread is held meanwhile, and
 * then one collection wakes b and the victim, in that order. b cancels
 * the victim, which is READY: the cancellation wins over the result. */
static async_task *victim;

static void *quick(void *arg) { return arg; }

static void *canceller(void *arg) {
  (void)arg;
  void *res = NULL;
  int err = async_to_thread(quick, IPTR(1), &res, NULL);
  async_future_cancel(victim);
  return IPTR(err);
}

static void *holds_gate(void *arg) {
  (void)arg;
  return IPTR(async_to_thread(blocker, NULL, NULL, NULL));
}

static void *done_then_cancelled_main(void *arg) {
  canc *c = arg;
  async_task *b = async_spawn(canceller, NULL);
  victim = async_spawn(cancellable, c);
  async_task *last = async_spawn(holds_gate, NULL);
  async_yield(); /* the three submit, in order, then this runs again */
  struct timespec ms = {0, 1000000L};
  while (!atomic_load(&g.entered)) nanosleep(&ms, NULL); /* holds the loop */
  async_await(victim, NULL);
  gate_open(&g);
  async_await(last, NULL);
  async_await(b, NULL);
  async_task_release(victim);
  async_task_release(last);
  async_task_release(b);
  return NULL;
}

static void test_pool_done_then_cancelled_before_resuming(void **state) {
  (void)state;
  gate_init(&g);
  dispose_reset();
  async_loop *loop = new_loop();
  assert_int_equal(async_pool_set_max(loop, ASYNC_POOL_WORK, 1), 0);
  canc c = {.lane = ASYNC_POOL_WORK, .timeout = ASYNC_NO_TIMEOUT, .fn = quick};
  assert_int_equal(run_task(loop, done_then_cancelled_main, &c, NULL), 0);
  assert_int_equal(c.err, -ECANCELED);
  assert_int_equal(c.disposed_at_return, 1); /* disposed before returning */
  assert_int_equal(disposed.calls, 1);
  assert_int_equal(disposed.ran, 1);
  assert_int_equal(PTRI(disposed.result), 7);
  free_loop(loop);
  assert_int_equal(disposed.calls, 1);
  gate_destroy(&g);
}

/* A pending cancellation and an expired timeout: nothing is queued, and
 * dispose still gets arg back. */
static void *pending_cancel(void *arg) {
  canc *c = arg;
  async_future_cancel(async_task_current());
  return cancellable(c);
}

static void test_pool_cancel_pending_and_expired(void **state) {
  (void)state;
  gate_init(&g);
  dispose_reset();
  atomic_store(&ran_unwanted, 0);
  async_loop *loop = new_loop();
  canc c = {
      .lane = ASYNC_POOL_WORK, .timeout = ASYNC_NO_TIMEOUT, .fn = must_not_run};
  run_task(loop, pending_cancel, &c, NULL);
  assert_int_equal(c.err, -ECANCELED);
  assert_int_equal(c.disposed_at_return, 1);
  canc z = {.lane = ASYNC_POOL_DNS, .timeout = 0.0, .fn = must_not_run};
  assert_int_equal(run_task(loop, cancellable, &z, NULL), 0);
  assert_int_equal(z.err, -ETIMEDOUT);
  assert_int_equal(z.disposed_at_return, 2);
  canc neg = {.lane = ASYNC_POOL_WORK, .timeout = -1.0, .fn = must_not_run};
  assert_int_equal(run_task(loop, cancellable, &neg, NULL), 0);
  assert_int_equal(neg.err, -ETIMEDOUT);
  assert_int_equal(disposed.calls, 3);
  assert_int_equal(disposed.ran, 0);
  assert_int_equal(async_pool_threads(loop, ASYNC_POOL_WORK), 0);
  free_loop(loop);
  assert_int_equal(atomic_load(&ran_unwanted), 0);
  gate_destroy(&g);
}

static void *timeout_main(void *arg) {
  canc *c = arg;
  cancellable(c);
  gate_open(&g);
  for (int i = 0; i < 10000 && !disposed.calls; i++) async_sleep(0.001);
  return NULL;
}

static void test_pool_timeout_while_running(void **state) {
  (void)state;
  gate_init(&g);
  dispose_reset();
  async_loop *loop = new_loop();
  canc c = {.lane = ASYNC_POOL_WORK, .timeout = 0.05};
  assert_int_equal(run_task(loop, timeout_main, &c, NULL), 0);
  assert_int_equal(c.err, -ETIMEDOUT);
  assert_int_equal(c.gate_open_at_return, 0);
  assert_int_equal(c.disposed_at_return, 0);
  assert_int_equal(disposed.calls, 1);
  assert_int_equal(disposed.ran, 1);
  assert_int_equal(PTRI(disposed.result), 7);
  free_loop(loop);
  gate_destroy(&g);
}

/* With the virtual clock, a job's timeout is not jumped to: the loop
 * waits for the thread in real time. */
static void test_pool_virtual_clock_waits_for_threads(void **state) {
  (void)state;
  gate_init(&g);
  dispose_reset();
  async_loop_options o;
  async_loop_options_init(&o);
  o.virtual_clock = 1;
  async_loop *loop = NULL;
  assert_int_equal(async_loop_new(&loop, &o), 0);
  opener op;
  opener_start(&op, &g, 30);
  canc c = {.lane = ASYNC_POOL_WORK, .timeout = 3600.0};
  void *res = NULL;
  assert_int_equal(run_task(loop, cancellable, &c, &res), 0);
  assert_int_equal(c.err, 0);
  assert_int_equal(PTRI(res), 7);
  assert_int_equal(disposed.calls, 0);
  assert_true(async_loop_time(loop) < 3600.0);
  opener_join(&op);
  free_loop(loop);
  gate_destroy(&g);
}

/* ---- Close ------------------------------------------------------------- */

static void *close_main(void *arg) {
  (void)arg;
  await_count(&g.entered, 1);
  async_sleep(0.02); /* the second job is queued */
  return NULL;
}

static void test_pool_close_with_work_running_and_queued(void **state) {
  (void)state;
  gate_init(&g);
  dispose_reset();
  atomic_store(&ran_unwanted, 0);
  async_loop *loop = new_loop();
  assert_int_equal(async_pool_set_max(loop, ASYNC_POOL_WORK, 1), 0);
  canc running = {.lane = ASYNC_POOL_WORK, .timeout = ASYNC_NO_TIMEOUT};
  canc queued = {
      .lane = ASYNC_POOL_WORK, .timeout = ASYNC_NO_TIMEOUT, .fn = must_not_run};
  async_task *a, *b;
  assert_int_equal(async_task_spawn(loop, &a, cancellable, &running, NULL), 0);
  assert_int_equal(async_task_spawn(loop, &b, cancellable, &queued, NULL), 0);
  assert_int_equal(run_task(loop, close_main, NULL, NULL), 0);
  assert_int_equal(disposed.calls, 0);
  opener op;
  opener_start(&op, &g, 50);
  /* Close cancels both tasks, waits for the running function, disposes. */
  assert_int_equal(async_loop_close(loop), 0);
  assert_int_equal(gate_is_open(&g), 1);
  assert_int_equal(running.err, -ECANCELED);
  assert_int_equal(queued.err, -ECANCELED);
  assert_int_equal(disposed.calls, 2);
  assert_int_equal(disposed.ran, 1);
  assert_int_equal(disposed.off_thread, 0);
  assert_int_equal(atomic_load(&ran_unwanted), 0);
  /* They returned normally from their cancelled calls. */
  assert_int_equal(async_future_done(a), 1);
  assert_int_equal(async_future_done(b), 1);
  async_task_release(a);
  async_task_release(b);
  assert_int_equal(async_pool_set_max(loop, ASYNC_POOL_WORK, 2), -ESHUTDOWN);
  free_loop(loop);
  opener_join(&op);
  gate_destroy(&g);
}

/* A task that calls again each time it is cancelled: the close gives up
 * on it after its rounds of cancellation and ends it while its last job
 * is queued. Every job it gave up is disposed of, that one included. */
static int stubborn_calls;
static void *stubborn(void *arg) {
  (void)arg;
  int err;
  do {
    stubborn_calls++;
    err = async_pool_run(ASYNC_POOL_WORK, blocker, IPTR(7), NULL,
                         record_dispose, ASYNC_NO_TIMEOUT);
  } while (err == -ECANCELED);
  return NULL;
}

static void test_pool_close_kills_a_task_that_keeps_calling(void **state) {
  (void)state;
  gate_init(&g);
  dispose_reset();
  stubborn_calls = 0;
  async_loop *loop = new_loop();
  assert_int_equal(async_pool_set_max(loop, ASYNC_POOL_WORK, 1), 0);
  assert_int_equal(async_task_spawn(loop, NULL, stubborn, NULL, NULL), 0);
  assert_int_equal(run_task(loop, close_main, NULL, NULL), 0);
  /* The rounds of cancellation at close take about 2 s; the running job
   * is let go after them, while the close waits for it. */
  opener op;
  opener_start(&op, &g, 3000);
  assert_int_equal(async_loop_close(loop), 0);
  assert_true(stubborn_calls > 2);
  assert_int_equal(disposed.calls, stubborn_calls);
  assert_int_equal(disposed.ran, 1); /* the first; the others never ran */
  assert_int_equal(disposed.off_thread, 0);
  free_loop(loop);
  opener_join(&op);
  gate_destroy(&g);
}

/* ---- The DNS lane ------------------------------------------------------ */

static void *dns_lane_main(void *arg) {
  (void)arg;
  canc slow = {.lane = ASYNC_POOL_DNS, .timeout = ASYNC_NO_TIMEOUT};
  canc slow2 = {.lane = ASYNC_POOL_DNS, .timeout = ASYNC_NO_TIMEOUT};
  async_task *s = async_spawn(cancellable, &slow);
  async_task *s2 = async_spawn(cancellable, &slow2);
  await_count(&g.entered, 1);
  /* The DNS lane is full (one thread, blocked); the work lane serves. */
  for (int i = 0; i < 20; i++) {
    void *res = NULL;
    int err = async_to_thread(twice, IPTR(i), &res, NULL);
    seqlog_add(&order, err ? -1000 : PTRI(res));
  }
  seqlog_add(&order, -atomic_load(&g.entered)); /* slow2 still waits */
  gate_open(&g);
  async_await(s, NULL);
  async_await(s2, NULL);
  seqlog_add(&order, slow.err);
  seqlog_add(&order, slow2.err);
  async_task_release(s);
  async_task_release(s2);
  return NULL;
}

static void test_pool_dns_lane_does_not_block_work(void **state) {
  (void)state;
  gate_init(&g);
  dispose_reset();
  memset(&order, 0, sizeof order);
  async_loop *loop = new_loop();
  assert_int_equal(async_pool_set_max(loop, ASYNC_POOL_DNS, 1), 0);
  assert_int_equal(run_task(loop, dns_lane_main, NULL, NULL), 0);
  int want[24];
  for (int i = 0; i < 20; i++) want[i] = 2 * i;
  want[20] = -1;
  want[21] = want[22] = 0;
  seqlog_expect(&order, want, 23);
  assert_int_equal(async_pool_threads(loop, ASYNC_POOL_DNS), 1);
  assert_int_equal(async_pool_threads(loop, ASYNC_POOL_WORK), 1);
  assert_int_equal(disposed.calls, 0);
  free_loop(loop);
  gate_destroy(&g);
}

/* ---- The loop sleeps while the work runs; threads block signals -------- */

static void *sleepy(void *arg) {
  struct timespec ts = {0, 300 * 1000000L};
  nanosleep(&ts, NULL);
  return arg;
}

static double thread_cpu(void) {
  struct timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void *cpu_main(void *arg) {
  double *cpu = arg;
  void *res = NULL;
  async_to_thread(twice, IPTR(1), &res, NULL); /* the thread exists */
  double c0 = thread_cpu();
  int err = async_to_thread(sleepy, IPTR(5), &res, NULL);
  *cpu = thread_cpu() - c0;
  return err ? async_fail(err) : res;
}

static void test_pool_loop_sleeps_while_work_runs(void **state) {
  (void)state;
  async_loop *loop = new_loop();
  double cpu = 1.0;
  void *res = NULL;
  assert_int_equal(run_task(loop, cpu_main, &cpu, &res), 0);
  assert_int_equal(PTRI(res), 5);
  /* 300 ms waited; a busy loop would have spent most of it on the CPU. */
  print_message("loop thread CPU over a 300 ms job: %.1f ms\n", cpu * 1e3);
  assert_true(cpu < 0.1);
  free_loop(loop);
}

static void *mask_probe(void *arg) {
  (void)arg;
  sigset_t s;
  pthread_sigmask(SIG_BLOCK, NULL, &s);
  int ok = sigismember(&s, SIGINT) && sigismember(&s, SIGTERM) &&
           sigismember(&s, SIGCHLD) && sigismember(&s, SIGUSR1);
#if defined(__GLIBC__)
  char name[16] = "";
  pthread_getname_np(pthread_self(), name, sizeof name);
  ok = ok && strcmp(name, "async-pool") == 0;
#endif
  return IPTR(ok);
}

static void *mask_main(void *arg) {
  (void)arg;
  void *res = NULL;
  int err = async_to_thread(mask_probe, NULL, &res, NULL);
  return err ? async_fail(err) : res;
}

static void test_pool_threads_block_signals_and_are_named(void **state) {
  (void)state;
  async_loop *loop = new_loop();
  void *res = NULL;
  assert_int_equal(run_task(loop, mask_main, NULL, &res), 0);
  assert_int_equal(PTRI(res), 1);
  /* The caller's own mask is as it was. */
  sigset_t s;
  pthread_sigmask(SIG_BLOCK, NULL, &s);
  assert_int_equal(sigismember(&s, SIGINT), 0);
  free_loop(loop);
}

/* The pool's wake-up fd is the loop's, like its own: a task cannot wait
 * on it, nor async_fd_forget drop it (which would leave every job's task
 * waiting forever). */
#if defined(__linux__)
static void *own_fds_main(void *arg) {
  int *e = arg;
  void *res = NULL;
  e[0] = async_to_thread(twice, IPTR(1), &res, NULL);
  DIR *d = opendir("/proc/self/fd");
  struct dirent *de;
  while (d && (de = readdir(d))) {
    char path[300], link[64];
    snprintf(path, sizeof path, "/proc/self/fd/%s", de->d_name);
    ssize_t n = readlink(path, link, sizeof link - 1);
    if (n <= 0) continue;
    link[n] = 0;
    if (!strstr(link, "eventfd")) continue;
    int fd = atoi(de->d_name);
    e[1]++;
    if (async_fd_wait(fd, ASYNC_READABLE, 0.01) == -EINVAL) e[2]++;
    if (async_fd_forget(async_loop_current(), fd) == 0) e[3]++;
  }
  if (d) closedir(d);
  e[4] = async_to_thread(twice, IPTR(4), &res, NULL);
  e[5] = PTRI(res);
  return NULL;
}

static void test_pool_fd_is_not_the_users(void **state) {
  (void)state;
  async_loop *loop = new_loop();
  int e[6] = {0};
  assert_int_equal(run_task(loop, own_fds_main, e, NULL), 0);
  assert_int_equal(e[0], 0);
  assert_int_equal(e[1], 2); /* the loop's and the pool's */
  assert_int_equal(e[2], 2);
  assert_int_equal(e[3], 2);
  assert_int_equal(e[4], 0);
  assert_int_equal(e[5], 8);
  free_loop(loop);
}
#endif

/* ---- Bad input --------------------------------------------------------- */

static void *misuse_main(void *arg) {
  int *e = arg;
  void *res = IPTR(1);
  e[0] = async_to_thread(NULL, NULL, &res, NULL);
  e[1] = res == NULL;
  e[2] = async_pool_run((async_pool_lane)2, twice, NULL, NULL, NULL, 1.0);
  e[3] = async_pool_run(ASYNC_POOL_WORK, twice, NULL, NULL, NULL, NAN);
  e[4] = async_pool_run(ASYNC_POOL_WORK, twice, IPTR(3), &res, NULL, 1.0);
  e[5] = PTRI(res);
  e[6] = async_pool_set_max(async_loop_current(), ASYNC_POOL_WORK, 8);
  e[7] = async_pool_set_max(async_loop_current(), ASYNC_POOL_DNS, 8);
  return NULL;
}

static void test_pool_bad_input(void **state) {
  (void)state;
  void *res = IPTR(1);
  assert_int_equal(async_to_thread(twice, NULL, &res, NULL), -EPERM);
  assert_null(res);
  assert_int_equal(async_pool_threads(NULL, ASYNC_POOL_WORK), -EINVAL);
  async_loop *loop = new_loop();
  assert_int_equal(async_pool_threads(loop, (async_pool_lane)7), -EINVAL);
  assert_int_equal(async_pool_set_max(NULL, ASYNC_POOL_WORK, 1), -EINVAL);
  assert_int_equal(async_pool_set_max(loop, ASYNC_POOL_WORK, 0), -EINVAL);
  assert_int_equal(
      async_pool_set_max(loop, ASYNC_POOL_WORK, ASYNC_POOL_MAX_THREADS + 1),
      -EINVAL);
  assert_int_equal(async_pool_set_max(loop, (async_pool_lane)-1, 1), -EINVAL);
  assert_int_equal(
      async_pool_set_max(loop, ASYNC_POOL_WORK, ASYNC_POOL_MAX_THREADS), 0);
  int e[8];
  assert_int_equal(run_task(loop, misuse_main, e, NULL), 0);
  assert_int_equal(e[0], -EINVAL);
  assert_int_equal(e[1], 1);
  assert_int_equal(e[2], -EINVAL);
  assert_int_equal(e[3], -EINVAL);
  assert_int_equal(e[4], 0);
  assert_int_equal(e[5], 6);
  assert_int_equal(e[6], -EBUSY); /* the work lane has its thread */
  assert_int_equal(e[7], 0);      /* the DNS lane has none yet */
  free_loop(loop);
}

int main(void) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_pool_results_and_lazy_start),
    cmocka_unit_test(test_pool_bounded_beyond_max),
    cmocka_unit_test(test_pool_completion_order),
    cmocka_unit_test(test_pool_cancel_while_running),
    cmocka_unit_test(test_pool_cancel_while_queued),
    cmocka_unit_test(test_pool_done_then_cancelled_before_resuming),
    cmocka_unit_test(test_pool_cancel_pending_and_expired),
    cmocka_unit_test(test_pool_timeout_while_running),
    cmocka_unit_test(test_pool_virtual_clock_waits_for_threads),
    cmocka_unit_test(test_pool_close_with_work_running_and_queued),
    cmocka_unit_test(test_pool_close_kills_a_task_that_keeps_calling),
    cmocka_unit_test(test_pool_dns_lane_does_not_block_work),
    cmocka_unit_test(test_pool_loop_sleeps_while_work_runs),
    cmocka_unit_test(test_pool_threads_block_signals_and_are_named),
#if defined(__linux__)
    cmocka_unit_test(test_pool_fd_is_not_the_users),
#endif
    cmocka_unit_test(test_pool_bad_input),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
