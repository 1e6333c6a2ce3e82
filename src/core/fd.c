/* SPDX-License-Identifier: MIT */
/* File-descriptor readiness waits on top of the poller backend.
 *
 * The loop keeps one entry per fd number: the tasks waiting on it and the
 * interest the backend was last told. A new wait always re-tells the
 * backend (one system call), which also repairs a registration the kernel
 * dropped when the user closed and reopened the fd number; a wait that
 * joins others tells it too, since that is when the backend can say the
 * number now names another file (ctl returns 1): the waits made for the
 * old file then end with -EBADF, as a wake-up the backend reports stale
 * does. Interest is
 * dropped lazily: only an event that wakes nobody clears it, so a task
 * that waits on the same fd again and again does not pay for a removal
 * and a re-add each time. */
#include "core.h"

#include <fcntl.h>

typedef struct fd_waiter {
  async__list link;
  async__task *t;
  unsigned events;
} fd_waiter;

/* Entries never move (waiter lists point back at their heads): the
 * sparse array keeps its slots in place. */
static async__fdent *fd_lookup(const async_loop *loop, int fd) {
  async__fdent *ent = async__sparse_find(&loop->fds.ents, fd);
  return ent && ent->waiters.next ? ent : NULL;
}

static async__fdent *fd_entry(async_loop *loop, int fd) {
  async__fdent *ent = async__sparse_get(&loop->fds.ents, fd);
  if (ent && !ent->waiters.next) {
    async__list_init(&ent->waiters);
    ent->next_dirty = -1;
  }
  return ent;
}

static unsigned wanted(const async__fdent *ent) {
  unsigned ev = 0;
  for (async__list *n = ent->waiters.next; n != &ent->waiters; n = n->next)
    ev |= async__container_of(n, fd_waiter, link)->events;
  return ev;
}

static void waiter_unlink(async_loop *loop, async__task *t) {
  fd_waiter *w = t->wait_obj;
  async__list_remove(&w->link);
  loop->fd_waiters--;
  async__timer_stop(loop, &t->timer);
}

static void fd_unlink(async__task *t) {
  if (t->state == ASYNC__T_SUSPENDED) waiter_unlink(t->fut.loop, t);
}

static void fd_timeout(async__timer *tm) {
  async__task *t = async__container_of(tm, async__task, timer);
  waiter_unlink(t->fut.loop, t);
  async__task_wake(t, -ETIMEDOUT);
}

/* The waiters of a file closed without async_fd_forget, whose number now
 * names another file or none: misuse, told as -EBADF. */
static void wake_stale(async_loop *loop, async__fdent *ent) {
  while (!async__list_empty(&ent->waiters)) {
    fd_waiter *w = async__container_of(ent->waiters.next, fd_waiter, link);
    waiter_unlink(loop, w->t);
    async__task_wake(w->t, -EBADF);
  }
}

int async_fd_wait(int fd, int events, double timeout) {
  int err = 0;
  async__task *t = async__task_require(&err);
  if (!t) return err;
  if (fd < 0 || events <= 0 || (events & ~(ASYNC_READABLE | ASYNC_WRITABLE)) ||
      timeout != timeout)
    return -EINVAL;
  if ((err = async__task_take_cancel(t))) return err;
  async_loop *loop = t->fut.loop;
  if (fd == loop->wake_fd[0] || fd == loop->wake_fd[1]) return -EINVAL;
  async__fdent *ent = fd_lookup(loop, fd);
  if (!ent) {
    /* A number never seen: check it before any table grows for it. */
    if (fcntl(fd, F_GETFD) < 0) return -errno;
    if (!(ent = fd_entry(loop, fd))) return -ENOMEM;
  }
  unsigned want = (unsigned)events;
  unsigned next =
      async__list_empty(&ent->waiters) ? want : ent->interest | want;
  err = loop->backend->ctl(loop->poller, fd, ent->interest, next);
  if (err < 0) {
    if (ent->interest && async__list_empty(&ent->waiters)) {
      loop->backend->ctl(loop->poller, fd, ent->interest, 0);
      ent->interest = 0;
    }
    return err;
  }
  if (err > 0) wake_stale(loop, ent);
  ent->interest = next;
  fd_waiter w = {.t = t, .events = want};
  async__list_push(&ent->waiters, &w.link);
  loop->fd_waiters++;
  if (timeout >= 0) {
    t->timer.fire = fd_timeout;
    async__timer_start(loop, &t->timer,
                       async__deadline_after(async__loop_now(loop), timeout));
  }
  t->wait_obj = &w;
  err = async__task_park(loop, t, fd_unlink, NULL, "fd");
  t->wait_obj = NULL;
  /* Cancelled after the fd woke it, before it ran: reported here (the fd
   * stays ready, nothing is lost). */
  if (err > 0) {
    int cancelled = async__task_take_cancel(t);
    if (cancelled) err = cancelled;
  }
  return err;
}

static void mark_dirty(async_loop *loop, int fd, async__fdent *ent) {
  if (ent->dirty) return;
  ent->dirty = 1;
  ent->next_dirty = loop->fds.dirty_head;
  loop->fds.dirty_head = fd;
}

void async__fd_poll_cb(void *ud, int fd, unsigned revents) {
  async_loop *loop = ud;
  if (fd == loop->wake_fd[0]) {
    async__loop_wake_drain(loop);
    return;
  }
  async__fdent *ent = fd_lookup(loop, fd);
  if (!ent) return;
  if (async__unlikely(revents & ASYNC__POLL_STALE)) {
    wake_stale(loop, ent);
    mark_dirty(loop, fd, ent); /* nobody left: the registration goes */
    return;
  }
  int woken = 0;
  async__list *n = ent->waiters.next;
  while (n != &ent->waiters) {
    async__list *next = n->next;
    fd_waiter *w = async__container_of(n, fd_waiter, link);
    unsigned r = (revents & ASYNC__POLL_ERR) ? w->events : revents & w->events;
    if (r) {
      waiter_unlink(loop, w->t);
      async__task_wake(w->t, (int)r);
      woken++;
    }
    n = next;
  }
  if (!woken) mark_dirty(loop, fd, ent);
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
      int r = loop->backend->ctl(loop->poller, fd, ent->interest, next);
      if (r < 0) next = 0; /* the fd is gone: forget it */
      if (r > 0) wake_stale(loop, ent);
      ent->interest = next;
    }
  }
}

int async_fd_forget(async_loop *loop, int fd) {
  if (!loop || loop->magic != ASYNC__MAGIC_LOOP || fd < 0) return -EINVAL;
  async__fdent *ent = fd_lookup(loop, fd);
  if (loop->closed || !ent) return 0;
  int woken = 0;
  while (!async__list_empty(&ent->waiters)) {
    fd_waiter *w = async__container_of(ent->waiters.next, fd_waiter, link);
    waiter_unlink(loop, w->t);
    async__task_wake(w->t, -EBADF);
    woken++;
  }
  if (ent->interest) loop->backend->ctl(loop->poller, fd, ent->interest, 0);
  ent->interest = 0;
  return woken;
}

void async__fd_close_all(async_loop *loop) {
  async__sparse_free(&loop->fds.ents);
  loop->fds.dirty_head = -1;
}
