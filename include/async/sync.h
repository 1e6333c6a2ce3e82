/* SPDX-License-Identifier: MIT */
/** @file
 * libasync: Layer 5, primitives: queues, synchronization, generators.
 * A chapter of <async.h>, which is what programs include. */
#ifndef ASYNC_API_SYNC_H
#define ASYNC_API_SYNC_H

#include "base.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ==== Queues ============================================================ */

/** asyncio.Queue, LifoQueue and PriorityQueue: a queue of `void *` items
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
 * waiting stores its item and promises it to the first one, which takes it
 * when it runs; a get that frees a place promises it to the first waiting
 * putter, which stores its item when it runs. Meanwhile nobody else can
 * take that item or that place (size, empty and full count them as
 * taken).
 *
 * Cancellation, as in asyncio: a get or put cancelled while it waits, or
 * woken and then cancelled before it runs, returns -ECANCELED and has
 * moved nothing. The item promised to a cancelled getter stays in the
 * queue at its place (by the queue's order) and goes to the next getter in
 * line if there is one; a cancelled putter's item is not stored, and the
 * place goes to the next putter. So no item is lost or duplicated.
 *
 * A queue is not bound to a loop, but it belongs to one thread, and all
 * tasks that wait on it at the same time must belong to the same loop.
 * Neither put nor get allocates memory, except that an unbounded queue (or
 * one whose maxsize exceeds ASYNC_QUEUE_PREALLOC_MAX) grows its storage by
 * doubling when it is full. */
typedef struct async_queue async_queue;

/** The order in which a queue gives its items back. */
enum {
  ASYNC_QUEUE_FIFO = 0,    /**< first in, first out (asyncio.Queue) */
  ASYNC_QUEUE_LIFO = 1,    /**< last in, first out (LifoQueue) */
  ASYNC_QUEUE_PRIORITY = 2 /* smallest first by `cmp`; equal ones FIFO */
};

/** Bounded queues up to this maxsize allocate all their storage at
 * creation; larger ones start smaller and grow up to maxsize. */
#define ASYNC_QUEUE_PREALLOC_MAX 65536

/** Compares two items: < 0 when a comes before b, 0 when equal, > 0. */
typedef int (*async_cmp_fn)(const void *a, const void *b, void *arg);

/** Called with an item the queue discards. It must not use the queue. */
typedef void (*async_drop_fn)(void *item, void *arg);

/** The options of async_queue_new; async_queue_options_init sets defaults. */
typedef struct async_queue_options {
  size_t size;        /**< sizeof(async_queue_options): set by _init */
  int order;          /**< ASYNC_QUEUE_FIFO (default), _LIFO, _PRIORITY */
  async_cmp_fn cmp;   /**< required for ASYNC_QUEUE_PRIORITY, else unused */
  void *cmp_arg;      /**< passed to cmp */
  async_drop_fn drop; /**< NULL (default): discarded items are forgotten */
  void *drop_arg;     /**< passed to drop */
} async_queue_options;

/** Fills *opts with the defaults: FIFO, no drop function. */
ASYNC_EXTERN void async_queue_options_init(async_queue_options *opts);

/** Makes a queue holding at most `maxsize` items (0: unbounded) and stores
 * it in *out; opts may be NULL for a FIFO queue. The caller owns the queue
 * and frees it with async_queue_free.
 * Returns 0, -EINVAL (NULL out, bad options, PRIORITY without cmp),
 * -ENOMEM. Suspends: no. */
ASYNC_EXTERN int async_queue_new(async_queue **out, size_t maxsize,
                                 const async_queue_options *opts);

/** Frees the queue, passing the items still in it to the drop function (if
 * any), in queue order. NULL is a harmless no-op. Freeing twice is
 * undefined.
 * Returns 0, -EINVAL, or -EBUSY when a task waits on the queue (in get,
 * put or join), or was woken from get or put and has not run yet: nothing
 * is freed then (shut it down first, which wakes them, and let them run).
 * Suspends: no. */
