/* SPDX-License-Identifier: MIT */
/* The epoll backend (Linux).
 *
 * Interest is level-triggered: the loop waits, runs whoever was woken, and
 * expects to hear about the same fd again if it is still ready.
 *
 * epoll watches open files, not numbers: a registration lives until the
 * last descriptor of its file is closed. When the user closes a watched fd
 * while a duplicate lives on (dup, a forked child, a descriptor passed over
 * a socket), the registration stays, keeps reporting the old number, and
 * cannot be removed, since EPOLL_CTL_DEL needs an open fd for the file;
 * level-triggered, it would make every wait return at once for ever. So
 * the backend keeps its own table of what it registered, fd by fd, with a
 * generation that travels in each registration's user data. A report that
 * does not match the table comes from such an orphan: it is dropped, and
 * the epoll set is rebuilt from the table, which leaves the orphan behind.
 *
 * EPOLLRDHUP is deliberately not asked for: a peer that only shut down its
 * writing side leaves us a readable EOF (EPOLLIN) and a socket that can
 * still be written, and reporting it as an error would wake a writer that
 * then finds its buffer still full, again and again. The poll and kqueue
 * backends report such a half-close as IN too. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>

#include "os.h"

/* glibc 2.35 added the epoll_pwait2 wrapper; with an older C library we
 * always take the millisecond path. Defining ASYNC__EPOLL_NO_PWAIT2 forces
 * that path too, so that it can be tested on a newer system. */
#if defined(__GLIBC__) && defined(__GLIBC_PREREQ) &&                           \
    !defined(ASYNC__EPOLL_NO_PWAIT2)
#if __GLIBC_PREREQ(2, 35)
#define ASYNC__EPOLL_HAVE_PWAIT2 1
#endif
#endif

/* Events fetched per wait call. More ready fds than this are simply left
 * for the next call: level-triggered epoll keeps them on its ready list and
 * rotates reported ones to the back, so none starves. */
#define ASYNC__EPOLL_BATCH 256

#define ASYNC__EPOLL_DIRS (ASYNC__POLL_IN | ASYNC__POLL_OUT)

/* A table entry, also the high half of a registration's user data: the
 * directions asked for in the low two bits, a generation above them. Zero
 * means the fd is not registered; generations skip zero. */
#define ASYNC__EPOLL_GEN_SHIFT 2

struct async__poller {
  int epfd;
  /* Cleared the first time epoll_pwait2 turns out to be missing, so that
   * the failing call is made once rather than on every wait. */
  int use_pwait2;
  uint32_t gen;      /* the last generation handed out */
  async__sparse tab; /* a uint32_t entry per fd, in proportion to use */
  struct epoll_event events[ASYNC__EPOLL_BATCH];
};

static int async__epoll_init(async__poller **out) {
  async__poller *p = calloc(1, sizeof(*p));
  if (p == NULL) return -ENOMEM;
  p->epfd = epoll_create1(EPOLL_CLOEXEC);
  if (p->epfd < 0) {
    int err = errno;
    free(p);
    return -err;
  }
  async__sparse_init(&p->tab, sizeof(uint32_t));
#ifdef ASYNC__EPOLL_HAVE_PWAIT2
  p->use_pwait2 = 1;
#endif
  *out = p;
  return 0;
}

static void async__epoll_close(async__poller *p) {
  if (p == NULL) return;
  close(p->epfd);
  async__sparse_free(&p->tab);
  free(p);
}

/* fd's entry, 0 if it is not registered. */
static uint32_t async__epoll_entry(const async__poller *p, int fd) {
  const uint32_t *e = async__sparse_find(&p->tab, fd);
  return e ? *e : 0;
}

static void async__epoll_event(struct epoll_event *ev, int fd, uint32_t entry) {
  memset(ev, 0, sizeof(*ev));
  if (entry & ASYNC__POLL_IN) ev->events |= EPOLLIN;
  if (entry & ASYNC__POLL_OUT) ev->events |= EPOLLOUT;
  ev->data.u64 = (uint64_t)(uint32_t)fd | ((uint64_t)entry << 32);
}

/* Replaces the epoll set with a new one holding only what the table says,
 * which is the one way to be rid of an orphaned registration. An fd that
 * can no longer be added was closed behind our back; it is forgotten, and
 * the loop's next change for it adds it again. On failure (no fd left for
 * a new epoll) the old set stays, and its orphans go on being dropped. */
static void async__epoll_rebuild(async__poller *p) {
  int epfd = epoll_create1(EPOLL_CLOEXEC);
  int fd;

  if (epfd < 0) return;
  for (fd = async__sparse_next(&p->tab, 0); fd >= 0;
       fd = fd < INT_MAX ? async__sparse_next(&p->tab, fd + 1) : -1) {
    uint32_t *e = async__sparse_find(&p->tab, fd);
    struct epoll_event ev;

    if (*e == 0) continue;
    async__epoll_event(&ev, fd, *e);
    if (epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) < 0) *e = 0;
  }
  close(p->epfd);
  p->epfd = epfd;
}

