/* SPDX-License-Identifier: MIT */
/* echo_server: asyncio's "TCP echo server" and "TCP echo client" in one
 * program. The server reads a line, prints it, sends it back and closes;
 * the client sends "Hello World!", prints what comes back and closes. The
 * server listens on 127.0.0.1 at a port the kernel picks (-p PORT for a
 * fixed one), serves the one client, and stops. */
#define _POSIX_C_SOURCE 200809L

#include <async.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int handle_echo(async_stream *s, void *arg) {
  (void)arg;
  char line[100];
  ssize_t n = async_stream_readline(s, line, sizeof line - 1, 10.0);
  if (n < 0) return (int)n;
  line[n] = '\0';
  line[strcspn(line, "\n")] = '\0';
  printf("Received '%s'\n", line);
  printf("Send: '%s'\n", line);
  strcat(line, "\n");
  int err = async_stream_write(s, line, strlen(line));
  if (!err) err = async_stream_drain(s, 10.0);
  printf("Close the connection\n");
  return err; /* the server closes the stream */
}

static int tcp_echo_client(int port, const char *message) {
  int fd = async_tcp_connect("127.0.0.1", port, 10.0);
  if (fd < 0) return fd;
  async_stream *s;
  int err = async_stream_open(&s, async_loop_current(), fd, NULL);
  if (err) {
    async_fd_close(fd);
    return err;
  }
  printf("Send: '%s'\n", message);
  err = async_stream_write(s, message, strlen(message));
  if (!err) err = async_stream_write(s, "\n", 1);
  char data[100];
  ssize_t n = err ? err : async_stream_readline(s, data, sizeof data - 1, 10.0);
  if (n >= 0) {
    data[n] = '\0';
    data[strcspn(data, "\n")] = '\0';
    printf("Received: '%s'\n", data);
    err = 0;
  } else {
    err = (int)n;
  }
  printf("Close the connection\n");
  async_stream_close(s);
  int werr = async_stream_wait_closed(s, 10.0);
  async_stream_free(s);
  return err ? err : werr;
}

static void *main_task(void *arg) {
  int fd = async_tcp_listen("127.0.0.1", *(int *)arg, 0, 0);
  if (fd < 0) return async_fail(fd);
  async_server *srv;
  int err = async_server_start(&srv, async_loop_current(), fd, handle_echo,
                               NULL, NULL);
  if (err) {
    async_fd_close(fd);
    return async_fail(err);
  }
  int port = async_socket_port(fd);
  printf("Serving on 127.0.0.1:%d\n", port);
  err = tcp_echo_client(port, "Hello World!");
  int stop = async_server_stop(srv, 5.0); /* the handler has returned */
  async_server_free(srv);
  if (!err && stop) err = stop < 0 ? stop : -ETIMEDOUT;
  return err ? async_fail(err) : NULL;
}

int main(int argc, char **argv) {
  int port = 0;
  if (argc == 3 && strcmp(argv[1], "-p") == 0) {
    port = atoi(argv[2]);
  } else if (argc != 1) {
    fprintf(stderr, "usage: %s [-p PORT]\n", argv[0]);
    return 2;
  }
  setvbuf(stdout, NULL, _IOLBF, 0); /* keep the line order when piped */
  int err = async_run(main_task, &port, NULL);
  if (err) fprintf(stderr, "echo_server: %s\n", async_strerror(err));
  return err != 0;
}
