/* SPDX-License-Identifier: MIT */
/* Queues: FIFO, LIFO and priority queues of `void *` between tasks.
 *
 * Storage: FIFO and LIFO keep their items in a ring of a power-of-two
 * capacity (`mask` = capacity - 1), the priority queue keeps (item, seq)
 * entries in a binary min-heap array, `seq` making equal items come out in
 * the order they went in. A bounded queue up to ASYNC_QUEUE_PREALLOC_MAX
 * allocates its whole storage at creation, so put and get never allocate;
 * an unbounded (or very large) one doubles its storage when it is full,
 * which costs O(1) amortized per put and is the only allocation here.
 *
 * Invariants (see sync.h for the hand-over rule they rest on):
 * - getters wait only while the queue is empty: a put that finds one hands
 *   its item straight into the first getter's record and touches no
 *   storage;
 * - putters wait only while the queue is full: a get that frees a place
 *   moves the first putter's item in at once;
 * - so a newcomer can never overtake a waiter, and `unfinished` counts
 *   every put that succeeded (handed over or stored) and is not yet
 *   task_done. */
#include "sync.h"

#include <stdlib.h>
#include <string.h>

#define QUEUE_MAGIC 0x51554555u /* "QUEU" */
#define QUEUE_MIN_CAP 16

enum { SHUT_NONE = 0, SHUT_GRACEFUL, SHUT_IMMEDIATE };

typedef struct qent {
  void *item;
  uint64_t seq;
} qent;

struct async_queue {
  uint32_t magic;
  uint8_t order;
  uint8_t shut;
  size_t count;
  size_t limit;  /* maxsize, or SIZE_MAX when unbounded */
  size_t head;   /* ring: index of the oldest item */
  size_t mask;   /* ring: capacity - 1; heap: capacity - 1 as well */
  void **ring;   /* FIFO, LIFO */
  qent *heap;    /* PRIORITY */
  size_t maxcap; /* the capacity storage may grow to */
  uint64_t seq;
  size_t unfinished;
  async__list getters; /* async__waiter: item handed in at wake */
  async__list putters; /* async__waiter: item taken out at wake */
  async__list joiners; /* async__waiter */
  async_cmp_fn cmp;
  void *cmp_arg;
  async_drop_fn drop;
  void *drop_arg;
  size_t maxsize;
};

static inline int queue_ok(const async_queue *q) {
  return q && q->magic == QUEUE_MAGIC;
}

static size_t pow2_at_least(size_t n) {
  size_t c = 1;
  while (c < n) c <<= 1;
  return c;
}

/* {==== Storage ========================================================= */

static int heap_before(const async_queue *q, const qent *a, const qent *b) {
  int c = q->cmp(a->item, b->item, q->cmp_arg);
  return c < 0 || (c == 0 && a->seq < b->seq);
}

static void heap_up(async_queue *q, size_t i) {
  qent *h = q->heap;
  qent x = h[i];
  while (i > 0) {
    size_t p = (i - 1) / 2;
    if (!heap_before(q, &x, &h[p])) break;
    h[i] = h[p];
    i = p;
  }
  h[i] = x;
}

static void heap_down(async_queue *q, size_t i) {
  qent *h = q->heap;
  size_t n = q->count;
  qent x = h[i];
  for (;;) {
    size_t c = 2 * i + 1;
    if (c >= n) break;
    if (c + 1 < n && heap_before(q, &h[c + 1], &h[c])) c++;
    if (!heap_before(q, &h[c], &x)) break;
    h[i] = h[c];
    i = c;
  }
  h[i] = x;
}

/* Doubles the storage (amortized O(1) per put). -ENOMEM leaves it as is. */
static int grow(async_queue *q) {
  size_t cap = q->mask + 1, ncap = cap * 2;
  if (ncap <= cap || cap >= q->maxcap || ncap > SIZE_MAX / sizeof(qent))
    return -ENOMEM;
  if (q->order == ASYNC_QUEUE_PRIORITY) {
    qent *h = realloc(q->heap, ncap * sizeof *h);
    if (!h) return -ENOMEM;
    q->heap = h;
  } else {
    void **r = malloc(ncap * sizeof *r);
    if (!r) return -ENOMEM;
    for (size_t i = 0; i < q->count; i++)
      r[i] = q->ring[(q->head + i) & q->mask];
    free(q->ring);
    q->ring = r;
    q->head = 0;
  }
  q->mask = ncap - 1;
  return 0;
}

