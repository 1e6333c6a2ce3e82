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
 * Waiters are served by reservation, as asyncio serves them: a put stores
 * its item and wakes the first getter, which takes the next item when it
 * runs; a get that frees a place wakes the first putter, which stores its
 * item when it runs. Until then the woken task holds a reservation: `gres`
 * stored items are promised to woken getters, `pres` places to woken
 * putters. So a waiter cancelled after its wake-up, before it runs, takes
 * nothing and stores nothing: it hands its reservation to the next waiter
 * (or drops it), and the item it would have got is still at its place in
 * the queue's order.
 *
 * Invariants:
 * - getters wait only while every stored item is promised (count <= gres);
 * - putters wait only while every place is taken (count + pres >= limit);
 * - so a newcomer can never overtake a waiter, and `unfinished` counts
 *   every item stored and not yet task_done. */
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
  size_t gres;         /* stored items promised to woken getters */
  size_t pres;         /* places promised to woken putters */
  async__list getters; /* async__waiter, item = the queue */
  async__list putters; /* async__waiter, item = the queue */
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

/* Waking, waiting, growing and the heap's sifts, out of line: in a steady
 * flow through a FIFO or LIFO queue nobody waits, and the calls that do not
 * then save no register of their own. */
#if defined(__GNUC__)
#define QUEUE_SLOW __attribute__((noinline))
#else
#define QUEUE_SLOW
#endif

static int heap_before(const async_queue *q, const qent *a, const qent *b) {
  int c = q->cmp(a->item, b->item, q->cmp_arg);
  return c < 0 || (c == 0 && a->seq < b->seq);
}

