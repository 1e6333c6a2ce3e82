/* SPDX-License-Identifier: MIT */
/* restaurant: the notebook tutorial's three restaurant scenarios, each run
 * as the notebook runs a cell (example_run_notebook: the loop outlives the
 * cell).
 *   -v 1  the Biryani is ordered and awaited: it comes to the table after
 *         its five seconds.
 *   -v 2  another order, Nan with paneer butter masala, is placed as a
 *         task; you eat the Biryani meanwhile and await the order before
 *         you finish.
 *   -v 3  the order is placed as a task and never awaited: the Biryani is
 *         finished first, and the order is ready to serve afterwards,
 *         after the cell itself has returned. */
#include <async.h>
#include <stdio.h>

#include "example_util.h"

static double scale = 1.0; /* -s: multiplies every sleep */
static int variant;

static void *order(void *text) {
  if (variant == 1) printf("You ordered %s\n", (const char *)text);
  int err = async_sleep(5.0 * scale);
  if (err) return async_fail(err);
  if (variant == 2) printf("Your order %s\n", (const char *)text);
  if (variant == 3)
    printf("Your order %s ready to serve\n", (const char *)text);
  return NULL;
}

static void *restaurant(void *arg) {
  (void)arg;
  int err = 0;
  if (variant == 1) {
    puts("Waiter came...");
    order("Biryani"); /* await order('Biryani') */
    puts("Biryani came to the table");
  } else if (variant == 2) {
    puts("you placed another order immediately and waiting");
    async_task *task = async_spawn(order, "Nan with paneer butter masala");
    puts("you started eating biryani");
    err = async_await(task, NULL);
    async_task_release(task);
    if (!err) puts("your Biryani is finished");
  } else {
    puts("you placed another order and ordered waiter to bring after the "
         "biryani finished");
    async_task *task = async_spawn(order, "Nan with paneer butter masala");
    puts("you are eating biryani");
    puts("your Biryani is finished");
    async_task_release(task); /* never awaited: the loop runs it */
  }
  return err ? async_fail(err) : NULL;
}

int main(int argc, char **argv) {
  scale = example_variant(argc, argv, 3, &variant);
  setvbuf(stdout, NULL, _IOLBF, 0); /* keep the line order when piped */
  int err = example_run_notebook(restaurant, NULL);
  if (err) fprintf(stderr, "restaurant: %s\n", async_strerror(err));
  return err != 0;
}
