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
#include <stdio.h>

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
  int virtual_clock;  /* 0 (default): the monotonic clock. 1: a virtual
                         clock for tests (trio's MockClock with autojump):
                         the loop's time starts at 0 and, whenever nothing
                         is ready and only a timer can make progress, jumps
                         straight to the next timer's deadline instead of
                         blocking, so an hour of sleeps and timeouts takes
                         no real time and always happens in the same order.
                         While a task waits on an fd (async_wait_fd) or a
                         call from another thread is pending, the loop
                         waits in real time and the clock advances by the
                         time waited. async_loop_time() and every delay
                         and deadline of the loop (sleeps, call_later,
                         timeouts) use this clock; async_clock() stays
                         the real one */
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
 * its error (-ECANCELED if it was cancelled). The caller keeps its
 * reference to f.
 * Returns also -EINVAL, -EBUSY (a loop is already running on this thread),
 * -ESHUTDOWN (closed), -EXDEV (f belongs to another loop), and -EINTR when
 * async_loop_stop ended the run before f was done.
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

/* The loop's clock in seconds, now: the monotonic clock (async_clock), or
 * with async_loop_options.virtual_clock the virtual time (0 when the loop
 * is made). Sleeps, call_later and timeouts count on this clock. NaN for
 * NULL. */
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

/* Writes one line per task of the loop that is not done, in creation
 * order, to `out`: its name, its state (ready, running, waiting) and, when
 * waiting, on what ("sleep", "await", "fd", "queue", ...). For debugging a
 * program that hangs. Returns the number of tasks listed, or -EINVAL.
 * Suspends: no. */
ASYNC_EXTERN long async_loop_dump(async_loop *loop, FILE *out);

/* Gives up the current task's turn: runs the callbacks and tasks that are
 * ready, then resumes (asyncio.sleep(0)).
 * Returns 0, -ECANCELED, -EPERM. Suspends: yes. */
ASYNC_EXTERN int async_yield(void);

/* Suspends the current task for `seconds` (<= 0 behaves as async_yield).
 * Returns 0 after the time has passed, -ECANCELED if the task is cancelled
 * before it runs again (even after the time has passed), -EINVAL for NaN,
 * -EPERM outside a task. Suspends: yes. */
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

/* ==== Queues ============================================================ */

/* asyncio.Queue, LifoQueue and PriorityQueue: a queue of `void *` items
 * between tasks, bounded or not.
 *
 * Ownership: the queue stores the pointers it is given and never
 * dereferences them; it owns no item, except that the `drop` function of
 * its options (if set) is called for every item the queue discards: those
 * removed by an immediate shutdown and those still in it at free. Without a
 * drop function they are simply forgotten. An item passes to the queue when
 * a put returns 0 and to the caller when a get returns 0; a put that fails
 * (-EAGAIN, -ECANCELED, -ESHUTDOWN, ...) leaves it with the caller.
 *
 * Fairness: waiting getters and putters are served first come, first
 * served, and a newcomer never overtakes them: a put that finds a getter
 * waiting hands its item straight to the first one, a get that frees a
 * place moves the first waiting putter's item in.
 *
 * Cancellation: a get or put cancelled while it waits returns -ECANCELED
 * and has moved nothing (the next waiter is served instead); one that was
 * already served when the cancellation came returns 0 with its item, and
 * the cancellation is delivered at the task's next suspension point. So no
 * item is lost or duplicated.
 *
 * A queue is not bound to a loop, but it belongs to one thread, and all
 * tasks that wait on it at the same time must belong to the same loop.
 * Neither put nor get allocates memory, except that an unbounded queue (or
 * one whose maxsize exceeds ASYNC_QUEUE_PREALLOC_MAX) grows its storage by
 * doubling when it is full. */
typedef struct async_queue async_queue;

/* The order in which a queue gives its items back. */
enum {
  ASYNC_QUEUE_FIFO = 0,    /* first in, first out (asyncio.Queue) */
  ASYNC_QUEUE_LIFO = 1,    /* last in, first out (LifoQueue) */
  ASYNC_QUEUE_PRIORITY = 2 /* smallest first by `cmp`; equal ones FIFO */
};

/* Bounded queues up to this maxsize allocate all their storage at
 * creation; larger ones start smaller and grow up to maxsize. */
#define ASYNC_QUEUE_PREALLOC_MAX 65536

/* Compares two items: < 0 when a comes before b, 0 when equal, > 0. */
typedef int (*async_cmp_fn)(const void *a, const void *b, void *arg);

/* Called with an item the queue discards. It must not use the queue. */
typedef void (*async_drop_fn)(void *item, void *arg);

typedef struct async_queue_options {
  size_t size;        /* sizeof(async_queue_options): set by _init */
  int order;          /* ASYNC_QUEUE_FIFO (default), _LIFO, _PRIORITY */
  async_cmp_fn cmp;   /* required for ASYNC_QUEUE_PRIORITY, else unused */
  void *cmp_arg;      /* passed to cmp */
  async_drop_fn drop; /* NULL (default): discarded items are forgotten */
  void *drop_arg;     /* passed to drop */
} async_queue_options;

/* Fills *opts with the defaults: FIFO, no drop function. */
ASYNC_EXTERN void async_queue_options_init(async_queue_options *opts);

/* Makes a queue holding at most `maxsize` items (0: unbounded) and stores
 * it in *out; opts may be NULL for a FIFO queue. The caller owns the queue
 * and frees it with async_queue_free.
 * Returns 0, -EINVAL (NULL out, bad options, PRIORITY without cmp),
 * -ENOMEM. Suspends: no. */
