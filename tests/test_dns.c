/* SPDX-License-Identifier: MIT */
/* Name resolution on the pool's DNS lane: localhost, numeric addresses, a
 * name that cannot exist (the reserved .invalid TLD), getnameinfo of
 * 127.0.0.1, the error mapping, bad input, cancellation, and the lanes'
 * independence. No network beyond the host's own resolver. */
#include "pool_helpers.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>

static gate g;
static void *blocker(void *arg) {
  gate_pass(&g);
  return arg;
}

/* ---- getaddrinfo ------------------------------------------------------- */

typedef struct {
  int err[8];
  int loopback_only, port_ok, count;
  char text[8][64];
} gai_seen;

/* Checks every address of res: loopback, on `port`. */
static void inspect(gai_seen *s, struct addrinfo *res, int port) {
  s->loopback_only = s->port_ok = 1;
  for (struct addrinfo *a = res; a; a = a->ai_next) {
    s->count++;
    if (a->ai_family == AF_INET) {
      struct sockaddr_in *in = (struct sockaddr_in *)a->ai_addr;
      if (ntohl(in->sin_addr.s_addr) >> 24 != 127) s->loopback_only = 0;
      if (ntohs(in->sin_port) != port) s->port_ok = 0;
    } else if (a->ai_family == AF_INET6) {
      struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)a->ai_addr;
      if (!IN6_IS_ADDR_LOOPBACK(&in6->sin6_addr)) s->loopback_only = 0;
      if (ntohs(in6->sin6_port) != port) s->port_ok = 0;
    } else {
      s->loopback_only = 0;
    }
  }
}

static void *localhost_main(void *arg) {
  gai_seen *s = arg;
  struct addrinfo hints = {.ai_socktype = SOCK_STREAM};
  struct addrinfo *res = IPTR(1);
  s->err[0] = async_getaddrinfo("localhost", "80", &hints, &res, 10.0);
  if (!s->err[0]) inspect(s, res, 80);
  freeaddrinfo(res);
  return NULL;
}

static void test_dns_localhost(void **state) {
  (void)state;
  async_loop *loop = new_loop();
  gai_seen s = {0};
  assert_int_equal(run_task(loop, localhost_main, &s, NULL), 0);
  assert_int_equal(s.err[0], 0);
  assert_true(s.count >= 1);
  assert_int_equal(s.loopback_only, 1);
  assert_int_equal(s.port_ok, 1);
  /* It ran on the DNS lane, which started one thread. */
  assert_int_equal(async_pool_threads(loop, ASYNC_POOL_DNS), 1);
  assert_int_equal(async_pool_threads(loop, ASYNC_POOL_WORK), 0);
  free_loop(loop);
}

static void *numeric_main(void *arg) {
  gai_seen *s = arg;
  struct addrinfo hints = {.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV,
                           .ai_socktype = SOCK_DGRAM};
  struct addrinfo *res = NULL;
  s->err[0] = async_getaddrinfo("127.0.0.1", "8080", &hints, &res, 10.0);
  if (res) {
    struct sockaddr_in *in = (struct sockaddr_in *)res->ai_addr;
    inet_ntop(AF_INET, &in->sin_addr, s->text[0], sizeof s->text[0]);
    s->port_ok = ntohs(in->sin_port) == 8080 && res->ai_family == AF_INET &&
                 res->ai_socktype == SOCK_DGRAM && !res->ai_next;
  }
  freeaddrinfo(res);
  hints.ai_family = AF_INET6;
  res = NULL;
  s->err[1] = async_getaddrinfo("::1", NULL, &hints, &res, 10.0);
  if (res) {
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)res->ai_addr;
    inet_ntop(AF_INET6, &in6->sin6_addr, s->text[1], sizeof s->text[1]);
  }
  freeaddrinfo(res);
  hints.ai_family = AF_UNSPEC;
  res = IPTR(1);
  s->err[2] = async_getaddrinfo("999.1.1.1", NULL, &hints, &res, 10.0);
  s->count = res == NULL;
  /* A service that no socket type has. */
  res = NULL;
  s->err[3] =
      async_getaddrinfo("127.0.0.1", "no-such-service-xyz", &hints, &res, 10.0);
  freeaddrinfo(res);
  /* Bad flags. */
  hints.ai_flags = -1;
  s->err[4] = async_getaddrinfo("127.0.0.1", NULL, &hints, &res, 10.0);
  return NULL;
}

