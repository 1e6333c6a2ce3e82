/* SPDX-License-Identifier: MIT */
/* Loops: life cycle, running and stopping, backends, threads. */
#include "helpers.h"
#include "core/core.h"

#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <sys/wait.h>
#include <stdatomic.h>
#include <unistd.h>

static void never_cb(void *arg) {
  (void)arg;
  abort();
}

static void *never_fn(void *arg) {
  (void)arg;
  abort();
}

static void stop_loop_cb(void *arg) { async_loop_stop(arg); }

/* Runs the loop for one pass over what is ready now. */
static void spin_loop(async_loop *loop) {
  async_loop_call_soon(loop, stop_loop_cb, loop, NULL);
  async_loop_run_forever(loop);
}

static void test_loop_new_close_free(void **state) {
  (void)state;
  async_loop *loop = new_loop();
  assert_int_equal(async_loop_is_running(loop), 0);
  assert_int_equal(async_loop_is_closed(loop), 0);
  assert_int_equal(async_loop_close(loop), 0);
  assert_int_equal(async_loop_is_closed(loop), 1);
  assert_int_equal(async_loop_close(loop), 0); /* closing twice is fine */
  assert_int_equal(async_loop_run_forever(loop), -ESHUTDOWN);
  assert_int_equal(async_loop_call_soon(loop, never_cb, NULL, NULL),
                   -ESHUTDOWN);
  assert_int_equal(async_task_spawn(loop, NULL, never_fn, NULL, NULL),
                   -ESHUTDOWN);
  free_loop(loop);
  assert_int_equal(async_loop_free(NULL), 0);
}

static void test_loop_backend_by_name(void **state) {
  (void)state;
  async_loop_options o;
  async_loop_options_init(&o);
  async_loop *loop = NULL;
  o.backend = "poll";
  assert_int_equal(async_loop_new(&loop, &o), 0);
  assert_string_equal(async_loop_backend(loop), "poll");
  free_loop(loop);
  o.backend = "no-such-backend";
  assert_int_equal(async_loop_new(&loop, &o), -EINVAL);
  assert_null(loop);
  o.backend = NULL;
  o.size = 1; /* not filled by _init */
  assert_int_equal(async_loop_new(&loop, &o), -EINVAL);
  /* The environment picks the default, as ctest does per backend. */
  const char *env = getenv("ASYNC_BACKEND");
  loop = new_loop();
  if (env) assert_string_equal(async_loop_backend(loop), env);
  free_loop(loop);
}

typedef struct {
  async_loop *loop;
  int calls;
  int running_inside;
  int current_is_loop;
  int run_again;
  int close_inside;
} stop_ctx;

static void stop_cb(void *arg) {
  stop_ctx *c = arg;
  c->calls++;
  c->running_inside = async_loop_is_running(c->loop);
  c->current_is_loop = async_loop_current() == c->loop;
  c->run_again = async_loop_run_forever(c->loop);
  c->close_inside = async_loop_close(c->loop);
  async_loop_stop(c->loop);
}

static void test_loop_run_forever_and_stop(void **state) {
  (void)state;
  stop_ctx c = {.loop = new_loop()};
  assert_int_equal(async_loop_call_soon(c.loop, stop_cb, &c, NULL), 0);
  assert_int_equal(async_loop_run_forever(c.loop), 0);
  assert_int_equal(c.calls, 1);
  assert_int_equal(c.running_inside, 1);
  assert_int_equal(c.current_is_loop, 1);
  assert_int_equal(c.run_again, -EBUSY);
  assert_int_equal(c.close_inside, -EBUSY);
  assert_int_equal(async_loop_is_running(c.loop), 0);
  assert_null(async_loop_current());
  free_loop(c.loop);
}

static void count_cb(void *arg) { (*(int *)arg)++; }

static void test_loop_stop_before_run_runs_one_iteration(void **state) {
  (void)state;
  async_loop *loop = new_loop();
  int n = 0;
  assert_int_equal(async_loop_call_soon(loop, count_cb, &n, NULL), 0);
  assert_int_equal(async_loop_stop(loop), 0);
  assert_int_equal(async_loop_run_forever(loop), 0);
  assert_int_equal(n, 1);
  free_loop(loop);
}

