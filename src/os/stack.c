/* SPDX-License-Identifier: MIT */
/* Coroutine stacks: size classes, chunks carved lazily, guard pages, a
 * bounded cache, and the SIGSEGV reporter that names the task whose stack
 * overflowed.
 *
 * One chunk is one mmap holding the slots of one size class, lowest address
 * first:
 *
 *   | guard | usable ............ |desc| guard | usable ............ |desc|
 *   <------------- slot 0 ------------> <------------- slot 1 ------------>
 *
 * A slot is a whole number of pages: the guard region (the pool's guard
 * size, 64 KiB by default, so that a frame with big locals that skips a
 * page still lands in it), then the usable range,
 * then the descriptor (struct async__stack) in its highest bytes. A coroutine
 * starts at the top of its usable range, so the descriptor shares the page it
 * touches first, and a stack handed out for the first time costs one
 * resident page. Nothing else touches a slot: a chunk is carved one slot at a
 * time ("carved" counts the slots ever handed out), never threaded through up
 * front, because a million tasks must fit in a few GiB and a first touch of a
 * page costs a page fault.
 *
 * A stack handed back goes on its class's free list, which get pops: last
 * in, first out, so the stack handed out is the warmest there is, its pages
 * in the caches and the TLB. Only when that list is empty does get carve a
 * slot of a chunk on the class's "fresh" list (the chunks with slots never
 * carved), or map a new chunk. Both are O(1) and make no system call but the
 * guard of a fresh slot and the mmap of a new chunk. When a put leaves a
 * chunk with no stack in use while its class caches more free stacks than
 * its budget, the chunk is unmapped: the free list is doubly linked, so its
 * stacks leave it in O(stacks in the chunk), found by their slot numbers. */
#include "os.h"

#include <assert.h>
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <ucontext.h>
#include <unistd.h>
#if defined(__linux__)
#include <sys/syscall.h>
#include <sys/uio.h>
#endif

/* The build decides (ASYNC_VALGRIND in CMakeLists.txt), so that what
 * configure reports is what is compiled in, and a build that needs it fails
 * when the header is missing instead of silently leaving it out. */
#if defined(ASYNC_HAVE_VALGRIND)
#include <valgrind/valgrind.h>
#define ASYNC__STACK_VALGRIND 1
#endif

#if defined(__SANITIZE_ADDRESS__)
#define ASYNC__STACK_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define ASYNC__STACK_ASAN 1
#endif
#endif

#if defined(ASYNC__STACK_ASAN)
#include <sanitizer/asan_interface.h>
#define ASYNC__STACK_NO_ASAN __attribute__((no_sanitize_address))
#else
#define ASYNC__STACK_NO_ASAN
#endif

/* Where the flag is missing, mappings are lazily committed anyway. */
#if !defined(MAP_NORESERVE)
#define MAP_NORESERVE 0
#endif

/* Linux 6.13 added guard regions; older headers do not name the advice. */
#if defined(__linux__) && !defined(MADV_GUARD_INSTALL)
#define MADV_GUARD_INSTALL 102
#endif

/* The most stacks one chunk holds, and the most bytes it spans: big stacks
 * get fewer slots per chunk, and a stack bigger than the span gets a chunk to
 * itself. */
#define ASYNC__STACK_CHUNK_STACKS 64u
#define ASYNC__STACK_CHUNK_BYTES ((size_t)32 << 20)

/* A class unmaps chunks with no stack in use once it caches more free stacks
 * than this many, or than this many bytes of usable range. */
#define ASYNC__STACK_CACHE_STACKS 256u
#define ASYNC__STACK_CACHE_BYTES ((size_t)64 << 20)

/* mprotect guards allowed at once in the process by default: each splits a
 * mapping in two, and vm.max_map_count is 65530 by default. */
#define ASYNC__STACK_MPROTECT_BUDGET 16384L

#define ASYNC__STACK_CANARY_SIZE 64u

/* A fault this far below the guard region of the running stack is taken for
 * an overflow too: under the lowest slot of a chunk there may be no mapping,
 * and a frame bigger than the guard faults there. */
#define ASYNC__STACK_REPORT_BELOW ((uintptr_t)64 << 10)

#define ASYNC__STACK_ALTSTACK_SIZE ((size_t)64 << 10)

/* ================================================================ Types. */

/* A circular doubly-linked list node; a node whose next is NULL is on no
 * list, which lets a chunk leave a list it may not be on. */
typedef struct async__stack_link {
  struct async__stack_link *prev;
  struct async__stack_link *next;
} async__stack_link;

#define ASYNC__STACK_CONTAINER(ptr, type, field)                               \
  ((type *)(void *)((char *)(ptr)-offsetof(type, field)))

typedef struct async__stack_class async__stack_class;
typedef struct async__stack_chunk async__stack_chunk;

/* The descriptor, in the top bytes of its slot. While the stack is free,
 * `is_free` is set and `prev`/`next` link it on its class's free list (NULL
 * ends it both ways); while it is out, `owner` is the task it was handed to.
 * The other fields are set when the slot is carved and never change. */
