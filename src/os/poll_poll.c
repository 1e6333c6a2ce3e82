/* SPDX-License-Identifier: MIT */
/* The poll backend: portable, and the reference the others are tested
 * against.
 *
 * The set is a dense array of struct pollfd handed to the kernel as it is,
 * plus a sparse table by fd that says where each fd sits in the array, so
 * that adding, changing and removing an fd cost O(1): a removal moves the
 * last entry into the hole. A wait costs O(number of fds), as poll does.
 *
 * Unlike epoll and kqueue, nothing here is tied to the open file: the set
 * holds numbers. An fd closed while watched is reported as an error
 * (POLLNVAL) at every wait until the loop removes it, and a number reused
 * by a new file is simply watched as the new file. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <time.h>
/* Not <poll.h>: with src/ on the include path that name finds this
 * library's own poll.h. <sys/poll.h> is the same header everywhere this
 * builds (glibc, musl, macOS, the BSDs). */
#include <sys/poll.h>
#include <sys/stat.h>

#include "os.h"

/* ppoll takes the timeout with nanosecond precision; macOS lacks it, and
 * there poll's milliseconds, rounded up, have to do. */
#if defined(__linux__) || defined(__FreeBSD__) || defined(__NetBSD__) ||       \
    defined(__OpenBSD__) || defined(__DragonFly__)
#define ASYNC__POLL_HAVE_PPOLL 1
#endif

#define ASYNC__POLL_DIRS (ASYNC__POLL_IN | ASYNC__POLL_OUT)

/* Which file an fd named when it was added: a number closed and reused
 * behind the loop's back names another. */
typedef struct async__poll_id {
  dev_t dev;
  ino_t ino;
} async__poll_id;

struct async__poller {
  struct pollfd *fds;  /* the watched fds, densely packed */
  async__poll_id *ids; /* ids[i] is the file of fds[i] */
  size_t len;
  size_t cap;
  /* fd's uint32_t slot is its index in fds plus one; 0 means fd is not
   * watched, so a new (zeroed) leaf needs no initialisation. */
  async__sparse slot;
};

static int async__poll_init(async__poller **out) {
  async__poller *p = calloc(1, sizeof(*p));
  if (p == NULL) return -ENOMEM;
  async__sparse_init(&p->slot, sizeof(uint32_t));
  *out = p;
  return 0;
}

static void async__poll_close(async__poller *p) {
  if (p == NULL) return;
  free(p->fds);
  free(p->ids);
  async__sparse_free(&p->slot);
  free(p);
}

static short async__poll_events(unsigned dirs) {
  short events = 0;
  if (dirs & ASYNC__POLL_IN) events |= POLLIN;
  if (dirs & ASYNC__POLL_OUT) events |= POLLOUT;
  return events;
}

/* Makes room for one more entry in fds, doubling so that a sequence of
 * additions costs amortised O(1). */
static int async__poll_reserve(async__poller *p) {
  if (p->len == p->cap) {
    size_t n = p->cap < 16 ? 16 : p->cap * 2;
    struct pollfd *fds = realloc(p->fds, n * sizeof(*fds));
    async__poll_id *ids;

    if (fds == NULL) return -ENOMEM;
    p->fds = fds;
    ids = realloc(p->ids, n * sizeof(*ids));
    if (ids == NULL) return -ENOMEM;
    p->ids = ids;
    p->cap = n;
  }
  return 0;
}

static int async__poll_same(const async__poll_id *id, const struct stat *st) {
  return id->dev == st->st_dev && id->ino == st->st_ino;
}

/* Whether fds[i] is closed or names another file than when it was added:
 * one fstat per ready fd, the price of watching numbers. */
static int async__poll_stale(const async__poller *p, size_t i, short re) {
  struct stat st;

  if (re & POLLNVAL) return 1;
  return fstat(p->fds[i].fd, &st) < 0 || !async__poll_same(&p->ids[i], &st);
}

