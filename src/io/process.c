/* SPDX-License-Identifier: MIT */
/* Child processes: spawn, reap, signal, communicate.
 *
 * Spawning is posix_spawnp. glibc makes the child with clone(CLONE_VM |
 * CLONE_VFORK), so the parent's page tables are not copied (the cost of
 * fork grows with the parent; this does not), and it reports an exec that
 * failed through its return value, after reaping that child itself: the
 * cloexec-pipe protocol, done by the C library (in the memory it shares
 * with the child: under valgrind and qemu-user, whose clone is a fork, the
 * error is lost and the child exits 127). Its file actions do the
 * dup2s, the /dev/null opens, the chdir and closefrom(3) (close_range
 * where the kernel has it, else a walk of /proc/self/fd); its attributes
 * reset every signal to SIG_DFL and empty the mask.
 *
 * Reaping: every child not yet reaped is on its loop's list (the proc_ext
 * hung on the loop) with a watcher on its pidfd, started from the spawn to
 * the reap, whoever waits: so the reap happens in the poll phase as soon
 * as the child exits. Without pidfds (kernels before 5.3) a SIGCHLD
 * handler writes a byte to a pipe of every loop that has children, and
 * that loop asks waitpid(pid, WNOHANG) for each of its own. A freed object
 * whose child runs stays on the list, marked orphan, and is freed by its
 * reap. At loop close the children left are handed to a detached thread
 * that waits for them.
 *
 * fork: in a child process the loop's children are the parent's, which
 * only the parent can wait for. The loop's fork hook takes them off its
 * list as FOREIGN (their pidfds closed, their waiters woken with -ECHILD),
 * and gives up its SIGCHLD pipe, which is the parent's too. */
#include "io.h"

#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define PROC_MAGIC 0x50524f43u /* "PROC" */

/* The file actions used are glibc's: addchdir_np (2.29) and
 * addclosefrom_np (2.34). Elsewhere spawning is not built yet: -ENOSYS. */
#if defined(__GLIBC__) &&                                                      \
    (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 34))
#define PROC_SPAWN 1
#else
#define PROC_SPAWN 0
#endif

int async__process_no_pidfd;

typedef struct proc_ext {
  async__ext ext;
  async__list children; /* async_process, not reaped */
  int sig_slot;         /* in sig_fds, or -1: no SIGCHLD pipe */
  int sigpipe[2];
  async__io sio; /* on sigpipe[0] */
} proc_ext;

static const char proc_key;

enum { P_RUNNING = 1, P_REAPED, P_DETACHED, P_FOREIGN };

/* - RUNNING: on px->children; pio started on pidfd (or pidfd -1 and the
 *   loop's SIGCHLD pipe stands for it).
 * - REAPED: code is the returncode, pidfd closed, off every list.
 * - DETACHED: the loop closed first; its reaper thread owns the child.
 * - FOREIGN: seen from a process forked since the spawn: the parent's
 *   child; pidfd closed, off every list.
 * orphan: the user freed it; the reap frees it. waiters: proc_waiter. */
struct async_process {
  uint32_t magic;
  uint8_t state;
  uint8_t orphan;
  pid_t pid;
  int pidfd;
  int code;
  async_loop *loop;
  async_stream *s[3];
  async__io pio;
  async__list link;
  async__list waiters;
  unsigned parked; /* tasks in a wait, woken or not */
};

static int proc_ok(const async_process *p) {
  return p && p->magic == PROC_MAGIC;
}

/* {==== SIGCHLD, where there are no pidfds ==============================
 * The handler writes to the pipe of each loop registered in sig_fds. A
 * loop unregisters, then waits until no handler runs before it closes its
 * pipe, so the handler never writes to a number reused for another file. */

#define SIG_SLOTS 64

static atomic_int sig_fds[SIG_SLOTS]; /* write end + 1; 0: free */
static atomic_int sig_busy;
static pthread_mutex_t sig_lock = PTHREAD_MUTEX_INITIALIZER;
static int sig_installed;
static struct sigaction sig_prev;

