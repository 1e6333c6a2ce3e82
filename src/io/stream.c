/* SPDX-License-Identifier: MIT */
/* Buffered streams over an fd: asyncio's StreamReader and StreamWriter.
 *
 * Reading pulls: the fd is read only when a read call needs more than the
 * buffer holds, by that call, so nothing is read that no one asked for and
 * the buffer never outgrows the largest read (a delimited read by its
 * limit). When the buffer is empty, async_stream_read reads straight into
 * the caller's memory.
 *
 * Writing pushes: a write goes to the fd at once when nothing is queued,
 * and what the fd does not take is queued and sent by the stream's own fd
 * watcher (wio) from the poll phase, started while the queue holds data.
 * `paused` is asyncio's flow control: set when the queue passes high
 * water, cleared when it falls to low water; drain waits while it is set.
 *
 * The stream owns its fd (async__fd_own) from open to close_fd, which
 * closes it through async_fd_forget: so the fd's registration with the
 * poller stays from one wait to the next, and a read that waits costs no
 * epoll_ctl; and an async_fd_close by the user tells the stream at once
 * (stream_gone), before the number can name another file.
 *
 * A read of a stream socket or a pipe that returned less than it asked
 * for emptied the fd, so the next read waits first instead of trying a
 * read that would say EAGAIN (see read_fd): a request-response exchange
 * then costs one read and one write per request, as in libuv.
 *
 * Closing an fd cannot happen inside wio's callback: async_fd_forget would
 * stop the other watchers of the fd while the loop walks them. So the
 * closes that wait for the queue to empty (close, and write EOF on a
 * pipe) are done by the next task-side call: drain, wait_closed, free. */
#include "io.h"

#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define STREAM_MAGIC 0x5354524du /* "STRM" */
#define READ_MIN 4096

/* States, by field:
 * - fd >= 0 until the stream closes it (close_fd), then -1.
 * - rbuf[rpos, rend) is read and not consumed; eof: the fd said so.
 * - drained: the last read of the fd returned less than it asked for, and
 *   `short_drains` says that this proves the fd was empty then (a stream
 *   socket or a FIFO); cleared by the next read call that waits on it.
 * - wbuf[wpos, wend) is queued for the fd; wio is started iff it is not
 *   empty and writing has not failed; werr, once set, stays, and the queue
 *   is then empty.
 * - eof_pending: write_eof was called and the queue has not emptied;
 *   eof_done: it was carried out (shutdown, or the fd closed).
 * - reader: the task inside a read call (at most one). waiters: tasks in
 *   drain or wait_closed (async__waiter), each woken to re-check. */
struct async_stream {
  uint32_t magic;
  int fd; /* -1 once closed or let go */
  async_loop *loop;
  size_t limit, high, low;
  char *rbuf;
  size_t rcap, rpos, rend;
  char *wbuf;
  size_t wcap, wpos, wend;
  int werr;
  uint8_t is_sock;
  uint8_t eof;
  uint8_t paused;
  uint8_t eof_pending;
  uint8_t eof_done;
  uint8_t closing;
  uint8_t short_drains;
  uint8_t drained;
  async__task *reader;
  async__io wio;
  async__list waiters;
  unsigned parked; /* tasks in drain or wait_closed, woken or not */
};

static int stream_ok(const async_stream *s) {
  return s && s->magic == STREAM_MAGIC;
}

void async_stream_options_init(async_stream_options *opts) {
  if (!opts) return;
  memset(opts, 0, sizeof *opts);
  opts->size = sizeof *opts;
  opts->limit = 64 * 1024;
  opts->high_water = 64 * 1024;
  opts->low_water = 16 * 1024;
}

/* {==== Writing ========================================================= */

static ssize_t out(async_stream *s, const char *p, size_t n) {
  ssize_t r;
  do
    r = s->is_sock ? send(s->fd, p, n, MSG_DONTWAIT | MSG_NOSIGNAL)
                   : async__write_nosigpipe(s->fd, p, n);
  while (r < 0 && errno == EINTR);
  if (r > 0) return r;
  if (r == 0 || errno == EAGAIN || errno == EWOULDBLOCK) return -EAGAIN;
  return -errno;
}

static void wake_waiters(async_stream *s) {
  while (!async__list_empty(&s->waiters)) {
    async__waiter *w = async__list_item(s->waiters.next, async__waiter, link);
    async__list_remove(&w->link);
    async__task_wake(w->t, 0);
  }
}

