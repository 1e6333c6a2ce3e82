/* SPDX-License-Identifier: MIT */
/* Allocation failure: every allocating call, with its Nth allocation (or
 * mmap) failing for N = 1, 2, ... until the call completes, returns
 * -ENOMEM, leaves nothing behind (ASan and valgrind check the leaks) and
 * leaves the loop usable. The allocator is interposed at link time
 * (-Wl,--wrap, see tests/CMakeLists.txt), for the library's calls only. */
#include "helpers.h"

#include <netdb.h>
#include <netinet/in.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

void *__real_malloc(size_t n);
void *__real_calloc(size_t n, size_t size);
void *__real_realloc(void *p, size_t n);
char *__real_strdup(const char *s);
void *__real_mmap(void *addr, size_t len, int prot, int flags, int fd,
                  off_t off);
void *__wrap_malloc(size_t n);
void *__wrap_calloc(size_t n, size_t size);
void *__wrap_realloc(void *p, size_t n);
char *__wrap_strdup(const char *s);
void *__wrap_mmap(void *addr, size_t len, int prot, int flags, int fd,
                  off_t off);

static int countdown; /* 0: off; else the allocation that fails, from 1 */
static int fired;

static int should_fail(void) {
  if (countdown == 0 || --countdown != 0) return 0;
  fired = 1;
  return 1;
}

void *__wrap_malloc(size_t n) {
  return should_fail() ? NULL : __real_malloc(n);
}
void *__wrap_calloc(size_t n, size_t size) {
  return should_fail() ? NULL : __real_calloc(n, size);
}
void *__wrap_realloc(void *p, size_t n) {
  return should_fail() ? NULL : __real_realloc(p, n);
}
char *__wrap_strdup(const char *s) {
  return should_fail() ? NULL : __real_strdup(s);
}
void *__wrap_mmap(void *addr, size_t len, int prot, int flags, int fd,
                  off_t off) {
  if (should_fail()) {
    errno = ENOMEM;
    return MAP_FAILED;
  }
  return __real_mmap(addr, len, prot, flags, fd, off);
}

static void arm(int n) {
  fired = 0;
  countdown = n;
}

static int disarm(void) {
  countdown = 0;
  return fired;
}

/* What a scenario saw: the first allocation count at which the call did
 * not fail cleanly, or 0. */
typedef struct {
  const char *name;
  int bad_at;
  int bad_err;
  int completed; /* the call succeeded once no allocation failed */
  int failures;  /* allocations failed on purpose before it completed */
} verdict;

/* Runs op with the 1st, 2nd, ... allocation failing until it completes.
 * op returns 0 or a negative errno and undoes everything it made. */
static void exhaust(verdict *v, const char *name, int (*op)(void *),
                    void *arg) {
  v->name = name;
  for (int n = 1; n < 200; n++) {
    arm(n);
    int err = op(arg);
    int hit = disarm();
    v->failures += hit;
    if (!hit) {
      v->completed = err == 0;
      if (err) {
        v->bad_at = n;
        v->bad_err = err;
      }
      return;
    }
    if (err != 0 && err != -ENOMEM && !v->bad_at) {
      v->bad_at = n;
      v->bad_err = err;
    }
  }
}

static void expect_clean(const verdict *v) {
  if (v->bad_at || !v->completed || v->failures == 0) {
    fprintf(stderr,
            "%s: allocation %d gave %d (%s); completed %d after "
            "%d failures\n",
            v->name, v->bad_at, v->bad_err, async_strerror(v->bad_err),
            v->completed, v->failures);
    fail();
  }
  print_message("%s: clean through %d failed allocations\n", v->name,
                v->failures);
}

/* ---- Outside a loop ---------------------------------------------------- */

static int op_loop_new(void *arg) {
  (void)arg;
  async_loop *loop = IPTR(1);
  int err = async_loop_new(&loop, NULL);
  if (err) return loop == NULL ? err : -EFAULT;
  async_loop_free(loop);
  return 0;
}

