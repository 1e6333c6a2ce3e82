/* Poller backends: the small interface between the loop and the kernel's
 * readiness API. One file per backend (poll_epoll.c, poll_poll.c,
 * poll_kqueue.c); the loop picks one at creation by name.
 *
 * The loop keeps, per fd, the set of events someone waits for, and tells the
 * backend each change with `ctl` (prev -> next; next == 0 forgets the fd).
 * `wait` reports readiness through a callback, which only records what
 * happened: it must not call back into the backend.
 *
 * Readiness is level-triggered in every backend: an fd that stays ready is
 * reported at every wait until its interest changes.
 *
 * An fd should be forgotten (next == 0) before it is closed. What happens
 * when the user closes a watched fd behind the loop's back:
 *   epoll   watches the open file. Closed for good, its registration goes
 *           and nothing more is reported. If a duplicate keeps the file
 *           open (dup, a forked child, SCM_RIGHTS), the old number goes on
 *           being reported until the loop forgets it (ctl then fails with
 *           -EBADF, but the backend has forgotten it all the same); any
 *           later report of that orphan is dropped and the backend rebuilds
 *           its epoll set without it, so the loop does not spin.
 *   poll    watches the number. A closed one is reported as ASYNC__POLL_ERR
 *           (POLLNVAL) at every wait until the loop forgets it; a reused
 *           number is simply watched as the new file.
 *   kqueue  filters belong to the descriptor: gone with it, never reported.
 * In every backend a number the user reuses is watched correctly as soon
 * as the loop tells `ctl` its interest again, even with a stale prev.
 *
 * None of this survives fork: a child must not use its parent's poller (an
 * epoll set is shared with the parent, a kqueue is not inherited). */
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
  /* Changes fd's interest from prev to next (IN/OUT bits; others are
   * ignored). prev == 0 adds the fd, next == 0 removes it; prev == next ==
   * 0 does nothing. prev is only a hint: each backend knows or finds out
   * what it has registered, so adding twice just updates, removing an fd
   * that is not watched succeeds, and changing the interest of an fd that
   * was closed and reopened behind the loop's back watches the new file.
   * Returns 0 or a negative errno:
   *   -EBADF   fd is not open (or fd < 0) when adding, in every backend
   *            (poll checks with fcntl). When changing or removing, epoll
   *            and kqueue say -EBADF too; poll succeeds, and a closed fd
   *            left in its set is reported as ASYNC__POLL_ERR instead.
   *   -EPERM   epoll only: the file cannot be polled (a regular file,
   *            /dev/null); it is always ready, so the loop should not wait.
   *            poll and kqueue accept such files and report them ready.
   *   -ENOMEM  and whatever else the kernel says. */
  int (*ctl)(async__poller *p, int fd, unsigned prev, unsigned next);
  /* Waits at most timeout_ns (-1 or any negative: no limit, 0: do not
   * block) and calls cb(ud, fd, revents) once per ready fd. Returns the
   * number of fds reported, 0 on timeout or interruption by a signal, or a
   * negative errno.
   *
   * The wait never ends before timeout_ns has passed unless something is
   * ready: epoll uses epoll_pwait2 (nanoseconds) where the kernel and C
   * library have it, else milliseconds rounded up; poll uses ppoll
   * (milliseconds rounded up on macOS, which lacks it); kqueue takes
   * nanoseconds. One call reports at most 256 fds with epoll and kqueue
   * (the rest come at the next calls, none starved) and all with poll.
   *
   * revents holds only asked directions, plus ASYNC__POLL_ERR for an error
   * or hang-up: EPOLLERR/EPOLLHUP, POLLERR/POLLHUP/POLLNVAL, EV_EOF on the
   * write filter or with a socket error. With epoll and poll ERR comes with
   * every asked direction; with kqueue with those whose filter fired.
   * End of stream is IN, a read then returning 0: a TCP peer's close (until
   * a write draws a reset, then ERR) or shutdown(SHUT_WR). A hang-up (a
   * pipe's writer or a Unix socket's peer gone) is ERR | IN for a reader
   * with epoll and poll, IN with kqueue; a writer whose reader is gone gets
   * ERR | OUT everywhere. */
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
