/* SPDX-License-Identifier: MIT */
/* Error texts, the version string, and the loop's exception handler. */
#include "core.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#define STR2(x) #x
#define STR(x) STR2(x)

const char *async_version(void) {
  return STR(ASYNC_VERSION_MAJOR) "." STR(ASYNC_VERSION_MINOR) "." STR(
      ASYNC_VERSION_PATCH);
}

unsigned async_version_hex(void) { return ASYNC_VERSION_HEX; }

const char *async_strerror(int err) {
  /* The codes the library gives a meaning of its own, in its terms. */
  switch (err) {
  case 0:
    return "success";
  case -ECANCELED:
    return "cancelled";
  case -ETIMEDOUT:
    return "timed out";
  case -EPERM:
    return "not allowed here (a suspending call outside a task?)";
  case -EDEADLK:
    return "a task cannot await itself";
  case -EXDEV:
    return "the object belongs to another loop";
  case -EBUSY:
    return "busy (the loop is running)";
  case -ESHUTDOWN:
    return "the loop or object is closed";
  case -EINPROGRESS:
    return "not done yet";
  case -EALREADY:
    return "already done";
  case -EINVAL:
    return "invalid argument (NULL, or a handle released twice?)";
  case -ENOMEM:
    return "out of memory";
  case -EAGAIN:
    return "would block";
  case -ECHILD:
    return "the loop or child process is the parent's (forked: see "
           "async_loop_fork)";
  }
  if (err < 0) {
    /* strerror's table is static text for every errno glibc and the BSDs
     * know; only an unknown number would make it format into a shared
     * buffer, which we avoid by answering for those ourselves. */
    if (-err < 4096) return strerror(-err);
  }
  return "unknown error";
}

/* {==== The exception handler =========================================== */

void async_loop_default_exception_handler(async_loop *loop,
                                          const async_exception_context *ctx) {
  (void)loop;
  if (ctx && ctx->message) fprintf(stderr, "libasync: %s\n", ctx->message);
}

int async_loop_set_exception_handler(async_loop *loop,
                                     async_exception_handler handler,
                                     void *arg) {
  if (!async__loop_ok(loop)) return -EINVAL;
  loop->exc_handler = handler;
  loop->exc_arg = handler ? arg : NULL;
  return 0;
}

async_exception_handler async_loop_get_exception_handler(const async_loop *loop,
                                                         void **arg) {
  int ok = async__loop_ok(loop);
  if (arg) *arg = ok ? loop->exc_arg : NULL;
  return ok ? loop->exc_handler : NULL;
}

int async_loop_call_exception_handler(async_loop *loop,
                                      const async_exception_context *ctx) {
  if (!async__loop_ok(loop) || !ctx || !ctx->message) return -EINVAL;
  if (loop->exc_handler)
    loop->exc_handler(loop, ctx, loop->exc_arg);
  else
    async_loop_default_exception_handler(loop, ctx);
  return 0;
}

void async__error_report(async_loop *loop, async_future *f, int err, int fatal,
                         const char *fmt, ...) {
  char msg[256];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  async_exception_context ctx = {
      .message = msg, .err = err, .future = f, .fatal = fatal};
  if (loop && loop->exc_handler)
    loop->exc_handler(loop, &ctx, loop->exc_arg);
  else
    async_loop_default_exception_handler(loop, &ctx);
}

/* }==== */
