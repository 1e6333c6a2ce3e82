/* SPDX-License-Identifier: MIT */
/* Shared by the examples: the time-scale option.
 *
 * Every example that sleeps multiplies its sleeps by the factor given as
 * `-s SCALE` (default 1.0), so that the tests can run it a hundred times
 * faster and still check the order of its output. */
#ifndef EXAMPLE_UTIL_H
#define EXAMPLE_UTIL_H

#include <stdio.h>
#include <stdlib.h>
#include <errno.h>
#include <string.h>

/* The scale given with -s, or 1.0. Any other argument, or a scale that is
 * not a positive number, prints the usage and exits. */
static inline double example_scale(int argc, char **argv) {
  double scale = 1.0;
  for (int i = 1; i < argc; i++) {
    char *end = NULL;
    if (strcmp(argv[i], "-s") == 0 && i + 1 < argc)
      scale = strtod(argv[++i], &end);
    if (!end || *end != '\0' || !(scale > 0)) {
      fprintf(stderr, "usage: %s [-s SCALE]\n", argv[0]);
      exit(2);
    }
  }
  return scale;
}

/* Like example_scale, and also takes `-v N` (1 <= N <= nvariants) for the
 * programs that come in several variants; *variant gets N (1 if absent). */
static inline double example_variant(int argc, char **argv, int nvariants,
                                     int *variant) {
  double scale = 1.0;
  *variant = 1;
  for (int i = 1; i < argc; i++) {
    char *end = NULL;
    if (strcmp(argv[i], "-s") == 0 && i + 1 < argc) {
      scale = strtod(argv[++i], &end);
      if (!(scale > 0)) end = NULL;
    } else if (strcmp(argv[i], "-v") == 0 && i + 1 < argc) {
      long v = strtol(argv[++i], &end, 10);
      if (v < 1 || v > nvariants) end = NULL;
      *variant = (int)v;
    }
    if (!end || *end != '\0') {
      fprintf(stderr, "usage: %s [-s SCALE] [-v 1..%d]\n", argv[0], nvariants);
      exit(2);
    }
  }
  return scale;
}

#include <async.h>

/* Runs fn(arg) as the main task the way a Jupyter notebook runs a cell with
 * `await main()`: the loop outlives the cell, so a task that main created
 * and never awaited goes on running after main has returned. asyncio.run,
 * like async_run, would cancel it instead. Here the loop runs until every
 * task is done, then closes. Returns main's error, or 0. */
static inline int example_run_notebook(async_fn fn, void *arg) {
  async_loop *loop = NULL;
  int err = async_loop_new(&loop, NULL);
  if (err) return err;
  async_task *main_task = NULL;
  err = async_task_spawn(loop, &main_task, fn, arg, NULL);
  if (!err) {
    err = async_loop_run_until_complete(loop, main_task, NULL);
    async_task_release(main_task);
  }
  async_task *left = NULL;
  while (async_task_all(loop, &left, 1) > 0)
    if (async_loop_run_until_complete(loop, left, NULL) == -ESHUTDOWN) break;
  int cerr = async_loop_free(loop);
  return err ? err : cerr;
}

#endif
