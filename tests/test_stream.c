/* SPDX-License-Identifier: MIT */
/* Buffered streams (include/async/stream.h) over socketpairs, loopback TCP
 * and pipes: the reads, their limits, end of stream, timeouts and
 * cancellation that consume nothing; writing, drain's backpressure against
 * a peer that never reads, write EOF, close and wait_closed; the poller
 * registration a stream keeps from one wait to the next, and the read that
 * waits first after a short one. */
#include "helpers.h"

#include "core/core.h" /* white box: loop->counts */

#include <fcntl.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

static void spair(int sv[2]) {
  assert_int_equal(
      socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv),
      0);
}

static async_stream *open_stream(async_loop *loop, int fd, size_t limit) {
  async_stream_options o;
  async_stream_options_init(&o);
  if (limit) o.limit = limit;
  async_stream *s = NULL;
  assert_int_equal(async_stream_open(&s, loop, fd, &o), 0);
  return s;
}

/* Writes the pieces to fd, one per loop turn, then shuts it down. */
typedef struct {
  int fd;
  const char *const *pieces;
} feeder;

static void *feed(void *arg) {
  feeder *f = arg;
  for (int i = 0; f->pieces[i]; i++) {
    async_sleep(0.002);
    async_write_all(f->fd, f->pieces[i], strlen(f->pieces[i]), NULL, 5);
  }
  shutdown(f->fd, SHUT_WR);
  return NULL;
}

static async_task *spawn(async_fn fn, void *arg) {
  async_task *t = NULL;
  async_task_spawn(async_loop_current(), &t, fn, arg, NULL);
  return t;
}

static void join(async_task *t) {
  async_await(t, NULL);
  async_task_release(t);
}

/* ---- Reading ----------------------------------------------------------- */

typedef struct {
  async_stream *s;
  int fd;
  ssize_t r[12];
  char b[12][64];
} rd_ctx;

static void *reads_main(void *arg) {
  rd_ctx *c = arg;
  static const char *const pieces[] = {"hel", "lo\nwor", "ld\n12345",
                                       "678--END--tail", NULL};
  feeder f = {.fd = c->fd, .pieces = pieces};
  async_task *t = spawn(feed, &f);
  c->r[0] = async_stream_readline(c->s, c->b[0], 64, 5);
  c->r[1] = async_stream_readline(c->s, c->b[1], 64, 5);
  c->r[2] = async_stream_readexactly(c->s, c->b[2], 4, 5);
  c->r[3] = async_stream_readuntil(c->s, "--END--", 7, c->b[3], 64, 5);
  c->r[4] = async_stream_readexactly(c->s, c->b[4], 10, 5); /* "tail" */
  c->r[5] = async_stream_buffered(c->s);
  c->r[6] = async_stream_read(c->s, c->b[6], 64, 5);
  c->r[7] = async_stream_read(c->s, c->b[7], 64, 5);
  c->r[8] = async_stream_readline(c->s, c->b[8], 64, 5);
  c->r[9] = async_stream_readexactly(c->s, c->b[9], 1, 5);
  join(t);
  return NULL;
}

static void test_stream_reads(void **state) {
  (void)state;
  async_loop *loop = new_loop();
  int sv[2];
  spair(sv);
  rd_ctx c = {.s = open_stream(loop, sv[0], 0), .fd = sv[1]};
  assert_int_equal(run_task(loop, reads_main, &c, NULL), 0);
  assert_int_equal(c.r[0], 6);
  assert_memory_equal(c.b[0], "hello\n", 6);
  assert_int_equal(c.r[1], 6);
  assert_memory_equal(c.b[1], "world\n", 6);
  assert_int_equal(c.r[2], 4);
  assert_memory_equal(c.b[2], "1234", 4);
  assert_int_equal(c.r[3], 11);
  assert_memory_equal(c.b[3], "5678--END--", 11);
  assert_int_equal(c.r[4], -ENODATA); /* IncompleteReadError */
  assert_int_equal(c.r[5], 4);        /* the partial data was kept */
  assert_int_equal(c.r[6], 4);
  assert_memory_equal(c.b[6], "tail", 4);
  assert_int_equal(c.r[7], 0); /* end of stream */
  assert_int_equal(c.r[8], 0);
  assert_int_equal(c.r[9], -ENODATA);
  assert_int_equal(async_stream_free(c.s), 0);
  close(sv[1]);
  free_loop(loop);
}

/* readline returns an unterminated last line; readuntil keeps it. */
static void *eof_main(void *arg) {
  rd_ctx *c = arg;
  static const char *const pieces[] = {"a\nlast", NULL};
  feeder f = {.fd = c->fd, .pieces = pieces};
  async_task *t = spawn(feed, &f);
  join(t);
  c->r[0] = async_stream_readline(c->s, c->b[0], 64, 5);
  c->r[1] = async_stream_readuntil(c->s, "\n", 1, c->b[1], 64, 5);
  c->r[2] = async_stream_buffered(c->s);
  c->r[3] = async_stream_readline(c->s, c->b[3], 64, 5);
  c->r[4] = async_stream_readline(c->s, c->b[4], 64, 5);
  return NULL;
}

static void test_stream_end_of_stream(void **state) {
  (void)state;
  async_loop *loop = new_loop();
  int sv[2];
  spair(sv);
  rd_ctx c = {.s = open_stream(loop, sv[0], 0), .fd = sv[1]};
  assert_int_equal(run_task(loop, eof_main, &c, NULL), 0);
  assert_int_equal(c.r[0], 2);
  assert_int_equal(c.r[1], -ENODATA);
  assert_int_equal(c.r[2], 4);
  assert_int_equal(c.r[3], 4);
  assert_memory_equal(c.b[3], "last", 4);
  assert_int_equal(c.r[4], 0);
  async_stream_free(c.s);
  close(sv[1]);
  free_loop(loop);
}

