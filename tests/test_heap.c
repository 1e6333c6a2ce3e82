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

/* Deadlines in order (the run's appends), in reverse (its prepends) and in
 * between (the heap), with removals from both: one order comes out, and
 * the heap's memory is given back once it empties. */
static void test_heap_run_and_heap_mixed(void **state) {
  (void)state;
  enum { N = 6000 };
  item *items = calloc(N, sizeof *items);
  char *removed = calloc(N, 1);
  async__heap h = {0};
  for (int i = 0; i < N; i++) {
    int64_t when;
    switch (i % 3) {
    case 0:
      when = 1000000 + i;
      break; /* later than all */
    case 1:
      when = 1000000 - i;
      break; /* earlier than all */
    default:
      when = (int64_t)(next_rand() % 2000000); /* anywhere */
    }
    items[i].id = i;
    insert(&h, &items[i], when, (uint32_t)i);
  }
  assert_non_null(h.head);
  assert_true(h.len > 0);
  for (int i = 0; i < N; i += 7) {
    async__heap_remove(&h, &items[i].tm);
    removed[i] = 1;
  }
  int64_t last_when = -1;
  uint32_t last_seq = 0;
  item *it;
  size_t popped = 0;
  while ((it = pop(&h))) {
    assert_false(removed[it->id]);
    assert_true(it->tm.when >= last_when);
    if (it->tm.when == last_when) assert_true(it->tm.seq > last_seq);
    last_when = it->tm.when;
    last_seq = it->tm.seq;
    removed[it->id] = 1;
    popped++;
  }
  for (int i = 0; i < N; i++) assert_true(removed[i]);
  assert_int_equal(h.n, 0);
  assert_null(h.head);
  assert_null(h.mem);
  free(items);
  free(removed);
}

/* Equal deadlines split between the run and the heap still fire in
 * arming order. */
static void test_heap_equal_deadlines_across_both(void **state) {
  (void)state;
  item items[40];
  async__heap h = {0};
  insert(&h, &items[0], 100, 0); /* the run: 100 .. 100 */
  insert(&h, &items[1], 100, 1);
  items[0].id = 0;
  items[1].id = 1;
  insert(&h, &items[2], 900, 2); /* the run's tail */
  items[2].id = 39;
  for (int i = 3; i < 39; i++) { /* 500 is inside the run: the heap */
    items[i].id = i - 1;
    insert(&h, &items[i], i < 20 ? 100 : 500, (uint32_t)i);
  }
  /* 100 x (0, 1, then 2..18 from the heap), 500 x 19..37, then 900. */
  for (int want = 0; want < 39; want++) {
    item *it = pop(&h);
    assert_non_null(it);
    if (want < 2)
      assert_int_equal(it->id, want);
    else if (want < 38)
      assert_int_equal(it->tm.seq, (uint32_t)want + 1);
    else
      assert_int_equal(it->tm.when, 900);
  }
  assert_null(pop(&h));
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
      cmocka_unit_test(test_heap_run_and_heap_mixed),
      cmocka_unit_test(test_heap_equal_deadlines_across_both),
      cmocka_unit_test(test_heap_deadline_saturates),
  };
  return cmocka_run_group_tests_name("heap", tests, NULL, NULL);
}
