/* SPDX-License-Identifier: MIT */
/* Child processes (include/async/process.h): exit codes and signals, pipes
 * as streams, communicate over more than a pipe holds both ways, deadlines,
 * spawn failures, what the child inherits, and that no zombie and no fd is
 * left after each test, whatever happened (a cancelled wait, an object
 * freed while its child runs, the loop closed under a running child). Each
 * runs with pidfds and again on the SIGCHLD path. */
#include "helpers.h"
#include "leak_helpers.h"

#include "io/io.h" /* async__process_no_pidfd */

#include <dirent.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <spawn.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

/* {==== What a test must leave behind: nothing ========================== */

/* Our children, living or zombie, from /proc/<pid>/stat's ppid field. */
static int count_children(int *zombies) {
  DIR *d = opendir("/proc");
  assert_non_null(d);
  int n = 0;
  *zombies = 0;
  struct dirent *e;
  while ((e = readdir(d))) {
    if (e->d_name[0] < '0' || e->d_name[0] > '9') continue;
    char path[300], buf[512];
    snprintf(path, sizeof path, "/proc/%s/stat", e->d_name);
    FILE *f = fopen(path, "r");
    if (!f) continue;
    size_t len = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[len] = 0;
    char *rp = strrchr(buf, ')'); /* the name may hold spaces */
    char state;
    int ppid;
    if (rp && sscanf(rp + 1, " %c %d", &state, &ppid) == 2 &&
        ppid == getpid()) {
      n++;
      if (state == 'Z') (*zombies)++;
    }
  }
  closedir(d);
  return n;
}

static int setup(void **state) {
  (void)state;
  fds_at_start = count_fds();
  return fds_at_start < 0;
}

/* No zombie ever; no child left once `grace` seconds have passed (a
 * background reap runs when the child exits); no fd left. */
static void expect_nothing_left(double grace) {
  int zombies, n = count_children(&zombies);
  for (int i = 0; n && i < grace * 100; i++) {
    struct timespec ts = {0, 10000000};
    nanosleep(&ts, NULL);
    n = count_children(&zombies);
  }
  assert_int_equal(n, 0);
  assert_int_equal(zombies, 0);
  siginfo_t si;
  memset(&si, 0, sizeof si);
  int r = waitid(P_ALL, 0, &si, WEXITED | WNOHANG | WNOWAIT);
  assert_true(r < 0 ? errno == ECHILD : si.si_pid == 0);
  assert_int_equal(count_fds(), fds_at_start);
}

static int teardown(void **state) {
  (void)state;
  expect_nothing_left(0);
  return 0;
}

/* }==== */

/* {==== What the platform does without the library ====================== */

/* Some platforms change what any child gets, whoever starts it: the C
 * library leaves its internal signals ignored (glibc: 32 and 33, which
 * qemu-user maps onto host signals 34 and 35), an emulator may hand a child
 * fds of its own. The tests compare the library's children with a bare
 * one, started here with posix_spawnp and asked for the same: no fd beyond
 * 2 (closefrom), every signal at its default, none blocked. */

/* The standard output of argv run as a bare child, malloc'ed, or NULL. */
static char *bare_output(const char *const argv[]) {
  int out[2];
  if (pipe2(out, O_CLOEXEC) != 0) return NULL;
  posix_spawn_file_actions_t fa;
  posix_spawnattr_t at;
  sigset_t set;
  posix_spawn_file_actions_init(&fa);
  posix_spawnattr_init(&at);
  posix_spawn_file_actions_adddup2(&fa, out[1], 1);
  posix_spawn_file_actions_addclosefrom_np(&fa, 3);
  sigemptyset(&set);
  posix_spawnattr_setsigmask(&at, &set);
  sigfillset(&set);
  posix_spawnattr_setsigdefault(&at, &set);
  posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
  pid_t pid;
  int rc = posix_spawnp(&pid, argv[0], &fa, &at, (char *const *)argv, environ);
  posix_spawnattr_destroy(&at);
  posix_spawn_file_actions_destroy(&fa);
  close(out[1]);
  size_t len = 0, cap = 4096;
  char *buf = rc == 0 ? malloc(cap + 1) : NULL;
  ssize_t n = 0;
  while (buf && (n = read(out[0], buf + len, cap - len)) != 0) {
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) break;
    len += (size_t)n;
    if (len == cap) {
      char *more = realloc(buf, 2 * cap + 1);
      if (!more) break;
      buf = more;
      cap *= 2;
    }
  }
  close(out[0]);
  int status = -1;
  if (rc == 0) waitpid(pid, &status, 0);
  if (buf && (n != 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0)) {
    free(buf);
    buf = NULL;
  }
  if (buf) buf[len] = '\0';
  return buf;
}

