/* SPDX-License-Identifier: MIT */
/* Signals delivered to the loop through a self-pipe.
 *
 * Why a self-pipe and not signalfd: a signalfd only sees a signal that is
 * blocked in every thread of the process, or another thread, one the
 * program or a library started before the loop blocked it, takes its
 * default action (SIGTERM kills the process); and the blocked mask is
 * inherited by every child across exec, which would then have to undo it.
 * A handler that writes a byte needs no mask at all, works with any
 * thread, and exists on every system the backends cover.
 *
 * Process-wide state, one slot per signal number: the loop that watches
 * it (`owner`, under sig_lock, changed only by that loop's thread), the
 * disposition found before (`old`), and three atomics the handler reads:
 * the write end of the owner's pipe plus one (0: none), the owner's pid
 * (a forked child inherits the handler, not the loop), and the count of
 * deliveries the owner has not collected. The handler counts first and
 * then writes, so a byte the full pipe refused loses nothing: the loop
 * collects every watched signal's count whenever the pipe is readable.
 * `sig_busy` counts the handlers between reading a write end and writing
 * to it: a loop waits for it to fall to 0 before it closes its pipe, so
 * that no handler writes to a number the process has reused since.
 *
 * fork: the child inherits the handlers and the table, whose pids are the
 * parent's, so a watched signal there goes to the disposition found
 * before. async_loop_fork gives the loop's record a pipe of the child's
 * own and points its signals' slots at it, with the child's pid. In every
 * child, a pthread_atfork handler makes sig_lock and sig_busy anew: a
 * thread of the parent's that held the one or counted in the other is
 * not there to give them back. */
#include "io.h"

#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#if ATOMIC_INT_LOCK_FREE != 2
#error "the signal handler needs lock-free atomic ints"
#endif

#define SIG_N NSIG

static pthread_mutex_t sig_lock = PTHREAD_MUTEX_INITIALIZER;
static async__sigloop *sig_owner[SIG_N];
static struct sigaction sig_old[SIG_N];
static uint8_t sig_once[SIG_N]; /* installed with SA_RESETHAND */
static atomic_int sig_wfd[SIG_N];
static atomic_int sig_pid[SIG_N];
static atomic_uint sig_count[SIG_N];
static atomic_int sig_busy;

typedef struct sig_watch {
  async_signal_fn cb; /* NULL: none */
  void *arg;
  async__list waiters; /* sig_waiter */
  unsigned pending;    /* deliveries no wait has returned yet */
  unsigned fresh;      /* deliveries not yet passed to cb */
  uint8_t watched;
} sig_watch;

struct async__sigloop {
  async__ext ext;
  async_loop *loop;
  int fd[2];
  async__io io;
  uint8_t dispatching; /* sig_dispatch is queued */
  uint8_t fresh;       /* some w[].fresh is not 0, and it is not queued */
  sig_watch w[SIG_N];
};

typedef struct sig_waiter {
  async__list link;
  async__task *t;
} sig_waiter;

static const char sig_key = 0;

static pthread_once_t sig_fork_once = PTHREAD_ONCE_INIT;
static int sig_fork_err;

static void sig_atfork_child(void) {
  async__mutex_reset(&sig_lock);
  atomic_store(&sig_busy, 0);
}

static void sig_fork_register(void) {
  sig_fork_err = pthread_atfork(NULL, NULL, sig_atfork_child);
}

/* {==== The handler ===================================================== */

static void sig_handler(int signo) {
  int saved = errno;
  if (async__unlikely(getpid() != atomic_load(&sig_pid[signo]))) {
    /* A child forked without exec: as if no loop watched signo. The
     * signal is blocked while this runs; raised again, it comes once the
     * handler returns, to the disposition restored here. */
    sigaction(signo, &sig_old[signo], NULL);
    raise(signo);
    errno = saved;
    return;
  }
  atomic_fetch_add(&sig_busy, 1);
  atomic_fetch_add(&sig_count[signo], 1);
  int fd = atomic_load(&sig_wfd[signo]) - 1;
  if (fd >= 0) {
    unsigned char b = (unsigned char)signo;
    ssize_t r = write(fd, &b, 1); /* EAGAIN: a byte is there already */
    (void)r;
  }
  atomic_fetch_sub(&sig_busy, 1);
  errno = saved;
}

/* }==== */

/* {==== Watching ======================================================== */

