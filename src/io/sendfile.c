/* SPDX-License-Identifier: MIT */
/* async_sendfile: a file to a socket (or any fd) with sendfile(2), which
 * copies in the kernel, and with pread/read and write where sendfile
 * refuses the pair (EINVAL, ENOSYS). Either way only what went out is
 * counted and consumed: the copy path puts the file position back by what
 * it read and could not send. */
#include "io.h"

#include <stdlib.h>
#include <sys/sendfile.h>
#include <unistd.h>

int async__sendfile_force_copy;

/* sendfile(2) moves at most this much per call on Linux anyway. */
#define SF_CHUNK ((size_t)1 << 30)
#define COPY_BUF ((size_t)64 * 1024)

typedef struct sf_state {
  int out_fd, in_fd;
  off_t *offset;
  size_t left; /* SIZE_MAX: to the end of the file */
  size_t sent;
  char *buf; /* the copy path: buf[pos, len) read, not yet sent */
  size_t pos, len;
} sf_state;

/* One step: > 0 progress, 0 end of file, -EAGAIN to wait, else an error;
 * -ENOSYS asks for the copy path. */
static ssize_t sf_kernel(sf_state *s) {
  size_t n = s->left < SF_CHUNK ? s->left : SF_CHUNK;
  ssize_t r;
  do r = sendfile(s->out_fd, s->in_fd, s->offset, n);
  while (r < 0 && errno == EINTR);
  if (r >= 0) return r;
  if (errno == EWOULDBLOCK) return -EAGAIN;
  if ((errno == EINVAL || errno == ENOSYS) && s->sent == 0) return -ENOSYS;
  return -errno;
}

static ssize_t sf_copy(sf_state *s) {
  if (s->pos == s->len) {
    size_t n = s->left < COPY_BUF ? s->left : COPY_BUF;
    ssize_t r;
    do
      r = s->offset ? pread(s->in_fd, s->buf, n, *s->offset)
                    : read(s->in_fd, s->buf, n);
    while (r < 0 && errno == EINTR);
    if (r <= 0) return r < 0 ? -errno : 0;
    s->pos = 0;
    s->len = (size_t)r;
  }
  ssize_t w = async_write(s->out_fd, s->buf + s->pos, s->len - s->pos, 0);
  if (w == -ETIMEDOUT) return -EAGAIN; /* not ready: wait below */
  if (w < 0) return w;
  s->pos += (size_t)w;
  if (s->offset) *s->offset += w;
  return w;
}

ssize_t async_sendfile(int out_fd, int in_fd, off_t *offset, size_t count,
                       size_t *sent, double timeout) {
  if (sent) *sent = 0;
  int err = 0;
  async__task *t = async__io_enter(out_fd, timeout, &err);
  if (!t) return err;
  if (in_fd < 0 || (offset && *offset < 0)) return -EINVAL;
  async_loop *loop = t->fut.loop;
  sf_state s = {.out_fd = out_fd,
                .in_fd = in_fd,
                .offset = offset,
                .left = count ? count : SIZE_MAX};
  int64_t deadline = ASYNC__NO_DEADLINE;
  int timed = 0;
  ssize_t r = 0;
  if (async__sendfile_force_copy) r = -ENOSYS;
  while (s.left) {
    if (!s.buf && r != -ENOSYS) r = sf_kernel(&s);
    if (r == -ENOSYS && !s.buf && !(s.buf = malloc(COPY_BUF))) {
      r = -ENOMEM;
      break;
    }
    if (s.buf) r = sf_copy(&s);
    if (r > 0) {
      s.sent += (size_t)r;
      if (s.left != SIZE_MAX) s.left -= (size_t)r;
      if (sent) *sent = s.sent;
      continue;
    }
    if (r == 0) break;
    if (r != -EAGAIN) break;
    if (!timed) {
      deadline = async__io_deadline(loop, timeout);
      timed = 1;
    }
    if ((r = async__io_wait(loop, t, out_fd, ASYNC__POLL_OUT, deadline)) < 0)
      break;
    r = 0;
  }
  if (s.buf) {
    /* Read ahead but not sent: give it back to the file position. */
    if (!offset && s.pos < s.len)
      lseek(in_fd, -(off_t)(s.len - s.pos), SEEK_CUR);
    free(s.buf);
  }
  return r < 0 ? r : (ssize_t)s.sent;
}
