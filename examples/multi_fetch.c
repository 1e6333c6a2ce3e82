/* SPDX-License-Identifier: MIT */
/* multi_fetch: fetches from several servers at once, each fetch with its
 * own timeout.
 *
 * The program starts three small HTTP servers of its own on 127.0.0.1, in
 * the same loop: "fast" answers at once, "slow" after 0.2 s, "stuck"
 * never. Then it fetches http://localhost:PORT/ from each at once: the
 * name is resolved, and each address it has is tried in turn (::1, where
 * nothing listens, then 127.0.0.1), all within the fetch's timeout,
 * which a deadline scope puts around the whole fetch: 2 s for fast and
 * slow, 0.5 s for stuck. The three run side by side, so the whole takes
 * about as long as the longest timeout, not the sum. */
#define _POSIX_C_SOURCE 200809L

#include <async.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char hello[] = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                            "Content-Length: 13\r\n\r\nHello, World!";

/* A server's handler: reads one request head, waits `delay` seconds (a
 * negative one: for ever), answers, closes. */
static int serve(async_stream *s, void *arg) {
  double delay = *(double *)arg;
  char head[4096];
  ssize_t n = async_stream_readuntil(s, "\r\n\r\n", 4, head, sizeof head, 5.0);
  if (n <= 0) return (int)n;
  int err = async_sleep(delay < 0 ? ASYNC_NO_TIMEOUT : delay);
  if (!err) err = async_stream_write(s, hello, sizeof hello - 1);
  return err ? err : async_stream_drain(s, 5.0);
}

typedef struct {
  const char *name;
  double delay, timeout;
  int port;
  async_server *srv;
  /* the outcome */
  int err, status;
  char body[64];
} site;

/* GET / from localhost:port; fills status and body. */
static int get(site *st) {
  int fd = async_tcp_connect("localhost", st->port, ASYNC_NO_TIMEOUT);
  if (fd < 0) return fd;
  async_stream *s;
  int err = async_stream_open(&s, async_loop_current(), fd, NULL);
  if (err) {
    async_fd_close(fd);
    return err;
  }
  char req[128], head[4096];
  int n = snprintf(req, sizeof req,
                   "GET / HTTP/1.1\r\nHost: localhost:%d\r\n"
                   "Connection: close\r\n\r\n",
                   st->port);
  err = async_stream_write(s, req, (size_t)n);
  ssize_t h = err ? err
                  : async_stream_readuntil(s, "\r\n\r\n", 4, head,
                                           sizeof head - 1, ASYNC_NO_TIMEOUT);
  if (h > 0) {
    head[h] = '\0';
    const char *cl = strstr(head, "Content-Length:");
    size_t len = cl ? strtoul(cl + 15, NULL, 10) : 0;
    if (sscanf(head, "HTTP/1.%*d %d", &st->status) != 1 ||
        len >= sizeof st->body) {
      err = -EPROTO;
    } else {
      ssize_t b = async_stream_readexactly(s, st->body, len, ASYNC_NO_TIMEOUT);
      err = b < 0 ? (int)b : 0;
    }
  } else {
    err = h ? (int)h : -ENODATA;
  }
  async_stream_free(s);
  return err;
}

static void *fetch(void *arg) {
  site *st = arg;
  async_timeout tmo;
  async_timeout_enter(&tmo, st->timeout);
  st->err = async_timeout_exit(&tmo, get(st)); /* -ETIMEDOUT: ours */
  return NULL;
}

#define NSITES 3

static void *main_task(void *arg) {
  site *sites = arg;
  async_loop *loop = async_loop_current();
  int err = 0;
  for (int i = 0; i < NSITES && !err; i++) {
    int fd = async_tcp_listen("127.0.0.1", 0, 0, 0);
    if (fd < 0) return async_fail(fd);
    sites[i].port = async_socket_port(fd);
    err = async_server_start(&sites[i].srv, loop, fd, serve, &sites[i].delay,
                             NULL);
    if (err) async_fd_close(fd);
  }
  if (err) return async_fail(err);
  double t0 = async_loop_time(loop);
  async_task *t[NSITES];
  for (int i = 0; i < NSITES; i++) t[i] = async_spawn(fetch, &sites[i]);
  for (int i = 0; i < NSITES; i++) {
    if (!t[i]) return async_fail(-ENOMEM);
    async_await(t[i], NULL);
    async_task_release(t[i]);
  }
  double took = async_loop_time(loop) - t0;
  for (int i = 0; i < NSITES; i++) {
    site *st = &sites[i];
    if (st->err)
      printf("%s: %s (timeout %.1f s)\n", st->name, async_strerror(st->err),
             st->timeout);
    else
      printf("%s: %d '%s'\n", st->name, st->status, st->body);
  }
  /* Under the longest timeout plus a margin: the fetches overlapped. */
  printf("all fetched %s\n", took < 2.0 ? "at once" : "one after another");
  for (int i = 0; i < NSITES; i++) {
    async_server_stop(sites[i].srv, 0); /* cancels stuck's handler */
    async_server_free(sites[i].srv);
  }
  return NULL;
}

int main(void) {
  setvbuf(stdout, NULL, _IOLBF, 0);
  site sites[NSITES] = {
      {.name = "fast", .delay = 0, .timeout = 2.0},
      {.name = "slow", .delay = 0.2, .timeout = 2.0},
      {.name = "stuck", .delay = -1, .timeout = 0.5},
  };
  int err = async_run(main_task, sites, NULL);
  if (err) fprintf(stderr, "multi_fetch: %s\n", async_strerror(err));
  return err != 0;
}