ASYNC_EXTERN int async_queue_free(async_queue *q);

/** Puts `item` (any pointer, NULL included) into the queue, waiting while
 * the queue is full. Does not suspend when there is room (and so does not
 * deliver a pending cancellation then, as asyncio's put does not).
 * Returns 0 (the item now belongs to the queue), -ESHUTDOWN (the queue is
 * shut down, now, while waiting, or after a place was promised to it),
 * -ECANCELED, -EINVAL, -EPERM (outside a task), -ENOMEM (a growing queue
 * could not grow). On error the item stays the caller's. Suspends: yes. */
ASYNC_EXTERN int async_queue_put(async_queue *q, void *item);

/** Takes the next item (by the queue's order) into *item, waiting while the
 * queue is empty (see async_queue_empty: an item promised to a woken
 * getter is not there for a newcomer). Does not suspend when an item is
 * there.
 * Returns 0 (*item is the caller's now), -ESHUTDOWN (the queue is shut
 * down and empty, now or while waiting, or an immediate shutdown discarded
 * the item promised to it), -ECANCELED, -EINVAL (also a NULL
 * item), -EPERM (outside a task). *item is NULL on error.
 * Suspends: yes. */
ASYNC_EXTERN int async_queue_get(async_queue *q, void **item);

/** Puts without waiting. Returns 0, -EAGAIN (full), -ESHUTDOWN, -EINVAL,
 * -ENOMEM. May be called outside a task. Suspends: no. */
ASYNC_EXTERN int async_queue_put_nowait(async_queue *q, void *item);

/** Gets without waiting. Returns 0, -EAGAIN (empty), -ESHUTDOWN (shut down
 * and empty), -EINVAL. May be called outside a task. Suspends: no. */
ASYNC_EXTERN int async_queue_get_nowait(async_queue *q, void **item);

/** Tells the queue that one item got earlier is fully processed. Every
 * successful put counts one unfinished item; when task_done has been
 * called for all of them, the tasks waiting in async_queue_join wake.
 * Returns 0, -EOVERFLOW (called more times than items were put), -EINVAL.
 * Suspends: no. */
ASYNC_EXTERN int async_queue_task_done(async_queue *q);

/** Waits until every item put has been marked done with task_done (at once
 * when none is unfinished).
 * Returns 0, -ECANCELED, -EINVAL, -EPERM. Suspends: yes. */
ASYNC_EXTERN int async_queue_join(async_queue *q);

/** Shuts the queue down (asyncio's Queue.shutdown). Puts fail from now on
 * with -ESHUTDOWN, and the tasks waiting in put wake with it (their items
 * stay theirs). Graceful (immediate == 0): gets go on returning the items
 * left, then fail with -ESHUTDOWN; tasks waiting in get (the queue is empty
 * then) wake with -ESHUTDOWN. Immediate: the items left are discarded at
 * once (passed to the drop function) and each counts as done for join;
 * every waiting getter wakes with -ESHUTDOWN. A graceful shutdown may be
 * made immediate later; shutting down again is harmless.
 * Returns 0 or -EINVAL. Suspends: no. */
ASYNC_EXTERN int async_queue_shutdown(async_queue *q, int immediate);

/** The number of items a get could take now: those in the queue, less the
 * ones promised to woken getters (and not counting those that putters
 * still hold), or -EINVAL. */
ASYNC_EXTERN long async_queue_size(const async_queue *q);

/** The maxsize given at creation (0: unbounded), or -EINVAL. */
ASYNC_EXTERN long async_queue_maxsize(const async_queue *q);

/** 1 if the queue holds no item a get could take now (see
 * async_queue_size), 0 if it does, -EINVAL. */
ASYNC_EXTERN int async_queue_empty(const async_queue *q);

/** 1 if the queue is bounded and every place is taken, by an item or
 * promised to a woken putter (a put would wait), 0 if not, -EINVAL. */
