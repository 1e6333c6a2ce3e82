/* SPDX-License-Identifier: MIT */
/** @file
 * libasync: Layer 6, I/O: buffered streams over any fd (asyncio's
 * StreamReader and StreamWriter in one object). A chapter of <async.h>,
 * which is what programs include.
 *
 * A stream owns its fd: a socket, either end of a pipe, a tty. Reading
 * fills a buffer only when a read needs more than it holds, so memory is
 * bounded by the largest read asked for (a line read by the limit).
 * Writing never suspends: what the fd does not take at once is buffered
 * and sent in the background by the loop; async_stream_drain() is where a
 * writer waits for a slow reader (backpressure with high and low water
 * marks, as asyncio's transports have).
 *
 * Every wait has a timeout (seconds; ASYNC_NO_TIMEOUT for no limit; zero
 * or less: already expired; NaN: -EINVAL). A wait that times out or is
 * cancelled consumes nothing: the bytes a read would have returned stay
 * in the stream for the next read. Every suspending call also returns
 * -EPERM outside a task, -ECANCELED in a cancelled task, -ETIMEDOUT, and
 * -EBADF when the stream is closed (or its fd closed with async_fd_close)
 * while it waits; "the usual codes" below means these. Only one task may
 * read at a time (another gets -EBUSY); any number may drain.
 *
 * Since the stream owns its fd, it keeps the fd registered with the
 * loop's poller from one wait to the next, and after a read of a stream
 * socket or a pipe that returned less than it asked for (which emptied
 * the fd), the next read waits for the fd before it reads, instead of
 * making a read that would find nothing; with no time left to wait, it
 * reads at once, and a wait that times out still reads once. So a
 * request and its answer cost one read and one write. */
#ifndef ASYNC_API_STREAM_H
#define ASYNC_API_STREAM_H

#include "base.h"

#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

/** A buffered stream over an fd. Opaque; made by async_stream_open. */
typedef struct async_stream async_stream;

/** The options of async_stream_open; async_stream_options_init sets the
 * defaults. */
typedef struct async_stream_options {
  size_t size;       /**< sizeof(async_stream_options): set by _init */
  size_t limit;      /**< the longest line or delimited read, delimiter
                          included: 64 KiB by default (asyncio's limit) */
  size_t high_water; /**< drain waits once more than this is buffered for
                          writing: 64 KiB by default */
  size_t low_water;  /**< ... until no more than this is: 16 KiB by
                          default; must not exceed high_water */
} async_stream_options;

/** Fills *opts with the defaults. */
ASYNC_EXTERN void async_stream_options_init(async_stream_options *opts);

/** Makes a stream over fd on loop and stores it in *out; opts may be NULL
 * for the defaults. fd is made non-blocking and close-on-exec, and the
 * stream owns it from then on, on success only: async_stream_free closes
 * it. The caller frees the stream with async_stream_free, before the loop
 * is freed. Returns 0, -EINVAL (NULL out, bad loop, fd < 0, bad options:
 * limit 0, low_water > high_water), -EBADF (fd is not open), -ESHUTDOWN
 * (the loop is closed), -ENOMEM. Suspends: no. */
ASYNC_EXTERN int async_stream_open(async_stream **out, async_loop *loop, int fd,
                                   const async_stream_options *opts);

/** The stream's fd, or -EBADF once the stream closed it (or let it go),
 * or -EINVAL. Reading or writing the fd behind the stream's back loses
 * the order of its buffers; options and getsockname are fine. Closing it
 * is the stream's job, but async_fd_close on it from a task of its loop
 * is safe at any time: the stream lets the number go at once, so the
 * next file to get the number is never read, written or closed by it,
 * not even by a reader woken and not yet resumed; its waits fail with
 * -EBADF, its queued output is dropped, and its reads and writes return
 * -EBADF from then on. close(2) behind its back is a programming error
 * (the stream would later close the number again, whoever has it then).
 * Suspends: no. */
ASYNC_EXTERN int async_stream_fd(const async_stream *s);

/** Reads up to n bytes into buf: what is buffered if anything is, else
 * what one read of the fd gives (straight into buf, without a copy).
 * Returns the count (> 0), 0 at end of stream (or for n == 0), the usual
 * codes, -EINVAL, -EBUSY, or the fd's -errno (-ECONNRESET, ...).
 * Suspends: yes. */
ASYNC_EXTERN ssize_t async_stream_read(async_stream *s, void *buf, size_t n,
                                       double timeout);

/** Reads exactly n bytes into buf. Returns n; or -ENODATA when the stream
 * ends first (asyncio's IncompleteReadError): the partial data is then
 * not consumed, and async_stream_buffered() says how much of it there is
 * (async_stream_read returns it, then 0); or the usual codes, -EINVAL,
 * -EBUSY, -ENOMEM (the buffer could not grow to n), the fd's -errno. On
 * any error nothing is consumed. The stream buffers up to n bytes,
 * whatever its limit. Suspends: yes. */
ASYNC_EXTERN ssize_t async_stream_readexactly(async_stream *s, void *buf,
                                              size_t n, double timeout);