/* In every child of fork(): the lock and the count may have been held by
 * threads that are not there, and the pipes in the slots are the
 * parent's loops', which a SIGCHLD of the child's must not wake. A loop
 * of the child's own takes a slot afresh (sig_stop frees only its own). */
static void sig_atfork_child(void) {
  async__mutex_reset(&sig_lock);
  atomic_store(&sig_busy, 0);
  for (int i = 0; i < SIG_SLOTS; i++) atomic_store(&sig_fds[i], 0);
}

static pthread_once_t sig_fork_once = PTHREAD_ONCE_INIT;
static int sig_fork_err;

static void sig_fork_register(void) {
  sig_fork_err = pthread_atfork(NULL, NULL, sig_atfork_child);
}

static void on_sigchld(int sig, siginfo_t *si, void *uc) {
  int saved = errno;
  atomic_fetch_add(&sig_busy, 1);
  for (int i = 0; i < SIG_SLOTS; i++) {
    int fd = atomic_load(&sig_fds[i]) - 1;
    if (fd >= 0) (void)!write(fd, "", 1);
  }
  atomic_fetch_sub(&sig_busy, 1);
  /* Someone else's handler still hears of its children. */
  if (sig_prev.sa_flags & SA_SIGINFO) {
    if (sig_prev.sa_sigaction) sig_prev.sa_sigaction(sig, si, uc);
  } else if (sig_prev.sa_handler != SIG_DFL && sig_prev.sa_handler != SIG_IGN) {
    sig_prev.sa_handler(sig);
  }
  errno = saved;
}

static int reap(async_process *p);

static void sio_cb(async_loop *loop, async__io *w, unsigned revents) {
  (void)loop;
  (void)revents;
  proc_ext *px = async__container_of(w, proc_ext, sio);
  char buf[64];
  while (read(px->sigpipe[0], buf, sizeof buf) > 0) {
  }
  async__list *n = px->children.next;
  while (n != &px->children) {
    async__list *next = n->next; /* reap() may free p */
    async_process *p = async__container_of(n, async_process, link);
    if (p->pidfd < 0) reap(p);
    n = next;
  }
}

static int sig_start(async_loop *loop, proc_ext *px) {
  if (px->sig_slot >= 0) return 0;
  pthread_once(&sig_fork_once, sig_fork_register);
  if (sig_fork_err) return -sig_fork_err;
  if (pipe2(px->sigpipe, O_CLOEXEC | O_NONBLOCK)) return -errno;
  int err = -EAGAIN;
  pthread_mutex_lock(&sig_lock);
  for (int i = 0; i < SIG_SLOTS; i++)
    if (atomic_load(&sig_fds[i]) == 0) {
      atomic_store(&sig_fds[i], px->sigpipe[1] + 1);
      px->sig_slot = i;
      err = 0;
      break;
    }
  if (!err && !sig_installed) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_sigchld;
    sa.sa_flags = SA_SIGINFO | SA_RESTART | SA_NOCLDSTOP;
    sigemptyset(&sa.sa_mask);
    if (sigaction(SIGCHLD, &sa, &sig_prev) == 0)
      sig_installed = 1;
    else
      err = -errno;
  }
  pthread_mutex_unlock(&sig_lock);
  if (!err) {
    async__io_init(&px->sio, px->sigpipe[0], sio_cb);
    err = async__io_start(loop, &px->sio, ASYNC__POLL_IN);
  }
  if (err) {
    if (px->sig_slot >= 0) atomic_store(&sig_fds[px->sig_slot], 0);
    px->sig_slot = -1;
    close(px->sigpipe[0]);
    close(px->sigpipe[1]);
  }
  return err;
}

static void sig_stop(proc_ext *px) {
  if (px->sig_slot < 0) return;
  /* Only if the slot is still this pipe's: in a child, sig_atfork_child
   * freed it, and another loop may have it now. */
  int mine = px->sigpipe[1] + 1;
  atomic_compare_exchange_strong(&sig_fds[px->sig_slot], &mine, 0);
  while (atomic_load(&sig_busy)) sched_yield();
  close(px->sigpipe[0]);
  close(px->sigpipe[1]);
  px->sig_slot = -1;
}

/* }==== */

/* {==== Reaping ========================================================= */

