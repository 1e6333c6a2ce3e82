/* SPDX-License-Identifier: MIT */
/* Signals delivered to the loop: handlers, waits, async_run's SIGINT.
 *
 * kill(getpid(), sig) from the only thread of the process runs the
 * library's handler before kill returns, so the counts here are exact;
 * what the loop then reports comes through its pipe, one turn later. */
#include "helpers.h"
#include "leak_helpers.h"

#include <dirent.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/wait.h>
#include <unistd.h>

/* Allocations fail on demand: the library's calls go through these
 * (tests/CMakeLists.txt links test_signal with --wrap). */
void *__real_malloc(size_t n);
void *__real_calloc(size_t n, size_t size);
void *__wrap_malloc(size_t n);
void *__wrap_calloc(size_t n, size_t size);
static int fail_allocs; /* the next so many allocations fail */
static int failed_allocs;

static int alloc_fails(void) {
  if (fail_allocs <= 0) return 0;
  fail_allocs--;
  failed_allocs++;
  return 1;
}
void *__wrap_malloc(size_t n) {
  return alloc_fails() ? NULL : __real_malloc(n);
}
void *__wrap_calloc(size_t n, size_t size) {
  return alloc_fails() ? NULL : __real_calloc(n, size);
}

typedef struct hits {
  int calls;
  unsigned count; /* the sum of the counts passed */
  int signo;
  void *arg;
  async_loop *loop;
} hits;

static void on_signal(async_loop *loop, int signo, unsigned count, void *arg) {
  hits *h = arg;
  h->calls++;
  h->count += count;
  h->signo = signo;
  h->arg = arg;
  h->loop = loop;
}

/* Sleeps until *n reaches want, 5 s at most; returns *n. */
static int sleep_until(const int *n, int want) {
  for (int i = 0; i < 1000 && *n < want; i++) async_sleep(0.005);
  return *n;
}

static void sig_default(int signo) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = SIG_DFL;
  sigaction(signo, &sa, NULL);
}

static void sig_ignore(int signo) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = SIG_IGN;
  sigaction(signo, &sa, NULL);
}

static void (*sig_current(int signo))(int) {
  struct sigaction sa;
  assert_int_equal(sigaction(signo, NULL, &sa), 0);
  return sa.sa_handler;
}

/* ==== Handlers ========================================================= */

typedef struct kill_run {
  hits *h;
  int signo, kills, after_first, after_all;
} kill_run;

static void *killer(void *arg) {
  kill_run *k = arg;
  kill(getpid(), k->signo);
  k->after_first = sleep_until(&k->h->calls, 1);
  for (int i = 1; i < k->kills; i++) kill(getpid(), k->signo);
  for (int i = 0; i < 200 && (int)k->h->count < k->kills; i++)
    async_sleep(0.005);
  k->after_all = (int)k->h->count;
  return NULL;
}

static void test_signal_handler_counts(void **state) {
  (void)state;
  async_loop *loop = new_loop();
  hits h = {0};
  assert_int_equal(async_signal_add(loop, SIGUSR1, on_signal, &h), 0);
  kill_run k = {.h = &h, .signo = SIGUSR1, .kills = 4};
  assert_int_equal(run_task(loop, killer, &k, NULL), 0);
  assert_int_equal(k.after_first, 1);
  assert_int_equal(k.after_all, 4);
  /* Three kills between two turns of the loop: one call, or a few. */
  assert_true(h.calls >= 2 && h.calls <= 4);
  assert_int_equal(h.signo, SIGUSR1);
  assert_ptr_equal(h.arg, &h);
  assert_ptr_equal(h.loop, loop);
  free_loop(loop);
  assert_ptr_equal(sig_current(SIGUSR1), SIG_DFL);
}

static void *kill_once(void *arg) {
  kill_run *k = arg;
  kill(getpid(), k->signo);
  for (int i = 0; i < 20; i++) async_sleep(0.002);
  return NULL;
}

static void test_signal_remove(void **state) {
  (void)state;
  sig_ignore(SIGUSR1); /* a kill after the removal must not kill us */
  async_loop *loop = new_loop();
  hits h = {0};
  assert_int_equal(async_signal_remove(loop, SIGUSR1), 0);
  assert_int_equal(async_signal_add(loop, SIGUSR1, on_signal, &h), 0);
  assert_ptr_not_equal(sig_current(SIGUSR1), SIG_IGN);
  assert_int_equal(async_signal_remove(loop, SIGUSR1), 1);
  assert_ptr_equal(sig_current(SIGUSR1), SIG_IGN);
  assert_int_equal(async_signal_remove(loop, SIGUSR1), 0);
  kill_run k = {.h = &h, .signo = SIGUSR1};
  assert_int_equal(run_task(loop, kill_once, &k, NULL), 0);
  assert_int_equal(h.calls, 0);
  free_loop(loop);
  sig_default(SIGUSR1);
}

