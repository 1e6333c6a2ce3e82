/* SPDX-License-Identifier: MIT */
/* Stream servers: asyncio's start_server, a task per connection.
 *
 * One task accepts; each connection is a conn record on srv->conns and a
 * task running the handler on a stream. A record ends in conn_ended, the
 * notification its task's future gives when the task is done, however it
 * ends: its handler returned, it was cancelled before it ran, its stack
 * could not be had, or the loop closed and killed it mid-way. So the
 * count of open connections, the fd and the stream are given back exactly
 * once in every case, and async_server_free after a loop close has
 * nothing left to find. The accepting task ends the same way
 * (acceptor_ended).
 *
 * Tasks that wait for the server to change (the acceptor at the limit,
 * stop, serve_forever) park on srv->waiters and re-check when woken;
 * every change wakes them all: there are a handful at most. */
#include "io.h"

#include <stdlib.h>
#include <string.h>

#include "async/server.h"

#define SERVER_MAGIC 0x53525652u /* "SRVR" */

typedef struct conn {
  async__list link; /* on srv->conns */
  async__fwaiter end;
  struct async_server *srv;
  async_task *task;
  async_stream *stream; /* once opened, until the task frees it */
  int fd;               /* until the stream owns it, or -1 */
  uint8_t started;      /* conn_main has run: cancel the task, not the flag */
  uint8_t cancelled;    /* by stop: skip the handler, or the linger */
} conn;

struct async_server {
  uint32_t magic;
  async_loop *loop;
  int lfd; /* -1 once stop closed it, or the server let it go */
  async_server_handler handler;
  void *arg;
  size_t max;
  double backoff, close_timeout;
  size_t stack_size;
  int has_sopts;
  async_stream_options sopts;
  async_task *acceptor; /* our reference, until acceptor_ended */
  async__fwaiter acceptor_end;
  uint8_t acceptor_started;
  uint8_t stopping, stop_inside, stopped;
  int err; /* what ended accepting, if not a stop */
  async__list conns;
  async__list waiters; /* async__waiter */
  unsigned parked;     /* tasks in park, woken or not */
  async_server_stats st;
};

void async_server_options_init(async_server_options *opts) {
  if (!opts) return;
  memset(opts, 0, sizeof *opts);
  opts->size = sizeof *opts;
  opts->accept_backoff = 0.1;
  opts->close_timeout = 10.0;
}

static int server_ok(const async_server *s) {
  return s && s->magic == SERVER_MAGIC;
}

/* {==== Waiting for a change ========================================== */

/* Called on every change: the server is stopped once a stop has begun,
 * its last task has ended (which may come after the stop returned, when
 * it was cancelled or made by a handler), and no stop is still inside:
 * serve_forever's caller may free the server as soon as it is. */
static void wake_all(async_server *s) {
  if (s->stopping && !s->stop_inside && !s->st.active && !s->acceptor)
    s->stopped = 1;
  async__list *n, *nx;
  async__list_each_safe(n, nx, &s->waiters) {
    async__waitq_wake(async__container_of(n, async__waiter, link), 0);
  }
}

static int park(async_server *s, async__task *t, int64_t deadline) {
  int err = async__task_take_cancel(t);
  if (err) return err;
  if (deadline != ASYNC__NO_DEADLINE && deadline <= async__loop_now(s->loop))
    return -ETIMEDOUT;
  async__waiter w = {.t = t};
  async__list_push(&s->waiters, &w.link);
  t->wait_obj = &w;
  /* Counted until it runs again: woken (and so unlinked), it still reads
   * s when it resumes. */
  s->parked++;
  err = async__task_park_until(s->loop, t, async__waitq_unlink, NULL, "server",
                               deadline);
  s->parked--;
  t->wait_obj = NULL;
  if (err == 0) err = async__task_take_cancel(t);
  return err;
}

/* The common entry of the calls that suspend. */
static async__task *server_enter(const async_server *s, int *err) {
  if (!server_ok(s)) {
    *err = -EINVAL;
    return NULL;
  }
  async__task *t = async__task_require(err);
  if (t && t->fut.loop != s->loop) {
    *err = -EXDEV;
    return NULL;
  }
  return t;
}

/* }==== */

/* {==== Connections ================================================== */

static void *conn_main(void *arg) {
  conn *c = arg;
  async_server *s = c->srv;
  c->started = 1;
  if (c->cancelled) return NULL;
  int err = async_stream_open(&c->stream, s->loop, c->fd,
                              s->has_sopts ? &s->sopts : NULL);
  if (err) {
    c->stream = NULL;
    s->st.failed++;
    return NULL; /* conn_ended closes the fd */
  }
  c->fd = -1;
  if (s->handler(c->stream, s->arg) < 0) s->st.failed++;
  async_stream_close(c->stream);
  if (!c->cancelled) async_stream_wait_closed(c->stream, s->close_timeout);
  if (async_stream_free(c->stream) == 0) c->stream = NULL;
  return NULL;
}

