/* SPDX-License-Identifier: MIT */
/* An API-sequence fuzzer: the input bytes are a program that tasks run.
 *
 * Each input gets a fresh loop on the virtual clock and a "world" of
 * shared objects (a queue, a lock, an event, a condition, a semaphore, a
 * barrier, two bare futures, a generator, a task group, an as_completed
 * iterator, a pipe, eight task slots). The main task interprets the whole
 * input, two bytes per step (an opcode and its argument); a spawn takes
 * the next bytes as the child's own program, which the parent skips. The
 * programs only use the API as its header allows: whatever the order of
 * calls, an error code is fine and a crash, a sanitizer report, a leak or
 * a hang is a finding. A task waits only for tasks younger than itself
 * (their programs come later in the input): a cycle of awaits ignores
 * cancellation for good, as it would in asyncio, and the close would
 * spend seconds giving up on it. After the programs, or when every task is
 * stuck, a watchdog timer stops the loop and async_loop_close ends what is
 * left.
 *
 * Built with -fsanitize=fuzzer it is a libFuzzer target; without, the
 * replay driver (replay.c) runs it over the corpus and the crashes. */
#include "async.h"
#include "fuzz.h"

#include <errno.h>
#include <stdio.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define SLOTS 8
#define PROGS 96
#define MAX_STEPS 4096
#define MAX_SCOPES 4
#define OPS 40 /* opcodes; the last one fails the program */

/* What a callback of op 40 cancels: slot k of world w. */
typedef struct cb_arg {
  world *w;
  unsigned k;
} cb_arg;

struct world {
  async_loop *loop;
  async_task *tasks[SLOTS];
  unsigned age[SLOTS]; /* the index in progs of each slot's program */
  async_future *futs[2];
  async_queue *queue;
  async_lock *lock;
  async_event *event;
  async_condition *cond;
  async_semaphore *sem;
  async_barrier *barrier;
  async_gen *gen;
  unsigned gen_age;
  async_task_group *group;
  async_as_completed *ac;
  int pipe[2];
  cb_arg cb_slot[SLOTS];
  FILE *null_out;
  unsigned steps;
  unsigned nprogs;
  prog progs[PROGS];
};

static void *run(void *arg);

static void on_done(async_future *f, void *arg) {
  (void)arg;
  (void)async_future_result(f, NULL);
}

static void cancel_cb(void *arg) {
  cb_arg *c = arg;
  if (c->w->tasks[c->k]) async_task_cancel(c->w->tasks[c->k]);
}

static void slot_put(world *w, unsigned i, async_task *t, const prog *c) {
  if (w->tasks[i]) async_task_release(w->tasks[i]);
  w->tasks[i] = t;
  w->age[i] = c ? (unsigned)(c - w->progs) : 0;
}

/* Slot k's task if the program `self` may wait for it, else NULL. */
static async_task *younger(world *w, const prog *self, unsigned k) {
  unsigned me = (unsigned)(self - w->progs);
  return w->tasks[k] && w->age[k] > me ? w->tasks[k] : NULL;
}

/* The tasks `self` may wait for, packed: gather and wait refuse NULL. */
static size_t slots_pack(world *w, const prog *self, async_future **out) {
  size_t n = 0;
  for (unsigned i = 0; i < SLOTS; i++)
    if (younger(w, self, i)) out[n++] = w->tasks[i];
  return n;
}

static double delay_of(uint8_t a) { return (double)(a & 15) / 8.0; }