ASYNC_EXTERN int async_queue_new(async_queue **out, size_t maxsize,
                                 const async_queue_options *opts);

/* Frees the queue, passing the items still in it to the drop function (if
 * any), in queue order. NULL is a harmless no-op. Freeing twice is
 * undefined.
 * Returns 0, -EINVAL, or -EBUSY when a task waits on the queue (in get,
 * put or join): nothing is freed then (shut it down first, which wakes
 * them). Suspends: no. */
ASYNC_EXTERN int async_queue_free(async_queue *q);

/* Puts `item` (any pointer, NULL included) into the queue, waiting while
 * the queue is full. Does not suspend when there is room (and so does not
 * deliver a pending cancellation then, as asyncio's put does not).
 * Returns 0 (the item now belongs to the queue, or to the getter it was
 * handed to), -ESHUTDOWN (the queue is shut down, now or while waiting),
 * -ECANCELED, -EINVAL, -EPERM (outside a task), -ENOMEM (a growing queue
 * could not grow). On error the item stays the caller's. Suspends: yes. */
ASYNC_EXTERN int async_queue_put(async_queue *q, void *item);

/* Takes the next item (by the queue's order) into *item, waiting while the
 * queue is empty. Does not suspend when an item is there.
 * Returns 0 (*item is the caller's now), -ESHUTDOWN (the queue is shut
 * down and empty, now or while waiting), -ECANCELED, -EINVAL (also a NULL
 * item), -EPERM (outside a task). *item is NULL on error.
 * Suspends: yes. */
ASYNC_EXTERN int async_queue_get(async_queue *q, void **item);

/* Puts without waiting. Returns 0, -EAGAIN (full), -ESHUTDOWN, -EINVAL,
 * -ENOMEM. May be called outside a task. Suspends: no. */
ASYNC_EXTERN int async_queue_put_nowait(async_queue *q, void *item);

/* Gets without waiting. Returns 0, -EAGAIN (empty), -ESHUTDOWN (shut down
 * and empty), -EINVAL. May be called outside a task. Suspends: no. */
ASYNC_EXTERN int async_queue_get_nowait(async_queue *q, void **item);

/* Tells the queue that one item got earlier is fully processed. Every
 * successful put counts one unfinished item; when task_done has been
 * called for all of them, the tasks waiting in async_queue_join wake.
 * Returns 0, -EOVERFLOW (called more times than items were put), -EINVAL.
 * Suspends: no. */
ASYNC_EXTERN int async_queue_task_done(async_queue *q);

/* Waits until every item put has been marked done with task_done (at once
 * when none is unfinished).
 * Returns 0, -ECANCELED, -EINVAL, -EPERM. Suspends: yes. */
ASYNC_EXTERN int async_queue_join(async_queue *q);

/* Shuts the queue down (asyncio's Queue.shutdown). Puts fail from now on
 * with -ESHUTDOWN, and the tasks waiting in put wake with it (their items
 * stay theirs). Graceful (immediate == 0): gets go on returning the items
 * left, then fail with -ESHUTDOWN; tasks waiting in get (the queue is empty
 * then) wake with -ESHUTDOWN. Immediate: the items left are discarded at
 * once (passed to the drop function) and each counts as done for join;
 * every waiting getter wakes with -ESHUTDOWN. A graceful shutdown may be
 * made immediate later; shutting down again is harmless.
 * Returns 0 or -EINVAL. Suspends: no. */
ASYNC_EXTERN int async_queue_shutdown(async_queue *q, int immediate);

/* The number of items in the queue (not counting those that waiting
 * putters still hold), or -EINVAL. */
ASYNC_EXTERN long async_queue_size(const async_queue *q);

/* The maxsize given at creation (0: unbounded), or -EINVAL. */
ASYNC_EXTERN long async_queue_maxsize(const async_queue *q);

/* 1 if the queue holds no item, 0 if it does, -EINVAL. */
ASYNC_EXTERN int async_queue_empty(const async_queue *q);

/* 1 if the queue is bounded and holds maxsize items, 0 if not, -EINVAL. */
ASYNC_EXTERN int async_queue_full(const async_queue *q);

/* ==== Synchronization =================================================== */

/* asyncio's Lock, Event, Condition, Semaphore, BoundedSemaphore and
 * Barrier. Each is an opaque object made by its _new function and freed
 * by its _free function (NULL is a harmless no-op; freeing twice is
 * undefined; freeing one a task waits on returns -EBUSY and frees
 * nothing). They are not bound to a loop but belong to one thread, and the
 * tasks that wait on one at the same time must belong to the same loop.
 *
 * All of them are FIFO-fair: waiters are served in the order they came,
 * and a newcomer never overtakes a waiter (the lock or permit released
 * while tasks wait goes straight to the first of them). All waits are
 * cancellation-safe: a task cancelled while it waits returns -ECANCELED
 * and owns nothing (it does not hold the lock, took no permit, did not
 * pass the barrier); a task already served when the cancellation came
 * returns 0, owning what it waited for, and the cancellation is delivered
 * at its next suspension point. A call that can be served at once does not
 * suspend (and does not deliver a pending cancellation), as in asyncio.
 *
 * None of these calls allocates memory except _new. */

/* A mutual exclusion lock. Not recursive. The task that acquired it is its
 * owner, but as in asyncio any code may release it. */