/* A line longer than the limit: -EMSGSIZE, the data kept, readable. */
static void *limit_main(void *arg) {
  rd_ctx *c = arg;
  char big[300];
  memset(big, 'x', sizeof big);
  big[sizeof big - 1] = '\n';
  async_write_all(c->fd, big, sizeof big, NULL, 5);
  async_write_all(c->fd, "ok\n", 3, NULL, 5);
  char line[512];
  c->r[0] = async_stream_readline(c->s, line, sizeof line, 5);
  c->r[1] = async_stream_buffered(c->s);
  /* The caller's buffer is a limit too. */
  c->r[2] = async_stream_readline(c->s, line, 10, 5);
  /* Drain the long line by plain reads, then the next line reads. */
  size_t got = 0;
  while (got < sizeof big) {
    ssize_t r = async_stream_read(c->s, line, sizeof big - got, 5);
    if (r <= 0) break;
    got += (size_t)r;
  }
  c->r[3] = (ssize_t)got;
  c->r[4] = async_stream_readline(c->s, c->b[4], 64, 5);
  /* Unterminated past the limit: overrun before end of stream. */
  async_write_all(c->fd, big, 200, NULL, 5);
  c->r[5] = async_stream_readuntil(c->s, "\r\n", 2, line, sizeof line, 5);
  c->r[6] = async_stream_buffered(c->s);
  return NULL;
}

static void test_stream_line_over_limit(void **state) {
  (void)state;
  async_loop *loop = new_loop();
  int sv[2];
  spair(sv);
  rd_ctx c = {.s = open_stream(loop, sv[0], 100), .fd = sv[1]};
  assert_int_equal(run_task(loop, limit_main, &c, NULL), 0);
  assert_int_equal(c.r[0], -EMSGSIZE);
  assert_true(c.r[1] >= 100); /* kept, not consumed */
  assert_int_equal(c.r[2], -EMSGSIZE);
  assert_int_equal(c.r[3], 300);
  assert_int_equal(c.r[4], 3);
  assert_memory_equal(c.b[4], "ok\n", 3);
  assert_int_equal(c.r[5], -EMSGSIZE);
  /* Bounded: the reader stopped near the limit, not at all 200 bytes
   * necessarily, and never beyond one read past it. */
  assert_true(c.r[6] >= 100 && c.r[6] <= 200);
  async_stream_free(c.s);
  close(sv[1]);
  free_loop(loop);
}

/* A read that times out, and one cancelled while waiting, take nothing:
 * the partial line stays for the next read. */
static void *rdl(void *arg) {
  rd_ctx *c = arg;
  c->r[1] = async_stream_readline(c->s, c->b[1], 64, ASYNC_NO_TIMEOUT);
  return NULL;
}

static void *nothing_taken_main(void *arg) {
  rd_ctx *c = arg;
  async_write_all(c->fd, "par", 3, NULL, 5);
  c->r[0] = async_stream_readline(c->s, c->b[0], 64, 0.02);
  c->r[5] = async_stream_readexactly(c->s, c->b[5], 10, 0);
  async_task *t = spawn(rdl, c);
  async_sleep(0.01);
  c->r[6] = async_task_cancel(t);
  join(t);
  c->r[7] = async_stream_buffered(c->s);
  async_write_all(c->fd, "tial\n", 5, NULL, 5);
  c->r[2] = async_stream_readline(c->s, c->b[2], 64, 5);
  /* A second reader while one waits: -EBUSY. */
  t = spawn(rdl, c);
  async_sleep(0.01);
  c->r[3] = async_stream_read(c->s, c->b[3], 64, 1);
  async_stream_close(c->s); /* wakes the waiting reader */
  join(t);
  c->r[4] = async_stream_read(c->s, c->b[4], 64, 1);
  return NULL;
}

static void test_stream_timeout_cancel_take_nothing(void **state) {
  (void)state;
  async_loop *loop = new_loop();
  int sv[2];
  spair(sv);
  rd_ctx c = {.s = open_stream(loop, sv[0], 0), .fd = sv[1]};
  assert_int_equal(run_task(loop, nothing_taken_main, &c, NULL), 0);
  assert_int_equal(c.r[0], -ETIMEDOUT);
  assert_int_equal(c.r[5], -ETIMEDOUT);
  assert_int_equal(c.r[6], 1);
  assert_int_equal(c.r[7], 3);
  assert_int_equal(c.r[2], 8);
  assert_memory_equal(c.b[2], "partial\n", 8);
  assert_int_equal(c.r[3], -EBUSY);
  assert_int_equal(c.r[1], -EBADF); /* the second rdl, woken by close */
  assert_int_equal(c.r[4], -EBADF);
  assert_int_equal(async_stream_free(c.s), 0);
  close(sv[1]);
  free_loop(loop);
}

/* ---- Writing ----------------------------------------------------------- */

#define CHUNK (16 * 1024)

typedef struct {
  async_stream *s;
  int peer;
  ssize_t max_buffered;
  int drain_err;
  int writes;
  int err_after_close;
} bp_ctx;

/* A peer that never reads: write and drain, and the buffer stays bounded
 * by high water plus one write; drain then times out. */
static void *backpressure_main(void *arg) {
  bp_ctx *c = arg;
  static char chunk[CHUNK];
  for (int i = 0; i < 1000; i++) {
    if (async_stream_write(c->s, chunk, sizeof chunk)) break;
    c->writes++;
    ssize_t b = async_stream_write_buffered(c->s);
    if (b > c->max_buffered) c->max_buffered = b;
    if ((c->drain_err = async_stream_drain(c->s, 0.05))) break;
  }
  /* The peer goes away: writing fails with EPIPE or ECONNRESET, later
   * calls say so too, and no SIGPIPE is raised. */
  close(c->peer);
  int e = 0;
  for (int i = 0; i < 100 && !e; i++) {
    e = async_stream_write(c->s, chunk, sizeof chunk);
    if (!e) e = async_stream_drain(c->s, 1);
  }
  c->err_after_close = e;
  return NULL;
}

