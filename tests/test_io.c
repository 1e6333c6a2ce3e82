/* SPDX-License-Identifier: MIT */
/* The I/O calls that suspend (include/async/io.h): read, write, recv,
 * send, accept, connect, write-all, sendfile, over socketpairs, pipes and
 * loopback TCP; their timeouts; cancellation that consumes nothing;
 * async_fd_close waking its waiters; SIGPIPE never raised on sockets. */
#include "helpers.h"

#include "io/io.h" /* async__sendfile_force_copy */

#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>
#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#else
#define RUNNING_ON_VALGRIND 0
#endif

static void spair(int sv[2]) {
  assert_int_equal(
      socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv),
      0);
}

static int pending_bytes(int fd) {
  char buf[65536];
  int total = 0;
  ssize_t r;
  while ((r = recv(fd, buf, sizeof buf, MSG_DONTWAIT)) > 0) total += (int)r;
  return total;
}

/* ---- read and write ---------------------------------------------------- */

typedef struct {
  int fd;
  ssize_t got;
  char buf[64];
  double timeout;
} rd_ctx;

static void *reader(void *arg) {
  rd_ctx *c = arg;
  c->got = async_read(c->fd, c->buf, sizeof c->buf, c->timeout);
  return NULL;
}

typedef struct {
  int sv[2];
  rd_ctx r;
  ssize_t w;
} rw_ctx;

static void *rw_main(void *arg) {
  rw_ctx *c = arg;
  async_task *t;
  async_task_spawn(async_loop_current(), &t, reader, &c->r, NULL);
  async_sleep(0.01); /* the reader is parked on an empty socket */
  c->w = async_write(c->sv[1], "hello", 5, ASYNC_NO_TIMEOUT);
  async_await(t, NULL);
  async_task_release(t);
  return NULL;
}

static void test_io_read_waits_for_write(void **state) {
  (void)state;
  async_loop *loop = new_loop();
  rw_ctx c = {.r.timeout = ASYNC_NO_TIMEOUT};
  spair(c.sv);
  c.r.fd = c.sv[0];
  assert_int_equal(run_task(loop, rw_main, &c, NULL), 0);
  assert_int_equal(c.w, 5);
  assert_int_equal(c.r.got, 5);
  assert_memory_equal(c.r.buf, "hello", 5);
  close(c.sv[0]);
  close(c.sv[1]);
  free_loop(loop);
}

typedef struct {
  int sv[2];
  ssize_t t0, t_short, nan, ready0, eof, zero, nullbuf;
  double waited;
} to_ctx;

static void *timeouts_main(void *arg) {
  to_ctx *c = arg;
  char b[8];
  c->t0 = async_read(c->sv[0], b, sizeof b, 0);
  double t = async_clock();
  c->t_short = async_read(c->sv[0], b, sizeof b, 0.05);
  c->waited = async_clock() - t;
  c->nan = async_read(c->sv[0], b, sizeof b, NAN);
  c->nullbuf = async_read(c->sv[0], NULL, 4, 1);
  send(c->sv[1], "x", 1, 0);
  c->ready0 = async_read(c->sv[0], b, sizeof b, 0); /* ready: no wait */
  c->zero = async_read(c->sv[0], b, 0, 0);
  shutdown(c->sv[1], SHUT_WR);
  c->eof = async_read(c->sv[0], b, sizeof b, 1);
  return NULL;
}

static void test_io_read_timeouts(void **state) {
  (void)state;
  async_loop *loop = new_loop();
  to_ctx c;
  spair(c.sv);
  assert_int_equal(run_task(loop, timeouts_main, &c, NULL), 0);
  assert_int_equal(c.t0, -ETIMEDOUT);
  assert_int_equal(c.t_short, -ETIMEDOUT);
  assert_true(c.waited >= 0.04 && c.waited < 5);
  assert_int_equal(c.nan, -EINVAL);
  assert_int_equal(c.nullbuf, -EINVAL);
  assert_int_equal(c.ready0, 1);
  assert_int_equal(c.zero, 0);
  assert_int_equal(c.eof, 0);
  char b[4];
  /* Outside a task. */
  assert_int_equal(async_read(c.sv[0], b, 4, 1), -EPERM);
  assert_int_equal(async_write(c.sv[0], b, 4, 1), -EPERM);
  close(c.sv[0]);
  close(c.sv[1]);
  free_loop(loop);
}

