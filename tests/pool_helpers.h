/* SPDX-License-Identifier: MIT */
/* Helpers of the thread pool's tests: a gate that blocking functions wait
 * on until the test opens it, and counters they update, all safe across
 * threads (the tests also run under ThreadSanitizer). */
#ifndef ASYNC_TEST_POOL_HELPERS_H
#define ASYNC_TEST_POOL_HELPERS_H

#include "helpers.h"

#include <pthread.h>
#include <stdatomic.h>

typedef struct gate {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  int open;
  atomic_int entered; /* functions that reached the gate */
  atomic_int running; /* between entering and leaving it */
  atomic_int most;    /* the largest `running` seen */
} gate;

static inline void gate_init(gate *g) {
  pthread_mutex_init(&g->mu, NULL);
  pthread_cond_init(&g->cv, NULL);
  g->open = 0;
  atomic_init(&g->entered, 0);
  atomic_init(&g->running, 0);
  atomic_init(&g->most, 0);
}

static inline void gate_destroy(gate *g) {
  pthread_cond_destroy(&g->cv);
  pthread_mutex_destroy(&g->mu);
}

static inline void gate_open(gate *g) {
  pthread_mutex_lock(&g->mu);
  g->open = 1;
  pthread_cond_broadcast(&g->cv);
  pthread_mutex_unlock(&g->mu);
}

static inline int gate_is_open(gate *g) {
  pthread_mutex_lock(&g->mu);
  int open = g->open;
  pthread_mutex_unlock(&g->mu);
  return open;
}

/* On a pool thread: waits for the gate to open. */
static inline void gate_pass(gate *g) {
  atomic_fetch_add(&g->entered, 1);
  int now = atomic_fetch_add(&g->running, 1) + 1;
  int most = atomic_load(&g->most);
  while (now > most && !atomic_compare_exchange_weak(&g->most, &most, now)) {
  }
  pthread_mutex_lock(&g->mu);
  while (!g->open) pthread_cond_wait(&g->cv, &g->mu);
  pthread_mutex_unlock(&g->mu);
  atomic_fetch_sub(&g->running, 1);
}

/* In a task: sleeps in small steps until *v reaches want (10 s at most).
 * Returns 1 if it did. */
static inline int await_count(atomic_int *v, int want) {
  for (int i = 0; i < 10000; i++) {
    if (atomic_load(v) >= want) return 1;
    async_sleep(0.001);
  }
  return 0;
}

/* Opens a gate from a thread of its own after `ms` milliseconds. */
typedef struct opener {
  pthread_t th;
  gate *g;
  int ms;
} opener;

static inline void *opener_main(void *p) {
  opener *o = p;
  struct timespec ts = {o->ms / 1000, (long)(o->ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
  gate_open(o->g);
  return NULL;
}

static inline void opener_start(opener *o, gate *g, int ms) {
  o->g = g;
  o->ms = ms;
  assert_int_equal(pthread_create(&o->th, NULL, opener_main, o), 0);
}

static inline void opener_join(opener *o) { pthread_join(o->th, NULL); }

#endif