typedef struct async_lock async_lock;

/* Makes an unlocked lock. Returns 0, -EINVAL (NULL out), -ENOMEM.
 * Suspends: no. */
ASYNC_EXTERN int async_lock_new(async_lock **out);

/* Frees the lock (it may be locked). Returns 0, -EINVAL, -EBUSY (a task
 * waits for it). Suspends: no. */
ASYNC_EXTERN int async_lock_free(async_lock *l);

/* Acquires the lock, waiting in line while another task holds it.
 * Returns 0 (the calling task holds it), -EDEADLK (the calling task holds
 * it already: waiting would never end), -ECANCELED (it does not hold it),
 * -EINVAL, -EPERM (outside a task). Suspends: yes. */
ASYNC_EXTERN int async_lock_acquire(async_lock *l);

/* Acquires the lock if it is free, without waiting. May be called outside
 * a task (the lock then has no owner task).
 * Returns 0, -EAGAIN (locked), -EINVAL. Suspends: no. */
ASYNC_EXTERN int async_lock_try_acquire(async_lock *l);

/* Releases the lock: the first waiting task, if any, gets it at once.
 * Returns 0, -EPERM (the lock is not locked), -EINVAL. Suspends: no. */
ASYNC_EXTERN int async_lock_release(async_lock *l);

/* 1 if the lock is held, 0 if not, -EINVAL. */
ASYNC_EXTERN int async_lock_locked(const async_lock *l);

/* An event: a flag tasks can wait to see set. */
typedef struct async_event async_event;

/* Makes an event, not set. Returns 0, -EINVAL, -ENOMEM. Suspends: no. */
ASYNC_EXTERN int async_event_new(async_event **out);

/* Frees the event. Returns 0, -EINVAL, -EBUSY. Suspends: no. */
ASYNC_EXTERN int async_event_free(async_event *e);

/* Sets the flag and wakes every waiting task (each will return 0 even if
 * the flag is cleared before it runs). Returns the number of tasks woken,
 * or -EINVAL. Suspends: no. */
ASYNC_EXTERN int async_event_set(async_event *e);

/* Clears the flag. Returns 0 or -EINVAL. Suspends: no. */
ASYNC_EXTERN int async_event_clear(async_event *e);

/* 1 if the flag is set, 0 if not, -EINVAL. */
ASYNC_EXTERN int async_event_is_set(const async_event *e);

/* Waits until the flag is set (returns at once if it is).
 * Returns 0, -ECANCELED, -EINVAL, -EPERM. Suspends: yes. */
ASYNC_EXTERN int async_event_wait(async_event *e);

/* A condition variable, tied to a lock. */
typedef struct async_condition async_condition;

/* Makes a condition on `lock`, which the caller keeps owning and must keep
 * alive until the condition is freed; NULL: the condition makes and owns a
 * lock of its own. Returns 0, -EINVAL, -ENOMEM. Suspends: no. */
ASYNC_EXTERN int async_condition_new(async_condition **out, async_lock *lock);

/* Frees the condition (and its own lock). Returns 0, -EINVAL, -EBUSY (a
 * task waits on it, or was notified and has not taken the lock back yet,
 * or, for its own lock, waits on the lock). Suspends: no. */
ASYNC_EXTERN int async_condition_free(async_condition *c);

/* The condition's lock (borrowed), or NULL for an invalid c. */
ASYNC_EXTERN async_lock *async_condition_lock(async_condition *c);

/* async_lock_acquire / _release / _locked on the condition's lock. */
ASYNC_EXTERN int async_condition_acquire(async_condition *c);
ASYNC_EXTERN int async_condition_release(async_condition *c);
ASYNC_EXTERN int async_condition_locked(const async_condition *c);

/* Releases the lock, which the calling task must hold, waits until
 * notified, and acquires the lock again before returning: on every return
 * but -EPERM/-EINVAL the task holds the lock, cancelled or not.
 * Returns 0 (notified), -ECANCELED (cancelled before it was notified; a
 * notification is never consumed by a cancelled wait), -EPERM (outside a
 * task, or the lock is not held by the calling task), -EINVAL.
 * Suspends: yes. */
ASYNC_EXTERN int async_condition_wait(async_condition *c);

/* Waits (as async_condition_wait) until pred(arg) returns non-zero; pred
 * is called with the lock held, first before any wait.
 * Returns 0 once pred is true, or the error of a wait. Suspends: yes. */
ASYNC_EXTERN int async_condition_wait_for(async_condition *c,
                                          int (*pred)(void *arg), void *arg);

/* Wakes up to n of the waiting tasks, first come first. The lock must be
 * locked (by anyone, as in asyncio). Returns the number woken, -EPERM (the
 * lock is not locked), -EINVAL. Suspends: no. */
ASYNC_EXTERN int async_condition_notify(async_condition *c, int n);

/* Wakes every waiting task. As async_condition_notify. */
ASYNC_EXTERN int async_condition_notify_all(async_condition *c);

/* A counting semaphore (asyncio.Semaphore and BoundedSemaphore). */
typedef struct async_semaphore async_semaphore;

/* Makes a semaphore holding `value` permits.
 * Returns 0, -EINVAL (NULL out, value above INT_MAX), -ENOMEM.
 * Suspends: no. */
ASYNC_EXTERN int async_semaphore_new(async_semaphore **out, unsigned value);

/* Makes a bounded semaphore: a release that would raise the permits above
 * the initial `value` fails with -EOVERFLOW. As async_semaphore_new. */