/* Every call that waits times out: accept, recvfrom, write and send on a
 * full socket, connect to a full backlog (test_socket), and each with a
 * zero timeout returns at once. */
typedef struct {
  int lfd, udp, sv[2];
  ssize_t r[10];
} every_ctx;

static void *every_timeout_main(void *arg) {
  every_ctx *c = arg;
  static char big[1 << 20];
  char b[16];
  while (send(c->sv[0], big, sizeof big, MSG_DONTWAIT) > 0) {
  }
  for (int z = 0; z < 2; z++) {
    double to = z ? 0 : 0.02;
    c->r[5 * z + 0] = async_accept(c->lfd, NULL, NULL, to);
    c->r[5 * z + 1] = async_recvfrom(c->udp, b, sizeof b, 0, NULL, NULL, to);
    c->r[5 * z + 2] = async_write(c->sv[0], big, 1, to);
    c->r[5 * z + 3] = async_send(c->sv[0], big, 1, 0, to);
    c->r[5 * z + 4] = async_recv(c->sv[1], b, 0, 0, to); /* n == 0 */
  }
  return NULL;
}

static void test_io_every_call_times_out(void **state) {
  (void)state;
  async_loop *loop = new_loop();
  every_ctx c = {.lfd = async_tcp_listen("127.0.0.1", 0, 0, 0),
                 .udp = async_udp_bind("127.0.0.1", 0, 0)};
  spair(c.sv);
  assert_int_equal(run_task(loop, every_timeout_main, &c, NULL), 0);
  for (int z = 0; z < 2; z++) {
    for (int i = 0; i < 4; i++) assert_int_equal(c.r[5 * z + i], -ETIMEDOUT);
    /* recv of 0 bytes on a stream socket is ready at once: 0 */
    assert_int_equal(c.r[5 * z + 4], 0);
  }
  close(c.lfd);
  close(c.udp);
  close(c.sv[0]);
  close(c.sv[1]);
  free_loop(loop);
}

/* ---- write-all --------------------------------------------------------- */

#define BIG (4 * 1024 * 1024)

typedef struct {
  int fd;
  char *buf;
  ssize_t r;
  size_t written;
  double timeout;
} wa_ctx;

static void *write_all_task(void *arg) {
  wa_ctx *c = arg;
  c->r = async_write_all(c->fd, c->buf, BIG, &c->written, c->timeout);
  return NULL;
}

static void test_io_write_all_timeout_says_written(void **state) {
  (void)state;
  async_loop *loop = new_loop();
  int sv[2];
  spair(sv);
  wa_ctx c = {.fd = sv[0], .buf = calloc(1, BIG), .timeout = 0.05};
  assert_int_equal(run_task(loop, write_all_task, &c, NULL), 0);
  assert_int_equal(c.r, -ETIMEDOUT);
  assert_true(c.written > 0 && c.written < BIG);
  /* What it says went out is exactly what the peer has. */
  assert_int_equal(pending_bytes(sv[1]), (int)c.written);
  close(sv[0]);
  close(sv[1]);
  free(c.buf);
  free_loop(loop);
}

typedef struct {
  int sv[2];
  wa_ctx w;
  int cancelled;
  int got;
} wac_ctx;

static void *wa_cancel_main(void *arg) {
  wac_ctx *c = arg;
  async_task *t;
  async_task_spawn(async_loop_current(), &t, write_all_task, &c->w, NULL);
  async_sleep(0.02); /* it fills the socket and waits */
  c->cancelled = async_task_cancel(t);
  async_await(t, NULL);
  async_task_release(t);
  c->got = pending_bytes(c->sv[1]);
  return NULL;
}

