/* SPDX-License-Identifier: MIT */
/* Tests of the coroutine stack allocator: reuse, sizes, layout, memory
 * footprint, guards and the overflow reporter. Tests that crash on purpose
 * run in a forked child, which an alarm kills if it hangs; they are skipped
 * under valgrind, which does not follow a program onto a guard page. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <ucontext.h>
#include <unistd.h>

#include "async.h"
#include "os/os.h"
#include "resident_helpers.h"

#if defined(__has_include)
#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#define UNDER_VALGRIND() RUNNING_ON_VALGRIND
#endif
#endif
#if !defined(UNDER_VALGRIND)
#define UNDER_VALGRIND() 0
#endif

#if defined(__SANITIZE_ADDRESS__)
#define TEST_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define TEST_ASAN 1
#endif
#endif

/* Exit codes of a child that did not get as far as the crash it was for. */
enum {
  CHILD_RETURNED = 70,
  CHILD_SETUP_FAILED,
  CHILD_WRONG_GUARD,
  CHILD_WRONG_STACK,
  CHILD_BAD_ADDRESS
};

/* The SIGSEGV action the process started with: cmocka replaces it while a
 * test runs, and a child puts it back so that it crashes as a program would
 * (under ASan, that action is ASan's). */
static struct sigaction initial_segv;

static size_t page_size(void) { return (size_t)sysconf(_SC_PAGESIZE); }

/* Whether this kernel's guard regions stop an access, found out apart from
 * the library: a child writes to a page it guarded with MADV_GUARD_INSTALL
 * and must die of SIGSEGV. Where they do not (a kernel before 6.13 refuses
 * the advice; qemu-user takes it and ignores it), the library must notice
 * and guard with mprotect, and the tests expect that fallback instead. */
static int guard_regions_work;

/* Linux 6.13's value; older headers do not name it. */
#if defined(__linux__) && !defined(MADV_GUARD_INSTALL)
#define MADV_GUARD_INSTALL 102
#endif

static int detect_guard_regions(void) {
#if defined(__linux__) && defined(MADV_GUARD_INSTALL)
  int status;
  fflush(NULL);
  pid_t pid = fork();
  if (pid < 0) return 0;
  if (pid == 0) {
    const struct rlimit no_core = {0, 0};
    setrlimit(RLIMIT_CORE, &no_core);
    signal(SIGSEGV, SIG_DFL);
    char *p = mmap(NULL, page_size(), PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED || madvise(p, page_size(), MADV_GUARD_INSTALL) != 0)
      _exit(1);
    *(volatile char *)p = 1;
    _exit(2);
  }
  if (waitpid(pid, &status, 0) != pid) return 0;
  return WIFSIGNALED(status) && WTERMSIG(status) == SIGSEGV;
#else
  return 0;
#endif
}

/* The guard a stack gets by default. */
static enum async__guard default_guard(void) {
  return guard_regions_work ? ASYNC__GUARD_MADVISE : ASYNC__GUARD_MPROTECT;
}

static int restore_config(void **state) {
  (void)state;
  async__stack_test_config(1, -1);
  return 0;
}

/* ============================================================ Helpers. */

struct test_task {
  const char *name;
};

static const struct test_task task_overflow = {"overflow-task"};
static const struct test_task task_first = {"first-owner"};
static const struct test_task task_second = {"second-owner"};
static const struct test_task task_canary = {"canary-task"};

/* Names a test_task; it is async-signal-safe, as the reporter needs. */
static void test_namer(const void *owner, char *buf, size_t len) {
  const char *name = ((const struct test_task *)owner)->name;
  size_t i = 0;
  for (; name[i] != '\0' && i + 1 < len; i++) buf[i] = name[i];
  buf[i] = '\0';
}

static long maps_lines(void) {
  char buf[65536];
  long lines = 0;
  ssize_t n;
  int fd = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
  assert_true(fd >= 0);
  while ((n = read(fd, buf, sizeof buf)) > 0)
    for (ssize_t i = 0; i < n; i++) lines += buf[i] == '\n';
  close(fd);
  return lines;
}

/* Resident anonymous pages of the process (resident_helpers.h): mincore
 * where statm counts an emulator's memory. */
static long resident(void) {
  long pages = resident_pages();
  assert_true(pages >= 0);
  return pages;
}

static void touch_top(async__stack *s) {
  volatile char *lo = async__stack_lo(s);
  lo[async__stack_size(s) - 1] = 1;
}

static int cmp_ptr(const void *a, const void *b) {
  uintptr_t x = (uintptr_t)async__stack_lo(*(async__stack *const *)a);
  uintptr_t y = (uintptr_t)async__stack_lo(*(async__stack *const *)b);
  return x < y ? -1 : x > y;
}

struct child_result {
  int status;
  char err[8192];
};

/* Runs fn(arg) in a child whose stderr is captured; the child has 20 s. */
static void run_child(void (*fn)(const void *), const void *arg,
                      struct child_result *r) {
  int fds[2];
  size_t len = 0;
  ssize_t n;

  assert_int_equal(pipe(fds), 0);
  fflush(NULL);
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    close(fds[0]);
    dup2(fds[1], STDERR_FILENO);
    close(fds[1]);
    sigaction(SIGSEGV, &initial_segv, NULL);
    alarm(20);
    fn(arg);
    _exit(CHILD_RETURNED);
  }
  close(fds[1]);
  /* Reads to the end, keeping what fits, so that a chatty child never
   * blocks on a full pipe. */
  for (;;) {
    char scratch[512];
    char *into = len < sizeof r->err - 1 ? r->err + len : scratch;
    size_t room =
        len < sizeof r->err - 1 ? sizeof r->err - 1 - len : sizeof scratch;
    n = read(fds[0], into, room);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    if (into != scratch) len += (size_t)n;
  }
  r->err[len] = '\0';
  close(fds[0]);
  while (waitpid(pid, &r->status, 0) < 0) assert_int_equal(errno, EINTR);
}

