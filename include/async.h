/* libasync: asyncio for C.
 *
 * A single-threaded event loop that runs stackful coroutines. Any C function
 * of the shape `void *fn(void *arg)` runs as a task; a call that suspends (a
 * sleep, an await, an fd wait) suspends only that task, however deep in its
 * own calls it is made, while the loop runs the others.
 *
 *   static void *count(void *arg) {
 *     puts("One");
 *     async_sleep(1.0);                 // suspends this task only
 *     puts("Two");
 *     return NULL;
 *   }
 *   int main(void) { return async_run(count, NULL, NULL) != 0; }
 *
 * Conventions that hold for every function below:
 *
 * Errors are negative errno values returned by the call (0 or a count on
 *   success); async_strerror() turns one into text. There is no global error
 *   state. The codes used for misuse are: -EINVAL (a NULL or invalid
 *   argument, a handle released twice), -EPERM (a suspending call made
 *   outside a task), -EDEADLK (a task awaiting itself), -EXDEV (an object of
 *   another loop), -EBUSY (a loop already running, closing a running loop),
 *   -ESHUTDOWN (the loop is closed).
 * "Suspends: yes" marks the calls that may only be made from a task (they
 *   return -EPERM elsewhere) and that may run other tasks before returning.
 *   A cancelled task's suspending calls return -ECANCELED (see
 *   async_future_cancel).
 * Time is in seconds, as a double, on the monotonic clock.
 * Threads: a loop and everything made on it belong to the thread that runs
 *   it; one loop per thread at a time. Only async_call_soon_threadsafe() may
 *   be called from another thread.
 */
#ifndef ASYNC_H
#define ASYNC_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(ASYNC_STATIC)
#define ASYNC_EXTERN
#elif defined(__GNUC__)
#define ASYNC_EXTERN __attribute__((visibility("default")))
#else
#define ASYNC_EXTERN
#endif

#define ASYNC_VERSION_MAJOR 0
#define ASYNC_VERSION_MINOR 1
#define ASYNC_VERSION_PATCH 0

/* The library's version as "MAJOR.MINOR.PATCH". */
ASYNC_EXTERN const char *async_version(void);

/* A static description of an error code (negative errno, or 0). Codes the
 * library gives a meaning of its own (-ESHUTDOWN, -EXDEV, -EDEADLK, ...) are
 * described in those terms; others as strerror would. Never NULL. */
ASYNC_EXTERN const char *async_strerror(int err);

/* Seconds on the monotonic clock (CLOCK_MONOTONIC). Needs no loop. */
ASYNC_EXTERN double async_clock(void);

/* ==== Types ============================================================= */

/* An event loop. Opaque; made by async_loop_new. */
typedef struct async_loop async_loop;

/* A future: a slot that becomes done once, with a result (void *) or an
 * error (negative errno), and wakes whoever waits for it. */
typedef struct async_future async_future;

/* A task is a future driven by a coroutine: every async_future_* function
 * accepts a task, so arrays of tasks and of futures mix freely. */
typedef struct async_future async_task;

/* A scheduled callback (call_soon, call_later, call_at). */
typedef struct async_handle async_handle;

/* A coroutine: runs as a task, returns its result. To fail, return
 * async_fail(err). */
typedef void *(*async_fn)(void *arg);

/* A plain callback run by the loop. It must not suspend. */
typedef void (*async_callback)(void *arg);

/* A done callback: called by the loop, soon after `f` is done. */
typedef void (*async_done_fn)(async_future *f, void *arg);

/* ==== Running a program ================================================= */

/* asyncio.run(): makes a new loop, runs fn(arg) as its main task until it
 * returns, then cancels every task still pending and lets them unwind, and
 * closes the loop. Stores the main task's result in *result (if result is
 * not NULL; NULL when it failed).
 * Returns 0, the main task's error, -EBUSY when a loop is already running
 * on this thread, -EINVAL for a NULL fn, or -ENOMEM.
 * Suspends: no (it runs a loop; it must not be called from a task). */
ASYNC_EXTERN int async_run(async_fn fn, void *arg, void **result);

/* ==== Loops ============================================================= */

typedef struct async_loop_options {
  size_t size;        /* sizeof(async_loop_options): set by _init */
  const char *backend; /* "epoll", "poll", "kqueue"; NULL: the environment
                          variable ASYNC_BACKEND, else the best one built */
  size_t stack_size;  /* default stack size of the loop's tasks, in bytes;
                         0: 256 KiB. Stacks cost address space, and memory
                         only for the pages a task touches */
  int report_overflow; /* 1 (default): a stack overflow is reported with the
                          task's name (a SIGSEGV handler on an alternate
                          signal stack); 0: leave SIGSEGV alone */
} async_loop_options;