static void test_io_write_all_cancelled_says_written(void **state) {
  (void)state;
  async_loop *loop = new_loop();
  wac_ctx c = {0};
  spair(c.sv);
  c.w = (wa_ctx){
      .fd = c.sv[0], .buf = calloc(1, BIG), .timeout = ASYNC_NO_TIMEOUT};
  assert_int_equal(run_task(loop, wa_cancel_main, &c, NULL), 0);
  assert_int_equal(c.cancelled, 1);
  assert_int_equal(c.w.r, -ECANCELED);
  assert_true(c.w.written > 0 && c.w.written < BIG);
  assert_int_equal(c.got, (int)c.w.written);
  close(c.sv[0]);
  close(c.sv[1]);
  free(c.w.buf);
  free_loop(loop);
}

typedef struct {
  int sv[2];
  char *buf;
  ssize_t r;
  size_t written;
  size_t got;
  int ok;
} wap_ctx;

static void *drain_reader(void *arg) {
  wap_ctx *c = arg;
  char b[65536];
  c->ok = 1;
  for (;;) {
    ssize_t r = async_read(c->sv[1], b, sizeof b, 5);
    if (r <= 0) break;
    for (ssize_t i = 0; i < r; i++)
      if (b[i] != (char)((c->got + (size_t)i) * 7)) c->ok = 0;
    c->got += (size_t)r;
  }
  return NULL;
}

static void *wa_full_main(void *arg) {
  wap_ctx *c = arg;
  async_task *t;
  async_task_spawn(async_loop_current(), &t, drain_reader, c, NULL);
  c->r = async_write_all(c->sv[0], c->buf, BIG, &c->written, 10);
  shutdown(c->sv[0], SHUT_WR);
  async_await(t, NULL);
  async_task_release(t);
  return NULL;
}

static void test_io_write_all_complete(void **state) {
  (void)state;
  async_loop *loop = new_loop();
  wap_ctx c = {.buf = malloc(BIG)};
  for (size_t i = 0; i < BIG; i++) c.buf[i] = (char)(i * 7);
  spair(c.sv);
  assert_int_equal(run_task(loop, wa_full_main, &c, NULL), 0);
  assert_int_equal(c.r, BIG);
  assert_int_equal(c.written, BIG);
  assert_int_equal(c.got, BIG);
  assert_true(c.ok);
  close(c.sv[0]);
  close(c.sv[1]);
  free(c.buf);
  free_loop(loop);
}

/* ---- Cancellation consumes nothing ------------------------------------- */

typedef struct {
  int sv[2];
  rd_ctx r;
  int cancelled;
  ssize_t after;
  char buf[8];
} rc_ctx;

static void *read_cancel_main(void *arg) {
  rc_ctx *c = arg;
  async_task *t;
  async_task_spawn(async_loop_current(), &t, reader, &c->r, NULL);
  async_sleep(0.01);
  c->cancelled = async_task_cancel(t);
  send(c->sv[1], "abc", 3, 0); /* comes after the cancellation */
  async_await(t, NULL);
  async_task_release(t);
  c->after = async_read(c->sv[0], c->buf, sizeof c->buf, 1);
  return NULL;
}

static void test_io_read_cancelled_takes_nothing(void **state) {
  (void)state;
  async_loop *loop = new_loop();
  rc_ctx c = {.r.timeout = ASYNC_NO_TIMEOUT};
  spair(c.sv);
  c.r.fd = c.sv[0];
  assert_int_equal(run_task(loop, read_cancel_main, &c, NULL), 0);
  assert_int_equal(c.cancelled, 1);
  assert_int_equal(c.r.got, -ECANCELED);
  assert_int_equal(c.after, 3);
  assert_memory_equal(c.buf, "abc", 3);
  close(c.sv[0]);
  close(c.sv[1]);
  free_loop(loop);
}

/* Woken by the fd, then cancelled before it runs: the read reports the
 * cancellation and takes nothing. B and A wait on fds that become ready
 * in one poll, B's first (lower numbers, written first), so B runs first
 * and cancels A while A is ready but has not run. */
typedef struct {
  int y[2], x[2];
  rd_ctx a;
  async_task *ta;
  int cancelled;
  ssize_t after;
  char buf[8];
} rwc_ctx;

static void *canceller(void *arg) {
  rwc_ctx *c = arg;
  char b[4];
  async_read(c->y[0], b, sizeof b, 5);
  c->cancelled = async_task_cancel(c->ta);
  return NULL;
}

