/* SPDX-License-Identifier: MIT */
/* kitchen: a waiter, a kitchen and three orders (pizza 3 s, pasta 2 s,
 * salad 1 s), in three scenarios:
 *   1. one order at a time: the waiter calls cook() for each in turn; a
 *      call that sleeps just sleeps, so the orders take 6 s;
 *   2. all orders at once: the cooks are gathered; they finish shortest
 *      first, the waiter serves the dishes in the order they were ordered,
 *      once all are ready, after 3 s;
 *   3. served as ready: as_completed hands each dish to the waiter as soon
 *      as it is cooked, shortest first, and all are served after 3 s. */
#include <async.h>
#include <errno.h>
#include <stdio.h>

#include "example_util.h"

static double scale = 1.0; /* -s: multiplies every sleep */

typedef struct order {
  const char *dish;
  int seconds;
} order;

static const order orders[3] = {{"pizza", 3}, {"pasta", 2}, {"salad", 1}};

/* Cooks one order: 0, or the error of the sleep (-ECANCELED). */
static int cook_dish(const order *o) {
  printf("Start cooking %s\n", o->dish);
  int err = async_sleep(o->seconds * scale);
  if (!err) printf("Finish cooking %s\n", o->dish);
  return err;
}

/* The same as a task, whose result is the dish. */
static void *cook(void *arg) {
  const order *o = arg;
  int err = cook_dish(o);
  return err ? async_fail(err) : (void *)o->dish;
}

static int one_at_a_time(void) {
  for (int i = 0; i < 3; i++) {
    int err = cook_dish(&orders[i]); /* a plain call that suspends */
    if (err) return err;
  }
  return 0;
}

static int all_at_once(void) {
  async_coro cooks[3];
  void *dishes[3];
  for (int i = 0; i < 3; i++) cooks[i] = (async_coro){cook, (void *)&orders[i]};
  int err = async_gather_coros(cooks, 3, dishes, NULL);
  for (int i = 0; i < 3 && !err; i++)
    printf("Serving %s\n", (const char *)dishes[i]);
  return err;
}

static int served_as_ready(void) {
  async_task *cooks[3];
  int err = 0, spawned = 0;
  for (; spawned < 3; spawned++) {
    cooks[spawned] = async_spawn(cook, (void *)&orders[spawned]);
    if (!cooks[spawned]) break;
  }
  async_as_completed *it = NULL;
  if (spawned < 3)
    err = -ENOMEM;
  else
    err = async_as_completed_new(&it, cooks, 3, ASYNC_NO_TIMEOUT);
  while (!err) {
    async_future *ready;
    int rc = async_as_completed_next(it, &ready);
    if (rc <= 0) {
      err = rc;
      break;
    }
    void *dish;
    err = async_await(ready, &dish);
    if (!err) printf("Serving %s\n", (const char *)dish);
  }
  async_as_completed_free(it);
  for (int i = 0; i < spawned; i++) async_task_release(cooks[i]);
  return err;
}

static void *waiter(void *arg) {
  (void)arg;
  static const struct {
    const char *title;
    int (*run)(void);
  } scenarios[3] = {{"one order at a time", one_at_a_time},
                    {"all orders at once", all_at_once},
                    {"served as ready", served_as_ready}};
  for (int i = 0; i < 3; i++) {
    printf("Scenario %d: %s\n", i + 1, scenarios[i].title);
    double start = async_clock();
    int err = scenarios[i].run();
    if (err) return async_fail(err);
    printf("Scenario %d took %.2f seconds.\n", i + 1, async_clock() - start);
  }
  return NULL;
}

int main(int argc, char **argv) {
  scale = example_scale(argc, argv);
  setvbuf(stdout, NULL, _IOLBF, 0); /* keep the line order when piped */
  int err = async_run(waiter, NULL, NULL);
  if (err) fprintf(stderr, "kitchen: %s\n", async_strerror(err));
  return err != 0;
}
