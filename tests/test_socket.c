/* SPDX-License-Identifier: MIT */
/* Sockets (include/async/io.h): TCP over IPv4 and IPv6 loopback, Unix
 * stream sockets, UDP (send-to, receive-from, connected), options, and
 * the errors of connecting where no one listens. Loopback only. */
#include "helpers.h"

#include "io/io.h" /* async__tcp_connect_list */

#include <fcntl.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

static int flags_ok(int fd) {
  return (fcntl(fd, F_GETFL) & O_NONBLOCK) && (fcntl(fd, F_GETFD) & FD_CLOEXEC);
}

/* ---- TCP --------------------------------------------------------------- */

typedef struct {
  const char *host;
  int lfd;
  int port;
  int srv_ok, cli_ok;
  int cli, acc;
  char peer_family;
} tcp_ctx;

static void *tcp_server(void *arg) {
  tcp_ctx *c = arg;
  struct sockaddr_storage ss;
  socklen_t len = sizeof ss;
  c->acc = async_accept(c->lfd, (struct sockaddr *)&ss, &len, 5);
  if (c->acc < 0) return NULL;
  c->peer_family = (char)ss.ss_family;
  char b[5];
  c->srv_ok = async_read(c->acc, b, 5, 5) == 5 && memcmp(b, "ping!", 5) == 0 &&
              async_write(c->acc, "pong!", 5, 5) == 5;
  return NULL;
}

static void *tcp_main(void *arg) {
  tcp_ctx *c = arg;
  async_task *t;
  async_task_spawn(async_loop_current(), &t, tcp_server, c, NULL);
  c->cli = async_tcp_connect(c->host, c->port, 5);
  if (c->cli >= 0) {
    char b[5];
    c->cli_ok = async_write(c->cli, "ping!", 5, 5) == 5 &&
                async_read(c->cli, b, 5, 5) == 5 && memcmp(b, "pong!", 5) == 0;
  }
  async_await(t, NULL);
  async_task_release(t);
  return NULL;
}

static void tcp_case(const char *listen_host, const char *host, int family) {
  async_loop *loop = new_loop();
  tcp_ctx c = {.host = host};
  c.lfd = async_tcp_listen(listen_host, 0, 0, 0);
  assert_true(c.lfd >= 0);
  assert_true(flags_ok(c.lfd));
  c.port = async_socket_port(c.lfd);
  assert_true(c.port > 0);
  assert_int_equal(run_task(loop, tcp_main, &c, NULL), 0);
  assert_true(c.cli >= 0);
  assert_true(c.acc >= 0);
  assert_true(flags_ok(c.cli));
  assert_true(flags_ok(c.acc));
  assert_int_equal(c.peer_family, family);
  assert_true(c.srv_ok);
  assert_true(c.cli_ok);
  close(c.cli);
  close(c.acc);
  close(c.lfd);
  free_loop(loop);
}

static void test_socket_tcp_ipv4(void **state) {
  (void)state;
  tcp_case("127.0.0.1", "127.0.0.1", AF_INET);
  tcp_case(NULL, "127.0.0.1", AF_INET); /* NULL: every IPv4 address */
}

static int have_ipv6_loopback(void) {
  FILE *f = fopen("/proc/net/if_inet6", "r");
  if (!f) return 0;
  char line[256];
  int found = 0;
  while (fgets(line, sizeof line, f))
    if (strncmp(line, "00000000000000000000000000000001", 32) == 0) found = 1;
  fclose(f);
  return found;
}

static void test_socket_tcp_ipv6(void **state) {
  (void)state;
  if (!have_ipv6_loopback()) {
    print_message("no IPv6 loopback (::1 not in /proc/net/if_inet6): "
                  "skipped\n");
    skip();
  }
  tcp_case("::1", "::1", AF_INET6);
}

typedef struct {
  int port;
  int refused;
  int bad[6];
} ref_ctx;

