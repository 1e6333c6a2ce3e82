/* SPDX-License-Identifier: MIT */
/* Fixed-size blocks in aligned chunks (see os.h).
 *
 * A chunk is CHUNK bytes aligned to CHUNK. Its first page holds the header
 * and stays committed for the chunk's life; the blocks follow. A chunk is
 * committed while it may hold blocks; trim decommits one whose blocks are
 * all free (their memory goes back, the mapping stays, reads see zeros)
 * and the next chunk the slab needs is a decommitted one if it has any.
 * `live` counts the blocks out of the free list, those in the caller's
 * hands; a chunk is empty when it is 0. */
#include "os.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#if defined(ASYNC_HAVE_VALGRIND)
#include <valgrind/valgrind.h>
#endif

#define CHUNK ((size_t)2 << 20)
#define HEAP_CACHE_MAX 4096

struct async__slab_chunk {
  async__slab *slab; /* NULL once the slab is freed: the chunk is orphaned */
  async__slab_chunk *prev, *next;
  size_t live;
  int committed;
  int dying; /* marked by trim, decommitted once its blocks are unlinked */
};

#if defined(ASYNC_HAVE_VALGRIND) && !defined(ASYNC__ASAN)
/* Memcheck is the tool that tracks heap blocks; under the others
 * (callgrind, cachegrind) the chunks run, so that what they count is what
 * runs outside. Valgrind runs its tool as the process's executable. */
static int under_memcheck(void) {
  if (!RUNNING_ON_VALGRIND) return 0;
#if defined(__linux__)
  char exe[256];
  ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
  if (n > 0) {
    exe[n] = 0;
    return strstr(exe, "memcheck") != NULL;
  }
#endif
  return 1;
}
#endif

/* The same answer for every slab of the process: a block given back after
 * its slab is freed goes where the slab's blocks came from. */
static int slab_on_heap(void) {
#if defined(ASYNC__ASAN)
  return 1;
#elif defined(ASYNC_HAVE_VALGRIND)
  static int known; /* 0: not asked yet, 1: chunks, 2: heap */
  int v = __atomic_load_n(&known, __ATOMIC_RELAXED);
  if (!v) {
    v = under_memcheck() ? 2 : 1;
    __atomic_store_n(&known, v, __ATOMIC_RELAXED);
  }
  return v == 2;
#else
  return 0;
#endif
}

static size_t page_size(void) {
  static size_t page;
  if (!page) {
    long p = sysconf(_SC_PAGESIZE);
    page = p > 0 ? (size_t)p : 4096;
  }
  return page;
}

static async__slab_chunk *chunk_of(const void *block) {
  return (async__slab_chunk *)((uintptr_t)block & ~(uintptr_t)(CHUNK - 1));
}

static void **link_of(const async__slab *s, void *block) {
  return (void **)((char *)block + s->link);
}

void async__slab_init(async__slab *s, size_t size, size_t link) {
  ASYNC__ASSERT(size <= CHUNK / 64 && link + sizeof(void *) <= size);
  s->size = (size + 15) & ~(size_t)15;
  s->link = link;
  s->free = NULL;
  s->nfree = 0;
  s->bump = s->end = NULL;
  s->chunks = NULL;
  s->nempty = 0;
  s->heap = slab_on_heap();
}

