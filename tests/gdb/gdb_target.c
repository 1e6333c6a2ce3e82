/* SPDX-License-Identifier: MIT */
/* The program tests/gdb/run.sh debugs. Eight named tasks: "sleeper" sleeps,
 * "getter" waits in a queue get, "awaiter" awaits a bare future, "joiner"
 * awaits the sleeper, "timed" waits for an event inside a deadline scope,
 * "yielder" yields (ready, with a saved context), "idle" has not started
 * and has a cancellation pending, and "runner" runs and calls
 * gdb_target_pause(), where the debugger stops.
 * Each waiting task parks below a function of its own, so that its
 * backtrace has names to look for. Resumed, the runner wakes every task,
 * and the program exits 0 only if each ended as expected: the debugger
 * left their stacks as it found them. The loop runs on the virtual clock,
 * so deadlines are exact: 1000 s for the sleeper, 500 s for the scope.
 * A second thread runs a loop of its own (see worker_thread).
 *
 *   gdb_target [mprotect] [abort]
 *     mprotect  guard the stacks with mprotect'd pages, not madvise guards
 *               (linked with the static library only: a test knob of
 *               src/os, hidden in the shared one)
 *     abort     die of SIGABRT at the pause, for a kernel core dump */
#include "os/os.h"

#include <async.h>
#include <errno.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static async_queue *queue;
static async_future *promise;
static async_task *sleeper;
static async_event *event;
static int released;  /* the runner is past the pause */
static int dump_core; /* "abort": die of SIGABRT at the pause */

/* The debugger's breakpoint; noinline and not empty, so that it stays a
 * call. */
void gdb_target_pause(void);
__attribute__((noinline)) void gdb_target_pause(void) {
  __asm__ volatile("" ::: "memory");
  if (dump_core) abort();
}

__attribute__((noinline)) static int sleeper_nap(double s) {
  return async_sleep(s);
}
static void *sleeper_main(void *arg) {
  (void)arg;
  /* The runner cancels it: anything else is a failure. */
  return sleeper_nap(1000.0) == -ECANCELED ? arg : async_fail(-EPROTO);
}

__attribute__((noinline)) static int getter_take(void **item) {
  return async_queue_get(queue, item);
}
static void *getter_main(void *arg) {
  void *item = NULL;
  int err = getter_take(&item);
  (void)arg;
  return err ? async_fail(err) : item;
}

__attribute__((noinline)) static int awaiter_hold(void **out) {
  return async_await(promise, out);
}
static void *awaiter_main(void *arg) {
  void *out = NULL;
  int err = awaiter_hold(&out);
  (void)arg;
  return err ? async_fail(err) : out;
}

__attribute__((noinline)) static int joiner_wait(void) {
  return async_await(sleeper, NULL);
}
static void *joiner_main(void *arg) {
  int err = joiner_wait();
  return err ? async_fail(err) : arg;
}

__attribute__((noinline)) static int timed_wait(void) {
  async_timeout tmo;
  int err = async_timeout_enter(&tmo, 500.0);
  if (err) return err;
  err = async_event_wait(event);
  return async_timeout_exit(&tmo, err);
}
static void *timed_main(void *arg) {
  int err = timed_wait();
  return err ? async_fail(err) : arg;
}

static void *yielder_main(void *arg) {
  while (!released) {
    int err = async_yield();
    if (err) return async_fail(err);
  }
  return arg;
}

static void *idle_main(void *arg) { return arg; }

static void *runner_main(void *arg) {
  async_loop *loop = async_loop_current();
  async_task *idle;
  async_task_options o;
  int err;
  (void)arg;
  async_task_options_init(&o);
  o.name = "idle";
  if ((err = async_task_spawn(loop, &idle, idle_main, NULL, &o)))
    return async_fail(err);
  /* Shown as "cancelling" while the request is pending. */
  err = async_future_cancel(idle) == 1 ? 0 : -EPROTO;
  async_future_release(idle);
  if (err) return async_fail(err);
  gdb_target_pause();
  released = 1;
  if (async_event_set(event) != 1) return async_fail(-EPROTO);
  if ((err = async_queue_put_nowait(queue, &queue)) ||
      (err = async_future_set_result(promise, &promise)))
    return async_fail(err);
  if (async_future_cancel(sleeper) != 1) return async_fail(-EPROTO);
  return NULL;
}

