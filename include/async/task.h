/* SPDX-License-Identifier: MIT */
/** @file
 * libasync: Layer 3, tasks and futures.
 * A chapter of <async.h>, which is what programs include. */
#ifndef ASYNC_API_TASK_H
#define ASYNC_API_TASK_H

#include "base.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ==== Tasks ============================================================= */

/** The options of async_task_spawn; async_task_options_init sets defaults. */
typedef struct async_task_options {
  size_t size;       /**< sizeof(async_task_options): set by _init */
  const char *name;  /**< copied; NULL: "Task-<n>" */
  size_t stack_size; /**< 0: the loop's default */
} async_task_options;

/** Fills *opts with the defaults. */
ASYNC_EXTERN void async_task_options_init(async_task_options *opts);

/** Creates a task that will run fn(arg) on `loop` (running or not yet),
 * after the callbacks and tasks already ready, with a copy of the current
 * context (its spawner's context variables, see async/context.h). The task
 * does not start
 * before the creator suspends or the loop runs; until it starts it holds
 * no stack. Stores in *out a reference the caller owns and gives back with
 * async_future_release (the loop keeps its own until the task is done), or
 * pass out NULL to let the loop own it alone.
 * Returns 0, -EINVAL (NULL loop or fn, bad options), -ESHUTDOWN, -ENOMEM;
 * on error the task does not exist and fn never runs. Suspends: no. */
ASYNC_EXTERN int async_task_spawn(async_loop *loop, async_task **out,
                                  async_fn fn, void *arg,
                                  const async_task_options *opts);

/** Shorthand: spawns fn(arg) on the running loop of this thread and returns
 * the caller's reference, or NULL on failure (no running loop, NULL fn,
 * out of memory; async_task_spawn gives the reason). Suspends: no. */
ASYNC_EXTERN async_task *async_spawn(async_fn fn, void *arg);

/** For a task's return statement: records `err` (a negative errno; a
 * positive one is negated; 0 becomes -EINVAL) as the running task's error
 * and returns NULL, so that `return async_fail(-EIO);` fails the task.
 * Outside a task it only returns NULL. */
ASYNC_EXTERN void *async_fail(int err);

/** The task running now on this thread, or NULL (in a callback, outside a
 * loop). The reference is borrowed. */
ASYNC_EXTERN async_task *async_task_current(void);

/** Stores up to `cap` borrowed pointers to the loop's tasks that are not done
 * yet in out[], in creation order, and returns how many there are (which
 * may exceed cap), or -EINVAL. The pointers stay valid until the caller
 * next suspends or returns to the loop. */
ASYNC_EXTERN long async_task_all(async_loop *loop, async_task **out,
                                 size_t cap);

/** The task's name: the one given, or "Task-<n>". Valid while the caller
 * holds its reference. NULL for NULL or a bare future. */
ASYNC_EXTERN const char *async_task_name(const async_task *t);

/** Renames the task (the name is copied). Returns 0, -EINVAL, -ENOMEM. */
ASYNC_EXTERN int async_task_set_name(async_task *t, const char *name);

/** Writes one line per task of the loop that is not done, in creation
 * order, to `out`: its name, its state (ready, running, waiting) and, when
 * waiting, on what ("sleep", "await", "fd", "queue", ...). For debugging a
 * program that hangs. Returns the number of tasks listed, or -EINVAL.
 * Suspends: no. */
ASYNC_EXTERN long async_loop_dump(async_loop *loop, FILE *out);

/** Gives up the current task's turn: runs the callbacks and tasks that are
 * ready, then resumes (asyncio.sleep(0)).
 * Returns 0, -ECANCELED, -EPERM. Suspends: yes. */
ASYNC_EXTERN int async_yield(void);

/** Suspends the current task for `seconds` (<= 0 behaves as async_yield).
 * INFINITY, or any delay past the clock's range (about 292 years), never
 * passes, on either clock: only a cancellation ends such a sleep.
 * Returns 0 after the time has passed, -ECANCELED if the task is cancelled
 * before it runs again (even after the time has passed), -EINVAL for NaN,
 * -EPERM outside a task. Suspends: yes. */
ASYNC_EXTERN int async_sleep(double seconds);

/* ==== Futures (and tasks) =============================================== */

/** Creates a pending bare future on `loop`, resolved by async_future_set_*
 * (typically from a callback: the bridge for callback-based C libraries).
 * The caller owns the reference in *out.
 * Returns 0, -EINVAL, -ESHUTDOWN, -ENOMEM. Suspends: no. */
ASYNC_EXTERN int async_future_new(async_loop *loop, async_future **out);

/** Marks a pending bare future done with `result` and wakes its waiters.
 * Returns 0, -EINVAL (NULL; a task, whose outcome is its coroutine's),
 * -EALREADY (already done). Suspends: no. */
ASYNC_EXTERN int async_future_set_result(async_future *f, void *result);

/** Marks a pending bare future failed with `err` (negative errno; positive
 * is negated, 0 is -EINVAL). Returns as async_future_set_result. */
ASYNC_EXTERN int async_future_set_error(async_future *f, int err);

