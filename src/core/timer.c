/* SPDX-License-Identifier: MIT */
/* Timers: the deadline heap, the clock, and the loop's timer phase.
 *
 * The heap is pointer-based so that a timer is a node inside its owner and
 * arming one never allocates. Node n (1-based, breadth-first) is reached
 * from the root by the bits of n below its leading one: 0 left, 1 right. */
#include "core.h"

#include <time.h>

/* Equal deadlines fire in arming order. The sequence wraps at 2^32, so it
 * is compared as a difference: right for any two timers armed fewer than
 * 2^31 arms apart. */
static int timer_less(const async__timer *a, const async__timer *b) {
  return a->when < b->when ||
         (a->when == b->when && (int32_t)(a->seq - b->seq) < 0);
}

/* The node at 1-based position n (n <= h->n). */
static async__timer *heap_at(const async__heap *h, size_t n) {
  int bit = 0;
  async__timer *x = h->root;
  while ((n >> bit) > 1) bit++;
  while (bit-- > 0) x = ((n >> bit) & 1) ? x->right : x->left;
  return x;
}

/* Swaps parent p with its child c, fixing every link around them. */
static void heap_swap(async__heap *h, async__timer *p, async__timer *c) {
  async__timer *gp = p->parent, *cl = c->left, *cr = c->right, *sib;
  if (p->left == c) {
    sib = p->right;
    c->left = p;
    c->right = sib;
  } else {
    sib = p->left;
    c->right = p;
    c->left = sib;
  }
  if (sib) sib->parent = c;
  p->left = cl;
  p->right = cr;
  if (cl) cl->parent = p;
  if (cr) cr->parent = p;
  p->parent = c;
  c->parent = gp;
  if (!gp)
    h->root = c;
  else if (gp->left == p)
    gp->left = c;
  else
    gp->right = c;
}

static void heap_up(async__heap *h, async__timer *x) {
  while (x->parent && timer_less(x, x->parent)) heap_swap(h, x->parent, x);
}

static void heap_down(async__heap *h, async__timer *x) {
  for (;;) {
    async__timer *m = x;
    if (x->left && timer_less(x->left, m)) m = x->left;
    if (x->right && timer_less(x->right, m)) m = x->right;
    if (m == x) return;
    heap_swap(h, x, m);
  }
}

void async__heap_insert(async__heap *h, async__timer *tm) {
  size_t n = ++h->n;
  tm->left = tm->right = tm->parent = NULL;
  if (n == 1) {
    h->root = tm;
    return;
  }
  async__timer *p = heap_at(h, n >> 1);
  if (n & 1)
    p->right = tm;
  else
    p->left = tm;
  tm->parent = p;
  heap_up(h, tm);
}

void async__heap_remove(async__heap *h, async__timer *tm) {
  size_t n = h->n;
  async__timer *last;
  ASYNC__ASSERT(n > 0);
  if (n == 1) {
    last = h->root;
    h->root = NULL;
  } else {
    async__timer *p = heap_at(h, n >> 1);
    if (n & 1) {
      last = p->right;
      p->right = NULL;
    } else {
      last = p->left;
      p->left = NULL;
    }
  }
  h->n--;
  if (last != tm) {
    /* The last node takes tm's place, then finds its level. */
    last->left = tm->left;
    last->right = tm->right;
    last->parent = tm->parent;
    if (last->left) last->left->parent = last;
    if (last->right) last->right->parent = last;
    if (!tm->parent)
      h->root = last;
    else if (tm->parent->left == tm)
      tm->parent->left = last;
    else
      tm->parent->right = last;
    heap_down(h, last);
    heap_up(h, last);
  }
  tm->left = tm->right = tm->parent = NULL;
}

int64_t async__clock_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

double async_clock(void) { return (double)async__clock_ns() / 1e9; }

int64_t async__time_after(int64_t now, double seconds) {
  /* Saturate instead of overflowing: a year-long sleep must not wrap into
   * the past (a lesson the Redis timer history teaches). Negative times
   * stay negative, so that call_later(-2) sorts before call_later(-1);
   * below -4e9 s they are all "long ago" alike. */
  const double max = (double)(INT64_MAX - now) / 1e9;
  if (seconds >= max) return INT64_MAX;
  if (seconds < -4e9) seconds = -4e9;
  double ns = seconds * 1e9;
  int64_t whole = (int64_t)ns;     /* toward zero: up for a negative time */
  if ((double)whole < ns) whole++; /* round up: never wake early */
  return now + whole;
}

int64_t async__deadline_after(int64_t now, double seconds) {
  return seconds > 0 ? async__time_after(now, seconds) : now;
}

void async__timer_start(async_loop *loop, async__timer *tm, int64_t when) {
  if (tm->armed) async__heap_remove(&loop->timers, tm);
  tm->when = when;
  tm->seq = loop->timer_seq++;
  tm->armed = 1;
  async__heap_insert(&loop->timers, tm);
}

void async__timers_run(async_loop *loop) {
  async__timer *tm;
  while ((tm = loop->timers.root) && tm->when <= loop->now) {
    async__heap_remove(&loop->timers, tm);
    tm->armed = 0;
    tm->fire(tm);
  }
}
