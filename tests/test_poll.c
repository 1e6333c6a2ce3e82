/* SPDX-License-Identifier: MIT */
/* Tests of the poller backends.
 *
 * Every case runs against the backend named by the ASYNC_BACKEND
 * environment variable (ctest runs this binary once per backend), or
 * against the best one built when the variable is unset or empty. The
 * cases pin down what the loop relies on, including where the backends
 * differ: what happens to an fd that is closed while it is watched. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "os/os.h"

#define IN ASYNC__POLL_IN
#define OUT ASYNC__POLL_OUT
#define ERR ASYNC__POLL_ERR
#define STALE ASYNC__POLL_STALE

#define MS 1000000LL
#define SEC 1000000000LL

static const async__backend *backend;

/* What one wait reported, in order. */
typedef struct report {
  int fd;
  unsigned revents;
} report;

typedef struct fixture {
  async__poller *p;
  report *reps;
  int n;
  int cap;
} fixture;

static int is_backend(const char *name) {
  return strcmp(backend->name, name) == 0;
}

static int64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * SEC + ts.tv_nsec;
}

static void record(void *ud, int fd, unsigned revents) {
  fixture *f = ud;

  if (f->n == f->cap) {
    int cap = f->cap ? f->cap * 2 : 64;
    report *reps = realloc(f->reps, (size_t)cap * sizeof(*reps));
    assert_non_null(reps);
    f->reps = reps;
    f->cap = cap;
  }
  f->reps[f->n].fd = fd;
  f->reps[f->n].revents = revents;
  f->n++;
}

/* Waits once and checks what every backend promises about the reports:
 * the count returned is the number of callbacks, each fd comes at most
 * once, and every report says something. */
static int wait_for(fixture *f, int64_t timeout_ns) {
  int r;
  int i;
  int j;

  f->n = 0;
  r = backend->wait(f->p, timeout_ns, record, f);
  assert_true(r >= 0);
  assert_int_equal(r, f->n);
  for (i = 0; i < f->n; i++) {
    assert_true(f->reps[i].revents != 0);
    assert_int_equal(f->reps[i].revents & ~(IN | OUT | ERR | STALE), 0);
    for (j = 0; j < i; j++) assert_int_not_equal(f->reps[i].fd, f->reps[j].fd);
  }
  return r;
}

/* The events reported for fd by the last wait, or 0. */
static unsigned reported(const fixture *f, int fd) {
  int i;
  for (i = 0; i < f->n; i++)
    if (f->reps[i].fd == fd) return f->reps[i].revents;
  return 0;
}

static void make_pipe(int fds[2]) {
  assert_int_equal(pipe2(fds, O_CLOEXEC | O_NONBLOCK), 0);
}

static void make_socketpair(int fds[2]) {
  assert_int_equal(
      socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, fds),
      0);
}

static void put_byte(int fd) { assert_int_equal(write(fd, "x", 1), 1); }

/* Stops watching fd, then closes it: the order the loop must keep, since a
 * closed fd can no longer be removed from epoll and stays in poll's set. */
static void forget_and_close(fixture *f, int fd, unsigned interest) {
  assert_int_equal(backend->ctl(f->p, fd, interest, 0), 0);
  close(fd);
}

/* Raises the soft limit on open files as far as the hard limit allows and
 * returns the new soft limit. */
static rlim_t raise_nofile(void) {
  struct rlimit rl;

  assert_int_equal(getrlimit(RLIMIT_NOFILE, &rl), 0);
  if (rl.rlim_cur != rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    assert_int_equal(setrlimit(RLIMIT_NOFILE, &rl), 0);
  }
  return rl.rlim_cur;
}

static int group_setup(void **state) {
  const char *name = getenv("ASYNC_BACKEND");

  (void)state;
  backend = async__backend_find(name);
  if (backend == NULL) {
    fprintf(stderr, "test_poll: no backend called '%s' in this build\n", name);
    return -1;
  }
  return 0;
}

static int setup(void **state) {
  fixture *f = calloc(1, sizeof(*f));
  if (f == NULL) return -1;
  if (backend->init(&f->p) != 0) {
    free(f);
    return -1;
  }
  *state = f;
  return 0;
}

static int teardown(void **state) {
  fixture *f = *state;
  backend->close(f->p);
  free(f->reps);
  free(f);
  return 0;
}

