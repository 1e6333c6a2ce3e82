/* SPDX-License-Identifier: MIT */
/** @file
 * libasync: Layer 2, the loop: running a program, loops, and plain callbacks.
 * A chapter of <async.h>, which is what programs include. */
#ifndef ASYNC_API_LOOP_H
#define ASYNC_API_LOOP_H

#include "base.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ==== Running a program ================================================= */

/** asyncio.run(): makes a new loop, runs fn(arg) as its main task until it
 * returns, then cancels every task still pending and lets them unwind, and
 * closes the loop. Stores the main task's result in *result (if result is
 * not NULL; NULL when it failed).
 * SIGINT (Ctrl-C), as asyncio.run's: if its disposition is the default
 * when the call starts (the program set no handler of its own) and no
 * other loop watches it, the loop watches it (async/signal.h) until it
 * closes, and then restores the default. A first SIGINT cancels the main
 * task, which unwinds through its cleanup; a second one takes the default
 * action at once: the process dies of SIGINT, even while a task is stuck
 * in a call that does not suspend. A main task that ends cancelled after
 * a SIGINT makes the call return -EINTR (asyncio's KeyboardInterrupt);
 * one that catches the cancellation and returns gives its own outcome.
 * A handler of the program's added with async_signal_add for SIGINT
 * replaces this one, as asyncio's add_signal_handler does.
 * Returns 0, the main task's error, -EINTR (above), -EBUSY when a loop is
 * already running on this thread, -EINVAL for a NULL fn, or -ENOMEM; and
 * -ECHILD in a child that a task forked (fork(2)) and that did not make
 * the loop its own with async_loop_fork (see there).
 * Suspends: no (it runs a loop; it must not be called from a task). */
ASYNC_EXTERN int async_run(async_fn fn, void *arg, void **result);

/* ==== Loops ============================================================= */

/** The options of async_loop_new; async_loop_options_init sets defaults. */
typedef struct async_loop_options {
  size_t size;         /**< sizeof(async_loop_options): set by _init */
  const char *backend; /**< "epoll", "poll", "kqueue"; NULL: the environment
                          variable ASYNC_BACKEND, else the best one built */
  size_t stack_size;   /**< default stack size of the loop's tasks, in bytes;
                          0: 256 KiB. Stacks cost address space, and memory
                          only for the pages a task touches */
  int report_overflow; /**< 1 (default): a stack overflow is reported with the
                          task's name (a SIGSEGV handler on an alternate
                          signal stack); 0: leave SIGSEGV alone */
  int virtual_clock;   /**< 0 (default): the monotonic clock. 1: a virtual
                          clock for tests (trio's MockClock with autojump):
                          the loop's time starts at 0 and, whenever nothing
                          is ready and only a timer can make progress, jumps
                          straight to the next timer's deadline instead of
                          blocking, so an hour of sleeps and timeouts takes
                          no real time and always happens in the same order.
                          While the loop watches an fd (a task in an I/O
                          call or async_fd_wait, a stream's output going
                          out in the background, a server accepting) or a
                          call from another thread is pending, the loop
                          waits in real time and the clock advances by the
                          time waited. async_loop_time() and every delay
                          and deadline of the loop (sleeps, call_later,
                          timeouts) use this clock; async_clock() stays
                          the real one. An infinite delay never passes:
                          the clock does not jump to it, and a loop whose
                          tasks all wait forever blocks as it would on
                          the real clock */
  size_t guard_size;   /**< bytes of guard region under each task's stack,
                          rounded up to whole pages; 0: 64 KiB. A frame
                          that skips the guard (big locals touched at
                          their low end) lands in the next task's stack
                          unreported, so make it larger than any frame the
                          tasks have, or build their code with
                          -fstack-clash-protection. It costs address space
                          only, never memory, and no mapping either on
                          Linux 6.13+ (MADV_GUARD_INSTALL); older kernels
                          get mprotect guards for the first 16,384 stacks
                          of the process and canaries after that, see the
                          README. At most 1 GiB (-EINVAL) */
} async_loop_options;

