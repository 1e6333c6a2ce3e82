/* SPDX-License-Identifier: MIT */
/* The I/O calls that suspend: read, write, recv, send, recvfrom, sendto,
 * accept, connect, write-all; closing an fd with its waiters woken.
 *
 * Each call makes its system call first and parks on the fd only on
 * EAGAIN, then tries again: a ready fd costs no wake-up and no poller
 * call. A cancellation is taken before the first try and after each wait,
 * never between a wait and the system call it guards, so a cancelled call
 * has taken nothing. */
#include "io.h"

#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <unistd.h>

/* {==== The wait ======================================================== */

typedef struct io_waiter {
  async__io io;
  async__task *t;
} io_waiter;

static void io_ready(async_loop *loop, async__io *io, unsigned revents) {
  io_waiter *w = async__container_of(io, io_waiter, io);
  async__io_stop(loop, io);
  async__task_wake(w->t, revents & ASYNC__IO_GONE ? -EBADF : (int)revents);
}

static void io_unlink(async__task *t) {
  if (t->state == ASYNC__T_SUSPENDED) {
    io_waiter *w = t->wait_obj;
    async__io_stop(t->fut.loop, &w->io);
  }
}

int64_t async__io_deadline(async_loop *loop, double timeout) {
  if (timeout == ASYNC_NO_TIMEOUT) return ASYNC__NO_DEADLINE;
  return async__deadline_after(async__loop_now(loop), timeout);
}

int async__io_wait(async_loop *loop, async__task *t, int fd, unsigned events,
                   int64_t deadline) {
  if (deadline != ASYNC__NO_DEADLINE && deadline <= async__loop_now(loop))
    return -ETIMEDOUT;
  io_waiter w = {.t = t};
  async__io_init(&w.io, fd, io_ready);
  int err = async__io_start(loop, &w.io, events);
  if (err) return err;
  t->wait_obj = &w;
  err = async__task_park_until(loop, t, io_unlink, NULL, "io", deadline);
  t->wait_obj = NULL;
  if (err > 0) {
    int cancelled = async__task_take_cancel(t);
    if (cancelled) err = cancelled;
  }
  return err;
}

async__task *async__io_enter(int fd, double timeout, int *err) {
  async__task *t = async__task_require(err);
  if (!t) return NULL;
  if (fd < 0 || async__isnan(timeout)) {
    *err = -EINVAL;
    return NULL;
  }
  if ((*err = async__task_take_cancel(t))) return NULL;
  return t;
}

/* }==== */

/* {==== fds ============================================================= */

int async_fd_nonblock(int fd) {
  int fl = fcntl(fd, F_GETFL);
  if (fl < 0 || (!(fl & O_NONBLOCK) && fcntl(fd, F_SETFL, fl | O_NONBLOCK)))
    return -errno;
  int fdfl = fcntl(fd, F_GETFD);
  if (fdfl < 0 ||
      (!(fdfl & FD_CLOEXEC) && fcntl(fd, F_SETFD, fdfl | FD_CLOEXEC)))
    return -errno;
  return 0;
}

int async_fd_close(int fd) {
  if (fd < 0) return -EBADF;
  async_loop *loop = async__loop_here();
  if (loop && async__loop_owns_fd(loop, fd)) return -EINVAL;
  if (loop) async_fd_forget(loop, fd);
  /* Linux closes the fd even when close fails (EINTR, EIO): never retry,
   * the number may already be someone else's. */
  return close(fd) ? -errno : 0;
}

/* }==== */

/* {==== Reading and writing =============================================
 * One loop for every call: `op` is the system call, `events` what to wait
 * for on EAGAIN. */

enum { OP_READ, OP_WRITE, OP_RECV, OP_SEND, OP_RECVFROM, OP_SENDTO };

typedef struct io_call {
  int op;
  int flags;
  void *buf;
  size_t n;
  struct sockaddr *addr; /* recvfrom's out, or sendto's in (const) */
  socklen_t *addrlen;
  socklen_t alen;
  int notsock; /* OP_WRITE: fd said ENOTSOCK, use write() */
} io_call;