/* A delivery counted and not yet reported when the handler goes. */
static void *kill_remove(void *arg) {
  kill_run *k = arg;
  kill(getpid(), k->signo);
  async_signal_remove(async_loop_current(), k->signo);
  for (int i = 0; i < 20; i++) async_sleep(0.002);
  return NULL;
}

static void test_signal_remove_drops_pending(void **state) {
  (void)state;
  sig_ignore(SIGUSR2);
  async_loop *loop = new_loop();
  hits h = {0};
  assert_int_equal(async_signal_add(loop, SIGUSR2, on_signal, &h), 0);
  kill_run k = {.h = &h, .signo = SIGUSR2};
  assert_int_equal(run_task(loop, kill_remove, &k, NULL), 0);
  assert_int_equal(h.calls, 0);
  assert_ptr_equal(sig_current(SIGUSR2), SIG_IGN);
  free_loop(loop);
  sig_default(SIGUSR2);
}

static void test_signal_replace(void **state) {
  (void)state;
  async_loop *loop = new_loop();
  hits a = {0}, b = {0};
  assert_int_equal(async_signal_add(loop, SIGUSR1, on_signal, &a), 0);
  assert_int_equal(async_signal_add(loop, SIGUSR1, on_signal, &b), 0);
  kill_run k = {.h = &b, .signo = SIGUSR1, .kills = 1};
  assert_int_equal(run_task(loop, killer, &k, NULL), 0);
  assert_int_equal(a.calls, 0);
  assert_int_equal(b.calls, 1);
  assert_int_equal(b.count, 1);
  free_loop(loop);
}

/* ==== Many tasks ======================================================= */

enum { NTASKS = 1000, ROUNDS = 20, NKILLS = 10 };

typedef struct crowd {
  int done;
  hits h;
  int signo;
} crowd;

static void *busy(void *arg) {
  crowd *c = arg;
  for (int i = 0; i < ROUNDS; i++) {
    if (i % 2)
      async_yield();
    else
      async_sleep(0.001);
  }
  c->done++;
  return NULL;
}

static void *crowd_main(void *arg) {
  crowd *c = arg;
  async_loop *loop = async_loop_current();
  async_task *t[NTASKS];
  int spawned = 0;
  for (int i = 0; i < NTASKS; i++)
    if (async_task_spawn(loop, &t[i], busy, c, NULL) == 0) spawned++;
  for (int i = 0; i < NKILLS; i++) {
    kill(getpid(), c->signo);
    async_sleep(0.001);
  }
  for (int i = 0; i < spawned; i++) {
    async_await(t[i], NULL);
    async_task_release(t[i]);
  }
  for (int i = 0; i < 200 && (int)c->h.count < NKILLS; i++) async_sleep(0.005);
  return IPTR(spawned);
}

static void test_signal_while_many_tasks_run(void **state) {
  (void)state;
  async_loop *loop = new_loop();
  crowd c = {.signo = SIGUSR1};
  assert_int_equal(async_signal_add(loop, SIGUSR1, on_signal, &c.h), 0);
  void *spawned = NULL;
  assert_int_equal(run_task(loop, crowd_main, &c, &spawned), 0);
  assert_int_equal(PTRI(spawned), NTASKS);
  assert_int_equal(c.done, NTASKS);
  /* Every delivery counted once; calls coalesce between loop turns. */
  assert_int_equal(c.h.count, NKILLS);
  assert_true(c.h.calls >= 1 && c.h.calls <= NKILLS);
  free_loop(loop);
}

/* From another thread, at any moment of the loop: the kernel may merge
 * deliveries that overlap, never invent one. */
typedef struct sender {
  int signo, n;
} sender;

static void *send_thread(void *arg) {
  sender *s = arg;
  for (int i = 0; i < s->n; i++) {
    kill(getpid(), s->signo);
    usleep(300);
  }
  return NULL;
}

