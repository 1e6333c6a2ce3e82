/* SPDX-License-Identifier: MIT */
/* chained: the asyncio tutorial's chained.py. For each argument n (9 6 3
 * by default), a chain runs part1(n) then part2(n, part1's result), each
 * sleeping a random 0-10 seconds; the chains run side by side, gathered.
 * The random draws are Python's for random.seed(444) (the same Mersenne
 * Twister, seeded the same way), so the sleeps are the tutorial's.
 *
 * Each chain takes part1 + part2 seconds, and the program as long as the
 * longest chain, not the sum of them: the program checks that before it
 * exits. With --virtual-clock it runs on a loop whose clock jumps from
 * timer to timer: instantly, and the times it prints are exact.
 *
 *   chained [-s SCALE] [--virtual-clock] [N...] */
#include <async.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "example_util.h"

static double scale = 1.0; /* -s: multiplies every sleep */

/* {==== Python's random.randint, seeded as random.seed(444) ============= */

#define MT_N 624
#define MT_M 397

static uint32_t mt[MT_N];
static int mti = MT_N + 1;

static void mt_init(uint32_t s) {
  mt[0] = s;
  for (mti = 1; mti < MT_N; mti++)
    mt[mti] = 1812433253u * (mt[mti - 1] ^ (mt[mti - 1] >> 30)) + (uint32_t)mti;
}

/* random.seed(a) for a small non-negative int a: init_by_array([a]). */
static void py_seed(uint32_t a) {
  mt_init(19650218u);
  int i = 1;
  for (int k = MT_N; k; k--) {
    mt[i] = (mt[i] ^ ((mt[i - 1] ^ (mt[i - 1] >> 30)) * 1664525u)) + a;
    if (++i >= MT_N) {
      mt[0] = mt[MT_N - 1];
      i = 1;
    }
  }
  for (int k = MT_N - 1; k; k--) {
    mt[i] =
        (mt[i] ^ ((mt[i - 1] ^ (mt[i - 1] >> 30)) * 1566083941u)) - (uint32_t)i;
    if (++i >= MT_N) {
      mt[0] = mt[MT_N - 1];
      i = 1;
    }
  }
  mt[0] = 0x80000000u;
}

static uint32_t mt_next(void) {
  static const uint32_t mag01[2] = {0, 0x9908b0dfu};
  uint32_t y;
  if (mti >= MT_N) {
    int kk = 0;
    for (; kk < MT_N - MT_M; kk++) {
      y = (mt[kk] & 0x80000000u) | (mt[kk + 1] & 0x7fffffffu);
      mt[kk] = mt[kk + MT_M] ^ (y >> 1) ^ mag01[y & 1];
    }
    for (; kk < MT_N - 1; kk++) {
      y = (mt[kk] & 0x80000000u) | (mt[kk + 1] & 0x7fffffffu);
      mt[kk] = mt[kk + (MT_M - MT_N)] ^ (y >> 1) ^ mag01[y & 1];
    }
    y = (mt[MT_N - 1] & 0x80000000u) | (mt[0] & 0x7fffffffu);
    mt[MT_N - 1] = mt[MT_M - 1] ^ (y >> 1) ^ mag01[y & 1];
    mti = 0;
  }
  y = mt[mti++];
  y ^= y >> 11;
  y ^= (y << 7) & 0x9d2c5680u;
  y ^= (y << 15) & 0xefc60000u;
  y ^= y >> 18;
  return y;
}

/* random.randint(0, 10): getrandbits(4) until it is below 11. */
static int randint_0_10(void) {
  uint32_t r;
  do r = mt_next() >> 28;
  while (r >= 11);
  return (int)r;
}

/* }==== */

typedef struct chain {
  int n;
  char result1[32];
  char result2[96];
  double took; /* seconds, on the loop's clock */
} chain;

static double now(void) { return async_loop_time(async_loop_current()); }

static int part1(chain *c) {
  int i = randint_0_10();
  printf("part1(%d) sleeping for %d seconds.\n", c->n, i);
  int err = async_sleep(i * scale);
  if (err) return err;
  snprintf(c->result1, sizeof c->result1, "result%d-1", c->n);
  printf("Returning part1(%d) == %s.\n", c->n, c->result1);
  return 0;
}