/* The signals a /proc/<pid>/status says are ignored. */
static unsigned long long ignored_signals(const char *status) {
  const char *line = strstr(status, "SigIgn:\t");
  assert_non_null(line);
  return strtoull(line + 8, NULL, 16);
}

/* Whether posix_spawnp reports an exec that failed. glibc's child shares
 * the parent's memory (CLONE_VM) to pass the error back; valgrind and
 * qemu-user make that child a copy, and then the spawn succeeds and the
 * child exits 127. Asked once, by main. */
static int spawn_reports_exec_errors;

static int probe_exec_errors(void) {
  const char *const argv[] = {"no-such-program-xq", NULL};
  pid_t pid;
  int rc =
      posix_spawnp(&pid, argv[0], NULL, NULL, (char *const *)argv, environ);
  if (rc == 0) waitpid(pid, NULL, 0);
  return rc == ENOENT;
}

/* }==== */

static async_process *spawn_opts(async_loop *loop, const char *const argv[],
                                 int in, int out, int err) {
  async_process_options o;
  async_process_options_init(&o);
  o.in = in;
  o.out = out;
  o.err = err;
  async_process *p = NULL;
  assert_int_equal(async_process_spawn(&p, loop, argv, &o), 0);
  assert_non_null(p);
  return p;
}

/* {==== Exit codes and signals ========================================== */

typedef struct {
  async_process *p;
  int r[8];
  int code[8];
} wctx;

static void *wait_main(void *arg) {
  wctx *c = arg;
  c->r[0] = async_process_wait(c->p, &c->code[0], 10);
  c->r[1] = async_process_wait(c->p, &c->code[1], 10); /* ended: at once */
  return NULL;
}

static void expect_code(async_loop *loop, const char *const argv[], int code) {
  async_process *p = spawn_opts(loop, argv, 0, 0, 0);
  assert_true(async_process_pid(p) > 0);
  wctx c = {.p = p};
  assert_int_equal(run_task(loop, wait_main, &c, NULL), 0);
  assert_int_equal(c.r[0], 0);
  assert_int_equal(c.code[0], code);
  assert_int_equal(c.r[1], 0);
  assert_int_equal(c.code[1], code);
  int rc = 99;
  assert_int_equal(async_process_returncode(p, &rc), 0);
  assert_int_equal(rc, code);
  assert_int_equal(async_process_send_signal(p, SIGTERM), -ESRCH);
  assert_int_equal(async_process_free(p), 0);
}

static void exit_codes(void) {
  async_loop *loop = new_loop();
  expect_code(loop, (const char *const[]){"true", NULL}, 0);
  expect_code(loop, (const char *const[]){"sh", "-c", "exit 3", NULL}, 3);
  expect_code(loop, (const char *const[]){"sh", "-c", "kill -TERM $$", NULL},
              -SIGTERM);
  free_loop(loop);
}

static void test_process_exit_codes(void **state) {
  (void)state;
  exit_codes();
}

static void *signal_main(void *arg) {
  wctx *c = arg;
  c->r[0] = async_process_wait(c->p, NULL, 0.05); /* still running */
  c->r[1] = async_process_terminate(c->p);
  c->r[2] = async_process_wait(c->p, &c->code[2], 10);
  return NULL;
}

static void test_process_signals(void **state) {
  (void)state;
  async_loop *loop = new_loop();
  wctx c = {.p = spawn_opts(loop, (const char *const[]){"sleep", "10", NULL}, 0,
                            0, 0)};
  assert_int_equal(async_process_send_signal(c.p, -1), -EINVAL);
  assert_int_equal(async_process_send_signal(c.p, 0), 0); /* it exists */
  assert_int_equal(async_process_returncode(c.p, NULL), -EAGAIN);
  assert_int_equal(run_task(loop, signal_main, &c, NULL), 0);
  assert_int_equal(c.r[0], -ETIMEDOUT);
  assert_int_equal(c.r[1], 0);
  assert_int_equal(c.r[2], 0);
  assert_int_equal(c.code[2], -SIGTERM);
  assert_int_equal(async_process_kill(c.p), -ESRCH);
  assert_int_equal(async_process_free(c.p), 0);
  free_loop(loop);
}

/* }==== */

/* {==== Pipes and communicate =========================================== */

typedef struct {
  async_process *p;
  const char *in;
  size_t n;
  char *out, *err;
  size_t out_len, err_len;
  int code;
  int r;
  double timeout;
} cctx;