static void *crowd_thread_main(void *arg) {
  crowd *c = arg;
  async_loop *loop = async_loop_current();
  async_task *t[NTASKS];
  int spawned = 0;
  for (int i = 0; i < NTASKS; i++)
    if (async_task_spawn(loop, &t[i], busy, c, NULL) == 0) spawned++;
  for (int i = 0; i < spawned; i++) {
    async_await(t[i], NULL);
    async_task_release(t[i]);
  }
  return IPTR(spawned);
}

static void test_signal_from_thread_while_tasks_run(void **state) {
  (void)state;
  async_loop *loop = new_loop();
  crowd c = {.signo = SIGUSR2};
  assert_int_equal(async_signal_add(loop, SIGUSR2, on_signal, &c.h), 0);
  sender s = {.signo = SIGUSR2, .n = 50};
  pthread_t th;
  assert_int_equal(pthread_create(&th, NULL, send_thread, &s), 0);
  void *spawned = NULL;
  assert_int_equal(run_task(loop, crowd_thread_main, &c, &spawned), 0);
  assert_int_equal(pthread_join(th, NULL), 0);
  /* What the last kills left in the pipe. */
  int calls = c.h.calls;
  for (int i = 0; i < 50; i++) {
    async_task *t = NULL;
    assert_int_equal(async_task_spawn(loop, &t, busy, &c, NULL), 0);
    assert_int_equal(async_loop_run_until_complete(loop, t, NULL), 0);
    async_task_release(t);
  }
  assert_int_equal(PTRI(spawned), NTASKS);
  assert_int_equal(c.done, NTASKS + 50);
  assert_true(c.h.count >= 1 && c.h.count <= 50);
  assert_true(c.h.calls >= calls);
  free_loop(loop);
}

/* ==== Waiting ========================================================== */

typedef struct waiter {
  int signo;
  double timeout;
  int rc;
  int rc2;
  int after; /* what the task did after the wait returned */
} waiter;

static void *wait_task(void *arg) {
  waiter *w = arg;
  w->rc = async_signal_wait(w->signo, w->timeout);
  w->after = 1;
  return NULL;
}

static void *wait_and_kill(void *arg) {
  waiter *w = arg;
  async_task *t = async_spawn(wait_task, w);
  if (!t) return NULL;
  async_sleep(0.01);
  kill(getpid(), w->signo);
  async_await(t, NULL);
  async_task_release(t);
  return NULL;
}

static void test_signal_wait(void **state) {
  (void)state;
  async_loop *loop = new_loop();
  waiter w = {.signo = SIGUSR1, .timeout = 30.0};
  assert_int_equal(run_task(loop, wait_and_kill, &w, NULL), 0);
  assert_int_equal(w.rc, 1);
  w = (waiter){.signo = SIGUSR1, .timeout = ASYNC_NO_TIMEOUT};
  assert_int_equal(run_task(loop, wait_and_kill, &w, NULL), 0);
  assert_int_equal(w.rc, 1);
  free_loop(loop);
  assert_ptr_equal(sig_current(SIGUSR1), SIG_DFL);
}

static void test_signal_wait_timeout(void **state) {
  (void)state;
  async_loop *loop = new_loop();
  waiter w = {.signo = SIGUSR1, .timeout = 0.02};
  double t0 = async_clock();
  assert_int_equal(run_task(loop, wait_task, &w, NULL), 0);
  assert_int_equal(w.rc, -ETIMEDOUT);
  assert_true(async_clock() - t0 >= 0.019);
  w.timeout = 0;
  assert_int_equal(run_task(loop, wait_task, &w, NULL), 0);
  assert_int_equal(w.rc, -ETIMEDOUT);
  w.timeout = -1;
  assert_int_equal(run_task(loop, wait_task, &w, NULL), 0);
  assert_int_equal(w.rc, -ETIMEDOUT);
  free_loop(loop);
}

/* Deliveries between two waits are kept for the next one: the loop goes
 * on watching after a wait, and a zero timeout returns them. */
static void *wait_keeps(void *arg) {
  waiter *w = arg;
  kill(getpid(), w->signo);
  w->rc = async_signal_wait(w->signo, 0);
  w->rc2 = async_signal_wait(w->signo, 0);
  kill(getpid(), w->signo);
  kill(getpid(), w->signo);
  async_sleep(0.01); /* the loop reads its pipe meanwhile */
  w->after = async_signal_wait(w->signo, 0);
  return NULL;
}