/* Op 38: sel picks the call, b (5 bits) is its argument. */
static int step_more(world *w, const prog *self, unsigned sel, unsigned b,
                     async_timeout *tmo, int ntmo) {
  async_future *fs[SLOTS];
  void *v;
  unsigned k = b % SLOTS;

  switch (sel) {
  case 0:
    return async_sleep(b & 1 ? -1.0 : 0.0);
  case 1: { /* done callbacks, which run from the loop */
    async_future *f = b & 8 ? w->futs[b & 1] : w->tasks[k];
    if (!f) return 0;
    return b & 16 ? async_future_remove_done_callback(f, on_done, w)
                  : async_future_add_done_callback(f, on_done, w);
  }
  case 2: { /* a callback that cancels slot k, soon or later */
    async_handle *h = NULL;
    int err;
    w->cb_slot[k].w = w;
    w->cb_slot[k].k = k;
    if (b & 8)
      err = async_loop_call_later(w->loop, delay_of(b), cancel_cb,
                                  &w->cb_slot[k], &h);
    else
      err = async_loop_call_soon(w->loop, cancel_cb, &w->cb_slot[k], &h);
    if (err) return err;
    return b & 16 ? async_handle_cancel(h) : async_handle_release(h);
  }
  case 3: {
    void **items = NULL;
    size_t nitems = 0;
    if (!w->gen || w->gen_age <= (unsigned)(self - w->progs)) return 0;
    int err = async_gen_collect(w->gen, &items, &nitems);
    free(items);
    return err;
  }
  case 4: { /* the calls that only read */
    char name[3] = {'t', (char)('0' + k), 0};
    int errs[4];
    async_task *failed[4];
    if (w->tasks[k] && (b & 8)) async_task_set_name(w->tasks[k], name);
    if (w->tasks[k]) (void)async_task_name(w->tasks[k]);
    if (w->group) (void)async_task_group_errors(w->group, errs, failed, 4);
    if (w->ac) (void)async_as_completed_left(w->ac);
    if (ntmo) {
      (void)async_timeout_when(&tmo[ntmo - 1]);
      (void)async_timeout_expired(&tmo[ntmo - 1]);
    }
    if (w->null_out && (b & 16)) (void)async_loop_dump(w->loop, w->null_out);
    return (int)async_task_all(w->loop, fs, SLOTS);
  }
  case 5:
    return async_wait_for(w->futs[b & 1], delay_of(b >> 1), &v);
  case 6:
    if (!w->sem) return 0;
    return b & 1 ? async_semaphore_try_acquire(w->sem)
                 : (int)async_semaphore_value(w->sem);
  default:
    if (b & 1) return w->lock ? async_lock_try_acquire(w->lock) : 0;
    /* Cancels itself: delivered at the next suspension. */
    return async_task_cancel(async_task_current());
  }
}

/* One step of a program: op and its argument a. Returns what the call
 * returned, so that run() can stop on -ECANCELED as well-behaved code
 * does. */
