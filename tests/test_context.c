/* SPDX-License-Identifier: MIT */
/* Context variables: asyncio's contextvars, as tasks and callbacks see
 * them (Lib/test/test_asyncio/test_context.py and test_tasks.py's
 * context tests). */
#include "helpers.h"

static async_context_var *g_var;

static void stop_cb(void *arg) { async_loop_stop(arg); }

/* The value of g_var here, or -1 where it is not set. */
static int seen(void) {
  void *v;
  int err = async_context_var_get(g_var, &v);
  return err == 0 ? PTRI(v) : err == -ENOENT ? -1 : -100;
}

static void setup_var(void) {
  assert_int_equal(async_context_var_new(&g_var, IPTR(-2)), 0);
}

static void test_context_get_default_and_set_outside_tasks(void **state) {
  (void)state;
  setup_var();
  void *v = NULL;
  assert_int_equal(async_context_var_get(g_var, &v), -ENOENT);
  assert_int_equal(PTRI(v), -2); /* the default */
  async_context_token tk;
  assert_int_equal(async_context_var_set(g_var, IPTR(5), &tk), 0);
  assert_int_equal(tk.had_old_value, 0);
  assert_int_equal(seen(), 5);
  assert_int_equal(async_context_var_reset(g_var, &tk), 0);
  assert_int_equal(seen(), -1);
  assert_int_equal(async_context_var_reset(g_var, &tk), -EINVAL); /* used */
  assert_int_equal(async_context_var_free(g_var), 0);
}

typedef struct {
  int child_before, child_after, child_set_seen, parent_after_child;
  int early_child;
  int cb_seen, cb_set_seen, after_cb;
  int done_cb_seen;
} obs;

static obs g_obs;

static void *child(void *arg) {
  obs *o = arg;
  o->child_before = seen();
  async_context_var_set(g_var, IPTR(20), NULL);
  o->child_set_seen = seen();
  async_yield();
  o->child_after = seen();
  return NULL;
}

static void *early_child(void *arg) {
  obs *o = arg;
  async_yield(); /* the parent sets meanwhile */
  o->early_child = seen();
  return NULL;
}

static void in_callback(void *arg) {
  obs *o = arg;
  o->cb_seen = seen();
  async_context_var_set(g_var, IPTR(30), NULL); /* its own copy */
  o->cb_set_seen = seen();
}

static void on_done(async_future *f, void *arg) {
  (void)f;
  ((obs *)arg)->done_cb_seen = seen();
}

static void *parent(void *arg) {
  obs *o = arg;
  async_task *early = async_spawn(early_child, o); /* before the set */
  async_context_var_set(g_var, IPTR(10), NULL);
  async_task *c = async_spawn(child, o); /* a copy, with 10 */
  async_await(c, NULL);
  o->parent_after_child = seen(); /* the child's 20 stays the child's */
  async_loop_call_soon(async_loop_current(), in_callback, o, NULL);
  async_yield();
  o->after_cb = seen();
  async_context_var_set(g_var, IPTR(11), NULL);
  async_task_add_done_callback(early, on_done, o); /* captures 11 */
  async_context_var_set(g_var, IPTR(12), NULL);
  async_await(early, NULL);
  async_yield();
  async_task_release(early);
  async_task_release(c);
  return NULL;
}

static void test_context_tasks_copy_their_spawners(void **state) {
  (void)state;
  setup_var();
  async_loop *loop = new_loop();
  memset(&g_obs, 0, sizeof g_obs);
  assert_int_equal(run_task(loop, parent, &g_obs, NULL), 0);
  assert_int_equal(g_obs.early_child, -1);
  assert_int_equal(g_obs.child_before, 10);
  assert_int_equal(g_obs.child_set_seen, 20);
  assert_int_equal(g_obs.child_after, 20);
  assert_int_equal(g_obs.parent_after_child, 10);
  assert_int_equal(g_obs.cb_seen, 10);
  assert_int_equal(g_obs.cb_set_seen, 30);
  assert_int_equal(g_obs.after_cb, 10);
  assert_int_equal(g_obs.done_cb_seen, 11);
  assert_int_equal(seen(), -1); /* the thread's context never changed */
  free_loop(loop);
  assert_int_equal(async_context_var_free(g_var), 0);
}

/* A task spawned from outside the loop copies the thread's context; a
 * callback scheduled from there, too. */
static void *reads(void *arg) {
  *(int *)arg = seen();
  return NULL;
}

static void read_cb(void *arg) { *(int *)arg = seen(); }

static void test_context_spawned_from_the_thread(void **state) {
  (void)state;
  setup_var();
  async_loop *loop = new_loop();
  async_context_token tk;
  async_context_var_set(g_var, IPTR(7), &tk);
  int in_task = 0, in_cb = 0, in_later = 0;
  async_task *t;
  assert_int_equal(async_task_spawn(loop, &t, reads, &in_task, NULL), 0);
  async_loop_call_soon(loop, read_cb, &in_cb, NULL);
  async_loop_call_later(loop, 0.001, read_cb, &in_later, NULL);
  assert_int_equal(async_context_var_reset(g_var, &tk), 0);
  assert_int_equal(async_loop_run_until_complete(loop, t, NULL), 0);
  async_loop_call_later(loop, 0.01, stop_cb, loop, NULL);
  async_loop_run_forever(loop);
  assert_int_equal(in_task, 7);
  assert_int_equal(in_cb, 7);
  assert_int_equal(in_later, 7);
  async_task_release(t);
  free_loop(loop);
  assert_int_equal(async_context_var_free(g_var), 0);
}