static void test_loop_time_is_monotonic(void **state) {
  (void)state;
  async_loop *loop = new_loop();
  double a = async_loop_time(loop);
  usleep(2000);
  double b = async_loop_time(loop);
  assert_true(b > a);
  assert_true(fabs(async_clock() - b) < 1.0);
  assert_true(isnan(async_loop_time(NULL)));
  free_loop(loop);
}

static void *nested_run(void *arg) {
  async_loop *other = arg;
  intptr_t r1 = async_loop_run_forever(other);
  intptr_t r2 = async_run(nested_run, NULL, NULL);
  intptr_t r3 = async_loop_close(other);
  return IPTR(r1 * 1000000 + r2 * 1000 + r3);
}

static void test_loop_one_running_loop_per_thread(void **state) {
  (void)state;
  async_loop *a = new_loop(), *b = new_loop();
  void *res;
  assert_int_equal(run_task(a, nested_run, b, &res), 0);
  intptr_t r = (intptr_t)res;
  assert_int_equal(r, -EBUSY * 1000000 + -EBUSY * 1000 + -EBUSY);
  free_loop(b);
  free_loop(a);
}

static void *sleepy(void *arg) {
  (void)arg;
  async_sleep(0.001);
  return IPTR(7);
}

static void *loop_thread(void *arg) {
  (void)arg;
  intptr_t sum = 0;
  for (int i = 0; i < 20; i++) {
    async_loop *loop;
    if (async_loop_new(&loop, NULL)) return IPTR(-1);
    async_task *t;
    void *res = NULL;
    if (async_task_spawn(loop, &t, sleepy, NULL, NULL)) return IPTR(-2);
    if (async_loop_run_until_complete(loop, t, &res)) return IPTR(-3);
    sum += (intptr_t)res;
    async_task_release(t);
    async_loop_free(loop);
  }
  return (void *)sum;
}

static void test_loop_one_loop_per_thread_concurrently(void **state) {
  (void)state;
  pthread_t th[2];
  for (int i = 0; i < 2; i++)
    assert_int_equal(pthread_create(&th[i], NULL, loop_thread, NULL), 0);
  for (int i = 0; i < 2; i++) {
    void *r;
    pthread_join(th[i], &r);
    assert_int_equal((intptr_t)r, 140);
  }
}

typedef struct {
  async_loop *loop;
  int got;
  double started;
  double elapsed;
} ts_ctx;

static void ts_cb(void *arg) {
  ts_ctx *c = arg;
  c->got++;
  c->elapsed = async_clock() - c->started;
  async_loop_stop(c->loop);
}

static void *ts_thread(void *arg) {
  ts_ctx *c = arg;
  usleep(50000);
  async_loop_call_soon_threadsafe(c->loop, ts_cb, c);
  return NULL;
}

static void test_loop_call_soon_threadsafe_wakes_a_blocked_loop(void **state) {
  (void)state;
  ts_ctx c = {.loop = new_loop(), .started = async_clock()};
  /* A far timer so that the loop blocks in the poller. */
  async_handle *h;
  assert_int_equal(async_loop_call_later(c.loop, 60.0, count_cb, &c.got, &h),
                   0);
  pthread_t th;
  pthread_create(&th, NULL, ts_thread, &c);
  assert_int_equal(async_loop_run_forever(c.loop), 0);
  pthread_join(th, NULL);
  assert_int_equal(c.got, 1);
  assert_true(c.elapsed < 30.0);
  assert_int_equal(async_handle_cancel(h), 1);
  free_loop(c.loop);
}

static void *ts_many(void *arg) {
  ts_ctx *c = arg;
  for (int i = 0; i < 1000; i++)
    if (async_loop_call_soon_threadsafe(c->loop, count_cb, &c->got)) return arg;
  return NULL;
}

static void *ts_waiter(void *arg) {
  ts_ctx *c = arg;
  while (c->got < 2000) async_sleep(0.001);
  return NULL;
}

static void test_loop_call_soon_threadsafe_from_many_threads(void **state) {
  (void)state;
  ts_ctx c = {.loop = new_loop()};
  pthread_t th[2];
  for (int i = 0; i < 2; i++) pthread_create(&th[i], NULL, ts_many, &c);
  assert_int_equal(run_task(c.loop, ts_waiter, &c, NULL), 0);
  for (int i = 0; i < 2; i++) {
    void *r;
    pthread_join(th[i], &r);
    assert_null(r);
  }
  assert_int_equal(c.got, 2000);
  free_loop(c.loop);
}