ASYNC_EXTERN int async_bounded_semaphore_new(async_semaphore **out,
                                             unsigned value);

/* Frees the semaphore. Returns 0, -EINVAL, -EBUSY. Suspends: no. */
ASYNC_EXTERN int async_semaphore_free(async_semaphore *s);

/* Takes a permit, waiting in line while there is none.
 * Returns 0, -ECANCELED (no permit taken), -EINVAL, -EPERM.
 * Suspends: yes. */
ASYNC_EXTERN int async_semaphore_acquire(async_semaphore *s);

/* Takes a permit if one is free. Returns 0, -EAGAIN, -EINVAL.
 * Suspends: no. */
ASYNC_EXTERN int async_semaphore_try_acquire(async_semaphore *s);

/* Gives a permit back: to the first waiting task if any, else to the
 * semaphore. Returns 0, -EOVERFLOW (bounded: more releases than
 * acquisitions; or the count would overflow), -EINVAL. Suspends: no. */
ASYNC_EXTERN int async_semaphore_release(async_semaphore *s);

/* 1 if no permit is free (an acquire would wait), 0 if one is, -EINVAL. */
ASYNC_EXTERN int async_semaphore_locked(const async_semaphore *s);

/* The number of free permits, or -EINVAL. */
ASYNC_EXTERN long async_semaphore_value(const async_semaphore *s);

/* A barrier for a fixed number of parties (asyncio.Barrier). */
typedef struct async_barrier async_barrier;

/* Makes a barrier for `parties` (>= 1) tasks.
 * Returns 0, -EINVAL, -ENOMEM. Suspends: no. */
ASYNC_EXTERN int async_barrier_new(async_barrier **out, unsigned parties);

/* Frees the barrier. Returns 0, -EINVAL, -EBUSY. Suspends: no. */
ASYNC_EXTERN int async_barrier_free(async_barrier *b);

/* Waits until `parties` tasks wait on the barrier, then lets them all pass
 * and starts a new cycle. Returns the task's arrival index in its cycle,
 * 0 to parties - 1 (the last to arrive, which does not suspend, gets
 * parties - 1), or -ENOTRECOVERABLE (the barrier is broken by abort, or
 * was reset or aborted while waiting), -ECANCELED (cancelled before the
 * barrier tripped: the task no longer counts as arrived), -EINVAL, -EPERM.
 * Suspends: yes (not for the last party). */
ASYNC_EXTERN int async_barrier_wait(async_barrier *b);

/* Wakes every waiting task with -ENOTRECOVERABLE and puts the barrier back
 * in its empty, unbroken state. Returns the number woken, or -EINVAL.
 * Suspends: no. */
ASYNC_EXTERN int async_barrier_reset(async_barrier *b);

/* Breaks the barrier: waiting tasks wake, and later waits fail at once,
 * with -ENOTRECOVERABLE until async_barrier_reset. Returns the number
 * woken, or -EINVAL. Suspends: no. */
ASYNC_EXTERN int async_barrier_abort(async_barrier *b);

/* The number of parties, or -EINVAL. */
ASYNC_EXTERN int async_barrier_parties(const async_barrier *b);

/* The number of tasks waiting in the current cycle, or -EINVAL. */
ASYNC_EXTERN int async_barrier_n_waiting(const async_barrier *b);

/* 1 if the barrier is broken, 0 if not, -EINVAL. */
ASYNC_EXTERN int async_barrier_broken(const async_barrier *b);

/* ==== Generators ======================================================== */

/* Async generators: a producer coroutine yields values one at a time to
 * the task consuming them, which iterates with a plain loop (async for):
 *
 *   static void *powers(void *arg) {          // the producer
 *     for (long i = 1; i < 1000; i *= 2)
 *       if (async_yield_value((void *)i) != 0) break;  // closed: clean up
 *     return NULL;
 *   }
 *   ...
 *   async_gen *g;
 *   async_gen_new(&g, powers, NULL, NULL);
 *   void *v;
 *   int err;
 *   while ((err = async_gen_next(g, &v)) == 0)
 *     printf("%ld\n", (long)v);
 *   if (err < 0) ...                          // else err == ASYNC_GEN_DONE
 *   async_gen_free(g);
 *
 * The producer runs as a task of its own, on its own stack, created on the
 * consumer's loop by the first async_gen_next, so it may suspend anywhere
 * (sleep, await, read). It is lazy, as Python's: it runs only while a
 * consumer waits in async_gen_next, from one yield to the next. A consumer
 * that stops early calls async_gen_close (or async_gen_free), and the
 * producer's pending async_yield_value returns -EPIPE: it cleans up and
 * returns. Values are opaque pointers; whoever receives one owns what it
 * points to, by the producer's own convention. */
typedef struct async_gen async_gen;

/* What async_gen_next returns once the producer has returned (positive:
 * not an error). */
#define ASYNC_GEN_DONE 1

/* Makes a generator that will run fn(arg) as its producer; nothing runs
 * before the first async_gen_next. opts (may be NULL) names the producer
 * task and sets its stack size; the name is copied. The caller owns the
 * generator and frees it with async_gen_free.
 * Returns 0, -EINVAL (NULL out or fn, bad options), -ENOMEM.
 * Suspends: no. */
ASYNC_EXTERN int async_gen_new(async_gen **out, async_fn fn, void *arg,
                               const async_task_options *opts);

