/* SPDX-License-Identifier: MIT */
/** @file
 * libasync: Layer 6, I/O: calls on file descriptors that suspend the task
 * instead of blocking, and sockets. A chapter of <async.h>, which is what
 * programs include.
 *
 * Every call here tries its system call first and suspends only when the
 * fd is not ready (EAGAIN), so the fd must be non-blocking: the fds the
 * library makes are (and close-on-exec); async_fd_nonblock() makes any
 * other one so. A blocking fd would block the whole loop.
 *
 * Timeouts follow the library's rule: seconds, ASYNC_NO_TIMEOUT for no
 * limit, zero or less for "already expired" (the call still succeeds if
 * it needs no wait), NaN is -EINVAL. Each suspending call returns
 * -ETIMEDOUT when its time is up, -ECANCELED when its task is cancelled,
 * -EPERM outside a task, and -EBADF when async_fd_close() closes the fd
 * while it waits; "the usual codes" below means these four.
 *
 * A call on a ready fd returns without suspending, so without letting
 * other tasks run (as asyncio's sock_recv): a task that loops over an fd
 * that is always ready should call async_yield() now and then.
 *
 * A cancelled or timed-out call consumes nothing: a read has taken no
 * byte, an accept has left the pending connection for the next one, and
 * a write-all says in *written how much went out before it stopped. */
#ifndef ASYNC_API_IO_H
#define ASYNC_API_IO_H

#include "base.h"

#include <sys/socket.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ==== Calls on file descriptors ========================================= */

/** Makes fd non-blocking and close-on-exec. Returns 0 or -errno (-EBADF).
 * Suspends: no. */
ASYNC_EXTERN int async_fd_nonblock(int fd);

/** Closes fd after waking every task of this thread's loop that waits on
 * it (in any call of this chapter, in async_fd_wait, or in a stream's
 * wait) with -EBADF, and dropping the loop's registration, so that a
 * later fd with the same number cannot wake them; a stream or server
 * that owns fd lets the number go at once (see async_stream_fd). Use it,
 * not close(2), for an fd some task may wait on. Returns 0 or close(2)'s -errno
 * (-EBADF for a bad fd; -EINTR or -EIO still leave fd closed). Suspends: no. */
ASYNC_EXTERN int async_fd_close(int fd);

/** Reads up to n bytes from fd into buf, suspending until some are there.
 * Returns the count (> 0), 0 at end of file (or for n == 0), the usual
 * codes, -EINVAL (buf NULL with n > 0), or read(2)'s -errno. Suspends:
 * yes. */
ASYNC_EXTERN ssize_t async_read(int fd, void *buf, size_t n, double timeout);

/** Writes up to n bytes of buf to fd, suspending until some can go.
 * Returns the count written (> 0, possibly less than n; 0 for n == 0), the
 * usual codes, -EINVAL, -EPIPE or -ECONNRESET (the reader is gone), or
 * write(2)'s -errno. SIGPIPE is never raised: a socket is written with
 * send(MSG_NOSIGNAL), and on a pipe the signal is blocked in the calling
 * thread around the write and the one it raised taken back, so a reader
 * that is gone gives -EPIPE whatever SIGPIPE's disposition.
 * Suspends: yes. */
ASYNC_EXTERN ssize_t async_write(int fd, const void *buf, size_t n,
                                 double timeout);

/** Writes all n bytes of buf to fd, suspending as often as needed within
 * one overall timeout. Returns n, or an error as async_write: then
 * *written (when not NULL; always set) says how many bytes went out, so
 * that a write cancelled or timed out part-way can be resumed.
 * Suspends: yes. */
ASYNC_EXTERN ssize_t async_write_all(int fd, const void *buf, size_t n,
                                     size_t *written, double timeout);

/** recv(2) that suspends: as async_read, with recv's flags (MSG_PEEK,
 * ...; MSG_DONTWAIT is implied). Also -ENOTSOCK. Suspends: yes. */
ASYNC_EXTERN ssize_t async_recv(int fd, void *buf, size_t n, int flags,
                                double timeout);

/** send(2) that suspends: as async_write, with send's flags; MSG_NOSIGNAL
 * is always added. Suspends: yes. */
ASYNC_EXTERN ssize_t async_send(int fd, const void *buf, size_t n, int flags,
                                double timeout);