static void test_signal_wait_keeps_deliveries(void **state) {
  (void)state;
  async_loop *loop = new_loop();
  /* Watched before the first kill: else SIGUSR2 would kill us. */
  hits h = {0};
  assert_int_equal(async_signal_add(loop, SIGUSR2, on_signal, &h), 0);
  waiter w = {.signo = SIGUSR2};
  assert_int_equal(run_task(loop, wait_keeps, &w, NULL), 0);
  assert_int_equal(w.rc, 1);
  assert_int_equal(w.rc2, -ETIMEDOUT);
  assert_int_equal(w.after, 2);
  assert_int_equal(h.count, 3); /* the handler saw all of them too */
  free_loop(loop);
}

typedef struct cancel_run {
  waiter w;
  int cancel_rc, awaited, removed;
  int remove; /* remove instead of cancel */
} cancel_run;

static void *wait_cancel_main(void *arg) {
  cancel_run *c = arg;
  async_task *t = async_spawn(wait_task, &c->w);
  if (!t) return NULL;
  async_sleep(0.01);
  if (c->remove)
    c->removed = async_signal_remove(async_loop_current(), c->w.signo);
  else
    c->cancel_rc = async_task_cancel(t);
  c->awaited = async_await(t, NULL);
  async_task_release(t);
  return NULL;
}

static void test_signal_wait_cancel(void **state) {
  (void)state;
  async_loop *loop = new_loop();
  cancel_run c = {.w = {.signo = SIGUSR1, .timeout = 30.0}};
  assert_int_equal(run_task(loop, wait_cancel_main, &c, NULL), 0);
  assert_int_equal(c.cancel_rc, 1);
  assert_int_equal(c.w.rc, -ECANCELED);
  assert_int_equal(c.awaited, 0);
  assert_int_equal(c.w.after, 1);
  /* Still watched after the cancelled wait, until close. */
  assert_ptr_not_equal(sig_current(SIGUSR1), SIG_DFL);
  free_loop(loop);
  assert_ptr_equal(sig_current(SIGUSR1), SIG_DFL);
}

static void test_signal_wait_removed(void **state) {
  (void)state;
  async_loop *loop = new_loop();
  cancel_run c = {.w = {.signo = SIGUSR1, .timeout = 30.0}, .remove = 1};
  assert_int_equal(run_task(loop, wait_cancel_main, &c, NULL), 0);
  assert_int_equal(c.removed, 1);
  assert_int_equal(c.w.rc, -ENOENT);
  assert_ptr_equal(sig_current(SIGUSR1), SIG_DFL);
  free_loop(loop);
}

/* A task woken by a delivery and cancelled before it runs gets the
 * count; the cancellation waits for its next suspending call. */
static void *wait_then_sleep(void *arg) {
  waiter *w = arg;
  w->rc = async_signal_wait(w->signo, 30.0);
  w->rc2 = async_sleep(0);
  return NULL;
}

typedef struct woken_run {
  async_task *victim;
  waiter w;
  int first_rc, cancel_rc, awaited;
} woken_run;

/* Woken first by the same delivery, it runs before the victim does. */
static void *first_waiter(void *arg) {
  woken_run *c = arg;
  c->first_rc = async_signal_wait(c->w.signo, 30.0);
  c->cancel_rc = async_task_cancel(c->victim);
  return NULL;
}

static void *woken_then_cancelled(void *arg) {
  woken_run *c = arg;
  async_task *x = async_spawn(first_waiter, c);
  async_yield();
  c->victim = async_spawn(wait_then_sleep, &c->w);
  async_sleep(0.01);
  kill(getpid(), c->w.signo);
  async_await(x, NULL);
  c->awaited = async_await(c->victim, NULL);
  async_task_release(x);
  async_task_release(c->victim);
  return NULL;
}

static void test_signal_wait_woken_then_cancelled(void **state) {
  (void)state;
  async_loop *loop = new_loop();
  woken_run c = {.w = {.signo = SIGUSR1}};
  assert_int_equal(run_task(loop, woken_then_cancelled, &c, NULL), 0);
  assert_int_equal(c.first_rc, 1);
  assert_int_equal(c.cancel_rc, 1);
  assert_int_equal(c.w.rc, 1); /* the delivery is not lost */
  assert_int_equal(c.w.rc2, -ECANCELED);
  assert_int_equal(c.awaited, 0);
  free_loop(loop);
}