typedef struct proc_waiter {
  async__list link;
  async__task *t;
} proc_waiter;

static void wait_unlink(async__task *t) {
  if (t->state == ASYNC__T_SUSPENDED) {
    proc_waiter *w = t->wait_obj;
    async__list_remove(&w->link);
  }
}

static int status_code(int st) {
  if (WIFEXITED(st)) return WEXITSTATUS(st);
  if (WIFSIGNALED(st)) return -WTERMSIG(st);
  return 255;
}

/* Reaps p if its child has exited. Returns 1 if it did (p is freed if it
 * was an orphan), 0 if the child still runs. */
static int reap(async_process *p) {
  int st = 0;
  pid_t r;
  do r = waitpid(p->pid, &st, WNOHANG);
  while (r < 0 && errno == EINTR);
  if (r == 0) return 0;
  /* ECHILD: someone reaped it behind our back (waitpid(-1), SIGCHLD set
   * to SIG_IGN): its status is lost, 255 as asyncio reports it. */
  p->code = r < 0 ? 255 : status_code(st);
  p->state = P_REAPED;
  async__list_remove(&p->link);
  if (p->pidfd >= 0) {
    /* Not async_fd_forget: this may run in pio's callback. pio is the
     * only watcher of the pidfd, and a closed fd leaves epoll by itself
     * and poll's set on its first POLLNVAL. */
    async__io_stop(p->loop, &p->pio);
    close(p->pidfd);
    p->pidfd = -1;
  }
  while (!async__list_empty(&p->waiters)) {
    proc_waiter *w = async__container_of(p->waiters.next, proc_waiter, link);
    async__list_remove(&w->link);
    async__task_wake(w->t, 0);
  }
  if (p->orphan) {
    p->magic = ASYNC__MAGIC_DEAD;
    free(p);
  }
  return 1;
}

static void pio_cb(async_loop *loop, async__io *w, unsigned revents) {
  (void)loop;
  (void)revents;
  reap(async__container_of(w, async_process, pio));
}

/* A child that could not be set up: it is killed and reaped now, which
 * SIGKILL makes prompt. */
static void kill_reap(pid_t pid) {
  kill(pid, SIGKILL);
  while (waitpid(pid, NULL, 0) < 0 && errno == EINTR) {
  }
}

typedef struct reap_job {
  size_t n;
  pid_t *pid;
  int *pidfd; /* -1: no pidfd, a blocking waitpid */
} reap_job;

/* The reaper of a closed loop's children: polls their pidfds and reaps
 * each as it exits; the ones without a pidfd it waits for in turn. */
static void *reaper_main(void *arg) {
  reap_job *j = arg;
  struct pollfd *pf = malloc(j->n * sizeof *pf);
  for (;;) {
    size_t m = 0;
    for (size_t i = 0; i < j->n; i++)
      if (j->pidfd[i] >= 0) {
        if (pf) pf[m] = (struct pollfd){.fd = j->pidfd[i], .events = POLLIN};
        m++;
      }
    if (m == 0) break;
    if (pf) poll(pf, m, -1);
    for (size_t i = 0, k = 0; i < j->n; i++) {
      if (j->pidfd[i] < 0) continue;
      /* Without memory for the poll, wait in turn, as without pidfds. */
      int ready = !pf || pf[k++].revents;
      if (!ready) continue;
      pid_t r;
      do r = waitpid(j->pid[i], NULL, pf ? WNOHANG : 0);
      while (r < 0 && errno == EINTR);
      if (r != 0) {
        close(j->pidfd[i]);
        j->pidfd[i] = -1;
        j->pid[i] = 0;
      }
    }
  }
  for (size_t i = 0; i < j->n; i++)
    if (j->pid[i] > 0)
      while (waitpid(j->pid[i], NULL, 0) < 0 && errno == EINTR) {
      }
  free(pf);
  free(j->pid);
  free(j->pidfd);
  free(j);
  return NULL;
}

