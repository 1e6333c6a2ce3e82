/* SPDX-License-Identifier: MIT */
/* The thread pool: blocking functions run on threads while their task is
 * parked, in lanes of separate bounds (libuv's one shared pool let slow
 * DNS starve file I/O: its issues #28 and #660).
 *
 * What crosses threads is the pool's lock and the wake-up fd. Under the
 * lock: the lanes' queues and counts, every job's state, the done list,
 * `stopping`. A worker takes a job from its lane's queue (QUEUED ->
 * RUNNING), runs it unlocked, then puts it on the done list (DONE) and
 * writes the wake-up fd if that list was empty. The loop's watcher on the
 * fd takes the whole list and hands each job to its task, or disposes of
 * it when its task gave it up. Everything else (task, active, the
 * watcher, the thread handles) is the loop thread's alone.
 *
 * In a child process (fork), the threads are gone: the running jobs never
 * complete there, and the lock and conditions may have been held or
 * waited on by the parent's threads at the fork. pool_fork makes them
 * anew and forgets the threads, and (for async_loop_fork) hands the
 * running jobs' tasks -ECHILD, and then starts threads for the queued
 * jobs. */
#include "io.h"

#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#if defined(__linux__)
#include <sys/eventfd.h>
#endif

enum { JOB_QUEUED = 1, JOB_RUNNING, JOB_DONE, JOB_DROPPED };

typedef struct pool pool;
typedef struct pool_lane pool_lane;

/* A job, from submission until its task collected it or it was disposed.
 * Its task owns it while `task` is set; once the task gave up (cancelled,
 * timed out, killed: task NULL) the pool owns a job that runs or is done,
 * and disposes of it when it is collected from the done list. A dropped
 * job stays its task's, to dispose of. */
typedef struct pool_job {
  async__list link; /* lane queue while QUEUED, pool's running list while
                       RUNNING, done list while DONE */
  async_fn fn;
  void *arg;
  void *result;
  async_dispose_fn dispose;
  async__task *task;
  pool_lane *lane;
  int state;
} pool_job;

struct pool_lane {
  pool *pool;
  async__list queue; /* pool_job, QUEUED, in submission order */
  pthread_cond_t cond;
  unsigned max;       /* threads at most; fixed once one started */
  unsigned nthreads;  /* started */
  unsigned nqueued;   /* jobs in queue */
  unsigned nrunning;  /* jobs taken by a thread and not done */
  pthread_t *threads; /* [max], made with the first thread */
};

struct pool {
  async__ext ext; /* on the loop, key &pool_key */
  pthread_mutex_t lock;
  pool_lane lanes[2];
  async__list done;    /* pool_job, DONE, in completion order */
  async__list running; /* pool_job, RUNNING */
  int stopping;
  int wake_fd[2]; /* eventfd in both, or a pipe */
  async__io io;   /* on wake_fd[0], started while active > 0 */
  size_t active;  /* jobs submitted, neither collected nor dropped */
  unsigned gen;   /* the fork generation its threads and lock are of */
};

static const char pool_key;

static void job_dispose(pool_job *j, int ran) {
  if (j->dispose) j->dispose(j->arg, ran ? j->result : NULL, ran);
  free(j);
}

/* {==== Worker threads =================================================== */

