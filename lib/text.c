/*
 * text.c - UTF-8 validation and JSON escaping that keep PostgreSQL happy
 * (see text.h for why).
 */
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

nsync_rc nsync__utf8_clean(struct nsync_buf *b, const char *s, size_t len, long *cleaned)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t i = 0, run = 0, n = 0; /* n is read only once set; gcc 12 cannot tell */
	int dirty = 0;
	nsync_rc rc = NSYNC_OK;

	while (i < len && rc == NSYNC_OK) {
		if (p[i] != 0 && (p[i] < 0x80 || (n = nsync__utf8_seq_len(p + i, len - i)) > 0)) {
			i += p[i] < 0x80 ? 1 : n;
			continue;
		}
		rc = nsync__buf_add(b, p + run, i - run);
		if (rc == NSYNC_OK && p[i] != 0)
			rc = nsync__buf_add(b, replacement, 3);
		dirty = 1;
		i++;
		run = i;
	}
	if (rc == NSYNC_OK)
		rc = nsync__buf_add(b, p + run, len - run);
	if (dirty && cleaned)
		(*cleaned)++;
	return rc;
}

nsync_rc nsync__json_add_string(struct nsync_buf *b, const char *s, size_t len, long *cleaned)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t i = 0, run = 0;
	int dirty = 0;
	nsync_rc rc = nsync__buf_addc(b, '"');

	/* Copy runs of plain bytes in one go; stop at anything needing care. */
	while (rc == NSYNC_OK && i < len) {
		unsigned char c = p[i];
		size_t n;

		if (c >= 0x20 && c != '"' && c != '\\' && c < 0x80) {
			i++;
			continue;
		}
		if (c >= 0x80 && (n = nsync__utf8_seq_len(p + i, len - i)) > 0) {
			i += n;
			continue;
		}
		rc = nsync__buf_add(b, p + run, i - run);
		if (rc != NSYNC_OK)
			break;
		if (c == '"')
			rc = nsync__buf_add(b, "\\\"", 2);
		else if (c == '\\')
			rc = nsync__buf_add(b, "\\\\", 2);
		else if (c == '\n')
			rc = nsync__buf_add(b, "\\n", 2);
		else if (c == '\r')
			rc = nsync__buf_add(b, "\\r", 2);
		else if (c == '\t')
			rc = nsync__buf_add(b, "\\t", 2);
		else if (c == 0)
			dirty = 1; /* dropped: PostgreSQL text cannot hold NUL */
		else if (c < 0x20)
			rc = nsync__buf_printf(b, "\\u%04x", c);
		else {
			rc = nsync__buf_add(b, replacement, 3);
			dirty = 1;
		}
		i++;
		run = i;
	}
	if (rc == NSYNC_OK)
		rc = nsync__buf_add(b, p + run, i - run);
	if (rc == NSYNC_OK)
		rc = nsync__buf_addc(b, '"');
	if (dirty && cleaned)
		(*cleaned)++;
	return rc;
}

static int hex4(const unsigned char *p, unsigned *out)
{
	unsigned v = 0;
	int i;

	for (i = 0; i < 4; i++) {
		unsigned char c = p[i];
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
	const unsigned char *p = (const unsigned char *)s;
	size_t i = 0, run = 0;
	int dirty = 0;
	nsync_rc rc = NSYNC_OK;

	while (i < len) {
		unsigned char c = p[i];
		unsigned u, lo;
		size_t n;

		if (c == '\\' && i + 1 < len) {
			if (p[i + 1] != 'u' || i + 6 > len || !hex4(p + i + 2, &u)) {
				i += 2; /* a two-byte escape such as \" or \\ */
				continue;
			}
			if (u >= 0xD800 && u <= 0xDBFF && i + 12 <= len && p[i + 6] == '\\' &&
			    p[i + 7] == 'u' && hex4(p + i + 8, &lo) && lo >= 0xDC00 &&
			    lo <= 0xDFFF) {
				i += 12; /* a proper surrogate pair */
				continue;
			}
			if (u != 0 && (u < 0xD800 || u > 0xDFFF)) {
				i += 6;
				continue;
			}
			/* \u0000 or a lone surrogate: jsonb would refuse the document. */
			rc = nsync__buf_add(b, p + run, i - run);
			if (rc == NSYNC_OK)
				rc = nsync__buf_add(b, "\\ufffd", 6);
			if (rc != NSYNC_OK)
				return rc;
			dirty = 1;
			i += 6;
			run = i;
			continue;
		}
		if (c < 0x80 || (n = nsync__utf8_seq_len(p + i, len - i)) == 0) {
			if (c >= 0x80) {
				rc = nsync__buf_add(b, p + run, i - run);
				if (rc == NSYNC_OK)
					rc = nsync__buf_add(b, replacement, 3);
				if (rc != NSYNC_OK)
					return rc;
				dirty = 1;
				run = i + 1;
			}
			i++;
			continue;
		}
		i += n;
	}
	rc = nsync__buf_add(b, p + run, len - run);
	if (dirty && cleaned)
		(*cleaned)++;
	return rc;
}
