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
 * or events, NaN timeout), -EPERM (outside a task), -EBADF (the fd was
 * closed and handed to async_fd_forget while waiting, or is not open when
 * timeout <= 0), or the poller's error (-EPERM for a regular file under
 * epoll). Suspends: yes, unless timeout <= 0. */
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