/** Reads up to and including the first occurrence of the dlen bytes at
 * delim, into buf (cap bytes; no NUL is added). The read is limited to
 * the smaller of the stream's limit and cap, delimiter included. Returns
 * the length, delimiter included; 0 at end of stream with nothing
 * buffered; -EMSGSIZE when the delimiter is not within the limit
 * (asyncio's LimitOverrunError): the data stays in the stream, so the
 * caller may read it with async_stream_read or give up; -ENODATA when the
 * stream ends with an unterminated remainder, which also stays (asyncio's
 * IncompleteReadError); the usual codes, -EINVAL (NULL or empty delim,
 * cap 0), -EBUSY, -ENOMEM, the fd's -errno. On any error nothing is
 * consumed. Suspends: yes. */
ASYNC_EXTERN ssize_t async_stream_readuntil(async_stream *s, const void *delim,
                                            size_t dlen, void *buf, size_t cap,
                                            double timeout);

/** async_stream_readuntil with "\n", except at end of stream: an
 * unterminated last line is returned as it is (as asyncio's readline
 * does), then 0. Suspends: yes. */
ASYNC_EXTERN ssize_t async_stream_readline(async_stream *s, void *buf,
                                           size_t cap, double timeout);

/** Bytes read from the fd and not yet consumed, or -EINVAL. Suspends: no. */
ASYNC_EXTERN ssize_t async_stream_buffered(const async_stream *s);

/** Writes n bytes of buf: what the fd takes at once goes now, the rest is
 * copied to the stream's buffer and sent by the loop in the background.
 * It never waits, and so never limits memory by itself: call
 * async_stream_drain after writing. Writes never raise SIGPIPE (see
 * async_write). Returns 0, -EINVAL, -ESHUTDOWN
 * (after async_stream_write_eof or async_stream_close, or once the loop
 * is closed: what was still buffered then is dropped), -ENOMEM (nothing
 * was written; but if part of it had gone out already the stream fails
 * for writing with -ENOMEM from then on, since its output has a hole),
 * or the error that ended writing on this stream (-EPIPE, -ECONNRESET: the
 * peer is gone), which every later write and drain returns too; data
 * still buffered is then dropped. Suspends: no. */
ASYNC_EXTERN int async_stream_write(async_stream *s, const void *buf, size_t n);

/** Waits while more than the high water mark is buffered for writing,
 * until no more than the low water mark is (asyncio's drain): so a writer
 * that drains after each write keeps at most high_water plus one write in
 * memory, however slow its reader. After async_stream_write_eof it waits
 * until everything went out and the end of stream was sent. Returns 0,
 * the error that ended writing (see async_stream_write), the usual codes
 * (the data stays buffered, and keeps going out). Suspends: yes. */
ASYNC_EXTERN int async_stream_drain(async_stream *s, double timeout);

/** Bytes buffered for writing, not yet taken by the fd, or -EINVAL.
 * Suspends: no. */
ASYNC_EXTERN ssize_t async_stream_write_buffered(const async_stream *s);

/** Ends the stream's output once the buffered data went out: a socket is
 * shut down for writing (its peer reads end of stream, and this side can
 * still read); any other fd (a pipe) is closed. Nothing buffered: at
 * once; else in the background for a socket, and by the next
 * async_stream_drain, async_stream_wait_closed or async_stream_free for
 * another fd. Later writes return -ESHUTDOWN. Returns 0, -EINVAL, or the
 * error that ended writing. Suspends: no. */
ASYNC_EXTERN int async_stream_write_eof(async_stream *s);

/** Starts closing the stream (asyncio's close): a reader waiting is woken
 * with -EBADF, later reads and writes fail (-EBADF, -ESHUTDOWN), and the
 * buffered output still goes out in the background; the fd is closed
 * once it has, by async_stream_wait_closed or async_stream_free (at once
 * when nothing is buffered). Closing twice does nothing. The stream
 * stays allocated until async_stream_free. Returns 0 or -EINVAL.
 * Suspends: no. */
ASYNC_EXTERN int async_stream_close(async_stream *s);

/** Waits until the closed stream's buffered output went out (or failed),
 * then closes its fd (asyncio's wait_closed). Returns 0, -EINVAL (not
 * closed yet), the error that ended writing (the data that could not go
 * out is lost), or the usual codes (the fd is then still open, the data
 * still going out). Suspends: yes. */
ASYNC_EXTERN int async_stream_wait_closed(async_stream *s, double timeout);

/** Frees the stream and closes its fd if it is still open, dropping any
 * output not yet sent (call async_stream_close and
 * async_stream_wait_closed first to send it). Tasks still in a call on
 * the stream (waiting, or woken and not yet resumed) are a programming
 * error: -EBUSY, nothing freed. Returns 0,
 * -EINVAL (NULL, not a stream),
 * -EBUSY. Suspends: no. */
ASYNC_EXTERN int async_stream_free(async_stream *s);

#ifdef __cplusplus
}
#endif

#endif