/** Fills *opts with the defaults. */
ASYNC_EXTERN void async_loop_options_init(async_loop_options *opts);

/** Makes a loop (opts may be NULL for the defaults) and stores it in *out.
 * The caller owns it: async_loop_free() ends it.
 * Returns 0, -EINVAL (NULL out, an unknown backend, a stack or guard size
 * out of range), -ENOMEM, or the error
 * of the poller's creation (-EMFILE, ...). */
ASYNC_EXTERN int async_loop_new(async_loop **out,
                                const async_loop_options *opts);

/** Closes the loop: cancels every pending task and runs the loop until they
 * have unwound (a task that keeps ignoring cancellation is given up after
 * a number of rounds and reported on stderr, its stack freed without
 * running its cleanup), shuts the loop's thread pool down (async/pool.h:
 * this waits for the blocking functions still running), drops pending
 * callbacks, frees stacks and the poller.
 * The loop object stays valid for async_loop_is_closed() until
 * async_loop_free(). Futures and tasks whose references are still held stay
 * readable (done, result, name) and must still be released.
 * Closing a closed loop does nothing and returns 0. Any thread may close a
 * loop that is not running: the tasks it unwinds resume there (<async.h>,
 * Threads).
 * In a child process that inherited the loop through fork(2) and did not
 * call async_loop_fork, the close runs nothing and waits for nothing: see
 * async_loop_fork.
 * Returns 0, -EINVAL, or -EBUSY when the loop is running (on any thread;
 * also in such a child, for a loop that was running on another thread at
 * the fork), or another loop runs on this thread.
 * Suspends: no. */
ASYNC_EXTERN int async_loop_close(async_loop *loop);

/** Closes the loop if needed and frees it. NULL is a harmless no-op.
 * Returns 0, or -EBUSY when the loop is running (nothing is freed). */
ASYNC_EXTERN int async_loop_free(async_loop *loop);

/** Runs the loop until async_loop_stop(). A stop requested before the call
 * makes it run one iteration. A loop may run on another thread than its
 * last run's, never on two at once (<async.h>, Threads). Returns 0,
 * -EINVAL, -EBUSY (this loop is running, or another one is running on this
 * thread), -ESHUTDOWN (closed), -ECHILD (the loop was inherited through
 * fork(2): see async_loop_fork).
 * Suspends: no (must not be called from a task). */
ASYNC_EXTERN int async_loop_run_forever(async_loop *loop);

/** Runs the loop until `f` (a task or a future of this loop) is done, then
 * returns its outcome: 0 with its result in *result (result may be NULL), or
 * its error (-ECANCELED if it was cancelled). The caller keeps its
 * reference to f.
 * Returns also -EINVAL, -EBUSY (this loop is running, or another one is
 * running on this thread; threads as for async_loop_run_forever),
 * -ESHUTDOWN (closed), -EXDEV (f belongs to another loop), -EINTR when
 * async_loop_stop ended the run before f was done, and -ECHILD (the loop
 * was inherited through fork(2): see async_loop_fork).
 * Suspends: no (must not be called from a task). */
ASYNC_EXTERN int async_loop_run_until_complete(async_loop *loop,
                                               async_future *f, void **result);

/** Asks a running loop to return from run_forever / run_until_complete
 * after the current iteration: the callbacks and tasks already ready run,
 * new ones wait for the next run. Returns 0 or -EINVAL. Suspends: no. */
ASYNC_EXTERN int async_loop_stop(async_loop *loop);

/** 1 while the loop runs, else 0 (also for NULL). */
ASYNC_EXTERN int async_loop_is_running(const async_loop *loop);

/** 1 once the loop is closed, else 0 (also for NULL). */
ASYNC_EXTERN int async_loop_is_closed(const async_loop *loop);

