/* SPDX-License-Identifier: MIT */
/** @file
 * libasync: Layer 4, composition: gather, as_completed, wait, deadlines,
 * shield, task groups. A chapter of <async.h>, which is what programs include.
 */
#ifndef ASYNC_API_COMPOSE_H
#define ASYNC_API_COMPOSE_H

#include "base.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ==== Composition ======================================================= */

/** @file
 * Waiting for several futures at once, bounding waits in time, and
 * structured groups of tasks: asyncio's gather, as_completed, wait,
 * wait_for, timeout, shield and TaskGroup.
 *
 * Arrays of futures: every function below takes `async_future *const
 * futs[]` of n entries, tasks and bare futures mixed. Each entry must be a
 * live future (-EINVAL otherwise); one not done yet must belong to the
 * calling task's loop (-EXDEV, or -ESHUTDOWN once its loop is closed) and
 * must not be the calling task itself (-EDEADLK). These checks are made
 * before anything else happens. The same future may appear more than
 * once: gather treats each entry on its own (its result is stored at each
 * position), while wait and as_completed, which take a set in asyncio,
 * treat it as one future, by its first entry. The caller keeps its
 * references; the functions hold their own while they use a future.
 *
 * Cancellation: a suspending call of this section that finds its task
 * already cancelled (a pending request) or is cancelled while it waits
 * returns -ECANCELED. Whether that cancellation is passed on to the
 * futures waited for is stated per function: gather, wait_for and task
 * groups do, as asyncio does; wait, as_completed and shield do not. A
 * request that arrives after the futures have woken the task is still
 * delivered by the call, which then returns -ECANCELED. */

/** A coroutine not started yet: fn(arg), as `count()` is in Python before
 * anything awaits it. */
typedef struct async_coro {
  async_fn fn; /**< the coroutine */
  void *arg;   /**< its argument */
} async_coro;

/** asyncio.gather(*futs): waits until every future of futs[0..n) is done
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

/** asyncio.gather(*futs, return_exceptions=True): waits until every future
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

/** asyncio.gather(count(), count(), count()): spawns coros[i].fn(arg) for
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

/** Flag of async_gather_future: return_exceptions=True. */
#define ASYNC_GATHER_ERRORS 1

/** asyncio.gather(*futs) as a future (asyncio's _GatheringFuture), for
 * what takes a future: async_await, async_wait_for, another gather, wait,
 * done callbacks. Stores in *out a new future over futs[0..n) (tasks or
 * bare futures; each entry on its own, as async_gather):
 *   - it is done once every future is, with 0 and as its result a
 *     `void **` array of their n results in argument order (NULL for a
 *     failed one; a NULL result when n == 0);
 *   - without ASYNC_GATHER_ERRORS (flags 0), it ends at the first error
 *     (a future cancelled counts, with -ECANCELED), as soon as it happens,
 *     and the others keep running;
 *   - cancelling it (async_future_cancel, or cancelling a task that
 *     awaits it) cancels every future not done, and returns 1 if one of
 *     them took the request (0 otherwise, and nothing changes); it then
 *     ends with -ECANCELED once they are all done, whatever they ended
 *     with, or, without ASYNC_GATHER_ERRORS, earlier, at the first of them
 *     to fail (with that error; -ECANCELED for one cancelled).
 * Futures done on entry are taken as they are: when they decide it, the
 * gather future is done on return, without any loop iteration.
 * Ownership: the caller owns *out (async_future_release). It holds a
 * reference on every future of futs until it is freed, so that their
 * outcomes stay readable (async_gather_future_read); the results array
 * belongs to it, valid until it is freed. The futures' errors are marked
 * as read: the gather future reports them. Freeing it while futures are
 * pending leaves them running, unwatched. The caller's array may go once
 * the call returns. Needs no task; the future lives on the pending
 * futures' loop (which must be one), else on any of theirs, else on the
 * running loop.
 * Returns 0, -EINVAL (NULL out, NULL futs with n > 0, an invalid future,
 * an unknown flag, n == 0 with no loop running), -EXDEV (pending futures
 * of different loops), -ESHUTDOWN (a closed loop), -ENOMEM. Suspends:
 * no. */
