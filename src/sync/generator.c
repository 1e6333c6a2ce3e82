/* SPDX-License-Identifier: MIT */
/* Async generators: a producer task yields values to a consumer task.
 *
 * The producer is an ordinary task (stackful: it may suspend anywhere)
 * whose function is gen_body, which is how async_gen_yield finds its
 * generator: t->fn == gen_body and t->arg is the generator. It is created
 * by the first async_gen_next, on the consumer's loop.
 *
 * The two sides take turns, and at most one of them runs:
 * - the consumer, in next, asend or athrow, resumes the producer (starting
 *   it the first time) with the code its yield returns (0, or the error
 *   thrown) and, for asend, the value in `sent`; records itself in
 *   `consumer`/`slot` and parks;
 * - the producer, in yield, stores the value in the consumer's record,
 *   wakes it with 0 (the value is delivered at that moment, see sync.h)
 *   and parks in `parked` (`at_yield` set) until the next resumption (0 or
 *   a thrown error), a close (-EPIPE) or a cancellation;
 * - a close resumes the producer with -EPIPE (`told`) and waits as a
 *   consumer does, for its end (GEN_END) or, if it yields again, for
 *   GEN_IGNORED: asyncio's "async generator ignored GeneratorExit", which
 *   close reports as -EPERM; the producer then stays parked at that yield,
 *   for the next close or free to tell it again;
 * - when the producer's task is done, for whatever reason (returned,
 *   failed, cancelled before it started, given up at loop close), the
 *   waiter `done_w` on its future marks the generator done and wakes a
 *   waiting consumer with GEN_END. Relying on the future rather than on
 *   gen_body's end covers a producer that never ran.
 * A consumer cancelled while it waits passes the cancellation on to the
 * producer and keeps waiting for what it does next (as await does). */
#include "sync.h"

#include <stdlib.h>
#include <string.h>

#define GEN_MAGIC 0x47454e52u /* "GENR" */
#define GEN_END 1             /* a consumer's wake code: the producer is done */
#define GEN_IGNORED 2 /* a closer's: the producer yielded after -EPIPE */

typedef struct gen_slot {
  struct async_gen *g;
  void *value; /* stored by the producer's yield */
} gen_slot;

struct async_gen {
  uint32_t magic;
  uint8_t closed;
  uint8_t done;     /* the producer's task is done */
  uint8_t orphaned; /* freed by the user while the producer lived */
  uint8_t err_told; /* the producer's error was returned once */
  uint8_t told;     /* closed, and the producer's yield returned -EPIPE */
  uint8_t at_yield; /* parked in a yield that delivered its value */
  int err;          /* the producer's outcome, once done */
  async_fn fn;
  void *arg;
  char *name;
  size_t stack_size;
  async_task *task;      /* the producer; our reference; NULL before start */
  async__task *parked;   /* the producer while it waits in a yield */
  void *sent;            /* what asend hands to that yield */
  async__task *consumer; /* the task waiting in next */
  gen_slot *slot;        /* its record */
  async__fwaiter done_w; /* on the producer's future */
};

static inline int gen_ok(const async_gen *g) {
  return g && g->magic == GEN_MAGIC;
}

static void *gen_body(void *arg) {
  async_gen *g = arg;
  return g->fn(g->arg);
}

static inline async_gen *gen_of(const async__task *t) {
  return t->fn == gen_body ? (async_gen *)t->arg : NULL;
}

static void gen_destroy(async_gen *g) {
  if (g->task) async_future_release(g->task);
  free(g->name);
  g->magic = ASYNC__MAGIC_DEAD;
  free(g);
}

/* Wakes the consumer (or closer) waiting on g with `code`. `consumer`
 * stays set until that task is back in its call (gen_wait clears it): it
 * reads the generator there, so free, close and another next are refused
 * until then. One woken already (by a yield) gets what it was woken with
 * and finds the rest at its next call. */
static void wake_consumer(async_gen *g, int code) {
  if (g->consumer->state == ASYNC__T_SUSPENDED)
    async__task_wake(g->consumer, code);
}

/* The producer's task is done. Runs inside its completion. */
static void gen_done(async__fwaiter *w, async_future *f) {
  async_gen *g = async__container_of(w, async_gen, done_w);
  g->done = 1;
  g->err = f->err;
  g->parked = NULL;
  g->at_yield = 0;
  /* The answer to a close, not an error anyone needs to read. */
  if (g->closed && f->err == -EPIPE) f->err_read = 1;
  if (g->consumer) wake_consumer(g, GEN_END);
  if (g->orphaned) gen_destroy(g);
}

/* What next returns once the producer is done: its error once, then
 * ASYNC_GEN_DONE. */
static int gen_outcome(async_gen *g) {
  if (g->err && !g->err_told) {
    g->err_told = 1;
    async_future_result(g->task, NULL); /* marks the error read */
    return g->err;
  }
  return ASYNC_GEN_DONE;
}

