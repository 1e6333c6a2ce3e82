/* SPDX-License-Identifier: MIT */
/** @file
 * libasync: Layer 3, context variables (asyncio's contextvars).
 * A chapter of <async.h>, which is what programs include.
 *
 * A context variable is a key the program makes; its value depends on who
 * reads it. Every task carries a context, a set of (variable, value) pairs:
 * a task starts with its spawner's (a copy, as asyncio's create_task takes
 * copy_context()), and a set inside it is seen by it and by the tasks it
 * spawns afterwards, by nobody else. A callback scheduled with
 * async_loop_call_soon, _call_later, _call_at, the thread-safe call made on
 * the loop's thread, or async_future_add_done_callback runs in a copy of
 * the context current when it was scheduled. Code outside any task or
 * callback sees its thread's own context.
 *
 * Contexts are shared until written (copy on write): spawning a task or
 * scheduling a callback copies a pointer, never the values, and a task
 * that uses no variable pays nothing. A set allocates only when the
 * context is shared or the variable is new in it.
 *
 * Values are the program's pointers: the library stores them, it never
 * frees or dereferences them. A context belongs to the thread of its loop.
 */
#ifndef ASYNC_API_CONTEXT_H
#define ASYNC_API_CONTEXT_H

#include "base.h"

#ifdef __cplusplus
extern "C" {
#endif

/** A context variable (asyncio's contextvars.ContextVar). */
typedef struct async_context_var async_context_var;

/** What async_context_var_set stores for async_context_var_reset
 * (asyncio's Token). The caller owns the storage; the fields are for
 * reading only. */
typedef struct async_context_token {
  async_context_var *var; /**< the variable set */
  void *old_value;        /**< its value before the set, if it had one */
  int had_old_value; /**< 1: it had one; 0: it was not set (Token.MISSING) */
  int used;          /**< 1 once given to async_context_var_reset */
  const void *where; /**< private: the context's owner (a task, ...) */
} async_context_token;

/** Makes a variable whose value is `default_value` wherever it was not set,
 * and stores it in *out. The caller owns it and frees it with
 * async_context_var_free. Returns 0, -EINVAL (NULL out), -ENOMEM.
 * Suspends: no. */
ASYNC_EXTERN int async_context_var_new(async_context_var **out,
                                       void *default_value);

/** Frees a variable. Values set under it are forgotten, and a variable
 * made later never sees them. NULL is a no-op. Returns 0, or -EINVAL (a
 * variable freed twice, while the memory is still unused). Suspends: no. */
ASYNC_EXTERN int async_context_var_free(async_context_var *v);

/** Reads the variable in the current context (ContextVar.get): stores its
 * value in *value and returns 0, or, where it was never set, stores its
 * default and returns -ENOENT. Returns -EINVAL for a NULL or freed
 * variable or NULL value. Allocates nothing. Suspends: no. */
ASYNC_EXTERN int async_context_var_get(const async_context_var *v,
                                       void **value);

/** Sets the variable in the current context (ContextVar.set), for the
 * current task (or callback) and what it spawns or schedules from now on.
 * If token is not NULL, stores in it what async_context_var_reset needs to
 * put the previous value back. Returns 0, -EINVAL (NULL or freed
 * variable), -ENOMEM (the context is unchanged). Suspends: no. */
ASYNC_EXTERN int async_context_var_set(async_context_var *v, void *value,
                                       async_context_token *token);

/** Puts the variable back as it was before the set that made `token`
 * (ContextVar.reset): its previous value, or not set at all. A token is
 * good once, and only in the task (or callback, or the thread outside
 * both) whose set made it.
 * Returns 0, -EINVAL (NULL or freed variable, NULL token, a token of
 * another variable, one already used), -EXDEV (a token made in another
 * task's context), -ENOMEM (the context is unchanged). Suspends: no. */
ASYNC_EXTERN int async_context_var_reset(async_context_var *v,
                                         async_context_token *token);

#ifdef __cplusplus
}
#endif

#endif
