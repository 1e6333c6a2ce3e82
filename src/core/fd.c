/* SPDX-License-Identifier: MIT */
/* fd watchers on top of the poller backend, and the task's wait on an fd.
 *
 * The loop keeps one entry per fd number: its started watchers and the
 * interest the backend was last told. Interest is dropped lazily: only an
 * event that no watcher wants clears it (every backend is level-triggered,
 * so such an event would otherwise come back at every poll), so a task
 * that waits on the same fd again and again does not pay for a removal and
 * a re-add each time.
 *
 * Starting a watcher on an fd of the user's re-tells the backend (one
 * system call) even when the interest is unchanged, which repairs a
 * registration the kernel dropped when the user closed and reopened the
 * number; a watcher that joins others tells it too, since that is when
 * the backend can say the number now names another file (ctl returns 1):
 * the watchers started for the old file are then told it is gone
 * (ASYNC__IO_GONE), as when the backend reports a wake-up stale.
 *
 * An fd held by a library object (async__fd_hold: a stream, a server's
 * listening socket) cannot be closed behind the loop's back without
 * breaking that object's contract: it is closed through async_fd_forget,
 * which drops the registration and the mark together. So its
 * registration stays good from one wait to the next, and a start whose
 * interest the backend has already tells it nothing: a task that reads a
 * socket, answers, and waits for the next request costs no epoll_ctl
 * (libuv's streams keep theirs the same way while they read). */
#include "core.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>

/* Entries never move (watcher lists point back at their heads): the
 * sparse array keeps its slots in place. */
static async__fdent *fd_lookup(const async_loop *loop, int fd) {
  async__fdent *ent = async__sparse_find(&loop->fds.ents, fd);
  return ent && ent->watchers.next ? ent : NULL;
}

static async__fdent *fd_entry(async_loop *loop, int fd) {
  async__fdent *ent = async__sparse_get(&loop->fds.ents, fd);
  if (ent && !ent->watchers.next) {
    async__list_init(&ent->watchers);
    ent->next_dirty = -1;
  }
  return ent;
}

static unsigned wanted(const async__fdent *ent) {
  unsigned ev = 0;
  async__list *n;
  async__list_each(n, &ent->watchers) {
    ev |= async__list_item(n, async__io, link)->events;
  }
  return ev;
}

/* Every call of the backend's ctl goes through here, to be counted, and
 * to be refused while the poller is the parent's (a forked loop, until
 * async_loop_fork gives it one of its own): an epoll set is shared with
 * the parent, and a change made here would be the parent's. */
static int backend_ctl(async_loop *loop, int fd, unsigned prev, unsigned next) {
  if (async__poller_forked(loop)) return -ECHILD;
  loop->counts.ctl++;
  return loop->backend->ctl(loop->poller, fd, prev, next);
}

/* Tells every watcher of ent that its fd is gone, and returns how many:
 * after async_fd_forget, or when the backend finds the number now names
 * another file or none (a file closed without async_fd_forget: misuse).
 * Either way the number is no longer held. */
static int watchers_gone(async_loop *loop, async__fdent *ent) {
  int n = 0;
  ent->held = 0;
  while (!async__list_empty(&ent->watchers)) {
    async__io *w = async__list_item(ent->watchers.next, async__io, link);
    async__io_stop(loop, w);
    w->cb(loop, w, ASYNC__IO_GONE);
    n++;
  }
  return n;
}

/* The number is no longer the owner's: it is told once, and forgotten. */
static void owner_gone(async__fdent *ent) {
  void (*gone)(void *) = ent->gone;
  void *owner = ent->owner;
  ent->gone = NULL;
  ent->owner = NULL;
  if (gone) gone(owner);
}

/* {==== Watchers ======================================================== */

void async__io_init(async__io *w, int fd, async__io_cb cb) {
  async__list_init(&w->link);
  w->cb = cb;
  w->fd = fd;
  w->events = 0;
  w->unref = 0;
}

int async__io_start(async_loop *loop, async__io *w, unsigned events) {
  ASYNC__ASSERT(async__list_empty(&w->link) && events);
  if (loop->closed) return -ESHUTDOWN; /* no table, no poller */
  async__fdent *ent = fd_lookup(loop, w->fd);
  if (!ent) {
    /* A number never seen: check it before any table grows for it. */
    if (fcntl(w->fd, F_GETFD) < 0) return -errno;
    if (!(ent = fd_entry(loop, w->fd))) return -ENOMEM;
  }
  int idle = async__list_empty(&ent->watchers);
  /* Alone, a watcher asks for exactly its events: a direction left over
   * from an earlier watcher would only wake the loop for nothing. */
  unsigned next = idle ? events : ent->interest | events;
  if (!ent->held || next != ent->interest) {
    int err = backend_ctl(loop, w->fd, ent->interest, next);
    if (err < 0) {
      if (ent->interest && idle) {
        backend_ctl(loop, w->fd, ent->interest, 0);
        ent->interest = 0;
      }
      return err;
    }
    if (err > 0) watchers_gone(loop, ent);
    ent->interest = next;
  }
  w->events = events;
  async__list_push(&ent->watchers, &w->link);
  if (!w->unref) loop->fd_waiters++;
  return 0;
}