static int sig_refused(int signo) {
  return signo <= 0 || signo >= SIG_N || signo == SIGKILL || signo == SIGSTOP ||
         signo == SIGSEGV || signo == SIGBUS || signo == SIGFPE ||
         signo == SIGILL;
}

/* Installs the handler for signo, owned by s (a second call only changes
 * the flags). Returns 0, -EBUSY or sigaction's error. */
static int watch_start(async__sigloop *s, int signo, int once) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = sig_handler;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART | (once ? SA_RESETHAND : 0);
  int err = 0;
  pthread_mutex_lock(&sig_lock);
  if (sig_owner[signo] == s) {
    if (sig_once[signo] != once && sigaction(signo, &sa, NULL) < 0)
      err = -errno;
    else
      sig_once[signo] = (uint8_t)once;
  } else if (sig_owner[signo]) {
    err = -EBUSY;
  } else {
    /* Ready before the first delivery can come. */
    atomic_store(&sig_count[signo], 0);
    atomic_store(&sig_pid[signo], (int)getpid());
    atomic_store(&sig_wfd[signo], s->fd[1] + 1);
    if (sigaction(signo, &sa, &sig_old[signo]) < 0) {
      err = -errno;
      atomic_store(&sig_wfd[signo], 0);
    } else {
      sig_owner[signo] = s;
      sig_once[signo] = (uint8_t)once;
    }
  }
  pthread_mutex_unlock(&sig_lock);
  if (!err) s->w[signo].watched = 1;
  return err;
}

/* Gives the disposition back, unless the program replaced the handler
 * (with SA_RESETHAND, the kernel's reset to SIG_DFL is still ours). */
static void watch_stop(async__sigloop *s, int signo) {
  sig_watch *w = &s->w[signo];
  w->watched = 0;
  w->cb = NULL;
  w->arg = NULL;
  w->pending = w->fresh = 0;
  pthread_mutex_lock(&sig_lock);
  struct sigaction cur;
  if (sigaction(signo, NULL, &cur) == 0 && !(cur.sa_flags & SA_SIGINFO) &&
      (cur.sa_handler == sig_handler ||
       (sig_once[signo] && cur.sa_handler == SIG_DFL)))
    sigaction(signo, &sig_old[signo], NULL);
  atomic_store(&sig_wfd[signo], 0);
  sig_owner[signo] = NULL;
  sig_once[signo] = 0;
  pthread_mutex_unlock(&sig_lock);
}

/* }==== */

/* {==== Delivery ======================================================== */

static void sig_dispatch(void *arg) {
  async__sigloop *s = arg;
  s->dispatching = s->fresh = 0;
  for (int signo = 1; signo < SIG_N; signo++) {
    sig_watch *w = &s->w[signo];
    if (!w->fresh) continue;
    unsigned n = w->fresh;
    w->fresh = 0;
    /* Read before the call, which may remove or replace it. */
    if (w->cb) w->cb(s->loop, signo, n, w->arg);
  }
}

static unsigned sat_add(unsigned a, unsigned b) {
  return a > UINT32_MAX - b ? UINT32_MAX : a + b;
}

/* Takes what the handler counted for signo: wakes the tasks waiting (or
 * keeps the count for the next wait) and queues the handler's call.
 * Returns the count the tasks woken got, or 0 when none was. */
static int sig_collect(async__sigloop *s, int signo) {
  sig_watch *w = &s->w[signo];
  unsigned n = atomic_exchange(&sig_count[signo], 0);
  int code = 0;
  if (!n) return 0;
  w->pending = sat_add(w->pending, n);
  if (!async__list_empty(&w->waiters)) {
    code = w->pending > INT32_MAX ? INT32_MAX : (int)w->pending;
    w->pending = 0;
    while (!async__list_empty(&w->waiters)) {
      sig_waiter *sw = async__list_item(w->waiters.next, sig_waiter, link);
      async__list_remove(&sw->link);
      async__task_wake(sw->t, code);
    }
  }
  if (w->cb) {
    w->fresh = sat_add(w->fresh, n);
    s->fresh = 1;
  }
  return code;
}

/* Queues the handlers' calls: from the ready queue, as asyncio's, since
 * the poll phase may not start watchers, which a handler may want to.
 * Out of memory, a byte written to the pipe tries again next turn. */
static void sig_schedule(async__sigloop *s) {
  if (!s->fresh || s->dispatching) return;
  if (async_loop_call_soon(s->loop, sig_dispatch, s, NULL) == 0) {
    s->dispatching = 1;
    s->fresh = 0;
  } else {
    unsigned char b = 0;
    ssize_t r = write(s->fd[1], &b, 1);
    (void)r;
  }
}

