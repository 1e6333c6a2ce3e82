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

#endif
