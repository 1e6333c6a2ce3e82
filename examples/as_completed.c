/* SPDX-License-Identifier: MIT */
/* as_completed: the asyncio walkthrough's as_completed() over two tasks
 * that each sleep a second. Both finish in the same turn of the loop, the
 * first one created first; as_completed hands them back in that order, and
 * once the loop over them ends, both tasks are done. (The text's
 * print(futures) names nothing it defined; it is left out.) */
#include <async.h>
#include <stdint.h>
#include <stdio.h>

#include "example_util.h"

static double scale = 1.0; /* -s: multiplies every sleep */

static void *async_coroutine(void *arg) {
  int err = async_sleep(1.0 * scale);
  if (err) return async_fail(err);
  printf("Inside coroutine with id:%d\n", (int)(intptr_t)arg);
  return arg;
}

static void *amain(void *arg) {
  (void)arg;
  async_task *task1 = async_spawn(async_coroutine, (void *)(intptr_t)1);
  async_task *task2 = async_spawn(async_coroutine, (void *)(intptr_t)2);
  async_future *futs[] = {task1, task2};
  async_as_completed *it = NULL;
  int err = async_as_completed_new(&it, futs, 2, ASYNC_NO_TIMEOUT);
  async_future *f;
  while (!err && async_as_completed_next(it, &f) == 1) {
    void *result = NULL;
    err = async_await(f, &result);
    if (!err) printf("Task result: %d\n", (int)(intptr_t)result);
  }
  async_as_completed_free(it);
  int all = async_task_done(task1) == 1 && async_task_done(task2) == 1;
  printf("%s\n", all ? "True" : "False");
  async_task_release(task1);
  async_task_release(task2);
  return err ? async_fail(err) : NULL;
}

int main(int argc, char **argv) {
  scale = example_scale(argc, argv);
  setvbuf(stdout, NULL, _IOLBF, 0); /* keep the line order when piped */
  int err = async_run(amain, NULL, NULL);
  if (err) fprintf(stderr, "as_completed: %s\n", async_strerror(err));
  return err != 0;
}