static void *refused_main(void *arg) {
  ref_ctx *c = arg;
  c->refused = async_tcp_connect("127.0.0.1", c->port, 5);
  c->bad[0] = async_tcp_connect(NULL, c->port, 5);
  c->bad[1] = async_tcp_connect("127.0.0.1", 0, 5);
  c->bad[2] = async_tcp_connect("127.0.0.1", 65536, 5);
  c->bad[3] = async_tcp_connect("127.0.0.1", c->port, NAN);
  c->bad[4] = async_tcp_connect("127.0.0.1", c->port, 0);
  c->bad[5] = async_tcp_listen("127.0.0.1", 70000, 0, 0);
  return NULL;
}

static void test_socket_tcp_refused(void **state) {
  (void)state;
  async_loop *loop = new_loop();
  /* A port that was just ours and is now closed: no one listens. */
  int lfd = async_tcp_listen("127.0.0.1", 0, 0, 0);
  ref_ctx c = {.port = async_socket_port(lfd)};
  close(lfd);
  assert_int_equal(run_task(loop, refused_main, &c, NULL), 0);
  assert_int_equal(c.refused, -ECONNREFUSED);
  assert_int_equal(c.bad[0], -EINVAL);
  assert_int_equal(c.bad[1], -EINVAL);
  assert_int_equal(c.bad[2], -EINVAL);
  assert_int_equal(c.bad[3], -EINVAL);
  /* Zero time: refused at once by loopback, or timed out; never a wait. */
  assert_true(c.bad[4] == -ECONNREFUSED || c.bad[4] == -ETIMEDOUT);
  assert_int_equal(c.bad[5], -EINVAL);
  assert_int_equal(async_tcp_connect("127.0.0.1", c.port, 1), -EPERM);
  free_loop(loop);
}

/* A listener whose backlog is full drops the SYN: connect waits, and its
 * timeout ends it. */
static void *timeout_main(void *arg) {
  int port = *(int *)arg;
  int fds[16], n = 0, r = 0;
  double t0 = async_clock();
  while (n < 16) {
    r = async_tcp_connect("127.0.0.1", port, 0.2);
    if (r < 0) break;
    fds[n++] = r;
  }
  double took = async_clock() - t0;
  for (int i = 0; i < n; i++) close(fds[i]);
  return IPTR(r == -ETIMEDOUT && took < 10 ? 1 : -r);
}