static void test_signal_wait_rejects(void **state) {
  (void)state;
  async_loop *loop = new_loop();
  int bad[] = {0,      -1,     SIGKILL, SIGSTOP, SIGSEGV,
               SIGBUS, SIGFPE, SIGILL,  NSIG,    1000};
  hits h = {0};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    assert_int_equal(async_signal_add(loop, bad[i], on_signal, &h), -EINVAL);
    assert_int_equal(async_signal_remove(loop, bad[i]), -EINVAL);
    waiter w = {.signo = bad[i], .timeout = 1.0};
    assert_int_equal(run_task(loop, wait_task, &w, NULL), 0);
    assert_int_equal(w.rc, -EINVAL);
  }
  assert_int_equal(async_signal_add(NULL, SIGUSR1, on_signal, &h), -EINVAL);
  assert_int_equal(async_signal_add(loop, SIGUSR1, NULL, &h), -EINVAL);
  assert_int_equal(async_signal_remove(NULL, SIGUSR1), -EINVAL);
  assert_int_equal(async_signal_wait(SIGUSR1, 1.0), -EPERM);
  waiter w = {.signo = SIGUSR1, .timeout = NAN};
  assert_int_equal(run_task(loop, wait_task, &w, NULL), 0);
  assert_int_equal(w.rc, -EINVAL);
  assert_ptr_equal(sig_current(SIGUSR1), SIG_DFL); /* nothing installed */
  free_loop(loop);
}

static void *wait_busy(void *arg) {
  waiter *w = arg;
  w->rc = async_signal_wait(w->signo, 1.0);
  return NULL;
}

static void test_signal_other_loop_and_close(void **state) {
  (void)state;
  async_loop *a = new_loop(), *b = new_loop();
  hits ha = {0}, hb = {0};
  assert_int_equal(async_signal_add(a, SIGUSR1, on_signal, &ha), 0);
  assert_int_equal(async_signal_add(b, SIGUSR1, on_signal, &hb), -EBUSY);
  assert_int_equal(async_signal_remove(b, SIGUSR1), 0);
  waiter w = {.signo = SIGUSR1};
  assert_int_equal(run_task(b, wait_busy, &w, NULL), 0);
  assert_int_equal(w.rc, -EBUSY);
  /* b's attempts left a's watch alone. */
  kill_run k = {.h = &ha, .signo = SIGUSR1, .kills = 1};
  assert_int_equal(run_task(a, killer, &k, NULL), 0);
  assert_int_equal(ha.count, 1);
  assert_int_equal(hb.calls, 0);
  /* b watches another signal meanwhile. */
  assert_int_equal(async_signal_add(b, SIGUSR2, on_signal, &hb), 0);
  assert_int_equal(async_loop_close(a), 0);
  assert_int_equal(async_signal_add(a, SIGUSR1, on_signal, &ha), -ESHUTDOWN);
  assert_int_equal(async_signal_remove(a, SIGUSR1), -ESHUTDOWN);
  /* a's close let the signal go: b may take it. */
  assert_int_equal(async_signal_add(b, SIGUSR1, on_signal, &hb), 0);
  k = (kill_run){.h = &hb, .signo = SIGUSR1, .kills = 1};
  assert_int_equal(run_task(b, killer, &k, NULL), 0);
  assert_int_equal(hb.count, 1);
  assert_int_equal(ha.count, 1);
  free_loop(a);
  free_loop(b);
  assert_ptr_equal(sig_current(SIGUSR1), SIG_DFL);
  assert_ptr_equal(sig_current(SIGUSR2), SIG_DFL);
}

/* ==== The virtual clock ================================================ */

typedef struct vrun_out {
  int slept, waited, got;
  double t_slept, t_waited;
} vrun_out;

static void *vclock_main(void *arg) {
  vrun_out *o = arg;
  o->slept = async_sleep(3.0);
  o->t_slept = async_loop_time(async_loop_current());
  o->waited = async_signal_wait(SIGUSR1, 2.0);
  o->t_waited = async_loop_time(async_loop_current());
  kill(getpid(), SIGUSR1);
  async_sleep(1.0);
  o->got = async_signal_wait(SIGUSR1, 0);
  async_yield(); /* the handler's call, queued by the wait */
  return NULL;
}

/* A watched signal is not an fd the clock waits for in real time (it
 * comes from outside, as a thread-safe call does): the virtual clock
 * still jumps, and a delivery is still seen. */
