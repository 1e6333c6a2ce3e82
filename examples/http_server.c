/* SPDX-License-Identifier: MIT */
/* http_server: an HTTP/1.1 server that answers every request with
 * "Hello, World!" (13 bytes, text/plain), a task per connection.
 *
 *   http_server [-p PORT] [-c MAX_CONNECTIONS]
 *
 * It listens on 127.0.0.1 (port 0, the default, lets the kernel pick),
 * prints "listening on 127.0.0.1:PORT", and serves until SIGINT or
 * SIGTERM; then it stops gracefully (a second for the open connections)
 * and prints what it served.
 *
 * Keep-alive is HTTP/1.1's default (HTTP/1.0 needs "Connection:
 * keep-alive"), "Connection: close" ends a connection after its response,
 * and pipelined requests are answered in order: requests already
 * received are answered before the responses are flushed together. A
 * request that is not HTTP/1.x gets 400 Bad Request, headers over 8 KiB
 * 431, a chunked body 501; each closes that connection, and the server
 * goes on. A request body given by Content-Length is read and dropped. A
 * client that goes away mid-request just ends its connection; one that
 * sends nothing for 30 s is closed. */
#define _POSIX_C_SOURCE 200809L

#include <async.h>
#include <errno.h>
#include <ctype.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#define HEAD_MAX 8192
#define IDLE_SECS 30.0

static unsigned long long requests, bad_requests, aborted;

static const char hello[] = "HTTP/1.1 200 OK\r\n"
                            "Content-Type: text/plain\r\n"
                            "Content-Length: 13\r\n"
                            "\r\n"
                            "Hello, World!";

/* Writes an error response and asks the caller to close. */
static int reply_error(async_stream *s, const char *status) {
  char buf[160];
  int n = snprintf(buf, sizeof buf,
                   "HTTP/1.1 %s\r\nContent-Type: text/plain\r\n"
                   "Content-Length: 0\r\nConnection: close\r\n\r\n",
                   status);
  bad_requests++;
  int err = async_stream_write(s, buf, (size_t)n);
  if (!err) err = async_stream_write_eof(s);
  if (!err) err = async_stream_drain(s, 5.0);
  /* Closing with unread input makes the kernel reset the connection,
   * which can discard the response before the client reads it: read what
   * the client still sends (a second at most, 64 KiB at most) first. */
  for (size_t left = 65536; !err && left > 0;) {
    ssize_t r = async_stream_read(s, buf, sizeof buf, 1.0);
    if (r <= 0) break;
    left -= (size_t)r < left ? (size_t)r : left;
  }
  return err;
}

/* The parse of one request head (NUL-terminated, CRLF lines). */
typedef struct {
  int head; /* HEAD: no body in the response */
  int keep_alive;
  int chunked;
  long long body; /* Content-Length, or -1 when invalid */
} request;

static int token_char(int c) {
  return c > 32 && c < 127 && !strchr("()<>@,;:\\\"/[]?={}", c);
}

/* Returns 0, or -1 for a malformed head. */
static int parse_head(char *h, request *r) {
  memset(r, 0, sizeof *r);
  char *eol = strstr(h, "\r\n");
  if (!eol) return -1;
  *eol = '\0';
  /* METHOD SP TARGET SP HTTP/1.x */
  char *sp1 = strchr(h, ' ');
  if (!sp1 || sp1 == h) return -1;
  for (char *p = h; p < sp1; p++)
    if (!token_char((unsigned char)*p)) return -1;
  char *sp2 = strchr(sp1 + 1, ' ');
  if (!sp2 || sp2 == sp1 + 1) return -1;
  if (strncmp(sp2 + 1, "HTTP/1.", 7) || !isdigit((unsigned char)sp2[8]) ||
      sp2[9])
    return -1;
  r->head = sp1 - h == 4 && !strncmp(h, "HEAD", 4);
  r->keep_alive = sp2[8] != '0';
  for (char *line = eol + 2; *line; line = eol + 2) {
    eol = strstr(line, "\r\n");
    if (!eol) return -1;
    *eol = '\0';
    if (!*line) break; /* the blank line */
    char *colon = strchr(line, ':');
    if (!colon || colon == line) return -1;
    for (char *p = line; p < colon; p++)
      if (!token_char((unsigned char)*p)) return -1;
    *colon = '\0';
    char *v = colon + 1;
    while (*v == ' ' || *v == '\t') v++;
    if (!strcasecmp(line, "Connection")) {
      if (!strcasecmp(v, "close"))
        r->keep_alive = 0;
      else if (!strcasecmp(v, "keep-alive"))
        r->keep_alive = 1;
    } else if (!strcasecmp(line, "Content-Length")) {
      char *end;
      r->body = isdigit((unsigned char)*v) ? strtoll(v, &end, 10) : -1;
      if (r->body < 0 || *end) return -1;
    } else if (!strcasecmp(line, "Transfer-Encoding")) {
      r->chunked = 1;
    }
  }
  return 0;
}