static void *read_woken_cancel_main(void *arg) {
  rwc_ctx *c = arg;
  async_task *tb;
  async_task_spawn(async_loop_current(), &tb, canceller, c, NULL);
  async_task_spawn(async_loop_current(), &c->ta, reader, &c->a, NULL);
  async_sleep(0.01); /* both wait */
  send(c->y[1], "y", 1, 0);
  send(c->x[1], "abc", 3, 0);
  async_await(tb, NULL);
  async_await(c->ta, NULL);
  async_task_release(tb);
  async_task_release(c->ta);
  c->after = async_read(c->x[0], c->buf, sizeof c->buf, 1);
  return NULL;
}

static void test_io_read_woken_then_cancelled(void **state) {
  (void)state;
  async_loop *loop = new_loop();
  rwc_ctx c = {.a.timeout = 5};
  spair(c.y);
  spair(c.x);
  c.a.fd = c.x[0];
  assert_int_equal(run_task(loop, read_woken_cancel_main, &c, NULL), 0);
  assert_int_equal(c.cancelled, 1);
  assert_int_equal(c.a.got, -ECANCELED);
  assert_int_equal(c.after, 3);
  assert_memory_equal(c.buf, "abc", 3);
  close(c.x[0]);
  close(c.x[1]);
  close(c.y[0]);
  close(c.y[1]);
  free_loop(loop);
}

typedef struct {
  int lfd;
  int port;
  int acc;
  int cli;
  int second;
} ac_ctx;

static void *acceptor(void *arg) {
  ac_ctx *c = arg;
  c->acc = async_accept(c->lfd, NULL, NULL, ASYNC_NO_TIMEOUT);
  return NULL;
}

static void *acceptor_cancelled(void *arg) {
  ac_ctx *c = arg;
  async_task_cancel(async_task_current());
  c->acc = async_accept(c->lfd, NULL, NULL, ASYNC_NO_TIMEOUT);
  return NULL;
}

static void *accept_cancel_main(void *arg) {
  ac_ctx *c = arg;
  async_task *t;
  /* The connection is pending when the accept is made, and so is the
   * cancellation: the accept must leave the connection alone. */
  c->cli = async_tcp_connect("127.0.0.1", c->port, 5);
  async_task_spawn(async_loop_current(), &t, acceptor_cancelled, c, NULL);
  async_await(t, NULL);
  async_task_release(t);
  c->second = async_accept(c->lfd, NULL, NULL, 1);
  return NULL;
}

static void test_io_accept_cancelled_leaves_connection(void **state) {
  (void)state;
  async_loop *loop = new_loop();
  ac_ctx c = {0};
  c.lfd = async_tcp_listen("127.0.0.1", 0, 8, 0);
  assert_true(c.lfd >= 0);
  c.port = async_socket_port(c.lfd);
  assert_true(c.port > 0);
  assert_int_equal(run_task(loop, accept_cancel_main, &c, NULL), 0);
  assert_true(c.cli >= 0);
  assert_int_equal(c.acc, -ECANCELED);
  assert_true(c.second >= 0);
  /* accepted fds are non-blocking and close-on-exec */
  assert_true(fcntl(c.second, F_GETFL) & O_NONBLOCK);
  assert_true(fcntl(c.second, F_GETFD) & FD_CLOEXEC);
  close(c.second);
  close(c.cli);
  close(c.lfd);
  free_loop(loop);
}

/* An accept waiting, then cancelled: the connection that comes after is
 * for the next accept. */
static void *accept_cancel_wait_main(void *arg) {
  ac_ctx *c = arg;
  async_task *t;
  async_task_spawn(async_loop_current(), &t, acceptor, c, NULL);
  async_sleep(0.01);
  async_task_cancel(t);
  c->cli = async_tcp_connect("127.0.0.1", c->port, 5);
  async_await(t, NULL);
  async_task_release(t);
  c->second = async_accept(c->lfd, NULL, NULL, 1);
  return NULL;
}