static void *comm_main(void *arg) {
  cctx *c = arg;
  c->r = async_process_communicate(c->p, c->in, c->n, &c->out, &c->out_len,
                                   &c->err, &c->err_len, &c->code, c->timeout);
  return NULL;
}

static void communicate(async_loop *loop, cctx *c) {
  if (c->timeout == 0) c->timeout = 30;
  assert_int_equal(run_task(loop, comm_main, c, NULL), 0);
}

static void test_process_sort(void **state) {
  (void)state;
  async_loop *loop = new_loop();
  cctx c = {.p = spawn_opts(loop, (const char *const[]){"sort", NULL},
                            ASYNC_PROCESS_PIPE, ASYNC_PROCESS_PIPE, 0),
            .in = "pear\napple\nfig\n",
            .n = 15};
  assert_null(async_process_stream(c.p, 2));
  assert_non_null(async_process_stream(c.p, 0));
  communicate(loop, &c);
  assert_int_equal(c.r, 0);
  assert_int_equal(c.code, 0);
  assert_string_equal(c.out, "apple\nfig\npear\n");
  assert_int_equal(c.out_len, 15);
  assert_null(c.err); /* not a pipe */
  assert_int_equal(c.err_len, 0);
  free(c.out);
  assert_int_equal(async_process_free(c.p), 0);
  free_loop(loop);
}

/* 1 MiB in, 1 MiB out and some stderr, all at once: cat writes its
 * output while its input is still coming, so each side fills a pipe that
 * only a concurrent reader empties. */
static void big_both_ways(void) {
  async_loop *loop = new_loop();
  size_t n = 1 << 20;
  char *in = malloc(n);
  assert_non_null(in);
  for (size_t i = 0; i < n; i++) in[i] = (char)('a' + (i * 7 + i / 4096) % 26);
  cctx c = {.p = spawn_opts(
                loop,
                (const char *const[]){"sh", "-c", "cat; echo done >&2", NULL},
                ASYNC_PROCESS_PIPE, ASYNC_PROCESS_PIPE, ASYNC_PROCESS_PIPE),
            .in = in,
            .n = n};
  communicate(loop, &c);
  assert_int_equal(c.r, 0);
  assert_int_equal(c.code, 0);
  assert_int_equal(c.out_len, n);
  assert_memory_equal(c.out, in, n);
  assert_string_equal(c.err, "done\n");
  free(c.out);
  free(c.err);
  free(in);
  assert_int_equal(async_process_free(c.p), 0);
  free_loop(loop);
}

static void test_process_big_both_ways(void **state) {
  (void)state;
  big_both_ways();
}

/* A child that reads none of its input: the write ends with EPIPE, and
 * this process gets no SIGPIPE (the default would kill it). */
static void test_process_input_not_read(void **state) {
  (void)state;
  async_loop *loop = new_loop();
  size_t n = 1 << 20;
  char *in = calloc(1, n);
  /* SIGPIPE's default, whatever this process inherited: it would kill. */
  struct sigaction dfl = {.sa_handler = SIG_DFL}, prev;
  sigaction(SIGPIPE, &dfl, &prev);
  cctx c = {.p = spawn_opts(loop, (const char *const[]){"true", NULL},
                            ASYNC_PROCESS_PIPE, ASYNC_PROCESS_PIPE, 0),
            .in = in,
            .n = n};
  communicate(loop, &c);
  assert_int_equal(c.r, 0);
  assert_int_equal(c.code, 0);
  assert_int_equal(c.out_len, 0);
  assert_string_equal(c.out, "");
  free(c.out);
  free(in);
  sigset_t pending;
  sigpending(&pending);
  assert_false(sigismember(&pending, SIGPIPE));
  sigaction(SIGPIPE, &prev, NULL);
  assert_int_equal(async_process_free(c.p), 0);
  free_loop(loop);
}

static void test_process_devnull_and_stderr_to_stdout(void **state) {
  (void)state;
  async_loop *loop = new_loop();
  cctx c = {.p =
                spawn_opts(loop,
                           (const char *const[]){
                               "sh", "-c", "cat; echo out; echo err >&2", NULL},
                           ASYNC_PROCESS_DEVNULL, ASYNC_PROCESS_PIPE,
                           ASYNC_PROCESS_STDOUT)};
  communicate(loop, &c);
  assert_int_equal(c.r, 0);
  assert_string_equal(c.out, "out\nerr\n");
  assert_null(c.err);
  free(c.out);
  assert_int_equal(async_process_free(c.p), 0);
  free_loop(loop);
}