struct async__stack {
  async__stack_chunk *chunk;
  async__stack *prev;
  async__stack *next;
  const void *owner;
  size_t size;         /* usable bytes, right below the descriptor */
  unsigned char guard; /* enum async__guard */
  unsigned char is_free;
  unsigned valgrind_id;
};

/* The descriptor takes the top of the slot and leaves the usable range's top
 * 16-byte aligned, as the ABIs want a stack pointer. */
#define ASYNC__STACK_DESC_SIZE                                                 \
  ((sizeof(struct async__stack) + 15) & ~(size_t)15)

/* A chunk; malloc'd apart from its mapping so that its bookkeeping never
 * touches a slot. Slots [0, carved) have a descriptor; `used` of them are
 * handed out and the others are on the class's free list. A chunk is on its
 * class's fresh list iff carved < count, and on its pool's list of every
 * chunk from its creation to its unmapping. */
struct async__stack_chunk {
  async__stack_link all;
  async__stack_link fresh;
  async__stack_pool *pool;
  async__stack_class *cls;
  char *base;
  size_t len;
  unsigned count;
  unsigned carved;
  unsigned prepared; /* slots [carved, prepared) have a guard and a top page */
  unsigned used;
  unsigned mprotected; /* guards charged to the process-wide budget */
};

/* A size class: every slot of its chunks spans `slot` bytes, guard page and
 * descriptor included, and offers `usable` bytes. `free` heads the list of
 * its free stacks, the most recently put first; `cached` counts them. */
struct async__stack_class {
  async__stack_class *next;
  size_t slot;
  size_t usable;
  unsigned per_chunk;
  size_t cached;
  size_t cache_max;
  unsigned chunks; /* mapped */
  async__stack *free;
  async__stack_link fresh;
};

struct async__stack_pool {
  async__stack_namer namer;
  size_t page;
  size_t guard; /* bytes under each stack, a multiple of page */
  async__stack_class *classes;
  async__stack_link chunks;
  int trim_wanted; /* a class caches more than its budget */
  /* The class of the size asked last: nearly every get asks the loop's
   * default, and finding it costs a division and a search otherwise. */
  size_t last_size;
  async__stack_class *last;
};

/* ======================================================= Process state. */

/* Whether MADV_GUARD_INSTALL works: 0 untried, 1 yes, -1 no (the kernel
 * refused it, or took it and left the page writable). Probed by the first
 * carve that wants it; "allowed" is the test knob. */
static atomic_int async__stack_madvise_state;
static atomic_int async__stack_madvise_allowed = 1;

/* mprotect guards in place in the process, and how many may be. */
static atomic_long async__stack_mprotect_used;
static atomic_long async__stack_mprotect_limit = ASYNC__STACK_MPROTECT_BUDGET;

/* The stack running on this thread, for the SIGSEGV handler. It is written
 * at every switch, so it uses the initial-exec model where the compiler has
 * it: one store relative to the thread pointer, and no lazy allocation of
 * the thread-local block, which a signal handler could not afford. */
_Thread_local async__stack *async__stack_current ASYNC__STACK_TLS;

#if !defined(ASYNC__TLS_STORE)
/* Out of line where os.h has no asm for it: a call the compiler does not
 * see into finds this thread's slot anew, each time (see "tls" in os.h). */
ASYNC__NOINLINE void async__stack_set_current(async__stack *s) {
  async__stack_current = s;
}
#endif

/* ============================================================== Lists. */

static void link_init(async__stack_link *head) {
  head->prev = head;
  head->next = head;
}

static int link_empty(const async__stack_link *head) {
  return head->next == head;
}

static void link_push(async__stack_link *head, async__stack_link *node) {
  node->prev = head;
  node->next = head->next;
  head->next->prev = node;
  head->next = node;
}

static void link_remove(async__stack_link *node) {
  if (node->next == NULL) return;
  node->prev->next = node->next;
  node->next->prev = node->prev;
  node->next = NULL;
  node->prev = NULL;
}

/* ============================================================= Guards. */

/* The canary pattern: varied bytes, so that neither a run of zeros nor a
 * run of one repeated byte passes for it. */
static unsigned char canary_byte(unsigned i) {
  return (unsigned char)(0xa5u ^ (i * 0x3bu) ^ (i >> 3));
}

static void canary_write(unsigned char *lo) {
  for (unsigned i = 0; i < ASYNC__STACK_CANARY_SIZE; i++)
    lo[i] = canary_byte(i);
}

/* Under ASan the bytes may be poisoned by the frames of an overflow: read
 * them as they are. */
ASYNC__STACK_NO_ASAN
static int canary_intact(const unsigned char *lo) {
  for (unsigned i = 0; i < ASYNC__STACK_CANARY_SIZE; i++)
    if (lo[i] != canary_byte(i)) return 0;
  return 1;
}

