/* SPDX-License-Identifier: MIT */
/* async_bench: the library's side of the peer benchmarks.
 *
 *   async_bench switch|spawn|sleepers|queue|timers N
 *   async_bench floor N               (the kernel's floor for N stacks)
 *   async_bench echo-server|http-server PORT   (until SIGTERM)
 *   async_bench subprocess|subprocess-50 N   (N `true` children)
 *
 * The contract is ../shared/peers/README.md, "Plugging in the library":
 * one line on stdout,
 *   BENCH workload=<w> impl=ours n=<N> secs=<s.sss> ns_per_op=<x.x> [extras]
 * exit 0; a wrong result is written to stderr with exit 1; a workload not
 * implemented yet exits 77; a usage error exits 2. Only the work itself is
 * timed, with the monotonic clock (async_clock). */
#define _POSIX_C_SOURCE 200809L
#define _DEFAULT_SOURCE /* MAP_ANONYMOUS, MAP_NORESERVE, madvise */

#include <async.h>
/* For the size of a task's block alone (the spawn floor). */
#include "core/core.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define EXIT_WRONG 1
#define EXIT_USAGE 2

/* ------------------------------------------------------------- helpers */

/* CPU time (user + system) of the whole process, in seconds. */
static double cpu_clock(void) {
  struct timespec ts;
  if (clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts) != 0) return 0.0;
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static double per_op_ns(double secs, long n) {
  return n > 0 ? secs * 1e9 / (double)n : 0.0;
}

/* Prints the result line; `extra` is "" or " key=value ...". */
static void report(const char *workload, long n, double secs, double ns_per_op,
                   const char *extra) {
  printf("BENCH workload=%s impl=ours n=%ld secs=%.3f ns_per_op=%.1f%s\n",
         workload, n, secs, ns_per_op, extra);
  fflush(stdout);
}

static int fail(const char *workload, const char *what, int err) {
  if (err)
    fprintf(stderr, "async_bench %s: %s: %s\n", workload, what,
            async_strerror(err));
  else
    fprintf(stderr, "async_bench %s: %s\n", workload, what);
  return EXIT_WRONG;
}

/* The default stack size of a task, as the loop options define it. */
static size_t default_stack_size(void) {
  async_loop_options o;
  async_loop_options_init(&o);
  return o.stack_size ? o.stack_size : (size_t)256 * 1024;
}

/* ------------------------------------------------------------- switch */

/* Two tasks yield to each other with async_yield(), N yields in all. The
 * scheduler is FIFO, so every yield must let the other task run, except
 * after the other one has finished (the very last yield has no partner). */

static long sw_half;     /* yields per task */
static int sw_last = -1; /* which task ran last */
static int sw_done[2];   /* task i has finished */
static long sw_noswitch; /* yields after which the other had not run */
static int sw_err;       /* the first error async_yield returned */

static void *switch_body(void *arg) {
  const int me = (int)(intptr_t)arg;
  for (long i = 0; i < sw_half; i++) {
    sw_last = me;
    int rc = async_yield();
    if (rc != 0) {
      if (!sw_err) sw_err = rc;
      break;
    }
    if (sw_last == me && !sw_done[1 - me]) sw_noswitch++;
  }
  sw_done[me] = 1;
  return NULL;
}

static int run_switch(long n) {
  const char *w = "switch";
  sw_half = n / 2;
  n = 2 * sw_half;

  async_loop *loop;
  int rc = async_loop_new(&loop, NULL);
  if (rc) return fail(w, "async_loop_new", rc);

  async_task *t[2] = {NULL, NULL};
  double t0 = async_clock();
  for (int i = 0; i < 2; i++) {
    rc = async_task_spawn(loop, &t[i], switch_body, (void *)(intptr_t)i, NULL);
    if (rc) return fail(w, "async_task_spawn", rc);
  }
  for (int i = 0; i < 2 && !rc; i++)
    rc = async_loop_run_until_complete(loop, t[i], NULL);
  double secs = async_clock() - t0;
  if (rc) return fail(w, "async_loop_run_until_complete", rc);

  for (int i = 0; i < 2; i++) async_task_release(t[i]);
  rc = async_loop_free(loop);
  if (rc) return fail(w, "async_loop_free", rc);

  if (sw_err) return fail(w, "async_yield", sw_err);
  if (!sw_done[0] || !sw_done[1]) return fail(w, "a task did not finish", 0);
  if (sw_noswitch) {
    fprintf(stderr, "async_bench switch: %ld yields did not switch\n",
            sw_noswitch);
    return EXIT_WRONG;
  }
  char extra[64];
  snprintf(extra, sizeof extra, " noswitch=%ld", sw_noswitch);
  report(w, n, secs, per_op_ns(secs, n), extra);
  return 0;
}