/* DESIGN.md: writing to a reader that has gone away returns -EPIPE and
 * never kills the process. send(MSG_NOSIGNAL) does that for sockets; a
 * pipe has no such flag (nor have write, pwritev2 or splice), so SIGPIPE
 * is blocked in this thread around the write, and the one the write
 * raised is taken back before the mask is restored.
 *
 * That costs two system calls besides the write, since the call that
 * blocks also tells what the mask was (it was three, with a sigpending
 * first every time). When SIGPIPE was not blocked, none was pending for
 * this thread (it would have been delivered), so one pending after EPIPE
 * is the write's own; the only exception, one sent by another thread in
 * the instant before the mask call, was as invisible to the sigpending
 * first. When the program blocks SIGPIPE itself, the mask is left alone
 * and the pending set is asked before the write: one pending already is
 * the program's, and stays (the write's merges with it). sigtimedwait
 * takes a signal sent to the thread before one sent to the process, so
 * it never takes the program's process-wide SIGPIPE for the write's. */
ssize_t async__write_nosigpipe(int fd, const void *buf, size_t n) {
  sigset_t pipe_set, old;
  sigemptyset(&pipe_set);
  sigaddset(&pipe_set, SIGPIPE);
  pthread_sigmask(SIG_BLOCK, &pipe_set, &old);
  int was_blocked = sigismember(&old, SIGPIPE) == 1;
  int had = 0;
  if (was_blocked) {
    sigset_t pending;
    sigemptyset(&pending);
    sigpending(&pending);
    had = sigismember(&pending, SIGPIPE) == 1;
  }
  ssize_t r = write(fd, buf, n);
  int e = errno;
  if (r < 0 && e == EPIPE && !had) {
    const struct timespec zero = {0, 0};
    while (sigtimedwait(&pipe_set, NULL, &zero) < 0 && errno == EINTR) {
    }
  }
  if (!was_blocked) pthread_sigmask(SIG_SETMASK, &old, NULL);
  errno = e;
  return r;
}