ASYNC_EXTERN int async_queue_full(const async_queue *q);

/* ==== Synchronization =================================================== */

/** @file
 * asyncio's Lock, Event, Condition, Semaphore, BoundedSemaphore and
 * Barrier. Each is an opaque object made by its _new function and freed
 * by its _free function (NULL is a harmless no-op; freeing twice is
 * undefined; freeing one a task waits on returns -EBUSY and frees
 * nothing). A task woken from a wait, but not yet run, no longer waits:
 * the wake handed it what it waited for (the lock, a permit, an item, its
 * barrier index, the event), and it does not read the object again, so a
 * free in that window goes ahead and the task still gets its 0. The
 * condition is the exception: its woken or cancelled waiter has yet to
 * take the lock back, and the free is refused until it has. They are not
 * bound to a loop but belong to one thread, and the tasks that wait on
 * one at the same time must belong to the same loop.
 *
 * All of them are FIFO-fair: waiters are served in the order they came,
 * and a newcomer never overtakes a waiter (the lock or permit released
 * while tasks wait goes straight to the first of them, even when the
 * releasing task asks for it again at once). All waits are
 * cancellation-safe, and the cancellation wins, as in asyncio: a task
 * cancelled while it waits, or served (woken) and then cancelled before it
 * runs, returns -ECANCELED and owns nothing (it does not hold the lock,
 * took no permit, did not pass the barrier). What it was handed passes on:
 * the lock, the permit or the condition's notification goes to the next
 * waiter (or back to the object when nobody waits); an event or barrier
 * wake-up holds nothing to pass on. A call that can be served at once does
 * not suspend (and does not deliver a pending cancellation), as in
 * asyncio.
 *
 * None of these calls allocates memory except _new. */

/** A mutual exclusion lock. Not recursive. The task that acquired it is its
 * owner, but as in asyncio any code may release it. */
typedef struct async_lock async_lock;

/** Makes an unlocked lock. Returns 0, -EINVAL (NULL out), -ENOMEM.
 * Suspends: no. */
ASYNC_EXTERN int async_lock_new(async_lock **out);

/** Frees the lock (it may be locked). Returns 0, -EINVAL, -EBUSY (a task
 * waits for it, or was handed it and has not run yet: cancelled then, it
 * would pass the lock on). Suspends: no. */
ASYNC_EXTERN int async_lock_free(async_lock *l);

/** Acquires the lock, waiting in line while another task holds it.
 * Returns 0 (the calling task holds it), -EDEADLK (the calling task holds
 * it already: waiting would never end), -ECANCELED (it does not hold it:
 * one handed the lock and cancelled before it ran passed it on),
 * -EINVAL, -EPERM (outside a task). Suspends: yes. */
ASYNC_EXTERN int async_lock_acquire(async_lock *l);

/** Acquires the lock if it is free, without waiting. May be called outside
 * a task (the lock then has no owner task).
 * Returns 0, -EAGAIN (locked), -EINVAL. Suspends: no. */
ASYNC_EXTERN int async_lock_try_acquire(async_lock *l);

/** Releases the lock: the first waiting task, if any, gets it at once.
 * Returns 0, -EPERM (the lock is not locked), -EINVAL. Suspends: no. */
ASYNC_EXTERN int async_lock_release(async_lock *l);

/** 1 if the lock is held, 0 if not, -EINVAL. */
ASYNC_EXTERN int async_lock_locked(const async_lock *l);

/** An event: a flag tasks can wait to see set. */
typedef struct async_event async_event;

/** Makes an event, not set. Returns 0, -EINVAL, -ENOMEM. Suspends: no. */
ASYNC_EXTERN int async_event_new(async_event **out);

/** Frees the event. Returns 0, -EINVAL, -EBUSY. Suspends: no. */
ASYNC_EXTERN int async_event_free(async_event *e);