typedef struct {
  async_loop *loop;
  atomic_int accepted;
  atomic_int ran;
} race_ctx;

static void race_cb(void *arg) { atomic_fetch_add(&((race_ctx *)arg)->ran, 1); }

/* Calls until the close refuses: any other error is a failure. A thread
 * that runs far ahead of the loop (valgrind runs one thread at a time)
 * yields, so that the calls it queued cannot grow without bound. */
static void *race_thread(void *arg) {
  race_ctx *c = arg;
  for (;;) {
    int err = async_loop_call_soon_threadsafe(c->loop, race_cb, c);
    if (err == -ESHUTDOWN) return NULL;
    if (err) return arg;
    int ahead = atomic_fetch_add(&c->accepted, 1) - atomic_load(&c->ran);
    if (ahead > 1000) sched_yield();
  }
}

static void *race_waiter(void *arg) {
  race_ctx *c = arg;
  while (atomic_load(&c->ran) < 100) async_sleep(0.001);
  return NULL;
}

/* Threads keep calling while the loop closes: each stops on -ESHUTDOWN,
 * nothing accepted runs twice or leaks, and the ThreadSanitizer build
 * (.ci/tsan.sh) sees no race on the wake-up fd or the closed flag. */
static void test_loop_call_soon_threadsafe_races_close(void **state) {
  (void)state;
  for (int round = 0; round < 20; round++) {
    race_ctx c = {.loop = new_loop()};
    pthread_t th[2];
    for (int i = 0; i < 2; i++)
      assert_int_equal(pthread_create(&th[i], NULL, race_thread, &c), 0);
    assert_int_equal(run_task(c.loop, race_waiter, &c, NULL), 0);
    assert_int_equal(async_loop_close(c.loop), 0);
    for (int i = 0; i < 2; i++) {
      void *r;
      pthread_join(th[i], &r);
      assert_null(r);
    }
    assert_int_equal(async_loop_call_soon_threadsafe(c.loop, race_cb, &c),
                     -ESHUTDOWN);
    assert_true(atomic_load(&c.ran) <= atomic_load(&c.accepted));
    assert_true(atomic_load(&c.ran) >= 100);
    free_loop(c.loop);
  }
}

static void test_loop_run_until_complete_interrupted_by_stop(void **state) {
  (void)state;
  async_loop *loop = new_loop();
  async_future *f;
  assert_int_equal(async_future_new(loop, &f), 0);
  assert_int_equal(async_loop_call_later(loop, 0.01, stop_loop_cb, loop, NULL),
                   0);
  assert_int_equal(async_loop_run_until_complete(loop, f, NULL), -EINTR);
  assert_int_equal(async_future_set_result(f, IPTR(5)), 0);
  void *res;
  assert_int_equal(async_loop_run_until_complete(loop, f, &res), 0);
  assert_int_equal(PTRI(res), 5);
  async_future_release(f);
  free_loop(loop);
}

/* {==== The exception handler ========================================== */

typedef struct {
  int calls;
  int err;
  int fatal;
  async_future *future;
  long tasks_listed;
  char message[256];
} exc_log;

static void exc_record(async_loop *loop, const async_exception_context *ctx,
                       void *arg) {
  exc_log *l = arg;
  l->calls++;
  l->err = ctx->err;
  l->fatal = ctx->fatal;
  l->future = ctx->future;
  l->tasks_listed = async_task_all(loop, NULL, 0);
  snprintf(l->message, sizeof l->message, "%s", ctx->message);
  if (ctx->future) assert_int_equal(async_task_cancel(ctx->future), 0);
}

static void *fails_eio(void *arg) {
  (void)arg;
  return async_fail(-EIO);
}

