/* SPDX-License-Identifier: MIT */
/* Sockets: making them non-blocking and close-on-exec, their options, and
 * TCP, Unix and UDP endpoints by address.
 *
 * Constructors unwind through labels: a listen that fails at listen()
 * closes its socket and leaves nothing behind. Names resolve with
 * AI_NUMERICHOST first, which never blocks; only a real name goes to
 * async_getaddrinfo, which suspends. */
#include "io.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>
#include <sys/un.h>
#include <unistd.h>

int async_socket(int domain, int type, int protocol) {
  int fd = socket(domain, type | SOCK_NONBLOCK | SOCK_CLOEXEC, protocol);
  return fd < 0 ? -errno : fd;
}

/* {==== Options ========================================================= */

static int opt_map(async_sockopt opt, int *level, int *name) {
  switch (opt) {
  case ASYNC_SOCK_NODELAY:
    *level = IPPROTO_TCP, *name = TCP_NODELAY;
    break;
  case ASYNC_SOCK_REUSEADDR:
    *level = SOL_SOCKET, *name = SO_REUSEADDR;
    break;
  case ASYNC_SOCK_REUSEPORT:
    *level = SOL_SOCKET, *name = SO_REUSEPORT;
    break;
  case ASYNC_SOCK_KEEPALIVE:
    *level = SOL_SOCKET, *name = SO_KEEPALIVE;
    break;
  case ASYNC_SOCK_RCVBUF:
    *level = SOL_SOCKET, *name = SO_RCVBUF;
    break;
  case ASYNC_SOCK_SNDBUF:
    *level = SOL_SOCKET, *name = SO_SNDBUF;
    break;
  case ASYNC_SOCK_V6ONLY:
    *level = IPPROTO_IPV6, *name = IPV6_V6ONLY;
    break;
  default:
    return -EINVAL;
  }
  return 0;
}

int async_socket_setopt(int fd, async_sockopt opt, int value) {
  int level, name;
  if (opt_map(opt, &level, &name) || value < 0) return -EINVAL;
  if (setsockopt(fd, level, name, &value, sizeof value)) return -errno;
  return 0;
}

int async_socket_getopt(int fd, async_sockopt opt, int *value) {
  int level, name;
  if (opt_map(opt, &level, &name) || !value) return -EINVAL;
  socklen_t len = sizeof *value;
  if (getsockopt(fd, level, name, value, &len)) return -errno;
  return 0;
}

int async_socket_port(int fd) {
  struct sockaddr_storage ss;
  socklen_t len = sizeof ss;
  if (getsockname(fd, (struct sockaddr *)&ss, &len)) return -errno;
  if (ss.ss_family == AF_INET)
    return ntohs(((struct sockaddr_in *)&ss)->sin_port);
  if (ss.ss_family == AF_INET6)
    return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
  return -EAFNOSUPPORT;
}

/* }==== */

/* {==== Addresses ======================================================= */

int async__gai_errno(int rc) {
  switch (rc) {
  case 0:
    return 0;
  case EAI_NONAME:
#ifdef EAI_NODATA
  case EAI_NODATA:
#endif
#ifdef EAI_ADDRFAMILY
  case EAI_ADDRFAMILY:
#endif
    return -ENOENT;
  case EAI_AGAIN:
    return -EAGAIN;
  case EAI_MEMORY:
    return -ENOMEM;
  case EAI_SYSTEM:
    return errno ? -errno : -EIO;
  default:
    return -EIO;
  }
}

/* Resolves host:port for `socktype`. A numeric host never suspends; a name
 * does only when `may_suspend`, else it is -EINVAL. A NULL or empty host
 * is the IPv4 wildcard (passive) or loopback. */
static int resolve(const char *host, int port, int socktype, int passive,
                   int may_suspend, double timeout, struct addrinfo **res) {
  char service[8];
  struct addrinfo hints;
  memset(&hints, 0, sizeof hints);
  hints.ai_socktype = socktype;
  hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV | (passive ? AI_PASSIVE : 0);
  if (!host || !*host) {
    host = passive ? "0.0.0.0" : "127.0.0.1";
  }
  snprintf(service, sizeof service, "%d", port);
  int rc = getaddrinfo(host, service, &hints, res);
  if (rc != EAI_NONAME) return async__gai_errno(rc);
  if (!may_suspend) return -EINVAL;
  hints.ai_flags &= ~AI_NUMERICHOST;
  return async_getaddrinfo(host, service, &hints, res, timeout);
}

/* A socket of ai's kind bound to it, with SO_REUSEADDR when `reuseaddr`. */
static int bound_socket(const struct addrinfo *ai, int reuseaddr, int flags) {
  int fd = async_socket(ai->ai_family, ai->ai_socktype, ai->ai_protocol);
  if (fd < 0) return fd;
  int one = 1, err;
  if (reuseaddr && setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one))
    goto fail_errno;
  if ((flags & ASYNC_LISTEN_REUSEPORT) &&
      setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one))
    goto fail_errno;
  if (ai->ai_family == AF_INET6 && (flags & ASYNC_LISTEN_V6ONLY) &&
      setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one))
    goto fail_errno;
  if (bind(fd, ai->ai_addr, ai->ai_addrlen)) goto fail_errno;
  return fd;
