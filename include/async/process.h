/* SPDX-License-Identifier: MIT */
/** @file
 * libasync: Layer 6, I/O: child processes (asyncio's
 * create_subprocess_exec and its Process). A chapter of <async.h>, which
 * is what programs include.
 *
 * A child is started from an argv, never through a shell. Each of its
 * stdin, stdout and stderr is inherited, /dev/null, or a pipe that this
 * side holds as a buffered stream (include/async/stream.h). The child
 * starts with every other fd closed, the default disposition for every
 * signal and an empty signal mask, whatever the parent had.
 *
 * Reaping: while the loop runs, a child is reaped as soon as it exits
 * (a watcher on its pidfd; where the kernel has none, a SIGCHLD handler
 * that wakes the loop, which then asks waitpid for each of its own
 * children: never waitpid(-1), which would take other code's children).
 * So no zombie is left, whoever waits or not: a wait that is cancelled
 * or times out leaves the child running and owned by its object; an
 * object freed while its child runs leaves the child running, reaped in
 * the background when it exits. At async_loop_close, children still
 * running are left running, as asyncio leaves them, and a detached thread
 * reaps them when they exit (if no thread can be started, they are
 * killed and reaped before close returns).
 *
 * Pipes to the child's stdin: a write once the child has stopped reading
 * returns -EPIPE, as for any pipe (see async_write); SIGPIPE is never
 * raised.
 *
 * The rules for timeouts are the library's: seconds, ASYNC_NO_TIMEOUT for
 * no limit, zero or less already expired, NaN -EINVAL. */
#ifndef ASYNC_API_PROCESS_H
#define ASYNC_API_PROCESS_H

#include "base.h"
#include "stream.h"

#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

/** A child process. Opaque; made by async_process_spawn. */
typedef struct async_process async_process;

/** What a child's stdin, stdout or stderr is connected to. */
typedef enum async_process_stdio {
  ASYNC_PROCESS_INHERIT = 0, /**< the parent's own fd (the default) */
  ASYNC_PROCESS_PIPE,        /**< a pipe, held here as a stream */
  ASYNC_PROCESS_DEVNULL,     /**< /dev/null */
  ASYNC_PROCESS_STDOUT       /**< stderr only: where stdout goes */
} async_process_stdio;

/** The options of async_process_spawn; async_process_options_init sets
 * the defaults (everything inherited). */
typedef struct async_process_options {
  size_t size;             /**< sizeof(async_process_options): set by _init */
  char *const *env;        /**< "NAME=value" strings, NULL-terminated;
                                NULL: this process's environment */
  const char *cwd;         /**< the child's working directory; NULL: ours */
  async_process_stdio in;  /**< the child's stdin */
  async_process_stdio out; /**< the child's stdout */
  async_process_stdio err; /**< the child's stderr */
  const async_stream_options *stream; /**< the pipes' streams; NULL:
                                           the defaults */
} async_process_options;

/** Fills *opts with the defaults. */
ASYNC_EXTERN void async_process_options_init(async_process_options *opts);

/** Starts the program argv[0] with the arguments argv (NULL-terminated),
 * on loop, and stores the child's object in *out. A name without a slash
 * is searched for in this process's PATH. opts may be NULL for the
 * defaults.
 *
 * A program that cannot be started fails this call itself, with exec's
 * error, and leaves no child, no zombie and no fd behind: -ENOENT (no
 * such program, or cwd does not exist), -EACCES (not executable), -ENOEXEC,
 * -EAGAIN (no process can be made now: RLIMIT_NPROC), -ENOMEM; also
 * -EINVAL (NULL out or argv, argv[0] NULL or empty, bad loop, bad options:
 * ASYNC_PROCESS_STDOUT for other than err, unknown values), -ESHUTDOWN
 * (the loop is closed), -ECHILD (the loop was inherited through fork(2):
 * see async_loop_fork), -EMFILE (out of fds for the pipes), -ENOSYS
 * (not built for this system: it needs glibc 2.34 or later for now).
 * Under valgrind and qemu-user, which make the C library's spawning child
 * a copy of this process instead of one sharing its memory, exec's error
 * cannot come back: the call succeeds, and the child exits with status
 * 127, as a shell's does for a command it cannot run.
 *
 * The caller frees the object with async_process_free, which does not
 * wait for the child. Suspends: no. */
ASYNC_EXTERN int async_process_spawn(async_process **out, async_loop *loop,
                                     const char *const argv[],
                                     const async_process_options *opts);

/** The child's process id, or -EINVAL. It stays valid (the kernel keeps
 * it for this child) until the child is reaped. Suspends: no. */