static int step(world *w, const prog *self, uint8_t op, uint8_t a,
                const uint8_t **p, const uint8_t *end, async_timeout *tmo,
                int *ntmo) {
  async_future *fs[SLOTS], *done[SLOTS], *pend[SLOTS];
  void *results[SLOTS];
  int errors[SLOTS];
  void *v;
  size_t n;
  unsigned k = a % SLOTS;

  switch (op % OPS) {
  case 0: { /* spawn a child into slot k */
    prog *c = prog_take(w, w->progs, &w->nprogs, PROGS, p, end, a >> 3);
    async_task *t;
    if (!c) return 0;
    int err = async_task_spawn(w->loop, &t, run, c, NULL);
    if (!err) slot_put(w, k, t, c);
    return err;
  }
  case 1:
    return async_sleep(delay_of(a));
  case 2:
    return async_yield();
  case 3:
    return w->tasks[k] ? async_task_cancel(w->tasks[k]) : 0;
  case 4:
    return younger(w, self, k) ? async_await(w->tasks[k], &v) : 0;
  case 5:
    n = slots_pack(w, self, fs);
    return a & 1 ? async_gather_errors(fs, n, results, errors)
                 : async_gather(fs, n, results);
  case 6:
    n = slots_pack(w, self, fs);
    return async_wait(fs, n, (async_return_when)(a % 3),
                      a & 8 ? delay_of(a >> 4) : ASYNC_NO_TIMEOUT, done, pend);
  case 7:
    return younger(w, self, k)
               ? async_wait_for(w->tasks[k], delay_of(a >> 3), &v)
               : 0;
  case 8:
    if (*ntmo == MAX_SCOPES) return 0;
    if (async_timeout_enter(&tmo[*ntmo],
                            a & 1 ? delay_of(a >> 1) : ASYNC_NO_TIMEOUT))
      return 0;
    (*ntmo)++;
    return 0;
  case 9:
    return *ntmo ? async_timeout_exit(&tmo[--*ntmo], 0) : 0;
  case 10:
    return *ntmo ? async_timeout_reschedule(
                       &tmo[*ntmo - 1], async_loop_time(w->loop) + delay_of(a))
                 : 0;
  case 11:
    return w->queue ? async_queue_put(w->queue, (void *)(uintptr_t)a) : 0;
  case 12:
    return w->queue ? async_queue_get(w->queue, &v) : 0;
  case 13:
    if (!w->queue) return 0;
    return a & 1 ? async_queue_put_nowait(w->queue, NULL)
                 : async_queue_get_nowait(w->queue, &v);
  case 14:
    if (!w->queue) return 0;
    return a & 1 ? async_queue_task_done(w->queue) : async_queue_join(w->queue);
  case 15:
    return w->queue ? async_queue_shutdown(w->queue, a & 1) : 0;
  case 16:
    return w->lock ? async_lock_acquire(w->lock) : 0;
  case 17:
    return w->lock ? async_lock_release(w->lock) : 0;
  case 18:
    if (!w->event) return 0;
    return a & 1 ? async_event_set(w->event) : async_event_clear(w->event);
  case 19:
    return w->event ? async_event_wait(w->event) : 0;
  case 20:
    if (!w->cond) return 0;
    switch (a & 3) {
    case 0:
      return async_condition_acquire(w->cond);
    case 1:
      return async_condition_release(w->cond);
    case 2:
      return async_condition_wait(w->cond);
    default:
      return a & 4 ? async_condition_notify_all(w->cond)
                   : async_condition_notify(w->cond, a >> 3);
    }
  case 21:
    if (!w->sem) return 0;
    return a & 1 ? async_semaphore_release(w->sem)
                 : async_semaphore_acquire(w->sem);
  case 22:
    if (!w->barrier) return 0;
    switch (a & 3) {
    case 0:
      return async_barrier_reset(w->barrier);
    case 1:
      return async_barrier_abort(w->barrier);
    default:
      return async_barrier_wait(w->barrier);
    }
  case 23: { /* the producer's program is younger than its consumers */
    if (w->gen)
      return w->gen_age > (unsigned)(self - w->progs)
                 ? async_gen_next(w->gen, &v)
                 : 0;
    prog *c = prog_take(w, w->progs, &w->nprogs, PROGS, p, end, a >> 3);
    if (!c) return 0;
    w->gen_age = (unsigned)(c - w->progs);
    return async_gen_new(&w->gen, run, c, NULL);
  }
  case 24:
    return async_gen_yield((void *)(uintptr_t)a);
  case 25:
    return w->gen ? async_gen_close(w->gen) : 0;
  case 26: {
    if (!w->group) return async_task_group_new(&w->group);
    prog *c = prog_take(w, w->progs, &w->nprogs, PROGS, p, end, a >> 3);
    async_task *t = NULL;
    if (!c) return 0;
    int err = async_task_group_spawn(w->group, a & 1 ? &t : NULL, run, c, NULL);
    if (!err && t) slot_put(w, k, t, c);
    return err;
  }
  case 27:
    if (!w->group) return 0;
    return a & 1 ? async_task_group_cancel(w->group)
                 : async_task_group_wait(w->group);
  case 28: {
    ssize_t r = write(w->pipe[1], &a, 1);
    return r < 0 ? -errno : 0;
  }
  case 29: {
    int fd = a & 1 ? w->pipe[0] : a & 2 ? w->pipe[1] : -1;
    /* Real time passes in an fd wait, even on the virtual clock. */
    int got = async_fd_wait(fd, a & 2 ? ASYNC_WRITABLE : ASYNC_READABLE,
                            (double)(a >> 4) * 1e-5);
    char buf[64];
    if (got > 0 && fd == w->pipe[0]) (void)read(fd, buf, sizeof buf);
    return got;
  }
  case 30: {
    async_future *f = w->futs[a & 1];
    switch ((a >> 1) & 3) {
    case 0:
      return async_future_set_result(f, NULL);
    case 1:
      return async_future_set_error(f, -EIO);
    case 2:
      return async_future_cancel(f);
    default:
      return async_await(f, &v);
    }
  }
  case 31:
    return younger(w, self, k) ? async_shield(w->tasks[k], &v) : 0;
  case 32: {
    async_future *f;
    if (!w->ac) {
      n = slots_pack(w, self, fs);
      return async_as_completed_new(&w->ac, fs, n,
                                    a & 1 ? delay_of(a >> 1) : -1.0);
    }
    return async_as_completed_next(w->ac, &f);
  }
  case 33: {
    async_coro coros[3];
    unsigned nc = 0;
    for (; nc < (unsigned)(a & 3) && nc < 3; nc++) {
      prog *c = prog_take(w, w->progs, &w->nprogs, PROGS, p, end, a >> 2);
      if (!c) break;
      coros[nc].fn = run;
      coros[nc].arg = c;
    }
    return async_gather_coros(coros, nc, results, a & 4 ? errors : NULL);
  }
  case 34: { /* a new bare future in place of a done one */
    async_future **f = &w->futs[a & 1];
    if (async_future_done(*f) != 1) return 0;
    async_future *nf;
    if (async_future_new(w->loop, &nf)) return 0;
    async_future_release(*f);
    *f = nf;
    return 0;
  }
  case 35: /* frees: an object with waiters says -EBUSY and stays */
    switch (a % 6) {
    case 0:
      if (w->queue && async_queue_free(w->queue) == 0) w->queue = NULL;
      break;
    /* Issue 9 item 1: these three free in the window between a waiter's
     * wake-up and its resumption (fuzz/crashes/). */
    case 1:
      if (w->cond && async_condition_free(w->cond) == 0) w->cond = NULL;
      break;
    case 2:
      if (w->gen && async_gen_free(w->gen) == 0) w->gen = NULL;
      break;
    case 3:
      if (w->ac && async_as_completed_free(w->ac) == 0) w->ac = NULL;
      break;
    case 4:
      if (w->group && async_task_group_free(w->group) == 0) w->group = NULL;
      break;
    default:
      if (w->event && async_event_free(w->event) == 0) w->event = NULL;
      break;
    }
    return 0;
  case 36: /* and their replacements */
    switch (a % 3) {
    case 0:
      return w->queue ? 0 : async_queue_new(&w->queue, a >> 2, NULL);
    case 1:
      return w->cond ? 0 : async_condition_new(&w->cond, NULL);
    default:
      return w->event ? 0 : async_event_new(&w->event);
    }
  case 37:
    if (*ntmo == MAX_SCOPES) return 0;
    if (async_timeout_enter_at(&tmo[*ntmo],
                               async_loop_time(w->loop) + delay_of(a) - 0.5))
      return 0;
    (*ntmo)++;
    return 0;
  case 38: /* the rest of the API, one op with its own selector */
    return step_more(w, self, a & 7, a >> 3, tmo, *ntmo);
  default:
    return -EIO; /* the program fails here */
  }
}