static void *worker_main(void *p) {
  pool_lane *ln = p;
  pool *pl = ln->pool;
#if defined(__GLIBC__)
  /* For top and gdb; at most 15 characters. */
  pthread_setname_np(pthread_self(), ln == &pl->lanes[ASYNC_POOL_DNS]
                                         ? "async-dns"
                                         : "async-pool");
#endif
  pthread_mutex_lock(&pl->lock);
  for (;;) {
    while (async__list_empty(&ln->queue) && !pl->stopping)
      pthread_cond_wait(&ln->cond, &pl->lock);
    if (pl->stopping) break;
    pool_job *j = async__list_item(ln->queue.next, pool_job, link);
    async__list_remove(&j->link);
    async__list_push(&pl->running, &j->link);
    ln->nqueued--;
    ln->nrunning++;
    j->state = JOB_RUNNING;
    pthread_mutex_unlock(&pl->lock);
    void *result = j->fn(j->arg);
    pthread_mutex_lock(&pl->lock);
    async__list_remove(&j->link);
    j->result = result;
    j->state = JOB_DONE;
    ln->nrunning--;
    int first = async__list_empty(&pl->done);
    async__list_push(&pl->done, &j->link);
    if (first) {
      uint64_t one = 1;
      ssize_t r = write(pl->wake_fd[1], &one, sizeof one);
      (void)r; /* a full pipe or counter wakes the loop already */
    }
  }
  pthread_mutex_unlock(&pl->lock);
  return NULL;
}

/* Starts one more thread in ln, with every signal blocked: they are the
 * loop's to handle. Called with the lock held. */
static int worker_start(pool_lane *ln) {
  if (!ln->threads) {
    ln->threads = calloc(ln->max, sizeof *ln->threads);
    if (!ln->threads) return -ENOMEM;
  }
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  int err = pthread_create(&ln->threads[ln->nthreads], NULL, worker_main, ln);
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  if (err) return -err;
  ln->nthreads++;
  return 0;
}

/* }==== */

/* {==== The loop's side ================================================== */

static void watch_stop(async_loop *loop, pool *p) {
  if (--p->active == 0) async__io_stop(loop, &p->io);
}

/* The wake-up fd's watcher: collects the jobs done. The fd is read before
 * the list is taken, so a job pushed meanwhile was either taken or wrote
 * the fd again: no completion is left without a wake-up. */
static void pool_ready(async_loop *loop, async__io *w, unsigned revents) {
  pool *p = async__container_of(w, pool, io);
  (void)revents;
  uint64_t buf[8];
#if defined(__linux__)
  /* One read resets an eventfd's counter. */
  ssize_t r = read(p->wake_fd[0], buf, sizeof buf[0]);
  (void)r;
#else
  while (read(p->wake_fd[0], buf, sizeof buf) > 0) {
  }
#endif
  async__list done;
  pthread_mutex_lock(&p->lock);
  async__list_move(&p->done, &done);
  pthread_mutex_unlock(&p->lock);
  while (!async__list_empty(&done)) {
    pool_job *j = async__list_item(done.next, pool_job, link);
    async__list_remove(&j->link);
    watch_stop(loop, p);
    if (j->task)
      async__task_wake(j->task, 0);
    else
      job_dispose(j, 1);
  }
}

/* The park's unlink: the task leaves the job (a cancellation, its
 * deadline, or the loop's close killing it). A queued job is dropped; a
 * running or done one passes to the pool. t->wait_obj stays set while the
 * task owns the job: after a drop, for async_pool_run to dispose of it. */
static void job_unlink(async__task *t) {
  pool_job *j = t->wait_obj;
  if (t->state != ASYNC__T_SUSPENDED) {
    /* Killed at close once woken, before its park returned: the job is
     * its own when it was handed over (wake 0) or dropped; nobody will
     * collect it now. */
    if (j) job_dispose(j, t->wake == 0);
    t->wait_obj = NULL;
    return;
  }
  pool *p = j->lane->pool;
  int dropped = 0;
  pthread_mutex_lock(&p->lock);
  if (j->state == JOB_QUEUED) {
    async__list_remove(&j->link);
    j->lane->nqueued--;
    j->state = JOB_DROPPED;
    dropped = 1;
  }
  pthread_mutex_unlock(&p->lock);
  j->task = NULL;
  if (!dropped) {
    t->wait_obj = NULL; /* the pool's now: it may free it any time */
    return;
  }
  watch_stop(t->fut.loop, p);
  if (t->killed) {
    job_dispose(j, 0);
    t->wait_obj = NULL;
  }
}

/* At loop close, after every task has ended: no job has a task left, and
 * none is queued (their tasks dropped them). Waits for the running ones,
 * joins the threads, and disposes of what they left. */