static void assert_killed_by(const struct child_result *r, int sig) {
  if (!WIFSIGNALED(r->status) || WTERMSIG(r->status) != sig) {
    fprintf(stderr, "child status 0x%x (exit %d, signal %d), stderr:\n%s\n",
            r->status, WIFEXITED(r->status) ? WEXITSTATUS(r->status) : -1,
            WIFSIGNALED(r->status) ? WTERMSIG(r->status) : -1, r->err);
    fail();
  }
}

/* The start of the message the reporter writes for a stack of MIN size
 * named `name` (a canary stack's goes on to say it was found late). */
static void expected_message(char *buf, size_t len, const char *name) {
  async__stack_pool *pool;
  assert_int_equal(async__stack_pool_new(&pool, NULL, 0), 0);
  async__stack *s = async__stack_get(pool, ASYNC__STACK_MIN_SIZE, NULL);
  assert_non_null(s);
  snprintf(buf, len,
           "libasync: stack overflow in task '%s' (stack size %zu "
           "bytes",
           name, async__stack_size(s));
  async__stack_pool_free(pool);
}

static void assert_contains(const char *haystack, const char *needle) {
  if (strstr(haystack, needle) == NULL) {
    fprintf(stderr, "expected \"%s\" in:\n%s\n", needle, haystack);
    fail();
  }
}

/* No line of `err` is a report of the library's ("libasync: ..."). A plain
 * search for "libasync" would also match the paths in a sanitizer's report
 * when the checkout folder is named libasync, git's default. */
static void assert_no_library_report(const char *err) {
  static const char prefix[] = "libasync: ";
  for (const char *line = err; *line != '\0'; line++) {
    if (strncmp(line, prefix, sizeof prefix - 1) == 0) {
      fprintf(stderr, "unexpected report of the library in:\n%s\n", err);
      fail();
    }
    line = strchr(line, '\n');
    if (line == NULL) break;
  }
}

/* =================================================== Pool behaviour. */

static void test_stack_reuse_returns_warm_stack(void **state) {
  async__stack_pool *pool;
  (void)state;

  assert_int_equal(async__stack_pool_new(&pool, NULL, 0), 0);
  async__stack *a = async__stack_get(pool, 0, NULL);
  assert_non_null(a);
  async__stack_put(pool, a);
  assert_ptr_equal(async__stack_get(pool, 0, NULL), a);

  /* Last in, first out, and a class never hands out another's stacks. */
  async__stack *b = async__stack_get(pool, 0, NULL);
  async__stack *c = async__stack_get(pool, 0, NULL);
  async__stack *big = async__stack_get(pool, ASYNC__STACK_DEFAULT_SIZE, NULL);
  assert_non_null(b);
  assert_non_null(c);
  assert_non_null(big);
  async__stack_put(pool, a);
  async__stack_put(pool, c);
  async__stack_put(pool, big);
  assert_ptr_equal(async__stack_get(pool, 0, NULL), c);
  assert_ptr_equal(async__stack_get(pool, 0, NULL), a);
  assert_ptr_equal(async__stack_get(pool, ASYNC__STACK_DEFAULT_SIZE, NULL),
                   big);

  /* Warm stacks of another chunk come before fresh slots of this one. */
  enum { N = 200 };
  async__stack *v[N];
  for (int i = 0; i < N; i++) {
    v[i] = async__stack_get(pool, 0, NULL);
    assert_non_null(v[i]);
  }
  async__stack_put(pool, v[3]);
  async__stack_put(pool, v[150]);
  async__stack_put(pool, v[4]);
  async__stack_put(pool, v[70]);
  assert_ptr_equal(async__stack_get(pool, 0, NULL), v[70]);
  assert_ptr_equal(async__stack_get(pool, 0, NULL), v[4]);
  assert_ptr_equal(async__stack_get(pool, 0, NULL), v[150]);
  assert_ptr_equal(async__stack_get(pool, 0, NULL), v[3]);
  async__stack_pool_free(pool);
}

static void test_stack_sizes_round_up(void **state) {
  static const size_t asked[] = {0,
                                 1,
                                 4096,
                                 ASYNC__STACK_MIN_SIZE - 1,
                                 ASYNC__STACK_MIN_SIZE,
                                 ASYNC__STACK_MIN_SIZE + 1,
                                 100000,
                                 ASYNC__STACK_DEFAULT_SIZE,
                                 (1u << 20) + 1};
  size_t page = page_size();
  async__stack_pool *pool;
  (void)state;

  assert_int_equal(async__stack_pool_new(&pool, NULL, 0), 0);
  for (size_t i = 0; i < sizeof asked / sizeof asked[0]; i++) {
    size_t want =
        asked[i] < ASYNC__STACK_MIN_SIZE ? ASYNC__STACK_MIN_SIZE : asked[i];
    async__stack *s = async__stack_get(pool, asked[i], NULL);
    assert_non_null(s);
    uintptr_t lo = (uintptr_t)async__stack_lo(s);
    size_t size = async__stack_size(s);
    assert_true(size >= want);
    assert_true(size < want + page); /* whole pages, less the descriptor */
    assert_int_equal(lo % page, 0);
    assert_int_equal((lo + size) % 16, 0);
    async__stack_put(pool, s);
  }
  async__stack_pool_free(pool);
}

