/* SPDX-License-Identifier: MIT */
/* async_generator: the asyncio walkthrough's async generator. mygen(base,
 * u) yields base**i for i in 0..u-1, sleeping 0.1 s after each value. The
 * comprehension [i async for i in mygen(2, 10)] becomes async_gen_collect;
 * `async for j in mygen(3, 5): print(j)` becomes a plain loop over
 * async_gen_next, and the values come one by one, 0.1 s apart. */
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
    if (async_gen_yield((void *)(intptr_t)v) != 0)
      break; /* closed by the consumer (or cancelled): clean up here */
    async_sleep(0.1 * scale);
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
  printf("[");
  for (size_t i = 0; i < n; i++)
    printf("%s%ld", i ? ", " : "", (long)(intptr_t)items[i]);
  printf("]\n");
  free(items);

  /* async for j in mygen(3, 5): print(j) */
  if ((err = async_gen_new(&g, mygen, &threes, NULL))) return async_fail(err);
  void *v;
  while ((err = async_gen_next(g, &v)) == 0) printf("%ld\n", (long)(intptr_t)v);
  async_gen_free(g);
  return err < 0 ? async_fail(err) : NULL; /* else ASYNC_GEN_DONE */
}

int main(int argc, char **argv) {
  scale = example_scale(argc, argv);
  setvbuf(stdout, NULL, _IOLBF, 0); /* keep the line order when piped */
  double t0 = async_clock();
  int err = async_run(amain, NULL, NULL);
  printf("async_generator.c executed in %.2f seconds.\n", async_clock() - t0);
  if (err) fprintf(stderr, "async_generator: %s\n", async_strerror(err));
  return err != 0;
}
