/*
 * text.c - UTF-8 validation and JSON escaping that keep PostgreSQL happy
 * (see text.h for why).
 */
#include <stdio.h>
#include <string.h>

#include "text.h"

static const char replacement[] = "\xEF\xBF\xBD"; /* U+FFFD */

size_t nsync__utf8_seq_len(const unsigned char *s, size_t avail)
{
	unsigned char c = s[0];

	if (c < 0x80)
		return 1;
	if (c >= 0xC2 && c <= 0xDF) {
		if (avail >= 2 && (s[1] & 0xC0) == 0x80)
			return 2;
		return 0;
	}
	if (c >= 0xE0 && c <= 0xEF) {
		if (avail < 3 || (s[1] & 0xC0) != 0x80 || (s[2] & 0xC0) != 0x80)
			return 0;
		if (c == 0xE0 && s[1] < 0xA0)
			return 0; /* overlong */
		if (c == 0xED && s[1] >= 0xA0)
			return 0; /* UTF-16 surrogate */
		return 3;
	}
	if (c >= 0xF0 && c <= 0xF4) {
		if (avail < 4 || (s[1] & 0xC0) != 0x80 || (s[2] & 0xC0) != 0x80 ||
		    (s[3] & 0xC0) != 0x80)
			return 0;
		if (c == 0xF0 && s[1] < 0x90)
			return 0; /* overlong */
		if (c == 0xF4 && s[1] >= 0x90)
			return 0; /* above U+10FFFF */
		return 4;
	}
	return 0;
}

size_t nsync__utf8_prefix(const char *s, size_t len, size_t max_chars)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t i = 0, chars = 0;

	while (i < len && chars < max_chars) {
		size_t n = nsync__utf8_seq_len(p + i, len - i);
		i += n ? n : 1;
		chars++;
	}
	return i;
}

/* Text copied to a buffer in runs: the bytes of p from run on are appended
 * only when something is written in place of the bytes after them, or at
 * the end. */
struct runs {
	struct nsync_buf *b;
	const unsigned char *p;
	size_t run; /* the first byte not yet appended */
	int dirty;  /* a byte was dropped or replaced */
};

/* Append the bytes before at, then the n bytes of with in place of the skip
 * bytes at at. NSYNC_ERR_NOMEM when the buffer cannot grow. */
static nsync_rc put_instead(struct runs *r, size_t at, size_t skip, const char *with, size_t n)
{
	nsync_rc rc = nsync__buf_add(r->b, r->p + r->run, at - r->run);

	if (rc == NSYNC_OK)
		rc = nsync__buf_add(r->b, with, n);
	r->run = at + skip;
	return rc;
}

/* put_instead for bytes PostgreSQL cannot store: the text is cleaned. */
static nsync_rc clean_instead(struct runs *r, size_t at, size_t skip, const char *with, size_t n)
{
	r->dirty = 1;
	return put_instead(r, at, skip, with, n);
}

/* Append the bytes left before end; count the text in *cleaned (cleaned
 * may be NULL) if it was cleaned. NSYNC_ERR_NOMEM. */
static nsync_rc finish(struct runs *r, size_t end, long *cleaned)
{
	if (r->dirty && cleaned)
		(*cleaned)++;
	return nsync__buf_add(r->b, r->p + r->run, end - r->run);
}

nsync_rc nsync__utf8_clean(struct nsync_buf *b, const char *s, size_t len, long *cleaned)
{
	struct runs r = {b, (const unsigned char *)s, 0, 0};
	const unsigned char *p = r.p;
	size_t i = 0, n = 0; /* n is read only once set; gcc 12 cannot tell */
	nsync_rc rc = NSYNC_OK;

	while (i < len && rc == NSYNC_OK) {
		if (p[i] != 0 && (p[i] < 0x80 || (n = nsync__utf8_seq_len(p + i, len - i)) > 0)) {
			i += p[i] < 0x80 ? 1 : n;
			continue;
		}
		if (p[i] == 0)
			rc = clean_instead(&r, i, 1, "", 0); /* dropped */
		else
			rc = clean_instead(&r, i, 1, replacement, 3);
		i++;
	}
	if (rc == NSYNC_OK)
		rc = finish(&r, len, cleaned);
	return rc;
}

