/* SPDX-License-Identifier: MIT */
/* coffee_bagel: breakfast, gathered. Brewing the coffee takes three
 * seconds and toasting the bagel two; started together, the bagel is done
 * first, gather hands both results back in the order they were asked for,
 * and breakfast takes three seconds, not five. */
#include <async.h>
#include <stdio.h>

#include "example_util.h"

static double scale = 1.0; /* -s: multiplies every sleep */

static void *brew_coffee(void *arg) {
  (void)arg;
  puts("Start brewCoffee()");
  int err = async_sleep(3.0 * scale);
  if (err) return async_fail(err);
  puts("End brewCoffee()");
  return "Coffee ready";
}

static void *toast_bagel(void *arg) {
  (void)arg;
  puts("Start toastBagel()");
  int err = async_sleep(2.0 * scale);
  if (err) return async_fail(err);
  puts("End toastBagel()");
  return "Bagel toasted";
}

static void *amain(void *arg) {
  (void)arg;
  double start = async_clock();
  async_coro batch[] = {{brew_coffee, NULL}, {toast_bagel, NULL}};
  void *results[2];
  int err = async_gather_coros(batch, 2, results, NULL);
  if (err) return async_fail(err);
  printf("Result of brewCoffee: %s\n", (const char *)results[0]);
  printf("Result of toastBagel: %s\n", (const char *)results[1]);
  printf("Total execution time: %.2f seconds\n", async_clock() - start);
  return NULL;
}

int main(int argc, char **argv) {
  scale = example_scale(argc, argv);
  setvbuf(stdout, NULL, _IOLBF, 0); /* keep the line order when piped */
  int err = async_run(amain, NULL, NULL);
  if (err) fprintf(stderr, "coffee_bagel: %s\n", async_strerror(err));
  return err != 0;
}