/** The loop's clock in seconds, now: the monotonic clock (async_clock), or
 * with async_loop_options.virtual_clock the virtual time (0 when the loop
 * is made). Sleeps, call_later and timeouts count on this clock. NaN for
 * NULL. */
ASYNC_EXTERN double async_loop_time(const async_loop *loop);

/** The name of the loop's poller backend ("epoll", "poll", ...). */
ASYNC_EXTERN const char *async_loop_backend(const async_loop *loop);

/** The loop running on this thread, or NULL. */
ASYNC_EXTERN async_loop *async_loop_current(void);

/* ==== Loops and fork(2) ================================================= */

/** Makes a loop inherited through fork(2) the child's own (libuv's
 * uv_loop_fork), so that the child can go on using it.
 *
 * The rule: a loop belongs to the process that made it. In a child made
 * by fork() since then, the loop is "forked" until this call: its poller,
 * its wake-up fd and its signal pipe are the parent's kernel objects,
 * shared with it, and the threads of its pool are not in the child. A
 * forked loop refuses, with -ECHILD, whatever would touch them: running
 * it (async_loop_run_forever, async_loop_run_until_complete, so async_run
 * too), waiting on an fd (async_fd_wait, and every I/O call that would
 * wait), the thread pool (async_pool_run, async_to_thread, name
 * resolution), signals (async_signal_add, async_signal_wait), child
 * processes (async_process_spawn, and the wait, the signals and the
 * returncode of those spawned before the fork), and
 * async_loop_call_soon_threadsafe. Calls that touch only the loop's
 * memory (spawning tasks, futures, queues, call_soon) work. A loop that
 * was running when fork() was called (from one of its tasks or callbacks)
 * goes on in the child with what is ready there, until it would poll for
 * I/O: that iteration is its last, and the run returns -ECHILD.
 * fork() is seen through its pthread_atfork handlers: a child made by a
 * raw clone(2) or by _Fork(), which run none, is not seen.
 *
 * Freeing (or closing) a forked loop in the child is safe, and is how a
 * child drops a loop it does not use: it frees the child's memory and
 * closes the child's copies of the loop's fds, but tells the shared poller
 * nothing, reads and writes none of the shared wake-up fds, joins no
 * thread and waits for no job, and restores only the child's own signal
 * dispositions. No code of the loop's runs: its tasks are ended where they
 * stand, without their cleanup (as are the tasks that ignore cancellation
 * at close), pending callbacks are dropped, and the pool's jobs are
 * disposed of (async_dispose_fn) with ran = 0, except the ones done before
 * the fork, with ran = 1 and their result. Its child processes are the
 * parent's: neither waited for nor signalled.
 *
 * This call, in the child, makes a new poller and tells it every fd the
 * loop watched, with the same interest; makes a new wake-up fd; and a
 * signal pipe of the child's own: from now on a watched signal sent to the
 * child reaches this loop, one sent to the parent the parent's loop.
 * Deliveries that the parent's handler had counted and its loop not yet
 * read at the fork are not repeated in the child, whose pending signals
 * fork(2) empties too; those the loop had read are, as any callback or
 * wake-up queued at the fork.
 * Tasks, timers (their deadlines unchanged: the clock is the system's),
 * callbacks and every object of the loop go on as the child's copies. The
 * pool restarts with no thread, and starts threads as jobs come:
 * - a job queued and not yet started at the fork runs in the child as
 *   well, on a new thread (and in the parent on the parent's);
 * - a job that a thread of the parent's was running at the fork never
 *   completes in the child: its task's async_pool_run returns -ECHILD,
 *   once dispose(arg, NULL, 0) was called, arg being the child's copy as
 *   the fork found it (fn was running on it in the parent); a job whose
 *   task had given it up is disposed of the same way. So is a queued job
 *   when no thread can be started for it;
 * - a job done before the fork and not yet collected is delivered.
 * The child processes the loop spawned before the fork are the parent's:
 * in the child async_process_wait (and the tasks waiting in it),
 * async_process_send_signal and async_process_returncode return -ECHILD;
 * their pipes stay usable as streams. Waits on an fd the child closed
 * since the fork without async_fd_forget end with -EBADF.
 *
 * Call it in the child before anything else on the loop, on each loop the
 * child goes on using; a loop made in the child needs none. It may be
 * called from a task or a callback of the loop: a task that called fork()
 * returns from it in the child still running, and goes on after this
 * call. Called in the process that made the loop, or once more in the
 * child, it does nothing and returns 0.
 * Returns 0, -EINVAL (NULL or invalid loop), -ESHUTDOWN (closed or
 * closing), -EBUSY (the loop was running on another thread at the fork:
 * it can only be abandoned), or the error of making the new poller or fds
 * (-EMFILE, -ENFILE, -ENOMEM, ...); after an error the loop stays forked,
 * and the call may be made again. Suspends: no. */