static int part2(chain *c) {
  int i = randint_0_10();
  printf("part2(%d, '%s') sleeping for %d seconds.\n", c->n, c->result1, i);
  int err = async_sleep(i * scale);
  if (err) return err;
  snprintf(c->result2, sizeof c->result2, "result%d-2 derived from %s", c->n,
           c->result1);
  printf("Returning part2(%d, '%s') == %s.\n", c->n, c->result1, c->result2);
  return 0;
}

static void *run_chain(void *arg) {
  chain *c = arg;
  double start = now();
  int err = part1(c);
  if (!err) err = part2(c);
  if (err) return async_fail(err);
  c->took = now() - start;
  printf("-->Chained result%d => %s (took %.2f seconds).\n", c->n, c->result2,
         c->took);
  return NULL;
}

typedef struct program {
  chain *chains;
  size_t n;
} program;

static void *amain(void *arg) {
  program *p = arg;
  async_coro *coros = calloc(p->n, sizeof *coros);
  if (!coros) return async_fail(-ENOMEM);
  for (size_t i = 0; i < p->n; i++)
    coros[i] = (async_coro){run_chain, &p->chains[i]};
  int err = async_gather_coros(coros, p->n, NULL, NULL);
  free(coros);
  return err ? async_fail(err) : NULL;
}

static void usage(const char *argv0) {
  fprintf(stderr, "usage: %s [-s SCALE] [--virtual-clock] [N...]\n", argv0);
  exit(2);
}

int main(int argc, char **argv) {
  char *scale_argv[3] = {argv[0], NULL, NULL};
  int scale_argc = 1, virtual_clock = 0;
  static int defaults[] = {9, 6, 3};
  int *ns = calloc((size_t)argc + 3, sizeof *ns);
  size_t n = 0;
  if (!ns) return 1;
  for (int i = 1; i < argc; i++) {
    char *end;
    if (strcmp(argv[i], "-s") == 0 && i + 1 < argc) {
      scale_argv[1] = argv[i++];
      scale_argv[2] = argv[i];
      scale_argc = 3;
    } else if (strcmp(argv[i], "--virtual-clock") == 0) {
      virtual_clock = 1;
    } else {
      long v = strtol(argv[i], &end, 10);
      if (*argv[i] == '\0' || *end != '\0' || v < -1000000 || v > 1000000)
        usage(argv[0]);
      ns[n++] = (int)v;
    }
  }
  scale = example_scale(scale_argc, scale_argv);
  if (n == 0) {
    memcpy(ns, defaults, sizeof defaults);
    n = 3;
  }
  setvbuf(stdout, NULL, _IOLBF, 0); /* keep the line order when piped */
  py_seed(444);

  chain *chains = calloc(n, sizeof *chains);
  if (!chains) return 1;
  for (size_t i = 0; i < n; i++) chains[i].n = ns[i];
  program p = {chains, n};

  async_loop_options opts;
  async_loop_options_init(&opts);
  opts.virtual_clock = virtual_clock;
  async_loop *loop = NULL;
  async_task *main_task = NULL;
  int err = async_loop_new(&loop, &opts);
  double start = 0, total = 0;
  if (!err) {
    start = async_loop_time(loop);
    err = async_task_spawn(loop, &main_task, amain, &p, NULL);
  }
  if (!err) {
    err = async_loop_run_until_complete(loop, main_task, NULL);
    total = async_loop_time(loop) - start;
    async_task_release(main_task);
  }
  async_loop_free(loop);
  if (err) {
    fprintf(stderr, "chained: %s\n", async_strerror(err));
    return 1;
  }
  printf("Program finished in %.2f seconds.\n", total);

  /* The point of the program: the chains ran side by side. */
  double longest = 0, sum = 0;
  for (size_t i = 0; i < n; i++) {
    if (chains[i].took > longest) longest = chains[i].took;
    sum += chains[i].took;
  }
  int ok = total >= longest && (sum == longest || total < sum);
  if (virtual_clock) ok = ok && total == longest; /* exact there */
  if (!ok)
    fprintf(stderr,
            "chained: took %.3f s; the longest chain %.3f s, their "
            "sum %.3f s\n",
            total, longest, sum);
  free(chains);
  free(ns);
  return !ok;
}
