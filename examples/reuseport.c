/* SPDX-License-Identifier: MIT */
/* reuseport: one port served by two loops on two threads, one loop per
 * thread, as nginx's workers or Seastar's shards use every core with
 * single-threaded runtimes.
 *
 * Each worker thread runs its own loop and its own server, on its own
 * listening socket bound with ASYNC_LISTEN_REUSEPORT to the same port;
 * the kernel spreads the incoming connections among the sockets (by a
 * hash of the addresses). The workers share nothing. The main thread,
 * with a third loop, makes 40 connections, each told which worker
 * answered it, then stops both workers through
 * async_loop_call_soon_threadsafe. */
#define _POSIX_C_SOURCE 200809L

#include <async.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#define NWORKERS 2
#define NCLIENTS 40

typedef struct worker {
  int id, port; /* port 0: pick one (the first worker) */
  int fd;       /* this worker's listening socket, made by main */
  pthread_t thread;
  async_loop *loop;
  async_server *srv;
  int err;
  unsigned long long served;
} worker;

static int answer(async_stream *s, void *arg) {
  worker *w = arg;
  char line[64];
  ssize_t n = async_stream_readline(s, line, sizeof line, 5.0);
  if (n <= 0) return (int)n;
  n = snprintf(line, sizeof line, "worker %d\n", w->id);
  int err = async_stream_write(s, line, (size_t)n);
  return err ? err : async_stream_drain(s, 5.0);
}

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static int nready;

static void *worker_main(void *arg) {
  worker *w = arg;
  int err =
      async_server_start(&w->srv, async_loop_current(), w->fd, answer, w, NULL);
  pthread_mutex_lock(&mu);
  w->loop = async_loop_current();
  w->err = err;
  nready++;
  pthread_cond_broadcast(&cv);
  pthread_mutex_unlock(&mu);
  if (err) return async_fail(err);
  err = async_server_serve_forever(w->srv);
  async_server_stats st;
  async_server_get_stats(w->srv, &st);
  w->served = st.accepted;
  async_server_free(w->srv);
  return err ? async_fail(err) : NULL;
}

static void *worker_thread(void *arg) {
  worker *w = arg;
  int err = async_run(worker_main, w, NULL);
  if (err && !w->err) w->err = err;
  return NULL;
}

/* Runs on the worker's loop: a callback may not suspend, so it starts a
 * task that stops the server. */
static void *stop_task(void *arg) {
  return async_server_stop(arg, 1.0) < 0 ? async_fail(-EIO) : NULL;
}

static void stop_cb(void *arg) {
  worker *w = arg;
  async_task_spawn(w->loop, NULL, stop_task, w->srv, NULL);
}

/* The clients, on the main thread's loop. */
typedef struct {
  int port, err;
  int per_worker[NWORKERS + 1];
} tally;

static void *client(void *arg) {
  tally *t = arg;
  int fd = async_tcp_connect("127.0.0.1", t->port, 5.0);
  if (fd < 0) {
    t->err = fd;
    return NULL;
  }
  char buf[64] = {0};
  int id = 0;
  ssize_t n = async_write_all(fd, "who?\n", 5, NULL, 5.0);
  size_t got = 0;
  while (n > 0 && got < sizeof buf - 1 && !memchr(buf, '\n', got)) {
    n = async_read(fd, buf + got, sizeof buf - 1 - got, 5.0);
    if (n > 0) got += (size_t)n;
  }
  if (sscanf(buf, "worker %d", &id) == 1 && id >= 1 && id <= NWORKERS)
    t->per_worker[id]++;
  else
    t->err = n < 0 ? (int)n : -EPROTO;
  async_fd_close(fd);
  return NULL;
}

static void *clients_main(void *arg) {
  async_task *t[NCLIENTS];
  for (int i = 0; i < NCLIENTS; i++) t[i] = async_spawn(client, arg);
  for (int i = 0; i < NCLIENTS; i++) {
    if (!t[i]) return async_fail(-ENOMEM);
    async_await(t[i], NULL);
    async_task_release(t[i]);
  }
  return NULL;
}

int main(void) {
  setvbuf(stdout, NULL, _IOLBF, 0);
  worker w[NWORKERS];
  memset(w, 0, sizeof w);
  /* Every socket is bound before any is served: the first gets a port
   * from the kernel, the others share it. */
  int port = 0;
  for (int i = 0; i < NWORKERS; i++) {
    w[i].id = i + 1;
    w[i].fd = async_tcp_listen("127.0.0.1", port, 0, ASYNC_LISTEN_REUSEPORT);
    if (w[i].fd < 0) {
      fprintf(stderr, "reuseport: listen: %s\n", async_strerror(w[i].fd));
      return 1;
    }
    port = async_socket_port(w[i].fd);
  }
  for (int i = 0; i < NWORKERS; i++)
    pthread_create(&w[i].thread, NULL, worker_thread, &w[i]);
  pthread_mutex_lock(&mu);
  while (nready < NWORKERS) pthread_cond_wait(&cv, &mu);
  pthread_mutex_unlock(&mu);
  printf("%d loops on %d threads serve 127.0.0.1:%d\n", NWORKERS, NWORKERS,
         port);

  tally t = {.port = port};
  int err = async_run(clients_main, &t, NULL);
  if (!err) err = t.err;

  for (int i = 0; i < NWORKERS; i++)
    if (!w[i].err) async_loop_call_soon_threadsafe(w[i].loop, stop_cb, &w[i]);
  for (int i = 0; i < NWORKERS; i++) {
    pthread_join(w[i].thread, NULL);
    if (!err) err = w[i].err;
  }
  int both = 1;
  for (int i = 0; i < NWORKERS; i++) {
    printf("worker %d served %llu connections (%d answers counted)\n", w[i].id,
           w[i].served, t.per_worker[w[i].id]);
    both &= t.per_worker[w[i].id] > 0;
  }
  printf("%d connections, %s\n", NCLIENTS,
         both ? "every worker served some" : "a worker served none");
  if (err) fprintf(stderr, "reuseport: %s\n", async_strerror(err));
  return err != 0 || !both;
}