static void test_io_accept_cancelled_while_waiting(void **state) {
  (void)state;
  async_loop *loop = new_loop();
  ac_ctx c = {0};
  c.lfd = async_tcp_listen("127.0.0.1", 0, 8, 0);
  c.port = async_socket_port(c.lfd);
  assert_int_equal(run_task(loop, accept_cancel_wait_main, &c, NULL), 0);
  assert_int_equal(c.acc, -ECANCELED);
  assert_true(c.cli >= 0);
  assert_true(c.second >= 0);
  close(c.second);
  close(c.cli);
  close(c.lfd);
  free_loop(loop);
}

/* ---- async_fd_close ---------------------------------------------------- */

typedef struct {
  int sv[2];
  rd_ctx a, b;
  int closed;
  int reused[2];
  ssize_t late;
} fc_ctx;

static void *fd_close_main(void *arg) {
  fc_ctx *c = arg;
  async_task *ta, *tb;
  async_task_spawn(async_loop_current(), &ta, reader, &c->a, NULL);
  async_task_spawn(async_loop_current(), &tb, reader, &c->b, NULL);
  async_sleep(0.01);
  c->closed = async_fd_close(c->sv[0]);
  /* The number comes back at once, for a socket with data: no waiter of
   * the old fd may see it. */
  spair(c->reused);
  send(c->reused[1], "zz", 2, 0);
  async_await(ta, NULL);
  async_await(tb, NULL);
  async_task_release(ta);
  async_task_release(tb);
  char b[4];
  c->late = async_read(c->reused[0], b, sizeof b, 1);
  return NULL;
}

static void test_io_fd_close_wakes_waiters(void **state) {
  (void)state;
  async_loop *loop = new_loop();
  fc_ctx c = {.a.timeout = 5, .b.timeout = 5};
  spair(c.sv);
  c.a.fd = c.b.fd = c.sv[0];
  assert_int_equal(run_task(loop, fd_close_main, &c, NULL), 0);
  assert_int_equal(c.closed, 0);
  assert_int_equal(c.a.got, -EBADF);
  assert_int_equal(c.b.got, -EBADF);
  assert_int_equal(c.reused[0], c.sv[0]);
  assert_int_equal(c.late, 2); /* the bytes were left for their reader */
  assert_int_equal(async_fd_close(-1), -EBADF);
  close(c.sv[1]);
  close(c.reused[0]);
  close(c.reused[1]);
  free_loop(loop);
}

/* ---- A peer that went away --------------------------------------------- */

typedef struct {
  int fd;
  ssize_t w1, w2, send;
} pipe_ctx;

static void *epipe_main(void *arg) {
  pipe_ctx *c = arg;
  c->w1 = async_write(c->fd, "x", 1, 1);
  c->send = async_send(c->fd, "x", 1, 0, 1);
  return NULL;
}

static void test_io_epipe_socket_no_sigpipe(void **state) {
  (void)state;
  /* SIGPIPE keeps its default action: raised, it would kill the test. */
  signal(SIGPIPE, SIG_DFL);
  async_loop *loop = new_loop();
  int sv[2];
  spair(sv);
  close(sv[1]);
  pipe_ctx c = {.fd = sv[0]};
  assert_int_equal(run_task(loop, epipe_main, &c, NULL), 0);
  assert_int_equal(c.w1, -EPIPE);
  assert_int_equal(c.send, -EPIPE);
  close(sv[0]);
  free_loop(loop);
}

static void test_io_epipe_pipe(void **state) {
  (void)state;
  /* SIGPIPE keeps its default action: raised, it would kill the test. */
  signal(SIGPIPE, SIG_DFL);
  async_loop *loop = new_loop();
  int p[2];
  assert_int_equal(pipe2(p, O_NONBLOCK | O_CLOEXEC), 0);
  close(p[0]);
  pipe_ctx c = {.fd = p[1]};
  assert_int_equal(run_task(loop, epipe_main, &c, NULL), 0);
  assert_int_equal(c.w1, -EPIPE);
  assert_int_equal(c.send, -ENOTSOCK);
  /* Nothing left pending for the program either, and its mask as it was. */
  sigset_t pending, mask;
  sigemptyset(&pending);
  assert_int_equal(sigpending(&pending), 0);
  assert_false(sigismember(&pending, SIGPIPE));
  assert_int_equal(pthread_sigmask(SIG_BLOCK, NULL, &mask), 0);
  assert_false(sigismember(&mask, SIGPIPE));
  close(p[1]);
  free_loop(loop);
}

