/* SPDX-License-Identifier: MIT */
/* Timers: the run and the heap (see core.h), the clock, and the loop's
 * timer phase.
 *
 * Measured with callgrind at 100,000 sleepers, the pointer-based binary
 * heap this replaces spent 1,050 instructions per timer, and 45% of the
 * library's user time, walking 17 levels of nodes scattered over as many
 * tasks; the run takes those timers in a handful of instructions. */
#include "core.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Equal deadlines fire in arming order. The sequence wraps at 2^32, so it
 * is compared as a difference: right for any two timers armed fewer than
 * 2^31 arms apart. */
static int timer_less(const async__timer *a, const async__timer *b) {
  return a->when < b->when ||
         (a->when == b->when && (int32_t)(a->seq - b->seq) < 0);
}

static int ent_less(const async__heap_ent *a, const async__heap_ent *b) {
  return a->when < b->when ||
         (a->when == b->when && (int32_t)(a->tm->seq - b->tm->seq) < 0);
}

static void root_update(async__heap *h) {
  async__timer *r = h->head;
  if (h->len && (!r || timer_less(h->a[0].tm, r))) r = h->a[0].tm;
  h->root = r;
}

/* ---- The run: a sorted doubly-linked list. */

static void run_link(async__heap *h, async__timer *tm, async__timer *prev) {
  async__timer *next = prev ? prev->next : h->head;
  tm->slot = ASYNC__TIMER_RUN;
  tm->prev = prev;
  tm->next = next;
  if (prev)
    prev->next = tm;
  else
    h->head = tm;
  if (next)
    next->prev = tm;
  else
    h->tail = tm;
}

static void run_unlink(async__heap *h, async__timer *tm) {
  if (tm->prev)
    tm->prev->next = tm->next;
  else
    h->head = tm->next;
  if (tm->next)
    tm->next->prev = tm->prev;
  else
    h->tail = tm->prev;
  tm->prev = tm->next = NULL;
}

/* ---- The heap. Children of i are 4i+1 .. 4i+4: for a million timers ten
 * levels instead of twenty, each one aligned line of four keys. */

static void heap_place(async__heap *h, size_t i, async__heap_ent e) {
  h->a[i] = e;
  e.tm->slot = i;
}

static void heap_up(async__heap *h, size_t i, async__heap_ent e) {
  while (i > 0) {
    size_t p = (i - 1) >> 2;
    if (!ent_less(&e, &h->a[p])) break;
    heap_place(h, i, h->a[p]);
    i = p;
  }
  heap_place(h, i, e);
}

static void heap_down(async__heap *h, size_t i, async__heap_ent e) {
  for (;;) {
    size_t c = 4 * i + 1, m = c, end = c + 4;
    if (c >= h->len) break;
    if (end > h->len) end = h->len;
    for (size_t k = c + 1; k < end; k++)
      if (ent_less(&h->a[k], &h->a[m])) m = k;
    if (!ent_less(&h->a[m], &e)) break;
    heap_place(h, i, h->a[m]);
    i = m;
  }
  heap_place(h, i, e);
}

/* Doubles the array; 0 or -1 when memory is short. */
static int heap_grow(async__heap *h) {
  size_t cap = h->cap ? 2 * h->cap : 64;
  if (cap > (SIZE_MAX - 64) / sizeof(async__heap_ent)) return -1;
  /* malloc aligns to 16 bytes: 48 spare bytes put a[1] on a 64-byte
   * boundary, and with it every group of four siblings. */
  char *mem = malloc(cap * sizeof(async__heap_ent) + 48);
  if (!mem) return -1;
  uintptr_t line = ((uintptr_t)mem + 16 + 63) & ~(uintptr_t)63;
  async__heap_ent *a =
      (async__heap_ent *)(void *)(mem + (line - 16 - (uintptr_t)mem));
  if (h->len) memcpy(a, h->a, h->len * sizeof *a);
  free(h->mem);
  h->mem = mem;
  h->a = a;
  h->cap = cap;
  return 0;
}

static void heap_delete(async__heap *h, size_t i) {
  async__heap_ent last = h->a[--h->len];
  if (i < h->len) {
    if (i > 0 && ent_less(&last, &h->a[(i - 1) >> 2]))
      heap_up(h, i, last);
    else
      heap_down(h, i, last);
  } else if (h->len == 0) {
    free(h->mem);
    h->mem = NULL;
    h->a = NULL;
    h->cap = 0;
  }
}

void async__heap_insert(async__heap *h, async__timer *tm) {
  h->n++;
  if (!h->tail || !timer_less(tm, h->tail)) {
    run_link(h, tm, h->tail);
  } else if (timer_less(tm, h->head)) {
    run_link(h, tm, NULL);
  } else if (h->len < h->cap || heap_grow(h) == 0) {
    async__heap_ent e = {tm->when, tm};
    heap_up(h, h->len++, e);
  } else {
    /* Out of memory: into the run, from its late end, where a new
     * deadline most likely falls. */
    async__timer *p = h->tail;
    while (timer_less(tm, p)) p = p->prev;
    run_link(h, tm, p);
  }
  root_update(h);
}

void async__heap_remove(async__heap *h, async__timer *tm) {
  ASYNC__ASSERT(h->n > 0);
  h->n--;
  if (tm->slot == ASYNC__TIMER_RUN)
    run_unlink(h, tm);
  else
    heap_delete(h, tm->slot);
  root_update(h);
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
  while ((tm = loop->timers.root) && tm->when <= loop->now &&
         tm->when != ASYNC__TIME_NEVER) {
    async__heap_remove(&loop->timers, tm);
    tm->armed = 0;
    tm->fire(tm);
  }
}