static void pool_close(async_loop *loop, async__ext *e) {
  pool *p = async__container_of(e, pool, ext);
  pthread_mutex_lock(&p->lock);
  p->stopping = 1;
  for (int i = 0; i < 2; i++) pthread_cond_broadcast(&p->lanes[i].cond);
  pthread_mutex_unlock(&p->lock);
  for (int i = 0; i < 2; i++) {
    pool_lane *ln = &p->lanes[i];
    for (unsigned k = 0; k < ln->nthreads; k++)
      pthread_join(ln->threads[k], NULL);
    while (!async__list_empty(&ln->queue)) {
      pool_job *j = async__list_item(ln->queue.next, pool_job, link);
      async__list_remove(&j->link);
      job_dispose(j, 0);
    }
    free(ln->threads);
    pthread_cond_destroy(&ln->cond);
  }
  while (!async__list_empty(&p->done)) {
    pool_job *j = async__list_item(p->done.next, pool_job, link);
    async__list_remove(&j->link);
    job_dispose(j, 1);
  }
  /* Left only in a child process, by threads of the parent's. */
  while (!async__list_empty(&p->running)) {
    pool_job *j = async__list_item(p->running.next, pool_job, link);
    async__list_remove(&j->link);
    job_dispose(j, 0);
  }
  async__io_stop(loop, &p->io);
  close(p->wake_fd[0]);
  if (p->wake_fd[1] != p->wake_fd[0]) close(p->wake_fd[1]);
  pthread_mutex_destroy(&p->lock);
  free(p);
}

static int wake_open(int fd[2]) {
#if defined(__linux__)
  fd[0] = fd[1] = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (fd[0] < 0) return -errno;
#else
  if (pipe(fd) < 0) return -errno;
  for (int i = 0; i < 2; i++) {
    fcntl(fd[i], F_SETFL, O_NONBLOCK);
    fcntl(fd[i], F_SETFD, FD_CLOEXEC);
  }
#endif
  return 0;
}

static void cond_reset(pthread_cond_t *c) {
  memset(c, 0, sizeof *c);
  pthread_cond_init(c, NULL);
}

/* A job that cannot complete in this child: its task is woken with
 * -ECHILD and disposes of it (async_pool_run), or without a task the pool
 * does, now. Either way fn did not run here: ran = 0. */
static void job_orphan(async_loop *loop, pool *p, pool_job *j) {
  async__list_remove(&j->link);
  j->state = JOB_DROPPED;
  watch_stop(loop, p);
  if (j->task)
    async__task_wake(j->task, -ECHILD);
  else
    job_dispose(j, 0);
}

/* Threads for the jobs queued at the fork, once the loop is the child's;
 * a lane that can start none fails its queued jobs (their queue is then
 * this thread's alone). */
static void pool_restart(async_loop *loop, pool *p) {
  for (int i = 0; i < 2; i++) {
    pool_lane *ln = &p->lanes[i];
    pthread_mutex_lock(&p->lock);
    while (ln->nthreads < ln->nqueued && ln->nthreads < ln->max &&
           worker_start(ln) == 0) {
    }
    unsigned started = ln->nthreads;
    pthread_mutex_unlock(&p->lock);
    while (!started && !async__list_empty(&ln->queue)) {
      ln->nqueued--;
      job_orphan(loop, p, async__list_item(ln->queue.next, pool_job, link));
    }
  }
}

/* The pool's async__ext.fork (see the top of the file). What the parent
 * left is dealt with once per fork: a REMAKE made again after an error
 * finds a lock of the child's own, which it must leave alone. No thread
 * runs until DONE, so the lists are this thread's until then. */
