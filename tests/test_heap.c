/* SPDX-License-Identifier: MIT */
/* The timer heap: order by (deadline, sequence), removal anywhere. */
#include "helpers.h"
#include "core/core.h"

typedef struct {
  async__timer tm;
  int id;
} item;

static uint64_t rng = 88172645463325252ull;
static uint64_t next_rand(void) {
  rng ^= rng << 13;
  rng ^= rng >> 7;
  rng ^= rng << 17;
  return rng;
}

static void insert(async__heap *h, item *it, int64_t when, uint32_t seq) {
  it->tm.when = when;
  it->tm.seq = seq;
  async__heap_insert(h, &it->tm);
}

static item *pop(async__heap *h) {
  async__timer *tm = h->root;
  if (!tm) return NULL;
  async__heap_remove(h, tm);
  return async__container_of(tm, item, tm);
}

static void test_heap_pops_in_deadline_order(void **state) {
  (void)state;
  enum { N = 20000 };
  item *items = calloc(N, sizeof *items);
  async__heap h = {0};
  for (int i = 0; i < N; i++) {
    items[i].id = i;
    insert(&h, &items[i], (int64_t)(next_rand() % 1000), (uint32_t)i);
  }
  assert_int_equal(h.n, N);
  int64_t last_when = -1;
  uint32_t last_seq = 0;
  for (int i = 0; i < N; i++) {
    item *it = pop(&h);
    assert_non_null(it);
    assert_true(it->tm.when >= last_when);
    if (it->tm.when == last_when) assert_true(it->tm.seq > last_seq);
    last_when = it->tm.when;
    last_seq = it->tm.seq;
  }
  assert_null(pop(&h));
  assert_int_equal(h.n, 0);
  free(items);
}

static void test_heap_equal_deadlines_fifo(void **state) {
  (void)state;
  item items[64];
  async__heap h = {0};
  for (int i = 0; i < 64; i++) {
    items[i].id = i;
    insert(&h, &items[i], 5, (uint32_t)i);
  }
  for (int i = 0; i < 64; i++) assert_int_equal(pop(&h)->id, i);
}

static void test_heap_remove_anywhere(void **state) {
  (void)state;
  enum { N = 5000 };
  item *items = calloc(N, sizeof *items);
  char *removed = calloc(N, 1);
  async__heap h = {0};
  for (int i = 0; i < N; i++) {
    items[i].id = i;
    insert(&h, &items[i], (int64_t)(next_rand() % 100000), (uint32_t)i);
  }
  /* Remove a random half, including the root and leaves. */
  for (int k = 0; k < N / 2; k++) {
    int i = (int)(next_rand() % N);
    if (removed[i]) continue;
    async__heap_remove(&h, &items[i].tm);
    removed[i] = 1;
  }
  size_t left = 0;
  for (int i = 0; i < N; i++) left += !removed[i];
  assert_int_equal(h.n, left);
  int64_t last = -1;
  item *it;
  while ((it = pop(&h))) {
    assert_false(removed[it->id]);
    assert_true(it->tm.when >= last);
    last = it->tm.when;
    removed[it->id] = 1;
  }
  for (int i = 0; i < N; i++) assert_true(removed[i]);
  free(items);
  free(removed);
}

static void test_heap_single_and_reinsert(void **state) {
  (void)state;
  item a = {.id = 1}, b = {.id = 2};
  async__heap h = {0};
  insert(&h, &a, 10, 0);
  async__heap_remove(&h, &a.tm);
  assert_null(h.root);
  insert(&h, &a, 10, 1);
  insert(&h, &b, 5, 2);
  assert_int_equal(pop(&h)->id, 2);
  insert(&h, &b, 20, 3);
  assert_int_equal(pop(&h)->id, 1);
  assert_int_equal(pop(&h)->id, 2);
}

static void test_heap_sequence_wraps(void **state) {
  (void)state;
  /* Equal deadlines armed across the 2^32 wrap of the sequence still fire
   * in arming order. */
  item items[6];
  async__heap h = {0};
  uint32_t seq = UINT32_MAX - 2;
  for (int i = 0; i < 6; i++) {
    items[i].id = i;
    insert(&h, &items[i], 42, seq++);
  }
  for (int i = 0; i < 6; i++) assert_int_equal(pop(&h)->id, i);
}

static void test_heap_deadline_saturates(void **state) {
  (void)state;
  assert_int_equal(async__deadline_after(100, 0.0), 100);
  assert_int_equal(async__deadline_after(100, -5.0), 100);
  assert_int_equal(async__deadline_after(100, 1e300), INT64_MAX);
  /* Rounded up: never earlier than asked. */
  assert_true(async__deadline_after(0, 1.5e-9) >= 2);
  assert_int_equal(async__deadline_after(0, 1.0), 1000000000);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_heap_pops_in_deadline_order),
      cmocka_unit_test(test_heap_equal_deadlines_fifo),
      cmocka_unit_test(test_heap_remove_anywhere),
      cmocka_unit_test(test_heap_single_and_reinsert),
      cmocka_unit_test(test_heap_sequence_wraps),
      cmocka_unit_test(test_heap_deadline_saturates),
  };
  return cmocka_run_group_tests_name("heap", tests, NULL, NULL);
}
