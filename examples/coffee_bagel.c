/* SPDX-License-Identifier: MIT */
/* coffee_bagel: the AsyncIO tutorial's breakfast, gathered. Brewing the
 * coffee and toasting the bagel take three seconds each; gathered, they
 * run side by side, both done after three seconds, not six, and gather
 * hands back their results in the order asked for (which the tutorial
 * unpacks and does not print). The tutorial's first main(), which calls
 * the two coroutines without awaiting them, prints nothing in Python: its
 * coroutine objects never run. C has no coroutine objects: calling
 * brew_coffee() from a task simply runs it, sleep included. */
#include <async.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "example_util.h"

static double scale = 1.0; /* -s: multiplies every sleep */

static void *brew_coffee(void *arg) {
  (void)arg;
  puts("Start brewing coffee...");
  int err = async_sleep(3.0 * scale);
  if (err) return async_fail(err);
  puts("Done brewing coffee.");
  return "Coffee is ready!";
}

static void *toast_bagel(void *arg) {
  (void)arg;
  puts("Start toasting bagel...");
  int err = async_sleep(3.0 * scale);
  if (err) return async_fail(err);
  puts("Done toasting bagel.");
  return "Bagel is ready!";
}

static void *amain(void *arg) {
  (void)arg;
  async_coro batch_coroutines[] = {{brew_coffee, NULL}, {toast_bagel, NULL}};
  void *results[2];
  int err = async_gather_coros(batch_coroutines, 2, results, NULL);
  if (err) return async_fail(err);
  const char *coffee_result = results[0], *bagel_result = results[1];
  /* coffee_result, bagel_result = await batch_coroutines */
  if (strcmp(coffee_result, "Coffee is ready!") != 0 ||
      strcmp(bagel_result, "Bagel is ready!") != 0)
    return async_fail(-EPROTO);
  return NULL;
}

int main(int argc, char **argv) {
  scale = example_scale(argc, argv);
  setvbuf(stdout, NULL, _IOLBF, 0); /* keep the line order when piped */
  int err = async_run(amain, NULL, NULL);
  if (err) fprintf(stderr, "coffee_bagel: %s\n", async_strerror(err));
  return err != 0;
}