static int pool_fork(async_loop *loop, async__ext *e,
                     enum async__fork_step step) {
  pool *p = async__container_of(e, pool, ext);
  if (step == ASYNC__FORK_DONE) {
    pool_restart(loop, p);
    return 0;
  }
  unsigned gen = atomic_load_explicit(&async__fork_gen, memory_order_relaxed);
  if (p->gen != gen) {
    p->gen = gen;
    async__mutex_reset(&p->lock);
    for (int i = 0; i < 2; i++) {
      pool_lane *ln = &p->lanes[i];
      cond_reset(&ln->cond);
      free(ln->threads);
      ln->threads = NULL;
      ln->nthreads = 0;
      ln->nrunning = 0;
    }
    p->stopping = 0;
  }
  /* For a close, pool_close disposes of them. The watcher is stopped
   * while they go (watch_stop stopping it again does nothing). */
  if (step == ASYNC__FORK_CLOSE) return 0;
  async__io_stop(loop, &p->io);
  while (!async__list_empty(&p->running))
    job_orphan(loop, p, async__list_item(p->running.next, pool_job, link));
  int fd[2];
  int err = wake_open(fd);
  if (err) return err;
  async__fd_release(loop, p->wake_fd[0]);
  close(p->wake_fd[0]);
  if (p->wake_fd[1] != p->wake_fd[0]) close(p->wake_fd[1]);
  p->wake_fd[0] = fd[0];
  p->wake_fd[1] = fd[1];
  p->ext.fd = fd[0];
  async__io_init(&p->io, fd[0], pool_ready);
  if (!async__list_empty(&p->done)) {
    uint64_t one = 1;
    ssize_t r = write(p->wake_fd[1], &one, sizeof one);
    (void)r;
  }
  return p->active ? async__io_start(loop, &p->io, ASYNC__POLL_IN) : 0;
}

/* loop's pool, made on first use (without threads). */
static int pool_get(async_loop *loop, pool **out) {
  async__ext *e = async__loop_ext(loop, &pool_key);
  if (e) {
    *out = async__container_of(e, pool, ext);
    return 0;
  }
  pool *p = calloc(1, sizeof *p);
  if (!p) return -ENOMEM;
  int err = wake_open(p->wake_fd);
  if (err) goto fail_fd;
  if ((err = -pthread_mutex_init(&p->lock, NULL))) goto fail_lock;
  int i;
  for (i = 0; i < 2; i++) {
    pool_lane *ln = &p->lanes[i];
    if ((err = -pthread_cond_init(&ln->cond, NULL))) goto fail_cond;
    ln->pool = p;
    async__list_init(&ln->queue);
  }
  p->lanes[ASYNC_POOL_WORK].max = ASYNC_POOL_WORK_THREADS;
  p->lanes[ASYNC_POOL_DNS].max = ASYNC_POOL_DNS_THREADS;
  async__list_init(&p->done);
  async__list_init(&p->running);
  p->gen = atomic_load_explicit(&async__fork_gen, memory_order_relaxed);
  async__io_init(&p->io, p->wake_fd[0], pool_ready);
  p->ext.key = &pool_key;
  p->ext.close = pool_close;
  p->ext.fork = pool_fork;
  p->ext.fd = p->wake_fd[0]; /* a pipe's write end is never polled */
  async__loop_ext_add(loop, &p->ext);
  *out = p;
  return 0;
fail_cond:
  while (i-- > 0) pthread_cond_destroy(&p->lanes[i].cond);
  pthread_mutex_destroy(&p->lock);
fail_lock:
  close(p->wake_fd[0]);
  if (p->wake_fd[1] != p->wake_fd[0]) close(p->wake_fd[1]);
fail_fd:
  free(p);
  return err;
}

/* Queues j on its lane, starting a thread when every thread of the lane
 * has a job already. Fails only when the lane cannot run it at all. */