static void test_stream_backpressure(void **state) {
  (void)state;
  signal(SIGPIPE, SIG_DFL);
  async_loop *loop = new_loop();
  int sv[2];
  spair(sv);
  bp_ctx c = {.s = open_stream(loop, sv[0], 0), .peer = sv[1]};
  assert_int_equal(run_task(loop, backpressure_main, &c, NULL), 0);
  assert_int_equal(c.drain_err, -ETIMEDOUT);
  assert_true(c.writes > 0 && c.writes < 1000);
  assert_true(c.max_buffered <= 64 * 1024 + CHUNK);
  assert_true(c.max_buffered > 64 * 1024);
  assert_true(c.err_after_close == -EPIPE || c.err_after_close == -ECONNRESET);
  assert_int_equal(async_stream_write(c.s, "x", 1), c.err_after_close);
  assert_int_equal(async_stream_free(c.s), 0);
  free_loop(loop);
}

/* wait_closed against a peer that never reads: it times out with the data
 * still queued, and free then drops it and closes the fd. */
static void *wait_closed_main(void *arg) {
  bp_ctx *c = arg;
  static char chunk[256 * 1024];
  int e = async_stream_write(c->s, chunk, sizeof chunk);
  e |= async_stream_close(c->s);
  c->drain_err = async_stream_wait_closed(c->s, 0.02);
  c->max_buffered = async_stream_write_buffered(c->s);
  c->writes = e;
  return NULL;
}

static void test_stream_wait_closed_timeout(void **state) {
  (void)state;
  async_loop *loop = new_loop();
  int sv[2];
  spair(sv);
  bp_ctx c = {.s = open_stream(loop, sv[0], 0), .peer = sv[1]};
  assert_int_equal(run_task(loop, wait_closed_main, &c, NULL), 0);
  assert_int_equal(c.writes, 0);
  assert_int_equal(c.drain_err, -ETIMEDOUT);
  assert_true(c.max_buffered > 0);
  assert_int_equal(async_stream_fd(c.s), sv[0]); /* still open */
  assert_int_equal(async_stream_free(c.s), 0);
  assert_int_equal(fcntl(sv[0], F_GETFD), -1);
  close(sv[1]);
  free_loop(loop);
}

/* async_fd_close on the stream's fd while it waits (a reader, queued
 * output): the waits fail with -EBADF and the stream lets the number go,
 * so that freeing it closes nothing of whoever has the number next. */
typedef struct {
  async_stream *s;
  ssize_t r;
  int w, d, fd_after, reused;
} fdc_ctx;

static void *fdc_reader(void *arg) {
  fdc_ctx *c = arg;
  char b[8];
  c->r = async_stream_read(c->s, b, sizeof b, 5);
  return NULL;
}

static void *fd_closed_main(void *arg) {
  fdc_ctx *c = arg;
  static char chunk[512 * 1024];
  async_task *t = spawn(fdc_reader, c);
  c->w = async_stream_write(c->s, chunk, sizeof chunk); /* queues */
  async_sleep(0.01);
  int fd = async_stream_fd(c->s);
  async_fd_close(fd);
  join(t);
  c->d = async_stream_drain(c->s, 1);
  c->fd_after = async_stream_fd(c->s);
  int p[2];
  if (pipe(p) == 0) { /* takes the number back */
    c->reused = p[0] == fd || p[1] == fd;
    async_stream_free(c->s);
    c->reused &= fcntl(fd, F_GETFD) != -1; /* free left it alone */
    close(p[0]);
    close(p[1]);
  }
  return NULL;
}

static void test_stream_fd_closed_under_it(void **state) {
  (void)state;
  async_loop *loop = new_loop();
  int sv[2];
  spair(sv);
  fdc_ctx c = {.s = open_stream(loop, sv[0], 0)};
  assert_int_equal(run_task(loop, fd_closed_main, &c, NULL), 0);
  assert_int_equal(c.w, 0);
  assert_int_equal(c.r, -EBADF);
  assert_int_equal(c.d, -EBADF);
  assert_int_equal(c.fd_after, -EBADF);
  assert_true(c.reused);
  close(sv[1]);
  free_loop(loop);
}

/* Everything written reaches a slow reader, in order; write EOF reaches it
 * after the data; the writer can still read the reply (half-close). */
typedef struct {
  async_stream *s;
  int peer;
  size_t got;
  int ok;
  ssize_t reply;
  char rb[8];
  int shut;
} wr_ctx;

#define TOTAL (2 * 1024 * 1024)

static void *slow_reader(void *arg) {
  wr_ctx *c = arg;
  char b[4096];
  c->ok = 1;
  for (;;) {
    ssize_t r = async_read(c->peer, b, sizeof b, 5);
    if (r <= 0) break;
    for (ssize_t i = 0; i < r; i++)
      if (b[i] != (char)((c->got + (size_t)i) % 251)) c->ok = 0;
    c->got += (size_t)r;
  }
  async_write(c->peer, "bye", 3, 5);
  return NULL;
}

static void *write_main(void *arg) {
  wr_ctx *c = arg;
  async_task *t = spawn(slow_reader, c);
  static char b[TOTAL];
  for (size_t i = 0; i < TOTAL; i++) b[i] = (char)(i % 251);
  for (size_t off = 0; off < TOTAL; off += 10000) {
    size_t n = TOTAL - off < 10000 ? TOTAL - off : 10000;
    async_stream_write(c->s, b + off, n);
    async_stream_drain(c->s, 5);
  }
  c->shut = async_stream_write_eof(c->s);
  async_stream_drain(c->s, 5);
  c->reply = async_stream_read(c->s, c->rb, sizeof c->rb, 5);
  join(t);
  return NULL;
}

static void test_stream_write_eof_half_close(void **state) {
  (void)state;
  async_loop *loop = new_loop();
  int sv[2];
  spair(sv);
  wr_ctx c = {.s = open_stream(loop, sv[0], 0), .peer = sv[1]};
  assert_int_equal(run_task(loop, write_main, &c, NULL), 0);
  assert_int_equal(c.shut, 0);
  assert_int_equal(c.got, TOTAL);
  assert_true(c.ok);
  assert_int_equal(c.reply, 3);
  assert_memory_equal(c.rb, "bye", 3);
  assert_int_equal(async_stream_write(c.s, "x", 1), -ESHUTDOWN);
  async_stream_free(c.s);
  close(sv[1]);
  free_loop(loop);
}

