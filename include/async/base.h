/* SPDX-License-Identifier: MIT */
/** @file
 * libasync: Conventions in code: the export macro, the version, errors, the
 * clock, and the types every chapter uses. A chapter of <async.h>, which is
 * what programs include. */
#ifndef ASYNC_API_BASE_H
#define ASYNC_API_BASE_H

#include <math.h>
#include <stddef.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define ASYNC_EXTERN __attribute__((visibility("default")))
#else
#define ASYNC_EXTERN
#endif

/** @{ */
/** The version of this header, defined here only (CMakeLists.txt reads
 * these three lines; each part is below 256); async_version() gives the
 * library's. */
#define ASYNC_VERSION_MAJOR 0
#define ASYNC_VERSION_MINOR 1
#define ASYNC_VERSION_PATCH 0
/** @} */

/** The version as one number, 0xMMmmpp, that compares in version order:
 * `#if ASYNC_VERSION_HEX >= 0x000200` for code that needs 0.2.0. */
#define ASYNC_VERSION_HEX                                                      \
  ((ASYNC_VERSION_MAJOR << 16) | (ASYNC_VERSION_MINOR << 8) |                  \
   ASYNC_VERSION_PATCH)

/** The version of the library linked in, as "MAJOR.MINOR.PATCH". A static
 * string; never NULL. Does not suspend. */
ASYNC_EXTERN const char *async_version(void);

/** The version of the library linked in, as ASYNC_VERSION_HEX was when it was
 * built: a program compares it with the ASYNC_VERSION_HEX it was compiled
 * against to find a shared library older than its header. Does not
 * suspend; cannot fail. */
ASYNC_EXTERN unsigned async_version_hex(void);

/** A static description of an error code (negative errno, or 0). Codes the
 * library gives a meaning of its own (-ESHUTDOWN, -EXDEV, -EDEADLK, ...) are
 * described in those terms; others as strerror would. Never NULL. */
ASYNC_EXTERN const char *async_strerror(int err);

/** Seconds on the monotonic clock (CLOCK_MONOTONIC). Needs no loop. */
ASYNC_EXTERN double async_clock(void);

/** No time limit: what to pass as a timeout (seconds) to wait as long as it
 * takes. As in asyncio, a timeout or delay of zero or less means "already
 * expired", never "no limit": a remaining time computed as deadline - now
 * that went negative times out instead of waiting forever. NaN is -EINVAL
 * wherever a time is taken. */
#define ASYNC_NO_TIMEOUT INFINITY

/* ==== Types ============================================================= */

/** An event loop. Opaque; made by async_loop_new. */
typedef struct async_loop async_loop;

/** A future: a slot that becomes done once, with a result (void *) or an
 * error (negative errno), and wakes whoever waits for it. */
typedef struct async_future async_future;

/** A task is a future driven by a coroutine: every async_future_* function
 * accepts a task, so arrays of tasks and of futures mix freely. */
typedef struct async_future async_task;

/** A scheduled callback (call_soon, call_later, call_at). */
typedef struct async_handle async_handle;

/** A coroutine: runs as a task, returns its result. To fail, return
 * async_fail(err). */
typedef void *(*async_fn)(void *arg);

/** A plain callback run by the loop. It must not suspend. */
typedef void (*async_callback)(void *arg);

/** A done callback: called by the loop, soon after `f` is done. */
typedef void (*async_done_fn)(async_future *f, void *arg);

#ifdef __cplusplus
}
#endif

#endif