/* The child reads its stdout pipe's stream line by line, as a user would. */
typedef struct {
  async_process *p;
  ssize_t r[3];
  char line[3][32];
  int code;
} lctx;

static void *lines_main(void *arg) {
  lctx *c = arg;
  async_stream *s = async_process_stream(c->p, 1);
  for (int i = 0; i < 3; i++)
    c->r[i] = async_stream_readline(s, c->line[i], sizeof c->line[i], 10);
  async_process_wait(c->p, &c->code, 10);
  return NULL;
}

static void test_process_stream_lines(void **state) {
  (void)state;
  async_loop *loop = new_loop();
  lctx c = {.p = spawn_opts(
                loop, (const char *const[]){"printf", "one\\ntwo\\n", NULL}, 0,
                ASYNC_PROCESS_PIPE, 0)};
  assert_int_equal(run_task(loop, lines_main, &c, NULL), 0);
  assert_int_equal(c.r[0], 4);
  assert_memory_equal(c.line[0], "one\n", 4);
  assert_int_equal(c.r[1], 4);
  assert_int_equal(c.r[2], 0);
  assert_int_equal(c.code, 0);
  assert_int_equal(async_process_free(c.p), 0);
  free_loop(loop);
}

/* }==== */

/* {==== What the child gets ============================================= */

static char *run_output(const char *const argv[],
                        const async_process_options *o) {
  async_loop *loop = new_loop();
  async_process_options opts = *o;
  opts.out = ASYNC_PROCESS_PIPE;
  cctx c = {0};
  assert_int_equal(async_process_spawn(&c.p, loop, argv, &opts), 0);
  communicate(loop, &c);
  assert_int_equal(c.r, 0);
  assert_int_equal(c.code, 0);
  assert_int_equal(async_process_free(c.p), 0);
  free_loop(loop);
  return c.out;
}

/* Every fd beyond 2 is closed, even one without close-on-exec; the signal
 * mask is empty and no signal ignored, whatever the parent has: the child
 * gets what a bare child gets (above), and the parent's blocked signals,
 * ignored signal and fd without close-on-exec are in neither. */
static void test_process_child_inherits_nothing(void **state) {
  (void)state;
  char *bare_fds =
      bare_output((const char *const[]){"ls", "/proc/self/fd", NULL});
  char *bare_st =
      bare_output((const char *const[]){"cat", "/proc/self/status", NULL});
  assert_non_null(bare_fds);
  assert_non_null(bare_st);
  int leak = open("/dev/null", O_RDONLY); /* no O_CLOEXEC */
  assert_true(leak >= 0);
  assert_int_equal(dup2(leak, 50), 50);
  close(leak);
  sigset_t block, old;
  sigemptyset(&block);
  sigaddset(&block, SIGUSR1);
  sigaddset(&block, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &block, &old);
  struct sigaction ign = {.sa_handler = SIG_IGN}, prev;
  sigaction(SIGUSR2, &ign, &prev);

  async_process_options o;
  async_process_options_init(&o);
  char *fds =
      run_output((const char *const[]){"ls", "/proc/self/fd", NULL}, &o);
  char *st =
      run_output((const char *const[]){"cat", "/proc/self/status", NULL}, &o);
  sigaction(SIGUSR2, &prev, NULL);
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  close(50);
  /* ls has one fd of its own open, on /proc/self/fd: natively (and under
   * qemu-user, which runs the host's ls natively) "0 1 2 3", whatever a bare
   * child has beyond it here; never the parent's fd 50. */
  assert_memory_equal(bare_fds, "0\n1\n2\n", 6);
  assert_string_equal(fds, bare_fds);
  assert_null(strstr(fds, "\n50\n"));
  assert_non_null(strstr(bare_st, "SigBlk:\t0000000000000000\n"));
  assert_non_null(strstr(st, "SigBlk:\t0000000000000000\n"));
  /* The C library's internal signals are all a bare child has ignored;
   * SIGUSR2, which the parent ignored, must not be among them. */
  unsigned long long ignored = ignored_signals(st);
  assert_int_equal(ignored, ignored_signals(bare_st));
  assert_int_equal(ignored & (1ull << (SIGUSR2 - 1)), 0);
  free(fds);
  free(st);
  free(bare_fds);
  free(bare_st);
}

static void test_process_env_and_cwd(void **state) {
  (void)state;
  char *const env[] = {"FOO=bar baz", NULL};
  async_process_options o;
  async_process_options_init(&o);
  o.env = env;
  char *out = run_output((const char *const[]){"/usr/bin/env", NULL}, &o);
  assert_string_equal(out, "FOO=bar baz\n");
  free(out);
  async_process_options_init(&o);
  o.cwd = "/proc";
  out = run_output((const char *const[]){"pwd", NULL}, &o);
  assert_string_equal(out, "/proc\n");
  free(out);
}