/* Stores an item; the caller checked count < limit. */
static inline int store(async_queue *q, void *item) {
  if (async__unlikely(q->count > q->mask)) {
    int err = grow(q);
    if (err) return err;
  }
  if (q->order == ASYNC_QUEUE_PRIORITY) {
    q->heap[q->count].item = item;
    q->heap[q->count].seq = q->seq++;
    heap_up(q, q->count++);
  } else {
    q->ring[(q->head + q->count) & q->mask] = item;
    q->count++;
  }
  return 0;
}

/* Removes the next item by the queue's order; the caller checked count. */
static inline void *take(async_queue *q) {
  void *item;
  switch (q->order) {
  case ASYNC_QUEUE_FIFO:
    item = q->ring[q->head];
    q->head = (q->head + 1) & q->mask;
    q->count--;
    break;
  case ASYNC_QUEUE_LIFO:
    item = q->ring[(q->head + --q->count) & q->mask];
    break;
  default:
    item = q->heap[0].item;
    if (--q->count) {
      q->heap[0] = q->heap[q->count];
      heap_down(q, 0);
    }
    break;
  }
  return item;
}

/* }==== */

/* {==== Hand-over ======================================================= */

/* A place was just freed: the first waiting putter's item moves in (there
 * is room, and the storage need not grow) and its put returns 0. */
static inline void admit_putter(async_queue *q) {
  async__waiter *w = async__waitq_first(&q->putters);
  if (w) {
    int err = store(q, w->item);
    ASYNC__ASSERT(err == 0);
    q->unfinished++;
    async__waitq_wake(w, 0);
  }
}

/* A put without waiting: to the first getter, else into storage. */
static inline int put_now(async_queue *q, void *item) {
  async__waiter *w = async__waitq_first(&q->getters);
  if (w) {
    w->item = item;
    async__waitq_wake(w, 0);
  } else if (q->count < q->limit) {
    int err = store(q, item);
    if (err) return err;
  } else {
    return -EAGAIN;
  }
  q->unfinished++;
  return 0;
}

/* }==== */

/* {==== Public API ====================================================== */

void async_queue_options_init(async_queue_options *opts) {
  if (!opts) return;
  memset(opts, 0, sizeof *opts);
  opts->size = sizeof *opts;
  opts->order = ASYNC_QUEUE_FIFO;
}

int async_queue_new(async_queue **out, size_t maxsize,
                    const async_queue_options *opts) {
  async_queue_options def;
  if (!out) return -EINVAL;
  *out = NULL;
  if (!opts) {
    async_queue_options_init(&def);
    opts = &def;
  }
  if (opts->size < sizeof *opts) return -EINVAL;
  if (opts->order != ASYNC_QUEUE_FIFO && opts->order != ASYNC_QUEUE_LIFO &&
      opts->order != ASYNC_QUEUE_PRIORITY)
    return -EINVAL;
  if (opts->order == ASYNC_QUEUE_PRIORITY && !opts->cmp) return -EINVAL;
  if (maxsize > (SIZE_MAX >> 1) / sizeof(qent)) return -EINVAL;

  async_queue *q = calloc(1, sizeof *q);
  if (!q) return -ENOMEM;
  q->order = (uint8_t)opts->order;
  q->maxsize = maxsize;
  q->limit = maxsize ? maxsize : SIZE_MAX;
  q->maxcap = maxsize ? pow2_at_least(maxsize) : SIZE_MAX;
  size_t cap = QUEUE_MIN_CAP;
  if (maxsize && maxsize <= ASYNC_QUEUE_PREALLOC_MAX) cap = q->maxcap;
  q->mask = cap - 1;
  if (q->order == ASYNC_QUEUE_PRIORITY)
    q->heap = malloc(cap * sizeof *q->heap);
  else
    q->ring = malloc(cap * sizeof *q->ring);
  if (!q->heap && !q->ring) {
    free(q);
    return -ENOMEM;
  }
  async__list_init(&q->getters);
  async__list_init(&q->putters);
  async__list_init(&q->joiners);
  q->cmp = opts->cmp;
  q->cmp_arg = opts->cmp_arg;
  q->drop = opts->drop;
  q->drop_arg = opts->drop_arg;
  q->magic = QUEUE_MAGIC;
  *out = q;
  return 0;
}

