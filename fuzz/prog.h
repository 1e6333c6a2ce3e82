/* SPDX-License-Identifier: MIT */
/* What the fuzzers share: a program is a run of the input's bytes that one
 * task interprets; a spawn takes the next bytes as the child's program,
 * which the parent skips. Each fuzzer defines its own struct world. */
#ifndef FUZZ_PROG_H
#define FUZZ_PROG_H

#include <stddef.h>
#include <stdint.h>

typedef struct world world;

typedef struct prog {
  world *w;
  const uint8_t *p;
  size_t n;
} prog;

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

#endif