#if defined(__linux__)
/* Whether a guard installed with madvise really stops an access; the answer
 * is kept for the process. A kernel older than 6.13 refuses the advice with
 * EINVAL. qemu-user takes any advice it does not emulate, this one included,
 * as a hint it may ignore: madvise returns 0 and the page stays writable, so
 * success proves nothing and the probe tries the page itself. It asks the
 * kernel to write there (a raw clock_gettime, not the vDSO, which would
 * write from user space and fault): a real guard makes that EFAULT, the
 * emulator writes the page and returns 0. No signal is involved. */
static int madvise_guard_works(size_t page) {
  int state =
      atomic_load_explicit(&async__stack_madvise_state, memory_order_relaxed);
  if (state != 0) return state > 0;
  void *p = mmap(NULL, page, PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) return 0; /* short of memory: ask again next time */
  if (madvise(p, page, MADV_GUARD_INSTALL) == 0) {
    long r = syscall(SYS_clock_gettime, CLOCK_MONOTONIC, p);
    state = r < 0 && errno == EFAULT ? 1 : -1;
  } else if (errno == EINVAL) {
    state = -1;
  }
  munmap(p, page);
  /* Any other failure (a short page-table allocation) says nothing yet. */
  if (state != 0)
    atomic_store_explicit(&async__stack_madvise_state, state,
                          memory_order_relaxed);
  return state > 0;
}
#endif

/* Makes `len` bytes at `at` a guard: madvise when the kernel has guard
 * regions that work, else mprotect while the budget lasts, else nothing (the
 * caller writes a canary). Either costs the same whatever the length:
 * madvise makes no mapping, an mprotect splits the chunk's mapping once. */
static enum async__guard guard_install(char *at, size_t len) {
#if defined(__linux__)
  if (atomic_load_explicit(&async__stack_madvise_allowed,
                           memory_order_relaxed) &&
      madvise_guard_works(len)) {
    /* A failure now (a short page-table allocation) is this slot's alone. */
    if (madvise(at, len, MADV_GUARD_INSTALL) == 0) return ASYNC__GUARD_MADVISE;
  }
#endif
  if (atomic_fetch_add(&async__stack_mprotect_used, 1) <
      atomic_load_explicit(&async__stack_mprotect_limit,
                           memory_order_relaxed)) {
    /* This fails with ENOMEM once the process has as many mappings as
     * vm.max_map_count allows, whatever the budget says. */
    if (mprotect(at, len, PROT_NONE) == 0) return ASYNC__GUARD_MPROTECT;
  }
  atomic_fetch_sub(&async__stack_mprotect_used, 1);
  return ASYNC__GUARD_CANARY;
}

void async__stack_test_config(int allow_madvise_guard, long mprotect_budget) {
  if (mprotect_budget < 0) mprotect_budget = ASYNC__STACK_MPROTECT_BUDGET;
  atomic_store(&async__stack_madvise_allowed, allow_madvise_guard != 0);
  atomic_store(&async__stack_mprotect_limit, mprotect_budget);
}

/* ============================================================= Chunks. */

static async__stack *slot_desc(const async__stack_chunk *c, unsigned i) {
  char *end = c->base + (size_t)(i + 1) * c->cls->slot;
  return (async__stack *)(void *)(end - ASYNC__STACK_DESC_SIZE);
}