static void test_poll_pipe_readable(void **state) {
  fixture *f = *state;
  int fds[2];
  char c;

  make_pipe(fds);
  assert_int_equal(backend->ctl(f->p, fds[0], 0, IN), 0);
  assert_int_equal(wait_for(f, 0), 0);

  put_byte(fds[1]);
  assert_int_equal(wait_for(f, SEC), 1);
  assert_int_equal(f->reps[0].fd, fds[0]);
  assert_int_equal(f->reps[0].revents, IN);

  /* Level-triggered: still readable, so reported again. */
  assert_int_equal(wait_for(f, SEC), 1);
  assert_int_equal(reported(f, fds[0]), IN);

  assert_int_equal(read(fds[0], &c, 1), 1);
  assert_int_equal(wait_for(f, 0), 0);
  forget_and_close(f, fds[0], IN);
  close(fds[1]);
}

static void test_poll_pipe_writable(void **state) {
  fixture *f = *state;
  int fds[2];

  make_pipe(fds);
  assert_int_equal(backend->ctl(f->p, fds[1], 0, OUT), 0);
  assert_int_equal(wait_for(f, SEC), 1);
  assert_int_equal(f->reps[0].fd, fds[1]);
  assert_int_equal(f->reps[0].revents, OUT);
  close(fds[0]);
  forget_and_close(f, fds[1], OUT);
}

static void test_poll_wait_no_limit_returns_when_ready(void **state) {
  fixture *f = *state;
  int fds[2];

  make_pipe(fds);
  put_byte(fds[1]);
  assert_int_equal(backend->ctl(f->p, fds[0], 0, IN), 0);
  assert_int_equal(wait_for(f, -1), 1);
  assert_int_equal(reported(f, fds[0]), IN);
  forget_and_close(f, fds[0], IN);
  close(fds[1]);
}

static void test_poll_remove_stops_reports(void **state) {
  fixture *f = *state;
  int fds[2];

  make_pipe(fds);
  put_byte(fds[1]);
  assert_int_equal(backend->ctl(f->p, fds[0], 0, IN), 0);
  assert_int_equal(wait_for(f, SEC), 1);

  assert_int_equal(backend->ctl(f->p, fds[0], IN, 0), 0);
  assert_int_equal(wait_for(f, 0), 0);
  assert_int_equal(wait_for(f, 10 * MS), 0);

  /* And the fd can be watched again afterwards. */
  assert_int_equal(backend->ctl(f->p, fds[0], 0, IN), 0);
  assert_int_equal(wait_for(f, SEC), 1);
  assert_int_equal(reported(f, fds[0]), IN);
  forget_and_close(f, fds[0], IN);
  close(fds[1]);
}

static void test_poll_modify_in_to_out(void **state) {
  fixture *f = *state;
  int sv[2];

  /* A socket with data waiting is both readable and writable, so what is
   * reported is exactly what was asked. */
  make_socketpair(sv);
  put_byte(sv[1]);
  assert_int_equal(backend->ctl(f->p, sv[0], 0, IN), 0);
  assert_int_equal(wait_for(f, SEC), 1);
  assert_int_equal(reported(f, sv[0]), IN);

  assert_int_equal(backend->ctl(f->p, sv[0], IN, OUT), 0);
  assert_int_equal(wait_for(f, SEC), 1);
  assert_int_equal(reported(f, sv[0]), OUT);

  /* Both directions come in a single report. */
  assert_int_equal(backend->ctl(f->p, sv[0], OUT, IN | OUT), 0);
  assert_int_equal(wait_for(f, SEC), 1);
  assert_int_equal(reported(f, sv[0]), IN | OUT);

  assert_int_equal(backend->ctl(f->p, sv[0], IN | OUT, IN), 0);
  assert_int_equal(wait_for(f, SEC), 1);
  assert_int_equal(reported(f, sv[0]), IN);

  assert_int_equal(backend->ctl(f->p, sv[0], IN, 0), 0);
  assert_int_equal(wait_for(f, 0), 0);
  close(sv[0]);
  close(sv[1]);
}

