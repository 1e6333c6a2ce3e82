/* SPDX-License-Identifier: MIT */
/** @file
 * libasync: Layer 6, signals delivered to the loop.
 * A chapter of <async.h>, which is what programs include.
 *
 * A signal the loop watches is caught by a handler of the library's that
 * only counts it and writes a byte to a pipe of the loop's (the self-pipe:
 * async-signal-safe, and no program code runs in the handler); the loop
 * reads the pipe among its other fds and then calls the program's handler
 * and wakes the tasks waiting, from the loop, like any other callback.
 *
 * The rules:
 * - A signal is watched by at most one loop of the process at a time: a
 *   second loop asking for it gets -EBUSY until the first one stops
 *   (async_signal_remove, or its close). Each loop, on any thread, may
 *   watch other signals.
 * - The signal may arrive on any thread that does not block it: the
 *   library blocks none, in no thread, so that no thread's default
 *   action can bite while a loop watches it. Its handler is installed
 *   with SA_RESTART, so a system call of another thread is restarted
 *   rather than failing with EINTR where the system allows it.
 * - Deliveries coalesce: the kernel keeps one pending instance of a
 *   standard signal, and the loop counts what its handler saw since it
 *   last looked. A count is passed along, never a siginfo.
 * - On a loop with a virtual clock (async_loop_options.virtual_clock) the
 *   pipe, like a call from another thread, does not hold the clock back:
 *   it jumps to the next timer as before, and a delivery is seen when the
 *   loop next polls.
 * - What the library changes, and gives back: only the disposition of a
 *   watched signal (sigaction), never a signal mask. When the loop stops
 *   watching it (async_signal_remove, async_loop_close) the disposition
 *   it found is restored, unless the program installed another one since,
 *   which is left in place. A child started with exec(2) or posix_spawn
 *   inherits nothing of it (exec resets caught signals to their default,
 *   and the mask is the parent's own); between fork(2) and exec, a watched
 *   signal that reaches the child takes the disposition the library found,
 *   and reaches no loop of the parent; once the child has made the loop
 *   its own (async_loop_fork), it reaches the child's loop.
 * - Refused with -EINVAL: SIGKILL and SIGSTOP (the system's), and SIGSEGV,
 *   SIGBUS, SIGFPE and SIGILL: these come from the faulting instruction
 *   itself, which cannot wait for the loop (and SIGSEGV is the stack
 *   overflow reporter's, see async_loop_options.report_overflow).
 */
#ifndef ASYNC_API_SIGNAL_H
#define ASYNC_API_SIGNAL_H

#include "base.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ==== Signals =========================================================== */

/** A signal handler, as asyncio's add_signal_handler callback: called on
 * the loop's thread, from the loop (never from the signal handler), with
 * the signal and the number of deliveries since its previous call (at
 * least 1; several deliveries between two turns of the loop come as one
 * call). It runs as a callback of async_loop_call_soon does: it must not
 * suspend, and may add or remove signal handlers, spawn, cancel. */
typedef void (*async_signal_fn)(async_loop *loop, int signo, unsigned count,
                                void *arg);

/** asyncio's loop.add_signal_handler: from now on, each delivery of signo
 * to the process calls cb(loop, signo, count, arg) from the loop. One
 * handler per signal and loop: a second call for the same signal replaces
 * the first handler (and its arg). The loop keeps catching the signal
 * until async_signal_remove or async_loop_close; cb and arg must stay
 * valid until then. The loop's first signal opens its self-pipe.
 * Returns 0; -EINVAL (invalid loop, NULL cb, a signal out of range or
 * refused, see above); -EBUSY (another loop watches signo); -ESHUTDOWN
 * (the loop is closed); -ECHILD (the loop was inherited through fork(2):
 * see async_loop_fork); -ENOMEM, -EMFILE, -ENFILE (the pipe); or the
 * error of sigaction(2) or of the poller. Suspends: no. Call it on the
 * loop's thread. */
ASYNC_EXTERN int async_signal_add(async_loop *loop, int signo,
                                  async_signal_fn cb, void *arg);

/** asyncio's loop.remove_signal_handler: the loop stops watching signo.
 * Its handler is dropped, deliveries counted and not yet reported are
 * dropped, the tasks waiting for it in async_signal_wait return -ENOENT,
 * and the signal's disposition is restored (see above).
 * Returns 1 when the loop watched signo (by a handler or a wait), 0 when
 * it did not (also when another loop does: that one's watch is left
 * alone), -EINVAL (invalid loop, a signal out of range or refused), or
 * -ESHUTDOWN (the loop is closed: its close removed every watch).
 * Suspends: no. Call it on the loop's thread. */
ASYNC_EXTERN int async_signal_remove(async_loop *loop, int signo);

/** Suspends the current task until signo is delivered to the process, or
 * `timeout` seconds have passed (ASYNC_NO_TIMEOUT: no limit). The first
 * wait makes the loop watch signo, as async_signal_add does, and the loop
 * goes on watching it after the wait, until async_signal_remove or its
 * close: a delivery between two waits is kept, not lost to the signal's
 * default action. A handler added for signo is called as well.
 * Returns the number of deliveries (>= 1) since the previous wait for
 * signo on this loop returned, or since the loop began watching it; every
 * task waiting at a delivery gets the same count. Deliveries already
 * there are returned without suspending; a timeout of zero or less
 * returns them, or -ETIMEDOUT without suspending. A task cancelled after
 * a delivery woke it returns the count, and the cancellation stays
 * pending for its next suspending call.
 * Returns also -ETIMEDOUT, -ECANCELED, -ENOENT (async_signal_remove during
 * the wait), -EPERM (outside a task), -EINVAL (a signal out of range or
 * refused, NaN timeout), -EBUSY (another loop watches signo), and the
 * errors of async_signal_add. Suspends: yes. */
ASYNC_EXTERN int async_signal_wait(int signo, double timeout);

#ifdef __cplusplus
}
#endif

#endif