/* }==== */

/* {==== Deadlines, cancellation, outliving ============================== */

typedef struct {
  async_process *p;
  int r[4];
  int code;
  double t0, t1;
} dctx;

static void *deadline_main(void *arg) {
  dctx *c = arg;
  c->t0 = async_loop_time(async_loop_current());
  c->r[0] = async_process_communicate(c->p, NULL, 0, NULL, NULL, NULL, NULL,
                                      NULL, 0.1);
  c->r[1] = async_process_wait(c->p, NULL, 0.1);
  c->t1 = async_loop_time(async_loop_current());
  c->r[2] = async_process_kill(c->p);
  c->r[3] = async_process_wait(c->p, &c->code, 10);
  return NULL;
}

/* A child that never exits is stopped by the deadline, then killed. */
static void test_process_deadline(void **state) {
  (void)state;
  async_loop *loop = new_loop();
  dctx c = {.p = spawn_opts(loop, (const char *const[]){"sleep", "1000", NULL},
                            ASYNC_PROCESS_PIPE, ASYNC_PROCESS_PIPE, 0)};
  assert_int_equal(run_task(loop, deadline_main, &c, NULL), 0);
  assert_int_equal(c.r[0], -ETIMEDOUT);
  assert_int_equal(c.r[1], -ETIMEDOUT);
  assert_true(c.t1 - c.t0 >= 0.2);
  assert_true(c.t1 - c.t0 < 10);
  assert_int_equal(c.r[2], 0);
  assert_int_equal(c.r[3], 0);
  assert_int_equal(c.code, -SIGKILL);
  assert_int_equal(async_process_free(c.p), 0);
  free_loop(loop);
}

static void *waiter(void *arg) {
  dctx *c = arg;
  c->r[0] = async_process_wait(c->p, NULL, ASYNC_NO_TIMEOUT);
  return NULL;
}

static void *cancel_main(void *arg) {
  dctx *c = arg;
  async_task *t = NULL;
  async_task_spawn(async_loop_current(), &t, waiter, c, NULL);
  async_sleep(0.02);
  async_task_cancel(t);
  async_await(t, NULL);
  async_task_release(t);
  c->r[1] = async_process_returncode(c->p, NULL);
  c->r[2] = async_process_kill(c->p);
  c->r[3] = async_process_wait(c->p, &c->code, 10);
  return NULL;
}

/* A cancelled wait leaves the child running and owned; it is reaped. */
static void test_process_cancelled_wait(void **state) {
  (void)state;
  async_loop *loop = new_loop();
  dctx c = {.p = spawn_opts(loop, (const char *const[]){"sleep", "1000", NULL},
                            0, 0, 0)};
  assert_int_equal(run_task(loop, cancel_main, &c, NULL), 0);
  assert_int_equal(c.r[0], -ECANCELED);
  assert_int_equal(c.r[1], -EAGAIN);
  assert_int_equal(c.r[2], 0);
  assert_int_equal(c.r[3], 0);
  assert_int_equal(c.code, -SIGKILL);
  assert_int_equal(async_process_free(c.p), 0);
  free_loop(loop);
}

/* Freed in the window between a waiter's wake-up (the reap, in the poll
 * phase) and its resumption, by a task that runs first: the free says
 * -EBUSY, since the waiter still reads the process when it resumes. The
 * child exits only once its stdin is closed, after the waiter has parked,
 * however slow the machine (valgrind). */
typedef struct {
  async_process *p;
  int wait_rc, code, free_rc, saw_reaped, parked_first;
} window_ctx;

static void *window_waiter(void *arg) {
  window_ctx *c = arg;
  c->wait_rc = async_process_wait(c->p, &c->code, ASYNC_NO_TIMEOUT);
  return NULL;
}

static void *window_main(void *arg) {
  window_ctx *c = arg;
  async_task *w;
  async_task_spawn(async_loop_current(), &w, window_waiter, c, NULL);
  int code;
  for (int i = 0; i < 3; i++) async_yield(); /* w parks in the wait */
  c->parked_first =
      c->wait_rc == 1 && async_process_returncode(c->p, &code) == -EAGAIN;
  async_stream_close(async_process_stream(c->p, 0)); /* the child exits */
  /* Queued before each poll, this task runs before a waiter the poll
   * wakes: the first time it sees the child reaped, the waiter has been
   * woken and has not run. */
  while (async_process_returncode(c->p, &code) == -EAGAIN) async_yield();
  c->saw_reaped = c->wait_rc == 0 ? 2 : 1; /* 1: the waiter not back yet */
  c->free_rc = c->saw_reaped == 1 ? async_process_free(c->p) : -EPROTO;
  async_await(w, NULL);
  async_task_release(w);
  return NULL;
}