/* Asks for the next value: resumes the producer (starting it the first
 * time) and waits until it yields a value, stored in *value, or returns.
 * Returns 0 with a value; ASYNC_GEN_DONE once the producer has returned
 * (and again at every later call); the producer's error, once, when it
 * failed (return async_fail(err)), then ASYNC_GEN_DONE; -ESHUTDOWN after
 * async_gen_close; -EBUSY while another task waits in async_gen_next on
 * the same generator; -EDEADLK when called by the producer itself; -EXDEV
 * from a task of another loop than the producer's; -EPERM outside a task;
 * -EINVAL (NULL g); -ENOMEM (the producer could not be created);
 * -ECANCELED when the consumer was cancelled before it asked (nothing
 * resumed).
 * Cancelling the consumer while it waits here is passed on to the producer
 * (as async_await does to what it awaits), and the call still returns
 * what the producer does next: a value (0; the cancellation is then
 * delivered at the consumer's next suspension point, so no value is lost),
 * or its end (-ECANCELED if it ended cancelled). *value is NULL unless 0 is
 * returned; value may be NULL to drop the value. Suspends: yes. */
ASYNC_EXTERN int async_gen_next(async_gen *g, void **value);

/* Called by a producer: hands `value` to the consumer waiting in
 * async_gen_next, then waits until the consumer asks for the next one.
 * Returns 0 (asked for the next value: go on); -EPIPE (the generator was
 * closed: clean up and return); -ECANCELED (the producer task was
 * cancelled, typically because its consumer was: clean up and return);
 * -EPERM outside a generator's producer.
 * The value is delivered before the call suspends, except when the call
 * fails at once (-EPERM; -EPIPE, the generator was already closed;
 * -ECANCELED, a cancellation was already pending) and when no consumer
 * was waiting (only after the producer's previous wait was cancelled from
 * outside): the call then first waits for a consumer, and an -EPIPE or
 * -ECANCELED during that wait means the value was not delivered.
 * Suspends: yes. */
ASYNC_EXTERN int async_yield_value(void *value);

/* Closes the generator (aclose): a producer waiting at a yield gets
 * -EPIPE there, and the call waits until the producer has returned, so its
 * cleanup is done. A generator never started is closed without running.
 * Closing again, or closing a finished generator, does nothing.
 * Returns 0, or the producer's error if it failed with another code than
 * -EPIPE; -EBUSY (a task waits in async_gen_next), -EDEADLK (called by
 * the producer itself), -ECANCELED (the closing task was cancelled while
 * it waited: the producer was cancelled too), -EXDEV, -EPERM, -EINVAL.
 * Suspends: yes (not when nothing runs). */
ASYNC_EXTERN int async_gen_close(async_gen *g);

/* Frees the generator. If its producer is still alive, it is closed as by
 * async_gen_close but without waiting: it sees -EPIPE at its yield, and
 * the generator's memory is released once it has returned. NULL is a
 * harmless no-op; freeing twice is undefined.
 * Returns 0, -EINVAL, -EBUSY (a task waits in async_gen_next: nothing is
 * freed). Suspends: no. */
ASYNC_EXTERN int async_gen_free(async_gen *g);

/* The async comprehension ([v async for v in g]): calls async_gen_next
 * until the producer returns and stores the values, in order, in a new
 * array *items (free it with free(); NULL when there are none) of *n
 * elements. On an error the array holds the values got so far and the
 * caller still frees it; on -ENOMEM the generator is closed first.
 * Returns 0, or an error of async_gen_next (other than ASYNC_GEN_DONE),
 * -ENOMEM, -EINVAL (NULL items or n). Suspends: yes. */
ASYNC_EXTERN int async_gen_collect(async_gen *g, void ***items, size_t *n);

/* ==== Composition ======================================================= */

/* Waiting for several futures at once, bounding waits in time, and
 * structured groups of tasks: asyncio's gather, as_completed, wait,
 * wait_for, timeout, shield and TaskGroup.
 *
 * Arrays of futures: every function below takes `async_future *const
 * futs[]` of n entries, tasks and bare futures mixed. Each entry must be a
 * live future (-EINVAL otherwise); one not done yet must belong to the
 * calling task's loop (-EXDEV, or -ESHUTDOWN once its loop is closed) and
 * must not be the calling task itself (-EDEADLK). These checks are made
 * before anything else happens. The same future may appear more than
 * once: each entry is treated on its own. The caller keeps its references;
 * the functions hold their own while they use a future.
 *
 * Cancellation: a suspending call of this section that finds its task
 * already cancelled (a pending request) or is cancelled while it waits
 * returns -ECANCELED. Whether that cancellation is passed on to the
 * futures waited for is stated per function: gather, wait_for and task
 * groups do, as asyncio does; wait, as_completed and shield do not. A
 * request that arrives after the futures have woken the task is still
 * delivered by the call, which then returns -ECANCELED. */

/* A coroutine not started yet: fn(arg), as `count()` is in Python before
 * anything awaits it. */
typedef struct async_coro {
  async_fn fn;
  void *arg;
} async_coro;