static void test_stack_ranges_disjoint_and_writable(void **state) {
  static const size_t sizes[] = {ASYNC__STACK_MIN_SIZE, 64 * 1024 + 123,
                                 ASYNC__STACK_DEFAULT_SIZE};
  enum { PER_SIZE = 80, N = 3 * PER_SIZE };
  async__stack *v[N];
  async__stack_pool *pool;
  (void)state;

  assert_int_equal(async__stack_pool_new(&pool, NULL, 0), 0);
  for (int i = 0; i < N; i++) {
    v[i] = async__stack_get(pool, sizes[i % 3], NULL);
    assert_non_null(v[i]);
  }
  /* Puts and gets in between, so that reused stacks are checked too. */
  for (int i = 0; i < N; i += 7) async__stack_put(pool, v[i]);
  for (int i = 0; i < N; i += 7) {
    v[i] = async__stack_get(pool, sizes[i % 3], NULL);
    assert_non_null(v[i]);
  }

  for (int i = 0; i < N; i++)
    memset(async__stack_lo(v[i]), i & 0xff, async__stack_size(v[i]));
  for (int i = 0; i < N; i++) {
    const unsigned char *lo = async__stack_lo(v[i]);
    size_t size = async__stack_size(v[i]);
    assert_true(size >= sizes[i % 3]);
    assert_int_equal(async__stack_guard(v[i]), default_guard());
    for (size_t at = 0; at < size; at += 997)
      assert_int_equal(lo[at], i & 0xff);
    assert_int_equal(lo[size - 1], i & 0xff);
  }

  qsort(v, N, sizeof v[0], cmp_ptr);
  for (int i = 0; i + 1 < N; i++) {
    uintptr_t end = (uintptr_t)async__stack_lo(v[i]) + async__stack_size(v[i]);
    assert_true(end <= (uintptr_t)async__stack_lo(v[i + 1]));
  }
  async__stack_pool_free(pool);
}

static ucontext_t run_main_uc;
static ucontext_t run_task_uc;
static volatile int run_sum;

/* Uses 8 KiB of the stack it runs on, as a task would. */
static void run_entry(void) {
  char buf[8192];
  memset(buf, 0x5a, sizeof buf);
  run_sum = buf[0] + buf[sizeof buf - 1];
}

/* Code runs on the usable range, and the descriptor above it survives (under
 * valgrind, this is also where its stack registration is exercised). */
static void test_stack_runs_code(void **state) {
  static const size_t sizes[] = {ASYNC__STACK_MIN_SIZE,
                                 ASYNC__STACK_DEFAULT_SIZE};
  async__stack_pool *pool;
  (void)state;

  assert_int_equal(async__stack_pool_new(&pool, NULL, 0), 0);
  for (int round = 0; round < 4; round++) {
    size_t size = sizes[round % 2];
    async__stack *s = async__stack_get(pool, size, &task_first);
    assert_non_null(s);
    run_sum = 0;
    assert_int_equal(getcontext(&run_task_uc), 0);
    run_task_uc.uc_stack.ss_sp = async__stack_lo(s);
    run_task_uc.uc_stack.ss_size = async__stack_size(s);
    run_task_uc.uc_link = &run_main_uc;
    makecontext(&run_task_uc, run_entry, 0);
    async__stack_set_current(s);
    assert_int_equal(swapcontext(&run_main_uc, &run_task_uc), 0);
    async__stack_set_current(NULL);
    assert_int_equal(run_sum, 2 * 0x5a);
    assert_true(async__stack_size(s) >= size);
    assert_int_equal(async__stack_guard(s), default_guard());
    async__stack_put(pool, s);
  }
  async__stack_pool_free(pool);
}

static void test_stack_guard_kinds_reported(void **state) {
  async__stack_pool *pool;
  (void)state;

  assert_int_equal(async__stack_pool_new(&pool, NULL, 0), 0);
  async__stack *m = async__stack_get(pool, 0, NULL);
  assert_non_null(m);
  assert_int_equal(async__stack_guard(m), default_guard());

  async__stack_test_config(0, -1);
  async__stack *p = async__stack_get(pool, 0, NULL);
  assert_non_null(p);
  assert_int_equal(async__stack_guard(p), ASYNC__GUARD_MPROTECT);

  async__stack_test_config(0, 0);
  async__stack *c = async__stack_get(pool, 0, NULL);
  assert_non_null(c);
  assert_int_equal(async__stack_guard(c), ASYNC__GUARD_CANARY);
  async__stack_check(c); /* intact: returns */

  /* A guard is installed once, when the slot is first handed out. */
  async__stack_put(pool, m);
  assert_ptr_equal(async__stack_get(pool, 0, NULL), m);
  assert_int_equal(async__stack_guard(m), default_guard());

  async__stack_test_config(1, -1);
  async__stack *again = async__stack_get(pool, 0, NULL);
  assert_non_null(again);
  assert_int_equal(async__stack_guard(again), default_guard());
  async__stack_pool_free(pool);
}

static void test_stack_mprotect_budget_falls_back_to_canary(void **state) {
  async__stack_pool *pool;
  async__stack *v[5];
  int kinds[4] = {0};
  (void)state;

  async__stack_test_config(0, 3);
  assert_int_equal(async__stack_pool_new(&pool, NULL, 0), 0);
  for (int i = 0; i < 5; i++) {
    v[i] = async__stack_get(pool, 0, NULL);
    assert_non_null(v[i]);
  }
  for (int i = 0; i < 3; i++)
    assert_int_equal(async__stack_guard(v[i]), ASYNC__GUARD_MPROTECT);
  for (int i = 3; i < 5; i++) {
    assert_int_equal(async__stack_guard(v[i]), ASYNC__GUARD_CANARY);
    async__stack_check(v[i]);
  }

  /* Reuse keeps each stack's guard and takes nothing from the budget. */
  for (int i = 0; i < 5; i++) async__stack_put(pool, v[i]);
  for (int i = 0; i < 5; i++) {
    v[i] = async__stack_get(pool, 0, NULL);
    kinds[async__stack_guard(v[i])]++;
  }
  assert_int_equal(kinds[ASYNC__GUARD_MPROTECT], 3);
  assert_int_equal(kinds[ASYNC__GUARD_CANARY], 2);
  async__stack_pool_free(pool);

  /* Unmapping gave the budget back. */
  assert_int_equal(async__stack_pool_new(&pool, NULL, 0), 0);
  for (int i = 0; i < 3; i++) {
    v[i] = async__stack_get(pool, 0, NULL);
    assert_non_null(v[i]);
    assert_int_equal(async__stack_guard(v[i]), ASYNC__GUARD_MPROTECT);
  }
  async__stack_pool_free(pool);
}

