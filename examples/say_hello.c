/* SPDX-License-Identifier: MIT */
/* say_hello: the asyncio tutorial's say_hello() in its three forms.
 *   -v 1  asyncio.run(say_hello("John")): "Hello, John" after a second.
 *   -v 2  say_hello() gathered over John, Jane and Alice, where the sleep is
 *         called but not awaited: the greetings come at once, in order. In
 *         Python the un-awaited sleep is a coroutine object that never runs
 *         (and a RuntimeWarning). C has no coroutine objects: a call is a
 *         call. The nearest C mistake is to start the sleep as a task and
 *         never wait for it, which is what this variant does: nothing
 *         waits, and the sleeping tasks are cancelled when the loop ends.
 *   -v 3  the same gathered, with a blocking sleep (time.sleep, here
 *         nanosleep) in place of the sleep: each call blocks the whole
 *         loop, so the three greetings take three seconds, not one.
 * Variants 2 and 3 print how long the greetings took, in seconds of the
 * unscaled program, so their test can tell one second from three. */
#define _POSIX_C_SOURCE 200809L /* nanosleep */
#include <async.h>
#include <stdio.h>
#include <time.h>

#include "example_util.h"

static double scale = 1.0; /* -s: multiplies every sleep */
static int variant;

static void *sleep_task(void *arg) {
  (void)arg;
  async_sleep(1.0 * scale);
  return NULL;
}

static void blocking_sleep(double seconds) {
  struct timespec ts = {(time_t)seconds,
                        (long)((seconds - (double)(time_t)seconds) * 1e9)};
  while (nanosleep(&ts, &ts) != 0) continue;
}

static void *say_hello(void *arg) {
  const char *name = arg;
  if (variant == 1) {
    int err = async_sleep(1.0 * scale);
    if (err) return async_fail(err);
  } else if (variant == 2) {
    async_task *t = async_spawn(sleep_task, NULL); /* never awaited */
    async_task_release(t);
  } else {
    blocking_sleep(1.0 * scale); /* the loop can run nothing meanwhile */
  }
  printf("Hello, %s\n", name);
  return NULL;
}

static void *async_tasks(void *arg) {
  (void)arg;
  async_coro coros[] = {
      {say_hello, "John"}, {say_hello, "Jane"}, {say_hello, "Alice"}};
  double t0 = async_clock();
  int err = async_gather_coros(coros, 3, NULL, NULL);
  printf("Greeted in %.2f seconds.\n", (async_clock() - t0) / scale);
  return err ? async_fail(err) : NULL;
}

int main(int argc, char **argv) {
  scale = example_variant(argc, argv, 3, &variant);
  setvbuf(stdout, NULL, _IOLBF, 0); /* keep the line order when piped */
  int err = variant == 1 ? async_run(say_hello, "John", NULL)
                         : async_run(async_tasks, NULL, NULL);
  if (err) fprintf(stderr, "say_hello: %s\n", async_strerror(err));
  return err != 0;
}