static void test_poll_add_twice_updates(void **state) {
  fixture *f = *state;
  int sv[2];

  /* A loop that lost track of an fd may add it again: the second add
   * replaces the interest instead of failing. */
  make_socketpair(sv);
  put_byte(sv[1]);
  assert_int_equal(backend->ctl(f->p, sv[0], 0, IN), 0);
  assert_int_equal(backend->ctl(f->p, sv[0], 0, OUT), 0);
  assert_int_equal(wait_for(f, SEC), 1);
  assert_int_equal(reported(f, sv[0]), OUT);
  forget_and_close(f, sv[0], OUT);
  close(sv[1]);
}

static void test_poll_timeout_zero_returns_at_once(void **state) {
  fixture *f = *state;
  int fds[2];
  int64_t t0;

  t0 = now_ns();
  assert_int_equal(wait_for(f, 0), 0);
  assert_true(now_ns() - t0 < 500 * MS);

  make_pipe(fds);
  assert_int_equal(backend->ctl(f->p, fds[0], 0, IN), 0);
  t0 = now_ns();
  assert_int_equal(wait_for(f, 0), 0);
  assert_true(now_ns() - t0 < 500 * MS);
  forget_and_close(f, fds[0], IN);
  close(fds[1]);
}

static void test_poll_timeout_waits_long_enough(void **state) {
  fixture *f = *state;
  int fds[2];
  int64_t t0;
  int64_t dt;

  make_pipe(fds);
  assert_int_equal(backend->ctl(f->p, fds[0], 0, IN), 0);
  t0 = now_ns();
  assert_int_equal(wait_for(f, 20 * MS), 0);
  dt = now_ns() - t0;
  assert_true(dt >= 20 * MS);
  assert_true(dt < 2 * SEC);
  forget_and_close(f, fds[0], IN);
  close(fds[1]);

  /* With nothing watched at all, the wait is a plain sleep. */
  t0 = now_ns();
  assert_int_equal(wait_for(f, 20 * MS), 0);
  dt = now_ns() - t0;
  assert_true(dt >= 20 * MS);
  assert_true(dt < 2 * SEC);
}

static void test_poll_timeout_below_a_millisecond_is_not_cut(void **state) {
  /* A backend that can only wait whole milliseconds must round up: one
   * that rounded 500 us down to 0 would return at once and leave the loop
   * spinning until its timer was due. */
  static const int64_t timeouts[] = {1, 1000, 500000, 1500000};
  fixture *f = *state;
  size_t i;

  for (i = 0; i < sizeof(timeouts) / sizeof(timeouts[0]); i++) {
    int64_t t0 = now_ns();
    int64_t dt;

    assert_int_equal(wait_for(f, timeouts[i]), 0);
    dt = now_ns() - t0;
    assert_true(dt >= timeouts[i]);
    assert_true(dt < 2 * SEC);
  }
}

static volatile sig_atomic_t alarm_fired;

static void on_alarm(int sig) {
  (void)sig;
  alarm_fired = 1;
}

static void test_poll_signal_returns_zero(void **state) {
  fixture *f = *state;
  struct sigaction sa;
  struct sigaction old;
  struct itimerval it;

  memset(&sa, 0, sizeof(sa));
  sa.sa_handler = on_alarm;
  sigemptyset(&sa.sa_mask);
  assert_int_equal(sigaction(SIGALRM, &sa, &old), 0);
  memset(&it, 0, sizeof(it));
  it.it_value.tv_usec = 30000;
  alarm_fired = 0;
  assert_int_equal(setitimer(ITIMER_REAL, &it, NULL), 0);

  /* Normally the alarm interrupts the wait; should the machine be so
   * loaded that it fires first, the wait times out, also with 0. */
  assert_int_equal(wait_for(f, 2 * SEC), 0);
  while (!alarm_fired) {
    struct timespec ms = {0, 1000000};
    nanosleep(&ms, NULL);
  }
  assert_int_equal(sigaction(SIGALRM, &old, NULL), 0);
}

static void test_poll_peer_close_reports_hangup(void **state) {
  fixture *f = *state;
  int sv[2];
  int fds[2];
  unsigned r;

  /* The reader of a socket whose peer is gone wakes up, with ERR or with
   * IN (a read then returns 0). */
  make_socketpair(sv);
  assert_int_equal(backend->ctl(f->p, sv[0], 0, IN), 0);
  assert_int_equal(wait_for(f, 0), 0);
  close(sv[1]);
  assert_int_equal(wait_for(f, SEC), 1);
  r = reported(f, sv[0]);
  assert_true(r & (ERR | IN));
  assert_int_equal(r & OUT, 0);
  forget_and_close(f, sv[0], IN);

  /* The writer of a pipe whose reader is gone gets an error. */
  make_pipe(fds);
  assert_int_equal(backend->ctl(f->p, fds[1], 0, OUT), 0);
  close(fds[0]);
  assert_int_equal(wait_for(f, SEC), 1);
  r = reported(f, fds[1]);
  assert_true(r & ERR);
  assert_true(r & OUT);
  forget_and_close(f, fds[1], OUT);
}