static void test_process_freed_while_its_waiter_wakes(void **state) {
  (void)state;
  async_loop *loop = new_loop();
  window_ctx c = {
      .p = spawn_opts(loop,
                      (const char *const[]){"sh", "-c", "read x; exit 3", NULL},
                      ASYNC_PROCESS_PIPE, 0, 0),
      .wait_rc = 1};
  assert_int_equal(run_task(loop, window_main, &c, NULL), 0);
  assert_int_equal(c.parked_first, 1);
  assert_int_equal(c.saw_reaped, 1);
  assert_int_equal(c.free_rc, -EBUSY);
  assert_int_equal(c.wait_rc, 0);
  assert_int_equal(c.code, 3);
  assert_int_equal(async_process_free(c.p), 0);
  free_loop(loop);
}

static void *idle_main(void *arg) {
  int zombies;
  double *until = arg;
  while (async_loop_time(async_loop_current()) < *until &&
         count_children(&zombies) > 0)
    async_sleep(0.01);
  return NULL;
}

/* Freed while the child runs, with its pipes: the child is reaped in the
 * background once it exits, while the loop runs. */
static void test_process_freed_while_running(void **state) {
  (void)state;
  async_loop *loop = new_loop();
  async_process *p = spawn_opts(
      loop, (const char *const[]){"sh", "-c", "sleep 0.1; echo x", NULL},
      ASYNC_PROCESS_PIPE, ASYNC_PROCESS_PIPE, 0);
  assert_int_equal(async_process_free(p), 0);
  assert_int_equal(async_process_free(p), -EINVAL); /* a second free */
  double until = async_loop_time(loop) + 10;
  assert_int_equal(run_task(loop, idle_main, &until, NULL), 0);
  int zombies;
  assert_int_equal(count_children(&zombies), 0); /* reaped by the loop */
  free_loop(loop);
}

/* The loop closes while two children run (one object freed, one kept):
 * they go on, and a background thread reaps them when they exit. */
static void test_process_outlives_loop(void **state) {
  (void)state;
  async_loop *loop = new_loop();
  async_process *kept =
      spawn_opts(loop, (const char *const[]){"sleep", "1", NULL}, 0,
                 ASYNC_PROCESS_PIPE, 0);
  async_process *freed =
      spawn_opts(loop, (const char *const[]){"sleep", "1.2", NULL}, 0, 0, 0);
  assert_int_equal(async_process_free(freed), 0);
  assert_int_equal(async_loop_close(loop), 0);
  int zombies;
  assert_int_equal(count_children(&zombies), 2); /* left running */
  assert_int_equal(async_process_returncode(kept, NULL), -EAGAIN);
  assert_int_equal(async_process_send_signal(kept, 0), -ESRCH);
  assert_int_equal(async_process_free(kept), 0);
  free_loop(loop);
  expect_nothing_left(10);
}

/* communicate will not mix its input after output still buffered on
 * stdin: -EBUSY, and nothing is taken from the child. */
static void *busy_main(void *arg) {
  dctx *c = arg;
  static char big[1 << 20];
  async_stream *in = async_process_stream(c->p, 0);
  c->r[0] = async_stream_write(in, big, sizeof big); /* sleep never reads */
  c->r[1] = async_stream_write_buffered(in) > 0;
  c->r[2] =
      async_process_communicate(c->p, "x", 1, NULL, NULL, NULL, NULL, NULL, 1);
  async_process_kill(c->p);
  c->r[3] = async_process_wait(c->p, &c->code, 10);
  return NULL;
}

static void test_process_communicate_busy(void **state) {
  (void)state;
  async_loop *loop = new_loop();
  /* The stream's writes to a killed child raise no SIGPIPE (see
   * async_write), so SIGPIPE keeps whatever disposition ctest gave. */
  dctx c = {.p = spawn_opts(loop, (const char *const[]){"sleep", "1000", NULL},
                            ASYNC_PROCESS_PIPE, 0, 0)};
  assert_int_equal(run_task(loop, busy_main, &c, NULL), 0);
  assert_int_equal(c.r[0], 0);
  assert_int_equal(c.r[1], 1);
  assert_int_equal(c.r[2], -EBUSY);
  assert_int_equal(c.r[3], 0);
  assert_int_equal(c.code, -SIGKILL);
  assert_int_equal(async_process_free(c.p), 0);
  free_loop(loop);
}