static void test_stack_bad_arguments_and_short_memory(void **state) {
  async__stack_pool *pool;
  (void)state;

  assert_int_equal(async__stack_pool_new(NULL, NULL, 0), -EINVAL);
  assert_null(async__stack_get(NULL, 0, NULL));
  async__stack_pool_free(NULL);
  async__stack_check(NULL);

  assert_int_equal(async__stack_pool_new(&pool, NULL, 0), 0);
  async__stack_put(pool, NULL);
  /* More than any address space: the mmap fails, and the pool lives on. */
  assert_null(async__stack_get(pool, (size_t)1 << 61, NULL));
  assert_null(async__stack_get(pool, SIZE_MAX, NULL));
  async__stack *s = async__stack_get(pool, 0, NULL);
  assert_non_null(s);
  async__stack_put(pool, s);
  async__stack_pool_free(pool);
}

/* ==================================================== Memory footprint. */

/* The mapping count is what caps a process near 32k guarded stacks with
 * mprotect; with madvise guards it must not grow with the stacks, which is
 * what a million tasks rest on. Without them, the mprotect budget is what
 * bounds it (a small one here), and the stacks past it get canaries. */
static void test_stack_maps_stay_few(void **state) {
  enum { N = 100000, BUDGET = 1000 };
  async__stack_pool *pool;
  async__stack **v = malloc(N * sizeof *v);
  (void)state;

  assert_non_null(v);
  if (!guard_regions_work) async__stack_test_config(1, BUDGET);
  long before = maps_lines();
  assert_int_equal(async__stack_pool_new(&pool, NULL, 0), 0);
  for (int i = 0; i < N; i++) {
    v[i] = async__stack_get(pool, 0, NULL);
    assert_non_null(v[i]);
  }
  long after = maps_lines();
  long allowed = 40;
  if (guard_regions_work) {
    assert_int_equal(async__stack_guard(v[0]), ASYNC__GUARD_MADVISE);
    assert_int_equal(async__stack_guard(v[N - 1]), ASYNC__GUARD_MADVISE);
  } else {
    /* Each guard splits a mapping in up to three. */
    assert_int_equal(async__stack_guard(v[0]), ASYNC__GUARD_MPROTECT);
    assert_int_equal(async__stack_guard(v[BUDGET - 1]), ASYNC__GUARD_MPROTECT);
    assert_int_equal(async__stack_guard(v[BUDGET]), ASYNC__GUARD_CANARY);
    assert_int_equal(async__stack_guard(v[N - 1]), ASYNC__GUARD_CANARY);
    allowed += 2 * BUDGET;
  }
  if (after - before >= allowed) {
    fprintf(stderr, "maps: %ld lines before, %ld after\n", before, after);
    fail();
  }
  async__stack_pool_free(pool);
  free(v);
}

static void test_stack_resident_one_page_per_stack(void **state) {
  enum { N = 10000 };
  async__stack_pool *pool;
  async__stack **v;
  (void)state;

  /* valgrind's own bookkeeping of each touched page counts as resident. */
  if (UNDER_VALGRIND()) skip();
  v = malloc(N * sizeof *v);
  assert_non_null(v);
  /* A first run pages in the code of these paths, which counts too. */
  assert_int_equal(async__stack_pool_new(&pool, NULL, 0), 0);
  touch_top(async__stack_get(pool, 0, NULL));
  async__stack_pool_free(pool);
  assert_int_equal(async__stack_pool_new(&pool, NULL, 0), 0);

  /* The first get maps a chunk of 64 stacks but touches only its own; the
   * allocator (and ASan's shadow of it) may take a few pages more. */
  long before = resident();
  v[0] = async__stack_get(pool, 0, NULL);
  assert_non_null(v[0]);
  touch_top(v[0]);
  assert_true(resident() - before <= 16);

  for (int i = 1; i < N; i++) {
    v[i] = async__stack_get(pool, 0, NULL);
    assert_non_null(v[i]);
    touch_top(v[i]);
  }
  long after = resident();
  double per_stack = (double)(after - before) * (double)page_size() / N;
  fprintf(stderr, "resident per stack: %.0f bytes\n", per_stack);
  assert_true(per_stack < 6144);
  assert_true(per_stack > 0.9 * (double)page_size());
  async__stack_pool_free(pool);
  free(v);
}

static void test_stack_cache_is_bounded(void **state) {
  enum { N = 6000 };
  async__stack_pool *pool;
  async__stack **v;
  (void)state;

  if (UNDER_VALGRIND()) skip();
  v = malloc(N * sizeof *v);
  assert_non_null(v);
  assert_int_equal(async__stack_pool_new(&pool, NULL, 0), 0);
  long before = resident();
  for (int i = 0; i < N; i++) {
    v[i] = async__stack_get(pool, 0, NULL);
    assert_non_null(v[i]);
    touch_top(v[i]);
  }
  long held = resident();
  for (int i = 0; i < N; i++) async__stack_put(pool, v[i]);
  async__stack_trim(pool); /* what the loop does before it blocks */
  long cached = resident();

  /* Every stack cost a page while out; once back, the pool keeps a few
   * hundred (a budget per class) and unmaps the chunks of the others. */
  size_t page = page_size();
  assert_true((size_t)(held - before) * page > (size_t)N * page * 9 / 10);
  assert_true((size_t)(cached - before) * page < (size_t)2 << 20);

  /* The cached ones are handed out again without a fresh page. */
  for (int i = 0; i < 200; i++) {
    v[i] = async__stack_get(pool, 0, NULL);
    touch_top(v[i]);
  }
  assert_true(resident() - cached < 16);
  async__stack_pool_free(pool);
  free(v);
}

