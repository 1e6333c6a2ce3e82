/* SPDX-License-Identifier: MIT */
/* subprocess_sort: lines piped through `sort` and read back (asyncio's
 * create_subprocess_exec with stdin=PIPE, stdout=PIPE). One task writes
 * the lines to the child's stdin stream and closes it; the main task reads
 * the sorted lines from its stdout stream as they come, then waits for the
 * exit. Writing and reading in two tasks is what keeps a child that
 * answers while it still reads from filling both pipes and stopping. */
#include <async.h>
#include <stdio.h>
#include <string.h>

static const char *const fruit[] = {"cherry", "apple", "elderberry",
                                    "banana", "date",  NULL};

static void *feed(void *arg) {
  async_stream *in = arg;
  int err = 0;
  for (int i = 0; fruit[i] && !err; i++) {
    err = async_stream_write(in, fruit[i], strlen(fruit[i]));
    if (!err) err = async_stream_write(in, "\n", 1);
    if (!err) err = async_stream_drain(in, 5.0);
  }
  async_stream_close(in); /* sort sees the end of its input */
  if (!err) err = async_stream_wait_closed(in, 5.0);
  return err ? async_fail(err) : NULL;
}

static void *sort_main(void *arg) {
  (void)arg;
  const char *const argv[] = {"sort", NULL};
  async_process_options o;
  async_process_options_init(&o);
  o.in = ASYNC_PROCESS_PIPE;
  o.out = ASYNC_PROCESS_PIPE;
  async_process *p;
  int err = async_process_spawn(&p, async_loop_current(), argv, &o);
  if (err) return async_fail(err);
  async_task *writer = async_spawn(feed, async_process_stream(p, 0));
  char line[256];
  ssize_t n;
  while ((n = async_stream_readline(async_process_stream(p, 1), line,
                                    sizeof line, 5.0)) > 0)
    printf("sorted: %.*s", (int)n, line);
  int code = -1;
  err = n < 0 ? (int)n : async_await(writer, NULL);
  if (!err) err = async_process_wait(p, &code, 5.0);
  if (!err) printf("sort exited with %d\n", code);
  async_task_release(writer);
  async_process_free(p);
  return err ? async_fail(err) : NULL;
}

int main(void) {
  setvbuf(stdout, NULL, _IOLBF, 0);
  int err = async_run(sort_main, NULL, NULL);
  if (err) fprintf(stderr, "subprocess_sort: %s\n", async_strerror(err));
  return err != 0;
}