static void test_dns_numeric(void **state) {
  (void)state;
  async_loop *loop = new_loop();
  gai_seen s = {0};
  assert_int_equal(run_task(loop, numeric_main, &s, NULL), 0);
  assert_int_equal(s.err[0], 0);
  assert_string_equal(s.text[0], "127.0.0.1");
  assert_int_equal(s.port_ok, 1);
  assert_int_equal(s.err[1], 0);
  assert_string_equal(s.text[1], "::1");
  assert_int_equal(s.err[2], -ENOENT);
  assert_int_equal(async_dns_eai(s.err[2]), EAI_NONAME);
  assert_int_equal(s.count, 1); /* *res NULL on error */
  /* AI_NUMERICSERV with a name: EAI_NONAME; else EAI_SERVICE. */
  assert_true(s.err[3] == -ENOENT || s.err[3] == -ESRCH);
  assert_int_equal(s.err[4], -EINVAL);
  assert_int_equal(async_dns_eai(s.err[4]), EAI_BADFLAGS);
  free_loop(loop);
}

static void *invalid_main(void *arg) {
  gai_seen *s = arg;
  struct addrinfo *res = IPTR(1);
  s->err[0] = async_getaddrinfo("no-such-host.invalid", NULL, NULL, &res, 20.0);
  s->count = res == NULL;
  return NULL;
}

static void test_dns_name_that_does_not_exist(void **state) {
  (void)state;
  async_loop *loop = new_loop();
  gai_seen s = {0};
  assert_int_equal(run_task(loop, invalid_main, &s, NULL), 0);
  print_message("no-such-host.invalid: %d (%s; %s)\n", s.err[0],
                async_strerror(s.err[0]),
                gai_strerror(async_dns_eai(s.err[0])));
  /* NXDOMAIN, or no resolver reachable (which may outlast the timeout): a
   * clear error either way. */
  assert_true(s.err[0] == -ENOENT || s.err[0] == -ENODATA ||
              s.err[0] == -EAGAIN || s.err[0] == -ETIMEDOUT);
  if (s.err[0] != -ETIMEDOUT) assert_int_not_equal(async_dns_eai(s.err[0]), 0);
  assert_int_equal(s.count, 1);
  free_loop(loop);
}

/* Twenty lookups at once on the default DNS lane: two threads serve them
 * all. */
static void *one_lookup(void *arg) {
  (void)arg;
  struct addrinfo hints = {.ai_socktype = SOCK_STREAM};
  struct addrinfo *res = NULL;
  int err = async_getaddrinfo("localhost", "80", &hints, &res, 10.0);
  gai_seen s = {0};
  if (!err) inspect(&s, res, 80);
  freeaddrinfo(res);
  if (err) return async_fail(err);
  return IPTR(s.count >= 1 && s.loopback_only && s.port_ok);
}

static void *many_main(void *arg) {
  int *ok = arg;
  async_task *t[20];
  for (int i = 0; i < 20; i++) t[i] = async_spawn(one_lookup, NULL);
  void *res[20];
  int errs[20];
  async_gather_errors(t, 20, res, errs);
  for (int i = 0; i < 20; i++) {
    if (!errs[i] && PTRI(res[i]) == 1) (*ok)++;
    async_task_release(t[i]);
  }
  return NULL;
}

static void test_dns_many_lookups_beyond_the_bound(void **state) {
  (void)state;
  async_loop *loop = new_loop();
  int ok = 0;
  assert_int_equal(run_task(loop, many_main, &ok, NULL), 0);
  assert_int_equal(ok, 20);
  int n = async_pool_threads(loop, ASYNC_POOL_DNS);
  assert_true(n >= 1 && n <= ASYNC_POOL_DNS_THREADS);
  free_loop(loop);
}

/* ---- getnameinfo ------------------------------------------------------- */

static void *nameinfo_main(void *arg) {
  gai_seen *s = arg;
  struct sockaddr_in in = {.sin_family = AF_INET, .sin_port = htons(80)};
  in.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  const struct sockaddr *sa = (const struct sockaddr *)&in;
  s->err[0] = async_getnameinfo(sa, sizeof in, s->text[0], sizeof s->text[0],
                                s->text[1], sizeof s->text[1],
                                NI_NUMERICHOST | NI_NUMERICSERV, 10.0);
  s->err[1] = async_getnameinfo(sa, sizeof in, s->text[2], sizeof s->text[2],
                                NULL, 0, NI_NAMEREQD, 10.0);
  strcpy(s->text[3], "untouched");
  s->err[2] = async_getnameinfo(sa, sizeof in, s->text[3], 4, NULL, 0,
                                NI_NUMERICHOST, 10.0);
  s->err[3] = async_getnameinfo(sa, sizeof in, NULL, 0, NULL, 0, 0, 10.0);
  s->err[4] =
      async_getnameinfo(NULL, sizeof in, s->text[4], 8, NULL, 0, 0, 10.0);
  s->err[5] = async_getnameinfo(sa, 4096, s->text[4], 8, NULL, 0, 0, 10.0);
  s->err[6] = async_getnameinfo(sa, sizeof in, s->text[4], 8, NULL, 0, 0, 0);
  return NULL;
}

