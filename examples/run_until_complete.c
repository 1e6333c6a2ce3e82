/* SPDX-License-Identifier: MIT */
/* run_until_complete: the asyncio tutorial's loop.run_until_complete() of
 * one task. The loop runs only until that task is done; the task's return
 * value comes back as the result. */
#include <async.h>
#include <stdint.h>
#include <stdio.h>

#include "example_util.h"

static double scale = 1.0; /* -s: multiplies every sleep */

/* Sums 1..n, taking its time about it. A task's result is a void *: a
 * small integer travels in it through intptr_t. */
static void *slow_sum(void *arg) {
  intptr_t n = (intptr_t)arg, sum = 0;
  for (intptr_t i = 1; i <= n; i++) sum += i;
  async_sleep(0.5 * scale);
  return (void *)sum;
}

int main(int argc, char **argv) {
  scale = example_scale(argc, argv);
  setvbuf(stdout, NULL, _IOLBF, 0); /* keep the line order when piped */
  async_loop *loop = NULL;
  async_task *task = NULL;
  void *result = NULL;
  int err = async_loop_new(&loop, NULL);
  if (!err)
    err = async_task_spawn(loop, &task, slow_sum, (void *)(intptr_t)10, NULL);
  if (!err) {
    /* Runs the loop (nothing runs before it) and returns once the task is
     * done, with the task's outcome. */
    err = async_loop_run_until_complete(loop, task, &result);
    if (async_task_done(task) == 1)
      puts("Task status: task has been completed");
    if (!err) printf("Result: %ld\n", (long)(intptr_t)result);
    async_task_release(task); /* our reference; the loop had its own */
  }
  async_loop_free(loop);
  if (err) fprintf(stderr, "run_until_complete: %s\n", async_strerror(err));
  return err != 0;
}