static void test_stack_pool_free_with_stacks_out(void **state) {
  enum { N = 1000 };
  static const size_t sizes[] = {0, 64 * 1024, ASYNC__STACK_DEFAULT_SIZE};
  async__stack_pool *pool;
  async__stack *v[N];
  (void)state;

  long lines = maps_lines();
  long before = resident();
  assert_int_equal(async__stack_pool_new(&pool, NULL, 0), 0);
  for (int i = 0; i < N; i++) {
    v[i] = async__stack_get(pool, sizes[i % 3], &v[i]);
    assert_non_null(v[i]);
    touch_top(v[i]);
  }
  for (int i = 0; i < N; i += 2) async__stack_put(pool, v[i]);
  async__stack_set_current(v[1]); /* forgotten by the pool's end */
  async__stack_pool_free(pool);
  /* Under valgrind the maps and the resident set are valgrind's too; its
   * leak check stands in for these. */
  if (UNDER_VALGRIND()) return;
  assert_true(maps_lines() <= lines + 2);
  assert_true(resident() - before < 64);
}

/* =========================================================== Overflow. */

static ucontext_t child_main_uc;
static ucontext_t child_task_uc;

/* Recurses until the stack runs out; the volatile frame keeps every level
 * on the stack. */
static int recurse(int depth) {
  volatile char frame[256];
  frame[0] = (char)depth;
  frame[sizeof frame - 1] = (char)depth;
  if (depth > 100000000) return frame[0];
  return recurse(depth + 1) + frame[sizeof frame - 1];
}

static void recurse_entry(void) { (void)recurse(0); }

static async__stack *child_stack(async__stack_pool **pool,
                                 async__stack_namer namer, const void *owner) {
  if (async__stack_reporter_install() != 0) _exit(CHILD_SETUP_FAILED);
  if (async__stack_pool_new(pool, namer, 0) != 0) _exit(CHILD_SETUP_FAILED);
  async__stack *s = async__stack_get(*pool, ASYNC__STACK_MIN_SIZE, owner);
  if (s == NULL) _exit(CHILD_SETUP_FAILED);
  return s;
}

/* Makes the next stacks get `mode`: the default guard needs no knob, and
 * gets none, so that a child asking for it checks the library's own choice
 * (under qemu-user, mprotect, which the library picks only if its probe
 * sees through the emulator's madvise). */
static void guard_mode_set(enum async__guard mode) {
  if (mode == default_guard()) return;
  if (mode == ASYNC__GUARD_MPROTECT) async__stack_test_config(0, -1);
  if (mode == ASYNC__GUARD_CANARY) async__stack_test_config(0, 0);
}

/* Runs a real overflow on a stack guarded the way `arg` says. */
static void child_recurse(const void *arg) {
  enum async__guard mode = *(const enum async__guard *)arg;
  async__stack_pool *pool;

  guard_mode_set(mode);
  async__stack *s = child_stack(&pool, test_namer, &task_overflow);
  if (async__stack_guard(s) != mode) _exit(CHILD_WRONG_GUARD);
  if (getcontext(&child_task_uc) != 0) _exit(CHILD_SETUP_FAILED);
  child_task_uc.uc_stack.ss_sp = async__stack_lo(s);
  child_task_uc.uc_stack.ss_size = async__stack_size(s);
  child_task_uc.uc_link = &child_main_uc;
  makecontext(&child_task_uc, recurse_entry, 0);
  async__stack_set_current(s);
  swapcontext(&child_main_uc, &child_task_uc);
}

static void check_recursion_reported(enum async__guard mode) {
  struct child_result r;
  char want[256];

  if (UNDER_VALGRIND()) skip();
  expected_message(want, sizeof want, task_overflow.name);
  run_child(child_recurse, &mode, &r);
  assert_killed_by(&r, SIGSEGV);
  assert_contains(r.err, want);
}

/* With the guard a stack gets by default: MADV_GUARD_INSTALL's where guard
 * regions work, mprotect's where they do not (where the library must not
 * take the emulator's word that the advice was applied). */
static void test_stack_overflow_default_guard_reported(void **state) {
  (void)state;
  check_recursion_reported(default_guard());
}

static void test_stack_overflow_mprotect_guard_reported(void **state) {
  (void)state;
  check_recursion_reported(ASYNC__GUARD_MPROTECT);
}

static void child_break_canary(const void *arg) {
  async__stack_pool *pool;
  (void)arg;

  async__stack_test_config(0, 0);
  async__stack *s = child_stack(&pool, test_namer, &task_canary);
  if (async__stack_guard(s) != ASYNC__GUARD_CANARY) _exit(CHILD_WRONG_GUARD);
  async__stack_check(s);
  memset(async__stack_lo(s), 0, 16);
  async__stack_check(s);
}

static void test_stack_overflow_canary_reported(void **state) {
  struct child_result r;
  char want[256];
  (void)state;

  if (UNDER_VALGRIND()) skip();
  expected_message(want, sizeof want, task_canary.name);
  run_child(child_break_canary, NULL, &r);
  assert_killed_by(&r, SIGABRT);
  assert_contains(r.err, want);
}

/* A frame bigger than a page whose code touches only its low end, as a
 * local array does before it is filled: alloca moves the stack pointer
 * down by the whole size at once, as a big frame's prologue does. */
static size_t big_frame_bytes;

static void big_frame_entry(void) {
  volatile char *frame = __builtin_alloca(big_frame_bytes);
  frame[0] = 1;
}

struct big_frame_case {
  enum async__guard mode;
  size_t guard;  /* the pool's guard size, 0 for the default */
  size_t frame;  /* bytes the frame takes */
  int recursion; /* recurse without end instead */
};

/* Runs the case on the upper of two neighbouring stacks, with only its
 * lowest 8 KiB left, so that what goes past its limit lands in the guard
 * region, or past it in the lower stack. */