static void conn_ended(async__fwaiter *w, async_future *f) {
  (void)f;
  conn *c = async__container_of(w, conn, end);
  async_server *s = c->srv;
  if (c->stream) async_stream_free(c->stream);
  if (c->fd >= 0) async_fd_close(c->fd);
  async__list_remove(&c->link);
  async_future_release(c->task);
  free(c);
  s->st.active--;
  wake_all(s);
}

/* Starts a task for the accepted fd. Returns 0 or -ENOMEM (fd closed). */
static int conn_spawn(async_server *s, int fd) {
  conn *c = calloc(1, sizeof *c);
  if (!c) {
    async_fd_close(fd);
    return -ENOMEM;
  }
  c->srv = s;
  c->fd = fd;
  async_task_options o;
  async_task_options_init(&o);
  o.name = "conn";
  o.stack_size = s->stack_size;
  int err = async_task_spawn(s->loop, &c->task, conn_main, c, &o);
  if (err) {
    free(c);
    async_fd_close(fd);
    return err;
  }
  c->end.notify = conn_ended;
  async__future_add_waiter(c->task, &c->end);
  async__list_push(&s->conns, &c->link);
  s->st.accepted++;
  s->st.active++;
  return 0;
}

/* }==== */

/* {==== Accepting ==================================================== */

/* Whether a failed accept is worth retrying, and after a back-off. Linux
 * also passes pending network errors of the new connection to accept:
 * those are the connection's, not the listener's (accept(2)). */
static int accept_retry(int err, int *backoff) {
  switch (-err) {
  case EMFILE:
  case ENFILE:
  case ENOBUFS:
  case ENOMEM:
    *backoff = 1;
    return 1;
  case ECONNABORTED:
  case EPROTO:
  case EPERM:
  case EINTR:
  case ENETDOWN:
  case ENOPROTOOPT:
  case EHOSTDOWN:
  case ENONET:
  case EHOSTUNREACH:
  case EOPNOTSUPP:
  case ENETUNREACH:
  case ETIMEDOUT:
    *backoff = 0;
    return 1;
  default:
    return 0;
  }
}

/* The listening fd closed behind the server's back (async_fd_close): the
 * number may name another file at once, before the acceptor, woken with
 * -EBADF, has run; the server lets it go now. */
static void server_gone(void *arg) {
  async_server *s = arg;
  s->lfd = -1;
}

static void close_listener(async_server *s) {
  int fd = s->lfd;
  if (fd < 0) return;
  s->lfd = -1;
  async__fd_disown(s->loop, fd, s);
  async_fd_close(fd);
}

static void *accept_main(void *arg) {
  async_server *s = arg;
  async__task *t = async__task_current();
  s->acceptor_started = 1;
  while (!s->stopping) {
    if (s->max && s->st.active >= s->max) {
      if (park(s, t, ASYNC__NO_DEADLINE) == -ECANCELED) break;
      continue;
    }
    int fd = async_accept(s->lfd, NULL, NULL, ASYNC_NO_TIMEOUT);
    if (fd >= 0) {
      if (conn_spawn(s, fd) == 0) continue;
      fd = -ENOMEM; /* the connection is lost; give memory time */
    }
    int backoff;
    if (s->stopping || fd == -ECANCELED) break;
    if (!accept_retry(fd, &backoff)) {
      s->err = fd;
      break;
    }
    s->st.accept_errors++;
    if (backoff) {
      s->st.backoffs++;
      if (async_sleep(s->backoff) == -ECANCELED) break;
    }
  }
  return NULL;
}

static void acceptor_ended(async__fwaiter *w, async_future *f) {
  (void)f;
  async_server *s = async__container_of(w, async_server, acceptor_end);
  async_future_release(s->acceptor);
  s->acceptor = NULL;
  wake_all(s);
}

/* }==== */

