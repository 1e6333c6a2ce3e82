/* SPDX-License-Identifier: MIT */
/* create_task_order: the AsyncIO tutorial's create_task() programs.
 *   -v 1  the four steps: main creates a task for foo() and prints first;
 *         the task runs only once main suspends (its two-second sleep), and
 *         prints second; main wakes and prints third, then awaits the task,
 *         whose result it prints fourth.
 *   -v 2  a task created and awaited: foo() prints first, and main goes on
 *         only once the task has finished. */
#include <async.h>
#include <stdio.h>

#include "example_util.h"

static double scale = 1.0; /* -s: multiplies every sleep */

static void *foo_returns(void *arg) {
  (void)arg;
  puts("This goes second!");          /* 4. during main's idle time */
  int err = async_sleep(2.0 * scale); /* 5. let main go on */
  return err ? async_fail(err) : "This goes fourth!";
}

static void *four_steps(void *arg) {
  (void)arg;
  async_task *my_task = async_spawn(foo_returns, NULL); /* 1. when idle */
  puts("This goes first!");                             /* 2. */
  int err = async_sleep(2.0 * scale); /* 3. idle time: the task runs */
  if (!err) puts("This goes third!"); /* 6. during foo's idle time */
  void *foo_return = NULL;
  if (!err) err = async_await(my_task, &foo_return); /* 7. let it finish */
  if (!err) puts(foo_return);                        /* 9. */
  async_task_release(my_task);
  return err ? async_fail(err) : NULL;
}

static void *foo(void *arg) {
  (void)arg;
  puts("This goes first!");
  int err = async_sleep(2.0 * scale);
  return err ? async_fail(err) : NULL;
}

static void *awaited(void *arg) {
  (void)arg;
  async_task *my_task = async_spawn(foo, NULL);
  int err = async_await(my_task, NULL); /* let the task finish */
  async_task_release(my_task);
  if (!err) puts("This goes second, after waiting!");
  return err ? async_fail(err) : NULL;
}

int main(int argc, char **argv) {
  int variant;
  scale = example_variant(argc, argv, 2, &variant);
  setvbuf(stdout, NULL, _IOLBF, 0); /* keep the line order when piped */
  int err = async_run(variant == 1 ? four_steps : awaited, NULL, NULL);
  if (err) fprintf(stderr, "create_task_order: %s\n", async_strerror(err));
  return err != 0;
}