static void fail_write(async_stream *s, int err) {
  if (!s->werr) s->werr = err;
  s->wpos = s->wend = 0;
  s->paused = 0;
  async__io_stop(s->loop, &s->wio);
  wake_waiters(s);
}

static void close_fd(async_stream *s) {
  int fd = s->fd;
  if (fd < 0) return;
  s->fd = -1;
  async__io_stop(s->loop, &s->wio);
  async__fd_disown(s->loop, fd, s);
  async_fd_forget(s->loop, fd);
  close(fd);
}

/* The number is not the stream's any more (async_fd_close by its user, a
 * fork's child that closed it, or a registration the backend found stale):
 * it may name another file at once, before the tasks woken with -EBADF
 * run, so the stream lets it go now and neither uses nor closes it again.
 * Queued output is lost, as after any error that ends writing. */
static void stream_gone(void *arg) {
  async_stream *s = arg;
  if (s->fd < 0) return;
  async__fd_disown(s->loop, s->fd, s); /* told by a watcher's GONE first */
  s->fd = -1;
  if (!s->werr) fail_write(s, -EBADF);
}

/* Ends the output: a socket is shut down for writing, another fd closed
 * (so task side only, see the top of the file, unless is_sock). */
static void do_eof(async_stream *s) {
  s->eof_pending = 0;
  s->eof_done = 1;
  if (s->fd < 0) return;
  if (s->is_sock)
    shutdown(s->fd, SHUT_WR); /* fails only if the peer is gone already */
  else
    close_fd(s);
}

/* Sends what the queue holds, as far as the fd takes it. */
static void flush(async_stream *s) {
  while (s->wpos < s->wend) {
    ssize_t r = out(s, s->wbuf + s->wpos, s->wend - s->wpos);
    if (r == -EAGAIN) break;
    if (r < 0) {
      fail_write(s, (int)r);
      return;
    }
    s->wpos += (size_t)r;
  }
  size_t left = s->wend - s->wpos;
  if (left == 0) {
    s->wpos = s->wend = 0;
    async__io_stop(s->loop, &s->wio);
    if (s->eof_pending && s->is_sock) do_eof(s);
  }
  if ((s->paused && left <= s->low) || left == 0) {
    s->paused = 0;
    wake_waiters(s);
  }
}

static void wio_cb(async_loop *loop, async__io *w, unsigned revents) {
  (void)loop;
  async_stream *s = async__container_of(w, async_stream, wio);
  if (revents & ASYNC__IO_GONE)
    stream_gone(s); /* and then its gone, which finds it done */
  else
    flush(s);
}

/* Room for m more queued bytes: compacts, then grows. */
static int wreserve(async_stream *s, size_t m) {
  size_t have = s->wend - s->wpos;
  if (s->wcap - s->wend >= m) return 0;
  if (s->wpos) {
    memmove(s->wbuf, s->wbuf + s->wpos, have);
    s->wpos = 0;
    s->wend = have;
    if (s->wcap - have >= m) return 0;
  }
  if (m > SIZE_MAX / 2 - have) return -ENOMEM;
  size_t cap = s->wcap ? s->wcap * 2 : READ_MIN;
  if (cap < have + m) cap = have + m;
  char *p = realloc(s->wbuf, cap);
  if (!p) return -ENOMEM;
  s->wbuf = p;
  s->wcap = cap;
  return 0;
}

int async_stream_write(async_stream *s, const void *buf, size_t n) {
  if (!stream_ok(s) || (!buf && n)) return -EINVAL;
  if (s->werr) return s->werr;
  /* A closed loop sends nothing in the background: no write begins. */
  if (s->closing || s->eof_pending || s->eof_done || s->fd < 0 ||
      s->loop->closed)
    return -ESHUTDOWN;
  if (n == 0) return 0;
  size_t done = 0;
  if (s->wpos == s->wend) {
    ssize_t r = out(s, buf, n);
    if (r < 0 && r != -EAGAIN) {
      fail_write(s, (int)r);
      return (int)r;
    }
    if (r > 0) done = (size_t)r;
    if (done == n) return 0;
  }
  size_t m = n - done;
  int err = wreserve(s, m);
  if (!err && async__list_empty(&s->wio.link))
    err = async__io_start(s->loop, &s->wio, ASYNC__POLL_OUT);
  if (err) {
    if (done) fail_write(s, err); /* part went out: the output has a hole */
    return err;
  }
  memcpy(s->wbuf + s->wend, (const char *)buf + done, m);
  s->wend += m;
  if (s->wend - s->wpos > s->high) s->paused = 1;
  return 0;
}