static void test_poll_ctl_closed_fd_fails(void **state) {
  fixture *f = *state;
  int fds[2];

  make_pipe(fds);
  close(fds[0]);
  close(fds[1]);
  assert_int_equal(backend->ctl(f->p, fds[0], 0, IN), -EBADF);
  assert_int_equal(backend->ctl(f->p, fds[1], 0, OUT), -EBADF);
  assert_int_equal(backend->ctl(f->p, -1, 0, IN), -EBADF);
  assert_int_equal(wait_for(f, 0), 0);
}

static void test_poll_closed_while_watched(void **state) {
  fixture *f = *state;
  int fds[2];

  make_pipe(fds);
  put_byte(fds[1]);
  assert_int_equal(backend->ctl(f->p, fds[0], 0, IN), 0);
  close(fds[0]);

  if (is_backend("poll")) {
    /* poll watches numbers: the closed one is POLLNVAL, stale, at every
     * wait until the loop removes it, which always succeeds. */
    assert_int_equal(wait_for(f, 0), 1);
    assert_int_equal(reported(f, fds[0]), STALE | ERR | IN);
    assert_int_equal(wait_for(f, 0), 1);
    assert_int_equal(backend->ctl(f->p, fds[0], IN, 0), 0);
  } else {
    /* epoll and kqueue drop the registration with the last descriptor of
     * the file; removing it afterwards names an fd that is not open. */
    assert_int_equal(wait_for(f, 0), 0);
    assert_int_equal(backend->ctl(f->p, fds[0], IN, 0), -EBADF);
  }
  assert_int_equal(wait_for(f, 0), 0);
  close(fds[1]);
}

/* Waits timeout_ns with nothing ready and checks that the wait really
 * slept: a registration the backend failed to drop would end it at once,
 * and the loop would spin. */
static void expect_quiet(fixture *f, int64_t timeout_ns) {
  int64_t t0 = now_ns();

  assert_int_equal(wait_for(f, timeout_ns), 0);
  assert_true(now_ns() - t0 >= timeout_ns);
}

static void test_poll_closed_with_dup_alive(void **state) {
  fixture *f = *state;
  int fds[2];
  int dupfd;

  make_pipe(fds);
  put_byte(fds[1]);
  assert_int_equal(backend->ctl(f->p, fds[0], 0, IN), 0);
  dupfd = fcntl(fds[0], F_DUPFD_CLOEXEC, 0);
  assert_true(dupfd >= 0);
  close(fds[0]);

  if (is_backend("epoll")) {
    /* epoll watches the open file, which the duplicate keeps alive, so
     * the old number is still reported until the loop forgets it; the
     * kernel refuses the removal (the number is not open), but the
     * backend drops the orphan's next report and rebuilds its set. */
    assert_int_equal(wait_for(f, 0), 1);
    assert_int_equal(reported(f, fds[0]), IN);
    assert_int_equal(backend->ctl(f->p, fds[0], IN, 0), -EBADF);
  } else if (is_backend("poll")) {
    /* poll watches the number: closed, it is POLLNVAL until removed. */
    assert_int_equal(wait_for(f, 0), 1);
    assert_int_equal(reported(f, fds[0]), STALE | ERR | IN);
    assert_int_equal(backend->ctl(f->p, fds[0], IN, 0), 0);
  } else {
    /* kqueue's filters belong to the descriptor, gone with it. */
    assert_int_equal(wait_for(f, 0), 0);
  }
  assert_int_equal(wait_for(f, 0), 0);
  expect_quiet(f, 50 * MS);
  close(dupfd);
  close(fds[1]);
}

/* Closes fd behind the backend's back and opens the read end of a new pipe
 * under the same number; returns the new pipe's write end. */
static int reopen_as_pipe(int fd) {
  int fds[2];

  make_pipe(fds);
  close(fd);
  assert_int_equal(dup3(fds[0], fd, O_CLOEXEC), fd);
  close(fds[0]);
  return fds[1];
}

