/* SPDX-License-Identifier: MIT */
/* Shared test helpers.
 *
 * A failing cmocka assertion longjmps back to the runner; fired inside a
 * task it would leave the task's stack behind. So tasks record what they
 * see in plain variables and the test asserts after the loop returns. */
#ifndef ASYNC_TEST_HELPERS_H
#define ASYNC_TEST_HELPERS_H

#include <async.h>

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#define IPTR(x) ((void *)(intptr_t)(x))
#define PTRI(p) ((int)(intptr_t)(p))

static inline async_loop *new_loop(void) {
  async_loop *loop = NULL;
  assert_int_equal(async_loop_new(&loop, NULL), 0);
  assert_non_null(loop);
  return loop;
}

static inline void free_loop(async_loop *loop) {
  assert_int_equal(async_loop_free(loop), 0);
}

/* Spawns fn(arg) on loop, runs the loop until it is done, and returns its
 * outcome; *result gets its result. */
static inline int run_task(async_loop *loop, async_fn fn, void *arg,
                           void **result) {
  async_task *t = NULL;
  assert_int_equal(async_task_spawn(loop, &t, fn, arg, NULL), 0);
  int err = async_loop_run_until_complete(loop, t, result);
  assert_int_equal(async_task_release(t), 0);
  return err;
}

/* An ordered log of small integers, written by tasks, checked by tests. */
typedef struct {
  int v[4096];
  int n;
} seqlog;

static inline void seqlog_add(seqlog *l, int x) {
  if (l->n < (int)(sizeof l->v / sizeof l->v[0])) l->v[l->n++] = x;
}

static inline void seqlog_expect(const seqlog *l, const int *want, int n) {
  assert_int_equal(l->n, n);
  for (int i = 0; i < n; i++) {
    if (l->v[i] != want[i]) {
      fprintf(stderr, "seqlog[%d]: got %d want %d\n", i, l->v[i], want[i]);
      fail();
    }
  }
}

#endif