/** Sets the flag and wakes every waiting task (each will return 0 even if
 * the flag is cleared before it runs, or -ECANCELED if it is cancelled
 * before it runs). Returns the number of tasks woken, or -EINVAL.
 * Suspends: no. */
ASYNC_EXTERN int async_event_set(async_event *e);

/** Clears the flag. Returns 0 or -EINVAL. Suspends: no. */
ASYNC_EXTERN int async_event_clear(async_event *e);

/** 1 if the flag is set, 0 if not, -EINVAL. */
ASYNC_EXTERN int async_event_is_set(const async_event *e);

/** Waits until the flag is set (returns at once if it is).
 * Returns 0, -ECANCELED, -EINVAL, -EPERM. Suspends: yes. */
ASYNC_EXTERN int async_event_wait(async_event *e);

/** A condition variable, tied to a lock. */
typedef struct async_condition async_condition;

/** Makes a condition on `lock`, which the caller keeps owning and must keep
 * alive until the condition is freed; NULL: the condition makes and owns a
 * lock of its own. Returns 0, -EINVAL, -ENOMEM. Suspends: no. */
ASYNC_EXTERN int async_condition_new(async_condition **out, async_lock *lock);

/** Frees the condition (and its own lock). Returns 0, -EINVAL, -EBUSY (a
 * task waits on it, or was notified or cancelled and has not taken the
 * lock back yet: it still reads the condition, so the free is refused
 * rather than deferred; or, for its own lock, a task waits on the lock).
 * Suspends: no. */
ASYNC_EXTERN int async_condition_free(async_condition *c);

/** The condition's lock (borrowed), or NULL for an invalid c. */
ASYNC_EXTERN async_lock *async_condition_lock(async_condition *c);

/** @{ */
/** async_lock_acquire / _release / _locked on the condition's lock. */
ASYNC_EXTERN int async_condition_acquire(async_condition *c);
ASYNC_EXTERN int async_condition_release(async_condition *c);
ASYNC_EXTERN int async_condition_locked(const async_condition *c);
/** @} */

/** Releases the lock, which the calling task must hold, waits until
 * notified, and acquires the lock again before returning: on every return
 * but -EPERM/-EINVAL the task holds the lock, cancelled or not.
 * Returns 0 (notified), -ECANCELED (cancelled while it waited, or
 * notified and then cancelled before it ran or while it took the lock
 * back: that notification then goes to the next waiter, so a cancelled
 * wait never consumes one), -EPERM (outside a task, or the lock is not
 * held by the calling task), -EINVAL.
 * Suspends: yes. */
ASYNC_EXTERN int async_condition_wait(async_condition *c);

/** Waits (as async_condition_wait) until pred(arg) returns non-zero. As in
 * asyncio, pred is called first, before anything else is checked: when it
 * is already true the call returns 0 at once, whether or not the calling
 * task holds the lock, without suspending (and so without delivering a
 * pending cancellation). Otherwise the task must hold the lock, and pred
 * is called again, with the lock held, after each wake-up.
 * Returns 0 once pred is true (C has no truth value to hand back beside
 * the errors), -EPERM (outside a task, or pred false and the lock not held
 * by the calling task), -EINVAL (NULL c or pred), or the error of a wait
 * (-ECANCELED: the lock is held again). Suspends: yes. */
ASYNC_EXTERN int async_condition_wait_for(async_condition *c,
                                          int (*pred)(void *arg), void *arg);

/** Wakes up to n of the waiting tasks, first come first. The lock must be
 * locked (by anyone, as in asyncio). Returns the number woken, -EPERM (the
 * lock is not locked), -EINVAL. Suspends: no. */
ASYNC_EXTERN int async_condition_notify(async_condition *c, int n);

/** Wakes every waiting task. As async_condition_notify. */
ASYNC_EXTERN int async_condition_notify_all(async_condition *c);

/** A counting semaphore (asyncio.Semaphore and BoundedSemaphore). */
typedef struct async_semaphore async_semaphore;

