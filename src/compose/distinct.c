/* SPDX-License-Identifier: MIT */
/* Distinct entries of an array of futures: asyncio's wait and as_completed
 * take a set, so a future given twice counts once, at its first position.
 *
 * Small arrays are compared pairwise; larger ones sort their indexes by
 * future (then by position, so the first entry of each comes first). */
#include "compose.h"

#include <stdlib.h>

#define PAIRWISE_MAX 32

/* qsort has no context argument; one sort per thread at a time. */
static _Thread_local async_future *const *sort_futs;

static int by_future(const void *a, const void *b) {
  size_t i = *(const size_t *)a, j = *(const size_t *)b;
  uintptr_t x = (uintptr_t)sort_futs[i], y = (uintptr_t)sort_futs[j];
  if (x != y) return x < y ? -1 : 1;
  return i < j ? -1 : i > j;
}

long async__futs_distinct(async_future *const *futs, size_t n, uint8_t *first) {
  size_t count = 0;
  if (n <= PAIRWISE_MAX) {
    for (size_t i = 0; i < n; i++) {
      size_t j = 0;
      while (j < i && futs[j] != futs[i]) j++;
      first[i] = j == i;
      count += first[i];
    }
    return (long)count;
  }
  if (n > SIZE_MAX / sizeof(size_t)) return -ENOMEM;
  size_t *idx = malloc(n * sizeof *idx);
  if (!idx) return -ENOMEM;
  for (size_t i = 0; i < n; i++) idx[i] = i;
  sort_futs = futs;
  qsort(idx, n, sizeof *idx, by_future);
  sort_futs = NULL;
  for (size_t k = 0; k < n; k++) {
    first[idx[k]] = k == 0 || futs[idx[k]] != futs[idx[k - 1]];
    count += first[idx[k]];
  }
  free(idx);
  return (long)count;
}