static void test_oom_loop_new(void **state) {
  (void)state;
  verdict v = {0};
  exhaust(&v, "async_loop_new", op_loop_new, NULL);
  expect_clean(&v);
}

static void *nothing(void *arg) { return arg; }

static int op_spawn_named(void *arg) {
  async_loop *loop = arg;
  async_task_options o;
  async_task_options_init(&o);
  o.name = "named";
  async_task *t = IPTR(1);
  int err = async_task_spawn(loop, &t, nothing, NULL, &o);
  if (err) return t == NULL ? err : -EFAULT;
  int r = async_loop_run_until_complete(loop, t, NULL);
  async_task_release(t);
  return r;
}

static void count_cb(void *arg) { (*(int *)arg)++; }

static int op_callbacks(void *arg) {
  async_loop *loop = arg;
  async_handle *a = NULL, *b = NULL;
  int n = 0;
  int err = async_loop_call_soon(loop, count_cb, &n, &a);
  if (!err) err = async_loop_call_later(loop, 0.0, count_cb, &n, &b);
  if (a) async_handle_cancel(a);
  if (b) async_handle_cancel(b);
  return err;
}

static void done_cb(async_future *f, void *arg) {
  (void)f;
  (*(int *)arg)++;
}

static void stop_cb(void *arg) { async_loop_stop(arg); }

static int op_future_callbacks(void *arg) {
  async_loop *loop = arg;
  async_future *f = NULL;
  int n = 0;
  int err = async_future_new(loop, &f);
  if (err) return err;
  err = async_future_add_done_callback(f, done_cb, &n);
  async_future_set_result(f, NULL);
  /* The stop is not armed: it must not be what fails. */
  int saved = countdown;
  countdown = 0;
  async_loop_call_soon(loop, stop_cb, loop, NULL);
  countdown = saved;
  async_loop_run_forever(loop);
  async_future_release(f);
  if (!err && n != 1) return -EFAULT;
  return err;
}

static void test_oom_loop_calls(void **state) {
  (void)state;
  async_loop *loop = new_loop();
  verdict v[3] = {{0}};
  exhaust(&v[0], "async_task_spawn", op_spawn_named, loop);
  exhaust(&v[1], "async_loop_call_soon/later", op_callbacks, loop);
  exhaust(&v[2], "future + done callback", op_future_callbacks, loop);
  for (int i = 0; i < 3; i++) expect_clean(&v[i]);
  /* Still usable. */
  assert_int_equal(op_spawn_named(loop), 0);
  free_loop(loop);
}

/* A timer the heap has no room for still fires in deadline order: arming
 * never fails for want of memory. On a virtual clock: 3.0 and 1.0 form the
 * run (its ends), so every deadline between needs the heap, whose first
 * allocation (the one after the handle's) fails. */
static int g_order[8], g_norder;
static void order_cb(void *arg) { g_order[g_norder++] = PTRI(arg); }

static void test_oom_timer_heap_full(void **state) {
  (void)state;
  async_loop_options o;
  async_loop_options_init(&o);
  o.virtual_clock = 1;
  async_loop *loop = NULL;
  assert_int_equal(async_loop_new(&loop, &o), 0);
  g_norder = 0;
  assert_int_equal(async_loop_call_at(loop, 3.0, order_cb, IPTR(5), NULL), 0);
  assert_int_equal(async_loop_call_at(loop, 1.0, order_cb, IPTR(0), NULL), 0);
  const double when[] = {2.0, 1.5, 2.5, 2.0};
  const int id[] = {3, 1, 4, 2};
  for (int i = 0; i < 4; i++) {
    arm(2);
    assert_int_equal(
        async_loop_call_at(loop, when[i], order_cb, IPTR(id[i]), NULL), 0);
    assert_true(disarm());
  }
  assert_int_equal(async_loop_call_at(loop, 4.0, stop_cb, loop, NULL), 0);
  assert_int_equal(async_loop_run_forever(loop), 0);
  assert_int_equal(g_norder, 6);
  /* 2.0 armed first (id 3) fires before the later 2.0 (id 2): FIFO. */
  const int want[] = {0, 1, 3, 2, 4, 5};
  for (int i = 0; i < 6; i++) assert_int_equal(g_order[i], want[i]);
  free_loop(loop);
}

