/* SPDX-License-Identifier: MIT */
/* work_queue: the asyncio tutorial's Example #1 as the text runs it. Three
 * tasks, Async1 to Async3, are handed one queue of work (2 5 10 15 20) and
 * run one after the other. Nothing in a task suspends, so the first one
 * runs until the queue is empty and the others find nothing to do: a task
 * gives up the CPU only where it suspends. work_queue_shared is the same
 * work with a yield at every step, shared among the three. */
#include <async.h>
#include <stdint.h>
#include <stdio.h>

#include "example_util.h"

typedef struct job {
  const char *name;
  async_queue *queue;
} job;

static void *task(void *arg) {
  job *j = arg;
  if (async_queue_empty(j->queue) == 1) {
    printf("Task %s has nothing to do\n", j->name);
    return NULL;
  }
  void *item = NULL;
  while (async_queue_get_nowait(j->queue, &item) == 0) {
    long cnt = (long)(intptr_t)item, total = 0;
    for (long x = 0; x < cnt; x++) {
      printf("Task %s is running now\n", j->name);
      total += 1;
    }
    printf("Task %s is running with a total of: %ld\n", j->name, total);
  }
  return NULL;
}

static void *sample_async(void *arg) {
  (void)arg;
  async_queue *q = NULL;
  int err = async_queue_new(&q, 0, NULL);
  if (err) return async_fail(err);
  static const long work[] = {2, 5, 10, 15, 20};
  for (size_t i = 0; i < sizeof work / sizeof work[0] && !err; i++)
    err = async_queue_put_nowait(q, (void *)(intptr_t)work[i]);
  job jobs[] = {{"Async1", q}, {"Async2", q}, {"Async3", q}};
  async_coro coros[] = {{task, &jobs[0]}, {task, &jobs[1]}, {task, &jobs[2]}};
  if (!err) err = async_gather_coros(coros, 3, NULL, NULL);
  async_queue_free(q);
  return err ? async_fail(err) : NULL;
}

int main(int argc, char **argv) {
  (void)example_scale(argc, argv); /* takes -s like the others; no sleeps */
  setvbuf(stdout, NULL, _IOLBF, 0);
  int err = async_run(sample_async, NULL, NULL);
  if (err) fprintf(stderr, "work_queue: %s\n", async_strerror(err));
  return err != 0;
}