/* close with data buffered: wait_closed sends it all, then closes. */
static void *close_main(void *arg) {
  wr_ctx *c = arg;
  static char b[TOTAL];
  for (size_t i = 0; i < TOTAL; i++) b[i] = (char)(i % 251);
  async_task *t = spawn(slow_reader, c);
  int e = async_stream_write(c->s, b, TOTAL);
  ssize_t buffered = async_stream_write_buffered(c->s);
  e |= async_stream_wait_closed(c->s, 5) != -EINVAL; /* not closed yet */
  e |= async_stream_close(c->s);
  e |= async_stream_close(c->s); /* twice: nothing */
  e |= async_stream_wait_closed(c->s, 5);
  join(t);
  c->shut = !e && buffered > 0 && async_stream_fd(c->s) == -EBADF;
  return NULL;
}

static void test_stream_close_flushes(void **state) {
  (void)state;
  async_loop *loop = new_loop();
  int sv[2];
  spair(sv);
  wr_ctx c = {.s = open_stream(loop, sv[0], 0), .peer = sv[1]};
  assert_int_equal(run_task(loop, close_main, &c, NULL), 0);
  assert_true(c.shut);
  assert_int_equal(c.got, TOTAL);
  assert_true(c.ok);
  /* The stream closed its fd: the number is free again. */
  assert_int_equal(fcntl(sv[0], F_GETFD), -1);
  async_stream_free(c.s);
  close(sv[1]);
  free_loop(loop);
}

/* ---- Pipes, TCP -------------------------------------------------------- */

typedef struct {
  async_stream *r, *w;
  ssize_t n[4];
  char b[4][32];
} pipe_ctx;

static void *pipe_main(void *arg) {
  pipe_ctx *c = arg;
  async_stream_write(c->w, "one\ntwo\n", 8);
  async_stream_write_eof(c->w); /* a pipe: closed once flushed */
  async_stream_drain(c->w, 5);
  c->n[0] = async_stream_readline(c->r, c->b[0], 32, 5);
  c->n[1] = async_stream_readline(c->r, c->b[1], 32, 5);
  c->n[2] = async_stream_readline(c->r, c->b[2], 32, 5);
  c->n[3] = async_stream_fd(c->w);
  return NULL;
}

static void test_stream_pipe(void **state) {
  (void)state;
  async_loop *loop = new_loop();
  int p[2];
  assert_int_equal(pipe(p), 0);
  pipe_ctx c = {.r = open_stream(loop, p[0], 0),
                .w = open_stream(loop, p[1], 0)};
  assert_true(fcntl(p[0], F_GETFL) & O_NONBLOCK);
  assert_int_equal(run_task(loop, pipe_main, &c, NULL), 0);
  assert_int_equal(c.n[0], 4);
  assert_int_equal(c.n[1], 4);
  assert_memory_equal(c.b[1], "two\n", 4);
  assert_int_equal(c.n[2], 0);
  assert_int_equal(c.n[3], -EBADF);
  async_stream_free(c.r);
  async_stream_free(c.w);
  free_loop(loop);
}

typedef struct {
  int lfd;
  int ok;
} echo_ctx;

static void *echo_server(void *arg) {
  echo_ctx *c = arg;
  int fd = async_accept(c->lfd, NULL, NULL, 5);
  async_stream *s = NULL;
  if (fd < 0 || async_stream_open(&s, async_loop_current(), fd, NULL))
    return NULL;
  char line[128];
  ssize_t n;
  while ((n = async_stream_readline(s, line, sizeof line, 5)) > 0) {
    async_stream_write(s, line, (size_t)n);
    async_stream_drain(s, 5);
  }
  async_stream_close(s);
  async_stream_wait_closed(s, 5);
  async_stream_free(s);
  return NULL;
}

static void *echo_main(void *arg) {
  echo_ctx *c = arg;
  async_task *t = spawn(echo_server, c);
  int fd = async_tcp_connect("127.0.0.1", async_socket_port(c->lfd), 5);
  async_stream *s = NULL;
  if (fd < 0 || async_stream_open(&s, async_loop_current(), fd, NULL))
    return NULL;
  int ok = 1;
  for (int i = 0; i < 100; i++) {
    char out[32], in[32];
    int len = snprintf(out, sizeof out, "line %d\n", i);
    async_stream_write(s, out, (size_t)len);
    ok &= async_stream_readline(s, in, sizeof in, 5) == len &&
          memcmp(in, out, (size_t)len) == 0;
  }
  async_stream_write_eof(s);
  char b[4];
  ok &= async_stream_read(s, b, sizeof b, 5) == 0; /* the server closed */
  async_stream_free(s);
  join(t);
  c->ok = ok;
  return NULL;
}

static void test_stream_tcp_echo(void **state) {
  (void)state;
  async_loop *loop = new_loop();
  echo_ctx c = {.lfd = async_tcp_listen("127.0.0.1", 0, 0, 0)};
  assert_int_equal(run_task(loop, echo_main, &c, NULL), 0);
  assert_true(c.ok);
  close(c.lfd);
  free_loop(loop);
}

/* ---- The registration kept, the read that waits first ---------------- */

/* A peer's end and what it writes late, a stream and the outcomes of its
 * reads. */
typedef struct {
  async_stream *s;
  int peer;
  ssize_t r[8];
  char b[8][16];
} sr_ctx;

static void *late_writer(void *arg) {
  sr_ctx *c = arg;
  async_sleep(0.01);
  if (write(c->peer, "late", 4) != 4) return async_fail(-EIO);
  return NULL;
}

/* A stream holds its fd: the poller keeps the registration from one wait
 * to the next, and a read that returned less than it asked for makes the
 * next one wait before reading. So a ping-pong costs no ctl and meets no
 * EAGAIN once both sides are registered, on every backend. */
typedef struct {
  async_stream *a, *b;
  int rounds;
  int ok;
  uint64_t ctl, eagain; /* over the rounds after the first */
} pp_ctx;

static void *pong(void *arg) {
  pp_ctx *c = arg;
  char buf[256];
  for (;;) {
    ssize_t n = async_stream_read(c->b, buf, sizeof buf, 5);
    if (n <= 0) break;
    if (async_stream_write(c->b, buf, (size_t)n)) break;
  }
  return NULL;
}

