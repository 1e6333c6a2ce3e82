/* SPDX-License-Identifier: MIT */
/* producer_consumer: the asyncio walkthrough's asyncq.py. N producers
 * (-p, default 5) each put a random number (0 to 10) of random items into
 * one queue, sleeping a random 0 to 10 seconds before each; M consumers
 * (-c, default 10) take them out, each sleeping a random time before every
 * get. main awaits the producers, then joins the queue, which returns once
 * every item has been consumed and marked done, and cancels the consumers.
 *
 * Items are malloc'd by their producer and freed by the consumer that gets
 * them: the queue only passes the pointers along. The program checks that
 * every item was consumed exactly once. Randomness comes from a seeded
 * xorshift, so the number of items is the same at every run (the order of
 * the lines depends on timing). */
#include <async.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static double scale = 1.0; /* -s: multiplies every sleep */
static uint64_t rng = 444;

static int randint(int lo, int hi) { /* lo..hi inclusive */
  rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
  return lo + (int)((rng >> 11) % (uint64_t)(hi - lo + 1));
}

typedef struct item {
  char hex[11]; /* five random bytes */
  double t;     /* when it was put */
  int id;       /* producer * 100 + sequence */
} item;

static int produced, consumed_total;
static unsigned char *seen; /* per id: times consumed */

static int randsleep(const char *who, int n) {
  int i = randint(0, 10);
  printf("%s %d sleeping for %d seconds.\n", who, n, i);
  return async_sleep(i * scale);
}

typedef struct role {
  int n;
  async_queue *q;
} role;

static void *produce(void *arg) {
  role *r = arg;
  int count = randint(0, 10);
  for (int k = 0; k < count; k++) {
    int err = randsleep("Producer", r->n);
    if (err) return async_fail(err);
    item *it = malloc(sizeof *it);
    if (!it) return async_fail(-ENOMEM);
    for (int b = 0; b < 5; b++)
      snprintf(it->hex + 2 * b, 3, "%02x", (unsigned)randint(0, 255));
    it->id = r->n * 100 + k;
    it->t = async_clock();
    if ((err = async_queue_put(r->q, it))) {
      free(it); /* a failed put leaves the item with us */
      return async_fail(err);
    }
    produced++;
    printf("Producer %d added <%s> to queue.\n", r->n, it->hex);
  }
  return NULL;
}

static void *consume(void *arg) {
  role *r = arg;
  for (;;) {
    if (randsleep("Consumer", r->n)) break; /* cancelled */
    void *p;
    if (async_queue_get(r->q, &p)) break; /* cancelled */
    item *it = p;
    printf("Consumer %d got element <%s> in %0.5f seconds.\n", r->n, it->hex,
           async_clock() - it->t);
    seen[it->id]++;
    consumed_total++;
    free(it);
    async_queue_task_done(r->q);
  }
  return NULL;
}

typedef struct config {
  int nprod, ncon;
} config;

static void drop_item(void *p, void *arg) {
  (void)arg;
  free(p);
}

static void *amain(void *arg) {
  const config *cfg = arg;
  async_queue_options o;
  async_queue_options_init(&o);
  o.drop = drop_item; /* items left at free would be freed: none are */
  async_queue *q;
  int err = async_queue_new(&q, 0, &o);
  if (err) return async_fail(err);
  role *roles = calloc((size_t)(cfg->nprod + cfg->ncon), sizeof *roles);
  async_task **t = calloc((size_t)(cfg->nprod + cfg->ncon), sizeof *t);
  if (!roles || !t) {
    free(roles);
    free(t);
    async_queue_free(q);
    return async_fail(-ENOMEM);
  }
  for (int i = 0; i < cfg->nprod + cfg->ncon; i++) {
    roles[i] = (role){i < cfg->nprod ? i : i - cfg->nprod, q};
    t[i] = async_spawn(i < cfg->nprod ? produce : consume, &roles[i]);
  }
  for (int i = 0; i < cfg->nprod; i++) {
    int e = async_await(t[i], NULL); /* gather(*producers) */
    if (!err) err = e;
  }
  if (!err) err = async_queue_join(q); /* implicitly awaits consumers, too */
  for (int i = cfg->nprod; i < cfg->nprod + cfg->ncon; i++)
    async_task_cancel(t[i]);
  for (int i = 0; i < cfg->nprod + cfg->ncon; i++) {
    if (i >= cfg->nprod) async_await(t[i], NULL);
    async_task_release(t[i]);
  }
  free(roles);
  free(t);
  async_queue_free(q);
  return err ? async_fail(err) : NULL;
}

static int usage(const char *prog) {
  fprintf(stderr, "usage: %s [-p NPROD] [-c NCON] [-s SCALE]\n", prog);
  return 2;
}

int main(int argc, char **argv) {
  config cfg = {5, 10};
  for (int i = 1; i < argc; i++) {
    char *end = NULL;
    if (i + 1 >= argc) return usage(argv[0]);
    if (!strcmp(argv[i], "-p"))
      cfg.nprod = (int)strtol(argv[++i], &end, 10);
    else if (!strcmp(argv[i], "-c"))
      cfg.ncon = (int)strtol(argv[++i], &end, 10);
    else if (!strcmp(argv[i], "-s"))
      scale = strtod(argv[++i], &end);
    if (!end || *end || cfg.nprod < 1 || cfg.nprod > 100 || cfg.ncon < 1 ||
        cfg.ncon > 1000 || !(scale > 0))
      return usage(argv[0]);
  }
  setvbuf(stdout, NULL, _IOLBF, 0); /* keep the line order when piped */
  seen = calloc((size_t)cfg.nprod * 100, 1);
  if (!seen) return 1;
  double start = async_clock();
  int err = async_run(amain, &cfg, NULL);
  printf("Program completed in %0.5f seconds.\n", async_clock() - start);
  if (err) {
    fprintf(stderr, "producer_consumer: %s\n", async_strerror(err));
    free(seen);
    return 1;
  }
  int once = 0;
  for (int i = 0; i < cfg.nprod * 100; i++) once += seen[i] == 1;
  int ok = once == produced && consumed_total == produced;
  printf("%d items produced, %d consumed, %s.\n", produced, consumed_total,
         ok ? "each exactly once" : "NOT each exactly once");
  free(seen);
  return !ok;
}