static void *run(void *arg) {
  prog *pg = arg;
  world *w = pg->w;
  async_timeout tmo[MAX_SCOPES];
  int ntmo = 0, err = 0;
  const uint8_t *p = pg->p, *end = p + pg->n;
  uint8_t a = 0;

  while (p < end && w->steps++ < MAX_STEPS) {
    uint8_t op = *p++;
    a = p < end ? *p++ : 0;
    err = step(w, pg, op, a, &p, end, tmo, &ntmo);
    if (err == -EIO && op % OPS == OPS - 1) break;
    /* Cancelled: the innermost scope may take it back as a timeout;
     * otherwise unwind, as code that honours cancellation does. */
    if (err == -ECANCELED) {
      if (ntmo && async_timeout_exit(&tmo[--ntmo], err) == -ETIMEDOUT) continue;
      break;
    }
  }
  while (ntmo > 0) async_timeout_exit(&tmo[--ntmo], 0);
  if (err == -EIO) return async_fail(-EIO);
  return (void *)(uintptr_t)a;
}

static void watchdog(void *arg) { async_loop_stop(arg); }

static int cmp_items(const void *a, const void *b, void *arg) {
  (void)arg;
  return (uintptr_t)a < (uintptr_t)b ? -1 : (uintptr_t)a > (uintptr_t)b;
}

