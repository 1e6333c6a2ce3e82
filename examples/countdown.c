/* SPDX-License-Identifier: MIT */
/* countdown: two countdowns interleaving. Each prints its count and sleeps
 * a second until it reaches zero; gathered, they run side by side, so the
 * lines alternate while both count, and the second count finishes alone. */
#include <async.h>
#include <stdio.h>

#include "example_util.h"

static double scale = 1.0; /* -s: multiplies every sleep */

typedef struct countdown {
  const char *name;
  int n;
} countdown;

static void *count_down(void *arg) {
  countdown *c = arg;
  for (int n = c->n; n > 0; n--) {
    printf("Counter of %d (%s)\n", n, c->name);
    int err = async_sleep(1.0 * scale);
    if (err) return async_fail(err);
  }
  return NULL;
}

static void *amain(void *arg) {
  (void)arg;
  countdown first = {"First Count", 2}, second = {"Second Count", 4};
  async_coro coros[] = {{count_down, &first}, {count_down, &second}};
  int err = async_gather_coros(coros, 2, NULL, NULL);
  return err ? async_fail(err) : NULL;
}

int main(int argc, char **argv) {
  scale = example_scale(argc, argv);
  setvbuf(stdout, NULL, _IOLBF, 0); /* keep the line order when piped */
  double t0 = async_clock();
  int err = async_run(amain, NULL, NULL);
  printf("Countdowns finished in %.2f seconds.\n", async_clock() - t0);
  if (err) fprintf(stderr, "countdown: %s\n", async_strerror(err));
  return err != 0;
}