static int reaper_start(reap_job *j) {
  pthread_attr_t at;
  pthread_t th;
  sigset_t all, old;
  if (pthread_attr_init(&at)) return -ENOMEM;
  pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
  pthread_attr_setstacksize(&at, 64 * 1024);
  /* It inherits a full mask: no signal meant for the program lands on it. */
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  int rc = pthread_create(&th, &at, reaper_main, j);
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  pthread_attr_destroy(&at);
  return -rc;
}

/* The loop closes: every task has ended, so no one waits. */
static void ext_close(async_loop *loop, async__ext *e) {
  proc_ext *px = async__container_of(e, proc_ext, ext);
  reap_job *j = calloc(1, sizeof *j);
  size_t cap = 0;
  for (async__list *n = px->children.next; n != &px->children; n = n->next)
    cap++;
  if (j && cap) {
    j->pid = malloc(cap * sizeof *j->pid);
    j->pidfd = malloc(cap * sizeof *j->pidfd);
  }
  while (!async__list_empty(&px->children)) {
    async_process *p =
        async__container_of(px->children.next, async_process, link);
    if (reap(p)) continue;
    async__list_remove(&p->link);
    async__io_stop(loop, &p->pio);
    if (j && j->pid && j->pidfd) {
      j->pid[j->n] = p->pid;
      j->pidfd[j->n++] = p->pidfd;
    } else {
      kill_reap(p->pid);
      if (p->pidfd >= 0) close(p->pidfd);
    }
    p->pidfd = -1;
    p->state = P_DETACHED;
    if (p->orphan) {
      p->magic = ASYNC__MAGIC_DEAD;
      free(p);
    }
  }
  if (j && j->n && reaper_start(j)) {
    for (size_t i = 0; i < j->n; i++) {
      kill_reap(j->pid[i]);
      if (j->pidfd[i] >= 0) close(j->pidfd[i]);
    }
    j->n = 0;
  }
  if (j && !j->n) {
    free(j->pid);
    free(j->pidfd);
    free(j);
  }
  if (px->sig_slot >= 0) async__io_stop(loop, &px->sio); /* px goes */
  sig_stop(px);
  free(px);
}

/* The async__ext.fork of the loop's record, the same for a close and for
 * async_loop_fork: see the top of the file. */
static int ext_fork(async_loop *loop, async__ext *e,
                    enum async__fork_step step) {
  if (step == ASYNC__FORK_DONE) return 0;
  proc_ext *px = async__container_of(e, proc_ext, ext);
  while (!async__list_empty(&px->children)) {
    async_process *p =
        async__container_of(px->children.next, async_process, link);
    async__list_remove(&p->link);
    p->state = P_FOREIGN;
    if (p->pidfd >= 0) {
      async__io_stop(loop, &p->pio);
      async__fd_release(loop, p->pidfd);
      close(p->pidfd);
      p->pidfd = -1;
    }
    while (!async__list_empty(&p->waiters)) {
      proc_waiter *w = async__container_of(p->waiters.next, proc_waiter, link);
      async__list_remove(&w->link);
      async__task_wake(w->t, -ECHILD);
    }
    if (p->orphan) {
      p->magic = ASYNC__MAGIC_DEAD;
      free(p);
    }
  }
  if (px->sig_slot >= 0) {
    async__io_stop(loop, &px->sio);
    async__fd_release(loop, px->sigpipe[0]);
    sig_stop(px);
  }
  return 0;
}

static proc_ext *ext_get(async_loop *loop) {
  async__ext *e = async__loop_ext(loop, &proc_key);
  if (e) return async__container_of(e, proc_ext, ext);
  proc_ext *px = calloc(1, sizeof *px);
  if (!px) return NULL;
  px->ext.key = &proc_key;
  px->ext.close = ext_close;
  px->ext.fork = ext_fork;
  px->ext.fd = -1; /* no fd of its own: its pidfds are watched as any */
  px->sig_slot = -1;
  async__list_init(&px->children);
  async__loop_ext_add(loop, &px->ext);
  return px;
}

static int pidfd_get(pid_t pid) {
#ifdef SYS_pidfd_open
  if (!async__process_no_pidfd) {
    int fd = (int)syscall(SYS_pidfd_open, pid, 0);
    return fd >= 0 ? fd : -errno;
  }
#else
  (void)pid;
#endif
  return -ENOSYS;
}

/* }==== */

