/* SPDX-License-Identifier: MIT */
/* ctrl_c: Ctrl-C (SIGINT) cancels the main task, whose cleanup runs, as
 * asyncio.run does. The main task sleeps for an hour; a first Ctrl-C
 * cancels that sleep, and the task unwinds through its cleanup, which
 * takes a while (a flush to a slow disk, say): a second Ctrl-C during it
 * kills the program at once, as a second one kills a Python program whose
 * cleanup hangs. Interrupted, it exits with status 130, the one a shell
 * gives a program that died of SIGINT. */
#include <async.h>
#include <errno.h>
#include <stdio.h>

#include "example_util.h"

static double scale = 1.0; /* -s: multiplies every sleep */

static void *amain(void *arg) {
  (void)arg;
  puts("Working for an hour; press Ctrl-C to stop.");
  int err = async_sleep(3600.0 * scale);
  if (err == -ECANCELED) {
    /* Cancelled: the sleep returned at once, and the task goes on. */
    puts("Cancelled: cleaning up (Ctrl-C again to stop now).");
    async_sleep(4.0 * scale);
    puts("Cleanup done.");
  }
  /* Passed on, so that async_run knows the task ended cancelled. */
  return err ? async_fail(err) : NULL;
}

int main(int argc, char **argv) {
  scale = example_scale(argc, argv);
  setvbuf(stdout, NULL, _IOLBF, 0); /* keep the line order when piped */
  int err = async_run(amain, NULL, NULL);
  if (err == -EINTR) {
    puts("Interrupted.");
    return 130;
  }
  if (err) fprintf(stderr, "ctrl_c: %s\n", async_strerror(err));
  return err != 0;
}
