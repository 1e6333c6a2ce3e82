/* SPDX-License-Identifier: MIT */
/* as_completed_order: two tasks taken as they finish. The first one asked for
 * sleeps two seconds, the second one; as_completed hands back the second
 * first, and each result is printed as soon as its task is done. */
#include <async.h>
#include <errno.h>
#include <stdio.h>

#include "example_util.h"

static double scale = 1.0; /* -s: multiplies every sleep */

typedef struct job {
  const char *name;
  int seconds;
  char result[64];
} job;

static void *work(void *arg) {
  job *j = arg;
  int err = async_sleep(j->seconds * scale);
  if (err) return async_fail(err);
  snprintf(j->result, sizeof j->result, "%s finished after %d second%s",
           j->name, j->seconds, j->seconds == 1 ? "" : "s");
  return j->result;
}

static void *amain(void *arg) {
  (void)arg;
  job jobs[2] = {{"Task A", 2, ""}, {"Task B", 1, ""}};
  async_task *tasks[2] = {async_spawn(work, &jobs[0]),
                          async_spawn(work, &jobs[1])};
  async_as_completed *it = NULL;
  int err = tasks[0] && tasks[1] ? 0 : -ENOMEM;
  if (!err) err = async_as_completed_new(&it, tasks, 2, ASYNC_NO_TIMEOUT);
  while (!err) {
    async_future *done;
    int rc = async_as_completed_next(it, &done); /* 1: one more, 0: all */
    if (rc <= 0) {
      err = rc;
      break;
    }
    void *result;
    err = async_await(done, &result); /* done already: does not suspend */
    if (!err) printf("Result: %s\n", (const char *)result);
  }
  async_as_completed_free(it);
  for (int i = 0; i < 2; i++)
    if (tasks[i]) async_task_release(tasks[i]);
  return err ? async_fail(err) : NULL;
}

int main(int argc, char **argv) {
  scale = example_scale(argc, argv);
  setvbuf(stdout, NULL, _IOLBF, 0); /* keep the line order when piped */
  double t0 = async_clock();
  int err = async_run(amain, NULL, NULL);
  printf("Both done in %.2f seconds.\n", async_clock() - t0);
  if (err) fprintf(stderr, "as_completed_order: %s\n", async_strerror(err));
  return err != 0;
}
