/* SPDX-License-Identifier: MIT */
/* create_task_order: the asyncio tutorial's create_task() ordering. A new
 * task does not run when it is created, only once its creator suspends,
 * and ready tasks run first in, first out: so main's lines and the tasks'
 * lines interleave as first, second, third, fourth. */
#include <async.h>
#include <stdio.h>

#include "example_util.h"

static void *say(void *msg) {
  puts(msg);
  return NULL;
}

static void *amain(void *arg) {
  (void)arg;
  async_task *a = async_spawn(say, "This goes second");
  puts("This goes first"); /* `a` is only queued: main has not suspended */
  async_yield();           /* the loop runs what is ready: `a` */
  async_task *b = async_spawn(say, "This goes fourth");
  puts("This goes third");
  int err = async_await(a, NULL);       /* done already: does not suspend */
  if (!err) err = async_await(b, NULL); /* suspends, so `b` runs now */
  async_task_release(a);
  async_task_release(b);
  return err ? async_fail(err) : NULL;
}

int main(int argc, char **argv) {
  (void)example_scale(argc, argv);  /* takes -s like the others; no sleeps */
  setvbuf(stdout, NULL, _IOLBF, 0); /* keep the line order when piped */
  int err = async_run(amain, NULL, NULL);
  if (err) fprintf(stderr, "create_task_order: %s\n", async_strerror(err));
  return err != 0;
}