static QUEUE_SLOW void heap_up(async_queue *q, size_t i) {
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

static QUEUE_SLOW void heap_down(async_queue *q, size_t i) {
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
static QUEUE_SLOW int grow(async_queue *q) {
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

static QUEUE_SLOW void wake_getters(async_queue *q) {
  while (!async__list_empty(&q->getters) && q->count > q->gres) {
    q->gres++;
    async__waitq_wake(async__waitq_first(&q->getters), 0);
  }
}

static QUEUE_SLOW void wake_putters(async_queue *q) {
  while (!async__list_empty(&q->putters) && q->count + q->pres < q->limit) {
    q->pres++;
    async__waitq_wake(async__waitq_first(&q->putters), 0);
  }
}

/* Promises the stored items no woken getter has yet to the waiting
 * getters, in order; each takes one when it runs. */
static inline void serve_getters(async_queue *q) {
  if (async__unlikely(!async__list_empty(&q->getters))) wake_getters(q);
}

/* Promises the free places to the waiting putters, in order. */
static inline void serve_putters(async_queue *q) {
  if (async__unlikely(!async__list_empty(&q->putters))) wake_putters(q);
}

/* A put without waiting: stores the item if a place is free (not promised
 * to a woken putter) and wakes the first getter. */
static inline int put_now(async_queue *q, void *item) {
  if (q->count + q->pres >= q->limit) return -EAGAIN;
  int err = store(q, item);
  if (err) return err;
  q->unfinished++;
  serve_getters(q);
  return 0;
}

/* A get without waiting, when an item is free (not promised). */
static inline void *get_now(async_queue *q) {
  void *item = take(q);
  serve_putters(q);
  return item;
}

/* The unlinks of get and put: a task killed at loop close after its
 * wake-up, before it ran, gives its reservation back. */
static void get_unlink(async__task *t) {
  async__waiter *w = t->wait_obj;
  async__list_remove(&w->link);
  if (t->state != ASYNC__T_SUSPENDED && t->wake == 0)
    ((async_queue *)w->item)->gres--;
}

static void put_unlink(async__task *t) {
  async__waiter *w = t->wait_obj;
  async__list_remove(&w->link);
  if (t->state != ASYNC__T_SUSPENDED && t->wake == 0)
    ((async_queue *)w->item)->pres--;
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
      !async__list_empty(&q->joiners) || q->gres || q->pres)
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

/* Full: wait in line until a get promises us a place. */
static QUEUE_SLOW int put_wait(async_queue *q, async__task *t, void *item) {
  int err;
  if ((err = async__task_take_cancel(t))) return err;
  async__waiter w;
  w.item = q;
  err = async__waitq_park(&q->putters, &w, t, put_unlink, "queue put");
  if (err) return err;
  q->pres--;
  if ((err = async__task_take_cancel(t)) == 0 && q->shut) err = -ESHUTDOWN;
  if (err == 0) err = put_now(q, item); /* the place is ours */
  if (err) serve_putters(q);            /* not taken: to the next */
  return err;
}

/* Empty: wait in line until a put promises us an item. */
static QUEUE_SLOW int get_wait(async_queue *q, async__task *t, void **item) {
  int err;
  if ((err = async__task_take_cancel(t))) return err;
  async__waiter w;
  w.item = q;
  err = async__waitq_park(&q->getters, &w, t, get_unlink, "queue get");
  if (err) return err;
  q->gres--;
  if ((err = async__task_take_cancel(t))) {
    serve_getters(q); /* the item stays, for the next in line */
    return err;
  }
  if (!q->count) return -ESHUTDOWN; /* discarded by an immediate shutdown */
  *item = get_now(q);
  return 0;
}

/* The whole checked path of put and get. The public entry points below
 * first try the steady state of a FIFO queue (a free place or a free item,
 * nobody waiting on the other side) with no call at all, so that they save
 * no register of their own; anything else comes here, by a tail call. */
static QUEUE_SLOW int put_checked(async_queue *q, void *item) {
  int err = 0;
  async__task *t = async__task_require(&err);
  if (async__unlikely(!t)) return err;
  if (async__unlikely(!queue_ok(q))) return -EINVAL;
  if (async__unlikely(q->shut)) return -ESHUTDOWN;
  err = put_now(q, item);
  if (async__likely(err != -EAGAIN)) return err;
  return put_wait(q, t, item);
}

static QUEUE_SLOW int get_checked(async_queue *q, void **item) {
  int err = 0;
  if (item) *item = NULL;
  async__task *t = async__task_require(&err);
  if (async__unlikely(!t)) return err;
  if (async__unlikely(!queue_ok(q) || !item)) return -EINVAL;
  if (async__likely(q->count > q->gres)) {
    *item = get_now(q);
    return 0;
  }
  if (q->shut) return -ESHUTDOWN;
  return get_wait(q, t, item);
}

/* Whether the caller is a task: async__task_require without the error. */
static inline int in_task(void) {
  async_loop *loop = async__loop_here();
  return loop && loop->current;
}

int async_queue_put(async_queue *q, void *item) {
  /* put_now and store, for a FIFO ring with a free place and no getter. */
  if (async__likely(in_task() && queue_ok(q) && !q->shut &&
                    q->order == ASYNC_QUEUE_FIFO &&
                    q->count + q->pres < q->limit && q->count <= q->mask &&
                    async__list_empty(&q->getters))) {
    q->ring[(q->head + q->count) & q->mask] = item;
    q->count++;
    q->unfinished++;
    return 0;
  }
  return put_checked(q, item);
}

int async_queue_get(async_queue *q, void **item) {
  /* get_now and take, for a FIFO ring with a free item and no putter. */
  if (async__likely(in_task() && queue_ok(q) && item &&
                    q->order == ASYNC_QUEUE_FIFO && q->count > q->gres &&
                    async__list_empty(&q->putters))) {
    *item = q->ring[q->head];
    q->head = (q->head + 1) & q->mask;
    q->count--;
    return 0;
  }
  return get_checked(q, item);
}

int async_queue_put_nowait(async_queue *q, void *item) {
  if (!queue_ok(q)) return -EINVAL;
  if (q->shut) return -ESHUTDOWN;
  return put_now(q, item);
}

int async_queue_get_nowait(async_queue *q, void **item) {
  if (item) *item = NULL;
  if (!queue_ok(q) || !item) return -EINVAL;
  if (q->count > q->gres) {
    *item = get_now(q);
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
  err = async__waitq_park(&q->joiners, &w, t, NULL, "queue join");
  return err ? err : async__task_take_cancel(t);
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
  /* Waiting getters have no item coming: every stored one is promised. */
  async__waitq_wake_all(&q->putters, -ESHUTDOWN);
  async__waitq_wake_all(&q->getters, -ESHUTDOWN);
  return 0;
}

/* Size, empty and full say what a get or put without waiting would find:
 * the items promised to woken getters are theirs already, the places
 * promised to woken putters taken. */
long async_queue_size(const async_queue *q) {
  if (!queue_ok(q)) return -EINVAL;
  return q->count > q->gres ? (long)(q->count - q->gres) : 0;
}

long async_queue_maxsize(const async_queue *q) {
  return queue_ok(q) ? (long)q->maxsize : -EINVAL;
}

int async_queue_empty(const async_queue *q) {
  return queue_ok(q) ? q->count <= q->gres : -EINVAL;
}

int async_queue_full(const async_queue *q) {
  return queue_ok(q) ? (q->maxsize && q->count + q->pres >= q->maxsize)
                     : -EINVAL;
}

/* }==== */