/* A CHUNK-aligned mapping: twice the size mapped, the ends trimmed. */
static async__slab_chunk *chunk_map(void) {
  char *m = mmap(NULL, 2 * CHUNK, PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (m == MAP_FAILED) return NULL;
  char *a = (char *)(((uintptr_t)m + CHUNK - 1) & ~(uintptr_t)(CHUNK - 1));
  if (a > m) munmap(m, (size_t)(a - m));
  if (a + CHUNK < m + 2 * CHUNK)
    munmap(a + CHUNK, (size_t)(m + 2 * CHUNK - (a + CHUNK)));
  return (async__slab_chunk *)(void *)a;
}

/* The slab's bump range moves to a fresh or decommitted chunk. */
static int chunk_next(async__slab *s) {
  async__slab_chunk *c = s->chunks;
  while (c && c->committed) c = c->next;
  if (!c) {
    if (!(c = chunk_map())) return 0;
    c->slab = s;
    c->prev = NULL;
    c->next = s->chunks;
    if (s->chunks) s->chunks->prev = c;
    s->chunks = c;
  }
  c->live = 0;
  c->committed = 1;
  c->dying = 0;
  s->nempty++;
  size_t first = page_size();
  s->bump = (char *)c + first;
  s->end = s->bump + (CHUNK - first) / s->size * s->size;
  return 1;
}

void *async__slab_get(async__slab *s) {
  void *b = s->free;
  if (b) {
    s->free = *link_of(s, b);
    s->nfree--;
    if (!s->heap && chunk_of(b)->live++ == 0) s->nempty--;
    return b;
  }
  if (s->heap) return malloc(s->size);
  if (async__unlikely(s->bump == s->end) && !chunk_next(s)) return NULL;
  b = s->bump;
  s->bump += s->size;
  if (chunk_of(b)->live++ == 0) s->nempty--;
  return b;
}

void async__slab_put(async__slab *s, void *block) {
  if (!block) return;
  if (s && s->heap) {
    *link_of(s, block) = s->free;
    s->free = block;
    s->nfree++;
    return;
  }
  if (!s && slab_on_heap()) {
    free(block);
    return;
  }
  async__slab_chunk *c = chunk_of(block);
  if (async__likely(__atomic_load_n(&c->slab, __ATOMIC_ACQUIRE) != NULL)) {
    s = c->slab;
    *link_of(s, block) = s->free;
    s->free = block;
    s->nfree++;
    if (--c->live == 0) s->nempty++;
    return;
  }
  /* Orphaned: the last block out unmaps the chunk, on whichever thread
   * releases it. */
  if (__atomic_sub_fetch(&c->live, 1, __ATOMIC_ACQ_REL) == 0) munmap(c, CHUNK);
}

/* The bump chunk: where the never-used blocks are, kept whatever it holds. */
static async__slab_chunk *bump_chunk(const async__slab *s) {
  return s->bump ? chunk_of(s->bump - 1) : NULL;
}

void async__slab_trim(async__slab *s) {
  if (s->heap) {
    while (s->nfree > HEAP_CACHE_MAX) {
      void *b = s->free;
      s->free = *link_of(s, b);
      s->nfree--;
      free(b);
    }
    return;
  }
  /* One empty chunk besides the bump chunk is kept: a loop whose bursts
   * come and go does not fault a chunk in again for every burst. */
  async__slab_chunk *bump = bump_chunk(s);
  size_t spare = bump && bump->live == 0 ? 2 : 1;
  if (s->nempty <= spare) return;
  int kept = 0, dying = 0;
  for (async__slab_chunk *c = s->chunks; c; c = c->next) {
    if (!c->committed || c->live || c == bump) continue;
    if (!kept++) continue;
    c->dying = 1;
    dying++;
  }
  if (!dying) return;
  void **p = &s->free;
  while (*p) {
    void *b = *p;
    if (chunk_of(b)->dying) {
      *p = *link_of(s, b);
      s->nfree--;
    } else {
      p = link_of(s, b);
    }
  }
  size_t first = page_size();
  for (async__slab_chunk *c = s->chunks; c; c = c->next) {
    if (!c->dying) continue;
    c->dying = 0;
    c->committed = 0;
    s->nempty--;
    /* Where decommitting fails the memory stays: the chunk is reused
     * all the same. */
    (void)madvise((char *)c + first, CHUNK - first, MADV_DONTNEED);
  }
}

void async__slab_free(async__slab *s) {
  if (s->heap) {
    void *b;
    while ((b = s->free)) {
      s->free = *link_of(s, b);
      free(b);
    }
  } else {
    async__slab_chunk *c = s->chunks, *next;
    for (; c; c = next) {
      next = c->next;
      if (!c->committed || c->live == 0) {
        munmap(c, CHUNK);
        continue;
      }
      c->prev = c->next = NULL;
      __atomic_store_n(&c->slab, NULL, __ATOMIC_RELEASE);
    }
  }
  async__slab_init(s, s->size, s->link);
}