/* Fills *opts with the defaults. */
ASYNC_EXTERN void async_loop_options_init(async_loop_options *opts);

/* Makes a loop (opts may be NULL for the defaults) and stores it in *out.
 * The caller owns it: async_loop_free() ends it.
 * Returns 0, -EINVAL (NULL out, an unknown backend), -ENOMEM, or the error
 * of the poller's creation (-EMFILE, ...). */
ASYNC_EXTERN int async_loop_new(async_loop **out,
                                const async_loop_options *opts);

/* Closes the loop: cancels every pending task and runs the loop until they
 * have unwound (a task that keeps ignoring cancellation is given up after
 * a number of rounds and reported on stderr, its stack freed without
 * running its cleanup), drops pending callbacks, frees stacks and the
 * poller. The loop object stays valid for async_loop_is_closed() until
 * async_loop_free(). Futures and tasks whose references are still held stay
 * readable (done, result, name) and must still be released.
 * Closing a closed loop does nothing and returns 0.
 * Returns 0, -EINVAL, or -EBUSY when the loop is running.
 * Suspends: no. */
ASYNC_EXTERN int async_loop_close(async_loop *loop);

/* Closes the loop if needed and frees it. NULL is a harmless no-op.
 * Returns 0, or -EBUSY when the loop is running (nothing is freed). */
ASYNC_EXTERN int async_loop_free(async_loop *loop);

/* Runs the loop until async_loop_stop(). A stop requested before the call
 * makes it run one iteration. Returns 0, -EINVAL, -EBUSY (this loop or
 * another one is running on this thread), -ESHUTDOWN (closed).
 * Suspends: no (must not be called from a task). */
ASYNC_EXTERN int async_loop_run_forever(async_loop *loop);

/* Runs the loop until `f` (a task or a future of this loop) is done, then
 * returns its outcome: 0 with its result in *result (result may be NULL), or
 * its error. The caller keeps its reference to f.
 * Returns also -EINVAL, -EBUSY, -ESHUTDOWN, -EXDEV (f belongs to another
 * loop), and -ECANCELED... only as f's own outcome. If the loop is stopped
 * before f is done, returns -EINTR.
 * Suspends: no (must not be called from a task). */
ASYNC_EXTERN int async_loop_run_until_complete(async_loop *loop,
                                               async_future *f,
                                               void **result);

/* Asks a running loop to return from run_forever / run_until_complete
 * after the current iteration: the callbacks and tasks already ready run,
 * new ones wait for the next run. Returns 0 or -EINVAL. Suspends: no. */
ASYNC_EXTERN int async_loop_stop(async_loop *loop);

/* 1 while the loop runs, else 0 (also for NULL). */
ASYNC_EXTERN int async_loop_is_running(const async_loop *loop);

/* 1 once the loop is closed, else 0 (also for NULL). */
ASYNC_EXTERN int async_loop_is_closed(const async_loop *loop);

/* The loop's clock in seconds: the monotonic clock, as read at the start of
 * the current iteration. NaN for NULL. */
ASYNC_EXTERN double async_loop_time(const async_loop *loop);

/* The name of the loop's poller backend ("epoll", "poll", ...). */
ASYNC_EXTERN const char *async_loop_backend(const async_loop *loop);

/* The loop running on this thread, or NULL. */
ASYNC_EXTERN async_loop *async_current_loop(void);

/* ==== Callbacks ========================================================= */

/* Schedules cb(arg) to run on the next loop iteration, after the callbacks
 * and tasks already ready (FIFO). If out is not NULL the caller gets a
 * handle it owns and must give back with exactly one of async_handle_cancel
 * or async_handle_release; with out NULL the loop frees everything.
 * Returns 0, -EINVAL, -ESHUTDOWN, -ENOMEM. Suspends: no. */
ASYNC_EXTERN int async_call_soon(async_loop *loop, async_callback cb,
                                 void *arg, async_handle **out);

/* Schedules cb(arg) `delay` seconds from now (a negative delay counts as
 * 0). Callbacks due at the same time run in the order they were scheduled.
 * Handle ownership as for async_call_soon.
 * Returns 0, -EINVAL (also for a NaN delay), -ESHUTDOWN, -ENOMEM. */
ASYNC_EXTERN int async_call_later(async_loop *loop, double delay,
                                  async_callback cb, void *arg,
                                  async_handle **out);