/* ---- Inside a task ----------------------------------------------------- */

static int op_first_run_without_a_stack(void *arg) {
  (void)arg;
  /* A stack size no other test uses: a new size class, a new chunk. */
  async_task_options o;
  async_task_options_init(&o);
  o.stack_size = 3u << 20;
  async_task *t;
  int saved = countdown;
  countdown = 0; /* the spawn is not what this scenario tests */
  int err = async_task_spawn(async_loop_current(), &t, nothing, IPTR(5), &o);
  countdown = saved;
  if (err) return err;
  void *res = NULL;
  err = async_await(t, &res); /* -ENOMEM: it never ran */
  async_task_release(t);
  if (!err && PTRI(res) != 5) return -EFAULT;
  return err;
}

static void resolve_cb(void *arg) { async_future_set_result(arg, NULL); }

static int op_gather(void *arg) {
  (void)arg;
  enum { N = 100 }; /* more than the inline slots: gather allocates */
  async_loop *loop = async_loop_current();
  async_future *f[N];
  int saved = countdown;
  countdown = 0;
  for (int i = 0; i < N; i++) async_future_new(loop, &f[i]);
  for (int i = 0; i < N - 1; i++) async_future_set_result(f[i], IPTR(i));
  async_loop_call_soon(loop, resolve_cb, f[N - 1], NULL);
  countdown = saved;
  void *res[N];
  int err = async_gather(f, N, res);
  saved = countdown;
  countdown = 0;
  if (err) async_future_set_result(f[N - 1], NULL); /* if still pending */
  async_yield();                                    /* let resolve_cb run */
  for (int i = 0; i < N; i++) async_future_release(f[i]);
  countdown = saved;
  if (!err && PTRI(res[7]) != 7) return -EFAULT;
  return err;
}

static int op_sync_objects(void *arg) {
  (void)arg;
  async_queue *q = NULL;
  async_lock *l = NULL;
  async_event *e = NULL;
  async_condition *c = NULL;
  async_semaphore *s = NULL;
  async_barrier *b = NULL;
  int err = async_queue_new(&q, 16, NULL);
  if (!err) err = async_queue_put_nowait(q, IPTR(1));
  if (!err) err = async_lock_new(&l);
  if (!err) err = async_event_new(&e);
  if (!err) err = async_condition_new(&c, NULL);
  if (!err) err = async_semaphore_new(&s, 1);
  if (!err) err = async_barrier_new(&b, 1);
  if (b) async_barrier_free(b);
  if (s) async_semaphore_free(s);
  if (c) async_condition_free(c);
  if (e) async_event_free(e);
  if (l) async_lock_free(l);
  if (q) async_queue_free(q);
  return err;
}

static int op_unbounded_queue_growth(void *arg) {
  (void)arg;
  async_queue *q = NULL;
  int err = async_queue_new(&q, 0, NULL);
  int put = 0;
  for (int i = 0; !err && i < 1000; i++) {
    err = async_queue_put_nowait(q, IPTR(i + 1));
    if (!err) put++;
  }
  /* Nothing lost: every item put comes out, in order. */
  for (int i = 0; i < put; i++) {
    void *v = NULL;
    if (async_queue_get_nowait(q, &v) != 0 || PTRI(v) != i + 1) {
      err = -EFAULT;
      break;
    }
  }
  if (q) async_queue_free(q);
  return err;
}

static void *powers(void *arg) {
  (void)arg;
  for (intptr_t i = 1; i <= 64; i *= 2)
    if (async_gen_yield(IPTR(i))) break;
  return NULL;
}