/* asyncio.gather(*futs): waits until every future of futs[0..n) is done
 * and stores their results in argument order in results[0..n) (results
 * may be NULL).
 * The first error among them (in completion order; for futures already
 * done on entry, in argument order) is returned as soon as it happens:
 * the other futures keep running and are not waited for. Their results
 * are then in results[] for those already done with a result, NULL for
 * the others. A future cancelled by someone else counts as failed with
 * -ECANCELED.
 * If the gathering task is cancelled (while it waits, or before the call
 * with the request still pending), every future not done is cancelled,
 * the call waits until all of them are done, and returns -ECANCELED.
 * Errors of futures that end after the call returned are not read by it
 * (see async_loop_close on errors nobody read).
 * n == 0 returns 0 at once. Does not suspend when every future is done.
 * Returns 0, the first future's error, -ECANCELED, -EINVAL (NULL futs with
 * n > 0), -EPERM (outside a task), -EDEADLK, -EXDEV, -ESHUTDOWN (see the
 * section's introduction), -ENOMEM (more than 8 futures: the wait's
 * records are allocated). Suspends: yes. */
ASYNC_EXTERN int async_gather(async_future *const futs[], size_t n,
                              void **results);

/* asyncio.gather(*futs, return_exceptions=True): waits until every future
 * is done, however they end, and stores each outcome in argument order:
 * results[i] gets future i's result (NULL when it failed) and errors[i]
 * its error (0 when it succeeded; -ECANCELED when it was cancelled).
 * Either array may be NULL. Every error is marked as read.
 * If the gathering task is cancelled, every future not done is cancelled,
 * the call waits until all are done, fills both arrays and returns
 * -ECANCELED.
 * Returns 0 whatever the futures' outcomes, -ECANCELED, or the argument
 * errors of async_gather. Suspends: yes (not when every future is done). */
ASYNC_EXTERN int async_gather_errors(async_future *const futs[], size_t n,
                                     void **results, int *errors);

/* asyncio.gather(count(), count(), count()): spawns coros[i].fn(arg) for
 * each i on the current loop, in order, gathers them and gives the tasks
 * back; the caller never handles a task. With errors NULL it behaves as
 * async_gather (the first error is returned at once; the tasks still
 * running go on, owned by the loop); with errors non-NULL (n entries), as
 * async_gather_errors. Cancelling the calling task cancels them all.
 * If a spawn fails, the tasks already spawned are cancelled before they
 * ever run and the spawn's error is returned.
 * Returns as async_gather / async_gather_errors, and -EINVAL for a NULL
 * coros (n > 0) or fn, -ENOMEM. Suspends: yes. */
ASYNC_EXTERN int async_gather_coros(const async_coro coros[], size_t n,
                                    void **results, int *errors);

/* asyncio.as_completed(futs, timeout=): an iterator that hands back the
 * futures of futs[0..n) in the order they complete. Opaque. */
typedef struct async_as_completed async_as_completed;

/* Makes the iterator over futs[0..n) (tasks or bare futures) and stores it
 * in *out. Futures already done come first, in argument order. `timeout`
 * (seconds, counted from this call on the futures' loop clock; < 0: no
 * limit) bounds the whole iteration: once it has passed, the futures not
 * done by then are reported as timed out (see async_as_completed_next).
 * The iterator holds a reference on every future until it is freed, and
 * registers with them at once, so the completion order is recorded even
 * while nobody calls next. The caller owns *out: async_as_completed_free
 * ends it; it may outlive the loop.
 * Returns 0, -EINVAL (NULL out, NULL futs with n > 0, an invalid future,
 * NaN timeout), -EXDEV (pending futures of different loops), -ESHUTDOWN
 * (a pending future of a closed loop), -ENOMEM. Suspends: no. */
ASYNC_EXTERN int async_as_completed_new(async_as_completed **out,
                                        async_future *const futs[], size_t n,
                                        double timeout);

/* Hands back the next future to complete, waiting for it if none is
 * waiting to be taken: returns 1 with it in *f (a borrowed pointer, valid
 * until the iterator is freed; read its outcome with async_await or
 * async_future_result, which do not suspend on it). Once every future has
 * been handed back, returns 0 (and *f = NULL), at once.
 * After the timeout, the futures that were done before it are still
 * handed back first; then each call returns -ETIMEDOUT with one of those
 * left (argument order) in *f, so the caller may cancel it or keep
 * waiting on it by other means, until none is left.
 * Cancelled while it waits, returns -ECANCELED and loses nothing: the next
 * call goes on where this one stopped. The futures are not cancelled.
 * One task at a time may wait in next.
 * Returns 1, 0, -ETIMEDOUT, -ECANCELED, -EINVAL, -EPERM (outside a task),
 * -EBUSY (another task waits in next), -EXDEV (a task of another loop),
 * -EDEADLK (the calling task is among the futures left). Suspends: yes
 * (not when a future is ready to be handed back, nor when none is left). */
ASYNC_EXTERN int async_as_completed_next(async_as_completed *it,
                                         async_future **f);

/* The number of futures not handed back yet, or -EINVAL. */
ASYNC_EXTERN long async_as_completed_left(const async_as_completed *it);

/* Frees the iterator and drops its references (a future the caller no
 * longer holds may then be freed). NULL is a harmless no-op. The futures
 * are not cancelled. Safe after the loop is closed.
 * Returns 0, -EINVAL, -EBUSY (a task waits in next: nothing is freed).
 * Suspends: no. */
ASYNC_EXTERN int async_as_completed_free(async_as_completed *it);

/* When async_wait returns (asyncio's return_when). */
typedef enum async_return_when {
  ASYNC_ALL_COMPLETED = 0, /* every future is done */
  ASYNC_FIRST_COMPLETED,   /* at least one future is done */
  ASYNC_FIRST_EXCEPTION    /* one failed (with an error other than
                              -ECANCELED), or every one is done */
} async_return_when;

