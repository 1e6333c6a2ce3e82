/* SPDX-License-Identifier: MIT */
/* A stream fuzzer: the input bytes are programs that tasks run against the
 * two ends of one connection, each end an async_stream.
 *
 * The first two bytes choose the connection (a Unix socket pair, a pipe,
 * or a TCP connection on loopback, with small kernel buffers so that
 * output backs up into the stream) and the streams' options (the limit,
 * the high and low water marks). The rest is the main task's program,
 * three bytes per step: an opcode and two arguments. A spawn takes the
 * next bytes as the child's own program, which the parent skips. Every
 * wait has a timeout of at most 5 ms, real time (an fd wait takes real
 * time even on the virtual clock), so an input ends in bounded time.
 *
 * Beyond what ASan, UBSan and LSan judge, the fuzzer checks the data:
 * each end writes its own endless pattern, and every byte read must be
 * the next byte of the other end's pattern (nothing lost in the middle,
 * duplicated or reordered; a stream may end early). A delimited read
 * must end at the first delimiter and fit its limit; a read that fails
 * must consume nothing, so the next read takes up where the last good one
 * ended. An fd closed under its stream (async_fd_close) has its number
 * taken at once by a pipe, which the stream must never touch. At the end
 * both streams free, and both fds are closed. */
#include "async.h"
#include "fuzz.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#define SLOTS 4
#define PROGS 32
#define MAX_STEPS 1024
#define OPS 17
#define BUF 256

struct world {
  async_loop *loop;
  async_stream *st[2];
  int fd[2];        /* the fds the streams were opened on */
  int pipe;         /* st[0] is a pipe's write end, st[1] its read end */
  size_t limit;     /* the streams' line limit */
  uint64_t sent[2]; /* bytes of end e's pattern its writes took */
  uint64_t got[2];  /* bytes read at end e, of the other end's pattern */
  int unchecked[2]; /* a write failed with part of it out: stop checking */
  int gone[2];      /* fd[e] was closed under its stream (op 16), and */
  int dummy[2];     /* the number names a pipe's write end: its read end */
  async_task *tasks[SLOTS];
  unsigned age[SLOTS]; /* the index in progs of each slot's program */
  unsigned steps, nprogs;
  prog progs[PROGS];
};

/* Byte i of end e's output: lines of 13, so that line and delimited
 * reads meet delimiters at known places. */
static uint8_t pattern(int e, uint64_t i) {
  unsigned r = (unsigned)(i % 13);
  return r == 12 ? '\n' : (uint8_t)((e ? 'A' : 'a') + r);
}

#define CHECK(c) FUZZ_CHECK("fuzz_stream", c)

/* The n bytes read at end e match the other end's pattern from where the
 * last read ended; they are then consumed. */
static void consumed(world *w, int e, const uint8_t *buf, size_t n) {
  if (!w->unchecked[1 - e])
    for (size_t i = 0; i < n; i++)
      CHECK(buf[i] == pattern(1 - e, w->got[e] + i));
  w->got[e] += n;
  CHECK(w->unchecked[1 - e] || w->got[e] <= w->sent[1 - e]);
}

/* End e's stream was freed: its fd is closed, or, if it was closed under
 * the stream (op 16), the file that got the number is untouched. */
static void check_closed(world *w, int e) {
  if (!w->gone[e]) {
    CHECK(fcntl(w->fd[e], F_GETFD) == -1 && errno == EBADF);
  } else if (w->dummy[e] >= 0) {
    char c;
    CHECK(fcntl(w->fd[e], F_GETFD) >= 0);
    CHECK(read(w->dummy[e], &c, 1) == -1 && errno == EAGAIN);
  }
}

static void *run(void *arg);

/* FUZZ_STREAM_TRACE=1 prints each step and what it returned. */
static int trace;

/* A delimited read at end e returned r bytes into buf (cap bytes of
 * room) for the dlen-byte delimiter d: it ends at the first delimiter and
 * fits the limit, or, for a line only, it is an unterminated remainder
 * with no delimiter in it (at end of stream). */
static void check_until(world *w, int e, const uint8_t *buf, ssize_t r,
                        const uint8_t *d, size_t dlen, size_t cap, int line) {
  if (r <= 0) return;
  size_t n = (size_t)r;
  CHECK(n <= cap);
  consumed(w, e, buf, n);
  if (w->unchecked[1 - e]) return;
  int ends = n >= dlen && memcmp(buf + n - dlen, d, dlen) == 0;
  CHECK(ends || line);
  if (ends) CHECK(n <= w->limit || n == dlen);
  size_t first = ends ? n - dlen : n; /* where the delimiter may first be */
  for (size_t i = 0; i < first && i + dlen <= n; i++)
    CHECK(memcmp(buf + i, d, dlen) != 0);
}