static void test_dns_getnameinfo_loopback(void **state) {
  (void)state;
  async_loop *loop = new_loop();
  gai_seen s = {0};
  assert_int_equal(run_task(loop, nameinfo_main, &s, NULL), 0);
  assert_int_equal(s.err[0], 0);
  assert_string_equal(s.text[0], "127.0.0.1");
  assert_string_equal(s.text[1], "80");
  assert_int_equal(s.err[1], 0);
  assert_string_equal(s.text[2], "localhost"); /* /etc/hosts */
  assert_int_equal(s.err[2], -ENOSPC);
  assert_int_equal(async_dns_eai(s.err[2]), EAI_OVERFLOW);
  assert_string_equal(s.text[3], "untouched");
  assert_int_equal(s.err[3], -EINVAL);
  assert_int_equal(s.err[4], -EINVAL);
  assert_int_equal(s.err[5], -EINVAL);
  assert_int_equal(s.err[6], -ETIMEDOUT);
  free_loop(loop);
}

/* ---- Errors and bad input ---------------------------------------------- */

static void test_dns_error_mapping(void **state) {
  (void)state;
  assert_int_equal(async_dns_eai(0), 0);
  assert_int_equal(async_dns_eai(-ECANCELED), 0);
  assert_int_equal(async_dns_eai(-ETIMEDOUT), 0);
  assert_int_equal(async_dns_eai(-ENOENT), EAI_NONAME);
  assert_int_equal(async_dns_eai(-EAGAIN), EAI_AGAIN);
  assert_int_equal(async_dns_eai(-EIO), EAI_FAIL);
  assert_int_equal(async_dns_eai(-ENOMEM), EAI_MEMORY);
  assert_int_equal(async_dns_eai(-EAFNOSUPPORT), EAI_FAMILY);
  assert_int_equal(async_dns_eai(-ESRCH), EAI_SERVICE);
  assert_int_equal(async_dns_eai(-EPIPE), EAI_SYSTEM);
}

static void *bad_main(void *arg) {
  int *e = arg;
  struct addrinfo *res = IPTR(1);
  e[0] = async_getaddrinfo("localhost", NULL, NULL, NULL, 1.0);
  e[1] = async_getaddrinfo(NULL, NULL, NULL, &res, 1.0);
  e[2] = res == NULL;
  e[3] = async_getaddrinfo("localhost", NULL, NULL, &res, NAN);
  e[4] = async_getaddrinfo("localhost", NULL, NULL, &res, 0.0);
  e[5] = async_getaddrinfo("localhost", NULL, NULL, &res, -1.0);
  return NULL;
}

static void test_dns_bad_input(void **state) {
  (void)state;
  struct addrinfo *res = IPTR(1);
  assert_int_equal(async_getaddrinfo("localhost", NULL, NULL, &res, 1.0),
                   -EPERM);
  assert_null(res);
  async_loop *loop = new_loop();
  int e[6];
  assert_int_equal(run_task(loop, bad_main, e, NULL), 0);
  assert_int_equal(e[0], -EINVAL);
  assert_int_equal(e[1], -EINVAL);
  assert_int_equal(e[2], 1);
  assert_int_equal(e[3], -EINVAL);
  assert_int_equal(e[4], -ETIMEDOUT);
  assert_int_equal(e[5], -ETIMEDOUT);
  assert_int_equal(async_pool_threads(loop, ASYNC_POOL_DNS), 0);
  free_loop(loop);
}

/* ---- Cancellation, timeouts, the lanes ---------------------------------- */

static void *lookup(void *arg) {
  double *timeout = arg;
  struct addrinfo *res = NULL;
  int err = async_getaddrinfo("localhost", "443", NULL, &res, *timeout);
  int got = res != NULL;
  freeaddrinfo(res);
  if (err) return async_fail(err);
  return IPTR(got);
}

