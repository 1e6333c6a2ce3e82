/* SPDX-License-Identifier: MIT */
/* The kqueue backend (macOS and the BSDs).
 *
 * Each direction is a filter of its own: EVFILT_READ for IN, EVFILT_WRITE
 * for OUT, both level-triggered (neither EV_CLEAR nor EV_ONESHOT). An fd
 * watched both ways can therefore come back as two events in one wait;
 * they are merged so that the callback hears about each fd once.
 *
 * Filters belong to the descriptor: closing an fd removes them, so a closed
 * fd is never reported and a reused number starts with no interest. */
/* Older BSDs want <sys/types.h> before <sys/event.h>. */
#include <sys/types.h>
#include <sys/event.h>

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include "os.h"

/* Events fetched per wait call; further ready fds stay queued in the
 * kernel for the next call. */
#define ASYNC__KQUEUE_BATCH 256

#define ASYNC__KQUEUE_DIRS (ASYNC__POLL_IN | ASYNC__POLL_OUT)

struct async__poller {
  int kq;
  pid_t pid; /* the process whose kqueue kq is: fork does not copy it */
  struct kevent events[ASYNC__KQUEUE_BATCH];
};

static int async__kqueue_init(async__poller **out) {
  async__poller *p = malloc(sizeof(*p));
  if (p == NULL) return -ENOMEM;
  /* kqueue1(O_CLOEXEC) is not on every system that has kqueue (macOS
   * lacks it), so the flag is set afterwards. A kqueue is not inherited
   * by fork anyway; the flag keeps it from leaking into exec'd programs
   * of this process. */
  p->kq = kqueue();
  if (p->kq < 0) {
    int err = errno;
    free(p);
    return -err;
  }
  if (fcntl(p->kq, F_SETFD, FD_CLOEXEC) < 0) {
    int err = errno;
    close(p->kq);
    free(p);
    return -err;
  }
  p->pid = getpid();
  *out = p;
  return 0;
}

/* In a child process, kq is a number fork did not copy, which the child
 * may have opened another file under since: not ours to close. */
static void async__kqueue_close(async__poller *p) {
  if (p == NULL) return;
  if (p->pid == getpid()) close(p->kq);
  free(p);
}

/* Sets ch to the change that makes one direction's filter match `want`:
 * EV_ADD when it is wanted, EV_DELETE when not. Neither depends on the
 * loop's prev, which can be stale (the fd may have been closed and its
 * number reused, which dropped its filters, or an earlier change may have
 * failed half-way): EV_ADD on an existing filter only updates it, and a
 * delete that finds nothing is ignored. */
static void async__kqueue_change(struct kevent *ch, int fd, short filter,
                                 int want) {
  EV_SET(ch, (uintptr_t)fd, filter, want ? EV_ADD : EV_DELETE, 0, 0, 0);
}

static int async__kqueue_ctl(async__poller *p, int fd, unsigned prev,
                             unsigned next) {
  struct kevent ch[2];
  const int n = 2;
  int i;

  if (fd < 0) return -EBADF;
  next &= ASYNC__KQUEUE_DIRS;
  if ((prev & ASYNC__KQUEUE_DIRS) == 0 && next == 0) return 0;
  async__kqueue_change(&ch[0], fd, EVFILT_READ, (next & ASYNC__POLL_IN) != 0);
  async__kqueue_change(&ch[1], fd, EVFILT_WRITE, (next & ASYNC__POLL_OUT) != 0);

#ifdef EV_RECEIPT
  {
    /* With EV_RECEIPT every change comes back with its own result, so one
     * call applies both, a failure of the first does not stop the second,
     * and no pending event is fetched by the way. */
    struct kevent res[2];
    int got;

    for (i = 0; i < n; i++) ch[i].flags |= EV_RECEIPT;
    got = kevent(p->kq, ch, n, res, n, NULL);
    if (got < 0) return -errno;
    for (i = 0; i < got; i++) {
      int err = (res[i].flags & EV_ERROR) ? (int)res[i].data : 0;
      /* ENOENT: a filter to delete did not exist, never added or gone
       * with a closed fd. */
      if (err != 0 && err != ENOENT) return -err;
    }
  }
#else
  /* Without receipts, kevent stops at the first failing change when it has
   * no room to report it, and with room it would also fetch pending
   * events; applying the changes one by one keeps each outcome known. */
  for (i = 0; i < n; i++) {
    if (kevent(p->kq, &ch[i], 1, NULL, 0, NULL) < 0 && errno != ENOENT)
      return -errno;
  }
#endif
  return 0;
}

static int async__kqueue_cmp(const void *a, const void *b) {
  uintptr_t x = ((const struct kevent *)a)->ident;
  uintptr_t y = ((const struct kevent *)b)->ident;
  return (x > y) - (x < y);
}

/* What one kernel event says about its fd. EV_EOF on the read filter is
 * the end of the stream, which a read reports; it only counts as an error
 * when the socket has one pending (fflags). EV_EOF on the write filter
 * means nothing more can be written: an error, as epoll and poll see it. */
static unsigned async__kqueue_revents(const struct kevent *ev) {
  unsigned revents = 0;

  if (ev->filter == EVFILT_READ) {
    revents |= ASYNC__POLL_IN;
    if ((ev->flags & EV_EOF) && ev->fflags != 0) revents |= ASYNC__POLL_ERR;
  } else if (ev->filter == EVFILT_WRITE) {
    revents |= ASYNC__POLL_OUT;
    if (ev->flags & EV_EOF) revents |= ASYNC__POLL_ERR;
  }
  if (ev->flags & EV_ERROR) revents |= ASYNC__POLL_ERR;
  return revents;
}

static int async__kqueue_wait(async__poller *p, int64_t timeout_ns,
                              async__poll_cb cb, void *ud) {
  struct timespec ts;
  const struct timespec *tsp = NULL;
  int n;
  int i;
  int reported = 0;

  if (timeout_ns >= 0) {
    ts.tv_sec = (time_t)(timeout_ns / 1000000000);
    ts.tv_nsec = (long)(timeout_ns % 1000000000);
    tsp = &ts;
  }
  n = kevent(p->kq, NULL, 0, p->events, ASYNC__KQUEUE_BATCH, tsp);
  if (n < 0) return errno == EINTR ? 0 : -errno;

  /* Sorting brings the read and write events of an fd together; with at
   * most a batch of events this costs little next to the system call. */
  if (n > 1)
    qsort(p->events, (size_t)n, sizeof(p->events[0]), async__kqueue_cmp);
  for (i = 0; i < n;) {
    uintptr_t ident = p->events[i].ident;
    unsigned revents = 0;

    for (; i < n && p->events[i].ident == ident; i++)
      revents |= async__kqueue_revents(&p->events[i]);
    cb(ud, (int)ident, revents);
    reported++;
  }
  return reported;
}

ASYNC__BACKEND_DEFINE(kqueue);