static ssize_t io_try(int fd, io_call *c) {
  ssize_t r;
  do {
    switch (c->op) {
    case OP_READ:
      r = read(fd, c->buf, c->n);
      break;
    case OP_WRITE:
      /* send() first, for MSG_NOSIGNAL: a plain write to a socket whose
       * peer is gone would raise SIGPIPE. A pipe says ENOTSOCK once per
       * call, then gets write(). */
      if (!c->notsock) {
        r = send(fd, c->buf, c->n, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (r >= 0 || errno != ENOTSOCK) break;
        c->notsock = 1;
      }
      r = async__write_nosigpipe(fd, c->buf, c->n);
      break;
    case OP_RECV:
      r = recv(fd, c->buf, c->n, c->flags | MSG_DONTWAIT);
      break;
    case OP_SEND:
      r = send(fd, c->buf, c->n, c->flags | MSG_DONTWAIT | MSG_NOSIGNAL);
      break;
    case OP_RECVFROM:
      r = recvfrom(fd, c->buf, c->n, c->flags | MSG_DONTWAIT, c->addr,
                   c->addrlen);
      break;
    default:
      r = sendto(fd, c->buf, c->n, c->flags | MSG_DONTWAIT | MSG_NOSIGNAL,
                 c->addr, c->alen);
      break;
    }
  } while (r < 0 && errno == EINTR);
  return r < 0 ? -errno : r;
}

static ssize_t io_run(int fd, io_call *c, double timeout) {
  int err = 0;
  async__task *t = async__io_enter(fd, timeout, &err);
  if (!t) return err;
  if (!c->buf && c->n) return -EINVAL;
  unsigned ev = c->op == OP_READ || c->op == OP_RECV || c->op == OP_RECVFROM
                    ? ASYNC__POLL_IN
                    : ASYNC__POLL_OUT;
  async_loop *loop = t->fut.loop;
  int64_t deadline = ASYNC__NO_DEADLINE;
  int timed = 0;
  for (;;) {
    ssize_t r = io_try(fd, c);
    if (r >= 0 || (r != -EAGAIN && r != -EWOULDBLOCK)) return r;
    if (!timed) {
      deadline = async__io_deadline(loop, timeout);
      timed = 1;
    }
    if ((err = async__io_wait(loop, t, fd, ev, deadline)) < 0) return err;
  }
}

ssize_t async_read(int fd, void *buf, size_t n, double timeout) {
  io_call c = {.op = OP_READ, .buf = buf, .n = n};
  return io_run(fd, &c, timeout);
}

ssize_t async_recv(int fd, void *buf, size_t n, int flags, double timeout) {
  io_call c = {.op = OP_RECV, .buf = buf, .n = n, .flags = flags};
  return io_run(fd, &c, timeout);
}

ssize_t async_send(int fd, const void *buf, size_t n, int flags,
                   double timeout) {
  io_call c = {.op = OP_SEND, .buf = (void *)buf, .n = n, .flags = flags};
  return io_run(fd, &c, timeout);
}

ssize_t async_recvfrom(int fd, void *buf, size_t n, int flags,
                       struct sockaddr *addr, socklen_t *addrlen,
                       double timeout) {
  if (addr && !addrlen) return -EINVAL;
  io_call c = {.op = OP_RECVFROM,
               .buf = buf,
               .n = n,
               .flags = flags,
               .addr = addr,
               .addrlen = addr ? addrlen : NULL};
  return io_run(fd, &c, timeout);
}

ssize_t async_sendto(int fd, const void *buf, size_t n, int flags,
                     const struct sockaddr *addr, socklen_t addrlen,
                     double timeout) {
  io_call c = {.op = OP_SENDTO,
               .buf = (void *)buf,
               .n = n,
               .flags = flags,
               .addr = (struct sockaddr *)addr,
               .alen = addr ? addrlen : 0};
  return io_run(fd, &c, timeout);
}

ssize_t async_write(int fd, const void *buf, size_t n, double timeout) {
  io_call c = {.op = OP_WRITE, .buf = (void *)buf, .n = n};
  return io_run(fd, &c, timeout);
}

ssize_t async_write_all(int fd, const void *buf, size_t n, size_t *written,
                        double timeout) {
  size_t done = 0;
  if (written) *written = 0;
  int err = 0;
  async__task *t = async__io_enter(fd, timeout, &err);
  if (!t) return err;
  if (!buf && n) return -EINVAL;
  async_loop *loop = t->fut.loop;
  int64_t deadline = ASYNC__NO_DEADLINE;
  int timed = 0;
  io_call c = {.op = OP_WRITE};
  while (done < n) {
    c.buf = (char *)buf + done;
    c.n = n - done;
    ssize_t r = io_try(fd, &c);
    if (r > 0) {
      done += (size_t)r;
      if (written) *written = done;
      continue;
    }
    if (r != -EAGAIN && r != -EWOULDBLOCK) return r ? r : -EIO;
    if (!timed) {
      deadline = async__io_deadline(loop, timeout);
      timed = 1;
    }
    if ((err = async__io_wait(loop, t, fd, ASYNC__POLL_OUT, deadline)) < 0)
      return err;
  }
  return (ssize_t)n;
}

/* }==== */

/* {==== Accept and connect ============================================== */

int async_accept(int fd, struct sockaddr *addr, socklen_t *addrlen,
                 double timeout) {
  int err = 0;
  async__task *t = async__io_enter(fd, timeout, &err);
  if (!t) return err;
  if (addr && !addrlen) return -EINVAL;
  async_loop *loop = t->fut.loop;
  int64_t deadline = ASYNC__NO_DEADLINE;
  int timed = 0;
  for (;;) {
    int c =
        accept4(fd, addr, addr ? addrlen : NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (c >= 0) return c;
    if (errno == EINTR) continue;
    if (errno != EAGAIN && errno != EWOULDBLOCK) return -errno;
    if (!timed) {
      deadline = async__io_deadline(loop, timeout);
      timed = 1;
    }
    if ((err = async__io_wait(loop, t, fd, ASYNC__POLL_IN, deadline)) < 0)
      return err;
  }
}

int async_connect(int fd, const struct sockaddr *addr, socklen_t addrlen,
                  double timeout) {
  int err = 0;
  async__task *t = async__io_enter(fd, timeout, &err);
  if (!t) return err;
  if (!addr) return -EINVAL;
  async_loop *loop = t->fut.loop;
  int64_t deadline = async__io_deadline(loop, timeout);
  for (;;) {
    if (connect(fd, addr, addrlen) == 0) return 0;
    int e = errno;
    /* A Unix socket whose listener's backlog is full says EAGAIN: try
     * again once it may have room. */
    if (e != EINPROGRESS && e != EINTR && e != EAGAIN) return -e;
    err = async__io_wait(loop, t, fd, ASYNC__POLL_OUT, deadline);
    if (err < 0) return err;
    if (e == EAGAIN) continue;
    /* EINPROGRESS, or EINTR: the connection went on in the background. */
    int soerr = 0;
    socklen_t len = sizeof soerr;
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &len)) return -errno;
    return -soerr;
  }
}

/* }==== */