/** Makes a semaphore holding `value` permits.
 * Returns 0, -EINVAL (NULL out, value above INT_MAX), -ENOMEM.
 * Suspends: no. */
ASYNC_EXTERN int async_semaphore_new(async_semaphore **out, unsigned value);

/** Makes a bounded semaphore: a release that would raise the permits above
 * the initial `value` fails with -EOVERFLOW. As async_semaphore_new. */
ASYNC_EXTERN int async_bounded_semaphore_new(async_semaphore **out,
                                             unsigned value);

/** Frees the semaphore. Returns 0, -EINVAL, -EBUSY (a task waits on it,
 * or was handed a permit and has not run yet: cancelled then, it would
 * pass the permit on). Suspends: no. */
ASYNC_EXTERN int async_semaphore_free(async_semaphore *s);

/** Takes a permit, waiting in line while there is none.
 * Returns 0, -ECANCELED (no permit taken: one handed the permit and
 * cancelled before it ran passed it on), -EINVAL, -EPERM.
 * Suspends: yes. */
ASYNC_EXTERN int async_semaphore_acquire(async_semaphore *s);

/** Takes a permit if one is free. Returns 0, -EAGAIN, -EINVAL.
 * Suspends: no. */
ASYNC_EXTERN int async_semaphore_try_acquire(async_semaphore *s);

/** Gives a permit back: to the first waiting task if any, else to the
 * semaphore. Returns 0, -EOVERFLOW (bounded: more releases than
 * acquisitions; or the count would overflow), -EINVAL. Suspends: no. */
ASYNC_EXTERN int async_semaphore_release(async_semaphore *s);

/** 1 if no permit is free (an acquire would wait), 0 if one is, -EINVAL. */
ASYNC_EXTERN int async_semaphore_locked(const async_semaphore *s);

/** The number of free permits, or -EINVAL. */
ASYNC_EXTERN long async_semaphore_value(const async_semaphore *s);

/** A barrier for a fixed number of parties (asyncio.Barrier). */
typedef struct async_barrier async_barrier;

/** Makes a barrier for `parties` (>= 1) tasks.
 * Returns 0, -EINVAL, -ENOMEM. Suspends: no. */
ASYNC_EXTERN int async_barrier_new(async_barrier **out, unsigned parties);

/** Frees the barrier. Returns 0, -EINVAL, -EBUSY. Suspends: no. */
ASYNC_EXTERN int async_barrier_free(async_barrier *b);

/** Waits until `parties` tasks wait on the barrier, then lets them all pass
 * and starts a new cycle. Returns the task's arrival index in its cycle,
 * 0 to parties - 1 (the last to arrive, which does not suspend, gets
 * parties - 1), or -ENOTRECOVERABLE (the barrier is broken by abort, or
 * was reset or aborted while waiting), -ECANCELED (cancelled before the
 * barrier tripped: the task no longer counts as arrived; or cancelled after
 * the trip, before it ran: the others have passed all the same, as in
 * asyncio), -EINVAL, -EPERM.
 * Suspends: yes (not for the last party). */
ASYNC_EXTERN int async_barrier_wait(async_barrier *b);

/** Wakes every waiting task with -ENOTRECOVERABLE and puts the barrier back
 * in its empty, unbroken state. Returns the number woken, or -EINVAL.
 * Suspends: no. */
ASYNC_EXTERN int async_barrier_reset(async_barrier *b);

/** Breaks the barrier: waiting tasks wake, and later waits fail at once,
 * with -ENOTRECOVERABLE until async_barrier_reset. Returns the number
 * woken, or -EINVAL. Suspends: no. */
ASYNC_EXTERN int async_barrier_abort(async_barrier *b);

/** The number of parties, or -EINVAL. */
ASYNC_EXTERN int async_barrier_parties(const async_barrier *b);

/** The number of tasks waiting in the current cycle, or -EINVAL. */
ASYNC_EXTERN int async_barrier_n_waiting(const async_barrier *b);

