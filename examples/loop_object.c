/* SPDX-License-Identifier: MIT */
/* loop_object: the AsyncIO tutorial's explicit loop. A loop is made, runs
 * main() to completion and is closed in the `finally:` branch; is_running
 * and is_closed report its state. The tutorial's comment says is_running()
 * returns True where it is called, before the loop runs: in asyncio, as
 * here, it is False there and True only while the loop runs, so this
 * program prints it at both places. The tutorial's main() is its last one,
 * the breakfast; here a short main that reports from inside the loop. */
#include <async.h>
#include <stdio.h>

#include "example_util.h"

static double scale = 1.0; /* -s: multiplies every sleep */

static void *amain(void *arg) {
  async_loop *loop = arg;
  printf("In main, is_running: %s\n",
         async_loop_is_running(loop) ? "True" : "False");
  int err = async_sleep(0.5 * scale);
  return err ? async_fail(err) : NULL;
}

int main(int argc, char **argv) {
  scale = example_scale(argc, argv);
  setvbuf(stdout, NULL, _IOLBF, 0); /* keep the line order when piped */
  async_loop *loop = NULL;
  int err = async_loop_new(&loop, NULL);
  if (err) goto out;
  printf("Before running, is_running: %s\n",
         async_loop_is_running(loop) ? "True" : "False");
  async_task *t = NULL;
  err = async_task_spawn(loop, &t, amain, loop, NULL);
  if (!err) err = async_loop_run_until_complete(loop, t, NULL);
  if (t) async_task_release(t);
  /* finally: */
  int cerr = async_loop_close(loop);
  if (!err) err = cerr;
  printf("After close, is_closed: %s\n",
         async_loop_is_closed(loop) ? "True" : "False");
out:
  async_loop_free(loop);
  if (err) fprintf(stderr, "loop_object: %s\n", async_strerror(err));
  return err != 0;
}