int async_queue_free(async_queue *q) {
  if (!q) return 0;
  if (!queue_ok(q)) return -EINVAL;
  if (!async__list_empty(&q->getters) || !async__list_empty(&q->putters) ||
      !async__list_empty(&q->joiners))
    return -EBUSY;
  while (q->count) {
    void *item = take(q);
    if (q->drop) q->drop(item, q->drop_arg);
  }
  free(q->ring);
  free(q->heap);
  q->magic = ASYNC__MAGIC_DEAD;
  free(q);
  return 0;
}

int async_queue_put(async_queue *q, void *item) {
  int err = 0;
  async__task *t = async__task_require(&err);
  if (async__unlikely(!t)) return err;
  if (async__unlikely(!queue_ok(q))) return -EINVAL;
  if (async__unlikely(q->shut)) return -ESHUTDOWN;
  err = put_now(q, item);
  if (async__likely(err != -EAGAIN)) return err;
  /* Full: wait in line; a get moves the item in and wakes us with 0. */
  if ((err = async__task_take_cancel(t))) return err;
  async__waiter w;
  w.item = item;
  return async__waitq_park(&q->putters, &w, t, NULL, "queue put");
}

int async_queue_get(async_queue *q, void **item) {
  int err = 0;
  if (item) *item = NULL;
  async__task *t = async__task_require(&err);
  if (async__unlikely(!t)) return err;
  if (async__unlikely(!queue_ok(q) || !item)) return -EINVAL;
  if (async__likely(q->count)) {
    *item = take(q);
    admit_putter(q);
    return 0;
  }
  if (q->shut) return -ESHUTDOWN;
  /* Empty: wait in line; a put hands its item over and wakes us with 0. */
  if ((err = async__task_take_cancel(t))) return err;
  async__waiter w;
  w.item = NULL;
  err = async__waitq_park(&q->getters, &w, t, NULL, "queue get");
  if (err == 0) *item = w.item;
  return err;
}

int async_queue_put_nowait(async_queue *q, void *item) {
  if (!queue_ok(q)) return -EINVAL;
  if (q->shut) return -ESHUTDOWN;
  return put_now(q, item);
}

int async_queue_get_nowait(async_queue *q, void **item) {
  if (item) *item = NULL;
  if (!queue_ok(q) || !item) return -EINVAL;
  if (q->count) {
    *item = take(q);
    admit_putter(q);
    return 0;
  }
  return q->shut ? -ESHUTDOWN : -EAGAIN;
}

int async_queue_task_done(async_queue *q) {
  if (!queue_ok(q)) return -EINVAL;
  if (q->unfinished == 0) return -EOVERFLOW;
  if (--q->unfinished == 0) async__waitq_wake_all(&q->joiners, 0);
  return 0;
}

int async_queue_join(async_queue *q) {
  int err = 0;
  async__task *t = async__task_require(&err);
  if (!t) return err;
  if (!queue_ok(q)) return -EINVAL;
  if (q->unfinished == 0) return 0;
  if ((err = async__task_take_cancel(t))) return err;
  async__waiter w;
  return async__waitq_park(&q->joiners, &w, t, NULL, "queue join");
}

int async_queue_shutdown(async_queue *q, int immediate) {
  if (!queue_ok(q)) return -EINVAL;
  if (!q->shut) q->shut = SHUT_GRACEFUL;
  if (immediate && q->shut != SHUT_IMMEDIATE) {
    q->shut = SHUT_IMMEDIATE;
    /* The items left count as done: join must not wait for them. */
    while (q->count) {
      void *item = take(q);
      if (q->unfinished) q->unfinished--;
      if (q->drop) q->drop(item, q->drop_arg);
    }
    if (q->unfinished == 0) async__waitq_wake_all(&q->joiners, 0);
  }
  async__waitq_wake_all(&q->putters, -ESHUTDOWN);
  if (!q->count) async__waitq_wake_all(&q->getters, -ESHUTDOWN);
  return 0;
}

long async_queue_size(const async_queue *q) {
  return queue_ok(q) ? (long)q->count : -EINVAL;
}

long async_queue_maxsize(const async_queue *q) {
  return queue_ok(q) ? (long)q->maxsize : -EINVAL;
}

int async_queue_empty(const async_queue *q) {
  return queue_ok(q) ? q->count == 0 : -EINVAL;
}

int async_queue_full(const async_queue *q) {
  return queue_ok(q) ? (q->maxsize && q->count >= q->maxsize) : -EINVAL;
}

/* }==== */
