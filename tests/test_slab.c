/* SPDX-License-Identifier: MIT */
/* The block slab under the loop's futures and tasks: distinct blocks across
 * chunks, reuse, a freed block that stays readable, trim giving whole
 * chunks back, blocks that outlive their slab (on another thread too), and
 * an mmap that fails. Under AddressSanitizer and memcheck the slab takes
 * its blocks from malloc (s.heap), and the tests check that mode's rules. */
#include "helpers.h"
#include "os/os.h"

#include <pthread.h>
#include <sys/mman.h>
#include <unistd.h>

#define BLOCK 256
#define LINK 16
/* More than two chunks' worth of 256-byte blocks (8,176 to a chunk). */
#define MANY 20000

/* Blocks to a chunk: 2 MiB less the header's page. */
static size_t per_chunk(void) {
  return (((size_t)2 << 20) - (size_t)sysconf(_SC_PAGESIZE)) / BLOCK;
}

static int cmp_ptr(const void *a, const void *b) {
  uintptr_t x = (uintptr_t) * (void *const *)a;
  uintptr_t y = (uintptr_t) * (void *const *)b;
  return x < y ? -1 : x > y;
}

static void **get_many(async__slab *s, size_t n) {
  void **v = malloc(n * sizeof *v);
  assert_non_null(v);
  for (size_t i = 0; i < n; i++) {
    v[i] = async__slab_get(s);
    assert_non_null(v[i]);
    memset(v[i], (int)(i & 0xff), BLOCK); /* every byte writable */
  }
  return v;
}

static void test_slab_blocks_are_distinct(void **state) {
  (void)state;
  async__slab s;
  async__slab_init(&s, 250, LINK); /* rounded up to 256 */
  assert_int_equal(s.size, BLOCK);
  void **v = get_many(&s, MANY);
  for (size_t i = 0; i < MANY; i++) {
    assert_int_equal((uintptr_t)v[i] % 16, 0);
    unsigned char *p = v[i];
    assert_int_equal(p[0], i & 0xff); /* no later block overlapped it */
    assert_int_equal(p[BLOCK - 1], i & 0xff);
  }
  qsort(v, MANY, sizeof *v, cmp_ptr);
  for (size_t i = 1; i < MANY; i++)
    assert_true((uintptr_t)v[i] - (uintptr_t)v[i - 1] >= BLOCK);
  for (size_t i = 0; i < MANY; i++) async__slab_put(&s, v[i]);
  free(v);
  async__slab_free(&s);
}

static void test_slab_reuses_newest_first(void **state) {
  (void)state;
  async__slab s;
  async__slab_init(&s, BLOCK, LINK);
  void *a = async__slab_get(&s), *b = async__slab_get(&s);
  assert_ptr_not_equal(a, b);
  async__slab_put(&s, a);
  async__slab_put(&s, b);
  assert_ptr_equal(async__slab_get(&s), b);
  assert_ptr_equal(async__slab_get(&s), a);
  async__slab_put(&s, a);
  async__slab_put(&s, b);
  async__slab_free(&s);
}

/* What a stale handle reads: the bytes outside the link are as left. */
static void test_slab_freed_block_stays_readable(void **state) {
  (void)state;
  async__slab s;
  async__slab_init(&s, BLOCK, LINK);
  void *keep = async__slab_get(&s); /* the chunk has a block out */
  uint32_t *b = async__slab_get(&s);
  b[0] = 0x44454144u;
  b[1] = 77;
  async__slab_put(&s, b);
  async__slab_trim(&s);
  assert_int_equal(b[0], 0x44454144u);
  assert_int_equal(b[1], 77);
  async__slab_put(&s, keep);
  async__slab_free(&s);
}

static int chunk_differs(const void *a, const void *b) {
  return ((uintptr_t)a >> 21) != ((uintptr_t)b >> 21);
}

static size_t count_free(const async__slab *s) {
  size_t n = 0;
  for (void *b = s->free; b; b = *(void **)((char *)b + s->link)) n++;
  return n;
}

/* Trim gives back every empty chunk but the bump chunk and one spare, and
 * what it gives back leaves the free list; a chunk with a block out stays. */
static void test_slab_trim_gives_back_empty_chunks(void **state) {
  (void)state;
  async__slab s;
  async__slab_init(&s, BLOCK, LINK);
  const size_t per = per_chunk(), N = 5 * per; /* the last one full */
  void **v = get_many(&s, N);
  for (size_t i = 0; i < N; i++) {
    ((uint32_t *)v[i])[0] = 0x44454144u;
    if (i != 3) async__slab_put(&s, v[i]);
  }
  assert_int_equal(s.nfree, N - 1);
  void *held = v[3];
  async__slab_trim(&s);
  if (s.heap) {
    /* malloc'd blocks: the cache keeps a budget and frees the rest. */
    assert_int_equal(s.nfree, 4096);
    assert_int_equal(count_free(&s), 4096);
  } else {
    /* Kept: v[3]'s chunk (not empty), the bump chunk (the last, full) and
     * one spare; the two others are decommitted and read zeros. */
    assert_int_equal(s.nempty, 2);
    assert_int_equal(s.nfree, 3 * per - 1);
    assert_int_equal(count_free(&s), s.nfree);
    size_t zeroed = 0;
    for (size_t i = 0; i < N; i++)
      if (((uint32_t *)v[i])[0] == 0) zeroed++;
    assert_int_equal(zeroed, 2 * per);
    /* Trimming again finds nothing more to do. */
    async__slab_trim(&s);
    assert_int_equal(s.nfree, 3 * per - 1);
    /* The free list empties first, then the decommitted chunks serve
     * again, before any new mapping. */
    qsort(v, N, sizeof *v, cmp_ptr);
    size_t again = s.nfree + per;
    void **w = malloc(again * sizeof *w);
    assert_non_null(w);
    for (size_t i = 0; i < again; i++) {
      w[i] = async__slab_get(&s);
      assert_non_null(w[i]);
      assert_non_null(bsearch(&w[i], v, N, sizeof *v, cmp_ptr));
    }
    for (size_t i = 0; i < again; i++) async__slab_put(&s, w[i]);
    free(w);
  }
  async__slab_put(&s, held);
  free(v);
  async__slab_free(&s);
}

