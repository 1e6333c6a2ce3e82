/* SPDX-License-Identifier: MIT */
/* countasync: the asyncio tutorial's countasync.py. Three count() tasks run
 * concurrently: each prints "One", sleeps a second and prints "Two", so the
 * whole program takes one second, not three. */
#include <async.h>
#include <stdio.h>

#include "example_util.h"

static double scale = 1.0; /* -s: multiplies every sleep */

static void *count(void *arg) {
  (void)arg;
  puts("One");
  async_sleep(1.0 * scale); /* suspends this task only */
  puts("Two");
  return NULL;
}

static void *amain(void *arg) {
  (void)arg;
  async_task *t[3];
  for (int i = 0; i < 3; i++) t[i] = async_spawn(count, NULL);
  int err = async_gather(t, 3, NULL); /* waits for all; -EINVAL if a spawn
                                         failed (a NULL task) */
  for (int i = 0; i < 3; i++) async_task_release(t[i]);
  return err ? async_fail(err) : NULL; /* a task fails through async_fail */
}

int main(int argc, char **argv) {
  scale = example_scale(argc, argv);
  setvbuf(stdout, NULL, _IOLBF, 0); /* keep the line order when piped */
  double t0 = async_clock();
  int err = async_run(amain, NULL, NULL);
  printf("countasync.c executed in %.2f seconds.\n", async_clock() - t0);
  if (err) fprintf(stderr, "countasync: %s\n", async_strerror(err));
  return err != 0;
}