static void test_loop_exception_handler_gets_unread_errors(void **state) {
  (void)state;
  async_loop *loop = new_loop();
  exc_log l = {0};
  assert_int_equal(async_loop_set_exception_handler(loop, exc_record, &l), 0);
  void *arg = NULL;
  assert_ptr_equal(async_loop_get_exception_handler(loop, &arg), exc_record);
  assert_ptr_equal(arg, &l);
  async_task_options o;
  async_task_options_init(&o);
  o.name = "bad";
  async_task *t;
  assert_int_equal(async_task_spawn(loop, &t, fails_eio, NULL, &o), 0);
  assert_int_equal(async_task_spawn(loop, NULL, fails_eio, NULL, &o), 0);
  async_future *f;
  assert_int_equal(async_future_new(loop, &f), 0);
  async_future_set_error(f, -ENOENT);
  spin_loop(loop);
  assert_int_equal(l.calls, 1); /* the task nobody holds, freed when done */
  assert_int_equal(l.err, -EIO);
  assert_int_equal(l.fatal, 0);
  assert_non_null(l.future);
  assert_string_equal(l.message,
                      "task 'bad' failed (Input/output error) and nobody "
                      "read the error");
  assert_int_equal(async_task_release(t), 0);
  assert_int_equal(l.calls, 2);
  assert_ptr_equal(l.future, t); /* borrowed while it is being freed */
  assert_int_equal(async_future_release(f), 0);
  assert_int_equal(l.calls, 3);
  assert_int_equal(l.err, -ENOENT);
  assert_ptr_equal(l.future, f);
  /* A read error is no report. */
  assert_int_equal(async_task_spawn(loop, &t, fails_eio, NULL, NULL), 0);
  spin_loop(loop);
  assert_int_equal(async_task_result(t, NULL), -EIO);
  assert_int_equal(async_task_release(t), 0);
  assert_int_equal(l.calls, 3);
  free_loop(loop);
}

static void *ignores_cancellation(void *arg) {
  (void)arg;
  for (;;) async_sleep(0.001);
  return NULL;
}

static void
test_loop_exception_handler_gets_tasks_killed_at_close(void **state) {
  (void)state;
  async_loop *loop = new_loop();
  exc_log l = {0};
  async_loop_set_exception_handler(loop, exc_record, &l);
  async_task_spawn(loop, NULL, ignores_cancellation, NULL, NULL);
  spin_loop(loop);
  assert_int_equal(async_loop_close(loop), 0);
  assert_int_equal(l.calls, 1);
  assert_int_equal(l.err, -ECANCELED);
  assert_null(l.future);
  assert_int_equal(l.tasks_listed, 1); /* still there to be looked at */
  assert_string_equal(l.message,
                      "1 task(s) ignored cancellation at loop close; ending "
                      "them without their cleanup");
  free_loop(loop);
}

/* The default keeps the stderr line there was before the handler. */
static void test_loop_default_exception_handler_writes_stderr(void **state) {
  (void)state;
  async_loop *loop = new_loop();
  exc_log l = {0};
  async_loop_set_exception_handler(loop, exc_record, &l);
  assert_int_equal(async_loop_set_exception_handler(loop, NULL, &l), 0);
  void *arg = &l;
  assert_null(async_loop_get_exception_handler(loop, &arg));
  assert_null(arg);
  fflush(stderr);
  int saved = dup(2);
  FILE *tmp = tmpfile();
  assert_non_null(tmp);
  dup2(fileno(tmp), 2);
  async_task_options o;
  async_task_options_init(&o);
  o.name = "bad";
  async_task_spawn(loop, NULL, fails_eio, NULL, &o);
  spin_loop(loop);
  async_exception_context ctx = {.message = "from the program"};
  assert_int_equal(async_loop_call_exception_handler(loop, &ctx), 0);
  fflush(stderr);
  dup2(saved, 2);
  close(saved);
  char buf[512] = {0};
  rewind(tmp);
  size_t n = fread(buf, 1, sizeof buf - 1, tmp);
  fclose(tmp);
  buf[n] = '\0';
  assert_string_equal(buf, "libasync: task 'bad' failed (Input/output error) "
                           "and nobody read the error\n"
                           "libasync: from the program\n");
  assert_int_equal(l.calls, 0);
  free_loop(loop);
}

static void test_loop_call_exception_handler(void **state) {
  (void)state;
  async_loop *loop = new_loop();
  exc_log l = {0};
  async_exception_context ctx = {.message = "mine", .err = -EPIPE};
  assert_int_equal(async_loop_call_exception_handler(NULL, &ctx), -EINVAL);
  assert_int_equal(async_loop_call_exception_handler(loop, NULL), -EINVAL);
  async_exception_context empty = {0};
  assert_int_equal(async_loop_call_exception_handler(loop, &empty), -EINVAL);
  assert_int_equal(async_loop_set_exception_handler(NULL, exc_record, &l),
                   -EINVAL);
  assert_null(async_loop_get_exception_handler(NULL, NULL));
  async_loop_set_exception_handler(loop, exc_record, &l);
  assert_int_equal(async_loop_call_exception_handler(loop, &ctx), 0);
  assert_int_equal(l.calls, 1);
  assert_int_equal(l.err, -EPIPE);
  assert_string_equal(l.message, "mine");
  free_loop(loop);
}