/* asyncio.wait(futs, timeout=, return_when=): waits until the condition
 * `return_when` holds over futs[0..n) or `timeout` seconds have passed
 * (< 0: no limit; 0: only look). Running out of time is not an error and
 * nothing is cancelled, then or ever: the call reports what is done.
 * On return, done[] (if not NULL) gets the futures done, pending[] (if not
 * NULL) the others, each in argument order; both need room for n entries.
 * The futures' outcomes are not read (use async_future_result).
 * n == 0 returns 0 at once.
 * Returns the number of futures done (so pending[] holds n minus that
 * many), or -ECANCELED (the arrays are then not written), -EINVAL (bad
 * return_when, NaN timeout, n > INT_MAX, NULL futs with n > 0), -EPERM,
 * -EDEADLK, -EXDEV, -ESHUTDOWN, -ENOMEM (see the section's introduction).
 * Suspends: yes (not when the condition already holds or timeout is 0). */
ASYNC_EXTERN int async_wait(async_future *const futs[], size_t n,
                            async_return_when return_when, double timeout,
                            async_future **done, async_future **pending);

/* asyncio.wait_for(f, timeout): awaits f for at most `timeout` seconds
 * (< 0: no limit, the same as async_await). When the time runs out, f is
 * cancelled, the call waits until it is done (a task's cleanup has run),
 * and returns -ETIMEDOUT; f's own outcome stays readable with
 * async_future_result (a task may still have finished with a result).
 * A timeout of 0 cancels a pending f at once.
 * If the waiting task is cancelled, f is cancelled too (as async_await
 * does), and the call returns -ECANCELED once f is done.
 * It is async_await inside an async_timeout scope; for a deadline that
 * leaves f running, await with async_shield inside a scope instead.
 * Returns 0 with f's result in *result (result may be NULL; NULL on
 * error), f's error, -ETIMEDOUT, -ECANCELED, -EINVAL (also NaN timeout),
 * -EPERM, -EDEADLK, -EXDEV. Suspends: yes, unless f is done. */
ASYNC_EXTERN int async_wait_for(async_future *f, double timeout,
                                void **result);

/* A deadline scope (asyncio.timeout()): a stretch of a task's code with a
 * deadline. When the deadline passes while the task is still inside, the
 * scope cancels that task, and only it: its current or next suspending
 * call returns -ECANCELED (an async_await passes the cancellation on to
 * what it awaits, as always), the code unwinds to async_timeout_exit, and
 * the exit turns the cancellation into -ETIMEDOUT.
 *
 *   async_timeout tmo;
 *   async_timeout_enter(&tmo, 5.0);
 *   int err = fetch(...);                 // -ECANCELED when cut short
 *   int terr = async_timeout_exit(&tmo);  // -ETIMEDOUT when cut short
 *   if (terr) err = terr;
 *
 * Scopes nest: each has its own deadline and timer, and the exit of the
 * scope whose deadline cancelled the task reports -ETIMEDOUT, while an
 * inner scope crossed by that cancellation exits with 0 and lets the
 * -ECANCELED travel outwards. A cancellation from outside the scope (its
 * task cancelled by someone else while inside) is not converted: the exit
 * returns 0 and the code sees -ECANCELED. As in asyncio, the scope tells
 * its own request from others by counting the task's cancellation
 * requests: after an outside request reached the task inside the scope,
 * even one the code caught and carried on from, the scope no longer
 * claims a cancellation as its own.
 *
 * The struct lives where the caller puts it (usually its stack) and holds
 * the scope's timer: every async_timeout_enter must be paired with an
 * async_timeout_exit by the same task on every path, before the memory
 * goes away. A task whose function returns inside a scope is reported on
 * stderr and the process aborts (the timer would outlive its memory); a
 * task ended at loop close inside scopes has their timers disarmed. The
 * fields are private. */
typedef struct async_timeout {
  union {
    long long ll[16];
    void *p;
    double d;
  } opaque_;
} async_timeout;

/* Enters a scope whose deadline is `delay` seconds from now on the loop's
 * clock (< 0: no deadline yet, see async_timeout_reschedule; 0: the
 * deadline has already passed and cancels the task at its next
 * suspension). Returns 0, -EINVAL (NULL tmo, NaN delay), -EPERM (outside a
 * task), -EBUSY (tmo is entered already and not exited). Suspends: no. */
ASYNC_EXTERN int async_timeout_enter(async_timeout *tmo, double delay);

/* asyncio.timeout_at(): as async_timeout_enter, with an absolute deadline
 * `when` on the loop's clock (async_loop_time; < 0 or INFINITY: none). */
ASYNC_EXTERN int async_timeout_enter_at(async_timeout *tmo, double when);

/* Moves the deadline of an entered scope to `when` (absolute, loop time;
 * < 0 or INFINITY: none), earlier or later; a time already past cancels
 * the task at the next loop iteration. May be called by any code of the
 * loop's thread. Returns 0, -EINVAL (NULL, NaN, a scope not entered or
 * exited), -EALREADY (the deadline has passed and cancelled the task
 * already). Suspends: no. */
ASYNC_EXTERN int async_timeout_reschedule(async_timeout *tmo, double when);

/* The scope's deadline (loop time), -1.0 when it has none, NaN for a scope
 * not entered. */
ASYNC_EXTERN double async_timeout_when(const async_timeout *tmo);

/* 1 once the scope's deadline has passed and cancelled its task, 0 before,
 * -EINVAL for a scope not entered (also after its exit). */