ssize_t async_stream_write_buffered(const async_stream *s) {
  if (!stream_ok(s)) return -EINVAL;
  return (ssize_t)(s->wend - s->wpos);
}

int async_stream_write_eof(async_stream *s) {
  if (!stream_ok(s)) return -EINVAL;
  if (s->werr) return s->werr;
  if (s->eof_pending || s->eof_done || s->closing) return 0;
  if (s->wpos == s->wend)
    do_eof(s);
  else
    s->eof_pending = 1;
  return 0;
}

/* }==== */

/* {==== Waiting for the queue =========================================== */

/* The common check of the stream calls that suspend. */
static async__task *stream_enter(const async_stream *s, double timeout,
                                 int *err) {
  if (!stream_ok(s)) {
    *err = -EINVAL;
    return NULL;
  }
  async__task *t = async__task_require(err);
  if (!t) return NULL;
  if (async__isnan(timeout)) {
    *err = -EINVAL;
    return NULL;
  }
  if (t->fut.loop != s->loop) {
    *err = -EXDEV;
    return NULL;
  }
  if ((*err = async__task_take_cancel(t))) return NULL;
  return t;
}

/* Parks t on the waiters until the queue changes, the deadline passes or
 * t is cancelled. */
static int park_waiter(async_stream *s, async__task *t, int64_t deadline) {
  if (deadline != ASYNC__NO_DEADLINE && deadline <= async__loop_now(s->loop))
    return -ETIMEDOUT;
  async__waiter w = {.t = t};
  async__list_push(&s->waiters, &w.link);
  t->wait_obj = &w;
  /* Counted until it runs again, not only while on the list: woken (and
   * so unlinked), it still reads s when it resumes. */
  s->parked++;
  int err = async__task_park_until(s->loop, t, async__waitq_unlink, NULL,
                                   "stream", deadline);
  s->parked--;
  t->wait_obj = NULL;
  if (err == 0) err = async__task_take_cancel(t);
  return err;
}

int async_stream_drain(async_stream *s, double timeout) {
  int err = 0;
  async__task *t = stream_enter(s, timeout, &err);
  if (!t) return err;
  int64_t deadline = async__io_deadline(s->loop, timeout);
  for (;;) {
    if (s->werr) return s->werr;
    int empty = s->wpos == s->wend;
    if (s->eof_pending || s->closing ? empty : !s->paused) break;
    if (s->fd < 0) return -EBADF;
    if ((err = park_waiter(s, t, deadline))) return err;
  }
  if (s->eof_pending) do_eof(s);
  return 0;
}

int async_stream_close(async_stream *s) {
  if (!stream_ok(s)) return -EINVAL;
  if (s->closing) return 0;
  s->closing = 1;
  async__task *r = s->reader;
  if (r && r->state == ASYNC__T_SUSPENDED) {
    r->wait_unlink(r);
    async__task_wake(r, -EBADF);
  }
  if (s->wpos == s->wend) close_fd(s);
  wake_waiters(s);
  return 0;
}

int async_stream_wait_closed(async_stream *s, double timeout) {
  int err = 0;
  async__task *t = stream_enter(s, timeout, &err);
  if (!t) return err;
  if (!s->closing) return -EINVAL;
  int64_t deadline = async__io_deadline(s->loop, timeout);
  while (!s->werr && s->wpos < s->wend && s->fd >= 0)
    if ((err = park_waiter(s, t, deadline))) return err;
  close_fd(s);
  return s->werr;
}

int async_stream_free(async_stream *s) {
  if (!stream_ok(s)) return -EINVAL;
  if (s->reader || s->parked) return -EBUSY;
  close_fd(s);
  s->magic = 0;
  free(s->rbuf);
  free(s->wbuf);
  free(s);
  return 0;
}

/* }==== */

/* {==== Reading ========================================================= */

/* Room to read into: compacts, then grows toward `need` bytes in all. */
static int rreserve(async_stream *s, size_t need) {
  size_t have = s->rend - s->rpos;
  if (have == 0) s->rpos = s->rend = 0;
  if (s->rend < s->rcap) return 0;
  if (s->rpos) {
    memmove(s->rbuf, s->rbuf + s->rpos, have);
    s->rpos = 0;
    s->rend = have;
    return 0;
  }
  if (s->rcap > SIZE_MAX / 2) return -ENOMEM;
  size_t cap = s->rcap ? s->rcap * 2 : READ_MIN;
  if (cap < need) cap = need;
  char *p = realloc(s->rbuf, cap);
  if (!p) return -ENOMEM;
  s->rbuf = p;
  s->rcap = cap;
  return 0;
}

