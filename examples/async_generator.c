/* SPDX-License-Identifier: MIT */
/* async_generator: the asyncio walkthrough's async generator. mygen(b, n)
 * yields b**i for i in 0..n-1, printing before each value and sleeping a
 * second after it. The comprehension [i async for i in mygen(2, 10)]
 * becomes async_gen_collect (the driver returns the list, which nobody
 * prints, as in the text); `async for j in mygen(3, 5): print(j)` becomes
 * a plain loop over async_gen_next. The generator runs only while its
 * consumer asks for the next value, so its lines interleave with j's. */
#include <async.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "example_util.h"

static double scale = 1.0; /* -s: multiplies every sleep */

typedef struct mygen_args {
  long base, u;
} mygen_args;

/* The generator's body: runs as its own coroutine. */
static void *mygen(void *arg) {
  const mygen_args *a = arg;
  long v = 1;
  for (long i = 0; i < a->u; i++, v *= a->base) {
    puts("Yielding a value");
    if (async_gen_yield((void *)(intptr_t)v) != 0)
      break; /* closed by the consumer (or cancelled): clean up here */
    if (async_sleep(1.0 * scale) != 0) break;
    puts("Back after sleeping");
  }
  return NULL;
}

static void *amain(void *arg) {
  (void)arg;
  async_gen *g;
  mygen_args twos = {2, 10}, threes = {3, 5};

  /* g = [i async for i in mygen(2, 10)] */
  int err = async_gen_new(&g, mygen, &twos, NULL);
  if (err) return async_fail(err);
  void **items;
  size_t n;
  err = async_gen_collect(g, &items, &n);
  async_gen_free(g);
  if (err) {
    free(items);
    return async_fail(err);
  }

  /* async for j in mygen(3, 5): print(j) */
  if ((err = async_gen_new(&g, mygen, &threes, NULL))) {
    free(items);
    return async_fail(err);
  }
  void *v;
  while ((err = async_gen_next(g, &v)) == 0) printf("%ld\n", (long)(intptr_t)v);
  async_gen_free(g);
  if (err < 0) {
    free(items);
    return async_fail(err);
  }
  return items; /* return g: the list of the ten powers of two */
}

int main(int argc, char **argv) {
  scale = example_scale(argc, argv);
  setvbuf(stdout, NULL, _IOLBF, 0); /* keep the line order when piped */
  void *g = NULL;
  int err = async_run(amain, NULL, &g);
  free(g);
  if (err) fprintf(stderr, "async_generator: %s\n", async_strerror(err));
  return err != 0;
}
