/* SPDX-License-Identifier: MIT */
/** @file
 * libasync: Layer 6, the thread pool: blocking calls on threads
 * (asyncio's to_thread and run_in_executor), and name resolution on it.
 * A chapter of <async.h>, which is what programs include.
 *
 * Each loop has a pool of its own, in two lanes with separate bounds:
 * ASYNC_POOL_WORK for the caller's blocking functions and ASYNC_POOL_DNS
 * for name resolution, so that slow lookups cannot starve other blocking
 * work, nor the other way round. No thread exists before a lane's first
 * job; a lane then starts threads as jobs wait, up to its bound, and keeps
 * them until the loop closes. The threads start with every signal blocked
 * (and, with glibc, are named "async-pool" and "async-dns").
 * A job's completion wakes the loop through a file descriptor of the
 * pool's: the loop sleeps while the work runs (with the virtual clock it
 * waits in real time, as for an fd, while a job is outstanding).
 *
 * Closing the loop shuts its pool down: after the tasks have ended (a task
 * waiting for a job is cancelled like any other), async_loop_close() waits
 * for the functions still running, however long they take, joins every
 * thread, and disposes of the results nobody collected. */
#ifndef ASYNC_API_POOL_H
#define ASYNC_API_POOL_H

#include "base.h"

#include <sys/socket.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Declared here so that this header builds without POSIX feature macros;
 * <netdb.h> defines them for the callers who resolve names. */
struct addrinfo;
struct sockaddr;

/* ==== The thread pool =================================================== */

/** A lane of the pool: a queue of jobs and its own bounded threads. */
typedef enum async_pool_lane {
  ASYNC_POOL_WORK = 0, /**< blocking work: async_to_thread */
  ASYNC_POOL_DNS = 1   /**< name resolution: async_getaddrinfo and
                          async_getnameinfo */
} async_pool_lane;

/** @{ */
/** The default bounds of the lanes, in threads. */
#define ASYNC_POOL_WORK_THREADS 4
#define ASYNC_POOL_DNS_THREADS 2
/** @} */
/** The largest bound async_pool_set_max() accepts. */
#define ASYNC_POOL_MAX_THREADS 256

/** Disposes of what a job's caller gave up: called once for every job
 * whose caller was cancelled or timed out, on the loop's thread, never
 * from a pool thread. `ran` is 1 when fn(arg) ran, and `result` is then
 * what it returned; 0 when the job was dropped before it started, and
 * `result` is then NULL. It owns arg and result from then on (free them
 * there). It is a plain callback: it must not suspend. */
typedef void (*async_dispose_fn)(void *arg, void *result, int ran);

/** Sets the bound of a lane of loop's pool: at most max_threads threads
 * run its jobs at once; jobs beyond them wait in the lane's queue, first
 * come, first served. Defaults: ASYNC_POOL_WORK_THREADS and
 * ASYNC_POOL_DNS_THREADS. Starts no thread.
 * Returns 0, -EINVAL (a NULL loop, an unknown lane, a bound of 0 or above
 * ASYNC_POOL_MAX_THREADS), -ESHUTDOWN (the loop is closed), -EBUSY (the
 * lane has started its threads already: set bounds before the first job),
 * -ENOMEM, or the error of making the pool's wake-up fd (-EMFILE, ...).
 * Suspends: no. */
ASYNC_EXTERN int async_pool_set_max(async_loop *loop, async_pool_lane lane,
                                    unsigned max_threads);

/** The number of threads a lane of loop's pool has started: 0 until its
 * first job, at most its bound. Returns it, or -EINVAL (a NULL loop, an
 * unknown lane). Suspends: no. */
ASYNC_EXTERN int async_pool_threads(const async_loop *loop,
                                    async_pool_lane lane);

/** Runs fn(arg) on a thread of `lane` of the current loop's pool and
 * suspends the calling task until it returns, or until `timeout` seconds
 * have passed (ASYNC_NO_TIMEOUT: no limit; zero or less: -ETIMEDOUT at
 * once, nothing run). On success *result (if result is not NULL) gets
 * what fn returned.
 *
 * fn runs on another thread: it must not call the library, except
 * async_loop_call_soon_threadsafe(), and it reports failure through its
 * result. It cannot be interrupted. So when the task is cancelled or times
 * out, the call returns -ECANCELED or -ETIMEDOUT at once, and then:
 * - a job not yet started (also one never queued: a cancellation pending
 *   at the call, a timeout of zero or less) is dropped without running:
 *   dispose(arg, NULL, 0) is called before this call returns;
 * - a job that is running goes on; once fn returns, the loop calls
 *   dispose(arg, result, 1) (in a later iteration, or at the latest in
 *   async_loop_close()).
 * The same holds when the task is cancelled after fn returned but before
 * the task resumed: dispose(arg, result, 1) is called before -ECANCELED is
 * returned. So dispose is called exactly once for every call that returns
 * -ECANCELED or -ETIMEDOUT, and never for the others. With dispose NULL
 * nothing is called. Since fn may still be using arg after a cancelled
 * call returned, arg must not live in the task's stack frames unless the
 * task cannot be cancelled: give heap memory, freed in dispose.
 *
 * Returns 0, -ECANCELED, -ETIMEDOUT, -EPERM (not in a task), -EINVAL (a
 * NULL fn, an unknown lane, a NaN timeout), -ENOMEM, -EAGAIN (the lane has
 * no thread and none could be started), -ECHILD, or the error of making
 * the pool's wake-up fd or watching it (-EMFILE, ...). On an error other
 * than -ECANCELED, -ETIMEDOUT and -ECHILD, fn was not run and dispose is
 * not called. -ECHILD is a fork(2) (see async_loop_fork): at once, with
 * nothing run nor disposed of, when the loop is inherited and not yet the
 * child's own; after async_loop_fork, for a job that a thread of the
 * parent's was running at the fork (or that was queued, when the child
 * could start no thread for it), once dispose(arg, NULL, 0) was called.
 * Suspends: yes. */
