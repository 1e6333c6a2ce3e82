/* SPDX-License-Identifier: MIT */
/* Resident memory of the test process, for the tests that check memory
 * comes back (test_stack's footprint, test_server's soak): the anonymous
 * pages it holds (the heap, the stacks, anonymous mappings), which a leak
 * grows; files are left out, since the first call of a libc function maps
 * in 16 pages of its code at once (the kernel's fault-around).
 *
 * /proc/self/statm is exact and cheap, and the kernel's count of the whole
 * process. Under qemu-user the process is the emulator, and statm counts
 * its memory too: its translated code and its page tables for the guest,
 * about 24 bytes for every page of address space the program ever mapped,
 * never given back. resident_counts_address_space finds that out by what it
 * does, not by what the platform is called, and resident_pages then counts
 * the program's own pages: those of each anonymous mapping the program's
 * /proc/self/maps lists (the guest's, under the emulator), as mincore says.
 * That walk is too slow to be the default (under ASan it walks terabytes of
 * shadow). These return -1 when /proc cannot be read, so that a task can
 * call them and leave the assertion to the test. */
#ifndef ASYNC_TEST_RESIDENT_HELPERS_H
#define ASYNC_TEST_RESIDENT_HELPERS_H

#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/types.h>
#include <unistd.h>

/* Resident pages of one line of /proc/self/maps if it is anonymous memory
 * (no file: the heap, the stack, anonymous mappings), else 0. */
static inline long resident_in_line(const char *line) {
  static unsigned char vec[4096];
  unsigned long lo, hi, inode;
  int path = 0;
  long n = 0;

  if (sscanf(line, "%lx-%lx %*s %*s %*s %lu %n", &lo, &hi, &inode, &path) < 3 ||
      inode != 0)
    return 0;
  /* [vdso], [vvar] and the like are the kernel's, not the process's. */
  if (line[path] == '[' && strncmp(line + path, "[heap]", 6) != 0 &&
      strncmp(line + path, "[stack]", 7) != 0 &&
      strncmp(line + path, "[anon", 5) != 0)
    return 0;
  size_t page = (size_t)sysconf(_SC_PAGESIZE);
  for (unsigned long at = lo; at < hi; at += sizeof vec * page) {
    size_t len = hi - at < sizeof vec * page ? hi - at : sizeof vec * page;
    if (mincore((void *)at, len, vec) != 0) return n;
    for (size_t i = 0; i < (len + page - 1) / page; i++) n += vec[i] & 1;
  }
  return n;
}

/* Resident anonymous pages of the process, as mincore says of each
 * anonymous mapping in /proc/self/maps. */
static inline long resident_by_mincore(void) {
  static char buf[65536];
  size_t have = 0;
  long pages = 0;
  ssize_t n;
  int fd = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  /* Whole lines only; a line cut by the buffer's end waits for the next. */
  while ((n = read(fd, buf + have, sizeof buf - 1 - have)) > 0) {
    have += (size_t)n;
    buf[have] = '\0';
    char *line = buf, *nl;
    while ((nl = strchr(line, '\n')) != NULL) {
      *nl = '\0';
      pages += resident_in_line(line);
      line = nl + 1;
    }
    have = (size_t)(buf + have - line);
    memmove(buf, line, have);
    if (have >= sizeof buf - 1) { /* a line longer than the buffer */
      close(fd);
      return -1;
    }
  }
  close(fd);
  return pages;
}

/* The same from /proc/self/statm: resident less file-backed. */
static inline long resident_by_statm(void) {
  long size = 0, resident = 0, shared = 0;
  FILE *f = fopen("/proc/self/statm", "r");
  if (f == NULL) return -1;
  int got = fscanf(f, "%ld %ld %ld", &size, &resident, &shared);
  fclose(f);
  return got == 3 ? resident - shared : -1;
}

/* Whether statm counts memory that is not the program's: mapping 256 MiB
 * without touching it costs the kernel no page, and the emulator 96 of its
 * own (24 bytes a page). */
static inline int resident_counts_address_space(void) {
  size_t len = (size_t)256 << 20;
  long before = resident_by_statm();
  void *p = mmap(NULL, len, PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (p == MAP_FAILED) return 0;
  long after = resident_by_statm();
  munmap(p, len);
  return after - before > 16;
}

/* How resident_pages counts: set once by the test's main from
 * resident_counts_address_space. */
static int resident_from_mincore;

/* Resident anonymous pages of the program, or -1. */
static inline long resident_pages(void) {
  return resident_from_mincore ? resident_by_mincore() : resident_by_statm();
}

#endif