/* }==== */

/* {==== Spawn failures ================================================== */

static void expect_spawn_error(async_loop *loop, const char *const argv[],
                               const async_process_options *o, int err) {
  async_process *p = (async_process *)1;
  int fds = count_fds(), zombies;
  int r = async_process_spawn(&p, loop, argv, o);
  if (!spawn_reports_exec_errors) {
    /* The exec's error cannot come back here (valgrind, qemu-user): the
     * spawn succeeds and the child exits 127, as process.h says. */
    assert_int_equal(r, 0);
    wctx c = {.p = p};
    assert_int_equal(run_task(loop, wait_main, &c, NULL), 0);
    assert_int_equal(c.code[0], 127);
    assert_int_equal(async_process_free(p), 0);
  } else {
    assert_int_equal(r, err);
    assert_ptr_equal(p, (async_process *)1); /* untouched */
  }
  assert_int_equal(count_fds(), fds);
  assert_int_equal(count_children(&zombies), 0);
}

static void test_process_spawn_failures(void **state) {
  (void)state;
  async_loop *loop = new_loop();
  /* One child first: the loop's fds for children (a SIGCHLD pipe where
   * there are no pidfds) are then there before the counts. */
  expect_code(loop, (const char *const[]){"true", NULL}, 0);
  async_process_options o;
  async_process_options_init(&o);
  o.in = o.out = o.err = ASYNC_PROCESS_PIPE;
  expect_spawn_error(loop, (const char *const[]){"no-such-program-xq", NULL},
                     &o, -ENOENT);
  expect_spawn_error(loop, (const char *const[]){"/nonexistent/prog", NULL}, &o,
                     -ENOENT);
  char path[] = "/tmp/proc-noexec-XXXXXX";
  int fd = mkstemp(path);
  assert_true(fd >= 0);
  assert_int_equal(write(fd, "#!/bin/sh\n", 10), 10);
  close(fd);
  chmod(path, 0644);
  expect_spawn_error(loop, (const char *const[]){path, NULL}, &o, -EACCES);
  unlink(path);
  o.cwd = "/nonexistent-dir";
  expect_spawn_error(loop, (const char *const[]){"true", NULL}, &o, -ENOENT);
  free_loop(loop);
}

/* EAGAIN: RLIMIT_NPROC, in a forked child (the limit is per user). Root
 * ignores it, so as root the child first becomes nobody, which drops its
 * capabilities. */
static void test_process_spawn_eagain(void **state) {
  (void)state;
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    if (getuid() == 0 && (setgid(65534) || setuid(65534))) _exit(10);
    struct rlimit rl = {0, 0};
    if (setrlimit(RLIMIT_NPROC, &rl)) _exit(11);
    int before = count_fds();
    async_loop *loop = NULL;
    if (async_loop_new(&loop, NULL)) _exit(12);
    async_process_options o;
    async_process_options_init(&o);
    o.out = ASYNC_PROCESS_PIPE;
    async_process *p = NULL;
    int err =
        async_process_spawn(&p, loop, (const char *const[]){"true", NULL}, &o);
    async_loop_free(loop);
    if (count_fds() != before) _exit(13);
    _exit(err == -EAGAIN ? 0 : 20);
  }
  int st;
  assert_int_equal(waitpid(pid, &st, 0), pid);
  assert_true(WIFEXITED(st));
  assert_int_equal(WEXITSTATUS(st), 0);
}

static void *outside_main(void *arg) {
  int *r = arg;
  r[0] = async_process_wait(NULL, NULL, 1);
  return NULL;
}