/* ------------------------------------------------------------- spawn */

/* Inside a main task: spawn N tasks that each return i & 127, all created
 * before the first await; then await each in order, sum, release. */

/* The handle array, with every page touched now: a large calloc hands out
 * untouched zero pages, whose faults would land inside the timed part. */
static async_task **alloc_handles(long n) {
  size_t bytes = (n > 0 ? (size_t)n : 1) * sizeof(async_task *);
  async_task **v = malloc(bytes);
  if (v) memset(v, 0, bytes);
  return v;
}

typedef struct spawn_job {
  long n;
  async_task **tasks; /* allocated (and touched) before the clock */
  double secs;
  long long sum;
  long spawned;
  int err;
  const char *what;
} spawn_job;

static void *spawn_child(void *arg) { return (void *)((intptr_t)arg & 127); }

static void *spawn_main(void *arg) {
  spawn_job *job = arg;
  async_loop *loop = async_loop_current();
  long long sum = 0;

  double t0 = async_clock();
  for (long i = 0; i < job->n; i++) {
    int rc = async_task_spawn(loop, &job->tasks[i], spawn_child,
                              (void *)(intptr_t)i, NULL);
    if (rc) {
      job->err = rc;
      job->what = "async_task_spawn";
      break;
    }
    job->spawned++;
  }
  for (long i = 0; i < job->spawned; i++) {
    void *res = NULL;
    int rc = async_await(job->tasks[i], &res);
    if (rc && !job->err) {
      job->err = rc;
      job->what = "async_await";
    }
    sum += (intptr_t)res;
    async_task_release(job->tasks[i]);
  }
  job->secs = async_clock() - t0;
  job->sum = sum;
  return NULL;
}

/* What the kernel charges for the least a spawn needs, whatever the
 * library: a block of fresh memory the size of a task's, zeroed as a spawn
 * zeroes it. The stack is not in it: a task that ends before the next one
 * starts gives its stack to that one. The spawn line carries it
 * (floor_ns_per_op) from the same run. */