typedef struct {
  void **v;
  size_t n;
} put_job;

static void *put_all(void *arg) {
  put_job *j = arg;
  for (size_t i = 0; i < j->n; i++) async__slab_put(NULL, j->v[i]);
  return NULL;
}

/* Blocks outliving their slab (a future its user holds after the loop
 * closed) are given back later, from another thread too; the slab can be
 * set up again meanwhile. */
static void test_slab_blocks_outlive_the_slab(void **state) {
  (void)state;
  async__slab s;
  async__slab_init(&s, BLOCK, LINK);
  void **v = get_many(&s, MANY);
  for (size_t i = 0; i < MANY; i += 2) async__slab_put(&s, v[i]);
  async__slab_free(&s);
  assert_null(s.free);
  assert_null(s.chunks);
  /* The odd blocks are still out, and still the caller's. */
  for (size_t i = 1; i < MANY; i += 2)
    assert_int_equal(((unsigned char *)v[i])[7], i & 0xff);
  void *fresh = async__slab_get(&s);
  assert_non_null(fresh);
  size_t half = MANY / 2;
  void **odd = malloc(half * sizeof *odd);
  assert_non_null(odd);
  for (size_t i = 0; i < half; i++) odd[i] = v[2 * i + 1];
  put_job a = {odd, half / 2}, b = {odd + half / 2, half - half / 2};
  pthread_t th;
  assert_int_equal(pthread_create(&th, NULL, put_all, &a), 0);
  put_all(&b);
  assert_int_equal(pthread_join(th, NULL), 0);
  if (!s.heap) {
    /* The old chunks are gone: the address space says so. */
    unsigned char vec;
    void *page = (void *)((uintptr_t)v[1] & ~(uintptr_t)4095);
    assert_int_equal(mincore(page, 4096, &vec), -1);
    assert_int_equal(errno, ENOMEM);
  }
  async__slab_put(&s, fresh);
  async__slab_free(&s);
  free(odd);
  free(v);
}

/* mmap, refused on demand: the test links with -Wl,--wrap=mmap (a lowered
 * RLIMIT_AS would do natively, but qemu-user does not enforce it). */
void *__real_mmap(void *addr, size_t len, int prot, int flags, int fd,
                  off_t off);
void *__wrap_mmap(void *addr, size_t len, int prot, int flags, int fd,
                  off_t off);
static int refuse_mmap;

void *__wrap_mmap(void *addr, size_t len, int prot, int flags, int fd,
                  off_t off) {
  if (refuse_mmap) {
    errno = ENOMEM;
    return MAP_FAILED;
  }
  return __real_mmap(addr, len, prot, flags, fd, off);
}

/* Where mmap is refused the slab says so with NULL, and goes on. */
static void test_slab_mmap_refused(void **state) {
  (void)state;
  async__slab s;
  async__slab_init(&s, BLOCK, LINK);
  if (s.heap) {
    void *b = async__slab_get(&s);
    assert_non_null(b);
    async__slab_put(&s, b);
    async__slab_free(&s);
    return;
  }
  refuse_mmap = 1;
  void *none = async__slab_get(&s); /* the first chunk */
  refuse_mmap = 0;
  assert_null(none);
  void *a = async__slab_get(&s);
  assert_non_null(a);
  /* Fill the first chunk; the next get needs a mapping. */
  size_t left = (size_t)(s.end - s.bump) / s.size;
  void **v = malloc(left * sizeof *v);
  assert_non_null(v);
  for (size_t i = 0; i < left; i++) v[i] = async__slab_get(&s);
  refuse_mmap = 1;
  none = async__slab_get(&s);
  refuse_mmap = 0;
  assert_null(none);
  void *b = async__slab_get(&s);
  assert_non_null(b);
  assert_true(chunk_differs(a, b));
  async__slab_put(&s, b);
  for (size_t i = 0; i < left; i++) async__slab_put(&s, v[i]);
  async__slab_put(&s, a);
  free(v);
  async__slab_free(&s);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_slab_blocks_are_distinct),
      cmocka_unit_test(test_slab_reuses_newest_first),
      cmocka_unit_test(test_slab_freed_block_stays_readable),
      cmocka_unit_test(test_slab_trim_gives_back_empty_chunks),
      cmocka_unit_test(test_slab_blocks_outlive_the_slab),
      cmocka_unit_test(test_slab_mmap_refused),
  };
  return cmocka_run_group_tests_name("slab", tests, NULL, NULL);
}