static void test_process_bad_input(void **state) {
  (void)state;
  async_loop *loop = new_loop();
  async_process *p = NULL;
  const char *const argv[] = {"true", NULL};
  async_process_options o;
  async_process_options_init(&o);
  assert_int_equal(async_process_spawn(NULL, loop, argv, NULL), -EINVAL);
  assert_int_equal(async_process_spawn(&p, NULL, argv, NULL), -EINVAL);
  assert_int_equal(async_process_spawn(&p, loop, NULL, NULL), -EINVAL);
  assert_int_equal(
      async_process_spawn(&p, loop, (const char *const[]){NULL}, NULL),
      -EINVAL);
  assert_int_equal(
      async_process_spawn(&p, loop, (const char *const[]){"", NULL}, NULL),
      -EINVAL);
  o.out = ASYNC_PROCESS_STDOUT;
  assert_int_equal(async_process_spawn(&p, loop, argv, &o), -EINVAL);
  async_process_options_init(&o);
  o.err = 42;
  assert_int_equal(async_process_spawn(&p, loop, argv, &o), -EINVAL);
  async_process_options_init(&o);
  o.in = (async_process_stdio)-1;
  assert_int_equal(async_process_spawn(&p, loop, argv, &o), -EINVAL);
  async_process_options_init(&o);
  o.size = 3;
  assert_int_equal(async_process_spawn(&p, loop, argv, &o), -EINVAL);
  assert_int_equal(async_process_pid(NULL), -EINVAL);
  assert_null(async_process_stream(NULL, 0));
  assert_int_equal(async_process_returncode(NULL, NULL), -EINVAL);
  assert_int_equal(async_process_free(NULL), -EINVAL);

  p = spawn_opts(loop, argv, 0, 0, 0);
  assert_null(async_process_stream(p, 3));
  assert_null(async_process_stream(p, 1));                  /* inherited */
  assert_int_equal(async_process_wait(p, NULL, 1), -EPERM); /* no task */
  cctx c = {.p = p, .in = "x", .n = 1};
  communicate(loop, &c); /* input, but no stdin pipe */
  assert_int_equal(c.r, -EINVAL);
  c.n = 0;
  c.timeout = NAN;
  communicate(loop, &c);
  assert_int_equal(c.r, -EINVAL);
  int r[1];
  assert_int_equal(run_task(loop, outside_main, r, NULL), 0);
  assert_int_equal(r[0], -EINVAL);
  wctx w = {.p = p};
  assert_int_equal(run_task(loop, wait_main, &w, NULL), 0);
  assert_int_equal(w.r[0], 0);
  assert_int_equal(async_process_free(p), 0);
  assert_int_equal(async_loop_close(loop), 0);
  assert_int_equal(async_process_spawn(&p, loop, argv, NULL), -ESHUTDOWN);
  free_loop(loop);
}

/* }==== */

/* {==== The SIGCHLD path ================================================ */

/* A child of other code's (a plain fork) that exits while the library
 * reaps its own is left for that code's waitpid: never waitpid(-1). */
static void others_child_kept(void) {
  pid_t other = fork();
  assert_true(other >= 0);
  if (other == 0) _exit(7);
  exit_codes(); /* its SIGCHLD comes while these run */
  int st = 0;
  assert_int_equal(waitpid(other, &st, 0), other);
  assert_true(WIFEXITED(st));
  assert_int_equal(WEXITSTATUS(st), 7);
}

static void test_process_others_children(void **state) {
  (void)state;
  others_child_kept();
}

static void test_process_sigchld_path(void **state) {
  (void)state;
  async__process_no_pidfd = 1;
  others_child_kept();
  big_both_ways();
  /* A child freed while running is still reaped on this path. */
  async_loop *loop = new_loop();
  async_process *p =
      spawn_opts(loop, (const char *const[]){"sleep", "0.05", NULL}, 0, 0, 0);
  assert_int_equal(async_process_free(p), 0);
  double until = async_loop_time(loop) + 10;
  assert_int_equal(run_task(loop, idle_main, &until, NULL), 0);
  free_loop(loop);
  async__process_no_pidfd = 0;
}

/* }==== */

int main(void) {
  spawn_reports_exec_errors = probe_exec_errors();
  if (!spawn_reports_exec_errors)
    fprintf(stderr, "test_process: posix_spawnp does not report a failed "
                    "exec here; expecting children that exit 127\n");
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_process_exit_codes, setup, teardown),
      cmocka_unit_test_setup_teardown(test_process_signals, setup, teardown),
      cmocka_unit_test_setup_teardown(test_process_sort, setup, teardown),
      cmocka_unit_test_setup_teardown(test_process_big_both_ways, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_process_input_not_read, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_process_devnull_and_stderr_to_stdout,
                                      setup, teardown),
      cmocka_unit_test_setup_teardown(test_process_stream_lines, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_process_communicate_busy, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_process_child_inherits_nothing,
                                      setup, teardown),
      cmocka_unit_test_setup_teardown(test_process_env_and_cwd, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_process_deadline, setup, teardown),
      cmocka_unit_test_setup_teardown(test_process_cancelled_wait, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_process_freed_while_its_waiter_wakes,
                                      setup, teardown),
      cmocka_unit_test_setup_teardown(test_process_freed_while_running, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_process_outlives_loop, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_process_spawn_failures, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_process_spawn_eagain, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_process_bad_input, setup, teardown),
      cmocka_unit_test_setup_teardown(test_process_others_children, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_process_sigchld_path, setup,
                                      teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