ASYNC_EXTERN int async_gather_future(async_future **out,
                                     async_future *const futs[], size_t n,
                                     int flags);

/** The outcomes of a gather future's futures, at any time: stores for
 * each i below n and cap results[i] (future i's result, NULL unless it is
 * done with one) and errors[i] (its error, 0 for a result, -EINPROGRESS
 * while it is not done); either array may be NULL. Returns n, or -EINVAL
 * (f is not a gather future). Suspends: no. */
ASYNC_EXTERN long async_gather_future_read(const async_future *f,
                                           void **results, int *errors,
                                           size_t cap);

/** asyncio.as_completed(futs, timeout=): an iterator that hands back the
 * futures of futs[0..n) in the order they complete. Opaque. */
typedef struct async_as_completed async_as_completed;

/** Makes the iterator over futs[0..n) (tasks or bare futures) and stores it
 * in *out. Futures already done come first, in argument order; a future
 * given more than once is handed back once (asyncio takes a set), and
 * counts once in async_as_completed_left. `timeout`
 * (seconds, counted from this call on the futures' loop clock;
 * ASYNC_NO_TIMEOUT: no limit; zero or less: expired already, so only the
 * futures done on entry are handed back) bounds the whole iteration: once it
 * has passed, the futures not done by then are reported as timed out (see
 * async_as_completed_next). The iterator holds a reference on every future
 * until it is freed, and registers with them at once, so the completion order
 * is recorded even while nobody calls next. The caller owns *out:
 * async_as_completed_free ends it; it may outlive the loop. Returns 0, -EINVAL
 * (NULL out, NULL futs with n > 0, an invalid future, NaN timeout), -EXDEV
 * (pending futures of different loops), -ESHUTDOWN (a pending future of a
 * closed loop), -ENOMEM. Suspends: no. */
ASYNC_EXTERN int async_as_completed_new(async_as_completed **out,
                                        async_future *const futs[], size_t n,
                                        double timeout);

/** Hands back the next future to complete, waiting for it if none is
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
 * -EBUSY (another task waits in next, or was woken there and has not run
 * yet: the future that woke it is that task's), -EXDEV (a task of another
 * loop), -EDEADLK (the calling task is among the futures left). Suspends: yes
 * (not when a future is ready to be handed back, nor when none is left). */
ASYNC_EXTERN int async_as_completed_next(async_as_completed *it,
                                         async_future **f);

/** The number of futures not handed back yet, or -EINVAL. */
ASYNC_EXTERN long async_as_completed_left(const async_as_completed *it);

/** Frees the iterator and drops its references (a future the caller no
 * longer holds may then be freed). NULL is a harmless no-op. The futures
 * are not cancelled. Safe after the loop is closed.
 * Returns 0, -EINVAL, -EBUSY (a task waits in next, or was woken or
 * cancelled there and has not run yet: it still reads the iterator when it
 * resumes, so the free is refused rather than deferred, and nothing is
 * freed; free it once that next has returned). Suspends: no. */
ASYNC_EXTERN int async_as_completed_free(async_as_completed *it);

/** When async_wait returns (asyncio's return_when). */
typedef enum async_return_when {
  ASYNC_ALL_COMPLETED = 0, /**< every future is done */
  ASYNC_FIRST_COMPLETED,   /**< at least one future is done */
  ASYNC_FIRST_EXCEPTION    /* one failed (with an error other than
                              -ECANCELED), or every one is done */
} async_return_when;

