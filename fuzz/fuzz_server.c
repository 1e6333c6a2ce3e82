/* SPDX-License-Identifier: MIT */
/* A server fuzzer: the input bytes are the programs of a server's
 * handlers and of the tasks that are its clients, on loopback TCP.
 *
 * The first two bytes choose the server's options (the connection limit,
 * the close timeout, the stream's limit and water marks) and how long the
 * handlers' program is; that program follows, and every connection's
 * handler runs it from the start. The rest is the main task's program,
 * three bytes per step: an opcode and two arguments. Clients connect,
 * write, read, half-close, close or reset; tasks serve forever, stop the
 * server (from outside or from a handler), cancel each other; the
 * listening fd is closed behind the server's back; the server is freed
 * (-EBUSY while anything runs) and started again. Every wait is bounded
 * (at most 5 ms of real time), so an input ends in bounded time.
 *
 * Beyond what ASan, UBSan and LSan judge, the fuzzer checks the server's
 * counters (never more handlers at once than the limit; accepted covers
 * what is active and what failed) and, at the end, that once the loop is
 * closed the server frees and this process has the fds it had before. */
#include "async.h"
#include "fuzz.h"

#include <errno.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define SLOTS 4
#define CLIENTS 6
#define PROGS 32
#define MAX_STEPS 1024
#define HANDLER_STEPS 32
#define OPS 14

#define CHECK(c) FUZZ_CHECK("fuzz_server", c)

struct world {
  async_loop *loop;
  async_server *srv;
  async_server_options so;
  async_stream_options sto;
  int lfd, port;
  int client[CLIENTS];
  const uint8_t *hp; /* the handlers' program */
  size_t hn;
  async_task *tasks[SLOTS];
  unsigned age[SLOTS];
  unsigned steps, nprogs;
  prog progs[PROGS];
};

static void check_stats(const world *w) {
  async_server_stats st;
  if (!w->srv) return;
  CHECK(async_server_get_stats(w->srv, &st) == 0);
  if (w->so.max_connections) CHECK(st.active <= w->so.max_connections);
  CHECK(st.accepted >= st.active);
}

/* Every connection runs the handlers' program, two bytes a step. */
static int handler(async_stream *s, void *arg) {
  world *w = arg;
  char buf[256];
  int err = 0;
  for (size_t i = 0; i < w->hn && i / 2 < HANDLER_STEPS; i += 2) {
    uint8_t op = w->hp[i], a = i + 1 < w->hn ? w->hp[i + 1] : 0;
    ssize_t r = 0;
    switch (op % 10) {
    case 0:
      r = async_stream_read(s, buf, a >> 2, fuzz_timeout(a));
      break;
    case 1:
      r = async_stream_readline(s, buf, (a >> 2) + 1, fuzz_timeout(a));
      break;
    case 2:
      r = async_stream_readexactly(s, buf, a >> 2, fuzz_timeout(a));
      break;
    case 3:
      memset(buf, 'h', sizeof buf);
      r = async_stream_write(s, buf, a);
      break;
    case 4:
      r = async_stream_drain(s, fuzz_timeout(a));
      break;
    case 5:
      r = a & 1 ? async_yield() : async_sleep(fuzz_timeout(a >> 1));
      break;
    case 6:
      return -EIO; /* counts as failed, stops nothing */
    case 7:
      r = a & 1 ? async_stream_write_eof(s) : async_stream_close(s);
      break;
    case 8: /* a handler that stops its own server */
      r = w->srv ? async_server_stop(w->srv, fuzz_timeout(a)) : 0;
      break;
    default:
      return 0;
    }
    check_stats(w);
    err = r < 0 ? (int)r : 0;
    if (err == -ECANCELED) return err;
  }
  return err;
}

static int start(world *w) {
  int fd = async_tcp_listen("127.0.0.1", 0, 8, 0);
  if (fd < 0) return fd;
  w->port = async_socket_port(fd);
  int err = async_server_start(&w->srv, w->loop, fd, handler, w, &w->so);
  if (err) {
    close(fd);
    return err;
  }
  w->lfd = fd;
  return 0;
}

static void *run(void *arg);

/* FUZZ_SERVER_TRACE=1 prints each step of the clients' programs. */
static int trace;

