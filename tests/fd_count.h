/* SPDX-License-Identifier: MIT */
/* The fds this process has open: for the tests and the fuzzers that check
 * that none leaked. */
#ifndef TESTS_FD_COUNT_H
#define TESTS_FD_COUNT_H

#include <dirent.h>

/* The fds open in the process, the one reading /proc/self/fd left out;
 * -1 where it cannot be read. */
static inline int count_fds(void) {
  DIR *d = opendir("/proc/self/fd");
  if (!d) return -1;
  int n = 0;
  struct dirent *e;
  while ((e = readdir(d)))
    if (e->d_name[0] != '.') n++;
  closedir(d);
  return n - 1;
}

#endif
