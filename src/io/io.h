/* SPDX-License-Identifier: MIT */
/* Private pieces of layer 6, I/O: the calls that suspend on an fd
 * (fdio.c, sendfile.c), sockets (socket.c) and buffered streams
 * (stream.c).
 *
 * Every call tries its system call first and waits only on EAGAIN, so a
 * ready fd costs no wake-up. A wait is one fd watcher on the waiting
 * task's stack, parked with the caller's absolute deadline: a call made of
 * several waits (write-all, connect by name) keeps one deadline for all of
 * them. */
#ifndef ASYNC_IO_H
#define ASYNC_IO_H

#include "sync/sync.h"

#include <netdb.h>
#include <sys/socket.h>

/* {==== Waiting on an fd (fdio.c) ====================================== */

/* The deadline of a call given `timeout` seconds: ASYNC__NO_DEADLINE for
 * +infinity, else absolute ns on the loop's clock (now or earlier for
 * zero or less). NaN is for the caller to refuse first. */
int64_t async__io_deadline(async_loop *loop, double timeout);

/* Parks t until fd is ready for `events` (ASYNC__POLL_IN/OUT) or the
 * deadline. Returns > 0 (ready), -ETIMEDOUT (also at once when the
 * deadline has passed), -ECANCELED (also for a cancellation that came
 * after the fd woke t: nothing was consumed), -EBADF (async_fd_close or
 * async_fd_forget dropped fd), or -ENOMEM / the backend's error. */
int async__io_wait(async_loop *loop, async__task *t, int fd, unsigned events,
                   int64_t deadline);

/* The common entry of a suspending I/O call: the running task, or NULL
 * with *err set (-EPERM, -EINVAL for NaN or a negative fd, -ECANCELED for
 * a pending cancellation, which is then consumed). */
async__task *async__io_enter(int fd, double timeout, int *err);

/* Connects to each address of the list in turn, until one connects, all
 * by one deadline (socket.c). Returns the fd, or the last address's
 * error; -ETIMEDOUT and -ECANCELED end the walk. */
int async__tcp_connect_list(async__task *t, const struct addrinfo *res,
                            int64_t deadline);

/* Tests set it to take async_sendfile's read/write path (sendfile.c). */
extern int async__sendfile_force_copy;

/* Tests set it to take the SIGCHLD path of child reaping, as on a kernel
 * without pidfd_open (process.c). */
extern int async__process_no_pidfd;

/* }==== */

/* {==== Name resolution =================================================
 * async_getaddrinfo belongs to the thread pool's DNS lane (src/io/dns.c,
 * include/async/pool.h), built in parallel. Until it is merged,
 * src/io/dns_fallback.c provides a TEMPORARY blocking stand-in, to be
 * deleted at the merge; socket.c calls it only for names that are not
 * numeric addresses (a numeric one resolves with AI_NUMERICHOST, which
 * never blocks). */
/* getaddrinfo's EAI_* code as a negative errno: -ENOENT (no such name),
 * -EAGAIN (temporary), -ENOMEM, errno for EAI_SYSTEM, -EIO otherwise. */
int async__gai_errno(int rc);

/* Assumed: 0, or a negative errno (as async__gai_errno gives). */
#ifndef ASYNC_API_POOL_H
ASYNC_EXTERN int async_getaddrinfo(const char *host, const char *service,
                                   const struct addrinfo *hints,
                                   struct addrinfo **res, double timeout);
#endif

/* }==== */

#endif