static void sig_readable(async_loop *loop, async__io *io, unsigned revents) {
  (void)loop;
  (void)revents;
  async__sigloop *s = async__container_of(io, async__sigloop, io);
  unsigned char buf[64];
  while (read(s->fd[0], buf, sizeof buf) > 0) continue;
  for (int signo = 1; signo < SIG_N; signo++)
    if (s->w[signo].watched) sig_collect(s, signo);
  sig_schedule(s);
}

/* }==== */

/* {==== The loop's record ================================================ */

static void sig_close(async_loop *loop, async__ext *e) {
  async__sigloop *s = async__container_of(e, async__sigloop, ext);
  for (int signo = 1; signo < SIG_N; signo++)
    if (s->w[signo].watched) watch_stop(s, signo);
  async__io_stop(loop, &s->io);
  /* A handler of another thread may still hold the write end. */
  while (atomic_load(&sig_busy)) sched_yield();
  close(s->fd[0]);
  close(s->fd[1]);
  free(s);
}

static int sig_pipe(int fd[2]) {
#if defined(__linux__)
  if (pipe2(fd, O_CLOEXEC | O_NONBLOCK) < 0) return -errno;
#else
  if (pipe(fd) < 0) return -errno;
  for (int i = 0; i < 2; i++) {
    if (fcntl(fd[i], F_SETFD, FD_CLOEXEC) < 0 ||
        fcntl(fd[i], F_SETFL, O_NONBLOCK) < 0) {
      int err = -errno;
      close(fd[0]);
      close(fd[1]);
      return err;
    }
  }
#endif
  return 0;
}

/* Whether signo's disposition is the one sig_handler puts back when it
 * runs in a child (the one found before): then a delivery came between
 * the fork and async_loop_fork, and took it. */
static int sig_restored(int signo) {
  struct sigaction cur;
  const struct sigaction *old = &sig_old[signo];
  if (sigaction(signo, NULL, &cur) < 0) return 0;
  int info = (cur.sa_flags & SA_SIGINFO) != 0;
  if (info != ((old->sa_flags & SA_SIGINFO) != 0)) return 0;
  return info ? cur.sa_sigaction == old->sa_sigaction
              : cur.sa_handler == old->sa_handler;
}

/* The record's async__ext.fork: nothing for a close (sig_close restores
 * the child's dispositions as in any process); for async_loop_fork, a new
 * pipe, the old one forgotten, and the loop's signals pointed at it. A
 * handler that a delivery in the child replaced (sig_restored) is
 * installed again, but for a `once` watch, whose reset may be the
 * kernel's; one the program installed since is left alone. Counts the
 * parent had not collected are not the child's: fork(2) gives a child no
 * pending signal either. */
static int sig_fork(async_loop *loop, async__ext *e,
                    enum async__fork_step step) {
  if (step != ASYNC__FORK_REMAKE) return 0;
  async__sigloop *s = async__container_of(e, async__sigloop, ext);
  int fd[2];
  int err = sig_pipe(fd);
  if (err) return err;
  async__io_stop(loop, &s->io);
  async__fd_release(loop, s->fd[0]);
  pthread_mutex_lock(&sig_lock);
  for (int signo = 1; signo < SIG_N; signo++) {
    if (sig_owner[signo] != s) continue;
    atomic_store(&sig_count[signo], 0);
    atomic_store(&sig_pid[signo], (int)getpid());
    atomic_store(&sig_wfd[signo], fd[1] + 1);
    if (sig_once[signo] || !sig_restored(signo)) continue;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = sig_handler;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    sigaction(signo, &sa, NULL);
  }
  pthread_mutex_unlock(&sig_lock);
  /* No handler of this process has the old write end any more. */
  while (atomic_load(&sig_busy)) sched_yield();
  close(s->fd[0]);
  close(s->fd[1]);
  s->fd[0] = fd[0];
  s->fd[1] = fd[1];
  s->ext.fd = fd[0];
  async__io_init(&s->io, fd[0], sig_readable);
  s->io.unref = 1;
  return async__io_start(loop, &s->io, ASYNC__POLL_IN);
}