/* The program blocks SIGPIPE itself: the write's own SIGPIPE is taken
 * back, one the program had pending already is left to it, and the mask
 * stays blocked. */
static void test_io_epipe_pipe_sigpipe_blocked(void **state) {
  (void)state;
  signal(SIGPIPE, SIG_DFL);
  sigset_t pipe_set, old, pending, mask;
  sigemptyset(&pipe_set);
  sigaddset(&pipe_set, SIGPIPE);
  assert_int_equal(pthread_sigmask(SIG_BLOCK, &pipe_set, &old), 0);
  async_loop *loop = new_loop();
  for (int had = 0; had < 2; had++) {
    if (had) assert_int_equal(pthread_kill(pthread_self(), SIGPIPE), 0);
    int p[2];
    assert_int_equal(pipe2(p, O_NONBLOCK | O_CLOEXEC), 0);
    close(p[0]);
    pipe_ctx c = {.fd = p[1]};
    assert_int_equal(run_task(loop, epipe_main, &c, NULL), 0);
    assert_int_equal(c.w1, -EPIPE);
    close(p[1]);
    sigemptyset(&pending);
    assert_int_equal(sigpending(&pending), 0);
    assert_int_equal(sigismember(&pending, SIGPIPE), had);
    assert_int_equal(pthread_sigmask(SIG_BLOCK, NULL, &mask), 0);
    assert_true(sigismember(&mask, SIGPIPE));
  }
  const struct timespec zero = {0, 0};
  assert_int_equal(sigtimedwait(&pipe_set, NULL, &zero), SIGPIPE);
  free_loop(loop);
  assert_int_equal(pthread_sigmask(SIG_SETMASK, &old, NULL), 0);
}

/* A pipe read that waits, and a write to it. */
static void *pipe_main(void *arg) {
  int *p = arg;
  rd_ctx r = {.fd = p[0], .timeout = 5};
  async_task *t;
  async_task_spawn(async_loop_current(), &t, reader, &r, NULL);
  async_sleep(0.01);
  ssize_t w = async_write(p[1], "pipe", 4, 1);
  async_await(t, NULL);
  async_task_release(t);
  return IPTR(w == 4 && r.got == 4 && memcmp(r.buf, "pipe", 4) == 0);
}

static void test_io_pipe_read_write(void **state) {
  (void)state;
  async_loop *loop = new_loop();
  int p[2];
  assert_int_equal(pipe(p), 0);
  assert_int_equal(async_fd_nonblock(p[0]), 0);
  assert_int_equal(async_fd_nonblock(p[1]), 0);
  void *ok;
  assert_int_equal(run_task(loop, pipe_main, p, &ok), 0);
  assert_true(PTRI(ok));
  close(p[0]);
  close(p[1]);
  assert_int_equal(async_fd_nonblock(p[0]), -EBADF);
  free_loop(loop);
}

/* ---- recv and send ----------------------------------------------------- */

static void *recv_main(void *arg) {
  int *sv = arg;
  char b[8] = {0};
  int ok = async_send(sv[1], "peek", 4, 0, 1) == 4;
  ok &= async_recv(sv[0], b, sizeof b, MSG_PEEK, 1) == 4;
  ok &= async_recv(sv[0], b, sizeof b, 0, 1) == 4;
  ok &= memcmp(b, "peek", 4) == 0;
  ok &= async_recv(sv[0], b, sizeof b, 0, 0.01) == -ETIMEDOUT;
  return IPTR(ok);
}

static void test_io_recv_send(void **state) {
  (void)state;
  async_loop *loop = new_loop();
  int sv[2];
  spair(sv);
  void *ok;
  assert_int_equal(run_task(loop, recv_main, sv, &ok), 0);
  assert_true(PTRI(ok));
  close(sv[0]);
  close(sv[1]);
  free_loop(loop);
}

/* ---- accept and EMFILE ------------------------------------------------- */

