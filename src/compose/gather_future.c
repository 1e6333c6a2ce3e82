/* SPDX-License-Identifier: MIT */
/* gather as a future (asyncio's _GatheringFuture): done when every child
 * is, or at the first child error unless ASYNC_GATHER_ERRORS; cancelling
 * it cancels the children.
 *
 * The future is a composed one (core.h) whose block points at one
 * allocation: the state, a slot per entry (registered on the entry's
 * future while both are pending), the entries themselves (one reference
 * each, held until the gather future is freed, so the outcomes stay
 * readable) and the results array that its result points at. A slot's
 * notification only counts: the outcomes are read from the children,
 * which are all done when the results are filled. */
#include "compose.h"

#include <string.h>

typedef struct gstate {
  size_t n;
  size_t pending; /* registered slots not notified yet */
  int collect;    /* ASYNC_GATHER_ERRORS */
  int cancel_req; /* cancelled: end with -ECANCELED once all are done */
  async_future **futs;
  void **results; /* the future's result: n entries, argument order */
  async__slot slots[];
} gstate;

typedef struct gfut {
  async__composed c;
  gstate *s;
} gfut;

_Static_assert(sizeof(gfut) <= sizeof(async__task),
               "a gather future must fit a future block");

static gstate *state_of(const async_future *f) {
  return ((const gfut *)(const void *)f)->s;
}

/* Ends the gather future: the children are all done, or (first error
 * mode) `err` is the first error. */
static void gf_finish(async_future *f, int err) {
  gstate *s = state_of(f);
  if (!err && s->pending == 0) {
    if (s->cancel_req) {
      err = -ECANCELED; /* asyncio: cancelled, whatever the children did */
    } else {
      for (size_t i = 0; i < s->n; i++)
        s->results[i] = s->futs[i]->err ? NULL : s->futs[i]->result;
    }
  }
  async__future_complete(f, err ? NULL : (s->n ? s->results : NULL), err);
}

static void gf_notify(async__fwaiter *w, async_future *child) {
  async__slot *sl = (async__slot *)w;
  async_future *f = sl->owner;
  gstate *s = state_of(f);
  s->pending--;
  child->err_read = 1; /* reported through the gather future */
  if (f->done) return; /* first error mode: the rest only finish */
  if (child->err && !s->collect)
    gf_finish(f, child->err);
  else if (s->pending == 0)
    gf_finish(f, 0);
}

static int gf_cancel(async_future *f) {
  gstate *s = state_of(f);
  int any = 0;
  /* Set first: a bare child ends as it is cancelled, and its notification
   * may finish the gather future from inside this walk. */
  s->cancel_req = 1;
  for (size_t i = 0; i < s->n; i++)
    if (!s->futs[i]->done && async_future_cancel(s->futs[i]) == 1) any = 1;
  if (!any) s->cancel_req = 0; /* nothing was cancelled, nothing ended */
  /* Past its loop's close, the children no longer report to it. */
  if (any && !f->done && !f->loop) async__future_complete(f, NULL, -ECANCELED);
  return any;
}

static void gf_destroy(async_future *f) {
  gstate *s = state_of(f);
  for (size_t i = 0; i < s->n; i++) {
    async__list_remove(&s->slots[i].w.link); /* harmless once notified */
    async__future_unref(s->futs[i]);
  }
  free(s);
}

static const async__composed_ops gf_ops = {gf_cancel, gf_destroy};

/* The loop the gather future lives on: its pending children's (one for
 * all), else any child's, else the running one's. */
static int gf_loop(async_future *const *futs, size_t n, async_loop **out) {
  async_loop *loop = NULL, *any = NULL;
  for (size_t i = 0; i < n; i++) {
    const async_future *f = futs[i];
    if (!any) any = f->loop;
    if (f->done) continue;
    if (!f->loop) return -ESHUTDOWN;
    if (loop && f->loop != loop) return -EXDEV;
    loop = f->loop;
  }
  if (!loop) loop = any ? any : async__loop_here();
  if (!loop) return n ? -ESHUTDOWN : -EINVAL;
  if (loop->closed) return -ESHUTDOWN;
  *out = loop;
  return 0;
}

int async_gather_future(async_future **out, async_future *const futs[],
                        size_t n, int flags) {
  if (out) *out = NULL;
  if (!out || (n && !futs) || (flags & ~ASYNC_GATHER_ERRORS)) return -EINVAL;
  for (size_t i = 0; i < n; i++)
    if (!async__future_ok(futs[i])) return -EINVAL;
  async_loop *loop = NULL;
  int err = gf_loop(futs, n, &loop);
  if (err) return err;
  size_t each = sizeof(async__slot) + 2 * sizeof(void *);
  if (n > (SIZE_MAX - sizeof(gstate)) / each) return -ENOMEM;
  gstate *s = malloc(sizeof(gstate) + n * each);
  gfut *g = s ? async__future_alloc(loop) : NULL;
  if (!g) {
    free(s);
    return -ENOMEM;
  }
  s->n = n;
  s->pending = 0;
  s->collect = (flags & ASYNC_GATHER_ERRORS) != 0;
  s->cancel_req = 0;
  s->futs = (async_future **)(void *)(s->slots + n);
  s->results = (void **)(s->futs + n);
  async_future *f = &g->c.fut;
  async__future_init(f, loop, ASYNC__KIND_COMPOSED);
  f->refs = 1;
  f->user_ref = 1;
  g->c.ops = &gf_ops;
  g->s = s;
  int first_err = 0;
  for (size_t i = 0; i < n; i++) {
    async__slot *sl = &s->slots[i];
    async_future *child = futs[i];
    s->futs[i] = child;
    s->results[i] = NULL;
    async__future_ref(child);
    async__list_init(&sl->w.link);
    sl->owner = f;
    sl->index = i;
    if (child->done) {
      child->err_read = 1;
      if (child->err && !first_err) first_err = child->err;
      continue;
    }
    sl->w.notify = gf_notify;
    async__future_add_waiter(child, &sl->w);
    s->pending++;
  }
  if (first_err && !s->collect)
    gf_finish(f, first_err);
  else if (s->pending == 0)
    gf_finish(f, 0);
  *out = f;
  return 0;
}

long async_gather_future_read(const async_future *f, void **results,
                              int *errors, size_t cap) {
  if (!async__future_ok(f) || f->kind != ASYNC__KIND_COMPOSED ||
      ((const async__composed *)f)->ops != &gf_ops)
    return -EINVAL;
  const gstate *s = state_of(f);
  for (size_t i = 0; i < s->n && i < cap; i++) {
    const async_future *c = s->futs[i];
    if (results) results[i] = c->done && !c->err ? c->result : NULL;
    if (errors) errors[i] = c->done ? c->err : -EINPROGRESS;
  }
  return (long)s->n;
}