static int async__epoll_ctl(async__poller *p, int fd, unsigned prev,
                            unsigned next) {
  struct epoll_event ev;
  uint32_t entry;
  uint32_t *slot;
  int stale;
  int op;
  int err;

  if (fd < 0) return -EBADF;
  next &= ASYNC__EPOLL_DIRS;

  if (next == 0) {
    if ((prev & ASYNC__EPOLL_DIRS) == 0) return 0;
    /* Whatever the outcome, the fd is no longer ours: should its
     * registration outlive this (the fd was closed while a duplicate
     * lives), its reports will not match the table. */
    slot = async__sparse_find(&p->tab, fd);
    if (slot != NULL) *slot = 0;
    /* Kernels before 2.6.9 insist on a non-NULL event even for a delete,
     * so one is always passed. */
    memset(&ev, 0, sizeof(ev));
    if (epoll_ctl(p->epfd, EPOLL_CTL_DEL, fd, &ev) == 0) return 0;
    /* Closing the last descriptor of a file drops its registration, so
     * the fd the loop forgets may already be gone from the set. */
    return errno == ENOENT ? 0 : -errno;
  }

  /* Every change takes a new generation: MOD rewrites the user data of
   * the registration of the file now open as fd, never that of an orphan
   * left by a file that had the number before. */
  p->gen = (p->gen + 1) & (UINT32_MAX >> ASYNC__EPOLL_GEN_SHIFT);
  if (p->gen == 0) p->gen = 1;
  entry = (p->gen << ASYNC__EPOLL_GEN_SHIFT) | next;
  async__epoll_event(&ev, fd, entry);

  /* The table, not prev, says whether the fd is registered: prev can be
   * stale. So can the table: the fd may have been closed and its number
   * reused behind our back, which dropped the old registration, and MOD
   * finds nothing; or a registration may exist that the table has
   * forgotten, and ADD finds it. Either way the other operation does what
   * was meant. */
  op = async__epoll_entry(p, fd) != 0 ? EPOLL_CTL_MOD : EPOLL_CTL_ADD;
  stale = 0;
  if (epoll_ctl(p->epfd, op, fd, &ev) < 0) {
    /* A MOD that finds nothing: the file registered under fd is gone, and
     * fd, if the ADD works, names another one. */
    if (op == EPOLL_CTL_MOD && errno == ENOENT)
      op = EPOLL_CTL_ADD, stale = 1;
    else if (op == EPOLL_CTL_ADD && errno == EEXIST)
      op = EPOLL_CTL_MOD;
    else
      op = -1;
    if (op < 0 || epoll_ctl(p->epfd, op, fd, &ev) < 0) {
      err = errno;
      slot = async__sparse_find(&p->tab, fd);
      if (slot != NULL) *slot = 0;
      return -err;
    }
  }
  /* Only now, for an fd the kernel took: a bad number costs no memory. */
  slot = async__sparse_get(&p->tab, fd);
  if (slot == NULL) {
    epoll_ctl(p->epfd, EPOLL_CTL_DEL, fd, &ev);
    return -ENOMEM;
  }
  *slot = entry;
  return stale;
}

/* The millisecond timeout for epoll_wait, rounded up: rounding down would
 * wake the loop before its earliest timer is due, and it would then spin
 * with zero timeouts until the time had really come. */
static int async__epoll_timeout_ms(int64_t timeout_ns) {
  int64_t ms;

  if (timeout_ns < 0) return -1;
  ms = timeout_ns / 1000000 + (timeout_ns % 1000000 != 0);
  return ms > INT_MAX ? INT_MAX : (int)ms;
}

static int async__epoll_wait(async__poller *p, int64_t timeout_ns,
                             async__poll_cb cb, void *ud) {
  int n = -1;
  int i;
  int reported = 0;
  int orphans = 0;

#ifdef ASYNC__EPOLL_HAVE_PWAIT2
  if (p->use_pwait2) {
    struct timespec ts;
    n = epoll_pwait2(p->epfd, p->events, ASYNC__EPOLL_BATCH,
                     async__poll_timespec(timeout_ns, &ts), NULL);
    /* Kernels before 5.11 lack the call (ENOSYS), and some container
     * seccomp profiles written before it existed refuse it with EPERM,
     * which epoll_pwait2 itself never returns. */
    if (n < 0 && (errno == ENOSYS || errno == EPERM)) p->use_pwait2 = 0;
  }
#endif
  if (!p->use_pwait2)
    n = epoll_wait(p->epfd, p->events, ASYNC__EPOLL_BATCH,
                   async__epoll_timeout_ms(timeout_ns));
  if (n < 0) return errno == EINTR ? 0 : -errno;

  for (i = 0; i < n; i++) {
    uint32_t ev = p->events[i].events;
    uint64_t data = p->events[i].data.u64;
    int fd = (int)(uint32_t)data;
    uint32_t entry = (uint32_t)(data >> 32);
    unsigned asked = entry & ASYNC__EPOLL_DIRS;
    unsigned revents = 0;

    if (async__epoll_entry(p, fd) != entry) {
      orphans = 1;
      continue;
    }
    if (ev & EPOLLIN) revents |= ASYNC__POLL_IN;
    if (ev & EPOLLOUT) revents |= ASYNC__POLL_OUT;
    /* An error or hang-up ends any wait on the fd. */
    revents = async__poll_report(asked, revents,
                                 ev & (EPOLLERR | EPOLLHUP | EPOLLRDHUP));
    if (revents == 0) continue;
    cb(ud, fd, revents);
    reported++;
  }
  if (orphans) async__epoll_rebuild(p);
  return reported;
}

ASYNC__BACKEND_DEFINE(epoll);