/* Schedules cb(arg) at loop time `when` (see async_loop_time). As
 * async_call_later otherwise. */
ASYNC_EXTERN int async_call_at(async_loop *loop, double when,
                               async_callback cb, void *arg,
                               async_handle **out);

/* Cancels the callback if it has not run yet, and gives the handle back.
 * Returns 1 if this call stopped the callback from running, 0 if it had
 * already run or been dropped, -EINVAL (NULL, a handle given back twice).
 * Safe after the loop is closed. Suspends: no. */
ASYNC_EXTERN int async_handle_cancel(async_handle *h);

/* Gives the handle back without cancelling the callback.
 * Returns 0 or -EINVAL (NULL, a handle given back twice). */
ASYNC_EXTERN int async_handle_release(async_handle *h);

/* From any thread: schedules cb(arg) on the loop as async_call_soon does,
 * and wakes the loop if it is waiting. The loop must not be freed while
 * this runs. Returns 0, -EINVAL, -ESHUTDOWN, -ENOMEM. Suspends: no. */
ASYNC_EXTERN int async_call_soon_threadsafe(async_loop *loop,
                                            async_callback cb, void *arg);

/* ==== Tasks ============================================================= */

typedef struct async_task_options {
  size_t size;       /* sizeof(async_task_options): set by _init */
  const char *name;  /* copied; NULL: "Task-<n>" */
  size_t stack_size; /* 0: the loop's default */
} async_task_options;

/* Fills *opts with the defaults. */
ASYNC_EXTERN void async_task_options_init(async_task_options *opts);

/* Creates a task that will run fn(arg) on `loop` (running or not yet),
 * after the callbacks and tasks already ready. The task does not start
 * before the creator suspends or the loop runs; until it starts it holds
 * no stack. Stores in *out a reference the caller owns and gives back with
 * async_future_release (the loop keeps its own until the task is done), or
 * pass out NULL to let the loop own it alone.
 * Returns 0, -EINVAL (NULL loop or fn, bad options), -ESHUTDOWN, -ENOMEM;
 * on error the task does not exist and fn never runs. Suspends: no. */
ASYNC_EXTERN int async_task_spawn(async_loop *loop, async_task **out,
                                  async_fn fn, void *arg,
                                  const async_task_options *opts);

/* Shorthand: spawns fn(arg) on the running loop of this thread and returns
 * the caller's reference, or NULL on failure (no running loop, NULL fn,
 * out of memory; async_task_spawn gives the reason). Suspends: no. */
ASYNC_EXTERN async_task *async_spawn(async_fn fn, void *arg);

/* For a task's return statement: records `err` (a negative errno; a
 * positive one is negated; 0 becomes -EINVAL) as the running task's error
 * and returns NULL, so that `return async_fail(-EIO);` fails the task.
 * Outside a task it only returns NULL. */
ASYNC_EXTERN void *async_fail(int err);

/* The task running now on this thread, or NULL (in a callback, outside a
 * loop). The reference is borrowed. */
ASYNC_EXTERN async_task *async_current_task(void);

/* Stores up to `cap` borrowed pointers to the loop's tasks that are not done
 * yet in out[], in creation order, and returns how many there are (which
 * may exceed cap), or -EINVAL. The pointers stay valid until the caller
 * next suspends or returns to the loop. */
ASYNC_EXTERN long async_all_tasks(async_loop *loop, async_task **out,
                                  size_t cap);

/* The task's name: the one given, or "Task-<n>". Valid while the caller
 * holds its reference. NULL for NULL or a bare future. */
ASYNC_EXTERN const char *async_task_name(const async_task *t);

/* Renames the task (the name is copied). Returns 0, -EINVAL, -ENOMEM. */
ASYNC_EXTERN int async_task_set_name(async_task *t, const char *name);

/* Gives up the current task's turn: runs the callbacks and tasks that are
 * ready, then resumes (asyncio.sleep(0)).
 * Returns 0, -ECANCELED, -EPERM. Suspends: yes. */
ASYNC_EXTERN int async_yield(void);

/* Suspends the current task for `seconds` (<= 0 behaves as async_yield).
 * Returns 0 after the time has passed, -ECANCELED if the task is cancelled
 * before, -EINVAL for NaN, -EPERM outside a task. Suspends: yes. */
ASYNC_EXTERN int async_sleep(double seconds);

/* ==== Futures (and tasks) =============================================== */

/* Creates a pending bare future on `loop`, resolved by async_future_set_*
 * (typically from a callback: the bridge for callback-based C libraries).
 * The caller owns the reference in *out.
 * Returns 0, -EINVAL, -ESHUTDOWN, -ENOMEM. Suspends: no. */
