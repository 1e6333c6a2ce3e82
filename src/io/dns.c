/* SPDX-License-Identifier: MIT */
/* Name resolution: getaddrinfo and getnameinfo on the pool's DNS lane.
 * A request holds copies of everything the resolver reads and room for
 * all it writes, so a task that gives up (cancelled, timed out) leaves
 * nothing of its own to the thread still resolving; the late result is
 * then freed by the dispose callback, on the loop's thread. */
#include "io.h"

#include <netdb.h>
#include <stdlib.h>
#include <string.h>

/* {==== Errors =========================================================== */

static const struct {
  int eai, err;
} eai_map[] = {
    {EAI_NONAME, -ENOENT},
#ifdef EAI_NODATA
    {EAI_NODATA, -ENODATA},
#endif
#ifdef EAI_ADDRFAMILY
    {EAI_ADDRFAMILY, -EADDRNOTAVAIL},
#endif
    {EAI_AGAIN, -EAGAIN},
    {EAI_FAIL, -EIO},
    {EAI_MEMORY, -ENOMEM},
    {EAI_FAMILY, -EAFNOSUPPORT},
    {EAI_SOCKTYPE, -ESOCKTNOSUPPORT},
    {EAI_SERVICE, -ESRCH},
    {EAI_BADFLAGS, -EINVAL},
    {EAI_OVERFLOW, -ENOSPC},
};

#define EAI_COUNT (sizeof eai_map / sizeof eai_map[0])

/* rc and the errno saved with it, on the resolving thread. */
int async__dns_errno(int rc, int sys) {
  if (rc == 0) return 0;
  if (rc == EAI_SYSTEM) return sys > 0 ? -sys : -EIO;
  for (size_t i = 0; i < EAI_COUNT; i++)
    if (eai_map[i].eai == rc) return eai_map[i].err;
  return -EIO;
}

int async_dns_eai(int err) {
  if (err >= 0 || err == -ECANCELED || err == -ETIMEDOUT || err == -EPERM)
    return 0;
  for (size_t i = 0; i < EAI_COUNT; i++)
    if (eai_map[i].err == err) return eai_map[i].eai;
  return EAI_SYSTEM;
}

/* The time rule, checked before anything is copied. */
static int check_timeout(double timeout) {
  if (async__isnan(timeout)) return -EINVAL;
  return timeout > 0 ? 0 : -ETIMEDOUT;
}

/* }==== */

/* {==== getaddrinfo ====================================================== */

typedef struct gai_req {
  const char *host, *service; /* into the request's own tail, or NULL */
  struct addrinfo hints;
  int has_hints;
  struct addrinfo *res;
  int rc, sys;
} gai_req;

static void *gai_run(void *arg) {
  gai_req *q = arg;
  q->rc = getaddrinfo(q->host, q->service, q->has_hints ? &q->hints : NULL,
                      &q->res);
  if (q->rc == EAI_SYSTEM) q->sys = errno;
  return NULL;
}

static void gai_free(void *arg, void *result, int ran) {
  gai_req *q = arg;
  (void)result;
  (void)ran;
  if (q->res) freeaddrinfo(q->res);
  free(q);
}

static char *copy_into(char **tail, const char *s) {
  if (!s) return NULL;
  size_t n = strlen(s) + 1;
  char *d = memcpy(*tail, s, n);
  *tail += n;
  return d;
}

int async_getaddrinfo(const char *host, const char *service,
                      const struct addrinfo *hints, struct addrinfo **res,
                      double timeout) {
  if (res) *res = NULL;
  int err = 0;
  if (!async__task_require(&err)) return err;
  if (!res || (!host && !service)) return -EINVAL;
  if ((err = check_timeout(timeout))) return err;
  size_t nh = host ? strlen(host) + 1 : 0;
  size_t ns = service ? strlen(service) + 1 : 0;
  gai_req *q = calloc(1, sizeof *q + nh + ns);
  if (!q) return -ENOMEM;
  char *tail = (char *)(q + 1);
  q->host = copy_into(&tail, host);
  q->service = copy_into(&tail, service);
  if (hints) {
    q->has_hints = 1;
    q->hints.ai_flags = hints->ai_flags;
    q->hints.ai_family = hints->ai_family;
    q->hints.ai_socktype = hints->ai_socktype;
    q->hints.ai_protocol = hints->ai_protocol;
  }
  err = async_pool_run(ASYNC_POOL_DNS, gai_run, q, NULL, gai_free, timeout);
  if (err == -ECANCELED || err == -ETIMEDOUT) return err; /* gai_free's */
  if (!err && !(err = async__dns_errno(q->rc, q->sys))) {
    *res = q->res;
    q->res = NULL;
  }
  gai_free(q, NULL, 1);
  return err;
}

/* }==== */

/* {==== getnameinfo ====================================================== */

typedef struct gni_req {
  struct sockaddr_storage sa;
  socklen_t salen;
  int flags;
  size_t hostlen, servlen; /* what the resolver may write, NUL included */
  int rc, sys;
  char host[NI_MAXHOST];
  char serv[NI_MAXSERV];
} gni_req;

static void *gni_run(void *arg) {
  gni_req *q = arg;
  q->rc =
      getnameinfo((const struct sockaddr *)&q->sa, q->salen,
                  q->hostlen ? q->host : NULL, (socklen_t)q->hostlen,
                  q->servlen ? q->serv : NULL, (socklen_t)q->servlen, q->flags);
  if (q->rc == EAI_SYSTEM) q->sys = errno;
  return NULL;
}

static void gni_free(void *arg, void *result, int ran) {
  (void)result;
  (void)ran;
  free(arg);
}

int async_getnameinfo(const struct sockaddr *sa, socklen_t salen, char *host,
                      size_t hostlen, char *serv, size_t servlen, int flags,
                      double timeout) {
  int err = 0;
  if (!async__task_require(&err)) return err;
  if (!host) hostlen = 0;
  if (!serv) servlen = 0;
  if (!sa || salen == 0 || salen > sizeof(struct sockaddr_storage) ||
      (!hostlen && !servlen))
    return -EINVAL;
  if ((err = check_timeout(timeout))) return err;
  gni_req *q = malloc(sizeof *q);
  if (!q) return -ENOMEM;
  memset(q, 0, sizeof *q);
  memcpy(&q->sa, sa, salen);
  q->salen = salen;
  q->flags = flags;
  q->hostlen = hostlen < sizeof q->host ? hostlen : sizeof q->host;
  q->servlen = servlen < sizeof q->serv ? servlen : sizeof q->serv;
  err = async_pool_run(ASYNC_POOL_DNS, gni_run, q, NULL, gni_free, timeout);
  if (err == -ECANCELED || err == -ETIMEDOUT) return err; /* gni_free's */
  if (!err && !(err = async__dns_errno(q->rc, q->sys))) {
    if (hostlen) memcpy(host, q->host, strlen(q->host) + 1);
    if (servlen) memcpy(serv, q->serv, strlen(q->serv) + 1);
  }
  free(q);
  return err;
}

/* }==== */