/* A second thread runs a loop of its own, whose one task, "worker", sleeps
 * until main cancels it from its own thread: the helper must show each
 * thread its own loop. main waits for a callback the task schedules before
 * its sleep, which runs only once the task has parked. */
static sem_t worker_parked;
static async_loop *worker_loop;
static async_task *worker_task;

static void worker_ready(void *arg) {
  (void)arg;
  sem_post(&worker_parked);
}

static void worker_cancel(void *arg) {
  (void)arg;
  async_future_cancel(worker_task);
}

__attribute__((noinline)) static int worker_nap(void) {
  return async_sleep(1000.0);
}
static void *worker_main(void *arg) {
  int err = async_loop_call_soon(worker_loop, worker_ready, NULL, NULL);
  if (err) return async_fail(err);
  return worker_nap() == -ECANCELED ? arg : async_fail(-EPROTO);
}

static void *worker_thread(void *arg) {
  async_task_options o;
  int err;
  async_task_options_init(&o);
  o.name = "worker";
  if ((err = async_loop_new(&worker_loop, NULL)) == 0) {
    err = async_task_spawn(worker_loop, &worker_task, worker_main, NULL, &o);
    if (err == 0) {
      err = async_loop_run_until_complete(worker_loop, worker_task, NULL);
      async_future_release(worker_task);
    }
    async_loop_free(worker_loop);
  }
  if (err) sem_post(&worker_parked); /* main must not wait forever */
  *(int *)arg = err;
  return NULL;
}

int main(int argc, char **argv) {
  static const struct {
    const char *name;
    async_fn fn;
  } spec[] = {{"sleeper", sleeper_main}, {"getter", getter_main},
              {"awaiter", awaiter_main}, {"joiner", joiner_main},
              {"timed", timed_main},     {"yielder", yielder_main},
              {"runner", runner_main}};
  enum { N = sizeof spec / sizeof spec[0] };
  async_task *tasks[N];
  async_loop_options lo;
  async_loop *loop;
  int err = 0;

  /* gdb's gcore gives up on a whole mapping at the first page it cannot
   * read, and a MADV_GUARD_INSTALL guard (Linux 6.13+) is such a page:
   * "mprotect" makes the guards mappings of their own, which it skips. */
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "mprotect") == 0) {
#if defined(GDB_TARGET_STATIC)
      async__stack_test_config(0, -1);
#else
      fprintf(stderr, "gdb_target: mprotect needs the static library\n");
      return 2;
#endif
    } else if (strcmp(argv[i], "abort") == 0)
      dump_core = 1;
  }
  pthread_t worker;
  int worker_err = 0;
  if (sem_init(&worker_parked, 0, 0) ||
      pthread_create(&worker, NULL, worker_thread, &worker_err)) {
    fprintf(stderr, "gdb_target: no worker thread\n");
    return 1;
  }
  while (sem_wait(&worker_parked) != 0) continue;
  async_loop_options_init(&lo);
  lo.virtual_clock = 1;
  if (async_loop_new(&loop, &lo) || async_queue_new(&queue, 0, NULL) ||
      async_future_new(loop, &promise) || async_event_new(&event)) {
    fprintf(stderr, "gdb_target: setup failed\n");
    return 1;
  }
  for (int i = 0; i < N; i++) {
    async_task_options o;
    async_task_options_init(&o);
    o.name = spec[i].name;
    if (async_task_spawn(loop, &tasks[i], spec[i].fn, NULL, &o)) {
      fprintf(stderr, "gdb_target: spawn failed\n");
      return 1;
    }
  }
  sleeper = tasks[0];
  for (int i = 0; i < N && !err; i++)
    err = async_loop_run_until_complete(loop, tasks[i], NULL);
  for (int i = 0; i < N; i++) async_future_release(tasks[i]);
  async_future_release(promise);
  async_queue_free(queue);
  async_event_free(event);
  async_loop_free(loop);
  if (!worker_err &&
      async_loop_call_soon_threadsafe(worker_loop, worker_cancel, NULL))
    abort(); /* the worker would never end */
  pthread_join(worker, NULL);
  if (!err) err = worker_err;
  if (err) fprintf(stderr, "gdb_target: a task failed: %d\n", err);
  return err ? 1 : 0;
}