typedef struct {
  async_context_token tk;
  int reset_elsewhere, reset_here, after_reset, again, before;
} tokens;

static void *resets_anothers_token(void *arg) {
  tokens *k = arg;
  k->reset_elsewhere = async_context_var_reset(g_var, &k->tk);
  return NULL;
}

static void *sets_and_resets(void *arg) {
  tokens *k = arg;
  async_context_var_set(g_var, IPTR(1), NULL);
  async_context_token first;
  async_context_var_set(g_var, IPTR(2), &first);
  assert_int_equal(first.had_old_value, 1);
  assert_int_equal(PTRI(first.old_value), 1);
  k->tk = first;
  async_task *t = async_spawn(resets_anothers_token, k);
  async_await(t, NULL);
  async_task_release(t);
  k->before = seen();
  k->reset_here = async_context_var_reset(g_var, &k->tk);
  k->after_reset = seen();
  k->again = async_context_var_reset(g_var, &k->tk);
  return NULL;
}

static void test_context_tokens(void **state) {
  (void)state;
  setup_var();
  async_loop *loop = new_loop();
  tokens k = {0};
  assert_int_equal(run_task(loop, sets_and_resets, &k, NULL), 0);
  assert_int_equal(k.reset_elsewhere, -EXDEV);
  assert_int_equal(k.before, 2);
  assert_int_equal(k.reset_here, 0);
  assert_int_equal(k.after_reset, 1);
  assert_int_equal(k.again, -EINVAL);
  free_loop(loop);
  assert_int_equal(async_context_var_free(g_var), 0);
}

/* Many variables in one context, set and reset in any order; a variable
 * freed takes its values with it. */
static void *many_vars(void *arg) {
  (void)arg;
  enum { N = 9 };
  async_context_var *v[N];
  async_context_token tk[N];
  for (int i = 0; i < N; i++) {
    assert_int_equal(async_context_var_new(&v[i], NULL), 0);
    assert_int_equal(async_context_var_set(v[i], IPTR(100 + i), &tk[i]), 0);
  }
  async_task *c = async_spawn(reads, &(int){0}); /* shares the context */
  for (int i = 0; i < N; i += 2)
    assert_int_equal(async_context_var_set(v[i], IPTR(200 + i), NULL), 0);
  for (int i = 0; i < N; i++) {
    void *x;
    assert_int_equal(async_context_var_get(v[i], &x), 0);
    assert_int_equal(PTRI(x), i % 2 ? 100 + i : 200 + i);
  }
  for (int i = N - 1; i >= 0; i -= 3) {
    assert_int_equal(async_context_var_reset(v[i], &tk[i]), 0);
    void *x = IPTR(1);
    assert_int_equal(async_context_var_get(v[i], &x), -ENOENT);
    assert_null(x);
  }
  async_context_var *dead = v[1];
  assert_int_equal(async_context_var_free(dead), 0);
  async_context_var *fresh;
  assert_int_equal(async_context_var_new(&fresh, IPTR(-5)), 0);
  void *x;
  assert_int_equal(async_context_var_get(fresh, &x), -ENOENT);
  assert_int_equal(PTRI(x), -5);
  async_context_var_free(fresh);
  for (int i = 0; i < N; i++)
    if (i != 1) async_context_var_free(v[i]);
  async_await(c, NULL);
  async_task_release(c);
  return NULL;
}

static void test_context_many_variables(void **state) {
  (void)state;
  setup_var();
  async_loop *loop = new_loop();
  assert_int_equal(run_task(loop, many_vars, NULL, NULL), 0);
  free_loop(loop);
  assert_int_equal(async_context_var_free(g_var), 0);
}

static void test_context_bad_arguments(void **state) {
  (void)state;
  async_context_var *v;
  void *x;
  async_context_token tk;
  assert_int_equal(async_context_var_new(NULL, NULL), -EINVAL);
  assert_int_equal(async_context_var_get(NULL, &x), -EINVAL);
  assert_int_equal(async_context_var_set(NULL, NULL, NULL), -EINVAL);
  assert_int_equal(async_context_var_reset(NULL, &tk), -EINVAL);
  assert_int_equal(async_context_var_free(NULL), 0);
  assert_int_equal(async_context_var_new(&v, NULL), 0);
  assert_int_equal(async_context_var_get(v, NULL), -EINVAL);
  assert_int_equal(async_context_var_reset(v, NULL), -EINVAL);
  async_context_var *w;
  assert_int_equal(async_context_var_new(&w, NULL), 0);
  assert_int_equal(async_context_var_set(w, IPTR(1), &tk), 0);
  assert_int_equal(async_context_var_reset(v, &tk), -EINVAL); /* w's */
  assert_int_equal(async_context_var_reset(w, &tk), 0);
  assert_int_equal(async_context_var_free(w), 0);
  assert_int_equal(async_context_var_free(v), 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_context_get_default_and_set_outside_tasks),
      cmocka_unit_test(test_context_tasks_copy_their_spawners),
      cmocka_unit_test(test_context_spawned_from_the_thread),
      cmocka_unit_test(test_context_tokens),
      cmocka_unit_test(test_context_many_variables),
      cmocka_unit_test(test_context_bad_arguments),
  };
  return cmocka_run_group_tests_name("context", tests, NULL, NULL);
}