ASYNC_EXTERN int async_timeout_expired(const async_timeout *tmo);

/* Leaves the scope and stops its timer. Returns -ETIMEDOUT when the
 * scope's deadline cancelled the task and the cancellation reached it (the
 * code inside saw -ECANCELED); 0 otherwise: no deadline passed, the
 * cancellation was not the scope's alone (an outer scope's, or an outside
 * one: it is left to the code to pass on, and a request still undelivered
 * stays pending), or the deadline passed after the last suspension inside,
 * in which case its request is withdrawn and the task carries on
 * uncancelled. After the exit the struct may be reused or forgotten.
 * Returns also -EINVAL (NULL, a scope not entered, or exited twice) and
 * -EPERM (called by a task other than the one that entered it; the scope
 * stays entered). Suspends: no. */
ASYNC_EXTERN int async_timeout_exit(async_timeout *tmo);

/* await asyncio.shield(f): waits for f as async_await does, except that a
 * cancellation of the waiting task is not passed on: the call returns
 * -ECANCELED at once and f carries on, still held by the caller, who may
 * wait for it again. Inside an async_timeout scope this gives a deadline
 * on the wait that leaves f running.
 * Returns 0 with f's result in *result (result may be NULL), f's error,
 * -ECANCELED, -EINVAL, -EPERM, -EDEADLK, -EXDEV. Suspends: yes, unless f
 * is done. */
ASYNC_EXTERN int async_shield(async_future *f, void **result);

/* asyncio.TaskGroup: tasks spawned into a group that its creator (the
 * parent task) waits for as a whole.
 *   - async_task_group_wait waits until every task of the group is done.
 *   - The first task to fail (with an error other than -ECANCELED) makes
 *     the group abort: every other task of the group is cancelled, and so
 *     is the parent, unless it is already waiting in async_task_group_wait
 *     (its current suspending call returns -ECANCELED, so that it reaches
 *     the wait early); async_task_group_wait takes that cancellation back.
 *   - A cancellation of the parent while it waits in the group (or pending
 *     when it calls the wait) aborts the group too: the tasks are
 *     cancelled and waited for, and the wait returns -ECANCELED.
 *   - Every error is kept, in the order the tasks failed
 *     (async_task_group_errors); the wait returns the first.
 *   - -ECANCELED is never an error of the group: a task cancelled (by the
 *     group or anyone) simply ends.
 * Opaque; made by async_task_group_new, freed by async_task_group_free. */
typedef struct async_task_group async_task_group;

/* Makes a group whose parent is the calling task, and stores it in *out;
 * the caller owns it. Returns 0, -EINVAL (NULL out), -EPERM (outside a
 * task), -ENOMEM. Suspends: no. */
ASYNC_EXTERN int async_task_group_new(async_task_group **out);

/* Spawns fn(arg) as a task of the group (as async_task_spawn does, opts
 * may be NULL). May be called by any code of the loop's thread, a task of
 * the group included, until the group's wait has returned. If out is not
 * NULL, the caller gets its own reference to the task, to release; the
 * group holds another one until it is freed.
 * Returns 0, -EINVAL (NULL g or fn, bad options, a group already waited
 * for), -ECANCELED (the group is aborting: it accepts no new task),
 * -ESHUTDOWN, -ENOMEM; on error nothing is spawned. Suspends: no. */
ASYNC_EXTERN int async_task_group_spawn(async_task_group *g, async_task **out,
                                        async_fn fn, void *arg,
                                        const async_task_options *opts);

/* async with TaskGroup(): waits until every task of the group is done,
 * tasks spawned meanwhile included, then closes the group to new tasks.
 * Only the parent may wait. Calling it again returns the same outcome
 * without waiting.
 * Returns 0 when no task failed (and the parent was not cancelled), the
 * first task error otherwise (every one with async_task_group_errors; a
 * cancellation of the parent that came meanwhile then stays pending, for
 * its next suspending call), -ECANCELED (the parent was cancelled: the
 * tasks were cancelled and have ended), -EINVAL, -EPERM (not the parent,
 * or outside a task). Suspends: yes (not when every task is done and no
 * cancellation is pending). */
ASYNC_EXTERN int async_task_group_wait(async_task_group *g);

/* Aborts the group, as a failing task would but without cancelling the
 * parent: every task not done is cancelled and no new one is accepted.
 * For the parent's code that fails between spawns and the wait (asyncio
 * aborts the group on an exception in the `async with` body).
 * Returns the number of tasks cancelled, or -EINVAL. Suspends: no. */
ASYNC_EXTERN int async_task_group_cancel(async_task_group *g);

/* The errors of the group's tasks, in the order they failed: stores up to
 * cap of them in errs[] and, if tasks is not NULL, the failed tasks
 * (borrowed, valid until the group is freed) in tasks[], and returns how
 * many there are in all (which may exceed cap), or -EINVAL. */
ASYNC_EXTERN long async_task_group_errors(const async_task_group *g,
                                          int *errs, async_task **tasks,
                                          size_t cap);

/* Frees the group and drops its references to its tasks. Tasks not done
 * yet (a group freed without its wait) are cancelled first and end on
 * their own. NULL is a harmless no-op; safe after the loop is closed.
 * Returns 0, -EINVAL, -EBUSY (the parent waits in the group: nothing is
 * freed). Suspends: no. */
ASYNC_EXTERN int async_task_group_free(async_task_group *g);

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
