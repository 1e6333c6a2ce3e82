/* SPDX-License-Identifier: MIT */
/* Tasks: spawn, await, results and errors, names, introspection,
 * done callbacks, stacks. */
#include "helpers.h"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

static seqlog g_log;

static void stop_cb(void *arg) { async_loop_stop(arg); }

static void *ret_arg(void *arg) { return arg; }

static void *fail_eio(void *arg) {
  (void)arg;
  return async_fail(-EIO);
}

static void test_task_await_result_and_error(void **state) {
  (void)state;
  async_loop *loop = new_loop();
  void *res = NULL;
  assert_int_equal(run_task(loop, ret_arg, IPTR(42), &res), 0);
  assert_int_equal(PTRI(res), 42);
  assert_int_equal(run_task(loop, fail_eio, NULL, &res), -EIO);
  assert_null(res);
  free_loop(loop);
}

static void *logger(void *arg) {
  seqlog_add(&g_log, PTRI(arg));
  return arg;
}

static void *spawner(void *arg) {
  (void)arg;
  async_task *a = async_spawn(logger, IPTR(1));
  async_task *b = async_spawn(logger, IPTR(2));
  /* Neither has run: a task starts once its creator suspends. */
  seqlog_add(&g_log, async_task_done(a) * 10 + async_task_done(b));
  seqlog_add(&g_log, 0);
  void *ra, *rb;
  int ea = async_await(b, &rb); /* awaiting b lets a run first */
  int eb = async_await(a, &ra);
  seqlog_add(&g_log, ea == 0 && eb == 0 && PTRI(ra) == 1 && PTRI(rb) == 2);
  async_task_release(a);
  async_task_release(b);
  return NULL;
}

static void test_task_starts_when_creator_suspends(void **state) {
  (void)state;
  async_loop *loop = new_loop();
  g_log.n = 0;
  assert_int_equal(run_task(loop, spawner, NULL, NULL), 0);
  int want[] = {0, 0, 1, 2, 1};
  seqlog_expect(&g_log, want, 5);
  free_loop(loop);
}

static void test_task_spawn_on_a_loop_not_running(void **state) {
  (void)state;
  async_loop *loop = new_loop();
  async_task *t;
  assert_int_equal(async_task_spawn(loop, &t, ret_arg, IPTR(3), NULL), 0);
  assert_int_equal(async_task_done(t), 0);
  void *res;
  assert_int_equal(async_task_result(t, &res), -EINPROGRESS);
  assert_int_equal(async_loop_run_until_complete(loop, t, &res), 0);
  assert_int_equal(PTRI(res), 3);
  assert_int_equal(async_task_done(t), 1);
  assert_int_equal(async_task_cancelled(t), 0);
  assert_int_equal(async_task_result(t, &res), 0);
  assert_int_equal(PTRI(res), 3);
  assert_int_equal(async_task_release(t), 0);
  free_loop(loop);
}

static void *chain(void *arg) {
  intptr_t n = (intptr_t)arg;
  if (n == 0) return IPTR(0);
  async_task *t = async_spawn(chain, IPTR(n - 1));
  void *res;
  int err = async_await(t, &res);
  async_task_release(t);
  return err ? async_fail(err) : IPTR(PTRI(res) + 1);
}

static void test_task_nested_awaits(void **state) {
  (void)state;
  async_loop *loop = new_loop();
  void *res;
  assert_int_equal(run_task(loop, chain, IPTR(200), &res), 0);
  assert_int_equal(PTRI(res), 200);
  free_loop(loop);
}

static void *many(void *arg) {
  intptr_t n = (intptr_t)arg;
  async_task **ts = malloc((size_t)n * sizeof *ts);
  for (intptr_t i = 0; i < n; i++) ts[i] = async_spawn(ret_arg, IPTR(i & 127));
  intptr_t sum = 0;
  for (intptr_t i = 0; i < n; i++) {
    void *r;
    if (async_await(ts[i], &r) == 0) sum += PTRI(r);
    async_task_release(ts[i]);
  }
  free(ts);
  return (void *)sum;
}

static void test_task_many_spawned_then_awaited(void **state) {
  (void)state;
  async_loop *loop = new_loop();
  void *res;
  enum { N = 20000 };
  assert_int_equal(run_task(loop, many, IPTR(N), &res), 0);
  intptr_t want = 0;
  for (int i = 0; i < N; i++) want += i & 127;
  assert_int_equal((intptr_t)res, want);
  free_loop(loop);
}

static void *self_info(void *arg) {
  async_task **out = arg;
  *out = async_task_current();
  return NULL;
}