ASYNC_EXTERN int async_pool_run(async_pool_lane lane, async_fn fn, void *arg,
                                void **result, async_dispose_fn dispose,
                                double timeout);

/** asyncio.to_thread(): async_pool_run() on the ASYNC_POOL_WORK lane,
 * without a time limit (async_wait_for or a deadline scope give it one).
 * Returns as async_pool_run(). Suspends: yes. */
ASYNC_EXTERN int async_to_thread(async_fn fn, void *arg, void **result,
                                 async_dispose_fn dispose);

/* ==== Name resolution =================================================== */

/** getaddrinfo(3) on the pool's ASYNC_POOL_DNS lane: resolves host and/or
 * service (either may be NULL, not both) with the optional `hints`
 * (ai_flags, ai_family, ai_socktype and ai_protocol are read), suspending
 * the calling task until done or until `timeout` seconds have passed
 * (ASYNC_NO_TIMEOUT: no limit; zero or less: -ETIMEDOUT at once). host,
 * service and hints are copied: they may go once the call returns.
 * On success *res gets the list, which the caller owns and frees with
 * freeaddrinfo(). On any error *res is NULL; a lookup abandoned by a
 * cancellation or a timeout goes on on its thread, and its late result is
 * freed by the loop.
 * Returns 0, or a negative errno: the resolver's EAI_* codes are mapped
 * to -ENOENT (EAI_NONAME: no such name), -ENODATA (EAI_NODATA: the name
 * has no address), -EADDRNOTAVAIL (EAI_ADDRFAMILY: none of that family),
 * -EAGAIN (EAI_AGAIN: a temporary failure, try again), -EIO (EAI_FAIL, and
 * any code not listed here), -ENOMEM (EAI_MEMORY), -EAFNOSUPPORT
 * (EAI_FAMILY), -ESOCKTNOSUPPORT (EAI_SOCKTYPE), -ESRCH (EAI_SERVICE: no
 * such service for the socket type), -EINVAL (EAI_BADFLAGS), and
 * EAI_SYSTEM to its errno, negated; async_dns_eai() gives the EAI_* code
 * back, for gai_strerror(). Returns also -ECANCELED, -ETIMEDOUT, -EPERM
 * (not in a task), -EINVAL (NULL res, host and service both NULL, a NaN
 * timeout), and the errors of async_pool_run (-ENOMEM, -EAGAIN, -EMFILE,
 * -ECHILD).
 * Suspends: yes. */
ASYNC_EXTERN int async_getaddrinfo(const char *host, const char *service,
                                   const struct addrinfo *hints,
                                   struct addrinfo **res, double timeout);

/** getnameinfo(3) on the pool's ASYNC_POOL_DNS lane: the host name (into
 * host, hostlen bytes) and service name (into serv, servlen bytes) of the
 * address sa (salen bytes, at most sizeof(struct sockaddr_storage)), with
 * getnameinfo's NI_* flags, suspending the calling task until done or
 * until `timeout` seconds have passed (as async_getaddrinfo). Either
 * buffer may be NULL with a length of 0, not both. sa is copied; the
 * buffers are written only on success, before the call returns, with
 * NUL-terminated strings.
 * Returns 0, the errors of async_getaddrinfo with the same mapping, and
 * -ENOSPC (EAI_OVERFLOW: a buffer too small), -EINVAL (a NULL sa, a bad
 * salen, both buffers NULL or of length 0). Suspends: yes. */
ASYNC_EXTERN int async_getnameinfo(const struct sockaddr *sa, socklen_t salen,
                                   char *host, size_t hostlen, char *serv,
                                   size_t servlen, int flags, double timeout);

/** The EAI_* code an error of async_getaddrinfo() or async_getnameinfo()
 * stands for (see their mapping; gai_strerror() describes it), EAI_SYSTEM
 * for other errno values that the resolver may report, or 0 for 0 and for
 * the library's own errors (-ECANCELED, -ETIMEDOUT, -EPERM). -EINVAL gives
 * EAI_BADFLAGS, and -ENOMEM EAI_MEMORY, whichever made them. Suspends: no.
 */
ASYNC_EXTERN int async_dns_eai(int err);

#ifdef __cplusplus
}
#endif

#endif