static int step(world *w, const prog *self, uint8_t op, uint8_t a, uint8_t b,
                const uint8_t **p, const uint8_t *end) {
  unsigned c = a % CLIENTS, k = a % SLOTS;
  int *cfd = &w->client[c];
  char buf[256];

  switch (op % OPS) {
  case 0: { /* connect client c; -2 while connecting, for the others */
    if (*cfd != -1 || w->port <= 0) return 0;
    *cfd = -2;
    int fd = async_tcp_connect("127.0.0.1", w->port, fuzz_timeout(b));
    *cfd = fd >= 0 ? fd : -1;
    return fd < 0 ? fd : 0;
  }
  case 1: /* client c writes b bytes: lines of 8 */
    if (*cfd < 0) return 0;
    for (unsigned i = 0; i < b; i++) buf[i] = i % 8 == 7 ? '\n' : 'c';
    return (int)async_write(*cfd, buf, b, fuzz_timeout(a >> 3));
  case 2:
    if (*cfd < 0) return 0;
    return (int)async_read(*cfd, buf, b, fuzz_timeout(a >> 3));
  case 3: /* client c closes, or resets */
    if (*cfd < 0) return 0;
    if (b & 1) {
      struct linger l = {1, 0};
      setsockopt(*cfd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
    }
    async_fd_close(*cfd);
    *cfd = -1;
    return 0;
  case 4:
    return *cfd >= 0 ? shutdown(*cfd, SHUT_WR) : 0;
  case 5:
    return w->srv ? async_server_stop(w->srv, fuzz_timeout(b)) : 0;
  case 6: { /* a task that serves forever, into slot k */
    prog *cp = prog_take(w, w->progs, &w->nprogs, PROGS, p, end, 0);
    if (!cp || !w->srv) return 0;
    cp->n = (size_t)-1; /* marks a serve_forever task: see run() */
    return slot_spawn(w->loop, w->tasks, w->age, k, w->progs, cp, run);
  }
  case 7:
    return w->tasks[k] ? async_task_cancel(w->tasks[k]) : 0;
  case 8:
    return slot_await(w->tasks, w->age, k, (unsigned)(self - w->progs),
                      fuzz_timeout(b));
  case 9:
    check_stats(w);
    return b & 1 ? async_yield() : async_sleep(fuzz_timeout(b >> 1));
  case 10: { /* a child program into slot k */
    prog *cp = prog_take(w, w->progs, &w->nprogs, PROGS, p, end, b);
    return cp ? slot_spawn(w->loop, w->tasks, w->age, k, w->progs, cp, run) : 0;
  }
  case 11: /* the listening fd closed behind the server's back */
    if (w->srv && async_server_fd(w->srv) >= 0) {
      CHECK(async_fd_close(w->lfd) == 0);
      CHECK(async_server_fd(w->srv) == -EBADF);
    }
    return 0;
  case 12: { /* -EBUSY while it serves or anything runs */
    if (!w->srv) return 0;
    int err = async_server_free(w->srv);
    CHECK(err == 0 || err == -EBUSY);
    if (!err) w->srv = NULL;
    return err;
  }
  default:
    return w->srv ? 0 : start(w);
  }
}

static void *run(void *arg) {
  prog *pg = arg;
  world *w = pg->w;
  if (pg->n == (size_t)-1)
    return (void *)(intptr_t)(w->srv ? async_server_serve_forever(w->srv) : 0);
  const uint8_t *p = pg->p, *end = p + pg->n;
  int err = 0;
  while (p < end && w->steps++ < MAX_STEPS) {
    uint8_t op[3];
    fuzz_next(&p, end, op);
    err = step(w, pg, op[0], op[1], op[2], &p, end);
    if (trace)
      fprintf(stderr, "prog %u: op %u a %u b %u -> %d\n",
              (unsigned)(pg - w->progs), op[0] % OPS, op[1], op[2], err);
    if (err == -ECANCELED) break;
  }
  return (void *)(intptr_t)err;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static world w;
  async_loop_options lo;

  if (size < 2) return 0;
  trace = getenv("FUZZ_SERVER_TRACE") != NULL;
  int fds = count_fds();
  memset(&w, 0, sizeof w);
  for (int i = 0; i < CLIENTS; i++) w.client[i] = -1;
  w.lfd = -1;
  async_server_options_init(&w.so);
  async_stream_options_init(&w.sto);
  w.so.max_connections = data[0] & 3;
  w.so.close_timeout = fuzz_timeout(data[0] >> 2);
  w.so.accept_backoff = 1e-3;
  w.sto.limit = 1 + ((data[0] >> 4) & 15);
  w.sto.high_water = (size_t)(data[1] & 7) * 64;
  w.sto.low_water = w.sto.high_water / 2;
  w.so.stream = &w.sto;
  w.hp = data + 2;
  w.hn = (size_t)(data[1] >> 3) * 2;
  if (w.hn > size - 2) w.hn = size - 2;

  async_loop_options_init(&lo);
  lo.virtual_clock = 1;
  lo.stack_size = 128 * 1024;
  if (async_loop_new(&w.loop, &lo)) abort();
  prog *top = &w.progs[w.nprogs++];
  top->w = &w;
  top->p = data + 2 + w.hn;
  top->n = size - 2 - w.hn;
  if (start(&w)) { /* no loopback here: nothing to test */
    async_loop_free(w.loop);
    return 0;
  }
  fuzz_run(w.loop, run, top, w.tasks, SLOTS);
  if (w.srv) CHECK(async_server_free(w.srv) == 0); /* the close ended all */
  for (int i = 0; i < CLIENTS; i++)
    if (w.client[i] >= 0) close(w.client[i]);
  if (async_loop_free(w.loop)) abort();
  CHECK(count_fds() == fds);
  return 0;
}
