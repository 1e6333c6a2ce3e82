/* SPDX-License-Identifier: MIT */
/* Every object with waiters, freed in the window between a waiter's
 * wake-up and its resumption (issue 9, item 1).
 *
 * For each kind, a waiter task parks on the object, and the object is
 * freed at each step of the window: by the waker right after the wake, by
 * a callback queued before the waiter's resumption, by another task that
 * runs first, by a callback that first cancels the woken waiter, and right
 * after a cancellation of the parked waiter. The free must either refuse
 * (-EBUSY: the waiter still reads the object when it resumes) or succeed
 * where the wake handed everything over (the waiter's record holds what it
 * waited for, and it never reads the object again); the woken task must
 * get a clear code, and under ASan or valgrind nothing may touch freed
 * memory. The test checks that each free really ran inside the window. */
#include "helpers.h"

#include <sys/socket.h>
#include <unistd.h>

enum step {
  INLINE,        /* the waker frees right after the wake */
  CALLBACK,      /* a callback queued before the wake frees */
  OTHER_TASK,    /* a task queued before the wake frees */
  CANCEL_WOKEN,  /* a callback cancels the woken waiter, then frees */
  CANCEL_INLINE, /* the waker cancels the woken waiter, then frees */
  CANCEL_PARKED, /* the parked waiter is cancelled, then freed at once */
  AFTER,         /* a callback queued right after the wake frees */
  NSTEPS
};

static const char *const step_names[] = {
    "inline",        "callback",      "other task", "cancel woken",
    "cancel inline", "cancel parked", "after"};

typedef struct ctx ctx;

typedef struct kind {
  const char *name;
  /* A free in the window returns -EBUSY (1), or 0 (0), or -EBUSY only
   * once the waiter was woken (2: it gives back what it was handed if it
   * is then cancelled; cancelled while parked, it owns nothing and never
   * touches the object again). */
  int busy;
  int self_wake; /* the wake is done by a task of the object's own */
  int normal;    /* what the wait returns when woken */
  void (*make)(ctx *c);
  int (*wait)(ctx *c); /* run by the waiter task */
  void (*wake)(ctx *c);
  int (*free)(ctx *c);
  void (*done)(ctx *c); /* gives back what make() took besides obj */
} kind;

struct ctx {
  const kind *k;
  int step;
  async_loop *loop;
  void *obj;
  async_future *aux;
  async_task *waiter;
  int go; /* tells a self-waking kind's task to wake the waiter */
  int resumed, code;
  int free_ran, free_saw_resumed, free_rc, final_rc;
};

/* {==== Freeing at each step ============================================ */

static void do_free(ctx *c) {
  c->free_ran++;
  c->free_saw_resumed = c->resumed;
  c->free_rc = c->k->free(c);
}

static void free_cb(void *arg) { do_free(arg); }

static void cancel_free_cb(void *arg) {
  ctx *c = arg;
  async_future_cancel(c->waiter);
  do_free(c);
}

static void *free_task(void *arg) {
  do_free(arg);
  return NULL;
}

/* Prepares the step, wakes the waiter, and frees inline if asked. */
static void waker_step(ctx *c) {
  switch (c->step) {
  case CALLBACK:
    async_loop_call_soon(c->loop, free_cb, c, NULL);
    break;
  case OTHER_TASK:
    async_task_spawn(c->loop, NULL, free_task, c, NULL);
    break;
  case CANCEL_WOKEN:
    async_loop_call_soon(c->loop, cancel_free_cb, c, NULL);
    break;
  }
  c->k->wake(c);
  if (c->step == CANCEL_INLINE) async_future_cancel(c->waiter);
  if (c->step == INLINE || c->step == CANCEL_INLINE) do_free(c);
  if (c->step == AFTER) async_loop_call_soon(c->loop, free_cb, c, NULL);
}

/* The task of a self-waking kind (producer, group child): waits for `go`,
 * then does the waker's step; its yield or its end is the wake. */
static int self_waker(ctx *c) {
  while (!c->go)
    if (async_yield()) return -ECANCELED;
  waker_step(c);
  return 0;
}

static void *waiter_fn(void *arg) {
  ctx *c = arg;
  int rc = c->k->wait(c);
  /* From here on the object may be gone: only the record is written. */
  c->code = rc;
  c->resumed = 1;
  return NULL;
}

static void nop(ctx *c) { (void)c; }

/* }==== */

/* {==== The kinds ======================================================= */

static void queue_make(ctx *c) {
  assert_int_equal(async_queue_new((async_queue **)&c->obj, 0, NULL), 0);
}
static int queue_wait(ctx *c) {
  void *item = NULL;
  int rc = async_queue_get(c->obj, &item);
  return rc ? rc : PTRI(item) == 7 ? 0 : -EPROTO;
}
static void queue_wake(ctx *c) { async_queue_put_nowait(c->obj, IPTR(7)); }
static int queue_free(ctx *c) { return async_queue_free(c->obj); }