static void test_socket_tcp_connect_timeout(void **state) {
  (void)state;
  async_loop *loop = new_loop();
  int lfd = async_socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in sa = {.sin_family = AF_INET,
                           .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  assert_int_equal(bind(lfd, (struct sockaddr *)&sa, sizeof sa), 0);
  assert_int_equal(listen(lfd, 0), 0); /* never accepted */
  int port = async_socket_port(lfd);
  void *res;
  assert_int_equal(run_task(loop, timeout_main, &port, &res), 0);
  assert_int_equal(PTRI(res), 1);
  close(lfd);
  free_loop(loop);
}

/* Connect by name: each address in turn, by one deadline. The list is
 * made here (a name would need the resolver: numeric addresses only). */
typedef struct {
  struct sockaddr_in sa[3];
  struct addrinfo ai[3];
  int r_second, r_refused, r_timeout;
  double took;
} list_ctx;

static void set_ai(list_ctx *c, int i, int port, struct addrinfo *next) {
  c->sa[i] = (struct sockaddr_in){.sin_family = AF_INET,
                                  .sin_port = htons((uint16_t)port),
                                  .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  c->ai[i] = (struct addrinfo){.ai_family = AF_INET,
                               .ai_socktype = SOCK_STREAM,
                               .ai_addr = (struct sockaddr *)&c->sa[i],
                               .ai_addrlen = sizeof c->sa[i],
                               .ai_next = next};
}

static int64_t deadline_in(double s) {
  return async__io_deadline(async_loop_current(), s);
}

static void *list_main(void *arg) {
  list_ctx *c = arg;
  async__task *t = async__task_current();
  /* [closed, listening]: the second connects. */
  c->r_second = async__tcp_connect_list(t, &c->ai[0], deadline_in(5));
  /* [closed]: its error. */
  struct addrinfo one = c->ai[0];
  one.ai_next = NULL;
  c->r_refused = async__tcp_connect_list(t, &one, deadline_in(5));
  /* [full backlog, listening]: the first takes all the time there is. */
  double t0 = async_clock();
  c->r_timeout = async__tcp_connect_list(t, &c->ai[2], deadline_in(0.2));
  c->took = async_clock() - t0;
  return NULL;
}

static void test_socket_connect_each_address(void **state) {
  (void)state;
  async_loop *loop = new_loop();
  int closed = async_tcp_listen("127.0.0.1", 0, 0, 0);
  int closed_port = async_socket_port(closed);
  close(closed);
  int good = async_tcp_listen("127.0.0.1", 0, 0, 0);
  /* A listener whose backlog is full: SYNs are dropped. */
  int full = async_socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in sa = {.sin_family = AF_INET,
                           .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  assert_int_equal(bind(full, (struct sockaddr *)&sa, sizeof sa), 0);
  assert_int_equal(listen(full, 0), 0);
  int fill[4];
  for (int i = 0; i < 4; i++) {
    fill[i] = async_socket(AF_INET, SOCK_STREAM, 0);
    sa.sin_port = htons((uint16_t)async_socket_port(full));
    connect(fill[i], (struct sockaddr *)&sa, sizeof sa);
  }
  usleep(100 * 1000); /* the handshakes of the ones that fit */
  list_ctx c;
  set_ai(&c, 1, async_socket_port(good), NULL);
  set_ai(&c, 0, closed_port, &c.ai[1]);
  set_ai(&c, 2, async_socket_port(full), &c.ai[1]);
  assert_int_equal(run_task(loop, list_main, &c, NULL), 0);
  assert_true(c.r_second >= 0);
  int acc = accept(good, NULL, NULL);
  assert_true(acc >= 0);
  assert_int_equal(c.r_refused, -ECONNREFUSED);
  assert_int_equal(c.r_timeout, -ETIMEDOUT);
  assert_true(c.took >= 0.15 && c.took < 10);
  /* The good address was never tried: nothing else is pending on it. */
  assert_int_equal(accept4(good, NULL, NULL, SOCK_NONBLOCK), -1);
  assert_int_equal(errno, EAGAIN);
  close(acc);
  close(c.r_second);
  for (int i = 0; i < 4; i++) close(fill[i]);
  close(full);
  close(good);
  free_loop(loop);
}

static void test_socket_listen_errors(void **state) {
  (void)state;
  int a = async_tcp_listen("127.0.0.1", 0, 0, 0);
  int port = async_socket_port(a);
  assert_int_equal(async_tcp_listen("127.0.0.1", port, 0, 0), -EADDRINUSE);
  assert_int_equal(async_tcp_listen("127.0.0.1", port, 0, 8), -EINVAL);
  /* A name outside a task cannot be resolved without suspending. */
  assert_int_equal(async_udp_bind("no-such-name.invalid", 0, 0), -EINVAL);
  close(a);
  /* reuse-port: two listeners on one port. */
  a = async_tcp_listen("127.0.0.1", 0, 0, ASYNC_LISTEN_REUSEPORT);
  assert_true(a >= 0);
  port = async_socket_port(a);
  int b = async_tcp_listen("127.0.0.1", port, 0, ASYNC_LISTEN_REUSEPORT);
  assert_true(b >= 0);
  close(a);
  close(b);
}

/* ---- Options ----------------------------------------------------------- */

static void test_socket_options(void **state) {
  (void)state;
  int fd = async_socket(AF_INET, SOCK_STREAM, 0);
  assert_true(fd >= 0 && flags_ok(fd));
  int v = -1;
  const async_sockopt bools[] = {ASYNC_SOCK_NODELAY, ASYNC_SOCK_REUSEADDR,
                                 ASYNC_SOCK_REUSEPORT, ASYNC_SOCK_KEEPALIVE};
  for (size_t i = 0; i < sizeof bools / sizeof bools[0]; i++) {
    assert_int_equal(async_socket_setopt(fd, bools[i], 1), 0);
    assert_int_equal(async_socket_getopt(fd, bools[i], &v), 0);
    assert_int_not_equal(v, 0);
    assert_int_equal(async_socket_setopt(fd, bools[i], 0), 0);
    assert_int_equal(async_socket_getopt(fd, bools[i], &v), 0);
    assert_int_equal(v, 0);
  }
  assert_int_equal(async_socket_setopt(fd, ASYNC_SOCK_RCVBUF, 65536), 0);
  assert_int_equal(async_socket_getopt(fd, ASYNC_SOCK_RCVBUF, &v), 0);
  assert_true(v >= 65536);
  assert_int_equal(async_socket_setopt(fd, ASYNC_SOCK_SNDBUF, 65536), 0);
  assert_int_equal(async_socket_getopt(fd, ASYNC_SOCK_SNDBUF, &v), 0);
  assert_true(v >= 65536);
  assert_int_equal(async_socket_setopt(fd, (async_sockopt)99, 1), -EINVAL);
  assert_int_equal(async_socket_setopt(fd, ASYNC_SOCK_NODELAY, -1), -EINVAL);
  assert_int_equal(async_socket_getopt(fd, ASYNC_SOCK_NODELAY, NULL), -EINVAL);
  /* IPV6_V6ONLY on an IPv4 socket: the kernel's error, passed on. */
  assert_true(async_socket_setopt(fd, ASYNC_SOCK_V6ONLY, 1) < 0);
  close(fd);
  int p[2];
  assert_int_equal(pipe(p), 0);
  assert_int_equal(async_socket_setopt(p[0], ASYNC_SOCK_NODELAY, 1), -ENOTSOCK);
  assert_int_equal(async_socket_port(p[0]), -ENOTSOCK);
  close(p[0]);
  close(p[1]);
  assert_int_equal(async_socket_setopt(-1, ASYNC_SOCK_NODELAY, 1), -EBADF);
}

/* ---- Unix stream sockets ----------------------------------------------- */

typedef struct {
  char path[64];
  int lfd, cli, acc, missing, toolong, ok;
} unix_ctx;

static void *unix_main(void *arg) {
  unix_ctx *c = arg;
  c->cli = async_unix_connect(c->path, 5);
  c->acc = async_accept(c->lfd, NULL, NULL, 5);
  char b[3];
  c->ok = c->cli >= 0 && c->acc >= 0 && async_write(c->cli, "uds", 3, 5) == 3 &&
          async_read(c->acc, b, 3, 5) == 3 && memcmp(b, "uds", 3) == 0;
  c->missing = async_unix_connect("/tmp/iosock-no-such-socket", 5);
  char longp[200];
  memset(longp, 'a', sizeof longp - 1);
  longp[sizeof longp - 1] = 0;
  c->toolong = async_unix_connect(longp, 5);
  return NULL;
}

static void test_socket_unix(void **state) {
  (void)state;
  async_loop *loop = new_loop();
  unix_ctx c = {0};
  snprintf(c.path, sizeof c.path, "/tmp/iosock-unix-%d", (int)getpid());
  unlink(c.path);
  c.lfd = async_unix_listen(c.path, 0);
  assert_true(c.lfd >= 0 && flags_ok(c.lfd));
  assert_int_equal(async_unix_listen(c.path, 0), -EADDRINUSE);
  assert_int_equal(async_unix_listen(NULL, 0), -EINVAL);
  assert_int_equal(run_task(loop, unix_main, &c, NULL), 0);
  assert_true(c.ok);
  assert_true(flags_ok(c.cli));
  assert_int_equal(c.missing, -ENOENT);
  assert_int_equal(c.toolong, -ENAMETOOLONG);
  close(c.cli);
  close(c.acc);
  close(c.lfd);
  unlink(c.path);
  free_loop(loop);
}

/* ---- UDP --------------------------------------------------------------- */

typedef struct {
  int a, b;
  int ok_to, ok_from, ok_conn, refused, trunc;
} udp_ctx;

static void *udp_main(void *arg) {
  udp_ctx *c = arg;
  int pa = async_socket_port(c->a), pb = async_socket_port(c->b);
  struct sockaddr_in to = {.sin_family = AF_INET,
                           .sin_port = htons((uint16_t)pb),
                           .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  c->ok_to = async_sendto(c->a, "dgram", 5, 0, (struct sockaddr *)&to,
                          sizeof to, 5) == 5;
  char b[16];
  struct sockaddr_in from;
  socklen_t len = sizeof from;
  ssize_t r =
      async_recvfrom(c->b, b, sizeof b, 0, (struct sockaddr *)&from, &len, 5);
  c->ok_from =
      r == 5 && memcmp(b, "dgram", 5) == 0 && ntohs(from.sin_port) == pa;
  /* Connected UDP: plain send and recv. */
  int cu = async_udp_connect("127.0.0.1", pb);
  c->ok_conn = cu >= 0 && async_send(cu, "conn", 4, 0, 5) == 4 &&
               async_recv(c->b, b, sizeof b, 0, 5) == 4 &&
               memcmp(b, "conn", 4) == 0;
  /* A datagram longer than the buffer is truncated, one per call. */
  async_sendto(c->a, "0123456789", 10, 0, (struct sockaddr *)&to, sizeof to, 5);
  c->trunc = (int)async_recvfrom(c->b, b, 4, 0, NULL, NULL, 5);
  if (cu >= 0) close(cu);
  /* To a closed port: ICMP comes back as ECONNREFUSED on a later call. */
  int closed = async_udp_bind("127.0.0.1", 0, 0);
  int pc = async_socket_port(closed);
  close(closed);
  cu = async_udp_connect("127.0.0.1", pc);
  async_send(cu, "x", 1, 0, 5);
  c->refused = (int)async_recv(cu, b, sizeof b, 0, 5);
  close(cu);
  return NULL;
}

static void test_socket_udp(void **state) {
  (void)state;
  async_loop *loop = new_loop();
  udp_ctx c = {0};
  c.a = async_udp_bind("127.0.0.1", 0, 0);
  c.b = async_udp_bind("127.0.0.1", 0, 0);
  assert_true(c.a >= 0 && c.b >= 0 && flags_ok(c.a));
  assert_int_equal(run_task(loop, udp_main, &c, NULL), 0);
  assert_true(c.ok_to);
  assert_true(c.ok_from);
  assert_true(c.ok_conn);
  assert_int_equal(c.trunc, 4);
  assert_int_equal(c.refused, -ECONNREFUSED);
  assert_int_equal(async_udp_connect(NULL, 1), -EINVAL);
  assert_int_equal(async_udp_bind("127.0.0.1", -1, 0), -EINVAL);
  close(c.a);
  close(c.b);
  free_loop(loop);
}

/* ---- A peer that resets ------------------------------------------------ */

static void *reset_main(void *arg) {
  int lfd = *(int *)arg;
  int cli = async_tcp_connect("127.0.0.1", async_socket_port(lfd), 5);
  int acc = async_accept(lfd, NULL, NULL, 5);
  /* Linger 0: close sends RST. */
  struct linger lg = {.l_onoff = 1, .l_linger = 0};
  setsockopt(acc, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
  close(acc);
  char b[4];
  ssize_t r = async_read(cli, b, sizeof b, 5);
  ssize_t w = async_write(cli, "x", 1, 5);
  close(cli);
  return IPTR(r == -ECONNRESET && (w == -EPIPE || w == -ECONNRESET));
}

static void test_socket_peer_reset(void **state) {
  (void)state;
  async_loop *loop = new_loop();
  int lfd = async_tcp_listen("127.0.0.1", 0, 0, 0);
  void *ok;
  assert_int_equal(run_task(loop, reset_main, &lfd, &ok), 0);
  assert_true(PTRI(ok));
  close(lfd);
  free_loop(loop);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_socket_tcp_ipv4),
      cmocka_unit_test(test_socket_tcp_ipv6),
      cmocka_unit_test(test_socket_tcp_refused),
      cmocka_unit_test(test_socket_tcp_connect_timeout),
      cmocka_unit_test(test_socket_connect_each_address),
      cmocka_unit_test(test_socket_listen_errors),
      cmocka_unit_test(test_socket_options),
      cmocka_unit_test(test_socket_unix),
      cmocka_unit_test(test_socket_udp),
      cmocka_unit_test(test_socket_peer_reset),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