static void test_signal_virtual_clock(void **state) {
  (void)state;
  async_loop_options opts;
  async_loop_options_init(&opts);
  opts.virtual_clock = 1;
  async_loop *loop = NULL;
  assert_int_equal(async_loop_new(&loop, &opts), 0);
  hits h = {0};
  assert_int_equal(async_signal_add(loop, SIGUSR1, on_signal, &h), 0);
  vrun_out o = {0};
  double t0 = async_clock();
  assert_int_equal(run_task(loop, vclock_main, &o, NULL), 0);
  assert_true(async_clock() - t0 < 1.5); /* 6 s of loop time */
  assert_int_equal(o.slept, 0);
  assert_true(o.t_slept == 3.0);
  assert_int_equal(o.waited, -ETIMEDOUT);
  assert_true(o.t_waited == 5.0);
  assert_int_equal(o.got, 1);
  assert_int_equal(h.count, 1);
  free_loop(loop);
}

/* ==== Loops made and closed while signals come ========================= */

typedef struct storm {
  int signo;
  atomic_int stop;
  atomic_int sent;
} storm;

static void *storm_thread(void *arg) {
  storm *s = arg;
  while (!atomic_load(&s->stop)) {
    kill(getpid(), s->signo);
    atomic_fetch_add(&s->sent, 1);
    usleep(50);
  }
  return NULL;
}

static void *short_task(void *arg) {
  (void)arg;
  async_sleep(0.0005);
  return NULL;
}

/* Each close takes its pipe away while another thread's handler may be
 * writing to it; SIG_IGN, the disposition found, holds in between. */
static void test_signal_loops_closed_under_storm(void **state) {
  (void)state;
  sig_ignore(SIGUSR2);
  int fds0 = count_fds();
  storm s = {.signo = SIGUSR2};
  pthread_t th;
  assert_int_equal(pthread_create(&th, NULL, storm_thread, &s), 0);
  unsigned seen = 0;
  for (int i = 0; i < 200; i++) {
    async_loop *loop = new_loop();
    hits h = {0};
    assert_int_equal(async_signal_add(loop, SIGUSR2, on_signal, &h), 0);
    assert_int_equal(run_task(loop, short_task, NULL, NULL), 0);
    free_loop(loop);
    assert_ptr_equal(sig_current(SIGUSR2), SIG_IGN);
    seen += h.count;
  }
  atomic_store(&s.stop, 1);
  assert_int_equal(pthread_join(th, NULL), 0);
  assert_true(seen <= (unsigned)atomic_load(&s.sent));
  assert_int_equal(count_fds(), fds0);
  sig_default(SIGUSR2);
}

/* ==== Out of memory ==================================================== */

typedef struct oom_run {
  hits *h;
  int calls_after;
} oom_run;

static void *kill_oom(void *arg) {
  oom_run *o = arg;
  fail_allocs = 1; /* the handler's call_soon */
  kill(getpid(), SIGUSR1);
  o->calls_after = sleep_until(&o->h->calls, 1);
  fail_allocs = 0;
  return NULL;
}

static void test_signal_out_of_memory(void **state) {
  (void)state;
  async_loop *loop = new_loop();
  hits h = {0};
  failed_allocs = 0;
  fail_allocs = 1; /* the loop's signal record */
  assert_int_equal(async_signal_add(loop, SIGUSR1, on_signal, &h), -ENOMEM);
  assert_int_equal(failed_allocs, 1);
  assert_ptr_equal(sig_current(SIGUSR1), SIG_DFL);
  assert_int_equal(async_signal_add(loop, SIGUSR1, on_signal, &h), 0);
  /* The handler's call could not be queued: it is tried again. */
  oom_run o = {.h = &h};
  failed_allocs = 0;
  assert_int_equal(run_task(loop, kill_oom, &o, NULL), 0);
  assert_int_equal(failed_allocs, 1);
  assert_int_equal(o.calls_after, 1);
  assert_int_equal(h.count, 1);
  free_loop(loop);
}

/* ==== What close gives back ============================================ */

static int prev_hits;
static void prev_handler(int signo, siginfo_t *si, void *uc) {
  (void)signo;
  (void)si;
  (void)uc;
  prev_hits++;
}