static int op_generator_collect(void *arg) {
  (void)arg;
  async_gen *g = NULL;
  int err = async_gen_new(&g, powers, NULL, NULL);
  if (err) return err;
  void **items = NULL;
  size_t n = 0;
  err = async_gen_collect(g, &items, &n);
  async_gen_free(g);
  if (!err && (n != 7 || PTRI(items[6]) != 64)) err = -EFAULT;
  free(items);
  return err;
}

static int op_task_group(void *arg) {
  (void)arg;
  async_task_group *g = NULL;
  int err = async_task_group_new(&g);
  if (err) return err;
  err = async_task_group_spawn(g, NULL, nothing, NULL, NULL);
  int werr = async_task_group_wait(g);
  async_task_group_free(g);
  return err ? err : werr;
}

static int op_as_completed(void *arg) {
  (void)arg;
  async_loop *loop = async_loop_current();
  async_future *f[2];
  int saved = countdown;
  countdown = 0;
  async_future_new(loop, &f[0]);
  async_future_new(loop, &f[1]);
  async_future_set_result(f[0], NULL);
  async_future_set_result(f[1], NULL);
  countdown = saved;
  async_as_completed *it = NULL;
  int err = async_as_completed_new(&it, f, 2, ASYNC_NO_TIMEOUT);
  async_future *got;
  int n = 0;
  while (!err && async_as_completed_next(it, &got) == 1) n++;
  if (it) async_as_completed_free(it);
  async_future_release(f[0]);
  async_future_release(f[1]);
  if (!err && n != 2) err = -EFAULT;
  return err;
}

static int op_fd_table_growth(void *arg) {
  (void)arg;
  int p[2];
  if (pipe(p)) return -EFAULT;
  /* A high fd number: the loop's fd table grows a page for it. */
  int hi = dup2(p[1], 900 + (int)(getpid() % 50));
  int err = hi < 0 ? -EFAULT : async_fd_wait(hi, ASYNC_WRITABLE, 1.0);
  if (hi >= 0) {
    async_fd_forget(async_loop_current(), hi);
    close(hi);
  }
  close(p[0]);
  close(p[1]);
  return err == ASYNC_WRITABLE ? 0 : err;
}

/* A stream's buffers: the write queue (the socket is full, so the write
 * must queue) and the read buffer (a line, then an exact read that grows
 * it). A failed write queues nothing; a failed read consumes nothing
 * (what it read from the fd stays buffered for the next). */
static int op_stream_buffers(void *arg) {
  (void)arg;
  static char big[100000];
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv)) return -EFAULT;
  async_stream *s = NULL;
  int err = async_stream_open(&s, async_loop_current(), sv[0], NULL);
  if (err) {
    close(sv[0]);
    close(sv[1]);
    return s ? -EFAULT : err;
  }
  while (send(sv[0], big, sizeof big, MSG_DONTWAIT) > 0) {
  }
  err = async_stream_write(s, big, sizeof big);
  if (err == -ENOMEM && async_stream_write_buffered(s) != 0) err = -EFAULT;
  if (!err && async_stream_write_buffered(s) != (ssize_t)sizeof big)
    err = -EFAULT;
  char line[16];
  if (!err) {
    send(sv[1], "line\n", 5, 0);
    send(sv[1], big, 20000, 0);
    ssize_t r = async_stream_readline(s, line, sizeof line, 1);
    if (r == -ENOMEM)
      err = async_stream_buffered(s) == 0 ? -ENOMEM : -EFAULT;
    else if (r != 5)
      err = -EFAULT;
  }
  if (!err) {
    ssize_t before = async_stream_buffered(s);
    ssize_t r = async_stream_readexactly(s, big, 20000, 1);
    if (r == -ENOMEM)
      err = async_stream_buffered(s) >= before ? -ENOMEM : -EFAULT;
    else if (r != 20000)
      err = -EFAULT;
  }
  async_stream_free(s);
  close(sv[1]);
  return err;
}

/* A child with three pipes, spawned and talked to: a failed spawn leaves
 * no child and no fd; a failed communicate leaves the child, killed and
 * reaped here. */
