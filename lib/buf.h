/*
 * buf.h - a growable byte buffer with a hard size limit (the idea of curl's
 * dynbuf). Used for HTTP bodies, the batch document sent to PostgreSQL and
 * JSON building. The content is always NUL-terminated.
 */
#ifndef NSYNC_BUF_H
#define NSYNC_BUF_H

#include <stddef.h>

#include "notionsync.h"

struct nsync_buf {
	char *data;     /* owned; NULL until the first append */
	size_t len;     /* bytes used, excluding the NUL */
	size_t cap;     /* bytes allocated */
	size_t limit;   /* appends that would exceed this fail */
	int over_limit; /* an append failed because of limit (not memory) */
};

/* nsync__buf_init - an empty buffer that may grow to limit bytes. */
void nsync__buf_init(struct nsync_buf *b, size_t limit);

/* nsync__buf_free - release the memory; the buffer is empty and reusable. */
void nsync__buf_free(struct nsync_buf *b);

/* nsync__buf_reset - keep the memory, forget the content (and over_limit). */
void nsync__buf_reset(struct nsync_buf *b);

/* nsync__buf_add - append n bytes. NSYNC_ERR_NOMEM if memory or the limit
 * runs out (then b->over_limit is 1 for the limit); the content is then
 * unchanged. */
nsync_rc nsync__buf_add(struct nsync_buf *b, const void *p, size_t n);

/* nsync__buf_adds - append a NUL-terminated string. */
nsync_rc nsync__buf_adds(struct nsync_buf *b, const char *s);

/* nsync__buf_addc - append one byte. */
nsync_rc nsync__buf_addc(struct nsync_buf *b, char c);

/* nsync__buf_printf - append formatted text. */
nsync_rc nsync__buf_printf(struct nsync_buf *b, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* nsync__buf_take - hand the content to the caller (free() it) and leave the
 * buffer empty. Returns an empty string, not NULL, for an empty buffer;
 * NULL only when that allocation fails. */
char *nsync__buf_take(struct nsync_buf *b);

#endif
