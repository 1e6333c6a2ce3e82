/* SPDX-License-Identifier: MIT */
/* chain_gather: the asyncio tutorial's wrapper_corot() design pattern.
 * Each wrapper awaits corot1, prints its result, awaits corot2 and returns
 * both; the driver gathers three wrappers, (1,2,3), (4,5,6) and (7,8,9).
 * The tutorial leaves corot1 and corot2 empty ("some network call"); here
 * corot1 sums its arguments after a short sleep and corot2 multiplies
 * them after a longer one, and the driver prints the pairs in argument
 * order. The text's own code has two slips (print(r) for print(r1), and a
 * list passed to gather): this is the program it means. The calls are
 * plain C calls: a function that suspends needs no await keyword. */
#include <async.h>
#include <stdint.h>
#include <stdio.h>

#include "example_util.h"

static double scale = 1.0; /* -s: multiplies every sleep */

typedef struct args {
  int a, b, c;
  long r1, r2;
} args;

static long corot1(const args *x) {
  async_sleep(0.1 * x->a * scale); /* a "network call" */
  return x->a + x->b + x->c;
}

static long corot2(const args *x) {
  async_sleep(0.5 * scale);
  return (long)x->a * x->b * x->c;
}

static void *wrapper_corot(void *arg) {
  args *x = arg;
  x->r1 = corot1(x);
  printf("r1(%d, %d, %d) = %ld\n", x->a, x->b, x->c, x->r1);
  x->r2 = corot2(x);
  return x;
}

static void *async_driver(void *arg) {
  (void)arg;
  args in[] = {{1, 2, 3, 0, 0}, {4, 5, 6, 0, 0}, {7, 8, 9, 0, 0}};
  async_coro coros[3];
  void *results[3];
  for (int i = 0; i < 3; i++) coros[i] = (async_coro){wrapper_corot, &in[i]};
  int err = async_gather_coros(coros, 3, results, NULL);
  if (err) return async_fail(err);
  for (int i = 0; i < 3; i++) {
    const args *x = results[i];
    printf("wrapper_corot(%d, %d, %d) = (%ld, %ld)\n", x->a, x->b, x->c, x->r1,
           x->r2);
  }
  return NULL;
}

int main(int argc, char **argv) {
  scale = example_scale(argc, argv);
  setvbuf(stdout, NULL, _IOLBF, 0); /* keep the line order when piped */
  int err = async_run(async_driver, NULL, NULL);
  if (err) fprintf(stderr, "chain_gather: %s\n", async_strerror(err));
  return err != 0;
}
