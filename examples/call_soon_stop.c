/* SPDX-License-Identifier: MIT */
/* call_soon_stop: the asyncio tutorial's loop.call_soon() and loop.stop()
 * on a loop run forever. Two callbacks are queued before the loop starts;
 * they run in the order they were queued, and the second stops the loop. */
#include <async.h>
#include <stdio.h>

#include "example_util.h"

/* asyncio's event_handler(loop, stop=False): a non-NULL arg is the loop to
 * stop. A plain callback: it runs on the loop and must not suspend. */
static void event_handler(void *loop_to_stop) {
  puts("Calling event handler");
  if (loop_to_stop) {
    puts("Loop is being stopped");
    async_loop_stop(loop_to_stop); /* run_forever returns after this turn */
  }
}

int main(int argc, char **argv) {
  (void)example_scale(argc, argv);  /* takes -s like the others; no sleeps */
  setvbuf(stdout, NULL, _IOLBF, 0); /* keep the line order when piped */
  async_loop *loop;
  int err = async_loop_new(&loop, NULL);
  if (err) {
    fprintf(stderr, "call_soon_stop: %s\n", async_strerror(err));
    return 1;
  }
  err = async_loop_call_soon(loop, event_handler, NULL, NULL);
  if (!err) err = async_loop_call_soon(loop, event_handler, loop, NULL);
  if (!err) {
    puts("Loop is being started");
    err = async_loop_run_forever(loop);
  }
  puts("Loop is being closed"); /* asyncio's finally: loop.close() */
  async_loop_free(loop);
  if (err) fprintf(stderr, "call_soon_stop: %s\n", async_strerror(err));
  return err != 0;
}
