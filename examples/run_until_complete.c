/* SPDX-License-Identifier: MIT */
/* run_until_complete: the asyncio tutorial's Example #3. A task is created
 * on an explicit loop, which runs only until that task is done; the loop
 * is then closed and the task's result read: a task's outcome outlives the
 * loop that ran it, for as long as its creator holds its reference. */
#include <async.h>
#include <stdio.h>

#include "example_util.h"

static double scale = 1.0; /* -s: multiplies every sleep */

static void *sample_task(void *arg) {
  double task_seconds = *(double *)arg;
  printf("Task takes %g seconds to complete\n", task_seconds);
  int err = async_sleep(task_seconds * scale);
  return err ? async_fail(err) : "task has been completed";
}

int main(int argc, char **argv) {
  scale = example_scale(argc, argv);
  setvbuf(stdout, NULL, _IOLBF, 0); /* keep the line order when piped */
  async_loop *loop = NULL;
  async_task *task = NULL;
  double seconds = 3;
  int err = async_loop_new(&loop, NULL);
  if (err) goto out;
  puts("Creation of tasks started");
  err = async_task_spawn(loop, &task, sample_task, &seconds, NULL);
  if (!err) err = async_loop_run_until_complete(loop, task, NULL);
  async_loop_close(loop); /* the `finally:` of the tutorial */
  void *status = NULL;
  if (task && async_task_result(task, &status) == 0)
    printf("Task status: %s\n", (const char *)status);
  async_task_release(task); /* our reference; the loop had its own */
out:
  async_loop_free(loop);
  if (err) fprintf(stderr, "run_until_complete: %s\n", async_strerror(err));
  return err != 0;
}
