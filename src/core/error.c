/* SPDX-License-Identifier: MIT */
/* Error texts and the version string. */
#include "core.h"

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
  }
  if (err < 0) {
    /* strerror's table is static text for every errno glibc and the BSDs
     * know; only an unknown number would make it format into a shared
     * buffer, which we avoid by answering for those ourselves. */
    if (-err < 4096) return strerror(-err);
  }
  return "unknown error";
}