/** asyncio.wait(futs, timeout=, return_when=): waits until the condition
 * `return_when` holds over futs[0..n) or `timeout` seconds have passed
 * (ASYNC_NO_TIMEOUT: no limit; zero or less: expired already, the call
 * only looks). Running out of time is not an error and nothing is
 * cancelled, then or ever: the call reports what is done.
 * As in asyncio, which takes a set, a future given more than once counts
 * as one: the conditions count distinct futures, and each is reported
 * once. On return, done[] (if not NULL) gets the futures done, pending[]
 * (if not NULL) the others, from index 0 on, each future once, in the
 * order of its first entry in futs; past the last one written, the
 * arrays are left as they were. Both need room for n entries (as many as
 * there can be distinct futures). The futures' outcomes are not read
 * (use async_future_result).
 * Returns the number of distinct futures done (pending[] then holds the
 * other distinct futures: n minus that many when futs has no repeats),
 * or -ECANCELED (the arrays
 * are then not written), -EINVAL (n == 0, as asyncio refuses an empty
 * set; bad return_when, NaN timeout, n > INT_MAX, NULL futs), -EPERM,
 * -EDEADLK, -EXDEV, -ESHUTDOWN (see the section's introduction), -ENOMEM
 * (the wait's records are allocated beyond 8 futures). Suspends: yes (not
 * when the condition already holds or timeout <= 0). */
ASYNC_EXTERN int async_wait(async_future *const futs[], size_t n,
                            async_return_when return_when, double timeout,
                            async_future **done, async_future **pending);

/** asyncio.wait_for(f, timeout): awaits f for at most `timeout` seconds
 * (ASYNC_NO_TIMEOUT: no limit, the same as async_await). When the time
 * runs out, f is cancelled and the call waits until it is done (a task's
 * cleanup has run); then what f made of the cancellation is the outcome,
 * as in asyncio: a result f still returned (it caught the cancellation)
 * is returned with 0, an error its cleanup ended with is returned as it
 * is, and only an f that ended cancelled gives -ETIMEDOUT.
 * A timeout of zero or less has expired already: a pending f is
 * cancelled at once.
 * If the waiting task is cancelled, f is cancelled too (as async_await
 * does), and the call returns -ECANCELED once f is done.
 * It is async_await inside an async_timeout scope; for a deadline that
 * leaves f running, await with async_shield inside a scope instead.
 * Returns 0 with f's result in *result (result may be NULL; NULL on
 * error), f's error, -ETIMEDOUT, -ECANCELED, -EINVAL (also NaN timeout),
 * -EPERM, -EDEADLK, -EXDEV. Suspends: yes, unless f is done. */
ASYNC_EXTERN int async_wait_for(async_future *f, double timeout, void **result);

/** A deadline scope (asyncio.timeout()): a stretch of a task's code with a
 * deadline. When the deadline passes while the task is still inside, the
 * scope cancels that task, and only it: its current or next suspending
 * call returns -ECANCELED (an async_await passes the cancellation on to
 * what it awaits, as always), the code unwinds to async_timeout_exit with
 * its outcome, and the exit turns a -ECANCELED outcome into -ETIMEDOUT.
 *
 *   async_timeout tmo;
 *   async_timeout_enter(&tmo, 5.0);
 *   int err = fetch(...);                 // -ECANCELED when cut short
 *   err = async_timeout_exit(&tmo, err);  // -ETIMEDOUT when cut short
 *
 * Scopes nest: each has its own deadline and timer, and the exit of the
 * scope whose deadline cancelled the task reports -ETIMEDOUT, while an
 * inner scope crossed by that cancellation gives the -ECANCELED back
 * unchanged, to travel outwards. A cancellation from outside the scope
 * (its task cancelled by someone else while inside) is not converted
 * either: the exit returns the -ECANCELED it was given. As in asyncio, the
 * scope tells its own request from others by counting the task's cancellation
 * requests: after an outside request reached the task inside the scope,
 * even one the code caught and carried on from, the scope no longer
 * claims a cancellation as its own.
 *
 * The struct lives where the caller puts it (usually its stack) and holds
 * the scope's timer: every async_timeout_enter must be paired with an
 * async_timeout_exit by the same task on every path, before the memory
 * goes away. A task whose function returns inside a scope is reported on
 * stderr and the process aborts (the timer would outlive its memory); a
 * task ended at loop close inside scopes has their timers disarmed. A
 * struct that is not a local of the entering task (a static, or heap
 * memory tasks share) must be zeroed before its first enter, so that an
 * enter by a second task while the first is inside is recognised
 * (-EBUSY); a local is never read before it is entered. The fields are
 * private. */