/** recvfrom(2) that suspends, for datagrams: one datagram (truncated to n
 * bytes) and, when addr is not NULL, its sender in addr and *addrlen (set
 * *addrlen to the size of addr first). Returns its length, the usual
 * codes or recvfrom's -errno. Suspends: yes. */
ASYNC_EXTERN ssize_t async_recvfrom(int fd, void *buf, size_t n, int flags,
                                    struct sockaddr *addr, socklen_t *addrlen,
                                    double timeout);

/** sendto(2) that suspends, for datagrams: sends buf as one datagram to
 * addr (NULL on a connected socket). Returns n, the usual codes, or
 * sendto's -errno (-EMSGSIZE, -ECONNREFUSED from an earlier datagram on a
 * connected UDP socket, ...). Suspends: yes. */
ASYNC_EXTERN ssize_t async_sendto(int fd, const void *buf, size_t n, int flags,
                                  const struct sockaddr *addr,
                                  socklen_t addrlen, double timeout);

/** Accepts a connection on the listening socket fd, suspending until one
 * comes. The new fd is non-blocking and close-on-exec, and the caller's
 * to close; the peer's address goes to addr and *addrlen when addr is not
 * NULL. Returns the fd, the usual codes (a cancelled accept leaves the
 * connection pending for the next), or accept4's -errno: -EMFILE or
 * -ENFILE (out of fds: the connection stays pending), -ECONNABORTED, ...
 * Suspends: yes. */
ASYNC_EXTERN int async_accept(int fd, struct sockaddr *addr, socklen_t *addrlen,
                              double timeout);

/** Connects the non-blocking socket fd to addr, suspending until the
 * connection is made or fails. Returns 0, the usual codes (the connection
 * attempt is then left half-done: close fd), -EINVAL, or the connection's
 * -errno: -ECONNREFUSED, -ENETUNREACH, -EHOSTUNREACH, ... Suspends: yes. */
ASYNC_EXTERN int async_connect(int fd, const struct sockaddr *addr,
                               socklen_t addrlen, double timeout);

/** Sends `count` bytes of the file in_fd, from *offset (or from its file
 * position when offset is NULL), to out_fd, asyncio's loop.sendfile: with
 * sendfile(2), zero-copy, and with read and write where sendfile cannot
 * be used (in_fd is not mmap-able, out_fd is a pipe on an old kernel).
 * count == 0 means up to the end of the file. Suspends on out_fd as
 * needed within one overall timeout. Returns the bytes sent (less than
 * count only at end of file), or an error as async_write_all: then
 * *offset (or the file position) has moved past what went out, so the
 * call can be resumed; *sent (when not NULL; always set) says how much.
 * in_fd must be a regular file (reads of it never wait). Suspends: yes. */
ASYNC_EXTERN ssize_t async_sendfile(int out_fd, int in_fd, off_t *offset,
                                    size_t count, size_t *sent, double timeout);

/* ==== Sockets =========================================================== */

/** Makes a socket as socket(2) does, non-blocking and close-on-exec.
 * Returns the fd or -errno. Suspends: no. */
ASYNC_EXTERN int async_socket(int domain, int type, int protocol);

/** Socket options for async_socket_setopt and async_socket_getopt. */
typedef enum async_sockopt {
  ASYNC_SOCK_NODELAY = 1, /**< TCP_NODELAY: no Nagle delay (0 or 1) */
  ASYNC_SOCK_REUSEADDR,   /**< SO_REUSEADDR (0 or 1) */
  ASYNC_SOCK_REUSEPORT,   /**< SO_REUSEPORT: several sockets on one port */
  ASYNC_SOCK_KEEPALIVE,   /**< SO_KEEPALIVE (0 or 1) */
  ASYNC_SOCK_RCVBUF,      /**< SO_RCVBUF, bytes (the kernel may double it) */
  ASYNC_SOCK_SNDBUF,      /**< SO_SNDBUF, bytes (the kernel may double it) */
  ASYNC_SOCK_V6ONLY       /**< IPV6_V6ONLY: an IPv6 socket takes no IPv4 */
} async_sockopt;

/** Sets option `opt` of the socket fd to `value`. Returns 0, -EINVAL (an
 * unknown option, a negative value), or setsockopt's -errno (-ENOTSOCK,
 * -ENOPROTOOPT, -EBADF). Suspends: no. */