static int gen_start(async_gen *g, async_loop *loop) {
  async_task_options o;
  async_task_options_init(&o);
  o.name = g->name;
  o.stack_size = g->stack_size;
  int err = async_task_spawn(loop, &g->task, gen_body, g, &o);
  if (err) return err;
  g->done_w.notify = gen_done;
  async__future_add_waiter(g->task, &g->done_w);
  return 0;
}

/* Wakes a producer waiting in a yield; its yield returns `code`. */
static void resume_producer(async_gen *g, int code) {
  async__task *p = g->parked;
  if (p) {
    g->parked = NULL;
    g->at_yield = 0;
    async__task_wake(p, code);
  }
}

/* {==== Consumer side =================================================== */

/* Only a consumer killed at close never comes back to clear `consumer`;
 * its generator is alive, since the free is refused until then. */
static void next_unlink(async__task *t) {
  gen_slot *s = t->wait_obj;
  s->g->consumer = NULL;
  s->g->slot = NULL;
}

/* Passed on to the producer; the consumer keeps waiting for its answer. */
static void next_cancel(async__task *t) {
  gen_slot *s = t->wait_obj;
  if (s->g->task) async_future_cancel(s->g->task);
}

int async_gen_new(async_gen **out, async_fn fn, void *arg,
                  const async_task_options *opts) {
  if (!out) return -EINVAL;
  *out = NULL;
  if (!fn) return -EINVAL;
  if (opts && (opts->size < sizeof *opts || opts->stack_size > UINT32_MAX))
    return -EINVAL;
  async_gen *g = calloc(1, sizeof *g);
  if (!g) return -ENOMEM;
  if (opts && opts->name && !(g->name = strdup(opts->name))) {
    free(g);
    return -ENOMEM;
  }
  g->fn = fn;
  g->arg = arg;
  g->stack_size = opts ? opts->stack_size : 0;
  g->magic = GEN_MAGIC;
  *out = g;
  return 0;
}

/* Parks t as g's consumer until the producer yields (0, *value set), ends
 * (GEN_END) or, for a closer, yields again (GEN_IGNORED). */
static int gen_wait(async_gen *g, async__task *t, void **value,
                    const char *what) {
  gen_slot slot = {.g = g, .value = NULL};
  g->consumer = t;
  g->slot = &slot;
  t->wait_obj = &slot;
  int rc = async__task_park(t->fut.loop, t, next_unlink, next_cancel, what);
  t->wait_obj = NULL;
  g->consumer = NULL;
  g->slot = NULL;
  if (rc == 0 && value) *value = slot.value;
  return rc;
}

/* The checks common to next, asend and athrow: 0 to go on, else what the
 * call returns (ASYNC_GEN_DONE, an error). */
static int gen_check(async_gen *g, async__task **t) {
  int err = 0;
  if (!(*t = async__task_require(&err))) return err;
  if (!gen_ok(g)) return -EINVAL;
  if (g->task == &(*t)->fut) return -EDEADLK;
  if (g->closed) return -ESHUTDOWN;
  if (g->consumer) return -EBUSY;
  if (g->done) return gen_outcome(g);
  if (g->task && g->task->loop != (*t)->fut.loop) return -EXDEV;
  return async__task_take_cancel(*t);
}

/* Resumes the producer, its yield returning `code` (and `sent`), or
 * starts it; then waits for what it does next. */
static int gen_resume(async_gen *g, async__task *t, int code, void *sent,
                      void **value) {
  int err;
  if (!g->task) {
    if ((err = gen_start(g, t->fut.loop))) return err;
  } else {
    /* Parked in a yield: go on. Otherwise it runs on its own (its last
     * wait was cancelled) and will find us at its next yield. */
    g->sent = sent;
    resume_producer(g, code);
  }
  if (gen_wait(g, t, value, "gen next") == 0) return 0;
  err = gen_outcome(g);
  /* Our own cancellation, passed on, came back as the producer's end. */
  if (err == -ECANCELED && t->cancel_req) {
    t->cancel_req = 0;
    t->fut.loop->cancel_epoch++;
  }
  return err;
}

int async_gen_next(async_gen *g, void **value) {
  async__task *t;
  if (value) *value = NULL;
  int err = gen_check(g, &t);
  return err ? err : gen_resume(g, t, 0, NULL, value);
}

int async_gen_asend(async_gen *g, void *sent, void **value) {
  async__task *t;
  if (value) *value = NULL;
  int err = gen_check(g, &t);
  if (err) return err;
  /* No yield to receive it: not started (asyncio's "can't send non-None
   * value to a just-started async generator"), or running on its own. */
  if (sent && !g->at_yield) return g->task ? -EAGAIN : -EINVAL;
  return gen_resume(g, t, 0, sent, value);
}

