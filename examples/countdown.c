/* SPDX-License-Identifier: MIT */
/* countdown: the asyncio tutorial's Example #4. Two countdowns, from 2 and
 * from 4, each printing its count and sleeping a second, run side by side
 * until asyncio.wait() sees both done: the lines alternate while both
 * count, and the second finishes alone. Python's print('Counter of ', n)
 * puts a space between its arguments, hence the two after "of". */
#include <async.h>
#include <stdio.h>

#include "example_util.h"

static double scale = 1.0; /* -s: multiplies every sleep */

typedef struct countdown {
  const char *number;
  int n;
} countdown;

static void *count_down(void *arg) {
  countdown *c = arg;
  for (int n = c->n; n > 0; n--) {
    printf("Counter of  %d (%s)\n", n, c->number);
    int err = async_sleep(1.0 * scale);
    if (err) return async_fail(err);
  }
  return NULL;
}

/* asyncio.wait(tasks) as a coroutine: waits until both are done. */
static void *wait_all(void *arg) {
  async_task **tasks = arg;
  int n =
      async_wait(tasks, 2, ASYNC_ALL_COMPLETED, ASYNC_NO_TIMEOUT, NULL, NULL);
  return n < 0 ? async_fail(n) : NULL;
}

int main(int argc, char **argv) {
  scale = example_scale(argc, argv);
  setvbuf(stdout, NULL, _IOLBF, 0); /* keep the line order when piped */
  async_loop *loop = NULL;
  async_task *tasks[2] = {NULL, NULL}, *waiter = NULL;
  countdown first = {"First Count", 2}, second = {"Second Count", 4};
  int err = async_loop_new(&loop, NULL);
  if (!err) err = async_task_spawn(loop, &tasks[0], count_down, &first, NULL);
  if (!err) err = async_task_spawn(loop, &tasks[1], count_down, &second, NULL);
  if (!err) err = async_task_spawn(loop, &waiter, wait_all, tasks, NULL);
  if (!err) err = async_loop_run_until_complete(loop, waiter, NULL);
  for (int i = 0; i < 2; i++)
    if (tasks[i]) async_task_release(tasks[i]);
  if (waiter) async_task_release(waiter);
  async_loop_free(loop); /* loop.close() */
  if (err) fprintf(stderr, "countdown: %s\n", async_strerror(err));
  return err != 0;
}