static void *emfile_main(void *arg) {
  int lfd = *(int *)arg;
  int port = async_socket_port(lfd);
  int cli = async_tcp_connect("127.0.0.1", port, 5);
  if (cli < 0) return IPTR(10);
  struct rlimit rl;
  getrlimit(RLIMIT_NOFILE, &rl);
  struct rlimit low = rl;
  low.rlim_cur = (rlim_t)cli + 1; /* no fd above the client's */
  if (setrlimit(RLIMIT_NOFILE, &low)) return IPTR(11);
  int a = async_accept(lfd, NULL, NULL, 1);
  setrlimit(RLIMIT_NOFILE, &rl);
  if (a != -EMFILE) return IPTR(12);
  /* Valgrind keeps the limit to itself: the kernel accepts, and valgrind
   * closes the new fd and says EMFILE. Then the connection is gone, which
   * only the real limit can show to be kept. */
  if (RUNNING_ON_VALGRIND) {
    close(cli);
    return IPTR(0);
  }
  /* The connection stayed pending for the next accept. */
  a = async_accept(lfd, NULL, NULL, 1);
  if (a < 0) return IPTR(13);
  if (async_write(cli, "k", 1, 1) != 1) return IPTR(14);
  char b;
  if (async_read(a, &b, 1, 1) != 1 || b != 'k') return IPTR(15);
  close(a);
  close(cli);
  return IPTR(0);
}

static void test_io_accept_emfile(void **state) {
  (void)state;
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    async_loop *loop = NULL;
    if (async_loop_new(&loop, NULL)) _exit(2);
    int lfd = async_tcp_listen("127.0.0.1", 0, 8, 0);
    if (lfd < 0) _exit(3);
    async_task *t;
    void *res = IPTR(1);
    if (async_task_spawn(loop, &t, emfile_main, &lfd, NULL)) _exit(4);
    if (async_loop_run_until_complete(loop, t, &res)) _exit(5);
    async_task_release(t);
    close(lfd);
    async_loop_free(loop);
    _exit(PTRI(res));
  }
  int status;
  assert_int_equal(waitpid(pid, &status, 0), pid);
  assert_true(WIFEXITED(status));
  assert_int_equal(WEXITSTATUS(status), 0);
}

/* ---- sendfile ---------------------------------------------------------- */

#define FSIZE (3 * 1024 * 1024 + 123)

static int make_file(void) {
  char path[] = "/tmp/iosock-sendfile-XXXXXX";
  int fd = mkstemp(path);
  assert_true(fd >= 0);
  unlink(path);
  char *b = malloc(FSIZE);
  for (size_t i = 0; i < FSIZE; i++) b[i] = (char)(i * 7);
  assert_int_equal(write(fd, b, FSIZE), FSIZE);
  free(b);
  return fd;
}

typedef struct {
  int sv[2];
  int file;
  off_t off;
  size_t count;
  ssize_t r;
  size_t sent;
  wap_ctx rd;
  int use_pos;
} sf_ctx;

static void *sf_main(void *arg) {
  sf_ctx *c = arg;
  async_task *t;
  c->rd.sv[0] = c->sv[0];
  c->rd.sv[1] = c->sv[1];
  async_task_spawn(async_loop_current(), &t, drain_reader, &c->rd, NULL);
  c->r = async_sendfile(c->sv[0], c->file, c->use_pos ? NULL : &c->off,
                        c->count, &c->sent, 10);
  shutdown(c->sv[0], SHUT_WR);
  async_await(t, NULL);
  async_task_release(t);
  return NULL;
}

static void sendfile_case(int copy, int use_pos) {
  async_loop *loop = new_loop();
  sf_ctx c = {.file = make_file(), .use_pos = use_pos};
  spair(c.sv);
  if (use_pos) lseek(c.file, 0, SEEK_SET);
  async__sendfile_force_copy = copy;
  assert_int_equal(run_task(loop, sf_main, &c, NULL), 0);
  async__sendfile_force_copy = 0;
  assert_int_equal(c.r, FSIZE);
  assert_int_equal(c.sent, FSIZE);
  assert_int_equal(c.rd.got, FSIZE);
  assert_true(c.rd.ok);
  if (use_pos)
    assert_int_equal(lseek(c.file, 0, SEEK_CUR), FSIZE);
  else
    assert_int_equal(c.off, FSIZE);
  close(c.file);
  close(c.sv[0]);
  close(c.sv[1]);
  free_loop(loop);
}