/* {==== Spawning ======================================================== */

void async_process_options_init(async_process_options *opts) {
  if (!opts) return;
  memset(opts, 0, sizeof *opts);
  opts->size = sizeof *opts;
}

static int opts_ok(const async_process_options *o) {
  if (o->size != sizeof *o) return 0;
  /* Unsigned: a negative value is as unknown as a large one. */
  if ((unsigned)o->in > ASYNC_PROCESS_DEVNULL ||
      (unsigned)o->out > ASYNC_PROCESS_DEVNULL)
    return 0;
  return (unsigned)o->err <= ASYNC_PROCESS_STDOUT;
}

#if PROC_SPAWN
/* A pipe for fd `which` of the child: pair[0] is this side's end, pair[1]
 * the child's, moved above 2 so that no dup2 of the file actions can
 * clobber it before it is used. */
static int make_pipe(int which, int pair[2]) {
  int p[2];
  if (pipe2(p, O_CLOEXEC)) return -errno;
  pair[0] = which == 0 ? p[1] : p[0];
  pair[1] = which == 0 ? p[0] : p[1];
  if (pair[1] < 3) {
    int fd = fcntl(pair[1], F_DUPFD_CLOEXEC, 3);
    int err = -errno;
    close(pair[1]);
    pair[1] = fd;
    if (fd < 0) return err;
  }
  return 0;
}

static int spawn_child(pid_t *pid, const char *const argv[],
                       const async_process_options *o, int pipes[3][2]) {
  posix_spawn_file_actions_t fa;
  posix_spawnattr_t at;
  int rc = posix_spawn_file_actions_init(&fa);
  if (rc) return -rc;
  rc = posix_spawnattr_init(&at);
  if (rc) {
    posix_spawn_file_actions_destroy(&fa);
    return -rc;
  }
  const async_process_stdio mode[3] = {o->in, o->out, o->err};
  for (int i = 0; i < 3 && !rc; i++) {
    if (mode[i] == ASYNC_PROCESS_PIPE)
      rc = posix_spawn_file_actions_adddup2(&fa, pipes[i][1], i);
    else if (mode[i] == ASYNC_PROCESS_DEVNULL)
      rc = posix_spawn_file_actions_addopen(&fa, i, "/dev/null",
                                            i ? O_WRONLY : O_RDONLY, 0);
    else if (mode[i] == ASYNC_PROCESS_STDOUT)
      rc = posix_spawn_file_actions_adddup2(&fa, 1, 2);
  }
  if (!rc && o->cwd) rc = posix_spawn_file_actions_addchdir_np(&fa, o->cwd);
  if (!rc) rc = posix_spawn_file_actions_addclosefrom_np(&fa, 3);
  sigset_t set;
  sigemptyset(&set);
  if (!rc) rc = posix_spawnattr_setsigmask(&at, &set);
  sigfillset(&set);
  if (!rc) rc = posix_spawnattr_setsigdefault(&at, &set);
  if (!rc)
    rc = posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSIGMASK |
                                           POSIX_SPAWN_SETSIGDEF);
  if (!rc)
    rc = posix_spawnp(pid, argv[0], &fa, &at, (char *const *)argv,
                      o->env ? o->env : environ);
  posix_spawnattr_destroy(&at);
  posix_spawn_file_actions_destroy(&fa);
  return -rc;
}

#else
static int make_pipe(int which, int pair[2]) {
  (void)which;
  (void)pair;
  return -ENOSYS;
}

static int spawn_child(pid_t *pid, const char *const argv[],
                       const async_process_options *o, int pipes[3][2]) {
  (void)pid;
  (void)argv;
  (void)o;
  (void)pipes;
  return -ENOSYS;
}
#endif