void async__io_stop(async_loop *loop, async__io *w) {
  if (async__list_empty(&w->link)) return;
  async__list_remove(&w->link);
  if (!w->unref) loop->fd_waiters--;
}

void async__fd_hold(async_loop *loop, int fd) {
  async__fdent *ent = fd_entry(loop, fd);
  if (!ent || ent->held) return;
  if (ent->interest) {
    /* Registered before it was held: perhaps for a file that had the
     * number before and was closed behind the loop's back. Told once
     * more, the backend watches the file the number names now, and says
     * so (1) if it changed. */
    int r = backend_ctl(loop, fd, ent->interest, ent->interest);
    if (r < 0) {
      if (async__list_empty(&ent->watchers)) {
        backend_ctl(loop, fd, ent->interest, 0);
        ent->interest = 0;
      }
      return; /* not held: every start tells the backend, as before */
    }
    if (r > 0) watchers_gone(loop, ent);
  }
  ent->held = 1;
}

int async__fd_own(async_loop *loop, int fd, void (*gone)(void *owner),
                  void *owner) {
  async__fdent *ent = fd_entry(loop, fd);
  if (!ent) return -ENOMEM;
  /* Held first: the check of a registration left from an earlier file
   * (async__fd_hold) is about that file, not this owner's. */
  async__fd_hold(loop, fd);
  ent->gone = gone;
  ent->owner = owner;
  return 0;
}

void async__fd_disown(async_loop *loop, int fd, const void *owner) {
  async__fdent *ent = fd >= 0 ? fd_lookup(loop, fd) : NULL;
  if (ent && ent->owner == owner) {
    ent->gone = NULL;
    ent->owner = NULL;
  }
}

/* }==== */

/* {==== A task waiting on an fd ========================================= */

typedef struct fd_waiter {
  async__io io;
  async__task *t;
} fd_waiter;

static void fd_ready(async_loop *loop, async__io *io, unsigned revents) {
  fd_waiter *w = async__container_of(io, fd_waiter, io);
  async__io_stop(loop, io);
  async__task_wake(w->t, revents & ASYNC__IO_GONE ? -EBADF : (int)revents);
}

static void fd_unlink(async__task *t) {
  if (t->state == ASYNC__T_SUSPENDED) {
    fd_waiter *w = t->wait_obj;
    async__io_stop(t->fut.loop, &w->io);
  }
}

/* async_fd_wait with no time to wait: what poll(2) says of fd right now.
 * The loop's own poll cannot be asked: it runs when the loop decides. */
static int fd_ready_now(int fd, int events) {
  struct pollfd p = {.fd = fd, .events = 0};
  if (events & ASYNC_READABLE) p.events |= POLLIN;
  if (events & ASYNC_WRITABLE) p.events |= POLLOUT;
  int n;
  do n = poll(&p, 1, 0);
  while (n < 0 && errno == EINTR);
  if (n < 0) return -errno;
  if (p.revents & POLLNVAL) return -EBADF;
  if (p.revents & (POLLERR | POLLHUP)) return events;
  int got = 0;
  if (p.revents & POLLIN) got |= ASYNC_READABLE;
  if (p.revents & POLLOUT) got |= ASYNC_WRITABLE;
  return got ? got : -ETIMEDOUT;
}

int async_fd_wait(int fd, int events, double timeout) {
  int err = 0;
  async__task *t = async__task_require(&err);
  if (!t) return err;
  if (fd < 0 || events <= 0 || (events & ~(ASYNC_READABLE | ASYNC_WRITABLE)) ||
      async__isnan(timeout))
    return -EINVAL;
  if ((err = async__task_take_cancel(t))) return err;
  async_loop *loop = t->fut.loop;
  if (async__loop_owns_fd(loop, fd)) return -EINVAL;
  if (!(timeout > 0)) return fd_ready_now(fd, events);
  fd_waiter w = {.t = t};
  async__io_init(&w.io, fd, fd_ready);
  if ((err = async__io_start(loop, &w.io, (unsigned)events))) return err;
  int64_t deadline = ASYNC__NO_DEADLINE;
  if (timeout < ASYNC_NO_TIMEOUT)
    deadline = async__deadline_after(async__loop_now(loop), timeout);
  t->wait_obj = &w;
  err = async__task_park_until(loop, t, fd_unlink, NULL, "fd", deadline);
  t->wait_obj = NULL;
  /* Cancelled after the fd woke it, before it ran: reported here (the fd
   * stays ready, nothing is lost). */
  if (err > 0) {
    int cancelled = async__task_take_cancel(t);
    if (cancelled) err = cancelled;
  }
  return err;
}