static void lock_make(ctx *c) {
  assert_int_equal(async_lock_new((async_lock **)&c->obj), 0);
  assert_int_equal(async_lock_acquire(c->obj), 0);
}
static int lock_wait(ctx *c) { return async_lock_acquire(c->obj); }
static void lock_wake(ctx *c) { async_lock_release(c->obj); }
static int lock_free(ctx *c) { return async_lock_free(c->obj); }

static void event_make(ctx *c) {
  assert_int_equal(async_event_new((async_event **)&c->obj), 0);
}
static int event_wait(ctx *c) { return async_event_wait(c->obj); }
static void event_wake(ctx *c) { async_event_set(c->obj); }
static int event_free(ctx *c) { return async_event_free(c->obj); }

static void cond_make(ctx *c) {
  assert_int_equal(async_condition_new((async_condition **)&c->obj, NULL), 0);
}
static int cond_wait(ctx *c) {
  int rc = async_condition_acquire(c->obj);
  return rc ? rc : async_condition_wait(c->obj); /* returns holding it */
}
static void cond_wake(ctx *c) {
  async_condition_acquire(c->obj);
  async_condition_notify(c->obj, 1);
  async_condition_release(c->obj);
}
static int cond_free(ctx *c) { return async_condition_free(c->obj); }

static void sem_make(ctx *c) {
  assert_int_equal(async_semaphore_new((async_semaphore **)&c->obj, 0), 0);
}
static void bsem_make(ctx *c) {
  assert_int_equal(async_bounded_semaphore_new((async_semaphore **)&c->obj, 1),
                   0);
  assert_int_equal(async_semaphore_try_acquire(c->obj), 0);
}
static int sem_wait(ctx *c) { return async_semaphore_acquire(c->obj); }
static void sem_wake(ctx *c) { async_semaphore_release(c->obj); }
static int sem_free(ctx *c) { return async_semaphore_free(c->obj); }

static void barrier_make(ctx *c) {
  assert_int_equal(async_barrier_new((async_barrier **)&c->obj, 2), 0);
}
static int barrier_wait(ctx *c) { return async_barrier_wait(c->obj); }
static void barrier_wake(ctx *c) { async_barrier_wait(c->obj); }
static int barrier_free(ctx *c) { return async_barrier_free(c->obj); }

static void *producer_yield(void *arg) {
  ctx *c = arg;
  if (self_waker(c) || async_gen_yield(IPTR(7)) == -ECANCELED)
    return async_fail(-ECANCELED);
  return NULL;
}
static void *producer_return(void *arg) {
  return self_waker(arg) ? async_fail(-ECANCELED) : NULL;
}
static void gen_yield_make(ctx *c) {
  assert_int_equal(
      async_gen_new((async_gen **)&c->obj, producer_yield, c, NULL), 0);
}
static void gen_return_make(ctx *c) {
  assert_int_equal(
      async_gen_new((async_gen **)&c->obj, producer_return, c, NULL), 0);
}
static int gen_wait(ctx *c) {
  void *v = NULL;
  int rc = async_gen_next(c->obj, &v);
  return rc == 0 && PTRI(v) != 7 ? -EPROTO : rc;
}
static int gen_free(ctx *c) { return async_gen_free(c->obj); }

static void ac_make(ctx *c) {
  assert_int_equal(async_future_new(c->loop, &c->aux), 0);
  assert_int_equal(async_as_completed_new((async_as_completed **)&c->obj,
                                          &c->aux, 1, ASYNC_NO_TIMEOUT),
                   0);
}
static int ac_wait(ctx *c) {
  async_future *f = NULL;
  int rc = async_as_completed_next(c->obj, &f);
  return rc == 1 && f != c->aux ? -EPROTO : rc;
}
static void ac_wake(ctx *c) { async_future_set_result(c->aux, NULL); }
static int ac_free(ctx *c) { return async_as_completed_free(c->obj); }
static void aux_release(ctx *c) { async_future_release(c->aux); }

static void *group_child(void *arg) {
  self_waker(arg);
  return NULL;
}
static int group_wait(ctx *c) {
  async_task_group *g = NULL;
  int rc = async_task_group_new(&g);
  if (rc) return rc;
  c->obj = g;
  rc = async_task_group_spawn(g, NULL, group_child, c, NULL);
  return rc ? rc : async_task_group_wait(g);
}
static int group_free(ctx *c) { return async_task_group_free(c->obj); }