static void test_task_names_and_current(void **state) {
  (void)state;
  async_loop *loop = new_loop();
  async_task_options o;
  async_task_options_init(&o);
  o.name = "worker";
  async_task *a, *b, *seen = NULL;
  assert_int_equal(async_task_spawn(loop, &a, self_info, &seen, &o), 0);
  assert_int_equal(async_task_spawn(loop, &b, ret_arg, NULL, NULL), 0);
  assert_string_equal(async_task_name(a), "worker");
  assert_memory_equal(async_task_name(b), "Task-", 5);
  assert_int_equal(async_task_set_name(b, "renamed"), 0);
  assert_string_equal(async_task_name(b), "renamed");
  assert_null(async_task_current());
  assert_int_equal(async_loop_run_until_complete(loop, a, NULL), 0);
  assert_ptr_equal(seen, a);
  assert_int_equal(async_loop_run_until_complete(loop, b, NULL), 0);
  async_task_release(a);
  async_task_release(b);
  free_loop(loop);
}

static void *lister(void *arg) {
  async_loop *loop = async_loop_current();
  long *counts = arg;
  async_task *t1 = async_spawn(ret_arg, NULL);
  async_task *t2 = async_spawn(ret_arg, NULL);
  async_task *buf[8];
  counts[0] = async_task_all(loop, buf, 8);
  counts[1] = buf[0] == async_task_current() && buf[1] == t1 && buf[2] == t2;
  counts[2] = async_task_all(loop, NULL, 0);
  async_await(t1, NULL);
  async_await(t2, NULL);
  counts[3] = async_task_all(loop, buf, 8);
  async_task_release(t1);
  async_task_release(t2);
  return NULL;
}

static void test_task_all_tasks(void **state) {
  (void)state;
  async_loop *loop = new_loop();
  long counts[4];
  assert_int_equal(run_task(loop, lister, counts, NULL), 0);
  assert_int_equal(counts[0], 3);
  assert_int_equal(counts[1], 1);
  assert_int_equal(counts[2], 3);
  assert_int_equal(counts[3], 1);
  assert_int_equal(async_task_all(loop, NULL, 0), 0);
  assert_int_equal(async_task_all(NULL, NULL, 0), -EINVAL);
  free_loop(loop);
}

static void done_cb(async_future *f, void *arg) {
  void *res = NULL;
  int err = async_future_result(f, &res);
  seqlog_add(&g_log, PTRI(arg) * 100 + (err ? -1 : PTRI(res)));
}

static void test_task_done_callbacks(void **state) {
  (void)state;
  async_loop *loop = new_loop();
  g_log.n = 0;
  async_task *t;
  assert_int_equal(async_task_spawn(loop, &t, ret_arg, IPTR(7), NULL), 0);
  assert_int_equal(async_future_add_done_callback(t, done_cb, IPTR(1)), 0);
  assert_int_equal(async_future_add_done_callback(t, done_cb, IPTR(2)), 0);
  assert_int_equal(async_future_add_done_callback(t, done_cb, IPTR(3)), 0);
  assert_int_equal(async_future_remove_done_callback(t, done_cb, IPTR(2)), 1);
  assert_int_equal(async_future_remove_done_callback(t, done_cb, IPTR(9)), 0);
  assert_int_equal(async_loop_run_until_complete(loop, t, NULL), 0);
  /* Callbacks run soon after, not inside, the completion. */
  async_loop_call_soon(loop, stop_cb, loop, NULL);
  async_loop_run_forever(loop);
  int want[] = {107, 307};
  seqlog_expect(&g_log, want, 2);
  /* Added after done: scheduled at once. */
  assert_int_equal(async_future_add_done_callback(t, done_cb, IPTR(4)), 0);
  async_loop_call_soon(loop, stop_cb, loop, NULL);
  async_loop_run_forever(loop);
  int want2[] = {107, 307, 407};
  seqlog_expect(&g_log, want2, 3);
  async_task_release(t);
  free_loop(loop);
}

static void *released_early(void *arg) {
  async_sleep(0.001);
  (*(int *)arg)++;
  return NULL;
}

static void test_task_release_before_done_keeps_it_running(void **state) {
  (void)state;
  async_loop *loop = new_loop();
  int ran = 0;
  async_task *t;
  assert_int_equal(async_task_spawn(loop, &t, released_early, &ran, NULL), 0);
  assert_int_equal(async_task_release(t), 0);
  assert_int_equal(async_task_spawn(loop, NULL, released_early, &ran, NULL), 0);
  async_loop_call_later(loop, 0.05, stop_cb, loop, NULL);
  async_loop_run_forever(loop);
  assert_int_equal(ran, 2);
  free_loop(loop);
}

static int depth_reached;

static int recurse(int n) {
  volatile char pad[1024];
  pad[0] = (char)n;
  if (n == 0) return pad[0];
  depth_reached = n;
  return recurse(n - 1) + pad[0];
}

static void *deep(void *arg) { return IPTR(recurse(PTRI(arg))); }

static void test_task_stack_size_option(void **state) {
  (void)state;
  async_loop *loop = new_loop();
  async_task_options o;
  async_task_options_init(&o);
  o.stack_size = 4u << 20; /* 4 MiB: room for 2,000 frames of 1 KiB */
  async_task *t;
  assert_int_equal(async_task_spawn(loop, &t, deep, IPTR(2000), &o), 0);
  assert_int_equal(async_loop_run_until_complete(loop, t, NULL), 0);
  async_task_release(t);
  o.stack_size = (size_t)1 << 40;
  assert_int_equal(async_task_spawn(loop, &t, deep, IPTR(1), &o), -EINVAL);
  free_loop(loop);
}