ASYNC_EXTERN int async_loop_fork(async_loop *loop);

/* ==== Callbacks ========================================================= */

/** Schedules cb(arg) to run on the next loop iteration, after the callbacks
 * and tasks already ready (FIFO), in a copy of the current context (see
 * async/context.h; so do call_later and call_at). If out is not NULL the caller
 * gets a handle it owns and must give back with exactly one of
 * async_handle_cancel or async_handle_release; with out NULL the loop frees
 * everything. Returns 0, -EINVAL, -ESHUTDOWN, -ENOMEM. Suspends: no. */
ASYNC_EXTERN int async_loop_call_soon(async_loop *loop, async_callback cb,
                                      void *arg, async_handle **out);

/** Schedules cb(arg) `delay` seconds from now, that is at loop time now +
 * delay, as asyncio's call_later is call_at(time() + delay): a delay of
 * zero or less is due at once, and callbacks due run in the order of their
 * times (-2 before -1 before 0), those of equal times in the order they
 * were scheduled. ASYNC_NO_TIMEOUT never comes due.
 * Handle ownership as for async_loop_call_soon.
 * Returns 0, -EINVAL (also for a NaN delay), -ESHUTDOWN, -ENOMEM. */
ASYNC_EXTERN int async_loop_call_later(async_loop *loop, double delay,
                                       async_callback cb, void *arg,
                                       async_handle **out);

/** Schedules cb(arg) at loop time `when` (see async_loop_time). As
 * async_loop_call_later otherwise. */
ASYNC_EXTERN int async_loop_call_at(async_loop *loop, double when,
                                    async_callback cb, void *arg,
                                    async_handle **out);

/** Cancels the callback if it has not run yet, and gives the handle back.
 * Returns 1 if this call stopped the callback from running, 0 if it had
 * already run or been dropped, -EINVAL (NULL, a handle given back twice).
 * Safe after the loop is closed. Suspends: no. */
ASYNC_EXTERN int async_handle_cancel(async_handle *h);

/** The loop time (see async_loop_time) at which a callback scheduled with
 * async_loop_call_later or async_loop_call_at is due, in seconds: the
 * deadline the loop orders it by, as asyncio's TimerHandle.when(). Valid
 * until the handle is given back, also after the callback ran. NaN for
 * NULL, for a handle from async_loop_call_soon, and for one given back
 * while the loop still holds it (a handle given back is not to be used).
 * Suspends: no. */
ASYNC_EXTERN double async_handle_when(const async_handle *h);

/** Gives the handle back without cancelling the callback.
 * Returns 0 or -EINVAL (NULL, a handle given back twice). */
ASYNC_EXTERN int async_handle_release(async_handle *h);