nsync_rc nsync__json_add_string(struct nsync_buf *b, const char *s, size_t len, long *cleaned)
{
	struct runs r = {b, (const unsigned char *)s, 0, 0};
	const unsigned char *p = r.p;
	size_t i = 0;
	nsync_rc rc = nsync__buf_addc(b, '"');

	/* Copy runs of plain bytes in one go; stop at anything needing care. */
	while (rc == NSYNC_OK && i < len) {
		unsigned char c = p[i];
		char u[7];
		size_t n;

		if (c >= 0x20 && c != '"' && c != '\\' && c < 0x80) {
			i++;
			continue;
		}
		if (c >= 0x80 && (n = nsync__utf8_seq_len(p + i, len - i)) > 0) {
			i += n;
			continue;
		}
		if (c == 0) {
			rc = clean_instead(&r, i, 1, "", 0); /* PostgreSQL text cannot hold NUL */
		} else if (c >= 0x80) {
			rc = clean_instead(&r, i, 1, replacement, 3);
		} else if (c == '"') {
			rc = put_instead(&r, i, 1, "\\\"", 2);
		} else if (c == '\\') {
			rc = put_instead(&r, i, 1, "\\\\", 2);
		} else if (c == '\n') {
			rc = put_instead(&r, i, 1, "\\n", 2);
		} else if (c == '\r') {
			rc = put_instead(&r, i, 1, "\\r", 2);
		} else if (c == '\t') {
			rc = put_instead(&r, i, 1, "\\t", 2);
		} else {
			snprintf(u, sizeof(u), "\\u%04x", c);
			rc = put_instead(&r, i, 1, u, 6);
		}
		i++;
	}
	if (rc == NSYNC_OK)
		rc = finish(&r, len, cleaned);
	if (rc == NSYNC_OK)
		rc = nsync__buf_addc(b, '"');
	return rc;
}

int nsync__hex4(const char *p, unsigned *out)
{
	unsigned v = 0;
	int i;

	for (i = 0; i < 4; i++) {
		unsigned char c = (unsigned char)p[i];
		v <<= 4;
		if (c >= '0' && c <= '9')
			v |= c - '0';
		else if (c >= 'a' && c <= 'f')
			v |= c - 'a' + 10;
		else if (c >= 'A' && c <= 'F')
			v |= c - 'A' + 10;
		else
			return 0;
	}
	*out = v;
	return 1;
}

nsync_rc nsync__json_add_raw(struct nsync_buf *b, const char *s, size_t len, long *cleaned)
{
	struct runs r = {b, (const unsigned char *)s, 0, 0};
	const unsigned char *p = r.p;
	size_t i = 0;
	nsync_rc rc;

	while (i < len) {
		unsigned char c = p[i];
		unsigned u, lo;
		size_t n;

		if (c == '\\' && i + 1 < len) {
			if (p[i + 1] != 'u' || i + 6 > len ||
			    !nsync__hex4((const char *)p + i + 2, &u)) {
				i += 2; /* a two-byte escape such as \" or \\ */
				continue;
			}
			if (u >= 0xD800 && u <= 0xDBFF && i + 12 <= len && p[i + 6] == '\\' &&
			    p[i + 7] == 'u' && nsync__hex4((const char *)p + i + 8, &lo) &&
			    lo >= 0xDC00 && lo <= 0xDFFF) {
				i += 12; /* a proper surrogate pair */
				continue;
			}
			if (u != 0 && (u < 0xD800 || u > 0xDFFF)) {
				i += 6;
				continue;
			}
			/* \u0000 or a lone surrogate: jsonb would refuse the document. */
			if ((rc = clean_instead(&r, i, 6, "\\ufffd", 6)) != NSYNC_OK)
				return rc;
			i += 6;
			continue;
		}
		if (c < 0x80 || (n = nsync__utf8_seq_len(p + i, len - i)) == 0) {
			if (c >= 0x80 && (rc = clean_instead(&r, i, 1, replacement, 3)) != NSYNC_OK)
				return rc;
			i++;
			continue;
		}
		i += n;
	}
	return finish(&r, len, cleaned);
}