static int wait_readable(async_stream *s, async__task *t, int64_t deadline) {
  int err = async__io_wait(s->loop, t, s->fd, ASYNC__POLL_IN, deadline);
  /* Mostly told already (stream_gone); else the backend found the fd
   * closed behind the stream's back. */
  if (err == -EBADF && !s->closing && s->fd >= 0) {
    async__fd_disown(s->loop, s->fd, s);
    s->fd = -1;
  }
  return err;
}

/* One read of the fd into dst (n bytes), waiting for it as needed.
 * Returns > 0, 0 at end of file (eof set), or an error.
 *
 * After a short read (drained) it waits before it reads. A short read of
 * a stream socket or a pipe means the kernel's queue was empty when it
 * returned: TCP, Unix stream sockets and pipes copy until the request is
 * met or nothing is left (TCP also stops short at an urgent mark or a
 * pending error, with something still to read). Waiting first is safe
 * even when that proof fails, because every backend is level-triggered:
 * a wait on an fd that is readable now, at end of file or in error is
 * reported at the next poll, so nothing that arrived since the short read
 * can be missed, and a wrong guess costs a trip through the poll instead
 * of an immediate read. A wait that times out still reads once, so that
 * data already there when the call began is returned, as a read tried
 * first would have returned it. Datagram and seqpacket sockets and
 * packet-mode pipes, whose reads return one message however many wait,
 * and ttys (a line at a time) never set drained. With no time to wait
 * (the deadline passed) the read is tried at once. */
static ssize_t read_fd(async_stream *s, async__task *t, char *dst, size_t n,
                       int64_t deadline) {
  if (s->drained) {
    s->drained = 0;
    if (s->closing || s->fd < 0) return -EBADF;
    if (deadline == ASYNC__NO_DEADLINE || deadline > async__loop_now(s->loop)) {
      int err = wait_readable(s, t, deadline);
      if (err < 0 && err != -ETIMEDOUT) return err;
    }
  }
  for (;;) {
    if (s->closing || s->fd < 0) return -EBADF;
    ssize_t r = read(s->fd, dst, n);
    if (r > 0) {
      s->drained = s->short_drains && (size_t)r < n;
      return r;
    }
    if (r == 0) {
      s->eof = 1;
      return 0;
    }
    if (errno == EINTR) continue;
    if (errno != EAGAIN && errno != EWOULDBLOCK) return -errno;
    s->loop->counts.eagain++;
    int err = wait_readable(s, t, deadline);
    if (err < 0) return err;
  }
}

/* Reads more into the buffer. Returns > 0, 0 at end of file, or an
 * error, the buffer then as it was. */
static ssize_t fill(async_stream *s, async__task *t, size_t need,
                    int64_t deadline) {
  int err = rreserve(s, need);
  if (err) return err;
  ssize_t r = read_fd(s, t, s->rbuf + s->rend, s->rcap - s->rend, deadline);
  if (r > 0) s->rend += (size_t)r;
  return r;
}

static size_t take(async_stream *s, void *buf, size_t n) {
  if (n == 0) return 0;
  memcpy(buf, s->rbuf + s->rpos, n);
  s->rpos += n;
  if (s->rpos == s->rend) s->rpos = s->rend = 0;
  return n;
}

static async__task *reader_enter(async_stream *s, double timeout, int *err) {
  async__task *t = stream_enter(s, timeout, err);
  if (!t) return NULL;
  if (s->reader) {
    *err = -EBUSY;
    return NULL;
  }
  if (s->closing || s->fd < 0) {
    *err = -EBADF;
    return NULL;
  }
  s->reader = t;
  return t;
}

ssize_t async_stream_read(async_stream *s, void *buf, size_t n,
                          double timeout) {
  int err = 0;
  if (stream_ok(s) && !buf && n) return -EINVAL;
  if (stream_ok(s) && s->rend > s->rpos && n && !s->reader && !s->closing) {
    /* Buffered: no wait, so no task needed beyond the checks. */
    size_t have = s->rend - s->rpos;
    return (ssize_t)take(s, buf, n < have ? n : have);
  }
  async__task *t = reader_enter(s, timeout, &err);
  if (!t) return err;
  ssize_t r = 0;
  if (n && !s->eof)
    r = read_fd(s, t, buf, n, async__io_deadline(s->loop, timeout));
  s->reader = NULL;
  return r;
}