ASYNC_EXTERN int async_future_new(async_loop *loop, async_future **out);

/* Marks a pending bare future done with `result` and wakes its waiters.
 * Returns 0, -EINVAL (NULL; a task, whose outcome is its coroutine's),
 * -EALREADY (already done). Suspends: no. */
ASYNC_EXTERN int async_future_set_result(async_future *f, void *result);

/* Marks a pending bare future failed with `err` (negative errno; positive
 * is negated, 0 is -EINVAL). Returns as async_future_set_result. */
ASYNC_EXTERN int async_future_set_error(async_future *f, int err);

/* Waits until f is done and returns its outcome: 0 with its result in
 * *result (result may be NULL), or its error. Awaiting a done future does
 * not suspend. If the waiting task is cancelled, f is cancelled too
 * (asyncio's semantics; async_shield prevents it) and, once f is done, the
 * call returns -ECANCELED.
 * Returns also -EINVAL, -EPERM (outside a task), -EDEADLK (a task awaiting
 * itself), -EXDEV (f belongs to another loop). Suspends: yes, unless f is
 * done. */
ASYNC_EXTERN int async_await(async_future *f, void **result);

/* 1 if f is done (result, error or cancelled), 0 if pending, -EINVAL. */
ASYNC_EXTERN int async_future_done(const async_future *f);

/* 1 if f is done with -ECANCELED, 0 otherwise, -EINVAL. */
ASYNC_EXTERN int async_future_cancelled(const async_future *f);

/* Without waiting: 0 with f's result in *result, f's error, or
 * -EINPROGRESS when f is not done; -EINVAL. Reading marks the error as
 * retrieved (see async_loop_close). Suspends: no. */
ASYNC_EXTERN int async_future_result(const async_future *f, void **result);

/* Requests cancellation. A bare future is done at once with -ECANCELED. A
 * task gets -ECANCELED from the suspending call it is in, or from its next
 * one; it may clean up and even carry on: its outcome is what it returns
 * (return async_fail(-ECANCELED) to end cancelled). A task that has not
 * started ends cancelled without running. A task waiting in async_await
 * passes the request on to what it awaits.
 * Returns 1 if a request was made, 0 if f is already done (or a request is
 * already pending), -EINVAL. Suspends: no. */
ASYNC_EXTERN int async_future_cancel(async_future *f);

/* Adds cb(f, arg), called by the loop soon after f is done (in the order
 * added; right away-scheduled if f is already done).
 * Returns 0, -EINVAL, -ESHUTDOWN, -ENOMEM. Suspends: no. */
ASYNC_EXTERN int async_future_add_done_callback(async_future *f,
                                                async_done_fn cb, void *arg);

/* Removes every pending registration of (cb, arg) and returns how many
 * there were, or -EINVAL. */
ASYNC_EXTERN int async_future_remove_done_callback(async_future *f,
                                                   async_done_fn cb,
                                                   void *arg);

/* Gives back the caller's reference. A pending task keeps running (the loop
 * holds its own reference). Releasing twice is detected and returns -EINVAL
 * as long as the memory has not been reused by a later allocation; do not
 * rely on it. Returns 0 or -EINVAL. Suspends: no. */
ASYNC_EXTERN int async_future_release(async_future *f);

/* The same calls under task names, for readability. */
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

/* ==== File descriptors ================================================== */

#define ASYNC_READABLE 1
#define ASYNC_WRITABLE 2

/* Suspends the current task until fd is ready for `events` (ASYNC_READABLE
 * and/or ASYNC_WRITABLE) or `timeout` seconds have passed (< 0: no limit).
 * An error or hang-up on fd counts as ready for both. Several tasks may
 * wait on one fd.
 * Returns the ready events (> 0), -ETIMEDOUT, -ECANCELED, -EINVAL (bad fd
 * or events), -EPERM, -EBADF (the fd was closed and handed to
 * async_fd_forget while waiting), or the poller's error (-EPERM for a
 * regular file under epoll). Suspends: yes. */
ASYNC_EXTERN int async_wait_fd(int fd, int events, double timeout);

/* Call before closing an fd some task may wait on: wakes every waiter with
 * -EBADF and drops the loop's registration, so a reused fd number cannot
 * wake the wrong task. Returns the number of waiters woken, or -EINVAL.
 * Suspends: no. */
ASYNC_EXTERN int async_fd_forget(async_loop *loop, int fd);

#ifdef __cplusplus
}
#endif

#endif
