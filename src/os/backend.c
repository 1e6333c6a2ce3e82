/* SPDX-License-Identifier: MIT */
/* Choosing a poller backend by name.
 *
 * The table lists the backends this build has, best first: the system's
 * own scalable API where there is one, then poll, which is everywhere. */
#include <stddef.h>
#include <string.h>

#include "os.h"

static const async__backend *const async__backends[] = {
#if defined(__linux__)
    &async__backend_epoll,
#endif
#if defined(__APPLE__) || defined(__FreeBSD__) || defined(__NetBSD__) ||       \
    defined(__OpenBSD__) || defined(__DragonFly__)
    &async__backend_kqueue,
#endif
    &async__backend_poll,
};

const async__backend *async__backend_find(const char *name) {
  size_t i;

  if (name == NULL || name[0] == '\0') return async__backends[0];
  for (i = 0; i < sizeof(async__backends) / sizeof(async__backends[0]); i++)
    if (strcmp(async__backends[i]->name, name) == 0) return async__backends[i];
  return NULL;
}
