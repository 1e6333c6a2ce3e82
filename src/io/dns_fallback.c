/* SPDX-License-Identifier: MIT */
/* TEMPORARY, to be deleted when src/io/dns.c (the thread pool's DNS lane)
 * is merged: a blocking async_getaddrinfo, so that connect by name links
 * and works meanwhile. It blocks the whole loop for the lookup. The real
 * one suspends only the calling task. Returns 0 or a negative errno. */
#include "io.h"

int async_getaddrinfo(const char *host, const char *service,
                      const struct addrinfo *hints, struct addrinfo **res,
                      double timeout) {
  (void)timeout;
  if (!res) return -EINVAL;
  return async__gai_errno(getaddrinfo(host, service, hints, res));
}