/** Waits until f is done and returns its outcome: 0 with its result in
 * *result (result may be NULL), or its error. Awaiting a done future does
 * not suspend. If the waiting task is cancelled, f is cancelled too
 * (asyncio's semantics; async_shield prevents it) and, once f is done, the
 * call returns -ECANCELED. So is f when a request of the task is still
 * pending as it calls this (it cancelled itself): the request goes to f,
 * and the call returns once f is done, as for a request made during the
 * wait.
 * Returns also -EINVAL, -EPERM (outside a task), -EDEADLK (a task awaiting
 * itself), -EXDEV (f belongs to another loop). Suspends: yes, unless f is
 * done. */
ASYNC_EXTERN int async_await(async_future *f, void **result);

/** 1 if f is done (result, error or cancelled), 0 if pending, -EINVAL. */
ASYNC_EXTERN int async_future_done(const async_future *f);

/** 1 if f is done with -ECANCELED, 0 otherwise, -EINVAL. */
ASYNC_EXTERN int async_future_cancelled(const async_future *f);

/** Without waiting: 0 with f's result in *result, f's error, or
 * -EINPROGRESS when f is not done; -EINVAL. Reading marks the error as
 * retrieved (see async_loop_close). Suspends: no. */
ASYNC_EXTERN int async_future_result(const async_future *f, void **result);

/** Requests cancellation. A bare future is done at once with -ECANCELED. A
 * task gets -ECANCELED from the suspending call it is in, or from its next
 * one; it may clean up and even carry on: its outcome is what it returns
 * (return async_fail(-ECANCELED) to end cancelled). A task that returns
 * while a request is still pending (it cancelled itself and did not
 * suspend again; it was woken with a result and cancelled before it ran)
 * ends cancelled, unless it failed with an error of its own. A task that
 * has not started ends cancelled without running. A task waiting in
 * async_await passes the request on to what it awaits, and the await then
 * returns what that ends with: -ECANCELED, another error it failed with,
 * or even its result if it caught the cancellation (asyncio's rule).
 * Every request on a task not done counts (async_task_cancelling); one
 * made while another is pending is merged with it: a single -ECANCELED.
 * Returns 1 if f was not done (a request was made), 0 if it is done,
 * -EINVAL. Suspends: no. */
ASYNC_EXTERN int async_future_cancel(async_future *f);

/** Adds cb(f, arg), called by the loop soon after f is done (in the order
 * added; right away-scheduled if f is already done), in a copy of the
 * context current now.
 * Returns 0, -EINVAL, -ESHUTDOWN, -ENOMEM. Suspends: no. */
ASYNC_EXTERN int async_future_add_done_callback(async_future *f,
                                                async_done_fn cb, void *arg);

/** Removes every pending registration of (cb, arg) and returns how many
 * there were, or -EINVAL. */
ASYNC_EXTERN int async_future_remove_done_callback(async_future *f,
                                                   async_done_fn cb, void *arg);

/** Gives back the caller's reference. A pending task keeps running (the loop
 * holds its own reference). Releasing twice is detected and returns -EINVAL
 * as long as the memory has not been reused by a later allocation; do not
 * rely on it. Returns 0 or -EINVAL. Suspends: no. */
ASYNC_EXTERN int async_future_release(async_future *f);

/** How many cancellation requests the task has had (asyncio's
 * Task.cancelling()): every async_task_cancel while it was not done, merged
 * ones included, less those taken back by async_task_uncancel (deadline
 * scopes and task groups take back their own). Still readable once the
 * task is done. Returns the count (saturating at INT_MAX), or -EINVAL (NULL,
 * a bare future). Suspends: no. */
ASYNC_EXTERN int async_task_cancelling(const async_task *t);

/** Takes back one cancellation request (asyncio's Task.uncancel(), as of
 * Python 3.13): decrements the count if it is above 0, and when it reaches
 * 0 a request not yet delivered is withdrawn, so the task's next
 * suspending call does not fail. A request already delivered stays so.
 * For code that handles a cancellation it asked for itself and lets the
 * task carry on. Returns the count left, or -EINVAL. Suspends: no. */
ASYNC_EXTERN int async_task_uncancel(async_task *t);

/** Every async_future_* call that applies to a task, under its task name. */
static inline int async_task_release(async_task *t) {
  return async_future_release(t);
}
static inline int async_task_cancel(async_task *t) {
  return async_future_cancel(t);
}
static inline int async_task_done(const async_task *t) {
  return async_future_done(t);
}
static inline int async_task_cancelled(const async_task *t) {
  return async_future_cancelled(t);
}
static inline int async_task_result(const async_task *t, void **result) {
  return async_future_result(t, result);
}
static inline int async_task_add_done_callback(async_task *t, async_done_fn cb,
                                               void *arg) {
  return async_future_add_done_callback(t, cb, arg);
}
static inline int async_task_remove_done_callback(async_task *t,
                                                  async_done_fn cb, void *arg) {
  return async_future_remove_done_callback(t, cb, arg);
}

#ifdef __cplusplus
}
#endif

#endif