int async_process_spawn(async_process **out, async_loop *loop,
                        const char *const argv[],
                        const async_process_options *opts) {
  async_process_options defaults;
  if (!opts) {
    async_process_options_init(&defaults);
    opts = &defaults;
  }
  if (!out || !argv || !argv[0] || !argv[0][0] || !async__loop_ok(loop) ||
      !opts_ok(opts))
    return -EINVAL;
  if (loop->closed) return -ESHUTDOWN;
  /* Its child could not be watched: the poller is the parent's. */
  if (async__loop_forked(loop)) return -ECHILD;
  proc_ext *px = ext_get(loop);
  async_process *p = calloc(1, sizeof *p);
  if (!px || !p) {
    free(p);
    return -ENOMEM;
  }
  p->pidfd = -1;
  async__io_init(&p->pio, -1, pio_cb);
  int pipes[3][2] = {{-1, -1}, {-1, -1}, {-1, -1}};
  const async_process_stdio mode[3] = {opts->in, opts->out, opts->err};
  int err = 0;
  for (int i = 0; i < 3 && !err; i++)
    if (mode[i] == ASYNC_PROCESS_PIPE) err = make_pipe(i, pipes[i]);
  pid_t pid = 0;
  if (!err) err = spawn_child(&pid, argv, opts, pipes);
  for (int i = 0; i < 3; i++)
    if (pipes[i][1] >= 0) close(pipes[i][1]);
  if (err) goto fail;

  p->magic = PROC_MAGIC;
  p->state = P_RUNNING;
  p->pid = pid;
  p->loop = loop;
  async__list_init(&p->waiters);
  p->pidfd = pidfd_get(pid);
  if (p->pidfd >= 0) {
    async__io_init(&p->pio, p->pidfd, pio_cb);
    err = async__io_start(loop, &p->pio, ASYNC__POLL_IN);
  } else {
    err = p->pidfd == -ENOSYS ? sig_start(loop, px) : p->pidfd;
    p->pidfd = -1;
  }
  for (int i = 0; i < 3 && !err; i++)
    if (pipes[i][0] >= 0) {
      err = async_stream_open(&p->s[i], loop, pipes[i][0], opts->stream);
      if (!err) pipes[i][0] = -1; /* the stream's now */
    }
  if (err) {
    kill_reap(pid);
    goto fail;
  }
  async__list_push(&px->children, &p->link);
  /* Without a pidfd, a SIGCHLD that came before the list had p is not
   * lost (its byte waits in the pipe), but ask once anyway. */
  if (p->pidfd < 0) reap(p);
  *out = p;
  return 0;

fail:
  for (int i = 0; i < 3; i++) {
    if (pipes[i][0] >= 0) close(pipes[i][0]);
    if (p->s[i]) async_stream_free(p->s[i]);
  }
  if (p->pidfd >= 0) {
    async__io_stop(loop, &p->pio);
    close(p->pidfd);
  }
  free(p);
  return err;
}

/* }==== */

/* {==== Queries, signals, waiting ======================================= */

pid_t async_process_pid(const async_process *p) {
  return proc_ok(p) ? p->pid : -EINVAL;
}

async_stream *async_process_stream(const async_process *p, int fd) {
  if (!proc_ok(p) || fd < 0 || fd > 2) return NULL;
  return p->s[fd];
}

/* Whether p is the parent's child, seen from a process forked since the
 * spawn: FOREIGN, or RUNNING on a loop not yet made the child's own (the
 * loop lives while p runs). */
static int proc_foreign(const async_process *p) {
  return p->state == P_FOREIGN ||
         (p->state == P_RUNNING && async__loop_forked(p->loop));
}

int async_process_returncode(const async_process *p, int *code) {
  if (!proc_ok(p)) return -EINVAL;
  if (proc_foreign(p)) return -ECHILD;
  if (p->state != P_REAPED) return -EAGAIN;
  if (code) *code = p->code;
  return 0;
}

int async_process_send_signal(async_process *p, int sig) {
  if (!proc_ok(p) || sig < 0 || sig >= NSIG) return -EINVAL;
  /* The parent may have reaped it, and its pid named another since. */
  if (proc_foreign(p)) return -ECHILD;
  /* Until the reap the pid is this child's, whether it runs or is a
   * zombie: no other process can have it. */
  if (p->state != P_RUNNING) return -ESRCH;
  return kill(p->pid, sig) ? -errno : 0;
}

int async_process_terminate(async_process *p) {
  return async_process_send_signal(p, SIGTERM);
}

int async_process_kill(async_process *p) {
  return async_process_send_signal(p, SIGKILL);
}