static void child_big_frame(const void *arg) {
  const struct big_frame_case *c = arg;
  async__stack_pool *pool;

  guard_mode_set(c->mode);
  if (async__stack_reporter_install() != 0) _exit(CHILD_SETUP_FAILED);
  if (async__stack_pool_new(&pool, test_namer, c->guard) != 0)
    _exit(CHILD_SETUP_FAILED);
  async__stack *below =
      async__stack_get(pool, ASYNC__STACK_MIN_SIZE, &task_first);
  async__stack *s =
      async__stack_get(pool, ASYNC__STACK_MIN_SIZE, &task_overflow);
  if (below == NULL || s == NULL) _exit(CHILD_SETUP_FAILED);
  if (async__stack_lo(s) < async__stack_lo(below)) _exit(CHILD_WRONG_STACK);
  if (async__stack_guard(s) != c->mode) _exit(CHILD_WRONG_GUARD);
  big_frame_bytes = c->frame;
  if (getcontext(&child_task_uc) != 0) _exit(CHILD_SETUP_FAILED);
  child_task_uc.uc_stack.ss_sp = async__stack_lo(s);
  child_task_uc.uc_stack.ss_size = c->recursion ? async__stack_size(s) : 8192;
  child_task_uc.uc_link = &child_main_uc;
  makecontext(&child_task_uc, c->recursion ? recurse_entry : big_frame_entry,
              0);
  async__stack_set_current(s);
  swapcontext(&child_main_uc, &child_task_uc);
  async__stack_set_current(NULL);
  async__stack_check(s);
}

static void check_big_frame(const struct big_frame_case *c) {
  struct child_result r;
  char want[256];

  if (UNDER_VALGRIND()) skip();
  expected_message(want, sizeof want, task_overflow.name);
  run_child(child_big_frame, c, &r);
  assert_killed_by(&r, SIGSEGV);
  assert_contains(r.err, want);
  assert_null(strstr(r.err, task_first.name));
}

/* 16 KiB of frame skip a page of guard: the default region is 64 KiB.
 * With the guard a stack gets by default: a guard region where they work,
 * else the mprotect guard the library falls back to (qemu-user takes the
 * advice and ignores it; a kernel before 6.13 refuses it), which the child
 * checks it got before it overflows. */
static void test_stack_big_frame_default_guard_reported(void **state) {
  (void)state;
  struct big_frame_case c = {default_guard(), 0, 16 << 10, 0};
  check_big_frame(&c);
}

static void test_stack_big_frame_mprotect_reported(void **state) {
  (void)state;
  struct big_frame_case c = {ASYNC__GUARD_MPROTECT, 0, 16 << 10, 0};
  check_big_frame(&c);
}

/* The guard size is the pool's: 128 KiB of frame fit in 256 KiB of it,
 * with the default guard (as above) and with mprotect's. */
static void test_stack_big_frame_larger_guard_reported(void **state) {
  (void)state;
  struct big_frame_case c = {default_guard(), 256 << 10, 128 << 10, 0};
  check_big_frame(&c);
  c.mode = ASYNC__GUARD_MPROTECT;
  check_big_frame(&c);
}

/* A canary stack has no guard: a recursion runs through the stack below
 * and faults far away, with the stack pointer under the stack: the task
 * is named, and the message says the memory below may be corrupt. */
static void test_stack_recursion_over_neighbour_canary_reported(void **state) {
  struct child_result r;
  (void)state;
  struct big_frame_case c = {ASYNC__GUARD_CANARY, 0, 0, 1};
  check_big_frame(&c);
  run_child(child_big_frame, &c, &r);
  assert_contains(r.err, "canary mode, no guard region: found late");
}

/* The same frame, filled: it writes over the canary, which the check at
 * the task's next switch finds. */
static void big_frame_fill_entry(void) {
  volatile char *frame = __builtin_alloca(big_frame_bytes);
  for (size_t i = 0; i < big_frame_bytes; i++) frame[i] = 0;
}

static void child_big_frame_filled(const void *arg) {
  async__stack_pool *pool;
  (void)arg;

  async__stack_test_config(0, 0);
  async__stack *s = child_stack(&pool, test_namer, &task_canary);
  if (async__stack_guard(s) != ASYNC__GUARD_CANARY) _exit(CHILD_WRONG_GUARD);
  big_frame_bytes = 12 << 10;
  if (getcontext(&child_task_uc) != 0) _exit(CHILD_SETUP_FAILED);
  child_task_uc.uc_stack.ss_sp = async__stack_lo(s);
  child_task_uc.uc_stack.ss_size = 8192;
  child_task_uc.uc_link = &child_main_uc;
  makecontext(&child_task_uc, big_frame_fill_entry, 0);
  async__stack_set_current(s);
  swapcontext(&child_main_uc, &child_task_uc);
  async__stack_set_current(NULL);
  async__stack_check(s);
}

static void test_stack_big_frame_canary_reported(void **state) {
  struct child_result r;
  char want[256];
  (void)state;

  if (UNDER_VALGRIND()) skip();
  expected_message(want, sizeof want, task_canary.name);
  run_child(child_big_frame_filled, NULL, &r);
  assert_killed_by(&r, SIGABRT);
  assert_contains(r.err, want);
  assert_contains(r.err, "canary mode, no guard region: found late");
}

static void test_stack_guard_size_bounds(void **state) {
  async__stack_pool *pool;
  (void)state;

  assert_int_equal(
      async__stack_pool_new(&pool, NULL, ASYNC__STACK_MAX_GUARD + 1), -EINVAL);
  /* Rounded up to whole pages, and counted apart from the usable size. */
  assert_int_equal(async__stack_pool_new(&pool, NULL, 1), 0);
  async__stack *a = async__stack_get(pool, ASYNC__STACK_MIN_SIZE, NULL);
  async__stack *b = async__stack_get(pool, ASYNC__STACK_MIN_SIZE, NULL);
  assert_non_null(a);
  assert_non_null(b);
  uintptr_t gap = (uintptr_t)async__stack_lo(b) - (uintptr_t)async__stack_lo(a);
  /* The gap is one page of guard and the descriptor. */
  assert_true(gap - async__stack_size(a) > page_size());
  assert_true(gap - async__stack_size(a) < 2 * page_size());
  async__stack_pool_free(pool);
  assert_int_equal(async__stack_pool_new(&pool, NULL, 0), 0);
  a = async__stack_get(pool, ASYNC__STACK_MIN_SIZE, NULL);
  b = async__stack_get(pool, ASYNC__STACK_MIN_SIZE, NULL);
  gap = (uintptr_t)async__stack_lo(b) - (uintptr_t)async__stack_lo(a);
  assert_true(gap - async__stack_size(a) >= ASYNC__STACK_DEFAULT_GUARD);
  async__stack_pool_free(pool);

  async_loop_options opts;
  async_loop *loop = NULL;
  async_loop_options_init(&opts);
  opts.guard_size = (size_t)2 << 30;
  assert_int_equal(async_loop_new(&loop, &opts), -EINVAL);
  assert_null(loop);
}