static int step(world *w, const prog *self, uint8_t op, uint8_t a, uint8_t b,
                const uint8_t **p, const uint8_t *end) {
  uint8_t buf[BUF];
  int e = a & 1;
  async_stream *s = w->st[e];
  unsigned k = a % SLOTS;
  ssize_t r;

  switch (op % OPS) {
  case 0: { /* write b bytes of e's pattern */
    if (!s) return 0;
    size_t n = b;
    for (size_t i = 0; i < n; i++) buf[i] = pattern(e, w->sent[e] + i);
    int err = async_stream_write(s, buf, n);
    if (err == 0) w->sent[e] += n;
    if (err == -ENOMEM) w->unchecked[e] = 1;
    return err;
  }
  case 1:
    return s ? async_stream_drain(s, fuzz_timeout(b)) : 0;
  case 2: { /* read up to (b >> 2) bytes */
    if (!s) return 0;
    size_t n = b >> 2;
    r = async_stream_read(s, buf, n, fuzz_timeout(b));
    CHECK(r <= (ssize_t)n);
    if (r > 0) consumed(w, e, buf, (size_t)r);
    return r < 0 ? (int)r : 0;
  }
  case 3: { /* read exactly (b >> 2) bytes */
    if (!s) return 0;
    size_t n = b >> 2;
    r = async_stream_readexactly(s, buf, n, fuzz_timeout(b));
    CHECK(r < 0 || r == (ssize_t)n);
    if (r > 0) consumed(w, e, buf, (size_t)r);
    return r < 0 ? (int)r : 0;
  }
  case 4: { /* a line, into (b >> 2) + 1 bytes of room */
    if (!s) return 0;
    size_t cap = (size_t)(b >> 2) + 1;
    r = async_stream_readline(s, buf, cap, fuzz_timeout(b));
    check_until(w, e, buf, r, (const uint8_t *)"\n", 1, cap, 1);
    return r < 0 ? (int)r : 0;
  }
  case 5: { /* up to a delimiter of 1 or 2 bytes of the other's pattern */
    if (!s) return 0;
    uint8_t d[2];
    size_t dlen = 1 + ((a >> 1) & 1);
    unsigned at = (unsigned)(a >> 2) % 13;
    d[0] = pattern(1 - e, at);
    d[1] = pattern(1 - e, at + 1);
    size_t cap = (size_t)(b >> 2) + 1;
    r = async_stream_readuntil(s, d, dlen, buf, cap, fuzz_timeout(b));
    check_until(w, e, buf, r, d, dlen, cap, 0);
    return r < 0 ? (int)r : 0;
  }
  case 6:
    return s ? async_stream_write_eof(s) : 0;
  case 7:
    return s ? async_stream_close(s) : 0;
  case 8:
    return s ? async_stream_wait_closed(s, fuzz_timeout(b)) : 0;
  case 9: { /* with tasks waiting on it, -EBUSY and nothing freed */
    if (!s) return 0;
    int err = async_stream_free(s);
    CHECK(err == 0 || err == -EBUSY);
    if (!err) {
      w->st[e] = NULL;
      check_closed(w, e);
    }
    return err;
  }
  case 10: { /* spawn a child into slot k */
    prog *c = prog_take(w, w->progs, &w->nprogs, PROGS, p, end, b);
    return c ? slot_spawn(w->loop, w->tasks, w->age, k, w->progs, c, run) : 0;
  }
  case 11:
    return w->tasks[k] ? async_task_cancel(w->tasks[k]) : 0;
  case 12:
    return slot_await(w->tasks, w->age, k, (unsigned)(self - w->progs),
                      fuzz_timeout(b));
  case 13:
    return b & 1 ? async_yield() : async_sleep(fuzz_timeout(b >> 1));
  case 14: { /* the calls that only look */
    if (!s) return 0;
    ssize_t in = async_stream_buffered(s), out = async_stream_write_buffered(s);
    CHECK(in >= 0 && out >= 0);
    int fd = async_stream_fd(s);
    CHECK(fd == w->fd[e] || fd == -EBADF);
    return 0;
  }
  case 16: /* async_fd_close under the stream, the number reused at once */
    if (s && !w->gone[e] && async_stream_fd(s) >= 0) {
      int pp[2], ok = pipe(pp) == 0; /* made first: not on the number */
      CHECK(async_fd_close(w->fd[e]) == 0);
      w->gone[e] = 1;
      CHECK(async_stream_fd(s) == -EBADF); /* let go at once */
      if (ok) {
        /* The read end kept far from the numbers the checks look at (the
         * other end's, closed perhaps, is free for pipe() to take). */
        int rd = fcntl(pp[0], F_DUPFD, 512);
        close(pp[0]);
        if (rd >= 0 && dup2(pp[1], w->fd[e]) == w->fd[e]) {
          w->dummy[e] = rd;
          fcntl(rd, F_SETFL, O_NONBLOCK);
        } else if (rd >= 0) {
          close(rd);
        }
        close(pp[1]);
      }
    }
    return 0;
  default: /* an abortive close: a TCP peer resets, the others just close */
    if (s && async_stream_fd(s) >= 0) {
      struct linger l = {1, 0};
      (void)setsockopt(w->fd[e], SOL_SOCKET, SO_LINGER, &l, sizeof l);
      return async_stream_close(s);
    }
    return 0;
  }
}

