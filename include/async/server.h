/* SPDX-License-Identifier: MIT */
/** @file
 * libasync: Layer 6, I/O: stream servers (asyncio's start_server). A
 * chapter of <async.h>, which is what programs include.
 *
 * A server owns a listening socket (TCP or Unix, from async_tcp_listen or
 * async_unix_listen) and a task that accepts on it. Each accepted
 * connection gets a task of its own, which wraps the connection in a
 * stream (async_stream_open) and runs the handler on it; when the handler
 * returns, the server closes the stream, gives its buffered output
 * close_timeout seconds to go out, and frees it.
 *
 * Accepting pauses while max_connections handlers run, and resumes when
 * one ends: the connections beyond the limit wait in the kernel's backlog.
 * An accept that fails for lack of resources (EMFILE, ENFILE, ENOBUFS,
 * ENOMEM) leaves the connection in the backlog and makes the accepting
 * task sleep accept_backoff seconds (0.1 s by default) before it tries
 * again, so a server out of fds neither spins nor stops; a connection
 * that died in the backlog (ECONNABORTED, EPROTO, EPERM from a firewall)
 * is skipped at once. The connections already open are served throughout.
 *
 * Several loops, one per thread, can serve one port: give each its own
 * listening socket made with ASYNC_LISTEN_REUSEPORT on that port, and the
 * kernel spreads the incoming connections among them. A server belongs to
 * its loop's thread. */
#ifndef ASYNC_API_SERVER_H
#define ASYNC_API_SERVER_H

#include "base.h"
#include "stream.h"

#ifdef __cplusplus
extern "C" {
#endif

/** A server. Opaque; made by async_server_start. */
typedef struct async_server async_server;

/** A connection's handler: runs in the connection's own task, with the
 * connection's stream, which the server owns (the handler must not free
 * it; it may close it, and must leave no other task waiting on it when
 * it returns), and the `arg` given to async_server_start. It
 * returns 0 or a negative errno; an error only counts in
 * async_server_stats.failed, and never stops the server. When the server
 * is stopped past its deadline, the task is cancelled: the handler's
 * suspending calls then return -ECANCELED, and it should return. */
typedef int (*async_server_handler)(async_stream *s, void *arg);

/** The options of async_server_start; async_server_options_init sets the
 * defaults. */
typedef struct async_server_options {
  size_t size;            /**< sizeof(async_server_options): set by _init */
  size_t max_connections; /**< handlers running at once; 0 (the default):
                               no limit */
  double accept_backoff;  /**< seconds accepting sleeps after an accept
                               failed for lack of resources: 0.1 */
  double close_timeout;   /**< seconds a connection's buffered output gets
                               to go out once its handler returned: 10 */
  size_t stack_size;      /**< of each connection's task; 0: the loop's */
  const async_stream_options *stream; /**< for each connection's stream,
                                           copied; NULL: the defaults */
} async_server_options;

/** Fills *opts with the defaults. */
ASYNC_EXTERN void async_server_options_init(async_server_options *opts);

/** What a server has done so far (async_server_get_stats). */
typedef struct async_server_stats {
  unsigned long long accepted;      /**< connections accepted */
  unsigned long long failed;        /**< handlers that returned an error, or
                                         connections that got no stream */
  unsigned long long accept_errors; /**< accepts that failed and were
                                         retried (each resource error also
                                         counts one back-off) */
  unsigned long long backoffs;      /**< sleeps for lack of resources */
  size_t active;                    /**< connection tasks not yet ended */
} async_server_stats;

/** Starts serving the listening socket `fd` on `loop`: spawns the task
 * that accepts, which starts when the caller suspends or the loop runs.
 * The server owns fd on success only (it is closed by async_server_stop).
 * handler(stream, arg) runs once per connection. Stores the server in
 * *out; the caller frees it with async_server_free once it is stopped.
 * Returns 0, -EINVAL (NULL out, loop or handler, fd < 0, bad options:
 * NaN or negative accept_backoff or close_timeout, bad stream options),
 * -EBADF (fd is not open), -ESHUTDOWN (the loop is closed), -ENOMEM.
 * Suspends: no. */
ASYNC_EXTERN int async_server_start(async_server **out, async_loop *loop,
                                    int fd, async_server_handler handler,
                                    void *arg,
                                    const async_server_options *opts);

/** The listening fd (for async_socket_port), or -EBADF once the server is
 * stopping or the fd was closed behind its back with async_fd_close (the
 * server then lets the number go at once, and never closes it), or
 * -EINVAL. Suspends: no. */
ASYNC_EXTERN int async_server_fd(const async_server *srv);

/** Waits until the server stops accepting (asyncio's serve_forever): when
 * async_server_stop has finished, or when accepting failed in a way that
 * retrying cannot mend (the listening fd was closed behind the server's
 * back, ...). Returns 0 after a stop, that accept error, -EINVAL, -EXDEV
 * (a task of another loop), -EPERM outside a task, or -ECANCELED: a
 * cancelled serve_forever first stops the server with no grace (as
 * async_server_stop with a timeout of 0). Any number of tasks may wait.
 * Suspends: yes. */
ASYNC_EXTERN int async_server_serve_forever(async_server *srv);

/** Stops the server gracefully: closes the listening socket at once (new
 * connections are refused, those in the backlog reset), waits up to
 * `timeout` seconds for the handlers to return, then cancels those still
 * running and waits for them to end. Returns the number of handlers it
 * cancelled (0: all returned in time), -EINVAL (NaN timeout, not a
 * server), -EXDEV, -EPERM outside a task, -EALREADY when another stop is
 * under way or done, or -ECANCELED when the stopping task is cancelled:
 * the handlers are then all cancelled at once and the stop waits for
 * them, unless cancelled again (then some may still be ending, and
 * async_server_free says -EBUSY until they have). A handler may stop its
 * own server: the stop waits for the other handlers only, and the server
 * is stopped once that handler has returned too. Suspends: yes. */
ASYNC_EXTERN int async_server_stop(async_server *srv, double timeout);

/** Copies the server's counters to *out. Returns 0 or -EINVAL.
 * Suspends: no. */
ASYNC_EXTERN int async_server_get_stats(const async_server *srv,
                                        async_server_stats *out);

/** Frees a server that is stopped and has no task left, or one whose loop
 * was closed (which ends every task, and with them their streams and
 * fds), always before that loop is freed. NULL is a no-op. Returns 0,
 * -EINVAL (not a server), -EBUSY (still serving, or tasks still ending:
 * nothing is freed). Suspends: no. */
ASYNC_EXTERN int async_server_free(async_server *srv);

#ifdef __cplusplus
}
#endif

#endif