static void world_free(world *w) {
  for (unsigned i = 0; i < SLOTS; i++) slot_put(w, i, NULL, NULL);
  for (unsigned i = 0; i < 2; i++) async_future_release(w->futs[i]);
  async_as_completed_free(w->ac);
  async_task_group_free(w->group);
  async_gen_free(w->gen);
  async_queue_free(w->queue);
  async_condition_free(w->cond);
  async_lock_free(w->lock);
  async_event_free(w->event);
  async_semaphore_free(w->sem);
  async_barrier_free(w->barrier);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static world w;
  async_loop_options opts;
  async_task *main_task;
  async_handle *dog;

  if (size < 1) return 0;
  memset(&w, 0, sizeof w);
  async_loop_options_init(&opts);
  opts.virtual_clock = 1;
  opts.report_overflow = 0; /* the fuzzer's own handler reports */
  opts.stack_size = 128 * 1024;
  if (async_loop_new(&w.loop, &opts)) abort();
  if (pipe(w.pipe)) abort();
  fcntl(w.pipe[0], F_SETFL, O_NONBLOCK);
  fcntl(w.pipe[1], F_SETFL, O_NONBLOCK);
  /* The first byte: the queue's size and order, the semaphore's kind and
   * value, and whether the loop closes with tasks still running. */
  static FILE *null_out;
  if (!null_out) null_out = fopen("/dev/null", "w");
  w.null_out = null_out;
  async_queue_options qo;
  async_queue_options_init(&qo);
  qo.order = (data[0] >> 2) % 3;
  qo.cmp = cmp_items;
  if (async_queue_new(&w.queue, data[0] & 3, &qo) || async_lock_new(&w.lock) ||
      async_event_new(&w.event) || async_condition_new(&w.cond, NULL) ||
      (data[0] & 0x10 ? async_bounded_semaphore_new(&w.sem, (data[0] >> 5) & 3)
                      : async_semaphore_new(&w.sem, (data[0] >> 5) & 3)) ||
      async_barrier_new(&w.barrier, 2) ||
      async_future_new(w.loop, &w.futs[0]) ||
      async_future_new(w.loop, &w.futs[1]))
    abort();

  prog *top = &w.progs[w.nprogs++];
  top->w = &w;
  top->p = data + 1;
  top->n = size - 1;
  if (async_task_spawn(w.loop, &main_task, run, top, NULL)) abort();
  /* Past every delay a program can ask for: fires only when all is stuck. */
  if (async_loop_call_later(w.loop, 1000.0, watchdog, w.loop, &dog)) abort();
  int err = async_loop_run_until_complete(w.loop, main_task, NULL);
  /* The first byte's high bit closes the loop with the other tasks still
   * running; otherwise they run on until done or stuck. */
  if (err != -EINTR && !(data[0] & 0x80)) async_loop_run_forever(w.loop);
  async_handle_cancel(dog);
  async_task_release(main_task);
  if (async_loop_close(w.loop)) abort();
  world_free(&w);
  if (async_loop_free(w.loop)) abort();
  close(w.pipe[0]);
  close(w.pipe[1]);
  return 0;
}
