/* SPDX-License-Identifier: MIT */
/* A program of another project, which knows libasync only through what is
 * installed: it sleeps in a task and prints the library's version, after
 * checking that the header it was compiled with matches the library it
 * runs with. */
#include <async.h>
#include <stdio.h>
#include <string.h>

#define STR_(x) #x
#define STR(x) STR_(x)
#define HEADER_VERSION                                                         \
  STR(ASYNC_VERSION_MAJOR)                                                     \
  "." STR(ASYNC_VERSION_MINOR) "." STR(ASYNC_VERSION_PATCH)

static void *amain(void *arg) {
  double *slept = arg;
  double t0 = async_clock();
  int err = async_sleep(0.01);
  *slept = async_clock() - t0;
  return err ? async_fail(err) : NULL;
}

int main(void) {
  double slept = 0;
  int err = async_run(amain, &slept, NULL);
  if (err != 0 || slept < 0.01) {
    fprintf(stderr, "consumer: async_run: %s, slept %.3f s\n",
            async_strerror(err), slept);
    return 1;
  }
  if (strcmp(HEADER_VERSION, async_version()) != 0) {
    fprintf(stderr, "consumer: header %s, library %s\n", HEADER_VERSION,
            async_version());
    return 1;
  }
  printf("libasync %s\n", async_version());
  return 0;
}