static void *overflow(void *arg) {
  (void)arg;
  return IPTR(recurse(1 << 30));
}

static void test_task_stack_overflow_is_reported_with_name(void **state) {
  (void)state;
  int pipefd[2];
  assert_int_equal(pipe(pipefd), 0);
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    alarm(20);
    dup2(pipefd[1], 2);
    /* cmocka catches SIGSEGV during a test; the child wants the process's
     * own disposition, as a program would have it. */
    signal(SIGSEGV, SIG_DFL);
    async_loop *loop;
    if (async_loop_new(&loop, NULL)) _exit(3);
    async_task_options o;
    async_task_options_init(&o);
    o.name = "runaway-recursion";
    async_task *t;
    async_task_spawn(loop, &t, overflow, NULL, &o);
    async_loop_run_until_complete(loop, t, NULL);
    _exit(0); /* not reached: the overflow kills the process */
  }
  close(pipefd[1]);
  char buf[4096] = {0};
  size_t got = 0;
  ssize_t r;
  while (got < sizeof buf - 1 &&
         (r = read(pipefd[0], buf + got, sizeof buf - 1 - got)) > 0)
    got += (size_t)r;
  close(pipefd[0]);
  int status;
  waitpid(pid, &status, 0);
  assert_true(WIFSIGNALED(status));
  if (!strstr(buf, "runaway-recursion")) {
    fprintf(stderr, "child (signal %d) stderr: %s\n", WTERMSIG(status), buf);
    fail();
  }
}

static void *dump_waiter(void *arg) {
  (void)arg;
  async_sleep(3600);
  return NULL;
}

static void *dump_main(void *arg) {
  FILE *out = arg;
  async_task_options o;
  async_task_options_init(&o);
  o.name = "napper";
  async_task *t;
  async_task_spawn(async_loop_current(), &t, dump_waiter, NULL, &o);
  async_yield();
  long n = async_loop_dump(async_loop_current(), out);
  async_task_cancel(t);
  async_await(t, NULL);
  async_task_release(t);
  return IPTR(n);
}

static void test_task_dump_lists_what_each_task_waits_on(void **state) {
  (void)state;
  char buf[1024] = {0};
  FILE *out = fmemopen(buf, sizeof buf - 1, "w");
  assert_non_null(out);
  void *res;
  assert_int_equal(async_run(dump_main, out, &res), 0);
  fclose(out);
  assert_int_equal(PTRI(res), 2);
  assert_non_null(strstr(buf, ": running"));
  assert_non_null(strstr(buf, "napper: waiting on sleep"));
  assert_int_equal(async_loop_dump(NULL, stdout), -EINVAL);
}

static void test_task_unread_error_is_reported(void **state) {
  (void)state;
  int p[2];
  assert_int_equal(pipe(p), 0);
  int saved = dup(2);
  dup2(p[1], 2);
  async_loop *loop = new_loop();
  async_task_options o;
  async_task_options_init(&o);
  o.name = "forgotten";
  /* Nobody holds a reference: the error is lost when the task ends. */
  assert_int_equal(async_task_spawn(loop, NULL, fail_eio, NULL, &o), 0);
  async_task *read_one;
  o.name = "watched";
  async_task_spawn(loop, &read_one, fail_eio, NULL, &o);
  assert_int_equal(async_loop_run_until_complete(loop, read_one, NULL), -EIO);
  async_task_release(read_one);
  free_loop(loop);
  fflush(stderr);
  dup2(saved, 2);
  close(saved);
  close(p[1]);
  char buf[1024] = {0};
  ssize_t got = read(p[0], buf, sizeof buf - 1);
  close(p[0]);
  assert_true(got > 0);
  assert_non_null(strstr(buf, "'forgotten' failed"));
  assert_null(strstr(buf, "watched"));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_task_await_result_and_error),
      cmocka_unit_test(test_task_starts_when_creator_suspends),
      cmocka_unit_test(test_task_spawn_on_a_loop_not_running),
      cmocka_unit_test(test_task_nested_awaits),
      cmocka_unit_test(test_task_many_spawned_then_awaited),
      cmocka_unit_test(test_task_names_and_current),
      cmocka_unit_test(test_task_all_tasks),
      cmocka_unit_test(test_task_done_callbacks),
      cmocka_unit_test(test_task_release_before_done_keeps_it_running),
      cmocka_unit_test(test_task_stack_size_option),
      cmocka_unit_test(test_task_stack_overflow_is_reported_with_name),
      cmocka_unit_test(test_task_dump_lists_what_each_task_waits_on),
      cmocka_unit_test(test_task_unread_error_is_reported),
  };
  return cmocka_run_group_tests_name("task", tests, NULL, NULL);
}