static int async__poll_ctl(async__poller *p, int fd, unsigned prev,
                           unsigned next) {
  struct stat st;
  uint32_t *slot;
  size_t i;
  int err;

  if (fd < 0) return -EBADF;
  next &= ASYNC__POLL_DIRS;
  /* The set itself is the authority on what is watched, so prev is only
   * looked at for the no-op all backends agree on: a stale prev from the
   * loop does no harm. */
  if ((prev & ASYNC__POLL_DIRS) == 0 && next == 0) return 0;
  slot = async__sparse_find(&p->slot, fd);
  i = slot != NULL ? *slot : 0;

  if (next == 0) {
    size_t last;

    if (i == 0) return 0;
    last = p->len - 1;
    if (i - 1 != last) {
      p->fds[i - 1] = p->fds[last];
      p->ids[i - 1] = p->ids[last];
      *(uint32_t *)async__sparse_find(&p->slot, p->fds[i - 1].fd) = (uint32_t)i;
    }
    p->len = last;
    *slot = 0;
    return 0;
  }

  /* poll would only say POLLNVAL at the next wait; checking here gives the
   * loop the same -EBADF as epoll and kqueue, when it can still tell the
   * caller, for one cheap system call per added or changed fd, which also
   * tells a number reused by another file. */
  if (fstat(fd, &st) < 0) return -errno;
  if (i != 0) {
    int stale = !async__poll_same(&p->ids[i - 1], &st);

    p->fds[i - 1].events = async__poll_events(next);
    p->ids[i - 1].dev = st.st_dev;
    p->ids[i - 1].ino = st.st_ino;
    return stale;
  }

  err = async__poll_reserve(p);
  if (err != 0) return err;
  slot = async__sparse_get(&p->slot, fd);
  if (slot == NULL) return -ENOMEM;
  p->fds[p->len].fd = fd;
  p->fds[p->len].events = async__poll_events(next);
  p->fds[p->len].revents = 0;
  p->ids[p->len].dev = st.st_dev;
  p->ids[p->len].ino = st.st_ino;
  p->len++;
  *slot = (uint32_t)p->len;
  return 0;
}

static int async__poll_wait(async__poller *p, int64_t timeout_ns,
                            async__poll_cb cb, void *ud) {
  size_t i;
  size_t len = p->len;
  int n;
  int seen = 0;
  int reported = 0;

#ifdef ASYNC__POLL_HAVE_PPOLL
  struct timespec ts;
  n = ppoll(p->fds, (nfds_t)len, async__poll_timespec(timeout_ns, &ts), NULL);
#else
  int ms = -1;

  /* Rounded up: waking before the loop's earliest timer is due would make
   * it spin with zero timeouts until the time had really come. */
  if (timeout_ns >= 0) {
    int64_t m = timeout_ns / 1000000 + (timeout_ns % 1000000 != 0);
    ms = m > INT_MAX ? INT_MAX : (int)m;
  }
  n = poll(p->fds, (nfds_t)len, ms);
#endif
  if (n < 0) return errno == EINTR ? 0 : -errno;

  /* The callback only records (it must not call ctl), so the array stays
   * as the kernel filled it; the walk still keeps to the length the kernel
   * saw and stops once it has met every fd the kernel counted. */
  for (i = 0; i < len && seen < n; i++) {
    short re = p->fds[i].revents;
    unsigned asked = 0;
    unsigned revents = 0;

    if (re == 0) continue;
    seen++;
    if (p->fds[i].events & POLLIN) asked |= ASYNC__POLL_IN;
    if (p->fds[i].events & POLLOUT) asked |= ASYNC__POLL_OUT;
    if (re & POLLIN) revents |= ASYNC__POLL_IN;
    if (re & POLLOUT) revents |= ASYNC__POLL_OUT;
    /* POLLNVAL means the fd was closed while watched: like an error, it
     * must wake every waiter so that the loop notices and forgets it. */
    revents =
        async__poll_report(asked, revents, re & (POLLERR | POLLHUP | POLLNVAL));
    if (revents != 0 && async__poll_stale(p, i, re))
      revents |= ASYNC__POLL_STALE | ASYNC__POLL_ERR | asked;
    if (revents == 0) continue;
    cb(ud, p->fds[i].fd, revents);
    reported++;
  }
  return reported;
}

ASYNC__BACKEND_DEFINE(poll);
