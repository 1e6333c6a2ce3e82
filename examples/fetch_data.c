/* SPDX-License-Identifier: MIT */
/* fetch_data: the asyncio tutorial's fetch_data() beside print_numbers().
 * While one task "fetches" for two seconds, the other counts to nine, one
 * number a quarter second; main prints the data as soon as it arrives,
 * between 7 and 8, then waits for the count to end. */
#include <async.h>
#include <stdio.h>

#include "example_util.h"

static double scale = 1.0; /* -s: multiplies every sleep */

static void *fetch_data(void *arg) {
  (void)arg;
  puts("Start fetching");
  async_sleep(2.0 * scale); /* stands for the network */
  puts("Done fetching");
  return "{'data': 1}";
}

/* Prints 0..9 a quarter second apart. asyncio's version sleeps 0.25 s after
 * each number and counts on the sleeps' drift to print 8 after fetch_data
 * wakes at 2 s. Here number i is due 0.2 + 0.25 i seconds after *start:
 * counted from the start, lateness does not add up, and the 0.2 puts 7
 * (1.95 s) and 8 (2.2 s) clearly on either side of that wake-up. */
static void *print_numbers(void *start) {
  for (int i = 0; i < 10; i++) {
    double at = *(double *)start + (0.2 + 0.25 * i) * scale;
    async_sleep(at - async_clock());
    printf("%d\n", i);
  }
  return NULL;
}

static void *amain(void *arg) {
  (void)arg;
  double start = async_clock(); /* outlives both: main awaits both */
  async_task *fetch = async_spawn(fetch_data, NULL);
  async_task *numbers = async_spawn(print_numbers, &start);
  void *data = NULL;
  int err = async_await(fetch, &data); /* numbers run meanwhile */
  if (!err) puts(data);
  int err2 = async_await(numbers, NULL);
  async_task_release(fetch);
  async_task_release(numbers);
  if (!err) err = err2;
  return err ? async_fail(err) : NULL;
}

int main(int argc, char **argv) {
  scale = example_scale(argc, argv);
  setvbuf(stdout, NULL, _IOLBF, 0); /* keep the line order when piped */
  int err = async_run(amain, NULL, NULL);
  if (err) fprintf(stderr, "fetch_data: %s\n", async_strerror(err));
  return err != 0;
}
