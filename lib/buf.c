/*
 * buf.c - growable, size-limited byte buffer (see buf.h).
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"

void nsync__buf_init(struct nsync_buf *b, size_t limit)
{
	b->data = NULL;
	b->len = 0;
	b->cap = 0;
	b->limit = limit;
	b->over_limit = 0;
}

void nsync__buf_free(struct nsync_buf *b)
{
	free(b->data);
	b->data = NULL;
	b->len = 0;
	b->cap = 0;
	b->over_limit = 0;
}

void nsync__buf_reset(struct nsync_buf *b)
{
	b->len = 0;
	b->over_limit = 0;
	if (b->data)
		b->data[0] = '\0';
}

/* Make room for n more bytes plus the NUL. */
static nsync_rc grow(struct nsync_buf *b, size_t n)
{
	size_t need, cap;
	char *p;

	if (n > b->limit || b->len > b->limit - n) {
		b->over_limit = 1;
		return NSYNC_ERR_NOMEM;
	}
	need = b->len + n + 1;
	if (need <= b->cap)
		return NSYNC_OK;
	cap = b->cap ? b->cap : 256;
	while (cap < need)
		cap *= 2;
	p = realloc(b->data, cap);
	if (!p)
		return NSYNC_ERR_NOMEM;
	b->data = p;
	b->cap = cap;
	return NSYNC_OK;
}

nsync_rc nsync__buf_add(struct nsync_buf *b, const void *p, size_t n)
{
	if (grow(b, n) != NSYNC_OK)
		return NSYNC_ERR_NOMEM;
	if (n)
		memcpy(b->data + b->len, p, n);
	b->len += n;
	b->data[b->len] = '\0';
	return NSYNC_OK;
}

nsync_rc nsync__buf_adds(struct nsync_buf *b, const char *s)
{
	return nsync__buf_add(b, s, strlen(s));
}

nsync_rc nsync__buf_addc(struct nsync_buf *b, char c)
{
	return nsync__buf_add(b, &c, 1);
}

nsync_rc nsync__buf_printf(struct nsync_buf *b, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0 || grow(b, (size_t)n) != NSYNC_OK)
		return NSYNC_ERR_NOMEM;
	va_start(ap, fmt);
	vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	b->len += (size_t)n;
	return NSYNC_OK;
}

char *nsync__buf_take(struct nsync_buf *b)
{
	char *p = b->data;

	if (!p)
		p = calloc(1, 1);
	b->data = NULL;
	b->len = 0;
	b->cap = 0;
	return p;
}