ASYNC_EXTERN pid_t async_process_pid(const async_process *p);

/** The child's stdin, stdout or stderr stream (fd 0, 1 or 2), or NULL
 * when that one is not a pipe (or p or fd is bad). The streams belong to
 * p: async_process_free frees them; closing one (async_stream_close) is
 * how the child is told its stdin ended. Suspends: no. */
ASYNC_EXTERN async_stream *async_process_stream(const async_process *p, int fd);

/** How the child ended, asyncio's returncode: 0 and *code set to its exit
 * status (0..255), or to -N when signal N ended it; or -EAGAIN while it
 * runs (asyncio's None); -EINVAL; -ECHILD in a child process forked
 * since the spawn, where the child is the parent's (async_loop_fork).
 * Suspends: no. */
ASYNC_EXTERN int async_process_returncode(const async_process *p, int *code);

/** Waits until the child has ended and stores its returncode (as
 * async_process_returncode gives it) in *code, when code is not NULL.
 * Returns 0 (at once if it has ended already), -ETIMEDOUT, -ECANCELED
 * (the child still runs, and p still owns it), -EPERM (outside a task),
 * -EINVAL (bad p, NaN timeout), -EXDEV (p is of another loop),
 * -ESHUTDOWN (the loop was closed before the child ended), -ECHILD (this
 * process was forked since the spawn, and the child is the parent's: see
 * async_loop_fork; also for the tasks that were waiting). Any number of tasks
 * may wait. Waiting does not read the pipes: a child that fills one waits for
 * ever (see async_process_communicate). Suspends: yes. */
ASYNC_EXTERN int async_process_wait(async_process *p, int *code,
                                    double timeout);

/** Sends signal sig to the child (0: only checks that it is there).
 * Returns 0, -ESRCH (the child has ended and was reaped: asyncio's
 * ProcessLookupError; or the loop was closed, and the child handed to the
 * background reaper), -EINVAL (bad p or sig), -ECHILD (this process was
 * forked since the spawn: the child is the parent's). Suspends: no. */
ASYNC_EXTERN int async_process_send_signal(async_process *p, int sig);

/** async_process_send_signal(p, SIGTERM). Suspends: no. */
ASYNC_EXTERN int async_process_terminate(async_process *p);

/** async_process_send_signal(p, SIGKILL). Suspends: no. */
ASYNC_EXTERN int async_process_kill(async_process *p);

/** Sends the n bytes of input to the child's stdin, then closes it, while
 * reading its stdout and stderr to their end, then waits for the child to
 * exit (asyncio's communicate): all at once, so that it never deadlocks on
 * a full pipe either way. A child that stops reading its stdin (EPIPE)
 * ends the writing, without SIGPIPE. input may be NULL with n 0; stdin,
 * if it is a pipe, is closed all the same.
 *
 * What the child wrote goes to *out_data and *out_len (stdout) and
 * *err_data and *err_len (stderr), each malloc'ed, NUL-terminated (the
 * NUL not counted), and the caller's to free; a stream that is not a pipe
 * or whose pointer is NULL is not read (NULL and 0 stored when the
 * pointer is given). code, when not NULL, gets the returncode.
 *
 * One timeout for it all. Returns 0; -ETIMEDOUT or -ECANCELED (the child
 * is left running, and what was read so far is dropped: kill and wait for
 * it); -EINVAL (bad p, n > 0 with no stdin pipe or NULL input, NaN);
 * -EBUSY (another task reads one of the streams, or the stdin stream
 * still holds output written before: drain it first); -EXDEV (p is of
 * another loop); -EPERM; -ENOMEM; a stream's read error or a write error
 * other than EPIPE; -ESHUTDOWN; -ECHILD (as async_process_wait).
 * Suspends: yes. */
ASYNC_EXTERN int async_process_communicate(async_process *p, const void *input,
                                           size_t n, char **out_data,
                                           size_t *out_len, char **err_data,
                                           size_t *err_len, int *code,
                                           double timeout);

/** Frees p and its streams (closing this side of the pipes). A child
 * still running is not waited for nor signalled: it is reaped in the
 * background when it exits (see the top of this chapter). Tasks still
 * waiting on p (woken and not yet resumed included) or using its streams
 * are a programming error: -EBUSY, p
 * then not freed (though the streams no task uses are, and
 * async_process_stream then gives NULL for them). Returns 0, -EINVAL
 * (NULL, not a process, freed already), -EBUSY.
 * May be called after async_loop_close, before async_loop_free.
 * Suspends: no. */
ASYNC_EXTERN int async_process_free(async_process *p);

#ifdef __cplusplus
}
#endif

#endif