static void *ping_main(void *arg) {
  pp_ctx *c = arg;
  async_loop *loop = async_loop_current();
  async_task *t = spawn(pong, c);
  c->ok = 1;
  for (int i = 0; i < c->rounds; i++) {
    if (i == 1) {
      c->ctl = loop->counts.ctl;
      c->eagain = loop->counts.eagain;
    }
    char out[200], in[256];
    size_t len = 1 + (size_t)(i * 37) % sizeof out;
    for (size_t j = 0; j < len; j++) out[j] = (char)(i + (int)j);
    if (async_stream_write(c->a, out, len)) c->ok = 0;
    size_t got = 0;
    while (got < len) {
      ssize_t n = async_stream_read(c->a, in + got, sizeof in - got, 5);
      if (n <= 0) break;
      got += (size_t)n;
    }
    if (got != len || memcmp(in, out, len) != 0) c->ok = 0;
  }
  c->ctl = loop->counts.ctl - c->ctl;
  c->eagain = loop->counts.eagain - c->eagain;
  async_stream_write_eof(c->a);
  join(t);
  return NULL;
}

static void test_stream_wait_costs_no_poller_call(void **state) {
  (void)state;
  async_loop *loop = new_loop();
  int sv[2];
  spair(sv);
  pp_ctx c = {.a = open_stream(loop, sv[0], 0),
              .b = open_stream(loop, sv[1], 0),
              .rounds = 300};
  assert_int_equal(run_task(loop, ping_main, &c, NULL), 0);
  assert_true(c.ok);
  /* Before streams held their fds every wait told the backend (one call
   * per round and side), and every read that found nothing said EAGAIN
   * first. A few are allowed for whatever the first rounds left. */
  if (c.ctl > 4 || c.eagain > 4)
    fprintf(stderr, "ctl %llu, eagain %llu over %d rounds\n",
            (unsigned long long)c.ctl, (unsigned long long)c.eagain, c.rounds);
  assert_true(c.ctl <= 4);
  assert_true(c.eagain <= 4);
  async_stream_free(c.a);
  async_stream_free(c.b);
  free_loop(loop);
}

/* Datagrams: a read returns one however many wait, so a short read does
 * not make the next one wait first: the second datagram is read at once,
 * without registering the fd. */
static void *dgram_main(void *arg) {
  rd_ctx *c = arg;
  async_loop *loop = async_loop_current();
  uint64_t ctl = loop->counts.ctl;
  c->r[0] = async_stream_read(c->s, c->b[0], 64, 5);
  c->r[1] = async_stream_read(c->s, c->b[1], 64, 5);
  c->r[2] = (ssize_t)(loop->counts.ctl - ctl);
  return NULL;
}

static void test_stream_datagrams_read_at_once(void **state) {
  (void)state;
  async_loop *loop = new_loop();
  int sv[2];
  assert_int_equal(
      socketpair(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), 0);
  assert_int_equal(send(sv[1], "one", 3, 0), 3);
  assert_int_equal(send(sv[1], "two!", 4, 0), 4);
  rd_ctx c = {.s = open_stream(loop, sv[0], 0)};
  assert_int_equal(run_task(loop, dgram_main, &c, NULL), 0);
  assert_int_equal(c.r[0], 3);
  assert_memory_equal(c.b[0], "one", 3);
  assert_int_equal(c.r[1], 4);
  assert_memory_equal(c.b[1], "two!", 4);
  assert_int_equal(c.r[2], 0); /* no wait, so no registration */
  async_stream_free(c.s);
  close(sv[1]);
  free_loop(loop);
}

/* What a short read is followed by: end of stream, data that came while
 * nobody waited (the loop polled meanwhile, saw the fd readable with no
 * reader, and dropped its interest), a read with no time to wait. */
static void *short_main(void *arg) {
  sr_ctx *c = arg;
  if (write(c->peer, "ab", 2) != 2) return NULL;
  c->r[0] = async_stream_read(c->s, c->b[0], 16, 5); /* "ab": short */
  async_task *t = spawn(late_writer, c);
  async_sleep(0.05); /* the data comes while nobody waits */
  join(t);
  c->r[1] = async_stream_read(c->s, c->b[1], 16, 5); /* "late" */
  if (write(c->peer, "now", 3) != 3) return NULL;
  c->r[2] = async_stream_read(c->s, c->b[2], 2, 5);  /* "no": not short */
  c->r[3] = async_stream_read(c->s, c->b[3], 16, 0); /* "w": no wait */
  c->r[4] = async_stream_read(c->s, c->b[4], 16, 0); /* nothing now */
  if (write(c->peer, "end", 3) != 3) return NULL;
  shutdown(c->peer, SHUT_WR);
  c->r[5] = async_stream_read(c->s, c->b[5], 16, 5); /* "end", short */
  c->r[6] = async_stream_read(c->s, c->b[6], 16, 5); /* end of stream */
  return NULL;
}

static void test_stream_after_a_short_read(void **state) {
  (void)state;
  async_loop *loop = new_loop();
  int sv[2];
  spair(sv);
  sr_ctx c = {.s = open_stream(loop, sv[0], 0), .peer = sv[1]};
  assert_int_equal(run_task(loop, short_main, &c, NULL), 0);
  assert_int_equal(c.r[0], 2);
  assert_int_equal(c.r[1], 4);
  assert_memory_equal(c.b[1], "late", 4);
  assert_int_equal(c.r[2], 2);
  assert_memory_equal(c.b[2], "no", 2);
  assert_int_equal(c.r[3], 1);
  assert_memory_equal(c.b[3], "w", 1);
  assert_int_equal(c.r[4], -ETIMEDOUT);
  assert_int_equal(c.r[5], 3);
  assert_memory_equal(c.b[5], "end", 3);
  assert_int_equal(c.r[6], 0);
  async_stream_free(c.s);
  close(sv[1]);
  free_loop(loop);
}

/* A read that waits first, after a short read, and times out before the
 * loop polls (another task keeps it busy, and the loop polls only now and
 * then while work is ready) still returns the data that was there when it
 * began, as a read tried first would have. Whether the timer or the poll
 * comes first varies from one read to the next; the data must come back
 * either way. */