typedef struct async_timeout {
  union {
    long long ll[16];
    void *p;
    double d;
  } opaque_; /**< private */
} async_timeout;

/** Enters a scope whose deadline is `delay` seconds from now on the loop's
 * clock (ASYNC_NO_TIMEOUT: no deadline yet, see async_timeout_reschedule;
 * zero or less: the deadline has already passed and cancels the task at
 * its next suspension). Returns 0, -EINVAL (NULL tmo, NaN delay), -EPERM
 * (outside a task), -EBUSY (tmo is entered already and not exited, by this
 * task or by another one; the scope entered stays as it was). Suspends:
 * no. */
ASYNC_EXTERN int async_timeout_enter(async_timeout *tmo, double delay);

/** asyncio.timeout_at(): as async_timeout_enter, with an absolute deadline
 * `when` on the loop's clock (async_loop_time; ASYNC_NO_TIMEOUT: none; a
 * time gone by, negative ones included, has passed already). */
ASYNC_EXTERN int async_timeout_enter_at(async_timeout *tmo, double when);

/** Moves the deadline of an entered scope to `when` (absolute, loop time;
 * ASYNC_NO_TIMEOUT: none), earlier or later; a time already past cancels
 * the task at the next loop iteration. May be called by any code of the
 * loop's thread. Returns 0, -EINVAL (NULL, NaN, a scope not entered or
 * exited), -EALREADY (the deadline has passed and cancelled the task
 * already). Suspends: no. */
ASYNC_EXTERN int async_timeout_reschedule(async_timeout *tmo, double when);

/** The scope's deadline (loop time): exactly the double given to
 * async_timeout_enter_at or async_timeout_reschedule, loop time + delay
 * for async_timeout_enter (asyncio's when()); ASYNC_NO_TIMEOUT when it
 * has none, NaN for a scope never entered; readable after the exit. */
ASYNC_EXTERN double async_timeout_when(const async_timeout *tmo);

/** 1 once the scope's deadline has passed and cancelled its task, 0
 * before, -EINVAL for a scope never entered. Stays readable after the
 * exit (until the struct is entered again): whether the deadline came,
 * whatever the exit made of it. */
ASYNC_EXTERN int async_timeout_expired(const async_timeout *tmo);

/** Leaves the scope, stops its timer, and returns the scope's outcome,
 * given `err`, the body's (what its last call returned: 0 or another
 * success value, or a negative error). When the scope's deadline
 * cancelled the task, and the cancellation was the scope's alone, the
 * outcome is what the body made of it, as asyncio's timeout() decides:
 *   - err == -ECANCELED (the body ended cancelled): -ETIMEDOUT;
 *   - another error (its cleanup failed otherwise): err;
 *   - success (it caught the cancellation and carried on, or the deadline
 *     passed after the last suspension inside): err, and a request still
 *     undelivered is withdrawn, so the task carries on uncancelled.
 * Otherwise it is err unchanged: no deadline passed, or the cancellation
 * was not the scope's alone (an outer scope's, or an outside one, left to
 * the code to pass on; a request still undelivered stays pending).
 * After the exit, async_timeout_expired and async_timeout_when stay
 * readable and the struct may be entered again or forgotten.
 * Returns also -EINVAL (NULL, a scope not entered, or exited twice) and
 * -EPERM (called by a task other than the one that entered it; the scope
 * stays entered), in place of err. Suspends: no. */
ASYNC_EXTERN int async_timeout_exit(async_timeout *tmo, int err);