static int op_process(void *arg) {
  (void)arg;
  async_process_options o;
  async_process_options_init(&o);
  o.in = o.out = o.err = ASYNC_PROCESS_PIPE;
  async_process *p = IPTR(1);
  const char *const argv[] = {"cat", NULL};
  int err = async_process_spawn(&p, async_loop_current(), argv, &o);
  if (err) return p == IPTR(1) ? err : -EFAULT;
  char *out = NULL, *errs = NULL;
  size_t n = 0, en = 0;
  int code = -1;
  err =
      async_process_communicate(p, "hello", 5, &out, &n, &errs, &en, &code, 10);
  if (!err && (n != 5 || memcmp(out, "hello", 5) || en != 0 || code != 0))
    err = -EFAULT;
  if (err) {
    async_process_kill(p);
    async_process_wait(p, NULL, 10);
  }
  free(out);
  free(errs);
  async_process_free(p);
  return err;
}

typedef struct {
  verdict v[10];
  int n;
} verdicts;

static void *in_task(void *arg) {
  verdicts *vs = arg;
  exhaust(&vs->v[vs->n++], "first run without a stack",
          op_first_run_without_a_stack, NULL);
  exhaust(&vs->v[vs->n++], "gather", op_gather, NULL);
  exhaust(&vs->v[vs->n++], "queue/lock/event/condition/semaphore/barrier",
          op_sync_objects, NULL);
  exhaust(&vs->v[vs->n++], "unbounded queue growth", op_unbounded_queue_growth,
          NULL);
  exhaust(&vs->v[vs->n++], "generator collect", op_generator_collect, NULL);
  exhaust(&vs->v[vs->n++], "task group", op_task_group, NULL);
  exhaust(&vs->v[vs->n++], "as_completed", op_as_completed, NULL);
  exhaust(&vs->v[vs->n++], "fd table growth", op_fd_table_growth, NULL);
  exhaust(&vs->v[vs->n++], "stream buffers", op_stream_buffers, NULL);
  exhaust(&vs->v[vs->n++], "process", op_process, NULL);
  return NULL;
}

static void test_oom_inside_a_task(void **state) {
  (void)state;
  verdicts vs = {0};
  assert_int_equal(async_run(in_task, &vs, NULL), 0);
  assert_int_equal(vs.n, 10);
  for (int i = 0; i < vs.n; i++) expect_clean(&vs.v[i]);
}

/* The thread pool and name resolution, each attempt on a loop of its
 * own, so that making the pool is among what fails. */
static void *pool_calls(void *arg) {
  (void)arg;
  void *res = NULL;
  int err = async_to_thread(nothing, IPTR(5), &res, NULL);
  if (!err && PTRI(res) != 5) err = -EFAULT;
  if (!err) {
    struct addrinfo hints = {.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV};
    struct addrinfo *ai = NULL;
    err = async_getaddrinfo("127.0.0.1", "80", &hints, &ai, 10.0);
    if (!err && !ai) err = -EFAULT;
    freeaddrinfo(ai);
  }
  if (!err) {
    struct sockaddr_in in = {.sin_family = AF_INET};
    in.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    char host[64];
    err = async_getnameinfo((struct sockaddr *)&in, sizeof in, host,
                            sizeof host, NULL, 0, NI_NUMERICHOST, 10.0);
  }
  return err ? async_fail(err) : NULL;
}

static int op_pool(void *arg) {
  (void)arg;
  return async_run(pool_calls, NULL, NULL);
}

static void test_oom_pool(void **state) {
  (void)state;
  verdict v = {0};
  exhaust(&v, "to_thread, getaddrinfo, getnameinfo", op_pool, NULL);
  expect_clean(&v);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_oom_loop_new),
      cmocka_unit_test(test_oom_loop_calls),
      cmocka_unit_test(test_oom_inside_a_task),
      cmocka_unit_test(test_oom_timer_heap_full),
      cmocka_unit_test(test_oom_pool),
  };
  return cmocka_run_group_tests_name("oom", tests, NULL, NULL);
}