static async__stack_chunk *chunk_new(async__stack_pool *pool,
                                     async__stack_class *cls) {
  async__stack_chunk *c = calloc(1, sizeof *c);
  if (c == NULL) return NULL;
  /* MAP_NORESERVE: the kernel commits pages as they are touched, and a
   * million stacks of address space must not count against overcommit.
   * Short of address space (RLIMIT_AS, a 32-bit process), fewer slots:
   * halving down to one, so that a program that can map one stack runs. */
  void *base = MAP_FAILED;
  unsigned count = cls->per_chunk;
  for (;;) {
    c->len = cls->slot * count;
    base = mmap(NULL, c->len, PROT_READ | PROT_WRITE,
                MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (base != MAP_FAILED || errno != ENOMEM || count == 1) break;
    count /= 2;
  }
  if (base == MAP_FAILED) {
    free(c);
    return NULL;
  }
#if defined(MADV_NOHUGEPAGE)
  /* With transparent huge pages set to "always", the first touch of a stack
   * could commit 2 MiB instead of one page. Every chunk gets the same flag,
   * so neighbouring chunks still merge into one mapping. */
  (void)madvise(base, c->len, MADV_NOHUGEPAGE);
#endif
#if defined(ASYNC__STACK_ASAN)
  /* ASan may remember poison from an earlier mapping at these addresses. */
  __asan_unpoison_memory_region(base, c->len);
#endif
  c->base = base;
  c->pool = pool;
  c->cls = cls;
  c->count = count;
  cls->chunks++;
  link_push(&pool->chunks, &c->all);
  link_push(&cls->fresh, &c->fresh);
  return c;
}

static void free_push(async__stack_class *cls, async__stack *s) {
  s->is_free = 1;
  s->prev = NULL;
  s->next = cls->free;
  if (cls->free != NULL) cls->free->prev = s;
  cls->free = s;
  cls->cached++;
}

static void free_remove(async__stack_class *cls, async__stack *s) {
  if (s->prev != NULL)
    s->prev->next = s->next;
  else
    cls->free = s->next;
  if (s->next != NULL) s->next->prev = s->prev;
  s->prev = NULL;
  s->next = NULL;
  s->is_free = 0;
  cls->cached--;
}

/* Unmaps a chunk, whatever the state of its stacks. Its free stacks leave
 * the free list unless `keep_list` says the class goes away with it. */
static void chunk_free(async__stack_chunk *c, int keep_list) {
  for (unsigned i = 0; i < c->carved; i++) {
    async__stack *s = slot_desc(c, i);
    if (s->is_free && !keep_list) free_remove(c->cls, s);
#if defined(ASYNC__STACK_VALGRIND)
    VALGRIND_STACK_DEREGISTER(s->valgrind_id);
#endif
  }
#if defined(ASYNC__STACK_ASAN)
  /* Frames of stacks still in use leave poison that would otherwise outlive
   * the mapping and fault whatever is mapped here next. */
  __asan_unpoison_memory_region(c->base, c->len);
#endif
  if (c->mprotected > 0)
    atomic_fetch_sub(&async__stack_mprotect_used, (long)c->mprotected);
  c->cls->chunks--;
  link_remove(&c->all);
  link_remove(&c->fresh);
  munmap(c->base, c->len);
  free(c);
}

#if defined(__linux__) && defined(SYS_process_madvise)
#define ASYNC__STACK_BATCH 32
#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif
/* The calling process, for process_madvise (Linux 6.14+); older kernels
 * answer EBADF and the slots are prepared one by one. */
#define ASYNC__PIDFD_SELF (-10000)

/* 0 untried, 1 works, -1 refused: process_madvise on ourselves. */
static atomic_int async__stack_batch_state;

/* Prepares the next slots of a chunk in two system calls instead of two per
 * slot: guard pages installed with one process_madvise, and the top pages,
 * which every task touches first, committed with MADV_POPULATE_WRITE, which
 * costs less than a page fault each. Up to ASYNC__STACK_BATCH slots, so a
 * small program commits at most that many pages ahead. Returns how many
 * slots now have a guard (0 when batching is not available). */
static unsigned chunk_prepare(async__stack_chunk *c) {
  if (atomic_load_explicit(&async__stack_batch_state, memory_order_relaxed) <
          0 ||
      !atomic_load_explicit(&async__stack_madvise_allowed,
                            memory_order_relaxed) ||
      !madvise_guard_works(c->pool->page))
    return 0;
  size_t page = c->pool->page, guard = c->pool->guard, slot = c->cls->slot;
  /* Commit ahead as much as the chunk already uses, up to the batch: a
   * program with a handful of tasks pays for a handful of pages. A class
   * that needed another chunk has shown it uses many: a full batch from
   * the start. Each call costs about 1 us whatever its length (measured:
   * a million slots prepared 1, 8, 16, 64 at a time, 4.0, 2.4, 2.4, 2.2 us
   * each), so the batches are as few as that allows. */
  unsigned n = c->count - c->carved;
  unsigned ahead = c->cls->chunks > 1 ? ASYNC__STACK_BATCH
                   : c->carved        ? c->carved
                                      : 1;
  if (ahead > ASYNC__STACK_BATCH) ahead = ASYNC__STACK_BATCH;
  if (n > ahead) n = ahead;
  struct iovec iov[ASYNC__STACK_BATCH];
  char *first = c->base + (size_t)c->carved * slot;
  for (unsigned i = 0; i < n; i++) {
    iov[i].iov_base = first + (size_t)i * slot;
    iov[i].iov_len = guard;
  }
  long done = syscall(SYS_process_madvise, ASYNC__PIDFD_SELF, iov, (size_t)n,
                      MADV_GUARD_INSTALL, 0u);
  if (done < 0) {
    if (errno == EBADF || errno == EINVAL || errno == ENOSYS ||
        errno == EPERM) {
      int untried = 0;
      atomic_compare_exchange_strong(&async__stack_batch_state, &untried, -1);
    }
    return 0;
  }
  atomic_store_explicit(&async__stack_batch_state, 1, memory_order_relaxed);
  unsigned guarded = (unsigned)((size_t)done / guard);
  for (unsigned i = 0; i < guarded; i++) {
    iov[i].iov_base = first + (size_t)(i + 1) * slot - page;
    iov[i].iov_len = page;
  }
  /* Only an optimisation: a failure leaves the pages to fault in. */
  (void)syscall(SYS_process_madvise, ASYNC__PIDFD_SELF, iov, (size_t)guarded,
                MADV_POPULATE_WRITE, 0u);
  return guarded;
}
#else
static unsigned chunk_prepare(async__stack_chunk *c) {
  (void)c;
  return 0;
}
#endif

/* Hands out the chunk's next never-used slot: installs its guard and writes
 * its descriptor, which touches the slot's top page and, for a canary, its
 * lowest usable bytes; nothing else. */
static async__stack *chunk_carve(async__stack_chunk *c) {
  size_t region = c->pool->guard;
  char *slot = c->base + (size_t)c->carved * c->cls->slot;
  char *lo = slot + region;
  async__stack *s = slot_desc(c, c->carved);
  if (c->prepared <= c->carved) c->prepared = c->carved + chunk_prepare(c);
  /* A prepared slot has its madvise guard; the test knob that forbids them
   * wins, so that the fallbacks are what the next gets receive. */
  enum async__guard guard =
      c->prepared > c->carved &&
              atomic_load_explicit(&async__stack_madvise_allowed,
                                   memory_order_relaxed)
          ? ASYNC__GUARD_MADVISE
          : guard_install(slot, region);

  s->chunk = c;
  s->prev = NULL;
  s->next = NULL;
  s->owner = NULL;
  s->size = c->cls->usable;
  s->guard = (unsigned char)guard;
  s->is_free = 0;
  s->valgrind_id = 0;
  if (guard == ASYNC__GUARD_MPROTECT) c->mprotected++;
  if (guard == ASYNC__GUARD_CANARY) canary_write((unsigned char *)lo);
#if defined(ASYNC__STACK_VALGRIND)
  s->valgrind_id = VALGRIND_STACK_REGISTER(lo, lo + s->size);
#endif
  if (++c->carved == c->count) link_remove(&c->fresh);
  return s;
}

/* ============================================================ Classes. */

static size_t round_up(size_t n, size_t to) { return (n + to - 1) / to * to; }

/* A class of `slot` bytes a stack, put on the pool's list. */
static async__stack_class *class_new(async__stack_pool *pool, size_t slot) {
  async__stack_class *cls = calloc(1, sizeof *cls);
  if (cls == NULL) return NULL;
  cls->slot = slot;
  cls->usable = slot - pool->guard - ASYNC__STACK_DESC_SIZE;
  size_t n = ASYNC__STACK_CHUNK_BYTES / slot;
  if (n < 1) n = 1;
  if (n > ASYNC__STACK_CHUNK_STACKS) n = ASYNC__STACK_CHUNK_STACKS;
  cls->per_chunk = (unsigned)n;
  /* At least one stack stays cached, so that a task of a huge size spawned
   * over and over does not map and unmap a chunk each time. */
  n = ASYNC__STACK_CACHE_BYTES / cls->usable;
  if (n < 1) n = 1;
  if (n > ASYNC__STACK_CACHE_STACKS) n = ASYNC__STACK_CACHE_STACKS;
  cls->cache_max = n;
  link_init(&cls->fresh);
  cls->next = pool->classes;
  pool->classes = cls;
  return cls;
}

/* The class for stacks of at least `size` usable bytes, made on first use;
 * NULL when the size is absurd or memory is short. Pools see a handful of
 * sizes (the loop's default and the few tasks that ask for another), so a
 * list is searched. */
static async__stack_class *class_get(async__stack_pool *pool, size_t size) {
  if (async__likely(pool->last != NULL && size == pool->last_size))
    return pool->last;
  size_t asked = size;
  if (size < ASYNC__STACK_MIN_SIZE) size = ASYNC__STACK_MIN_SIZE;
  if (size > SIZE_MAX / 4) return NULL;
  if (size > SIZE_MAX / 4 - pool->guard) return NULL;
  size_t slot =
      pool->guard + round_up(size + ASYNC__STACK_DESC_SIZE, pool->page);
  async__stack_class *cls;
  for (cls = pool->classes; cls != NULL; cls = cls->next)
    if (cls->slot == slot) break;
  if (cls == NULL && (cls = class_new(pool, slot)) == NULL) return NULL;
  pool->last_size = asked;
  pool->last = cls;
  return cls;
}

/* =============================================================== Pool. */

int async__stack_pool_new(async__stack_pool **out, async__stack_namer namer,
                          size_t guard) {
  if (out == NULL) return -EINVAL;
  if (guard == 0) guard = ASYNC__STACK_DEFAULT_GUARD;
  if (guard > ASYNC__STACK_MAX_GUARD) return -EINVAL;
  async__stack_pool *pool = calloc(1, sizeof *pool);
  if (pool == NULL) return -ENOMEM;
  long page = sysconf(_SC_PAGESIZE);
  pool->page = page > 0 ? (size_t)page : 4096;
  pool->guard = round_up(guard, pool->page);
  pool->namer = namer;
  link_init(&pool->chunks);
  *out = pool;
  return 0;
}

void async__stack_pool_free(async__stack_pool *pool) {
  if (pool == NULL) return;
  /* The reporter must not read a descriptor that is about to vanish. */
  async__stack *cur = async__stack_current;
  if (cur != NULL && cur->chunk->pool == pool) async__stack_current = NULL;
  while (!link_empty(&pool->chunks))
    chunk_free(
        ASYNC__STACK_CONTAINER(pool->chunks.next, async__stack_chunk, all), 1);
  while (pool->classes != NULL) {
    async__stack_class *cls = pool->classes;
    pool->classes = cls->next;
    free(cls);
  }
  free(pool);
}

/* Every get that the free list of the last size asked cannot serve. */
ASYNC__NOINLINE static async__stack *
stack_get_slow(async__stack_pool *pool, size_t size, const void *owner) {
  if (pool == NULL) return NULL;
  async__stack_class *cls = class_get(pool, size);
  if (cls == NULL) return NULL;

  async__stack *s = cls->free;
  if (s != NULL) {
    free_remove(cls, s);
  } else {
    async__stack_chunk *c;
    if (!link_empty(&cls->fresh))
      c = ASYNC__STACK_CONTAINER(cls->fresh.next, async__stack_chunk, fresh);
    else if ((c = chunk_new(pool, cls)) == NULL)
      return NULL;
    s = chunk_carve(c);
  }
  s->chunk->used++;
  s->owner = owner;
  return s;
}

/* A task that ends before the next starts hands its stack on through the
 * free list, so a get is nearly always this pop, with no call. */
async__stack *async__stack_get(async__stack_pool *pool, size_t size,
                               const void *owner) {
  async__stack_class *cls;
  async__stack *s;
  if (async__likely(pool != NULL && (cls = pool->last) != NULL &&
                    size == pool->last_size && (s = cls->free) != NULL)) {
    free_remove(cls, s);
    s->chunk->used++;
    s->owner = owner;
    return s;
  }
  return stack_get_slow(pool, size, owner);
}

void async__stack_put(async__stack_pool *pool, async__stack *s) {
  if (s == NULL) return;
  async__stack_chunk *c = s->chunk;
  async__stack_class *cls = c->cls;
  assert(pool == c->pool);
  assert(s != async__stack_current);
  assert(!s->is_free);

#if defined(ASYNC__STACK_ASAN)
  /* A task that ended by switching away for good left its frames poisoned;
   * the next task on this stack must not trip over them. */
  __asan_unpoison_memory_region(async__stack_lo(s), s->size);
#endif
  s->owner = NULL;
  free_push(cls, s);
  /* Unmapping waits for async__stack_trim: a burst of tasks ending must not
   * pay for munmap one chunk at a time on its way out. */
  if (--c->used == 0 && cls->cached > cls->cache_max) pool->trim_wanted = 1;
}

void async__stack_trim(async__stack_pool *pool) {
  if (pool == NULL || !pool->trim_wanted) return;
  pool->trim_wanted = 0;
  async__stack_link *l = pool->chunks.next;
  while (l != &pool->chunks) {
    async__stack_chunk *c = ASYNC__STACK_CONTAINER(l, async__stack_chunk, all);
    l = l->next;
    if (c->used == 0 && c->cls->cached > c->cls->cache_max) chunk_free(c, 0);
  }
}

void *async__stack_lo(const async__stack *s) {
  return (char *)(uintptr_t)s - s->size;
}

size_t async__stack_size(const async__stack *s) { return s->size; }

enum async__guard async__stack_guard(const async__stack *s) {
  return (enum async__guard)s->guard;
}

/* =========================================================== Reporter. */

static size_t append(char *buf, size_t pos, size_t cap, const char *str) {
  while (*str != '\0' && pos + 1 < cap) buf[pos++] = *str++;
  return pos;
}

static size_t append_size(char *buf, size_t pos, size_t cap, size_t n) {
  char digits[24];
  size_t len = 0;
  do {
    digits[len++] = (char)('0' + n % 10);
    n /= 10;
  } while (n != 0);
  while (len > 0 && pos + 1 < cap) buf[pos++] = digits[--len];
  return pos;
}

/* Writes the overflow message of `s` to stderr. Async-signal-safe: no stdio,
 * no allocation, only write(2). A canary stack has no guard, so its
 * overflow is seen only after the fact, and the message says what that
 * means. */
static void report(const async__stack *s) {
  char name[128];
  char msg[384];
  const char *who = "?";
  async__stack_namer namer = s->chunk->pool->namer;

  if (namer != NULL && s->owner != NULL) {
    name[0] = '\0';
    namer(s->owner, name, sizeof name);
    name[sizeof name - 1] = '\0';
    if (name[0] != '\0') who = name;
  }
  size_t len = append(msg, 0, sizeof msg, "libasync: stack overflow in task '");
  len = append(msg, len, sizeof msg, who);
  len = append(msg, len, sizeof msg, "' (stack size ");
  len = append_size(msg, len, sizeof msg, s->size);
  len = append(msg, len, sizeof msg,
               s->guard == ASYNC__GUARD_CANARY
                   ? " bytes; canary mode, no guard region: found late, "
                     "after it wrote below its stack, into memory that may "
                     "belong to another task)\n"
                   : " bytes)\n");

  const char *p = msg;
  while (len > 0) {
    ssize_t n = write(STDERR_FILENO, p, len);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    p += n;
    len -= (size_t)n;
  }
}

int async__stack_intact(const async__stack *s) {
  return s == NULL || s->guard != ASYNC__GUARD_CANARY ||
         canary_intact(async__stack_lo(s));
}

void async__stack_check(const async__stack *s) {
  if (async__stack_intact(s)) return;
  report(s);
  abort();
}

/* The SIGSEGV action found when ours was installed, chained to for faults
 * that are not an overflow of the running stack. */
static struct sigaction async__stack_prev_segv;

/* 0: the handler is not installed; 1: a thread is installing it; 2: it is. */
static atomic_int async__stack_handler_state;

/* Puts `act` back for SIGSEGV: the fault repeats once the handler returns,
 * and the kernel delivers it to that action. */
static void segv_restore(const struct sigaction *act) {
  sigaction(SIGSEGV, act, NULL);
}

static void segv_chain(int sig, siginfo_t *info, void *uctx) {
  const struct sigaction *prev = &async__stack_prev_segv;
  int sent = info == NULL || info->si_code <= 0; /* by kill(), not a fault */

  if (prev->sa_flags & SA_SIGINFO) {
    if (prev->sa_sigaction != NULL) prev->sa_sigaction(sig, info, uctx);
    return;
  }
  if (prev->sa_handler == SIG_IGN && sent) return;
  if (prev->sa_handler != SIG_DFL && prev->sa_handler != SIG_IGN) {
    prev->sa_handler(sig);
    return;
  }
  /* SIG_DFL, or SIG_IGN for a fault that would repeat forever (the kernel
   * kills a process that ignores a fault): let the signal take its course. A
   * fault repeats by itself; a signal sent by kill() is raised again, and
   * stays pending until this handler returns. */
  segv_restore(prev);
  if (sent) raise(sig);
}

/* The stack pointer of the code that faulted, 0 where it is not known. */
static uintptr_t fault_sp(const void *uctx) {
#if defined(__linux__) && defined(__x86_64__) && defined(REG_RSP)
  return (uintptr_t)((const ucontext_t *)uctx)->uc_mcontext.gregs[REG_RSP];
#elif defined(__linux__) && defined(__aarch64__)
  return (uintptr_t)((const ucontext_t *)uctx)->uc_mcontext.sp;
#else
  (void)uctx;
  return 0;
#endif
}

/* Whether a fault while `s` runs is its overflow. In its guard region or
 * just under it, whatever the mode. Or with the stack pointer under the
 * stack, down to just under its chunk: a recursion on a canary stack runs
 * through the stacks below with nothing to stop it, and faults wherever
 * it first meets something unmapped, or in a neighbour's frame it
 * corrupted; the canary can be skipped by a frame, the stack pointer not. */
static int is_overflow(const async__stack *s, uintptr_t addr, uintptr_t sp) {
  uintptr_t lo = (uintptr_t)async__stack_lo(s);
  uintptr_t below = s->chunk->pool->guard + ASYNC__STACK_REPORT_BELOW;
  uintptr_t floor = (uintptr_t)s->chunk->base;

  if (addr < lo && lo - addr <= below) return 1;
  floor =
      floor > ASYNC__STACK_REPORT_BELOW ? floor - ASYNC__STACK_REPORT_BELOW : 0;
  if (sp != 0 && sp < lo && sp >= floor) return 1;
  return s->guard == ASYNC__GUARD_CANARY && !canary_intact((void *)lo);
}

/* The fault address being passed on, to recognise a handler that chains
 * back to us; a handler that longjmps away leaves it set, which only
 * matters if the very same address faults again. */
static _Thread_local void *async__stack_chaining;

static void segv_handler(int sig, siginfo_t *info, void *uctx) {
  int saved_errno = errno;
  const async__stack *s = async__stack_current;

  if (info && info->si_code > 0 && async__stack_chaining == info->si_addr) {
    /* A handler we chained to chained back to us: stop the cycle and let
     * the fault kill the process as it would have. */
    struct sigaction dfl;
    memset(&dfl, 0, sizeof dfl);
    dfl.sa_handler = SIG_DFL;
    sigemptyset(&dfl.sa_mask);
    segv_restore(&dfl);
    return;
  }

  if (s != NULL && info != NULL && info->si_code > 0 &&
      is_overflow(s, (uintptr_t)info->si_addr, fault_sp(uctx))) {
    struct sigaction dfl;
    memset(&dfl, 0, sizeof dfl);
    dfl.sa_handler = SIG_DFL;
    sigemptyset(&dfl.sa_mask);
    report(s);
    segv_restore(&dfl);
    errno = saved_errno;
    return;
  }
  errno = saved_errno;
  async__stack_chaining = info ? info->si_addr : NULL;
  segv_chain(sig, info, uctx);
  async__stack_chaining = NULL;
}

/* The alternate signal stacks this file made, one per thread that asked,
 * given back when the thread exits. */
static pthread_key_t async__stack_altstack_key;
static size_t async__stack_altstack_page;
static size_t async__stack_altstack_len; /* both guard pages included */
static _Thread_local int async__stack_altstack_checked;

static void altstack_release(void *mem) {
  stack_t cur;

  if (sigaltstack(NULL, &cur) == 0 &&
      cur.ss_sp == (char *)mem + async__stack_altstack_page) {
    stack_t off;
    memset(&off, 0, sizeof off);
    off.ss_flags = SS_DISABLE;
    sigaltstack(&off, NULL);
  }
  munmap(mem, async__stack_altstack_len);
}

/* Someone (a test framework, a crash reporter) may have replaced our
 * handler since we installed it: take over again, chaining to theirs. */
static void handler_reclaim(void) {
  struct sigaction cur, sa;
  if (sigaction(SIGSEGV, NULL, &cur) != 0) return;
  if ((cur.sa_flags & SA_SIGINFO) && cur.sa_sigaction == segv_handler) return;
  int state = 2;
  if (!atomic_compare_exchange_strong(&async__stack_handler_state, &state, 1))
    return;
  memset(&sa, 0, sizeof sa);
  sa.sa_sigaction = segv_handler;
  sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
  sigemptyset(&sa.sa_mask);
  async__stack_prev_segv = cur;
  sigaction(SIGSEGV, &sa, NULL);
  atomic_store(&async__stack_handler_state, 2);
}

static int handler_install(void) {
  /* The first caller installs; a concurrent one waits until it is done. */
  int state = 0;
  while (
      !atomic_compare_exchange_weak(&async__stack_handler_state, &state, 1)) {
    if (state == 2) {
      handler_reclaim();
      return 0;
    }
    state = 0;
    sched_yield();
  }

  long page = sysconf(_SC_PAGESIZE);
  size_t size = ASYNC__STACK_ALTSTACK_SIZE;
#if defined(_SC_MINSIGSTKSZ)
  /* Wide vector registers (AVX-512, SVE, SME) make signal frames large. */
  long min = sysconf(_SC_MINSIGSTKSZ);
  if (min > 0 && (size_t)min * 4 > size) size = (size_t)min * 4;
#endif
  if (page <= 0) page = 4096;
  async__stack_altstack_page = (size_t)page;
  async__stack_altstack_len = round_up(size, (size_t)page) + 2 * (size_t)page;

  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_sigaction = segv_handler;
  sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
  sigemptyset(&sa.sa_mask);
  int err = pthread_key_create(&async__stack_altstack_key, altstack_release);
  if (err != 0) {
    atomic_store(&async__stack_handler_state, 0);
    return -err;
  }
  /* The previous action is saved before ours takes over, so that a fault in
   * another thread never finds it half written. */
  if (sigaction(SIGSEGV, NULL, &async__stack_prev_segv) != 0 ||
      sigaction(SIGSEGV, &sa, NULL) != 0) {
    err = -errno;
    pthread_key_delete(async__stack_altstack_key);
    atomic_store(&async__stack_handler_state, 0);
    return err;
  }
  atomic_store(&async__stack_handler_state, 2);
  return 0;
}

/* A SIGSEGV raised by an overflow cannot run on the stack that overflowed:
 * the handler needs a stack of its own. A thread that already has one (ASan
 * gives every thread one, for instance) keeps it. */
static int altstack_install(void) {
  stack_t cur;
  if (async__stack_altstack_checked) return 0;
  if (sigaltstack(NULL, &cur) != 0) return -errno;
  if (!(cur.ss_flags & SS_DISABLE)) {
    async__stack_altstack_checked = 1;
    return 0;
  }

  size_t page = async__stack_altstack_page;
  char *mem = mmap(NULL, async__stack_altstack_len, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (mem == MAP_FAILED) return -ENOMEM;
  /* A guard below, so that a handler overflowing its stack faults instead
   * of corrupting a neighbour. And one above: where mappings are placed
   * bottom-up (qemu-user places them so), the first chunk of stacks lands
   * right above this stack, and an overflow that nothing stops (a canary
   * stack's) would run down through it to the guard below, too far under
   * the chunk for the handler to take it for one (is_overflow); the guard
   * above stops it right under the chunk. Without them the stack works. */
  (void)mprotect(mem, page, PROT_NONE);
  (void)mprotect(mem + async__stack_altstack_len - page, page, PROT_NONE);

  stack_t ss;
  memset(&ss, 0, sizeof ss);
  ss.ss_sp = mem + page;
  ss.ss_size = async__stack_altstack_len - 2 * page;
  if (sigaltstack(&ss, NULL) != 0) {
    int err = -errno;
    munmap(mem, async__stack_altstack_len);
    return err;
  }
  /* Should this fail, the stack would leak at thread exit, nothing worse. */
  (void)pthread_setspecific(async__stack_altstack_key, mem);
  async__stack_altstack_checked = 1;
  return 0;
}

int async__stack_reporter_install(void) {
  int err = handler_install();
  if (err != 0) return err;
  return altstack_install();
}