/* }==== */

static void mark_dirty(async_loop *loop, int fd, async__fdent *ent) {
  if (ent->dirty) return;
  ent->dirty = 1;
  ent->next_dirty = loop->fds.dirty_head;
  loop->fds.dirty_head = fd;
}

void async__fd_poll_cb(void *ud, int fd, unsigned revents) {
  async_loop *loop = ud;
  async__fdent *ent = fd_lookup(loop, fd);
  if (!ent) return;
  if (async__unlikely(revents & ASYNC__POLL_STALE)) {
    watchers_gone(loop, ent);
    owner_gone(ent); /* the number names another file: not the owner's */
    mark_dirty(loop, fd, ent); /* nobody left: the registration goes */
    return;
  }
  int called = 0;
  async__list *n, *next;
  async__list_each_safe(n, next, &ent->watchers) {
    async__io *w = async__list_item(n, async__io, link);
    unsigned r = (revents & ASYNC__POLL_ERR) ? w->events : revents & w->events;
    if (r) {
      w->cb(loop, w, r);
      called++;
    }
  }
  if (!called) mark_dirty(loop, fd, ent);
}

void async__fd_sync_dirty(async_loop *loop) {
  int fd;
  while ((fd = loop->fds.dirty_head) >= 0) {
    async__fdent *ent = fd_lookup(loop, fd);
    loop->fds.dirty_head = ent->next_dirty;
    ent->dirty = 0;
    ent->next_dirty = -1;
    unsigned next = wanted(ent);
    if (next != ent->interest) {
      int r = backend_ctl(loop, fd, ent->interest, next);
      if (r < 0) {
        next = 0; /* the fd is gone: forget it */
        ent->held = 0;
      }
      if (r > 0) watchers_gone(loop, ent);
      ent->interest = next;
    }
  }
}

int async_fd_forget(async_loop *loop, int fd) {
  if (!async__loop_ok(loop) || fd < 0) return -EINVAL;
  async__fdent *ent = fd_lookup(loop, fd);
  if (loop->closed || !ent || async__loop_owns_fd(loop, fd)) return 0;
  int woken = watchers_gone(loop, ent); /* and no longer held */
  if (ent->interest) backend_ctl(loop, fd, ent->interest, 0);
  ent->interest = 0;
  owner_gone(ent);
  return woken;
}

void async__fd_release(async_loop *loop, int fd) {
  async__fdent *ent = fd_lookup(loop, fd);
  if (!ent) return;
  ASYNC__ASSERT(async__list_empty(&ent->watchers));
  if (ent->interest) backend_ctl(loop, fd, ent->interest, 0);
  ent->interest = 0;
  ent->held = 0;
  ent->gone = NULL;
  ent->owner = NULL;
}

void async__fd_fork_prune(async_loop *loop) {
  int fd;
  for (fd = async__sparse_next(&loop->fds.ents, 0); fd >= 0;
       fd = fd < INT_MAX ? async__sparse_next(&loop->fds.ents, fd + 1) : -1) {
    async__fdent *ent = fd_lookup(loop, fd);
    if (!ent ||
        (!ent->interest && async__list_empty(&ent->watchers) && !ent->owner) ||
        async__loop_owns_fd(loop, fd) || fcntl(fd, F_GETFD) >= 0)
      continue;
    ent->interest = 0; /* nothing to tell the new poller */
    watchers_gone(loop, ent);
    owner_gone(ent);
  }
}

void async__fd_fork(async_loop *loop) {
  int fd;
  for (fd = async__sparse_next(&loop->fds.ents, 0); fd >= 0;
       fd = fd < INT_MAX ? async__sparse_next(&loop->fds.ents, fd + 1) : -1) {
    async__fdent *ent = fd_lookup(loop, fd);
    /* The loop's own are new, and told already. */
    if (!ent || !ent->interest || async__loop_owns_fd(loop, fd)) continue;
    if (backend_ctl(loop, fd, 0, ent->interest) >= 0) continue;
    ent->interest = 0;
    watchers_gone(loop, ent);
    owner_gone(ent);
  }
}

void async__fd_close_all(async_loop *loop) {
  /* The objects that own watchers (a stream writing in the background, a
   * server accepting) may be freed after the close, and stop theirs then:
   * each must find itself unlinked, not linked into a freed entry. Their
   * fds stay theirs to close. */
  int fd;
  for (fd = async__sparse_next(&loop->fds.ents, 0); fd >= 0;
       fd = fd < INT_MAX ? async__sparse_next(&loop->fds.ents, fd + 1) : -1) {
    async__fdent *ent = fd_lookup(loop, fd);
    while (ent && !async__list_empty(&ent->watchers))
      async__io_stop(loop,
                     async__list_item(ent->watchers.next, async__io, link));
  }
  async__sparse_free(&loop->fds.ents);
  loop->fds.dirty_head = -1;
}