static void test_poll_reused_fd_number(void **state) {
  fixture *f = *state;
  int fds[2];
  int wr;

  make_pipe(fds);
  assert_int_equal(backend->ctl(f->p, fds[0], 0, IN), 0);
  wr = reopen_as_pipe(fds[0]);
  close(fds[1]);
  put_byte(wr);

  /* The loop still believes in its old interest and changes it: the
   * backend must end up watching the new file, and epoll and poll say the
   * registration was stale (1). */
  assert_int_equal(backend->ctl(f->p, fds[0], IN, IN),
                   is_backend("kqueue") ? 0 : 1);
  assert_int_equal(wait_for(f, SEC), 1);
  assert_int_equal(reported(f, fds[0]), IN);

  /* Reused again, then forgotten: the removal succeeds. */
  close(wr);
  wr = reopen_as_pipe(fds[0]);
  assert_int_equal(backend->ctl(f->p, fds[0], IN, 0), 0);
  put_byte(wr);
  assert_int_equal(wait_for(f, 0), 0);
  close(fds[0]);
  close(wr);
}

/* A number closed and reused behind the backend's back while watched is
 * never reported ready for the new file's data: poll, which watches
 * numbers, reports it stale; epoll and kqueue dropped the registration
 * with the old file and report nothing. */
static void test_poll_reused_number_reported_stale(void **state) {
  fixture *f = *state;
  int fds[2];
  int wr;

  make_pipe(fds);
  assert_int_equal(backend->ctl(f->p, fds[0], 0, IN), 0);
  wr = reopen_as_pipe(fds[0]);
  close(fds[1]);
  put_byte(wr);
  if (is_backend("poll")) {
    assert_int_equal(wait_for(f, 0), 1);
    assert_int_equal(reported(f, fds[0]), STALE | ERR | IN);
  } else {
    assert_int_equal(wait_for(f, 0), 0);
  }
  assert_int_equal(backend->ctl(f->p, fds[0], IN, 0), 0);
  assert_int_equal(wait_for(f, 0), 0);
  close(fds[0]);
  close(wr);
}

static void test_poll_orphan_under_reused_number(void **state) {
  fixture *f = *state;
  int fds[2];
  int dupfd;
  int wr;

  /* A readable pipe is watched, closed behind the backend's back while a
   * duplicate keeps it open, and its number reused by an empty pipe that
   * the loop then waits on. Only the new pipe may be reported. */
  make_pipe(fds);
  put_byte(fds[1]);
  assert_int_equal(backend->ctl(f->p, fds[0], 0, IN), 0);
  dupfd = fcntl(fds[0], F_DUPFD_CLOEXEC, 0);
  assert_true(dupfd >= 0);
  wr = reopen_as_pipe(fds[0]);
  assert_int_equal(backend->ctl(f->p, fds[0], IN, IN),
                   is_backend("kqueue") ? 0 : 1);

  assert_int_equal(wait_for(f, 0), 0);
  expect_quiet(f, 50 * MS);
  put_byte(wr);
  assert_int_equal(wait_for(f, SEC), 1);
  assert_int_equal(reported(f, fds[0]), IN);

  forget_and_close(f, fds[0], IN);
  close(wr);
  close(dupfd);
  close(fds[1]);
}

static void test_poll_regular_file(void **state) {
  fixture *f = *state;
  char path[] = "/tmp/test_poll_XXXXXX";
  int fd = mkstemp(path);
  int r;

  assert_true(fd >= 0);
  unlink(path);
  r = backend->ctl(f->p, fd, 0, IN | OUT);
  if (is_backend("epoll")) {
    /* epoll refuses files that are always ready; the loop must treat
     * -EPERM as "ready now" and not wait. */
    assert_int_equal(r, -EPERM);
    assert_int_equal(wait_for(f, 0), 0);
  } else {
    assert_int_equal(r, 0);
    assert_int_equal(wait_for(f, SEC), 1);
    assert_true(reported(f, fd) & OUT);
    assert_int_equal(backend->ctl(f->p, fd, IN | OUT, 0), 0);
  }
  close(fd);
}