/** From any thread: schedules cb(arg) on the loop as async_loop_call_soon does,
 * and wakes the loop if it is waiting. Both calls share one FIFO (asyncio's
 * ready deque): a call made here runs before every callback that
 * async_loop_call_soon schedules after it returned (on the loop's thread,
 * or on any thread that this one synchronised with). Called on the loop's
 * thread while it runs, cb runs in a copy of the current context; from
 * elsewhere, in an empty one. It may race async_loop_close on the loop's
 * thread: a call accepted while the close still runs tasks runs, one
 * accepted after that is dropped with the other pending callbacks, and once
 * the close has dropped them every call returns -ESHUTDOWN and queues
 * nothing. The loop must not be freed while this runs. Returns 0, -EINVAL,
 * -ESHUTDOWN (closing or closed), -ENOMEM, -ECHILD (the loop was inherited
 * through fork(2): see async_loop_fork). Suspends: no. */
ASYNC_EXTERN int async_loop_call_soon_threadsafe(async_loop *loop,
                                                 async_callback cb, void *arg);

/* ==== The exception handler ============================================ */

/** What the loop reports to its exception handler (asyncio's context dict):
 * a problem nobody's call returned, found by the loop. */
typedef struct async_exception_context {
  const char *message;  /**< one line, without "libasync: " or a newline;
                           valid during the call */
  int err;              /**< the error concerned (a negative errno), or 0 */
  async_future *future; /**< the task or future concerned, or NULL; borrowed
                           for the call only, and possibly being freed:
                           read it (async_task_name, async_future_result),
                           do not release or await it */
  int fatal;            /**< 1: the process aborts once the handler returns */
} async_exception_context;

/** An exception handler: called on the loop's thread, from inside the loop
 * (never from a signal handler), with what happened. It must not run the
 * loop nor suspend. `arg` is the one given to
 * async_loop_set_exception_handler. */
typedef void (*async_exception_handler)(async_loop *loop,
                                        const async_exception_context *ctx,
                                        void *arg);

/** Sets the loop's exception handler (asyncio's set_exception_handler),
 * which then receives, instead of stderr:
 * - an error nobody read: a task or future that failed (not cancelled) and
 *   is freed without anyone having awaited it or read its result;
 * - the tasks that ignored cancellation at async_loop_close, once, before
 *   they are ended without their cleanup (err -ECANCELED; async_task_all
 *   still lists them during the call);
 * - a task that returned inside a deadline scope (fatal);
 * - a stack overflow caught by a broken canary, for stacks without a guard
 *   page, at the task's next switch (fatal; the handler runs on the
 *   overflowed task's stack, at the depth of that switch).
 * An overflow onto a guard page is caught in a SIGSEGV handler, where no
 * program code can safely run: it is always written to stderr (see
 * async_loop_options.report_overflow). A future freed after its loop was
 * closed reports to the default handler.
 * `handler` NULL restores the default. Returns 0 or -EINVAL (a NULL or
 * invalid loop). Suspends: no. */
ASYNC_EXTERN int
async_loop_set_exception_handler(async_loop *loop,
                                 async_exception_handler handler, void *arg);

/** The handler set by async_loop_set_exception_handler, or NULL for the
 * default one (and for an invalid loop); stores its argument in *arg when
 * arg is not NULL. */
ASYNC_EXTERN async_exception_handler
async_loop_get_exception_handler(const async_loop *loop, void **arg);

/** The default exception handler: writes "libasync: <message>" and a
 * newline to stderr. Callable from a handler of the program's that wants
 * the default line too; loop may be NULL. */
ASYNC_EXTERN void
async_loop_default_exception_handler(async_loop *loop,
                                     const async_exception_context *ctx);

/** Passes ctx to the loop's exception handler, or to the default one
 * (asyncio's call_exception_handler): for code of the program's that
 * reports as the loop does. ctx->fatal is only passed on: this call does
 * not abort. Returns 0, or -EINVAL (invalid loop, NULL ctx or message).
 * Suspends: no. */
ASYNC_EXTERN int
async_loop_call_exception_handler(async_loop *loop,
                                  const async_exception_context *ctx);

#ifdef __cplusplus
}
#endif

#endif