ssize_t async_stream_readexactly(async_stream *s, void *buf, size_t n,
                                 double timeout) {
  int err = 0;
  async__task *t = reader_enter(s, timeout, &err);
  if (!t) return err;
  ssize_t r = 0;
  if (!buf && n) r = -EINVAL;
  int64_t deadline = async__io_deadline(s->loop, timeout);
  while (r >= 0 && s->rend - s->rpos < n) {
    if (s->eof)
      r = -ENODATA;
    else if ((r = fill(s, t, n, deadline)) == 0)
      r = -ENODATA;
  }
  if (r >= 0) r = (ssize_t)take(s, buf, n);
  s->reader = NULL;
  return r;
}

static ssize_t until(async_stream *s, const void *delim, size_t dlen, void *buf,
                     size_t cap, double timeout, int line) {
  int err = 0;
  if (stream_ok(s) && (!delim || !dlen || !buf || !cap)) return -EINVAL;
  async__task *t = reader_enter(s, timeout, &err);
  if (!t) return err;
  size_t limit = s->limit < cap ? s->limit : cap;
  size_t scanned = 0; /* no match starts before this, from rpos */
  int64_t deadline = async__io_deadline(s->loop, timeout);
  ssize_t r;
  for (;;) {
    size_t have = s->rend - s->rpos;
    const char *base = have ? s->rbuf + s->rpos : NULL;
    const char *p = have > scanned
                        ? memmem(base + scanned, have - scanned, delim, dlen)
                        : NULL;
    if (p) {
      size_t len = (size_t)(p - base) + dlen;
      r = len > limit ? -EMSGSIZE : (ssize_t)take(s, buf, len);
      break;
    }
    if (have >= dlen) scanned = have - dlen + 1;
    /* A match found later would end past `have`, so past the limit. */
    if (have >= limit) {
      r = -EMSGSIZE;
      break;
    }
    if (s->eof) {
      r = have == 0 ? 0 : line ? (ssize_t)take(s, buf, have) : -ENODATA;
      break;
    }
    if ((r = fill(s, t, limit, deadline)) < 0) break;
  }
  s->reader = NULL;
  return r;
}

ssize_t async_stream_readuntil(async_stream *s, const void *delim, size_t dlen,
                               void *buf, size_t cap, double timeout) {
  return until(s, delim, dlen, buf, cap, timeout, 0);
}

ssize_t async_stream_readline(async_stream *s, void *buf, size_t cap,
                              double timeout) {
  return until(s, "\n", 1, buf, cap, timeout, 1);
}

ssize_t async_stream_buffered(const async_stream *s) {
  if (!stream_ok(s)) return -EINVAL;
  return (ssize_t)(s->rend - s->rpos);
}

/* }==== */

/* {==== Opening ========================================================= */

int async_stream_open(async_stream **out, async_loop *loop, int fd,
                      const async_stream_options *opts) {
  if (out) *out = NULL;
  async_stream_options def;
  if (!opts) {
    async_stream_options_init(&def);
    opts = &def;
  }
  if (!out || !async__loop_ok(loop) || fd < 0 || opts->size < sizeof *opts ||
      !opts->limit || opts->low_water > opts->high_water)
    return -EINVAL;
  if (loop->closed) return -ESHUTDOWN;
  if (async__loop_owns_fd(loop, fd)) return -EINVAL;
  async_stream *s = calloc(1, sizeof *s);
  if (!s) return -ENOMEM;
  int err = async_fd_nonblock(fd);
  if (err) {
    free(s);
    return err;
  }
  int type;
  socklen_t len = sizeof type;
  s->is_sock = getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) == 0;
  if (s->is_sock) {
    s->short_drains = type == SOCK_STREAM;
  } else {
    struct stat st;
    s->short_drains = fstat(fd, &st) == 0 && S_ISFIFO(st.st_mode);
#ifdef O_DIRECT
    /* A packet-mode pipe reads one write at a time, as a datagram. */
    if (s->short_drains && (fcntl(fd, F_GETFL) & O_DIRECT)) s->short_drains = 0;
#endif
  }
  if ((err = async__fd_own(loop, fd, stream_gone, s))) {
    free(s);
    return err;
  }
  s->magic = STREAM_MAGIC;
  s->fd = fd;
  s->loop = loop;
  s->limit = opts->limit;
  s->high = opts->high_water;
  s->low = opts->low_water;
  async__io_init(&s->wio, fd, wio_cb);
  async__list_init(&s->waiters);
  *out = s;
  return 0;
}

int async_stream_fd(const async_stream *s) {
  if (!stream_ok(s)) return -EINVAL;
  return s->fd >= 0 ? s->fd : -EBADF;
}

/* }==== */