static int wait_until(async_process *p, async__task *t, int *code,
                      int64_t deadline) {
  if (p->state == P_RUNNING) {
    if (deadline != ASYNC__NO_DEADLINE && deadline <= async__loop_now(p->loop))
      return -ETIMEDOUT;
    proc_waiter w = {.t = t};
    async__list_push(&p->waiters, &w.link);
    t->wait_obj = &w;
    /* Counted until it runs again: woken (and so unlinked), it still
     * reads p when it resumes. */
    p->parked++;
    int err = async__task_park_until(p->loop, t, wait_unlink, NULL, "process",
                                     deadline);
    p->parked--;
    t->wait_obj = NULL;
    if (!err) err = async__task_take_cancel(t);
    if (err) return err;
  }
  if (p->state != P_REAPED) return -ESHUTDOWN;
  if (code) *code = p->code;
  return 0;
}

static async__task *proc_enter(const async_process *p, double timeout,
                               int *err) {
  if (!proc_ok(p) || async__isnan(timeout)) {
    *err = -EINVAL;
    return NULL;
  }
  async__task *t = async__task_require(err);
  if (!t) return NULL;
  if (t->fut.loop != p->loop) {
    *err = -EXDEV;
    return NULL;
  }
  if (proc_foreign(p)) {
    *err = -ECHILD;
    return NULL;
  }
  if ((*err = async__task_take_cancel(t))) return NULL;
  return t;
}

int async_process_wait(async_process *p, int *code, double timeout) {
  int err;
  async__task *t = proc_enter(p, timeout, &err);
  if (!t) return err;
  return wait_until(p, t, code, async__io_deadline(p->loop, timeout));
}

/* }==== */

/* {==== Communicate =====================================================
 * One task moves all three pipes: it writes and reads what each fd takes
 * without waiting, then parks once on the fds still open (up to three
 * watchers), woken by the first that is ready. */

typedef struct comm_watch {
  async__io io;
  async__task *t;
} comm_watch;

typedef struct comm {
  comm_watch w[3];
} comm;

static void comm_ready(async_loop *loop, async__io *io, unsigned revents) {
  (void)revents;
  comm_watch *w = async__container_of(io, comm_watch, io);
  async__io_stop(loop, io);
  if (w->t->state == ASYNC__T_SUSPENDED) async__task_wake(w->t, 1);
}

/* Stops every watcher, in any state: each stop is idempotent. */
static void comm_unlink(async__task *t) {
  comm *c = t->wait_obj;
  for (int i = 0; i < 3; i++) async__io_stop(t->fut.loop, &c->w[i].io);
}

/* write(2) on a pipe, with the SIGPIPE of a reader gone taken back: the
 * signal is blocked for the call and, if the call made it pending (it was
 * not before), consumed. */
static ssize_t write_nosig(int fd, const void *buf, size_t n) {
  sigset_t pipe_set, old, pending;
  sigemptyset(&pipe_set);
  sigaddset(&pipe_set, SIGPIPE);
  sigpending(&pending);
  int was_pending = sigismember(&pending, SIGPIPE);
  pthread_sigmask(SIG_BLOCK, &pipe_set, &old);
  ssize_t r;
  do r = write(fd, buf, n);
  while (r < 0 && errno == EINTR);
  int saved = errno;
  if (r < 0 && saved == EPIPE && !was_pending) {
    struct timespec zero = {0, 0};
    while (sigtimedwait(&pipe_set, NULL, &zero) < 0 && errno == EINTR) {
    }
  }
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  errno = saved;
  return r;
}

typedef struct comm_buf {
  char *data;
  size_t len, cap;
} comm_buf;

/* Reads what s has without waiting. Returns 1 at end of stream, 0 when it
 * would wait, or an error. */
static int comm_read(async_stream *s, comm_buf *b) {
  for (;;) {
    if (b->cap - b->len < 4096) {
      size_t cap = b->cap ? b->cap * 2 : 16384;
      char *d = realloc(b->data, cap);
      if (!d) return -ENOMEM;
      b->data = d;
      b->cap = cap;
    }
    ssize_t r = async_stream_read(s, b->data + b->len, b->cap - b->len - 1, 0);
    if (r > 0)
      b->len += (size_t)r;
    else if (r == 0)
      return 1;
    else
      return r == -ETIMEDOUT ? 0 : (int)r;
  }
}