static void test_poll_many_fds(void **state) {
  fixture *f = *state;
  rlim_t lim = raise_nofile();
  int npairs = 1000;
  int nfds;
  int expected;
  int *fds;
  unsigned char *want;
  unsigned char *seen;
  int maxfd = 0;
  int got = 0;
  int rounds;
  int i;

  if (lim < 600) {
    print_message("RLIMIT_NOFILE is %lu: too low for 500 fds\n",
                  (unsigned long)lim);
    skip();
  }
  if ((rlim_t)npairs * 2 + 64 > lim) npairs = (int)((lim - 64) / 2);
  nfds = npairs * 2;
  expected = nfds;
  fds = malloc((size_t)nfds * sizeof(*fds));
  assert_non_null(fds);

  /* In each pair, one end has a byte to read and is watched for IN, the
   * other is watched for OUT. */
  for (i = 0; i < npairs; i++) {
    make_socketpair(&fds[2 * i]);
    put_byte(fds[2 * i + 1]);
    if (fds[2 * i] > maxfd) maxfd = fds[2 * i];
    if (fds[2 * i + 1] > maxfd) maxfd = fds[2 * i + 1];
  }
  want = calloc((size_t)maxfd + 1, 1);
  seen = calloc((size_t)maxfd + 1, 1);
  assert_non_null(want);
  assert_non_null(seen);
  for (i = 0; i < npairs; i++) {
    want[fds[2 * i]] = IN;
    want[fds[2 * i + 1]] = OUT;
    assert_int_equal(backend->ctl(f->p, fds[2 * i], 0, IN), 0);
    assert_int_equal(backend->ctl(f->p, fds[2 * i + 1], 0, OUT), 0);
  }

  /* Every third fd is forgotten before any wait, from the front of the
   * poll backend's array, so that later removals meet entries that an
   * earlier swap-removal moved; none of them may be reported. */
  for (i = 0; i < nfds; i += 3) {
    assert_int_equal(backend->ctl(f->p, fds[i], want[fds[i]], 0), 0);
    want[fds[i]] = 0;
    expected--;
  }

  /* Each reported fd is removed at once, in the order reported, which
   * shuffles the poll backend's array through many more swap-removals. */
  for (rounds = 0; got < expected && rounds < 1000; rounds++) {
    int n = wait_for(f, SEC);

    assert_true(n > 0);
    for (i = 0; i < n; i++) {
      int fd = f->reps[i].fd;

      assert_true(fd >= 0 && fd <= maxfd);
      assert_int_not_equal(want[fd], 0);
      assert_int_equal(seen[fd], 0);
      assert_int_equal(f->reps[i].revents, want[fd]);
      seen[fd] = 1;
      got++;
      assert_int_equal(backend->ctl(f->p, fd, want[fd], 0), 0);
    }
  }
  assert_int_equal(got, expected);
  assert_int_equal(wait_for(f, 0), 0);

  for (i = 0; i < nfds; i++) close(fds[i]);
  free(fds);
  free(want);
  free(seen);
}

static void test_poll_many_fds_in_one_set(void **state) {
  fixture *f = *state;
  rlim_t lim = raise_nofile();
  int nfds = 600;
  int *fds;
  unsigned char *seen;
  int maxfd = 0;
  int i;
  int j;

  /* Unlike test_poll_many_fds, nothing is removed: with more ready fds
   * than one wait returns (epoll and kqueue fetch 256 at a time), repeated
   * waits must still reach every fd, none starved by those before it. */
  if (lim < (rlim_t)nfds + 64) {
    print_message("RLIMIT_NOFILE is %lu: too low\n", (unsigned long)lim);
    skip();
  }
  fds = malloc((size_t)nfds * sizeof(*fds));
  assert_non_null(fds);
  for (i = 0; i < nfds; i += 2) make_socketpair(&fds[i]);
  for (i = 0; i < nfds; i++) {
    if (fds[i] > maxfd) maxfd = fds[i];
    assert_int_equal(backend->ctl(f->p, fds[i], 0, OUT), 0);
  }
  seen = calloc((size_t)maxfd + 1, 1);
  assert_non_null(seen);
  for (i = 0; i < 3; i++) {
    int n = wait_for(f, SEC);
    assert_true(n > 0);
    for (j = 0; j < n; j++) {
      assert_true(f->reps[j].fd >= 0 && f->reps[j].fd <= maxfd);
      assert_int_equal(f->reps[j].revents, OUT);
      seen[f->reps[j].fd] = 1;
    }
  }
  for (i = 0; i < nfds; i++) {
    assert_int_equal(seen[fds[i]], 1);
    forget_and_close(f, fds[i], OUT);
  }
  free(fds);
  free(seen);
}