static double spawn_floor(long n, size_t block) {
  size_t len = (size_t)(n > 0 ? n : 1) * block;
  double t0 = async_clock();
  char *p = mmap(NULL, len, PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (p == MAP_FAILED) return -1.0;
  for (long i = 0; i < n; i++) memset(p + (size_t)i * block, 0, block);
  double ns = per_op_ns(async_clock() - t0, n);
  munmap(p, len);
  return ns;
}

static int run_spawn(long n) {
  const char *w = "spawn";
  spawn_job job = {.n = n};
  job.tasks = alloc_handles(n);
  if (!job.tasks) return fail(w, "out of memory for the handles", 0);

  int rc = async_run(spawn_main, &job, NULL);
  free(job.tasks);
  if (rc) return fail(w, "async_run", rc);
  if (job.err) return fail(w, job.what, job.err);

  long long want = 0;
  for (long i = 0; i < n; i++) want += i & 127;
  if (job.sum != want) {
    fprintf(stderr, "async_bench spawn: sum %lld, want %lld\n", job.sum, want);
    return EXIT_WRONG;
  }
  double floor_ns = spawn_floor(n, sizeof(async__task));
  char extra[128];
  snprintf(extra, sizeof extra, " stack_b=%zu block_b=%zu floor_ns_per_op=%.1f",
           default_stack_size(), sizeof(async__task), floor_ns);
  report(w, n, job.secs, per_op_ns(job.secs, n), extra);
  return 0;
}

/* ------------------------------------------------------------- floor */

/* What the kernel charges for the least a guarded stack needs, whatever
 * the library: N slots spaced as the loop's stacks are (guard page, usable
 * range, the page the descriptor ends), mapped 64 to a mapping as the
 * library's chunks are, each given a guard (MADV_GUARD_INSTALL) and one
 * first-touched top page, then unmapped. Page-table pages, zeroing and the
 * memory-cgroup charge come with the touch. It uses the cheapest calls
 * there are: where process_madvise works, one call guards a mapping's 64
 * slots and one commits their top pages (MADV_POPULATE_WRITE, no fault
 * each);
 * elsewhere a madvise (or mprotect) and a write per slot. The sleepers
 * line carries it (floor_ns_per_op) from the same run. */

#if defined(__linux__)
#include <sys/syscall.h>
#include <sys/uio.h>
#endif
#ifndef MADV_GUARD_INSTALL
#define MADV_GUARD_INSTALL 102
#endif
#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif
#define FLOOR_SLOTS_PER_MAP 64
#define FLOOR_BATCH 64

typedef struct floor_result {
  double ns, cpu_ns;  /* per slot */
  const char *guard;  /* "madvise", "mprotect" or "none" */
  const char *method; /* "batched" or "single" */
} floor_result;

/* Guards and commits the slots [lo, lo + k * slot) in two system calls;
 * 0, or -1 where process_madvise (Linux 6.14+ on ourselves) is missing. */
static int floor_batch(char *lo, size_t k, size_t slot, size_t page) {
#if defined(__linux__) && defined(SYS_process_madvise)
  struct iovec g[FLOOR_BATCH], t[FLOOR_BATCH];
  for (size_t j = 0; j < k; j++) {
    g[j].iov_base = lo + j * slot;
    t[j].iov_base = lo + (j + 1) * slot - page;
    g[j].iov_len = t[j].iov_len = page;
  }
  const int self = -10000; /* PIDFD_SELF */
  if (syscall(SYS_process_madvise, self, g, k, MADV_GUARD_INSTALL, 0u) !=
      (long)(k * page))
    return -1;
  if (syscall(SYS_process_madvise, self, t, k, MADV_POPULATE_WRITE, 0u) !=
      (long)(k * page))
    return -1;
  return 0;
#else
  (void)lo, (void)k, (void)slot, (void)page;
  return -1;
#endif
}

static int floor_probe(long n, floor_result *r) {
  const size_t page = (size_t)sysconf(_SC_PAGESIZE);
  const size_t slot = default_stack_size() + 2 * page;
  const size_t len = slot * FLOOR_SLOTS_PER_MAP;
  const size_t maps =
      (size_t)(n + FLOOR_SLOTS_PER_MAP - 1) / FLOOR_SLOTS_PER_MAP;
  char **base = calloc(maps ? maps : 1, sizeof *base);
  if (!base) return -ENOMEM;
  int batched = 1, madv = 1, prot = 0, none = 0, err = 0;
  double t0 = async_clock(), c0 = cpu_clock();
  for (size_t m = 0; m < maps && !err; m++) {
    void *p = mmap(NULL, len, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED) {
      err = -errno;
      break;
    }
    base[m] = p;
    size_t in_map = (size_t)n - m * FLOOR_SLOTS_PER_MAP;
    if (in_map > FLOOR_SLOTS_PER_MAP) in_map = FLOOR_SLOTS_PER_MAP;
    for (size_t i = 0; i < in_map;) {
      char *lo = base[m] + i * slot;
      size_t k = in_map - i < FLOOR_BATCH ? in_map - i : FLOOR_BATCH;
      if (batched && floor_batch(lo, k, slot, page) == 0) {
        i += k;
        continue;
      }
      batched = 0; /* from here on, one slot at a time */
      if (madv && madvise(lo, page, MADV_GUARD_INSTALL) != 0) madv = 0;
      if (!madv) {
        if (mprotect(lo, page, PROT_NONE) == 0)
          prot = 1;
        else
          none = 1;
      }
      lo[slot - 1] = 1; /* the top page, where a coroutine starts */
      i++;
    }
  }
  for (size_t m = 0; m < maps; m++)
    if (base[m]) munmap(base[m], len);
  double secs = async_clock() - t0, cpu = cpu_clock() - c0;
  free(base);
  r->ns = per_op_ns(secs, n);
  r->cpu_ns = per_op_ns(cpu, n);
  r->guard = none ? "none" : prot ? "mprotect" : "madvise";
  r->method = batched ? "batched" : "single";
  return err;
}

static int run_floor(long n) {
  floor_result r;
  int rc = floor_probe(n, &r);
  if (rc) return fail("floor", "mmap", rc);
  char extra[96];
  snprintf(extra, sizeof extra,
           " cpu_ns_per_op=%.1f guard=%s method=%s stack_b=%zu", r.cpu_ns,
           r.guard, r.method, default_stack_size());
  report("floor", n, r.ns * (double)n / 1e9, r.ns, extra);
  return 0;
}

/* ------------------------------------------------------------- sleepers */

/* Inside a main task: spawn N tasks that each sleep 1.0 s, then await them
 * all. ns_per_op is the overhead per sleeper, (secs - 1) / N. */

typedef struct sleepers_job {
  long n;
  async_task **tasks;
  double secs, cpu;
  long woke;
  long spawned;
  int err;
  const char *what;
} sleepers_job;

static void *sleeper(void *arg) {
  sleepers_job *job = arg;
  int rc = async_sleep(1.0);
  if (rc) return async_fail(rc);
  job->woke++;
  return NULL;
}

static void *sleepers_main(void *arg) {
  sleepers_job *job = arg;
  async_loop *loop = async_loop_current();

  double t0 = async_clock(), c0 = cpu_clock();
  for (long i = 0; i < job->n; i++) {
    int rc = async_task_spawn(loop, &job->tasks[i], sleeper, job, NULL);
    if (rc) {
      job->err = rc;
      job->what = "async_task_spawn";
      break;
    }
    job->spawned++;
  }
  for (long i = 0; i < job->spawned; i++) {
    int rc = async_await(job->tasks[i], NULL);
    if (rc && !job->err) {
      job->err = rc;
      job->what = "a sleeper";
    }
    async_task_release(job->tasks[i]);
  }
  job->secs = async_clock() - t0;
  job->cpu = cpu_clock() - c0;
  return NULL;
}

static int run_sleepers(long n) {
  const char *w = "sleepers";
  sleepers_job job = {.n = n};
  job.tasks = alloc_handles(n);
  if (!job.tasks) return fail(w, "out of memory for the handles", 0);

  int rc = async_run(sleepers_main, &job, NULL);
  free(job.tasks);
  if (rc) return fail(w, "async_run", rc);
  if (job.err) return fail(w, job.what, job.err);
  if (job.woke != n) {
    fprintf(stderr, "async_bench sleepers: %ld of %ld woke\n", job.woke, n);
    return EXIT_WRONG;
  }
  if (n > 0 && job.secs < 1.0) {
    fprintf(stderr, "async_bench sleepers: done after %.3f s, before 1 s\n",
            job.secs);
    return EXIT_WRONG;
  }
  /* The floor, measured now that the sleepers' stacks are gone. */
  floor_result fl;
  rc = floor_probe(n, &fl);
  if (rc) return fail(w, "the floor probe", rc);
  double over = n > 0 ? job.secs - 1.0 : 0.0;
  char extra[192];
  snprintf(extra, sizeof extra,
           " overhead_ms=%.1f cpu_ns_per_op=%.1f stack_b=%zu"
           " floor_ns_per_op=%.1f floor_cpu_ns_per_op=%.1f",
           over * 1e3, per_op_ns(job.cpu, n), default_stack_size(), fl.ns,
           fl.cpu_ns);
  report(w, n, job.secs, per_op_ns(over, n), extra);
  return 0;
}

/* ------------------------------------------------------------- queue */

/* One producer task puts 0..N-1 into a bounded queue of capacity 1024;
 * one consumer task gets them and checks the order. */

#define QUEUE_CAPACITY 1024

typedef struct queue_job {
  async_queue *q;
  long n;
  long received;
  long wrong; /* items out of order */
  int err;
  const char *what;
} queue_job;

static void *queue_producer(void *arg) {
  queue_job *job = arg;
  for (long i = 0; i < job->n; i++) {
    int rc = async_queue_put(job->q, (void *)(intptr_t)i);
    if (rc) {
      if (!job->err) job->err = rc, job->what = "async_queue_put";
      break;
    }
  }
  return NULL;
}

static void *queue_consumer(void *arg) {
  queue_job *job = arg;
  for (long i = 0; i < job->n; i++) {
    void *item;
    int rc = async_queue_get(job->q, &item);
    if (rc) {
      if (!job->err) job->err = rc, job->what = "async_queue_get";
      break;
    }
    if ((intptr_t)item != i) job->wrong++;
    job->received++;
  }
  return NULL;
}

static int run_queue(long n) {
  const char *w = "queue";
  queue_job job = {.n = n};
  async_loop *loop;
  int rc = async_loop_new(&loop, NULL);
  if (rc) return fail(w, "async_loop_new", rc);
  rc = async_queue_new(&job.q, QUEUE_CAPACITY, NULL);
  if (rc) return fail(w, "async_queue_new", rc);

  async_task *t[2] = {NULL, NULL};
  double t0 = async_clock();
  rc = async_task_spawn(loop, &t[0], queue_producer, &job, NULL);
  if (!rc) rc = async_task_spawn(loop, &t[1], queue_consumer, &job, NULL);
  if (rc) return fail(w, "async_task_spawn", rc);
  for (int i = 0; i < 2 && !rc; i++)
    rc = async_loop_run_until_complete(loop, t[i], NULL);
  double secs = async_clock() - t0;
  if (rc) return fail(w, "async_loop_run_until_complete", rc);

  for (int i = 0; i < 2; i++) async_task_release(t[i]);
  rc = async_queue_free(job.q);
  if (rc) return fail(w, "async_queue_free", rc);
  rc = async_loop_free(loop);
  if (rc) return fail(w, "async_loop_free", rc);

  if (job.err) return fail(w, job.what, job.err);
  if (job.received != n || job.wrong) {
    fprintf(stderr,
            "async_bench queue: %ld of %ld received, %ld out of "
            "order\n",
            job.received, n, job.wrong);
    return EXIT_WRONG;
  }
  char extra[64];
  snprintf(extra, sizeof extra, " capacity=%d", QUEUE_CAPACITY);
  report(w, n, secs, per_op_ns(secs, n), extra);
  return 0;
}

/* ------------------------------------------------------------- timers */

/* N one-shot callbacks (async_loop_call_later, no task), each due `delay`
 * from the moment it is scheduled, the delays the peers use. A callback
 * whose deadline (async_handle_when: the one the loop orders by) is before
 * one already fired is an inversion. ns_per_op is (secs - 1) / N. */

/* The peers' delay sequence: xorshift64 from their seed, the top 53 bits
 * scaled to [0, 1) s (../shared/peers/c/bench_common.h has the reference). */
#define TIMERS_SEED 88172645463325252ull

static double timers_delay(uint64_t *x) {
  uint64_t v = *x;
  v ^= v << 13;
  v ^= v >> 7;
  v ^= v << 17;
  *x = v;
  return (double)(v >> 11) / (double)(UINT64_C(1) << 53);
}

typedef struct timers_job {
  async_loop *loop;
  long n, fired, inversions;
  double latest;    /* the latest deadline fired so far */
  double worst;     /* the largest inversion, s */
  double end, cend; /* clocks when the last one fired */
  int err;
} timers_job;

static timers_job tj;

static void timers_cb(void *arg) {
  async_handle *h = *(async_handle **)arg;
  double when = async_handle_when(h);
  if (when < tj.latest) {
    tj.inversions++;
    if (tj.latest - when > tj.worst) tj.worst = tj.latest - when;
  } else {
    tj.latest = when;
  }
  if (async_handle_release(h) != 0 && !tj.err) tj.err = -EINVAL;
  if (++tj.fired == tj.n) {
    tj.end = async_clock();
    tj.cend = cpu_clock();
    async_loop_stop(tj.loop);
  }
}

static int run_timers(long n) {
  const char *w = "timers";
  size_t count = n > 0 ? (size_t)n : 1;
  double *delay = malloc(count * sizeof *delay);
  async_handle **h = malloc(count * sizeof *h);
  if (!delay || !h) return fail(w, "out of memory for the delays", 0);
  uint64_t x = TIMERS_SEED;
  for (long i = 0; i < n; i++) delay[i] = timers_delay(&x);
  memset(h, 0, count * sizeof *h); /* faulted in before the clock */

  int rc = async_loop_new(&tj.loop, NULL);
  if (rc) return fail(w, "async_loop_new", rc);
  tj.n = n;
  double t0 = async_clock(), c0 = cpu_clock();
  tj.end = t0;
  tj.cend = c0;
  for (long i = 0; i < n; i++) {
    rc = async_loop_call_later(tj.loop, delay[i], timers_cb, &h[i], &h[i]);
    if (rc) return fail(w, "async_loop_call_later", rc);
  }
  if (n > 0) rc = async_loop_run_forever(tj.loop);
  if (rc) return fail(w, "async_loop_run_forever", rc);
  double secs = tj.end - t0, cpu = tj.cend - c0;
  rc = async_loop_free(tj.loop);
  free(delay);
  free(h);
  if (rc) return fail(w, "async_loop_free", rc);
  if (tj.err) return fail(w, "async_handle_release", tj.err);
  if (tj.fired != n || tj.inversions) {
    fprintf(stderr, "async_bench timers: %ld of %ld fired, %ld out of order\n",
            tj.fired, n, tj.inversions);
    return EXIT_WRONG;
  }
  char extra[128];
  snprintf(extra, sizeof extra,
           " inversions=%ld inv_max_ms=%.3f cpu_ns_per_op=%.1f", tj.inversions,
           tj.worst * 1e3, per_op_ns(cpu, n));
  report(w, n, secs, n > 0 ? per_op_ns(secs - 1.0, n) : 0.0, extra);
  return 0;
}

/* ------------------------------------------------------------- subprocess */

/* subprocess N and subprocess-50 N: spawn and wait for N children of
 * `true` (no pipes), one at a time or 50 at once, each worker task
 * starting its next child when its last one is reaped. Each must exit 0.
 * The per-process time includes the child's own run (exec, ld.so, exit),
 * as Python's figure does. */

typedef struct sp_job {
  long left, done;
  int err;
} sp_job;

static void *sp_worker(void *arg) {
  sp_job *j = arg;
  static const char *const argv[] = {"true", NULL};
  while (j->left > 0 && !j->err) {
    j->left--;
    async_process *p;
    int code = -1;
    int err = async_process_spawn(&p, async_loop_current(), argv, NULL);
    if (!err) {
      err = async_process_wait(p, &code, ASYNC_NO_TIMEOUT);
      async_process_free(p);
    }
    if (!err && code != 0) err = -ECHILD;
    if (err)
      j->err = err;
    else
      j->done++;
  }
  return NULL;
}

static int sp_width;

static void *sp_main(void *arg) {
  async_task *t[50];
  int k = sp_width;
  for (int i = 0; i < k; i++) t[i] = async_spawn(sp_worker, arg);
  for (int i = 0; i < k; i++) {
    if (!t[i]) continue;
    async_await(t[i], NULL);
    async_task_release(t[i]);
  }
  return NULL;
}

static int run_subprocess_width(const char *w, long n, int width) {
  sp_job j = {.left = n};
  sp_width = width;
  double t0 = async_clock(), c0 = cpu_clock();
  int rc = async_run(sp_main, &j, NULL);
  double secs = async_clock() - t0, cpu = cpu_clock() - c0;
  if (rc) return fail(w, "async_run", rc);
  if (j.err) return fail(w, "a child", j.err);
  if (j.done != n) return fail(w, "not every child was reaped", 0);
  char extra[96];
  snprintf(extra, sizeof extra, " width=%d parent_cpu_ns_per_op=%.1f", width,
           per_op_ns(cpu, n));
  report(w, n, secs, per_op_ns(secs, n), extra);
  return 0;
}

static int run_subprocess(long n) {
  return run_subprocess_width("subprocess", n, 1);
}

static int run_subprocess50(long n) {
  return run_subprocess_width("subprocess-50", n, 50);
}

/* ------------------------------------------------------------- main */

static int usage(const char *prog) {
  fprintf(stderr,
          "usage: %s switch|spawn|sleepers|queue|timers|floor|subprocess|"
          "subprocess-50 N\n"
          "       %s echo-server|http-server PORT\n",
          prog, prog);
  return EXIT_USAGE;
}

static int parse_n(const char *s, long *out) {
  char *end;
  errno = 0;
  long n = strtol(s, &end, 10);
  if (*s == '\0' || *end != '\0' || errno || n < 0) return -1;
  *out = n;
  return 0;
}

/* ------------------------------------------------------------- servers */

/* echo-server and http-server (peers/README.md points 7 and 8): a server
 * on 127.0.0.1:PORT, one task per connection on a stream, straight-line
 * code, until SIGTERM ends the process (its default action). */

static int echo_conn(async_stream *s, void *arg) {
  (void)arg;
  char buf[16384];
  async_socket_setopt(async_stream_fd(s), ASYNC_SOCK_NODELAY, 1);
  for (;;) {
    ssize_t n = async_stream_read(s, buf, sizeof buf, ASYNC_NO_TIMEOUT);
    if (n <= 0) return (int)n;
    int err = async_stream_write(s, buf, (size_t)n);
    if (!err) err = async_stream_drain(s, ASYNC_NO_TIMEOUT);
    if (err) return err;
  }
}

static const char http_resp[] = "HTTP/1.1 200 OK\r\n"
                                "Content-Type: text/plain\r\n"
                                "Content-Length: 13\r\n"
                                "\r\n"
                                "Hello, World!";
#define HTTP_RESP_LEN (sizeof http_resp - 1)

/* Requests end at the blank line after their headers; `state` is how much
 * of "\r\n\r\n" the bytes so far end with, across reads. */
static int http_conn(async_stream *s, void *arg) {
  (void)arg;
  char buf[16384], out[32 * HTTP_RESP_LEN];
  int state = 0;
  async_socket_setopt(async_stream_fd(s), ASYNC_SOCK_NODELAY, 1);
  for (;;) {
    ssize_t n = async_stream_read(s, buf, sizeof buf, ASYNC_NO_TIMEOUT);
    if (n <= 0) return (int)n;
    size_t k = 0;
    for (ssize_t i = 0; i < n; i++) {
      char c = buf[i];
      if (c == "\r\n\r\n"[state]) {
        if (++state == 4) {
          k++;
          state = 0;
        }
      } else {
        state = c == '\r';
      }
    }
    int err = 0;
    while (k && !err) {
      size_t m = k < 32 ? k : 32;
      for (size_t j = 0; j < m; j++)
        memcpy(out + j * HTTP_RESP_LEN, http_resp, HTTP_RESP_LEN);
      err = async_stream_write(s, out, m * HTTP_RESP_LEN);
      k -= m;
    }
    if (!err) err = async_stream_drain(s, ASYNC_NO_TIMEOUT);
    if (err) return err;
  }
}

static int serve_port;
static async_server_handler serve_handler;

static void *serve_main(void *arg) {
  (void)arg;
  int fd = async_tcp_listen("127.0.0.1", serve_port, 1024, 0);
  if (fd < 0) return async_fail(fd);
  async_server *srv;
  int err = async_server_start(&srv, async_loop_current(), fd, serve_handler,
                               NULL, NULL);
  if (err) {
    async_fd_close(fd);
    return async_fail(err);
  }
  err = async_server_serve_forever(srv);
  async_server_free(srv);
  return err ? async_fail(err) : NULL;
}

static int run_server(const char *workload, const char *port) {
  long p;
  if (parse_n(port, &p) != 0 || p < 1 || p > 65535) {
    fprintf(stderr, "async_bench: bad port: %s\n", port);
    return EXIT_USAGE;
  }
  serve_port = (int)p;
  serve_handler = strcmp(workload, "echo-server") ? http_conn : echo_conn;
  int err = async_run(serve_main, NULL, NULL);
  return err ? fail(workload, "server", err) : 0;
}

int main(int argc, char **argv) {
  const char *prog = argc > 0 ? argv[0] : "async_bench";
  if (argc != 3) return usage(prog);
  const char *w = argv[1];

  int (*run)(long) = NULL;
  if (!strcmp(w, "switch"))
    run = run_switch;
  else if (!strcmp(w, "spawn"))
    run = run_spawn;
  else if (!strcmp(w, "sleepers"))
    run = run_sleepers;
  else if (!strcmp(w, "queue"))
    run = run_queue;
  else if (!strcmp(w, "timers"))
    run = run_timers;
  else if (!strcmp(w, "floor"))
    run = run_floor;
  else if (!strcmp(w, "subprocess"))
    run = run_subprocess;
  else if (!strcmp(w, "subprocess-50"))
    run = run_subprocess50;
  else if (!strcmp(w, "echo-server") || !strcmp(w, "http-server"))
    return run_server(w, argv[2]);
  else {
    fprintf(stderr, "async_bench: unknown workload %s\n", w);
    return usage(prog);
  }

  long n;
  if (parse_n(argv[2], &n) != 0) {
    fprintf(stderr, "async_bench: bad N: %s\n", argv[2]);
    return EXIT_USAGE;
  }
  return run(n);
}
