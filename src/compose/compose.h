/* SPDX-License-Identifier: MIT */
/* Private helpers of the composition layer (gather.c, wait.c,
 * as_completed.c, timeout.c, shield.c, taskgroup.c).
 *
 * A wait on several futures registers one async__slot per entry of the
 * caller's array; each slot is an async__fwaiter on its future and finds
 * its wait record through `owner`. Up to ASYNC__SLOTS_INLINE slots live in
 * the record itself (on the waiting task's stack); more are allocated. */
#ifndef ASYNC_COMPOSE_H
#define ASYNC_COMPOSE_H

#include "core/core.h"

#include <stdint.h>
#include <stdlib.h>

#define ASYNC__SLOTS_INLINE 8

typedef struct async__slot {
  async__fwaiter w;
  void *owner;  /* the wait's record */
  size_t index; /* position in the caller's array */
} async__slot;

/* Room for n slots: `inl` (ASYNC__SLOTS_INLINE of them) when they fit,
 * else allocated. NULL when out of memory. */
static inline async__slot *async__slots_get(async__slot *inl, size_t n) {
  if (n <= ASYNC__SLOTS_INLINE) return inl;
  if (n > SIZE_MAX / sizeof(async__slot)) return NULL;
  return malloc(n * sizeof(async__slot));
}

static inline void async__slots_put(async__slot *inl, async__slot *slots) {
  if (slots != inl) free(slots);
}

/* The checks every composition call makes on the caller's array before it
 * does anything (see the Composition section of async.h): returns 0,
 * -EINVAL, -EDEADLK, -EXDEV or -ESHUTDOWN. */
static inline int async__futs_check(const async__task *t,
                                    async_future *const *futs, size_t n) {
  if (n && !futs) return -EINVAL;
  for (size_t i = 0; i < n; i++)
    if (!async__future_ok(futs[i])) return -EINVAL;
  for (size_t i = 0; i < n; i++) {
    const async_future *f = futs[i];
    if (f == &t->fut) return -EDEADLK;
    if (!f->done && f->loop != t->fut.loop)
      return f->loop ? -EXDEV : -ESHUTDOWN;
  }
  return 0;
}

/* Sets first[i] to 1 when futs[i] is the first entry of its future in
 * futs[0..n), 0 for a repeat (asyncio's wait and as_completed take a
 * set), and returns the number of distinct futures, or -ENOMEM (arrays
 * of more than a few dozen entries sort a copy of their indexes). */
long async__futs_distinct(async_future *const *futs, size_t n, uint8_t *first);

#endif
