/* Poller backends: the small interface between the loop and the kernel's
 * readiness API. One file per backend (poll_epoll.c, poll_poll.c,
 * poll_kqueue.c); the loop picks one at creation by name.
 *
 * The loop keeps, per fd, the set of events someone waits for, and tells the
 * backend each change with `ctl` (prev -> next; next == 0 forgets the fd).
 * `wait` reports readiness through a callback, which only records what
 * happened: it must not call back into the backend. */
#ifndef ASYNC_POLL_H
#define ASYNC_POLL_H

#include <stdint.h>

#define ASYNC__POLL_IN 1u
#define ASYNC__POLL_OUT 2u
#define ASYNC__POLL_ERR 4u /* error or hang-up: wakes both directions */

typedef struct async__poller async__poller;
typedef void (*async__poll_cb)(void *ud, int fd, unsigned revents);

typedef struct async__backend {
  const char *name;
  /* Returns 0 or a negative errno. */
  int (*init)(async__poller **out);
  void (*close)(async__poller *p);
  /* Changes fd's interest from prev to next (IN/OUT bits). prev == 0 adds
   * the fd, next == 0 removes it. Returns 0 or a negative errno (-EBADF,
   * -EPERM for a regular file epoll cannot watch, -ENOMEM). */
  int (*ctl)(async__poller *p, int fd, unsigned prev, unsigned next);
  /* Waits at most timeout_ns (-1: no limit, 0: do not block) and calls
   * cb(ud, fd, revents) once per ready fd. Returns the number of fds
   * reported, 0 on timeout or interruption by a signal, or a negative
   * errno. */
  int (*wait)(async__poller *p, int64_t timeout_ns, async__poll_cb cb,
              void *ud);
} async__backend;

/* The backend called `name` ("epoll", "poll", "kqueue"), or the best one
 * built when name is NULL or empty; NULL when there is no such backend. */
const async__backend *async__backend_find(const char *name);

extern const async__backend async__backend_poll;
#if defined(__linux__)
extern const async__backend async__backend_epoll;
#endif
#if defined(__APPLE__) || defined(__FreeBSD__) || defined(__NetBSD__) || \
    defined(__OpenBSD__) || defined(__DragonFly__)
extern const async__backend async__backend_kqueue;
#endif

#endif