static void test_signal_close_restores(void **state) {
  (void)state;
  sigset_t mask0, mask1;
  sigemptyset(&mask0);
  sigaddset(&mask0, SIGWINCH); /* a mask of the program's, kept as is */
  assert_int_equal(sigprocmask(SIG_SETMASK, &mask0, NULL), 0);
  struct sigaction prev, got;
  memset(&prev, 0, sizeof prev);
  prev.sa_sigaction = prev_handler;
  prev.sa_flags = SA_SIGINFO | SA_NODEFER;
  sigemptyset(&prev.sa_mask);
  sigaddset(&prev.sa_mask, SIGHUP);
  assert_int_equal(sigaction(SIGTERM, &prev, NULL), 0);

  async_loop *loop = new_loop();
  hits h = {0};
  assert_int_equal(async_signal_add(loop, SIGTERM, on_signal, &h), 0);
  assert_int_equal(sigaction(SIGTERM, NULL, &got), 0);
  assert_true(got.sa_sigaction != prev_handler);
  kill_run k = {.h = &h, .signo = SIGTERM, .kills = 1};
  assert_int_equal(run_task(loop, killer, &k, NULL), 0);
  assert_int_equal(h.count, 1);
  assert_int_equal(prev_hits, 0);
  free_loop(loop);

  assert_int_equal(sigaction(SIGTERM, NULL, &got), 0);
  assert_ptr_equal(got.sa_sigaction, prev_handler);
  assert_true(got.sa_flags & SA_SIGINFO);
  assert_true(got.sa_flags & SA_NODEFER);
  assert_true(sigismember(&got.sa_mask, SIGHUP));
  assert_int_equal(sigprocmask(SIG_SETMASK, NULL, &mask1), 0);
  for (int s = 1; s < NSIG; s++)
    assert_int_equal(sigismember(&mask1, s), sigismember(&mask0, s));
  kill(getpid(), SIGTERM);
  assert_int_equal(prev_hits, 1);

  sigemptyset(&mask0);
  assert_int_equal(sigprocmask(SIG_SETMASK, &mask0, NULL), 0);
  sig_default(SIGTERM);
}

/* A handler the program installed over the library's is left in place. */
static void test_signal_close_keeps_program_handler(void **state) {
  (void)state;
  async_loop *loop = new_loop();
  hits h = {0};
  assert_int_equal(async_signal_add(loop, SIGUSR1, on_signal, &h), 0);
  sig_ignore(SIGUSR1);
  free_loop(loop);
  assert_ptr_equal(sig_current(SIGUSR1), SIG_IGN);
  sig_default(SIGUSR1);
}

/* The library blocks nothing, so a child forked while a loop watches
 * SIGTERM starts with the mask empty; and SIGTERM there takes the
 * disposition the library found, not the parent's loop. */
static int blocked_in_proc_status(void) {
  FILE *f = fopen("/proc/self/status", "r");
  if (!f) return -1;
  char line[256];
  int blocked = -1;
  while (fgets(line, sizeof line, f))
    if (strncmp(line, "SigBlk:", 7) == 0)
      blocked = strtoull(line + 7, NULL, 16) != 0;
  fclose(f);
  return blocked;
}

static void test_signal_fork_child_mask(void **state) {
  (void)state;
  async_loop *loop = new_loop();
  hits h = {0};
  assert_int_equal(async_signal_add(loop, SIGTERM, on_signal, &h), 0);
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    sigset_t m;
    if (sigprocmask(SIG_SETMASK, NULL, &m) != 0) _exit(3);
    for (int s = 1; s < NSIG; s++)
      if (sigismember(&m, s) == 1) _exit(4);
    if (blocked_in_proc_status() != 0) _exit(5);
    kill(getpid(), SIGTERM); /* the default: dies of it */
    _exit(6);
  }
  int status = 0;
  assert_int_equal(waitpid(pid, &status, 0), pid);
  if (WIFEXITED(status))
    fprintf(stderr, "child exited %d\n", WEXITSTATUS(status));
  assert_true(WIFSIGNALED(status));
  assert_int_equal(WTERMSIG(status), SIGTERM);
  /* Nothing reached this loop. */
  kill_run k = {.h = &h, .signo = 0};
  assert_int_equal(run_task(loop, kill_once, &k, NULL), 0);
  assert_int_equal(h.calls, 0);
  free_loop(loop);
}

/* ==== async_run and SIGINT ============================================= */

typedef struct run_out {
  int kills;
  int slept;
  int cleanup;
  int catch_it;
} run_out;

static void *run_main(void *arg) {
  run_out *o = arg;
  for (int i = 0; i < o->kills; i++) kill(getpid(), SIGINT);
  o->slept = async_sleep(o->catch_it ? 0.05 : 30.0);
  o->cleanup = 1;
  if (o->catch_it && o->slept == -ECANCELED) {
    async_task_uncancel(async_task_current());
    return IPTR(42);
  }
  /* Unwound by the cancellation: passed on, as asyncio's CancelledError. */
  return o->slept ? async_fail(o->slept) : NULL;
}