/* The loop's record, made on first use. */
static int sig_loop(async_loop *loop, async__sigloop **out) {
  async__ext *e = async__loop_ext(loop, &sig_key);
  if (e) {
    *out = async__container_of(e, async__sigloop, ext);
    return 0;
  }
  pthread_once(&sig_fork_once, sig_fork_register);
  if (sig_fork_err) return -sig_fork_err;
  async__sigloop *s = calloc(1, sizeof *s);
  if (!s) return -ENOMEM;
  int err = sig_pipe(s->fd);
  if (err) {
    free(s);
    return err;
  }
  s->loop = loop;
  for (int i = 0; i < SIG_N; i++) async__list_init(&s->w[i].waiters);
  async__io_init(&s->io, s->fd[0], sig_readable);
  /* A signal comes from outside, as a thread-safe call does: the pipe
   * does not keep the virtual clock from jumping (see async__io). */
  s->io.unref = 1;
  if ((err = async__io_start(loop, &s->io, ASYNC__POLL_IN))) {
    close(s->fd[0]);
    close(s->fd[1]);
    free(s);
    return err;
  }
  s->ext.key = &sig_key;
  s->ext.close = sig_close;
  s->ext.fork = sig_fork;
  s->ext.fd = s->fd[0]; /* the loop's own: no async_fd_wait or _forget */
  async__loop_ext_add(loop, &s->ext);
  *out = s;
  return 0;
}

int async__signal_watch(async_loop *loop, int signo, async_signal_fn cb,
                        void *arg, int once) {
  if (!async__loop_ok(loop) || !cb || sig_refused(signo)) return -EINVAL;
  if (loop->closed) return -ESHUTDOWN;
  /* Its pipe is the parent's: a handler would write there. */
  if (async__loop_forked(loop)) return -ECHILD;
  async__sigloop *s;
  int err = sig_loop(loop, &s);
  if (!err) err = watch_start(s, signo, once);
  if (err) return err;
  s->w[signo].cb = cb;
  s->w[signo].arg = arg;
  return 0;
}

/* }==== */

/* {==== Public calls ===================================================== */

int async_signal_add(async_loop *loop, int signo, async_signal_fn cb,
                     void *arg) {
  return async__signal_watch(loop, signo, cb, arg, 0);
}

int async_signal_remove(async_loop *loop, int signo) {
  if (!async__loop_ok(loop) || sig_refused(signo)) return -EINVAL;
  if (loop->closed) return -ESHUTDOWN;
  async__ext *e = async__loop_ext(loop, &sig_key);
  if (!e) return 0;
  async__sigloop *s = async__container_of(e, async__sigloop, ext);
  sig_watch *w = &s->w[signo];
  if (!w->watched) return 0;
  watch_stop(s, signo);
  while (!async__list_empty(&w->waiters)) {
    sig_waiter *sw = async__list_item(w->waiters.next, sig_waiter, link);
    async__list_remove(&sw->link);
    async__task_wake(sw->t, -ENOENT);
  }
  return 1;
}

static void sig_unlink(async__task *t) {
  sig_waiter *sw = t->wait_obj;
  async__list_remove(&sw->link); /* a second removal is harmless */
}

int async_signal_wait(int signo, double timeout) {
  int err = 0;
  async__task *t = async__task_require(&err);
  if (!t) return err;
  if (sig_refused(signo) || async__isnan(timeout)) return -EINVAL;
  async_loop *loop = t->fut.loop;
  if (async__loop_forked(loop)) return -ECHILD;
  if ((err = async__task_take_cancel(t))) return err;
  async__sigloop *s;
  if ((err = sig_loop(loop, &s))) return err;
  sig_watch *w = &s->w[signo];
  if (!w->watched && (err = watch_start(s, signo, 0))) return err;
  /* Delivered, the pipe not read yet: shared with the tasks waiting. */
  int got = sig_collect(s, signo);
  sig_schedule(s);
  if (got) return got;
  if (w->pending) {
    int n = w->pending > INT32_MAX ? INT32_MAX : (int)w->pending;
    w->pending = 0;
    return n;
  }
  if (!(timeout > 0)) return -ETIMEDOUT;
  int64_t deadline = ASYNC__NO_DEADLINE;
  if (timeout < ASYNC_NO_TIMEOUT)
    deadline = async__deadline_after(async__loop_now(loop), timeout);
  sig_waiter sw = {.t = t};
  async__list_push(&w->waiters, &sw.link);
  t->wait_obj = &sw;
  err = async__task_park_until(loop, t, sig_unlink, NULL, "signal", deadline);
  t->wait_obj = NULL;
  return err;
}

/* }==== */