static void *hold_dns(void *arg) {
  (void)arg;
  int err = async_pool_run(ASYNC_POOL_DNS, blocker, NULL, NULL, NULL,
                           ASYNC_NO_TIMEOUT);
  return err ? async_fail(err) : NULL;
}

static void *dns_cancel_main(void *arg) {
  int *e = arg;
  double forever = ASYNC_NO_TIMEOUT, brief = 0.02;
  /* The DNS lane's one thread is held: lookups queue behind it. */
  async_task *hold = async_spawn(hold_dns, NULL);
  await_count(&g.entered, 1);
  async_task *q = async_spawn(lookup, &forever);
  async_sleep(0.01);
  async_future_cancel(q);
  e[0] = async_await(q, NULL);
  async_task *q2 = async_spawn(lookup, &brief);
  e[1] = async_await(q2, NULL);
  async_task_release(q);
  async_task_release(q2);
  gate_open(&g);
  e[2] = async_await(hold, NULL);
  async_task_release(hold);
  /* Cancelled at varied points: queued, running, done but not resumed.
   * Each ends with its result or -ECANCELED, and nothing leaks. */
  int ok = 0, cancelled = 0, other = 0;
  for (int i = 0; i < 24; i++) {
    async_task *t = async_spawn(lookup, &forever);
    if (i % 3) async_sleep(0.0002 * i);
    async_future_cancel(t);
    void *r = NULL;
    int err = async_await(t, &r);
    if (!err && PTRI(r) == 1)
      ok++;
    else if (err == -ECANCELED)
      cancelled++;
    else
      other++;
    async_task_release(t);
  }
  e[3] = other;
  e[4] = ok + cancelled;
  print_message("cancelled lookups: %d done first, %d cancelled\n", ok,
                cancelled);
  return NULL;
}

static void test_dns_cancel_and_timeout(void **state) {
  (void)state;
  gate_init(&g);
  async_loop *loop = new_loop();
  assert_int_equal(async_pool_set_max(loop, ASYNC_POOL_DNS, 1), 0);
  int e[5];
  assert_int_equal(run_task(loop, dns_cancel_main, e, NULL), 0);
  assert_int_equal(e[0], -ECANCELED);
  assert_int_equal(e[1], -ETIMEDOUT);
  assert_int_equal(e[2], 0);
  assert_int_equal(e[3], 0);
  assert_int_equal(e[4], 24);
  free_loop(loop);
  gate_destroy(&g);
}

/* The work lane full of blocked work: lookups are served all the same. */
static void *hold_work(void *arg) {
  (void)arg;
  int err = async_to_thread(blocker, NULL, NULL, NULL);
  return err ? async_fail(err) : NULL;
}

static void *lanes_main(void *arg) {
  int *e = arg;
  async_task *hold = async_spawn(hold_work, NULL);
  await_count(&g.entered, 1);
  struct addrinfo hints = {.ai_flags = AI_NUMERICHOST};
  for (int i = 0; i < 5; i++) {
    struct addrinfo *res = NULL;
    e[i] = async_getaddrinfo("127.0.0.1", NULL, &hints, &res, 10.0);
    freeaddrinfo(res);
  }
  e[5] = gate_is_open(&g);
  gate_open(&g);
  e[6] = async_await(hold, NULL);
  async_task_release(hold);
  return NULL;
}

static void test_dns_served_while_work_lane_is_full(void **state) {
  (void)state;
  gate_init(&g);
  async_loop *loop = new_loop();
  assert_int_equal(async_pool_set_max(loop, ASYNC_POOL_WORK, 1), 0);
  int e[7];
  assert_int_equal(run_task(loop, lanes_main, e, NULL), 0);
  for (int i = 0; i < 5; i++) assert_int_equal(e[i], 0);
  assert_int_equal(e[5], 0);
  assert_int_equal(e[6], 0);
  free_loop(loop);
  gate_destroy(&g);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_dns_localhost),
      cmocka_unit_test(test_dns_numeric),
      cmocka_unit_test(test_dns_many_lookups_beyond_the_bound),
      cmocka_unit_test(test_dns_name_that_does_not_exist),
      cmocka_unit_test(test_dns_getnameinfo_loopback),
      cmocka_unit_test(test_dns_error_mapping),
      cmocka_unit_test(test_dns_bad_input),
      cmocka_unit_test(test_dns_cancel_and_timeout),
      cmocka_unit_test(test_dns_served_while_work_lane_is_full),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