typedef struct {
  async_stream *s;
  int peer;
  int stop;
  ssize_t r[2];
  char b[2][16];
} tb_ctx;

static void *busy(void *arg) {
  tb_ctx *c = arg;
  while (!c->stop) async_yield();
  return NULL;
}

static void *tiny_timeout_main(void *arg) {
  tb_ctx *c = arg;
  async_task *t = spawn(busy, c);
  async_yield(); /* busy runs: the loop has work ready from now on */
  c->r[0] = c->r[1] = 0;
  for (int i = 0; i < 500; i++) {
    /* Each read is short, so the next one waits first. */
    if (write(c->peer, "x", 1) != 1) break;
    ssize_t r = async_stream_read(c->s, c->b[0], 16, 5e-6);
    if (r == 1)
      c->r[0]++;
    else
      c->r[1] = r;
  }
  c->stop = 1;
  join(t);
  return NULL;
}

static void test_stream_tiny_timeout_after_a_short_read(void **state) {
  (void)state;
  async_loop *loop = new_loop();
  int sv[2];
  spair(sv);
  tb_ctx c = {.s = open_stream(loop, sv[0], 0), .peer = sv[1]};
  assert_int_equal(run_task(loop, tiny_timeout_main, &c, NULL), 0);
  assert_int_equal(c.r[1], 0);
  assert_int_equal(c.r[0], 500);
  async_stream_free(c.s);
  close(sv[1]);
  free_loop(loop);
}

/* A reader parked after a short read (so without trying the read) is
 * woken with -EBADF when the fd is closed with async_fd_close, or when the
 * stream is closed. */
typedef struct {
  async_stream *s;
  int peer;
  int by_stream_close;
  ssize_t first, second;
} cw_ctx;

static void *cw_reader(void *arg) {
  cw_ctx *c = arg;
  char b[16];
  c->first = async_stream_read(c->s, b, sizeof b, 5);
  c->second = async_stream_read(c->s, b, sizeof b, 5);
  return NULL;
}

static void *cw_main(void *arg) {
  cw_ctx *c = arg;
  if (write(c->peer, "x", 1) != 1) return NULL;
  async_task *t = spawn(cw_reader, c);
  async_sleep(0.02); /* it has read "x" and waits */
  if (c->by_stream_close)
    async_stream_close(c->s);
  else
    async_fd_close(async_stream_fd(c->s));
  join(t);
  return NULL;
}

static void test_stream_close_wakes_a_reader_that_waits_first(void **state) {
  (void)state;
  for (int how = 0; how < 2; how++) {
    async_loop *loop = new_loop();
    int sv[2];
    spair(sv);
    cw_ctx c = {.s = open_stream(loop, sv[0], 0),
                .peer = sv[1],
                .by_stream_close = how};
    assert_int_equal(run_task(loop, cw_main, &c, NULL), 0);
    assert_int_equal(c.first, 1);
    assert_int_equal(c.second, -EBADF);
    async_stream_free(c.s);
    close(sv[1]);
    free_loop(loop);
  }
}

/* A stream closed with its fd readable and registered (data came that
 * nobody read): the next file to get the number starts clean, neither
 * readable before its data comes nor deaf when it does. */
typedef struct {
  async_stream *old;
  int old_peer;
  int fd;
  int reused;
  ssize_t r[4];
  char b[4][16];
} ru_ctx;

static void *reuse_main(void *arg) {
  ru_ctx *c = arg;
  async_loop *loop = async_loop_current();
  if (write(c->old_peer, "o", 1) != 1) return NULL;
  c->r[0] = async_stream_read(c->old, c->b[0], 16, 5); /* short */
  if (write(c->old_peer, "ld", 2) != 2) return NULL;   /* never read */
  async_stream_free(c->old);
  close(c->old_peer);
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv)) return NULL;
  c->reused = sv[0] == c->fd;
  async_stream *s = NULL;
  if (async_stream_open(&s, loop, sv[0], NULL)) return NULL;
  c->r[1] = async_stream_read(s, c->b[1], 16, 0.05); /* nothing yet */
  c->r[2] = async_fd_wait(sv[0], ASYNC_READABLE, 0.05);
  if (write(sv[1], "new", 3) != 3) return NULL;
  c->r[3] = async_stream_read(s, c->b[3], 16, 5);
  async_stream_free(s);
  close(sv[1]);
  return NULL;
}

static void test_stream_number_reused_starts_clean(void **state) {
  (void)state;
  async_loop *loop = new_loop();
  int sv[2];
  spair(sv);
  ru_ctx c = {
      .old = open_stream(loop, sv[0], 0), .old_peer = sv[1], .fd = sv[0]};
  assert_int_equal(run_task(loop, reuse_main, &c, NULL), 0);
  assert_int_equal(c.r[0], 1);
  assert_true(c.reused);
  assert_int_equal(c.r[1], -ETIMEDOUT);
  assert_int_equal(c.r[2], -ETIMEDOUT);
  assert_int_equal(c.r[3], 3);
  assert_memory_equal(c.b[3], "new", 3);
  free_loop(loop);
}

/* A number the loop watched for an earlier file, which was then closed
 * with close(2) while nobody waited (allowed), becomes a stream's: the
 * registration left from the old file is checked when the stream takes
 * the number, so the stream hears its own file. */
typedef struct {
  int fd;
  int reused;
  int waited;
  ssize_t r;
  char b[16];
} wb_ctx;

static void *watched_before_main(void *arg) {
  wb_ctx *c = arg;
  int p[2];
  char ch;
  if (pipe(p)) return NULL;
  c->fd = p[0];
  if (write(p[1], "x", 1) != 1) return NULL;
  c->waited = async_fd_wait(p[0], ASYNC_READABLE, 5);
  /* Read at once, so that no poll sees the pipe again and drops the
   * interest: the loop still has it registered. */
  if (read(p[0], &ch, 1) != 1) return NULL;
  close(p[0]);
  close(p[1]);
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv)) return NULL;
  c->reused = sv[0] == c->fd;
  async_stream *s = NULL;
  if (async_stream_open(&s, async_loop_current(), sv[0], NULL)) return NULL;
  sr_ctx w = {.peer = sv[1]};
  async_task *t = spawn(late_writer, &w);
  c->r = async_stream_read(s, c->b, sizeof c->b, 2);
  join(t);
  async_stream_free(s);
  close(sv[1]);
  return NULL;
}

