/* SPDX-License-Identifier: MIT */
/** @file
 * libasync: asyncio for C.
 *
 * A single-threaded event loop that runs stackful coroutines. Any C function
 * of the shape `void *fn(void *arg)` runs as a task; a call that suspends (a
 * sleep, an await, an fd wait) suspends only that task, however deep in its
 * own calls it is made, while the loop runs the others.
 *
 * @code
 *   static void *count(void *arg) {
 *     puts("One");
 *     async_sleep(1.0);                 // suspends this task only
 *     puts("Two");
 *     return NULL;
 *   }
 *   int main(void) { return async_run(count, NULL, NULL) != 0; }
 * @endcode
 *
 * Conventions that hold for every function below:
 *
 * Errors are negative errno values returned by the call (0 or a count on
 *   success); async_strerror() turns one into text. There is no global error
 *   state. The codes used for misuse are: -EINVAL (a NULL or invalid
 *   argument, a handle released twice), -EPERM (a suspending call made
 *   outside a task), -EDEADLK (a task awaiting itself), -EXDEV (an object of
 *   another loop), -EBUSY (a loop already running, closing a running loop),
 *   -ESHUTDOWN (the loop is closed), -ECHILD (a loop inherited through
 *   fork(2) and not made the child's own: see async_loop_fork).
 * "Suspends: yes" marks the calls that may only be made from a task (they
 *   return -EPERM elsewhere) and that may run other tasks before returning.
 *   A cancelled task's suspending calls return -ECANCELED (see
 *   async_future_cancel).
 * Time is in seconds, as a double, on the monotonic clock.
 * Threads: a loop and everything made on it belong to the thread that runs
 *   it; one loop per thread at a time. Only async_loop_call_soon_threadsafe()
 *   may be called from another thread.
 *   A loop may move to another thread while it is not running: run it (or
 *   let async_loop_run_until_complete or async_loop_stop end a run) on one
 *   thread, then run or close it on another, and the tasks suspended on
 *   the first resume on the second. The program orders the hand-over (a
 *   join, a mutex) and never runs a loop on two threads at once; a run or
 *   a close tried from another thread while the loop runs returns -EBUSY.
 *   A task whose own code reads thread-locals across a suspending call
 *   should not be moved: compilers may compute a thread-local's address
 *   once per function (GCC on AArch64 does), and after the move it is
 *   still the old thread's.
 * Names: a call on an object is async_<object>_<verb> (async_loop_stop,
 *   async_queue_put, async_fd_wait); asyncio's module-level functions, which
 *   act on the running task, keep their asyncio names (async_run,
 *   async_sleep, async_spawn, async_await, async_gather, async_wait,
 *   async_wait_for, async_shield, async_yield). Every async_future_* call
 *   that applies to tasks has an async_task_* twin.
 *
 * Contents, in the order of the layers (each chapter is a header of its own
 * under async/, included here; include this file, not them):
 *   async/base.h     the export macro, version, errors, the clock, the types
 *   async/loop.h     running a program; loops; plain callbacks
 *   async/task.h     tasks; futures; sleep and yield
 *   async/context.h  context variables: task-local values
 *   async/fd.h       waiting for a file descriptor
 *   async/compose.h  gather, as_completed, wait, wait_for, deadline scopes,
 *                    shield, task groups
 *   async/sync.h     queues; lock, event, condition, semaphores, barrier;
 *                    generators
 *   async/io.h       read, write, accept, connect, sendfile that suspend;
 *                    TCP, Unix and UDP sockets and their options
 *   async/stream.h   buffered streams: lines, exact reads, backpressure
 *   async/pool.h     the thread pool for blocking calls (to_thread); name
 *                    resolution on it (getaddrinfo, getnameinfo)
 *   async/server.h   servers: a task per connection, limits, graceful stop
 *   async/signal.h   signals delivered to the loop: handlers, waits
 *   async/process.h  child processes: spawn, pipes as streams, wait,
 *                    signals, communicate
 */
#ifndef ASYNC_H
#define ASYNC_H

#include "async/base.h"
#include "async/loop.h"
#include "async/task.h"
#include "async/context.h"
#include "async/fd.h"
#include "async/compose.h"
#include "async/sync.h"
#include "async/io.h"
#include "async/stream.h"
#include "async/pool.h"
#include "async/server.h"
#include "async/signal.h"
#include "async/process.h"

#endif