int async_process_communicate(async_process *p, const void *input, size_t n,
                              char **out_data, size_t *out_len, char **err_data,
                              size_t *err_len, int *code, double timeout) {
  int err;
  async__task *t = proc_enter(p, timeout, &err);
  if (!t) return err;
  async_stream *in = p->s[0];
  async_stream *rd[2] = {out_data ? p->s[1] : NULL, err_data ? p->s[2] : NULL};
  if (n > 0 && (!in || !input)) return -EINVAL;
  if (in && async_stream_write_buffered(in) > 0) return -EBUSY;
  int64_t deadline = async__io_deadline(p->loop, timeout);
  comm_buf b[2] = {{0}};
  int done[3] = {!in, !rd[0], !rd[1]};
  const char *ip = input;
  comm c;
  for (int i = 0; i < 3; i++) {
    c.w[i].t = t;
    async__io_init(&c.w[i].io, -1, comm_ready);
  }
  for (;;) {
    unsigned want[3] = {0, 0, 0};
    while (!done[0]) {
      if (n == 0) {
        async_stream_close(in); /* nothing buffered: the fd goes now */
        done[0] = 1;
        break;
      }
      ssize_t r = write_nosig(async_stream_fd(in), ip, n);
      if (r > 0) {
        ip += r;
        n -= (size_t)r;
      } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
        want[0] = ASYNC__POLL_OUT;
        break;
      } else if (errno == EPIPE) {
        n = 0; /* the child stopped reading: the rest is not wanted */
      } else {
        err = -errno;
        goto out;
      }
    }
    for (int i = 0; i < 2; i++)
      if (!done[i + 1]) {
        err = comm_read(rd[i], &b[i]);
        if (err < 0) goto out;
        done[i + 1] = err;
        if (!err) want[i + 1] = ASYNC__POLL_IN;
      }
    if (done[0] && done[1] && done[2]) break;
    if (deadline != ASYNC__NO_DEADLINE &&
        deadline <= async__loop_now(p->loop)) {
      err = -ETIMEDOUT;
      goto out;
    }
    for (int i = 0; i < 3 && !err; i++)
      if (want[i]) {
        async_stream *s = i ? rd[i - 1] : in;
        c.w[i].io.fd = async_stream_fd(s);
        err = async__io_start(p->loop, &c.w[i].io, want[i]);
      }
    if (!err) {
      t->wait_obj = &c;
      err = async__task_park_until(p->loop, t, comm_unlink, NULL, "process",
                                   deadline);
      t->wait_obj = NULL;
    }
    for (int i = 0; i < 3; i++) async__io_stop(p->loop, &c.w[i].io);
    if (err > 0) err = async__task_take_cancel(t);
    if (err < 0) goto out;
  }
  err = wait_until(p, t, code, deadline);
out:
  if (err) {
    free(b[0].data);
    free(b[1].data);
    return err;
  }
  char **data[2] = {out_data, err_data};
  size_t *len[2] = {out_len, err_len};
  for (int i = 0; i < 2; i++) {
    if (!data[i]) continue;
    if (b[i].data) b[i].data[b[i].len] = 0;
    *data[i] = b[i].data;
    if (len[i]) *len[i] = b[i].len;
  }
  return 0;
}

/* }==== */

int async_process_free(async_process *p) {
  if (!proc_ok(p)) return -EINVAL;
  if (p->parked) return -EBUSY;
  int busy = 0;
  for (int i = 0; i < 3; i++)
    if (p->s[i]) {
      if (async_stream_free(p->s[i]) == -EBUSY)
        busy = 1;
      else
        p->s[i] = NULL;
    }
  if (busy) return -EBUSY;
  if (p->state == P_RUNNING) {
    p->orphan = 1; /* freed by its reap */
    p->magic = 0;
    return 0;
  }
  p->magic = ASYNC__MAGIC_DEAD;
  free(p);
  return 0;
}