static void future_make(ctx *c) {
  assert_int_equal(async_future_new(c->loop, (async_future **)&c->obj), 0);
}
static int future_wait(ctx *c) {
  void *v = NULL;
  int rc = async_await(c->obj, &v);
  return rc == 0 && PTRI(v) != 7 ? -EPROTO : rc;
}
static void future_wake(ctx *c) { async_future_set_result(c->obj, IPTR(7)); }
/* The waiter holds a reference: the release defers the free. */
static int future_free(ctx *c) { return async_future_release(c->obj); }

/* Streams over a socket pair (the peer in c->aux's place: a pointer to
 * its fd). The wakes are the synchronous ones: a close wakes the reader,
 * an fd closed under the stream (async_fd_close) wakes those that drain,
 * both with -EBADF. */
typedef struct {
  async_stream *s;
  int sv[2];
} stream_obj;

static void stream_make(ctx *c) {
  stream_obj *o = calloc(1, sizeof *o);
  assert_non_null(o);
  assert_int_equal(
      socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, o->sv),
      0);
  int small = 4096;
  setsockopt(o->sv[0], SOL_SOCKET, SO_SNDBUF, &small, sizeof small);
  async_stream_options so;
  async_stream_options_init(&so);
  so.high_water = 1;
  so.low_water = 0;
  assert_int_equal(async_stream_open(&o->s, c->loop, o->sv[0], &so), 0);
  c->obj = o;
}
static int stream_read_wait(ctx *c) {
  char b[8];
  return (int)async_stream_read(((stream_obj *)c->obj)->s, b, sizeof b,
                                ASYNC_NO_TIMEOUT);
}
static void stream_read_wake(ctx *c) {
  async_stream_close(((stream_obj *)c->obj)->s);
}
static int stream_drain_wait(ctx *c) {
  static char chunk[64 * 1024];
  async_stream *s = ((stream_obj *)c->obj)->s;
  int rc = async_stream_write(s, chunk, sizeof chunk);
  return rc ? -EPROTO : async_stream_drain(s, ASYNC_NO_TIMEOUT);
}
static void stream_drain_wake(ctx *c) {
  async_fd_close(((stream_obj *)c->obj)->sv[0]);
}
static int stream_free(ctx *c) {
  return async_stream_free(((stream_obj *)c->obj)->s);
}
static void stream_done(ctx *c) {
  close(((stream_obj *)c->obj)->sv[1]);
  free(c->obj);
}

static int stream_closed_wait(ctx *c) {
  static char chunk[64 * 1024];
  async_stream *s = ((stream_obj *)c->obj)->s;
  int rc = async_stream_write(s, chunk, sizeof chunk);
  if (!rc) rc = async_stream_close(s);
  return rc ? -EPROTO : async_stream_wait_closed(s, ASYNC_NO_TIMEOUT);
}

/* A server on loopback, whose serve_forever the stop wakes. */
static int idle_handler(async_stream *s, void *arg) {
  (void)s;
  (void)arg;
  return 0;
}
static void server_make(ctx *c) {
  int fd = async_tcp_listen("127.0.0.1", 0, 16, 0);
  assert_true(fd >= 0);
  assert_int_equal(async_server_start((async_server **)&c->obj, c->loop, fd,
                                      idle_handler, NULL, NULL),
                   0);
}
static int server_wait(ctx *c) { return async_server_serve_forever(c->obj); }
static void server_wake(ctx *c) { async_server_stop(c->obj, 0); }
static int server_free(ctx *c) { return async_server_free(c->obj); }

static const kind kinds[] = {
    {"queue", 2, 0, 0, queue_make, queue_wait, queue_wake, queue_free, nop},
    {"lock", 2, 0, 0, lock_make, lock_wait, lock_wake, lock_free, nop},
    {"event", 0, 0, 0, event_make, event_wait, event_wake, event_free, nop},
    {"condition", 1, 0, 0, cond_make, cond_wait, cond_wake, cond_free, nop},
    {"semaphore", 2, 0, 0, sem_make, sem_wait, sem_wake, sem_free, nop},
    {"bounded semaphore", 2, 0, 0, bsem_make, sem_wait, sem_wake, sem_free,
     nop},
    {"barrier", 0, 0, 0, barrier_make, barrier_wait, barrier_wake, barrier_free,
     nop},
    {"generator (yield)", 1, 1, 0, gen_yield_make, gen_wait, nop, gen_free,
     nop},
    {"generator (return)", 1, 1, ASYNC_GEN_DONE, gen_return_make, gen_wait, nop,
     gen_free, nop},
    {"as_completed", 1, 0, 1, ac_make, ac_wait, ac_wake, ac_free, aux_release},
    {"task group", 1, 1, 0, nop, group_wait, nop, group_free, nop},
    {"future", 0, 0, 0, future_make, future_wait, future_wake, future_free,
     nop},
    {"stream (read)", 1, 0, -EBADF, stream_make, stream_read_wait,
     stream_read_wake, stream_free, stream_done},
    {"stream (drain)", 1, 0, -EBADF, stream_make, stream_drain_wait,
     stream_drain_wake, stream_free, stream_done},
    {"stream (wait_closed)", 1, 0, -EBADF, stream_make, stream_closed_wait,
     stream_drain_wake, stream_free, stream_done},
    {"server (serve_forever)", 1, 0, 0, server_make, server_wait, server_wake,
     server_free, nop},
};