static void test_stream_on_a_number_watched_before(void **state) {
  (void)state;
  async_loop *loop = new_loop();
  wb_ctx c = {0};
  assert_int_equal(run_task(loop, watched_before_main, &c, NULL), 0);
  assert_int_equal(c.waited, ASYNC_READABLE);
  assert_true(c.reused);
  assert_int_equal(c.r, 4);
  assert_memory_equal(c.b, "late", 4);
  free_loop(loop);
}

/* Woken by its fd, then cancelled before it runs: the stream read reports
 * the cancellation and takes nothing, also when it waited first after a
 * short read. B and A wait on streams that become ready in one poll, B's
 * first (registered first, written first), so B runs first and cancels A
 * while A is ready but has not run. */
typedef struct {
  async_stream *x, *y;
  int xp, yp;
  async_task *ta;
  int cancelled;
  ssize_t first, got, after;
  char buf[16];
} wc_ctx;

static void *wc_canceller(void *arg) {
  wc_ctx *c = arg;
  char b[4];
  async_stream_read(c->y, b, sizeof b, 5);
  c->cancelled = async_task_cancel(c->ta);
  return NULL;
}

static void *wc_reader(void *arg) {
  wc_ctx *c = arg;
  char b[16];
  c->first = async_stream_read(c->x, b, sizeof b, 5); /* "a": short */
  c->got = async_stream_read(c->x, b, sizeof b, 5);   /* waits first */
  return NULL;
}

static void *wc_main(void *arg) {
  wc_ctx *c = arg;
  if (write(c->xp, "a", 1) != 1) return NULL;
  async_task *tb = spawn(wc_canceller, c);
  async_sleep(0.01); /* B waits on y */
  c->ta = spawn(wc_reader, c);
  async_sleep(0.01); /* A has read "a" and waits on x */
  if (write(c->yp, "y", 1) != 1 || write(c->xp, "abc", 3) != 3) return NULL;
  join(tb);
  join(c->ta);
  c->after = async_stream_read(c->x, c->buf, sizeof c->buf, 1);
  return NULL;
}

static void test_stream_woken_then_cancelled_takes_nothing(void **state) {
  (void)state;
  async_loop *loop = new_loop();
  int x[2], y[2];
  spair(y);
  spair(x);
  wc_ctx c = {.x = open_stream(loop, x[0], 0),
              .y = open_stream(loop, y[0], 0),
              .xp = x[1],
              .yp = y[1]};
  assert_int_equal(run_task(loop, wc_main, &c, NULL), 0);
  assert_int_equal(c.first, 1);
  assert_int_equal(c.cancelled, 1);
  assert_int_equal(c.got, -ECANCELED);
  assert_int_equal(c.after, 3);
  assert_memory_equal(c.buf, "abc", 3);
  async_stream_free(c.x);
  async_stream_free(c.y);
  close(x[1]);
  close(y[1]);
  free_loop(loop);
}

/* ---- Bad input --------------------------------------------------------- */

static void *bad_main(void *arg) {
  async_stream *s = arg;
  char b[4];
  int ok = async_stream_read(s, NULL, 4, 1) == -EINVAL;
  ok &= async_stream_read(s, b, 4, NAN) == -EINVAL;
  ok &= async_stream_readuntil(s, "", 0, b, 4, 1) == -EINVAL;
  ok &= async_stream_readuntil(s, NULL, 1, b, 4, 1) == -EINVAL;
  ok &= async_stream_readline(s, b, 0, 1) == -EINVAL;
  ok &= async_stream_drain(s, NAN) == -EINVAL;
  ok &= async_stream_read(NULL, b, 4, 1) == -EINVAL;
  ok &= async_stream_drain(NULL, 1) == -EINVAL;
  return IPTR(ok);
}

/* async_fd_close on a stream's fd while a reader waits, and the number
 * taken at once by another file, before the reader has resumed: the stream
 * let the number go when it was closed, so neither a write nor the close
 * of the stream touches the file that has the number now (a pipe here). */
static void *read_one_line(void *arg) {
  char b[64];
  return IPTR(async_stream_readline(arg, b, sizeof b, 5.0));
}

typedef struct {
  async_stream *s;
  int fd, pipe[2];
  int read_rc, write_rc, close_rc;
} reopen_ctx;

static void *reopen_main(void *arg) {
  reopen_ctx *c = arg;
  async_task *r = spawn(read_one_line, c->s);
  async_yield();                              /* r waits on the fd */
  assert_int_equal(async_fd_close(c->fd), 0); /* r is woken, not yet run */
  assert_int_equal(dup2(c->pipe[1], c->fd), c->fd);
  c->write_rc = async_stream_write(c->s, "stray", 5);
  c->close_rc = async_stream_close(c->s);
  void *v = NULL;
  async_await(r, &v);
  async_task_release(r);
  c->read_rc = PTRI(v);
  return NULL;
}

static void *close_then_use(void *arg) {
  reopen_ctx *c = arg;
  assert_int_equal(async_fd_close(c->fd), 0);
  assert_int_equal(dup2(c->pipe[1], c->fd), c->fd);
  c->write_rc = async_stream_write(c->s, "stray", 5);
  c->read_rc = PTRI(read_one_line(c->s));
  return NULL;
}

