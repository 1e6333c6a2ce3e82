/* SPDX-License-Identifier: MIT */
/* Context variables: task-local values, copied on write (asyncio's
 * contextvars). See core.h for the representation. */
#include "core.h"

#include <stdlib.h>
#include <string.h>

#define VAR_MAGIC 0x43564152u /* "CVAR" */

struct async_context_var {
  uint32_t magic;
  uint64_t id;
  void *def;
};

_Thread_local async__cvctx *async__context_base ASYNC__TLS_FAST;

/* Variables are made on any thread. */
static _Atomic uint64_t next_id = 1;

atomic_int async__context_used;

void async__context_free(async__cvctx *c) { free(c); }

static int var_ok(const async_context_var *v) {
  return v && v->magic == VAR_MAGIC;
}

/* The index of id in c, or where it would be inserted. */
static uint32_t find(const async__cvctx *c, uint64_t id) {
  uint32_t lo = 0, hi = c->n;
  while (lo < hi) {
    uint32_t mid = lo + (hi - lo) / 2;
    if (c->e[mid].id < id)
      lo = mid + 1;
    else
      hi = mid;
  }
  return lo;
}

/* Sets (or, with `remove`, unsets) id in the context held at *slot. */
static int put(async__cvctx **slot, uint64_t id, void *value, int remove) {
  async__cvctx *c = *slot;
  uint32_t n = c ? c->n : 0;
  uint32_t i = c ? find(c, id) : 0;
  int found = i < n && c->e[i].id == id;
  if (remove && !found) return 0;
  if (c && c->refs == 1) { /* ours alone: in place when it fits */
    if (found && !remove) {
      c->e[i].value = value;
      return 0;
    }
    if (remove || n < c->cap) {
      async__cvent *at = &c->e[i];
      if (remove)
        memmove(at, at + 1, (n - i - 1) * sizeof *at);
      else
        memmove(at + 1, at, (n - i) * sizeof *at);
      c->n = remove ? n - 1 : n + 1;
      if (!remove) *at = (async__cvent){id, value};
      if (!c->n) {
        async__context_free(c);
        *slot = NULL;
      }
      return 0;
    }
  }
  uint32_t m = found ? (remove ? n - 1 : n) : n + 1;
  async__cvctx *d = NULL;
  if (m) {
    uint32_t cap = m + 2; /* room for a few more variables, in place */
    d = malloc(sizeof *d + cap * sizeof d->e[0]);
    if (!d) return -ENOMEM;
    d->refs = 1;
    d->cap = cap;
    d->n = m;
    uint32_t rest = n - i - (uint32_t)found;
    if (i) memcpy(d->e, c->e, i * sizeof d->e[0]);
    if (!remove) d->e[i] = (async__cvent){id, value};
    if (rest)
      memcpy(&d->e[i + !remove], &c->e[i + found], rest * sizeof d->e[0]);
  }
  async__context_drop(c);
  *slot = d;
  return 0;
}

int async_context_var_new(async_context_var **out, void *default_value) {
  if (!out) return -EINVAL;
  *out = NULL;
  async_context_var *v = malloc(sizeof *v);
  if (!v) return -ENOMEM;
  v->magic = VAR_MAGIC;
  v->id = atomic_fetch_add(&next_id, 1);
  v->def = default_value;
  *out = v;
  return 0;
}

int async_context_var_free(async_context_var *v) {
  if (!v) return 0;
  if (!var_ok(v)) return -EINVAL;
  v->magic = ASYNC__MAGIC_DEAD;
  free(v);
  return 0;
}

int async_context_var_get(const async_context_var *v, void **value) {
  if (!var_ok(v) || !value) return -EINVAL;
  const async__cvctx *c = *async__context_slot();
  if (c) {
    uint32_t i = find(c, v->id);
    if (i < c->n && c->e[i].id == v->id) {
      *value = c->e[i].value;
      return 0;
    }
  }
  *value = v->def;
  return -ENOENT;
}

int async_context_var_set(async_context_var *v, void *value,
                          async_context_token *token) {
  if (!var_ok(v)) return -EINVAL;
  if (!atomic_load_explicit(&async__context_used, memory_order_relaxed))
    atomic_store_explicit(&async__context_used, 1, memory_order_relaxed);
  async__cvctx **slot = async__context_slot();
  async_context_token tk = {.var = v, .where = slot};
  tk.had_old_value = async_context_var_get(v, &tk.old_value) == 0;
  if (!tk.had_old_value) tk.old_value = NULL;
  int err = put(slot, v->id, value, 0);
  if (!err && token) *token = tk;
  return err;
}

int async_context_var_reset(async_context_var *v, async_context_token *token) {
  if (!var_ok(v) || !token || token->var != v || token->used) return -EINVAL;
  async__cvctx **slot = async__context_slot();
  if (token->where != slot) return -EXDEV;
  int err = put(slot, v->id, token->old_value, !token->had_old_value);
  if (!err) token->used = 1;
  return err;
}