/** 1 if the barrier is broken, 0 if not, -EINVAL. */
ASYNC_EXTERN int async_barrier_broken(const async_barrier *b);

/* ==== Generators ======================================================== */

/** Async generators: a producer coroutine yields values one at a time to
 * the task consuming them, which iterates with a plain loop (async for):
 *
 *   static void *powers(void *arg) {          // the producer
 *     for (long i = 1; i < 1000; i *= 2)
 *       if (async_gen_yield((void *)i) != 0) break;  // closed: clean up
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
 * producer's pending async_gen_yield returns -EPIPE: it cleans up and
 * returns. Values are opaque pointers; whoever receives one owns what it
 * points to, by the producer's own convention.
 *
 * As asyncio's asend and athrow, async_gen_asend resumes the producer with
 * a value that its pending yield receives (async_gen_yield_recv), and
 * async_gen_athrow with an error that its pending yield returns; either
 * then waits, as async_gen_next does, for the next value or the end. */
typedef struct async_gen async_gen;

/** What async_gen_next returns once the producer has returned (positive:
 * not an error). */
#define ASYNC_GEN_DONE 1

/** Makes a generator that will run fn(arg) as its producer; nothing runs
 * before the first async_gen_next. opts (may be NULL) names the producer
 * task and sets its stack size; the name is copied. The caller owns the
 * generator and frees it with async_gen_free.
 * Returns 0, -EINVAL (NULL out or fn, bad options), -ENOMEM.
 * Suspends: no. */
ASYNC_EXTERN int async_gen_new(async_gen **out, async_fn fn, void *arg,
                               const async_task_options *opts);

/** Asks for the next value: resumes the producer (starting it the first
 * time) and waits until it yields a value, stored in *value, or returns.
 * Returns 0 with a value; ASYNC_GEN_DONE once the producer has returned
 * (and again at every later call); the producer's error, once, when it
 * failed (return async_fail(err)), then ASYNC_GEN_DONE; -ESHUTDOWN after
 * async_gen_close; -EBUSY while another task waits in async_gen_next on
 * the same generator (or was woken there and has not run yet); -EDEADLK
 * when called by the producer itself; -EXDEV from a task of another loop
 * than the producer's; -EPERM outside a task;
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

/** asyncio's asend: async_gen_next, except that the producer's pending
 * yield receives `sent` (through async_gen_yield_recv; async_gen_next
 * sends NULL). The generator does not own `sent`: the producer's
 * convention says who does. Returns what async_gen_next returns, and
 * -EINVAL when sent is not NULL and the producer has not started (no
 * yield could receive it, asyncio's "can't send non-None value to a
 * just-started async generator"; a NULL one starts it as next does),
 * -EAGAIN when sent is not NULL and the producer is not waiting at a
 * yield that delivered its value (after its own wait was cancelled from
 * outside it runs on its own; async_gen_next still works). Nothing is
 * sent on an error. *value as for async_gen_next. Suspends: yes. */
ASYNC_EXTERN int async_gen_asend(async_gen *g, void *sent, void **value);

/** asyncio's athrow: the producer's pending yield returns `error` (a
 * negative errno value of the caller's choosing) instead of 0; the call
 * then waits, as async_gen_next does, for what the producer does next: a
 * value it yields (0, *value set: it handled the error), its end
 * (ASYNC_GEN_DONE), or its failure (the error it fails with, typically
 * `error` itself, passed on by `return async_fail(err)`).
 * A producer not started never runs: the generator is finished at once
 * (later calls return ASYNC_GEN_DONE) and the call returns `error`, as
 * asyncio raises it at the generator's first line.
 * Returns those, the errors of async_gen_next, -EINVAL (error >= 0, or
 * NULL g), -EAGAIN (the producer is not waiting at a yield that delivered
 * its value: see async_gen_asend). Suspends: yes (not when the producer
 * had not started). */