static void
test_stream_fd_closed_and_reused_before_the_reader_runs(void **state) {
  (void)state;
  async_loop *loop = new_loop();
  int sv[2];
  spair(sv);
  reopen_ctx c = {.s = open_stream(loop, sv[0], 0), .fd = sv[0]};
  assert_int_equal(pipe(c.pipe), 0);
  assert_int_equal(run_task(loop, reopen_main, &c, NULL), 0);
  assert_int_equal(c.read_rc, -EBADF);
  assert_int_equal(c.write_rc, -EBADF);
  assert_int_equal(c.close_rc, 0);
  assert_int_equal(async_stream_fd(c.s), -EBADF);
  assert_int_equal(async_stream_free(c.s), 0);
  /* The number still names the pipe's write end, and nothing went in. */
  assert_true(fcntl(c.fd, F_GETFD) >= 0);
  assert_int_equal(write(c.fd, "p", 1), 1);
  char b[8];
  assert_int_equal(read(c.pipe[0], b, sizeof b), 1);
  assert_int_equal(b[0], 'p');
  close(c.fd);
  close(c.pipe[0]);
  close(c.pipe[1]);
  close(sv[1]);

  /* With no wait under way, the same: the stream lets the number go at
   * once, and its reads and writes say -EBADF. */
  spair(sv);
  assert_int_equal(pipe(c.pipe), 0);
  c.s = open_stream(loop, sv[0], 0);
  c.fd = sv[0];
  assert_int_equal(run_task(loop, close_then_use, &c, NULL), 0);
  assert_int_equal(c.write_rc, -EBADF);
  assert_int_equal(c.read_rc, -EBADF);
  assert_int_equal(async_stream_fd(c.s), -EBADF);
  assert_int_equal(async_stream_free(c.s), 0);
  assert_true(fcntl(sv[0], F_GETFD) >= 0);
  assert_int_equal(fcntl(c.pipe[0], F_SETFL, O_NONBLOCK), 0);
  assert_int_equal(read(c.pipe[0], b, sizeof b), -1); /* nothing went in */
  close(sv[0]);
  close(sv[1]);
  close(c.pipe[0]);
  close(c.pipe[1]);
  free_loop(loop);
}

/* A stream with output going out in the background when its loop closes:
 * the close stops its watcher, so that the stream, freed after the close
 * (as its header allows, before the loop is freed), does not reach into
 * the loop's freed fd table (fuzz/stream-crashes/, under ASan); writing
 * after the close starts nothing; free drops the output and closes the
 * fd. */
static void *back_up(void *arg) {
  async_stream *s = arg;
  static char chunk[256 * 1024];
  return IPTR(async_stream_write(s, chunk, sizeof chunk));
}

static void test_stream_freed_after_the_loop_closes(void **state) {
  (void)state;
  signal(SIGPIPE, SIG_DFL);
  async_loop *loop = new_loop();
  int sv[2];
  spair(sv);
  async_stream *s = open_stream(loop, sv[0], 0);
  void *r;
  assert_int_equal(run_task(loop, back_up, s, &r), 0);
  assert_int_equal(PTRI(r), 0);
  assert_true(async_stream_write_buffered(s) > 0);
  assert_true(loop->fd_waiters > 0);
  assert_int_equal(async_loop_close(loop), 0);
  assert_int_equal(loop->fd_waiters, 0);
  assert_int_equal(async_stream_write(s, "x", 1), -ESHUTDOWN);
  assert_int_equal(async_stream_write_eof(s), 0);
  assert_int_equal(async_stream_close(s), 0);
  assert_int_equal(async_stream_free(s), 0);
  assert_int_equal(fcntl(sv[0], F_GETFD), -1);
  close(sv[1]);
  assert_int_equal(async_loop_free(loop), 0);
}

static void test_stream_bad_input(void **state) {
  (void)state;
  async_loop *loop = new_loop();
  int sv[2];
  spair(sv);
  async_stream *s = NULL;
  async_stream_options o;
  async_stream_options_init(&o);
  o.low_water = o.high_water + 1;
  assert_int_equal(async_stream_open(&s, loop, sv[0], &o), -EINVAL);
  assert_null(s);
  o.low_water = 0;
  o.limit = 0;
  assert_int_equal(async_stream_open(&s, loop, sv[0], &o), -EINVAL);
  assert_int_equal(async_stream_open(NULL, loop, sv[0], NULL), -EINVAL);
  assert_int_equal(async_stream_open(&s, NULL, sv[0], NULL), -EINVAL);
  assert_int_equal(async_stream_open(&s, loop, -1, NULL), -EINVAL);
  assert_int_equal(async_stream_open(&s, loop, 1000, NULL), -EBADF);
  s = open_stream(loop, sv[0], 0);
  char b[4];
  assert_int_equal(async_stream_read(s, b, 4, 1), -EPERM);
  void *ok;
  assert_int_equal(run_task(loop, bad_main, s, &ok), 0);
  assert_true(PTRI(ok));
  assert_int_equal(async_stream_write(NULL, "x", 1), -EINVAL);
  assert_int_equal(async_stream_write(s, NULL, 1), -EINVAL);
  assert_int_equal(async_stream_free(NULL), -EINVAL);
  assert_int_equal(async_stream_free(s), 0);
  close(sv[1]);
  free_loop(loop);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_stream_reads),
      cmocka_unit_test(test_stream_end_of_stream),
      cmocka_unit_test(test_stream_line_over_limit),
      cmocka_unit_test(test_stream_timeout_cancel_take_nothing),
      cmocka_unit_test(test_stream_backpressure),
      cmocka_unit_test(test_stream_wait_closed_timeout),
      cmocka_unit_test(test_stream_fd_closed_under_it),
      cmocka_unit_test(test_stream_write_eof_half_close),
      cmocka_unit_test(test_stream_close_flushes),
      cmocka_unit_test(test_stream_pipe),
      cmocka_unit_test(test_stream_tcp_echo),
      cmocka_unit_test(test_stream_wait_costs_no_poller_call),
      cmocka_unit_test(test_stream_datagrams_read_at_once),
      cmocka_unit_test(test_stream_after_a_short_read),
      cmocka_unit_test(test_stream_tiny_timeout_after_a_short_read),
      cmocka_unit_test(test_stream_close_wakes_a_reader_that_waits_first),
      cmocka_unit_test(test_stream_number_reused_starts_clean),
      cmocka_unit_test(test_stream_on_a_number_watched_before),
      cmocka_unit_test(test_stream_woken_then_cancelled_takes_nothing),
      cmocka_unit_test(test_stream_fd_closed_and_reused_before_the_reader_runs),
      cmocka_unit_test(test_stream_freed_after_the_loop_closes),
      cmocka_unit_test(test_stream_bad_input),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