static void test_io_sendfile_zero_copy(void **state) {
  (void)state;
  sendfile_case(0, 0);
  sendfile_case(0, 1);
}

static void test_io_sendfile_copy_fallback(void **state) {
  (void)state;
  sendfile_case(1, 0);
  sendfile_case(1, 1);
}

/* A peer that does not read: the timeout says how much went out, and the
 * offset moved by exactly that much, for both paths. */
static void *sf_timeout_main(void *arg) {
  sf_ctx *c = arg;
  c->r = async_sendfile(c->sv[0], c->file, c->use_pos ? NULL : &c->off, 0,
                        &c->sent, 0.05);
  return NULL;
}

static void test_io_sendfile_timeout(void **state) {
  (void)state;
  for (int copy = 0; copy < 2; copy++) {
    for (int use_pos = 0; use_pos < 2; use_pos++) {
      async_loop *loop = new_loop();
      sf_ctx c = {.file = make_file(), .use_pos = use_pos};
      spair(c.sv);
      lseek(c.file, 0, SEEK_SET);
      async__sendfile_force_copy = copy;
      assert_int_equal(run_task(loop, sf_timeout_main, &c, NULL), 0);
      async__sendfile_force_copy = 0;
      assert_int_equal(c.r, -ETIMEDOUT);
      assert_true(c.sent > 0 && c.sent < FSIZE);
      off_t pos = use_pos ? lseek(c.file, 0, SEEK_CUR) : c.off;
      assert_int_equal(pos, (off_t)c.sent);
      assert_int_equal(pending_bytes(c.sv[1]), (int)c.sent);
      close(c.file);
      close(c.sv[0]);
      close(c.sv[1]);
      free_loop(loop);
    }
  }
}

static void *sf_bad_main(void *arg) {
  int *sv = arg;
  off_t neg = -1;
  int ok = async_sendfile(sv[0], -1, NULL, 0, NULL, 1) == -EINVAL;
  ok &= async_sendfile(sv[0], 0, &neg, 0, NULL, 1) == -EINVAL;
  ok &= async_sendfile(-1, 0, NULL, 0, NULL, 1) == -EINVAL;
  ok &= async_sendfile(sv[0], 0, NULL, 0, NULL, NAN) == -EINVAL;
  return IPTR(ok);
}

static void test_io_sendfile_bad_input(void **state) {
  (void)state;
  async_loop *loop = new_loop();
  int sv[2];
  spair(sv);
  void *ok;
  assert_int_equal(run_task(loop, sf_bad_main, sv, &ok), 0);
  assert_true(PTRI(ok));
  close(sv[0]);
  close(sv[1]);
  free_loop(loop);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_io_read_waits_for_write),
      cmocka_unit_test(test_io_read_timeouts),
      cmocka_unit_test(test_io_every_call_times_out),
      cmocka_unit_test(test_io_write_all_timeout_says_written),
      cmocka_unit_test(test_io_write_all_cancelled_says_written),
      cmocka_unit_test(test_io_write_all_complete),
      cmocka_unit_test(test_io_read_cancelled_takes_nothing),
      cmocka_unit_test(test_io_read_woken_then_cancelled),
      cmocka_unit_test(test_io_accept_cancelled_leaves_connection),
      cmocka_unit_test(test_io_accept_cancelled_while_waiting),
      cmocka_unit_test(test_io_fd_close_wakes_waiters),
      cmocka_unit_test(test_io_epipe_socket_no_sigpipe),
      cmocka_unit_test(test_io_epipe_pipe),
      cmocka_unit_test(test_io_epipe_pipe_sigpipe_blocked),
      cmocka_unit_test(test_io_pipe_read_write),
      cmocka_unit_test(test_io_recv_send),
      cmocka_unit_test(test_io_accept_emfile),
      cmocka_unit_test(test_io_sendfile_zero_copy),
      cmocka_unit_test(test_io_sendfile_copy_fallback),
      cmocka_unit_test(test_io_sendfile_timeout),
      cmocka_unit_test(test_io_sendfile_bad_input),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
