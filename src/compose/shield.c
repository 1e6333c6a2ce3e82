/* SPDX-License-Identifier: MIT */
/* shield: an await that does not pass its task's cancellation on: the
 * waiting task gets -ECANCELED at once and the future carries on. */
#include "compose.h"

int async_shield(async_future *f, void **result) {
  return async__await(f, result, 1);
}
