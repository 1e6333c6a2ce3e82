/* SPDX-License-Identifier: MIT */
/* Private pieces shared by the files of layer 6, I/O. */
#ifndef ASYNC_IO_H
#define ASYNC_IO_H

#include "sync/sync.h"

/* {==== Signals (signal.c) ===============================================
 * A loop's signal state is one record, an extension of the loop (see
 * async__loop_ext) made by its first watch and freed by its close. The
 * handler installed for a watched signal only counts it and writes a byte
 * to that record's pipe. No signal mask is changed anywhere, and exec
 * resets caught signals to their default: a child process (the subprocess
 * code) has nothing of this to undo once it has exec'ed; between fork and
 * exec the handler sees the pid changed and restores what it found. */

typedef struct async__sigloop async__sigloop;

/* async_signal_add, and for async_run's SIGINT with `once` set: the
 * handler is installed with SA_RESETHAND, so that the next delivery after
 * the first takes the default action at once, whatever the loop is
 * doing. Returns as async_signal_add. */
int async__signal_watch(async_loop *loop, int signo, async_signal_fn cb,
                        void *arg, int once);

/* }==== */

#endif