/* }==== */

static void *main_fn(void *arg) {
  ctx *c = arg;
  c->k->make(c);
  assert_int_equal(async_task_spawn(c->loop, &c->waiter, waiter_fn, c, NULL),
                   0);
  /* The waiter parks (a self-waking kind's task then spins on `go`). */
  for (int i = 0; i < 3; i++) async_yield();
  if (c->step == CANCEL_PARKED) {
    async_future_cancel(c->waiter);
    do_free(c);
  } else if (c->k->self_wake) {
    c->go = 1;
  } else {
    waker_step(c);
  }
  async_await(c->waiter, NULL);
  async_task_release(c->waiter);
  /* Refused in the window: it must go through once the waiter is out. */
  if (c->free_rc == -EBUSY) c->final_rc = c->k->free(c);
  c->k->done(c);
  return NULL;
}

static void run_kind(const kind *k) {
  for (int step = 0; step < NSTEPS; step++) {
    ctx c = {.k = k, .step = step, .code = -12345};
    c.loop = new_loop();
    assert_int_equal(run_task(c.loop, main_fn, &c, NULL), 0);
    free_loop(c.loop);
    /* Queued after the wake, the free may find the waiter out already
     * (it ran first): then it must simply succeed. */
    int late = step == AFTER && c.free_saw_resumed;
    int busy = k->busy == 1 || (k->busy == 2 && step != CANCEL_PARKED);
    int want_free = busy && !late ? -EBUSY : 0;
    int code_ok = step == CANCEL_PARKED ? c.code == -ECANCELED
                  : step == CANCEL_WOKEN || step == CANCEL_INLINE
                      ? c.code == k->normal || c.code == -ECANCELED
                      : c.code == k->normal;
    if (c.free_ran != 1 || (c.free_saw_resumed && !late) ||
        c.free_rc != want_free || !c.resumed || !code_ok || c.final_rc != 0) {
      fprintf(stderr,
              "%s, %s: free ran %d (after resumption %d) -> %d (want %d), "
              "waiter %s with %d, final free %d\n",
              k->name, step_names[step], c.free_ran, c.free_saw_resumed,
              c.free_rc, want_free, c.resumed ? "resumed" : "never resumed",
              c.code, c.final_rc);
      fail();
    }
  }
}

#define KIND_TEST(fn, i)                                                       \
  static void fn(void **state) {                                               \
    (void)state;                                                               \
    run_kind(&kinds[i]);                                                       \
  }

KIND_TEST(test_queue, 0)
KIND_TEST(test_lock, 1)
KIND_TEST(test_event, 2)
KIND_TEST(test_condition, 3)
KIND_TEST(test_semaphore, 4)
KIND_TEST(test_bounded_semaphore, 5)
KIND_TEST(test_barrier, 6)
KIND_TEST(test_generator_yield, 7)
KIND_TEST(test_generator_return, 8)
KIND_TEST(test_as_completed, 9)
KIND_TEST(test_task_group, 10)
KIND_TEST(test_future, 11)
KIND_TEST(test_stream_read, 12)
KIND_TEST(test_stream_drain, 13)
KIND_TEST(test_stream_wait_closed, 14)
KIND_TEST(test_server, 15)

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_queue),
      cmocka_unit_test(test_lock),
      cmocka_unit_test(test_event),
      cmocka_unit_test(test_condition),
      cmocka_unit_test(test_semaphore),
      cmocka_unit_test(test_bounded_semaphore),
      cmocka_unit_test(test_barrier),
      cmocka_unit_test(test_generator_yield),
      cmocka_unit_test(test_generator_return),
      cmocka_unit_test(test_as_completed),
      cmocka_unit_test(test_task_group),
      cmocka_unit_test(test_future),
      cmocka_unit_test(test_stream_read),
      cmocka_unit_test(test_stream_drain),
      cmocka_unit_test(test_stream_wait_closed),
      cmocka_unit_test(test_server),
  };
  return cmocka_run_group_tests_name("free_window", tests, NULL, NULL);
}
