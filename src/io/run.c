/* SPDX-License-Identifier: MIT */
/* async_run: asyncio.run, with its Runner's handling of SIGINT.
 *
 * It sits in the top layer because of SIGINT: while the main task runs,
 * a first SIGINT cancels it, so that it unwinds through its cleanup, and
 * the handler is installed with SA_RESETHAND, so that a second one takes
 * the default action at once, even while the loop is stuck in code that
 * never suspends (asyncio raises KeyboardInterrupt there). As in asyncio,
 * only a program that left SIGINT at its default gets this. */
#include "io.h"

#include <signal.h>

typedef struct run_state {
  async_task *main;
  unsigned interrupts;
} run_state;

static void run_sigint(async_loop *loop, int signo, unsigned count, void *arg) {
  (void)loop;
  (void)signo;
  run_state *r = arg;
  r->interrupts += count;
  if (!async_task_done(r->main)) async_task_cancel(r->main);
}

/* Whether SIGINT is still at its default: the program did not take it. */
static int sigint_default(void) {
  struct sigaction cur;
  return sigaction(SIGINT, NULL, &cur) == 0 && !(cur.sa_flags & SA_SIGINFO) &&
         cur.sa_handler == SIG_DFL;
}

int async_run(async_fn fn, void *arg, void **result) {
  if (result) *result = NULL;
  if (!fn) return -EINVAL;
  if (async__loop_here()) return -EBUSY;
  async_loop *loop;
  int err = async_loop_new(&loop, NULL);
  if (err) return err;
  run_state r = {0};
  err = async_task_spawn(loop, &r.main, fn, arg, NULL);
  if (!err) {
    /* Another loop watching SIGINT (-EBUSY) keeps it; a loop that cannot
     * watch it (-EMFILE for its pipe) leaves SIGINT at its default. */
    if (sigint_default())
      (void)async__signal_watch(loop, SIGINT, run_sigint, &r, 1);
    err = async_loop_run_until_complete(loop, r.main, result);
    if (err == -ECANCELED && r.interrupts) err = -EINTR;
    async_task_release(r.main);
  }
  async_loop_free(loop); /* its close gives SIGINT back */
  return err;
}