/** await asyncio.shield(f): waits for f as async_await does, except that a
 * cancellation of the waiting task is not passed on: the call returns
 * -ECANCELED at once and f carries on, still held by the caller, who may
 * wait for it again. Inside an async_timeout scope this gives a deadline
 * on the wait that leaves f running.
 * Returns 0 with f's result in *result (result may be NULL), f's error,
 * -ECANCELED, -EINVAL, -EPERM, -EDEADLK, -EXDEV. Suspends: yes, unless f
 * is done. */
ASYNC_EXTERN int async_shield(async_future *f, void **result);

/** asyncio.shield(f) as a future: stores in *out a new future that ends
 * as f does (f's result, or f's error, -ECANCELED when f is cancelled),
 * while cancelling it only ends it, with -ECANCELED, and never reaches f.
 * A task awaiting it and cancelled therefore gets -ECANCELED once it is
 * ended, and f carries on. Where asyncio gives f itself back when f is
 * done, this is always a new future, done on return with f's outcome.
 * Ownership: the caller owns *out (async_future_release) and keeps its
 * own reference to f; the shield future holds another one until it is
 * freed. f's error is marked as read: the shield future reports it.
 * Needs no task. Returns 0, -EINVAL (NULL out, an invalid f),
 * -ESHUTDOWN (f's loop is closed), -ENOMEM. Suspends: no. */
ASYNC_EXTERN int async_shield_future(async_future **out, async_future *f);

/** asyncio.TaskGroup: tasks spawned into a group that its creator (the
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

/** Makes a group whose parent is the calling task, and stores it in *out;
 * the caller owns it. Returns 0, -EINVAL (NULL out), -EPERM (outside a
 * task), -ENOMEM. Suspends: no. */
ASYNC_EXTERN int async_task_group_new(async_task_group **out);

/** Spawns fn(arg) as a task of the group (as async_task_spawn does, opts
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

/** async with TaskGroup(): waits until every task of the group is done,
 * tasks spawned meanwhile included, then closes the group to new tasks.
 * Only the parent may wait. Calling it again returns the same outcome
 * without waiting.
 * Returns 0 when no task failed (and the parent was not cancelled), the
 * first task error otherwise (every one with async_task_group_errors).
 * With an error to return, a cancellation of the parent requested by
 * anyone but the group since the group was made is left pending, for the
 * parent's next suspending call: also one that its body already received,
 * because it merged with the group's own request at about the time a task
 * failed, or because it came before the wait (asyncio re-cancels a parent
 * whose cancelling() is not zero). Also returns -ECANCELED (the parent
 * was cancelled: the tasks were cancelled and have ended), -EINVAL,
 * -EPERM (not the parent, or outside a task). Suspends: yes (not when
 * every task is done and no cancellation is pending). */
ASYNC_EXTERN int async_task_group_wait(async_task_group *g);

/** Aborts the group, as a failing task would but without cancelling the
 * parent: every task not done is cancelled and no new one is accepted.
 * For the parent's code that fails between spawns and the wait (asyncio
 * aborts the group on an exception in the `async with` body).
 * Returns the number of tasks cancelled, or -EINVAL. Suspends: no. */
ASYNC_EXTERN int async_task_group_cancel(async_task_group *g);

/** The errors of the group's tasks, in the order they failed: stores up to
 * cap of them in errs[] and, if tasks is not NULL, the failed tasks
 * (borrowed, valid until the group is freed) in tasks[], and returns how
 * many there are in all (which may exceed cap), or -EINVAL. */
ASYNC_EXTERN long async_task_group_errors(const async_task_group *g, int *errs,
                                          async_task **tasks, size_t cap);

/** Frees the group and drops its references to its tasks. Tasks not done
 * yet (a group freed without its wait) are cancelled first and end on
 * their own. NULL is a harmless no-op; safe after the loop is closed.
 * Returns 0, -EINVAL, -EBUSY (the parent waits in the group: nothing is
 * freed). Suspends: no. */
ASYNC_EXTERN int async_task_group_free(async_task_group *g);

#ifdef __cplusplus
}
#endif

#endif