static int pool_submit(async_loop *loop, pool *p, pool_job *j) {
  int err;
  if (p->active == 0 &&
      (err = async__io_start(loop, &p->io, ASYNC__POLL_IN)) < 0)
    return err;
  p->active++;
  pool_lane *ln = j->lane;
  pthread_mutex_lock(&p->lock);
  err = 0;
  if (ln->nqueued + ln->nrunning >= ln->nthreads && ln->nthreads < ln->max)
    err = worker_start(ln);
  if (ln->nthreads == 0) {
    pthread_mutex_unlock(&p->lock);
    watch_stop(loop, p);
    return err == -ENOMEM ? err : -EAGAIN;
  }
  /* Another thread could not start: the ones there will take it. */
  j->state = JOB_QUEUED;
  async__list_push(&ln->queue, &j->link);
  ln->nqueued++;
  pthread_cond_signal(&ln->cond);
  pthread_mutex_unlock(&p->lock);
  return 0;
}

/* }==== */

/* {==== Public calls ===================================================== */

int async_pool_set_max(async_loop *loop, async_pool_lane lane,
                       unsigned max_threads) {
  if (!async__loop_ok(loop) || (unsigned)lane > ASYNC_POOL_DNS ||
      max_threads == 0 || max_threads > ASYNC_POOL_MAX_THREADS)
    return -EINVAL;
  if (loop->closed || loop->closing) return -ESHUTDOWN;
  pool *p;
  int err = pool_get(loop, &p);
  if (err) return err;
  pool_lane *ln = &p->lanes[lane];
  if (ln->nthreads) return -EBUSY;
  free(ln->threads); /* made by a start that failed; sized by max */
  ln->threads = NULL;
  ln->max = max_threads;
  return 0;
}

int async_pool_threads(const async_loop *loop, async_pool_lane lane) {
  if (!async__loop_ok(loop) || (unsigned)lane > ASYNC_POOL_DNS) return -EINVAL;
  async__ext *e = async__loop_ext(loop, &pool_key);
  if (!e) return 0;
  /* Written by this thread only (worker_start). */
  return (int)async__container_of(e, pool, ext)->lanes[lane].nthreads;
}

int async_pool_run(async_pool_lane lane, async_fn fn, void *arg, void **result,
                   async_dispose_fn dispose, double timeout) {
  if (result) *result = NULL;
  int err = 0;
  async__task *t = async__task_require(&err);
  if (!t) return err;
  if (!fn || (unsigned)lane > ASYNC_POOL_DNS || async__isnan(timeout))
    return -EINVAL;
  /* The pool's threads are the parent's, not here. */
  if (async__loop_forked(t->fut.loop)) return -ECHILD;
  if (!(err = async__task_take_cancel(t)) && !(timeout > 0)) err = -ETIMEDOUT;
  if (err) {
    if (dispose) dispose(arg, NULL, 0);
    return err;
  }
  async_loop *loop = t->fut.loop;
  pool *p;
  if ((err = pool_get(loop, &p))) return err;
  pool_job *j = malloc(sizeof *j);
  if (!j) return -ENOMEM;
  memset(j, 0, sizeof *j);
  j->fn = fn;
  j->arg = arg;
  j->dispose = dispose;
  j->task = t;
  j->lane = &p->lanes[lane];
  if ((err = pool_submit(loop, p, j))) {
    free(j);
    return err;
  }
  int64_t deadline = ASYNC__NO_DEADLINE;
  if (timeout != ASYNC_NO_TIMEOUT)
    deadline = async__deadline_after(async__loop_now(loop), timeout);
  t->wait_obj = j;
  err = async__task_park_until(loop, t, job_unlink, NULL, "thread", deadline);
  pool_job *mine = t->wait_obj; /* NULL: the pool disposes of it */
  t->wait_obj = NULL;
  if (err == 0) {
    /* Done, then cancelled before this task ran: the cancellation wins,
     * and the result it will not return is disposed of. */
    if ((err = async__task_take_cancel(t))) {
      job_dispose(j, 1);
      return err;
    }
    if (result) *result = j->result;
    free(j);
    return 0;
  }
  if (mine) job_dispose(mine, 0);
  return err;
}

int async_to_thread(async_fn fn, void *arg, void **result,
                    async_dispose_fn dispose) {
  return async_pool_run(ASYNC_POOL_WORK, fn, arg, result, dispose,
                        ASYNC_NO_TIMEOUT);
}

/* }==== */
