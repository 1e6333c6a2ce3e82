/* SPDX-License-Identifier: MIT */
/** @file
 * libasync: Layer 2, fd watchers: waiting for a file descriptor.
 * A chapter of <async.h>, which is what programs include. */
#ifndef ASYNC_API_FD_H
#define ASYNC_API_FD_H

#include "base.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ==== File descriptors ================================================== */

/** @{ */
/** The events of async_fd_wait, a bit mask. */
#define ASYNC_READABLE 1
#define ASYNC_WRITABLE 2
/** @} */

/** Suspends the current task until fd is ready for `events` (ASYNC_READABLE
 * and/or ASYNC_WRITABLE) or `timeout` seconds have passed (ASYNC_NO_TIMEOUT:
 * no limit). An error or hang-up on fd counts as ready for both. Several
 * tasks may wait on one fd.
 * A timeout of zero or less has expired already: the call does not
 * suspend, and reports the readiness fd has right now (asked of poll(2),
 * for which a regular file is always ready), else -ETIMEDOUT.
 * Returns the ready events (> 0), -ETIMEDOUT, -ECANCELED, -EINVAL (bad fd
 * or events, NaN timeout), -EPERM (outside a task), -EBADF (fd is not
 * open; or it was handed to async_fd_forget while waiting; or, misuse, it
 * was closed without that while waiting and its number now names another
 * file: with epoll as soon as another task waits on the number, with poll
 * also when the number is next reported ready; with epoll, a closed fd
 * whose number nobody reuses is never reported and the wait lasts until
 * its timeout), -ECHILD (the loop was inherited through fork(2): see
 * async_loop_fork), or the poller's error (-EPERM for a regular file under
 * epoll). A number never waited on is checked (fcntl) before the loop's
 * tables grow for it, so a huge one costs nothing. Suspends: yes, unless
 * timeout <= 0. */
ASYNC_EXTERN int async_fd_wait(int fd, int events, double timeout);

/** Call before closing an fd some task may wait on: wakes every waiter with
 * -EBADF and drops the loop's registration, so a reused fd number cannot
 * wake the wrong task. Returns the number of waiters woken, or -EINVAL.
 * Suspends: no. */
ASYNC_EXTERN int async_fd_forget(async_loop *loop, int fd);

#ifdef __cplusplus
}
#endif

#endif
