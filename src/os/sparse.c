/* SPDX-License-Identifier: MIT */
/* Sparse arrays indexed by fd number.
 *
 * A table indexed directly by fd costs memory in proportion to the largest
 * number ever used, and one wait on fd 2^30 would commit gigabytes. Here
 * the index is split like a page table: a directory per 2^18 numbers,
 * holding 1024 leaves of 256 slots, each allocated zeroed the first time a
 * number in it is used. One number costs one leaf, one directory and the
 * top array up to its directory (64 KiB at most, for INT_MAX). Slots never
 * move once made, so callers may keep pointers into them. */
#include "os.h"

#include <stdlib.h>

#define LEAF_BITS 8
#define DIR_BITS 10
#define LEAF_SLOTS (1 << LEAF_BITS)
#define DIR_LEAVES (1 << DIR_BITS)

void async__sparse_init(async__sparse *s, size_t slot_size) {
  s->dirs = NULL;
  s->ndirs = 0;
  s->slot_size = slot_size;
}

static void **leaf_ref(const async__sparse *s, unsigned key) {
  unsigned d = key >> (LEAF_BITS + DIR_BITS);
  if (d >= s->ndirs || !s->dirs[d]) return NULL;
  return &s->dirs[d][(key >> LEAF_BITS) & (DIR_LEAVES - 1)];
}

void *async__sparse_find(const async__sparse *s, int key) {
  if (key < 0) return NULL;
  void **leaf = leaf_ref(s, (unsigned)key);
  if (!leaf || !*leaf) return NULL;
  return (char *)*leaf + ((unsigned)key & (LEAF_SLOTS - 1)) * s->slot_size;
}

void *async__sparse_get(async__sparse *s, int key) {
  if (key < 0) return NULL;
  unsigned d = (unsigned)key >> (LEAF_BITS + DIR_BITS);
  if (d >= s->ndirs) {
    size_t n = s->ndirs ? s->ndirs : 1;
    while (n <= d) n *= 2;
    void ***dirs = realloc(s->dirs, n * sizeof *dirs);
    if (!dirs) return NULL;
    for (size_t i = s->ndirs; i < n; i++) dirs[i] = NULL;
    s->dirs = dirs;
    s->ndirs = n;
  }
  if (!s->dirs[d] && !(s->dirs[d] = calloc(DIR_LEAVES, sizeof(void *))))
    return NULL;
  void **leaf = &s->dirs[d][((unsigned)key >> LEAF_BITS) & (DIR_LEAVES - 1)];
  if (!*leaf && !(*leaf = calloc(LEAF_SLOTS, s->slot_size))) return NULL;
  return (char *)*leaf + ((unsigned)key & (LEAF_SLOTS - 1)) * s->slot_size;
}

int async__sparse_next(const async__sparse *s, int key) {
  if (key < 0) key = 0;
  for (unsigned k = (unsigned)key; k <= (unsigned)INT32_MAX;) {
    unsigned d = k >> (LEAF_BITS + DIR_BITS);
    if (d >= s->ndirs) return -1;
    if (!s->dirs[d]) {
      k = (d + 1) << (LEAF_BITS + DIR_BITS);
      continue;
    }
    if (!*leaf_ref(s, k)) {
      k = ((k >> LEAF_BITS) + 1) << LEAF_BITS;
      continue;
    }
    return (int)k;
  }
  return -1;
}

void async__sparse_free(async__sparse *s) {
  for (size_t d = 0; d < s->ndirs; d++) {
    if (!s->dirs[d]) continue;
    for (size_t i = 0; i < DIR_LEAVES; i++) free(s->dirs[d][i]);
    free(s->dirs[d]);
  }
  free(s->dirs);
  s->dirs = NULL;
  s->ndirs = 0;
}