/* Under an address-space limit too tight for a whole chunk, the pool maps
 * a smaller one: a program that can afford one stack gets it. */
static void child_tight_address_space(const void *arg) {
  async__stack_pool *pool;
  long pages = 0;
  (void)arg;

  FILE *f = fopen("/proc/self/statm", "r");
  if (f == NULL || fscanf(f, "%ld", &pages) != 1) _exit(CHILD_SETUP_FAILED);
  fclose(f);
  if (async__stack_pool_new(&pool, NULL, 0) != 0) _exit(CHILD_SETUP_FAILED);
  /* Room for a few stacks of the default size, far less than a chunk. */
  struct rlimit rl;
  rl.rlim_cur = rl.rlim_max =
      (rlim_t)pages * page_size() + 4 * ASYNC__STACK_DEFAULT_SIZE;
  if (setrlimit(RLIMIT_AS, &rl) != 0) _exit(CHILD_SETUP_FAILED);
  async__stack *s = async__stack_get(pool, ASYNC__STACK_DEFAULT_SIZE, NULL);
  if (s == NULL) _exit(CHILD_WRONG_STACK);
  touch_top(s);
  /* And the next ones keep coming, a chunk as small as it must be. */
  async__stack *t = async__stack_get(pool, ASYNC__STACK_DEFAULT_SIZE, NULL);
  if (t == NULL) _exit(CHILD_WRONG_STACK);
  _exit(0);
}

static void test_stack_tight_address_space_maps_smaller_chunks(void **state) {
  struct child_result r;
  (void)state;

  /* valgrind's own mappings need address space of their own beyond any
   * small limit. ASan's shadow is reserved before the child sets its
   * limit, which is counted from what is mapped then. */
  if (UNDER_VALGRIND()) skip();
  run_child(child_tight_address_space, NULL, &r);
  if (!WIFEXITED(r.status) || WEXITSTATUS(r.status) != 0) {
    fprintf(stderr, "child status 0x%x, stderr:\n%s\n", r.status, r.err);
    fail();
  }
}

/* A stack handed to a second owner reports that one, not the first. */
static void child_guard_of_reused_stack(const void *arg) {
  async__stack_pool *pool;
  (void)arg;

  async__stack *s = child_stack(&pool, test_namer, &task_first);
  async__stack_put(pool, s);
  if (async__stack_get(pool, ASYNC__STACK_MIN_SIZE, &task_second) != s)
    _exit(CHILD_WRONG_STACK);
  async__stack_set_current(s);
  ((volatile char *)async__stack_lo(s))[-1] = 1;
}

static void test_stack_overflow_names_current_owner(void **state) {
  struct child_result r;
  char want[256];
  (void)state;

  if (UNDER_VALGRIND()) skip();
  expected_message(want, sizeof want, task_second.name);
  run_child(child_guard_of_reused_stack, NULL, &r);
  assert_killed_by(&r, SIGSEGV);
  assert_contains(r.err, want);
  assert_null(strstr(r.err, task_first.name));
}

static void child_guard_without_namer(const void *arg) {
  async__stack_pool *pool;
  (void)arg;

  async__stack *s = child_stack(&pool, NULL, &task_first);
  async__stack_set_current(s);
  ((volatile char *)async__stack_lo(s))[-1] = 1;
}

static void test_stack_overflow_without_namer(void **state) {
  struct child_result r;
  char want[256];
  (void)state;

  if (UNDER_VALGRIND()) skip();
  expected_message(want, sizeof want, "?");
  run_child(child_guard_without_namer, NULL, &r);
  assert_killed_by(&r, SIGSEGV);
  assert_contains(r.err, want);
}

/* On a thread of its own, which needs an alternate signal stack of its own
 * (its first install makes one, unless ASan made one already). */
static void *thread_overflow(void *arg) {
  async__stack_pool *pool;
  stack_t ss;
  (void)arg;

  async__stack *s = child_stack(&pool, test_namer, &task_second);
  if (async__stack_reporter_install() != 0) _exit(CHILD_SETUP_FAILED);
  if (sigaltstack(NULL, &ss) != 0 || (ss.ss_flags & SS_DISABLE) ||
      ss.ss_size < 16384)
    _exit(CHILD_SETUP_FAILED);
  async__stack_set_current(s);
  ((volatile char *)async__stack_lo(s))[-1] = 1;
  return NULL;
}

/* Installs and ends: the alternate stack made for it goes at its exit. */
static void *thread_install(void *arg) {
  (void)arg;
  if (async__stack_reporter_install() != 0) _exit(CHILD_SETUP_FAILED);
  return NULL;
}

static void child_thread_overflow(const void *arg) {
  pthread_t t;
  (void)arg;
  for (int i = 0; i < 3; i++) {
    if (pthread_create(&t, NULL, thread_install, NULL) != 0)
      _exit(CHILD_SETUP_FAILED);
    pthread_join(t, NULL);
  }
  if (pthread_create(&t, NULL, thread_overflow, NULL) != 0)
    _exit(CHILD_SETUP_FAILED);
  pthread_join(t, NULL);
}

static void test_stack_overflow_on_other_thread_reported(void **state) {
  struct child_result r;
  char want[256];
  (void)state;

  if (UNDER_VALGRIND()) skip();
  expected_message(want, sizeof want, task_second.name);
  run_child(child_thread_overflow, NULL, &r);
  assert_killed_by(&r, SIGSEGV);
  assert_contains(r.err, want);
}

