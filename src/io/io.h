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

/* write(2) that never raises SIGPIPE (fdio.c): a pipe whose reader is
 * gone gives -1 with errno EPIPE. */
ssize_t async__write_nosigpipe(int fd, const void *buf, size_t n);

/* Tests set it to take async_sendfile's read/write path (sendfile.c). */
extern int async__sendfile_force_copy;

/* Tests set it to take the SIGCHLD path of child reaping, as on a kernel
 * without pidfd_open (process.c). */
extern int async__process_no_pidfd;

/* }==== */

/* {==== Thread pool (pool.c) and name resolution (dns.c) =========
 * dns.c runs its lookups through the public async_pool_run() on the
 * ASYNC_POOL_DNS lane; it needs nothing private of pool.c. */

/* getaddrinfo's or getnameinfo's EAI_* code as the negative errno of
 * async_getaddrinfo's doc (include/async/pool.h); `sys` is the errno of
 * the thread that made the call, read for EAI_SYSTEM (dns.c). socket.c's
 * numeric lookups, which never block, go through it too. */
int async__dns_errno(int rc, int sys);

/* }==== */

/* {==== Signals (signal.c) ===============================================
 * A loop's signal state is one record, an extension of the loop (see
 * async__loop_ext) made by its first watch and freed by its close. The
 * handler installed for a watched signal only counts it and writes a byte
 * to that record's pipe. No signal mask is changed anywhere, and exec
 * resets caught signals to their default: a child process (the subprocess
 * code) has nothing of this to undo once it has exec'ed; between fork and
 * exec the handler sees the pid changed and restores what it found, until
 * async_loop_fork gives the child's loop a pipe of its own. */

typedef struct async__sigloop async__sigloop;

/* async_signal_add, and for async_run's SIGINT with `once` set: the
 * handler is installed with SA_RESETHAND, so that the next delivery after
 * the first takes the default action at once, whatever the loop is
 * doing. Returns as async_signal_add. */
int async__signal_watch(async_loop *loop, int signo, async_signal_fn cb,
                        void *arg, int once);

/* }==== */

#endif
