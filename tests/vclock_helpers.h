/* SPDX-License-Identifier: MIT */
/* Helpers of the tests that run on the virtual clock (the composition
 * tests): time is exact there, so they compare times with ==. */
#ifndef ASYNC_TEST_VCLOCK_HELPERS_H
#define ASYNC_TEST_VCLOCK_HELPERS_H

#include "helpers.h"

/* A loop whose clock is virtual: it starts at 0 and jumps to each timer. */
static inline async_loop *new_vloop(void) {
  async_loop_options o;
  async_loop_options_init(&o);
  o.virtual_clock = 1;
  async_loop *loop = NULL;
  assert_int_equal(async_loop_new(&loop, &o), 0);
  return loop;
}

/* A callback that stops the loop given as its argument. */
static inline void stop_cb(void *loop) { async_loop_stop(loop); }

/* The running loop's time, for tasks. */
static inline double vnow(void) {
  return async_loop_time(async_loop_current());
}

/* Runs fn(arg) as the main task of a new virtual-clock loop, closes it, and
 * returns the task's outcome. *end gets the loop time when it finished. */
static inline int vrun(async_fn fn, void *arg, void **result, double *end) {
  async_loop *loop = new_vloop();
  int err = run_task(loop, fn, arg, result);
  if (end) *end = async_loop_time(loop);
  free_loop(loop);
  return err;
}

/* A task that sleeps `arg` (a pointer to a `sleeper` record) and returns a
 * value or an error; it records how it ended. */
typedef struct sleeper {
  double delay;
  void *value;
  int fail;    /* returned through async_fail when non-zero */
  int slept;   /* what async_sleep returned */
  int cleanup; /* seconds of sleep after a cancellation (cleanup) */
  int ignore;  /* carry on after a cancellation and return value */
  int ran, ended;
  double end_time;
} sleeper;

static inline void *sleeper_fn(void *arg) {
  sleeper *s = arg;
  s->ran = 1;
  s->slept = async_sleep(s->delay);
  if (s->slept == -ECANCELED && s->cleanup) async_sleep(s->cleanup);
  s->ended = 1;
  s->end_time = vnow();
  if (s->slept == -ECANCELED && !s->ignore) return async_fail(-ECANCELED);
  if (s->fail) return async_fail(s->fail);
  return s->value;
}

#endif