int async_server_start(async_server **out, async_loop *loop, int fd,
                       async_server_handler handler, void *arg,
                       const async_server_options *opts) {
  if (out) *out = NULL;
  if (!out || !loop || !handler || fd < 0) return -EINVAL;
  async_server_options d;
  if (!opts) {
    async_server_options_init(&d);
    opts = &d;
  }
  if (opts->size != sizeof *opts || async__isnan(opts->accept_backoff) ||
      opts->accept_backoff < 0 || async__isnan(opts->close_timeout) ||
      opts->close_timeout < 0)
    return -EINVAL;
  if (opts->stream) {
    const async_stream_options *so = opts->stream;
    if (so->size != sizeof *so || so->limit == 0 ||
        so->low_water > so->high_water)
      return -EINVAL;
  }
  if (async_loop_is_closed(loop)) return -ESHUTDOWN;
  int err = async_fd_nonblock(fd);
  if (err) return err;
  async_server *s = calloc(1, sizeof *s);
  if (!s) return -ENOMEM;
  s->magic = SERVER_MAGIC;
  s->loop = loop;
  s->lfd = fd;
  s->handler = handler;
  s->arg = arg;
  s->max = opts->max_connections;
  s->backoff = opts->accept_backoff;
  s->close_timeout = opts->close_timeout;
  s->stack_size = opts->stack_size;
  if (opts->stream) {
    s->has_sopts = 1;
    s->sopts = *opts->stream;
  }
  async__list_init(&s->conns);
  async__list_init(&s->waiters);
  /* The server owns fd and closes it through async_fd_close: its
   * registration with the poller can stay from one accept to the next. */
  async_task_options o;
  async_task_options_init(&o);
  o.name = "accept";
  if (!(err = async__fd_own(loop, fd, server_gone, s)) &&
      (err = async_task_spawn(loop, &s->acceptor, accept_main, s, &o)))
    async__fd_disown(loop, fd, s);
  if (err) {
    s->magic = 0;
    free(s);
    return err;
  }
  s->acceptor_end.notify = acceptor_ended;
  async__future_add_waiter(s->acceptor, &s->acceptor_end);
  *out = s;
  return 0;
}

int async_server_fd(const async_server *s) {
  if (!server_ok(s)) return -EINVAL;
  return s->lfd >= 0 ? s->lfd : -EBADF;
}

int async_server_get_stats(const async_server *s, async_server_stats *out) {
  if (!server_ok(s) || !out) return -EINVAL;
  *out = s->st;
  return 0;
}

/* Cancels what is not done: a task that has not run yet is not cancelled
 * (it would then end without running, which conn_ended covers too, but
 * the flag says it as plainly) but flagged, and ends at once when it
 * runs. Returns how many connections it cancelled. */
static int cancel_all(async_server *s, const conn *self) {
  int n = 0;
  async__list *l;
  async__list_each(l, &s->conns) {
    conn *c = async__container_of(l, conn, link);
    if (c->cancelled || c == self) continue;
    c->cancelled = 1;
    n++;
    if (c->started) async_future_cancel(c->task);
  }
  return n;
}

int async_server_stop(async_server *s, double timeout) {
  int err = 0;
  async__task *t = server_enter(s, &err);
  if (!t) return err;
  if (async__isnan(timeout)) return -EINVAL;
  if (s->stopping) return -EALREADY;
  s->stopping = 1;
  s->stop_inside = 1;
  close_listener(s); /* wakes the acceptor with -EBADF */
  if (s->acceptor && s->acceptor_started) async_future_cancel(s->acceptor);
  /* A handler that stops its own server waits for the others only. */
  const conn *self = NULL;
  async__list *l;
  async__list_each(l, &s->conns) {
    const conn *c = async__container_of(l, conn, link);
    if ((async__task *)c->task == t) self = c;
  }
  size_t own = self != NULL;
  int64_t deadline = async__io_deadline(s->loop, timeout);
  while (!err && s->st.active > own) err = park(s, t, deadline);
  int n = cancel_all(s, self);
  int err2 = 0;
  while (!err2 && (s->st.active > own || s->acceptor))
    err2 = park(s, t, ASYNC__NO_DEADLINE);
  s->stop_inside = 0;
  wake_all(s); /* the last use of s: its waiters run after we return */
  if (err == -ECANCELED || err2) return -ECANCELED;
  return n;
}

int async_server_serve_forever(async_server *s) {
  int err = 0;
  async__task *t = server_enter(s, &err);
  if (!t) return err;
  if ((err = async__task_take_cancel(t)) == 0) {
    while (!s->stopped && !s->err) {
      if ((err = park(s, t, ASYNC__NO_DEADLINE))) break;
    }
  }
  if (err == -ECANCELED) {
    if (!s->stopping) async_server_stop(s, 0);
    return -ECANCELED;
  }
  return s->stopped ? 0 : s->err;
}

int async_server_free(async_server *s) {
  if (!s) return 0;
  if (!server_ok(s)) return -EINVAL;
  if (!async_loop_is_closed(s->loop) && !s->stopped) return -EBUSY;
  if (!async__list_empty(&s->conns) || s->acceptor || s->parked) return -EBUSY;
  close_listener(s);
  s->magic = 0;
  free(s);
  return 0;
}
