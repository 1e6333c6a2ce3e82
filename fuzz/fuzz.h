/* SPDX-License-Identifier: MIT */
/* What the fuzzers share. A program is a run of the input's bytes that one
 * task interprets; a spawn takes the next bytes as the child's program,
 * which the parent skips. Tasks sit in slots, each with the age of its
 * program, and a task awaits only younger ones, since a cycle of awaits
 * would never end. Each fuzzer defines its own struct world. */
#ifndef FUZZ_FUZZ_H
#define FUZZ_FUZZ_H

#include "async.h"

#include "../tests/fd_count.h"

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

typedef struct world world;

typedef struct prog {
  world *w;
  const uint8_t *p;
  size_t n;
} prog;

/* A finding: the data or a promise of the header broke. */
#define FUZZ_CHECK(name, c)                                                    \
  do {                                                                         \
    if (!(c)) {                                                                \
      fprintf(stderr, "%s: %s:%d: %s\n", name, __FILE__, __LINE__, #c);        \
      abort();                                                                 \
    }                                                                          \
  } while (0)

/* The timeouts of the fuzzers whose waits take real time: 0 (expired at
 * once), 0.1 ms, 1 ms, 5 ms. */
static inline double fuzz_timeout(uint8_t b) {
  static const double t[4] = {0.0, 1e-4, 1e-3, 5e-3};
  return t[b & 3];
}

/* Cuts the next len bytes (or what is left) off *p as a child's program,
 * in progs[*nprogs]; NULL once max programs exist, the bytes skipped all
 * the same. */
static inline prog *prog_take(world *w, prog *progs, unsigned *nprogs,
                              unsigned max, const uint8_t **p,
                              const uint8_t *end, uint8_t len) {
  size_t n = (size_t)(end - *p);
  if (n > len) n = len;
  prog *c = *nprogs < max ? &progs[(*nprogs)++] : NULL;
  if (c) {
    c->w = w;
    c->p = *p;
    c->n = n;
  }
  *p += n;
  return c;
}

/* Spawns fn(c) into slot k (the handle there before is released); c is
 * progs[age]. */
static inline int slot_spawn(async_loop *loop, async_task **tasks,
                             unsigned *age, unsigned k, const prog *progs,
                             prog *c, async_fn fn) {
  async_task *t;
  int err = async_task_spawn(loop, &t, fn, c, NULL);
  if (err) return err;
  if (tasks[k]) async_task_release(tasks[k]);
  tasks[k] = t;
  age[k] = (unsigned)(c - progs);
  return 0;
}

/* Waits up to timeout for slot k's task, if it is younger than program
 * `me`; 0 otherwise. */
static inline int slot_await(async_task **tasks, const unsigned *age,
                             unsigned k, unsigned me, double timeout) {
  void *v;
  if (!tasks[k] || age[k] <= me) return 0;
  return async_wait_for(tasks[k], timeout, &v);
}

/* The next three-byte step of a program at *p: an opcode and two
 * arguments, 0 past the end. */
static inline void fuzz_next(const uint8_t **p, const uint8_t *end,
                             uint8_t step[3]) {
  for (int i = 0; i < 3; i++) step[i] = *p < end ? *(*p)++ : 0;
}

static inline void fuzz_stop(void *loop) { async_loop_stop(loop); }

/* Runs fn(top) to its end, gives the other tasks 20 ms more, then closes
 * the loop, which ends what is left, and releases the slots' handles. The
 * 20 ms pass in real time while the loop watches an fd (output going out
 * to a peer that does not read, an open connection): the virtual clock
 * jumps only while it watches none. */
static inline void fuzz_run(async_loop *loop, async_fn fn, prog *top,
                            async_task **tasks, unsigned nslots) {
  async_task *main_task;
  async_handle *dog;
  if (async_task_spawn(loop, &main_task, fn, top, NULL)) abort();
  (void)async_loop_run_until_complete(loop, main_task, NULL);
  if (async_loop_call_later(loop, 0.02, fuzz_stop, loop, &dog)) abort();
  async_loop_run_forever(loop);
  async_handle_cancel(dog);
  async_task_release(main_task);
  if (async_loop_close(loop)) abort();
  for (unsigned i = 0; i < nslots; i++)
    if (tasks[i]) async_task_release(tasks[i]);
}

#endif