static void test_signal_run_sigint_cancels_main(void **state) {
  (void)state;
  sig_default(SIGINT); /* ignored, when run in a shell's background */
  run_out o = {.kills = 1};
  assert_int_equal(async_run(run_main, &o, NULL), -EINTR);
  assert_int_equal(o.slept, -ECANCELED);
  assert_int_equal(o.cleanup, 1);
  assert_ptr_equal(sig_current(SIGINT), SIG_DFL);
}

static void test_signal_run_sigint_caught(void **state) {
  (void)state;
  sig_default(SIGINT);
  run_out o = {.kills = 1, .catch_it = 1};
  void *res = NULL;
  assert_int_equal(async_run(run_main, &o, &res), 0);
  assert_int_equal(o.slept, -ECANCELED);
  assert_int_equal(PTRI(res), 42);
  assert_ptr_equal(sig_current(SIGINT), SIG_DFL);
}

/* A program that took SIGINT keeps it: async_run leaves it alone. */
static void test_signal_run_program_sigint(void **state) {
  (void)state;
  sig_ignore(SIGINT);
  run_out o = {.kills = 1, .catch_it = 1};
  void *res = NULL;
  assert_int_equal(async_run(run_main, &o, &res), 0);
  assert_int_equal(o.slept, 0);
  assert_ptr_equal(sig_current(SIGINT), SIG_IGN);
  sig_default(SIGINT);
}

/* The program's own handler, added under async_run, replaces the
 * Runner's: SIGINT then cancels nothing. */
static void *run_own_handler(void *arg) {
  hits *h = arg;
  if (async_signal_add(async_loop_current(), SIGINT, on_signal, h)) return NULL;
  kill(getpid(), SIGINT);
  kill(getpid(), SIGINT); /* not the default action either */
  sleep_until(&h->calls, 1);
  for (int i = 0; i < 200 && h->count < 2; i++) async_sleep(0.005);
  return IPTR(async_sleep(0.01) == 0 ? 7 : -1);
}

static void test_signal_run_program_handler(void **state) {
  (void)state;
  sig_default(SIGINT);
  hits h = {0};
  void *res = NULL;
  assert_int_equal(async_run(run_own_handler, &h, &res), 0);
  assert_int_equal(PTRI(res), 7);
  assert_int_equal(h.count, 2);
  assert_int_equal(h.signo, SIGINT);
  assert_ptr_equal(sig_current(SIGINT), SIG_DFL);
}

static void test_signal_run_second_sigint_kills(void **state) {
  (void)state;
  sig_default(SIGINT);
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    run_out o = {.kills = 2};
    async_run(run_main, &o, NULL);
    _exit(7);
  }
  int status = 0;
  assert_int_equal(waitpid(pid, &status, 0), pid);
  assert_true(WIFSIGNALED(status));
  assert_int_equal(WTERMSIG(status), SIGINT);
}

/* The group fails when its tests left a pipe open or a child unreaped. */
int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_signal_handler_counts),
      cmocka_unit_test(test_signal_remove),
      cmocka_unit_test(test_signal_remove_drops_pending),
      cmocka_unit_test(test_signal_replace),
      cmocka_unit_test(test_signal_while_many_tasks_run),
      cmocka_unit_test(test_signal_from_thread_while_tasks_run),
      cmocka_unit_test(test_signal_wait),
      cmocka_unit_test(test_signal_wait_timeout),
      cmocka_unit_test(test_signal_wait_keeps_deliveries),
      cmocka_unit_test(test_signal_wait_cancel),
      cmocka_unit_test(test_signal_wait_removed),
      cmocka_unit_test(test_signal_wait_woken_then_cancelled),
      cmocka_unit_test(test_signal_wait_rejects),
      cmocka_unit_test(test_signal_other_loop_and_close),
      cmocka_unit_test(test_signal_virtual_clock),
      cmocka_unit_test(test_signal_loops_closed_under_storm),
      cmocka_unit_test(test_signal_out_of_memory),
      cmocka_unit_test(test_signal_close_restores),
      cmocka_unit_test(test_signal_close_keeps_program_handler),
      cmocka_unit_test(test_signal_fork_child_mask),
      cmocka_unit_test(test_signal_run_sigint_cancels_main),
      cmocka_unit_test(test_signal_run_sigint_caught),
      cmocka_unit_test(test_signal_run_program_sigint),
      cmocka_unit_test(test_signal_run_program_handler),
      cmocka_unit_test(test_signal_run_second_sigint_kills),
  };
  return cmocka_run_group_tests(tests, leak_group_setup, leak_group_teardown);
}