ASYNC_EXTERN int async_gen_athrow(async_gen *g, int error, void **value);

/** Called by a producer: hands `value` to the consumer waiting in
 * async_gen_next, then waits until the consumer asks for the next one.
 * Returns 0 (asked for the next value: go on); -EPIPE (the generator was
 * closed: clean up and return); -ECANCELED (the producer task was
 * cancelled, typically because its consumer was: clean up and return);
 * the error given to async_gen_athrow; -EPERM outside a generator's
 * producer. A yield after -EPIPE (the producer ignored the close) delivers
 * nothing: it makes the async_gen_close waiting for the producer return
 * -EPERM, and waits there until the generator is closed again (another
 * async_gen_close, or async_gen_free), then returns -EPIPE again; after
 * async_gen_free it returns -EPIPE at once.
 * The value is delivered before the call suspends, except when the call
 * fails at once (-EPERM; -EPIPE, the generator was already closed;
 * -ECANCELED, a cancellation was already pending) and when no consumer
 * was waiting (only after the producer's previous wait was cancelled from
 * outside): the call then first waits for a consumer, and an -EPIPE or
 * -ECANCELED during that wait means the value was not delivered.
 * Suspends: yes. */
ASYNC_EXTERN int async_gen_yield(void *value);

/** async_gen_yield, and *sent (if sent is not NULL) receives what the
 * consumer resumed it with: the value given to async_gen_asend, NULL for
 * async_gen_next. *sent is NULL unless 0 is returned. Besides the codes
 * of async_gen_yield, returns the error given to async_gen_athrow (the
 * consumer then waits for the producer's next yield or its end).
 * Suspends: yes. */
ASYNC_EXTERN int async_gen_yield_recv(void *value, void **sent);

/** Closes the generator (aclose): a producer waiting at a yield gets
 * -EPIPE there, and the call waits until the producer has returned, so its
 * cleanup is done. A generator never started is closed without running.
 * Closing a finished generator does nothing; closing again one whose
 * producer still lives (it ignored the close) tells it again.
 * Returns 0, or the producer's error if it failed with another code than
 * -EPIPE; -EPERM when the producer yields again instead of returning
 * (asyncio's "async generator ignored GeneratorExit"): it is left waiting
 * at that yield, and a later close or free tells it again; -EBUSY (a task
 * waits in async_gen_next, or was woken there and has not run yet),
 * -EDEADLK (called by the producer itself), -ECANCELED (the closing task
 * was cancelled while it waited: the producer was cancelled too), -EXDEV,
 * -EPERM (outside a task), -EINVAL.
 * Suspends: yes (not when nothing runs). */
ASYNC_EXTERN int async_gen_close(async_gen *g);

/** Frees the generator. If its producer is still alive, it is closed as by
 * async_gen_close but without waiting: it sees -EPIPE at its yield, and
 * the generator's memory is released once it has returned. NULL is a
 * harmless no-op; freeing twice is undefined.
 * Returns 0, -EINVAL, -EBUSY (a task waits in async_gen_next, or was
 * woken there, by a value or by the producer's end, and has not run yet:
 * it still reads the generator when it resumes, so the free is refused
 * rather than deferred, and nothing is freed). Suspends: no. */
ASYNC_EXTERN int async_gen_free(async_gen *g);

/** The async comprehension ([v async for v in g]): calls async_gen_next
 * until the producer returns and stores the values, in order, in a new
 * array *items (free it with free(); NULL when there are none) of *n
 * elements. On an error the array holds the values got so far and the
 * caller still frees it; on -ENOMEM the generator is closed first.
 * Returns 0, or an error of async_gen_next (other than ASYNC_GEN_DONE),
 * -ENOMEM, -EINVAL (NULL items or n). Suspends: yes. */
ASYNC_EXTERN int async_gen_collect(async_gen *g, void ***items, size_t *n);

#ifdef __cplusplus
}
#endif

#endif