int async_gen_athrow(async_gen *g, int error, void **value) {
  async__task *t;
  if (value) *value = NULL;
  if (error >= 0) return -EINVAL;
  int err = gen_check(g, &t);
  if (err) return err;
  if (!g->task) {
    /* Raised before its first line, as asyncio does: it never runs, and
     * the error comes straight back. */
    g->done = 1;
    return error;
  }
  if (!g->at_yield) return -EAGAIN;
  return gen_resume(g, t, error, NULL, value);
}

int async_gen_close(async_gen *g) {
  int err = 0;
  async__task *t = async__task_require(&err);
  if (!t) return err;
  if (!gen_ok(g)) return -EINVAL;
  if (g->task == &t->fut) return -EDEADLK;
  if (g->consumer) return -EBUSY;
  if (g->task && !g->done && g->task->loop != t->fut.loop) return -EXDEV;
  g->closed = 1;
  if (!g->task || g->done) return 0;
  resume_producer(g, -EPIPE);
  if ((err = async__task_take_cancel(t))) return err;
  /* Until its cleanup is done, or it yields again. */
  if (gen_wait(g, t, NULL, "gen close") == GEN_IGNORED) return -EPERM;
  err = g->err;
  g->err_told = 1;
  async_future_result(g->task, NULL);       /* marks the error read */
  if (err == -ECANCELED && t->cancel_req) { /* ours, passed on */
    t->cancel_req = 0;
    t->fut.loop->cancel_epoch++;
  }
  return err == -EPIPE ? 0 : err;
}

int async_gen_free(async_gen *g) {
  if (!g) return 0;
  if (!gen_ok(g) || g->orphaned) return -EINVAL;
  if (g->consumer) return -EBUSY;
  if (g->task && !g->done) {
    /* Alive: close it without waiting; gen_done frees it at its end. */
    g->closed = 1;
    g->orphaned = 1;
    resume_producer(g, -EPIPE);
    return 0;
  }
  gen_destroy(g);
  return 0;
}

int async_gen_collect(async_gen *g, void ***items, size_t *n) {
  if (items) *items = NULL;
  if (n) *n = 0;
  if (!items || !n) return -EINVAL;
  void **arr = NULL, *v;
  size_t len = 0, cap = 0;
  int err;
  for (;;) {
    if (len == cap) {
      /* Room first, so that a value once received is never dropped. */
      size_t ncap = cap ? cap * 2 : 16;
      void **a =
          ncap > SIZE_MAX / sizeof *a ? NULL : realloc(arr, ncap * sizeof *a);
      if (!a) {
        int cerr = async_gen_close(g);
        err = cerr == -EPERM || cerr == -EINVAL ? cerr : -ENOMEM;
        break;
      }
      arr = a;
      cap = ncap;
    }
    if ((err = async_gen_next(g, &v)) != 0) break;
    arr[len++] = v;
  }
  if (len == 0) {
    free(arr);
    arr = NULL;
  }
  *items = arr;
  *n = len;
  return err == ASYNC_GEN_DONE ? 0 : err;
}

/* }==== */

/* {==== Producer side =================================================== */

static void yield_unlink(async__task *t) {
  if (t->state != ASYNC__T_SUSPENDED) return;
  async_gen *g = gen_of(t);
  g->parked = NULL;
  g->at_yield = 0;
}

/* Parks the producer in a yield until it is resumed. */
static int yield_park(async_gen *g, async__task *t, int delivered) {
  g->parked = t;
  g->at_yield = (uint8_t)delivered;
  int err = async__task_park(t->fut.loop, t, yield_unlink, NULL, "gen yield");
  if (err == -EPIPE && g->closed) g->told = 1;
  return err;
}

int async_gen_yield_recv(void *value, void **sent) {
  int err = 0;
  if (sent) *sent = NULL;
  async__task *t = async__task_require(&err);
  if (!t) return err;
  async_gen *g = gen_of(t);
  if (!g) return -EPERM;
  if (g->closed) {
    if (!g->told || g->orphaned) {
      g->told = 1;
      return -EPIPE;
    }
    /* Told, and yielding all the same: the closer hears of it (-EPERM)
     * and we wait here, undelivered, for the next close or free. */
    if (g->consumer) wake_consumer(g, GEN_IGNORED);
    if ((err = async__task_take_cancel(t))) return err;
    return yield_park(g, t, 0);
  }
  if ((err = async__task_take_cancel(t))) return err;
  while (!g->consumer || g->consumer->state != ASYNC__T_SUSPENDED) {
    /* Nobody asked (or the consumer has yet to pick up the last value):
     * our previous wait was cancelled from outside and we went on. Wait
     * for a consumer before delivering. */
    if ((err = yield_park(g, t, 0))) return err;
  }
  g->slot->value = value;
  wake_consumer(g, 0);
  err = yield_park(g, t, 1);
  if (err == 0 && sent) *sent = g->sent;
  g->sent = NULL;
  return err;
}

int async_gen_yield(void *value) { return async_gen_yield_recv(value, NULL); }

/* }==== */
