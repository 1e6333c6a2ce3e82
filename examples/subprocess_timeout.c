/* SPDX-License-Identifier: MIT */
/* subprocess_timeout: a child that overruns its timeout and is killed
 * (asyncio's wait_for(proc.wait(), 0.2), then proc.kill()). `sleep 10`
 * gets 0.2 s: the wait times out, which leaves the child running and
 * still ours; it is killed, then waited for, so that it is reaped. */
#include <async.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>

static void *timeout_main(void *arg) {
  (void)arg;
  async_loop *loop = async_loop_current();
  const char *const argv[] = {"sleep", "10", NULL};
  async_process *p;
  int err = async_process_spawn(&p, loop, argv, NULL);
  if (err) return async_fail(err);
  double t0 = async_loop_time(loop);
  int code = 0;
  err = async_process_wait(p, &code, 0.2);
  if (err == -ETIMEDOUT) {
    printf("sleep 10 overran its 0.2 s timeout: killing it\n");
    err = async_process_kill(p);
    if (!err) err = async_process_wait(p, &code, 5.0);
  }
  if (!err && code < 0)
    printf("it ended by signal %d (%s) after %.1f s\n", -code,
           -code == SIGKILL ? "SIGKILL" : "another",
           async_loop_time(loop) - t0);
  else if (!err)
    printf("it exited with %d\n", code);
  async_process_free(p);
  return err ? async_fail(err) : NULL;
}

int main(void) {
  setvbuf(stdout, NULL, _IOLBF, 0);
  int err = async_run(timeout_main, NULL, NULL);
  if (err) fprintf(stderr, "subprocess_timeout: %s\n", async_strerror(err));
  return err != 0;
}