static int handle(async_stream *s, void *arg) {
  (void)arg;
  char head[HEAD_MAX + 1];
  for (;;) {
    ssize_t n =
        async_stream_readuntil(s, "\r\n\r\n", 4, head, HEAD_MAX, IDLE_SECS);
    if (n == 0) return 0; /* closed between requests */
    if (n == -ENODATA || n == -ECONNRESET) {
      aborted++; /* gone mid-request */
      return 0;
    }
    if (n == -EMSGSIZE)
      return reply_error(s, "431 Request Header Fields Too Large");
    if (n < 0) return n == -ETIMEDOUT ? 0 : (int)n;
    head[n] = '\0';
    request r;
    if (parse_head(head, &r)) return reply_error(s, "400 Bad Request");
    if (r.chunked) return reply_error(s, "501 Not Implemented");
    for (long long left = r.body; left > 0;) { /* drop the body */
      size_t k = left < HEAD_MAX ? (size_t)left : HEAD_MAX;
      ssize_t got = async_stream_readexactly(s, head, k, IDLE_SECS);
      if (got < 0) {
        aborted++;
        return 0;
      }
      left -= got;
    }
    requests++;
    size_t len = sizeof hello - 1 - (r.head ? 13 : 0);
    int err = async_stream_write(s, hello, len);
    if (err) return err;
    if (!r.keep_alive) return async_stream_drain(s, 5.0);
    /* Pipelined requests already here are answered first, and the
     * responses go out together. */
    if (async_stream_buffered(s) == 0 && (err = async_stream_drain(s, 5.0)))
      return err;
  }
}

/* SIGINT and SIGTERM: a byte into a pipe, which a task waits on. */
static int sig_pipe[2] = {-1, -1};

static void on_signal(int sig) {
  char b = (char)sig;
  ssize_t r = write(sig_pipe[1], &b, 1);
  (void)r;
}

typedef struct {
  int port;
  size_t max_connections;
} config;

static void *main_task(void *arg) {
  config *cfg = arg;
  int fd = async_tcp_listen("127.0.0.1", cfg->port, 1024, 0);
  if (fd < 0) return async_fail(fd);
  async_server_options o;
  async_server_options_init(&o);
  o.max_connections = cfg->max_connections;
  async_server *srv;
  int err =
      async_server_start(&srv, async_loop_current(), fd, handle, NULL, &o);
  if (err) {
    async_fd_close(fd);
    return async_fail(err);
  }
  printf("listening on 127.0.0.1:%d\n", async_socket_port(fd));
  char b;
  err = (int)async_read(sig_pipe[0], &b, 1, ASYNC_NO_TIMEOUT);
  int cancelled = async_server_stop(srv, 1.0);
  async_server_stats st;
  async_server_get_stats(srv, &st);
  async_server_free(srv);
  printf("stopped: %llu connections, %llu requests, %llu bad, %llu cut "
         "short, %d cancelled at the deadline\n",
         st.accepted, requests, bad_requests, aborted,
         cancelled > 0 ? cancelled : 0);
  return err < 0 ? async_fail(err) : NULL;
}

int main(int argc, char **argv) {
  config cfg = {0, 0};
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "-p") && i + 1 < argc) {
      cfg.port = atoi(argv[++i]);
    } else if (!strcmp(argv[i], "-c") && i + 1 < argc) {
      cfg.max_connections = (size_t)atol(argv[++i]);
    } else {
      fprintf(stderr, "usage: %s [-p PORT] [-c MAX_CONNECTIONS]\n", argv[0]);
      return 2;
    }
  }
  setvbuf(stdout, NULL, _IOLBF, 0);
  signal(SIGPIPE, SIG_IGN);
  if (pipe(sig_pipe) || async_fd_nonblock(sig_pipe[0]) ||
      async_fd_nonblock(sig_pipe[1])) {
    perror("http_server: pipe");
    return 1;
  }
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_signal;
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGTERM, &sa, NULL);
  int err = async_run(main_task, &cfg, NULL);
  if (err) fprintf(stderr, "http_server: %s\n", async_strerror(err));
  return err != 0;
}
