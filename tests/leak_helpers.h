/* SPDX-License-Identifier: MIT */
/* What a test leaves behind: the fds it left open, the children it left
 * unreaped, counted from outside the library. */
#ifndef ASYNC_TEST_LEAK_HELPERS_H
#define ASYNC_TEST_LEAK_HELPERS_H

#include "helpers.h"

#include <dirent.h>
#include <sys/wait.h>

#include "fd_count.h"

/* A group's setup and teardown that fail the group when its tests left an
 * fd open or a child unreaped. */
static int fds_at_start;

static inline int leak_group_setup(void **state) {
  (void)state;
  fds_at_start = count_fds();
  return fds_at_start < 0;
}

static inline int leak_group_teardown(void **state) {
  (void)state;
  int fds = count_fds();
  if (fds != fds_at_start) {
    fprintf(stderr, "%d fds open, %d at the start\n", fds, fds_at_start);
    return 1;
  }
  if (waitpid(-1, NULL, WNOHANG) != -1 || errno != ECHILD) {
    fprintf(stderr, "a child is left\n");
    return 1;
  }
  return 0;
}

#endif