ASYNC_EXTERN int async_socket_setopt(int fd, async_sockopt opt, int value);

/** Reads option `opt` of the socket fd into *value. Returns 0, -EINVAL, or
 * getsockopt's -errno. Suspends: no. */
ASYNC_EXTERN int async_socket_getopt(int fd, async_sockopt opt, int *value);

/** The local port of the bound IPv4 or IPv6 socket fd (after listening on
 * port 0, the port the kernel chose), or -errno (-EAFNOSUPPORT for other
 * families). Suspends: no. */
ASYNC_EXTERN int async_socket_port(int fd);

/** Flags of async_tcp_listen and async_udp_bind, a bit mask. */
enum {
  ASYNC_LISTEN_REUSEPORT = 1, /**< set SO_REUSEPORT before binding */
  ASYNC_LISTEN_V6ONLY = 2     /**< an IPv6 address takes no IPv4 */
};

/** Listens for TCP on host:port: host is a numeric IPv4 or IPv6 address
 * ("127.0.0.1", "::1"), NULL or "" for every IPv4 address, or a name,
 * which is resolved (the first address is used). port 0 lets the kernel
 * choose (see async_socket_port). SO_REUSEADDR is set, as asyncio does;
 * `flags` adds ASYNC_LISTEN_*. backlog <= 0 means SOMAXCONN. Returns the
 * listening fd (non-blocking, close-on-exec; the caller's to close) or
 * -errno: -EINVAL (port > 65535, bad flags), -EADDRINUSE, -EADDRNOTAVAIL,
 * -EAFNOSUPPORT, -EMFILE, or a resolution error as for async_tcp_connect.
 * Suspends: only to resolve a name (then also -EPERM outside a task).
 * Nothing is left behind on failure. */
ASYNC_EXTERN int async_tcp_listen(const char *host, int port, int backlog,
                                  int flags);

/** Connects over TCP to host:port, suspending. host is a numeric IPv4 or
 * IPv6 address or a name; a name is resolved and each of its addresses is
 * tried in turn until one connects, all within one overall timeout.
 * Returns the connected fd (non-blocking, close-on-exec; the caller's to
 * close), or the error of the last address tried (-ECONNREFUSED,
 * -ENETUNREACH, ...), -ETIMEDOUT, -ECANCELED, -EPERM, -EINVAL (host NULL,
 * port out of 1..65535), -ENOENT (the name has no address; resolution
 * errors otherwise come back as -EAGAIN for a temporary failure and -EIO
 * for the others). Suspends: yes. */
ASYNC_EXTERN int async_tcp_connect(const char *host, int port, double timeout);

/** Listens on the Unix stream socket at `path`, which must not exist (an
 * old one is not removed: that is the caller's decision). Returns the fd
 * or -errno: -EINVAL (path NULL), -ENAMETOOLONG (longer than sun_path
 * holds), -EADDRINUSE, -EACCES, ... The caller closes the fd and unlinks
 * path. Suspends: no. */
ASYNC_EXTERN int async_unix_listen(const char *path, int backlog);

/** Connects to the Unix stream socket at `path`. Returns the fd, or
 * -ENOENT (no such socket), -ECONNREFUSED (no one listens), -ENAMETOOLONG,
 * -EINVAL, or the usual codes. Suspends: yes. */
ASYNC_EXTERN int async_unix_connect(const char *path, double timeout);

/** Makes a UDP socket bound to host:port (host numeric or NULL as for
 * async_tcp_listen; port 0: the kernel chooses), for async_recvfrom and
 * async_sendto. SO_REUSEADDR is set only with ASYNC_LISTEN_REUSEPORT (then
 * both are). Returns the fd or -errno as async_tcp_listen. Suspends: no
 * (a name gives -EINVAL: use a numeric address). */
ASYNC_EXTERN int async_udp_bind(const char *host, int port, int flags);

/** Makes a connected UDP socket to the numeric address host:port: plain
 * async_send and async_recv then talk to that peer only, and an ICMP
 * "port unreachable" comes back as -ECONNREFUSED from a later call.
 * Returns the fd or -errno as async_udp_bind. Suspends: no. */
ASYNC_EXTERN int async_udp_connect(const char *host, int port);

#ifdef __cplusplus
}
#endif

#endif