fail_errno:
  err = -errno;
  close(fd);
  return err;
}

/* }==== */

/* {==== TCP ============================================================= */

#define LISTEN_FLAGS (ASYNC_LISTEN_REUSEPORT | ASYNC_LISTEN_V6ONLY)

int async_tcp_listen(const char *host, int port, int backlog, int flags) {
  if (port < 0 || port > 65535 || (flags & ~LISTEN_FLAGS)) return -EINVAL;
  struct addrinfo *res;
  int err = resolve(host, port, SOCK_STREAM, 1, 1, ASYNC_NO_TIMEOUT, &res);
  if (err) return err;
  int fd = bound_socket(res, 1, flags);
  freeaddrinfo(res);
  if (fd < 0) return fd;
  if (listen(fd, backlog > 0 ? backlog : SOMAXCONN)) {
    err = -errno;
    close(fd);
    return err;
  }
  return fd;
}

int async__tcp_connect_list(async__task *t, const struct addrinfo *res,
                            int64_t deadline) {
  async_loop *loop = t->fut.loop;
  int err = -ENOENT;
  for (const struct addrinfo *ai = res; ai; ai = ai->ai_next) {
    int fd = async_socket(ai->ai_family, ai->ai_socktype, ai->ai_protocol);
    if (fd < 0) {
      err = fd;
      continue;
    }
    double left = ASYNC_NO_TIMEOUT;
    if (deadline != ASYNC__NO_DEADLINE)
      left = (double)(deadline - async__loop_now(loop)) / 1e9;
    err = async_connect(fd, ai->ai_addr, ai->ai_addrlen, left);
    if (err == 0) return fd;
    close(fd);
    /* Out of time, or told to stop: not a reason to try the next. */
    if (err == -ETIMEDOUT || err == -ECANCELED) break;
  }
  return err;
}

int async_tcp_connect(const char *host, int port, double timeout) {
  int err = 0;
  async__task *t = async__task_require(&err);
  if (!t) return err;
  if (!host || port < 1 || port > 65535 || async__isnan(timeout))
    return -EINVAL;
  /* One deadline for the resolution and every address tried. */
  int64_t deadline = async__io_deadline(t->fut.loop, timeout);
  struct addrinfo *res;
  if ((err = resolve(host, port, SOCK_STREAM, 0, 1, timeout, &res))) return err;
  err = async__tcp_connect_list(t, res, deadline);
  freeaddrinfo(res);
  return err;
}

/* }==== */

/* {==== Unix stream sockets ============================================= */

static int unix_addr(const char *path, struct sockaddr_un *sa) {
  if (!path || !*path) return -EINVAL;
  size_t len = strlen(path);
  memset(sa, 0, sizeof *sa);
  if (len >= sizeof sa->sun_path) return -ENAMETOOLONG;
  sa->sun_family = AF_UNIX;
  memcpy(sa->sun_path, path, len + 1);
  return 0;
}

int async_unix_listen(const char *path, int backlog) {
  struct sockaddr_un sa;
  int err = unix_addr(path, &sa);
  if (err) return err;
  int fd = async_socket(AF_UNIX, SOCK_STREAM, 0);
  if (fd < 0) return fd;
  if (bind(fd, (struct sockaddr *)&sa, sizeof sa)) goto fail;
  if (listen(fd, backlog > 0 ? backlog : SOMAXCONN)) {
    err = -errno;
    unlink(path); /* ours: bind made it */
    close(fd);
    return err;
  }
  return fd;
fail:
  err = -errno;
  close(fd);
  return err;
}

int async_unix_connect(const char *path, double timeout) {
  int err = 0;
  async__task *t = async__task_require(&err);
  if (!t) return err;
  struct sockaddr_un sa;
  if ((err = unix_addr(path, &sa))) return err;
  int fd = async_socket(AF_UNIX, SOCK_STREAM, 0);
  if (fd < 0) return fd;
  err = async_connect(fd, (struct sockaddr *)&sa, sizeof sa, timeout);
  if (err) {
    close(fd);
    return err;
  }
  return fd;
}

/* }==== */

/* {==== UDP ============================================================= */

int async_udp_bind(const char *host, int port, int flags) {
  if (port < 0 || port > 65535 || (flags & ~LISTEN_FLAGS)) return -EINVAL;
  struct addrinfo *res;
  int err = resolve(host, port, SOCK_DGRAM, 1, 0, 0, &res);
  if (err) return err;
  int fd = bound_socket(res, flags & ASYNC_LISTEN_REUSEPORT, flags);
  freeaddrinfo(res);
  return fd;
}

int async_udp_connect(const char *host, int port) {
  if (!host || port < 1 || port > 65535) return -EINVAL;
  struct addrinfo *res;
  int err = resolve(host, port, SOCK_DGRAM, 0, 0, 0, &res);
  if (err) return err;
  int fd = async_socket(res->ai_family, res->ai_socktype, res->ai_protocol);
  if (fd >= 0 && connect(fd, res->ai_addr, res->ai_addrlen)) {
    err = -errno;
    close(fd);
    fd = err;
  }
  freeaddrinfo(res);
  return fd;
}

/* }==== */