static void *run(void *arg) {
  prog *pg = arg;
  world *w = pg->w;
  const uint8_t *p = pg->p, *end = p + pg->n;
  int err = 0;

  while (p < end && w->steps++ < MAX_STEPS) {
    uint8_t op[3];
    fuzz_next(&p, end, op);
    err = step(w, pg, op[0], op[1], op[2], &p, end);
    if (trace)
      fprintf(stderr, "prog %u: op %u a %u b %u -> %d (got %llu %llu)\n",
              (unsigned)(pg - w->progs), op[0] % OPS, op[1], op[2], err,
              (unsigned long long)w->got[0], (unsigned long long)w->got[1]);
    if (err == -ECANCELED) break; /* unwind, as well-behaved code does */
  }
  return (void *)(intptr_t)err;
}

/* Two connected fds of the kind k chooses, non-blocking; -1 if the system
 * refuses (no loopback, out of fds): the input then tests nothing. */
static int connection(int k, int fd[2], int *is_pipe) {
  *is_pipe = 0;
  if (k == 1) {
    *is_pipe = 1;
    if (pipe(fd)) return -1;
    int t = fd[0]; /* fd[0] writes, fd[1] reads */
    fd[0] = fd[1];
    fd[1] = t;
    return 0;
  }
  if (k == 0) return socketpair(AF_UNIX, SOCK_STREAM, 0, fd);
  int l = socket(AF_INET, SOCK_STREAM, 0);
  if (l < 0) return -1;
  struct sockaddr_in sa = {.sin_family = AF_INET};
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof sa;
  if (bind(l, (struct sockaddr *)&sa, sizeof sa) || listen(l, 1) ||
      getsockname(l, (struct sockaddr *)&sa, &len) ||
      (fd[0] = socket(AF_INET, SOCK_STREAM, 0)) < 0) {
    close(l);
    return -1;
  }
  if (connect(fd[0], (struct sockaddr *)&sa, sizeof sa) ||
      (fd[1] = accept(l, NULL, NULL)) < 0) {
    close(fd[0]);
    close(l);
    return -1;
  }
  close(l);
  int one = 1;
  setsockopt(fd[0], IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  setsockopt(fd[1], IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static world w;
  async_loop_options lo;
  async_stream_options so;

  if (size < 2) return 0;
  memset(&w, 0, sizeof w);
  w.dummy[0] = w.dummy[1] = -1;
  trace = getenv("FUZZ_STREAM_TRACE") != NULL;
  if (connection(data[0] % 3, w.fd, &w.pipe)) return 0;
  /* Small kernel buffers: output backs up into the streams. */
  for (int e = 0; e < 2 && !w.pipe; e++) {
    int sz = 4096;
    setsockopt(w.fd[e], SOL_SOCKET, SO_SNDBUF, &sz, sizeof sz);
    setsockopt(w.fd[e], SOL_SOCKET, SO_RCVBUF, &sz, sizeof sz);
  }
  async_loop_options_init(&lo);
  lo.virtual_clock = 1;
  lo.stack_size = 128 * 1024;
  if (async_loop_new(&w.loop, &lo)) abort();
  async_stream_options_init(&so);
  so.limit = 1 + (size_t)((data[0] >> 2) & 63);
  so.high_water = (size_t)data[1] * 64;
  so.low_water = so.high_water / (1 + (size_t)(data[0] >> 6));
  w.limit = so.limit;
  for (int e = 0; e < 2; e++)
    if (async_stream_open(&w.st[e], w.loop, w.fd[e], &so)) abort();

  prog *top = &w.progs[w.nprogs++];
  top->w = &w;
  top->p = data + 2;
  top->n = size - 2;
  fuzz_run(w.loop, run, top, w.tasks, SLOTS);
  for (int e = 0; e < 2; e++)
    if (w.st[e]) {
      CHECK(async_stream_free(w.st[e]) == 0); /* no task is left to wait */
      check_closed(&w, e);
    }
  for (int e = 0; e < 2; e++)
    if (w.gone[e] && w.dummy[e] >= 0) {
      close(w.fd[e]);
      close(w.dummy[e]);
    }
  if (async_loop_free(w.loop)) abort();
  return 0;
}
