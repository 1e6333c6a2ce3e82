/* SPDX-License-Identifier: MIT */
/* hello_world: the tutorials' first programs.
 *   -v 1  "Hello," then, two seconds later, "World!!!!!!!" (the notebook
 *         tutorial's main()).
 *   -v 2  "Hello World!" from a coroutine run by asyncio.run.
 *   -v 3  "Hello World!", a five-second wait, "I just waited for 5
 *         seconds!": an await that only waits, with nothing else to run. */
#include <async.h>
#include <stdio.h>

#include "example_util.h"

static double scale = 1.0; /* -s: multiplies every sleep */

static void *hello_world(void *arg) {
  int err = 0;
  switch (*(int *)arg) {
  case 1:
    puts("Hello,");
    err = async_sleep(2.0 * scale);
    if (!err) puts("World!!!!!!!");
    break;
  case 2:
    puts("Hello World!");
    break;
  default:
    puts("Hello World!");
    err = async_sleep(5.0 * scale);
    if (!err) puts("I just waited for 5 seconds!");
  }
  return err ? async_fail(err) : NULL;
}

int main(int argc, char **argv) {
  int variant;
  scale = example_variant(argc, argv, 3, &variant);
  setvbuf(stdout, NULL, _IOLBF, 0); /* keep the line order when piped */
  int err = async_run(hello_world, &variant, NULL);
  if (err) fprintf(stderr, "hello_world: %s\n", async_strerror(err));
  return err != 0;
}