/* Faults in the middle of a 2 MiB PROT_NONE region, hence at least 1 MiB
 * from any stack, far from the window under the running stack, wherever the
 * kernel (or an emulator, which places mappings bottom-up) puts it. */
static void child_foreign_fault(const void *arg) {
  enum { SPAN = 2 << 20 };
  async__stack_pool *pool;
  (void)arg;

  char *region = mmap(NULL, SPAN, PROT_NONE,
                      MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (region == MAP_FAILED) _exit(CHILD_SETUP_FAILED);
  uintptr_t page = (uintptr_t)region + SPAN / 2;
  async__stack *s = child_stack(&pool, test_namer, &task_overflow);
  uintptr_t lo = (uintptr_t)async__stack_lo(s);
  if ((page < lo ? lo - page : page - lo) < (1u << 20))
    _exit(CHILD_BAD_ADDRESS);
  async__stack_set_current(s);
  *(volatile char *)page = 1;
}

static void test_stack_foreign_fault_not_reported(void **state) {
  struct child_result r;
  (void)state;

  if (UNDER_VALGRIND()) skip();
  run_child(child_foreign_fault, NULL, &r);
  assert_no_library_report(r.err);
#if defined(TEST_ASAN)
  /* Chained to ASan's handler, which reports the fault and exits. */
  if (WIFEXITED(r.status) && WEXITSTATUS(r.status) != CHILD_RETURNED &&
      WEXITSTATUS(r.status) != 0) {
    assert_contains(r.err, "AddressSanitizer");
    return;
  }
#endif
  assert_killed_by(&r, SIGSEGV);
}

static void user_segv_siginfo(int sig, siginfo_t *info, void *uctx) {
  static const char msg[] = "user handler (siginfo)\n";
  (void)sig;
  (void)info;
  (void)uctx;
  if (write(STDERR_FILENO, msg, sizeof msg - 1) < 0) _exit(43);
  _exit(42);
}

static void user_segv_plain(int sig) {
  static const char msg[] = "user handler (plain)\n";
  (void)sig;
  if (write(STDERR_FILENO, msg, sizeof msg - 1) < 0) _exit(43);
  _exit(42);
}

static void child_foreign_fault_user_handler(const void *arg) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sigemptyset(&sa.sa_mask);
  if (arg != NULL) {
    sa.sa_sigaction = user_segv_siginfo;
    sa.sa_flags = SA_SIGINFO;
  } else {
    sa.sa_handler = user_segv_plain;
  }
  if (sigaction(SIGSEGV, &sa, NULL) != 0) _exit(CHILD_SETUP_FAILED);
  child_foreign_fault(NULL);
}

static void test_stack_foreign_fault_chains_to_handler(void **state) {
  struct child_result r;
  (void)state;

  if (UNDER_VALGRIND()) skip();
  run_child(child_foreign_fault_user_handler, "siginfo", &r);
  assert_true(WIFEXITED(r.status));
  assert_int_equal(WEXITSTATUS(r.status), 42);
  assert_contains(r.err, "user handler (siginfo)");
  assert_no_library_report(r.err);

  run_child(child_foreign_fault_user_handler, NULL, &r);
  assert_true(WIFEXITED(r.status));
  assert_int_equal(WEXITSTATUS(r.status), 42);
  assert_contains(r.err, "user handler (plain)");
  assert_no_library_report(r.err);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_stack_reuse_returns_warm_stack),
      cmocka_unit_test(test_stack_sizes_round_up),
      cmocka_unit_test(test_stack_ranges_disjoint_and_writable),
      cmocka_unit_test(test_stack_runs_code),
      cmocka_unit_test_teardown(test_stack_guard_kinds_reported,
                                restore_config),
      cmocka_unit_test_teardown(test_stack_mprotect_budget_falls_back_to_canary,
                                restore_config),
      cmocka_unit_test(test_stack_bad_arguments_and_short_memory),
      cmocka_unit_test_teardown(test_stack_maps_stay_few, restore_config),
      cmocka_unit_test(test_stack_resident_one_page_per_stack),
      cmocka_unit_test(test_stack_cache_is_bounded),
      cmocka_unit_test(test_stack_pool_free_with_stacks_out),
      cmocka_unit_test(test_stack_overflow_default_guard_reported),
      cmocka_unit_test(test_stack_overflow_mprotect_guard_reported),
      cmocka_unit_test(test_stack_overflow_canary_reported),
      cmocka_unit_test(test_stack_big_frame_default_guard_reported),
      cmocka_unit_test(test_stack_big_frame_mprotect_reported),
      cmocka_unit_test(test_stack_big_frame_larger_guard_reported),
      cmocka_unit_test(test_stack_big_frame_canary_reported),
      cmocka_unit_test(test_stack_recursion_over_neighbour_canary_reported),
      cmocka_unit_test(test_stack_guard_size_bounds),
      cmocka_unit_test(test_stack_tight_address_space_maps_smaller_chunks),
      cmocka_unit_test(test_stack_overflow_names_current_owner),
      cmocka_unit_test(test_stack_overflow_without_namer),
      cmocka_unit_test(test_stack_overflow_on_other_thread_reported),
      cmocka_unit_test(test_stack_foreign_fault_not_reported),
      cmocka_unit_test(test_stack_foreign_fault_chains_to_handler),
  };

  sigaction(SIGSEGV, NULL, &initial_segv);
  resident_from_mincore = resident_counts_address_space();
  if (resident_from_mincore)
    fprintf(stderr, "test_stack: /proc/self/statm counts untouched address "
                    "space; measuring resident pages with mincore\n");
  guard_regions_work = detect_guard_regions();
  if (!guard_regions_work)
    fprintf(stderr, "test_stack: MADV_GUARD_INSTALL does not guard here; "
                    "expecting mprotect guards\n");
  return cmocka_run_group_tests_name("stack", tests, NULL, NULL);
}
