/* SPDX-License-Identifier: MIT */
/* work_queue_shared: the asyncio tutorial's Example #1, a queue of work, made
 * asynchronous. Three tasks take amounts from one queue until it is empty
 * and count each up to its amount, yielding to the others at every step,
 * so they share the work: each line names the task that did it, and every
 * amount (2 5 10 15 20) is counted exactly once, which the program checks.
 * Counting yields instead of sleeping, so the interleaving, and the
 * output, is the same at every run. */
#include <async.h>
#include <stdint.h>
#include <stdio.h>

#include "example_util.h"

#define NAMOUNTS 5
static const long amounts[NAMOUNTS] = {15, 10, 5, 2, 20};
static int counted[NAMOUNTS]; /* how many times each amount was counted */

typedef struct worker {
  const char *name;
  async_queue *work;
} worker;

static void *task(void *arg) {
  worker *w = arg;
  if (async_queue_empty(w->work)) printf("Task %s nothing to do\n", w->name);
  while (!async_queue_empty(w->work)) {
    void *item;
    int err = async_queue_get(w->work, &item);
    if (err) return async_fail(err);
    long count = amounts[(intptr_t)item], total = 0;
    printf("Task %s running\n", w->name);
    for (long x = 0; x < count; x++) {
      total += 1;
      async_yield(); /* let the others count too */
    }
    printf("Task %s total: %ld\n", w->name, total);
    if (total == count) counted[(intptr_t)item]++;
    async_queue_task_done(w->work);
  }
  return NULL;
}

static void *amain(void *arg) {
  (void)arg;
  async_queue *work;
  int err = async_queue_new(&work, 0, NULL);
  if (err) return async_fail(err);
  for (intptr_t i = 0; i < NAMOUNTS; i++)
    async_queue_put_nowait(work, (void *)i); /* items: indexes of amounts */
  worker w[3] = {{"One", work}, {"Two", work}, {"Three", work}};
  async_task *t[3];
  for (int i = 0; i < 3; i++) t[i] = async_spawn(task, &w[i]);
  for (int i = 0; i < 3; i++) {
    int e = async_await(t[i], NULL);
    if (!err) err = e;
    async_task_release(t[i]);
  }
  async_queue_free(work);
  return err ? async_fail(err) : NULL;
}

int main(int argc, char **argv) {
  (void)example_scale(argc, argv);  /* takes -s like the others; no sleeps */
  setvbuf(stdout, NULL, _IOLBF, 0); /* keep the line order when piped */
  int err = async_run(amain, NULL, NULL);
  if (err) {
    fprintf(stderr, "work_queue_shared: %s\n", async_strerror(err));
    return 1;
  }
  long sum = 0;
  for (int i = 0; i < NAMOUNTS; i++) {
    if (counted[i] != 1) {
      fprintf(stderr, "work_queue_shared: amount %ld counted %d times\n",
              amounts[i], counted[i]);
      return 1;
    }
    sum += amounts[i];
  }
  printf("Every amount counted once: %ld in all.\n", sum);
  return 0;
}