/* A fatal report reaches the handler before the abort. */
static void fatal_to_stdout(async_loop *loop,
                            const async_exception_context *ctx, void *arg) {
  (void)loop;
  (void)arg;
  dprintf(3, "%d %s", ctx->fatal, ctx->message);
}

static void *returns_inside_a_scope(void *arg) {
  (void)arg;
  async_timeout tmo;
  async_timeout_enter(&tmo, 10.0);
  return NULL;
}

/* Breaks its own canary (the stack was made without a guard page), then
 * switches: the check at the switch finds it. */
static void *breaks_its_canary(void *arg) {
  (void)arg;
  async__task *t = (async__task *)async_task_current();
  if (async__stack_guard(t->stack) != ASYNC__GUARD_CANARY) _exit(3);
  memset(async__stack_lo(t->stack), 0, 16);
  async_yield();
  return NULL;
}

/* Runs fn as task "leaky" in a child whose handler writes to a pipe, and
 * returns what it wrote; the child must die of SIGABRT. */
static void fatal_child(async_fn fn, int canary, char *buf, size_t cap) {
  int fds[2];
  assert_int_equal(pipe(fds), 0);
  fflush(NULL);
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    dup2(fds[1], 3);
    if (canary) async__stack_test_config(0, 0);
    async_loop *loop = NULL;
    async_loop_new(&loop, NULL);
    async_loop_set_exception_handler(loop, fatal_to_stdout, NULL);
    async_task_options o;
    async_task_options_init(&o);
    o.name = "leaky";
    async_task *t;
    async_task_spawn(loop, &t, fn, NULL, &o);
    async_loop_run_until_complete(loop, t, NULL);
    _exit(0); /* not reached */
  }
  close(fds[1]);
  memset(buf, 0, cap);
  ssize_t n;
  size_t got = 0;
  while ((n = read(fds[0], buf + got, cap - 1 - got)) > 0) got += (size_t)n;
  close(fds[0]);
  int status = 0;
  assert_int_equal(waitpid(pid, &status, 0), pid);
  assert_true(WIFSIGNALED(status));
  assert_int_equal(WTERMSIG(status), SIGABRT);
}

static void test_loop_exception_handler_gets_fatal_reports(void **state) {
  (void)state;
  char buf[256];
  fatal_child(returns_inside_a_scope, 0, buf, sizeof buf);
  assert_string_equal(buf, "1 task 'leaky' returned inside a deadline scope "
                           "(async_timeout_enter without async_timeout_exit)");
  fatal_child(breaks_its_canary, 1, buf, sizeof buf);
  /* The size is the slot's, as the guard page's report gives it. */
  const char *want = "1 stack overflow in task 'leaky' (stack size ";
  assert_int_equal(strncmp(buf, want, strlen(want)), 0);
  assert_non_null(strstr(buf, " bytes)"));
}

/* }==== */

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_loop_exception_handler_gets_unread_errors),
      cmocka_unit_test(test_loop_exception_handler_gets_tasks_killed_at_close),
      cmocka_unit_test(test_loop_default_exception_handler_writes_stderr),
      cmocka_unit_test(test_loop_call_exception_handler),
      cmocka_unit_test(test_loop_exception_handler_gets_fatal_reports),
      cmocka_unit_test(test_loop_new_close_free),
      cmocka_unit_test(test_loop_backend_by_name),
      cmocka_unit_test(test_loop_run_forever_and_stop),
      cmocka_unit_test(test_loop_stop_before_run_runs_one_iteration),
      cmocka_unit_test(test_loop_time_is_monotonic),
      cmocka_unit_test(test_loop_one_running_loop_per_thread),
      cmocka_unit_test(test_loop_one_loop_per_thread_concurrently),
      cmocka_unit_test(test_loop_call_soon_threadsafe_wakes_a_blocked_loop),
      cmocka_unit_test(test_loop_call_soon_threadsafe_from_many_threads),
      cmocka_unit_test(test_loop_call_soon_threadsafe_races_close),
      cmocka_unit_test(test_loop_run_until_complete_interrupted_by_stop),
  };
  return cmocka_run_group_tests_name("loop", tests, NULL, NULL);
}
