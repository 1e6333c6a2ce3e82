/* SPDX-License-Identifier: MIT */
/* main_foo: the notebook tutorial's five main()/foo() programs, each run as
 * the notebook runs a cell with `await main()` (example_run_notebook: the
 * loop outlives main, so a task main left behind goes on).
 *   -v 1  main awaits foo() directly: a plain call, sequential.
 *   -v 2  main creates a task for foo and never awaits it: main prints
 *         "finished" first, and foo runs once main has returned.
 *   -v 3  main awaits the task: foo runs, then main goes on.
 *   -v 4  main sleeps 2 s beside the task: foo runs during main's sleep.
 *   -v 5  main sleeps 0.5 s while foo sleeps 10 s: main does not wait
 *         for foo to finish its sleep before it goes on. */
#include <async.h>
#include <stdio.h>

#include "example_util.h"

static double scale = 1.0; /* -s: multiplies every sleep */
static int variant;

static void *foo(void *text) {
  puts(text);
  int err = async_sleep((variant == 5 ? 10.0 : 2.0) * scale);
  return err ? async_fail(err) : NULL;
}

static void *amain(void *arg) {
  (void)arg;
  int err = 0;
  puts("I am Main");
  if (variant == 1) {
    foo("I am foo"); /* await foo('I am foo') */
  } else {
    async_task *task = async_spawn(foo, "I am foo");
    if (variant == 3) err = async_await(task, NULL);
    if (variant == 4) err = async_sleep(2.0 * scale);
    if (variant == 5) err = async_sleep(0.5 * scale);
    async_task_release(task); /* the loop keeps the task running */
  }
  if (!err) puts("finished");
  return err ? async_fail(err) : NULL;
}

int main(int argc, char **argv) {
  scale = example_variant(argc, argv, 5, &variant);
  setvbuf(stdout, NULL, _IOLBF, 0); /* keep the line order when piped */
  int err = example_run_notebook(amain, NULL);
  if (err) fprintf(stderr, "main_foo: %s\n", async_strerror(err));
  return err != 0;
}