static void test_poll_fd_above_1024(void **state) {
  fixture *f = *state;
  rlim_t lim = raise_nofile();
  int fds[2];
  int high;

  if (lim < 1200) {
    print_message("RLIMIT_NOFILE is %lu: no fd above 1024\n",
                  (unsigned long)lim);
    skip();
  }
  make_pipe(fds);
  high = fcntl(fds[0], F_DUPFD_CLOEXEC, 1100);
  assert_true(high >= 1100);
  close(fds[0]);

  assert_int_equal(backend->ctl(f->p, high, 0, IN), 0);
  assert_int_equal(wait_for(f, 0), 0);
  put_byte(fds[1]);
  assert_int_equal(wait_for(f, SEC), 1);
  assert_int_equal(f->reps[0].fd, high);
  assert_int_equal(f->reps[0].revents, IN);
  assert_int_equal(backend->ctl(f->p, high, IN, 0), 0);
  assert_int_equal(wait_for(f, 0), 0);
  close(high);
  close(fds[1]);
}

static void test_poll_close_with_fds_watched(void **state) {
  async__poller *p;
  int fds[2];

  /* Closing a poller that still watches fds frees everything (valgrind
   * and AddressSanitizer check) and leaves the fds open. */
  (void)state;
  make_pipe(fds);
  assert_int_equal(backend->init(&p), 0);
  assert_int_equal(backend->ctl(p, fds[0], 0, IN), 0);
  assert_int_equal(backend->ctl(p, fds[1], 0, OUT), 0);
  backend->close(p);
  assert_true(fcntl(fds[0], F_GETFD) >= 0);
  close(fds[0]);
  close(fds[1]);
}

static void test_poll_find(void **state) {
  const async__backend *best = async__backend_find(NULL);

  (void)state;
  assert_non_null(best);
  assert_ptr_equal(async__backend_find(""), best);
  assert_ptr_equal(async__backend_find("poll"), &async__backend_poll);
  assert_string_equal(async__backend_poll.name, "poll");
  assert_null(async__backend_find("nope"));
  assert_null(async__backend_find("Poll"));
#if defined(__linux__)
  assert_ptr_equal(best, &async__backend_epoll);
  assert_ptr_equal(async__backend_find("epoll"), &async__backend_epoll);
  assert_null(async__backend_find("kqueue"));
#elif defined(__APPLE__) || defined(__FreeBSD__) || defined(__NetBSD__) ||     \
    defined(__OpenBSD__) || defined(__DragonFly__)
  assert_ptr_equal(best, &async__backend_kqueue);
  assert_ptr_equal(async__backend_find("kqueue"), &async__backend_kqueue);
  assert_null(async__backend_find("epoll"));
#else
  assert_ptr_equal(best, &async__backend_poll);
#endif
}

#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

int main(void) {
  const struct CMUnitTest tests[] = {
      T(test_poll_pipe_readable),
      T(test_poll_pipe_writable),
      T(test_poll_wait_no_limit_returns_when_ready),
      T(test_poll_remove_stops_reports),
      T(test_poll_modify_in_to_out),
      T(test_poll_add_twice_updates),
      T(test_poll_timeout_zero_returns_at_once),
      T(test_poll_timeout_waits_long_enough),
      T(test_poll_timeout_below_a_millisecond_is_not_cut),
      T(test_poll_signal_returns_zero),
      T(test_poll_peer_close_reports_hangup),
      T(test_poll_ctl_closed_fd_fails),
      T(test_poll_closed_while_watched),
      T(test_poll_closed_with_dup_alive),
      T(test_poll_reused_fd_number),
      T(test_poll_orphan_under_reused_number),
      T(test_poll_reused_number_reported_stale),
      T(test_poll_regular_file),
      T(test_poll_many_fds),
      T(test_poll_many_fds_in_one_set),
      T(test_poll_fd_above_1024),
      T(test_poll_close_with_fds_watched),
      T(test_poll_find),
  };
  const char *name = getenv("ASYNC_BACKEND");
  char group[64];

  snprintf(group, sizeof(group), "poll.%s",
           name != NULL && name[0] != '\0' ? name : "default");
  return cmocka_run_group_tests_name(group, tests, group_setup, NULL);
}
